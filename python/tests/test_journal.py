"""Journal: append, read, follow, seek, fd, another process."""
import errno
import os
import select

import pytest

import shmkit
from conftest import WAIT, finish, spawn


def jpath(d):
    return os.path.join(d, "j")


def test_append_read(tmpdir_sk):
    path = jpath(tmpdir_sk)
    with shmkit.Journal.open(path, create=True, durability=shmkit.DUR_NONE) as w:
        assert [w.append(b"r%d" % i) for i in range(5)] == [1, 2, 3, 4, 5]
        w.sync()
        assert w.stat()["last_seq"] == 5
        with pytest.raises(OSError) as ei:
            shmkit.Journal.open(path)   # one writer at a time
        assert ei.value.errno == errno.EBUSY
    with shmkit.JournalReader.open(path) as r:
        recs = list(r)
        assert [x.seq for x in recs] == [1, 2, 3, 4, 5]
        assert [x.data for x in recs] == [b"r%d" % i for i in range(5)]
        assert r.read() is None
        with pytest.raises(TimeoutError):
            r.read(timeout=0.05)
        r.seek(3)
        assert r.read().data == b"r2"
        r.seek(time_ns=recs[4].time_ns)
        assert r.read().seq == 5
    shmkit.Journal.remove(path)
    with pytest.raises(FileNotFoundError):
        shmkit.JournalReader.open(path)


WRITER = """
import sys, shmkit
with shmkit.Journal.open(sys.argv[1]) as w:
    for i in range(int(sys.argv[2])):
        w.append(b"%d" % i)
"""


def test_follow_other_process(tmpdir_sk):
    path = jpath(tmpdir_sk)
    n = 200
    shmkit.Journal.open(path, create=True).close()
    with shmkit.JournalReader.open(path) as r:
        fd = r.fileno()
        p = spawn(WRITER, path, n)
        got = [int(rec.data) for _, rec in zip(range(n), r.follow(timeout=WAIT))]
        finish(p)
        assert got == list(range(n))
        r.ack()
        assert r.read() is None
        assert fd >= 0
    shmkit.Journal.remove(path)


def test_fd_signals_new_records(tmpdir_sk):
    path = jpath(tmpdir_sk)
    with shmkit.Journal.open(path, create=True) as w, shmkit.JournalReader.open(path) as r:
        fd = r.fileno()
        assert select.select([fd], [], [], WAIT)[0] == [fd]   # readable at once first
        r.ack()
        assert list(r) == []
        w.append(b"new")
        assert select.select([fd], [], [], WAIT)[0] == [fd]
        r.ack()
        assert [x.data for x in r] == [b"new"]
    shmkit.Journal.remove(path)


def test_tail(tmpdir_sk):
    path = jpath(tmpdir_sk)
    with shmkit.Journal.open(path, create=True) as w, shmkit.JournalReader.open(path) as r:
        for i in range(3):
            w.append(b"a%d" % i)
        assert [x.data for x in r.tail()] == [b"a0", b"a1", b"a2"]   # to the end
        assert list(r.tail()) == []
        w.append(b"b")
        r.seek(2)
        assert [x.seq for x in r.tail(follow=True, timeout=0.05)] == [2, 3, 4]
    shmkit.journal_remove(path)
    assert not os.path.exists(path)


def test_tail_follow_other_process(tmpdir_sk):
    path = jpath(tmpdir_sk)
    n = 50
    shmkit.Journal.open(path, create=True).close()
    with shmkit.JournalReader.open(path) as r:
        p = spawn(WRITER, path, n)
        got = []
        for rec in r.tail(follow=True, timeout=WAIT):
            got.append(int(rec.data))
            if len(got) == n:
                break
        finish(p)
        assert got == list(range(n))
    shmkit.journal_remove(path)


def test_verify_repair(tmpdir_sk):
    path = jpath(tmpdir_sk)
    with shmkit.Journal.open(path, create=True) as w:
        for i in range(5):
            w.append(b"record-%d" % i)
    rep = shmkit.journal_verify(path)
    assert rep.clean and rep.valid_records == 5 and rep.last_valid_seq == 5
    assert rep.dropped_records == 0 and rep.where == ""
    # Damage the payload of record 2 (records after it stay intact).
    data = sorted(f for f in os.listdir(path) if f.endswith(".skj"))[0]
    with open(os.path.join(path, data), "r+b") as f:
        raw = f.read(4096)
        off = raw.index(b"record-1")
        f.seek(off)
        f.write(b"XXXXXX")
    rep = shmkit.journal_verify(path)
    assert not rep.clean and rep.dropped_records == 1
    assert rep.dropped_first_seq == rep.dropped_last_seq == 2 and rep.dropped == "2"
    assert rep.where and rep.valid_records == 4
    with shmkit.JournalReader.open(path) as r:
        with pytest.raises(shmkit.CorruptError):
            list(r)
    rep = shmkit.journal_repair(path)
    assert rep.clean and rep.dropped_records == 1
    rep = shmkit.journal_verify(path)
    assert rep.clean and rep.holes == 1 and rep.hole_records == 1
    with shmkit.JournalReader.open(path) as r:
        assert [x.seq for x in r] == [1, 3, 4, 5]
    with pytest.raises(FileNotFoundError):
        shmkit.journal_verify(os.path.join(tmpdir_sk, "none"))
    shmkit.journal_remove(path)


def test_repair_refuses_live_writer(tmpdir_sk):
    path = jpath(tmpdir_sk)
    with shmkit.Journal.open(path, create=True) as w:
        w.append(b"x")
        with pytest.raises(OSError) as ei:
            shmkit.journal_repair(path)
        assert ei.value.errno == errno.EBUSY
        with pytest.raises(OSError) as ei:
            shmkit.journal_remove(path)
        assert ei.value.errno == errno.EBUSY
    shmkit.journal_remove(path)
