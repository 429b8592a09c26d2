package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a fresh self-signed certificate and key as PEM files.
func writePair(t *testing.T, dir, name string) (certFile, keyFile string, der []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Unix(1_600_000_000, 0),
		NotAfter:     time.Unix(1_600_000_000, 0).Add(100 * 365 * 24 * time.Hour),
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, der
}

func TestLoadX509KeyPairAndThumbprints(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, der := writePair(t, dir, "dev1")
	pair, err := LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf == nil || pair.Leaf.Subject.CommonName != "dev1" {
		t.Fatalf("leaf %+v", pair.Leaf)
	}
	// Independent computation from the DER written to disk.
	s1, s256 := sha1.Sum(der), sha256.Sum256(der)
	want1, want256 := fmt.Sprintf("%X", s1), fmt.Sprintf("%X", s256)
	if got := ThumbprintSHA1(pair.Leaf); got != want1 || len(got) != 40 {
		t.Errorf("SHA-1 thumbprint %s, want %s", got, want1)
	}
	if got := ThumbprintSHA256(pair.Leaf); got != want256 || len(got) != 64 {
		t.Errorf("SHA-256 thumbprint %s, want %s", got, want256)
	}
	if strings.ToUpper(ThumbprintSHA1(pair.Leaf)) != ThumbprintSHA1(pair.Leaf) {
		t.Error("thumbprint not upper-case")
	}
}

func TestLoadX509KeyPairErrors(t *testing.T) {
	dir := t.TempDir()
	certA, keyA, _ := writePair(t, dir, "a")
	_, keyB, _ := writePair(t, dir, "b")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key, msg string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyA, "reading certificate"},
		{"missing key", certA, filepath.Join(dir, "nope.key"), "reading private key"},
		{"cert not pem", garbage, keyA, "no PEM data"},
		{"key file holds a cert", certA, certA, `no "PRIVATE KEY" PEM block (found CERTIFICATE)`},
		{"cert file holds a key", keyA, keyA, `no "CERTIFICATE" PEM block (found PRIVATE KEY)`},
		{"mismatched key", certA, keyB, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadX509KeyPair(tt.cert, tt.key)
			if !errors.Is(err, ErrX509) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want ErrX509 containing %q", err, tt.msg)
			}
		})
	}
}
