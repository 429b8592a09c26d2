package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
)

// TestQueryPaging: the request shape (POST /devices/query, JSON body, page
// size and continuation headers) and the paging loop.
func TestQueryPaging(t *testing.T) {
	type seen struct{ body, cont, max, ct string }
	var got []seen
	f := newAuthFake(t, "service", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/devices/query" || r.URL.RawQuery != "api-version=2021-04-12" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		got = append(got, seen{string(b), r.Header.Get("x-ms-continuation"), r.Header.Get("x-ms-max-item-count"), r.Header.Get("Content-Type")})
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("x-ms-item-type", "twin")
		switch r.Header.Get("x-ms-continuation") {
		case "":
			w.Header().Set("x-ms-continuation", "tok/1+=")
			_, _ = w.Write([]byte(`[{"deviceId":"a","tags":{"site":"x"}},{"deviceId":"b"}]`))
		case "tok/1+=":
			_, _ = w.Write([]byte(`[{"deviceId":"c"}]`))
		default:
			writeHubError(w, 400, "ArgumentInvalid", "bad continuation token")
		}
	})
	c := f.hub(t)
	ctx := context.Background()
	q := c.NewQuery("SELECT * FROM devices WHERE tags.site = 'x'", 2)
	var ids []string
	for q.HasMore() {
		p, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tw, err := p.Twins()
		if err != nil || p.ItemType != "twin" {
			t.Fatal(p, err)
		}
		for _, x := range tw {
			ids = append(ids, x.DeviceID)
		}
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("ids %v", ids)
	}
	wantBody := `{"query":"SELECT * FROM devices WHERE tags.site = 'x'"}`
	want := []seen{{wantBody, "", "2", contentTypeJSON}, {wantBody, "tok/1+=", "2", contentTypeJSON}}
	if !slices.Equal(got, want) {
		t.Fatalf("requests\n got %q\nwant %q", got, want)
	}
	if p, err := q.Next(ctx); err != nil || len(p.Items) != 0 || len(got) != 2 {
		t.Fatalf("Next after the last page: %v %v (%d requests)", p, err, len(got))
	}

	// QueryAll with a limit, and no page-size header when 0.
	got = nil
	all, err := c.QueryAll(ctx, "SELECT * FROM devices", 0, 2)
	if err != nil || len(all) != 2 || len(got) != 1 || got[0].max != "" {
		t.Fatalf("QueryAll: %d items, %v, requests %q", len(all), err, got)
	}
	// Page sizes are capped.
	got = nil
	if _, err := c.NewQuery("SELECT * FROM devices", 5000).Next(ctx); err != nil || got[0].max != "1000" {
		t.Fatalf("capped page size: %q %v", got, err)
	}
}

func TestQueryError(t *testing.T) {
	f := newAuthFake(t, "service", func(w http.ResponseWriter, r *http.Request) {
		writeHubError(w, 400, "ArgumentInvalid", "query unsupported by hubsim at offset 14: FROM devices.jobs")
	})
	_, err := f.hub(t).NewQuery("SELECT * FROM devices.jobs", 0).Next(context.Background())
	var se *Error
	if !errors.As(err, &se) || se.StatusCode != 400 || se.ErrorCode != "ArgumentInvalid" || !contains(err.Error(), "devices.jobs") {
		t.Fatalf("%v", err)
	}
}

func TestQueryPageTwinsRejectsNonTwins(t *testing.T) {
	p := &QueryPage{Items: []json.RawMessage{json.RawMessage(`[1]`)}}
	if _, err := p.Twins(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("%v", err)
	}
}
