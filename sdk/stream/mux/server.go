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

// Refusal is the error a Handler returns to refuse an open request with a
// code the operator (and a SOCKS client) sees.
type Refusal struct {
	Code   Code
	Reason string
}

func (r *Refusal) Error() string { return "mux: refused (" + r.Code.String() + "): " + r.Reason }

// ErrRevoked is the cause of a connection closed by Server.Revoke.
var ErrRevoked = errors.New("mux: connection revoked")

// errOperatorReset is the cause of a connection the operator's end reset
// (a Notice on the control stream: its local side failed).
var errOperatorReset = errors.New("mux: connection reset by the operator")

// Handler decides and opens the device end of each connection.
type Handler interface {
	// Open is called for every target or dial request with the id the
	// server assigned. It returns the connection to bridge to, or an error:
	// a *Refusal carries its code, any other error is refused as
	// CodeFailure with the error's text. ctx ends after Config.OpenTimeout.
	Open(ctx context.Context, id uint32, req Request) (net.Conn, error)
	// Closed is called once for every connection Open returned, after
	// both ends are closed.
	Closed(id uint32, req Request, res Result)
}

// Result is how an accepted connection ended.
type Result struct {
	ToTarget, FromTarget int64
	Duration             time.Duration
	// Reason is a short text: "closed by operator", "closed by target",
	// "stream ended", the revocation reason, or the error.
	Reason string
}

// ConnInfo describes one open connection inside the stream.
type ConnInfo struct {
	ID         uint32
	Request    Request
	Start      time.Time
	ToTarget   int64
	FromTarget int64
}

// Server is the device end of a multiplexed stream.
type Server struct {
	sess *yamux.Session
	j    *joiner
	h    Handler
	cfg  Config

	// ctx is the parent of every connection; cancel ends them all.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // one per accepted yamux stream; waited by Serve

	mu     sync.Mutex
	conns  map[uint32]*serverConn // guarded by mu
	nextID uint32                 // guarded by mu
	ctrl   net.Conn               // the control stream; guarded by mu
	ctrlW  sync.Mutex             // serialises writes to ctrl
}

type serverConn struct {
	info     ConnInfo
	to, from Counter
	cancel   context.CancelCauseFunc // nil until the reply is sent; guarded by Server.mu
	revoked  string                  // revocation reason; guarded by Server.mu
}

// NewServer starts the yamux server on conn (the accepted device stream).
// Nothing is served until Serve.
func NewServer(conn net.Conn, cfg Config, h Handler) (*Server, error) {
	cfg = cfg.withDefaults()
	y, err := cfg.yamuxConfig()
	if err != nil {
		return nil, err
	}
	j := newJoiner(conn)
	sess, err := yamux.Server(j, y)
	if err != nil {
		return nil, fmt.Errorf("mux: %w", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Server{sess: sess, j: j, h: h, cfg: cfg, ctx: ctx, cancel: cancel, conns: map[uint32]*serverConn{}}, nil
}

// Serve accepts connections until the stream ends or ctx is done, then
// closes every connection and waits for them. It returns why the stream
// ended: nil for a normal close by the operator, else the stream's error
// (a *stream.CloseError, a keepalive timeout) or ctx's cause.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.sess.Close() })
	defer stop()
	for {
		st, err := s.sess.AcceptStream()
		if err != nil {
			break
		}
		s.wg.Add(1)
		go func() { // owned by s: Serve waits on s.wg
			defer s.wg.Done()
			s.serveStream(st)
		}()
	}
	s.sess.Close()
	cause := s.j.err()
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	if cause == nil || errors.Is(cause, io.EOF) {
		s.cancel(errStreamEnded)
		cause = nil
	} else {
		s.cancel(fmt.Errorf("stream ended: %w", cause))
	}
	s.wg.Wait()
	return cause
}

var errStreamEnded = errors.New("stream ended")

// Conns lists the open connections.
func (s *Server) Conns() []ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for _, c := range s.conns {
		i := c.info
		i.ToTarget, i.FromTarget = c.to.Load(), c.from.Load()
		out = append(out, i)
	}
	return out
}

// NumConns is the number of open connections.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Revoke closes connection id: it tells the operator why on the control
// stream, then closes both ends. Closed reports reason. It returns false
// if no such connection is open.
func (s *Server) Revoke(id uint32, reason string) bool {
	s.mu.Lock()
	c := s.conns[id]
	if c == nil || c.revoked != "" {
		s.mu.Unlock()
		return c != nil
	}
	c.revoked = reason
	cancel := c.cancel // nil while the connection is still opening: serveStream checks revoked
	s.mu.Unlock()
	s.notify(Notice{ID: id, Reason: reason})
	if cancel != nil {
		cancel(ErrRevoked)
	}
	return true
}

// operatorReset closes connection id because the operator's end failed;
// Closed reports "reset by operator: " and the operator's reason. Unknown
// ids (already closed) are ignored.
func (s *Server) operatorReset(id uint32, reason string) {
	s.mu.Lock()
	c := s.conns[id]
	if c == nil || c.revoked != "" {
		s.mu.Unlock()
		return
	}
	c.revoked = "reset by operator: " + reason
	cancel := c.cancel // nil while still opening: serveStream checks revoked
	s.mu.Unlock()
	if cancel != nil {
		cancel(errOperatorReset)
	}
}

