/*
 * mpmc.c - many producers and many consumers: shmkit's MPMC channel
 * against Dmitry Vyukov's bounded MPMC queue, the textbook lock-free queue
 * (one CAS per operation on a shared index, then a release store of the
 * slot's sequence number), written here as the baseline.  Both are
 * measured interleaved, with the same geometry and the same polling loop:
 *
 *   vyukov_2p2c_64     two producer threads in one process (pinned to one
 *                      CPU) and two consumer threads in the other (pinned
 *                      to the other), 64-byte messages, 1024 slots; msg/s
 *                      received (the reference)
 *   chan_mpmc_2p2c_64  the same over an MPMC channel, each thread with
 *                      its own handle                   / vyukov_2p2c_64
 *
 * Each call is a try (the channel with timeout 0, the queue one attempt);
 * both wait with bench_poll (a relax hint, a yield every 1024 polls): the
 * waiting policy is the same, what differs is the queue.  On this 2-CPU
 * machine the two threads of a side share a CPU and take turns (at every
 * yield, or when the scheduler moves them), so the two consumers contend
 * for slots and indices whenever both are runnable.
 *
 * Every message carries its producer (0 or 1) and that producer's
 * sequence number; each consumer checks that what it gets from a producer
 * comes in increasing order (both queues promise per-producer FIFO), and
 * every byte of the 64 is written by the producer and read by the
 * consumer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "refs.h"

#define MP_MSG 64
#define MP_CAP 1024
#define MP_THREADS 2

/* ---- Vyukov's bounded MPMC queue ---------------------------------------- */

struct vy_cell {
	uint64_t seq;
	unsigned char data[MP_MSG];
} SK_ALIGNED_CL;

struct vy_queue {
	uint64_t enq SK_ALIGNED_CL;
	uint64_t deq SK_ALIGNED_CL;
	struct vy_cell cells[MP_CAP] SK_ALIGNED_CL;
};

static void vy_init(struct vy_queue *q, uint64_t cap)
{
	q->enq = q->deq = 0;
	for (uint64_t i = 0; i < cap; i++)
		q->cells[i].seq = i;
}

/* 1 enqueued, 0 full.  cap: the cells used (a power of 2 <= MP_CAP).
 * cas: publish by a CAS of the cell's seq from the value the claim saw
 * instead of a store, as shmkit's channel does (vy_rtt_pair). */
