/*
 * bus.c - publish/subscribe over shared memory: every message goes to
 * every subscriber.  Any number of publishers and subscribers (up to the
 * table sizes below) join and leave by name, over any backend.
 *
 * ---- Layout of the data area (after the segment header page) -----------
 *
 *   off     size            what
 *   0       88 (128)        struct bus_geom: magic "BUS1", layout version,
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
 *   448     nsubs*64        subscriber table (struct bus_sub_ent)
 *   ...     npubs*64        publisher table  (struct bus_pub_ent)
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
 *                   or abort of seq (claim_done), or when its entry's cur
 *                   moves on or its lock is gone (holder_in_slot)
 *   st 3 (GIVEN)    sequence seq was given up, it carries no message
 *                   (readers pass it silently): T = 0, pub = 510: nobody
 *                   is in the slot (a claimer stalled or died before
 *                   claiming, or died claimed and unmarked); T = 1:
 *                   holder `pub` may still write into the slot, so
 *                   nobody reuses it while it does (holder_in_slot).
 * Slot word:
 *   st 1 WRITING    the claim's holder `pub` is writing message seq (its
 *                   mark, a plain store after winning the claim)
 *      2 MSG        message seq is committed: len and payload are stable
 *      3 SKIP       T = 0: an aborted loan (passed silently); T = 1: the
 *                   record was taken from its holder `pub` (dead, a loan
 *                   stalled past STUCK_NS on an overwrite bus, or lapped
 *                   by a publisher that gave its own sequence up); L = 1:
 *                   it was a loan, counted lost by readers.
 * A slot holds sequence s at index s & (capacity - 1).  For a reader at
 * position p the slot word says: seq < p (or 0) nothing of p yet (the
 * claim says whether p is claimed, given up or lapped); seq == p and
 * WRITING being written; seq == p and MSG/SKIP ready; seq > p the message
 * was overwritten (the reader lagged by a whole ring).
 *
 * ---- Publishing ---------------------------------------------------------
 *
 *   P1  s = fetch_add(head, 1)   (back-pressure: CAS head w -> w+1 after
 *                                 the space check below)
 *   P2  pub_ent.cur = s          (relaxed, own line; read by stuck readers)
 *   P3  CAS claim c -> s|me|CLAIMED (acq_rel) where c is older than s and
 *       done with (claim_done: its holder's commit is in the slot word;
 *       else holder_in_slot asks its entry and lock); if the claim already
 *       shows s or later, another party took this sequence over (we were
 *       lapped or a reader gave s up): claim again.  If another publisher
 *       may still be writing into the slot (a loan or copy held across a
 *       whole ring lap), an overwrite publisher gives the sequence up and
 *       claims another, a back-pressure one waits, bounded: see "Stuck
 *       slots" below.
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
 * is still in the slot (holder_in_slot: its entry's cur maps there and
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
 * a copy in progress it waits for up to STUCK_NS first (lapped readers
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
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer.h"
#include "seg.h"
#include "wait.h"
#include "waitfd.h"

#define BUS_MAGIC 0x31535542u       /* "BUS1" */
#define BUS_VERSION 4u              /* 4: slots fill 128-byte pairs;
                                       3: claims on their own lines, off the
                                       slot word subscribers poll; 2: tables
                                       sized at creation; entries held by
                                       kernel locks (peer.h); 10-bit pub */
#define BUS_DEF_SUBS 64u
#define BUS_DEF_PUBS 62u
#define BUS_MAX_SUBS 16384u
#define BUS_MAX_PUBS 510u           /* pub index 510 marks an abandoned claim */
#define BUS_PUB_SHIFT 2
#define BUS_PUB_MASK 511u
#define BUS_SEQ_SHIFT 13
#define W_TAKEN (1u << 11)          /* SKIP: taken from its holder `pub` */
#define W_LOST (1u << 12)           /* SKIP: ... a loan: readers count it lost */
#define BUS_SLOT_HDR 16u
#define BUS_MAX_CAP (1u << 24)
#define BUS_MAX_MSG (64u << 20)
#define BUS_DEF_CAP 256u
#define BUS_DEF_MSG 1024u
#define BUS_SEQ_MAX (1ULL << 51)

#define ST_WRITING 1u
#define ST_MSG 2u
#define ST_SKIP 3u
#define PUB_ABANDON_CLAIM 510u

#define ENT_FREE 0u
#define ENT_ACTIVE 1u

#define MS 1000000LL
#define STUCK_NS (50 * MS)          /* a slot not ready this long is examined */
#define LIVE_CHECK_NS (5 * MS)      /* back-pressure liveness rescan period */
#define CLAIM_RETRIES 1024          /* bound on re-claims per publish */
#define LOCATE_STEPS 4096           /* bound on skips/resyncs per locate */
#define SUB_HEAD_EVERY 1024         /* looks at nothing of pos per full look (head,
                                       claim, clock) while spinning: 64 made a
                                       ping-pong's reader pull the head line
                                       across every ~25 messages (~10 ns per
                                       round trip); 1024 polls notice a
                                       sequence given up in its claim within
                                       ~50 us, and sleepers always look fully */

struct bus_geom {
	uint32_t magic, version, fingerprint, capacity;
	uint32_t max_msg, delivery, stride, nsubs;
	uint32_t npubs, pad;
	uint64_t bus_id, subs_off, pubs_off, slots_off, total;
	uint64_t claims_off;
};

struct bus_sub_ent {
	uint64_t owner;         /* gen << 32 | pid, for display; 0 = left */
	uint64_t rsv;
	uint32_t state;         /* ENT_FREE / ENT_ACTIVE */
	uint32_t armed;         /* 1: its fd is armed (display only) */
	uint64_t cursor;        /* next sequence it reads */
	uint64_t lost;          /* messages it lost (statistics) */
	uint64_t delivered;     /* messages it received (statistics) */
	uint64_t pad[2];
} SK_ALIGNED_CL;

