/*
 * bench.h - the harness every file in bench/ uses.  All of them link into
 * one program, build/shmkit-bench; the methodology is described at the top
 * of bench/main.c.
 *
 * Adding benchmarks: write bench/NAME.c with
 *
 *     static void my_suite(void)
 *     {
 *             struct bench_stat st;
 *             if (bench_want("chan_rtt_spin") &&
 *                 bench_check("chan_rtt_spin", bench_pair(&pp, &st)))
 *                     bench_report_ns("chan_rtt_spin", &st, "cacheline_rtt");
 *     }
 *     BENCH_SUITE("chan", my_suite)
 *
 * Suites run after the references (baselines), in name order.  Test
 * bench_want(row) before measuring a row so --filter skips its cost.  A
 * row's ratio is value / value-of-ref, both measured in this run.  ref is
 * a registered reference (below, or your own BENCH_REF), measured on
 * demand if --filter left it out (and then not printed), or any row
 * reported earlier in the run (no ratio if --filter skipped that row).
 * Counts given to bench_pair/bench_solo are full-run counts: the harness
 * scales them for --quick itself (do not pass bench_iters() to them).
 *
 * References registered by bench/baseline.c (units in brackets):
 *   cacheline_rtt [ns]   two processes spinning on one shared 64-byte line
 *   futex_rtt [ns]       FUTEX_WAIT/FUTEX_WAKE ping-pong, no spinning
 *   pipe_rtt, unix_stream_rtt, unix_dgram_rtt, posix_mq_rtt, sysv_mq_rtt,
 *   tcp_rtt [ns]         64-byte round trips through the kernel
 *   memcpy_64, memcpy_4k, memcpy_1m [GB/s]   one core, libc memcpy
 *   spsc_ring_64 [msg/s], spsc_ring_4k, spsc_ring_1m [GB/s]
 *                        a plain single-producer/single-consumer ring in
 *                        shared memory between the two pinned processes
 */
#ifndef SHMKIT_BENCH_H
#define SHMKIT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- registry --------------------------------------------------------- */

typedef void (*bench_fn)(void);

void bench_register_suite(const char *name, bench_fn fn);
void bench_register_ref(const char *name, bench_fn fn);

/* A suite: a function that measures and reports some rows. */
#define BENCH_SUITE(name, fn)                                                 \
	static void __attribute__((constructor)) bench_suite_ctor_##fn(void) \
	{                                                                     \
		bench_register_suite(name, fn);                               \
	}

/* A reference: fn measures and reports exactly the row `name`.  References
 * run first, in registration order, and on demand from bench_ref(). */
#define BENCH_REF(name, fn)                                                   \
	static void __attribute__((constructor)) bench_ref_ctor_##fn(void)   \
	{                                                                     \
		bench_register_ref(name, fn);                                 \
	}

/* ---- options ---------------------------------------------------------- */

/* True if --filter selects this row (always true without --filter). */
bool bench_want(const char *name);
/* True under --quick: small counts, for smoke tests. */
bool bench_quick(void);
/* Operations per batch: full under a full run, full/10 (at least 1) under
 * --quick. */
long bench_iters(long full);

/* ---- measurement ------------------------------------------------------ */

/* Per-operation time over the timed batches, in nanoseconds.  p99 is the
 * 99th-percentile batch (nearest rank): 99% of batches were this fast or
 * faster. */
struct bench_stat {
	double median_ns;
	double p99_ns;
	double min_ns;
	int batches;
};

/* Default batches: 100 timed (a full run) or 12 (--quick), after
 * max(1, batches/10) untimed warm-up batches. */
#define BENCH_BATCHES 100
#define BENCH_BATCHES_QUICK 12

/* Two processes: the parent (pinned to one CPU) times batches of
 * parent_run(arg, n); the forked child (pinned to another CPU when there
 * are two) runs child_run(arg, total) once, total being the sum of every
 * n the parent will ask for (warm-up included), then exits.
 *   Ping-pong: parent_run sends n pings and waits for each answer;
 *              child_run answers total pings.
 *   Stream:    parent_run consumes n messages; child_run produces total.
 *              (Timing the consumer gives the steady-state rate: in each
 *              batch n messages pass through the queue.)
 * Hooks other than the two runs may be NULL.  setup runs in the parent
 * before fork (create sockets, shared memory, named objects); after fork
 * the child runs child_init and the parent parent_init (close the other
 * side's descriptors, open by name), then both meet at a start barrier;
 * teardown runs in the parent after the child is reaped, whenever setup
 * succeeded.  arg is copied by fork: private fields are per process, so
 * shared state must live in memory from bench_shared_alloc() or named
 * objects.  Hooks return 0 or a negative errno.
 * Returns 0 with *st filled, or a negative errno (the child failed, timed
 * out, or a hook failed); -ECANCELED if the harness aborted the pair (the
 * child died, or it ran past its time limit). */
