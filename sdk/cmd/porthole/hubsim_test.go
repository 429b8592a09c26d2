package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service/servicetest"
	"github.com/porthole-iot/porthole/sdk/stream"
	"github.com/porthole-iot/porthole/sdk/stream/mux"
)

const hubHost = "hub-eu.local"

// simFlags are the connection flags that reach sim through --ca and
// --resolve, the way an operator points porthole at hubsim: the hub's
// REST port (443) and the streaming endpoint's port both map to the sim's
// HTTPS listener.
func simFlags(sim *hubsimtest.Sim) []string {
	port := strconv.Itoa(sim.Server.HTTPSPort())
	return []string{
		"--connection-string", sim.HubConnectionString(hubHost),
		"--ca", sim.CAFile,
		"--resolve", hubHost + ":443=" + sim.HTTPSAddr,
		"--resolve", hubHost + ":" + port + "=" + sim.HTTPSAddr,
	}
}

func timeoutCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func startDevice(t *testing.T, sim *hubsimtest.Sim, id string, edit func(*servicetest.DeviceConfig)) *servicetest.Device {
	t.Helper()
	cfg := servicetest.DeviceConfig{HubHost: hubHost, DeviceID: id, Key: sim.CreateDevice(hubHost, id),
		TLSConfig: sim.TLSConfig(), DialContext: sim.DialContext}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	d, err := servicetest.StartDevice(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// TestStdio: bytes written to stdin come back on stdout through hubsim and
// an echoing device; closing stdin ends the command cleanly.
func TestStdio(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", nil)
	stdioRoundTrip(t, testEnv(t, nil), append([]string{"stdio", "dev1"}, simFlags(sim)...), "SSH-2.0-test\r\n")
}

// stdioRoundTrip runs "porthole <args>" (a stdio command) on pipes, sends
// line, expects it back, then closes stdin as ssh does and expects a clean
// end.
func stdioRoundTrip(t *testing.T, e *env, args []string, line string) (stderr string) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	done := make(chan error, 1)
	var errOut syncBuffer
	go func() { // owned by stdioRoundTrip: received below
		done <- runEnv(ctx, e, args, inR, outW, &errOut)
		outW.Close()
	}()
	if _, err := inW.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(outR).ReadString(line[len(line)-1])
	if err != nil || got != line {
		t.Fatalf("%v: echo %q %v (stderr %s)", args, got, err, errOut.String())
	}
	inW.Close() // ssh closing its end
	if err := <-done; err != nil {
		t.Fatalf("%v: stdio: %v (stderr %s)", args, err, errOut.String())
	}
	return errOut.String()
}

// TestStdioAuditWriteFailureSaid: records the --audit file could not take
// (here /dev/full: every write fails with ENOSPC, as on a full disk) are
// said on stderr when the session ends; the session itself is not failed.
func TestStdioAuditWriteFailureSaid(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/dev/full is Linux's")
	}
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", nil)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, audit, want string
	}{
		{"writable", filepath.Join(dir, "audit.jsonl"), ""},
		{"full", "/dev/full", "porthole: audit file /dev/full: write /dev/full: no space left on device (audit records are missing)\n"},
	} {
		stderr := stdioRoundTrip(t, testEnv(t, nil), append([]string{"stdio", "dev1", "--audit", tc.audit}, simFlags(sim)...), "hello\n")
		if stderr != tc.want {
			t.Errorf("%s: stderr %q, want %q", tc.name, stderr, tc.want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil || !strings.Contains(string(b), `"device":"dev1"`) {
		t.Errorf("audit file %q %v", b, err)
	}
}

// TestStdioDeviceCloses: when the device ends the stream, stdio returns
// although stdin is still open (its read is interrupted).
func TestStdioDeviceCloses(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = func(ctx context.Context, name string, conn net.Conn) { _, _ = conn.Write([]byte("bye\n")) }
	})
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	var out syncBuffer
	err = runEnv(ctx, testEnv(t, nil), append([]string{"stdio", "dev1"}, simFlags(sim)...), inR, &out, io.Discard)
	if err != nil || out.String() != "bye\n" {
		t.Fatalf("stdio: %v, output %q", err, out.String())
	}
}

