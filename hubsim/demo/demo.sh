#!/usr/bin/env bash
# The porthole demo on one machine: start hubsim (DPS + IoT hubs + streaming
# endpoint) on free loopback ports and show it serving.
# Usage: hubsim/demo/demo.sh BIN_DIR   (make demo passes bin/)
set -euo pipefail
bin=${1:-bin}
bin=$(cd "$bin" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/porthole-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "starting hubsim on free loopback ports (state in a temporary directory)"
"$bin/hubsim" -https-port 0 -mqtt-port 0 -state-dir "$work/hubsim" \
	-status-file "$work/status.json" >"$work/hubsim.out" 2>"$work/hubsim.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/status.json" ] && break; sleep 0.1; done
[ -s "$work/status.json" ] || { cat "$work/hubsim.log"; echo "hubsim did not start" >&2; exit 1; }
https=$(sed -n 's/.*"https": *\([0-9]*\).*/\1/p' "$work/status.json")
ca=$(sed -n 's/.*"ca_file": *"\([^"]*\)".*/\1/p' "$work/status.json")
sed 's/SharedAccessKey=[^[:space:]"]*/SharedAccessKey=<hidden>/' "$work/hubsim.out"

step "curl --cacert <hubsim CA> https://127.0.0.1:$https/healthz"
curl -sS --fail --cacert "$ca" "https://127.0.0.1:$https/healthz"
echo
step "the streaming endpoint of hub-eu.local (like 'az iot hub devicestream show')"
curl -sS --fail --cacert "$ca" -H "Host: hub-eu.local" "https://127.0.0.1:$https/hubsim/hubs/hub-eu.local/devicestream"
step "demo finished; stopping hubsim"
