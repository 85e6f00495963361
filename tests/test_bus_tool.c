/*
 * test_bus_tool.c - `shmkit bus`, `pub`, `sub` and `info` on a bus, run as
 * the built program (build/shmkit, beside the tests directory).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(bus_tool, .timeout = 60, .fini = sk_test_cleanup);

/* build/shmkit, beside the tests directory, as an absolute path. */
static const char *tool(void)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/../shmkit", sk_test_dir());
	return path;
}
#define TOOL tool()

/* Run the tool with stdin from `in` (NULL: /dev/null); stdout into out. */
static int run(char *out, size_t len, const char *in, const char *const argv[])
{
	int fd = -1;
	if (in) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/sktest-%d-stdin", (int)getpid());
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		cr_assert_geq(fd, 0);
		unlink(path);
		cr_assert_eq(write(fd, in, strlen(in)), (ssize_t)strlen(in));
		lseek(fd, 0, SEEK_SET);
	}
	int pfd;
	pid_t pid = sk_test_spawn(argv, fd, &pfd);
	if (fd >= 0)
		close(fd);
	cr_assert_gt(pid, 0, "cannot run %s", TOOL);
	return sk_test_finish(pid, pfd, out, len);
}

#define RUN(out, in, ...) run(out, sizeof(out), in, (const char *const[]){ TOOL, __VA_ARGS__, NULL })

Test(bus_tool, create_pub_sub_info)
{
	const char *name = sk_test_new_name("posix");
	char out[4096];

	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "5", "--max-msg", "16"), 0);
	cr_assert(strstr(out, "capacity 8"), "capacity rounds up: %s", out);
	cr_assert_eq(RUN(out, NULL, "bus", name), 1, "exists");
	cr_assert_eq(RUN(out, NULL, "pub", name, "one", "two"), 0);
	cr_assert_eq(RUN(out, "three\nfour\n", "pub", name), 0);
	cr_assert_eq(RUN(out, NULL, "pub", name, "this is longer than 16"), 1);
	cr_assert_eq(RUN(out, NULL, "sub", name), 0);
	cr_assert_str_eq(out, "one\ntwo\nthree\nfour\n");
	cr_assert_eq(RUN(out, NULL, "sub", name, "--from", "oldest", "-n", "2"), 0);
	cr_assert_str_eq(out, "one\ntwo\n");
	cr_assert_eq(RUN(out, NULL, "sub", name, "--from", "newest"), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(RUN(out, NULL, "sub", name, "-n", "1", "--timeout", "50"), 1, "nothing new");
	cr_assert_eq(RUN(out, NULL, "info", name), 0);
	cr_assert(strstr(out, "bus:") && strstr(out, "published:  4"), "%s", out);
	cr_assert_eq(RUN(out, NULL, "info", name, "--json"), 0);
	cr_assert(strstr(out, "\"bus\":{\"capacity\":8,\"max_msg\":16,\"mode\":\"overwrite\""), "%s", out);
}

Test(bus_tool, overwrite_reports_lost)
{
	const char *name = sk_test_new_name("posix");
	char out[4096];

	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "2", "--mode", "overwrite"), 0);
	cr_assert_eq(RUN(out, "a\nb\nc\nd\ne\n", "pub", name), 0);
	cr_assert_eq(RUN(out, NULL, "sub", name), 0);
	cr_assert_str_eq(out, "d\ne\n");
}

Test(bus_tool, backpressure_and_follow)
{
	const char *name = sk_test_new_name("posix");
	char out[4096];

	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "4", "--mode", "backpressure"), 0);
	cr_assert(strstr(out, "backpressure"), "%s", out);
	/* A follower waiting for two messages, fed while it waits. */
	int pfd;
	const char *argv[] = { TOOL, "sub", name, "--follow", "-n", "2", "--from", "oldest", NULL };
	pid_t pid = sk_test_spawn(argv, -1, &pfd);
	cr_assert_gt(pid, 0);
	/* Wait (bounded) until it has joined. */
	for (int i = 0; i < 200; i++) {
		struct shmkit_bus_stats st;
		shmkit_bus *bus;
		cr_assert_eq(shmkit_bus_open(&bus, name, NULL), 0);
		cr_assert_eq(shmkit_bus_stats(bus, &st), 0);
		shmkit_bus_close(bus);
		if (st.subscribers)
			break;
		usleep(10000);
	}
	cr_assert_eq(RUN(out, NULL, "pub", name, "x", "y"), 0);
	cr_assert_eq(sk_test_finish(pid, pfd, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "x\ny\n");
}

Test(bus_tool, usage_errors)
{
	char out[256];

	cr_assert_eq(RUN(out, NULL, "bus"), 2);
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--mode", "sideways"), 2);
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--capacity", "0"), 2);
	cr_assert_eq(RUN(out, NULL, "sub", "x", "--from", "middle"), 2);
	cr_assert_eq(RUN(out, NULL, "sub", "x", "-n", "0"), 2);
	cr_assert_eq(RUN(out, NULL, "pub"), 2);
	cr_assert_eq(RUN(out, NULL, "pub", "posix:/sktest-no-such-bus", "m"), 1);
	cr_assert_eq(RUN(out, NULL, "bus", "--help"), 0);
	cr_assert(strstr(out, "usage: shmkit bus"));
}
