#!/usr/bin/env python3
"""bench/python/bench.py - the Python binding against what Python ships
for moving data between processes, measured in the same run, interleaved
(make bench-python; --quick for CI).

Every transport connects this process to one child process of its own
(multiprocessing, fork), alive for the whole run.  Each round measures
every transport once, one after the other.  Reported as ratios against
references of the same run, never asserted (a benchmark, not a test):
the exit status is 1 only when a receiver saw wrong data or an object was
left behind.  --json prints one object per row, as shmkit-bench --json.

Transports:
  shmkit channel spin   two SPSC channels (to the child, back) whose handles
                   wait by spinning (WAIT_SPIN): copies for 64 bytes
                   (send/recv; the child echoes from peek, in place);
                   arrays written in a reservation (reserve -> numpy ->
                   commit) and read in place (peek -> numpy -> release).
                   Between its own batches its child sleeps on the
                   channel's fd (select), so that it does not take the
                   core the other transports' children run on.
  shmkit channel   the same with the default wait (WAIT_ADAPTIVE: a short
                   spin, then a futex)
  shmkit channel, one CPU   the same with the child on this process's CPU:
                   nothing crosses between cores' caches, each hand-off
                   is a context switch instead (what limits the 1 MiB rows
                   on a machine whose cores exchange lines slowly)
  shmkit channel send()  (arrays only) the sender fills its own array and
                   send()s a copy of it; read in place as above
  shmkit bus loan  two backpressure buses: every message written in a loan
                   and read in place by peek
  shmkit rpc call  (round trip only) call(); the server answers in place
  mp.Queue         multiprocessing.Queue pair: put/get (pickled)
  mp.Pipe          multiprocessing.Pipe: send_bytes/recv_bytes(_into) (no
                   pickle)
  shm + Event      multiprocessing.shared_memory.SharedMemory and two
                   multiprocessing.Event: write in place, set, wait for the
                   other side's Event (one buffer: one message in flight)
This process runs on one CPU and every child (but the one-CPU row's) on
another, when two are allowed, as shmkit-bench pins its two-process rows.

What is measured:
  64-byte round trip  ns from sending 64 bytes until the child's echo of
      them is received, averaged over a batch.  Target: a shmkit channel
      at least 10x faster than mp.Queue.
  1 MiB array         a stream of 1 MiB numpy arrays (uint64), numbered
      1, 2, ... per transport.  For every array the sender PRODUCES it -
      writes all of it with its number (ndarray.fill), in the transport's
      buffer where there is one (reservation, loan, shared block),
      otherwise in its own array (mp.Queue gets a new array each time: it
      pickles later, in a thread; mp.Pipe and send() copy one array again)
      - and hands it over; the receiver CONSUMES it - reads every word of
      it (ndarray.min) and checks that the minimum is the number it expects
      next: a word left from an older array would be smaller, so this
      proves it saw all of this array.  After the batch a 64-byte round
      trip makes sure the child consumed everything.  Rate = MiB handed
      over / elapsed.  The same work (write 1 MiB, read 1 MiB) is done for
      every transport; the zero-copy ones add no copy to it, the others one
      or more.  Because the sender writes every byte of every array, every
      cache line crosses from the sender's core to the receiver's: nothing
      is read from a cache the receiver kept from an earlier array.
      Reference: single-core memcpy bandwidth, np.copyto of 1 MiB to 1 MiB
      (hot in cache), measured in every round.  Target: shmkit's zero-copy
      rate at least 0.5x that bandwidth.  Also printed, for what limits
      it: the fill and the min of 1 MiB on one core (hot); a 2-core
      pipeline cannot beat the slower of the two; and the same across
      the two CPUs, without any transport (shm + Event's block, each
      side's own work timed): the child's fill of 1 MiB this process
      read last, then this process's min of it - how fast the two CPUs
      exchange cache lines in this run, which on a virtual machine swings
      by 20x from run to run (the one-CPU row does not).
  Interpreter per-call cost: an empty loop turn, a call of a no-op C method
      (int.bit_length of 0), the binding's cheapest entry (Channel.closed,
      a C getter), an in-process send + recv pair of 64 bytes (no other
      process, no wait): best of 5 batches, the floor that a round trip
      (two sends, two receives, two hand-offs across cores) stands on; and
      the pair with timeout=None and with timeout=0 given by keyword: a
      timed wait looks first with the GIL held (it releases it to spin or
      sleep), a try-once call releases it around the library call and
      takes it back; the difference is what that costs.
  sleeps/trip: how many times per round trip a thread of the two
      processes went to sleep in the kernel (voluntary context switches,
      /proc, read outside the timed loop).  A round trip that sleeps pays
      a wake-up on the other CPU (15-40 us on this VM): what made the
      default adaptive wait slow while both sides' learned spins had
      fallen to nothing (python/src/module.c, sk_py_spin).

Figures are medians over the rounds; a ratio is the median of the
rounds' ratios, each against the reference measured in the same round.
Object names start with shmkit-bench-py-PID- (scripts/bench.sh's residue
check sees them); everything is removed at exit.
"""
import argparse
import multiprocessing as mp
import os
import select
import statistics
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import shmkit

