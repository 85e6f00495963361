"""An rpc service and its clients in one asyncio event loop.

    python3 asyncio_service.py [NAME] [CALLS]

The server and the clients await the handles themselves
(server.recv_async(), client.call_async(): shmkit.aio underneath, on the
handles' pollable fds and loop.add_reader, no thread), so one thread
serves and calls at once; the server upper-cases each request.
"""
import asyncio
import os
import sys

import shmkit

name = sys.argv[1] if len(sys.argv) > 1 else "posix:/example-upper-%d" % os.getpid()
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 20


async def serve(server, n):
    for _ in range(n):
        req = await server.recv_async(timeout=10.0)
        req.respond(bytes(req).upper())


async def client(rpc, words):
    answers = []
    for w in words:
        answers.append(await rpc.call_async(w.encode(), timeout=10.0))
    return answers


async def main():
    with shmkit.RpcServer.create(name) as server, shmkit.RpcClient.open(name) as rpc:
        words = ["word%d" % i for i in range(calls)]
        _, answers = await asyncio.gather(serve(server, calls), client(rpc, words))
    return all(a == w.upper().encode() for a, w in zip(answers, words))


ok = asyncio.run(main())
shmkit.Segment.remove(name)
print("%d calls answered in one event loop: %s" % (calls, "ok" if ok else "WRONG"))
sys.exit(0 if ok else 1)
