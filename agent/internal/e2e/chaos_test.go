package e2e

// The chaos suite: the shipped binaries (hubsim, porthole-agent, porthole)
// and OpenSSH, with the device — the agent and its sshd — in a network
// namespace of its own, joined to the test's namespace by a veth pair.
// hubsim listens on this side of the pair; a partition is an nftables table
// in the device's namespace that drops everything to and from hubsim's
// address (nothing else on the machine is touched, and every address used
// belongs to the namespaces the test makes).
//
// Each scenario asserts what the operator sees and that no byte is
// corrupted (SHA-256 of every transfer), and adds a row to a table that is
// logged and written to out/chaos.txt: scenario, what was seen, recovery
// time, data intact.
//
// TestChaos runs the short form (30-second partitions, hubsim killed and
// restarted, a stream across a token renewal, SIGTERM drain, disk full) in
// `make test`; PORTHOLE_CHAOS=full (`make chaos`) adds the five-minute
// partitions. It needs root, ip (iproute2) and nft (nftables): without them
// it skips, except under CI=true where it fails naming the missing tool.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porthole-iot/porthole/agent/internal/daemon"
	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// chaosEnv set to "full" adds the long scenarios.
const chaosEnv = "PORTHOLE_CHAOS"

// maxRecovery is how soon after the network returns the device must be
// reachable again (the "about a minute", with room for a loaded
// machine).
const maxRecovery = 90 * time.Second

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite")
	}
	requireLinux(t)
	requireRoot(t, "the chaos suite makes network namespaces")
	full := os.Getenv(chaosEnv) == "full"
	var table chaosTable
	t.Cleanup(func() { table.write(t) })

	t.Run("partition-30s-idle", func(t *testing.T) { chaosPartitionIdle(t, &table, 30*time.Second) })
	t.Run("partition-30s-transfer", func(t *testing.T) { chaosPartitionTransfer(t, &table, 30*time.Second) })
	if full {
		t.Run("partition-5m-idle", func(t *testing.T) { chaosPartitionIdle(t, &table, 5*time.Minute) })
		t.Run("partition-5m-transfer", func(t *testing.T) { chaosPartitionBreaksTransfer(t, &table, 5*time.Minute) })
	}
	t.Run("hubsim-kill9-restart", func(t *testing.T) { chaosHubsimKilled(t, &table) })
	t.Run("token-renewal-during-stream", func(t *testing.T) { chaosTokenRenewal(t, &table) })
	t.Run("sigterm-drain", func(t *testing.T) { chaosDrain(t, &table) })
	t.Run("disk-full", func(t *testing.T) { chaosDiskFull(t, &table) })
}

// chaosPartitionIdle cuts an idle, connected device off for d, then
// measures how long after the network returns ssh through it works.
func chaosPartitionIdle(t *testing.T, table *chaosTable, d time.Duration) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{})
	n.partition(t)
	time.Sleep(d) // the scenario: the network is gone this long
	n.heal(t)
	rec := w.waitSSHWorks(t, sshd, maxRecovery)
	st, _ := w.agentStatus(context.Background())
	seen := "ssh works again"
	if st != nil {
		seen += fmt.Sprintf("; agent connected=%v, registrations=%d", st.Connected, st.Registrations)
	}
	table.add(t.Name(), seen, rec, "n/a (no transfer)")
	w.stop()
	sshd.stop(t, false)
}

