package packaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/sdk/testwait"
)

// The real-systemd test boots a Debian bookworm minbase root (systemd,
// systemd-sysv, dbus) under systemd-nspawn and drives it with nsenter: no
// machined or D-Bus on the host is needed. The root is built once by
// mmdebstrap from this machine's own apt sources and cached as a tarball in
// nspawnCacheDir (under the test's working directory; git ignores it).
const (
	nspawnSuite    = "bookworm"
	nspawnPackages = "systemd,systemd-sysv,dbus"
	nspawnCacheDir = ".nspawn-cache"
)

// nspawnRootTarball returns the cached root tarball, building it when the
// cache has none for the current apt sources.
func nspawnRootTarball(t *testing.T) string {
	t.Helper()
	mmdebstrap := needTool(t, "mmdebstrap", "mmdebstrap")
	sources := aptSources(t)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", nspawnSuite, nspawnPackages)
	for _, s := range sources {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\n%s\n", filepath.Base(s), b)
	}
	dir, err := filepath.Abs(nspawnCacheDir)
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, nspawnSuite+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".tar")
	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := strings.TrimSuffix(tarball, ".tar") + ".tmp.tar"
	args := []string{
		"--variant=minbase", "--format=tar", "--include=" + nspawnPackages, "--quiet",
		// Docs, man pages and locales left out (about 100 MB instead of 150).
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		nspawnSuite, tmp,
	}
	started := time.Now()
	out, err := exec.Command(mmdebstrap, append(args, sources...)...).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the %s root with mmdebstrap in %v (cached as %s)", nspawnSuite, time.Since(started).Round(time.Second), filepath.Base(tarball))
	return tarball
}

// aptSources lists this machine's enabled apt source files, which
// mmdebstrap takes as its mirrors.
func aptSources(t *testing.T) []string {
	t.Helper()
	var files []string
	if fi, err := os.Stat("/etc/apt/sources.list"); err == nil && fi.Size() > 0 {
		files = append(files, "/etc/apt/sources.list")
	}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	var debian []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), nspawnSuite) {
			debian = append(debian, f)
		}
	}
	if len(debian) == 0 {
		missing(t, "an apt source for Debian "+nspawnSuite+" on this machine (for mmdebstrap)")
	}
	sort.Strings(debian)
	return debian
}

// container is a booted systemd-nspawn container.
type container struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	pid1 int
	done chan struct{}
	out  *lockedBuffer
	err  error // nspawn's exit, once done is closed
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// boot starts systemd-nspawn -b on dir and waits until systemd inside is
// up (running or degraded).
func boot(t *testing.T, dir string) *container {
	t.Helper()
	nspawn := needTool(t, "systemd-nspawn", "systemd-container")
	c := &container{t: t, dir: dir, done: make(chan struct{}), out: &lockedBuffer{}}
	// --register=no --keep-unit: no machined or D-Bus on the host.
	// --console=passive: no tty needed; the console output is not read.
	c.cmd = exec.Command(nspawn, "-q", "-D", dir, "-b", "--register=no", "--keep-unit",
		"--private-network", "--console=passive")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	testwait.For(t, 60*time.Second, "systemd to run as PID 1 in the container", func() (bool, string) {
		select {
		case <-c.done:
			t.Fatalf("systemd-nspawn exited: %v\n%s", c.err, c.out.String())
		default:
		}
		if c.pid1 == 0 {
			c.pid1 = childNamed(c.cmd.Process.Pid, "systemd")
			if c.pid1 == 0 {
				return false, "no systemd child of nspawn yet"
			}
		}
		state, _ := c.try("systemctl", "is-system-running")
		state = strings.TrimSpace(state)
		return state == "running" || state == "degraded", "system state " + state
	})
	return c
}

