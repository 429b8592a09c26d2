package sas

// Wire constants. Sources: Azure/azure-iot-sdk-node
// common/core/src/shared_access_signature.ts (token format and field
// names), Azure/azure-iot-sdk-c provisioning_client/src/prov_auth_client.c
// (DPS token field order sr,sig,se,skn), Azure/azure-iot-sdk-csharp
// ProvisioningSasBuilder.cs (KeyName "registration"). sas_test.go pins them.
const (
	// scheme starts a token; exactly one space follows the word.
	scheme = "SharedAccessSignature "

	keySR  = "sr"
	keySig = "sig"
	keySE  = "se"
	keySKN = "skn"

	// RegistrationKeyName is the skn a DPS device registration token carries.
	RegistrationKeyName = "registration"
)

// Shared access policy rights, as the resource providers name them.
// IoT Hub [Azure/azure-rest-api-specs specification/iothub/resource-manager,
// enum AccessRights]; DPS [Azure/azure-rest-api-specs
// specification/deviceprovisioningservices/resource-manager, enum
// AccessRightsDescription]. DeviceConnect exists on both.
const (
	RightRegistryRead   = "RegistryRead"
	RightRegistryWrite  = "RegistryWrite"
	RightServiceConnect = "ServiceConnect"
	RightDeviceConnect  = "DeviceConnect"

	RightServiceConfig           = "ServiceConfig"
	RightEnrollmentRead          = "EnrollmentRead"
	RightEnrollmentWrite         = "EnrollmentWrite"
	RightRegistrationStatusRead  = "RegistrationStatusRead"
	RightRegistrationStatusWrite = "RegistrationStatusWrite"
)