struct bus_pub_ent {
	uint64_t owner;         /* as in bus_sub_ent */
	uint64_t loaning;       /* 1: its claim `cur` is a loan, 0: a copy */
	uint64_t cur;           /* sequence it claimed last (stuck readers) */
	uint64_t count;         /* messages it published (statistics) */
	uint64_t aborted;
	uint64_t pad[3];
} SK_ALIGNED_CL;

struct bus_ctl {
	struct bus_geom geom SK_ALIGNED_CL;
	uint64_t head SK_ALIGNED_CL;
	shmkit_ec published SK_ALIGNED_CL;
	shmkit_ec consumed SK_ALIGNED_CL;
	uint64_t joins SK_ALIGNED_CL;
	uint32_t armed SK_ALIGNED_CL;
	/* then nsubs subscriber entries, npubs publisher entries, slots */
};

struct bus_slot {
	uint64_t word;
	uint32_t len;
	uint32_t pad;
	unsigned char data[];
};

struct shmkit_bus {
	shmkit_seg *seg;
	struct bus_ctl *ctl;
	struct bus_sub_ent *subs;
	struct bus_pub_ent *pubs;
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
};

struct shmkit_sub {
	shmkit_bus *bus;
	struct bus_sub_ent *ent;
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

_Static_assert(sizeof(struct bus_geom) <= 2 * SK_CACHELINE, "bus_geom fits two cache lines");
_Static_assert(sizeof(struct bus_sub_ent) == 64, "sub entry is one cache line");
_Static_assert(sizeof(struct bus_pub_ent) == 64, "pub entry is one cache line");
_Static_assert(sizeof(struct bus_slot) == BUS_SLOT_HDR, "slot header size");

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t w_seq(uint64_t w) { return w >> BUS_SEQ_SHIFT; }
static inline uint32_t w_st(uint64_t w) { return (uint32_t)(w & 3); }
static inline uint32_t w_pub(uint64_t w) { return (uint32_t)((w >> BUS_PUB_SHIFT) & BUS_PUB_MASK); }
static inline bool w_taken(uint64_t w) { return w_st(w) == ST_SKIP && (w & W_TAKEN); }
static inline uint64_t mkword(uint64_t seq, uint32_t pub, uint32_t st)
{
	return seq << BUS_SEQ_SHIFT | (uint64_t)pub << BUS_PUB_SHIFT | st;
}
static inline pid_t owner_pid(uint64_t o) { return (pid_t)(uint32_t)o; }
static inline uint64_t owner_gen(uint64_t o) { return o >> 32; }

/* The lock bytes that hold table entries (peer.h). */
static inline uint64_t sub_lock(unsigned i) { return SK_PEER_BUS_SUB + i; }
static inline uint64_t pub_lock(unsigned i) { return SK_PEER_BUS_PUB + i; }

static inline struct bus_slot *slot_at(const shmkit_bus *b, uint64_t seq)
{
	return (struct bus_slot *)(b->slots + (size_t)(seq & b->mask) * b->stride);
}

static inline uint64_t *claim_at(const shmkit_bus *b, uint64_t seq)
{
	return &b->claims[seq & b->mask];
}

static uint32_t bus_fingerprint(void)
{
	const uint64_t facts[] = {
		sizeof(struct bus_ctl), offsetof(struct bus_ctl, head),
		offsetof(struct bus_ctl, armed), BUS_SEQ_SHIFT, BUS_PUB_SHIFT,
		sizeof(struct bus_sub_ent), sizeof(struct bus_pub_ent),
		sizeof(struct bus_slot), offsetof(struct bus_geom, claims_off), __BYTE_ORDER__,
	};
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < SK_ARRAY_LEN(facts); i++)
		for (int k = 0; k < 8; k++)
			h = (h ^ (uint8_t)(facts[i] >> (8 * k))) * 16777619u;
	return h;
}