// TestStdioDeviceGoesAway: a device that ends the stream with a status
// (an agent draining at shutdown sends 1001) makes stdio fail with a
// message naming the status, which ssh users see in place of a bare
// "Broken pipe"; the relay passes the going-away status on.
func TestStdioDeviceGoesAway(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Serve = func(ctx context.Context, name string, conn net.Conn) {
			_, _ = conn.Write([]byte("bye\n"))
			conn.(*stream.Conn).CloseWith(stream.CloseGoingAway, "agent shutting down")
		}
	})
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	var out syncBuffer
	err = runEnv(ctx, testEnv(t, nil), append([]string{"stdio", "dev1"}, simFlags(sim)...), inR, &out, io.Discard)
	var ce *stream.CloseError
	if !errors.As(err, &ce) || ce.Code != stream.CloseGoingAway ||
		!strings.HasPrefix(err.Error(), "stream closed by the far end: status 1001 (going away)") {
		t.Fatalf("stdio: %v, want the going-away status", err)
	}
	if out.String() != "bye\n" {
		t.Fatalf("output %q", out.String())
	}
}

// TestStdioRelayCloses: the streaming endpoint ending the stream (here:
// shutting down) is reported with its status and reason.
func TestStdioRelayCloses(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", nil) // echoes
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	done := make(chan error, 1)
	go func() { // owned by the test: received below
		done <- runEnv(ctx, testEnv(t, nil), append([]string{"stdio", "dev1"}, simFlags(sim)...), inR, outW, io.Discard)
		outW.Close()
	}()
	if _, err := inW.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(outR).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo %q %v", line, err)
	}
	sim.Relay().Close()
	err = <-done
	want := "stream closed by the far end: status 1001 (going away): streaming endpoint shutting down"
	if err == nil || err.Error() != want {
		t.Fatalf("stdio: %v, want %q", err, want)
	}
}

func TestStdioRejectedAndOffline(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) { c.Accept = func(string) bool { return false } })
	sim.CreateDevice(hubHost, "dev2")
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	for dev, want := range map[string]string{"dev1": `device dev1 refused stream "ssh"`, "dev2": "DeviceNotOnline"} {
		err := runEnv(ctx, testEnv(t, nil), append([]string{"stdio", dev}, simFlags(sim)...), strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", dev, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SharedAccessKey") {
			t.Errorf("error shows the connection string: %v", err)
		}
	}
}

// TestProxy: two local connections, two streams; cancelling the context
// (Ctrl-C) stops the proxy and every bridge.
func TestProxy(t *testing.T) {
	sim := hubsimtest.New(t)
	// A device without multiplexing: the proxy falls back to one stream
	// per connection.
	dev := startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) { c.Accept = func(n string) bool { return n != mux.StreamName } })
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	e := testEnv(t, nil)
	addrc := make(chan net.Addr, 1)
	e.onListen = func(a net.Addr) { addrc <- a }
	done := make(chan error, 1)
	var stderr syncBuffer
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		done <- runEnv(runCtx, e, append([]string{"proxy", "dev1", "-L", "127.0.0.1:0"}, simFlags(sim)...), nil, io.Discard, &stderr)
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("proxy ended: %v", err)
	}
	var conns []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		msg := "hello " + strconv.Itoa(i) + "\n"
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != msg {
			t.Fatalf("conn %d: %q %v", i, line, err)
		}
	}
	if dev.Accepted() != 2 {
		t.Errorf("device accepted %d streams", dev.Accepted())
	}
	conns[0].Close()
	stop() // Ctrl-C with one connection still open
	if err := <-done; err != nil {
		t.Fatalf("proxy: %v", err)
	}
	// The open connection was closed by the proxy.
	_ = conns[1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conns[1].Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the proxy stopped")
	}
	conns[1].Close()
	log := stderr.String()
	if !strings.Contains(log, "listening") || strings.Count(log, "connection accepted") != 2 || !strings.Contains(log, "proxy stopped") {
		t.Errorf("log:\n%s", log)
	}
	if strings.Contains(log, "SharedAccessKey=") || strings.Contains(log, "sig=") {
		t.Errorf("log shows a secret:\n%s", log)
	}
}

