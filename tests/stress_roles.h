/*
 * stress_roles.h - the processes of stress_kill.c: each is exec'd afresh
 * (so SHMKIT_CRASH_AT, read once per process by crash.c, applies to it
 * alone) as `stress_kill --child FD SIZE ROLE`, maps the board from the
 * inherited memfd FD and runs the role the driver wrote in roles[ROLE].
 *
 * Every blocking call is bounded: producers by the board's hang_ns (a
 * call that runs out is a HANG finding: someone blocked them that long),
 * receivers by short slices between which they look at the stop flags.
 * Findings go to stderr and to the board's counters; the process then
 * exits non-zero (a torn message is counted and the process goes on).
 *
 * Included once, by stress_kill.c.
 */
#ifndef SK_STRESS_ROLES_H
#define SK_STRESS_ROLES_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "shmkit.h"
#include "stress_kill.h"

#define RX_SLICE_NS 20000000LL /* receivers: 20 ms waits between stop checks */

static const char *const kind_names[] = {
	[K_PRODUCER] = "producer", [K_CONSUMER] = "consumer", [K_PUBLISHER] = "publisher",
	[K_SUBSCRIBER] = "subscriber", [K_WRITER] = "writer", [K_FOLLOWER] = "follower",
};

static const char *const finding_names[] = {
	[F_TORN] = "TORN", [F_HANG] = "HANG", [F_ORDER] = "ORDER", [F_ERROR] = "ERROR",
};

struct child {
	struct board *b;
	struct role *ro;
	unsigned idx;
	uint64_t rng;
};

__attribute__((format(printf, 3, 4)))
static int finding(struct child *c, enum sk_finding f, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sk_fetch_add(&c->b->findings[f], 1, __ATOMIC_RELAXED);
	fprintf(stderr, "stress_kill: %s in %s (role %u, pid %d, stream %u): %s\n",
	        finding_names[f], kind_names[c->ro->kind], c->idx, (int)getpid(), c->ro->stream, msg);
	return 10 + (int)f;
}

/* A failed call: a HANG finding if it ran out of time, else an ERROR. */
static int call_failed(struct child *c, const char *call, long err)
{
	enum sk_finding f = err == -ETIMEDOUT ? F_HANG : F_ERROR;
	return finding(c, f, "%s: %s (%s)", call, shmkit_strerror((int)err), shmkit_errdetail());
}

static bool stopping(const uint32_t *word)
{
	return sk_load_acquire(word) != 0; /* pairs with the driver's release store */
}

/* Producers that ran out of sequence numbers idle until told to stop. */
static void idle_until(const uint32_t *word)
{
	while (!stopping(word))
		shmkit_futex_wait(word, 0, 100000000LL);
}

static void mark(struct child *c, uint64_t seq, enum sk_state st)
{
	/* Relaxed: read by the driver only after this process died or
	 * exited (waitpid orders it); the store is made before the call it
	 * describes, which is an opaque function call. */
	sk_store_relaxed(&c->b->state[c->ro->stream][seq], (uint8_t)st);
}

static void running(struct child *c)
{
	sk_store_release(&c->ro->running, 1); /* pairs with the driver's acquire poll */
}

static bool pick_zc(struct child *c)
{
	return c->ro->mode == M_ZC || (c->ro->mode == M_MIX && (sk_rand(&c->rng) & 1));
}

/* ---- channel producer ----------------------------------------------------- */

/* One message through reserve + commit (or, now and then, reserve + abort,
 * which must deliver nothing).  0, 1 if aborted, or a negative error. */
static int chan_put_zc(struct child *c, shmkit_chan *ch, uint64_t seq)
{
	void *w;
	int e = shmkit_chan_reserve(ch, &w, c->b->hang_ns);

	if (e)
		return e;
	size_t len = smsg_fill(w, c->ro->stream, seq);
	mark(c, seq, ST_TRYING);
	if (sk_rand_below(&c->rng, 16) == 0) {
		if ((e = shmkit_chan_abort(ch)))
			return e;
		mark(c, seq, ST_ABORTED);
		return 1;
	}
	return shmkit_chan_commit(ch, len);
}

/* One message of the stream in a copy or zero-copy call: 0 committed,
 * 1 not (aborted), < 0 an error. */
static int chan_put(struct child *c, void *h, uint64_t seq)
{
	uint8_t m[SK_MSG_MAX];

	if (pick_zc(c))
		return chan_put_zc(c, h, seq);
	size_t len = smsg_fill(m, c->ro->stream, seq);
	mark(c, seq, ST_TRYING);
	return shmkit_chan_send(h, m, len, c->b->hang_ns);
}

