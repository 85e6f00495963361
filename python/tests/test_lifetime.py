"""Buffer lifetime: every object that lends shared memory, exported by a
memoryview or a numpy array, with its give-back (commit, abort, release,
respond), its owner's close, the export's release and the drop of the
lending object in every order.  Expected after each step, from a model:
giving back or closing while an export lives is BufferError and changes
nothing; a view given back has no memory (len 0, no new export); what is
left afterwards still works (no loan, peek or call orphaned in C).  A crash
anywhere fails the run."""
import errno
import itertools

import numpy as np
import pytest

import shmkit
from conftest import WAIT, unique


class Lender:
    """One kind of lent memory: make() -> (ctx, owner, view); end(ctx, view)
    gives it back; usable(ctx) checks what is left still works."""
    extra = ()

    def close_all(self, ctx):
        for h in reversed(ctx["handles"]):
            h.close()
        shmkit.Segment.remove(ctx["name"])


class ChanReserve(Lender):
    def __init__(self, commit):
        self.commit = commit

    def make(self):
        n = unique("lt")
        tx = shmkit.Channel.create(n, capacity=4, max_msg=64)
        rx = shmkit.Channel.open(n)
        ctx = {"name": n, "handles": [tx, rx], "tx": tx, "rx": rx}
        return ctx, tx, tx.reserve(timeout=WAIT)

    def end(self, ctx, v):
        if self.commit:
            v.commit(3)
        else:
            v.abort()

    def usable(self, ctx):
        ctx["tx"].send(b"after")
        got = list(ctx["rx"].messages(timeout=0))
        assert got[-1] == b"after" and len(got) <= 2


class ChanPeek(Lender):
    def make(self):
        n = unique("lt")
        tx = shmkit.Channel.create(n, capacity=4, max_msg=64)
        rx = shmkit.Channel.open(n)
        tx.send(b"peeked")
        ctx = {"name": n, "handles": [tx, rx], "tx": tx, "rx": rx}
        return ctx, rx, rx.peek(timeout=WAIT)

    def end(self, ctx, v):
        v.release()

    def usable(self, ctx):
        ctx["tx"].send(b"after")
        # the peeked message is consumed once, whatever gave it back
        assert list(ctx["rx"].messages(timeout=0)) == [b"after"]


class BusLoan(Lender):
    def make(self):
        n = unique("lt")
        bus = shmkit.Bus.create(n, capacity=8, max_msg=64, delivery=shmkit.BACKPRESSURE)
        other = shmkit.Bus.open(n)
        sub = other.subscribe()
        ctx = {"name": n, "handles": [bus, other, sub], "bus": bus, "sub": sub}
        return ctx, bus, bus.loan(timeout=WAIT)

    def end(self, ctx, v):
        v.commit(4)

    def usable(self, ctx):
        ctx["bus"].publish(b"after", timeout=WAIT)
        got = list(ctx["sub"].messages(timeout=0))
        assert got[-1] == b"after" and len(got) <= 2


class SubPeek(Lender):
    def make(self):
        n = unique("lt")
        bus = shmkit.Bus.create(n, capacity=8, max_msg=64)
        sub = bus.subscribe()
        bus.publish(b"peeked")
        ctx = {"name": n, "handles": [bus, sub], "bus": bus, "sub": sub}
        return ctx, sub, sub.peek(timeout=WAIT)

    def end(self, ctx, v):
        v.release()

    def usable(self, ctx):
        ctx["bus"].publish(b"after")
        assert list(ctx["sub"].messages(timeout=0)) == [b"after"]


class RpcSetup(Lender):
    def rpc(self):
        n = unique("lt")
        srv = shmkit.RpcServer.create(n, max_request=64, max_response=64)
        cli = shmkit.RpcClient.open(n)
        return {"name": n, "handles": [srv, cli], "srv": srv, "cli": cli}

    def usable(self, ctx):
        cli, srv = ctx["cli"], ctx["srv"]
        cid = cli.send(b"after", timeout=WAIT)
        while True:     # earlier calls may still be queued: answer them all
            req = srv.recv(timeout=WAIT)
            mine = bytes(req) == b"after"
            req.respond(b"ok")
            if mine:
                break
        with cli.wait(cid, timeout=WAIT) as m:
            assert m.tobytes() == b"ok"


class RpcClientLoan(RpcSetup):
    def make(self):
        ctx = self.rpc()
        return ctx, ctx["cli"], ctx["cli"].loan()

    def end(self, ctx, v):
        v.commit(5, timeout=WAIT)


class RpcResponse(RpcSetup):
    def make(self):
        ctx = self.rpc()
        cid = ctx["cli"].send(b"q", timeout=WAIT)
        ctx["srv"].recv(timeout=WAIT).respond(b"answer")
        return ctx, ctx["cli"], ctx["cli"].wait(cid, timeout=WAIT)

    def end(self, ctx, v):
        v.release()


class RpcRequest(RpcSetup):
    def make(self):
        ctx = self.rpc()
        ctx["cli"].send(b"request", timeout=WAIT)
        return ctx, ctx["srv"], ctx["srv"].recv(timeout=WAIT)

    def end(self, ctx, v):
        v.respond(b"re")


class RpcResponseLoan(RpcSetup):
    def make(self):
        ctx = self.rpc()
        ctx["cli"].send(b"request", timeout=WAIT)
        ctx["req"] = ctx["srv"].recv(timeout=WAIT)
        return ctx, ctx["srv"], ctx["req"].loan()

    def end(self, ctx, v):
        v.commit(2)