static uint32_t round_pow2(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static inline uint32_t stride_for(uint32_t max_msg)
{
	return (BUS_SLOT_HDR + max_msg + SK_PAIR - 1) & ~(uint32_t)(SK_PAIR - 1);
}

static uint64_t random_id(void)
{
	uint64_t r = (uint64_t)sk_realtime_ns() ^ ((uint64_t)getpid() << 40);
	r ^= (uint64_t)(uintptr_t)&r;
	r ^= r >> 33;
	r *= 0xff51afd7ed558ccdULL;
	return r ^ (r >> 29);
}

/* Deadline of the current call, read from the clock on first use. */
static inline int64_t lazy_deadline(int64_t *deadline, int64_t tmo)
{
	if (*deadline == INT64_MIN)
		*deadline = sk_deadline(tmo);
	return *deadline;
}

/* ---- create / open ------------------------------------------------------ */

struct bus_init_arg {
	uint32_t cap, max_msg, delivery, nsubs, npubs;
	uint64_t subs_off, pubs_off, claims_off, slots_off, total;
};

/* Where the tables and slots go for the geometry in a (its offsets and
 * total are filled in). */
static void bus_layout(struct bus_init_arg *a)
{
	a->subs_off = sizeof(struct bus_ctl);
	a->pubs_off = a->subs_off + (uint64_t)a->nsubs * sizeof(struct bus_sub_ent);
	a->claims_off = a->pubs_off + (uint64_t)a->npubs * sizeof(struct bus_pub_ent);
	a->slots_off = (a->claims_off + (uint64_t)a->cap * sizeof(uint64_t) + SK_PAIR - 1) /
	               SK_PAIR * SK_PAIR;
	a->total = a->slots_off + (uint64_t)a->cap * stride_for(a->max_msg);
}

static int bus_init(void *data, size_t size, void *argp)
{
	const struct bus_init_arg *a = argp;
	struct bus_ctl *c = data;

	if (size < a->total)
		return -EINVAL;
	/* The segment is fresh and zero-filled (a new object); only the
	 * geometry and event counts need writing.  Plain stores: the
	 * READY release store in sk_seg_create_kind publishes them. */
	c->geom = (struct bus_geom){
		.magic = BUS_MAGIC, .version = BUS_VERSION,
		.fingerprint = bus_fingerprint(), .capacity = a->cap,
		.max_msg = a->max_msg, .delivery = a->delivery,
		.stride = stride_for(a->max_msg), .nsubs = a->nsubs,
		.npubs = a->npubs, .bus_id = random_id(),
		.subs_off = a->subs_off, .pubs_off = a->pubs_off,
		.slots_off = a->slots_off, .total = a->total, .claims_off = a->claims_off,
	};
	shmkit_ec_init(&c->published);
	shmkit_ec_init(&c->consumed);
	return 0;
}

/* Validate the geometry once and cache it privately. */
static int bus_attach(shmkit_bus *b, shmkit_seg *seg, const struct shmkit_bus_opts *o)
{
	size_t size = shmkit_seg_size(seg);
	struct bus_ctl *c = shmkit_seg_data(seg);

	if (size < sizeof(*c))
		return sk_fail(-EBADMSG, "bus segment too small (%zu bytes)", size);
	struct bus_geom g = c->geom;
	if (g.magic != BUS_MAGIC)
		return sk_fail(-EPROTO, "not a bus: bad magic %08x (another kind of segment, or "
		               "a damaged one)", g.magic);
	if (g.version != BUS_VERSION || g.fingerprint != bus_fingerprint())
		return sk_fail(-EPROTO, "bus layout version %u/%08x differs from this build's %u/%08x",
		               g.version, g.fingerprint, BUS_VERSION, bus_fingerprint());
	struct bus_init_arg a = { .cap = g.capacity, .max_msg = g.max_msg,
	                          .nsubs = g.nsubs, .npubs = g.npubs };
	bus_layout(&a);
	if (!g.capacity || g.capacity > BUS_MAX_CAP || (g.capacity & (g.capacity - 1)) ||
	    !g.max_msg || g.max_msg > BUS_MAX_MSG || g.stride != stride_for(g.max_msg) ||
	    g.delivery > SHMKIT_BUS_BACKPRESSURE || !g.nsubs || g.nsubs > BUS_MAX_SUBS ||
	    !g.npubs || g.npubs > BUS_MAX_PUBS || g.subs_off != a.subs_off ||
	    g.pubs_off != a.pubs_off || g.slots_off != a.slots_off || g.claims_off != a.claims_off ||
	    g.total != a.total || g.total > size)
		return sk_fail(-EBADMSG, "bus geometry is corrupt");
	b->seg = seg;
	b->ctl = c;
	b->subs = (struct bus_sub_ent *)(void *)((unsigned char *)c + g.subs_off);
	b->pubs = (struct bus_pub_ent *)(void *)((unsigned char *)c + g.pubs_off);
	b->nsubs_max = g.nsubs;
	b->npubs_max = g.npubs;
	b->held = calloc((g.nsubs + 63) / 64, sizeof(uint64_t));
	if (!b->held)
		return -ENOMEM;
	b->slots = (unsigned char *)c + g.slots_off;
	b->claims = (uint64_t *)(void *)((unsigned char *)c + g.claims_off);
	b->cap = g.capacity;
	b->mask = g.capacity - 1;
	b->max_msg = g.max_msg;
	b->stride = g.stride;
	b->delivery = g.delivery;
	b->bus_id = g.bus_id;
	b->wait = o->wait;
	b->pub_idx = -1;
	return 0;
}

static int check_opts(const struct shmkit_bus_opts *o, bool create)
{
	if (o->wait < SHMKIT_WAIT_ADAPTIVE || o->wait > SHMKIT_WAIT_BLOCK)
		return sk_fail(-EINVAL, "unknown wait strategy %d", o->wait);
	if (o->from != SHMKIT_FROM_NEWEST && o->from != SHMKIT_FROM_OLDEST)
		return sk_fail(-EINVAL, "unknown subscribe position %d", o->from);
	if (!create)
		return 0;
	if (o->delivery != SHMKIT_BUS_OVERWRITE && o->delivery != SHMKIT_BUS_BACKPRESSURE)
		return sk_fail(-EINVAL, "unknown delivery mode %d", o->delivery);
	if (o->capacity > BUS_MAX_CAP)
		return sk_fail(-EINVAL, "capacity %u exceeds %u", o->capacity, BUS_MAX_CAP);
	if (o->max_msg > BUS_MAX_MSG)
		return sk_fail(-EINVAL, "max_msg %u exceeds %u", o->max_msg, BUS_MAX_MSG);
	if (o->max_subscribers > BUS_MAX_SUBS)
		return sk_fail(-EINVAL, "max_subscribers %u exceeds %u", o->max_subscribers, BUS_MAX_SUBS);
	if (o->max_publishers > BUS_MAX_PUBS)
		return sk_fail(-EINVAL, "max_publishers %u exceeds %u", o->max_publishers, BUS_MAX_PUBS);
	return 0;
}

static const struct shmkit_bus_opts default_opts;

static int bus_finish(shmkit_bus **out, shmkit_seg *seg, const struct shmkit_bus_opts *o)
{
	shmkit_bus *b = calloc(1, sizeof(*b));
	int err;

	if (!b) {
		shmkit_seg_close(seg);
		return -ENOMEM;
	}
	b->peer = (struct sk_peer)SK_PEER_INIT;
	if ((err = bus_attach(b, seg, o)) || (err = sk_peer_join(&b->peer, seg))) {
		sk_peer_leave(&b->peer);
		shmkit_seg_close(seg);
		free(b->held);
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

int shmkit_bus_create(shmkit_bus **out, const char *name, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &default_opts;
	shmkit_seg *seg;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = check_opts(o, true)))
		return err;
	struct bus_init_arg a = {
		.cap = round_pow2(o->capacity ? o->capacity : BUS_DEF_CAP),
		.max_msg = o->max_msg ? o->max_msg : BUS_DEF_MSG,
		.delivery = (uint32_t)o->delivery,
		.nsubs = o->max_subscribers ? o->max_subscribers : BUS_DEF_SUBS,
		.npubs = o->max_publishers ? o->max_publishers : BUS_DEF_PUBS,
	};
	bus_layout(&a);
	struct shmkit_seg_opts so = {
		.size = a.total, .mode = o->mode, .flags = o->flags, .init_timeout_ns = o->init_timeout_ns,
	};
	if ((err = sk_seg_create_kind(&seg, name, &so, SHMKIT_KIND_BUS, bus_init, &a)))
		return err;
	bool made = seg->made; /* a create-or-open may have found it */
	err = bus_finish(out, seg, o);
	if (err && made)
		shmkit_seg_remove(name); /* we made it: leave nothing behind */
	return err;
}

int shmkit_bus_open(shmkit_bus **out, const char *name, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &default_opts;
	shmkit_seg *seg;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = check_opts(o, false)))
		return err;
	if (o->flags & (SHMKIT_RDONLY | SHMKIT_COW | SHMKIT_RAW))
		return sk_fail(-EINVAL, "a bus needs a shared read-write mapping");
	struct shmkit_seg_opts so = { .flags = o->flags, .init_timeout_ns = o->init_timeout_ns };
	if ((err = sk_seg_open_kind(&seg, name, &so, SHMKIT_KIND_BUS)))
		return err;
	return bus_finish(out, seg, o);
}

