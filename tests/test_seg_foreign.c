/*
 * test_seg_foreign.c - segments shmkit did not make: raw shm_open and
 * shmget objects, ipcmk, Python's multiprocessing.shared_memory.  They are
 * listed (kind foreign), attached SHMKIT_RAW and read/written, and opening
 * them managed is -EPROTO.  Also memfd fds received from a peer that sends
 * something else than a shmkit segment.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

#include "seg.h"
#include "lib_test.h"

#define MS 1000000LL
#define HOUR (3600 * 1000 * MS)

TestSuite(seg_foreign, .timeout = 60, .fini = sk_test_cleanup);

/* Listed once, as foreign, the whole mapping as its data. */
static void expect_listed_foreign(const char *name, int shmid, size_t size)
{
	struct shmkit_seg_info st;
	int found = sk_test_find_seg(name, shmid, &st);

	cr_assert_eq(found, 1, "%s listed %d times", name ? name : "shmid", found);
	cr_assert_eq(st.kind, SHMKIT_KIND_FOREIGN);
	cr_assert_eq(st.data_offset, 0);
	cr_assert_eq(st.data_size, size);
}

/* Attach raw, check the bytes, write some; managed open is -EPROTO at
 * once (a wait would run into the test's timeout). */
static void expect_raw_rw(const char *name, const char *want, size_t size)
{
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW }, managed = { .init_timeout_ns = HOUR };
	shmkit_seg *s, *t = NULL;
	char out[64];

	cr_assert_eq(shmkit_seg_open(&s, name, &raw), 0, "%s", shmkit_errdetail());
	cr_assert_eq(shmkit_seg_size(s), size);
	cr_assert_eq(shmkit_seg_kind(s), SHMKIT_KIND_FOREIGN);
	cr_assert_str_eq(shmkit_seg_data(s), want);
	strcpy((char *)shmkit_seg_data(s) + 32, "from-shmkit");
	shmkit_seg_close(s);
	int fds = sk_test_fd_count();
	cr_assert_eq(shmkit_seg_open(&t, name, &managed), -EPROTO);
	cr_assert_null(t);
	cr_assert_eq(sk_test_fd_count(), fds);
	/* An unrelated process sees it too. */
	cr_assert_eq(sk_test_run(out, sizeof(out), "helper_seg", "read", name, "32", "11", "raw", NULL), 0,
	             "%s", out);
	cr_assert_str_eq(out, "from-shmkit");
}

/* A POSIX object made with plain shm_open: size bytes, text at off.
 * Returns its fd (the caller closes it). */
static int make_raw_posix(const char *name, off_t size, const char *text, off_t off)
{
	int fd = shm_open(name + strlen("posix:"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "shm_open %s: %s", name, strerror(errno));
	cr_assert_eq(ftruncate(fd, size), 0);
	if (text)
		cr_assert_eq(pwrite(fd, text, strlen(text) + 1, off), (ssize_t)strlen(text) + 1);
	return fd;
}

Test(seg_foreign, raw_posix)
{
	const char *name = sk_test_new_name("posix");
	int fd = make_raw_posix(name, 8192, "foreign-posix", 0);
	char buf[12] = "";

	expect_listed_foreign(name, -1, 8192);
	expect_raw_rw(name, "foreign-posix", 8192);
	cr_assert_eq(pread(fd, buf, 11, 32), 11);
	close(fd);
	cr_assert_str_eq(buf, "from-shmkit");
}

/* Smaller than a header: raw works, managed is -EPROTO at once. */
Test(seg_foreign, raw_posix_small)
{
	const char *name = sk_test_new_name("posix");

	close(make_raw_posix(name, 100, "tiny", 0));
	expect_listed_foreign(name, -1, 100);
	expect_raw_rw(name, "tiny", 100);
}

/* All zeros (e.g. fresh from Python): indistinguishable from a creator
 * that has not written its header yet, so -EPROTO after the bounded wait. */
Test(seg_foreign, raw_posix_zeros)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .init_timeout_ns = 20 * MS }, raw = { .flags = SHMKIT_RAW };
	shmkit_seg *s;

	close(make_raw_posix(name, 8192, NULL, 0));
	cr_assert_eq(shmkit_seg_open(&s, name, &o), -EPROTO);
	cr_assert_eq(shmkit_seg_open(&s, name, &raw), 0);
	shmkit_seg_close(s);
	expect_listed_foreign(name, -1, 8192);
}

