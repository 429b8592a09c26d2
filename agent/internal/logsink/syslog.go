package logsink

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Syslog wire facts. Facility and severity numbers, PRI = facility*8 +
// severity, and the RFC 5424 header come from RFC 5424 sections 6.2.1 and
// 6.2; the RFC 3164 timestamp layout ("Mmm dd hh:mm:ss", day padded with a
// space) from RFC 3164 section 4.1.2.
const (
	facilityDaemon = 3

	sevError   = 3
	sevWarning = 4
	sevInfo    = 6
	sevDebug   = 7

	rfc3164Stamp = time.Stamp // "Jan _2 15:04:05"
	rfc5424Stamp = "2006-01-02T15:04:05.000000Z07:00"
)

const (
	// maxSyslogMessage bounds one message: longer ones are cut (Linux
	// datagram sockets refuse very large messages, and syslog daemons cut
	// them anyway — busybox at 1 KiB, rsyslog at 8 KiB by default).
	maxSyslogMessage = 8 << 10
	// syslogWriteTimeout bounds one write: a stalled syslog daemon costs
	// the agent at most this per record, then the record is dropped.
	syslogWriteTimeout = 200 * time.Millisecond
	// syslogDialTimeout bounds connecting to the socket.
	syslogDialTimeout = time.Second
	// syslogRedial is the wait after a failed connect before the next try.
	syslogRedial = time.Second
)

// severity maps a slog level to a syslog severity; levels between the
// named ones take the severity of the named level below them.
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return sevError
	case l >= slog.LevelWarn:
		return sevWarning
	case l >= slog.LevelInfo:
		return sevInfo
	}
	return sevDebug
}

type recordMeta struct {
	level slog.Level
	time  time.Time
}

// syslogWriter sends one syslog message per Write to a unix socket,
// datagram first, stream when the socket is a stream socket. Write is
// called only by syslogHandler.Handle, with mu held.
type syslogWriter struct {
	addr     string
	format   SyslogFormat
	tag      string
	hostname string
	pid      string
	now      func() time.Time
	rep      *reporter

	mu       sync.Mutex // held by syslogHandler.Handle around Write; guards the fields below
	cur      recordMeta // the record being written
	conn     net.Conn   // nil when not connected
	stream   bool       // conn is a stream socket: messages end in '\n'
	nextDial time.Time  // no connect attempt before this after a failure
	buf      []byte     // reused message buffer
	closed   bool
}

func newSyslogWriter(o Options, rep *reporter) *syslogWriter {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "-"
	}
	return &syslogWriter{
		addr:     o.SyslogAddr,
		format:   o.SyslogFormat,
		tag:      o.Tag,
		hostname: host,
		pid:      strconv.Itoa(os.Getpid()),
		now:      o.Now,
		rep:      rep,
	}
}

// Write sends p (one formatted record) as one message. It always reports
// success to slog; failures are counted and reported by the reporter.
func (w *syslogWriter) Write(p []byte) (int, error) {
	if w.closed {
		return len(p), nil
	}
	msg := w.format1(p)
	if err := w.send(msg); err != nil {
		// No syslog daemon (a container, a board whose syslogd has not
		// started or died): the record goes to stderr rather than nowhere.
		w.rep.divert(p, err)
	} else {
		w.rep.ok()
	}
	return len(p), nil
}

// send writes msg, reconnecting once when the connection broke (the
// syslog daemon restarted).
func (w *syslogWriter) send(msg []byte) error {
	fresh := false
	if w.conn == nil {
		if err := w.dial(); err != nil {
			return err
		}
		fresh = true
	}
	err := w.write(msg)
	if err == nil || fresh {
		return err
	}
	if derr := w.dial(); derr != nil {
		return derr
	}
	return w.write(msg)
}

func (w *syslogWriter) write(msg []byte) error {
	if w.stream {
		msg = append(msg, '\n')
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(syslogWriteTimeout))
	_, err := w.conn.Write(msg)
	if err != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
	return err
}

func (w *syslogWriter) dial() error {
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
	now := w.now()
	if now.Before(w.nextDial) {
		return errors.New("syslog socket unavailable (waiting to reconnect)")
	}
	for _, network := range []string{"unixgram", "unix"} {
		c, err := net.DialTimeout(network, w.addr, syslogDialTimeout)
		if err == nil {
			w.conn, w.stream = c, network == "unix"
			return nil
		}
		if network == "unix" {
			w.nextDial = now.Add(syslogRedial)
			return err
		}
	}
	return nil // unreachable
}

// format1 frames p (a handler's line) as a syslog message in w.buf.
func (w *syslogWriter) format1(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	t := w.cur.time
	if t.IsZero() {
		t = w.now()
	}
	pri := facilityDaemon*8 + severity(w.cur.level)
	b := w.buf[:0]
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(pri), 10)
	b = append(b, '>')
	if w.format == RFC5424 {
		b = append(b, "1 "...)
		b = t.AppendFormat(b, rfc5424Stamp)
		b = append(b, ' ')
		b = append(b, w.hostname...)
		b = append(b, ' ')
		b = append(b, w.tag...)
		b = append(b, ' ')
		b = append(b, w.pid...)
		b = append(b, " - - "...)
	} else {
		b = t.Local().AppendFormat(b, rfc3164Stamp)
		b = append(b, ' ')
		b = append(b, w.tag...)
		b = append(b, '[')
		b = append(b, w.pid...)
		b = append(b, "]: "...)
	}
	room := maxSyslogMessage - len(b)
	if len(p) > room {
		p = p[:room]
	}
	b = append(b, p...)
	w.buf = b
	return b
}

func (w *syslogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.conn != nil {
		err := w.conn.Close()
		w.conn = nil
		return err
	}
	return nil
}
