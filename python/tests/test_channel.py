"""Channels: copies, loans, peeks, timeouts, threads, fds, processes."""
import asyncio
import os
import threading

import numpy as np
import pytest

import shmkit
from conftest import WAIT, finish, spawn


def test_send_recv_copy(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=64, exclusive=True) as ch:
        ch.send(b"hello")
        ch.send(bytearray(b""))
        ch.send(memoryview(b"xyz")[1:])
        assert ch.recv(timeout=WAIT) == b"hello"
        assert ch.recv(timeout=WAIT) == b""
        buf = bytearray(8)
        assert ch.recv_into(buf, timeout=WAIT) == 2 and buf[:2] == b"yz"
        with pytest.raises(OSError) as ei:
            ch.send(b"x" * 65)
        assert ei.value.errno == 90  # EMSGSIZE
        st = ch.stats()
        assert st["sent"] == 3 and st["received"] == 3 and st["max_msg"] == 64


def test_timeouts(name):
    with shmkit.Channel.create(name, capacity=2, max_msg=16) as ch:
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)
        with pytest.raises(TimeoutError):
            ch.recv(timeout=0.05)
        ch.send(b"1")
        ch.send(b"2")
        with pytest.raises(BlockingIOError):
            ch.send(b"3", timeout=0)
        with pytest.raises(TimeoutError):
            ch.send(b"3", timeout=0.05)
        with pytest.raises(ValueError):
            ch.recv(timeout=-1)
        assert list(ch.messages(timeout=0)) == [b"1", b"2"]
        ch.send(b"3")
        assert next(iter(ch)) == b"3"   # iter(): blocks for each message


def test_reserve_commit_numpy(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch:
        with ch.reserve(timeout=WAIT) as loan:
            assert len(loan) == 64 and loan.live
            arr = np.asarray(loan)
            arr[:4] = [10, 20, 30, 40]
            with pytest.raises(BufferError):
                loan.commit(4)          # the array still sees the slot
            with pytest.raises(BufferError):
                ch.close()
            del arr
            loan.commit(4)
        assert not loan.live and len(loan) == 0
        with pytest.raises(BufferError):
            memoryview(loan)
        assert ch.recv(timeout=WAIT) == bytes([10, 20, 30, 40])
        # a loan left by the with block is aborted: nothing is sent
        with ch.reserve(timeout=WAIT) as loan:
            memoryview(loan)[:2] = b"no"
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)
        assert ch.stats()["aborted"] == 1


def test_peek_release(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch:
        ch.send(b"in place")
        msg = ch.peek(timeout=WAIT)
        mv = memoryview(msg)
        assert mv.readonly and mv.tobytes() == b"in place"
        with pytest.raises(BufferError):
            msg.release()
        with pytest.raises(BufferError):
            ch.close()
        mv.release()
        msg.release()
        with pytest.raises(ValueError):
            msg.release()
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)
        ch.send(b"again")
        with ch.peek(timeout=WAIT) as msg:
            assert msg.tobytes() == b"again"


def test_close_kills_unexported_views(name):
    ch = shmkit.Channel.create(name, capacity=4, max_msg=64)
    loan = ch.reserve(timeout=WAIT)
    ch.close()                  # aborts the reservation, as the C close does
    assert not loan.live
    with pytest.raises(BufferError):
        memoryview(loan)
    with pytest.raises(ValueError):
        ch.send(b"x")


def test_gil_released_and_one_thread_per_handle(name):
    """A thread blocked in recv lets the others run; another thread's call
    on the same handle meanwhile is refused instead of racing."""
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as rx, \
            shmkit.Channel.open(name) as tx:
        got = []
        t = threading.Thread(target=lambda: got.append(rx.recv(timeout=WAIT)))
        t.start()
        refused = False
        for _ in range(100000):  # until the thread is inside recv (bounded)
            try:
                rx.stats()
            except RuntimeError:
                refused = True
                break
        tx.send(b"wake")
        t.join(WAIT)
        assert not t.is_alive() and got == [b"wake"]
        assert refused or got  # the refusal depends on scheduling; the recv not


