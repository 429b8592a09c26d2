// Package broker is hubsim's MQTT 3.1.1 server: the front door of both the
// simulated IoT Hub and the simulated DPS.
//
// The broker knows nothing about either service. It accepts connections
// (MQTT over TLS through [Broker.ServeConn], MQTT over WebSocket through
// [Broker.ServeHTTP]), routes every CONNECT by its username to the first
// [Personality] that claims it, and from then on hands everything the client
// does to that personality's [Session]. The personality talks back through
// the client's [Outbound], which delivers to that one client only.
//
// Deliberately unlike a general-purpose broker, and like IoT Hub:
//   - nothing is ever routed from one client to another; a client PUBLISH goes
//     to its Session and nowhere else;
//   - there are no retained messages, no will messages, no $SYS topics, and no
//     sessions kept across connections (a CONNECT with clean session 0 is
//     accepted, but CONNACK always says "no session present");
//   - QoS 2 is not supported: a client that publishes at QoS 2 is disconnected
//     and subscriptions are granted at most QoS 1;
//   - everything is denied by default: a username no personality claims is
//     refused with CONNACK 0x04.
//
// What a personality can rely on:
//   - a subscription is live from the moment Session.Subscribe is asked, so the
//     session may publish to it right away (MQTT 3.1.1 §3.8.4 allows such
//     PUBLISHes to precede the SUBACK); a refusal removes it again;
//   - publishes to one client keep their order, and are written after any
//     SUBACK or PUBACK queued before them;
//   - a second connection with the same client id, accepted by the same
//     personality with the same username realm (the part before the first
//     '/': hub host name or DPS ID scope), takes over: the new Connect is called
//     first (a failed one leaves the old client alone), then the old session's
//     Disconnected(ErrTakenOver) returns, then the new client gets its CONNACK;
//   - Outbound.Close and every other server-side disconnect drop the
//     connection at once; packets still queued for the client are discarded.
//
// The broker is a small server of its own built on the packet codec of
// github.com/mochi-mqtt/server/v2/packets rather than on mochi's Server: the
// Server fans every publish out through one topic tree (every device subscribes
// to the same $iothub/twin/res/#, so one device would see another's replies),
// keeps sessions, and can only refuse a CONNECT with one return code.
//
// Goroutines: each connection runs its reader in the goroutine that called
// ServeConn (or ServeHTTP) and owns one writer goroutine, which it stops and
// waits for before calling Session.Disconnected. [Broker.Close] disconnects
// every client and waits until all ServeConn calls have returned.
package broker