/* Zero where the magic would be but bytes where the state word would be:
 * still "not shmkit" (-EPROTO), not "corrupt shmkit" (-EBADMSG). */
Test(seg_foreign, raw_posix_zero_magic)
{
	const char *name = sk_test_new_name("posix");

	close(make_raw_posix(name, 8192, "bytes at 16..", 16));
	expect_raw_rw(name, "", 8192);
}

/* Polled: another process's listing may be attached for a moment. */
static int nobody_attached(void *name)
{
	struct shmkit_seg_info st;

	return shmkit_seg_info_name(name, &st) == 0 && st.attach_count == 0;
}

Test(seg_foreign, raw_sysv)
{
	const char *name = sk_test_new_name("sysv");
	key_t key = (key_t)strtoul(name + 5, NULL, 16);
	int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600);
	char idname[64];

	cr_assert_geq(id, 0);
	char *p = shmat(id, NULL, 0);
	cr_assert_neq(p, (void *)-1);
	strcpy(p, "foreign-sysv");
	shmdt(p);
	snprintf(idname, sizeof(idname), "sysv:id=%d", id);
	expect_listed_foreign(NULL, id, 10000);
	struct shmkit_seg_info st;
	cr_assert_eq(shmkit_seg_info_name(idname, &st), 0);
	cr_assert_eq(st.creator_pid, getpid(), "creator from shm_cpid");
	cr_assert_eq(st.key, (long)(uint32_t)key);
	cr_assert(sk_test_eventually(nobody_attached, idname), "stat's own attach is not counted");
	expect_raw_rw(name, "foreign-sysv", 10000);
	expect_raw_rw(idname, "foreign-sysv", 10000);
	cr_assert_eq(shmkit_seg_remove(idname), 0);
	cr_assert_eq(sk_test_exists(name), 0);
}

/* A segment from ipcmk(1), if installed. */
Test(seg_foreign, ipcmk)
{
	FILE *f = popen("ipcmk -M 4096 -p 0600 2>/dev/null", "r");
	char line[128] = "", idname[64];
	int id = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Shared memory id: %d", &id) == 1)
			break;
	pclose(f);
	if (id < 0)
		cr_skip_test("ipcmk not available");
	snprintf(idname, sizeof(idname), "sysv:id=%d", id);
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW }, managed = { .init_timeout_ns = 20 * MS };
	shmkit_seg *s = NULL;
	int listed_err = shmkit_seg_open(&s, idname, &raw);
	if (!listed_err) {
		strcpy(shmkit_seg_data(s), "into-ipcmk");
		shmkit_seg_close(s);
	}
	struct shmkit_seg_info lst;
	int found = sk_test_find_seg(NULL, id, &lst);
	int merr = shmkit_seg_open(&s, idname, &managed);
	char out[32];
	int rc = sk_test_run(out, sizeof(out), "helper_seg", "read", idname, "0", "10", "raw", NULL);
	int rm = shmkit_seg_remove(idname);
	cr_assert_eq(listed_err, 0);
	cr_assert_eq(found, 1);
	cr_assert_eq(lst.kind, SHMKIT_KIND_FOREIGN);
	cr_assert_eq(merr, -EPROTO); /* zero-filled: after the bounded wait */
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(out, "into-ipcmk");
	cr_assert_eq(rm, 0);
}

