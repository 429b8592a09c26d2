package relay

import "time"

// Wire constants of the streaming endpoint, each with where it was checked.
const (
	// pathPrefix starts every stream URL path; the rest of the path names
	// hub, device, optional module, stream name and stream id. The example
	// URL in Azure/azure-iot-sdk-csharp (preview_2020-10-14)
	// iothub/service/tests/ServiceClientTests.cs has the form
	// wss://<gateway>/bridges/<hub>/<device>/.../<id>. Nothing goes in the
	// query: the C SDK's WebSocket client drops it (Azure/azure-iot-sdk-c
	// public-preview-DeviceStreaming, observed).
	pathPrefix = "/bridges/"

	// modulesSegment separates device and module in a module stream's path.
	modulesSegment = "modules"

	// bearerScheme is the Authorization scheme of the stream token.
	// Source: Azure/azure-iot-sdk-c (public-preview-DeviceStreaming)
	// iothub_client/samples/iothub_client_c2d_streaming_proxy_sample/
	// iothub_client_c2d_streaming_proxy_sample.c, and Azure/azure-iot-sdk-node
	// (streams-preview) service/samples/tcp_streaming_proxy.js.
	bearerScheme = "bearer "

	// maxFramePayload is the largest frame payload the gateway forwards
	// unsplit: the C proxy sample above splits its data at 65536 bytes
	// (MAX_WEBSOCKET_PAYLOAD_SIZE_IN_BYTES).
	maxFramePayload = 64 << 10

	// defaultHandshakeTimeout: the handshake (service request, device
	// answer, both WebSockets up) must finish within 60 s.
	// Source: MicrosoftDocs/azure-docs articles/iot-hub/iot-hub-device-streams-overview.md.
	defaultHandshakeTimeout = 60 * time.Second

	// eventCategory is the resource-log category of stream events.
	// Source: MicrosoftDocs/azure-docs articles/iot-hub/monitor-iot-hub-reference.md
	// (DeviceStreams resource logs).
	eventCategory = "DeviceStreams"
)

// WebSocket close codes the relay sends (RFC 6455 §7.4.1).
const (
	closeNormal      = 1000 // the other side closed normally
	closeGoingAway   = 1001 // the other side dropped, or the relay shuts down
	closeUnsupported = 1003 // a text frame on a byte stream
	closeError       = 1011 // handshake timeout or cancelled stream
	// closeAppMin..closeAppMax are the statuses reserved for applications
	// (RFC 6455 §7.4.2); the relay forwards them to the other side.
	closeAppMin = 4000
	closeAppMax = 4999
)

// closeGrace bounds how long the relay waits for a close frame to be written
// and for the client's answering close frame.
const closeGrace = 2 * time.Second
