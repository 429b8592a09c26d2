package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// echoListener is a TCP echo service that half-closes at EOF.
func echoListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// muxDevice is a fake device that serves multiplexed streams with named
// targets and an allow function for dials, like the agent does.
type muxDevice struct {
	targets map[string]string
	allow   func(dest string) bool
}

func (d muxDevice) Open(ctx context.Context, id uint32, req mux.Request) (net.Conn, error) {
	addr := d.targets[req.Name]
	if req.Kind == mux.KindDial {
		if d.allow == nil || !d.allow(req.Name) {
			return nil, &mux.Refusal{Code: mux.CodeNotAllowed, Reason: req.Name + " not allowed"}
		}
		addr = req.Name
		if h, p, _ := net.SplitHostPort(addr); h == "localhost" {
			addr = "127.0.0.1:" + p
		}
	}
	if addr == "" {
		return nil, &mux.Refusal{Code: mux.CodeNotAllowed, Reason: "no target " + req.Name}
	}
	var dd net.Dialer
	return dd.DialContext(ctx, "tcp", addr)
}

func (muxDevice) Closed(uint32, mux.Request, mux.Result) {}

func (d muxDevice) serve(ctx context.Context, name string, c net.Conn) {
	if name != mux.StreamName {
		io.Copy(c, c)
		return
	}
	srv, err := mux.NewServer(c, mux.Config{MaxConns: 200}, d)
	if err != nil {
		return
	}
	srv.Serve(ctx)
}

// startProxy runs porthole proxy with args and returns the listening
// addresses, in -L order, and a stop function returning its error.
func startProxy(t *testing.T, sim *hubsimtest.Sim, n int, args ...string) ([]string, *syncBuffer, func() error) {
	t.Helper()
	p := runProxy(t, sim, n, args...)
	return p.addrs, p.logs, p.stop
}

// runningProxy is a porthole proxy running in this process.
type runningProxy struct {
	addrs []string    // listening addresses, in -L order
	logs  *syncBuffer // its stderr
	done  chan error  // receives runEnv's result; read it through stop
	stop  func() error
}

// ended reports whether the proxy has returned on its own.
func (p *runningProxy) ended() bool { return len(p.done) > 0 }

