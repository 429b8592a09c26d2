package dps

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// validRegistrationID reports whether id is a registration or group ID DPS
// accepts: 1–128 characters, alphanumerics and ": . _ -" (case-insensitive).
// [rest-api-specs .../device/models.tsp DeviceRegistration.registrationId]
func validRegistrationID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func keyOf(id string) string { return strings.ToLower(id) }

func boolPtr(b bool) *bool { return &b }

// newSymmetricKey returns a base64 64-byte key, as DPS generates when an
// enrollment's keys are left empty.
func newSymmetricKey() string {
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// normalizeAttestation checks an attestation mechanism and fills what DPS
// computes: generated symmetric keys, certificate info. group selects the
// group rules (signing certificates) over the individual ones (client certificates).
// old, if non-nil, is the stored attestation: certificates echoed back with
// only their info are kept.
func normalizeAttestation(a *AttestationMechanism, group bool, old *AttestationMechanism) error {
	if a == nil {
		return fmt.Errorf("%w: attestation is required", ErrInvalid)
	}
	switch a.Type {
	case AttestationSymmetricKey:
		if a.SymmetricKey == nil {
			a.SymmetricKey = &SymmetricKeyAttestation{}
		}
		for _, k := range []*string{&a.SymmetricKey.PrimaryKey, &a.SymmetricKey.SecondaryKey} {
			if *k == "" {
				*k = newSymmetricKey()
				continue
			}
			if raw, err := base64.StdEncoding.DecodeString(*k); err != nil || len(raw) < 16 || len(raw) > 64 {
				return fmt.Errorf("%w: symmetric keys must be base64 of 16 to 64 bytes", ErrInvalid)
			}
		}
		a.TPM, a.X509 = nil, nil
	case AttestationX509:
		if a.X509 == nil {
			return fmt.Errorf("%w: x509 attestation needs certificates", ErrInvalid)
		}
		var oldX *X509Attestation
		if old != nil {
			oldX = old.X509
		}
		certs := a.X509.ClientCertificates
		var oldCerts *X509Certificates
		if oldX != nil {
			oldCerts = oldX.ClientCertificates
		}
		if group {
			certs = a.X509.SigningCertificates
			if oldX != nil {
				oldCerts = oldX.SigningCertificates
			}
			if a.X509.ClientCertificates != nil {
				return fmt.Errorf("%w: enrollment groups take signingCertificates or caReferences, not clientCertificates", ErrInvalid)
			}
		} else if a.X509.SigningCertificates != nil || a.X509.CAReferences != nil {
			return fmt.Errorf("%w: individual enrollments take clientCertificates", ErrInvalid)
		}
		if certs == nil {
			if group && a.X509.CAReferences != nil && a.X509.CAReferences.Primary != "" {
				return nil // CA references are stored but cannot attest devices in hubsim
			}
			return fmt.Errorf("%w: x509 attestation needs a primary certificate", ErrInvalid)
		}
		if certs.Primary == nil {
			return fmt.Errorf("%w: x509 attestation needs a primary certificate", ErrInvalid)
		}
		pairs := []struct{ cur, old *X509CertificateWithInfo }{{certs.Primary, nil}, {certs.Secondary, nil}}
		if oldCerts != nil {
			pairs[0].old, pairs[1].old = oldCerts.Primary, oldCerts.Secondary
		}
		for _, p := range pairs {
			if p.cur == nil {
				continue
			}
			if p.cur.Certificate == "" && p.old != nil && p.cur.Info != nil && p.old.Info != nil &&
				strings.EqualFold(p.cur.Info.SHA256Thumbprint, p.old.Info.SHA256Thumbprint) {
				p.cur.Certificate = p.old.Certificate
			}
			c, err := parseCertificate(p.cur.Certificate)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			p.cur.Info = certInfo(c)
		}
		a.TPM, a.SymmetricKey = nil, nil
	case AttestationTPM:
		if a.TPM == nil || a.TPM.EndorsementKey == "" {
			return fmt.Errorf("%w: tpm attestation needs an endorsement key", ErrInvalid)
		}
		if group {
			return fmt.Errorf("%w: enrollment groups do not support tpm attestation", ErrInvalid)
		}
		a.X509, a.SymmetricKey = nil, nil
	default:
		return fmt.Errorf("%w: unknown attestation type %q", ErrInvalid, a.Type)
	}
	return nil
}

// enrollmentCommon are the fields individual enrollments and groups share.
type enrollmentCommon struct {
	Kind               string // "enrollment" or "group"
	ID                 string
	DeviceID           string
	Attestation        *AttestationMechanism
	Capabilities       *DeviceCapabilities
	IoTHubHostName     string
	InitialTwin        *InitialTwin
	ProvisioningStatus string
	ReprovisionPolicy  *ReprovisionPolicy
	AllocationPolicy   string
	IoTHubs            []string
	Custom             *CustomAllocationDefinition
}

func validateCommon(c enrollmentCommon) error {
	switch c.ProvisioningStatus {
	case "", ProvisioningEnabled, ProvisioningDisabled:
	default:
		return fmt.Errorf("%w: provisioningStatus must be enabled or disabled", ErrInvalid)
	}
	switch c.AllocationPolicy {
	case "", AllocationHashed, AllocationGeoLatency, AllocationStatic:
	case AllocationCustom:
		if c.Custom == nil || c.Custom.WebhookURL == "" {
			return fmt.Errorf("%w: custom allocation needs customAllocationDefinition.webhookUrl", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown allocationPolicy %q", ErrInvalid, c.AllocationPolicy)
	}
	if c.AllocationPolicy == AllocationStatic && len(c.IoTHubs) > 1 {
		return fmt.Errorf("%w: static allocation takes exactly one hub in iotHubs", ErrInvalid)
	}
	return nil
}

func commonOfEnrollment(e *IndividualEnrollment) enrollmentCommon {
	return enrollmentCommon{Kind: "enrollment", ID: e.RegistrationID, DeviceID: e.DeviceID, Attestation: e.Attestation,
		Capabilities: e.Capabilities, IoTHubHostName: e.IoTHubHostName, InitialTwin: e.InitialTwin,
		ProvisioningStatus: e.ProvisioningStatus, ReprovisionPolicy: e.ReprovisionPolicy, AllocationPolicy: e.AllocationPolicy,
		IoTHubs: e.IoTHubs, Custom: e.CustomAllocationDefinition}
}

func commonOfGroup(g *EnrollmentGroup) enrollmentCommon {
	return enrollmentCommon{Kind: "group", ID: g.EnrollmentGroupID, Attestation: g.Attestation,
		Capabilities: g.Capabilities, IoTHubHostName: g.IoTHubHostName, InitialTwin: g.InitialTwin,
		ProvisioningStatus: g.ProvisioningStatus, ReprovisionPolicy: g.ReprovisionPolicy, AllocationPolicy: g.AllocationPolicy,
		IoTHubs: g.IoTHubs, Custom: g.CustomAllocationDefinition}
}

// deepCopy copies v through JSON, so stored records never alias caller data.
func deepCopy[T any](v *T) *T {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// PutEnrollment creates or replaces an individual enrollment. A non-empty
// e.ETag must match the stored one (ErrPreconditionFailed). It returns the
// stored enrollment with its new etag and timestamps.
func (s *Service) PutEnrollment(e IndividualEnrollment) (IndividualEnrollment, error) {
	return s.putEnrollment(e, e.ETag)
}

func (s *Service) putEnrollment(e IndividualEnrollment, ifMatch string) (IndividualEnrollment, error) {
	if !validRegistrationID(e.RegistrationID) {
		return IndividualEnrollment{}, fmt.Errorf("%w: invalid registrationId %q", ErrInvalid, e.RegistrationID)
	}
	n := deepCopy(&e)
	if err := validateCommon(commonOfEnrollment(n)); err != nil {
		return IndividualEnrollment{}, err
	}
	key := keyOf(n.RegistrationID)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.enrollments[key]
	if ifMatch != "" && (old == nil || !etagMatches(ifMatch, old.ETag)) {
		return IndividualEnrollment{}, ErrPreconditionFailed
	}
	var oldAtt *AttestationMechanism
	if old != nil {
		oldAtt = old.Attestation
	}
	if err := normalizeAttestation(n.Attestation, false, oldAtt); err != nil {
		return IndividualEnrollment{}, err
	}
	now := s.now()
	n.RegistrationState = nil
	n.ETag = newETag()
	if n.ProvisioningStatus == "" {
		n.ProvisioningStatus = ProvisioningEnabled
	}
	n.CreatedDateTimeUTC = ts(now)
	if old != nil && old.CreatedDateTimeUTC != nil {
		n.CreatedDateTimeUTC = old.CreatedDateTimeUTC
	}
	n.LastUpdatedDateTimeUTC = ts(now)
	s.enrollments[key] = n
	return s.enrollmentViewLocked(n), nil
}

// enrollmentViewLocked is what the service API shows of an enrollment: a copy
// with its registration state.
func (s *Service) enrollmentViewLocked(e *IndividualEnrollment) IndividualEnrollment {
	v := *deepCopy(e)
	if r := s.regs[keyOf(e.RegistrationID)]; r != nil {
		st := r.state()
		v.RegistrationState = &st
	}
	return v
}

// GetEnrollment returns an individual enrollment.
func (s *Service) GetEnrollment(registrationID string) (IndividualEnrollment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.enrollments[keyOf(registrationID)]
	if e == nil {
		return IndividualEnrollment{}, false
	}
	return s.enrollmentViewLocked(e), true
}

// DeleteEnrollment deletes an individual enrollment and its registration
// record; a non-empty ifMatch must match its etag.
func (s *Service) DeleteEnrollment(registrationID, ifMatch string) error {
	key := keyOf(registrationID)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.enrollments[key]
	if e == nil {
		return ErrNotFound
	}
	if ifMatch != "" && !etagMatches(ifMatch, e.ETag) {
		return ErrPreconditionFailed
	}
	delete(s.enrollments, key)
	if r := s.regs[key]; r != nil && r.EnrollmentGroupID == "" {
		delete(s.regs, key)
	}
	return nil
}

// PutEnrollmentGroup creates or replaces an enrollment group. A non-empty
// g.ETag must match the stored one.
func (s *Service) PutEnrollmentGroup(g EnrollmentGroup) (EnrollmentGroup, error) {
	return s.putEnrollmentGroup(g, g.ETag)
}

func (s *Service) putEnrollmentGroup(g EnrollmentGroup, ifMatch string) (EnrollmentGroup, error) {
	if !validRegistrationID(g.EnrollmentGroupID) {
		return EnrollmentGroup{}, fmt.Errorf("%w: invalid enrollmentGroupId %q", ErrInvalid, g.EnrollmentGroupID)
	}
	n := deepCopy(&g)
	if err := validateCommon(commonOfGroup(n)); err != nil {
		return EnrollmentGroup{}, err
	}
	key := keyOf(n.EnrollmentGroupID)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.groups[key]
	if ifMatch != "" && (old == nil || !etagMatches(ifMatch, old.ETag)) {
		return EnrollmentGroup{}, ErrPreconditionFailed
	}
	var oldAtt *AttestationMechanism
	if old != nil {
		oldAtt = old.Attestation
	}
	if err := normalizeAttestation(n.Attestation, true, oldAtt); err != nil {
		return EnrollmentGroup{}, err
	}
	now := s.now()
	n.ETag = newETag()
	if n.ProvisioningStatus == "" {
		n.ProvisioningStatus = ProvisioningEnabled
	}
	n.CreatedDateTimeUTC = ts(now)
	if old != nil && old.CreatedDateTimeUTC != nil {
		n.CreatedDateTimeUTC = old.CreatedDateTimeUTC
	}
	n.LastUpdatedDateTimeUTC = ts(now)
	s.groups[key] = n
	return *deepCopy(n), nil
}

// GetEnrollmentGroup returns an enrollment group.
func (s *Service) GetEnrollmentGroup(id string) (EnrollmentGroup, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[keyOf(id)]
	if g == nil {
		return EnrollmentGroup{}, false
	}
	return *deepCopy(g), true
}

// DeleteEnrollmentGroup deletes an enrollment group; a non-empty ifMatch must
// match its etag. Registration records of its devices stay (as in DPS, where
// they are deleted separately).
func (s *Service) DeleteEnrollmentGroup(id, ifMatch string) error {
	key := keyOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[key]
	if g == nil {
		return ErrNotFound
	}
	if ifMatch != "" && !etagMatches(ifMatch, g.ETag) {
		return ErrPreconditionFailed
	}
	delete(s.groups, key)
	return nil
}

// RegistrationState returns a device's registration record.
func (s *Service) RegistrationState(registrationID string) (DeviceRegistrationState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs[keyOf(registrationID)]
	if r == nil {
		return DeviceRegistrationState{}, false
	}
	return r.state(), true
}

// RegistrationStates returns the registration records of a group's devices,
// or of all devices when groupID is "".
func (s *Service) RegistrationStates(groupID string) []DeviceRegistrationState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DeviceRegistrationState
	for _, k := range sortedKeys(s.regs) {
		r := s.regs[k]
		if groupID == "" || strings.EqualFold(r.EnrollmentGroupID, groupID) {
			out = append(out, r.state())
		}
	}
	return out
}

// DeleteRegistrationState deletes a device's registration record (the
// device's hub identity stays); its next registration is an initial one.
func (s *Service) DeleteRegistrationState(registrationID, ifMatch string) error {
	key := keyOf(registrationID)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs[key]
	if r == nil {
		return ErrNotFound
	}
	if ifMatch != "" && !etagMatches(ifMatch, r.ETag) {
		return ErrPreconditionFailed
	}
	delete(s.regs, key)
	return nil
}

// Enrollments returns all individual enrollments sorted by registration ID.
func (s *Service) Enrollments() []IndividualEnrollment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]IndividualEnrollment, 0, len(s.enrollments))
	for _, k := range sortedKeys(s.enrollments) {
		out = append(out, s.enrollmentViewLocked(s.enrollments[k]))
	}
	return out
}

// EnrollmentGroups returns all enrollment groups sorted by ID.
func (s *Service) EnrollmentGroups() []EnrollmentGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EnrollmentGroup, 0, len(s.groups))
	for _, k := range sortedKeys(s.groups) {
		out = append(out, *deepCopy(s.groups[k]))
	}
	return out
}
