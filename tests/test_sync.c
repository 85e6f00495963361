/*
 * test_sync.c - futex, event count, robust mutex, semaphore and liveness
 * across processes.
 *
 * Shared objects live in MAP_SHARED|MAP_ANONYMOUS memory; children are
 * forked, report through their exit status (never through Criterion
 * asserts) and are always reaped.  Each child asks for SIGKILL if the test
 * process dies, so a failed assertion leaves nothing behind.  Every wait
 * is bounded; nothing asserts on elapsed time.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "wait.h"

#define MS 1000000LL
#define SEC 1000000000LL
/* Bound on every wait that expects a wake-up.  It is longer than the
 * suite timeout on purpose: our waits re-check their condition when the
 * deadline passes, so a lost wake-up under a short bound would merely be
 * slow and the test would pass; with this bound it fails by timeout. */
#define WAKE_BOUND (60 * SEC)
#define POLL_BOUND (10 * SEC) /* how long to watch a child fall asleep */

TestSuite(sync, .timeout = 30); /* keep below WAKE_BOUND */

/* ---- helpers ---------------------------------------------------------- */

static void *shared_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

/* Fork a child running fn(arg); its return value is the exit status. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		_exit(fn(arg));
	}
	return pid;
}

static int reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/* Reap every child first, then assert, so none is left on failure. */
static void reap_all_ok(const pid_t *pids, int n)
{
	int st[64];

	cr_assert_leq(n, 64);
	for (int i = 0; i < n; i++)
		st[i] = reap(pids[i]);
	for (int i = 0; i < n; i++)
		cr_assert(st[i] != -1 && WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0,
		          "child %d: status %#x", (int)pids[i], st[i]);
}

static void reap_ok(pid_t pid)
{
	reap_all_ok(&pid, 1);
}

/* State letter of a process from /proc/PID/stat, '?' if unreadable. */
static char proc_state(pid_t pid)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Wait (bounded) until pid is asleep, so a following wake has a sleeper
 * to find.  Not an assertion: returns false if it never was seen asleep. */
static bool wait_sleeping(pid_t pid)
{
	int64_t end = sk_now_ns() + POLL_BOUND;

	while (sk_now_ns() < end) {
		if (proc_state(pid) == 'S')
			return true;
		usleep(1000);
	}
	return false;
}

/* A start gate: children block until the parent opens it. */
static int gate_wait(uint32_t *gate)
{
	int64_t end = sk_now_ns() + WAKE_BOUND;

	while (sk_load_acquire(gate) == 0) { /* pairs with gate_open's release */
		if (sk_now_ns() >= end)
			return -ETIMEDOUT;
		shmkit_futex_wait(gate, 0, WAKE_BOUND);
	}
	return 0;
}

static void gate_open(uint32_t *gate)
{
	sk_store_release(gate, 1); /* pairs with gate_wait's acquire load */
	shmkit_futex_wake(gate, -1);
}

/* ---- futex ------------------------------------------------------------ */

Test(sync, futex_wait_times_out)
{
	uint32_t *w = shared_alloc(4096);

	*w = 5;
	cr_assert_eq(shmkit_futex_wait(w, 5, 20 * MS), -ETIMEDOUT);
	cr_assert_eq(shmkit_futex_wait(w, 5, 0), -EAGAIN);
	munmap(w, 4096);
}

Test(sync, futex_wait_returns_at_once_when_value_differs)
{
	uint32_t *w = shared_alloc(4096);

	*w = 5;
	/* Forever, yet must return: the value is not the expected one. */
	cr_assert_eq(shmkit_futex_wait(w, 4, -1), 0);
	cr_assert_eq(shmkit_futex_wait(w, 4, 0), 0);
	cr_assert_eq(shmkit_futex_wait(NULL, 4, 0), -EINVAL);
	cr_assert_eq(shmkit_futex_wait((uint32_t *)((char *)w + 1), 4, 0), -EINVAL);
	cr_assert_eq(shmkit_futex_wake(NULL, 1), -EINVAL);
	cr_assert_eq(shmkit_futex_wake(w, 0), 0);
	cr_assert_eq(shmkit_futex_wake(w, 1), 0, "nobody waits");
	munmap(w, 4096);
}

