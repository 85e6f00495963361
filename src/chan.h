/*
 * chan.h - the channel's shared-memory format.  Not public.  The protocol
 * that runs over it (who writes what, with which ordering, and how a dead
 * peer's slot is recovered) is told in the essays at the top of chan_msg.c
 * (the MPMC and SPSC protocols) and chan_recover.c (crashes, owners).
 *
 * Byte layout of the data area of a SHMKIT_KIND_CHAN segment
 * -----------------------------------------------------------
 * The data area starts page-aligned after the segment header (seg.h).
 *
 *   off  size  field (struct sk_chan_ctl)            written by
 *     0     8  magic        "SKCHAN\0\1"             creator, once
 *     8     4  version      SK_CHAN_VERSION          creator, once
 *    12     4  fingerprint  sk_chan_fingerprint()    creator, once
 *    16     4  flags        SHMKIT_CHAN_SPSC or 0    creator, once
 *    20     4  capacity     slots, a power of 2      creator, once
 *    24     4  max_msg      largest payload          creator, once
 *    28     4  slot_size    SK_CHAN_SLOT_SIZE(max)   creator, once
 *    32     8  slots_off    384 + stat_entries * 128 creator, once
 *    40     8  slots_bytes  capacity * slot_size     creator, once
 *    48     4  stat_entries per-handle statistics     creator, once
 *                           entries (below): 64 for an MPMC
 *                           channel, 0 for SPSC and embedded
 *    64     8  tail         next position to produce  producers
 *    72     8  sent         messages committed        producers (*)
 *    80     8  full_waits   calls that found it full  producers (*)
 *    88     8  producer     SPSC role word (below)    the producer
 *   128     8  head         next position to consume  consumers
 *   136     8  received     messages taken            consumers (*)
 *   144     8  empty_waits  calls that found it empty consumers (*)
 *   152     8  consumer     SPSC role word (below)    the consumer
 *   192     4  not_empty    event count               bumped by producers
 *   256     4  not_full     event count               bumped by consumers
 *   320     8  reclaimed    slots taken from dead peers either side
 *   328     8  aborted      reservations given back  producers
 *   384        stat_entries statistics entries of 128 bytes, then
 *   slots_off  slot 0, then slot i at slots_off + i * slot_size
 *
 * (*) MPMC: the counts of handles that had no statistics entry, closed,
 * or died and whose entry was taken over; each handle that holds an entry
 * counts there instead, with plain stores (one writer: the handle), so
 * the hot path has no locked add on a line every producer (or consumer)
 * shares.  shmkit_chan_stats sums the entries and these.  SPSC: sent and
 * received are the indices; the waits are counted here by the one
 * producer and the one consumer.
 *
 *   statistics entry (struct sk_chan_stat), 128 bytes, two lines
 *     0     8  owner        peer id of the handle counting here, 0 = free
 *     8     8  sent
 *    16     8  received
 *    24     8  full_waits
 *    32     8  empty_waits
 *    40     8  claim        the claim record: WRITING(t, owner) (a
 *                           slot word, below) stored by the owner before
 *                           its CAS of tail claims position t; 0 none
 *    48    16  (zero)
 *   the second line is cold: only handles opened with an owner token
 *   (shmkit_chan_opts.owner; chan_recover.c "Owners") and reclaimers
 *   touch it
 *    64     8  token        the owner token, 0 = an entry like any other
 *    72     8  last_tag     tag of the owner's last commit_tag, 0 none
 *    80     8  pending      position + 1 of a commit_tag in progress, 0 none
 *    88     8  pending_tag  its tag
 *    96     8  abandoned    position + 1 of the last WRITING claim of this
 *                           owner freed by someone else (a reclaimer, or
 *                           the owner's successor)
 *   104     8  prev         a takeover in progress: the id being replaced
 *                           (claims may still name it), 0 none
 *   112    16  (zero)
 *   A handle takes a free entry at open (CAS 0 -> its id), or one whose
 *   owner is dead (its lock is free: peer.h) or is its own id from before
 *   a wrap, after moving that entry's counts into the control block's;
 *   at close it moves its counts there and frees the entry.  With every
 *   entry taken by live handles, a handle counts in the control block
 *   (locked adds), as every handle did before version 5.  An entry whose
 *   token is not 0 is durable: only a handle opened with that token takes
 *   it (over), and close leaves its id in it (the holder is then dead,
 *   its lock gone) until shmkit_chan_disown.

 * Each group written by one side sits on its own 64-byte line, so a
 * producer and a consumer touch different lines except for the slot they
 * hand over.  Statistics ride on the line of the index their side already
 * owns (the counter update hits a line in this core's cache).
 *
 *   slot (struct sk_chan_slot), slot_size = round_up(16 + max_msg, 128)
 *     0     8  seq    position (40 bits) | state (2) | claimer's peer id (22)
 *     8     4  len    payload bytes, <= max_msg
 *    12     4  (zero)
 *    16   ...  payload, max_msg bytes (16-byte aligned)
 * A message of up to 48 bytes shares the 64-byte line of its slot's seq
 * word: the "ready" word and the bytes cross between cores in one line
 * transfer (version 5; versions up to 4 had a 32-byte slot header, so
 * only messages up to 32 bytes did).  A slot fills whole 128-byte pairs
 * (SK_PAIR, version 7): reading one slot's line makes the spatial
 * prefetcher fetch its buddy, which must be the same slot's, never the
 * next slot's that the producer is writing.
 *
 * Segment size = 4096 (segment header) + 384 + stat_entries * 128 +
 * capacity * slot_size,
 * rounded up to the page size by the segment layer.
 *
 * Positions are 64-bit counters in head/tail that never wrap in practice;
 * a slot's seq keeps the low 40 bits, and every comparison of a seq
 * position with an index is a signed 40-bit difference, correct while
 * the two are within 2^39 of each other (they are within one capacity).
 *
 * Slot states (MPMC), for the slot of position p (index p & (capacity-1)):
 *   FREE(p)      empty, waiting for the producer of position p; once tail
 *                has passed p, claimed by the producer whose claim
 *                record (an entry's `claim`) says WRITING(p, its id)
 *   WRITING(p)   claimed by a producer that holds no statistics entry
 *                (its peer id in the word)
 *   FULL(p)      message published, waiting for the consumer of p
 *   READING(p)   claimed by that consumer (its peer id in the word)
 * and back to FREE(p + capacity).  Only FREE and FULL carry id 0.  A peer
 * id names a handle while the kernel holds its lock (peer.h).
 *
 * Invariants (MPMC), which open and every operation check:
 *   - every position below tail was claimed by a producer: tail moves
 *     only by the CAS that claims (version 8), so a producer's slot may
 *     still say FREE(t - capacity) at tail t (its claimer is writing);
 *   - every position below head was taken by a consumer; head lags the
 *     last claim by at most one (the claimer, or any other consumer that
 *     sees the claimed slot, moves it on);
 *   - a slot's position, seen from an index i of its side, is i - capacity,
 *     i, or i + k*capacity (k >= 1, the index is stale); anything else,
 *     a position that does not map to that slot, or len > max_msg, is
 *     corruption: -EBADMSG.
 * SPSC channels use head, tail, and each slot's seq and len: the slot of
 * position p holds a message iff its seq is FULL(p) (the consumer polls
 * it; see chan_msg.c), and 0 <= tail - head <= capacity.  The role words
 * name the one producer and the one consumer handle allowed at a time:
 * pid << 32 | peer id of the handle that holds it (the id decides, the
 * pid is shown), or 0 when the role is free; MPMC channels leave them 0.
 */
