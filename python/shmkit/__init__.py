"""Linux shared memory IPC: segments, channels, a publish/subscribe bus,
request/response and a durable journal (the shmkit C library).

Everything is defined by the extension module shmkit._shmkit and
re-exported here; shmkit.aio (imported on demand) awaits the same handles
from asyncio.
"""
from ._shmkit import *  # noqa: F401,F403  (the whole public API)
from ._shmkit import __version__  # noqa: F401
