package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what HTTPS clients can hold on to. Zero fields take the
// Default* values below.
type Limits struct {
	// MaxConns caps open HTTPS connections in total; MaxConnsPerAddr caps
	// them per remote IP address. A connection over a cap is closed as soon
	// as it is accepted (before TLS), and the refusal is logged at most once
	// per capLogEvery.
	MaxConns        int
	MaxConnsPerAddr int
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from the end of its
	// headers to its last byte.
	BodyTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// MaxBodyBytes is the largest request body: an announced larger one
	// answers 413 unread; a chunked one fails the handler's read past it.
	MaxBodyBytes int64
}

// Defaults. A stream holds two HTTPS connections (device and service side),
// and tests and labs run everything from one loopback address, so the
// per-address cap leaves room for about a thousand streams.
const (
	DefaultMaxConns          = 8192
	DefaultMaxConnsPerAddr   = 2048
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxBodyBytes      = 1 << 20 // hubsim's REST bodies are far smaller
	capLogEvery              = 10 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxConnsPerAddr <= 0 {
		l.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return l
}

// connCaps counts open connections in total and per remote IP.
type connCaps struct {
	lim Limits
	log *slog.Logger

	mu       sync.Mutex
	total    int            // guarded by mu
	perAddr  map[string]int // guarded by mu
	lastLog  time.Time      // guarded by mu
	refusals int            // guarded by mu: since lastLog
}

func newConnCaps(lim Limits, log *slog.Logger) *connCaps {
	return &connCaps{lim: lim, log: log, perAddr: map[string]int{}}
}

func (c *connCaps) acquire(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	which := ""
	switch {
	case c.total >= c.lim.MaxConns:
		which = "total"
	case c.perAddr[addr] >= c.lim.MaxConnsPerAddr:
		which = "per-address"
	}
	if which == "" {
		c.total++
		c.perAddr[addr]++
		return true
	}
	c.refusals++
	if now := time.Now(); now.Sub(c.lastLog) >= capLogEvery {
		c.log.Warn("https connection refused: connection cap reached", "cap", which, "remote", addr,
			"open_total", c.total, "open_from_remote", c.perAddr[addr], "refused_since_last_report", c.refusals)
		c.lastLog, c.refusals = now, 0
	}
	return false
}

func (c *connCaps) release(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.perAddr[addr]--; c.perAddr[addr] <= 0 {
		delete(c.perAddr, addr)
	}
}

// wrap returns ln with the caps applied to every accepted connection.
func (c *connCaps) wrap(ln net.Listener) net.Listener { return cappedListener{ln, c} }

type cappedListener struct {
	net.Listener
	caps *connCaps
}

func (l cappedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteIP(conn.RemoteAddr())
		if !l.caps.acquire(addr) {
			_ = conn.Close()
			continue
		}
		return &cappedConn{Conn: conn, release: sync.OnceFunc(func() { l.caps.release(addr) })}, nil
	}
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// cappedConn gives its slot back when closed.
type cappedConn struct {
	net.Conn
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// limitBodies enforces MaxBodyBytes and BodyTimeout on every request with a
// body. The read deadline is set when the handler starts and cleared as
// soon as the body is read to its end, so it never touches the
// time a handler spends waiting for a device. Requests without a body, and
// so every WebSocket upgrade, are not touched; net/http itself clears all
// deadlines when a handler hijacks the connection.
func limitBodies(next http.Handler, lim Limits, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > lim.MaxBodyBytes {
			writeTooLarge(w, lim.MaxBodyBytes, now())
			return
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(lim.BodyTimeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes),
					done: sync.OnceFunc(func() { _ = rc.SetReadDeadline(time.Time{}) })}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody clears the body read deadline once the body is finished.
type deadlineBody struct {
	io.ReadCloser
	done func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// Complete: the connection may now wait on the handler. After any
		// other error the deadline stays, so the server's discarding of
		// the rest of the body cannot hang either.
		b.done()
	}
	return n, err
}

func (b *deadlineBody) Close() error { return b.ReadCloser.Close() }

// writeTooLarge answers 413 in the hub's REST error shape (the shape and
// code the service SDKs parse: ErrorCode:MessageTooLarge, 413001
// [Azure/azure-iot-sdk-csharp iothub/service/src/Common/Exceptions/ErrorCode.cs]).
func writeTooLarge(w http.ResponseWriter, max int64, now time.Time) {
	body, _ := json.Marshal(map[string]string{
		"Message":          fmt.Sprintf("ErrorCode:MessageTooLarge;request body larger than %d bytes", max),
		"ExceptionMessage": "Tracking ID:hubsim-" + fmt.Sprint(now.UnixNano()) + "-TimeStamp:" + now.UTC().Format("01/02/2006 15:04:05"),
	})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("iothub-errorcode", "MessageTooLarge")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = w.Write(body)
}
