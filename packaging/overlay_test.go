package packaging

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
	"github.com/porthole-iot/porthole/sdk/testwait"
)

// lifecycleDeadline bounds every wait in the overlay test; the waits poll
// (sdk/testwait), so a slow machine only makes the test slower, not flaky.
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

// overlayCase is one architecture the overlay is unpacked and booted for.
type overlayCase struct {
	arch    string      // overlay.sh's ARCH: cross.mk's build target name
	machine elf.Machine // what the shipped agent must be built for
	// root makes a throw-away BusyBox root that can run arch's binaries.
	root func(t *testing.T) string
	// overlay builds the overlay tarball into the directory out and returns
	// its path.
	overlay func(t *testing.T, out string) string
	// exe tells whether the program a running process executes
	// (/proc/<pid>/exe) is the one expected for what the root runs as
	// name ("busybox" for the init script's shell, "porthole-agent").
	exe func(root, name, exe string) bool
}

var overlayCases = []overlayCase{
	{
		arch: "amd64", machine: elf.EM_X86_64,
		root: func(t *testing.T) string { return newRoot(t) },
		overlay: func(t *testing.T, out string) string {
			run(t, []string{"SOURCE_DATE_EPOCH=1700000000"}, filepath.Join(repoRoot(t), "packaging/scripts/overlay.sh"),
				agentBinary(t), "amd64", "v1.0.0", out)
			return filepath.Join(out, "porthole-agent-overlay_v1.0.0_amd64.tar.gz")
		},
		exe: func(root, name, exe string) bool {
			return exe == filepath.Join(root, "bin", name) || exe == filepath.Join(root, "usr/bin", name)
		},
	},
	{
		// What `make image-overlay` ships by default, built by make itself:
		// the MIPS router agent, booted in a root whose only userland is
		// Debian's mipsel busybox-static, every binary run by qemu-user
		// through binfmt_misc.
		arch: mipsle.build, machine: mipsle.machine,
		root: func(t *testing.T) string {
			needRoot(t)
			ensureBinfmt(t, mipsle)
			return newForeignRoot(t, foreignBusybox(t, mipsle))
		},
		overlay: func(t *testing.T, out string) string { return makeImageOverlay(t, mipsle.build, out) },
		exe:     func(_, _, exe string) bool { return filepath.Base(exe) == mipsle.qemu },
	},
}

// TestOverlayLifecycle unpacks the rootfs overlay (make image-overlay) into
// a BusyBox-only root and drives the agent with the shipped S95 script in a
// chroot: start, provision through hubsim and connect, respawn after the
// agent is killed, stop. It does so for an amd64 root and agent, and for
// the default mipsle overlay in a root of mipsel BusyBox run under
// qemu-user (binfmt_misc with the F flag, so the emulator need not be
// inside the root).
func TestOverlayLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a simulator")
	}
	needTool(t, "tar", "tar")
	for _, c := range overlayCases {
		t.Run(c.arch, func(t *testing.T) {
			start := time.Now()
			root := c.root(t)
			tarball := c.overlay(t, filepath.Join(work, "overlay-"+c.arch))
			t.Logf("root and overlay ready in %v", time.Since(start).Round(time.Millisecond))
			overlayLifecycle(t, c, tarball, root)
			t.Logf("overlay lifecycle (%s) took %v", c.arch, time.Since(start).Round(time.Millisecond))
		})
	}
}

// makeImageOverlay runs `make image-overlay` for arch with DIST=out and
// returns the tarball it made.
func makeImageOverlay(t *testing.T, arch, out string) string {
	t.Helper()
	mk := needTool(t, "make", "make")
	needTool(t, "go", "golang")
	cmd := exec.Command(mk, "--no-print-directory", "image-overlay",
		"OVERLAY_ARCH="+arch, "DIST="+out, "VERSION=v1.0.0")
	cmd.Dir = repoRoot(t)
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL": // not the settings of a make running these tests
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-overlay OVERLAY_ARCH=%s: %v\n%s", arch, err, b)
	}
	return filepath.Join(out, "porthole-agent-overlay_v1.0.0_"+arch+".tar.gz")
}

