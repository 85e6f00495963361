/*
 * test_seg_bad.c - every bad input of the segment layer gets its specific
 * error and leaves nothing behind: malformed names, bad sizes and options,
 * System V limits, directories/FIFOs/symlinks, exclusive create, another
 * kind, version or layout, a file truncated behind our back, permission
 * denied, huge pages, mlock refused, a full tmpfs, fault loops over fd and
 * file-size limits.
 *
 * "Nothing behind" is checked without shmkit: the fd count of the process
 * (/proc/self/fd) is unchanged and the name's object does not exist
 * (/dev/shm, shmget, lstat: sk_test_exists).  Tests that change process
 * state (uid, rlimits, namespaces) do it in a forked child, which reports
 * through its exit status: 0 ok, 77 skip (not permitted here), other
 * values name the failed check (printed on stderr).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seg.h"
#include "bad_names.h"
#include "lib_test.h"

#define MS 1000000LL
#define SKIP 77

TestSuite(seg_bad, .timeout = 60, .fini = sk_test_cleanup);

/* ---- checking a failure ----------------------------------------------- */

/* Create name with o, expect error want, no fd leaked and (if gone) no
 * object left.  0 if all holds, else a code naming the failed check; usable
 * in forked children. */
static int create_fails(const char *name, const struct shmkit_seg_opts *o, int want, int gone)
{
	int fds = sk_test_fd_count();
	shmkit_seg *s = NULL;
	int err = shmkit_seg_create(&s, name, o);
	int fds_after = sk_test_fd_count();

	if (!err)
		shmkit_seg_close(s);
	if (err != want) {
		fprintf(stderr, "create %s: got %d (%s: %s), want %d\n", name, err,
		        shmkit_strerror(err), shmkit_errdetail(), want);
		return 1;
	}
	if (s)
		return 2;
	if (fds_after != fds) {
		fprintf(stderr, "create %s: leaked %d fds\n", name, fds_after - fds);
		return 3;
	}
	if (gone && sk_test_exists(name) == 1) {
		fprintf(stderr, "create %s: failed but left the object behind\n", name);
		return 4;
	}
	return 0;
}

static int open_fails(const char *name, const struct shmkit_seg_opts *o, int want)
{
	int fds = sk_test_fd_count();
	shmkit_seg *s = NULL;
	int err = shmkit_seg_open(&s, name, o);
	int fds_after = sk_test_fd_count();

	if (!err)
		shmkit_seg_close(s);
	if (err != want) {
		fprintf(stderr, "open %s: got %d (%s: %s), want %d\n", name, err,
		        shmkit_strerror(err), shmkit_errdetail(), want);
		return 1;
	}
	if (s)
		return 2;
	return fds_after == fds ? 0 : 3;
}

#define EXPECT_CREATE_FAILS(name, o, want, gone) \
	cr_assert_eq(create_fails((name), (o), (want), (gone)), 0, "create %s", (name))
#define EXPECT_OPEN_FAILS(name, o, want) \
	cr_assert_eq(open_fails((name), (o), (want)), 0, "open %s", (name))

static shmkit_seg *create_ok(const char *name, size_t size, unsigned flags)
{
	struct shmkit_seg_opts o = { .size = size, .flags = SHMKIT_EXCL | flags };
	shmkit_seg *s;
	int err = shmkit_seg_create(&s, name, &o);

	cr_assert_eq(err, 0, "create %s: %s (%s)", name, shmkit_strerror(err), shmkit_errdetail());
	return s;
}

/* Reap a child from the functions below: skip on 77, else require 0. */
static void child_ok(pid_t pid, const char *what)
{
	int rc = sk_test_reap(pid);

	if (rc == SKIP)
		cr_skip_test("%s: not permitted on this machine", what);
	cr_assert_eq(rc, 0, "%s: child check %d failed (see stderr)", what, rc);
}

/* ---- names ---------------------------------------------------------------- */

