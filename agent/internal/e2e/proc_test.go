package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// stopTimeout bounds how long a process may take to exit after SIGTERM.
const stopTimeout = 20 * time.Second

var binDir string // set by TestMain; binaries are built into it on first use

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "porthole-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// bins are the built programs.
type bins struct {
	hubsim, agent, porthole, tcpfwd string
}

var (
	buildOnce sync.Once
	built     bins
	buildErr  error
)

// binaries builds the shipped binaries (not race-instrumented, cgo off, as
// released) and the benchmark's forwarder, once per test process.
func binaries(t testing.TB) bins {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", binDir+string(filepath.Separator),
			"./hubsim/cmd/hubsim", "./agent/cmd/porthole-agent", "./sdk/cmd/porthole",
			"./agent/internal/e2e/testdata/tcpfwd")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = bins{
			hubsim:   filepath.Join(binDir, "hubsim"),
			agent:    filepath.Join(binDir, "porthole-agent"),
			porthole: filepath.Join(binDir, "porthole"),
			tcpfwd:   filepath.Join(binDir, "tcpfwd"),
		}
		// make bench measures the agent as firmware ships it (make cross's
		// flags): PORTHOLE_BENCH_AGENT names that binary.
		if p := os.Getenv("PORTHOLE_BENCH_AGENT"); p != "" {
			built.agent = p
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// moduleRoot is the directory of go.mod above the package directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test directory")
		}
		dir = parent
	}
}

// proc is a spawned process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when Wait returned; owned by the wait goroutine
	err     error         // Wait's result; read only after done is closed
}

// childEnv is the environment of spawned programs: no proxy settings (every
// host name is mapped to loopback through resolve entries) and nothing else
// of the developer's that could change their behaviour.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG":
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startProc starts a program with stdout and stderr in dir/<name>.log. A
// cleanup kills it if the test did not stop it.
func startProc(t testing.TB, dir, name string, env []string, prog string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = childEnv()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { // owned by p: ends when the process does; cleanup makes sure it does
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = cmd.Process.Kill()
		<-p.done
		t.Errorf("%s (pid %d) was still running at the end of the test; killed", name, cmd.Process.Pid)
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process is gone.
func (p *proc) signal(sig os.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and waits up to stopTimeout; the process must exit
// with status 0 (wantZero) or at least exit. It returns how long it took.
func (p *proc) stop(t testing.TB, wantZero bool) time.Duration {
	t.Helper()
	start := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %v of SIGTERM; killed\n%s", p.name, stopTimeout, p.tail(30))
		return time.Since(start)
	}
	if wantZero && p.err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want status 0\n%s", p.name, p.err, p.tail(30))
	}
	return time.Since(start)
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

var secretRE = regexp.MustCompile(`(SharedAccessKey=|sig=|symmetric_key: )[^;&\s"]+`)

// tail returns the last n lines of the process's log, secrets masked.
func (p *proc) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := "--- last lines of " + p.name + " ---\n" + strings.Join(lines, "\n")
	return secretRE.ReplaceAllString(out, "${1}…")
}

// logCount counts the lines of the process's log holding s.
func (p *proc) logCount(s string) int {
	data, _ := os.ReadFile(p.logPath)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// logContains reports whether the process's log holds s.
func (p *proc) logContains(s string) bool {
	data, _ := os.ReadFile(p.logPath)
	return strings.Contains(string(data), s)
}

// cpuTicks reads utime+stime of pid from /proc (clock ticks).
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) ppid … utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat for %d", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad stat for %d", pid)
	}
	return u + st, nil
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux architecture Go supports).
const clockTick = 100

// vmRSS reads VmRSS of pid in bytes.
func vmRSS(pid int) (int64, error) { return statusField(pid, "VmRSS:") }

// statusField reads a "kB" line of /proc/<pid>/status in bytes.
func statusField(pid int, key string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in status of %d", key, pid)
}

func requireLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("end-to-end tests drive Linux sshd and /proc")
	}
}

// readLog returns the process's whole log (secrets unmasked: for checks,
// never for printing).
func (p *proc) readLog() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}
