package service

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/sdk/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHost is the host name the fake services answer to; the fake's DialContext maps it
// (any port) to the httptest server.
const fakeHost = "example.com" // in the httptest certificate

func newKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// fake is an httptest TLS server standing in for a hub or DPS.
type fake struct {
	srv    *httptest.Server
	key    string
	policy string
	cfg    Config
}

// newFake starts h behind TLS and returns a Config that reaches it as
// fakeHost with a fresh policy key. The server and the client's idle
// connections are closed at cleanup.
func newFake(t *testing.T, policy string, h http.HandlerFunc) *fake {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	addr := srv.Listener.Addr().String()
	f := &fake{srv: srv, key: newKey(t), policy: policy}
	f.cfg = Config{
		ConnectionString: "HostName=" + fakeHost + ";SharedAccessKeyName=" + policy + ";SharedAccessKey=" + f.key,
		RootCAs:          pool,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(a)
			if err != nil || host != fakeHost {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errUnknownHost}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(srv.Close)
	return f
}

// newAuthFake is newFake whose handler first checks each request's policy
// token with checkAuth, reporting a bad one with t.Error.
func newAuthFake(t *testing.T, policy string, h http.HandlerFunc) *fake {
	t.Helper()
	var f *fake
	f = newFake(t, policy, func(w http.ResponseWriter, r *http.Request) {
		if p := checkAuth(r, f.key, policy, time.Now()); p != "" {
			t.Error(p)
		}
		h(w, r)
	})
	return f
}

var errUnknownHost = &net.DNSError{Err: "not the fake host", IsNotFound: true}

func (f *fake) hub(t *testing.T) *Client {
	t.Helper()
	c, err := New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (f *fake) dps(t *testing.T) *DPSClient {
	t.Helper()
	c, err := NewDPS(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkAuth verifies the request's policy token: sr is the host, skn the
// policy, the signature is right and the token has not expired.
func checkAuth(r *http.Request, key, policy string, now time.Time) string {
	tok, err := auth.ParseToken(r.Header.Get("Authorization"))
	if err != nil {
		return "bad token: " + err.Error()
	}
	if tok.SR != fakeHost || tok.KeyName != policy {
		return "token sr/skn " + tok.SR + "/" + tok.KeyName
	}
	sig, err := auth.Sign(key, tok.StringToSign())
	if err != nil || sig != tok.Sig {
		return "bad signature"
	}
	if tok.Expired(now) {
		return "expired token"
	}
	return ""
}

// writeHubError answers in the hub's error shape.
func writeHubError(w http.ResponseWriter, status int, name, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("iothub-errorcode", name)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"Message":"ErrorCode:` + name + `;` + msg + `","ExceptionMessage":"Tracking ID:x"}`))
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
