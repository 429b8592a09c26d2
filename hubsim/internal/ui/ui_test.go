package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see each answer.
type browser struct {
	t    testing.TB
	sim  *hubsimtest.Sim
	c    *http.Client
	base string
}

func newBrowser(t testing.TB, s *hubsimtest.Sim) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := s.HTTPClient().Transport
	return &browser{t: t, sim: s, base: "https://" + s.HubHostNames[0], c: &http.Client{Transport: tr, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(text)
}

func (b *browser) login(credential string) *http.Response {
	b.t.Helper()
	resp, _ := b.do("POST", "/hubsim/ui/login", url.Values{"credential": {credential}, "next": {"/hubsim/ui/faults"}}, nil)
	return resp
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	b.t.Helper()
	_, page := b.do("GET", "/hubsim/ui/faults", nil, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token on the faults page:\n%s", page)
	}
	return m[1]
}

var pages = []string{"/hubsim/ui/", "/hubsim/ui/devices", "/hubsim/ui/dps", "/hubsim/ui/streams", "/hubsim/ui/events", "/hubsim/ui/faults"}

func TestPagesNeedLogin(t *testing.T) {
	s := hubsimtest.New(t)
	b := newBrowser(t, s)
	for _, p := range append(pages, "/hubsim/ui/live", "/hubsim/ui/nothing") {
		resp, _ := b.do("GET", p, nil, nil)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/hubsim/ui/login?next=") {
			t.Errorf("GET %s without a session: %d %q, want 303 to the login form", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, _ := b.do("POST", "/hubsim/ui/faults", url.Values{"kind": {"reject-stream"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST faults without a session: %d, want 401", resp.StatusCode)
	}
	if got := len(s.Faults()); got != 0 {
		t.Errorf("%d faults on after an unauthenticated POST", got)
	}
	resp, page := b.do("GET", "/hubsim/ui/login", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="credential"`) {
		t.Errorf("login form: %d\n%s", resp.StatusCode, page)
	}
}

// policySAS signs a SAS for the first hub with one of its policies.
func policySAS(t *testing.T, s *hubsimtest.Sim, policy string, expiry time.Time) string {
	t.Helper()
	for _, p := range s.Config.Hubs[0].Policies {
		if p.Name == policy {
			tok, err := auth.PolicyToken(s.HubHostNames[0], p.Name, p.PrimaryKey, expiry)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
	}
	t.Fatalf("no policy %s", policy)
	return ""
}

func TestLogin(t *testing.T) {
	s := hubsimtest.New(t)
	tests := []struct {
		name       string
		credential string
		wantStatus int
	}{
		{"admin token", s.AdminToken, http.StatusSeeOther},
		{"wrong token", s.AdminToken + "x", http.StatusUnauthorized},
		{"empty", "", http.StatusUnauthorized},
		{"hub connection string is not a SAS", s.HubConnectionString(s.HubHostNames[0]), http.StatusUnauthorized},
		{"owner SAS", policySAS(t, s, "iothubowner", time.Now().Add(time.Hour)), http.StatusSeeOther},
		{"expired owner SAS", policySAS(t, s, "iothubowner", time.Now().Add(-time.Minute)), http.StatusUnauthorized},
		{"service policy SAS is not an owner", policySAS(t, s, "service", time.Now().Add(time.Hour)), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, s)
			resp := b.login(tt.credential)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("login: %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			cookies := resp.Cookies()
			if tt.wantStatus != http.StatusSeeOther {
				if len(cookies) != 0 {
					t.Errorf("a refused login set cookies: %v", cookies)
				}
				return
			}
			if resp.Header.Get("Location") != "/hubsim/ui/faults" {
				t.Errorf("login redirects to %q, want the next page", resp.Header.Get("Location"))
			}
			if len(cookies) != 1 {
				t.Fatalf("login set %d cookies, want 1", len(cookies))
			}
			c := cookies[0]
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Value == tt.credential || strings.Contains(c.Value, s.AdminToken) {
				t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict and no credential in it", c)
			}
			for _, p := range pages {
				resp, page := b.do("GET", p, nil, nil)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s after login: %d\n%s", p, resp.StatusCode, page)
				}
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("GET %s: CSP %q", p, csp)
				}
			}
			resp, _ = b.do("POST", "/hubsim/ui/logout", url.Values{"csrf": {b.csrf()}}, nil)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("logout: %d", resp.StatusCode)
			}
			resp, _ = b.do("GET", "/hubsim/ui/", nil, nil)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("overview after logout: %d, want 303 to login", resp.StatusCode)
			}
		})
	}
}

func TestLoginRedirectStaysOnDashboard(t *testing.T) {
	s := hubsimtest.New(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/hubsim/ui/..//evil", "/metrics"} {
		b := newBrowser(t, s)
		resp, _ := b.do("POST", "/hubsim/ui/login", url.Values{"credential": {s.AdminToken}, "next": {next}}, nil)
		if got := resp.Header.Get("Location"); got != "/hubsim/ui/" {
			t.Errorf("next=%q: redirect to %q, want /hubsim/ui/", next, got)
		}
	}
}

func TestCSRF(t *testing.T) {
	s := hubsimtest.New(t)
	b := newBrowser(t, s)
	b.login(s.AdminToken)
	token := b.csrf()
	fault := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "kind": {"reject-stream"}, "device": {"dev1"}}
	}
	tests := []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		status int
		faults int
	}{
		{"no token", fault(""), nil, http.StatusForbidden, 0},
		{"wrong token", fault(token + "x"), nil, http.StatusForbidden, 0},
		{"other origin", fault(token), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, 0},
		{"token, same origin", fault(token), map[string]string{"Origin": b.base}, http.StatusSeeOther, 1},
		{"token, no origin header", fault(token), nil, http.StatusSeeOther, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.do("POST", "/hubsim/ui/faults", tt.form, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := len(s.Faults()); got != tt.faults {
				t.Errorf("%d faults on, want %d", got, tt.faults)
			}
		})
	}
}

func TestFaultsFromForm(t *testing.T) {
	s := hubsimtest.New(t)
	b := newBrowser(t, s)
	b.login(s.AdminToken)
	tok := b.csrf()
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string // fault as %+v fragment
	}{
		{"refuse-connect", url.Values{"kind": {"refuse-connect"}, "device": {"d1"}, "connackCode": {"3"}}, http.StatusSeeOther, "ConnackCode:3"},
		{"drop-connection", url.Values{"kind": {"drop-connection"}, "after": {"2s"}}, http.StatusSeeOther, "After:2000000000"},
		{"cut-stream", url.Values{"kind": {"cut-stream"}, "afterBytes": {"100"}}, http.StatusSeeOther, "AfterBytes:100"},
		{"bad code", url.Values{"kind": {"refuse-connect"}, "connackCode": {"9"}}, http.StatusBadRequest, ""},
		{"bad number", url.Values{"kind": {"cut-stream"}, "afterBytes": {"ten"}}, http.StatusBadRequest, ""},
		{"bad duration", url.Values{"kind": {"delay-ack"}, "delay": {"soon"}}, http.StatusBadRequest, ""},
		{"unknown kind", url.Values{"kind": {"explode"}}, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Faults())
			tt.form.Set("csrf", tok)
			resp, body := b.do("POST", "/hubsim/ui/faults", tt.form, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			fs := s.Faults()
			if tt.want == "" {
				if len(fs) != before {
					t.Errorf("a refused form switched a fault on: %+v", fs)
				}
				return
			}
			if len(fs) != before+1 || !strings.Contains(fmt.Sprintf("%+v", fs[len(fs)-1]), tt.want) {
				t.Errorf("faults %+v, want a new one with %s", fs, tt.want)
			}
			_, page := b.do("GET", "/hubsim/ui/faults", nil, nil)
			if !strings.Contains(page, fs[len(fs)-1].ID) {
				t.Errorf("faults page does not list %s", fs[len(fs)-1].ID)
			}
		})
	}
	resp, _ := b.do("POST", "/hubsim/ui/faults/clear", url.Values{"csrf": {tok}}, nil)
	if resp.StatusCode != http.StatusSeeOther || len(s.Faults()) != 0 {
		t.Errorf("clear all: %d, %d faults left", resp.StatusCode, len(s.Faults()))
	}
}

// BenchmarkPages measures each page on loopback with 1,000 devices on the
// hub (the goal is under 200 ms a page).
func BenchmarkPages(b *testing.B) {
	s := hubsimtest.New(b)
	host := s.HubHostNames[0]
	for i := range 1000 {
		s.CreateDevice(host, fmt.Sprintf("bench-%04d", i))
	}
	br := newBrowser(b, s)
	br.login(s.AdminToken)
	query := "/hubsim/ui/devices?" + url.Values{"q": {"SELECT * FROM devices WHERE deviceId >= 'bench-0900'"}}.Encode()
	for _, p := range append(pages, "/hubsim/ui/devices?q=bench-09", query, "/hubsim/ui/devices/"+host+"/bench-0500") {
		name := strings.TrimPrefix(p, "/hubsim/ui/")
		switch {
		case name == "":
			name = "overview"
		case p == query:
			name = "devices?q=SELECT…(100 twins)"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				resp, _ := br.do("GET", p, nil, nil)
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", p, resp.StatusCode)
				}
			}
		})
	}
}

func TestDeviceSearch(t *testing.T) {
	s := hubsimtest.New(t)
	host := s.HubHostNames[0]
	for i := range 5 {
		s.CreateDevice(host, fmt.Sprintf("dev-%02d", i))
	}
	s.CreateDevice(host, "pump-1")
	b := newBrowser(t, s)
	b.login(s.AdminToken)
	tests := []struct {
		name     string
		q        string
		want     []string // device links expected
		wantNot  []string
		wantText string
	}{
		{"all", "", []string{"dev-00", "dev-04", "pump-1"}, nil, "6 devices match"},
		{"id fragment", "pump", []string{"pump-1"}, []string{"dev-00"}, "1 devices match"},
		{"query", "SELECT * FROM devices WHERE deviceId = 'dev-02'", []string{"dev-02"}, []string{"dev-01", "pump-1"}, ""},
		{"projection with ids", "SELECT deviceId FROM devices WHERE STARTSWITH(deviceId, 'dev-0')", []string{"dev-00", "dev-04"}, []string{"pump-1"}, ""},
		{"aggregate", "SELECT COUNT() AS n FROM devices", nil, []string{"dev-00"}, `{&#34;n&#34;:6}`},
		{"bad query", "SELECT * FROM nowhere", nil, []string{"dev-00"}, "query: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, page := b.do("GET", "/hubsim/ui/devices?"+url.Values{"hub": {host}, "q": {tt.q}}.Encode(), nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for _, id := range tt.want {
				if !strings.Contains(page, "/"+id+`"`) {
					t.Errorf("no link to %s", id)
				}
			}
			for _, id := range tt.wantNot {
				if strings.Contains(page, "/"+id+`"`) {
					t.Errorf("link to %s, which does not match", id)
				}
			}
			if !strings.Contains(page, tt.wantText) {
				t.Errorf("page lacks %q", tt.wantText)
			}
		})
	}
}

func TestDPSPage(t *testing.T) {
	s := hubsimtest.New(t)
	s.EnrollSymmetricKey("reg-a", func(e *hubsimtest.IndividualEnrollment) {
		// A policy that keeps the device on its hub, set as the service API would.
		if err := json.Unmarshal([]byte(`{"reprovisionPolicy":{"updateHubAssignment":false}}`), e); err != nil {
			t.Fatal(err)
		}
	})
	s.EnrollGroupSymmetricKey("group-b", nil)
	b := newBrowser(t, s)
	b.login(s.AdminToken)
	resp, page := b.do("GET", "/hubsim/ui/dps", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"reg-a", "group-b", "stay on the current hub", "move to the new hub, migrate twin"} {
		if !strings.Contains(page, want) {
			t.Errorf("DPS page lacks %q", want)
		}
	}
	if strings.Contains(page, "symmetricKey") || strings.Contains(page, "primaryKey") {
		t.Errorf("DPS page shows attestation keys")
	}
}

// The credential is checked on every request: a session on an owner SAS
// ends when the SAS expires.
func TestSessionEndsWithItsSAS(t *testing.T) {
	s := hubsimtest.New(t)
	b := newBrowser(t, s)
	if resp := b.login(policySAS(t, s, "iothubowner", time.Now().Add(2*time.Second))); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/hubsim/ui/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("overview with a fresh SAS: %d", resp.StatusCode)
	}
	testwait.For(t, 10*time.Second, "the session ends with the SAS", func() (bool, string) {
		resp, _ := b.do("GET", "/hubsim/ui/", nil, nil)
		return resp.StatusCode == http.StatusSeeOther, resp.Status
	})
}

// The login form and the state-changing forms read their bodies alike:
// a cross-origin post is refused (403) and an oversized form too (400),
// before anything is done with it.
func TestFormsRefusedAlike(t *testing.T) {
	s := hubsimtest.New(t)
	b := newBrowser(t, s)
	b.login(s.AdminToken)
	token := b.csrf()
	big := strings.Repeat("x", 64<<10) // the dashboard reads forms of at most 64 KiB
	for _, tc := range []struct {
		name, path string
		form       url.Values
		hdr        map[string]string
		status     int
	}{
		{"login, other origin", "/hubsim/ui/login", url.Values{"credential": {s.AdminToken}},
			map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"login, oversized", "/hubsim/ui/login", url.Values{"credential": {s.AdminToken}, "pad": {big}}, nil, http.StatusBadRequest},
		{"fault, other origin", "/hubsim/ui/faults", url.Values{"csrf": {token}, "kind": {"reject-stream"}},
			map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"fault, oversized", "/hubsim/ui/faults", url.Values{"csrf": {token}, "kind": {"reject-stream"}, "pad": {big}}, nil, http.StatusBadRequest},
	} {
		resp, body := b.do("POST", tc.path, tc.form, tc.hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %.200s", tc.name, resp.StatusCode, tc.status, body)
		}
	}
	if n := len(s.Faults()); n != 0 {
		t.Errorf("%d faults on after refused forms", n)
	}
}