// runProxy starts porthole proxy with args and waits until it listens on
// its n forwards.
func runProxy(t *testing.T, sim *hubsimtest.Sim, n int, args ...string) *runningProxy {
	t.Helper()
	e := testEnv(t, nil)
	addrc := make(chan net.Addr, n)
	e.onListen = func(a net.Addr) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	p := &runningProxy{logs: &syncBuffer{}, done: make(chan error, 1)}
	go func() {
		p.done <- runEnv(ctx, e, append(append([]string{"proxy", "dev1"}, args...), simFlags(sim)...), nil, io.Discard, p.logs)
	}()
	for range n {
		select {
		case a := <-addrc:
			p.addrs = append(p.addrs, a.String())
		case err := <-p.done:
			cancel()
			t.Fatalf("proxy ended: %v\n%s", err, p.logs.String())
		case <-time.After(60 * time.Second):
			cancel()
			t.Fatalf("proxy not listening\n%s", p.logs.String())
		}
	}
	stopped := false
	p.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-p.done
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// sendExact sends size random bytes through addr to an echo target and
// checks what comes back. With halfClose it ends its sending side and reads
// to EOF; without (a plain stream has no half-close) it reads size bytes.
func sendExact(addr string, size int, halfClose bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	go func() {
		c.Write(data)
		if halfClose {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	var r io.Reader = c
	if !halfClose {
		r = io.LimitReader(c, int64(size))
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%s: %d bytes back of %d, sha256 differs", addr, n, size)
	}
	return nil
}

func auditLines(t *testing.T, path string) []stream.AuditRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []stream.AuditRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r stream.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestProxyMuxForwards: two forwards share one multiplexed stream; 100
// concurrent connections arrive byte-exact; the operator's audit file has
// one line per connection.
func TestProxyMuxForwards(t *testing.T) {
	sim := hubsimtest.New(t)
	dev := startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = muxDevice{targets: map[string]string{"web": echoListener(t), "ssh": echoListener(t)}}.serve
	})
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	addrs, logs, stop := startProxy(t, sim, 2, "-L", "127.0.0.1:0:web", "-L", "127.0.0.1:0:ssh", "--audit", audit)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendExact(addrs[i%2], 32<<10+i*101, true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := dev.Requests(); len(got) != 1 || got[0] != mux.StreamName {
		t.Errorf("stream requests %v, want one %s", got, mux.StreamName)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := auditLines(t, audit)
	conns := 0
	for _, r := range recs {
		if r.Event == "connection" {
			conns++
			if r.Side != "operator" || r.Result != "accepted" || r.Conn == 0 || r.BytesToTarget != r.BytesFromTarget || r.Kind != "target" {
				t.Errorf("record %+v", r)
			}
		}
	}
	if conns != n {
		t.Errorf("%d connection records, want %d\n%s", conns, n, logs.String())
	}
	if st, _ := os.Stat(audit); st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v", st.Mode())
	}
}

// TestProxyPacedWithoutMux: against a device without multiplexing, 15
// connections at once each get a stream of their own; the hub's 5 new
// streams per second answer some requests with 429, and the proxy waits
// and retries instead of dropping any connection.
func TestProxyPacedWithoutMux(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) { c.Accept = func(n string) bool { return n != mux.StreamName } })
	// --stream-rate 100: no pacing of our own, so the hub throttles.
	addrs, logs, stop := startProxy(t, sim, 1, "-L", "127.0.0.1:0:ssh", "--stream-rate", "100")
	const n = 15
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendExact(addrs[0], 1000+i, false)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	stop()
	out := logs.String()
	if !strings.Contains(out, "one stream per connection") {
		t.Errorf("no fallback message:\n%s", out)
	}
	if !strings.Contains(out, "stream request delayed") || !strings.Contains(out, "429") {
		t.Errorf("the hub never throttled (or the proxy did not say so); the test proves nothing:\n%s", out)
	}
}

// TestSocksCurl: curl --socks5-hostname through porthole socks reaches an
// HTTP server the device allows; a destination it does not allow gets
// SOCKS reply 2 (not allowed) and an audit line.
func TestSocksCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is needed for this test and is missing")
		}
		t.Skip("curl not installed")
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the device side, host %s\n", r.Host)
	}))
	defer web.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(web.URL, "http://"))
	allowed := "localhost:" + port
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = muxDevice{allow: func(d string) bool { return d == allowed }}.serve
	})
	e := testEnv(t, nil)
	addrc := make(chan net.Addr, 1)
	e.onListen = func(a net.Addr) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- runEnv(ctx, e, append([]string{"socks", "dev1", "-D", "127.0.0.1:0", "--audit", audit}, simFlags(sim)...), nil, io.Discard, &stderr)
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("socks ended: %v\n%s", err, stderr.String())
	}
	run := func(url string) (string, int) {
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, curl, "-sS", "--max-time", "30", "--socks5-hostname", addr.String(), url).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	out, code := run("http://" + allowed + "/")
	if code != 0 || out != "hello from the device side, host "+allowed+"\n" {
		t.Fatalf("allowed: exit %d, output %q\n%s", code, out, stderr.String())
	}
	out, code = run("http://localhost:1/")
	// curl 97: the proxy handshake failed; it names the SOCKS reply.
	if code == 0 || !strings.Contains(out, "SOCKS") {
		t.Fatalf("disallowed: exit %d, output %q", code, out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var rejected, accepted int
	for _, r := range auditLines(t, audit) {
		switch {
		case r.Event == "connection" && r.Result == "rejected" && r.Destination == "localhost:1" && strings.Contains(r.Reason, "not allowed"):
			rejected++
		case r.Event == "connection" && r.Result == "accepted" && r.Destination == allowed && r.BytesFromTarget > 0:
			accepted++
		}
	}
	if rejected != 1 || accepted != 1 {
		t.Errorf("audit: %d rejected, %d accepted\n%+v", rejected, accepted, auditLines(t, audit))
	}
}

// TestSocksNeedsMux: against a device without multiplexing porthole socks
// says so and sends nothing on a stream.
func TestSocksNeedsMux(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) { c.Accept = func(n string) bool { return n != mux.StreamName } })
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	err := runEnv(ctx, testEnv(t, nil), append([]string{"socks", "dev1", "-D", "127.0.0.1:0"}, simFlags(sim)...), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "needs multiplexed streams") {
		t.Fatalf("got %v", err)
	}
}

