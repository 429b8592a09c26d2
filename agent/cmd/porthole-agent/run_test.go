package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/service"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "dGVzdC1kZXZpY2Uta2V5LW5vdC10aGUtc2FtcGxlJ3M="

// TestDeps guards the binary: it must not link test or debug-server
// packages, nor the simulator, nor packages that only bloat a device binary
// (SIZE.md); the default build must keep doctor and the service verbs, and
// the porthole_minimal build must leave exactly those out.
func TestDeps(t *testing.T) {
	const (
		doctorPkg  = "github.com/porthole-iot/porthole/agent/internal/doctor"
		servicePkg = "github.com/kardianos/service"
	)
	for _, tags := range []string{"", "porthole_minimal"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").Output()
		if err != nil {
			t.Fatalf("go list -tags %q: %v", tags, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list returned %d packages", len(deps))
		}
		linked := map[string]bool{}
		for _, d := range deps {
			linked[d] = true
			switch {
			case d == "testing", strings.HasPrefix(d, "testing/"),
				d == "net/http/httptest", d == "net/http/pprof", d == "expvar",
				d == "text/template", d == "html/template", d == "encoding/xml",
				d == "os/user", d == "text/tabwriter", strings.HasPrefix(d, "debug/"),
				strings.HasPrefix(d, "github.com/porthole-iot/porthole/hubsim"),
				strings.HasPrefix(d, "github.com/prometheus/"): // metrics are written by hand (agent/internal/metrics)
				t.Errorf("porthole-agent (tags %q) links %s", tags, d)
			}
		}
		full := tags == ""
		for _, p := range []string{doctorPkg, servicePkg} {
			if linked[p] != full {
				t.Errorf("porthole-agent (tags %q): links %s = %v, want %v", tags, p, linked[p], full)
			}
		}
	}
}

func writeConfig(t *testing.T, extra string) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	path = filepath.Join(dir, "agent.yaml")
	y := fmt.Sprintf("provisioning:\n  id_scope: 0ne00000001\n  registration_id: dev1\n  attestation:\n    type: symmetric_key\n    symmetric_key: %s\nstate_dir: %s\n%s", testKey, stateDir, extra)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stateDir
}

func TestCommandLine(t *testing.T) {
	good, _ := writeConfig(t, "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("provisioning:\n  id_scop: x\n"), 0o600)
	for _, tc := range []struct {
		name      string
		args      []string
		env       string
		wantUsage bool
		wantErr   string
		wantOut   string
	}{
		{name: "no command", args: nil, wantUsage: true},
		{name: "unknown command", args: []string{"fly"}, wantUsage: true},
		{name: "bad flag", args: []string{"-nope", "run"}, wantUsage: true},
		{name: "extra args", args: []string{"validate", "x"}, wantUsage: true},
		{name: "help", args: []string{"-h"}, wantOut: "usage: porthole-agent"},
		{name: "version", args: []string{"version"}, wantOut: "porthole-agent "},
		{name: "validate ok", args: []string{"-config", good, "validate"}, wantOut: good + ": OK"},
		{name: "validate flag after verb", args: []string{"validate", "-config", good}, wantOut: ": OK"},
		{name: "validate env", args: []string{"validate"}, env: good, wantOut: ": OK"},
		{name: "validate bad", args: []string{"-config", bad, "validate"}, wantErr: `bad.yaml:2: provisioning.id_scop: unknown`, wantOut: "\n4 problems\n"},
		{name: "status without agent", args: []string{"-config", good, "status"}, wantErr: "not running; start it with", wantOut: "not running; start it with "},
		{name: "reprovision without agent", args: []string{"-config", good, "reprovision"}, wantErr: "the agent is not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(configEnv, tc.env)
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			var ue *usageError
			switch {
			case tc.wantUsage:
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.wantOut)
			}
		})
	}
}

