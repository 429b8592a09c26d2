package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/dps"
	"github.com/porthole-iot/porthole/sdk/health"
	"github.com/porthole-iot/porthole/sdk/iothub"
)

// fleet is hubsim with two hubs and devices provisioned through DPS onto
// each, and an operator config naming both hubs and DPS.
type fleet struct {
	sim    *hubsimtest.Sim
	config string // the config file's path
	e      *env
}

const (
	hubEU = "hub-eu.local"
	hubUS = "hub-us.local"
)

func newFleet(t *testing.T) *fleet {
	t.Helper()
	sim := hubsimtest.New(t)
	dir := t.TempDir()
	// hub-us's credential by file reference, relative to the config.
	if err := os.WriteFile(filepath.Join(dir, "us.cs"), []byte(sim.HubConnectionString(hubUS)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(sim.Server.HTTPSPort())
	var resolve []string
	for _, h := range []string{hubEU, hubUS, sim.DPSHostName} {
		resolve = append(resolve, `"`+h+":443="+sim.HTTPSAddr+`"`, `"`+h+":"+port+"="+sim.HTTPSAddr+`"`)
	}
	cfg := "hubs:\n" +
		"  hub-eu:\n    connection_string: " + sim.HubConnectionString(hubEU) + "\n" +
		"  hub-us:\n    connection_string_file: us.cs\n" +
		"dps:\n  connection_string: " + sim.DPSConnectionString() + "\n" +
		"ca_file: " + sim.CAFile + "\n" +
		"resolve: [" + strings.Join(resolve, ", ") + "]\n"
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fleet{sim: sim, config: path, e: testEnv(t, nil)}
}

// run runs porthole with the fleet's config.
func (f *fleet) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	var out, errOut syncBuffer
	err = runEnv(ctx, f.e, append(args, "--config", f.config), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// fleetDevice is a device provisioned through DPS, connected with the SDK
// client: it echoes stream "ssh", refuses every other stream (reporting
// the refusal in its twin the way the agent does), and reports health.
type fleetDevice struct {
	id, hub string
	// serve, if set, serves stream "ssh" instead of the echo.
	serve  func(ctx context.Context, conn net.Conn)
	c      *iothub.Client
	mu     sync.Mutex
	report health.Report
}

func (f *fleet) device(t *testing.T, id, hub string) *fleetDevice {
	t.Helper()
	return f.deviceServing(t, id, hub, nil)
}

func (f *fleet) deviceServing(t *testing.T, id, hub string, serve func(ctx context.Context, conn net.Conn)) *fleetDevice {
	t.Helper()
	key := f.sim.EnrollSymmetricKey(id, func(en *hubsimtest.IndividualEnrollment) {
		en.IoTHubs = []string{hub}
		en.AllocationPolicy = "static"
	})
	ctx, cancel := timeoutCtx(t)
	defer cancel()
	pc, err := dps.New(dps.Config{GlobalEndpoint: f.sim.GlobalEndpoint, IDScope: f.sim.IDScope, RegistrationID: id,
		SymmetricKey: key, RootCAs: f.sim.CAPool, DialContext: f.sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pc.Register(ctx, nil)
	if err != nil || res.AssignedHub != hub {
		t.Fatalf("register %s: %+v %v", id, res, err)
	}
	c, err := iothub.Dial(ctx, iothub.Config{HostName: hub, DeviceID: id, SharedAccessKey: key, RootCAs: f.sim.CAPool, DialContext: f.sim.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	d := &fleetDevice{id: id, hub: hub, c: c, serve: serve}
	started := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	d.report = health.Report{Version: "1.2.3-test", Started: health.At(started),
		Hub:          health.Hub{Transport: "mqtt", Connected: true, Since: health.At(started)},
		Provisioning: health.Provisioning{Hub: hub, DeviceID: id}}
	c.OnStreamRequest(func(ctx context.Context, req *iothub.StreamRequest) {
		if req.Name != "ssh" {
			d.mu.Lock()
			d.report.LastRejection = &health.Rejection{Stream: req.Name, Reason: health.TargetUnreachable("127.0.0.1:80", "connection refused"), At: health.At(time.Now())}
			rep := d.report
			d.mu.Unlock()
			_ = req.Reject(ctx)
			_, _ = c.UpdateReported(ctx, rep.Patch())
			return
		}
		conn, err := req.Accept(ctx)
		if err != nil {
			return
		}
		defer conn.Close()
		if d.serve != nil {
			d.serve(ctx, conn)
			return
		}
		_, _ = io.Copy(conn, conn)
	})
	if err := c.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	rep := d.report
	d.mu.Unlock()
	if _, err := c.UpdateReported(ctx, rep.Patch()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFleetStdioOnEitherHub: one config, devices on two hubs; stdio finds
// each device's hub through DPS, caches it (0600), and a stale cache entry
// that gets DeviceNotFound is looked up again once.
func TestFleetStdioOnEitherHub(t *testing.T) {
	f := newFleet(t)
	f.device(t, "dev-eu", hubEU)
	f.device(t, "dev-us", hubUS)
	for _, id := range []string{"dev-eu", "dev-us"} {
		echo(t, f, id)
	}
	cache := openCache(f.e, "")
	if h, ok := cache.get("dev-us", time.Hour); !ok || h != hubUS {
		t.Errorf("cache has dev-us on %q %v", h, ok)
	}
	st, err := os.Stat(cache.path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file %v %v", st, err)
	}
	// A stale entry: dev-us moved (here: the cache says hub-eu).
	if err := cache.put("dev-us", hubEU); err != nil {
		t.Fatal(err)
	}
	echo(t, f, "dev-us")
	if h, _ := cache.get("dev-us", time.Hour); h != hubUS {
		t.Errorf("stale entry not refreshed: %q", h)
	}
	// --hub overrides; the wrong hub does not know the device.
	if _, _, err := f.run(t, "stdio", "dev-us", "--hub", "hub-eu"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("--hub hub-eu for dev-us: %v", err)
	}
	if _, _, err := f.run(t, "stdio", "dev-us", "--hub", "nope"); err == nil || !strings.Contains(err.Error(), "configured: hub-eu, hub-us") {
		t.Errorf("--hub nope: %v", err)
	}
	// A device no hub knows.
	if _, _, err := f.run(t, "status", "ghost"); err == nil || !strings.Contains(err.Error(), `device "ghost" is on none of the configured hubs (hub-eu, hub-us); DPS has no registration for "ghost"`) {
		t.Errorf("ghost: %v", err)
	}
}

// echo sends a line through "porthole stdio <id>.porthole" (the ssh-config
// host name: the suffix is stripped) and reads it back.
func echo(t *testing.T, f *fleet, id string) {
	t.Helper()
	stdioRoundTrip(t, f.e, []string{"stdio", id + ".porthole", "--config", f.config}, "hello "+id+"\n")
}

// TestFleetDevicesAndStatus: devices across both hubs, table and JSON;
// status of one device in detail, table and JSON.
func TestFleetDevicesAndStatus(t *testing.T) {
	f := newFleet(t)
	f.device(t, "dev-eu", hubEU)
	f.device(t, "dev-us", hubUS)
	f.sim.CreateDevice(hubUS, "plain") // no agent, never connected

	out, _, err := f.run(t, "devices", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []deviceRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]deviceRow{}
	for _, r := range rows {
		got[r.DeviceID] = r
	}
	if len(rows) != 3 || got["dev-eu"].Hub != "hub-eu" || got["dev-us"].Hub != "hub-us" || got["plain"].Hub != "hub-us" {
		t.Fatalf("rows %+v", rows)
	}
	if r := got["dev-us"]; r.ConnectionState != "Connected" || r.AgentVersion != "1.2.3-test" || r.Health != "ok" || r.LastActivityTime == nil {
		t.Errorf("dev-us %+v", r)
	}
	if r := got["plain"]; r.ConnectionState != "Disconnected" || r.AgentVersion != "" || r.Health != "no report" {
		t.Errorf("plain %+v", r)
	}

	// One twin per page: the continuation tokens are followed to the end.
	out, _, err = f.run(t, "devices", "--hub", "hub-us", "--query", "SELECT * FROM devices", "--page-size", "1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DEVICE") || !strings.Contains(lines[0], "HEALTH") {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "dev-us" || f[1] != "hub-us" || f[2] != "connected" || f[len(f)-2] != "1.2.3-test" || f[len(f)-1] != "ok" {
		t.Errorf("row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "plain" || f[2] != "disconnected" || f[3] != "-" {
		t.Errorf("row %q", lines[2])
	}

	// status, after a refused stream.
	if _, _, err := f.run(t, "stdio", "dev-us", "--stream", "web"); err == nil {
		t.Fatal("stream web accepted")
	}
	out, _, err = f.run(t, "status", "dev-us", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st deviceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Hub != "hub-us" || st.HubHost != hubUS || !st.Online || st.AgentVersion != "1.2.3-test" || st.UptimeSeconds < 3500 ||
		st.OpenStreams == nil || st.LastRejection == nil || st.LastRejection.Stream != "web" || st.LastRejection.Reason != "target 127.0.0.1:80 is not answering (connection refused)" {
		t.Errorf("status %s", out)
	}
	out, _, err = f.run(t, "status", "dev-eu")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"device:", "dev-eu", "hub:", "hub-eu (hub-eu.local, found via", "online:", "yes", "agent version:", "1.2.3-test",
		"uptime:", "1h0m", "streams:", "0 open", "last rejection:", "none", "last error:", "health:", "ok"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}
}

// TestFleetRefusalReason: a refused stream is reported with the device's
// own reason, read from its twin.
func TestFleetRefusalReason(t *testing.T) {
	f := newFleet(t)
	f.device(t, "dev-eu", hubEU)
	_, _, err := f.run(t, "stdio", "dev-eu", "--stream", "web")
	var re *refusedError
	if !errors.As(err, &re) || err.Error() != `device dev-eu refused stream "web": target 127.0.0.1:80 is not answering (connection refused)` {
		t.Fatalf("err %v", err)
	}
}

// TestFleetSSHProgressAndRefusal: porthole ssh opens the stream before ssh
// runs: a refusal is porthole's own message and ssh never starts; on a
// terminal one progress line names the hub.
func TestFleetSSHProgressAndRefusal(t *testing.T) {
	f := newFleet(t)
	f.device(t, "dev-us", hubUS)
	ran := false
	f.e.command = func(ctx context.Context, name string, args ...string) *exec.Cmd {
		ran = true
		return exec.CommandContext(ctx, "false")
	}
	f.e.isTerminal = func(io.Writer) bool { return true }
	_, stderr, err := f.run(t, "ssh", "dev-us", "--stream", "web")
	if err == nil || err.Error() != `device dev-us refused stream "web": target 127.0.0.1:80 is not answering (connection refused)` || ran {
		t.Fatalf("err %v, ssh ran %v", err, ran)
	}
	if stderr != "connecting to dev-us via hub-us… failed\n" {
		t.Errorf("progress %q", stderr)
	}
	_, stderr, err = f.run(t, "ssh", "dev-us", "-q", "--stream", "web")
	if err == nil || stderr != "" {
		t.Errorf("-q: %v %q", err, stderr)
	}
	var ee *exitError
	_, stderr, err = f.run(t, "ssh", "dev-us")
	if !errors.As(err, &ee) || !ran || !strings.HasPrefix(stderr, "connecting to dev-us via hub-us… accepted in ") {
		t.Errorf("ssh: %v ran %v stderr %q", err, ran, stderr)
	}
}

func TestHealthSummary(t *testing.T) {
	at := func(s string) health.Time { v, _ := time.Parse(time.RFC3339, s); return health.At(v) }
	rep := func(since, errAt string) *health.Report {
		h := &health.Report{}
		h.Hub.Since = at(since)
		if errAt != "" {
			h.LastError = &health.Event{Message: "dps: 401", At: at(errAt)}
		}
		return h
	}
	for _, tc := range []struct {
		name, state string
		h           *health.Report
		want        string
	}{
		{"no report", "Connected", nil, "no report"},
		{"offline", "Disconnected", rep("2026-01-01T00:00:00Z", ""), "stale"},
		{"healthy", "Connected", rep("2026-01-01T00:00:00Z", ""), "ok"},
		{"error before the connection", "Connected", rep("2026-01-01T00:00:00Z", "2025-12-31T23:00:00Z"), "ok"},
		{"error since", "Connected", rep("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"), "error: dps: 401"},
	} {
		if got := healthSummary(tc.state, tc.h); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
