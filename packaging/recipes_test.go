package packaging

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sumMD5(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

// pinnedCommit checks that commit is in this clone's history and carries
// the LICENSE the recipes name.
func pinnedCommit(t *testing.T, commit string) {
	t.Helper()
	needTool(t, "git", "git")
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(commit) {
		t.Fatalf("pinned revision %q is not a full commit id", commit)
	}
	if out, err := runErr(nil, "git", "-C", repoRoot(t), "cat-file", "-e", commit+":LICENSE"); err != nil {
		t.Fatalf("the pinned commit %s, with its LICENSE, is not in this clone's history (shallow clone or rewritten history?): %v\n%s", commit, err, out)
	}
}

// TestYoctoRecipe: a pinned SRCREV, the license with the md5 of the root
// LICENSE, the Go modules fetched in do_fetch with checksums (no network in
// do_compile), the SysV script from the layer's own files/ directory.
func TestYoctoRecipe(t *testing.T) {
	root := repoRoot(t)
	bb := readFile(t, root, "firmware/yocto/porthole-agent_git.bb")
	lic, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=` + sumMD5(lic) + `"`,
		`LICENSE = "Apache-2.0 `,
		"require ${BPN}-go-mods.inc\n", "require ${BPN}-licenses.inc\n",
		"file://porthole-agent.init", "${UNPACKDIR}/porthole-agent.init",
		`export GOPROXY = "off"`,
	} {
		if !strings.Contains(bb, want) {
			t.Errorf("recipe lacks %q", want)
		}
	}
	for _, bad := range []string{"AUTOREV", "[network]", "CLOSED", "firmware/buildroot"} {
		if strings.Contains(bb, bad) {
			t.Errorf("recipe has %q", bad)
		}
	}
	m := regexp.MustCompile(`(?m)^SRCREV = "([0-9a-f]+)"$`).FindStringSubmatch(bb)
	if m == nil {
		t.Fatal("recipe has no pinned SRCREV")
	}
	pinnedCommit(t, m[1])
	if got, want := readFile(t, root, "firmware/yocto/files/porthole-agent.init"), readFile(t, root, "firmware/rootfs-overlay/S95porthole-agent"); got != want {
		t.Error("firmware/yocto/files/porthole-agent.init is not the rootfs overlay's S95 script it copies")
	}
}

// TestYoctoGoModsBuildOffline regenerates the module lists with go-mods.sh
// (they must match the committed ones), then builds the agent with
// GOPROXY=off from a module cache holding only the listed modules' .zip and
// .mod files, each checked against the listed sha256: what do_compile gets
// from do_fetch is enough.
func TestYoctoGoModsBuildOffline(t *testing.T) {
	needTool(t, "go", "golang")
	root := repoRoot(t)
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "firmware/yocto/go-mods.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go-mods.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"porthole-agent-go-mods.inc", "porthole-agent-licenses.inc"} {
		if got, want := readFile(t, out, f), readFile(t, root, "firmware/yocto/"+f); got != want {
			t.Errorf("firmware/yocto/%s is stale; run firmware/yocto/go-mods.sh\nnow:\n%s", f, got)
		}
	}

	gomodcache := strings.TrimSpace(run(t, nil, "go", "env", "GOMODCACHE"))
	cache := filepath.Join(t.TempDir(), "mod")
	re := regexp.MustCompile(`gomod://([^;]+);version=([^;]+);sha256sum=([0-9a-f]{64})`)
	mods := re.FindAllStringSubmatch(readFile(t, root, "firmware/yocto/porthole-agent-go-mods.inc"), -1)
	if len(mods) == 0 {
		t.Fatal("no gomod:// entries")
	}
	for _, m := range mods {
		dir := filepath.Join("cache", "download", m[1], "@v")
		for _, ext := range []string{".zip", ".mod"} {
			b, err := os.ReadFile(filepath.Join(gomodcache, dir, m[2]+ext))
			if err != nil {
				t.Fatal(err)
			}
			if ext == ".zip" && sum256(b) != m[3] {
				t.Errorf("%s@%s: zip sha256 %s, listed %s", m[1], m[2], sum256(b), m[3])
			}
			writeFile(t, cache, filepath.Join(dir, m[2]+ext), string(b), 0o644)
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2", "-o", filepath.Join(t.TempDir(), "agent"), "./agent/cmd/porthole-agent")
	build.Dir = root
	build.Env = append(os.Environ(), "GOMODCACHE="+cache, "GOPROXY=off", "GOFLAGS=-modcacherw", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if b, err := build.CombinedOutput(); err != nil {
		t.Errorf("offline build from the listed modules only: %v\n%s", err, b)
	}
}

// TestBuildrootPackage: license fields, a pinned version, and a .hash with
// the root LICENSE's sha256 and the vendored source tarball's.
func TestBuildrootPackage(t *testing.T) {
	root := repoRoot(t)
	mk := readFile(t, root, "firmware/buildroot/porthole-agent.mk")
	for _, want := range []string{"PORTHOLE_AGENT_LICENSE = Apache-2.0\n", "PORTHOLE_AGENT_LICENSE_FILES = LICENSE\n"} {
		if !strings.Contains(mk, want) {
			t.Errorf("porthole-agent.mk lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^PORTHOLE_AGENT_VERSION = (\S+)$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("no PORTHOLE_AGENT_VERSION")
	}
	commit := m[1]
	pinnedCommit(t, commit)
	lic, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	hash := readFile(t, root, "firmware/buildroot/porthole-agent.hash")
	if want := "sha256  " + sum256(lic) + "  LICENSE\n"; !strings.Contains(hash, want) {
		t.Errorf(".hash lacks %q", want)
	}
	cmd := exec.Command(filepath.Join(root, "firmware/buildroot/source-hash.sh"), commit)
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("source-hash.sh: %v", err)
	}
	if want := "sha256  " + strings.TrimSpace(string(b)) + "  porthole-agent-" + commit + "-go2.tar.gz\n"; !strings.Contains(hash, want) {
		t.Errorf(".hash lacks %q:\n%s", want, hash)
	}
}