// chaosPartitionTransfer cuts the network for d while data moves both
// ways; the transfers must finish intact once it returns.
func chaosPartitionTransfer(t *testing.T, table *chaosTable, d time.Duration) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{})
	// ssh must not give up during the partition (the point is that the
	// stream survives it).
	patient := []string{"-o", "ServerAliveInterval=30", "-o", "ServerAliveCountMax=8"}
	const size = 12 << 20
	up := w.startUpload(t, sshd.user, size, patient)
	down := w.startDownload(t, sshd.user, size, patient)
	testwait.True(t, time.Minute, "a quarter of each transfer", func() bool {
		return up.moved.Load() >= size/4 && down.moved.Load() >= size/4
	})
	n.partition(t)
	time.Sleep(d) // the scenario, not synchronisation: the network is gone this long
	n.heal(t)
	healed := time.Now()
	up.wait(t, 3*time.Minute)
	down.wait(t, 3*time.Minute)
	rec := time.Since(healed)
	intact := up.intact() && down.intact()
	if !intact {
		t.Errorf("corrupted or failed transfer: up %s / down %s", up.describe(), down.describe())
	}
	table.add(t.Name(), "12 MiB up and down finished after the partition", rec, okString(intact, "sha256 equal both ways"))
	w.stop()
	sshd.stop(t, false)
}

// chaosPartitionBreaksTransfer cuts the network for d (longer than any
// keepalive) during a transfer: the operator must be told within about a
// minute instead of hanging for the whole partition, and once the network
// returns a new transfer must work intact.
func chaosPartitionBreaksTransfer(t *testing.T, table *chaosTable, d time.Duration) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{})
	const size = 12 << 20
	up := w.startUpload(t, sshd.user, size, []string{"-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"})
	testwait.True(t, time.Minute, "a quarter of the transfer", func() bool { return up.moved.Load() >= size/4 })
	n.partition(t)
	cut := time.Now()
	up.wait(t, d) // must end while the network is still gone
	told := time.Since(cut)
	if up.res.err == nil {
		t.Errorf("the transfer succeeded through a %v partition", d)
	}
	if rest := d - told; rest > 0 {
		time.Sleep(rest) // the scenario, not synchronisation: the partition lasts d in all
	}
	n.heal(t)
	rec := w.waitSSHWorks(t, sshd, maxRecovery)
	again := w.startUpload(t, sshd.user, 1<<20, nil)
	again.wait(t, time.Minute)
	intact := again.intact()
	if !intact {
		t.Errorf("transfer after the partition: %s", again.describe())
	}
	table.add(t.Name(), fmt.Sprintf("operator told after %v: %s", told.Round(time.Second), lastLine(up.res.stderr)),
		rec, okString(intact, "new transfer sha256 equal"))
	w.stop()
	sshd.stop(t, false)
}

// chaosHubsimKilled kills hubsim with SIGKILL and starts it again on the
// same ports and state: the device comes back without being enrolled
// again and without anyone touching it.
func chaosHubsimKilled(t *testing.T, table *chaosTable) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{})
	before, err := w.agentStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ports := w.sim.status.Ports
	w.sim.kill()
	w.sim = startSimOn(t, w.dir, n.hostIP, ports.HTTPS, ports.MQTT)
	rec := w.waitSSHWorks(t, sshd, maxRecovery)
	after, err := w.agentStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	up := w.startUpload(t, sshd.user, 4<<20, nil)
	up.wait(t, time.Minute)
	if !up.intact() {
		t.Errorf("transfer after the restart: %s", up.describe())
	}
	table.add(t.Name(), fmt.Sprintf("no re-enrollment; agent registrations %d → %d", before.Registrations, after.Registrations),
		rec, okString(up.intact(), "sha256 equal"))
	w.stop()
	sshd.stop(t, false)
}

// chaosTokenRenewal runs a stream across the hub connection's token
// renewal and expiry (hub.token_ttl at its minimum, one minute): the
// stream carries on and the agent stays connected.
func chaosTokenRenewal(t *testing.T, table *chaosTable) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{agentYAML: "hub:\n  token_ttl: 1m\n"})
	// 70 s of paced upload: past the renewal at 48 s and the first
	// token's expiry at 60 s.
	up := w.startPaced(t, sshd.user, 7<<20, 10<<10, 100*time.Millisecond, nil)
	start := time.Now()
	up.wait(t, 3*time.Minute)
	if !up.intact() {
		t.Errorf("stream across the token renewal: %s", up.describe())
	}
	st := w.waitAgent("connected after the renewal", 30*time.Second, func(s *daemon.Status) bool { return s.Connected })
	// The renewal is a reconnect with a fresh token: hubsim saw the device
	// connect at least twice.
	if n := w.sim.logCount(`msg="device connected"`); n < 2 {
		t.Errorf("hubsim saw %d device connections during a %v stream with one-minute tokens; the token was never renewed", n, time.Since(start))
	}
	table.add(t.Name(), fmt.Sprintf("stream of %v across renewal; agent connected=%v", time.Since(start).Round(time.Second), st.Connected),
		0, okString(up.intact(), "sha256 equal"))
	w.stop()
	sshd.stop(t, false)
}