struct bench_pair {
	long iters;   /* operations per batch in a full run (see bench_iters) */
	int batches;  /* timed batches; 0 = the default */
	void *arg;
	int (*setup)(void *arg);
	int (*child_init)(void *arg);
	int (*parent_init)(void *arg);
	int (*parent_run)(void *arg, long n);
	int (*child_run)(void *arg, long n);
	void (*teardown)(void *arg);
	/* Additions (zero = off): */
	/* After the parent's last batch, in the parent's process (undo what
	 * parent_init made there); may be NULL. */
	void (*parent_fini)(void *arg);
	/* Run the parent's side of each round in a fresh process forked from
	 * the bench (pinned where the parent would be; its timings come back
	 * through shared memory), for libraries whose per-process state
	 * cannot be made twice in one process or survive a fork (iceoryx's
	 * runtime).  That process ends with exit(3), so the library's
	 * destructors run.  Set-up and teardown still run in the bench. */
	bool fresh_parent;
};
int bench_pair(const struct bench_pair *p, struct bench_stat *st);

/* One process: time batches of run(arg, n), n = bench_iters(iters), pinned
 * to the parent's CPU. */
int bench_solo(int (*run)(void *arg, long n), void *arg, long iters,
               int batches, struct bench_stat *st);

/* ---- interleaved rows ------------------------------------------------- */

/* Rows compared with each other are best measured interleaved, so that a
 * drift of the machine during the run (another tenant, the host moving a
 * virtual CPU, the disk's cache filling) falls on every one of them alike.
 *
 * Solo: batch b of every runner is timed before batch b + 1 of any
 * (A B C A B C ...), pinned to the parent's CPU.  Each runner's set-up is
 * the caller's, done before.  0 with st[0..k-1] filled, or the first
 * negative errno (then nothing is filled). */
struct bench_solo_spec {
	int (*run)(void *arg, long n);
	void *arg;
	long iters;             /* full-run count, scaled for --quick */
};
int bench_solo_interleaved(const struct bench_solo_spec *s, int k, int batches,
                           struct bench_stat *st);

/* Pairs: the batches of each pair are split over `rounds` rounds; round q
 * of every pair (set-up, fork, warm-up, its share of the timed batches,
 * teardown) runs before round q + 1 of any: A B C A B C ...  The samples
 * of a pair's rounds are summarized together.  err[i] is pair i's result
 * (0 with st[i] filled, or a negative errno; a failed pair is not run
 * again, the others go on).  At most BENCH_MAX_INTERLEAVE pairs. */
#define BENCH_MAX_INTERLEAVE 12
void bench_pair_interleaved(const struct bench_pair *p, int k, int rounds,
                            struct bench_stat *st, int *err);

/* ---- machine ---------------------------------------------------------- */

/* 1 if the two CPUs two-process rows are pinned to are SMT siblings (two
 * hardware threads of one core, sharing its caches and execution units),
 * 0 if they are separate cores, a negative errno if unknown (not pinned,
 * or no /sys topology).  Read from
 * /sys/devices/system/cpu/cpuN/topology/thread_siblings_list. */
int bench_smt_siblings(void);
/* The same as a phrase for reports ("CPUs 0 and 1 are separate cores,
 * ..."); a static buffer. */
const char *bench_topology(void);

/* ---- data for plots --------------------------------------------------- */

/* With SHMKIT_BENCH_DATA=FILE in the environment, rows meant for plots
 * also append "series<TAB>metric<TAB>bytes<TAB>value<TAB>unit" lines to
 * FILE (made anew by each run, "#" lines are comments; scripts/plot.sh
 * draws them).  Without it, nothing is written. */
void bench_data(const char *series, const char *metric, size_t bytes, double value,
                const char *unit);
/* True when bench_data() writes somewhere (rows only for plots may skip
 * their work otherwise). */
bool bench_data_wanted(void);

/* ---- reporting -------------------------------------------------------- */

/* Print a row: name, value and p99 in unit, and value / bench_ref(ref)
 * (ref may be NULL).  The value is recorded for bench_ref() even when
 * --filter hides the row. */
void bench_report(const char *name, double value, double p99,
                  const char *unit, const char *ref);
