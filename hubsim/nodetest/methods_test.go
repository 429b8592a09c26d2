package nodetest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

type methodsResult struct {
	Received []struct {
		MethodName string `json:"methodName"`
		Payload    any    `json:"payload"`
	} `json:"received"`
	Attempts       map[string]int `json:"attempts"`
	WithPayload    methodResult   `json:"withPayload"`
	WithoutPayload methodResult   `json:"withoutPayload"`
	DeviceStatus   methodResult   `json:"deviceStatus503"`
	Offline        sdkError       `json:"offline"`
	UnknownDevice  sdkError       `json:"unknownDevice"`
}

// testMethods: azure-iothub Client.invokeDeviceMethod against a device
// answering through azure-iot-device-mqtt, and against offline and
// unknown devices (scenario 2).
func testMethods(t *testing.T, env *nodeEnv, sim *hubsimtest.Sim) {
	const id, offline = "node-methods-1", "node-methods-offline"
	key := sim.CreateDevice(hubA, id)
	sim.CreateDevice(hubA, offline)
	var r methodsResult
	if f := env.run(t, "methods.js", map[string]any{
		"hubConnectionString":    sim.HubConnectionString(hubA),
		"deviceConnectionString": sim.DeviceConnectionString(hubA, id, key),
		"deviceId":               id,
		"offlineDeviceId":        offline,
	}, &r); f != nil {
		t.Fatalf("methods.js failed: %s", f)
	}
	t.Logf("invoke attempts until the device's subscription was in place: %v", r.Attempts)

	check := func(name string, got methodResult, status int, payload string) {
		t.Helper()
		var g, w any
		if err := json.Unmarshal(got.Payload, &g); err != nil {
			t.Errorf("%s: payload %s: %v", name, got.Payload, err)
		}
		_ = json.Unmarshal([]byte(payload), &w)
		if got.Status != status || !reflect.DeepEqual(g, w) {
			t.Errorf("%s: status %d payload %s; want %d %s", name, got.Status, got.Payload, status, payload)
		}
	}
	check("with payload", r.WithPayload, 200, `{"echo":{"delay":3,"note":"soon"},"method":"reboot"}`)
	check("without payload", r.WithoutPayload, 200, `{"echo":null,"method":"reboot"}`)
	check("device answers 503", r.DeviceStatus, 503, `{"echo":"x","method":"fail"}`)

	if len(r.Received) < 3 {
		t.Errorf("device saw %d calls, want at least 3: %+v", len(r.Received), r.Received)
	}
	// Hub error codes by name and number [Azure/azure-iot-sdk-csharp
	// iothub/service/src/Exceptions/IotHubServiceErrorCode.cs].
	if c := r.Offline.errorCode(); r.Offline.UnexpectedSuccess || r.Offline.StatusCode != 404 || (c != "DeviceNotOnline" && c != "404103") {
		t.Errorf("offline device: %+v (error code %q), want 404 DeviceNotOnline (404103)", r.Offline, c)
	}
	if c := r.UnknownDevice.errorCode(); r.UnknownDevice.UnexpectedSuccess || r.UnknownDevice.StatusCode != 404 ||
		r.UnknownDevice.Name != "DeviceNotFoundError" || (c != "DeviceNotFound" && c != "404001") {
		t.Errorf("unknown device: %+v (error code %q), want 404 DeviceNotFound (404001) that the SDK maps to DeviceNotFoundError", r.UnknownDevice, c)
	}
}
