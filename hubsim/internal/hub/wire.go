package hub

// Wire constants of the IoT Hub personality. Each carries the upstream source
// it was checked against; wire_test.go pins the exact bytes.

// Device-side MQTT topics and topic prefixes.
const (
	// topicTwinResPrefix is where the hub answers twin requests:
	// "$iothub/twin/res/<status>/?$rid=<rid>[&$version=<v>]".
	// [Azure/azure-iot-sdk-c iothub_client/src/iothubtransport_mqtt_common.c],
	// [Azure/azure-iot-sdk-node device/transport/mqtt/src/mqtt_twin_client.ts]
	topicTwinResPrefix = "$iothub/twin/res/"
	// topicTwinGet is the device's "get the whole twin" request prefix.
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	topicTwinGet = "$iothub/twin/GET/"
	// topicTwinPatchReported is the device's reported-properties patch prefix.
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	topicTwinPatchReported = "$iothub/twin/PATCH/properties/reported/"
	// topicTwinPatchDesired is where desired-property patches are pushed:
	// "$iothub/twin/PATCH/properties/desired/?$version=<v>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	topicTwinPatchDesired = "$iothub/twin/PATCH/properties/desired/"
	// topicMethodPost is the hub → device method request prefix:
	// "$iothub/methods/POST/<name>/?$rid=<rid>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c],
	// [Azure/azure-iot-sdk-csharp iothub/device/src/Transport/Mqtt/MqttTransportHandler.cs]
	topicMethodPost = "$iothub/methods/POST/"
	// topicMethodRes is the device → hub method response prefix:
	// "$iothub/methods/res/<status>/?$rid=<rid>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	topicMethodRes = "$iothub/methods/res/"
	// topicStreamPost is the hub → device stream request prefix:
	// "$iothub/streams/POST/<name>/?$rid=<rid>&$url=<pct-encoded>&$auth=<token>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c@public-preview-DeviceStreaming],
	// [Azure/azure-iot-sdk-csharp MqttTransportHandler.cs@previews/deviceStreaming]
	topicStreamPost = "$iothub/streams/POST/"
	// topicStreamRes is the device → hub stream response prefix:
	// "$iothub/streams/res/<status>/?$rid=<rid>".
	// [same as topicStreamPost]
	topicStreamRes = "$iothub/streams/res/"
	// topicIoTHubPrefix covers every "$iothub/…" topic a device may use.
	topicIoTHubPrefix = "$iothub/"

	// Device-scoped topics are "devices/<id>/…" or
	// "devices/<id>/modules/<m>/…". [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	topicDevicesPrefix = "devices/"
	// segEvents follows the identity in a telemetry topic:
	// "devices/<id>/messages/events/<propbag>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c]
	segEvents = "messages/events/"
	// segDevicebound follows the identity in a C2D topic:
	// "devices/<id>/messages/devicebound/<propbag>".
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c],
	// [doc: Understand cloud-to-device messaging from an IoT hub (iot-hub-devguide-messages-c2d.md)]
	segDevicebound = "messages/devicebound/"

	// qRID, qVersion, qURL and qAuth are the query keys the hub uses in topics.
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c] ($rid, $version);
	// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c@public-preview-DeviceStreaming] ($url, $auth)
	qRID     = "$rid"
	qVersion = "$version"
	qURL     = "$url"
	qAuth    = "$auth"
)

// C2D system properties as the hub writes them in the devicebound property
// bag: "%24.mid=<id>&%24.to=%2Fdevices%2F<id>%2Fmessages%2FdeviceBound".
// [Azure/azure-iot-sdk-c iothubtransport_mqtt_common.c (SYS_TOPIC_STRING_FORMAT "%s%%24.%s=%s")],
// [doc: Understand cloud-to-device messaging from an IoT hub] (the "to" property).
const (
	sysPropPrefix = "$."
	sysMessageID  = "$.mid"
	sysTo         = "$.to"
)

// C2DQueueLimit is how many cloud-to-device messages one device queue holds.
// [doc: Understand cloud-to-device messaging from an IoT hub (iot-hub-devguide-messages-c2d.md)]:
// "Each device queue holds, at most, 50 cloud-to-device messages."
const C2DQueueLimit = 50

