/*
 * test_tool.c - the shmkit command, run as a child process (fork/exec with
 * pipes for stdin, stdout and stderr): every segment subcommand, --help,
 * usage errors (exit 2), failures (exit 1, "shmkit: NAME: reason"),
 * foreign POSIX and System V segments in ls, --json parsed by python3,
 * read/write round trips, create on each named backend, gc.
 *
 * The tool is BUILD/shmkit, found from this binary (BUILD/tests/test_tool).
 * Every name includes the test process's pid; the suite's fini removes
 * whatever a test made, also when an assertion failed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

/* ---- cleanup registry -------------------------------------------------- */

static char made[16][PATH_MAX + 16];
static int nmade;
static int sysv_ids[8];
static int nsysv;

/* A unique name for this test process, remembered for cleanup. */
static const char *uname_(const char *prefix, const char *fmt_tail)
{
	cr_assert_lt(nmade, 16);
	char *n = made[nmade++], base[64], tag[24];
	snprintf(tag, sizeof(tag), "tool-%d", nmade);
	int w = snprintf(n, PATH_MAX + 16, "%s%s%s", prefix, sk_test_base(base, sizeof(base), tag),
	                 fmt_tail);
	cr_assert(w > 0 && w < PATH_MAX + 16);
	return n;
}

static const char *posix_name(void)
{
	return uname_("posix:/", "");
}

static const char *file_name(void)
{
	return uname_("file:/tmp/", "");
}

static unsigned sysv_key(int n)
{
	return sk_test_sysv_key(32 + (unsigned)n);
}

static const char *sysv_name(int n)
{
	cr_assert_lt(nmade, 16);
	char *s = made[nmade++];
	snprintf(s, PATH_MAX + 16, "sysv:0x%08x", sysv_key(n));
	return s;
}

static char journal_dir[PATH_MAX]; /* a journal a test made, removed whole */

static void remove_journal_dir(void)
{
	DIR *d = journal_dir[0] ? opendir(journal_dir) : NULL;
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(journal_dir);
}

static void cleanup(void)
{
	sk_test_cleanup();
	remove_journal_dir();
	for (int i = 0; i < nmade; i++) {
		if (!strncmp(made[i], "raw:", 4))
			shm_unlink(made[i] + 4);
		else
			shmkit_seg_remove(made[i]);
	}
	for (int i = 0; i < nsysv; i++)
		shmctl(sysv_ids[i], IPC_RMID, NULL);
}

TestSuite(tool, .timeout = 60, .fini = cleanup);

/* ---- running a program ------------------------------------------------- */

struct out {
	char *buf;
	size_t len, cap;
};

struct result {
	int status; /* exit status, or 128 + signal */
	char *out, *err;
	size_t out_len;
};

static char tool_path[PATH_MAX];

static const char *tool(void)
{
	if (!tool_path[0]) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		cr_assert_gt(n, 0);
		self[n] = '\0';
		snprintf(tool_path, sizeof(tool_path), "%s/../shmkit", dirname(self));
		cr_assert_eq(access(tool_path, X_OK), 0, "the tool %s is not built", tool_path);
	}
	return tool_path;
}

