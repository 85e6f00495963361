"""asyncio over shmkit handles: await a message, a request, a response or
a journal record without blocking the event loop.

Every function here follows the descriptor protocol of the C library
(shmkit_chan_fd, shmkit_sub_fd, shmkit_rpc_fd, shmkit_journal_fd,
shmkit_bus_fd, shmkit_ec_fd, shmkit_sem_fd, shmkit_mutex_fd): try
once (timeout 0); when nothing is there, wait until the handle's fileno()
is readable (loop.add_reader), ack() it, and try again.  The fd may
signal spuriously, and a peer that dies in the middle of a message is
noticed by a call, not by the fd: so the wait also wakes every 100 ms
to try again.  Timeouts are seconds (None: for ever) and end in
TimeoutError, as the blocking calls do.

One coroutine at a time per handle (the rule of the blocking calls), and
one direction per channel handle (its fd serves the direction of its
first fileno(): a receiving handle cannot await send()).

    import asyncio, shmkit, shmkit.aio as aio

    async def main():
        with shmkit.Channel.open("jobs") as ch:
            async for msg in aio.messages(ch):
                print(msg)

    asyncio.run(main())

The handles forward here themselves: await ch.recv_async(),
ch.send_async(data), client.call_async(data), client.wait_async(id),
server.recv_async(), reader.read_async(), bus.publish_async(data),
ec.wait_async(old), sem.wait_async(), mutex.lock_async(), and `async for`
over a Channel, Subscription, RpcServer or JournalReader (messages,
requests, records, waiting for ever).
"""
import asyncio
import errno

import shmkit

__all__ = ["recv", "send", "messages", "call", "wait", "request", "requests", "read",
           "records", "publish", "ec_wait", "sem_wait", "mutex_lock"]

SLICE = 0.1   # seconds between tries while the fd stays quiet


async def _readable(loop, fd, timeout):
    """Until fd is readable or timeout seconds passed (either is fine)."""
    fut = loop.create_future()

    def ready():
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)


async def _await(handle, attempt, timeout, fileno=None, ack=None):
    """attempt() until it gives something other than None or
    BlockingIOError, waiting on the handle's fd in between (re-armed by
    ack(), handle.ack() by default)."""
    loop = asyncio.get_running_loop()
    fd = fileno() if fileno else handle.fileno()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        try:
            r = attempt()
            if r is not None:
                return r
        except BlockingIOError:
            pass
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise TimeoutError(errno.ETIMEDOUT, "shmkit.aio: timed out")
        await _readable(loop, fd, SLICE if left is None else min(left, SLICE))
        (ack or handle.ack)()


# ---- channels and subscriptions ----

async def recv(handle, timeout=None):
    """The next message (bytes) of a Channel or Subscription."""
    return await _await(handle, lambda: handle.recv(timeout=0), timeout)


async def send(channel, data, timeout=None):
    """Send a copy of data on a Channel, waiting for room (the handle's fd
    then serves POLLOUT: do not await recv on the same handle)."""
    def attempt():
        channel.send(data, timeout=0)
        return True

    await _await(channel, attempt, timeout,
                 lambda: channel.fileno(events=shmkit.POLLOUT))


async def messages(handle, timeout=None):
    """Async iterator of recv(); ends when a wait of timeout runs out
    (None: never)."""
    while True:
        try:
            yield await recv(handle, timeout)
        except TimeoutError:
            return


# ---- rpc ----

async def wait(client, id=0, timeout=None):
    """The response to call id (0: any) of an RpcClient, in place: a
    Message (.id, .status); release() it."""
    return await _await(client, lambda: client.wait(id, timeout=0), timeout)


async def call(client, data, *, idempotent=False, timeout=None):
    """Send data and await the answer (bytes); timeout bounds the whole
    call, which is cancelled when it runs out or the task is cancelled."""
    id = client.send(data, idempotent=idempotent, timeout=timeout)
    try:
        msg = await wait(client, id, timeout)
    except BaseException:
        try:
            client.cancel(id)
        except OSError:
            pass  # the library gave it up already (its deadline passed)
        raise
    try:
        return bytes(msg)
    finally:
        msg.release()


async def request(server, timeout=None):
    """The next request of an RpcServer: a Request in place; answer it
    with respond(data) (or loan() -> commit)."""
    return await _await(server, lambda: server.recv(timeout=0), timeout)


async def requests(server, timeout=None):
    """Async iterator of request(); ends when a wait of timeout runs out."""
    while True:
        try:
            yield await request(server, timeout)
        except TimeoutError:
            return


# ---- journal readers ----

async def read(reader, timeout=None):
    """The next Record of a JournalReader, waiting for the writer."""
    return await _await(reader, lambda: reader.read(timeout=0), timeout)


async def records(reader, timeout=None):
    """Async iterator of records from where the reader stands, following
    the writer; ends when a wait of timeout runs out (None: never)."""
    while True:
        try:
            yield await read(reader, timeout)
        except TimeoutError:
            return


# ---- bus publishers, event counts, semaphores ----

async def publish(bus, data, timeout=None):
    """Publish a copy of data on a Bus; on a back-pressure bus wait for
    room (the slowest subscriber within capacity) on the bus's fd."""
    def attempt():
        bus.publish(data, timeout=0)
        return True

    await _await(bus, attempt, timeout)


async def ec_wait(ec, old, timeout=None):
    """The value of an EventCount once it differs from old."""
    def attempt():
        v = ec.value
        return v if v != old & 0x7FFFFFFF else None

    ec.fileno()
    ec.ack(old)  # armed on old, not on the value now
    return await _await(ec, attempt, timeout, ack=lambda: ec.ack(old))


async def sem_wait(sem, timeout=None):
    """Take one unit of a Semaphore (the fd says when one may be there)."""
    def attempt():
        sem.wait(timeout=0)
        return True

    await _await(sem, attempt, timeout)


async def mutex_lock(mutex, timeout=None):
    """Lock a Mutex (the fd says when it may be free); owner_died as
    Mutex.lock() returns it: True when its holder died holding it (the
    lock is held: repair, then consistent()).  A holder's death wakes the
    fd only if someone slept on the lock: the SLICE re-check (ack looks at
    the lock word) finds it."""
    return await _await(mutex, lambda: mutex.lock(timeout=0), timeout)
