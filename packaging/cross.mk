# packaging/cross.mk — cross builds, size budget, emulated tests, packages and
# the rootfs overlay. Included by the top-level Makefile; uses its GO and
# VERSION when they are set.
#
#   make cross          porthole-agent for every device arch into dist/, then a size table with the budgets
#   make size           fail when the linux/mipsle agent is over its budgets (file, xz, minimal build)
#   make test-cross     sdk and agent tests under qemu-user (arm, arm64, mips, mipsle)
#   make package        .deb and OpenWrt .ipk packages into dist/
#   make image-overlay  a tarball to unpack into any rootfs (OVERLAY_ARCH=mipsle by default)
#   make test-packaging the packaging and firmware tests (install into throw-away roots)

GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DIST         ?= dist
AGENT_PKG    ?= ./agent/cmd/porthole-agent
AGENT_NAME   := porthole-agent
CROSS_LDFLAGS = -s -w -X main.version=$(VERSION)
# nethttpomithttp2: the agent speaks HTTP/1.1 only (sdk/dps tests pin it), so
# net/http's HTTP/2 code is dead weight (about 0.4 MB). Add porthole_minimal
# to leave out doctor and the service install verbs (see
# agent/cmd/porthole-agent/SIZE.md).
AGENT_TAGS   ?= nethttpomithttp2
# No inlining outside crypto: about 0.65 MB less on mipsle; crypto (where a
# stream's CPU goes) keeps it. Costs about 5-10 % CPU on bulk TLS
# throughput on amd64 (SIZE.md). Empty it for Go's defaults.
# The crypto packages only a handshake runs (TLS's own code, the NIST curves,
# ECDSA, Ed25519 points, HPKE, RSA's padding and key checks) lose inlining
# too: about 0.14 MB less; the bulk path (AES-GCM, ChaCha20-Poly1305, SHA),
# X25519, ML-KEM and bigmod (RSA's arithmetic) keep it (SIZE.md).
AGENT_GCFLAGS_COLD ?= crypto/tls crypto/internal/fips140/nistec/... crypto/internal/fips140/ecdsa \
	crypto/ecdsa crypto/internal/fips140/edwards25519 crypto/hpke crypto/rsa \
	crypto/internal/fips140/drbg crypto/internal/fips140/rsa
AGENT_GCFLAGS ?= -gcflags=all=-l -gcflags=crypto/...= -gcflags=vendor/golang.org/x/crypto/...= \
	$(foreach p,$(AGENT_GCFLAGS_COLD),-gcflags=$(p)=-l)
# 32-bit MIPS kernels run with 4 KiB pages (OpenWrt's ath79, ramips,
# lantiq...): align the segments to 4 KiB instead of Go's 64 KiB, which is
# only padding (about 0.12 MB). Set MIPS32_SEGMENT_ALIGN= for a kernel with
# 16 or 64 KiB pages. mips64le keeps 64 KiB (Loongson runs 16 KiB pages).
MIPS32_SEGMENT_ALIGN ?= -R 0x1000

# Budgets of the stripped linux/mipsle softfloat agent, in decimal bytes:
# the default build's file and its xz -9e size (what a squashfs image
# pays), and the porthole_minimal build's file.
SIZE_LIMIT         ?= 8500000
SIZE_XZ_LIMIT      ?= 2000000
SIZE_MINIMAL_LIMIT ?= 7800000

# nfpm runs through `go run` so it is not a module requirement. v2.46 and
# later pull modules the module proxy does not serve; v2.45.0 builds.
NFPM_VERSION ?= v2.45.0
NFPM         ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
export NFPM

# Build targets: name := GOARCH GOARM GOMIPS (a dash for "not set").
# mips64le keeps Go's default hardfloat: the 64-bit MIPS SoCs it is meant
# for (Octeon, Loongson) have an FPU.
CROSS_amd64    := amd64    - -
CROSS_arm64    := arm64    - -
CROSS_armv5    := arm      5 -
CROSS_armv7    := arm      7 -
CROSS_mips     := mips     - softfloat
CROSS_mipsle   := mipsle   - softfloat
CROSS_mips64le := mips64le - -
CROSS_NAMES    := amd64 arm64 armv5 armv7 mips mipsle mips64le

cross_field = $(filter-out -,$(word $(2),$(CROSS_$(1))))
cross_ldflags = $(CROSS_LDFLAGS) $(if $(filter mips mipsle,$(1)),$(MIPS32_SEGMENT_ALIGN))
CROSS_BINS  := $(foreach n,$(CROSS_NAMES),$(DIST)/$(AGENT_NAME)_linux_$(n))
MINIMAL_BIN := $(DIST)/$(AGENT_NAME)-minimal_linux_mipsle

