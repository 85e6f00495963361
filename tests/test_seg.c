/*
 * test_seg.c - segments over every backend between a parent and a forked
 * child and between unrelated processes (exec'd helper_seg); attach modes
 * (shared, copy-on-write, read-only); msync durability; modes whatever the
 * umask; stat, list, and System V removal semantics.
 *
 * Children report through their exit status, never through Criterion
 * asserts, and are always reaped.  Every name comes from
 * sk_test_new_name(), so the suite's .fini removes it even after a failed
 * assertion.  Nothing asserts on timing.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "seg.h"
#include "lib_test.h"

TestSuite(seg, .timeout = 60, .fini = sk_test_cleanup);

/* Create name with size data bytes and mode (0 = default), exclusively. */
static shmkit_seg *create_seg(const char *name, size_t size, unsigned mode)
{
	struct shmkit_seg_opts o = { .size = size, .mode = mode, .flags = SHMKIT_EXCL };
	shmkit_seg *s = NULL;
	int err;

	cr_assert_not_null(name);
	err = shmkit_seg_create(&s, name, &o);
	cr_assert_eq(err, 0, "create %s: %s (%s)", name, shmkit_strerror(err), shmkit_errdetail());
	cr_assert_geq(shmkit_seg_size(s), size);
	return s;
}

static char *data_of(shmkit_seg *s)
{
	return shmkit_seg_data(s);
}

/* ---- parent and forked child, every backend ----------------------------- */

struct child_arg {
	shmkit_seg *seg;   /* inherited handle */
	const char *name;  /* reopen by name when not NULL */
	unsigned flags;
};

/* The child sees the parent's bytes and writes its own at offset 64. */
static int child_write(void *p)
{
	struct child_arg *a = p;
	struct shmkit_seg_opts o = { .flags = a->flags };
	shmkit_seg *s = a->seg;

	if (a->name && shmkit_seg_open(&s, a->name, &o))
		return 10;
	char *d = data_of(s);
	if (strcmp(d, "from-parent"))
		return 11;
	strcpy(d + 64, "from-child");
	if (a->name)
		shmkit_seg_close(s);
	return 0;
}

static void check_fork(const char *prefix, int reopen)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_seg(name, 8192, 0);
	struct child_arg a = { .seg = s, .name = reopen ? name : NULL };

	strcpy(data_of(s), "from-parent");
	cr_assert_eq(sk_test_reap(sk_test_fork(child_write, &a)), 0);
	cr_assert_str_eq(data_of(s) + 64, "from-child");
	shmkit_seg_close(s);
}

Test(seg, fork_posix) { check_fork("posix", 1); }
Test(seg, fork_sysv) { check_fork("sysv", 1); }
Test(seg, fork_sysv_ftok) { check_fork("ftok", 1); }
Test(seg, fork_file) { check_fork("file", 1); }
Test(seg, fork_anon) { check_fork("anon", 0); }
Test(seg, fork_memfd) { check_fork("memfd", 0); }
Test(seg, fork_inherited_posix) { check_fork("posix", 0); }

/* ---- unrelated processes (exec'd helper) --------------------------------- */

static void check_exec_as(shmkit_seg *s, const char *name)
{
	char out[256];
	int rc;

	strcpy(data_of(s), "from-parent");
	rc = sk_test_run(out, sizeof(out), "helper_seg", "read", name, "0", "11", NULL);
	cr_assert_eq(rc, 0, "helper read %s: rc %d: %s", name, rc, out);
	cr_assert_str_eq(out, "from-parent");
	rc = sk_test_run(out, sizeof(out), "helper_seg", "write", name, "64", "from-helper", NULL);
	cr_assert_eq(rc, 0, "helper write %s: rc %d: %s", name, rc, out);
	cr_assert_str_eq(data_of(s) + 64, "from-helper");
}

static void check_exec(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_seg(name, 8192, 0);

	check_exec_as(s, name);
	shmkit_seg_close(s);
}

