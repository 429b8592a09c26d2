package dps

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/porthole-iot/porthole/hubsim/internal/store"
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

// recordMeta is the part of an enrollment or a group that the store sets on
// every write.
type recordMeta struct {
	ETag               string
	ProvisioningStatus string
	Created, Updated   *Timestamp
	// RegistrationState exists on individual enrollments only; the service
	// API fills it from the registration record when it shows one.
	RegistrationState *DeviceRegistrationState
}

// enrollmentRecord is implemented by *IndividualEnrollment and
// *EnrollmentGroup, so that one piece of code serves both collections.
type enrollmentRecord[T any] interface {
	*T
	common() enrollmentCommon // the fields both share
	meta() recordMeta
	setMeta(recordMeta)
	setID(string)
}

func (e *IndividualEnrollment) common() enrollmentCommon {
	return enrollmentCommon{Kind: "enrollment", ID: e.RegistrationID, DeviceID: e.DeviceID, Attestation: e.Attestation,
		Capabilities: e.Capabilities, IoTHubHostName: e.IoTHubHostName, InitialTwin: e.InitialTwin,
		ProvisioningStatus: e.ProvisioningStatus, ReprovisionPolicy: e.ReprovisionPolicy, AllocationPolicy: e.AllocationPolicy,
		IoTHubs: e.IoTHubs, Custom: e.CustomAllocationDefinition}
}

func (e *IndividualEnrollment) meta() recordMeta {
	return recordMeta{ETag: e.ETag, ProvisioningStatus: e.ProvisioningStatus,
		Created: e.CreatedDateTimeUTC, Updated: e.LastUpdatedDateTimeUTC, RegistrationState: e.RegistrationState}
}

func (e *IndividualEnrollment) setMeta(m recordMeta) {
	e.ETag, e.ProvisioningStatus = m.ETag, m.ProvisioningStatus
	e.CreatedDateTimeUTC, e.LastUpdatedDateTimeUTC = m.Created, m.Updated
	e.RegistrationState = m.RegistrationState
}

func (e *IndividualEnrollment) setID(id string) { e.RegistrationID = id }

func (g *EnrollmentGroup) common() enrollmentCommon {
	return enrollmentCommon{Kind: "group", ID: g.EnrollmentGroupID, Attestation: g.Attestation,
		Capabilities: g.Capabilities, IoTHubHostName: g.IoTHubHostName, InitialTwin: g.InitialTwin,
		ProvisioningStatus: g.ProvisioningStatus, ReprovisionPolicy: g.ReprovisionPolicy, AllocationPolicy: g.AllocationPolicy,
		IoTHubs: g.IoTHubs, Custom: g.CustomAllocationDefinition}
}

func (g *EnrollmentGroup) meta() recordMeta {
	return recordMeta{ETag: g.ETag, ProvisioningStatus: g.ProvisioningStatus,
		Created: g.CreatedDateTimeUTC, Updated: g.LastUpdatedDateTimeUTC}
}

// setMeta ignores m.RegistrationState: groups have none.
func (g *EnrollmentGroup) setMeta(m recordMeta) {
	g.ETag, g.ProvisioningStatus = m.ETag, m.ProvisioningStatus
	g.CreatedDateTimeUTC, g.LastUpdatedDateTimeUTC = m.Created, m.Updated
}

func (g *EnrollmentGroup) setID(id string) { g.EnrollmentGroupID = id }

// enrollmentKind is what differs between the two enrollment collections
// (individual enrollments, enrollment groups) for the code they share.
type enrollmentKind[T any, P enrollmentRecord[T]] struct {
	idName string                                     // the ID's JSON name, in errors
	group  bool                                       // group rules (attestation, bulk errors)
	kind   store.Kind                                 // the store's collection
	table  func(*Service) map[string]*T               // the stored records, guarded by Service.mu
	view   func(*Service, *T) T                       // what the service API shows of a record; mu held
	del    func(s *Service, id, ifMatch string) error // the Service's delete method
	// decodeBulk reads the body of a bulk operation on the collection.
	decodeBulk func(body []byte) (items []T, mode string, err error)
}

var (
	enrollmentsKind = enrollmentKind[IndividualEnrollment, *IndividualEnrollment]{
		idName: "registrationId",
		kind:   store.Enrollments,
		table:  func(s *Service) map[string]*IndividualEnrollment { return s.enrollments },
		view:   (*Service).enrollmentViewLocked,
		del:    (*Service).DeleteEnrollment,
		decodeBulk: func(body []byte) ([]IndividualEnrollment, string, error) {
			var op BulkEnrollmentOperation
			err := json.Unmarshal(body, &op)
			return op.Enrollments, op.Mode, err
		},
	}
	groupsKind = enrollmentKind[EnrollmentGroup, *EnrollmentGroup]{
		idName: "enrollmentGroupId",
		group:  true,
		kind:   store.Groups,
		table:  func(s *Service) map[string]*EnrollmentGroup { return s.groups },
		view:   func(_ *Service, g *EnrollmentGroup) EnrollmentGroup { return *deepCopy(g) },
		del:    (*Service).DeleteEnrollmentGroup,
		decodeBulk: func(body []byte) ([]EnrollmentGroup, string, error) {
			var op BulkEnrollmentGroupOperation
			err := json.Unmarshal(body, &op)
			return op.EnrollmentGroups, op.Mode, err
		},
	}
)

