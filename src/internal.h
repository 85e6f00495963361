/*
 * internal.h - helpers shared by every layer of the library.  Not public.
 *
 * Atomics go only through the named wrappers below, so every ordering in
 * the code is one of a few spelled-out kinds and each call site carries a
 * comment naming what it orders and the operation it pairs with.
 * Internal symbols use the sk_ prefix; the linker map exports shmkit_* only.
 */
#ifndef SHMKIT_INTERNAL_H
#define SHMKIT_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shmkit.h"

#define SK_LIKELY(x) __builtin_expect(!!(x), 1)
#define SK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SK_COLD __attribute__((cold, noinline))
#define SK_CACHELINE 64
#define SK_ALIGNED_CL __attribute__((aligned(SK_CACHELINE)))
/* The unit of the L2 spatial prefetcher (Intel's "adjacent line"; AMD's
 * is alike): a miss on one line fetches its 128-byte-aligned buddy too.
 * Message slots that one side writes while the other polls start on such
 * a pair and fill it: a consumer reading slot i would otherwise pull in
 * the line of slot i + 1 that the producer is about to write, and the two
 * cores pass that line back and forth once more per message (README
 * "Performance": 32-byte round trips took 1.6x as long with 64-byte
 * slots). */
#define SK_PAIR 128
#define SK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- atomics ---------------------------------------------------------- */

#define sk_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define sk_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define sk_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define sk_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define sk_fetch_add(p, v, mo) __atomic_fetch_add((p), (v), (mo))
#define sk_fetch_and(p, v, mo) __atomic_fetch_and((p), (v), (mo))
#define sk_fetch_or(p, v, mo) __atomic_fetch_or((p), (v), (mo))
#define sk_exchange(p, v, mo) __atomic_exchange_n((p), (v), (mo))
/* Strong compare-and-swap; on failure *expected receives the current value. */
#define sk_cas(p, expected, desired, mo_ok, mo_fail) \
	__atomic_compare_exchange_n((p), (expected), (desired), false, (mo_ok), (mo_fail))
#define sk_fence_seq_cst() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define sk_fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define sk_fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)

static inline void sk_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* ---- time ------------------------------------------------------------- */

static inline int64_t sk_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t sk_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Absolute CLOCK_MONOTONIC deadline for a relative timeout: INT64_MAX for
 * "forever" (negative), now for "try once" (0). */
static inline int64_t sk_deadline(int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return INT64_MAX;
	int64_t now = sk_now_ns();
	return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

/* A waker killed between making its state visible and its futex wake
 * leaves sleepers that would wait out their whole timeout: every sleep on
 * a word another process wakes is cut into slices of at most this, after
 * which the sleeper re-checks its condition. */
#define SK_WAKE_SLICE_NS 100000000LL

static inline int64_t sk_slice(int64_t deadline)
{
	int64_t now = sk_now_ns();
	return deadline - now > SK_WAKE_SLICE_NS ? now + SK_WAKE_SLICE_NS : deadline;
}

/* ---- errors ----------------------------------------------------------- */

/* Record a human-readable detail for the current failure (printf-style)
 * and return err unchanged, so call sites read
 *   return sk_fail(-ENOSPC, "size %zu exceeds kernel.shmmax %lu", ...); */
int sk_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the detail at the start of a public entry point. */
void sk_clear_detail(void);

/* -errno of the last failed libc call, never 0 (defensive). */
static inline int sk_neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* ---- crash points (crash.c) ------------------------------------------ */

#ifdef SK_TESTING
void sk_crash_point(const char *where);
/* Arm (spec "NAME[:N]") or disarm (NULL) this process's crash point, as
 * SHMKIT_CRASH_AT does, e.g. in a forked child. */
void sk_crash_arm(const char *spec);
#define SK_CRASH_POINT(where) sk_crash_point(where)
#else
#define SK_CRASH_POINT(where) ((void)0)
#endif

/* ---- futex (sync.c) --------------------------------------------------- */

/* Wait on a shared (never FUTEX_PRIVATE) word until the absolute
 * CLOCK_MONOTONIC deadline (INT64_MAX = forever).  0 woken/changed/spurious,
 * -ETIMEDOUT.  EINTR is retried internally. */
int sk_futex_wait_until(const uint32_t *word, uint32_t expected, int64_t deadline);
int sk_futex_wake(const uint32_t *word, int n);
/* Services' event-count handshake (sync.c file top, "Services").  Waiter:
 * w = sk_ec_arm(ec) (sets the waiter flag, seq_cst, then a seq_cst fence);
 * test the condition; not ready: sk_futex_wait_until(&ec->word, w, ...).
 * Notifier: make the condition true with a seq_cst RMW, then
 * sk_ec_notify(ec), which increments (and wakes) only if the flag is set. */
uint32_t sk_ec_arm(shmkit_ec *ec);
void sk_ec_notify(shmkit_ec *ec);

/* ---- process liveness (live.c) ---------------------------------------- */

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 if the process does not exist.  A (pid, start) pair
 * names one process for the life of the machine: PID reuse gives a new
 * start time. */
uint64_t sk_proc_start(pid_t pid);
/* 1 if the process (pid, start) is alive, 0 if dead, start 0 = check pid
 * only (-1 if unknowable, e.g. a pid in another pid namespace). */
int sk_proc_alive(pid_t pid, uint64_t start);
/* This process's start time, cached after the first call (reset on fork). */
uint64_t sk_self_start(void);

#endif /* SHMKIT_INTERNAL_H */
