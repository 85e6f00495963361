/*
 * test_chan_tool.c - `shmkit chan`, `send`, `recv` and the channel part of
 * `shmkit info`, run as a separate program (build/shmkit, in the parent of
 * the test binaries' directory), cross-checked through the library.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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
	cr_expect(strstr(out, "8 slots x 1152 bytes"), "%s", out); /* 16 + 1K in 128-byte pairs */
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

/* ---- what recv took is written out: at most the message in flight lost -- */

#define NMSG 100

/* Message i of a test: "m0042" padded with '.' to len bytes (len >= 5). */
static void msg_fill(char *buf, int i, size_t len)
{
	char head[16];

	memset(buf, '.', len);
	snprintf(head, sizeof(head), "m%04d", i);
	memcpy(buf, head, 5);
}

/* A channel holding messages 0..NMSG-1 of len bytes, sent here. */
static shmkit_chan *chan_of_msgs(const char *name, size_t len)
{
	struct shmkit_chan_opts o = { .capacity = 128, .max_msg = 1024 };
	shmkit_chan *ch;
	char msg[1024];

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	for (int i = 0; i < NMSG; i++) {
		msg_fill(msg, i, len);
		cr_assert_eq(shmkit_chan_send(ch, msg, len, 0), 0);
	}
	return ch;
}

/* How many complete lines of text (len bytes) are messages 0, 1, ... in
 * order; a last line without its newline is the message in flight. */
static int printed_msgs(const char *text, size_t len, size_t msg_len)
{
	const char *p = text, *end = text + len, *nl;
	char want[1024];
	int i = 0;

	for (; (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1, i++) {
		msg_fill(want, i, msg_len);
		cr_assert(nl - p == (long)msg_len && !memcmp(p, want, msg_len),
		          "line %d is not message %d: '%.*s'", i, i, (int)(nl - p), p);
	}
	return i;
}

/* The tool printed `printed` messages; the channel must hold the rest in
 * order, but for at most one lost in flight. */
static void expect_rest_queued(shmkit_chan *ch, int printed)
{
	char buf[1024];
	ssize_t n;
	int left = 0, first = -1;

	while ((n = shmkit_chan_recv(ch, buf, sizeof(buf), 0)) >= 0) {
		int seq = atoi(buf + 1);
		if (first < 0)
			first = seq;
		cr_expect_eq(seq, first + left, "message %d out of order", seq);
		left++;
	}
	cr_expect_eq(n, -EAGAIN);
	cr_expect(printed + left >= NMSG - 1 && printed + left <= NMSG,
	          "%d printed + %d still queued: %d of %d lost", printed, left,
	          NMSG - printed - left, NMSG);
	cr_expect(!left || first == printed || first == printed + 1, "%d printed, next queued %d",
	          printed, first);
}

/* helper_tool OUT ERR recv NAME ARGS... (stdout into *pipe_fd if OUT is
 * "-" and pipe_fd is given). */
static pid_t start_recv(const char *out_spec, const char *err_spec, int *pipe_fd,
                        const char *const *args)
{
	const char *argv[16] = { "helper_tool", out_spec, err_spec, "recv" };
	size_t n = 4;

	for (; args[n - 4] && n < 15; n++)
		argv[n] = args[n - 4];
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, -1, pipe_fd);
	cr_assert_gt(pid, 0, "spawn helper_tool: %s", strerror(-pid));
	return pid;
}

#define START_RECV(out, err, pfd, ...) \
	start_recv(out, err, pfd, (const char *const[]){ __VA_ARGS__, NULL })

struct chan_watch {
	shmkit_chan *ch;
	pid_t pid;
};

static int took_all(void *arg)
{
	struct shmkit_chan_stats st;

	return shmkit_chan_stats(((struct chan_watch *)arg)->ch, &st) == 0 && st.received >= NMSG;
}

/* The process sleeps in write(2): its stdout, a pipe, is full. */
static int blocked_in_write(void *arg)
{
	char path[64], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)((struct chan_watch *)arg)->pid);
	if (!(f = fopen(path, "re")))
		return 0;
	bool got = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	return got && strtol(buf, NULL, 10) == SYS_write; /* not "running" */
}

/* recv NAME OPT VAL with stdout a pipe read only at the end (stdio would
 * buffer it fully), stopped by sig once it has taken every message: all
 * are in the pipe but for the one in flight. */
static void recv_stopped_after_taking_all(int sig, const char *opt, const char *val)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = chan_of_msgs(name, 8);
	char text[4096];
	int pfd;

	pid_t pid = START_RECV("-", "-", &pfd, name, opt, val);
	struct chan_watch w = { ch, pid };
	cr_assert(sk_test_eventually(took_all, &w), "recv did not take the %d messages", NMSG);
	kill(pid, sig);
	cr_expect_eq(sk_test_finish(pid, pfd, text, sizeof(text)), 128 + sig);
	expect_rest_queued(ch, printed_msgs(text, strlen(text), 8));
	shmkit_chan_close(ch);
}

