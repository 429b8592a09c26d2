package hub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// faultEnv is an env whose hubs consult f.
func faultEnv(t *testing.T, f *Faults) (*env, *Hub) {
	t.Helper()
	e := newEnvWith(t, func(c *Config) { c.Faults = f })
	return e, e.hub("hub1.example.net")
}

func TestFaultRefuseConnect(t *testing.T) {
	for _, code := range []byte{1, 2, 3, 4, 5} {
		e, h := faultEnv(t, &Faults{RefuseConnect: func(hub, dev string) (byte, bool) {
			return code, hub == "hub1.example.net" && dev == "dev1"
		}})
		key := e.device(h, "dev1")
		_, err := e.connect(connOpts{username: "hub1.example.net/dev1/?api-version=2021-04-12", clientID: "dev1",
			password: sign("hub1.example.net/devices/dev1", key, "", e.clock.Now().Add(time.Hour), true)})
		var refused *broker.RefusedError
		if !errors.As(err, &refused) || refused.Code != code {
			t.Fatalf("code %d: connect error %v", code, err)
		}
		// Other devices are not affected.
		e.connectDevice(h, "dev2", e.device(h, "dev2"))
	}
}

func TestFaultDropConnection(t *testing.T) {
	e, h := faultEnv(t, &Faults{DropConnection: func(hub, dev string) (time.Duration, bool) {
		return 5 * time.Second, dev == "dev1"
	}})
	d := e.connectDevice(h, "dev1", e.device(h, "dev1"))
	other := e.connectDevice(h, "dev2", e.device(h, "dev2"))
	e.clock.Advance(4 * time.Second)
	select {
	case <-d.out.closedC:
		t.Fatal("dropped before the fault's delay")
	default:
	}
	e.clock.Advance(time.Second)
	d.waitClosed()
	select {
	case <-other.out.closedC:
		t.Fatal("dev2 was dropped too")
	default:
	}
}

func TestFaultThrottleREST(t *testing.T) {
	throttle := true
	e, h := faultEnv(t, &Faults{ThrottleREST: func(hub string, r *http.Request) (time.Duration, bool) {
		return 1500 * time.Millisecond, throttle && r.Method == http.MethodGet
	}})
	e.device(h, "dev1")
	c := e.rest("hub1.example.net", "iothubowner")
	r := c.do("GET", "/devices/dev1", nil, nil)
	wantAzureError(t, r, 429, "ThrottlingException")
	if r.header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After = %q, want 2", r.header.Get("Retry-After"))
	}
	if got := h.Counters().Throttled; got != 1 {
		t.Errorf("throttled counter %d", got)
	}
	// Authorization comes first: a bad token is 401 even while throttled.
	bad := e.rest("hub1.example.net", "iothubowner")
	bad.token = "SharedAccessSignature sr=x&sig=y&se=1&skn=iothubowner"
	wantAzureError(t, bad.do("GET", "/devices/dev1", nil, nil), 401, "IotHubUnauthorizedAccess")
	if r := c.do("PUT", "/devices/dev2", map[string]any{"deviceId": "dev2"}, nil); r.status != 200 {
		t.Errorf("PUT not throttled by a GET-only fault: %d %s", r.status, r.body)
	}
}

func TestFaultStreamRequest(t *testing.T) {
	var delay time.Duration
	var reject bool
	e, h := faultEnv(t, &Faults{StreamRequest: func(hub, dev, name string) (time.Duration, bool) {
		return delay, reject
	}})
	d := e.connectDevice(h, "dev1", e.device(h, "dev1"))
	d.sub("$iothub/streams/POST/#")

	// Reject: the service hears "not accepted" and the device is never asked.
	reject = true
	res, err := h.RequestStream(context.Background(), StreamRequest{DeviceID: "dev1", Name: "ssh"})
	if err != nil || res.Accepted {
		t.Fatalf("rejected stream: %+v %v", res, err)
	}
	d.none()

	// Delay: the device hears of the request only after the delay.
	reject, delay = false, 3*time.Second
	d.sub("$iothub/streams/res/#")
	type outcome struct {
		res StreamResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := h.RequestStream(context.Background(), StreamRequest{DeviceID: "dev1", Name: "ssh", ResponseTimeout: time.Minute})
		done <- outcome{res, err}
	}()
	e.clock.waitTimers(t, 2) // the device's token expiry and the fault's delay
	d.none()
	e.clock.Advance(3 * time.Second)
	m := d.next()
	rid, _, _ := strings.Cut(strings.TrimPrefix(m.topic, "$iothub/streams/POST/ssh/?$rid="), "&")
	if err := d.pub("$iothub/streams/res/200/?$rid="+rid, ""); err != nil {
		t.Fatal(err)
	}
	var got outcome
	testwait.True(t, 10*time.Second, "delayed stream request answered", func() bool {
		select {
		case got = <-done:
			return true
		default:
			return false
		}
	})
	if got.err != nil || !got.res.Accepted {
		t.Fatalf("delayed stream: %+v %v", got.res, got.err)
	}

	// The caller gives up while the delay runs: the request ends at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.RequestStream(ctx, StreamRequest{DeviceID: "dev1", Name: "ssh"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during the delay: %v", err)
	}
	d.none()
}

func TestFaultAckDelay(t *testing.T) {
	e, h := faultEnv(t, &Faults{AckDelay: func(hub, dev string) time.Duration {
		if dev == "dev1" {
			return 2 * time.Second
		}
		return 0
	}})
	d := e.connectDevice(h, "dev1", e.device(h, "dev1"))
	done := make(chan error, 1)
	go func() { done <- d.pub("devices/dev1/messages/events/", "x") }()
	e.clock.waitTimers(t, 2) // token expiry and the held ack
	select {
	case <-done:
		t.Fatal("publish handled before the ack delay")
	default:
	}
	if got := h.Counters().MessagesIn; got != 0 {
		t.Fatalf("message counted before the delay: %d", got)
	}
	e.clock.Advance(2 * time.Second)
	var err error
	testwait.True(t, 10*time.Second, "held publish released", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Counters().MessagesIn; got != 1 {
		t.Errorf("messages in %d", got)
	}
	// Unaffected device: no delay.
	d2 := e.connectDevice(h, "dev2", e.device(h, "dev2"))
	if err := d2.pub("devices/dev2/messages/events/", "y"); err != nil {
		t.Fatal(err)
	}
}
