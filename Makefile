# shmkit - GNU Make build.  No generator.
#
#   make                 library (static + versioned shared), tool, examples
#   make test            build and run the Criterion suite, then check residue
#   make demo            two-process demonstration over every backend
#   make bench           benchmarks (ratios against limits measured in the run)
#   make stress ARGS=    SIGKILL loops over every service (scripts/stress.sh)
#   make faults          fail the Nth system call of every create/open/append/
#                        repair and tool command (mk/faults.mk; also in make test)
#   make tsan            ThreadSanitizer stress (mk/tsan.mk: tests/stress_tsan, clang)
#   make models          SPIN models of the protocols (mk/models.mk, models/)
#   make fuzz FUZZ_TIME= libFuzzer targets (mk/fuzz.mk, fuzz/)
#   make python          the CPython module (mk/python.mk); make python-test its pytest suite
#   make bridge          the ZeroMQ bridge (mk/bridge.mk, bridge/): libshmkit-bridge.a,
#                        shmkit-bridge; make bridge-test its tests (also in make test)
#   make install PREFIX=/usr/local DESTDIR=
#   make uninstall       the same PREFIX and DESTDIR: removes what install put
#   make SAN=address,undefined test    (SAN=thread: Criterion cannot run under
#                        TSan; runs tests/stress_tsan instead)
#   make WERROR=1        warnings are errors (CI)

VERSION_MAJOR := 0
VERSION := 0.1.0

CC ?= cc
CXX ?= c++
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

comma := ,
ifeq ($(SAN),)
BUILD := build
SANFLAGS :=
else
BUILD := build/san-$(subst $(comma),-,$(SAN))
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# GCC 12 refuses atomic_thread_fence under -fsanitize=thread (-Werror=tsan).
ifneq ($(filter thread,$(subst $(comma), ,$(SAN))),)
CC := clang
endif

CPPFLAGS += -D_GNU_SOURCE -Iinclude -Isrc
CFLAGS += -std=gnu11 $(OPT) -g $(WARN) -fPIC $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS += -lpthread

