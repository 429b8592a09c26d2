package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// Errors a rejected stream is logged with.
var (
	ErrUnknownStream = errors.New("bridge: no target for this stream name")
	ErrTooMany       = errors.New("bridge: too many open streams")
	ErrShuttingDown  = errors.New("bridge: shutting down")
	ErrIdle          = errors.New("bridge: idle timeout")
	ErrMuxDisabled   = errors.New("bridge: multiplexed streams are disabled")
)

// shutdownClose ends the streams Shutdown cuts: the operator's side reads
// status 1001 and this reason instead of a bare end of stream.
var shutdownClose = &stream.CloseError{Code: stream.CloseGoingAway, Reason: "agent shutting down"}

// Close statuses the bridge sends to the operator when it ends a stream
// on its own (RFC 6455 §7.4.2 leaves 4000-4999 to applications; the hubsim
// relay passes them on). The reason text says more.
const (
	CloseRevoked = 4001 // a config reload no longer allows the stream
	CloseIdle    = 4002 // no bytes either way for the idle timeout
)

// requestInfo is what a Request may tell about itself for the audit trail
// and the registry (the daemon's adapter does).
type requestInfo interface {
	// RequestID is the hub's $rid.
	RequestID() string
	// StreamID is the hub's stream id (the streaming URL's last segment).
	StreamID() string
}

// keepaliver is a stream connection with a WebSocket keepalive.
type keepaliver interface {
	StartKeepalive(stream.Keepalive) error
}

// statusCloser is a stream connection that can close with a status.
type statusCloser interface {
	CloseWith(code int, reason string) error
}

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
	// Mux allows multiplexed streams (stream name config.MuxStreamName)
	// and bounds their connections (zero limits: the config defaults).
	Mux config.Mux
	// SocksAllow lists what a SOCKS dial inside a mux stream may reach;
	// empty denies every dial.
	SocksAllow []config.SocksRule
	// Keepalive pings every stream (Interval 0: off).
	Keepalive config.Keepalive
}

