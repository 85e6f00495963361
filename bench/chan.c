/*
 * chan.c - channel rows, each next to its limit measured in the same run
 * between the same two pinned processes (bench/baseline.c):
 *
 *   chan_rtt_spsc_spin   64-byte request and reply over two SPSC channels
 *                        of the default capacity (64),
 *                        both sides SHMKIT_WAIT_SPIN      / msg64_rtt
 *   chan_rtt_spin        the same over MPMC channels      / chan_rtt_spsc_spin
 *   chan_rtt_spsc_32     32-byte messages (one line with the slot's seq
 *                        word)                            / cacheline_rtt
 *   chan_rtt_spsc_2slot  SPSC channels of 2 slots         / ring_rtt_2slot
 *   bus_rtt_spin         a bus each way, one subscriber, spinning (bench/bus.c)
 *                                                         / chan_rtt_spsc_spin
 *   vyukov_rtt           the same over two of Vyukov's bounded MPMC
 *                        queues (bench/mpmc.c), 64 cells  / chan_rtt_spsc_spin
 *   vyukov_rtt_cas       Vyukov's queues with each cell published and
 *                        freed by a CAS of its seq instead of a store, as
 *                        the MPMC channel does to keep -ESTALE / vyukov_rtt
 *   (these seven are measured interleaved, in 4 rounds, with five
 *   references, reported again as cacheline_rtt_again, msg64_rtt_again,
 *   ring_rtt_2slot_again, ring_rtt_64slot_again and
 *   ring_rtt_64slot_80b_again: the ratios are to those; the two SPSC
 *   rows of 64 slots are reported a second time, as NAME_ring, next to
 *   the hand-written 64-slot ring with the same lines per slot, and
 *   chan_rtt_spin as chan_rtt_spin_vyukov_cas next to vyukov_rtt_cas)
 *   chan_rtt_adaptive    the default strategy             / chan_rtt_spin
 *   chan_rtt_adaptive_loaded  the same while 2 spinning processes keep both
 *                        cores busy                       / pipe_rtt_loaded
 *   chan_rtt_block       SHMKIT_WAIT_BLOCK                / futex_rtt
 *   chan_spsc_64         one-way, 64-byte messages, SPSC, spinning, 1024
 *                        slots (the plain ring's geometry) / spsc_ring_64
 *   chan_mpmc_64         the same over an MPMC channel    / spsc_ring_64
 *   chan_spsc_4k, chan_spsc_1m   4 KiB in 64 slots, 1 MiB in 8, GB/s
 *                                                   / memcpy_4k, memcpy_1m
 *   chan_zc_64           zero-copy: reserve, fill the whole message in
 *                        place, commit; peek, read every byte in place
 *                        and check, release (SPSC, 64-byte slots)
 *                                                         / spsc_ring_64
 *   chan_zc_1m           the same with 1 MiB messages: the producer writes
 *                        every byte once, the consumer reads every byte
 *                        once (the copy rows move each byte through a
 *                        private buffer on both sides)    / memcpy_1m
 *
 * Every message carries a sequence number the receiver checks.  The
 * channels are POSIX segments made in set-up, used by the child through
 * the handles it inherits, and removed in teardown (and on SIGINT).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "refs.h"

#define RTT_MSG 64

struct chan_pp {
	char names[2][80];
	int nchan;              /* 1: one-way stream; 2: request and reply */
	unsigned flags;         /* SHMKIT_CHAN_SPSC or 0 */
	int wait;               /* enum shmkit_wait for every handle */
	uint32_t capacity;
	size_t msg;
	shmkit_chan *ch[2];
	unsigned char *buf;     /* private message buffer */
	uint64_t seq;           /* private: next sequence number */
};

/* ---- bounded library calls (re-check bench_aborted once a second) -------- */

static int again(int r)
{
	return r == -ETIMEDOUT && !bench_aborted();
}

static int send_msg(shmkit_chan *ch, const void *m, size_t len)
{
	int r;
	while (again(r = shmkit_chan_send(ch, m, len, BENCH_WAIT_NS)))
		;
	return r == -ETIMEDOUT ? -ECANCELED : r;
}

/* Receive one message of exactly len bytes carrying sequence number seq. */
static int recv_msg(shmkit_chan *ch, void *buf, size_t len, uint64_t seq)
{
	ssize_t n;
	uint64_t got;
	while (again((int)(n = shmkit_chan_recv(ch, buf, len, BENCH_WAIT_NS))))
		;
	if (n < 0)
		return n == -ETIMEDOUT ? -ECANCELED : (int)n;
	memcpy(&got, buf, sizeof(got));
	return (size_t)n == len && got == seq ? 0 : -EBADMSG;
}

