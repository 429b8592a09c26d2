package iothub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

type stateChange struct {
	connected bool
	err       error
}

func watchState(c *Client) <-chan stateChange {
	ch := make(chan stateChange, 100)
	c.OnConnectionState(func(up bool, err error) { ch <- stateChange{up, err} })
	return ch
}

// fakeTime makes cfg's timers manual while tokens keep real time (the sim
// checks them against its own clock).
func fakeTime(cfg *Config) *retrytest.Clock {
	clock := retrytest.NewClock(time.Now())
	cfg.Clock = clock
	cfg.Now = time.Now
	cfg.Retry.Rand = retrytest.Rand(1)
	return clock
}

func TestTokenRenewalLosesNothing(t *testing.T) {
	e := newEnv(t)
	events, cancel := e.hub.Subscribe(1000)
	defer cancel()
	cfg := e.config(t)
	clock := fakeTime(&cfg)
	c := e.dial(t, cfg)
	states := watchState(c)
	ctx := testCtx(t)

	wait, err := clock.WaitTimer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 80% of the token's life (whole seconds, so a little under 48 min).
	if wait < 47*time.Minute || wait > 48*time.Minute {
		t.Fatalf("renewal timer %v, want about 48m", wait)
	}

	const n = 60
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.SendEvent(ctx, []byte("x"), WithMessageID(fmt.Sprint(i))); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	clock.Advance(wait)
	if s := recv(t, states); s.connected || !errors.Is(s.err, errTokenRenewal) {
		t.Fatalf("state %+v, want disconnected for renewal", s)
	}
	if s := recv(t, states); !s.connected {
		t.Fatalf("state %+v, want connected", s)
	}
	if err := recv(t, sent); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		ev := recv(t, events)
		seen[ev.System["$.mid"]] = true
	}
	if _, err := c.GetTwin(ctx); err != nil {
		t.Fatalf("GetTwin after renewal: %v", err)
	}
}

func TestShortTokenTTLRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	e := newEnv(t)
	events, cancel := e.hub.Subscribe(1000)
	defer cancel()
	cfg := e.config(t)
	cfg.TokenTTL = 3 * time.Second
	cfg.Retry = retry.Policy{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	c := e.dial(t, cfg)
	var reconnects atomic.Int32
	c.OnConnectionState(func(up bool, _ error) {
		if up {
			reconnects.Add(1)
		}
	})
	ctx := testCtx(t)
	const n = 100
	for i := range n {
		if err := c.SendEvent(ctx, []byte("x"), WithMessageID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // pacing, not synchronisation: the sends span 5 s, past the 3 s token's renewal
	}
	seen := map[string]bool{}
	for len(seen) < n {
		ev := recv(t, events)
		seen[ev.System["$.mid"]] = true
	}
	if reconnects.Load() < 1 {
		t.Fatal("no reconnect in 5 s with 3 s tokens")
	}
	// With 3 s tokens a renewal (a reconnect) is due every 2.4 s, and a
	// call made during one fails fast with "not connected" by design; the
	// client must be usable again right after it.
	testwait.For(t, 10*time.Second, "a twin read between renewals", func() (bool, string) {
		_, err := c.GetTwin(ctx)
		return err == nil, fmt.Sprint(err)
	})
}

func TestForcedDisconnectResyncsDesired(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t)
	cfg := e.config(t)
	clock := fakeTime(&cfg)
	c := e.dial(t, cfg)
	states := watchState(c)
	type delivery struct {
		patch   map[string]any
		version int
	}
	got := make(chan delivery, 10)
	c.OnDesired(func(p map[string]any, v int) { got <- delivery{p, v} })
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	recv(t, got) // the initial document
	svc.patchDesired(ctx, e.device, map[string]any{"a": 1, "b": map[string]any{"x": 1, "y": 2}})
	d := recv(t, got)

	if !e.hub.Disconnect(e.device, "") {
		t.Fatal("device not connected at the hub")
	}
	if s := recv(t, states); s.connected || !errors.Is(s.err, ErrConnectionLost) {
		t.Fatalf("state %+v, want lost", s)
	}
	if _, err := c.GetTwin(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("GetTwin while disconnected: %v, want ErrNotConnected", err)
	}
	wait, err := clock.WaitTimer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wait < retry.DefaultMinBackoff {
		t.Fatalf("reconnect wait %v, want at least %v", wait, retry.DefaultMinBackoff)
	}
	// Changes while the device is away.
	svc.patchDesired(ctx, e.device, map[string]any{"a": 2, "b": map[string]any{"y": nil}})
	svc.patchDesired(ctx, e.device, map[string]any{"c": 3})
	clock.Advance(wait)
	if s := recv(t, states); !s.connected {
		t.Fatalf("state %+v, want connected", s)
	}
	r := recv(t, got)
	want := map[string]any{"a": float64(2), "b": map[string]any{"y": nil}, "c": float64(3)}
	if r.version != d.version+2 || !reflect.DeepEqual(r.patch, want) {
		t.Fatalf("resync delivered %v at %d, want %v at %d", r.patch, r.version, want, d.version+2)
	}
	// Live patches flow again.
	svc.patchDesired(ctx, e.device, map[string]any{"d": 4})
	if r := recv(t, got); r.version != d.version+3 || r.patch["d"] != float64(4) {
		t.Fatalf("after reconnect: %v at %d", r.patch, r.version)
	}
}

