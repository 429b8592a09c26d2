package auth

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// LoadX509KeyPair reads a PEM certificate (chain, leaf first) and its PEM
// private key, like tls.LoadX509KeyPair, with errors that name the file and
// the problem. The returned certificate has Leaf set.
func LoadX509KeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: reading certificate: %w", ErrX509, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: reading private key: %w", ErrX509, err)
	}
	if err := checkPEM(certPEM, "CERTIFICATE"); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: %w", ErrX509, certFile, err)
	}
	if err := checkPEM(keyPEM, "PRIVATE KEY"); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: private key file %s: %w", ErrX509, keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages are precise (mismatch, unsupported key type)
		// and never contain key material.
		return tls.Certificate{}, fmt.Errorf("%w: %s with %s: %w", ErrX509, certFile, keyFile, err)
	}
	if pair.Leaf == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: %w", ErrX509, certFile, err)
		}
		pair.Leaf = leaf
	}
	return pair, nil
}

// checkPEM reports a file that holds no PEM block whose type ends in want
// (so "PRIVATE KEY" matches "RSA PRIVATE KEY" and "EC PRIVATE KEY").
func checkPEM(data []byte, want string) error {
	rest := data
	var seen []string
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, want) {
			return nil
		}
		seen = append(seen, b.Type)
	}
	if len(seen) == 0 {
		return fmt.Errorf("no PEM data (want a %q block)", want)
	}
	return fmt.Errorf("no %q PEM block (found %s)", want, strings.Join(seen, ", "))
}

// ThumbprintSHA1 is the SHA-1 of the certificate's DER in upper-case hex,
// the form the Azure portal and the registry's x509Thumbprint show.
func ThumbprintSHA1(cert *x509.Certificate) string {
	s := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}

// ThumbprintSHA256 is the SHA-256 of the certificate's DER in upper-case hex.
func ThumbprintSHA256(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(s[:]))
}