Test(chan_tool, recv_n_interrupted_keeps_what_it_took)
{
	recv_stopped_after_taking_all(SIGINT, "-n", "1000");
}

Test(chan_tool, recv_n_terminated_keeps_what_it_took)
{
	recv_stopped_after_taking_all(SIGTERM, "-n", "1000");
}

Test(chan_tool, recv_follow_terminated_keeps_what_it_took)
{
	recv_stopped_after_taking_all(SIGTERM, "--follow", NULL);
}

Test(chan_tool, recv_terminated_while_output_is_full)
{
	static char text[NMSG * 1001 + 1];
	FILE *f = fopen("/proc/self/syscall", "re");
	int pfd;

	if (!f)
		cr_skip_test("no /proc/PID/syscall to see a process blocked in write(2)");
	fclose(f);
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = chan_of_msgs(name, 1000);
	/* 100 KB of messages into a 64 KB pipe nobody reads yet. */
	pid_t pid = START_RECV("-", "-", &pfd, name, "-n", "1000", "--timeout", "60000");
	struct chan_watch w = { ch, pid };
	cr_assert(sk_test_eventually(blocked_in_write, &w), "recv never blocked on its output");
	kill(pid, SIGTERM);
	cr_expect_eq(sk_test_finish(pid, pfd, text, sizeof(text)), 128 + SIGTERM);
	expect_rest_queued(ch, printed_msgs(text, strlen(text), 1000));
	shmkit_chan_close(ch);
}

Test(chan_tool, recv_to_a_broken_pipe_fails_and_leaves_the_rest)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = chan_of_msgs(name, 8);
	char err[4096], prefix[256];
	int pfd;

	pid_t pid = START_RECV("broken", "stdout", &pfd, name);
	cr_expect_eq(sk_test_finish(pid, pfd, err, sizeof(err)), 1);
	snprintf(prefix, sizeof(prefix), "shmkit: %s: writing output: %s", name, strerror(EPIPE));
	cr_expect(!strncmp(err, prefix, strlen(prefix)), "stderr: %s", err);
	expect_rest_queued(ch, 0);
	shmkit_chan_close(ch);
}

Test(chan_tool, recv_with_stdout_closed_takes_nothing)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = chan_of_msgs(name, 8);
	struct shmkit_chan_stats st;

	cr_expect_eq(sk_test_reap(START_RECV("closed", "-", NULL, name, "-n", "5")), 1);
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	cr_expect_eq(st.received, 0, "%llu messages taken", (unsigned long long)st.received);
	expect_rest_queued(ch, 0);
	shmkit_chan_close(ch);
}

/* `shmkit rm` takes a bridge's state beside a channel with it
 * (NAME.skbr-out, NAME.skbr-in, NAME.skbr-bus) and nothing else beside it. */
static char comp_names[4][128];

static void rm_comp_names(void)
{
	for (int i = 0; i < 4; i++)
		if (comp_names[i][0])
			shmkit_seg_remove(comp_names[i]);
	sk_test_cleanup();
}

Test(chan_tool, rm_takes_a_bridges_state_beside_the_channel, .fini = rm_comp_names)
{
	static const char *const sfx[4] = { "skbr-out", "skbr-in", "skbr-bus", "other" };
	struct shmkit_seg_opts so = { .size = 4096 };
	const char *name = sk_test_new_name("posix");
	shmkit_seg *seg;

	cr_assert_eq(TOOL_RUN(NULL, "chan", name), 0, "%s", out);
	for (int i = 0; i < 4; i++) {
		snprintf(comp_names[i], sizeof(comp_names[i]), "%s.%s", name, sfx[i]);
		cr_assert_eq(shmkit_seg_create(&seg, comp_names[i], &so), 0, "%s", comp_names[i]);
		shmkit_seg_close(seg);
	}
	cr_assert_eq(TOOL_RUN(NULL, "rm", name), 0, "%s", out);
	for (int i = 0; i < 4; i++) {
		int rc = shmkit_seg_open(&seg, comp_names[i], NULL);
		if (!rc)
			shmkit_seg_close(seg);
		cr_expect_eq(rc, i < 3 ? -ENOENT : 0, "%s: %d", comp_names[i], rc);
	}
	/* Nothing beside it: rm is as before. */
	cr_assert_eq(TOOL_RUN(NULL, "chan", name), 0, "%s", out);
	cr_expect_eq(TOOL_RUN(NULL, "rm", name), 0, "%s", out);
}
