package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func FuzzParsePropBag(f *testing.F) {
	for _, s := range []string{"", "%24.ct=application%2Fjson&%24.ce=utf-8", "a=1&b", "k=a%20b", "=x", "%zz=1", "a=%", "&&a=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		props, err := parsePropBag(s)
		if err != nil {
			return
		}
		// Whatever parses survives a format/parse round trip unchanged.
		again, err := parsePropBag(formatPropBag(props))
		if err != nil {
			t.Fatalf("formatted bag does not parse: %v", err)
		}
		if !maps.Equal(props, again) {
			t.Fatalf("round trip %v → %v", props, again)
		}
	})
}

func TestPropBag(t *testing.T) {
	got := formatPropBag(map[string]string{"$.mid": "1", "k": "a b/c&d=e", "é": "~"})
	if got != "%24.mid=1&k=a%20b%2Fc%26d%3De&%C3%A9=~" {
		t.Errorf("format %q", got)
	}
	for _, bad := range []string{"%zz=1", "a=%g0", "=1"} {
		if _, err := parsePropBag(bad); err == nil {
			t.Errorf("parsePropBag(%q) accepted", bad)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"hub/dev/?api-version=1", "hub/dev/mod/?a", "scope/registrations/id/api-version=1", "/?", "a//?", "a/b/c/d/?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, dev, mod, q, ok := parseUsername(s)
		if !ok {
			return
		}
		if host == "" || dev == "" || strings.Contains(host, "/") || strings.Contains(dev, "/") || strings.Contains(mod, "/") {
			t.Fatalf("parsed %q into %q %q %q", s, host, dev, mod)
		}
		head := host + "/" + dev
		if mod != "" {
			head += "/" + mod
		}
		if head+"/?"+q != s {
			t.Fatalf("%q does not rebuild from %q %q %q %q", s, host, dev, mod, q)
		}
	})
}

func FuzzParseTopicQuery(f *testing.F) {
	for _, s := range []string{"?$rid=1", "?$rid=1&$version=4", "", "$rid=1", "?&&", "?a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseTopicQuery(s)
		if ok != strings.HasPrefix(s, "?") {
			t.Fatalf("ok=%v for %q", ok, s)
		}
		for k, v := range m {
			if strings.Contains(k, "&") || strings.Contains(v, "&") {
				t.Fatalf("%q: key %q value %q", s, k, v)
			}
		}
	})
}

// FuzzRoutes sends arbitrary paths and verbs through the hub's routes:
// every answer is one the REST API documents, never a redirect or a panic.
func FuzzRoutes(f *testing.F) {
	for _, s := range []string{"/twins/dev1/streams/ssh", "/devices/a%2Fb", "/", "/devices/query", "/x/%zz", "//a//", "/twins/d/../x", "/devices/d/modules/m"} {
		f.Add("GET", s)
	}
	set, err := NewSet(Config{Hubs: []HubConfig{{HostName: "hub1.example.net"}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = set.Close() })
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !validMethod(method) {
			return
		}
		r := &http.Request{Method: method, URL: u, Host: "hub1.example.net", Header: http.Header{}, Body: http.NoBody}
		r = r.WithContext(context.Background())
		w := httptest.NewRecorder()
		set.ServeHTTP(w, r)
		switch w.Code {
		case 400, 401, 404, 405:
		default:
			t.Fatalf("%s %q: status %d", method, path, w.Code)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// FuzzReportedPatch feeds arbitrary device payloads through the reported-
// properties path: whatever is accepted, the twin documents the hub sends
// afterwards are valid JSON (SDKs JSON.parse them without error handling).
func FuzzReportedPatch(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":null}}`, `{"$version":3,"x":[1,{"y":2}]}`, `{"a.b":1}`, `null`, `[]`, `{"a":1}{}`, `{"n":1e400}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tw := newTwin(t0)
		p, err := decodeObject([]byte(s))
		if err == nil {
			p, err = cleanPatch(p)
		}
		if err != nil {
			return
		}
		tw.reported.patch(p, t0)
		tw.desired.replace(p, t0)
		if doc := tw.deviceDocument(); !json.Valid(doc) {
			t.Fatalf("device document not JSON: %s", doc)
		}
		tx := &identity{deviceID: "d", twin: tw, status: StatusEnabled}
		if b, err := json.Marshal(tx.twinLocked(nil)); err != nil || !json.Valid(b) {
			t.Fatalf("service twin: %v", err)
		}
	})
}