def test_fileno_asyncio(name):
    with shmkit.Channel.create(name, capacity=8, max_msg=64) as rx, \
            shmkit.Channel.open(name) as tx:
        async def main():
            loop = asyncio.get_running_loop()
            got = []
            done = loop.create_future()

            def readable():
                rx.ack()
                for m in rx.messages(timeout=0):
                    got.append(m)
                if len(got) == 3 and not done.done():
                    done.set_result(None)

            loop.add_reader(rx.fileno(), readable)
            try:
                for i in range(3):
                    tx.send(b"m%d" % i)
                await asyncio.wait_for(done, WAIT)
            finally:
                loop.remove_reader(rx.fileno())
            return got

        assert asyncio.run(main()) == [b"m0", b"m1", b"m2"]


PRODUCER = """
import sys, shmkit
with shmkit.Channel.open(sys.argv[1]) as ch:
    for i in range(int(sys.argv[2])):
        with ch.reserve(timeout=10) as loan:
            data = b"%d" % i
            memoryview(loan)[:len(data)] = data
            loan.commit(len(data))
"""


def test_cross_process(name):
    n = 500
    with shmkit.Channel.create(name, capacity=16, max_msg=32) as ch:
        p = spawn(PRODUCER, name, n)
        got = [int(m) for _, m in zip(range(n), ch.messages(timeout=WAIT))]
        finish(p)
        assert got == list(range(n))


def test_corrupt_length_is_corrupterror(name):
    """A peer that writes a message length out of bounds into shared
    memory: the receiver gets shmkit.CorruptError (EBADMSG), an OSError,
    never a crash or a read past the slot."""
    import errno
    import struct
    payload = b"MARKER-PAYLOAD-%d" % id(name)
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch, \
            shmkit.Segment.open(name) as seg:
        ch.send(payload)
        raw = memoryview(seg)
        at = bytes(raw).index(payload)
        # the length word precedes the payload in the slot's header
        ln = bytes(raw[max(at - 32, 0):at]).rindex(struct.pack("<I", len(payload)))
        ln += max(at - 32, 0)
        raw[ln:ln + 4] = struct.pack("<I", 0x7fffffff)
        raw.release()
        with pytest.raises(shmkit.CorruptError) as ei:
            ch.recv(timeout=WAIT)
        assert ei.value.errno == errno.EBADMSG and isinstance(ei.value, OSError)


PEER_CHILD = """
import os, sys, shmkit
ch = shmkit.Channel.open(sys.argv[1])
assert ch.recv(timeout=10) == b"to the child"
os._exit(0)                    # dies with its handle open
"""


@pytest.mark.parametrize("spsc", [False, True])
def test_peers_alive_and_dead(name, spsc):
    """peers(): the handles (MPMC) or roles (SPSC) taking part, alive or
    dead by the kernel's lock; a child that received and died is dead."""
    with shmkit.Channel.create(name, capacity=4, max_msg=32, spsc=spsc) as tx:
        tx.send(b"to the child")
        finish(spawn(PEER_CHILD, name))
        peers = tx.peers()
        if spsc:
            roles = {p["role"]: p for p in peers}
            assert sorted(roles) == [shmkit.CHAN_PEER_PRODUCER, shmkit.CHAN_PEER_CONSUMER]
            assert roles[shmkit.CHAN_PEER_PRODUCER]["pid"] == os.getpid()
            assert roles[shmkit.CHAN_PEER_PRODUCER]["alive"] == 1
            assert roles[shmkit.CHAN_PEER_CONSUMER]["pid"] not in (0, os.getpid())
            assert roles[shmkit.CHAN_PEER_CONSUMER]["alive"] == 0
        else:
            assert {p["role"] for p in peers} == {shmkit.CHAN_PEER_HANDLE}
            mine = [p for p in peers if p["sent"] == 1]
            child = [p for p in peers if p["received"] == 1]
            assert len(mine) == 1 and mine[0]["alive"] == 1 and not mine[0]["owned"]
            assert len(child) == 1 and child[0]["alive"] == 0
    with pytest.raises(ValueError):
        tx.peers()
