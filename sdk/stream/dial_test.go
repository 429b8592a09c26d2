package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestDialSendsBearerAndNoQuery(t *testing.T) {
	s := newWSServer(t, nil)
	c, err := Dial(context.Background(), s.url(), "tok-123_~.", DialOptions{TLSConfig: s.tlsConfig(), Subprotocols: []string{"MQTT"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := NewConn(s.accept(t))
	defer sc.Close()
	r := <-s.reqs
	if got := r.Header.Get("Authorization"); got != "Bearer tok-123_~." {
		t.Errorf("Authorization = %q", got)
	}
	if r.URL.RawQuery != "" || r.URL.Path != "/bridges/h/d/s/1" {
		t.Errorf("request URL = %q", r.URL)
	}
	if ext := r.Header.Get("Sec-Websocket-Extensions"); ext != "" {
		t.Errorf("offered extensions %q, want none (no compression)", ext)
	}
	if c.Subprotocol() != "MQTT" {
		t.Errorf("Subprotocol = %q, want MQTT", c.Subprotocol())
	}
}

func TestDialErrors(t *testing.T) {
	s := newWSServer(t, func(r *http.Request) int {
		if r.Header.Get("Authorization") != "Bearer good" {
			return http.StatusUnauthorized
		}
		return 0
	})
	tests := []struct {
		name    string
		url     string
		token   string
		opts    DialOptions
		status  int    // expected HandshakeError status, 0 = not a HandshakeError
		errPart string // substring of the error
	}{
		{"unauthorized", s.url(), "secret-bad", DialOptions{TLSConfig: s.tlsConfig()}, 401, "401"},
		{"plain ws", strings.Replace(s.url(), "wss", "ws", 1), "good", DialOptions{}, 0, "not wss"},
		{"empty token", s.url(), "", DialOptions{TLSConfig: s.tlsConfig()}, 0, "empty token"},
		{"untrusted CA", s.url(), "good", DialOptions{}, 0, "certificate"},
		{"auth in header", s.url(), "good", DialOptions{TLSConfig: s.tlsConfig(), Header: http.Header{"authorization": {"x"}}}, 0, "Authorization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tt.url, tt.token, tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("error %q does not mention %q", err, tt.errPart)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q leaks the token", err)
			}
			var he *HandshakeError
			if tt.status != 0 {
				if !errors.As(err, &he) || he.StatusCode != tt.status || !errors.Is(err, ErrHandshake) {
					t.Fatalf("error %v, want HandshakeError %d", err, tt.status)
				}
			} else if errors.As(err, &he) {
				t.Fatalf("unexpected HandshakeError %v", err)
			}
		})
	}
}

func TestDialNetDialContextMapsHost(t *testing.T) {
	s := newWSServer(t, nil)
	addr := s.srv.Listener.Addr().String()
	var dialed string
	opts := DialOptions{
		TLSConfig: s.tlsConfig(),
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dialed = a
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	// httptest's certificate is valid for example.com.
	c, err := Dial(context.Background(), "wss://example.com:443/bridges/x", "tok", opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	NewConn(s.accept(t)).Close()
	if dialed != "example.com:443" {
		t.Fatalf("dialed %q, want example.com:443", dialed)
	}
}

func TestDialThroughProxy(t *testing.T) {
	s := newWSServer(t, nil)
	target := s.srv.Listener.Addr().String()
	p := newConnectProxy(t, target)
	proxyURL, _ := url.Parse("http://" + p.addr())
	opts := DialOptions{
		TLSConfig: s.tlsConfig(),
		Proxy:     func(*http.Request) (*url.URL, error) { return proxyURL, nil },
	}
	c, err := Dial(context.Background(), s.url(), "tok", opts)
	if err != nil {
		t.Fatal(err)
	}
	sc := NewConn(s.accept(t))
	if _, err := sc.Write([]byte("through the proxy")); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "through the proxy" {
		t.Fatalf("read %q, %v", got, err)
	}
	if hosts := p.hosts(); len(hosts) != 1 || hosts[0] != target {
		t.Fatalf("proxy saw CONNECT %v, want [%s]", hosts, target)
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that only tunnels to target.
type connectProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   []string // guarded by mu
}

func newConnectProxy(t *testing.T, target string) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *connectProxy) addr() string { return p.ln.Addr().String() }

func (p *connectProxy) hosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *connectProxy) handle(c net.Conn) {
	defer c.Close()
	var req [4096]byte
	n, err := c.Read(req[:])
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(req[:n]), "\r\n")
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "CONNECT" {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, f[1])
	p.mu.Unlock()
	if f[1] != p.target {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	Bridge(context.Background(), c, up)
}
