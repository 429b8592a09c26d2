package hub

import (
	"context"
	"net/http"
	"time"
)

// Faults are hooks that make a hub misbehave on purpose, in the style of
// dps.Faults. Each hook is consulted, if non-nil, at the top of the handler
// its comment names; nil means normal behaviour. Hooks are called
// concurrently and must return quickly. hub is the hub's host name.
type Faults struct {
	// RefuseConnect, if non-nil and returning refuse, answers an MQTT
	// CONNECT for the device with CONNACK code (1…5; anything else is 3)
	// before its credentials are checked.
	RefuseConnect func(hub, deviceID string) (code byte, refuse bool)
	// DropConnection, if non-nil and returning drop, closes a device's
	// connection this long after the hub accepted it (at least
	// minDropAfter, so the CONNACK has gone out), as a network or gateway
	// that cuts idle or new connections.
	DropConnection func(hub, deviceID string) (after time.Duration, drop bool)
	// ThrottleREST, if non-nil and returning throttle, answers a service
	// REST request that passed authorization with 429 ThrottlingException
	// and Retry-After (whole seconds, at least 1).
	ThrottleREST func(hub string, r *http.Request) (retryAfter time.Duration, throttle bool)
	// StreamRequest, if non-nil, is asked for every stream request before
	// the device is told: the request waits delay first (on the hub's
	// clock, or until the caller gives up); reject answers the service as
	// if the device had rejected the stream, without asking it.
	StreamRequest func(hub, deviceID, name string) (delay time.Duration, reject bool)
	// AckDelay, if non-nil and returning more than 0, holds every MQTT
	// PUBLISH from the device that long before the hub handles it, so its
	// PUBACK (QoS 1) comes that much later. The broker reads the device's
	// packets one after another, so later packets wait too, as they do
	// behind a slow hub.
	AckDelay func(hub, deviceID string) time.Duration
}

// minDropAfter is the shortest DropConnection delay: the broker sends the
// CONNACK after the hub accepted the connection, and a drop must come
// after it.
const minDropAfter = 50 * time.Millisecond

// retryAfterSeconds is d rounded up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// sleep waits d on the hub's clock, or until ctx or done ends first; it
// reports whether the full time passed.
func (h *Hub) sleep(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	fired := make(chan struct{})
	stop := h.set.after(d, func() { close(fired) })
	defer stop()
	select {
	case <-fired:
		return true
	case <-ctx.Done():
		return false
	case <-done:
		return false
	}
}