// chaosDrain sends SIGTERM to the agent while a stream is open: the agent
// exits 0 within its grace period, the operator's ssh ends instead of
// hanging, and a restarted agent serves again.
func chaosDrain(t *testing.T, table *chaosTable) {
	n := newChaosNet(t)
	w, sshd := chaosWorld(t, n, worldOptions{})
	up := w.startPaced(t, sshd.user, 64<<20, 32<<10, 50*time.Millisecond, nil)
	testwait.True(t, time.Minute, "the stream to carry data", func() bool { return up.moved.Load() > 256<<10 })
	took := w.agent.stop(t, true)
	stopped := time.Now()
	up.wait(t, 30*time.Second)
	ended := time.Since(stopped)
	if up.res.err == nil {
		t.Errorf("the transfer succeeded although the agent stopped")
	}
	w.startAgent()
	rec := w.waitSSHWorks(t, sshd, maxRecovery)
	table.add(t.Name(), fmt.Sprintf("agent exited 0 in %v; ssh ended %v later: %s", took.Round(time.Millisecond),
		ended.Round(time.Millisecond), lastLine(up.res.stderr)), rec, "n/a (transfer cut on purpose)")
	w.stop()
	sshd.stop(t, false)
}

// chaosDiskFull puts the agent's state directory and log file on a 1 MiB
// tmpfs and fills it: the agent keeps serving, its state file stays valid,
// and once space returns a registration is saved again.
func chaosDiskFull(t *testing.T, table *chaosTable) {
	n := newChaosNet(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o700); err != nil {
		t.Fatal(err)
	}
	mount := hubsimtest.RequireTool(t, "mount", "mount")
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	w, sshd := chaosWorld(t, n, worldOptions{
		dir:      dir,
		stateDir: filepath.Join(small, "state"),
		logYAML:  fmt.Sprintf("  destination: file\n  file: %s\n  max_size: 64KiB\n  max_files: 2\n", filepath.Join(small, "agent.log")),
	})
	stateFile := filepath.Join(small, "state", "state.json")
	validState(t, stateFile)

	fill(t, filepath.Join(small, "filler"))
	before, err := w.agentStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.reprovision(t)
	st := w.waitAgent("registered again on a full disk", 2*time.Minute, func(s *daemon.Status) bool {
		return s.Registrations > before.Registrations && s.Connected
	})
	validState(t, stateFile)
	// The technician must be able to see why the next boot will register
	// again: the failed save is in status (the log file is on the full
	// disk too).
	if !strings.Contains(st.LastError, "no space left") {
		t.Errorf("status after a failed state save: lastError %q, want it to say the disk is full", st.LastError)
	}
	r := w.ssh(context.Background(), "ssh", sshd.user, "echo full", nil, nil)
	if r.err != nil || r.stdout != "full\n" {
		t.Errorf("ssh with the disk full: %v %q %s", r.err, r.stdout, r.stderr)
	}
	seen := "agent serves on a full disk; last error: " + orNone(st.LastError)

	if err := os.Remove(filepath.Join(small, "filler")); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	w.reprovision(t)
	w.waitAgent("registered again with space", 2*time.Minute, func(s *daemon.Status) bool {
		return s.Registrations > st.Registrations && s.Connected
	})
	rec := time.Since(freed)
	intact := validState(t, stateFile)
	table.add(t.Name(), seen, rec, okString(intact, "state file valid throughout"))
	w.stop()
	sshd.stop(t, false)
}

