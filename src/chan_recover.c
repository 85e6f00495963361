/*
 * chan_recover.c - what a channel's crash leaves, and its recovery: the
 * peer id and statistics entry of a handle, freeing the claims of dead
 * claimers, owners (durable identities) and their public calls.  The
 * byte layout is in chan.h; the MPMC and SPSC protocols whose steps these
 * name (P1-P8, C1-C7, P3') are the essay at the top of chan_msg.c.
 *
 * ---- What a crash leaves, and recovery ----------------------------------
 *
 * Every handle that may claim holds a peer id (peer.h): an exclusive
 * open-file-description lock on its byte of the segment's lock file,
 * which the kernel drops when the handle's process dies - whatever its
 * threads, PID or time namespace, or what its pid names later.  A
 * consumer's claim word carries that id, set by the very CAS that claims;
 * a producer's claim is named by its record, stored before the CAS of
 * tail that claims (or, without an entry, by its slot word, P3'); so no
 * live claim ever names nobody.
 * MPMC: a process killed between its claim (P4/C3) and its publication
 * (P7/C6) leaves a slot FREE(p) behind tail with its record WRITING(p,
 * id), or a slot WRITING(p, id) (P3') or READING(p, id).  A side whose
 * progress is blocked by such a slot (a consumer at head p; a producer at
 * tail p + capacity) watches the word; if the very same word is still
 * there after SK_CHAN_RECLAIM_NS, it asks the kernel whether id's lock is
 * held (F_OFD_GETLK: a system call only then, never on the hot path) and,
 * only if it is free, CASes the word to FREE(p + capacity): a dead
 * producer's position carries no message and is skipped, a dead
 * consumer's slot is handed back to producers.  `reclaimed` counts it.
 * For a FREE(p) word the claimer is found by the records (reclaim_claim:
 * records of producers that lost the CAS of tail, or died before it, may
 * name p too; p is freed only if none of them is alive - a dead claimer's
 * record may also be gone, when a new handle took its entry over).
 * Why this races safely with a slow but alive claimer:
 *   - only a dead claimer is reclaimed: a live one holds its lock
 *     (stopped, stalled or not); the kernel cannot be fooled by pids;
 *   - a dead process writes nothing more, so between the liveness check
 *     and the reclaiming CAS the word can change only by another reclaimer
 *     (the CAS compares the whole word, position and id included: exactly
 *     one wins, the others fail and re-read);
 *   - positions never repeat within 2^40, so the CAS cannot succeed on a
 *     later claim of the same slot (no ABA);
 *   - ids are spread by a counter and taken by lock; after 2^22 - 1 of
 *     them the counter wraps, and a handle that takes an id used before
 *     first frees every claim and record still naming it (purge_stale:
 *     they are a dead former holder's, since the lock is now ours);
 *   - a live producer's record is seen by every reclaimer that sees its
 *     claim (P4's release, the reclaimer's acquire load of tail) and
 *     stays until it publishes; a handle without an entry stalled a whole
 *     slice between P4 and P3' may have its position freed - its P3'
 *     then fails and it claims another: nothing was written;
 *   - should a live claimer lose its lock all the same (a program that
 *     closes every descriptor it does not know), its publication or
 *     release is a CAS from the word its claim left (FREE(p), WRITING(p,
 *     me) or READING(p, me)): it fails, -ESTALE, and never publishes
 *     into a slot that was handed on.
 * Loss: a message whose consumer died after claiming it (a peek not yet
 * released), or after taking it (C3') and before recv returned it, is
 * lost - at most one per dead consumer handle; it is not redelivered,
 * because head has moved past it and redelivering would break
 * per-producer order.  A peek of an owned handle is the exception: it
 * waits for the owner's successor ("Owners" below).  A recv killed before C3' loses nothing.  A
 * producer killed mid-write loses only its own unpublished message.
 * SPSC: nothing is claimed, so nothing needs reclaiming: a producer killed
 * mid-write has not moved tail (the message never existed), a consumer
 * killed mid-read has not moved head, so the next consumer gets the same
 * message again (at-least-once).
 * Sleepers: a process killed inside a futex wait leaves at most the event
 * count's waiter flag set; the next increment pays one needless wake.  A
 * waker killed between making a message visible and its wake costs a
 * sleeper one wait slice (SK_CHAN_RECLAIM_NS), not its timeout.
 *
 * ---- Owners: durable identities across a crash (MPMC) ---------------------
 *
 * A handle opened with an owner token T (shmkit_chan_opts.owner) keeps a
 * statistics entry marked with T (chan.h: the entry's second line) that
 * outlives the handle: close, or death, leaves the handle's id in it, and
 * the next handle opened with T takes the entry over - and with it the
 * claims of its predecessor, which a crash would otherwise lose or leave
 * in doubt:
 *   - its peek, READING(h, old), is re-labelled READING(h, new) and is
 *     what the successor's next peek (or recv) returns: the message goes
 *     to the same owner again, to nobody else, and is never lost;
 *   - its reservation, named by the entry's record WRITING(t, old) with
 *     the slot still FREE(t), carries no published message: it is freed
 *     (FREE(t + capacity)), after recording `abandoned = t + 1`, and the
 *     record is cleared (owner_claim_resolve);
 *   - its commit_tag in progress (`pending = t + 1`, `pending_tag`) is
 *     decided: abandoned == pending means the message at t was never
 *     published; anything else means P7 happened, so `last_tag` becomes
 *     pending_tag.  shmkit_chan_owner_tag then tells the owner which of
 *     its tagged commits was the last to land.
 * Why "abandoned" is exact: whoever frees an owned claim of t - the
 * successor, or a reclaimer unblocking consumers - has first seen X dead
 * (its lock free, F_OFD_GETLK) and then, after that, the slot word still
 * FREE(t) with tail past t: a dead process publishes nothing more, so t
 * was never published.  It stores abandoned (monotonically: a stale
 * store of an older position is dropped) and then CASes the word with
 * release; the successor acquire-loads the slot word of its
 * predecessor's record, so it sees abandoned if a reclaimer freed it
 * first (the release sequence of the reclaimer's CAS goes on through
 * every later claim and publication of that slot, all RMWs), and frees
 * itself what is left.  A record may be stale (its writer died before
 * its CAS of tail, or lost it): a reclaimer then records abandoned for a
 * position the owner never held - harmless, pending never names such a
 * position, since pending is stored after a claim succeeded; and when
 * pending does name the record's position, the successor knows its
 * predecessor held it and frees it whatever other records say.
 * The commit_tag order: pending_tag, pending (release), P7 (seq_cst RMW,
 * so nothing stored before it moves after it), last_tag, pending = 0
 * (release).  The reader of these fields is a successor, after the
 * writer died: as for SPSC roles, its stores were all made before it
 * died, and the kernel's lock release at its death and our F_OFD_GETLK
 * order them before ours.
 * Reclaimers respect owners: a dead owned consumer's READING claim is not
 * freed - that message waits for the owner to come back, and the channel
 * fills after one lap, as behind a slow consumer (one slot is held).  A
 * dead owned producer's claim is freed as any other (consumers must not
 * stall for it), recorded in `abandoned` as above.  A reclaimer knows a
 * consumer's claim is an owner's by the id: an entry whose token is set
 * names it as its owner or as `prev`; a producer's, by the entry that
 * holds the record.
 * The takeover, serialized among openers by an OFD lock on byte 0 of the
 * channel's peer ids (no handle takes id 0; a dead opener's lock goes
 * with it): prev = old (release), CAS owner old -> new, move the claims
 * naming old (above), prev = 0, decide pending.  At every instant each
 * claim of the chain names owner or prev of the owned entry, so no
 * reclaimer takes it for an ordinary dead claim; a successor killed in
 * the middle leaves owner = its id (dead) and prev = old, and the next
 * one first moves what still names prev to owner, then goes on as above.
 * Ids: a wrapped id counter must not hand a new handle an id an owned entry
 * still names (its claims would look like the new handle's, and the owner's
 * successor would find its "holder" alive): sk_chan_identity_refresh takes
 * another id then, so purge_stale never meets an owned claim.
 * A forked child's copy of an owned handle is not owned (the parent
 * holds the entry); shmkit_chan_disown makes an owned entry ordinary
 * again.  Handles without an owner pay nothing: the entry's counters keep
 * the first line, and the hot path tests no new field.
 */
