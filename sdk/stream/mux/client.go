package mux

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// ErrNoMux means the device end did not answer the mux handshake: the
// stream is not a multiplexed one (the device bridged it somewhere else).
// An operator that gets it must not send anything more on the stream.
var ErrNoMux = errors.New("mux: the device did not answer the mux handshake")

// OpenError is a connection the device refused.
type OpenError struct {
	Code    Code
	Message string
}

func (e *OpenError) Error() string {
	if e.Message == "" {
		return "mux: device refused the connection: " + e.Code.String()
	}
	return "mux: device refused the connection: " + e.Code.String() + ": " + e.Message
}

// Client is the operator end of a multiplexed stream.
type Client struct {
	sess   *yamux.Session
	j      *joiner
	cfg    Config
	ctrl   net.Conn
	limits string

	done chan struct{} // closed when the notice reader ends

	ctrlW sync.Mutex // serialises writes to ctrl

	mu      sync.Mutex
	reasons map[uint32]string // close notices by connection id; guarded by mu
	live    map[uint32]*Conn  // connections a notice tears down; guarded by mu
	onNote  func(Notice)      // guarded by mu
	noted   chan struct{}     // closed and replaced at each notice; guarded by mu
	watch   map[uint32]func() // per-connection notice watchers; guarded by mu
}

// NewClient starts the yamux client on conn (a device stream opened with
// the name StreamName) and opens the control stream. It fails with ErrNoMux
// (wrapped) if the device does not answer within cfg.OpenTimeout or ctx.
// On failure conn is closed.
func NewClient(ctx context.Context, conn net.Conn, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	y, err := cfg.yamuxConfig()
	if err != nil {
		conn.Close()
		return nil, err
	}
	j := newJoiner(conn)
	sess, err := yamux.Client(j, y)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mux: %w", err)
	}
	c := &Client{sess: sess, j: j, cfg: cfg, done: make(chan struct{}), reasons: map[uint32]string{}, noted: make(chan struct{}),
		watch: map[uint32]func(){}, live: map[uint32]*Conn{}}
	ctrl, rep, err := c.open(ctx, Request{Kind: KindControl})
	if err != nil {
		sess.Close()
		// Whatever went wrong, the peer did not complete the handshake:
		// it is no mux server (or the stream died on the way).
		if ctx.Err() == nil && !errors.Is(err, ErrNoMux) {
			err = fmt.Errorf("%w: %w", ErrNoMux, err)
		}
		return nil, err
	}
	c.ctrl, c.limits = ctrl, rep.Message
	go c.readNotices() // owned by c: Close waits on c.done
	return c, nil
}

// Limits is what the device announced on the control stream, for people
// to read ("max_conns=64 window=524288": connections at once, and each
// connection's receive window in bytes; older agents send max_conns
// only).
func (c *Client) Limits() string { return c.limits }

// OnNotice sets a function called (on the notice reader's goroutine) for
// every close notice from the device.
func (c *Client) OnNotice(f func(Notice)) {
	c.mu.Lock()
	c.onNote = f
	c.mu.Unlock()
}

func (c *Client) readNotices() {
	defer close(c.done)
	sc := bufio.NewScanner(c.ctrl)
	sc.Buffer(make([]byte, 1024), 64<<10)
	for sc.Scan() {
		var n Notice
		if json.Unmarshal(sc.Bytes(), &n) != nil {
			continue
		}
		c.mu.Lock()
		c.reasons[n.ID] = n.Reason
		f := c.onNote
		w := c.watch[n.ID]
		delete(c.watch, n.ID)
		cn := c.live[n.ID]
		delete(c.live, n.ID)
		close(c.noted)
		c.noted = make(chan struct{})
		c.mu.Unlock()
		if cn != nil {
			// The device's end is gone: end this end's blocked reads and
			// writes too (a write could otherwise wait for a window
			// update that never comes).
			_ = cn.Conn.SetDeadline(time.Now())
		}
		if w != nil {
			w()
		}
		if f != nil {
			f(n)
		}
	}
}

// Reason returns the device's close notice for connection id, "" if none.
func (c *Client) Reason(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reasons[id]
}

// open opens a yamux stream, sends req and reads the reply.
func (c *Client) open(ctx context.Context, req Request) (net.Conn, Reply, error) {
	hdr, err := req.MarshalBinary()
	if err != nil {
		return nil, Reply{}, err
	}
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, Reply{}, fmt.Errorf("mux: open: %w", c.sessErr(err))
	}
	deadline := time.Now().Add(c.cfg.OpenTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	if _, err := st.Write(hdr); err != nil {
		st.Close()
		return nil, Reply{}, fmt.Errorf("mux: open: %w", c.sessErr(err))
	}
	rep, err := ReadReply(st)
	if err != nil {
		st.Close()
		if ctx.Err() != nil {
			return nil, Reply{}, ctx.Err()
		}
		if errors.Is(err, yamux.ErrTimeout) || errors.Is(err, ErrBadHeader) {
			return nil, Reply{}, fmt.Errorf("%w: %w", ErrNoMux, err)
		}
		return nil, Reply{}, fmt.Errorf("mux: open: %w", c.sessErr(err))
	}
	_ = st.SetDeadline(time.Time{})
	if rep.Code != CodeOK {
		st.Close()
		return nil, rep, &OpenError{Code: rep.Code, Message: rep.Message}
	}
	return st, rep, nil
}

