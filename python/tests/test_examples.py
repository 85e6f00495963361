"""The programs in examples/python run and say ok (each exits 0 only when
what it moved checked out), with this run's names, leaving nothing."""
import os

import pytest

from conftest import finish, spawn, unique

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


@pytest.mark.parametrize("script,count", [("producer_consumer.py", 500),
                                          ("numpy_frames.py", 30),
                                          ("asyncio_service.py", 20)])
def test_example_runs(script, count):
    pytest.importorskip("numpy")
    path = os.path.join(EXAMPLES, script)
    name = "posix:/" + unique("ex")
    code = "import runpy, sys; sys.argv = [%r] + sys.argv[1:]; runpy.run_path(%r, run_name='__main__')" % (path, path)
    out = finish(spawn(code, name, count))
    assert b": ok" in out, out
    assert not os.path.exists("/dev/shm/" + name[len("posix:/"):])
