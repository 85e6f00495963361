/*
 * test_waitfd.c - the pollable futex fd (src/waitfd.c), both kinds.
 *
 * Every test runs twice: in suite waitfd_uring (SHMKIT_WAITFD=io_uring;
 * skipped where the kernel refuses io_uring or its futex op) and in
 * suite waitfd_thread (SHMKIT_WAITFD=thread, the helper-thread fallback).
 * Wakers are forked children that report through their exit status, die
 * with the test (PR_SET_PDEATHSIG) and are always reaped.  A poll that
 * expects readiness is bounded by WAKE_BOUND_MS, longer than the suite
 * timeout, so a lost wake-up fails by timeout rather than passing slowly;
 * "not readable" is a poll of QUIET_MS that must time out.  Nothing
 * asserts on elapsed time.  POSIX shm names are removed in .fini.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "lib_test.h"
#include "waitfd.h"

#define WAKE_BOUND_MS 60000 /* > suite timeout: a lost wake-up times out */
#define QUIET_MS 50         /* how long "not readable" is watched */
#define SETTLE_NS (10 * 1000000000LL) /* bound on watching a thread settle */
#define PAGE 4096

static int want_kind;

static void use_uring(void)
{
	setenv("SHMKIT_WAITFD", "io_uring", 1);
	want_kind = SK_WAITFD_URING;
}

static void use_thread(void)
{
	setenv("SHMKIT_WAITFD", "thread", 1);
	want_kind = SK_WAITFD_THREAD;
}

TestSuite(waitfd_uring, .timeout = 30, .init = use_uring);
TestSuite(waitfd_thread, .timeout = 30, .init = use_thread);

/* Define a test body once and register it in both suites.  BOTH hands
 * the body a page of shared memory and a waitfd of the suite's kind, and
 * frees both after it; BOTH_BARE bodies make their own. */
