"""The type stubs (shmkit/__init__.pyi, shmkit/aio.pyi, PEP 561) against the
built module, both ways, without mypy: every public name of the module and
of each of its classes is stubbed, as the same kind of thing (function,
class, method, classmethod, staticmethod, property, constant and its
value), and every stubbed name exists.  The stubs are read from the
built package, so this also checks that `make python` ships them.  Where
Debian's mypy is installed, mypy --strict accepts an example using the
API and rejects misuses of it."""
import ast
import os
import subprocess
import sys
import types

import pytest

import shmkit
import shmkit.aio as aio
from conftest import WAIT, unique

PKG = os.path.dirname(shmkit.__file__)
# The protocol dunders a stub must declare exactly when the class has them.
DUNDERS = {"__enter__", "__exit__", "__iter__", "__next__", "__aiter__", "__len__",
           "__buffer__", "__release_buffer__"}
# Before Python 3.12 (PEP 688) the buffer slots have no names: checked on
# instances (test_buffer_classes) instead.
BUFFER = {"__buffer__", "__release_buffer__"}
NAMED = DUNDERS if sys.version_info >= (3, 12) else DUNDERS - BUFFER
Py_TPFLAGS_DISALLOW_INSTANTIATION = 1 << 7
Py_TPFLAGS_BASETYPE = 1 << 10


class StubClass:
    def __init__(self, node):
        self.names = {}   # name -> kind
        self.final = any(_name(d) == "final" for d in node.decorator_list)
        self.bases = [ast.unparse(b) for b in node.bases if not ast.unparse(b).startswith("Generic[")]
        for n in node.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decos = {_name(d) for d in n.decorator_list} - {"overload"}
                kind = ("property" if "property" in decos else "classmethod" if "classmethod"
                        in decos else "staticmethod" if "staticmethod" in decos else "method")
                assert self.names.get(n.name, kind) == kind, n.name
                self.names[n.name] = kind
            elif isinstance(n, ast.AnnAssign):
                self.names[n.target.id] = "attribute"


def _name(node):
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(
        node, ast.Attribute) else None


def parse_stub(filename):
    """{name: (kind, detail)} of the stub's module level: classes (a
    StubClass), functions, attributes (the value's literal, or None)."""
    path = os.path.join(PKG, filename)
    assert os.path.exists(path), "%s not shipped in %s" % (filename, PKG)
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for n in tree.body:
        if isinstance(n, ast.ClassDef):
            out[n.name] = ("class", StubClass(n))
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[n.name] = ("function", None)
        elif isinstance(n, ast.AnnAssign):
            out[n.target.id] = ("attribute", _literal(n.value))
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                out[t.id] = ("attribute", _literal(n.value))
    return out


def _literal(node):
    """The value of a literal, None for anything else (a TypeVar, an alias)."""
    try:
        return ast.literal_eval(node) if node else None
    except ValueError:
        return None


def public(name):
    return not name.startswith("_")


def runtime_kind(obj):
    if isinstance(obj, type):
        return "class"
    if isinstance(obj, (types.BuiltinFunctionType, types.FunctionType)):
        return "function"
    return "attribute"


def member_kind(cls, name):
    v = vars(cls)[name]
    if isinstance(v, types.ClassMethodDescriptorType) or isinstance(v, classmethod):
        return "classmethod"
    if isinstance(v, staticmethod):
        return "staticmethod"
    if isinstance(v, (types.GetSetDescriptorType, types.MemberDescriptorType, property)):
        return "property"
    if isinstance(v, (types.MethodDescriptorType, types.WrapperDescriptorType,
                      types.FunctionType)):
        return "method"
    return "attribute"


STUB = parse_stub("__init__.pyi")


def test_shipped():
    for f in ("__init__.pyi", "aio.pyi", "py.typed"):
        assert os.path.isfile(os.path.join(PKG, f)), f


def test_module_names_both_ways():
    runtime = {n: runtime_kind(getattr(shmkit, n)) for n in dir(shmkit)
               if public(n) and not isinstance(getattr(shmkit, n), types.ModuleType)}
    stubbed = {n: k for n, (k, _) in STUB.items() if public(n)}
    assert sorted(set(runtime) - set(stubbed)) == [], "not in __init__.pyi"
    assert sorted(set(stubbed) - set(runtime)) == [], "stubbed but not in shmkit"
    assert {n: k for n, k in runtime.items() if stubbed[n] != k} == {}, "kinds differ"
    assert "__version__" in STUB and isinstance(shmkit.__version__, str)


