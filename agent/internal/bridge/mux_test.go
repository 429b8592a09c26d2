package bridge

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
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/config"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// infoReq is a fakeReq that also tells its request and stream id.
type infoReq struct{ *fakeReq }

func (r infoReq) RequestID() string { return "rid-" + r.name }
func (r infoReq) StreamID() string  { return "sid-" + r.name }

func newAuditBridge(t *testing.T, p Policy) (*Bridge, *logBuf, *logBuf) {
	logs, audit := &logBuf{}, &logBuf{}
	b := New(Config{Policy: p, Device: "dev1", Logger: slog.New(slog.NewTextHandler(logs, nil)), Audit: stream.NewAuditLog(audit)})
	t.Cleanup(func() {
		b.Close()
		t.Log(logs.String())
	})
	return b, logs, audit
}

// openMux opens a mux stream on b and returns the operator's client.
func openMux(t *testing.T, b *Bridge) *mux.Client {
	t.Helper()
	r := newReq(t, config.MuxStreamName)
	b.Handle(context.Background(), infoReq{r})
	if d := r.wait(t); d != "accept" {
		t.Fatalf("mux stream: %q", d)
	}
	svc := <-r.service
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := mux.NewClient(ctx, svc, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func records(t *testing.T, audit *logBuf) []stream.AuditRecord {
	t.Helper()
	var out []stream.AuditRecord
	sc := bufio.NewScanner(strings.NewReader(audit.String()))
	for sc.Scan() {
		var r stream.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func muxPolicy(targets map[string]string) Policy {
	return Policy{Targets: targets, Mux: config.Mux{Enabled: true}}
}

// TestMuxWindowFromConfig: streams.mux.window reaches the mux server of
// every new stream (the agent announces it on the control stream), and the
// default is config's.
func TestMuxWindowFromConfig(t *testing.T) {
	for _, tc := range []struct {
		window int64
		want   string
	}{
		{0, fmt.Sprintf("max_conns=%d window=%d", config.DefaultMuxMaxConnsPerStream, config.DefaultMuxWindow)},
		{256 << 10, fmt.Sprintf("max_conns=%d window=%d", config.DefaultMuxMaxConnsPerStream, 256<<10)},
		{4 << 20, fmt.Sprintf("max_conns=%d window=%d", config.DefaultMuxMaxConnsPerStream, 4<<20)},
	} {
		t.Run(fmt.Sprint(tc.window), func(t *testing.T) {
			p := muxPolicy(map[string]string{"echo": echoServer(t)})
			p.Mux.Window = tc.window
			b, _, _ := newAuditBridge(t, p)
			if got := openMux(t, b).Limits(); got != tc.want {
				t.Errorf("limits %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMux100ConnectionsExact: 100 concurrent connections through one mux
// stream to an echo target, each checked by sha256.
func TestMux100ConnectionsExact(t *testing.T) {
	b, _, _ := newAuditBridge(t, muxPolicy(map[string]string{"echo": echoServer(t)}))
	cl := openMux(t, b)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoExact(cl, 100<<10+i*1013)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := b.Stats(); st.Open != 1 || len(st.List) != 1 || st.List[0].Kind != "mux" {
		t.Errorf("stats %+v", st)
	}
}

func echoExact(cl *mux.Client, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := cl.Open(ctx, mux.Request{Kind: mux.KindTarget, Name: "echo"})
	if err != nil {
		return err
	}
	defer c.Close()
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.Close()
		}
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if got != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%d bytes came back as %d with another sha256", size, got)
	}
	return nil
}

func TestMuxDisabledIsRejected(t *testing.T) {
	b, _, audit := newAuditBridge(t, Policy{Targets: map[string]string{"ssh": echoServer(t)}, Mux: config.Mux{Enabled: false}})
	r := newReq(t, config.MuxStreamName)
	b.Handle(context.Background(), infoReq{r})
	if d := r.wait(t); d != "reject" {
		t.Fatalf("decision %q", d)
	}
	recs := records(t, audit)
	if len(recs) != 1 || recs[0].Result != "rejected" || recs[0].Reason != ErrMuxDisabled.Error() || recs[0].Kind != "mux" {
		t.Fatalf("audit %+v", recs)
	}
}

// TestSocksAllowList: the device decides what a dial may reach, with the
// SOCKS code and an audit line for a refusal.
func TestSocksAllowList(t *testing.T) {
	echo := echoServer(t)
	ap := netip.MustParseAddrPort(echo)
	allow, err := config.ParseSocksRule(fmt.Sprintf("127.0.0.0/8:%d", ap.Port()))
	if err != nil {
		t.Fatal(err)
	}
	byName, _ := config.ParseSocksRule("echo.lan:" + fmt.Sprint(ap.Port()))
	p := muxPolicy(nil)
	p.SocksAllow = []config.SocksRule{allow, byName}
	logs, audit := &logBuf{}, &logBuf{}
	b := New(Config{Policy: p, Device: "dev1", Logger: slog.New(slog.NewTextHandler(logs, nil)), Audit: stream.NewAuditLog(audit),
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "localhost":
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			case "outside.example":
				return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasPrefix(addr, "echo.lan:") {
				addr = echo
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { b.Close() })
	cl := openMux(t, b)
	tests := []struct {
		dest string
		code mux.Code
	}{
		{echo, mux.CodeOK},
		{fmt.Sprintf("localhost:%d", ap.Port()), mux.CodeOK},
		{fmt.Sprintf("echo.lan:%d", ap.Port()), mux.CodeOK},
		{fmt.Sprintf("outside.example:%d", ap.Port()), mux.CodeNotAllowed},
		{fmt.Sprintf("127.0.0.1:%d", ap.Port()+1), mux.CodeNotAllowed},
		{fmt.Sprintf("10.0.0.1:%d", ap.Port()), mux.CodeNotAllowed},
		{fmt.Sprintf("nowhere.invalid:%d", ap.Port()), mux.CodeHostUnreachable},
	}
	for _, tc := range tests {
		c, err := cl.Open(context.Background(), mux.Request{Kind: mux.KindDial, Name: tc.dest})
		if tc.code == mux.CodeOK {
			if err != nil {
				t.Errorf("%s: %v", tc.dest, err)
				continue
			}
			c.Write([]byte("ping"))
			c.Close()
			got, _ := io.ReadAll(c)
			if string(got) != "ping" {
				t.Errorf("%s: echo %q", tc.dest, got)
			}
			continue
		}
		var oe *mux.OpenError
		if !errors.As(err, &oe) || oe.Code != tc.code {
			t.Errorf("%s: %v, want code %v", tc.dest, err, tc.code)
		}
	}
	testwait.True(t, 10*time.Second, "every connection audited", func() bool { return len(records(t, audit)) == len(tests) })
	for _, r := range records(t, audit) {
		if r.Event != "connection" || r.Kind != "dial" || r.RequestID != "rid-"+config.MuxStreamName || r.StreamID == "" || r.Device != "dev1" || r.Conn == 0 {
			t.Errorf("record %+v", r)
		}
		if strings.HasPrefix(r.Destination, "outside.example") && (r.Result != "rejected" || !strings.Contains(r.Reason, "not allowed")) {
			t.Errorf("refusal record %+v", r)
		}
		if r.Destination == echo && (r.Result != "accepted" || r.BytesToTarget != 4 || r.BytesFromTarget != 4 || r.Target != echo) {
			t.Errorf("accepted record %+v", r)
		}
	}
}

// TestReloadNarrowingClosesWithinASecond: a reload that removes a target
// closes the plain stream to it and the mux connection to it, each with a
// reason the operator sees, within 1 s; what is still allowed stays open.
func TestReloadNarrowingClosesWithinASecond(t *testing.T) {
	web, ssh := echoServer(t), echoServer(t)
	p := muxPolicy(map[string]string{"web": web, "ssh": ssh})
	b, _, audit := newAuditBridge(t, p)
	plainWeb := openStream(t, b, "web")
	plainSSH := openStream(t, b, "ssh")
	cl := openMux(t, b)
	muxWeb, err := cl.Open(context.Background(), mux.Request{Kind: mux.KindTarget, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	muxSSH, err := cl.Open(context.Background(), mux.Request{Kind: mux.KindTarget, Name: "ssh"})
	if err != nil {
		t.Fatal(err)
	}
	testwait.True(t, 10*time.Second, "three streams, two mux connections", func() bool {
		st := b.Stats()
		return len(st.List) == 3 && len(st.List[2].Conns) == 2
	})

	narrowed := muxPolicy(map[string]string{"ssh": ssh})
	start := time.Now()
	b.SetPolicy(narrowed)

	plainErr := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, plainWeb); plainErr <- err }()
	muxErr := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, muxWeb); muxErr <- err }()
	var ce *stream.CloseError
	select {
	case err := <-plainErr:
		if !errors.As(err, &ce) || ce.Code != CloseRevoked || ce.Reason != "target web removed by config reload" {
			t.Errorf("plain web stream: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("plain stream to the removed target still open after 1 s")
	}
	select {
	case <-muxErr:
	case <-time.After(time.Second - time.Since(start)):
		t.Fatal("mux connection to the removed target still open after 1 s")
	}
	testwait.True(t, time.Second, "the operator hears why", func() bool { return muxWeb.Reason() == "target web removed by config reload" })

	// The allowed ones still work.
	for _, c := range []net.Conn{plainSSH, muxSSH} {
		if _, err := c.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
			t.Fatalf("allowed connection broke: %q %v", buf, err)
		}
	}
	testwait.True(t, 5*time.Second, "both revocations audited", func() bool {
		n := 0
		for _, r := range records(t, audit) {
			if r.Reason == "target web removed by config reload" && r.Result == "accepted" {
				n++
			}
		}
		return n == 2
	})
	plainSSH.Close()
	muxSSH.Close()
}

// TestReloadNarrowingSocks: a destination dropped from the allow-list is
// cut, one still listed keeps going.
func TestReloadNarrowingSocks(t *testing.T) {
	a, c := echoServer(t), echoServer(t)
	ra, _ := config.ParseSocksRule(a)
	rc, _ := config.ParseSocksRule(c)
	p := muxPolicy(nil)
	p.SocksAllow = []config.SocksRule{ra, rc}
	b, _, _ := newAuditBridge(t, p)
	cl := openMux(t, b)
	ca, err := cl.Open(context.Background(), mux.Request{Kind: mux.KindDial, Name: a})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cl.Open(context.Background(), mux.Request{Kind: mux.KindDial, Name: c})
	if err != nil {
		t.Fatal(err)
	}
	p.SocksAllow = []config.SocksRule{rc}
	b.SetPolicy(p)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, ca); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("dropped destination still open after 1 s")
	}
	testwait.True(t, time.Second, "the operator hears why", func() bool { return strings.Contains(ca.Reason(), "no longer allowed") })
	cc.Write([]byte("x"))
	if _, err := io.ReadFull(cc, make([]byte, 1)); err != nil {
		t.Fatalf("listed destination cut: %v", err)
	}
	cc.Close()
}

func TestMuxConnLimitPerAgent(t *testing.T) {
	p := muxPolicy(map[string]string{"echo": echoServer(t)})
	p.Mux.MaxConns = 2
	b, _, _ := newAuditBridge(t, p)
	cl1, cl2 := openMux(t, b), openMux(t, b)
	c1, err := cl1.Open(context.Background(), mux.Request{Kind: mux.KindTarget, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := cl2.Open(context.Background(), mux.Request{Kind: mux.KindTarget, Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = cl2.Open(context.Background(), mux.Request{Kind: mux.KindTarget, Name: "echo"})
	var oe *mux.OpenError
	if !errors.As(err, &oe) || !strings.Contains(oe.Message, "too many connections on this device") {
		t.Fatalf("third connection: %v", err)
	}
}

// TestAuditPlainStream: a plain stream's record has every field.
func TestAuditPlainStream(t *testing.T) {
	echo := echoServer(t)
	b, _, audit := newAuditBridge(t, Policy{Targets: map[string]string{"ssh": echo}})
	r := newReq(t, "ssh")
	b.Handle(context.Background(), infoReq{r})
	if d := r.wait(t); d != "accept" {
		t.Fatal(d)
	}
	svc := <-r.service
	svc.Write([]byte("hello"))
	io.ReadFull(svc, make([]byte, 5))
	svc.Close()
	testwait.True(t, 10*time.Second, "the stream is audited", func() bool { return len(records(t, audit)) == 1 })
	rec := records(t, audit)[0]
	want := stream.AuditRecord{Side: "device", Event: "stream", Device: "dev1", RequestID: "rid-ssh", StreamID: "sid-ssh",
		Stream: "ssh", Kind: "plain", Destination: "ssh", Target: echo, Result: "accepted", Reason: "closed by operator",
		BytesToTarget: 5, BytesFromTarget: 5}
	got := rec
	got.Time, got.Start, got.DurationMs = time.Time{}, time.Time{}, 0
	if got != want || rec.Time.IsZero() || rec.Start.IsZero() || rec.DurationMs < 0 {
		t.Fatalf("record\n%+v\nwant\n%+v", rec, want)
	}
	// Every field is in the JSON line.
	var m map[string]any
	json.Unmarshal([]byte(strings.TrimSpace(audit.String())), &m)
	for _, k := range []string{"time", "side", "event", "device", "requestId", "streamId", "stream", "kind", "destination", "target", "result", "reason", "bytesToTarget", "bytesFromTarget", "start", "durationMs"} {
		if _, ok := m[k]; !ok {
			t.Errorf("audit line lacks %s: %s", k, audit.String())
		}
	}
}
