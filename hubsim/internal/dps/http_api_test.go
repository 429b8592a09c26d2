package dps

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/muxpath"
)

func TestValidScope(t *testing.T) {
	tests := []struct {
		scope string
		ok    bool
	}{
		{"0ne00000001", true},
		{"0NEabc", true},
		{"", false},
		{"0ne/1", false},
		{"0ne{x}", false},
		{"0ne 1", false},
		{"enrollments", false},
		{"EnrollmentGroups", false},
		{"registrations", false},
	}
	for _, tt := range tests {
		_, err := New(Config{IDScopes: []string{tt.scope}, Hubs: newFakeHubs(hubA)})
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("scope %q: err %v, want ok=%v", tt.scope, err, tt.ok)
		}
	}
}

// TestCanonical pins the rewrites of the fallback: only spellings DPS
// accepts, never an ID, and nothing for a path that is already canonical.
func TestCanonical(t *testing.T) {
	e := newEnv(t, nil)
	a := e.svc.HTTP()
	tests := []struct{ method, in, want string }{
		{"GET", "/ENROLLMENTS/Dev1", "/enrollments/Dev1"},
		{"GET", "/enrollments/dev1/", "/enrollments/dev1"},
		{"POST", "/enrollmentgroups/G/AttestationMechanism", "/enrollmentGroups/G/attestationmechanism"},
		{"POST", "/EnrollmentGroups/QUERY", "/enrollmentGroups/query"},
		{"POST", "/REGISTRATIONS/Query/Query", "/registrations/Query/query"},
		{"PUT", "/0NE0000test/REGISTRATIONS/Dev1/Register", "/" + testScope + "/registrations/Dev1/register"},
		{"GET", "/0ne0000TEST/registrations/d/OPERATIONS/Op", "/" + testScope + "/registrations/d/operations/Op"},
		{"GET", "/enrollments/a%2Fb/", "/enrollments/a%2Fb"},
		{"GET", "/enrollments/dev1", ""},
		{"PUT", "/0neOTHER/registrations/d/register", ""},
		{"GET", "/devices/d1", ""},
		{"GET", "/", ""},
		{"GET", "/enrollments//x", ""},
		{"GET", "/enrollments/../x", ""},
	}
	for _, tt := range tests {
		r2, ok := a.canonical(httptest.NewRequest(tt.method, tt.in, nil))
		got := ""
		if ok {
			got = r2.URL.EscapedPath()
		}
		if got != tt.want {
			t.Errorf("%s %s → %q, want %q", tt.method, tt.in, got, tt.want)
		}
	}
}

// FuzzCanonical: the fallback's rewrite only changes the case of segments
// and drops trailing slashes, yields a path ServeMux serves without a
// redirect, and is a fixed point, so a rewritten request never loops; the
// standalone handler answers any path without a redirect or a panic.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"/ENROLLMENTS/x/", "/0NE0000TEST/Registrations/d/Register", "/registrations/g/QUERY", "/x/registrations/y",
		"/enrollmentgroups/g/attestationMechanism//", "/%41/registrations/b", "/0ne0000test", "/a/../b"} {
		f.Add("POST", s)
	}
	svc, err := New(Config{IDScopes: []string{testScope}, Hubs: newFakeHubs(hubA), Now: newClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = svc.Close() })
	f.Fuzz(func(t *testing.T, method, path string) { canonicalRoundTrip(t, svc.HTTP(), method, path) })
}

func canonicalRoundTrip(t *testing.T, a *HTTPAPI, method, path string) {
	u, err := url.ParseRequestURI(path)
	if err != nil || method == "" || strings.ContainsAny(method, " \t\r\n") {
		return
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Method, r.URL, r.RequestURI = method, u, path
	r2, ok := a.canonical(r)
	if ok {
		in, out := strings.TrimRight(u.EscapedPath(), "/"), r2.URL.EscapedPath()
		if !strings.EqualFold(in, out) {
			t.Fatalf("%q rewritten to %q: more than case and trailing slashes", path, out)
		}
		if !muxpath.Serves(out) || strings.HasSuffix(out, "/") {
			t.Fatalf("%q rewritten to %q, which ServeMux would redirect", path, out)
		}
		if _, again := a.canonical(r2); again {
			t.Fatalf("%q: rewrite %q is not canonical", path, out)
		}
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	if w.Code >= 300 && w.Code < 400 {
		t.Fatalf("%s %q: redirect %d to %q", method, path, w.Code, w.Header().Get("Location"))
	}
	if w.Code == http.StatusNotFound && w.Header().Get(headerErrorCode) == "" {
		t.Fatalf("%s %q: 404 without DPS's error shape", method, path)
	}
}
