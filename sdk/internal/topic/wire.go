package topic

// Every literal the device puts on, or expects from, the MQTT wire. Sources
// are the official device SDKs: "C" = Azure/azure-iot-sdk-c, "Node" =
// Azure/azure-iot-sdk-node, "C#" = Azure/azure-iot-sdk-csharp.

// API versions.
const (
	// HubAPIVersion is sent in the hub CONNECT username. 2020-09-30 is the
	// version the C SDK sends, including its device-streams preview
	// (C iothub_client/inc/internal/iothub_internal_consts.h IOTHUB_API_VERSION).
	HubAPIVersion = "2020-09-30"
	// DPSAPIVersion is sent in the DPS CONNECT username
	// (C provisioning_client/inc/azure_prov_client/prov_client_const.h PROV_API_VERSION).
	DPSAPIVersion = "2021-06-01"
)

// Subscriptions (topic filters).
const (
	// SubTwinResponses: responses to twin GET and reported PATCH
	// (C iothub_client/src/iothubtransport_mqtt_common.c TOPIC_GET_DESIRED_STATE).
	SubTwinResponses = "$iothub/twin/res/#"
	// SubTwinDesired: desired-property patches
	// (C iothubtransport_mqtt_common.c TOPIC_NOTIFICATION_STATE).
	SubTwinDesired = "$iothub/twin/PATCH/properties/desired/#"
	// SubMethods: direct-method requests
	// (C iothubtransport_mqtt_common.c TOPIC_DEVICE_METHOD_SUBSCRIBE).
	SubMethods = "$iothub/methods/POST/#"
	// SubStreamRequests and SubStreamResponses: device-streams preview
	// (C iothubtransport_mqtt_common.c@public-preview-DeviceStreaming;
	// C# iothub/device/src/Transport/Mqtt/MqttTransportHandler.cs@previews/deviceStreaming).
	SubStreamRequests  = "$iothub/streams/POST/#"
	SubStreamResponses = "$iothub/streams/res/#"
	// SubDPSResponses: DPS register/poll responses
	// (C provisioning_client/src/prov_transport_mqtt_common.c MQTT_SUBSCRIBE_TOPIC).
	SubDPSResponses = "$dps/registrations/res/#"
)

// Topic building blocks.
const (
	// devices/<id>/messages/events/ and devices/<d>/modules/<m>/messages/events/
	// (C iothubtransport_mqtt_common.c TOPIC_DEVICE_EVENTS, TOPIC_MODULE_EVENTS).
	devicesPrefix = "devices/"
	modulesPart   = "/modules/"
	eventsSuffix  = "/messages/events/"
	// devices/<id>/messages/devicebound/ (C TOPIC_DEVICE_MSG without '#').
	deviceboundSuffix = "/messages/devicebound/"

	// Twin (C iothubtransport_mqtt_common.c GET_PROPERTIES_TOPIC,
	// REPORTED_PROPERTIES_TOPIC; Node device/transport/mqtt/src/mqtt_twin_client.ts).
	twinGetPrefix     = "$iothub/twin/GET/?$rid="
	twinPatchPrefix   = "$iothub/twin/PATCH/properties/reported/?$rid="
	twinResPrefix     = "$iothub/twin/res/"
	twinDesiredPrefix = "$iothub/twin/PATCH/properties/desired/"
	// Methods (C iothubtransport_mqtt_common.c DEVICE_METHOD_RESPONSE_TOPIC;
	// request shape from Node device/transport/mqtt/src/mqtt.ts _onDeviceMethod).
	methodPostPrefix = "$iothub/methods/POST/"
	methodResPrefix  = "$iothub/methods/res/"
	// Streams (C iothubtransport_mqtt_common.c@public-preview-DeviceStreaming).
	streamPostPrefix = "$iothub/streams/POST/"
	streamResPrefix  = "$iothub/streams/res/"

	// DPS (C prov_transport_mqtt_common.c MQTT_REGISTER_MESSAGE_FMT,
	// MQTT_STATUS_MESSAGE_FMT, MQTT_TOPIC_STATUS_PREFIX).
	dpsRegisterPrefix = "$dps/registrations/PUT/iotdps-register/?$rid="
	dpsStatusPrefix   = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
	dpsResPrefix      = "$dps/registrations/res/"
)

// Query keys in topics and usernames.
const (
	KeyRID         = "$rid"             // request id (C REQUEST_ID_PROPERTY "?$rid=")
	KeyVersion     = "$version"         // twin version (C# MqttTransportHandler.cs VersionTopicKey)
	KeyURL         = "$url"             // stream WebSocket URL, percent-encoded (C streaming preview)
	KeyAuth        = "$auth"            // stream bearer token, raw (C streaming preview)
	KeyOperationID = "operationId"      // DPS poll (C MQTT_STATUS_MESSAGE_FMT)
	KeyRetryAfter  = "retry-after"      // DPS response (Node provisioning/transport/mqtt/src/mqtt.ts)
	KeyAPIVersion  = "api-version"      // usernames (C iothubtransport_mqtt_common.c, prov_transport_mqtt_common.c)
	KeyClientType  = "DeviceClientType" // hub username (C buildConfigForUsernameStep2IfNeeded)
	KeyModelID     = "model-id"         // hub username, PnP (C DT_MODEL_ID_TOKEN)
	KeyClientVer   = "ClientVersion"    // DPS username (C MQTT_USERNAME_FMT)
)

// Message system properties as they appear, decoded, in a property bag. On
// the wire '$' is percent-encoded, so "$.ct" travels as "%24.ct"
// (C iothubtransport_mqtt_common.c SYS_TOPIC_STRING_FORMAT "%s%%24.%s=%s";
// names from C# iothub/device/src/Transport/Mqtt/IotHubWirePropertyNames and
// Node device/transport/mqtt/src/mqtt.ts _getEventTopicFromMessage).
const (
	PropMessageID          = "$.mid"
	PropCorrelationID      = "$.cid"
	PropUserID             = "$.uid"
	PropTo                 = "$.to"
	PropContentType        = "$.ct"
	PropContentEncoding    = "$.ce"
	PropExpiryTimeUTC      = "$.exp"
	PropCreationTimeUTC    = "$.ctime"
	PropOutputName         = "$.on"
	PropMessageSchema      = "$.schema"
	PropConnectionDeviceID = "$.cdid"
	PropConnectionModuleID = "$.cmid"
	PropInterfaceID        = "$.ifid"
	PropComponentName      = "$.sub"
)

// Stream response statuses (C streaming preview: 200 accept, 400 reject).
const (
	StreamAccept = 200
	StreamReject = 400
)
