/*
 * peer.h - who takes part in a shared structure, and whether they live.
 * Not public.  One module for every service: liveness is asked of the
 * kernel, never judged from a pid.
 *
 * The mechanism
 * -------------
 * Every participant that can hold others up (a channel claimer or SPSC
 * role holder, a bus publisher or subscriber entry, a creator while it
 * initialises a segment) holds an open-file-description lock (fcntl
 * F_OFD_SETLK, an exclusive lock on one byte) in the segment's *lock
 * file*, on a byte that names its entry.  The kernel drops the lock when
 * the open file description goes away: at the holder's death, whatever
 * its threads (a main thread that called pthread_exit leaves the process
 * alive, and its lock held), its PID or time namespace, or what its pid
 * later names.  A checker asks F_OFD_GETLK, and only when it has been
 * held up past a grace period: no system call on any hot path.  pid and
 * start time remain in shared memory for display only (`ls`, `info`).
 *
 * The lock file of a segment
 * --------------------------
 *   posix, file, memfd  the segment's own file (locks on bytes far past
 *                       its end, which nothing reads or writes)
 *   sysv                /dev/shm/.shmkit-sysv-KKKKKKKK.lock, KKKKKKKK the
 *                       key in hex; made by the creator with the
 *                       segment's mode, removed by `shmkit rm` and `gc`
 *                       with the segment
 *   anon                a memfd made with the mapping, inherited by the
 *                       children that inherit the mapping
 * A peer locks through an open file description of its own: it reopens
 * the lock file through /proc/self/fd/N (a new description of the same
 * inode; works after the name is removed, and for a memfd).
 *
 * fork: a child inherits its parent's descriptors and so would share the
 * parent's open file descriptions and locks.  A fork handler closes the
 * child's copies of every joined peer's descriptor at once, so that the
 * parent's entries die with the parent whatever the child does; before a
 * child acts for itself it takes an entry of its own (sk_peer_forked()
 * tells a service that what it held is its parent's).
 *
 * Lock byte map (offsets in the lock file)
 *   0                       the creator, while it initialises (sysv)
 *   1                       every open handle of an fd-backed segment, a
 *                           shared lock: "in use" for `ls` and `gc`
 *   SK_PEER_CHAN + 0        a channel's owner lock: openers of owned
 *                           handles (chan_recover.c, "Owners")
 *   SK_PEER_CHAN + k        channel peer id k (1 <= k < 2^22)
 *   SK_PEER_BUS_SUB + i     bus subscriber entry i
 *   SK_PEER_BUS_PUB + j     bus publisher entry j
 *   SK_PEER_RPC_CLIENT + i  rpc client entry i
 *   SK_PEER_RPC_SERVER + j  rpc server entry j
 *
 * Cost: one descriptor per joined handle, and one lock (a struct
 * file_lock in the kernel) per entry held.
 */
#ifndef SHMKIT_PEER_H
#define SHMKIT_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

typedef struct shmkit_seg shmkit_seg;

#define SK_PEER_CREATOR 0
#define SK_PEER_ATTACHED 1
#define SK_PEER_CHAN (UINT64_C(1) << 32)
#define SK_PEER_BUS_SUB (UINT64_C(2) << 32)
#define SK_PEER_BUS_PUB (UINT64_C(3) << 32)
#define SK_PEER_RPC_CLIENT (UINT64_C(4) << 32)
#define SK_PEER_RPC_SERVER (UINT64_C(5) << 32)

#define SK_PEER_ID_BITS 22
#define SK_PEER_ID_MAX ((UINT32_C(1) << SK_PEER_ID_BITS) - 1)

struct sk_peer {
	int fd;          /* own open file description of the lock file; -1 */
	uint32_t id;     /* id taken with sk_peer_take_id, 0 if none */
	unsigned gen;    /* fork generation when it joined; 0 never joined */
	struct sk_peer *prev, *next; /* joined peers of this process (peer.c) */
};

/* A peer is set to this before it joins and never copied once joined
 * (the process's list of peers points to it). */
#define SK_PEER_INIT { .fd = -1, .id = 0, .gen = 0, .prev = NULL, .next = NULL }

/* Open this handle's own description of seg's lock file.  0 or -errno.
 * A peer already joined in this process (same fork generation) is left
 * as it is. */
int sk_peer_join(struct sk_peer *p, const shmkit_seg *seg);
/* Drop every lock of this peer (closes its description).  In a forked
 * child whose peer is its parent's, only the inherited descriptor is
 * closed: the parent's locks stay. */
void sk_peer_leave(struct sk_peer *p);
/* True if the process forked since p joined: p's locks are the parent's
 * (and the child's copy of its descriptor is already closed). */
bool sk_peer_forked(const struct sk_peer *p);
/* Reset p to not joined, closing its descriptor if it has one. */
void sk_peer_forget(struct sk_peer *p);

/* Take an exclusive lock on byte off: 0, -EBUSY if another description
 * holds it, or another -errno. */
int sk_peer_lock(struct sk_peer *p, uint64_t off);
void sk_peer_unlock(struct sk_peer *p, uint64_t off);
/* Is byte off locked by any description (this process's peers
 * included)?  1 held, 0 free, -errno if the kernel cannot tell (callers
 * treat that as held: a live entry is never taken).  Asked through the
 * segment's own descriptor, which never holds a lock. */
int sk_peer_held(const shmkit_seg *seg, uint64_t off);

/* Take an entry of a table of n entries (stride bytes apart, the first's
 * owner word at owner0) whose lock bytes are base + i: one left cleanly
 * (owner 0) first, then one whose owner died.  Entries set in the bitmap
 * mine (may be NULL) are this peer's already and skipped.  The index, or
 * -1 if every entry has a live owner. */
int sk_peer_take_entry(struct sk_peer *p, uint64_t base, const uint64_t *owner0, size_t stride,
                       unsigned n, const uint64_t *mine);

/* Take a fresh id for a channel-style peer: the first k, counting from
 * the segment header's peer counter, whose byte base + k this peer can
 * lock.  *wrapped is set when k was used before (the counter went past
 * SK_PEER_ID_MAX): the caller then clears stale state naming k.  0 or
 * -errno. */
int sk_peer_take_id(struct sk_peer *p, const shmkit_seg *seg, uint64_t base, bool *wrapped);

/* The fork generation of this process (bumped in every child of fork);
 * sk_fork_gen() also registers the fork handler, which sk_peer_join()
 * has done for every joined peer: sk_fork_gen_now() is the hot-path read
 * for them. */
unsigned sk_fork_gen(void);
extern unsigned sk_peer_fork_gen_;
static inline unsigned sk_fork_gen_now(void)
{
	/* Relaxed: changed only in a child's fork handler, single-threaded. */
	return sk_load_relaxed(&sk_peer_fork_gen_);
}

/* The lock file of a System V key: path into buf. */
void sk_peer_sysv_path(char *buf, size_t len, long key);

#endif /* SHMKIT_PEER_H */
