package hub

import (
	"fmt"

	"github.com/porthole-iot/porthole/hubsim/internal/broker"
)

// AdmitConnect is hub host's decision on a new connection of deviceID,
// made without a network connection or a session: the same checks, in the
// same order, as an MQTT CONNECT up to authentication — hub closed, the
// device-connections throttle (Config.ConnectsPerSecond, on the Set's
// clock), the identity exists and is enabled. It is the seam a fleet
// simulator on a virtual clock uses (hubsim/fleetplan); the credential is
// not checked (the simulator's devices hold the keys DPS gave them).
//
// It returns nil when the hub would accept the device, an error wrapping
// broker.ErrServerUnavailable when the hub is closed or over its rate
// (CONNACK 3), and one wrapping broker.ErrNotAuthorized for an unknown
// hub, an unknown or a disabled device (CONNACK 5).
func (s *Set) AdmitConnect(host, deviceID string) error {
	h, ok := s.Hub(host)
	if !ok {
		return fmt.Errorf("%w: no hub %q", broker.ErrNotAuthorized, host)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("%w: hub closed", broker.ErrServerUnavailable)
	}
	if !h.admitConnectLocked(h.now()) {
		return fmt.Errorf("%w: device connections throttled (%v/s per hub)", broker.ErrServerUnavailable, h.set.cfg.ConnectsPerSecond)
	}
	id, err := h.identityLocked(deviceID, "")
	if err != nil {
		return fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	if id.status != StatusEnabled {
		return fmt.Errorf("%w: device disabled", broker.ErrNotAuthorized)
	}
	return nil
}
