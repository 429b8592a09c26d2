package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

// socksHandshakeTimeout bounds a local client's SOCKS handshake.
const socksHandshakeTimeout = 30 * time.Second

// cmdSocks: porthole socks <device> -D [addr:]port. A SOCKS5 server whose
// CONNECTs go through one multiplexed stream; the device's allow-list
// decides what may be reached (this is ssh -D with the policy on the
// device). A device without multiplexing cannot serve it: that is said
// plainly instead of falling back.
func cmdSocks(ctx context.Context, e *env, args []string, stderr io.Writer) error {
	fs := newFlagSet("socks", stderr)
	var cf connFlags
	cf.register(fs)
	var sf streamFlags
	fs.StringVar(&sf.module, "module", "", "module id, for streams to a module")
	var listen string
	fs.StringVar(&listen, "D", "", "[addr:]port for the SOCKS5 server (addr defaults to 127.0.0.1)")
	var of streamOptsFlags
	of.register(fs, false)
	of.rate = 4
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(extra) != 0 || listen == "" {
		return usagef("usage: porthole socks <device> -D [addr:]port")
	}
	if err := of.check(); err != nil {
		return err
	}
	if !strings.Contains(listen, ":") {
		listen = "127.0.0.1:" + listen
	}
	device := pos[0]
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	c, err := s.deviceClient(ctx, e, device)
	if err != nil {
		return err
	}
	defer c.Close()
	audit, closeAudit, err := of.openAudit(stderr)
	if err != nil {
		return err
	}
	defer closeAudit()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	log := s.log.With("device", device)
	o := &opener{c: c, device: device, sf: sf, of: of, log: log, clock: retry.RealClock()}
	sess := &muxSession{o: o, mode: "on", audit: audit}
	defer sess.close()
	if _, err := sess.client(ctx); err != nil {
		if errors.Is(err, errNoMux) {
			return errors.New("porthole socks needs multiplexed streams, and " + err.Error())
		}
		return err
	}
	log.Info("SOCKS5 listening", "addr", ln.Addr().String())
	if e.onListen != nil {
		e.onListen(ln.Addr())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var n atomic.Int64
	var acceptErr error
	for {
		tc, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				acceptErr = err
			}
			break
		}
		id := n.Add(1)
		wg.Add(1)
		go func() { // owned by cmdSocks through wg
			defer wg.Done()
			serveSocks(ctx, sess, audit, device, tc, log.With("conn", id, "peer", tc.RemoteAddr().String()))
		}()
	}
	cancel()
	wg.Wait()
	log.Info("socks stopped", "connections", n.Load())
	return acceptErr
}

func serveSocks(ctx context.Context, sess *muxSession, audit *stream.AuditLog, device string, tc net.Conn, log *slog.Logger) {
	_ = tc.SetDeadline(time.Now().Add(socksHandshakeTimeout))
	dest, err := mux.ReadSOCKSRequest(tc)
	if err != nil {
		log.Warn("socks handshake failed", "err", err)
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	start := time.Now()
	rec := stream.AuditRecord{Side: "operator", Event: "connection", Device: device, Stream: mux.StreamName, Kind: "dial", Destination: dest, Start: start}
	end := func(result, reason string, to, from int64) {
		rec.Time, rec.Result, rec.Reason, rec.BytesToTarget, rec.BytesFromTarget = time.Now(), result, reason, to, from
		rec.DurationMs = time.Since(start).Milliseconds()
		audit.Write(rec)
	}
	cl, err := sess.client(ctx)
	if err != nil {
		log.Warn("stream failed", "dest", dest, "err", err)
		_ = mux.WriteSOCKSReply(tc, mux.CodeFailure)
		tc.Close()
		end("rejected", err.Error(), 0, 0)
		return
	}
	c, err := cl.Open(ctx, mux.Request{Kind: mux.KindDial, Name: dest})
	if err != nil {
		code := mux.CodeFailure
		var oe *mux.OpenError
		if errors.As(err, &oe) {
			code = oe.Code
		}
		log.Warn("connect refused", "dest", dest, "err", err)
		_ = mux.WriteSOCKSReply(tc, code)
		tc.Close()
		end("rejected", err.Error(), 0, 0)
		return
	}
	rec.Conn = c.ID
	if err := mux.WriteSOCKSReply(tc, mux.CodeOK); err != nil {
		c.Close()
		tc.Close()
		end("accepted", err.Error(), 0, 0)
		return
	}
	log.Info("connected", "dest", dest)
	var to, from mux.Counter
	ends, jerr := joinConn(ctx, tc, cl, c, &to, &from)
	reason := joinReason(ends, jerr, c)
	log.Info("connection closed", "dest", dest, "sent", to.Load(), "received", from.Load(), "reason", reason)
	end("accepted", reason, to.Load(), from.Load())
}
