"""The binding follows the C API: every public function of shmkit.h is
called by the module (python/src) but for the few listed below, and
every field of the C structs the module returns as dicts is a key of
them.  A service that grows a function or a statistic fails here until
the binding (and its stubs, test_stubs.py) grows it too."""
import os
import re
import tempfile

import shmkit
from conftest import unique

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = open(os.path.join(ROOT, "include", "shmkit.h")).read()

# Public C functions Python has its own way for, and why.
NOT_BOUND = {
    "shmkit_parse_size": "sizes are Python ints",
    "shmkit_futex_wait": "EventCount is the binding's futex",
    "shmkit_futex_wake": "EventCount is the binding's futex",
    "shmkit_crc32c": "a checksum helper, not a service",
    "shmkit_rpc_call": "RpcClient.call is send + wait + copy (cancellable between)",
    "shmkit_rpc_respond": "Request.respond uses respond_status (status=0)",
}


def test_every_public_function_is_bound():
    api = set(re.findall(r"\b(shmkit_[a-z0-9_]+)\s*\(", HEADER))
    src = os.path.join(ROOT, "python", "src")
    used = set()
    for f in os.listdir(src):
        if f.endswith(".c"):
            with open(os.path.join(src, f)) as fh:
                code = re.sub(r"/\*.*?\*/", "", fh.read(), flags=re.S)
                # called, or passed as a function pointer
                used |= set(re.findall(r"\b(shmkit_[a-z0-9_]+)\b", code))
    assert sorted(api - used - set(NOT_BOUND)) == [], "C functions without a binding"
    assert sorted(set(NOT_BOUND) - api) == [], "listed but no longer in shmkit.h"


def fields(struct):
    """The member names of struct `struct` in shmkit.h."""
    body = re.search(r"struct %s \{(.*?)\n\};" % struct, HEADER, re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    out = set()
    for decl in filter(None, (d.strip() for d in body.split(";"))):
        parts = re.split(r"\s*,\s*", decl)
        for n in [parts[0].split()[-1]] + parts[1:]:
            out.add(re.sub(r"\[.*", "", n.strip("* ")))
    return out


def test_every_statistic_is_a_key(name):
    with shmkit.Segment.create(name, 4096) as seg:
        assert fields("shmkit_seg_info") == set(seg.stat())
    shmkit.Segment.remove(name)
    with shmkit.Channel.create(name, capacity=4, max_msg=16) as ch:
        ch.send(b"x")
        assert fields("shmkit_chan_stats") == set(ch.stats())
        assert fields("shmkit_chan_peer") == set(ch.peers()[0])
    shmkit.Segment.remove(name)
    with shmkit.Bus.create(name, capacity=4, max_msg=16) as bus, bus.subscribe():
        assert fields("shmkit_bus_stats") == set(bus.stats())
        assert fields("shmkit_bus_peer") == set(bus.peers()[0])
    shmkit.Segment.remove(name)
    with shmkit.RpcServer.create(name) as srv, shmkit.RpcClient.open(name) as cli:
        assert fields("shmkit_rpc_stats") == set(srv.stats())
        cli.send(b"q")
        srv.recv(timeout=10).respond(b"a")
        assert fields("shmkit_rpc_peer") == set(srv.peers()[0])
    d = tempfile.mkdtemp(prefix=unique("cov") + "-")
    try:
        path = os.path.join(d, "j")
        with shmkit.Journal.open(path, create=True) as j:
            j.append(b"x")
            assert fields("shmkit_journal_stats") == set(j.stat())
        report = shmkit.journal_verify(path)
        assert fields("shmkit_journal_report") <= set(dir(report))
        with shmkit.JournalReader.open(path) as r:
            # len: len(record.data)
            assert fields("shmkit_record") - {"len"} <= set(dir(r.read()))
        shmkit.journal_remove(path)
    finally:
        os.rmdir(d)
