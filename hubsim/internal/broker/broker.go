package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/porthole-iot/porthole/hubsim/internal/redact"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Config.
const (
	// DefaultMaxPacketSize bounds one client packet: IoT Hub accepts device
	// messages up to 256 KiB; the rest is headroom for topic and properties.
	DefaultMaxPacketSize = 512 << 10
	// DefaultConnectTimeout bounds the TLS handshake plus the CONNECT packet.
	DefaultConnectTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds one flush of queued packets to a client.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxQueuedBytes bounds the bytes waiting to be written to one
	// client; a client that falls further behind is disconnected.
	DefaultMaxQueuedBytes = 8 << 20
	// DefaultConnectingHold is how long a connection counts against
	// Config.MaxConnecting at most (see there).
	DefaultConnectingHold = 2 * time.Second
)

// DefaultMaxConnecting bounds the connections doing their TLS handshake and
// CONNECT at once (Config.MaxConnecting): 128 per CPU, at least 256. The
// handshakes are CPU-bound, so more at once finish none sooner.
var DefaultMaxConnecting = max(256, 128*runtime.GOMAXPROCS(0))

// Errors the broker reports (from ServeConn, and to Session.Disconnected).
var (
	// ErrBrokerClosed: the broker was closed.
	ErrBrokerClosed = errors.New("broker: broker closed")
	// ErrTakenOver: a new connection with the same client id was accepted
	// (same personality, same username realm; see the package doc).
	ErrTakenOver = errors.New("broker: client id connected again")
	// ErrKeepaliveTimeout: nothing arrived within 1.5 × the CONNECT keepalive.
	ErrKeepaliveTimeout = errors.New("broker: keepalive timeout")
	// ErrProtocol: the client broke MQTT 3.1.1 or used something this broker
	// does not support (QoS 2, a second CONNECT …).
	ErrProtocol = errors.New("broker: MQTT protocol violation")
	// ErrPacketTooLarge: a client packet exceeded Config.MaxPacketSize.
	ErrPacketTooLarge = errors.New("broker: packet too large")
	// ErrSlowConsumer: more than Config.MaxQueuedBytes waited to be written.
	ErrSlowConsumer = errors.New("broker: client too slow to take its packets")
	// ErrConnectRefused: ServeConn answered CONNECT with a non-zero CONNACK.
	ErrConnectRefused = errors.New("broker: connect refused")
	// ErrServerDisconnect: the personality closed the client (Outbound.Close).
	ErrServerDisconnect = errors.New("broker: disconnected by the server")
	// ErrInflightFull: every MQTT packet id of the client is awaiting PUBACK.
	ErrInflightFull = errors.New("broker: no free packet id")
)

// AckOutbound is implemented by every Outbound the broker hands out: a QoS 1
// publish whose PUBACK the personality hears about (the hub completes a
// cloud-to-device message only when the device acknowledged it).
type AckOutbound interface {
	Outbound
	// PublishAcked sends like Publish at QoS 1. When it returns nil, acked is
	// called exactly once, with no broker lock held: true when the client's
	// PUBACK arrived, false when the client went away first (before its
	// session's Disconnected). If the client's subscription was granted QoS 0
	// there is no PUBACK, and acked(true) is called before PublishAcked
	// returns. When it returns an error, acked is never called.
	PublishAcked(topic string, payload []byte, acked func(ok bool)) error
}

var _ AckOutbound = (*client)(nil)

// Config configures a Broker. Zero values take the defaults above.
type Config struct {
	// Logger receives connect/disconnect and refusal records; nil discards.
	Logger *slog.Logger
	// Personalities are asked in order whether they claim a CONNECT username.
	Personalities []Personality
	// MaxPacketSize is the largest remaining length accepted from a client.
	MaxPacketSize int
	// ConnectTimeout bounds the TLS handshake plus reading CONNECT.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write of queued packets to a client.
	WriteTimeout time.Duration
	// MaxQueuedBytes bounds the outbound backlog of one client.
	MaxQueuedBytes int
	// SessionExpiry is how long the session (subscriptions) of a disconnected
	// clean session 0 client is kept for its next clean session 0 CONNECT.
	SessionExpiry time.Duration
	// MaxSessions bounds how many such sessions are kept; the least recently
	// stored goes first.
	MaxSessions int
	// MaxConnecting bounds the connections doing their TLS handshake and
	// CONNECT at once; the others wait, holding only their socket and a
	// small goroutine. A connect storm (a fleet reconnecting after an
	// outage) otherwise runs thousands of handshakes at once, each on a
	// goroutine whose stack the key exchange grew to 16–32 KiB and holding
	// its handshake state, while it waits for its client: that transient
	// was most of hubsim's memory at 10,000 devices, and the runtime keeps
	// what it grew the heap to. A connection holds its place for at most
	// ConnectingHold, so clients that stall mid-handshake cannot keep
	// others waiting for long.
	MaxConnecting int
	// ConnectingHold is how long a connection counts against
	// MaxConnecting at most.
	ConnectingHold time.Duration
	// Now is the clock of session expiry; nil means time.Now.
	Now func() time.Time
}