PING = 64
MIB = 1 << 20
WORDS = MIB // 8
PREFIX = "shmkit-bench-py-%d-" % os.getpid()
STOP = b""
PARK = b"P"
FILL = 3
CPUS = sorted(os.sched_getaffinity(0))   # before pin() narrows them


def ns():
    return time.perf_counter_ns()


def pin(i):
    """Pin to the i-th allowed CPU when two or more are allowed: the
    parent to the first, every child to the second (as shmkit-bench
    pins its two-process rows)."""
    if len(CPUS) >= 2:
        os.sched_setaffinity(0, {CPUS[i]})


class Consumer:
    """The receiver's work on an array: read every word of it (a min
    reduction) and check it is this array's value.  The sender numbers
    the arrays 1, 2, ...: a word left from an older array is smaller,
    so min == the expected number proves every word is this array's."""

    def __init__(self):
        self.expect = 1
        self.bad = False

    def __call__(self, buf):
        """buf: the array's buffer (a Message, bytes, an ndarray); no view
        of it is left behind."""
        self.bad |= int(np.frombuffer(buf, dtype=np.uint64).min()) != self.expect
        self.expect += 1


# ---- children: one per transport ----
# Each answers a 64-byte message with the same 64 bytes (64 times b"E"
# once it saw a wrong array), consumes an array of 1 MiB, stops at STOP.

def echo_of(msg, bad):
    return b"E" * PING if bad else msg


def chan_child(dname, rname, wait, cpu):
    pin(cpu)
    d, r = shmkit.Channel.open(dname, wait=wait), shmkit.Channel.open(rname, wait=wait)
    consume = Consumer()
    while True:
        m = d.peek()
        if len(m) == PING:
            r.send(echo_of(m, consume.bad))
        elif len(m) == MIB:
            consume(m)
        elif len(m) == len(PARK):
            m.release()
            park(d)
            continue
        else:
            m.release()
            break
        m.release()


def park(ch):
    """Sleep in the kernel until a message may be there: a spinning
    child must not burn the core the other transports' children use
    while they are measured."""
    fd = ch.fileno()
    while True:
        ch.ack()
        if ch.stats()["depth"]:
            return
        select.select([fd], [], [], 0.1)


def bus_child(dname, rname):
    pin(1)
    d, r = shmkit.Bus.open(dname), shmkit.Bus.open(rname)
    sub = d.subscribe()
    r.publish(b"ready")
    consume = Consumer()
    while True:
        m = sub.peek()
        if len(m) == PING:
            with r.loan() as loan:
                memoryview(loan)[:PING] = echo_of(m, consume.bad)
                loan.commit(PING)
        elif len(m) == MIB:
            consume(m)
        else:
            m.release()
            break
        m.release()


