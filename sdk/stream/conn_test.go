package stream

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// sendRandom writes n random bytes to w in chunks of varied size and returns
// their SHA-256.
func sendRandom(w io.Writer, n int, seed uint64) ([32]byte, error) {
	h := sha256.New()
	rng := mrand.New(mrand.NewPCG(seed, seed))
	buf := make([]byte, 3*MaxFramePayload)
	for n > 0 {
		k := min(n, 1+rng.IntN(len(buf)))
		rand.Read(buf[:k])
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	return [32]byte(h.Sum(nil)), nil
}

// recvAll reads r to EOF with varied small and large buffers and returns
// the count and SHA-256.
func recvAll(r io.Reader, seed uint64) (int, [32]byte, error) {
	h := sha256.New()
	rng := mrand.New(mrand.NewPCG(seed, seed))
	buf := make([]byte, 2*MaxFramePayload)
	total := 0
	for {
		k := 1 + rng.IntN(len(buf))
		n, err := r.Read(buf[:k])
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			return total, [32]byte(h.Sum(nil)), nil
		}
		if err != nil {
			return total, [32]byte(h.Sum(nil)), err
		}
	}
}

func TestLargeTransferBothWays(t *testing.T) {
	size := 32 << 20
	if testing.Short() {
		size = 4 << 20
	}
	s := newWSServer(t, nil)
	client, server := s.pair(t)

	type result struct {
		sent, got [32]byte
		n         int
		err       error
	}
	// Each side writes size random bytes and then closes, while reading the
	// other side's bytes; the write side closes only after reading all.
	run := func(c *Conn, seed uint64, out *result, wg *sync.WaitGroup) {
		defer wg.Done()
		var rwg sync.WaitGroup
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			var err error
			out.n, out.got, err = recvAll(io.LimitReader(c, int64(size)), seed+100)
			if err != nil {
				out.err = err
			}
		}()
		sum, err := sendRandom(c, size, seed)
		out.sent = sum
		if err != nil {
			out.err = err
		}
		rwg.Wait()
	}
	var a, b result
	var wg sync.WaitGroup
	wg.Add(2)
	go run(client, 1, &a, &wg)
	go run(server, 2, &b, &wg)
	wg.Wait()
	if a.err != nil || b.err != nil {
		t.Fatalf("errors: client %v, server %v", a.err, b.err)
	}
	if a.n != size || b.n != size {
		t.Fatalf("received %d and %d bytes, want %d", a.n, b.n, size)
	}
	if a.sent != b.got || b.sent != a.got {
		t.Fatal("sha256 mismatch")
	}
}

func TestReadSmallBufferSpansFrames(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	ws := server.ws
	for _, m := range []string{"hello", "", "world!"} {
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	buf := make([]byte, 3)
	for len(got) < 4 {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, string(buf[:n]))
	}
	// A Read never joins frames, and empty frames are skipped.
	want := []string{"hel", "lo", "wor", "ld!"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reads = %q, want %q", got, want)
		}
	}
}

func TestWriteSplitsFrames(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	data := make([]byte, 2*MaxFramePayload+10)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() { _, err := client.Write(data); errc <- err }()
	var got []byte
	var sizes []int
	for len(got) < len(data) {
		mt, p, err := server.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt != websocket.BinaryMessage {
			t.Fatalf("message type %d, want binary", mt)
		}
		sizes = append(sizes, len(p))
		got = append(got, p...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data mismatch")
	}
	want := []int{MaxFramePayload, MaxFramePayload, 10}
	if len(sizes) != len(want) || sizes[0] != want[0] || sizes[1] != want[1] || sizes[2] != want[2] {
		t.Fatalf("frame sizes %v, want %v", sizes, want)
	}
}

func TestReadFromOneFramePerRead(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	chunks := [][]byte{[]byte("a"), make([]byte, MaxFramePayload), make([]byte, MaxFramePayload+5), []byte("z")}
	src := &chunkReader{chunks: chunks}
	errc := make(chan error, 1)
	go func() {
		n, err := client.ReadFrom(src)
		if err == nil && n != int64(1+MaxFramePayload+MaxFramePayload+5+1) {
			err = errors.New("short ReadFrom count")
		}
		errc <- err
	}()
	var sizes []int
	total := 0
	for total < 1+MaxFramePayload+MaxFramePayload+5+1 {
		_, p, err := server.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p))
		total += len(p)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		if n == 0 || n > MaxFramePayload {
			t.Fatalf("frame sizes %v: want 1..%d", sizes, MaxFramePayload)
		}
	}
	if sizes[0] != 1 || sizes[len(sizes)-1] != 1 {
		t.Fatalf("frame sizes %v: each source Read should become its own frame", sizes)
	}
}

