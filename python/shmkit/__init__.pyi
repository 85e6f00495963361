"""Type stubs of shmkit (PEP 561): the API of the extension module
shmkit._shmkit (python/src/*.c), which shmkit re-exports whole.

Conventions the stubs follow:
  - timeout: seconds as int or float, None = for ever, 0 = try once (then
    BlockingIOError when nothing is there); a bounded wait that runs out
    raises TimeoutError.
  - create()/open() of one class share one argument parser in C: each
    takes every keyword listed, the geometry ones only matter to the
    creator (an existing object's geometry wins).  A default of `...` is
    the library's own (0 passed to C), the value a docstring names.
  - The handle classes (Segment, Channel, ...) have no constructor: they
    are made by their classmethods (Segment.create, Channel.open, ...).
  - Classes that lend memory (Segment, Loan, Message, Request) export it
    through the buffer protocol: memoryview(x), numpy.frombuffer(x).
    They declare __buffer__ (PEP 688): a type checker whose typeshed has
    collections.abc.Buffer accepts them where a buffer is expected; older
    ones (ReadableBuffer as a fixed union) may not.
  - Loan and Iterator are generic only here (Loan[int] is an RpcClient
    loan whose commit returns the call id; Iterator[bytes] yields
    messages): the runtime classes cannot be subscripted, so write such
    annotations as strings or under `from __future__ import annotations`.
python/tests/test_stubs.py checks these names against the built module.
"""
import builtins
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar, Final, Generic, Literal, TypedDict, TypeVar, final, overload

from _typeshed import FileDescriptorLike, ReadableBuffer, StrOrBytesPath, WriteableBuffer

_T_co = TypeVar("_T_co", covariant=True)
_R = TypeVar("_R", int, None)
_Timeout = float | None

__version__: str

# ---- constants ----

# Segment backends (Segment.backend, stat()["backend"]).
POSIX: Final = 1
SYSV: Final = 2
FILE: Final = 3
ANON: Final = 4
MEMFD: Final = 5
# What a segment holds (Segment.kind, stat()["kind"]).
KIND_FOREIGN: Final = 0
KIND_BYTES: Final = 1
KIND_CHAN: Final = 2
KIND_BUS: Final = 3
KIND_JOURNAL: Final = 4
KIND_RPC: Final = 5
# How a handle waits (wait=).
WAIT_ADAPTIVE: Final = 0
WAIT_SPIN: Final = 1
WAIT_BLOCK: Final = 2
# Channel.fileno(events=).
POLLIN: Final = 1
POLLOUT: Final = 4
# Channel.peers()[i]["role"].
CHAN_PEER_HANDLE: Final = 0
CHAN_PEER_PRODUCER: Final = 1
CHAN_PEER_CONSUMER: Final = 2
# Bus delivery (Bus.create(delivery=)).
OVERWRITE: Final = 0
BACKPRESSURE: Final = 1
# Message.flags / Request.flags of an rpc call.
RPC_IDEMPOTENT: Final = 1
# Journal durability (Journal.open(durability=)).
DUR_NONE: Final = 0
DUR_ASYNC: Final = 1
DUR_SYNC: Final = 2
DUR_GROUP: Final = 3

# ---- the dicts of stat(), stats() and peers() ----

class _SegmentStat(TypedDict):
    backend: int
    kind: int
    name: str
    map_size: int
    data_size: int
    data_offset: int
    mode: int
    uid: int
    creator_pid: int
    creator_alive: int
    created_ns: int
    attach_count: int
    removed: bool
    shmid: int
    key: int
    version: int
    persistent: bool
    in_use: int
    initialising: int

class _ChannelStats(TypedDict):
    capacity: int
    max_msg: int
    depth: int
    sent: int
    received: int
    full_waits: int
    empty_waits: int
    reclaimed: int
    aborted: int
    slot_size: int
    hdr_size: int
    seg_size: int
    spsc: bool
    producer: int
    consumer: int

class _ChannelPeer(TypedDict):
    role: int
    index: int
    pid: int
    alive: int
    sent: int
    received: int
    owned: bool

class _BusStats(TypedDict):
    capacity: int
    max_msg: int
    delivery: int
    head: int
    oldest: int
    publishers: int
    subscribers: int
    armed: int
    seg_size: int
    max_publishers: int
    max_subscribers: int

