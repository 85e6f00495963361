/*
 * bus.h - the bus's shared-memory format, the parts of its protocol both
 * sides run, and the internals bus.c (create, open, close, tables,
 * statistics), bus_pub.c (publishers) and bus_sub.c (subscribers) share.
 * Not public.  Publishing (P1-P6) is the essay at the top of bus_pub.c;
 * reading (R1-R4) and the pollable fd are at the top of bus_sub.c.
 *
 * ---- Layout of the data area (after the segment header page) -----------
 *
 *   off     size            what
 *   0       88 (128)        struct sk_bus_geom: magic "BUS1", layout version,
 *                           fingerprint, capacity, max_msg, delivery,
 *                           stride, table sizes, bus id, offsets, total.
 *                           Written once at create, before READY; read once
 *                           at open into the handle, never trusted again.
 *   128     64              head      u64  next sequence to claim
 *   192     64              published shmkit_ec  (+1 per commit or skip)
 *   256     64              consumed  shmkit_ec  (back-pressure: +1 each
 *                                     time a subscriber moves its cursor)
 *   320     64              joins     u64  +1 per subscriber join
 *   384     64              armed     u32  subscribers sleeping on their fd
 *   448     nsubs*64        subscriber table (struct sk_bus_sub_ent)
 *   ...     npubs*64        publisher table  (struct sk_bus_pub_ent)
 *   ...     capacity*8      claim words, one per slot, 8 to a cache line
 *                           (rounded up to 128 bytes)
 *   ...     capacity*stride slots: {u64 word; u32 len; u32 pad; payload}
 *
 * Every hot word has its own cache line.  stride = 16 + max_msg rounded up
 * to 128, and slots start on a 128-byte boundary: a slot fills whole pairs
 * of lines, so the spatial prefetcher of a subscriber reading one slot
 * never fetches the next one's line while the publisher writes it
 * (SK_PAIR).  The table sizes are creation options (max_subscribers, default
 * 64, at most 16384; max_publishers, default 62, at most 510).  Sequences
 * are 51 bits (2^51 messages: a year at 6.6 * 10^7 per second, a single
 * publisher's best here).
 *
 * ---- Two words per slot: the claim and the slot word ----------------------
 *
 * A slot has a claim word (in the claim array, away from the slot) that
 * says who may write into the slot, and a slot word (its first 8 bytes,
 * on the line with the payload's start) that says what readers find
 * there.  Subscribers poll the slot word; they read the claim word only
 * when a slot is late.  Publishers arbitrate among themselves and with
 * readers that give a sequence up on the claim word, by CAS; the slot
 * word sees plain stores from the claim's holder (its mark) and the CASes
 * of the holder's commit and of a take (below): no publisher's locked
 * instruction lands on the line a spinning subscriber is polling before
 * the message is there.  (Version 2 claimed with a CAS on the slot word
 * itself; the subscriber took the line back at once and the payload
 * stores had to fetch it again: 1.8-2.0x the SPSC channel's round trip.)
 *
 *   word = seq << 13 | L << 12 | T << 11 | pub << 2 | st   (0 = never written)
 *
 * Claim word (monotonic: every CAS on it sets a sequence >= its own):
 *   st 1 (CLAIMED)  publisher `pub` holds the slot for sequence seq; it
 *                   is done with it once the slot word shows its commit
 *                   or abort of seq (sk_bus_claim_done), or when its
 *                   entry's cur moves on or its lock is gone
 *                   (sk_bus_holder_in_slot)
 *   st 3 (GIVEN)    sequence seq was given up, it carries no message
 *                   (readers pass it silently): T = 0, pub = 510: nobody
 *                   is in the slot (a claimer stalled or died before
 *                   claiming, or died claimed and unmarked); T = 1:
 *                   holder `pub` may still write into the slot, so
 *                   nobody reuses it while it does (sk_bus_holder_in_slot).
 * Slot word:
 *   st 1 WRITING    the claim's holder `pub` is writing message seq (its
 *                   mark, a plain store after winning the claim)
 *      2 MSG        message seq is committed: len and payload are stable
 *      3 SKIP       T = 0: an aborted loan (passed silently); T = 1: the
 *                   record was taken from its holder `pub` (dead, a loan
 *                   stalled past SK_BUS_STUCK_NS on an overwrite bus, or lapped
 *                   by a publisher that gave its own sequence up); L = 1:
 *                   it was a loan, counted lost by readers.
 * A slot holds sequence s at index s & (capacity - 1).  For a reader at
 * position p the slot word says: seq < p (or 0) nothing of p yet (the
 * claim says whether p is claimed, given up or lapped); seq == p and
 * WRITING being written; seq == p and MSG/SKIP ready; seq > p the message
 * was overwritten (the reader lagged by a whole ring).
 *
 * ---- Back-pressure ------------------------------------------------------
 *
 * A subscriber's table entry holds its cursor (all sequences below it are
 * consumed), release-stored after it has finished with the payload (pairs
 * with the acquire load in the publisher's scan, so the publisher reuses
 * the slot only after the reader's last access).  A publisher may claim s
 * only when s - min(cursor of live subscribers) < capacity.  It keeps that
 * minimum in its private handle and rescans the table (O(table)) only when
 * the ring looks full or the join counter moved, so the per-message cost
 * does not grow with subscribers.  The rescan checks the liveness of the
 * entries that block it (the kernel lock of the entry, peer.h, at most
 * every 5 ms) and reaps the dead: a SIGKILLed subscriber stops counting
 * within a few milliseconds of the ring filling.
 *
 * Joining without losing: the joiner (J1) fills its entry and
 * seq_cst-stores state ACTIVE, (J2) fetch_adds joins (seq_cst), (J3)
 * loads head = h (seq_cst) and starts at h (newest) or max(0, h-cap+1)
 * (oldest).  A publisher (B1) loads head = w, (B2) loads joins, rescans
 * if it changed since its last scan, and (B3) CASes head w -> w+1, all
 * seq_cst.  If B2 follows J2 in the single total order the publisher
 * rescans and sees the entry.  Otherwise B1 < B2 < J2 < J3; a successful
 * B3 before J3 is included in h; one after J3 needs head == w at B3, so
 * h == w and the stale claim w overwrites sequence w - cap = h - cap,
 * below the joiner's start.  Only one such stale claim can succeed (head
 * moves on), which is why "oldest" in back-pressure mode is capacity - 1
 * messages, not capacity.
 *
 * ---- Stuck slots --------------------------------------------------------
 *
 * A subscriber at p that finds nothing ready reads head and the claim
 * only on a full look (sub_quick_look: one look in SUB_HEAD_EVERY while
 * spinning, every look while the count's waiter flag is set, so before
 * any sleep).  A claim that settles p - given up, or a later sequence's
 * (lapped) - is acted on at once.  Head > p but p not ready for 50 ms:
 * it looks closer.  WRITING(p) by publisher i in the slot word: while i
 * is still in the slot (sk_bus_holder_in_slot: its entry's cur maps there and
 * its lock is held - alive, stopped or not) it keeps waiting, except for
 * a loan on an overwrite bus, whose readers never wait for one; otherwise
 * (i dead, or that loan) it CASes the slot word to taken(p, i), counted
 * lost if i's entry says it is a loan (`loaning`, set at P2); i's commit
 * then fails: -ESTALE for a loan, a copier claims again.  Claimed by i
 * and not marked: a live i is waited for (it is about to mark); a dead
 * one wrote nothing, and the claim becomes given(p).  Not claimed at all
 * (the claimer stalled or died between P1 and P3): it gives p up in the
 * claim - given(p, 510), or given(p, holder) if the slot still holds a
 * record whose holder may write into it; a live but stalled claimer then
 * fails P3 and claims a fresh sequence, so nothing is lost.  Every
 * give-up and take increments `published` (sleepers look again).  P2
 * comes before P3 and P3 releases it, so a reader that sees the claim
 * (acquire) also sees cur == p: no window.
 *
 * A record's holder may still be writing into the slot after its
 * sequence was given up or its record taken (a stopped loan holder, a
 * preempted copier): the slot is reused only once it is out - its entry's
 * cur moved on (release-stored when it is done with the slot, P5b) or its
 * lock is gone.  A publisher whose claim lands on a slot a live holder is
 * still in does not wait for a loan on an overwrite bus (nor for a record
 * already taken): it gives that sequence up (given(seq, holder) in the
 * claim, and takes the holder's marked record, so its commit fails) and
 * claims another, or returns -EAGAIN at once if it was told to try once;
 * a copy in progress it waits for up to SK_BUS_STUCK_NS first (lapped readers
 * count given-up sequences as lost, so they should be rare).  On a
 * back-pressure bus it waits, bounded by its deadline.
 *
 * ---- Model -----------------------------------------------------------------
 *
 * models/bus.pml (make models; SPIN) checks the overwrite bus's copy path
 * with a publisher allowed to die before every step and a live claimer
 * taken for stalled: a delivered message is the one committed under its
 * sequence, whole, at most once, in its publisher's order; every committed
 * message is delivered or counted lost; no lost wake-up.  Comments "model:
 * bus.pml STEP" name the step an atomic stands for; SPIN's interleavings
 * are sequentially consistent, so where they say "SC in the model" the
 * C11 order used (relaxed, the P4/R3 fences, acquire/release pairs) is
 * assumed, not checked.  The claim word and the plain-store mark are
 * modelled; mutants BUG_CLAIM_STORE (the claim a plain store: a claimer
 * whose sequence was given up marks and writes over a slot handed on) and
 * BUG_NO_MARK (payload written before any mark: a lagging reader's copy
 * is torn) must fail.  Not modelled: back-pressure (B1-B3, J1-J3, the
 * cursor scan and reaping), loans, the pollable fd beyond its arming
 * order (the same as sk_wait_for's), the lock loss of shmkit.h's Caveats
 * (a live holder taken for dead would mark and commit into a slot handed
 * on: a message may then be read torn, as on a channel).
 *
 * ---- Tables and liveness ------------------------------------------------
 *
 * An entry belongs to whoever holds the kernel's lock on its byte of the
 * segment's lock file (peer.h: an open-file-description lock the kernel
 * drops at its holder's death, in any PID or time namespace): the kernel
 * arbitrates a race for it, so two joiners can never own one entry, and
 * only the winner writes the entry's fields.  A reaper takes a dead
 * entry's lock before it resets anything.  The owner word (gen << 32 |
 * pid) is for display only.  A handle's subscriptions all lock through
 * its one description, whose own locks never conflict with each other:
 * the handle keeps a bitmap of the entries it holds and skips them.
 *
 * ---- What survives a crash -----------------------------------------------
 *
 * Everything is in the segment: a dead publisher's WRITING slot, its
 * unmarked claim and a sequence it never claimed are resolved by readers
 * as above; a dead subscriber's
 * entry is reaped by publishers (back-pressure) or by the next joiner
 * needing room; a dead sleeper leaves at most the event count's waiter
 * flag set, which costs the next publisher one needless wake.
 */
