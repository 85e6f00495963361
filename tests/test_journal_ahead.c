/*
 * test_journal_ahead.c - what the journal writer does ahead of itself in
 * the file (src/journal_write.c, writer_fill and writer_writeback):
 *   - under SYNC and GROUP, the blocks up to the next MiB boundary past a
 *     record are written (zeros), not unwritten extents of the file's
 *     preallocation, so a sync never converts an extent per record; the
 *     bytes there still read as zeros and every record reads back;
 *   - under ASYNC, once a MiB of records is complete its write-back is
 *     started: none of its pages is still dirty in the page cache
 *     (msync(MS_ASYNC), which it used to call, starts nothing on Linux).
 * Both look at the file system (FIEMAP extent flags) or the page cache
 * (/proc/kpageflags, root only) and skip where that cannot be seen: on
 * tmpfs, or a file system that makes no unwritten extents.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "journal.h"
#include "journal_test.h"
#include "lib_test.h"
#include "page_flags.h"

#define MIB (1u << 20)
#define FSIZE (4u * MIB)
#define MAXREC 4096u
#define NEXT 64

TestSuite(journal_ahead, .timeout = 60, .fini = jt_cleanup);

#define open_writer(path, policy) jt_open_writer(path, policy, FSIZE, MAXREC)

static void append_range(shmkit_journal *j, uint64_t from, uint64_t to, uint32_t len)
{
	uint8_t buf[MAXREC];
	for (uint64_t s = from; s <= to; s++) {
		jt_fill(s, buf, len);
		int err = shmkit_journal_append(j, buf, len, NULL);
		cr_assert_eq(err, 0, "append %llu: %s (%s)", (unsigned long long)s,
		             shmkit_strerror(err), shmkit_errdetail());
	}
}

/* The first data file of the journal at path, opened read-only. */
static int first_file(const char *path)
{
	char f[160];
	snprintf(f, sizeof(f), "%s/%020d.skj", path, 1);
	int fd = open(f, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s", f);
	return fd;
}

/* The extents of fd (synced first: FIEMAP_FLAG_SYNC), into *fm (caller
 * frees); false if the file system has no FIEMAP. */
static bool extents(int fd, struct fiemap **fm)
{
	size_t size = sizeof(struct fiemap) + NEXT * sizeof(struct fiemap_extent);
	*fm = calloc(1, size);
	cr_assert_not_null(*fm);
	(*fm)->fm_length = ~0ULL;
	(*fm)->fm_flags = FIEMAP_FLAG_SYNC;
	(*fm)->fm_extent_count = NEXT;
	return ioctl(fd, FS_IOC_FIEMAP, *fm) == 0;
}

/* Bytes of [from, to) that lie in unwritten extents of fd. */
static uint64_t unwritten_bytes(const struct fiemap *fm, uint64_t from, uint64_t to)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];
		uint64_t lo = e->fe_logical > from ? e->fe_logical : from;
		uint64_t hi = e->fe_logical + e->fe_length < to ? e->fe_logical + e->fe_length : to;
		if ((e->fe_flags & FIEMAP_EXTENT_UNWRITTEN) && hi > lo)
			n += hi - lo;
	}
	return n;
}

/* Does posix_fallocate make unwritten extents here (ext4, XFS: yes)?  If
 * not, there is nothing for the writer to avoid and nothing to see. */
static bool fs_has_unwritten(const char *dir)
{
	char f[160];
	snprintf(f, sizeof(f), "%s.probe", dir);
	int fd = open(f, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "create %s", f);
	struct fiemap *fm = NULL;
	bool yes = posix_fallocate(fd, 0, MIB) == 0 && extents(fd, &fm) &&
	           unwritten_bytes(fm, 0, MIB) > 0;
	free(fm);
	close(fd);
	unlink(f);
	return yes;
}

static void check_filled(int policy)
{
	const char *path = jt_new_disk_path();
	if (!path)
		cr_skip_test("no disk-backed directory (/tmp and /var/tmp are tmpfs)");
	if (!fs_has_unwritten(path))
		cr_skip_test("this file system makes no unwritten extents (FIEMAP)");
	shmkit_journal *j = open_writer(path, policy);
	append_range(j, 1, 3, 100);
	int fd = first_file(path);
	struct fiemap *fm = NULL;
	cr_assert(extents(fd, &fm), "FIEMAP worked on the probe, not on the journal");
	uint64_t left = unwritten_bytes(fm, 0, MIB);
	free(fm);
	cr_assert_eq(left, 0, "policy %d: %llu bytes of the first MiB are still unwritten extents",
	             policy, (unsigned long long)left);
	/* Nothing readable changed: after the records, zeros to the end. */
	static uint8_t page[4096];
	size_t end = SKJ_FHDR_SIZE + 3 * (SKJ_RHDR_SIZE + skj_pad8(100));
	for (off_t at = 0; at < (off_t)FSIZE; at += (off_t)sizeof(page)) {
		cr_assert_eq(pread(fd, page, sizeof(page), at), (ssize_t)sizeof(page));
		for (size_t i = 0; i < sizeof(page); i++)
			if ((size_t)at + i >= end)
				cr_assert_eq(page[i], 0, "byte %zu after the records is %#x",
				             (size_t)at + i, page[i]);
	}
	close(fd);
	append_range(j, 4, 20, 100);
	cr_assert_eq(shmkit_journal_close(j), 0);
	struct shmkit_journal_report r;
	cr_assert_eq(shmkit_journal_verify(path, &r), 0);
	cr_assert_eq(r.valid_records, 20);
	cr_assert_eq(r.last_valid_seq, 20);
}

Test(journal_ahead, sync_writes_zeros_ahead_of_the_writer)
{
	check_filled(SHMKIT_DUR_SYNC);
}

Test(journal_ahead, group_writes_zeros_ahead_of_the_writer)
{
	check_filled(SHMKIT_DUR_GROUP);
}

Test(journal_ahead, async_starts_write_back_of_each_complete_mib)
{
	struct page_flags pf;
	if (!page_flags_open(&pf))
		cr_skip_test("needs /proc/kpageflags (root)");
	const char *path = jt_new_disk_path();
	if (!path) {
		page_flags_close(&pf);
		cr_skip_test("no disk-backed directory (/tmp and /var/tmp are tmpfs, whose pages "
		             "are never clean)");
	}
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_ASYNC);
	/* 1.25 MiB of records: the first MiB is complete. */
	uint32_t len = MAXREC - SKJ_RHDR_SIZE;
	append_range(j, 1, (5 * MIB / 4) / MAXREC, len);
	int fd = first_file(path);
	const uint8_t *map = mmap(NULL, FSIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(map, MAP_FAILED);
	int dirty = 0, unknown = 0;
	for (size_t pg = 0; pg < MIB / 4096; pg++) {
		int d = page_dirty(&pf, map + pg * 4096);
		dirty += d == 1;
		unknown += d < 0;
	}
	munmap((void *)map, FSIZE);
	page_flags_close(&pf);
	cr_assert_eq(shmkit_journal_close(j), 0);
	if (unknown == MIB / 4096)
		cr_skip_test("page flags unreadable");
	cr_assert_eq(dirty, 0, "%d pages of the first MiB still dirty: no write-back started", dirty);
}
