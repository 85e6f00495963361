#!/bin/sh
# models.sh - check the Promela models of shmkit's shared protocols with
# SPIN (models/*.pml; Debian package `spin`), then their mutants.
#
#   sh scripts/models.sh            every model and mutant (CI: `make models`)
#   sh scripts/models.sh -f         also the larger instances (minutes)
#   sh scripts/models.sh spsc bus   only the named models
#
# Each run: spin -a, gcc pan.c (-DSAFETY: assertions and invalid end
# states; -DCOLLAPSE; a memory limit), pan with a bounded depth.  A model
# passes with "errors: 0" and a complete search (no "search depth too
# small", no memory limit reached).  A mutant (a -DBUG_* switch that
# removes one step of the protocol; see each model's header) must FAIL:
# otherwise the model could pass by accident.  One line per run: states
# stored, time, result.  Work happens in /tmp/sktest-models-XXXX, removed
# at exit.  Exit status 0 only if every model passes and every mutant fails.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
full=0
if [ "${1:-}" = "-f" ]; then
	full=1
	shift
fi
only="$*"
MEM=${MODELS_MEMLIM:-1024}      # MB per pan run
DEPTH=${MODELS_DEPTH:-20000}    # pan -m: deepest path kept (models reach ~1000)
TMO=${MODELS_TIMEOUT:-300}      # seconds per pan run

