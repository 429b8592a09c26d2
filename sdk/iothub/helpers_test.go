package iothub

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait in these tests; a healthy run needs a small
// fraction of it.
const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// env is a running sim with one device.
type env struct {
	sim    *hubsimtest.Sim
	host   string
	hub    *hubsimtest.IoTHub
	device string
	key    string
}

func newEnv(t *testing.T, opts ...hubsimtest.Option) *env {
	t.Helper()
	sim := hubsimtest.New(t, opts...)
	host := sim.HubHostNames[0]
	e := &env{sim: sim, host: host, hub: sim.Hub(host), device: "dev1"}
	e.key = sim.CreateDevice(host, e.device)
	return e
}

// config is a SAS config for the env's device that reaches the sim.
func (e *env) config(t *testing.T) Config {
	return Config{
		HostName:        e.host,
		DeviceID:        e.device,
		SharedAccessKey: e.key,
		RootCAs:         e.sim.CAPool,
		DialContext:     e.sim.DialContext,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func (e *env) dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// recv returns the next value from ch, failing the test after testTimeout.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting for a value")
		panic("unreachable")
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