static int futex_waiter(void *arg)
{
	uint32_t *w = arg;
	int64_t end = sk_now_ns() + WAKE_BOUND;

	while (sk_load_acquire(w) == 0) { /* pairs with the parent's release */
		int r = shmkit_futex_wait(w, 0, end - sk_now_ns());
		if (r == -ETIMEDOUT)
			return 2;
		if (r != 0 && sk_now_ns() >= end)
			return 3;
	}
	return sk_load_acquire(w) == 1 ? 0 : 4;
}

Test(sync, futex_wake_across_fork)
{
	uint32_t *w = shared_alloc(4096);
	pid_t pid = spawn(futex_waiter, w);
	bool asleep = wait_sleeping(pid);

	sk_store_release(w, 1); /* pairs with futex_waiter's acquire load */
	int woken = shmkit_futex_wake(w, 1);
	reap_ok(pid);
	cr_assert_geq(woken, 0);
	if (asleep) /* the only way the child sleeps is in the futex */
		cr_assert_eq(woken, 1, "a shared futex must reach the child");
	munmap(w, 4096);
}

/* ---- event count ------------------------------------------------------ */

Test(sync, ec_inc_without_waiters_keeps_flag_clear)
{
	shmkit_ec *ec = shared_alloc(4096);

	shmkit_ec_init(ec);
	cr_assert_eq(shmkit_ec_value(ec), 0);
	for (int i = 0; i < 3; i++)
		shmkit_ec_inc(ec);
	cr_assert_eq(shmkit_ec_value(ec), 3);
	cr_assert_eq(ec->word & 1, 0, "no waiter: the flag must stay clear");
	cr_assert_eq(ec->word, 3u << 1);

	/* A waiter that timed out may leave the flag set; the next inc
	 * clears it. */
	cr_assert_eq(shmkit_ec_wait(ec, 3, 5 * MS), -ETIMEDOUT);
	shmkit_ec_inc(ec);
	cr_assert_eq(ec->word, 4u << 1);
	munmap(ec, 4096);
}

Test(sync, ec_wait_timeout_and_changed)
{
	shmkit_ec *ec = shared_alloc(4096);

	shmkit_ec_init(ec);
	cr_assert_eq(shmkit_ec_wait(ec, 0, 20 * MS), -ETIMEDOUT);
	cr_assert_eq(shmkit_ec_wait(ec, 0, 0), -EAGAIN, "timeout 0: would wait");
	cr_assert_eq(shmkit_ec_wait(ec, 7, 0), 0);
	cr_assert_eq(shmkit_ec_wait(ec, 7, -1), 0, "differs: returns at once");
	cr_assert_eq(shmkit_ec_wait(NULL, 0, 0), -EINVAL);
	munmap(ec, 4096);
}

Test(sync, ec_counter_wraps_at_31_bits)
{
	shmkit_ec *ec = shared_alloc(4096);

	ec->word = UINT32_MAX - 1; /* counter 0x7fffffff, flag clear */
	cr_assert_eq(shmkit_ec_value(ec), 0x7fffffffu);
	shmkit_ec_inc(ec);
	cr_assert_eq(shmkit_ec_value(ec), 0);
	cr_assert_eq(shmkit_ec_wait(ec, 0x7fffffffu, 0), 0);
	cr_assert_eq(shmkit_ec_wait(ec, 0x80000000u, 0), -EAGAIN,
	             "old is taken modulo 2^31");
	munmap(ec, 4096);
}

static int ec_waiter(void *arg)
{
	shmkit_ec *ec = arg;

	return shmkit_ec_wait(ec, 0, WAKE_BOUND) == 0 && shmkit_ec_value(ec) == 1 ? 0 : 1;
}

