"""`pip install ./python` builds the module standalone (pyproject.toml +
setup.py, the library's sources compiled in) with nothing from outside:
Debian's pip and setuptools, no network (--no-index, --no-build-isolation),
into a target directory.  The copy of the tree it builds from is private,
so the source tree gets no build directories.  The installed module then
talks to this one (make python's, linked with libshmkit.a) over a channel."""
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

import shmkit
from conftest import WAIT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pip") is None,
                                reason="no pip for %s (Debian: python3-pip)" % sys.executable)

CHILD = """
import sys, shmkit
assert shmkit.__file__.startswith(sys.argv[2]), shmkit.__file__
with shmkit.Channel.open(sys.argv[1]) as ch:
    ch.send(b"from the pip build", timeout=10)
"""


def test_pip_install_builds_it_standalone(tmpdir_sk, name):
    tree, target = os.path.join(tmpdir_sk, "tree"), os.path.join(tmpdir_sk, "target")
    skip = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
    for d in ("python", "src", "include"):
        shutil.copytree(os.path.join(ROOT, d), os.path.join(tree, d), ignore=skip)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                        "--no-cache-dir", "--no-build-isolation", "--no-deps",
                        "--target", target, "./python"], cwd=tree, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    for f in ("__init__.pyi", "aio.pyi", "py.typed", "aio.py"):
        assert os.path.isfile(os.path.join(target, "shmkit", f)), f
    with shmkit.Channel.create(name, capacity=4, max_msg=64) as ch:
        env = dict(os.environ, PYTHONPATH=target)
        r = subprocess.run([sys.executable, "-c", CHILD, name, target], env=env,
                           capture_output=True, timeout=WAIT * 6)
        assert r.returncode == 0, r.stderr.decode()
        assert ch.recv(timeout=WAIT) == b"from the pip build"
