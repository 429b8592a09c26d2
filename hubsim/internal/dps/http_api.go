package dps

import (
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/porthole-iot/porthole/hubsim/internal/muxpath"
)

// RightDeviceRegistration is the right of the device API's routes. It is
// not a shared access policy right: the caller is a device proving its own
// enrollment credential, a SAS with skn "registration" over
// "<idScope>/registrations/<registrationId>" signed with the enrollment's
// (or the group-derived) key, or its X.509 certificate. handleDevice checks
// it after the scope, the faults and the quota, as DPS does; a service
// policy's token on a device route is refused with 401.
const RightDeviceRegistration = "DeviceRegistration"

// Route is one pattern of DPS's HTTPS API and what its caller must hold.
type Route struct {
	// Pattern is the Go 1.22 http.ServeMux pattern, "METHOD /path".
	Pattern string
	// Right is a shared access policy right of the service API
	// (RightEnrollmentRead, RightEnrollmentWrite,
	// RightRegistrationStatusRead, RightRegistrationStatusWrite) or
	// RightDeviceRegistration.
	Right string
}

// httpRoute is a Route with its handler; the right is declared next to the
// route and enforced by its handler (serviceRoute, deviceRoute).
type httpRoute struct {
	method, path string
	right        string
	handler      http.Handler
}

func (r httpRoute) pattern() string { return r.method + " " + r.path }

// Collections of the service API, as serveQuery names them.
const (
	collEnrollments      = "enrollments"
	collEnrollmentGroups = "enrollmentgroups"
	collRegistrations    = "registrations"
)

// HTTPAPI is DPS's HTTPS API, device and service, as Go 1.22 ServeMux
// patterns: RegisterRoutes puts them on hubsim's one mux, ServeHTTP serves
// them on a mux of their own (standalone use, and what the server calls for
// DPS paths its mux has no pattern for).
//
// Every route is an explicit pattern in the spelling the official SDKs send
// (Routes lists them with their rights). The device routes carry each ID
// scope as a literal first segment: a wildcard there
// (POST /{idScope}/registrations/{id}) would match the same paths as
// POST /enrollments/{id}/attestationmechanism or
// POST /registrations/{id}/query with neither more specific, which ServeMux
// refuses, and would overlap the hub's routes. Host-qualified patterns would
// not help: the global endpoint and the service host may be one name or one
// IP address (hubsim's Node suite serves both on 127.0.0.9), and hub and DPS
// may share an address.
//
// What no pattern names reaches the fallback: the subtrees of the service
// collections and of each scope, and (through the server's classification)
// paths with an unknown scope or a collection name in another case. The
// fallback rewrites spellings DPS accepts to the registered ones — a known
// scope or a literal segment in another case, trailing slashes — and serves
// the result through the same mux; what is left answers 404 in DPS's error
// shape: "unknown ID scope" for a device path with a scope this instance
// does not have (as DPS answers it), else recorded in Unhandled.
type HTTPAPI struct {
	s      *Service
	routes []httpRoute

	ownOnce sync.Once
	own     *http.ServeMux // ServeHTTP's mux; built on first use
}

func newHTTPAPI(s *Service) *HTTPAPI {
	a := &HTTPAPI{s: s}
	a.routes = append(s.deviceRoutes(), s.serviceRoutes()...)
	return a
}

// HTTP returns the service's HTTPS API.
func (s *Service) HTTP() *HTTPAPI { return s.http }

// Routes lists every route pattern with the right it requires, device routes
// first (one set per ID scope), in registration order.
func (a *HTTPAPI) Routes() []Route {
	out := make([]Route, len(a.routes))
	for i, r := range a.routes {
		out[i] = Route{Pattern: r.pattern(), Right: r.right}
	}
	return out
}

// RegisterRoutes puts every route on mux, and the fallback on the subtrees
// under DPS's first path segments (each collection, each ID scope). It
// panics, as ServeMux does, if a pattern conflicts with one already there.
func (a *HTTPAPI) RegisterRoutes(mux *http.ServeMux) {
	for _, r := range a.routes {
		mux.Handle(r.pattern(), r.handler)
	}
	fb := a.fallbackOn(mux)
	for _, p := range a.fallbackPrefixes() {
		mux.Handle(p, fb)
		mux.Handle(p+"/", fb)
	}
}

// fallbackPrefixes are DPS's first path segments: the service collections in
// their registered spellings and the ID scopes.
func (a *HTTPAPI) fallbackPrefixes() []string {
	out := []string{"/" + segEnrollments, "/" + segEnrollmentGroups, "/" + segEnrollmentGroupsNode, "/" + segRegistrations}
	for _, sc := range a.s.cfg.IDScopes {
		out = append(out, "/"+sc)
	}
	return out
}

