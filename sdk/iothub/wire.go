package iothub

import "time"

// Wire constants of the IoT Hub device MQTT endpoint. Topic strings and
// usernames are built by sdk/internal/topic; only the transport facts live
// here. Each one names the upstream source it was checked against.
const (
	// PortMQTT is the MQTT-over-TLS port
	// (Azure/azure-iot-sdk-c iothub_client/src/iothubtransportmqtt.c, port 8883).
	PortMQTT = 8883
	// PortWebSocket is the MQTT-over-WebSocket port
	// (Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_ws.ts:
	// "wss://<host>:443/$iothub/websocket";
	// Azure/azure-iot-sdk-c iothub_client/src/iothubtransportmqtt_websockets.c).
	PortWebSocket = 443
	// WebSocketPath is the resource MQTT-over-WebSocket connects to (same
	// sources as PortWebSocket).
	WebSocketPath = "/$iothub/websocket"
	// WebSocketSubprotocol is the subprotocol offered on the upgrade: MQTT
	// 3.1.1 §6 names it "mqtt", which the Node SDK (through mqtt.js) sends;
	// the C SDK sends "MQTT" (iothubtransportmqtt_websockets.c).
	WebSocketSubprotocol = "mqtt"

	// DefaultKeepalive is the MQTT keep-alive: 4 minutes, the C SDK's
	// DEFAULT_MQTT_KEEPALIVE (Azure/azure-iot-sdk-c
	// iothub_client/src/iothubtransport_mqtt_common.c). The C# SDK uses 300 s
	// and the Node SDK 180 s; all stay below the hub's idle limit.
	DefaultKeepalive = 240 * time.Second
	// DefaultPingTimeout bounds the wait for a PINGRESP before the link is
	// declared dead: 30 s, as the C# SDK waits
	// (MqttTransportSettings.KeepAliveInSeconds remarks, Azure SDK for .NET
	// reference). Shorter keep-alives shorten it to half the keep-alive.
	DefaultPingTimeout = 30 * time.Second
	// DefaultTokenTTL is the lifetime of the SAS tokens the client mints:
	// one hour, as the C SDK (Azure/azure-iot-sdk-c
	// doc/connection_and_messaging_reliability.md: "SAS tokens are valid for
	// 1 hour, and a new one is sent every 48 minutes") and the C# SDK
	// (SasTokenTimeToLive, 60 minutes).
	DefaultTokenTTL = time.Hour
	// tokenRenewFraction: reconnect with a fresh token after this fraction of
	// the TTL, the C SDK's SAS_REFRESH_MULTIPLIER .8
	// (iothub_client/src/iothubtransport_mqtt_common.c).
	tokenRenewFraction = 0.8
	// DefaultConnectTimeout bounds one connection attempt (TCP, TLS,
	// WebSocket, CONNECT/CONNACK): the C SDK's DEFAULT_CONNACK_TIMEOUT of
	// 30 s (iothubtransport_mqtt_common.c).
	DefaultConnectTimeout = 30 * time.Second

	// StatusMethodNotImplemented is the reply to a direct method without
	// a handler, with an empty payload: C# InternalClient.OnMethodCalledAsync
	// answers MethodResponseStatusCode.MethodNotImplemented (501) without a
	// body (Azure/azure-iot-sdk-csharp iothub/device/src/InternalClient.cs,
	// MethodResponseStatusCode.cs). The hub forwards an empty body as JSON
	// null.
	StatusMethodNotImplemented = 501
	// StatusMethodHandlerError is the reply when a handler's response cannot
	// be encoded as JSON: C# MethodResponseStatusCode.UserCodeException.
	StatusMethodHandlerError = 500

	// Subscription QoS: the C SDK subscribes to twin, method and stream
	// topics at QoS 0 and to cloud-to-device messages at QoS 1
	// (iothubtransport_mqtt_common.c, DELIVER_AT_MOST_ONCE /
	// DELIVER_AT_LEAST_ONCE); telemetry is published at QoS 1 and replies
	// (twin requests, method and stream responses) at QoS 0.
	qosRequests  = 0
	qosC2D       = 1
	qosTelemetry = 1
)

// healthyAfter is how long a connection must have lived for a drop to be
// treated as a fresh incident: the next reconnect is then immediate and the
// backoff starts over. Shorter-lived connections keep backing off, so a hub
// that accepts and then drops a device is not hammered.
const healthyAfter = time.Minute
