// Package mux carries many TCP connections over one device stream with
// hashicorp/yamux, and has the SOCKS5 handshake for `porthole socks`.
//
// # Why
//
// Without it every TCP connection costs one device stream, and IoT Hub
// limits streams (hubsim enforces 5 new streams per second per hub and 50
// open at once): a browser that opens 30 connections to a device's web UI
// waits seconds and eats a hub's budget. One multiplexed stream carries all
// of them, and several forwards (-L 8080:web -L 2222:ssh) at once.
//
// # Negotiation
//
// The only thing a service can attach to a stream request is its name
// (POST /twins/{id}/streams/{name} has no body; the device receives the
// name as the fourth level of the $iothub/streams/POST/<name>/... topic;
// PROTOCOL.md §8, §9). So the name is the negotiation: an operator that
// wants a multiplexed stream asks for StreamName ("porthole-mux-v1").
//
//   - A mux-capable agent with multiplexing enabled accepts it and runs a
//     Server on it.
//   - An agent without multiplexing, or with it disabled, has no target of
//     that name and rejects the request (is-accepted False) before any
//     byte flows. The operator falls back (porthole proxy: one paced stream
//     per connection) or says clearly that the device does not offer
//     multiplexing (porthole socks, which has no plain equivalent). No
//     yamux byte ever reaches a plain target such as sshd; the agent's
//     config refuses a target named StreamName so that this holds.
//   - Plain operators (Microsoft's C client, porthole stdio, Node or C#
//     service code) keep asking for target names ("ssh") and get a plain
//     byte stream exactly as before.
//
// As a second guard, NewClient opens a control stream first and waits for
// the device's reply; a peer that does not answer it with a valid reply
// yields ErrNoMux and the client sends nothing further.
//
// # Inside the stream
//
// yamux frames, protocol version 0 (hashicorp/yamux spec.md); the operator
// is the yamux client. Every yamux stream starts with an open Request
// (version, kind, name) from the operator and a Reply (version, code, id,
// message) from the device; the codes are SOCKS5's reply codes. The first
// stream is the control stream (KindControl): the device answers it with
// its limits and later writes one JSON Notice line per connection it
// closes on its own (a reload removed the target, the target failed), so
// the operator can say why. The operator writes the same Notice lines the
// other way for connections whose operator end failed (its local client
// reset mid-transfer). Either way the receiver tears its end down at once:
// a yamux Close is only a half-close, and without the notice the other end
// would go on writing into a window nobody reads (or keep a target
// sending) until CloseTimeout resets it. A device from before these
// operator notices reads and discards them. KindTarget names one of the device's targets; KindDial asks for
// host:port, which the device's allow-list decides (default deny).
//
// # Tuning
//
// yamux's keepalive is off: sdk/stream pings the whole path with WebSocket
// ping/pong. The receive window per connection is 512 KiB (twice yamux's
// minimum; see DefaultWindow), the accept backlog equals MaxConns, Join
// moves bulk data in yamux frames of up to 256 KiB, and a joiner puts each
// yamux data header into the same WebSocket frame as the start of its
// body instead of a 12-byte frame of its own.
// Connections half-close: an end that sends EOF can still receive (Join).
//
// # Goroutines
//
// A Server runs one goroutine per open connection plus one per copy
// direction, all owned by Serve, which waits for them. A Client runs one
// notice reader, owned by the Client and waited for by Close. yamux runs
// its own send and receive loops, stopped when the session closes.
package mux