def rpc_child(name):
    pin(1)
    srv = shmkit.RpcServer.open(name)
    while True:
        req = srv.recv()
        stop = len(req) == 0
        req.respond(req)
        if stop:
            break


def queue_child(qin, qout):
    pin(1)
    consume = Consumer()
    while True:
        x = qin.get()
        if isinstance(x, bytes) and len(x) == PING:
            qout.put(echo_of(x, consume.bad))
        elif isinstance(x, np.ndarray):
            consume(x)
        else:
            break


def pipe_child(conn):
    pin(1)
    consume = Consumer()
    buf = bytearray(MIB)
    while True:
        n = conn.recv_bytes_into(buf)
        if n == PING:
            conn.send_bytes(echo_of(bytes(buf[:PING]), consume.bad))
        elif n == MIB:
            consume(buf)
        else:
            break


def shm_child(shm, go, done):
    # the block inherited across fork (attaching by name would register it
    # with the resource tracker a second time)
    pin(1)
    # [0] the length of what is there; [1] ns the last FILL took
    hdr = np.frombuffer(shm.buf, dtype=np.uint64, count=2)
    data = shm.buf[64:64 + MIB]
    consume = Consumer()
    while True:
        go.wait()
        go.clear()
        n = int(hdr[0])
        if n == PING:
            data[:PING] = echo_of(bytes(data[:PING]), consume.bad)
        elif n == MIB:
            consume(data)
        elif n == FILL:            # the cross-CPU reference: just write, timed
            start = ns()
            np.frombuffer(data, dtype=np.uint64).fill(n)
            hdr[1] = ns() - start
        else:
            done.set()
            break
        done.set()


# ---- the parent's side of each transport ----

def fill_commit(loan, v):
    """Produce array v in place in a loan (all of it), and hand it over."""
    a = np.asarray(loan).view(np.uint64)
    a.fill(v)
    del a
    loan.commit(MIB)


def close_named(handles, names):
    for h in handles:
        h.close()
    for n in names:
        shmkit.Segment.remove(n)


class Transport:
    """ping(payload) -> echo; send_array(v) hands over an array of value v;
    stop(); the child process."""
    zero_copy = False
    rt_row = True
    v = 1          # the next array's number

    def park(self):
        pass

    def sync(self, payload):
        if self.ping(payload) != payload:
            raise SystemExit("bench: %s: the child saw a wrong array" % self.label)

    def start(self, target, *args):
        self.proc = mp.get_context("fork").Process(target=target, args=args, daemon=True)
        self.proc.start()

    def finish(self):
        try:
            self.stop()
        except Exception:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)


class Chan(Transport):
    label = "shmkit channel"
    zero_copy = True
    wait = shmkit.WAIT_ADAPTIVE
    cpu = 1        # the child's CPU (pin)

    def __init__(self):
        tag = PREFIX + "%s-" % type(self).__name__
        self.names = [tag + "d", tag + "r"]
        self.d = shmkit.Channel.create(self.names[0], capacity=4, max_msg=MIB, spsc=True,
                                       exclusive=True, wait=self.wait)
        self.r = shmkit.Channel.create(self.names[1], capacity=4, max_msg=PING, spsc=True,
                                       exclusive=True, wait=self.wait)
        self.start(chan_child, *self.names, self.wait, self.cpu)

    def ping(self, payload):
        self.d.send(payload)
        return self.r.recv()

    def send_array(self, v):
        fill_commit(self.d.reserve(), v)

    def stop(self):
        self.d.send(STOP)

    def close(self):
        close_named((self.d, self.r), self.names)


class ChanSpin(Chan):
    label = "shmkit channel spin"
    wait = shmkit.WAIT_SPIN

    def park(self):
        self.d.send(PARK)


class ChanOneCpu(Chan):
    """The same, the child on this process's CPU: no cache line crosses
    between cores (each hand-off is a context switch instead)."""
    label = "shmkit channel, one CPU"
    cpu = 0


