# porthole — build, test and demo.
#
#   make demo    build everything and run the end-to-end demo on this machine
#   make test    the whole test suite (what CI runs)
#   make fuzz    the fuzz campaign (FUZZTIME=1000000x for the release run)
#   make bench   the benchmarks, text tables in out/ (HUB_BASELINE=<commit>: the hub
#                load's baseline hubsim build; empty for none)
#   make chaos   the chaos suite's long form (network partitions, kills, full disk)
#   make release porthole + hubsim archives (linux, darwin, windows × amd64, arm64), the
#                device agents, SHA256SUMS and CycloneDX SBOMs into dist/release/
#   make screenshots  headless Chromium screenshots of every hubsim dashboard page in out/ui/
#
# Targets that need system tools install the missing Debian packages when run
# as root (one line per install) and otherwise stop with a message naming the
# missing tool.

SHELL       := /bin/bash
GO          ?= go
BIN         := bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
# nethttpomithttp2: no binary here speaks HTTP/2 (hubsim serves HTTP/1.1 so
# WebSocket upgrades work; the agent and CLI are HTTP/1.1 clients).
GOFLAGS_BUILD := -trimpath -tags nethttpomithttp2 -ldflags "$(LDFLAGS)"
export CGO_ENABLED ?= 0

# Tools the test suite drives: tool=Debian package.
TEST_TOOLS := ssh=openssh-client scp=openssh-client sshd=openssh-server \
	dropbear=dropbear-bin dropbearkey=dropbear-bin curl=curl \
	mosquitto_sub=mosquitto-clients node=nodejs npm=npm busybox=busybox \
	qemu-mipsel-static=qemu-user-static dpkg-deb=dpkg make=make lintian=lintian \
	systemd-analyze=systemd unshare=util-linux nsenter=util-linux \
	systemd-nspawn=systemd-container mmdebstrap=mmdebstrap zstd=zstd git=git \
	ip=iproute2 nft=nftables /usr/share/bash-completion/bash_completion=bash-completion \
	chromium=chromium

.PHONY: all build test lint vet fmt-check demo bench soak fuzz chaos clean tools help screenshots

all: build

help:
	@sed -n 's/^#   //p' Makefile packaging/cross.mk packaging/release.mk

build:
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./hubsim/cmd/hubsim $(if $(wildcard agent/cmd/porthole-agent/main.go),./agent/cmd/porthole-agent) $(if $(wildcard sdk/cmd/porthole/main.go),./sdk/cmd/porthole)

tools:
	@.ci/ensure-tools $(TEST_TOOLS)

# The whole suite: lint (gofmt + vet), then every package's unit and
# integration tests with the race detector (the import-rule test included).
test: tools lint
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 14m ./...

lint: fmt-check vet

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The dashboard's browser test, run to keep a screenshot of each page
# (out/ui/*.png) for a reviewer to look at.
screenshots:
	@.ci/ensure-tools chromium=chromium
	@mkdir -p out/ui
	PORTHOLE_UI_SCREENSHOTS=$(CURDIR)/out/ui $(GO) test -count=1 -run '^TestBrowser$$' ./hubsim/internal/ui/
	@ls out/ui

# What the demo drives: a real OpenSSH server on loopback, curl.
DEMO_TOOLS := sshd=openssh-server ssh=openssh-client curl=curl

demo: build
	@.ci/ensure-tools $(DEMO_TOOLS)
	@hubsim/demo/demo.sh $(BIN)