Test(sync, ec_one_inc_wakes_every_waiter)
{
	enum { N = 4 };
	shmkit_ec *ec = shared_alloc(4096);
	pid_t pids[N];

	shmkit_ec_init(ec);
	for (int i = 0; i < N; i++)
		pids[i] = spawn(ec_waiter, ec);
	for (int i = 0; i < N; i++)
		wait_sleeping(pids[i]);
	shmkit_ec_inc(ec);
	reap_all_ok(pids, N);
	cr_assert_eq(ec->word, 1u << 1, "the waker clears the flag");
	munmap(ec, 4096);
}

struct ec_count {
	uint32_t gate;
	shmkit_ec ec;
};

enum { EC_CHILDREN = 4, EC_INCS = 5000 };

static int ec_incrementer(void *arg)
{
	struct ec_count *c = arg;

	if (gate_wait(&c->gate) != 0)
		return 1;
	for (int i = 0; i < EC_INCS; i++)
		shmkit_ec_inc(&c->ec);
	return 0;
}

Test(sync, ec_counts_increments_across_processes)
{
	struct ec_count *c = shared_alloc(4096);
	pid_t pids[EC_CHILDREN];
	const uint32_t total = EC_CHILDREN * EC_INCS;
	uint32_t v;
	int r = 0;

	shmkit_ec_init(&c->ec);
	for (int i = 0; i < EC_CHILDREN; i++)
		pids[i] = spawn(ec_incrementer, c);
	gate_open(&c->gate);
	while (r == 0 && (v = shmkit_ec_value(&c->ec)) != total)
		r = shmkit_ec_wait(&c->ec, v, WAKE_BOUND);
	reap_all_ok(pids, EC_CHILDREN);
	cr_assert_eq(r, 0, "a wait for a value that was going to move timed out");
	cr_assert_eq(shmkit_ec_value(&c->ec), total);
	munmap(c, 4096);
}

/* Ping-pong: each side sleeps on the count until the other moves it.
 * Every round is a potential lost wake-up. */
enum { PING_ROUNDS = 2000 };

static int ec_pong(void *arg)
{
	shmkit_ec *ec = arg;

	for (uint32_t i = 0; i < PING_ROUNDS; i++) {
		uint32_t v;
		while ((v = shmkit_ec_value(ec)) != 2 * i + 1)
			if (shmkit_ec_wait(ec, v, WAKE_BOUND) != 0)
				return 1;
		shmkit_ec_inc(ec);
	}
	return 0;
}

Test(sync, ec_ping_pong_loses_no_wakeup)
{
	shmkit_ec *ec = shared_alloc(4096);
	int r = 0;

	shmkit_ec_init(ec);
	pid_t pid = spawn(ec_pong, ec);
	for (uint32_t i = 0; i < PING_ROUNDS && r == 0; i++) {
		uint32_t v;
		while (r == 0 && (v = shmkit_ec_value(ec)) != 2 * i)
			r = shmkit_ec_wait(ec, v, WAKE_BOUND);
		shmkit_ec_inc(ec);
	}
	reap_ok(pid);
	cr_assert_eq(r, 0);
	cr_assert_eq(shmkit_ec_value(ec), 2 * PING_ROUNDS);
	munmap(ec, 4096);
}

/* ---- robust mutex ----------------------------------------------------- */

struct locked {
	shmkit_mutex m;
	uint32_t gate;
	uint32_t held;     /* child: "I hold the lock" */
	uint32_t release;  /* parent: "you may unlock" */
	long counter;      /* plain, protected by m */
};

static struct locked *locked_new(void)
{
	struct locked *l = shared_alloc(4096);

	cr_assert_eq(shmkit_mutex_init(&l->m), 0);
	return l;
}

enum { MTX_CHILDREN = 4, MTX_ITERS = 10000 };