// ServeHTTP serves the API on a mux of its own: the registered routes, the
// fallback for everything else. Paths ServeMux would redirect (empty, "."
// or ".." segments) answer 404.
func (a *HTTPAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.ownOnce.Do(func() {
		a.own = http.NewServeMux()
		a.RegisterRoutes(a.own)
		a.own.Handle("/", a.fallbackOn(a.own))
	})
	if !muxpath.Serves(r.URL.EscapedPath()) {
		a.notFound(w, r)
		return
	}
	a.own.ServeHTTP(w, r)
}

// fallbackOn is the fallback of mux: a request in a spelling DPS accepts is
// served again through mux in the registered spelling; anything else gets
// DPS's 404. The rewritten request is canonical, so it never comes back
// here to be rewritten again.
func (a *HTTPAPI) fallbackOn(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r2, ok := a.canonical(r); ok {
			mux.ServeHTTP(w, r2)
			return
		}
		a.notFound(w, r)
	})
}

// canonical returns r with its path in the spelling the routes are
// registered in, and whether that differs from r's: trailing slashes
// dropped (hubsim has always ignored them), a known ID scope in its
// configured case, and the literal segments of both APIs matched without
// regard to case (the service clients disagree on enrollmentGroups'
// case; IoT services match route literals case-insensitively). Wildcard
// segments (IDs) are left alone.
func (a *HTTPAPI) canonical(r *http.Request) (*http.Request, bool) {
	p := r.URL.EscapedPath()
	if !muxpath.Serves(p) {
		return nil, false
	}
	trimmed := strings.TrimRight(p, "/")
	if trimmed == "" {
		return nil, false
	}
	segs := strings.Split(trimmed[1:], "/")
	fold := func(i int, lit string) {
		if i < len(segs) && strings.EqualFold(segs[i], lit) {
			segs[i] = lit
		}
	}
	switch first := canonicalCollection(segs[0]); {
	case first == segEnrollments || first == segEnrollmentGroups:
		segs[0] = first
		if len(segs) == 2 {
			fold(1, segQuery)
		}
		fold(2, segAttestationMechanism)
	case first == segRegistrations:
		segs[0] = first
		fold(2, segQuery)
	case len(segs) >= 2 && strings.EqualFold(segs[1], segRegistrations):
		sc, ok := a.s.scopeSpelling(segs[0])
		if !ok {
			return nil, false
		}
		segs[0] = sc
		segs[1] = segRegistrations
		fold(3, segRegister)
		fold(3, segOperations)
	default:
		return nil, false
	}
	np := "/" + strings.Join(segs, "/")
	if np == p {
		return nil, false
	}
	u, err := url.Parse(np)
	if err != nil {
		return nil, false
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = u.Path, u.RawPath
	return r2, true
}

// canonicalCollection is the registered spelling of a service collection
// name in any case, or s itself.
func canonicalCollection(s string) string {
	for _, c := range []string{segEnrollments, segEnrollmentGroups, segRegistrations} {
		if strings.EqualFold(s, c) {
			return c
		}
	}
	return s
}

// isCollection reports whether s names a service collection in any case.
func isCollection(s string) bool {
	for _, c := range []string{segEnrollments, segEnrollmentGroups, segRegistrations} {
		if strings.EqualFold(s, c) {
			return true
		}
	}
	return false
}

// notFound answers what no route serves with DPS's 404. A device path whose
// scope this instance does not have is DPS's ordinary answer to a wrong ID
// scope; anything else is recorded as unhandled.
func (a *HTTPAPI) notFound(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	if len(segs) >= 2 && segs[0] != "" && strings.EqualFold(segs[1], segRegistrations) && !isCollection(segs[0]) {
		if _, known := a.s.scopeSpelling(segs[0]); !known {
			writeReply(w, errReply(http.StatusNotFound, codeNotFound, "unknown ID scope", a.s.now()))
			return
		}
	}
	a.s.recordUnhandled(r.Method + " " + r.URL.Path)
	writeReply(w, errReply(http.StatusNotFound, codeNotFound, "no such DPS route", a.s.now()))
}

// scopeSpelling is the configured spelling of an ID scope given in any case.
func (s *Service) scopeSpelling(scope string) (string, bool) {
	for _, sc := range s.cfg.IDScopes {
		if strings.EqualFold(sc, scope) {
			return sc, true
		}
	}
	return "", false
}