/* The producer's loop, any service: seqs from start until told to stop,
 * each recorded TRYING before its call and COMMITTED after. */
static int produce(struct child *c, void *h, int (*put)(struct child *, void *, uint64_t),
                   const char *what)
{
	running(c);
	for (uint64_t seq = c->ro->start; seq < SK_MAXSEQ && !stopping(&c->b->stop_prod); seq++) {
		int e = put(c, h, seq);
		if (e < 0)
			return call_failed(c, what, e);
		if (e == 0)
			mark(c, seq, ST_COMMITTED);
		c->ro->ops++;
	}
	idle_until(&c->b->stop_prod);
	return 0;
}

static int run_producer(struct child *c)
{
	struct shmkit_chan_opts o = { .wait = c->ro->wait };
	shmkit_chan *ch;
	int e = shmkit_chan_open(&ch, c->b->name, &o);

	if (e)
		return call_failed(c, "chan_open", e);
	e = produce(c, ch, chan_put, "chan send/commit");
	shmkit_chan_close(ch);
	return e;
}

/* ---- receivers: the log ---------------------------------------------------- */

struct rx {
	struct slog *log;
	uint64_t n;
	uint64_t last[SK_STREAMS]; /* last seq per stream, +1 (0: none yet) */
	uint64_t lost;             /* bus: lost not yet attached to a message */
};

static void rx_invalidate(struct child *c)
{
	memset(c->ro->inflight, 0xff, SK_MSG_HDR);
}

/* Check the message in inflight (n bytes) and log it.  A torn message
 * or one out of order is a finding, counted and not logged: the process
 * goes on, so that the rest of its log is still judged. */
static void rx_accept(struct child *c, struct rx *rx, size_t n)
{
	struct smsg_hdr h;
	const char *bad = smsg_check(c->ro->inflight, n, &h);

	if (bad || h.stream >= SK_STREAMS || h.seq >= SK_MAXSEQ + 1) {
		finding(c, F_TORN, "message of %zu bytes (stream %u seq %llu): %s", n, h.stream,
		        (unsigned long long)h.seq, bad ? bad : "stream or seq out of range");
		return;
	}
	if (rx->last[h.stream] > h.seq) {
		finding(c, F_ORDER, "stream %u: seq %llu after seq %llu", h.stream,
		        (unsigned long long)h.seq, (unsigned long long)rx->last[h.stream] - 1);
		return;
	}
	rx->last[h.stream] = h.seq + 1;
	rx->log[rx->n] = (struct slog){ .stream = h.stream, .lost = (uint32_t)rx->lost, .seq = h.seq };
	rx->lost = 0;
	/* Release: the entry is complete before the driver's acquire load
	 * of nlog lets it read the entry. */
	sk_store_release(&c->ro->nlog, ++rx->n);
	c->ro->ops++;
}

static void rx_init(struct child *c, struct rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	rx->log = c->b->logs[c->ro->log];
}

/* ---- channel consumer ------------------------------------------------------ */

static int run_consumer(struct child *c)
{
	struct shmkit_chan_opts o = { .wait = c->ro->wait };
	struct rx rx;
	shmkit_chan *ch;
	int e = shmkit_chan_open(&ch, c->b->name, &o);

	if (e)
		return call_failed(c, "chan_open", e);
	rx_init(c, &rx);
	running(c);
	for (;;) {
		const void *p = NULL;
		ssize_t n;
		rx_invalidate(c);
		if (pick_zc(c)) {
			n = shmkit_chan_peek(ch, &p, RX_SLICE_NS);
			if (n >= 0)
				memcpy(c->ro->inflight, p, (size_t)n > SK_MSG_MAX ? SK_MSG_MAX : (size_t)n);
		} else {
			n = shmkit_chan_recv(ch, c->ro->inflight, SK_MSG_MAX, RX_SLICE_NS);
		}
		if (n == -ETIMEDOUT || n == -EAGAIN) {
			if (stopping(&c->b->stop_cons))
				break;
			continue;
		}
		if (n < 0)
			return call_failed(c, p ? "chan_peek" : "chan_recv", n);
		rx_accept(c, &rx, (size_t)n);
		if (p && (e = shmkit_chan_release(ch)))
			return call_failed(c, "chan_release", e);
	}
	shmkit_chan_close(ch);
	return 0;
}

/* ---- bus publisher ------------------------------------------------------------ */

/* Hold a loan for up to 300 us now and then (overwrite scenario), so a
 * publisher is killed holding one and others lap it. */
static void hold_loan(struct child *c)
{
	if (!c->b->hold_loans || sk_rand_below(&c->rng, 4))
		return;
	int64_t until = sk_now_ns() + (int64_t)sk_rand_below(&c->rng, 300000);
	while (sk_now_ns() < until)
		sk_cpu_relax();
}