// Broker is an MQTT 3.1.1 server that hands every client to a Personality.
// It is safe for concurrent use.
type Broker struct {
	log  *slog.Logger
	pers []Personality
	cfg  Config // with defaults applied

	mu     sync.Mutex
	closed bool                  // guarded by mu
	conns  map[*client]struct{}  // every connection being served; guarded by mu
	byKey  map[clientKey]*client // connected clients by identity; guarded by mu
	// stored holds the sessions of disconnected clean session 0 clients;
	// guarded by mu.
	stored *sessionStore
	// watch has one context.AfterFunc per serving context (keyed by its Done
	// channel), shared by every connection served under it: a connect storm
	// on one server context registers with that context once instead of
	// once per connection, each time under the context's own lock. Guarded
	// by mu.
	watch map[<-chan struct{}]*ctxWatch
	now   func() time.Time
	// readBuffers counts the read buffers clients hold (client.next): only
	// while they read a packet.
	readBuffers atomic.Int64
	// connecting has a token per connection doing its handshake and
	// CONNECT (Config.MaxConnecting); connectWaiting counts those waiting
	// for one.
	connecting     chan struct{}
	connectWaiting atomic.Int32
	// wg counts running serve calls; each serve call owns its connection's
	// writer goroutine and waits for it before returning.
	wg sync.WaitGroup
	// cbWG counts running ctxDone callbacks; Close waits for them. Add is
	// called only under mu while the broker is open, so before Close's Wait.
	cbWG sync.WaitGroup
}

// ctxWatch is the AfterFunc of one serving context.
type ctxWatch struct {
	n    int         // connections served under the context; guarded by Broker.mu
	stop func() bool // the context.AfterFunc's stop
}

// clientKey is the identity under which a new connection takes over an old
// one: the same client id, served by the same personality, in the same realm
// — the username up to its first '/', which is the hub host name for IoT Hub
// ("<host>/<deviceId>/?api-version=…") and the ID scope for DPS
// ("<idScope>/registrations/<regId>/api-version=…"). So one device id on
// two simulated hubs is two clients, while a device that reconnects over
// MQTT/WebSocket instead of MQTT/TLS, or to another address of the same hub,
// replaces its old connection.
type clientKey struct {
	personality int
	realm       string
	clientID    string
}

// realmOf returns the lowercased username up to its first '/'.
func realmOf(username string) string {
	realm, _, _ := strings.Cut(username, "/")
	return strings.ToLower(realm)
}

// New returns a broker serving the given personalities.
func New(cfg Config) (*Broker, error) {
	if len(cfg.Personalities) == 0 {
		return nil, errors.New("broker: no personalities configured")
	}
	for i, p := range cfg.Personalities {
		if p == nil {
			return nil, fmt.Errorf("broker: personality %d is nil", i)
		}
	}
	if cfg.MaxPacketSize < 0 || cfg.ConnectTimeout < 0 || cfg.WriteTimeout < 0 || cfg.MaxQueuedBytes < 0 ||
		cfg.SessionExpiry < 0 || cfg.MaxSessions < 0 || cfg.MaxConnecting < 0 || cfg.ConnectingHold < 0 {
		return nil, errors.New("broker: negative limit in Config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxQueuedBytes == 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.SessionExpiry == 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConnecting == 0 {
		cfg.MaxConnecting = DefaultMaxConnecting
	}
	if cfg.ConnectingHold == 0 {
		cfg.ConnectingHold = DefaultConnectingHold
	}
	cfg.Personalities = append([]Personality(nil), cfg.Personalities...)
	return &Broker{
		log:        redact.Logger(cfg.Logger),
		pers:       cfg.Personalities,
		cfg:        cfg,
		conns:      make(map[*client]struct{}),
		byKey:      make(map[clientKey]*client),
		stored:     newSessionStore(cfg.SessionExpiry, cfg.MaxSessions),
		watch:      make(map[<-chan struct{}]*ctxWatch),
		now:        cfg.Now,
		connecting: make(chan struct{}, cfg.MaxConnecting),
	}, nil
}

// ServeConn serves one MQTT client on c until the client is gone, ctx is
// done, or the broker is closed; it always closes c. transport is reported to
// the personality as ConnectInfo.Transport ("mqtt" for MQTT over TLS). When c
// is a *tls.Conn, ServeConn completes its handshake (bounded by
// Config.ConnectTimeout) and reports its state as ConnectInfo.TLS; any other
// net.Conn is served with TLS nil.
//
// It returns nil after a clean DISCONNECT, an error wrapping
// ErrConnectRefused when CONNECT was refused, and otherwise the reason the
// connection ended.
func (b *Broker) ServeConn(ctx context.Context, c net.Conn, transport string) error {
	return b.serve(ctx, c, transport, nil)
}

// Close disconnects every client (their sessions see ErrBrokerClosed) and
// waits until every ServeConn and ServeHTTP call has returned. Later
// ServeConn calls return ErrBrokerClosed at once. Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	all := make([]*client, 0, len(b.conns))
	for c := range b.conns {
		all = append(all, c)
	}
	b.mu.Unlock()
	for _, c := range all {
		c.closeWith(ErrBrokerClosed)
	}
	b.wg.Wait()
	b.cbWG.Wait()
	b.mu.Lock()
	for done, w := range b.watch {
		w.stop()
		delete(b.watch, done)
	}
	b.mu.Unlock()
	return nil
}

