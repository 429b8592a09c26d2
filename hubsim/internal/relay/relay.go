package relay

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole-iot/porthole/hubsim/internal/redact"
)

// Config configures a Relay.
type Config struct {
	// BaseURL returns "wss://<host>:<port>" for a hub; the relay appends
	// "/bridges/…". The port must be explicit: the C SDK dials port 0
	// without one.
	BaseURL func(hub string) string
	// HandshakeTimeout bounds how long a stream waits for both sides; 0
	// means 60 s. StreamSpec.HandshakeTimeout overrides it per stream.
	HandshakeTimeout time.Duration
	// MaxNewPerSecond limits new streams per hub (a token bucket with a
	// burst of the same size); 0 means unlimited.
	MaxNewPerSecond int
	// MaxConcurrent limits streams per hub that have not ended yet (waiting
	// or connected); 0 means unlimited.
	MaxConcurrent int
	// Logger receives operational logs; nil discards them. Tokens are never
	// logged.
	Logger *slog.Logger
	// EventLog receives one JSON line per stream event, shaped like an Azure
	// DeviceStreams resource-log record; nil discards them.
	EventLog io.Writer
	// Now is the clock for event times, durations, rate limits and token
	// expiry; nil means time.Now. The timer that ends an unanswered stream
	// runs on real time.
	Now func() time.Time
	// Faults are test seams that make streams misbehave; nil means none.
	Faults *Faults
}

// Faults are hooks that make the streaming endpoint misbehave on purpose,
// in the style of dps.Faults. Each hook is consulted, if non-nil, when a
// stream's side starts forwarding (both sides connected); nil means normal
// behaviour. Hooks are called concurrently and must return quickly.
type Faults struct {
	// Cut, if non-nil and returning cut, ends the stream with close code
	// 1011 once it has forwarded at least after bytes (both directions
	// together; 0: at the first frame), as a path that breaks mid-transfer.
	Cut func(spec StreamSpec) (after int64, cut bool)
	// Stall, if non-nil and returning stall, makes the relay stop reading
	// from side ("device" or "service") of the stream: what that side sends
	// is never forwarded and backs up in its TCP connection, while the
	// other direction still flows (a half-dead path). It lasts until the
	// other side or the relay ends the stream.
	Stall func(spec StreamSpec) (side string, stall bool)
}

// closeCut is the close code of a stream cut by Faults.Cut (1011: the
// server hit an unexpected condition, RFC 6455 §7.4.1).
const closeCut = 1011

// Stats is a snapshot of the relay's counters.
type Stats struct {
	Pending int   // streams waiting for one or both sides
	Active  int   // streams with both sides connected
	Total   int64 // streams created since New
	// Throttled counts streams refused by a limit (HubStats only).
	Throttled int64
	// Bytes forwarded, summed over all streams, live and ended.
	BytesDeviceToService int64
	BytesServiceToDevice int64
}

// Relay is the streaming endpoint. Create it with New, mount it as an HTTP
// handler on a TLS server, and Close it to end every stream.
type Relay struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	upgrader websocket.Upgrader

	mu      sync.Mutex
	closed  bool                 // guarded by mu
	streams map[string]*session  // guarded by mu; streams that have not ended
	hubs    map[string]*hubState // guarded by mu
	total   int64                // guarded by mu

	bytes [2]atomic.Int64 // forwarded bytes by sending side (deviceSide, serviceSide)

	// handlers counts ServeHTTP calls that hold a stream side (from the
	// token check until the side's WebSocket is closed); timers counts
	// handshake timers that have not been stopped or finished. Close waits
	// for both.
	handlers sync.WaitGroup
	timers   sync.WaitGroup

	evMu sync.Mutex // serializes writes to cfg.EventLog

	// afterFunc starts handshake timers; time.AfterFunc except in tests.
	afterFunc func(d time.Duration, f func()) stopper
}

// stopper is the part of *time.Timer the relay uses.
type stopper interface{ Stop() bool }

// hubState holds a hub's limits.
type hubState struct {
	active    int       // streams not ended
	tokens    float64   // token bucket for MaxNewPerSecond
	last      time.Time // last refill
	total     int64     // streams created
	throttled int64     // streams refused by MaxConcurrent or MaxNewPerSecond

	bytes [2]atomic.Int64 // forwarded bytes by sending side; no lock
}

const (
	deviceSide  = 0
	serviceSide = 1
)

var sideNames = [2]string{"device", "service"}