func TestParseForward(t *testing.T) {
	tests := []struct {
		in, listen, target string
		bad                bool
	}{
		{"2222", "127.0.0.1:2222", "ssh", false},
		{"0.0.0.0:2222", "0.0.0.0:2222", "ssh", false},
		{"8080:web", "127.0.0.1:8080", "web", false},
		{"127.0.0.2:8080:web", "127.0.0.2:8080", "web", false},
		{"[::1]:8080:web", "[::1]:8080", "web", false},
		{"web", "", "", true},
		{"8080:", "", "", true},
		{"host:web", "", "", true},
	}
	for _, tc := range tests {
		f, err := parseForward(tc.in, "ssh")
		if tc.bad != (err != nil) || f.listen != tc.listen || f.target != tc.target {
			t.Errorf("%q: %+v, %v", tc.in, f, err)
		}
	}
}

// TestProxyReopensAfterDrop: the proxy's multiplexed stream is cut by the
// hub's relay while a reply comes back (a cut-stream fault); the
// connections in it end at once with the stream's end as their reason,
// the proxy keeps running, and the next connection through the same local
// port gets a new multiplexed stream and works.
func TestProxyReopensAfterDrop(t *testing.T) {
	sim := hubsimtest.New(t)
	dev := startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = muxDevice{targets: map[string]string{"echo": echoListener(t)}}.serve
	})
	// Streams that start while the fault is on are cut once 256 KiB have
	// crossed the relay.
	cut := sim.AddFault(hubsimtest.Fault{Kind: hubsimtest.FaultCutStream, Device: "dev1", AfterBytes: 256 << 10})
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	p := runProxy(t, sim, 1, "-L", "127.0.0.1:0:echo", "--audit", audit)
	addr := p.addrs[0]
	if err := sendExact(addr, 1000, true); err != nil {
		t.Fatalf("echo before the cut: %v\n%s", err, p.logs.String())
	}
	// A connection that stays open, idle, across the cut.
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = held.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// 200 KiB out, then its echo crosses 256 KiB: the stream is cut while
	// the reply comes back, after this side has finished sending.
	const sent = 200 << 10
	if err := sendExact(addr, sent, true); err == nil {
		t.Fatalf("the whole echo came back through a stream cut after 256 KiB: the fault did not apply, the test proves nothing\n%s", p.logs.String())
	}
	sim.ClearFault(cut.ID)
	// Both connections went down with their stream: the proxy closes them
	// (not merely half-closes them, nor passes the cut on as the device's
	// end of the reply) and records why.
	var heldRec, cutRec stream.AuditRecord
	testwait.For(t, 30*time.Second, "the operator's audit lines for the connections in the cut stream", func() (bool, string) {
		for _, r := range auditLines(t, audit) {
			switch {
			case r.Event == "connection" && r.BytesToTarget == 1 && r.BytesFromTarget == 1:
				heldRec = r
			case r.Event == "connection" && r.BytesToTarget == sent:
				cutRec = r
			}
		}
		return heldRec.Reason != "" && cutRec.Reason != "", p.logs.String()
	})
	for name, r := range map[string]stream.AuditRecord{"idle": heldRec, "replying": cutRec} {
		if !strings.HasPrefix(r.Reason, "multiplexed stream") {
			t.Errorf("the %s connection in the cut stream ended with reason %q, want the stream's end", name, r.Reason)
		}
	}
	if cutRec.BytesFromTarget >= sent {
		t.Errorf("the replying connection got %d bytes back of %d through a cut stream", cutRec.BytesFromTarget, sent)
	}
	if n, err := io.Copy(io.Discard, held); n != 0 || err != nil {
		t.Errorf("idle connection after the cut: %d bytes, %v; want EOF", n, err)
	}
	if p.ended() {
		t.Fatalf("the proxy exited after the stream dropped\n%s", p.logs.String())
	}
	// New connections through the same port: the proxy opens a new
	// multiplexed stream for them.
	for i := range 3 {
		if err := sendExact(addr, 300<<10+i, true); err != nil {
			t.Fatalf("echo %d after the drop: %v\n%s", i, err, p.logs.String())
		}
	}
	if got := dev.Requests(); len(got) != 2 || got[0] != mux.StreamName || got[1] != mux.StreamName {
		t.Errorf("stream requests %v, want two %s (the first, cut, and its reopening)", got, mux.StreamName)
	}
	if p.ended() {
		t.Fatalf("the proxy exited\n%s", p.logs.String())
	}
	if err := p.stop(); err != nil {
		t.Fatalf("proxy: %v\n%s", err, p.logs.String())
	}
	streams := 0
	for _, r := range auditLines(t, audit) {
		if r.Event == "stream" && r.Kind == "mux" {
			streams++
		}
	}
	if streams != 2 {
		t.Errorf("operator audit has %d mux stream lines, want 2 (the cut one and its reopening)", streams)
	}
}

