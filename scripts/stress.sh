#!/bin/sh
# Run every kill-loop stress program in BUILD/tests (stress_*), passing it
# the crash points compiled into the library (every SK_CRASH_POINT name in
# src/) and any further arguments (e.g. -n 10000 -s SEED).  Fails if one
# fails, or if anything of the run is left in /dev/shm, /tmp or System V:
# the names of run SKTEST_RUN only (scripts/residue.sh), not all there is.
# stress_tsan is not a kill loop: make tsan runs it.
# Prints one closing line "N passed, N failed".
#
#   sh scripts/stress.sh [BUILD_DIR] [ARGS...]
BUILD=${1:-build}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/residue.sh"
sktest_run_init
echo "stress run $SKTEST_RUN"
SRC=$(dirname "$0")/../src
points=$(grep -ho 'SK_CRASH_POINT("[^"]*")' "$SRC"/*.c 2>/dev/null |
	sed 's/.*("\(.*\)")/\1/' | sort -u | paste -sd, -)
passed=0; failed=0; ran=0
for t in "$BUILD"/tests/stress_*; do
	[ -x "$t" ] || continue
	case $t in */stress_tsan) continue ;; esac
	ran=$((ran + 1))
	echo "== $(basename "$t") $*"
	if [ -n "$points" ]; then
		"$t" -P "$points" "$@"
	else
		"$t" "$@"
	fi
	if [ $? -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
left=$(sktest_residue)
if [ -n "$left" ]; then
	echo "LEFT BEHIND by the stress programs:"; printf '%s\n' "$left"
	failed=$((failed + 1))
fi
[ "$ran" -eq 0 ] && { echo "no stress programs in $BUILD/tests"; failed=$((failed + 1)); }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