#ifndef SHMKIT_BUS_H
#define SHMKIT_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "peer.h"
#include "seg.h"

#define SK_BUS_MAGIC 0x31535542u    /* "BUS1" */
#define SK_BUS_VERSION 4u           /* 4: slots fill 128-byte pairs;
                                       3: claims on their own lines, off the
                                       slot word subscribers poll; 2: tables
                                       sized at creation; entries held by
                                       kernel locks (peer.h); 10-bit pub */
#define SK_BUS_MAX_SUBS 16384u
#define SK_BUS_MAX_PUBS 510u        /* pub index 510 marks an abandoned claim */
#define SK_BUS_PUB_SHIFT 2
#define SK_BUS_PUB_MASK 511u
#define SK_BUS_SEQ_SHIFT 13
#define SK_BUS_W_TAKEN (1u << 11)   /* SKIP: taken from its holder `pub` */
#define SK_BUS_W_LOST (1u << 12)    /* SKIP: ... a loan: readers count it lost */
#define SK_BUS_SLOT_HDR 16u
#define SK_BUS_MAX_CAP (1u << 24)
#define SK_BUS_MAX_MSG (64u << 20)
#define SK_BUS_SEQ_MAX (1ULL << 51)

/* st of a slot word (claim words use SK_BUS_WRITING for CLAIMED and
 * SK_BUS_SKIP for GIVEN); SK_BUS_ABANDON_CLAIM, the pub of a claim
 * given up with nobody in the slot */
