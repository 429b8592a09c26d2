# packaging/release.mk — the release set. Included by the top-level Makefile.
#
#   make release   porthole and hubsim archives for linux, darwin and windows on
#                  amd64 and arm64, the device agent for every device arch,
#                  SHA256SUMS and a CycloneDX SBOM, into dist/release/

RELEASE_DIR       ?= $(DIST)/release
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
# cyclonedx-gomod, installed with go install at this version into dist/tools.
CYCLONEDX_VERSION ?= v1.10.0
TOOLS_DIR         ?= $(DIST)/tools
CYCLONEDX         := $(TOOLS_DIR)/cyclonedx-gomod

.PHONY: release

$(CYCLONEDX):
	@mkdir -p $(TOOLS_DIR)
	GOBIN=$(abspath $(TOOLS_DIR)) CGO_ENABLED=0 $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_VERSION)

release: $(CROSS_BINS) $(CYCLONEDX)
	@.ci/ensure-tools zip=zip sha256sum=coreutils
	GO="$(GO)" VERSION="$(VERSION)" RELEASE_DIR="$(RELEASE_DIR)" CYCLONEDX="$(CYCLONEDX)" \
	  GOFLAGS_RELEASE='-trimpath -tags nethttpomithttp2' LDFLAGS_RELEASE='$(LDFLAGS)' \
	  packaging/scripts/release.sh $(RELEASE_PLATFORMS) -- $(CROSS_BINS)
