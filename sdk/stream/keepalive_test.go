package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry/retrytest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// readAll reads c until it fails and reports the error.
func readAll(c *Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		ch <- err
	}()
	return ch
}

// TestKeepaliveIdleHour keeps an idle stream for an hour of fake time with
// 20 s pings and a 60 s timeout: every ping is answered, nothing closes.
func TestKeepaliveIdleHour(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	clock := retrytest.NewClock(time.Unix(1_000_000, 0))
	for _, c := range []*Conn{client, server} {
		if err := c.StartKeepalive(Keepalive{Interval: 20 * time.Second, Timeout: 60 * time.Second, Clock: clock}); err != nil {
			t.Fatal(err)
		}
	}
	cerr, serr := readAll(client), readAll(server)
	heard := func(c *Conn) int64 { return c.ka.Load().last.Load() }
	for i := 1; i <= 180; i++ { // 180 × 20 s = 1 h
		testwait.For(t, 10*time.Second, "both keepalives wait for their next ping", func() (bool, string) {
			p := clock.Pending()
			return len(p) == 2, "pending timers: " + strconv.Itoa(len(p))
		})
		clock.Advance(20 * time.Second)
		now := clock.Now().UnixNano()
		testwait.True(t, 10*time.Second, "each side hears the other's pong", func() bool {
			return heard(client) == now && heard(server) == now
		})
	}
	select {
	case err := <-cerr:
		t.Fatalf("client closed after an idle hour: %v", err)
	case err := <-serr:
		t.Fatalf("server closed after an idle hour: %v", err)
	default:
	}
	client.Close()
	<-cerr
	<-serr
}

// TestKeepaliveFakeClockTimeout: a peer that stops answering is declared
// dead exactly when the timeout passes on the injected clock.
func TestKeepaliveFakeClockTimeout(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	_ = server // never read: its pongs are never sent
	clock := retrytest.NewClock(time.Unix(1_000_000, 0))
	if err := client.StartKeepalive(Keepalive{Interval: 20 * time.Second, Timeout: 60 * time.Second, Clock: clock}); err != nil {
		t.Fatal(err)
	}
	cerr := readAll(client)
	for range 2 {
		testwait.True(t, 10*time.Second, "keepalive waits", func() bool { return len(clock.Pending()) == 1 })
		clock.Advance(20 * time.Second)
	}
	select {
	case err := <-cerr:
		t.Fatalf("closed at 40 s: %v", err)
	default:
	}
	testwait.True(t, 10*time.Second, "keepalive waits", func() bool { return len(clock.Pending()) == 1 })
	clock.Advance(20 * time.Second)
	select {
	case err := <-cerr:
		if !errors.Is(err, ErrKeepalive) {
			t.Fatalf("read error %v, want ErrKeepalive", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not closed at 60 s")
	}
	client.Close()
}

// blackhole is a TCP relay that can start dropping everything silently,
// like a NAT that forgot the mapping: no FIN, no RST.
type blackhole struct {
	ln      net.Listener
	target  string
	dropped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackhole) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, u)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.copy(u, c)
		go b.copy(c, u)
	}
}

func (b *blackhole) copy(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.dropped.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestKeepaliveDetectsBlackhole: both ends of a real TCP path that
// silently starts dropping everything notice it exactly when the timeout
// passes (on the injected clock, so a loaded machine cannot make a
// healthy path look dead), and say so.
func TestKeepaliveDetectsBlackhole(t *testing.T) {
	s := newWSServer(t, nil)
	bh := newBlackhole(t, s.srv.Listener.Addr().String())
	c, err := Dial(context.Background(), s.url(), "tok", DialOptions{
		TLSConfig: s.tlsConfig(),
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, bh.ln.Addr().String())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := NewConn(s.accept(t))
	defer sc.Close()
	clock := retrytest.NewClock(time.Unix(1_000_000, 0))
	const interval, timeout = 200 * time.Millisecond, time.Second
	for _, x := range []*Conn{c, sc} {
		if err := x.StartKeepalive(Keepalive{Interval: interval, Timeout: timeout, Clock: clock}); err != nil {
			t.Fatal(err)
		}
	}
	cerr, serr := readAll(c), readAll(sc)
	heard := func(x *Conn) int64 { return x.ka.Load().last.Load() }
	armed := func(n int) {
		t.Helper()
		testwait.For(t, 10*time.Second, "the keepalives wait for their next ping", func() (bool, string) {
			p := clock.Pending()
			return len(p) == n, "pending timers: " + strconv.Itoa(len(p))
		})
	}
	// Healthy for two timeouts' worth of pings: every one is heard.
	for range 2 * timeout / interval {
		armed(2)
		clock.Advance(interval)
		now := clock.Now().UnixNano()
		testwait.True(t, 10*time.Second, "each side hears the other through the path", func() bool {
			return heard(c) == now && heard(sc) == now
		})
	}
	select {
	case err := <-cerr:
		t.Fatalf("healthy client closed: %v", err)
	case err := <-serr:
		t.Fatalf("healthy server closed: %v", err)
	default:
	}
	// The path drops everything from now on: nothing is heard, and both
	// ends give up when the timeout has passed, not before.
	bh.dropped.Store(true)
	for range timeout/interval - 1 {
		armed(2)
		clock.Advance(interval)
	}
	armed(2)
	select {
	case err := <-cerr:
		t.Fatalf("client closed %s into a %s timeout: %v", timeout-interval, timeout, err)
	case err := <-serr:
		t.Fatalf("server closed %s into a %s timeout: %v", timeout-interval, timeout, err)
	default:
	}
	clock.Advance(interval)
	for name, ch := range map[string]<-chan error{"client": cerr, "server": serr} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrKeepalive) {
				t.Errorf("%s: %v, want ErrKeepalive", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not notice the blackhole when the timeout passed", name)
		}
	}
}

func TestCloseWith(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	serr := readAll(server)
	client.CloseWith(4001, "target ssh removed by config reload")
	err := <-serr
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "target ssh removed by config reload" {
		t.Fatalf("peer read %v", err)
	}
}
