package e2e

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// crossTarget is a device architecture the agent is cross-built for and
// run under qemu-user.
type crossTarget struct {
	goarch string
	env    []string // extra build settings (GOMIPS, GOARM)
	qemu   string   // the qemu-user-static program that runs it
	// What the built ELF must say.
	class elf.Class
	data  elf.Data
	mach  elf.Machine
}

// mipsle is the agent as shipped for little-endian MIPS routers: 32-bit,
// software floating point (cross.mk's CROSS_mipsle).
var mipsle = crossTarget{
	goarch: "mipsle", env: []string{"GOMIPS=softfloat"}, qemu: "qemu-mipsel-static",
	class: elf.ELFCLASS32, data: elf.ELFDATA2LSB, mach: elf.EM_MIPS,
}

// crossBuild is one cross build's result.
type crossBuild struct {
	once sync.Once
	path string
	err  error
}

var (
	crossMu     sync.Mutex
	crossBuilds = map[string]*crossBuild{} // by GOARCH; guarded by crossMu
)

// crossAgent builds porthole-agent for target like `make cross` does (cgo
// off, trimmed paths, stripped), once per test process, and checks that the
// result really is a binary of that architecture.
func crossAgent(t testing.TB, target crossTarget) string {
	t.Helper()
	crossMu.Lock()
	b := crossBuilds[target.goarch]
	if b == nil {
		b = &crossBuild{}
		crossBuilds[target.goarch] = b
	}
	crossMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildCross(target) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func buildCross(target crossTarget) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(binDir, "linux_"+target.goarch, "porthole-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./agent/cmd/porthole-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+target.goarch)
	cmd.Env = append(cmd.Env, target.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build for linux/%s: %v\n%s", target.goarch, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if f.Class != target.class || f.Data != target.data || f.Machine != target.mach {
		return "", fmt.Errorf("%s is %v %v %v, want %v %v %v", out,
			f.Class, f.Data, f.Machine, target.class, target.data, target.mach)
	}
	return out, nil
}

// procExe is the program a running process executes (/proc/<pid>/exe).
func procExe(pid int) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
}
