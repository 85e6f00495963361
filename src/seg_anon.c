/*
 * seg_anon.c - mmap(MAP_SHARED|MAP_ANONYMOUS): shared with the children
 * forked after creation; no name, nothing to remove, nothing left behind.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "seg.h"

static int anon_create(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o)
{
	int flags = MAP_SHARED | MAP_ANONYMOUS | ((o->flags & SHMKIT_HUGE) ? MAP_HUGETLB : 0) |
	            ((o->flags & SHMKIT_POPULATE) ? MAP_POPULATE : 0);
	void *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED) {
		if (errno == ENOMEM && (o->flags & SHMKIT_HUGE))
			return sk_fail(-ENOMEM, "no huge pages available (/proc/sys/vm/nr_hugepages)");
		return sk_neg_errno();
	}
	/* The lock file of peers (peer.h): a memfd that children forked
	 * with the mapping inherit, as they inherit the mapping. */
	s->lock_fd = memfd_create("shmkit-anon-peers", MFD_CLOEXEC);
	if (s->lock_fd < 0) {
		int err = sk_fail(sk_neg_errno(), "cannot make the peers' lock memfd");
		munmap(p, map_size);
		return err;
	}
	s->map = p;
	s->map_size = map_size;
	return 0;
}

static int anon_open(shmkit_seg *s, const struct shmkit_seg_opts *o)
{
	return sk_fail(-EINVAL, "anon segments have no name to open; share them by fork");
}

static void anon_close(shmkit_seg *s)
{
	if (s->map)
		munmap(s->map, s->map_size);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->map = NULL;
	s->lock_fd = -1;
}

static int anon_remove(const struct sk_name *n)
{
	return sk_fail(-EINVAL, "anon segments have no name to remove; closing frees them");
}

static int anon_stat(const shmkit_seg *s, struct shmkit_seg_info *st)
{
	st->mode = 0600;
	st->uid = getuid();
	return 0;
}

const struct sk_backend_ops sk_anon_ops = {
	.backend = SHMKIT_ANON,
	.label = "anon",
	.create = anon_create,
	.open = anon_open,
	.close = anon_close,
	.remove = anon_remove,
	.stat = anon_stat,
};
