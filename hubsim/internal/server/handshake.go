package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"time"
)

// A connect storm (every device of a fleet reconnecting after an outage)
// starts thousands of MQTT/TLS handshakes at once. They are CPU-bound, so
// running them all at once finishes none sooner, but each one holds its
// key exchange, signature and transcript state while it waits for a CPU:
// at 10,000 devices that transient state (and the heap growth the garbage
// collector sizes from it) was most of hubsim's resident memory long after
// the storm (about 235 MiB of a 560 MiB peak was freed heap the runtime
// kept). The handshake gate lets at most handshakeSlots handshakes do
// their server-side work at once.
//
// The slot is held only while the server computes: it is taken once the
// ClientHello has arrived (tls.Config.GetConfigForClient) and given back
// when the server's first flight is written (the gated connection's first
// Write) or the connection closes. Waiting for the client's ClientHello or
// for its Finished holds no slot, so a slow or stalled client cannot keep
// other devices from connecting.
var handshakeSlots = max(8, 4*runtime.GOMAXPROCS(0))

// handshakeWaitMax bounds how long a handshake waits for a slot; it is the
// broker's connect timeout (TLS handshake plus CONNECT), which would end
// the handshake at the same moment.
const handshakeWaitMax = 30 * time.Second

// errHandshakeWait is the handshake error of a connection that waited
// handshakeWaitMax without getting a slot.
var errHandshakeWait = errors.New("server: TLS handshake waited too long for a slot (connect storm)")

// handshakeGate bounds the handshakes doing server-side work at once.
type handshakeGate struct {
	slots   chan struct{}
	waiting atomic.Int32 // handshakes waiting for a slot (tests and metrics)
}

func newHandshakeGate(n int) *handshakeGate {
	return &handshakeGate{slots: make(chan struct{}, n)}
}

// config returns base with the gate in its GetConfigForClient: connections
// wrapped by wrap wait for a slot there.
func (g *handshakeGate) config(ctx context.Context, base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if c, ok := hello.Conn.(*gatedConn); ok {
			if err := c.acquire(ctx); err != nil {
				return nil, err
			}
		}
		return nil, nil // nil: go on with cfg itself
	}
	return cfg
}

// wrap returns c as a connection whose handshake the gate bounds.
func (g *handshakeGate) wrap(c net.Conn) net.Conn { return &gatedConn{Conn: c, gate: g} }

// Slot states of a gatedConn.
const (
	slotNone int32 = iota // no slot taken yet
	slotHeld              // holding a slot
	slotDone              // given back (or never to be taken: closed)
)

// gatedConn is a connection whose TLS handshake holds a gate slot from its
// ClientHello to its first write.
type gatedConn struct {
	net.Conn
	gate  *handshakeGate
	state atomic.Int32 // slot*
}

// acquire waits for a slot; it runs in the handshake's goroutine.
func (c *gatedConn) acquire(ctx context.Context) error {
	if c.state.Load() != slotNone {
		return nil // a second ClientHello (after a HelloRetryRequest)
	}
	select {
	case c.gate.slots <- struct{}{}:
	default:
		c.gate.waiting.Add(1)
		t := time.NewTimer(handshakeWaitMax)
		select {
		case c.gate.slots <- struct{}{}:
			c.gate.waiting.Add(-1)
			t.Stop()
		case <-ctx.Done():
			c.gate.waiting.Add(-1)
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
			c.gate.waiting.Add(-1)
			return errHandshakeWait
		}
	}
	if !c.state.CompareAndSwap(slotNone, slotHeld) {
		<-c.gate.slots // closed meanwhile
		return net.ErrClosed
	}
	return nil
}

// release gives the slot back if one is held, and stops gating.
func (c *gatedConn) release() {
	if c.state.Swap(slotDone) == slotHeld {
		<-c.gate.slots
	}
}

// Write gives the slot back once the server's first flight is out: the
// handshake's expensive part is done.
func (c *gatedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.state.Load() != slotDone {
		c.release()
	}
	return n, err
}

// Close gives the slot back (a failed handshake) and closes.
func (c *gatedConn) Close() error {
	c.release()
	return c.Conn.Close()
}