// session is one device stream. Fields marked "guarded by mu" use Relay.mu.
type session struct {
	id       string
	spec     StreamSpec
	tokens   [2]string // device, service; compared in constant time
	created  time.Time
	deadline time.Time // handshake deadline (created + timeout)
	timer    stopper   // guarded by mu; nil once stopped or fired

	claimed   [2]bool            // guarded by mu: the side's token was used
	conns     [2]*websocket.Conn // guarded by mu: the side's upgraded conn
	attached  int                // guarded by mu: handlers holding a side
	connected time.Time          // guarded by mu: when both sides were up; zero before
	ended     bool               // guarded by mu
	endCode   int                // guarded by mu; valid once ended
	endReason string             // guarded by mu
	result    string             // guarded by mu: final status for the event log

	paired chan struct{} // closed when both sides are connected
	done   chan struct{} // closed when the stream ends

	bytes [2]atomic.Int64 // bytes received from each side and forwarded
	hub   *hubState       // its hub's counters; set by Create
}

// New returns a Relay. cfg.BaseURL is required.
func New(cfg Config) *Relay {
	r := &Relay{
		cfg:     cfg,
		log:     redact.Logger(cfg.Logger),
		now:     cfg.Now,
		streams: make(map[string]*session),
		hubs:    make(map[string]*hubState),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.afterFunc = func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }
	if r.cfg.HandshakeTimeout <= 0 {
		r.cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	r.upgrader = websocket.Upgrader{
		// Frame headers and small frames only: gorilla reads payload
		// straight into the peer's write buffer whenever at least this
		// much of the frame is left, so a larger buffer only adds a copy.
		ReadBufferSize:  4 << 10,
		WriteBufferSize: maxFramePayload + 1, // see pump: a full frame never fills it
		WriteBufferPool: writePool,
		// Clients authenticate with a Bearer token, not cookies, so a
		// browser Origin check protects nothing; the C client sends none.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: false,
	}
	return r
}

// writePool lends write buffers only while a frame is being forwarded, so
// idle streams hold none.
var writePool = &sync.Pool{}

// Create registers a new stream and returns its ticket. It fails with
// ErrThrottled when a hub limit is reached and ErrClosed after Close.
func (r *Relay) Create(spec StreamSpec) (Ticket, error) {
	if spec.Hub == "" || spec.DeviceID == "" || spec.Name == "" {
		return Ticket{}, errors.New("relay: stream needs hub, device id and name")
	}
	if r.cfg.BaseURL == nil {
		return Ticket{}, errors.New("relay: Config.BaseURL is not set")
	}
	base := strings.TrimSuffix(r.cfg.BaseURL(spec.Hub), "/")
	bu, err := url.Parse(base)
	if err != nil || bu.Scheme != "wss" || bu.Port() == "" || bu.RawQuery != "" {
		return Ticket{}, fmt.Errorf("relay: base URL %q must be wss://host:port", base)
	}
	id := randomHex(16)
	st := &session{
		id:     id,
		spec:   spec,
		tokens: [2]string{randomToken(), randomToken()},
		paired: make(chan struct{}),
		done:   make(chan struct{}),
	}
	timeout := spec.HandshakeTimeout
	if timeout <= 0 {
		timeout = r.cfg.HandshakeTimeout
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Ticket{}, ErrClosed
	}
	now := r.now()
	h := r.hubs[spec.Hub]
	if h == nil {
		h = &hubState{tokens: float64(r.cfg.MaxNewPerSecond), last: now}
		r.hubs[spec.Hub] = h
	}
	if r.cfg.MaxConcurrent > 0 && h.active >= r.cfg.MaxConcurrent {
		h.throttled++
		r.mu.Unlock()
		r.log.Warn("stream refused: concurrent limit", "hub", spec.Hub, "device", spec.DeviceID)
		return Ticket{}, fmt.Errorf("%w: %d concurrent streams on %s", ErrThrottled, r.cfg.MaxConcurrent, spec.Hub)
	}
	if r.cfg.MaxNewPerSecond > 0 && !h.take(now, float64(r.cfg.MaxNewPerSecond)) {
		h.throttled++
		r.mu.Unlock()
		r.log.Warn("stream refused: rate limit", "hub", spec.Hub, "device", spec.DeviceID)
		return Ticket{}, fmt.Errorf("%w: %d new streams per second on %s", ErrThrottled, r.cfg.MaxNewPerSecond, spec.Hub)
	}
	h.active++
	h.total++
	st.hub = h
	r.total++
	st.created = now
	st.deadline = now.Add(timeout)
	r.streams[id] = st
	r.timers.Add(1)
	st.timer = r.afterFunc(timeout, func() {
		defer r.timers.Done()
		r.end(st, closeError, "handshake timeout: the other side did not connect", "timeout")
	})
	r.mu.Unlock()

	r.log.Info("stream requested", "stream", id, "device", spec.DeviceID, "hub", spec.Hub, "name", spec.Name)
	r.event(st, "requested", "", 0)
	return Ticket{
		ID:           id,
		URL:          base + streamPath(spec, id),
		DeviceToken:  st.tokens[deviceSide],
		ServiceToken: st.tokens[serviceSide],
	}, nil
}

// take refills the bucket for the time since the last call and takes one
// token if there is one.
func (h *hubState) take(now time.Time, rate float64) bool {
	if d := now.Sub(h.last); d > 0 {
		h.tokens = min(rate, h.tokens+d.Seconds()*rate)
		h.last = now
	}
	if h.tokens < 1 {
		return false
	}
	h.tokens--
	return true
}

// Accepted records that the device accepted the stream request. It only
// writes the event; the stream already waits for both sides.
func (r *Relay) Accepted(id string) {
	r.mu.Lock()
	st := r.streams[id]
	r.mu.Unlock()
	if st != nil {
		r.event(st, "accepted", "", 0)
	}
}

// Cancel ends a stream that will not happen (the device rejected it or did
// not answer): both tokens stop working, a side already connected is closed,
// and the event is logged with reason. Unknown or ended ids are ignored.
func (r *Relay) Cancel(id string, reason string) {
	r.mu.Lock()
	st := r.streams[id]
	r.mu.Unlock()
	if st == nil {
		return
	}
	r.event(st, "rejected", reason, 0)
	r.end(st, closeError, "stream cancelled: "+reason, "rejected")
}

// Endpoints returns the hub's streaming endpoint, in the https form that
// `az iot hub devicestream show` prints.
func (r *Relay) Endpoints(hub string) []string {
	if r.cfg.BaseURL == nil {
		return nil
	}
	base := strings.TrimSuffix(r.cfg.BaseURL(hub), "/")
	if rest, ok := strings.CutPrefix(base, "wss://"); ok {
		base = "https://" + rest
	}
	return []string{base}
}

// HubStats returns a snapshot of the counters of every hub that asked for a
// stream, keyed by hub host name; Throttled counts refused streams.
func (r *Relay) HubStats() map[string]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Stats, len(r.hubs))
	for name, h := range r.hubs {
		out[name] = Stats{Total: h.total, Throttled: h.throttled,
			BytesDeviceToService: h.bytes[deviceSide].Load(), BytesServiceToDevice: h.bytes[serviceSide].Load()}
	}
	for _, st := range r.streams {
		s := out[st.spec.Hub]
		if st.connected.IsZero() {
			s.Pending++
		} else {
			s.Active++
		}
		out[st.spec.Hub] = s
	}
	return out
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	s := Stats{Total: r.total}
	for _, st := range r.streams {
		if st.connected.IsZero() {
			s.Pending++
		} else {
			s.Active++
		}
	}
	r.mu.Unlock()
	s.BytesDeviceToService = r.bytes[deviceSide].Load()
	s.BytesServiceToDevice = r.bytes[serviceSide].Load()
	return s
}

