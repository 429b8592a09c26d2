//go:build linux

package relay

import (
	"bytes"
	"io"
	"syscall"
	"testing"
)

// TestCorkReleasedAfterEachFrame checks that the relay finds the TCP socket
// under each side's TLS connection (otherwise corking would silently do
// nothing) and that no frame leaves the socket corked.
func TestCorkReleasedAfterEachFrame(t *testing.T) {
	e := newEnv(t, Config{})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	for _, n := range []int{1, maxFramePayload, 3*maxFramePayload + 5} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if _, err := dev.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(svc, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: read %v or data differ", n, err)
		}
	}
	e.relay.mu.Lock()
	conns := e.relay.streams[tk.ID].conns
	e.relay.mu.Unlock()
	for side, ws := range conns {
		k := newCorker(ws)
		if k.rc == nil {
			t.Fatalf("%s side: no TCP socket found under the WebSocket", sideNames[side])
		}
		var v int
		var serr error
		if err := k.rc.Control(func(fd uintptr) {
			v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK)
		}); err != nil || serr != nil {
			t.Fatalf("%s side: getsockopt: %v %v", sideNames[side], err, serr)
		}
		if v != 0 {
			t.Fatalf("%s side: TCP_CORK is %d after the frames were forwarded", sideNames[side], v)
		}
	}
}
