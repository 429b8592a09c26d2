package logsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
)

// DefaultTag is the syslog tag (RFC 3164 TAG, RFC 5424 APP-NAME).
const DefaultTag = "porthole-agent"

// DefaultSyslogAddr is the local syslog socket on Linux.
const DefaultSyslogAddr = "/dev/log"

// ErrConfig is wrapped by New's errors about the log section.
var ErrConfig = errors.New("logsink: bad log configuration")

// SyslogFormat selects the syslog message framing.
type SyslogFormat int

const (
	// RFC3164 is "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG", what glibc's
	// syslog(3), busybox syslogd (OpenWrt, Buildroot), rsyslog and
	// journald all read from the local socket.
	RFC3164 SyslogFormat = iota
	// RFC5424 is "<PRI>1 TIMESTAMP HOST APP PROCID - - MSG".
	RFC5424
)

// Options are the knobs and test seams New takes besides the config. The
// zero value is right for production.
type Options struct {
	// Stderr is where the stderr destination writes and where failures of
	// the other destinations are reported; nil means os.Stderr.
	Stderr io.Writer
	// SyslogAddr is the syslog unix socket; "" means DefaultSyslogAddr.
	SyslogAddr string
	// SyslogFormat is the framing; the zero value is RFC3164.
	SyslogFormat SyslogFormat
	// Tag names the program in syslog messages; "" means DefaultTag.
	Tag string
	// Now paces reconnect and reopen attempts after a failure; nil means
	// time.Now. Record timestamps come from the records.
	Now func() time.Time
}

// Stats counts what happened to the records handed to the destination.
type Stats struct {
	// Written is the number of records written.
	Written uint64
	// Dropped is the number of records lost to write errors.
	Dropped uint64
	// Diverted is the number of records written to stderr because the
	// syslog socket was not there (they are not lost).
	Diverted uint64
	// LastError describes the latest write failure ("" if none).
	LastError string
}

// Sink owns the logger's destination. Its Logger is safe for concurrent
// use; Close stops writing (later records are dropped silently).
type Sink struct {
	logger *slog.Logger
	level  *slog.LevelVar
	out    output
	cnt    *counters

	closeOnce sync.Once
	closeErr  error
}

// output is a destination: it receives whole records, one Write each.
type output interface {
	io.Writer
	Close() error
}

// New builds a Sink for cfg. It fails only for a configuration it cannot
// use (unknown format or destination, an unusable file path); a syslog
// socket that is not there yet is retried on later records.
func New(cfg config.Log, opts Options) (*Sink, error) {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.SyslogAddr == "" {
		opts.SyslogAddr = DefaultSyslogAddr
	}
	if opts.Tag == "" {
		opts.Tag = DefaultTag
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sink{level: new(slog.LevelVar), cnt: &counters{}}
	s.level.Set(cfg.Level.Slog())
	rep := &reporter{w: opts.Stderr, what: string(cfg.Destination), cnt: s.cnt}

	hopts := &slog.HandlerOptions{Level: s.level}
	var (
		out  output
		wrap func(slog.Handler) slog.Handler
	)
	switch cfg.Destination {
	case config.LogStderr, "":
		out = &plainWriter{w: opts.Stderr, rep: rep}
	case config.LogSyslog:
		sw := newSyslogWriter(opts, rep)
		out = sw
		// syslog stamps the time itself.
		hopts.ReplaceAttr = dropTime
		wrap = func(h slog.Handler) slog.Handler { return &syslogHandler{inner: h, w: sw} }
		rep.what = "syslog " + opts.SyslogAddr
	case config.LogFile:
		rf, err := openRotating(cfg.File, cfg.MaxSize, cfg.MaxFiles, opts.Now, rep)
		if err != nil {
			return nil, err
		}
		out = rf
		rep.what = "file " + cfg.File
	default:
		return nil, fmt.Errorf("%w: destination %q", ErrConfig, cfg.Destination)
	}
	var h slog.Handler
	switch cfg.Format {
	case config.LogText, "":
		h = slog.NewTextHandler(out, hopts)
	case config.LogJSON:
		hopts.ReplaceAttr = chain(hopts.ReplaceAttr, durationText)
		h = slog.NewJSONHandler(out, hopts)
	default:
		_ = out.Close()
		return nil, fmt.Errorf("%w: format %q", ErrConfig, cfg.Format)
	}
	if wrap != nil {
		h = wrap(h)
	}
	s.out = out
	s.logger = slog.New(Redact(h))
	return s, nil
}

// Logger returns the logger writing to the sink.
func (s *Sink) Logger() *slog.Logger { return s.logger }

// SetLevel changes the minimum level at once, for every logger derived
// from Logger (config reload).
func (s *Sink) SetLevel(l slog.Level) { s.level.Set(l) }

// Level is the current minimum level.
func (s *Sink) Level() slog.Level { return s.level.Level() }

// Stats returns the write counters.
func (s *Sink) Stats() Stats { return s.cnt.snapshot() }

// Close closes the destination (the file or the syslog socket; stderr is
// left open). Idempotent; records logged afterwards are dropped.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.out.Close() })
	return s.closeErr
}

