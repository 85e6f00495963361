"""Bus and subscriptions: copies, loans, peeks, lost counts, processes."""
import os
import numpy as np
import pytest

import shmkit
from conftest import WAIT, finish, spawn


def test_publish_every_subscriber(name):
    with shmkit.Bus.create(name, capacity=8, max_msg=64, exclusive=True) as bus:
        a = bus.subscribe()
        b = bus.subscribe()
        bus.publish(b"one")
        bus.publish(memoryview(b"two"))
        assert list(a.messages(timeout=0)) == [b"one", b"two"]
        assert b.recv(timeout=WAIT) == b"one" and b.recv(timeout=WAIT) == b"two"
        with pytest.raises(BlockingIOError):
            a.recv(timeout=0)
        with pytest.raises(TimeoutError):
            a.recv(timeout=0.05)
        assert bus.stats()["subscribers"] == 2
        with pytest.raises(OSError):
            bus.close()     # EBUSY: subscriptions open
        a.close()
        b.close()


def test_overwrite_counts_lost(name):
    with shmkit.Bus.create(name, capacity=4, max_msg=16) as bus, bus.subscribe() as sub:
        for i in range(10):
            bus.publish(b"%d" % i)
        got = list(sub.messages(timeout=0))
        assert len(got) + sub.lost == 10 and sub.lost > 0
        assert got[-1] == b"9"


def test_loan_and_peek(name):
    with shmkit.Bus.create(name, capacity=8, max_msg=64) as bus, bus.subscribe() as sub:
        with bus.loan(timeout=WAIT) as loan:
            arr = np.asarray(loan).view(np.uint32)
            arr[:2] = [7, 8]
            with pytest.raises(BufferError):
                loan.commit(8)
            del arr
            loan.commit(8)
        msg = sub.peek(timeout=WAIT)
        view = np.frombuffer(msg, dtype=np.uint32)
        assert list(view) == [7, 8] and msg.lost == 0
        with pytest.raises(BufferError):
            sub.close()
        with pytest.raises(BufferError):
            msg.release()
        del view
        msg.release()
        with bus.loan(timeout=WAIT):
            pass            # aborted: subscribers pass it silently
        bus.publish(b"after")
        assert sub.recv(timeout=WAIT) == b"after"


PUBLISHER = """
import sys, shmkit
with shmkit.Bus.open(sys.argv[1]) as bus:
    for i in range(int(sys.argv[2])):
        bus.publish(b"%d" % i, timeout=10)
"""


def test_cross_process_backpressure(name):
    n = 300
    with shmkit.Bus.create(name, capacity=16, max_msg=32,
                           delivery=shmkit.BACKPRESSURE) as bus, bus.subscribe() as sub:
        p = spawn(PUBLISHER, name, n)
        got = [int(m) for _, m in zip(range(n), sub.messages(timeout=WAIT))]
        finish(p)
        assert got == list(range(n)) and sub.lost == 0


def test_fileno_poll(name):
    import select
    with shmkit.Bus.create(name, capacity=8, max_msg=64) as bus, bus.subscribe() as sub:
        fd = sub.fileno()
        bus.publish(b"x")
        r, _, _ = select.select([fd], [], [], WAIT)
        assert r == [fd]
        sub.ack()
        assert list(sub.messages(timeout=0)) == [b"x"]


def test_peers(name):
    with shmkit.Bus.create(name, capacity=8, max_msg=32) as bus, bus.subscribe() as sub:
        bus.publish(b"x")
        sub.recv(timeout=WAIT)
        peers = bus.peers()
        subs = [p for p in peers if p["subscriber"]]
        pubs = [p for p in peers if not p["subscriber"]]
        assert len(subs) == 1 and subs[0]["count"] == 1 and subs[0]["alive"] == 1
        assert len(pubs) == 1 and pubs[0]["count"] == 1
        assert all(p["pid"] == os.getpid() for p in peers)
