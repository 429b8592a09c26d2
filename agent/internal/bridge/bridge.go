package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// Errors a rejected stream is logged with.
var (
	ErrUnknownStream = errors.New("bridge: no target for this stream name")
	ErrTooMany       = errors.New("bridge: too many open streams")
	ErrShuttingDown  = errors.New("bridge: shutting down")
	ErrIdle          = errors.New("bridge: idle timeout")
)

// shutdownClose ends the streams Shutdown cuts: the operator's side reads
// status 1001 and this reason instead of a bare end of stream.
var shutdownClose = &stream.CloseError{Code: stream.CloseGoingAway, Reason: "agent shutting down"}

// Request is an incoming stream request (the daemon adapts sdk/iothub's
// StreamRequest).
type Request interface {
	// Name is the stream name the service asked for ("ssh").
	Name() string
	// Accept tells the hub yes and opens the stream's WebSocket.
	Accept(ctx context.Context) (net.Conn, error)
	// Reject tells the hub no.
	Reject(ctx context.Context) error
}

// Policy says which streams are bridged where.
type Policy struct {
	// Targets maps a stream name to host:port; other names are rejected.
	Targets map[string]string
	// MaxConcurrent bounds open streams (<= 0: config.DefaultMaxConcurrent).
	MaxConcurrent int
	// IdleTimeout closes a stream with no bytes either way for this long
	// (0: never).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds dialling the target plus accepting the
	// stream (<= 0: config.DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
}

// PolicyFrom takes the stream policy from the agent config.
func PolicyFrom(s config.Streams) Policy {
	return Policy{
		Targets:          maps.Clone(s.Targets),
		MaxConcurrent:    s.MaxConcurrent,
		IdleTimeout:      s.IdleTimeout,
		HandshakeTimeout: s.HandshakeTimeout,
	}
}

// Config configures a Bridge.
type Config struct {
	Policy Policy
	// Device names the device in log lines.
	Device string
	// Dial opens the connection to a target (nil: a net.Dialer). Go's TCP
	// connections have TCP_NODELAY on; a replacement must keep it on.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives one line per stream at its end; nil discards.
	Logger *slog.Logger
}

// Bridge serves stream requests: it checks the policy, dials the local
// target, accepts the stream and copies bytes both ways.
type Bridge struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	log  *slog.Logger

	// ctx is the parent of every stream; cancel ends them all (Shutdown
	// after its grace period).
	ctx    context.Context
	cancel context.CancelCauseFunc

	// wg counts stream goroutines; each is owned by the Bridge and waited
	// for by Shutdown.
	wg sync.WaitGroup

	mu       sync.Mutex
	policy   Policy // guarded by mu
	device   string // guarded by mu
	open     int    // streams holding a slot; guarded by mu
	closing  bool   // Shutdown called; guarded by mu
	accepted uint64 // streams accepted so far; guarded by mu
	rejected uint64 // streams rejected so far; guarded by mu
}

