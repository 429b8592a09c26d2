package auth

// Wire constants for SAS tokens and connection strings. Each carries the
// upstream source it was checked against; sas_test.go pins their bytes.

const (
	// tokenPrefix starts every SAS token, followed by the '&'-joined fields.
	// [Azure/azure-iot-sdk-node common/core/src/shared_access_signature.ts]
	tokenPrefix = "SharedAccessSignature "

	// Token field names; their order is not fixed on the wire (Node emits
	// sr,sig,skn,se; the C and C# DPS clients sr,sig,se,skn).
	// [Azure/azure-iot-sdk-node common/core/src/shared_access_signature.ts],
	// [Azure/azure-iot-sdk-c provisioning_client/src/prov_auth_client.c]
	fieldSR  = "sr"
	fieldSig = "sig"
	fieldSE  = "se"
	fieldSKN = "skn"

	// DPSKeyName is the skn of every DPS symmetric-key registration token.
	// [Azure/azure-iot-sdk-csharp provisioning/device/src/.../ProvisioningSasBuilder.cs KeyName],
	// [Azure/azure-iot-sdk-c provisioning_client/src/prov_device_ll_client.c]
	DPSKeyName = "registration"

	// Resource path pieces: hub device "<host>/devices/<id>", module
	// ".../modules/<m>" [Azure/azure-iot-sdk-node common/core/src/shared_access_signature.ts
	// createWithSigningFunction; Azure/azure-sdk-for-c sdk/tests/iot/hub/test_az_iot_hub_client_sas.c],
	// DPS "<idScope>/registrations/<regId>" [Azure/azure-iot-sdk-c
	// provisioning_client/src/prov_device_ll_client.c SAS_TOKEN_SCOPE_FMT].
	devicesSegment       = "/devices/"
	modulesSegment       = "/modules/"
	registrationsSegment = "/registrations/"
)

// Connection string keys, case-sensitive as Azure writes them.
// [Azure/azure-iot-sdk-node common/core/src/connection_string.ts],
// [Azure/azure-iot-sdk-node device/core/src/connection_string.ts],
// [Azure/azure-iot-sdk-node service/src/connection_string.ts]
const (
	KeyHostName              = "HostName"
	KeyDeviceID              = "DeviceId"
	KeyModuleID              = "ModuleId"
	KeySharedAccessKey       = "SharedAccessKey"
	KeySharedAccessKeyName   = "SharedAccessKeyName"
	KeySharedAccessSignature = "SharedAccessSignature"
	KeyGatewayHostName       = "GatewayHostName"
	KeyX509                  = "x509"
)