// sessErr prefers the stream's own end (a close frame's reason) to
// yamux's generic "session shutdown".
func (c *Client) sessErr(err error) error {
	if cause := c.j.err(); cause != nil && !errors.Is(cause, io.EOF) {
		return cause
	}
	return err
}

// Conn is one connection inside the multiplexed stream. Close is a
// half-close (the device sees EOF and may still send); use it with Join.
// A close notice from the device ends the Conn's reads and writes at once
// (they fail with a timeout), and Join resets the device's end when it
// fails on this side.
type Conn struct {
	net.Conn
	// ID is the id the device assigned (its audit lines carry it).
	ID uint32
	c  *Client

	resetOnce sync.Once
}

// Close closes the connection for writing (yamux sends FIN). From then on
// a close notice from the device no longer needs to end a blocked write.
func (cn *Conn) Close() error {
	cn.c.mu.Lock()
	if cn.c.live[cn.ID] == cn {
		delete(cn.c.live, cn.ID)
	}
	cn.c.mu.Unlock()
	return cn.Conn.Close()
}

// reset tells the device that this end failed (a Notice on the control
// stream, which the device answers by closing its end and the target) and
// ends this end's reads and writes. A yamux Close alone is a half-close:
// the device would go on sending into a window nobody reads, or keep its
// target busy, until CloseTimeout. Only the first call sends the notice.
func (cn *Conn) reset(reason string) {
	cn.resetOnce.Do(func() {
		_ = cn.Conn.SetDeadline(time.Now())
		cn.c.sendNotice(Notice{ID: cn.ID, Reason: reason})
	})
}

// sendNotice writes n on the control stream, bounded so that a stalled
// stream cannot hold the caller. A device without this notice (an older
// agent) reads and discards it.
func (c *Client) sendNotice(n Notice) {
	line, _ := json.Marshal(n)
	c.ctrlW.Lock()
	defer c.ctrlW.Unlock()
	_ = c.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.ctrl.Write(append(line, '\n'))
}

// Reason is the device's close notice for this connection, "" if none.
func (cn *Conn) Reason() string { return cn.c.Reason(cn.ID) }

// OnNotice calls f (once, on the notice reader's goroutine, or at once if
// the notice is already there) when the device says it closed this
// connection. The device's end then is gone for good, although its FIN
// looks like a half-close: callers cancel their copy with f. stop removes
// f; call it when the connection is done.
func (cn *Conn) OnNotice(f func()) (stop func()) {
	c := cn.c
	c.mu.Lock()
	if _, ok := c.reasons[cn.ID]; ok {
		c.mu.Unlock()
		f()
		return func() {}
	}
	c.watch[cn.ID] = f
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.watch, cn.ID)
		c.mu.Unlock()
	}
}

// WaitReason is Reason for a connection that has just ended: the device
// sends its notice before it closes the connection, but the notice reader
// may not have read it yet, so this waits up to d for one to arrive.
func (cn *Conn) WaitReason(d time.Duration) string {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		cn.c.mu.Lock()
		r, ch := cn.c.reasons[cn.ID], cn.c.noted
		cn.c.mu.Unlock()
		if r != "" {
			return r
		}
		select {
		case <-ch:
		case <-t.C:
			return ""
		case <-cn.c.done:
			return cn.c.Reason(cn.ID)
		}
	}
}

// Open asks the device for a connection: a named target (KindTarget) or a
// destination host:port its allow-list decides (KindDial). A refusal is an
// *OpenError with the device's code.
func (c *Client) Open(ctx context.Context, req Request) (*Conn, error) {
	if req.Kind == KindControl {
		return nil, errors.New("mux: the control stream is opened by NewClient")
	}
	st, rep, err := c.open(ctx, req)
	if err != nil {
		return nil, err
	}
	cn := &Conn{Conn: st, ID: rep.ID, c: c}
	c.mu.Lock()
	if _, gone := c.reasons[cn.ID]; gone {
		// The device's notice overtook the reply's reader.
		_ = st.SetDeadline(time.Now())
	} else {
		c.live[cn.ID] = cn
	}
	c.mu.Unlock()
	return cn, nil
}

// NumConns is the number of connections open in the stream.
func (c *Client) NumConns() int { return c.sess.NumStreams() - 1 }

// Done is closed when the stream has ended.
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// Err says why the stream ended (the device's close reason, a keepalive
// timeout); nil while it is open or after a normal close.
func (c *Client) Err() error {
	if !c.sess.IsClosed() {
		return nil
	}
	if err := c.j.err(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Close ends the stream and every connection in it, and waits for the
// notice reader.
func (c *Client) Close() error {
	c.sess.Close()
	<-c.done
	return nil
}
