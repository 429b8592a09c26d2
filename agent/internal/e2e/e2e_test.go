package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

const (
	bigFile      = 256 << 20 // OpenSSH scp each way
	dropbearFile = 64 << 20  // dropbear scp each way
	sessions     = 8         // concurrent ssh sessions
	sessionBytes = 8 << 20   // each session's bytes each way
	opTimeout    = 3 * time.Minute
	// errorWithin bounds how long an operator may wait for a stream that
	// cannot work (rejected name, target down) to fail.
	errorWithin = 15 * time.Second
)

// TestSSH drives real SSH sessions through hubsim's streaming endpoint and
// porthole-agent: commands, large scp both ways against OpenSSH and
// dropbear, concurrent sessions, and the two ways a stream is refused.
func TestSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	dir := t.TempDir()
	opKey := newSSHKey(t, dir, "operator")
	authorized := opKey + ".pub"
	sshd := startSSHD(t, dir, "sshd", authorized)
	spare := startSSHD(t, dir, "sshd-spare", authorized) // stopped by the target-down case
	db := startDropbear(t, dir, authorized)
	w := newWorld(t, opKey, map[string]string{
		"ssh":      sshd.addr,
		"dropbear": db.addr,
		"spare":    spare.addr,
	})
	w.dumpOnFailure(sshd.proc, spare.proc, db.proc)

	t.Run("command", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := w.ssh(ctx, "ssh", sshd.user, `echo "porthole-e2e $((6*7)) $SSH_CONNECTION"`, nil, nil)
		if r.err != nil {
			t.Fatalf("porthole ssh: %v\nstderr: %s", r.err, r.stderr)
		}
		// $SSH_CONNECTION names sshd's own port: the command ran behind the
		// device's sshd, reached through the agent's loopback dial.
		_, port, _ := strings.Cut(sshd.addr, ":")
		if !strings.HasPrefix(r.stdout, "porthole-e2e 42 127.0.0.1 ") || !strings.Contains(r.stdout, " 127.0.0.1 "+port) {
			t.Fatalf("output %q, want the command's output from sshd on %s", r.stdout, sshd.addr)
		}
		t.Logf("ssh command took %v", r.took)
	})

	t.Run("scp-openssh-256MiB", func(t *testing.T) {
		scpBothWays(t, w, "ssh", sshd.user, false, bigFile)
	})

	t.Run("dropbear", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := w.ssh(ctx, "dropbear", db.user, `echo "dropbear-e2e $((6*7))"`, nil, nil)
		if r.err != nil || r.stdout != "dropbear-e2e 42\n" {
			t.Fatalf("porthole ssh to dropbear: %v, output %q\nstderr: %s", r.err, r.stdout, r.stderr)
		}
		// dropbear's scp has no SFTP server here: use the SCP protocol.
		scpBothWays(t, w, "dropbear", db.user, true, dropbearFile)
	})

	t.Run("concurrent", func(t *testing.T) {
		concurrentSessions(t, w, sshd)
	})

	t.Run("unknown-stream-rejected", func(t *testing.T) {
		before := w.waitAgent("answering", 10*time.Second, func(*daemon.Status) bool { return true })
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := w.stdio(ctx, "telnet")
		if r.err == nil || !strings.Contains(r.stderr, `device `+deviceID+` refused stream "telnet"`) {
			t.Errorf("porthole stdio --stream telnet: %v, stderr %q; want a rejection", r.err, r.stderr)
		}
		if r.took > errorWithin {
			t.Errorf("rejection took %v", r.took)
		}
		// porthole ssh opens the stream before ssh starts: the refusal is
		// porthole's own error (exit 1), ssh never runs.
		r = w.ssh(ctx, "telnet", sshd.user, "true", nil, nil)
		if code := exitCode(r.err); code != 1 || !strings.Contains(r.stderr, `device `+deviceID+` refused stream "telnet"`) {
			t.Errorf("porthole ssh --stream telnet: exit %d, stderr %q; want porthole's 1 and the refusal", code, r.stderr)
		}
		checkNoSecrets(t, r.stderr)
		after := w.waitAgent("counting the rejections", 10*time.Second, func(s *daemon.Status) bool {
			return s.Streams.Rejected >= before.Streams.Rejected+2
		})
		if !w.agent.logContains("no target for this stream name") {
			t.Errorf("agent log does not say why it rejected (status %+v)", after.Streams)
		}
	})

	t.Run("target-down", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if r := w.ssh(ctx, "spare", spare.user, "echo up", nil, nil); r.err != nil || r.stdout != "up\n" {
			t.Fatalf("spare sshd before stopping: %v %q\n%s", r.err, r.stdout, r.stderr)
		}
		spare.stop(t, false)
		r := w.stdio(ctx, "spare")
		if r.err == nil || !strings.Contains(r.stderr, `device `+deviceID+` refused stream "spare"`) {
			t.Errorf("porthole stdio to a stopped sshd: %v, stderr %q; want a rejection", r.err, r.stderr)
		}
		if r.took > errorWithin {
			t.Errorf("operator waited %v for the error", r.took)
		}
		r = w.ssh(ctx, "spare", spare.user, "true", nil, nil)
		if code := exitCode(r.err); code != 1 || r.took > errorWithin || !strings.Contains(r.stderr, `refused stream "spare"`) {
			t.Errorf("porthole ssh to a stopped sshd: exit %d after %v, stderr %q", code, r.took, r.stderr)
		}
		t.Logf("target down reported in %v: %s", r.took, strings.TrimSpace(r.stderr))
	})

	// Every stream is closed on the device side too, then everything
	// stops cleanly.
	w.waitAgent("without open streams", 30*time.Second, func(s *daemon.Status) bool { return s.Streams.Open == 0 })
	w.stop()
	sshd.stop(t, false)
	db.stop(t, false)
}

