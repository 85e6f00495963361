/*
 * bus_pub.c - the bus's publishers: registering in the publisher table,
 * claiming a sequence and its slot, committing and waking, and the
 * publisher API.  The format and the parts of the protocol both sides
 * run: bus.h.
 *
 * ---- Publishing ---------------------------------------------------------
 *
 *   P1  s = fetch_add(head, 1)   (back-pressure: CAS head w -> w+1 after
 *                                 the space check below)
 *   P2  pub_ent.cur = s          (relaxed, own line; read by stuck readers)
 *   P3  CAS claim c -> s|me|CLAIMED (acq_rel) where c is older than s and
 *       done with (sk_bus_claim_done: its holder's commit is in the slot
 *       word; else sk_bus_holder_in_slot asks its entry and lock); if the
 *       claim already shows s or later, another party took this sequence
 *       over (we were lapped or a reader gave s up): claim again.  If
 *       another publisher may still be writing into the slot (a loan or
 *       copy held across a whole ring lap), an overwrite publisher gives
 *       the sequence up and claims another, a back-pressure one waits,
 *       bounded: see "Stuck slots" in bus.h.
 *   P3m store_release word = s|me|WRITING   (the mark: a plain store)
 *   P4  fence release; store len; memcpy payload
 *   P5  CAS word s|me|WRITING -> s|me|MSG (seq_cst).  Failure: our record
 *       was taken (a reader decided we were dead, or a lapping publisher
 *       gave its sequence up over our stall): the copy path claims a new
 *       sequence and retries; a loan gets -ESTALE.
 *   P6  sk_ec_notify(published): wakes futex waiters, blocked subscribers
 *       and armed fds alike; a plain load and nothing more when none is
 *       armed (a seq_cst load after the seq_cst P5: sync.c, "Services").
 *
 * Why the mark may be a plain store: only the claim's holder writes the
 * slot word, but for CASes that compare a whole older word (a take of a
 * dead holder's WRITING record, a holder's own commit), which the mark
 * makes fail or which it overwrites harmlessly; the next claimer waits
 * until the holder is out of the slot (its commit in the word, its cur
 * moved, or its lock gone).  A claimer that stalls between P1 and P3
 * finds its claim given up and claims again; one that stalls between P3
 * and P3m is waited for like a copy in progress (alive) or passed (dead).
 *
 * Ordering.  P4's release fence orders the WRITING mark before the
 * payload stores (seqlock writer); P5 releases the payload and len to the
 * reader's acquire load R1.  P1 precedes P3 and P3m, so a reader that saw
 * the word or the claim for s and then reads head sees head > s (bound
 * check: a sequence not below head is corrupt, -EBADMSG).
 */
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "wait.h"
#include "waitfd.h"

#define MS 1000000LL
#define LIVE_CHECK_NS (5 * MS)      /* back-pressure liveness rescan period */
#define CLAIM_RETRIES 1024          /* bound on re-claims per publish */

/* ---- publisher: registration --------------------------------------------- */

static int pub_register(shmkit_bus *b)
{
	int i = sk_bus_ent_take(b, SK_PEER_BUS_PUB, &b->pubs[0].owner, sizeof(b->pubs[0]),
	                        b->npubs_max, NULL);

	if (i < 0)
		return sk_fail(-ENOSPC, "bus publisher table full (%u live publishers; see "
		               "max_publishers)", b->npubs_max);
	struct sk_bus_pub_ent *e = &b->pubs[i];
	/* Relaxed: own entry; readers use these only after the slot word's
	 * acquire (cur) or for statistics. */
	sk_store_relaxed(&e->cur, SK_BUS_SEQ_MAX);
	sk_store_relaxed(&e->count, 0);
	sk_store_relaxed(&e->aborted, 0);
	sk_bus_ent_claim(&e->owner);
	b->pub_idx = i;
	b->pub_pid = getpid();
	return 0;
}

static SK_COLD int pub_rejoin(shmkit_bus *b)
{
	int err;

	if ((err = sk_bus_peer_ready(b)))
		return err;
	b->min_joins = UINT64_MAX;
	return pub_register(b);
}


