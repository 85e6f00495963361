"""Interop with a C program of our own (cpeer.c, on the public C API,
compiled here against the build's libshmkit.a), beside test_interop.py's
runs of the tool: numpy arrays written in place by Python are checked
word by word in C, and arrays C writes are checked in numpy, over a
channel both ways, a bus, rpc, a journal followed while C appends, and a
segment."""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import shmkit
from conftest import TOOL, WAIT, unique, until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# make python-test builds the tool beside the library it links.
LIB = os.environ.get("SHMKIT_LIBA") or os.path.join(os.path.dirname(TOOL), "libshmkit.a")

pytestmark = pytest.mark.skipif(not os.access(TOOL, os.X_OK), reason="no shmkit tool at " + TOOL)

W = 64          # words per array (512 bytes)


def sanitizers(lib):
    """-fsanitize= for the sanitizers lib was built with (make SAN=...):
    a program linking it needs their runtimes."""
    undefined = subprocess.run(["nm", "-u", lib], capture_output=True, text=True,
                               timeout=120).stdout
    kinds = [k for k, sym in (("address", "__asan_"), ("undefined", "__ubsan_"),
                              ("thread", "__tsan_")) if sym in undefined]
    return ["-fsanitize=" + ",".join(kinds)] if kinds else []


@pytest.fixture(scope="module")
def cpeer():
    """cpeer.c built against the library the tool was built with."""
    assert os.path.exists(LIB), "no %s: run through make python-test" % LIB
    d = tempfile.mkdtemp(prefix=unique("cpeer") + "-")
    exe = os.path.join(d, "cpeer")
    try:
        subprocess.run([os.environ.get("CC", "cc"), "-std=gnu11", "-Wall", "-Wextra", "-Werror"]
                       + sanitizers(LIB) +
                       ["-I", os.path.join(ROOT, "include"), os.path.join(HERE, "cpeer.c"), LIB,
                        "-lpthread", "-o", exe], check=True, timeout=120)
        yield exe
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start(exe, *args):
    return subprocess.Popen([exe] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def result(proc):
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


def expected(i, words=W):
    return np.uint64(i * 1000) + np.arange(words, dtype=np.uint64)


def check_peeked(m, i):
    """Read peeked message m in place as array i, then release it."""
    with m:
        a = np.frombuffer(m, dtype=np.uint64)
        assert (a == expected(i)).all()
        del a


def test_numpy_in_a_reservation_to_a_c_receiver(cpeer, name):
    n = 200
    with shmkit.Channel.create(name, capacity=8, max_msg=W * 8) as ch:
        c = start(cpeer, "recv", name, n, W)
        for i in range(1, n + 1):
            if i % 2:       # in place in the slot
                with ch.reserve(timeout=WAIT) as loan:
                    a = np.asarray(loan).view(np.uint64)
                    a[:W] = expected(i)
                    del a
                    loan.commit(W * 8)
            else:           # a copy of an array
                ch.send(expected(i), timeout=WAIT)
        assert result(c) == "received %d" % n


def test_c_reservations_to_numpy_in_place(cpeer, name):
    n = 200
    with shmkit.Channel.create(name, capacity=8, max_msg=W * 8) as ch:
        c = start(cpeer, "send", name, n, W)
        for i in range(1, n + 1):
            check_peeked(ch.peek(timeout=WAIT), i)
        assert result(c) == "sent %d" % n
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)


def test_c_publisher_numpy_subscriber(cpeer, name):
    n = 300
    with shmkit.Bus.create(name, capacity=16, max_msg=W * 8,
                           delivery=shmkit.BACKPRESSURE) as bus, bus.subscribe() as sub:
        c = start(cpeer, "pub", name, n, W)
        for i in range(1, n + 1):
            check_peeked(sub.peek(timeout=WAIT), i)
        assert result(c) == "published %d" % n and sub.lost == 0


def test_c_rpc_server_numpy_client(cpeer, name):
    n = 50
    with shmkit.RpcClient.create(name, max_request=W * 8, max_response=W * 8) as cli:
        c = start(cpeer, "serve", name, n)
        until(lambda: cli.stats()["servers"] >= 1)
        for i in range(1, n + 1):
            words = 1 + i % W
            if i % 2:
                got = cli.call(expected(i, words), timeout=WAIT)
                assert (np.frombuffer(got, dtype=np.uint64) == expected(i, words) + 1).all()
            else:       # the request written in place, the answer read in place
                loan = cli.loan()
                np.asarray(loan).view(np.uint64)[:words] = expected(i, words)
                cid = loan.commit(words * 8, timeout=WAIT)
                with cli.wait(cid, timeout=WAIT) as m:
                    a = np.frombuffer(m, dtype=np.uint64)
                    assert m.status == 0 and (a == expected(i, words) + 1).all()
                    del a
        assert result(c) == "served %d" % n


def test_c_journal_tailed_by_python(cpeer, tmpdir_sk):
    path = os.path.join(tmpdir_sk, "j")
    n = 300
    shmkit.Journal.open(path, create=True).close()
    with shmkit.JournalReader.open(path) as r:
        c = start(cpeer, "append", path, n, W)
        got = 0
        for rec in r.tail(follow=True, timeout=WAIT):     # while C appends
            got += 1
            assert rec.seq == got
            assert (np.frombuffer(rec.data, dtype=np.uint64) == expected(got)).all()
            if got == n:
                break
        assert result(c) == "appended %d last %d" % (n, n)
    shmkit.journal_remove(path)


def test_numpy_segment_read_and_written_by_c(cpeer, name):
    with shmkit.Segment.create(name, 8 * 4096) as seg:
        a = np.frombuffer(seg, dtype=np.uint64)
        a[:] = np.arange(a.size, dtype=np.uint64) * 7
        want = int(a.sum())
        assert result(start(cpeer, "segsum", name)) == "sum %d" % want
        assert (a == np.arange(a.size, dtype=np.uint64) * 3).all()   # C's writes, in place
        del a
