/*
 * sync.c - synchronization on shared memory: futex wait/wake, event
 * counts, a robust process-shared mutex and a counting semaphore.
 *
 * Every object here lives in memory that several processes map, each at
 * its own address.  So:
 *   - futexes are never FUTEX_PRIVATE_FLAG: the kernel keys a shared futex
 *     on the (inode or mm-independent page, offset) pair, which is what
 *     lets two processes that map the word at different addresses meet;
 *   - waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET),
 *     so retrying after EINTR or a spurious wake-up never extends the wait;
 *   - a waiter never trusts a wake-up: every loop re-reads the shared word
 *     and re-checks its condition and its deadline, so a hostile or dead
 *     peer can cost time up to the deadline but never a hang past it.
 *
 * The futex contract we lean on (kernel/futex/waitwake.c, "Basic futex
 * operation and ordering guarantees"): FUTEX_WAIT reads the word and queues
 * the waiter atomically with respect to FUTEX_WAKE (both under the hash
 * bucket lock, with a full barrier on each side).  So if a waker modifies
 * the word and *then* calls FUTEX_WAKE, any waiter whose in-kernel read saw
 * the old value is already queued and is woken; any waiter that reads
 * after the modification sees the new value and returns EAGAIN at once.
 * This is what every "no lost wake-up" argument below reduces to: the
 * waker changes a value the sleeper compares against, before waking.
 *
 * ---- Event count (shmkit_ec) -------------------------------------------
 *
 * One 32-bit word:  word = (counter << 1) | W
 * counter is 31 bits and wraps; W ("someone may sleep") is bit 0.
 *
 *   inc:   CAS(word, w -> (w + 2) & ~W) (release)        (I1; retry on fail)
 *          if (w & W) wake(all)                          (I3)
 *   wait:  w = load_acquire(word)                        (A1)
 *          if (w >> 1 != old) return 0
 *          if (!(w & W)) CAS(word, w -> w|W) else keep   (A2; retry on fail)
 *          futex_wait(word, w|W, deadline)               (A3), loop
 *
 * The increment clears W in the same RMW that moves the counter: W is
 * never cleared without the counter moving.  (An earlier form added 2,
 * then cleared W with a second RMW: a waiter that set W between the two
 * read the moved counter with W set, and after the clear another waiter
 * could set W again - the word went back to the value the first waiter
 * armed on, an ABA that the SPIN model of the MPMC channel (two consumers,
 * one dying) turned into a lost wake-up for the arm-first protocol below.)
 * So a waiter that armed on the word x|W and finds it still x|W knows that
 * no increment happened since.
 *
 * Ordering.  I1 is a release RMW: everything the incrementer wrote before
 * it (say a message in a ring) is visible to a waiter whose acquire load
 * A1 reads I1's value *or any later value in the word's modification
 * order*: the waiters' CAS A2 and fetch_or W1 (below) are RMWs, so they
 * continue I1's release sequence.  That is the only cross-location ordering
 * the event count provides through its value.  The W protocol itself lives
 * on a single word, where all RMWs are totally ordered (coherence), so A2
 * can be relaxed.
 *
 * No lost wake-up.  A waiter sleeps only if the kernel read x|W (A3) as it
 * queued.  An increment I1 after that read moves the word and, having read
 * W set (I1 reads the latest value: it is an RMW), wakes all (I3) after it:
 * by the futex contract the queued waiter is woken.  An increment before
 * the read changed the counter, so the kernel did not read x|W for the
 * old x and the waiter never slept.  A failed CAS at A2 means the word
 * changed: we simply loop and re-read.  Spurious wake-ups (a waiter for a
 * newer counter woken by an older I3) are harmless: it re-reads, finds
 * its counter unchanged, re-sets W and sleeps again.
 * Cost: inc is one load and one locked CAS (a retry only if the word moved
 * meanwhile) and no system call while W is clear; W is set only by a
 * waiter about to sleep.  A waiter that times out leaves W set: the next
 * inc pays one needless wake (benign, self-clearing).
 *
 * ---- Services: arm, test, sleep; the conditional notify --------------------
 *
 * Services (wait.h sk_wait_for's sleep loop, waitfd.c's service arming)
 * wait for a condition on other words (a slot word, a bus record), not for
 * a counter value, so they use the word differently:
 *
 *   arm:    w = fetch_or(word, W, seq_cst) | W            (W1, every time)
 *           fence(seq_cst)                                (F)
 *           test the condition; ready: return             (R1)
 *           futex_wait(word, w, deadline)                 (A3, on exactly w)
 *   notify: make the condition true: a seq_cst RMW        (W2)
 *           if (load(word, seq_cst) & W) inc as above     (R2, then I1-I3)
 *
 * sk_ec_notify is that notify: a plain load and no locked instruction when
 * nobody sleeps - the MPMC publish (P7) and take/release (C3'/C6) and the
 * bus commit (P5) use it.  It is correct only when the caller made its
 * condition true with a seq_cst RMW; notifiers that make it true with a
 * release store (SPSC publish, the journal) keep shmkit_ec_inc, which the
 * armed waiter handles as well (below).
 *
 * No lost wake-up with sk_ec_notify (Dekker's shape, C11 [atomics.order]):
 * suppose R1 misses W2 (reads the condition word's value before W2 in its
 * modification order: R1 is coherence-ordered before W2).  F happens before
 * R1 and W2 is seq_cst, so F precedes W2 in the single total order S.  W1
 * is sequenced before F and W2 before R2, all seq_cst, so W1 <S F <S W2 <S
 * R2.  R2 is a seq_cst load of the word after W1 in S, so it cannot read a
 * value older than W1's: it reads W1's (W set: the notifier increments and
 * wakes) or a later one.  A later value keeps W unless an increment (I1)
 * cleared it, and that I1 moved the counter, which never comes back to w
 * (31 bits: not within 2^31 increments); so either R2 sees W and wakes
 * us, or the word is no longer w and our futex_wait (the kernel compares
 * against w as it queues) returns at once or is woken by that I1's I3.
 * If R1 does see W2 the waiter does not sleep.  On x86 W2 is a lock
 * cmpxchg either way and R2 a plain mov: the saving is the lock xadd.
 *
 * The unconditional shmkit_ec_inc after a release store: if I1 precedes W1
 * in the word's modification order, W1 (an acquire RMW) reads I1's release
 * sequence and R1 sees the condition; otherwise I1 follows W1, reads W set
 * (an RMW reads the latest value) and wakes, or the word moved from w
 * before the kernel compared.  Either way no wake-up is lost.
 *
 * Cost to the waiter: one locked RMW and a fence per sleep, on a path
 * that is about to make a system call.  A waiter that arms and then finds
 * the condition true leaves W set; the next notify pays one needless wake
 * (as a timed-out waiter does).  sk_wait_for re-tests after a wake before
 * it arms again, so a woken waiter does not leave W set behind it.
 *
 * ---- Semaphore (shmkit_sem) ---------------------------------------------
 *
 *   post:  CAS count c -> c+1 (seq_cst; refuses past INT32_MAX)   (P1)
 *          if (fetch_add(waiters, 0, seq_cst) != 0) wake(count, 1) (P2)
 *   wait:  CAS count c -> c-1 while c > 0 (acquire)              (S1)
 *          fetch_add(waiters, 1, seq_cst)                        (S2)
 *          if (fetch_add(count, 0, seq_cst) == 0)                (S3)
 *              futex_wait(count, 0, deadline)                    (S4)
 *          fetch_add(waiters, -1), loop to S1                    (S5)
 *
 * Ordering.  P1 releases the poster's prior writes; S1's acquire CAS pairs
 * with it, so a consumer that takes a unit sees what the producer wrote
 * before posting it.
 *
 * No lost wake-up.  This is the store-buffering (Dekker) shape over two
 * words: the poster writes count then reads waiters, the waiter writes
 * waiters then reads count.  The reads P2 and S3 are seq_cst RMWs (adding
 * 0), not plain loads, so all four operations sit in the single total
 * order of seq_cst operations and each read returns the latest value in
 * its word's modification order.  If S2 precedes P2 in that order, P2
 * sees waiters >= 1 and wakes; otherwise P1 < P2 < S2 < S3, so S3 sees
 * count > 0 (or a taker consumed the unit) and the waiter does not sleep.
 * (RMWs rather than seq_cst fences: ThreadSanitizer does not model
 * fences, and the cost on the post path is alike: one locked instruction
 * on a cache line P1 already owns.)  If S3 saw 0 and the post lands
 * between S3 and the kernel's own read in S4, the kernel sees count != 0
 * and returns at once.  A sleeper stays counted in waiters for as long as
 * it sleeps (S5 runs after the futex returns), so P2 never skips a wake a
 * sleeper needs.  wake(1) per unit suffices: each post adds one unit and
 * wakes at most one sleeper to take it; a woken sleeper that loses the
 * unit to a fast-path taker found count 0 because that unit was consumed,
 * which is correct.  A process killed while counted in waiters leaves the
 * counter high forever: posts then make one needless wake call each
 * (benign; correctness never depends on waiters being exact).
 *
 * ---- Pollable fds (shmkit_ec_fd, shmkit_sem_fd) ---------------------------
 *
 * Both are a waitfd (waitfd.c, the one mechanism every service uses) in a
 * small handle, shmkit_syncfd.  Event count: sk_waitfd_arm_ec does A1-A3
 * above with the wait queued in the waitfd instead of this thread, so the
 * event-count proof carries over unchanged.
 *   Semaphore: the fd is a registered waiter that sleeps on count == 0,
 * with one difference - it does not take the unit, so a wake(1) that lands
 * on it could leave a real sleeper asleep with count > 0 (until its
 * slice).  So an fd registers in the upper half of waiters (SEM_FD_ONE,
 * once, at open: S2 for the fd) and a post that sees any fd registered
 * wakes all (P2): sleepers that lose the unit find count 0 and sleep
 * again.  Arm (open and ack) is S3/S4 with the wait queued in the waitfd:
 *   open:  fetch_add(waiters, SEM_FD_ONE, seq_cst)               (S2f)
 *   arm:   queue the wait on count == 0 (sk_waitfd_arm)          (S4f)
 *          if (fetch_add(count, 0, seq_cst) != 0) signal         (S3f)
 *   close: fetch_add(waiters, -SEM_FD_ONE)                       (S5f)
 * No lost wake-up: S2f precedes every arm.  A post whose P2 follows S2f in
 * the total order sees the fd and wakes all after P1: the queued wait is
 * woken, or was queued after P1 and the kernel read count != 0 (completes
 * at once).  A post whose P2 precedes S2f has P1 before S3f of every arm,
 * so S3f sees its unit (or someone took it) and signals.  A poster killed
 * between P1 and P2 leaves the io_uring kind armed (the thread kind looks
 * again every slice): callers poll with a timeout and ack, which looks
 * again (S3f).  Bounds: at most SEM_FD_MAX fds registered at a time
 * (shmkit_sem_fd refuses more, -EUSERS); sleepers past SEM_FD_ONE - 1
 * carry into the fd half, which only makes posts wake all.  A process
 * killed with an fd open leaves it counted: posts wake all from then on
 * (benign, as a dead sleeper's count).
 *
 * ---- Mutex (shmkit_mutex) -----------------------------------------------
 *
 * A glibc pthread_mutex_t, PTHREAD_PROCESS_SHARED | PTHREAD_MUTEX_ROBUST |
 * PTHREAD_MUTEX_ERRORCHECK, placed in the 64-byte opaque union.  We cannot
 * write our own robust futex: the kernel walks at most one robust list per
 * thread (set_robust_list), and glibc owns it.  All ordering is glibc's:
 * lock is acquire, unlock is release.  The owner's TID is stored in the
 * lock word, so all users must share one PID namespace.  Do not unmap the
 * memory while holding the lock: the kernel walks the robust list at exit
 * through the holder's own mapping.
 *
 * Pollable fd (shmkit_mutex_fd).  A waitfd queued on the lock word itself
 * (glibc's __lock, offset 0: the robust futex word whose layout, TID |
 * FUTEX_WAITERS | FUTEX_OWNER_DIED, is the kernel's ABI), readable when the
 * TID bits are 0: free, or its owner died (then a try returns -EOWNERDEAD,
 * as any lock does).  glibc's unlock wakes one sleeper, and only when one
 * set FUTEX_WAITERS; a wait queued by an fd must neither take that one
 * wake from a real sleeper nor be missed.  So an fd registers in a word of
 * ours past the pthread_mutex_t (mfd_count, MUTEX_FD_ONE per fd) and
 * shmkit_mutex_unlock, after glibc's unlock, wakes all while any is:
 *   open:   fetch_add(mfd_count, 1, seq_cst)                     (M1f)
 *   arm:    v = load(word); queue the wait on word == v          (M2f)
 *           fence(seq_cst); if TID(load(word)) == 0 signal      (M3f)
 *   unlock: glibc: exchange(word, 0, release) [+ wake 1]         (U1)
 *           fence(seq_cst); if (load(mfd_count)) wake all        (U2)
 *   close:  fetch_add(mfd_count, -1)                             (M4f)
 * No lost wake-up: M1f precedes every arm.  Of U1 and M3f's load, and of
 * the arm's fence and U2's load, the two fences order one before the
 * other: M3f sees the word free (or taken again: then its unlock is the
 * next U1), or U2 sees the fd and wakes all after U1 - the queued wait
 * wakes, or it was queued after U1 and the kernel read word != v (done at
 * once; the one case it reads v again is the same owner having relocked,
 * when not signalling is right).  Real sleepers lose nothing: every
 * unlock with an fd registered wakes them all.  With no fd registered the
 * unlock pays the fence and one load, nothing more; lock is unchanged.
 * Dead owner: the kernel's exit walk marks the word (TID 0, OWNER_DIED)
 * and wakes one waiter only if FUTEX_WAITERS was set, so the io_uring
 * kind may stay armed (the thread kind looks again every slice).  fd users
 * poll with a timeout and ack; ack is M2f/M3f, a look at the word exactly
 * as the lock path (glibc's try) looks, and the kernel has done the
 * liveness part: an owner's word is marked before its TID can be reused.
 * Bounds: MUTEX_FD_MAX fds at a time (-EUSERS past it); a count left by a
 * process killed with an fd open, or any bad value, only makes unlocks
 * wake all (benign, never read as anything else).
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "peer.h"
#include "wait.h"
#include "waitfd.h"

#define NS_PER_SEC 1000000000
#define EC_FLAG 1u   /* bit 0 of the event count word: a waiter may sleep */
#define EC_ONE 2u    /* one step of the counter, which sits above the flag */
#define SEM_MAX ((uint32_t)INT32_MAX)
#define SEM_FD_ONE (1u << 16)    /* one registered fd in shmkit_sem.waiters */
#define SEM_FD_MAX (UINT32_MAX / SEM_FD_ONE - 1) /* fds at a time per semaphore */
#define MUTEX_FD_ONE 1u         /* one registered fd in a mutex's mfd_count */
#define MUTEX_FD_MAX 65534u      /* fds at a time per mutex */
#define MUTEX_FD_OFF 56          /* mfd_count: past any glibc pthread_mutex_t */