static void out_put(struct out *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->buf = realloc(o->buf, o->cap);
		cr_assert(o->buf);
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static pid_t spawn(const char *path, char *const argv[], int fds[3])
{
	int in[2], out[2], err[2];

	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (strchr(path, '/'))
			execv(path, argv);
		else
			execvp(path, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	fds[0] = in[1];
	fds[1] = out[0];
	fds[2] = err[0];
	return pid;
}

/* Feed stdin and drain stdout/stderr together, so neither side blocks on a
 * full pipe; each wait is bounded. */
static void pump(int fds[3], const char *in, size_t in_len, struct out *o, struct out *e)
{
	size_t sent = 0;
	char buf[4096];

	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	if (in_len == 0) {
		close(fds[0]);
		fds[0] = -1;
	}
	while (fds[1] >= 0 || fds[2] >= 0) {
		struct pollfd p[3] = {
			{ fds[1], POLLIN, 0 }, { fds[2], POLLIN, 0 }, { fds[0], POLLOUT, 0 },
		};
		int r = poll(p, 3, 30000);
		cr_assert_gt(r, 0, "the tool produced nothing for 30 s");
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0) {
				out_put(i ? e : o, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(fds[i + 1]);
				fds[i + 1] = -1;
			}
		}
		if (fds[0] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(fds[0], in + sent, in_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || sent == in_len) {
				close(fds[0]);
				fds[0] = -1;
			}
		}
	}
	if (fds[0] >= 0)
		close(fds[0]);
}

static struct result run_prog(const char *path, const char *in, size_t in_len, char *const argv[])
{
	struct out o = { 0 }, e = { 0 };
	struct result r = { 0 };
	int fds[3], st;

	out_put(&o, "", 0);
	out_put(&e, "", 0);
	pid_t pid = spawn(path, argv, fds);
	pump(fds, in, in_len, &o, &e);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.out = o.buf;
	r.out_len = o.len;
	r.err = e.buf;
	return r;
}

#define ARGV(...) ((char *const[]){ __VA_ARGS__, NULL })
/* shmkit ARGS... with empty stdin */
#define SK(...) run_prog(tool(), NULL, 0, ARGV((char *)"shmkit", __VA_ARGS__))
/* shmkit ARGS... with a string on stdin */
#define SK_IN(in, ...) run_prog(tool(), in, strlen(in), ARGV((char *)"shmkit", __VA_ARGS__))

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

static void expect(struct result r, int status)
{
	cr_expect_eq(r.status, status, "exit %d, expected %d; stderr: %s", r.status, status, r.err);
}

/* A failure message: "shmkit: WHAT: " then a reason, on one line. */
static void expect_fail(struct result r, int status, const char *what)
{
	char prefix[PATH_MAX + 32];

	expect(r, status);
	snprintf(prefix, sizeof(prefix), "shmkit: %s: ", what);
	cr_expect(!strncmp(r.err, prefix, strlen(prefix)), "stderr '%s' does not start '%s'",
	          r.err, prefix);
	cr_expect_gt(strlen(r.err), strlen(prefix) + 1, "no reason given: '%s'", r.err);
	cr_expect(*r.err && r.err[strlen(r.err) - 1] == '\n', "no newline: '%s'", r.err);
}

/* python3 evaluates EXPR over the JSON document on stdin (bound to d,
 * sys.argv[1] to arg) and prints it; NULL if the text is not JSON. */
static char *json_eval(const char *json, const char *expr, const char *arg)
{
	char code[1024];

	snprintf(code, sizeof(code),
	         "import json,sys\nd=json.load(sys.stdin)\narg=sys.argv[1]\nprint(%s)", expr);
	struct result r = run_prog("python3", json, strlen(json),
	                           ARGV((char *)"python3", (char *)"-c", code, (char *)arg));
	cr_assert_neq(r.status, 127, "python3 is needed (scripts/deps.sh installs it)");
	free(r.err);
	if (r.status != 0) {
		free(r.out);
		return NULL;
	}
	r.out[strcspn(r.out, "\n")] = '\0';
	return r.out;
}

/* A field of the ls --json object whose "name" is name, as python prints it. */
static char *ls_field(const char *name, const char *field)
{
	char expr[256];

	snprintf(expr, sizeof(expr), "[x['%s'] for x in d if x['name']==arg] or 'ABSENT'", field);
	struct result r = SK("ls", "--json");
	expect(r, 0);
	char *v = json_eval(r.out, expr, name);
	cr_assert(v, "ls --json is not JSON: %s", r.out);
	result_free(&r);
	return v;
}

static void expect_ls_field(const char *name, const char *field, const char *want)
{
	char *v = ls_field(name, field);
	cr_expect_str_eq(v, want, "%s.%s", name, field);
	free(v);
}

/* The same for a field another process may disturb for an instant: a
 * System V attach count while a `shmkit ls` of a concurrent test attaches
 * to read headers (CI's sanitizer run once caught one).  Asked again for
 * up to ~10 s until it reads want. */
static void expect_ls_field_settles(const char *name, const char *field, const char *want)
{
	char *v = NULL;
	for (int i = 0; i < 100; i++) {
		free(v);
		v = ls_field(name, field);
		if (!strcmp(v, want))
			break;
		usleep(100000);
	}
	cr_expect_str_eq(v, want, "%s.%s", name, field);
	free(v);
}

/* `shmkit create NAME --size SIZE`, which must succeed. */
static void tool_create(const char *name, const char *size)
{
	struct result r = SK("create", (char *)name, "--size", (char *)size);
	expect(r, 0);
	result_free(&r);
}

/* `shmkit read NAME --offset OFF [--length LEN]` prints exactly want. */
static void expect_read(const char *name, const char *off, const char *len,
                        const char *want, size_t want_len)
{
	struct result r = len ? SK("read", (char *)name, "--offset", (char *)off, "--length", (char *)len)
	                      : SK("read", (char *)name, "--offset", (char *)off);
	expect(r, 0);
	cr_expect_eq(r.out_len, want_len, "read %s at %s: %zu bytes", name, off, r.out_len);
	cr_expect(r.out_len == want_len && !memcmp(r.out, want, want_len), "read %s at %s", name, off);
	result_free(&r);
}

/* ---- help and usage ----------------------------------------------------- */

static const char *const own_cmds[] = { "ls", "create", "info", "rm", "gc", "read", "write" };
static const char *const other_cmds[] = { "chan", "send", "recv", "bus", "pub", "sub",
                                          "journal", "bench", "demo" };

Test(tool, top_level_help)
{
	struct result r = SK("--help");
	expect(r, 0);
	cr_expect(strstr(r.out, "usage: shmkit SUBCOMMAND"));
	for (size_t i = 0; i < sizeof(own_cmds) / sizeof(*own_cmds); i++)
		cr_expect(strstr(r.out, own_cmds[i]), "%s missing from --help", own_cmds[i]);
	result_free(&r);
	r = SK("help");
	expect(r, 0);
	cr_expect(strstr(r.out, "usage: shmkit SUBCOMMAND"));
	result_free(&r);
	r = SK("help", "read");
	expect(r, 0);
	cr_expect(strstr(r.out, "usage: shmkit read"));
	result_free(&r);
	r = run_prog(tool(), NULL, 0, ARGV((char *)"shmkit"));
	expect(r, 2);
	cr_expect(strstr(r.err, "usage: shmkit"));
	result_free(&r);
}

Test(tool, unknown_subcommand_is_usage)
{
	struct result r = SK("frobnicate");
	expect(r, 2);
	cr_expect(strstr(r.err, "shmkit: 'frobnicate' is not a subcommand"), "%s", r.err);
	result_free(&r);
	r = SK("help", "frobnicate");
	expect(r, 2);
	result_free(&r);
}

Test(tool, every_subcommand_has_help)
{
	char want[64];

	for (size_t i = 0; i < sizeof(own_cmds) / sizeof(*own_cmds); i++) {
		struct result r = SK((char *)own_cmds[i], "--help");
		snprintf(want, sizeof(want), "usage: shmkit %s", own_cmds[i]);
		expect(r, 0);
		cr_expect(strstr(r.out, want), "%s --help: %s", own_cmds[i], r.out);
		cr_expect_str_eq(r.err, "");
		result_free(&r);
		r = SK((char *)own_cmds[i], "-h");
		expect(r, 0);
		cr_expect(strstr(r.out, want));
		result_free(&r);
	}
	/* The service subcommands: each has its help. */
	for (size_t i = 0; i < sizeof(other_cmds) / sizeof(*other_cmds); i++) {
		struct result r = SK((char *)other_cmds[i], "--help");
		expect(r, 0);
		cr_expect_gt(r.out_len, 0, "%s --help printed nothing", other_cmds[i]);
		result_free(&r);
	}
}

Test(tool, usage_errors_exit_2)
{
	const char *n = posix_name();
	char *const *cases[] = {
		ARGV((char *)"shmkit", (char *)"ls", (char *)"--bogus"),
		ARGV((char *)"shmkit", (char *)"ls", (char *)"extra"),
		ARGV((char *)"shmkit", (char *)"create", (char *)n),
		ARGV((char *)"shmkit", (char *)"create", (char *)n, (char *)"--size", (char *)"12Q"),
		ARGV((char *)"shmkit", (char *)"create", (char *)n, (char *)"--size", (char *)"0"),
		ARGV((char *)"shmkit", (char *)"create", (char *)n, (char *)"--size", (char *)"-5"),
		ARGV((char *)"shmkit", (char *)"create", (char *)n, (char *)"--size", (char *)"1K",
		     (char *)"--mode", (char *)"9"),
		ARGV((char *)"shmkit", (char *)"create", (char *)"--size", (char *)"1K"),
		ARGV((char *)"shmkit", (char *)"create", (char *)n, (char *)"--size"),
		ARGV((char *)"shmkit", (char *)"info"),
		ARGV((char *)"shmkit", (char *)"info", (char *)n, (char *)n),
		ARGV((char *)"shmkit", (char *)"rm"),
		ARGV((char *)"shmkit", (char *)"read"),
		ARGV((char *)"shmkit", (char *)"read", (char *)n, (char *)"--offset"),
		ARGV((char *)"shmkit", (char *)"read", (char *)n, (char *)"--length", (char *)"x"),
		ARGV((char *)"shmkit", (char *)"write", (char *)n, (char *)"--offset", (char *)"1X"),
		ARGV((char *)"shmkit", (char *)"write"),
		ARGV((char *)"shmkit", (char *)"gc", (char *)"-q"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct result r = run_prog(tool(), NULL, 0, cases[i]);
		cr_expect_eq(r.status, 2, "case %zu (%s %s): exit %d, stderr %s", i, cases[i][1],
		             cases[i][2] ? cases[i][2] : "", r.status, r.err);
		cr_expect(!strncmp(r.err, "shmkit: ", 8), "case %zu: %s", i, r.err);
		cr_expect_str_eq(r.out, "");
		result_free(&r);
	}
	/* Nothing was created by any of them. */
	struct shmkit_seg_info st;
	cr_expect_eq(shmkit_seg_info_name(n, &st), -ENOENT);
}

Test(tool, anon_and_memfd_are_library_only)
{
	const char *names[] = { "anon", "memfd:sktest-tool" };

	for (int i = 0; i < 2; i++) {
		struct result r = SK("create", (char *)names[i], "--size", "4K");
		expect(r, 2);
		cr_expect(strstr(r.err, "library-only"), "%s", r.err);
		result_free(&r);
	}
}

/* ---- failures ------------------------------------------------------------- */

Test(tool, failures_exit_1_with_name_and_reason)
{
	const char *n = posix_name();
	struct result r = SK("read", (char *)n);
	expect_fail(r, 1, n);
	cr_expect(strstr(r.err, "No such file"), "%s", r.err);
	result_free(&r);

	r = SK("info", (char *)n);
	expect_fail(r, 1, n);
	result_free(&r);

	r = SK_IN("x", "write", (char *)n);
	expect_fail(r, 1, n);
	result_free(&r);

	/* A malformed name is one the command cannot use: exit 2, as the
	 * man page says, with the library's reason. */
	r = SK("create", "posix:/a/b", "--size", "1K");
	expect_fail(r, 2, "posix:/a/b");
	cr_expect(strstr(r.err, "Invalid argument ("), "detail missing: %s", r.err);
	result_free(&r);

	r = SK("create", "sysv:0xZZ", "--size", "1K");
	expect_fail(r, 2, "sysv:0xZZ");
	result_free(&r);

	r = SK("create", (char *)n, "--size", "4K", "--excl");
	expect(r, 0);
	result_free(&r);
	r = SK("create", (char *)n, "--size", "4K", "--excl");
	expect_fail(r, 1, n);
	cr_expect(strstr(r.err, "exists"), "%s", r.err);
	result_free(&r);
	/* Without --excl an existing segment is left as it is. */
	r = SK("create", (char *)n, "--size", "4K");
	expect(r, 0);
	cr_expect(!strncmp(r.out, "exists ", 7), "%s", r.out);
	result_free(&r);
}

Test(tool, rm_goes_on_after_a_failure)
{
	const char *a = posix_name(), *missing = posix_name(), *b = posix_name();

	tool_create(a, "1K");
	tool_create(b, "1K");
	struct result r = SK("rm", (char *)a, (char *)missing, (char *)b);
	expect_fail(r, 1, missing);
	cr_expect_eq(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err), "one error line: %s", r.err);
	result_free(&r);
	struct shmkit_seg_info st;
	cr_expect_eq(shmkit_seg_info_name(a, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(b, &st), -ENOENT);
	r = SK("rm", (char *)missing);
	expect_fail(r, 1, missing);
	result_free(&r);
}

/* ---- create and info on each named backend ------------------------------ */

static void create_and_describe(const char *name)
{
	struct result r = SK("create", (char *)name, "--size", "64K", "--mode", "0640", "--excl");
	expect(r, 0);
	cr_expect(!strncmp(r.out, "created ", 8), "%s", r.out);
	result_free(&r);

	r = SK("info", (char *)name, "--json");
	expect(r, 0);
	char *v = json_eval(r.out, "d['kind'], d['size'], d['mode'], d['data_offset'], "
	                    "d['creator_alive'], d['version']", "");
	cr_assert(v, "info --json is not JSON: %s", r.out);
	cr_expect_str_eq(v, "bytes 65536 0640 4096 False 2");
	free(v);
	result_free(&r);

	r = SK("info", (char *)name);
	expect(r, 0);
	cr_expect(strstr(r.out, "kind:       bytes"), "%s", r.out);
	cr_expect(strstr(r.out, "data:       65536 bytes (64K) at offset 4096"), "%s", r.out);
	cr_expect(strstr(r.out, "mode:       0640"), "%s", r.out);
	result_free(&r);

	/* Read without --length: the whole data area, zero-filled. */
	r = SK("read", (char *)name);
	expect(r, 0);
	cr_expect_eq(r.out_len, 65536);
	size_t zeros = 0;
	for (size_t i = 0; i < r.out_len; i++)
		zeros += r.out[i] == 0;
	cr_expect_eq(zeros, 65536);
	result_free(&r);

	r = SK("rm", (char *)name);
	expect(r, 0);
	result_free(&r);
	struct shmkit_seg_info st;
	cr_expect_eq(shmkit_seg_info_name(name, &st), -ENOENT);
}

Test(tool, create_posix)
{
	create_and_describe(posix_name());
}

Test(tool, create_bare_name_is_posix)
{
	const char *n = posix_name();
	const char *bare = n + strlen("posix:/");
	struct result r = SK("create", (char *)bare, "--size", "1K");
	expect(r, 0);
	cr_expect(strstr(r.out, n), "%s", r.out);
	result_free(&r);
	expect_ls_field(n, "kind", "['bytes']");
}

Test(tool, create_sysv)
{
	const char *n = sysv_name(1);
	create_and_describe(n);
}

Test(tool, create_file)
{
	create_and_describe(file_name());
}

Test(tool, create_options)
{
	const char *n = posix_name();
	struct result r = SK("create", (char *)n, "--size", "1M", "--populate", "--mlock");
	/* mlock may be refused by RLIMIT_MEMLOCK: then a clear error, exit 1. */
	if (r.status == 1)
		expect_fail(r, 1, n);
	else
		expect(r, 0);
	result_free(&r);
	shmkit_seg_remove(n);
	/* POSIX has no huge pages: an option this name cannot use (exit 2),
	 * a clear error, nothing left. */
	r = SK("create", (char *)n, "--size", "2M", "--huge");
	expect_fail(r, 2, n);
	result_free(&r);
	struct shmkit_seg_info st;
	cr_expect_eq(shmkit_seg_info_name(n, &st), -ENOENT);
}

/* ---- read / write --------------------------------------------------------- */

Test(tool, write_read_round_trip_with_offsets)
{
	const char *n = posix_name();
	tool_create(n, "8K");
	struct result r = SK_IN("hello, segment", "write", (char *)n, "--offset", "1K");
	expect(r, 0);
	cr_expect_str_eq(r.err, "");
	result_free(&r);
	expect_read(n, "1024", "14", "hello, segment", 14);

	/* The same bytes through the library, in the data area. */
	shmkit_seg *seg;
	cr_assert_eq(shmkit_seg_open(&seg, n, NULL), 0);
	cr_expect(!memcmp((char *)shmkit_seg_data(seg) + 1024, "hello, segment", 14));
	shmkit_seg_close(seg);

	/* Up to the very end is fine; one byte more is refused, nothing written. */
	r = SK_IN("END", "write", (char *)n, "--offset", "8189");
	expect(r, 0);
	result_free(&r);
	r = SK_IN("TOOLONG", "write", (char *)n, "--offset", "8188");
	expect_fail(r, 1, n);
	cr_expect(strstr(r.err, "nothing written"), "%s", r.err);
	result_free(&r);
	expect_read(n, "8188", "4", "\0END", 4);
	expect_read(n, "8188", NULL, "\0END", 4);

	/* Out of range reads: exit 1, nothing on stdout. */
	r = SK("read", (char *)n, "--offset", "8190", "--length", "3");
	expect_fail(r, 1, n);
	cr_expect_eq(r.out_len, 0);
	result_free(&r);
	r = SK("read", (char *)n, "--offset", "9K");
	expect_fail(r, 1, n);
	result_free(&r);
	r = SK_IN("", "write", (char *)n, "--offset", "1M");
	expect_fail(r, 1, n);
	result_free(&r);
}

Test(tool, hex_in_and_out)
{
	const char *n = sysv_name(2);
	tool_create(n, "4K");
	struct result r = SK_IN("de ad\nBE EF 00 41\n", "write", (char *)n, "--offset", "16", "--hex");
	expect(r, 0);
	result_free(&r);
	expect_read(n, "16", "6", "\xde\xad\xbe\xef\0A", 6);

	r = SK("read", (char *)n, "--length", "48", "--hex");
	expect(r, 0);
	cr_expect_str_eq(r.out,
	                 "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
	                 "00000010  de ad be ef 00 41 00 00  00 00 00 00 00 00 00 00  |.....A..........|\n"
	                 "00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
	                 "00000030\n");
	result_free(&r);

	/* Offsets in the listing are the segment's; repeats collapse to '*'. */
	r = SK("read", (char *)n, "--offset", "0", "--hex");
	expect(r, 0);
	cr_expect(strstr(r.out, "*\n"), "%s", r.out);
	cr_expect(strstr(r.out, "\n00001000\n"), "%s", r.out);
	result_free(&r);

	/* Bad hex: exit 1, nothing written. */
	r = SK_IN("abc", "write", (char *)n, "--hex");
	expect_fail(r, 1, n);
	result_free(&r);
	r = SK_IN("zz", "write", (char *)n, "--hex");
	expect_fail(r, 1, n);
	result_free(&r);
	expect_read(n, "0", "2", "\0\0", 2);
}

Test(tool, file_write_reaches_the_file)
{
	const char *n = file_name();
	tool_create(n, "100");
	struct result r = SK_IN("durable", "write", (char *)n, "--offset", "3");
	expect(r, 0);
	result_free(&r);
	/* Plain read(2) of the file: the data area starts after the header. */
	char buf[8] = { 0 };
	int fd = open(n + strlen("file:"), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_expect_eq(pread(fd, buf, 7, 4096 + 3), 7);
	close(fd);
	cr_expect_str_eq(buf, "durable");
}

Test(tool, big_round_trip)
{
	const char *n = posix_name();
	size_t len = 3 * 65536 + 123;
	char *data = malloc(len + 1);
	cr_assert(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)('a' + (i * 7) % 26);
	data[len] = '\0';
	tool_create(n, "256K");
	struct result r = SK_IN(data, "write", (char *)n);
	expect(r, 0);
	result_free(&r);
	char lenbuf[32];
	snprintf(lenbuf, sizeof(lenbuf), "%zu", len);
	r = SK("read", (char *)n, "--length", lenbuf);
	expect(r, 0);
	cr_expect_eq(r.out_len, len);
	cr_expect(!memcmp(r.out, data, len));
	result_free(&r);
	free(data);
}

/* ---- foreign segments ------------------------------------------------------ */

/* A POSIX segment made with plain shm_open, as any program would; its
 * "/NAME" (prefix may start it, e.g. "sem.", tail end it). */
static const char *raw_posix_named(const char *prefix, const char *tail, size_t size)
{
	char p[64];
	snprintf(p, sizeof(p), "raw:/%s", prefix);
	const char *n = uname_(p, tail);
	int fd = shm_open(n + 4, O_RDWR | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(fd, 0, "shm_open: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
	return n + 4;
}

static const char *raw_posix(size_t size)
{
	return raw_posix_named("", "", size);
}

/* python's EXPR over `shmkit ls [--all] --json` equals want. */
static void expect_ls_eval(bool all, const char *expr, const char *arg, const char *want)
{
	struct result r = all ? SK("ls", "--all", "--json") : SK("ls", "--json");
	expect(r, 0);
	char *v = json_eval(r.out, expr, arg);
	cr_assert(v, "ls --json is not JSON: %s", r.out);
	cr_expect_str_eq(v, want);
	free(v);
	result_free(&r);
}

Test(tool, ls_shows_foreign_posix)
{
	const char *raw = raw_posix(8192);
	char name[PATH_MAX];
	snprintf(name, sizeof(name), "posix:%s", raw);

	struct result r = SK("ls");
	expect(r, 0);
	cr_expect(!strncmp(r.out, "BACKEND  NAME", 13), "%s", r.out);
	char *line = strstr(r.out, name);
	cr_assert(line, "ls does not show %s:\n%s", name, r.out);
	char *eol = strchr(line, '\n');
	*eol = '\0';
	cr_expect(strstr(line, " 8K "), "%s", line);
	cr_expect(strstr(line, " foreign "), "%s", line);
	cr_expect(strstr(line, " 0644 "), "%s", line);
	result_free(&r);

	expect_ls_field(name, "kind", "['foreign']");
	expect_ls_field(name, "size", "[8192]");
	expect_ls_field(name, "backend", "['posix']");
	expect_ls_field(name, "creator_alive", "[None]");

	/* Raw bytes: the whole mapping, no header. */
	r = SK_IN("raw!", "write", name, "--offset", "8188");
	expect(r, 0);
	result_free(&r);
	r = SK("read", name);
	expect(r, 0);
	cr_expect_eq(r.out_len, 8192);
	cr_expect(!memcmp(r.out + 8188, "raw!", 4));
	result_free(&r);
	r = SK("info", name);
	expect(r, 0);
	cr_expect(strstr(r.out, "kind:       foreign"), "%s", r.out);
	result_free(&r);
}

Test(tool, ls_shows_foreign_sysv_and_removed)
{
	unsigned key = sysv_key(3);
	int id = shmget((key_t)key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	cr_assert_geq(id, 0, "shmget: %s", strerror(errno));
	sysv_ids[nsysv++] = id;
	char name[64], byid[64];
	snprintf(name, sizeof(name), "sysv:0x%08x", key);
	snprintf(byid, sizeof(byid), "sysv:id=%d", id);

	expect_ls_field(name, "kind", "['foreign']");
	expect_ls_field_settles(name, "attach_count", "[0]");
	expect_ls_field(name, "creator_alive", "[True]");

	void *p = shmat(id, NULL, 0);
	cr_assert_neq(p, (void *)-1);
	memcpy(p, "sysv bytes", 10);
	expect_ls_field_settles(name, "attach_count", "[1]");

	expect_read(name, "0", "10", "sysv bytes", 10);

	/* Removed while attached: it lives on, by id, marked removed. */
	struct result r = SK("rm", name);
	expect(r, 0);
	result_free(&r);
	expect_ls_field(byid, "removed", "[True]");
	r = SK("ls");
	expect(r, 0);
	char *line = strstr(r.out, byid);
	cr_assert(line, "%s", r.out);
	*strchr(line, '\n') = '\0';
	cr_expect(strstr(line, "alive removed"), "%s", line);
	result_free(&r);
	r = SK("info", byid);
	expect(r, 0);
	cr_expect(strstr(r.out, "removed:    yes"), "%s", r.out);
	result_free(&r);

	shmdt(p);
	expect_ls_field(byid, "name", "ABSENT");
}

Test(tool, ls_shows_ipcmk_segment)
{
	struct result r = run_prog("ipcmk", NULL, 0, ARGV((char *)"ipcmk", (char *)"-M", (char *)"4096"));
	if (r.status == 127) {
		result_free(&r);
		cr_skip_test("ipcmk is not installed");
	}
	expect(r, 0);
	int id = -1;
	char *p = strstr(r.out, "id: ");
	cr_assert(p, "%s", r.out);
	id = atoi(p + 4);
	sysv_ids[nsysv++] = id;
	result_free(&r);

	char idbuf[16];
	snprintf(idbuf, sizeof(idbuf), "%d", id);
	expect_ls_eval(false, "[(x['kind'], x['size'], x['creator_alive']) for x in d "
	               "if x['shmid'] == int(arg)]", idbuf, "[('foreign', 4096, False)]");
}

Test(tool, json_escapes_any_name)
{
	/* POSIX names may hold any byte but '/' and NUL. */
	raw_posix_named("", "-q\"\\\x01\xff\xc3\xa9", 100);
	/* Only this process's segment: other suites may run at the same time. */
	char mine[80], base[64];
	snprintf(mine, sizeof(mine), "posix:/%s", sk_test_base(base, sizeof(base), "tool-"));
	expect_ls_eval(false, "len([x for x in d if x['name'].startswith(arg) and "
	               "x['name'].endswith('-q\"\\\\\\x01\\xff\\xe9')])", mine, "1");
}

/* A name made to move the cursor or recolour the terminal is shown with
 * its control bytes as \xNN by ls, info and gc, never written raw. */
Test(tool, text_output_escapes_control_bytes)
{
	const char *raw = raw_posix_named("", "-\x1b[31m\\\xff", 100);
	char name[PATH_MAX], shown[PATH_MAX];
	snprintf(name, sizeof(name), "posix:%s", raw);
	snprintf(shown, sizeof(shown), "posix:%.*s\\x1b[31m\\x5c\\xff", (int)(strlen(raw) - 7), raw);

	struct result r = SK("ls");
	expect(r, 0);
	cr_expect(!memchr(r.out, '\x1b', r.out_len), "ls wrote an escape byte");
	cr_expect(strstr(r.out, shown), "ls does not show %s:\n%s", shown, r.out);
	result_free(&r);
	r = SK("info", name);
	expect(r, 0);
	cr_expect(!memchr(r.out, '\x1b', r.out_len), "info wrote an escape byte");
	cr_expect(strstr(r.out, shown), "info does not show %s:\n%s", shown, r.out);
	result_free(&r);
}

Test(tool, ls_all_shows_semaphores)
{
	/* A POSIX semaphore's file: ls skips it, ls --all lists it. */
	const char *n = raw_posix_named("sem.", "", 32);
	char name[PATH_MAX];
	snprintf(name, sizeof(name), "posix:%s", n);
	expect_ls_field(name, "kind", "ABSENT");
	expect_ls_eval(true, "[x['kind'] for x in d if x['name'] == arg]", name, "['semaphore']");
}

/* ---- gc -------------------------------------------------------------------- */

static char *gc_pattern(void)
{
	static char pat[80];
	char base[64];
	snprintf(pat, sizeof(pat), "*%s*", sk_test_base(base, sizeof(base), "tool-"));
	return pat;
}

Test(tool, gc_removes_dead_creators_only)
{
	const char *dead = posix_name(), *live = posix_name(), *inuse = posix_name();
	const char *sdead = sysv_name(4), *kept = posix_name();
	struct shmkit_seg_opts o = { .size = 4096 };
	shmkit_seg *mine, *held;
	struct shmkit_seg_info st;

	/* Made by a shmkit process that has exited: the creator is dead. */
	const char *by_tool[] = { dead, inuse, sdead };
	for (int i = 0; i < 3; i++) {
		struct result t = SK("create", (char *)by_tool[i], "--size", "4K", "--temporary");
		expect(t, 0);
		result_free(&t);
	}
	/* The same, but persistent (the default of `shmkit create`): kept. */
	tool_create(kept, "4K");
	cr_assert_eq(shmkit_seg_info_name(kept, &st), 0);
	cr_expect_eq(st.persistent, 1);
	cr_expect_eq(st.creator_alive, 0);
	/* Made by this (living) process. */
	cr_assert_eq(shmkit_seg_create(&mine, live, &o), 0);
	/* Dead creator, but mapped by this living process. */
	cr_assert_eq(shmkit_seg_open(&held, inuse, NULL), 0);
	/* A foreign segment nobody maps: only with --foreign. */
	const char *raw = raw_posix(4096);
	char rawname[PATH_MAX];
	snprintf(rawname, sizeof(rawname), "posix:%s", raw);

	struct result r = SK("gc", "--dry-run", gc_pattern());
	expect(r, 0);
	cr_expect(strstr(r.out, "would remove"), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(dead, &st), 0, "--dry-run removed something");

	r = SK("gc", gc_pattern(), (char *)sdead);
	expect(r, 0);
	cr_expect(strstr(r.out, dead), "%s", r.out);
	cr_expect(strstr(r.out, sdead), "%s", r.out);
	cr_expect(!strstr(r.out, live), "%s", r.out);
	cr_expect(!strstr(r.out, inuse), "%s", r.out);
	cr_expect(!strstr(r.out, raw), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(dead, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(sdead, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(live, &st), 0);
	cr_expect_eq(shmkit_seg_info_name(inuse, &st), 0);
	cr_expect_eq(shmkit_seg_info_name(rawname, &st), 0);
	cr_expect_eq(shmkit_seg_info_name(kept, &st), 0, "gc removed a persistent segment");

	/* Once nobody maps it, the dead creator's segment goes too. */
	shmkit_seg_close(held);
	r = SK("gc", "--foreign", gc_pattern());
	expect(r, 0);
	cr_expect(strstr(r.out, inuse), "%s", r.out);
	cr_expect(strstr(r.out, raw), "%s", r.out);
	cr_expect(!strstr(r.out, live), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(inuse, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(rawname, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(live, &st), 0);
	shmkit_seg_close(mine);
}

/* NAME.SFX beside base, remembered for cleanup. */
static const char *comp_of(const char *base, const char *sfx)
{
	cr_assert_lt(nmade, 16);
	char *n = made[nmade++];
	snprintf(n, PATH_MAX + 16, "%s.%s", base, sfx);
	return n;
}

/* A bridge's state beside a service (NAME.skbr-*) is persistent: gc takes
 * it with the service it removes, and takes it alone once that service is
 * gone (creator dead, nothing maps it); beside a service that stays, it
 * stays.  (Before: never removed by gc, so left for ever.) */
Test(tool, gc_takes_a_bridges_state_with_its_service)
{
	const char *gone = posix_name(), *kept = posix_name(), *lost = posix_name();
	const char *c_gone = comp_of(gone, "skbr-out"), *c_kept = comp_of(kept, "skbr-in");
	const char *c_lost = comp_of(lost, "skbr-bus");
	struct shmkit_seg_info st;
	struct result r = SK("create", (char *)gone, "--size", "4K", "--temporary");

	expect(r, 0);
	result_free(&r);
	tool_create(kept, "4K"); /* persistent: gc keeps it, and its state */
	/* The states as a bridge leaves them: persistent, creator dead. */
	const char *comps[] = { c_gone, c_kept, c_lost };
	for (int i = 0; i < 3; i++)
		tool_create(comps[i], "4K");
	r = SK("gc", "--dry-run", gc_pattern());
	expect(r, 0);
	cr_expect(strstr(r.out, c_gone) && strstr(r.out, c_lost), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(c_gone, &st), 0, "--dry-run removed something");
	r = SK("gc", gc_pattern());
	expect(r, 0);
	cr_expect(strstr(r.out, gone) && strstr(r.out, c_gone) && strstr(r.out, c_lost), "%s", r.out);
	cr_expect(!strstr(r.out, kept), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(gone, &st), -ENOENT);
	cr_expect_eq(shmkit_seg_info_name(c_gone, &st), -ENOENT, "the state of a removed service");
	cr_expect_eq(shmkit_seg_info_name(c_lost, &st), -ENOENT, "state whose service is gone");
	cr_expect_eq(shmkit_seg_info_name(kept, &st), 0);
	cr_expect_eq(shmkit_seg_info_name(c_kept, &st), 0, "the state of a service that stays");
}

/* gc run in another PID namespace (a container sharing /dev/shm) sees
 * neither the process that holds a segment open nor a live creator: the
 * kernel's "in use" (a lock every handle holds) keeps it. */
Test(tool, gc_in_another_pid_namespace_keeps_what_is_open)
{
	const char *n = posix_name();
	struct result t = SK("create", (char *)n, "--size", "4K", "--temporary");
	expect(t, 0);
	result_free(&t);
	shmkit_seg *held;
	cr_assert_eq(shmkit_seg_open(&held, n, NULL), 0);
	struct shmkit_seg_info st;
	cr_assert_eq(shmkit_seg_info_name(n, &st), 0);
	cr_expect_eq(st.in_use, 1);
	struct result r = run_prog("/usr/bin/unshare", NULL, 0,
	                           ARGV((char *)"unshare", (char *)"--pid", (char *)"--fork",
	                                (char *)"--mount-proc", (char *)tool(), (char *)"gc",
	                                (char *)n));
	expect(r, 0);
	cr_expect(!strstr(r.out, "removed"), "%s", r.out);
	result_free(&r);
	cr_expect_eq(shmkit_seg_info_name(n, &st), 0, "gc removed a segment held open");
	shmkit_seg_close(held);
	cr_assert_eq(shmkit_seg_info_name(n, &st), 0);
	cr_expect_eq(st.in_use, 0);
	r = SK("gc", (char *)n);
	expect(r, 0);
	cr_expect(strstr(r.out, "removed"), "once closed it goes: %s", r.out);
	result_free(&r);
}

/* A System V segment whose creator died while initialising it: ls says
 * so, gc removes it (its creator's lock is gone: the kernel says). */
Test(tool, ls_and_gc_see_an_unfinished_sysv_segment)
{
	const char *n = sysv_name(6);
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL | SHMKIT_PERSIST };
	shmkit_seg *s;

	cr_assert_eq(shmkit_seg_create(&s, n, &o), 0);
	/* Back to INIT, as a creator killed halfway leaves it (header state
	 * word at offset 20 of the header page before the data area). */
	__atomic_store_n((uint32_t *)(void *)((char *)shmkit_seg_data(s) - 4096 + 20), 0u,
	                 __ATOMIC_RELEASE);
	shmkit_seg_close(s);
	/* ls reads a System V header only when asked to attach. */
	struct result r = SK("ls", "--attach");
	expect(r, 0);
	cr_expect(strstr(r.out, "unfinished, creator gone"), "%s", r.out);
	result_free(&r);
	r = SK("info", (char *)n);
	expect(r, 0);
	cr_expect(strstr(r.out, "unfinished, creator gone"), "%s", r.out);
	result_free(&r);
	r = SK("gc", (char *)n);
	expect(r, 0);
	cr_expect(strstr(r.out, "died while initialising"), "%s", r.out);
	result_free(&r);
	struct shmkit_seg_info st;
	cr_expect_eq(shmkit_seg_info_name(n, &st), -ENOENT);
}

/* A full /dev/shm and a sparse foreign segment (a user can truncate a
 * file there and fill the rest): reading its header page through a
 * mapping would SIGBUS.  ls, info, gc and read must answer, not die.  In
 * a mount namespace of its own with a small private tmpfs on /dev/shm,
 * so nothing of it outlives the test. */
Test(tool, full_dev_shm_and_a_sparse_segment_do_not_kill_the_tool)
{
	static const char script[] =
		"mount -t tmpfs -o size=256k tmpfs /dev/shm || exit 90\n"
		"truncate -s 1M /dev/shm/sktest-sparse || exit 91\n"
		"dd if=/dev/zero of=/dev/shm/fill bs=4k 2>/dev/null\n"
		"for c in ls 'ls --all' 'info sktest-sparse' 'gc --foreign --dry-run' "
		"'read sktest-sparse --hex --length 64'; do\n"
		"  \"$0\" $c >/dev/null 2>&1; r=$?\n"
		"  echo \"$c: $r\"\n"
		"done\n";
	struct result r = run_prog("/usr/bin/unshare", NULL, 0,
	                           ARGV((char *)"unshare", (char *)"--mount", (char *)"sh",
	                                (char *)"-c", (char *)script, (char *)tool()));
	expect(r, 0);
	cr_expect(strstr(r.out, "ls: 0\n"), "%s", r.out);
	cr_expect(strstr(r.out, "ls --all: 0\n"), "%s", r.out);
	cr_expect(strstr(r.out, "info sktest-sparse: 0\n"), "%s", r.out);
	cr_expect(strstr(r.out, "gc --foreign --dry-run: 0\n"), "%s", r.out);
	cr_expect(strstr(r.out, "read sktest-sparse --hex --length 64: 0\n"), "%s", r.out);
	result_free(&r);
}

/* ls on a machine with no segment at all (a private, empty /dev/shm and
 * IPC namespace): an empty listing, not qsort(NULL, 0) - undefined
 * behaviour the sanitizer run caught when CI's /dev/shm was empty. */
Test(tool, ls_of_nothing)
{
	static const char script[] =
		"mount -t tmpfs tmpfs /dev/shm || exit 90\n"
		"\"$0\" ls --all --json && \"$0\" ls --all\n";
	struct result r = run_prog("/usr/bin/unshare", NULL, 0,
	                           ARGV((char *)"unshare", (char *)"--mount", (char *)"--ipc",
	                                (char *)"sh", (char *)"-c", (char *)script, (char *)tool()));
	expect(r, 0);
	cr_expect(!strncmp(r.out, "[]", 2), "%s", r.out);
	result_free(&r);
}

/* An empty name and a signed size: errors that name their cause. */
Test(tool, empty_name_and_signed_size)
{
	struct result r = SK("create", (char *)"", "--size", "4K");
	expect_fail(r, 2, "(empty name)");
	cr_expect(strstr(r.err, "empty segment name"), "%s", r.err);
	result_free(&r);
	r = SK("create", (char *)posix_name(), "--size", "+5");
	expect_fail(r, 2, "create");
	cr_expect(strstr(r.err, "'+5' is not a size"), "%s", r.err);
	result_free(&r);
}

Test(tool, gc_keeps_sysv_with_attaches)
{
	const char *n = sysv_name(5);
	struct result t = SK("create", (char *)n, "--size", "4K", "--temporary");
	expect(t, 0);
	result_free(&t);
	shmkit_seg *seg;
	cr_assert_eq(shmkit_seg_open(&seg, n, NULL), 0);
	struct result r = SK("gc", (char *)n);
	expect(r, 0);
	cr_expect_str_eq(r.out, "");
	result_free(&r);
	shmkit_seg_close(seg);
	r = SK("gc", (char *)n);
	expect(r, 0);
	cr_expect(strstr(r.out, "removed"), "%s", r.out);
	result_free(&r);
}

/* ---- write refuses services, rm refuses files that are not shmkit's ------- */

/* `shmkit write NAME` is refused: exit 1, nothing written, naming what the
 * segment is and --raw. */
static void expect_write_refused(const char *name, const char *what)
{
	struct result r = SK_IN("x", "write", (char *)name);
	expect_fail(r, 1, name);
	cr_expect(strstr(r.err, what) && strstr(r.err, "--raw"), "%s", r.err);
	result_free(&r);
}

/* `shmkit ARGS...` succeeds (and prints exactly want, unless NULL). */
static void expect_ok(const char *want, char *const argv[])
{
	struct result r = run_prog(tool(), NULL, 0, argv);
	expect(r, 0);
	if (want)
		cr_expect_str_eq(r.out, want, "%s %s", argv[1], argv[2]);
	result_free(&r);
}

#define SK_OK(want, ...) expect_ok(want, ARGV((char *)"shmkit", __VA_ARGS__))

Test(tool, write_refuses_a_channel_or_bus_without_raw)
{
	char *ch = (char *)sk_test_new_name("posix"), *bus = (char *)sk_test_new_name("sysv");

	SK_OK(NULL, "chan", ch, "--capacity", "4", "--max-msg", "16");
	SK_OK(NULL, "bus", bus, "--capacity", "4", "--max-msg", "16");
	expect_write_refused(ch, "chan");
	expect_write_refused(bus, "bus");
	/* Their control blocks are intact. */
	SK_OK("", "send", ch, "still", "here");
	SK_OK("still\nhere\n", "recv", ch);
	SK_OK("", "pub", bus, "intact");
	SK_OK("intact\n", "sub", bus, "--from", "oldest");
	/* --raw writes as write always did: at the data area. */
	struct result r = SK_IN("x", "write", ch, "--raw");
	expect(r, 0);
	result_free(&r);
	expect_read(ch, "0", "1", "x", 1);
}

/* The first data file ("*.skj") of the journal at dir, as a file: name. */
static void journal_data_file(const char *dir, char *name, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	cr_assert(d, "%s: %s", dir, strerror(errno));
	name[0] = '\0';
	while ((e = readdir(d)) && !name[0])
		if (strstr(e->d_name, ".skj"))
			snprintf(name, len, "file:%s/%s", dir, e->d_name);
	closedir(d);
	cr_assert(name[0], "no data file in %s", dir);
}

Test(tool, write_and_rm_refuse_journal_files)
{
	char meta[PATH_MAX + 32], data[PATH_MAX + 300];

	snprintf(journal_dir, sizeof(journal_dir), "%s", sk_test_new_name("file") + 5);
	SK_OK(NULL, "journal", "append", journal_dir, "one", "two");
	snprintf(meta, sizeof(meta), "file:%s/journal.meta", journal_dir);
	journal_data_file(journal_dir, data, sizeof(data));
	expect_write_refused(meta, "journal.meta file");
	expect_write_refused(data, "journal data file");
	struct result r = SK("rm", meta, data);
	expect_fail(r, 1, meta);
	cr_expect(strstr(r.err, "journal data file") && strstr(r.err, "--force"), "%s", r.err);
	result_free(&r);
	SK_OK(NULL, "journal", "verify", journal_dir);
	SK_OK("1\tone\n2\ttwo\n", "journal", "tail", journal_dir);
}

/* A regular file holding len bytes of data, at a fresh file: name. */
static const char *plain_file(const char *data, size_t len)
{
	const char *name = sk_test_new_name("file");
	int fd = open(name + 5, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return name;
}

Test(tool, rm_keeps_files_without_a_segment_header)
{
	char *mine = (char *)plain_file("precious\n", 9), *empty = (char *)plain_file("", 0);
	char *seg = (char *)sk_test_new_name("file");
	/* A shmkit header this build does not accept (or not finished): the
	 * magic 0x0100544b4d4853, little-endian, says it is shmkit's. */
	char *odd = (char *)plain_file("SHMKT\0\1\0\7\7\7\7", 12);

	tool_create(seg, "1K");
	struct result r = SK("rm", mine, seg, empty, odd);
	expect_fail(r, 1, mine);
	cr_expect(strstr(r.err, "--force") && strstr(r.err, empty), "%s", r.err);
	cr_expect(strstr(r.err, "not a shmkit segment"), "%s", r.err);
	result_free(&r);
	cr_expect_eq(sk_test_exists(mine), 1, "a file that is not shmkit's is kept");
	cr_expect_eq(sk_test_exists(empty), 1);
	cr_expect_eq(sk_test_exists(seg), 0, "the segment is removed");
	cr_expect_eq(sk_test_exists(odd), 0, "so is a file with a shmkit header");
	r = run_prog("/bin/cat", NULL, 0, ARGV((char *)"cat", mine + 5));
	cr_expect_str_eq(r.out, "precious\n");
	result_free(&r);
	SK_OK("", "rm", "--force", mine, empty);
	cr_expect_eq(sk_test_exists(mine), 0);
	cr_expect_eq(sk_test_exists(empty), 0);
}

Test(tool, rm_removes_foreign_posix_segments)
{
	char name[PATH_MAX];

	snprintf(name, sizeof(name), "posix:%s", raw_posix(4096));
	SK_OK("", "rm", name);
	cr_expect_eq(sk_test_exists(name), 0, "POSIX objects are removed whoever made them");
}

/* gc removes the lock file of a System V key whose segment is gone
 * (unlocked and over a minute old), and keeps one that is fresh, one
 * whose segment exists and one somebody holds a lock on.  In a private
 * /dev/shm and IPC namespace: gc without patterns acts on the machine.
 * (Before, such files stayed for ever.) */
Test(tool, gc_removes_orphan_sysv_lock_files)
{
	static const char script[] =
		"mount -t tmpfs tmpfs /dev/shm || exit 90\n"
		"cd /dev/shm || exit 91\n"
		"old() { touch -d '-2 min' \"$1\"; }\n"
		"old .shmkit-sysv-4abcdef0.lock\n"                     /* orphan */
		"touch .shmkit-sysv-4abcdef1.lock\n"                   /* fresh */
		"\"$0\" create sysv:0x4abcdef2 --size 4K >/dev/null || exit 92\n"
		"old .shmkit-sysv-4abcdef2.lock\n"                     /* segment exists */
		"old .shmkit-sysv-4abcdef3.lock\n"                     /* locked */
		"python3 -c 'import fcntl, sys, time\n"
		"f = open(sys.argv[1], \"r+\"); fcntl.lockf(f, fcntl.LOCK_SH)\n"
		"open(\"ready\", \"w\").close(); time.sleep(20)' .shmkit-sysv-4abcdef3.lock &\n"
		"i=0; while [ ! -e ready ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n"
		"\"$0\" gc --dry-run | grep -c 'would remove /dev/shm/.shmkit-sysv' >&2\n"
		"\"$0\" gc || exit 93\n"
		"kill $! 2>/dev/null\n"
		"ls -A | grep shmkit-sysv\n";
	struct result r = run_prog("/usr/bin/unshare", NULL, 0,
	                           ARGV((char *)"unshare", (char *)"--mount", (char *)"--ipc",
	                                (char *)"sh", (char *)"-c", (char *)script, (char *)tool()));
	cr_expect(strstr(r.out, "removed /dev/shm/.shmkit-sysv-4abcdef0.lock"), "%s", r.out);
	cr_expect(strstr(r.err, "1\n") == r.err, "dry run: %s", r.err);
	const char *left = strstr(r.out, ".shmkit-sysv-4abcdef1.lock\n.shmkit-sysv-4abcdef2.lock\n"
	                                 ".shmkit-sysv-4abcdef3.lock\n");
	cr_expect(left, "kept: %s", r.out);
	cr_expect(!strstr(left ? left : "", "4abcdef0"), "%s", r.out);
	result_free(&r);
}
