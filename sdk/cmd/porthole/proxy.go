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

	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// cmdProxy: porthole proxy <device> -L [addr:]<port> [--stream ssh]. Each
// accepted connection gets its own stream; Ctrl-C (ctx) closes the listener
// and every bridge, and cmdProxy returns once they are all gone.
func cmdProxy(ctx context.Context, e *env, args []string, stderr io.Writer) error {
	fs := newFlagSet("proxy", stderr)
	var cf connFlags
	cf.register(fs)
	var sf streamFlags
	fs.StringVar(&sf.stream, "stream", "ssh", "stream name (the device's target)")
	fs.StringVar(&sf.module, "module", "", "module id, for streams to a module")
	var listen string
	fs.StringVar(&listen, "L", "", "[addr:]port to listen on (addr defaults to 127.0.0.1)")
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(extra) != 0 || listen == "" {
		return usagef("usage: porthole proxy <device> -L [addr:]<port> [--stream ssh]")
	}
	device := pos[0]
	addr := listen
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + addr
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	t, err := s.findHub(ctx, e, device, false)
	if err != nil {
		return err
	}
	c, err := s.clientFor(t.hub)
	if err != nil {
		return err
	}
	defer c.Close()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	log := s.log.With("device", device, "stream", sf.stream)
	log.Info("listening", "addr", ln.Addr().String())
	if e.onListen != nil {
		e.onListen(ln.Addr())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup // one per accepted connection; waited for before returning
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

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
		go func() { // owned by cmdProxy through wg
			defer wg.Done()
			serveProxyConn(ctx, c, device, sf, tc, log.With("conn", id, "peer", tc.RemoteAddr().String()))
		}()
	}
	cancel()
	ln.Close()
	wg.Wait()
	log.Info("proxy stopped", "connections", n.Load())
	return acceptErr
}

// serveProxyConn bridges one accepted connection to a new stream.
func serveProxyConn(ctx context.Context, c *service.Client, device string, sf streamFlags, tc net.Conn, log *slog.Logger) {
	log.Info("connection accepted")
	conn, err := c.OpenStream(ctx, device, sf.stream, sf.options()...)
	if err != nil {
		log.Warn("stream failed", "err", err)
		tc.Close()
		return
	}
	up, down, err := stream.Bridge(ctx, tc, conn)
	if err != nil && ctx.Err() == nil {
		log.Info("connection closed", "sent", up, "received", down, "err", err)
		return
	}
	log.Info("connection closed", "sent", up, "received", down)
}