/* Python's multiprocessing.shared_memory, if python3 has it.  Python keeps
 * the segment until we close its stdin, then reports what it sees and
 * unlinks it itself. */
static const char py_script[] =
	"import sys\n"
	"from multiprocessing import shared_memory as sm\n"
	"m = sm.SharedMemory(name=sys.argv[1], create=True, size=5000)\n"
	"m.buf[:11] = b'from-python'\n"
	"print('ready', flush=True)\n"
	"sys.stdin.read()\n"
	"print(bytes(m.buf[32:43]).decode(), end='')\n"
	"m.close(); m.unlink()\n";

Test(seg_foreign, python_shared_memory)
{
	char out[128];
	if (sk_test_run(out, sizeof(out), "/usr/bin/env", "python3", "-c",
	                "import multiprocessing.shared_memory", NULL) != 0)
		cr_skip_test("python3 with multiprocessing.shared_memory not available");
	const char *name = sk_test_new_name("posix");
	const char *argv[] = { "/usr/bin/env", "python3", "-c", py_script, name + 7, NULL };
	int in[2], out_fd;
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	pid_t pid = sk_test_spawn(argv, in[0], &out_fd);
	close(in[0]);
	cr_assert_gt(pid, 0);
	char ready[8] = "";
	ssize_t n = 0;
	while (n < 6) { /* "ready\n" */
		ssize_t r = read(out_fd, ready + n, 6 - (size_t)n);
		if (r <= 0)
			break;
		n += r;
	}
	struct shmkit_seg_info lst;
	int found = n == 6 ? sk_test_find_seg(name, -1, &lst) : -1;
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW }, managed = { .init_timeout_ns = HOUR };
	shmkit_seg *s = NULL;
	int rerr = n == 6 ? shmkit_seg_open(&s, name, &raw) : -1;
	char seen[16] = "";
	size_t size = 0;
	if (!rerr) {
		snprintf(seen, sizeof(seen), "%.11s", (char *)shmkit_seg_data(s));
		size = shmkit_seg_size(s);
		memcpy((char *)shmkit_seg_data(s) + 32, "from-shmkit", 11);
		shmkit_seg_close(s);
	}
	int merr = n == 6 ? shmkit_seg_open(&s, name, &managed) : -1;
	close(in[1]);
	int rc = sk_test_finish(pid, out_fd, out, sizeof(out));
	cr_assert_str_eq(ready, "ready\n");
	cr_assert_eq(found, 1);
	cr_assert_eq(lst.kind, SHMKIT_KIND_FOREIGN);
	cr_assert_eq(rerr, 0);
	cr_assert_str_eq(seen, "from-python");
	cr_assert_geq(size, 5000);
	cr_assert_eq(merr, -EPROTO);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(out, "from-shmkit");
	cr_assert_eq(sk_test_exists(name), 0, "python unlinked it");
}

/* ---- memfd receive: what a peer may send instead ------------------------------ */

static int send_fds(int sock, const int *fds, int n)
{
	char byte = 'S';
	struct iovec iov = { &byte, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * 4)]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&u, 0, sizeof(u));
	if (n > 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	}
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -errno;
}

/* Receive on sv[1] what was sent on sv[0]; expect want; no fd leaked. */
static void expect_recv(int sv[2], const struct shmkit_seg_opts *o, int want)
{
	int fds = sk_test_fd_count();
	shmkit_seg *s = NULL;
	int err = shmkit_seg_recv_fd(&s, sv[1], o);

	if (!err)
		shmkit_seg_close(s);
	cr_assert_eq(err, want, "got %d (%s)", err, shmkit_errdetail());
	cr_assert_eq(sk_test_fd_count(), fds, "received fds leaked");
}