#include <time.h>
#include <unistd.h>

#include "chan_int.h"

/* ---- identity: a peer entry of this handle (peer.h) ------------------ */

static void purge_stale(shmkit_chan *ch);

/* ---- per-handle statistics (chan.h: statistics entries) ------------------ */

/* Move an entry's counts into the control block's and zero them.  Relaxed
 * throughout: statistics, ordered with nothing; a snapshot taken meanwhile
 * may miss them for an instant. */
static void stat_retire(struct sk_chan_ctl *c, struct sk_chan_stat *e)
{
	uint64_t *from[4] = { &e->sent, &e->received, &e->full_waits, &e->empty_waits };
	uint64_t *to[4] = { &c->sent, &c->received, &c->full_waits, &c->empty_waits };

	for (int i = 0; i < 4; i++) {
		uint64_t v = sk_load_relaxed(from[i]);
		sk_store_relaxed(from[i], 0);
		if (v)
			sk_fetch_add(to[i], v, __ATOMIC_RELAXED);
	}
}

/* Take a statistics entry for this handle: a free one, else one whose
 * owner is dead (its lock free) or names our own id (a dead former
 * holder's, after the id counter wrapped).  Entries with an owner token
 * are not taken (owner_take does).  None: count in the control block.
 * Never fails. */
