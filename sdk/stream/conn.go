package stream

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

var (
	// ErrTextFrame means the peer sent a text frame; a device stream carries
	// binary frames only.
	ErrTextFrame = errors.New("stream: peer sent a text frame")
	// ErrHandshake is wrapped by every *HandshakeError.
	ErrHandshake = errors.New("stream: websocket handshake failed")
)

// CloseError reports that the peer (or the streaming gateway on its behalf)
// closed the WebSocket with a status other than a normal closure. A normal
// closure (1000, or a close frame without a status) reads as io.EOF instead.
type CloseError struct {
	Code   int    // RFC 6455 status code; 1006 means the connection dropped without a close frame
	Reason string // the peer's close reason, possibly empty
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("stream: closed by peer with status %d", e.Code)
	}
	return fmt.Sprintf("stream: closed by peer with status %d: %s", e.Code, e.Reason)
}

// closeTimeout bounds how long Close waits to hand the close frame to the
// kernel before it drops the connection.
const closeTimeout = time.Second

// Dial gives each Conn its own write buffer rather than a
// websocket.BufferPool: gorilla boxes the buffer into an interface on every
// Put, one allocation per message, and ReadFrom holds the buffer while it
// waits for input anyway, so a pool would save no memory on the bridge path.
//
// writeBufferSize is one byte more than MaxFramePayload so that gorilla's
// message writer never finds its buffer exactly full after a read, which
// would make it emit a non-final frame followed by an empty final one.
const writeBufferSize = MaxFramePayload + 1

// copyPool holds *[]byte buffers of MaxFramePayload bytes for WriteTo and Bridge.
var copyPool = sync.Pool{New: func() any { b := make([]byte, MaxFramePayload); return &b }}

// Conn is a device stream: a WebSocket carrying an opaque byte stream in
// binary frames, used as a net.Conn. See the package documentation for the
// concurrency, close and deadline rules.
type Conn struct {
	ws *websocket.Conn
	// batch gathers the TLS records of one frame into one write (see
	// batchConn); nil for a Conn made with NewConn. Held only by the writer.
	batch *batchConn

	// Read side: owned by the single reader (Read, WriteTo).
	msg  io.Reader // current message's reader; nil between messages
	rerr error     // sticky read error

	// Write side: owned by the single writer (Write, ReadFrom).
	one oneRead // reused by ReadFrom so each message costs no allocation

	// wdeadline is the write deadline in UnixNano (0 = none). Set by any
	// goroutine; the writer copies it into gorilla before each message.
	wdeadline atomic.Int64

	closed    atomic.Bool
	closeOnce sync.Once

	ka    atomic.Pointer[keepalive] // set once by StartKeepalive
	kaErr atomic.Pointer[error]     // set when the keepalive found the path dead
}

// NewConn wraps an established WebSocket. The Conn takes ownership of ws:
// do not use ws afterwards except through the Conn.
func NewConn(ws *websocket.Conn) *Conn {
	c := &Conn{ws: ws}
	c.installHandlers()
	return c
}

// Subprotocol returns the subprotocol the server selected, usually "".
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address (the streaming endpoint or
// the proxy in between).
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// Read reads bytes of the stream. Frame boundaries are invisible: one Read
// may return part of a frame, and it never joins two frames. A normal close
// by the peer reads as io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	return c.read(p, false)
}

// read is Read; with fill it keeps reading the current message until p is
// full or the message ends, instead of returning what one read of the TLS
// connection gave (at most one TLS record, 16 KiB). A sender puts a frame on
// the wire in one go (gorilla writes a whole frame, the streaming gateway
// forwards whole frames), so the rest of the message is already on its way
// and waiting for it adds no delay that matters.
func (c *Conn) read(p []byte, fill bool) (int, error) {
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for {
		if c.msg == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				c.rerr = c.readErr(err)
				return 0, c.rerr
			}
			if mt != websocket.BinaryMessage {
				c.rerr = ErrTextFrame
				return 0, c.rerr
			}
			c.msg = r
			c.touch()
		}
		k, err := c.msg.Read(p[n:])
		n += k
		if err == io.EOF {
			c.msg = nil
			if n > 0 {
				return n, nil
			}
			continue // empty or finished message: go to the next one
		}
		if err != nil {
			c.rerr = c.readErr(err)
			return n, c.rerr
		}
		if !fill || n == len(p) {
			return n, nil
		}
	}
}

