// Package daemon is the porthole agent's lifecycle: it wires the config,
// the cached state, the provisioning flow, the IoT hub client and the
// stream bridge together, and runs until told to stop.
//
//   - SIGHUP reloads the config file. A file that does not load is refused
//     and the running config kept (logged). Live changes (stream policy,
//     log level, retry window, reprovision method name) apply in place;
//     changes to how the hub is reached rebuild the hub connection from the
//     cached assignment; changes to the device's DPS identity register
//     again; changes that need a new process (state_dir, log sink) are
//     refused with a request to restart.
//   - SIGTERM or SIGINT (or the context ending) stops taking new streams,
//     lets open ones finish for up to Options.GracePeriod (default 10 s),
//     closes the hub connection and returns nil.
//   - A unix socket, agent.sock in the state directory (mode 0600 in the
//     0700 state directory), answers the CLI: verb "status" (provisioned
//     hub, connected, open streams, last error) and verb "reprovision"
//     (register with DPS again, move to the assigned hub, answer with the
//     new assignment). The protocol is one JSON request line and one JSON
//     reply line per connection; see Request and Reply.
//
// No network at boot, DNS failing, DPS or the hub down, a clock in 1970:
// the agent keeps retrying with backoff and never exits; Run returns only
// when it is stopped or the config cannot start it. Each outage is logged
// once when it starts and once when it ends (see package provision); the
// SDK clients' per-attempt lines go to debug level. DPS calls make one
// attempt each so that the flow's backoff, log and status see every
// failure.
//
// The agent reports its health as twin reported properties under
// "porthole" (the shape is sdk/health's): after every connection and
// whenever it changes, coalesced and at most once per
// health.twin_interval (healthReporter).
//
// Logging goes where the config's log section says (stderr, syslog or a
// rotated file, through package logsink); its level follows reloads.
package daemon
