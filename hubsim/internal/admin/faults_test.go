package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/admin"
	"github.com/porthole-iot/porthole/sdk/iothub"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// addFault switches a fault on over REST and returns its id.
func addFault(t *testing.T, sim *hubsimtest.Sim, body string) string {
	t.Helper()
	r := call(t, sim, "POST", "/hubsim/faults", "Bearer "+sim.AdminToken, strings.NewReader(body))
	if r.status != http.StatusCreated {
		t.Fatalf("POST /hubsim/faults %s: %d %s", body, r.status, r.body)
	}
	var f admin.Fault
	if err := json.Unmarshal([]byte(r.body), &f); err != nil || f.ID == "" {
		t.Fatalf("fault answer %s: %v", r.body, err)
	}
	return f.ID
}

// Faults switched on over the admin REST API act on real clients, are
// listed, and stop when deleted.
func TestFaultsOverREST(t *testing.T) {
	sim := hubsimtest.New(t)
	host := sim.HubHostNames[0]
	key := sim.CreateDevice(host, "dev1")
	bearer := "Bearer " + sim.AdminToken
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func() (*iothub.Client, error) {
		return iothub.Dial(ctx, iothub.Config{HostName: host, DeviceID: "dev1", SharedAccessKey: key,
			RootCAs: sim.CAPool, DialContext: sim.DialContext})
	}

	// refuse-connect: the device sees the chosen CONNACK code.
	id := addFault(t, sim, `{"kind":"refuse-connect","hub":"`+host+`","device":"dev1","connackCode":4}`)
	_, err := dial()
	var ce *iothub.ConnectError
	if !errors.As(err, &ce) || ce.ReturnCode != 4 {
		t.Fatalf("connect under refuse-connect: %v", err)
	}
	if r := call(t, sim, "GET", "/hubsim/faults", bearer, nil); !strings.Contains(r.body, `"kind":"refuse-connect"`) {
		t.Errorf("GET /hubsim/faults: %s", r.body)
	}
	if r := call(t, sim, "DELETE", "/hubsim/faults/"+id, bearer, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	c, err := dial()
	if err != nil {
		t.Fatalf("connect after the fault was cleared: %v", err)
	}
	defer c.Close()

	// drop-connection: the live connection goes at once.
	h := sim.Hub(host)
	id = addFault(t, sim, `{"kind":"drop-connection","device":"dev1","after":"1h"}`)
	testwait.True(t, 10*time.Second, "dev1 dropped", func() bool { return !h.Connected("dev1", "") })
	call(t, sim, "DELETE", "/hubsim/faults/"+id, bearer, nil)

	// throttle-rest: 429 with Retry-After for the service API.
	id = addFault(t, sim, `{"kind":"throttle-rest","hub":"`+host+`","retryAfter":"3s"}`)
	svc, err := service.New(service.Config{ConnectionString: sim.HubConnectionString(host), RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.RequestStream(ctx, "dev1", "ssh")
	if err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("stream request under throttle-rest: %v", err)
	}
	call(t, sim, "DELETE", "/hubsim/faults", bearer, nil)
	if r := call(t, sim, "GET", "/hubsim/faults", bearer, nil); strings.TrimSpace(r.body) != "[]" {
		t.Errorf("faults after DELETE /hubsim/faults: %s", r.body)
	}

	// Bad fault documents: 400 naming the problem.
	for body, want := range map[string]string{
		`{"kind":"refuse-connect","connackCode":7}`: "connackCode must be 1…5",
		`{"kind":"stall-stream","side":"both"}`:     "side must be",
		`{"kind":"delay-ack","delay":"soon"}`:       "invalid duration",
		`{"kind":"delay-ack"}`:                      "needs a delay",
		`{"kind":"cut-stream","bytes":1}`:           "unknown field",
	} {
		r := call(t, sim, "POST", "/hubsim/faults", bearer, strings.NewReader(body))
		if r.status != 400 || !strings.Contains(r.body, want) {
			t.Errorf("POST %s: %d %s, want 400 with %q", body, r.status, r.body, want)
		}
	}
}

// drop-connection without a delay: the device connects (it gets its
// CONNACK), then loses the connection.
func TestFaultDropAfterConnack(t *testing.T) {
	sim := hubsimtest.New(t)
	host := sim.HubHostNames[0]
	key := sim.CreateDevice(host, "dev1")
	sim.AddFault(hubsimtest.Fault{Kind: hubsimtest.FaultDropConnection, Device: "dev1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The hub's own counters say what happened: the connection was
	// accepted (the CONNACK went out) and then dropped. Whether the client
	// saw the CONNACK depends on how fast it read it: the drop comes 50 ms
	// later, and on a starved machine the close can overtake the read, so
	// Dial's result is not asserted.
	c, err := iothub.Dial(ctx, iothub.Config{HostName: host, DeviceID: "dev1", SharedAccessKey: key,
		RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err == nil {
		defer c.Close()
	}
	h := sim.Hub(host)
	testwait.For(t, 10*time.Second, "the connection accepted, then dropped", func() (bool, string) {
		n := h.Counters()
		return n.Connects >= 1 && n.Disconnects >= 1, fmt.Sprintf("counters %+v (dial: %v)", n, err)
	})
}