Test(seg, exec_posix) { check_exec("posix"); }
Test(seg, exec_sysv) { check_exec("sysv"); }
Test(seg, exec_sysv_ftok) { check_exec("ftok"); }
Test(seg, exec_file) { check_exec("file"); }

Test(seg, exec_sysv_by_id)
{
	const char *name = sk_test_new_name("sysv");
	shmkit_seg *s = create_seg(name, 8192, 0);
	struct shmkit_seg_info st;
	char idname[64];

	cr_assert_eq(shmkit_seg_info(s, &st), 0);
	cr_assert_geq(st.shmid, 0);
	snprintf(idname, sizeof(idname), "sysv:id=%d", st.shmid);
	check_exec_as(s, idname);
	shmkit_seg_close(s);
}

Test(seg, exec_bare_posix_name)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *s = create_seg(name, 100, 0);

	check_exec_as(s, name + strlen("posix:/")); /* "sktest-..." means posix too */
	shmkit_seg_close(s);
}

/* memfd: the fd crosses an abstract UNIX socket to an exec'd helper. */
Test(seg, exec_memfd_over_unix_socket)
{
	const char *name = sk_test_new_name("memfd");
	shmkit_seg *s = create_seg(name, 8192, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char sockname[64], out[256];
	int out_fd;

	strcpy(data_of(s), "memfd-parent");
	snprintf(sockname, sizeof(sockname), "@sktest-%d", (int)getpid());
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", sockname + 1);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sockname));
	int lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lsock, 0);
	cr_assert_eq(bind(lsock, (struct sockaddr *)&sa, salen), 0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(lsock, 1), 0);
	const char *argv[] = { "helper_seg", "recvfd", sockname, "0", "12", "memfd-helper", NULL };
	pid_t pid = sk_test_spawn(argv, -1, &out_fd);
	cr_assert_gt(pid, 0);
	struct pollfd pfd = { .fd = lsock, .events = POLLIN };
	int conn = poll(&pfd, 1, 30000) == 1 ? accept4(lsock, NULL, NULL, SOCK_CLOEXEC) : -1;
	int sent = conn >= 0 ? shmkit_seg_send_fd(s, conn) : -1;
	if (conn >= 0)
		close(conn);
	close(lsock);
	int rc = sk_test_finish(pid, out_fd, out, sizeof(out));
	cr_assert_eq(sent, 0, "send_fd: %d", sent);
	cr_assert_eq(rc, 0, "helper: rc %d: %s", rc, out);
	/* The helper read our bytes, wrote its own, and could not shrink it. */
	cr_assert_str_eq(out, "memfd-parent\nshrink:-1");
	cr_assert_str_eq(data_of(s), "memfd-helper");
	shmkit_seg_close(s);
}

/* memfd over a socketpair to a forked child that received it read-only. */
struct recv_arg {
	int sock;
	unsigned flags;
};

static int child_recv(void *p)
{
	struct recv_arg *a = p;
	struct shmkit_seg_opts o = { .flags = a->flags };
	shmkit_seg *s;

	if (shmkit_seg_recv_fd(&s, a->sock, &o))
		return 10;
	int ok = !strcmp(data_of(s), "memfd-pair") && shmkit_seg_size(s) == 3000 &&
	         shmkit_seg_backend(s) == SHMKIT_MEMFD && shmkit_seg_kind(s) == SHMKIT_KIND_BYTES;
	shmkit_seg_close(s);
	return ok ? 0 : 11;
}

Test(seg, memfd_socketpair_rdonly)
{
	const char *name = sk_test_new_name("memfd");
	shmkit_seg *s = create_seg(name, 3000, 0);
	int sv[2];

	strcpy(data_of(s), "memfd-pair");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct recv_arg a = { .sock = sv[1], .flags = SHMKIT_RDONLY };
	pid_t pid = sk_test_fork(child_recv, &a);
	int sent = shmkit_seg_send_fd(s, sv[0]);
	int rc = sk_test_reap(pid);
	close(sv[0]);
	close(sv[1]);
	cr_assert_eq(sent, 0);
	cr_assert_eq(rc, 0);
	shmkit_seg_close(s);
}