class ChanCopy(Chan):
    """Arrays sent by copy (send) into the same kind of channel; read in
    place as the others.  No round-trip row (the channel's)."""
    label = "shmkit channel send()"
    zero_copy = False
    rt_row = False

    def __init__(self):
        super().__init__()
        self.a = np.empty(WORDS, dtype=np.uint64)

    def send_array(self, v):
        self.a.fill(v)
        self.d.send(self.a)


class Bus(Transport):
    label = "shmkit bus loan"
    zero_copy = True

    def __init__(self):
        self.names = [PREFIX + "bus-d", PREFIX + "bus-r"]
        self.d = shmkit.Bus.create(self.names[0], capacity=4, max_msg=MIB, exclusive=True,
                                   delivery=shmkit.BACKPRESSURE)
        self.r = shmkit.Bus.create(self.names[1], capacity=4, max_msg=PING, exclusive=True,
                                   delivery=shmkit.BACKPRESSURE)
        self.sub = self.r.subscribe()
        self.start(bus_child, *self.names)
        if self.sub.recv(timeout=30) != b"ready":
            raise SystemExit("bench: bus child did not start")

    def publish(self, payload, length):
        with self.d.loan() as loan:
            memoryview(loan)[:len(payload)] = payload
            loan.commit(length)

    def ping(self, payload):
        self.publish(payload, PING)
        with self.sub.peek() as m:
            return bytes(m)

    def send_array(self, v):
        fill_commit(self.d.loan(), v)

    def stop(self):
        self.publish(STOP, 0)

    def close(self):
        close_named((self.sub, self.d, self.r), self.names)


class Rpc(Transport):
    label = "shmkit rpc call"

    def __init__(self):
        self.names = [PREFIX + "rpc"]
        self.c = shmkit.RpcClient.create(self.names[0], max_request=PING, max_response=PING,
                                         exclusive=True)
        self.start(rpc_child, self.names[0])

    def ping(self, payload):
        return self.c.call(payload)

    send_array = None

    def stop(self):
        self.c.call(STOP, timeout=10)

    def close(self):
        close_named((self.c,), self.names)


class Queue(Transport):
    label = "mp.Queue"

    def __init__(self):
        ctx = mp.get_context("fork")
        self.qin, self.qout = ctx.Queue(), ctx.Queue()
        self.start(queue_child, self.qin, self.qout)

    def ping(self, payload):
        self.qin.put(payload)
        return self.qout.get()

    def send_array(self, v):
        a = np.empty(WORDS, dtype=np.uint64)   # put() pickles later: a new one
        a.fill(v)
        self.qin.put(a)

    def stop(self):
        self.qin.put(None)

    def close(self):
        for q in (self.qin, self.qout):
            q.close()
            q.join_thread()


class Pipe(Transport):
    label = "mp.Pipe"

    def __init__(self):
        self.conn, child = mp.get_context("fork").Pipe()
        self.a = np.empty(WORDS, dtype=np.uint64)
        self.start(pipe_child, child)
        child.close()

    def ping(self, payload):
        self.conn.send_bytes(payload)
        return self.conn.recv_bytes()

    def send_array(self, v):
        self.a.fill(v)
        self.conn.send_bytes(self.a)

    def stop(self):
        self.conn.send_bytes(STOP)

    def close(self):
        self.conn.close()