Test(seg_bad, malformed_names)
{
	struct shmkit_seg_opts c = { .size = 64 }, x = { .size = 64, .flags = SHMKIT_EXCL };

	for (size_t i = 0; i < SK_ARRAY_LEN(bad_names); i++) {
		const struct bad_name *b = &bad_names[i];
		EXPECT_CREATE_FAILS(b->name, &c, b->err, 0);
		EXPECT_CREATE_FAILS(b->name, &x, b->err, 0);
		EXPECT_OPEN_FAILS(b->name, NULL, b->err);
		cr_assert_eq(shmkit_seg_remove(b->name), b->err, "remove '%s'", b->name);
		cr_assert_neq(shmkit_errdetail()[0], '\0', "'%s' has a detail", b->name);
	}
	EXPECT_CREATE_FAILS(NULL, &c, -EINVAL, 0);
	EXPECT_OPEN_FAILS(NULL, NULL, -EINVAL);
}

Test(seg_bad, name_lengths)
{
	struct shmkit_seg_opts o = { .size = 64, .flags = SHMKIT_EXCL };
	char name[PATH_MAX + 64];
	shmkit_seg *s;

	/* POSIX: NAME_MAX (255) bytes fit, 256 do not. */
	char base[64];
	int n = snprintf(name, sizeof(name), "posix:/%s", sk_test_base(base, sizeof(base), ""));
	memset(name + n, 'n', 255 - (size_t)(n - 7));
	name[7 + 255] = '\0';
	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0, "%s", shmkit_errdetail());
	shmkit_seg_close(s);
	cr_assert_eq(shmkit_seg_remove(name), 0);
	strcat(name, "n");
	EXPECT_CREATE_FAILS(name, &o, -ENAMETOOLONG, 1);
	EXPECT_OPEN_FAILS(name, NULL, -ENAMETOOLONG);
	/* Whole name at PATH_MAX. */
	memset(name, 'x', PATH_MAX);
	memcpy(name, "file:/tmp/", 10);
	name[PATH_MAX] = '\0';
	EXPECT_CREATE_FAILS(name, &o, -ENAMETOOLONG, 0);
	/* A file component over NAME_MAX. */
	snprintf(name, sizeof(name), "file:/tmp/%s%0300d", sk_test_base(base, sizeof(base), ""), 0);
	EXPECT_CREATE_FAILS(name, &o, -ENAMETOOLONG, 0);
	/* memfd names are at most 249 bytes. */
	memset(name, 'm', 256);
	memcpy(name, "memfd:", 6);
	name[6 + 250] = '\0';
	EXPECT_CREATE_FAILS(name, &o, -ENAMETOOLONG, 0);
	name[6 + 249] = '\0';
	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	shmkit_seg_close(s);
}

/* Names that parse but cannot be used that way. */
Test(seg_bad, wrong_use_of_names)
{
	struct shmkit_seg_opts o = { .size = 64 };

	EXPECT_CREATE_FAILS("sysv:id=1", &o, -EINVAL, 0);
	EXPECT_OPEN_FAILS("sysv:id=2147483647", NULL, -ENOENT);
	EXPECT_OPEN_FAILS("anon", NULL, -EINVAL);
	EXPECT_OPEN_FAILS("memfd:sktest-x", NULL, -EINVAL);
	cr_assert_eq(shmkit_seg_remove("anon"), -EINVAL);
	cr_assert_eq(shmkit_seg_remove("memfd:sktest-x"), -EINVAL);
	const char *p = sk_test_new_name("posix"), *v = sk_test_new_name("sysv"),
	           *f = sk_test_new_name("file");
	EXPECT_OPEN_FAILS(p, NULL, -ENOENT);
	EXPECT_OPEN_FAILS(v, NULL, -ENOENT);
	EXPECT_OPEN_FAILS(f, NULL, -ENOENT);
	cr_assert_eq(shmkit_seg_remove(p), -ENOENT);
	cr_assert_eq(shmkit_seg_remove(v), -ENOENT);
	cr_assert_eq(shmkit_seg_remove(f), -ENOENT);
	EXPECT_CREATE_FAILS("file:/sktest-no-such-dir/x", &o, -ENOENT, 0);
}

/* ---- sizes and options ------------------------------------------------------ */

static void check_bad_sizes(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 0 };

	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.size = SIZE_MAX;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.size = SIZE_MAX / 2;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
}

