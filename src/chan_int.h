/*
 * chan_int.h - what the channel's files share: the handle, one claim
 * attempt, and the inline helpers the hot path and recovery both use
 * (sk_chan_ prefix).  Not public; the shared-memory format is chan.h.
 *
 *   chan.c          layout (fingerprint, geometry, binding a segment),
 *                   lifecycle (create, open, attach, close), embedded
 *                   channels, statistics
 *   chan_msg.c      the MPMC and SPSC protocols (file-top essay): claims,
 *                   SPSC roles, publication, waiting, the message calls
 *                   (send, recv, reserve, commit, abort, peek, release,
 *                   commit_tag) and the pollable fd
 *   chan_recover.c  what a crash leaves (file-top essay): the handle's
 *                   peer id and statistics entry, recovery from dead
 *                   claimers, owners and their public calls
 */
#ifndef SHMKIT_CHAN_INT_H
#define SHMKIT_CHAN_INT_H

#include "chan.h"
#include "peer.h"
#include "waitfd.h"
#include "seg.h"
#include "wait.h"

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

/* ---- the slots (chan.h: layout) ---------------------------------------- */

static inline struct sk_chan_slot *sk_chan_slot_at(const shmkit_chan *ch, uint64_t pos)
{
	return (struct sk_chan_slot *)(void *)(ch->slots + (pos & ch->mask) * ch->slot_size);
}

static inline void *sk_chan_payload(struct sk_chan_slot *s)
{
	return (unsigned char *)s + SK_CHAN_SLOT_HDR;
}

/* ---- per-handle statistics (chan_recover.c takes and gives the entry) --- */

/* What sk_chan_stat_count counts. */
enum stat_field { ST_SENT, ST_RECEIVED, ST_FULL_WAITS, ST_EMPTY_WAITS };

/* Count one event: in this handle's entry with a plain load and store (it
 * is the only writer), else a locked add on the shared counter. */
static inline void sk_chan_stat_count(shmkit_chan *ch, enum stat_field f)
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

/* ---- identity (chan_recover.c) ------------------------------------------ */

SK_COLD int sk_chan_identity_refresh(shmkit_chan *ch);

static inline int sk_chan_identity_check(shmkit_chan *ch)
{
	if (SK_LIKELY(ch->peer.id && ch->peer.gen == sk_fork_gen_now()))
		return 0;
	return sk_chan_identity_refresh(ch);
}

/* ---- across the files -------------------------------------------------- */

/* chan_msg.c */
SK_COLD int sk_chan_corrupt_slot(const shmkit_chan *ch, uint64_t index, uint64_t w, const char *who);
void sk_chan_role_drop(shmkit_chan *ch, int side);
void sk_chan_give_up(shmkit_chan *ch);

/* chan_recover.c */
void sk_chan_stat_give(shmkit_chan *ch);
SK_COLD int sk_chan_reclaim(shmkit_chan *ch, uint64_t w);
SK_COLD int sk_chan_not_owned(const char *what);

#endif