func overlayLifecycle(t *testing.T, c overlayCase, tarball, root string) {
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
	if f, err := elf.Open(filepath.Join(root, binPath)); err != nil {
		t.Errorf("shipped agent: %v", err)
	} else {
		if f.Machine != c.machine {
			t.Errorf("shipped agent is built for %v, want %v", f.Machine, c.machine)
		}
		f.Close()
	}

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
	// connected is a testwait condition: the agent's status says it is
	// connected to a hub; otherwise it describes what status answered.
	connected := func() (bool, string) {
		out, err := runErr(nil, "chroot", root, "/usr/bin/porthole-agent", "status", "-json")
		if err != nil {
			return false, fmt.Sprintf("status: %v: %s", err, strings.TrimSpace(out))
		}
		var st struct {
			Connected   bool   `json:"connected"`
			AssignedHub string `json:"assignedHub"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, fmt.Sprintf("status output %q: %v", out, err)
		}
		return st.Connected && st.AssignedHub != "", strings.TrimSpace(out)
	}
	// runs checks that pid executes what the root should run as name.
	runs := func(pid int, name string) {
		t.Helper()
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !c.exe(root, name, exe) {
			t.Errorf("pid %d (%s) executes %q (%v)", pid, name, exe, err)
		}
	}

	started := time.Now()
	if out, err := initScript("start"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	testwait.For(t, lifecycleDeadline, "the agent to connect to the sim's hub", connected)
	t.Logf("S95 start → provisioned and connected: %v", time.Since(started).Round(time.Millisecond))
	first := readPid(root, child)
	if first == 0 || !alive(first) {
		t.Fatalf("no live agent pid in %s (%d)", child, first)
	}
	runs(readPid(root, sup), "busybox")
	runs(first, "porthole-agent")
	if out, err := initScript("start"); err != nil || !strings.Contains(out, "already running") {
		t.Errorf("second start: %v\n%s", err, out)
	}

	// The agent dies hard: the supervisor starts another one.
	killed := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, lifecycleDeadline, "a new agent to replace the killed one", func() (bool, string) {
		pid := readPid(root, child)
		return pid != 0 && pid != first && alive(pid), fmt.Sprintf("child pid %d (killed %d), alive %v", pid, first, alive(pid))
	})
	testwait.For(t, lifecycleDeadline, "the new agent to connect again", connected)
	t.Logf("kill -9 → respawned and connected again: %v", time.Since(killed).Round(time.Millisecond))
	second := readPid(root, child)
	runs(second, "porthole-agent")
	supervisor := readPid(root, sup)

	stopped := time.Now()
	if out, err := initScript("stop"); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	testwait.For(t, lifecycleDeadline, "supervisor and agent to be gone", func() (bool, string) {
		sa, aa := alive(supervisor), alive(second)
		return !sa && !aa, fmt.Sprintf("supervisor %d alive %v, agent %d alive %v", supervisor, sa, second, aa)
	})
	t.Logf("S95 stop → supervisor and agent gone: %v", time.Since(stopped).Round(time.Millisecond))
	if out, err := initScript("status"); err == nil {
		t.Errorf("status after stop succeeded:\n%s", out)
	}
	wantGone(t, root, sup, child)
}

// foreignArch is a device architecture whose root runs under qemu-user.
type foreignArch struct {
	build   string // cross.mk's build target name, overlay.sh's ARCH
	debArch string // the Debian architecture of busybox-static
	qemu    string // the qemu-user-static emulator
	binfmt  string // qemu-user-static's binfmt description: /usr/share/binfmts/<binfmt>
	class   elf.Class
	data    elf.Data
	machine elf.Machine
}

// mipsle is cross.mk's CROSS_mipsle: 32-bit little-endian MIPS.
var mipsle = foreignArch{
	build: "mipsle", debArch: "mipsel", qemu: "qemu-mipsel-static", binfmt: "qemu-mipsel",
	class: elf.ELFCLASS32, data: elf.ELFDATA2LSB, machine: elf.EM_MIPS,
}

// isArch reports whether path is a static ELF executable of a.
func (a foreignArch) isArch(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Class == a.class && f.Data == a.data && f.Machine == a.machine && isStatic(path)
}

var (
	foreignMu     sync.Mutex
	foreignMemos  = map[string]*memo{} // by Debian arch; guarded by foreignMu
	binfmtChecked sync.Map             // binfmt name → struct{}: registered or found usable
)

func foreignMemo(key string) *memo {
	foreignMu.Lock()
	defer foreignMu.Unlock()
	m := foreignMemos[key]
	if m == nil {
		m = &memo{}
		foreignMemos[key] = m
	}
	return m
}

// foreignBusybox is Debian's busybox-static for a.debArch:
// $PORTHOLE_BUSYBOX_STATIC_<DEBARCH>, or one cached in the user cache by an
// earlier run, or fetched with apt-get download. apt-get works on a private
// copy of its state with only that architecture's package lists, so the
// system's dpkg architectures and lists are not changed.
func foreignBusybox(t testing.TB, a foreignArch) string {
	t.Helper()
	if p := os.Getenv("PORTHOLE_BUSYBOX_STATIC_" + strings.ToUpper(a.debArch)); p != "" {
		if !a.isArch(p) {
			t.Fatalf("%s is not a static %s executable", p, a.debArch)
		}
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = work
	}
	cached := filepath.Join(cache, "porthole-tests", "busybox-static-"+a.debArch, "bin", "busybox")
	if a.isArch(cached) {
		return cached
	}
	needTool(t, "apt-get", "apt")
	needTool(t, "dpkg-deb", "dpkg")
	return foreignMemo(a.debArch).get(t, func() (string, error) {
		state := filepath.Join(work, "apt-"+a.debArch)
		dl := filepath.Join(state, "dl")
		for _, d := range []string{"lists/partial", "cache/archives/partial", "dl"} {
			if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
				return "", err
			}
		}
		apt := func(args ...string) error {
			opts := []string{"-q",
				"-o", "APT::Architecture=" + a.debArch,
				"-o", "APT::Architectures::=" + a.debArch,
				"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
				"-o", "Dir::Cache=" + filepath.Join(state, "cache"),
				"-o", "Dir::State::status=/dev/null",
				"-o", "Acquire::Languages=none",
				// The downloads land in a root-owned temp dir.
				"-o", "APT::Sandbox::User=root",
			}
			cmd := exec.Command("apt-get", append(opts, args...)...)
			cmd.Dir = dl
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("needs Debian's busybox-static for %s: apt-get %s: %v\n%s", a.debArch, strings.Join(args, " "), err, b)
			}
			return nil
		}
		if err := apt("update"); err != nil {
			return "", err
		}
		if err := apt("download", "busybox-static"); err != nil {
			return "", err
		}
		debs, _ := filepath.Glob(filepath.Join(dl, "busybox-static_*_"+a.debArch+".deb"))
		if len(debs) != 1 {
			return "", fmt.Errorf("apt-get download busybox-static (%s) left %q", a.debArch, debs)
		}
		x := filepath.Join(dl, "x")
		if b, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x: %v\n%s", err, b)
		}
		bb := filepath.Join(x, "bin", "busybox")
		if !a.isArch(bb) {
			return "", fmt.Errorf("busybox-static for %s holds no static %s busybox", a.debArch, a.debArch)
		}
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
			return "", err
		}
		b, err := os.ReadFile(bb)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(cached, b, 0o755); err != nil {
			return "", err
		}
		return cached, nil
	})
}

// newForeignRoot makes a throw-away root whose only userland is the static
// busybox bb (of a foreign architecture: ensureBinfmt must have run) as
// /bin/sh and its applets, plus /dev/null.
func newForeignRoot(t testing.TB, bb string) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "dev", "tmp", "run", "var/run", "etc"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "chroot", r, "/bin/busybox", "--install", "-s")
	run(t, nil, "mknod", "-m", "666", filepath.Join(r, "dev/null"), "c", "1", "3")
	return r
}

// binfmtDir is where the kernel's binfmt_misc file system is mounted.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// ensureBinfmt makes the kernel run a's executables with qemu-user, inside
// a chroot too. When binfmt_misc has no usable entry it mounts binfmt_misc
// if needed and registers the entry qemu-user-static describes in
// /usr/share/binfmts/<a.binfmt> (what `update-binfmts --import` does),
// always with the F flag: the kernel opens the emulator at registration, so
// it need not exist inside the root. The entry is left registered for
// whatever else runs such binaries. Idempotent; needs root. When it is
// impossible the test is skipped, or fails under CI=true, naming what is
// missing.
func ensureBinfmt(t testing.TB, a foreignArch) {
	t.Helper()
	needRoot(t)
	needTool(t, a.qemu, "qemu-user-static")
	if _, ok := binfmtChecked.Load(a.binfmt); ok {
		return
	}
	if _, err := os.Stat(filepath.Join(binfmtDir, "register")); err != nil {
		if out, err := runErr(nil, "mount", "-t", "binfmt_misc", "binfmt_misc", binfmtDir); err != nil {
			missing(t, fmt.Sprintf("binfmt_misc to run %s binaries (mount -t binfmt_misc binfmt_misc %s: %v: %s)",
				a.debArch, binfmtDir, err, strings.TrimSpace(out)))
		}
		t.Logf("binfmt_misc: mounted on %s", binfmtDir)
	}
	entry := filepath.Join(binfmtDir, a.binfmt)
	usable := func() bool {
		b, err := os.ReadFile(entry)
		if err != nil {
			return false
		}
		e := parseBinfmtEntry(string(b))
		if !e.enabled || !strings.Contains(e.flags, "F") {
			missing(t, fmt.Sprintf("a usable binfmt_misc entry %s (it is enabled=%v with flags %q; a chroot needs it enabled with the F flag)",
				entry, e.enabled, e.flags))
		}
		t.Logf("binfmt_misc: %s: %s runs %s executables (flags %s)", entry, e.interpreter, a.debArch, e.flags)
		return true
	}
	if usable() {
		binfmtChecked.Store(a.binfmt, struct{}{})
		return
	}
	spec := filepath.Join("/usr/share/binfmts", a.binfmt)
	b, err := os.ReadFile(spec)
	if err != nil {
		missing(t, fmt.Sprintf("qemu-user-static's binfmt description %s (Debian package qemu-user-static): %v", spec, err))
	}
	line, err := binfmtRegisterLine(a.binfmt, string(b))
	if err != nil {
		t.Fatalf("%s: %v", spec, err)
	}
	t.Logf("binfmt_misc: registering %s from %s with the F flag; it stays registered", a.binfmt, spec)
	if err := os.WriteFile(filepath.Join(binfmtDir, "register"), []byte(line), 0); err != nil {
		if !errors.Is(err, fs.ErrExist) { // EEXIST: another process registered it meanwhile
			missing(t, fmt.Sprintf("binfmt_misc registration of %s: %v", a.binfmt, err))
		}
	}
	if !usable() {
		t.Fatalf("binfmt_misc: no %s entry after registering it", a.binfmt)
	}
	binfmtChecked.Store(a.binfmt, struct{}{})
}

// binfmtEntry is what /proc/sys/fs/binfmt_misc/<name> says.
type binfmtEntry struct {
	enabled     bool
	interpreter string
	flags       string
}

func parseBinfmtEntry(s string) binfmtEntry {
	var e binfmtEntry
	for _, l := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "enabled":
			e.enabled = true
		case "interpreter":
			e.interpreter = v
		case "flags:":
			e.flags = v
		}
	}
	return e
}

// binfmtRegisterLine turns an update-binfmts description (key value lines:
// interpreter, magic, offset, mask, credentials, preserve) into the line
// binfmt_misc's register file takes, ":name:M:offset:magic:mask:interpreter:flags",
// with the F flag added.
func binfmtRegisterLine(name, spec string) (string, error) {
	kv := map[string]string{}
	for _, l := range strings.Split(spec, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	for _, k := range []string{"interpreter", "magic"} {
		if kv[k] == "" {
			return "", fmt.Errorf("no %s", k)
		}
	}
	for _, k := range []string{"interpreter", "magic", "mask", "offset"} {
		if strings.ContainsAny(kv[k], ":\n") {
			return "", fmt.Errorf("%s %q holds a ':'", k, kv[k])
		}
	}
	flags := ""
	if kv["preserve"] == "yes" {
		flags += "P"
	}
	if kv["credentials"] == "yes" {
		flags += "C"
	}
	flags += "F"
	return fmt.Sprintf(":%s:M:%s:%s:%s:%s:%s", name, kv["offset"], kv["magic"], kv["mask"], kv["interpreter"], flags), nil
}

func TestBinfmtRegisterLine(t *testing.T) {
	for _, tc := range []struct {
		name, spec, want, err string
	}{
		{
			name: "qemu-arm",
			spec: "package qemu-user-static\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\n" +
				`magic \x7f\x45\x4c\x46\x01\x01\x01\x00` + "\noffset 0\n" + `mask \xff\xff\xff\xff\xff\xff\xff\x00` +
				"\ncredentials no\nfix_binary yes\npreserve yes\n",
			want: `:qemu-arm:M:0:\x7f\x45\x4c\x46\x01\x01\x01\x00:\xff\xff\xff\xff\xff\xff\xff\x00:/usr/libexec/qemu-binfmt/arm-binfmt-P:PF`,
		},
		{
			name: "x",
			spec: "interpreter /usr/bin/qemu-x\nmagic \\x7fELF\ncredentials yes\nfix_binary no\n",
			want: `:x:M::\x7fELF::/usr/bin/qemu-x:CF`,
		},
		{name: "x", spec: "magic \\x7fELF\n", err: "no interpreter"},
		{name: "x", spec: "interpreter /a:b\nmagic \\x7fELF\n", err: "holds a ':'"},
	} {
		got, err := binfmtRegisterLine(tc.name, tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q:\n got %s (%v)\nwant %s", tc.spec, got, err, tc.want)
		}
	}
}

func TestParseBinfmtEntry(t *testing.T) {
	got := parseBinfmtEntry("enabled\ninterpreter /usr/libexec/qemu-binfmt/mipsel-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c46\nmask ffffffff\n")
	want := binfmtEntry{enabled: true, interpreter: "/usr/libexec/qemu-binfmt/mipsel-binfmt-P", flags: "PF"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := parseBinfmtEntry("disabled\ninterpreter /q\nflags: \n"); got.enabled || got.flags != "" {
		t.Errorf("disabled entry parsed as %+v", got)
	}
}
