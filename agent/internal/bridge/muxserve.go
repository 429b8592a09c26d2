package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

// acceptMux accepts a multiplexed stream.
func (b *Bridge) acceptMux(ctx context.Context, req Request, p Policy, e *entry, log *slog.Logger) (net.Conn, bool) {
	hctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	sc, err := req.Accept(hctx)
	if err != nil {
		log.Warn("stream accept failed", "err", err)
		b.auditStream(e, "rejected", "accept failed: "+err.Error(), 0, 0)
		return nil, false
	}
	b.startKeepalive(sc, p, log)
	b.mu.Lock()
	b.accepted++
	b.mu.Unlock()
	b.changed()
	return sc, true
}

// serveMux runs a multiplexed stream until it ends.
func (b *Bridge) serveMux(sc net.Conn, p Policy, e *entry, log *slog.Logger) {
	log.Info("stream open", "kind", "mux")
	// The stream's own bytes (yamux framing included) for the registry;
	// the bridge's target counters get each connection's bytes as it ends.
	counted := newActiveConn(sc, nil, nil)
	h := &muxHandler{b: b, e: e, log: log}
	srv, err := mux.NewServer(counted, mux.Config{MaxConns: p.Mux.MaxConnsPerStream, OpenTimeout: p.HandshakeTimeout, Window: uint32(p.Mux.Window)}, h)
	if err != nil {
		log.Warn("mux stream failed", "err", err)
		sc.Close()
		b.auditStream(e, "rejected", err.Error(), 0, 0)
		return
	}
	ctx, stop := context.WithCancelCause(b.ctx)
	defer stop(nil)
	e.srv = srv
	e.conns = map[uint32]*connEntry{}
	b.register(e, sc, counted, stop)
	defer b.unregister(e)
	if p.IdleTimeout > 0 {
		// Idle means no byte through the whole stream: a connection that
		// moves data keeps it open.
		watch := newIdleWatch(counted, p.IdleTimeout, func() { stop(idleClose) })
		defer watch.stop()
	}
	// A shutdown (its cause is a close status) tells the operator why.
	stopClose := context.AfterFunc(ctx, func() {
		var ce *stream.CloseError
		if errors.As(context.Cause(ctx), &ce) {
			closeWith(sc, ce.Code, ce.Reason)
		}
	})
	defer stopClose()
	err = srv.Serve(ctx)
	sc.Close()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	// Reads of the stream are the operator's bytes; writes went to it.
	to, from := counted.from.Load(), counted.to.Load()
	reason := closeReason(err, false)
	b.logClosed(log, err, reason, to, from, time.Since(e.start))
	b.auditStream(e, "accepted", reason, to, from)
}

// muxHandler decides the connections of one mux stream.
type muxHandler struct {
	b   *Bridge
	e   *entry
	log *slog.Logger
}

// Open checks the policy and the per-agent limit, dials, and records the
// connection for revocation. Refusals are audited here.
func (h *muxHandler) Open(ctx context.Context, id uint32, req mux.Request) (net.Conn, error) {
	b := h.b
	start := time.Now()
	ce := &connEntry{kind: req.Kind, dest: req.Name}
	refuse := func(code mux.Code, why string) (net.Conn, error) {
		h.auditConn(id, ce, start, "rejected", why, 0, 0)
		return nil, &mux.Refusal{Code: code, Reason: why}
	}
	b.mu.Lock()
	p := b.policy
	if b.closing {
		b.mu.Unlock()
		return refuse(mux.CodeFailure, "agent shutting down")
	}
	if b.muxConns >= p.Mux.MaxConns {
		b.mu.Unlock()
		return refuse(mux.CodeFailure, fmt.Sprintf("too many connections on this device (at most %d)", p.Mux.MaxConns))
	}
	b.muxConns++
	b.mu.Unlock()
	conn, code, why := h.dial(ctx, p, req, ce)
	if conn == nil {
		b.mu.Lock()
		b.muxConns--
		b.mu.Unlock()
		return refuse(code, why)
	}
	b.mu.Lock()
	h.e.conns[id] = ce
	// A reload may have slipped in between the check and now.
	why = connDisallowed(b.policy, ce)
	b.mu.Unlock()
	if why != "" {
		conn.Close()
		b.mu.Lock()
		delete(h.e.conns, id)
		b.muxConns--
		b.mu.Unlock()
		return refuse(mux.CodeNotAllowed, why)
	}
	b.changed()
	return conn, nil
}