func TestInvoke(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Method = func(name string, payload []byte) (int, []byte) {
			return 202, []byte(`{"method":"` + name + `","got":` + string(payload) + `}`)
		}
	})
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	var out bytes.Buffer
	err := runEnv(ctx, testEnv(t, nil), append([]string{"invoke", "dev1", "reprovision", "--payload", `{"force":true}`, "--timeout", "10s"}, simFlags(sim)...),
		nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Status  int `json:"status"`
		Payload struct {
			Method string          `json:"method"`
			Got    json.RawMessage `json:"got"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Status != 202 || res.Payload.Method != "reprovision" || string(res.Payload.Got) != `{"force":true}` {
		t.Fatalf("output %q %v", out.String(), err)
	}
}

// TestDPSEnroll: enroll through the environment's DPS connection string,
// save the generated key to a 0600 file, never print it.
func TestDPSEnroll(t *testing.T) {
	sim := hubsimtest.New(t)
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	e := testEnv(t, map[string]string{envDPSConnectionString: sim.DPSConnectionString()})
	flags := []string{"--ca", sim.CAFile, "--resolve", sim.DPSHostName + ":443=" + sim.HTTPSAddr}
	keyFile := filepath.Join(t.TempDir(), "dev-1.key")
	var out bytes.Buffer
	err := runEnv(ctx, e, append([]string{"dps", "enroll", "dev-1", "--hub", hubHost, "--key-file", keyFile}, flags...), nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", st, err)
	}
	b, _ := os.ReadFile(keyFile)
	key := strings.TrimSpace(string(b))
	if key == "" || strings.Contains(out.String(), key) {
		t.Errorf("key %q, output %q", key, out.String())
	}
	en, ok := sim.DPS().GetEnrollment("dev-1")
	if !ok || en.Attestation.SymmetricKey.PrimaryKey != key || en.AllocationPolicy != "static" {
		t.Errorf("DPS holds %+v", en)
	}

	// A group with a given key; get prints it without keys; delete.
	groupKey := hubsimtest.NewKey(t)
	out.Reset()
	if err := runEnv(ctx, e, append([]string{"dps", "enroll", "fleet", "--group", "--symmetric-key", groupKey}, flags...), nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runEnv(ctx, e, append([]string{"dps", "get", "fleet", "--group"}, flags...), nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"enrollmentGroupId": "fleet"`) || strings.Contains(out.String(), groupKey) {
		t.Errorf("get output %q", out.String())
	}
	if err := runEnv(ctx, e, append([]string{"dps", "delete", "fleet", "--group"}, flags...), nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := runEnv(ctx, e, append([]string{"dps", "get", "fleet", "--group"}, flags...), nil, io.Discard, io.Discard); err == nil {
		t.Error("group still there after delete")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestJSONOutputFlag: every command that prints data takes "-o json";
// invoke and dps get print JSON only, so they take -o json (what scripts
// pass to every command) and refuse other formats with a usage error.
func TestJSONOutputFlag(t *testing.T) {
	sim := hubsimtest.New(t)
	startDevice(t, sim, "dev1", func(c *servicetest.DeviceConfig) {
		c.Method = func(name string, payload []byte) (int, []byte) { return 200, []byte(`{"ok":true}`) }
	})
	sim.EnrollSymmetricKey("dev1", nil)
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	e := testEnv(t, map[string]string{envDPSConnectionString: sim.DPSConnectionString()})
	dpsFlags := []string{"--ca", sim.CAFile, "--resolve", sim.DPSHostName + ":443=" + sim.HTTPSAddr}
	for _, tc := range []struct {
		name    string
		args    []string
		want    string // in the output, which must be JSON
		wantErr string // a usage error instead
	}{
		{"invoke -o json", append([]string{"invoke", "dev1", "ping", "-o", "json"}, simFlags(sim)...), `"status":200`, ""},
		{"invoke --o=json", append([]string{"invoke", "dev1", "ping", "--o=json"}, simFlags(sim)...), `"status":200`, ""},
		{"invoke -o table", append([]string{"invoke", "dev1", "ping", "-o", "table"}, simFlags(sim)...), "", `-o "table": invoke prints JSON only`},
		{"dps get -o json", append([]string{"dps", "get", "dev1", "-o", "json"}, dpsFlags...), `"registrationId": "dev1"`, ""},
		{"dps get -o yaml", append([]string{"dps", "get", "dev1", "-o", "yaml"}, dpsFlags...), "", `-o "yaml": dps get prints JSON only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runEnv(ctx, e, tc.args, nil, &out, io.Discard)
			if tc.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out.Bytes()) || !strings.Contains(out.String(), tc.want) {
				t.Errorf("output %q, want JSON containing %q", out.String(), tc.want)
			}
		})
	}
}