/* ---- set-up and teardown -------------------------------------------------- */

static void chan_teardown(void *arg)
{
	struct chan_pp *c = arg;
	for (int i = c->nchan - 1; i >= 0; i--) {
		if (!c->ch[i])
			continue;
		shmkit_chan_close(c->ch[i]);
		shmkit_seg_remove(c->names[i]);
		bench_cleanup_pop(false);
		c->ch[i] = NULL;
	}
	free(c->buf);
	c->buf = NULL;
}

static int chan_setup(void *arg)
{
	struct chan_pp *c = arg;
	struct shmkit_chan_opts o = { .capacity = c->capacity, .max_msg = (uint32_t)c->msg,
	                              .flags = c->flags | SHMKIT_EXCL, .wait = c->wait };
	int r = 0;

	c->seq = 0;
	c->ch[0] = c->ch[1] = NULL;
	if (!(c->buf = calloc(1, c->msg)))
		return -ENOMEM;
	for (int i = 0; i < c->nchan && !r; i++) {
		bench_unique_name(c->names[i], sizeof(c->names[i]), "chan");
		if (!(r = shmkit_chan_create(&c->ch[i], c->names[i], &o)) &&
		    (r = bench_cleanup_push(bench_unlink_shm, c->names[i]))) {
			shmkit_chan_close(c->ch[i]);
			shmkit_seg_remove(c->names[i]);
			c->ch[i] = NULL;
		}
	}
	if (r)
		chan_teardown(c);
	return r;
}

/* ---- round trips ------------------------------------------------------------ */

static int rtt_ping(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		memcpy(c->buf, &c->seq, sizeof(c->seq));
		int r = send_msg(c->ch[0], c->buf, c->msg);
		if (r || (r = recv_msg(c->ch[1], c->buf, c->msg, c->seq)))
			return r;
	}
	return 0;
}

static int rtt_pong(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		int r = recv_msg(c->ch[0], c->buf, c->msg, c->seq);
		if (r || (r = send_msg(c->ch[1], c->buf, c->msg)))
			return r;
	}
	return 0;
}

/* ---- one-way streams ------------------------------------------------------- */

static int stream_produce(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		memcpy(c->buf, &c->seq, sizeof(c->seq));
		int r = send_msg(c->ch[0], c->buf, c->msg);
		if (r)
			return r;
	}
	return 0;
}

static int stream_consume(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		int r = recv_msg(c->ch[0], c->buf, c->msg, c->seq);
		if (r)
			return r;
	}
	return 0;
}

static int zc_produce(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		void *w;
		int r;
		while (again(r = shmkit_chan_reserve(c->ch[0], &w, BENCH_WAIT_NS)))
			;
		if (r)
			return r == -ETIMEDOUT ? -ECANCELED : r;
		/* Produce the message where it will be read: every byte written. */
		memset(w, (int)(c->seq & 0xff), c->msg);
		memcpy(w, &c->seq, sizeof(c->seq));
		if ((r = shmkit_chan_commit(c->ch[0], c->msg)))
			return r;
	}
	return 0;
}

static int zc_consume(void *arg, long n)
{
	struct chan_pp *c = arg;
	for (long i = 0; i < n; i++, c->seq++) {
		const void *p;
		uint64_t got;
		ssize_t len;
		while (again((int)(len = shmkit_chan_peek(c->ch[0], &p, BENCH_WAIT_NS))))
			;
		if (len < 0)
			return len == -ETIMEDOUT ? -ECANCELED : (int)len;
		memcpy(&got, p, sizeof(got));
		/* Consume the message where it lies: every byte read. */
		uint64_t sum = 0, word;
		for (size_t off = sizeof(got); off + sizeof(word) <= (size_t)len; off += sizeof(word)) {
			memcpy(&word, (const char *)p + off, sizeof(word));
			sum += word;
		}
		bench_sink(sum);
		uint8_t last = ((const uint8_t *)p)[len - 1];
		int r = shmkit_chan_release(c->ch[0]);
		if (r || (size_t)len != c->msg || got != c->seq || last != (uint8_t)(c->seq & 0xff))
			return r ? r : -EBADMSG;
	}
	return 0;
}

/* ---- rows ------------------------------------------------------------------- */

