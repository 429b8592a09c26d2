#!/bin/sh
# mirror-hash.sh COMMIT SUBDIR
# Prints the PKG_MIRROR_HASH OpenWrt computes for this package's pinned git
# source: the commit's tree (git archive, .gitattributes applied) under
# SUBDIR/, packed the way OpenWrt's include/download.mk packs git checkouts
# (GNU tar --numeric-owner --owner=0 --group=0 --mode=a-s --sort=name
# --mtime=@<commit time>, zstd -T0 --ultra -20; OpenWrt 23.05 and later).
# SUBDIR is $(PKG_NAME)-$(PKG_VERSION), e.g. porthole-agent-2026.12.06~eecae6c2.
# Run it from a clone that has COMMIT; `make package/porthole-agent/check
# FIXUP=1` in an OpenWrt tree computes the same from the real download.
set -eu
[ $# -eq 2 ] || { echo "usage: mirror-hash.sh COMMIT SUBDIR" >&2; exit 2; }
commit=$1 subdir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/$subdir"
# Extracted the way a non-root build user does (umask 022, modes not kept
# from the archive, whose tar.umask is 002).
umask 022
git archive --format=tar "$commit" | tar -C "$tmp/$subdir" --no-same-permissions --no-same-owner -xf -
ts=@$(git log -1 --format=%ct "$commit")
(
	cd "$tmp"
	tar --numeric-owner --owner=0 --group=0 --mode=a-s --sort=name --mtime="$ts" -c "$subdir" |
		zstd -q -T0 --ultra -20 -c
) | sha256sum | cut -d' ' -f1
