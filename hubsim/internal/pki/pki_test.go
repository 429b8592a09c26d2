package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func leaf(t *testing.T, p *PKI) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(p.ServerCertificate().Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestServerSANs(t *testing.T) {
	p, err := Load(Options{Dir: t.TempDir(), Names: []string{"hub-eu.local", "HUB-US.local.", "[127.0.0.2]", "fd00::1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	c := leaf(t, p)
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(ips)
	dns := slices.Clone(c.DNSNames)
	slices.Sort(dns)
	if want := []string{"127.0.0.1", "127.0.0.2", "::1", "fd00::1"}; !slices.Equal(ips, want) {
		t.Errorf("IP SANs = %v, want %v", ips, want)
	}
	if want := []string{"hub-eu.local", "hub-us.local", "localhost"}; !slices.Equal(dns, want) {
		t.Errorf("DNS SANs = %v, want %v", dns, want)
	}
	for _, name := range []string{"hub-eu.local", "127.0.0.2", "::1", "localhost"} {
		if _, err := c.Verify(x509.VerifyOptions{DNSName: name, Roots: p.CertPool()}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "other.local", Roots: p.CertPool()}); err == nil {
		t.Error("certificate verified for a name it must not cover")
	}
}

func TestFilesAndModes(t *testing.T) {
	dir := t.TempDir()
	p, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.CAFile() != filepath.Join(dir, CAFileName) {
		t.Errorf("CAFile = %s", p.CAFile())
	}
	for name, mode := range map[string]os.FileMode{
		CAFileName: 0o644, CAKeyFileName: 0o600, ServerCertFileName: 0o644, ServerKeyFileName: 0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	onDisk, _ := os.ReadFile(p.CAFile())
	if !bytes.Equal(onDisk, p.CAPEM()) {
		t.Error("CAPEM differs from ca.pem")
	}
}

func TestReuse(t *testing.T) {
	dir := t.TempDir()
	first, err := Load(Options{Dir: dir, Names: []string{"hub-eu.local"}})
	if err != nil {
		t.Fatal(err)
	}
	if !first.CACreated() || !first.ServerIssued() {
		t.Fatal("first load must create CA and server cert")
	}
	tests := []struct {
		name        string
		names       []string
		wantReissue bool
	}{
		{"same names", []string{"hub-eu.local"}, false},
		{"same names other spelling", []string{"HUB-EU.local."}, false},
		{"name added", []string{"hub-eu.local", "hub-us.local"}, true},
		{"back to one", []string{"hub-eu.local"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(Options{Dir: dir, Names: tt.names})
			if err != nil {
				t.Fatal(err)
			}
			if p.CACreated() {
				t.Error("CA was created again")
			}
			if !p.CACert().Equal(first.CACert()) {
				t.Error("CA changed")
			}
			if p.ServerIssued() != tt.wantReissue {
				t.Errorf("ServerIssued = %v, want %v", p.ServerIssued(), tt.wantReissue)
			}
			if err := leaf(t, p).CheckSignatureFrom(first.CACert()); err != nil {
				t.Errorf("server cert not signed by the CA: %v", err)
			}
		})
	}
}

func TestRenewNearExpiry(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Load(Options{Dir: dir, Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(serverValidity - renewBefore/2)
	p, err := Load(Options{Dir: dir, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	if !p.ServerIssued() {
		t.Error("server certificate close to expiry was kept")
	}
	if p.CACreated() {
		t.Error("CA was recreated")
	}
	expired := now.Add(caValidity + time.Hour)
	if _, err := Load(Options{Dir: dir, Now: func() time.Time { return expired }}); !errors.Is(err, ErrExpired) {
		t.Errorf("expired CA: err = %v, want ErrExpired", err)
	}
}

func TestForeignServerCertReplaced(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := Load(Options{Dir: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: b}); err != nil {
		t.Fatal(err)
	}
	// Put b's server pair next to a's CA.
	for _, f := range []string{ServerCertFileName, ServerKeyFileName} {
		data, _ := os.ReadFile(filepath.Join(b, f))
		if err := os.WriteFile(filepath.Join(a, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Load(Options{Dir: a})
	if err != nil {
		t.Fatal(err)
	}
	if !p.ServerIssued() {
		t.Error("server cert from another CA was kept")
	}
}

func TestIncompleteCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CAFileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
}

func TestBadNames(t *testing.T) {
	for _, n := range []string{"", " ", "a..b", "host:443", "a/b", ".", "0\t.", "a\tb", "a\nb.local", "bad name", "ünï.local", "a*.b", "x.*", "a@b", "[a]", "[::1", "127.000.0.1", "host.42"} {
		if _, err := Load(Options{Dir: t.TempDir(), Names: []string{n}}); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: err = %v, want ErrBadName", n, err)
		}
	}
}

func TestCanonicalNames(t *testing.T) {
	got, err := CanonicalNames([]string{"HUB-EU.Local.", " my_hub.local ", "*.Hubs.Local", "[::1]", "127.0.0.1", "hub-eu.local", "h42.local"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"*.hubs.local", "127.0.0.1", "::1", "h42.local", "hub-eu.local", "my_hub.local"}
	if !slices.Equal(got, want) {
		t.Errorf("CanonicalNames = %q, want %q", got, want)
	}
}

func TestClientCerts(t *testing.T) {
	p, err := Load(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.IssueClient("dev1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(pair.Certificate[0])
	if c.Subject.CommonName != "dev1" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: p.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("CA-signed client cert does not verify: %v", err)
	}

	sPEM, sKey, err := SelfSigned("dev2")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := tls.X509KeyPair(sPEM, sKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := x509.ParseCertificate(sp.Certificate[0])
	if sc.Subject.CommonName != "dev2" || sc.CheckSignature(sc.SignatureAlgorithm, sc.RawTBSCertificate, sc.Signature) != nil {
		t.Error("self-signed cert is not self-signed for dev2")
	}
	if _, err := sc.Verify(x509.VerifyOptions{Roots: p.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("self-signed cert verified against the hubsim CA")
	}
	if _, _, err := p.IssueClient(""); err == nil {
		t.Error("empty CN accepted")
	}
}

// TestHandshake dials the server certificate with and without SNI: an IP
// literal sends none and must verify against the IP SAN.
func TestHandshake(t *testing.T) {
	p, err := Load(Options{Dir: t.TempDir(), Names: []string{"hub-eu.local"}})
	if err != nil {
		t.Fatal(err)
	}
	sni := make(chan string, 1) // SNI of the latest ClientHello
	cert := p.ServerCertificate()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			select {
			case <-sni:
			default:
			}
			sni <- hello.ServerName
			return &cert, nil
		},
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()

	tests := []struct {
		serverName string
		wantSNI    bool
		wantErr    bool
	}{
		{"127.0.0.1", false, false},
		{"hub-eu.local", true, false},
		{"localhost", true, false},
		{"not-covered.local", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.serverName, func(t *testing.T) {
			cfg := &tls.Config{
				RootCAs:    p.CertPool(),
				ServerName: tt.serverName,
				MinVersion: tls.VersionTLS12,
			}
			d := tls.Dialer{Config: cfg}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded for a name not in the certificate")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := <-sni
			if (got != "") != tt.wantSNI {
				t.Errorf("server saw SNI %q, want SNI sent = %v", got, tt.wantSNI)
			}
		})
	}
}

func FuzzCanonicalNames(f *testing.F) {
	for _, s := range []string{"hub-eu.local", "[::1]", "127.0.0.1", "A.B.", "", "a..b", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := CanonicalNames([]string{s})
		if err != nil {
			return
		}
		again, err := CanonicalNames(out)
		if err != nil || !slices.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, out, again, err)
		}
	})
}
