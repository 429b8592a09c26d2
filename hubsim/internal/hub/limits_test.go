package hub

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// Each size limit is Azure's documented figure (KB = 1024 bytes).
func TestSizeLimitConstants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		got    int
		want   int
		source string
	}{
		{"device-to-cloud message", MaxD2CMessageBytes, 262144, "iot-hub-devguide-quotas-throttling.md, Other limits: 256 KB"},
		{"cloud-to-device message", MaxC2DMessageBytes, 65536, "same: 64 KB"},
		{"direct method payload", MaxMethodPayloadBytes, 131072, "same: 128 KB"},
		{"twin tags", MaxTagsBytes, 8192, "iot-hub-devguide-device-twins.md, Device twin size: 8 KB"},
		{"twin desired", MaxDesiredBytes, 32768, "same: 32 KB"},
		{"twin reported", MaxReportedBytes, 32768, "same: 32 KB"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d (%s)", tc.name, tc.got, tc.want, tc.source)
		}
	}
	if errMessageTooLarge != (errorCode{413, "MessageTooLarge", 413001}) {
		t.Errorf("MessageTooLarge = %+v (azure-iot-sdk-csharp ErrorCode.cs: 413001)", errMessageTooLarge)
	}
}

// twinSize counts Azure's way: key characters plus value sizes (strings in
// characters without C0/C1 controls, numbers 8, booleans 4, objects the sum
// of their contents), read-only "$" elements excluded.
func TestTwinSize(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want int
	}{
		{`{}`, 0},
		{`{"a":"bc"}`, 3},
		{`{"ab":1}`, 10},
		{`{"ab":1.5e300}`, 10},
		{`{"a":true}`, 5},
		{`{"a":false,"b":"x"}`, 7},
		{`{"a":{"b":"c"}}`, 3},
		{`{"a":{"b":{"c":{}}}}`, 3},
		{`{"é":"ünï"}`, 4},                    // characters, not bytes
		{`{"a":"x\u0001y\u0085z\n"}`, 4},      // C0 and C1 controls do not count
		{`{"a":["x",1,true]}`, 1 + 1 + 8 + 4}, // arrays: the sum of their values
		{`{"a":null}`, 1},
		{`{"a":"b","$version":4,"$metadata":{"$lastUpdated":"2025-01-01T00:00:00Z","a":{"$lastUpdated":"x"}}}`, 2},
	} {
		m, err := decodeObject([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := twinSize(m); got != tc.want {
			t.Errorf("twinSize(%s) = %d, want %d", tc.doc, got, tc.want)
		}
	}
}

// bigProps returns an object whose twinSize is exactly n (n >= 2): one key
// "k" and a string of n-1 characters.
func bigProps(n int) map[string]any { return map[string]any{"k": strings.Repeat("v", n-1)} }

func TestTwinSizeLimits(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	owner := e.rest("hub1.example.net", "iothubowner")
	ctx := context.Background()

	// Tags and desired through the service REST API: at the limit fine,
	// one more character refused with 400 ArgumentInvalid and nothing kept.
	for _, tc := range []struct {
		name  string
		limit int
		body  func(map[string]any) map[string]any
	}{
		{"tags", MaxTagsBytes, func(m map[string]any) map[string]any { return map[string]any{"tags": m} }},
		{"desired", MaxDesiredBytes, func(m map[string]any) map[string]any {
			return map[string]any{"properties": map[string]any{"desired": m}}
		}},
	} {
		if r := owner.do("PATCH", "/twins/dev1", tc.body(bigProps(tc.limit)), nil); r.status != 200 {
			t.Fatalf("%s at the limit: %d %.300s", tc.name, r.status, r.body)
		}
		over := tc.body(map[string]any{"k2": "x"}) // adds 3 to a full section
		wantAzureError(t, owner.do("PATCH", "/twins/dev1", over, nil), 400, "ArgumentInvalid")
		wantAzureError(t, owner.do("PUT", "/twins/dev1", tc.body(bigProps(tc.limit+1)), nil), 400, "ArgumentInvalid")
		tw, _ := h.GetTwin(ctx, "dev1", "")
		b, _ := json.Marshal(tw)
		if strings.Contains(string(b), `"k2"`) {
			t.Errorf("%s: refused patch was applied", tc.name)
		}
	}

	// Reported through MQTT: 204 at the limit, 400 one character over.
	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/twin/res/#")
	full, _ := json.Marshal(bigProps(MaxReportedBytes))
	_ = d.pub("$iothub/twin/PATCH/properties/reported/?$rid=1", string(full))
	if m := d.next(); !strings.HasPrefix(m.topic, "$iothub/twin/res/204/?$rid=1") {
		t.Fatalf("reported at the limit: %s %.200s", m.topic, m.payload)
	}
	_ = d.pub("$iothub/twin/PATCH/properties/reported/?$rid=2", `{"k2":"x"}`)
	if m := d.next(); !strings.HasPrefix(m.topic, "$iothub/twin/res/400/?$rid=2") || !strings.Contains(string(m.payload), "32768") {
		t.Fatalf("reported over the limit: %s %.200s", m.topic, m.payload)
	}
	// Shrinking stays possible.
	_ = d.pub("$iothub/twin/PATCH/properties/reported/?$rid=3", `{"k":"small"}`)
	if m := d.next(); !strings.HasPrefix(m.topic, "$iothub/twin/res/204/?$rid=3") {
		t.Fatalf("shrinking patch: %s %.200s", m.topic, m.payload)
	}
}

func TestMessageSizeLimits(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	ctx := context.Background()

	// C2D: 64 KB body fine, one byte more refused as MessageTooLarge.
	if err := h.SendC2D(ctx, "dev1", C2DMessage{Body: make([]byte, MaxC2DMessageBytes)}); err != nil {
		t.Fatalf("C2D at the limit: %v", err)
	}
	err := h.SendC2D(ctx, "dev1", C2DMessage{Body: make([]byte, MaxC2DMessageBytes+1)})
	if !isErr(err, ErrTooLarge) || restCode(err) != errMessageTooLarge {
		t.Fatalf("C2D over the limit: %v", err)
	}

	// Method payload: 128 KB of JSON fine (the device is offline: 404),
	// one byte more 413 MessageTooLarge before anything else.
	svc := e.rest("hub1.example.net", "service")
	str := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("p", n-2) + `"`) }
	wantAzureError(t, svc.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "m", "payload": str(MaxMethodPayloadBytes)}, nil), 404, "DeviceNotOnline")
	wantAzureError(t, svc.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "m", "payload": str(MaxMethodPayloadBytes + 1)}, nil), 413, "MessageTooLarge")

	// D2C over MQTT: 256 KB accepted; more (body plus properties) ends the
	// connection, as MQTT has no way to refuse one PUBLISH.
	d := e.connectDevice(h, "dev1", key)
	if err := d.pub("devices/dev1/messages/events/", strings.Repeat("t", MaxD2CMessageBytes)); err != nil {
		t.Fatalf("D2C at the limit: %v", err)
	}
	if err := d.sess.Publish("devices/dev1/messages/events/k=v", []byte(strings.Repeat("t", MaxD2CMessageBytes-2)), 1); err == nil {
		t.Fatal("D2C over the limit (with properties) accepted")
	}
}

// A device's method response over 128 KB fails the call with 413
// MessageTooLarge; a body over hubsim's 1 MiB REST cap answers 413 too.
func TestMethodResponseAndBodyLimits(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev1")
	d := e.connectDevice(h, "dev1", key)
	d.sub("$iothub/methods/POST/#")
	svc := e.rest("hub1.example.net", "service")
	done := make(chan resp, 1)
	go func() { done <- svc.do("POST", "/twins/dev1/methods", map[string]any{"methodName": "m"}, nil) }()
	m := d.next()
	_, rid, _ := strings.Cut(m.topic, "$rid=")
	_ = d.pub("$iothub/methods/res/200/?$rid="+rid, `"`+strings.Repeat("r", MaxMethodPayloadBytes)+`"`)
	wantAzureError(t, <-done, 413, "MessageTooLarge")

	wantAzureError(t, svc.do("POST", "/twins/dev1/methods", `{"methodName":"m","payload":"`+strings.Repeat("b", maxBody)+`"}`, nil), 413, "MessageTooLarge")
}