// childNamed finds a process named comm among pid's descendants.
func childNamed(pid int, comm string) int {
	kids := childrenOf(pid)
	for _, k := range kids {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", k)); strings.TrimSpace(string(b)) == comm {
			return k
		}
	}
	for _, k := range kids {
		if p := childNamed(k, comm); p != 0 {
			return p
		}
	}
	return 0
}

func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// try runs a command inside the container (all its namespaces).
func (c *container) try(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.pid1), "-a"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SYSTEMD_PAGER=", "DEBIAN_FRONTEND=noninteractive"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// in runs a command inside the container and fails the test if it fails.
func (c *container) in(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// mainPID is the unit's main process once it runs the agent: right after a
// (re)start MainPID can still be systemd's child setting up the sandbox.
func (c *container) mainPID(unit string) string {
	c.t.Helper()
	var pid string
	testwait.For(c.t, 20*time.Second, unit+"'s main process to run porthole-agent", func() (bool, string) {
		pid = c.prop(unit, "MainPID")
		comm, _ := c.try("cat", "/proc/"+pid+"/comm")
		return pid != "0" && strings.TrimSpace(comm) == "porthole-agent", "MainPID " + pid + " comm " + comm
	})
	return pid
}

func (c *container) prop(unit, name string) string {
	c.t.Helper()
	return strings.TrimSpace(c.in("systemctl", "show", "-P", name, unit))
}

// state is the unit's enablement and activity, e.g. "enabled/active".
func (c *container) state(unit string) string {
	en, _ := c.try("systemctl", "is-enabled", unit)
	act, _ := c.try("systemctl", "is-active", unit)
	return lastLine(en) + "/" + lastLine(act)
}

// lastLine is a command's answer without the notes systemctl prints before
// it (such as "redirecting to systemd-sysv-install").
func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l[len(l)-1])
}

func (c *container) wantState(unit, want string) {
	c.t.Helper()
	testwait.For(c.t, 20*time.Second, unit+" to be "+want, func() (bool, string) {
		got := c.state(unit)
		return got == want, got
	})
}

// reboot reboots the container (nspawn exits with status 133 and is started
// again on the same root) and returns the new one.
func (c *container) reboot() *container {
	c.t.Helper()
	c.try("systemctl", "reboot")
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("container did not go down on reboot:\n%s", c.out.String())
	}
	return boot(c.t, c.dir)
}

// kill stops the container: SIGTERM makes nspawn shut systemd down
// cleanly; SIGKILL if it takes too long.
func (c *container) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// snapshot lists the files of the container's /etc, /usr, /var/lib and
// /var/log, leaving out what any package operation or a boot changes (dpkg's
// and apt's own state, logs and caches of the system).
func (c *container) snapshot() []string {
	c.t.Helper()
	out := c.in("find", "/etc", "/usr", "/var/lib", "/var/log", "-xdev")
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(f, "/var/lib/dpkg/"), strings.HasPrefix(f, "/var/log/journal"),
			strings.HasPrefix(f, "/var/lib/systemd/"), strings.HasPrefix(f, "/var/log/apt"),
			f == "/var/log/dpkg.log", f == "/var/log/alternatives.log",
			f == "/etc/machine-id", f == "/etc/ld.so.cache":
			continue
		}
		files = append(files, f)
	}
	return files
}

func newFiles(before, after []string) []string {
	var extra []string
	for _, f := range after {
		if !slices.Contains(before, f) {
			extra = append(extra, f)
		}
	}
	return extra
}

