/*
 * harness.c - running what the files in bench/ measure: two pinned processes behind
 * a start barrier, timed batches, statistics, and the safety net (time
 * limits, peer death, interrupted runs) that keeps the program bounded and
 * leaves nothing behind.  See bench/main.c for the methodology.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PAIR_LIMIT_NS (60 * 1000000000LL)  /* a pair is aborted after this, */
#define PAIR_LIMIT_QUICK_NS (30 * 1000000000LL) /* or this under --quick */
#define REAP_LIMIT_NS (10 * 1000000000LL)  /* a done peer must exit by then */
#define MAX_CLEANUPS 32

/* Start barrier and failure reports shared by the two processes of a pair
 * (a private anonymous shared page, so nothing outlives the run). */
struct pair_ctl {
	uint32_t arrived;   /* 0, 1, 2: sides at the barrier */
	int32_t err[2];     /* each side's set-up result: [0] parent, [1] child */
};

static struct {
	cpu_set_t orig;
	int ncpus, cpu[2]; /* cpu[0] parent, cpu[1] child; -1 = do not pin */
	volatile sig_atomic_t aborted, child_gone, gone_ticks;
	volatile pid_t child;
	volatile int64_t deadline;
	struct { void (*fn)(void *); void *arg; } cleanups[MAX_CLEANUPS];
	volatile sig_atomic_t ncleanups;
	unsigned name_seq;
} h = { .cpu = { -1, -1 } };

static volatile uint64_t sink_word;

void bench_sink(uint64_t v)
{
	sink_word += v;
}

bool bench_aborted(void)
{
	return h.aborted;
}

int bench_poll_slow(unsigned spins)
{
	if (h.aborted)
		return -ECANCELED;
	sched_yield();
	return 0;
}

/* ---- signals ---------------------------------------------------------- */

static void kill_child(void)
{
	pid_t c = h.child;
	if (c > 0)
		kill(c, SIGKILL);
}

/* SIGINT/SIGTERM/SIGHUP: kill the peer, undo what is registered, then die
 * of the same signal. */
