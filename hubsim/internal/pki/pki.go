package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/pki/atomicfile"
)

// File names inside the PKI directory.
const (
	CAFileName         = "ca.pem"
	CAKeyFileName      = "ca.key"
	ServerCertFileName = "server.pem"
	ServerKeyFileName  = "server.key"
)

// Validity periods.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
	clientValidity = 365 * 24 * time.Hour
	// renewBefore: a server certificate that expires sooner is issued again.
	renewBefore = 30 * 24 * time.Hour
	// backdate covers small clock differences between hubsim and clients.
	backdate = time.Hour
)

// DefaultNames are always in the server certificate.
var DefaultNames = []string{"127.0.0.1", "::1", "localhost"}

var (
	// ErrIncomplete means the directory holds only one of ca.pem and ca.key.
	ErrIncomplete = errors.New("pki: CA certificate and key must both exist or both be absent")
	// ErrExpired means the CA on disk is no longer valid.
	ErrExpired = errors.New("pki: CA certificate expired")
	// ErrBadName means a requested SAN name is empty or malformed.
	ErrBadName = errors.New("pki: invalid certificate name")
)

// Options configures Load.
type Options struct {
	// Dir holds the CA and server files; it is created (0700) if missing.
	Dir string
	// Names are extra host names or IP literals for the server certificate,
	// added to DefaultNames.
	Names []string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Rand is the entropy source; nil means crypto/rand.Reader.
	Rand io.Reader
}

// PKI is a loaded CA with its current server certificate. Its methods are
// safe for concurrent use.
type PKI struct {
	dir    string
	now    func() time.Time
	rand   io.Reader
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	server tls.Certificate
	names  []string // sorted canonical SAN names of server

	caCreated    bool
	serverIssued bool

	mu sync.Mutex // guards rand reads from IssueClient (io.Reader need not be concurrency-safe)
}

// Load reuses the CA in opts.Dir or creates one, then makes sure the server
// certificate there covers exactly DefaultNames ∪ opts.Names.
func Load(opts Options) (*PKI, error) {
	if opts.Dir == "" {
		return nil, errors.New("pki: no directory")
	}
	p := &PKI{dir: opts.Dir, now: opts.Now, rand: opts.Rand}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	names, err := CanonicalNames(append(slices.Clone(DefaultNames), opts.Names...))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := p.loadOrCreateCA(); err != nil {
		return nil, err
	}
	if err := p.loadOrIssueServer(names); err != nil {
		return nil, err
	}
	return p, nil
}