/* kind: 'n' ns per round trip, 'r' msg/s, 'g' GB/s. */
static void chan_row(const char *name, struct chan_pp *c, long iters, int kind, const char *ref,
                     int (*parent_run)(void *, long), int (*child_run)(void *, long))
{
	struct bench_pair p = {
		.iters = iters, .arg = c, .setup = chan_setup,
		.parent_run = parent_run, .child_run = child_run,
		.teardown = chan_teardown,
	};
	struct bench_stat st;

	if (bench_check(name, bench_pair(&p, &st)))
		bench_report_kind(name, &st, kind, c->msg, ref);
}

static void rtt_row(const char *name, unsigned flags, int wait, long iters, const char *ref)
{
	struct chan_pp c = { .nchan = 2, .flags = flags, .wait = wait, .capacity = 64,
	                     .msg = RTT_MSG };
	chan_row(name, &c, iters, 'n', ref, rtt_ping, rtt_pong);
}

/* The spinning round trips, measured interleaved with each other and with
 * the references they must approach (reported again as "NAME_again"), so a
 * drift of the machine falls on all of them alike. */
enum { VY_PLAIN = 1u << 30, VY_CAS = 1u << 31 }; /* rows' flags: not channel flags */

static void spin_rtt_group(void)
{
	static const struct {
		const char *name, *ref;
		unsigned flags;
		uint32_t capacity;
		size_t msg;
	} rows[] = {
		{ "cacheline_rtt_again", NULL, 0, 0, 0 },
		{ "msg64_rtt_again", NULL, 0, 0, 0 },
		{ "ring_rtt_2slot_again", NULL, 0, 0, 0 },
		{ "ring_rtt_64slot_again", NULL, 0, 0, 0 },
		{ "ring_rtt_64slot_80b_again", NULL, 0, 0, 0 },
		{ "chan_rtt_spsc_spin", "msg64_rtt_again", SHMKIT_CHAN_SPSC, 64, RTT_MSG },
		{ "chan_rtt_spin", "chan_rtt_spsc_spin", 0, 64, RTT_MSG },
		{ "chan_rtt_spsc_32", "cacheline_rtt_again", SHMKIT_CHAN_SPSC, 64, 32 },
		{ "chan_rtt_spsc_2slot", "ring_rtt_2slot_again", SHMKIT_CHAN_SPSC, 2, RTT_MSG },
		{ "bus_rtt_spin", "chan_rtt_spsc_spin", 0, 0, RTT_MSG },
		{ "vyukov_rtt", "chan_rtt_spsc_spin", VY_PLAIN, 0, RTT_MSG },
		{ "vyukov_rtt_cas", "vyukov_rtt", VY_CAS, 0, RTT_MSG },
	};
	enum { N = SK_ARRAY_LEN(rows) };
	_Static_assert(N <= BENCH_MAX_INTERLEAVE, "one interleaved group");
	struct chan_pp c[N];
	struct bench_pair p[N];
	struct bench_stat st[N];
	int err[N], idx[N], k = 0;
	bool any = bench_want("chan_rtt_adaptive"); /* chan_rtt_spin is its reference */
	any = any || bench_want("chan_rtt_spsc_spin_ring") || bench_want("chan_rtt_spsc_32_ring") ||
	      bench_want("chan_rtt_spin_vyukov_cas");

	for (size_t i = 5; i < N; i++)
		any = any || bench_want(rows[i].name);
	if (!any)
		return;
	for (size_t i = 0; i < N; i++) {
		if (!rows[i].ref) { /* a reference, again */
			char ref[32];
			snprintf(ref, sizeof(ref), "%.*s", (int)(strlen(rows[i].name) - 6), rows[i].name);
			if (bench_ref_pair(ref, &p[k]))
				continue;
		} else if (rows[i].flags & (VY_PLAIN | VY_CAS)) { /* bench/mpmc.c */
			bench_vyukov_rtt_pair(&p[k], rows[i].flags & VY_CAS);
		} else if (!rows[i].capacity) { /* the bus (bench/bus.c) */
			bench_bus_spin_pair(&p[k]);
		} else {
			c[k] = (struct chan_pp){ .nchan = 2, .flags = rows[i].flags,
			                         .wait = SHMKIT_WAIT_SPIN, .capacity = rows[i].capacity,
			                         .msg = rows[i].msg };
			p[k] = (struct bench_pair){
				.iters = 10000, .arg = &c[k], .setup = chan_setup,
				.parent_run = rtt_ping, .child_run = rtt_pong, .teardown = chan_teardown,
			};
		}
		idx[k++] = (int)i;
	}
	bench_pair_interleaved(p, k, 4, st, err);
	for (int j = 0; j < k; j++)
		if (bench_check(rows[idx[j]].name, err[j]))
			bench_report_kind(rows[idx[j]].name, &st[j], 'n', rows[idx[j]].msg,
			                  rows[idx[j]].ref);
	/* The MPMC round trip once more against the Vyukov queue whose cells
	 * are published and freed by a CAS as the channel's slots are
	 * (chan_rtt_spin_vyukov_cas): what a queue with those two locked
	 * operations costs here, beside vyukov_rtt (stores) against SPSC. */
	for (int j = 0; j < k; j++)
		for (int m = 0; m < k; m++)
			if (!err[j] && !err[m] && !strcmp(rows[idx[j]].name, "chan_rtt_spin") &&
			    !strcmp(rows[idx[m]].name, "vyukov_rtt_cas"))
				bench_report_kind("chan_rtt_spin_vyukov_cas", &st[j], 'n', RTT_MSG,
				                  "vyukov_rtt_cas");
	/* The same measurements of the two SPSC rows of 64 slots, each next
	 * to the hand-written 64-slot ring whose slots span the same lines
	 * (one for 32 bytes, two for 64): what a ring of that footprint costs
	 * on this machine.  Named NAME_ring (a row name is printed once). */
	for (int j = 0; j < k; j++) {
		const char *name = rows[idx[j]].name;
		char rname[48];
		if (err[j] || (strcmp(name, "chan_rtt_spsc_spin") && strcmp(name, "chan_rtt_spsc_32")))
			continue;
		snprintf(rname, sizeof(rname), "%s_ring", name);
		bench_report_kind(rname, &st[j], 'n', rows[idx[j]].msg,
		                  rows[idx[j]].msg == RTT_MSG ? "ring_rtt_64slot_80b_again"
		                                              : "ring_rtt_64slot_again");
	}
}

