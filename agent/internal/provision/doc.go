// Package provision is the agent's boot and reconnect flow: it decides
// whether to connect to the cached IoT hub, ask DPS where the device lives
// (registration status lookup) or register with DPS again, and keeps a hub
// session up until its context ends.
//
// The rules follow Microsoft's guidance for devices provisioned through DPS
// ("Best practices for large-scale IoT device deployments",
// MicrosoftDocs/azure-docs articles/iot-dps/concepts-deploy-at-scale.md, and
// "IoT Hub Device reprovisioning concepts",
// MicrosoftDocs/azure-docs articles/iot-dps/concepts-device-reprovision.md):
//
//   - Cache the assignment (hub and device ID) and reconnect straight to that
//     hub on every boot; never register on every boot. Optionally
//     (Config.LookupFirst) ask DPS with a registration status lookup first.
//   - Without a usable cache (none, corrupt, or made for another identity):
//     register.
//   - The hub refuses the device (401, 403 or 404 class, e.g. an MQTT
//     CONNACK "not authorized"): register again.
//   - The hub keeps failing with retryable errors for RetryCachedHubFor
//     (default 15 min; the guidance says 15–30 min): look the device up
//     with DPS. Lookup says "assigned elsewhere": move to that hub without
//     registering. Lookup says "not assigned" (or 404): register. Lookup
//     fails: keep trying the cached hub for another window.
//   - A user-triggered reprovision (direct method or the CLI) registers
//     again while the current session stays up; the session is replaced
//     only when DPS assigns a different hub or device ID.
//
// The flow never gives up: errors that retrying would not fix by itself
// (a refused key, an untrusted server) are retried with backoff too, so a
// fix on the service side or in the device's clock is picked up without a
// restart. A run of failures of one step (DPS, DPS lookup, hub) is logged
// once when it starts, again only when its cause changes (DNS, connection
// refused, timeout, TLS, a clock that makes certificates look expired or
// not yet valid — with a hint to check the system clock), and once when the
// step works again; the attempts in between are logged at debug level.
// Status.Failing, Attempts, LastError and Hint show the outage.
//
// Waits between attempts come from package retry (429 Retry-After, 5xx and
// transport errors with backoff of at least 5 s). The clock is injected
// through Config.Retry.Clock so tests never sleep.
//
// The assignment is saved with state.Store, which writes only on change.
//
// # States
//
// The flow is a state machine (Machine), one method per state, each
// returning the next state and a delay; a delay > 0 passes through
// StateWait first. Its data (assignment, session, the two backoff
// schedules, the hub failure window, the current outage) lives in the
// Machine. Provisioner.Run drives one Machine for a real device; a
// simulator can drive many from one goroutine on a virtual clock, with an
// in-memory Store and fake DPS and Connect (ExampleMachine;
// BenchmarkFleetOutage runs 100,000 devices through a hub outage).
//
//	state     event                                      next (delay)
//	--------  -----------------------------------------  ------------------------------
//	(start)   no usable cache                            register
//	          cache, Config.ForceRegister (reload)       register
//	          cache, Config.LookupFirst                  lookup
//	          cache                                      connect
//	register  assigned, no session                       connect (new hub)
//	          assigned, same hub, session up             serve (session kept)
//	          assigned, other hub, session up            connect (old session closed)
//	          failed, session up                         serve
//	          failed (429)                               wait Retry-After+jitter → register
//	          failed (5xx, network, other)               wait backoff ≥ 5 s → register
//	lookup    assigned here or elsewhere                 connect (cache updated)
//	          not assigned, 404                          register
//	          failed                                     connect (cached hub, fresh window)
//	connect   session                                    serve
//	          refused (401, 403, 404, CONNACK refusal)   register
//	          failed, hub failing < RetryCachedHubFor    wait backoff (429: Retry-After) → connect
//	          failed, hub failing ≥ RetryCachedHubFor    lookup
//	serve     reprovision request                        register (session stays up)
//	          session ended: refused                     register
//	          session ended: client gave up (window)     lookup
//	          session ended: other                       as connect failed
//	wait      delay over                                 the state it was waiting for
//	          reprovision request                        register
//	any step  context ended                              stopped
//
// Backoff is full jitter above the 5 s floor: uniform in [5 s, ceiling],
// the ceiling doubling per failure in a row up to DefaultHubMaxBackoff (60
// s) for the hub and sdk/retry's 5 minutes for DPS; a success resets it.
// Status.NextAttempt says when a wait ends.
//
// Time: waits are timers on the injected clock (monotonic on a real one),
// and the RetryCachedHubFor window is the sum of the waits and attempts
// (each attempt counting at most 2 minutes), not a difference of wall
// times, so a wall-clock jump (NTP fixing a board that booted in 1970)
// neither ends a wait or the window early nor stretches it
// (TestClockJump*).
package provision