// --- the device's network namespace ---

var chaosSeq atomic.Int32

// chaosNet is a network namespace for the device, joined to the test's by
// a veth pair: hostIP on this side, devIP on the device's.
type chaosNet struct {
	ip, nft string
	name    string // the namespace (ip netns)
	hostIf  string
	hostIP  string
	devIP   string
}

func newChaosNet(t testing.TB) *chaosNet {
	t.Helper()
	ip := hubsimtest.RequireTool(t, "ip", "iproute2")
	nft := hubsimtest.RequireTool(t, "nft", "nftables")
	// A number per namespace that concurrent test processes are unlikely
	// to share; the names stay within the 15 bytes of an interface name.
	id := (os.Getpid()+int(chaosSeq.Add(1))*37)%200 + 20
	n := &chaosNet{ip: ip, nft: nft,
		name:   fmt.Sprintf("phchaos%d", id),
		hostIf: fmt.Sprintf("phc%da", id),
		hostIP: fmt.Sprintf("10.231.%d.1", id),
		devIP:  fmt.Sprintf("10.231.%d.2", id),
	}
	devIf := fmt.Sprintf("phc%db", id)
	// Leftovers of a killed run.
	_ = exec.Command(ip, "netns", "del", n.name).Run()
	_ = exec.Command(ip, "link", "del", n.hostIf).Run()
	n.ipCmd(t, "netns", "add", n.name)
	t.Cleanup(func() {
		_ = exec.Command(ip, "netns", "del", n.name).Run()
		_ = exec.Command(ip, "link", "del", n.hostIf).Run()
	})
	n.ipCmd(t, "link", "add", n.hostIf, "type", "veth", "peer", "name", devIf, "netns", n.name)
	n.ipCmd(t, "addr", "add", n.hostIP+"/30", "dev", n.hostIf)
	n.ipCmd(t, "link", "set", n.hostIf, "up")
	n.ipCmd(t, "-n", n.name, "addr", "add", n.devIP+"/30", "dev", devIf)
	n.ipCmd(t, "-n", n.name, "link", "set", devIf, "up")
	n.ipCmd(t, "-n", n.name, "link", "set", "lo", "up")
	return n
}