/* Failure without a detail: clear any stale one, return err. */
static int sync_err(int err)
{
	sk_clear_detail();
	return err;
}

/* ---- futex ------------------------------------------------------------ */

static inline long sys_futex(const uint32_t *word, int op, uint32_t val,
                             const struct timespec *ts, uint32_t val3)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, val3);
}

/* wait.h: the adaptive spin budget of this thread. */
__thread struct sk_spin_state sk_spin;

int sk_futex_wait_until(const uint32_t *word, uint32_t expected, int64_t deadline)
{
	struct timespec ts, *tsp = NULL;

	if (deadline != INT64_MAX) {
		if (deadline < 0)
			deadline = 0;
		ts.tv_sec = deadline / NS_PER_SEC;
		ts.tv_nsec = deadline % NS_PER_SEC;
		tsp = &ts;
	}
	for (;;) {
		/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time
		 * (no FUTEX_CLOCK_REALTIME), so a retry never extends it. */
		if (sys_futex(word, FUTEX_WAIT_BITSET, expected, tsp,
		              FUTEX_BITSET_MATCH_ANY) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0; /* *word != expected already */
		return errno == ETIMEDOUT ? -ETIMEDOUT : sk_neg_errno();
	}
}

int sk_futex_wake(const uint32_t *word, int n)
{
	if (n == 0)
		return 0; /* the kernel would wake one for n == 0 */
	long r = sys_futex(word, FUTEX_WAKE, n < 0 ? INT_MAX : (uint32_t)n, NULL, 0);
	return r < 0 ? sk_neg_errno() : (int)r;
}

static inline bool word_ok(const uint32_t *word)
{
	return word && ((uintptr_t)word & (alignof(uint32_t) - 1)) == 0;
}

int shmkit_futex_wait(const uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	if (!word_ok(word))
		return sk_fail(-EINVAL, "futex word is NULL or not 4-byte aligned");
	if (timeout_ns == 0) {
		/* Acquire: a caller that sees the value change and returns
		 * may then read data published before it (pairs with the
		 * caller's own release store of the word). */
		if (sk_load_acquire(word) == expected)
			return sync_err(-EAGAIN);
		return 0;
	}
	int r = sk_futex_wait_until(word, expected, sk_deadline(timeout_ns));
	return r < 0 ? sync_err(r) : 0;
}

int shmkit_futex_wake(const uint32_t *word, int n)
{
	if (!word_ok(word))
		return sk_fail(-EINVAL, "futex word is NULL or not 4-byte aligned");
	int r = sk_futex_wake(word, n);
	return r < 0 ? sync_err(r) : r;
}

/* ---- event count ------------------------------------------------------ */

void shmkit_ec_init(shmkit_ec *ec)
{
	if (!ec)
		return;
	/* Relaxed: initialisation orders nothing by itself; publishing the
	 * object to other processes is the enclosing segment's READY
	 * release store. */
	sk_store_relaxed(&ec->word, 0);
}

uint32_t shmkit_ec_value(const shmkit_ec *ec)
{
	if (!ec)
		return 0;
	/* Acquire: pairs with the release fetch_add in shmkit_ec_inc (or any
	 * RMW later in its release sequence), so a caller that sees the new
	 * value sees what the incrementer wrote before incrementing. */
	return sk_load_acquire(&ec->word) >> 1;
}

void shmkit_ec_inc(shmkit_ec *ec)
{
	if (SK_UNLIKELY(!ec))
		return;
	/* Relaxed: only a guess for the CAS below, which re-reads. */
	uint32_t w = sk_load_relaxed(&ec->word);
	/* I1.  Release on success: publishes the caller's prior writes to a
	 * waiter whose acquire load (A1 / shmkit_ec_value) or RMW (W1) reads
	 * this value or a later one of its release sequence.  One RMW moves
	 * the counter (it wraps out of bit 31) and clears the flag: W is
	 * never cleared without the counter moving (file top).  Relaxed on
	 * failure: we retry with the value read. */
	while (!sk_cas(&ec->word, &w, (w + EC_ONE) & ~EC_FLAG, __ATOMIC_RELEASE,
	               __ATOMIC_RELAXED))
		;
	if (SK_UNLIKELY(w & EC_FLAG))
		sk_futex_wake(&ec->word, -1); /* I3: wake all */
}

uint32_t sk_ec_arm(shmkit_ec *ec)
{
	/* W1.  seq_cst RMW: the waiter's "write" half of the Dekker pair (file
	 * top, "Services"); pairs with the notifier's seq_cst load R2 in
	 * sk_ec_notify.  As an RMW it also reads the latest value, so an
	 * unconditional inc after it sees W. */
	uint32_t w = sk_fetch_or(&ec->word, EC_FLAG, __ATOMIC_SEQ_CST) | EC_FLAG;
	/* F.  Orders W1 before the caller's condition test R1 (any order):
	 * if R1 misses the notifier's seq_cst W2, then F precedes W2 in S. */
	sk_fence_seq_cst();
	return w;
}

void sk_ec_notify(shmkit_ec *ec)
{
	/* R2.  seq_cst load, after the caller's seq_cst RMW W2 (its condition)
	 * in S: pairs with W1/F of sk_ec_arm (file top, "Services").  W
	 * clear: nobody armed before W2, so nobody can sleep on this
	 * condition - no increment, no locked instruction. */
	if (SK_UNLIKELY(__atomic_load_n(&ec->word, __ATOMIC_SEQ_CST) & EC_FLAG))
		shmkit_ec_inc(ec);
}

/* Slow path: advertise a sleeper (W) and sleep until the counter moves
 * or the deadline passes.  Proof of no lost wake-up at the file top. */
static int ec_wait_slow(shmkit_ec *ec, uint32_t old, int64_t deadline)
{
	for (;;) {
		/* A1.  Acquire: pairs with the release fetch_add I1 of the
		 * increment that moved the counter. */
		uint32_t w = sk_load_acquire(&ec->word);
		if ((w >> 1) != old)
			return 0;
		if (sk_now_ns() >= deadline)
			return sync_err(-ETIMEDOUT);
		/* A2.  Relaxed both ways: the flag handshake is on this one
		 * word (coherence orders it against I1); on failure we
		 * loop to A1, whose acquire load does the ordering. */
		if (!(w & EC_FLAG) &&
		    !sk_cas(&ec->word, &w, w | EC_FLAG, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		int r = sk_futex_wait_until(&ec->word, w | EC_FLAG, deadline); /* A3 */
		if (r < 0 && r != -ETIMEDOUT)
			return sync_err(r);
	}
}

int shmkit_ec_wait(shmkit_ec *ec, uint32_t old, int64_t timeout_ns)
{
	if (!ec)
		return sk_fail(-EINVAL, "event count is NULL");
	old &= UINT32_MAX >> 1; /* the counter has 31 bits */
	/* Acquire: as A1 in ec_wait_slow. */
	if ((sk_load_acquire(&ec->word) >> 1) != old)
		return 0;
	if (timeout_ns == 0) /* would wait: -EAGAIN, as every try-once call */
		return sync_err(-EAGAIN);
	return ec_wait_slow(ec, old, sk_deadline(timeout_ns));
}

/* ---- robust mutex ----------------------------------------------------- */

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(shmkit_mutex),
               "pthread_mutex_t does not fit in shmkit_mutex");
_Static_assert(alignof(pthread_mutex_t) <= alignof(shmkit_mutex),
               "shmkit_mutex is under-aligned for pthread_mutex_t");

static inline pthread_mutex_t *mtx(shmkit_mutex *m)
{
	return (pthread_mutex_t *)(void *)m->opaque;
}

static inline bool mutex_ok(const shmkit_mutex *m)
{
	return m && ((uintptr_t)m & (alignof(shmkit_mutex) - 1)) == 0;
}

_Static_assert(sizeof(pthread_mutex_t) <= MUTEX_FD_OFF,
               "no room for the fd count past pthread_mutex_t");
_Static_assert(offsetof(pthread_mutex_t, __data.__lock) == 0,
               "glibc's robust futex word is not at offset 0");

/* The robust futex word (file top, "Pollable fd"). */
static inline uint32_t *mutex_word(shmkit_mutex *m)
{
	return (uint32_t *)(void *)m->opaque;
}

/* The count of registered fds (file top, "Pollable fd"). */
static inline uint32_t *mutex_fd_count(shmkit_mutex *m)
{
	return (uint32_t *)(void *)(m->opaque + MUTEX_FD_OFF);
}

/* Map a pthread result onto the library's negative errno contract. */
static int mutex_result(int r)
{
	switch (r) {
	case 0:
		return 0;
	case EBUSY:
		return sync_err(-EAGAIN);
	case ETIMEDOUT:
		return sync_err(-ETIMEDOUT);
	case EOWNERDEAD:
		return sk_fail(-EOWNERDEAD, "mutex holder died: the lock is held; "
		               "repair the state, then call shmkit_mutex_consistent()");
	case ENOTRECOVERABLE:
		return sk_fail(-ENOTRECOVERABLE, "mutex unusable: a holder died and "
		               "the state was never marked consistent");
	case EDEADLK:
		return sk_fail(-EDEADLK, "mutex already held by this thread");
	case EPERM:
		return sk_fail(-EPERM, "mutex not held by this thread");
	default:
		return sync_err(-r);
	}
}

int shmkit_mutex_init(shmkit_mutex *m)
{
	pthread_mutexattr_t a;
	int r;

	if (!mutex_ok(m))
		return sk_fail(-EINVAL, "mutex is NULL or not 8-byte aligned");
	sk_clear_detail();
	if ((r = pthread_mutexattr_init(&a)) != 0)
		return -r;
	if ((r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
	    (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
	    (r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) == 0)
		r = pthread_mutex_init(mtx(m), &a);
	pthread_mutexattr_destroy(&a);
	/* Relaxed: init precedes every sharing of the mutex. */
	__atomic_store_n(mutex_fd_count(m), 0, __ATOMIC_RELAXED);
	return -r;
}

#if defined(__SANITIZE_THREAD__)
#define SK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SK_TSAN 1
#endif
#endif

#ifdef SK_TSAN
/* ThreadSanitizer builds only: TSan (LLVM 14, GCC 12) does not intercept
 * pthread_mutex_clocklock, so it would never see the lock taken - every
 * unlock a misuse, every section unordered.  pthread_mutex_timedlock it
 * does see: wait in slices of at most 10 ms of CLOCK_REALTIME, up to the
 * monotonic deadline (a realtime step then shortens or lengthens only a
 * slice). */
static int mutex_clocklock(pthread_mutex_t *p, int64_t deadline)
{
	for (;;) {
		int64_t now = sk_now_ns(), slice = deadline - now;
		if (slice <= 0)
			return pthread_mutex_trylock(p) == EBUSY ? ETIMEDOUT : 0;
		int64_t rt = sk_realtime_ns() + (slice < 10000000 ? slice : 10000000);
		struct timespec ts = { rt / NS_PER_SEC, rt % NS_PER_SEC };
		int r = pthread_mutex_timedlock(p, &ts);
		if (r != ETIMEDOUT)
			return r;
	}
}
#else
static int mutex_clocklock(pthread_mutex_t *p, int64_t deadline)
{
	struct timespec ts = { deadline / NS_PER_SEC, deadline % NS_PER_SEC };

	return pthread_mutex_clocklock(p, CLOCK_MONOTONIC, &ts);
}
#endif

static int mutex_lock_until(pthread_mutex_t *p, int64_t deadline)
{
	if (deadline == INT64_MAX)
		return pthread_mutex_lock(p);
	return mutex_clocklock(p, deadline);
}

int shmkit_mutex_lock(shmkit_mutex *m, int64_t timeout_ns)
{
	if (!mutex_ok(m))
		return sk_fail(-EINVAL, "mutex is NULL or not 8-byte aligned");
	if (timeout_ns == 0)
		return mutex_result(pthread_mutex_trylock(mtx(m)));
	return mutex_result(mutex_lock_until(mtx(m), sk_deadline(timeout_ns)));
}

int shmkit_mutex_unlock(shmkit_mutex *m)
{
	if (!mutex_ok(m))
		return sk_fail(-EINVAL, "mutex is NULL or not 8-byte aligned");
	int r = pthread_mutex_unlock(mtx(m)); /* U1 */
	if (r != 0)
		return mutex_result(r);
	/* U2.  A seq_cst fence between glibc's release exchange of the word
	 * (U1) and our read of the fd count: pairs with the fence of an
	 * arm's M3f (file top, "Pollable fd").  The load itself may be
	 * relaxed: the fences order it. */
	sk_fence_seq_cst();
	if (sk_load_relaxed(mutex_fd_count(m)) != 0)
		sk_futex_wake(mutex_word(m), -1);
	return 0;
}

int shmkit_mutex_consistent(shmkit_mutex *m)
{
	if (!mutex_ok(m))
		return sk_fail(-EINVAL, "mutex is NULL or not 8-byte aligned");
	int r = pthread_mutex_consistent(mtx(m));
	if (r == EINVAL)
		return sk_fail(-EINVAL, "mutex is not in the owner-died state");
	return mutex_result(r);
}

/* ---- semaphore -------------------------------------------------------- */

/* Checks the address itself, not &s->count: no member access through a
 * misaligned pointer (undefined; UBSan reports it). */
static inline bool sem_ok(const shmkit_sem *s)
{
	return s && ((uintptr_t)s & (alignof(shmkit_sem) - 1)) == 0;
}

int shmkit_sem_init(shmkit_sem *s, unsigned value)
{
	if (!sem_ok(s))
		return sk_fail(-EINVAL, "semaphore is NULL or not 4-byte aligned");
	if (value > SEM_MAX)
		return sk_fail(-EINVAL, "semaphore value %u exceeds INT32_MAX", value);
	/* Relaxed: publication to other processes is the enclosing
	 * segment's READY release store. */
	sk_store_relaxed(&s->count, (uint32_t)value);
	sk_store_relaxed(&s->waiters, 0);
	return 0;
}

/* S1: take one unit if there is one.  Bounded by others' progress: each
 * failed CAS means another process changed count. */
static inline bool sem_trydec(shmkit_sem *s)
{
	/* Relaxed: only a guess for the CAS below, which re-reads. */
	uint32_t c = sk_load_relaxed(&s->count);

	while (c > 0) {
		/* Acquire on success: pairs with the poster's seq_cst (so
		 * release) CAS P1; the unit's producer writes are visible.
		 * Relaxed on failure: we only retry. */
		if (sk_cas(&s->count, &c, c - 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}

int shmkit_sem_post(shmkit_sem *s)
{
	if (SK_UNLIKELY(!s))
		return sk_fail(-EINVAL, "semaphore is NULL");
	/* Relaxed: only a guess for the CAS below. */
	uint32_t c = sk_load_relaxed(&s->count);
	do {
		if (SK_UNLIKELY(c >= SEM_MAX))
			return sk_fail(-EOVERFLOW, "semaphore count at INT32_MAX");
		/* P1.  seq_cst on success: releases the poster's writes to
		 * the taker's acquire CAS (S1), and is the "write count"
		 * half of the P1/P2 vs S2/S3 handshake.  Relaxed on
		 * failure: we only retry. */
	} while (!sk_cas(&s->count, &c, c + 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	/* P2.  A seq_cst read (RMW adding 0) of waiters, after P1 in the
	 * total order.  Pairs with S2/S3 in sem_wait_slow: of "count went
	 * up" and "a waiter registered", the other side sees at least one. */
	uint32_t n = sk_fetch_add(&s->waiters, 0, __ATOMIC_SEQ_CST);
	if (n != 0) /* an fd registered: wake all (file top, "Pollable fds") */
		sk_futex_wake(&s->count, n >= SEM_FD_ONE ? -1 : 1);
	return 0;
}

/* A poster killed between P1 (count up) and its wake leaves a waiter
 * asleep on a count that is no longer 0: waits are cut into slices of
 * SK_WAKE_SLICE_NS, after which the waiter looks again, so a unit posted
 * by a dying poster is taken within one slice. */
static int sem_wait_slow(shmkit_sem *s, int64_t deadline)
{
	for (;;) {
		if (sem_trydec(s))
			return 0;
		if (sk_now_ns() >= deadline)
			return sync_err(-ETIMEDOUT);
		/* S2.  seq_cst: register before S3 in the total order; pairs
		 * with the poster's read P2. */
		sk_fetch_add(&s->waiters, 1, __ATOMIC_SEQ_CST);
		int r = 0;
		/* S3.  A seq_cst read (RMW adding 0) of count, after S2;
		 * pairs with the poster's P1.  The kernel re-reads in S4. */
		if (sk_fetch_add(&s->count, 0, __ATOMIC_SEQ_CST) == 0)
			r = sk_futex_wait_until(&s->count, 0, sk_slice(deadline)); /* S4 */
		/* S5.  Relaxed: unregistering orders nothing; a stale count of
		 * one only costs a poster a needless wake. */
		sk_fetch_add(&s->waiters, UINT32_MAX, __ATOMIC_RELAXED);
		if (r < 0 && r != -ETIMEDOUT)
			return sync_err(r);
	}
}

int shmkit_sem_wait(shmkit_sem *s, int64_t timeout_ns)
{
	if (SK_UNLIKELY(!s))
		return sk_fail(-EINVAL, "semaphore is NULL");
	if (sem_trydec(s))
		return 0;
	if (timeout_ns == 0)
		return sync_err(-EAGAIN);
	return sem_wait_slow(s, sk_deadline(timeout_ns));
}

int shmkit_sem_value(const shmkit_sem *s)
{
	if (!s)
		return sk_fail(-EINVAL, "semaphore is NULL");
	/* Relaxed: a snapshot that orders nothing; taking a unit goes
	 * through shmkit_sem_wait. */
	uint32_t c = sk_load_relaxed(&s->count);
	if (c > SEM_MAX)
		return sk_fail(-EBADMSG, "semaphore count %u exceeds INT32_MAX", c);
	return (int)c;
}

/* ---- pollable fds (file top, "Pollable fds") ------------------------------ */

struct shmkit_syncfd {
	struct sk_waitfd *w;
	shmkit_ec *ec;          /* an event count's fd, or */
	shmkit_sem *sem;        /* a semaphore's (registered in its waiters) */
	shmkit_mutex *mutex;    /* a mutex's (registered in its fd count) */
	uint32_t *reg, reg_one; /* the registration: close takes reg_one off *reg */
	unsigned fork_gen;      /* the registration is this process's */
};

/* Open a handle around a fresh waitfd.  0 or -errno, nothing left open. */
static int syncfd_open(struct shmkit_syncfd **out)
{
	struct shmkit_syncfd *f = calloc(1, sizeof(*f));
	int err;

	if (!f)
		return sk_fail(-ENOMEM, "out of memory for a pollable fd");
	if ((err = sk_waitfd_open(&f->w))) {
		free(f);
		return sk_fail(err, "cannot make a pollable fd");
	}
	f->fork_gen = sk_fork_gen();
	*out = f;
	return 0;
}

/* Register an fd in *reg (one per fd, at most max at a time), then open
 * the handle: S2f (semaphore) or M1f (mutex) of the file top.  0 or
 * -errno, nothing left registered or open. */
static int syncfd_register(struct shmkit_syncfd **out, uint32_t *reg, uint32_t one,
                           uint32_t max, const char *what)
{
	/* Relaxed: only a guess for the CAS below, which re-reads. */
	uint32_t n = sk_load_relaxed(reg);
	int err;

	do {
		if (n / one >= max)
			return sk_fail(-EUSERS, "%u pollable fds already registered on this %s",
			               n / one, what);
		/* S2f / M1f.  seq_cst: the registration precedes every arm's
		 * S3f / M3f in the total order; pairs with the poster's P2 or
		 * the unlocker's U2.  Relaxed on failure: we only retry. */
	} while (!sk_cas(reg, &n, n + one, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	if ((err = syncfd_open(out))) {
		/* S5f / M4f.  Relaxed: unregistering orders nothing. */
		sk_fetch_add(reg, 0u - one, __ATOMIC_RELAXED);
		return err;
	}
	(*out)->reg = reg;
	(*out)->reg_one = one;
	return 0;
}

static int syncfd_arm_err(int err)
{
	return sk_fail(err, "cannot arm the pollable fd");
}

/* Arm a fresh handle and hand it out: the fd, or -errno with the handle
 * closed (and unregistered) and *out untouched. */
static int syncfd_start(struct shmkit_syncfd *f, struct shmkit_syncfd **out,
                        int (*arm)(struct shmkit_syncfd *f))
{
	int err = arm(f);

	if (err) {
		shmkit_syncfd_close(f);
		return err;
	}
	*out = f;
	return sk_waitfd_fd(f->w);
}

int shmkit_ec_fd(shmkit_syncfd **out, shmkit_ec *ec, uint32_t old)
{
	struct shmkit_syncfd *f;
	int err;

	if (!out || !ec)
		return sk_fail(-EINVAL, "out or event count is NULL");
	if ((err = syncfd_open(&f)))
		return err;
	f->ec = ec;
	if ((err = sk_waitfd_arm_ec(f->w, ec, old))) {
		shmkit_syncfd_close(f);
		return syncfd_arm_err(err);
	}
	*out = f;
	return sk_waitfd_fd(f->w);
}

int shmkit_ec_ack_fd(shmkit_syncfd *f, uint32_t old)
{
	if (!f || !f->ec)
		return sk_fail(-EINVAL, "not an event count's fd (shmkit_ec_fd)");
	int err = sk_waitfd_arm_ec(f->w, f->ec, old);
	return err ? syncfd_arm_err(err) : 0;
}

/* S4f, then S3f (file top): readable when a unit may be there. */
static int sem_fd_arm(struct shmkit_syncfd *f)
{
	int err = sk_waitfd_arm(f->w, &f->sem->count, 0);

	if (err)
		return syncfd_arm_err(err);
	/* S3f.  A seq_cst read (RMW adding 0) after the registration S2f;
	 * pairs with the poster's P1/P2 as S3 does. */
	if (sk_fetch_add(&f->sem->count, 0, __ATOMIC_SEQ_CST) != 0 &&
	    (err = sk_waitfd_signal(f->w)))
		return sk_fail(err, "cannot signal the pollable fd");
	return 0;
}

int shmkit_sem_fd(shmkit_syncfd **out, shmkit_sem *s)
{
	struct shmkit_syncfd *f;
	int err;

	if (!out || !sem_ok(s))
		return sk_fail(-EINVAL, "out or semaphore is NULL, or it is not 4-byte aligned");
	if ((err = syncfd_register(&f, &s->waiters, SEM_FD_ONE, SEM_FD_MAX, "semaphore")))
		return err;
	f->sem = s;
	return syncfd_start(f, out, sem_fd_arm);
}

int shmkit_sem_ack_fd(shmkit_syncfd *f)
{
	if (!f || !f->sem)
		return sk_fail(-EINVAL, "not a semaphore's fd (shmkit_sem_fd)");
	return sem_fd_arm(f);
}

/* M2f, then M3f (file top, "Pollable fd"): readable when the lock word
 * says free or owner-died. */
static int mutex_fd_arm(struct shmkit_syncfd *f)
{
	uint32_t *word = mutex_word(f->mutex);
	/* M2f.  Relaxed: only the value to queue on; the kernel compares
	 * it again, and M3f below looks after the queueing. */
	int err = sk_waitfd_arm(f->w, word, sk_load_relaxed(word));

	if (err)
		return syncfd_arm_err(err);
	/* M3f.  A seq_cst fence after the queueing (and after M1f), then a
	 * read of the word: pairs with the unlocker's U2 fence. */
	sk_fence_seq_cst();
	if ((sk_load_relaxed(word) & FUTEX_TID_MASK) == 0 && (err = sk_waitfd_signal(f->w)))
		return sk_fail(err, "cannot signal the pollable fd");
	return 0;
}

int shmkit_mutex_fd(shmkit_syncfd **out, shmkit_mutex *m)
{
	struct shmkit_syncfd *f;
	int err;

	if (!out || !mutex_ok(m))
		return sk_fail(-EINVAL, "out or mutex is NULL, or it is not 8-byte aligned");
	if ((err = syncfd_register(&f, mutex_fd_count(m), MUTEX_FD_ONE, MUTEX_FD_MAX, "mutex")))
		return err;
	f->mutex = m;
	return syncfd_start(f, out, mutex_fd_arm);
}

int shmkit_mutex_ack_fd(shmkit_syncfd *f)
{
	if (!f || !f->mutex)
		return sk_fail(-EINVAL, "not a mutex's fd (shmkit_mutex_fd)");
	return mutex_fd_arm(f);
}

int shmkit_syncfd_close(shmkit_syncfd *f)
{
	if (!f)
		return 0;
	sk_waitfd_close(f->w); /* the fd, the ring or the helper (joined) */
	/* S5f / M4f.  Relaxed: unregistering orders nothing; a forked
	 * child's copy is not registered (the parent's registration stays). */
	if (f->reg && f->fork_gen == sk_fork_gen())
		sk_fetch_add(f->reg, 0u - f->reg_one, __ATOMIC_RELAXED);
	free(f);
	return 0;
}