Test(seg_bad, sizes_posix) { check_bad_sizes("posix"); }
Test(seg_bad, sizes_sysv) { check_bad_sizes("sysv"); }
Test(seg_bad, sizes_file) { check_bad_sizes("file"); }
Test(seg_bad, sizes_anon) { check_bad_sizes("anon"); }
Test(seg_bad, sizes_memfd) { check_bad_sizes("memfd"); }

/* Bigger than /dev/shm can hold (a tmpfs has a size): -ENOSPC now. */
Test(seg_bad, posix_over_tmpfs_size)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = (size_t)1 << 50 };

	EXPECT_CREATE_FAILS(name, &o, -ENOSPC, 1);
}

Test(seg_bad, options)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = 64, .flags = 0x10000 };
	shmkit_seg *s;

	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.flags = SHMKIT_RDONLY;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.flags = SHMKIT_COW;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.flags = SHMKIT_RAW;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	o.flags = 0;
	o.mode = 010000;
	EXPECT_CREATE_FAILS(name, &o, -EINVAL, 1);
	EXPECT_CREATE_FAILS(name, NULL, -EINVAL, 1);
	o.mode = 0;
	cr_assert_eq(shmkit_seg_create(NULL, name, &o), -EINVAL);
	cr_assert_eq(sk_test_exists(name), 0);
	s = create_ok(name, 64, 0);
	struct shmkit_seg_opts ro = { .flags = SHMKIT_RDONLY | SHMKIT_COW };
	EXPECT_OPEN_FAILS(name, &ro, -EINVAL);
	ro.flags = 0x10000;
	EXPECT_OPEN_FAILS(name, &ro, -EINVAL);
	cr_assert_eq(shmkit_seg_open(NULL, name, NULL), -EINVAL);
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW };
	shmkit_seg *t;
	cr_assert_eq(sk_seg_open_kind(&t, name, &raw, SHMKIT_KIND_CHAN), -EINVAL);
	cr_assert_eq(shmkit_seg_close(NULL), 0);
	cr_assert_null(shmkit_seg_data(NULL));
	cr_assert_eq(shmkit_seg_size(NULL), 0);
	cr_assert_eq(shmkit_seg_info(NULL, NULL), -EINVAL);
	cr_assert_eq(shmkit_seg_info_name(name, NULL), -EINVAL);
	shmkit_seg_close(s);
}

/* System V cannot map privately: a clear error, no silent shared map. */
Test(seg_bad, sysv_cow_refused)
{
	const char *name = sk_test_new_name("sysv");
	shmkit_seg *s = create_ok(name, 64, 0);
	struct shmkit_seg_opts o = { .flags = SHMKIT_COW };

	EXPECT_OPEN_FAILS(name, &o, -EINVAL);
	shmkit_seg_close(s);
}

/* ---- System V limits, in a private IPC namespace ------------------------------ */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int limit_case(const char *name, size_t size, const char *limit)
{
	struct shmkit_seg_opts o = { .size = size };
	int rc = create_fails(name, &o, -ENOSPC, 1);

	if (rc)
		return rc;
	if (!strstr(shmkit_errdetail(), limit)) {
		fprintf(stderr, "detail '%s' does not name %s\n", shmkit_errdetail(), limit);
		return 5;
	}
	return 0;
}

static int child_sysv_limits(void *arg)
{
	char name[64];
	int rc;

	if (unshare(CLONE_NEWIPC) || write_file("/proc/sys/kernel/shmmax", "1048576"))
		return SKIP;
	sk_test_name(name, sizeof(name), "sysv");
	if ((rc = limit_case(name, 2 << 20, "shmmax")))
		return 10 + rc;
	if (write_file("/proc/sys/kernel/shmmax", "1073741824") ||
	    write_file("/proc/sys/kernel/shmall", "16"))
		return 20;
	if ((rc = limit_case(name, 128 << 10, "shmall")))
		return 30 + rc;
	/* Within the limits it works. */
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *s;
	if (shmkit_seg_create(&s, name, &o))
		return 40;
	shmkit_seg_close(s);
	if (shmkit_seg_remove(name))
		return 41;
	/* Out of segment ids (kernel.shmmni): one more is -ENOSPC. */
	if (write_file("/proc/sys/kernel/shmmni", "1"))
		return 0; /* cannot lower shmmni here: the rest was checked */
	char name2[64];
	sk_test_name(name2, sizeof(name2), "sysv");
	if (shmkit_seg_create(&s, name, &o))
		return 50;
	rc = create_fails(name2, &o, -ENOSPC, 1);
	shmkit_seg_close(s);
	shmkit_seg_remove(name);
	return rc ? 60 + rc : 0;
}