// New returns a Bridge; it starts nothing until Handle is called.
func New(cfg Config) *Bridge {
	ctx, cancel := context.WithCancelCause(context.Background())
	b := &Bridge{dial: cfg.Dial, log: cfg.Logger, ctx: ctx, cancel: cancel, device: cfg.Device}
	if b.dial == nil {
		var d net.Dialer
		b.dial = d.DialContext
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b.SetPolicy(cfg.Policy)
	return b
}

// SetPolicy replaces the policy (config reload). Open streams keep going;
// new requests see the new policy.
func (b *Bridge) SetPolicy(p Policy) {
	p.Targets = maps.Clone(p.Targets)
	if p.MaxConcurrent <= 0 {
		p.MaxConcurrent = config.DefaultMaxConcurrent
	}
	if p.HandshakeTimeout <= 0 {
		p.HandshakeTimeout = config.DefaultHandshakeTimeout
	}
	b.mu.Lock()
	b.policy = p
	b.mu.Unlock()
}

// SetDevice changes the device ID used in log lines (after a reprovision).
func (b *Bridge) SetDevice(id string) {
	b.mu.Lock()
	b.device = id
	b.mu.Unlock()
}

// Stats is a snapshot of the bridge's counters.
type Stats struct {
	Open     int    `json:"open"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
}

// Stats returns the counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Open: b.open, Accepted: b.accepted, Rejected: b.rejected}
}

// Handle serves one stream request. It answers the request before it
// returns, as sdk/iothub requires of a stream handler: unknown name, too
// many streams, shutting down or target unreachable → Reject; otherwise it
// dials the target, Accepts, and hands the byte pump to a goroutine owned
// by the Bridge. ctx (the hub client's) and Shutdown both cut the
// handshake short; the stream itself lives until either side ends it, the
// idle timeout, or Shutdown's deadline.
func (b *Bridge) Handle(ctx context.Context, req Request) {
	name := req.Name()
	b.mu.Lock()
	p, device := b.policy, b.device
	target, known := p.Targets[name]
	var why error
	switch {
	case b.closing:
		why = ErrShuttingDown
	case !known:
		why = ErrUnknownStream
	case b.open >= p.MaxConcurrent:
		why = ErrTooMany
	}
	if why != nil {
		b.rejected++
		b.mu.Unlock()
		b.reject(ctx, req, p, device, target, why)
		return
	}
	b.open++
	b.wg.Add(1)
	b.mu.Unlock()
	release := func() {
		b.mu.Lock()
		b.open--
		b.mu.Unlock()
		b.wg.Done()
	}

	log := b.log.With("stream", name, "device", device, "target", target)
	sc, tc, ok := b.handshake(ctx, req, p, target, log)
	if !ok {
		release()
		return
	}
	go func() { // owned by b: Shutdown waits on b.wg
		defer release()
		b.pump(sc, tc, p, log)
	}()
}

func (b *Bridge) reject(ctx context.Context, req Request, p Policy, device, target string, why error) {
	log := b.log.With("stream", req.Name(), "device", device)
	if target != "" {
		log = log.With("target", target)
	}
	log.Warn("stream rejected", "err", why)
	ctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	if err := req.Reject(ctx); err != nil {
		log.Warn("could not send the rejection", "err", err)
	}
}

// handshake dials the target and accepts the stream.
func (b *Bridge) handshake(ctx context.Context, req Request, p Policy, target string, log *slog.Logger) (sc, tc net.Conn, ok bool) {
	hctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel) // Shutdown's deadline cuts it too
	defer stop()

	// Dial the target first: when it is down, the service hears "no"
	// instead of a stream that closes at once.
	tc, err := b.dial(hctx, "tcp", target)
	if err != nil {
		b.mu.Lock()
		b.rejected++
		b.mu.Unlock()
		log.Warn("stream rejected: target unreachable", "err", err)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), p.HandshakeTimeout)
		defer rcancel()
		if rerr := req.Reject(rctx); rerr != nil {
			log.Warn("could not send the rejection", "err", rerr)
		}
		return nil, nil, false
	}
	sc, err = req.Accept(hctx)
	if err != nil {
		tc.Close()
		log.Warn("stream accept failed", "err", err)
		return nil, nil, false
	}
	b.mu.Lock()
	b.accepted++
	b.mu.Unlock()
	return sc, tc, true
}

// pump copies bytes until the stream ends and logs the outcome.
func (b *Bridge) pump(sc, tc net.Conn, p Policy, log *slog.Logger) {
	start := time.Now()
	log.Info("stream open")
	at := newActiveConn(tc)
	ctx, stop := context.WithCancelCause(b.ctx)
	defer stop(nil)
	if p.IdleTimeout > 0 {
		watch := newIdleWatch(at, p.IdleTimeout, func() { stop(ErrIdle) })
		defer watch.stop()
	}
	toTarget, fromTarget, err := stream.Bridge(ctx, sc, at)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	attrs := []any{"to_target", toTarget, "from_target", fromTarget, "duration", time.Since(start).Round(time.Millisecond)}
	switch {
	case err == nil:
		log.Info("stream closed", attrs...)
	case errors.Is(err, ErrIdle):
		log.Info("stream closed", append(attrs, "reason", "idle timeout")...)
	case errors.Is(err, context.Canceled), errors.Is(err, shutdownClose):
		log.Info("stream closed", append(attrs, "reason", "shutdown")...)
	default:
		log.Info("stream closed", append(attrs, "err", err)...)
	}
}

// Shutdown stops accepting streams (new requests are rejected) and waits
// for the open ones to end until ctx is done; then it closes what is left
// and waits for that too. It returns ctx.Err() if streams had to be cut.
// Safe to call more than once.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	idle := make(chan struct{})
	go func() { // owned by Shutdown: it waits for idle below in every case
		b.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		b.cancel(shutdownClose)
		return nil
	case <-ctx.Done():
		b.cancel(shutdownClose)
		<-idle
		return fmt.Errorf("bridge: streams cut at shutdown: %w", ctx.Err())
	}
}

// Close cuts every stream and waits for them.
func (b *Bridge) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = b.Shutdown(ctx)
	return nil
}

// activeConn notes when bytes last moved through the target connection.
// Every byte of the stream passes through it, one way or the other.
type activeConn struct {
	net.Conn
	// base is a monotonic reference, so wall-clock steps (NTP on a device
	// that booted in 1970) never look like idleness.
	base time.Time
	last atomic.Int64 // time.Since(base) at the last Read or Write that moved bytes
}

func newActiveConn(c net.Conn) *activeConn {
	a := &activeConn{Conn: c, base: time.Now()}
	return a
}

func (c *activeConn) touch() { c.last.Store(int64(time.Since(c.base))) }

// quiet is how long no bytes have moved.
func (c *activeConn) quiet() time.Duration { return time.Since(c.base) - time.Duration(c.last.Load()) }

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// idleWatch fires fire once c has seen no bytes for d. It runs on a
// time.AfterFunc timer that re-arms itself, so it needs no goroutine.
type idleWatch struct {
	mu      sync.Mutex
	t       *time.Timer // guarded by mu
	stopped bool        // guarded by mu
}

func newIdleWatch(c *activeConn, d time.Duration, fire func()) *idleWatch {
	w := &idleWatch{}
	var check func()
	check = func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.stopped {
			return
		}
		quiet := c.quiet()
		if quiet >= d {
			w.stopped = true
			fire()
			return
		}
		w.t.Reset(d - quiet)
	}
	w.mu.Lock()
	w.t = time.AfterFunc(d, check)
	w.mu.Unlock()
	return w
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.t.Stop()
	w.mu.Unlock()
}
