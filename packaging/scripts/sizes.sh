#!/bin/sh
# sizes.sh [[-limit BYTES|-] [-xz-limit BYTES|-] BINARY]...
# Prints a size table of the given binaries: size on disk and size after
# xz -9e (what a squashfs/xz firmware image or a compressed download costs),
# each next to its budget when one is set. -limit and -xz-limit apply to
# the binaries after them ("-" clears). Fails when a binary is over a budget.
set -eu
command -v xz >/dev/null 2>&1 || { echo "sizes.sh: xz is needed (Debian package xz-utils)" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: sizes.sh [[-limit BYTES] [-xz-limit BYTES] BINARY]..." >&2; exit 2; }

limit=- xzlimit=- over=0 checked=0
printf '%-40s %12s %12s %12s %12s\n' binary bytes budget xz-bytes xz-budget
while [ $# -gt 0 ]; do
	case $1 in
	-limit) limit=$2; shift 2; continue ;;
	-xz-limit) xzlimit=$2; shift 2; continue ;;
	esac
	f=$1
	shift
	size=$(wc -c <"$f" | tr -d ' ')
	xzsize=$(xz -9e -T1 -c "$f" | wc -c | tr -d ' ')
	printf '%-40s %12s %12s %12s %12s\n' "$(basename "$f")" "$size" "$limit" "$xzsize" "$xzlimit"
	if [ "$limit" != - ]; then
		checked=1
		if [ "$size" -gt "$limit" ]; then
			echo "size: $(basename "$f") is $size bytes, over the budget of $limit bytes by $((size - limit))" >&2
			over=1
		else
			echo "size: $(basename "$f"): $((limit - size)) bytes under the budget"
		fi
	fi
	if [ "$xzlimit" != - ]; then
		checked=1
		if [ "$xzsize" -gt "$xzlimit" ]; then
			echo "size: $(basename "$f") is $xzsize bytes after xz -9e, over the budget of $xzlimit bytes by $((xzsize - xzlimit))" >&2
			over=1
		else
			echo "size: $(basename "$f"): $((xzlimit - xzsize)) xz bytes under the budget"
		fi
	fi
done
if [ "$checked" -eq 1 ] && [ "$over" -eq 0 ]; then
	echo "size: within the budgets"
fi
exit $over
