/*
 * main.c - shmkit-bench: every benchmark of the project in one program,
 * each figure next to the machine's limits measured in the same run.
 *
 *   shmkit-bench [--json] [--quick] [--filter SUBSTR] [--list]
 *
 * Methodology
 *
 *   Same run, ratios first.  On a shared virtual machine absolute figures
 *   swing by several times from one run to the next (the host moves the
 *   virtual CPUs, other tenants load the caches).  Every row can therefore
 *   name a reference row -- a raw limit or a plain alternative -- measured
 *   in this very run, and prints value / reference.  The references
 *   (bench/baseline.c) run first: a cache-line ping-pong (the hardware
 *   limit for spinning), a futex ping-pong (the limit for blocking), the
 *   kernel's IPC (pipe, UNIX stream and datagram sockets, POSIX and
 *   System V message queues, TCP loopback), one-core memcpy bandwidth, and
 *   a plain single-producer/single-consumer ring in shared memory.
 *
 *   Two processes, two CPUs.  Two-process rows fork a child; when the
 *   process may run on two or more CPUs the parent is pinned to the first
 *   allowed CPU and the child to the second (sched_setaffinity), so every
 *   two-process figure crosses between the same two cores.  The two meet
 *   at a start barrier after their set-up, so set-up is never timed.
 *
 *   Batches, median and p99.  The parent times batches of n operations
 *   (n fixed per row, chosen so a batch takes about a millisecond or more,
 *   which keeps clock overhead below a percent), discards warm-up batches
 *   (a tenth, at least one), and reports the median over the timed batches
 *   (100 in a full run) and the 99th-percentile batch by nearest rank (with
 *   few batches that is the slowest one).  Latency rows are per round trip;
 *   rate rows are operations per second and their p99 is the slow tail.
 *   Throughput is timed at the consumer: in the steady state each batch is
 *   n messages passing through the queue, whoever is the bottleneck.
 *
 *   Honest work.  Every message carries a sequence number the receiver
 *   checks, so nothing is optimised away and nothing is lost unseen;
 *   copies are made opaque to the compiler; memcpy sources stay hot (as a
 *   sender's buffer does) while destinations cycle through a region of at
 *   least 1 MiB (8 blocks for 1 MiB blocks), like a ring's slots.
 *
 *   Bounded and clean.  A pair that runs past its time limit, or whose
 *   peer dies, is aborted (the child is killed; blocked calls in the parent
 *   are interrupted once a second so they notice); children die with their
 *   parent (PR_SET_PDEATHSIG).  Named objects are removed in teardown and
 *   also on SIGINT/SIGTERM/SIGHUP.  A full run takes well under two
 *   minutes, --quick (counts / 10, 12 batches) a few seconds.
 *
 * Output: an aligned table (name, median, p99, ratio to reference), or
 * with --json one object per row:
 *   {"name":"pipe_rtt","value":5321.4,"unit":"ns","p99":7012.9,
 *    "ratio":1.08,"ref":"futex_rtt"}
 * (ratio and ref are null when the row has no reference).  Exit status 0,
 * 1 if any row failed, 2 on a usage error.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MAX_ENTRIES 64
#define MAX_ROWS 256

struct entry {
	const char *name;
	bench_fn fn;
	bool running;
};

struct row {
	char name[64];
	double value;
};

static struct {
	struct entry suites[MAX_ENTRIES], refs[MAX_ENTRIES];
	int nsuites, nrefs;
	struct row rows[MAX_ROWS];
	int nrows;
	bool json, quick, header_done;
	const char *filter;
	int failures;
} g;

/* ---- registry --------------------------------------------------------- */

static void add_entry(struct entry *tab, int *n, const char *name, bench_fn fn)
{
	if (*n >= MAX_ENTRIES) {
		fprintf(stderr, "shmkit-bench: too many suites (%s dropped)\n", name);
		return;
	}
	tab[(*n)++] = (struct entry){ .name = name, .fn = fn };
}

void bench_register_suite(const char *name, bench_fn fn)
{
	add_entry(g.suites, &g.nsuites, name, fn);
}

