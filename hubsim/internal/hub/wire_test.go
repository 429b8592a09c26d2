package hub

import "testing"

// TestWireConstants pins every wire string; the sources are cited in wire.go.
func TestWireConstants(t *testing.T) {
	pins := []struct{ got, want, src string }{
		{topicTwinResPrefix, "$iothub/twin/res/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicTwinGet, "$iothub/twin/GET/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicTwinPatchReported, "$iothub/twin/PATCH/properties/reported/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicTwinPatchDesired, "$iothub/twin/PATCH/properties/desired/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicMethodPost, "$iothub/methods/POST/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicMethodRes, "$iothub/methods/res/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{topicStreamPost, "$iothub/streams/POST/", "azure-iot-sdk-c @public-preview-DeviceStreaming"},
		{topicStreamRes, "$iothub/streams/res/", "azure-iot-sdk-c @public-preview-DeviceStreaming"},
		{topicDevicesPrefix, "devices/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{segEvents, "messages/events/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{segDevicebound, "messages/devicebound/", "azure-iot-sdk-c iothubtransport_mqtt_common.c"},
		{qRID, "$rid", "azure-iot-sdk-c"},
		{qVersion, "$version", "azure-iot-sdk-c"},
		{qURL, "$url", "azure-iot-sdk-c @public-preview-DeviceStreaming"},
		{qAuth, "$auth", "azure-iot-sdk-c @public-preview-DeviceStreaming"},
		{sysMessageID, "$.mid", "azure-iot-sdk-c SYS_TOPIC_STRING_FORMAT"},
		{sysTo, "$.to", "doc: iot-hub-devguide-messages-c2d.md"},
		{hdrErrorCode, "iothub-errorcode", "azure-iot-sdk-csharp ExceptionHandlingHelper.cs"},
		{hdrStreamConnectTimeout, "iothub-streaming-connect-timeout-in-seconds", "azure-iot-sdk-csharp AmqpServiceClient.cs@preview_2020-10-14"},
		{hdrStreamResponseTimeout, "iothub-streaming-response-timeout-in-seconds", "same"},
		{hdrStreamIsAccepted, "iothub-streaming-is-accepted", "same"},
		{hdrStreamURL, "iothub-streaming-url", "same"},
		{hdrStreamAuthToken, "iothub-streaming-auth-token", "same"},
		{streamAccepted, "True", "azure-iot-sdk-node stream_initiation_result.ts@streams-preview"},
		{streamRejected, "False", "same"},
		{hdrContinuation, "x-ms-continuation", "azure-iot-sdk-node service/src/registry.ts"},
		{hdrMaxItemCount, "x-ms-max-item-count", "same"},
		{hdrItemType, "x-ms-item-type", "azure-iot-sdk-node service/src/service.json"},
		{contentTypeJSON, "application/json; charset=utf-8", "azure-iot-sdk-node rest_api_client.ts"},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%q, want %q (%s)", p.got, p.want, p.src)
		}
	}
	if C2DQueueLimit != 50 {
		t.Errorf("C2DQueueLimit %d, want 50 (doc: iot-hub-devguide-messages-c2d.md)", C2DQueueLimit)
	}
	if methodMinTimeoutSeconds != 5 || methodMaxTimeoutSeconds != 300 {
		t.Errorf("method timeouts %d..%d, want 5..300 (doc: iot-hub-devguide-direct-methods.md)", methodMinTimeoutSeconds, methodMaxTimeoutSeconds)
	}
}

// TestErrorCodes pins the Azure error names and numbers
// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ErrorCode.cs, IotHubServiceErrorCode.cs;
// doc: troubleshoot-error-codes.md].
func TestErrorCodes(t *testing.T) {
	cases := []struct {
		code   errorCode
		status int
		name   string
		number int
	}{
		{errArgumentInvalid, 400, "ArgumentInvalid", 400004},
		{errFormat, 400, "IotHubFormatError", 400006},
		{errUnauthorized, 401, "IotHubUnauthorizedAccess", 401002},
		{errQueueDepth, 403, "DeviceMaximumQueueDepthExceeded", 403004},
		{errDeviceNotFound, 404, "DeviceNotFound", 404001},
		{errModuleNotFound, 404, "ModuleNotFound", 404010},
		{errDeviceNotOnline, 404, "DeviceNotOnline", 404103},
		{errDeviceAlreadyExists, 409, "DeviceAlreadyExists", 409001},
		{errModuleAlreadyExists, 409, "ModuleAlreadyExistsOnDevice", 409301},
		{errPreconditionFailed, 412, "PreconditionFailed", 412001},
		{errThrottling, 429, "ThrottlingException", 429001},
		{errServer, 500, "ServerError", 500001},
		{errGatewayTimeout, 504, "GatewayTimeout", 504101},
		{errNotFound, 404, "IotHubNotFound", 0},
	}
	for _, c := range cases {
		if c.code.Status != c.status || c.code.Name != c.name || c.code.Number != c.number {
			t.Errorf("%+v, want {%d %s %d}", c.code, c.status, c.name, c.number)
		}
	}
}

// TestRESTErrorBody pins the body shape both SDKs parse:
// Message = "ErrorCode:<name>;<text>".
func TestRESTErrorBody(t *testing.T) {
	got := string(formatRESTError(errDeviceNotFound, "device d1; gone", t0))
	want := `{"Message":"ErrorCode:DeviceNotFound;device d1, gone","ExceptionMessage":"Tracking ID:hubsim-` +
		"1740830400000000000" + `-TimeStamp:03/01/2025 12:00:00"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
