package e2e

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// TestKeepaliveBlackhole: the device (the real agent in a network namespace
// of its own) and the operator (porthole proxy on this side) share a
// multiplexed stream through hubsim; then every packet between the device
// and hubsim is dropped (nftables in the device's namespace: no FIN, no
// RST, like a NAT that forgot the mapping). Both ends must notice within
// the configured keepalive timeout and close the stream with that reason.
func TestKeepaliveBlackhole(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	hubsimtest.RequireTool(t, "ip", "iproute2")
	hubsimtest.RequireTool(t, "nft", "nftables")
	n := newChaosNet(t)
	// The target listens on this side of the veth pair, reachable from
	// the device's namespace.
	ln, err := net.Listen("tcp", n.hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	// The echo connections are the test's: with the path blackholed, the
	// agent's close may never reach them, so they are closed and waited
	// for at the end.
	var (
		echoes sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn // guarded by mu
	)
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		echoes.Wait()
	}()
	echoes.Add(1)
	go func() { // owned by the test: ends when ln is closed
		defer echoes.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			echoes.Add(1)
			go func() { defer echoes.Done(); io.Copy(c, c); c.Close() }()
		}
	}()
	const timeout = 4 * time.Second
	w := newWorldWith(t, worldOptions{
		targets:     map[string]string{"echo": ln.Addr().String()},
		agentExec:   n.exec(binaries(t).agent),
		simHost:     n.hostIP,
		streamsYAML: "  keepalive:\n    interval: 1s\n    timeout: 4s\n",
	})
	w.dumpOnFailure()
	port := freePort(t)
	p := w.startPorthole(t, "porthole-proxy", "multiplexed stream open", "proxy", deviceID, "--mux", "on",
		"--keepalive", "1s", "--keepalive-timeout", timeout.String(), "-L", "127.0.0.1:"+strconv.Itoa(port)+":echo")
	defer p.stop(t, true)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// Idle but healthy for three timeouts: nothing closes.
	time.Sleep(3 * timeout) // pacing, not synchronisation: the connection stays idle on purpose
	if p.logContains("keepalive") || w.agent.logContains("keepalive timeout") {
		t.Fatalf("a healthy idle stream was closed\n%s\n%s", p.tail(10), w.agent.tail(10))
	}
	c.Write([]byte("y"))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("idle connection broken: %v", err)
	}

	n.partition(t)
	start := time.Now()
	var opAt, devAt time.Duration
	testwait.For(t, timeout+10*time.Second, "both ends to notice the blackhole (keepalive timeout)", func() (bool, string) {
		if opAt == 0 && p.logContains("keepalive timeout") {
			opAt = time.Since(start)
		}
		if devAt == 0 && w.agent.logContains("keepalive timeout") {
			devAt = time.Since(start)
		}
		return opAt != 0 && devAt != 0, fmt.Sprintf("operator after %v, device after %v (0: not yet)\noperator:\n%s\ndevice:\n%s", opAt, devAt, p.tail(15), w.agent.tail(15))
	})
	t.Logf("blackhole noticed by the operator after %v and by the device after %v (timeout %v)", opAt.Round(time.Millisecond), devAt.Round(time.Millisecond), timeout)
	// Within the timeout plus scheduling slack on a loaded machine.
	for who, d := range map[string]time.Duration{"operator": opAt, "device": devAt} {
		if d > timeout+3*time.Second {
			t.Errorf("%s noticed after %v, timeout %v", who, d, timeout)
		}
	}
	// The local connection was closed too.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("local connection still open: %v", err)
	}
	n.heal(t)
	w.stop()
}
