#!/bin/sh
# Run every Criterion test binary in BUILD/tests, then fail if the run left
# anything behind: a file in /dev/shm, a System V segment, a temp file.
# Only the run's own names are checked: every name the suite makes holds
# the run id SKTEST_RUN exported here (tests/lib_test.h, scripts/residue.sh),
# so other programs - a concurrent run too - cannot fail it.
# Prints one closing line "N passed, N failed, N skipped"; a binary that
# ran no test, or a run in which nothing passed, is a failure.
# A ThreadSanitizer build (make test SAN=thread) runs BUILD/tests/stress_tsan
# instead: Criterion cannot start under TSan.
BUILD=${1:-build}
. "$(dirname "$0")/residue.sh"
sktest_run_init
echo "test run $SKTEST_RUN"
# Criterion's runner maps an "inheritable arena" at a fixed address that
# TSan's shadow memory covers: every binary would abort with "Could not
# initialize inheritable arena".  The threaded stress runner (no
# Criterion) is what TSan can check; make tsan runs the same.
set -- "$BUILD"/tests/test_*
if [ -x "$1" ] && grep -qa __tsan_init "$1"; then
	echo "ThreadSanitizer build: Criterion cannot run under TSan (its runner's"
	echo "inheritable arena collides with TSan's shadow memory); running $BUILD/tests/stress_tsan"
	[ -x "$BUILD/tests/stress_tsan" ] || { echo "no $BUILD/tests/stress_tsan"; exit 1; }
	: "${TSAN_OPTIONS:=halt_on_error=1:second_deadlock_stack=1:exitcode=66:suppressions=$(cd "$(dirname "$0")" && pwd)/tsan.supp}"
	export TSAN_OPTIONS
	"$BUILD/tests/stress_tsan"; rc=$?
	left=$(sktest_residue)
	[ -n "$left" ] && { echo "LEFT BEHIND by stress_tsan:"; printf '%s\n' "$left"; rc=1; }
	exit $rc
fi
# Sanitizer builds: Criterion's own runner leaks a little at exit (not
# shmkit's memory); suppress that, and nothing else.
: "${LSAN_OPTIONS:=suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp}"
export LSAN_OPTIONS
before=$(sktest_residue)
if [ -n "$before" ]; then
	echo "run id $SKTEST_RUN is in use already:"; printf '%s\n' "$before"; exit 1
fi
passed=0; failed=0; skipped=0; bad=""
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	# --verbose: Criterion names skipped tests only there ([SKIP]); its
	# synthesis counts them nowhere.
	out=$("$t" --jobs=2 --short-filename --verbose 2>&1); rc=$?
	syn=$(printf '%s\n' "$out" | grep 'Synthesis' | tail -n 1)
	p=$(printf '%s\n' "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p'); p=${p:-0}
	tt=$(printf '%s\n' "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p'); tt=${tt:-0}
	sk=$(printf '%s\n' "$out" | grep -c '^\[SKIP\]')
	f=$((tt - p)); [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	# A binary that ran nothing (no synthesis, or nothing tested nor
	# skipped: Criterion could not even start its tests) is a failure,
	# never a silent pass.
	if [ -z "$syn" ] || [ $((tt + sk)) -eq 0 ]; then
		[ "$f" -eq 0 ] && f=1
		rc=${rc#0}; rc=${rc:-1}
		echo "$(basename "$t"): ran no test"
	fi
	# A failing binary shows its assertion details; a passing one only its summary.
	[ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -v -e 'Synthesis' -e '^\[RUN \]' \
		-e '^\[PASS\]' | tail -n 60
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + sk))
	[ "$rc" -ne 0 ] && bad="$bad $(basename "$t")"
	printf '%-28s %s%s\n' "$(basename "$t")" "${syn:-no synthesis (rc=$rc)}" \
		"$([ "$sk" -gt 0 ] && echo " | Skipped: $sk")"
done
if [ "$passed" -eq 0 ]; then
	echo "no test passed: the suite ran nothing"
	failed=$((failed + 1)); bad="$bad nothing-ran"
fi
left=$(sktest_residue)
if [ -n "$left" ]; then
	echo "LEFT BEHIND by the suite:"; printf '%s\n' "$left"
	failed=$((failed + 1)); bad="$bad residue"
fi
[ -n "$bad" ] && echo "failing:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