#define BOTH_BARE(name)                                                   \
	static void name##_body(void);                                    \
	Test(waitfd_uring, name) { name##_body(); }                       \
	Test(waitfd_thread, name) { name##_body(); }                      \
	static void name##_body(void)

#define BOTH(name)                                                        \
	static void name##_fx(uint32_t *m, struct sk_waitfd *w);          \
	BOTH_BARE(name) { with_fixture(name##_fx); }                      \
	static void name##_fx(uint32_t *m, struct sk_waitfd *w)

/* ---- helpers ------------------------------------------------------------ */

static bool refused(int err)
{
	return err == -ENOSYS || err == -EPERM || err == -EACCES || err == -EINVAL ||
	       err == -EOPNOTSUPP;
}

static struct sk_waitfd *wfd_open(void)
{
	struct sk_waitfd *w = NULL;
	int r = sk_waitfd_open(&w);

	if (want_kind == SK_WAITFD_URING && refused(r))
		cr_skip_test("io_uring futex wait unavailable here: %s", strerror(-r));
	cr_assert_eq(r, 0, "sk_waitfd_open: %s (%s)", strerror(-r), shmkit_errdetail());
	cr_assert_eq(sk_waitfd_kind(w), want_kind);
	cr_assert_geq(sk_waitfd_fd(w), 0);
	return w;
}

static void arm_ok(struct sk_waitfd *w, const uint32_t *word, uint32_t expected)
{
	int r = sk_waitfd_arm(w, word, expected);
	cr_assert_eq(r, 0, "arm: %s (%s)", strerror(-r), shmkit_errdetail());
}

/* 1 if the fd is readable within ms, 0 if not. */
static int readable(const struct sk_waitfd *w, int ms)
{
	struct pollfd p = { .fd = sk_waitfd_fd(w), .events = POLLIN };
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	cr_assert_geq(r, 0, "poll: %s", strerror(errno));
	cr_assert_eq(p.revents & (POLLERR | POLLNVAL), 0, "revents %#x", p.revents);
	return r == 1 && (p.revents & POLLIN);
}

static void expect_quiet(const struct sk_waitfd *w, const char *when)
{
	cr_assert_eq(readable(w, QUIET_MS), 0, "readable %s", when);
}

static void expect_ready(const struct sk_waitfd *w, const char *when)
{
	cr_assert_eq(readable(w, WAKE_BOUND_MS), 1, "not readable %s", when);
}

static void *shared_anon(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static void with_fixture(void (*body)(uint32_t *m, struct sk_waitfd *w))
{
	uint32_t *m = shared_anon();
	struct sk_waitfd *w = wfd_open();

	body(m, w);
	sk_waitfd_close(w);
	munmap(m, PAGE);
}

static int child_ok(pid_t pid)
{
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	return sk_test_reap(pid);
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *e;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int tasks_now(void)
{
	return count_dir("/proc/self/task");
}

static int tasks_want;
static int tasks_back(void *arg)
{
	return tasks_now() == tasks_want;
}

/* True once some thread of ours is blocked in futex() on word (read from
 * /proc/self/task/T/syscall: "nr 0xarg0 ...").  Bounded; not an
 * assertion: false if never seen. */
static bool thread_asleep_on(const uint32_t *word)
{
	char want[64], path[320], buf[256];
	int64_t end = sk_now_ns() + SETTLE_NS;

	snprintf(want, sizeof(want), "%d 0x%lx ", (int)SYS_futex, (unsigned long)(uintptr_t)word);
	while (sk_now_ns() < end) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		bool found = false;

		while (d && !found && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", e->d_name);
			int fd = open(path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			if (fd >= 0)
				close(fd);
			if (n > 0) {
				buf[n] = '\0';
				found = strncmp(buf, want, strlen(want)) == 0;
			}
		}
		if (d)
			closedir(d);
		if (found)
			return true;
		usleep(1000);
	}
	return false;
}

/* Before a waker runs: for the thread kind, let the helper reach its
 * futex wait so the wake path (not only the value check) is exercised.
 * Returns how many waiters the waker's FUTEX_WAKE must find (at least):
 * 1 for io_uring (the wait is queued when arm returns).  The helper
 * thread waits in slices (WFD_SLICE_NS) and, between two, is briefly out
 * of the futex: a wake landing there finds nobody, and the helper then
 * sees the changed word itself.  So for the thread kind nothing is
 * required of the count (CI once caught that instant under load); the
 * readiness that follows is what every test asserts. */
static int sleepers_expected(const uint32_t *word)
{
	if (want_kind == SK_WAITFD_URING)
		return 1;
	(void)thread_asleep_on(word);
	return 0;
}

/* ---- wakers (forked children; exit status 10 + number woken) ------------ */

struct waker {
	uint32_t *word;    /* inherited mapping */
	int memfd;         /* >= 0: map it afresh through /proc/self/fd */
	const char *shm;   /* non-NULL: shm_open and map it afresh */
	uint32_t value;    /* stored before the wake */
};

static int wake_report(int woken)
{
	return woken < 0 ? 2 : 10 + (woken > 100 ? 100 : woken);
}

static int waker_main(void *arg)
{
	const struct waker *k = arg;
	uint32_t *word = k->word;
	int fd = -1;

	if (k->memfd >= 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", k->memfd);
		fd = open(path, O_RDWR);
	} else if (k->shm) {
		fd = shm_open(k->shm, O_RDWR, 0);
	}
	if (k->memfd >= 0 || k->shm) {
		if (fd < 0)
			return 3;
		/* A second mapping of the same object: another address, the
		 * same shared futex key (inode, offset). */
		word = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (word == MAP_FAILED || word == k->word)
			return 4;
	}
	/* Release: the parent's acquire load after the poll sees the value. */
	sk_store_release(word, k->value);
	return wake_report(sk_futex_wake(word, -1));
}

static int ec_waker(void *arg)
{
	shmkit_ec_inc(arg);
	return 0;
}

static void expect_woken(int status, int at_least, const char *what)
{
	cr_assert(status >= 10 && status <= 110, "%s: waker status %d", what, status);
	cr_assert_geq(status - 10, at_least, "%s: FUTEX_WAKE found %d waiters", what, status - 10);
}

/* ---- basic readiness ------------------------------------------------------ */

BOTH(not_readable_while_word_unchanged)
{
	expect_quiet(w, "after open");
	m[0] = 7;
	arm_ok(w, &m[0], 7);
	expect_quiet(w, "after arm on an unchanged word");
	arm_ok(w, &m[0], 7); /* same target again: still quiet */
	expect_quiet(w, "after re-arm on the same target");
}

BOTH(readable_at_once_when_word_differs)
{
	m[0] = 5;
	arm_ok(w, &m[0], 4);
	expect_ready(w, "after arm on a word that differs");
	expect_ready(w, "a second time (level-triggered until the next arm)");
}

BOTH(readable_when_woken_by_child_anon)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };

	arm_ok(w, &m[0], 0);
	int sleepers = sleepers_expected(&m[0]);
	expect_quiet(w, "before the waker ran");
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), sleepers, "anon");
	expect_ready(w, "after a child changed and woke the word");
	cr_assert_eq(sk_load_acquire(&m[0]), 1);
}

BOTH_BARE(readable_when_woken_through_own_memfd_mapping)
{
	int fd = memfd_create("sktest-waitfd", MFD_CLOEXEC);
	cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, PAGE), 0);
	uint32_t *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	struct sk_waitfd *w = wfd_open();
	struct waker k = { .word = &m[0], .memfd = fd, .value = 9 };

	m[0] = 0;
	arm_ok(w, &m[0], 0);
	int sleepers = sleepers_expected(&m[0]);
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), sleepers, "memfd");
	expect_ready(w, "after a child woke the word through its own memfd mapping");
	cr_assert_eq(sk_load_acquire(&m[0]), 9);
	sk_waitfd_close(w);
	munmap(m, PAGE);
	close(fd);
}