Test(seg_bad, sysv_limits_named)
{
	child_ok(sk_test_fork(child_sysv_limits, NULL), "unshare(CLONE_NEWIPC)");
}

/* ---- directories, FIFOs, symlinks where a file is expected --------------------- */

Test(seg_bad, file_not_regular)
{
	char dir[80], fifo[80], link[80], dangling[80], target[96], base[64];
	struct shmkit_seg_opts c = { .size = 64 }, x = { .size = 64, .flags = SHMKIT_EXCL };
	const char *tname = sk_test_new_name("file");
	shmkit_seg *t = create_ok(tname, 64, 0);

	shmkit_seg_close(t);
	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "dir"));
	snprintf(fifo, sizeof(fifo), "/tmp/%s", sk_test_base(base, sizeof(base), "fifo"));
	snprintf(link, sizeof(link), "/tmp/%s", sk_test_base(base, sizeof(base), "link"));
	snprintf(dangling, sizeof(dangling), "/tmp/%s", sk_test_base(base, sizeof(base), "dangling"));
	int made = !mkdir(dir, 0700) + !mkfifo(fifo, 0600) + !symlink(tname + 5, link) +
	           !symlink("/tmp/sktest-nowhere", dangling);
	struct { const char *path; int create, excl, open, remove; } cases[] = {
		{ dir, -EISDIR, -EEXIST, -EISDIR, -EISDIR },
		{ fifo, -EINVAL, -EEXIST, -EINVAL, -EINVAL },
		{ link, -ELOOP, -EEXIST, -ELOOP, -EINVAL },
		{ dangling, -ELOOP, -EEXIST, -ELOOP, -EINVAL },
	};
	int bad = 0;
	for (size_t i = 0; made == 4 && i < SK_ARRAY_LEN(cases); i++) {
		snprintf(target, sizeof(target), "file:%s", cases[i].path);
		bad = bad ? bad : create_fails(target, &c, cases[i].create, 0);
		bad = bad ? bad : create_fails(target, &x, cases[i].excl, 0);
		bad = bad ? bad : open_fails(target, NULL, cases[i].open);
		if (!bad && shmkit_seg_remove(target) != cases[i].remove)
			bad = 100 + (int)i;
	}
	rmdir(dir);
	unlink(fifo);
	unlink(link);
	unlink(dangling);
	cr_assert_eq(made, 4);
	cr_assert_eq(bad, 0, "check %d failed (see stderr)", bad);
	cr_assert_eq(sk_test_exists(tname), 1, "the symlink's target is untouched");
}

/* ---- exclusive create ------------------------------------------------------------ */

static void check_excl(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_ok(name, 64, 0);
	struct shmkit_seg_opts x = { .size = 64, .flags = SHMKIT_EXCL };

	strcpy(shmkit_seg_data(s), "first");
	EXPECT_CREATE_FAILS(name, &x, -EEXIST, 0);
	x.size = 1 << 20; /* another size: still -EEXIST, nothing resized */
	EXPECT_CREATE_FAILS(name, &x, -EEXIST, 0);
	cr_assert_str_eq(shmkit_seg_data(s), "first");
	cr_assert_eq(shmkit_seg_size(s), 64);
	shmkit_seg_close(s);
}

Test(seg_bad, excl_posix) { check_excl("posix"); }
Test(seg_bad, excl_sysv) { check_excl("sysv"); }
Test(seg_bad, excl_ftok) { check_excl("ftok"); }
Test(seg_bad, excl_file) { check_excl("file"); }

/* ---- another kind, version or layout ------------------------------------------- */

static struct sk_seg_hdr *hdr_of(shmkit_seg *s)
{
	return (struct sk_seg_hdr *)((char *)shmkit_seg_data(s) - SK_HDR_SIZE);
}

