# Fuzzing (issue 10): libFuzzer targets in fuzz/, each with a seed corpus
# in fuzz/corpus/TARGET/ and the inputs of past findings in
# fuzz/regress/TARGET/.  Needs clang with libFuzzer (scripts/deps.sh).
#
#   make fuzz-build                  build every target (clang, ASan + UBSan)
#   make fuzz FUZZ_TIME=60           run each target that long on its corpus
#                                    (new inputs go to a scratch directory
#                                    under $(BUILD)/fuzz/, the committed
#                                    corpus is not grown); fails on a finding,
#                                    whose input is left in
#                                    $(BUILD)/fuzz/artifacts/TARGET/
#   make fuzz FUZZ_TARGETS=fuzz_chan  only some targets
#   make fuzz-regress                run every corpus and regress input once
#                                    (no fuzzing): past findings stay fixed
#   make fuzz-seeds                  rewrite fuzz/corpus/ from real objects
#                                    (fuzz/gen_seeds.c); commit the result
#
# The library is compiled again for the fuzzer (its own objects under
# $(BUILD)/fuzz/obj); the tool's sources too, with main renamed, for the
# parsers of fuzz_parse.

FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_FLAGS ?=
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -O1 -g $(WARN) $(FUZZ_SAN)
# The library and tool objects are built without -Werror here: they are
# the main build's (gcc, -Werror in CI); a clang-only warning there must
# not stop the fuzzing.  The targets themselves keep $(WARN) as given.
FUZZ_LIB_CFLAGS := $(filter-out -Werror,$(FUZZ_CFLAGS))
FUZZ_CPPFLAGS := -D_GNU_SOURCE -Iinclude -Isrc -Itools -Ifuzz
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_ALL := $(filter-out fuzz_common,$(FUZZ_SRC:fuzz/%.c=%))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BIN := $(FUZZ_ALL:%=$(FUZZ_DIR)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(FUZZ_DIR)/obj/tool_%.o)
FUZZ_COMMON_OBJ := $(FUZZ_DIR)/obj/fuzz_common.o
# libFuzzer options of every run: a hang is an input running past 30 s
# (every operation a target scripts has a timeout of at most 1 ms, and
# the targets abort an operation that takes 3 s: fuzz_common.h).
FUZZ_RUN_OPTS := -timeout=30 -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1

.PHONY: fuzz fuzz-build fuzz-regress fuzz-seeds
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TOOL_OBJ) $(FUZZ_COMMON_OBJ)

fuzz-build: $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: src/%.c src/*.h include/shmkit.h | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_LIB_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# The tool's main becomes an ordinary function, so its helpers link in.
$(FUZZ_DIR)/obj/tool_%.o: tools/%.c tools/*.h include/shmkit.h | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_LIB_CFLAGS) -Wno-missing-prototypes -Dmain=sk_tool_main \
		-fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_COMMON_OBJ): fuzz/fuzz_common.c fuzz/fuzz_common.h | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/*.h $(FUZZ_COMMON_OBJ) $(FUZZ_LIB_OBJ) $(FUZZ_TOOL_OBJ)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_COMMON_OBJ) $(FUZZ_LIB_OBJ) $(if $(filter parse,$*),$(FUZZ_TOOL_OBJ)) \
		$(LDLIBS) -lrt

$(FUZZ_DIR)/obj:
	mkdir -p $@

# Each target runs FUZZ_TIME seconds on its committed corpus and regress
# inputs (read only) plus a scratch directory that takes what it finds
# new; every target runs even after a finding, and the run fails at the
# end if any found one.  Leftovers of a crashed run outside a private
# /dev/shm (fuzz_common.h) are removed.
fuzz: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz: $$t for $(FUZZ_TIME) s"; \
		rm -rf $(FUZZ_DIR)/work/$$t; mkdir -p $(FUZZ_DIR)/work/$$t $(FUZZ_DIR)/artifacts/$$t; \
		mkdir -p fuzz/regress/$$t; \
		$(FUZZ_DIR)/$$t $(FUZZ_RUN_OPTS) -max_total_time=$(FUZZ_TIME) \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ $(FUZZ_FLAGS) \
			$(FUZZ_DIR)/work/$$t fuzz/corpus/$$t fuzz/regress/$$t \
			> $(FUZZ_DIR)/$$t.log 2>&1 || { rc=1; echo "FINDING in $$t: see $(FUZZ_DIR)/$$t.log and $(FUZZ_DIR)/artifacts/$$t/"; tail -40 $(FUZZ_DIR)/$$t.log; }; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' $(FUZZ_DIR)/$$t.log; \
		grep -E '[[:space:]]DONE[[:space:]]' $(FUZZ_DIR)/$$t.log | tail -1; \
		rm -rf $(FUZZ_DIR)/work/$$t; \
	done; \
	rm -rf /dev/shm/sktest-fuzz-*; \
	exit $$rc

fuzz-regress: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/regress/$$t; \
		printf '== fuzz-regress: %s (%s inputs) ... ' $$t \
			"$$(find fuzz/corpus/$$t fuzz/regress/$$t -type f | wc -l)"; \
		if $(FUZZ_DIR)/$$t $(FUZZ_RUN_OPTS) -runs=0 fuzz/corpus/$$t fuzz/regress/$$t \
			> $(FUZZ_DIR)/$$t.regress.log 2>&1; then echo ok; \
		else rc=1; echo FAILED; tail -40 $(FUZZ_DIR)/$$t.regress.log; fi; \
	done; \
	rm -rf /dev/shm/sktest-fuzz-*; \
	exit $$rc

# The seed generator uses the ordinary library (valid objects only).
$(FUZZ_DIR)/gen_seeds: fuzz/gen_seeds.c fuzz/*.h $(FUZZ_COMMON_OBJ) $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_COMMON_OBJ) $(FUZZ_LIB_OBJ) $(LDLIBS)

fuzz-seeds: $(FUZZ_DIR)/gen_seeds
	$(FUZZ_DIR)/gen_seeds fuzz/corpus
