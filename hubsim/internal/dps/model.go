package dps

import (
	"bytes"
	"encoding/json"
	"time"
)

// JSON shapes of the DPS device and service APIs (camelCase), after
// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane/
// Microsoft.Devices/stable/2021-10-01/service.json] and
// [.../DeviceProvisioningServices/device/models.tsp].

// Timestamp is a UTC date-time. It marshals as RFC 3339 with fractional
// seconds and unmarshals leniently: read-only timestamps echoed back by
// clients in odd formats are ignored rather than refused.
type Timestamp struct{ time.Time }

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format("2006-01-02T15:04:05.0000000Z"))
}

// UnmarshalJSON implements json.Unmarshaler; unknown formats yield the zero time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		t.Time = time.Time{}
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	t.Time = time.Time{}
	return nil
}

func ts(t time.Time) *Timestamp { return &Timestamp{t.UTC()} }

// TPMAttestation is a TPM's keys.
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey,omitempty"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// SymmetricKeyAttestation holds base64 keys.
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// X509CertificateInfo describes a certificate; DPS computes it.
type X509CertificateInfo struct {
	SubjectName      string    `json:"subjectName"`
	SHA1Thumbprint   string    `json:"sha1Thumbprint"`
	SHA256Thumbprint string    `json:"sha256Thumbprint"`
	IssuerName       string    `json:"issuerName"`
	NotBeforeUTC     Timestamp `json:"notBeforeUtc"`
	NotAfterUTC      Timestamp `json:"notAfterUtc"`
	SerialNumber     string    `json:"serialNumber"`
	Version          int       `json:"version"`
}

// X509CertificateWithInfo is a certificate (base64 DER or PEM) and its info.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509Certificates is a primary/secondary pair.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences names verified CA certificates of the instance.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is one of client certificates (individual enrollment),
// signing certificates (group) or CA references.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// AttestationMechanism is how a device proves who it is.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// DeviceCapabilities of an enrollment.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// InitialTwinProperties holds desired properties of an initial twin.
type InitialTwinProperties struct {
	Desired map[string]any `json:"desired,omitempty"`
}

// InitialTwin is the twin a device starts with on its hub.
type InitialTwin struct {
	Tags       map[string]any         `json:"tags,omitempty"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// ReprovisionPolicy of an enrollment; absent fields default to true.
type ReprovisionPolicy struct {
	UpdateHubAssignment *bool `json:"updateHubAssignment,omitempty"`
	MigrateDeviceData   *bool `json:"migrateDeviceData,omitempty"`
}

// CustomAllocationDefinition points at the allocation webhook.
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// DeviceRegistrationState is a registration as the service API shows it.
type DeviceRegistrationState struct {
	RegistrationID         string          `json:"registrationId,omitempty"`
	CreatedDateTimeUTC     *Timestamp      `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string          `json:"assignedHub,omitempty"`
	DeviceID               string          `json:"deviceId,omitempty"`
	Status                 string          `json:"status,omitempty"`
	Substatus              string          `json:"substatus,omitempty"`
	ErrorCode              int             `json:"errorCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC *Timestamp      `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string          `json:"etag,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
}

// IndividualEnrollment is one device's enrollment.
type IndividualEnrollment struct {
	RegistrationID             string                      `json:"registrationId"`
	DeviceID                   string                      `json:"deviceId,omitempty"`
	RegistrationState          *DeviceRegistrationState    `json:"registrationState,omitempty"`
	OptionalDeviceInformation  map[string]any              `json:"optionalDeviceInformation,omitempty"`
	Attestation                *AttestationMechanism       `json:"attestation"`
	Capabilities               *DeviceCapabilities         `json:"capabilities,omitempty"`
	IoTHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ETag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         *Timestamp                  `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     *Timestamp                  `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
}

// EnrollmentGroup is a group enrollment.
type EnrollmentGroup struct {
	EnrollmentGroupID          string                      `json:"enrollmentGroupId"`
	Attestation                *AttestationMechanism       `json:"attestation"`
	Capabilities               *DeviceCapabilities         `json:"capabilities,omitempty"`
	IoTHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ETag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         *Timestamp                  `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     *Timestamp                  `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
}

// QuerySpecification is the body of a query request.
type QuerySpecification struct {
	Query string `json:"query"`
}

// BulkEnrollmentOperation is the body of POST /enrollments.
type BulkEnrollmentOperation struct {
	Enrollments []IndividualEnrollment `json:"enrollments"`
	Mode        string                 `json:"mode"`
}

// BulkEnrollmentGroupOperation is the body of POST /enrollmentGroups.
type BulkEnrollmentGroupOperation struct {
	EnrollmentGroups []EnrollmentGroup `json:"enrollmentGroups"`
	Mode             string            `json:"mode"`
}

// BulkEnrollmentOperationError is one failed item of a bulk operation.
type BulkEnrollmentOperationError struct {
	RegistrationID    string `json:"registrationId,omitempty"`
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	ErrorCode         int    `json:"errorCode"`
	ErrorStatus       string `json:"errorStatus"`
}

// BulkEnrollmentOperationResult is the answer to a bulk operation.
type BulkEnrollmentOperationResult struct {
	IsSuccessful bool                           `json:"isSuccessful"`
	Errors       []BulkEnrollmentOperationError `json:"errors"`
}

// ErrorDetails is ProvisioningServiceErrorDetails.
type ErrorDetails struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info,omitempty"`
	TimestampUTC Timestamp         `json:"timestampUtc"`
}