// Closed releases the connection and audits it.
func (h *muxHandler) Closed(id uint32, req mux.Request, res mux.Result) {
	b := h.b
	b.mu.Lock()
	ce := h.e.conns[id]
	delete(h.e.conns, id)
	b.muxConns--
	b.mu.Unlock()
	b.toTarget.Add(uint64(max(res.ToTarget, 0)))
	b.fromTarget.Add(uint64(max(res.FromTarget, 0)))
	b.changed()
	if ce == nil {
		ce = &connEntry{kind: req.Kind, dest: req.Name}
	}
	h.auditConn(id, ce, time.Now().Add(-res.Duration), "accepted", res.Reason, res.ToTarget, res.FromTarget)
}

func (h *muxHandler) auditConn(id uint32, ce *connEntry, start time.Time, result, reason string, to, from int64) {
	b := h.b
	b.mu.Lock()
	device := b.device
	b.mu.Unlock()
	b.writeAudit(stream.AuditRecord{
		Time: time.Now(), Side: "device", Event: "connection", Device: device, RequestID: h.e.rid, StreamID: h.e.streamID,
		Stream: h.e.name, Conn: id, Kind: ce.kind.String(), Destination: ce.dest, Target: ce.target,
		Result: result, Reason: reason, BytesToTarget: to, BytesFromTarget: from,
		Start: start, DurationMs: time.Since(start).Milliseconds(),
	})
}

// dial opens the device end of a connection, or says why not.
func (h *muxHandler) dial(ctx context.Context, p Policy, req mux.Request, ce *connEntry) (net.Conn, mux.Code, string) {
	b := h.b
	switch req.Kind {
	case mux.KindTarget:
		t, ok := p.Targets[req.Name]
		if !ok {
			return nil, mux.CodeNotAllowed, fmt.Sprintf("no target named %q", req.Name)
		}
		ce.target = t
	case mux.KindDial:
		host, port, err := config.SplitDest(req.Name)
		if err != nil {
			return nil, mux.CodeAddressUnsupported, fmt.Sprintf("bad destination %q", req.Name)
		}
		ce.host, ce.port = host, port
		target, code, why := b.socksTarget(ctx, p.SocksAllow, host, port)
		if target == "" {
			return nil, code, why
		}
		ce.target = target
		if ap, err := netip.ParseAddrPort(target); err == nil {
			ce.addr = ap.Addr().String()
		}
	default:
		return nil, mux.CodeCommandUnsupported, "unknown request kind"
	}
	conn, err := b.dial(ctx, "tcp", ce.target)
	if err != nil {
		return nil, dialCode(err), err.Error()
	}
	return conn, mux.CodeOK, ""
}

// socksTarget applies the allow-list to host:port and returns the address
// to dial. A host name allowed by name is dialled by name; otherwise it is
// resolved here and the first address a rule allows is dialled, so what is
// checked is what is reached. Nothing is resolved for a port no rule lists.
func (b *Bridge) socksTarget(ctx context.Context, rules []config.SocksRule, host string, port uint16) (string, mux.Code, string) {
	denied := fmt.Sprintf("%s is not allowed by this device's socks allow-list", net.JoinHostPort(host, strconv.Itoa(int(port))))
	portListed := false
	for _, r := range rules {
		portListed = portListed || r.AllowsPort(port)
	}
	if !portListed {
		return "", mux.CodeNotAllowed, denied
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !config.SocksAllows(rules, host, a, port) {
			return "", mux.CodeNotAllowed, denied
		}
		return netip.AddrPortFrom(a.Unmap(), port).String(), mux.CodeOK, ""
	}
	if config.SocksAllows(rules, host, netip.Addr{}, port) {
		return net.JoinHostPort(host, strconv.Itoa(int(port))), mux.CodeOK, ""
	}
	addrs, err := b.resolve(ctx, host)
	if err != nil {
		return "", mux.CodeHostUnreachable, "cannot resolve " + host + ": " + err.Error()
	}
	for _, a := range addrs {
		if config.SocksAllows(rules, host, a, port) {
			return netip.AddrPortFrom(a.Unmap(), port).String(), mux.CodeOK, ""
		}
	}
	return "", mux.CodeNotAllowed, denied
}

// dialCode maps a dial error to the SOCKS reply a client understands.
func dialCode(err error) mux.Code {
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return mux.CodeRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return mux.CodeNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return mux.CodeHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return mux.CodeTTLExpired
	}
	return mux.CodeFailure
}

// parseAddr parses s, invalid when s is empty or not an address.
func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}