// serve runs one connection in the calling goroutine. tlsState is the TLS
// state known by the caller (WebSocket), or nil to take it from c.
func (b *Broker) serve(ctx context.Context, conn net.Conn, transport string, tlsState *tls.ConnectionState) error {
	c := newClient(b, conn, transport)
	c.ctxDone = ctx.Done()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = conn.Close()
		return ErrBrokerClosed
	}
	if c.ctxDone != nil {
		select {
		case <-c.ctxDone:
			b.mu.Unlock()
			_ = conn.Close()
			return servingDone(ctx)
		default:
		}
		w := b.watch[c.ctxDone]
		if w == nil {
			w = &ctxWatch{}
			done := c.ctxDone
			w.stop = context.AfterFunc(ctx, func() { b.ctxDone(done, servingDone(ctx)) })
			b.watch[done] = w
		}
		w.n++
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()

	runErr := c.run(tlsState)
	return c.finish(runErr)
}

func servingDone(ctx context.Context) error {
	return fmt.Errorf("broker: serving context done: %w", context.Cause(ctx))
}

// ctxDone closes every connection served under the context whose Done
// channel is done. It runs in the context's AfterFunc goroutine. A serve
// call that registers later finds the context done and refuses at once.
func (b *Broker) ctxDone(done <-chan struct{}, cause error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return // Close disconnects everyone
	}
	delete(b.watch, done)
	var hit []*client
	for c := range b.conns {
		if c.ctxDone == done {
			hit = append(hit, c)
		}
	}
	b.cbWG.Add(1)
	b.mu.Unlock()
	defer b.cbWG.Done()
	for _, c := range hit {
		c.closeWith(cause)
	}
}

// unwatchLocked ends c's share of its context's watch. Caller holds b.mu.
func (b *Broker) unwatchLocked(c *client) {
	if c.ctxDone == nil {
		return
	}
	w := b.watch[c.ctxDone]
	if w == nil {
		return // the context is done (ctxDone forgot it) or the broker closed
	}
	if w.n--; w.n == 0 {
		w.stop()
		delete(b.watch, c.ctxDone)
	}
}

// route returns the first personality claiming username, or -1.
func (b *Broker) route(username string) (int, Personality) {
	for i, p := range b.pers {
		if p.Claims(username) {
			return i, p
		}
	}
	return -1, nil
}

// claim records c as the connected client for key and returns the client it
// replaces, if any. It reports false when the broker is closed.
func (b *Broker) claim(key clientKey, c *client) (old *client, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	old = b.byKey[key]
	b.byKey[key] = c
	c.key, c.keyed = key, true
	return old, true
}

// forget removes c from the broker's tables and, when c connected with
// clean session 0, stores its session (MQTT 3.1.1 §3.1.2.4). Both happen
// under one lock, so a new connection that finds c gone also finds its
// session; a connection taking c over waits until c is forgotten before it
// resumes (see client.run).
func (b *Broker) forget(c *client) {
	var subs []subscription
	if c.keyed && !c.clean {
		c.mu.Lock()
		subs = append([]subscription(nil), c.subs...)
		c.mu.Unlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
	b.unwatchLocked(c)
	if !c.keyed {
		return
	}
	if b.byKey[c.key] == c {
		delete(b.byKey, c.key)
	}
	if !c.clean {
		b.stored.put(c.key, subs, b.now())
	}
}

// resume takes the stored session of key for a connection that just claimed
// it: the stored subscriptions and true when clean is false and an unexpired
// session exists. A clean session discards any stored one (§3.1.2.4).
func (b *Broker) resume(key clientKey, clean bool) ([]subscription, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if clean {
		b.stored.drop(key)
		return nil, false
	}
	return b.stored.take(key, b.now())
}