LIB_SRC := $(sort $(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
# The test suite links a variant with crash points compiled in (crash.c).
TLIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/tobj/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(BUILD)/obj/tool_%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HELPER_SRC := $(sort $(wildcard tests/helper_*.c))
HELPER_BIN := $(HELPER_SRC:tests/%.c=$(BUILD)/tests/%)
# Kill-loop stress programs: no Criterion, the crash-point library.
STRESS_SRC := $(sort $(wildcard tests/stress_*.c))
STRESS_BIN := $(STRESS_SRC:tests/%.c=$(BUILD)/tests/%)
TESTLIB_SRC := $(sort $(wildcard tests/lib_*.c))
TESTLIB_OBJ := $(TESTLIB_SRC:tests/%.c=$(BUILD)/obj/t_%.o)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_OBJ := $(BENCH_SRC:bench/%.c=$(BUILD)/obj/bench_%.o)
BENCH_BIN := $(if $(BENCH_SRC),$(BUILD)/shmkit-bench)
EX_SRC := $(sort $(wildcard examples/*.c))
EX_BIN := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

STATIC := $(BUILD)/libshmkit.a
TSTATIC := $(BUILD)/libshmkit-test.a
SHARED := $(BUILD)/libshmkit.so.$(VERSION)
SONAME := libshmkit.so.$(VERSION_MAJOR)
TOOL := $(BUILD)/shmkit

CRITERION_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRITERION_LIBS := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

# Objects built through pattern rules are kept (GNU Make would delete them
# as intermediates and rebuild every test binary on the next make).
.SECONDARY: $(TESTLIB_OBJ) $(TLIB_OBJ)

.PHONY: all lib tool tests bench-bin examples test demo bench install clean deps check-deps cxx-check
all: lib tool examples

lib: $(STATIC) $(SHARED)
tool: $(TOOL)
examples: $(EX_BIN)
tests: $(TEST_BIN) $(HELPER_BIN) $(STRESS_BIN) $(TOOL)
bench-bin: $(BENCH_BIN)

$(BUILD)/obj/%.o: src/%.c src/*.h include/shmkit.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tobj/%.o: src/%.c src/*.h include/shmkit.h | $(BUILD)/tobj
	$(CC) $(CPPFLAGS) -DSK_TESTING $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tool_%.o: tools/%.c $(wildcard tools/*.h) include/shmkit.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/t_%.o: tests/%.c $(wildcard tests/*.h) include/shmkit.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CRITERION_CFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(TSTATIC): $(TLIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ) src/shmkit.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/shmkit.map \
		$(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf libshmkit.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libshmkit.so

$(TOOL): $(TOOL_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(STATIC) $(LDLIBS)

$(BUILD)/tests/test_%: tests/test_%.c $(TESTLIB_OBJ) $(TSTATIC) $(wildcard tests/*.h) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -DSK_TESTING $(CRITERION_CFLAGS) $(CFLAGS) -o $@ $< $(TESTLIB_OBJ) $(TSTATIC) $(LDFLAGS) $(CRITERION_LIBS) $(LDLIBS)

$(BUILD)/tests/helper_%: tests/helper_%.c $(TSTATIC) $(wildcard tests/*.h) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -DSK_TESTING $(CFLAGS) -o $@ $< $(TSTATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/stress_%: tests/stress_%.c $(TSTATIC) $(wildcard tests/*.h) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -DSK_TESTING $(CFLAGS) -o $@ $< $(TSTATIC) $(LDFLAGS) $(LDLIBS)

# The benchmark program (not the library) measures its peers too when they
# are installed (scripts/deps.sh --bench): ZeroMQ, SQLite, iceoryx's C
# binding, Boost.Interprocess; without one, its rows say "skipped: not
# installed".
ZMQ_LIBS := $(shell pkg-config --libs libzmq 2>/dev/null)
SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null)
ICEORYX_API := $(firstword $(wildcard /usr/include/iceoryx/v*/iceoryx_binding_c/api.h))
BOOST_MQ := $(wildcard /usr/include/boost/interprocess/ipc/message_queue.hpp)
BENCH_DEFS := $(if $(ZMQ_LIBS),-DSK_HAVE_ZMQ) $(if $(SQLITE_LIBS),-DSK_HAVE_SQLITE) \
	$(if $(ICEORYX_API),-DSK_HAVE_ICEORYX -isystem $(ICEORYX_API:%/iceoryx_binding_c/api.h=%)) \
	$(if $(BOOST_MQ),-DSK_HAVE_BOOST)
BENCH_LIBS := $(ZMQ_LIBS) $(SQLITE_LIBS) $(if $(ICEORYX_API),-liceoryx_binding_c) $(if $(BOOST_MQ),-lstdc++)
BENCH_CXX_OBJ := $(if $(BOOST_MQ),$(BUILD)/obj/bench_peer_boost_cpp.o)

$(BUILD)/obj/bench_%.o: bench/%.c $(wildcard bench/*.h) include/shmkit.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(BENCH_DEFS) $(CFLAGS) -Ibench -c $< -o $@

$(BUILD)/obj/bench_%_cpp.o: bench/%.cpp $(wildcard bench/*.h) include/shmkit.h | $(BUILD)/obj
	$(CXX) $(CPPFLAGS) $(BENCH_DEFS) -std=c++17 $(OPT) -g -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -fPIC $(SANFLAGS) -Ibench -c $< -o $@

# One benchmark program from every bench/*.c (and the C++ peer); `shmkit
# bench` runs it.
$(BUILD)/shmkit-bench: $(BENCH_OBJ) $(BENCH_CXX_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJ) $(BENCH_CXX_OBJ) $(STATIC) $(LDLIBS) -lrt $(BENCH_LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC) | $(BUILD)/examples
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tobj $(BUILD)/tests $(BUILD)/examples:
	mkdir -p $@

# The public header must also compile as C++.
cxx-check: | $(BUILD)/obj
	printf '#include "shmkit.h"\nint main(){return shmkit_strerror(0)==nullptr;}\n' > $(BUILD)/obj/cxx_check.cc
	$(CXX) -std=c++11 -Wall -Wextra -Werror -Iinclude -c $(BUILD)/obj/cxx_check.cc -o $(BUILD)/obj/cxx_check.o

# Dependencies: installed by scripts/deps.sh when missing.
check-deps:
	@sh scripts/deps.sh --check >/dev/null 2>&1 || sh scripts/deps.sh

# Each test binary runs its tests in separate processes with timeouts
# (Criterion).  scripts/run-tests.sh also fails the run if anything is
# left in /dev/shm or System V.
test: check-deps
	$(MAKE) --no-print-directory all tests bench-bin cxx-check
	sh scripts/run-tests.sh $(BUILD)
	$(MAKE) --no-print-directory python-test

# SIGKILL loops over every service (scripts/stress.sh; ARGS e.g. -n 10000).
.PHONY: stress
stress: check-deps
	$(MAKE) --no-print-directory $(STRESS_BIN)
	sh scripts/stress.sh $(BUILD) $(ARGS)

demo: check-deps
	$(MAKE) --no-print-directory all tests
	sh scripts/demo.sh $(BUILD)

# make bench also writes the figures' data and a plot (gnuplot, if
# installed) to $(BUILD)/bench/, and runs the Python benchmark.
bench: check-deps
	$(MAKE) --no-print-directory all bench-bin
	mkdir -p $(BUILD)/bench
	SHMKIT_BENCH_DATA=$(BUILD)/bench/data.tsv sh scripts/bench.sh $(BUILD)
	sh scripts/plot.sh $(BUILD)/bench/data.tsv $(BUILD)/bench/plot.png || true
	$(MAKE) --no-print-directory bench-python

# make install: header, static and shared libraries, shmkit.pc, the tool
# and the benchmark program, man pages, the contrib files (bash completion,
# systemd units for `shmkit gc`, a tmpfiles.d entry: contrib/README.md) and
# the Python package (INSTALL_PYTHON=0 leaves it out).  make uninstall
# removes exactly what install put there (same PREFIX, DESTDIR and
# directories), nothing else.
# The Python package goes where Debian's python3 looks for local packages
# (/usr/local/lib/python3.X/dist-packages for PREFIX=/usr/local).
PYVER = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYDIR ?= $(PREFIX)/lib/python$(PYVER)/dist-packages
INSTALL_PYTHON ?= 1
# bash-completion's completionsdir (pkg-config) when it is installed under
# this PREFIX, else PREFIX/share/bash-completion/completions, which it also
# reads (XDG_DATA_DIRS); systemd and systemd-tmpfiles read PREFIX/lib too.
BASHCOMP_PREFIX := $(shell pkg-config --variable=prefix bash-completion 2>/dev/null)
BASHCOMPDIR ?= $(if $(filter $(PREFIX),$(BASHCOMP_PREFIX)),$(shell pkg-config \
	--variable=completionsdir bash-completion),$(PREFIX)/share/bash-completion/completions)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MAN1 := $(notdir $(wildcard man/*.1))
MAN3 := $(notdir $(wildcard man/*.3))

.PHONY: uninstall install-python
install: lib tool bench-bin $(if $(filter 1,$(INSTALL_PYTHON)),install-python)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR)
	install -m 644 include/shmkit.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libshmkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmkit.so
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/
	[ -z "$(BENCH_BIN)" ] || install -m 755 $(BENCH_BIN) $(DESTDIR)$(BINDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		shmkit.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/shmkit.pc
	install -m 644 $(filter-out man/shmkit-bridge.1,$(wildcard man/*.1)) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.3 $(DESTDIR)$(MANDIR)/man3/
	sh scripts/man-links.sh $(DESTDIR)$(MANDIR)/man3 man/shmkit_*.3
	install -m 644 contrib/bash-completion/shmkit $(DESTDIR)$(BASHCOMPDIR)/shmkit
	sed -e 's|@BINDIR@|$(BINDIR)|' contrib/systemd/shmkit-gc.service.in \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/shmkit-gc.service
	install -m 644 contrib/systemd/shmkit-gc.timer $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 644 contrib/tmpfiles.d/shmkit.conf $(DESTDIR)$(TMPFILESDIR)/shmkit.conf

install-python: python
	install -d $(DESTDIR)$(PYDIR)/shmkit
	cp -R $(PY_OUT)/shmkit/. $(DESTDIR)$(PYDIR)/shmkit/

uninstall:
	sh scripts/man-links.sh --remove $(DESTDIR)$(MANDIR)/man3 man/shmkit_*.3
	rm -f $(DESTDIR)$(INCDIR)/shmkit.h $(DESTDIR)$(LIBDIR)/libshmkit.a \
		$(DESTDIR)$(LIBDIR)/libshmkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libshmkit.so $(DESTDIR)$(LIBDIR)/pkgconfig/shmkit.pc \
		$(DESTDIR)$(BINDIR)/shmkit $(DESTDIR)$(BINDIR)/shmkit-bench \
		$(MAN1:%=$(DESTDIR)$(MANDIR)/man1/%) $(MAN3:%=$(DESTDIR)$(MANDIR)/man3/%) \
		$(DESTDIR)$(BASHCOMPDIR)/shmkit $(DESTDIR)$(SYSTEMDUNITDIR)/shmkit-gc.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/shmkit-gc.timer $(DESTDIR)$(TMPFILESDIR)/shmkit.conf
	rm -rf $(DESTDIR)$(PYDIR)/shmkit

clean:
	rm -rf build

# Further checks, one file each (fuzzing, fault loops, models, TSan stress):
# each defines its own targets from the variables above.
-include $(wildcard mk/*.mk)
