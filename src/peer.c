/*
 * peer.c - participants and their liveness, asked of the kernel through
 * open-file-description locks.  The mechanism, the lock file of each
 * backend and the byte map are described in peer.h.
 *
 * Why OFD locks.  A pid names a process only in one PID namespace and
 * only until it is reused; /proc/PID/stat's start time is shifted by the
 * reader's time namespace; a process whose main thread exited shows as a
 * zombie while its other threads run.  An open file description is none
 * of these: the kernel closes it when the last descriptor referring to it
 * goes, which for a process that does not pass it on is its death, and
 * every lock on it goes with it (fs/locks.c, locks_remove_file).  Classic
 * POSIX record locks would not do: they belong to the process, are lost
 * by any close() of any descriptor of the file in that process, and are
 * not inherited across fork.
 *
 * Why a benign race is benign.  sk_peer_held() may answer "free" for an
 * entry whose owner is taking it right now; every caller acts on a free
 * entry only through a compare-and-swap on the shared word that names the
 * owner (or by taking the lock itself, which the kernel arbitrates), and
 * an owner sets that word only after its lock is held.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "peer.h"
#include "seg.h"

/* ---- fork: every joined peer is dropped in the child ---------------------
 *
 * A child of fork inherits every descriptor, hence its parent's open file
 * descriptions and their locks: while the child lived, the parent's
 * entries would look alive after the parent died, even if the child never
 * touched shmkit.  So joined peers are kept in a list, and a fork handler
 * closes the child's copies of their descriptors (the parent keeps its
 * own: a lock goes only with the last descriptor of its description).  A
 * handle used in the child then takes an entry of its own (sk_peer_join),
 * and sk_peer_forked() tells it that what it held is its parent's.
 * (Processes made by raw clone() or vfork() without exec run no fork
 * handler; the descriptors are O_CLOEXEC, so an exec drops them.)
 */

unsigned sk_peer_fork_gen_ = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sk_peer *reg_head;

static void reg_add(struct sk_peer *p)
{
	pthread_mutex_lock(&reg_lock);
	p->prev = NULL;
	p->next = reg_head;
	if (reg_head)
		reg_head->prev = p;
	reg_head = p;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(struct sk_peer *p)
{
	pthread_mutex_lock(&reg_lock);
	if (p->prev)
		p->prev->next = p->next;
	else if (reg_head == p)
		reg_head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	pthread_mutex_unlock(&reg_lock);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&reg_lock); /* the list is whole at the fork */
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

static void fork_child(void)
{
	/* One thread here: plain list walk; close() is async-signal-safe. */
	for (struct sk_peer *p = reg_head, *next; p; p = next) {
		next = p->next;
		close(p->fd);
		p->fd = -1;
		p->id = 0;
		p->prev = p->next = NULL;
	}
	reg_head = NULL;
	/* Relaxed: single-threaded; read by sk_fork_gen_now(). */
	sk_store_relaxed(&sk_peer_fork_gen_, sk_load_relaxed(&sk_peer_fork_gen_) + 1);
	pthread_mutex_unlock(&reg_lock);
}

static void fork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

unsigned sk_fork_gen(void)
{
	pthread_once(&fork_once, fork_register);
	return sk_fork_gen_now();
}

/* ---- joining ------------------------------------------------------------ */

bool sk_peer_forked(const struct sk_peer *p)
{
	return p->gen != 0 && p->gen != sk_fork_gen_now();
}

void sk_peer_forget(struct sk_peer *p)
{
	if (p->fd >= 0) {
		reg_del(p);
		close(p->fd);
	}
	p->fd = -1;
	p->id = 0;
	p->gen = 0;
}

int sk_peer_join(struct sk_peer *p, const shmkit_seg *seg)
{
	char path[64];
	int src = sk_seg_lock_fd(seg);
	unsigned gen = sk_fork_gen();

	if (sk_peer_forked(p))
		sk_peer_forget(p);
	if (p->fd >= 0)
		return 0;
	if (src < 0)
		return sk_fail(-EINVAL, "segment has no lock file");
	/* A new open file description of the same inode: the /proc link
	 * reopens it, also after its name was removed, and for a memfd. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", src);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sk_fail(sk_neg_errno(), "cannot open the segment's lock file for a peer "
		               "entry (through %s; is /proc mounted?)", path);
	p->fd = fd;
	p->id = 0;
	p->gen = gen;
	reg_add(p);
	return 0;
}

void sk_peer_leave(struct sk_peer *p)
{
	sk_peer_forget(p); /* closing the description drops every lock on it */
}

/* ---- locks -------------------------------------------------------------- */

static struct flock byte_lock(short type, uint64_t off)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)off,
		.l_len = 1,
		.l_pid = 0, /* must be 0 for OFD locks */
	};
	return fl;
}