# Packages: build target -> Debian arch, and build target -> OpenWrt arch.
DEB_ARCHES := amd64:amd64 arm64:arm64 armv7:armhf armv5:armel mips:mips mipsle:mipsel mips64le:mips64el
IPK_ARCHES := mipsle:mipsel_24kc mips:mips_24kc armv7:arm_cortex-a7_neon-vfpv4 arm64:aarch64_generic amd64:x86_64

OVERLAY_ARCH ?= mipsle

# Emulated tests: build target -> qemu-user binary (Debian qemu-user-static).
CROSS_TEST_ARCHES ?= armv7 arm64 mips mipsle
# agent/internal/e2e is left out: it builds hubsim and the agent with the
# target's GOARCH and runs them next to the host's sshd, which needs
# binfmt_misc to exec the foreign binaries.
CROSS_TEST_PKGS   ?= $(filter-out %/agent/internal/e2e,$(shell $(GO) list ./sdk/... ./agent/...))

.PHONY: cross size test-cross package image-overlay test-packaging cross-force

cross-force:

$(DIST)/$(AGENT_NAME)_linux_%: cross-force
	@mkdir -p $(DIST)
	@echo "build $@"
	@CGO_ENABLED=0 GOOS=linux GOARCH=$(call cross_field,$*,1) \
	  GOARM=$(call cross_field,$*,2) GOMIPS=$(call cross_field,$*,3) \
	  $(GO) build -trimpath -tags "$(AGENT_TAGS)" $(AGENT_GCFLAGS) -ldflags "$(call cross_ldflags,$*)" -o $@ $(AGENT_PKG)

$(MINIMAL_BIN): cross-force
	@mkdir -p $(DIST)
	@echo "build $@"
	@CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat \
	  $(GO) build -trimpath -tags "$(AGENT_TAGS) porthole_minimal" $(AGENT_GCFLAGS) -ldflags "$(call cross_ldflags,mipsle)" -o $@ $(AGENT_PKG)

SIZE_CHECKS = -limit $(SIZE_LIMIT) -xz-limit $(SIZE_XZ_LIMIT) $(DIST)/$(AGENT_NAME)_linux_mipsle \
	-limit $(SIZE_MINIMAL_LIMIT) -xz-limit - $(MINIMAL_BIN)

cross: $(CROSS_BINS) $(MINIMAL_BIN)
	@.ci/ensure-tools xz=xz-utils
	@packaging/scripts/sizes.sh $(filter-out %_linux_mipsle,$(CROSS_BINS)) $(SIZE_CHECKS) || true

size: $(DIST)/$(AGENT_NAME)_linux_mipsle $(MINIMAL_BIN)
	@.ci/ensure-tools xz=xz-utils
	@packaging/scripts/sizes.sh $(SIZE_CHECKS)

test-cross:
	@.ci/ensure-tools qemu-arm-static=qemu-user-static qemu-aarch64-static=qemu-user-static \
	  qemu-mips-static=qemu-user-static qemu-mipsel-static=qemu-user-static
	@GO="$(GO)" packaging/scripts/test-cross.sh $(foreach n,$(CROSS_TEST_ARCHES),$(n)=$(call cross_field,$(n),1):$(call cross_field,$(n),2):$(call cross_field,$(n),3)) -- $(CROSS_TEST_PKGS)

package: $(foreach p,$(DEB_ARCHES) $(IPK_ARCHES),$(DIST)/$(AGENT_NAME)_linux_$(firstword $(subst :, ,$(p))))
	@.ci/ensure-tools dpkg-deb=dpkg
	@$(foreach p,$(DEB_ARCHES),packaging/scripts/package.sh deb $(word 2,$(subst :, ,$(p))) \
	  $(DIST)/$(AGENT_NAME)_linux_$(word 1,$(subst :, ,$(p))) "$(VERSION)" $(DIST) || exit 1;)
	@$(foreach p,$(IPK_ARCHES),packaging/scripts/package.sh ipk $(word 2,$(subst :, ,$(p))) \
	  $(DIST)/$(AGENT_NAME)_linux_$(word 1,$(subst :, ,$(p))) "$(VERSION)" $(DIST) || exit 1;)

image-overlay: $(DIST)/$(AGENT_NAME)_linux_$(OVERLAY_ARCH)
	@packaging/scripts/overlay.sh $< $(OVERLAY_ARCH) "$(VERSION)" $(DIST)

test-packaging: $(DIST)/$(AGENT_NAME)_linux_amd64
	@.ci/ensure-tools dpkg=dpkg dpkg-deb=dpkg lintian=lintian make=make zstd=zstd \
	  nsenter=util-linux systemd-nspawn=systemd-container mmdebstrap=mmdebstrap
	PORTHOLE_AGENT_BIN=$(abspath $<) $(GO) test -count=1 -v ./packaging/