static SK_COLD void stat_take(shmkit_chan *ch)
{
	uint64_t me = ch->peer.id;

	for (int pass = 0; pass < 2 && !ch->stat; pass++) {
		for (uint32_t i = 0; i < ch->nstats && !ch->stat; i++) {
			struct sk_chan_stat *e = &ch->stats[i];
			/* Acquire: pairs with sk_chan_stat_give's release store
			 * of 0 (and the CAS below of another taker): the counts
			 * the last owner zeroed are seen zero before we count on
			 * them. */
			uint64_t w = sk_load_acquire(&e->owner);
			/* Relaxed: a token is set by a live owner that holds the
			 * entry (its id, just loaded, fails the CAS below) or
			 * stays from a dead one (stored before it died). */
			if (sk_load_relaxed(&e->token))
				continue;
			if (w == 0 ? pass != 0 :
			    w != me && (pass == 0 || w > SK_SEQ_PID_MASK ||
			                sk_peer_held(ch->seg, SK_PEER_CHAN + (uint32_t)w) != 0))
				continue;
			/* Acquire on success: as the load above; relaxed on
			 * failure: someone else took it, go on. */
			if (!sk_cas(&e->owner, &w, me, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				continue;
			if (w)
				stat_retire(ch->ctl, e); /* a dead handle's counts */
			/* A dead handle's claim record goes: its claim, if
			 * still unpublished, is then named by no record and
			 * freed by the first side it blocks (reclaim_claim).
			 * Relaxed: we own the entry; a reclaimer reading the
			 * old record finds its id dead all the same. */
			sk_store_relaxed(&e->claim, 0);
			ch->stat = e;
		}
	}
}

/* Give the entry back at close: its counts go to the control block. */
void sk_chan_stat_give(shmkit_chan *ch)
{
	struct sk_chan_stat *e = ch->stat;

	if (!e)
		return;
	ch->stat = NULL;
	stat_retire(ch->ctl, e);
	/* Relaxed: close aborted any reservation first, so the record names
	 * a position already published or freed. */
	sk_store_relaxed(&e->claim, 0);
	if (ch->token)
		return; /* an owner's entry keeps its id: the holder is dead once
		         * its lock goes, and its successor takes it over */
	/* Release: pairs with stat_take's acquire: the zeroed counts are
	 * visible to the next owner before it counts. */
	sk_store_release(&e->owner, 0);
}

/* ---- owners: prototypes (the code follows the recovery section) -------- */

static int owner_take(shmkit_chan *ch);
static struct sk_chan_stat *owned_entry(const shmkit_chan *ch, uint64_t id);

/* Take a peer id for this handle: its claims and roles name it, and the
 * kernel's lock on it says whether the handle lives.  Also after a fork:
 * the child's claims must not be its parent's (whose entry dies with the
 * parent), so it drops the inherited entry and roles and takes its own. */
SK_COLD int sk_chan_identity_refresh(shmkit_chan *ch)
{
	bool wrapped = false;
	int err;

	if (sk_peer_forked(&ch->peer)) {
		sk_peer_forget(&ch->peer);
		ch->role[PROD] = ch->role[CONS] = false; /* the parent's, not ours */
		ch->stat = NULL;                          /* likewise */
		ch->token = 0;                            /* likewise: not owned */
		if (ch->peeked == PEEK_INHERITED)
			ch->peeked = PEEK_NONE;
	}
	if ((err = sk_peer_join(&ch->peer, ch->seg)))
		return err;
	/* An id an owned entry still names is skipped (file top, "Owners"):
	 * at most two per entry. */
	for (uint32_t tries = 0;; tries++) {
		if ((err = sk_peer_take_id(&ch->peer, ch->seg, SK_PEER_CHAN, &wrapped)))
			return err;
		if (!wrapped || !owned_entry(ch, ch->peer.id))
			break;
		sk_peer_unlock(&ch->peer, SK_PEER_CHAN + ch->peer.id);
		ch->peer.id = 0;
		if (tries > 2 * ch->nstats)
			return sk_fail(-EBADMSG, "owned entries name more ids than they can hold");
	}
	ch->pid = (uint32_t)getpid();
	if (wrapped)
		purge_stale(ch);
	if (ch->token)
		return owner_take(ch);
	stat_take(ch);
	return 0;
}

/* ---- recovery from dead claimers --------------------------------------- */

/* Free the slot claimed by word w (its claimer is dead): 1 if this call
 * did it, 0 if the word had changed. */
static SK_COLD int reclaim_word(shmkit_chan *ch, uint64_t w)
{
	struct sk_chan_slot *s = sk_chan_slot_at(ch, sk_seq_pos(w));

	/* Release on success: pairs with the acquire scan of an owner's
	 * successor (inherit), which must see the `abandoned` stored before
	 * this CAS (abandon); nothing else is published - the dead
	 * claimer's partial writes are never read, and the next producer's
	 * claim orders itself (P2, P4).  The compare on the whole word makes
	 * one reclaimer win; a changed word means someone moved on (relaxed
	 * on failure).  model: mpmc.pml R1 (SC in the model). */
	if (!sk_cas(&s->seq, &w, sk_seq_make(sk_seq_pos(w) + ch->cap, SK_SLOT_FREE, 0),
	            __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return 0;
	/* Relaxed: a statistic. */
	sk_fetch_add(&ch->ctl->reclaimed, 1, __ATOMIC_RELAXED);
	sk_chan_give_up(ch);
	return 1;
}

static int abandon(shmkit_chan *ch, struct sk_chan_stat *e, uint64_t w);
static void note_abandoned(struct sk_chan_stat *e, uint64_t pos);

/* Is position p (40 bits) below tail, that is, claimed by a producer?
 * Acquire: pairs with the release of the claim CAS P4 that moved tail
 * past p (through the release sequence of the later claims): the
 * claimer's record, stored before it (P3), is visible after this. */
static SK_COLD bool claimed(const shmkit_chan *ch, uint64_t p)
{
	return sk_seq_diff(p, sk_load_acquire(&ch->ctl->tail)) < 0;
}

/* The slot of position p says FREE(p) after its claim (tail has passed
 * p): its producer has not published.  The claimer is named by its
 * claim record, WRITING(p, id), stored before the claim; records of
 * other producers may name p too, stale (a producer that lost the CAS of
 * tail, or died before it).  Position p is freed unpublished (FREE(p +
 * capacity), as an abort) only if no record of a live handle names p:
 *   - the claimer's record is visible (claimed()'s acquire), and stays
 *     until it publishes (then the slot word differs and the CAS below
 *     fails), or until the entry is taken from it as dead;
 *   - so if every record naming p is dead, or none does, the claimer is
 *     dead - or lost its lock: its P7, a CAS from FREE(p), then fails
 *     (-ESTALE) - or it is a handle without an entry between its claim
 *     and its P3' (stalled a whole wait slice), whose P3' then fails
 *     and which claims another position;
 *   - a live record naming p (the claimer, or a stalled loser of the
 *     CAS of tail) makes us wait: a slice later we look again.
 * A dead owner's record gets `abandoned` (file top, "Owners") before the
 * freeing CAS (release).  1 if this call freed it.  model: mpmc.pml R0. */
static SK_COLD int reclaim_claim(shmkit_chan *ch, uint64_t p)
{
	uint64_t free_w = sk_seq_make(p, SK_SLOT_FREE, 0), owned = 0;

	if (!claimed(ch, p))
		return 0; /* nothing claimed at p: empty */
	for (uint32_t i = 0; i < ch->nstats; i++) {
		struct sk_chan_stat *e = &ch->stats[i];
		/* Relaxed: ordered by claimed()'s acquire (see there). */
		uint64_t r = sk_load_relaxed(&e->claim);
		if (sk_seq_state(r) != SK_SLOT_WRITING || sk_seq_pos(r) != (p & SK_SEQ_POS_MASK))
			continue;
		uint32_t id = sk_seq_id(r);
		if (id == ch->peer.id || sk_peer_held(ch->seg, SK_PEER_CHAN + id) != 0)
			return 0; /* ours (a reservation), or alive: never take it
			           * (model: without it, mutant BUG_RECLAIM_LIVE) */
		/* Relaxed: a token is set before its owner claims anything
		 * (owner_new's release, ordered before the record). */
		if (sk_load_relaxed(&e->token))
			owned |= UINT64_C(1) << i;
	}
	/* Acquire: after the liveness checks; the word decides - still
	 * FREE(p) means nothing was published at p. */
	if (sk_load_acquire(&sk_chan_slot_at(ch, p)->seq) != free_w)
		return 0;
	for (uint32_t i = 0; i < ch->nstats; i++)
		if (owned >> i & 1)
			note_abandoned(&ch->stats[i], p);
	return reclaim_word(ch, free_w);
}

/* Reclaim the slot claimed by word w if its claimer is dead: the kernel
 * holds no lock on its peer id any more (peer.h).  A FREE word is a
 * producer's claim named by its record (reclaim_claim).  An owner's
 * claims (file top, "Owners"): a peek is left to the owner's successor,
 * a reservation is abandoned.  1 if done. */
SK_COLD int sk_chan_reclaim(shmkit_chan *ch, uint64_t w)
{
	uint32_t id = sk_seq_id(w);

	if (sk_seq_state(w) == SK_SLOT_FREE)
		return reclaim_claim(ch, sk_seq_pos(w));

	if (id == ch->peer.id)
		return 0; /* our own claim, on this handle */
	if (sk_peer_held(ch->seg, SK_PEER_CHAN + id) != 0)
		return 0; /* alive, or the kernel cannot tell: never take a live claim
		           * (model: mpmc.pml R1; without it, mutant BUG_RECLAIM_LIVE) */
	struct sk_chan_stat *e = ch->nstats ? owned_entry(ch, id) : NULL;
	if (!e)
		return reclaim_word(ch, w);
	if (sk_seq_state(w) == SK_SLOT_READING)
		return 0; /* waits for the owner (model: mpmc_owner.pml R-OWN;
		           * without it, mutant BUG_RECLAIM_OWNED loses it) */
	return abandon(ch, e, w);
}

/* This handle took an id used before (the id counter wrapped): any claim
 * still naming it is a dead former holder's, since we hold its lock now.
 * Free them before our own claims could be confused with them. */
static SK_COLD void purge_stale(shmkit_chan *ch)
{
	if (ch->spsc)
		return; /* no claims; role words are checked in role_take() */
	for (uint32_t i = 0; i < ch->nstats; i++) {
		/* A claim record naming our id is a dead former holder's (an
		 * owned entry's never is: sk_chan_identity_refresh).  Relaxed
		 * both ways: a record only names a claim, which reclaim_claim
		 * then finds named by no live record. */
		uint64_t r = sk_load_relaxed(&ch->stats[i].claim);
		if (r && sk_seq_id(r) == ch->peer.id)
			sk_cas(&ch->stats[i].claim, &r, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	for (uint64_t i = 0; i < ch->cap; i++) {
		/* Acquire: as P2 - the word decides what we do with the slot. */
		uint64_t w = sk_load_acquire(&sk_chan_slot_at(ch, i)->seq);
		unsigned st = sk_seq_state(w);
		if ((st == SK_SLOT_WRITING || st == SK_SLOT_READING) && sk_seq_id(w) == ch->peer.id)
			reclaim_word(ch, w);
	}
}


/* ---- owners (file top, "Owners"; chan.h: an entry's second line) -------- */

#define SK_CHAN_OWNER_LOCK SK_PEER_CHAN  /* the byte of id 0, which no handle takes */
#define SK_CHAN_OWNER_LOCK_TRIES 2000    /* 1 ms apart */

/* Serialize the openers of owned handles (a kernel lock: a dead holder's
 * goes with it).  0, or -EBUSY if it stays held for 2 s. */
static SK_COLD int owner_lock(shmkit_chan *ch)
{
	const struct timespec ms = { 0, 1000000 };

	for (unsigned i = 0; i < SK_CHAN_OWNER_LOCK_TRIES; i++) {
		int r = sk_peer_lock(&ch->peer, SK_CHAN_OWNER_LOCK);
		if (r != -EBUSY)
			return r;
		nanosleep(&ms, NULL);
	}
	return sk_fail(-EBUSY, "the channel's owner table stays locked by another opener");
}

/* The owned entry whose claims may carry id: its owner, or the id a
 * takeover is replacing (prev).  NULL if none. */
static SK_COLD struct sk_chan_stat *owned_entry(const shmkit_chan *ch, uint64_t id)
{
	for (uint32_t i = 0; id && i < ch->nstats; i++) {
		struct sk_chan_stat *e = &ch->stats[i];
		/* Acquire: pairs with the release stores of a taker
		 * (owner_adopt: prev, then the CAS of owner), so an owner
		 * read as the new id comes with prev = old.  Read in this
		 * order: if owner is no longer id, prev was set before. */
		if ((sk_load_acquire(&e->owner) == id || sk_load_acquire(&e->prev) == id) &&
		    sk_load_acquire(&e->token) != 0)
			return e;
	}
	return NULL;
}

/* Record that the claim at pos was freed unpublished: abandoned moves
 * forward only (a reclaimer that stalled may store an older position
 * late).  Relaxed: the release CAS that frees the slot orders it. */
static SK_COLD void note_abandoned(struct sk_chan_stat *e, uint64_t pos)
{
	uint64_t want = pos + 1, cur = sk_load_relaxed(&e->abandoned);

	for (int i = 0; i < 64; i++) {
		if (cur && sk_seq_diff(want, cur) <= 0)
			return;
		if (sk_cas(&e->abandoned, &cur, want, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return;
	}
}

/* Free the WRITING claim w of a dead owned producer (entry e).  The word
 * is read again after the liveness check: still w means never published
 * (a dead process writes nothing more), so abandoned is the truth, stored
 * before the freeing CAS (release, in reclaim_word).  1 if this call
 * freed it.  model: mpmc_owner.pml R-AB. */
static SK_COLD int abandon(shmkit_chan *ch, struct sk_chan_stat *e, uint64_t w)
{
	/* Acquire: after the caller's F_OFD_GETLK found the claimer dead;
	 * pairs with its P7 had it published (then the word differs). */
	if (sk_load_acquire(&sk_chan_slot_at(ch, sk_seq_pos(w))->seq) != w)
		return 0;
	note_abandoned(e, sk_seq_pos(w));
	return reclaim_word(ch, w);
}

/* Move the claims naming `from` (dead, of entry e) to `to`: a peek
 * READING(h, from) becomes READING(h, to) - this handle's inherited peek
 * if to is its id; a reservation WRITING(t, from) is abandoned.  0, or
 * -EBADMSG. */
static SK_COLD int inherit(shmkit_chan *ch, struct sk_chan_stat *e, uint64_t from, uint64_t to)
{
	for (uint64_t i = 0; i < ch->cap; i++) {
		struct sk_chan_slot *s = sk_chan_slot_at(ch, i);
		/* Acquire: as P2/C2 - the word decides, and a reader of the
		 * payload below sees what the producer wrote (P7's release
		 * sequence runs through the dead consumer's claim CAS). */
		uint64_t w = sk_load_acquire(&s->seq);
		unsigned st = sk_seq_state(w);
		if (sk_seq_id(w) != from || (st != SK_SLOT_READING && st != SK_SLOT_WRITING))
			continue;
		if ((sk_seq_pos(w) & ch->mask) != i)
			return sk_chan_corrupt_slot(ch, i, w, "owner");
		if (st == SK_SLOT_WRITING) {
			abandon(ch, e, w); /* model: mpmc_owner.pml S2 */
			continue;
		}
		uint64_t mine = sk_seq_make(sk_seq_pos(w), SK_SLOT_READING, (uint32_t)to);
		if (to == ch->peer.id && ch->peeked)
			return sk_fail(-EBADMSG, "an owner's dead handle held two peeks (slot %llu)",
			               (unsigned long long)i);
		/* Acquire on success: as the load.  Relaxed on failure: only a
		 * hostile peer moves an owned READING claim; it is left.
		 * model: mpmc_owner.pml S1. */
		if (!sk_cas(&s->seq, &w, mine, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		if (to != ch->peer.id)
			continue;
		/* Relaxed: ordered by the acquire above. */
		uint32_t len = sk_load_relaxed(&s->len);
		if (len > ch->max_msg)
			return sk_fail(-EBADMSG, "inherited message length %u exceeds max_msg %u",
			               len, ch->max_msg);
		ch->peeked = PEEK_INHERITED;
		ch->peek_pos = sk_seq_pos(mine);
		ch->peek_word = mine;
		ch->peek_len = len;
	}
	return 0;
}

/* The claim record a dead holder of the owned entry e left: a
 * reservation at position q, unpublished while its slot still says
 * FREE(q).  If a commit_tag was pending at q, the holder did claim q
 * (pending is stored after the claim), so it is abandoned for certain;
 * otherwise it is freed as any dead claim (reclaim_claim: a live record
 * naming q makes it wait for a reclaimer).  Then the record goes.
 * model: mpmc_owner.pml S2. */
static SK_COLD void owner_claim_resolve(shmkit_chan *ch, struct sk_chan_stat *e)
{
	/* Relaxed: the dead holder's store, made before it died (file top,
	 * "Owners": its death and our lock check order it). */
	uint64_t r = sk_load_relaxed(&e->claim);

	if (sk_seq_state(r) == SK_SLOT_WRITING && sk_seq_id(r) != ch->peer.id) {
		uint64_t q = sk_seq_pos(r), free_w = sk_seq_make(q, SK_SLOT_FREE, 0);
		/* Acquire: pairs with commit_tag's release store of pending. */
		uint64_t pend = sk_load_acquire(&e->pending);
		if (pend && ((pend - 1) & SK_SEQ_POS_MASK) == q && claimed(ch, q) &&
		    sk_load_acquire(&sk_chan_slot_at(ch, q)->seq) == free_w) { /* acquire: as abandon() */
			note_abandoned(e, q);
			reclaim_word(ch, free_w);
		} else {
			reclaim_claim(ch, q);
		}
	}
	/* Relaxed: the entry is ours; read only by reclaimers. */
	sk_store_relaxed(&e->claim, 0);
}

/* Decide a commit_tag the dead holder left pending (file top). */
static SK_COLD void owner_resolve(struct sk_chan_stat *e)
{
	/* Acquire: pairs with the release stores of commit_tag (the dead
	 * holder's, made before it died). */
	uint64_t pend = sk_load_acquire(&e->pending);

	if (!pend)
		return;
	/* Relaxed: every claim of the dead holder was freed before this
	 * (inherit's scan, whose acquire loads saw the reclaimers' release
	 * CASes), and abandoned was stored before each. */
	if (sk_load_relaxed(&e->abandoned) != pend)
		sk_store_relaxed(&e->last_tag, sk_load_relaxed(&e->pending_tag));
	/* Release: last_tag before the word that says it is decided. */
	sk_store_release(&e->pending, 0);
}

/* Take over the entry e of this handle's token (held by a dead handle,
 * or by none).  Under the owner lock.  0, -EBUSY (a live handle holds
 * it), -EBADMSG. */
static SK_COLD int owner_adopt(shmkit_chan *ch, struct sk_chan_stat *e)
{
	uint64_t me = ch->peer.id;
	/* Acquire: pairs with the release stores of the previous taker. */
	uint64_t w = sk_load_acquire(&e->owner), p = sk_load_acquire(&e->prev);
	int err;

	if (w > SK_SEQ_PID_MASK || p > SK_SEQ_PID_MASK || (p && !w))
		return sk_fail(-EBADMSG, "owner entry names ids %llu and %llu: corrupt channel",
		               (unsigned long long)w, (unsigned long long)p);
	if (w && w != me && sk_peer_held(ch->seg, SK_PEER_CHAN + w) != 0)
		return sk_fail(-EBUSY, "owner %#llx is held by a live handle",
		               (unsigned long long)ch->token);
	/* A successor killed mid-takeover: what still names prev goes to
	 * owner (dead too, and protected as the entry's owner). */
	if (p && p != w && (err = inherit(ch, e, p, w)))
		return err;
	/* Release: pairs with owned_entry's acquire: a reclaimer that reads
	 * owner = me also sees prev = w, so claims naming w stay owned. */
	sk_store_release(&e->prev, w);
	/* Acq_rel: as stat_take (acquire), and publishes prev (release).
	 * Relaxed on failure: under the owner lock only a hostile peer
	 * changes it. */
	if (!sk_cas(&e->owner, &w, me, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return sk_fail(-EBUSY, "owner %#llx changed hands during the takeover",
		               (unsigned long long)ch->token);
	SK_CRASH_POINT("chan.owner.adopted");
	if (w && (err = inherit(ch, e, w, me)))
		return err; /* owner = me, prev = w: our successor goes on */
	if (w)
		owner_claim_resolve(ch, e);
	/* Release: every claim names me now. */
	sk_store_release(&e->prev, 0);
	owner_resolve(e);
	stat_retire(ch->ctl, e); /* the dead handle's counts */
	ch->stat = e;
	return 0;
}

/* A first entry for this token: a free (or dead, unowned) one, marked
 * with the token before this handle claims anything. */
static SK_COLD int owner_new(shmkit_chan *ch)
{
	struct sk_chan_stat *e;

	stat_take(ch);
	if (!(e = ch->stat))
		return sk_fail(-ENOSPC, "every statistics entry of the channel is held (%u): "
		               "no room for an owner", ch->nstats);
	uint64_t *f[5] = { &e->last_tag, &e->pending, &e->pending_tag, &e->abandoned, &e->prev };
	for (int i = 0; i < 5; i++) /* Relaxed: published by the token's release below. */
		sk_store_relaxed(f[i], 0);
	/* Release: pairs with owned_entry's acquire (and the scan of
	 * owner_take): the zeroed record comes with the token. */
	sk_store_release(&e->token, ch->token);
	return 0;
}

/* Take (over) the entry of this handle's owner token, at open.  0, or
 * -EBUSY, -ENOSPC, -EBADMSG. */
static SK_COLD int owner_take(shmkit_chan *ch)
{
	struct sk_chan_stat *e = NULL;
	int err = owner_lock(ch);

	if (err)
		return err;
	for (uint32_t i = 0; i < ch->nstats && !e; i++)
		/* Acquire: pairs with owner_new's release; tokens change
		 * only under the owner lock, which we hold. */
		if (sk_load_acquire(&ch->stats[i].token) == ch->token)
			e = &ch->stats[i];
	err = e ? owner_adopt(ch, e) : owner_new(ch);
	sk_peer_unlock(&ch->peer, SK_CHAN_OWNER_LOCK);
	return err;
}

/* ---- public: owners (file top, "Owners"; commit_tag is in chan_msg.c) --- */

SK_COLD int sk_chan_not_owned(const char *what)
{
	return sk_fail(-EINVAL, "%s: this handle was not opened with an owner token", what);
}

int shmkit_chan_owner_tag(shmkit_chan *ch, uint64_t *tag)
{
	if (!ch || !tag)
		return sk_fail(-EINVAL, "channel or tag is NULL");
	if (!ch->token || !ch->stat)
		return sk_chan_not_owned("owner_tag");
	/* Relaxed: written by this handle, or decided at its open. */
	*tag = sk_load_relaxed(&ch->stat->last_tag);
	return 0;
}

int shmkit_chan_disown(shmkit_chan *ch)
{
	struct sk_chan_stat *e;
	int err;

	if (!ch)
		return sk_fail(-EINVAL, "channel is NULL");
	if (!ch->token || !(e = ch->stat))
		return sk_chan_not_owned("disown");
	if ((err = owner_lock(ch)))
		return err;
	/* Release: pairs with the acquire loads of owned_entry and
	 * owner_take: the entry is an ordinary one from here on. */
	sk_store_release(&e->token, 0);
	sk_peer_unlock(&ch->peer, SK_CHAN_OWNER_LOCK);
	ch->token = 0;
	if (ch->peeked == PEEK_INHERITED)
		ch->peeked = PEEK_OPEN; /* an ordinary peek now: close releases it */
	return 0;
}

int shmkit_chan_peek_pos(const shmkit_chan *ch, uint64_t *pos)
{
	if (!ch || !pos || !ch->peeked)
		return sk_fail(-EINVAL, "no peeked message on this handle");
	*pos = ch->peek_pos;
	return 0;
}

int shmkit_chan_reserve_pos(const shmkit_chan *ch, uint64_t *pos)
{
	if (!ch || !pos || !ch->reserved)
		return sk_fail(-EINVAL, "no reservation on this handle");
	*pos = ch->resv_pos;
	return 0;
}

bool sk_chan_still_queued(const shmkit_chan *ch, uint64_t pos)
{
	if (ch->spsc)
		return false;
	/* Relaxed: a hint, not a hand-over - whoever acts on "taken" (a
	 * requeue) makes a duplicate that its consumer drops if stale. */
	uint64_t w = sk_load_relaxed(&sk_chan_slot_at(ch, pos)->seq);
	return w == sk_seq_make(pos, SK_SLOT_FULL, 0);
}