Test(seg_bad, other_kind)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = 256 }, x = { .size = 256, .flags = SHMKIT_EXCL };
	shmkit_seg *s, *t = NULL;

	cr_assert_eq(sk_seg_create_kind(&s, name, &x, SHMKIT_KIND_CHAN, NULL, NULL), 0);
	int fds = sk_test_fd_count();
	cr_assert_eq(sk_seg_open_kind(&t, name, &o, SHMKIT_KIND_BYTES), -EPROTO);
	cr_assert_null(t);
	cr_assert_eq(sk_seg_create_kind(&t, name, &o, SHMKIT_KIND_BUS, NULL, NULL), -EPROTO);
	EXPECT_CREATE_FAILS(name, &o, -EPROTO, 0); /* shmkit_seg_create makes bytes */
	EXPECT_CREATE_FAILS(name, &x, -EEXIST, 0);
	cr_assert_eq(sk_test_fd_count(), fds);
	cr_assert_eq(sk_seg_peek_kind(name), SHMKIT_KIND_CHAN);
	cr_assert_eq(sk_seg_open_kind(&t, name, &o, SHMKIT_KIND_CHAN), 0);
	shmkit_seg_close(t);
	cr_assert_eq(shmkit_seg_open(&t, name, NULL), 0, "plain open accepts any kind");
	cr_assert_eq(shmkit_seg_kind(t), SHMKIT_KIND_CHAN);
	shmkit_seg_close(t);
	shmkit_seg_close(s);
}

/* A service init that fails: its error, and the segment is gone. */
static int failing_init(void *data, size_t size, void *arg)
{
	return -EIO;
}

static void check_init_fails(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 256 };
	shmkit_seg *s = NULL;
	int fds = sk_test_fd_count();

	cr_assert_eq(sk_seg_create_kind(&s, name, &o, SHMKIT_KIND_CHAN, failing_init, NULL), -EIO);
	cr_assert_null(s);
	cr_assert_eq(sk_test_fd_count(), fds);
	cr_assert_neq(sk_test_exists(name), 1);
}

Test(seg_bad, init_fails_posix) { check_init_fails("posix"); }
Test(seg_bad, init_fails_sysv) { check_init_fails("sysv"); }
Test(seg_bad, init_fails_file) { check_init_fails("file"); }
Test(seg_bad, init_fails_memfd) { check_init_fails("memfd"); }
Test(seg_bad, init_fails_anon) { check_init_fails("anon"); }

/* Header fields patched by hand: each gives its error, and raw attach
 * still works. */
static void patch_and_open(shmkit_seg *s, const char *name, size_t off, uint64_t val,
                           size_t width, int want)
{
	char *h = (char *)hdr_of(s);
	char saved[8];
	struct shmkit_seg_opts o = { .init_timeout_ns = 20 * MS }, raw = { .flags = SHMKIT_RAW };
	shmkit_seg *t;

	memcpy(saved, h + off, width);
	memcpy(h + off, &val, width); /* little-endian: the low bytes */
	int rc = open_fails(name, &o, want);
	int raw_err = shmkit_seg_open(&t, name, &raw);
	if (!raw_err)
		shmkit_seg_close(t);
	memcpy(h + off, saved, width);
	cr_assert_eq(rc, 0, "header offset %zu = %#llx: see stderr", off, (unsigned long long)val);
	cr_assert_eq(raw_err, 0);
}

static void check_patched_header(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_ok(name, 4096, 0), *t;
	const struct sk_seg_hdr *h = hdr_of(s);

	patch_and_open(s, name, offsetof(struct sk_seg_hdr, magic), 0x1122334455667788ULL, 8, -EPROTO);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, version), SK_SEG_VERSION + 1, 4, -EPROTO);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, fingerprint), h->fingerprint ^ 1, 4, -EPROTO);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, kind), 99, 4, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, kind), 0, 4, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, state), 7, 4, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, map_size), h->map_size + 4096, 8, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, data_off), 8, 8, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, data_off), h->map_size + 1, 8, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, data_off), UINT64_MAX, 8, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, data_size), h->map_size, 8, -EBADMSG);
	patch_and_open(s, name, offsetof(struct sk_seg_hdr, data_size), UINT64_MAX, 8, -EBADMSG);
	/* Restored, it opens again. */
	cr_assert_eq(shmkit_seg_open(&t, name, NULL), 0);
	shmkit_seg_close(t);
	shmkit_seg_close(s);
}

