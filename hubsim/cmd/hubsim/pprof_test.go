package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/internal/server"
)

// TestRunPprof: -pprof serves the runtime profiles on the loopback address
// it names, says where in the status file, and stops with hubsim.
func TestRunPprof(t *testing.T) {
	dir := t.TempDir()
	statusPath := filepath.Join(dir, "status.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSignalWriter(), newSignalWriter()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"-https-port", "0", "-mqtt-port", "0", "-listen", "127.0.0.1", "-pprof", "127.0.0.1:0",
			"-state-dir", filepath.Join(dir, "state"), "-status-file", statusPath, "-log-level", "warn",
		}, stdout, stderr)
	}()
	select {
	case <-stdout.ready:
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
	host, _, err := net.SplitHostPort(st.Pprof)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("status pprof = %q, want 127.0.0.1:<port>", st.Pprof)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: waitTimeout}
	tests := []struct {
		path, want string
	}{
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/", "Types of profiles available"},
	}
	for _, tt := range tests {
		resp, err := cl.Get("http://" + st.Pprof + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s: %s, body starts %.80q; want 200 containing %q", tt.path, resp.Status, body, tt.want)
		}
	}
	tr.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after cancel")
	}
	if c, err := net.DialTimeout("tcp", st.Pprof, time.Second); err == nil {
		c.Close()
		t.Error("pprof port still open after run returned")
	}
}
