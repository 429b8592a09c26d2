// Package bridge joins accepted device streams to local TCP services.
//
// A stream request names a stream ("ssh"); the policy (config "streams")
// maps names to targets (default ssh → 127.0.0.1:22) and rejects every
// other name, rejects requests beyond MaxConcurrent open streams, and
// closes a stream when no byte has moved either way for IdleTimeout.
//
// For an allowed request the bridge dials the target first and rejects the
// stream when the target is down, so the operator gets a clear "rejected"
// instead of a connection that closes at once. Then it accepts the stream
// and copies bytes both ways with sdk/stream's Bridge until either side
// ends, which closes the other. TCP_NODELAY stays on (Go's default):
// interactive SSH and small-window servers such as dropbear depend on it.
//
// Handle answers the request before it returns (sdk/iothub rejects a
// request its handler left unanswered); the byte pump then runs on one
// goroutine owned by the Bridge (plus the one stream.Bridge starts and
// waits for). Shutdown stops taking new streams and waits for the open ones
// up to a deadline, then cuts them. Every
// stream ends with one log line carrying its byte counts and duration
// under the keys stream, device and target.
//
// # Multiplexed streams, the registry, revocation, audit
//
// A request for the stream name config.MuxStreamName (when streams.mux is
// enabled) is served by sdk/stream/mux: many connections inside one stream,
// each asking for a named target or (SOCKS) for host:port, which the
// streams.socks.allow list decides (default deny; a host name is resolved
// here and the address that was checked is the one dialled). Limits per
// stream and per agent come from the config.
//
// The bridge keeps the one registry of open streams (request id, the hub's
// stream id, name, target, start, bytes each way) and, through each mux
// server, of the connections inside them; Stats returns it for
// `porthole-agent status`. SetPolicy (a reload) closes exactly what the new
// policy no longer allows: a plain stream with close status CloseRevoked
// and a reason, a mux connection with a notice on the mux control stream.
//
// Every stream and every mux connection ends with one audit record
// (stream.AuditRecord: JSON line in the audit file, and a log line at
// info), rejected ones included. Streams are pinged (streams.keepalive) so
// a dead path closes within the configured timeout.
package bridge
