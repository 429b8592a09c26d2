package server

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/hubsim/internal/simconfig"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// startLimited runs a server with comps and lim on a free loopback port.
func startLimited(t *testing.T, comps Components, lim Limits) *env {
	t.Helper()
	ca, err := pki.Load(pki.Options{Dir: t.TempDir(), Names: []string{"hub-eu.local"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Certificate: ca.ServerCertificate(), Limits: lim})
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

// dialTLS opens a raw TLS connection to the server.
func (e *env) dialTLS(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.srv.HTTPSAddrs()[0], &tls.Config{RootCAs: e.ca.CertPool(), ServerName: "hub-eu.local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reads from c until it ends and fails unless that happens
// within d. It returns what the server sent.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", d, b)
	}
	return string(b)
}

func readAllHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = w.Write([]byte("got " + string(b)))
	})
}

// A request that announces a body and never sends it is cut off after the
// body timeout (issue 11, finding 4: such connections stayed open forever).
func TestBodyTimeoutCutsOffSilentBody(t *testing.T) {
	e := startLimited(t, Components{Hub: readAllHandler()}, Limits{BodyTimeout: 300 * time.Millisecond})
	c := e.dialTLS(t)
	if _, err := io.WriteString(c, "PUT /devices/d1 HTTP/1.1\r\nHost: hub-eu.local\r\nContent-Length: 100\r\n\r\nonly-part"); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, c, 10*time.Second)

	// A body that arrives in time is served, and the connection stays usable.
	c = e.dialTLS(t)
	br := bufio.NewReader(c)
	for range 2 {
		if _, err := io.WriteString(c, "PUT /devices/d1 HTTP/1.1\r\nHost: hub-eu.local\r\nContent-Length: 5\r\n\r\nhello"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "got hello" {
			t.Fatalf("status %d body %q", resp.StatusCode, b)
		}
		time.Sleep(400 * time.Millisecond) // the scenario, not synchronisation: idle longer than the body timeout, which must not apply between requests
	}
}

// Headers that never finish are cut off after the read-header timeout.
func TestReadHeaderTimeout(t *testing.T) {
	e := startLimited(t, Components{Hub: readAllHandler()}, Limits{ReadHeaderTimeout: 300 * time.Millisecond})
	c := e.dialTLS(t)
	if _, err := io.WriteString(c, "GET /devices/d1 HTTP/1.1\r\nHost: hub-eu.local\r\n"); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, c, 10*time.Second)
}

