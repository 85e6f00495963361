# The CPython extension module (python/, issue 13), built with Debian's
# Python 3 (python3-dev, python3-setuptools; tests: python3-pytest,
# python3-numpy).
#   make python        build python/ against $(STATIC) into $(BUILD)/python:
#                      the package shmkit (python/shmkit: the extension
#                      shmkit._shmkit, shmkit.aio, stubs) - import with
#                      PYTHONPATH=$(BUILD)/python
#   make python-test   its pytest suite (python/tests); fails if a test left
#                      anything in /dev/shm, System V or /tmp
# A sanitizer build (SAN=...) cannot load an instrumented library into an
# uninstrumented interpreter: the module then compiles the library's
# sources itself, without the sanitizer (what `pip install ./python` does).
PYTHON ?= /usr/bin/python3
PY_OUT := $(BUILD)/python
PY_MOD := $(PY_OUT)/.built
PY_LIB := $(if $(SAN),,$(STATIC))
PY_DEPS := $(wildcard python/src/*.c python/src/*.h python/shmkit/*) python/src/shmkit.map python/setup.py \
	include/shmkit.h $(if $(SAN),$(LIB_SRC) $(wildcard src/*.h),$(STATIC))

.PHONY: python python-test
python: $(PY_MOD)

$(PY_MOD): $(PY_DEPS)
	mkdir -p $(PY_OUT)
	rm -f $(PY_OUT)/shmkit.*.so   # the single-module layout before the package
	cd python && SHMKIT_LIBRARY=$(if $(PY_LIB),$(abspath $(PY_LIB))) SHMKIT_WERROR=$(WERROR) \
		$(PYTHON) setup.py -q build --force --build-lib $(abspath $(PY_OUT)) \
		--build-temp $(abspath $(PY_OUT))/tmp
	touch $@

# The tests run the tool too (a C process that must see Python's writes).
python-test: $(PY_MOD) $(TOOL)
	PYTHONDONTWRITEBYTECODE=1 SHMKIT_TOOL=$(abspath $(TOOL)) PYTHONPATH=$(abspath $(PY_OUT)) \
		$(PYTHON) -m pytest -q -p no:cacheprovider python/tests

# The Python benchmark (bench/python/bench.py, run by make bench): the
# binding against multiprocessing's Queue, Pipe and shared_memory + Event,
# interleaved in one run, as ratios; --quick (CI) and --json in BENCH_ARGS pass on.
.PHONY: bench-python
bench-python: $(PY_MOD)
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$(abspath $(PY_OUT)) \
		$(PYTHON) bench/python/bench.py $(filter --quick --json,$(BENCH_ARGS))