class _BusPeer(TypedDict):
    subscriber: bool
    index: int
    pid: int
    alive: int
    position: int
    lag: int
    count: int
    lost: int
    armed: bool

class _RpcStats(TypedDict):
    max_clients: int
    depth: int
    max_request: int
    max_response: int
    max_servers: int
    seg_size: int
    requests: int
    responses: int
    timeouts: int
    cancelled: int
    retried: int
    reset: int
    requeued: int
    dropped: int
    clients: int
    servers: int
    in_flight: int

class _RpcPeer(TypedDict):
    server: bool
    index: int
    pid: int
    alive: int
    calls: int
    answered: int
    cancelled: int
    in_flight: int

class _JournalStat(TypedDict):
    first_seq: int
    last_seq: int
    records: int
    files: int
    bytes: int
    durability: int
    writer_pid: int
    id: int
    copy_of: int

# ---- errors ----

class CorruptError(OSError):
    """Corrupt shared state detected (EBADMSG): a peer wrote values out of
    bounds, or a file is damaged."""

# ---- module functions ----

def stat(name: str, /) -> _SegmentStat:
    """A segment described by name (without keeping it open)."""

def list() -> builtins.list[_SegmentStat]:
    """A dict per segment on the machine (POSIX and System V, managed or
    foreign)."""

def strerror(err: int, /) -> str:
    """Text for a shmkit result (negative or positive errno)."""

def journal_verify(path: StrOrBytesPath, /) -> JournalReport:
    """The journal checked (.clean False when damaged); changes nothing."""

def journal_repair(path: StrOrBytesPath, /) -> JournalReport:
    """What was dropped; keeps every intact record (OSError EBUSY while a
    writer lives)."""

def journal_remove(path: str, /) -> None:
    """The whole journal removed (OSError EBUSY while a writer lives)."""

# ---- lent memory ----

@final
class Iterator(Generic[_T_co]):
    """Items until a wait of the given timeout runs out (TimeoutError and
    BlockingIOError end it)."""

    def __iter__(self) -> Iterator[_T_co]: ...
    def __next__(self) -> _T_co: ...

