"""Every call that waits lets the other threads run (the GIL is released
while it sleeps), is interrupted by a signal's exception, and keeps its
timeout whatever path (look, spin, sleep) it ends on; errors of waits:
PermissionError for a read-only handle.

How the GIL test can fail: a thread blocks in the call (timeout WAIT);
the main thread waits until that thread is inside it (the handle refuses
another thread's call while one is inside: RuntimeError; for the sync
objects, which any thread may share, until the thread sleeps in the
kernel) and only then makes the wait's condition true.  Had the call kept
the GIL while sleeping, the main thread could not run before the timeout:
the call would end in TimeoutError, and the test fails."""
import os
import signal
import threading
import time

import pytest

import shmkit
from conftest import WAIT, until


def fill(send):
    """Call send(timeout=0) until it refuses (BlockingIOError)."""
    for _ in range(1 << 16):
        try:
            send()
        except BlockingIOError:
            return
    raise AssertionError("never full")


def peeked(want):
    """A check of a peeked Message (released after)."""
    def check(m):
        with m:
            return bytes(m) == want
    return check


def aborted(loan):
    """A check of a Loan: it is live; abort it."""
    live = loan.live
    loan.abort()
    return live


# Each case: a generator given the segment name, a directory and the
# handles' keyword arguments (the wait strategy); it
# yields (probe, call, wake, check) - probe() is a call on the waiting
# handle (RuntimeError while the other thread is inside), or None for a
# sync object; call() blocks until wake() runs; check(result) holds after.

def chan_recv(name, d, kw):
    with shmkit.Channel.create(name, capacity=4, max_msg=64, **kw) as rx, \
            shmkit.Channel.open(name, **kw) as tx:
        yield rx.stats, lambda: rx.recv(timeout=WAIT), lambda: tx.send(b"x"), \
            lambda r: r == b"x"


def chan_recv_into(name, d, kw):
    buf = bytearray(64)
    with shmkit.Channel.create(name, capacity=4, max_msg=64, **kw) as rx, \
            shmkit.Channel.open(name, **kw) as tx:
        yield rx.stats, lambda: rx.recv_into(buf, timeout=WAIT), lambda: tx.send(b"xy"), \
            lambda r: r == 2 and buf[:2] == b"xy"


def chan_peek(name, d, kw):
    with shmkit.Channel.create(name, capacity=4, max_msg=64, **kw) as rx, \
            shmkit.Channel.open(name, **kw) as tx:
        yield rx.stats, lambda: rx.peek(timeout=WAIT), lambda: tx.send(b"p"), peeked(b"p")


def chan_send(name, d, kw):
    with shmkit.Channel.create(name, capacity=2, max_msg=64, **kw) as rx, \
            shmkit.Channel.open(name, **kw) as tx:
        fill(lambda: tx.send(b"f", timeout=0))
        yield tx.stats, lambda: tx.send(b"s", timeout=WAIT), rx.recv, lambda r: r is None


def chan_reserve(name, d, kw):
    with shmkit.Channel.create(name, capacity=2, max_msg=64, **kw) as rx, \
            shmkit.Channel.open(name, **kw) as tx:
        fill(lambda: tx.send(b"f", timeout=0))
        yield tx.stats, lambda: tx.reserve(timeout=WAIT), rx.recv, aborted


def bus_publish(name, d, kw):
    with shmkit.Bus.create(name, capacity=2, max_msg=64, delivery=shmkit.BACKPRESSURE,
                           **kw) as bus, \
            bus.subscribe(**kw) as sub:
        fill(lambda: bus.publish(b"f", timeout=0))
        yield bus.stats, lambda: bus.publish(b"s", timeout=WAIT), sub.recv, lambda r: r is None


def bus_loan(name, d, kw):
    with shmkit.Bus.create(name, capacity=2, max_msg=64, delivery=shmkit.BACKPRESSURE,
                           **kw) as bus, \
            bus.subscribe(**kw) as sub:
        fill(lambda: bus.publish(b"f", timeout=0))
        yield bus.stats, lambda: bus.loan(timeout=WAIT), sub.recv, aborted


def sub_recv(name, d, kw):
    with shmkit.Bus.create(name, capacity=4, max_msg=64, **kw) as bus, bus.subscribe(**kw) as sub:
        yield sub.fileno, lambda: sub.recv(timeout=WAIT), lambda: bus.publish(b"b"), \
            lambda r: r == b"b"


