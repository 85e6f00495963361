# Sourced by scripts/run-tests.sh and scripts/stress.sh: the run id and
# the residue check.  Every name the suite makes carries the run id
# (tests/lib_test.h, "THE NAMING RULE"), so a run checks its own names
# only: what other programs on the machine make meanwhile is not its.
#
#   sktest_run_init    keep a valid SKTEST_RUN (1-8 lowercase hex digits)
#                      from the environment, else draw one; export it
#   sktest_residue     print, one a line, what of run SKTEST_RUN exists:
#                      /dev/shm, /tmp and /var/tmp entries holding
#                      "sktest-RUN-", System V segments with a key of the
#                      run's range and the library's lock files
#                      /dev/shm/.shmkit-sysv-KEY.lock for those keys

sktest_run_init() {
	case ${SKTEST_RUN:-} in
	'' | *[!0-9a-f]* | ?????????*)
		SKTEST_RUN=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n') ;;
	esac
	export SKTEST_RUN
}

# The top 14 bits of the run's System V keys (lib_test.h sk_test_sysv_key:
# 01, then the run id's low 12 bits).
sktest_key_hi() {
	echo $(( (0x40000000 >> 18) | (0x$SKTEST_RUN & 0xfff) ))
}

sktest_residue() {
	hi=$(sktest_key_hi)
	for d in /dev/shm /tmp /var/tmp; do
		ls -A "$d" 2>/dev/null | grep -F "sktest-$SKTEST_RUN-" | sed "s|^|$d/|"
	done
	ls -A /dev/shm 2>/dev/null | sed -n 's/^\.shmkit-sysv-\([0-9a-f]\{8\}\)\.lock$/\1/p' |
	while read -r k; do
		[ $(( 0x$k >> 18 )) -eq "$hi" ] && echo "/dev/shm/.shmkit-sysv-$k.lock"
	done
	awk -v hi="$hi" 'NR > 1 && $1 > 0 && int($1 / 262144) == hi {
		printf "sysv: key=0x%08x id=%s\n", $1, $2 }' /proc/sysvipc/shm 2>/dev/null
	return 0
}
