"""Every named backend (POSIX shm, a file, System V) from Python: a numpy
write seen by a C process (the tool) and the reverse, a channel to the
tool's receiver, the errors of names (exists, missing), and removal
leaving nothing (the session's residue check covers System V keys and
their lock files too).  anon and memfd: test_segment.py."""
import os
import subprocess

import numpy as np
import pytest

import shmkit
from conftest import TOOL, WAIT, sysv_name, unique

pytestmark = pytest.mark.skipif(not os.access(TOOL, os.X_OK), reason="no shmkit tool at " + TOOL)

BACKENDS = {"posix": (lambda: "posix:/" + unique("bk"), shmkit.POSIX),
            "file": (lambda: "file:/tmp/" + unique("bk"), shmkit.FILE),
            "sysv": (sysv_name, shmkit.SYSV)}


@pytest.fixture(params=sorted(BACKENDS))
def named(request):
    """(name, backend constant); the name is removed after, whatever happened."""
    make, backend = BACKENDS[request.param]
    n = make()
    yield n, backend
    try:
        shmkit.Segment.remove(n)
    except FileNotFoundError:
        pass


def run(*args, data=None):
    return subprocess.run([TOOL] + list(args), input=data, capture_output=True, timeout=WAIT,
                          check=True).stdout


def test_numpy_both_ways_with_c(named):
    name, backend = named
    with shmkit.Segment.create(name, 4096, exclusive=True) as seg:
        assert seg.backend == backend and seg.stat()["name"] == name
        a = np.frombuffer(seg, dtype=np.uint8)
        a[:7] = np.frombuffer(b"numpy->", dtype=np.uint8)
        assert run("read", name, "--length", "7") == b"numpy->"
        run("write", name, "--offset", "64", data=b"<-C")
        assert a[64:67].tobytes() == b"<-C"
        del a
        with pytest.raises(FileExistsError):
            shmkit.Segment.create(name, 4096, exclusive=True)
    with shmkit.Segment.open(name) as again:
        assert bytes(memoryview(again)[:7]) == b"numpy->"
    shmkit.Segment.remove(name)
    with pytest.raises(FileNotFoundError):
        shmkit.Segment.open(name)
    with pytest.raises(FileNotFoundError):
        shmkit.Segment.remove(name)


def test_channel_to_c_receiver(named):
    name, backend = named
    n = 100
    with shmkit.Channel.create(name, capacity=8, max_msg=64) as ch:
        rx = subprocess.Popen([TOOL, "recv", name, "-n", str(n), "--timeout",
                               str(int(WAIT * 1000))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        for i in range(n):
            ch.send(b"%s %d" % (name.split(":")[0].encode(), i), timeout=WAIT)
        out, err = rx.communicate(timeout=WAIT)
        assert rx.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["%s %d" % (name.split(":")[0], i) for i in range(n)]