func TestAuthRefusedOnReconnectStops(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	clock := fakeTime(&cfg)
	c := e.dial(t, cfg)
	states := watchState(c)
	ctx := testCtx(t)
	if err := e.hub.SetStatus(ctx, e.device, "disabled"); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, states); s.connected {
		t.Fatal("still connected after disable")
	}
	wait, err := clock.WaitTimer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(wait)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client did not stop")
	}
	var ce *ConnectError
	if err := c.Err(); !errors.As(err, &ce) || ce.HTTPStatus() != http.StatusUnauthorized {
		t.Fatalf("Err() = %v, want a 401 *ConnectError", err)
	}
	if _, err := c.GetTwin(ctx); !errors.Is(err, ErrClosed) || !errors.As(err, &ce) {
		t.Fatalf("GetTwin after stop: %v", err)
	}
}

// freezer hands out connections that it can freeze: a frozen connection
// swallows writes and discards what it reads, a dead link that only
// keep-alive can notice.
type freezer struct {
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []*freezeConn
}

type freezeConn struct {
	net.Conn
	frozen atomic.Bool
}

func (f *freezer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := f.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &freezeConn{Conn: c}
	f.mu.Lock()
	f.conns = append(f.conns, fc)
	f.mu.Unlock()
	return fc, nil
}

// freeze freezes every connection handed out so far.
func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.frozen.Store(true)
	}
}

func (c *freezeConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if !c.frozen.Load() || err != nil {
			return n, err
		}
	}
}