// readErr turns a gorilla read error into what a net.Conn user expects.
func (c *Conn) readErr(err error) error {
	if kerr := c.keepaliveErr(); kerr != nil {
		return kerr
	}
	if c.closed.Load() {
		return net.ErrClosed
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseNoStatusReceived:
			return io.EOF
		}
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("stream: read: %w", os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("stream: read: %w", err)
}

func (c *Conn) writeErr(err error) error {
	if kerr := c.keepaliveErr(); kerr != nil {
		return kerr
	}
	if c.closed.Load() || errors.Is(err, websocket.ErrCloseSent) {
		return net.ErrClosed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("stream: write: %w", os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("stream: write: %w", err)
}

// syncWriteDeadline hands the current write deadline to gorilla. Only the
// writer calls it, so gorilla's deadline field has a single writer.
func (c *Conn) syncWriteDeadline() {
	var t time.Time
	if ns := c.wdeadline.Load(); ns != 0 {
		t = time.Unix(0, ns)
	}
	c.ws.SetWriteDeadline(t)
}

// Write sends p as one or more binary frames of at most MaxFramePayload
// bytes each.
func (c *Conn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.syncWriteDeadline()
	n := 0
	for len(p) > 0 {
		chunk := min(len(p), MaxFramePayload)
		c.hold()
		err := c.ws.WriteMessage(websocket.BinaryMessage, p[:chunk])
		if rerr := c.release(); err == nil {
			err = rerr
		}
		if err != nil {
			return n, c.writeErr(err)
		}
		n += chunk
		p = p[chunk:]
	}
	return n, nil
}

// ReadFrom copies r into the stream until r returns io.EOF or an error. Each
// Read of r becomes one frame, and r reads straight into the WebSocket's
// write buffer, so nothing is copied in between. It makes io.Copy(conn, r)
// efficient and keeps interactive traffic unbuffered.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if c.closed.Load() {
			return total, net.ErrClosed
		}
		c.syncWriteDeadline()
		w, err := c.ws.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return total, c.writeErr(err)
		}
		rf, ok := w.(io.ReaderFrom)
		if !ok { // not reached with compression off; keep a correct fallback
			return total, c.copyFallback(w, r, total)
		}
		c.one = oneRead{src: r}
		n, werr := rf.ReadFrom(&c.one)
		total += n
		srcErr := c.one.err
		c.one.src = nil
		if werr != nil {
			return total, c.writeErr(werr)
		}
		if n > 0 {
			// Only the frame's write is held: ReadFrom above may have
			// waited a long time for input.
			c.hold()
			err := w.Close()
			if rerr := c.release(); err == nil {
				err = rerr
			}
			if err != nil {
				return total, c.writeErr(err)
			}
		}
		// With n == 0 the open writer is simply abandoned: gorilla flushes it
		// as an empty message if another message follows, which a reader of
		// this package skips, and Close does not need it.
		if srcErr != nil {
			if srcErr == io.EOF {
				return total, nil
			}
			return total, srcErr
		}
	}
}

// hold makes the TLS records of the next frame gather until release.
func (c *Conn) hold() {
	if c.batch != nil {
		c.batch.hold()
	}
}

// release writes the gathered records with one call.
func (c *Conn) release() error {
	if c.batch == nil {
		return nil
	}
	return c.batch.release()
}

// copyFallback finishes the already opened writer w and continues with
// plain Writes; only used if gorilla's writer stops implementing ReaderFrom.
func (c *Conn) copyFallback(w io.WriteCloser, r io.Reader, total int64) error {
	if err := w.Close(); err != nil {
		return c.writeErr(err)
	}
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	_, err := copyLoop(c, r, *bp)
	return err
}

// oneRead hands exactly one successful Read of src to gorilla's message
// writer and then reports io.EOF, which ends the message.
type oneRead struct {
	src  io.Reader
	done bool
	err  error // src's error, if it returned one
}

func (o *oneRead) Read(b []byte) (int, error) {
	if o.done {
		return 0, io.EOF
	}
	o.done = true
	// Never fill gorilla's buffer completely (see writeBufferSize).
	if len(b) > 1 {
		b = b[:min(len(b)-1, MaxFramePayload)]
	}
	for range 100 {
		n, err := o.src.Read(b)
		if err != nil {
			o.err = err
			return n, io.EOF
		}
		if n > 0 {
			return n, io.EOF
		}
	}
	o.err = io.ErrNoProgress
	return 0, io.EOF
}

// WriteTo copies the stream into w until the peer closes it (io.EOF, which
// WriteTo reports as nil) or an error, using a pooled buffer. Each write to
// w carries up to one whole frame, not one TLS record's worth.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	return copyLoop(w, frameReader{c}, *bp)
}

// frameReader reads c a whole frame (or as much as fits) at a time.
type frameReader struct{ c *Conn }

func (f frameReader) Read(p []byte) (int, error) { return f.c.read(p, true) }

// copyLoop is io.CopyBuffer without the ReaderFrom/WriterTo detours, which
// for net.TCPConn would allocate a fresh buffer per call.
func copyLoop(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close sends a normal-closure frame (1000) with a short deadline and closes
// the connection without waiting for the peer's answer. It is idempotent,
// always returns nil, and is safe to call concurrently with Read and Write,
// which then return net.ErrClosed.
func (c *Conn) Close() error { return c.CloseWith(closeNormal, "") }

// CloseWith is Close with the given status code and reason in the close
// frame, so that the far end can tell why the stream ended (e.g.
// CloseGoingAway, "agent shutting down"); it reads them as a *CloseError.
// A reason longer than a close frame holds (123 bytes) is cut at a UTF-8
// boundary. Only the first Close or CloseWith sends a frame.
func (c *Conn) CloseWith(code int, reason string) error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		msg := websocket.FormatCloseMessage(code, truncateReason(reason))
		// The error is ignored: the peer may already be gone, or may have
		// closed first (gorilla then already answered its close frame).
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout))
		// Closing always releases the socket; its error only says that the
		// TLS close_notify could not be sent to a peer that is gone, which
		// the caller cannot act on.
		_ = c.ws.Close()
		c.stopKeepalive()
	})
	return nil
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline. An expired deadline is fatal for
// reading (see the package documentation).
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.ws.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline, also for a Write already in
// progress. An expired deadline is fatal for writing.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdeadline.Store(ns)
	if c.batch != nil {
		// The batchConn applies the newest stored deadline whoever asks,
		// so this reaches a blocked write and cannot be undone by gorilla.
		return c.batch.applyDeadline()
	}
	// Reach a write that is already blocked; the writer re-applies the
	// deadline through gorilla before its next message.
	return c.ws.NetConn().SetWriteDeadline(t)
}

var _ net.Conn = (*Conn)(nil)

// truncateReason cuts reason to maxCloseReason bytes without splitting a
// UTF-8 sequence.
func truncateReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
