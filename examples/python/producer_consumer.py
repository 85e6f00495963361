"""A producer process and a consumer process over a shmkit channel.

    python3 producer_consumer.py [NAME] [COUNT]

The parent creates the channel, forks a consumer (which could be any
process that opens NAME, the `shmkit recv` tool included), sends COUNT
messages and waits for the consumer's total; the channel is removed at
the end.
"""
import os
import sys

import shmkit

name = sys.argv[1] if len(sys.argv) > 1 else "posix:/example-jobs-%d" % os.getpid()
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

with shmkit.Channel.create(name, capacity=64, max_msg=64) as ch:
    pid = os.fork()
    if pid == 0:  # the consumer: its own handle, by name
        with shmkit.Channel.open(name) as mine:
            total = sum(int(mine.recv(timeout=10.0)) for _ in range(count))
        os._exit(0 if total == count * (count - 1) // 2 else 1)
    for i in range(count):
        ch.send(str(i).encode(), timeout=10.0)
    _, status = os.waitpid(pid, 0)
shmkit.Segment.remove(name)
print("consumer took %d messages: %s" % (count, "ok" if status == 0 else "WRONG"))
sys.exit(0 if status == 0 else 1)