int sk_peer_lock(struct sk_peer *p, uint64_t off)
{
	struct flock fl = byte_lock(F_WRLCK, off);

	if (p->fd < 0)
		return sk_fail(-EINVAL, "peer has not joined");
	while (fcntl(p->fd, F_OFD_SETLK, &fl)) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EACCES)
			return -EBUSY;
		return sk_fail(sk_neg_errno(), "cannot lock a peer entry");
	}
	return 0;
}

void sk_peer_unlock(struct sk_peer *p, uint64_t off)
{
	struct flock fl = byte_lock(F_UNLCK, off);

	if (p->fd >= 0)
		fcntl(p->fd, F_OFD_SETLK, &fl);
}

int sk_peer_held(const shmkit_seg *seg, uint64_t off)
{
	struct flock fl = byte_lock(F_WRLCK, off);
	int fd = sk_seg_lock_fd(seg);

	if (fd < 0)
		return -EINVAL;
	/* The segment's own description holds no lock (peers lock through
	 * descriptions of their own), so every holder conflicts with it. */
	if (fcntl(fd, F_OFD_GETLK, &fl))
		return sk_neg_errno();
	return fl.l_type != F_UNLCK;
}

/* ---- ids ---------------------------------------------------------------- */

#define SK_PEER_ID_TRIES 4096

int sk_peer_take_id(struct sk_peer *p, const shmkit_seg *seg, uint64_t base, bool *wrapped)
{
	uint64_t *next = &((struct sk_seg_hdr *)seg->map)->peer_next;

	for (unsigned i = 0; i < SK_PEER_ID_TRIES; i++) {
		/* Relaxed: the counter only spreads ids; the lock taken below
		 * decides who owns one. */
		uint64_t n = sk_fetch_add(next, 1, __ATOMIC_RELAXED);
		uint32_t k = (uint32_t)(n % SK_PEER_ID_MAX) + 1;
		int r = sk_peer_lock(p, base + k);
		if (r == -EBUSY)
			continue; /* a live peer has it (the counter wrapped) */
		if (r)
			return r;
		p->id = k;
		*wrapped = n >= SK_PEER_ID_MAX;
		return 0;
	}
	return sk_fail(-EBUSY, "no free peer id after %d tries (over %u live peers?)",
	               SK_PEER_ID_TRIES, SK_PEER_ID_MAX);
}

void sk_peer_sysv_path(char *buf, size_t len, long key)
{
	snprintf(buf, len, "/dev/shm/.shmkit-sysv-%08x.lock", (unsigned)(uint32_t)key);
}

/* Take a table entry: the first of the n at base whose lock we get,
 * trying those left cleanly (owner word 0) first, then those whose owner
 * may have died.  A lock this peer holds already does not conflict with
 * its own description, so the entries set in the bitmap *mine (may be
 * NULL) are skipped.  Its index, or -1 if every entry has a live owner. */
int sk_peer_take_entry(struct sk_peer *p, uint64_t base, const uint64_t *owner0, size_t stride,
                       unsigned n, const uint64_t *mine)
{
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			const uint64_t *owner = (const uint64_t *)(const void *)
				((const unsigned char *)owner0 + (size_t)i * stride);
			/* Relaxed: a hint for the order of tries only; the lock
			 * decides. */
			if ((sk_load_relaxed(owner) == 0) != (pass == 0) ||
			    (mine && (mine[i / 64] >> (i % 64) & 1)))
				continue;
			if (sk_peer_lock(p, base + i) == 0)
				return (int)i;
		}
	}
	return -1;
}