// Service REST headers.
const (
	// hdrErrorCode carries the error name on every error response.
	// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ExceptionHandlingHelper.cs (HttpErrorCodeName)]
	hdrErrorCode = "iothub-errorcode"
	// hdrRetryAfter tells a throttled client when to retry, in seconds
	// [RFC 9110 §10.2.3; doc: IoT Hub quotas and throttling].
	hdrRetryAfter = "Retry-After"
	// Stream request and response headers.
	// [Azure/azure-iot-sdk-csharp iothub/service/src/AmqpServiceClient.cs@preview_2020-10-14],
	// [Azure/azure-iot-sdk-node service/src/stream_initiation_result.ts@streams-preview]
	hdrStreamConnectTimeout  = "iothub-streaming-connect-timeout-in-seconds"
	hdrStreamResponseTimeout = "iothub-streaming-response-timeout-in-seconds"
	hdrStreamIsAccepted      = "iothub-streaming-is-accepted"
	hdrStreamURL             = "iothub-streaming-url"
	hdrStreamAuthToken       = "iothub-streaming-auth-token"
	// streamAccepted/streamRejected: Node compares is-accepted with exactly "True".
	// [Azure/azure-iot-sdk-node service/src/stream_initiation_result.ts@streams-preview]
	streamAccepted = "True"
	streamRejected = "False"
	// Query paging headers. [Azure/azure-iot-sdk-node service/src/registry.ts (_executeQueryFunc)],
	// [Azure/azure-iot-sdk-node service/src/service.json (Query_GetTwins responses)]
	hdrContinuation = "x-ms-continuation"
	hdrMaxItemCount = "x-ms-max-item-count"
	hdrItemType     = "x-ms-item-type"
)

// Method timeouts. [doc: Understand and invoke direct methods from IoT Hub
// (iot-hub-devguide-direct-methods.md)]: responseTimeoutInSeconds 5–300,
// connectTimeoutInSeconds 0–300.
const (
	methodMinTimeoutSeconds = 5
	methodMaxTimeoutSeconds = 300
)

// Azure error codes: the name goes in the iothub-errorcode header and in the
// body's "ErrorCode:<name>;<message>" Message; the number is for logs and
// tests. Values: [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ErrorCode.cs]
// and the v2 IotHubServiceErrorCode.cs; GatewayTimeout 504101 and
// IoTHubUnauthorized 401003: [doc: Understand and resolve Azure IoT Hub error
// codes (troubleshoot-error-codes.md)].
type errorCode struct {
	Status int
	Name   string
	Number int
}

var (
	errArgumentInvalid = errorCode{400, "ArgumentInvalid", 400004}
	errFormat          = errorCode{400, "IotHubFormatError", 400006}
	errUnauthorized    = errorCode{401, "IotHubUnauthorizedAccess", 401002}
	errQueueDepth      = errorCode{403, "DeviceMaximumQueueDepthExceeded", 403004}
	errDeviceNotFound  = errorCode{404, "DeviceNotFound", 404001}
	errModuleNotFound  = errorCode{404, "ModuleNotFound", 404010}
	errDeviceNotOnline = errorCode{404, "DeviceNotOnline", 404103}
	// errNotFound answers routes and hubs hubsim does not know; the name is the
	// one azure-iothub's translateError recognises
	// [Azure/azure-iot-sdk-node common/transport/http/src/rest_api_client.ts];
	// its number is not documented in the sources read, so none is claimed.
	errNotFound            = errorCode{404, "IotHubNotFound", 0}
	errDeviceAlreadyExists = errorCode{409, "DeviceAlreadyExists", 409001}
	errModuleAlreadyExists = errorCode{409, "ModuleAlreadyExistsOnDevice", 409301}
	errPreconditionFailed  = errorCode{412, "PreconditionFailed", 412001}
	errMessageTooLarge     = errorCode{413, "MessageTooLarge", 413001}
	errThrottling          = errorCode{429, "ThrottlingException", 429001}
	errServer              = errorCode{500, "ServerError", 500001}
	errGatewayTimeout      = errorCode{504, "GatewayTimeout", 504101}
	// errMethodNotAllowed: a known route with a verb it does not serve.
	errMethodNotAllowed = errorCode{405, "InvalidOperation", 400003}
)
