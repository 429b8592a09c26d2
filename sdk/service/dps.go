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

func (d *DPSClient) put(ctx context.Context, coll, id, etag string, in, out any) error {
	_, _, err := d.rest.do(ctx, request{method: http.MethodPut, path: escapePath(coll, id), apiVersion: apiVersionDPS, header: dpsIfMatch(etag), body: in, out: out})
	return err
}

func (d *DPSClient) get(ctx context.Context, coll, id string, out any) error {
	_, _, err := d.rest.do(ctx, request{method: http.MethodGet, path: escapePath(coll, id), apiVersion: apiVersionDPS, out: out})
	return err
}

func (d *DPSClient) del(ctx context.Context, coll, id, etag string) error {
	_, _, err := d.rest.do(ctx, request{method: http.MethodDelete, path: escapePath(coll, id), apiVersion: apiVersionDPS, header: dpsIfMatch(etag)})
	return err
}

// Collections of the DPS service API.
// [Azure/azure-rest-api-specs …/deviceprovisioningservices/…/2021-10-01/service.json (paths)]
const (
	collEnrollments      = "enrollments"
	collEnrollmentGroups = "enrollmentGroups"
	collRegistrations    = "registrations"
)

// PutEnrollment creates or replaces an individual enrollment. When e.ETag is
// set the replace is conditional (ErrPreconditionFailed on a mismatch). The
// answer holds the keys DPS generated, if any: never log them.
func (d *DPSClient) PutEnrollment(ctx context.Context, e IndividualEnrollment) (*IndividualEnrollment, error) {
	if err := checkID("registration id", e.RegistrationID); err != nil {
		return nil, err
	}
	if e.Attestation == nil {
		return nil, fmt.Errorf("%w: enrollment %s has no attestation", ErrConfig, e.RegistrationID)
	}
	var out IndividualEnrollment
	if err := d.put(ctx, collEnrollments, e.RegistrationID, e.ETag, e, &out); err != nil {
		return nil, fmt.Errorf("service: put enrollment %s: %w", e.RegistrationID, err)
	}
	return &out, nil
}

// GetEnrollment returns an individual enrollment (ErrNotFound when none).
func (d *DPSClient) GetEnrollment(ctx context.Context, registrationID string) (*IndividualEnrollment, error) {
	if err := checkID("registration id", registrationID); err != nil {
		return nil, err
	}
	var out IndividualEnrollment
	if err := d.get(ctx, collEnrollments, registrationID, &out); err != nil {
		return nil, fmt.Errorf("service: get enrollment %s: %w", registrationID, err)
	}
	return &out, nil
}

// DeleteEnrollment removes an individual enrollment; a non-empty etag makes
// it conditional.
func (d *DPSClient) DeleteEnrollment(ctx context.Context, registrationID, etag string) error {
	if err := checkID("registration id", registrationID); err != nil {
		return err
	}
	if err := d.del(ctx, collEnrollments, registrationID, etag); err != nil {
		return fmt.Errorf("service: delete enrollment %s: %w", registrationID, err)
	}
	return nil
}

// PutEnrollmentGroup creates or replaces an enrollment group (conditional
// when g.ETag is set).
func (d *DPSClient) PutEnrollmentGroup(ctx context.Context, g EnrollmentGroup) (*EnrollmentGroup, error) {
	if err := checkID("enrollment group id", g.EnrollmentGroupID); err != nil {
		return nil, err
	}
	if g.Attestation == nil {
		return nil, fmt.Errorf("%w: enrollment group %s has no attestation", ErrConfig, g.EnrollmentGroupID)
	}
	var out EnrollmentGroup
	if err := d.put(ctx, collEnrollmentGroups, g.EnrollmentGroupID, g.ETag, g, &out); err != nil {
		return nil, fmt.Errorf("service: put enrollment group %s: %w", g.EnrollmentGroupID, err)
	}
	return &out, nil
}

// GetEnrollmentGroup returns an enrollment group (ErrNotFound when none).
func (d *DPSClient) GetEnrollmentGroup(ctx context.Context, groupID string) (*EnrollmentGroup, error) {
	if err := checkID("enrollment group id", groupID); err != nil {
		return nil, err
	}
	var out EnrollmentGroup
	if err := d.get(ctx, collEnrollmentGroups, groupID, &out); err != nil {
		return nil, fmt.Errorf("service: get enrollment group %s: %w", groupID, err)
	}
	return &out, nil
}

// DeleteEnrollmentGroup removes an enrollment group; a non-empty etag makes
// it conditional.
func (d *DPSClient) DeleteEnrollmentGroup(ctx context.Context, groupID, etag string) error {
	if err := checkID("enrollment group id", groupID); err != nil {
		return err
	}
	if err := d.del(ctx, collEnrollmentGroups, groupID, etag); err != nil {
		return fmt.Errorf("service: delete enrollment group %s: %w", groupID, err)
	}
	return nil
}

// GetRegistration returns a device's registration state (ErrNotFound when it
// never registered).
func (d *DPSClient) GetRegistration(ctx context.Context, registrationID string) (*DeviceRegistrationState, error) {
	if err := checkID("registration id", registrationID); err != nil {
		return nil, err
	}
	var out DeviceRegistrationState
	if err := d.get(ctx, collRegistrations, registrationID, &out); err != nil {
		return nil, fmt.Errorf("service: get registration %s: %w", registrationID, err)
	}
	return &out, nil
}

// DeleteRegistration removes a device's registration state, so that its
// next registration starts afresh; a non-empty etag makes it conditional.
func (d *DPSClient) DeleteRegistration(ctx context.Context, registrationID, etag string) error {
	if err := checkID("registration id", registrationID); err != nil {
		return err
	}
	if err := d.del(ctx, collRegistrations, registrationID, etag); err != nil {
		return fmt.Errorf("service: delete registration %s: %w", registrationID, err)
	}
	return nil
}
