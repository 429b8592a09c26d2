package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// countConn records the size of every Write while on is set.
type countConn struct {
	net.Conn
	c *writeCounter
}

type writeCounter struct {
	mu    sync.Mutex
	on    bool  // guarded by mu
	sizes []int // guarded by mu
}

func (w *writeCounter) start() {
	w.mu.Lock()
	w.on, w.sizes = true, nil
	w.mu.Unlock()
}

func (w *writeCounter) get() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sizes)
}

func (c countConn) Write(p []byte) (int, error) {
	c.c.mu.Lock()
	if c.c.on {
		c.c.sizes = append(c.c.sizes, len(p))
	}
	c.c.mu.Unlock()
	return c.Conn.Write(p)
}

type countListener struct {
	net.Listener
	c *writeCounter
}

func (l countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countConn{c, l.c}, nil
}

// newWrappedEnv is newEnv with the server's TCP listener passed through wrap
// before TLS, as hubsim's server would with WrapListener.
func newWrappedEnv(tb testing.TB, cfg Config, wrap func(net.Listener) net.Listener) *env {
	tb.Helper()
	e := &env{events: &syncBuffer{}}
	cfg.EventLog = e.events
	cfg.BaseURL = func(string) string { return "wss://" + e.srv.Listener.Addr().String() }
	e.relay = New(cfg)
	e.srv = httptest.NewUnstartedServer(e.relay)
	e.srv.Listener = wrap(e.srv.Listener)
	e.srv.StartTLS()
	tb.Cleanup(func() {
		e.relay.Close()
		e.srv.Close()
	})
	return e
}

// TestWrapListenerOneWritePerFrame checks that on connections accepted
// through WrapListener the relay writes each forwarded frame with one
// system call (crypto/tls alone would make five of a 64 KiB frame), and
// that the bytes arrive intact both ways.
func TestWrapListenerOneWritePerFrame(t *testing.T) {
	wc := &writeCounter{}
	e := newWrappedEnv(t, Config{}, func(ln net.Listener) net.Listener {
		return WrapListener(countListener{ln, wc})
	})
	tk := e.create(t, StreamSpec{})
	dev := e.mustDial(t, tk.URL, tk.DeviceToken)
	svc := e.mustDial(t, tk.URL, tk.ServiceToken)
	tests := []struct {
		name     string
		from, to io.ReadWriter
		size     int
		frames   int
	}{
		{"device to service, 1 byte", dev, svc, 1, 1},
		{"device to service, one full frame", dev, svc, maxFramePayload, 1},
		{"service to device, three frames", svc, dev, 2*maxFramePayload + 9, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := make([]byte, tt.size)
			for i := range msg {
				msg[i] = byte(i * 7)
			}
			wc.start()
			errc := make(chan error, 1)
			go func() { _, err := tt.from.Write(msg); errc <- err }()
			got := make([]byte, tt.size)
			if _, err := io.ReadFull(tt.to, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("data differ")
			}
			if sizes := wc.get(); len(sizes) != tt.frames {
				t.Fatalf("relay made %d writes (sizes %v) for %d frames", len(sizes), sizes, tt.frames)
			}
		})
	}
	// Closing one side still reaches the other as a normal close.
	dev.Close()
	if err := readErr(t, svc); !errors.Is(err, io.EOF) {
		t.Fatalf("service read after device closed: %v, want EOF", err)
	}
}

// failConn fails every Write after the first n.
type failConn struct {
	net.Conn
	writes []int
	n      int
}

var errFailWrite = errors.New("write failed")

func (f *failConn) Write(p []byte) (int, error) {
	if len(f.writes) >= f.n {
		return 0, errFailWrite
	}
	f.writes = append(f.writes, len(p))
	return len(p), nil
}

func TestBatchConnGathersAndSticksToErrors(t *testing.T) {
	tests := []struct {
		name    string
		n       int // writes that succeed
		held    [][]byte
		want    []int
		wantErr error
	}{
		{"gathered into one write", 10, [][]byte{[]byte("ab"), []byte("cde")}, []int{5}, nil},
		{"nothing gathered, nothing written", 10, nil, nil, nil},
		{"oversized write goes straight out", 10, [][]byte{[]byte("ab"), make([]byte, batchCap+1), []byte("c")}, []int{2, batchCap + 1, 1}, nil},
		{"flush failure is sticky", 0, [][]byte{[]byte("ab")}, nil, errFailWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &failConn{n: tt.n}
			b := &batchConn{Conn: fc}
			b.hold()
			for _, p := range tt.held {
				if _, err := b.Write(p); err != nil {
					t.Fatalf("held Write: %v", err)
				}
			}
			if err := b.release(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("release: %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(fc.writes, tt.want) {
				t.Fatalf("writes %v, want %v", fc.writes, tt.want)
			}
			_, err := b.Write([]byte("x"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("unheld Write: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && fc.writes[len(fc.writes)-1] != 1 {
				t.Fatal("unheld Write was not passed straight through")
			}
		})
	}
}