Test(seg_bad, patched_header_posix) { check_patched_header("posix"); }
Test(seg_bad, patched_header_sysv) { check_patched_header("sysv"); }
Test(seg_bad, patched_header_file) { check_patched_header("file"); }

/* ---- a file truncated behind the library's back ------------------------------------ */

Test(seg_bad, file_truncated)
{
	const char *name = sk_test_new_name("file");
	const char *path = name + 5;
	shmkit_seg *s = create_ok(name, 8192, 0);
	struct shmkit_seg_opts o = { .init_timeout_ns = 20 * MS };
	struct shmkit_seg_info st;

	/* While open: stat works, sync reports it, nothing touches the lost pages. */
	cr_assert_eq(truncate(path, SK_HDR_SIZE), 0);
	cr_assert_eq(shmkit_seg_info(s, &st), 0);
	cr_assert_eq(shmkit_seg_sync(s, 0, 0, 0), -EBADMSG, "%s", shmkit_errdetail());
	shmkit_seg_close(s);
	/* Reopened: the header says more than the file holds. */
	EXPECT_OPEN_FAILS(name, &o, -EBADMSG);
	cr_assert_eq(shmkit_seg_info_name(name, &st), 0, "still listable");
	cr_assert_eq(st.kind, SHMKIT_KIND_FOREIGN);
	/* Shorter than a header: refused at once, not after the timeout. */
	cr_assert_eq(truncate(path, 100), 0);
	struct shmkit_seg_opts slow = { .init_timeout_ns = 3600 * 1000 * MS };
	EXPECT_OPEN_FAILS(name, &slow, -EPROTO);
	/* Empty: given up within the bound. */
	cr_assert_eq(truncate(path, 0), 0);
	int rc = open_fails(name, &o, -EPROTO);
	cr_assert(rc == 0 || open_fails(name, &o, -ETIMEDOUT) == 0);
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW };
	EXPECT_OPEN_FAILS(name, &raw, -EPROTO);
}

/* ---- permission denied ----------------------------------------------------------------- */

struct perm_names {
	const char *posix, *posix644, *sysv, *file;
	char dir[64];
};

static int child_perm(void *p)
{
	struct perm_names *n = p;
	struct shmkit_seg_opts rw = { 0 }, ro = { .flags = SHMKIT_RDONLY };
	struct shmkit_seg_opts c = { .size = 64 };
	char inside[96];
	shmkit_seg *s;
	int rc;

	if (sk_test_drop_root())
		return SKIP;
	if ((rc = open_fails(n->posix, &rw, -EACCES)) || (rc = open_fails(n->posix, &ro, -EACCES)))
		return 10 + rc;
	if ((rc = open_fails(n->sysv, &rw, -EACCES)) || (rc = open_fails(n->sysv, &ro, -EACCES)))
		return 20 + rc;
	if ((rc = open_fails(n->file, &rw, -EACCES)))
		return 30 + rc;
	if ((rc = open_fails(n->posix644, &rw, -EACCES)))
		return 40 + rc;
	if (shmkit_seg_open(&s, n->posix644, &ro))
		return 45;
	int ok = !strcmp(shmkit_seg_data(s), "readable");
	shmkit_seg_close(s);
	if (!ok)
		return 46;
	/* Creating in a directory we may not write; removing another's. */
	snprintf(inside, sizeof(inside), "file:%s/x", n->dir);
	if ((rc = create_fails(inside, &c, -EACCES, 1)))
		return 50 + rc;
	rc = shmkit_seg_remove(n->sysv);
	if (rc != -EPERM && rc != -EACCES)
		return 60;
	rc = shmkit_seg_remove(n->posix);
	if (rc != -EPERM && rc != -EACCES)
		return 61;
	return 0;
}

