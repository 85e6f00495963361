/*
 * test_chan_tool.c - `shmkit chan`, `send`, `recv` and the channel part of
 * `shmkit info`, run as a separate program (build/shmkit, in the parent of
 * the test binaries' directory), cross-checked through the library.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(chan_tool, .timeout = 60, .fini = sk_test_cleanup);

static char out[8192];

/* Run the tool with stdin from `input` (NULL: /dev/null). */
static int tool_in(const char *input, const char *const *args)
{
	char tool[PATH_MAX];
	const char *argv[16] = { tool };
	int in = -1, pfd[2], fd;
	size_t n = 1;

	snprintf(tool, sizeof(tool), "%s/../shmkit", sk_test_dir()); /* build/shmkit */
	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	if (input) {
		cr_assert_eq(pipe(pfd), 0);
		cr_assert_eq(write(pfd[1], input, strlen(input)), (ssize_t)strlen(input));
		close(pfd[1]);
		in = pfd[0];
	}
	pid_t pid = sk_test_spawn(argv, in, &fd);
	if (in >= 0)
		close(in);
	cr_assert_gt(pid, 0, "spawn %s: %s", tool, strerror(-pid));
	return sk_test_finish(pid, fd, out, sizeof(out));
}

#define TOOL_RUN(input, ...) tool_in(input, (const char *const[]){ __VA_ARGS__, NULL })

static void create_send_recv(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);

	cr_assert_eq(TOOL_RUN(NULL, "chan", name, "--capacity", "5", "--max-msg", "1K"), 0, "%s", out);
	cr_expect(strstr(out, "created") && strstr(out, "capacity 8"), "%s", out);
	cr_assert_eq(TOOL_RUN(NULL, "send", name, "hello", "wide world"), 0);
	cr_assert_eq(TOOL_RUN("line one\n\nline three", "send", name), 0);
	cr_assert_eq(TOOL_RUN(NULL, "info", name), 0);
	cr_expect(strstr(out, "depth:       5 queued"), "%s", out);
	cr_expect(strstr(out, "round_up(32 + 1024, 64)"), "%s", out);
	cr_assert_eq(TOOL_RUN(NULL, "recv", name, "-n", "2"), 0);
	cr_expect_str_eq(out, "hello\nwide world\n");
	cr_assert_eq(TOOL_RUN(NULL, "recv", name), 0, "drains what is queued");
	cr_expect_str_eq(out, "line one\n\nline three\n");
	cr_assert_eq(TOOL_RUN(NULL, "recv", name), 0, "empty: nothing, success");
	cr_expect_str_eq(out, "");
	cr_expect_eq(TOOL_RUN(NULL, "recv", name, "-n", "1", "--timeout", "30"), 1, "-n times out");
	cr_expect_eq(TOOL_RUN(NULL, "recv", name, "--follow", "--timeout", "30"), 0);
	cr_assert_eq(TOOL_RUN(NULL, "chan", name), 0);
	cr_expect(strstr(out, "exists"), "%s", out);
	cr_expect_eq(TOOL_RUN(NULL, "chan", name, "--excl"), 1);
}

Test(chan_tool, posix) { create_send_recv("posix"); }
Test(chan_tool, sysv) { create_send_recv("sysv"); }
Test(chan_tool, file) { create_send_recv("file"); }

Test(chan_tool, library_and_tool_interoperate)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 2, .max_msg = 16, .flags = SHMKIT_CHAN_SPSC };
	shmkit_chan *ch;
	char buf[16];

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	cr_assert_eq(shmkit_chan_send(ch, "from lib", 8, 0), 0);
	cr_assert_eq(TOOL_RUN(NULL, "recv", name), 0);
	cr_expect_str_eq(out, "from lib\n");
	/* SPSC: this handle is the producer until it is closed. */
	cr_expect_eq(TOOL_RUN(NULL, "send", name, "--timeout", "0", "x"), 1, "a second producer");
	cr_assert_eq(shmkit_chan_close(ch), 0);
	cr_assert_eq(shmkit_chan_open(&ch, name, NULL), 0);
	cr_assert_eq(TOOL_RUN(NULL, "send", name, "a", "b"), 0);
	cr_expect_eq(TOOL_RUN(NULL, "send", name, "--timeout", "0", "c"), 1, "full");
	cr_expect_eq(TOOL_RUN(NULL, "send", name, "--timeout", "0", "seventeen bytes!!"), 1);
	cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 1);
	cr_expect_eq(buf[0], 'a');
	cr_expect_eq(TOOL_RUN(NULL, "recv", name, "--timeout", "0"), 1, "a second consumer");
	cr_assert_eq(TOOL_RUN(NULL, "info", "--json", name), 0);
	cr_expect(strstr(out, "\"chan\":{\"spsc\":true,\"capacity\":2,\"max_msg\":16,\"depth\":1,"
	                      "\"sent\":3,\"received\":2"), "%s", out);
	char roles[64];
	snprintf(roles, sizeof(roles), "\"producer\":0,\"consumer\":%d,", (int)getpid());
	cr_expect(strstr(out, roles), "%s", out);
	cr_expect(strstr(out, "\"formula\":"), "%s", out);
	shmkit_chan_close(ch);
}

Test(chan_tool, usage_errors)
{
	const char *name = sk_test_new_name("posix");

	cr_expect_eq(TOOL_RUN(NULL, "chan", "--help"), 0);
	cr_expect(strstr(out, "usage: shmkit chan"), "%s", out);
	cr_expect_eq(TOOL_RUN(NULL, "send", "--help"), 0);
	cr_expect_eq(TOOL_RUN(NULL, "recv", "--help"), 0);
	cr_expect_eq(TOOL_RUN(NULL, "chan"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "chan", name, "--capacity", "0"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "chan", name, "--max-msg", "x"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "chan", name, "--bogus"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "recv", name, "-n", "many"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "send", name, "--timeout", "soon", "x"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "send", name, "-n", "1", "x"), 2);
	cr_expect_eq(TOOL_RUN(NULL, "recv", name), 1, "no such channel");
	cr_expect_eq(sk_test_exists(name), 0, "nothing was created");
}