// DeviceRegistration is the body a device sends to register or look up.
type DeviceRegistration struct {
	RegistrationID string          `json:"registrationId,omitempty"`
	TPM            *TPMAttestation `json:"tpm,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// SymmetricKeyRegistrationResult tells which group a key-attested device matched.
type SymmetricKeyRegistrationResult struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// X509RegistrationResult tells which certificate an X.509 device presented.
type X509RegistrationResult struct {
	CertificateInfo        *X509CertificateInfo `json:"certificateInfo,omitempty"`
	EnrollmentGroupID      string               `json:"enrollmentGroupId,omitempty"`
	SigningCertificateInfo *X509CertificateInfo `json:"signingCertificateInfo,omitempty"`
}

// DeviceRegistrationResult is a registration as the device API shows it.
type DeviceRegistrationResult struct {
	X509                   *X509RegistrationResult         `json:"x509,omitempty"`
	SymmetricKey           *SymmetricKeyRegistrationResult `json:"symmetricKey,omitempty"`
	RegistrationID         string                          `json:"registrationId,omitempty"`
	CreatedDateTimeUTC     *Timestamp                      `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string                          `json:"assignedHub,omitempty"`
	DeviceID               string                          `json:"deviceId,omitempty"`
	Status                 string                          `json:"status,omitempty"`
	Substatus              string                          `json:"substatus,omitempty"`
	ErrorCode              int                             `json:"errorCode,omitempty"`
	ErrorMessage           string                          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC *Timestamp                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string                          `json:"etag,omitempty"`
	Payload                json.RawMessage                 `json:"payload,omitempty"`
}

// RegistrationOperationStatus is the answer to register and operation-status calls.
type RegistrationOperationStatus struct {
	OperationID       string                    `json:"operationId"`
	Status            string                    `json:"status"`
	RegistrationState *DeviceRegistrationResult `json:"registrationState,omitempty"`
}

// DeviceRuntimeContext is the device part of a custom allocation request.
type DeviceRuntimeContext struct {
	RegistrationID        string          `json:"registrationId"`
	CurrentIoTHubHostName string          `json:"currentIotHubHostName,omitempty"`
	CurrentDeviceID       string          `json:"currentDeviceId,omitempty"`
	SymmetricKey          *struct{}       `json:"symmetricKey,omitempty"`
	X509                  *X509DeviceInfo `json:"x509,omitempty"`
	TPM                   *TPMAttestation `json:"tpm,omitempty"`
	Payload               json.RawMessage `json:"payload,omitempty"`
}

// X509DeviceInfo carries the device certificate's info to the webhook.
type X509DeviceInfo struct {
	ClientCertificateInfo *X509CertificateInfo `json:"clientCertificateInfo,omitempty"`
}

// AllocationRequest is what DPS POSTs to a custom allocation webhook.
// [MicrosoftDocs/azure-docs articles/iot-dps/concepts-custom-allocation.md]
type AllocationRequest struct {
	IndividualEnrollment *IndividualEnrollment `json:"individualEnrollment,omitempty"`
	EnrollmentGroup      *EnrollmentGroup      `json:"enrollmentGroup,omitempty"`
	DeviceRuntimeContext DeviceRuntimeContext  `json:"deviceRuntimeContext"`
	LinkedHubs           []string              `json:"linkedHubs"`
}

// AllocationResponse is what the webhook answers. Its hub name is read
// case-insensitively ("iotHubHostName" in the doc's JSON, "iotHubHostname"
// in its table).
type AllocationResponse struct {
	IoTHubHostName string          `json:"iotHubHostName"`
	InitialTwin    *InitialTwin    `json:"initialTwin,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// isJSONNull reports whether raw is absent or JSON null.
func isJSONNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}
