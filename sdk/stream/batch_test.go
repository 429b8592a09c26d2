package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// recConn records every Write that reaches it; failAt > 0 makes the
// failAt-th Write fail.
type recConn struct {
	net.Conn // nil in unit tests; only Write is used there

	mu     sync.Mutex
	writes [][]byte // guarded by mu
	failAt int      // guarded by mu
	counts bool     // guarded by mu: record only while set
}

var errWriteFailed = errors.New("write failed")

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	rec := c.counts || c.Conn == nil
	if rec {
		c.writes = append(c.writes, bytes.Clone(p))
		if c.failAt > 0 && len(c.writes) == c.failAt {
			c.mu.Unlock()
			return 0, errWriteFailed
		}
	}
	c.mu.Unlock()
	if c.Conn == nil {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// record starts recording and forgets earlier writes.
func (c *recConn) record() {
	c.mu.Lock()
	c.counts, c.writes = true, nil
	c.mu.Unlock()
}

func (c *recConn) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []int
	for _, w := range c.writes {
		s = append(s, len(w))
	}
	return s
}

func TestBatchConn(t *testing.T) {
	big := make([]byte, batchCap+1)
	rand.Read(big)
	type step struct {
		op   string // "w": write data, "hold", "release"
		data []byte
	}
	w := func(s string) step { return step{op: "w", data: []byte(s)} }
	hold, release := step{op: "hold"}, step{op: "release"}
	tests := []struct {
		name   string
		steps  []step
		failAt int
		want   []int // sizes of the writes that reached the connection
		err    error // release's error
	}{
		{name: "not held passes through", steps: []step{w("ab"), w("cde")}, want: []int{2, 3}},
		{name: "held gathers until release", steps: []step{hold, w("ab"), w("cde"), w("f"), release}, want: []int{6}},
		{name: "empty hold writes nothing", steps: []step{hold, release}},
		{name: "writes after release pass through", steps: []step{hold, w("ab"), release, w("c")}, want: []int{2, 1}},
		{name: "full buffer flushes early", steps: []step{hold, w("ab"), {op: "w", data: big[:batchCap-2]}, w("cd"), release},
			want: []int{batchCap, 2}},
		{name: "oversized write goes straight out", steps: []step{hold, w("ab"), {op: "w", data: big}, w("cd"), release},
			want: []int{2, batchCap + 1, 2}},
		{name: "flush error is reported by release", steps: []step{hold, w("ab"), release}, failAt: 1, want: []int{2}, err: errWriteFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recConn{failAt: tt.failAt}
			b := newBatchConn(rc)
			var sent []byte
			var err error
			for _, s := range tt.steps {
				switch s.op {
				case "w":
					if _, werr := b.Write(s.data); werr != nil {
						t.Fatalf("Write: %v", werr)
					}
					sent = append(sent, s.data...)
				case "hold":
					b.hold()
				case "release":
					err = b.release()
				}
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("release error %v, want %v", err, tt.err)
			}
			if got := rc.sizes(); !slices.Equal(got, tt.want) {
				t.Fatalf("writes %v, want %v", got, tt.want)
			}
			if tt.err != nil {
				// The error is sticky for both the writer and crypto/tls.
				if _, werr := b.Write([]byte("x")); !errors.Is(werr, tt.err) {
					t.Fatalf("Write after failure: %v, want %v", werr, tt.err)
				}
				if rerr := b.release(); !errors.Is(rerr, tt.err) {
					t.Fatalf("release after failure: %v, want %v", rerr, tt.err)
				}
				return
			}
			if got := bytes.Join(rc.writes, nil); !bytes.Equal(got, sent) {
				t.Fatal("bytes reordered or lost")
			}
		})
	}
}

// dialRecorded dials s with the TCP connection wrapped in a recConn.
func dialRecorded(t *testing.T, s *wsServer) (*Conn, *Conn, *recConn) {
	t.Helper()
	var rc *recConn
	opts := DialOptions{
		TLSConfig: s.tlsConfig(),
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			rc = &recConn{Conn: c}
			return rc, nil
		},
	}
	c, err := Dial(context.Background(), s.url(), "tok", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc := NewConn(s.accept(t))
	t.Cleanup(func() { sc.Close() })
	return c, sc, rc
}

// TestOneSystemWritePerFrame checks that a dialled Conn hands each frame to
// the TCP connection with one Write, although crypto/tls splits a 64 KiB
// frame into five records, for both Write and ReadFrom.
func TestOneSystemWritePerFrame(t *testing.T) {
	tests := []struct {
		name   string
		send   func(c *Conn, data []byte) error
		size   int
		frames int
	}{
		{"Write one frame", func(c *Conn, p []byte) error { _, err := c.Write(p); return err }, MaxFramePayload, 1},
		{"Write three frames", func(c *Conn, p []byte) error { _, err := c.Write(p); return err }, 2*MaxFramePayload + 7, 3},
		{"ReadFrom", func(c *Conn, p []byte) error {
			_, err := c.ReadFrom(&chunkReader{chunks: [][]byte{p[:MaxFramePayload], p[MaxFramePayload:]}})
			return err
		}, MaxFramePayload + 100, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server, rc := dialRecorded(t, newWSServer(t, nil))
			data := make([]byte, tt.size)
			rand.Read(data)
			rc.record()
			errc := make(chan error, 1)
			go func() { errc <- tt.send(client, data) }()
			got := make([]byte, tt.size)
			if _, err := io.ReadFull(server, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("data mismatch")
			}
			sizes := rc.sizes()
			if len(sizes) != tt.frames {
				t.Fatalf("%d writes to the TCP connection (sizes %v), want one per frame (%d)", len(sizes), sizes, tt.frames)
			}
			for _, n := range sizes[:len(sizes)-1] {
				if n < MaxFramePayload {
					t.Fatalf("write sizes %v: a full frame went out in pieces", sizes)
				}
			}
		})
	}
}

// TestWriteToWholeFrames checks that WriteTo hands each frame to its writer
// in one Write, not one per TLS record, and never joins two frames.
func TestWriteToWholeFrames(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	var frames [][]byte
	for _, n := range []int{MaxFramePayload, 1, 40000, 0, MaxFramePayload, 17} {
		p := make([]byte, n)
		rand.Read(p)
		frames = append(frames, p)
	}
	want := bytes.Join(frames, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range frames {
			if err := server.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
				return
			}
		}
		server.Close()
	}()
	defer func() { <-done }()
	rc := &recConn{}
	n, err := client.WriteTo(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int(n) != len(want) || !bytes.Equal(bytes.Join(rc.writes, nil), want) {
		t.Fatalf("WriteTo moved %d bytes, want %d, or they differ", n, len(want))
	}
	if got, wantSizes := rc.sizes(), []int{MaxFramePayload, 1, 40000, MaxFramePayload, 17}; !slices.Equal(got, wantSizes) {
		t.Fatalf("writes %v, want one per non-empty frame %v", got, wantSizes)
	}
}

// TestBatchConnCloseSendsHeld checks that Close sends what is gathered:
// Conn.Close may run between a frame's write and its release, and its close
// frame then waits in the batch.
func TestBatchConnCloseSendsHeld(t *testing.T) {
	a, c := tcpPair(t)
	b := newBatchConn(a)
	b.hold()
	if _, err := b.Write([]byte("frame+close")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "frame+close" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if err := b.release(); err == nil {
		// The bytes went out with Close; a write after it must fail.
		if _, err := b.Write([]byte("x")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
	}
}
