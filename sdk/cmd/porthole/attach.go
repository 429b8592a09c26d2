package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/porthole-iot/porthole/sdk/stream"
)

// "porthole ssh" opens the device's stream itself, before ssh starts, so a
// refusal or timeout is reported by porthole with the device's reason. ssh
// then reaches that stream through its ProxyCommand, "porthole stdio
// --attach 127.0.0.1:<port>", a plain pipe to a loopback listener the
// parent holds for this one connection. The child proves itself with a
// one-time token passed in the environment ($PORTHOLE_ATTACH_TOKEN, never
// on a command line), so no other local user can take the stream.

const envAttachToken = "PORTHOLE_ATTACH_TOKEN"

// attachTimeout bounds how long the child may take to send the token.
const attachTimeout = 30 * time.Second

// attachment is the parent's side: a listener that hands conn to the first
// client that sends the token.
type attachment struct {
	ln    net.Listener
	token string
	conn  *stream.Conn
	log   *slog.Logger

	wg     sync.WaitGroup
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error // the bridge's end, once done
}

// newAttachment starts serving conn on a loopback port.
func newAttachment(ctx context.Context, conn *stream.Conn, log *slog.Logger) (*attachment, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &attachment{ln: ln, token: hex.EncodeToString(b), conn: conn, log: log, cancel: cancel}
	a.wg.Add(1)
	go a.serve(ctx) // owned by a: Close cancels and waits
	return a, nil
}

func (a *attachment) addr() string { return a.ln.Addr().String() }

func (a *attachment) serve(ctx context.Context) {
	defer a.wg.Done()
	stop := context.AfterFunc(ctx, func() { a.ln.Close() })
	defer stop()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		if !a.check(c) {
			a.log.Warn("refused a local connection without the attach token", "peer", c.RemoteAddr().String())
			c.Close()
			continue
		}
		a.ln.Close() // one connection only
		_, _, err = stream.Bridge(ctx, c, a.conn)
		a.mu.Lock()
		a.err = err
		a.mu.Unlock()
		return
	}
}

// check reads the token line.
func (a *attachment) check(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(attachTimeout))
	line := make([]byte, 0, len(a.token)+1)
	one := make([]byte, 1)
	for len(line) <= len(a.token) {
		if _, err := io.ReadFull(c, one); err != nil {
			return false
		}
		if one[0] == '\n' {
			break
		}
		line = append(line, one[0])
	}
	_ = c.SetReadDeadline(time.Time{})
	return subtle.ConstantTimeCompare(line, []byte(a.token)) == 1
}

// Close ends the listener and the bridge, closes the stream and returns
// how the stream ended (a *streamClosedError when the far end closed it
// with a status).
func (a *attachment) Close() error {
	a.cancel()
	a.ln.Close()
	a.conn.Close()
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	var ce *stream.CloseError
	if errors.As(a.err, &ce) {
		return &streamClosedError{ce}
	}
	return nil
}

// attachStdio is the child's side: pipe stdin and stdout to the parent's
// listener.
func attachStdio(ctx context.Context, e *env, addr string, stdin io.Reader, stdout io.Writer) error {
	token := e.getenv(envAttachToken)
	if token == "" {
		return usagef("--attach is for the ProxyCommand of \"porthole ssh\" only ($%s is not set)", envAttachToken)
	}
	if h, _, err := net.SplitHostPort(addr); err != nil || (h != "127.0.0.1" && h != "::1") {
		return usagef("--attach %q: want a loopback address", addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("attach to porthole ssh: %w", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, strings.TrimSpace(token)+"\n"); err != nil {
		return fmt.Errorf("attach to porthole ssh: %w", err)
	}
	in, restore := pollable(stdin)
	defer restore()
	inDone := make(chan struct{})
	go func() { // owned by attachStdio: waited for below
		defer close(inDone)
		_, _ = io.Copy(c, bufio.NewReader(in))
	}()
	outDone := make(chan struct{})
	go func() { // owned by attachStdio: waited for below
		defer close(outDone)
		_, _ = io.Copy(stdout, c)
	}()
	inOpen, outOpen := true, true
	select {
	case <-inDone:
		inOpen = false
	case <-outDone:
		outOpen = false
	case <-ctx.Done():
	}
	c.Close()
	if outOpen {
		<-outDone
	}
	if inOpen {
		interrupt(in)
		<-inDone
	}
	return nil
}