// durationText writes durations as Go duration text ("2s", "1m30s"):
// slog's JSON handler writes them as integer nanoseconds, which nobody
// reading a device's log can use.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// chain applies f, then g (f may be nil).
func chain(f, g func([]string, slog.Attr) slog.Attr) func([]string, slog.Attr) slog.Attr {
	if f == nil {
		return g
	}
	return func(groups []string, a slog.Attr) slog.Attr {
		if a = f(groups, a); a.Key == "" {
			return a // dropped
		}
		return g(groups, a)
	}
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// counters are shared by a sink and its destination.
type counters struct {
	written  atomic.Uint64
	dropped  atomic.Uint64
	diverted atomic.Uint64
	mu       sync.Mutex
	lastErr  string // guarded by mu
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Written: c.written.Load(), Dropped: c.dropped.Load(), Diverted: c.diverted.Load(), LastError: c.lastErr}
}

// reporter counts outcomes and tells stderr once per failure streak.
type reporter struct {
	w    io.Writer
	what string
	cnt  *counters

	mu       sync.Mutex
	failing  bool   // guarded by mu: inside a failure streak
	lost     uint64 // guarded by mu: records dropped in this streak
	diverted uint64 // guarded by mu: records written to w instead in this streak
}

func (r *reporter) ok() {
	r.cnt.written.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		r.failing = false
		if r.diverted > 0 {
			fmt.Fprintf(r.w, "%s: log %s works again; %d record(s) went to stderr meanwhile, %d were lost\n", DefaultTag, r.what, r.diverted, r.lost)
		} else {
			fmt.Fprintf(r.w, "%s: log %s works again; %d record(s) were lost\n", DefaultTag, r.what, r.lost)
		}
		r.lost, r.diverted = 0, 0
	}
}

// divert writes record p to stderr because the destination failed with
// err; the first record of a failure streak says so, once.
func (r *reporter) divert(p []byte, err error) {
	msg := redactString(err.Error())
	r.cnt.mu.Lock()
	r.cnt.lastErr = msg
	r.cnt.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.failing {
		r.failing = true
		fmt.Fprintf(r.w, "%s: log %s unavailable: %s; writing the log to stderr until it is back\n", DefaultTag, r.what, msg)
	}
	if _, werr := r.w.Write(p); werr != nil {
		r.cnt.dropped.Add(1)
		r.lost++
		return
	}
	r.cnt.diverted.Add(1)
	r.diverted++
}

// fail counts a dropped record and remembers why.
func (c *counters) fail(err error) string {
	c.dropped.Add(1)
	msg := redactString(err.Error())
	c.mu.Lock()
	c.lastErr = msg
	c.mu.Unlock()
	return msg
}

func (r *reporter) drop(err error) {
	msg := r.cnt.fail(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost++
	if !r.failing {
		r.failing = true
		fmt.Fprintf(r.w, "%s: log %s failed: %s; dropping records until it recovers\n", DefaultTag, r.what, msg)
	}
}

// plainWriter writes records to an io.Writer it does not own.
type plainWriter struct {
	mu     sync.Mutex
	w      io.Writer
	rep    *reporter
	closed bool // guarded by mu
}

func (p *plainWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return len(b), nil
	}
	if _, err := p.w.Write(b); err != nil {
		// Reporting to the same broken stderr would not help; count it.
		p.rep.cnt.fail(err)
		return len(b), nil
	}
	p.rep.cnt.written.Add(1)
	return len(b), nil
}

func (p *plainWriter) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// syslogHandler hands each record's level and time to the syslog writer:
// it holds the writer's lock while the inner handler formats the record
// and writes it (slog's handlers write each record with one Write call).
type syslogHandler struct {
	inner slog.Handler
	w     *syslogWriter
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.cur = recordMeta{level: r.Level, time: r.Time}
	return h.inner.Handle(ctx, r)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{inner: h.inner.WithAttrs(as), w: h.w}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{inner: h.inner.WithGroup(name), w: h.w}
}
