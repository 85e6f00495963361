"""Owned channel handles and journal replicas through the binding: the C
API's owner tokens (shmkit_chan_opts.owner, commit_tag, owner_tag,
peek_pos) and shmkit_journal_append_at / set_copy_of, as the bridge uses
them.  A process killed holding an owned peek loses nothing: the message
goes to nobody else and comes back to the owner's next handle."""
import errno
import os

import pytest

import shmkit
from conftest import WAIT
from test_kill import held, kill

OWNER_PEEKS = """
import sys, time, shmkit
ch = shmkit.Channel.open(sys.argv[1], owner=int(sys.argv[2]))
m = ch.peek(timeout=10)
print("held", flush=True)
time.sleep(1000)
"""


def test_owned_peek_survives_its_process(name):
    with shmkit.Channel.create(name, capacity=8, max_msg=32) as tx:
        tx.send(b"held by the owner", timeout=WAIT)
        tx.send(b"for anyone", timeout=WAIT)
        kill(held(OWNER_PEEKS, name, 77))
        with shmkit.Channel.open(name) as other:
            # the dead owner's message goes to nobody else
            assert other.recv(timeout=WAIT) == b"for anyone"
            with pytest.raises(BlockingIOError):
                other.recv(timeout=0)
        with shmkit.Channel.open(name, owner=77) as rx:
            m = rx.peek(timeout=0)
            assert bytes(m) == b"held by the owner"
            assert rx.peek_pos() == 0
            m.release()
            with pytest.raises(BlockingIOError):
                rx.recv(timeout=0)


def test_owner_is_one_live_handle(name):
    with shmkit.Channel.create(name, owner=5) as a:
        with pytest.raises(OSError) as ei:
            shmkit.Channel.open(name, owner=5)
        assert ei.value.errno == errno.EBUSY
        with shmkit.Channel.open(name, owner=6) as b:
            assert b.owner_tag() == 0
        assert a.owner_tag() == 0
    with shmkit.Channel.create(name + "s", spsc=True) as s:
        try:
            with pytest.raises(OSError) as ei:
                shmkit.Channel.open(name + "s", owner=5)
            assert ei.value.errno == errno.EINVAL
        finally:
            shmkit.Segment.remove(name + "s")


def test_commit_tag_and_positions(name):
    with shmkit.Channel.create(name, capacity=8, max_msg=16, owner=9) as tx:
        with pytest.raises(OSError):
            tx.reserve_pos()   # no loan open
        for i in range(3):
            loan = tx.reserve(timeout=WAIT)
            assert tx.reserve_pos() == i
            memoryview(loan)[:1] = b"%d" % i
            loan.commit(1, tag=100 + i)
            assert tx.owner_tag() == 100 + i
        loan = tx.reserve(timeout=WAIT)
        loan.commit(1)         # untagged: the record keeps the last tag
        assert tx.owner_tag() == 102
        tx.disown()
        with pytest.raises(OSError) as ei:
            tx.owner_tag()
        assert ei.value.errno == errno.EINVAL
    with shmkit.Channel.open(name) as plain:
        loan = plain.reserve(timeout=WAIT)
        with pytest.raises(OSError) as ei:
            loan.commit(1, tag=1)   # a tag needs an owner
        assert ei.value.errno == errno.EINVAL
        loan.abort()


def test_journal_replica_seqs_stamps_holes_identity(tmpdir_sk):
    lead, copy = os.path.join(tmpdir_sk, "lead"), os.path.join(tmpdir_sk, "copy")
    with shmkit.Journal.open(lead, create=True) as w:
        for i in range(3):
            w.append(b"r%d" % i)
        lid = w.stat()["id"]
        assert lid != 0 and w.stat()["copy_of"] == 0
    with shmkit.Journal.open(copy, create=True) as c:
        assert c.stat()["id"] not in (0, lid)
        c.set_copy_of(lid)
        c.set_copy_of(lid)      # the same again: fine
        with pytest.raises(FileExistsError):
            c.set_copy_of(lid + 1)
        c.append_at(5, 1000, b"five")       # an empty journal starts anywhere
        c.append_at(8, 2000, b"eight")      # 6 and 7: a hole
        with pytest.raises(FileExistsError):
            c.append_at(8, 3000, b"again")
        st = c.stat()
        assert (st["first_seq"], st["last_seq"], st["copy_of"]) == (5, 8, lid)
    with shmkit.JournalReader.open(copy) as r:
        assert [(x.seq, x.time_ns, x.data) for x in r] == [(5, 1000, b"five"), (8, 2000, b"eight")]
    assert shmkit.journal_verify(copy).holes >= 1


def test_channel_open_takes_every_keyword(name):
    # The keyword format once had one 'p' too many: wait= was read as a
    # bool and timeout= wrote through a function pointer (a crash).
    with shmkit.Channel.create(name, capacity=4, max_msg=16, mode=0o600, exclusive=True,
                               spsc=False, populate=True, mlock=False,
                               wait=shmkit.WAIT_BLOCK, timeout=0.5, owner=3) as tx:
        with shmkit.Channel.open(name, readonly=False, populate=False, mlock=False,
                                 wait=shmkit.WAIT_SPIN, timeout=1) as rx:
            tx.send(b"k", timeout=WAIT)
            assert rx.recv(timeout=WAIT) == b"k"
