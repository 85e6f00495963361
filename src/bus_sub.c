/*
 * bus_sub.c - the bus's subscribers: positions, waiting, joining and
 * leaving, and the pollable fd.  The format and the parts of the
 * protocol both sides run: bus.h.
 *
 * ---- Reading (a subscriber at position p) --------------------------------
 *
 *   R1  w = load_acquire(word)       pairs with P5
 *   R2  len = load(len), memcpy payload into the caller's buffer (or hand
 *       out a pointer: peek)
 *   R3  fence acquire; R4 w2 = load_relaxed(word)
 *   w2 != w: the slot was re-claimed while we read (the fence makes any
 *   payload byte we read from a newer writer imply that R4 sees its P3m
 *   mark): discard, count lost, resynchronise.  Never a torn message.
 *   The payload copy is a plain memcpy racing with a writer in overwrite
 *   mode: the classic seqlock data race, benign because the bytes are
 *   discarded when R4 disagrees (ThreadSanitizer reports it; accepted).
 *   Lag: a word newer than p means we were lapped; the reader reads head
 *   and jumps to the oldest retained sequence max(p + 1, head - capacity),
 *   adding the jump to its lost count.  Lost counts sequences: an aborted
 *   loan inside a range jumped over counts too (nothing can tell).
 *
 * ---- Pollable fd ---------------------------------------------------------
 *
 * shmkit_sub_fd() hands out the one pollable-fd mechanism of shmkit
 * (waitfd.c): a descriptor that becomes readable when the `published`
 * event count is woken.  It waits on the futex itself, so it works
 * wherever the memory is shared (any PID, network or IPC namespace), and
 * publishers do nothing for it beyond what they do for a blocked
 * subscriber: sk_ec_notify wakes when a waiter set the count's flag.
 * Arming (sub_fd, ack_fd) sets the flag (seq_cst, sk_ec_arm), queues the
 * wait on that value, then looks for a message itself and makes the fd readable
 * at once if one is there: the event count argument of wait.h, so no
 * wake-up is lost.  A publisher that dies between its commit and its
 * wake leaves the fd quiet: poll with a timeout (say 100 ms) to bound
 * that, as the header says.  The `armed` words count subscribers with an
 * armed fd, for display only: publishers never read them.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "wait.h"
#include "waitfd.h"

#define LOCATE_STEPS 4096           /* bound on skips/resyncs per locate */
#define SUB_HEAD_EVERY 1024         /* looks at nothing of pos per full look (head,
                                       claim, clock) while spinning: 64 made a
                                       ping-pong's reader pull the head line
                                       across every ~25 messages (~10 ns per
                                       round trip); 1024 polls notice a
                                       sequence given up in its claim within
                                       ~50 us, and sleepers always look fully */

struct shmkit_sub {
	shmkit_bus *bus;
	struct sk_bus_sub_ent *ent;
	int idx;
	uint64_t owner;         /* the display word we wrote */
	pid_t pid;
	uint64_t pos;           /* next sequence to read */
	uint64_t lost;          /* lost since the last delivered message */
	int wait;
	int64_t tmo, deadline;  /* as in shmkit_bus */
	struct sk_waitfd *wfd;  /* NULL until shmkit_sub_fd() */
	/* stuck-slot timer */
	uint64_t stuck_seq;
	int64_t stuck_since;
	bool stuck;
	uint32_t idle_polls;    /* looks that found nothing of pos (sub_locate) */
	/* outstanding peek */
	bool peeked;
	uint64_t peek_word;
};

/* ---- subscriber: positions ------------------------------------------------ */

#define SUB_RETRY (-EINTR) /* internal: the slot changed under us, look again */

/* Move past sequence pos-1: publish the cursor (back-pressure: the slot may
 * now be reused) and let a waiting publisher know. */
static inline void sub_advance(shmkit_sub *sub, uint64_t pos)
{
	shmkit_bus *b = sub->bus;

	sub->pos = pos;
	/* Release: our reads of the slots below pos happen before a
	 * publisher's acquire load of the cursor in bp_rescan lets it
	 * overwrite them. */
	sk_store_release(&sub->ent->cursor, pos);
	if (b->delivery == SHMKIT_BUS_BACKPRESSURE)
		shmkit_ec_inc(&b->ctl->consumed); /* release RMW; wakes a full publisher */
}