// notify writes a notice line on the control stream, if there is one. The
// write is bounded so that a stalled operator cannot hold a revocation.
func (s *Server) notify(n Notice) {
	s.mu.Lock()
	ctrl := s.ctrl
	s.mu.Unlock()
	if ctrl == nil {
		return
	}
	line, _ := json.Marshal(n)
	s.ctrlW.Lock()
	defer s.ctrlW.Unlock()
	_ = ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = ctrl.Write(append(line, '\n'))
}

func (s *Server) reply(st net.Conn, r Reply) error {
	b, _ := r.MarshalBinary()
	_ = st.SetWriteDeadline(time.Now().Add(s.cfg.OpenTimeout))
	_, err := st.Write(b)
	_ = st.SetWriteDeadline(time.Time{})
	return err
}

// serveStream runs one yamux stream: header, decision, reply, bytes.
func (s *Server) serveStream(st *yamux.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.OpenTimeout))
	req, err := ReadRequest(st)
	if err != nil {
		st.Close()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if req.Kind == KindControl {
		s.serveControl(st)
		return
	}

	s.mu.Lock()
	if len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		_ = s.reply(st, Reply{Code: CodeFailure, Message: fmt.Sprintf("too many connections on this stream (at most %d)", s.cfg.MaxConns)})
		st.Close()
		return
	}
	s.nextID++
	id := s.nextID
	c := &serverConn{info: ConnInfo{ID: id, Request: req, Start: time.Now()}}
	s.conns[id] = c // holds the slot during Open
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
	}

	octx, ocancel := context.WithTimeout(s.ctx, s.cfg.OpenTimeout)
	target, err := s.h.Open(octx, id, req)
	ocancel()
	if err != nil {
		release()
		var rf *Refusal
		if !errors.As(err, &rf) {
			rf = &Refusal{Code: CodeFailure, Reason: err.Error()}
		}
		_ = s.reply(st, Reply{Code: rf.Code, ID: id, Message: rf.Reason})
		st.Close()
		return
	}
	if err := s.reply(st, Reply{Code: CodeOK, ID: id}); err != nil {
		release()
		target.Close()
		st.Close()
		s.h.Closed(id, req, Result{Duration: time.Since(c.info.Start), Reason: "operator gone before the reply"})
		return
	}

	cctx, cancel := context.WithCancelCause(s.ctx)
	s.mu.Lock()
	c.cancel = cancel
	if c.revoked != "" {
		cancel(ErrRevoked)
	}
	s.mu.Unlock()
	ends, jerr := Join(cctx, st, target, &c.to, &c.from)
	cancel(nil)
	release()
	res := Result{ToTarget: c.to.Load(), FromTarget: c.from.Load(), Duration: time.Since(c.info.Start)}
	switch {
	case jerr != nil && (errors.Is(jerr, ErrRevoked) || errors.Is(jerr, errOperatorReset)):
		s.mu.Lock()
		res.Reason = c.revoked
		s.mu.Unlock()
	case jerr != nil && errors.Is(jerr, errStreamEnded):
		res.Reason = errStreamEnded.Error()
	case ends != EndSecond && s.sess.IsClosed():
		// The stream under the session is gone: yamux ends each
		// connection with EOF or ErrSessionShutdown, whichever it hits
		// first. Serve names the stream's end once it sees the session
		// closed; that is this connection's reason.
		<-s.ctx.Done()
		res.Reason = context.Cause(s.ctx).Error()
	case jerr != nil:
		res.Reason = jerr.Error()
		// This end failed (the target reset, a write timed out): a yamux
		// Close is only a half-close, so tell the operator, whose end
		// would otherwise go on writing into a window nobody reads.
		s.notify(Notice{ID: id, Reason: res.Reason})
	case ends == EndFirst:
		res.Reason = "closed by operator"
	case ends == EndSecond:
		res.Reason = "closed by target"
	default:
		res.Reason = "closed"
	}
	s.h.Closed(id, req, res)
}

// serveControl answers the control stream with the limits and keeps it
// until the operator closes it (or the session ends).
func (s *Server) serveControl(st *yamux.Stream) {
	s.mu.Lock()
	dup := s.ctrl != nil
	if !dup {
		s.ctrl = st
	}
	s.mu.Unlock()
	if dup {
		_ = s.reply(st, Reply{Code: CodeFailure, Message: "control stream already open"})
		st.Close()
		return
	}
	s.ctrlW.Lock()
	err := s.reply(st, Reply{Code: CodeOK, Message: fmt.Sprintf("max_conns=%d window=%d", s.cfg.MaxConns, s.cfg.Window)})
	s.ctrlW.Unlock()
	if err == nil {
		s.readResets(st)
	}
	st.Close()
}

// readResets reads the operator's notices (connections whose operator end
// failed) until the operator or the session ends the control stream. A
// line too long for a notice ends the parsing, not the stream: the rest is
// read and discarded.
func (s *Server) readResets(st net.Conn) {
	sc := bufio.NewScanner(st)
	sc.Buffer(make([]byte, 1024), 64<<10)
	for sc.Scan() {
		var n Notice
		if json.Unmarshal(sc.Bytes(), &n) != nil {
			continue
		}
		s.operatorReset(n.ID, n.Reason)
	}
	_, _ = io.Copy(io.Discard, st)
}
