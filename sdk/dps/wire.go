package dps

import "time"

// Wire constants of the DPS device API as porthole speaks it. "C" =
// Azure/azure-iot-sdk-c, "Node" = Azure/azure-iot-sdk-node, "C#" =
// Azure/azure-iot-sdk-csharp, "specs" = Azure/azure-rest-api-specs
// specification/deviceprovisioningservices/data-plane/DeviceProvisioningServices/device.
// wire_test.go pins the exact bytes. MQTT topics and the CONNECT username
// live in sdk/internal/topic.

// Endpoints and versions.
const (
	// DefaultGlobalEndpoint is the public DPS device endpoint, the same for
	// every DPS instance; the ID scope tells instances apart
	// (MicrosoftDocs/azure-docs articles/iot-dps/concepts-service.md,
	// "Device provisioning endpoint").
	DefaultGlobalEndpoint = "global.azure-devices-provisioning.net"

	// DefaultAPIVersion is the api-version the C SDK sends
	// (C provisioning_client/inc/azure_prov_client/prov_client_const.h PROV_API_VERSION).
	DefaultAPIVersion = "2021-06-01"

	// Transports.
	TransportHTTPS  = "https"
	TransportMQTT   = "mqtt"
	TransportMQTTWS = "mqtt-ws"

	// portHTTPS serves HTTPS and MQTT over WebSocket; portMQTT serves MQTT/TLS
	// (C provisioning_client/src/prov_transport_http_client.c HTTP_PORT_NUM,
	// prov_transport_mqtt_client.c; MicrosoftDocs/azure-docs
	// articles/iot/iot-mqtt-connect-to-iot-dps.md).
	portHTTPS = "443"
	portMQTT  = "8883"

	// wsPath and wsSubprotocol: MQTT over WebSocket uses the hub's path and
	// the "mqtt" subprotocol (Node provisioning/transport/mqtt/src/mqtt_ws.ts
	// "wss://<host>:443/$iothub/websocket"; MicrosoftDocs/azure-docs
	// articles/iot/iot-mqtt-connect-to-iot-dps.md "specify the subprotocol as mqtt").
	wsPath        = "/$iothub/websocket"
	wsSubprotocol = "mqtt"
)

// HTTPS paths and headers (specs routes.tsp; Node
// provisioning/transport/http/src/http.ts; C prov_transport_http_client.c).
const (
	pathRegistrations = "/registrations/"
	pathRegister      = "/register"
	pathOperations    = "/operations/"
	queryAPIVersion   = "api-version"

	headerAccept        = "Accept"
	headerContentType   = "Content-Type"
	headerAuthorization = "Authorization"
	headerUserAgent     = "User-Agent"
	// headerErrorCode carries the DPS error code next to the error body
	// (specs models.tsp ProvisioningServiceErrorDetails, x-ms-error-code).
	headerErrorCode = "x-ms-error-code"

	mimeJSON        = "application/json"
	mimeJSONCharset = "application/json; charset=utf-8"
)

// Registration status values (specs models.tsp).
const (
	StatusUnassigned = "unassigned"
	StatusAssigning  = "assigning"
	StatusAssigned   = "assigned"
	StatusFailed     = "failed"
	StatusDisabled   = "disabled"
)

// Timing.
const (
	// DefaultPollInterval is the wait between operation-status polls when
	// DPS sends no retry-after (Node provisioning/device/src/constants.ts
	// defaultPollingInterval = 2000).
	DefaultPollInterval = 2 * time.Second
	// minPollInterval: a retry-after below one second is raised to one
	// second, so a zero never turns polling into a busy loop (C
	// prov_client_const.h PROV_GET_THROTTLE_TIME = 1 is its floor).
	minPollInterval = time.Second
	// maxPollInterval caps a retry-after on a 202 (C uses 300 s as its
	// upper bound, prov_client_const.h MAX_PROV_GET_THROTTLE_TIME = 5*60).
	maxPollInterval = 300 * time.Second
	// DefaultRequestTimeout bounds one request and its answer (Node
	// provisioning/device/src/constants.ts defaultTimeoutInterval = 30000).
	DefaultRequestTimeout = 30 * time.Second
	// sasTTL is the lifetime of each SAS token; a fresh token is signed for
	// every request and every MQTT connection (Node
	// security/symmetric/src/symmetric_key.ts: one hour).
	sasTTL = time.Hour
	// mqttKeepAlive is the MQTT keep-alive; DPS sessions last seconds.
	mqttKeepAlive = 60 * time.Second
	// mqttQuiesce is how long Disconnect waits for the DISCONNECT to go out.
	mqttQuiesce = 500 // milliseconds
)

// userAgent identifies porthole to DPS, in the HTTP User-Agent header and
// the MQTT username's ClientVersion.
const userAgent = "porthole-dps/1"
