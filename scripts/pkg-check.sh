#!/bin/sh
# Build the Debian packages and check them as a user of them would.
#   scripts/pkg-check.sh [--keep]      (--keep: leave the work directory)
# In a scratch directory (nothing is written to this tree):
#   1. a copy of the tree (without build/ and .git) is built with
#      `dpkg-buildpackage -us -uc -b`: libshmkit0, libshmkit-dev, shmkit,
#      python3-shmkit, shmkit-bridge;
#   2. lintian checks the packages; any error or warning fails (there are
#      no overrides: an override must say why in debian/*.lintian-overrides);
#   3. the packages are unpacked into a fresh root (dpkg -x), every
#      examples/*.c is compiled against it with pkg-config alone
#      (PKG_CONFIG_LIBDIR and PKG_CONFIG_SYSROOT_DIR point into it), must
#      link the packaged shared library, and runs (LD_LIBRARY_PATH) to
#      exit 0; the packaged tool, completion, units and tmpfiles entry are
#      checked to be there and the tool to run; `man 3 FUNCTION` shows a
#      page for every function of the packaged header; the units pass
#      systemd-analyze verify; the tmpfiles entry, applied under a scratch
#      root, makes the journal directory (1777) in which a regular user
#      makes a journal with the packaged tool; a channel made by the
#      packaged Python module carries a message to the packaged tool;
#      only shmkit-bridge depends on libzmq (and libinih);
#   4. the packaged shmkit-bridge runs: --help; `shmkit bridge` of the
#      unpacked tool finds it beside itself (PATH empty), and without it
#      (the shmkit package alone) says it is missing; two packaged bridges
#      on 127.0.0.1 (the second started through `shmkit bridge`) carry a
#      channel message, within timeouts, and their segments are removed;
#   5. `make install` (the bridge included) into a scratch DESTDIR, then
#      `make uninstall` there, must leave no file behind.
# Needs dpkg-dev, debhelper, dh-python and lintian (scripts/deps.sh --pkg).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
keep=0
[ "${1:-}" = --keep ] && keep=1

missing=""
for t in dpkg-buildpackage dh dh_python3 lintian pkg-config cc python3; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	echo "pkg-check: missing$missing: apt-get install -y dpkg-dev debhelper dh-python lintian pkg-config" >&2
	exit 1
fi

