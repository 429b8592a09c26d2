package dps

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestNewValidation(t *testing.T) {
	cert := selfSigned(t, "cert-dev")
	proxy, _ := url.Parse("http://proxy.example:3128")
	base := func() Config {
		return Config{IDScope: testScope, RegistrationID: testRegID, SymmetricKey: testKey}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string // substring; "" = valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"mqtt", func(c *Config) { c.Transport = TransportMQTT }, ""},
		{"mqtt-ws with proxy", func(c *Config) { c.Transport, c.ProxyURL = TransportMQTTWS, proxy }, ""},
		{"x509 takes CN", func(c *Config) { c.SymmetricKey, c.RegistrationID, c.Certificate = "", "", &cert }, ""},
		{"endpoint with port", func(c *Config) { c.GlobalEndpoint = "dps.local:8443" }, ""},
		{"IPv6 endpoint", func(c *Config) { c.GlobalEndpoint = "[::1]:8443" }, ""},
		{"x509 with its CN", func(c *Config) { c.SymmetricKey, c.RegistrationID, c.Certificate = "", "CERT-dev", &cert }, ""},
		{"x509 with another ID", func(c *Config) { c.SymmetricKey, c.Certificate = "", &cert }, "subject CN"},
		{"no scope", func(c *Config) { c.IDScope = "" }, "ID scope"},
		{"scope with slash", func(c *Config) { c.IDScope = "a/b" }, "ID scope"},
		{"no registration id", func(c *Config) { c.RegistrationID = "" }, "registration ID"},
		{"registration id with space", func(c *Config) { c.RegistrationID = "a b" }, "registration ID"},
		{"no credential", func(c *Config) { c.SymmetricKey = "" }, "one of SymmetricKey and Certificate"},
		{"both credentials", func(c *Config) { c.Certificate = &cert }, "not both"},
		{"bad key", func(c *Config) { c.SymmetricKey = "not base64!" }, "symmetric key"},
		{"empty certificate", func(c *Config) { c.SymmetricKey, c.Certificate = "", &tls.Certificate{} }, "no certificate data"},
		{"unknown transport", func(c *Config) { c.Transport = "amqp" }, "unknown transport"},
		{"mqtt with proxy", func(c *Config) { c.Transport, c.ProxyURL = TransportMQTT, proxy }, ""},
		{"socks proxy", func(c *Config) { c.ProxyURL = &url.URL{Scheme: "socks5", Host: "p:1080"} }, "want http://host:port"},
		{"proxy without host", func(c *Config) { c.ProxyURL = &url.URL{Scheme: "http"} }, "want http://host:port"},
		{"endpoint URL", func(c *Config) { c.GlobalEndpoint = "https://dps.local" }, "global endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			c, err := New(cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if c != nil {
				t.Error("client returned with an error")
			}
			if strings.Contains(err.Error(), testKey) {
				t.Error("error shows the key")
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	cert := selfSigned(t, "cert-dev")
	for _, tc := range []struct {
		transport, endpoint     string
		wantHost, wantPort, wHS string
	}{
		{"", "", DefaultGlobalEndpoint, "443", "443"},
		{TransportMQTT, "", DefaultGlobalEndpoint, "8883", "443"},
		{TransportMQTTWS, "", DefaultGlobalEndpoint, "443", "443"},
		{TransportMQTT, "127.0.0.1:18883", "127.0.0.1", "18883", "443"},
		{TransportHTTPS, "dps.local:8443", "dps.local", "8443", "8443"},
	} {
		c := mustNew(t, Config{IDScope: testScope, Certificate: &cert, Transport: tc.transport, GlobalEndpoint: tc.endpoint})
		if c.host != tc.wantHost || c.port != tc.wantPort || c.httpsPort != tc.wHS {
			t.Errorf("%q %q: host %q port %q https port %q", tc.transport, tc.endpoint, c.host, c.port, c.httpsPort)
		}
		if c.RegistrationID() != "cert-dev" || c.cfg.APIVersion != DefaultAPIVersion || c.signer != nil {
			t.Errorf("defaults: %+v", c.cfg)
		}
	}
}

func TestRegisterX509HTTPS(t *testing.T) {
	cert := selfSigned(t, testRegID)
	f := newFakeDPS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, "", assigned("op", nil))
	})
	f.srv.TLS.ClientAuth = tls.RequestClientCert
	cfg := f.config(newInstantClock())
	cfg.SymmetricKey, cfg.RegistrationID, cfg.Certificate = "", "", &cert
	if _, err := mustNew(t, cfg).Register(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if !r.HasClientCert || r.Header.Get("Authorization") != "" {
		t.Errorf("client cert %v, Authorization %q", r.HasClientCert, r.Header.Get("Authorization"))
	}
	if !strings.Contains(r.Path, "/registrations/"+testRegID+"/") {
		t.Errorf("path %s", r.Path)
	}
}
