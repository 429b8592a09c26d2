package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		path string
		want Route
	}{
		{"/healthz", RouteHealth},
		{"/healthz/x", RouteUnhandled},
		{"/$iothub/websocket", RouteBroker},
		{"/$iothub/other", RouteUnhandled},
		{"/bridges/hub-eu.local/dev1/s/123", RouteRelay},
		{"/enrollments/dev1", RouteDPS},
		{"/enrollments/query", RouteDPS},
		{"/enrollmentGroups/g1", RouteDPS},
		{"/registrations/dev1", RouteDPS},
		{"/0ne00000001/registrations/dev1/register", RouteDPS},
		{"/0ne00000001/registrations/dev1/operations/4.x", RouteDPS},
		{"/0ne00000001/Registrations/dev1", RouteDPS},
		{"/devices/dev1", RouteHub},
		{"/devices/dev1/messages/events", RouteHub},
		{"/twins/dev1/streams/ssh", RouteHub},
		{"/twins/dev1/methods", RouteHub},
		{"/messages/deviceBound", RouteHub},
		{"/statistics/devices", RouteHub},
		{"/configurations", RouteHub},
		{"/jobs/v2/query", RouteHub},
		{"/Devices/dev1", RouteHub},
		{"/hubsim/events", RouteAdmin},
		{"/", RouteUnhandled},
		{"", RouteUnhandled},
		{"/favicon.ico", RouteUnhandled},
		{"/registrationsx/a", RouteUnhandled},
		{"//registrations/x", RouteUnhandled},
	}
	for _, tt := range tests {
		if got := Classify(tt.path); got != tt.want {
			t.Errorf("Classify(%q) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

// named answers with its own name, without setting Content-Type.
type named string

func (n named) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, `{"handler":"`+string(n)+`"}`)
}

// fakeBroker is a Broker whose HTTP side answers like named.
type fakeBroker struct{ named }

func (fakeBroker) ServeConn(_ context.Context, c net.Conn, _ string) error { return c.Close() }
func (fakeBroker) Close() error                                            { return nil }

func allComponents() Components {
	return Components{
		Broker: fakeBroker{"broker"},
		Relay:  named("relay"),
		Hub:    named("hub"),
		DPS:    named("dps"),
		Admin:  named("admin"),
	}
}

func newRouter(t testing.TB, c Components, rec *[]string) *router {
	t.Helper()
	rt, err := newRouterFor(c, time.Now, func(m, p string) { *rec = append(*rec, m+" "+p) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestRouterDispatch(t *testing.T) {
	var rec []string
	rt := newRouter(t, allComponents(), &rec)
	tests := []struct {
		method, path, want string
	}{
		{"GET", "/$iothub/websocket", "broker"},
		{"GET", "/bridges/h/d/1", "relay"},
		{"PUT", "/devices/d1?api-version=2021-04-12", "hub"},
		{"POST", "/twins/d1/streams/ssh", "hub"},
		{"PUT", "/0ne00000001/registrations/d1/register?api-version=2021-06-01", "dps"},
		{"PUT", "/enrollments/d1", "dps"},
		{"POST", "/registrations/d1", "dps"},
		{"GET", "/hubsim/events", "admin"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			var body struct{ Handler string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Handler != tt.want {
				t.Fatalf("body %q (%v), want handler %s", w.Body.String(), err, tt.want)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	if len(rec) != 0 {
		t.Errorf("recorded as unhandled: %v", rec)
	}
}

func TestRouterHealth(t *testing.T) {
	var rec []string
	rt := newRouter(t, Components{}, &rec)
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 200 || w.Body.String() != `{"status":"ok"}` || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("healthz: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
}

func TestRouterUnhandled(t *testing.T) {
	var rec []string
	rt := newRouter(t, allComponents(), &rec)
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, httptest.NewRequest("DELETE", "/nowhere/x?y=1", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("status %d", w.Code)
	}
	if w.Header().Get("iothub-errorcode") != "IotHubNotFound" {
		t.Errorf("iothub-errorcode = %q", w.Header().Get("iothub-errorcode"))
	}
	var body hubError
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body.Message, "ErrorCode:IotHubNotFound;") || !strings.HasPrefix(body.ExceptionMessage, "Tracking ID:") {
		t.Errorf("body %+v", body)
	}
	if len(rec) != 1 || rec[0] != "DELETE /nowhere/x" {
		t.Errorf("recorded %v", rec)
	}
}

func TestRouterNilComponent(t *testing.T) {
	var rec []string
	rt := newRouter(t, Components{}, &rec)
	tests := []struct {
		path    string
		wantDPS bool
	}{
		{"/$iothub/websocket", false},
		{"/bridges/x", false},
		{"/devices/d1", false},
		{"/hubsim/x", false},
		{"/enrollments/x", true},
		{"/scope/registrations/d1/register", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d", w.Code)
			}
			if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			if tt.wantDPS {
				var b dpsError
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.ErrorCode != 503000 || w.Header().Get("x-ms-error-code") != "503000" {
					t.Errorf("DPS error body %q header %v", w.Body.String(), w.Header())
				}
			} else {
				var b hubError
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || !strings.HasPrefix(b.Message, "ErrorCode:ServiceUnavailable;") {
					t.Errorf("hub error body %q", w.Body.String())
				}
			}
		})
	}
	if len(rec) != 0 {
		t.Errorf("503 routes recorded as unhandled: %v", rec)
	}
}

func TestContentType(t *testing.T) {
	tests := []struct {
		name    string
		h       http.HandlerFunc
		wantCT  string
		wantHas bool
	}{
		{"body without type", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }, "application/json", true},
		{"explicit status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202); _, _ = w.Write([]byte("{}")) }, "application/json", true},
		{"own type kept", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("x"))
		}, "text/plain", true},
		{"204 none", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec []string
			rt := newRouter(t, Components{Hub: tt.h}, &rec)
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest("GET", "/devices/x", nil))
			ct := w.Header().Get("Content-Type")
			if tt.wantHas != (ct != "") || !strings.HasPrefix(ct, tt.wantCT) {
				t.Errorf("Content-Type = %q, want %q", ct, tt.wantCT)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"/healthz", "/$iothub/websocket", "/bridges/a", "/x/registrations/y", "/devices", "", "/", "//", "/hubsim/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r := Classify(path)
		// Routing looks at the first two segments only: what follows them
		// never changes the route (except the two exact paths).
		if r != RouteHealth && r != RouteBroker && strings.Count(path, "/") >= 2 {
			if again := Classify(path + "/x"); again != r && !(r == RouteUnhandled && again == RouteBroker) {
				t.Fatalf("Classify(%q) = %s but Classify(%q) = %s", path, r, path+"/x", again)
			}
		}
	})
}

// registrar is a component that registers its own patterns.
type registrar struct{ name string }

func (r registrar) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, `{"handler":"`+r.name+`-fallback"}`)
}

func (r registrar) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /devices/{id}", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, `{"handler":"`+r.name+`:`+req.PathValue("id")+`"}`)
	})
}

