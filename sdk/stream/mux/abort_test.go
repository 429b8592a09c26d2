package mux

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// tcpServer runs serve on every accepted connection until cleanup, which
// closes the listener and the connections and waits for them.
func tcpServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() { // owned by the cleanup above
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().String()
}

// flood writes to c until a write fails: a download that never ends.
func flood(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// resetAfter reads 64 KiB of c, then resets it (RST, not FIN).
func resetAfter(c net.Conn) {
	io.ReadFull(c, make([]byte, 64<<10))
	c.(*net.TCPConn).SetLinger(0)
}

// reset closes c with an RST, as a client killed mid-transfer does.
func reset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// TestFailedEndTearsDownTheOther checks that when one end of a connection
// inside the stream fails mid-transfer (its local socket reset), the
// other end is torn down at once, not after CloseTimeout: a yamux Close is
// only a half-close, so without more the far end keeps writing into a
// window nobody reads (or keeps a target sending for nobody).
func TestFailedEndTearsDownTheOther(t *testing.T) {
	tests := []struct {
		name   string
		target func(net.Conn)
		// drive runs the operator's application side: app is its end of
		// the local connection that Join bridges into the stream.
		drive func(t *testing.T, app net.Conn)
		// reason checks the device's close reason for the connection.
		reason func(string) bool
		// deviceSaid is whether the operator gets a close notice.
		deviceSaid bool
	}{
		{
			// The operator's client goes away during an endless download.
			name:   "operator side reset during download",
			target: flood,
			drive: func(t *testing.T, app net.Conn) {
				if _, err := io.ReadFull(app, make([]byte, 1<<20)); err != nil {
					t.Fatal(err)
				}
				reset(app)
			},
			reason: func(r string) bool { return strings.HasPrefix(r, "reset by operator: ") },
		},
		{
			// The device's target resets during an endless upload.
			name:   "target reset during upload",
			target: resetAfter,
			drive: func(t *testing.T, app net.Conn) {
				go flood(app) // ends when app is closed below or by Join
			},
			// The device's next write to the target meets its reset:
			// ECONNRESET when the RST arrives during the write, EPIPE
			// ("broken pipe") when it was processed before (seen under
			// qemu on MIPS). Either is the target's reset.
			reason:     func(r string) bool { return strings.Contains(r, "reset") || strings.Contains(r, "broken pipe") },
			deviceSaid: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tcpServer(t, tt.target)
			h := newTestHandler(map[string]string{"t": target})
			// A close timeout far beyond the waits below: the other end
			// must not need it.
			cl, srv := pair(t, h, Config{CloseTimeout: time.Minute})
			mc, err := cl.Open(context.Background(), Request{Kind: KindTarget, Name: "t"})
			if err != nil {
				t.Fatal(err)
			}
			app, local := tcpPair(t)
			defer app.Close()
			joined := make(chan error, 1)
			go func() { // waited for below
				_, err := Join(context.Background(), local, mc, nil, nil)
				joined <- err
			}()
			tt.drive(t, app)
			testwait.For(t, 10*time.Second, "the operator's Join to end", func() (bool, string) {
				select {
				case <-joined:
					return true, ""
				default:
					return false, "still joined"
				}
			})
			app.Close()
			testwait.For(t, 10*time.Second, "the device to close its end", func() (bool, string) {
				n := srv.NumConns()
				return n == 0, "device connections open: " + strconv.Itoa(n)
			})
			var res Result
			testwait.For(t, 10*time.Second, "the device's close result", func() (bool, string) {
				var ok bool
				res, ok = h.result(mc.ID)
				return ok, "no result yet"
			})
			if !tt.reason(res.Reason) {
				t.Errorf("device's close reason %q", res.Reason)
			}
			if tt.deviceSaid {
				if got := mc.WaitReason(10 * time.Second); got == "" {
					t.Error("the operator got no close notice")
				}
			} else if got := mc.Reason(); got != "" {
				// The device closed because the operator asked: no notice.
				t.Errorf("operator got notice %q", got)
			}
		})
	}
}
