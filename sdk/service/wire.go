package service

import "time"

// Wire constants of the service side: IoT Hub service REST, device-stream
// initiation and DPS service REST. Each one cites the upstream source it was
// checked against; wire_test.go pins the exact bytes.

// API versions.
const (
	// apiVersionHub is sent on registry, twin and direct-method requests.
	// [Azure/azure-iot-sdk-node common/core/src/endpoint.ts (apiVersion)]
	apiVersionHub = "2021-04-12"
	// apiVersionStreams is sent on stream initiation requests; device streams
	// are a preview feature that needs a preview-capable api-version.
	// [Azure/azure-iot-sdk-csharp iothub/service/src/ClientApiVersionHelper.cs@previews/deviceStreaming]
	apiVersionStreams = "2020-09-30"
	// apiVersionDPS is the DPS service API version.
	// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane/Microsoft.Devices/stable/2021-10-01/service.json]
	apiVersionDPS = "2021-10-01"
	// queryAPIVersion is the query parameter carrying the api-version.
	// [Azure/azure-iot-sdk-node common/core/src/endpoint.ts (versionQueryString)]
	queryAPIVersion = "api-version"
	// pathQuery is the twin query endpoint (POST, body {"query": …}).
	// [Azure/azure-iot-sdk-node service/src/service.json (Query_GetTwins: /devices/query, QuerySpecification)]
	pathQuery = "/devices/query"
)

// Request and response headers.
const (
	// hdrStreamConnectTimeout and hdrStreamResponseTimeout carry the stream
	// handshake and device-answer timeouts in whole seconds; the Node preview
	// client always sends both.
	// [Azure/azure-iot-sdk-node service/src/client.ts@streams-preview],
	// [Azure/azure-iot-sdk-csharp iothub/service/src/AmqpServiceClient.cs@preview_2020-10-14]
	hdrStreamConnectTimeout  = "iothub-streaming-connect-timeout-in-seconds"
	hdrStreamResponseTimeout = "iothub-streaming-response-timeout-in-seconds"
	// hdrStreamIsAccepted, hdrStreamURL and hdrStreamAuthToken are the stream
	// initiation response headers.
	// [Azure/azure-iot-sdk-node service/src/stream_initiation_result.ts@streams-preview],
	// [Azure/azure-iot-sdk-csharp iothub/service/src/AmqpServiceClient.cs@preview_2020-10-14]
	hdrStreamIsAccepted = "iothub-streaming-is-accepted"
	hdrStreamURL        = "iothub-streaming-url"
	hdrStreamAuthToken  = "iothub-streaming-auth-token"
	// hdrHubErrorCode names the error on hub error responses.
	// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ExceptionHandlingHelper.cs (HttpErrorCodeName)]
	hdrHubErrorCode = "iothub-errorcode"
	// hdrDPSErrorCode carries the numeric error code on DPS error responses.
	// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane/Microsoft.Devices/stable/2021-10-01/service.json]
	hdrDPSErrorCode = "x-ms-error-code"
	hdrRetryAfter   = "Retry-After"
	// hdrContinuation carries the query continuation token, both ways: the
	// hub sets it when more pages remain; the client sends it back for the
	// next page. hdrMaxItemCount asks for a page size; hdrItemType names
	// what a page holds ("twin" for SELECT *, "raw" for projections).
	// [Azure/azure-iot-sdk-node service/src/registry.ts (createQuery) and service/src/query.ts (next)],
	// [Azure/azure-iot-sdk-java service/iot-service-client/src/main/java/com/microsoft/azure/sdk/iot/service/devicetwin/Query.java]
	hdrContinuation = "x-ms-continuation"
	hdrMaxItemCount = "x-ms-max-item-count"
	hdrItemType     = "x-ms-item-type"
	hdrIfMatch      = "If-Match"
	// contentTypeJSON is the request body type the Node service clients send.
	// [Azure/azure-iot-sdk-node service/src/device_method.ts]
	contentTypeJSON = "application/json; charset=utf-8"
)

// Stream and method timeouts.
const (
	// DefaultStreamTimeout is the connect and the response timeout of a stream
	// request when no option sets them: the Node preview client's default of
	// 30 s for both headers. [Azure/azure-iot-sdk-node service/src/client.ts@streams-preview]
	DefaultStreamTimeout = 30 * time.Second
	// DefaultMethodTimeout is the method response timeout when InvokeMethod is
	// given none. [Azure/azure-iot-sdk-node service/src/device_method.ts (defaultResponseTimeout)]
	DefaultMethodTimeout = 30 * time.Second
	// MinMethodTimeout and MaxMethodTimeout bound responseTimeoutInSeconds.
	// [doc: Understand and invoke direct methods from IoT Hub (MicrosoftDocs/azure-docs
	// articles/iot-hub/iot-hub-devguide-direct-methods.md)]
	MinMethodTimeout = 5 * time.Second
	MaxMethodTimeout = 300 * time.Second
)

// streamAccepted is the accepted value of hdrStreamIsAccepted. Node compares
// with exactly "True", C# uses bool.Parse; this client accepts any case.
// [Azure/azure-iot-sdk-node service/src/stream_initiation_result.ts@streams-preview]
const streamAccepted = "true"

// tokenTTL is the lifetime of the shared-access-policy tokens this package
// signs; tokenRenewBefore is how long before expiry a cached token is
// replaced. A porthole choice, not an Azure constant.
const (
	tokenTTL         = time.Hour
	tokenRenewBefore = 5 * time.Minute
)

// errorNames maps the numeric hub error codes the service puts in error
// bodies to their names, for bodies that carry only the number.
// [Azure/azure-iot-sdk-csharp iothub/service/src/Exceptions/IotHubServiceErrorCode.cs];
// GatewayTimeout 504101: [doc: Understand and resolve Azure IoT Hub error codes
// (MicrosoftDocs/azure-docs articles/iot-hub/troubleshoot-error-codes.md)].
var errorNames = map[int]string{
	400003: "InvalidOperation",
	400004: "ArgumentInvalid",
	400006: "IotHubFormatError",
	401002: "IotHubUnauthorizedAccess",
	403002: "IotHubQuotaExceeded",
	403004: "DeviceMaximumQueueDepthExceeded",
	404001: "DeviceNotFound",
	404010: "ModuleNotFound",
	404103: "DeviceNotOnline",
	409001: "DeviceAlreadyExists",
	412001: "PreconditionFailed",
	429001: "ThrottlingException",
	500001: "ServerError",
	503001: "ServiceUnavailable",
	504101: "GatewayTimeout",
}

// Error names the Is method of *Error matches.
const (
	codeDeviceNotOnline = "DeviceNotOnline"
	codeGatewayTimeout  = "GatewayTimeout"
)
