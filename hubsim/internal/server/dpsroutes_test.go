package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/dps"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

const (
	dpsTestScope   = "0ne00000001"
	dpsTestHost    = "dps.example.net"
	dpsTestHub     = "hub1.example.net"
	dpsTestEnrKey  = "ZGV2MS1rZXktZGV2MS1rZXktZGV2MS1rZXktMTIzNDU2Nzg5MA=="
	dpsTestGroup   = "Z3JvdXAta2V5LWdyb3VwLWtleS1ncm91cC1rZXktMTIzNDU2Nzg5MA=="
	dpsTestPolKey  = "cG9saWN5LWtleS1wb2xpY3kta2V5LXBvbGljeS1rZXktMTIzNDU2"
	dpsTestOwnerNm = "provisioningserviceowner"
)

// signToken is a SAS token over resource (not URL-encoded) signed with keyB64.
func signToken(t *testing.T, resource, keyB64, keyName string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil {
		t.Fatal(err)
	}
	se := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	m := hmac.New(sha256.New, k)
	m.Write([]byte(resource + "\n" + se))
	tok := "SharedAccessSignature sr=" + resource + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil))) + "&se=" + se
	if keyName != "" {
		tok += "&skn=" + keyName
	}
	return tok
}

// dpsRouter is hubsim's router with a real hub set, DPS and admin API on
// the one mux. DPS has an owner policy and one policy per right, named
// after the right it holds.
func dpsRouter(t *testing.T) (*router, *dps.Service, *[]string) {
	t.Helper()
	set, err := hub.NewSet(hub.Config{Hubs: []hub.HubConfig{{HostName: dpsTestHub}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	pols := []sas.Policy{{Name: dpsTestOwnerNm, PrimaryKey: dpsTestPolKey, Rights: []string{dps.RightServiceConfig,
		dps.RightEnrollmentRead, dps.RightEnrollmentWrite, dps.RightRegistrationStatusRead, dps.RightRegistrationStatusWrite}}}
	for _, r := range serviceRights {
		pols = append(pols, sas.Policy{Name: r, PrimaryKey: dpsTestPolKey, Rights: []string{r}})
	}
	svc, err := dps.New(dps.Config{IDScopes: []string{dpsTestScope}, ServiceHost: dpsTestHost, Policies: pols, Hubs: set,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	api, err := admin.New(admin.Config{Auth: &admin.Authorizer{Token: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	var rec []string
	rt, err := newRouterFor(Components{Hub: set, DPS: svc.HTTP(), Admin: api, Relay: named("relay")}, time.Now,
		func(m, p string) { rec = append(rec, m+" "+p) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutEnrollment(dps.IndividualEnrollment{RegistrationID: "dev1", Attestation: &dps.AttestationMechanism{
		Type: dps.AttestationSymmetricKey, SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: dpsTestEnrKey}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutEnrollmentGroup(dps.EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &dps.AttestationMechanism{
		Type: dps.AttestationSymmetricKey, SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: dpsTestGroup}}}); err != nil {
		t.Fatal(err)
	}
	return rt, svc, &rec
}

// serviceRights are DPS's service API rights, one test policy each.
var serviceRights = []string{dps.RightEnrollmentRead, dps.RightEnrollmentWrite, dps.RightRegistrationStatusRead, dps.RightRegistrationStatusWrite}

type dpsResult struct {
	code int
	hdr  http.Header
	body string
}

func serveDPS(rt *router, method, target, auth, body string) dpsResult {
	return serveAt(rt, dpsTestHost, method, target, auth, body)
}

// serveAt sends one request for host through the router, as the DPS and hub
// route tests do.
func serveAt(rt *router, host, method, target, auth, body string) dpsResult {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = host
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, r)
	return dpsResult{w.Code, w.Header(), w.Body.String()}
}

// TestDPSRoutes pins every DPS route with the right it requires, and proves
// each one is a pattern of the one mux that its sample request resolves to,
// that every credential without the route's right is refused with 401 and
// DPS's error shape (as Azure answers), and that the right one reaches the
// route's handler.
func TestDPSRoutes(t *testing.T) {
	const (
		devReg   = dps.RightDeviceRegistration
		enrRead  = dps.RightEnrollmentRead
		enrWrite = dps.RightEnrollmentWrite
		regRead  = dps.RightRegistrationStatusRead
		regWrite = dps.RightRegistrationStatusWrite
	)
	enrollment2 := `{"registrationId":"dev2","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + dpsTestEnrKey + `"}}}`
	group2 := `{"enrollmentGroupId":"fleet2","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + dpsTestGroup + `"}}}`
	// In the order dps.HTTPAPI.Routes lists them; each sample runs once
	// with the right credential, so later rows see earlier rows' effects.
	routes := []struct {
		pattern, right string
		path, body     string // sample request ("{op}" is the operation registered above)
		want           int    // status with the right credential
	}{
		{"PUT /0ne00000001/registrations/{id}/register", devReg, "/0ne00000001/registrations/dev1/register?api-version=2021-06-01", `{"registrationId":"dev1"}`, 202},
		{"GET /0ne00000001/registrations/{id}/operations/{op}", devReg, "/0ne00000001/registrations/dev1/operations/{op}?api-version=2021-06-01", "", 200},
		{"POST /0ne00000001/registrations/{id}", devReg, "/0ne00000001/registrations/dev1?api-version=2021-06-01", `{"registrationId":"dev1"}`, 200},
		{"POST /enrollments", enrWrite, "/enrollments?api-version=2021-10-01", "", 400},
		{"POST /enrollments/{$}", enrWrite, "/enrollments/?api-version=2021-10-01", "", 400},
		{"POST /enrollments/query", enrRead, "/enrollments/query", `{"query":"*"}`, 200},
		{"GET /enrollments/{id}", enrRead, "/enrollments/dev1", "", 200},
		{"PUT /enrollments/{id}", enrWrite, "/enrollments/dev2", enrollment2, 200},
		{"DELETE /enrollments/{id}", enrWrite, "/enrollments/dev2", "", 204},
		{"POST /enrollments/{id}/attestationmechanism", enrRead, "/enrollments/dev1/attestationmechanism", "", 200},
		{"POST /enrollmentGroups", enrWrite, "/enrollmentGroups", "", 400},
		{"POST /enrollmentGroups/{$}", enrWrite, "/enrollmentGroups/", "", 400},
		{"POST /enrollmentGroups/query", enrRead, "/enrollmentGroups/query", `{"query":"*"}`, 200},
		{"GET /enrollmentGroups/{id}", enrRead, "/enrollmentGroups/fleet", "", 200},
		{"PUT /enrollmentGroups/{id}", enrWrite, "/enrollmentGroups/fleet2", group2, 200},
		{"DELETE /enrollmentGroups/{id}", enrWrite, "/enrollmentGroups/fleet2", "", 204},
		{"POST /enrollmentGroups/{id}/attestationmechanism", enrRead, "/enrollmentGroups/fleet/attestationmechanism", "", 200},
		{"POST /enrollmentgroups/{id}/attestationmechanism", enrRead, "/enrollmentgroups/fleet/attestationmechanism", "", 200},
		{"GET /registrations/{id}", regRead, "/registrations/dev1", "", 200},
		{"DELETE /registrations/{id}", regWrite, "/registrations/dev1", "", 204},
		{"POST /registrations/{id}/query", regRead, "/registrations/fleet/query", `{"query":"*"}`, 200},
	}
	rt, svc, rec := dpsRouter(t)

	got := svc.HTTP().Routes()
	if len(got) != len(routes) {
		t.Errorf("DPS registers %d routes, the table pins %d: %v", len(got), len(routes), got)
	}
	for i := range min(len(got), len(routes)) {
		if got[i].Pattern != routes[i].pattern || got[i].Right != routes[i].right {
			t.Errorf("route %d = %q needs %s, pinned %q needs %s", i, got[i].Pattern, got[i].Right, routes[i].pattern, routes[i].right)
		}
	}

	deviceTok := signToken(t, dpsTestScope+"/registrations/dev1", dpsTestEnrKey, "registration")
	tokenFor := func(right string) string { return signToken(t, dpsTestHost, dpsTestPolKey, right) }
	owner := signToken(t, dpsTestHost, dpsTestPolKey, dpsTestOwnerNm)
	var op string
	for _, tt := range routes {
		t.Run(tt.pattern, func(t *testing.T) {
			method, _, _ := strings.Cut(tt.pattern, " ")
			target := strings.ReplaceAll(tt.path, "{op}", op)
			if _, pat := rt.mux.Handler(httptest.NewRequest(method, target, nil)); pat != tt.pattern {
				t.Fatalf("%s %s resolves to %q on the one mux", method, target, pat)
			}
			right, wrong := deviceTok, []string{"", owner}
			if tt.right != devReg {
				right, wrong = tokenFor(tt.right), []string{"", deviceTok}
				for _, r := range serviceRights {
					if r != tt.right {
						wrong = append(wrong, tokenFor(r))
					}
				}
			}
			for _, tok := range wrong {
				res := serveDPS(rt, method, target, tok, tt.body)
				var e struct{ ErrorCode int }
				if res.code != http.StatusUnauthorized || res.hdr.Get("x-ms-error-code") != "401002" ||
					json.Unmarshal([]byte(res.body), &e) != nil || e.ErrorCode != 401002 {
					t.Errorf("credential %.40q…: %d %v %s, want 401 with DPS's error shape", tok, res.code, res.hdr, res.body)
				}
			}
			res := serveDPS(rt, method, target, right, tt.body)
			if res.code != tt.want {
				t.Fatalf("with %s: %d %s, want %d", tt.right, res.code, res.body, tt.want)
			}
			if tt.right == devReg && op == "" {
				var st dps.RegistrationOperationStatus
				if err := json.Unmarshal([]byte(res.body), &st); err != nil || st.OperationID == "" {
					t.Fatalf("register answered %s (%v)", res.body, err)
				}
				op = st.OperationID
			}
		})
	}
	if u := svc.Unhandled(); len(u) > 0 || len(*rec) > 0 {
		t.Errorf("unhandled: dps %q, router %q", u, *rec)
	}
}

// TestDPSSpellings sends what no pattern names through the router: the
// spellings DPS accepts reach their route; an unknown ID scope gets DPS's
// 404 without being recorded; unknown routes get DPS's 404 and are
// recorded; nothing is redirected.
func TestDPSSpellings(t *testing.T) {
	rt, svc, rec := dpsRouter(t)
	owner := signToken(t, dpsTestHost, dpsTestPolKey, dpsTestOwnerNm)
	deviceTok := signToken(t, dpsTestScope+"/registrations/dev1", dpsTestEnrKey, "registration")
	tests := []struct {
		method, path, auth string
		want               int
		recorded           bool
		message            string // substring of the body
	}{
		{"GET", "/ENROLLMENTS/dev1", owner, 200, false, `"registrationId":"dev1"`},
		{"GET", "/enrollments/dev1/", owner, 200, false, `"registrationId":"dev1"`},
		{"GET", "/EnrollmentGroups/fleet", owner, 200, false, `"enrollmentGroupId":"fleet"`},
		{"GET", "/enrollmentgroups/fleet", owner, 200, false, `"enrollmentGroupId":"fleet"`},
		{"POST", "/enrollmentGroups/fleet/AttestationMechanism", owner, 200, false, `"type":"symmetricKey"`},
		{"POST", "/Enrollments/Query", owner, 200, false, `"registrationId":"dev1"`},
		{"POST", "/Registrations/fleet/QUERY", owner, 200, false, `[]`},
		{"PUT", "/0NE00000001/registrations/dev1/register", deviceTok, 202, false, `"status":"assigning"`},
		{"POST", "/0ne00000001/Registrations/dev1/", deviceTok, 200, false, `"registrationId":"dev1"`},
		{"PUT", "/0ne99999999/registrations/dev1/register", deviceTok, 404, false, "unknown ID scope"},
		{"PUT", "/enrollments/dev1", "", 401, false, "Unauthorized"},
		{"PATCH", "/enrollments/dev1", owner, 404, true, "no such DPS route"},
		{"GET", "/enrollments", owner, 404, true, "no such DPS route"},
		{"GET", "/enrollments/", owner, 404, true, "no such DPS route"},
		{"DELETE", "/0ne00000001/registrations/dev1/register", deviceTok, 404, true, "no such DPS route"},
		{"GET", "/0ne00000001/registrations/dev1/operations/x/y", deviceTok, 404, true, "no such DPS route"},
		{"GET", "/0ne00000001", deviceTok, 404, true, "no such DPS route"},
		{"GET", "/0ne00000001/registrations/dev1/../../enrollments/dev1", owner, 404, true, "no such DPS route"},
	}
	for _, tt := range tests {
		before := len(svc.Unhandled())
		res := serveDPS(rt, tt.method, tt.path, tt.auth, "")
		if res.code != tt.want || !strings.Contains(res.body, tt.message) {
			t.Errorf("%s %s: %d %s, want %d with %q", tt.method, tt.path, res.code, res.body, tt.want, tt.message)
		}
		if res.code >= 400 && res.hdr.Get("x-ms-error-code") == "" {
			t.Errorf("%s %s: no x-ms-error-code: not DPS's error shape", tt.method, tt.path)
		}
		if recorded := len(svc.Unhandled()) > before; recorded != tt.recorded {
			t.Errorf("%s %s: recorded as unhandled %v, want %v", tt.method, tt.path, recorded, tt.recorded)
		}
	}
	if len(*rec) > 0 {
		t.Errorf("the router recorded DPS paths itself: %q", *rec)
	}
}

// A DPS ID scope that would shadow another component's routes makes the
// router (and so Server.Start) fail with the conflict instead of panicking.
func TestDPSScopeConflict(t *testing.T) {
	set, err := hub.NewSet(hub.Config{Hubs: []hub.HubConfig{{HostName: dpsTestHub}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for _, scope := range []string{"twins", "devices", "hubsim"} {
		svc, err := dps.New(dps.Config{IDScopes: []string{scope}, Hubs: set})
		if err != nil {
			t.Fatal(err)
		}
		api, err := admin.New(admin.Config{Auth: &admin.Authorizer{Token: "t"}})
		if err != nil {
			t.Fatal(err)
		}
		comps := Components{Hub: set, DPS: svc.HTTP(), Admin: api}
		_, err = newRouterFor(comps, time.Now, func(string, string) {}, nil)
		if err == nil || !strings.Contains(err.Error(), "conflict") {
			t.Errorf("scope %q: router built (err %v)", scope, err)
		}
		if scope == "twins" {
			ca, err := pki.Load(pki.Options{Dir: t.TempDir(), Names: []string{"hub-eu.local"}})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Config{Certificate: ca.ServerCertificate()})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(comps); err == nil || !strings.Contains(err.Error(), "conflict") {
				t.Errorf("Start with scope %q: %v, want the conflict", scope, err)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("Close after a refused Start: %v", err)
			}
		}
		_ = svc.Close()
	}
}
