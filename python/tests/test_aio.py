"""shmkit.aio: awaiting channels, subscriptions, rpc and journal readers
from asyncio (asyncio.run in each test; no plugin)."""
import asyncio
import os

import pytest

import shmkit
import shmkit.aio as aio
from conftest import WAIT, finish, spawn
from test_bus import PUBLISHER
from test_channel import PRODUCER
from test_journal import WRITER

def test_channel_other_process(name):
    n = 100
    with shmkit.Channel.create(name, capacity=8, max_msg=64) as rx:
        async def main():
            ticks = 0
            stop = asyncio.Event()

            async def ticker():            # the loop keeps running meanwhile
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0)
            t = asyncio.create_task(ticker())
            p = spawn(PRODUCER, name, n)
            got = [int(await aio.recv(rx, timeout=WAIT)) for _ in range(n)]
            stop.set()
            await t
            finish(p)
            return got, ticks
        got, ticks = asyncio.run(main())
        assert got == list(range(n)) and ticks > 0


def test_timeout_and_iterator(name):
    with shmkit.Channel.create(name, capacity=4, max_msg=16) as rx, \
            shmkit.Channel.open(name) as tx:
        async def main():
            with pytest.raises(TimeoutError):
                await aio.recv(rx, timeout=0.05)
            asyncio.get_running_loop().call_later(0.01, tx.send, b"late")
            first = await aio.recv(rx, timeout=WAIT)
            tx.send(b"a")
            tx.send(b"b")
            rest = [m async for m in aio.messages(rx, timeout=0.05)]
            return first, rest
        assert asyncio.run(main()) == (b"late", [b"a", b"b"])


def test_send_waits_for_room(name):
    with shmkit.Channel.create(name, capacity=2, max_msg=16) as tx, \
            shmkit.Channel.open(name) as rx:
        async def main():
            await aio.send(tx, b"1", timeout=WAIT)
            await aio.send(tx, b"2", timeout=WAIT)
            with pytest.raises(TimeoutError):
                await aio.send(tx, b"3", timeout=0.05)
            asyncio.get_running_loop().call_later(0.01, rx.recv)
            await aio.send(tx, b"3", timeout=WAIT)
        asyncio.run(main())
        assert [rx.recv(timeout=WAIT) for _ in range(2)] == [b"2", b"3"]


def test_subscription(name):
    with shmkit.Bus.create(name, capacity=16, max_msg=64) as bus, bus.subscribe() as sub:
        async def main():
            loop = asyncio.get_running_loop()
            for i in range(5):
                loop.call_later(0.002 * i, bus.publish, b"m%d" % i)
            return [await aio.recv(sub, timeout=WAIT) for _ in range(5)]
        assert asyncio.run(main()) == [b"m%d" % i for i in range(5)]


def test_rpc_client_and_server(name):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as srv, \
            shmkit.RpcClient.open(name) as cli:
        async def serve(n):
            async for req in aio.requests(srv, timeout=WAIT):
                req.respond(bytes(req)[::-1])
                n -= 1
                if n == 0:
                    return

        async def main():
            s = asyncio.create_task(serve(3))
            got = [await aio.call(cli, b"abc%d" % i, timeout=WAIT) for i in range(3)]
            await s
            id = cli.send(b"later")
            with pytest.raises(TimeoutError):
                await aio.wait(cli, id, timeout=0.05)
            req = await aio.request(srv, timeout=WAIT)
            req.respond(b"done", status=7)
            msg = await aio.wait(cli, id, timeout=WAIT)
            r = (bytes(msg), msg.status, msg.id == id)
            msg.release()
            return got, r
        got, r = asyncio.run(main())
        assert got == [b"0cba", b"1cba", b"2cba"] and r == (b"done", 7, True)


def test_journal_records(tmpdir_sk):
    path = os.path.join(tmpdir_sk, "j")
    n = 50
    shmkit.Journal.open(path, create=True).close()
    with shmkit.JournalReader.open(path) as r:
        async def main():
            p = spawn(WRITER, path, n)
            got = []
            async for rec in aio.records(r, timeout=WAIT):
                got.append(int(rec.data))
                if len(got) == n:
                    break
            finish(p)
            with pytest.raises(TimeoutError):
                await aio.read(r, timeout=0.05)
            return got
        assert asyncio.run(main()) == list(range(n))
    shmkit.journal_remove(path)