for tool in spin gcc timeout; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "models.sh: $tool not found (scripts/deps.sh installs spin)" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/sktest-models-XXXX) || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cp "$here"/models/*.pml "$work"/ || exit 1

failures=0
nruns=0

# run MODEL EXPECT DEFINES...   EXPECT: pass | fail
run() {
	model=$1 expect=$2
	shift 2
	name=${model%.pml}
	case " $only " in
	"  ") ;;
	*" $name "*) ;;
	*) return 0 ;;
	esac
	nruns=$((nruns + 1))
	dir="$work/run$nruns"
	mkdir "$dir" && cp "$work"/*.pml "$dir"/ || { failures=$((failures + 1)); return; }
	label="$model${*:+ $*}"
	t0=$(date +%s.%N)
	if ! (cd "$dir" && spin "$@" -a "$model" >spin.log 2>&1); then
		echo "FAIL  $label: spin -a failed"
		sed 's/^/      /' "$dir/spin.log"
		failures=$((failures + 1))
		return
	fi
	if ! (cd "$dir" && gcc -O2 -w -DSAFETY -DCOLLAPSE -DMEMLIM="$MEM" -o pan pan.c >cc.log 2>&1); then
		echo "FAIL  $label: gcc pan.c failed"
		sed 's/^/      /' "$dir/cc.log"
		failures=$((failures + 1))
		return
	fi
	(cd "$dir" && timeout "$TMO" nice ./pan -m"$DEPTH" >pan.log 2>&1)
	rc=$?
	t1=$(date +%s.%N)
	secs=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
	log="$dir/pan.log"
	states=$(awk '/states, stored/ { print $1; exit }' "$log")
	errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
	what=$(grep -m 1 -E '^pan:[0-9]+: ' "$log" | sed 's/^pan:[0-9]*: //; s/ (at depth [0-9]*)//')
	incomplete=""
	if grep -q 'search depth too small' "$log"; then
		incomplete="search depth too small (raise MODELS_DEPTH)"
	elif grep -q 'reached -DMEMLIM bound\|out of memory' "$log"; then
		incomplete="memory limit reached (MODELS_MEMLIM=$MEM MB)"
	elif [ "$rc" -eq 124 ]; then
		incomplete="timed out after $TMO s"
	fi
	line=$(printf '%-58s %10s states %6s s' "$label" "${states:-?}" "$secs")
	if [ "$expect" = pass ]; then
		if [ -z "$incomplete" ] && [ "${errors:-x}" = 0 ] && ! grep -q 'Search not completed' "$log"; then
			echo "ok    $line  no errors, complete"
		else
			echo "FAIL  $line  ${incomplete:-errors: ${errors:-?}${what:+: $what}}"
			failures=$((failures + 1))
		fi
	else
		if [ -n "${errors:-}" ] && [ "$errors" -gt 0 ]; then
			echo "ok    $line  mutant fails as required: $what"
		else
			echo "FAIL  $line  mutant NOT caught${incomplete:+ ($incomplete)}"
			failures=$((failures + 1))
		fi
	fi
}

echo "SPIN model checks (models/; SPIN $(spin -V 2>/dev/null | awk '{ print $3 }'))"

# SPSC channel: 2 producers (role handover, reconcile), 2 consumers, one death.
run spsc.pml pass -DMAXDEAD=1
run spsc.pml fail -DBUG_NO_RECONCILE
run spsc.pml fail -DBUG_NO_RETEST
run spsc.pml fail -DBUG_EARLY_PUBLISH
run spsc.pml fail -DBUG_EC_NO_WAKE

# MPMC channel: producers racing (2P x 1C), consumers racing (1P x 2C).
run mpmc.pml pass -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DMAXDEAD=1
run mpmc.pml pass -DNPROD=1 -DNCONS=2 -DNPER=2 -DMAXDEAD=1
# capacity 1: every message laps, so dead READING claims block producers
# and consumers and are reclaimed (unreachable with 2 slots at this size).
# (~35M and ~45M states since the waiters arm before their second test:
# 4 GB each, about a minute each.)
MEM1=$MEM
MEM=${MODELS_MEMLIM:-4096}
run mpmc.pml pass -DCAP=1 -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DMAXDEAD=1
run mpmc.pml pass -DCAP=1 -DNPROD=1 -DNCONS=2 -DNPER=2 -DMAXDEAD=1
MEM=$MEM1
run mpmc.pml fail -DNPROD=1 -DNCONS=2 -DNPER=2 -DBUG_RECLAIM_LIVE
run mpmc.pml fail -DNPROD=1 -DNCONS=2 -DNPER=2 -DBUG_CLAIM_STORES
run mpmc.pml fail -DNPROD=1 -DNCONS=2 -DNPER=2 -DBUG_COPY_STORE
run mpmc.pml fail -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DBUG_NO_RETEST
run mpmc.pml fail -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DBUG_NOTIFY_IGNORES_FLAG
run mpmc.pml fail -DNPROD=1 -DNCONS=2 -DNPER=2 -DMAXDEAD=1 -DBUG_SPLIT_CLEAR
run mpmc.pml fail -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DBUG_NO_RECORD
run mpmc.pml fail -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DBUG_RECORD_LATE
run mpmc.pml fail -DNPROD=2 -DNCONS=1 -DNPER=2 -DNPER2=1 -DBUG_ANY_DEAD_RECORD

# MPMC owner tokens: an owned consumer and an owned producer die, their
# successors take over (chan_recover.c "Owners").
run mpmc_owner.pml pass
run mpmc_owner.pml fail -DBUG_RECLAIM_OWNED
run mpmc_owner.pml fail -DBUG_NO_RECHECK
run mpmc_owner.pml fail -DBUG_ABANDON_AFTER

# Bus (overwrite, copy publishing): deaths; live claimers taken for stalled.
run bus.pml pass -DMAXDEAD=1 -DMAXSTALL=0
MEM=${MODELS_MEMLIM:-4096}   # ~52M states (claim words; arm, then look again)
run bus.pml pass -DMAXDEAD=0 -DMAXSTALL=1
MEM=$MEM1
run bus.pml fail -DMAXDEAD=0 -DBUG_NO_R4
run bus.pml fail -DMAXDEAD=0 -DBUG_NO_RETEST
run bus.pml fail -DMAXDEAD=0 -DBUG_NOTIFY_IGNORES_FLAG
run bus.pml fail -DMAXDEAD=0 -DBUG_P5_STORE
run bus.pml fail -DMAXDEAD=0 -DBUG_CLAIM_STORE
run bus.pml fail -DMAXDEAD=0 -DBUG_NO_MARK

# Journal: commit, roll, a follower, a dying writer and its successor.
run journal.pml pass -DMAXDEAD=1
run journal.pml fail -DBUG_COMMIT_FIRST
run journal.pml fail -DBUG_NO_ROLL_GEN
run journal.pml fail -DBUG_NO_PAST_END_RECHECK
run journal.pml fail -DBUG_RECOVER_FROM_HINT

if [ "$full" = 1 ]; then
	MEM=${MODELS_MEMLIM:-4096}
	run mpmc.pml pass -DNPROD=2 -DNCONS=1 -DNPER=2 -DMAXDEAD=1
	run mpmc.pml pass -DNPROD=1 -DNCONS=2 -DNPER=3 -DMAXDEAD=1
	run bus.pml pass -DMAXDEAD=1 -DMAXSTALL=1
fi

if [ "$failures" -ne 0 ]; then
	echo "models: $failures of $nruns runs FAILED"
	exit 1
fi
echo "models: all $nruns runs as required"
