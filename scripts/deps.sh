#!/bin/sh
# Install the Debian packages shmkit's build, tests and benchmarks need.
#   scripts/deps.sh          install what is missing (needs root or sudo)
#   scripts/deps.sh --check  exit 1 if something is missing, install nothing
#   scripts/deps.sh --pkg    also what the Debian packaging needs (--pkg --check too)
#   scripts/deps.sh --bench  also the benchmark's peers (SQLite, Boost, iceoryx) and gnuplot
set -e
PKGS="build-essential pkg-config libcriterion-dev g++ util-linux python3 procps clang libclang-rt-14-dev spin libzmq3-dev libinih-dev python3-dev python3-setuptools python3-pytest python3-numpy python3-mypy python3-hypothesis python3-pip bash-completion tmux"
# --pkg: also what scripts/pkg-check.sh needs (Debian packages)
if [ "${1:-}" = "--pkg" ]; then PKGS="$PKGS dpkg-dev debhelper dh-python lintian"; shift; fi
# --bench: also the peers make bench compares with, and gnuplot for its plot
if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS libsqlite3-dev libboost-dev iceoryx libiceoryx-binding-c-dev gnuplot-nox"
	shift
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
[ "$1" = "--check" ] && { echo "missing:$missing"; exit 1; }
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "shmkit: installing$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
