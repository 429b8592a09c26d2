package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/porthole-iot/porthole/sdk/retry"

	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/stream"
)

// streamFlags are the flags naming the stream.
type streamFlags struct {
	stream string
	module string
}

func (f *streamFlags) options() []service.StreamOption {
	if f.module != "" {
		return []service.StreamOption{service.WithModule(f.module)}
	}
	return nil
}

// cmdStdio: porthole stdio <device> [--stream ssh]. One stream bridged to
// stdin and stdout, for ssh's ProxyCommand.
func cmdStdio(ctx context.Context, e *env, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("stdio", stderr)
	var cf connFlags
	cf.register(fs)
	var sf streamFlags
	fs.StringVar(&sf.stream, "stream", "ssh", "stream name (the device's target)")
	fs.StringVar(&sf.module, "module", "", "module id, for a stream to a module")
	var of streamOptsFlags
	of.register(fs, false)
	fs.StringVar(&cf.attach, "attach", "", "internal: the loopback address \"porthole ssh\" serves its stream on")
	pos, extra, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(extra) != 0 {
		return usagef("usage: porthole stdio <device> [--stream ssh]")
	}
	if err := of.check(); err != nil {
		return err
	}
	if cf.attach != "" {
		return attachStdio(ctx, e, cf.attach, stdin, stdout)
	}
	s, err := loadSettings(e, &cf, stderr)
	if err != nil {
		return err
	}
	device := s.stripSuffix(pos[0])
	audit, closeAudit, err := of.openAudit(stderr)
	if err != nil {
		return err
	}
	defer closeAudit()
	start := time.Now()
	rec := stream.AuditRecord{Side: "operator", Event: "stream", Device: device, Stream: sf.stream, Kind: "plain", Destination: sf.stream, Start: start}
	// The device's hub is looked up (and a stale lookup refreshed once);
	// the request is paced and a 429 waited out; a refusal carries the
	// device's reported reason.
	var op opened
	err = s.withDevice(ctx, e, device, func(c *service.Client, _ target) error {
		o := &opener{c: c, device: device, sf: sf, of: of, log: s.log, clock: retry.RealClock(), throttleOnly: true}
		asked := time.Now()
		var err error
		op, err = o.open(ctx, sf.stream)
		return s.streamError(ctx, c, device, sf.stream, asked, err)
	})
	if err != nil {
		rec.Time, rec.Result, rec.Reason = time.Now(), "rejected", err.Error()
		audit.Write(rec)
		return err
	}
	s.log.Debug("stream open", "device", device, "stream", sf.stream)
	up, down, err := pumpStdio(ctx, op.conn, stdin, stdout)
	reason := "closed"
	var ce *stream.CloseError
	switch {
	case errors.As(err, &ce):
		reason = "closed by device: " + ce.Reason
	case ctx.Err() != nil:
		reason = "interrupted"
	case err != nil:
		reason = err.Error()
	}
	rec.StreamID, rec.Time, rec.Result, rec.Reason = op.streamID, time.Now(), "accepted", reason
	rec.BytesToTarget, rec.BytesFromTarget, rec.DurationMs = up, down, time.Since(start).Milliseconds()
	audit.Write(rec)
	return err
}

// pumpStdio copies stdin to the stream and the stream to stdout until either
// side ends or ctx is done, then closes the stream. A device stream has no
// half-close, so stdin's EOF ends the stream too (ssh closes its end of the
// ProxyCommand's stdin only when it is done).
//
// The stdin copy runs in a goroutine that pumpStdio starts and waits for. A
// read from stdin cannot always be interrupted: when stdin is an *os.File,
// pumpStdio makes it pollable (see pollable) and interrupts the read with a
// deadline; when stdin is an io.Closer it is closed; any other reader must
// end by itself.
func pumpStdio(ctx context.Context, conn *stream.Conn, stdin io.Reader, stdout io.Writer) (up, down int64, _ error) {
	in, restore := pollable(stdin)
	defer restore()

	inDone := make(chan error, 1)
	go func() { // owned by pumpStdio: waited for below
		n, err := conn.ReadFrom(in)
		up = n
		inDone <- err
	}()
	outDone := make(chan error, 1)
	go func() { // owned by pumpStdio: waited for below
		n, err := conn.WriteTo(stdout)
		down = n
		outDone <- err
	}()

	var err, outErr error
	inOpen, outOpen := true, true
	select {
	case err = <-inDone:
		inOpen = false
	case err = <-outDone:
		outErr, outOpen = err, false
	case <-ctx.Done():
		err = ctx.Err()
	}
	conn.Close() // ends both copies on the stream side
	if outOpen {
		outErr = <-outDone
	}
	if inOpen {
		interrupt(in)
		<-inDone
	}
	// The far end closed with a status: say so, whichever copy noticed
	// first (a write only sees the stream gone, the read sees why).
	var ce *stream.CloseError
	if ctx.Err() == nil && errors.As(outErr, &ce) {
		return up, down, &streamClosedError{ce}
	}
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return up, down, nil // interrupted, or a copy saw the stream close under it
	}
	return up, down, err
}

// streamClosedError reports a stream the far end (the device's agent, or
// the streaming endpoint on its behalf) closed with a status other than a
// normal closure, so that an ssh user sees why the session ended rather
// than only ssh's "Broken pipe".
type streamClosedError struct{ ce *stream.CloseError }

func (e *streamClosedError) Error() string {
	msg := fmt.Sprintf("stream closed by the far end: status %d", e.ce.Code)
	if name := closeStatusName(e.ce.Code); name != "" {
		msg += " (" + name + ")"
	}
	if e.ce.Reason != "" {
		msg += ": " + e.ce.Reason
	}
	return msg
}

func (e *streamClosedError) Unwrap() error { return e.ce }

// closeStatusName names the RFC 6455 §7.4.1 status codes a stream ends
// with.
func closeStatusName(code int) string {
	switch code {
	case 1001:
		return "going away"
	case 1002:
		return "protocol error"
	case 1003:
		return "unsupported data"
	case 1006:
		return "connection dropped without a close frame"
	case 1008:
		return "policy violation"
	case 1009:
		return "message too big"
	case 1011:
		return "internal error"
	}
	return ""
}

// interrupt makes a blocked read of r return.
func interrupt(r io.Reader) {
	type deadliner interface{ SetReadDeadline(time.Time) error }
	if d, ok := r.(deadliner); ok {
		if d.SetReadDeadline(time.Unix(1, 0)) == nil {
			return
		}
	}
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
}
