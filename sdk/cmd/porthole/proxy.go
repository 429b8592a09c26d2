package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

// cmdProxy: porthole proxy <device> -L [addr:]port[:target] ... By default
// every forward shares one multiplexed stream (reopened with backoff when
// it drops); against a device without multiplexing each connection gets
// its own stream, paced within the hub's limits. Ctrl-C (ctx) closes the
// listeners and every connection, and cmdProxy returns once they are gone.
func cmdProxy(ctx context.Context, e *env, args []string, stderr io.Writer) error {
	fs := newFlagSet("proxy", stderr)
	var cf connFlags
	cf.register(fs)
	var sf streamFlags
	fs.StringVar(&sf.stream, "stream", "ssh", "target for a -L that names none")
	fs.StringVar(&sf.module, "module", "", "module id, for streams to a module")
	var listens multiFlag
	fs.Var(&listens, "L", "[addr:]port[:target] to listen on (addr defaults to 127.0.0.1; repeatable)")
	var of streamOptsFlags
	of.register(fs, true)
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(extra) != 0 || len(listens) == 0 {
		return usagef("usage: porthole proxy <device> -L [addr:]port[:target] [-L ...] [--stream ssh] [--mux auto|on|off]")
	}
	if err := of.check(); err != nil {
		return err
	}
	var fwds []forwardSpec
	for _, l := range listens {
		f, err := parseForward(l, sf.stream)
		if err != nil {
			return usagef("%v", err)
		}
		fwds = append(fwds, f)
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lc net.ListenConfig
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, f := range fwds {
		ln, err := lc.Listen(ctx, "tcp", f.listen)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	log := s.log.With("device", device)
	o := &opener{c: c, device: device, sf: sf, of: of, log: log, clock: retry.RealClock()}
	p := &proxy{o: o, audit: audit, log: log}
	if of.mux != "off" {
		p.sess = &muxSession{o: o, mode: of.mux, audit: audit}
		defer p.sess.close()
		if _, err := p.sess.client(ctx); err != nil {
			if !errors.Is(err, errNoMux) || of.mux == "on" {
				return err
			}
			log.Warn("one stream per connection: " + err.Error())
		}
	}
	for i, ln := range lns {
		log.Info("listening", "addr", ln.Addr().String(), "target", fwds[i].target)
		if e.onListen != nil {
			e.onListen(ln.Addr())
		}
	}

	var wg sync.WaitGroup // accept loops and connections; waited for before returning
	stop := context.AfterFunc(ctx, func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	defer stop()
	var n atomic.Int64
	errs := make(chan error, len(lns))
	for i, ln := range lns {
		wg.Add(1)
		go func() { // owned by cmdProxy through wg
			defer wg.Done()
			for {
				tc, err := ln.Accept()
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
						errs <- err
						cancel()
					}
					return
				}
				id := n.Add(1)
				wg.Add(1)
				go func() { // owned by cmdProxy through wg
					defer wg.Done()
					p.serve(ctx, fwds[i].target, tc, log.With("conn", id, "target", fwds[i].target, "peer", tc.RemoteAddr().String()))
				}()
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	log.Info("proxy stopped", "connections", n.Load())
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// proxy serves the accepted connections of cmdProxy.
type proxy struct {
	o     *opener
	sess  *muxSession // nil with --mux off
	audit *stream.AuditLog
	log   *slog.Logger
}

// serve bridges one accepted connection to target: inside the mux stream
// when the device offers one, else over a stream of its own.
func (p *proxy) serve(ctx context.Context, target string, tc net.Conn, log *slog.Logger) {
	log.Info("connection accepted")
	start := time.Now()
	rec := stream.AuditRecord{Side: "operator", Device: p.o.device, Destination: target, Start: start}
	if p.sess != nil {
		cl, err := p.sess.client(ctx)
		if err == nil {
			c, err := cl.Open(ctx, mux.Request{Kind: mux.KindTarget, Name: target})
			rec.Event, rec.Stream, rec.Kind = "connection", mux.StreamName, "target"
			if err != nil {
				log.Warn("connection refused", "err", err)
				tc.Close()
				p.auditEnd(rec, "rejected", err.Error(), 0, 0)
				return
			}
			rec.Conn = c.ID
			var to, from mux.Counter
			ends, jerr := joinConn(ctx, tc, cl, c, &to, &from)
			reason := joinReason(ends, jerr, c)
			if r := c.Reason(); r != "" {
				log.Warn("connection closed by the device", "reason", r)
			}
			log.Info("connection closed", "sent", to.Load(), "received", from.Load(), "reason", reason)
			p.auditEnd(rec, "accepted", reason, to.Load(), from.Load())
			return
		}
		if !errors.Is(err, errNoMux) || p.sess.mode == "on" {
			// (--mux on: a connection never falls back to a stream of
			// its own.)
			log.Warn("stream failed", "err", err)
			tc.Close()
			rec.Event, rec.Stream, rec.Kind = "connection", mux.StreamName, "target"
			p.auditEnd(rec, "rejected", err.Error(), 0, 0)
			return
		}
	}
	rec.Event, rec.Stream, rec.Kind = "stream", target, "plain"
	op, err := p.o.open(ctx, target)
	if err != nil {
		log.Warn("stream failed", "err", err)
		tc.Close()
		p.auditEnd(rec, "rejected", err.Error(), 0, 0)
		return
	}
	rec.StreamID = op.streamID
	up, down, err := stream.Bridge(ctx, tc, op.conn)
	reason := "closed"
	var ce *stream.CloseError
	switch {
	case errors.As(err, &ce):
		reason = "closed by device: " + ce.Reason
		log.Warn("stream closed by the device", "code", ce.Code, "reason", ce.Reason)
	case err != nil && ctx.Err() == nil:
		reason = err.Error()
	}
	log.Info("connection closed", "sent", up, "received", down, "reason", reason)
	p.auditEnd(rec, "accepted", reason, up, down)
}

func (p *proxy) auditEnd(rec stream.AuditRecord, result, reason string, to, from int64) {
	rec.Time, rec.Result, rec.Reason, rec.BytesToTarget, rec.BytesFromTarget = time.Now(), result, reason, to, from
	rec.DurationMs = time.Since(rec.Start).Milliseconds()
	p.audit.Write(rec)
}
