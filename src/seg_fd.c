/*
 * seg_fd.c - what the fd-based backends (posix, file, memfd) share:
 * reserving room, mapping with the attach flags, stat, close.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "seg.h"

int sk_map_prot(unsigned flags)
{
	return (flags & SHMKIT_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
}

int sk_map_flags(unsigned flags)
{
	return ((flags & SHMKIT_COW) ? MAP_PRIVATE : MAP_SHARED) |
	       ((flags & SHMKIT_POPULATE) ? MAP_POPULATE : 0);
}

/* Bytes of memory the machine can still give: MemAvailable + SwapFree
 * from /proc/meminfo; UINT64_MAX if it cannot tell. */
static uint64_t memory_available(void)
{
	char line[128];
	uint64_t avail = 0, swap = 0, kb;
	bool seen = false;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1) {
			avail = kb * 1024;
			seen = true;
		} else if (sscanf(line, "SwapFree: %" SCNu64 " kB", &kb) == 1) {
			swap = kb * 1024;
		}
	}
	fclose(f);
	return seen ? avail + swap : UINT64_MAX;
}

/* Can the file system behind fd hold size bytes, before we ask it to?
 * Shared memory (tmpfs, and the unnamed tmpfs of memfds, which has no
 * size limit at all) takes its pages from RAM and swap: reserving more
 * than the machine has does not fail with ENOSPC, it wakes the OOM killer
 * (which took 13 unrelated processes for one memfd of 64 TiB).  So: no
 * more than the file system's free blocks, nor for tmpfs than the memory
 * available; and not past RLIMIT_FSIZE (SIGXFSZ).  0 or -errno. */
static int room_check(int fd, size_t size)
{
	struct statfs fs;
	struct rlimit rl;

	if (!getrlimit(RLIMIT_FSIZE, &rl) && rl.rlim_cur != RLIM_INFINITY && size > rl.rlim_cur)
		return sk_fail(-EFBIG, "%zu bytes exceed RLIMIT_FSIZE (%llu)", size,
		               (unsigned long long)rl.rlim_cur);
	if (fstatfs(fd, &fs))
		return 0; /* cannot tell: fallocate will */
	if (fs.f_blocks && (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize < size)
		return sk_fail(-ENOSPC, "no room for %zu bytes: %llu free (tmpfs or disk full, "
		               "or a container's small /dev/shm)", size,
		               (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_bsize);
	if (fs.f_type == TMPFS_MAGIC) {
		uint64_t mem = memory_available();
		if (size > mem)
			return sk_fail(-ENOMEM, "%zu bytes of shared memory exceed the memory "
			               "available (%llu bytes of RAM and swap)", size,
			               (unsigned long long)mem);
	}
	return 0;
}

/* Size the object and reserve its memory now, so a full tmpfs or disk is
 * -ENOSPC here rather than SIGBUS at first touch, and a size the machine
 * cannot hold is refused before anything is reserved (room_check). */
int sk_fd_reserve(int fd, size_t size)
{
	int err = room_check(fd, size);

	if (err)
		return err;
	if (ftruncate(fd, (off_t)size))
		return sk_fail(sk_neg_errno(), "cannot size to %zu bytes", size);
	err = posix_fallocate(fd, 0, (off_t)size);
	if (err == ENOSPC)
		return sk_fail(-ENOSPC, "no room for %zu bytes (tmpfs or disk full, or a "
		               "container's small /dev/shm)", size);
	if (err && err != EOPNOTSUPP)
		return sk_fail(-err, "cannot reserve %zu bytes", size);
	return 0;
}

/* Map the whole object behind fd according to the attach flags; an empty
 * object gives map == NULL, map_size == 0 (the caller decides). */
int sk_fd_map(shmkit_seg *s, int fd, const struct shmkit_seg_opts *o)
{
	struct stat st;

	if (fstat(fd, &st))
		return sk_neg_errno();
	if (S_ISDIR(st.st_mode))
		return sk_fail(-EISDIR, "is a directory");
	if (!S_ISREG(st.st_mode))
		return sk_fail(-EINVAL, "not a regular file (FIFO, device or socket)");
	s->map = NULL;
	s->map_size = (size_t)st.st_size;
	if (st.st_size == 0) {
		if (o->flags & SHMKIT_RAW)
			return sk_fail(-EPROTO, "segment is empty (0 bytes)");
		return 0;
	}
	void *p = mmap(NULL, s->map_size, sk_map_prot(o->flags), sk_map_flags(o->flags), fd, 0);
	if (p == MAP_FAILED)
		return sk_fail(sk_neg_errno(), "mmap of %zu bytes failed", s->map_size);
	s->map = p;
	sk_guard_add(s);
	return 0;
}

/* Give an O_TMPFILE object the name path: linkat through /proc, which
 * needs no capability (AT_EMPTY_PATH would).  -EEXIST if path exists. */
int sk_fd_link(shmkit_seg *s, const char *path)
{
	char from[64];

	if (s->linked)
		return 0;
	snprintf(from, sizeof(from), "/proc/self/fd/%d", s->fd);
	if (linkat(AT_FDCWD, from, AT_FDCWD, path, AT_SYMLINK_FOLLOW))
		return errno == EEXIST ? -EEXIST : sk_fail(sk_neg_errno(), "cannot name %s", path);
	s->linked = true;
	return 0;
}

void sk_fd_unmap(shmkit_seg *s)
{
	sk_guard_remove(s);
	if (s->map)
		munmap(s->map, s->map_size);
	s->map = NULL;
}

void sk_fd_close(shmkit_seg *s)
{
	sk_fd_unmap(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int sk_fd_stat(const shmkit_seg *s, struct shmkit_seg_info *st)
{
	struct stat sb;

	if (fstat(s->fd, &sb))
		return sk_neg_errno();
	st->mode = sb.st_mode & 07777;
	st->uid = sb.st_uid;
	st->removed = sb.st_nlink == 0;
	return 0;
}