func (c *freezeConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func TestKeepaliveDetectsDeadLink(t *testing.T) {
	for _, transport := range []string{TransportMQTT, TransportMQTTWS} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t)
			f := &freezer{dial: e.sim.DialContext}
			cfg := e.config(t)
			cfg.Transport = transport
			cfg.DialContext = f.DialContext
			cfg.Keepalive = 2 * time.Second
			cfg.Retry = retry.Policy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
			c := e.dial(t, cfg)
			states := watchState(c)
			f.freeze()
			if s := recv(t, states); s.connected {
				t.Fatalf("state %+v, want lost", s)
			}
			if s := recv(t, states); !s.connected {
				t.Fatalf("state %+v, want reconnected", s)
			}
			if _, err := c.GetTwin(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that reaches the sim.
type connectProxy struct {
	ln      net.Listener
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	wg      sync.WaitGroup
	mu      sync.Mutex
	targets []string      // CONNECT targets seen
	auths   []string      // Proxy-Authorization values seen
	conns   []net.Conn    // to close at the end
	stop    chan struct{} // closed by close
}

func newConnectProxy(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, dial: dial, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *connectProxy) close() {
	close(p.stop)
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *connectProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		c.Close()
		return false
	default:
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
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
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auths = append(p.auths, req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	up, err := p.dial(context.Background(), "tcp", req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	if !p.track(up) {
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, br)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}

func TestProxy(t *testing.T) {
	for _, tt := range []struct {
		transport, port string
	}{{TransportMQTT, "8883"}, {TransportMQTTWS, "443"}} {
		t.Run(tt.transport, func(t *testing.T) {
			e := newEnv(t)
			p := newConnectProxy(t, e.sim.DialContext)
			cfg := e.config(t)
			cfg.Transport = tt.transport
			cfg.DialContext = nil // the proxy is a real loopback listener
			cfg.ProxyURL = &url.URL{Scheme: "http", Host: p.ln.Addr().String(), User: url.UserPassword("u", "p w")}
			c := e.dial(t, cfg)
			ctx := testCtx(t)
			if _, err := c.GetTwin(ctx); err != nil {
				t.Fatal(err)
			}
			// The stream's WebSocket goes through the proxy too.
			accepted := make(chan error, 1)
			c.OnStreamRequest(func(ctx context.Context, req *StreamRequest) {
				conn, err := req.Accept(ctx)
				if err == nil {
					conn.Close()
				}
				accepted <- err
			})
			if err := c.WaitSubscribed(ctx); err != nil {
				t.Fatal(err)
			}
			if res := e.service(t).requestStream(ctx, e.device, "ssh"); !res.Accepted {
				t.Fatal("stream not accepted")
			}
			if err := recv(t, accepted); err != nil {
				t.Fatalf("Accept through the proxy: %v", err)
			}
			c.Close()
			p.mu.Lock()
			defer p.mu.Unlock()
			want := net.JoinHostPort(e.host, tt.port)
			if len(p.targets) != 2 || p.targets[0] != want {
				t.Errorf("proxy saw CONNECT %v, want [%s <stream endpoint>]", p.targets, want)
			}
			for _, a := range p.auths {
				if a != "Basic dTpwIHc=" {
					t.Errorf("proxy saw Proxy-Authorization %q", a)
				}
			}
		})
	}
}

func TestServiceGoneKeepsRetrying(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	clock := fakeTime(&cfg)
	c := e.dial(t, cfg)
	states := watchState(c)
	ctx := testCtx(t)
	e.sim.Close()
	if s := recv(t, states); s.connected {
		t.Fatal("still connected after the sim closed")
	}
	var waits []time.Duration
	for range 4 {
		wait, err := clock.WaitTimer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, wait)
		clock.Advance(wait)
	}
	for i, w := range waits {
		if w < retry.DefaultMinBackoff {
			t.Errorf("wait %d = %v, below the %v floor", i, w, retry.DefaultMinBackoff)
		}
	}
	select {
	case <-c.Done():
		t.Fatalf("client stopped: %v", c.Err())
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}

// Every reconnect wait is announced to Retry.Notify with the failure and
// the wait, so that a caller can show when the next attempt comes.
func TestReconnectWaitIsNotified(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	clock := fakeTime(&cfg)
	type note struct {
		err  error
		wait time.Duration
	}
	notes := make(chan note, 10)
	cfg.Retry.Notify = func(err error, wait time.Duration) { notes <- note{err, wait} }
	c := e.dial(t, cfg)
	states := watchState(c)
	ctx := testCtx(t)
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.hub.Disconnect(e.device, "") {
		t.Fatal("device not connected at the hub")
	}
	if s := recv(t, states); s.connected {
		t.Fatalf("state %+v, want lost", s)
	}
	wait, err := clock.WaitTimer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := recv(t, notes)
	if n.wait != wait || n.err == nil {
		t.Fatalf("notified %+v, timer %v", n, wait)
	}
	clock.Advance(wait)
	if s := recv(t, states); !s.connected {
		t.Fatalf("state %+v, want connected", s)
	}
}

// TestTokenExpiredInFlightIsRetried: a connect slower than the token's
// lifetime reaches the hub with an expired token and is refused (CONNACK
// 0x05). The credential is fine, so the client signs a new token and
// connects again instead of giving up for good.
func TestTokenExpiredInFlightIsRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	e := newEnv(t)
	cfg := e.config(t)
	cfg.TokenTTL = 2 * time.Second
	cfg.Retry = retry.Policy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	var dials atomic.Int32
	cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 2 {
			// The scenario, not synchronisation: the renewal's connect
			// takes longer than its token lives.
			time.Sleep(cfg.TokenTTL + 500*time.Millisecond)
		}
		return e.sim.DialContext(ctx, network, addr)
	}
	c := e.dial(t, cfg)
	states := watchState(c)
	if s := recv(t, states); s.connected {
		t.Fatalf("state %+v, want the renewal's disconnect", s)
	}
	if s := recv(t, states); !s.connected {
		t.Fatalf("state %+v, want reconnected with a new token", s)
	}
	if n := dials.Load(); n < 3 {
		t.Fatalf("%d dials: the expired token's connect was not followed by another", n)
	}
	if _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}