func (n *chaosNet) ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(n.ip, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// exec is the argv that runs prog inside the namespace.
func (n *chaosNet) exec(prog ...string) []string {
	return append([]string{n.ip, "netns", "exec", n.name}, prog...)
}

// partition drops every packet between the device and hubsim.
func (n *chaosNet) partition(t testing.TB) {
	t.Helper()
	rules := fmt.Sprintf(`table inet porthole_chaos {
	chain in { type filter hook input priority 0; ip saddr %[1]s drop; }
	chain out { type filter hook output priority 0; ip daddr %[1]s drop; }
}
`, n.hostIP)
	cmd := exec.Command(n.ip, "netns", "exec", n.name, n.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft (partition): %v\n%s", err, out)
	}
}

// heal lifts the partition.
func (n *chaosNet) heal(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(n.ip, "netns", "exec", n.name, n.nft, "delete", "table", "inet", "porthole_chaos").CombinedOutput(); err != nil {
		t.Fatalf("nft (heal): %v\n%s", err, out)
	}
}

// dial connects to addr from inside the namespace: a goroutine locked to
// its thread moves that thread into the namespace and dials; the socket
// stays in the namespace, and the thread, never unlocked, ends with the
// goroutine.
func (n *chaosNet) dial(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() { // owned by dial: one dial, then it ends
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// chaosWorld starts hubsim on this side and the device (its sshd and the
// agent) in n.
func chaosWorld(t *testing.T, n *chaosNet, o worldOptions) (*world, *sshServer) {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	opKey := newSSHKey(t, o.dir, "operator")
	sshd := startSSHDIn(t, o.dir, "sshd", opKey+".pub", n.exec(), n.dial)
	o.sshKey = opKey
	o.targets = map[string]string{"ssh": sshd.addr}
	o.agentExec = n.exec(binaries(t).agent)
	o.simHost = n.hostIP
	w := newWorldWith(t, o)
	w.dumpOnFailure(sshd.proc)
	return w, sshd
}

// --- what the operator does ---

// sshWith is world.ssh with options placed before the defaults (ssh takes
// the first value it is given for an option).
func (w *world) sshWith(ctx context.Context, first []string, user, remoteCmd string, stdin io.Reader, stdout io.Writer) cmdResult {
	args := []string{"ssh", user + "@" + deviceID, "--stream", "ssh", "--config", w.opConfig, "--"}
	args = append(append(append(args, first...), w.sshOpts()...), remoteCmd)
	return runCmd(command(ctx, binaries(w.t).porthole, args...), stdin, stdout)
}

// waitSSHWorks retries "echo back" through the stream until it works and
// returns how long that took.
func (w *world) waitSSHWorks(t testing.TB, sshd *sshServer, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testwait.For(t, timeout, "ssh through the device stream to work", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := w.ssh(ctx, "ssh", sshd.user, "echo back", nil, nil)
		return r.err == nil && r.stdout == "back\n", fmt.Sprintf("%v %q %s\n%s", r.err, r.stdout, r.stderr, w.agent.tail(20))
	})
	return time.Since(start)
}

// reprovision asks the running agent to register again, as a technician
// would.
func (w *world) reprovision(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := daemon.Query(ctx, daemon.SocketPath(w.agentState), daemon.VerbReprovision); err != nil {
		t.Fatalf("reprovision: %v", err)
	}
}

// transfer is one ssh command moving data, with both ends' SHA-256.
type transfer struct {
	done  chan struct{} // closed when the command ended
	moved atomic.Int64  // bytes through so far
	// Set before done is closed:
	res       cmdResult
	sent, got string // SHA-256 of what left one end and what arrived at the other
}

// startUpload pipes size random bytes through ssh into sha256sum on the
// device at about 3 MiB/s, so a transfer is in flight long enough to be
// disturbed.
func (w *world) startUpload(t testing.TB, user string, size int64, first []string) *transfer {
	return w.startPaced(t, user, size, 32<<10, 10*time.Millisecond, first)
}

// startPaced is startUpload with chunk bytes every tick.
func (w *world) startPaced(t testing.TB, user string, size int64, chunk int, tick time.Duration, first []string) *transfer {
	tr := &transfer{done: make(chan struct{})}
	src := &pacedReader{left: size, chunk: chunk, tick: tick, rng: rand.NewChaCha8([32]byte{byte(size), 1}), h: sha256.New(), moved: &tr.moved}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	go func() { // owned by the transfer: ends with the ssh command
		defer close(tr.done)
		defer cancel()
		var out bytes.Buffer
		tr.res = w.sshWith(ctx, first, user, "sha256sum", src, &out)
		tr.sent = hex.EncodeToString(src.h.Sum(nil))
		if f := strings.Fields(out.String()); len(f) > 0 {
			tr.got = f[0]
		}
	}()
	return tr
}

// startDownload writes a random file for the device to send and reads it
// through ssh at about 3 MiB/s.
func (w *world) startDownload(t testing.TB, user string, size int64, first []string) *transfer {
	path := filepath.Join(w.dir, fmt.Sprintf("download-%d.bin", size))
	sum := randomFile(t, path, size)
	tr := &transfer{done: make(chan struct{}), sent: sum}
	dst := &pacedWriter{tick: 10 * time.Millisecond, h: sha256.New(), moved: &tr.moved}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	go func() { // owned by the transfer: ends with the ssh command
		defer close(tr.done)
		defer cancel()
		tr.res = w.sshWith(ctx, first, user, "cat '"+path+"'", nil, dst)
		tr.got = hex.EncodeToString(dst.h.Sum(nil))
	}()
	return tr
}

// wait waits for the transfer to end, failing the test after timeout.
func (tr *transfer) wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-tr.done:
	case <-time.After(timeout):
		t.Fatalf("transfer still running after %v (%d bytes moved)", timeout, tr.moved.Load())
	}
}

