package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	b := <-acc
	if b == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

type bridgeResult struct {
	aToB, bToA int64
	err        error
}

func startBridge(ctx context.Context, a, b net.Conn) <-chan bridgeResult {
	ch := make(chan bridgeResult, 1)
	go func() {
		x, y, err := Bridge(ctx, a, b)
		ch <- bridgeResult{x, y, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan bridgeResult) bridgeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Bridge did not return")
		return bridgeResult{}
	}
}

// TestBridgeWSToTCP bridges a stream Conn to a local TCP socket, as the
// agent does with sshd, and moves data both ways byte-exact.
func TestBridgeWSToTCP(t *testing.T) {
	size := 8 << 20
	if testing.Short() {
		size = 1 << 20
	}
	s := newWSServer(t, nil)
	remote, agentSide := s.pair(t) // remote = operator end, agentSide = device end
	local, sshd := tcpPair(t)      // local = bridged socket, sshd = the service

	res := startBridge(context.Background(), agentSide, local)

	// operator → sshd and sshd → operator, concurrently.
	type side struct {
		sent, got [32]byte
		n         int
		err       error
	}
	run := func(w io.Writer, r io.Reader, seed uint64) <-chan side {
		ch := make(chan side, 1)
		go func() {
			var s side
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.n, s.got, s.err = recvAll(io.LimitReader(r, int64(size)), seed+7)
			}()
			sum, err := sendRandom(w, size, seed)
			<-done
			s.sent = sum
			if err != nil {
				s.err = err
			}
			ch <- s
		}()
		return ch
	}
	op := run(remote, remote, 1)
	sv := run(sshd, sshd, 2)
	a, b := <-op, <-sv
	if a.err != nil || b.err != nil {
		t.Fatalf("errors: %v, %v", a.err, b.err)
	}
	if a.sent != b.got || b.sent != a.got || a.n != size || b.n != size {
		t.Fatal("data mismatch through Bridge")
	}
	// sshd ends the session: Bridge closes the stream, the operator sees EOF.
	sshd.Close()
	r := wait(t, res)
	if r.err != nil || r.aToB != int64(size) || r.bToA != int64(size) {
		t.Fatalf("Bridge = %d, %d, %v; want %d both ways, nil", r.aToB, r.bToA, r.err, size)
	}
	if n, err := remote.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("operator Read after sshd closed = %d, %v; want EOF", n, err)
	}
}

func TestBridgeEnds(t *testing.T) {
	tests := []struct {
		name    string
		end     func(cancel context.CancelFunc, a, b, peerA, peerB net.Conn)
		wantErr error
	}{
		{"ctx cancelled", func(cancel context.CancelFunc, _, _, _, _ net.Conn) { cancel() }, context.Canceled},
		{"a's peer closes", func(_ context.CancelFunc, _, _, peerA, _ net.Conn) { peerA.Close() }, nil},
		{"b's peer closes", func(_ context.CancelFunc, _, _, _, peerB net.Conn) { peerB.Close() }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peerA, a := tcpPair(t)
			b, peerB := tcpPair(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res := startBridge(ctx, a, b)
			io.WriteString(peerA, "ping")
			buf := make([]byte, 4)
			if _, err := io.ReadFull(peerB, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("through bridge: %q, %v", buf, err)
			}
			tt.end(cancel, a, b, peerA, peerB)
			r := wait(t, res)
			if !errors.Is(r.err, tt.wantErr) || (tt.wantErr == nil && r.err != nil) {
				t.Fatalf("Bridge err = %v, want %v", r.err, tt.wantErr)
			}
			if r.aToB != 4 {
				t.Fatalf("aToB = %d, want 4", r.aToB)
			}
			// Both bridged ends are closed: the peers see EOF.
			for _, p := range []net.Conn{peerA, peerB} {
				p.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := p.Read(buf); err == nil {
					t.Fatal("peer still connected after Bridge returned")
				}
			}
		})
	}
}

// A context cancelled with a *CloseError cause closes the stream side with
// that status and reason: the far end learns why (an agent shutting down).
func TestBridgeCancelCauseSetsCloseStatus(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	tcpA, _ := tcpPair(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := startBridge(ctx, server, tcpA)
	cancel(&CloseError{Code: CloseGoingAway, Reason: "agent shutting down"})
	r := wait(t, done)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Bridge = %v, want context.Canceled", r.err)
	}
	_, err := client.Read(make([]byte, 10))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseGoingAway || ce.Reason != "agent shutting down" {
		t.Fatalf("far end read %v, want CloseError 1001 agent shutting down", err)
	}
}