#define SK_BUS_WRITING 1u
#define SK_BUS_MSG 2u
#define SK_BUS_SKIP 3u
#define SK_BUS_ABANDON_CLAIM 510u

#define SK_BUS_ENT_FREE 0u
#define SK_BUS_ENT_ACTIVE 1u

#define SK_BUS_STUCK_NS (50 * 1000000LL) /* a slot not ready this long is examined */

struct sk_bus_geom {
	uint32_t magic, version, fingerprint, capacity;
	uint32_t max_msg, delivery, stride, nsubs;
	uint32_t npubs, pad;
	uint64_t bus_id, subs_off, pubs_off, slots_off, total;
	uint64_t claims_off;
};

struct sk_bus_sub_ent {
	uint64_t owner;         /* gen << 32 | pid, for display; 0 = left */
	uint64_t rsv;
	uint32_t state;         /* SK_BUS_ENT_FREE / SK_BUS_ENT_ACTIVE */
	uint32_t armed;         /* 1: its fd is armed (display only) */
	uint64_t cursor;        /* next sequence it reads */
	uint64_t lost;          /* messages it lost (statistics) */
	uint64_t delivered;     /* messages it received (statistics) */
	uint64_t pad[2];
} SK_ALIGNED_CL;

struct sk_bus_pub_ent {
	uint64_t owner;         /* as in sk_bus_sub_ent */
	uint64_t loaning;       /* 1: its claim `cur` is a loan, 0: a copy */
	uint64_t cur;           /* sequence it claimed last (stuck readers) */
	uint64_t count;         /* messages it published (statistics) */
	uint64_t aborted;
	uint64_t pad[3];
} SK_ALIGNED_CL;

