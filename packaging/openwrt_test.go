package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// openwrtStub is a minimal OpenWrt tree: just enough of rules.mk,
// include/package.mk and the packages feed's golang-package.mk for
// `make -n` to read firmware/openwrt/Makefile the way the build system
// does and print what compile and install would run. The stubs check what
// the real ones would refuse (missing fields, a hash that is not a hash,
// an install step naming a file the package directory lacks).
var openwrtStub = map[string]string{
	"rules.mk": `INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build_dir
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
`,
	"include/package.mk": `# What include/download.mk derives for a pinned git commit.
ifdef PKG_SOURCE_VERSION
  ifndef PKG_VERSION
    PKG_VERSION := $(if $(PKG_SOURCE_DATE),$(subst -,.,$(PKG_SOURCE_DATE)),0)~$(shell printf '%.8s' $(PKG_SOURCE_VERSION))
  endif
  PKG_SOURCE_SUBDIR ?= $(PKG_NAME)-$(PKG_VERSION)
  PKG_SOURCE ?= $(PKG_SOURCE_SUBDIR).tar.zst
endif
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
check_set = $(if $(strip $($(1))),,$(error stub: $(1) is not set))
define BuildPackage
$(foreach v,PKG_NAME PKG_RELEASE PKG_LICENSE PKG_LICENSE_FILES PKG_MAINTAINER PKG_SOURCE_PROTO PKG_SOURCE_URL PKG_SOURCE_VERSION PKG_MIRROR_HASH,$(call check_set,$(v)))
$(if $(filter-out 64,$(shell printf %s '$(PKG_MIRROR_HASH)' | tr -d '0-9a-f' | wc -c | sed 's/^0$$/64/')),$(error stub: PKG_MIRROR_HASH is not a sha256),)
$(if $(filter 40,$(shell printf %s '$(PKG_SOURCE_VERSION)' | wc -c)),,$(error stub: PKG_SOURCE_VERSION is not a full commit id))
$(eval $(Package/$(1)))
$(foreach v,TITLE SECTION CATEGORY DEPENDS,$(if $(strip $($(v))),,$(error stub: Package/$(1) lacks $(v))))
compile:
	@echo "source $(PKG_SOURCE) from $(PKG_SOURCE_URL) at $(PKG_SOURCE_VERSION) hash $(PKG_MIRROR_HASH)"
	@echo "license $(PKG_LICENSE) files $(PKG_LICENSE_FILES)"
	@echo "userid $(USERID)"
	@echo "conffiles $(strip $(Package/$(1)/conffiles))"
	go-build $(GO_PKG_BUILD_PKG) -tags '$(GO_PKG_TAGS)' -ldflags '$(GO_PKG_LDFLAGS) -X $(GO_PKG_LDFLAGS_X)'
install:
	$(call Package/$(1)/install,$(TOPDIR)/ipkg-install)
endef
`,
	"feeds/packages/lang/golang/golang-package.mk": `GO_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||powerpc64||x86_64)
GO_PKG_BUILD_BIN_DIR=$(PKG_BUILD_DIR)/.go_work/build/bin
define GoBinPackage
$(if $(GO_PKG),,$(error stub: GO_PKG is not set))
$(if $(filter $(GO_PKG)/%,$(GO_PKG_BUILD_PKG)),,$(error stub: GO_PKG_BUILD_PKG $(GO_PKG_BUILD_PKG) is not under GO_PKG))
endef
`,
}

// TestOpenWrtPackageDir copies firmware/openwrt into package/porthole-agent
// of a stub OpenWrt tree, as the README says, and runs `make -n` there: the
// include paths resolve, the source is pinned with its hash, the license is
// declared, and every file the install step copies exists in the copied
// directory.
func TestOpenWrtPackageDir(t *testing.T) {
	mk := needTool(t, "make", "make")
	top := t.TempDir()
	for name, body := range openwrtStub {
		writeFile(t, top, name, body, 0o644)
	}
	pkg := filepath.Join(top, "package", "porthole-agent")
	if err := os.MkdirAll(filepath.Dir(pkg), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "cp", "-r", filepath.Join(repoRoot(t), "firmware/openwrt"), pkg)

	makeN := func(target string) string {
		t.Helper()
		cmd := exec.Command(mk, "-n", "--no-print-directory", "TOPDIR="+top, target)
		cmd.Dir = pkg
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	out := makeN("compile")
	mf := readFile(t, repoRoot(t), "firmware/openwrt/Makefile")
	commit := regexp.MustCompile(`(?m)^PKG_SOURCE_VERSION:=([0-9a-f]{40})$`).FindStringSubmatch(mf)
	if commit == nil {
		t.Fatal("PKG_SOURCE_VERSION is not a pinned 40-hex commit")
	}
	for _, want := range []string{
		"license Apache-2.0 files LICENSE",
		"userid porthole:porthole",
		"conffiles /etc/porthole/agent.yaml /etc/porthole/state/",
		"source porthole-agent-2026.12.06~" + commit[1][:8] + ".tar.zst from https://github.com/porthole-iot/porthole.git at " + commit[1],
		"go-build github.com/porthole-iot/porthole/agent/cmd/porthole-agent -tags 'nethttpomithttp2' -ldflags '-s -w -X main.version=2026.12.06~" + commit[1][:8] + "'",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("make -n compile lacks %q:\n%s", want, out)
		}
	}
	// The license file the recipe names is at the repository root.
	if _, err := os.Stat(filepath.Join(repoRoot(t), "LICENSE")); err != nil {
		t.Error(err)
	}

	// make -n install prints the install commands; run their copies of
	// ./files/... from the copied directory for real.
	for _, line := range strings.Split(makeN("install"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, a := range f {
			if strings.HasPrefix(a, "./files/") {
				if _, err := os.Stat(filepath.Join(pkg, a)); err != nil {
					t.Errorf("install step %q: %v", line, err)
				}
			}
		}
	}
}

// TestOpenWrtMirrorHash recomputes PKG_MIRROR_HASH from the pinned commit
// the way OpenWrt packs git sources (firmware/openwrt/mirror-hash.sh).
func TestOpenWrtMirrorHash(t *testing.T) {
	needTool(t, "git", "git")
	needTool(t, "zstd", "zstd")
	mf := readFile(t, repoRoot(t), "firmware/openwrt/Makefile")
	get := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:=(\S+)$`).FindStringSubmatch(mf)
		if m == nil {
			t.Fatalf("Makefile lacks %s", name)
		}
		return m[1]
	}
	commit, date, hash := get("PKG_SOURCE_VERSION"), get("PKG_SOURCE_DATE"), get("PKG_MIRROR_HASH")
	if out, err := runErr(nil, "git", "-C", repoRoot(t), "cat-file", "-e", commit+"^{commit}"); err != nil {
		t.Fatalf("the pinned commit %s is not in this clone's history (a shallow clone, or history rewritten?): %v\n%s", commit, err, out)
	}
	if out, err := runErr(nil, "git", "-C", repoRoot(t), "cat-file", "-e", commit+":LICENSE"); err != nil {
		t.Errorf("the pinned commit has no LICENSE, which PKG_LICENSE_FILES names: %v\n%s", err, out)
	}
	subdir := "porthole-agent-" + strings.ReplaceAll(date, "-", ".") + "~" + commit[:8]
	cmd := exec.Command(filepath.Join(repoRoot(t), "firmware/openwrt/mirror-hash.sh"), commit, subdir)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mirror-hash.sh: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != hash {
		t.Errorf("PKG_MIRROR_HASH is %s, the pinned source packs to %s", hash, got)
	}
}
