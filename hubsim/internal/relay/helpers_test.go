package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a goroutine-safe event sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the event lines written so far.
func (b *syncBuffer) records(tb testing.TB) []record {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []record
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			tb.Fatalf("event line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a relay behind a loopback TLS server.
type env struct {
	relay  *Relay
	srv    *httptest.Server
	events *syncBuffer
}

func newEnv(tb testing.TB, cfg Config) *env {
	tb.Helper()
	e := &env{events: &syncBuffer{}}
	cfg.EventLog = e.events
	cfg.BaseURL = func(string) string { return "wss://" + e.srv.Listener.Addr().String() }
	e.relay = New(cfg)
	e.srv = httptest.NewTLSServer(e.relay)
	tb.Cleanup(func() {
		e.relay.Close()
		e.srv.Close()
	})
	return e
}

func (e *env) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

func (e *env) create(tb testing.TB, spec StreamSpec) Ticket {
	tb.Helper()
	if spec.Hub == "" {
		spec.Hub = "hub1.azure-devices.net"
	}
	if spec.DeviceID == "" {
		spec.DeviceID = "dev1"
	}
	if spec.Name == "" {
		spec.Name = "ssh"
	}
	tk, err := e.relay.Create(spec)
	if err != nil {
		tb.Fatalf("Create: %v", err)
	}
	return tk
}

func (e *env) dial(tb testing.TB, url, token string) (*stream.Conn, error) {
	tb.Helper()
	c, err := stream.Dial(context.Background(), url, token, stream.DialOptions{TLSConfig: e.tlsConfig()})
	if err == nil {
		tb.Cleanup(func() { c.Close() })
	}
	return c, err
}

func (e *env) mustDial(tb testing.TB, url, token string) *stream.Conn {
	tb.Helper()
	c, err := e.dial(tb, url, token)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	return c
}

// dialRaw dials like mustDial but also returns the TCP connection under
// the TLS session, so a test can drop it without a close frame.
func (e *env) dialRaw(tb testing.TB, url, token string) (*stream.Conn, net.Conn) {
	tb.Helper()
	var raw net.Conn
	opts := stream.DialOptions{
		TLSConfig: e.tlsConfig(),
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			raw = c
			return c, err
		},
	}
	c, err := stream.Dial(context.Background(), url, token, opts)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c, raw
}

// readErr reads from c until an error and returns it.
func readErr(tb testing.TB, c *stream.Conn) error {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
}