Test(seg_foreign, recv_fd_bad_messages)
{
	int sv[2];
	/* These memfds are not sealed: NOSEAL accepts that (tested apart). */
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW | SHMKIT_NOSEAL },
	                       quick = { .init_timeout_ns = 20 * MS, .flags = SHMKIT_NOSEAL };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* No fd in the message: its own error, not "corrupt shared state". */
	cr_assert_eq(send_fds(sv[0], NULL, 0), 0);
	expect_recv(sv, NULL, -ENOMSG);
	/* An empty memfd: no header (raw: empty). */
	int empty = memfd_create("sktest-empty", MFD_CLOEXEC);
	cr_assert_eq(send_fds(sv[0], &empty, 1), 0);
	expect_recv(sv, &quick, -EPROTO);
	cr_assert_eq(send_fds(sv[0], &empty, 1), 0);
	expect_recv(sv, &raw, -EPROTO);
	/* A memfd of foreign bytes: -EPROTO managed, fine raw. */
	int junk = memfd_create("sktest-junk", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(junk, 8192), 0);
	cr_assert_eq(pwrite(junk, "junk", 4, 0), 4);
	cr_assert_eq(send_fds(sv[0], &junk, 1), 0);
	expect_recv(sv, &quick, -EPROTO);
	cr_assert_eq(send_fds(sv[0], &junk, 1), 0);
	expect_recv(sv, &raw, 0);
	/* Several fds: one taken, the rest closed. */
	int three[3] = { junk, junk, junk };
	cr_assert_eq(send_fds(sv[0], three, 3), 0);
	expect_recv(sv, &raw, 0);
	/* A pipe is not a segment. */
	int pfd[2];
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	cr_assert_eq(send_fds(sv[0], &pfd[0], 1), 0);
	expect_recv(sv, &raw, -EINVAL);
	close(pfd[0]);
	close(pfd[1]);
	close(empty);
	close(junk);
	/* The peer hangs up. */
	close(sv[0]);
	expect_recv(sv, NULL, -ECONNRESET);
	close(sv[1]);
	shmkit_seg *s = NULL;
	cr_assert_eq(shmkit_seg_recv_fd(&s, -1, NULL), -EINVAL);
	cr_assert_eq(shmkit_seg_recv_fd(NULL, 0, NULL), -EINVAL);
}

/* Only memfd, posix and file handles have an fd to send. */
Test(seg_foreign, send_fd_without_fd)
{
	const char *sname = sk_test_new_name("sysv");
	struct shmkit_seg_opts o = { .size = 64, .flags = SHMKIT_EXCL };
	shmkit_seg *v, *a;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(shmkit_seg_create(&v, sname, &o), 0);
	cr_assert_eq(shmkit_seg_create(&a, "anon", &o), 0);
	int ev = shmkit_seg_send_fd(v, sv[0]), ea = shmkit_seg_send_fd(a, sv[0]);
	int en = shmkit_seg_send_fd(NULL, sv[0]), eb = shmkit_seg_send_fd(a, -1);
	shmkit_seg_close(v);
	shmkit_seg_close(a);
	close(sv[0]);
	close(sv[1]);
	cr_assert_eq(ev, -EINVAL);
	cr_assert_eq(ea, -EINVAL);
	cr_assert_eq(en, -EINVAL);
	cr_assert_eq(eb, -EINVAL);
}

/* A received memfd its sender can still shrink is refused (a truncate
 * would SIGBUS us) unless the caller accepts it; a sealed one is taken. */
Test(seg_foreign, recv_fd_refuses_a_shrinkable_memfd)
{
	int sv[2];
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW }, rawok = { .flags = SHMKIT_RAW | SHMKIT_NOSEAL };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int fd = memfd_create("sktest-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	cr_assert_eq(ftruncate(fd, 8192), 0);
	cr_assert_eq(send_fds(sv[0], &fd, 1), 0);
	expect_recv(sv, &raw, -EPERM);
	cr_assert_eq(send_fds(sv[0], &fd, 1), 0);
	expect_recv(sv, &rawok, 0);
	cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	cr_assert_eq(send_fds(sv[0], &fd, 1), 0);
	expect_recv(sv, &raw, 0);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}
