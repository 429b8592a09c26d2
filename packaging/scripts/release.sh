#!/usr/bin/env bash
# release.sh OS/ARCH... -- AGENT_BINARY...
# Builds porthole and hubsim for each OS/ARCH into an archive (.tar.gz, or
# .zip for windows) with the README and LICENSE, copies the device agent
# binaries next to them (xz-compressed), writes a CycloneDX SBOM per program
# (cyclonedx-gomod bin)
# and SHA256SUMS over everything. Archives are reproducible: sorted entries,
# the commit's time as mtime, owner 0.
# Environment: GO, VERSION, RELEASE_DIR, CYCLONEDX, GOFLAGS_RELEASE, LDFLAGS_RELEASE.
set -euo pipefail
: "${GO:=go}" "${VERSION:=dev}" "${RELEASE_DIR:=dist/release}" "${CYCLONEDX:?}"
platforms=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do platforms+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
agents=("$@")
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH=$epoch

rm -rf "$RELEASE_DIR"
mkdir -p "$RELEASE_DIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for p in "${platforms[@]}"; do
	os=${p%/*}
	arch=${p#*/}
	name="porthole_${VERSION}_${os}_${arch}"
	dir="$stage/$name"
	mkdir -p "$dir"
	ext=
	[ "$os" = windows ] && ext=.exe
	for prog in sdk/cmd/porthole hubsim/cmd/hubsim; do
		bin=$(basename "$prog")
		echo "build $name/$bin$ext"
		# shellcheck disable=SC2086
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build $GOFLAGS_RELEASE -ldflags "$LDFLAGS_RELEASE" -o "$dir/$bin$ext" "./$prog"
	done
	cp README.md LICENSE "$dir/"
	find "$dir" -exec touch -h -d "@$epoch" {} +
	if [ "$os" = windows ]; then
		(cd "$stage" && find "$name" -type f | LC_ALL=C sort | TZ=UTC zip -X -q "$OLDPWD/$RELEASE_DIR/$name.zip" -@)
	else
		tar -C "$stage" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
			-czf "$RELEASE_DIR/$name.tar.gz" "$name"
	fi
done

for a in "${agents[@]}"; do
	base=$(basename "$a")
	xz -9e -T1 -c "$a" >"$RELEASE_DIR/${base/porthole-agent_/porthole-agent_${VERSION}_}.xz"
done

# One SBOM per program, from what the binary links (its embedded build
# info: no git needed, so a git worktree works too), taken from the first
# platform's build and the first agent binary.
first=${platforms[0]}
fdir="$stage/porthole_${VERSION}_${first%/*}_${first#*/}"
fext=
[ "${first%/*}" = windows ] && fext=.exe
sbom() {
	echo "sbom $1"
	"$CYCLONEDX" bin -json -version "$VERSION" -output "$RELEASE_DIR/${1}_${VERSION}.cdx.json" "$2"
}
sbom porthole "$fdir/porthole$fext"
sbom hubsim "$fdir/hubsim$fext"
[ ${#agents[@]} -gt 0 ] && sbom porthole-agent "${agents[0]}"

(cd "$RELEASE_DIR" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "release $VERSION: $(find "$RELEASE_DIR" -maxdepth 1 -type f | wc -l) files in $RELEASE_DIR"