static char shm_name[64];

static void shm_cleanup(void)
{
	if (shm_name[0])
		shm_unlink(shm_name);
}

static void posix_shm_body(void);
Test(waitfd_uring, readable_when_woken_through_posix_shm, .init = use_uring, .fini = shm_cleanup)
{
	posix_shm_body();
}
Test(waitfd_thread, readable_when_woken_through_posix_shm, .init = use_thread, .fini = shm_cleanup)
{
	posix_shm_body();
}
static void posix_shm_body(void)
{
	char base[48];
	snprintf(shm_name, sizeof(shm_name), "/%s", sk_test_base(base, sizeof(base), "waitfd"));
	int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "shm_open: %s", strerror(errno));
	cr_assert_eq(ftruncate(fd, PAGE), 0);
	uint32_t *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(m, MAP_FAILED);
	struct sk_waitfd *w = wfd_open();
	struct waker k = { .word = &m[0], .memfd = -1, .shm = shm_name, .value = 3 };

	arm_ok(w, &m[0], 0);
	int sleepers = sleepers_expected(&m[0]);
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), sleepers, "posix shm");
	expect_ready(w, "after a child woke the word through its own shm_open mapping");
	sk_waitfd_close(w);
	munmap(m, PAGE);
	cr_assert_eq(shm_unlink(shm_name), 0);
	shm_name[0] = '\0';
}

/* ---- acknowledgement and bounds ----------------------------------------- */

BOTH(rearm_clears_readiness)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };

	m[0] = 2;
	arm_ok(w, &m[0], 1); /* differs: readable */
	expect_ready(w, "after arm on a differing word");
	arm_ok(w, &m[0], 2);
	expect_quiet(w, "after re-arm on the current value");

	cr_assert_eq(sk_waitfd_signal(w), 0);
	expect_ready(w, "after signal");
	arm_ok(w, &m[0], 2);
	expect_quiet(w, "after re-arm following a signal");

	m[0] = 0;
	arm_ok(w, &m[0], 0);
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), 0, "waker");
	expect_ready(w, "after a wake");
	arm_ok(w, &m[0], 1);
	expect_quiet(w, "after re-arm following a wake");
}

