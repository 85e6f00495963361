/*
 * test_bus_tool.c - `shmkit bus`, `pub`, `sub` and `info` on a bus, run as
 * the built program (build/shmkit, beside the tests directory).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
		char path[80], base[64];
		snprintf(path, sizeof(path), "/tmp/%s", sk_test_base(base, sizeof(base), "stdin"));
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
	/* An existing bus is opened and said so; a geometry asked for that it
	 * does not have is an error that changes nothing; --excl refuses. */
	cr_assert_eq(RUN(out, NULL, "bus", name), 0);
	cr_assert(!strncmp(out, "exists ", 7), "%s", out);
	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "8", "--max-msg", "16"), 0);
	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "16"), 1, "capacity differs");
	cr_assert_eq(RUN(out, NULL, "bus", name, "--delivery", "backpressure"), 1);
	cr_assert_eq(RUN(out, NULL, "bus", name, "--excl"), 1, "exists");
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
	cr_assert(strstr(out, "\"bus\":{\"capacity\":8,\"max_msg\":16,\"delivery\":\"overwrite\""), "%s", out);
}

Test(bus_tool, overwrite_reports_lost)
{
	const char *name = sk_test_new_name("posix");
	char out[4096];

	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "2", "--delivery", "overwrite"), 0);
	cr_assert_eq(RUN(out, "a\nb\nc\nd\ne\n", "pub", name), 0);
	cr_assert_eq(RUN(out, NULL, "sub", name), 0);
	cr_assert_str_eq(out, "d\ne\n");
}

Test(bus_tool, backpressure_and_follow)
{
	const char *name = sk_test_new_name("posix");
	char out[4096];

	cr_assert_eq(RUN(out, NULL, "bus", name, "--capacity", "4", "--delivery", "backpressure"), 0);
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
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--delivery", "sideways"), 2);
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--mode", "overwrite"), 2, "--mode is octal");
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--perm", "0600"), 2, "--perm is --mode now");
	cr_assert_eq(RUN(out, NULL, "bus", "anon"), 2);
	cr_assert_eq(RUN(out, NULL, "sub", "memfd:x"), 2);
	cr_assert_eq(RUN(out, NULL, "bus", "x", "--capacity", "0"), 2);
	cr_assert_eq(RUN(out, NULL, "sub", "x", "--from", "middle"), 2);
	cr_assert_eq(RUN(out, NULL, "sub", "x", "-n", "0"), 2);
	cr_assert_eq(RUN(out, NULL, "pub"), 2);
	cr_assert_eq(RUN(out, NULL, "pub", "posix:/sktest-no-such-bus", "m"), 1);
	cr_assert_eq(RUN(out, NULL, "bus", "--help"), 0);
	cr_assert(strstr(out, "usage: shmkit bus"));
}

/* ---- what sub read is written out: at most the message in flight lost --- */

#define NMSG 100

/* A bus holding messages "m0".."m99", published here. */
static shmkit_bus *bus_of_msgs(const char *name)
{
	struct shmkit_bus_opts o = { .capacity = 128, .max_msg = 16 };
	shmkit_bus *bus;
	char msg[16];

	cr_assert_eq(shmkit_bus_create(&bus, name, &o), 0);
	for (int i = 0; i < NMSG; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		cr_assert_eq(shmkit_bus_publish(bus, msg, strlen(msg), 0), 0);
	}
	return bus;
}

/* Run helper_tool OUT ERR sub NAME --from oldest [OPT [VAL]]: the tool
 * with stdout and stderr as helper_tool.c describes. */
static pid_t start_sub(const char *out_spec, const char *err_spec, int *pipe_fd,
                       const char *name, const char *opt, const char *val)
{
	const char *argv[] = { "helper_tool", out_spec, err_spec, "sub", name, "--from", "oldest",
	                       opt, opt ? val : NULL, NULL };
	pid_t pid = sk_test_spawn(argv, -1, pipe_fd);

	cr_assert_gt(pid, 0, "spawn helper_tool: %s", strerror(-pid));
	return pid;
}

struct sub_watch {
	shmkit_bus *bus;
	pid_t pid;
};

static int read_all_peer(const struct shmkit_bus_peer *p, void *arg)
{
	const struct sub_watch *w = arg;
	return p->subscriber && p->pid == w->pid && p->count >= NMSG;
}

/* The subscriber of pid w->pid has read all NMSG messages. */
static int sub_read_all(void *arg)
{
	return shmkit_bus_peers(((struct sub_watch *)arg)->bus, read_all_peer, arg) > 0;
}

/* sub NAME --from oldest OPT VAL with stdout a pipe read only at the end
 * (stdio would buffer it fully), stopped by sig once it has read every
 * message: all are in the pipe but for the one in flight. */
static void sub_stopped_after_reading_all(int sig, const char *opt, const char *val)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = bus_of_msgs(name);
	char text[4096], want[16];
	int pfd;

	pid_t pid = start_sub("-", "-", &pfd, name, opt, val);
	struct sub_watch w = { bus, pid };
	cr_assert(sk_test_eventually(sub_read_all, &w), "sub did not read the %d messages", NMSG);
	kill(pid, sig);
	cr_expect_eq(sk_test_finish(pid, pfd, text, sizeof(text)), 128 + sig);
	int lines = 0;
	for (char *p = text, *nl; (nl = strchr(p, '\n')); p = nl + 1, lines++) {
		snprintf(want, sizeof(want), "m%d", lines);
		cr_assert(nl - p == (long)strlen(want) && !strncmp(p, want, strlen(want)),
		          "line %d is not %s", lines, want);
	}
	cr_expect_geq(lines, NMSG - 1, "%d of %d read messages printed", lines, NMSG);
	shmkit_bus_close(bus);
}

Test(bus_tool, sub_n_terminated_keeps_what_it_read)
{
	sub_stopped_after_reading_all(SIGTERM, "-n", "1000");
}

Test(bus_tool, sub_follow_interrupted_keeps_what_it_read)
{
	sub_stopped_after_reading_all(SIGINT, "--follow", NULL);
}

Test(bus_tool, sub_to_a_broken_pipe_fails)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = bus_of_msgs(name);
	char err[4096], prefix[256];
	int pfd;

	pid_t pid = start_sub("broken", "stdout", &pfd, name, NULL, NULL);
	cr_expect_eq(sk_test_finish(pid, pfd, err, sizeof(err)), 1);
	snprintf(prefix, sizeof(prefix), "shmkit: %s: writing output: %s", name, strerror(EPIPE));
	cr_expect(!strncmp(err, prefix, strlen(prefix)), "stderr: %s", err);
	shmkit_bus_close(bus);
}
