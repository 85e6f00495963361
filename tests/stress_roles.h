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
	[K_SERVER] = "server", [K_CLIENT] = "client",
};

static const char *const finding_names[] = {
	[F_TORN] = "TORN", [F_HANG] = "HANG", [F_ORDER] = "ORDER", [F_ERROR] = "ERROR",
	[F_WRONG] = "WRONG ANSWER",
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

/* rpc: the call was given up (cancelled, or the library cancelled it at
 * its deadline); release: pairs with the acquire load of a server about
 * to answer it (srv_answer), which must then be told -ECANCELED. */
static void mark_given_up(struct child *c, uint64_t seq, enum sk_state st)
{
	sk_store_release(&c->b->state[c->ro->stream][seq], (uint8_t)st);
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

/* A receiver's loop: rounds until one finds nothing (-ETIMEDOUT, -EAGAIN)
 * after the driver said stop.  0, or a finding's exit code (a round's
 * other error is a finding naming `what`). */
static int rx_run(struct child *c, void *h, int (*round)(struct child *, void *, struct rx *),
                  const char *what)
{
	struct rx rx;

	rx_init(c, &rx);
	running(c);
	for (;;) {
		int e = round(c, h, &rx);
		if (e == -ETIMEDOUT || e == -EAGAIN) {
			if (stopping(&c->b->stop_cons))
				return 0;
			continue;
		}
		if (e)
			return e < 0 ? call_failed(c, what, e) : e;
	}
}

/* ---- channel consumer ------------------------------------------------------ */

/* One message: received into inflight, or peeked, copied there and
 * released. */
static int cons_round(struct child *c, void *ch, struct rx *rx)
{
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
	if (n < 0)
		return (int)n;
	rx_accept(c, rx, (size_t)n);
	return p ? shmkit_chan_release(ch) : 0;
}

static int run_consumer(struct child *c)
{
	struct shmkit_chan_opts o = { .wait = c->ro->wait };
	shmkit_chan *ch;
	int e = shmkit_chan_open(&ch, c->b->name, &o);

	if (e)
		return call_failed(c, "chan_open", e);
	e = rx_run(c, ch, cons_round, "chan recv/peek/release");
	shmkit_chan_close(ch);
	return e;
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

static int sub_round(struct child *c, void *sub, struct rx *rx)
{
	ssize_t n = sub_take(c, sub, rx);

	if (n < 0)
		return (int)n;
	if (n > 0)
		rx_accept(c, rx, (size_t)n);
	nap(c);
	return 0;
}

static int run_subscriber(struct child *c)
{
	struct shmkit_bus_opts o = { .wait = c->ro->wait, .from = SHMKIT_FROM_OLDEST };
	struct own_entry own = { .pid = getpid() };
	shmkit_bus *bus;
	shmkit_sub *sub;
	int e = shmkit_bus_open(&bus, c->b->name, &o);

	if (e)
		return call_failed(c, "bus_open", e);
	if ((e = shmkit_bus_subscribe(&sub, bus, &o)))
		return call_failed(c, "bus_subscribe", e);
	if ((e = rx_run(c, sub, sub_round, "sub recv/peek/release")))
		return e;
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
	struct shmkit_journal_stats st;
	uint8_t m[SK_MSG_MAX];
	shmkit_journal *j;
	int e = shmkit_journal_open(&j, c->b->name, &o);

	if (e)
		return call_failed(c, "journal_open (writer)", e);
	if ((e = shmkit_journal_stats(j, &st)))
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
		if (r == -EAGAIN || r == -ETIMEDOUT) {
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

/* ---- rpc client --------------------------------------------------------------- */

#define RPC_CALL_NS 2000000000LL /* a call's deadline, mostly: met unless servers are gone */
#define BUSY_NAP_US 200

/* One call of a client: request (stream, seq), the message smsg_fill
 * makes; its answer must be "re:" + that message. */
struct call {
	uint64_t seq, id;
	int64_t sent, tmo;
	unsigned flags;
};

/* A deadline: mostly RPC_CALL_NS; one in 8 is 1..20 ms, often too short,
 * so that calls are given up (cancelled, abandoned) while servers hold
 * them and their answers must be dropped. */
static int64_t rpc_tmo(struct child *c)
{
	return sk_rand_below(&c->rng, 8) ? RPC_CALL_NS
	                                 : (int64_t)(1 + sk_rand_below(&c->rng, 20)) * 1000000LL;
}

/* What is wrong with n bytes at p as the answer to (stream, seq), or 0. */
static const char *rpc_answer_bad(uint32_t stream, uint64_t seq, const uint8_t *p, ssize_t n,
                                  char *why, size_t cap)
{
	uint8_t want[SK_MSG_MAX];
	size_t len = smsg_fill(want, stream, seq);
	struct smsg_hdr h;

	if ((size_t)n == len + 3 && !memcmp(p, "re:", 3) && !memcmp(p + 3, want, len))
		return NULL;
	if (n >= 3 && !memcmp(p, "re:", 3) && !smsg_check(p + 3, (size_t)n - 3, &h))
		snprintf(why, cap, "the answer to stream %u seq %llu", h.stream, (unsigned long long)h.seq);
	else
		snprintf(why, cap, "%zd bytes that answer no request", n);
	return why;
}

/* The end of call k: n (the answer's length, at p) or an error.  Records
 * the outcome on the board; 0, or a finding's exit code. */
static int rpc_outcome(struct child *c, const struct call *k, ssize_t n, const void *p)
{
	int64_t took = sk_now_ns() - k->sent;
	char why[96];

	if (took > k->tmo + c->b->hang_ns)
		return finding(c, F_HANG, "call seq %llu ended %lld ms after it was sent, deadline %lld ms",
		               (unsigned long long)k->seq, (long long)(took / 1000000),
		               (long long)(k->tmo / 1000000));
	if (n >= 0) {
		if (rpc_answer_bad(c->ro->stream, k->seq, p, n, why, sizeof(why)))
			return finding(c, F_WRONG, "call seq %llu received %s", (unsigned long long)k->seq, why);
		mark(c, k->seq, ST_COMMITTED);
		c->ro->ops++;
		return 0;
	}
	if (n == -ECONNRESET && (k->flags & SHMKIT_RPC_IDEMPOTENT))
		return finding(c, F_ERROR, "idempotent call seq %llu: -ECONNRESET (%s)",
		               (unsigned long long)k->seq, shmkit_errdetail());
	if (n == -ECONNRESET || n == -ETIMEDOUT) {
		mark_given_up(c, k->seq, n == -ECONNRESET ? ST_RESET : ST_TIMEDOUT);
		return 0;
	}
	return call_failed(c, "rpc call/wait", n);
}

/* Retry a call that found every slot busy (-EBUSY: slots still held by
 * servers answering given-up calls), bounded by hang_ns. */
static bool rpc_busy(struct child *c, int e, int64_t *since)
{
	if (e != -EBUSY)
		return false;
	if (!*since)
		*since = sk_now_ns();
	else if (sk_now_ns() - *since > c->b->hang_ns)
		return false;
	c->ro->busy++;
	usleep(BUSY_NAP_US);
	return true;
}

/* A synchronous call with copies. */
static int rpc_sync(struct child *c, shmkit_rpc *r, uint64_t seq)
{
	uint8_t req[SK_MSG_MAX], resp[SK_MSG_MAX + 3];
	struct call k = { .seq = seq, .tmo = rpc_tmo(c) };
	size_t len = smsg_fill(req, c->ro->stream, seq);
	int64_t busy = 0;
	ssize_t n;

	mark(c, seq, ST_TRYING);
	do {
		k.sent = sk_now_ns();
		n = shmkit_rpc_call(r, req, len, resp, sizeof(resp), k.tmo);
	} while (rpc_busy(c, (int)n, &busy));
	return rpc_outcome(c, &k, n, resp);
}

/* Send call k, a copy or through a request loan (one in 16 loans is
 * aborted: that request must never be answered).  0 sent, 1 not sent
 * (aborted, or the queue stayed full: recorded), or a finding. */
static int rpc_send_one(struct child *c, shmkit_rpc *r, struct call *k)
{
	uint8_t req[SK_MSG_MAX];
	int64_t busy = 0;
	void *buf;
	int e;

	k->sent = sk_now_ns();
	if (!pick_zc(c)) {
		size_t len = smsg_fill(req, c->ro->stream, k->seq);
		mark(c, k->seq, ST_TRYING);
		while (rpc_busy(c, e = shmkit_rpc_send(r, req, len, k->flags, k->tmo, &k->id), &busy))
			k->sent = sk_now_ns();
	} else {
		while (rpc_busy(c, e = shmkit_rpc_loan(r, &buf), &busy))
			;
		if (e)
			return call_failed(c, "rpc_loan", e);
		size_t len = smsg_fill(buf, c->ro->stream, k->seq);
		mark(c, k->seq, ST_TRYING);
		if (sk_rand_below(&c->rng, 16) == 0) {
			if ((e = shmkit_rpc_abort_loan(r)))
				return call_failed(c, "rpc_abort_loan", e);
			mark(c, k->seq, ST_ABORTED);
			return 1;
		}
		k->sent = sk_now_ns();
		e = shmkit_rpc_send_loan(r, len, k->flags, k->tmo, &k->id);
	}
	if (e == -ETIMEDOUT || e == -EAGAIN) { /* the queue stayed full */
		mark_given_up(c, k->seq, ST_TIMEDOUT);
		return 1;
	}
	return e ? call_failed(c, "rpc send/send_loan", e) : 0;
}

/* Up to depth calls sent at once (copies and loans, some idempotent, one
 * now and then cancelled), then waited for in any order; answers read in
 * place.  *seq moves past the calls made. */
static int rpc_batch(struct child *c, shmkit_rpc *r, uint64_t *seq)
{
	struct call k[64];
	unsigned want = 1 + (unsigned)sk_rand_below(&c->rng, c->b->rpc_depth), out = 0;
	int64_t last = 0;
	int e;

	for (unsigned i = 0; i < want && *seq < SK_MAXSEQ; i++) {
		k[out] = (struct call){ .seq = (*seq)++, .tmo = rpc_tmo(c),
		                        .flags = sk_rand_below(&c->rng, 2) ? SHMKIT_RPC_IDEMPOTENT : 0 };
		if ((e = rpc_send_one(c, r, &k[out])) > 1)
			return e;
		if (e == 0 && k[out].sent + k[out].tmo > last)
			last = k[out].sent + k[out].tmo;
		out += e == 0;
	}
	if (out && sk_rand_below(&c->rng, 8) == 0) {
		unsigned j = (unsigned)sk_rand_below(&c->rng, out);
		if ((e = shmkit_rpc_cancel(r, k[j].id)))
			return call_failed(c, "rpc_cancel", e);
		mark_given_up(c, k[j].seq, ST_CANCELLED);
		k[j] = k[--out];
	}
	while (out) {
		uint64_t id = 0;
		const void *p = NULL;
		int64_t left = last - sk_now_ns();
		ssize_t n = shmkit_rpc_wait(r, &id, &p, (left > 0 ? left : 0) + c->b->hang_ns);
		unsigned j = 0;
		while (j < out && k[j].id != id)
			j++;
		if (j == out)
			return n < 0 && !id ? finding(c, F_HANG, "wait for any: %s (%s) with %u calls out",
			                               shmkit_strerror((int)n), shmkit_errdetail(), out)
			                    : finding(c, F_WRONG, "wait for any returned id %llu, no call "
			                              "of ours (%zd)", (unsigned long long)id, n);
		if ((e = rpc_outcome(c, &k[j], n, p)))
			return e;
		if (n >= 0 && (e = shmkit_rpc_release(r, id)))
			return call_failed(c, "rpc_release", e);
		k[j] = k[--out];
	}
	return 0;
}

/* The client's loop: a third sync calls, the rest batches, from the
 * role's first seq until told to stop. */
static int client_loop(struct child *c, shmkit_rpc *r)
{
	int e = 0;

	running(c);
	for (uint64_t seq = c->ro->start; seq < SK_MAXSEQ && !stopping(&c->b->stop_prod) && !e;)
		e = sk_rand_below(&c->rng, 3) == 0 ? rpc_sync(c, r, seq++) : rpc_batch(c, r, &seq);
	if (!e)
		idle_until(&c->b->stop_prod);
	return e;
}

/* ---- rpc server ------------------------------------------------------------------- */

/* Answer one request: "re:" + the request, copied or written in the
 * response loan; logged when respond returned 0, counted in `stale` when
 * the caller had given up (-ECANCELED).  A call its client had given up
 * before we looked (its mark, acquired) must be -ECANCELED: an answer
 * accepted for it is a finding.  0, or a finding. */
static int srv_answer(struct child *c, shmkit_rpc *r, struct rx *rx,
                      const struct shmkit_rpc_req *q, const struct smsg_hdr *h)
{
	/* Acquire: pairs with mark_given_up's release. */
	uint8_t was = h ? sk_load_acquire(&c->b->state[h->stream][h->seq]) : ST_NONE;
	int e;

	if (sk_rand_below(&c->rng, 4) == 0 && (e = shmkit_rpc_abandoned(r, q)) < 0)
		return call_failed(c, "rpc_abandoned", e);
	e = smsg_rpc_answer(r, q, pick_zc(c));
	if (e == -ECANCELED) {
		c->ro->stale++;
		return 0;
	}
	if (e)
		return call_failed(c, "rpc respond / respond_loan + commit", e);
	if (was == ST_CANCELLED || was == ST_TIMEDOUT || was == ST_RESET)
		return finding(c, F_WRONG, "the answer to client %u call %llu was accepted after its "
		               "client had given the call up (%s)", h->stream, (unsigned long long)h->seq,
		               was == ST_RESET ? "reset" : was == ST_CANCELLED ? "cancelled" : "timed out");
	if (h && rx->n < SK_LOGCAP) {
		rx->log[rx->n] = (struct slog){ .stream = h->stream, .seq = h->seq };
		/* Release: as rx_accept's. */
		sk_store_release(&c->ro->nlog, ++rx->n);
	}
	c->ro->ops++;
	return 0;
}

/* Take 1..rpc_hold requests, check each, note them in `held`, answer them
 * in a random order. */
static int srv_round(struct child *c, void *r, struct rx *rx)
{
	struct shmkit_rpc_req q[SK_HOLD];
	struct smsg_hdr h[SK_HOLD];
	bool ok[SK_HOLD];
	unsigned want = 1 + (unsigned)sk_rand_below(&c->rng, c->b->rpc_hold), n = 0;
	int e = shmkit_rpc_recv(r, &q[0], RX_SLICE_NS);

	if (e)
		return e;
	for (n = 1; n < want && n < SK_HOLD && (e = shmkit_rpc_recv(r, &q[n], 0)) == 0; n++)
		;
	if (n < want && n < SK_HOLD && e != -EAGAIN)
		return call_failed(c, "rpc_recv", e);
	for (unsigned i = 0; i < n; i++) {
		const char *bad = q[i].len <= SK_MSG_MAX ? smsg_check(q[i].data, q[i].len, &h[i])
		                                         : "longer than any request";
		ok[i] = !bad && h[i].stream < SK_STREAMS && h[i].seq < SK_MAXSEQ;
		if (!ok[i])
			finding(c, F_TORN, "request of %u bytes: %s", q[i].len, bad ? bad : "out of range");
		c->ro->held[i] = ok[i] ? (struct slog){ .stream = h[i].stream, .seq = h[i].seq }
		                       : (struct slog){ .stream = UINT32_MAX };
	}
	/* Relaxed: the driver reads held[] after this process died. */
	sk_store_relaxed(&c->ro->nheld, n);
	if (sk_rand_below(&c->rng, 16) == 0) /* slow now and then: callers give up, kills land here */
		usleep((useconds_t)sk_rand_below(&c->rng, 5000));
	unsigned first = (unsigned)sk_rand_below(&c->rng, n);
	for (unsigned i = 0; i < n; i++) {
		unsigned j = (first + i) % n;
		if ((e = srv_answer(c, r, rx, &q[j], ok[j] ? &h[j] : NULL)))
			return e;
	}
	sk_store_relaxed(&c->ro->nheld, 0);
	return 0;
}

/* A client or a server, each with its own handle. */
static int run_rpc(struct child *c)
{
	struct shmkit_rpc_opts o = { .wait = c->ro->wait };
	shmkit_rpc *r;
	int e = shmkit_rpc_open(&r, c->b->name, &o);

	if (e)
		return call_failed(c, "rpc_open", e);
	e = c->ro->kind == K_SERVER ? rx_run(c, r, srv_round, "rpc_recv") : client_loop(c, r);
	shmkit_rpc_close(r);
	return e;
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
	case K_SERVER:
	case K_CLIENT: return run_rpc(&c);
	}
	return 2;
}

#endif /* SK_STRESS_ROLES_H */