BOTH(rearm_elsewhere_leaves_the_old_word_unwatched)
{
	uint32_t *a = &m[0], *b = &m[16];
	struct waker ka = { .word = a, .memfd = -1, .value = 1 };
	struct waker kb = { .word = b, .memfd = -1, .value = 1 };

	*a = 0;
	*b = 0;
	arm_ok(w, a, 0);
	sleepers_expected(a); /* the helper asleep on a, for the thread kind */
	arm_ok(w, b, 0);      /* cancels / moves off a */
	expect_quiet(w, "after re-arming on another word");
	expect_woken(child_ok(sk_test_fork(waker_main, &ka)), 0, "waker of a");
	expect_quiet(w, "after a wake of the word armed before");
	int sleepers = sleepers_expected(b);
	expect_woken(child_ok(sk_test_fork(waker_main, &kb)), sleepers, "waker of b");
	expect_ready(w, "after a wake of the armed word");
}

/* No entry of the ring's overflow list, and the CQ within its size
 * (/proc/self/fdinfo of an io_uring fd). */
static void expect_ring_not_overflowed(const struct sk_waitfd *w)
{
	char path[64], buf[4096];

	if (sk_waitfd_kind(w) != SK_WAITFD_URING)
		return;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", sk_waitfd_fd(w));
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	char *ov = strstr(buf, "CqOverflowList:");
	cr_assert_not_null(ov, "fdinfo: %s", buf);
	cr_assert_null(strstr(ov, "user_data="), "CQ overflowed: %s", ov);
	char *cqes = strstr(buf, "\nCQEs:");
	if (cqes) /* completions not yet reaped, at most the CQ size */
		cr_assert_leq(atoi(cqes + 6), 8, "%s", buf);
}

BOTH_BARE(many_arm_cycles_stay_bounded)
{
	uint32_t *m = shared_anon();
	uint32_t *a = &m[0], *b = &m[16];
	int fds0 = sk_test_fd_count(), tasks0 = tasks_now();
	struct sk_waitfd *w = wfd_open();
	int fds1 = sk_test_fd_count(), tasks1 = tasks_now();

	*a = 0;
	*b = 0;
	for (int i = 0; i < 100000; i++) {
		int r = 0;
		switch (i % 6) {
		case 0: r = sk_waitfd_arm(w, a, 0); break; /* queued */
		case 1: r = sk_waitfd_arm(w, a, 0); break; /* same: kept */
		case 2: r = sk_waitfd_arm(w, b, 0); break; /* cancels a's */
		case 3: r = sk_waitfd_arm(w, a, 7); break; /* completes at once */
		case 4: r = sk_waitfd_signal(w); break;
		case 5: r = sk_waitfd_signal(w); break;     /* idempotent */
		}
		cr_assert_eq(r, 0, "cycle %d: %s (%s)", i, strerror(-r), shmkit_errdetail());
		if (i % 10000 == 0)
			expect_ring_not_overflowed(w);
	}
	expect_ring_not_overflowed(w);
	arm_ok(w, a, 0);
	expect_quiet(w, "after the cycles and a final arm");
	cr_assert_eq(sk_test_fd_count(), fds1, "descriptors leaked");
	cr_assert_eq(tasks_now(), tasks1, "threads leaked");
	struct waker k = { .word = a, .memfd = -1, .value = 1 };
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), 0, "waker");
	expect_ready(w, "after a wake following 100000 cycles");
	expect_ring_not_overflowed(w);
	sk_waitfd_close(w);
	cr_assert_eq(sk_test_fd_count(), fds0, "descriptors left after close");
	tasks_want = tasks0;
	cr_assert(sk_test_eventually(tasks_back, NULL), "threads left after close");
	munmap(m, PAGE);
}

BOTH(signal_makes_readable_and_leaves_the_wait_armed)
{
	m[0] = 0;
	arm_ok(w, &m[0], 0);
	cr_assert_eq(sk_waitfd_signal(w), 0);
	cr_assert_eq(sk_waitfd_signal(w), 0);
	expect_ready(w, "after signal");
}

/* ---- event counts ----------------------------------------------------------- */

