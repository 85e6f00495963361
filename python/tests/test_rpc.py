"""Request/response: calls by copy and in place, both sides, processes."""
import os
import threading

import numpy as np
import pytest

import shmkit
from conftest import WAIT, finish, spawn


def serve(server, n):
    """Answer n requests: "re:" + the request."""
    for _ in range(n):
        req = server.recv(timeout=WAIT)
        req.respond(b"re:" + bytes(req))


def test_call_with_server_thread(name):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as server, \
            shmkit.RpcClient.open(name) as client:
        t = threading.Thread(target=serve, args=(server, 3))
        t.start()
        try:
            assert client.call(b"a", timeout=WAIT) == b"re:a"
            ids = [client.send(b"b", timeout=WAIT), client.send(b"c", timeout=WAIT)]
            got = {}
            for _ in ids:
                with client.wait(timeout=WAIT) as resp:
                    got[resp.id] = resp.tobytes()
                    assert resp.status == 0
            assert got == {ids[0]: b"re:b", ids[1]: b"re:c"}
        finally:
            t.join(WAIT)
        assert not t.is_alive()
        st = client.stats()
        assert st["requests"] == 3 and st["responses"] == 3 and st["in_flight"] == 0


def test_in_place_both_sides(name):
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as server, \
            shmkit.RpcClient.open(name) as client:
        loan = client.loan()
        arr = np.asarray(loan).view(np.int32)
        arr[:3] = [1, 2, 3]
        with pytest.raises(BufferError):
            loan.commit(12)
        del arr
        cid = loan.commit(12, timeout=WAIT)
        req = server.recv(timeout=WAIT)
        assert req.id and req.flags == 0 and req.abandoned() is False
        x = np.frombuffer(req, dtype=np.int32)
        assert list(x) == [1, 2, 3]
        out = req.loan()
        y = np.asarray(out).view(np.int32)
        y[:3] = x * 10
        with pytest.raises(BufferError):
            out.commit(12)       # y still sees the response buffer
        del y
        with pytest.raises(BufferError):
            out.commit(12)       # x still sees the request
        del x
        out.commit(12)
        assert not req.live and not out.live
        resp = client.wait(cid, timeout=WAIT)
        r = np.frombuffer(resp, dtype=np.int32)
        assert list(r) == [10, 20, 30] and resp.id == cid
        with pytest.raises(BufferError):
            client.close()
        del r
        resp.release()


def test_status_echo_and_timeout(name):
    with shmkit.RpcServer.create(name) as server, shmkit.RpcClient.open(name) as client:
        cid = client.send(b"ping", timeout=WAIT)
        req = server.recv(timeout=WAIT)
        req.respond(req, status=7)       # echo the request in place
        with client.wait(cid, timeout=WAIT) as resp:
            assert resp.tobytes() == b"ping" and resp.status == 7
        with pytest.raises(BlockingIOError):
            server.recv(timeout=0)
        with pytest.raises(TimeoutError):
            client.call(b"nobody answers", timeout=0.05)
        # the given-up call is never answered: its request is skipped, or
        # a server that took it has its answer refused
        try:
            req = server.recv(timeout=0)
        except BlockingIOError:
            pass
        else:
            with pytest.raises(OSError):
                req.respond(b"late")
            assert not req.live
        assert client.stats()["timeouts"] == 1


SERVER = """
import sys, shmkit
with shmkit.RpcServer.open(sys.argv[1]) as server:
    for _, req in zip(range(int(sys.argv[2])), server.requests(timeout=10)):
        req.respond(bytes(req)[::-1])
"""


def test_cross_process(name):
    n = 100
    with shmkit.RpcClient.create(name, max_request=32, max_response=32) as client:
        p = spawn(SERVER, name, n)
        for i in range(n):
            assert client.call(b"%d" % i, timeout=WAIT) == (b"%d" % i)[::-1]
        finish(p)


def test_fileno_client(name):
    import select
    with shmkit.RpcServer.create(name) as server, shmkit.RpcClient.open(name) as client:
        cfd = client.fileno()
        sfd = server.fileno()
        cid = client.send(b"q", timeout=WAIT)
        assert select.select([sfd], [], [], WAIT)[0] == [sfd]
        server.ack()
        server.recv(timeout=0).respond(b"a")
        assert select.select([cfd], [], [], WAIT)[0] == [cfd]
        client.ack()
        with client.wait(cid, timeout=0) as resp:
            assert resp.tobytes() == b"a"


def test_peers(name):
    with shmkit.RpcServer.create(name) as srv, shmkit.RpcClient.open(name) as cli:
        id = cli.send(b"q")
        req = srv.recv(timeout=WAIT)
        req.respond(b"a")
        cli.wait(id, timeout=WAIT).release()
        peers = cli.peers()
        assert peers == srv.peers()
        clients = [p for p in peers if not p["server"]]
        servers = [p for p in peers if p["server"]]
        assert len(clients) == 1 and clients[0]["calls"] == 1 and clients[0]["answered"] == 1
        assert len(servers) == 1 and servers[0]["calls"] == 1 and servers[0]["answered"] == 1
        assert all(p["pid"] == os.getpid() and p["alive"] == 1 for p in peers)
