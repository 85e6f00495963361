/*
 * test_rpc_tool.c - `shmkit rpc`, `call`, `serve` and `info` end to end,
 * as child processes of BUILD/shmkit: an echo server, a command as a
 * service (its output the answer, its exit status the call's), a command
 * that fails or hangs (killed; the server goes on), several workers,
 * usage errors.  Every server is started with --idle so it ends by itself;
 * every child is reaped.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(rpc_tool, .timeout = 60, .fini = sk_test_cleanup);

static char out[8192];
static char tool_path[4200];

static const char *tool(void)
{
	snprintf(tool_path, sizeof(tool_path), "%s/../shmkit", sk_test_dir());
	return tool_path;
}

#define SK(...) sk_test_run(out, sizeof(out), tool(), __VA_ARGS__, NULL)

/* Start `shmkit serve NAME ARGS...` in the background. */
static pid_t serve(const char *const *argv)
{
	pid_t pid = sk_test_spawn(argv, -1, NULL);
	cr_assert_gt(pid, 0);
	return pid;
}

static const char *bare(const char *name) /* "posix:/x" -> "x" for the tool */
{
	return name + strlen("posix:/");
}

Test(rpc_tool, echo_server_answers_each_message)
{
	const char *n = bare(sk_test_new_name("posix"));
	cr_assert_eq(SK("rpc", n, "--max-request", "64", "--clients", "4"), 0, "%s", out);
	cr_expect(strstr(out, "created"), "%s", out);
	cr_assert_eq(SK("rpc", n), 0);
	cr_expect(strstr(out, "exists"), "%s", out);
	const char *argv[] = { tool(), "serve", n, "--echo", "--idle", "3000", NULL };
	pid_t s = serve(argv);
	cr_assert_eq(SK("call", n, "hello", "world"), 0, "%s", out);
	cr_expect_str_eq(out, "hello\nworld\n");
	cr_assert_eq(SK("info", n), 0);
	cr_expect(strstr(out, "kind:       rpc"), "%s", out);
	cr_expect(strstr(out, "2 sent, 2 answered"), "%s", out);
	cr_assert_eq(SK("info", n, "--json"), 0);
	cr_expect(strstr(out, "\"rpc\":{\"max_clients\":4"), "%s", out);
	cr_expect_eq(sk_test_reap(s), 0);
}

/* A command as a service: its stdout is the answer, its exit status the
 * call's (call exits 1 and says it); several workers answer at once. */
Test(rpc_tool, a_command_as_a_service)
{
	const char *n = bare(sk_test_new_name("posix"));
	cr_assert_eq(SK("rpc", n), 0, "%s", out);
	const char *argv[] = { tool(), "serve", n, "--jobs", "2", "--idle", "3000", "--",
		               "tr", "a-z", "A-Z", NULL };
	pid_t s = serve(argv);
	cr_assert_eq(SK("call", n, "shout", "louder"), 0, "%s", out);
	cr_expect_str_eq(out, "SHOUT\nLOUDER\n");
	cr_expect_eq(sk_test_reap(s), 0);
	const char *fail[] = { tool(), "serve", n, "--idle", "3000", "--", "sh", "-c",
		               "cat; exit 3", NULL };
	s = serve(fail);
	cr_expect_eq(SK("call", n, "oops"), 1);
	cr_expect_str_eq(out, "oops\n", "the output still comes");
	cr_expect_eq(sk_test_reap(s), 0);
}

/* A command that hangs is killed at --timeout (status 137) or when its
 * caller gives up; the server goes on answering. */
Test(rpc_tool, a_hanging_command_is_killed_and_the_server_goes_on)
{
	const char *n = bare(sk_test_new_name("posix"));
	cr_assert_eq(SK("rpc", n), 0, "%s", out);
	const char *argv[] = { tool(), "serve", n, "--timeout", "300", "--idle", "4000", "--",
		               "sh", "-c", "read x; [ \"$x\" = hang ] && sleep 30; echo \"ok $x\"",
		               NULL };
	pid_t s = serve(argv);
	cr_expect_eq(SK("call", n, "--timeout", "20000", "hang"), 1, "%s", out);
	cr_expect_eq(SK("call", n, "--timeout", "20000", "fine"), 0, "%s", out);
	cr_expect_str_eq(out, "ok fine\n\n", "the command's newline, then call's");
	cr_expect_eq(SK("call", n, "--timeout", "100", "hang"), 1, "the caller gives up");
	cr_expect_eq(SK("call", n, "--timeout", "20000", "again"), 0, "%s", out);
	cr_expect_str_eq(out, "ok again\n\n");
	cr_expect_eq(sk_test_reap(s), 0);
	/* (Whether the 100 ms call was given up by its caller or answered
	 * 137 by the server that killed its command at that same deadline is
	 * a race: either way the call failed, as checked above.) */
}

Test(rpc_tool, usage_and_failures)
{
	const char *n = bare(sk_test_new_name("posix"));
	cr_expect_eq(SK("rpc"), 2);
	cr_expect_eq(SK("rpc", n, "--clients", "0"), 2);
	cr_expect_eq(SK("rpc", n, "--depth", "65"), 2);
	cr_expect_eq(SK("rpc", n, "--max-request", "1G"), 2);
	cr_expect_eq(SK("call"), 2);
	cr_expect_eq(SK("call", n, "x"), 1, "no such service");
	cr_expect_eq(SK("serve", n), 2, "neither --echo nor a command");
	cr_expect_eq(SK("serve", n, "--echo", "--", "cat"), 2, "both");
	cr_expect_eq(SK("serve", n, "--jobs", "0", "--echo"), 2);
	cr_expect_eq(SK("call", n, "--timeout", "x", "y"), 2);
	cr_expect_eq(sk_test_exists(sk_test_new_name("posix")), 0);
	cr_assert_eq(SK("rpc", n, "--max-request", "8"), 0);
	cr_expect_eq(SK("call", n, "--timeout", "50", "a request too long"), 1);
	cr_expect_eq(SK("call", n, "--timeout", "50", "short"), 1, "nobody serves");
}
