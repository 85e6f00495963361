/*
 * seg_sysv.c - System V shared memory: ftok/shmget/shmat/shmdt/shmctl.
 * A removed segment (IPC_RMID) lives on until its last detach; stat shows
 * that as removed with its attach count.  Sizes over the kernel limits say
 * which limit.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "peer.h"
#include "seg.h"

/* ---- the lock file of a key (peer.h) ------------------------------------ */

static void lockfile_remove(long key)
{
	char path[64];

	if (key == 0)
		return;
	sk_peer_sysv_path(path, sizeof(path), key);
	unlink(path);
}

/* Open (or make, with the segment's mode) the lock file of key.  The
 * descriptor, or -errno; *made (may be NULL) tells whether this call made
 * the file. */
static int lockfile_open(long key, mode_t mode, bool *made)
{
	char path[64];

	sk_peer_sysv_path(path, sizeof(path), key);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (made)
		*made = fd >= 0;
	if (fd >= 0) {
		if (fchmod(fd, mode)) { /* the umask must not narrow it */
			int err = sk_neg_errno();
			unlink(path);
			close(fd);
			return err;
		}
		return fd;
	}
	if (errno != EEXIST)
		return sk_fail(sk_neg_errno(), "cannot make the lock file %s", path);
	/* Read-write or not at all: the caller is a creator, which must
	 * write-lock it (creator_lock); a read-only descriptor made that
	 * lock fail with -EBADF (the fault loops' second pass saw it). */
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 ? fd : sk_fail(sk_neg_errno(), "cannot open the lock file %s", path);
}

/* The lock file of key if it exists: a descriptor (read-write, or
 * read-only where that is all we may), or -1. */
static int lockfile_existing(long key)
{
	char path[64];

	sk_peer_sysv_path(path, sizeof(path), key);
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC); /* enough to ask */
	return fd >= 0 ? fd : -1;
}

/* Creator: lock byte 0 before the segment exists, so an opener that finds
 * it initialising with byte 0 free knows its creator is gone.  Another
 * creator of the same key holds it only while it initialises: wait for
 * it, bounded.  0, or -errno. */
