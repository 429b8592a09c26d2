// Package dps is porthole's Azure IoT Hub Device Provisioning Service (DPS)
// device client: it registers a device, polls the registration until DPS
// has decided, and looks up a device's current registration.
//
// A [Client] speaks one of three transports, chosen in [Config]:
//
//   - "https" (default): the device REST API on port 443 — PUT
//     .../register, GET .../operations/{id}, POST .../registrations/{id}
//     (Azure/azure-rest-api-specs specification/deviceprovisioningservices/
//     data-plane/DeviceProvisioningServices/device/routes.tsp).
//   - "mqtt": MQTT 3.1.1 over TLS on port 8883 with the `$dps/registrations/`
//     topics (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-dps.md).
//   - "mqtt-ws": the same over a TLS WebSocket on port 443, path
//     /$iothub/websocket, subprotocol "mqtt".
//
// The device proves who it is with a symmetric key (a SAS token for
// `<idScope>/registrations/<registrationId>`, skn=registration, signed by
// package auth; group enrollments derive the device key with
// auth.DeriveGroupKey) or with an X.509 certificate presented as the TLS
// client certificate.
//
// Config.ProxyURL tunnels every connection through an HTTP proxy with
// CONNECT (for MQTT/TLS to port 8883, which many proxies refuse; MQTT-WS
// is the transport for locked-down networks).
//
// Registration status lookup has no MQTT form (DPS's MQTT API has only the
// register and operation-status topics), so [Client.Lookup] always uses
// HTTPS.
//
// # Retries and time
//
// Every request goes through package retry: 429 waits the server's
// Retry-After (header or `retry-after=` topic property, seconds or
// HTTP-date), 5xx and transport failures back off for at least 5 s with
// jitter, other 4xx are permanent and come back as a [*StatusError]. The
// waits between operation-status polls follow the retry-after DPS sends
// with "assigning" (2 s when it sends none, as the Node SDK does). All
// waits run on Config.Retry.Clock, so tests inject a fake clock and never
// sleep; a canceled context stops a call at once.
//
// # Goroutines
//
// A Client starts nothing in the background. Each Register or Lookup opens
// its own connections and closes them, waiting for paho's goroutines, before
// it returns.
package dps
