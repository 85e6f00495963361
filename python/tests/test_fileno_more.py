"""fileno() of the objects that wait beyond channels, subscriptions, rpc
and journals: a Bus publisher (shmkit_bus_fd), an EventCount
(shmkit_ec_fd), a Semaphore (shmkit_sem_fd) and a Mutex
(shmkit_mutex_fd), and their asyncio helpers.  The condition becomes true in another process (spawned, not
forked); "not readable" is a select of QUIET seconds that must time out,
"readable" a select bounded by WAIT; nothing asserts on time."""
import asyncio
import errno
import os
import select
import signal

import pytest

import shmkit
import shmkit.aio as aio
from conftest import WAIT, finish, lines, spawn

QUIET = 0.05

# A subscriber that holds a bus back: it joins, says "ready", then drains
# what is there on each SIGUSR1 and prints how many it took.
SUBSCRIBER = """
import signal, sys, shmkit
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
with shmkit.Bus.open(sys.argv[1]) as bus, bus.subscribe() as sub:
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        signal.sigwait({signal.SIGUSR1})
        n = 0
        try:
            while True:
                sub.recv(timeout=0)
                n += 1
        except BlockingIOError:
            pass
        print(n, flush=True)
"""

# Touch the EventCount at offset 0 (inc) or the Semaphore at 8 (post) of a
# segment, argv[2] times.
TOUCH = """
import sys, shmkit
with shmkit.Segment.open(sys.argv[1]) as seg:
    o = shmkit.EventCount(seg, 0) if sys.argv[3] == "ec" else shmkit.Semaphore(seg, 8)
    for _ in range(int(sys.argv[2])):
        o.inc() if sys.argv[3] == "ec" else o.post()
    o.close()
"""

# Lock the Mutex at offset 64 of a segment, say "locked", and on SIGUSR1
# unlock (argv[2] "unlock") or die holding it ("die").
HOLDER = """
import os, signal, sys, shmkit
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
seg = shmkit.Segment.open(sys.argv[1])
m = shmkit.Mutex(seg, 64)
m.lock()
print("locked", flush=True)
signal.sigwait({signal.SIGUSR1})
if sys.argv[2] == "die":
    os._exit(0)
m.unlock()
m.close()
seg.close()
"""


def readable(fd, timeout):
    return bool(select.select([fd], [], [], timeout)[0])


def fill(bus):
    n = 0
    try:
        while True:
            bus.publish(b"m", timeout=0)
            n += 1
    except BlockingIOError:
        return n


def assert_closed(fd):
    with pytest.raises(OSError) as e:
        os.fstat(fd)
    assert e.value.errno == errno.EBADF


def test_bus_fileno_wakes_when_a_subscriber_elsewhere_drains(name):
    with shmkit.Bus.create(name, capacity=4, max_msg=16,
                           delivery=shmkit.BACKPRESSURE) as bus:
        p = spawn(SUBSCRIBER, name, 2)
        try:
            assert lines(p, 1) == ["ready"]
            assert fill(bus) == 4
            fd = bus.fileno()
            assert bus.fileno(events=shmkit.POLLOUT) == fd
            assert not readable(fd, QUIET), "readable while full"
            bus.ack()
            assert not readable(fd, QUIET), "readable after an ack while full"
            os.kill(p.pid, signal.SIGUSR1)
            assert readable(fd, WAIT), "the drain did not wake the fd"
            bus.ack()
            bus.publish(b"x", timeout=0)
        finally:
            os.kill(p.pid, signal.SIGUSR1)
            out = finish(p).decode().split()
        # The first drain may already take "x" (it runs on meanwhile).
        assert int(out[0]) >= 4 and int(out[0]) + int(out[1]) == 5
    assert_closed(fd)


def test_bus_fileno_overwrite_and_bad_arguments(name):
    with shmkit.Bus.create(name, capacity=4, max_msg=16) as bus:
        with pytest.raises(OSError) as e:
            bus.ack()                                  # no fd yet
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            bus.fileno(events=shmkit.POLLIN)           # a bus handle publishes
        assert e.value.errno == errno.EINVAL
        for _ in range(10):
            bus.publish(b"m", timeout=0)
        fd = bus.fileno()
        assert readable(fd, WAIT), "an overwrite publisher never waits"
        bus.ack()
        assert readable(fd, WAIT)
    assert_closed(fd)
    with pytest.raises(ValueError):
        bus.fileno()


def test_event_count_fileno_other_process(name):
    with shmkit.Segment.create(name, 4096) as seg:
        ec = shmkit.EventCount(seg, 0, init=True)
        fd = ec.fileno()
        assert ec.fileno() == fd
        assert not readable(fd, QUIET), "readable before an increment"
        finish(spawn(TOUCH, name, 1, "ec"))
        assert readable(fd, WAIT), "the increment did not wake the fd"
        ec.ack()                                       # on the value now: 1
        assert not readable(fd, QUIET)
        ec.ack(0)                                      # a value already passed
        assert readable(fd, WAIT)
        ec.ack(1)
        finish(spawn(TOUCH, name, 2, "ec"))
        assert readable(fd, WAIT)
        assert ec.value == 3
        ec.close()
        assert_closed(fd)
        with pytest.raises(ValueError):
            ec.fileno()


