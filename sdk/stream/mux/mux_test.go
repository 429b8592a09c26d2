package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// echoServer is a TCP echo target; it closes its write side at EOF.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// testHandler dials named targets from a map and any allowed dial address.
type testHandler struct {
	targets map[string]string
	allow   func(addr string) bool

	mu     sync.Mutex
	closed map[uint32]Result
	opened chan uint32
}

func newTestHandler(targets map[string]string) *testHandler {
	return &testHandler{targets: targets, closed: map[uint32]Result{}, opened: make(chan uint32, 1000)}
}

func (h *testHandler) Open(ctx context.Context, id uint32, req Request) (net.Conn, error) {
	addr := ""
	switch req.Kind {
	case KindTarget:
		a, ok := h.targets[req.Name]
		if !ok {
			return nil, &Refusal{Code: CodeNotAllowed, Reason: "no target " + req.Name}
		}
		addr = a
	case KindDial:
		if h.allow == nil || !h.allow(req.Name) {
			return nil, &Refusal{Code: CodeNotAllowed, Reason: req.Name + " is not allowed"}
		}
		addr = req.Name
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Refusal{Code: CodeRefused, Reason: err.Error()}
	}
	h.opened <- id
	return c, nil
}

func (h *testHandler) Closed(id uint32, req Request, res Result) {
	h.mu.Lock()
	h.closed[id] = res
	h.mu.Unlock()
}

func (h *testHandler) result(id uint32) (Result, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.closed[id]
	return r, ok
}

// pair starts a Server with h on one end of a TCP pair and a Client on the
// other; cleanup closes both and waits.
func pair(t *testing.T, h Handler, cfg Config) (*Client, *Server) {
	t.Helper()
	a, b := tcpPair(t)
	srv, err := NewServer(b, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := NewClient(ctx, a, cfg)
	if err != nil {
		b.Close()
		<-served
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		<-served
	})
	return cl, srv
}

func TestManyConnectionsExact(t *testing.T) {
	echo := echoServer(t)
	h := newTestHandler(map[string]string{"echo": echo})
	cl, _ := pair(t, h, Config{MaxConns: 128})
	if cl.Limits() != fmt.Sprintf("max_conns=128 window=%d", DefaultWindow) {
		t.Errorf("limits %q", cl.Limits())
	}
	const conns = 100
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- roundTrip(cl, 64<<10+i*997)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// roundTrip sends n random bytes through the echo target and checks the
// sha256 of what comes back.
func roundTrip(cl *Client, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cl.Open(ctx, Request{Kind: KindTarget, Name: "echo"})
	if err != nil {
		return err
	}
	defer c.Close()
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.Close() // half-close: the echo target sees EOF
		}
		werr <- err
	}()
	hsh := sha256.New()
	got, err := io.Copy(hsh, c)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if got != int64(n) || !bytes.Equal(hsh.Sum(nil), want[:]) {
		return fmt.Errorf("echo of %d bytes came back as %d bytes with another hash", n, got)
	}
	return nil
}

func TestRefusals(t *testing.T) {
	echo := echoServer(t)
	// A port with nothing listening: take one and close it.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	h := newTestHandler(map[string]string{"echo": echo, "down": dead})
	h.allow = func(a string) bool { return a == echo }
	cl, _ := pair(t, h, Config{})
	tests := []struct {
		name string
		req  Request
		code Code
	}{
		{"unknown target", Request{Kind: KindTarget, Name: "nope"}, CodeNotAllowed},
		{"target down", Request{Kind: KindTarget, Name: "down"}, CodeRefused},
		{"dial denied", Request{Kind: KindDial, Name: "10.0.0.1:80"}, CodeNotAllowed},
		{"dial allowed", Request{Kind: KindDial, Name: echo}, CodeOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cl.Open(context.Background(), tc.req)
			if tc.code == CodeOK {
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				return
			}
			var oe *OpenError
			if !errors.As(err, &oe) || oe.Code != tc.code {
				t.Fatalf("got %v, want code %v", err, tc.code)
			}
		})
	}
}

func TestMaxConnsPerStream(t *testing.T) {
	echo := echoServer(t)
	h := newTestHandler(map[string]string{"echo": echo})
	cl, _ := pair(t, h, Config{MaxConns: 2})
	var open []*Conn
	for range 2 {
		c, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "echo"})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	_, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "echo"})
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Code != CodeFailure || !strings.Contains(oe.Message, "too many") {
		t.Fatalf("third connection: %v", err)
	}
	for _, c := range open {
		c.Close()
	}
}

func TestRevokeTellsTheOperator(t *testing.T) {
	echo := echoServer(t)
	h := newTestHandler(map[string]string{"echo": echo})
	cl, srv := pair(t, h, Config{})
	notes := make(chan Notice, 1)
	cl.OnNotice(func(n Notice) { notes <- n })
	c, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	testwait.True(t, 5*time.Second, "the connection is listed", func() bool { return len(srv.Conns()) == 1 })
	if !srv.Revoke(c.ID, "target echo removed by reload") {
		t.Fatal("Revoke found no connection")
	}
	// The operator's read ends and the reason is known.
	io.Copy(io.Discard, c)
	n := <-notes
	if n.ID != c.ID || n.Reason != "target echo removed by reload" || c.Reason() != n.Reason {
		t.Fatalf("notice %+v, reason %q", n, c.Reason())
	}
	testwait.True(t, 5*time.Second, "Closed reports the revocation", func() bool {
		r, ok := h.result(c.ID)
		return ok && r.Reason == "target echo removed by reload"
	})
}

func TestCloseReasons(t *testing.T) {
	echo := echoServer(t)
	h := newTestHandler(map[string]string{"echo": echo})
	cl, _ := pair(t, h, Config{})
	c, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	got, _ := io.ReadAll(c)
	if string(got) != "hello" {
		t.Fatalf("echo after half-close: %q", got)
	}
	testwait.For(t, 10*time.Second, "closed by operator", func() (bool, string) {
		r, ok := h.result(c.ID)
		return ok && r.Reason == "closed by operator" && r.ToTarget == 5 && r.FromTarget == 5, fmt.Sprintf("%v %+v", ok, r)
	})
}

func TestNoMuxPeer(t *testing.T) {
	// A peer that is not a mux server: it swallows bytes and never answers.
	a, b := tcpPair(t)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, b); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := NewClient(ctx, a, Config{OpenTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrNoMux) {
		t.Fatalf("got %v, want ErrNoMux", err)
	}
	b.Close()
	<-done
}

func TestServeEndsWithStream(t *testing.T) {
	echo := echoServer(t)
	h := newTestHandler(map[string]string{"echo": echo})
	a, b := tcpPair(t)
	srv, err := NewServer(b, Config{}, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	cl, err := NewClient(context.Background(), a, Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	// One echo round trip: the server has replied and is copying bytes, so
	// what ends the connection below is the stream's end (closing the
	// session while the server's reply write is still returning would be
	// "operator gone before the reply", a different case).
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	id := c.ID
	cl.Close()
	<-served
	r, ok := h.result(id)
	if !ok || r.Reason != "stream ended" {
		t.Fatalf("result %+v %v", r, ok)
	}
}