// scpBothWays copies size random bytes to the device and back with scp and
// compares SHA-256 sums.
func scpBothWays(t *testing.T, w *world, stream, user string, legacy bool, size int64) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	want := randomFile(t, src, size)
	remote := filepath.Join(dir, "on-device.bin") // the "device" shares this file system
	back := filepath.Join(dir, "back.bin")

	r := w.scp(ctx, stream, legacy, src, user+"@"+deviceID+":"+remote)
	if r.err != nil {
		t.Fatalf("scp up: %v\n%s", r.err, r.stderr)
	}
	if got := fileSum(t, remote); got != want {
		t.Fatalf("uploaded file differs: sha256 %s, want %s", got, want)
	}
	t.Logf("scp up %d MiB: %v (%.1f MiB/s)", size>>20, r.took.Round(time.Millisecond), mibps(size, r.took))
	os.Remove(src)

	r = w.scp(ctx, stream, legacy, user+"@"+deviceID+":"+remote, back)
	if r.err != nil {
		t.Fatalf("scp down: %v\n%s", r.err, r.stderr)
	}
	if got := fileSum(t, back); got != want {
		t.Fatalf("downloaded file differs: sha256 %s, want %s", got, want)
	}
	t.Logf("scp down %d MiB: %v (%.1f MiB/s)", size>>20, r.took.Round(time.Millisecond), mibps(size, r.took))
}

// concurrentSessions runs sessions ssh sessions at once; each sends its
// own random bytes (the device hashes them) and receives a different file
// (hashed here).
func concurrentSessions(t *testing.T, w *world, sshd *sshServer) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	dir := t.TempDir()
	type session struct {
		up, downPath   string
		upSum, downSum string
		res            cmdResult
		gotUp, gotDown string
	}
	ss := make([]*session, sessions)
	for i := range ss {
		up := make([]byte, sessionBytes)
		if _, err := rand.Read(up); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(up)
		s := &session{up: string(up), upSum: hex.EncodeToString(sum[:]), downPath: filepath.Join(dir, fmt.Sprintf("down-%d.bin", i))}
		s.downSum = randomFile(t, s.downPath, sessionBytes)
		ss[i] = s
	}
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() { // owned by this function: waited for below
			defer wg.Done()
			var out bytes.Buffer
			s.res = w.ssh(ctx, "ssh", sshd.user, "sha256sum; cat "+s.downPath, strings.NewReader(s.up), &out)
			line, rest, _ := strings.Cut(out.String(), "\n")
			s.gotUp, _, _ = strings.Cut(line, " ")
			sum := sha256.Sum256([]byte(rest))
			s.gotDown = hex.EncodeToString(sum[:])
		}()
	}
	wg.Wait()
	for i, s := range ss {
		if s.res.err != nil {
			t.Errorf("session %d: %v\n%s", i, s.res.err, s.res.stderr)
			continue
		}
		if s.gotUp != s.upSum {
			t.Errorf("session %d: device hashed %q, sent %s", i, s.gotUp, s.upSum)
		}
		if s.gotDown != s.downSum {
			t.Errorf("session %d: received bytes hash to %s, file %s", i, s.gotDown, s.downSum)
		}
		t.Logf("session %d: %d MiB each way in %v", i, sessionBytes>>20, s.res.took.Round(time.Millisecond))
	}
}