def test_semaphore_fileno_other_process(name):
    with shmkit.Segment.create(name, 4096) as seg:
        sem = shmkit.Semaphore(seg, 8, init=0)
        with pytest.raises(ValueError):
            sem.ack()                                  # no fd yet
        fd = sem.fileno()
        assert not readable(fd, QUIET), "readable at count 0"
        finish(spawn(TOUCH, name, 2, "sem"))
        assert readable(fd, WAIT), "the post did not wake the fd"
        sem.wait(timeout=0)
        sem.ack()
        assert readable(fd, WAIT), "a unit remains"
        sem.wait(timeout=0)
        sem.ack()
        assert not readable(fd, QUIET), "readable with no unit left"
        with pytest.raises(BlockingIOError):
            sem.wait(timeout=0)
        sem.close()
        assert_closed(fd)


def holder(name, how):
    p = spawn(HOLDER, name, how)
    assert lines(p, 1) == ["locked"]
    return p


def release(p):
    """Let a holder go (unlock or die) and wait for it."""
    os.kill(p.pid, signal.SIGUSR1)
    finish(p)


def stop(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def test_mutex_fileno_other_process(name):
    with shmkit.Segment.create(name, 4096) as seg:
        m = shmkit.Mutex(seg, 64, init=True)
        try:
            mutex_fileno(name, m)
        finally:
            m.close()
        with pytest.raises(ValueError):
            m.fileno()


def mutex_fileno(name, m):
    with pytest.raises(ValueError):
        m.ack()                                        # no fd yet
    p = holder(name, "unlock")
    try:
        fd = m.fileno()
        assert m.fileno() == fd
        assert not readable(fd, QUIET), "readable while held elsewhere"
        m.ack()
        assert not readable(fd, QUIET), "readable after an ack while held"
        release(p)
        assert readable(fd, WAIT), "the unlock did not wake the fd"
    finally:
        stop(p)
    assert m.lock(timeout=0) is False
    m.ack()
    assert not readable(fd, QUIET), "readable while this process holds it"
    m.unlock()
    assert readable(fd, WAIT), "our own unlock did not wake the fd"

    p = holder(name, "die")
    try:
        m.ack()
        assert not readable(fd, QUIET), "readable while the holder lives"
        release(p)                                     # dead, holding the lock
    finally:
        stop(p)
    m.ack()                                            # looks at the lock word
    assert readable(fd, WAIT), "the ack did not find the dead holder"
    assert m.lock(timeout=0) is True                   # owner_died
    m.consistent()
    m.unlock()
    m.close()
    assert_closed(fd)


def test_mutex_lock_async(name):
    with shmkit.Segment.create(name, 4096) as seg:
        m = shmkit.Mutex(seg, 64, init=True)

        async def main():
            p = holder(name, "unlock")
            try:
                with pytest.raises(TimeoutError):
                    await m.lock_async(timeout=0.05)
                asyncio.get_running_loop().call_later(0.01, release, p)
                assert await m.lock_async(timeout=WAIT) is False
            finally:
                stop(p)
            m.unlock()
            p = holder(name, "die")
            try:
                asyncio.get_running_loop().call_later(0.01, release, p)
                died = await aio.mutex_lock(m, timeout=WAIT)
            finally:
                stop(p)
            return died
        try:
            assert asyncio.run(main()) is True, "the dead holder was not reported"
            m.consistent()
            m.unlock()
        finally:
            m.close()


def test_async_helpers(name):
    try:
        async_helpers(name, name + "b")
    finally:
        try:
            shmkit.Segment.remove(name + "b")
        except FileNotFoundError:
            pass


def async_helpers(name, busname):
    with shmkit.Segment.create(name, 4096) as seg, \
            shmkit.Bus.create(busname, capacity=2, max_msg=16,
                              delivery=shmkit.BACKPRESSURE) as bus, bus.subscribe() as sub:
        ec = shmkit.EventCount(seg, 0, init=True)
        sem = shmkit.Semaphore(seg, 8, init=0)

        async def main():
            loop = asyncio.get_running_loop()
            with pytest.raises(TimeoutError):
                await ec.wait_async(0, timeout=0.05)
            with pytest.raises(TimeoutError):
                await sem.wait_async(timeout=0.05)
            await bus.publish_async(b"1", timeout=WAIT)
            await aio.publish(bus, b"2", timeout=WAIT)
            with pytest.raises(TimeoutError):
                await bus.publish_async(b"3", timeout=0.05)
            p = spawn(TOUCH, name, 1, "ec")
            value = await aio.ec_wait(ec, 0, timeout=WAIT)
            finish(p)
            p = spawn(TOUCH, name, 1, "sem")
            await sem.wait_async(timeout=WAIT)
            finish(p)
            loop.call_later(0.01, sub.recv)
            await bus.publish_async(b"3", timeout=WAIT)
            return value
        try:
            assert asyncio.run(main()) == 1
            assert [sub.recv(timeout=WAIT) for _ in range(2)] == [b"2", b"3"]
            assert sem.value == 0
        finally:
            ec.close()
            sem.close()
