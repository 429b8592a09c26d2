package relay

import (
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// WrapListener wraps the raw TCP listener that the HTTPS server puts under
// TLS (tls.NewListener(relay.WrapListener(ln), conf)), so that the relay
// can write each forwarded frame with one system call. crypto/tls writes
// every record (at most 16 KiB) with its own Write; on a wrapped connection
// the relay gathers a frame's records and writes them together. Connections
// that carry no stream are unaffected: their writes pass straight through.
// Without the wrapper the relay falls back to TCP_CORK where the system has
// it (fewer segments, but one system call per record).
func WrapListener(ln net.Listener) net.Listener { return batchListener{ln} }

type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c}, nil
}

// batchConn gathers writes while held and writes them with one call on
// release; otherwise writes pass through. mu serializes every write, so a
// record never overtakes one still gathered. A failed write is sticky, so
// neither gorilla nor crypto/tls carries on over a byte stream with a hole.
// Only the pump that forwards frames to this connection holds it.
type batchConn struct {
	net.Conn

	mu   sync.Mutex
	held bool    // guarded by mu
	buf  *[]byte // guarded by mu: pooled while it holds bytes, nil otherwise
	err  error   // guarded by mu: the first write error
}

// batchCap holds a maximal frame split into TLS records, with room for a
// control frame that joins it.
const batchCap = maxFramePayload + 4<<10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchCap); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.held {
		return b.writeLocked(p)
	}
	if b.buf != nil && len(*b.buf)+len(p) > cap(*b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > batchCap {
		return b.writeLocked(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

func (b *batchConn) writeLocked(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// flushLocked writes what is gathered and returns the buffer to the pool.
func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return b.err
	}
	bp := b.buf
	b.buf = nil
	if b.err == nil && len(*bp) > 0 {
		_, _ = b.writeLocked(*bp)
	}
	*bp = (*bp)[:0]
	batchPool.Put(bp)
	return b.err
}

func (b *batchConn) hold() {
	b.mu.Lock()
	b.held = true
	b.mu.Unlock()
}

func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = false
	return b.flushLocked()
}

// Close sends what is gathered (a close frame may wait behind a frame),
// bounded by closeGrace, which also bounds the wait for a write that is
// stuck on a peer that reads nothing; then it closes the connection.
func (b *batchConn) Close() error {
	_ = b.Conn.SetWriteDeadline(time.Now().Add(closeGrace))
	b.mu.Lock()
	_ = b.flushLocked()
	b.mu.Unlock()
	return b.Conn.Close()
}

// frameFlusher is what the pump puts around writing one frame.
type frameFlusher interface {
	hold()
	release() error
}

// newFrameFlusher returns the batchConn under ws's TLS connection if the
// listener was wrapped, else a corker (which may do nothing).
func newFrameFlusher(ws *websocket.Conn) frameFlusher {
	if u, ok := ws.NetConn().(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		if b, ok := u.NetConn().(*batchConn); ok {
			return b
		}
	}
	return newCorker(ws)
}
