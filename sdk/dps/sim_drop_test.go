package dps

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// connTracker records the connections a client dials, so a test can cut
// them at a chosen moment.
type connTracker struct {
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	mu    sync.Mutex
	conns []*cuttableConn
	count int
}

func (ct *connTracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := ct.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cuttableConn{Conn: c}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.conns = append(ct.conns, cc)
	ct.count++
	return cc, nil
}

// cuttableConn looks to its user as if the peer went away once cut: reads
// end with io.EOF and writes fail with ECONNRESET-like errors. (Closing the
// socket locally instead would look like a deliberate Close to paho, which
// then reports nothing.)
type cuttableConn struct {
	net.Conn
	cut atomic.Bool
}

func (c *cuttableConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cut.Load() {
		return 0, io.EOF
	}
	return n, err
}

func (c *cuttableConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, io.ErrClosedPipe
	}
	return c.Conn.Write(p)
}

func (c *cuttableConn) sever() {
	c.cut.Store(true)
	c.Conn.Close() // unblocks a pending Read, which then reports io.EOF
}

func (ct *connTracker) cutAll() {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, c := range ct.conns {
		c.sever()
	}
	ct.conns = nil
}

func (ct *connTracker) dials() int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.count
}

// cutOnceSim is a sim that cuts a device's connections the first time it
// handles one of its requests; track gives the tracker a registration
// ID's connections must be dialled through.
func cutOnceSim(t *testing.T) (sim *hubsimtest.Sim, track func(regID string) *connTracker) {
	var (
		mu       sync.Mutex
		trackers = map[string]*connTracker{}
		cut      sync.Map // regID → struct{}: already cut once
	)
	sim = hubsimtest.New(t, hubsimtest.WithDPSConfig(func(c *hubsimtest.DPSConfig) {
		c.Faults = &hubsimtest.DPSFaults{Throttle: func(regID string) (time.Duration, bool) {
			if _, done := cut.LoadOrStore(regID, struct{}{}); !done {
				mu.Lock()
				ct := trackers[regID]
				mu.Unlock()
				ct.cutAll()
			}
			return 0, false
		}}
	}))
	return sim, func(regID string) *connTracker {
		ct := &connTracker{dial: sim.DialContext}
		mu.Lock()
		trackers[regID] = ct
		mu.Unlock()
		return ct
	}
}

// TestSimConnectionCutDuringRegister cuts the device's connection while the
// sim handles its register request: the client backs off, reconnects and
// registers again.
func TestSimConnectionCutDuringRegister(t *testing.T) {
	sim, track := cutOnceSim(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "cut-" + tr
			ct := track(regID)
			clk := newInstantClock()
			cfg := enrolledConfig(sim, tr, regID, clk, nil)
			cfg.DialContext = ct.DialContext
			res, err := mustNew(t, cfg).Register(testCtx(t), nil)
			if err != nil || !res.Assigned() {
				t.Fatalf("res %+v err %v", res, err)
			}
			want := []time.Duration{retry.DefaultMinBackoff, DefaultPollInterval}
			if got := clk.Waits(); !slices.Equal(got, want) {
				t.Errorf("waits %v, want %v", got, want)
			}
			if ct.dials() < 2 {
				t.Errorf("%d dials: the client did not reconnect", ct.dials())
			}
		})
	}
}

// TestSimConnectionCutErrorSaysDPSOnce: with one attempt allowed, a cut
// connection is a transient error that says "dps:" once, on every
// transport (MQTT's used to read "dps: register: dps: mqtt connection
// lost"; which step sees the cut first — publish or the wait for the
// answer — depends on timing, so only the prefix is pinned here).
func TestSimConnectionCutErrorSaysDPSOnce(t *testing.T) {
	sim, track := cutOnceSim(t)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			regID := "cut1-" + tr
			ct := track(regID)
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), nil)
			cfg.DialContext = ct.DialContext
			cfg.Retry.MaxAttempts = 1
			_, err := mustNew(t, cfg).Register(testCtx(t), nil)
			if err == nil || !strings.HasPrefix(err.Error(), "dps: register: ") || strings.Count(err.Error(), "dps:") != 1 {
				t.Fatalf("err %v", err)
			}
			if k := retry.Classify(errors.Unwrap(err)).Kind; k != retry.Backoff {
				t.Errorf("the cut classifies as %v, want Backoff: %v", k, err)
			}
		})
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that reaches the sim by its
// host names.
func connectProxy(t *testing.T, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*url.URL, *atomic.Int32) {
	t.Helper()
	var tunnels atomic.Int32
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := dial(r.Context(), "tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		hj := w.(http.Hijacker)
		down, brw, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		wg.Add(2)
		go func() { defer wg.Done(); pipe(up, brw.Reader); up.Close() }()
		go func() { defer wg.Done(); _, _ = io.Copy(down, up); down.Close() }()
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	u, _ := url.Parse(srv.URL)
	return u, &tunnels
}

func pipe(dst net.Conn, src *bufio.Reader) { _, _ = io.Copy(dst, src) }

func TestSimThroughProxy(t *testing.T) {
	sim := hubsimtest.New(t)
	proxy, tunnels := connectProxy(t, sim.DialContext)
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			before := tunnels.Load()
			regID := "proxied-" + tr
			cfg := enrolledConfig(sim, tr, regID, newInstantClock(), nil)
			cfg.DialContext = nil // reach the proxy directly; it resolves the sim's names
			cfg.ProxyURL = proxy
			c := mustNew(t, cfg)
			res, err := c.Register(testCtx(t), nil)
			if err != nil || !res.Assigned() {
				t.Fatalf("res %+v err %v", res, err)
			}
			if tunnels.Load() == before {
				t.Error("no request went through the proxy")
			}
		})
	}
}
