package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// AdmitConnect makes the CONNECT's decisions without a connection: the
// throttle (shared with real connects), then the identity.
func TestAdmitConnect(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.ConnectsPerSecond = 2 })
	h := e.hub("hub1.example.net")
	keys := map[string]string{}
	for _, id := range []string{"a", "b", "off"} {
		keys[id] = e.device(h, id)
	}
	if err := h.SetStatus(context.Background(), "off", StatusDisabled); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, dev string
		advance         time.Duration
		want            error
	}{
		{"unknown hub", "nohub.example.net", "a", 0, broker.ErrNotAuthorized},
		{"first", "hub1.example.net", "a", 0, nil},
		{"unknown device (takes a token)", "hub1.example.net", "ghost", 0, broker.ErrNotAuthorized},
		{"over the rate", "hub1.example.net", "b", 0, broker.ErrServerUnavailable},
		{"refilled", "hub1.example.net", "b", 500 * time.Millisecond, nil},
		{"disabled", "hub1.example.net", "off", time.Second, broker.ErrNotAuthorized},
	}
	for _, tt := range tests {
		e.clock.Advance(tt.advance)
		err := e.set.AdmitConnect(tt.host, tt.dev)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// A real CONNECT draws from the same bucket: "disabled" and this take
	// the second's two tokens.
	if err := e.set.AdmitConnect("hub1.example.net", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.connectFrom(h, "a", keys["a"], "10.0.0.1:1"); !errors.Is(err, broker.ErrServerUnavailable) {
		t.Errorf("real connect after AdmitConnect used the tokens: %v", err)
	}
	_ = e.set.Close()
	if err := e.set.AdmitConnect("hub1.example.net", "a"); !errors.Is(err, broker.ErrServerUnavailable) {
		t.Errorf("closed hub: %v", err)
	}
}