def test_constant_values():
    for n, (kind, value) in STUB.items():
        if kind == "attribute" and public(n):
            assert value == getattr(shmkit, n), n


@pytest.mark.parametrize("cname", sorted(n for n, (k, _) in STUB.items()
                                         if k == "class" and public(n)))
def test_class_names_both_ways(cname):
    cls = getattr(shmkit, cname)
    stub = STUB[cname][1]
    runtime = {n: member_kind(cls, n) for n in vars(cls) if public(n) or n in NAMED}
    stubbed = {n: k for n, k in stub.names.items() if public(n) or n in NAMED}
    assert sorted(set(runtime) - set(stubbed)) == [], "not stubbed in " + cname
    assert sorted(set(stubbed) - set(runtime)) == [], "stubbed but not in " + cname
    assert {n: k for n, k in runtime.items() if stubbed[n] != k} == {}, "kinds differ"
    # @final exactly when Python cannot subclass it.
    assert stub.final == (not cls.__flags__ & Py_TPFLAGS_BASETYPE), cname
    # A constructor exactly when Python has one.
    ctor = "__init__" in stub.names or "__new__" in stub.names
    if cls.__flags__ & Py_TPFLAGS_DISALLOW_INSTANTIATION:
        assert not ctor and not stub.bases, cname + " cannot be instantiated"
    elif "__new__" in vars(cls):
        assert ctor, cname + " has a constructor"


def test_docstrings():
    """help() shows every public class, function, method and property of
    shmkit and shmkit.aio, the protocol dunders included."""
    missing = []
    for mod in (shmkit, aio):
        for n in dir(mod):
            v = getattr(mod, n)
            if not public(n) or isinstance(v, (types.ModuleType, int, str)):
                continue
            if not (v.__doc__ or "").strip():
                missing.append(n)
            if isinstance(v, type):
                for m, a in vars(v).items():
                    if (public(m) or m in DUNDERS) and not isinstance(a, (int, str)) and \
                            not (getattr(a, "__doc__", None) or "").strip():
                        missing.append(n + "." + m)
    assert missing == []


def test_aio_names_both_ways():
    stub = parse_stub("aio.pyi")
    runtime = {n: runtime_kind(v) for n, v in vars(aio).items()
               if public(n) and not isinstance(v, types.ModuleType)}
    stubbed = {n: k for n, (k, _) in stub.items() if public(n)}
    assert sorted(set(runtime) - set(stubbed)) == [], "not in aio.pyi"
    assert sorted(set(stubbed) - set(runtime)) == [], "stubbed but not in shmkit.aio"
    assert {n: k for n, k in runtime.items() if stubbed[n] != k} == {}, "kinds differ"
    assert stub["__all__"][1] == aio.__all__


@pytest.fixture
def names():
    made = []

    def make():
        made.append(unique("stub"))
        return made[-1]
    yield make
    for n in made:
        try:
            shmkit.Segment.remove(n)
        except FileNotFoundError:
            pass


def exports_buffer(obj):
    try:
        memoryview(obj).release()
        return True
    except TypeError:
        return False


def test_buffer_classes(names):
    """__buffer__ is stubbed exactly on the classes whose instances export
    a buffer (on the instances one can make here)."""
    seen = []

    def check(obj):
        stub = STUB[type(obj).__name__][1]
        assert ("__buffer__" in stub.names) == exports_buffer(obj), type(obj).__name__
        assert ("__buffer__" in stub.names) == ("__release_buffer__" in stub.names)
        seen.append(type(obj).__name__)

    with shmkit.Segment.create(names(), 4096) as seg:
        check(seg)
        sem = shmkit.Semaphore(seg, 0, init=0)
        check(sem)
        sem.close()
    with shmkit.Channel.create(names()) as ch:
        check(ch)
        check(ch.messages(timeout=0))
        loan = ch.reserve(timeout=0)
        check(loan)
        loan.commit(1)
        msg = ch.peek(timeout=0)
        check(msg)
        msg.release()
    service = names()
    with shmkit.RpcServer.create(service) as srv, shmkit.RpcClient.open(service) as cl:
        check(srv)
        check(cl)
        cl.send(b"q")
        req = srv.recv(timeout=WAIT)
        check(req)
        req.respond(b"a")
        cl.wait(timeout=WAIT).release()
    assert {"Segment", "Loan", "Message", "Request"} <= set(seen)