// CanonicalNames normalises SAN names: IP literals (optionally in brackets)
// to their canonical text form, DNS names to lower case without a trailing
// dot. The result is sorted and free of duplicates.
func CanonicalNames(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, n := range in {
		c, err := canonicalName(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func canonicalName(n string) (string, error) {
	s := strings.TrimSpace(n)
	if strings.HasPrefix(s, "[") || strings.HasSuffix(s, "]") {
		// Brackets are for an IP literal ("[::1]") and nothing else.
		inner, ok := strings.CutPrefix(s, "[")
		inner, ok2 := strings.CutSuffix(inner, "]")
		if ip := net.ParseIP(inner); ok && ok2 && ip != nil {
			return ip.String(), nil
		}
		return "", fmt.Errorf("%w: %q (brackets hold an IP address)", ErrBadName, n)
	}
	if ip := net.ParseIP(s); ip != nil {
		return ip.String(), nil
	}
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return "", fmt.Errorf("%w: %q", ErrBadName, n)
	}
	labels := strings.Split(s, ".")
	for i, label := range labels {
		if label == "" || len(label) > 63 || !hostLabel(label, i == 0) {
			return "", fmt.Errorf("%w: %q (a DNS name: ASCII letters, digits, '-' and '_' in dot-separated labels, '*' only as the whole first label)", ErrBadName, n)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		// "127.000.0.1" is no IP address to Go but one to other parsers.
		return "", fmt.Errorf("%w: %q (an all-numeric last label reads as an IP address)", ErrBadName, n)
	}
	return s, nil
}

// hostLabel reports whether a lower-cased label is one a certificate's DNS
// name may hold: letters, digits, '-' and '_' (found in internal names),
// or "*" as the whole first label (a wildcard). Anything else — spaces,
// control characters, ':', '/', non-ASCII (use its punycode form) — is
// refused, so a name cannot change meaning between writing the config and
// reading the certificate.
func hostLabel(label string, first bool) bool {
	if first && label == "*" {
		return true
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (p *PKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *PKI) loadOrCreateCA() error {
	certPEM, certErr := os.ReadFile(p.path(CAFileName))
	keyPEM, keyErr := os.ReadFile(p.path(CAKeyFileName))
	certMissing := errors.Is(certErr, fs.ErrNotExist)
	keyMissing := errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return p.createCA()
	case certMissing || keyMissing:
		return fmt.Errorf("%w (in %s)", ErrIncomplete, p.dir)
	case certErr != nil:
		return fmt.Errorf("pki: %w", certErr)
	case keyErr != nil:
		return fmt.Errorf("pki: %w", keyErr)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", CAFileName, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", CAKeyFileName, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("pki: %s does not match %s", CAKeyFileName, CAFileName)
	}
	if !cert.IsCA {
		return fmt.Errorf("pki: %s is not a CA certificate", CAFileName)
	}
	if p.now().After(cert.NotAfter) {
		return fmt.Errorf("%w on %s; remove %s and %s to create a new one",
			ErrExpired, cert.NotAfter.Format(time.DateOnly), CAFileName, CAKeyFileName)
	}
	p.caCert, p.caKey, p.caPEM = cert, key, certPEM
	return nil
}

func (p *PKI) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), p.rand)
	if err != nil {
		return fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := p.serial()
	if err != nil {
		return err
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "porthole hubsim CA", Organization: []string{"porthole hubsim"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(p.rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := encodeCert(der)
	// Key first: a crash between the two writes leaves ca.key without
	// ca.pem, which Load reports instead of silently minting a second CA
	// that clients do not trust.
	if err := atomicfile.WriteFile(p.path(CAKeyFileName), keyPEM, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.WriteFile(p.path(CAFileName), certPEM, 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	p.caCert, p.caKey, p.caPEM, p.caCreated = cert, key, certPEM, true
	return nil
}

func (p *PKI) loadOrIssueServer(names []string) error {
	if p.serverUsable(names) {
		return nil
	}
	certPEM, keyPEM, err := p.issue("hubsim server", names, x509.ExtKeyUsageServerAuth, serverValidity)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.path(ServerKeyFileName), keyPEM, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.WriteFile(p.path(ServerCertFileName), certPEM, 0o644); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	p.server, p.names, p.serverIssued = pair, names, true
	return nil
}

// serverUsable loads the server pair from disk and reports whether it can be
// kept: same names, signed by our CA, not close to expiry.
func (p *PKI) serverUsable(names []string) bool {
	certPEM, err := os.ReadFile(p.path(ServerCertFileName))
	if err != nil {
		return false
	}
	keyPEM, err := os.ReadFile(p.path(ServerKeyFileName))
	if err != nil {
		return false
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false
	}
	if cert.CheckSignatureFrom(p.caCert) != nil {
		return false
	}
	now := p.now()
	if now.Before(cert.NotBefore) || now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	if !slices.Equal(certNames(cert), names) {
		return false
	}
	p.server, p.names = pair, names
	return true
}

// certNames returns the canonical, sorted SAN names of cert.
func certNames(cert *x509.Certificate) []string {
	var out []string
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	for _, d := range cert.DNSNames {
		out = append(out, strings.ToLower(d))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// issue makes a leaf certificate signed by the CA. names go to the SANs.
func (p *PKI) issue(cn string, names []string, usage x509.ExtKeyUsage, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), p.rand)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	serial, err := p.serial()
	if err != nil {
		return nil, nil, err
	}
	now := p.now()
	notAfter := now.Add(validity)
	if notAfter.After(p.caCert.NotAfter) {
		notAfter = p.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		AuthorityKeyId:        p.caCert.SubjectKeyId,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(p.rand, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: %w", cn, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// IssueClient returns a client certificate with subject CN cn, signed by the
// CA (for X.509 CA-signed device tests; the device id is the CN). certPEM
// holds only the leaf.
func (p *PKI) IssueClient(cn string) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		return nil, nil, errors.New("pki: empty common name")
	}
	return p.issue(cn, nil, x509.ExtKeyUsageClientAuth, clientValidity)
}

// SelfSigned returns a self-signed client certificate with subject CN cn,
// valid for a year from now (for X.509 self-signed / thumbprint device tests).
func SelfSigned(cn string) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		return nil, nil, errors.New("pki: empty common name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(clientValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: self-sign %q: %w", cn, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// Dir is the directory the files live in.
func (p *PKI) Dir() string { return p.dir }

// CAFile is the path of ca.pem, the file clients trust.
func (p *PKI) CAFile() string { return p.path(CAFileName) }

// CAPEM returns the CA certificate in PEM form.
func (p *PKI) CAPEM() []byte { return bytes.Clone(p.caPEM) }

// CACert returns the parsed CA certificate.
func (p *PKI) CACert() *x509.Certificate { return p.caCert }

// CertPool returns a new pool holding only the CA.
func (p *PKI) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return pool
}

// ServerCertificate is the TLS server certificate (leaf only; clients
// verify it against ca.pem).
func (p *PKI) ServerCertificate() tls.Certificate { return p.server }

// Names lists the server certificate's SAN names (canonical, sorted).
func (p *PKI) Names() []string { return slices.Clone(p.names) }

// CACreated reports whether Load created a new CA (false: reused from disk).
func (p *PKI) CACreated() bool { return p.caCreated }

// ServerIssued reports whether Load issued a new server certificate.
func (p *PKI) ServerIssued() bool { return p.serverIssued }

func (p *PKI) serial() (*big.Int, error) {
	n, err := rand.Int(p.rand, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der) // RFC 5280 §4.2.1.2 method (1); not a security use
	return sum[:]
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM key")
	}
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want ECDSA", k)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
	}
}
