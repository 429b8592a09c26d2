// Package stream carries an IoT Hub device stream: an opaque, ordered byte
// stream tunnelled through a WebSocket to the hub's streaming endpoint.
//
// Both ends of a device stream (the device that accepted the stream request
// and the service that asked for it) open a TLS WebSocket to the URL the hub
// hands out, authenticate with "Authorization: Bearer <token>", and then
// exchange binary frames whose boundaries carry no meaning. [Dial] opens such
// a WebSocket and returns a [Conn], which is a [net.Conn]. [Bridge] copies
// bytes both ways between two net.Conns (for example a Conn and the local
// sshd socket) with pooled buffers.
//
// # System calls
//
// The hot path is shaped for few system calls and wake-ups: a dialled Conn
// hands each frame's TLS records (crypto/tls writes at most 16 KiB per
// record) to the kernel with one write, WriteTo passes whole frames to its
// writer, and frame payloads are read straight into the caller's buffer.
//
// # Concurrency
//
// A Conn follows gorilla/websocket's rule: at most one goroutine reads
// (Read, WriteTo) and at most one goroutine writes (Write, ReadFrom) at a
// time. Close, SetDeadline, SetReadDeadline and SetWriteDeadline may be called
// from any goroutine at any time, and Close unblocks a pending Read or Write.
//
// # Close and half-close
//
// Conn has no CloseWrite. A WebSocket close frame ends the whole connection
// in practice: RFC 6455 forbids sending data after a close frame, endpoints
// answer a close frame with their own right away, and the streaming gateway
// forcibly closes the other side when either side closes. Offering a
// half-close would therefore be a lie; callers that need an end-of-data
// signal without closing must put it in their own protocol.
//
// # Keepalive and close reasons
//
// StartKeepalive pings the peer and closes a Conn from which nothing (data,
// ping or pong) arrived for the timeout; Read and Write then fail with an
// error wrapping ErrKeepalive. Azure does not document what its streaming
// endpoint does with WebSocket control frames; hubsim's relay forwards
// pings and pongs end to end, so a ping measures the whole path, and every
// WebSocket client involved (Microsoft's C device client, gorilla, Node's
// ws, .NET) answers pings. CloseWith closes with a status and a reason the
// peer reads as a *CloseError; hubsim passes application statuses
// (4000-4999) through to the other side.
//
// # Audit
//
// AuditRecord is the one shape of an audit line, written by the agent for
// each stream and mux connection and by porthole --audit; AuditLog writes
// them as JSON lines.
//
// # Deadlines
//
// Deadlines map to the WebSocket connection. An expired deadline returns an
// error wrapping [os.ErrDeadlineExceeded], and, unlike a plain TCP socket, it
// is fatal for that direction: gorilla/websocket cannot resume a frame that a
// timeout interrupted, so later calls in the same direction fail too. Use
// deadlines to give up on a stream, not to poll it.
package stream