static int creator_lock(int fd)
{
	struct sk_peer me = { .fd = fd };

	for (int i = 0; i < 2000; i++) {
		int r = sk_peer_lock(&me, SK_PEER_CREATOR);
		if (r != -EBUSY)
			return r;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return sk_fail(-ETIMEDOUT, "another creator of this key holds its lock for over 2 s");
}


static unsigned long read_limit(const char *file)
{
	char path[64];
	unsigned long v = 0;

	snprintf(path, sizeof(path), "/proc/sys/kernel/%s", file);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static int check_limits(size_t size)
{
	unsigned long shmmax = read_limit("shmmax"), shmall = read_limit("shmall");
	size_t pages = size / sk_page_size();

	if (shmmax && size > shmmax)
		return sk_fail(-ENOSPC, "%zu bytes exceeds kernel.shmmax (%lu, /proc/sys/kernel/shmmax)",
		               size, shmmax);
	if (shmall && pages > shmall)
		return sk_fail(-ENOSPC, "%zu pages exceeds kernel.shmall (%lu pages, /proc/sys/kernel/shmall)",
		               pages, shmall);
	return 0;
}

static int shmget_error(size_t size)
{
	int err = sk_neg_errno();

	if (err == -ENOSPC)
		return sk_fail(err, "kernel.shmmni (segment count) or kernel.shmall (total pages) reached");
	if (err == -ENOMEM)
		return sk_fail(err, "no memory for %zu bytes%s", size, "");
	if (err == -EINVAL)
		return sk_fail(err, "size %zu refused (kernel.shmmin/shmmax, or an existing segment "
		               "with this key is smaller)", size);
	return err;
}

static void populate(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	madvise(p, len, MADV_POPULATE_WRITE);
#else
	(void)p; (void)len;
#endif
}

static int sysv_create(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o)
{
	int mode = (int)((o->mode ? o->mode : 0600) & 0777);
	int err;

	if (s->name.shmid >= 0)
		return sk_fail(-EINVAL, "cannot create by id; give a key (sysv:0xKEY or sysv:/PATH:PROJ)");
	if ((err = check_limits(map_size)))
		return err;
	bool made;
	int lfd = lockfile_open(s->name.key, (mode_t)mode & 0666, &made);
	if (lfd < 0)
		return lfd;
	if ((err = creator_lock(lfd))) {
		/* Nothing has this key yet: a lock file this call made goes
		 * too, as when shmget fails below (the fault loops saw
		 * /dev/shm/.shmkit-sysv-KEY.lock left by a refused lock). */
		if (made)
			lockfile_remove(s->name.key);
		close(lfd);
		return err;
	}
	int flags = IPC_CREAT | IPC_EXCL | mode | ((o->flags & SHMKIT_HUGE) ? SHM_HUGETLB : 0);
	int id = shmget((key_t)s->name.key, map_size, flags);
	if (id < 0) {
		if (errno == ENOMEM && (o->flags & SHMKIT_HUGE))
			err = sk_fail(-ENOMEM, "no huge pages available (/proc/sys/vm/nr_hugepages)");
		else
			err = errno == EEXIST ? -EEXIST : shmget_error(map_size);
		if (made && err != -EEXIST)
			lockfile_remove(s->name.key); /* nothing has this key */
		close(lfd); /* drops the creator lock */
		return err;
	}
	void *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		err = sk_neg_errno();
		shmctl(id, IPC_RMID, NULL);
		if (made)
			lockfile_remove(s->name.key);
		close(lfd);
		return err;
	}
	s->lock_fd = lfd;
	if (o->flags & SHMKIT_POPULATE)
		populate(p, map_size);
	s->shmid = id;
	s->map = p;
	s->map_size = map_size;
	return 0;
}

static int sysv_id(const struct sk_name *n)
{
	if (n->shmid >= 0)
		return n->shmid;
	int id = shmget((key_t)n->key, 0, 0);
	return id < 0 ? sk_neg_errno() : id;
}

static int sysv_open(shmkit_seg *s, const struct shmkit_seg_opts *o)
{
	struct shmid_ds ds;

	if (o->flags & SHMKIT_COW)
		return sk_fail(-EINVAL, "System V segments cannot be attached copy-on-write; "
		               "use posix, file or memfd");
	int id = sysv_id(&s->name);
	if (id < 0)
		return id;
	if (shmctl(id, IPC_STAT, &ds))
		return errno == EINVAL || errno == EIDRM ? -ENOENT : sk_neg_errno();
	void *p = shmat(id, NULL, (o->flags & SHMKIT_RDONLY) ? SHM_RDONLY : 0);
	if (p == (void *)-1)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : sk_neg_errno();
	if (o->flags & SHMKIT_POPULATE)
		populate(p, ds.shm_segsz);
	s->shmid = id;
	s->map = p;
	s->map_size = ds.shm_segsz;
	/* Peers' locks: the lock file its creator made.  Opening never makes
	 * one (a foreign segment must not leave files behind); without it
	 * the segment takes no peers (sk_peer_join fails). */
	if (ds.shm_perm.__key != IPC_PRIVATE)
		s->lock_fd = lockfile_existing(ds.shm_perm.__key);
	return 0;
}

static void sysv_close(shmkit_seg *s)
{
	if (s->map)
		shmdt(s->map);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->map = NULL;
	s->lock_fd = -1;
}

static int sysv_remove(const struct sk_name *n)
{
	int id = sysv_id(n);

	if (id < 0)
		return id;
	struct shmid_ds ds;
	long key = shmctl(id, IPC_STAT, &ds) ? 0 : (long)ds.shm_perm.__key;
	if (shmctl(id, IPC_RMID, NULL))
		return errno == EINVAL || errno == EIDRM ? -ENOENT : sk_neg_errno();
	lockfile_remove(key);
	return 0;
}

static int sysv_stat(const shmkit_seg *s, struct shmkit_seg_info *st)
{
	struct shmid_ds ds;

	if (shmctl(s->shmid, IPC_STAT, &ds))
		return sk_neg_errno();
	st->mode = ds.shm_perm.mode & 0777;
	st->uid = ds.shm_perm.uid;
	st->attach_count = (long)ds.shm_nattch;
	st->removed = (ds.shm_perm.mode & SHM_DEST) != 0;
	st->shmid = s->shmid;
	st->key = (long)(uint32_t)ds.shm_perm.__key;
	if (st->kind == SHMKIT_KIND_FOREIGN || st->creator_pid <= 0) {
		st->creator_pid = ds.shm_cpid;
		st->creator_alive = sk_proc_alive(ds.shm_cpid, 0);
		st->created_ns = (int64_t)ds.shm_ctime * 1000000000;
	}
	return 0;
}

const struct sk_backend_ops sk_sysv_ops = {
	.backend = SHMKIT_SYSV,
	.label = "sysv",
	.create = sysv_create,
	.open = sysv_open,
	.close = sysv_close,
	.remove = sysv_remove,
	.stat = sysv_stat,
};
