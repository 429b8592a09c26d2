#!/usr/bin/env bash
# The porthole demo on one machine, every piece a real process on loopback:
#
#   hubsim (DPS + IoT hubs + streaming endpoint)
#     -> a device enrolled in hubsim's DPS (porthole dps enroll)
#     -> porthole-agent: registers with DPS, connects to its hub
#     -> OpenSSH sshd as the device's SSH server (throw-away keys)
#     -> porthole ssh <device> -- <command>: ssh through a device stream
#
# Usage: hubsim/demo/demo.sh BIN_DIR   (make demo passes bin/)
# Needs ssh, ssh-keygen and sshd (Debian: openssh-client, openssh-server;
# `make tools` installs them as root). Keys and connection strings stay in
# 0600 files of a temporary directory that is removed at the end; nothing
# secret is printed.
set -euo pipefail
bin=${1:-bin}
bin=$(cd "$bin" && pwd)
for b in hubsim porthole-agent porthole; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing (run make build)" >&2; exit 1; }
done
PATH=$PATH:/usr/sbin:/sbin
for tool in ssh ssh-keygen sshd; do
	command -v "$tool" >/dev/null || {
		echo "demo: $tool is missing (Debian: apt-get install openssh-client openssh-server; or make tools as root)" >&2
		exit 1
	}
done

umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/porthole-demo.XXXXXX")
device=demo-device
hub=hub-eu.local
declare -A pids=()
logs=(hubsim.log porthole-agent.log sshd.log)

stop() { # stop NAME: SIGTERM, wait up to 15 s
	local p=${pids[$1]:-}
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset "pids[$1]"
}
mask() { sed -E 's/(SharedAccessKey=|sig=|symmetric_key: |Bearer )[^;&[:space:]"]+/\1<hidden>/g'; }
cleanup() {
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '\n\033[1;31mdemo FAILED (exit %d); last log lines:\033[0m\n' "$rc" >&2
		for l in "${logs[@]}"; do
			[ -s "$work/$l" ] || continue
			echo "--- $l ---" >&2
			tail -n 20 "$work/$l" | mask >&2
		done
	fi
	for n in porthole-agent sshd hubsim; do stop "$n"; done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# free_port: a loopback TCP port nobody listens on, below the kernel's
# ephemeral range so that no outgoing connection holds it either.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port found"
}

step "starting hubsim on free loopback ports (state in a temporary directory)"
"$bin/hubsim" -listen 127.0.0.1 -https-port 0 -mqtt-port 0 -state-dir "$work/hubsim" \
	-status-file "$work/status.json" >"$work/hubsim.banner" 2>"$work/hubsim.log" &
pids[hubsim]=$!
for _ in $(seq 300); do [ -s "$work/status.json" ] && break; kill -0 "${pids[hubsim]}" 2>/dev/null || break; sleep 0.1; done
[ -s "$work/status.json" ] || die "hubsim did not start"
# hubsim wrote ready client configuration next to its status file: a
# porthole --config file per hub and the agent's ca_file/resolve/DPS lines.
opconf="$work/porthole-$hub.yaml"
[ -s "$opconf" ] && [ -s "$work/agent-snippet.yaml" ] || die "hubsim wrote no client configuration"
mask <"$work/hubsim.banner"

step "operator config for porthole, as hubsim wrote it: CA, service connection strings (0600 file, hidden here), host names mapped to 127.0.0.1"
sed -E 's/(connection_string: ).*/\1<hidden>/' "$opconf"

step "porthole dps enroll $device --hub $hub (DPS generates the key; it goes to a 0600 file)"
"$bin/porthole" dps enroll "$device" --hub "$hub" --key-file "$work/device.key" --config "$opconf"

sshd_port=$(free_port)
step "porthole-agent run: the device registers with DPS and connects to its hub (stream 'ssh' -> 127.0.0.1:$sshd_port)"
# hubsim's agent snippet ends with its provisioning section: the device's
# own provisioning keys continue it, then the rest of the agent config.
{
	cat "$work/agent-snippet.yaml"
	cat <<EOF
  registration_id: $device
  attestation:
    type: symmetric_key
    symmetric_key_file: $work/device.key
streams:
  targets:
    ssh: 127.0.0.1:$sshd_port
state_dir: $work/agent-state
EOF
} >"$work/agent.yaml"
"$bin/porthole-agent" -config "$work/agent.yaml" validate
"$bin/porthole-agent" -config "$work/agent.yaml" run 2>"$work/porthole-agent.log" &
pids[porthole-agent]=$!
connected=
for _ in $(seq 300); do
	kill -0 "${pids[porthole-agent]}" 2>/dev/null || die "porthole-agent exited"
	if "$bin/porthole-agent" -config "$work/agent.yaml" status 2>/dev/null | grep -q '^connected *yes'; then
		connected=1
		break
	fi
	sleep 0.1
done
[ -n "$connected" ] || die "porthole-agent did not connect within 30 s"
"$bin/porthole-agent" -config "$work/agent.yaml" status

step "OpenSSH sshd on 127.0.0.1:$sshd_port as the device's SSH server (throw-away host key, one authorized key)"
ssh-keygen -q -t ed25519 -N '' -C porthole-demo-host -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C porthole-demo-operator -f "$work/operator_key"
cp "$work/operator_key.pub" "$work/authorized_keys"
# sshd started as root needs its privilege separation directory, which the
# Debian package only creates when its service starts.
if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi
sshd_bin=$(command -v sshd)
"$sshd_bin" -D -e -f /dev/null -p "$sshd_port" -o ListenAddress=127.0.0.1 -h "$work/host_key" \
	-o AuthorizedKeysFile="$work/authorized_keys" -o StrictModes=no -o PidFile=none -o UsePAM=no \
	-o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
	-o PermitRootLogin=prohibit-password -o "Subsystem=sftp internal-sftp" 2>"$work/sshd.log" &
pids[sshd]=$!
up=
for _ in $(seq 100); do
	kill -0 "${pids[sshd]}" 2>/dev/null || die "sshd exited"
	if (exec 3<>"/dev/tcp/127.0.0.1/$sshd_port") 2>/dev/null; then up=1; break; fi
	sleep 0.1
done
[ -n "$up" ] || die "sshd is not listening on 127.0.0.1:$sshd_port"
echo "sshd is listening"

user=$(id -un)
step "porthole ssh $user@$device -- <command>: ssh -> porthole stdio -> hub-eu (hubsim) -> streaming endpoint -> porthole-agent -> sshd"
"$bin/porthole" ssh "$user@$device" --config "$opconf" -- -F /dev/null -i "$work/operator_key" -o IdentitiesOnly=yes -o IdentityAgent=none \
	-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
	'echo "hello from $(hostname) as $(id -un), through sshd on port ${SSH_CONNECTION##* } ($(uname -sr))"'

step "the agent counted the stream"
"$bin/porthole-agent" -config "$work/agent.yaml" status | grep -E '^(connected|streams)'

step "demo finished; stopping porthole-agent, sshd and hubsim"
for n in porthole-agent sshd hubsim; do stop "$n"; done
echo "done"
