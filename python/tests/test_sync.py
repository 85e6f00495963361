"""EventCount, Mutex, Semaphore at offsets of a Segment, across processes."""
import errno
import threading

import pytest

import shmkit
from conftest import WAIT, finish, spawn

CHILD = """
import os, sys, shmkit
seg = shmkit.Segment.open(sys.argv[1])
sem = shmkit.Semaphore(seg, 0)
ec = shmkit.EventCount(seg, 8)
mx = shmkit.Mutex(seg, 64)
assert mx.lock(timeout=10) is False
ec.inc()                  # tell the parent the mutex is held
for _ in range(3):
    sem.post()
os._exit(0)               # dies holding the mutex
"""


def test_cross_process(name):
    with shmkit.Segment.create(name, 4096) as seg:
        sem = shmkit.Semaphore(seg, 0, init=0)
        ec = shmkit.EventCount(seg, 8, init=True)
        mx = shmkit.Mutex(seg, 64, init=True)
        old = ec.value
        p = spawn(CHILD, name)
        for _ in range(3):
            sem.wait(timeout=WAIT)
        assert sem.value == 0
        if ec.value == old:
            ec.wait(old, timeout=WAIT)
        assert ec.value != old
        finish(p)
        assert mx.lock(timeout=WAIT) is True and mx.owner_died   # the child died holding it
        mx.consistent()
        mx.unlock()
        with mx:
            assert not mx.owner_died
        for o in (sem, ec, mx):
            o.close()
            assert o.closed


def test_local_semantics(name):
    with shmkit.Segment.create(name, 4096) as seg:
        sem = shmkit.Semaphore(seg, 128, init=1)
        sem.wait(timeout=0)
        with pytest.raises(BlockingIOError):
            sem.wait(timeout=0)
        with pytest.raises(TimeoutError):
            sem.wait(timeout=0.05)
        ec = shmkit.EventCount(seg, 256, init=True)
        with pytest.raises(BlockingIOError):
            ec.wait(ec.value, timeout=0)
        with pytest.raises(TimeoutError):
            ec.wait(ec.value, timeout=0.05)
        t = threading.Timer(0.01, ec.inc)
        t.start()
        ec.wait(0, timeout=WAIT)              # any thread may wait
        t.join()
        assert ec.value == 1
        mx = shmkit.Mutex(seg, 512, init=True)
        assert mx.lock(timeout=0) is False
        with pytest.raises(OSError) as ei:
            mx.lock(timeout=0)
        assert ei.value.errno == errno.EDEADLK
        mx.unlock()
        with pytest.raises(BufferError):      # the objects keep the segment mapped
            seg.close()
        for o in (sem, ec, mx):
            o.close()
        with pytest.raises(ValueError):
            sem.post()
        for cls, off in ((shmkit.Mutex, 4), (shmkit.Semaphore, 4095), (shmkit.EventCount, -4)):
            with pytest.raises(ValueError):
                cls(seg, off)
        with pytest.raises(TypeError):
            shmkit.Semaphore(bytearray(8), 0)
