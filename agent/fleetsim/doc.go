// Package fleetsim exposes the agent's provisioning state machine to fleet
// simulators outside the agent tree (hubsim/fleetplan): Go's internal rule
// keeps agent/internal/provision out of their reach, so this package
// re-exports, as type aliases, exactly what a driver of many Machines on
// a virtual clock needs, and an in-memory Store. It has no logic of its
// own: a simulator runs the agent's real code.
//
// The device binary does not import this package (the import-rule test
// pins what porthole-agent links).
package fleetsim
