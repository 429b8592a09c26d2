package dps

// Wire constants of the Device Provisioning Service as hubsim speaks them.
// Each one cites where it was read; wire_test.go pins the exact bytes.

// MQTT topics. [Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_mqtt_common.c],
// [Azure/azure-iot-sdk-node provisioning/transport/mqtt/src/mqtt.ts],
// [Azure/azure-iot-sdk-csharp provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs]
const (
	// topicResPrefix starts every response topic; devices subscribe to topicResFilter.
	topicResPrefix = "$dps/registrations/res/"
	topicResFilter = "$dps/registrations/res/#"
	// topicRegisterPrefix is followed by "?$rid=<rid>".
	topicRegisterPrefix = "$dps/registrations/PUT/iotdps-register/"
	// topicPollPrefix is followed by "?$rid=<rid>&operationId=<op>".
	topicPollPrefix = "$dps/registrations/GET/iotdps-get-operationstatus/"
	// mqttRetryAfterKey is the response topic's retry-after property, lower case
	// (Node reads it exactly; C# matches it case-insensitively).
	mqttRetryAfterKey = "retry-after"
	// mqttUsernameAPIVersion separates registration ID and api-version in the
	// CONNECT username: "<scope>/registrations/<regId>/api-version=<v>&…" (no '?').
	mqttUsernameAPIVersion = "/api-version="
)

// HTTP header names. [Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/DeviceProvisioningServices/device/models.tsp] (retry-after, x-ms-error-code);
// [Azure/azure-iot-sdk-node provisioning/service/src/provisioningserviceclient.ts,
// provisioning/service/src/query.ts] (paging headers).
const (
	headerRetryAfter   = "Retry-After" // canonical form of "retry-after"
	headerErrorCode    = "x-ms-error-code"
	headerContinuation = "x-ms-continuation"
	headerMaxItemCount = "x-ms-max-item-count"
	headerItemType     = "x-ms-item-type"
)

// HTTPS path segments. Device API: /{idScope}/registrations/{registrationId}/register,
// …/operations/{operationId} [Azure/azure-rest-api-specs specification/
// deviceprovisioningservices/data-plane/DeviceProvisioningServices/device/routes.tsp],
// [Azure/azure-iot-sdk-c provisioning_client/src/prov_transport_http_client.c].
// Service API: /enrollments, /enrollmentGroups, /registrations with …/query and
// …/{id}/attestationmechanism [Azure/azure-rest-api-specs specification/
// deviceprovisioningservices/data-plane/Microsoft.Devices/stable/2021-10-01/service.json];
// the Node service client asks for the group attestation mechanism under
// /enrollmentgroups/ [Azure/azure-iot-sdk-node provisioning/service/src/provisioningserviceclient.ts].
const (
	segRegistrations        = "registrations"
	segRegister             = "register"
	segOperations           = "operations"
	segEnrollments          = "enrollments"
	segEnrollmentGroups     = "enrollmentGroups"
	segEnrollmentGroupsNode = "enrollmentgroups"
	segQuery                = "query"
	segAttestationMechanism = "attestationmechanism"
)

// Registration status values. [rest-api-specs .../device/models.tsp EnrollmentStatus]
const (
	StatusUnassigned = "unassigned"
	StatusAssigning  = "assigning"
	StatusAssigned   = "assigned"
	StatusFailed     = "failed"
	StatusDisabled   = "disabled"
)

// Substatus values for assigned devices. [rest-api-specs .../device/models.tsp AssignedDeviceSubstatus]
const (
	SubstatusInitialAssignment                = "initialAssignment"
	SubstatusDeviceDataMigrated               = "deviceDataMigrated"
	SubstatusDeviceDataReset                  = "deviceDataReset"
	SubstatusReprovisionedToInitialAssignment = "reprovisionedToInitialAssignment"
)

// Enrollment field values. [Azure/azure-rest-api-specs specification/deviceprovisioningservices/
// data-plane/Microsoft.Devices/stable/2021-10-01/service.json]
const (
	AllocationHashed     = "hashed"
	AllocationGeoLatency = "geoLatency"
	AllocationStatic     = "static"
	AllocationCustom     = "custom"

	AttestationNone         = "none"
	AttestationTPM          = "tpm"
	AttestationX509         = "x509"
	AttestationSymmetricKey = "symmetricKey"

	ProvisioningEnabled  = "enabled"
	ProvisioningDisabled = "disabled"

	BulkCreate            = "create"
	BulkUpdate            = "update"
	BulkUpdateIfMatchETag = "updateIfMatchETag"
	BulkDelete            = "delete"

	// Item types reported in x-ms-item-type on query responses.
	itemTypeEnrollment        = "Enrollment"
	itemTypeEnrollmentGroup   = "EnrollmentGroup"
	itemTypeRegistrationState = "DeviceRegistration"
)

// SAS key name a device presents to DPS. [Azure/azure-iot-sdk-node
// security/symmetric/src/symmetric_key.ts], [Azure/azure-iot-sdk-csharp
// common/src/device/provisioning/transport/ProvisioningSasBuilder.cs]
const deviceKeyName = "registration"

// Shared access policy rights of DPS. [MicrosoftDocs/azure-docs
// articles/iot-dps/how-to-control-access.md]
const (
	RightServiceConfig           = "ServiceConfig"
	RightEnrollmentRead          = "EnrollmentRead"
	RightEnrollmentWrite         = "EnrollmentWrite"
	RightRegistrationStatusRead  = "RegistrationStatusRead"
	RightRegistrationStatusWrite = "RegistrationStatusWrite"
)

// legacyStickyAPIVersion: devices calling with this api-version or older, whose
// enrollment has no reprovisionPolicy, keep the pre-2018-09 sticky assignment.
// [MicrosoftDocs/azure-docs articles/iot-dps/concepts-device-reprovision.md]
const legacyStickyAPIVersion = "2018-04-01"

// Error codes. The numbering (HTTP status × 1000 + n) follows the pattern of
// IoT Hub's codes (Azure/azure-iot-sdk-csharp iothub/service/src/Exceptions/ErrorCode.cs);
// the exact DPS numbers beyond the status are hubsim's choice. [?]
const (
	codeBadRequest         = 400004
	codeUnauthorized       = 401002
	codeNotFound           = 404201
	codeMethodNotAllowed   = 405000
	codeConflict           = 409201
	codePreconditionFailed = 412002
	codeUnsupportedMedia   = 415000
	codeThrottled          = 429001
	codeInternal           = 500000
	codeAllocationFailed   = 400209
	codeHubFailed          = 500001
)