void bench_register_ref(const char *name, bench_fn fn)
{
	add_entry(g.refs, &g.nrefs, name, fn);
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* ---- options ---------------------------------------------------------- */

bool bench_want(const char *name)
{
	return !g.filter || strstr(name, g.filter);
}

bool bench_quick(void)
{
	return g.quick;
}

long bench_iters(long full)
{
	if (!g.quick)
		return full;
	return full / 10 > 0 ? full / 10 : 1;
}

/* ---- recorded rows and references ------------------------------------- */

static struct row *find_row(const char *name)
{
	for (int i = 0; i < g.nrows; i++)
		if (!strcmp(g.rows[i].name, name))
			return &g.rows[i];
	return NULL;
}

static void record_row(const char *name, double value)
{
	struct row *r = find_row(name);
	if (!r && g.nrows < MAX_ROWS) {
		r = &g.rows[g.nrows++];
		snprintf(r->name, sizeof(r->name), "%s", name);
	}
	if (r)
		r->value = value;
}

static struct entry *find_ref(const char *name)
{
	for (int i = 0; i < g.nrefs; i++)
		if (!strcmp(g.refs[i].name, name))
			return &g.refs[i];
	return NULL;
}

double bench_ref(const char *name)
{
	struct row *r = find_row(name);
	if (r)
		return r->value;
	struct entry *e = find_ref(name);
	if (!e || e->running)
		return 0;
	e->running = true;
	e->fn();
	e->running = false;
	r = find_row(name);
	return r ? r->value : 0;
}

/* ---- printing --------------------------------------------------------- */

/* Human form of a figure: ns scaled to us/ms, rates to K/M/G. */
static void human(char *buf, size_t cap, double v, const char *unit)
{
	size_t ul = strlen(unit);
	if (!strcmp(unit, "ns")) {
		if (v < 1e3)
			snprintf(buf, cap, "%.0f ns", v);
		else if (v < 1e6)
			snprintf(buf, cap, "%.2f us", v / 1e3);
		else
			snprintf(buf, cap, "%.2f ms", v / 1e6);
	} else if (ul > 2 && !strcmp(unit + ul - 2, "/s") && unit[0] != 'G' &&
	           unit[0] != 'M' && unit[0] != 'K') {
		if (v >= 1e9)
			snprintf(buf, cap, "%.2f G %s", v / 1e9, unit);
		else if (v >= 1e6)
			snprintf(buf, cap, "%.2f M %s", v / 1e6, unit);
		else if (v >= 1e3)
			snprintf(buf, cap, "%.1f K %s", v / 1e3, unit);
		else
			snprintf(buf, cap, "%.1f %s", v, unit);
	} else {
		snprintf(buf, cap, v >= 1000 ? "%.0f %s" : "%.3g %s", v, unit);
	}
}

static void print_header(void)
{
	if (g.json || g.header_done)
		return;
	g.header_done = true;
	printf("%-30s %16s %16s   %s\n", "benchmark", "median", "p99", "ratio to reference");
}

/* JSON numbers must be finite: non-finite values print as null. */
static void json_num(double v)
{
	if (isfinite(v))
		printf("%.6g", v);
	else
		fputs("null", stdout);
}

static void print_json(const char *name, double value, double p99,
                       const char *unit, double ratio, const char *ref)
{
	printf("{\"name\":\"%s\",\"value\":", name);
	json_num(value);
	printf(",\"unit\":\"%s\",\"p99\":", unit);
	json_num(p99);
	fputs(",\"ratio\":", stdout);
	if (ref)
		json_num(ratio);
	else
		fputs("null", stdout);
	if (ref)
		printf(",\"ref\":\"%s\"}\n", ref);
	else
		fputs(",\"ref\":null}\n", stdout);
}

static void print_human(const char *name, double value, double p99,
                        const char *unit, double ratio, const char *ref)
{
	char v[48], p[48];
	human(v, sizeof(v), value, unit);
	human(p, sizeof(p), p99, unit);
	print_header();
	printf("%-30s %16s %16s", name, v, p);
	if (ref)
		printf(ratio >= 0.1 ? "   %.2fx %s" : "   %.2gx %s", ratio, ref);
	putchar('\n');
}

void bench_report(const char *name, double value, double p99,
                  const char *unit, const char *ref)
{
	record_row(name, value);
	if (!bench_want(name))
		return;
	double base = ref ? bench_ref(ref) : 0;
	if (ref && !(base > 0))
		ref = NULL; /* reference unavailable: no ratio */
	double ratio = ref ? value / base : 0;
	if (g.json)
		print_json(name, value, p99, unit, ratio, ref);
	else
		print_human(name, value, p99, unit, ratio, ref);
	fflush(stdout);
}

void bench_report_ns(const char *name, const struct bench_stat *st, const char *ref)
{
	bench_report(name, st->median_ns, st->p99_ns, "ns", ref);
}

void bench_report_rate(const char *name, const struct bench_stat *st, const char *ref)
{
	bench_report(name, 1e9 / st->median_ns, 1e9 / st->p99_ns, "msg/s", ref);
}

void bench_report_gbps(const char *name, const struct bench_stat *st,
                       size_t bytes, const char *ref)
{
	bench_report(name, (double)bytes / st->median_ns,
	             (double)bytes / st->p99_ns, "GB/s", ref);
}

void bench_report_kind(const char *name, const struct bench_stat *st, int kind,
                       size_t bytes, const char *ref)
{
	if (kind == 'n')
		bench_report_ns(name, st, ref);
	else if (kind == 'r')
		bench_report_rate(name, st, ref);
	else
		bench_report_gbps(name, st, bytes, ref);
}

void bench_skip(const char *name, const char *why)
{
	if (bench_want(name))
		fprintf(stderr, "shmkit-bench: %s: skipped: %s\n", name, why);
}

bool bench_check(const char *name, int err)
{
	if (err >= 0)
		return true;
	fprintf(stderr, "shmkit-bench: %s: failed: %s\n", name, strerror(-err));
	g.failures++;
	return false;
}

/* ---- main ------------------------------------------------------------- */

static int usage(FILE *f, int status)
{
	fputs("usage: shmkit-bench [--json] [--quick] [--filter SUBSTR] [--list]\n"
	      "  --json          one JSON object per row\n"
	      "  --quick         small counts (smoke test; figures are rough)\n"
	      "  --filter S      only rows whose name contains S\n"
	      "  --list          list references and suites, run nothing\n", f);
	return status;
}

/* --list: "ref NAME" / "suite NAME" lines; with --json one array of
 * {"kind","name"} (names are identifiers: nothing to escape). */
static void list_entries(void)
{
	if (g.json) {
		for (int i = 0; i < g.nrefs + g.nsuites; i++)
			printf("%s{\"kind\":\"%s\",\"name\":\"%s\"}", i ? "," : "[",
			       i < g.nrefs ? "ref" : "suite",
			       i < g.nrefs ? g.refs[i].name : g.suites[i - g.nrefs].name);
		printf("%s]\n", g.nrefs + g.nsuites ? "" : "[");
		return;
	}
	for (int i = 0; i < g.nrefs; i++)
		printf("ref   %s\n", g.refs[i].name);
	for (int i = 0; i < g.nsuites; i++)
		printf("suite %s\n", g.suites[i].name);
}

/* Parse argv into g; returns -1 to run, or an exit status. */
static int parse_args(int argc, char **argv, bool *list)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json"))
			g.json = true;
		else if (!strcmp(a, "--quick"))
			g.quick = true;
		else if (!strcmp(a, "--list"))
			*list = true;
		else if (!strcmp(a, "--filter") && i + 1 < argc)
			g.filter = argv[++i];
		else if (!strncmp(a, "--filter=", 9))
			g.filter = a + 9;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return usage(stdout, 0);
		else {
			fprintf(stderr, "shmkit-bench: bad argument '%s'\n", a);
			return usage(stderr, 2);
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	bool list = false;
	int rc = parse_args(argc, argv, &list);
	if (rc >= 0)
		return rc;
	qsort(g.suites, (size_t)g.nsuites, sizeof(g.suites[0]), cmp_entry);
	if (list) {
		list_entries();
		return 0;
	}
	bench_harness_init();
	if (!g.json)
		bench_harness_describe();
	for (int i = 0; i < g.nrefs; i++)
		if (bench_want(g.refs[i].name) && !find_row(g.refs[i].name))
			bench_ref(g.refs[i].name);
	for (int i = 0; i < g.nsuites; i++)
		g.suites[i].fn();
	if (g.failures)
		fprintf(stderr, "shmkit-bench: %d row(s) failed\n", g.failures);
	return g.failures ? 1 : 0;
}
