/*
 * seg_file.c - a regular file mapped MAP_SHARED: survives reboots, made
 * durable with msync (shmkit_seg_sync).  Directories, FIFOs and symlinks
 * are refused where a file is expected.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "seg.h"

/* fsync the directory holding path, so the new name survives a crash. */
static void sync_parent_dir(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	int dfd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

static int open_error(const char *path)
{
	int err = sk_neg_errno();

	if (err == -ELOOP)
		return sk_fail(err, "%s is a symbolic link; give the real path", path);
	if (err == -EISDIR)
		return sk_fail(err, "%s is a directory", path);
	return err;
}

/* An unnamed file in the target's directory (O_TMPFILE), named by
 * file_publish once initialised (seg.h).  A file system without O_TMPFILE
 * gets the file under its name at once (O_EXCL). */
static int tmpfile_in_dir_of(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	return open(dirname(buf), O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
}

static int file_create(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o)
{
	mode_t mode = o->mode ? o->mode : 0600;
	struct stat st;
	int err;

	if (o->flags & SHMKIT_HUGE)
		return sk_fail(-EINVAL, "file mappings cannot use huge pages; use sysv, anon or memfd");
	/* Refuse at once what O_EXCL would: a name taken, by a link too. */
	if (!lstat(s->name.path, &st))
		return -EEXIST;
	int fd = tmpfile_in_dir_of(s->name.path, mode);
	s->linked = fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL);
	if (s->linked)
		fd = open(s->name.path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return open_error(s->name.path);
	if (fchmod(fd, mode))
		err = sk_neg_errno();
	else if (!(err = sk_fd_reserve(fd, map_size)))
		err = sk_fd_map(s, fd, o);
	if (err) {
		if (s->linked)
			unlink(s->name.path);
		close(fd);
		return err;
	}
	s->fd = fd;
	return 0;
}

static int file_publish(shmkit_seg *s)
{
	int err = sk_fd_link(s, s->name.path);

	if (err == -ENOENT)
		return sk_fail(err, "directory of %s vanished", s->name.path);
	if (!err)
		sync_parent_dir(s->name.path);
	return err;
}

static int file_open(shmkit_seg *s, const struct shmkit_seg_opts *o)
{
	int oflag = (o->flags & (SHMKIT_RDONLY | SHMKIT_COW)) ? O_RDONLY : O_RDWR;
	/* O_NONBLOCK: opening a FIFO must not hang; fstat then refuses it. */
	int fd = open(s->name.path, oflag | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return open_error(s->name.path);
	int err = sk_fd_map(s, fd, o);
	if (err) {
		close(fd);
		return err;
	}
	s->fd = fd;
	return 0;
}

static int file_remove(const struct sk_name *n)
{
	struct stat st;

	if (lstat(n->path, &st))
		return sk_neg_errno();
	if (!S_ISREG(st.st_mode))
		return sk_fail(S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, "%s is not a regular file", n->path);
	return unlink(n->path) ? sk_neg_errno() : 0;
}

const struct sk_backend_ops sk_file_ops = {
	.backend = SHMKIT_FILE,
	.label = "file",
	.create = file_create,
	.open = file_open,
	.close = sk_fd_close,
	.remove = file_remove,
	.stat = sk_fd_stat,
	.publish = file_publish,
};