// chunkReader returns its chunks one Read at a time (split if p is short).
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func TestReadDeadline(t *testing.T) {
	s := newWSServer(t, nil)
	client, _ := s.pair(t)
	if err := client.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the error is sticky
		_, err := client.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read %d: %v, want deadline exceeded", i, err)
		}
	}
}

func TestWriteDeadline(t *testing.T) {
	tests := []struct {
		name   string
		before bool // set the deadline before Write, else while it blocks
	}{
		{"before", true},
		{"during", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newWSServer(t, nil)
			client, _ := s.pair(t) // the server never reads, so Write blocks
			if tt.before {
				client.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			}
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, 1<<20)
				for {
					if _, err := client.Write(buf); err != nil {
						errc <- err
						return
					}
				}
			}()
			if !tt.before {
				time.Sleep(50 * time.Millisecond) // not an assertion: either way the deadline must end Write
				client.SetWriteDeadline(time.Now().Add(-time.Second))
			}
			select {
			case err := <-errc:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Write: %v, want deadline exceeded", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Write did not return after its deadline")
			}
		})
	}
}

func TestPeerCloseIsEOF(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	if _, err := server.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil", got, err)
	}
}

func TestAbruptDropIsError(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	server.ws.NetConn().Close() // no close frame
	_, err := client.Read(make([]byte, 10))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("Read after drop: %v, want CloseError 1006", err)
	}
}

func TestPeerErrorCloseCode(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	msg := websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "peer gone")
	server.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_, err := client.Read(make([]byte, 10))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1011 || ce.Reason != "peer gone" {
		t.Fatalf("Read: %v, want CloseError 1011 peer gone", err)
	}
}

func TestTextFrameIsError(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	server.ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, err := client.Read(make([]byte, 10)); !errors.Is(err, ErrTextFrame) {
		t.Fatalf("Read: %v, want ErrTextFrame", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s := newWSServer(t, nil)
	client, server := s.pair(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, c := range []*Conn{client, server, client, server} {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- c.Close() }()
	}
	wg.Wait()
	errs <- client.Close()
	errs <- server.Close()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	for _, c := range []*Conn{client, server} {
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
		}
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	s := newWSServer(t, nil)
	client, _ := s.pair(t)
	errc := make(chan error, 1)
	go func() { _, err := client.Read(make([]byte, 10)); errc <- err }()
	client.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read: %v, want net.ErrClosed", err)
	}
}

// CloseWith tells the far end why: it reads the status and reason as a
// *CloseError; a reason too long for a close frame is cut at a rune
// boundary; a later Close sends nothing more.
func TestCloseWithReason(t *testing.T) {
	long := strings.Repeat("é", 70) // 140 bytes
	for _, tc := range []struct {
		name, reason, want string
	}{
		{"going away", "agent shutting down", "agent shutting down"},
		{"long reason", long, long[:122]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newWSServer(t, nil)
			client, server := s.pair(t)
			if err := server.CloseWith(CloseGoingAway, tc.reason); err != nil {
				t.Fatal(err)
			}
			server.Close() // idempotent: no second frame
			_, err := client.Read(make([]byte, 10))
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != tc.want {
				t.Fatalf("Read: %v, want CloseError 1001 %q", err, tc.want)
			}
		})
	}
}