static int mutex_worker(void *arg)
{
	struct locked *l = arg;

	if (gate_wait(&l->gate) != 0)
		return 1;
	for (int i = 0; i < MTX_ITERS; i++) {
		if (shmkit_mutex_lock(&l->m, WAKE_BOUND) != 0)
			return 2;
		l->counter++; /* non-atomic read-modify-write: only safe locked */
		if (shmkit_mutex_unlock(&l->m) != 0)
			return 3;
	}
	return 0;
}

Test(sync, mutex_excludes_across_processes)
{
	struct locked *l = locked_new();
	pid_t pids[MTX_CHILDREN];

	for (int i = 0; i < MTX_CHILDREN; i++)
		pids[i] = spawn(mutex_worker, l);
	gate_open(&l->gate);
	reap_all_ok(pids, MTX_CHILDREN);
	cr_assert_eq(l->counter, (long)MTX_CHILDREN * MTX_ITERS);
	munmap(l, 4096);
}

static int lock_and_exit(void *arg)
{
	struct locked *l = arg;

	return shmkit_mutex_lock(&l->m, WAKE_BOUND) == 0 ? 0 : 1; /* dies holding it */
}

static int lock_and_sigkill(void *arg)
{
	struct locked *l = arg;

	if (shmkit_mutex_lock(&l->m, WAKE_BOUND) != 0)
		return 1;
	raise(SIGKILL);
	return 2;
}

static void check_owner_dead_recovery(int (*holder)(void *), int expect_sig)
{
	struct locked *l = locked_new();
	pid_t pid = spawn(holder, l);
	int st = reap(pid);

	if (expect_sig)
		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	else
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	cr_assert_eq(shmkit_mutex_lock(&l->m, WAKE_BOUND), -EOWNERDEAD);
	cr_assert_eq(shmkit_mutex_consistent(&l->m), 0);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	cr_assert_eq(shmkit_mutex_lock(&l->m, WAKE_BOUND), 0);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	cr_assert_eq(shmkit_mutex_lock(&l->m, 0), 0);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	munmap(l, 4096);
}

Test(sync, mutex_holder_exits_then_owner_dead)
{
	check_owner_dead_recovery(lock_and_exit, 0);
}

Test(sync, mutex_holder_killed_then_owner_dead)
{
	check_owner_dead_recovery(lock_and_sigkill, 1);
}

Test(sync, mutex_trylock_sees_owner_dead)
{
	struct locked *l = locked_new();
	pid_t pid = spawn(lock_and_sigkill, l);

	reap(pid);
	cr_assert_eq(shmkit_mutex_lock(&l->m, 0), -EOWNERDEAD);
	cr_assert_eq(shmkit_mutex_consistent(&l->m), 0);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	munmap(l, 4096);
}

Test(sync, mutex_without_consistent_is_not_recoverable)
{
	struct locked *l = locked_new();
	pid_t pid = spawn(lock_and_exit, l);

	reap(pid);
	cr_assert_eq(shmkit_mutex_lock(&l->m, WAKE_BOUND), -EOWNERDEAD);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	cr_assert_eq(shmkit_mutex_lock(&l->m, WAKE_BOUND), -ENOTRECOVERABLE);
	cr_assert_eq(shmkit_mutex_lock(&l->m, 0), -ENOTRECOVERABLE);
	munmap(l, 4096);
}

static int lock_hold_until_released(void *arg)
{
	struct locked *l = arg;

	if (shmkit_mutex_lock(&l->m, WAKE_BOUND) != 0)
		return 1;
	gate_open(&l->held);
	int r = gate_wait(&l->release);
	if (shmkit_mutex_unlock(&l->m) != 0)
		return 2;
	return r == 0 ? 0 : 3;
}

Test(sync, mutex_lock_times_out_while_live_child_holds_it)
{
	struct locked *l = locked_new();
	pid_t pid = spawn(lock_hold_until_released, l);
	int held = gate_wait(&l->held);
	int timed = shmkit_mutex_lock(&l->m, 20 * MS);
	int tried = shmkit_mutex_lock(&l->m, 0);

	gate_open(&l->release);
	reap_ok(pid);
	cr_assert_eq(held, 0);
	cr_assert_eq(timed, -ETIMEDOUT);
	cr_assert_eq(tried, -EAGAIN);
	cr_assert_eq(shmkit_mutex_lock(&l->m, WAKE_BOUND), 0, "released: ours now");
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	munmap(l, 4096);
}

