package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/porthole-iot/porthole/hubsim/internal/server"
	"github.com/porthole-iot/porthole/hubsim/internal/store"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 60 * time.Second

// signalWriter collects output and closes ready on the first write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func newSignalWriter() *signalWriter { return &signalWriter{ready: make(chan struct{})} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.once.Do(func() { close(w.ready) })
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	statusPath := filepath.Join(dir, "status.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSignalWriter(), newSignalWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"-https-port", "0", "-mqtt-port", "0", "-listen", "127.0.0.1",
			"-state-dir", filepath.Join(dir, "state"), "-status-file", statusPath, "-log-level", "debug",
		}, stdout, stderr)
	}()
	select {
	case <-stdout.ready: // the banner is printed after the status file is written
	case err := <-done:
		t.Fatalf("run ended early: %v\nstderr:\n%s", err, stderr.String())
	case <-time.After(waitTimeout):
		t.Fatalf("no banner\nstderr:\n%s", stderr.String())
	}

	data, err := os.ReadFile(statusPath)
	if err != nil {
		t.Fatal(err)
	}
	var st server.Status
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ports.HTTPS == 0 || st.Ports.MQTT == 0 || st.DPS.IDScope != "0ne00000001" || len(st.Hubs) != 2 {
		t.Fatalf("status %+v", st)
	}
	if st.Pprof != "" {
		t.Errorf("profiles served without -pprof: %q", st.Pprof)
	}
	for _, h := range st.Hubs {
		if !strings.HasPrefix(h.ServiceConnectionString, "HostName="+h.HostName+";SharedAccessKeyName=iothubowner;SharedAccessKey=") {
			t.Errorf("hub %+v", h)
		}
		// Keys go to stdout and the status file, never to the logs.
		_, key, _ := strings.Cut(h.ServiceConnectionString, ";SharedAccessKey=")
		if key == "" || strings.Contains(stderr.String(), key) {
			t.Error("a key appeared in the logs")
		}
	}
	if !strings.Contains(stdout.String(), st.CAFile) {
		t.Errorf("banner lacks the CA file:\n%s", stdout.String())
	}

	caPEM, err := os.ReadFile(st.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA file")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: waitTimeout}).Get("https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Ports.HTTPS)) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
		t.Fatalf("healthz %d %q", resp.StatusCode, body)
	}
	tr.CloseIdleConnections()
	checkClientFiles(t, dir, st)
	checkAdminAuth(t, pool, st)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after cancel")
	}
	for _, f := range append(st.ClientFiles, statusPath) {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}
	if _, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Ports.MQTT)), time.Second); err == nil {
		t.Error("MQTT port still open after run returned")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("ports:\n  https: 0\n  mqtt: 0\nhubs:\n  - hostname: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A state database written by a newer hubsim is refused, not misread.
	futureState := filepath.Join(dir, "future-state")
	if err := os.MkdirAll(futureState, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(futureState, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", store.SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	unknownField := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownField, []byte("listen: [127.0.0.1]\nport: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "usage error"},
		{"extra args", []string{"x"}, "usage error"},
		{"missing config", []string{"-config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{"invalid config", []string{"-config", badConfig, "-state-dir", dir}, "bad.yaml:5: hubs[0].hostname: must not be empty"},
		{"unknown field", []string{"-config", unknownField}, `unknown.yaml:2: port: unknown key; did you mean "ports"?`},
		{"bad listen flag", []string{"-listen", "nohost", "-state-dir", dir}, "listen[0]"},
		{"future state database", []string{"-https-port", "0", "-mqtt-port", "0", "-listen", "127.0.0.1", "-state-dir", futureState},
			fmt.Sprintf("database schema is newer than this hubsim: the database has schema version %d", store.SchemaVersion+1)},
		{"bad log level", []string{"-log-level", "loud", "-https-port", "0", "-mqtt-port", "0", "-state-dir", dir}, "log.level"},
		{"pprof beyond loopback", []string{"-pprof", "0.0.0.0:0", "-state-dir", dir}, "loopback address only"},
		{"pprof on a name", []string{"-pprof", "example.com:6060", "-state-dir", dir}, "loopback address only"},
		{"pprof without port", []string{"-pprof", "127.0.0.1", "-state-dir", dir}, "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q (stderr %q)", err, tt.want, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"127.0.0.1", []string{"127.0.0.1"}},
		{" 127.0.0.1, ::1 ,", []string{"127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		got := splitList(tt.in)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRelativeStateDirGivesAbsoluteCAPath: with a relative -state-dir the
// status file still names the CA by an absolute path, usable from anywhere.
func TestRelativeStateDirGivesAbsoluteCAPath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	statusFile := filepath.Join(dir, "status.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-https-port", "0", "-mqtt-port", "0", "-state-dir", "rel-state", "-status-file", statusFile}, &stdout, &stderr)
	}()
	var st struct {
		CAFile string `json:"ca_file"`
	}
	err := testwait.Wait(30*time.Second, "the status file naming the CA", func() (bool, string) {
		b, err := os.ReadFile(statusFile)
		if err == nil && json.Unmarshal(b, &st) == nil && st.CAFile != "" {
			return true, ""
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before writing the status file; stderr: %s", err, stderr.String())
		default:
		}
		if err != nil {
			return false, err.Error()
		}
		return false, string(b)
	})
	if err != nil {
		cancel()
		<-done // the buffers are run's until it returns
		t.Fatalf("%v; stderr: %s", err, stderr.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(st.CAFile) {
		t.Errorf("ca_file %q is not absolute", st.CAFile)
	}
	if want := filepath.Join(dir, "rel-state"); !strings.HasPrefix(st.CAFile, want) {
		t.Errorf("ca_file %q is not under %s", st.CAFile, want)
	}
}

// decodeStrict reads a YAML file into v, refusing unknown keys, and checks
// its mode.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

// resolver dials "host:port" as the resolve lines say, and nothing else.
func resolver(t *testing.T, lines []string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	t.Helper()
	m := map[string]string{}
	for _, l := range lines {
		from, to, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("resolve line %q", l)
		}
		m[from] = to
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, ok := m[addr]
		if !ok {
			return nil, errors.New("no resolve line for " + addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

// The files next to the status file are ready to use: the operator config
// has exactly the keys `porthole --config` reads, and its connection
// string, CA and resolve lines reach the hub; every resolve line of both
// files leads to a TLS endpoint that proves the host name with the CA.
func checkClientFiles(t *testing.T, dir string, st server.Status) {
	t.Helper()
	want := []string{server.AgentSnippetName, server.OperatorConfigName}
	for _, h := range st.Hubs {
		want = append(want, server.OperatorConfigNameFor(h.HostName))
	}
	for _, n := range want {
		if !slices.Contains(st.ClientFiles, filepath.Join(dir, n)) {
			t.Errorf("status client_files %v lacks %s", st.ClientFiles, n)
		}
	}
	var op struct {
		ConnectionString    string   `yaml:"connection_string"`
		DPSConnectionString string   `yaml:"dps_connection_string"`
		CAFile              string   `yaml:"ca_file"`
		Resolve             []string `yaml:"resolve"`
	}
	decodeStrict(t, filepath.Join(dir, server.OperatorConfigName), &op)
	if op.ConnectionString != st.Hubs[0].ServiceConnectionString || op.DPSConnectionString != st.DPS.ServiceConnectionString || op.CAFile != st.CAFile {
		t.Errorf("operator config %+v", op)
	}
	var ag struct {
		CAFile       string   `yaml:"ca_file"`
		Resolve      []string `yaml:"resolve"`
		Provisioning struct {
			GlobalEndpoint string `yaml:"global_endpoint"`
			IDScope        string `yaml:"id_scope"`
		} `yaml:"provisioning"`
	}
	snippet := filepath.Join(dir, server.AgentSnippetName)
	decodeStrict(t, snippet, &ag)
	if ag.CAFile != st.CAFile || ag.Provisioning.GlobalEndpoint != st.DPS.GlobalEndpoint || ag.Provisioning.IDScope != st.DPS.IDScope {
		t.Errorf("agent snippet %+v", ag)
	}
	if b, _ := os.ReadFile(snippet); !strings.HasSuffix(string(b), "  id_scope: \""+st.DPS.IDScope+"\"\n") {
		t.Errorf("agent snippet does not end with the provisioning section:\n%s", b)
	}
	https, mqtt := "127.0.0.1:"+strconv.Itoa(st.Ports.HTTPS), "127.0.0.1:"+strconv.Itoa(st.Ports.MQTT)
	for _, h := range st.Hubs {
		for _, line := range []string{h.HostName + ":8883=" + mqtt, h.HostName + ":443=" + https,
			h.HostName + ":" + strconv.Itoa(st.Ports.HTTPS) + "=" + https} {
			if !slices.Contains(ag.Resolve, line) {
				t.Errorf("agent resolve lacks %s: %v", line, ag.Resolve)
			}
		}
	}
	if !slices.Contains(ag.Resolve, st.DPS.GlobalEndpoint+":443="+https) {
		t.Errorf("agent resolve lacks the DPS global endpoint: %v", ag.Resolve)
	}

	caPEM, err := os.ReadFile(op.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for _, lines := range [][]string{op.Resolve, ag.Resolve} {
		dial := resolver(t, lines)
		for _, l := range lines {
			from, _, _ := strings.Cut(l, "=")
			host, _, _ := net.SplitHostPort(from)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			raw, err := dial(ctx, "tcp", from)
			if err != nil {
				cancel()
				t.Fatalf("%s: %v", l, err)
			}
			c := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: pool})
			if err := c.HandshakeContext(ctx); err != nil {
				t.Errorf("%s: TLS: %v", l, err)
			}
			c.Close()
			cancel()
		}
	}

	// The operator config drives the service SDK as it is.
	svc, err := service.New(service.Config{ConnectionString: op.ConnectionString, RootCAs: pool, DialContext: resolver(t, op.Resolve)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	defer func() { _ = svc.Close() }()
	if _, err := svc.CreateDevice(ctx, "config-check"); err != nil {
		t.Errorf("creating a device with the operator config: %v", err)
	}
}

// The admin API needs the token from the status file.
func checkAdminAuth(t *testing.T, pool *x509.CertPool, st server.Status) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitTimeout}
	url := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(st.Ports.HTTPS)) + "/hubsim/hubs"
	for _, tt := range []struct {
		authz string
		want  int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer " + st.AdminToken, 200}} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tt.authz != "" {
			req.Header.Set("Authorization", tt.authz)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /hubsim/hubs with %q: %d, want %d", tt.authz, resp.StatusCode, tt.want)
		}
	}
}
