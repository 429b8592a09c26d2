//go:build race

package fleetplan

// raceEnabled: the race detector slows TLS handshakes several-fold, which
// the socket-level run pays and the planner does not model.
const raceEnabled = true