// Close refuses new streams, ends every stream (closing its WebSockets with
// 1001) and waits until all handlers and timers are done. It is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	all := make([]*session, 0, len(r.streams))
	for _, st := range r.streams {
		all = append(all, st)
	}
	r.mu.Unlock()
	for _, st := range all {
		r.end(st, closeGoingAway, "streaming endpoint shutting down", "closed")
	}
	r.handlers.Wait()
	r.timers.Wait()
	return nil
}

// end ends a stream once: it frees the hub slot, voids the tokens, tells the
// handlers (done), and sends both connected sides a close frame with code.
// Each handler then closes its own WebSocket once the client answers or the
// grace period passes. With no handler attached the closed event is written
// here, otherwise by the last handler to leave.
func (r *Relay) end(st *session, code int, reason, result string) {
	r.mu.Lock()
	if st.ended {
		r.mu.Unlock()
		return
	}
	st.ended = true
	st.endCode, st.endReason, st.result = code, reason, result
	delete(r.streams, st.id)
	if h := r.hubs[st.spec.Hub]; h != nil {
		h.active--
	}
	if st.timer != nil && st.timer.Stop() {
		r.timers.Done() // the callback will not run
	}
	st.timer = nil
	conns := st.conns
	attached := st.attached
	close(st.done)
	r.mu.Unlock()

	msg := websocket.FormatCloseMessage(code, truncateReason(reason))
	deadline := time.Now().Add(closeGrace)
	for _, c := range conns {
		if c != nil {
			// Errors are expected when the client is already gone.
			_ = c.WriteControl(websocket.CloseMessage, msg, deadline)
			_ = c.SetReadDeadline(deadline)
		}
	}
	if attached == 0 {
		r.closedEvent(st)
	}
}

// truncateReason keeps a close reason within a control frame (125 bytes
// including the 2-byte code) without cutting a UTF-8 sequence.
func truncateReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// randomToken returns 32 random bytes as unpadded base64url: only
// unreserved URL characters, so the C SDK can carry it raw in the MQTT topic.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
