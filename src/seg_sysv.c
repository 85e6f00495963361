/*
 * seg_sysv.c - System V shared memory: ftok/shmget/shmat/shmdt/shmctl.
 * A removed segment (IPC_RMID) lives on until its last detach; stat shows
 * that as removed with its attach count.  Sizes over the kernel limits say
 * which limit.
 */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#include "seg.h"

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
	int flags = IPC_CREAT | IPC_EXCL | mode | ((o->flags & SHMKIT_HUGE) ? SHM_HUGETLB : 0);
	int id = shmget((key_t)s->name.key, map_size, flags);
	if (id < 0) {
		if (errno == ENOMEM && (o->flags & SHMKIT_HUGE))
			return sk_fail(-ENOMEM, "no huge pages available (/proc/sys/vm/nr_hugepages)");
		return errno == EEXIST ? -EEXIST : shmget_error(map_size);
	}
	void *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		err = sk_neg_errno();
		shmctl(id, IPC_RMID, NULL);
		return err;
	}
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
	return 0;
}

static void sysv_close(shmkit_seg *s)
{
	if (s->map)
		shmdt(s->map);
	s->map = NULL;
}

static int sysv_remove(const struct sk_name *n)
{
	int id = sysv_id(n);

	if (id < 0)
		return id;
	if (shmctl(id, IPC_RMID, NULL))
		return errno == EINVAL || errno == EIDRM ? -ENOENT : sk_neg_errno();
	return 0;
}

static int sysv_stat(const shmkit_seg *s, struct shmkit_seg_stat *st)
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
