package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// watches reports how many serving contexts the broker watches and how
// many connections each holds.
func (b *Broker) watches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for _, w := range b.watch {
		out = append(out, w.n)
	}
	return out
}

// Connections served under one context share one watch of it; cancelling
// the context disconnects all of them, and a later ServeConn under it
// refuses at once.
func TestServeConnSharedContext(t *testing.T) {
	p := newFake("hub/")
	b, err := New(Config{Personalities: []Personality{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 5
	done := make(chan error, n)
	for i := range n {
		srv, cli := net.Pipe()
		defer cli.Close()
		go func() { done <- b.ServeConn(ctx, srv, "mqtt") }()
		rc := &rawClient{t: t, conn: cli, br: newReader(cli)}
		rc.connect("dev"+strconv.Itoa(i), "hub/dev"+strconv.Itoa(i), 0)
	}
	if w := b.watches(); len(w) != 1 || w[0] != n {
		t.Fatalf("watches %v, want one of %d connections", w, n)
	}
	cancel()
	for range n {
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("ServeConn = %v, want context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("ServeConn did not return after cancel")
		}
	}
	for i := range n {
		p.rec.waitKind(t, "disconnected", "dev"+strconv.Itoa(i))
	}
	if w := b.watches(); len(w) != 0 {
		t.Errorf("watches after cancel %v", w)
	}
	srv, cli := net.Pipe()
	defer cli.Close()
	if err := b.ServeConn(ctx, srv, "mqtt"); !errors.Is(err, context.Canceled) {
		t.Errorf("ServeConn on a done context = %v", err)
	}
	if _, err := srv.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("connection left open: %v", err)
	}
}

// A context that outlives its connections is no longer watched once they end.
func TestServeConnContextForgotten(t *testing.T) {
	p := newFake("hub/")
	b, err := New(Config{Personalities: []Personality{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	for i := range 3 {
		srv, cli := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- b.ServeConn(ctx, srv, "mqtt") }()
		rc := &rawClient{t: t, conn: cli, br: newReader(cli)}
		id := "dev" + strconv.Itoa(i)
		rc.connect(id, "hub/"+id, 0)
		if w := b.watches(); len(w) != 1 || w[0] != 1 {
			t.Fatalf("watches %v while connected", w)
		}
		cli.Close()
		<-done
		if w := b.watches(); len(w) != 0 {
			t.Fatalf("watches %v after the connection ended", w)
		}
	}
	// The background context needs no watch at all.
	srv, cli := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- b.ServeConn(context.Background(), srv, "mqtt") }()
	rc := &rawClient{t: t, conn: cli, br: newReader(cli)}
	rc.connect("bg", "hub/bg", 0)
	if w := b.watches(); len(w) != 0 {
		t.Errorf("watches %v for context.Background", w)
	}
	cli.Close()
	<-done
}

// Cancelling the serving context aborts a TLS handshake the client never
// finishes, long before the connect timeout.
func TestServeConnContextAbortsHandshake(t *testing.T) {
	p := newFake("hub/")
	b, err := New(Config{Personalities: []Personality{p}, ConnectTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	serverTLS, _ := testTLS(t)
	srv, cli := net.Pipe()
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.ServeConn(ctx, tls.Server(srv, serverTLS), "mqtt") }()
	testwait.True(t, waitTimeout, "ServeConn to watch its context", func() bool { return len(b.watches()) > 0 })
	cancel() // the client never says hello
	select {
	case err := <-done:
		if err == nil {
			t.Error("ServeConn returned nil")
		}
	case <-time.After(waitTimeout):
		t.Fatal("handshake not aborted by the context")
	}
}
