package dps

import (
	"crypto/sha1" //nolint:gosec // DPS shows SHA-1 thumbprints next to SHA-256 ones.
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// parseCertificate reads a certificate as enrollments carry it: PEM text,
// base64 of PEM text, or base64 of DER.
func parseCertificate(s string) (*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty certificate")
	}
	data := []byte(s)
	if !strings.Contains(s, "-----BEGIN") {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("certificate is neither PEM nor base64: %w", err)
		}
		data = raw
	}
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", blk.Type)
		}
		data = blk.Bytes
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

func thumbprintSHA1(c *x509.Certificate) string {
	h := sha1.Sum(c.Raw) //nolint:gosec
	return strings.ToUpper(hex.EncodeToString(h[:]))
}

func thumbprintSHA256(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(h[:]))
}

// certInfo computes the X509CertificateInfo DPS shows for a certificate.
func certInfo(c *x509.Certificate) *X509CertificateInfo {
	return &X509CertificateInfo{
		SubjectName:      c.Subject.String(),
		SHA1Thumbprint:   thumbprintSHA1(c),
		SHA256Thumbprint: thumbprintSHA256(c),
		IssuerName:       c.Issuer.String(),
		NotBeforeUTC:     Timestamp{c.NotBefore.UTC()},
		NotAfterUTC:      Timestamp{c.NotAfter.UTC()},
		SerialNumber:     strings.ToUpper(c.SerialNumber.Text(16)),
		Version:          c.Version,
	}
}

// sameCertificate reports whether leaf is the enrolled certificate e.
func sameCertificate(leaf *x509.Certificate, e *X509CertificateWithInfo) bool {
	if e == nil {
		return false
	}
	if e.Certificate != "" {
		if c, err := parseCertificate(e.Certificate); err == nil {
			return c.Equal(leaf)
		}
	}
	if e.Info != nil && e.Info.SHA256Thumbprint != "" {
		return strings.EqualFold(e.Info.SHA256Thumbprint, thumbprintSHA256(leaf))
	}
	return false
}
