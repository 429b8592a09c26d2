// Package importrules holds only a test: it enforces the project's import
// rules by reading `go list -deps` for the whole module.
//
//   - hubsim/internal/... never imports sdk/...: the simulator and the SDK
//     write wire strings independently, so one typo cannot hide on both sides.
//   - sdk/... never imports agent/... or hubsim/....
//   - agent/... never imports hubsim/....
//   - the porthole-agent binary links no testing, net/http/httptest,
//     net/http/pprof or hubsim code: it ships on small devices.
package importrules
