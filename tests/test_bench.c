/*
 * test_bench.c - the benchmark program and `shmkit bench`/`shmkit demo`
 * run to completion and print well-formed output.  Nothing here looks at
 * how fast anything is: rows must be present, named, positive and
 * well-formed JSON; the demo must finish and remove its channels, also
 * when it is killed.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib_test.h"

#define OUT_CAP (256 * 1024)

/* build/shmkit-bench and build/shmkit, beside this binary's directory. */
static char bench_bin[4200], tool_bin[4200];

/* Find the programs, and take turns: benchmarks spin on both CPUs, so two
 * at once (Criterion runs tests in parallel) would mostly measure each
 * other and run for minutes.  The lock is on this binary (no file is
 * created) and goes with the test's process. */
static void setup(void)
{
	snprintf(bench_bin, sizeof(bench_bin), "%s/../shmkit-bench", sk_test_dir());
	snprintf(tool_bin, sizeof(tool_bin), "%s/../shmkit", sk_test_dir());
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
			;
}

TestSuite(bench, .timeout = 300, .init = setup);

/* ---- a parser for the flat rows --json prints ----------------------------- */

struct jrow {
	char name[80], unit[24], ref[80];
	double value, p99, ratio;
	bool has_ref, has_ratio;
	unsigned seen; /* bit per key */
};

static const char *skip_ws(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* A JSON string without escapes (names and units have none). */
static const char *parse_str(const char *p, char *out, size_t cap)
{
	size_t n = 0;
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if (*p == '\\' || (unsigned char)*p < 0x20 || n + 1 >= cap)
			return NULL;
		out[n++] = *p++;
	}
	out[n] = '\0';
	return *p == '"' ? p + 1 : NULL;
}

static const char *parse_num(const char *p, double *v)
{
	char *end;
	if (!(*p == '-' || isdigit((unsigned char)*p)))
		return NULL;
	*v = strtod(p, &end);
	return end > p ? end : NULL;
}

/* Value of one key; NULL if the value has the wrong type. */
static const char *parse_value(const char *p, const char *key, struct jrow *r)
{
	bool null = !strncmp(p, "null", 4);
	if (!strcmp(key, "name")) {
		r->seen |= 1;
		return parse_str(p, r->name, sizeof(r->name));
	} else if (!strcmp(key, "unit")) {
		r->seen |= 2;
		return parse_str(p, r->unit, sizeof(r->unit));
	} else if (!strcmp(key, "value")) {
		r->seen |= 4;
		return parse_num(p, &r->value);
	} else if (!strcmp(key, "p99")) {
		r->seen |= 8;
		return parse_num(p, &r->p99);
	} else if (!strcmp(key, "ratio")) {
		r->seen |= 16;
		r->has_ratio = !null;
		return null ? p + 4 : parse_num(p, &r->ratio);
	} else if (!strcmp(key, "ref")) {
		r->seen |= 32;
		r->has_ref = !null;
		return null ? p + 4 : parse_str(p, r->ref, sizeof(r->ref));
	}
	return NULL;
}

/* One line: {"key":value,...} with exactly the six keys.  0 or -1. */
static int parse_row(const char *line, struct jrow *r)
{
	char key[16];
	memset(r, 0, sizeof(*r));
	const char *p = skip_ws(line);
	if (*p++ != '{')
		return -1;
	for (;;) {
		unsigned before = r->seen;
		p = parse_str(skip_ws(p), key, sizeof(key));
		if (!p || *(p = skip_ws(p)) != ':')
			return -1;
		p = parse_value(skip_ws(p + 1), key, r);
		if (!p || r->seen == before)
			return -1; /* bad value, unknown or repeated key */
		p = skip_ws(p);
		if (*p == '}')
			break;
		if (*p++ != ',')
			return -1;
	}
	return *skip_ws(p + 1) == '\0' && r->seen == 63 ? 0 : -1;
}

static bool good_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_'))
			return false;
	return true;
}

