package admin

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
)

// Fault is one fault switched on through the admin API or hubsimtest. Kind
// says which; the other fields narrow it (empty Hub or Device: every hub or
// device) and parameterise it. README.md documents every kind.
type Fault struct {
	// ID is assigned by Faults.Add.
	ID   string `json:"id,omitempty"`
	Kind Kind   `json:"kind"`
	// Hub is a hub host name (case-insensitive); empty means every hub.
	Hub string `json:"hub,omitempty"`
	// Device is a device id; empty means every device.
	Device string `json:"device,omitempty"`
}

// Kind names a fault.
type Kind string

// Faults is the set of active declarative faults. The simulator's
// components consult it through their func-field fault hooks, which the
// sim assembly points at its methods. Safe for concurrent use.
type Faults struct {
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
	defer fs.mu.Unlock()
	fs.next++
	f.ID = strconv.Itoa(fs.next)
	fs.active = append(fs.active, f)
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

var errUnknownKind = errors.New("admin: unknown fault kind")

func (f Fault) validate() error {
	return fmt.Errorf("%w %q", errUnknownKind, f.Kind)
}