Test(seg_bad, permission_denied)
{
	struct perm_names n = { .posix = sk_test_new_name("posix"), .posix644 = sk_test_new_name("posix"),
	                        .sysv = sk_test_new_name("sysv"), .file = sk_test_new_name("file") };
	struct shmkit_seg_opts o644 = { .size = 64, .mode = 0644, .flags = SHMKIT_EXCL };
	shmkit_seg *a = create_ok(n.posix, 64, 0), *b, *c = create_ok(n.sysv, 64, 0),
	           *d = create_ok(n.file, 64, 0);

	cr_assert_eq(shmkit_seg_create(&b, n.posix644, &o644), 0);
	strcpy(shmkit_seg_data(b), "readable");
	char base[48];
	snprintf(n.dir, sizeof(n.dir), "/tmp/%s", sk_test_base(base, sizeof(base), "XXXXXX"));
	cr_assert_not_null(mkdtemp(n.dir)); /* 0700, root's */
	pid_t pid = sk_test_fork(child_perm, &n);
	int rc = sk_test_reap(pid);
	rmdir(n.dir);
	shmkit_seg_close(a);
	shmkit_seg_close(b);
	shmkit_seg_close(c);
	shmkit_seg_close(d);
	if (rc == SKIP)
		cr_skip_test("cannot drop to uid 65534");
	cr_assert_eq(rc, 0, "child check %d failed (see stderr)", rc);
	cr_assert_eq(sk_test_exists(n.posix), 1, "nobody could not remove it");
	cr_assert_eq(sk_test_exists(n.sysv), 1);
}

/* ---- huge pages when none are reserved --------------------------------------------------- */

static long free_huge_pages(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void check_huge(const char *prefix, int want)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL | SHMKIT_HUGE };

	if (want == -ENOMEM && free_huge_pages() != 0)
		cr_skip_test("huge pages are reserved here (free_hugepages %ld)", free_huge_pages());
	EXPECT_CREATE_FAILS(name, &o, want, 1);
	cr_assert_neq(shmkit_errdetail()[0], '\0');
}

Test(seg_bad, huge_posix) { check_huge("posix", -EINVAL); }
Test(seg_bad, huge_file) { check_huge("file", -EINVAL); }
Test(seg_bad, huge_sysv) { check_huge("sysv", -ENOMEM); }
Test(seg_bad, huge_anon) { check_huge("anon", -ENOMEM); }
Test(seg_bad, huge_memfd) { check_huge("memfd", -ENOMEM); }

/* ---- mlock refused ------------------------------------------------------------------------ */

static int child_mlock(void *p)
{
	static const char *const prefixes[] = { "posix", "sysv", "file", "anon", "memfd" };
	struct rlimit small = { 8192, 8192 };
	struct shmkit_seg_opts o = { .size = 1 << 20, .flags = SHMKIT_EXCL | SHMKIT_MLOCK };
	char name[128];
	int rc;

	/* Root has CAP_IPC_LOCK, which ignores RLIMIT_MEMLOCK: become nobody. */
	if (sk_test_drop_root() || setrlimit(RLIMIT_MEMLOCK, &small))
		return SKIP;
	for (size_t i = 0; i < SK_ARRAY_LEN(prefixes); i++) {
		sk_test_name(name, sizeof(name), prefixes[i]);
		if ((rc = create_fails(name, &o, -ENOMEM, 1))) {
			sk_test_remove(name);
			return 10 * (int)(i + 1) + rc;
		}
	}
	return 0;
}

Test(seg_bad, mlock_refused)
{
#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("AddressSanitizer replaces mlock() with a no-op");
#endif
	child_ok(sk_test_fork(child_mlock, NULL), "drop root");
}

/* ---- a full tmpfs: -ENOSPC at create, never SIGBUS ------------------------------------------ */

/* Fill a 256 KiB tmpfs with growing segments: each create either succeeds
 * (and every byte can be written) or fails -ENOSPC leaving nothing. */
