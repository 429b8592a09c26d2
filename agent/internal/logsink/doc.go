// Package logsink builds the agent's *slog.Logger from the log section of
// its config and sends the records where the config says:
//
//   - stderr: one line per record, as slog's text or JSON handler writes it;
//   - syslog: one message per record to the local syslog socket (/dev/log),
//     tagged "porthole-agent", with the syslog severity taken from the slog
//     level (RFC 3164 framing by default, RFC 5424 on request);
//   - file: a log file rotated by size for flash storage (agent.log →
//     agent.log.1 → … → agent.log.N, the oldest deleted), every file 0600.
//
// Whatever the destination, a redacting handler sits in front: attribute
// values under secret-looking keys (key, token, password, sig,
// SharedAccessKey…) are masked and SAS signatures inside any string are
// cut to "sig=…". It is a safety net; code must still not log secrets.
//
// Logging never blocks the agent for long and never fails it: a record that
// cannot be written (syslog daemon gone, disk full) is dropped and counted
// (Sink.Stats), and the first failure of a streak is reported once on
// stderr.
//
// The syslog client is written here over net.Dial("unixgram") rather than
// with log/syslog: log/syslog has no write deadline (a stalled syslog
// daemon would block every goroutine that logs), cannot take the severity
// per record from a slog handler, and is not built on Windows. This one is
// pure Go and builds for every target the agent ships on.
package logsink
