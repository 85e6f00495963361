# make tsan: the library and tests/stress_tsan built with ThreadSanitizer in
# their own build directory (TSAN_BUILD), then every scenario run, failing
# on any report (exit code 66) or any discrepancy the scenarios find.
# Criterion cannot run under TSan (its runner's arena collides with TSan's
# shadow memory): stress_tsan is the concurrency check TSan can see.
#   make tsan [TSAN_CC=clang] [TSAN_BUILD=build/tsan] [TSAN_ARGS='-n 50']
TSAN_BUILD ?= build/tsan
# clang: GCC 12 refuses atomic_thread_fence under -fsanitize=thread (-Werror=tsan).
TSAN_CC ?= clang
# Counts at 500% of stress_tsan's defaults: about 20 s on 2 cores under TSan.
TSAN_ARGS ?= -n 500
TSAN_SUPP := $(CURDIR)/scripts/tsan.supp
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66:suppressions=$(TSAN_SUPP)"

.PHONY: tsan tsan-bin
tsan-bin:
	$(MAKE) --no-print-directory SAN=thread BUILD=$(TSAN_BUILD) CC=$(TSAN_CC) \
		$(TSAN_BUILD)/tests/stress_tsan

tsan: tsan-bin
	$(TSAN_ENV) $(TSAN_BUILD)/tests/stress_tsan $(TSAN_ARGS)