def sub_peek(name, d, kw):
    with shmkit.Bus.create(name, capacity=4, max_msg=64, **kw) as bus, bus.subscribe(**kw) as sub:
        yield sub.fileno, lambda: sub.peek(timeout=WAIT), lambda: bus.publish(b"b"), peeked(b"b")


def rpc_call(name, d, kw):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64, **kw) as srv, \
            shmkit.RpcClient.open(name, **kw) as cli:
        def answer():
            srv.recv(timeout=WAIT).respond(b"answer")
        yield cli.stats, lambda: cli.call(b"q", timeout=WAIT), answer, lambda r: r == b"answer"


def rpc_wait(name, d, kw):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64, **kw) as srv, \
            shmkit.RpcClient.open(name, **kw) as cli:
        cid = cli.send(b"q")
        req = srv.recv(timeout=WAIT)

        yield cli.stats, lambda: cli.wait(cid, timeout=WAIT), lambda: req.respond(b"late"), \
            peeked(b"late")


def rpc_recv(name, d, kw):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64, **kw) as srv, \
            shmkit.RpcClient.open(name, **kw) as cli:
        cids = []

        def check(req):
            ok = bytes(req) == b"r"
            req.respond(b"")
            cli.wait(cids[0], timeout=WAIT).release()
            return ok
        yield srv.stats, lambda: srv.recv(timeout=WAIT), lambda: cids.append(cli.send(b"r")), check


def journal_read(name, d, kw):
    path = os.path.join(d, "j")
    with shmkit.Journal.open(path, create=True) as w, shmkit.JournalReader.open(path) as r:
        yield r.fileno, lambda: r.read(timeout=WAIT), lambda: w.append(b"rec"), \
            lambda rec: rec.data == b"rec" and rec.seq == 1
    shmkit.journal_remove(path)


def ec_wait(name, d, kw):
    with shmkit.Segment.create(name, 4096) as seg:
        ec = shmkit.EventCount(seg, 0, init=True)
        old = ec.value
        try:
            yield None, lambda: ec.wait(old, timeout=WAIT), ec.inc, lambda r: ec.value != old
        finally:
            ec.close()


def mutex_lock(name, d, kw):
    with shmkit.Segment.create(name, 4096) as seg:
        mx = shmkit.Mutex(seg, 0, init=True)
        mx.lock()                       # held by this (the main) thread

        def locked_then_unlock():
            r = mx.lock(timeout=WAIT)
            mx.unlock()
            return r
        try:
            yield None, locked_then_unlock, mx.unlock, lambda r: r is False
        finally:
            mx.close()


def sem_wait(name, d, kw):
    with shmkit.Segment.create(name, 4096) as seg:
        sem = shmkit.Semaphore(seg, 0, init=0)
        try:
            yield None, lambda: sem.wait(timeout=WAIT), sem.post, lambda r: sem.value == 0
        finally:
            sem.close()


CASES = [chan_recv, chan_recv_into, chan_peek, chan_send, chan_reserve, bus_publish, bus_loan,
         sub_recv, sub_peek, rpc_call, rpc_wait, rpc_recv, journal_read, ec_wait, mutex_lock,
         sem_wait]