# ---- mypy, where Debian's is installed ----

GOOD = '''
"""Uses of the shmkit API that mypy --strict must accept (never run)."""
from __future__ import annotations

import socket

import shmkit
import shmkit.aio as aio


def segment(name: str, sock: socket.socket) -> int:
    with shmkit.Segment.create(name, 4096, exclusive=True, mode=0o600) as seg:
        size: int = seg.stat()["data_size"] + seg.size + len(seg) + seg.fd
        seg.sync(0, 0, asynchronous=True)
        with shmkit.Mutex(seg, 0, init=True) as m:
            died: bool = m.owner_died or m.lock(timeout=0)
            m.consistent()
            m.unlock()
        sem = shmkit.Semaphore(seg, 64, init=1)
        sem.wait(timeout=0.5)
        sem.post()
        size += sem.value
        sem.close()
        ec = shmkit.EventCount(seg, 128, init=True)
        ec.inc()
        ec.wait(ec.value, timeout=1)
        seg.send_fd(sock)
    shmkit.Segment.remove(name)
    with shmkit.Channel.attach(shmkit.Segment.recv_fd(sock, noseal=True)) as ch:
        ch.send(b"x")
    return size + died


def channel(name: str) -> list[bytes]:
    out: list[bytes] = []
    with shmkit.Channel.create(name, capacity=8, max_msg=256, wait=shmkit.WAIT_SPIN) as ch:
        ch.send(b"x", timeout=None)
        ch.send(bytearray(3), 0.5)
        n: int = ch.recv_into(bytearray(256))
        out.append(ch.recv(timeout=n))
        with ch.reserve(timeout=1.0) as loan:
            loan.commit(len(loan))
        with ch.peek() as msg:
            out.append(msg.tobytes())
        it: shmkit.Iterator[bytes] = ch.messages(timeout=0)
        out.extend(it)
        for m in ch:
            out.append(m)
        fd: int = ch.fileno(events=shmkit.POLLOUT)
        ch.ack()
        out.append(bytes(ch.stats()["depth"] + fd))
    return out


def bus(name: str) -> int:
    with shmkit.Bus.create(name, delivery=shmkit.BACKPRESSURE, max_subscribers=4) as b:
        with b.subscribe(from_oldest=True) as sub:
            b.publish(b"x")
            with b.loan() as loan:
                loan.commit(1)
            got: bytes = sub.recv(timeout=1)
            with sub.peek() as m:
                lost: int = sub.lost + sub.last_lost + m.lost + len(got)
        return lost + b.stats()["subscribers"] + b.peers()[0]["lag"]


def rpc(name: str) -> bytes:
    with shmkit.RpcServer.create(name, depth=4) as srv, \\
            shmkit.RpcClient.open(name, timeout=1) as cl:
        cid: int = cl.send(b"q", idempotent=True)
        req = srv.recv(timeout=1)
        if not req.abandoned() and req.flags & shmkit.RPC_IDEMPOTENT:
            req.respond(b"a", status=0)
        with cl.wait(cid) as resp:
            status: int = resp.status + resp.id
        cid = cl.loan().commit(1, timeout=2.0)
        for r in srv.requests(timeout=0):
            with r.loan() as rl:
                rl.commit(0)
        cl.cancel(cid)
        alive: int = cl.peers()[0]["alive"] + srv.stats()["in_flight"] + status
        return cl.call(b"x", timeout=5) + bytes(alive)


def journal(path: str) -> int:
    with shmkit.Journal.open(path, create=True, durability=shmkit.DUR_SYNC) as j:
        seq: int = j.append(b"r")
        j.sync()
    with shmkit.JournalReader.open(path) as rd:
        rd.seek(1)
        rd.seek(time_ns=0)
        rec = rd.read()
        if rec is not None:
            seq += rec.seq + rec.time_ns + len(rec.data)
        for r in rd:
            seq += r.seq
        for r in rd.tail(follow=True, timeout=0.1):
            seq += r[0]
    report = shmkit.journal_verify(path)
    if not report.clean:
        seq += shmkit.journal_repair(path).dropped_records
    shmkit.journal_remove(path)
    return seq


def misc(name: str) -> str:
    kinds = [st["kind"] for st in shmkit.list()]
    try:
        kinds.append(shmkit.stat(name)["kind"])
    except shmkit.CorruptError as e:
        return shmkit.strerror(e.errno)
    return shmkit.__version__ + str(kinds.count(shmkit.KIND_CHAN))


async def asyncio_uses(ch: shmkit.Channel, sub: shmkit.Subscription, cl: shmkit.RpcClient,
                       srv: shmkit.RpcServer, rd: shmkit.JournalReader) -> bytes:
    data: bytes = await aio.recv(ch, timeout=1)
    await aio.send(ch, data)
    async for m in aio.messages(sub, 0.1):
        data += m
    data += await aio.call(cl, b"q", idempotent=True, timeout=1)
    msg = await aio.wait(cl, 0)
    msg.release()
    req = await aio.request(srv)
    req.respond(data)
    async for r in aio.requests(srv, timeout=0.1):
        r.respond(b"")
    rec = await aio.read(rd)
    async for rec in aio.records(rd, 0.5):
        data += rec.data
    return data


async def method_uses(ch: shmkit.Channel, sub: shmkit.Subscription, cl: shmkit.RpcClient,
                      srv: shmkit.RpcServer, rd: shmkit.JournalReader) -> bytes:
    data: bytes = await ch.recv_async(timeout=1)
    await ch.send_async(data)
    data += await sub.recv_async()
    async for m in sub:
        data += m
    async for m in ch:
        data += m
    data += await cl.call_async(b"q", idempotent=True, timeout=1)
    msg = await cl.wait_async(0)
    msg.release()
    req = await srv.recv_async(0.5)
    req.respond(data)
    async for r in srv:
        r.respond(b"")
    rec = await rd.read_async()
    async for rec in rd:
        data += rec.data
    return data
'''

