package packaging

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// work holds what the tests build once per test process (agent binary,
// packages); TestMain removes it.
var work string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "porthole-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	work = dir
	goleak.VerifyTestMain(&cleanupM{m, dir})
}

// cleanupM removes the work dir after the tests, before goleak's verdict.
type cleanupM struct {
	m   *testing.M
	dir string
}

func (c *cleanupM) Run() int {
	code := c.m.Run()
	os.RemoveAll(c.dir)
	return code
}

// repoRoot is the module root, one up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// missing skips the test, or fails it when CI=true, because something the
// test needs is not there.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs %s", what)
	}
	t.Skipf("needs %s", what)
}

func needTool(t testing.TB, tool, debPkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, err := os.Stat(filepath.Join(dir, tool)); err == nil && fi.Mode()&0o111 != 0 {
				return filepath.Join(dir, tool)
			}
		}
		missing(t, fmt.Sprintf("the tool %s (Debian package %s)", tool, debPkg))
	}
	return p
}

func needRoot(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("packaging tests run on Linux only")
	}
	if os.Geteuid() != 0 {
		missing(t, "root (chroot and mknod into a throw-away root)")
	}
}

// run runs a command and fails the test with its output when it fails.
func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil // /dev/null: dpkg must never prompt
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// memo runs build once per test process and hands every caller its result.
type memo struct {
	once sync.Once
	val  string
	err  error
}

func (m *memo) get(t testing.TB, build func() (string, error)) string {
	t.Helper()
	m.once.Do(func() { m.val, m.err = build() })
	if m.err != nil {
		t.Fatal(m.err)
	}
	return m.val
}

var agentBin memo

// agentBinary is a linux/amd64 porthole-agent built like `make cross` does,
// or $PORTHOLE_AGENT_BIN when set (make test-packaging passes dist/'s).
func agentBinary(t testing.TB) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the throw-away roots run amd64 binaries; this host is " + runtime.GOARCH)
	}
	if p := os.Getenv("PORTHOLE_AGENT_BIN"); p != "" {
		return p
	}
	needTool(t, "go", "golang")
	root := repoRoot(t)
	return agentBin.get(t, func() (string, error) {
		out := filepath.Join(work, "porthole-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=0.0.0-test",
			"-o", out, "./agent/cmd/porthole-agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building porthole-agent: %v\n%s", err, b)
		}
		return out, nil
	})
}

var (
	pkgMu    sync.Mutex
	pkgMemos = map[string]*memo{}
)

// buildPackage builds one package with packaging/scripts/package.sh and
// returns its path. kind is deb or ipk, arch a Debian or OpenWrt arch.
func buildPackage(t testing.TB, kind, arch, version string) string {
	t.Helper()
	bin := agentBinary(t)
	needTool(t, "go", "golang") // nfpm runs through go run
	key := kind + "/" + arch + "/" + version
	pkgMu.Lock()
	m := pkgMemos[key]
	if m == nil {
		m = &memo{}
		pkgMemos[key] = m
	}
	pkgMu.Unlock()
	root := repoRoot(t)
	return m.get(t, func() (string, error) {
		out := filepath.Join(work, "pkg", kind, arch, version)
		cmd := exec.Command(filepath.Join(root, "packaging/scripts/package.sh"), kind, arch, bin, version, out)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("package.sh %s: %v\n%s", key, err, b)
		}
		matches, _ := filepath.Glob(filepath.Join(out, "*."+kind))
		if len(matches) != 1 {
			return "", fmt.Errorf("package.sh %s made %q, want one .%s", key, matches, kind)
		}
		return matches[0], nil
	})
}

var busybox memo

// busyboxStatic is a statically linked amd64 busybox: $PORTHOLE_BUSYBOX_STATIC,
// an installed static one, or Debian's busybox-static fetched with
// `apt-get download` into the user cache (the system is not changed).
func busyboxStatic(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PORTHOLE_BUSYBOX_STATIC"); p != "" {
		return p
	}
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(p) {
			return p
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = work
	}
	cached := filepath.Join(cache, "porthole-tests", "busybox-static-"+runtime.GOARCH, "bin", "busybox")
	if isStatic(cached) {
		return cached
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		missing(t, "a static busybox (Debian package busybox-static) and apt-get to fetch it")
	}
	return busybox.get(t, func() (string, error) {
		dl := filepath.Join(work, "busybox-dl")
		if err := os.MkdirAll(dl, 0o755); err != nil {
			return "", err
		}
		cmd := exec.Command("apt-get", "download", "busybox-static")
		cmd.Dir = dl
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("needs a static busybox: apt-get download busybox-static: %v\n%s", err, b)
		}
		debs, _ := filepath.Glob(filepath.Join(dl, "busybox-static_*.deb"))
		if len(debs) != 1 {
			return "", fmt.Errorf("apt-get download busybox-static left %q", debs)
		}
		x := filepath.Join(dl, "x")
		if b, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x: %v\n%s", err, b)
		}
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(x, "bin", "busybox"))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(cached, b, 0o755); err != nil {
			return "", err
		}
		return cached, nil
	})
}

// isStatic reports whether path is an ELF executable without an interpreter.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// newRoot makes a throw-away root with a static busybox as /bin/sh and its
// applets, /dev/null, and an empty dpkg database.
func newRoot(t testing.TB) string {
	t.Helper()
	needRoot(t)
	bb := busyboxStatic(t)
	r := t.TempDir()
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "dev", "tmp", "run", "var/run",
		"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
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
	if err := os.WriteFile(filepath.Join(r, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeFile writes a file under root, making its directory.
func writeFile(t testing.TB, root, name, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// wantMode checks a path's type and permission bits (Lstat).
func wantMode(t testing.TB, root, name string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, name))
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != want {
		t.Errorf("%s: mode %v, want %v", name, got, want)
	}
}

func wantGone(t testing.TB, root string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(root, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after removal (err=%v)", n, err)
		}
	}
}

func readFile(t testing.TB, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// callLog is where the fake init tools in a throw-away root record calls.
const callLog = "calls.log"

// fakeTool installs a shell script in root that appends its name and
// arguments to /calls.log.
func fakeTool(t testing.TB, root, path string) {
	t.Helper()
	writeFile(t, root, path, "#!/bin/sh\necho \"${0##*/} $*\" >>/"+callLog+"\n", 0o755)
}

// takeCalls returns the calls recorded so far and empties the log.
func takeCalls(t testing.TB, root string) []string {
	t.Helper()
	p := filepath.Join(root, callLog)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