/* Register as a publisher the first time this handle publishes in this
 * process (a forked child inheriting the handle registers itself: the
 * parent's entry is the parent's). */
static inline int pub_ready(shmkit_bus *b)
{
	if (sk_map_lost(b->seg)) /* shrunk by a peer: guard.c */
		return sk_map_check(b->seg);
	if (SK_LIKELY(b->pub_idx >= 0 && b->peer.gen == sk_fork_gen_now()))
		return 0;
	return pub_rejoin(b);
}

/* ---- publisher: claiming a sequence ---------------------------------------- */

/* Back-pressure: recompute the minimum cursor of live subscribers as of
 * head value w.  Reaps the dead that block a claim at w (at most every
 * LIVE_CHECK_NS).  With no subscriber the minimum is w: nothing to wait for. */
static int bp_rescan(shmkit_bus *b, uint64_t w, uint64_t joins)
{
	struct sk_bus_ctl *c = b->ctl;
	uint64_t min = w;
	int64_t now = 0;
	bool check = false;

	for (unsigned i = 0; i < b->nsubs_max; i++) {
		struct sk_bus_sub_ent *e = &b->subs[i];
		/* Acquire: pairs with the subscriber's seq_cst store of
		 * ACTIVE (J1), after it set its cursor. */
		if (sk_load_acquire(&e->state) != SK_BUS_ENT_ACTIVE)
			continue;
		/* Acquire: pairs with the subscriber's release store of its
		 * cursor after finishing with the payload: we reuse the
		 * slot only after its last read. */
		uint64_t cur = sk_load_acquire(&e->cursor);
		if (cur > w) {
			/* Other publishers moved head since we read w and
			 * this reader followed: it does not limit us, unless
			 * it is beyond even the current head (corrupt).
			 * Relaxed: a bound check only. */
			uint64_t h = sk_load_relaxed(&c->head);
			if (cur > h)
				return sk_fail(-EBADMSG, "subscriber %u cursor %llu beyond head %llu",
				               i, (unsigned long long)cur, (unsigned long long)h);
			continue;
		}
		if (w - cur >= b->cap) {
			if (!now)
				now = sk_now_ns();
			if (now - b->live_checked >= LIVE_CHECK_NS) {
				check = true;
				if (!sk_bus_ent_live(b, sk_bus_sub_lock(i)) &&
				    sk_bus_sub_reap(b, i))
					continue; /* a dead subscriber: it no longer counts */
			}
		}
		if (cur < min)
			min = cur;
	}
	if (check)
		b->live_checked = now;
	b->min_cur = min;
	b->min_joins = joins;
	return 0;
}

/* Back-pressure claim: 1 and *seq on success, 0 if full, < 0 error.
 * seq NULL: only look (the fd's test): 1 if there is room, claiming
 * nothing. */