// PolicyFrom takes the stream policy from the agent config.
func PolicyFrom(s config.Streams) Policy {
	return Policy{
		Targets:          maps.Clone(s.Targets),
		MaxConcurrent:    s.MaxConcurrent,
		IdleTimeout:      s.IdleTimeout,
		HandshakeTimeout: s.HandshakeTimeout,
		Mux:              s.Mux,
		SocksAllow:       slices.Clone(s.SocksAllow),
		Keepalive:        s.Keepalive,
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
	// Changed, if non-nil, is called (without locks held, on the
	// goroutine that made the change) after the counters in Stats changed:
	// a stream accepted, rejected or closed. It must not block.
	Changed func()
	// Now stamps rejections (nil: time.Now).
	Now func() time.Time
	// Audit receives one record per stream and per mux connection; nil
	// keeps the records in the log only.
	Audit *stream.AuditLog
	// Clock drives the stream keepalive; nil is the real clock.
	Clock retry.Clock
	// Resolve looks up a SOCKS destination's addresses; nil uses
	// net.DefaultResolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Bridge serves stream requests: it checks the policy, dials the local
// target, accepts the stream and copies bytes both ways.
type Bridge struct {
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	log     *slog.Logger
	audit   *stream.AuditLog
	clock   retry.Clock
	changed func()
	now     func() time.Time

	// Bytes copied to and from targets, counted as they move.
	toTarget, fromTarget atomic.Uint64

	// ctx is the parent of every stream; cancel ends them all (Shutdown
	// after its grace period).
	ctx    context.Context
	cancel context.CancelCauseFunc

	// wg counts stream goroutines; each is owned by the Bridge and waited
	// for by Shutdown.
	wg sync.WaitGroup

	mu       sync.Mutex
	policy   Policy            // guarded by mu
	device   string            // guarded by mu
	open     int               // streams holding a slot; guarded by mu
	closing  bool              // Shutdown called; guarded by mu
	accepted uint64            // streams accepted so far; guarded by mu
	rejected uint64            // streams rejected so far; guarded by mu
	lastRej  *health.Rejection // the last rejection; guarded by mu

	// The registry: every open stream and, through its mux server, the
	// connections inside it. The one place that knows what is open.
	streams  map[uint64]*entry // guarded by mu
	nextSeq  uint64            // guarded by mu
	muxConns int               // connections open in all mux streams; guarded by mu
}

// New returns a Bridge; it starts nothing until Handle is called.
func New(cfg Config) *Bridge {
	ctx, cancel := context.WithCancelCause(context.Background())
	b := &Bridge{dial: cfg.Dial, resolve: cfg.Resolve, log: cfg.Logger, audit: cfg.Audit, clock: cfg.Clock,
		ctx: ctx, cancel: cancel, device: cfg.Device, streams: map[uint64]*entry{}, changed: cfg.Changed, now: cfg.Now}
	if b.changed == nil {
		b.changed = func() {}
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.dial == nil {
		var d net.Dialer
		b.dial = d.DialContext
	}
	if b.resolve == nil {
		b.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if b.clock == nil {
		b.clock = retry.RealClock()
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b.SetPolicy(cfg.Policy)
	return b
}

// SetPolicy replaces the policy (config reload). New requests see the new
// policy at once; open streams and mux connections that it no longer
// allows (their target removed or changed, their SOCKS destination no
// longer listed, multiplexing turned off) are closed with a reason the
// operator sees; the rest keep going.
func (b *Bridge) SetPolicy(p Policy) {
	p.Targets = maps.Clone(p.Targets)
	p.SocksAllow = slices.Clone(p.SocksAllow)
	if p.MaxConcurrent <= 0 {
		p.MaxConcurrent = config.DefaultMaxConcurrent
	}
	if p.HandshakeTimeout <= 0 {
		p.HandshakeTimeout = config.DefaultHandshakeTimeout
	}
	if p.Mux.MaxConnsPerStream <= 0 {
		p.Mux.MaxConnsPerStream = config.DefaultMuxMaxConnsPerStream
	}
	if p.Mux.MaxConns <= 0 {
		p.Mux.MaxConns = config.DefaultMuxMaxConns
	}
	if p.Mux.Window <= 0 {
		p.Mux.Window = config.DefaultMuxWindow
	}
	b.mu.Lock()
	b.policy = p
	b.mu.Unlock()
	b.revoke(p)
}

// SetDevice changes the device ID used in log lines (after a reprovision).
func (b *Bridge) SetDevice(id string) {
	b.mu.Lock()
	b.device = id
	b.mu.Unlock()
}

// Stats is a snapshot of the bridge's counters and its open streams.
type Stats struct {
	Open     int    `json:"open"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	// LastRejection is the last refused request (nil: none yet).
	LastRejection *health.Rejection `json:"lastRejection,omitempty"`
	// BytesToTarget and BytesFromTarget count the bytes copied so far,
	// streams still open included.
	BytesToTarget   uint64 `json:"bytesToTarget"`
	BytesFromTarget uint64 `json:"bytesFromTarget"`
	// List is the registry: the open streams, oldest first, with the
	// connections inside multiplexed ones.
	List []StreamInfo `json:"list,omitempty"`
}

// Stats returns the counters and the registry's open streams, oldest
// first.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	var lr *health.Rejection
	if b.lastRej != nil {
		r := *b.lastRej
		lr = &r
	}
	st := Stats{Open: b.open, Accepted: b.accepted, Rejected: b.rejected, LastRejection: lr,
		BytesToTarget: b.toTarget.Load(), BytesFromTarget: b.fromTarget.Load()}
	es := slices.Collect(maps.Values(b.streams))
	targets := make([]map[uint32]string, len(es))
	slices.SortFunc(es, func(x, y *entry) int { return cmp.Compare(x.seq, y.seq) })
	for i, e := range es {
		if e.conns != nil {
			targets[i] = make(map[uint32]string, len(e.conns))
			for id, c := range e.conns {
				targets[i][id] = c.target
			}
		}
	}
	b.mu.Unlock()
	for i, e := range es {
		st.List = append(st.List, e.info(targets[i]))
	}
	return st
}

// rejectedLocked counts a rejection of stream for reason; b.mu is held.
func (b *Bridge) rejectedLocked(stream, reason string) {
	b.rejected++
	b.lastRej = &health.Rejection{Stream: health.Clip(stream), Reason: reason, At: health.At(b.now())}
}

// reasonOf names why for the health report.
func reasonOf(why error) string {
	switch {
	case errors.Is(why, ErrUnknownStream):
		return health.ReasonUnknownStream
	case errors.Is(why, ErrTooMany):
		return health.ReasonTooMany
	case errors.Is(why, ErrShuttingDown):
		return health.ReasonShuttingDown
	}
	return why.Error()
}

// dialCause is why a dial failed, in a few words for the operator:
// "connection refused", "no route to host", "timed out", "no such host".
func dialCause(err error) string {
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return "name lookup failed: " + dnsErr.Err
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	return err.Error()
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
	isMux := name == config.MuxStreamName
	var why error
	switch {
	case b.closing:
		why = ErrShuttingDown
	case isMux && !p.Mux.Enabled:
		why = ErrMuxDisabled
	case !known && !isMux:
		why = ErrUnknownStream
	case b.open >= p.MaxConcurrent:
		why = ErrTooMany
	}
	if why != nil {
		b.rejectedLocked(name, reasonOf(why))
		b.mu.Unlock()
		b.changed()
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
		b.changed()
		b.wg.Done()
	}

	e := newEntry(req, name, target)
	if isMux {
		log := b.log.With("stream", name, "device", device, "rid", e.rid)
		sc, ok := b.acceptMux(ctx, req, p, e, log)
		if !ok {
			release()
			return
		}
		go func() { // owned by b: Shutdown waits on b.wg
			defer release()
			b.serveMux(sc, p, e, log)
		}()
		return
	}
	log := b.log.With("stream", name, "device", device, "target", target, "rid", e.rid)
	sc, tc, ok := b.handshake(ctx, req, p, e, log)
	if !ok {
		release()
		return
	}
	go func() { // owned by b: Shutdown waits on b.wg
		defer release()
		b.pump(sc, tc, p, e, log)
	}()
}

func (b *Bridge) reject(ctx context.Context, req Request, p Policy, device, target string, why error) {
	log := b.log.With("stream", req.Name(), "device", device)
	if target != "" {
		log = log.With("target", target)
	}
	log.Warn("stream rejected", "err", why)
	e := newEntry(req, req.Name(), target)
	b.auditStream(e, "rejected", why.Error(), 0, 0)
	ctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	if err := req.Reject(ctx); err != nil {
		log.Warn("could not send the rejection", "err", err)
	}
}

// handshake dials the target and accepts the stream.
func (b *Bridge) handshake(ctx context.Context, req Request, p Policy, e *entry, log *slog.Logger) (sc, tc net.Conn, ok bool) {
	target := e.target
	hctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel) // Shutdown's deadline cuts it too
	defer stop()

	// Dial the target first: when it is down, the service hears "no"
	// instead of a stream that closes at once.
	tc, err := b.dial(hctx, "tcp", target)
	if err != nil {
		b.mu.Lock()
		b.rejectedLocked(req.Name(), health.TargetUnreachable(target, dialCause(err)))
		b.mu.Unlock()
		b.changed()
		log.Warn("stream rejected: target unreachable", "err", err)
		b.auditStream(e, "rejected", "target unreachable: "+err.Error(), 0, 0)
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
		b.auditStream(e, "rejected", "accept failed: "+err.Error(), 0, 0)
		return nil, nil, false
	}
	b.startKeepalive(sc, p, log)
	b.mu.Lock()
	b.accepted++
	b.mu.Unlock()
	b.changed()
	return sc, tc, true
}

// startKeepalive pings the stream when the policy says so.
func (b *Bridge) startKeepalive(sc net.Conn, p Policy, log *slog.Logger) {
	k, ok := sc.(keepaliver)
	if !ok || p.Keepalive.Interval <= 0 {
		return
	}
	if err := k.StartKeepalive(stream.Keepalive{Interval: p.Keepalive.Interval, Timeout: p.Keepalive.Timeout, Clock: b.clock}); err != nil {
		log.Warn("stream keepalive not started", "err", err)
	}
}

// pump copies bytes until the stream ends, then logs and audits how.
func (b *Bridge) pump(sc, tc net.Conn, p Policy, e *entry, log *slog.Logger) {
	log.Info("stream open")
	at := newActiveConn(tc, &b.toTarget, &b.fromTarget)
	ctx, stop := context.WithCancelCause(b.ctx)
	defer stop(nil)
	b.register(e, sc, at, stop)
	defer b.unregister(e)
	if p.IdleTimeout > 0 {
		watch := newIdleWatch(at, p.IdleTimeout, func() { stop(idleClose) })
		defer watch.stop()
	}
	toTarget, fromTarget, err := stream.Bridge(ctx, sc, at)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	reason := closeReason(err, at.sawEOF.Load())
	b.logClosed(log, err, reason, toTarget, fromTarget, time.Since(e.start))
	b.auditStream(e, "accepted", reason, toTarget, fromTarget)
}

// idleClose is the cause of a stream the idle timeout ends: stream.Bridge
// (and serveMux) close the stream with its status, so the operator reads
// why.
var idleClose = &stream.CloseError{Code: CloseIdle, Reason: "idle timeout"}

// revoked is the cause of a stream a reload no longer allows.
func revoked(reason string) *stream.CloseError {
	return &stream.CloseError{Code: CloseRevoked, Reason: reason}
}

// closeReason says in words how a stream ended; targetEOF is whether the
// target's reads ended first.
func closeReason(err error, targetEOF bool) string {
	var ce *stream.CloseError
	switch {
	case err == nil && targetEOF:
		return "closed by target"
	case err == nil:
		return "closed by operator"
	case errors.As(err, &ce) && ce.Code == CloseRevoked:
		return ce.Reason
	case errors.Is(err, ErrIdle), errors.Is(err, idleClose):
		return "idle timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, shutdownClose):
		return "shutdown"
	default:
		return err.Error()
	}
}

func (b *Bridge) logClosed(log *slog.Logger, err error, reason string, toTarget, fromTarget int64, d time.Duration) {
	attrs := []any{"to_target", toTarget, "from_target", fromTarget, "duration", d.Round(time.Millisecond)}
	var ce *stream.CloseError
	switch {
	case err == nil:
		log.Info("stream closed", append(attrs, "reason", reason)...)
	case errors.Is(err, ErrIdle), errors.Is(err, context.Canceled), errors.As(err, &ce) && ce.Code != 1006:
		log.Info("stream closed", append(attrs, "reason", reason)...)
	default:
		log.Info("stream closed", append(attrs, "err", err)...)
	}
}

// closeWith closes c with a status if it can, else plainly.
func closeWith(c net.Conn, code int, reason string) {
	if sc, ok := c.(statusCloser); ok {
		_ = sc.CloseWith(code, reason)
		return
	}
	_ = c.Close()
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
	// to and from count bytes written to and read from the target.
	to, from atomic.Int64
	sawEOF   atomic.Bool // the target's reads ended with EOF
	// The bridge's byte counters (Write goes to the target, Read comes
	// from it).
	written, read *atomic.Uint64
}

func newActiveConn(c net.Conn, written, read *atomic.Uint64) *activeConn {
	return &activeConn{Conn: c, base: time.Now(), written: written, read: read}
}

func (c *activeConn) touch() { c.last.Store(int64(time.Since(c.base))) }

// quiet is how long no bytes have moved.
func (c *activeConn) quiet() time.Duration { return time.Since(c.base) - time.Duration(c.last.Load()) }

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
		c.from.Add(int64(n))
		if c.read != nil {
			c.read.Add(uint64(n))
		}
	}
	if err == io.EOF {
		c.sawEOF.Store(true)
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
		c.to.Add(int64(n))
		if c.written != nil {
			c.written.Add(uint64(n))
		}
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
