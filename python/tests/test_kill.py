"""A Python process SIGKILLed in the middle of a call: the survivors get
what the C API promises (include/shmkit.h), through the binding:
  - rpc: a server killed holding a call fails its caller (ConnectionResetError),
    or hands an idempotent call to another server; a caller killed while
    its server works is seen as abandoned, and its entry is taken over;
  - channel: a receiver killed blocked in recv takes nothing; a producer
    killed holding a reservation never wedges the consumer (its slot is
    reclaimed); a consumer killed with a message peeked loses that one
    message only (MPMC) or has it delivered again (SPSC);
  - bus: a dead backpressure subscriber stops holding the publisher;
  - journal: a writer killed mid-append loses no committed record and is
    replaced at once.
Each child says on stdout when it holds what it holds; it is then killed.
No wait is timed; every one is bounded by WAIT."""
import errno
import os
import signal
import threading

import pytest

import shmkit
from conftest import WAIT, lines, spawn


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=WAIT)
    assert proc.returncode == -signal.SIGKILL


def held(code, *args):
    """Spawn code; return it once it printed its first line."""
    p = spawn(code, *args)
    try:
        assert lines(p, 1) == ["held"]
    except BaseException:
        kill(p)
        raise
    return p


SERVER_HOLDS = """
import sys, time, shmkit
srv = shmkit.RpcServer.open(sys.argv[1])
req = srv.recv(timeout=10)
print("held", flush=True)
time.sleep(1000)
"""


def test_rpc_server_killed_holding_a_call(name):
    with shmkit.RpcClient.create(name, max_request=64, max_response=64) as cli:
        cid = cli.send(b"work", timeout=WAIT)
        kill(held(SERVER_HOLDS, name))
        with pytest.raises(ConnectionResetError):
            cli.wait(cid, timeout=WAIT)
        st = cli.stats()
        assert st["reset"] == 1 and st["in_flight"] == 0
        # the service goes on with a new server
        with shmkit.RpcServer.open(name) as srv:
            cid = cli.send(b"again", timeout=WAIT)
            srv.recv(timeout=WAIT).respond(b"fine")
            with cli.wait(cid, timeout=WAIT) as m:
                assert m.tobytes() == b"fine"


def test_rpc_idempotent_call_goes_to_another_server(name):
    with shmkit.RpcClient.create(name, max_request=64, max_response=64) as cli:
        cid = cli.send(b"retry me", idempotent=True, timeout=WAIT)
        kill(held(SERVER_HOLDS, name))
        with shmkit.RpcServer.open(name) as srv:
            def serve():
                req = srv.recv(timeout=WAIT)
                assert req.flags & shmkit.RPC_IDEMPOTENT
                req.respond(b"done: " + bytes(req))
            t = threading.Thread(target=serve)
            t.start()
            try:
                with cli.wait(cid, timeout=WAIT) as m:
                    got = m.tobytes()
            finally:
                t.join(WAIT)
        assert got == b"done: retry me" and cli.stats()["retried"] == 1


CALLER = """
import sys, shmkit
cli = shmkit.RpcClient.open(sys.argv[1])
cid = cli.send(b"from the dead", timeout=10)
print("held", flush=True)
cli.wait(cid)
"""


def test_rpc_caller_killed_while_waiting(name):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as srv:
        p = held(CALLER, name)
        req = srv.recv(timeout=WAIT)
        assert bytes(req) == b"from the dead"
        kill(p)
        assert req.abandoned()
        # the answer goes into the void: shmkit.h's rpc section says the
        # call finishes (0), shmkit_rpc_respond's comment says ECANCELED
        try:
            req.respond(b"into the void")
        except OSError as e:
            assert e.errno == errno.ECANCELED
        assert not req.live
        # the dead client's entry is taken over by the next one
        with shmkit.RpcClient.open(name) as cli:
            cid = cli.send(b"next", timeout=WAIT)
            srv.recv(timeout=WAIT).respond(b"ok")
            with cli.wait(cid, timeout=WAIT) as m:
                assert m.tobytes() == b"ok"


RECEIVER_BLOCKED = """
import sys, shmkit
ch = shmkit.Channel.open(sys.argv[1])
print("held", flush=True)
ch.recv()
"""


@pytest.mark.parametrize("spsc", [False, True])
def test_receiver_killed_blocked_in_recv(name, spsc):
    cap = 4
    with shmkit.Channel.create(name, capacity=cap, max_msg=32, spsc=spsc) as tx:
        kill(held(RECEIVER_BLOCKED, name))
        with shmkit.Channel.open(name) as rx:
            for i in range(3 * cap):      # laps every slot: none is lost
                tx.send(b"%d" % i, timeout=WAIT)
                assert rx.recv(timeout=WAIT) == b"%d" % i
            for i in range(cap):          # and the whole capacity is there
                tx.send(b"%d" % i, timeout=0)
            assert list(rx.messages(timeout=0)) == [b"%d" % i for i in range(cap)]