static void on_fatal(int sig)
{
	kill_child();
	while (h.ncleanups > 0) {
		int i = --h.ncleanups;
		h.cleanups[i].fn(h.cleanups[i].arg);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_child(int sig)
{
	h.child_gone = 1;
}

/* Once a second while a pair runs: give up when the pair is past its time
 * limit, or its peer has been gone for a full tick (a peer that finished
 * normally leaves the parent nothing to block on). */
static void on_tick(int sig)
{
	if (h.child_gone && ++h.gone_ticks >= 2)
		h.aborted = 1;
	if (sk_now_ns() > h.deadline)
		h.aborted = 1;
	if (h.aborted)
		kill_child();
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocked calls see EINTR */
	sigaction(sig, &sa, NULL);
}

static void set_ticks(long sec)
{
	struct itimerval it = { .it_interval = { sec, 0 }, .it_value = { sec, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
}

int bench_cleanup_push(void (*fn)(void *arg), void *arg)
{
	if (h.ncleanups >= MAX_CLEANUPS)
		return -ENOSPC;
	h.cleanups[h.ncleanups].fn = fn;
	h.cleanups[h.ncleanups].arg = arg;
	h.ncleanups = h.ncleanups + 1; /* published after the entry is whole */
	return 0;
}

void bench_cleanup_pop(bool run)
{
	if (h.ncleanups <= 0)
		return;
	int i = h.ncleanups - 1;
	h.ncleanups = i;
	if (run)
		h.cleanups[i].fn(h.cleanups[i].arg);
}

/* ---- CPUs ------------------------------------------------------------- */

void bench_harness_init(void)
{
	if (sched_getaffinity(0, sizeof(h.orig), &h.orig) == 0) {
		h.ncpus = CPU_COUNT(&h.orig);
		for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
			if (CPU_ISSET(c, &h.orig))
				h.cpu[k++] = c;
		if (h.ncpus < 2)
			h.cpu[0] = h.cpu[1] = -1;
	}
	handle(SIGINT, on_fatal);
	handle(SIGTERM, on_fatal);
	handle(SIGHUP, on_fatal);
	handle(SIGCHLD, on_child);
	handle(SIGALRM, on_tick);
	signal(SIGPIPE, SIG_IGN);
}

/* Is cpu in a sysfs CPU list ("0", "0-1", "0,4", "0-3,8-11")? */
static bool cpu_in_list(const char *list, int cpu)
{
	const char *p = list;
	while (*p) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p)
			return false;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (cpu >= lo && cpu <= hi)
			return true;
		p = *end == ',' ? end + 1 : "";
	}
	return false;
}

int bench_smt_siblings(void)
{
	char path[96], list[128];
	if (h.cpu[0] < 0)
		return -ENOENT;
	snprintf(path, sizeof(path),
	         "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", h.cpu[0]);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	bool ok = fgets(list, sizeof(list), f) != NULL;
	fclose(f);
	if (!ok)
		return -EIO;
	list[strcspn(list, "\n")] = '\0';
	return cpu_in_list(list, h.cpu[1]);
}

const char *bench_topology(void)
{
	static char buf[160];
	int smt = bench_smt_siblings();
	if (h.cpu[0] < 0)
		snprintf(buf, sizeof(buf), "not pinned (one CPU)");
	else if (smt < 0)
		snprintf(buf, sizeof(buf), "CPUs %d and %d, SMT topology unknown "
		         "(no thread_siblings_list)", h.cpu[0], h.cpu[1]);
	else
		snprintf(buf, sizeof(buf), "CPUs %d and %d are %s (thread_siblings_list "
		         "of cpu%d)", h.cpu[0], h.cpu[1],
		         smt ? "SMT siblings: two threads of one core"
		             : "separate cores, not SMT siblings", h.cpu[0]);
	return buf;
}

void bench_harness_describe(void)
{
	printf("# shmkit-bench: %d CPU(s) allowed; ", h.ncpus);
	if (h.cpu[0] >= 0)
		printf("two-process rows pinned to CPUs %d and %d; ", h.cpu[0], h.cpu[1]);
	else
		printf("one CPU: two-process rows share it (not pinned); ");
	printf("%s run, median and p99 over %d batches\n",
	       bench_quick() ? "quick" : "full",
	       bench_quick() ? BENCH_BATCHES_QUICK : BENCH_BATCHES);
	printf("# pinned CPUs: %s\n", bench_topology());
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void unpin(void)
{
	if (h.cpu[0] >= 0)
		sched_setaffinity(0, sizeof(h.orig), &h.orig);
}

/* ---- statistics ------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void summarize(double *ns, int n, struct bench_stat *st)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_double);
	st->median_ns = n % 2 ? ns[n / 2] : (ns[n / 2 - 1] + ns[n / 2]) / 2;
	int rank = (99 * n + 99) / 100; /* nearest rank ceil(0.99 n), 1-based */
	st->p99_ns = ns[rank > 0 ? rank - 1 : 0];
	st->min_ns = ns[0];
	st->batches = n;
}

static int batch_count(int asked)
{
	int full = asked > 0 ? asked : BENCH_BATCHES;
	if (bench_quick() && full > BENCH_BATCHES_QUICK)
		return BENCH_BATCHES_QUICK;
	return full;
}

static int warmup_count(int batches)
{
	return batches / 10 > 0 ? batches / 10 : 1;
}

/* Time warm + batches calls of run(arg, n); keep per-operation ns of the
 * timed ones in ns[]. */
static int time_batches(int (*run)(void *, long), void *arg, long n,
                        int warm, int batches, double *ns)
{
	for (int b = 0; b < warm + batches; b++) {
		int64_t t0 = sk_now_ns();
		int r = run(arg, n);
		int64_t t1 = sk_now_ns();
		if (r)
			return h.aborted ? -ECANCELED : r;
		if (b >= warm)
			ns[b - warm] = (double)(t1 - t0) / (double)n;
	}
	return 0;
}

int bench_solo(int (*run)(void *arg, long n), void *arg, long iters,
               int batches, struct bench_stat *st)
{
	long n = bench_iters(iters);
	int nb = batch_count(batches);
	double *ns = calloc((size_t)nb, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	pin(h.cpu[0]);
	int r = time_batches(run, arg, n, warmup_count(nb), nb, ns);
	unpin();
	if (!r)
		summarize(ns, nb, st);
	free(ns);
	return r;
}

/* ---- two processes ---------------------------------------------------- */

/* Both sides arrive with their set-up result; returns this side's error,
 * else the peer's, else 0.  The acq_rel add publishes this side's err
 * store and, once the other side's add is seen (acquire load below), makes
 * its err visible. */
static int barrier(struct pair_ctl *c, int side, int err)
{
	c->err[side] = err;
	sk_fetch_add(&c->arrived, 1, __ATOMIC_ACQ_REL); /* pairs with the peer's acquire load */
	sk_futex_wake(&c->arrived, 1);
	uint32_t v;
	while ((v = sk_load_acquire(&c->arrived)) < 2) { /* pairs with the peer's add */
		if (h.aborted)
			return -ECANCELED;
		sk_futex_wait_until(&c->arrived, v, sk_now_ns() + 100000000);
	}
	int other = c->err[!side];
	return err ? err : other;
}

static _Noreturn void child_main(const struct bench_pair *p, struct pair_ctl *c,
                                 pid_t parent, long total)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	h.ncleanups = 0; /* the parent owns every cleanup */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	pin(h.cpu[1]);
	int r = p->child_init ? p->child_init(p->arg) : 0;
	r = barrier(c, 1, r);
	if (!r)
		r = p->child_run(p->arg, total);
	if (r && r != -ECANCELED)
		fprintf(stderr, "shmkit-bench: peer: %s\n", strerror(-r));
	_exit(r ? 1 : 0);
}

static void arm(pid_t child)
{
	h.aborted = 0;
	h.child_gone = 0;
	h.gone_ticks = 0;
	h.deadline = sk_now_ns() + (bench_quick() ? PAIR_LIMIT_QUICK_NS : PAIR_LIMIT_NS);
	h.child = child;
	set_ticks(1);
}

static void disarm(void)
{
	set_ticks(0);
	h.child = 0;
	h.aborted = 0;
}

/* Wait for the peer; 0 if it exited with status 0. */
static int reap(pid_t pid)
{
	int64_t limit = sk_now_ns() + REAP_LIMIT_NS;
	int status;
	for (;;) {
		if (waitpid(pid, &status, 0) == pid)
			break;
		if (errno != EINTR)
			return sk_neg_errno();
		if (sk_now_ns() > limit)
			kill(pid, SIGKILL);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!h.aborted) {
		if (WIFSIGNALED(status))
			fprintf(stderr, "shmkit-bench: peer killed by signal %d\n",
			        WTERMSIG(status));
		else
			fprintf(stderr, "shmkit-bench: peer exited with status %d\n",
			        WEXITSTATUS(status));
	}
	return -ECHILD;
}

/* Fork, meet, time, reap.  Set-up has succeeded; teardown is the caller's. */
static int run_pair(const struct bench_pair *p, struct pair_ctl *c, long n,
                    int warm, int nb, double *ns)
{
	long total = n * (warm + nb);
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return sk_neg_errno();
	if (pid == 0)
		child_main(p, c, parent, total);
	arm(pid);
	pin(h.cpu[0]);
	int r = p->parent_init ? p->parent_init(p->arg) : 0;
	r = barrier(c, 0, r);
	if (!r)
		r = time_batches(p->parent_run, p->arg, n, warm, nb, ns);
	if (p->parent_fini)
		p->parent_fini(p->arg);
	if (r)
		kill(pid, SIGKILL);
	int rc = reap(pid);
	if (h.aborted && r)
		r = -ECANCELED;
	disarm();
	unpin();
	return r ? r : rc;
}

static int pair_round(const struct bench_pair *p, long n, int warm, int nb, double *ns);

/* run_pair in a fresh process S (bench_pair.fresh_parent): S forks the
 * child and times the batches into shared memory; the bench waits for S
 * (S is bounded by its own pair limit, and dies with the bench). */
static int run_pair_fresh(const struct bench_pair *p, struct pair_ctl *c, long n,
                          int warm, int nb, double *ns)
{
	size_t size = (size_t)nb * sizeof(*ns) + sizeof(int32_t);
	double *shared = bench_shared_alloc(size);
	if (!shared)
		return -ENOMEM;
	int32_t *res = (int32_t *)(void *)(shared + nb);
	fflush(NULL);
	pid_t s = fork();
	if (s < 0) {
		bench_shared_free(shared, size);
		return sk_neg_errno();
	}
	if (s == 0) {
		h.ncleanups = 0; /* the bench owns every cleanup */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		*res = run_pair(p, c, n, warm, nb, shared);
		exit(0); /* not _exit: the library's destructors run */
	}
	h.child = s; /* SIGINT now kills S, S's child dies with it */
	int r = reap(s);
	h.child = 0;
	if (!r)
		r = *res;
	if (!r)
		memcpy(ns, shared, (size_t)nb * sizeof(*ns));
	bench_shared_free(shared, size);
	return r;
}

int bench_pair(const struct bench_pair *p, struct bench_stat *st)
{
	int nb = batch_count(p->batches);
	double *ns = calloc((size_t)nb, sizeof(*ns));
	int r = ns ? pair_round(p, bench_iters(p->iters), warmup_count(nb), nb, ns) : -ENOMEM;
	if (!r)
		summarize(ns, nb, st);
	free(ns);
	return r;
}

/* ---- interleaved rows ------------------------------------------------- */

int bench_solo_interleaved(const struct bench_solo_spec *sp, int k, int batches,
                           struct bench_stat *st)
{
	int nb = batch_count(batches), warm = warmup_count(nb), r = 0;
	double *ns = calloc((size_t)(nb * k), sizeof(*ns));
	if (!ns || k <= 0) {
		free(ns);
		return ns ? -EINVAL : -ENOMEM;
	}
	pin(h.cpu[0]);
	/* Batch b of every runner before batch b + 1 of any: A B C A B C ... */
	for (int b = 0; b < warm + nb && !r; b++)
		for (int i = 0; i < k && !r; i++)
			r = time_batches(sp[i].run, sp[i].arg, bench_iters(sp[i].iters), 0, 1,
			                 b >= warm ? &ns[i * nb + b - warm] : &(double){ 0 });
	unpin();
	for (int i = 0; i < k && !r; i++)
		summarize(&ns[i * nb], nb, &st[i]);
	free(ns);
	return r;
}

/* One round of pair p: set up, fork, run warm + nb batches into ns, tear
 * down. */
static int pair_round(const struct bench_pair *p, long n, int warm, int nb, double *ns)
{
	struct pair_ctl *c = bench_shared_alloc(sizeof(*c));
	int r = c ? 0 : -ENOMEM;
	if (!r && p->setup)
		r = p->setup(p->arg);
	if (!r) {
		r = p->fresh_parent ? run_pair_fresh(p, c, n, warm, nb, ns)
		                    : run_pair(p, c, n, warm, nb, ns);
		if (p->teardown)
			p->teardown(p->arg);
	}
	if (c)
		bench_shared_free(c, sizeof(*c));
	return r;
}

void bench_pair_interleaved(const struct bench_pair *p, int k, int rounds,
                            struct bench_stat *st, int *err)
{
	int nb[BENCH_MAX_INTERLEAVE], done[BENCH_MAX_INTERLEAVE] = { 0 };
	double *ns[BENCH_MAX_INTERLEAVE] = { NULL };

	if (k > BENCH_MAX_INTERLEAVE)
		k = BENCH_MAX_INTERLEAVE;
	if (rounds < 1)
		rounds = 1;
	for (int i = 0; i < k; i++) {
		nb[i] = batch_count(p[i].batches);
		ns[i] = calloc((size_t)nb[i], sizeof(double));
		err[i] = ns[i] ? 0 : -ENOMEM;
	}
	/* Round q of every pair before round q + 1 of any; each round gets
	 * its share of the batches (the last the remainder) and its own
	 * warm-up, so every process is measured warm. */
	for (int q = 0; q < rounds; q++) {
		for (int i = 0; i < k; i++) {
			int share = nb[i] / rounds > 0 ? nb[i] / rounds : 1;
			int want = q == rounds - 1 ? nb[i] - done[i] : share;
			if (err[i] || want <= 0)
				continue;
			if (want > nb[i] - done[i])
				want = nb[i] - done[i];
			err[i] = pair_round(&p[i], bench_iters(p[i].iters),
			                    warmup_count(want), want, ns[i] + done[i]);
			done[i] += want;
		}
	}
	for (int i = 0; i < k; i++) {
		if (!err[i])
			summarize(ns[i], nb[i], &st[i]);
		free(ns[i]);
	}
}

/* ---- data for plots --------------------------------------------------- */

static FILE *data_file;

/* The file named by SHMKIT_BENCH_DATA, opened (truncated) on first use,
 * with a header; NULL when the variable is unset or the file cannot be
 * made (then nothing is written, and a note says so once). */
static FILE *data_open(void)
{
	static bool tried;
	const char *path = getenv("SHMKIT_BENCH_DATA");
	if (tried || !path || !*path)
		return data_file;
	tried = true;
	if (!(data_file = fopen(path, "we"))) {
		fprintf(stderr, "shmkit-bench: cannot write %s: %s\n", path, strerror(errno));
		return NULL;
	}
	fprintf(data_file, "# shmkit-bench data; %s run; %s\n",
	        bench_quick() ? "quick" : "full", bench_topology());
	fprintf(data_file, "#series\tmetric\tbytes\tvalue\tunit\n");
	return data_file;
}

void bench_data(const char *series, const char *metric, size_t bytes, double value,
                const char *unit)
{
	FILE *f = data_open();
	if (!f)
		return;
	fprintf(f, "%s\t%s\t%zu\t%.6g\t%s\n", series, metric, bytes, value, unit);
	fflush(f);
}

bool bench_data_wanted(void)
{
	return data_open() != NULL;
}

/* ---- small helpers ---------------------------------------------------- */

int bench_read_full(int fd, void *buf, size_t len)
{
	unsigned char *b = buf;
	while (len > 0) {
		ssize_t k = read(fd, b, len);
		if (k > 0) {
			b += k;
			len -= (size_t)k;
		} else if (k == 0) {
			return -EPIPE;
		} else if (errno != EINTR) {
			return sk_neg_errno();
		} else if (h.aborted) {
			return -ECANCELED;
		}
	}
	return 0;
}

int bench_write_full(int fd, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	while (len > 0) {
		ssize_t k = write(fd, b, len);
		if (k >= 0) {
			b += k;
			len -= (size_t)k;
		} else if (errno != EINTR) {
			return sk_neg_errno();
		} else if (h.aborted) {
			return -ECANCELED;
		}
	}
	return 0;
}

void *bench_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

/* ---- a load generator ------------------------------------------------------ */

static pid_t load_pids[8];
static int load_n;

int bench_load_start(int n)
{
	if (n > (int)(sizeof(load_pids) / sizeof(load_pids[0])))
		n = (int)(sizeof(load_pids) / sizeof(load_pids[0]));
	for (load_n = 0; load_n < n; load_n++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			bench_load_stop();
			return -errno;
		}
		if (pid == 0) {
			unpin(); /* anywhere the scheduler likes, as other work would be */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (volatile unsigned long x = 0;; x++)
				;
		}
		load_pids[load_n] = pid;
	}
	return 0;
}

void bench_load_stop(void)
{
	for (int i = 0; i < load_n; i++) {
		kill(load_pids[i], SIGKILL);
		waitpid(load_pids[i], NULL, 0);
	}
	load_n = 0;
}

void bench_unlink_shm(void *name)
{
	char path[96];
	path[0] = '/';
	strncpy(path + 1, name, sizeof(path) - 2);
	path[sizeof(path) - 1] = '\0';
	shm_unlink(path); /* async-signal-safe enough: one system call */
}

void bench_unique_name(char *buf, size_t cap, const char *tag)
{
	snprintf(buf, cap, "shmkit-bench-%d-%s-%u", (int)getpid(), tag, h.name_seq++);
}
