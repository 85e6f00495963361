# Fault loops (tests/helper_faults.c, tests/fault_shim.c): fail the Nth
# system call of every create, open, append, roll and repair, and of the
# tool's commands, N = 1, 2, ... until the operation succeeds; every
# failure must return its errno and leave no descriptor, mapping, name,
# file or segment behind.
#   make faults              run every loop, then a closing summary line
#   make faults ARGS='-v journal.'   one family, every N shown
# tests/test_faults.c runs the same loops inside `make test`.
FAULT_SHIM := $(BUILD)/tests/libskfault.so
FAULT_HELPER := $(BUILD)/tests/helper_faults

# The shim is a plain shared object: no sanitizer (it is preloaded before
# the runtime would be), no test library.
$(FAULT_SHIM): tests/fault_shim.c | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -std=gnu11 $(OPT) -g $(WARN) -fPIC -shared -o $@ $< -ldl

# The Criterion wrapper execs the helper under the shim: build both first.
$(BUILD)/tests/test_faults: $(FAULT_SHIM) $(FAULT_HELPER) $(TOOL)

.PHONY: faults
faults: check-deps
	$(MAKE) --no-print-directory $(FAULT_SHIM) $(FAULT_HELPER) $(TOOL)
	LD_PRELOAD=$(abspath $(FAULT_SHIM)) $(FAULT_HELPER) $(ARGS)
