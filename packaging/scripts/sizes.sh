#!/bin/sh
# sizes.sh [-limit BYTES] BINARY...
# Prints a size table of the given binaries: size on disk and size after
# xz -9e (what a squashfs/xz firmware image or a compressed download costs).
# With -limit, fails when any binary is larger than BYTES (decimal bytes).
set -eu
limit=
if [ "${1:-}" = "-limit" ]; then
	limit=$2
	shift 2
fi
[ $# -gt 0 ] || { echo "usage: sizes.sh [-limit BYTES] BINARY..." >&2; exit 2; }
command -v xz >/dev/null 2>&1 || { echo "sizes.sh: xz is needed (Debian package xz-utils)" >&2; exit 1; }

printf '%-34s %12s %12s\n' binary bytes xz-bytes
over=0
for f in "$@"; do
	size=$(wc -c <"$f" | tr -d ' ')
	xzsize=$(xz -9e -T1 -c "$f" | wc -c | tr -d ' ')
	printf '%-34s %12s %12s\n' "$(basename "$f")" "$size" "$xzsize"
	if [ -n "$limit" ] && [ "$size" -gt "$limit" ]; then
		echo "size: $(basename "$f") is $size bytes, over the budget of $limit bytes" >&2
		over=1
	fi
done
if [ -n "$limit" ] && [ "$over" -eq 0 ]; then
	echo "size: within the budget of $limit bytes"
fi
exit $over