static void stream_row(const char *name, unsigned flags, size_t msg, uint32_t capacity,
                       long iters, const char *ref, bool zero_copy)
{
	struct chan_pp c = { .nchan = 1, .flags = flags, .wait = SHMKIT_WAIT_SPIN,
	                     .capacity = capacity, .msg = msg };
	chan_row(name, &c, iters, msg >= 4096 ? 'g' : 'r', ref,
	         zero_copy ? zc_consume : stream_consume, zero_copy ? zc_produce : stream_produce);
}

static void chan_suite(void)
{
	spin_rtt_group();
	if (bench_want("chan_rtt_adaptive"))
		rtt_row("chan_rtt_adaptive", 0, SHMKIT_WAIT_ADAPTIVE, 2000, "chan_rtt_spin");
	if (bench_want("chan_rtt_adaptive_loaded")) {
		/* Both cores busy with other work (labelled _loaded): the
		 * default wait must not burn the time slice its peer needs. */
		if (bench_load_start(2))
			bench_skip("chan_rtt_adaptive_loaded", "cannot start the load generator");
		else
			rtt_row("chan_rtt_adaptive_loaded", 0, SHMKIT_WAIT_ADAPTIVE, 200, "pipe_rtt_loaded");
		bench_load_stop();
	}
	if (bench_want("chan_rtt_block"))
		rtt_row("chan_rtt_block", 0, SHMKIT_WAIT_BLOCK, 200, "futex_rtt");
	if (bench_want("chan_spsc_64"))
		stream_row("chan_spsc_64", SHMKIT_CHAN_SPSC, 64, 1024, 100000, "spsc_ring_64", false);
	if (bench_want("chan_mpmc_64"))
		stream_row("chan_mpmc_64", 0, 64, 1024, 100000, "spsc_ring_64", false);
	if (bench_want("chan_spsc_4k"))
		stream_row("chan_spsc_4k", SHMKIT_CHAN_SPSC, 4096, 64, 5000, "memcpy_4k", false);
	if (bench_want("chan_spsc_1m"))
		stream_row("chan_spsc_1m", SHMKIT_CHAN_SPSC, 1 << 20, 8, 16, "memcpy_1m", false);
	if (bench_want("chan_zc_64"))
		stream_row("chan_zc_64", SHMKIT_CHAN_SPSC, 64, 1024, 100000, "spsc_ring_64", true);
	if (bench_want("chan_zc_1m"))
		stream_row("chan_zc_1m", SHMKIT_CHAN_SPSC, 1 << 20, 8, 16, "memcpy_1m", true);
}

BENCH_SUITE("chan", chan_suite)
