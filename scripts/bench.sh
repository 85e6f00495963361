#!/bin/sh
# make bench: run every benchmark (build/shmkit-bench) and print the table.
#
#   sh scripts/bench.sh [BUILD_DIR] [shmkit-bench options: --json --quick --filter S]
#
# Options may also come from the environment: make bench BENCH_ARGS=--json.
# Fails if the run left a named object behind (/dev/shm, /dev/mqueue).
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
BIN=$BUILD/shmkit-bench
[ -x "$BIN" ] || { echo "bench: $BIN is missing; run make bench-bin first" >&2; exit 1; }

residue() {
	ls -A /dev/shm /dev/mqueue 2>/dev/null | grep -e '^shmkit-bench-' | sort
}
before=$(residue)
case " ${BENCH_ARGS:-} $* " in
*" --json "*) ;;
*) echo "Figures on a shared or virtual machine swing from run to run: read the ratios," \
	"each taken against a reference measured in this same run." ;;
esac
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
"$BIN" ${BENCH_ARGS:-} "$@"
rc=$?
after=$(residue)
if [ "$before" != "$after" ]; then
	echo "bench: LEFT BEHIND:" >&2
	printf '%s\n' "$after" >&2
	rc=1
fi
exit "$rc"
