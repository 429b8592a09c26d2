#!/bin/sh
# overlay.sh BINARY ARCH VERSION OUTDIR
# Builds OUTDIR/porthole-agent-overlay_VERSION_ARCH.tar.gz: a rootfs overlay
# with the agent, the sample config (0600) and the BusyBox init script
# S95porthole-agent, owned by root. Unpack it at the root of any rootfs:
#   tar -xzpf porthole-agent-overlay_*.tar.gz -C rootfs/
set -eu
[ $# -eq 4 ] || { echo "usage: overlay.sh BINARY ARCH VERSION OUTDIR" >&2; exit 2; }
binary=$1 arch=$2 version=$3 out=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$binary" "$stage/usr/bin/porthole-agent"
install -D -m 0600 "$root/configs/agent.yaml" "$stage/etc/porthole/agent.yaml"
install -D -m 0755 "$root/firmware/rootfs-overlay/S95porthole-agent" "$stage/etc/init.d/S95porthole-agent"
install -d -m 0700 "$stage/var/lib/porthole"
chmod 0755 "$stage" "$stage/usr" "$stage/usr/bin" "$stage/etc" "$stage/etc/porthole" "$stage/etc/init.d" "$stage/var" "$stage/var/lib"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
name=porthole-agent-overlay_$(printf '%s' "$version" | tr -c 'A-Za-z0-9.+~\n-' '.')_$arch.tar.gz
(cd "$stage" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
	--mtime="@$epoch" -cf - ./etc ./usr ./var) | gzip -n -9 >"$out/$name"
echo "overlay: $out/$name"
