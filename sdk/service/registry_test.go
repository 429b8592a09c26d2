package service

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	f := newAuthFake(t, "iothubowner", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "api-version=2021-04-12" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.EscapedPath() {
		case "PUT /devices/dev1":
			if r.Header.Get("If-Match") != "" {
				t.Errorf("create sent If-Match %q", r.Header.Get("If-Match"))
			}
			var d map[string]any
			if err := json.Unmarshal(body, &d); err != nil || d["deviceId"] != "dev1" || d["status"] != "enabled" {
				t.Errorf("create body %s", body)
			}
			if a, _ := d["authentication"].(map[string]any); a["type"] != "sas" {
				t.Errorf("create authentication %s", body)
			}
			_, _ = w.Write([]byte(`{"deviceId":"dev1","etag":"e1","status":"enabled","connectionState":"Disconnected",
				"connectionStateUpdatedTime":"0001-01-01T00:00:00","lastActivityTime":"2024-05-06T07:08:09.1234567Z",
				"authentication":{"type":"sas","symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"}}}`))
		case "PUT /devices/dup":
			writeHubError(w, 409, "DeviceAlreadyExists", "exists")
		case "GET /devices/dev1":
			_, _ = w.Write([]byte(`{"deviceId":"dev1","etag":"e1","statusUpdatedTime":"garbage"}`))
		case "DELETE /devices/dev1":
			if r.Header.Get("If-Match") != "*" {
				t.Errorf("delete If-Match %q", r.Header.Get("If-Match"))
			}
			w.WriteHeader(http.StatusNoContent)
		case "GET /twins/dev1":
			_, _ = w.Write([]byte(`{"deviceId":"dev1","etag":"AAAAAAAAAAE=","version":3,"tags":{"site":"a"},
				"properties":{"desired":{"x":1,"$version":2},"reported":{"y":"z","$version":4}}}`))
		case "PATCH /twins/dev1":
			im := r.Header.Get("If-Match")
			if im != `"AAAAAAAAAAE="` && im != "*" {
				t.Errorf("patch If-Match %q", im)
			}
			if string(body) != `{"tags":{"site":"b"},"properties":{"desired":{"x":null}}}` && string(body) != `{"tags":{"site":"b"}}` {
				t.Errorf("patch body %s", body)
			}
			if im == "*" {
				_, _ = w.Write([]byte(`{"deviceId":"dev1","etag":"AAAAAAAAAAI=","tags":{"site":"b"}}`))
				return
			}
			writeHubError(w, 412, "PreconditionFailed", "etag mismatch")
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.EscapedPath())
			w.WriteHeader(500)
		}
	})
	c := f.hub(t)
	ctx := testCtx(t)

	d, err := c.CreateDevice(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if d.ETag != "e1" || d.Authentication == nil || d.Authentication.SymmetricKey.PrimaryKey != "cHJpbWFyeQ==" ||
		!d.ConnectionStateUpdatedTime.IsZero() || d.LastActivityTime.Nanosecond() != 123456700 {
		t.Errorf("created %+v", d)
	}
	if s := d.Authentication.SymmetricKey.String(); strings.Contains(s, "cHJpbWFyeQ") {
		t.Errorf("SymmetricKey.String shows the key: %s", s)
	}
	if _, err := c.CreateDevice(ctx, "dup"); !errors.Is(err, ErrConflict) {
		t.Errorf("dup: %v", err)
	}
	if d, err := c.GetDevice(ctx, "dev1"); err != nil || d.ETag != "e1" || !d.StatusUpdatedTime.IsZero() {
		t.Errorf("get: %+v %v", d, err)
	}
	if err := c.DeleteDevice(ctx, "dev1"); err != nil {
		t.Error(err)
	}
	tw, err := c.GetTwin(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if tw.ETag != "AAAAAAAAAAE=" || tw.Version != 3 || tw.Tags["site"] != "a" || tw.Properties.Desired["x"] != 1.0 || tw.Properties.Reported["y"] != "z" {
		t.Errorf("twin %+v", tw)
	}
	_, err = c.UpdateTwin(ctx, "dev1", TwinPatch{Tags: map[string]any{"site": "b"}, Desired: map[string]any{"x": nil}}, tw.ETag)
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("conditional update: %v", err)
	}
	tw, err = c.UpdateTwin(ctx, "dev1", TwinPatch{Tags: map[string]any{"site": "b"}}, "")
	if err != nil || tw.ETag != "AAAAAAAAAAI=" {
		t.Errorf("update: %+v %v", tw, err)
	}
	for _, err := range []error{
		func() error { _, err := c.GetDevice(ctx, ""); return err }(),
		func() error { _, err := c.CreateDevice(ctx, ""); return err }(),
		c.DeleteDevice(ctx, ""),
		func() error { _, err := c.GetTwin(ctx, ""); return err }(),
		func() error { _, err := c.UpdateTwin(ctx, "", TwinPatch{}, ""); return err }(),
	} {
		if !errors.Is(err, ErrConfig) {
			t.Errorf("empty id: %v", err)
		}
	}
}

func TestTwinPatchJSON(t *testing.T) {
	tests := []struct {
		p    TwinPatch
		want string
	}{
		{TwinPatch{}, `{}`},
		{TwinPatch{Tags: map[string]any{"a": 1}}, `{"tags":{"a":1}}`},
		{TwinPatch{Desired: map[string]any{"b": nil}}, `{"properties":{"desired":{"b":null}}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.p)
		if err != nil || string(b) != tt.want {
			t.Errorf("%+v → %s %v, want %s", tt.p, b, err, tt.want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2024-05-06T07:08:09Z"`, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
		{`"2024-05-06T07:08:09.5+02:00"`, time.Date(2024, 5, 6, 5, 8, 9, 5e8, time.UTC)},
		{`"0001-01-01T00:00:00"`, time.Time{}},
		{`"2024-05-06T07:08:09.1234567"`, time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)},
		{`"yesterday"`, time.Time{}},
		{`null`, time.Time{}},
		{`12`, time.Time{}},
	}
	for _, tt := range tests {
		var ts Timestamp
		if err := json.Unmarshal([]byte(tt.in), &ts); err != nil || !ts.Equal(tt.want) {
			t.Errorf("%s → %v %v, want %v", tt.in, ts, err, tt.want)
		}
	}
	b, _ := json.Marshal(Timestamp{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)})
	if string(b) != `"2024-05-06T07:08:09Z"` {
		t.Errorf("marshal %s", b)
	}
}
