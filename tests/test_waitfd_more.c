/*
 * test_waitfd_more.c - the public pollable fds of the objects that wait
 * but had none: an event count (shmkit_ec_fd), a semaphore
 * (shmkit_sem_fd), a robust mutex (shmkit_mutex_fd) and a bus publisher
 * under back-pressure (shmkit_bus_fd).  All four are the waitfd of
 * src/waitfd.c, so every test runs in both suites as test_waitfd does:
 * waitfd_more_uring (SHMKIT_WAITFD=io_uring; skipped where the kernel
 * refuses it) and waitfd_more_thread.
 *
 * The condition always becomes true in ANOTHER process (a forked child
 * that dies with the test), after the fd was armed and seen quiet.  A
 * poll that expects readiness is bounded by WAKE_BOUND_MS, longer than
 * the suite timeout, so a lost wake-up fails by timeout rather than
 * passing slowly; "not readable" is a poll of QUIET_MS that must time
 * out.  Nothing asserts on elapsed time.  Bus names carry the run id and
 * are removed in .fini.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

#define WAKE_BOUND_MS 60000 /* > suite timeout: a lost wake-up times out */
#define QUIET_MS 50         /* how long "not readable" is watched */
#define RETRY_MS 100        /* the poll timeout the header asks for */
#define PAGE 4096
#define SEM_FD_ONE (1u << 16) /* sync.c: one registered fd in waiters */

static bool forced_uring;

static void use_uring(void)
{
	setenv("SHMKIT_WAITFD", "io_uring", 1);
	forced_uring = true;
}

static void use_thread(void)
{
	setenv("SHMKIT_WAITFD", "thread", 1);
	forced_uring = false;
}

TestSuite(waitfd_more_uring, .timeout = 30, .init = use_uring, .fini = sk_test_cleanup);
TestSuite(waitfd_more_thread, .timeout = 30, .init = use_thread, .fini = sk_test_cleanup);

