/*
 * openloop.c - open-loop latency: a sender at a fixed rate, the receiver
 * timing every message from the moment it was meant to be sent, so a
 * stall of the sender or of the queue counts against every message it
 * delays (coordinated omission accounted for: a closed-loop benchmark
 * would send fewer messages during a stall and hide it).
 *
 * The child sends 64-byte messages carrying their sequence number and
 * intended send time t0 + i / rate (CLOCK_MONOTONIC, one clock for both
 * processes); it sends each at that time or, when late, at once.  The
 * parent receives with the default (adaptive) wait and records
 * receive time - intended time for every message of the timed second
 * (a first, untimed second warms both sides up).
 *
 * Rows, for SYS pipe (a pipe(2) of 64 KiB, 1024 messages: blocking write
 * and read, the kernel's own queue as the alternative), chan (an SPSC
 * channel, capacity 1024) and bus (a back-pressure bus, capacity 1024,
 * one subscriber) and RATE 100k and 1m (messages per second), in ns:
 *   openloop_pipe_RATE_p50                      the pipe's median latency
 *   openloop_pipe_RATE_p99, _p999, _max         / openloop_pipe_RATE_p50
 *   openloop_chan_RATE_P, openloop_bus_RATE_P   / openloop_pipe_RATE_P
 *                                                 (the same percentile)
 * (the p99 column of these rows repeats the value).  For each rate the
 * pipe runs first, then the channel and the bus, one after the other in
 * the same run (each a pair of two seconds).  If the sender could
 * not keep the rate -- it finished the run more than 10% of the run late --
 * a note on stderr says so and gives the rate it reached; the latencies
 * then include the backlog, as a user's would.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define OL_MSG 64
#define OL_CAP 1024

struct ol_msg {
	uint64_t seq;
	int64_t intended;
	uint8_t pad[OL_MSG - 16];
};

enum ol_kind { OL_PIPE, OL_CHAN, OL_BUS };

static const char *const ol_kind_name[] = { "pipe", "chan", "bus" };

struct ol {
	char name[80];
	enum ol_kind kind;
	int fd[2];              /* OL_PIPE: read and write ends */
	long rate;
	shmkit_chan *ch;
	shmkit_bus *b;
	shmkit_sub *sub;
	int64_t *lat;           /* parent: latencies of the timed batch */
	long nlat, calls;
	uint64_t seq;
	int64_t *shared;        /* [0] t0, [1] the sender's lateness at the end */
};

static struct ol ol;

static int ol_setup(void *arg)
{
	int r;
	bench_unique_name(ol.name, sizeof(ol.name), "openloop");
	if (!(ol.shared = bench_shared_alloc(64)))
		return -ENOMEM;
	if (ol.kind == OL_PIPE) {
		if (pipe2(ol.fd, O_CLOEXEC))
			return -errno;
		/* 1024 messages, as the channel's and bus's capacity (64 KiB
		 * is also Linux's default). */
		fcntl(ol.fd[1], F_SETPIPE_SZ, OL_CAP * OL_MSG);
		return 0;
	}
	if (ol.kind == OL_BUS) {
		struct shmkit_bus_opts o = { .capacity = OL_CAP, .max_msg = OL_MSG,
		                             .delivery = SHMKIT_BUS_BACKPRESSURE,
		                             .flags = SHMKIT_EXCL };
		r = shmkit_bus_create(&ol.b, ol.name, &o);
	} else {
		struct shmkit_chan_opts o = { .capacity = OL_CAP, .max_msg = OL_MSG,
		                              .flags = SHMKIT_CHAN_SPSC | SHMKIT_EXCL };
		r = shmkit_chan_create(&ol.ch, ol.name, &o);
	}
	if (!r && (r = bench_cleanup_push(bench_unlink_shm, ol.name)))
		shmkit_seg_remove(ol.name);
	return r;
}

static void ol_teardown(void *arg)
{
	for (int i = 0; i < 2; i++)
		if (ol.fd[i] >= 0)
			close(ol.fd[i]);
	ol.fd[0] = ol.fd[1] = -1;
	if (ol.kind == OL_PIPE)
		return;
	if (ol.sub)
		shmkit_bus_unsubscribe(ol.sub);
	if (ol.b)
		shmkit_bus_close(ol.b);
	if (ol.ch)
		shmkit_chan_close(ol.ch);
	ol.sub = NULL;
	ol.b = NULL;
	ol.ch = NULL;
	shmkit_seg_remove(ol.name);
	bench_cleanup_pop(false);
}

/* The subscription exists before the barrier, so the first message
 * published after it is seen. */
static int ol_parent_init(void *arg)
{
	if (ol.kind == OL_PIPE) {
		close(ol.fd[1]); /* the child writes; its death then reads as EOF */
		ol.fd[1] = -1;
		return 0;
	}
	if (ol.kind != OL_BUS)
		return 0;
	struct shmkit_bus_opts o = { .from = SHMKIT_FROM_NEWEST };
	return shmkit_bus_subscribe(&ol.sub, ol.b, &o);
}

static int ol_send(const struct ol_msg *m)
{
	int r;
	if (ol.kind == OL_PIPE)
		return bench_write_full(ol.fd[1], m, sizeof(*m));
	do
		r = ol.kind == OL_BUS ? shmkit_bus_publish(ol.b, m, sizeof(*m), BENCH_WAIT_NS)
		                      : shmkit_chan_send(ol.ch, m, sizeof(*m), BENCH_WAIT_NS);
	while (r == -ETIMEDOUT && !bench_aborted());
	return r == -ETIMEDOUT ? -ECANCELED : r;
}