static int bp_claim(shmkit_bus *b, uint64_t *seq)
{
	struct sk_bus_ctl *c = b->ctl;

	for (;;) {
		/* B1, B2.  seq_cst: the join handshake in bus.h,
		 * "Back-pressure" (with J2, J3 and B3). */
		uint64_t w = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
		uint64_t j = __atomic_load_n(&c->joins, __ATOMIC_SEQ_CST);
		if (w >= SK_BUS_SEQ_MAX)
			return sk_fail(-EBADMSG, "bus head %llu out of range", (unsigned long long)w);
		if (j != b->min_joins || w - b->min_cur >= b->cap || b->min_cur > w) {
			int err = bp_rescan(b, w, j);
			if (err)
				return err;
			if (w - b->min_cur >= b->cap)
				return 0;
		}
		if (!seq)
			return 1;
		/* B3.  seq_cst: see above; also orders our claim before the
		 * slot CAS P3 (program order + the CAS's own acquire). */
		if (sk_cas(&c->head, &w, w + 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			*seq = w;
			return 1;
		}
	}
}

/* Give up sequence q in the slot s whose claim *c names a holder that
 * may still be writing there: the claim becomes given(q, holder), so
 * readers at q pass it (silently), a claimer of q claims again, and
 * whoever looks at the slot still knows whom to wait for.  If the holder
 * has marked the slot, its record is taken from it too (the word becomes
 * taken(p, holder), counted lost if a loan), so its commit fails: a loan
 * is -ESTALE, a copier claims again.  Unmarked, the word stays: the
 * holder's mark (a plain store) is still to come, and its sequence is
 * below q.  true if done (readers asleep at q are woken: nothing in the
 * slot word moves for them); false: the claim changed (*c). */
static bool slot_give_up(shmkit_bus *b, struct sk_bus_slot *s, uint64_t *cl, uint64_t *c,
                         uint64_t q)
{
	uint64_t t = sk_bus_mkword(q, sk_bus_w_pub(*c), SK_BUS_SKIP) | SK_BUS_W_TAKEN;

	/* Acq_rel: pairs with the acquire loads of the claim by readers and
	 * claimers.  model: bus.pml P3 give-up (SC in the model). */
	if (!sk_cas(cl, c, t, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	*c = t;
	/* Acquire: the holder's cur and loaning (sk_bus_record_is_loan) are
	 * released by its mark. */
	uint64_t w = sk_load_acquire(&s->word);
	/* Acq_rel: only the very record we saw (the holder's commit CAS P5
	 * compares it, so exactly one of the two wins).  model: bus.pml P3
	 * give-up (take; SC in the model). */
	if (sk_bus_w_st(w) == SK_BUS_WRITING && sk_bus_w_pub(w) == sk_bus_w_pub(t))
		sk_cas(&s->word, &w, sk_bus_taken_word(b, w), __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	shmkit_ec_inc(&b->ctl->published); /* release RMW: wakes readers at q */
	return true;
}

/* The claim *c of the slot we want for seq names another holder that may
 * still be in it (a copy in progress, a loan, or a record taken from its
 * holder who may write on).  After a few polls (a copy takes a memcpy): a
 * holder out of the slot (done, dead, or moved on) is no obstacle - 0, *c
 * the claim to CAS from.  A live holder still in it: an overwrite bus
 * never waits for it - we give the sequence up (slot_give_up) and return
 * 3, to claim another; a back-pressure bus waits, bounded by our deadline
 * (-EAGAIN for a try-once call, -ETIMEDOUT). */
static int slot_wait_holder(shmkit_bus *b, struct sk_bus_slot *s, uint64_t *cl, uint64_t *c,
                            uint64_t seq)
{
	int64_t deadline = INT64_MIN, since = 0;

	for (unsigned i = 0;; i++) {
		/* Acquire both: the claim pairs with other claimers' and
		 * give-ups' CASes, the word with the holder's commit CAS P5
		 * (its writes into the slot happen before ours). */
		*c = sk_load_acquire(cl);
		uint64_t w = sk_load_acquire(&s->word);
		if ((*c != 0 && sk_bus_w_seq(*c) >= seq) || sk_bus_claim_done(*c, w))
			return 0; /* the caller judges it */
		if (i < 64) { /* a copy in progress takes a memcpy */
			sk_cpu_relax();
			continue;
		}
		int in = sk_bus_holder_in_slot(b, *c);
		if (in < 0)
			return in;
		if (!in)
			return 0; /* P3 claims over the dead or done holder */
		/* An overwrite bus never waits for a loan, nor for a record
		 * already taken from its holder (stalled that long): give the
		 * sequence up at once.  A copy in progress is a memcpy away
		 * from done: wait for it (as readers do), up to
		 * SK_BUS_STUCK_NS, so that sequences are given up - and
		 * counted by lapped readers - only when a copier really
		 * stalls. */
		if (b->delivery == SHMKIT_BUS_OVERWRITE) {
			int64_t now = sk_now_ns();
			if (!since)
				since = now;
			if (sk_bus_w_taken(*c) || sk_bus_record_is_loan(b, *c) ||
			    now - since >= SK_BUS_STUCK_NS)
				return slot_give_up(b, s, cl, c, seq) ? 3 : 0; /* changed: judge again */
			sched_yield();
			continue;
		}
		if (deadline == INT64_MIN)
			deadline = sk_bus_lazy_deadline(&b->deadline, b->tmo);
		if (sk_now_ns() >= deadline)
			return b->tmo == 0 ? sk_fail(-EAGAIN, "a live publisher's loan holds the slot")
			                   : sk_fail(-ETIMEDOUT, "a live publisher's loan holds the slot");
		if (i < 128) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
}

/* P3: claim the slot of seq, then mark it.  1 taken; 0 a reader gave
 * seq up (we stalled before claiming): claim again; 2 lapped: newer
 * sequences already claimed the slot (overwrite mode), readers count seq
 * lost; 3 a live holder is in the slot (overwrite mode): seq given up,
 * claim another; < 0 error. */
static int slot_take(shmkit_bus *b, uint64_t seq)
{
	struct sk_bus_slot *s = sk_bus_slot_at(b, seq);
	uint64_t *cl = sk_bus_claim_at(b, seq);
	/* Acquire: pairs with the previous claimer's claim CAS and with
	 * give-ups (release).  model: bus.pml P3 (load; SC in the model). */
	uint64_t c = sk_load_acquire(cl);
	uint64_t mine = sk_bus_mkword(seq, (uint32_t)b->pub_idx, SK_BUS_WRITING);
	uint64_t cleared = 0; /* a claim whose holder is out of the slot */

	for (;;) {
		/* Claims only move forward (every CAS on a claim word sets a
		 * sequence at least its own), and a word's sequence comes from
		 * a claim: the claim alone says whether seq is still ours. */
		if (c != 0 && sk_bus_w_seq(c) > seq)
			return 2;
		if (c != 0 && sk_bus_w_seq(c) == seq)
			return 0;
		if (c != cleared) {
			/* Acquire: pairs with the holder's commit CAS P5. */
			uint64_t w = sk_load_acquire(&s->word);
			if (!sk_bus_claim_done(c, w)) {
				uint64_t was = c;
				int r = slot_wait_holder(b, s, cl, &c, seq);
				if (r)
					return r;
				if (c == was)
					cleared = c;
				continue; /* the claim may have moved on: judge it again */
			}
		}
		/* P3.  Acq_rel: acquire as above; the release half keeps the
		 * claim (P1) and cur (P2) before the claim for stuck readers.
		 * On the claim's own line, which subscribers read only when
		 * a slot is late: the line they poll sees plain stores only.
		 * model: bus.pml P3 (CAS; SC in the model). */
		if (sk_cas(cl, &c, mine, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			SK_CRASH_POINT("bus.claimed");
			/* P3m, the mark.  A plain store: only a claim's holder
			 * writes the slot word, but for the CAS that takes a
			 * record of a dead holder or a loan (sub_stuck), which
			 * compares the whole older word and so cannot undo
			 * this one.  Release: P2 (cur) before the mark, for a
			 * stuck reader's acquire load of the word.  model:
			 * bus.pml P3m (SC in the model). */
			sk_store_release(&s->word, mine);
			/* P4.  Release fence: the WRITING mark is ordered
			 * before the payload stores that follow (seqlock
			 * writer); pairs with the reader's acquire fence R3.
			 * model: bus.pml P4 - SPIN has no fences: its SC
			 * interleavings assume this pairing. */
			sk_fence_release();
			return 1;
		}
	}
}

struct bp_wait_arg {
	shmkit_bus *b;
	uint64_t seq;
};

static int bp_ready(void *argp)
{
	struct bp_wait_arg *a = argp;
	return bp_claim(a->b, &a->seq);
}

/* Back-pressure: claim, waiting on `consumed` in slices so that a dead
 * subscriber is noticed (liveness rescan) even though it never signals. */
static int bp_claim_wait(shmkit_bus *b, uint64_t *seq)
{
	struct bp_wait_arg a = { b, 0 };
	int waited = 0;
	int r = bp_claim(b, seq);

	if (r)
		return r < 0 ? r : 0;
	int64_t deadline = sk_bus_lazy_deadline(&b->deadline, b->tmo);

	for (int round = 0;; round++) {
		int64_t now = sk_now_ns();
		int64_t slice = deadline - now > LIVE_CHECK_NS ? now + LIVE_CHECK_NS : deadline;
		r = sk_wait_for(&b->ctl->consumed, b->wait, slice, bp_ready, &a, &waited);
		if (r == 0) {
			*seq = a.seq;
			return 0;
		}
		/* -EAGAIN from a slice only means the slice ended before the
		 * first check; the caller's deadline decides. */
		if (r != -ETIMEDOUT && r != -EAGAIN)
			return r;
		if ((r = sk_map_check(b->seg))) /* truncated by a peer: guard.c */
			return r;
		if (sk_now_ns() < deadline)
			continue;
		if (!waited && !round)
			return sk_fail(-EAGAIN, "bus full: the slowest subscriber is %u behind", b->cap);
		return sk_fail(-ETIMEDOUT, "bus full: the slowest subscriber did not catch up");
	}
}

/* A live publisher's record held the slot of our claim (overwrite bus):
 * the sequence is given up.  Try once: -EAGAIN at once.  Otherwise claim
 * again after a short pause, until the caller's deadline. */
static SK_COLD int slot_busy(shmkit_bus *b)
{
	if (b->tmo == 0)
		return sk_fail(-EAGAIN, "a live publisher's loan holds the slot a whole ring on");
	if (sk_now_ns() >= sk_bus_lazy_deadline(&b->deadline, b->tmo))
		return sk_fail(-ETIMEDOUT, "a live publisher's loan holds the slot a whole ring on");
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
	return 0;
}

/* Claim a sequence and take its slot (P1-P4).  0 and b->loan_seq set;
 * 1 (only if lapped_ok) the claim was lapped before it got its slot: the
 * message counts as published and overwritten at once, exactly as readers
 * count that sequence (lost).  A loan cannot be lapped away (the caller
 * wants a buffer): it claims again, and readers count the lapped sequence
 * lost although the loaned message appears under the next one.
 * -EAGAIN/-ETIMEDOUT (back-pressure full), other errors. */
static int pub_claim(shmkit_bus *b, bool lapped_ok)
{
	struct sk_bus_ctl *c = b->ctl;
	struct sk_bus_pub_ent *e = &b->pubs[b->pub_idx];

	/* Bounded: CLAIM_RETRIES claims abandoned by readers or lapped (a
	 * corrupt bus could make every one so); claims given up for a busy
	 * slot are bounded by the caller's deadline instead (slot_busy). */
	for (int tries = 0; tries < CLAIM_RETRIES;) {
		uint64_t seq = 0;
		if (b->delivery == SHMKIT_BUS_BACKPRESSURE) {
			int err = bp_claim_wait(b, &seq);
			if (err)
				return err;
		} else {
			/* P1.  seq_cst: part of the fd arming handshake (A2
			 * reads head); as an RMW it also orders the claim
			 * before P3.  model: bus.pml P1. */
			seq = sk_fetch_add(&c->head, 1, __ATOMIC_SEQ_CST);
			if (seq >= SK_BUS_SEQ_MAX)
				return sk_fail(-EBADMSG, "bus head %llu out of range",
				               (unsigned long long)seq);
		}
		/* P2.  Relaxed: published to stuck readers and lapping
		 * writers by P3's release.  model: bus.pml P2 (cur; loaning
		 * is not modelled; SC in the model). */
		sk_store_relaxed(&e->loaning, lapped_ok ? 0 : 1);
		sk_store_relaxed(&e->cur, seq);
		int r = slot_take(b, seq);
		if (r < 0)
			return r;
		if (r == 2 && lapped_ok)
			return 1;
		if (r == 3) {
			if ((r = slot_busy(b)))
				return r;
			continue;
		}
		if (r == 1) {
			b->loan_seq = seq;
			b->loaned = true;
			return 0;
		}
		tries++;
	}
	return sk_fail(-EBADMSG, "could not take a slot in %d claims (corrupt bus?)", CLAIM_RETRIES);
}

/* ---- publisher: commit and wake ------------------------------------------ */

/* P5, P6.  0, or -ESTALE if a reader abandoned our record meanwhile. */
static inline int pub_commit(shmkit_bus *b, uint32_t st)
{
	struct sk_bus_ctl *c = b->ctl;
	struct sk_bus_slot *s = sk_bus_slot_at(b, b->loan_seq);
	uint64_t mine = sk_bus_mkword(b->loan_seq, (uint32_t)b->pub_idx, SK_BUS_WRITING);

	struct sk_bus_pub_ent *e = &b->pubs[b->pub_idx];

	b->loaned = false;
	/* P5.  Release on success: len and payload to readers' acquire R1;
	 * seq_cst, because P6's sk_ec_notify requires a seq_cst RMW before
	 * it (sync.c, "Services"; on x86 a locked instruction either way).
	 * Relaxed on failure: nothing was published.  model: bus.pml P5,
	 * the commit point; a plain store here is mutant BUG_P5_STORE. */
	bool ok = sk_cas(&s->word, &mine, sk_bus_mkword(b->loan_seq, (uint32_t)b->pub_idx, st),
	                 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	/* P5b.  Release: we are done with the slot (its payload and len);
	 * pairs with the acquire load of cur in sk_bus_holder_in_slot() of a
	 * publisher waiting to reuse it, also when the record was taken
	 * from us (then no reader reads the slot, but it may be reused).
	 * model: bus.pml P5b (SC in the model). */
	sk_store_release(&e->cur, SK_BUS_SEQ_MAX);
	if (!ok)
		return -ESTALE;
	SK_CRASH_POINT("bus.committed");
	/* Relaxed: statistics in our own entry. */
	if (st == SK_BUS_MSG)
		sk_store_relaxed(&e->count, sk_load_relaxed(&e->count) + 1);
	else
		sk_store_relaxed(&e->aborted, sk_load_relaxed(&e->aborted) + 1);
	/* P6: after the seq_cst commit CAS P5, so the conditional notify:
	 * increments and wakes only if a waiter or an fd armed the count
	 * (sync.c file top, "Services").  What a reader may wait for here -
	 * this message, or our claim P3 lapping it - is a value of this slot
	 * word that P5 follows in its modification order, so a look that
	 * missed it missed P5 too (coherence), and the Dekker pair holds.
	 * model: bus.pml P6. */
	sk_ec_notify(&c->published);
	return 0;
}

/* ---- publisher API --------------------------------------------------------- */

/* The publisher side of shmkit_bus_close: a loan still outstanding is
 * aborted, and this process's publisher entry given up (a forked child's
 * inherited handle leaves the parent's alone). */
void sk_bus_pub_leave(shmkit_bus *b)
{
	if (b->pub_idx >= 0 && !sk_peer_forked(&b->peer)) {
		if (b->loaned)
			pub_commit(b, SK_BUS_SKIP);
		sk_bus_ent_leave(b, &b->pubs[b->pub_idx].owner,
		                 sk_bus_pub_lock((unsigned)b->pub_idx));
	}
}

int shmkit_bus_loan(shmkit_bus *bus, void **buf, int64_t timeout_ns)
{
	int err;

	if (!bus || !buf)
		return sk_fail(-EINVAL, "bus or buf is NULL");
	if ((err = pub_ready(bus)))
		return err;
	if (bus->loaned)
		return sk_fail(-EINVAL, "a loan is already outstanding on this handle");
	bus->tmo = timeout_ns;
	bus->deadline = INT64_MIN;
	if ((err = pub_claim(bus, false)))
		return err;
	*buf = sk_bus_slot_at(bus, bus->loan_seq)->data;
	return 0;
}

int shmkit_bus_publish_loan(shmkit_bus *bus, size_t len)
{
	if (!bus || !bus->loaned || bus->pub_pid != getpid())
		return sk_fail(-EINVAL, "no loan outstanding");
	if (len > bus->max_msg)
		return sk_fail(-EMSGSIZE, "%zu bytes exceed max_msg %u (the loan stays open)",
		               len, bus->max_msg);
	if (sk_map_lost(bus->seg)) /* the loan is guard.c's zeros */
		return sk_map_check(bus->seg);
	/* Relaxed: released by the commit CAS (P5). */
	sk_store_relaxed(&sk_bus_slot_at(bus, bus->loan_seq)->len, (uint32_t)len);
	if (pub_commit(bus, SK_BUS_MSG))
		return sk_fail(-ESTALE, "the loan was abandoned by a reader (publisher stalled > %lld ms)",
		               (long long)(SK_BUS_STUCK_NS / MS));
	return 0;
}

int shmkit_bus_abort_loan(shmkit_bus *bus)
{
	if (!bus || !bus->loaned || bus->pub_pid != getpid())
		return sk_fail(-EINVAL, "no loan outstanding");
	/* Relaxed: released by the commit CAS (P5). */
	sk_store_relaxed(&sk_bus_slot_at(bus, bus->loan_seq)->len, 0);
	pub_commit(bus, SK_BUS_SKIP); /* -ESTALE: already skipped by a reader */
	return 0;
}

int shmkit_bus_publish(shmkit_bus *bus, const void *msg, size_t len, int64_t timeout_ns)
{
	int err;

	if (SK_UNLIKELY(!bus || (!msg && len)))
		return sk_fail(-EINVAL, "bus or msg is NULL");
	if (SK_UNLIKELY(len > bus->max_msg))
		return sk_fail(-EMSGSIZE, "%zu bytes exceed max_msg %u", len, bus->max_msg);
	if (SK_UNLIKELY(err = pub_ready(bus)))
		return err;
	if (SK_UNLIKELY(bus->loaned))
		return sk_fail(-EINVAL, "a loan is outstanding on this handle");
	bus->tmo = timeout_ns;
	bus->deadline = INT64_MIN;
	for (int tries = 0; tries < CLAIM_RETRIES; tries++) {
		if ((err = pub_claim(bus, true)))
			return err < 0 ? err : 0;
		struct sk_bus_slot *s = sk_bus_slot_at(bus, bus->loan_seq);
		/* Relaxed: released by the commit CAS (P5).  model: bus.pml
		 * P4 (len, then the payload; SC in the model). */
		sk_store_relaxed(&s->len, (uint32_t)len);
		if (len) /* msg may be NULL for an empty message */
			memcpy(s->data, msg, len);
		if (sk_map_lost(bus->seg)) /* copied into guard.c's zeros */
			return sk_map_check(bus->seg);
		if (pub_commit(bus, SK_BUS_MSG) == 0)
			return 0;
	}
	return sk_fail(-EBADMSG, "every claim was abandoned (corrupt bus?)");
}


/* ---- publisher: the pollable fd -------------------------------------------- */

/* Could a publish go on without waiting?  sk_waitfd_service_arm's look,
 * after the arm on `consumed`, which subscribers move (shmkit_ec_inc after
 * the release store of their cursor, sub_advance; or leaving,
 * sk_bus_ent_leave): the unconditional-increment case of sync.c,
 * "Services".  bp_claim's look reaps the dead who hold the bus back (at
 * most every LIVE_CHECK_NS): a dead subscriber never moves `consumed`, so
 * the caller's poll timeout and ack find it.  An overwrite bus never
 * waits for readers: always 1. */
static int bus_fd_ready(void *arg)
{
	shmkit_bus *b = arg;

	int r;

	if (sk_map_lost(b->seg) && (r = sk_map_check(b->seg)))
		return r; /* truncated by a peer: readable, the next call says so */
	if (b->delivery != SHMKIT_BUS_BACKPRESSURE)
		return 1;
	return bp_claim(b, NULL);
}

int shmkit_bus_fd(shmkit_bus *bus, int events)
{
	if (!bus || events != SHMKIT_BUS_POLLOUT)
		return sk_fail(-EINVAL, "bus is NULL or events is not SHMKIT_BUS_POLLOUT");
	return sk_waitfd_service_fd(&bus->wfd, &bus->ctl->consumed, bus_fd_ready, bus);
}

int shmkit_bus_ack_fd(shmkit_bus *bus)
{
	if (!bus || !bus->wfd)
		return sk_fail(-EINVAL, "no fd on this bus handle (call shmkit_bus_fd)");
	return sk_waitfd_service_arm(bus->wfd, &bus->ctl->consumed, bus_fd_ready, bus);
}
