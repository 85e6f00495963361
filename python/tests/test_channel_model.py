"""A channel against a model (property-based, stateful; Debian's
python3-hypothesis): random sequences of send, try_recv, reserve/commit/
abort, peek/release, oversize sends and handle close/reopen on a small
MPMC channel, with two producer handles and one consumer handle, checked
step by step against a plain model of the positions (include/shmkit.h and
src/chan_msg.c's protocol):
  - each send or reservation claims the next position; the channel is full
    when the position one capacity back is not free yet (queued, being
    written or being read);
  - the consumer takes positions in order, skips aborted ones, and sees
    "empty" at a position still being written (a reservation blocks what
    was sent after it until it is committed or aborted);
  - a handle closed with a reservation aborts it, with a peek consumes it;
  - stats() counters sent, received and aborted match the model's.
Hypothesis runs without a database (no .hypothesis directory is left) and
without deadlines (nothing is timed)."""
import errno

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import settings, strategies as st  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,  # noqa: E402
                                 precondition, rule)

import shmkit  # noqa: E402
from conftest import unique  # noqa: E402

CAP = 4
MAX = 16
payload = st.binary(min_size=0, max_size=MAX)


class ChannelModel(RuleBasedStateMachine):
    @initialize()
    def make(self):
        self.name = unique("model")
        self.ch = {"p0": shmkit.Channel.create(self.name, capacity=CAP, max_msg=MAX,
                                               exclusive=True)}
        self.ch["p1"] = shmkit.Channel.open(self.name)
        self.ch["rx"] = shmkit.Channel.open(self.name)
        self.slots = {}          # position -> ("msg", data) | ("writing",) | ("reading",)
        self.head = self.tail = 0
        self.loans = {}          # producer -> (position, Loan)
        self.peeked = None       # (position, Message, data)
        self.sent = self.received = self.aborted = 0

    def teardown(self):
        if not hasattr(self, "ch"):
            return
        self.loans.clear()
        self.peeked = None
        for h in self.ch.values():
            h.close()
        shmkit.Segment.remove(self.name)

    # ---- the model ----

    def full(self):
        return self.tail - CAP in self.slots

    def next_msg(self):
        """The position the consumer takes next, or None (empty)."""
        h = self.head
        while h < self.tail and h not in self.slots:
            h += 1               # aborted positions are skipped
        self.head = h
        if h < self.tail and self.slots[h][0] == "msg":
            return h
        return None

    def claim(self, state):
        self.slots[self.tail] = state
        self.tail += 1
        return self.tail - 1

    # ---- producers ----

    @rule(who=st.sampled_from(["p0", "p1"]), data=payload)
    def send(self, who, data):
        if who in self.loans:
            with pytest.raises(OSError) as ei:
                self.ch[who].send(data, timeout=0)
            assert ei.value.errno == errno.EINVAL
        elif self.full():
            with pytest.raises(BlockingIOError):
                self.ch[who].send(data, timeout=0)
        else:
            self.ch[who].send(data, timeout=0)
            self.claim(("msg", data))
            self.sent += 1

    @rule(who=st.sampled_from(["p0", "p1"]), n=st.integers(MAX + 1, 2 * MAX))
    def send_too_big(self, who, n):
        with pytest.raises(OSError) as ei:
            self.ch[who].send(b"x" * n, timeout=0)
        assert ei.value.errno in (errno.EMSGSIZE, errno.EINVAL)

    @rule(who=st.sampled_from(["p0", "p1"]))
    def reserve(self, who):
        if who in self.loans:
            with pytest.raises(OSError):
                self.ch[who].reserve(timeout=0)
        elif self.full():
            with pytest.raises(BlockingIOError):
                self.ch[who].reserve(timeout=0)
        else:
            loan = self.ch[who].reserve(timeout=0)
            assert len(loan) == MAX
            self.loans[who] = (self.claim(("writing",)), loan)

    @precondition(lambda self: self.loans)
    @rule(data=st.data(), payload=payload)
    def commit(self, data, payload):
        who = data.draw(st.sampled_from(sorted(self.loans)))
        pos, loan = self.loans.pop(who)
        memoryview(loan)[:len(payload)] = payload
        loan.commit(len(payload))
        assert not loan.live
        self.slots[pos] = ("msg", payload)
        self.sent += 1

    @precondition(lambda self: self.loans)
    @rule(data=st.data())
    def abort(self, data):
        who = data.draw(st.sampled_from(sorted(self.loans)))
        pos, loan = self.loans.pop(who)
        loan.abort()
        del self.slots[pos]
        self.aborted += 1

    # ---- the consumer ----

    @rule()
    def try_recv(self):
        if self.peeked:
            with pytest.raises(OSError) as ei:
                self.ch["rx"].recv(timeout=0)
            assert ei.value.errno == errno.EINVAL
            return
        pos = self.next_msg()
        if pos is None:
            with pytest.raises(BlockingIOError):
                self.ch["rx"].recv(timeout=0)
            return
        assert self.ch["rx"].recv(timeout=0) == self.slots.pop(pos)[1]
        self.head = pos + 1
        self.received += 1

    @precondition(lambda self: self.peeked is None)
    @rule()
    def peek(self):
        pos = self.next_msg()
        if pos is None:
            with pytest.raises(BlockingIOError):
                self.ch["rx"].peek(timeout=0)
            return
        msg = self.ch["rx"].peek(timeout=0)
        data = self.slots[pos][1]
        assert bytes(msg) == data
        self.slots[pos] = ("reading",)
        self.head = pos + 1
        self.peeked = (pos, msg)

    @precondition(lambda self: self.peeked is not None)
    @rule()
    def release(self):
        pos, msg = self.peeked
        msg.release()
        del self.slots[pos]
        self.peeked = None
        self.received += 1

    # ---- handles ----

    @rule(who=st.sampled_from(["p0", "p1", "rx"]))
    def close_reopen(self, who):
        self.ch[who].close()
        if who in self.loans:                   # the close aborted it
            pos, loan = self.loans.pop(who)
            assert not loan.live
            del self.slots[pos]
            self.aborted += 1
        if who == "rx" and self.peeked:         # the close consumed it
            pos, msg = self.peeked
            assert not msg.live
            del self.slots[pos]
            self.peeked = None
            self.received += 1
        self.ch[who] = shmkit.Channel.open(self.name)

    @invariant()
    def counters(self):
        if not hasattr(self, "ch"):
            return
        s = self.ch["rx"].stats()
        assert (s["sent"], s["received"], s["aborted"]) == (self.sent, self.received,
                                                             self.aborted)


ChannelModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None, database=None)
test_channel_against_model = ChannelModel.TestCase
