// Package fleetplan is the fleet planner: what happens when N devices
// reprovision, boot or lose their hub at once — how long until the fleet
// is back, whether DPS's registration quota or the hubs' connection
// throttle bites, how many retries — before it happens.
//
// It answers with the product's own code, not a model of it: every
// simulated device is the agent's real provisioning state machine
// (agent/fleetsim, which re-exports agent/internal/provision) with its
// real retry schedules (sdk/retry), talking to hubsim's real DPS (quota
// with Retry-After slots, hashed allocation, reprovisioning policies,
// through dps.Service.Device, the in-process device API) and hubsim's
// real hubs (registries and the per-hub device-connections throttle,
// through hub.Set.AdmitConnect). Everything runs on one goroutine on a
// virtual clock with no sockets: 100,000 devices take seconds of CPU.
//
// What is not simulated: network latency (Scenario.Latency adds a fixed
// round trip per DPS transport), TLS, and MQTT/HTTPS framing — the
// socket-level fleet storm (sdk/internal/fleetbench TestFleetStorm)
// covers those and make bench compares the two on the same storm
// (Compare: time to converge and peak admissions per window within 10%).
//
// Two seams stand in for time passing inside a call: hubsim's DPS decides
// a registration when asked, so the adapter polls at once and the driver
// charges the device sdk/dps's poll wait (the 202's retry-after); and
// sdk/dps retries a 429 inside Register, which a Step cannot span, so
// while a device keeps its session during a reprovision the driver runs
// that retry loop with the same sdk/retry schedule. Without a session the
// Machine's own DPS schedule waits (the same Retry-After + jitter).
//
// Deterministic: one seeded random source feeds every device's jitter,
// events at the same instant run in the order they were scheduled, and
// nothing reads the wall clock; the same Scenario gives the same CSV.
//
// The command is `hubsim fleet plan` (hubsim/cmd/hubsim): a plan file
// (YAML, LoadPlan) or flags; text table, CSV, and plots (PNG and SVG,
// gonum/plot) of registrations per minute against the quota, devices
// converged over time and retries per device, every scenario on the same
// axes.
package fleetplan
