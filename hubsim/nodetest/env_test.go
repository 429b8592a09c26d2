package nodetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-iot/porthole/hubsim/hubsimtest"
)

// needs skips the test on a developer machine and fails it in CI
// (CI=true): CI must never pass by skipping what it was meant to check.
func needs(t *testing.T, msg string) {
	t.Helper()
	msg = "nodetest: " + msg
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// requirePorts checks that this process may listen on port 443 and 8883 of
// every address (root or CAP_NET_BIND_SERVICE, and nothing else there).
func requirePorts(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		for _, port := range []string{"443", "8883"} {
			l, err := net.Listen("tcp", net.JoinHostPort(a, port))
			switch {
			case err == nil:
				l.Close()
			case errors.Is(err, syscall.EACCES):
				needs(t, fmt.Sprintf("cannot listen on %s:%s (%v): the Node SDKs reach only 443 and 8883, so this test runs as root (or with CAP_NET_BIND_SERVICE)", a, port, err))
			case errors.Is(err, syscall.EADDRINUSE):
				needs(t, fmt.Sprintf("%s:%s is in use by another process; this test needs that loopback address to itself", a, port))
			default:
				needs(t, fmt.Sprintf("cannot listen on %s:%s: %v", a, port, err))
			}
		}
	}
}

// npmInstallTimeout bounds `npm ci` (a first install downloads ~280
// packages; later installs come from npm's own cache).
const npmInstallTimeout = 5 * time.Minute

// nodeModules returns the node_modules directory holding the packages
// pinned in testdata, installing them with `npm ci` on first use. Installs
// live in the user cache directory under a name derived from the lock
// file, and appear there by rename, so a crashed or concurrent install never
// leaves a half-filled directory in use.
func nodeModules(t *testing.T, npm string) string {
	t.Helper()
	var sum []byte
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatalf("nodetest: %v", err)
		}
		h.Write(b)
	}
	sum = h.Sum(nil)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	base = filepath.Join(base, "porthole", "nodetest")
	dir := filepath.Join(base, hex.EncodeToString(sum[:8]))
	mods := filepath.Join(dir, "node_modules")
	if st, err := os.Stat(mods); err == nil && st.IsDir() {
		return mods
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	tmp, err := os.MkdirTemp(base, "install-")
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", f))
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatalf("nodetest: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmInstallTimeout)
	defer cancel()
	start := time.Now()
	// --ignore-scripts: none of the pinned packages needs an install script.
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error")
	cmd.Dir = tmp
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		needs(t, fmt.Sprintf("npm ci of testdata/package-lock.json failed (%v); is the npm registry reachable?\n%s", err, tail(out.String(), 3000)))
	}
	t.Logf("nodetest: npm ci installed the pinned SDKs in %v", time.Since(start).Round(time.Millisecond))
	if err := os.Rename(tmp, dir); err != nil {
		// Another run may have finished first; use its install.
		if st, serr := os.Stat(mods); serr != nil || !st.IsDir() {
			t.Fatalf("nodetest: %v", err)
		}
	}
	return mods
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// nodeEnv runs Node scripts against one sim.
type nodeEnv struct {
	node    string // node executable
	modules string // node_modules with the pinned SDKs
	caFile  string // the sim's CA (NODE_EXTRA_CA_CERTS)
	dir     string // absolute path of testdata
}

// scriptTimeout bounds one script run; scripts give up a little earlier
// themselves (NODETEST_DEADLINE_MS) so they can report the step they were in.
const scriptTimeout = 60 * time.Second

// run executes testdata/<script> with input as NODETEST_INPUT and decodes
// the script's result into out. It returns the script's own failure report
// (nil on success); a script that crashes or prints no result fails the test.
func (e *nodeEnv) run(t *testing.T, script string, input, out any) *scriptFailure {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.node, filepath.Join(e.dir, script))
	cmd.Dir = e.dir
	cmd.Env = append(cleanEnv(os.Environ()),
		"NODE_PATH="+e.modules,
		"NODE_EXTRA_CA_CERTS="+e.caFile,
		"NODETEST_INPUT="+string(in), // holds keys: never logged
		"NODETEST_DEADLINE_MS="+fmt.Sprint((scriptTimeout-10*time.Second).Milliseconds()),
	)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("nodetest: %s ran %v", script, time.Since(start).Round(time.Millisecond))
	res, err := parseResult(stdout.Bytes())
	if err != nil {
		t.Fatalf("nodetest: %s: %v (exit: %v)\nstdout:\n%s\nstderr:\n%s", script, err, runErr,
			tail(stdout.String(), 4000), tail(stderr.String(), 4000))
	}
	if !res.OK {
		f := &scriptFailure{Step: res.Step, Error: string(res.Error), Stderr: tail(stderr.String(), 4000)}
		return f
	}
	if out != nil {
		if err := json.Unmarshal(res.Result, out); err != nil {
			t.Fatalf("nodetest: %s: decode result: %v\n%s", script, err, res.Result)
		}
	}
	t.Logf("nodetest: %s result: %s", script, res.Result)
	return nil
}

// scriptFailure is a script's report of the step that failed.
type scriptFailure struct {
	Step   string
	Error  string // JSON: SDK error name, message, HTTP status, body
	Stderr string
}

func (f *scriptFailure) String() string {
	s := "step " + f.Step + ": " + f.Error
	if f.Stderr != "" {
		s += "\nstderr:\n" + f.Stderr
	}
	return s
}

// cleanEnv drops what could send the SDKs elsewhere than the sim (proxies)
// or change how node loads code.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "NO_PROXY=*")
}

// newNodeEnv checks the tools and installs the SDKs.
func newNodeEnv(t *testing.T) *nodeEnv {
	t.Helper()
	node := requireTool(t, "node", "nodejs")
	npm := requireTool(t, "npm", "npm")
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	return &nodeEnv{node: node, modules: nodeModules(t, npm), dir: dir}
}

func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	return hubsimtest.RequireTool(t, name, pkg)
}
