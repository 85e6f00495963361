/*
 * chan_msg.c - a channel's messages: the MPMC and SPSC protocols, claims,
 * SPSC roles, publication, waiting, the message calls and the pollable
 * fd.  The byte layout is in chan.h; what a crash leaves and how it is
 * recovered, owners included, is the essay at the top of chan_recover.c.
 * The hot path (send, recv, reserve, commit, peek, release and the claim
 * and publication helpers they inline) lives in this one file.
 *
 * ---- MPMC protocol (a Vyukov bounded queue with named claims) ----------
 *
 * Each slot carries a 64-bit seq word = position | state | claimer id (chan.h).
 * A producer claims position t as in the textbook queue: by a CAS of
 * tail t -> t+1 after seeing the slot FREE(t); it then writes the slot
 * and publishes it.  What the textbook queue lacks is a way to tell who
 * owns a claimed position, so that a dead owner can be recognised
 * (chan_recover.c): before the CAS, the producer stores its claim record - the
 * word WRITING(t, its id) - in its statistics entry (chan.h), a line
 * only it writes.  The slot itself stays FREE(t) until the publication,
 * a CAS FREE(t) -> FULL(t) (version 8; up to 7 the claim was a CAS of
 * the slot word and tail a hint: measured, that early locked operation
 * on a line the consumers poll cost the two-producer, two-consumer
 * throughput half of Vyukov's).  tail moves only by claims; head stays a
 * hint that consumers help along, as before.
 *
 *   producer (send / reserve + commit)
 *     P1 t = load_acquire(tail)
 *     P2 w = load_acquire(slot[t].seq)
 *        FREE(t):           P3 record = WRITING(t, me)        relaxed
 *                           P4 CAS tail t -> t+1              acq_rel, the claim
 *                              (fails: t = the new tail, back to P2)
 *        claimed t, or a position past t: tail was stale; reload it
 *        a position t - capacity: full -> wait on not_full
 *     P6 write payload; store_release len
 *     P7 CAS seq FREE(t) -> FULL(t)                           seq_cst
 *     P8 sent += 1; sk_ec_notify(not_empty): += 1 only if a consumer armed
 *   A handle without an entry (every entry held by live handles; embedded
 *   channels have none) has no record: after P4 it names itself in the
 *   slot, P3' CAS FREE(t) -> WRITING(t, me), and P7 is a CAS from that
 *   word, as every claim was up to version 6.
 *
 *   consumer (peek + release)
 *     C1 h = load_acquire(head)                              a hint
 *     C2 w = load_acquire(slot[h].seq)
 *        FULL(h):           C3 CAS seq w -> READING(h, me)   acquire
 *                           C4 CAS head h -> h+1             acq_rel help
 *        READING(h) or a position past h: head is stale; CAS head h -> h+1
 *        FREE(h), WRITING(h), READING(h - capacity): empty -> wait on not_empty
 *     C5 read len (<= max_msg, else -EBADMSG) and the payload
 *     C6 CAS seq READING(h, me) -> FREE(h + capacity)        seq_cst
 *     C7 received += 1; sk_ec_notify(not_full)
 *
 *   consumer (recv: a copy out, no claim window)
 *     C1, C2 as above; FULL(h): read len, copy the payload out, then
 *     C3' CAS seq FULL(h) -> FREE(h + capacity)              seq_cst
 *        (fails: another consumer took it; discard the copy, back to C2)
 *     C4, C7 as above
 *   The CAS compares the whole word, and a position never repeats: if it
 *   succeeds, the slot said FULL(h) from C2 to C3', so no producer wrote
 *   it during the copy (a producer writes only after claiming FREE).  One
 *   read-modify-write on the slot instead of two, and nothing to recover
 *   if the consumer dies before C3': the message stays for the others.
 *
 * Pairings.  P7 (seq_cst) -> C2 (acquire): a consumer that sees FULL(t)
 * sees the payload and len written before it.  C6 and C3' (seq_cst) ->
 * P2 (acquire; P4's acquire chains it): a producer that sees FREE(h +
 * capacity) overwrites the slot only after the consumer's reads of it are
 * done.  P4 (release) -> a reclaimer's acquire load of tail: the record
 * P3 is visible to whoever sees the claim.  P8/C7 notify the
 * other side's sk_wait_for (wait.h) only if it armed its event count:
 * P7/C6/C3' are seq_cst RMWs and the waiter arms (seq_cst) before it
 * tests; the Dekker argument of sync.c ("Services") is why no wake-up is
 * lost.  head is a hint: every consumer decision is taken on the slot
 * word, never on head alone; its acquire/release only keeps it from
 * running ahead of the claims that moved it (index_help).  tail is the
 * producers' claim; their publication is still decided on the slot word.
 *
 * Ordering guarantees.  Positions are claimed in order (the CAS of tail),
 * so one producer's messages occupy increasing positions, and a consumer
 * claims increasing positions: per-producer FIFO holds for every
 * consumer.  Each position is claimed by exactly one producer (P4) and
 * one consumer (the CAS C3 or C3'), so each message is received once.
 *
 * -EMSGSIZE on recv leaves the message queued: the consumer reads len
 * before claiming (C3), so it re-checks seq afterwards, seqlock style (a
 * len read from a later lap would come with a changed seq); the len store
 * P6 is a release so that a len from the next lap is never seen with the
 * old seq.
 *
 * Abort gives the claimed position up: FREE(t) (or WRITING(t, me)) ->
 * FREE(t + capacity), as if it had been consumed.  Consumers skip it by the "position past h"
 * rule, producers refill it a lap later.  No reader ever sees a
 * half-written message.
 *
 * ---- SPSC protocol (SHMKIT_CHAN_SPSC) ----------------------------------
 *
 * One producer, one consumer: no claim at all.  The producer keeps a
 * private copy of head and reads the shared head (acquire, pairs with the
 * consumer's release store of head) only when its copy says full; it
 * writes the payload and len, then store_release the slot's seq =
 * FULL(t) (pairs with the consumer's acquire load of that seq), then
 * moves tail (relaxed: only the producer itself and statistics read it).
 * The consumer polls the seq of the slot at head - the same cache line
 * as the message, so a message and its "ready" flag cross between cores
 * in one transfer, and the producer's tail line never bounces - reads,
 * then store_release head.  It keeps head in the handle while it holds
 * the role (loaded when it takes the role) and never loads the shared
 * word on its hot path: the producer reads head's line when its copy
 * says full, just before it publishes, and a poll that loaded that line
 * then would wait for it to come back (one cross-core transfer every
 * capacity messages: README "Performance").  The consumer never writes
 * seq: a slot at position h is empty while its seq is FREE(h) (first
 * lap, as the creator left it) or FULL(h - capacity) (the previous
 * lap's message, consumed); FULL(h) is a message; anything else is
 * corruption.  No read-modify-write on indices or slots; the one RMW per
 * message is the event count increment that lets a blocked peer sleep
 * (wait.h needs the count to move).  Statistics come from the indices:
 * sent = tail, received = head.
 *
 * One at a time is enforced, not assumed: two producers would race on
 * tail and lose or duplicate messages.  The first send or reserve through
 * a handle takes the producer role - a CAS of the role word (chan.h) from
 * 0 to this handle's (pid, peer id) - and the first recv or peek the
 * consumer role; close gives it back.  A role held by another live
 * handle, in this process or another, is -EBUSY.  A role whose holder's
 * peer lock is gone (peer.h: the kernel dropped it at the holder's death)
 * is taken over (counted in `reclaimed`), so a crashed peer can be
 * replaced at once; a new producer then reconciles tail with the slots
 * (spsc_reconcile_tail: its predecessor may have died between publishing
 * a slot and moving tail).  After that first call the handle only tests a
 * private flag: the hot path touches no extra shared line.  The CAS that
 * takes a role is an acquire and the release that gives it back is a
 * release, so the next holder sees the previous one's last index store
 * (for a dead holder there is nothing to pair with: its stores were all
 * made before it died, and the takeover CAS reads the word it left).
 * A forked child does not inherit its parent's roles.
 *
 * ---- Models ---------------------------------------------------------------
 *
 * models/mpmc.pml and models/spsc.pml (make models; SPIN) check these
 * protocols with a process allowed to die before every step: each message
 * delivered at most once, in per-producer order, never torn, nothing
 * committed lost beyond the losses documented in chan_recover.c, no lost
 * wake-up, and a live producer's P7 never fails (its claim is never
 * reclaimed: mutants BUG_NO_RECORD, BUG_RECORD_LATE, BUG_ANY_DEAD_RECORD).
 * models/mpmc_owner.pml checks owner tokens (chan_recover.c, "Owners"): an
 * owned consumer killed after its peek and resumed by its successor, an
 * owned producer killed anywhere in commit_tag with a reclaimer and a
 * successor that resends from owner_tag + 1 - every message delivered
 * exactly once.
 * Comments "model: FILE STEP" here and in chan_recover.c name the model
 * step an atomic stands for.  SPIN's interleavings are sequentially
 * consistent: where such a comment says "SC in the model", the C11 order it
 * uses (relaxed, acquire/release pairs, fences) is assumed by the model,
 * not checked.
 * Not modelled: -EMSGSIZE (len_stable), abort (P7 to FREE(t + capacity)
 * instead of FULL(t)), the claim P3' of a handle without an entry,
 * purge_stale, id and position wrap-around, and the statistics.
 * Found by the model: a handle that lost its lock (closefrom) while
 * stalled between P4 and P7 still does its payload copy and its P6 len
 * store after its claim was reclaimed; if the slot was claimed again
 * meanwhile, a consumer can read that message torn before the stale P7
 * fails (-ESTALE): the CAS from the claim word guards the seq word only
 * (mpmc.pml with MAXLOSS=1).
 */
