package packaging

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// lifecycleDeadline bounds every wait in the overlay test; the waits poll,
// so a slow machine only makes the test slower, not flaky.
const lifecycleDeadline = 60 * time.Second

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so cut after the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func readPid(root, name string) int {
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(lifecycleDeadline)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) until %s", lifecycleDeadline, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOverlayLifecycle unpacks the rootfs overlay (make image-overlay) into
// a BusyBox-only root and drives the agent with the shipped S95 script in a
// chroot: start, provision through hubsim and connect, respawn after the
// agent is killed, stop. The root and the agent are amd64: foreign-arch
// roots would need binfmt_misc for the emulated busybox to exec the agent.
func TestOverlayLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a simulator")
	}
	needTool(t, "tar", "tar")
	agent := agentBinary(t)
	root := newRoot(t)

	out := filepath.Join(work, "overlay")
	run(t, []string{"SOURCE_DATE_EPOCH=1700000000"}, filepath.Join(repoRoot(t), "packaging/scripts/overlay.sh"),
		agent, "amd64", "v1.0.0", out)
	tarball := filepath.Join(out, "porthole-agent-overlay_v1.0.0_amd64.tar.gz")
	listing := run(t, nil, "tar", "-tzvf", tarball)
	for _, want := range []string{"-rwxr-xr-x 0/0", "./usr/bin/porthole-agent", "-rw------- 0/0", "./etc/porthole/agent.yaml", "./etc/init.d/S95porthole-agent"} {
		if !strings.Contains(listing, want) {
			t.Errorf("overlay listing lacks %q:\n%s", want, listing)
		}
	}
	run(t, nil, "tar", "-xzpf", tarball, "-C", root)
	wantMode(t, root, binPath, 0o755)
	wantMode(t, root, configPath, 0o600)
	wantMode(t, root, "etc/init.d/S95porthole-agent", 0o755)
	wantMode(t, root, "var/lib/porthole", fs.ModeDir|0o700)

	// Point the agent at a simulator on loopback: its CA inside the root,
	// every sim host name resolved to the sim's listeners.
	sim := hubsimtest.New(t)
	key := sim.EnrollSymmetricKey("overlay-dev", nil)
	writeFile(t, root, "etc/porthole/ca.pem", readFile(t, "/", sim.CAFile), 0o644)
	var resolve strings.Builder
	for _, h := range sim.Config.HostNames() {
		fmt.Fprintf(&resolve, "  - %s:443=%s\n  - %s:8883=%s\n", h, sim.HTTPSAddr, h, sim.MQTTAddr)
	}
	writeFile(t, root, configPath, fmt.Sprintf(`provisioning:
  global_endpoint: %s
  id_scope: %s
  registration_id: overlay-dev
  attestation:
    type: symmetric_key
    symmetric_key: %s
ca_file: /etc/porthole/ca.pem
resolve:
%s`, sim.GlobalEndpoint, sim.IDScope, key, resolve.String()), 0o600)
	writeFile(t, root, "etc/default/porthole-agent", "RESPAWN_DELAY=1\nSTOP_TIMEOUT=20\n", 0o644)

	const sup, child = "var/run/porthole-agent.pid", "var/run/porthole-agent.child.pid"
	t.Cleanup(func() { // only does something when the test failed half-way
		for _, p := range []string{sup, child} {
			if pid := readPid(root, p); pid > 0 && alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	initScript := func(action string) (string, error) {
		return runErr(nil, "chroot", root, "/etc/init.d/S95porthole-agent", action)
	}
	connected := func() bool {
		out, err := runErr(nil, "chroot", root, "/usr/bin/porthole-agent", "status", "-json")
		if err != nil {
			return false
		}
		var st struct {
			Connected   bool   `json:"connected"`
			AssignedHub string `json:"assignedHub"`
		}
		return json.Unmarshal([]byte(out), &st) == nil && st.Connected && st.AssignedHub != ""
	}

	if out, err := initScript("start"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	waitUntil(t, "the agent is connected to the sim's hub", connected)
	first := readPid(root, child)
	if first == 0 || !alive(first) {
		t.Fatalf("no live agent pid in %s (%d)", child, first)
	}
	if out, err := initScript("start"); err != nil || !strings.Contains(out, "already running") {
		t.Errorf("second start: %v\n%s", err, out)
	}

	// The agent dies hard: the supervisor starts another one.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a new agent replaces the killed one", func() bool {
		pid := readPid(root, child)
		return pid != 0 && pid != first && alive(pid)
	})
	waitUntil(t, "the new agent is connected again", connected)
	second := readPid(root, child)
	supervisor := readPid(root, sup)

	if out, err := initScript("stop"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	waitUntil(t, "supervisor and agent are gone", func() bool { return !alive(supervisor) && !alive(second) })
	if out, err := initScript("status"); err == nil {
		t.Errorf("status after stop succeeded:\n%s", out)
	}
	wantGone(t, root, sup, child)
}