static int fill_tmpfs(const char *prefix)
{
	shmkit_seg *segs[16];
	int n = 0, failures = 0, rc = 0;

	for (size_t size = 16 << 10; size <= 512 << 10 && !rc; size *= 2) {
		char name[128];
		struct shmkit_seg_opts o = { .size = size, .flags = SHMKIT_EXCL };
		sk_test_name(name, sizeof(name), prefix);
		int err = shmkit_seg_create(&segs[n], name, &o);
		if (!err) {
			memset(shmkit_seg_data(segs[n]), 0xa5, size); /* SIGBUS would kill us here */
			n++;
		} else if ((rc = create_fails(name, &o, -ENOSPC, 1)) == 0) {
			failures++;
		}
	}
	for (int i = 0; i < n; i++) {
		struct shmkit_seg_info st;
		shmkit_seg_info(segs[i], &st);
		shmkit_seg_close(segs[i]);
		shmkit_seg_remove(st.name);
	}
	if (rc)
		return rc;
	return n > 0 && failures > 0 ? 0 : 9;
}

static int child_tmpfs(void *p)
{
	int rc;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("sktest", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") ||
	    mount("sktest", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=256k"))
		return SKIP;
	if ((rc = fill_tmpfs("posix")))
		return 10 + rc;
	if ((rc = fill_tmpfs("file")))
		return 20 + rc;
	/* One create far too big for the whole tmpfs. */
	char name[128];
	struct shmkit_seg_opts o = { .size = 4 << 20 };
	sk_test_name(name, sizeof(name), "posix");
	if ((rc = create_fails(name, &o, -ENOSPC, 1)))
		return 30 + rc;
	sk_test_name(name, sizeof(name), "file");
	if ((rc = create_fails(name, &o, -ENOSPC, 1)))
		return 40 + rc;
	return 0;
}

Test(seg_bad, full_tmpfs_is_enospc)
{
	child_ok(sk_test_fork(child_tmpfs, NULL), "unshare(CLONE_NEWNS) + mount tmpfs");
}

/* ---- fault loops: fail the Nth fd, the file size limit --------------------------------------- */

/* With only fds 0-2 open and RLIMIT_NOFILE = 3 + extra, extra = 0, 1, ...:
 * every failure is -EMFILE and leaks nothing, until one succeeds. */
static int nofile_loop(const char *prefix)
{
	struct rlimit old, lim;

	getrlimit(RLIMIT_NOFILE, &old);
	for (rlim_t extra = 0; extra < 8; extra++) {
		char name[128];
		struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL };
		shmkit_seg *s = NULL;
		sk_test_name(name, sizeof(name), prefix);
		lim = old;
		lim.rlim_cur = 3 + extra;
		setrlimit(RLIMIT_NOFILE, &lim);
		int err = shmkit_seg_create(&s, name, &o);
		setrlimit(RLIMIT_NOFILE, &old);
		if (!err) {
			shmkit_seg_close(s);
			sk_test_remove(name);
			return extra > 0 ? 0 : 1; /* with no fd to spare it cannot work */
		}
		if (err != -EMFILE) {
			fprintf(stderr, "%s with %d fds: %d (%s)\n", name, (int)(3 + extra), err, shmkit_errdetail());
			return 2;
		}
		if (sk_test_fd_count() != 3 || sk_test_exists(name) == 1)
			return 3;
	}
	return 4;
}

static int child_fd_faults(void *p)
{
	static const char *const prefixes[] = { "posix", "file", "memfd" };
	int rc;

	if (close_range(3, ~0u, 0))
		return SKIP;
	for (size_t i = 0; i < SK_ARRAY_LEN(prefixes); i++)
		if ((rc = nofile_loop(prefixes[i])))
			return 10 * (int)(i + 1) + rc;
	return 0;
}

Test(seg_bad, fault_loop_nofile)
{
	child_ok(sk_test_fork(child_fd_faults, NULL), "close_range");
}

static int child_fsize(void *p)
{
	struct rlimit lim = { 16384, RLIM_INFINITY };
	struct shmkit_seg_opts o = { .size = 1 << 20, .flags = SHMKIT_EXCL };
	char name[128];
	int rc;

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &lim))
		return SKIP;
	sk_test_name(name, sizeof(name), "file");
	if ((rc = create_fails(name, &o, -EFBIG, 1)))
		return 10 + rc;
	sk_test_name(name, sizeof(name), "posix");
	if ((rc = create_fails(name, &o, -EFBIG, 1)))
		return 20 + rc;
	return 0;
}

Test(seg_bad, file_size_limit)
{
	child_ok(sk_test_fork(child_fsize, NULL), "setrlimit");
}
