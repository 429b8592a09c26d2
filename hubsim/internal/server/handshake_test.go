package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/porthole-iot/porthole/hubsim/internal/pki"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// gateRig serves TLS handshakes through one handshake gate on a loopback
// listener; each accepted connection's handshake result goes to results.
type gateRig struct {
	gate    *handshakeGate
	addr    string
	roots   *x509.CertPool
	results chan error
	cancel  context.CancelFunc
}

func newGateRig(t *testing.T, slots int) *gateRig {
	t.Helper()
	ca, err := pki.Load(pki.Options{Dir: t.TempDir(), Names: []string{"hub-eu.local"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &gateRig{gate: newHandshakeGate(slots), addr: ln.Addr().String(), roots: ca.CertPool(), results: make(chan error, 16), cancel: cancel}
	cfg := r.gate.config(ctx, &tls.Config{Certificates: []tls.Certificate{ca.ServerCertificate()}, MinVersion: tls.VersionTLS12})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the rig: ends when the listener closes
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // one handshake; the cleanup closes the connection
				defer wg.Done()
				tc := tls.Server(r.gate.wrap(raw), cfg)
				err := tc.Handshake()
				r.results <- err
				_ = tc.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return r
}

// dial starts a client handshake in its own goroutine; verified (may be
// nil) runs once the client has the server's flight and before it sends
// its Finished, so it can stall the client there. The handshake's result
// arrives on the returned channel, and the connection is closed.
func (r *gateRig) dial(t *testing.T, verified func()) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { // ends with the handshake; waited for through done
		raw, err := net.Dial("tcp", r.addr)
		if err != nil {
			done <- err
			return
		}
		defer raw.Close()
		tc := tls.Client(raw, &tls.Config{ServerName: "hub-eu.local", RootCAs: r.roots, MinVersion: tls.VersionTLS12,
			VerifyConnection: func(tls.ConnectionState) error {
				if verified != nil {
					verified()
				}
				return nil
			}})
		done <- tc.Handshake()
	}()
	return done
}

// recv takes one value from ch, failing the test after waitTimeout.
func recv(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	var got error
	testwait.For(t, waitTimeout, what, func() (bool, string) {
		select {
		case got = <-ch:
			return true, ""
		default:
			return false, "still waiting"
		}
	})
	return got
}

// TestHandshakeGateBounds: with every slot taken, a new handshake waits
// after its ClientHello (the server sends nothing) and completes once a
// slot is free. Before the gate, all handshakes of a connect storm ran at
// once.
func TestHandshakeGateBounds(t *testing.T) {
	r := newGateRig(t, 1)
	r.gate.slots <- struct{}{} // the only slot, busy
	client := r.dial(t, nil)
	testwait.For(t, waitTimeout, "the handshake to wait for a slot", func() (bool, string) {
		n := r.gate.waiting.Load()
		return n == 1, fmt.Sprintf("%d waiting", n)
	})
	select {
	case err := <-client:
		t.Fatalf("handshake finished while every slot was busy: %v", err)
	default:
	}
	<-r.gate.slots // free the slot
	if err := recv(t, client, "the client handshake"); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := recv(t, r.results, "the server handshake"); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if n := len(r.gate.slots); n != 0 {
		t.Errorf("%d slots still held after the handshake", n)
	}
}

// TestHandshakeGateStalledClient: a client that stalls after the server's
// flight (before its Finished) holds no slot, so another device still
// connects through a one-slot gate.
func TestHandshakeGateStalledClient(t *testing.T) {
	r := newGateRig(t, 1)
	stalled, resume := make(chan struct{}), make(chan struct{})
	first := r.dial(t, func() {
		close(stalled)
		<-resume
	})
	testwait.True(t, waitTimeout, "the first client to stall after the server's flight", func() bool {
		select {
		case <-stalled:
			return true
		default:
			return false
		}
	})
	if err := recv(t, r.dial(t, nil), "a second client's handshake while the first is stalled"); err != nil {
		t.Fatalf("second client: %v", err)
	}
	close(resume)
	if err := recv(t, first, "the stalled client's handshake"); err != nil {
		t.Fatalf("stalled client: %v", err)
	}
	for range 2 {
		if err := recv(t, r.results, "the server handshakes"); err != nil {
			t.Errorf("server handshake: %v", err)
		}
	}
	if n := len(r.gate.slots); n != 0 {
		t.Errorf("%d slots still held after both handshakes", n)
	}
}

// TestHandshakeGateCancel: a handshake waiting for a slot fails when the
// server's context ends, and gives nothing back it did not take.
func TestHandshakeGateCancel(t *testing.T) {
	r := newGateRig(t, 1)
	r.gate.slots <- struct{}{}
	client := r.dial(t, nil)
	testwait.True(t, waitTimeout, "the handshake to wait for a slot", func() bool { return r.gate.waiting.Load() == 1 })
	r.cancel()
	if err := recv(t, r.results, "the server handshake to fail"); !errors.Is(err, context.Canceled) {
		t.Errorf("server handshake = %v, want context.Canceled", err)
	}
	if err := recv(t, client, "the client handshake to fail"); err == nil {
		t.Error("client handshake succeeded without the server's flight")
	}
	if n := len(r.gate.slots); n != 1 {
		t.Errorf("%d slots held, want the test's 1", n)
	}
	if n := r.gate.waiting.Load(); n != 0 {
		t.Errorf("%d handshakes still counted as waiting", n)
	}
}
