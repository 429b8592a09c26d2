// Package iothub is porthole's IoT Hub device client: it connects a device
// or module to Azure IoT Hub (or hubsim) over MQTT 3.1.1 — TLS on port 8883
// or a TLS WebSocket on port 443 — and offers device twins, direct methods,
// telemetry, cloud-to-device messages and device-stream requests.
//
// Dial connects once and returns a Client that keeps itself connected:
//
//   - SAS tokens are minted from the device key on every connect and renewed
//     by reconnecting after 80% of their lifetime, as the C SDK does; X.509
//     devices present their certificate and an empty password.
//   - A dropped connection (including a keep-alive ping left unanswered) is
//     re-established under sdk/retry's policy. A refusal of the credentials
//     on reconnect is permanent: Done closes and Err returns the
//     *ConnectError, so that the device can provision again through DPS.
//   - Every (re)connect subscribes again to what the registered handlers need
//     (the hub may not keep sessions), and reads the twin again to catch up
//     on desired properties changed while the device was away.
//   - Twin requests are correlated by $rid, bounded by their context, fail
//     fast while disconnected and are sent again when a reconnect cuts them
//     off; telemetry is QoS 1 and re-sent after a reconnect until the hub
//     acknowledges it.
//
// Topic strings and user names come from sdk/internal/topic, tokens from
// sdk/auth, stream WebSockets from sdk/stream. Transport facts (ports, the
// WebSocket path, keep-alive and token lifetimes) are in wire.go with their
// upstream sources.
//
// # Goroutines
//
// A Client owns: its run loop (connection, renewal, reconnects), three
// ordered delivery queues (desired properties, cloud-to-device messages,
// connection state), and one goroutine per direct-method call and per
// stream request. Close cancels them all and waits. The MQTT library's own
// goroutines belong to one connection each and stop when it is
// disconnected.
package iothub