// flakyMuxDevice serves its first multiplexed stream until the test ends
// it, closes the second before the mux handshake (a path that broke on
// the way), and serves the later ones; a stream of any other name it
// echoes (so a fallback to plain streams would go unnoticed by the
// connection: the test looks at the device's requests).
type flakyMuxDevice struct {
	muxDevice
	mu    sync.Mutex
	n     int
	first chan struct{} // closed by the test: the first stream ends
}

func (d *flakyMuxDevice) serve(ctx context.Context, name string, c net.Conn) {
	if name != mux.StreamName {
		d.muxDevice.serve(ctx, name, c)
		return
	}
	d.mu.Lock()
	d.n++
	n := d.n
	d.mu.Unlock()
	switch n {
	case 1:
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // ends with serve: cancel runs on return
			select {
			case <-d.first:
				cancel()
			case <-sctx.Done():
			}
		}()
		d.muxDevice.serve(sctx, name, c)
	case 2:
		c.Close()
	default:
		d.muxDevice.serve(ctx, name, c)
	}
}

// TestProxyKeepsMuxAfterBrokenHandshake: once a multiplexed stream has
// worked, a reopened one that dies before the mux handshake is a broken
// path, retried — not a device without mux, which in auto mode would send
// every later connection over a plain stream of its own for good, and
// which with --mux on must never happen at all.
func TestProxyKeepsMuxAfterBrokenHandshake(t *testing.T) {
	for _, mode := range []string{"auto", "on"} {
		t.Run(mode, func(t *testing.T) {
			sim := hubsimtest.New(t)
			d := &flakyMuxDevice{muxDevice: muxDevice{targets: map[string]string{"echo": echoListener(t)}}, first: make(chan struct{})}
			dev := startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) { c.Serve = d.serve })
			p := runProxy(t, sim, 1, "-L", "127.0.0.1:0:echo", "--mux", mode)
			addr := p.addrs[0]
			if err := sendExact(addr, 1000, true); err != nil {
				t.Fatalf("echo over the first stream: %v\n%s", err, p.logs.String())
			}
			close(d.first)
			// The next connections meet the broken handshake, then (after
			// the proxy's backoff) a working mux stream again.
			testwait.For(t, 60*time.Second, "an echo over a reopened multiplexed stream", func() (bool, string) {
				err := sendExact(addr, 2000, true)
				return err == nil && len(dev.Requests()) >= 3, fmt.Sprintf("echo: %v; requests %v", err, dev.Requests())
			})
			for i, name := range dev.Requests() {
				if name != mux.StreamName {
					t.Fatalf("request %d is a %q stream: the proxy fell back to one stream per connection after a broken mux handshake (requests %v)\n%s",
						i, name, dev.Requests(), p.logs.String())
				}
			}
			if err := p.stop(); err != nil {
				t.Fatalf("proxy: %v\n%s", err, p.logs.String())
			}
		})
	}
}
