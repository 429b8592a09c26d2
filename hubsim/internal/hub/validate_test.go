package hub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Ids and names are checked at the REST edge: too long or not in Azure's
// character set answers 400 ArgumentInvalid with a short body that does not
// echo the input (issue 11, finding 6: a 70,000-character stream name got
// 404 DeviceNotOnline echoing 11 KB).
func TestRESTRejectsBadIDsAndNames(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	e.device(h, "dev1")
	owner := e.rest("hub1.example.net", "iothubowner")
	long := strings.Repeat("x", 70000)
	id129 := strings.Repeat("d", 129)
	esc := url.PathEscape
	tests := []struct {
		name, method, path string
		body               any
	}{
		{"long stream name", "POST", "/twins/dev1/streams/" + long, nil},
		{"stream name 129", "POST", "/twins/dev1/streams/" + strings.Repeat("s", 129), nil},
		{"stream name with space", "POST", "/twins/dev1/streams/" + esc("a b"), nil},
		{"long module stream name", "POST", "/twins/dev1/modules/m1/streams/" + long, nil},
		{"long device id (get)", "GET", "/devices/" + long, nil},
		{"device id 129 (put)", "PUT", "/devices/" + id129, map[string]any{"deviceId": id129}},
		{"device id with space", "GET", "/devices/" + esc("a b"), nil},
		{"device id non-ASCII", "GET", "/devices/" + esc("dév"), nil},
		{"device id with slash", "GET", "/devices/" + esc("a/b"), nil},
		{"long twin id", "GET", "/twins/" + long, nil},
		{"long module id", "GET", "/devices/dev1/modules/" + long, nil},
		{"module twin bad id", "GET", "/twins/dev1/modules/" + esc("m m"), nil},
		{"long id in methods", "POST", "/twins/" + long + "/methods", map[string]any{"methodName": "m"}},
		{"long method name", "POST", "/twins/dev1/methods", map[string]any{"methodName": long}},
		{"method name 129", "POST", "/twins/dev1/methods", map[string]any{"methodName": strings.Repeat("m", 129)}},
		{"method name with slash", "POST", "/twins/dev1/methods", map[string]any{"methodName": "a/b"}},
		{"long id in purge", "DELETE", "/devices/" + long + "/commands", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := owner.do(tc.method, tc.path, tc.body, nil)
			if len(r.body) > 600 {
				t.Fatalf("status %d, error body is %d bytes: %.200s…", r.status, len(r.body), r.body)
			}
			wantAzureError(t, r, 400, "ArgumentInvalid")
		})
	}
	// Valid ids at the limits still work.
	ok := strings.Repeat("a", 128)
	if r := owner.do("PUT", "/devices/"+ok, map[string]any{"deviceId": ok}, nil); r.status != 200 {
		t.Fatalf("128-character id: %d %s", r.status, r.body)
	}
	wantAzureError(t, owner.do("GET", "/devices/"+esc("no-such-device"), nil, nil), 404, "DeviceNotFound")
}

// TestDeviceIDCharset pins the id rule to the current registry page
// (iot-hub-devguide-identity-registry.md): letters, digits and
// - . % _ * ? ! ( ) , : = @ $ ' up to 128; '+' and '#' are documented as
// unsupported (MQTT cannot carry them in a topic name), ';' is not listed.
func TestDeviceIDCharset(t *testing.T) {
	ok := []string{"a", "Z9", "dev-1", "a.b", "100%", "a_b", "a*b", "a?b", "a!b", "(a)", "a,b", "a:b", "a=b", "a@b", "a$b", "q'1",
		"-.%_*?!(),:=@$'", strings.Repeat("x", 128)}
	bad := []string{"", "a+b", "a#b", "a;b", "a b", "a/b", "a\\b", "a\"b", "a<b", "a&b", "dév", "a\x00b", strings.Repeat("x", 129)}
	for _, id := range ok {
		if !validID(id) {
			t.Errorf("validID(%q) = false, want true", id)
		}
	}
	for _, id := range bad {
		if validID(id) {
			t.Errorf("validID(%q) = true, want false", id)
		}
	}
}

// CreateDevice and UpdateDevice take the same statuses and refuse others
// alike, echoing at most maxEcho bytes of a bad one.
func TestDeviceStatus(t *testing.T) {
	e := newEnv(t)
	h := e.hub("hub1.example.net")
	long := strings.Repeat("x", 10_000)
	for i, tc := range []struct {
		status  Status
		want    Status
		wantErr string
	}{
		{"", StatusEnabled, ""},
		{StatusEnabled, StatusEnabled, ""},
		{StatusDisabled, StatusDisabled, ""},
		{"Enabled", "", `invalid status "Enabled"`},
		{Status(long), "", `invalid status "` + long[:maxEcho] + `"… (10000 bytes)`},
	} {
		ctx := context.Background()
		id := fmt.Sprintf("dev-%d", i)
		d, err := h.CreateDevice(ctx, Device{DeviceID: id, Status: tc.status})
		if tc.wantErr != "" {
			if !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), tc.wantErr) {
				t.Errorf("create with status %.20q: %.200v, want ErrInvalid ending %.90q", tc.status, err, tc.wantErr)
			}
			if _, err := h.CreateDevice(ctx, Device{DeviceID: id}); err != nil {
				t.Fatal(err)
			}
			_, err = h.UpdateDevice(ctx, Device{DeviceID: id, Status: tc.status}, "*")
			if !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), tc.wantErr) {
				t.Errorf("update with status %.20q: %.200v, want ErrInvalid ending %.90q", tc.status, err, tc.wantErr)
			}
			continue
		}
		if err != nil || d.Status != tc.want {
			t.Errorf("create with status %q: %q %v, want %q", tc.status, d.Status, err, tc.want)
			continue
		}
		if d, err = h.UpdateDevice(ctx, Device{DeviceID: id, Status: tc.status}, "*"); err != nil || d.Status != tc.want {
			t.Errorf("update with status %q: %q %v, want %q", tc.status, d.Status, err, tc.want)
		}
	}
}
