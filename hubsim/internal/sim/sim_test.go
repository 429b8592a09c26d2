package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/auth"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, sim *hubsimtest.Sim, url string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+sim.AdminToken)
	resp, err := sim.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

// TestDeviceStreamShow: the admin endpoint answers like
// `az iot hub devicestream show` for every hub, and 404 for an unknown one.
func TestDeviceStreamShow(t *testing.T) {
	sim := hubsimtest.New(t)
	for _, h := range sim.HubHostNames {
		var got struct {
			StreamingEndpoints []string `json:"streamingEndpoints"`
		}
		if code := get(t, sim, "https://"+h+"/hubsim/hubs/"+h+"/devicestream", &got); code != 200 {
			t.Fatalf("%s: status %d", h, code)
		}
		if len(got.StreamingEndpoints) == 0 || !strings.Contains(got.StreamingEndpoints[0], h) {
			t.Errorf("%s: streamingEndpoints = %v", h, got.StreamingEndpoints)
		}
	}
	if code := get(t, sim, "https://"+sim.HubHostNames[0]+"/hubsim/hubs/nope.local/devicestream", nil); code != 404 {
		t.Errorf("unknown hub: status %d, want 404", code)
	}
}

// TestRegisterCreatesDeviceOnAssignedHub drives the assembled DPS over HTTPS
// with a token from sdk/auth and checks that the device identity appears on
// the hub DPS assigned, with the enrollment's key.
func TestRegisterCreatesDeviceOnAssignedHub(t *testing.T) {
	sim := hubsimtest.New(t)
	key := sim.EnrollSymmetricKey("dev-1", nil)
	tok, err := auth.DPSToken(sim.IDScope, "dev-1", key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + sim.GlobalEndpoint + "/" + sim.IDScope + "/registrations/dev-1"
	do := func(method, url, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := sim.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: status %d, %v", method, url, resp.StatusCode, err)
		}
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: status %d: %v", method, url, resp.StatusCode, out)
		}
		return out
	}
	op := do(http.MethodPut, base+"/register?api-version=2021-06-01", `{"registrationId":"dev-1"}`)
	opID, _ := op["operationId"].(string)
	var state map[string]any
	testwait.For(t, testwait.Default, "the registration to reach assigned", func() (bool, string) {
		st := do(http.MethodGet, fmt.Sprintf("%s/operations/%s?api-version=2021-06-01", base, opID), "")
		if st["status"] != "assigned" {
			return false, fmt.Sprintf("%v", st)
		}
		state, _ = st["registrationState"].(map[string]any)
		return true, ""
	})
	if state == nil {
		t.Fatal("assigned registration without a registrationState")
	}
	hubHost, _ := state["assignedHub"].(string)
	dev, err := sim.Hub(hubHost).GetDevice(context.Background(), "dev-1")
	if err != nil {
		t.Fatalf("device not created on assigned hub %s: %v", hubHost, err)
	}
	if dev.Authentication == nil || dev.Authentication.SymmetricKey == nil || dev.Authentication.SymmetricKey.PrimaryKey != key {
		t.Errorf("device on hub does not carry the enrollment key: %+v", dev.Authentication)
	}
	lookup := do(http.MethodPost, base+"?api-version=2021-06-01", `{"registrationId":"dev-1"}`)
	if lookup["assignedHub"] != hubHost || lookup["status"] != "assigned" {
		t.Errorf("lookup = %v, want assigned to %s", lookup, hubHost)
	}
}

// TestCASignedDeviceConnects: a device whose certificate the sim's CA
// issued connects with "certificateAuthority" authentication and no
// further hub configuration, as hubsimtest.Sim.ClientCertificate promises.
func TestCASignedDeviceConnects(t *testing.T) {
	sim := hubsimtest.New(t)
	hubHost := sim.HubHostNames[0]
	h := sim.Hub(hubHost)
	if _, err := h.CreateDevice(context.Background(), hubsimtest.HubDevice{
		DeviceID:       "ca-dev",
		Authentication: &hubsimtest.HubAuthentication{Type: "certificateAuthority"},
	}); err != nil {
		t.Fatal(err)
	}
	cert := sim.ClientCertificate("ca-dev")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := iothub.Dial(ctx, iothub.Config{
		HostName:    hubHost,
		DeviceID:    "ca-dev",
		Certificate: &cert,
		RootCAs:     sim.CAPool,
		DialContext: sim.DialContext,
	})
	if err != nil {
		t.Fatalf("CA-signed device refused: %v", err)
	}
	defer c.Close()
	if !h.Connected("ca-dev", "") {
		t.Error("hub does not report the device connected")
	}
}
