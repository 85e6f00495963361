# The ZeroMQ bridge (bridge/, issue 14): its own library and command,
# linked with libzmq; the core library does not depend on it.
#   make bridge        $(BUILD)/libshmkit-bridge.a and $(BUILD)/shmkit-bridge
#   make bridge-test   its tests (bridge/tests, Criterion), then the residue
#                      check of scripts/run-tests.sh
# Without libzmq (ZMQ_LIBS empty: pkg-config knows no libzmq) nothing is
# built but a test binary whose tests say they were skipped; `make tests`
# builds it too, so `make test` runs it (as $(BUILD)/tests/test_bridge).
BRIDGE_LIB := $(BUILD)/libshmkit-bridge.a
BRIDGE_CMD := $(BUILD)/shmkit-bridge
BRIDGE_TEST := $(BUILD)/tests/test_bridge
BRIDGE_HELPER := $(BUILD)/tests/helper_bridge
BRIDGE_LIB_SRC := bridge/auth.c bridge/bridge.c bridge/chan.c bridge/frame.c bridge/journal.c bridge/link.c bridge/rpc.c bridge/stats.c
BRIDGE_OBJ := $(BRIDGE_LIB_SRC:bridge/%.c=$(BUILD)/obj/bridge_%.o)
BRIDGE_HDR := bridge/shmkit-bridge.h bridge/internal.h include/shmkit.h
BRIDGE_ZMQ := $(if $(ZMQ_LIBS),-DSK_HAVE_ZMQ)
# The configuration file is read by libinih (Debian libinih-dev) where
# pkg-config knows it; without it --config says so.
INIH_LIBS := $(shell pkg-config --libs inih 2>/dev/null)
BRIDGE_INIH := $(if $(INIH_LIBS),-DSK_HAVE_INIH $(shell pkg-config --cflags inih 2>/dev/null))

BRIDGE_BENCH := $(BUILD)/bench_bridge

.PHONY: bridge bridge-test bridge-bench
tests: $(BRIDGE_TEST)

ifneq ($(ZMQ_LIBS),)
bridge: $(BRIDGE_LIB) $(BRIDGE_CMD)

$(BUILD)/obj/bridge_%.o: bridge/%.c $(BRIDGE_HDR) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) -Ibridge $(BRIDGE_INIH) $(CFLAGS) -c $< -o $@

$(BRIDGE_LIB): $(BRIDGE_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BRIDGE_CMD): $(BUILD)/obj/bridge_main.o $(BRIDGE_LIB) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $< $(BRIDGE_LIB) $(STATIC) $(ZMQ_LIBS) $(INIH_LIBS) $(LDLIBS)

# make bridge-bench: the bridge against ZeroMQ alone (bridge/bench_bridge.c).
$(BRIDGE_BENCH): bridge/bench_bridge.c $(BRIDGE_LIB) $(STATIC) $(BRIDGE_HDR)
	$(CC) $(CPPFLAGS) -Ibridge $(CFLAGS) -o $@ $< $(BRIDGE_LIB) $(STATIC) $(ZMQ_LIBS) $(LDFLAGS) $(LDLIBS)

bridge-bench: $(BRIDGE_BENCH)
	$(BRIDGE_BENCH)

# make install puts the command beside shmkit (where `shmkit bridge`
# looks first) and its man page where libzmq is there; make uninstall takes
# them away (libzmq or not: below).  The library and its header are not
# installed: the command is the interface (no pkg-config file or stable
# ABI for libshmkit-bridge.a).  debian/rules runs bridge and bridge-install
# on their own (the package shmkit-bridge).
.PHONY: bridge-install
install: bridge-install
bridge-install: $(BRIDGE_CMD)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BRIDGE_CMD) $(DESTDIR)$(BINDIR)/
	install -m 644 man/shmkit-bridge.1 $(DESTDIR)$(MANDIR)/man1/

# The test runs the command as two bridge processes, and one bridge in
# its own process against forged frames; helper_bridge produces and
# consumes inside the simulated hosts.
$(BRIDGE_TEST): $(BRIDGE_CMD) $(BRIDGE_HELPER)

$(BRIDGE_HELPER): bridge/tests/helper_bridge.c include/shmkit.h $(STATIC) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) $(LDLIBS)
BRIDGE_TEST_LIBS := $(BRIDGE_LIB) $(ZMQ_LIBS)
else
bridge bridge-bench bridge-install:
	@echo "bridge: libzmq not found (pkg-config libzmq): skipped"
endif

# An installed bridge goes whether or not this make finds libzmq.
.PHONY: bridge-uninstall
uninstall: bridge-uninstall
bridge-uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shmkit-bridge $(DESTDIR)$(MANDIR)/man1/shmkit-bridge.1

$(BRIDGE_TEST): bridge/tests/test_bridge.c $(BRIDGE_HDR) $(TESTLIB_OBJ) $(STATIC) | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Ibridge -Itests $(BRIDGE_ZMQ) $(BRIDGE_INIH) $(CRITERION_CFLAGS) $(CFLAGS) -o $@ $< \
		$(TESTLIB_OBJ) $(BRIDGE_TEST_LIBS) $(STATIC) $(LDFLAGS) $(CRITERION_LIBS) $(LDLIBS)

# Only the bridge's binary, with the run id and residue check of
# scripts/run-tests.sh (a temporary directory holding just its link).
# Without libzmq the binary just says its test was skipped (run-tests.sh
# would fail a run in which nothing passed).
ifneq ($(ZMQ_LIBS),)
bridge-test: $(BRIDGE_TEST)
	@d=$$(mktemp -d $(BUILD)/bridge-test.XXXXXX) && mkdir $$d/tests && \
		ln -s $(abspath $(BRIDGE_TEST)) $$d/tests/test_bridge && \
		{ sh scripts/run-tests.sh $$d; rc=$$?; rm -rf $$d; exit $$rc; }
else
bridge-test: $(BRIDGE_TEST)
	$(BRIDGE_TEST) --verbose --short-filename 2>&1 | grep -e SKIP -e Synthesis
endif
