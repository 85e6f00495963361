#!/bin/sh
# Run every Criterion test binary in BUILD/tests, then fail if the run left
# anything behind: a file in /dev/shm, a System V segment, a temp file.
# Prints one closing line "N passed, N failed, N skipped"; a binary that
# ran no test, or a run in which nothing passed, is a failure.
BUILD=${1:-build}
# Sanitizer builds: Criterion's own runner leaks a little at exit (not
# shmkit's memory); suppress that, and nothing else.
: "${LSAN_OPTIONS:=suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp}"
export LSAN_OPTIONS
before_shm=$(mktemp); after_shm=$(mktemp)
snapshot() {
	{ ls -A /dev/shm 2>/dev/null | sed 's/^/shm: /'
	  awk 'NR>1 {print "sysv: key=" $1 " id=" $2}' /proc/sysvipc/shm 2>/dev/null
	  ls -A /tmp 2>/dev/null | grep '^sktest' | sed 's/^/tmp: /'
	  ls -A /var/tmp 2>/dev/null | grep '^sktest' | sed 's/^/var-tmp: /'
	} | grep -v -e "$(basename "$before_shm")" -e "$(basename "$after_shm")" | sort
}
snapshot > "$before_shm"
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
snapshot > "$after_shm"
left=$(comm -13 "$before_shm" "$after_shm")
rm -f "$before_shm" "$after_shm"
if [ -n "$left" ]; then
	echo "LEFT BEHIND by the suite:"; printf '%s\n' "$left"
	failed=$((failed + 1)); bad="$bad residue"
fi
[ -n "$bad" ] && echo "failing:$bad"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
