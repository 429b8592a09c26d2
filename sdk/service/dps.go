package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// DPSClient manages a Device Provisioning Service instance's enrollments
// and registrations as a shared access policy (e.g. provisioningserviceowner).
// It is safe for concurrent use and starts no goroutines.
type DPSClient struct {
	rest *restClient
}

// NewDPS returns a DPSClient for the DPS instance named in
// cfg.ConnectionString ("HostName=<name>.azure-devices-provisioning.net;
// SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=…").
func NewDPS(cfg Config) (*DPSClient, error) {
	r, err := newRESTClient(cfg)
	if err != nil {
		return nil, err
	}
	return &DPSClient{rest: r}, nil
}

// HostName returns the DPS service host name.
func (d *DPSClient) HostName() string { return d.rest.host }

// Close releases idle connections; idempotent, always nil.
func (d *DPSClient) Close() error {
	d.rest.close()
	return nil
}

// JSON shapes of the DPS service API, after
// [Azure/azure-rest-api-specs specification/deviceprovisioningservices/data-plane/
// Microsoft.Devices/stable/2021-10-01/service.json].

// Attestation types.
const (
	AttestationSymmetricKey = "symmetricKey"
	AttestationX509         = "x509"
	AttestationTPM          = "tpm"
)

// Allocation policies.
const (
	AllocationHashed     = "hashed"
	AllocationGeoLatency = "geoLatency"
	AllocationStatic     = "static"
	AllocationCustom     = "custom"
)

// SymmetricKeyAttestation holds base64 keys; DPS generates them when
// empty. String hides them.
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// String hides the keys.
func (SymmetricKeyAttestation) String() string { return "SymmetricKeyAttestation{…}" }

// TPMAttestation holds a TPM's public keys (base64).
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey,omitempty"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// X509CertificateWithInfo is a certificate (base64 DER or PEM) and the
// information DPS computed from it.
type X509CertificateWithInfo struct {
	Certificate string          `json:"certificate,omitempty"`
	Info        json.RawMessage `json:"info,omitempty"`
}

// X509Certificates is a primary/secondary pair.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences names verified CA certificates of the DPS instance.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is client certificates (individual), signing
// certificates (group) or CA references.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// AttestationMechanism is how an enrolled device proves who it is.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// InitialTwin is the twin an enrolled device starts with.
type InitialTwin struct {
	Tags       map[string]any         `json:"tags,omitempty"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// InitialTwinProperties holds an initial twin's desired properties.
type InitialTwinProperties struct {
	Desired map[string]any `json:"desired,omitempty"`
}

// ReprovisionPolicy says what happens when a device registers again; DPS
// defaults both to true.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// CustomAllocationDefinition points at a custom allocation webhook.
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// DeviceCapabilities of an enrollment.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// DeviceRegistrationState is a device's registration as DPS records it.
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

// IndividualEnrollment enrolls one device. RegistrationID and Attestation
// are required.
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
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"` // "enabled" (default) or "disabled"
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         *Timestamp                  `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     *Timestamp                  `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
}

// EnrollmentGroup enrolls every device that proves membership (a key
// derived from the group key, or a certificate chaining to the group's).
// EnrollmentGroupID and Attestation are required.
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

// dpsIfMatch returns the If-Match header for a DPS write: the raw etag (the
// DPS service clients send it unquoted), none when etag is empty.
// [Azure/azure-iot-sdk-node provisioning/service/src/provisioningserviceclient.ts (_createOrUpdate, _delete)]
func dpsIfMatch(etag string) http.Header {
	etag = strings.TrimSpace(etag)
	if etag == "" {
		return nil
	}
	return http.Header{hdrIfMatch: {etag}}
}

// Collections of the DPS service API.
// [Azure/azure-rest-api-specs …/deviceprovisioningservices/…/2021-10-01/service.json (paths)]
const (
	collEnrollments      = "enrollments"
	collEnrollmentGroups = "enrollmentGroups"
	collRegistrations    = "registrations"
)

// dpsCollection is one collection of the DPS service API.
type dpsCollection struct {
	path   string // its path segment
	idName string // what its IDs are called in ErrConfig errors
	noun   string // what one item is called in errors
}