func (tr *transfer) intact() bool { return tr.res.err == nil && tr.sent != "" && tr.sent == tr.got }

func (tr *transfer) describe() string {
	return fmt.Sprintf("err=%v sent=%s got=%s moved=%d stderr=%q", tr.res.err, tr.sent, tr.got, tr.moved.Load(), tr.res.stderr)
}

// pacedReader yields left pseudo-random bytes, at most chunk per Read and
// one Read per tick, hashing what it yields.
type pacedReader struct {
	left  int64
	chunk int
	tick  time.Duration
	rng   *rand.ChaCha8
	h     hash.Hash
	moved *atomic.Int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	time.Sleep(p.tick) // pacing, not synchronisation
	n := min(int64(len(b)), int64(p.chunk), p.left)
	_, _ = p.rng.Read(b[:n])
	p.h.Write(b[:n])
	p.left -= n
	p.moved.Add(n)
	return int(n), nil
}

// pacedWriter hashes what it is given, one Write per tick.
type pacedWriter struct {
	tick  time.Duration
	h     hash.Hash
	moved *atomic.Int64
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	time.Sleep(p.tick) // pacing, not synchronisation
	p.h.Write(b)
	p.moved.Add(int64(len(b)))
	return len(b), nil
}

// --- disk full ---

// fill writes path until the file system is full to the last byte: in
// large chunks first, then ever smaller ones.
func fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size := len(buf); size >= 1; size /= 4 {
		for i := 0; ; i++ {
			if i == 1<<16 { // bounded: at most 4 GiB per chunk size
				t.Fatal("fill: the file system never filled")
			}
			if _, err := f.Write(buf[:size]); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				t.Fatalf("fill: %v", err)
			}
		}
	}
}

// validState reports whether the agent's state file is present and valid
// JSON, failing the test when it is not.
func validState(t testing.TB, path string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("state file: %v", err)
		return false
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Errorf("state file is not valid JSON (%v): %q", err, data)
		return false
	}
	return true
}

// --- the table ---

type chaosRow struct {
	scenario, seen, recovery, intact string
}

// chaosTable collects the rows of the scenarios.
type chaosTable struct {
	mu   sync.Mutex
	rows []chaosRow // guarded by mu
}

func (c *chaosTable) add(scenario, seen string, recovery time.Duration, intact string) {
	rec := "—"
	if recovery > 0 {
		rec = recovery.Round(100 * time.Millisecond).String()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows = append(c.rows, chaosRow{strings.TrimPrefix(scenario, "TestChaos/"), seen, rec, intact})
}

// write logs the table and writes it to out/chaos.txt.
func (c *chaosTable) write(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rows) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos suite (%s)\n", chaosMode())
	fmt.Fprintf(&b, "%-28s | %-9s | %-30s | %s\n", "scenario", "recovery", "data", "what was seen")
	for _, r := range c.rows {
		fmt.Fprintf(&b, "%-28s | %-9s | %-30s | %s\n", r.scenario, r.recovery, r.intact, r.seen)
	}
	t.Log("\n" + b.String())
	root, err := moduleRoot()
	if err != nil {
		t.Error(err)
		return
	}
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Error(err)
		return
	}
	if err := os.WriteFile(filepath.Join(out, "chaos.txt"), []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

func chaosMode() string {
	if os.Getenv(chaosEnv) == "full" {
		return "full: PORTHOLE_CHAOS=full"
	}
	return "short form"
}

func okString(ok bool, what string) string {
	if ok {
		return "intact: " + what
	}
	return "NOT INTACT"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// requireRoot skips (fails under CI=true) when the test is not root.
func requireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root: %s", why)
	}
	t.Skipf("needs root: %s", why)
}