static int pub_register(shmkit_bus *b);

/* Make sure this handle has a peer of this process (a forked child
 * inheriting the handle takes its own: its parent's entries, publisher
 * entry and loan are the parent's). */
static int bus_peer_ready(shmkit_bus *b)
{
	if (sk_peer_forked(&b->peer)) {
		b->pub_idx = -1;
		b->loaned = false;
		memset(b->held, 0, (b->nsubs_max + 63) / 64 * sizeof(uint64_t));
	}
	return sk_peer_join(&b->peer, b->seg);
}

static SK_COLD int pub_rejoin(shmkit_bus *b)
{
	int err;

	if ((err = bus_peer_ready(b)))
		return err;
	b->min_joins = UINT64_MAX;
	return pub_register(b);
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
static bool ent_live(const shmkit_bus *b, uint64_t off)
{
	return sk_peer_held(b->seg, off) != 0;
}

/* Write our display word into an entry we now own: the next generation. */
static uint64_t ent_claim(uint64_t *owner)
{
	/* Relaxed: display only; the lock is the ownership. */
	uint64_t n = (owner_gen(sk_load_relaxed(owner)) + 1) << 32 | (uint32_t)getpid();
	sk_store_relaxed(owner, n);
	return n;
}

static inline bool held_by_us(const shmkit_bus *b, const uint64_t *mine, unsigned i)
{
	return mine && (mine[i / 64] >> (i % 64) & 1);
}

static int ent_take(shmkit_bus *b, uint64_t base, const uint64_t *owner0, size_t stride,
                    unsigned n, const uint64_t *mine)
{
	return sk_peer_take_entry(&b->peer, base, owner0, stride, n, mine);
}

/* Give an entry up: owner word 0 (a clean leave), then the lock. */
static void ent_leave(shmkit_bus *b, uint64_t *owner, uint64_t off)
{
	/* Release: our writes to the entry are done before the next owner,
	 * whose lock is taken after our unlock, reads it. */
	sk_store_release(owner, 0);
	sk_peer_unlock(&b->peer, off);
}

/* Reset the subscriber entry i of a dead owner, if we can take its lock:
 * true if it is free now (false: someone holds it, it is alive). */
static bool sub_reap(shmkit_bus *b, unsigned i)
{
	struct bus_sub_ent *e = &b->subs[i];

	if (held_by_us(b, b->held, i) || sk_peer_lock(&b->peer, sub_lock(i)))
		return false;
	/* Relaxed: a dead owner's flag; the count is a hint. */
	if (sk_exchange(&e->armed, 0, __ATOMIC_RELAXED))
		sk_fetch_add(&b->ctl->armed, UINT32_MAX, __ATOMIC_RELAXED);
	/* Release: orders the reset before the owner word's clear. */
	sk_store_release(&e->state, ENT_FREE);
	ent_leave(b, &e->owner, sub_lock(i));
	return true;
}

static int pub_register(shmkit_bus *b)
{
	int i = ent_take(b, SK_PEER_BUS_PUB, &b->pubs[0].owner, sizeof(b->pubs[0]), b->npubs_max, NULL);

	if (i < 0)
		return sk_fail(-ENOSPC, "bus publisher table full (%u live publishers; see "
		               "max_publishers)", b->npubs_max);
	struct bus_pub_ent *e = &b->pubs[i];
	/* Relaxed: own entry; readers use these only after the slot word's
	 * acquire (cur) or for statistics. */
	sk_store_relaxed(&e->cur, BUS_SEQ_MAX);
	sk_store_relaxed(&e->count, 0);
	sk_store_relaxed(&e->aborted, 0);
	ent_claim(&e->owner);
	b->pub_idx = i;
	b->pub_pid = getpid();
	return 0;
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
	struct bus_ctl *c = b->ctl;
	uint64_t min = w;
	int64_t now = 0;
	bool check = false;

	for (unsigned i = 0; i < b->nsubs_max; i++) {
		struct bus_sub_ent *e = &b->subs[i];
		/* Acquire: pairs with the subscriber's seq_cst store of
		 * ACTIVE (J1), after it set its cursor. */
		if (sk_load_acquire(&e->state) != ENT_ACTIVE)
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
				if (!ent_live(b, sub_lock(i)) && sub_reap(b, i))
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

/* Back-pressure claim: 1 and *seq on success, 0 if full, < 0 error. */
static int bp_claim(shmkit_bus *b, uint64_t *seq)
{
	struct bus_ctl *c = b->ctl;

	for (;;) {
		/* B1, B2.  seq_cst: the join handshake in the file-top
		 * comment (with J2, J3 and B3). */
		uint64_t w = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
		uint64_t j = __atomic_load_n(&c->joins, __ATOMIC_SEQ_CST);
		if (w >= BUS_SEQ_MAX)
			return sk_fail(-EBADMSG, "bus head %llu out of range", (unsigned long long)w);
		if (j != b->min_joins || w - b->min_cur >= b->cap || b->min_cur > w) {
			int err = bp_rescan(b, w, j);
			if (err)
				return err;
			if (w - b->min_cur >= b->cap)
				return 0;
		}
		/* B3.  seq_cst: see above; also orders our claim before the
		 * slot CAS P3 (program order + the CAS's own acquire). */
		if (sk_cas(&c->head, &w, w + 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			*seq = w;
			return 1;
		}
	}
}

/* Is the record *v (WRITING, or SKIP taken from its holder) a loan (its
 * holder may hold it indefinitely, and its contents are lost when taken
 * from it) rather than a copy in progress (whose publisher, if it lives,
 * claims again and loses nothing)?  Read from the writer's entry, which
 * it set before its claim (P2): P3 releases it, the caller's acquire of
 * the word made it visible. */
static bool record_is_loan(const shmkit_bus *b, uint64_t v)
{
	uint32_t pi = w_pub(v);

	if (pi >= b->npubs_max)
		return false;
	const struct bus_pub_ent *e = &b->pubs[pi];
	/* Relaxed: ordered after the caller's acquire load of the word. */
	return sk_load_relaxed(&e->cur) == w_seq(v) && sk_load_relaxed(&e->loaning) == 1;
}

/* The word that takes record v (WRITING) from its holder: SKIP, naming
 * the holder, counted lost if it is a loan. */
static inline uint64_t taken_word(const shmkit_bus *b, uint64_t v)
{
	return mkword(w_seq(v), w_pub(v), ST_SKIP) | W_TAKEN |
	       (record_is_loan(b, v) ? W_LOST : 0);
}

/* May the holder named by word v (WRITING, or taken from it) still
 * write into the slot?  A holder keeps `cur` at the sequence it claimed
 * (P2) until it is done with the slot - committed, aborted, or its commit
 * refused because the record was taken from it (pub_commit) - and a
 * taken word may stand for a later sequence of the same slot (given up
 * since), so: cur maps to this slot, is not after the word's sequence,
 * and the holder lives.  1 yes, 0 no, < 0 corrupt. */
static int holder_in_slot(const shmkit_bus *b, uint64_t v)
{
	uint32_t pi = w_pub(v);

	if (w_st(v) == ST_SKIP && !w_taken(v))
		return 0;
	if (pi >= b->npubs_max)
		return sk_fail(-EBADMSG, "slot word %#llx names publisher %u of %u",
		               (unsigned long long)v, pi, b->npubs_max);
	/* Acquire: pairs with the holder's release store of cur when it is
	 * done with the slot: its writes into it happen before ours.
	 * model: bus.pml HOLDER_IN (SC in the model). */
	uint64_t cur = sk_load_acquire(&b->pubs[pi].cur);
	if (cur >= BUS_SEQ_MAX || (cur & b->mask) != (w_seq(v) & b->mask) || cur > w_seq(v))
		return 0;
	return ent_live(b, pub_lock(pi));
}

/* Is the claim c (with w the slot word) finished with: may nobody it
 * names write into the slot any more?  Never claimed; given up with no
 * holder in the slot; or claimed by a holder whose commit or abort of
 * that very sequence the word shows (P5: after its last write into the
 * slot; the caller's acquire load of the word pairs with it).  false: a
 * holder may still be in the slot - the caller asks holder_in_slot. */
static inline bool claim_done(uint64_t c, uint64_t w)
{
	if (c == 0 || (w_st(c) == ST_SKIP && !w_taken(c)))
		return true;
	return w_st(c) == ST_WRITING && (w >> BUS_PUB_SHIFT) == (c >> BUS_PUB_SHIFT) &&
	       (w_st(w) == ST_MSG || w_st(w) == ST_SKIP);
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
static bool slot_give_up(shmkit_bus *b, struct bus_slot *s, uint64_t *cl, uint64_t *c, uint64_t q)
{
	uint64_t t = mkword(q, w_pub(*c), ST_SKIP) | W_TAKEN;

	/* Acq_rel: pairs with the acquire loads of the claim by readers and
	 * claimers.  model: bus.pml P3 give-up (SC in the model). */
	if (!sk_cas(cl, c, t, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	*c = t;
	/* Acquire: the holder's cur and loaning (record_is_loan) are
	 * released by its mark. */
	uint64_t w = sk_load_acquire(&s->word);
	/* Acq_rel: only the very record we saw (the holder's commit CAS P5
	 * compares it, so exactly one of the two wins).  model: bus.pml P3
	 * give-up (take; SC in the model). */
	if (w_st(w) == ST_WRITING && w_pub(w) == w_pub(t))
		sk_cas(&s->word, &w, taken_word(b, w), __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
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
static int slot_wait_holder(shmkit_bus *b, struct bus_slot *s, uint64_t *cl, uint64_t *c,
                            uint64_t seq)
{
	int64_t deadline = INT64_MIN, since = 0;

	for (unsigned i = 0;; i++) {
		/* Acquire both: the claim pairs with other claimers' and
		 * give-ups' CASes, the word with the holder's commit CAS P5
		 * (its writes into the slot happen before ours). */
		*c = sk_load_acquire(cl);
		uint64_t w = sk_load_acquire(&s->word);
		if ((*c != 0 && w_seq(*c) >= seq) || claim_done(*c, w))
			return 0; /* the caller judges it */
		if (i < 64) { /* a copy in progress takes a memcpy */
			sk_cpu_relax();
			continue;
		}
		int in = holder_in_slot(b, *c);
		if (in < 0)
			return in;
		if (!in)
			return 0; /* P3 claims over the dead or done holder */
		/* An overwrite bus never waits for a loan, nor for a record
		 * already taken from its holder (stalled that long): give the
		 * sequence up at once.  A copy in progress is a memcpy away
		 * from done: wait for it (as readers do), up to STUCK_NS, so
		 * that sequences are given up - and counted by lapped readers
		 * - only when a copier really stalls. */
		if (b->delivery == SHMKIT_BUS_OVERWRITE) {
			int64_t now = sk_now_ns();
			if (!since)
				since = now;
			if (w_taken(*c) || record_is_loan(b, *c) || now - since >= STUCK_NS)
				return slot_give_up(b, s, cl, c, seq) ? 3 : 0; /* changed: judge again */
			sched_yield();
			continue;
		}
		if (deadline == INT64_MIN)
			deadline = lazy_deadline(&b->deadline, b->tmo);
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
	struct bus_slot *s = slot_at(b, seq);
	uint64_t *cl = claim_at(b, seq);
	/* Acquire: pairs with the previous claimer's claim CAS and with
	 * give-ups (release).  model: bus.pml P3 (load; SC in the model). */
	uint64_t c = sk_load_acquire(cl);
	uint64_t mine = mkword(seq, (uint32_t)b->pub_idx, ST_WRITING);
	uint64_t cleared = 0; /* a claim whose holder is out of the slot */

	for (;;) {
		/* Claims only move forward (every CAS on a claim word sets a
		 * sequence at least its own), and a word's sequence comes from
		 * a claim: the claim alone says whether seq is still ours. */
		if (c != 0 && w_seq(c) > seq)
			return 2;
		if (c != 0 && w_seq(c) == seq)
			return 0;
		if (c != cleared) {
			/* Acquire: pairs with the holder's commit CAS P5. */
			uint64_t w = sk_load_acquire(&s->word);
			if (!claim_done(c, w)) {
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
	int64_t deadline = lazy_deadline(&b->deadline, b->tmo);

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
	if (sk_now_ns() >= lazy_deadline(&b->deadline, b->tmo))
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
	struct bus_ctl *c = b->ctl;
	struct bus_pub_ent *e = &b->pubs[b->pub_idx];

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
			if (seq >= BUS_SEQ_MAX)
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
	struct bus_ctl *c = b->ctl;
	struct bus_slot *s = slot_at(b, b->loan_seq);
	uint64_t mine = mkword(b->loan_seq, (uint32_t)b->pub_idx, ST_WRITING);

	struct bus_pub_ent *e = &b->pubs[b->pub_idx];

	b->loaned = false;
	/* P5.  Release on success: len and payload to readers' acquire R1;
	 * seq_cst, because P6's sk_ec_notify requires a seq_cst RMW before
	 * it (sync.c, "Services"; on x86 a locked instruction either way).
	 * Relaxed on failure: nothing was published.  model: bus.pml P5,
	 * the commit point; a plain store here is mutant BUG_P5_STORE. */
	bool ok = sk_cas(&s->word, &mine, mkword(b->loan_seq, (uint32_t)b->pub_idx, st),
	                 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	/* P5b.  Release: we are done with the slot (its payload and len);
	 * pairs with the acquire load of cur in holder_in_slot() of a
	 * publisher waiting to reuse it, also when the record was taken
	 * from us (then no reader reads the slot, but it may be reused).
	 * model: bus.pml P5b (SC in the model). */
	sk_store_release(&e->cur, BUS_SEQ_MAX);
	if (!ok)
		return -ESTALE;
	SK_CRASH_POINT("bus.committed");
	/* Relaxed: statistics in our own entry. */
	if (st == ST_MSG)
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

int shmkit_bus_close(shmkit_bus *bus)
{
	if (!bus)
		return 0;
	if (bus->nsubs)
		return sk_fail(-EBUSY, "%d subscriptions still open on this handle", bus->nsubs);
	if (bus->pub_idx >= 0 && !sk_peer_forked(&bus->peer)) {
		if (bus->loaned)
			pub_commit(bus, ST_SKIP);
		ent_leave(bus, &bus->pubs[bus->pub_idx].owner, pub_lock((unsigned)bus->pub_idx));
	}
	sk_peer_leave(&bus->peer); /* any lock left goes with the description */
	shmkit_seg_close(bus->seg);
	free(bus->held);
	free(bus);
	return 0;
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
	*buf = slot_at(bus, bus->loan_seq)->data;
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
	sk_store_relaxed(&slot_at(bus, bus->loan_seq)->len, (uint32_t)len);
	if (pub_commit(bus, ST_MSG))
		return sk_fail(-ESTALE, "the loan was abandoned by a reader (publisher stalled > %lld ms)",
		               (long long)(STUCK_NS / MS));
	return 0;
}

int shmkit_bus_abort_loan(shmkit_bus *bus)
{
	if (!bus || !bus->loaned || bus->pub_pid != getpid())
		return sk_fail(-EINVAL, "no loan outstanding");
	/* Relaxed: released by the commit CAS (P5). */
	sk_store_relaxed(&slot_at(bus, bus->loan_seq)->len, 0);
	pub_commit(bus, ST_SKIP); /* -ESTALE: already skipped by a reader */
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
		struct bus_slot *s = slot_at(bus, bus->loan_seq);
		/* Relaxed: released by the commit CAS (P5).  model: bus.pml
		 * P4 (len, then the payload; SC in the model). */
		sk_store_relaxed(&s->len, (uint32_t)len);
		if (len) /* msg may be NULL for an empty message */
			memcpy(s->data, msg, len);
		if (sk_map_lost(bus->seg)) /* copied into guard.c's zeros */
			return sk_map_check(bus->seg);
		if (pub_commit(bus, ST_MSG) == 0)
			return 0;
	}
	return sk_fail(-EBADMSG, "every claim was abandoned (corrupt bus?)");
}

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
	if (((ws - sub->pos) & b->mask) != 0 || h <= ws || h > BUS_SEQ_MAX || h < b->cap ||
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
	*c = sk_load_acquire(claim_at(b, p));
	if (*c == 0 || w_seq(*c) < p)
		return 0;
	if (w_seq(*c) > p) {
		int err = sub_resync(sub, w_seq(*c));
		return err ? err : 2;
	}
	if (w_st(*c) == ST_SKIP) { /* given up: it carried no message */
		sub->stuck = false;
		sub_advance(sub, p + 1);
		return 2;
	}
	if (w_st(*c) != ST_WRITING)
		return sk_fail(-EBADMSG, "claim word %#llx of sequence %llu is corrupt",
		               (unsigned long long)*c, (unsigned long long)p);
	return 0;
}

/* The slot of pos is claimed (head > pos) but not ready.  After STUCK_NS
 * of that, give pos up or take its record if its claimer is dead or gone
 * (file-top comment).  2 if the slot or claim changed (look again), 0 to
 * keep waiting. */
static int sub_stuck(shmkit_sub *sub, struct bus_slot *s, uint64_t w)
{
	shmkit_bus *b = sub->bus;
	uint64_t p = sub->pos, c = 0, nc;
	bool marked = w != 0 && w_seq(w) == p && w_st(w) == ST_WRITING;

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
	if (now - sub->stuck_since < STUCK_NS)
		return 0;
	if (marked) {
		/* Back-pressure waits for a live writer however long it holds
		 * its record (publishers wait for readers, readers for
		 * writers); so does an overwrite bus for a live copier (a
		 * memcpy from done: taking its record would only make lapped
		 * readers count a sequence that carries the message again).
		 * But an overwrite bus never lets a loan hold its readers up:
		 * one held past STUCK_NS is taken from its holder (counted
		 * lost; its publish_loan gets -ESTALE).  A dead writer's record
		 * is taken in any mode.  The slot is not reused while the
		 * holder may still write into it (holder_in_slot). */
		if (b->delivery == SHMKIT_BUS_BACKPRESSURE || !record_is_loan(b, w)) {
			int in = holder_in_slot(b, w);
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
		if (sk_cas(&s->word, &w, taken_word(b, w), __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			shmkit_ec_inc(&b->ctl->published); /* wake other readers */
		sub->stuck = false;
		return 2;
	}
	if (c != 0 && w_seq(c) == p) {
		/* Claimed, never marked: a live claimer is a copier about to
		 * mark - wait for it, as for a live copier; a dead one (or
		 * one out of the slot) wrote nothing: pass p. */
		int in = holder_in_slot(b, c);
		if (in < 0)
			return in;
		if (in) {
			sub->stuck_since = now;
			return 0;
		}
		nc = mkword(p, PUB_ABANDON_CLAIM, ST_SKIP);
	} else {
		/* Not claimed at all: the claimer of p stalled or died between
		 * P1 and P3.  Give p up; a live claimer's P3 then fails and it
		 * claims a fresh sequence, so nothing is lost.  If the slot
		 * still holds an older record whose holder may write into it,
		 * keep naming that holder, so no publisher reuses the slot
		 * under it (holder_in_slot). */
		int in = claim_done(c, w) ? 0 : holder_in_slot(b, c);
		if (in < 0)
			return in;
		nc = in ? mkword(p, w_pub(c), ST_SKIP) | W_TAKEN : mkword(p, PUB_ABANDON_CLAIM, ST_SKIP);
	}
	/* Acq_rel: replaces the claim only if it is still the one we judged.
	 * model: bus.pml sub_stuck give-up (SC in the model). */
	if (sk_cas(claim_at(b, p), &c, nc, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
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
		struct bus_slot *s = slot_at(b, p);
		/* R1.  Acquire: pairs with the commit CAS P5 (len, payload)
		 * and with the take CAS.  model: bus.pml R1 (SC in the
		 * model). */
		uint64_t w = sk_load_acquire(&s->word);
		if (w != 0 && w_seq(w) > p) {
			int err = sub_resync(sub, w_seq(w));
			if (err)
				return err;
			continue;
		}
		if (w != 0 && w_seq(w) == p && w_st(w) == ST_MSG) {
			sub->stuck = false;
			*wout = w;
			return 1;
		}
		if (w != 0 && w_seq(w) == p && w_st(w) == ST_SKIP) {
			if (w_taken(w) && (w & W_LOST))
				sub_count_lost(sub, 1);
			sub_advance(sub, p + 1);
			continue;
		}
		/* Not ready: p is not claimed, claimed and not yet marked, or
		 * being written (WRITING(p)).  Only a dead or stalled claimer
		 * or writer makes the difference, and only after STUCK_NS
		 * (sub_stuck), or a sequence given up in its claim: a look
		 * stops here unless sub_quick_look says otherwise.  A spinning
		 * subscriber then polls the slot alone and leaves the head and
		 * claim lines in its publisher's cache (reading head on every
		 * poll made each publish pull it back across).  The wake-up
		 * of a claimer that goes on to commit comes through the event
		 * count as ever.  model: bus.pml A2-skip. */
		if (sub_quick_look(sub))
			return 0;
		/* seq_cst: also A2 of the fd handshake.  model: bus.pml
		 * A2-head. */
		uint64_t h = __atomic_load_n(&b->ctl->head, __ATOMIC_SEQ_CST);
		if (h > BUS_SEQ_MAX)
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
static inline bool slot_unchanged(const struct bus_slot *s, uint64_t w)
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
static ssize_t sub_len(shmkit_sub *sub, const struct bus_slot *s, uint64_t w)
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
	const struct bus_slot *s = slot_at(sub->bus, sub->pos);
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
	int64_t deadline = lazy_deadline(&sub->deadline, sub->tmo);

	for (int round = 0;; round++) {
		/* Slices: STUCK_NS / 4 while a slot is stuck, so the
		 * abandonment timer runs; SK_WAKE_SLICE_NS otherwise, so a
		 * publisher killed between its commit and its wake costs one
		 * slice, not the whole timeout. */
		int64_t now = sk_now_ns();
		int64_t slice = sub->stuck && deadline - now > STUCK_NS / 4 ? now + STUCK_NS / 4
		                                                            : sk_slice(deadline);
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
	    sk_now_ns() < lazy_deadline(&sub->deadline, sub->tmo))
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
		const struct bus_slot *s = slot_at(sub->bus, sub->pos);
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
	bool same = slot_unchanged(slot_at(sub->bus, sub->pos), sub->peek_word);
	sub_deliver(sub, NULL); /* peek handed out the lost count already */
	if (same)
		return 0;
	sub_count_lost(sub, 1);
	return sk_fail(-ESTALE, "the message was overwritten while it was read");
}

/* ---- subscriber: join and leave ------------------------------------------- */

static struct bus_sub_ent *sub_take_entry(shmkit_bus *b, shmkit_sub *sub)
{
	int i = ent_take(b, SK_PEER_BUS_SUB, &b->subs[0].owner, sizeof(b->subs[0]), b->nsubs_max,
	                 b->held);

	if (i < 0)
		return NULL;
	b->held[i / 64] |= UINT64_C(1) << (i % 64);
	struct bus_sub_ent *e = &b->subs[i];
	/* A dead owner may have left its fd armed: take the display flag
	 * back.  Relaxed: display only. */
	if (sk_exchange(&e->armed, 0, __ATOMIC_RELAXED))
		sk_fetch_add(&b->ctl->armed, UINT32_MAX, __ATOMIC_RELAXED);
	sub->owner = ent_claim(&e->owner);
	sub->idx = i;
	return e;
}

/* First sequence a joiner reads when head is h (file-top comment: in
 * back-pressure mode the oldest retained is one younger). */
static uint64_t sub_first(const shmkit_bus *b, int from, uint64_t h)
{
	uint64_t keep = b->delivery == SHMKIT_BUS_BACKPRESSURE ? b->cap - 1 : b->cap;
	if (from == SHMKIT_FROM_NEWEST)
		return h;
	return h > keep ? h - keep : 0;
}

int shmkit_bus_subscribe(shmkit_sub **out, shmkit_bus *bus, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &default_opts;
	int err;

	sk_clear_detail();
	if (!out || !bus)
		return sk_fail(-EINVAL, "out or bus is NULL");
	*out = NULL;
	if ((err = check_opts(o, false)))
		return err;
	if ((err = bus_peer_ready(bus)))
		return err;
	shmkit_sub *sub = calloc(1, sizeof(*sub));
	if (!sub)
		return -ENOMEM;
	struct bus_sub_ent *e = sub_take_entry(bus, sub);
	if (!e) {
		free(sub);
		return sk_fail(-ENOSPC, "bus subscriber table full (%u live subscribers; see "
		               "max_subscribers)", bus->nsubs_max);
	}
	struct bus_ctl *c = bus->ctl;
	/* J1.  Relaxed fills of our own entry, then a seq_cst store of
	 * ACTIVE (the join handshake; pairs with bp_rescan's acquire). */
	sk_store_relaxed(&e->lost, 0);
	sk_store_relaxed(&e->delivered, 0);
	uint64_t h0 = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
	if (h0 > BUS_SEQ_MAX)
		h0 = 0; /* corrupt head: the checks on read will report it */
	sk_store_relaxed(&e->cursor, sub_first(bus, o->from, h0));
	__atomic_store_n(&e->state, ENT_ACTIVE, __ATOMIC_SEQ_CST);
	/* J2, J3.  seq_cst: the join handshake (file-top comment). */
	__atomic_fetch_add(&c->joins, 1, __ATOMIC_SEQ_CST);
	uint64_t h = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
	if (h < h0 || h > BUS_SEQ_MAX)
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
		/* Relaxed: published by the release store in ent_leave. */
		sk_store_relaxed(&sub->ent->state, ENT_FREE);
		ent_leave(sub->bus, &sub->ent->owner, sub_lock((unsigned)sub->idx));
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
	bool due = sub->stuck && sk_now_ns() - sub->stuck_since >= STUCK_NS;
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

/* ---- statistics ----------------------------------------------------------- */

int shmkit_bus_stats(shmkit_bus *bus, struct shmkit_bus_stats *st)
{
	if (!bus || !st)
		return sk_fail(-EINVAL, "bus or st is NULL");
	struct bus_ctl *c = bus->ctl;
	memset(st, 0, sizeof(*st));
	st->capacity = bus->cap;
	st->max_msg = bus->max_msg;
	st->delivery = (int)bus->delivery;
	/* Relaxed: a snapshot for display; orders nothing. */
	st->head = sk_load_relaxed(&c->head);
	if (st->head > BUS_SEQ_MAX)
		return sk_fail(-EBADMSG, "bus head out of range");
	st->oldest = st->head > bus->cap ? st->head - bus->cap : 0;
	for (unsigned i = 0; i < bus->npubs_max; i++)
		st->publishers += owner_pid(sk_load_relaxed(&bus->pubs[i].owner)) != 0;
	for (unsigned i = 0; i < bus->nsubs_max; i++)
		st->subscribers += owner_pid(sk_load_relaxed(&bus->subs[i].owner)) != 0;
	st->max_publishers = bus->npubs_max;
	st->max_subscribers = bus->nsubs_max;
	st->armed = sk_load_relaxed(&c->armed);
	st->seg_size = shmkit_seg_size(bus->seg);
	return 0;
}

int shmkit_bus_peers(shmkit_bus *bus, int (*fn)(const struct shmkit_bus_peer *p, void *arg),
                     void *arg)
{
	if (!bus || !fn)
		return sk_fail(-EINVAL, "bus or fn is NULL");
	/* Relaxed loads throughout: a snapshot for display. */
	uint64_t head = sk_load_relaxed(&bus->ctl->head);
	for (unsigned i = 0; i < bus->npubs_max + bus->nsubs_max; i++) {
		struct shmkit_bus_peer p = { .subscriber = i >= bus->npubs_max };
		const uint64_t *owner;
		uint64_t lock;
		if (p.subscriber) {
			const struct bus_sub_ent *e = &bus->subs[i - bus->npubs_max];
			owner = &e->owner;
			p.index = i - bus->npubs_max;
			lock = sub_lock(p.index);
			p.position = sk_load_relaxed(&e->cursor);
			p.lag = head > p.position ? head - p.position : 0;
			p.count = sk_load_relaxed(&e->delivered);
			p.lost = sk_load_relaxed(&e->lost);
			p.armed = (int)sk_load_relaxed(&e->armed);
		} else {
			const struct bus_pub_ent *e = &bus->pubs[i];
			owner = &e->owner;
			p.index = i;
			lock = pub_lock(i);
			p.position = sk_load_relaxed(&e->cur);
			p.count = sk_load_relaxed(&e->count);
			p.lost = sk_load_relaxed(&e->aborted);
		}
		p.pid = owner_pid(sk_load_relaxed(owner));
		if (p.pid == 0)
			continue;
		int held = sk_peer_held(bus->seg, lock);
		p.alive = held < 0 ? -1 : held; /* the kernel's word, not the pid's */
		int r = fn(&p, arg);
		if (r)
			return r;
	}
	return 0;
}