struct sk_bus_ctl {
	struct sk_bus_geom geom SK_ALIGNED_CL;
	uint64_t head SK_ALIGNED_CL;
	shmkit_ec published SK_ALIGNED_CL;
	shmkit_ec consumed SK_ALIGNED_CL;
	uint64_t joins SK_ALIGNED_CL;
	uint32_t armed SK_ALIGNED_CL;
	/* then nsubs subscriber entries, npubs publisher entries, slots */
};

struct sk_bus_slot {
	uint64_t word;
	uint32_t len;
	uint32_t pad;
	unsigned char data[];
};

struct shmkit_bus {
	shmkit_seg *seg;
	struct sk_bus_ctl *ctl;
	struct sk_bus_sub_ent *subs;
	struct sk_bus_pub_ent *pubs;
	uint32_t nsubs_max, npubs_max; /* table sizes, cached at open */
	struct sk_peer peer;    /* this handle's lock-file description */
	uint64_t *held;         /* bitmap: subscriber entries this handle holds
	                           (its own locks do not conflict with it) */
	unsigned char *slots;
	uint64_t *claims;       /* capacity claim words, 8 to a line */
	uint32_t cap, mask, max_msg, stride, delivery;
	uint64_t bus_id;
	int wait;
	int nsubs;              /* open subscriptions on this handle */
	/* the current call's timeout; its deadline is read from the clock
	 * only when the call has to wait (INT64_MIN until then) */
	int64_t tmo, deadline;
	/* publisher side, registered lazily per process (fork-safe) */
	pid_t pub_pid;
	int pub_idx;            /* -1 until registered */
	/* back-pressure cache: min cursor of live subscribers at last scan */
	uint64_t min_cur, min_joins;
	int64_t live_checked;
	/* outstanding loan */
	bool loaned;
	uint64_t loan_seq;
	struct sk_waitfd *wfd;  /* the publisher's fd: NULL until shmkit_bus_fd() */
};

