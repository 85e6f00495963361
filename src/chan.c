/*
 * chan.c - channels: a named bounded queue in shared memory; each message
 * goes to exactly one receiver.  The byte layout is in chan.h.
 *
 * ---- MPMC protocol (a Vyukov bounded queue with named claims) ----------
 *
 * Each slot carries a 64-bit seq word = position | state | claimer id (chan.h).
 * A producer claims position t as in the textbook queue: by a CAS of
 * tail t -> t+1 after seeing the slot FREE(t); it then writes the slot
 * and publishes it.  What the textbook queue lacks is a way to tell who
 * owns a claimed position, so that a dead owner can be recognised
 * (below): before the CAS, the producer stores its claim record - the
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
 * Ids: a wrapped id counter must not hand a new handle an id an owned
 * entry still names (its claims would look like the new handle's, and
 * the owner's successor would find its "holder" alive): identity_refresh
 * takes another id then, so purge_stale never meets an owned claim.
 * A forked child's copy of an owned handle is not owned (the parent
 * holds the entry); shmkit_chan_disown makes an owned entry ordinary
 * again.  Handles without an owner pay nothing: the entry's counters keep
 * the first line, and the hot path tests no new field.
 *
 * ---- Models ---------------------------------------------------------------
 *
 * models/mpmc.pml and models/spsc.pml (make models; SPIN) check these
 * protocols with a process allowed to die before every step: each message
 * delivered at most once, in per-producer order, never torn, nothing
 * committed lost beyond the losses documented above, no lost wake-up,
 * and a live producer's P7 never fails (its claim is never reclaimed:
 * mutants BUG_NO_RECORD, BUG_RECORD_LATE, BUG_ANY_DEAD_RECORD).
 * models/mpmc_owner.pml checks owner tokens ("Owners" above): an owned
 * consumer killed after its peek and resumed by its successor, an owned
 * producer killed anywhere in commit_tag with a reclaimer and a successor
 * that resends from owner_tag + 1 - every message delivered exactly once.
 * Comments "model: FILE STEP" below name the model step an atomic stands
 * for.  SPIN's interleavings are sequentially consistent: where such a
 * comment says "SC in the model", the C11 order it uses (relaxed,
 * acquire/release pairs, fences) is assumed by the model, not checked.
 * Not modelled: -EMSGSIZE (len_stable), abort (P7 to FREE(t + capacity)
 * instead of FULL(t)), the claim P3' of a handle without an entry,
 * purge_stale, id and position wrap-around, and the statistics.
 * Found by the model: a handle that lost its lock (closefrom) while
 * stalled between P4 and P7 still does its payload copy and its P6 len
 * store after its claim was reclaimed; if the slot was claimed again
 * meanwhile, a consumer can read that message torn before the stale P7
 * fails (-ESTALE): the CAS from the claim word guards the seq word only
 * (mpmc.pml with MAXLOSS=1).
 *
 * ---- Corruption ---------------------------------------------------------
 *
 * Capacity, max_msg and slot size are read once at open, checked against
 * the segment size, and never re-read.  Every shared index and seq word is
 * read into a local and classified against them; anything the invariants
 * of chan.h rule out is -EBADMSG.  Loops that follow shared values are
 * bounded (SK_CHAN_MAX_RETRY consecutive moves of an index), waits by the
 * caller's deadline.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "peer.h"
#include "waitfd.h"
#include "seg.h"
#include "wait.h"

#define SK_CHAN_RECLAIM_NS 50000000LL /* a claimed slot blocks this long before its owner is checked */
#define SK_CHAN_MAX_RETRY (1u << 20)  /* consecutive index moves before -EBADMSG */
#define SK_CHAN_WATCH_POLLS 64u       /* a poller's calls per clock read (watch) */
#define SK_CHAN_OPEN_FLAGS (SHMKIT_EXCL | SHMKIT_RDONLY | SHMKIT_POPULATE | SHMKIT_MLOCK | \
                            SHMKIT_HUGE | SHMKIT_NOSEAL | SHMKIT_PERSIST | SHMKIT_CHAN_SPSC)

enum side { PROD = 0, CONS = 1 };

/* A handle's peek: none; open (returned to the caller, released by
 * release); inherited from a dead predecessor of the same owner and not
 * returned yet (the next peek or recv returns it; close leaves it to the
 * next successor). */