static inline void sub_count_lost(shmkit_sub *sub, uint64_t n)
{
	sub->lost += n;
	/* Relaxed: statistics in our own entry. */
	sk_store_relaxed(&sub->ent->lost, sk_load_relaxed(&sub->ent->lost) + n);
}

/* We were lapped (the slot holds sequence ws > pos): jump to the oldest
 * sequence still retained, counting the jump as lost. */
static int sub_resync(shmkit_sub *sub, uint64_t ws)
{
	shmkit_bus *b = sub->bus;
	/* seq_cst: as every head access; here it only needs to read a head
	 * at least ws + 1 (P1 precedes the P3 we saw through R1's acquire).
	 * model: bus.pml sub_resync. */
	uint64_t h = __atomic_load_n(&b->ctl->head, __ATOMIC_SEQ_CST);

	/* A sequence read from a slot must map to that slot (ws = pos + k *
	 * capacity, k >= 1), and head must be past it, so head - capacity >
	 * pos: anything else (a forged word) is corrupt, never an underflow
	 * that would make this reader deaf. */
	if (((ws - sub->pos) & b->mask) != 0 || h <= ws || h > SK_BUS_SEQ_MAX || h < b->cap ||
	    h - b->cap <= sub->pos)
		return sk_fail(-EBADMSG, "slot sequence %llu inconsistent with position %llu and "
		               "head %llu", (unsigned long long)ws, (unsigned long long)sub->pos,
		               (unsigned long long)h);
	sub_count_lost(sub, h - b->cap - sub->pos);
	sub_advance(sub, h - b->cap);
	return 0;
}

/* The slot word shows nothing of pos and head > pos: its claim says the
 * rest.  2 if pos is settled by it (given up: passed; claimed by a later
 * sequence: lapped, resynchronised) - look again; 0 if pos is not
 * claimed yet, or claimed and not yet marked; < 0 corrupt.  *c the claim. */
static int sub_claim_look(shmkit_sub *sub, uint64_t *c)
{
	shmkit_bus *b = sub->bus;
	uint64_t p = sub->pos;

	/* Acquire: pairs with the claim CASes (P3, give-ups; release): the
	 * claimer's cur (P2) is visible with its claim.  model: bus.pml R1c
	 * (SC in the model). */
	*c = sk_load_acquire(sk_bus_claim_at(b, p));
	if (*c == 0 || sk_bus_w_seq(*c) < p)
		return 0;
	if (sk_bus_w_seq(*c) > p) {
		int err = sub_resync(sub, sk_bus_w_seq(*c));
		return err ? err : 2;
	}
	if (sk_bus_w_st(*c) == SK_BUS_SKIP) { /* given up: it carried no message */
		sub->stuck = false;
		sub_advance(sub, p + 1);
		return 2;
	}
	if (sk_bus_w_st(*c) != SK_BUS_WRITING)
		return sk_fail(-EBADMSG, "claim word %#llx of sequence %llu is corrupt",
		               (unsigned long long)*c, (unsigned long long)p);
	return 0;
}

/* The slot of pos is claimed (head > pos) but not ready.  After
 * SK_BUS_STUCK_NS of that, give pos up or take its record if its claimer
 * is dead or gone (bus.h, "Stuck slots").  2 if the slot or claim changed
 * (look again), 0 to keep waiting. */