PRODUCER_HOLDS = """
import sys, time, shmkit
ch = shmkit.Channel.open(sys.argv[1])
loan = ch.reserve(timeout=10)
memoryview(loan)[:4] = b"torn"
print("held", flush=True)
time.sleep(1000)
"""


def test_producer_killed_holding_a_reservation(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=32) as rx, \
            shmkit.Channel.open(name) as tx:
        p = held(PRODUCER_HOLDS, name)
        tx.send(b"after", timeout=WAIT)        # queued behind the held slot
        kill(p)
        assert rx.recv(timeout=WAIT) == b"after"   # the dead slot is skipped
        assert rx.stats()["reclaimed"] == 1
        for i in range(8):
            tx.send(b"%d" % i, timeout=WAIT)
            assert rx.recv(timeout=WAIT) == b"%d" % i


CONSUMER_PEEKS = """
import sys, time, shmkit
ch = shmkit.Channel.open(sys.argv[1])
msg = ch.peek(timeout=10)
assert bytes(msg) == b"taken"
print("held", flush=True)
time.sleep(1000)
"""


def test_consumer_killed_holding_a_peek_mpmc(name):
    cap = 4
    with shmkit.Channel.create(name, capacity=cap, max_msg=32) as tx:
        tx.send(b"taken", timeout=WAIT)
        kill(held(CONSUMER_PEEKS, name))
        with shmkit.Channel.open(name) as rx:
            # lapping the dead consumer's slot makes a producer wait at it,
            # then reclaim it; only the peeked message is lost
            got = []
            for i in range(2 * cap):
                tx.send(b"%d" % i, timeout=WAIT)
                got.append(rx.recv(timeout=WAIT))
            assert got == [b"%d" % i for i in range(2 * cap)]
            assert rx.stats()["reclaimed"] == 1


def test_consumer_killed_holding_a_peek_spsc(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=32, spsc=True) as tx:
        tx.send(b"taken", timeout=WAIT)
        tx.send(b"next", timeout=WAIT)
        kill(held(CONSUMER_PEEKS, name))
        with shmkit.Channel.open(name) as rx:   # takes the dead one's role
            assert [rx.recv(timeout=WAIT) for _ in range(2)] == [b"taken", b"next"]
            assert rx.stats()["reclaimed"] == 1


SUBSCRIBER = """
import sys, time, shmkit
bus = shmkit.Bus.open(sys.argv[1])
sub = bus.subscribe()
print("held", flush=True)
time.sleep(1000)
"""


def test_backpressure_subscriber_killed(name):
    cap = 4
    with shmkit.Bus.create(name, capacity=cap, max_msg=32,
                           delivery=shmkit.BACKPRESSURE) as bus, bus.subscribe() as mine:
        p = held(SUBSCRIBER, name)
        for i in range(cap):
            bus.publish(b"%d" % i, timeout=WAIT)
        got = list(mine.messages(timeout=0))
        with pytest.raises(BlockingIOError):
            bus.publish(b"full", timeout=0)      # the child holds the bus up
        kill(p)
        for i in range(cap, 4 * cap):            # no longer, once it is dead
            bus.publish(b"%d" % i, timeout=WAIT)
            got += mine.messages(timeout=0)
        assert got == [b"%d" % i for i in range(4 * cap)]
        assert mine.lost == 0


WRITER = """
import sys, shmkit
with shmkit.Journal.open(sys.argv[1]) as w:
    i = 0
    while True:
        w.append(b"record %d" % i)
        i += 1
        if i == 100:
            print("held", flush=True)
"""


def test_journal_writer_killed_mid_append(tmpdir_sk):
    path = os.path.join(tmpdir_sk, "j")
    shmkit.Journal.open(path, create=True).close()
    kill(held(WRITER, path))
    with shmkit.Journal.open(path) as w:            # replaced at once
        last = w.stat()["last_seq"]
        assert last >= 100
        assert w.append(b"survivor") == last + 1
    with shmkit.JournalReader.open(path) as r:
        recs = list(r)
    assert [x.seq for x in recs] == list(range(1, last + 2))
    assert [x.data for x in recs] == [b"record %d" % i for i in range(last)] + [b"survivor"]
    assert shmkit.journal_verify(path).clean
    shmkit.journal_remove(path)