// TestSystemdNspawn installs the real .deb into a booted Debian under a
// real systemd and checks the whole life of the service: left disabled on
// placeholder credentials, enabled and started over a filled-in config,
// logging to journald, stop/start/restart, restarted by Restart= after
// kill -9, the unit's sandbox applied to the process, an admin's disable
// kept over an upgrade and a reboot, nothing left after remove and purge,
// and `porthole-agent install` on a root without the package.
func TestSystemdNspawn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd-nspawn is Linux only")
	}
	needRoot(t)
	needTool(t, "nsenter", "util-linux")
	v1 := buildPackage(t, "deb", "amd64", "v1.0.0")
	v2 := buildPackage(t, "deb", "amd64", "v1.0.1")
	agent := agentBinary(t)
	tarball := nspawnRootTarball(t)

	started := time.Now()
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "tar", "-C", dir, "-xf", tarball)
	// /tmp is a fresh tmpfs in the container: stage files under /root.
	for name, src := range map[string]string{"root/v1.deb": v1, "root/v2.deb": v2, "root/porthole-agent": agent} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, string(b), 0o755)
	}
	const unit = "porthole-agent.service"
	sample := readFile(t, repoRoot(t), "configs/agent.yaml")
	c := boot(t, dir)
	t.Logf("booted in %v", time.Since(started).Round(time.Millisecond))
	pristine := c.snapshot()

	// 1. The sample config: installed but left disabled and stopped.
	out := c.in("dpkg", "-i", "/root/v1.deb")
	if !strings.Contains(out, "the service is left disabled") {
		t.Errorf("install over the sample config does not say the service is left disabled:\n%s", out)
	}
	c.wantState(unit, "disabled/inactive")
	c.in("dpkg", "-P", "porthole-agent")

	// 2. A filled-in config seeded before the install: enabled and started,
	// and the agent's lines reach journald (it cannot reach DPS: the
	// container has no network, so it logs its retries).
	writeFile(t, dir, configPath, configured(t, sample), 0o600)
	c.in("dpkg", "-i", "--force-confold", "/root/v1.deb")
	c.wantState(unit, "enabled/active")
	testwait.For(t, 20*time.Second, "the agent's log lines in journald", func() (bool, string) {
		j, _ := c.try("journalctl", "-u", unit, "-o", "cat", "--no-pager")
		return strings.Contains(j, "porthole agent starting") && strings.Contains(j, "registration with DPS failing"), j
	})

	// 3. stop, start, restart.
	c.in("systemctl", "stop", unit)
	c.wantState(unit, "enabled/inactive")
	c.in("systemctl", "start", unit)
	c.wantState(unit, "enabled/active")
	pid := c.mainPID(unit)
	c.in("systemctl", "restart", unit)
	c.wantState(unit, "enabled/active")
	if again := c.mainPID(unit); again == pid {
		t.Errorf("restart kept MainPID %s (now %s)", pid, again)
	}

	// 4. kill -9: Restart=always starts it again (after RestartSec=5s).
	pid = c.mainPID(unit)
	restarts := c.prop(unit, "NRestarts")
	c.in("sh", "-c", `kill -9 "$1"`, "sh", pid) // minbase has no procps: the shell's kill
	testwait.For(t, 30*time.Second, "systemd to restart the killed agent", func() (bool, string) {
		now := c.prop(unit, "MainPID")
		return now != "0" && now != pid && c.state(unit) == "enabled/active", "MainPID " + now + ", " + c.state(unit)
	})
	if n := c.prop(unit, "NRestarts"); n == restarts {
		t.Errorf("NRestarts still %s after kill -9", n)
	}

	// 5. The sandbox, read from the running process.
	pid = c.mainPID(unit)
	status := c.in("cat", "/proc/"+pid+"/status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("agent's /proc/PID/status lacks %q:\n%s", want, status)
		}
	}
	mounts := map[string][]string{}
	for _, l := range strings.Split(c.in("cat", "/proc/"+pid+"/mountinfo"), "\n") {
		if f := strings.Fields(l); len(f) > 5 {
			mounts[f[4]] = strings.Split(f[5], ",")
		}
	}
	if !slices.Contains(mounts["/"], "ro") {
		t.Errorf("/ is not read-only for the agent: %v", mounts["/"])
	}
	if !slices.Contains(mounts["/var/lib/porthole"], "rw") {
		t.Errorf("the state directory is not writable for the agent: %v", mounts["/var/lib/porthole"])
	}
	if _, ok := mounts["/etc"]; ok && !slices.Contains(mounts["/etc"], "ro") {
		t.Errorf("/etc is writable for the agent: %v", mounts["/etc"])
	}

	// 6. The admin disables the service: an upgrade and a reboot keep it so.
	c.in("systemctl", "disable", "--now", unit)
	c.wantState(unit, "disabled/inactive")
	c.in("dpkg", "-i", "--force-confold", "/root/v2.deb")
	if v := c.in("dpkg-query", "-W", "-f=${Version}", "porthole-agent"); v != "1.0.1" {
		t.Errorf("version after upgrade %q", v)
	}
	c.wantState(unit, "disabled/inactive")
	c = c.reboot()
	c.wantState(unit, "disabled/inactive")
	// ... and enabled again it starts, and comes back after a reboot.
	c.in("systemctl", "enable", "--now", unit)
	c.wantState(unit, "enabled/active")
	c = c.reboot()
	c.wantState(unit, "enabled/active")

	// 7. remove, then purge: nothing of the package is left.
	c.in("dpkg", "-r", "porthole-agent")
	// The SysV script is a conffile and stays until purge; systemd's
	// sysv-generator makes a unit of it, which must be neither enabled nor
	// running.
	if st := c.state(unit); !strings.HasSuffix(st, "/inactive") || strings.HasPrefix(st, "enabled") {
		t.Errorf("after remove the service is %s", st)
	}
	if _, err := os.Stat(filepath.Join(dir, unitPath)); err == nil {
		t.Errorf("remove left %s", unitPath)
	}
	if _, err := os.Stat(filepath.Join(dir, configPath)); err != nil {
		t.Errorf("remove lost the config: %v", err)
	}
	c.in("dpkg", "-P", "porthole-agent")
	if extra := newFiles(pristine, c.snapshot()); len(extra) > 0 {
		t.Errorf("left behind after purge: %q", extra)
	}
	if units, _ := c.try("systemctl", "list-units", "--all", "--no-legend", "porthole*"); strings.TrimSpace(units) != "" {
		t.Errorf("systemd still knows units after purge: %s", units)
	}

	// 8. Without the package: `porthole-agent install` writes a working unit.
	c.in("install", "-m", "0755", "/root/porthole-agent", "/usr/local/bin/porthole-agent")
	writeFile(t, dir, "etc/porthole-local/agent.yaml", configured(t, sample), 0o600)
	c.in("/usr/local/bin/porthole-agent", "-config", "/etc/porthole-local/agent.yaml", "install")
	c.in("/usr/local/bin/porthole-agent", "start")
	c.wantState(unit, "enabled/active")
	testwait.For(t, 20*time.Second, "the installed unit's agent logging to journald", func() (bool, string) {
		j, _ := c.try("journalctl", "-u", unit, "-o", "cat", "--no-pager", "--boot")
		return strings.Contains(j, "config=/etc/porthole-local/agent.yaml") && strings.Contains(j, "registration with DPS failing"), j
	})
	pid = c.mainPID(unit)
	if s := c.in("cat", "/proc/"+pid+"/status"); !strings.Contains(s, "NoNewPrivs:\t1\n") || !strings.Contains(s, "CapEff:\t0000000000000000\n") {
		t.Errorf("the installed unit runs the agent without the sandbox:\n%s", s)
	}
	c.in("/usr/local/bin/porthole-agent", "stop")
	c.in("/usr/local/bin/porthole-agent", "uninstall")
	if st := c.state(unit); !strings.HasSuffix(st, "/inactive") {
		t.Errorf("after uninstall the service is %s", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/systemd/system", unit)); err == nil {
		t.Errorf("uninstall left the unit file")
	}
	t.Logf("systemd lifecycle in %v (boots, package steps and checks)", time.Since(started).Round(time.Millisecond))
}
