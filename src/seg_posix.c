/*
 * seg_posix.c - POSIX shared memory: shm_open in /dev/shm, ftruncate,
 * posix_fallocate (room reserved at create), mmap(MAP_SHARED).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "seg.h"

/* Made unnamed in /dev/shm (O_TMPFILE), named by posix_publish once it is
 * initialised (seg.h).  Where /dev/shm cannot make unnamed files, made
 * under its name at once, as shm_open would. */
static int posix_create(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o)
{
	mode_t mode = o->mode ? o->mode : 0600;
	int err;

	if (o->flags & SHMKIT_HUGE)
		return sk_fail(-EINVAL, "POSIX shared memory (tmpfs) has no huge pages; use sysv, anon or memfd");
	int fd = open(SK_SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	s->linked = fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL);
	if (s->linked)
		fd = shm_open(s->name.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return sk_neg_errno();
	/* shm_open applies the umask: set the mode asked for, exactly. */
	if (fchmod(fd, mode))
		err = sk_neg_errno();
	else if (!(err = sk_fd_reserve(fd, map_size)))
		err = sk_fd_map(s, fd, o);
	if (err) {
		if (s->linked)
			shm_unlink(s->name.path);
		close(fd);
		return err;
	}
	s->fd = fd;
	return 0;
}

static int posix_publish(shmkit_seg *s)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), SK_SHM_DIR "%s", s->name.path);
	return sk_fd_link(s, path);
}

static int posix_open(shmkit_seg *s, const struct shmkit_seg_opts *o)
{
	int oflag = (o->flags & (SHMKIT_RDONLY | SHMKIT_COW)) ? O_RDONLY : O_RDWR;
	int fd = shm_open(s->name.path, oflag | O_CLOEXEC, 0);

	if (fd < 0)
		return sk_neg_errno();
	int err = sk_fd_map(s, fd, o);
	if (err) {
		close(fd);
		return err;
	}
	s->fd = fd;
	return 0;
}

static int posix_remove(const struct sk_name *n)
{
	return shm_unlink(n->path) ? sk_neg_errno() : 0;
}

const struct sk_backend_ops sk_posix_ops = {
	.backend = SHMKIT_POSIX,
	.label = "posix",
	.create = posix_create,
	.open = posix_open,
	.close = sk_fd_close,
	.remove = posix_remove,
	.stat = sk_fd_stat,
	.publish = posix_publish,
};