#ifndef SHMKIT_CHAN_H
#define SHMKIT_CHAN_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define SK_CHAN_MAGIC 0x01004e4148434b53ULL /* "SKCHAN\0\1" little-endian */
#define SK_CHAN_VERSION 8u /* 2: SPSC consumers poll the slot's seq; 3: SPSC roles;
                              4: peer ids (kernel locks) in claims and roles;
                              5: 16-byte slot header (48-byte one-line messages),
                                 per-handle statistics entries;
                              6: entries of 128 bytes carry owner tokens;
                              7: slots fill 128-byte pairs (SK_PAIR);
                              8: MPMC producers claim by a CAS of tail, named by
                                 their entry's claim record */
#define SK_CHAN_CTL_SIZE 384u
#define SK_CHAN_SLOT_HDR 16u
#define SK_CHAN_SLOT_SIZE(max_msg) \
	(((uint64_t)(max_msg) + SK_CHAN_SLOT_HDR + SK_PAIR - 1) & ~(uint64_t)(SK_PAIR - 1))
#define SK_CHAN_MAX_CAPACITY (1u << 24)
#define SK_CHAN_MAX_MSG (1u << 30)
#define SK_CHAN_DEFAULT_CAPACITY 64u
#define SK_CHAN_DEFAULT_MAX_MSG 1024u

/* The seq word: pos << 24 | state << 22 | pid. */
#define SK_SEQ_PID_BITS 22
#define SK_SEQ_PID_MASK ((1u << SK_SEQ_PID_BITS) - 1)
#define SK_SEQ_STATE_SHIFT 22
#define SK_SEQ_POS_SHIFT 24
#define SK_SEQ_POS_MASK ((UINT64_C(1) << 40) - 1)

enum sk_slot_state {
	SK_SLOT_FREE = 0,
	SK_SLOT_WRITING = 1,
	SK_SLOT_FULL = 2,
	SK_SLOT_READING = 3,
};

struct sk_chan_ctl {
	uint64_t magic;
	uint32_t version;
	uint32_t fingerprint;
	uint32_t flags;
	uint32_t capacity;
	uint32_t max_msg;
	uint32_t slot_size;
	uint64_t slots_off;
	uint64_t slots_bytes;
	uint32_t stat_entries;

	uint64_t tail SK_ALIGNED_CL;
	uint64_t sent;
	uint64_t full_waits;
	uint64_t producer;       /* SPSC: role word of the producer, or 0 */

