package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wsPair returns the two ends of a real device-stream WebSocket over TLS on
// loopback: device is what Accept hands the bridge, service is the
// operator's end.
func wsPair(t *testing.T) (device, service net.Conn) {
	t.Helper()
	got := make(chan net.Conn, 1)
	up := websocket.Upgrader{ReadBufferSize: stream.MaxFramePayload, WriteBufferSize: stream.MaxFramePayload}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		got <- stream.NewConn(ws)
	}))
	t.Cleanup(srv.Close)
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	dev, err := stream.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https")+"/bridges/x", "token", stream.DialOptions{TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	svc := <-got
	t.Cleanup(func() { dev.Close(); svc.Close() })
	return dev, svc
}

// fakeReq is a stream request whose Accept opens a wsPair.
type fakeReq struct {
	t         *testing.T
	name      string
	acceptErr error
	decided   chan string   // "accept" or "reject"
	service   chan net.Conn // the service end after Accept
}

func newReq(t *testing.T, name string) *fakeReq {
	return &fakeReq{t: t, name: name, decided: make(chan string, 1), service: make(chan net.Conn, 1)}
}

func (r *fakeReq) Name() string { return r.name }

func (r *fakeReq) Accept(ctx context.Context) (net.Conn, error) {
	if r.acceptErr != nil {
		r.decided <- "accept-failed"
		return nil, r.acceptErr
	}
	dev, svc := wsPair(r.t)
	r.service <- svc
	r.decided <- "accept"
	return dev, nil
}

func (r *fakeReq) Reject(ctx context.Context) error {
	r.decided <- "reject"
	return nil
}

func (r *fakeReq) wait(t *testing.T) string {
	t.Helper()
	select {
	case d := <-r.decided:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no decision")
		return ""
	}
}

// openStream hands the bridge a request for stream name, requires it to be
// accepted, and returns the service end of the stream.
func openStream(t *testing.T, b *Bridge, name string) net.Conn {
	t.Helper()
	r := newReq(t, name)
	b.Handle(context.Background(), r)
	if d := r.wait(t); d != "accept" {
		t.Fatalf("decision %q", d)
	}
	return <-r.service
}

// echoServer runs a TCP echo service on loopback until the test ends.
func echoServer(t *testing.T) string {
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

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newBridge(t *testing.T, p Policy) (*Bridge, *logBuf) {
	logs := &logBuf{}
	b := New(Config{Policy: p, Device: "dev1", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() {
		b.Close()
		t.Log(logs.String())
	})
	return b, logs
}

func drain(t *testing.T, b *Bridge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func waitOpen(t *testing.T, b *Bridge, want int) {
	t.Helper()
	testwait.For(t, 20*time.Second, fmt.Sprintf("%d open streams", want), func() (bool, string) {
		n := b.Stats().Open
		return n == want, fmt.Sprintf("%d open", n)
	})
}

func TestByteExact8MiB(t *testing.T) {
	b, logs := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}})
	svc := openStream(t, b, "ssh")

	const size = 8 << 20
	want := make([]byte, size)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() { // ends when all is written or the conn fails
		_, err := svc.Write(want)
		werr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(svc, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("echoed bytes differ")
	}
	svc.Close()
	drain(t, b)
	out := logs.String()
	for _, s := range []string{"stream closed", "stream=ssh", "device=dev1", "to_target=8388608", "from_target=8388608", "duration="} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
	if st := b.Stats(); st.Accepted != 1 || st.Open != 0 || st.BytesToTarget != size || st.BytesFromTarget != size {
		t.Errorf("stats %+v", st)
	}
}

// refusedCause is how this platform names the refusal of a dial to addr:
// "connection refused" (checked on amd64, where the table of errno texts
// is the host's); under qemu-user for MIPS the host's errno number
// reaches the MIPS table untranslated and reads "errno 111", as
// packaging/scripts/test-cross.sh notes.
func refusedCause(addr string) string {
	_, err := net.Dial("tcp", addr)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Sprintf("dialling %s did not fail with an errno: %v", addr, err)
	}
	if runtime.GOARCH == "amd64" && errno.Error() != "connection refused" {
		return fmt.Sprintf("on amd64 the refusal reads %q, not \"connection refused\"", errno.Error())
	}
	return errno.Error()
}

func TestRejections(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     func(t *testing.T) Policy
		stream     string
		wantLog    string
		wantReason func(p Policy) string
	}{
		{"unknown name", func(t *testing.T) Policy { return Policy{Targets: map[string]string{"ssh": echoServer(t)}} }, "telnet", ErrUnknownStream.Error(),
			func(Policy) string { return health.ReasonUnknownStream }},
		// The operator reads which target and why (porthole prints it after
		// "refused stream ...: ").
		{"target down", func(t *testing.T) Policy { return Policy{Targets: map[string]string{"ssh": deadAddr(t)}} }, "ssh", "target unreachable",
			func(p Policy) string {
				return "target " + p.Targets["ssh"] + " is not answering (" + refusedCause(p.Targets["ssh"]) + ")"
			}},
		{"no targets", func(t *testing.T) Policy { return Policy{} }, "ssh", ErrUnknownStream.Error(),
			func(Policy) string { return health.ReasonUnknownStream }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuf{}
			now := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)
			var changes atomic.Int32
			p := tc.policy(t)
			wantReason := tc.wantReason(p)
			b := New(Config{Policy: p, Device: "dev1", Logger: slog.New(slog.NewTextHandler(logs, nil)),
				Now: func() time.Time { return now }, Changed: func() { changes.Add(1) }})
			t.Cleanup(func() { b.Close() })
			req := newReq(t, tc.stream)
			b.Handle(context.Background(), req)
			if d := req.wait(t); d != "reject" {
				t.Fatalf("decision %q, want reject", d)
			}
			drain(t, b)
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			st := b.Stats()
			if st.Rejected != 1 || st.Accepted != 0 {
				t.Errorf("stats %+v", st)
			}
			if lr := st.LastRejection; lr == nil || lr.Stream != tc.stream || lr.Reason != wantReason || !lr.At.Equal(now) {
				t.Errorf("last rejection %+v, want %s/%s at %v", lr, tc.stream, wantReason, now)
			}
			if changes.Load() < 1 {
				t.Errorf("Changed called %d times, want at least once", changes.Load())
			}
		})
	}
}