class Shm(Transport):
    label = "shm + Event"
    zero_copy = True

    def __init__(self):
        ctx = mp.get_context("fork")
        self.shm = shared_memory.SharedMemory(name=PREFIX + "shm", create=True, size=64 + MIB)
        self.hdr = np.frombuffer(self.shm.buf, dtype=np.uint64, count=2)
        self.data = self.shm.buf[64:64 + MIB]
        self.arr = np.frombuffer(self.data, dtype=np.uint64)
        self.go, self.done = ctx.Event(), ctx.Event()
        self.start(shm_child, self.shm, self.go, self.done)

    def hand(self, n):
        self.hdr[0] = n
        self.go.set()
        self.done.wait()
        self.done.clear()

    def ping(self, payload):
        self.data[:PING] = payload
        self.hand(PING)
        return bytes(self.data[:PING])

    def send_array(self, v):
        self.arr.fill(v)
        self.hand(MIB)

    def cross(self, n):
        """MiB/s of the child, on the other CPU, writing (fill) 1 MiB this
        process read last, and of this process then reading (min) it:
        each side's own work timed, no hand-over."""
        wrote = read = 0
        for _ in range(n):
            self.hand(FILL)
            start = ns()
            self.arr.min()
            read += ns() - start
            wrote += int(self.hdr[1])
        return n * 1e9 / wrote, n * 1e9 / read

    def stop(self):
        self.hdr[0] = 0
        self.go.set()

    def close(self):
        del self.hdr, self.arr
        self.data.release()
        self.shm.close()
        self.shm.unlink()


# ---- measurements ----