/* One message through a loan: 0 published, 1 aborted or abandoned by
 * readers (-ESTALE, documented for a holder that stalled), < 0 error. */
static int bus_put_loan(struct child *c, shmkit_bus *bus, uint64_t seq)
{
	void *w;
	int e = shmkit_bus_loan(bus, &w, c->b->hang_ns);

	if (e)
		return e;
	size_t len = smsg_fill(w, c->ro->stream, seq);
	mark(c, seq, ST_TRYING);
	hold_loan(c);
	if (sk_rand_below(&c->rng, 12) == 0) {
		if ((e = shmkit_bus_abort_loan(bus)))
			return e;
		mark(c, seq, ST_ABORTED);
		return 1;
	}
	e = shmkit_bus_publish_loan(bus, len);
	if (e == -ESTALE) {
		mark(c, seq, ST_ABORTED);
		c->ro->stale++;
		return 1;
	}
	return e;
}

static int bus_put(struct child *c, void *h, uint64_t seq)
{
	uint8_t m[SK_MSG_MAX];

	if (pick_zc(c))
		return bus_put_loan(c, h, seq);
	size_t len = smsg_fill(m, c->ro->stream, seq);
	mark(c, seq, ST_TRYING);
	return shmkit_bus_publish(h, m, len, c->b->hang_ns);
}

static int run_publisher(struct child *c)
{
	struct shmkit_bus_opts o = { .wait = c->ro->wait };
	shmkit_bus *bus;
	int e = shmkit_bus_open(&bus, c->b->name, &o);

	if (e)
		return call_failed(c, "bus_open", e);
	e = produce(c, bus, bus_put, "bus publish/loan");
	shmkit_bus_close(bus);
	return e;
}

/* ---- bus subscriber --------------------------------------------------------- */

struct own_entry {
	pid_t pid;
	uint64_t lost;
	bool found;
};

static int find_own(const struct shmkit_bus_peer *p, void *arg)
{
	struct own_entry *o = arg;

	if (!p->subscriber || p->pid != o->pid)
		return 0;
	o->lost = p->lost;
	o->found = true;
	return 1;
}

/* Slow subscribers (overwrite scenario) nap now and then, to be lapped. */
static void nap(struct child *c)
{
	if (c->b->slow && sk_rand_below(&c->rng, 64) == 0)
		usleep((useconds_t)sk_rand_below(&c->rng, 500));
}

/* One message: copied into inflight, or peeked and copied there.  The
 * length, 0 for a peeked message overwritten while read (discarded;
 * the library counts it lost), or a negative error. */
static ssize_t sub_take(struct child *c, shmkit_sub *sub, struct rx *rx)
{
	uint64_t lost = 0;
	const void *p;
	ssize_t n;

	rx_invalidate(c);
	if (!pick_zc(c)) {
		n = shmkit_sub_recv(sub, c->ro->inflight, SK_MSG_MAX, &lost, RX_SLICE_NS);
		rx->lost += n >= 0 ? lost : 0;
		return n;
	}
	n = shmkit_sub_peek(sub, &p, &lost, RX_SLICE_NS);
	if (n < 0)
		return n;
	rx->lost += lost;
	memcpy(c->ro->inflight, p, (size_t)n > SK_MSG_MAX ? SK_MSG_MAX : (size_t)n);
	int e = shmkit_sub_release(sub);
	if (e == -ESTALE) {
		c->ro->stale++;
		return 0;
	}
	return e ? e : n;
}

static int run_subscriber(struct child *c)
{
	struct shmkit_bus_opts o = { .wait = c->ro->wait, .from = SHMKIT_FROM_OLDEST };
	struct own_entry own = { .pid = getpid() };
	struct rx rx;
	shmkit_bus *bus;
	shmkit_sub *sub;
	int e = shmkit_bus_open(&bus, c->b->name, &o);

	if (e)
		return call_failed(c, "bus_open", e);
	if ((e = shmkit_bus_subscribe(&sub, bus, &o)))
		return call_failed(c, "bus_subscribe", e);
	rx_init(c, &rx);
	running(c);
	for (;;) {
		ssize_t n = sub_take(c, sub, &rx);
		if (n == -ETIMEDOUT || n == -EAGAIN) {
			if (stopping(&c->b->stop_cons))
				break;
			continue;
		}
		if (n < 0)
			return call_failed(c, "sub recv/peek/release", n);
		if (n > 0)
			rx_accept(c, &rx, (size_t)n);
		nap(c);
	}
	shmkit_bus_peers(bus, find_own, &own);
	if (!own.found)
		return finding(c, F_ERROR, "own subscriber entry not found in bus_peers");
	c->ro->lost_total = own.lost;
	sk_store_release(&c->ro->finished, 1); /* pairs with the driver's acquire */
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	return 0;
}