BOTH(arm_ec_readable_after_inc_from_child)
{
	shmkit_ec *ec = (shmkit_ec *)(void *)m;

	shmkit_ec_init(ec);
	shmkit_ec_inc(ec);
	uint32_t v = shmkit_ec_value(ec);
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, v), 0);
	cr_assert(sk_load_relaxed(&ec->word) & 1, "the waiter flag must be set");
	expect_quiet(w, "after arm_ec on an unmoved count");
	sleepers_expected(&ec->word);
	cr_assert_eq(child_ok(sk_test_fork(ec_waker, ec)), 0);
	expect_ready(w, "after shmkit_ec_inc in a child");
	cr_assert_neq(shmkit_ec_value(ec), v);
	cr_assert_eq(sk_load_relaxed(&ec->word) & 1, 0, "inc clears the flag as it wakes");

	/* Acknowledge and arm on the new value: quiet again. */
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, shmkit_ec_value(ec)), 0);
	expect_quiet(w, "after arm_ec on the new value");
}

BOTH(arm_ec_readable_at_once_when_count_moved)
{
	shmkit_ec *ec = (shmkit_ec *)(void *)m;

	shmkit_ec_init(ec);
	uint32_t v = shmkit_ec_value(ec);
	shmkit_ec_inc(ec);
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, v), 0);
	expect_ready(w, "after arm_ec on a count that already moved");
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, v + 1), 0);
	expect_quiet(w, "after arm_ec on the current count");
	/* The counter has 31 bits: old is taken modulo 2^31. */
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, (v + 1) | 0x80000000u), 0);
	expect_quiet(w, "after arm_ec with bit 31 set in old");
	cr_assert_eq(sk_waitfd_arm_ec(w, NULL, 0), -EINVAL);
}

/* A service's fd arming (arm, then test) against a notifier that
 * increments only when the flag is set (sk_ec_notify after a seq_cst
 * CAS, as the MPMC channel and the bus notify): the fd must become
 * readable; with the condition already true it is readable at once. */
struct svc {
	shmkit_ec ec;
	uint32_t cond;
};

static int svc_ready(void *arg)
{
	/* Acquire: pairs with the notifier's seq_cst CAS of cond. */
	return sk_load_acquire(&((struct svc *)arg)->cond) != 0;
}

static int svc_notifier(void *arg)
{
	struct svc *v = arg;
	uint32_t zero = 0;

	/* seq_cst: the RMW sk_ec_notify requires before it. */
	if (!sk_cas(&v->cond, &zero, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return 2;
	sk_ec_notify(&v->ec);
	return 0;
}

BOTH(service_arm_readable_after_conditional_notify)
{
	struct svc *v = (struct svc *)(void *)m;

	shmkit_ec_init(&v->ec);
	sk_store_relaxed(&v->cond, 0);
	uint32_t before = shmkit_ec_value(&v->ec);
	cr_assert_eq(sk_waitfd_service_arm(w, &v->ec, svc_ready, v), 0);
	cr_assert(sk_load_relaxed(&v->ec.word) & 1, "arming must set the waiter flag");
	expect_quiet(w, "after arming on a false condition");
	sleepers_expected(&v->ec.word);
	cr_assert_eq(child_ok(sk_test_fork(svc_notifier, v)), 0);
	expect_ready(w, "after a conditional notify in a child");
	cr_assert_eq(shmkit_ec_value(&v->ec), before + 1, "the armed flag made it increment");

	/* Condition true at arming: readable at once, whatever the count. */
	cr_assert_eq(sk_waitfd_service_arm(w, &v->ec, svc_ready, v), 0);
	expect_ready(w, "after arming on a true condition");
}

/* In a child: leave the parent's network, IPC and PID namespaces, then
 * increment the event count from PID 1 of the new PID namespace. */
static int ns_inode(const char *ns, ino_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	if (stat(path, &st))
		return -1;
	*ino = st.st_ino;
	return 0;
}

static int ns_waker(void *arg)
{
	ino_t net0, ipc0, net1, ipc1;

	if (ns_inode("net", &net0) || ns_inode("ipc", &ipc0))
		return 2;
	if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID))
		return 3;
	if (ns_inode("net", &net1) || ns_inode("ipc", &ipc1) || net1 == net0 || ipc1 == ipc0)
		return 4;
	pid_t pid = fork();
	if (pid == 0) {
		if (getpid() != 1)
			_exit(5);
		shmkit_ec_inc(arg);
		_exit(0);
	}
	return pid < 0 ? 6 : sk_test_reap(pid);
}

