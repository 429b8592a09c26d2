package stream

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/sdk/retry"
)

// ErrKeepalive is wrapped by the error a Conn reports after its keepalive
// found the path dead: nothing (no frame, no ping, no pong) arrived from
// the peer for Keepalive.Timeout.
var ErrKeepalive = errors.New("stream: keepalive timeout")

// Keepalive configures StartKeepalive.
type Keepalive struct {
	// Interval between pings. Must be positive.
	Interval time.Duration
	// Timeout: the Conn is closed as dead when nothing has arrived for
	// this long. Detection happens within Timeout (plus scheduling).
	Timeout time.Duration
	// Clock is the time source; nil means the real clock. Tests inject
	// retrytest's fake clock.
	Clock retry.Clock
}

// keepalive is the state of a running keepalive; owned by its Conn.
type keepalive struct {
	cfg  Keepalive
	last atomic.Int64  // clock time (UnixNano) anything last arrived
	stop chan struct{} // closed by Conn.Close
	done chan struct{} // closed when the loop returns
}

// closeGoingAwayCode is sent when the keepalive gives up (RFC 6455 §7.4.1).
const closeGoingAwayCode = 1001

// installHandlers makes pings and pongs count as signs of life. A ping is
// answered with a pong as gorilla's default handler does.
func (c *Conn) installHandlers() {
	c.ws.SetPongHandler(func(string) error {
		c.touch()
		return nil
	})
	c.ws.SetPingHandler(func(data string) error {
		c.touch()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil
		}
		return err
	})
}

// touch notes that something arrived from the peer.
func (c *Conn) touch() {
	if k := c.ka.Load(); k != nil {
		k.last.Store(k.cfg.Clock.Now().UnixNano())
	}
}

// StartKeepalive pings the peer every k.Interval and closes the Conn when
// nothing has arrived from the peer for k.Timeout; Read and Write then
// fail with an error wrapping ErrKeepalive, and the peer (if it can still
// hear) gets a 1001 close frame saying why. Pings go end to end through
// hubsim's relay; Microsoft's C device client and gorilla, ws (Node) and
// .NET answer pings with pongs as RFC 6455 requires. It starts one
// goroutine, owned by the Conn and stopped by Close. Call it at most once.
func (c *Conn) StartKeepalive(k Keepalive) error {
	if k.Interval <= 0 || k.Timeout <= 0 {
		return fmt.Errorf("stream: keepalive interval %s and timeout %s must be positive", k.Interval, k.Timeout)
	}
	if k.Clock == nil {
		k.Clock = retry.RealClock()
	}
	ka := &keepalive{cfg: k, stop: make(chan struct{}), done: make(chan struct{})}
	ka.last.Store(k.Clock.Now().UnixNano())
	if !c.ka.CompareAndSwap(nil, ka) {
		return errors.New("stream: keepalive already started")
	}
	if c.closed.Load() {
		close(ka.done)
		return net.ErrClosed
	}
	go c.keepaliveLoop(ka) // owned by c: Close stops and waits for it
	return nil
}

func (c *Conn) keepaliveLoop(k *keepalive) {
	defer close(k.done)
	clock := k.cfg.Clock
	nextPing := clock.Now().Add(k.cfg.Interval)
	for {
		now := clock.Now()
		dead := time.Unix(0, k.last.Load()).Add(k.cfg.Timeout)
		if !now.Before(dead) {
			silent := now.Sub(time.Unix(0, k.last.Load()))
			c.die(fmt.Errorf("%w: nothing heard from the peer for %s", ErrKeepalive, silent.Round(time.Millisecond)))
			return
		}
		if !now.Before(nextPing) {
			// Errors are left to the reader: a write that fails means the
			// connection is going anyway.
			_ = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(k.cfg.Interval))
			nextPing = now.Add(k.cfg.Interval)
		}
		wake := nextPing
		if dead.Before(wake) {
			wake = dead
		}
		t := clock.NewTimer(wake.Sub(now))
		select {
		case <-k.stop:
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// die closes the connection after a keepalive timeout.
func (c *Conn) die(err error) {
	c.kaErr.Store(&err)
	msg := websocket.FormatCloseMessage(closeGoingAwayCode, "keepalive timeout")
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout/4))
	_ = c.ws.Close()
}

// keepaliveErr is the keepalive's verdict, nil while the path is alive.
func (c *Conn) keepaliveErr() error {
	if p := c.kaErr.Load(); p != nil {
		return *p
	}
	return nil
}

// stopKeepalive stops the loop and waits for it (Close).
func (c *Conn) stopKeepalive() {
	if k := c.ka.Load(); k != nil {
		select {
		case <-k.done:
		default:
			close(k.stop)
			<-k.done
		}
	}
}