Test(sync, mutex_misuse_is_reported)
{
	struct locked *l = locked_new();

	cr_assert_eq(shmkit_mutex_init(NULL), -EINVAL);
	cr_assert_eq(shmkit_mutex_lock(NULL, 0), -EINVAL);
	cr_assert_eq(shmkit_mutex_unlock(NULL), -EINVAL);
	cr_assert_eq(shmkit_mutex_consistent(NULL), -EINVAL);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), -EPERM, "not held");
	cr_assert_eq(shmkit_mutex_consistent(&l->m), -EINVAL, "owner alive");
	cr_assert_eq(shmkit_mutex_lock(&l->m, 0), 0);
	cr_assert_eq(shmkit_mutex_lock(&l->m, 0), -EDEADLK);
	cr_assert_eq(shmkit_mutex_lock(&l->m, 5 * MS), -EDEADLK);
	cr_assert_eq(shmkit_mutex_unlock(&l->m), 0);
	munmap(l, 4096);
}

/* ---- semaphore -------------------------------------------------------- */

Test(sync, sem_try_timeout_and_limits)
{
	shmkit_sem *s = shared_alloc(4096);

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	cr_assert_eq(shmkit_sem_wait(s, 0), -EAGAIN);
	cr_assert_eq(shmkit_sem_wait(s, 20 * MS), -ETIMEDOUT);
	cr_assert_eq(s->waiters, 0, "a timed-out waiter unregisters");
	cr_assert_eq(shmkit_sem_post(s), 0);
	cr_assert_eq(shmkit_sem_value(s), 1);
	cr_assert_eq(shmkit_sem_wait(s, 0), 0);
	cr_assert_eq(shmkit_sem_value(s), 0);

	cr_assert_eq(shmkit_sem_init(s, (unsigned)INT32_MAX + 1), -EINVAL);
	cr_assert_eq(shmkit_sem_init(s, INT32_MAX), 0);
	cr_assert_eq(shmkit_sem_post(s), -EOVERFLOW);
	cr_assert_eq(shmkit_sem_value(s), INT32_MAX);
	cr_assert_eq(shmkit_sem_init(NULL, 0), -EINVAL);
	cr_assert_eq(shmkit_sem_post(NULL), -EINVAL);
	cr_assert_eq(shmkit_sem_wait(NULL, 0), -EINVAL);
	munmap(s, 4096);
}

static int sem_one_waiter(void *arg)
{
	return shmkit_sem_wait(arg, WAKE_BOUND) == 0 ? 0 : 1;
}

Test(sync, sem_post_wakes_sleeper_across_fork)
{
	shmkit_sem *s = shared_alloc(4096);

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	pid_t pid = spawn(sem_one_waiter, s);
	wait_sleeping(pid);
	cr_assert_eq(shmkit_sem_post(s), 0);
	reap_ok(pid);
	cr_assert_eq(shmkit_sem_value(s), 0);
	cr_assert_eq(s->waiters, 0);
	munmap(s, 4096);
}

static int sem_forever_waiter(void *arg)
{
	return shmkit_sem_wait(arg, -1) == 0 ? 0 : 1;
}

/* A poster killed between raising the count and waking: the count is up,
 * nobody wakes the sleeper.  A waiter that waits forever must still take
 * the unit (within one wake slice, 100 ms; bounded here by the test's
 * timeout only). */
Test(sync, sem_unit_of_a_poster_killed_before_waking_is_taken)
{
	shmkit_sem *s = shared_alloc(4096);

	cr_assert_eq(shmkit_sem_init(s, 0), 0);
	pid_t pid = spawn(sem_forever_waiter, s);
	wait_sleeping(pid);
	/* What a poster does before its wake (P1), and nothing more. */
	sk_fetch_add(&s->count, 1, __ATOMIC_SEQ_CST);
	reap_ok(pid);
	cr_assert_eq(shmkit_sem_value(s), 0);
	munmap(s, 4096);
}