static int sub_stuck(shmkit_sub *sub, struct sk_bus_slot *s, uint64_t w)
{
	shmkit_bus *b = sub->bus;
	uint64_t p = sub->pos, c = 0, nc;
	bool marked = w != 0 && sk_bus_w_seq(w) == p && sk_bus_w_st(w) == SK_BUS_WRITING;

	if (!marked) {
		int r = sub_claim_look(sub, &c);
		if (r)
			return r;
	}
	int64_t now = sk_now_ns();
	if (!sub->stuck || sub->stuck_seq != p) {
		sub->stuck = true;
		sub->stuck_seq = p;
		sub->stuck_since = now;
		return 0;
	}
	if (now - sub->stuck_since < SK_BUS_STUCK_NS)
		return 0;
	if (marked) {
		/* Back-pressure waits for a live writer however long it holds
		 * its record (publishers wait for readers, readers for
		 * writers); so does an overwrite bus for a live copier (a
		 * memcpy from done: taking its record would only make lapped
		 * readers count a sequence that carries the message again).
		 * But an overwrite bus never lets a loan hold its readers up:
		 * one held past SK_BUS_STUCK_NS is taken from its holder
		 * (counted lost; its publish_loan gets -ESTALE).  A dead
		 * writer's record is taken in any mode.  The slot is not
		 * reused while the holder may still write into it
		 * (sk_bus_holder_in_slot). */
		if (b->delivery == SHMKIT_BUS_BACKPRESSURE || !sk_bus_record_is_loan(b, w)) {
			int in = sk_bus_holder_in_slot(b, w);
			if (in < 0)
				return in;
			if (in) {
				sub->stuck_since = now; /* a live writer: keep waiting */
				return 0;
			}
		}
		/* Acq_rel: replaces the record only if it is still the one we
		 * judged; the writer's commit CAS P5 then fails (a copier
		 * claims again, a loan is -ESTALE).  The word, not the claim:
		 * the holder marked it, and its commit compares it.  model:
		 * bus.pml sub_stuck take (SC in the model). */
		if (sk_cas(&s->word, &w, sk_bus_taken_word(b, w), __ATOMIC_ACQ_REL,
		           __ATOMIC_RELAXED))
			shmkit_ec_inc(&b->ctl->published); /* wake other readers */
		sub->stuck = false;
		return 2;
	}
	if (c != 0 && sk_bus_w_seq(c) == p) {
		/* Claimed, never marked: a live claimer is a copier about to
		 * mark - wait for it, as for a live copier; a dead one (or
		 * one out of the slot) wrote nothing: pass p. */
		int in = sk_bus_holder_in_slot(b, c);
		if (in < 0)
			return in;
		if (in) {
			sub->stuck_since = now;
			return 0;
		}
		nc = sk_bus_mkword(p, SK_BUS_ABANDON_CLAIM, SK_BUS_SKIP);
	} else {
		/* Not claimed at all: the claimer of p stalled or died between
		 * P1 and P3.  Give p up; a live claimer's P3 then fails and it
		 * claims a fresh sequence, so nothing is lost.  If the slot
		 * still holds an older record whose holder may write into it,
		 * keep naming that holder, so no publisher reuses the slot
		 * under it (sk_bus_holder_in_slot). */
		int in = sk_bus_claim_done(c, w) ? 0 : sk_bus_holder_in_slot(b, c);
		if (in < 0)
			return in;
		nc = in ? sk_bus_mkword(p, sk_bus_w_pub(c), SK_BUS_SKIP) | SK_BUS_W_TAKEN
		        : sk_bus_mkword(p, SK_BUS_ABANDON_CLAIM, SK_BUS_SKIP);
	}
	/* Acq_rel: replaces the claim only if it is still the one we judged.
	 * model: bus.pml sub_stuck give-up (SC in the model). */
	if (sk_cas(sk_bus_claim_at(b, p), &c, nc, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		shmkit_ec_inc(&b->ctl->published); /* wake other readers */
	sub->stuck = false;
	return 2;
}

/* Should this look at a slot that shows nothing ready for pos stop at
 * the slot word?  Reading head and the claim (and the clock, for the
 * stuck timer) is what a full look adds, and each is a line a publisher
 * writes: a spinning subscriber makes one look in SUB_HEAD_EVERY a full
 * one.  A look while the `published` count's waiter flag is set - after
 * this subscriber armed it to sleep (wait.h, the fd), or while another
 * sleeper has - is always a full one: a sequence given up in its claim
 * changes no slot word, so a look that stopped at the word could let a
 * sleeper sleep past it.  Relaxed: our own arming RMW set the flag, and a
 * later load sees it or the increment that cleared it (coherence); after
 * such an increment the futex wait returns at once and we look again. */
static inline bool sub_quick_look(shmkit_sub *sub)
{
	return (++sub->idle_polls % SUB_HEAD_EVERY) != 0 &&
	       !(sk_load_relaxed(&sub->bus->ctl->published.word) & 1u);
}

/* Find the message at pos, passing skip records and resynchronising after
 * a lap.  1: a message, its word in *wout; 0: nothing yet; 2: step budget
 * spent, call again; < 0: corrupt. */
static int sub_locate(shmkit_sub *sub, uint64_t *wout)
{
	shmkit_bus *b = sub->bus;

	for (int step = 0; step < LOCATE_STEPS; step++) {
		uint64_t p = sub->pos;
		struct sk_bus_slot *s = sk_bus_slot_at(b, p);
		/* R1.  Acquire: pairs with the commit CAS P5 (len, payload)
		 * and with the take CAS.  model: bus.pml R1 (SC in the
		 * model). */
		uint64_t w = sk_load_acquire(&s->word);
		if (w != 0 && sk_bus_w_seq(w) > p) {
			int err = sub_resync(sub, sk_bus_w_seq(w));
			if (err)
				return err;
			continue;
		}
		if (w != 0 && sk_bus_w_seq(w) == p && sk_bus_w_st(w) == SK_BUS_MSG) {
			sub->stuck = false;
			*wout = w;
			return 1;
		}
		if (w != 0 && sk_bus_w_seq(w) == p && sk_bus_w_st(w) == SK_BUS_SKIP) {
			if (sk_bus_w_taken(w) && (w & SK_BUS_W_LOST))
				sub_count_lost(sub, 1);
			sub_advance(sub, p + 1);
			continue;
		}
		/* Not ready: p is not claimed, claimed and not yet marked, or
		 * being written (WRITING(p)).  Only a dead or stalled claimer
		 * or writer makes the difference, and only after
		 * SK_BUS_STUCK_NS (sub_stuck), or a sequence given up in its
		 * claim: a look stops here unless sub_quick_look says
		 * otherwise.  A spinning subscriber then polls the slot alone
		 * and leaves the head and claim lines in its publisher's cache
		 * (reading head on every poll made each publish pull it back
		 * across).  The wake-up of a claimer that goes on to commit
		 * comes through the event count as ever.  model: bus.pml
		 * A2-skip. */
		if (sub_quick_look(sub))
			return 0;
		/* seq_cst: also A2 of the fd handshake.  model: bus.pml
		 * A2-head. */
		uint64_t h = __atomic_load_n(&b->ctl->head, __ATOMIC_SEQ_CST);
		if (h > SK_BUS_SEQ_MAX)
			return sk_fail(-EBADMSG, "bus head %llu out of range", (unsigned long long)h);
		if (h <= p) {
			sub->stuck = false;
			return 0;
		}
		int r = sub_stuck(sub, s, w);
		if (r <= 0)
			return r;
	}
	return 2;
}

/* R3, R4: did the slot keep word w while we read it? */
static inline bool slot_unchanged(const struct sk_bus_slot *s, uint64_t w)
{
	/* R3.  Acquire fence: our payload reads happen before R4; pairs
	 * with the writer's release fence P4 (a byte from a newer writer
	 * implies R4 sees that writer's mark).  model: bus.pml R3/R4 - SPIN
	 * has no fences and no racing memcpy: its SC interleavings assume
	 * this pairing; without R4, mutant BUG_NO_R4 returns a message
	 * overwritten while it was read. */
	sk_fence_acquire();
	return sk_load_relaxed(&s->word) == w; /* R4 */
}

/* Bound the length of the message at pos with word w.  >= 0 the length,
 * SUB_RETRY if it was overwritten meanwhile, -EBADMSG. */
static ssize_t sub_len(shmkit_sub *sub, const struct sk_bus_slot *s, uint64_t w)
{
	/* Relaxed: ordered after R1 by its acquire; re-validated by R4.
	 * model: bus.pml R2 (SC in the model). */
	uint32_t len = sk_load_relaxed(&s->len);

	if (len <= sub->bus->max_msg)
		return len;
	if (!slot_unchanged(s, w))
		return SUB_RETRY;
	return sk_fail(-EBADMSG, "message length %u exceeds max_msg %u", len, sub->bus->max_msg);
}

/* Hand the caller the lost count and move past a delivered message. */
static inline void sub_deliver(shmkit_sub *sub, uint64_t *lost)
{
	if (lost)
		*lost = sub->lost;
	sub->lost = 0;
	/* Relaxed: statistics in our own entry. */
	sk_store_relaxed(&sub->ent->delivered, sk_load_relaxed(&sub->ent->delivered) + 1);
	sub_advance(sub, sub->pos + 1);
}

static ssize_t sub_copy(shmkit_sub *sub, uint64_t w, void *buf, size_t cap, uint64_t *lost)
{
	const struct sk_bus_slot *s = sk_bus_slot_at(sub->bus, sub->pos);
	ssize_t len = sub_len(sub, s, w);

	if (len < 0)
		return len;
	if ((size_t)len > cap) {
		if (!slot_unchanged(s, w))
			return SUB_RETRY;
		return sk_fail(-EMSGSIZE, "message of %zd bytes, buffer of %zu (it stays queued)",
		               len, cap);
	}
	if (len) /* buf may be NULL with cap 0; R2: may race a writer, R4 decides */
		memcpy(buf, s->data, (size_t)len);
	if (!slot_unchanged(s, w))
		return SUB_RETRY;
	sub_deliver(sub, lost);
	return len;
}

/* ---- subscriber: waiting -------------------------------------------------- */

static int sub_ready(void *arg)
{
	uint64_t w;
	return sub_locate(arg, &w);
}

/* Wait until sub_locate has something, in slices while a slot is stuck so
 * that the abandonment timer runs even if nobody publishes. */
static int sub_wait(shmkit_sub *sub)
{
	int waited = 0;
	int64_t deadline = sk_bus_lazy_deadline(&sub->deadline, sub->tmo);

	for (int round = 0;; round++) {
		/* Slices: SK_BUS_STUCK_NS / 4 while a slot is stuck, so the
		 * abandonment timer runs; SK_WAKE_SLICE_NS otherwise, so a
		 * publisher killed between its commit and its wake costs one
		 * slice, not the whole timeout. */
		int64_t now = sk_now_ns();
		int64_t slice = sub->stuck && deadline - now > SK_BUS_STUCK_NS / 4
		                ? now + SK_BUS_STUCK_NS / 4 : sk_slice(deadline);
		int r = sk_wait_for(&sub->bus->ctl->published, sub->wait, slice, sub_ready, sub, &waited);
		if (r != -ETIMEDOUT && r != -EAGAIN)
			return r;
		/* Nobody wakes a sleeper on a segment a peer truncated: each
		 * slice looks (guard.c). */
		if ((r = sk_map_check(sub->bus->seg)))
			return r;
		if (sk_now_ns() >= deadline)
			return !waited && !round ? -EAGAIN : -ETIMEDOUT;
	}
}

/* Retries that follow a peer's progress (a step budget spent on skip
 * records, a message overwritten while copied) are free this many times;
 * after that the caller's deadline is checked on each one, so a peer that
 * keeps the ring moving faster than we read cannot hold a call past its
 * timeout. */
#define SUB_FREE_RETRIES 64

/* 0 to go on retrying, else the result for a deadline that has passed:
 * -EAGAIN for a try-once call, -ETIMEDOUT otherwise. */
static int sub_expired(shmkit_sub *sub, unsigned tries)
{
	if (tries < SUB_FREE_RETRIES || sub->tmo < 0 ||
	    sk_now_ns() < sk_bus_lazy_deadline(&sub->deadline, sub->tmo))
		return 0;
	return sub->tmo == 0 ? sk_fail(-EAGAIN, "no message waiting")
	                     : sk_fail(-ETIMEDOUT, "messages overwritten faster than read");
}

/* Looks before sub_wait reads a clock (quick polls, wait.h).  The result
 * of the last look. */
static int sub_quick_polls(shmkit_sub *sub, uint64_t *w)
{
	bool spins = sub->tmo != 0 && sk_quick_polls_pay(sub->wait);
	int r = 0;

	for (unsigned i = 0; spins && i < SK_QUICK_POLLS && r == 0; i++) {
		sk_cpu_relax();
		r = sub_locate(sub, w);
	}
	return r;
}

/* Locate the next message, waiting up to deadline: its word, or < 0. */
static int sub_next(shmkit_sub *sub, uint64_t *w)
{
	for (unsigned tries = 0;; tries++) {
		if (sk_map_lost(sub->bus->seg)) /* shrunk by a peer: guard.c */
			return sk_map_check(sub->bus->seg);
		int r = sub_locate(sub, w);
		if (r == 0)
			r = sub_quick_polls(sub, w);
		if (r == 1 || r < 0)
			return r < 0 ? r : 0;
		if (r == 0 && (r = sub_wait(sub)))
			return r == -EAGAIN ? sk_fail(-EAGAIN, "no message waiting") : r;
		if (r == 2 && (r = sub_expired(sub, tries)))
			return r;
	}
}

ssize_t shmkit_sub_recv(shmkit_sub *sub, void *buf, size_t cap, uint64_t *lost, int64_t timeout_ns)
{
	if (SK_UNLIKELY(!sub || (!buf && cap)))
		return sk_fail(-EINVAL, "sub or buf is NULL");
	if (SK_UNLIKELY(sub->peeked))
		return sk_fail(-EINVAL, "release the peeked message first");
	sub->tmo = timeout_ns;
	sub->deadline = INT64_MIN;
	for (unsigned tries = 0;; tries++) {
		uint64_t w;
		int err = sub_expired(sub, tries);
		if (err || (err = sub_next(sub, &w)))
			return err;
		ssize_t n = sub_copy(sub, w, buf, cap, lost);
		if (sk_map_lost(sub->bus->seg)) /* what was copied may be zeros */
			return sk_map_check(sub->bus->seg);
		if (n != SUB_RETRY)
			return n;
	}
}

ssize_t shmkit_sub_peek(shmkit_sub *sub, const void **buf, uint64_t *lost, int64_t timeout_ns)
{
	if (!sub || !buf)
		return sk_fail(-EINVAL, "sub or buf is NULL");
	if (sub->peeked)
		return sk_fail(-EINVAL, "release the peeked message first");
	sub->tmo = timeout_ns;
	sub->deadline = INT64_MIN;
	for (unsigned tries = 0;; tries++) {
		uint64_t w;
		int err = sub_expired(sub, tries);
		if (err || (err = sub_next(sub, &w)))
			return err;
		const struct sk_bus_slot *s = sk_bus_slot_at(sub->bus, sub->pos);
		ssize_t len = sub_len(sub, s, w);
		if (len == SUB_RETRY || (len >= 0 && !slot_unchanged(s, w)))
			continue;
		if (len < 0)
			return len;
		if (lost)
			*lost = sub->lost;
		sub->lost = 0;
		sub->peeked = true;
		sub->peek_word = w;
		*buf = s->data;
		return len;
	}
}

int shmkit_sub_release(shmkit_sub *sub)
{
	if (!sub || !sub->peeked)
		return sk_fail(-EINVAL, "no message peeked");
	sub->peeked = false;
	bool same = slot_unchanged(sk_bus_slot_at(sub->bus, sub->pos), sub->peek_word);
	sub_deliver(sub, NULL); /* peek handed out the lost count already */
	if (same)
		return 0;
	sub_count_lost(sub, 1);
	return sk_fail(-ESTALE, "the message was overwritten while it was read");
}

/* ---- subscriber: join and leave ------------------------------------------- */

static struct sk_bus_sub_ent *sub_take_entry(shmkit_bus *b, shmkit_sub *sub)
{
	int i = sk_bus_ent_take(b, SK_PEER_BUS_SUB, &b->subs[0].owner, sizeof(b->subs[0]),
	                        b->nsubs_max, b->held);

	if (i < 0)
		return NULL;
	b->held[i / 64] |= UINT64_C(1) << (i % 64);
	struct sk_bus_sub_ent *e = &b->subs[i];
	/* A dead owner may have left its fd armed: take the display flag
	 * back.  Relaxed: display only. */
	if (sk_exchange(&e->armed, 0, __ATOMIC_RELAXED))
		sk_fetch_add(&b->ctl->armed, UINT32_MAX, __ATOMIC_RELAXED);
	sub->owner = sk_bus_ent_claim(&e->owner);
	sub->idx = i;
	return e;
}

/* First sequence a joiner reads when head is h (bus.h, "Back-pressure":
 * in back-pressure mode the oldest retained is one younger). */
static uint64_t sub_first(const shmkit_bus *b, int from, uint64_t h)
{
	uint64_t keep = b->delivery == SHMKIT_BUS_BACKPRESSURE ? b->cap - 1 : b->cap;
	if (from == SHMKIT_FROM_NEWEST)
		return h;
	return h > keep ? h - keep : 0;
}

int shmkit_bus_subscribe(shmkit_sub **out, shmkit_bus *bus, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &sk_bus_default_opts;
	int err;

	sk_clear_detail();
	if (!out || !bus)
		return sk_fail(-EINVAL, "out or bus is NULL");
	*out = NULL;
	if ((err = sk_bus_check_opts(o, false)))
		return err;
	if ((err = sk_bus_peer_ready(bus)))
		return err;
	shmkit_sub *sub = calloc(1, sizeof(*sub));
	if (!sub)
		return -ENOMEM;
	struct sk_bus_sub_ent *e = sub_take_entry(bus, sub);
	if (!e) {
		free(sub);
		return sk_fail(-ENOSPC, "bus subscriber table full (%u live subscribers; see "
		               "max_subscribers)", bus->nsubs_max);
	}
	struct sk_bus_ctl *c = bus->ctl;
	/* J1.  Relaxed fills of our own entry, then a seq_cst store of
	 * ACTIVE (the join handshake; pairs with bp_rescan's acquire). */
	sk_store_relaxed(&e->lost, 0);
	sk_store_relaxed(&e->delivered, 0);
	uint64_t h0 = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
	if (h0 > SK_BUS_SEQ_MAX)
		h0 = 0; /* corrupt head: the checks on read will report it */
	sk_store_relaxed(&e->cursor, sub_first(bus, o->from, h0));
	__atomic_store_n(&e->state, SK_BUS_ENT_ACTIVE, __ATOMIC_SEQ_CST);
	/* J2, J3.  seq_cst: the join handshake (bus.h, "Back-pressure"). */
	__atomic_fetch_add(&c->joins, 1, __ATOMIC_SEQ_CST);
	uint64_t h = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
	if (h < h0 || h > SK_BUS_SEQ_MAX)
		h = h0;
	sub->bus = bus;
	sub->ent = e;
	sub->pid = getpid();
	sub->wait = opts ? o->wait : bus->wait;
	sub->wfd = NULL;
	sub->pos = sub_first(bus, o->from, h);
	/* Release: as in sub_advance. */
	sk_store_release(&e->cursor, sub->pos);
	bus->nsubs++;
	*out = sub;
	return 0;
}

static void sub_disarm(shmkit_sub *sub)
{
	/* Relaxed: display only (the count of armed fds in stats). */
	if (sk_exchange(&sub->ent->armed, 0, __ATOMIC_RELAXED))
		sk_fetch_add(&sub->bus->ctl->armed, UINT32_MAX, __ATOMIC_RELAXED);
}

int shmkit_bus_unsubscribe(shmkit_sub *sub)
{
	if (!sub)
		return 0;
	if (sub->pid == getpid()) {
		sub_disarm(sub);
		/* Relaxed: published by the release store in
		 * sk_bus_ent_leave. */
		sk_store_relaxed(&sub->ent->state, SK_BUS_ENT_FREE);
		sk_bus_ent_leave(sub->bus, &sub->ent->owner, sk_bus_sub_lock((unsigned)sub->idx));
		sub->bus->held[sub->idx / 64] &= ~(UINT64_C(1) << (sub->idx % 64));
		sub->bus->nsubs--;
	}
	sk_waitfd_close(sub->wfd);
	free(sub);
	return 0;
}

/* ---- subscriber: the pollable fd ------------------------------------------ */

/* Is a message (or a stuck slot whose timer ran out) waiting for this
 * subscription?  sk_waitfd_service_arm's look; also keeps the display
 * flag `armed` (stats) up to date. */
static int sub_fd_ready(void *arg)
{
	shmkit_sub *sub = arg;
	uint64_t w;

	/* Relaxed: display only. */
	if (!sk_exchange(&sub->ent->armed, 1, __ATOMIC_RELAXED))
		sk_fetch_add(&sub->bus->ctl->armed, 1, __ATOMIC_RELAXED);
	int r = sub_locate(sub, &w);
	bool due = sub->stuck && sk_now_ns() - sub->stuck_since >= SK_BUS_STUCK_NS;
	if (r == 0 && !due)
		return 0;
	sub_disarm(sub);
	return r < 0 ? r : 1;
}

int shmkit_sub_fd(shmkit_sub *sub)
{
	if (!sub || sub->pid != getpid())
		return sk_fail(-EINVAL, "sub is NULL or belongs to another process");
	return sk_waitfd_service_fd(&sub->wfd, &sub->bus->ctl->published, sub_fd_ready, sub);
}

int shmkit_sub_ack_fd(shmkit_sub *sub)
{
	if (!sub || !sub->wfd)
		return sk_fail(-EINVAL, "no fd on this subscription (call shmkit_sub_fd)");
	if (sub->pid != getpid())
		return sk_fail(-EINVAL, "the subscription belongs to another process");
	return sk_waitfd_service_arm(sub->wfd, &sub->bus->ctl->published, sub_fd_ready, sub);
}