_Static_assert(sizeof(struct sk_bus_geom) <= 2 * SK_CACHELINE, "sk_bus_geom fits two cache lines");
_Static_assert(sizeof(struct sk_bus_sub_ent) == 64, "sub entry is one cache line");
_Static_assert(sizeof(struct sk_bus_pub_ent) == 64, "pub entry is one cache line");
_Static_assert(sizeof(struct sk_bus_slot) == SK_BUS_SLOT_HDR, "slot header size");

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t sk_bus_w_seq(uint64_t w) { return w >> SK_BUS_SEQ_SHIFT; }
static inline uint32_t sk_bus_w_st(uint64_t w) { return (uint32_t)(w & 3); }
static inline uint32_t sk_bus_w_pub(uint64_t w)
{
	return (uint32_t)((w >> SK_BUS_PUB_SHIFT) & SK_BUS_PUB_MASK);
}
static inline bool sk_bus_w_taken(uint64_t w)
{
	return sk_bus_w_st(w) == SK_BUS_SKIP && (w & SK_BUS_W_TAKEN);
}
static inline uint64_t sk_bus_mkword(uint64_t seq, uint32_t pub, uint32_t st)
{
	return seq << SK_BUS_SEQ_SHIFT | (uint64_t)pub << SK_BUS_PUB_SHIFT | st;
}
static inline pid_t sk_bus_owner_pid(uint64_t o) { return (pid_t)(uint32_t)o; }
static inline uint64_t sk_bus_owner_gen(uint64_t o) { return o >> 32; }

/* The lock bytes that hold table entries (peer.h). */
static inline uint64_t sk_bus_sub_lock(unsigned i) { return SK_PEER_BUS_SUB + i; }
static inline uint64_t sk_bus_pub_lock(unsigned i) { return SK_PEER_BUS_PUB + i; }

static inline struct sk_bus_slot *sk_bus_slot_at(const shmkit_bus *b, uint64_t seq)
{
	return (struct sk_bus_slot *)(b->slots + (size_t)(seq & b->mask) * b->stride);
}

static inline uint64_t *sk_bus_claim_at(const shmkit_bus *b, uint64_t seq)
{
	return &b->claims[seq & b->mask];
}

/* Deadline of the current call, read from the clock on first use. */
static inline int64_t sk_bus_lazy_deadline(int64_t *deadline, int64_t tmo)
{
	if (*deadline == INT64_MIN)
		*deadline = sk_deadline(tmo);
	return *deadline;
}

/* ---- table entries -------------------------------------------------------
 *
 * An entry is owned by whoever holds the kernel lock on its byte (peer.h):
 * the kernel, not a compare-and-swap on a word, decides who wins a race
 * for it, and drops the lock when the owner dies, whatever its pid or
 * namespaces.  Only the owner writes an entry's fields, and it writes them
 * after it holds the lock: a new owner resets what a dead one left, a
 * reaper of a dead entry takes its lock first, resets it, and lets go.
 * The owner word (generation << 32 | pid) is for display only.
 */

/* Does a live process hold the entry at lock byte off?  Unknowable counts
 * as alive: we never reap what we cannot prove dead. */
static inline bool sk_bus_ent_live(const shmkit_bus *b, uint64_t off)
{
	return sk_peer_held(b->seg, off) != 0;
}

/* Write our display word into an entry we now own: the next generation. */
static inline uint64_t sk_bus_ent_claim(uint64_t *owner)
{
	/* Relaxed: display only; the lock is the ownership. */
	uint64_t n = (sk_bus_owner_gen(sk_load_relaxed(owner)) + 1) << 32 | (uint32_t)getpid();
	sk_store_relaxed(owner, n);
	return n;
}

static inline int sk_bus_ent_take(shmkit_bus *b, uint64_t base, const uint64_t *owner0,
                                  size_t stride, unsigned n, const uint64_t *mine)
{
	return sk_peer_take_entry(&b->peer, base, owner0, stride, n, mine);
}

/* Give an entry up: owner word 0 (a clean leave), then the lock.  On a
 * back-pressure bus a subscriber leaving (unsubscribed or reaped) may free
 * room, so `consumed` moves and wakes a waiting publisher or its fd (a
 * publisher's entry leaving costs one needless increment). */
static inline void sk_bus_ent_leave(shmkit_bus *b, uint64_t *owner, uint64_t off)
{
	/* Release: our writes to the entry are done before the next owner,
	 * whose lock is taken after our unlock, reads it. */
	sk_store_release(owner, 0);
	sk_peer_unlock(&b->peer, off);
	/* Release RMW after the entry's state went FREE: pairs with the
	 * publisher's acquire of consumed (its arm, sk_ec_arm, or its
	 * sleeper's wake-up) before bp_rescan reads the state. */
	if (b->delivery == SHMKIT_BUS_BACKPRESSURE)
		shmkit_ec_inc(&b->ctl->consumed);
}

/* ---- slot records: may a holder still write into a slot? ----------------- */

