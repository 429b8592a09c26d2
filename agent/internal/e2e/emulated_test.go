package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// emulatedFile is the scp size each way through the emulated agent: enough
// to cross many WebSocket frames and flow-control windows, small enough
// for an agent whose every instruction is emulated.
const emulatedFile = 8 << 20

// TestSSHEmulatedMipsle runs the agent as shipped for MIPS routers
// (linux/mipsle, soft float) under qemu-user against the hubsim process and
// a real sshd: it provisions through DPS, connects to its hub, bridges an
// ssh command and an scp both ways, and exits 0 on SIGTERM. The emulator is
// named on the command line, so no binfmt_misc registration is needed.
func TestSSHEmulatedMipsle(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	testStart := time.Now()
	qemu := hubsimtest.RequireTool(t, mipsle.qemu, "qemu-user-static")
	agent := crossAgent(t, mipsle)
	t.Logf("cross-built %s for linux/%s in %v", filepath.Base(agent), mipsle.goarch, time.Since(testStart).Round(time.Millisecond))

	dir := t.TempDir()
	opKey := newSSHKey(t, dir, "operator")
	sshd := startSSHD(t, dir, "sshd", opKey+".pub")
	worldStart := time.Now()
	w := newWorldExec(t, opKey, map[string]string{"ssh": sshd.addr}, []string{qemu, agent})
	w.dumpOnFailure(sshd.proc)
	t.Logf("emulated agent provisioned and connected %v after hubsim started", time.Since(worldStart).Round(time.Millisecond))

	// The process is the emulator running the foreign binary, not a host
	// build that slipped in.
	if exe, err := procExe(w.agent.pid()); err != nil || filepath.Base(exe) != filepath.Base(qemu) {
		t.Fatalf("agent process runs %q (%v), want %s", exe, err, qemu)
	}
	st := w.waitAgent("provisioned to "+hubHost, 10*time.Second, func(s *daemon.Status) bool {
		return s.Provisioned && s.Connected && s.AssignedHub == hubHost && s.DeviceID == deviceID
	})
	if st.Registrations < 1 {
		t.Errorf("agent reports %d DPS registrations, want at least 1", st.Registrations)
	}

	t.Run("status-cli", func(t *testing.T) {
		// The emulated CLI reads the emulated daemon's control socket.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := runCmd(command(ctx, qemu, agent, "-config", w.agentConfig, "status", "-json"), nil, nil)
		var got daemon.Status
		if r.err != nil || json.Unmarshal([]byte(r.stdout), &got) != nil {
			t.Fatalf("porthole-agent status -json: %v\n%s%s", r.err, r.stdout, r.stderr)
		}
		if !got.Connected || got.AssignedHub != hubHost {
			t.Errorf("status -json: connected=%v hub=%q, want connected to %s", got.Connected, got.AssignedHub, hubHost)
		}
	})

	t.Run("command", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := w.ssh(ctx, "ssh", sshd.user, `echo "porthole-mipsle $((6*7)) $SSH_CONNECTION"`, nil, nil)
		if r.err != nil {
			t.Fatalf("porthole ssh: %v\nstderr: %s", r.err, r.stderr)
		}
		_, port, _ := strings.Cut(sshd.addr, ":")
		if !strings.HasPrefix(r.stdout, "porthole-mipsle 42 127.0.0.1 ") || !strings.Contains(r.stdout, " 127.0.0.1 "+port) {
			t.Fatalf("output %q, want the command's output from sshd on %s", r.stdout, sshd.addr)
		}
		t.Logf("ssh command through the emulated agent took %v", r.took.Round(time.Millisecond))
	})

	t.Run("scp-8MiB", func(t *testing.T) {
		scpBothWays(t, w, "ssh", sshd.user, false, emulatedFile)
	})

	w.waitAgent("without open streams", 30*time.Second, func(s *daemon.Status) bool {
		return s.Streams.Open == 0 && s.Streams.Accepted >= 3 // ssh, scp up, scp down
	})
	stopped := w.agent.stop(t, true)
	t.Logf("emulated agent exited %v after SIGTERM", stopped.Round(time.Millisecond))
	w.sim.stop(t, true)
	sshd.stop(t, false)
	t.Logf("TestSSHEmulatedMipsle took %v", time.Since(testStart).Round(time.Millisecond))
}