/* ---- copy-on-write: the seed's parent/child `var` example, both ways ----- */

static int var = 10;

static int seed_child(void *p)
{
	strcpy(p, "This is child");
	var = 100;
	return var == 100 && !strcmp(p, "This is child") ? 0 : 1;
}

/* Seed section 3: a 100-byte file mapped, fork, the child writes the
 * mapping and the global var.  Shared: the parent sees the child's string,
 * never its var.  Copy-on-write: the parent sees neither, and the file
 * keeps its bytes. */
static void seed_example(unsigned flags, const char *parent_sees)
{
	const char *name = sk_test_new_name("file");
	shmkit_seg *c = create_seg(name, 100, 0), *s;
	struct shmkit_seg_opts o = { .flags = flags };
	char disk[16] = "";

	strcpy(data_of(c), "original");
	shmkit_seg_close(c);
	cr_assert_eq(shmkit_seg_open(&s, name, &o), 0);
	var = 10;
	cr_assert_eq(sk_test_reap(sk_test_fork(seed_child, data_of(s))), 0);
	cr_assert_str_eq(data_of(s), parent_sees);
	cr_assert_eq(var, 10, "the child's var stays the child's");
	int fd = open(name + 5, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	ssize_t n = pread(fd, disk, 15, SK_HDR_SIZE);
	close(fd);
	cr_assert_gt(n, 0);
	cr_assert_str_eq(disk, parent_sees);
	shmkit_seg_close(s);
}

Test(seg, seed_var_example_shared) { seed_example(0, "This is child"); }
Test(seg, seed_var_example_cow) { seed_example(SHMKIT_COW, "original"); }

/* An unrelated process attached copy-on-write keeps its writes; one
 * attached shared does not. */
static void check_cow_exec(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_seg(name, 4096, 0);
	char out[256];

	strcpy(data_of(s), "base");
	int rc = sk_test_run(out, sizeof(out), "helper_seg", "write", name, "0", "cow!", "cow", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(data_of(s), "base");
	rc = sk_test_run(out, sizeof(out), "helper_seg", "read", name, "0", "8", "cow", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(out, "base");
	rc = sk_test_run(out, sizeof(out), "helper_seg", "write", name, "0", "shared", NULL);
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(data_of(s), "shared");
	shmkit_seg_close(s);
}

Test(seg, cow_exec_posix) { check_cow_exec("posix"); }
Test(seg, cow_exec_file) { check_cow_exec("file"); }

/* The COW attacher sees its own writes, the sharers do not. */
Test(seg, cow_own_writes_private)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *s = create_seg(name, 4096, 0), *c;
	struct shmkit_seg_opts o = { .flags = SHMKIT_COW };

	strcpy(data_of(s), "shared");
	cr_assert_eq(shmkit_seg_open(&c, name, &o), 0);
	cr_assert_str_eq(data_of(c), "shared");
	strcpy(data_of(c), "private");
	cr_assert_str_eq(data_of(c), "private");
	cr_assert_str_eq(data_of(s), "shared");
	cr_assert_eq(shmkit_seg_sync(c, 0, 0, 0), 0); /* nothing to write back */
	shmkit_seg_close(c);
	shmkit_seg_close(s);
}

/* ---- read-only attach: a write faults ------------------------------------ */

/* 1 if the mapping holding addr is mapped without write permission. */
static int mapped_readonly(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int ro = -1;

	if (!f)
		return -1;
	while (ro < 0 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    (unsigned long)addr >= lo && (unsigned long)addr < hi)
			ro = perms[0] == 'r' && perms[1] == '-';
	}
	fclose(f);
	return ro;
}

static int child_rdonly_write(void *p)
{
	struct shmkit_seg_opts o = { .flags = SHMKIT_RDONLY };
	struct rlimit no_core = { 0, 0 };
	shmkit_seg *s;

	setrlimit(RLIMIT_CORE, &no_core);
	if (shmkit_seg_open(&s, p, &o))
		return 10;
	volatile char *d = shmkit_seg_data(s);
	if (strcmp((const char *)d, "read me"))
		return 11;
	if (mapped_readonly((const void *)d) != 1)
		return 12;
	/* The kernel refuses to write there too: read(2) into it is EFAULT. */
	int pfd[2];
	if (pipe(pfd) || write(pfd[1], "X", 1) != 1)
		return 13;
	if (read(pfd[0], (void *)d, 1) != -1 || errno != EFAULT)
		return 14;
#ifdef __SANITIZE_ADDRESS__
	return 128 + SIGSEGV; /* ASan owns SIGSEGV: the checks above must do */
#else
	d[0] = 'X'; /* must die here of SIGSEGV */
	return 15;
#endif
}

static void check_rdonly(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_seg(name, 4096, 0);

	strcpy(data_of(s), "read me");
	int rc = sk_test_reap(sk_test_fork(child_rdonly_write, (void *)name));
	cr_assert_eq(rc, 128 + SIGSEGV, "child exit %d, wanted death by SIGSEGV", rc);
	cr_assert_str_eq(data_of(s), "read me");
	shmkit_seg_close(s);
}

Test(seg, rdonly_faults_posix) { check_rdonly("posix"); }
Test(seg, rdonly_faults_sysv) { check_rdonly("sysv"); }
Test(seg, rdonly_faults_file) { check_rdonly("file"); }

/* ---- msync durability ----------------------------------------------------- */

static void expect_on_disk(const char *path, size_t data_off, const char *want)
{
	char buf[64] = "";
	size_t len = strlen(want);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	ssize_t n = pread(fd, buf, len, (off_t)(SK_HDR_SIZE + data_off));
	close(fd);
	cr_assert_eq(n, (ssize_t)len);
	cr_assert_str_eq(buf, want);
}

Test(seg, msync_file_durability)
{
	const char *name = sk_test_new_name("file");
	shmkit_seg *s = create_seg(name, 10000, 0);
	char *d = data_of(s);

	memcpy(d + 5000, "durable-sync", 12);
	cr_assert_eq(shmkit_seg_sync(s, 5000, 12, 0), 0);
	expect_on_disk(name + 5, 5000, "durable-sync");
	memcpy(d + 100, "durable-async", 13);
	cr_assert_eq(shmkit_seg_sync(s, 0, 0, SHMKIT_SYNC_ASYNC), 0);
	expect_on_disk(name + 5, 100, "durable-async");
	memcpy(d + 9000, "durable-inval", 13);
	cr_assert_eq(shmkit_seg_sync(s, 9000, 13, SHMKIT_SYNC_INVALIDATE), 0);
	expect_on_disk(name + 5, 9000, "durable-inval");
	cr_assert_eq(shmkit_seg_sync(s, 8191, 2, SHMKIT_SYNC_ASYNC | SHMKIT_SYNC_INVALIDATE), 0);
	/* A write to the file shows through the mapping after invalidate. */
	int fd = open(name + 5, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	ssize_t n = pwrite(fd, "via-write", 9, SK_HDR_SIZE + 7000);
	close(fd);
	cr_assert_eq(n, 9);
	cr_assert_eq(shmkit_seg_sync(s, 7000, 9, SHMKIT_SYNC_INVALIDATE), 0);
	cr_assert_eq(memcmp(d + 7000, "via-write", 9), 0);
	/* Ranges are checked against the data area. */
	cr_assert_eq(shmkit_seg_sync(s, 10001, 0, 0), -EINVAL);
	cr_assert_eq(shmkit_seg_sync(s, 0, 10001, 0), -EINVAL);
	cr_assert_eq(shmkit_seg_sync(s, 9999, 2, 0), -EINVAL);
	cr_assert_eq(shmkit_seg_sync(s, 0, 0, 0x80), -EINVAL);
	cr_assert_eq(shmkit_seg_sync(NULL, 0, 0, 0), -EINVAL);
	shmkit_seg_close(s);
	/* Persisted: a fresh unrelated process reads it back. */
	char out[64];
	cr_assert_eq(sk_test_run(out, sizeof(out), "helper_seg", "read", name, "5000", "12", NULL), 0);
	cr_assert_str_eq(out, "durable-sync");
}

Test(seg, sync_is_noop_without_file)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *s = create_seg(name, 100, 0);

	cr_assert_eq(shmkit_seg_sync(s, 0, 0, 0), 0);
	cr_assert_eq(shmkit_seg_sync(s, 0, 101, 0), -EINVAL);
	shmkit_seg_close(s);
}

/* ---- modes, whatever the umask ------------------------------------------- */

/* Permission bits of the object, read without shmkit. */
static unsigned raw_mode(const char *name, const shmkit_seg *s)
{
	struct stat st;

	if (!strncmp(name, "sysv:", 5)) {
		struct shmkit_seg_info ss;
		struct shmid_ds ds;
		cr_assert_eq(shmkit_seg_info(s, &ss), 0);
		cr_assert_eq(shmctl(ss.shmid, IPC_STAT, &ds), 0);
		return ds.shm_perm.mode & 0777;
	}
	if (!strncmp(name, "posix:/", 7)) {
		char path[256];
		snprintf(path, sizeof(path), "/dev/shm/%s", name + 7);
		cr_assert_eq(stat(path, &st), 0);
	} else if (!strncmp(name, "file:", 5))
		cr_assert_eq(stat(name + 5, &st), 0);
	else
		cr_assert_eq(fstat(shmkit_seg_fd(s), &st), 0);
	return st.st_mode & 07777;
}

static void check_modes(const char *prefix)
{
	static const mode_t umasks[] = { 077, 0, 022 };
	static const unsigned modes[][2] = { { 0644, 0644 }, { 0600, 0600 }, { 0, 0600 },
	                                     { 0666, 0666 }, { 0640, 0640 } };

	for (size_t u = 0; u < SK_ARRAY_LEN(umasks); u++) {
		for (size_t m = 0; m < SK_ARRAY_LEN(modes); m++) {
			mode_t old = umask(umasks[u]);
			char name[128];
			cr_assert_not_null(sk_test_name(name, sizeof(name), prefix));
			struct shmkit_seg_opts o = { .size = 64, .mode = modes[m][0], .flags = SHMKIT_EXCL };
			shmkit_seg *s;
			int err = shmkit_seg_create(&s, name, &o);
			umask(old);
			cr_assert_eq(err, 0, "%s: %s", name, shmkit_strerror(err));
			struct shmkit_seg_info st;
			int serr = shmkit_seg_info(s, &st);
			unsigned raw = raw_mode(name, s);
			shmkit_seg_close(s);
			sk_test_remove(name);
			cr_assert_eq(serr, 0);
			cr_assert_eq(raw, modes[m][1], "%s umask %03o mode %04o: got %04o",
			             prefix, umasks[u], modes[m][0], raw);
			cr_assert_eq(st.mode, modes[m][1]);
		}
	}
}

Test(seg, mode_exact_posix) { check_modes("posix"); }
Test(seg, mode_exact_file) { check_modes("file"); }
Test(seg, mode_exact_sysv) { check_modes("sysv"); }
Test(seg, mode_exact_memfd) { check_modes("memfd"); }

/* ---- stat and list ------------------------------------------------------- */

static void check_stat_fields(const struct shmkit_seg_info *st, const char *name, int backend)
{
	cr_assert_eq(st->backend, backend);
	cr_assert_eq(st->kind, SHMKIT_KIND_BYTES);
	cr_assert_str_eq(st->name, name);
	cr_assert_eq(st->data_size, 5000);
	cr_assert_eq(st->data_offset, SK_HDR_SIZE);
	cr_assert_geq(st->map_size, SK_HDR_SIZE + 5000);
	cr_assert_eq(st->map_size % (size_t)sysconf(_SC_PAGESIZE), 0);
	cr_assert_eq(st->creator_pid, getpid());
	cr_assert_eq(st->creator_alive, 1);
	cr_assert_gt(st->created_ns, 0);
	cr_assert_eq(st->version, SK_SEG_VERSION);
	cr_assert_eq(st->uid, getuid());
	cr_assert_eq(st->mode, 0600);
	cr_assert_eq(st->removed, 0);
}

/* System V attach counts are polled (bounded): another process's listing
 * (a `shmkit ls`, another test) may be attached for a moment. */
struct nattch {
	const shmkit_seg *seg;
	long want;
	int removed;
};

static int nattch_is(void *p)
{
	const struct nattch *n = p;
	struct shmkit_seg_info st;

	return shmkit_seg_info(n->seg, &st) == 0 && st.attach_count == n->want &&
	       st.removed == n->removed;
}

static void expect_nattch(const shmkit_seg *s, long want, int removed)
{
	struct nattch n = { s, want, removed };

	cr_assert(sk_test_eventually(nattch_is, &n), "attach count never %ld (removed %d)", want, removed);
}

static void check_stat(const char *prefix, int backend)
{
	const char *name = sk_test_new_name(prefix);
	shmkit_seg *s = create_seg(name, 5000, 0);
	struct shmkit_seg_info st;

	cr_assert_eq(shmkit_seg_info(s, &st), 0);
	check_stat_fields(&st, name, backend);
	if (backend == SHMKIT_SYSV) {
		cr_assert_geq(st.shmid, 0);
		expect_nattch(s, 1, 0);
		cr_assert_eq((unsigned long)st.key, strtoul(name + 5, NULL, 16));
	} else {
		cr_assert_eq(st.shmid, -1);
	}
	if (backend != SHMKIT_MEMFD && backend != SHMKIT_ANON) {
		cr_assert_eq(shmkit_seg_info_name(name, &st), 0);
		check_stat_fields(&st, name, backend);
	}
	shmkit_seg_close(s);
}

Test(seg, stat_posix) { check_stat("posix", SHMKIT_POSIX); }
Test(seg, stat_sysv) { check_stat("sysv", SHMKIT_SYSV); }
Test(seg, stat_file) { check_stat("file", SHMKIT_FILE); }
Test(seg, stat_memfd) { check_stat("memfd", SHMKIT_MEMFD); }
Test(seg, stat_anon) { check_stat("anon", SHMKIT_ANON); }

Test(seg, list_shows_managed)
{
	const char *pname = sk_test_new_name("posix"), *vname = sk_test_new_name("sysv");
	shmkit_seg *p = create_seg(pname, 5000, 0), *v = create_seg(vname, 5000, 0);
	struct shmkit_seg_info vst, fp, fv;

	cr_assert_eq(shmkit_seg_info(v, &vst), 0);
	cr_assert_eq(sk_test_find_seg(pname, -1, &fp), 1);
	cr_assert_eq(sk_test_find_seg(NULL, vst.shmid, &fv), 1);
	cr_assert_eq(fp.kind, SHMKIT_KIND_BYTES);
	cr_assert_eq(fp.data_size, 5000);
	cr_assert_eq(fv.kind, SHMKIT_KIND_BYTES);
	cr_assert_eq(fv.backend, SHMKIT_SYSV);
	cr_assert_eq(fv.creator_pid, getpid());
	cr_assert_eq(shmkit_seg_list(NULL, NULL), -EINVAL);
	shmkit_seg_close(p);
	shmkit_seg_close(v);
}

static int stop_cb(const struct shmkit_seg_info *st, void *arg)
{
	++*(int *)arg;
	return 42;
}

Test(seg, list_stops_early)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *s = create_seg(name, 10, 0);
	int calls = 0;

	cr_assert_eq(shmkit_seg_list(stop_cb, &calls), 42);
	cr_assert_eq(calls, 1);
	shmkit_seg_close(s);
}

