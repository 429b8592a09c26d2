#!/bin/sh
# package.sh deb|ipk ARCH BINARY VERSION OUTDIR
# Builds one porthole-agent package with nfpm (packaging/nfpm.yaml).
#   ARCH     Debian arch (amd64, armhf, mipsel...) or OpenWrt arch (mipsel_24kc...)
#   BINARY   the porthole-agent binary built for that arch
#   VERSION  git describe output or a release version; made into a package
#            version that starts with a digit (dev builds: 0.0.0+git.<describe>)
# nfpm runs as $NFPM (default: go run of the pinned version in cross.mk).
set -eu
[ $# -eq 5 ] || { echo "usage: package.sh deb|ipk ARCH BINARY VERSION OUTDIR" >&2; exit 2; }
type=$1 arch=$2 binary=$3 version=$4 out=$5
case $type in deb | ipk) ;; *) echo "package.sh: unknown package type $type" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/../.." && pwd)
case $binary in /*) ;; *) binary=$(pwd)/$binary ;; esac
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
[ -f "$binary" ] || { echo "package.sh: no binary $binary" >&2; exit 1; }
mkdir -p "$out"

# Package version: v1.2.3 -> 1.2.3, v1.2.3-4-gabc -> 1.2.3+4.gabc,
# abc1234-dirty -> 0.0.0+git.abc1234.dirty.
v=${version#v}
case $v in
[0-9]*.[0-9]*) pv=$(printf '%s' "$v" | sed 's/-/+/; s/-/./g') ;;
*) pv=0.0.0+git.$(printf '%s' "$v" | tr -c 'A-Za-z0-9.\n' '.') ;;
esac

# Reproducible archives: file times from the last commit unless set.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

# Debian changelog (Debian policy 12.7): one entry for this version, dated
# from SOURCE_DATE_EPOCH, compressed with gzip -9n so it is reproducible.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
	printf 'porthole-agent (%s) unstable; urgency=medium\n\n' "$pv"
	printf '  * Upstream build %s of porthole-agent. The project history is at\n' "$version"
	printf '    https://github.com/porthole-iot/porthole/commits/\n\n'
	printf ' -- porthole maintainers <porthole-iot@users.noreply.github.com>  %s\n' \
		"$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S +0000' 2>/dev/null ||
			LC_ALL=C date -u -r "$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S +0000')"
} >"$tmp/changelog"
gzip -9n "$tmp/changelog"
gzip -9n <"$root/packaging/debian/porthole-agent.1" >"$tmp/porthole-agent.1.gz"

NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0}
cd "$root"
PKG_ARCH=$arch PKG_VERSION=$pv PKG_BINARY=$binary PKG_CHANGELOG=$tmp/changelog.gz PKG_MANPAGE=$tmp/porthole-agent.1.gz \
	$NFPM package --config packaging/nfpm.yaml --packager "$type" --target "$out/"