static int vy_push(struct vy_queue *q, uint64_t cap, bool cas, const unsigned char *msg)
{
	/* Relaxed: a hint; the cell's seq decides. */
	uint64_t pos = sk_load_relaxed(&q->enq);
	for (;;) {
		struct vy_cell *c = &q->cells[pos & (cap - 1)];
		/* Acquire: pairs with the consumer's release store of seq
		 * (vy_pop): its reads of the cell are done. */
		uint64_t seq = sk_load_acquire(&c->seq);
		int64_t dif = (int64_t)(seq - pos);
		if (dif == 0) {
			/* Relaxed: claims position pos among producers; the
			 * cell's contents are ordered by the seq store below. */
			if (sk_cas(&q->enq, &pos, pos + 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
				memcpy(c->data, msg, MP_MSG);
				/* Release: publishes data; pairs with vy_pop's
				 * acquire load of seq.  The CAS (seq_cst, as the
				 * channel's P7) cannot fail: we claimed pos. */
				if (cas)
					return sk_cas(&c->seq, &seq, pos + 1, __ATOMIC_SEQ_CST,
					              __ATOMIC_RELAXED) ? 1 : -EBADMSG;
				sk_store_release(&c->seq, pos + 1);
				return 1;
			}
		} else if (dif < 0) {
			return 0;
		} else {
			pos = sk_load_relaxed(&q->enq); /* relaxed: a hint, as above */
		}
	}
}

/* 1 dequeued into msg, 0 empty.  cap, cas: as vy_push (cas: the cell is
 * freed by a CAS, as the channel's take C3'). */
static int vy_pop(struct vy_queue *q, uint64_t cap, bool cas, unsigned char *msg)
{
	/* Relaxed: a hint; the cell's seq decides. */
	uint64_t pos = sk_load_relaxed(&q->deq);
	for (;;) {
		struct vy_cell *c = &q->cells[pos & (cap - 1)];
		/* Acquire: pairs with vy_push's release store of seq. */
		uint64_t seq = sk_load_acquire(&c->seq);
		int64_t dif = (int64_t)(seq - (pos + 1));
		if (dif == 0) {
			/* Relaxed: claims position pos among consumers. */
			if (sk_cas(&q->deq, &pos, pos + 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
				memcpy(msg, c->data, MP_MSG);
				/* Release: our read of data is done before a
				 * producer reuses the cell; pairs with vy_push's
				 * acquire load of seq.  The CAS (seq_cst, as the
				 * channel's C3') cannot fail: we claimed pos. */
				if (cas)
					return sk_cas(&c->seq, &seq, pos + cap, __ATOMIC_SEQ_CST,
					              __ATOMIC_RELAXED) ? 1 : -EBADMSG;
				sk_store_release(&c->seq, pos + cap);
				return 1;
			}
		} else if (dif < 0) {
			return 0;
		} else {
			pos = sk_load_relaxed(&q->deq); /* relaxed: a hint, as above */
		}
	}
}

/* ---- the pair ----------------------------------------------------------- */

struct mp_pp {
	bool chan;                          /* shmkit channel, else Vyukov */
	char name[80];                      /* the channel */
	struct vy_queue *q;                 /* shared (bench_shared_alloc) */
	shmkit_chan *h[MP_THREADS];         /* per process: one handle per thread */
};

struct mp_thread {
	struct mp_pp *pp;
	int id;
	long n;
	int err;
};

static int mp_put(struct mp_pp *pp, int id, const unsigned char *msg)
{
	if (!pp->chan)
		return vy_push(pp->q, MP_CAP, false, msg);
	int r = shmkit_chan_send(pp->h[id], msg, MP_MSG, 0);
	return r == -EAGAIN ? 0 : r < 0 ? r : 1;
}

static int mp_get(struct mp_pp *pp, int id, unsigned char *msg)
{
	if (!pp->chan)
		return vy_pop(pp->q, MP_CAP, false, msg);
	ssize_t r = shmkit_chan_recv(pp->h[id], msg, MP_MSG, 0);
	return r == -EAGAIN ? 0 : r == MP_MSG ? 1 : r < 0 ? (int)r : -EBADMSG;
}

static void *producer(void *arg)
{
	struct mp_thread *t = arg;
	unsigned char msg[MP_MSG];
	uint64_t seq0 = 0;

	/* A producer's sequence numbers continue from batch to batch: the
	 * child runs once for the whole pair. */
	for (long i = 0; i < t->n && !t->err; i++) {
		uint64_t seq = seq0++;
		for (int b = 0; b < MP_MSG; b++)
			msg[b] = (unsigned char)(seq + (uint64_t)b);
		msg[0] = (unsigned char)t->id;
		memcpy(msg + 8, &seq, sizeof(seq));
		unsigned spins = 0;
		int r;
		while (!(r = mp_put(t->pp, t->id, msg)))
			if (bench_poll(&spins)) {
				r = -ECANCELED;
				break;
			}
		if (r < 0)
			t->err = r;
	}
	return NULL;
}

static __thread uint64_t last_seen[MP_THREADS]; /* per consumer thread: next expected floor */

static void *consumer(void *arg)
{
	struct mp_thread *t = arg;
	unsigned char msg[MP_MSG];
	uint64_t sum = 0;

	for (long i = 0; i < t->n && !t->err; i++) {
		unsigned spins = 0;
		int r;
		while (!(r = mp_get(t->pp, t->id, msg)))
			if (bench_poll(&spins)) {
				r = -ECANCELED;
				break;
			}
		if (r < 0) {
			t->err = r;
			break;
		}
		uint64_t seq;
		unsigned p = msg[0];
		memcpy(&seq, msg + 8, sizeof(seq));
		for (int b = 16; b < MP_MSG; b++)
			sum += msg[b];
		if (p >= MP_THREADS || seq + 1 <= last_seen[p] ||
		    msg[MP_MSG - 1] != (unsigned char)(seq + MP_MSG - 1))
			t->err = -EBADMSG;
		last_seen[p] = seq + 1;
	}
	bench_sink(sum);
	return NULL;
}

/* Run fn in MP_THREADS threads, n messages split between them. */
static int run_threads(struct mp_pp *pp, long n, void *(*fn)(void *))
{
	pthread_t th[MP_THREADS];
	struct mp_thread t[MP_THREADS];
	int started = 0, err = 0;

	for (int i = 0; i < MP_THREADS; i++) {
		t[i] = (struct mp_thread){ .pp = pp, .id = i,
		                           .n = n / MP_THREADS + (i < n % MP_THREADS) };
		if (pthread_create(&th[i], NULL, fn, &t[i])) {
			err = -EAGAIN;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (!err)
			err = t[i].err;
	}
	return err;
}

static int mp_consume(void *arg, long n)
{
	return run_threads(arg, n, consumer);
}

static int mp_produce(void *arg, long n)
{
	return run_threads(arg, n, producer);
}

/* Each process opens one handle per thread (a handle serves one thread). */
static int mp_open(void *arg)
{
	struct mp_pp *pp = arg;
	if (!pp->chan)
		return 0;
	for (int i = 0; i < MP_THREADS; i++) {
		struct shmkit_chan_opts o = { .wait = SHMKIT_WAIT_SPIN };
		int r = shmkit_chan_open(&pp->h[i], pp->name, &o);
		if (r)
			return r;
	}
	return 0;
}

static int mp_setup(void *arg)
{
	struct mp_pp *pp = arg;
	memset(pp->h, 0, sizeof(pp->h));
	if (!pp->chan) {
		if (!(pp->q = bench_shared_alloc(sizeof(*pp->q))))
			return -ENOMEM;
		vy_init(pp->q, MP_CAP);
		return 0;
	}
	struct shmkit_chan_opts o = { .capacity = MP_CAP, .max_msg = MP_MSG, .flags = SHMKIT_EXCL };
	shmkit_chan *ch = NULL;
	bench_unique_name(pp->name, sizeof(pp->name), "mpmc");
	int r = shmkit_chan_create(&ch, pp->name, &o);
	if (r)
		return r;
	shmkit_chan_close(ch);
	if ((r = bench_cleanup_push(bench_unlink_shm, pp->name)))
		shmkit_seg_remove(pp->name);
	return r;
}

static void mp_teardown(void *arg)
{
	struct mp_pp *pp = arg;
	if (!pp->chan) {
		bench_shared_free(pp->q, sizeof(*pp->q));
		return;
	}
	for (int i = 0; i < MP_THREADS; i++)
		if (pp->h[i])
			shmkit_chan_close(pp->h[i]);
	shmkit_seg_remove(pp->name);
	bench_cleanup_pop(false);
}

/* ---- round trips over two Vyukov queues (chan.c's interleaved group) ---- */

#define VY_RTT_CAP 64 /* as the channel rows of the group */

struct vy_rtt {
	struct vy_queue *q;          /* two queues, shared (bench_shared_alloc) */
	bool cas;
	uint64_t seq;                /* per process: the next message's number */
	unsigned char buf[MP_MSG];
};

static int vy_rtt_setup(void *arg)
{
	struct vy_rtt *v = arg;
	if (!(v->q = bench_shared_alloc(2 * sizeof(*v->q))))
		return -ENOMEM;
	vy_init(&v->q[0], VY_RTT_CAP);
	vy_init(&v->q[1], VY_RTT_CAP);
	v->seq = 0;
	return 0;
}

static void vy_rtt_teardown(void *arg)
{
	struct vy_rtt *v = arg;
	bench_shared_free(v->q, 2 * sizeof(*v->q));
}

/* Put the message numbered v->seq (every byte written) into q. */
static int vy_rtt_put(struct vy_rtt *v, struct vy_queue *q)
{
	unsigned spins = 0;
	int r;
	memset(v->buf, (int)(v->seq & 0xff), MP_MSG);
	memcpy(v->buf, &v->seq, sizeof(v->seq));
	while (!(r = vy_push(q, VY_RTT_CAP, v->cas, v->buf)))
		if (bench_poll(&spins))
			return -ECANCELED;
	return r < 0 ? r : 0;
}

/* Take the message numbered v->seq from q (every byte read); the reply
 * carries the request's number. */
static int vy_rtt_get(struct vy_rtt *v, struct vy_queue *q)
{
	unsigned spins = 0;
	uint64_t got, sum = 0, word;
	int r;
	while (!(r = vy_pop(q, VY_RTT_CAP, v->cas, v->buf)))
		if (bench_poll(&spins))
			return -ECANCELED;
	if (r < 0)
		return r;
	memcpy(&got, v->buf, sizeof(got));
	for (size_t off = sizeof(got); off < MP_MSG; off += sizeof(word)) {
		memcpy(&word, v->buf + off, sizeof(word));
		sum += word;
	}
	bench_sink(sum);
	if (got != v->seq || v->buf[MP_MSG - 1] != (unsigned char)(v->seq & 0xff))
		return -EBADMSG;
	return 0;
}

static int vy_rtt_ping(void *arg, long n)
{
	struct vy_rtt *v = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++, v->seq++)
		if (!(e = vy_rtt_put(v, &v->q[0])))
			e = vy_rtt_get(v, &v->q[1]);
	return e;
}

static int vy_rtt_pong(void *arg, long n)
{
	struct vy_rtt *v = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++, v->seq++)
		if (!(e = vy_rtt_get(v, &v->q[0])))
			e = vy_rtt_put(v, &v->q[1]);
	return e;
}

int bench_vyukov_rtt_pair(struct bench_pair *p, bool cas)
{
	static struct vy_rtt v[2];
	struct vy_rtt *vv = &v[cas];

	*vv = (struct vy_rtt){ .cas = cas };
	*p = (struct bench_pair){
		.iters = 10000, .arg = vv, .setup = vy_rtt_setup,
		.parent_run = vy_rtt_ping, .child_run = vy_rtt_pong, .teardown = vy_rtt_teardown,
	};
	return 0;
}

static void mpmc_suite(void)
{
	static const char *const names[2] = { "vyukov_2p2c_64", "chan_mpmc_2p2c_64" };
	if (!bench_want(names[0]) && !bench_want(names[1]))
		return;
	struct mp_pp pp[2] = { { .chan = false }, { .chan = true } };
	struct bench_pair p[2];
	struct bench_stat st[2];
	int err[2];

	for (int i = 0; i < 2; i++)
		p[i] = (struct bench_pair){
			.iters = 100000, .arg = &pp[i], .setup = mp_setup,
			.child_init = mp_open, .parent_init = mp_open,
			.parent_run = mp_consume, .child_run = mp_produce, .teardown = mp_teardown,
		};
	bench_pair_interleaved(p, 2, 4, st, err);
	for (int i = 0; i < 2; i++)
		if (bench_check(names[i], err[i]))
			bench_report_kind(names[i], &st[i], 'r', MP_MSG, i ? names[0] : NULL);
}

BENCH_SUITE("mpmc", mpmc_suite)
