"""Build the shmkit extension module.

Two ways to get the C library into it:
  - SHMKIT_LIBRARY=/path/to/libshmkit.a (what `make python` does): link the
    static library the main build made (compiled -fPIC), so the module runs
    exactly the library the C tests ran;
  - otherwise (pip install ./python): compile the library's sources
    (../src/*.c) into the extension, so it builds standalone with nothing
    but a C compiler and Python's headers.
Either way only PyInit__shmkit is exported (a linker version script), so the
library's symbols never clash with another copy loaded in the process.
SHMKIT_WERROR=1 makes warnings errors.

The package shmkit (python/shmkit) holds the extension as shmkit._shmkit,
re-exported by __init__.py, beside pure-Python helpers (shmkit.aio), type
stubs and py.typed (PEP 561).
"""
import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
lib = os.environ.get("SHMKIT_LIBRARY")

# Absolute paths: the objects of ../src then land inside build_temp.
sources = sorted(glob.glob(os.path.join(HERE, "src", "*.c")))
extra_objects = []
if lib:
    extra_objects.append(os.path.abspath(lib))
else:
    sources += sorted(glob.glob(os.path.join(ROOT, "src", "*.c")))

cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
          "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
if os.environ.get("SHMKIT_WERROR") == "1":
    cflags.append("-Werror")

ext = Extension(
    "shmkit._shmkit",
    sources=sources,
    include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src"),
                  os.path.join(HERE, "src")],
    define_macros=[("_GNU_SOURCE", None)],
    extra_compile_args=cflags,
    extra_objects=extra_objects,
    extra_link_args=["-Wl,--version-script=" + os.path.join(HERE, "src", "shmkit.map"),
                     "-lpthread"],
    depends=sorted(glob.glob(os.path.join(HERE, "src", "*.h")))
    + [os.path.join(ROOT, "include", "shmkit.h")],
)

setup(ext_modules=[ext], packages=["shmkit"], package_dir={"shmkit": "shmkit"},
      package_data={"shmkit": ["py.typed", "*.pyi"]}, include_package_data=False)