enum peek_state { PEEK_NONE = 0, PEEK_OPEN = 1, PEEK_INHERITED = 2 };

struct shmkit_chan {
	shmkit_seg *seg;
	struct sk_chan_ctl *ctl;
	unsigned char *slots;
	struct sk_chan_stat *stats; /* the statistics entries (chan.h) */
	uint32_t nstats;
	struct sk_chan_stat *stat; /* the one this handle counts in, or NULL */
	uint64_t cap, mask;      /* cached at open, never re-read */
	uint32_t max_msg, slot_size;
	bool spsc, rdonly;
	bool embedded;           /* inside another service's segment (chan.h):
	                            close leaves the segment to its owner */
	bool role[2];            /* SPSC: this handle holds the role (by side) */
	int wait;                /* enum shmkit_wait */
	uint64_t cached_head;    /* SPSC producer: last head seen */
	uint64_t head;           /* SPSC consumer role: head (only it writes head) */
	uint32_t polls[2];       /* SPSC: try-once calls that found nothing, not
	                            yet added to the control block (by side) */
	bool reserved;           /* zero-copy in progress */
	uint8_t peeked;          /* enum peek_state */
	uint64_t token;          /* owner token (opts.owner), 0 none */
	uint64_t resv_pos, resv_word;
	uint64_t peek_pos, peek_word;
	uint32_t peek_len;
	struct sk_peer peer;     /* its id is written into claims and roles */
	struct sk_waitfd *wfd;   /* shmkit_chan_fd(), NULL until asked */
	int fd_side;             /* the side it signals for */
	uint32_t pid;            /* for display in role words only */
	struct {                 /* a claimed slot blocking this side */
		uint64_t word;
		int64_t since;       /* 0: not known yet (a poller's) */
		uint32_t polls;      /* a poller's calls that found word */
		bool on;             /* word is set */
	} watch[2];
};

/* One attempt's inputs and outcome, passed to sk_wait_for as its arg. */
struct attempt {
	shmkit_chan *ch;
	size_t bufcap;           /* consumer: buffer size; -EMSGSIZE above */
	uint64_t pos, word;      /* claimed position and claim word */
	uint32_t len;            /* consumer: message length */
	uint64_t blocker;        /* claimed slot word that blocks, if blocked */
	bool blocked;
	bool check_tail;         /* SPSC consumer: check indices when empty */
	bool dry;                /* only tell whether a claim would succeed */
	void *copy_to;           /* MPMC recv: copy out and take in one CAS */
	bool taken;              /* ...done: the slot is already FREE again */
};

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
			/* Acquire: pairs with stat_give's release store of 0 (and
			 * the CAS below of another taker): the counts the last
			 * owner zeroed are seen zero before we count on them. */
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
static void stat_give(shmkit_chan *ch)
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

/* What stat_count counts. */
enum stat_field { ST_SENT, ST_RECEIVED, ST_FULL_WAITS, ST_EMPTY_WAITS };

/* Count one event: in this handle's entry with a plain load and store (it
 * is the only writer), else a locked add on the shared counter. */
static inline void stat_count(shmkit_chan *ch, enum stat_field f)
{
	struct sk_chan_stat *e = ch->stat;
	struct sk_chan_ctl *c = ch->ctl;

	if (SK_LIKELY(e)) {
		uint64_t *n = f == ST_SENT ? &e->sent : f == ST_RECEIVED ? &e->received :
		              f == ST_FULL_WAITS ? &e->full_waits : &e->empty_waits;
		/* Relaxed: a statistic with one writer, this handle. */
		sk_store_relaxed(n, sk_load_relaxed(n) + 1);
	} else {
		uint64_t *n = f == ST_SENT ? &c->sent : f == ST_RECEIVED ? &c->received :
		              f == ST_FULL_WAITS ? &c->full_waits : &c->empty_waits;
		/* Relaxed: a statistic, ordered with nothing. */
		sk_fetch_add(n, 1, __ATOMIC_RELAXED);
	}
}

/* ---- owners: prototypes (the code follows the recovery section) -------- */

static int owner_take(shmkit_chan *ch);
static struct sk_chan_stat *owned_entry(const shmkit_chan *ch, uint64_t id);