def thread_sleeps(tid):
    """The thread tid sleeps in the kernel (state S)."""
    try:
        with open("/proc/self/task/%d/stat" % tid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except OSError:
        return False


# The handles' waits with both strategies that sleep (the adaptive one
# spins with the GIL first); the journal reader and the sync objects have
# one way to wait.
ONE_WAY = (journal_read, ec_wait, mutex_lock, sem_wait)


@pytest.mark.parametrize("case,wait", [
    pytest.param(c, w, id=c.__name__ + ("" if c in ONE_WAY else "-" + n))
    for c in CASES for w, n in ((shmkit.WAIT_ADAPTIVE, "adaptive"), (shmkit.WAIT_BLOCK, "block"))
    if w == shmkit.WAIT_ADAPTIVE or c not in ONE_WAY])
def test_every_wait_lets_other_threads_run(case, wait, name, tmpdir_sk):
    gen = case(name, tmpdir_sk, {"wait": wait})
    probe, call, wake, check = next(gen)
    out, tid, inside = [], [], threading.Event()

    def run():
        tid.append(threading.get_native_id())
        inside.set()
        try:
            out.append(call())
        except BaseException as e:     # reported by the main thread
            out.append(e)
    t = threading.Thread(target=run)
    t.start()
    try:
        check_wait(t, probe, wake, check, out, tid, inside)
        with pytest.raises(StopIteration):
            next(gen)
    finally:
        t.join(WAIT)
        gen.close()


def check_wait(t, probe, wake, check, out, tid, inside):
    inside.wait(WAIT)

    def busy():
        if probe is None:
            return bool(out) or thread_sleeps(tid[0])
        try:
            probe()
        except RuntimeError:
            return True
        return bool(out)
    until(busy)
    wake()
    t.join(WAIT)
    assert not t.is_alive() and len(out) == 1
    assert not isinstance(out[0], BaseException), repr(out[0])
    assert check(out[0])


class Interrupted(Exception):
    pass


def never_interrupted(sig, frame):
    raise AssertionError("the first signal did not end the wait")


@pytest.mark.parametrize("timeout", [None, WAIT])
def test_signal_interrupts_a_wait(name, timeout):
    """A signal's handler raising ends a wait (sleeping without the GIL,
    in slices) with its exception; the handle is usable after."""
    def handler(sig, frame):
        raise Interrupted()
    old = signal.signal(signal.SIGUSR1, handler)
    pid = os.getpid()
    timer = threading.Timer(0.05, lambda: os.kill(pid, signal.SIGUSR1))
    try:
        with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch:
            timer.start()
            if timeout is None:     # bounded all the same: a second signal
                backup = threading.Timer(WAIT, lambda: os.kill(pid, signal.SIGUSR2))
                signal.signal(signal.SIGUSR2, never_interrupted)
                backup.start()
            try:
                with pytest.raises(Interrupted):
                    ch.recv(timeout=timeout)
            finally:
                if timeout is None:
                    backup.cancel()
                    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
            ch.send(b"after")
            assert ch.recv(timeout=WAIT) == b"after"
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, old)


@pytest.mark.parametrize("wait", [shmkit.WAIT_ADAPTIVE, shmkit.WAIT_SPIN, shmkit.WAIT_BLOCK])
def test_timeouts_on_every_path(name, wait):
    """0: BlockingIOError at once; a bound shorter or longer than the spin:
    TimeoutError, never before it; a message there: no wait at all."""
    with shmkit.Channel.create(name, capacity=2, max_msg=16, wait=wait) as ch:
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)
        for t in (1e-6, 2e-5, 1e-4, 0.02):
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                ch.recv(timeout=t)
            # a lower bound only (a wait never ends before its timeout),
            # which no load can break
            assert time.monotonic() - start >= t * 0.999
        ch.send(b"1", timeout=1e-6)
        assert ch.recv(timeout=1e-6) == b"1"


def test_readonly_handle_is_permissionerror(name):
    with shmkit.Channel.create(name, capacity=2, max_msg=16) as ch, \
            shmkit.Channel.open(name, readonly=True) as ro:
        ch.send(b"x")
        for call in (lambda: ro.send(b"y", timeout=0), lambda: ro.recv(timeout=WAIT),
                     lambda: ro.peek(timeout=WAIT), lambda: ro.reserve(timeout=WAIT)):
            with pytest.raises(PermissionError) as ei:
                call()
            assert ei.value.errno in (1, 13) and ei.value.strerror
        assert ro.stats()["depth"] == 1 and ch.recv() == b"x"


def test_argument_errors(name):
    """The calls a round trip is made of parse their arguments themselves
    (vectorcall): the errors Python's own parsing gives."""
    try:
        argument_errors(name)
    finally:
        try:
            shmkit.Segment.remove(name + "b")
        except FileNotFoundError:
            pass


def argument_errors(name):
    import numpy as np
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch, \
            shmkit.Bus.create(name + "b", capacity=4, max_msg=64) as bus:
        for call in (lambda: ch.send(), lambda: ch.send(b"x", 1, 2),
                     lambda: ch.send(b"x", timeout=1, data=b"y"), lambda: ch.recv(bogus=1),
                     lambda: ch.recv(1, timeout=1), lambda: ch.send("text"),
                     lambda: ch.recv_into(b"read-only"), lambda: ch.recv_into(),
                     lambda: ch.send(np.zeros((4, 4))[:, 0]), lambda: ch.peek(1, 2),
                     lambda: ch.reserve(timeout=1, x=2), lambda: bus.publish(),
                     lambda: bus.publish(b"x", tmeout=1), lambda: bus.loan(1, 2)):
            with pytest.raises(TypeError):
                call()
        ch.send(data=b"kw", timeout=WAIT)
        ch.send(b"pos", WAIT)
        buf = bytearray(8)
        assert ch.recv_into(buffer=buf, timeout=WAIT) == 2 and buf[:2] == b"kw"
        assert ch.recv(WAIT) == b"pos"
        assert ch.stats()["depth"] == 0
