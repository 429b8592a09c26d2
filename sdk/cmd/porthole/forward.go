package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

// streamOptsFlags are the flags shared by the commands that open streams:
// keepalive, audit trail, pacing and multiplexing.
type streamOptsFlags struct {
	keepalive        time.Duration
	keepaliveTimeout time.Duration
	audit            string
	rate             float64
	mux              string // auto, on, off
}

func (f *streamOptsFlags) register(fs *flag.FlagSet, withMux bool) {
	fs.DurationVar(&f.keepalive, "keepalive", 20*time.Second, "WebSocket ping interval on the stream (0: off)")
	fs.DurationVar(&f.keepaliveTimeout, "keepalive-timeout", 60*time.Second, "close the stream when nothing was heard for this long")
	fs.StringVar(&f.audit, "audit", "", "append one JSON line per stream and connection to this file")
	if withMux {
		fs.Float64Var(&f.rate, "stream-rate", 4, "new streams per second at most (IoT Hub allows 5 per hub)")
		fs.StringVar(&f.mux, "mux", "auto", "many connections over one stream: auto (fall back to one stream per connection), on, off")
	}
}

func (f *streamOptsFlags) check() error {
	switch f.mux {
	case "", "auto", "on", "off":
	default:
		return usagef("--mux must be auto, on or off")
	}
	if f.keepalive > 0 && f.keepaliveTimeout <= f.keepalive {
		return usagef("--keepalive-timeout must be longer than --keepalive")
	}
	if f.rate < 0 {
		return usagef("--stream-rate must not be negative")
	}
	return nil
}

// openAudit opens the audit file for appending (0600), or returns nil.
// done closes it and says on stderr when records could not be written (a
// full disk): the session itself went through, so that is not its error.
func (f *streamOptsFlags) openAudit(stderr io.Writer) (audit *stream.AuditLog, done func(), err error) {
	if f.audit == "" {
		return nil, func() {}, nil
	}
	file, err := os.OpenFile(f.audit, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit file: %w", err)
	}
	audit = stream.NewAuditLog(file)
	return audit, func() {
		if err := errors.Join(audit.Err(), file.Close()); err != nil {
			fmt.Fprintf(stderr, "porthole: audit file %s: %v (audit records are missing)\n", f.audit, err)
		}
	}, nil
}

// opener opens device streams within the hub's limits: it paces new
// streams (--stream-rate) and, when the hub answers 429, waits as long as
// its Retry-After says, for every stream this process opens, and tries
// again. A throttled stream is late, never dropped.
type opener struct {
	c      *service.Client
	device string
	sf     streamFlags
	of     streamOptsFlags
	log    *slog.Logger
	clock  retry.Clock
	// throttleOnly waits out only the hub's 429s: any other failure is
	// returned at once (stdio, whose caller is ssh, must fail fast and
	// say why; proxy and socks retry transport errors too).
	throttleOnly bool

	mu   sync.Mutex
	next time.Time // guarded by mu: earliest start of the next request
}

// errNoMux: the device does not offer multiplexed streams.
var errNoMux = errors.New("the device does not offer multiplexed streams (an agent without them, or streams.mux.enabled: false)")

// opened is an open stream and the hub's id for it.
type opened struct {
	conn     *stream.Conn
	streamID string
}

func (o *opener) open(ctx context.Context, name string) (opened, error) {
	var res opened
	p := retry.Policy{MinBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second, RetryAfterFloor: 200 * time.Millisecond,
		RetryAfterJitter: 300 * time.Millisecond, Clock: o.clock,
		Notify: func(err error, wait time.Duration) {
			o.log.Info("stream request delayed", "stream", name, "wait", wait.Round(time.Millisecond), "err", err)
		}}
	err := retry.Do(ctx, p, func(ctx context.Context) error {
		if err := o.pace(ctx); err != nil {
			return err
		}
		g, err := o.c.RequestStream(ctx, o.device, name, o.sf.options()...)
		if err != nil {
			var se *service.Error
			throttled := errors.As(err, &se) && se.StatusCode == 429
			if throttled {
				o.hold(se.RetryAfter)
			}
			if o.throttleOnly && !throttled {
				return backoff.Permanent(err)
			}
			return err
		}
		conn, err := o.c.DialStream(ctx, g, o.sf.options()...)
		if err != nil {
			return err
		}
		res = opened{conn: conn, streamID: streamIDOf(g.URL)}
		return nil
	})
	if err != nil {
		return opened{}, err
	}
	if o.of.keepalive > 0 {
		if err := res.conn.StartKeepalive(stream.Keepalive{Interval: o.of.keepalive, Timeout: o.of.keepaliveTimeout, Clock: o.clock}); err != nil {
			res.conn.Close()
			return opened{}, err
		}
	}
	return res, nil
}