work=$(mktemp -d /tmp/shmkit-pkg.XXXXXX)
run=$$
bridges=""
# Stop the bridges still running and remove what this run made in
# /dev/shm (its names carry shmkit-pkg-check-$run) and, unless --keep,
# the work directory.
cleanup() {
	for p in $bridges; do kill "$p" 2>/dev/null || true; done
	for p in $bridges; do wait "$p" 2>/dev/null || true; done
	bridges=""
	rm -f /dev/shm/shmkit-pkg-check-$run-*
	[ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
[ "$keep" = 1 ] && echo "pkg-check: work directory $work"
step() { echo "== pkg-check: $*"; }

# The version the packages carry must be the Makefile's.
version=$(sed -n 's/^VERSION := //p' "$root/Makefile")
deb_version=$(cd "$root" && dpkg-parsechangelog -S Version)
if [ "$version" != "$deb_version" ]; then
	echo "pkg-check: Makefile VERSION $version, debian/changelog $deb_version: add a changelog entry" >&2
	exit 1
fi

step "build the packages in a copy of the tree ($work/shmkit-$version)"
src=$work/shmkit-$version
mkdir "$src"
tar -C "$root" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
(cd "$src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1 || {
	tail -n 40 "$work/build.log"; echo "pkg-check: dpkg-buildpackage failed"; exit 1; }
ls "$work"/*.deb
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
changes=$work/shmkit_${version}_$arch.changes

step "lintian (errors and warnings fail)"
lintian --fail-on error,warning --info --show-overrides "$changes"

step "unpack into a fresh root, build every example against it with pkg-config"
sys=$work/root
mkdir "$sys"
for d in "$work"/*.deb; do dpkg -x "$d" "$sys"; done
PKG_CONFIG_LIBDIR=$sys/usr/lib/$ma/pkgconfig PKG_CONFIG_SYSROOT_DIR=$sys
export PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
flags=$(pkg-config --cflags --libs shmkit)
echo "pkg-config --cflags --libs shmkit: $flags"
mkdir "$work/ex"
n=0
for c in "$root"/examples/*.c; do
	ex=$work/ex/$(basename "$c" .c)
	# Nothing of this tree on the include path: the packaged header only.
	cc -std=gnu11 -Wall -Wextra -Werror -o "$ex" "$c" $flags
	LD_LIBRARY_PATH=$sys/usr/lib/$ma ldd "$ex" | grep -q "libshmkit.so.0 => $sys/" || {
		echo "pkg-check: $ex does not link the packaged libshmkit.so.0"; ldd "$ex"; exit 1; }
	n=$((n + 1))
done
echo "$n examples built against the packaged library"

step "run them with LD_LIBRARY_PATH on the packaged library"
for ex in "$work"/ex/*; do
	name=$(basename "$ex")
	case $name in
	journal_*) arg=$work/$name ;;                        # a directory to make
	memfd_pass|anon_fork) arg="from pkg-check" ;;        # a message
	*) arg=posix:/shmkit-pkg-check-$run-$name ;;          # a segment name
	esac
	if ! LD_LIBRARY_PATH=$sys/usr/lib/$ma "$ex" "$arg" > "$work/$name.out" 2>&1; then
		cat "$work/$name.out"; echo "pkg-check: example $name failed"; exit 1
	fi
	echo "$name: $(tail -n 1 "$work/$name.out")"
done
left=$(ls -A /dev/shm | grep "shmkit-pkg-check-$run" || true)
[ -z "$left" ] || { echo "pkg-check: left in /dev/shm: $left"; exit 1; }

step "the packaged tool and its contrib files"
"$sys/usr/bin/shmkit" --help > /dev/null
for f in usr/share/bash-completion/completions/shmkit lib/systemd/system/shmkit-gc.service \
	lib/systemd/system/shmkit-gc.timer usr/lib/tmpfiles.d/shmkit.conf usr/share/man/man1/shmkit.1 \
	usr/share/man/man1/shmkit-bench.1 usr/share/man/man3/shmkit.3 usr/include/shmkit.h \
	usr/lib/$ma/libshmkit.a usr/bin/shmkit-bridge usr/share/man/man1/shmkit-bridge.1; do
	[ -e "$sys/$f" ] || [ -e "$sys/$f.gz" ] || { echo "pkg-check: $f is in no package"; exit 1; }
done
# man 3 FUNCTION reaches its area's page in the -dev package, for every
# function the packaged header declares (a line starting with a type and
# holding "shmkit_NAME(").
if command -v man >/dev/null 2>&1; then
	n=0
	for f in $(grep -oE '^[a-z][^(]*[ *]shmkit_[a-z0-9_]+\(' "$sys/usr/include/shmkit.h" |
	           grep -oE 'shmkit_[a-z0-9_]+'); do
		MANPAGER=cat PAGER=cat MANWIDTH=80 man -M "$sys/usr/share/man" 3 "$f" 2>/dev/null |
			grep -q "$f" || { echo "pkg-check: man 3 $f shows no page from the package"; exit 1; }
		n=$((n + 1))
	done
	[ "$n" -ge 80 ] || { echo "pkg-check: only $n functions found in the packaged header"; exit 1; }
	echo "man 3 reaches each of the $n functions of the packaged header"
fi
grep -q '^ExecStart=/usr/bin/shmkit gc' "$sys/lib/systemd/system/shmkit-gc.service" ||
	{ echo "pkg-check: shmkit-gc.service does not run /usr/bin/shmkit"; exit 1; }
if command -v systemd-analyze >/dev/null 2>&1; then
	# The units' own checks, with the tool's path in the scratch root (the
	# man: link cannot resolve there).
	mkdir "$work/units"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$sys/usr/bin/|" "$sys/lib/systemd/system/shmkit-gc.service" \
		> "$work/units/shmkit-gc.service"
	cp "$sys/lib/systemd/system/shmkit-gc.timer" "$work/units/"
	systemd-analyze verify "$work/units/shmkit-gc.timer" "$work/units/shmkit-gc.service" 2>&1 |
		grep -v "man shmkit" | { ! grep . ; } || { echo "pkg-check: systemd-analyze verify complains"; exit 1; }
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	# The packaged tmpfiles entry, applied under a scratch root: the
	# journal directory it promises, sticky and open to all, and a journal
	# made in it by the packaged tool as a regular user.
	tmproot=$work/tmpfiles-root
	mkdir "$tmproot"
	systemd-tmpfiles --create --root="$tmproot" "$sys/usr/lib/tmpfiles.d/shmkit.conf" ||
		{ echo "pkg-check: systemd-tmpfiles --create failed on shmkit.conf"; exit 1; }
	modes=$(stat -c '%a %U' "$tmproot/var/lib/shmkit" "$tmproot/var/lib/shmkit/journal" | tr '\n' ' ')
	[ "$modes" = "755 root 1777 root " ] ||
		{ echo "pkg-check: tmpfiles made /var/lib/shmkit, .../journal as: $modes"; exit 1; }
	chmod 755 "$work" "$tmproot" "$tmproot/var" "$tmproot/var/lib"
	if command -v setpriv >/dev/null 2>&1; then
		setpriv --reuid=65534 --regid=65534 --clear-groups env LD_LIBRARY_PATH=$sys/usr/lib/$ma \
			"$sys/usr/bin/shmkit" journal append "$tmproot/var/lib/shmkit/journal/app" \
			--file-size 64K --max-record 1K "first record" ||
			{ echo "pkg-check: nobody cannot make a journal in the tmpfiles directory"; exit 1; }
		got=$("$sys/usr/bin/shmkit" journal tail "$tmproot/var/lib/shmkit/journal/app")
		[ "$got" = "$(printf '1\tfirst record')" ] ||
			{ echo "pkg-check: the journal made there holds \"$got\""; exit 1; }
	fi
	echo "tmpfiles.d: /var/lib/shmkit/journal made with mode 1777; a user's journal in it"
fi
# The core packages depend on none of the bridge's or the benchmark's
# peers (debian/rules); shmkit-bridge on libzmq and libinih.
for p in libshmkit0 libshmkit-dev shmkit python3-shmkit shmkit-bridge; do
	dep=$(dpkg-deb -f "$work/${p}_${version}_$arch.deb" Depends)
	echo "$p depends on: $dep"
	case $p in
	shmkit-bridge)
		echo "$dep" | grep -q libzmq && echo "$dep" | grep -q libinih ||
			{ echo "pkg-check: shmkit-bridge does not depend on libzmq and libinih"; exit 1; } ;;
	*)
		! echo "$dep" | grep -E 'zmq|inih|sqlite|iceoryx|stdc\+\+' ||
			{ echo "pkg-check: $p depends on a peer library"; exit 1; } ;;
	esac
done

step "the packaged Python module and the packaged tool share a channel"
name=shmkit-pkg-check-$run-py
PYTHONPATH=$sys/usr/lib/python3/dist-packages python3 -c '
import sys, shmkit
assert shmkit.__file__.startswith(sys.argv[2]), shmkit.__file__
with shmkit.Channel.create(sys.argv[1]) as ch:
    ch.send(b"from python")
' "$name" "$sys"
got=$("$sys/usr/bin/shmkit" recv "$name" -n 1 --timeout 5000)
"$sys/usr/bin/shmkit" rm "$name"
[ "$got" = "from python" ] || { echo "pkg-check: the tool received \"$got\""; exit 1; }
echo "python3-shmkit sent, the packaged tool received: $got"

step "the packaged bridge: --help, found by the packaged tool, two bridges carry a channel message"
bin=$sys/usr/bin
# No shared library of this tree is needed (libshmkit.a is linked in), but
# if one were, the packaged one would be used.
LD_LIBRARY_PATH=$sys/usr/lib/$ma
export LD_LIBRARY_PATH
ldd "$bin/shmkit-bridge" | grep -q 'libzmq\.so\.5 => /' ||
	{ echo "pkg-check: shmkit-bridge does not link libzmq.so.5"; ldd "$bin/shmkit-bridge"; exit 1; }
"$bin/shmkit-bridge" --help | grep -q '^usage: shmkit-bridge' ||
	{ echo "pkg-check: shmkit-bridge --help"; exit 1; }
"$bin/shmkit" bridge --help | grep -q '^usage: shmkit bridge' ||
	{ echo "pkg-check: shmkit bridge --help"; exit 1; }
# shmkit bridge runs the shmkit-bridge beside it: with an empty PATH, the
# keypair printed comes from the unpacked one.  The shmkit package alone
# (unpacked by itself) says the bridge is missing, exit 1.
mkdir "$work/nopath" "$work/core"
keys=$(PATH=$work/nopath "$bin/shmkit" bridge --keygen)
echo "$keys" | grep -q '^public ' && echo "$keys" | grep -q '^secret ' ||
	{ echo "pkg-check: shmkit bridge --keygen printed \"$keys\""; exit 1; }
dpkg -x "$work/shmkit_${version}_$arch.deb" "$work/core"
rc=0
PATH=$work/nopath "$work/core/usr/bin/shmkit" bridge --keygen > /dev/null 2> "$work/core.err" || rc=$?
[ "$rc" = 1 ] && grep -q 'shmkit-bridge' "$work/core.err" ||
	{ echo "pkg-check: shmkit bridge without shmkit-bridge: exit $rc"; cat "$work/core.err"; exit 1; }
echo "shmkit bridge runs the shmkit-bridge beside it; without one: $(cat "$work/core.err")"

# A channel on "host a" exported over the reliable link on 127.0.0.1 (a
# port the bridge chooses), imported into a channel on "host b" by a
# second bridge started as `shmkit bridge` (PATH empty); the message sent
# into a must come out of b.  Every wait is bounded.
ca=shmkit-pkg-check-$run-bra cb=shmkit-pkg-check-$run-brb
"$bin/shmkit" chan "$ca" > /dev/null
"$bin/shmkit" chan "$cb" > /dev/null
"$bin/shmkit" send "$ca" "across the bridge"
timeout 60 "$bin/shmkit-bridge" --id 1 --listen 'tcp://127.0.0.1:*' --export-chan "$ca" \
	--stats-seg "$ca-stats" > "$work/bra.out" 2>&1 &
pa=$!
bridges="$pa"
# Until bridge a says ready (at most 30 s) or is gone.
i=0
until grep -q '^ready' "$work/bra.out"; do
	i=$((i + 1))
	if [ "$i" -gt 300 ] || ! kill -0 "$pa" 2>/dev/null; then
		cat "$work/bra.out"; echo "pkg-check: bridge a did not get ready"; exit 1
	fi
	sleep 0.1
done
ep=$(sed -n 's/^listening //p' "$work/bra.out")
timeout 60 env PATH="$work/nopath" "$bin/shmkit" bridge --id 2 --peer "$ep" --import-chan "$ca=$cb" \
	--stats-seg "$cb-stats" > "$work/brb.out" 2>&1 &
pb=$!
bridges="$pa $pb"
got=$("$bin/shmkit" recv "$cb" -n 1 --timeout 20000) || true
# Until both bridges' statistics segments (refreshed every 500 ms) show the
# message committed on b and acknowledged on a (at most 20 s); then
# SIGTERM: each bridge prints its counters, removes its segment, exits 0.
stat_has() {
	"$bin/shmkit" read "$1" --offset 64 2>/dev/null | tr -d '\000' | grep -Eq "$2"
}
i=0
until stat_has "$ca-stats" ' acked=1( |$)' && stat_has "$cb-stats" ' chan_in=1( |$)'; do
	i=$((i + 1))
	[ "$i" -gt 200 ] && break
	sleep 0.1
done
kill "$pa" "$pb"
rca=0 rcb=0
wait "$pa" || rca=$?
wait "$pb" || rcb=$?
bridges=""
if [ "$got" != "across the bridge" ] || [ "$rca" != 0 ] || [ "$rcb" != 0 ]; then
	cat "$work/bra.out" "$work/brb.out"
	echo "pkg-check: through the bridges came \"$got\" (bridges exited $rca, $rcb)"; exit 1
fi
grep -Eq '^stats id=1 .* acked=1( |$)' "$work/bra.out" && grep -Eq '^stats id=2 .* chan_in=1( |$)' "$work/brb.out" ||
	{ cat "$work/bra.out" "$work/brb.out"; echo "pkg-check: the bridges' counters"; exit 1; }
echo "bridge a ($ep) exported, bridge b imported: $got"
# The channels; `shmkit rm` takes the bridges' outbox and record beside
# them along (the check below finds them if it did not).
for n in "$ca" "$cb"; do "$bin/shmkit" rm "$n" > /dev/null; done
unset LD_LIBRARY_PATH
left=$(ls -A /dev/shm | grep "shmkit-pkg-check-$run" || true)
[ -z "$left" ] || { echo "pkg-check: left in /dev/shm: $left"; exit 1; }

step "make install, make bridge-install, then make uninstall, into a scratch DESTDIR"
# As debian/rules builds (build/deb holds what it built): the core without
# the peers, the bridge with libzmq (where `make install` alone installs it).
# pkg-config of this machine again (the bridge's libzmq and libinih).
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
dest=$work/destdir
nopeers="ZMQ_LIBS= SQLITE_LIBS= ICEORYX_API= BOOST_MQ="
make -C "$src" --no-print-directory BUILD=build/deb $nopeers install DESTDIR="$dest" \
	PREFIX=/usr/local > "$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; exit 1; }
make -C "$src" --no-print-directory BUILD=build/deb bridge-install DESTDIR="$dest" \
	PREFIX=/usr/local >> "$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; exit 1; }
installed=$(find "$dest" -type f -o -type l | wc -l)
for f in bin/shmkit-bridge share/man/man1/shmkit-bridge.1; do
	[ -e "$dest/usr/local/$f" ] || { echo "pkg-check: make install did not install $f"; exit 1; }
done
make -C "$src" --no-print-directory BUILD=build/deb $nopeers uninstall DESTDIR="$dest" \
	PREFIX=/usr/local > /dev/null
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || { echo "pkg-check: make uninstall left:"; echo "$left"; exit 1; }
echo "make install put $installed files, make uninstall removed them all"
echo "pkg-check passed: $(cd "$work" && ls *.deb | tr '\n' ' ')"
