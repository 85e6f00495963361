"""Shared fixtures of the shmkit Python tests.

Naming rule of the C suite (tests/lib_test.h): every name that outlives a
process is "sktest-RUN-PID-TAG", RUN being SKTEST_RUN (exported by
scripts/run-tests.sh) or this process's pid in hex.  At the end of the
session nothing carrying this session's prefix may be left in /dev/shm or
/tmp: the run fails otherwise.
"""
import itertools
import os
import re
import select
import shutil
import tempfile
import time

import pytest

import shmkit

RUN = os.environ.get("SKTEST_RUN", "")
if not re.fullmatch(r"[0-9a-f]{1,8}", RUN):
    RUN = "%x" % os.getpid()
PREFIX = "sktest-%s-%d-" % (RUN, os.getpid())
_count = itertools.count()

# The C tool (a separate process on the public API) to check Python's
# writes: make python-test passes it; otherwise the default build's.
TOOL = os.environ.get("SHMKIT_TOOL") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "shmkit")

# Every bounded wait of the tests: generous, never asserted on.
WAIT = 10.0


def unique(tag="py"):
    return "%s%s%d" % (PREFIX, tag, next(_count))


# System V keys of this process (tests/lib_test.h sk_test_sysv_key): 01 in
# the top two bits, 12 bits of the run id, 12 of the pid, a 6-bit counter.
SYSV_BASE = 0x40000000 | (int(RUN, 16) & 0xfff) << 18 | (os.getpid() & 0xfff) << 6
_sysv = itertools.count()


def sysv_name():
    """A segment name "sysv:0xKEY" with one of this process's keys."""
    return "sysv:0x%08x" % (SYSV_BASE | next(_sysv) % 64)


@pytest.fixture
def name():
    """A fresh segment name, removed after the test whatever happened."""
    n = unique()
    yield n
    try:
        shmkit.Segment.remove(n)
    except FileNotFoundError:
        pass


@pytest.fixture
def tmpdir_sk():
    """A private directory under /tmp named by the rule, removed after."""
    d = tempfile.mkdtemp(prefix=unique("dir") + "-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def residue():
    left = []
    for d in ("/dev/shm", "/tmp"):
        try:
            left += [os.path.join(d, e) for e in os.listdir(d) if PREFIX in e]
        except OSError:
            pass
    # System V segments with this process's keys, and their lock files
    mine = {"%08x" % (SYSV_BASE | n) for n in range(64)}
    try:
        with open("/proc/sysvipc/shm") as f:
            next(f)
            left += ["sysv:0x%08x" % (int(line.split()[0]) & 0xffffffff) for line in f
                     if "%08x" % (int(line.split()[0]) & 0xffffffff) in mine]
    except OSError:
        pass
    left += ["/dev/shm/" + e for e in os.listdir("/dev/shm")
             if e.startswith(".shmkit-sysv-") and e[13:21] in mine]
    return left


def pytest_sessionfinish(session, exitstatus):
    left = residue()
    if left:
        print("\nLEFT BEHIND by the Python tests:\n  " + "\n  ".join(left))
        session.exitstatus = 1


def spawn(code, *args):
    """Run code in a new Python process (an unrelated process: exec, not
    fork) with sys.argv[1:] = args; the caller waits with WAIT."""
    import subprocess
    import sys
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(shmkit.__file__)),
                                                     env.get("PYTHONPATH")] if p)
    return subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc):
    """Wait for a spawned process (bounded); its stdout; fail on error."""
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err.decode()
    return out


def lines(proc, n):
    """The first n lines proc prints (each wait bounded by WAIT)."""
    buf = b""
    while buf.count(b"\n") < n:
        if not select.select([proc.stdout], [], [], WAIT)[0]:
            raise AssertionError("no output; so far: %r" % buf)
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise AssertionError("ended early: %r" % buf)
        buf += chunk
    return buf.decode().splitlines()[:n]


def until(cond):
    """Poll cond (a join another process makes) boundedly; no timing is
    asserted, only that it happens."""
    for _ in range(int(WAIT / 0.001)):
        if cond():
            return
        time.sleep(0.001)
    raise AssertionError("never happened")
