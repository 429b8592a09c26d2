package e2e

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// auditRecords reads an audit file of JSON lines.
func auditRecords(t *testing.T, path string) []stream.AuditRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
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

// echoTCP serves a TCP echo that half-closes at EOF.
func echoTCP(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// startPorthole runs a long-lived porthole command and waits for its log
// to say it is listening.
func (w *world) startPorthole(t *testing.T, name, ready string, args ...string) *proc {
	t.Helper()
	p := startProc(t, w.dir, name, nil, binaries(t).porthole, append(args, "--config", w.opConfig)...)
	testwait.For(t, startTimeout, fmt.Sprintf("%s to log %q", name, ready), func() (bool, string) {
		if p.logContains(ready) {
			return true, ""
		}
		if p.exited() {
			t.Fatalf("%s did not start: exited (%v)\n%s", name, p.err, p.tail(20))
		}
		return false, p.tail(20)
	})
	return p
}

// reload rewrites the agent's config with targets and extra, sends SIGHUP
// and waits until the agent reports the reload. It returns when the
// signal was sent.
func (w *world) reload(t *testing.T, targets map[string]string, extra string) time.Time {
	t.Helper()
	w.streamsExtra = extra
	w.writeAgentConfig(targets)
	sent := time.Now()
	w.agent.signal(syscall.SIGHUP)
	w.waitAgent("reloaded", startTimeout, func(s *daemon.Status) bool {
		return s.LastReload != nil && !s.LastReload.At.Before(sent.Add(-time.Second)) && s.LastReload.Error == ""
	})
	return sent
}

// TestStreamsV2: the real agent, hubsim and porthole: a multiplexed proxy
// with 100 concurrent connections, SOCKS through the device's allow-list
// with curl, a plain operator against the mux-capable agent, a reload that
// narrows the policy, mux turned off, and the audit trail on both ends.
func TestStreamsV2(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is needed for this test and is missing")
		}
		t.Skip("curl not installed")
	}
	web := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "device web page for %s\n", r.Host)
	}))
	defer web.Close()
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprintln(rw, "secret") }))
	defer other.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port
	otherPort := other.Listener.Addr().(*net.TCPAddr).Port
	echo := echoTCP(t)
	targets := map[string]string{"web": web.Listener.Addr().String(), "echo": echo}

	dir := t.TempDir()
	deviceAudit := filepath.Join(dir, "device-audit.jsonl")
	extra := fmt.Sprintf("  socks:\n    allow:\n      - 127.0.0.1:%d\n  audit:\n    file: %s\n  keepalive:\n    interval: 2s\n    timeout: 10s\n", webPort, deviceAudit)
	w := &world{t: t, dir: dir, user: currentUser(t), streamsExtra: extra}
	w.sim = startSim(t, dir, 0, 0)
	w.key = newKey(t)
	w.sim.enroll(t, w.key)
	w.writeOperatorConfig()
	w.writeAgentConfig(targets)
	w.startAgent()
	w.dumpOnFailure()
	defer w.stop()

	t.Run("socks-curl", func(t *testing.T) {
		port := freePort(t)
		opAudit := filepath.Join(dir, "op-socks.jsonl")
		p := w.startPorthole(t, "porthole-socks", "SOCKS5 listening", "socks", deviceID, "-D", strconv.Itoa(port), "--audit", opAudit)
		defer p.stop(t, true)
		socks := "127.0.0.1:" + strconv.Itoa(port)
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "60", "--socks5-hostname", socks,
			fmt.Sprintf("http://localhost:%d/", webPort)).CombinedOutput()
		if err != nil || string(out) != fmt.Sprintf("device web page for localhost:%d\n", webPort) {
			t.Fatalf("allowed: %v %q\n%s", err, out, p.tail(20))
		}
		out, err = exec.CommandContext(ctx, curl, "-sS", "--max-time", "60", "--socks5-hostname", socks,
			fmt.Sprintf("http://localhost:%d/", otherPort)).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || strings.Contains(string(out), "secret") || !strings.Contains(string(out), "SOCKS") {
			t.Fatalf("disallowed destination: %v %q", err, out)
		}
		var refused bool
		testwait.For(t, 30*time.Second, "the device to audit the refusal", func() (bool, string) {
			recs := auditRecords(t, deviceAudit)
			for _, r := range recs {
				if r.Event == "connection" && r.Kind == "dial" && r.Result == "rejected" &&
					r.Destination == fmt.Sprintf("localhost:%d", otherPort) && strings.Contains(r.Reason, "not allowed") {
					refused = true
				}
			}
			return refused, fmt.Sprintf("%d audit records, none a rejected dial to localhost:%d", len(recs), otherPort)
		})
	})

	t.Run("proxy-mux-100", func(t *testing.T) {
		pe, pw := freePort(t), freePort(t)
		opAudit := filepath.Join(dir, "op-proxy.jsonl")
		p := w.startPorthole(t, "porthole-proxy", "multiplexed stream open", "proxy", deviceID,
			"-L", fmt.Sprintf("127.0.0.1:%d:echo", pe), "-L", fmt.Sprintf("127.0.0.1:%d:web", pw), "--audit", opAudit)
		defer p.stop(t, true)
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- echoThrough(fmt.Sprintf("127.0.0.1:%d", pe), 64<<10+i*4099)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", pw))
		if err != nil || !strings.HasPrefix(resp, "device web page") {
			t.Fatalf("web through the second forward: %v %q", err, resp)
		}
		// The registry shows one mux stream.
		st := w.waitAgent("one mux stream", 10*time.Second, func(s *daemon.Status) bool {
			for _, l := range s.Streams.List {
				if l.Kind == "mux" {
					return true
				}
			}
			return false
		})
		t.Logf("agent streams: %+v", st.Streams)
		testwait.For(t, 30*time.Second, "the device to audit 101 mux connections", func() (bool, string) {
			n := 0
			for _, r := range auditRecords(t, deviceAudit) {
				if r.Event == "connection" && r.Kind == "target" && r.Result == "accepted" {
					n++
				}
			}
			return n >= 101, fmt.Sprintf("%d accepted target connections audited", n)
		})
	})

	t.Run("plain-operator", func(t *testing.T) {
		pe := freePort(t)
		p := w.startPorthole(t, "porthole-plain", "listening", "proxy", deviceID, "--mux", "off", "-L", fmt.Sprintf("127.0.0.1:%d:echo", pe))
		defer p.stop(t, true)
		if err := echoFixed(fmt.Sprintf("127.0.0.1:%d", pe), 1<<20); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("reload-narrowing", func(t *testing.T) {
		pe, pw := freePort(t), freePort(t)
		p := w.startPorthole(t, "porthole-narrow", "multiplexed stream open", "proxy", deviceID,
			"-L", fmt.Sprintf("127.0.0.1:%d:echo", pe), "-L", fmt.Sprintf("127.0.0.1:%d:web", pw))
		defer p.stop(t, true)
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pe))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		closed := make(chan time.Time, 1)
		go func() { io.Copy(io.Discard, c); closed <- time.Now() }()
		narrowed := map[string]string{"web": targets["web"]}
		sent := w.reload(t, narrowed, extra)
		select {
		case at := <-closed:
			if d := at.Sub(sent); d > time.Second {
				t.Errorf("connection closed %s after the SIGHUP, want within 1 s", d)
			} else {
				t.Logf("connection to the removed target closed %s after the SIGHUP", d.Round(time.Millisecond))
			}
		case <-time.After(time.Until(sent.Add(time.Second))):
			t.Fatal("connection to the removed target still open 1 s after the SIGHUP")
		}
		testwait.For(t, 10*time.Second, "the operator to be told why (target echo removed by config reload)", func() (bool, string) {
			return p.logContains("target echo removed by config reload"), p.tail(20) + "\nagent:\n" + w.agent.tail(20)
		})
		// web still works.
		if resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", pw)); err != nil || !strings.HasPrefix(resp, "device web page") {
			t.Fatalf("web after narrowing: %v %q", err, resp)
		}
		w.reload(t, targets, extra) // back, for the next subtests
	})

	t.Run("mux-disabled", func(t *testing.T) {
		off := extra + "  mux:\n    enabled: false\n"
		w.reload(t, targets, off)
		defer w.reload(t, targets, extra)
		pe := freePort(t)
		p := w.startPorthole(t, "porthole-fallback", "one stream per connection", "proxy", deviceID, "-L", fmt.Sprintf("127.0.0.1:%d:echo", pe))
		defer p.stop(t, true)
		if err := echoFixed(fmt.Sprintf("127.0.0.1:%d", pe), 4096); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, binaries(t).porthole, "socks", deviceID, "-D", "127.0.0.1:0", "--config", w.opConfig).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "needs multiplexed streams") {
			t.Fatalf("socks against mux disabled: %v %s", err, out)
		}
	})

	// Every device audit line carries the fields the issue lists.
	for _, r := range auditRecords(t, deviceAudit) {
		if r.Time.IsZero() || r.Side != "device" || r.Device != deviceID || r.RequestID == "" || r.StreamID == "" || r.Stream == "" ||
			r.Kind == "" || r.Result == "" || r.Reason == "" || r.Start.IsZero() {
			t.Errorf("incomplete audit record %+v", r)
		}
	}
	if st, err := os.Stat(deviceAudit); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("device audit file: %v %v", st, err)
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// echoThrough sends size random bytes, half-closes, and checks the echo's
// sha256.
func echoThrough(addr string, size int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return err
	}
	if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%d of %d bytes back, sha256 differs", n, size)
	}
	return nil
}

// echoFixed sends size bytes and reads size bytes back (a plain stream
// has no half-close).
func echoFixed(addr string, size int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	data := make([]byte, size)
	rand.Read(data)
	go c.Write(data)
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs")
	}
	return nil
}
