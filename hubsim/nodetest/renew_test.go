package nodetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
)

type renewResult struct {
	Renewals int      `json:"renewals"`
	Errors   []string `json:"errors"`
	Calls    []string `json:"calls"`
	Method   struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	} `json:"method"`
}

// testRenew: the device SDK renews its SAS token by reconnecting with clean
// session 0 and without subscribing again; twin, desired updates, methods
// and telemetry must keep working afterwards.
// This is what made hubsim keep a clean-session-0 client's subscriptions and
// answer session present 1, as IoT Hub does
// (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-hub.md;
// CONNACK logs in Azure/azure-iot-sdk-c issues #902 and #2511).
func testRenew(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim, transport string) {
	id := "node-renew-" + transport
	marker := "r-" + transport + "-" + time.Now().UTC().Format("150405.000")
	key := sim.CreateDevice(hubA, id)
	events, cancel := sim.Hub(hubA).Subscribe(64)
	defer cancel()
	var r renewResult
	if f := env.run(t, "renew.js", map[string]any{
		"hubConnectionString":    sim.HubConnectionString(hubA),
		"deviceConnectionString": sim.DeviceConnectionString(hubA, id, key),
		"deviceId":               id,
		"transport":              transport,
		"marker":                 marker,
		// A token lives 4 s and is renewed 2 s before it expires: a renewal
		// every ~2 s (the SDK's arithmetic, not a timing assertion here).
		"tokenValidSeconds":    4,
		"renewalMarginSeconds": 2,
		"renewals":             2,
	}, &r); f != nil {
		t.Fatalf("renew.js failed: %s\n(after a token renewal the SDK relies on the hub keeping its clean-session-0 subscriptions; see the comment on testRenew)", f)
	}
	if r.Renewals < 2 {
		t.Errorf("renewals %d, want ≥ 2", r.Renewals)
	}
	if r.Method.Status != 200 || string(r.Method.Payload) != `{"pong":"`+marker+`"}` {
		t.Errorf("method after renewals: %d %s", r.Method.Status, r.Method.Payload)
	}
	if len(r.Errors) > 0 {
		t.Errorf("device client errors: %v", r.Errors)
	}
	tw, err := sim.Hub(hubA).GetTwin(ctxT(t), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Properties.Reported["renewedAfter"] != marker {
		t.Errorf("reported after renewals: %v", tw.Properties.Reported)
	}
	waitEvent(t, events, func(ev hub.Event) bool { return ev.DeviceID == id && ev.Properties["marker"] == marker })
}