/* Check every line of out as a row; fill names (up to max); count. */
static int check_rows(char *out, char names[][80], int max)
{
	int n = 0;
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct jrow r;
		cr_assert_eq(parse_row(line, &r), 0, "not a well-formed row: %s", line);
		cr_assert(good_name(r.name), "bad row name: %s", line);
		cr_assert(r.value > 0 && r.p99 > 0, "row without a positive figure: %s", line);
		cr_assert(r.unit[0], "row without a unit: %s", line);
		cr_assert_eq(r.has_ref, r.has_ratio, "ratio and ref disagree: %s", line);
		if (r.has_ref)
			cr_assert(r.ratio > 0 && good_name(r.ref), "bad ratio/ref: %s", line);
		for (int i = 0; i < n && i < max; i++)
			cr_assert_str_neq(names[i], r.name, "row %s printed twice", r.name);
		if (n < max)
			snprintf(names[n], 80, "%s", r.name);
		n++;
	}
	return n;
}

static bool has_name(char names[][80], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

/* ---- shmkit-bench ------------------------------------------------------ */

Test(bench, quick_json_rows_are_well_formed)
{
	static char out[OUT_CAP]; /* static: a failed assert leaks nothing */
	char names[128][80];
	int rc = sk_test_run(out, OUT_CAP, bench_bin, "--quick", "--json", NULL);
	cr_assert_eq(rc, 0, "shmkit-bench --quick --json exited %d:\n%s", rc, out);
	int n = check_rows(out, names, 128);
	static const char *const must[] = {
		"cacheline_rtt", "msg64_rtt", "futex_rtt", "pipe_rtt", "unix_stream_rtt",
		"unix_dgram_rtt", "memcpy_64", "memcpy_4k", "memcpy_1m",
		"spsc_ring_64", "spsc_ring_4k", "spsc_ring_1m",
	};
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		cr_expect(has_name(names, n < 128 ? n : 128, must[i]), "no row %s", must[i]);
}

Test(bench, filter_keeps_only_matching_rows)
{
	static char out[OUT_CAP]; /* static: a failed assert leaks nothing */
	char names[64][80];
	int rc = sk_test_run(out, OUT_CAP, bench_bin, "--quick", "--json",
	                     "--filter", "pipe", NULL);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
	int n = check_rows(out, names, 64);
	cr_assert_geq(n, 1, "no row matched 'pipe'");
	for (int i = 0; i < n && i < 64; i++)
		cr_expect(strstr(names[i], "pipe"), "row %s does not match", names[i]);
	cr_expect(has_name(names, n, "pipe_rtt"));
}

Test(bench, human_table_has_header_and_ratio)
{
	static char out[OUT_CAP]; /* static: a failed assert leaks nothing */
	int rc = sk_test_run(out, OUT_CAP, bench_bin, "--quick", "--filter",
	                     "pipe_rtt", NULL);
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
	cr_expect(strstr(out, "median"), "no header:\n%s", out);
	/* pipe_rtt is compared to futex_rtt, measured silently for the ratio. */
	cr_expect(strstr(out, "pipe_rtt") && strstr(out, "x futex_rtt"), "%s", out);
	cr_expect(!strstr(out, "\nfutex_rtt"), "filtered reference printed:\n%s", out);
}

Test(bench, usage_errors_and_list)
{
	char out[8192];
	cr_expect_eq(sk_test_run(out, sizeof(out), bench_bin, "--bogus", NULL), 2);
	cr_expect_eq(sk_test_run(out, sizeof(out), bench_bin, "--filter", NULL), 2);
	cr_assert_eq(sk_test_run(out, sizeof(out), bench_bin, "--list", NULL), 0);
	cr_expect(strstr(out, "ref   cacheline_rtt"), "%s", out);
	cr_expect(strstr(out, "ref   spsc_ring_64"), "%s", out);
}

/* No System V message queue last used by the benchmark's pid is left. */
static bool sysv_queue_of(pid_t pid)
{
	FILE *f = fopen("/proc/sysvipc/msg", "r");
	char line[512];
	bool found = false;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		long key, id, perms, cbytes, qnum, lspid, lrpid;
		if (sscanf(line, "%ld %ld %lo %ld %ld %ld %ld", &key, &id, &perms,
		           &cbytes, &qnum, &lspid, &lrpid) == 7 &&
		    (lspid == pid || lrpid == pid))
			found = true;
	}
	fclose(f);
	return found;
}

