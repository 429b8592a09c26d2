package hub

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// connectFrom connects id from a remote address with a fresh SAS token.
func (e *env) connectFrom(h *Hub, id, key, remote string) (*dev, error) {
	e.t.Helper()
	return e.connect(connOpts{username: h.HostName() + "/" + id + "/?api-version=2021-04-12", clientID: id,
		password: sign(h.HostName()+"/devices/"+id, key, "", e.clock.Now().Add(time.Hour), true),
		info:     func(i *broker.ConnectInfo) { i.Remote = remote }})
}

// New connections are throttled per hub at the configured rate (IoT Hub's
// documented S1 rate is 100/s); an over-rate CONNECT gets CONNACK 3.
func TestConnectThrottle(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.ConnectsPerSecond = 2 })
	h := e.hub("hub1.example.net")
	keys := map[string]string{}
	for _, id := range []string{"a", "b", "c", "d"} {
		keys[id] = e.device(h, id)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := e.connectFrom(h, id, keys[id], "10.0.0.1:1"); err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
	}
	_, err := e.connectFrom(h, "c", keys["c"], "10.0.0.1:1")
	if !errors.Is(err, broker.ErrServerUnavailable) {
		t.Fatalf("third connect within the second: %v, want ErrServerUnavailable", err)
	}
	e.clock.Advance(500 * time.Millisecond) // one token back at 2/s
	if _, err := e.connectFrom(h, "c", keys["c"], "10.0.0.1:1"); err != nil {
		t.Fatalf("connect after the refill: %v", err)
	}
	if _, err := e.connectFrom(h, "d", keys["d"], "10.0.0.1:1"); !errors.Is(err, broker.ErrServerUnavailable) {
		t.Fatalf("connect d: %v", err)
	}

	// Zero means unlimited.
	e2 := newEnv(t)
	h2 := e2.hub("hub1.example.net")
	k := e2.device(h2, "a")
	for i := range 50 {
		if _, err := e2.connectFrom(h2, "a", k, "10.0.0.1:1"); err != nil {
			t.Fatalf("unthrottled connect %d: %v", i, err)
		}
	}
}

// Two clients with the same identity that keep replacing each other are
// reported once, with both remote addresses; one client reconnecting from
// the same address is not flapping.
func TestFlappingLoggedOnce(t *testing.T) {
	var buf lockedBuffer
	e := newEnvWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	h := e.hub("hub1.example.net")
	key := e.device(h, "twin")
	for i := range 10 {
		remote := []string{"10.0.0.1:1111", "10.0.0.2:2222"}[i%2]
		if _, err := e.connectFrom(h, "twin", key, remote); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(100 * time.Millisecond)
	}
	solo := e.device(h, "solo")
	for range 10 {
		if _, err := e.connectFrom(h, "solo", solo, "10.0.0.3:3333"); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "same identity") && strings.Contains(l, "level=WARN") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "10.0.0.1:1111") || !strings.Contains(lines[0], "10.0.0.2:2222") || !strings.Contains(lines[0], "device=twin") {
		t.Fatalf("flapping warnings %q\nall logs:\n%s", lines, buf.String())
	}

	// After a quiet period, a new bout of flapping is reported again.
	e.clock.Advance(flapQuiet + time.Second)
	for i := range 4 {
		remote := []string{"10.0.0.1:1111", "10.0.0.2:2222"}[i%2]
		if _, err := e.connectFrom(h, "twin", key, remote); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "keep replacing each other"); n != 2 {
		t.Fatalf("%d flapping warnings after a second bout, want 2", n)
	}
}

// TestSessionLogNamesDevice: a session builds its logger per record (none
// is kept per connected device); its records still name the device.
func TestSessionLogNamesDevice(t *testing.T) {
	var buf lockedBuffer
	e := newEnvWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	h := e.hub("hub1.example.net")
	key := e.device(h, "dev7")
	for _, remote := range []string{"10.0.0.1:1111", "10.0.0.2:2222"} {
		if _, err := e.connectFrom(h, "dev7", key, remote); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "disconnecting device") {
			if !strings.Contains(l, "device=dev7") || !strings.Contains(l, "hub=hub1.example.net") {
				t.Fatalf("session record without its device or hub: %q", l)
			}
			return
		}
	}
	t.Fatalf("no \"disconnecting device\" record for the replaced session; logs:\n%s", buf.String())
}