var (
	dpsEnrollments      = dpsCollection{path: collEnrollments, idName: "registration id", noun: "enrollment"}
	dpsEnrollmentGroups = dpsCollection{path: collEnrollmentGroups, idName: "enrollment group id", noun: "enrollment group"}
	dpsRegistrations    = dpsCollection{path: collRegistrations, idName: "registration id", noun: "registration"}
)

// dpsPut creates or replaces the item id of c, conditionally when etag is
// set. att is the item's attestation, which DPS requires.
func dpsPut[T any](ctx context.Context, d *DPSClient, c dpsCollection, id, etag string, att *AttestationMechanism, item T) (*T, error) {
	if err := checkID(c.idName, id); err != nil {
		return nil, err
	}
	if att == nil {
		return nil, fmt.Errorf("%w: %s %s has no attestation", ErrConfig, c.noun, id)
	}
	return callJSON[T](ctx, d.rest, "put "+c.noun, id,
		request{method: http.MethodPut, path: escapePath(c.path, id), apiVersion: apiVersionDPS, header: dpsIfMatch(etag), body: item})
}

// dpsGet returns the item id of c (ErrNotFound when there is none).
func dpsGet[T any](ctx context.Context, d *DPSClient, c dpsCollection, id string) (*T, error) {
	if err := checkID(c.idName, id); err != nil {
		return nil, err
	}
	return callJSON[T](ctx, d.rest, "get "+c.noun, id,
		request{method: http.MethodGet, path: escapePath(c.path, id), apiVersion: apiVersionDPS})
}

// delete removes the item id of c, conditionally when etag is set.
func (d *DPSClient) delete(ctx context.Context, c dpsCollection, id, etag string) error {
	if err := checkID(c.idName, id); err != nil {
		return err
	}
	return d.rest.call(ctx, "delete "+c.noun, id,
		request{method: http.MethodDelete, path: escapePath(c.path, id), apiVersion: apiVersionDPS, header: dpsIfMatch(etag)})
}

// PutEnrollment creates or replaces an individual enrollment. When e.ETag is
// set the replace is conditional (ErrPreconditionFailed on a mismatch). The
// answer holds the keys DPS generated, if any: never log them.
func (d *DPSClient) PutEnrollment(ctx context.Context, e IndividualEnrollment) (*IndividualEnrollment, error) {
	return dpsPut(ctx, d, dpsEnrollments, e.RegistrationID, e.ETag, e.Attestation, e)
}

// GetEnrollment returns an individual enrollment (ErrNotFound when none).
func (d *DPSClient) GetEnrollment(ctx context.Context, registrationID string) (*IndividualEnrollment, error) {
	return dpsGet[IndividualEnrollment](ctx, d, dpsEnrollments, registrationID)
}

// DeleteEnrollment removes an individual enrollment; a non-empty etag makes
// it conditional.
func (d *DPSClient) DeleteEnrollment(ctx context.Context, registrationID, etag string) error {
	return d.delete(ctx, dpsEnrollments, registrationID, etag)
}

// PutEnrollmentGroup creates or replaces an enrollment group (conditional
// when g.ETag is set).
func (d *DPSClient) PutEnrollmentGroup(ctx context.Context, g EnrollmentGroup) (*EnrollmentGroup, error) {
	return dpsPut(ctx, d, dpsEnrollmentGroups, g.EnrollmentGroupID, g.ETag, g.Attestation, g)
}

// GetEnrollmentGroup returns an enrollment group (ErrNotFound when none).
func (d *DPSClient) GetEnrollmentGroup(ctx context.Context, groupID string) (*EnrollmentGroup, error) {
	return dpsGet[EnrollmentGroup](ctx, d, dpsEnrollmentGroups, groupID)
}

// DeleteEnrollmentGroup removes an enrollment group; a non-empty etag makes
// it conditional.
func (d *DPSClient) DeleteEnrollmentGroup(ctx context.Context, groupID, etag string) error {
	return d.delete(ctx, dpsEnrollmentGroups, groupID, etag)
}

// GetRegistration returns a device's registration state (ErrNotFound when it
// never registered).
func (d *DPSClient) GetRegistration(ctx context.Context, registrationID string) (*DeviceRegistrationState, error) {
	return dpsGet[DeviceRegistrationState](ctx, d, dpsRegistrations, registrationID)
}

// DeleteRegistration removes a device's registration state, so that its
// next registration starts afresh; a non-empty etag makes it conditional.
func (d *DPSClient) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	return d.delete(ctx, dpsRegistrations, registrationID, etag)
}
