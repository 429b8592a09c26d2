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
//   - there are no retained messages, no will messages and no $SYS topics;
//     the only session state kept across connections is subscriptions (see
//     "Persistent sessions" below);
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
// Persistent sessions (MQTT 3.1.1 §3.1.2.4, §3.2.2.2). IoT Hub keeps the
// subscriptions of a device that connects with clean session 0 for its next
// clean session 0 connection (MicrosoftDocs/azure-docs
// articles/iot/iot-mqtt-connect-to-iot-hub.md, "Receiving cloud-to-device
// messages"), and the Node device SDK relies on
// it: it renews its SAS token by reconnecting with clean session 0 and does
// not subscribe again (the C SDK logs CONNACK session present 1 on such a
// reconnect, Azure/azure-iot-sdk-c issues #902 and #2511). So:
//   - when a client that connected with clean session 0 goes away (DISCONNECT,
//     network error, takeover, Outbound.Close, keepalive …), its subscriptions
//     are stored under its takeover identity (personality, username realm,
//     client id), each with the QoS it asked for and the QoS it was granted;
//   - a later CONNECT with clean session 0 and that identity gets CONNACK
//     session present 1 and resumes them: before the CONNACK goes out, each
//     filter is offered to the new Session through Session.Subscribe (with the
//     QoS the client once asked for) exactly as if the client had subscribed
//     again, so the personality learns what the device listens to; a filter
//     the Session refuses is dropped silently (MQTT 3.1.1 has no way to tell
//     the client), an accepted one is live for Outbound.Publish and
//     Outbound.Subscribed at no more than the QoS granted before. Whatever
//     the Session publishes from those Subscribe calls reaches the client
//     after the CONNACK. A takeover resumes the same way, once the old
//     client's Disconnected has returned;
//   - a CONNECT with clean session 1 discards any stored session (session
//     present 0) and nothing is stored when that connection ends;
//   - the store is bounded: a session not resumed within Config.SessionExpiry
//     (default DefaultSessionExpiry, 24 h; IoT Hub documents no expiry at all)
//     is forgotten, and beyond Config.MaxSessions (default
//     DefaultMaxSessions) the least recently stored is dropped. Expiry is
//     checked on resume and whenever a session is stored; no goroutine runs;
//   - only subscriptions are kept. QoS 1 messages published while the client
//     was away are not queued by the broker, and unacknowledged QoS 1
//     PUBLISHes are not re-sent on resume (§4.4 would ask for it): the
//     Outbound they were sent on ends with the connection, PublishAcked
//     callbacks report false, and redelivery is the personality's business
//     (the hub requeues an unacknowledged cloud-to-device message for the
//     next connection). Re-sending here as well would deliver it twice.
//
// The broker is a small server of its own built on the packet codec of
// github.com/mochi-mqtt/server/v2/packets rather than on mochi's Server: the
// Server fans every publish out through one topic tree (every device subscribes
// to the same $iothub/twin/res/#, so one device would see another's replies),
// keeps sessions behind the personality's back, and can only refuse a CONNECT
// with one return code.
//
// Goroutines: each connection runs its reader in the goroutine that called
// ServeConn (or ServeHTTP) and owns one writer goroutine, which it stops and
// waits for before calling Session.Disconnected. [Broker.Close] disconnects
// every client and waits until all ServeConn calls have returned. The
// serving contexts are watched with one context.AfterFunc per distinct
// context, shared by its connections (not one per connection), so a connect
// storm under one server context does not queue on that context's lock.
package broker
