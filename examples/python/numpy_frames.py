"""Frames published on a bus, written and read in place with numpy.

    python3 numpy_frames.py [NAME] [FRAMES]

The publisher loans a slot, fills it as a numpy array (no copy into the
bus) and publishes; a subscriber in another process peeks each frame as a
numpy array over the shared memory and checks it.  Back-pressure mode, so
no frame is lost.
"""
import os
import sys

import numpy
import shmkit

name = sys.argv[1] if len(sys.argv) > 1 else "posix:/example-frames-%d" % os.getpid()
frames = int(sys.argv[2]) if len(sys.argv) > 2 else 50
shape = (120, 160)

with shmkit.Bus.create(name, capacity=8, max_msg=shape[0] * shape[1],
                       delivery=shmkit.BACKPRESSURE) as bus:
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the subscriber: its own handle, by name
        bad = 0
        with shmkit.Bus.open(name) as mine, mine.subscribe() as sub:
            os.write(ready_w, b"!")  # subscribed: the publisher may start
            for n in range(frames):
                msg = sub.peek(timeout=10.0)
                frame = numpy.frombuffer(msg, dtype=numpy.uint8).reshape(shape)
                bad += int(frame[0, 0]) != n % 256 or int(frame[-1, -1]) != n % 256
                del frame          # the view ends before the release
                msg.release()
        os._exit(1 if bad else 0)
    os.read(ready_r, 1)
    for n in range(frames):
        loan = bus.loan(timeout=10.0)
        frame = numpy.asarray(loan).reshape(shape)
        frame[:] = n % 256     # written in place, in shared memory
        del frame
        loan.commit(shape[0] * shape[1])
    _, status = os.waitpid(pid, 0)
shmkit.Segment.remove(name)
print("%d frames of %dx%d: %s" % (frames, shape[0], shape[1], "ok" if status == 0 else "WRONG"))
sys.exit(0 if status == 0 else 1)