// Components that register Go 1.22 patterns get them on the one mux;
// paths the mux would redirect (not clean) and names in another case go
// through Classify to the component's own handler, never to a redirect.
func TestRouterPatterns(t *testing.T) {
	var rec []string
	c := allComponents()
	c.Hub = registrar{"hub"}
	rt := newRouter(t, c, &rec)
	tests := []struct {
		method, path, want string
		code               int
	}{
		{"GET", "/devices/a%2Fb", "hub:a/b", 200},
		{"GET", "/Devices/x", "hub-fallback", 200},
		{"GET", "/devices//x", "hub-fallback", 200},
		{"GET", "/devices/../enrollments/x", "hub-fallback", 200},
		{"GET", "/bridges", "relay", 200},
		{"POST", "/healthz", "", 200},
		{"GET", "/0ne00000001/registrations/d1/operations/x", "dps", 200},
		{"POST", "/enrollmentgroups/g/attestationmechanism", "dps", 200},
		{"GET", "/registrations/registrations/query", "dps", 200},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.code {
			t.Errorf("%s %s: status %d", tt.method, tt.path, w.Code)
			continue
		}
		if tt.want == "" {
			continue
		}
		var body struct{ Handler string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Handler != tt.want {
			t.Errorf("%s %s: body %q, want handler %s", tt.method, tt.path, w.Body.String(), tt.want)
		}
	}
	if len(rec) != 0 {
		t.Errorf("recorded as unhandled: %v", rec)
	}
}

// FuzzRouter sends arbitrary verbs and paths through the one mux with
// every component present: no panic (a pattern conflict panics when the
// mux is built, an odd path when it is served), and never a redirect —
// Azure's clients do not follow them, so every answer comes from a
// component or the unhandled path.
func FuzzRouter(f *testing.F) {
	for _, s := range []string{"/healthz", "/$iothub/websocket", "/bridges", "/bridges/a/b", "/devices/", "/Devices/x",
		"/x/registrations/y", "/hubsim", "/hubsim/hubs/", "//a", "/a/../b", "/twins/d/streams", "/%zz", "/enrollments",
		"/0ne00000001", "/0ne00000001/registrations/d/register", "/0NE00000001/Registrations/d/", "/EnrollmentGroups/g/",
		"/enrollments/", "/registrations/g/Query/"} {
		f.Add("GET", s)
	}
	c := allComponents()
	set, err := hub.NewSet(hub.Config{Hubs: []hub.HubConfig{{HostName: "hub1.example.net"}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = set.Close() })
	api, err := admin.New(admin.Config{Auth: &admin.Authorizer{Token: "t"}})
	if err != nil {
		f.Fatal(err)
	}
	svc, err := dps.New(dps.Config{IDScopes: []string{"0ne00000001"}, Hubs: set, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = svc.Close() })
	c.Hub, c.Admin, c.DPS = set, api, svc.HTTP()
	var mu sync.Mutex
	rt, err := newRouterFor(c, time.Now, func(string, string) { mu.Lock(); mu.Unlock() }, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !validMethod(method) {
			return
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Method, r.URL, r.RequestURI = method, u, path
		r.Host = "hub1.example.net"
		r.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, r)
		if w.Code >= 300 && w.Code < 400 {
			t.Fatalf("%s %q: redirect %d to %q", method, path, w.Code, w.Header().Get("Location"))
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 10 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
