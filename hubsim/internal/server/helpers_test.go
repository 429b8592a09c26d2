package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds waits that only matter when a test is failing.
const waitTimeout = 30 * time.Second

type env struct {
	srv *Server
	ca  *pki.PKI
}

// start runs a server with comps on free loopback ports.
func start(t *testing.T, comps Components, listen ...string) *env {
	t.Helper()
	ca, err := pki.Load(pki.Options{Dir: t.TempDir(), Names: append([]string{"hub-eu.local"}, listen...)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Listen: listen, Certificate: ca.ServerCertificate()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(comps); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{srv: srv, ca: ca}
}

// client returns an HTTP client trusting the CA that dials every address
// to the server's first HTTPS listener (so host names need not resolve).
func (e *env) client(t *testing.T) *http.Client {
	t.Helper()
	target := e.srv.HTTPSAddrs()[0]
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: e.ca.CertPool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true, // the server must still answer HTTP/1.1
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}