/* Take a peer id for this handle: its claims and roles name it, and the
 * kernel's lock on it says whether the handle lives.  Also after a fork:
 * the child's claims must not be its parent's (whose entry dies with the
 * parent), so it drops the inherited entry and roles and takes its own. */
static SK_COLD int identity_refresh(shmkit_chan *ch)
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

static inline int identity_check(shmkit_chan *ch)
{
	if (SK_LIKELY(ch->peer.id && ch->peer.gen == sk_fork_gen_now()))
		return 0;
	return identity_refresh(ch);
}

/* ---- layout ------------------------------------------------------------ */

uint32_t sk_chan_fingerprint(void)
{
	const uint32_t v[] = {
		sizeof(struct sk_chan_ctl), offsetof(struct sk_chan_ctl, tail),
		offsetof(struct sk_chan_ctl, head), offsetof(struct sk_chan_ctl, not_empty),
		offsetof(struct sk_chan_ctl, not_full), offsetof(struct sk_chan_ctl, reclaimed),
		offsetof(struct sk_chan_ctl, producer), offsetof(struct sk_chan_ctl, consumer),
		sizeof(struct sk_chan_slot), offsetof(struct sk_chan_slot, len),
		offsetof(struct sk_chan_ctl, stat_entries), sizeof(struct sk_chan_stat),
		offsetof(struct sk_chan_stat, token), offsetof(struct sk_chan_stat, prev),
		offsetof(struct sk_chan_stat, claim),
		SK_SEQ_POS_SHIFT, SK_SEQ_STATE_SHIFT, sizeof(shmkit_ec), SK_CACHELINE,
		0x01020304u,
	};
	uint32_t h = 2166136261u; /* FNV-1a over the bytes, endianness included */
	const unsigned char *p = (const unsigned char *)v;

	for (size_t i = 0; i < sizeof(v); i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static inline struct sk_chan_slot *slot_at(const shmkit_chan *ch, uint64_t pos)
{
	return (struct sk_chan_slot *)(void *)(ch->slots + (pos & ch->mask) * ch->slot_size);
}

static inline void *payload(struct sk_chan_slot *s)
{
	return (unsigned char *)s + SK_CHAN_SLOT_HDR;
}

struct geometry {
	uint32_t capacity, max_msg, flags;
	uint32_t stats; /* statistics entries */
};

static int geometry_check(const struct geometry *g)
{
	if (g->capacity == 0 || g->capacity > SK_CHAN_MAX_CAPACITY || (g->capacity & (g->capacity - 1)))
		return sk_fail(-EINVAL, "capacity %u: must be a power of 2 up to %u",
		               g->capacity, SK_CHAN_MAX_CAPACITY);
	if (g->max_msg == 0 || g->max_msg > SK_CHAN_MAX_MSG)
		return sk_fail(-EINVAL, "max_msg %u: must be 1..%u", g->max_msg, SK_CHAN_MAX_MSG);
	return 0;
}

static uint64_t data_bytes(const struct geometry *g)
{
	return SK_CHAN_CTL_SIZE + (uint64_t)g->stats * sizeof(struct sk_chan_stat) +
	       (uint64_t)g->capacity * SK_CHAN_SLOT_SIZE(g->max_msg);
}

/* sk_seg_create_kind init callback: fill the control block and slots
 * before the segment is published READY (no ordering needed here: the
 * READY release store publishes all of it). */
static int chan_init(void *data, size_t size, void *arg)
{
	const struct geometry *g = arg;
	struct sk_chan_ctl *c = data;
	uint64_t slot_size = SK_CHAN_SLOT_SIZE(g->max_msg);

	if (size < data_bytes(g))
		return sk_fail(-EINVAL, "data area of %zu bytes too small", size);
	memset(c, 0, SK_CHAN_CTL_SIZE);
	c->magic = SK_CHAN_MAGIC;
	c->version = SK_CHAN_VERSION;
	c->fingerprint = sk_chan_fingerprint();
	c->flags = g->flags;
	c->capacity = g->capacity;
	c->max_msg = g->max_msg;
	c->slot_size = (uint32_t)slot_size;
	c->stat_entries = g->stats;
	c->slots_off = SK_CHAN_CTL_SIZE + (uint64_t)g->stats * sizeof(struct sk_chan_stat);
	c->slots_bytes = (uint64_t)g->capacity * slot_size;
	shmkit_ec_init(&c->not_empty);
	shmkit_ec_init(&c->not_full);
	memset((unsigned char *)data + SK_CHAN_CTL_SIZE, 0, g->stats * sizeof(struct sk_chan_stat));
	unsigned char *slots = (unsigned char *)data + c->slots_off;
	for (uint64_t i = 0; i < g->capacity; i++) {
		struct sk_chan_slot *s = (struct sk_chan_slot *)(void *)(slots + i * slot_size);
		memset(s, 0, SK_CHAN_SLOT_HDR);
		s->seq = sk_seq_make(i, SK_SLOT_FREE, 0);
	}
	return 0;
}

/* Read the control block once, check it against the segment, cache it. */
static int chan_bind(shmkit_chan *ch, shmkit_seg *seg, void *base, size_t size)
{
	struct sk_chan_ctl *c = base;

	if (size < SK_CHAN_CTL_SIZE)
		return sk_fail(-EBADMSG, "channel data area of %zu bytes holds no control block", size);
	if (c->magic != SK_CHAN_MAGIC)
		return sk_fail(-EPROTO, "not a channel: bad magic %#llx (another kind of segment, "
		               "or a damaged one)", (unsigned long long)c->magic);
	if (c->version != SK_CHAN_VERSION)
		return sk_fail(-EPROTO, "channel format %u, this build reads %u",
		               c->version, SK_CHAN_VERSION);
	if (c->fingerprint != sk_chan_fingerprint())
		return sk_fail(-EPROTO, "channel layout fingerprint %08x differs from this build's %08x",
		               c->fingerprint, sk_chan_fingerprint());
	struct geometry g = { c->capacity, c->max_msg, c->flags, c->stat_entries };
	uint32_t slot_size = c->slot_size;
	uint64_t off = c->slots_off, bytes = c->slots_bytes;
	if (geometry_check(&g) || (g.flags & ~SHMKIT_CHAN_SPSC) ||
	    (g.stats != 0 && (g.stats != SK_CHAN_STAT_ENTRIES || (g.flags & SHMKIT_CHAN_SPSC))) ||
	    slot_size != SK_CHAN_SLOT_SIZE(g.max_msg) ||
	    off != SK_CHAN_CTL_SIZE + (uint64_t)g.stats * sizeof(struct sk_chan_stat) ||
	    bytes != (uint64_t)g.capacity * slot_size || data_bytes(&g) > size)
		return sk_fail(-EBADMSG, "channel control block (capacity %u, max_msg %u, "
		               "slot %u, %u statistics entries) does not fit its %zu-byte segment",
		               g.capacity, g.max_msg, slot_size, g.stats, size);
	ch->seg = seg;
	ch->ctl = c;
	ch->stats = (struct sk_chan_stat *)(void *)((unsigned char *)c + SK_CHAN_CTL_SIZE);
	ch->nstats = g.stats;
	ch->slots = (unsigned char *)c + off;
	ch->cap = g.capacity;
	ch->mask = g.capacity - 1;
	ch->max_msg = g.max_msg;
	ch->slot_size = slot_size;
	ch->spsc = (g.flags & SHMKIT_CHAN_SPSC) != 0;
	return 0;
}

/* ---- MPMC claims -------------------------------------------------------- */

static SK_COLD int corrupt_slot(const shmkit_chan *ch, uint64_t index, uint64_t w, const char *who)
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
		struct sk_chan_slot *s = slot_at(ch, t);
		/* P2.  Acquire: pairs with the consumer's release of FREE
		 * (C3'/C6): its reads of the old message are done.  model:
		 * mpmc.pml P2 (SC in the model). */
		uint64_t w = sk_load_acquire(&s->seq);
		int64_t d = sk_seq_diff(sk_seq_pos(w), t);
		unsigned st = sk_seq_state(w);

		if (SK_UNLIKELY(!diff_ok(ch, d)))
			return claim_none(stored, corrupt_slot(ch, t, w, "tail"));
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
				return claim_none(stored, corrupt_slot(ch, t, w, "tail"));
			t = t2;
			continue;
		}
		/* The slot still holds position t - capacity: full.  Its
		 * consumer's claim READING, or a producer's claim of t -
		 * capacity still FREE or WRITING, blocks us: watched. */
		if (st == SK_SLOT_FREE && free_behind_head(ch, s, w, t - ch->cap))
			return claim_none(stored, corrupt_slot(ch, t, w, "tail"));
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
		struct sk_chan_slot *s = slot_at(ch, h);
		/* C2.  Acquire: pairs with the producer's release store of
		 * FULL (P7): len and payload are visible.  model: mpmc.pml C2
		 * (SC in the model). */
		uint64_t w = sk_load_acquire(&s->seq);
		int64_t d = sk_seq_diff(sk_seq_pos(w), h);
		unsigned st = sk_seq_state(w);

		if (SK_UNLIKELY(!diff_ok(ch, d)))
			return corrupt_slot(ch, h, w, "head");
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
					chan_copy_out(a->copy_to, payload(s), len);
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
			return corrupt_slot(ch, h, w, "head");
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
	struct sk_chan_slot *s = slot_at(ch, h);

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
	while (t - h < ch->cap && sk_load_acquire(&slot_at(ch, t)->seq) == sk_seq_make(t, SK_SLOT_FULL, 0))
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
		/* Acquire on success: pairs with the release in role_drop(),
		 * so the previous holder's last store of tail (or head) is
		 * visible before this handle reads it. */
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
static void role_drop(shmkit_chan *ch, int side)
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
	struct sk_chan_slot *s = slot_at(ch, pos);
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
			stat_count(ch, ST_SENT);
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
			stat_count(ch, ST_RECEIVED);
	} else {
		/* C6.  seq_cst on success (so release): pairs with the
		 * producer's acquire P2 (our reads are done), and is the
		 * seq_cst RMW C7's sk_ec_notify requires (sync.c, "Services").
		 * A CAS from our claim word, as in publish().  model: mpmc.pml
		 * C6, the delivery (SC in the model). */
		if (SK_UNLIKELY(!sk_cas(&slot_at(ch, pos)->seq, &word,
		                        sk_seq_make(pos + ch->cap, SK_SLOT_FREE, 0),
		                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)))
			return stale_claim("release");
		/* A statistic (not kept for embedded channels). */
		if (!ch->embedded)
			stat_count(ch, ST_RECEIVED);
	}
	/* C7: after the seq_cst CAS C3' or C6, so the conditional notify
	 * (see wait.h).  model: mpmc.pml C7. */
	sk_ec_notify(&c->not_full);
	return 0;
}

