package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
)

// TestDrainTellsOperator stops the agent (SIGTERM) under an open
// interactive-style ssh session: after the grace period the agent cuts the
// stream with status 1001, and the operator's terminal shows porthole's
// line saying the stream was closed by the far end, not only ssh's own
// complaint.
func TestDrainTellsOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	dir := t.TempDir()
	opKey := newSSHKey(t, dir, "operator")
	sshd := startSSHD(t, dir, "sshd", opKey+".pub")
	w := newWorld(t, opKey, map[string]string{"ssh": sshd.addr})
	w.dumpOnFailure(sshd.proc)

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	args := []string{"ssh", sshd.user + "@" + deviceID, "--stream", "ssh", "--config", w.opConfig, "--"}
	args = append(args, w.sshOpts()...)
	args = append(args, "sleep 300")
	cmd := command(ctx, binaries(t).porthole, args...)
	var stderr bytes.Buffer // read only after Wait
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // owned by the test: received below

	w.waitAgent("serving the session", 30*time.Second, func(s *daemon.Status) bool { return s.Streams.Open == 1 })
	stopped := w.agent.stop(t, true) // drains for the grace period, then cuts
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("ssh succeeded although the agent went away")
		}
		t.Logf("agent stopped in %v; operator saw: %s", stopped.Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ssh still running 30 s after the agent stopped\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "stream closed by the far end: status 1001 (going away)") {
		t.Errorf("the operator was not told why the session ended:\n%s", stderr.String())
	}
	w.sim.stop(t, true)
	sshd.stop(t, false)
}
