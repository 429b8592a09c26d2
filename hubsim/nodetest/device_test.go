package nodetest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/hubsim/internal/hub"
)

type deviceResult struct {
	InitialDesired      map[string]any `json:"initialDesired"`
	InitialReported     map[string]any `json:"initialReported"`
	ServiceSeesReported map[string]any `json:"serviceSeesReported"`
	DesiredDelta        map[string]any `json:"desiredDelta"`
	DesiredVersion      int            `json:"desiredVersion"`
	TwinDesiredAfter    map[string]any `json:"twinDesiredAfter"`
	C2D                 struct {
		Data            string            `json:"data"`
		MessageID       string            `json:"messageId"`
		CorrelationID   string            `json:"correlationId"`
		ContentType     string            `json:"contentType"`
		ContentEncoding string            `json:"contentEncoding"`
		Properties      map[string]string `json:"properties"`
	} `json:"c2d"`
}

// testDevice: azure-iot-device over Mqtt or MqttWs — twin get, reported
// patch, desired update from azure-iothub, telemetry with properties
// (scenario 3).
func testDevice(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim, transport string) {
	id := "node-device-" + transport
	marker := "m-" + transport + "-" + time.Now().UTC().Format("150405.000")
	key := sim.CreateDevice(hubA, id)
	events, cancel := sim.Hub(hubA).Subscribe(64)
	defer cancel()
	// Queued while the device is offline; delivered once it subscribes.
	if err := sim.Hub(hubA).SendC2D(ctxT(t), id, hub.C2DMessage{
		MessageID: "c2d-" + marker, CorrelationID: "corr-1", ContentType: "text/plain", ContentEncoding: "utf-8",
		Properties: map[string]string{"marker": marker, "with space": "a&b=c/d"}, Body: []byte("hello " + transport),
	}); err != nil {
		t.Fatal(err)
	}

	var r deviceResult
	if f := env.run(t, "device.js", map[string]any{
		"hubConnectionString":    sim.HubConnectionString(hubA),
		"deviceConnectionString": sim.DeviceConnectionString(hubA, id, key),
		"deviceId":               id,
		"transport":              transport,
		"marker":                 marker,
	}, &r); f != nil {
		t.Fatalf("device.js (%s) failed: %s", transport, f)
	}

	if len(r.InitialDesired) != 0 || len(r.InitialReported) != 0 {
		t.Errorf("new device's twin: desired %v reported %v, want both empty", r.InitialDesired, r.InitialReported)
	}
	wantReported := map[string]any{"transport": transport, "fw": map[string]any{"version": "1.2.3"}, "marker": marker}
	if !reflect.DeepEqual(r.ServiceSeesReported, wantReported) {
		t.Errorf("reported properties as azure-iothub reads them: %v, want %v", r.ServiceSeesReported, wantReported)
	}
	wantDesired := map[string]any{"marker": marker, "interval": float64(42)}
	if !reflect.DeepEqual(r.DesiredDelta, wantDesired) || r.DesiredVersion < 2 {
		t.Errorf("desired notification: %v $version %d, want %v with $version ≥ 2", r.DesiredDelta, r.DesiredVersion, wantDesired)
	}
	if !reflect.DeepEqual(r.TwinDesiredAfter, wantDesired) {
		t.Errorf("device twin's desired after the notification: %v, want %v", r.TwinDesiredAfter, wantDesired)
	}

	c := r.C2D
	if c.Data != "hello "+transport || c.MessageID != "c2d-"+marker || c.CorrelationID != "corr-1" ||
		c.ContentType != "text/plain" || c.ContentEncoding != "utf-8" ||
		!reflect.DeepEqual(c.Properties, map[string]string{"marker": marker, "with space": "a&b=c/d"}) {
		t.Errorf("cloud-to-device message as the SDK received it: %+v", c)
	}

	// The hub's Go API sees the reported patch.
	tw, err := sim.Hub(hubA).GetTwin(ctxT(t), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := withoutMeta(tw.Properties.Reported); !reflect.DeepEqual(got, wantReported) {
		t.Errorf("hub twin reported %v, want %v", got, wantReported)
	}

	// The event tap saw the telemetry with its application and system properties.
	ev := waitEvent(t, events, func(ev hub.Event) bool { return ev.DeviceID == id && ev.Properties["marker"] == marker })
	var body map[string]any
	if err := json.Unmarshal(ev.Body, &body); err != nil || body["transport"] != transport || body["temp"] != 21.5 {
		t.Errorf("event body %q (%v)", ev.Body, err)
	}
	if ev.Properties["kind"] != "telemetry" {
		t.Errorf("event properties %v, want kind=telemetry", ev.Properties)
	}
	for k, want := range map[string]string{"$.mid": "msg-" + marker, "$.ct": "application/json", "$.ce": "utf-8"} {
		if ev.System[k] != want {
			t.Errorf("event system property %s = %q, want %q (all: %v)", k, ev.System[k], want, ev.System)
		}
	}
}

// waitEvent returns the first event match accepts, failing the test after waitTimeout.
func waitEvent(t *testing.T, events <-chan hub.Event, match func(hub.Event) bool) hub.Event {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event tap closed")
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatal("no matching event on the hub's tap")
		}
	}
}

func withoutMeta(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if len(k) > 0 && k[0] != '$' {
			out[k] = v
		}
	}
	return out
}