# Each line a misuse the stubs must reject: (code, what mypy says).
BAD = [
    ('shmkit.Channel.open("x").send(1)', "arg-type"),
    ('s: str = shmkit.Channel.open("x").recv()', "assignment"),
    ('shmkit.Segment.create("x")', "call-arg"),
    ('shmkit.Bus.open("x").no_such()', "attr-defined"),
    ('shmkit.Channel.open("x").reserve().commit(1, idempotent=True)', "call-arg"),
    ('s2: str = shmkit.RpcClient.open("x").loan().commit(1)', "assignment"),
    ('i: int = shmkit.JournalReader.open("x").read()', "assignment"),
    ('shmkit.Mutex(shmkit.Segment.open("x"), init=1.5)', "arg-type"),
    ('shmkit.POLLIN = 3', "misc"),
    ('b: bytes = shmkit.RpcServer.open("x").recv_async()', "assignment"),
]


def mypy(tmp_path, code):
    f = tmp_path / "example.py"
    f.write_text(code)
    env = dict(os.environ, MYPYPATH=os.path.dirname(PKG))
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--show-error-codes",
                           "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                           str(f)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def need_mypy():
    r = subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True)
    if r.returncode != 0:
        pytest.skip("mypy is not installed (Debian: python3-mypy)")


def test_mypy_strict_accepts_the_api(tmp_path):
    need_mypy()
    r = mypy(tmp_path, GOOD)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_rejects_misuse(tmp_path):
    need_mypy()
    code = "import shmkit\n" + "".join(line + "\n" for line, _ in BAD)
    r = mypy(tmp_path, code)
    assert r.returncode == 1, r.stdout + r.stderr
    errors = {}
    for line in r.stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[2].strip() == "error":
            errors.setdefault(int(parts[1]), []).append(parts[3])
    for i, (line, code) in enumerate(BAD, start=2):
        assert any("[%s]" % code in e for e in errors.get(i, [])), (line, r.stdout)
    assert set(errors) == set(range(2, 2 + len(BAD))), r.stdout