BOTH(waker_in_other_net_ipc_pid_namespaces)
{
	shmkit_ec *ec = (shmkit_ec *)(void *)m;

	shmkit_ec_init(ec);
	cr_assert_eq(sk_waitfd_arm_ec(w, ec, shmkit_ec_value(ec)), 0);
	sleepers_expected(&ec->word);
	int st = child_ok(sk_test_fork(ns_waker, ec));
	cr_assert_eq(st, 0, "namespace waker: status %d (3: unshare needs root)", st);
	expect_ready(w, "after an increment from other namespaces");
	cr_assert_eq(shmkit_ec_value(ec), 1);
}

/* ---- close, fork, threads ------------------------------------------------ */

static const uint32_t *nobody_word;
static int nobody_waits(void *arg)
{
	return sk_futex_wake(nobody_word, -1) == 0;
}

BOTH_BARE(close_while_armed_frees_everything)
{
	uint32_t *m = shared_anon();
	int fds0 = sk_test_fd_count(), tasks0 = tasks_now();
	struct sk_waitfd *w = wfd_open();

	cr_assert_gt(sk_test_fd_count(), fds0);
	m[0] = 0;
	arm_ok(w, &m[0], 0);
	sleepers_expected(&m[0]);
	sk_waitfd_close(w);
	cr_assert_eq(sk_test_fd_count(), fds0, "descriptors left after close");
	tasks_want = tasks0;
	cr_assert(sk_test_eventually(tasks_back, NULL), "threads left after close");
	/* Nothing waits on the word any more: the pending wait went too. */
	nobody_word = &m[0];
	cr_assert(sk_test_eventually(nobody_waits, NULL), "a wait outlived close");
	munmap(m, PAGE);
}

Test(waitfd_thread, helper_thread_exits_on_close)
{
	int tasks0 = tasks_now();

	for (int i = 0; i < 3; i++) {
		uint32_t word = 0;
		struct sk_waitfd *w = wfd_open();
		cr_assert_eq(tasks_now(), tasks0 + 1, "one helper per waitfd");
		if (i > 0)
			arm_ok(w, &word, 0); /* closed idle, then closed armed */
		if (i > 1)
			thread_asleep_on(&word);
		sk_waitfd_close(w);
		tasks_want = tasks0;
		cr_assert(sk_test_eventually(tasks_back, NULL), "helper left after close");
	}
}

static int child_uses_parents(void *arg)
{
	struct sk_waitfd *w = arg;
	uint32_t x = 0;

	if (sk_waitfd_arm(w, &x, 0) != -EBADF)
		return 2;
	if (sk_waitfd_arm_ec(w, (shmkit_ec *)(void *)&x, 0) != -EBADF)
		return 3;
	if (sk_waitfd_signal(w) != -EBADF)
		return 4;
	sk_waitfd_close(w); /* the child's copies only */
	return 0;
}

BOTH(forked_child_cannot_use_it_and_its_close_spares_the_parent)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };

	m[0] = 0;
	arm_ok(w, &m[0], 0);
	cr_assert_eq(child_ok(sk_test_fork(child_uses_parents, w)), 0);
	cr_assert_geq(fcntl(sk_waitfd_fd(w), F_GETFD), 0, "parent's fd gone");
	expect_quiet(w, "after the child closed its copy");
	int sleepers = sleepers_expected(&m[0]);
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), sleepers, "waker");
	expect_ready(w, "after a wake, the child's close notwithstanding");
}

/* The io_uring completion is posted by task work in the arming thread
 * (waitfd.h): arm in a thread that then blocks in read(2), poll from
 * another.  The blocked read must neither be lost nor fail with EINTR. */
struct armer {
	struct sk_waitfd *w;
	uint32_t *word;
	int pipe_rd;   /* -1: exit right after arming */
	uint32_t armed; /* 1 once armed (a futex word for armer_wait) */
	int result;
};

static void *armer_main(void *arg)
{
	struct armer *t = arg;
	char c;

	t->result = sk_waitfd_arm(t->w, t->word, 0);
	sk_store_release(&t->armed, 1); /* pairs with the main thread's acquire */
	sk_futex_wake(&t->armed, -1);
	if (t->result == 0 && t->pipe_rd >= 0)
		t->result = read(t->pipe_rd, &c, 1) == 1 ? 0 : -errno;
	return NULL;
}

