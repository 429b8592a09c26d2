#!/usr/bin/env bash
# test-cross.sh NAME=GOARCH:GOARM:GOMIPS... -- PACKAGE...
# Runs the Go tests of PACKAGE... for each target under qemu-user
# (go test -exec qemu-<arch>-static), then prints how long each took.
#
# What works under qemu-user without binfmt_misc: the emulated test binary
# may exec host (amd64) programs — sh, go, ssh, sshd — because the kernel
# runs them natively. What cannot work: exec of another foreign binary
# (re-running os.Args[0], or a cross-built binary): cross.mk leaves out
# agent/internal/e2e, which builds and runs the binaries.
#
# Skipped under emulation (go test -skip, by test name), each for a reason:
#   all arches  TestAttemptTimeoutIsRetried (sdk/dps): gives an HTTPS attempt
#               100 ms, which an emulated TLS handshake does not make, so
#               every attempt times out. Timing-dependent; not an arch bug.
#   mips*       TestFailures (agent/internal/doctor): qemu-user passes the
#               host's errno from getsockopt(SO_ERROR) through untranslated
#               (111, where MIPS ECONNREFUSED is 146), so a refused connect
#               is not recognised as "refused". A qemu artefact: on a real
#               MIPS kernel the errno is right. For the same reason on mips*:
#               TestOutageAtBoot and TestOutageResolveToClosedPort
#               (agent/internal/daemon), which check that the agent names a
#               refused DPS connection as such in its one warning line, and
#               TestDialErrorNamesEachStepOnce (sdk/iothub), which checks the
#               refused dial's text ("connection refused", not "errno 111").
#   all arches  TestCompletionScripts, TestStdioSignalsCloseNormally,
#               TestSSHRunsSSH, TestSSHConfigWithRealSSH (sdk/cmd/porthole):
#               they run porthole as a separate program — bash completing
#               through the built binary, ssh starting it as ProxyCommand, a
#               signal sent to the test binary re-run as a child — so the
#               kernel must exec a foreign binary, which needs binfmt_misc
#               (the same rule as for agent/internal/e2e above). Their code
#               paths run natively in make test. Likewise TestWorkerFleet
#               and TestFloorFleet (sdk/internal/fleetbench): they re-run the
#               test binary as the hub load's client workers and floor server.
#   mips*       TestQueryAgainstHubsim (sdk/service), TestFleetDevicesAndStatus
#               (sdk/cmd/porthole): they run IoT Hub twin queries, which
#               hubsim answers with SQLite; modernc.org/sqlite is not built
#               for linux/mips or mipsle, so hubsim there keeps its state in
#               memory and refuses queries (hubsim/internal/store
#               Available). Not the SDK's code under test: the query client
#               runs on the other targets.
# CROSS_SKIP replaces these lists for every target (empty: skip nothing).
# Extra go test flags: CROSS_TEST_FLAGS (default: -count=1 -timeout 20m).
set -euo pipefail
GO=${GO:-go}
# Tests that exec a binary built for the target (see above).
execs_foreign='TestCompletionScripts|TestStdioSignalsCloseNormally|TestSSHRunsSSH|TestSSHConfigWithRealSSH|TestWorkerFleet|TestFloorFleet'
skip_for() {
	if [ -n "${CROSS_SKIP+set}" ]; then
		echo "$CROSS_SKIP"
		return
	fi
	case $1 in
	mips | mipsle | mips64 | mips64le) echo "^(TestAttemptTimeoutIsRetried|TestFailures|TestOutageAtBoot|TestOutageResolveToClosedPort|TestDialErrorNamesEachStepOnce|TestQueryAgainstHubsim|TestFleetDevicesAndStatus|$execs_foreign)\$" ;;
	*) echo "^(TestAttemptTimeoutIsRetried|$execs_foreign)\$" ;;
	esac
}
flags=${CROSS_TEST_FLAGS:--count=1 -timeout 20m}

targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
pkgs=("$@")
[ ${#targets[@]} -gt 0 ] && [ ${#pkgs[@]} -gt 0 ] || { echo "usage: test-cross.sh NAME=GOARCH:GOARM:GOMIPS... -- PACKAGE..." >&2; exit 2; }

qemu_for() {
	case $1 in
	arm) echo qemu-arm-static ;;
	arm64) echo qemu-aarch64-static ;;
	mips) echo qemu-mips-static ;;
	mipsle) echo qemu-mipsel-static ;;
	mips64) echo qemu-mips64-static ;;
	mips64le) echo qemu-mips64el-static ;;
	*) echo "test-cross: no qemu-user binary known for GOARCH=$1" >&2; return 1 ;;
	esac
}

summary=()
failed=0
for t in "${targets[@]}"; do
	name=${t%%=*}
	IFS=: read -r goarch goarm gomips <<<"${t#*=}"
	qemu=$(qemu_for "$goarch")
	skip=$(skip_for "$goarch")
	echo "=== test-cross $name: GOARCH=$goarch GOARM=$goarm GOMIPS=$gomips under $qemu, skipping ${skip:-nothing}"
	start=$(date +%s)
	rc=0
	# shellcheck disable=SC2086
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm GOMIPS=$gomips \
		"$GO" test -exec "$qemu" $flags ${skip:+-skip "$skip"} "${pkgs[@]}" || rc=$?
	secs=$(($(date +%s) - start))
	[ $rc -eq 0 ] && res=ok || { res=FAIL; failed=1; }
	summary+=("$(printf '%-10s %-5s %6ss' "$name" "$res" "$secs")")
done
echo "=== test-cross summary (wall time per target, test binaries built and run)"
printf '%s\n' "${summary[@]}"
exit $failed