def test_several_services_one_loop(tmpdir_sk):
    """One loop serves a channel, a subscription, both sides of an rpc
    service and a journal reader at once, fed by three other processes and
    by its own tasks; nothing blocks the loop (a ticker task keeps running
    while every service waits)."""
    from conftest import unique
    n = 60
    names = [unique("aio") for _ in range(3)]
    path = os.path.join(tmpdir_sk, "j")
    shmkit.Journal.open(path, create=True).close()
    try:
        with shmkit.Channel.create(names[0], capacity=4, max_msg=32) as rx, \
                shmkit.Bus.create(names[1], capacity=4, max_msg=32,
                                  delivery=shmkit.BACKPRESSURE) as bus, bus.subscribe() as sub, \
                shmkit.RpcServer.create(names[2], max_request=32, max_response=32) as srv, \
                shmkit.RpcClient.open(names[2]) as cli, \
                shmkit.JournalReader.open(path) as jr:
            async def take(agen):
                got = []
                async for x in agen:
                    got.append(x)
                    if len(got) == n:
                        return got
                raise AssertionError("ended after %d" % len(got))

            async def serve():
                async for req in aio.requests(srv, timeout=WAIT):
                    data = bytes(req)
                    req.respond(b"<" + data + b">")
                    if int(data) == n - 1:
                        return

            async def client():
                return [await aio.call(cli, b"%d" % i, timeout=WAIT) for i in range(n)]

            async def main():
                ticks = 0
                stop = asyncio.Event()

                async def ticker():
                    nonlocal ticks
                    while not stop.is_set():
                        ticks += 1
                        await asyncio.sleep(0)
                t = asyncio.create_task(ticker())
                procs = [spawn(PRODUCER, names[0], n), spawn(PUBLISHER, names[1], n),
                         spawn(WRITER, path, n)]
                chan, subm, _, calls, recs = await asyncio.gather(
                    take(aio.messages(rx, timeout=WAIT)),
                    take(aio.messages(sub, timeout=WAIT)),
                    serve(), client(), take(aio.records(jr, timeout=WAIT)))
                stop.set()
                await t
                for p in procs:
                    finish(p)
                return chan, subm, calls, [r.data for r in recs], ticks
            chan, subm, calls, recs, ticks = asyncio.run(main())
    finally:
        shmkit.journal_remove(path)
        for nm in names:
            shmkit.Segment.remove(nm)
    want = [b"%d" % i for i in range(n)]
    assert chan == want and subm == want and recs == want
    assert calls == [b"<%d>" % i for i in range(n)] and ticks > 0



def test_handle_methods_and_async_for(tmpdir_sk):
    """The handles' own entry points: recv_async, send_async, call_async,
    wait_async, read_async, and `async for` over a channel, a subscription,
    an rpc server and a journal reader (shmkit.aio underneath)."""
    from conftest import unique
    names = [unique("aio") for _ in range(3)]
    path = os.path.join(tmpdir_sk, "j")
    try:
        with shmkit.Channel.create(names[0], capacity=2, max_msg=16) as tx, \
                shmkit.Channel.open(names[0]) as rx, \
                shmkit.Bus.create(names[1], capacity=8, max_msg=16) as bus, bus.subscribe() as sub, \
                shmkit.RpcServer.create(names[2], max_request=16, max_response=16) as srv, \
                shmkit.RpcClient.open(names[2]) as cli, \
                shmkit.Journal.open(path, create=True) as w, \
                shmkit.JournalReader.open(path) as jr:
            async def first(aiterable, n):
                got = []
                async for x in aiterable:
                    got.append(x)
                    if len(got) == n:
                        return got

            async def serve(n):
                async for req in srv:
                    req.respond(bytes(req).upper())
                    n -= 1
                    if n == 0:
                        return

            async def main():
                loop = asyncio.get_running_loop()
                for i in range(3):
                    await tx.send_async(b"c%d" % i, timeout=WAIT)   # the third waits for room
                    if i == 1:
                        loop.call_later(0.01, rx.recv)
                chan = [await rx.recv_async(timeout=WAIT)] + await first(rx, 0 + 1)
                for i in range(3):
                    loop.call_later(0.001 * i, bus.publish, b"b%d" % i)
                subm = [await sub.recv_async(timeout=WAIT)] + await first(sub, 2)
                s = asyncio.create_task(serve(2))
                call = await cli.call_async(b"abc", timeout=WAIT)
                cid = cli.send(b"def", timeout=WAIT)
                with await cli.wait_async(cid, timeout=WAIT) as m:
                    waited = m.tobytes()
                await s
                for i in range(3):
                    loop.call_later(0.001 * i, w.append, b"r%d" % i)
                recs = [await jr.read_async(timeout=WAIT)] + await first(jr, 2)
                with pytest.raises(TimeoutError):
                    await rx.recv_async(timeout=0.05)
                return chan, subm, (call, waited), [r.data for r in recs]
            chan, subm, calls, recs = asyncio.run(main())
    finally:
        shmkit.journal_remove(path)
        for nm in names:
            shmkit.Segment.remove(nm)
    assert chan == [b"c1", b"c2"]       # c0 was taken by the plain recv
    assert subm == [b"b0", b"b1", b"b2"]
    assert calls == (b"ABC", b"DEF") and recs == [b"r0", b"r1", b"r2"]
