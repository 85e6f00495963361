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