/* ---- removal ------------------------------------------------------------- */

/* The listing shows the removed segment once, with our 2 attaches (its own
 * brief attach is not counted). */
static int listed_removed_twice(void *p)
{
	struct shmkit_seg_info st;

	return sk_test_find_seg(NULL, *(int *)p, &st) == 1 && st.removed == 1 && st.attach_count == 2;
}

Test(seg, sysv_remove_while_attached)
{
	const char *name = sk_test_new_name("sysv");
	shmkit_seg *a = create_seg(name, 4096, 0), *b;
	struct shmkit_seg_info st;

	cr_assert_eq(shmkit_seg_open(&b, name, NULL), 0);
	expect_nattch(a, 2, 0);
	cr_assert_eq(shmkit_seg_info(a, &st), 0);
	int shmid = st.shmid;
	cr_assert_eq(shmkit_seg_remove(name), 0);
	cr_assert_eq(shmkit_seg_remove(name), -ENOENT);
	expect_nattch(a, 2, 1);
	strcpy(data_of(a), "still here");
	cr_assert_str_eq(data_of(b), "still here");
	shmkit_seg *c;
	cr_assert_eq(shmkit_seg_open(&c, name, NULL), -ENOENT, "the key is gone");
	cr_assert(sk_test_eventually(listed_removed_twice, &shmid), "ls shows it removed, 2 attached");
	shmkit_seg_close(b);
	expect_nattch(a, 1, 1);
	shmkit_seg_close(a);
	char idname[64];
	snprintf(idname, sizeof(idname), "sysv:id=%d", shmid);
	cr_assert_eq(shmkit_seg_info_name(idname, &st), -ENOENT);
	cr_assert_eq(sk_test_exists(name), 0);
}