def sleeps(pids):
    """Voluntary context switches (the times a thread went to sleep in
    the kernel) of every thread of the processes pids, so far."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tasks:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            total += int(line.split()[1])
            except OSError:
                pass
    return total


def round_trip(t, n):
    """ns per round trip, and how many times per round trip the two
    processes went to sleep (read outside the timed loop)."""
    payload = bytes(range(PING))
    pids = (os.getpid(), t.proc.pid)
    before = sleeps(pids)
    start = ns()
    for _ in range(n):
        if t.ping(payload) != payload:
            raise SystemExit("bench: %s: wrong echo" % t.label)
    took = (ns() - start) / n
    return took, (sleeps(pids) - before) / n


def arrays(t, n):
    """MiB/s of n arrays handed over and consumed."""
    start = ns()
    for _ in range(n):
        t.send_array(t.v)
        t.v += 1
    t.sync(bytes(PING))
    return n * MIB / ((ns() - start) / 1e9) / MIB


def memcpy_rate(n):
    src = np.full(WORDS, 7, dtype=np.uint64)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start = ns()
    for _ in range(n):
        np.copyto(dst, src)
    return n * MIB / ((ns() - start) / 1e9) / MIB


def local_rates(n):
    """Fill and min of 1 MiB on this core, MiB/s."""
    a = np.empty(WORDS, dtype=np.uint64)
    a.fill(1)
    start = ns()
    for i in range(n):
        a.fill(i)
    fill = n / ((ns() - start) / 1e9)
    start = ns()
    for i in range(n):
        a.min()
    return fill, n / ((ns() - start) / 1e9)


def best(n, body):
    """ns per turn of body(range), the best of 5 batches of n/5: the
    cost of the calls themselves, without the preemptions a loaded
    machine adds to some batches."""
    r = range(max(n // 5, 1))
    out = []
    for _ in range(5):
        start = ns()
        body(r)
        out.append((ns() - start) / len(r))
    return min(out)


def per_call(n):
    """ns per: empty loop turn, no-op C method call, a Channel attribute
    read through its C getter, and an in-process 64-byte send + recv pair."""
    def loop(r):
        for _ in r:
            pass

    def c_call(r, f=(0).bit_length):
        for _ in r:
            f()
    out = {"loop": best(n, loop), "c_call": best(n, c_call)}
    name = PREFIX + "calls"
    with shmkit.Channel.create(name, capacity=4, max_msg=PING, exclusive=True) as ch:
        def getter(r):
            for _ in r:
                ch.closed

        def send_recv(r, send=ch.send, recv=ch.recv, p=bytes(PING)):
            for _ in r:
                send(p)
                recv()

        def send_recv_kw(r, send=ch.send, recv=ch.recv, p=bytes(PING)):
            for _ in r:       # the same, the timeout given by keyword
                send(p, timeout=None)
                recv(timeout=None)

        def send_recv_t0(r, send=ch.send, recv=ch.recv, p=bytes(PING)):
            for _ in r:       # timeout=0: the call releases the GIL and takes it back
                send(p, timeout=0)
                recv(timeout=0)
        out["getter"] = best(n, getter)
        out["send_recv"] = best(n, send_recv)
        out["send_recv_kw"] = best(n, send_recv_kw)
        out["send_recv_gil"] = best(n, send_recv_t0)
    shmkit.Segment.remove(name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, small batches (CI)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--json", action="store_true",
                    help="one JSON object per row, as shmkit-bench --json (ratio = value / ref)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 7)
    n_rt = 300 if args.quick else 5000
    n_arr = 20 if args.quick else 200

    transports = []
    try:
        pin(0)
        for cls in (ChanSpin, Chan, ChanOneCpu, ChanCopy, Bus, Rpc, Queue, Pipe, Shm):
            transports.append(cls())
        rt = {t.label: [] for t in transports}
        slept = {t.label: [] for t in transports}
        bw = {t.label: [] for t in transports if t.send_array}
        ref, fills, mins, calls, cross_w, cross_r = [], [], [], [], [], []
        for t in transports:                       # warm up
            round_trip(t, n_rt // 10 + 1)
            if t.send_array:
                arrays(t, 4)
            t.park()
        for _ in range(rounds):
            ref.append(memcpy_rate(n_arr))
            f, s = local_rates(n_arr)
            fills.append(f)
            mins.append(s)
            w, r = transports[-1].cross(n_arr)
            cross_w.append(w)
            cross_r.append(r)
            calls.append(per_call(n_rt * 4))
            for t in transports:
                if t.rt_row:
                    took, s = round_trip(t, n_rt)
                    rt[t.label].append(took)
                    slept[t.label].append(s)
                if t.send_array:
                    bw[t.label].append(arrays(t, n_arr))
                t.park()
    finally:
        for t in transports:
            t.finish()
            t.close()
        left = [e for e in os.listdir("/dev/shm") if e.startswith(PREFIX)]
        if left:
            print("bench: LEFT BEHIND in /dev/shm: " + " ".join(left), file=sys.stderr)
            sys.exit(1)

    cross = (cross_w, cross_r)
    if args.json:
        report_json(transports, rt, bw, ref, fills, mins, calls, cross)
    else:
        report(transports, rounds, rt, slept, bw, ref, fills, mins, calls, cross)


def slug(label):
    """A row name from a label: "shm + Event" -> "shm_event"."""
    return "_".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


def report_json(transports, rt, bw, ref, fills, mins, calls, cross):
    """The rows as shmkit-bench --json prints them: name, value, unit,
    p99 (null: medians of rounds only), ratio = the median of the rounds'
    value / ref, ref."""
    import json
    med = statistics.median

    def row(name, xs, unit, refname=None, refs=None):
        r = med([x / y for x, y in zip(xs, refs)]) if refs else None
        print(json.dumps({"name": name, "value": round(med(xs), 4), "unit": unit, "p99": None,
                          "ratio": None if r is None else round(r, 4), "ref": refname},
                         separators=(",", ":")))
    q = rt["mp.Queue"]
    for t in transports:
        if t.rt_row:
            row("py_rtt_" + slug(t.label), rt[t.label], "ns", "py_rtt_mp_queue", q)
    row("py_memcpy_1m", ref, "MiB/s")
    for t in transports:
        if t.send_array:
            row("py_1m_" + slug(t.label), bw[t.label], "MiB/s", "py_memcpy_1m", ref)
    row("py_fill_1m", fills, "MiB/s", "py_memcpy_1m", ref)
    row("py_min_1m", mins, "MiB/s", "py_memcpy_1m", ref)
    row("py_fill_1m_cross_cpu", cross[0], "MiB/s", "py_memcpy_1m", ref)
    row("py_min_1m_cross_cpu", cross[1], "MiB/s", "py_memcpy_1m", ref)
    for k in calls[0]:
        row("py_call_" + k, [d[k] for d in calls], "ns")


def report(transports, rounds, rt, slept, bw, ref, fills, mins, calls, cross):
    """Figures: medians over the rounds; ratios: the median of the
    rounds' ratios (each against a reference of the same round)."""
    med = statistics.median

    def ratio(xs, refs):
        return med([x / r for x, r in zip(xs, refs)])
    q = rt["mp.Queue"]
    print("shmkit Python binding vs multiprocessing (python %d.%d, numpy %s): %d rounds, "
          "interleaved;\nfigures are medians of the rounds, ratios the medians of each "
          "round's ratio" % (sys.version_info[0], sys.version_info[1], np.__version__, rounds))
    print()
    print("64-byte round trip (to a child process and back)         ns   vs mp.Queue"
          "   sleeps/trip")
    for t in transports:
        if t.rt_row:
            print("  %-30s %12.0f   %7.1fx faster %9.2f" % (t.label, med(rt[t.label]),
                                                           ratio(q, rt[t.label]),
                                                           med(slept[t.label])))
    print()
    print("1 MiB numpy arrays (sender writes all, receiver reads all)  MiB/s   vs memcpy")
    print("  %-30s %12.0f   %7.2fx   np.copyto 1 MiB, one core" % ("memcpy", med(ref), 1.0))
    for t in transports:
        if t.send_array:
            print("  %-30s %12.0f   %7.2fx%s" % (t.label, med(bw[t.label]),
                                                ratio(bw[t.label], ref),
                                                "   zero-copy" if t.zero_copy else ""))
    for label, xs, what in (("fill 1 MiB (the sender's part)", fills, "one core, hot"),
                            ("min of 1 MiB (the receiver's)", mins, "one core, hot"),
                            ("fill, other CPU read it last", cross[0],
                             "cross-CPU, the write alone"),
                            ("min, other CPU wrote it", cross[1],
                             "cross-CPU, the read alone")):
        print("  %-30s %12.0f   %7.2fx   %s" % (label, med(xs), ratio(xs, ref), what))
    print()
    c = {k: med([d[k] for d in calls]) for k in calls[0]}
    spin = rt["shmkit channel spin"]
    print("Interpreter per-call cost (ns, best batch): empty loop turn %.0f, no-op C method "
          "call %.0f,\n  Channel.closed (a C getter) %.0f, in-process send+recv of 64 bytes %.0f"
          % (c["loop"], c["c_call"], c["getter"], c["send_recv"]))
    print("  the pair with timeout=None %.0f, with timeout=0 (each call releases the GIL and"
          " takes it\n  back) %.0f: %.0f ns a release + re-acquisition, which a wait that"
          " ends at its first look\n  (with the GIL) saves"
          % (c["send_recv_kw"], c["send_recv_gil"],
             (c["send_recv_gil"] - c["send_recv_kw"]) / 2))
    print("  a spinning channel round trip is 2 send+recv pairs (%.0f ns in one process) and "
          "2 cross-core\n  hand-offs: the calls are %.0f%% of its %.0f ns" %
          (2 * c["send_recv"], 100 * 2 * c["send_recv"] / med(spin), med(spin)))
    print()

    def verdict(x, target):
        return "%.2fx (%s)" % (x, "met" if x >= target else "NOT met")
    print("Targets: 64-byte round trip >= 10x faster than mp.Queue: channel spin %s, "
          "channel adaptive %s" % (verdict(ratio(q, spin), 10),
                                   verdict(ratio(q, rt["shmkit channel"]), 10)))
    print("         1 MiB zero-copy >= 0.5x memcpy: channel spin %s, channel adaptive %s, "
          "bus loan %s;\n         both processes on one CPU: channel %s" %
          tuple(verdict(ratio(bw[k], ref), 0.5) for k in
                ("shmkit channel spin", "shmkit channel", "shmkit bus loan",
                 "shmkit channel, one CPU")))


if __name__ == "__main__":
    main()
