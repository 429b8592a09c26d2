package hub

import "time"

// The device-connections throttle: IoT Hub limits the rate of new device
// connections per hub ("New device connections: higher of 100/sec or
// 12/sec/unit" for S1, 120/sec/unit for S2, 6,000/sec/unit for S3)
// [MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-devguide-quotas-throttling.md,
// "Operation throttles"]. hubsim applies Config.ConnectsPerSecond per hub as
// a token bucket holding one second's worth (at least one); a CONNECT over the rate is
// refused with CONNACK 3 (server unavailable) rather than queued as Azure's
// traffic shaping would, so clients back off at once.

// admitConnectLocked takes a token from the hub's connection bucket; false
// when the hub is over its rate. Caller holds h.mu.
func (h *Hub) admitConnectLocked(now time.Time) bool {
	rate := h.set.cfg.ConnectsPerSecond
	if rate <= 0 {
		return true
	}
	burst := max(rate, 1) // one second's worth, at least one connection
	if h.connLast.IsZero() {
		h.connTokens = burst
	} else if d := now.Sub(h.connLast); d > 0 {
		h.connTokens = min(burst, h.connTokens+d.Seconds()*rate)
	}
	h.connLast = now
	if h.connTokens < 1 {
		return false
	}
	h.connTokens--
	return true
}

// Flapping: two clients with one identity replace each other in a loop.
// After flapAfter takeovers between different remote addresses, each within
// flapQuiet of the previous, the hub warns once (with both addresses); a
// quiet flapQuiet ends the bout.
const (
	flapAfter = 3
	flapQuiet = 30 * time.Second
)

// noteTakeoverLocked records that a connection from newRemote replaced one
// from oldRemote and reports whether this is the moment to warn.
// Caller holds h.mu.
func (id *identity) noteTakeoverLocked(oldRemote, newRemote string, now time.Time) bool {
	if oldRemote == newRemote {
		return false
	}
	if now.Sub(id.flapLast) > flapQuiet {
		id.flapCount, id.flapWarned = 0, false
	}
	id.flapLast = now
	id.flapCount++
	if id.flapCount >= flapAfter && !id.flapWarned {
		id.flapWarned = true
		return true
	}
	return false
}