/* ---- journal writer and follower ------------------------------------------- */

static int run_writer(struct child *c)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE,
	                                 .durability = (int)c->b->durability,
	                                 .group_records = c->b->group_records,
	                                 .group_ms = c->b->group_ms };
	struct shmkit_journal_stat st;
	uint8_t m[SK_MSG_MAX];
	shmkit_journal *j;
	int e = shmkit_journal_open(&j, c->b->name, &o);

	if (e)
		return call_failed(c, "journal_open (writer)", e);
	if ((e = shmkit_journal_stat(j, &st)))
		return call_failed(c, "journal_stat", e);
	running(c);
	for (uint64_t seq = st.last_seq + 1; seq <= SK_MAXSEQ && !stopping(&c->b->stop_prod); seq++) {
		uint64_t got = 0;
		size_t len = smsg_fill(m, 0, seq);
		mark(c, seq, ST_TRYING);
		if ((e = shmkit_journal_append(j, m, len, &got)))
			return call_failed(c, "journal_append", e);
		if (got != seq)
			return finding(c, F_ORDER, "append returned seq %llu, the journal said %llu next",
			               (unsigned long long)got, (unsigned long long)seq);
		mark(c, seq, ST_COMMITTED);
		c->ro->ops++;
	}
	idle_until(&c->b->stop_prod);
	if ((e = shmkit_journal_close(j)))
		return call_failed(c, "journal_close", e);
	return 0;
}

/* Check one record the follower read: the next seq, its own payload, a
 * stamp that never goes back.  0, or a finding's exit code. */
static int follow_check(struct child *c, const struct shmkit_record *r, uint64_t want, int64_t *t)
{
	struct smsg_hdr h;
	const char *bad = smsg_check(r->data, r->len, &h);

	if (r->seq != want)
		return finding(c, F_ORDER, "record seq %llu where %llu was next",
		               (unsigned long long)r->seq, (unsigned long long)want);
	if (bad || h.stream != 0 || h.seq != r->seq)
		return finding(c, F_TORN, "record %llu (%u bytes): %s", (unsigned long long)r->seq,
		               r->len, bad ? bad : "payload of another seq");
	if (r->time_ns < *t)
		return finding(c, F_ORDER, "record %llu stamped before its predecessor",
		               (unsigned long long)r->seq);
	*t = r->time_ns;
	return 0;
}

static int run_follower(struct child *c)
{
	struct shmkit_record rec;
	shmkit_journal *j;
	int64_t t = INT64_MIN;
	uint64_t want = 1;
	int e = shmkit_journal_open(&j, c->b->name, NULL);

	if (e)
		return call_failed(c, "journal_open (reader)", e);
	running(c);
	for (;;) {
		int r = shmkit_journal_next(j, &rec, RX_SLICE_NS);
		if (r == 0 || r == -ETIMEDOUT) {
			if (stopping(&c->b->stop_cons))
				break;
			continue;
		}
		if (r < 0)
			return r == -EBADMSG ? finding(c, F_TORN, "journal_next at seq %llu: %s (%s)",
			                               (unsigned long long)want, shmkit_strerror(r),
			                               shmkit_errdetail())
			                     : call_failed(c, "journal_next", r);
		if ((e = follow_check(c, &rec, want, &t)))
			return e;
		/* Release: read by the driver's drain poll (acquire). */
		sk_store_release(&c->b->follow_hi, rec.seq);
		c->ro->ops++;
		want++;
	}
	shmkit_journal_close(j);
	return 0;
}

/* ---- entry ---------------------------------------------------------------------- */

/* stress_kill --child FD SIZE ROLE */
static int child_main(char **argv)
{
	int fd = atoi(argv[2]);
	size_t size = strtoull(argv[3], NULL, 10);
	unsigned idx = (unsigned)atoi(argv[4]);
	struct board *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (b == MAP_FAILED || size != sizeof(*b) || idx >= SK_ROLES)
		return 2;
	close(fd);
	struct child c = { .b = b, .ro = &b->roles[idx], .idx = idx, .rng = b->roles[idx].seed };
	switch (c.ro->kind) {
	case K_PRODUCER: return run_producer(&c);
	case K_CONSUMER: return run_consumer(&c);
	case K_PUBLISHER: return run_publisher(&c);
	case K_SUBSCRIBER: return run_subscriber(&c);
	case K_WRITER: return run_writer(&c);
	case K_FOLLOWER: return run_follower(&c);
	}
	return 2;
}

#endif /* SK_STRESS_ROLES_H */
