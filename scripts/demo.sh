#!/bin/sh
# make demo: shared memory between two processes over every backend, told
# in plain words.  For posix, sysv and file one `shmkit write` process
# writes and a separate, unrelated `shmkit read` process reads; anon is
# shared with a forked child (examples/anon_fork); memfd is handed to an
# exec'd process over a UNIX socket (examples/memfd_pass).  Then, if this
# shmkit has it, `shmkit demo` (channels).  Leaves nothing behind in
# /dev/shm, System V or /tmp, also when interrupted.
#
#   sh scripts/demo.sh [BUILD_DIR]
set -u
BUILD=${1:-build}
S=$BUILD/shmkit
EX=$BUILD/examples
for p in "$S" "$EX/anon_fork" "$EX/memfd_pass"; do
	[ -x "$p" ] || { echo "demo: $p is missing; run make first" >&2; exit 1; }
done

tag=shmkit-demo-$$
POSIX=posix:/$tag
KEY=$(printf '0x%08x' $((0x5d000000 + ($$ & 0xffffff))))
SYSV=sysv:$KEY
TMPD=$(mktemp -d /tmp/shmkit-demo.XXXXXX) || exit 1
FILE=file:$TMPD/segment
failed=0

cleanup() {
	"$S" rm "$POSIX" "$SYSV" "$FILE" >/dev/null 2>&1
	rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

say() { printf '%s\n' "$*"; }
ok() { say "   OK: $*"; }
bad() { say "   FAILED: $*"; failed=1; }

# demo_named LABEL NAME WHO: create, write from one process, read from another.
demo_named() {
	label=$1 name=$2
	msg="hello over $3, written at $(date +%H:%M:%S)"
	say ""
	say "== $label: $name"
	say "   A \`shmkit create\` process makes a 64 KiB shmkit segment and exits."
	"$S" create "$name" --size 64K --mode 0600 --excl | sed 's/^/   /' || { bad "create"; return; }
	say "   A \`shmkit write\` process copies a message into it and exits:"
	say "     \"$msg\""
	printf '%s' "$msg" | "$S" write "$name" --offset 0 || { bad "write"; return; }
	say "   An unrelated \`shmkit read\` process opens it by name and reads:"
	got=$("$S" read "$name" --length ${#msg}) || { bad "read"; return; }
	say "     \"$got\""
	if [ "$got" = "$msg" ]; then ok "the reader saw exactly what the writer wrote"; else bad "mismatch"; fi
	say "   Its first 32 bytes as \`shmkit read --hex\` shows them:"
	"$S" read "$name" --length 32 --hex | sed 's/^/     /'
}

# run_example LABEL PROGRAM ARG: run it, indent its words, judge its exit status.
run_example() {
	out=$("$2" "$3") && rc=0 || rc=$?
	printf '%s\n' "$out" | sed 's/^/   /'
	if [ "$rc" -eq 0 ]; then ok "$1: both processes saw the same memory"; else bad "$1 (exit $rc)"; fi
}

say "shmkit demonstration: one process writes, another reads, over each backend."

demo_named "POSIX shared memory (shm_open, /dev/shm)" "$POSIX" "POSIX shared memory"
demo_named "System V shared memory (shmget/shmat)" "$SYSV" "System V shared memory"
demo_named "a file mapping (open + mmap MAP_SHARED; msync makes it durable)" "$FILE" "a file mapping"
if [ -f "$TMPD/segment" ]; then
	say "   The file is ordinary: $(wc -c < "$TMPD/segment") bytes on disk at $TMPD/segment,"
	say "   the message at byte 4096, after the one-page shmkit header:"
	say "     \"$(dd if="$TMPD/segment" bs=4096 skip=1 count=1 2>/dev/null | tr -d '\000' | head -c 60)...\""
fi

say ""
say "== What \`shmkit ls\` shows of these segments (plus the header line):"
"$S" ls | awk -v a="$tag" -v b="$KEY" 'NR == 1 || index($0, a) || index($0, b)' | sed 's/^/   /'
say ""
say "== \`shmkit info $SYSV\`:"
"$S" info "$SYSV" | sed 's/^/   /'

say ""
say "== anonymous shared mapping (mmap MAP_SHARED|MAP_ANONYMOUS): shared with a forked child"
say "   examples/anon_fork: the child writes into the segment and into a global variable;"
say "   the parent sees the segment change but keeps its own copy of the variable."
run_example anon "$EX/anon_fork" "This is child"

say ""
say "== memfd (memfd_create, sealed): handed to an exec'd process over a UNIX socket"
say "   examples/memfd_pass: the sender passes the fd with SCM_RIGHTS; the receiver, a fresh"
say "   program image sharing nothing else, maps it, reads, and writes a reply."
run_example memfd "$EX/memfd_pass" "hello over a memfd"

say ""
say "== Cleaning up: shmkit rm $POSIX $SYSV $FILE"
"$S" rm "$POSIX" "$SYSV" "$FILE" || bad "rm"
rm -rf "$TMPD"

if "$S" demo --help >/dev/null 2>&1; then
	say ""
	say "== Channels: shmkit demo"
	"$S" demo || bad "shmkit demo"
else
	say ""
	say "(shmkit demo, the channel demonstration, is not built into this shmkit.)"
fi

say ""
if [ "$failed" -eq 0 ]; then say "demo: every backend worked."; else say "demo: something failed (see above)."; fi
exit "$failed"