static void armer_wait(struct armer *t)
{
	while (!sk_load_acquire(&t->armed)) /* pairs with armer_main's release */
		sk_futex_wait_until(&t->armed, 0, INT64_MAX);
}

BOTH(armed_in_a_thread_blocked_in_read)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };
	int pfd[2];
	pthread_t tid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	struct armer t = { .w = w, .word = &m[0], .pipe_rd = pfd[0] };
	m[0] = 0;
	cr_assert_eq(pthread_create(&tid, NULL, armer_main, &t), 0);
	armer_wait(&t);
	expect_quiet(w, "after the other thread armed");
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), 0, "waker");
	expect_ready(w, "while the arming thread is blocked in read");
	cr_assert_eq(write(pfd[1], "x", 1), 1);
	pthread_join(tid, NULL);
	cr_assert_eq(t.result, 0, "arming thread: %s", strerror(-t.result));
	close(pfd[0]);
	close(pfd[1]);
}

BOTH(armed_in_a_thread_that_exited)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };
	struct armer t = { .w = w, .word = &m[0], .pipe_rd = -1 };
	pthread_t tid;

	m[0] = 0;
	cr_assert_eq(pthread_create(&tid, NULL, armer_main, &t), 0);
	pthread_join(tid, NULL);
	cr_assert_eq(t.result, 0, "arming thread: %s", strerror(-t.result));
	expect_quiet(w, "after the arming thread exited");
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), 0, "waker");
	expect_ready(w, "after a wake, the arming thread gone");
}

/* ---- use from an event loop, and argument checks --------------------------- */

BOTH(epoll_sees_the_wake)
{
	struct waker k = { .word = &m[0], .memfd = -1, .value = 1 };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 42 }, got;
	int n;

	cr_assert_geq(ep, 0);
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, sk_waitfd_fd(w), &ev), 0, "%s", strerror(errno));
	m[0] = 0;
	arm_ok(w, &m[0], 0);
	cr_assert_eq(epoll_wait(ep, &got, 1, QUIET_MS), 0, "ready before the wake");
	expect_woken(child_ok(sk_test_fork(waker_main, &k)), 0, "waker");
	/* The io_uring completion is posted by task work in this thread,
	 * which may interrupt epoll_wait: retry on EINTR (waitfd.h). */
	while ((n = epoll_wait(ep, &got, 1, WAKE_BOUND_MS)) < 0 && errno == EINTR)
		;
	cr_assert_eq(n, 1, "epoll_wait: %d %s", n, strerror(errno));
	cr_assert_eq(got.data.u32, 42);
	arm_ok(w, &m[0], 1);
	cr_assert_eq(epoll_wait(ep, &got, 1, QUIET_MS), 0, "ready after the acknowledgement");
	close(ep);
}

BOTH(bad_arguments)
{
	cr_assert_eq(sk_waitfd_open(NULL), -EINVAL);
	cr_assert_eq(sk_waitfd_arm(w, NULL, 0), -EINVAL);
	cr_assert_eq(sk_waitfd_arm(w, (const uint32_t *)(const void *)((char *)m + 2), 0), -EINVAL);
	cr_assert_eq(sk_waitfd_arm(NULL, m, 0), -EINVAL);
	cr_assert_eq(sk_waitfd_signal(NULL), -EINVAL);
	sk_waitfd_close(NULL);
	if (want_kind == SK_WAITFD_URING) {
		/* An unmapped word: the kernel's read fails at submission. */
		void *hole = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(hole, MAP_FAILED);
		munmap(hole, PAGE);
		cr_assert_eq(sk_waitfd_arm(w, hole, 0), -EFAULT);
		expect_quiet(w, "after a failed arm");
	}
	m[0] = 1;
	arm_ok(w, m, 0); /* still usable */
	expect_ready(w, "after a good arm following bad ones");
}

Test(waitfd_thread, environment_selects_the_thread_kind)
{
	struct sk_waitfd *w = wfd_open(); /* asserts SK_WAITFD_THREAD */
	sk_waitfd_close(w);
}