	uint64_t head SK_ALIGNED_CL;
	uint64_t received;
	uint64_t empty_waits;
	uint64_t consumer;       /* SPSC: role word of the consumer, or 0 */

	shmkit_ec not_empty SK_ALIGNED_CL;
	shmkit_ec not_full SK_ALIGNED_CL;

	uint64_t reclaimed SK_ALIGNED_CL;
	uint64_t aborted;
};

struct sk_chan_stat {
	uint64_t owner;          /* peer id, 0 = free */
	uint64_t sent, received, full_waits, empty_waits;
	uint64_t claim;          /* claim record: WRITING(t, owner) or 0 */
	uint64_t zero[2];
	/* second line: an owner token's durable record (chan_recover.c,
	 * "Owners") */
	uint64_t token SK_ALIGNED_CL;
	uint64_t last_tag, pending, pending_tag, abandoned, prev;
	uint64_t zero2[2];
};

#define SK_CHAN_STAT_ENTRIES 64u

struct sk_chan_slot {
	uint64_t seq;
	uint32_t len;
	uint32_t zero;
};

_Static_assert(sizeof(struct sk_chan_ctl) == SK_CHAN_CTL_SIZE, "channel control block size");
_Static_assert(sizeof(struct sk_chan_slot) == SK_CHAN_SLOT_HDR, "channel slot header size");
_Static_assert(sizeof(struct sk_chan_stat) == 2 * SK_CACHELINE, "a statistics entry is two lines");
_Static_assert(offsetof(struct sk_chan_stat, token) == SK_CACHELINE, "owner record on the second line");
_Static_assert(offsetof(struct sk_chan_ctl, head) == 128, "channel head offset");
_Static_assert(offsetof(struct sk_chan_ctl, producer) == 88, "channel producer offset");
_Static_assert(offsetof(struct sk_chan_ctl, consumer) == 152, "channel consumer offset");

/* An SPSC role word: pid << 32 | peer id; 0 = role free.  The peer id
 * decides (its lock, peer.h); the pid is for display. */
static inline uint64_t sk_role_make(uint32_t pid, uint32_t id)
{
	return (uint64_t)pid << 32 | (id & SK_SEQ_PID_MASK);
}

static inline uint32_t sk_role_id(uint64_t w)
{
	return (uint32_t)w & SK_SEQ_PID_MASK;
}

static inline uint32_t sk_role_pid(uint64_t w)
{
	return (uint32_t)(w >> 32);
}

static inline uint64_t sk_seq_make(uint64_t pos, unsigned state, uint32_t pid)
{
	return ((pos & SK_SEQ_POS_MASK) << SK_SEQ_POS_SHIFT) |
	       ((uint64_t)state << SK_SEQ_STATE_SHIFT) | (pid & SK_SEQ_PID_MASK);
}

static inline uint64_t sk_seq_pos(uint64_t w)
{
	return w >> SK_SEQ_POS_SHIFT;
}

static inline unsigned sk_seq_state(uint64_t w)
{
	return (unsigned)(w >> SK_SEQ_STATE_SHIFT) & 3u;
}

static inline uint32_t sk_seq_id(uint64_t w)
{
	return (uint32_t)w & SK_SEQ_PID_MASK;
}

/* pos40 - index as a signed 40-bit difference. */
static inline int64_t sk_seq_diff(uint64_t pos40, uint64_t index)
{
	return (int64_t)((pos40 - index) << SK_SEQ_POS_SHIFT) >> SK_SEQ_POS_SHIFT;
}

/* Hash of the layout this build uses; a segment made by a build that
 * disagrees is refused (-EPROTO). */
uint32_t sk_chan_fingerprint(void);

/* Embedded channels: an MPMC channel whose control block and slots lie at
 * base (size bytes, 64-byte aligned) inside the data area of another
 * service's segment, which owns the segment: closing the channel handle
 * leaves the segment open.  Same format and protocol as above; its peer
 * ids come from the segment's counter like any other.  sk_chan_bytes:
 * the bytes it needs; sk_chan_init_at: lay it out (creator, before the
 * segment is published); sk_chan_embed: a handle on it; sk_chan_identity:
 * the handle's current peer id (taking a new one after a fork). */
uint64_t sk_chan_bytes(uint32_t capacity, uint32_t max_msg);
int sk_chan_init_at(void *base, size_t size, uint32_t capacity, uint32_t max_msg);
int sk_chan_embed(shmkit_chan **out, shmkit_seg *seg, void *base, size_t size, int wait);
int sk_chan_identity(shmkit_chan *ch, uint32_t *id);

/* Is the message committed at position pos (shmkit_chan_reserve_pos
 * before the commit) still in the channel, untaken?  MPMC only: true
 * while its slot says FULL(pos); a consumer's claim of it, a later lap
 * or anything else is false.  SPSC: always false (not known). */
bool sk_chan_still_queued(const shmkit_chan *ch, uint64_t pos);

#endif /* SHMKIT_CHAN_H */
