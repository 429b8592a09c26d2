package dps

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/sas"
)

// deviceCreds is what a device presented: a SAS token (HTTP Authorization
// header or MQTT password) or a TLS client certificate chain, leaf first.
type deviceCreds struct {
	SAS   string
	Certs []*x509.Certificate
}

// match is the enrollment a device authenticated against (copies).
type match struct {
	enrollment  *IndividualEnrollment
	group       *EnrollmentGroup
	common      enrollmentCommon
	attestation string
	certInfo    *X509CertificateInfo
	signingInfo *X509CertificateInfo
}

var errUnauthorized = errors.New("dps: device not authorized")

// DeriveGroupKey returns the device key of registrationID under a
// symmetric-key enrollment group: base64(HMAC-SHA256(base64decode(groupKey),
// registrationID)). [MicrosoftDocs/azure-docs
// articles/iot-dps/how-to-legacy-device-symm-key.md]
func DeriveGroupKey(groupKeyB64, registrationID string) (string, error) {
	k, err := base64.StdEncoding.DecodeString(groupKeyB64)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// deviceResource is the SAS resource a device token must cover:
// "<idScope>/registrations/<registrationId>". [Azure/azure-iot-sdk-node
// security/symmetric/src/symmetric_key.ts], [Azure/azure-iot-sdk-c
// provisioning_client/src/prov_device_ll_client.c]
func deviceResource(scope, regID string) string {
	return scope + "/registrations/" + regID
}

// authenticate finds the enrollment whose credentials the device presented.
//
// Order matters: DPS looks up the device's individual enrollment first, and
// when one exists for the registration ID it alone decides — its credential
// matches or the device is refused; enrollment groups are searched only when
// there is no individual enrollment. So a group-derived key cannot take over
// an individually enrolled device, and a disabled individual enrollment keeps
// a device out of a group that would accept it (the register answer is then
// status "disabled" for the device's own credential, 401 for any other).
// [MicrosoftDocs/azure-docs articles/iot-dps/how-to-revoke-device-access-portal.md,
// "Disallow specific devices in an enrollment group"]
func (s *Service) authenticate(scope, regID string, creds deviceCreds, now time.Time) (*match, error) {
	s.mu.Lock()
	e := deepCopy(s.enrollments[keyOf(regID)])
	groups := make([]*EnrollmentGroup, 0, len(s.groups))
	for _, k := range sortedKeys(s.groups) {
		groups = append(groups, deepCopy(s.groups[k]))
	}
	s.mu.Unlock()

	if len(creds.Certs) > 0 {
		return authenticateX509(regID, creds.Certs, e, groups, now)
	}
	if creds.SAS == "" {
		return nil, errUnauthorized
	}
	tok, err := sas.Parse(creds.SAS)
	if err != nil {
		return nil, errUnauthorized
	}
	if tok.KeyName != "" && tok.KeyName != deviceKeyName {
		return nil, errUnauthorized
	}
	if !tok.Covers(deviceResource(scope, regID)) {
		return nil, errUnauthorized
	}
	if e != nil {
		if e.Attestation != nil && e.Attestation.Type == AttestationSymmetricKey && e.Attestation.SymmetricKey != nil {
			for _, k := range []string{e.Attestation.SymmetricKey.PrimaryKey, e.Attestation.SymmetricKey.SecondaryKey} {
				if k != "" && tok.Verify(k, now) == nil {
					return &match{enrollment: e, common: e.common(), attestation: AttestationSymmetricKey}, nil
				}
			}
		}
		return nil, errUnauthorized
	}
	for _, g := range groups {
		if g.Attestation == nil || g.Attestation.Type != AttestationSymmetricKey || g.Attestation.SymmetricKey == nil {
			continue
		}
		for _, gk := range []string{g.Attestation.SymmetricKey.PrimaryKey, g.Attestation.SymmetricKey.SecondaryKey} {
			if gk == "" {
				continue
			}
			dk, err := DeriveGroupKey(gk, regID)
			if err != nil {
				continue
			}
			if tok.Verify(dk, now) == nil {
				return &match{group: g, common: g.common(), attestation: AttestationSymmetricKey}, nil
			}
		}
	}
	return nil, errUnauthorized
}

// authenticateX509 matches a TLS client chain: the leaf's CN must be the
// registration ID; an individual enrollment matches the leaf itself, a group
// matches when the chain verifies up to one of its signing certificates.
// [MicrosoftDocs/azure-docs articles/iot-dps/concepts-x509-attestation.md]
func authenticateX509(regID string, chain []*x509.Certificate, e *IndividualEnrollment, groups []*EnrollmentGroup, now time.Time) (*match, error) {
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, errUnauthorized
	}
	if !strings.EqualFold(leaf.Subject.CommonName, regID) {
		return nil, errUnauthorized
	}
	info := certInfo(leaf)
	if e != nil {
		// An individual enrollment decides alone (see authenticate).
		if e.Attestation != nil && e.Attestation.Type == AttestationX509 && e.Attestation.X509 != nil {
			if cc := e.Attestation.X509.ClientCertificates; cc != nil && (sameCertificate(leaf, cc.Primary) || sameCertificate(leaf, cc.Secondary)) {
				return &match{enrollment: e, common: e.common(), attestation: AttestationX509, certInfo: info}, nil
			}
		}
		return nil, errUnauthorized
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, g := range groups {
		if g.Attestation == nil || g.Attestation.Type != AttestationX509 || g.Attestation.X509 == nil || g.Attestation.X509.SigningCertificates == nil {
			continue
		}
		sc := g.Attestation.X509.SigningCertificates
		for _, ci := range []*X509CertificateWithInfo{sc.Primary, sc.Secondary} {
			if ci == nil || ci.Certificate == "" {
				continue
			}
			root, err := parseCertificate(ci.Certificate)
			if err != nil {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(root)
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if err == nil {
				return &match{group: g, common: g.common(), attestation: AttestationX509, certInfo: info, signingInfo: certInfo(root)}, nil
			}
		}
	}
	return nil, errUnauthorized
}