#include <string.h>
#include <time.h>

#include "chan_int.h"

#define SK_CHAN_RECLAIM_NS 50000000LL /* a claimed slot blocks this long before its owner is checked */
#define SK_CHAN_MAX_RETRY (1u << 20)  /* consecutive index moves before -EBADMSG */
#define SK_CHAN_WATCH_POLLS 64u       /* a poller's calls per clock read (watch) */

/* ---- MPMC claims -------------------------------------------------------- */

SK_COLD int sk_chan_corrupt_slot(const shmkit_chan *ch, uint64_t index, uint64_t w, const char *who)
{
	return sk_fail(-EBADMSG, "%s index %llu meets slot word %016llx (position %llu, state %u): "
	               "corrupt channel", who, (unsigned long long)index, (unsigned long long)w,
	               (unsigned long long)sk_seq_pos(w), sk_seq_state(w));
}

static SK_COLD int index_runaway(const char *who)
{
	return sk_fail(-EBADMSG, "%s index moved %u times in a row: corrupt or hostile peer",
	               who, SK_CHAN_MAX_RETRY);
}

/* A slot position seen from an index: -cap, 0 or a positive multiple of
 * cap (chan.h invariants); anything else is corruption. */
static inline bool diff_ok(const shmkit_chan *ch, int64_t d)
{
	return d >= -(int64_t)ch->cap && (d & (int64_t)ch->mask) == 0;
}

/* Move an index from i to i + 1 if it is still i; i gets the new value
 * (the current one when the CAS fails).
 *
 * Acq_rel on success, acquire on failure; the index loads (P1/C1) are
 * acquire.  Whoever moves an index past position p has first seen p's
 * slot claimed (its own claim CAS, or an acquire load of the slot word),
 * and the moves of one index form a chain of read-modify-writes.  So a
 * side that reads index i (acquire) also sees every claim below i: it
 * never finds the slot of i - capacity still FREE (unclaimed), which it
 * would have to report as corruption.  With relaxed moves, ARM or POWER
 * could show the index ahead of the claim that justified it.  (x86: the
 * loads are plain moves and the CAS a locked instruction either way.)
 * model: mpmc.pml P4 / C4 (SC in the model: this acq_rel chain is
 * argued here, not checked). */
