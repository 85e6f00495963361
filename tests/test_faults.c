/*
 * test_faults.c - the fault loops (tests/helper_faults.c) inside the
 * suite: each test execs the helper under the fault shim
 * (LD_PRELOAD=libskfault.so, built beside the tests by mk/faults.mk) for
 * one family of operations; the helper fails the Nth system call of each
 * operation, N = 1, 2, ... until it succeeds, and checks the errors,
 * descriptors, mappings and leftovers of every failure.  A failing loop
 * shows the helper's report.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib_test.h"

TestSuite(faults, .timeout = 120);

/* Run helper_faults with args under the shim; its exit code, output in
 * out. */
static int loops(char *out, size_t len, const char *const *args)
{
	char shim[4096];
	const char *argv[16] = { "helper_faults" };
	int n = 1, fd;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* A sanitizer's runtime must come first among the libraries and
	 * intercepts some of these calls itself: the loops run in the plain
	 * build (make test, make faults), and are counted skipped here. */
	cr_skip_test("fault loops need the plain build (LD_PRELOAD under a sanitizer)");
#endif
	snprintf(shim, sizeof(shim), "%s/libskfault.so", sk_test_dir());
	cr_assert(access(shim, R_OK) == 0, "%s is missing: mk/faults.mk builds it with the tests",
	          shim);
	/* This test's own process only (Criterion runs each in its own). */
	setenv("LD_PRELOAD", shim, 1);
	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	unsetenv("LD_PRELOAD");
	cr_assert(pid > 0, "cannot start helper_faults: %d", (int)pid);
	return sk_test_finish(pid, fd, out, len);
}

static void family(const char *prefix)
{
	static char out[1 << 16];
	const char *const args[] = { prefix, NULL };
	int rc = loops(out, sizeof(out), args);

	cr_log_info("%s", out);
	cr_assert(rc == 0, "fault loops of %s failed (exit %d):\n%s", prefix, rc, out);
	cr_assert(strstr(out, " 0 failures"), "no summary from helper_faults:\n%s", out);
}

Test(faults, segments) { family("seg."); }
Test(faults, channels) { family("chan."); }
Test(faults, bus) { family("bus."); }
Test(faults, rpc) { family("rpc."); }
Test(faults, journal) { family("journal."); }
Test(faults, tool) { family("tool."); }

/* Every call the loops claim to cover was intercepted (all of them run,
 * one pass: the helper checks the counts only when all run). */
Test(faults, every_call_intercepted)
{
	static char out[1 << 16];
	const char *const args[] = { "-1", NULL };
	int rc = loops(out, sizeof(out), args);

	cr_assert(rc == 0 && !strstr(out, "never intercepted"), "exit %d:\n%s", rc, out);
	cr_assert(strstr(out, "calls intercepted in process:"), "%s", out);
}

/* The loop catches what it is for: an operation that leaks a descriptor
 * and a file on a failure path fails it. */
Test(faults, a_leak_fails_the_loop)
{
	static char out[1 << 16];
	const char *const args[] = { "selftest.", NULL };
	int rc = loops(out, sizeof(out), args);

	cr_assert(rc == 1, "the leaky operation passed (exit %d):\n%s", rc, out);
	cr_assert(strstr(out, "FAIL selftest.leaky N=2: ftruncate failed"), "%s", out);
	cr_assert(strstr(out, "fd +") && strstr(out, "object + file"), "%s", out);
}
