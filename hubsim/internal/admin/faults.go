package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind names a fault. README.md documents each.
type Kind string

// Fault kinds. Hub and Device narrow every kind (empty: every hub, every
// device).
const (
	// KindRefuseConnect answers the device's MQTT CONNECT with CONNACK
	// ConnackCode (1…5).
	KindRefuseConnect Kind = "refuse-connect"
	// KindDropConnection closes the device's connection After it was
	// accepted (at least 50 ms, so the CONNACK goes out first); connections
	// that exist when the fault is added are dropped at once.
	KindDropConnection Kind = "drop-connection"
	// KindThrottleREST answers the hub's service REST API with 429 and
	// Retry-After (RetryAfter, default 1s).
	KindThrottleREST Kind = "throttle-rest"
	// KindDelayStream holds stream requests to the device for Delay.
	KindDelayStream Kind = "delay-stream"
	// KindRejectStream answers stream requests as rejected.
	KindRejectStream Kind = "reject-stream"
	// KindCutStream ends streams with close code 1011 once AfterBytes
	// have been forwarded.
	KindCutStream Kind = "cut-stream"
	// KindStallStream stops the relay reading Side ("device" or
	// "service") of streams: a half-dead path.
	KindStallStream Kind = "stall-stream"
	// KindDelayAck holds the device's MQTT PUBLISHes, and so their PUBACKs,
	// for Delay.
	KindDelayAck Kind = "delay-ack"
)

// Kinds lists every fault kind.
var Kinds = []Kind{KindRefuseConnect, KindDropConnection, KindThrottleREST, KindDelayStream,
	KindRejectStream, KindCutStream, KindStallStream, KindDelayAck}

// Fault is one fault switched on through the admin API or hubsimtest.
type Fault struct {
	// ID is assigned by Faults.Add.
	ID   string `json:"id,omitempty"`
	Kind Kind   `json:"kind"`
	// Hub is a hub host name (case-insensitive); empty means every hub.
	Hub string `json:"hub,omitempty"`
	// Device is a device id; empty means every device.
	Device string `json:"device,omitempty"`
	// ConnackCode is refuse-connect's CONNACK return code, 1…5.
	ConnackCode int `json:"connackCode,omitempty"`
	// Delay is delay-stream's and delay-ack's hold time.
	Delay Duration `json:"delay,omitempty"`
	// After is drop-connection's time from CONNACK to the drop.
	After Duration `json:"after,omitempty"`
	// RetryAfter is throttle-rest's Retry-After (whole seconds, ≥ 1).
	RetryAfter Duration `json:"retryAfter,omitempty"`
	// AfterBytes is cut-stream's byte count before the cut.
	AfterBytes int64 `json:"afterBytes,omitempty"`
	// Side is stall-stream's stalled side: "device" or "service".
	Side string `json:"side,omitempty"`
}

// Duration is a time.Duration that JSON writes and reads as a Go duration
// string ("1.5s", "250ms").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"2s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ErrFault is wrapped by every fault validation error.
var ErrFault = errors.New("admin: invalid fault")

func (f Fault) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrFault, f.Kind, fmt.Sprintf(format, args...))
	}
	if f.Delay < 0 || f.After < 0 || f.RetryAfter < 0 || f.AfterBytes < 0 {
		return bad("durations and byte counts must not be negative")
	}
	switch f.Kind {
	case KindRefuseConnect:
		if f.ConnackCode < 1 || f.ConnackCode > 5 {
			return bad("connackCode must be 1…5, not %d", f.ConnackCode)
		}
	case KindDelayStream, KindDelayAck:
		if f.Delay <= 0 {
			return bad("needs a delay")
		}
	case KindStallStream:
		if f.Side != "device" && f.Side != "service" {
			return bad("side must be \"device\" or \"service\", not %q", f.Side)
		}
	case KindDropConnection, KindThrottleREST, KindRejectStream, KindCutStream:
	default:
		names := make([]string, len(Kinds))
		for i, k := range Kinds {
			names[i] = string(k)
		}
		return fmt.Errorf("%w: unknown fault kind %q (kinds: %s)", ErrFault, f.Kind, strings.Join(names, ", "))
	}
	return nil
}

// Faults is the set of active faults. The hub and relay fault hooks
// (hub.Faults, relay.Faults) consult it through Match; sim wires them.
// Safe for concurrent use.
type Faults struct {
	// OnAdd, if non-nil, is called after a fault is switched on (sim uses
	// it to drop existing connections for drop-connection). Set it before
	// the first Add.
	OnAdd func(Fault)

	mu     sync.Mutex
	active []Fault // guarded by mu
	next   int     // guarded by mu
}

// NewFaults returns an empty fault set.
func NewFaults() *Faults { return &Faults{} }

// List returns the active faults, oldest first.
func (fs *Faults) List() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]Fault{}, fs.active...)
}

// Add validates f, switches it on and returns it with its ID.
func (fs *Faults) Add(f Fault) (Fault, error) {
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	fs.mu.Lock()
	fs.next++
	f.ID = strconv.Itoa(fs.next)
	fs.active = append(fs.active, f)
	fs.mu.Unlock()
	if fs.OnAdd != nil {
		fs.OnAdd(f)
	}
	return f, nil
}

// Clear switches the fault with this id off; false when there is none.
func (fs *Faults) Clear(id string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	i := slices.IndexFunc(fs.active, func(f Fault) bool { return f.ID == id })
	if i < 0 {
		return false
	}
	fs.active = slices.Delete(fs.active, i, i+1)
	return true
}

// ClearAll switches every fault off.
func (fs *Faults) ClearAll() {
	fs.mu.Lock()
	fs.active = nil
	fs.mu.Unlock()
}

// Match returns the oldest active fault of kind that applies to hub and
// device (device "" matches only faults for every device).
func (fs *Faults) Match(kind Kind, hub, device string) (Fault, bool) {
	if fs == nil {
		return Fault{}, false
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.active {
		if f.Kind == kind && f.Applies(hub, device) {
			return f, true
		}
	}
	return Fault{}, false
}

// Applies reports whether f covers hub and device.
func (f Fault) Applies(hub, device string) bool {
	return (f.Hub == "" || strings.EqualFold(f.Hub, hub)) && (f.Device == "" || f.Device == device)
}