/* Rows from a bench_stat: time per operation in ns; operations per
 * second ("msg/s", p99 is then the slow tail: 1e9 / p99_ns); bandwidth in
 * GB/s (1e9 bytes/s) for `bytes` per operation. */
void bench_report_ns(const char *name, const struct bench_stat *st,
                     const char *ref);
void bench_report_rate(const char *name, const struct bench_stat *st,
                       const char *ref);
void bench_report_gbps(const char *name, const struct bench_stat *st,
                       size_t bytes, const char *ref);
/* One of the three by kind: 'n' ns per operation, 'r' operations/s,
 * 'g' GB/s of `bytes` per operation. */
void bench_report_kind(const char *name, const struct bench_stat *st, int kind,
                       size_t bytes, const char *ref);
/* A row that cannot be measured on this machine (e.g. no POSIX message
 * queues): a note on stderr, not a failure. */
void bench_skip(const char *name, const char *why);
/* If err < 0, report the row as failed (stderr; the program will exit 1)
 * and return false; else true.  Use as bench_check(name, bench_pair(...)). */
bool bench_check(const char *name, int err);
/* Value of a row measured in this run (measuring a registered reference
 * now if needed), or 0 if unavailable. */
double bench_ref(const char *name);

/* ---- helpers for the processes under test ----------------------------- */

/* Bounded waits for library calls made inside runs: wait this long, then
 * re-check bench_aborted() and wait again. */
#define BENCH_WAIT_NS 1000000000LL

/* True once the harness has given up on the current pair (the peer died or
 * the pair ran past its time limit).  Runs must then return -ECANCELED
 * promptly.  Blocking system calls in the parent are interrupted (EINTR)
 * about once a second while a pair runs, so a blocked run can check it. */
bool bench_aborted(void);

int bench_poll_slow(unsigned spins);
/* One step of a busy-wait: a CPU relax hint; every 1024 polls (tens of
 * microseconds, far beyond any answer from a running peer) check
 * bench_aborted() (-ECANCELED) and yield the CPU, so a peer that shares it
 * on a loaded machine can run.  0 to keep polling. */
static inline int bench_poll(unsigned *spins)
{
	sk_cpu_relax();
	if (SK_UNLIKELY((++*spins & 1023) == 0))
		return bench_poll_slow(*spins);
	return 0;
}

/* Spin until *word == want.  The acquire load pairs with the peer's release
 * store of want: what the peer wrote before it is visible after.  0, or
 * -ECANCELED. */
static inline int bench_spin_until(const uint32_t *word, uint32_t want)
{
	unsigned spins = 0;
	while (sk_load_acquire(word) != want) {
		int r = bench_poll(&spins);
		if (r)
			return r;
	}
	return 0;
}

/* read/write exactly len bytes, retrying partial transfers and EINTR
 * (unless aborted).  0, -EPIPE at end of file, or a negative errno. */
int bench_read_full(int fd, void *buf, size_t len);
int bench_write_full(int fd, const void *buf, size_t len);

/* Zero-filled MAP_SHARED|MAP_ANONYMOUS memory, shared with children forked
 * afterwards; NULL on failure.  Nothing to clean up beyond the free. */
void *bench_shared_alloc(size_t size);
void bench_shared_free(void *p, size_t size);

/* Load: n processes that spin at the same priority, unpinned (other work
 * on a busy machine), until bench_load_stop().  0 or a negative errno. */
int bench_load_start(int n);
void bench_load_stop(void);

/* A name unique to this run: "shmkit-bench-<pid>-<tag>-<n>". */
void bench_unique_name(char *buf, size_t cap, const char *tag);

/* Undo something external (unlink a name, remove a queue) if the program
 * is interrupted (SIGINT, SIGTERM, SIGHUP) before teardown: push after
 * creating it, pop (run = false) once teardown removed it normally.  The
 * function runs inside a signal handler: keep it to unlink-like calls. */
int bench_cleanup_push(void (*fn)(void *arg), void *arg);
/* A cleanup for a POSIX segment named by a bench_unique_name() string
 * (shm_unlink of "/" + name). */
void bench_unlink_shm(void *name);
void bench_cleanup_pop(bool run);

/* Consume a value so the compiler cannot drop the work that made it. */
void bench_sink(uint64_t v);

/* ---- harness internals (bench/harness.c, used by bench/main.c) --------- */

/* Find the CPUs to pin to and install the signal handlers. */
void bench_harness_init(void);
/* One "# ..." line on stdout: CPUs, pinning, full or quick run. */
void bench_harness_describe(void);

#endif /* SHMKIT_BENCH_H */