# Benchmarks print text tables and write them to out/: the stream transport
# micro-benchmarks, one connection's bulk inside a mux stream vs a plain
# stream in one process (out/bench-mux-bulk.txt), the end-to-end stream benchmark (proxy → relay → agent →
# target, each its own process, against a plain TCP chain), multiplexed vs
# one stream per connection (page load, bulk, RSS: out/bench-mux.txt), the DPS fleet
# storm (with the fleet planner on the same storm, within 10%), the hub
# load at 10,000 devices side by side with 1,000 (the connect storm against
# hubsim's 100/s throttle, clients in worker processes; in the same
# alternating rounds the floor — a minimal Go MQTT/TLS server — at both
# sizes, and 1,000 devices on the hubsim of HUB_BASELINE, built from git by
# .ci/baseline-hubsim), twin-update latency with the state in a file vs in
# memory, and the fleet planner's 100,000-device plan (all at once vs staged;
# table, CSV and plots in out/).
# The agent in the end-to-end benchmark (its idle RSS included) is the one
# firmware ships: make cross's linux/amd64 build.
# The hub load's baseline build: hubsim as it was when the hub-scale work
# began (its 1,000-device msg/s is what the 10,000-device run is held to).
# Empty: no baseline.
HUB_BASELINE ?= 57395e4
bench: tools build dist/porthole-agent_linux_amd64
	@mkdir -p out
	$(GO) test -run '^$$' -bench . -benchmem ./sdk/stream/ | tee out/bench-stream-conn.txt
	$(GO) test -run '^$$' -bench BenchmarkBulk -benchmem -count 3 ./sdk/stream/mux/ | tee out/bench-mux-bulk.txt
	$(GO) test -run '^$$' -bench 'BenchmarkTwinQuery|BenchmarkExecute' -benchtime 20x ./hubsim/internal/hub/ ./hubsim/internal/query/ | tee out/bench-twin-query.txt
	$(GO) test -run '^$$' -bench BenchmarkPages -benchtime 50x ./hubsim/internal/ui/ | tee out/bench-ui-pages.txt
	PORTHOLE_BENCH=1 PORTHOLE_BENCH_AGENT=$(CURDIR)/dist/porthole-agent_linux_amd64 $(GO) test -count=1 -timeout 30m -run 'TestBenchStreams|TestBenchMux|TestBrowserPage' -v ./agent/internal/e2e/
	@rm -f out/hubsim-baseline; if [ -n "$(HUB_BASELINE)" ]; then GO=$(GO) sh .ci/baseline-hubsim $(HUB_BASELINE) out/hubsim-baseline || [ $$? -eq 3 ]; fi
	PORTHOLE_BENCH=1 PORTHOLE_BENCH_HUBSIM=$(CURDIR)/$(BIN)/hubsim PORTHOLE_BENCH_HUB_DEVICES=10000 \
	PORTHOLE_BENCH_HUB_BASELINE=$$([ -x out/hubsim-baseline ] && echo $(CURDIR)/out/hubsim-baseline) \
		$(GO) test -count=1 -timeout 45m -run 'TestFleetStorm|TestHubLoad|TestTwinLatency' -v ./sdk/internal/fleetbench/
	$(BIN)/hubsim fleet plan -out out
	@echo; echo "tables written to out/:"; ls out/

# Long runs, for before a release: the 1,000-device hub load for 10 minutes
# (its table lands in out/bench-hub-load.txt) and the SSH end-to-end suite
# ten times in a row.
SOAK_DURATION ?= 10m
soak: tools build
	@mkdir -p out
	PORTHOLE_BENCH=1 PORTHOLE_BENCH_HUBSIM=$(CURDIR)/$(BIN)/hubsim PORTHOLE_BENCH_HUB_DURATION=$(SOAK_DURATION) \
		$(GO) test -count=1 -timeout 60m -run 'TestHubLoad/process' -v ./sdk/internal/fleetbench/
	$(GO) test -count=10 -timeout 60m -run 'TestSSH$$' ./agent/internal/e2e/

# The chaos suite, long form: the device in a network namespace of its own,
# partitions of 30 s and 5 min (idle and during transfers), hubsim killed and
# restarted, a stream across a token renewal, SIGTERM drain, disk full. Its
# table lands in out/chaos.txt. (`make test` runs the short form.)
chaos: tools
	@mkdir -p out
	set -o pipefail; PORTHOLE_CHAOS=full $(GO) test -count=1 -timeout 40m -run 'TestChaos' -v ./agent/internal/e2e/ | tee out/chaos.log

# The fuzz campaign: every fuzz target in the module for FUZZTIME each (a
# duration, or Nx for exactly N executions: `make fuzz FUZZTIME=1000000x`),
# one worker each unless FUZZ_PARALLEL says otherwise; a table of executions
# per target lands in out/fuzz.txt. FUZZ_PKGS narrows it (default ./...).
FUZZTIME ?= 30s
FUZZ_PARALLEL ?= 1
FUZZ_PKGS ?= ./...
fuzz:
	FUZZTIME=$(FUZZTIME) FUZZ_PARALLEL=$(FUZZ_PARALLEL) .ci/fuzz $(FUZZ_PKGS)

clean:
	rm -rf $(BIN) dist out

# cross, size, test-cross, package, image-overlay, test-packaging
include packaging/cross.mk
include packaging/release.mk