/* Is the record *v (WRITING, or SKIP taken from its holder) a loan (its
 * holder may hold it indefinitely, and its contents are lost when taken
 * from it) rather than a copy in progress (whose publisher, if it lives,
 * claims again and loses nothing)?  Read from the writer's entry, which
 * it set before its claim (P2): P3 releases it, the caller's acquire of
 * the word made it visible. */
static inline bool sk_bus_record_is_loan(const shmkit_bus *b, uint64_t v)
{
	uint32_t pi = sk_bus_w_pub(v);

	if (pi >= b->npubs_max)
		return false;
	const struct sk_bus_pub_ent *e = &b->pubs[pi];
	/* Relaxed: ordered after the caller's acquire load of the word. */
	return sk_load_relaxed(&e->cur) == sk_bus_w_seq(v) && sk_load_relaxed(&e->loaning) == 1;
}

/* The word that takes record v (WRITING) from its holder: SKIP, naming
 * the holder, counted lost if it is a loan. */
static inline uint64_t sk_bus_taken_word(const shmkit_bus *b, uint64_t v)
{
	return sk_bus_mkword(sk_bus_w_seq(v), sk_bus_w_pub(v), SK_BUS_SKIP) | SK_BUS_W_TAKEN |
	       (sk_bus_record_is_loan(b, v) ? SK_BUS_W_LOST : 0);
}

/* May the holder named by word v (WRITING, or taken from it) still
 * write into the slot?  A holder keeps `cur` at the sequence it claimed
 * (P2) until it is done with the slot - committed, aborted, or its commit
 * refused because the record was taken from it (pub_commit) - and a
 * taken word may stand for a later sequence of the same slot (given up
 * since), so: cur maps to this slot, is not after the word's sequence,
 * and the holder lives.  1 yes, 0 no, < 0 corrupt. */
static inline int sk_bus_holder_in_slot(const shmkit_bus *b, uint64_t v)
{
	uint32_t pi = sk_bus_w_pub(v);

	if (sk_bus_w_st(v) == SK_BUS_SKIP && !sk_bus_w_taken(v))
		return 0;
	if (pi >= b->npubs_max)
		return sk_fail(-EBADMSG, "slot word %#llx names publisher %u of %u",
		               (unsigned long long)v, pi, b->npubs_max);
	/* Acquire: pairs with the holder's release store of cur when it is
	 * done with the slot: its writes into it happen before ours.
	 * model: bus.pml HOLDER_IN (SC in the model). */
	uint64_t cur = sk_load_acquire(&b->pubs[pi].cur);
	if (cur >= SK_BUS_SEQ_MAX || (cur & b->mask) != (sk_bus_w_seq(v) & b->mask) ||
	    cur > sk_bus_w_seq(v))
		return 0;
	return sk_bus_ent_live(b, sk_bus_pub_lock(pi));
}

/* Is the claim c (with w the slot word) finished with: may nobody it
 * names write into the slot any more?  Never claimed; given up with no
 * holder in the slot; or claimed by a holder whose commit or abort of
 * that very sequence the word shows (P5: after its last write into the
 * slot; the caller's acquire load of the word pairs with it).  false: a
 * holder may still be in the slot - the caller asks sk_bus_holder_in_slot. */
static inline bool sk_bus_claim_done(uint64_t c, uint64_t w)
{
	if (c == 0 || (sk_bus_w_st(c) == SK_BUS_SKIP && !sk_bus_w_taken(c)))
		return true;
	return sk_bus_w_st(c) == SK_BUS_WRITING &&
	       (w >> SK_BUS_PUB_SHIFT) == (c >> SK_BUS_PUB_SHIFT) &&
	       (sk_bus_w_st(w) == SK_BUS_MSG || sk_bus_w_st(w) == SK_BUS_SKIP);
}

/* ---- across the files ---------------------------------------------------- */

/* bus.c */
extern const struct shmkit_bus_opts sk_bus_default_opts;
int sk_bus_check_opts(const struct shmkit_bus_opts *o, bool create);
int sk_bus_peer_ready(shmkit_bus *b);
bool sk_bus_sub_reap(shmkit_bus *b, unsigned i);
/* bus_pub.c */
void sk_bus_pub_leave(shmkit_bus *b);

#endif /* SHMKIT_BUS_H */