// Bodies above MaxBodyBytes answer 413 without being read, announced or
// chunked.
func TestBodyTooLarge(t *testing.T) {
	e := startLimited(t, Components{Hub: readAllHandler()}, Limits{MaxBodyBytes: 1000})
	client := e.client(t)
	for _, chunked := range []bool{false, true} {
		body := io.Reader(strings.NewReader(strings.Repeat("x", 1001)))
		if chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("PUT", "https://hub-eu.local/devices/d1", body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if chunked {
			// Read by the handler: the read fails past the cap, and the
			// handler never sees more than MaxBodyBytes.
			if strings.Contains(string(b), strings.Repeat("x", 1001)) {
				t.Errorf("chunked: handler read past the cap")
			}
			continue
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("iothub-errorcode") != "MessageTooLarge" ||
			!strings.Contains(string(b), `"Message":"ErrorCode:MessageTooLarge;`) {
			t.Errorf("announced: status %d %v %s", resp.StatusCode, resp.Header, b)
		}
	}
	// At the cap it is fine.
	req, _ := http.NewRequest("PUT", "https://hub-eu.local/devices/d1", strings.NewReader(strings.Repeat("y", 1000)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("at the cap: %d", resp.StatusCode)
	}
}

// The connection caps hold: beyond the per-address and total caps new
// connections are closed at once, and a freed slot is usable again.
func TestConnectionCaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  Limits
		n    int
	}{
		{"per address", Limits{MaxConnsPerAddr: 3, MaxConns: 100}, 3},
		{"total", Limits{MaxConnsPerAddr: 100, MaxConns: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startLimited(t, Components{Hub: readAllHandler()}, tc.lim)
			var held []*tls.Conn
			for range tc.n {
				held = append(held, e.dialTLS(t))
			}
			// Over the cap: the server closes before or during the handshake.
			raw, err := net.Dial("tcp", e.srv.HTTPSAddrs()[0])
			if err != nil {
				t.Fatal(err)
			}
			over := tls.Client(raw, &tls.Config{RootCAs: e.ca.CertPool(), ServerName: "hub-eu.local"})
			_ = over.SetDeadline(time.Now().Add(10 * time.Second))
			if err := over.Handshake(); err == nil {
				closedWithin(t, over, 10*time.Second)
			}
			over.Close()
			// Free one slot: a new connection works again.
			held[0].Close()
			testwait.True(t, 10*time.Second, "a connection to be accepted after one closed", func() bool {
				c, err := tls.Dial("tcp", e.srv.HTTPSAddrs()[0], &tls.Config{RootCAs: e.ca.CertPool(), ServerName: "hub-eu.local"})
				if err != nil {
					return false
				}
				defer c.Close()
				_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: hub-eu.local\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == 200
			})
		})
	}
}

// An upgraded WebSocket outlives every HTTP deadline: the server clears
// them when the handler takes the connection over.
func TestWebSocketOutlivesDeadlines(t *testing.T) {
	up := websocket.Upgrader{}
	e := startLimited(t, Components{Relay: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			mt, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if ws.WriteMessage(mt, p) != nil {
				return
			}
		}
	})}, Limits{ReadHeaderTimeout: 200 * time.Millisecond, BodyTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: e.ca.CertPool(), ServerName: "hub-eu.local"}, HandshakeTimeout: waitTimeout}
	ws, _, err := d.Dial("wss://"+e.srv.HTTPSAddrs()[0]+"/bridges/h/d/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // the scenario, not synchronisation: idle past every deadline
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte{byte(i)}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, p, err := ws.ReadMessage(); err != nil || len(p) != 1 || p[0] != byte(i) {
			t.Fatalf("echo %d: %v %v", i, p, err)
		}
	}
}

// The configuration's defaults are the server's, and Prepare passes the
// configured limits through.
func TestLimitsFromConfig(t *testing.T) {
	d := simconfig.Default().Limits
	want := Limits{MaxConns: DefaultMaxConns, MaxConnsPerAddr: DefaultMaxConnsPerAddr, ReadHeaderTimeout: DefaultReadHeaderTimeout,
		BodyTimeout: DefaultBodyTimeout, IdleTimeout: DefaultIdleTimeout, MaxBodyBytes: DefaultMaxBodyBytes}
	got := Limits{MaxConns: d.MaxConnections, MaxConnsPerAddr: d.MaxConnectionsPerAddress, ReadHeaderTimeout: d.ReadHeaderTimeout,
		BodyTimeout: d.BodyTimeout, IdleTimeout: d.IdleTimeout, MaxBodyBytes: d.MaxBodyBytes}
	if got != want || (Limits{}).withDefaults() != want {
		t.Errorf("simconfig defaults %+v, server defaults %+v", got, want)
	}
	cfg := simconfig.Default()
	cfg.Listen, cfg.Ports, cfg.StateDir = []string{"127.0.0.1"}, simconfig.Ports{}, t.TempDir()
	cfg.Limits.MaxConnectionsPerAddress = 7
	cfg.Limits.BodyTimeout = 3 * time.Second
	p, err := Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Server.Close()
	if p.Server.limits.MaxConnsPerAddr != 7 || p.Server.limits.BodyTimeout != 3*time.Second || p.Server.limits.MaxConns != DefaultMaxConns {
		t.Errorf("server limits %+v", p.Server.limits)
	}
	cfg.Limits.IdleTimeout = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "limits.idle_timeout") {
		t.Errorf("negative idle timeout: %v", err)
	}
}