Test(bench, message_queues_are_removed)
{
	const char *argv[] = { bench_bin, "--quick", "--json", "--filter", "_mq_", NULL };
	int out;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	char buf[8192];
	int rc = sk_test_finish(pid, out, buf, sizeof(buf));
	cr_assert_eq(rc, 0, "exit %d:\n%s", rc, buf);
	cr_expect(!sysv_queue_of(pid), "a System V queue of pid %d is left", (int)pid);
	char path[128];
	snprintf(path, sizeof(path), "/dev/mqueue/shmkit-bench-%d-mq-0", (int)pid);
	cr_expect(access(path, F_OK) != 0, "%s left behind", path);
}

/* ---- the tool -------------------------------------------------------------- */

Test(bench, tool_runs_the_benchmark_program)
{
	static char out[OUT_CAP]; /* static: a failed assert leaks nothing */
	char names[16][80];
	int rc = sk_test_run(out, OUT_CAP, tool_bin, "bench", "--quick", "--json",
	                     "--filter", "memcpy", NULL);
	cr_assert_eq(rc, 0, "shmkit bench exited %d:\n%s", rc, out);
	int n = check_rows(out, names, 16);
	cr_expect_eq(n, 3, "expected the three memcpy rows, got %d", n);
	cr_expect_eq(sk_test_run(out, OUT_CAP, tool_bin, "bench", "--nope", NULL), 2);
}

static bool demo_name_exists(pid_t pid, const char *side)
{
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/shmkit-demo-%d-%s", (int)pid, side);
	return access(path, F_OK) == 0;
}

Test(bench, demo_runs_and_removes_its_channels)
{
	const char *argv[] = { tool_bin, "demo", "--count", "20000", NULL };
	int out;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	static char buf[OUT_CAP];
	int rc = sk_test_finish(pid, out, buf, OUT_CAP);
	bool left = demo_name_exists(pid, "out") || demo_name_exists(pid, "back");
	cr_assert_eq(rc, 0, "shmkit demo exited %d:\n%s", rc, buf);
	cr_expect(!left, "the demo left its channels behind");
	cr_expect(strstr(buf, "shmkit channel") && strstr(buf, "pipe") &&
	          strstr(buf, "UNIX socket") && strstr(buf, "msgs/s"), "%s", buf);
}

Test(bench, demo_killed_removes_its_channels)
{
	const char *argv[] = { tool_bin, "demo", "--count", "1000000000", NULL };
	int out;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	bool seen = false;
	for (int i = 0; i < 1000 && !seen; i++) { /* up to 10 s */
		seen = demo_name_exists(pid, "back");
		if (!seen)
			usleep(10000);
	}
	kill(pid, SIGTERM);
	char buf[4096];
	int rc = sk_test_finish(pid, out, buf, sizeof(buf));
	bool left = demo_name_exists(pid, "out") || demo_name_exists(pid, "back");
	cr_assert(seen, "the demo never created its channels (exit %d): %s", rc, buf);
	cr_expect_eq(rc, 128 + SIGTERM, "exit %d", rc);
	cr_expect(!left, "channels left behind after SIGTERM");
}

Test(bench, demo_usage_errors)
{
	char out[4096];
	cr_expect_eq(sk_test_run(out, sizeof(out), tool_bin, "demo", "--count", "0", NULL), 2);
	cr_expect_eq(sk_test_run(out, sizeof(out), tool_bin, "demo", "--what", NULL), 2);
	cr_expect_eq(sk_test_run(out, sizeof(out), tool_bin, "demo", "--help", NULL), 0);
}
