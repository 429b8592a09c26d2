package relay

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// ServeHTTP accepts one side of a stream at /bridges/…: it checks the path,
// the Bearer token and the WebSocket upgrade, then holds the connection until
// the peer arrives and forwards the side's frames to the peer until the
// stream ends.
//
// Status codes: 400 not a WebSocket upgrade, 401 missing, wrong or already
// used token, 404 unknown or ended stream, 410 handshake timeout passed,
// 503 relay closed.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	spec, id, ok := parseStreamPath(req.URL.EscapedPath())
	if !ok {
		r.log.Warn("unknown streaming path", "path", req.URL.EscapedPath())
		http.Error(w, "no such stream", http.StatusNotFound)
		return
	}
	if !websocket.IsWebSocketUpgrade(req) {
		http.Error(w, "websocket upgrade required", http.StatusBadRequest)
		return
	}
	token, hasToken := bearerToken(req.Header.Get("Authorization"))

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		http.Error(w, "streaming endpoint closed", http.StatusServiceUnavailable)
		return
	}
	st := r.streams[id]
	if st == nil || st.spec.Hub != spec.Hub || st.spec.DeviceID != spec.DeviceID ||
		st.spec.ModuleID != spec.ModuleID || st.spec.Name != spec.Name {
		r.mu.Unlock()
		http.Error(w, "no such stream", http.StatusNotFound)
		return
	}
	if st.connected.IsZero() && r.now().After(st.deadline) {
		r.mu.Unlock()
		r.end(st, closeError, "handshake timeout: the other side did not connect", "timeout")
		http.Error(w, "stream handshake timed out", http.StatusGone)
		return
	}
	side := -1
	if hasToken {
		for i, t := range st.tokens {
			if subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
				side = i
			}
		}
	}
	if side < 0 || st.claimed[side] {
		reused := side >= 0
		r.mu.Unlock()
		r.log.Warn("stream token refused", "stream", id, "device", spec.DeviceID, "reused", reused)
		w.Header().Set("WWW-Authenticate", `Bearer realm="streams"`)
		http.Error(w, "invalid stream token", http.StatusUnauthorized)
		return
	}
	st.claimed[side] = true
	st.attached++
	r.handlers.Add(1)
	r.mu.Unlock()
	defer r.handlers.Done()
	defer r.detach(st)

	// Echo the first offered subprotocol: the C SDK offers its transport
	// name (MQTT) and accepts either an echo or none; others offer none.
	var hdr http.Header
	if p := websocket.Subprotocols(req); len(p) > 0 {
		hdr = http.Header{"Sec-Websocket-Protocol": {p[0]}}
	}
	ws, err := r.upgrader.Upgrade(w, req, hdr)
	if err != nil {
		// The Upgrader has answered the client. The token is spent, so the
		// stream cannot complete.
		r.log.Warn("stream upgrade failed", "stream", id, "device", spec.DeviceID, "side", sideNames[side], "err", err)
		r.end(st, closeError, "upgrade failed", "failed")
		return
	}
	defer ws.Close()

	r.mu.Lock()
	if st.ended {
		code, reason := st.endCode, st.endReason
		r.mu.Unlock()
		closeAndDrain(ws, code, reason)
		return
	}
	st.conns[side] = ws
	both := st.conns[deviceSide] != nil && st.conns[serviceSide] != nil
	if both {
		st.connected = r.now()
		if st.timer != nil && st.timer.Stop() {
			r.timers.Done()
		}
		st.timer = nil
		close(st.paired)
	}
	r.mu.Unlock()
	r.log.Info("stream side connected", "stream", id, "device", spec.DeviceID, "side", sideNames[side])
	if both {
		r.event(st, "connected", "", r.now().Sub(st.created))
	}

	select {
	case <-st.paired:
	case <-st.done:
	}
	select {
	case <-st.done:
		// Ended while waiting: end already sent our close frame and set a
		// read deadline; wait for the client's answer, then close.
		drain(ws)
		return
	default:
	}

	r.mu.Lock()
	peer := st.conns[1-side]
	r.mu.Unlock()
	// pump returns when our side's reads end: its close frame (which
	// gorilla has already answered), a drop, or the grace deadline that end
	// set. Either way the deferred ws.Close is all that is left to do.
	code, reason, result := r.pump(st, side, ws, peer)
	r.end(st, code, reason, result)
}

// detach drops a handler from the stream; the last one out writes the
// closed event if the stream has ended.
func (r *Relay) detach(st *session) {
	r.mu.Lock()
	st.attached--
	last := st.attached == 0 && st.ended
	r.mu.Unlock()
	if last {
		r.closedEvent(st)
	}
}

