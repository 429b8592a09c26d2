//go:build linux

package relay

import (
	"net"
	"syscall"

	"github.com/gorilla/websocket"
)

// corker sets TCP_CORK on the TCP connection under a WebSocket's TLS while
// the relay writes one frame. crypto/tls writes every record (at most
// 16 KiB) with its own system call, and with TCP_NODELAY each would leave
// as its own segment and wake the receiver; corked, a 64 KiB frame leaves
// as one segment when the cork comes off. The cork is taken off right after
// the frame, so it never delays data. Control frames written by other
// goroutines meanwhile simply join the corked segment.
type corker struct {
	rc      syscall.RawConn // nil: not a TCP connection, corking is a no-op
	on, off func(fd uintptr)
}

// newCorker finds the TCP connection under ws's TLS connection.
func newCorker(ws *websocket.Conn) *corker {
	k := &corker{}
	c := ws.NetConn()
	if u, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = u.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return k
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return k
	}
	k.rc = rc
	// Both closures are made once, so corking allocates nothing per frame.
	k.on = func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) }
	k.off = func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 0) }
	return k
}

// hold corks the socket: partial segments wait for release. Errors are
// ignored: at worst the frame leaves in more segments.
func (k *corker) hold() {
	if k.rc != nil {
		_ = k.rc.Control(k.on)
	}
}

// release takes the cork off, which sends what it held back.
func (k *corker) release() error {
	if k.rc != nil {
		_ = k.rc.Control(k.off)
	}
	return nil
}
