package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// echoTarget is a TCP echo service on loopback for the test's lifetime.
func echoTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() { // owned by the test: cleanup closes ln and waits
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
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echoThrough(t *testing.T, ctx context.Context, c *service.Client, device, msg string) {
	t.Helper()
	conn, err := c.OpenStream(ctx, device, "ssh")
	if err != nil {
		t.Fatalf("open stream via %s: %v", c.HostName(), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
		t.Fatalf("echo through %s: %q %v", c.HostName(), got, err)
	}
}

// TestAgainstHubsim runs the real agent (sdk/dps, sdk/iothub, bridge)
// against hubsim: enroll → the agent provisions and connects → a stream
// reaches a local echo service → the reprovision method moves the device to
// the hub its enrollment now names → streams work there → SIGTERM exits
// cleanly.
func TestAgainstHubsim(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const hubA, hubB = "hub-eu.local", "hub-us.local"
	svc := service.Config{RootCAs: sim.CAPool, DialContext: sim.DialContext}

	cfgPath, stateDir := enrollDev1(t, ctx, sim, hubA, fmt.Sprintf("streams:\n  targets:\n    ssh: %s\n", echoTarget(t)))
	dpsc := newDPSClient(t, sim)
	defer dpsc.Close()

	logs := &syncBuf{}
	defer func() { t.Log(logs.String()) }()
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- Run(ctx, Options{ConfigPath: cfgPath, Log: logs, Version: "it", Signals: sigs,
			DialContext: sim.DialContext, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sigs <- syscall.SIGTERM
			<-done
		}
	}()

	sock := SocketPath(stateDir)
	waitFor := func(what string, ok func(*Status) bool) *Status {
		t.Helper()
		var st *Status
		until, _ := ctx.Deadline()
		testwait.For(t, time.Until(until), "the agent's status to show "+what, func() (bool, string) {
			r, err := Query(ctx, sock, VerbStatus)
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			st = r.Status
			return ok(st), fmt.Sprintf("%+v", st)
		})
		return st
	}
	waitFor("connected to "+hubA, func(s *Status) bool { return s.Connected && s.AssignedHub == hubA })

	hubClient := func(host string) *service.Client {
		cfg := svc
		cfg.ConnectionString = sim.HubConnectionString(host)
		c, err := service.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ca := hubClient(hubA)
	echoThrough(t, ctx, ca, "dev1", "hello through hub A")

	// Point the enrollment at hub B and ask the agent to reprovision.
	e, err := dpsc.GetEnrollment(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	e.IoTHubHostName = hubB
	e.RegistrationState = nil
	if _, err := dpsc.PutEnrollment(ctx, *e); err != nil {
		t.Fatal(err)
	}
	status, resp, err := ca.InvokeMethod(ctx, "dev1", "reprovision", nil, 20*time.Second)
	if err != nil || status != 200 {
		t.Fatalf("reprovision method: %d %s %v", status, resp, err)
	}
	st := waitFor("moved to "+hubB, func(s *Status) bool { return s.Connected && s.AssignedHub == hubB })
	if st.Registrations != 2 {
		t.Errorf("registrations = %d, want 2", st.Registrations)
	}
	echoThrough(t, ctx, hubClient(hubB), "dev1", "hello through hub B")
	if st := waitFor("stream closed", func(s *Status) bool { return s.Streams.Open == 0 }); st.Streams.Accepted != 2 {
		t.Errorf("streams %+v", st.Streams)
	}

	stopped = true
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
}
