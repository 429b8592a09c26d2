#!/bin/bash
# source-hash.sh COMMIT
# Prints the sha256 of the tarball Buildroot's golang-package makes for the
# pinned COMMIT: the source tree with its Go modules vendored (go mod
# vendor), packed by the mk_tar_gz of support/download/helpers (sorted file
# list, POSIX tar, owner 0, mtime = the commit's date, gzip -6 -n) under
# porthole-agent-COMMIT/. Run it from a clone that has COMMIT. Buildroot's
# `make porthole-agent-source` with `utils/add-custom-hashes` is the
# reference; this script lets the .hash be written before a release.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: source-hash.sh COMMIT" >&2; exit 2; }
commit=$1
base=porthole-agent-$commit
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/$base"
umask 022
git archive --format=tar "$commit" | tar -C "$tmp/$base" --no-same-permissions --no-same-owner -xf -
(cd "$tmp/$base" && GOFLAGS=-modcacherw go mod vendor >/dev/null)
date=$(date -d "$(git log -1 --format=%ci "$commit")" -u +%Y-%m-%dT%H:%M:%S+00:00)
pax="delete=atime,delete=ctime,delete=mtime,exthdr.name=%d/PaxHeaders/%f,exthdr.mtime={$date}"
cd "$tmp/$base"
find . -not -type d -and -not -path './.git/*' | LC_ALL=C sort >"$tmp/list"
tar cf - --transform="s#^\./#$base/#S" --numeric-owner --owner=0 --group=0 \
	--mtime="$date" --format=posix --pax-option="$pax" --mode='go=u,go-w' \
	-T "$tmp/list" | gzip -6 -n | sha256sum | cut -d' ' -f1