// srcReader wraps a frame reader to tell read errors (own side) from write
// errors (peer side) after messageWriter.ReadFrom.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// pump forwards own's frames to peer until own ends, and returns how the
// stream should end. Each frame goes NextReader → NextWriter → ReadFrom:
// gorilla reads the payload straight into the peer's write buffer, so the
// relay copies each byte once and allocates no buffer per frame. The
// frame's TLS records go out with one system call on a connection accepted
// through WrapListener, else corked into one segment where the system has
// TCP_CORK, instead of one call and one segment per record. The peer's
// write buffer holds one byte more than a maximal frame, so a 64 KiB frame
// is forwarded as one frame.
func (r *Relay) pump(st *session, side int, own, peer *websocket.Conn) (code int, reason, result string) {
	cutAfter, cut := int64(0), false
	if f := r.cfg.Faults; f != nil {
		if f.Stall != nil {
			if s, stall := f.Stall(st.spec); stall && s == sideNames[side] {
				r.log.Info("stream side stalled by fault", "stream", st.id, "side", sideNames[side])
				<-st.done // end has set a read deadline; the handler closes own
				return closeGoingAway, sideNames[side] + " stalled", "dropped"
			}
		}
		if f.Cut != nil {
			cutAfter, cut = f.Cut(st.spec)
		}
	}
	src := &srcReader{}
	fl := newFrameFlusher(peer)
	peerOK := true
	forwardControl(own, peer)
	for {
		mt, fr, err := own.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseNoStatusReceived) {
				return closeNormal, "", "closed"
			}
			if errors.As(err, &ce) && ce.Code >= closeAppMin && ce.Code <= closeAppMax {
				// An application's own status (porthole's agent says why
				// it closed a stream): pass it on unchanged.
				return ce.Code, ce.Text, "closed"
			}
			return closeGoingAway, sideNames[side] + " disconnected", "dropped"
		}
		if mt != websocket.BinaryMessage {
			msg := websocket.FormatCloseMessage(closeUnsupported, "binary frames only")
			_ = own.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
			return closeGoingAway, sideNames[side] + " sent a text frame", "protocolError"
		}
		if !peerOK {
			// The peer is gone; keep reading until our client answers
			// the close frame or the grace deadline passes.
			if _, err := io.Copy(io.Discard, fr); err != nil {
				return closeGoingAway, sideNames[side] + " disconnected", "dropped"
			}
			continue
		}
		src.r, src.err = fr, nil
		var n int64
		pw, err := peer.NextWriter(websocket.BinaryMessage)
		if err == nil {
			n, err = pw.(io.ReaderFrom).ReadFrom(src)
			if err == nil {
				// The whole frame is in the peer's write buffer; Close
				// writes it with one TLS write, which fl turns into one
				// system call (or at least one segment).
				fl.hold()
				err = pw.Close()
				if ferr := fl.release(); err == nil {
					err = ferr
				}
			}
		}
		if n > 0 {
			st.bytes[side].Add(n)
			r.bytes[side].Add(n)
			st.hub.bytes[side].Add(n)
		}
		if cut && st.bytes[deviceSide].Load()+st.bytes[serviceSide].Load() >= cutAfter {
			r.log.Info("stream cut by fault", "stream", st.id, "after", cutAfter)
			r.end(st, closeCut, "cut by fault injection", "dropped")
			return closeCut, "cut by fault injection", "dropped"
		}
		if src.err != nil {
			return closeGoingAway, sideNames[side] + " disconnected", "dropped"
		}
		if err != nil {
			// Writing to the peer failed: the stream is over, but let our
			// side see a close frame rather than a reset.
			peerOK = false
			r.end(st, closeGoingAway, sideNames[1-side]+" disconnected", "dropped")
		}
	}
}

// forwardControl makes own's pings and pongs go to peer as they are, so a
// ping measures the whole path from one end to the other. Azure does not
// document what its streaming endpoint does with control frames; hubsim
// forwards them (RFC 6455 leaves intermediaries free to), because answering
// them itself would hide a peer that vanished behind a dead NAT mapping.
// The handlers run on own's reader (pump); WriteControl is safe alongside
// the other pump's writes to peer.
func forwardControl(own, peer *websocket.Conn) {
	own.SetPingHandler(func(data string) error {
		_ = peer.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(closeGrace))
		return nil
	})
	own.SetPongHandler(func(data string) error {
		_ = peer.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeGrace))
		return nil
	})
}

// closeAndDrain sends a close frame and waits briefly for the answer.
func closeAndDrain(ws *websocket.Conn, code int, reason string) {
	deadline := time.Now().Add(closeGrace)
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncateReason(reason)), deadline)
	_ = ws.SetReadDeadline(deadline)
	drain(ws)
}

// drain reads and discards until the connection fails: the client's close
// frame, a drop, or the read deadline set when the close frame was sent.
func drain(ws *websocket.Conn) {
	for {
		_, fr, err := ws.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, fr); err != nil {
			return
		}
	}
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive, the token is taken as is.
func bearerToken(h string) (string, bool) {
	if len(h) < len(bearerScheme) || !strings.EqualFold(h[:len(bearerScheme)], bearerScheme) {
		return "", false
	}
	t := h[len(bearerScheme):]
	return t, t != ""
}