// put creates or replaces a record; a non-empty ifMatch must match the
// stored etag (ErrPreconditionFailed). It returns the view of the stored
// record, with its new etag and timestamps.
func (k enrollmentKind[T, P]) put(s *Service, in T, ifMatch string) (T, error) {
	var zero T
	if id := P(&in).common().ID; !validRegistrationID(id) {
		return zero, fmt.Errorf("%w: invalid %s %q", ErrInvalid, k.idName, id)
	}
	n := P(deepCopy(&in))
	c := n.common()
	if err := validateCommon(c); err != nil {
		return zero, err
	}
	key := keyOf(c.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	table := k.table(s)
	old := table[key]
	var oldMeta recordMeta
	var oldAtt *AttestationMechanism
	if old != nil {
		oldMeta, oldAtt = P(old).meta(), P(old).common().Attestation
	}
	if ifMatch != "" && (old == nil || !etagMatches(ifMatch, oldMeta.ETag)) {
		return zero, ErrPreconditionFailed
	}
	if err := normalizeAttestation(c.Attestation, k.group, oldAtt); err != nil {
		return zero, err
	}
	now := s.now()
	m := n.meta()
	m.RegistrationState = nil
	m.ETag = newETag()
	if m.ProvisioningStatus == "" {
		m.ProvisioningStatus = ProvisioningEnabled
	}
	m.Created = ts(now)
	if oldMeta.Created != nil {
		m.Created = oldMeta.Created
	}
	m.Updated = ts(now)
	n.setMeta(m)
	if err := s.persist(func(tx *store.Tx) error { return putJSON(tx, k.kind, key, n) }); err != nil {
		return zero, err
	}
	table[key] = n
	return k.view(s, n), nil
}

// get returns the view of a record.
func (k enrollmentKind[T, P]) get(s *Service, id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := k.table(s)[keyOf(id)]
	if r == nil {
		var zero T
		return zero, false
	}
	return k.view(s, r), true
}

// list returns the views of all records, sorted by ID.
func (k enrollmentKind[T, P]) list(s *Service) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	table := k.table(s)
	out := make([]T, 0, len(table))
	for _, key := range sortedKeys(table) {
		out = append(out, k.view(s, table[key]))
	}
	return out
}

// deleteIfMatch removes table[key]: ErrNotFound when there is none,
// ErrPreconditionFailed when ifMatch is non-empty and does not match its etag.
// unstore, if non-nil, removes the record from the store first; its error
// leaves the record in place.
func deleteIfMatch[T any](table map[string]*T, key, ifMatch string, etag func(*T) string, unstore func() error) error {
	r := table[key]
	if r == nil {
		return ErrNotFound
	}
	if ifMatch != "" && !etagMatches(ifMatch, etag(r)) {
		return ErrPreconditionFailed
	}
	if unstore != nil {
		if err := unstore(); err != nil {
			return err
		}
	}
	delete(table, key)
	return nil
}

// PutEnrollment creates or replaces an individual enrollment. A non-empty
// e.ETag must match the stored one (ErrPreconditionFailed). It returns the
// stored enrollment with its new etag and timestamps.
func (s *Service) PutEnrollment(e IndividualEnrollment) (IndividualEnrollment, error) {
	return enrollmentsKind.put(s, e, e.ETag)
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
	return enrollmentsKind.get(s, registrationID)
}

// DeleteEnrollment deletes an individual enrollment and its registration
// record; a non-empty ifMatch must match its etag.
func (s *Service) DeleteEnrollment(registrationID, ifMatch string) error {
	key := keyOf(registrationID)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs[key]
	dropReg := r != nil && r.EnrollmentGroupID == ""
	unstore := func() error {
		return s.persist(func(tx *store.Tx) error {
			if err := tx.DeleteRecord(store.Enrollments, key); err != nil {
				return err
			}
			if dropReg {
				return tx.DeleteRecord(store.Registrations, key)
			}
			return nil
		})
	}
	if err := deleteIfMatch(s.enrollments, key, ifMatch, func(e *IndividualEnrollment) string { return e.ETag }, unstore); err != nil {
		return err
	}
	if dropReg {
		delete(s.regs, key)
	}
	return nil
}

// PutEnrollmentGroup creates or replaces an enrollment group. A non-empty
// g.ETag must match the stored one.
func (s *Service) PutEnrollmentGroup(g EnrollmentGroup) (EnrollmentGroup, error) {
	return groupsKind.put(s, g, g.ETag)
}

// GetEnrollmentGroup returns an enrollment group.
func (s *Service) GetEnrollmentGroup(id string) (EnrollmentGroup, bool) {
	return groupsKind.get(s, id)
}

// DeleteEnrollmentGroup deletes an enrollment group; a non-empty ifMatch must
// match its etag. Registration records of its devices stay (as in DPS, where
// they are deleted separately).
func (s *Service) DeleteEnrollmentGroup(id, ifMatch string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := keyOf(id)
	return deleteIfMatch(s.groups, key, ifMatch, func(g *EnrollmentGroup) string { return g.ETag }, func() error {
		return s.persist(func(tx *store.Tx) error { return tx.DeleteRecord(store.Groups, key) })
	})
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
	s.mu.Lock()
	defer s.mu.Unlock()
	key := keyOf(registrationID)
	return deleteIfMatch(s.regs, key, ifMatch, func(r *registration) string { return r.ETag }, func() error {
		return s.persist(func(tx *store.Tx) error { return tx.DeleteRecord(store.Registrations, key) })
	})
}

// Enrollments returns all individual enrollments sorted by registration ID.
func (s *Service) Enrollments() []IndividualEnrollment { return enrollmentsKind.list(s) }

// EnrollmentGroups returns all enrollment groups sorted by ID.
func (s *Service) EnrollmentGroups() []EnrollmentGroup { return groupsKind.list(s) }