LENDERS = {
    "chan-reserve-commit": ChanReserve(True),
    "chan-reserve-abort": ChanReserve(False),
    "chan-peek": ChanPeek(),
    "bus-loan": BusLoan(),
    "sub-peek": SubPeek(),
    "rpc-client-loan": RpcClientLoan(),
    "rpc-response": RpcResponse(),
    "rpc-request": RpcRequest(),
    "rpc-response-loan": RpcResponseLoan(),
}

ACTIONS = ("unexport", "end", "close", "drop")


def export(view, kind):
    if kind == "memoryview":
        return memoryview(view)
    return np.frombuffer(view, dtype=np.uint8)


def check_dead(view):
    """A view given back: no memory, no new export."""
    assert not view.live and len(view) == 0
    with pytest.raises(BufferError):
        memoryview(view)


@pytest.mark.parametrize("kind", ["memoryview", "numpy"])
@pytest.mark.parametrize("lender", sorted(LENDERS))
def test_every_order(lender, kind):
    L = LENDERS[lender]
    orders = list(itertools.permutations(ACTIONS))
    assert len(orders) == 24
    for order in orders:
        ctx, owner, view = L.make()
        try:
            size = len(view)
            exp = [export(view, kind)]
            live, closed = True, False
            for act in order:
                if act == "unexport":
                    if exp and kind == "memoryview":
                        exp[0].release()
                    exp.clear()
                elif act == "drop":
                    view = None
                elif act == "end" and view is not None:
                    if not live:
                        with pytest.raises(ValueError):
                            L.end(ctx, view)
                    elif exp:
                        with pytest.raises(BufferError):
                            L.end(ctx, view)
                    else:
                        L.end(ctx, view)
                        live = False
                elif act == "close":
                    if exp and not closed:
                        with pytest.raises(BufferError):
                            owner.close()
                    else:
                        owner.close()
                        closed, live = True, False
                if view is not None:
                    if live:
                        assert view.live and len(view) == size
                    else:
                        check_dead(view)
                if exp:        # a live export still sees the memory
                    assert len(exp[0]) == size
                    bytes(exp[0][:1])
            if not closed:
                L.usable(ctx)
        finally:
            exp = view = None
            L.close_all(ctx)


def test_segment_every_order(name):
    """A Segment exported twice (memoryview, numpy) and held by a sync
    object: close refused until the last of them is gone."""
    for order in itertools.permutations(("mv", "arr", "sem", "close")):
        seg = shmkit.Segment.create(name, 4096)
        mv = memoryview(seg)
        arrays = [np.frombuffer(seg, dtype=np.uint8)]
        sem = shmkit.Semaphore(seg, 64, init=1)
        held = {"mv", "arr", "sem"}
        for act in order:
            if act == "mv":
                mv.release()
            elif act == "arr":
                arrays.clear()
            elif act == "sem":
                sem.close()
            elif held:
                with pytest.raises(BufferError):
                    seg.close()
                assert not seg.closed
            held.discard(act)
        seg.close()
        assert seg.closed
        with pytest.raises(ValueError):
            memoryview(seg)
        shmkit.Segment.remove(name)


def test_view_outlives_every_reference_to_its_handle(name):
    """A numpy array over a loan is the last reference to everything: the
    handle lives on until the array goes (no use after free), and the
    loan's memory is given back then (the slot is free again)."""
    def make():
        ch = shmkit.Channel.create(name, capacity=1, max_msg=64)
        return np.asarray(ch.reserve(timeout=WAIT))
    arr = make()
    arr[:3] = 7
    assert list(arr[:3]) == [7, 7, 7]
    del arr                        # loan aborted, channel closed
    with shmkit.Channel.open(name) as ch:
        assert ch.stats()["aborted"] == 1
        ch.send(b"room", timeout=0)  # the only slot is free again
        assert ch.recv(timeout=0) == b"room"


def test_bus_close_refused_keeps_the_loan(name):
    """Bus.close refused (EBUSY: a subscription is open) changes nothing:
    the open loan stays the caller's, to commit or abort (it was lost to
    Python and blocked the handle's next loan before)."""
    with shmkit.Bus.create(name, capacity=8, max_msg=64) as bus:
        sub = bus.subscribe()
        loan = bus.loan(timeout=WAIT)
        with pytest.raises(OSError) as ei:
            bus.close()
        assert ei.value.errno == errno.EBUSY and not bus.closed
        assert loan.live
        memoryview(loan)[:2] = b"ok"
        loan.commit(2)
        assert sub.recv(timeout=WAIT) == b"ok"
        bus.loan(timeout=WAIT).abort()
        sub.close()


def test_rpc_one_view_per_response_and_loan(name):
    """A response waited for twice is one Message (releasing it leaves no
    second view over the freed slot); a request's response loan is one
    Loan, ended with the request whatever answered it (a copy answer
    refused while the loan is exported)."""
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as srv, \
            shmkit.RpcClient.open(name) as cli:
        cid = cli.send(b"q", timeout=WAIT)
        req = srv.recv(timeout=WAIT)
        out = req.loan()
        with pytest.raises(ValueError):
            req.loan()
        mv = memoryview(out)
        with pytest.raises(BufferError):
            req.respond(b"copy")
        assert req.live and out.live
        mv.release()
        req.respond(b"copy")
        check_dead(out)
        check_dead(req)
        m = cli.wait(cid, timeout=WAIT)
        assert cli.wait(cid, timeout=0) is m and m.tobytes() == b"copy"
        m.release()
        check_dead(m)
        assert cli.stats()["in_flight"] == 0
