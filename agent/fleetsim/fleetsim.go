package fleetsim

import (
	"github.com/porthole-iot/porthole/agent/internal/provision"
	"github.com/porthole-iot/porthole/agent/internal/state"
)

// The provisioning flow's types; see agent/internal/provision.
type (
	Provisioner = provision.Provisioner
	Machine     = provision.Machine
	Config      = provision.Config
	Identity    = provision.Identity
	Assignment  = provision.Assignment
	Session     = provision.Session
	DPS         = provision.DPS
	Store       = provision.Store
	State       = provision.State
	// Cached is the assignment cache's content (the agent's state file).
	Cached = state.State
)

// The Machine's states.
const (
	StateRegister = provision.StateRegister
	StateLookup   = provision.StateLookup
	StateConnect  = provision.StateConnect
	StateServe    = provision.StateServe
	StateWait     = provision.StateWait
	StateStopped  = provision.StateStopped
)

// StatusAssigned is DPS's status of an assigned device.
const StatusAssigned = provision.StatusAssigned

// DefaultHubMaxBackoff caps the waits between hub attempts.
const DefaultHubMaxBackoff = provision.DefaultHubMaxBackoff

// ErrHubRefused marks a hub refusal (Connect wraps it).
var ErrHubRefused = provision.ErrHubRefused

// New checks cfg and returns a Provisioner (provision.New).
func New(cfg Config) (*Provisioner, error) { return provision.New(cfg) }

// MemStore is an in-memory Store: the cached assignment of one simulated
// device.
type MemStore struct {
	St Cached
	OK bool // a cache exists
}

// Load implements Store.
func (m *MemStore) Load() (Cached, bool, error) { return m.St, m.OK, nil }

// Save implements Store.
func (m *MemStore) Save(st Cached) error { m.St, m.OK = st, true; return nil }