func TestMaxConcurrent(t *testing.T) {
	b, _ := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}, MaxConcurrent: 2})
	var svcs []net.Conn
	for range 2 {
		svcs = append(svcs, openStream(t, b, "ssh"))
	}
	third := newReq(t, "ssh")
	b.Handle(context.Background(), third)
	if d := third.wait(t); d != "reject" {
		t.Fatalf("third stream: %q, want reject", d)
	}
	svcs[0].Close()
	waitOpen(t, b, 1)
	fourth := newReq(t, "ssh")
	b.Handle(context.Background(), fourth)
	if d := fourth.wait(t); d != "accept" {
		t.Fatalf("after one closed: %q, want accept", d)
	}
	svcs = append(svcs, <-fourth.service)
	// Both open streams still carry bytes.
	for _, c := range svcs[1:] {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q %v", buf, err)
		}
		c.Close()
	}
	drain(t, b)
}

func TestManyStreamsAtOnce(t *testing.T) {
	const n = 16
	b, _ := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}, MaxConcurrent: n})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		r := newReq(t, "ssh")
		b.Handle(context.Background(), r)
		if d := r.wait(t); d != "accept" {
			t.Fatalf("stream %d: %q", i, d)
		}
		svc := <-r.service
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer svc.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 100<<10)
			go svc.Write(msg) // ends with svc
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(svc, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- errors.New("mixed-up bytes")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	drain(t, b)
}

func TestAcceptFailureFreesSlot(t *testing.T) {
	b, logs := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}, MaxConcurrent: 1})
	r := newReq(t, "ssh")
	r.acceptErr = errors.New("hub said no")
	b.Handle(context.Background(), r)
	if d := r.wait(t); d != "accept-failed" {
		t.Fatalf("decision %q", d)
	}
	waitOpen(t, b, 0)
	if !strings.Contains(logs.String(), "hub said no") {
		t.Errorf("log:\n%s", logs.String())
	}
}

func TestIdleTimeout(t *testing.T) {
	b, logs := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}, IdleTimeout: 100 * time.Millisecond})
	svc := openStream(t, b, "ssh")
	// One round trip, then silence: the bridge must close the stream.
	if _, err := svc.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(svc, buf); err != nil {
		t.Fatal(err)
	}
	svc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := svc.Read(buf); err == nil {
		t.Fatal("read data after the idle timeout")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("stream not closed by the idle timeout")
	}
	drain(t, b)
	if out := logs.String(); !strings.Contains(out, "reason=\"idle timeout\"") || !strings.Contains(out, "to_target=2") {
		t.Errorf("log:\n%s", out)
	}
}

func TestShutdownDrains(t *testing.T) {
	b, logs := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}})
	svc := openStream(t, b, "ssh")

	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() { done <- b.Shutdown(ctx) }()

	// New streams are refused while draining…
	testwait.For(t, 20*time.Second, "new requests to be refused after Shutdown", func() (bool, string) {
		late := newReq(t, "ssh")
		b.Handle(context.Background(), late)
		d := late.wait(t)
		if d == "reject" {
			return true, ""
		}
		(<-late.service).Close()
		return false, "request answered " + d
	})
	// …the open one keeps working…
	if _, err := svc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(svc, one); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a stream open", err)
	default:
	}
	// …and Shutdown returns once it ends.
	svc.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), ErrShuttingDown.Error()) {
		t.Errorf("log:\n%s", logs.String())
	}
}

func TestShutdownCutsAfterGrace(t *testing.T) {
	b, logs := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}})
	svc := openStream(t, b, "ssh")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v", err)
	}
	svc.SetReadDeadline(time.Now().Add(20 * time.Second))
	// The operator's side learns why (status 1001 and a reason).
	var ce *stream.CloseError
	if _, err := svc.Read(make([]byte, 1)); !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "agent shutting down" {
		t.Fatalf("service end read %v, want CloseError 1001 agent shutting down", err)
	}
	if !strings.Contains(logs.String(), "reason=shutdown") {
		t.Errorf("log:\n%s", logs.String())
	}
	if err := b.Shutdown(context.Background()); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestSetPolicyIsLive(t *testing.T) {
	b, _ := newBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}})
	r := newReq(t, "web")
	b.Handle(context.Background(), r)
	if d := r.wait(t); d != "reject" {
		t.Fatalf("decision %q", d)
	}
	b.SetPolicy(Policy{Targets: map[string]string{"web": echoServer(t)}})
	r = newReq(t, "web")
	b.Handle(context.Background(), r)
	if d := r.wait(t); d != "accept" {
		t.Fatalf("after SetPolicy: %q", d)
	}
	(<-r.service).Close()
	drain(t, b)
}