static int ol_sender(void *arg, long total)
{
	int64_t period = 1000000000LL / ol.rate, t0 = sk_now_ns() + 1000000;
	struct ol_msg m;
	memset(&m, 0, sizeof(m));
	for (long i = 0; i < total; i++) {
		m.seq = (uint64_t)i;
		m.intended = t0 + i * period;
		unsigned spins = 0;
		while (sk_now_ns() < m.intended) {
			int r = bench_poll(&spins);
			if (r)
				return r;
		}
		int r = ol_send(&m);
		if (r)
			return r;
	}
	/* Relaxed is enough: the parent reads it after reaping us. */
	ol.shared[1] = sk_now_ns() - (t0 + (total - 1) * period);
	return 0;
}

static int ol_recv(struct ol_msg *m)
{
	ssize_t n;
	if (ol.kind == OL_PIPE)
		return bench_read_full(ol.fd[0], m, sizeof(*m));
	do
		n = ol.kind == OL_BUS ? shmkit_sub_recv(ol.sub, m, sizeof(*m), NULL, BENCH_WAIT_NS)
		                      : shmkit_chan_recv(ol.ch, m, sizeof(*m), BENCH_WAIT_NS);
	while (n == -ETIMEDOUT && !bench_aborted());
	if (n < 0)
		return n == -ETIMEDOUT ? -ECANCELED : (int)n;
	return n == (ssize_t)sizeof(*m) ? 0 : -EBADMSG;
}

static int ol_receiver(void *arg, long n)
{
	bool timed = ol.calls++ > 0; /* the first call is the warm-up */
	for (long i = 0; i < n; i++, ol.seq++) {
		struct ol_msg m;
		int r = ol_recv(&m);
		if (r)
			return r;
		int64_t now = sk_now_ns();
		if (m.seq != ol.seq)
			return -EBADMSG;
		if (timed && ol.nlat < n)
			ol.lat[ol.nlat++] = now - m.intended;
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct(const int64_t *v, long n, double p)
{
	long k = (long)(p * (double)n + 0.999999); /* nearest rank */
	return (double)v[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

static const char *const suffix[] = { "p50", "p99", "p999", "max" };

/* Is any row of kind at rate wanted (--filter)? */
static bool ol_wanted(enum ol_kind kind, const char *rname)
{
	char name[64];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "openloop_%s_%s_%s", ol_kind_name[kind], rname, suffix[i]);
		if (bench_want(name))
			return true;
	}
	return false;
}

static void ol_row(enum ol_kind kind, long rate, const char *rname)
{
	char base[48], name[4][64], ref[4][64];
	static const double q[] = { 0.50, 0.99, 0.999, 1.0 };

	snprintf(base, sizeof(base), "openloop_%s_%s", ol_kind_name[kind], rname);
	for (int i = 0; i < 4; i++) {
		snprintf(name[i], sizeof(name[i]), "%s_%s", base, suffix[i]);
		/* The pipe's tail against its median; shmkit's percentiles
		 * against the pipe's same percentile. */
		snprintf(ref[i], sizeof(ref[i]), "openloop_pipe_%s_%s", rname,
		         kind == OL_PIPE ? suffix[0] : suffix[i]);
	}
	long n = bench_iters(rate); /* one second of messages, a tenth under --quick */
	memset(&ol, 0, sizeof(ol));
	ol.kind = kind;
	ol.fd[0] = ol.fd[1] = -1;
	ol.rate = rate;
	if (!(ol.lat = malloc((size_t)n * sizeof(*ol.lat)))) {
		bench_check(name[0], -ENOMEM);
		return;
	}
	struct bench_pair p = {
		.iters = rate, .batches = 1, .arg = &ol, .setup = ol_setup,
		.parent_init = ol_parent_init, .parent_run = ol_receiver,
		.child_run = ol_sender, .teardown = ol_teardown,
	};
	struct bench_stat st;
	int err = bench_pair(&p, &st);
	if (bench_check(name[0], err) && ol.nlat > 0) {
		qsort(ol.lat, (size_t)ol.nlat, sizeof(*ol.lat), cmp_i64);
		for (int i = 0; i < 4; i++) {
			double v = pct(ol.lat, ol.nlat, q[i]);
			bench_report(name[i], v, v, "ns",
			             kind == OL_PIPE && i == 0 ? NULL : ref[i]);
		}
		double late = (double)ol.shared[1], run = 2e9 * (double)n / (double)rate;
		if (late > 0.1 * run)
			fprintf(stderr, "shmkit-bench: %s: the sender could not keep %ld msg/s on this "
			        "machine: it reached %.0f msg/s\n", base, rate, 2.0 * (double)n / ((run + late) / 1e9));
	}
	bench_shared_free(ol.shared, 64);
	free(ol.lat);
}

/* For each rate: the pipe (when any row of the rate is wanted: the
 * others' ratios need it), then the channel and the bus. */
static void openloop_suite(void)
{
	static const struct { long rate; const char *name; } rates[] = {
		{ 100000, "100k" }, { 1000000, "1m" },
	};
	for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		bool want[3], any = false;
		for (int k = OL_PIPE; k <= OL_BUS; k++)
			any = (want[k] = ol_wanted((enum ol_kind)k, rates[r].name)) || any;
		for (int k = OL_PIPE; k <= OL_BUS; k++)
			if (want[k] || (k == OL_PIPE && any))
				ol_row((enum ol_kind)k, rates[r].rate, rates[r].name);
	}
}

BENCH_SUITE("openloop", openloop_suite)
