/*
 * journal_test.h - what the journal tests and their helper program share:
 * the deterministic payload of record SEQ, and journal directories under
 * /tmp/sktest-RUN-PID-jN removed by the test's .fini even when an
 * assertion fails.  Plain C (no Criterion), static inline: each includer
 * gets its own copy.
 */
#ifndef SK_JOURNAL_TEST_H
#define SK_JOURNAL_TEST_H

#include <linux/magic.h>
#include <sys/vfs.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib_test.h"

/* Payload of record seq: 0..max bytes (some empty, some long), each byte
 * a function of seq and its index. */
static inline uint32_t jt_len(uint64_t seq, uint32_t max)
{
	uint32_t l = (uint32_t)((seq * 7919u) % 211u);
	if (seq % 17 == 0)
		l = max;
	return l > max ? max : l;
}

static inline void jt_fill(uint64_t seq, uint8_t *buf, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq * 31u + i * 7u + 1u);
}

static inline bool jt_check(uint64_t seq, const void *data, uint32_t len, uint32_t max)
{
	const uint8_t *p = data;
	if (len != jt_len(seq, max))
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seq * 31u + i * 7u + 1u))
			return false;
	return true;
}

/* XOR byte off of file with mask (damage made by hand); 0, or -1 if it
 * could not be read and written back. */
static inline int jt_flip(const char *file, long off, uint8_t mask)
{
	int fd = open(file, O_RDWR);
	uint8_t b = 0;
	bool ok = fd >= 0 && pread(fd, &b, 1, off) == 1;
	b ^= mask;
	ok = ok && pwrite(fd, &b, 1, off) == 1;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* ---- directories (test processes only) ------------------------------- */

#define JT_MAX_DIRS 64
static char jt_dirs[JT_MAX_DIRS][96];
static int jt_ndirs;

static int jt_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(p);
	return 0;
}

static inline void jt_rmrf(const char *path)
{
	nftw(path, jt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh journal path (not created): /tmp/sktest-RUN-PID-jN
 * (lib_test.h: the naming rule). */
static inline const char *jt_new_path(void)
{
	static int n;
	if (jt_ndirs >= JT_MAX_DIRS)
		return NULL;
	char *p = jt_dirs[jt_ndirs++], base[64], tag[32];
	snprintf(tag, sizeof(tag), "j%d", n++);
	snprintf(p, sizeof(jt_dirs[0]), "/tmp/%s", sk_test_base(base, sizeof(base), tag));
	jt_rmrf(p);
	return p;
}

/* Like jt_new_path(), but in a directory on a disk-backed file system:
 * /tmp, else /var/tmp, whichever is not tmpfs (whose pages are never
 * clean, so page-cache tests mean nothing there).  NULL if neither is:
 * the caller skips, and the skip is counted. */
static inline const char *jt_new_disk_path(void)
{
	static const char *const dirs[] = { "/tmp", "/var/tmp" };
	static int n;
	struct statfs fs;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (statfs(dirs[i], &fs) || fs.f_type == TMPFS_MAGIC || jt_ndirs >= JT_MAX_DIRS)
			continue;
		char *p = jt_dirs[jt_ndirs++], base[64], tag[32];
		snprintf(tag, sizeof(tag), "jd%d", n++);
		snprintf(p, sizeof(jt_dirs[0]), "%s/%s", dirs[i], sk_test_base(base, sizeof(base), tag));
		jt_rmrf(p);
		return p;
	}
	return NULL;
}

/* Remove every path jt_new_path() gave (TestSuite .fini). */
static inline void jt_cleanup(void)
{
	for (int i = 0; i < jt_ndirs; i++)
		jt_rmrf(jt_dirs[i]);
	jt_ndirs = 0;
}

/* A writer of a new (or existing) journal at path with the given policy
 * and sizes (0: the defaults, or what the journal has).  For Criterion
 * tests only: it asserts the open succeeded (a GNU statement expression,
 * so this header itself stays free of Criterion). */
#define jt_open_writer(path, policy, fsize, maxrec) ({                                      \
	struct shmkit_journal_opts jt_o_ = {                                                 \
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,                       \
		.durability = (policy), .file_size = (fsize), .max_record = (maxrec),        \
	};                                                                                   \
	shmkit_journal *jt_j_ = NULL;                                                        \
	int jt_e_ = shmkit_journal_open(&jt_j_, (path), &jt_o_);                             \
	cr_assert_eq(jt_e_, 0, "open %s: %s (%s)", (path), shmkit_strerror(jt_e_),           \
	             shmkit_errdetail());                                                    \
	jt_j_;                                                                               \
})

#endif /* SK_JOURNAL_TEST_H */