#define BOTH(name)                                                        \
	static void name##_body(void);                                    \
	Test(waitfd_more_uring, name) { name##_body(); }                  \
	Test(waitfd_more_thread, name) { name##_body(); }                 \
	static void name##_body(void)

/* ---- helpers ------------------------------------------------------------ */

/* An fd-making call's result: skip where io_uring is refused and was
 * forced, else it must be an fd. */
static int fd_ok(int r, const char *what)
{
	if (forced_uring && (r == -ENOSYS || r == -EPERM || r == -EACCES || r == -EOPNOTSUPP ||
	                     r == -EINVAL))
		cr_skip_test("io_uring futex wait unavailable here: %s", strerror(-r));
	cr_assert_geq(r, 0, "%s: %s (%s)", what, strerror(-r), shmkit_errdetail());
	return r;
}

/* 1 if fd is readable within ms, 0 if not. */
static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	cr_assert_geq(r, 0, "poll: %s", strerror(errno));
	cr_assert_eq(p.revents & (POLLERR | POLLNVAL), 0, "revents %#x", p.revents);
	return r == 1 && (p.revents & POLLIN);
}

static void expect_quiet(int fd, const char *when)
{
	cr_assert_eq(readable(fd, QUIET_MS), 0, "readable %s", when);
}

static void expect_ready(int fd, const char *when)
{
	cr_assert_eq(readable(fd, WAKE_BOUND_MS), 1, "not readable %s", when);
}

static void ack_ok(int r, const char *what)
{
	cr_assert_eq(r, 0, "%s: %s (%s)", what, strerror(-r), shmkit_errdetail());
}

static void *shared_page(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static int child_status(pid_t pid)
{
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	return sk_test_reap(pid);
}

static int tasks_now(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The handle's fd is gone with it: the number is closed, no fd and no
 * thread is left (the helper thread is joined by close). */
static void expect_gone(int fd, int fds0, int tasks0)
{
	errno = 0;
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "fd %d still open after close", fd);
	cr_assert_eq(errno, EBADF);
	cr_assert_eq(sk_test_fd_count(), fds0, "fds left behind");
	cr_assert_eq(tasks_now(), tasks0, "a helper thread outlived close");
}

static int say(int fd, char c)
{
	return write(fd, &c, 1) == 1 ? 0 : -1;
}

/* Fork fn(arg) with a command pipe cmd (the child reads cmd[0]) and an
 * answer pipe rep (it writes rep[1]); its first answer must be hello. */
static pid_t piped_child(int cmd[2], int rep[2], int (*fn)(void *arg), void *arg, char hello,
                         const char *what)
{
	char c = 0;

	cr_assert_eq(pipe(cmd), 0);
	cr_assert_eq(pipe(rep), 0);
	pid_t pid = sk_test_fork(fn, arg);
	cr_assert_gt(pid, 0);
	close(cmd[0]);
	close(rep[1]);
	cr_assert_eq(read(rep[0], &c, 1), 1, "the %s child did not start", what);
	cr_assert_eq(c, hello);
	return pid;
}

/* The child's next answer, which must be want. */
static void piped_answer(int rep0, char want, const char *what)
{
	char c = 0;

	cr_assert_eq(read(rep0, &c, 1), 1, "the %s child died", what);
	cr_assert_eq(c, want);
}

/* Close our pipe ends (EOF ends the child) and reap it. */
static int piped_end(int cmd1, int rep0, pid_t pid)
{
	close(cmd1);
	close(rep0);
	return sk_test_reap(pid);
}

/* ---- event count -------------------------------------------------------- */

static int ec_inc_child(void *arg)
{
	shmkit_ec_inc(arg);
	return 0;
}

BOTH(ec_fd_readable_when_another_process_increments)
{
	shmkit_ec *ec = shared_page();
	shmkit_syncfd *f = NULL;

	shmkit_ec_init(ec);
	int fd = fd_ok(shmkit_ec_fd(&f, ec, 0), "shmkit_ec_fd");
	cr_assert_not_null(f);
	expect_quiet(fd, "before anyone incremented");
	cr_assert_eq(child_status(sk_test_fork(ec_inc_child, ec)), 0);
	expect_ready(fd, "after a child incremented");
	expect_ready(fd, "a second time (level-triggered until the ack)");
	cr_assert_eq(shmkit_ec_value(ec), 1);

	ack_ok(shmkit_ec_ack_fd(f, 1), "ack on the value seen");
	expect_quiet(fd, "after an ack on the current value");
	cr_assert_eq(child_status(sk_test_fork(ec_inc_child, ec)), 0);
	expect_ready(fd, "after a second child incremented");

	ack_ok(shmkit_ec_ack_fd(f, 0), "ack on a value already passed");
	expect_ready(fd, "at once: the count differs from old");
	/* Modulo 2^31: old + 2^31 is old. */
	ack_ok(shmkit_ec_ack_fd(f, 2u + (1u << 31)), "ack modulo 2^31");
	expect_quiet(fd, "after an ack on the current value modulo 2^31");
	cr_assert_eq(shmkit_syncfd_close(f), 0);
	munmap(ec, PAGE);
}

BOTH(ec_fd_readable_at_once_when_already_moved)
{
	shmkit_ec *ec = shared_page();
	shmkit_syncfd *f = NULL;

	shmkit_ec_init(ec);
	shmkit_ec_inc(ec);
	int fd = fd_ok(shmkit_ec_fd(&f, ec, 0), "shmkit_ec_fd");
	expect_ready(fd, "on an old value already passed");
	shmkit_syncfd_close(f);
	munmap(ec, PAGE);
}

/* ---- semaphore ---------------------------------------------------------- */

static int sem_post2_child(void *arg)
{
	return shmkit_sem_post(arg) || shmkit_sem_post(arg);
}

BOTH(sem_fd_readable_when_another_process_posts)
{
	shmkit_sem *s = shared_page();
	shmkit_syncfd *f = NULL;

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	int fd = fd_ok(shmkit_sem_fd(&f, s), "shmkit_sem_fd");
	/* White box: the fd is registered in the upper half of waiters. */
	cr_assert_eq(s->waiters, SEM_FD_ONE);
	expect_quiet(fd, "while the count is 0");
	ack_ok(shmkit_sem_ack_fd(f), "ack at count 0");
	expect_quiet(fd, "after an ack at count 0");
	cr_assert_eq(child_status(sk_test_fork(sem_post2_child, s)), 0);
	expect_ready(fd, "after a child posted");

	cr_assert_eq(shmkit_sem_wait(s, 0), 0);
	ack_ok(shmkit_sem_ack_fd(f), "ack with a unit left");
	expect_ready(fd, "at once after the ack: a unit remains");
	cr_assert_eq(shmkit_sem_wait(s, 0), 0);
	ack_ok(shmkit_sem_ack_fd(f), "ack with none left");
	expect_quiet(fd, "after the last unit was taken and acked");
	cr_assert_eq(shmkit_sem_wait(s, 0), -EAGAIN);

	cr_assert_eq(shmkit_syncfd_close(f), 0);
	cr_assert_eq(s->waiters, 0, "close did not unregister the fd");
	munmap(s, PAGE);
}

BOTH(sem_fd_readable_at_once_with_units)
{
	shmkit_sem *s = shared_page();
	shmkit_syncfd *f = NULL;

	cr_assert_eq(shmkit_sem_init(s, 1), 0);
	int fd = fd_ok(shmkit_sem_fd(&f, s), "shmkit_sem_fd");
	expect_ready(fd, "at open with a unit there");
	shmkit_syncfd_close(f);
	munmap(s, PAGE);
}

static shmkit_syncfd *inherited;
static int close_inherited_child(void *arg)
{
	/* A forked child cannot arm the parent's fd; closing its copy
	 * leaves the parent's registration and fd alone. */
	if (shmkit_sem_ack_fd(inherited) != -EBADF)
		return 1;
	return shmkit_syncfd_close(inherited) ? 2 : 0;
}

BOTH(sem_fd_in_a_forked_child)
{
	shmkit_sem *s = shared_page();

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	int fd = fd_ok(shmkit_sem_fd(&inherited, s), "shmkit_sem_fd");
	cr_assert_eq(child_status(sk_test_fork(close_inherited_child, NULL)), 0);
	cr_assert_eq(s->waiters, SEM_FD_ONE, "a child's close unregistered the parent's fd");
	expect_quiet(fd, "after the child closed its copy");
	cr_assert_eq(child_status(sk_test_fork(sem_post2_child, s)), 0);
	expect_ready(fd, "the parent's fd after a post");
	shmkit_syncfd_close(inherited);
	munmap(s, PAGE);
}

BOTH(sem_fd_refuses_past_its_registration_bound)
{
	shmkit_sem *s = shared_page();
	shmkit_syncfd *f = NULL;

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	s->waiters = 65534u * SEM_FD_ONE; /* as many fds as it takes */
	int fds0 = sk_test_fd_count();
	cr_assert_eq(shmkit_sem_fd(&f, s), -EUSERS);
	cr_assert_null(f, "*out set on failure");
	cr_assert_eq(s->waiters, 65534u * SEM_FD_ONE);
	cr_assert_eq(sk_test_fd_count(), fds0);
	munmap(s, PAGE);
}

/* ---- mutex -------------------------------------------------------------- */


#define MUTEX_FD_OFF 56 /* sync.c: the count of registered fds in the mutex */
#define FUTEX_WAITERS_BIT 0x80000000u

static uint32_t *mutex_fds(shmkit_mutex *m)
{
	return (uint32_t *)(void *)(m->opaque + MUTEX_FD_OFF);
}

/* A lock holder in another process, driven over a pipe: it locks and says
 * 'l'; then 'u' unlocks (says 'u'); 'x' or EOF ends it still holding the
 * lock (a dead owner). */
struct holdkid {
	shmkit_mutex *m;
	int cmd[2], rep[2];
	pid_t pid;
};

static int holdkid_main(void *arg)
{
	struct holdkid *k = arg;
	char c;

	close(k->cmd[1]);
	close(k->rep[0]);
	if (shmkit_mutex_lock(k->m, -1) || say(k->rep[1], 'l'))
		return 3;
	while (read(k->cmd[0], &c, 1) == 1 && c != 'x') {
		if (c == 'u' && shmkit_mutex_unlock(k->m))
			return 4;
		if (say(k->rep[1], c))
			return 5;
	}
	return 0; /* exits holding the lock unless told 'u' before */
}

static void holdkid_start(struct holdkid *k, shmkit_mutex *m)
{
	k->m = m;
	k->pid = piped_child(k->cmd, k->rep, holdkid_main, k, 'l', "holder");
}

static void holdkid_do(struct holdkid *k, char c)
{
	cr_assert_eq(say(k->cmd[1], c), 0);
	piped_answer(k->rep[0], c, "holder");
}

static int holdkid_end(struct holdkid *k)
{
	return piped_end(k->cmd[1], k->rep[0], k->pid);
}

static shmkit_mutex *mutex_make(void)
{
	shmkit_mutex *m = shared_page();
	cr_assert_eq(shmkit_mutex_init(m), 0);
	return m;
}

BOTH(mutex_fd_readable_when_another_process_unlocks)
{
	shmkit_mutex *m = mutex_make();
	shmkit_syncfd *f = NULL;
	struct holdkid k;

	holdkid_start(&k, m);
	int fd = fd_ok(shmkit_mutex_fd(&f, m), "shmkit_mutex_fd");
	cr_assert_not_null(f);
	cr_assert_eq(*mutex_fds(m), 1, "the fd is not registered in the mutex");
	expect_quiet(fd, "while another process holds the mutex");
	ack_ok(shmkit_mutex_ack_fd(f), "ack while held");
	expect_quiet(fd, "after an ack while held");
	holdkid_do(&k, 'u');
	expect_ready(fd, "after the holder unlocked");
	expect_ready(fd, "a second time (level-triggered until the ack)");

	cr_assert_eq(shmkit_mutex_lock(m, 0), 0);
	ack_ok(shmkit_mutex_ack_fd(f), "ack after taking the lock");
	expect_quiet(fd, "while this process holds the mutex");
	cr_assert_eq(shmkit_mutex_unlock(m), 0);
	expect_ready(fd, "after this process unlocked");
	ack_ok(shmkit_mutex_ack_fd(f), "ack while free");
	expect_ready(fd, "at once after an ack: the mutex is free");

	cr_assert_eq(holdkid_end(&k), 0);
	cr_assert_eq(shmkit_syncfd_close(f), 0);
	cr_assert_eq(*mutex_fds(m), 0, "close did not unregister the fd");
	munmap(m, PAGE);
}

BOTH(mutex_fd_readable_at_once_when_free)
{
	shmkit_mutex *m = mutex_make();
	shmkit_syncfd *f = NULL;

	int fd = fd_ok(shmkit_mutex_fd(&f, m), "shmkit_mutex_fd");
	expect_ready(fd, "at open on a free mutex");
	shmkit_syncfd_close(f);
	munmap(m, PAGE);
}

BOTH(mutex_fd_finds_a_dead_owner_on_ack)
{
	shmkit_mutex *m = mutex_make();
	shmkit_syncfd *f = NULL;
	struct holdkid k;

	holdkid_start(&k, m);
	int fd = fd_ok(shmkit_mutex_fd(&f, m), "shmkit_mutex_fd");
	expect_quiet(fd, "while the owner lives");
	cr_assert_eq(say(k.cmd[1], 'x'), 0);
	cr_assert_eq(holdkid_end(&k), 0); /* dead, holding the lock */
	/* Nobody slept on the lock, so nothing woke the fd: the ack looks. */
	ack_ok(shmkit_mutex_ack_fd(f), "ack after the owner died");
	expect_ready(fd, "after an ack: the owner is dead");
	cr_assert_eq(shmkit_mutex_lock(m, 0), -EOWNERDEAD);
	cr_assert_eq(shmkit_mutex_consistent(m), 0);
	ack_ok(shmkit_mutex_ack_fd(f), "ack after recovering the lock");
	expect_quiet(fd, "while the recovered lock is held");
	cr_assert_eq(shmkit_mutex_unlock(m), 0);
	expect_ready(fd, "after the recovered lock was released");
	shmkit_syncfd_close(f);
	munmap(m, PAGE);
}

static int mutex_sleeper_child(void *arg)
{
	/* Sleeps in the lock (the parent holds it); a lost wake-up ends
	 * the test by its timeout first. */
	if (shmkit_mutex_lock(arg, (int64_t)WAKE_BOUND_MS * 1000000))
		return 1;
	return shmkit_mutex_unlock(arg) ? 2 : 0;
}

static int sleeper_queued(void *arg)
{
	return (__atomic_load_n((uint32_t *)arg, __ATOMIC_ACQUIRE) & FUTEX_WAITERS_BIT) != 0;
}

/* An fd queued on the lock word must not take the one wake glibc's unlock
 * gives a real sleeper: both must wake. */
BOTH(mutex_fd_and_a_sleeper_both_wake)
{
	shmkit_mutex *m = mutex_make();
	shmkit_syncfd *f = NULL;

	cr_assert_eq(shmkit_mutex_lock(m, -1), 0);
	int fd = fd_ok(shmkit_mutex_fd(&f, m), "shmkit_mutex_fd");
	pid_t pid = sk_test_fork(mutex_sleeper_child, m);
	cr_assert_gt(pid, 0);
	/* White box: the sleeper set FUTEX_WAITERS in the lock word. */
	cr_assert(sk_test_eventually(sleeper_queued, m->opaque), "the child never slept on the lock");
	/* io_uring kind: the fd's wait is queued before the sleeper's, so
	 * glibc's lone wake(1) lands on the fd and would strand the sleeper.
	 * The thread kind's helper may have seen the sleeper change the word
	 * (spurious readiness) and re-queues every slice anyway: ack, which
	 * re-arms on the word as it is now. */
	if (!forced_uring)
		ack_ok(shmkit_mutex_ack_fd(f), "ack once the sleeper is queued");
	expect_quiet(fd, "while this process holds the mutex");
	cr_assert_eq(shmkit_mutex_unlock(m), 0);
	cr_assert_eq(child_status(pid), 0, "the sleeper did not get the lock");
	expect_ready(fd, "after the unlock (and the sleeper's)");
	shmkit_syncfd_close(f);
	munmap(m, PAGE);
}

BOTH(mutex_fd_refuses_past_its_registration_bound)
{
	shmkit_mutex *m = mutex_make();
	shmkit_syncfd *f = NULL;

	*mutex_fds(m) = 65534u; /* as many fds as it takes */
	int fds0 = sk_test_fd_count();
	cr_assert_eq(shmkit_mutex_fd(&f, m), -EUSERS);
	cr_assert_null(f, "*out set on failure");
	cr_assert_eq(*mutex_fds(m), 65534u);
	cr_assert_eq(sk_test_fd_count(), fds0);
	/* A bad count only makes unlocks wake all. */
	cr_assert_eq(shmkit_mutex_lock(m, 0), 0);
	cr_assert_eq(shmkit_mutex_unlock(m), 0);
	munmap(m, PAGE);
}

BOTH(mutex_fd_bad_arguments_and_close)
{
	shmkit_mutex *m = mutex_make();
	shmkit_sem *s = (shmkit_sem *)((char *)m + 128);
	shmkit_syncfd *fm = NULL, *fs = NULL;

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	cr_assert_eq(shmkit_mutex_fd(NULL, m), -EINVAL);
	cr_assert_eq(shmkit_mutex_fd(&fm, NULL), -EINVAL);
	cr_assert_eq(shmkit_mutex_fd(&fm, (shmkit_mutex *)((char *)m + 4)), -EINVAL);
	cr_assert_null(fm, "*out set on failure");
	cr_assert_eq(shmkit_mutex_ack_fd(NULL), -EINVAL);

	int fds0 = sk_test_fd_count(), tasks0 = tasks_now();
	int fd = fd_ok(shmkit_mutex_fd(&fm, m), "shmkit_mutex_fd");
	fd_ok(shmkit_sem_fd(&fs, s), "shmkit_sem_fd");
	cr_assert_eq(shmkit_mutex_ack_fd(fs), -EINVAL, "mutex ack on a semaphore's fd");
	cr_assert_eq(shmkit_sem_ack_fd(fm), -EINVAL, "sem ack on a mutex's fd");
	cr_assert_eq(shmkit_ec_ack_fd(fm, 0), -EINVAL, "ec ack on a mutex's fd");
	cr_assert_eq(shmkit_syncfd_close(fs), 0);
	cr_assert_eq(s->waiters, 0);
	cr_assert_eq(*mutex_fds(m), 1, "a semaphore's close touched the mutex");
	cr_assert_eq(shmkit_syncfd_close(fm), 0);
	expect_gone(fd, fds0, tasks0);
	cr_assert_eq(*mutex_fds(m), 0, "close did not unregister the fd");
	munmap(m, PAGE);
}

/* ---- both: bad arguments, nothing left on close -------------------------- */

/* A process killed with a semaphore fd and a mutex fd open leaves its
 * registrations counted (no close ran): benign by design (sync.c, "Pollable
 * fds") - posts and unlocks then wake all.  The objects go on working for
 * everyone: a sleeper gets its unit, the lock passes, new fds work. */
static int open_fds_and_die_child(void *arg)
{
	shmkit_sem *s = arg;
	shmkit_mutex *m = (shmkit_mutex *)(void *)((char *)arg + 256);
	shmkit_syncfd *fs = NULL, *fm = NULL;

	if (shmkit_sem_fd(&fs, s) < 0 || shmkit_mutex_fd(&fm, m) < 0)
		return 1;
	kill(getpid(), SIGKILL);
	return 2;
}

static int sem_sleeper_child(void *arg)
{
	return shmkit_sem_wait(arg, 10 * 1000000000LL) ? 1 : 0;
}

BOTH(fd_holder_killed_leaves_semaphore_and_mutex_working)
{
	shmkit_sem *s = shared_page();
	shmkit_mutex *m = (shmkit_mutex *)(void *)((char *)s + 256);
	shmkit_syncfd *f = NULL;

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	cr_assert_eq(shmkit_mutex_init(m), 0);
	cr_assert_eq(child_status(sk_test_fork(open_fds_and_die_child, s)), 128 + SIGKILL);
	cr_assert_eq(s->waiters, SEM_FD_ONE, "the dead process's semaphore fd is still counted");
	cr_assert_eq(*mutex_fds(m), 1, "the dead process's mutex fd is still counted");
	pid_t sleeper = sk_test_fork(sem_sleeper_child, s);
	cr_assert_gt(sleeper, 0);
	cr_assert_eq(shmkit_sem_post(s), 0);
	cr_assert_eq(child_status(sleeper), 0, "a sleeper did not get the unit");
	int fd = fd_ok(shmkit_sem_fd(&f, s), "shmkit_sem_fd after the death");
	expect_quiet(fd, "count 0");
	cr_assert_eq(child_status(sk_test_fork(sem_post2_child, s)), 0);
	expect_ready(fd, "after a post");
	shmkit_syncfd_close(f);
	cr_assert_eq(shmkit_mutex_lock(m, 0), 0);
	cr_assert_eq(shmkit_mutex_unlock(m), 0);
	fd = fd_ok(shmkit_mutex_fd(&f, m), "shmkit_mutex_fd after the death");
	expect_ready(fd, "a free mutex");
	shmkit_syncfd_close(f);
	munmap(s, PAGE);
}

BOTH(syncfd_bad_arguments)
{
	shmkit_ec *ec = shared_page();
	shmkit_sem *s = (shmkit_sem *)((char *)ec + 64);
	shmkit_syncfd *fe = NULL, *fs = NULL;

	shmkit_ec_init(ec);
	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	cr_assert_eq(shmkit_ec_fd(NULL, ec, 0), -EINVAL);
	cr_assert_eq(shmkit_ec_fd(&fe, NULL, 0), -EINVAL);
	cr_assert_eq(shmkit_sem_fd(NULL, s), -EINVAL);
	cr_assert_eq(shmkit_sem_fd(&fs, NULL), -EINVAL);
	cr_assert_eq(shmkit_sem_fd(&fs, (shmkit_sem *)((char *)s + 1)), -EINVAL);
	cr_assert(fe == NULL && fs == NULL, "*out set on failure");
	cr_assert_eq(shmkit_ec_ack_fd(NULL, 0), -EINVAL);
	cr_assert_eq(shmkit_sem_ack_fd(NULL), -EINVAL);
	cr_assert_eq(shmkit_syncfd_close(NULL), 0);

	fd_ok(shmkit_ec_fd(&fe, ec, 0), "shmkit_ec_fd");
	fd_ok(shmkit_sem_fd(&fs, s), "shmkit_sem_fd");
	cr_assert_eq(shmkit_sem_ack_fd(fe), -EINVAL, "sem ack on an event count's fd");
	cr_assert_eq(shmkit_ec_ack_fd(fs, 0), -EINVAL, "ec ack on a semaphore's fd");
	shmkit_syncfd_close(fe);
	shmkit_syncfd_close(fs);
	munmap(ec, PAGE);
}

BOTH(syncfd_closed_with_the_handle)
{
	shmkit_ec *ec = shared_page();
	shmkit_sem *s = (shmkit_sem *)((char *)ec + 64);
	shmkit_syncfd *f = NULL;

	shmkit_ec_init(ec);
	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	int fds0 = sk_test_fd_count(), tasks0 = tasks_now();
	int fd = fd_ok(shmkit_ec_fd(&f, ec, 0), "shmkit_ec_fd");
	cr_assert_eq(shmkit_syncfd_close(f), 0);
	expect_gone(fd, fds0, tasks0);
	fd = fd_ok(shmkit_sem_fd(&f, s), "shmkit_sem_fd");
	cr_assert_eq(shmkit_syncfd_close(f), 0);
	expect_gone(fd, fds0, tasks0);
	cr_assert_eq(s->waiters, 0);
	munmap(ec, PAGE);
}

/* ---- bus publisher ------------------------------------------------------- */

#define BUS_CAP 4

/* A subscriber in another process, driven over a pipe: it subscribes and
 * says 'r'; then 'd' drains what is there (says 'd'), 'u' unsubscribes
 * (says 'u'); EOF or 'q' ends it. */
struct subkid {
	const char *name;
	int cmd[2], rep[2];
	pid_t pid;
};

static int subkid_main(void *arg)
{
	struct subkid *k = arg;
	shmkit_bus *bus = NULL;
	shmkit_sub *sub = NULL;
	char c, buf[64];

	close(k->cmd[1]);
	close(k->rep[0]);
	if (shmkit_bus_open(&bus, k->name, NULL) || shmkit_bus_subscribe(&sub, bus, NULL))
		return 3;
	if (say(k->rep[1], 'r'))
		return 4;
	while (read(k->cmd[0], &c, 1) == 1 && c != 'q') {
		if (c == 'd') {
			ssize_t n;
			while ((n = shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0)) >= 0)
				;
			if (n != -EAGAIN)
				return 5;
		} else if (c == 'u') {
			if (shmkit_bus_unsubscribe(sub))
				return 6;
			sub = NULL;
		}
		if (say(k->rep[1], c))
			return 7;
	}
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	return 0;
}

static void subkid_start(struct subkid *k, const char *name)
{
	k->name = name;
	k->pid = piped_child(k->cmd, k->rep, subkid_main, k, 'r', "subscriber");
}

/* Send a command; the child's answer is read by subkid_answer. */
static void subkid_send(struct subkid *k, char c)
{
	cr_assert_eq(say(k->cmd[1], c), 0);
}

static void subkid_answer(struct subkid *k, char want)
{
	piped_answer(k->rep[0], want, "subscriber");
}

static int subkid_end(struct subkid *k)
{
	return piped_end(k->cmd[1], k->rep[0], k->pid);
}

static shmkit_bus *bus_make(const char *name, int delivery)
{
	struct shmkit_bus_opts o = { .capacity = BUS_CAP, .max_msg = 64, .delivery = delivery };
	shmkit_bus *bus = NULL;
	int r = shmkit_bus_create(&bus, name, &o);

	cr_assert_eq(r, 0, "bus create: %s (%s)", strerror(-r), shmkit_errdetail());
	return bus;
}

/* Publish with timeout 0 until the bus is full; how many went in. */
static int fill(shmkit_bus *bus)
{
	int n = 0, r;

	while ((r = shmkit_bus_publish(bus, "m", 1, 0)) == 0)
		cr_assert_leq(++n, BUS_CAP, "a back-pressure bus took more than its capacity");
	cr_assert_eq(r, -EAGAIN, "publish: %s", strerror(-r));
	return n;
}

/* A back-pressure bus held back by a subscriber in another process: the
 * bus is full, its publisher fd made and seen quiet.  The fd. */
static int held_back(shmkit_bus **bus, struct subkid *k)
{
	const char *name = sk_test_new_name("posix");

	*bus = bus_make(name, SHMKIT_BUS_BACKPRESSURE);
	subkid_start(k, name);
	cr_assert_eq(fill(*bus), BUS_CAP);
	int fd = fd_ok(shmkit_bus_fd(*bus, SHMKIT_BUS_POLLOUT), "shmkit_bus_fd");
	expect_quiet(fd, "while the subscriber is a whole ring behind");
	return fd;
}

BOTH(bus_fd_readable_when_a_subscriber_in_another_process_catches_up)
{
	shmkit_bus *bus;
	struct subkid k;
	int fd = held_back(&bus, &k);

	cr_assert_eq(shmkit_bus_fd(bus, SHMKIT_BUS_POLLOUT), fd, "one fd per handle");
	ack_ok(shmkit_bus_ack_fd(bus), "ack while full");
	expect_quiet(fd, "after an ack while full");

	subkid_send(&k, 'd');
	expect_ready(fd, "after the subscriber drained");
	subkid_answer(&k, 'd');
	ack_ok(shmkit_bus_ack_fd(bus), "ack with room");
	expect_ready(fd, "at once after the ack: there is room");
	cr_assert_eq(fill(bus), BUS_CAP, "the room the fd announced");
	ack_ok(shmkit_bus_ack_fd(bus), "ack when full again");
	expect_quiet(fd, "full again");

	subkid_send(&k, 'd');
	expect_ready(fd, "after a second drain");
	subkid_answer(&k, 'd');
	cr_assert_eq(subkid_end(&k), 0);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

BOTH(bus_fd_readable_when_the_subscriber_unsubscribes)
{
	shmkit_bus *bus;
	struct subkid k;
	int fd = held_back(&bus, &k);

	subkid_send(&k, 'u'); /* it lives on, unsubscribed: no cursor moves */
	expect_ready(fd, "after the subscriber left");
	subkid_answer(&k, 'u');
	ack_ok(shmkit_bus_ack_fd(bus), "ack");
	cr_assert_eq(shmkit_bus_publish(bus, "m", 1, 0), 0);
	cr_assert_eq(subkid_end(&k), 0);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

BOTH(bus_fd_a_dead_subscriber_is_noticed_on_ack)
{
	shmkit_bus *bus;
	struct subkid k;
	int fd = held_back(&bus, &k);

	cr_assert_eq(kill(k.pid, SIGKILL), 0);
	cr_assert_eq(subkid_end(&k), 128 + SIGKILL);
	/* As the header says: poll with a timeout, ack on timeout.  Bounded
	 * by the suite's timeout; the dead must be found. */
	while (!readable(fd, RETRY_MS))
		ack_ok(shmkit_bus_ack_fd(bus), "ack on timeout");
	ack_ok(shmkit_bus_ack_fd(bus), "ack");
	cr_assert_eq(shmkit_bus_publish(bus, "m", 1, 0), 0, "room after the dead was reaped");
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

BOTH(bus_fd_overwrite_bus_is_always_ready)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = bus_make(name, SHMKIT_BUS_OVERWRITE);
	shmkit_sub *sub = NULL;

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	for (int i = 0; i < 2 * BUS_CAP; i++) /* laps the subscriber */
		cr_assert_eq(shmkit_bus_publish(bus, "m", 1, 0), 0);
	int fd = fd_ok(shmkit_bus_fd(bus, SHMKIT_BUS_POLLOUT), "shmkit_bus_fd");
	expect_ready(fd, "an overwrite publisher never waits");
	ack_ok(shmkit_bus_ack_fd(bus), "ack");
	expect_ready(fd, "after an ack");
	cr_assert_eq(shmkit_bus_publish(bus, "m", 1, 0), 0);
	cr_assert_eq(shmkit_bus_unsubscribe(sub), 0);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

BOTH(bus_fd_bad_arguments)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = bus_make(name, SHMKIT_BUS_BACKPRESSURE);

	cr_assert_eq(shmkit_bus_fd(NULL, SHMKIT_BUS_POLLOUT), -EINVAL);
	cr_assert_eq(shmkit_bus_fd(bus, 0), -EINVAL);
	cr_assert_eq(shmkit_bus_fd(bus, POLLIN), -EINVAL, "a bus handle only publishes");
	cr_assert_eq(shmkit_bus_fd(bus, POLLIN | POLLOUT), -EINVAL);
	cr_assert_eq(shmkit_bus_ack_fd(NULL), -EINVAL);
	cr_assert_eq(shmkit_bus_ack_fd(bus), -EINVAL, "ack before shmkit_bus_fd");
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

BOTH(bus_fd_closed_with_the_bus)
{
	const char *name = sk_test_new_name("posix");
	int fds0 = sk_test_fd_count(), tasks0 = tasks_now();
	shmkit_bus *bus = bus_make(name, SHMKIT_BUS_BACKPRESSURE);
	int fd = fd_ok(shmkit_bus_fd(bus, SHMKIT_BUS_POLLOUT), "shmkit_bus_fd");

	expect_ready(fd, "with no subscriber there is room");
	cr_assert_eq(shmkit_bus_close(bus), 0);
	expect_gone(fd, fds0, tasks0);
}