Test(seg, posix_remove_while_open)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *s = create_seg(name, 4096, 0);
	struct shmkit_seg_info st;

	cr_assert_eq(shmkit_seg_remove(name), 0);
	cr_assert_eq(sk_test_exists(name), 0);
	cr_assert_eq(shmkit_seg_info(s, &st), 0);
	cr_assert_eq(st.removed, 1);
	strcpy(data_of(s), "usable");
	cr_assert_str_eq(data_of(s), "usable");
	cr_assert_eq(shmkit_seg_remove(name), -ENOENT);
	shmkit_seg_close(s);
}

/* ---- options that the machine honours ------------------------------------ */

static void check_populate_mlock(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 65536, .flags = SHMKIT_EXCL | SHMKIT_POPULATE | SHMKIT_MLOCK };
	shmkit_seg *s;
	int err = shmkit_seg_create(&s, name, &o);

	cr_assert_eq(err, 0, "%s: %s (%s)", name, shmkit_strerror(err), shmkit_errdetail());
	memset(data_of(s), 0x5a, shmkit_seg_size(s));
	shmkit_seg_close(s);
}

Test(seg, populate_mlock_posix) { check_populate_mlock("posix"); }
Test(seg, populate_mlock_sysv) { check_populate_mlock("sysv"); }
Test(seg, populate_mlock_anon) { check_populate_mlock("anon"); }
Test(seg, populate_mlock_memfd) { check_populate_mlock("memfd"); }

/* Without SHMKIT_EXCL an existing segment of the same kind is opened. */
Test(seg, create_opens_existing)
{
	const char *name = sk_test_new_name("posix");
	shmkit_seg *a = create_seg(name, 100, 0), *b;
	struct shmkit_seg_opts o = { .size = 100 };

	strcpy(data_of(a), "first");
	cr_assert_eq(shmkit_seg_create(&b, name, &o), 0);
	cr_assert_str_eq(data_of(b), "first");
	shmkit_seg_close(b);
	shmkit_seg_close(a);
}
