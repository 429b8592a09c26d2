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
package provision
