package e2e

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// TestProxyReopen: porthole proxy's multiplexed stream ends because the
// device's agent dies (kill -9); the connection inside it ends, a
// connection made while the device is offline is refused, and the proxy
// keeps running. Once the agent is back, a new connection through the
// same local port works: the proxy opened a new stream (after its
// backoff).
func TestProxyReopen(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	w := newWorld(t, "", map[string]string{"echo": echoTCP(t)})
	w.dumpOnFailure()
	defer w.stop()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	audit := filepath.Join(w.dir, "operator-audit.jsonl")
	p := startProc(t, w.dir, "porthole-proxy", nil, binaries(t).porthole,
		"proxy", deviceID, "-L", addr+":echo", "--audit", audit, "--config", w.opConfig)
	defer p.stop(t, true)
	running := func(what string) {
		t.Helper()
		if p.exited() {
			t.Fatalf("porthole proxy exited (%v) %s\n%s", p.err, what, p.tail(30))
		}
	}
	testwait.For(t, startTimeout, "porthole proxy to listen over a multiplexed stream", func() (bool, string) {
		running("while starting")
		return p.logContains("msg=listening") && p.logContains("multiplexed stream open"), p.tail(10)
	})
	if err := echoThrough(addr, 64<<10); err != nil {
		t.Fatalf("echo before the drop: %v\n%s", err, p.tail(20))
	}
	// A connection that stays open in the stream.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("echo on the open connection: %v", err)
	}

	w.agent.kill()
	// The stream is gone: the connection in it ends (bounded by its
	// deadline).
	if n, _ := io.Copy(io.Discard, c); n != 0 {
		t.Errorf("%d unexpected bytes on the connection after the drop", n)
	}
	// The proxy closed it (not only half-closed it) and said why.
	testwait.For(t, opTimeout, "porthole proxy to close the connection that was in the dropped stream", func() (bool, string) {
		running("when its stream dropped")
		return p.logContains(`reason="multiplexed stream`), p.tail(10)
	})
	// The device is offline: a new connection is refused, not hung.
	if err := echoThrough(addr, 4096); err == nil {
		t.Fatal("a connection worked while the device's agent was dead")
	}
	running("after a connection failed while the device was offline")
	testwait.For(t, 30*time.Second, "the operator's audit line for the connection refused while the device was offline", func() (bool, string) {
		recs := auditRecords(t, audit)
		for _, r := range recs {
			if r.Event == "connection" && r.Result == "rejected" && strings.Contains(r.Reason, "DeviceNotOnline") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", recs)
	})

	w.startAgent()
	testwait.For(t, opTimeout, "a new connection through the proxy to work after the agent came back", func() (bool, string) {
		running("while the device came back")
		err := echoThrough(addr, 64<<10)
		if err != nil {
			return false, err.Error() + "\n" + p.tail(10)
		}
		return true, ""
	})
	if err := echoThrough(addr, 256<<10); err != nil {
		t.Fatalf("second connection after the reopen: %v\n%s", err, p.tail(20))
	}
	running("after the reopen")
	if n := p.logCount("multiplexed stream open"); n != 2 {
		t.Errorf("the proxy opened %d multiplexed streams, want 2 (the first and one after the drop)\n%s", n, p.tail(30))
	}
	if strings.Count(p.readLog(), "msg=listening") != 1 {
		t.Errorf("the proxy restarted its listener\n%s", p.tail(30))
	}
}