static inline void index_help(uint64_t *index, uint64_t *i)
{
	if (sk_cas(index, i, *i + 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		(*i)++;
}

/* A claim attempt that did not claim leaves no record naming it (rec:
 * the record if this call stored one, else NULL): a reclaimer must not
 * take a position another producer won for ours (reclaim_claim waits
 * while a live record names it).  Relaxed: only this handle writes its
 * record; a reclaimer that reads the old value waits one more slice. */
static inline int claim_none(uint64_t *rec, int r)
{
	if (rec)
		sk_store_relaxed(rec, 0);
	return r;
}

/* The slot s says FREE(p) (w), p a lap behind tail: a claim in progress
 * - unless head has passed p, which only a consumer that took p moves it
 * past (the slot said FREE(p + capacity) before that): corruption.  Rare
 * (a whole lap claimed during one write), so head's line is read only
 * then.  Acquire: pairs with index_help's release chain, so the slot is
 * read again after it: what we read first may predate the take. */
static SK_COLD bool free_behind_head(const shmkit_chan *ch, struct sk_chan_slot *s,
                                     uint64_t w, uint64_t p)
{
	if ((int64_t)(sk_load_acquire(&ch->ctl->head) - p) <= 0)
		return false;
	/* Acquire: orders this load after the head load above. */
	return sk_load_acquire(&s->seq) == w;
}

/* Producer: claim position tail.  1 claimed, 0 full, < 0 corrupt. */
static int mpmc_claim_send(void *arg)
{
	struct attempt *a = arg;
	shmkit_chan *ch = a->ch;
	/* The claim record of this handle's entry; none: the fallback
	 * claim (P3', file top). */
	uint64_t *rec = ch->stat ? &ch->stat->claim : NULL, *stored = NULL;
	/* P1.  Acquire: pairs with the release of the claim CAS P4 (and the
	 * release sequence of the later ones): a producer that reads tail t
	 * sees the slot words that allowed every claim below t, so the slot
	 * of t never shows a position older than t - capacity.  model:
	 * mpmc.pml P1, one step with A0 (SC in the model). */
	uint64_t t = sk_load_acquire(&ch->ctl->tail);

	a->blocked = false;
	for (unsigned n = 0; n < SK_CHAN_MAX_RETRY; n++) {
		struct sk_chan_slot *s = sk_chan_slot_at(ch, t);
		/* P2.  Acquire: pairs with the consumer's release of FREE
		 * (C3'/C6): its reads of the old message are done.  model:
		 * mpmc.pml P2 (SC in the model). */
		uint64_t w = sk_load_acquire(&s->seq);
		int64_t d = sk_seq_diff(sk_seq_pos(w), t);
		unsigned st = sk_seq_state(w);

		if (SK_UNLIKELY(!diff_ok(ch, d)))
			return claim_none(stored, sk_chan_corrupt_slot(ch, t, w, "tail"));
		if (d == 0 && st == SK_SLOT_FREE) {
			if (a->dry)
				return 1;
			uint64_t mine = sk_seq_make(t, SK_SLOT_WRITING, ch->peer.id);
			/* P3: the claim record, before the claim.  Relaxed: the
			 * release of P4 publishes it.  model: mpmc.pml P3. */
			if (rec) {
				sk_store_relaxed(rec, mine);
				stored = rec; /* cleared if this call claims nothing */
			}
			/* P4: the claim.  Acq_rel on success: release publishes
			 * the record to a reclaimer's acquire load of tail
			 * (reclaim_claim); acquire, as P1.  Acquire on failure:
			 * t is the new tail, read as P1.  model: mpmc.pml P4
			 * (SC in the model). */
			if (!sk_cas(&ch->ctl->tail, &t, t + 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				continue;
			SK_CRASH_POINT("chan.mpmc.claimed");
			a->pos = t;
			if (rec) {
				a->word = w; /* the slot stays FREE(t): P7 is a CAS from it */
				return 1;
			}
			/* P3' (no entry, so no record): name ourselves in the
			 * slot.  Acquire on success: as P2.  It fails only if a
			 * reclaimer took position t for a dead claim meanwhile
			 * (reclaim_claim: no record names it): nothing was
			 * written, claim another (relaxed on failure). */
			if (!sk_cas(&s->seq, &w, mine, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				t = sk_load_acquire(&ch->ctl->tail); /* acquire: as P1 */
				continue;
			}
			a->word = mine;
			return 1;
		}
		if (d >= 0) { /* t is claimed (or long done): our tail is stale */
			/* Acquire: as P1. */
			uint64_t t2 = sk_load_acquire(&ch->ctl->tail);
			if (t2 == t) /* claimed at t, yet tail never passed t */
				return claim_none(stored, sk_chan_corrupt_slot(ch, t, w, "tail"));
			t = t2;
			continue;
		}
		/* The slot still holds position t - capacity: full.  Its
		 * consumer's claim READING, or a producer's claim of t -
		 * capacity still FREE or WRITING, blocks us: watched. */
		if (st == SK_SLOT_FREE && free_behind_head(ch, s, w, t - ch->cap))
			return claim_none(stored, sk_chan_corrupt_slot(ch, t, w, "tail"));
		a->blocked = st != SK_SLOT_FULL;
		a->blocker = w;
		return claim_none(stored, 0);
	}
	return claim_none(stored, index_runaway("tail"));
}

/* The len of a FULL slot is read before claiming it; a len from a later
 * lap comes with a changed seq.  true if w still holds. */
static inline bool len_stable(struct sk_chan_slot *s, uint64_t w)
{
	/* Acquire fence: orders the len load before the re-read of seq;
	 * pairs with the producer's release store of len (P6), which follows
	 * its claim CAS, so a len of a later claim implies a changed seq. */
	sk_fence_acquire();
	/* Relaxed: ordered by the fence above. */
	return sk_load_relaxed(&s->seq) == w;
}

/* Consumer: claim the message at head.  1 claimed, 0 empty, < 0 error. */
/* The consumer's copy of a message it has not taken yet (C3'): a plain
 * memcpy that a producer's write races with only when another consumer
 * took the message and a lap went by meanwhile - then the CAS that
 * follows fails and the bytes are discarded (ThreadSanitizer reports
 * that race: scripts/tsan.supp, chan_copy_out). */
static inline void chan_copy_out(void *to, const void *from, size_t n)
{
	memcpy(to, from, n);
}

static int mpmc_claim_recv(void *arg)
{
	struct attempt *a = arg;
	shmkit_chan *ch = a->ch;
	/* C1.  Acquire: pairs with the release of index_help() (see there);
	 * a hint otherwise: the slot word below decides.  model: mpmc.pml
	 * C1, one step with A0 (SC in the model). */
	uint64_t h = sk_load_acquire(&ch->ctl->head);

	a->blocked = false;
	for (unsigned n = 0; n < SK_CHAN_MAX_RETRY; n++) {
		struct sk_chan_slot *s = sk_chan_slot_at(ch, h);
		/* C2.  Acquire: pairs with the producer's release store of
		 * FULL (P7): len and payload are visible.  model: mpmc.pml C2
		 * (SC in the model). */
		uint64_t w = sk_load_acquire(&s->seq);
		int64_t d = sk_seq_diff(sk_seq_pos(w), h);
		unsigned st = sk_seq_state(w);

		if (SK_UNLIKELY(!diff_ok(ch, d)))
			return sk_chan_corrupt_slot(ch, h, w, "head");
		if (d == 0 && st == SK_SLOT_FULL) {
			if (a->dry)
				return 1;
			/* Relaxed: ordered by C2; validated by the CAS below
			 * or by len_stable().  model: mpmc.pml C2, one step
			 * with the load above (SC in the model). */
			uint32_t len = sk_load_relaxed(&s->len);
			if (SK_UNLIKELY(len > a->bufcap || len > ch->max_msg)) {
				if (!len_stable(s, w))
					continue;
				if (len > ch->max_msg)
					return sk_fail(-EBADMSG, "message length %u exceeds max_msg %u",
					               len, ch->max_msg);
				a->len = len;
				return sk_fail(-EMSGSIZE, "message of %u bytes, buffer of %zu", len, a->bufcap);
			}
			if (a->copy_to) {
				/* recv: copy the message out while the slot says
				 * FULL(h), then take it and free the slot in one
				 * CAS FULL(h) -> FREE(h + capacity) (seqlock style:
				 * the CAS compares the whole word, whose position
				 * never repeats, so if it succeeds no producer
				 * wrote the slot during the copy; if it fails,
				 * another consumer took the message and the bytes
				 * copied are discarded).  No READING window: a
				 * consumer killed before the CAS leaves the message
				 * to the others.  C3'.  seq_cst on success (so
				 * release): pairs with a producer's acquire P2 (P4 chains it),
				 * our copy is done before it may overwrite; and it
				 * is the seq_cst RMW C7's sk_ec_notify requires
				 * (sync.c, "Services").  Relaxed on failure: we
				 * re-read at C2.  model: mpmc.pml C3' (SC in the
				 * model). */
				if (len)
					chan_copy_out(a->copy_to, sk_chan_payload(s), len);
				SK_CRASH_POINT("chan.mpmc.copied");
				if (!sk_cas(&s->seq, &w, sk_seq_make(h + ch->cap, SK_SLOT_FREE, 0),
				            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
					continue;
				SK_CRASH_POINT("chan.mpmc.taken");
				a->pos = h;
				index_help(&ch->ctl->head, &h); /* C4 */
				a->len = len;
				a->taken = true;
				return 1;
			}
			uint64_t mine = sk_seq_make(h, SK_SLOT_READING, ch->peer.id);
			/* C3 (peek).  Acquire on success: as C2.  Relaxed on
			 * failure: we re-read at C2.  model: mpmc.pml C3 (SC in
			 * the model). */
			if (!sk_cas(&s->seq, &w, mine, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				continue;
			SK_CRASH_POINT("chan.mpmc.taken");
			index_help(&ch->ctl->head, &h); /* C4 */
			a->pos = sk_seq_pos(mine);
			a->word = mine;
			a->len = len;
			return 1;
		}
		if (d > 0 || (d == 0 && st == SK_SLOT_READING)) { /* h is taken: head is stale */
			index_help(&ch->ctl->head, &h);
			continue;
		}
		if (d == 0) { /* FREE(h) or WRITING(h): nothing published at h yet */
			/* Watched: once tail has passed h, a claim (FREE:
			 * named by a record; WRITING: by the word) blocks us. */
			a->blocked = true;
			a->blocker = w;
			return 0;
		}
		if (st != SK_SLOT_READING) /* only a slow consumer may hold h - capacity */
			return sk_chan_corrupt_slot(ch, h, w, "head");
		a->blocked = true;
		a->blocker = w;
		return 0;
	}
	return index_runaway("head");
}

/* ---- SPSC "claims": free space / a message at the private index -------- */

static SK_COLD int spsc_corrupt(uint64_t head, uint64_t tail, uint64_t cap)
{
	return sk_fail(-EBADMSG, "head %llu and tail %llu are more than capacity %llu apart",
	               (unsigned long long)head, (unsigned long long)tail, (unsigned long long)cap);
}

static int spsc_claim_send(void *arg)
{
	struct attempt *a = arg;
	shmkit_chan *ch = a->ch;
	/* Relaxed: tail is written only by this (the single) producer. */
	uint64_t t = sk_load_relaxed(&ch->ctl->tail);

	a->blocked = false;
	if (SK_UNLIKELY(t - ch->cached_head >= ch->cap)) {
		/* Acquire: pairs with the consumer's release store of head:
		 * its reads of the slots it freed are done.  model: spsc.pml
		 * S-P1 (SC in the model). */
		uint64_t h = sk_load_acquire(&ch->ctl->head);
		if (t - h > ch->cap)
			return spsc_corrupt(h, t, ch->cap);
		ch->cached_head = h;
		if (t - h == ch->cap)
			return 0;
	}
	a->pos = t;
	return 1;
}

/* The slot at head is empty.  Once per call, and only when the call has
 * to wait longer than claim_wait's first polls (the tail line must not
 * be pulled across while a peer's reply may be about to land, nor bounce
 * while a consumer spins), check head against tail, so a corrupt head is
 * reported rather than waited on.  0, or -EBADMSG. */
static SK_COLD int spsc_empty(struct attempt *a, uint64_t h)
{
	if (!a->check_tail)
		return 0;
	a->check_tail = false;
	/* Relaxed: a bounds check only; no message is learned through it.
	 * The consumer learns of messages from the slots, so it may be one
	 * ahead of a tail store it has not seen yet: our acquire of the seq
	 * of position p (which made head p + 1) also made the producer's
	 * earlier store tail = p visible, so tail >= head - 1.  Valid:
	 * head - 1 <= tail <= head + capacity. */
	uint64_t t = sk_load_relaxed(&a->ch->ctl->tail);
	return t + 1 - h > a->ch->cap + 1 ? spsc_corrupt(h, t, a->ch->cap) : 0;
}

static int spsc_claim_recv(void *arg)
{
	struct attempt *a = arg;
	shmkit_chan *ch = a->ch;
	/* The consumer role's own copy of head: its polls never load the
	 * head line, which the producer reads whenever its cached head says
	 * full - a poll that loads it then waits for that line to cross
	 * (README "Performance": the 2-slot anomaly).  The fd's readiness
	 * test (dry; maybe another thread, maybe before the role is taken)
	 * reads the shared word.  Relaxed: head is written only by the
	 * single consumer. */
	uint64_t h = a->dry ? sk_load_relaxed(&ch->ctl->head) : ch->head;
	struct sk_chan_slot *s = sk_chan_slot_at(ch, h);

	a->blocked = false;
	/* Acquire: pairs with the producer's release store of seq in
	 * publish(): the payload and len written before it are visible.
	 * model: spsc.pml S-C1 (SC in the model). */
	uint64_t w = sk_load_acquire(&s->seq);
	if (SK_UNLIKELY(w != sk_seq_make(h, SK_SLOT_FULL, 0))) {
		if (w == sk_seq_make(h - ch->cap, SK_SLOT_FULL, 0) ||
		    w == sk_seq_make(h, SK_SLOT_FREE, 0))
			return spsc_empty(a, h); /* last lap's message, or never written */
		return sk_fail(-EBADMSG, "slot word %#llx at head %llu is no SPSC state",
		               (unsigned long long)w, (unsigned long long)h);
	}
	/* Relaxed: ordered by the acquire load of seq above.  model:
	 * spsc.pml S-C2 (SC in the model). */
	uint32_t len = sk_load_relaxed(&s->len);
	if (SK_UNLIKELY(len > a->bufcap || len > ch->max_msg)) {
		if (len > ch->max_msg)
			return sk_fail(-EBADMSG, "message length %u exceeds max_msg %u", len, ch->max_msg);
		a->len = len;
		return sk_fail(-EMSGSIZE, "message of %u bytes, buffer of %zu", len, a->bufcap);
	}
	a->pos = h;
	a->len = len;
	return 1;
}

/* ---- SPSC roles (one producer handle, one consumer handle) ------------- */

static inline uint64_t *role_word(const shmkit_chan *ch, int side)
{
	return side == PROD ? &ch->ctl->producer : &ch->ctl->consumer;
}

static const char *const side_name[2] = { "producer", "consumer" };

/* Is the holder named by role word w alive?  Its peer id's lock says
 * (peer.h).  A word naming this handle's own id, which this handle does
 * not hold (role[side] is false), is a dead former holder's of that id. */
static bool role_alive(const shmkit_chan *ch, uint64_t w)
{
	uint32_t id = sk_role_id(w);

	return id != ch->peer.id && sk_peer_held(ch->seg, SK_PEER_CHAN + id) != 0;
}

/* A producer that died after publishing a slot and before moving tail
 * (publish(): seq, then tail) left tail behind a message: its successor
 * would overwrite it.  The consumer, which learns of messages from the
 * slots, may even have taken that message already: head is then tail + 1.
 * Bring tail up to head in that case, then move it over every slot
 * published at or past it, at most capacity - (tail - head).  Done on
 * every take of the producer role (a cold path): a clean handover finds
 * nothing to do. */
static SK_COLD int spsc_reconcile_tail(shmkit_chan *ch)
{
	/* Acquire: pairs with the consumer's release store of head.
	 * model: spsc.pml S-K1 (SC in the model). */
	uint64_t h = sk_load_acquire(&ch->ctl->head);
	/* Relaxed: the dead producer's stores are all done; the acquire
	 * loads of seq below pair with its release stores of them.
	 * model: spsc.pml S-K2 (tail), S-K3 (each seq), S-K4 (the store
	 * below); SC in the model.  Without this reconcile (mutant
	 * BUG_NO_RECONCILE) a committed message is overwritten. */
	uint64_t t = sk_load_relaxed(&ch->ctl->tail), t0 = t;

	if (t + 1 == h)
		t = h; /* the consumer took the message tail had not counted */
	if (t - h > ch->cap)
		return spsc_corrupt(h, t, ch->cap);
	while (t - h < ch->cap && sk_load_acquire(&sk_chan_slot_at(ch, t)->seq) == sk_seq_make(t, SK_SLOT_FULL, 0))
		t++;
	if (t != t0) /* Relaxed: as in publish(). */
		sk_store_relaxed(&ch->ctl->tail, t);
	ch->cached_head = h;
	return 0;
}

/* Take this side's role for the handle (first send/reserve or recv/peek).
 * 0, or -EBUSY while another live handle holds it. */
static SK_COLD int role_take(shmkit_chan *ch, int side)
{
	uint64_t *word = role_word(ch, side);
	uint64_t mine = sk_role_make(ch->pid, ch->peer.id);

	for (unsigned tries = 0; tries < 16; tries++) {
		/* Relaxed: only a guess for the CAS below, which orders.
		 * model: spsc.pml S-R1 takes this load, the liveness check
		 * and the CAS as one step (coarser than here; SC in the
		 * model). */
		uint64_t cur = sk_load_relaxed(word);
		if (cur && role_alive(ch, cur)) {
			uint32_t pid = sk_role_pid(cur);
			return sk_fail(-EBUSY, "SPSC channel: the %s role is held by %s %u "
			               "(one %s at a time; use an MPMC channel for more)",
			               side_name[side], pid == ch->pid ? "another handle of this process,"
			               : "live process", pid, side_name[side]);
		}
		/* Acquire on success: pairs with the release in
		 * sk_chan_role_drop(), so the previous holder's last store of
		 * tail (or head) is visible before this handle reads it. */
		if (sk_cas(word, &cur, mine, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			if (cur) /* Relaxed: a statistic. */
				sk_fetch_add(&ch->ctl->reclaimed, 1, __ATOMIC_RELAXED);
			ch->role[side] = true;
			ch->polls[side] = 0; /* a forked child's copy counted the parent's */
			/* Relaxed: after the acquire CAS above, which orders the
			 * previous holder's last store of head before this load;
			 * from here on only this handle moves head. */
			if (side == CONS)
				ch->head = sk_load_relaxed(&ch->ctl->head);
			return side == PROD ? spsc_reconcile_tail(ch) : 0;
		}
	}
	return sk_fail(-EBUSY, "SPSC channel: the %s role keeps changing hands", side_name[side]);
}

static void flush_polls(shmkit_chan *ch, int side);

/* Give the role back (close).  A word that no longer names us was taken
 * over: leave it. */
void sk_chan_role_drop(shmkit_chan *ch, int side)
{
	uint64_t mine = sk_role_make(ch->pid, ch->peer.id);

	if (!ch->role[side])
		return;
	flush_polls(ch, side);
	ch->role[side] = false;
	/* Release: pairs with the acquire CAS in role_take() of the next
	 * holder: our index stores come before the handover.  model:
	 * spsc.pml S-R2 (SC in the model). */
	sk_cas(role_word(ch, side), &mine, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* ---- publication -------------------------------------------------------- */

static SK_COLD int stale_claim(const char *what)
{
	return sk_fail(-ESTALE, "%s: this handle's claim was taken as dead meanwhile (its "
	               "peer lock was lost - a closed descriptor?); nothing was delivered", what);
}

/* Publish the message at pos, claimed with word (MPMC).  0, or -ESTALE:
 * the claim was taken from this handle as dead (its peer entry's lock was
 * lost: see peer.h), the message is not delivered. */
static inline int publish(shmkit_chan *ch, uint64_t pos, uint64_t word, size_t len)
{
	struct sk_chan_slot *s = sk_chan_slot_at(ch, pos);
	struct sk_chan_ctl *c = ch->ctl;

	if (sk_map_lost(ch->seg)) /* the payload went to a lost mapping */
		return sk_map_check(ch->seg);
	if (ch->spsc) {
		/* Relaxed: published by the release store of seq next.
		 * model: spsc.pml S-P2 (payload, then len). */
		sk_store_relaxed(&s->len, (uint32_t)len);
		/* Release: pairs with the consumer's acquire load of seq
		 * (spsc_claim_recv): payload and len are visible with it.
		 * model: spsc.pml S-P3, the commit point (SC in the model). */
		sk_store_release(&s->seq, sk_seq_make(pos, SK_SLOT_FULL, 0));
		SK_CRASH_POINT("chan.spsc.published");
		/* Relaxed: tail is read by this producer (and a successor that
		 * takes over the role: spsc_reconcile_tail) and by statistics
		 * only; no reader learns of a message through it.  model:
		 * spsc.pml S-P4 (SC in the model: a C11 successor may read
		 * an older tail, which the reconcile covers the same way). */
		sk_store_relaxed(&c->tail, pos + 1);
	} else {
		/* P6.  Release: see len_stable().  model: mpmc.pml P6 (the
		 * payload copy above is P5; SC in the model). */
		sk_store_release(&s->len, (uint32_t)len);
		SK_CRASH_POINT("chan.mpmc.written");
		/* P7.  seq_cst on success (so release): pairs with the
		 * consumer's acquire load C2, and is the seq_cst RMW that P8's
		 * sk_ec_notify requires (sync.c file top, "Services"; on x86 a
		 * lock cmpxchg either way).  A CAS from the word our claim left
		 * (FREE(t), or WRITING(t, me) after P3'), not a store: a handle
		 * wrongly taken for dead must not publish into a slot that was
		 * handed on (relaxed on failure: nothing was published).
		 * model: mpmc.pml P7, the commit point (SC in the model). */
		if (SK_UNLIKELY(!sk_cas(&s->seq, &word, sk_seq_make(pos, SK_SLOT_FULL, 0),
		                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)))
			return stale_claim("publish");
		/* A statistic, in this handle's entry (chan.h).  An embedded
		 * channel's owner counts for itself (rpc). */
		if (!ch->embedded)
			sk_chan_stat_count(ch, ST_SENT);
		/* P8: increments only if a consumer armed (after P7's seq_cst
		 * CAS; see wait.h).  model: mpmc.pml P8. */
		sk_ec_notify(&c->not_empty);
		return 0;
	}
	/* S-P5: after a release store, so the unconditional increment (see
	 * wait.h).  model: spsc.pml S-P5. */
	shmkit_ec_inc(&c->not_empty);
	return 0;
}

/* Hand the slot at pos back after reading it.  0, or -ESTALE (MPMC: the
 * claim was taken from this handle as dead; what it read may have been
 * overwritten meanwhile and must be discarded). */
static inline int consumed(shmkit_chan *ch, uint64_t pos, uint64_t word, bool taken)
{
	struct sk_chan_ctl *c = ch->ctl;

	if (sk_map_lost(ch->seg)) /* what was read may be the zeros of guard.c */
		return sk_map_check(ch->seg);
	if (ch->spsc) {
		/* Release: pairs with the producer's acquire load of head
		 * (spsc_claim_send): our reads of the slot are done.  model:
		 * spsc.pml S-C3, the delivery (SC in the model). */
		sk_store_release(&c->head, pos + 1);
		ch->head = pos + 1;
		/* S-C4: after a release store, so the unconditional increment
		 * (see wait.h).  model: spsc.pml S-C4. */
		shmkit_ec_inc(&c->not_full);
		return 0;
	}
	if (taken) { /* MPMC recv: the claim CAS C3' freed the slot already */
		if (!ch->embedded)
			sk_chan_stat_count(ch, ST_RECEIVED);
	} else {
		/* C6.  seq_cst on success (so release): pairs with the
		 * producer's acquire P2 (our reads are done), and is the
		 * seq_cst RMW C7's sk_ec_notify requires (sync.c, "Services").
		 * A CAS from our claim word, as in publish().  model: mpmc.pml
		 * C6, the delivery (SC in the model). */
		if (SK_UNLIKELY(!sk_cas(&sk_chan_slot_at(ch, pos)->seq, &word,
		                        sk_seq_make(pos + ch->cap, SK_SLOT_FREE, 0),
		                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)))
			return stale_claim("release");
		/* A statistic (not kept for embedded channels). */
		if (!ch->embedded)
			sk_chan_stat_count(ch, ST_RECEIVED);
	}
	/* C7: after the seq_cst CAS C3' or C6, so the conditional notify
	 * (see wait.h).  model: mpmc.pml C7. */
	sk_ec_notify(&c->not_full);
	return 0;
}

/* Give a claimed (or dead) position up as if consumed; wake both sides:
 * consumers blocked at it move past, producers may refill it.  model:
 * mpmc.pml R2 (after a reclaim). */
void sk_chan_give_up(shmkit_chan *ch)
{
	shmkit_ec_inc(&ch->ctl->not_empty);
	shmkit_ec_inc(&ch->ctl->not_full);
}

/* ---- waiting ------------------------------------------------------------- */

/* Count a call that found the channel full (PROD) or empty (CONS), and
 * say whether this one checks the SPSC indices (spsc_empty).  An SPSC
 * side's counter sits in the control block on the line of its index,
 * which the peer reads (the producer reads head when its cached copy says
 * full): a poller calling with timeout 0 in a loop would write that line
 * on every empty call.  So try-once calls add up in the handle and reach
 * the control block SK_CHAN_POLL_BATCH at a time (and at close, and with
 * the next call that waits), and only those check the indices: a corrupt
 * index is still reported, within SK_CHAN_POLL_BATCH polls.  An MPMC
 * handle counts in its own entry. */
#define SK_CHAN_POLL_BATCH 64u

static void flush_polls(shmkit_chan *ch, int side)
{
	uint64_t *n = side == PROD ? &ch->ctl->full_waits : &ch->ctl->empty_waits;

	if (!ch->polls[side])
		return;
	/* Relaxed: a statistic.  An SPSC side is one handle (its role), so
	 * a plain load and store do. */
	sk_store_relaxed(n, sk_load_relaxed(n) + ch->polls[side]);
	ch->polls[side] = 0;
}

static SK_COLD bool count_wait(shmkit_chan *ch, int side, int64_t timeout_ns)
{
	if (!ch->spsc) {
		sk_chan_stat_count(ch, side == PROD ? ST_FULL_WAITS : ST_EMPTY_WAITS);
		return true;
	}
	ch->polls[side]++;
	if (timeout_ns == 0 && ch->polls[side] < SK_CHAN_POLL_BATCH)
		return false;
	flush_polls(ch, side);
	return true;
}

/* Called after each failed attempt, with the time (0: a poller's try-once
 * call, which has not read the clock): if the same claimed word has
 * blocked this side for SK_CHAN_RECLAIM_NS, check its owner.  A poller
 * reads the clock at calls 1, 2, 4, ... and then once in
 * SK_CHAN_WATCH_POLLS calls that find the same word: an empty channel's FREE(h) is such a word (a producer's
 * claim in progress, if tail has passed h), and a poll of an empty
 * channel stays a few loads.  1 if reclaimed. */
static int watch(shmkit_chan *ch, int side, const struct attempt *a, int64_t now)
{
	uint64_t w = a->blocker;

	if (!a->blocked) {
		ch->watch[side].on = false;
		return 0;
	}
	if (!ch->watch[side].on || ch->watch[side].word != w) {
		ch->watch[side].on = true;
		ch->watch[side].word = w;
		ch->watch[side].since = now; /* 0: not known yet */
		ch->watch[side].polls = 0;
		return 0;
	}
	if (!now) {
		/* The 1st, 2nd, 4th, ... 64th call since the word was first
		 * seen, then every 64th: a poller of any rate notices a dead
		 * claim a few calls after SK_CHAN_RECLAIM_NS (a slow one: the
		 * next call), a fast one reads the clock once in 64 calls. */
		uint32_t n = ++ch->watch[side].polls;
		if ((n & (n - 1)) && n % SK_CHAN_WATCH_POLLS)
			return 0;
		now = sk_now_ns();
	}
	if (!ch->watch[side].since) {
		ch->watch[side].since = now;
		return 0;
	}
	if (now - ch->watch[side].since < SK_CHAN_RECLAIM_NS)
		return 0;
	ch->watch[side].since = now;
	return sk_chan_reclaim(ch, w);
}

/* Slow path of a claim: wait by the handle's strategy in slices of
 * SK_CHAN_RECLAIM_NS, so a dead claimer is noticed even by a sleeper
 * whose wake-up it will never send.  0 claimed, or a negative error. */
static SK_COLD int claim_wait(shmkit_chan *ch, int side, struct attempt *a, int64_t timeout_ns)
{
	int (*try)(void *) = side == PROD ? (ch->spsc ? spsc_claim_send : mpmc_claim_send)
	                                  : (ch->spsc ? spsc_claim_recv : mpmc_claim_recv);
	shmkit_ec *ec = side == PROD ? &ch->ctl->not_full : &ch->ctl->not_empty;
	int waited = 0, r;
	bool check = count_wait(ch, side, timeout_ns);
	/* Quick polls before any clock is read (wait.h). */
	if (timeout_ns != 0 && sk_quick_polls_pay(ch->wait)) {
		for (unsigned i = 0; i < SK_QUICK_POLLS; i++) {
			sk_cpu_relax();
			if ((r = try(a)))
				return r < 0 ? r : 0;
		}
	}
	if (check) { /* again, now with the SPSC index check */
		a->check_tail = true;
		if ((r = try(a)))
			return r < 0 ? r : 0;
	}
	/* A try-once call (a poller's) reads no clock here: watch() reads it
	 * once in SK_CHAN_WATCH_POLLS calls that find the same claim.  A
	 * waiter reads it once per slice, for its deadline and for watch(). */
	int64_t now = timeout_ns ? sk_now_ns() : 0;
	int64_t deadline = timeout_ns < 0 || timeout_ns > INT64_MAX - now ? INT64_MAX
	                                                                    : now + timeout_ns;
	for (;;) {
		if (watch(ch, side, a, now)) {
			if ((r = try(a)))
				return r < 0 ? r : 0;
		}
		if (timeout_ns == 0)
			return -EAGAIN;
		int64_t until = deadline - now > SK_CHAN_RECLAIM_NS ? now + SK_CHAN_RECLAIM_NS : deadline;
		r = sk_wait_for(ec, ch->wait, until, try, a, &waited);
		if (r != -ETIMEDOUT && r != -EAGAIN)
			return r;
		/* A sleeper on a segment a peer truncated is woken by nobody:
		 * each slice looks (guard.c). */
		if ((r = sk_map_check(ch->seg)))
			return r;
		if (until == deadline)
			return -ETIMEDOUT;
		now = sk_now_ns();
	}
}

/* Claim a slot (producer) or a message (consumer).  0, or an error. */
static inline int claim(shmkit_chan *ch, int side, struct attempt *a, int64_t timeout_ns)
{
	int r;

	if (SK_UNLIKELY(r = sk_chan_identity_check(ch)))
		return r;
	if (sk_map_lost(ch->seg)) /* shrunk by a peer: guard.c */
		return sk_map_check(ch->seg);
	if (SK_UNLIKELY(ch->spsc && !ch->role[side]) && (r = role_take(ch, side)))
		return r;
	if (side == PROD)
		r = ch->spsc ? spsc_claim_send(a) : mpmc_claim_send(a);
	else
		r = ch->spsc ? spsc_claim_recv(a) : mpmc_claim_recv(a);
	if (SK_LIKELY(r > 0))
		return 0;
	if (r < 0)
		return r;
	return claim_wait(ch, side, a, timeout_ns);
}

/* ---- public: messages --------------------------------------------------- */

static SK_COLD int bad_state(shmkit_chan *ch, const char *what)
{
	if (!ch)
		return sk_fail(-EINVAL, "channel is NULL");
	if (ch->rdonly)
		return sk_fail(-EPERM, "channel opened read-only");
	return sk_fail(-EINVAL, "%s", what);
}

static inline bool can_send(const shmkit_chan *ch)
{
	return ch && !ch->rdonly && !ch->reserved;
}

static inline bool can_recv(const shmkit_chan *ch)
{
	return ch && !ch->rdonly && !ch->peeked;
}

int shmkit_chan_send(shmkit_chan *ch, const void *msg, size_t len, int64_t timeout_ns)
{
	struct attempt a = { .ch = ch };
	int err;

	if (SK_UNLIKELY(!can_send(ch)))
		return bad_state(ch, "a reservation is open on this handle");
	if (SK_UNLIKELY(!msg && len))
		return sk_fail(-EINVAL, "msg is NULL");
	if (SK_UNLIKELY(len > ch->max_msg))
		return sk_fail(-EMSGSIZE, "message of %zu bytes, max_msg %u", len, ch->max_msg);
	if (SK_UNLIKELY(err = claim(ch, PROD, &a, timeout_ns)))
		return err;
	if (len) /* msg may be NULL for an empty message */
		memcpy(sk_chan_payload(sk_chan_slot_at(ch, a.pos)), msg, len);
	return publish(ch, a.pos, a.word, len);
}

/* recv on a handle that cannot take a new message: it holds an
 * inherited peek (an owner's successor), returned first; else -EINVAL. */
static SK_COLD ssize_t recv_inherited(shmkit_chan *ch, void *buf, size_t cap)
{
	int err;

	if (!ch || ch->peeked != PEEK_INHERITED)
		return bad_state(ch, "a peeked message is open on this handle");
	if (!buf && cap)
		return sk_fail(-EINVAL, "buf is NULL");
	if (ch->peek_len > cap)
		return sk_fail(-EMSGSIZE, "message of %u bytes, buffer of %zu", ch->peek_len, cap);
	if (ch->peek_len)
		memcpy(buf, sk_chan_payload(sk_chan_slot_at(ch, ch->peek_pos)), ch->peek_len);
	ch->peeked = PEEK_OPEN; /* returned: released as a peek (consumed() stays
	                         * inlined in recv and release alone) */
	err = shmkit_chan_release(ch);
	return err ? err : (ssize_t)ch->peek_len;
}

ssize_t shmkit_chan_recv(shmkit_chan *ch, void *buf, size_t cap, int64_t timeout_ns)
{
	struct attempt a = { .ch = ch, .bufcap = cap };
	int err;

	if (SK_UNLIKELY(!can_recv(ch)))
		return recv_inherited(ch, buf, cap);
	if (SK_UNLIKELY(!buf && cap))
		return sk_fail(-EINVAL, "buf is NULL");
	a.copy_to = ch->spsc ? NULL : buf;
	if (SK_UNLIKELY(err = claim(ch, CONS, &a, timeout_ns)))
		return err;
	if (a.len && !a.taken) /* buf may be NULL with cap 0 */
		memcpy(buf, sk_chan_payload(sk_chan_slot_at(ch, a.pos)), a.len);
	return (err = consumed(ch, a.pos, a.word, a.taken)) ? err : (ssize_t)a.len;
}

int shmkit_chan_reserve(shmkit_chan *ch, void **buf, int64_t timeout_ns)
{
	struct attempt a = { .ch = ch };
	int err;

	if (!can_send(ch) || !buf)
		return bad_state(ch, buf ? "a reservation is already open on this handle" : "buf is NULL");
	if ((err = claim(ch, PROD, &a, timeout_ns)))
		return err;
	ch->reserved = true;
	ch->resv_pos = a.pos;
	ch->resv_word = a.word;
	*buf = sk_chan_payload(sk_chan_slot_at(ch, a.pos));
	return 0;
}

int shmkit_chan_commit(shmkit_chan *ch, size_t len)
{
	if (!ch || !ch->reserved)
		return sk_fail(-EINVAL, "no reservation to commit");
	if (len > ch->max_msg)
		return sk_fail(-EMSGSIZE, "message of %zu bytes, max_msg %u (still reserved)",
		               len, ch->max_msg);
	ch->reserved = false;
	return publish(ch, ch->resv_pos, ch->resv_word, len);
}

int shmkit_chan_abort(shmkit_chan *ch)
{
	if (!ch || !ch->reserved)
		return sk_fail(-EINVAL, "no reservation to abort");
	ch->reserved = false;
	if (ch->spsc)
		return 0; /* nothing was published: tail never moved */
	/* Release on success: pairs with P2 of the producer a lap later
	 * (our writes to the slot are done) and with C2 of consumers, which
	 * skip the position as already consumed.  A CAS from our claim word,
	 * as in publish(); relaxed on failure: the slot was handed on. */
	uint64_t w = ch->resv_word;
	if (!sk_cas(&sk_chan_slot_at(ch, ch->resv_pos)->seq, &w,
	            sk_seq_make(ch->resv_pos + ch->cap, SK_SLOT_FREE, 0),
	            __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return stale_claim("abort");
	/* Relaxed: a statistic. */
	sk_fetch_add(&ch->ctl->aborted, 1, __ATOMIC_RELAXED);
	sk_chan_give_up(ch);
	return 0;
}

ssize_t shmkit_chan_peek(shmkit_chan *ch, const void **buf, int64_t timeout_ns)
{
	struct attempt a = { .bufcap = SIZE_MAX, .ch = ch };
	int err;

	if (!can_recv(ch) || !buf) {
		if (ch && buf && ch->peeked == PEEK_INHERITED) {
			ch->peeked = PEEK_OPEN; /* the inherited message, returned now */
			*buf = sk_chan_payload(sk_chan_slot_at(ch, ch->peek_pos));
			return ch->peek_len;
		}
		return bad_state(ch, buf ? "a peeked message is already open on this handle" : "buf is NULL");
	}
	if ((err = claim(ch, CONS, &a, timeout_ns)))
		return err;
	ch->peeked = PEEK_OPEN;
	ch->peek_pos = a.pos;
	ch->peek_word = a.word;
	ch->peek_len = a.len;
	*buf = sk_chan_payload(sk_chan_slot_at(ch, a.pos));
	return a.len;
}

int shmkit_chan_release(shmkit_chan *ch)
{
	if (!ch || !ch->peeked)
		return sk_fail(-EINVAL, "no peeked message to release");
	ch->peeked = PEEK_NONE;
	return consumed(ch, ch->peek_pos, ch->peek_word, false);
}

/* ---- public: owners' commits (chan_recover.c top, "Owners") -------------- */

int shmkit_chan_commit_tag(shmkit_chan *ch, size_t len, uint64_t tag)
{
	struct sk_chan_stat *e;
	int err;

	if (!ch || !ch->reserved)
		return sk_fail(-EINVAL, "no reservation to commit");
	if (!ch->token || !(e = ch->stat))
		return sk_chan_not_owned("commit_tag");
	if (len > ch->max_msg)
		return sk_fail(-EMSGSIZE, "message of %zu bytes, max_msg %u (still reserved)",
		               len, ch->max_msg);
	/* Relaxed: published by the release store of pending next. */
	sk_store_relaxed(&e->pending_tag, tag);
	/* Release: pending_tag before pending.  Both precede P7 (a seq_cst
	 * RMW in publish: no earlier store moves past it), so a successor
	 * that finds the message published finds pending too.  The reader
	 * is the successor after our death (owner_resolve).  model:
	 * mpmc_owner.pml T1. */
	sk_store_release(&e->pending, ch->resv_pos + 1);
	SK_CRASH_POINT("chan.owner.pending");
	ch->reserved = false;
	err = publish(ch, ch->resv_pos, ch->resv_word, len);
	SK_CRASH_POINT("chan.owner.published");
	if (!err) /* Relaxed: ordered before pending = 0 by its release. */
		sk_store_relaxed(&e->last_tag, tag);
	/* Release: last_tag before the word that says nothing is pending
	 * (-ESTALE: a reclaimer abandoned it; last_tag stays).  model:
	 * mpmc_owner.pml T2. */
	sk_store_release(&e->pending, 0);
	return err;
}

/* ---- public: the pollable fd -------------------------------------------- */

/* Could this handle's side of the fd go on?  A claim attempt that claims
 * nothing (sk_waitfd_service_arm's look).  A claimer that dies blocking
 * the side is noticed by a call, not by the fd: callers poll with a
 * timeout (see the header). */
static int chan_fd_ready(void *arg)
{
	shmkit_chan *ch = arg;
	struct attempt a = { .ch = ch, .bufcap = SIZE_MAX, .dry = true };

	if (ch->fd_side == CONS && ch->peeked == PEEK_INHERITED)
		return 1; /* an owner's inherited message waits for its peek */
	if (ch->fd_side == PROD)
		return ch->spsc ? spsc_claim_send(&a) : mpmc_claim_send(&a);
	return ch->spsc ? spsc_claim_recv(&a) : mpmc_claim_recv(&a);
}

static shmkit_ec *chan_fd_ec(shmkit_chan *ch)
{
	return ch->fd_side == PROD ? &ch->ctl->not_full : &ch->ctl->not_empty;
}

int shmkit_chan_fd(shmkit_chan *ch, int events)
{
	if (!ch || (events != SHMKIT_CHAN_POLLIN && events != SHMKIT_CHAN_POLLOUT))
		return sk_fail(-EINVAL, "channel is NULL or events is not SHMKIT_CHAN_POLLIN/POLLOUT");
	int side = events == SHMKIT_CHAN_POLLIN ? CONS : PROD;
	if (ch->wfd && side != ch->fd_side)
		return sk_fail(-EINVAL, "this handle's fd signals the other direction");
	ch->fd_side = side;
	return sk_waitfd_service_fd(&ch->wfd, chan_fd_ec(ch), chan_fd_ready, ch);
}

int shmkit_chan_ack_fd(shmkit_chan *ch)
{
	if (!ch || !ch->wfd)
		return sk_fail(-EINVAL, "no fd on this channel handle (call shmkit_chan_fd)");
	return sk_waitfd_service_arm(ch->wfd, chan_fd_ec(ch), chan_fd_ready, ch);
}

