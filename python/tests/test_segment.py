"""Segments: create/open/remove, errors, the buffer protocol in place."""
import errno
import os
import socket
import subprocess

import numpy as np
import pytest

import shmkit
from conftest import TOOL, WAIT, unique


def test_create_open_remove(name):
    with shmkit.Segment.create(name, 4096, exclusive=True) as seg:
        assert len(seg) == seg.size == 4096
        assert seg.kind == shmkit.KIND_BYTES
        assert seg.backend == shmkit.POSIX
        assert seg.stat()["name"] == "posix:/" + name
        with pytest.raises(FileExistsError):
            shmkit.Segment.create(name, 4096, exclusive=True)
        with shmkit.Segment.open(name) as other:
            assert other.size == 4096
    assert seg.closed
    shmkit.Segment.remove(name)
    with pytest.raises(FileNotFoundError) as ei:
        shmkit.Segment.open(name)
    assert ei.value.errno == errno.ENOENT and ei.value.filename == name
    with pytest.raises(FileNotFoundError):
        shmkit.Segment.remove(name)


def test_errors_carry_detail():
    with pytest.raises(OSError) as ei:
        shmkit.Segment.create("anon", 1 << 60)
    assert ei.value.errno in (errno.ENOMEM, errno.ENOSPC, errno.EINVAL)
    with pytest.raises(ValueError):
        shmkit.Segment.create("x", 0)
    assert issubclass(shmkit.CorruptError, OSError)
    assert "message" in shmkit.strerror(errno.EBADMSG).lower() or shmkit.strerror(-errno.EBADMSG)


def test_numpy_in_place(name):
    with shmkit.Segment.create(name, 8192) as a, shmkit.Segment.open(name) as b:
        x = np.frombuffer(a, dtype=np.uint32)
        y = np.frombuffer(b, dtype=np.uint32)
        x[:4] = [1, 2, 3, 0xDEADBEEF]
        assert list(y[:4]) == [1, 2, 3, 0xDEADBEEF]
        del x, y


def test_close_with_live_view_is_buffererror(name):
    seg = shmkit.Segment.create(name, 4096)
    mv = memoryview(seg)
    arr = np.asarray(seg)
    with pytest.raises(BufferError):
        seg.close()
    mv.release()
    with pytest.raises(BufferError):
        seg.close()
    del arr
    seg.close()
    with pytest.raises(ValueError):
        memoryview(seg)
    seg.close()  # a second close is a no-op


def test_readonly_mapping(name):
    with shmkit.Segment.create(name, 4096), shmkit.Segment.open(name, readonly=True) as ro:
        mv = memoryview(ro)
        assert mv.readonly
        with pytest.raises(TypeError):
            mv[0] = 1
        mv.release()


def test_c_process_sees_numpy_write(name):
    """A write through a numpy view is read by another (C) process."""
    if not os.access(TOOL, os.X_OK):
        pytest.skip("no shmkit tool at " + TOOL)
    with shmkit.Segment.create(name, 4096) as seg:
        arr = np.frombuffer(seg, dtype=np.uint8)
        arr[:11] = np.frombuffer(b"hello numpy", dtype=np.uint8)
        out = subprocess.run([TOOL, "read", name, "--length", "11"], capture_output=True,
                             timeout=WAIT, check=True)
        assert out.stdout == b"hello numpy"
        # and the other way round: the tool writes, the view sees it
        subprocess.run([TOOL, "write", name, "--offset", "100"], input=b"from C",
                       timeout=WAIT, check=True)
        assert arr[100:106].tobytes() == b"from C"
        del arr


def test_stat_and_list(name):
    with shmkit.Segment.create(name, 4096):
        st = shmkit.stat(name)
        assert st["kind"] == shmkit.KIND_BYTES and st["data_size"] == 4096
        assert any(d["name"] == "posix:/" + name for d in shmkit.list())


def test_anon_shared_with_fork():
    with shmkit.Segment.create("anon", 4096) as seg:
        arr = np.frombuffer(seg, dtype=np.uint8)
        pid = os.fork()
        if pid == 0:
            arr[0] = 42
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert arr[0] == 42
        del arr


def test_memfd_fd_passing():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b, shmkit.Segment.create("memfd:" + unique("fd"), 4096) as seg:
        seg.send_fd(a)
        with shmkit.Segment.recv_fd(b) as got:
            assert got.size == seg.size and got.backend == shmkit.MEMFD
            memoryview(seg)[:3] = b"abc"
            assert bytes(memoryview(got)[:3]) == b"abc"
        seg.send_fd(a)
        other = shmkit.Segment.recv_fd(b)
        with pytest.raises(OSError):
            shmkit.Channel.attach(other)    # a byte segment is no channel
        assert not other.closed             # given back on failure
        other.close()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with shmkit.Channel.create("memfd:" + unique("ch"), capacity=4, max_msg=32) as tx, \
            a, b:
        tx.send_fd(a)
        with shmkit.Channel.attach(shmkit.Segment.recv_fd(b)) as rx:
            tx.send(b"over the fd")
            assert rx.recv(timeout=WAIT) == b"over the fd"
