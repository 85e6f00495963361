#!/bin/sh
# Build the Debian packages and check them as a user of them would.
#   scripts/pkg-check.sh [--keep]      (--keep: leave the work directory)
# In a scratch directory (nothing is written to this tree):
#   1. a copy of the tree (without build/ and .git) is built with
#      `dpkg-buildpackage -us -uc -b`: libshmkit0, libshmkit-dev, shmkit,
#      python3-shmkit;
#   2. lintian checks the packages; any error or warning fails (there are
#      no overrides: an override must say why in debian/*.lintian-overrides);
#   3. the packages are unpacked into a fresh root (dpkg -x), every
#      examples/*.c is compiled against it with pkg-config alone
#      (PKG_CONFIG_LIBDIR and PKG_CONFIG_SYSROOT_DIR point into it), must
#      link the packaged shared library, and runs (LD_LIBRARY_PATH) to
#      exit 0; the packaged tool, completion, units and tmpfiles entry are
#      checked to be there and the tool to run; a channel made by the
#      packaged Python module carries a message to the packaged tool;
#   4. `make install` into a scratch DESTDIR, then `make uninstall` there,
#      must leave no file behind.
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
[ "$keep" = 1 ] && echo "pkg-check: work directory $work" || trap 'rm -rf "$work"' EXIT INT TERM
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
run=$$
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
	usr/lib/$ma/libshmkit.a; do
	[ -e "$sys/$f" ] || [ -e "$sys/$f.gz" ] || { echo "pkg-check: $f is in no package"; exit 1; }
done
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
for p in shmkit libshmkit0 python3-shmkit; do
	echo "$p depends on: $(dpkg-deb -f "$work/${p}_${version}_$arch.deb" Depends)"
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

step "make install, then make uninstall, into a scratch DESTDIR"
dest=$work/destdir
make -C "$src" --no-print-directory BUILD=build/deb ZMQ_LIBS= install DESTDIR="$dest" \
	PREFIX=/usr/local > "$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; exit 1; }
installed=$(find "$dest" -type f -o -type l | wc -l)
make -C "$src" --no-print-directory BUILD=build/deb ZMQ_LIBS= uninstall DESTDIR="$dest" \
	PREFIX=/usr/local > /dev/null
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || { echo "pkg-check: make uninstall left:"; echo "$left"; exit 1; }
echo "make install put $installed files, make uninstall removed them all"
echo "pkg-check passed: $(cd "$work" && ls *.deb | tr '\n' ' ')"