// TestRunAgainstHubsim runs the "run" verb with nothing but a config file:
// the config's resolve entries and ca_file take the agent to hubsim, as a
// field technician would point it at a lab simulator. Then "status" and
// "reprovision" talk to it over the socket.
func TestRunAgainstHubsim(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	sim := hubsimtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dpsc, err := service.NewDPS(service.Config{ConnectionString: sim.DPSConnectionString(), RootCAs: sim.CAPool, DialContext: sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	defer dpsc.Close()
	key := hubsimtest.NewKey(t)
	if _, err := dpsc.PutEnrollment(ctx, service.IndividualEnrollment{
		RegistrationID: "dev1",
		Attestation: &service.AttestationMechanism{Type: service.AttestationSymmetricKey,
			SymmetricKey: &service.SymmetricKeyAttestation{PrimaryKey: key, SecondaryKey: hubsimtest.NewKey(t)}},
		IoTHubHostName: "hub-eu.local",
	}); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("ca_file: %s\nresolve:\n  - %s:443=%s\n  - hub-eu.local:8883=%s\n",
		sim.CAFile, sim.GlobalEndpoint, sim.HTTPSAddr, sim.MQTTAddr)
	path, stateDir := writeConfig(t, extra)
	// The config's identity: rewrite scope and endpoint for the sim.
	data, _ := os.ReadFile(path)
	data = bytes.Replace(data, []byte("id_scope: 0ne00000001"), []byte("global_endpoint: "+sim.GlobalEndpoint+"\n  id_scope: "+sim.IDScope), 1)
	data = bytes.Replace(data, []byte(testKey), []byte(key), 1)
	os.WriteFile(path, data, 0o600)

	runCtx, stop := context.WithCancel(ctx)
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"-config", path, "run"}, &bytes.Buffer{}, lw) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		lw.mu.Lock()
		t.Log(logs.String())
		lw.mu.Unlock()
	}()

	until, _ := ctx.Deadline()
	testwait.For(t, time.Until(until), "the agent to connect (status -json)", func() (bool, string) {
		var out, errOut bytes.Buffer
		if err := run(ctx, []string{"-config", path, "status", "-json"}, &out, &errOut); err != nil {
			return false, fmt.Sprintf("status: %v: %s", err, errOut.String())
		}
		var st daemon.Status
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			t.Fatalf("status -json: %v: %s", err, out.String())
		}
		return st.Connected, out.String()
	})
	var out bytes.Buffer
	if err := run(ctx, []string{"-config", path, "status"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"connected", "yes", "device dev1 on hub-eu.local (initialAssignment)"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("status lacks %q:\n%s", s, out.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"-config", path, "reprovision"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "registered: device dev1 on hub-eu.local") {
		t.Errorf("reprovision printed %q", out.String())
	}
	if _, err := os.Stat(daemon.SocketPath(stateDir)); err != nil {
		t.Errorf("socket: %v", err)
	}

	// The metrics verb asks the running agent.
	out.Reset()
	if err := run(ctx, []string{"-config", path, "metrics"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	fams := parseProm(t, out.Bytes())
	for name, want := range map[string]float64{"porthole_agent_up": 1, "porthole_agent_hub_connected": 1, "porthole_agent_streams_open": 0} {
		if f := fams[name]; f == nil || f.GetMetric()[0].GetGauge().GetValue() != want {
			t.Errorf("%s = %v, want %v", name, f, want)
		}
	}
	if f := fams["porthole_agent_dps_registrations_total"]; f == nil || f.GetMetric()[0].GetCounter().GetValue() < 1 {
		t.Errorf("registrations %v", f)
	}

	// A broken edit of the config on disk: status still finds the running
	// agent (through the state_dir line) and shows the error on its own
	// line.
	good, _ := os.ReadFile(path)
	broken := bytes.Replace(good, []byte("provisioning:\n"), []byte("provisioning:\n\tid_scope: [\n"), 1)
	os.WriteFile(path, broken, 0o600)
	out.Reset()
	if err := run(ctx, []string{"-config", path, "status"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("status with a broken config: %v\n%s", err, out.String())
	}
	for _, s := range []string{"connected     yes", "config error  " + path + ":2: syntax error"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("status with a broken config lacks %q:\n%s", s, out.String())
		}
	}
	os.WriteFile(path, good, 0o600)

	checkDoctor(ctx, t, path)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