// TestRelayKilledMidTransfer kills hubsim (the streaming endpoint) during a
// large scp: the operator's scp and the agent's stream must both end with
// an error in bounded time, the agent must keep running, and once hubsim
// is back on the same ports (with its state: nobody enrolls the device
// again) the agent reconnects and serves SSH again.
func TestRelayKilledMidTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	requireLinux(t)
	dir := t.TempDir()
	opKey := newSSHKey(t, dir, "operator")
	sshd := startSSHD(t, dir, "sshd", opKey+".pub")
	w := newWorld(t, opKey, map[string]string{"ssh": sshd.addr})
	w.dumpOnFailure(sshd.proc)

	src := filepath.Join(dir, "src.bin")
	randomFile(t, src, bigFile)
	remote := filepath.Join(dir, "on-device.bin")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	scp := hubsimtest.RequireTool(t, "scp", "openssh-client")
	args := append(w.sshOpts(), "-q", "-o", "ProxyCommand="+w.proxyCommand("ssh"), src, sshd.user+"@"+deviceID+":"+remote)
	cmd := command(ctx, scp, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scpDone := make(chan error, 1)
	go func() { scpDone <- cmd.Wait() }() // owned by the test: received below

	// Kill hubsim once the transfer is well under way.
	err := testwait.Wait(time.Minute, "16 MiB of the transfer on the device", func() (bool, string) {
		st, err := os.Stat(remote)
		if err == nil && st.Size() >= 16<<20 {
			return true, ""
		}
		select {
		case err := <-scpDone:
			t.Fatalf("scp ended before hubsim was killed: %v\n%s", err, stderr.String())
		default:
		}
		if err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("%d bytes", st.Size())
	})
	if err != nil {
		cmd.Process.Kill()
		<-scpDone
		t.Fatalf("the transfer did not start: %v\n%s", err, stderr.String())
	}
	ports := w.sim.status.Ports
	killed := time.Now()
	w.sim.kill()

	select {
	case err := <-scpDone:
		if err == nil {
			t.Errorf("scp succeeded although the streaming endpoint died mid-transfer")
		}
		t.Logf("operator side: scp ended %v after the kill: %v: %s", time.Since(killed).Round(time.Millisecond), err, strings.TrimSpace(stderr.String()))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-scpDone
		t.Errorf("scp still running 30 s after the streaming endpoint died")
	}
	st := w.waitAgent("rid of the broken stream and the hub", 30*time.Second, func(s *daemon.Status) bool {
		return s.Streams.Open == 0 && !s.Connected
	})
	t.Logf("device side: stream closed %v after the kill (agent connected=%v phase=%s)", time.Since(killed).Round(time.Millisecond), st.Connected, st.Phase)
	if !w.agent.logContains(`msg="stream closed"`) {
		t.Errorf("the agent did not log the stream's end")
	}
	if st, err := os.Stat(remote); err == nil && st.Size() >= bigFile {
		t.Errorf("the device received the whole file although the relay died")
	}

	// hubsim comes back on the same ports with the same keys and CA.
	oldCS := w.sim.status.hubConnectionString(hubHost)
	w.sim = startSim(t, w.dir, ports.HTTPS, ports.MQTT)
	if w.sim.status.hubConnectionString(hubHost) != oldCS {
		t.Fatal("hubsim restarted with other keys")
	}
	restarted := time.Now()
	w.waitAgent("reconnected", 2*time.Minute, func(s *daemon.Status) bool { return s.Connected })
	t.Logf("agent reconnected %v after hubsim restarted", time.Since(restarted).Round(time.Millisecond))
	r := w.ssh(ctx, "ssh", sshd.user, "echo back", nil, nil)
	if r.err != nil || r.stdout != "back\n" {
		t.Fatalf("ssh after the restart: %v %q\n%s", r.err, r.stdout, r.stderr)
	}
	w.waitAgent("without open streams", 30*time.Second, func(s *daemon.Status) bool { return s.Streams.Open == 0 })
	w.stop()
	sshd.stop(t, false)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// checkNoSecrets fails when s shows a key or token.
func checkNoSecrets(t *testing.T, s string) {
	t.Helper()
	for _, bad := range []string{"SharedAccessKey=", "SharedAccessSignature", "sig="} {
		if strings.Contains(s, bad) {
			t.Errorf("output shows a secret (%s): %q", bad, s)
		}
	}
}