@final
class Loan(Generic[_R]):
    """A writable buffer in shared memory lent by reserve()/loan(): fill it
    (memoryview, numpy.asarray), then commit(length) or abort().
    Loan[None]: a Channel's, a Bus's or a Request's (commit sends,
    publishes or answers); Loan[int]: an RpcClient's (commit sends the
    request and returns the call's id)."""

    @property
    def id(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def deadline_ns(self) -> int: ...
    @property
    def live(self) -> bool:
        """True until the memory is given back."""
    @overload
    def commit(self: Loan[int], length: int, *, idempotent: bool = False,
               timeout: _Timeout = None) -> int: ...
    @overload
    def commit(self: Loan[None], length: int, *, tag: int | None = None) -> None:
        """tag (a channel's loan): shmkit_chan_commit_tag, the owner's record
        of its last delivered commit (Channel.owner_tag)."""
    def abort(self) -> None:
        """Give the buffer back unsent."""
    def tobytes(self) -> bytes:
        """A copy of the bytes."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __enter__(self) -> Loan[_R]: ...
    def __exit__(self, *args: object) -> Literal[False]:
        """Abort unless committed."""

@final
class Message:
    """A message read in place (peek, rpc response): a read-only buffer
    valid until release()."""

    @property
    def id(self) -> int:
        """rpc: the call's id."""
    @property
    def lost(self) -> int:
        """bus: messages lost before this one."""
    @property
    def status(self) -> int:
        """rpc response: the server's application status."""
    @property
    def flags(self) -> int: ...
    @property
    def deadline_ns(self) -> int: ...
    @property
    def live(self) -> bool:
        """True until the memory is given back."""
    def release(self) -> None:
        """Give the message's memory back."""
    def tobytes(self) -> bytes:
        """A copy of the bytes."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __enter__(self) -> Message: ...
    def __exit__(self, *args: object) -> Literal[False]:
        """release()"""

@final
class Request:
    """A request a server took, in place (.id, .flags, .deadline_ns): a
    read-only buffer valid until it is answered."""

    @property
    def id(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def flags(self) -> int:
        """RPC_* flags of the call."""
    @property
    def deadline_ns(self) -> int:
        """The caller's deadline, CLOCK_REALTIME ns (2**63-1: none)."""
    @property
    def live(self) -> bool:
        """True until it is answered."""
    def respond(self, data: ReadableBuffer, *, status: int = 0) -> None:
        """Answer with a copy (OSError ECANCELED: the caller gave up; the
        answer was dropped)."""
    def loan(self) -> Loan[None]:
        """A Loan of max_response bytes; loan.commit(length) answers
        (ValueError while this request's loan is out; an answer by
        respond() ends the loan too)."""
    def abandoned(self) -> bool:
        """True if the caller gave up, died or its deadline passed."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

# ---- segments ----

@final
class Segment:
    """A named, mapped region; its data area is a buffer (memoryview,
    numpy.frombuffer) over shared memory."""

    @classmethod
    def create(cls, name: str, size: int, *, mode: int = ..., exclusive: bool = False,
               populate: bool = False, mlock: bool = False, huge: bool = False,
               persist: bool = False) -> Segment:
        """Create (or open an existing one unless exclusive); mode 0o600."""
    @classmethod
    def open(cls, name: str, *, readonly: bool = False, cow: bool = False, raw: bool = False,
             populate: bool = False, mlock: bool = False, timeout: _Timeout = ...) -> Segment:
        """timeout: seconds to wait for a creator still initialising
        (1.0; None = for ever)."""
    @staticmethod
    def remove(name: str, /) -> None:
        """Unlink the name."""
    @classmethod
    def recv_fd(cls, sock: FileDescriptorLike, *, readonly: bool = False, cow: bool = False,
                noseal: bool = False) -> Segment:
        """A received memfd (OSError EPERM if not sealed against shrinking,
        unless noseal)."""
    def send_fd(self, sock: FileDescriptorLike, /) -> None:
        """Pass a memfd segment's fd over a connected UNIX socket."""
    def close(self) -> None:
        """Unmap; BufferError while a view is exported."""
    def sync(self, offset: int = 0, length: int = 0, *, asynchronous: bool = False,
             invalidate: bool = False) -> None:
        """msync."""
    def stat(self) -> _SegmentStat: ...
    @property
    def size(self) -> int:
        """Bytes of the data area."""
    @property
    def kind(self) -> int:
        """KIND_* of the header."""
    @property
    def backend(self) -> int:
        """POSIX, SYSV, FILE, ANON or MEMFD."""
    @property
    def fd(self) -> int:
        """The descriptor behind it (-1 for sysv, anon)."""
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...
    def __enter__(self) -> Segment: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

# ---- channels ----

@final
class Channel:
    """A named queue: each message goes to exactly one receiver."""

    @classmethod
    def create(cls, name: str, *, capacity: int = ..., max_msg: int = ..., mode: int = ...,
               exclusive: bool = False, spsc: bool = False, readonly: bool = False,
               populate: bool = False, mlock: bool = False, wait: int = ...,
               timeout: _Timeout = ..., owner: int = 0) -> Channel:
        """capacity 64, max_msg 1024, mode 0o600, wait WAIT_ADAPTIVE; opens an
        existing channel unless exclusive (its geometry wins)."""
    @classmethod
    def open(cls, name: str, *, capacity: int = ..., max_msg: int = ..., mode: int = ...,
             exclusive: bool = False, spsc: bool = False, readonly: bool = False,
             populate: bool = False, mlock: bool = False, wait: int = ...,
             timeout: _Timeout = ..., owner: int = 0) -> Channel:
        """timeout (1.0): for a creator still initialising.  owner (MPMC): a
        durable identity; a dead predecessor's peeked message comes back to
        the next handle with that owner (OSError EBUSY while one lives)."""
    @classmethod
    def attach(cls, segment: Segment, *, wait: int = ...) -> Channel:
        """A Channel over an open Segment of kind KIND_CHAN (e.g.
        Segment.recv_fd); it takes the segment over (closed)."""
    def send_fd(self, sock: FileDescriptorLike, /) -> None:
        """Pass a memfd channel's segment over a connected UNIX socket."""
    def close(self) -> None: ...
    def send(self, data: ReadableBuffer, timeout: _Timeout = None) -> None: ...
    def recv(self, timeout: _Timeout = None) -> bytes: ...
    def recv_into(self, buffer: WriteableBuffer, timeout: _Timeout = None) -> int:
        """The length (OSError EMSGSIZE if it does not fit)."""
    def reserve(self, timeout: _Timeout = None) -> Loan[None]:
        """A Loan of max_msg bytes in the channel; loan.commit(n) sends."""
    def peek(self, timeout: _Timeout = None) -> Message:
        """The next message in place; message.release()."""
    def peek_pos(self) -> int:
        """The channel position of the message this handle has peeked."""
    def reserve_pos(self) -> int:
        """The channel position of this handle's open loan."""
    def owner_tag(self) -> int:
        """The tag of the owner's last commit(n, tag=T) that delivered (0: none)."""
    def disown(self) -> None:
        """The owner's record becomes an ordinary handle's (close frees it)."""
    def fileno(self, events: int = 1) -> int:
        """An fd readable when this side may go on (events POLLIN or
        POLLOUT); ack() it, then drain with timeout=0."""
    def ack(self) -> None: ...
    def stats(self) -> _ChannelStats: ...
    def peers(self) -> builtins.list[_ChannelPeer]:
        """A dict per handle taking part: an MPMC handle's entry
        (CHAN_PEER_HANDLE) or an SPSC role's holder (CHAN_PEER_PRODUCER,
        CHAN_PEER_CONSUMER); alive 1/0/-1 by the kernel's lock."""
    def messages(self, timeout: _Timeout = None) -> Iterator[bytes]: ...
    async def recv_async(self, timeout: _Timeout = None) -> bytes:
        """The next message, without blocking the event loop (shmkit.aio.recv)."""
    async def send_async(self, data: ReadableBuffer, timeout: _Timeout = None) -> None:
        """A copy of data, waiting for room without blocking the event loop
        (shmkit.aio.send; this handle's fd then serves POLLOUT)."""
    def __aiter__(self) -> AsyncIterator[bytes]:
        """Messages as they come (shmkit.aio.messages)."""
    @property
    def closed(self) -> bool: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __enter__(self) -> Channel: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

# ---- publish/subscribe ----

@final
class Bus:
    """Publish/subscribe: each message goes to every subscriber."""

    @classmethod
    def create(cls, name: str, *, capacity: int = ..., max_msg: int = ...,
               delivery: int = ..., mode: int = ..., exclusive: bool = False,
               populate: bool = False, mlock: bool = False, wait: int = ...,
               timeout: _Timeout = ..., max_subscribers: int = ...,
               max_publishers: int = ...) -> Bus:
        """capacity 256, max_msg 1024, delivery OVERWRITE, mode 0o600,
        max_subscribers 64, max_publishers 62; opens an existing bus unless
        exclusive (its geometry wins)."""
    @classmethod
    def open(cls, name: str, *, capacity: int = ..., max_msg: int = ...,
             delivery: int = ..., mode: int = ..., exclusive: bool = False,
             populate: bool = False, mlock: bool = False, wait: int = ...,
             timeout: _Timeout = ..., max_subscribers: int = ...,
             max_publishers: int = ...) -> Bus: ...
    def close(self) -> None:
        """OSError EBUSY while subscriptions made on it are open (then
        nothing changes: an open loan stays open)."""
    def publish(self, data: ReadableBuffer, timeout: _Timeout = None) -> None: ...
    def loan(self, timeout: _Timeout = None) -> Loan[None]:
        """A Loan of max_msg bytes; loan.commit(n) publishes n bytes."""
    def subscribe(self, *, from_oldest: bool = False, wait: int = ...) -> Subscription: ...
    def fileno(self, events: int = 4) -> int:
        """The publisher's fd (events must be POLLOUT): on a back-pressure
        bus readable when a publish may go on without waiting (ack() it,
        then publish with timeout=0); on an overwrite bus always readable
        (it never waits for readers)."""
    def ack(self) -> None:
        """Re-arm the fd after it signalled (readable at once if there is
        room)."""
    async def publish_async(self, data: ReadableBuffer, timeout: _Timeout = None) -> None:
        """A copy of data to every subscriber, waiting for room without
        blocking the event loop (shmkit.aio.publish)."""
    def stats(self) -> _BusStats: ...
    def peers(self) -> builtins.list[_BusPeer]: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Bus: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

@final
class Subscription:
    """A subscription to a Bus: every message published after it joined."""

    @property
    def lost(self) -> int:
        """Messages lost (overwritten before it read them) so far."""
    @property
    def last_lost(self) -> int:
        """Messages lost just before the last one received."""
    def close(self) -> None: ...
    def recv(self, timeout: _Timeout = None) -> bytes: ...
    def peek(self, timeout: _Timeout = None) -> Message:
        """In place (its .lost); release() raises OSError ESTALE if it was
        overwritten while read."""
    def fileno(self) -> int: ...
    def ack(self) -> None: ...
    def messages(self, timeout: _Timeout = None) -> Iterator[bytes]: ...
    async def recv_async(self, timeout: _Timeout = None) -> bytes:
        """The next message, without blocking the event loop (shmkit.aio.recv)."""
    def __aiter__(self) -> AsyncIterator[bytes]:
        """Messages as they come (shmkit.aio.messages)."""
    @property
    def closed(self) -> bool: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __enter__(self) -> Subscription: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

# ---- request/response ----

@final
class RpcClient:
    """The client side of a request/response service."""

    @classmethod
    def create(cls, name: str, *, max_clients: int = ..., depth: int = ...,
               max_request: int = ..., max_response: int = ..., max_servers: int = ...,
               mode: int = ..., exclusive: bool = False, populate: bool = False,
               mlock: bool = False, wait: int = ..., timeout: _Timeout = ...) -> RpcClient:
        """max_clients 64, depth 8, max_request 1024, max_response 1024,
        max_servers 64, mode 0o600; opens an existing service unless
        exclusive."""
    @classmethod
    def open(cls, name: str, *, max_clients: int = ..., depth: int = ...,
             max_request: int = ..., max_response: int = ..., max_servers: int = ...,
             mode: int = ..., exclusive: bool = False, populate: bool = False,
             mlock: bool = False, wait: int = ..., timeout: _Timeout = ...) -> RpcClient: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    def ack(self) -> None: ...
    def stats(self) -> _RpcStats: ...
    def peers(self) -> builtins.list[_RpcPeer]: ...
    def call(self, data: ReadableBuffer, *, idempotent: bool = False,
             timeout: _Timeout = None) -> bytes:
        """Send and wait for the answer (TimeoutError: the call is
        cancelled)."""
    def send(self, data: ReadableBuffer, *, idempotent: bool = False,
             timeout: _Timeout = None) -> int:
        """The call's id; timeout bounds the whole call."""
    def loan(self) -> Loan[int]:
        """A Loan of max_request bytes; loan.commit(length, *,
        idempotent=False, timeout=None) sends it and returns the id."""
    def wait(self, id: int = 0, timeout: _Timeout = None) -> Message:
        """The response in place (.id, .status); release() frees the call.
        id 0: any outstanding call.  A response not yet released is the
        same Message again."""
    def cancel(self, id: int, /) -> None: ...
    async def call_async(self, data: ReadableBuffer, *, idempotent: bool = False,
                         timeout: _Timeout = None) -> bytes:
        """call() without blocking the event loop (shmkit.aio.call): the call is
        cancelled with the task or when timeout runs out."""
    async def wait_async(self, id: int = 0, timeout: _Timeout = None) -> Message:
        """wait() without blocking the event loop (shmkit.aio.wait)."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> RpcClient: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

@final
class RpcServer:
    """The server side of a request/response service."""

    @classmethod
    def create(cls, name: str, *, max_clients: int = ..., depth: int = ...,
               max_request: int = ..., max_response: int = ..., max_servers: int = ...,
               mode: int = ..., exclusive: bool = False, populate: bool = False,
               mlock: bool = False, wait: int = ..., timeout: _Timeout = ...) -> RpcServer: ...
    @classmethod
    def open(cls, name: str, *, max_clients: int = ..., depth: int = ...,
             max_request: int = ..., max_response: int = ..., max_servers: int = ...,
             mode: int = ..., exclusive: bool = False, populate: bool = False,
             mlock: bool = False, wait: int = ..., timeout: _Timeout = ...) -> RpcServer: ...
    def close(self) -> None: ...
    def fileno(self) -> int: ...
    def ack(self) -> None: ...
    def stats(self) -> _RpcStats: ...
    def peers(self) -> builtins.list[_RpcPeer]: ...
    def recv(self, timeout: _Timeout = None) -> Request:
        """A Request in place; answer it with request.respond(data) or
        request.loan() -> Loan -> commit(length)."""
    def requests(self, timeout: _Timeout = None) -> Iterator[Request]: ...
    async def recv_async(self, timeout: _Timeout = None) -> Request:
        """The next Request, without blocking the event loop
        (shmkit.aio.request)."""
    def __aiter__(self) -> AsyncIterator[Request]:
        """Requests as they come (shmkit.aio.requests)."""
    @property
    def closed(self) -> bool: ...
    def __iter__(self) -> Iterator[Request]: ...
    def __enter__(self) -> RpcServer: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

# ---- journal ----

@final
class Record(tuple[int, int, bytes]):
    """One journal record (a struct sequence: seq, time_ns, data)."""

    n_fields: ClassVar[int]
    n_sequence_fields: ClassVar[int]
    n_unnamed_fields: ClassVar[int]
    __match_args__: ClassVar[tuple[Literal["seq"], Literal["time_ns"], Literal["data"]]]
    def __new__(cls, sequence: Iterable[Any], dict: dict[str, Any] = ...) -> Record: ...
    @property
    def seq(self) -> int:
        """Sequence number (1, 2, ...)."""
    @property
    def time_ns(self) -> int:
        """CLOCK_REALTIME at append."""
    @property
    def data(self) -> bytes:
        """The record's bytes (a copy)."""

@final
class JournalReport(tuple[bool, int, int, int, str, str, int, int, int, int, str, int, int]):
    """What journal_verify found or journal_repair did (a struct sequence)."""

    n_fields: ClassVar[int]
    n_sequence_fields: ClassVar[int]
    n_unnamed_fields: ClassVar[int]
    __match_args__: ClassVar[tuple[str, ...]]
    def __new__(cls, sequence: Iterable[Any], dict: dict[str, Any] = ...) -> JournalReport: ...
    @property
    def clean(self) -> bool:
        """True: no damage (verify; repair: always, once done)."""
    @property
    def valid_records(self) -> int: ...
    @property
    def last_valid_seq(self) -> int: ...
    @property
    def damaged_bytes(self) -> int: ...
    @property
    def where(self) -> str:
        """File and offset of the first damage ('' if none)."""
    @property
    def meta_rebuilt_from(self) -> str: ...
    @property
    def dropped_records(self) -> int: ...
    @property
    def dropped_first_seq(self) -> int: ...
    @property
    def dropped_last_seq(self) -> int: ...
    @property
    def dropped_ranges(self) -> int: ...
    @property
    def dropped(self) -> str:
        """The dropped runs as text, e.g. '4 9-12'."""
    @property
    def holes(self) -> int: ...
    @property
    def hole_records(self) -> int: ...

@final
class Journal:
    """The writer of a durable append-only log (a directory of mapped
    files)."""

    @classmethod
    def open(cls, path: str, *, create: bool = False, durability: int = ...,
             group_records: int = ..., group_ms: int = ..., file_size: int = ...,
             max_record: int = ..., keep_files: int = ..., keep_bytes: int = ...,
             mode: int = ..., any_owner: bool = False) -> Journal:
        """The one writer (OSError EBUSY while another lives); durability
        DUR_NONE, group_records 64, group_ms 10, file_size 64M, max_record 1M,
        keep_files 0, keep_bytes 0, mode 0o600."""
    def append(self, data: ReadableBuffer, /) -> int:
        """The record's seq, as durable as the policy says."""
    def append_at(self, seq: int, time_ns: int, data: ReadableBuffer) -> None:
        """A replica's record with the leader's seq and stamp; a seq past the
        next leaves a hole (FileExistsError for one not past the last)."""
    def set_copy_of(self, id: int, /) -> None:
        """Record once that this journal copies the journal of that id."""
    def sync(self) -> None:
        """Make every appended record durable now."""
    def stat(self) -> _JournalStat: ...
    @staticmethod
    def remove(path: str, /) -> None:
        """The whole journal."""
    def close(self) -> None:
        """Sync what is pending, release the writer lock."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Journal: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

@final
class JournalReader:
    """A reader of a journal; iterating reads to the end (follow() waits)."""

    @classmethod
    def open(cls, path: str) -> JournalReader:
        """At the oldest record."""
    def read(self, timeout: _Timeout = 0) -> Record | None:
        """The next Record; None at the end when timeout is 0, otherwise a
        wait for new records (TimeoutError)."""
    def follow(self, timeout: _Timeout = None) -> Iterator[Record]:
        """Records, waiting for new ones; ends when a wait of timeout runs
        out (None: never)."""
    def tail(self, follow: bool = False, *, timeout: _Timeout = None) -> Iterator[Record]:
        """Records from where the reader stands: to the end, or (follow)
        waiting for new ones until a wait of timeout runs out."""
    @overload
    def seek(self, seq: int) -> None: ...
    @overload
    def seek(self, *, time_ns: int) -> None: ...
    def fileno(self) -> int: ...
    def ack(self) -> None: ...
    async def read_async(self, timeout: _Timeout = None) -> Record:
        """The next Record, waiting for the writer without blocking the event
        loop (shmkit.aio.read)."""
    def __aiter__(self) -> AsyncIterator[Record]:
        """Records from where the reader stands, following the writer
        (shmkit.aio.records)."""
    def stat(self) -> _JournalStat: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __iter__(self) -> JournalReader: ...
    def __next__(self) -> Record: ...
    def __enter__(self) -> JournalReader: ...
    def __exit__(self, *args: object) -> Literal[False]: ...

# ---- synchronization objects in a segment's data area ----

@final
class EventCount:
    """A counter waiters sleep on, 4 bytes at offset of the segment's data
    area (init=True zeroes it)."""

    def __init__(self, segment: Segment, offset: int = 0, *, init: bool | None = None) -> None: ...
    def inc(self) -> None:
        """Increment and wake every waiter."""
    def wait(self, old: int, timeout: _Timeout = None) -> None:
        """Until value differs from old (TimeoutError)."""
    def fileno(self) -> int:
        """An fd for poll/epoll/asyncio, made on first use armed on the
        value then: readable once the value differs from the old of the
        last ack() (the library's shmkit_ec_fd; closed by close())."""
    def ack(self, old: int | None = None) -> None:
        """Re-arm the fd on old (None: the value now); readable at once if
        the value already differs.  ValueError before fileno()."""
    async def wait_async(self, old: int, timeout: _Timeout = None) -> int:
        """The value once it differs from old, without blocking the event
        loop (shmkit.aio.ec_wait)."""
    def close(self) -> None:
        """Release the segment (the object stays in it) and close the fd."""
    @property
    def value(self) -> int: ...
    @property
    def closed(self) -> bool: ...

@final
class Mutex:
    """A robust process-shared mutex, 64 bytes at offset (8-aligned) of the
    segment's data area; a holder's death is reported to the next locker
    (owner_died).  Not bound to one thread."""

    def __init__(self, segment: Segment, offset: int = 0, *, init: bool | None = None) -> None: ...
    def lock(self, timeout: _Timeout = None) -> bool:
        """owner_died: True when its holder died holding it (the lock is
        held: repair, then consistent())."""
    def unlock(self) -> None: ...
    def consistent(self) -> None: ...
    def fileno(self) -> int:
        """An fd for poll/epoll/asyncio, readable while the mutex is free
        or its holder died (the library's shmkit_mutex_fd; closed by
        close()).  A hint: another locker may win; a holder's death may
        not signal it (poll with a timeout, ack() on timeout)."""
    def ack(self) -> None:
        """Re-arm the fd after each try (readable at once while the mutex
        is free or its holder died).  ValueError before fileno()."""
    async def lock_async(self, timeout: _Timeout = None) -> bool:
        """lock() without blocking the event loop (shmkit.aio.mutex_lock);
        owner_died as lock() returns it."""
    def close(self) -> None:
        """Release the segment (the object stays in it) and close the fd."""
    @property
    def owner_died(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Mutex:
        """lock(); see owner_died."""
    def __exit__(self, *args: object) -> Literal[False]:
        """unlock()"""

@final
class Semaphore:
    """A counting semaphore, 8 bytes at offset (4-aligned) of the segment's
    data area (init=N sets its count)."""

    def __init__(self, segment: Segment, offset: int = 0, *, init: int | None = None) -> None: ...
    def post(self) -> None:
        """Add one (OSError EOVERFLOW at 2**31-1)."""
    def wait(self, timeout: _Timeout = None) -> None:
        """Take one (TimeoutError; BlockingIOError for timeout 0)."""
    def fileno(self) -> int:
        """An fd for poll/epoll/asyncio, readable while the count is above
        0 (the library's shmkit_sem_fd; closed by close()).  A hint:
        another taker may win the unit."""
    def ack(self) -> None:
        """Re-arm the fd after each try (readable at once while units
        remain).  ValueError before fileno()."""
    async def wait_async(self, timeout: _Timeout = None) -> None:
        """Take one without blocking the event loop (shmkit.aio.sem_wait)."""
    def close(self) -> None: ...
    @property
    def value(self) -> int: ...
    @property
    def closed(self) -> bool: ...
