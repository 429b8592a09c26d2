package stream

// Wire constants of the device-streams WebSocket. Each one cites where it was
// checked; see the Azure IoT C SDK branch public-preview-DeviceStreaming and
// the C# SDK branch previews/deviceStreaming.
const (
	// MaxFramePayload is the largest payload Write puts in one WebSocket
	// frame: the streaming gateway's stated maximum individual payload.
	// Source: Azure/azure-iot-sdk-c (public-preview-DeviceStreaming)
	// iothub_client/samples/iothub_client_c2d_streaming_proxy_sample/
	// iothub_client_c2d_streaming_proxy_sample.c, MAX_WEBSOCKET_PAYLOAD_SIZE_IN_BYTES (65536).
	MaxFramePayload = 64 << 10

	// authScheme prefixes the stream token in the Authorization header.
	// Source: Azure/azure-iot-sdk-csharp (previews/deviceStreaming)
	// e2e/test/iothub/DeviceStreamingE2ETests.cs ("Bearer" authentication
	// header on the ClientWebSocket), and the C proxy sample above.
	authScheme = "Bearer "

	// closeNormal is the status code Close sends (RFC 6455 §7.4.1, 1000).
	closeNormal = 1000

	// CloseGoingAway is the status for an endpoint that goes away, e.g. a
	// device agent shutting down (RFC 6455 §7.4.1, 1001).
	CloseGoingAway = 1001

	// maxCloseReason is the most reason bytes a close frame carries: a
	// control frame's payload is at most 125 bytes, 2 of them the status
	// (RFC 6455 §5.5).
	maxCloseReason = 123
)