// pace waits for this request's turn.
func (o *opener) pace(ctx context.Context) error {
	if o.of.rate <= 0 {
		return nil
	}
	interval := time.Duration(float64(time.Second) / o.of.rate)
	o.mu.Lock()
	now := o.clock.Now()
	at := o.next
	if at.Before(now) {
		at = now
	}
	o.next = at.Add(interval)
	o.mu.Unlock()
	if wait := at.Sub(now); wait > 0 {
		t := o.clock.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// hold delays every request of this process by the hub's Retry-After.
func (o *opener) hold(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	o.mu.Lock()
	if until := o.clock.Now().Add(d); until.After(o.next) {
		o.next = until
	}
	o.mu.Unlock()
}

func streamIDOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// muxSession holds the one multiplexed stream of a proxy or socks command
// and reopens it, with backoff, when it has dropped.
type muxSession struct {
	o     *opener
	mode  string // auto, on
	audit *stream.AuditLog

	mu        sync.Mutex
	cl        *mux.Client // guarded by mu
	noMux     bool        // guarded by mu: the device refused the mux stream (auto mode only)
	hadMux    bool        // guarded by mu: a mux stream has been open since the start
	failures  int         // guarded by mu: failed opens in a row
	notBefore time.Time   // guarded by mu: no reopen before this
	wg        sync.WaitGroup
}

// client returns the open multiplexed stream, opening it if needed. It
// returns errNoMux (wrapped) if the device does not offer one.
func (m *muxSession) client(ctx context.Context) (*mux.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.noMux {
		return nil, errNoMux
	}
	if m.cl != nil {
		select {
		case <-m.cl.Done():
			m.cl = nil
		default:
			return m.cl, nil
		}
	}
	if wait := m.notBefore.Sub(m.o.clock.Now()); wait > 0 {
		t := m.o.clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	start := time.Now()
	op, err := m.o.open(ctx, mux.StreamName)
	if err == nil {
		var cl *mux.Client
		if cl, err = mux.NewClient(ctx, op.conn, mux.Config{}); err == nil {
			m.cl, m.failures, m.hadMux = cl, 0, true
			m.o.log.Info("multiplexed stream open", "limits", cl.Limits(), "stream_id", op.streamID)
			m.wg.Add(1)
			go m.watch(cl, op.streamID, start) // owned by m: close waits
			return cl, nil
		}
	}
	// The device says it has no mux when it refuses the stream's name, or
	// when the first stream never answers the handshake. A failed
	// handshake after a mux stream has worked is a broken path, not a
	// downgrade: it is retried like any failure. Only auto mode gives up
	// on mux for good; with --mux on every connection waits for it.
	refused := errors.Is(err, service.ErrStreamRejected) || (errors.Is(err, mux.ErrNoMux) && !m.hadMux)
	if refused && m.mode != "on" {
		m.noMux = true
	}
	m.failures++
	m.notBefore = m.o.clock.Now().Add(min(30*time.Second, time.Second<<min(m.failures, 5)))
	if refused {
		return nil, fmt.Errorf("%w: %w", errNoMux, err)
	}
	return nil, err
}

// watch logs and audits the end of a mux stream.
func (m *muxSession) watch(cl *mux.Client, streamID string, start time.Time) {
	defer m.wg.Done()
	<-cl.Done()
	reason := "closed"
	if err := cl.Err(); err != nil {
		reason = err.Error()
		m.o.log.Warn("multiplexed stream ended", "err", err)
	} else {
		m.o.log.Info("multiplexed stream closed")
	}
	m.audit.Write(stream.AuditRecord{Time: time.Now(), Side: "operator", Event: "stream", Device: m.o.device, StreamID: streamID,
		Stream: mux.StreamName, Kind: "mux", Result: "accepted", Reason: reason, Start: start, DurationMs: time.Since(start).Milliseconds()})
}

func (m *muxSession) close() {
	m.mu.Lock()
	cl := m.cl
	m.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	m.wg.Wait()
}

// joinConn bridges a local connection and a connection inside the mux
// stream cl until both ends are done, or the device closes its end on its
// own (a reload revoked it), or the stream itself ends (cut, the device
// gone): then the local connection is closed at once; for a stream's end
// the error says why the stream ended.
func joinConn(ctx context.Context, tc net.Conn, cl *mux.Client, c *mux.Conn, to, from *mux.Counter) (mux.Ends, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := c.OnNotice(func() { cancel(nil) })
	defer stop()
	// Without this a connection whose stream died is only half-closed
	// (yamux ends its reads with EOF) and lingers until the local client
	// closes its side, to be recorded as closed by the target.
	joined := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { // owned by joinConn: it waits below
		defer watch.Done()
		select {
		case <-cl.Done():
			cancel(streamEnded(cl))
		case <-joined:
		}
	}()
	defer watch.Wait()
	defer close(joined)
	ends, err := mux.Join(ctx, tc, streamConn{c, cl}, to, from)
	if err != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
		// yamux fails a connection's reads and writes only after the
		// stream's end is visible on Done: whichever error Join saw first
		// (EOF, session shutdown, the watcher's cause), the stream's end
		// is the reason.
		select {
		case <-cl.Done():
			err = streamEnded(cl)
		default:
		}
	}
	return ends, err
}

// streamConn is a connection inside the mux stream cl whose reads tell a
// stream's end from the device's end: yamux ends the reads of every
// connection of a session that ended with EOF, as if the device had
// finished sending, but it does so only after Done is closed.
type streamConn struct {
	*mux.Conn
	cl *mux.Client
}

func (s streamConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if err == io.EOF {
		select {
		case <-s.cl.Done():
			return n, streamEnded(s.cl)
		default:
		}
	}
	return n, err
}

// streamEnded is the error of connections ended by the end of their
// multiplexed stream.
func streamEnded(cl *mux.Client) error {
	if err := cl.Err(); err != nil {
		return fmt.Errorf("multiplexed stream ended: %w", err)
	}
	return errors.New("multiplexed stream closed")
}

// joinReason says how a connection inside a mux stream ended.
func joinReason(ends mux.Ends, err error, c *mux.Conn) string {
	if ends != mux.EndFirst {
		// Not ended by us: the device may have said why.
		if r := c.WaitReason(250 * time.Millisecond); r != "" {
			return "closed by device: " + r
		}
	}
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		return err.Error()
	case err != nil:
		return "interrupted"
	case ends == mux.EndFirst:
		return "closed by operator"
	case ends == mux.EndSecond:
		return "closed by target"
	}
	return "closed"
}

// forwardSpec is one -L: where to listen and which target to reach.
type forwardSpec struct {
	listen string
	target string
}

// parseForward reads "[addr:]port:target" or the older "[addr:]port"
// (which forwards to defaultTarget).
func parseForward(s, defaultTarget string) (forwardSpec, error) {
	i := strings.LastIndexByte(s, ':')
	last := s[i+1:]
	if _, err := strconv.Atoi(last); err == nil || i < 0 {
		if _, err := strconv.Atoi(last); err != nil {
			return forwardSpec{}, fmt.Errorf("-L %q: expected [addr:]port[:target]", s)
		}
		if i < 0 {
			s = "127.0.0.1:" + s
		}
		return forwardSpec{listen: s, target: defaultTarget}, nil
	}
	if last == "" {
		return forwardSpec{}, fmt.Errorf("-L %q: empty target name", s)
	}
	listen := s[:i]
	if _, err := strconv.Atoi(listen); err == nil {
		listen = "127.0.0.1:" + listen
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return forwardSpec{}, fmt.Errorf("-L %q: expected [addr:]port:target", s)
	}
	return forwardSpec{listen: listen, target: last}, nil
}
