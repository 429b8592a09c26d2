package health

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestShapePinned pins the JSON the agent writes in the twin: the operator
// CLI and fleet tooling read these exact names.
func TestShapePinned(t *testing.T) {
	at := func(s string) Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return At(v)
	}
	tests := []struct {
		name string
		r    Report
		want string
	}{
		{"full", Report{
			Version: "v1.4.0",
			Started: at("2025-03-01T13:00:00+01:00"),
			Hub:     Hub{Transport: "mqtt", Connected: true, Since: at("2025-03-01T12:00:03Z")},
			Provisioning: Provisioning{Hub: "contoso.azure-devices.net", DeviceID: "sn-0042", Substatus: "initialAssignment",
				LastRegistration: at("2025-02-27T08:14:00Z")},
			Streams:       Streams{Open: 1, Accepted: 12, Rejected: 2},
			LastRejection: &Rejection{Stream: "web", Reason: ReasonUnknownStream, At: at("2025-03-01T12:30:00Z")},
			LastError:     &Event{Message: "dps: register: status 503 Service Unavailable", At: at("2025-03-01T11:59:58Z")},
			ConfigReload:  &Reload{At: at("2025-03-01T12:10:00Z"), Result: ReloadApplied, Detail: "streams.targets"},
		}, `{"porthole":{"version":"v1.4.0","started":"2025-03-01T12:00:00Z",` +
			`"hub":{"transport":"mqtt","connected":true,"since":"2025-03-01T12:00:03Z"},` +
			`"provisioning":{"hub":"contoso.azure-devices.net","deviceId":"sn-0042","substatus":"initialAssignment","lastRegistration":"2025-02-27T08:14:00Z"},` +
			`"streams":{"open":1,"accepted":12,"rejected":2},` +
			`"lastRejection":{"stream":"web","reason":"unknown stream","at":"2025-03-01T12:30:00Z"},` +
			`"lastError":{"message":"dps: register: status 503 Service Unavailable","at":"2025-03-01T11:59:58Z"},` +
			`"configReload":{"at":"2025-03-01T12:10:00Z","result":"applied","detail":"streams.targets"}}}`},
		{"empty: nulls clear the twin's old values", Report{},
			`{"porthole":{"version":"","started":null,"hub":{"transport":"","connected":false,"since":null},` +
				`"provisioning":{"hub":"","deviceId":"","substatus":"","lastRegistration":null},` +
				`"streams":{"open":0,"accepted":0,"rejected":0},"lastRejection":null,"lastError":null,"configReload":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.r.Patch())
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
			// What a service client reads back from the twin.
			var reported map[string]any
			if err := json.Unmarshal(b, &reported); err != nil {
				t.Fatal(err)
			}
			got, ok, err := FromTwin(reported)
			if err != nil || !ok {
				t.Fatalf("FromTwin: %v %v", ok, err)
			}
			want := tt.r
			want.Started = At(want.Started.UTC())
			if !reflect.DeepEqual(jsonOf(t, got), jsonOf(t, want)) {
				t.Errorf("round trip:\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFromTwinAbsent(t *testing.T) {
	for _, rep := range []map[string]any{nil, {}, {"porthole": nil}, {"other": 1}} {
		if _, ok, err := FromTwin(rep); ok || err != nil {
			t.Errorf("FromTwin(%v) = %v, %v", rep, ok, err)
		}
	}
	if _, _, err := FromTwin(map[string]any{"porthole": map[string]any{"started": "yesterday"}}); err == nil {
		t.Error("a bad time was accepted")
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in      string
		wantLen int
		cut     bool
	}{
		{"short", 5, false},
		{strings.Repeat("a", MaxText), MaxText, false},
		{strings.Repeat("a", MaxText+1), MaxText, true},
		{strings.Repeat("é", MaxText), MaxText - 1, true}, // never splits a rune
	}
	for _, tt := range tests {
		got := Clip(tt.in)
		if len(got) > MaxText || (len(got) != tt.wantLen) || strings.HasSuffix(got, "…") != tt.cut || !utf8.ValidString(got) {
			t.Errorf("Clip(%d bytes) = %d bytes %q…", len(tt.in), len(got), got[:min(10, len(got))])
		}
	}
}

func FuzzFromTwin(f *testing.F) {
	f.Add([]byte(`{"porthole":{"version":"v1","started":"2025-03-01T12:00:00Z","lastError":{"message":"x","at":null}}}`))
	f.Add([]byte(`{"porthole":null}`))
	f.Add([]byte(`{"porthole":{"hub":{"since":"not a time"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var reported map[string]any
		if json.Unmarshal(data, &reported) != nil {
			return
		}
		r, ok, err := FromTwin(reported)
		if err != nil || !ok {
			return
		}
		// What parses writes back and parses to the same report.
		b, err := json.Marshal(r.Patch())
		if err != nil {
			t.Fatal(err)
		}
		var again map[string]any
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		r2, ok, err := FromTwin(again)
		if err != nil || !ok || jsonOf(t, r2) != jsonOf(t, r) {
			t.Fatalf("round trip changed %s into %s (%v)", jsonOf(t, r), jsonOf(t, r2), err)
		}
	})
}

// TestTargetUnreachable pins the reason an agent reports for a target that
// did not answer: the operator CLI prints it as is.
func TestTargetUnreachable(t *testing.T) {
	long := strings.Repeat("x", 2*MaxText)
	for _, tc := range []struct {
		name, target, cause, want string
	}{
		{"refused", "127.0.0.1:80", "connection refused", "target 127.0.0.1:80 is not answering (connection refused)"},
		{"no cause", "[::1]:22", "", "target [::1]:22 is not answering"},
		{"clipped", "10.0.0.1:22", long, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TargetUnreachable(tc.target, tc.cause)
			if tc.want != "" && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(got) > MaxText || !utf8.ValidString(got) || !strings.HasPrefix(got, "target "+tc.target+" is not answering") {
				t.Errorf("got %q (%d bytes)", got, len(got))
			}
		})
	}
}
