package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest/sdkconfig"
	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type result struct {
	status int
	hdr    http.Header
	body   string
}

func call(t *testing.T, sim *hubsimtest.Sim, method, path, authz string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, "https://"+sim.HubHostNames[0]+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := sim.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

// sasFor signs a service token for resource with the named policy's key.
func sasFor(t *testing.T, resource, key, policy string, expiry time.Time) string {
	t.Helper()
	tok, err := auth.BuildToken(resource, policy, key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func policyKey(t *testing.T, ps []simconfig.Policy, name string) string {
	t.Helper()
	for _, p := range ps {
		if p.Name == name {
			return p.PrimaryKey
		}
	}
	t.Fatalf("no policy %s", name)
	return ""
}

// Every /hubsim endpoint refuses requests without the admin credential
// with 401 in the hub's error shape; the admin token and owner SAS tokens
// of a hub or of the DPS are accepted; /healthz stays open.
func TestAuthorization(t *testing.T) {
	sim := hubsimtest.New(t)
	hubHost := sim.HubHostNames[0]
	hubCfg, _ := sim.Config.Hub(hubHost)
	far := time.Now().Add(time.Hour)
	owner := sasFor(t, hubHost, policyKey(t, hubCfg.Policies, "iothubowner"), "iothubowner", far)
	service := sasFor(t, hubHost, policyKey(t, hubCfg.Policies, "service"), "service", far)
	expired := sasFor(t, hubHost, policyKey(t, hubCfg.Policies, "iothubowner"), "iothubowner", time.Now().Add(-time.Hour))
	otherHub := sasFor(t, "elsewhere.example.net", policyKey(t, hubCfg.Policies, "iothubowner"), "iothubowner", far)
	dpsOwner := sasFor(t, sim.DPSHostName, policyKey(t, sim.Config.DPS.Policies, "provisioningserviceowner"), "provisioningserviceowner", far)

	tests := []struct {
		name, authz string
		want        int
	}{
		{"none", "", 401},
		{"wrong bearer", "Bearer nope", 401},
		{"empty bearer", "Bearer ", 401},
		{"basic", "Basic YWRtaW46YWRtaW4=", 401},
		{"admin token", "Bearer " + sim.AdminToken, 200},
		{"admin token, scheme in lower case", "bearer " + sim.AdminToken, 200},
		{"hub owner SAS", owner, 200},
		{"DPS owner SAS", dpsOwner, 200},
		{"service policy SAS (not an owner)", service, 401},
		{"expired owner SAS", expired, 401},
		{"owner SAS for another resource", otherHub, 401},
	}
	for _, route := range admin.Routes {
		path := strings.NewReplacer("{host}", hubHost, "{id}", "nodev").Replace(route.Pattern)
		for _, tt := range tests {
			if tt.want == 200 && route.Method != "GET" || route.Pattern == "/hubsim/hubs/{host}/events" && tt.want == 200 {
				continue // side effects and endless streams are tested below
			}
			r := call(t, sim, route.Method, path, tt.authz, nil)
			if r.status != tt.want {
				t.Errorf("%s %s with %s: status %d, want %d: %s", route.Method, path, tt.name, r.status, tt.want, r.body)
				continue
			}
			if tt.want == 401 {
				var e struct{ Message string }
				if err := json.Unmarshal([]byte(r.body), &e); err != nil || !strings.HasPrefix(e.Message, "ErrorCode:IotHubUnauthorizedAccess;") ||
					r.hdr.Get("iothub-errorcode") != "IotHubUnauthorizedAccess" {
					t.Errorf("%s %s with %s: 401 body %q header %v", route.Method, path, tt.name, r.body, r.hdr)
				}
				if strings.Contains(r.body, sim.AdminToken) {
					t.Errorf("401 body echoes the admin token")
				}
			}
		}
	}
	// Unknown admin paths: 401 first, then 404.
	if r := call(t, sim, "GET", "/hubsim/nothing", "", nil); r.status != 401 {
		t.Errorf("unknown path without credential: %d", r.status)
	}
	if r := call(t, sim, "GET", "/hubsim/nothing", "Bearer "+sim.AdminToken, nil); r.status != 404 {
		t.Errorf("unknown path with credential: %d", r.status)
	}
	if r := call(t, sim, "GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("/healthz: %d", r.status)
	}
}

func TestStatusFileHoldsToken(t *testing.T) {
	sim := hubsimtest.New(t)
	if len(sim.AdminToken) < 40 || sim.Status.AdminToken != sim.AdminToken {
		t.Fatalf("admin token %q, status %q", sim.AdminToken, sim.Status.AdminToken)
	}
	other := hubsimtest.New(t)
	if other.AdminToken == sim.AdminToken {
		t.Error("two sims share an admin token")
	}
}

func TestEndpoints(t *testing.T) {
	sim := hubsimtest.New(t)
	host := sim.HubHostNames[0]
	h := sim.Hub(host)
	if _, err := h.CreateDevice(context.Background(), hubsimtest.HubDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + sim.AdminToken
	tests := []struct {
		method, path, body string
		want               int
		wantBody           string
	}{
		{"GET", "/hubsim/hubs", "", 200, `"hostName":"` + host + `","devices":1,"connected":0`},
		{"GET", "/hubsim/hubs/" + host + "/devicestream", "", 200, `"streamingEndpoints":["https://`},
		{"GET", "/hubsim/hubs/nope.example/devicestream", "", 404, "IotHubNotFound"},
		{"POST", "/hubsim/hubs/" + host + "/devices/dev1/messages?k=v", "hi", 204, ""},
		{"POST", "/hubsim/hubs/" + host + "/devices/ghost/messages", "hi", 404, "DeviceNotFound"},
		{"POST", "/hubsim/hubs/" + host + "/devices/dev1/disconnect", "", 404, "DeviceNotOnline"},
		{"GET", "/hubsim/dps/stats", "", 200, `"Requests":0`},
		{"GET", "/hubsim/unhandled", "", 200, `{"requests":[],"hubs":[],"dps":[]}`},
		{"GET", "/hubsim/faults", "", 200, `[]`},
		{"POST", "/hubsim/faults", `{"kind":"no-such-fault"}`, 400, "unknown fault kind"},
		{"DELETE", "/hubsim/faults/99", "", 404, "no active fault"},
		{"DELETE", "/hubsim/faults", "", 204, ""},
		{"GET", "/hubsim/hubs/" + host + "/events?buffer=0", "", 400, "ArgumentInvalid"},
	}
	for _, tt := range tests {
		r := call(t, sim, tt.method, tt.path, bearer, strings.NewReader(tt.body))
		if r.status != tt.want || !strings.Contains(r.body, tt.wantBody) {
			t.Errorf("%s %s: %d %s, want %d containing %s", tt.method, tt.path, r.status, r.body, tt.want, tt.wantBody)
		}
	}
	if n, err := h.PurgeC2D(context.Background(), "dev1"); err != nil || n != 1 {
		t.Errorf("the admin C2D message was not queued: %d %v", n, err)
	}
}

// The README documents every admin endpoint.
func TestRoutesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range admin.Routes {
		row := "| `" + r.Method + "` | `" + r.Pattern + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md has no row starting %s", row)
		}
	}
}

// GET /hubsim/unhandled reports what the router, the hubs and DPS did not
// serve.
func TestUnhandledReport(t *testing.T) {
	sim := hubsimtest.New(t, hubsimtest.AllowUnhandled())
	call(t, sim, "GET", "/nowhere", "", nil)
	call(t, sim, "GET", "/devices/dev1/nothing/here", "", nil)
	call(t, sim, "GET", "/"+sim.IDScope+"/registrations/dev1/unknown", "", nil)
	r := call(t, sim, "GET", "/hubsim/unhandled", "Bearer "+sim.AdminToken, nil)
	var rep struct {
		Requests []string
		Hubs     []struct{ What, Detail string }
		DPS      []string
	}
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	if len(rep.Requests) != 1 || rep.Requests[0] != "GET /nowhere" ||
		len(rep.Hubs) != 1 || !strings.Contains(rep.Hubs[0].Detail, "/devices/dev1/nothing/here") ||
		len(rep.DPS) != 1 || !strings.Contains(rep.DPS[0], "/registrations/dev1/unknown") {
		t.Errorf("unhandled report %s", r.body)
	}
}

// GET /hubsim/hubs/{host}/streams lists the live streams with the policy
// (skn) of the service request that asked for each.
func TestStreamsNameRequestingPolicy(t *testing.T) {
	sim := hubsimtest.New(t)
	host := sim.HubHostNames[0]
	key := sim.CreateDevice(host, "dev1")
	bearer := "Bearer " + sim.AdminToken
	if r := call(t, sim, "GET", "/hubsim/hubs/"+host+"/streams", bearer, nil); r.status != 200 || r.body != "[]\n" {
		t.Fatalf("no stream yet: %d %q", r.status, r.body)
	}
	if r := call(t, sim, "GET", "/hubsim/hubs/nope.example/streams", bearer, nil); r.status != 404 || !strings.Contains(r.body, "IotHubNotFound") {
		t.Errorf("unknown hub: %d %s", r.status, r.body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The device echoes: the stream stays open until the service closes it.
	dev, err := servicetest.StartDevice(ctx, servicetest.DeviceConfig{HubHost: host, DeviceID: "dev1", Key: key,
		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// The hub's "service" policy (service connect only), not the owner.
	cfg := sdkconfig.Service(sim, host)
	cfg.ConnectionString = sim.HubPolicyConnectionString(host, "service")
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	st, err := svc.OpenStream(ctx, "dev1", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var got []map[string]any
	testwait.For(t, 10*time.Second, "the stream listed as connected", func() (bool, string) {
		r := call(t, sim, "GET", "/hubsim/hubs/"+strings.ToUpper(host)+"/streams", bearer, nil)
		got = nil
		if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil {
			return false, fmt.Sprintf("%d %s", r.status, r.body)
		}
		return len(got) == 1 && got[0]["connected"] != nil, r.body
	})
	s := got[0]
	for k, want := range map[string]any{"deviceId": "dev1", "name": "ssh", "skn": "service"} {
		if s[k] != want {
			t.Errorf("%s = %v, want %v (stream %v)", k, s[k], want, s)
		}
	}
	if id, _ := s["id"].(string); id == "" {
		t.Errorf("stream without an id: %v", s)
	}
	if _, ok := s["moduleId"]; ok {
		t.Errorf("a device stream lists a moduleId: %v", s)
	}
}