/* Give a claimed (or dead) position up as if consumed; wake both sides:
 * consumers blocked at it move past, producers may refill it.  model:
 * mpmc.pml R2 (after a reclaim). */
static void give_up(shmkit_chan *ch)
{
	shmkit_ec_inc(&ch->ctl->not_empty);
	shmkit_ec_inc(&ch->ctl->not_full);
}

/* ---- recovery from dead claimers --------------------------------------- */

/* Free the slot claimed by word w (its claimer is dead): 1 if this call
 * did it, 0 if the word had changed. */
static SK_COLD int reclaim_word(shmkit_chan *ch, uint64_t w)
{
	struct sk_chan_slot *s = slot_at(ch, sk_seq_pos(w));

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
	give_up(ch);
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
	if (sk_load_acquire(&slot_at(ch, p)->seq) != free_w)
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
static SK_COLD int reclaim(shmkit_chan *ch, uint64_t w)
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
		 * owned entry's never is: identity_refresh).  Relaxed both
		 * ways: a record only names a claim, which reclaim_claim
		 * then finds named by no live record. */
		uint64_t r = sk_load_relaxed(&ch->stats[i].claim);
		if (r && sk_seq_id(r) == ch->peer.id)
			sk_cas(&ch->stats[i].claim, &r, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	for (uint64_t i = 0; i < ch->cap; i++) {
		/* Acquire: as P2 - the word decides what we do with the slot. */
		uint64_t w = sk_load_acquire(&slot_at(ch, i)->seq);
		unsigned st = sk_seq_state(w);
		if ((st == SK_SLOT_WRITING || st == SK_SLOT_READING) && sk_seq_id(w) == ch->peer.id)
			reclaim_word(ch, w);
	}
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
	return reclaim(ch, w);
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
	if (sk_load_acquire(&slot_at(ch, sk_seq_pos(w))->seq) != w)
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
		struct sk_chan_slot *s = slot_at(ch, i);
		/* Acquire: as P2/C2 - the word decides, and a reader of the
		 * payload below sees what the producer wrote (P7's release
		 * sequence runs through the dead consumer's claim CAS). */
		uint64_t w = sk_load_acquire(&s->seq);
		unsigned st = sk_seq_state(w);
		if (sk_seq_id(w) != from || (st != SK_SLOT_READING && st != SK_SLOT_WRITING))
			continue;
		if ((sk_seq_pos(w) & ch->mask) != i)
			return corrupt_slot(ch, i, w, "owner");
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
		    sk_load_acquire(&slot_at(ch, q)->seq) == free_w) { /* acquire: as abandon() */
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
		stat_count(ch, side == PROD ? ST_FULL_WAITS : ST_EMPTY_WAITS);
		return true;
	}
	ch->polls[side]++;
	if (timeout_ns == 0 && ch->polls[side] < SK_CHAN_POLL_BATCH)
		return false;
	flush_polls(ch, side);
	return true;
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

	if (SK_UNLIKELY(r = identity_check(ch)))
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

/* ---- public: lifecycle -------------------------------------------------- */

static const struct shmkit_chan_opts default_opts;

static int opts_check(const struct shmkit_chan_opts *o)
{
	if (o->flags & ~SK_CHAN_OPEN_FLAGS)
		return sk_fail(-EINVAL, "unknown channel flags 0x%x", o->flags & ~SK_CHAN_OPEN_FLAGS);
	if (o->wait < SHMKIT_WAIT_ADAPTIVE || o->wait > SHMKIT_WAIT_BLOCK)
		return sk_fail(-EINVAL, "wait strategy %d is not an enum shmkit_wait", o->wait);
	return 0;
}

static struct shmkit_seg_opts seg_opts(const struct shmkit_chan_opts *o, size_t size)
{
	struct shmkit_seg_opts so = {
		.size = size,
		.mode = o->mode,
		.flags = o->flags & ~SHMKIT_CHAN_SPSC,
		.init_timeout_ns = o->init_timeout_ns,
	};
	return so;
}

/* Wrap a channel segment in a handle; on failure seg is left to the caller. */
static int chan_new_at(shmkit_chan **out, shmkit_seg *seg, void *base, size_t size,
                       const struct shmkit_chan_opts *o)
{
	shmkit_chan *ch = calloc(1, sizeof(*ch));
	int err;

	if (!ch)
		return -ENOMEM;
	if ((err = chan_bind(ch, seg, base, size))) {
		free(ch);
		return err;
	}
	ch->peer = (struct sk_peer)SK_PEER_INIT;
	ch->wait = o->wait;
	ch->rdonly = (o->flags & SHMKIT_RDONLY) != 0;
	ch->token = o->owner;
	if (ch->token && (ch->rdonly || ch->spsc || !ch->nstats)) {
		free(ch);
		return sk_fail(-EINVAL, "an owner token needs a writable MPMC channel (an SPSC "
		               "channel gives a dead consumer's message to the next one itself)");
	}
	/* A handle that may claim takes its peer entry now, so that a
	 * missing /proc or lock file is an error of open, not of send. */
	if (!ch->rdonly && (err = identity_refresh(ch))) {
		sk_peer_leave(&ch->peer);
		free(ch);
		return err;
	}
	*out = ch;
	return 0;
}

static int chan_new(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *o)
{
	return chan_new_at(out, seg, shmkit_seg_data(seg), shmkit_seg_size(seg), o);
}

/* ---- embedded channels (chan.h) ------------------------------------------ */

uint64_t sk_chan_bytes(uint32_t capacity, uint32_t max_msg)
{
	struct geometry g = { capacity, max_msg, 0, 0 };
	return data_bytes(&g);
}

int sk_chan_init_at(void *base, size_t size, uint32_t capacity, uint32_t max_msg)
{
	struct geometry g = { capacity, max_msg, 0, 0 };
	int err = geometry_check(&g);
	return err ? err : chan_init(base, size, &g);
}

int sk_chan_embed(shmkit_chan **out, shmkit_seg *seg, void *base, size_t size, int wait)
{
	struct shmkit_chan_opts o = { .wait = wait };
	int err = chan_new_at(out, seg, base, size, &o);
	if (!err)
		(*out)->embedded = true;
	return err;
}

int sk_chan_identity(shmkit_chan *ch, uint32_t *id)
{
	int err = identity_check(ch);
	*id = ch->peer.id;
	return err;
}

static int chan_finish(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *o, int err)
{
	if (!err && (err = chan_new(out, seg, o)))
		shmkit_seg_close(seg);
	return err;
}

int shmkit_chan_create(shmkit_chan **out, const char *name, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	struct geometry g;
	shmkit_seg *seg = NULL;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (o->flags & SHMKIT_RDONLY)
		return sk_fail(-EINVAL, "a channel cannot be created read-only");
	g.capacity = o->capacity ? o->capacity : SK_CHAN_DEFAULT_CAPACITY;
	if (g.capacity <= SK_CHAN_MAX_CAPACITY)
		g.capacity = g.capacity <= 1 ? 1 : 1u << (32 - __builtin_clz(g.capacity - 1));
	g.max_msg = o->max_msg ? o->max_msg : SK_CHAN_DEFAULT_MAX_MSG;
	g.flags = o->flags & SHMKIT_CHAN_SPSC;
	g.stats = g.flags & SHMKIT_CHAN_SPSC ? 0 : SK_CHAN_STAT_ENTRIES;
	if ((err = geometry_check(&g)))
		return err;
	uint64_t bytes = data_bytes(&g);
	if (bytes > SIZE_MAX / 2)
		return sk_fail(-EINVAL, "channel of %llu bytes is too large", (unsigned long long)bytes);
	struct shmkit_seg_opts so = seg_opts(o, (size_t)bytes);
	err = sk_seg_create_kind(&seg, name, &so, SHMKIT_KIND_CHAN, chan_init, &g);
	if (err)
		return err;
	bool made = seg->made; /* a create-or-open may have found it */
	err = chan_finish(out, seg, o, err);
	/* As shmkit_bus_create: a handle that could not take its peer entry
	 * (no lock file descriptor, a refused lock) must not leave the
	 * channel it made behind (the fault loops found it named). */
	if (err && made)
		shmkit_seg_remove(name);
	return err;
}

int shmkit_chan_open(shmkit_chan **out, const char *name, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	shmkit_seg *seg = NULL;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (o->flags & (SHMKIT_EXCL | SHMKIT_CHAN_SPSC | SHMKIT_NOSEAL | SHMKIT_HUGE))
		return sk_fail(-EINVAL, "exclusive, SPSC, no-seal and huge are create options");
	struct shmkit_seg_opts so = seg_opts(o, 0);
	err = sk_seg_open_kind(&seg, name, &so, SHMKIT_KIND_CHAN);
	return chan_finish(out, seg, o, err);
}

int shmkit_chan_attach(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	int err;

	sk_clear_detail();
	if (!out || !seg)
		return sk_fail(-EINVAL, "out or seg is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (shmkit_seg_kind(seg) != SHMKIT_KIND_CHAN)
		return sk_fail(-EPROTO, "segment of kind %d is not a channel", shmkit_seg_kind(seg));
	return chan_new(out, seg, o);
}

shmkit_seg *shmkit_chan_seg(const shmkit_chan *ch)
{
	return ch ? ch->seg : NULL;
}

int shmkit_chan_close(shmkit_chan *ch)
{
	if (!ch)
		return 0;
	if (sk_peer_forked(&ch->peer)) {
		/* A forked child: claims, roles and statistics entry are its
		 * parent's. */
		sk_peer_forget(&ch->peer);
		ch->reserved = ch->role[PROD] = ch->role[CONS] = false;
		ch->peeked = PEEK_NONE;
		ch->stat = NULL;
	}
	if (ch->reserved)
		shmkit_chan_abort(ch);
	if (ch->peeked == PEEK_OPEN)
		shmkit_chan_release(ch);
	/* PEEK_INHERITED: never returned, so left claimed for the owner's
	 * next handle (the entry keeps our id: stat_give). */
	role_drop(ch, PROD);
	role_drop(ch, CONS);
	stat_give(ch);
	sk_peer_leave(&ch->peer); /* drops the locks: after the roles */
	sk_waitfd_close(ch->wfd);
	if (!ch->embedded)
		shmkit_seg_close(ch->seg);
	free(ch);
	return 0;
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
		memcpy(payload(slot_at(ch, a.pos)), msg, len);
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
		memcpy(buf, payload(slot_at(ch, ch->peek_pos)), ch->peek_len);
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
		memcpy(buf, payload(slot_at(ch, a.pos)), a.len);
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
	*buf = payload(slot_at(ch, a.pos));
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
	if (!sk_cas(&slot_at(ch, ch->resv_pos)->seq, &w,
	            sk_seq_make(ch->resv_pos + ch->cap, SK_SLOT_FREE, 0),
	            __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return stale_claim("abort");
	/* Relaxed: a statistic. */
	sk_fetch_add(&ch->ctl->aborted, 1, __ATOMIC_RELAXED);
	give_up(ch);
	return 0;
}

ssize_t shmkit_chan_peek(shmkit_chan *ch, const void **buf, int64_t timeout_ns)
{
	struct attempt a = { .bufcap = SIZE_MAX, .ch = ch };
	int err;

	if (!can_recv(ch) || !buf) {
		if (ch && buf && ch->peeked == PEEK_INHERITED) {
			ch->peeked = PEEK_OPEN; /* the inherited message, returned now */
			*buf = payload(slot_at(ch, ch->peek_pos));
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
	*buf = payload(slot_at(ch, a.pos));
	return a.len;
}

int shmkit_chan_release(shmkit_chan *ch)
{
	if (!ch || !ch->peeked)
		return sk_fail(-EINVAL, "no peeked message to release");
	ch->peeked = PEEK_NONE;
	return consumed(ch, ch->peek_pos, ch->peek_word, false);
}

/* ---- public: owners (file top, "Owners") ---------------------------------- */

static SK_COLD int not_owned(const char *what)
{
	return sk_fail(-EINVAL, "%s: this handle was not opened with an owner token", what);
}

int shmkit_chan_commit_tag(shmkit_chan *ch, size_t len, uint64_t tag)
{
	struct sk_chan_stat *e;
	int err;

	if (!ch || !ch->reserved)
		return sk_fail(-EINVAL, "no reservation to commit");
	if (!ch->token || !(e = ch->stat))
		return not_owned("commit_tag");
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

int shmkit_chan_owner_tag(shmkit_chan *ch, uint64_t *tag)
{
	if (!ch || !tag)
		return sk_fail(-EINVAL, "channel or tag is NULL");
	if (!ch->token || !ch->stat)
		return not_owned("owner_tag");
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
		return not_owned("disown");
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

/* ---- public: statistics ------------------------------------------------- */

int shmkit_chan_stats(shmkit_chan *ch, struct shmkit_chan_stats *st)
{
	if (!ch || !st)
		return sk_fail(-EINVAL, "channel or stats is NULL");
	const struct sk_chan_ctl *c = ch->ctl;
	/* Relaxed throughout: a snapshot for people, ordered with nothing. */
	uint64_t tail = sk_load_relaxed(&c->tail), head = sk_load_relaxed(&c->head);

	memset(st, 0, sizeof(*st));
	st->capacity = (uint32_t)ch->cap;
	st->max_msg = ch->max_msg;
	st->depth = (int64_t)(tail - head) < 0 ? 0 : tail - head > ch->cap ? ch->cap : tail - head;
	st->sent = ch->spsc ? tail : sk_load_relaxed(&c->sent);
	st->received = ch->spsc ? head : sk_load_relaxed(&c->received);
	st->full_waits = sk_load_relaxed(&c->full_waits);
	st->empty_waits = sk_load_relaxed(&c->empty_waits);
	for (uint32_t i = 0; i < ch->nstats; i++) { /* the handles' own counts */
		const struct sk_chan_stat *e = &ch->stats[i];
		st->sent += sk_load_relaxed(&e->sent);
		st->received += sk_load_relaxed(&e->received);
		st->full_waits += sk_load_relaxed(&e->full_waits);
		st->empty_waits += sk_load_relaxed(&e->empty_waits);
	}
	st->reclaimed = sk_load_relaxed(&c->reclaimed);
	st->aborted = sk_load_relaxed(&c->aborted);
	st->slot_size = ch->slot_size;
	st->hdr_size = ch->seg->data_off + (size_t)((unsigned char *)ch->slots - (unsigned char *)c);
	st->seg_size = ch->seg->map_size;
	st->spsc = ch->spsc;
	/* Relaxed: a snapshot for people. */
	st->producer = sk_role_pid(sk_load_relaxed(&c->producer));
	st->consumer = sk_role_pid(sk_load_relaxed(&c->consumer));
	return 0;
}
