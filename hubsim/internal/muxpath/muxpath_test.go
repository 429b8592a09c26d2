package muxpath

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServes(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/", true},
		{"/devices/dev1", true},
		{"/devices/dev1/", true}, // the trailing slash is TrimTrailingSlash's business
		{"/devices/d%2E%2E", true},
		{"/devices/..x", true},
		{"", false},
		{"devices", false},
		{"//devices", false},
		{"/devices//dev1", false},
		{"/devices/./dev1", false},
		{"/devices/../x", false},
		{"/.", false},
		{"/..", false},
	} {
		if got := Serves(tc.path); got != tc.want {
			t.Errorf("Serves(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestTrimTrailingSlash(t *testing.T) {
	for _, tc := range []struct{ url, wantPath, wantEscaped string }{
		{"https://h/devices/", "/devices", "/devices"},
		{"https://h/devices///", "/devices", "/devices"},
		{"https://h/devices/a%2Fb/", "/devices/a/b", "/devices/a%2Fb"},
		{"https://h/devices", "/devices", "/devices"},
		{"https://h/", "/", "/"},
		{"https://h///", "///", "///"},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		before := r.URL.Path
		got := TrimTrailingSlash(r)
		if got.URL.Path != tc.wantPath || got.URL.EscapedPath() != tc.wantEscaped {
			t.Errorf("%s: path %q escaped %q, want %q %q", tc.url, got.URL.Path, got.URL.EscapedPath(), tc.wantPath, tc.wantEscaped)
		}
		if r.URL.Path != before {
			t.Errorf("%s: the original request changed to %q", tc.url, r.URL.Path)
		}
	}
}

// FuzzServes checks Serves against ServeMux itself: for a path of plain
// characters, the mux redirects exactly when Serves says it does not take
// the path.
func FuzzServes(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "//a", "/a/./b", "/a/../b", "/..", "/a/", "/a..b/.c"} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool {
			return !(r == '/' || r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			return // escapes and odd bytes are not what is checked here
		}
		r := httptest.NewRequest("GET", "https://h"+p, nil)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		redirected := w.Code == http.StatusMovedPermanently || w.Code == http.StatusTemporaryRedirect || w.Code == http.StatusPermanentRedirect
		if redirected == Serves(p) {
			t.Errorf("path %q: mux answered %d, Serves = %v", p, w.Code, Serves(p))
		}
	})
}
