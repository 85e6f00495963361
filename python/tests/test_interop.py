"""Interop both ways with C processes (the shmkit tool, on the public C
API): channels, the bus, rpc and the journal, each with Python on one side
and C on the other; numpy writes made in place in a loan are what the C
receiver prints."""
import os
import subprocess

import numpy as np
import pytest

import shmkit
from conftest import TOOL, WAIT, lines, until

pytestmark = pytest.mark.skipif(not os.access(TOOL, os.X_OK), reason="no shmkit tool at " + TOOL)

MS = str(int(WAIT * 1000))


def tool(*args):
    """Start the tool (a C process) on args."""
    return subprocess.Popen([TOOL] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def done(proc, stdin=None):
    out, err = proc.communicate(stdin, timeout=WAIT)
    assert proc.returncode == 0, err.decode()
    return out


def test_python_producer_c_receiver(name):
    n = 300
    with shmkit.Channel.create(name, capacity=8, max_msg=64) as ch:
        rx = tool("recv", name, "-n", str(n), "--timeout", MS)
        for i in range(n // 2):
            ch.send(b"copy %d" % i, timeout=WAIT)
        for i in range(n // 2, n):        # numpy writes in place in the slot
            with ch.reserve(timeout=WAIT) as loan:
                text = np.frombuffer(b"loan %d" % i, dtype=np.uint8)
                arr = np.asarray(loan)
                arr[:len(text)] = text
                del arr
                loan.commit(len(text))
        out = done(rx).decode().splitlines()
    assert out == ["copy %d" % i for i in range(n // 2)] + ["loan %d" % i for i in range(n // 2, n)]


def test_c_producer_python_receiver(name):
    n = 300
    with shmkit.Channel.create(name, capacity=8, max_msg=64) as ch:
        tx = tool("send", name, "--timeout", MS)
        tx.stdin.write(b"".join(b"line %d\n" % i for i in range(n)))
        tx.stdin.close()
        got = []
        for _ in range(n):
            with ch.peek(timeout=WAIT) as m:
                got.append(bytes(m))
        tx.stdin = None
        done(tx)
        assert got == [b"line %d" % i for i in range(n)]
        with pytest.raises(BlockingIOError):
            ch.recv(timeout=0)


def test_c_publisher_python_subscriber(name):
    n = 200
    with shmkit.Bus.create(name, capacity=16, max_msg=64, delivery=shmkit.BACKPRESSURE) as bus, \
            bus.subscribe() as sub:
        pub = tool("pub", name, "--timeout", MS, "--", *["m%d" % i for i in range(n)])
        got = []
        for _ in range(n // 2):
            got.append(sub.recv(timeout=WAIT))
        for _ in range(n // 2):
            with sub.peek(timeout=WAIT) as m:
                got.append(np.frombuffer(m, dtype=np.uint8).tobytes())
        done(pub)
        assert got == [b"m%d" % i for i in range(n)] and sub.lost == 0


def test_python_publisher_c_subscriber(name):
    n = 200
    with shmkit.Bus.create(name, capacity=16, max_msg=64, delivery=shmkit.BACKPRESSURE) as bus:
        sub = tool("sub", name, "-n", str(n), "--timeout", MS)
        until(lambda: bus.stats()["subscribers"] == 1)
        for i in range(n):
            with bus.loan(timeout=WAIT) as loan:
                data = b"frame %d" % i
                np.asarray(loan)[:len(data)] = np.frombuffer(data, dtype=np.uint8)
                loan.commit(len(data))
        assert done(sub).decode().splitlines() == ["frame %d" % i for i in range(n)]


def test_c_journal_python_tail(tmpdir_sk):
    path = os.path.join(tmpdir_sk, "j")
    n = 100
    shmkit.Journal.open(path, create=True).close()
    with shmkit.JournalReader.open(path) as r:
        w = tool("journal", "append", path)
        w.stdin.write(b"".join(b"rec %d\n" % i for i in range(n)))
        w.stdin.close()
        got = []
        for rec in r.tail(follow=True, timeout=WAIT):
            got.append((rec.seq, rec.data))
            if len(got) == n:
                break
        w.stdin = None
        done(w)
        assert got == [(i + 1, b"rec %d" % i) for i in range(n)]
        assert list(r.tail()) == []
    shmkit.journal_remove(path)


def test_python_journal_c_tail(tmpdir_sk):
    path = os.path.join(tmpdir_sk, "j")
    n = 50
    with shmkit.Journal.open(path, create=True) as w:
        tail = tool("journal", "tail", path, "--from", "1", "--follow", "--timeout", MS)
        for i in range(n):
            w.append(b"py %d" % i)
        try:
            out = lines(tail, n)
        finally:
            tail.terminate()    # --follow only ends by its timeout
            tail.communicate(timeout=WAIT)
    assert out == ["%d\tpy %d" % (i + 1, i) for i in range(n)]
    rep = subprocess.run([TOOL, "journal", "verify", path], capture_output=True, timeout=WAIT)
    assert rep.returncode == 0, rep.stderr.decode()
    shmkit.journal_remove(path)


def test_python_server_c_caller(name):
    n = 20
    with shmkit.RpcServer.create(name, max_request=64, max_response=64) as srv:
        call = tool("call", name, "--timeout", MS, *["q%d" % i for i in range(n)])
        for req in srv.requests(timeout=WAIT):
            x = np.frombuffer(req, dtype=np.uint8)
            with req.loan() as out:
                np.asarray(out)[:len(x)] = x[::-1]
                del x
                out.commit(len(req))
            n -= 1
            if n == 0:
                break
        assert done(call).decode().splitlines() == [("q%d" % i)[::-1] for i in range(20)]


def test_c_server_python_caller(name):
    n = 20
    with shmkit.RpcClient.create(name, max_request=64, max_response=64) as cli:
        serve = tool("serve", name, "--echo", "-n", str(n))
        got = [cli.call(b"c%d" % i, timeout=WAIT) for i in range(n // 2)]
        for i in range(n // 2, n):
            loan = cli.loan()
            data = b"loan %d" % i
            np.asarray(loan)[:len(data)] = np.frombuffer(data, dtype=np.uint8)
            cid = loan.commit(len(data), timeout=WAIT)
            with cli.wait(cid, timeout=WAIT) as m:
                assert m.status == 0
                got.append(m.tobytes())
        done(serve)
        assert got == [b"c%d" % i for i in range(n // 2)] + [b"loan %d" % i for i in range(n // 2, n)]
