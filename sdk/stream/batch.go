package stream

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// batchConn sits between crypto/tls and the TCP connection of a dialled
// stream. crypto/tls hands every record (at most 16 KiB of plaintext) to
// the connection with its own Write, so a 64 KiB WebSocket frame costs five
// write system calls and, on the receiving host, five wake-ups. While the
// Conn's writer holds the batchConn (hold … release around one frame), the
// records are gathered in a pooled buffer and release writes them with one
// call. Writes nobody holds for (the TLS handshake, a proxy CONNECT, control
// frames gorilla sends on its own, the TLS close alert) go straight through,
// in order: mu serializes every write, so a record can never overtake one
// that is still buffered.
//
// A failed write is sticky: every later Write and release returns the same
// error, so neither gorilla nor crypto/tls carries on over a connection
// whose byte stream has a hole in it.
type batchConn struct {
	net.Conn

	// deadline is the owning Conn's write deadline (UnixNano, 0 = none),
	// set by attach once the WebSocket handshake is done. From then on
	// every write deadline given to this connection — by gorilla before
	// each frame, by crypto/tls, by Conn.SetWriteDeadline — is replaced by
	// the current value of *deadline, under dlMu. So a deadline the
	// application sets while the writer is between frames cannot be undone
	// by gorilla re-applying the older value it holds: whoever applies
	// last applies the newest deadline.
	deadline atomic.Pointer[atomic.Int64]
	dlMu     sync.Mutex
	closeBy  int64 // guarded by dlMu: Close's own write deadline (UnixNano), 0 = not closing

	mu   sync.Mutex
	held bool    // guarded by mu: writes are gathered in buf
	buf  *[]byte // guarded by mu: pooled while it holds bytes, nil otherwise
	err  error   // guarded by mu: the first write error
}

// batchCap is the capacity of a batch buffer: one maximal frame (payload
// and a 14-byte header) split into five TLS 1.3 records of at most 22 bytes
// of overhead each, with room to spare for a control frame that joins it.
const batchCap = MaxFramePayload + 4<<10

// batchPool holds *[]byte buffers of batchCap bytes. A buffer is taken on
// the first gathered write and returned by release, so idle streams hold
// none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchCap); return &b }}

func newBatchConn(c net.Conn) *batchConn { return &batchConn{Conn: c} }

// attach makes d the source of every write deadline from now on.
func (b *batchConn) attach(d *atomic.Int64) {
	b.deadline.Store(d)
	_ = b.applyDeadline()
}

// SetWriteDeadline applies t until attach; after it, the attached deadline.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	if b.deadline.Load() == nil {
		return b.Conn.SetWriteDeadline(t)
	}
	return b.applyDeadline()
}

// SetDeadline sets the read deadline to t and the write deadline as
// SetWriteDeadline does.
func (b *batchConn) SetDeadline(t time.Time) error {
	if b.deadline.Load() == nil {
		return b.Conn.SetDeadline(t)
	}
	if err := b.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return b.applyDeadline()
}

// applyDeadline gives the TCP connection the attached write deadline, or
// Close's if that is earlier.
func (b *batchConn) applyDeadline() error {
	b.dlMu.Lock()
	defer b.dlMu.Unlock()
	var ns int64
	if d := b.deadline.Load(); d != nil {
		ns = d.Load()
	}
	if b.closeBy != 0 && (ns == 0 || b.closeBy < ns) {
		ns = b.closeBy
	}
	var t time.Time
	if ns != 0 {
		t = time.Unix(0, ns)
	}
	return b.Conn.SetWriteDeadline(t)
}

// Write gathers p while the connection is held and writes it through
// otherwise. A gathered write always reports success; its error, if any,
// comes from the flush (release, or a later Write).
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.held {
		return b.writeLocked(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	if len(*b.buf)+len(p) > cap(*b.buf) {
		// More than one frame's worth: send what is gathered and, if p
		// alone does not fit either, p too.
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > batchCap {
			return b.writeLocked(p)
		}
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// writeLocked writes p to the TCP connection and records a failure.
func (b *batchConn) writeLocked(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// flushLocked writes the gathered bytes, if any, and returns the buffer to
// the pool.
func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return b.err
	}
	bp := b.buf
	b.buf = nil
	var err error
	if b.err == nil && len(*bp) > 0 {
		_, err = b.writeLocked(*bp)
	}
	*bp = (*bp)[:0]
	batchPool.Put(bp)
	if err != nil {
		return err
	}
	return b.err
}

// Close sends what is still gathered, then closes the connection. Conn.Close
// can run between a frame's write and its release, so its close frame and
// the TLS close alert may be waiting here behind the frame. The deadline
// set first bounds both that flush and the wait for mu: a write stuck on a
// peer that reads nothing gives up by then.
func (b *batchConn) Close() error {
	b.dlMu.Lock()
	b.closeBy = time.Now().Add(closeTimeout).UnixNano()
	b.dlMu.Unlock()
	_ = b.applyDeadline()
	b.mu.Lock()
	_ = b.flushLocked()
	b.mu.Unlock()
	return b.Conn.Close()
}

// hold starts gathering writes.
func (b *batchConn) hold() {
	b.mu.Lock()
	b.held = true
	b.mu.Unlock()
}

// release stops gathering and writes what was gathered with one call.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
	return b.flushLocked()
}