enum { SEM_PRODUCERS = 2, SEM_CONSUMERS = 3, SEM_PER_PRODUCER = 6000 };
#define SEM_PER_CONSUMER (SEM_PRODUCERS * SEM_PER_PRODUCER / SEM_CONSUMERS)

struct sem_pc {
	shmkit_sem s;
	uint32_t gate;
	long taken[SEM_CONSUMERS];
};

static int sem_producer(void *arg)
{
	struct sem_pc *pc = arg;

	if (gate_wait(&pc->gate) != 0)
		return 1;
	for (int i = 0; i < SEM_PER_PRODUCER; i++) {
		if (shmkit_sem_post(&pc->s) != 0)
			return 2;
		if (i % 64 == 0)
			sched_yield(); /* let consumers drain and sleep */
	}
	return 0;
}

static int sem_consumer(void *arg)
{
	struct sem_pc *pc = arg;
	int me = -1;

	/* Which consumer am I: the first free slot (claimed by CAS). */
	for (int i = 0; i < SEM_CONSUMERS && me < 0; i++) {
		long zero = 0;
		if (sk_cas(&pc->taken[i], &zero, -1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			me = i;
	}
	if (me < 0)
		return 1;
	for (long n = 0; n < SEM_PER_CONSUMER; n++) {
		if (shmkit_sem_wait(&pc->s, WAKE_BOUND) != 0)
			return 2;
	}
	sk_store_relaxed(&pc->taken[me], SEM_PER_CONSUMER); /* read after reaping */
	return 0;
}

Test(sync, sem_producers_consumers_conserve_count)
{
	struct sem_pc *pc = shared_alloc(4096);
	pid_t pids[SEM_PRODUCERS + SEM_CONSUMERS];
	int n = 0;

	cr_assert_eq(SEM_PER_CONSUMER * SEM_CONSUMERS, SEM_PRODUCERS * SEM_PER_PRODUCER);
	cr_assert_eq(shmkit_sem_init(&pc->s, 0), 0);
	/* Consumers first: they find the semaphore empty and sleep. */
	for (int i = 0; i < SEM_CONSUMERS; i++)
		pids[n++] = spawn(sem_consumer, pc);
	for (int i = 0; i < SEM_PRODUCERS; i++)
		pids[n++] = spawn(sem_producer, pc);
	gate_open(&pc->gate);
	reap_all_ok(pids, n);
	long sum = 0;
	for (int i = 0; i < SEM_CONSUMERS; i++)
		sum += pc->taken[i];
	cr_assert_eq(sum, (long)SEM_PRODUCERS * SEM_PER_PRODUCER);
	cr_assert_eq(shmkit_sem_value(&pc->s), 0, "every post taken exactly once");
	cr_assert_eq(shmkit_sem_wait(&pc->s, 0), -EAGAIN);
	cr_assert_eq(pc->s.waiters, 0);
	munmap(pc, 4096);
}

/* ---- liveness --------------------------------------------------------- */

Test(sync, live_self_is_alive)
{
	uint64_t start = sk_self_start();

	cr_assert_neq(start, 0);
	cr_assert_eq(start, sk_proc_start(getpid()));
	cr_assert_eq(sk_self_start(), start, "cached");
	cr_assert_eq(sk_proc_alive(getpid(), start), 1);
	cr_assert_eq(sk_proc_alive(getpid(), 0), 1);
	cr_assert_eq(sk_proc_alive(getpid(), start + 1), 0, "wrong start: another process");
}

Test(sync, live_bad_pids_are_dead)
{
	cr_assert_eq(sk_proc_alive(0, 0), 0);
	cr_assert_eq(sk_proc_alive(-1, 0), 0);
	cr_assert_eq(sk_proc_alive(-1, 1), 0);
	cr_assert_eq(sk_proc_start(0), 0);
	cr_assert_eq(sk_proc_start(-1), 0);
}

static int wait_gate_child(void *arg)
{
	return gate_wait(arg) == 0 ? 0 : 1;
}

Test(sync, live_reaped_child_is_dead)
{
	uint32_t *gate = shared_alloc(4096);
	pid_t pid = spawn(wait_gate_child, gate);
	uint64_t start = sk_proc_start(pid);
	int alive = sk_proc_alive(pid, start);

	gate_open(gate);
	reap_ok(pid);
	cr_assert_neq(start, 0);
	cr_assert_eq(alive, 1);
	cr_assert_eq(sk_proc_alive(pid, start), 0);
	munmap(gate, 4096);
}

static int exit_at_once(void *arg)
{
	return 0;
}

Test(sync, live_zombie_is_dead)
{
	pid_t pid = spawn(exit_at_once, NULL);
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	/* Wait for it to exit but leave it a zombie (WNOWAIT). */
	int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	int alive = sk_proc_alive(pid, 0);
	reap_ok(pid);
	cr_assert_eq(r, 0);
	cr_assert_eq(alive, 0, "a zombie will never act again");
}

struct renamed {
	uint32_t named;
	uint32_t release;
};

static int rename_and_wait(void *arg)
{
	struct renamed *rn = arg;

	/* A comm full of ") " and digits defeats naive field splitting. */
	if (prctl(PR_SET_NAME, "x) 1 2 ) 3 4 5") != 0)
		return 1;
	gate_open(&rn->named);
	return gate_wait(&rn->release) == 0 ? 0 : 2;
}

Test(sync, live_start_parsed_after_last_paren)
{
	struct renamed *rn = shared_alloc(4096);
	pid_t pid = spawn(rename_and_wait, rn);
	uint64_t before = sk_proc_start(pid);
	int named = gate_wait(&rn->named);
	uint64_t after = sk_proc_start(pid);
	int alive = sk_proc_alive(pid, before);

	gate_open(&rn->release);
	reap_ok(pid);
	cr_assert_eq(named, 0);
	cr_assert_neq(before, 0);
	cr_assert_eq(after, before);
	cr_assert_eq(alive, 1);
	munmap(rn, 4096);
}

static int check_self_start(void *arg)
{
	uint64_t parent_start = *(uint64_t *)arg;
	uint64_t mine = sk_self_start();

	if (mine == 0 || mine != sk_proc_start(getpid()))
		return 1;
	/* Different processes started in different ticks (the parent slept
	 * past one before forking) unless the cache leaked across fork. */
	return mine != parent_start ? 0 : 2;
}

Test(sync, live_self_start_recomputed_after_fork)
{
	uint64_t parent_start = sk_self_start(); /* fill the cache */

	cr_assert_neq(parent_start, 0);
	/* Let at least one clock tick pass so the child's start differs;
	 * this is setup, not a timing assertion. */
	long tick_ns = SEC / sysconf(_SC_CLK_TCK);
	struct timespec ts = { 0, 3 * tick_ns };
	nanosleep(&ts, NULL);
	pid_t pid = spawn(check_self_start, &parent_start);
	reap_ok(pid);
}

/* ---- services: arm, test, sleep; the conditional notify ---------------- */

/* A conditional notify (sk_ec_notify) with nobody armed leaves the count
 * alone - the skip the MPMC and bus hot paths rely on - and once a waiter
 * armed (sk_ec_arm), it increments and clears the flag. */
Test(sync, ec_notify_skips_the_increment_unless_a_waiter_armed)
{
	shmkit_ec ec;

	shmkit_ec_init(&ec);
	shmkit_ec_inc(&ec);
	uint32_t v = shmkit_ec_value(&ec);
	for (int i = 0; i < 3; i++)
		sk_ec_notify(&ec);
	cr_assert_eq(shmkit_ec_value(&ec), v, "no waiter: the count must not move");
	cr_assert_eq(sk_load_relaxed(&ec.word) & 1, 0);

	uint32_t w = sk_ec_arm(&ec);
	cr_assert_eq(w, sk_load_relaxed(&ec.word), "arm returns the word it left");
	cr_assert(w & 1, "arm sets the waiter flag");
	sk_ec_notify(&ec);
	cr_assert_eq(shmkit_ec_value(&ec), v + 1, "armed: the notify increments");
	cr_assert_eq(sk_load_relaxed(&ec.word) & 1, 0, "and clears the flag as it wakes");
	/* The armed wait on w returns at once: the word moved. */
	cr_assert_eq(sk_futex_wait_until(&ec.word, w, sk_now_ns() + WAKE_BOUND), 0);
}

/* Ping-pong between two threads over two conditions, each made true by
 * a seq_cst CAS followed by the conditional notify.  Side 1 waits with
 * sk_wait_for(SHMKIT_WAIT_BLOCK) (arm, test, sleep); side 0 spins, so it
 * answers within a few hundred ns - while side 1 is still between its
 * test and its sleep, where a waiter that did not arm first (reading the
 * count, testing, then setting the flag) loses the wake-up: with the old
 * wait.h this test fails (-ETIMEDOUT) within the 100000 rounds.  A lost
 * wake-up leaves side 1 asleep until its WAKE_BOUND deadline. */
#define PP_ROUNDS 100000
struct pingpong {
	shmkit_ec ec[2];    /* ec[i]: turn became i */
	uint32_t turn;      /* 2 * round + side whose move it is */
	uint32_t rounds;
	int err[2];
};
struct pp_arg {
	struct pingpong *p;
	uint32_t want;
	int strategy;
};

static int pp_ready(void *arg)
{
	struct pp_arg *a = arg;
	/* Acquire: pairs with the other side's seq_cst CAS of turn. */
	return sk_load_acquire(&a->p->turn) == a->want;
}

static void *pp_side(void *arg)
{
	struct pingpong *p = ((struct pp_arg *)arg)->p;
	int me = ((struct pp_arg *)arg)->want == 1;
	struct pp_arg a = { .p = p };
	int strategy = ((struct pp_arg *)arg)->strategy, waited;

	for (uint32_t r = 0; r < p->rounds; r++) {
		a.want = 2 * r + (uint32_t)me;
		int err = sk_wait_for(&p->ec[me], strategy, sk_now_ns() + WAKE_BOUND,
		                      pp_ready, &a, &waited);
		if (err) {
			p->err[me] = err;
			return NULL;
		}
		uint32_t cur = a.want;
		/* seq_cst: the RMW sk_ec_notify requires before it. */
		if (!sk_cas(&p->turn, &cur, cur + 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
			p->err[me] = -EPROTO;
			return NULL;
		}
		sk_ec_notify(&p->ec[!me]);
	}
	return NULL;
}

Test(sync, blocking_pingpong_with_conditional_notify_loses_no_wakeup, .timeout = 120)
{
	static struct pingpong p;
	struct pp_arg a0 = { &p, 0, SHMKIT_WAIT_SPIN }, a1 = { &p, 1, SHMKIT_WAIT_BLOCK };
	pthread_t t0, t1;

	memset(&p, 0, sizeof p);
	shmkit_ec_init(&p.ec[0]);
	shmkit_ec_init(&p.ec[1]);
	p.rounds = PP_ROUNDS;
	cr_assert_eq(pthread_create(&t0, NULL, pp_side, &a0), 0);
	cr_assert_eq(pthread_create(&t1, NULL, pp_side, &a1), 0);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	cr_assert_eq(p.err[0], 0, "side 0: %d (-ETIMEDOUT: a lost wake-up)", p.err[0]);
	cr_assert_eq(p.err[1], 0, "side 1: %d (-ETIMEDOUT: a lost wake-up)", p.err[1]);
	cr_assert_eq(p.turn, 2 * PP_ROUNDS);
}
