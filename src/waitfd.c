/*
 * waitfd.c - a pollable fd that becomes readable when a shared futex word
 * is woken (API and caveats in waitfd.h).
 *
 * ---- Why a futex, and why not the usual fds ------------------------------
 *
 * Every shmkit service already wakes sleepers by changing a 32-bit word in
 * the shared segment and calling FUTEX_WAKE on it (event counts, sync.c).
 * An event loop needs the same wake-up as a readable descriptor.  The
 * usual ways to get one each fail somewhere the memory itself reaches:
 *   - abstract UNIX sockets live in a network namespace: a waker in
 *     another one (a container, `unshare -n`) cannot reach the name;
 *   - FIFOs and named sockets are files: a crash leaves them behind, and
 *     a mount namespace or a private /tmp hides them;
 *   - an eventfd cannot reach an unrelated process at all (it would need
 *     SCM_RIGHTS over some rendezvous socket, or pidfd_getfd with ptrace
 *     rights over the waiter).
 * A futex is keyed by the kernel on the shared page (inode or
 * mm-independent page, and offset) as long as it is not FUTEX_PRIVATE, so
 * a waiter here is woken by whoever maps the same memory: any namespace,
 * any backend, any process.  So the fd waits on the futex itself, and the
 * wakers do nothing they do not already do.
 *
 * ---- Mechanism 1: io_uring (SK_WAITFD_URING, kernel >= 6.7) -------------
 *
 * Each waitfd owns a small ring (4 SQEs, 8 CQEs; io_uring_setup, three or
 * two mmaps, io_uring_enter; raw system calls, no liburing).  The ring fd
 * is the pollable fd: the kernel reports it readable (POLLIN) while its
 * CQ holds a completion (io_uring_poll: CQ tail != head).
 * Arm submits IORING_OP_FUTEX_WAIT: sqe->addr = word, sqe->addr2 = the
 * expected value, sqe->addr3 = FUTEX_BITSET_MATCH_ANY, sqe->fd = the
 * futex2 flags FUTEX2_SIZE_U32 (FUTEX2_PRIVATE never set), and
 * futex_flags, len, buf_index and file_index zero; io_futex_prep in the
 * kernel (io_uring/futex.c) rejects anything else with -EINVAL.  The
 * kernel's futex_wait_setup then reads the word and queues the wait
 * atomically with respect to FUTEX_WAKE (the hash bucket lock), exactly as
 * a sleeping FUTEX_WAIT does; if the word already differs the request
 * completes at once with -EAGAIN.  A FUTEX_WAKE completes it with 0.
 * Either way a CQE lands and the fd is readable.
 *   Acknowledging is reaping: the next arm consumes every CQE (moving the
 * CQ head) before it submits, which clears readiness.  An older wait still
 * pending is cancelled in the same io_uring_enter (IORING_OP_ASYNC_CANCEL
 * by user_data, then the new wait), so at most one wait per waitfd is ever
 * queued.  The cancel runs inline; the cancelled wait's -ECANCELED
 * completion is posted by task work that runs before io_uring_enter
 * returns to us, and arm reaps such stale CQEs (older generation) up to
 * the new wait's own CQE, which it leaves in place.  Re-arming on the same
 * word and value while that wait is still pending keeps it: no system
 * call at all.  sk_waitfd_signal submits IORING_OP_NOP (completes inline)
 * unless a CQE is already there.
 *   Bounds: every op we submit yields exactly one CQE and is counted in
 * `inflight` until reaped; arm needs at most 2 slots (cancel + wait) and
 * signal 1, and if stale completions were ever slow to post, arm would
 * block in io_uring_enter(GETEVENTS) for them (they are already cancelled,
 * so they come) before it lets inflight exceed the 8 CQ entries.  So the
 * CQ never overflows however often arm is called.  The SQ is drained by
 * each submit (what the kernel did not take is taken back), so it never
 * fills.  Every index read from the rings is checked against the ring
 * size before use.
 *   Ring protocol (the kernel's side in io_uring/io_uring.c): we own the
 * SQ tail and CQ head, the kernel the SQ head and CQ tail.  SQEs and
 * sq_array slots are written, then the SQ tail is stored with release
 * (the kernel loads it with acquire); the CQ tail is loaded with acquire
 * (the kernel stores it with release after writing CQEs), CQEs are read,
 * and the CQ head is stored with release (ordering our reads before the
 * kernel reuses the slots).
 *   Support is probed once per process: the first open submits a futex
 * wait on a word whose value differs from the expected one and requires
 * -EAGAIN.  An unknown opcode (-EINVAL, kernels before 6.7), -EOPNOTSUPP
 * (no CONFIG_FUTEX), or io_uring_setup refused (ENOSYS; EPERM from a
 * seccomp profile such as Docker's default; the io_uring_disabled sysctl)
 * selects the fallback for the rest of the process.
 *
 * ---- Mechanism 2: a helper thread (SK_WAITFD_THREAD) --------------------
 *
 * One thread per waitfd blocks in a shared FUTEX_WAIT_BITSET on the armed
 * word and, when the word is found changed, writes the waitfd's eventfd
 * (the pollable fd).  "Found changed": when its wait returns, the helper
 * asks the kernel again with a deadline already past (the kernel compares
 * the word first: EAGAIN if it differs, else it times out at once), so a
 * wake that changed nothing (a kick, below, or anyone's spurious wake)
 * completes nothing.  (So a word changed and changed back before the
 * helper looks counts as unchanged: an ABA the io_uring kind would
 * report.  Event counts cannot come back within that time: 2^31 steps.)  State (target word and value, arm generation, ready flag) is
 * under the handle's mutex; the thread signals only if the arm it served
 * is still the current one, so a stale completion never makes the fd
 * readable after a re-arm.  Arm drains the eventfd under the same mutex.
 * A re-arm while the thread sleeps on another target, and close, kick
 * the old word (FUTEX_WAKE, all waiters: harmless spurious wake-ups for
 * other waiters of that word, who re-check as every futex waiter must; an
 * io_uring waitfd elsewhere may turn one into a spurious readiness).
 * That kick can miss a thread that has unlocked but not yet entered the
 * kernel, so the thread's waits are sliced at 100 ms: a missed kick costs
 * at most one slice.  The helper blocks all signals.  SHMKIT_WAITFD=thread
 * selects it (for tests; see waitfd.h).
 *
 * ---- No lost wake-up ------------------------------------------------------
 *
 * The caller's loop is: v = load(word); test its condition; arm(word, v);
 * poll the fd; loop (the next arm acknowledges).  A waker makes the
 * condition true, changes the word, then FUTEX_WAKEs it.
 *   - If the change precedes the kernel's read of the word when the wait
 *     is queued, that read sees a value != v and the wait completes at
 *     once (-EAGAIN: a CQE, or the helper returns and writes the eventfd).
 *   - Otherwise the wait was queued before the change, hence before the
 *     wake, and the futex contract (sync.c file top: the read and the
 *     queueing are atomic with respect to FUTEX_WAKE) says the wake finds
 *     it.
 * Either way a completion arrives after arm, and it stays (a CQE in the
 * ring, a count in the eventfd) until the next arm, so a poll that starts
 * before or after it cannot miss it: readiness is level-triggered.  A
 * completion of an *older* arm is either reaped by the new arm or (thread)
 * discarded by its generation check, so it can only cost a spurious
 * readiness, never a lost one.  The helper thread compares the word later
 * than arm returns, but the comparison is still against v, so a change
 * made in between is seen; a FUTEX_WAKE that changes nothing never
 * completes the thread kind (the io_uring kind reports it, spuriously),
 * and no shmkit waker relies on those: each changes the word first.
 *   Services (sk_waitfd_service_arm) arm first, then test: sk_ec_arm sets
 * the flag W and returns the word w with it; the wait is queued on exactly
 * w, then the condition is tested (sync.c file top, "Services", proves
 * that a notifier - sk_ec_notify or shmkit_ec_inc - whose condition the
 * test misses sees W and moves the word).
 *   For event counts, sk_waitfd_arm_ec does what ec_wait_slow in sync.c
 * does before it sleeps (A1: acquire load, return if the counter moved;
 * A2: CAS the waiter flag W in; A3: wait on counter|W), so the proof at
 * the top of sync.c carries over: the queued wait (in io_uring or in the
 * helper) is a sleeper on x|W, and shmkit_ec_inc wakes all when it finds
 * W set.
 *
 * ---- Cost ------------------------------------------------------------------
 *
 * io_uring: open = io_uring_setup + 2-3 mmaps (one page or so each), plus
 * one io_uring_enter for the probe in the first open of a process; kernel
 * memory for the ring context.  Arm = no system call if the same wait is
 * still pending, else one io_uring_enter (cancel + wait together); the
 * acknowledgement is a few loads and a store to the mapped CQ.  Signal =
 * one io_uring_enter, none if already readable.  Close = munmap + close,
 * plus one io_uring_enter to cancel a pending wait.  The waker pays what
 * it pays for any sleeper (FUTEX_WAKE finds the queued wait), and the
 * arming thread is interrupted once to post the CQE (task work).
 * Thread: one thread (128 KiB stack reserved) and one eventfd per waitfd;
 * arm = a condition-variable signal (one futex wake), one eventfd read if
 * readiness was set, and one kick (FUTEX_WAKE) if the helper slept on
 * another target; a completion costs the helper's wake-up, one futex
 * re-check and one eventfd write (a context switch more than io_uring);
 * an armed, idle helper wakes every 100 ms.
 */
#include <limits.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peer.h"
#include "waitfd.h"

/* ---- kernel ABI missing from older uapi headers (Debian 12: 6.1) -------
 * Values from the kernel's include/uapi/linux/io_uring.h (enum
 * io_uring_op: ... SENDMSG_ZC 48, READ_MULTISHOT 49, WAITID 50,
 * FUTEX_WAIT 51) and include/uapi/linux/futex.h (FUTEX2_SIZE_U32 0x02;
 * FUTEX2_PRIVATE is FUTEX_PRIVATE_FLAG, 128, and is never set here).
 * io_uring ops are enumerators, not macros, so the number is ours. */
#define WFD_OP_FUTEX_WAIT 51u
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02u
#endif

/* ---- event count layout, owned by sync.c ------------------------------
 * Replicated from sync.c (static there): word = counter << 1 | W.  Not
 * checked by a _Static_assert (the owner's constants are not visible
 * here); sync.c's file-top essay is the single description of the
 * layout, and test_waitfd exercises this file against shmkit_ec_inc. */
#define EC_FLAG 1u /* bit 0: a waiter may sleep, inc must FUTEX_WAKE */
#define EC_ONE 2u  /* one step of the counter, above the flag (unused here) */

#define WFD_ENTRIES 4u                      /* SQEs asked for; CQ gets 8 */
#define WFD_SLICE_NS (100 * 1000000LL)      /* helper wait slice */
#define WFD_STACK (128u * 1024u)            /* helper stack reservation */

/* user_data = generation << 2 | tag: which op, and for which arm. */
#define TAG_WAIT 1u
#define TAG_CANCEL 2u
#define TAG_NOP 3u
#define UD(gen, tag) ((uint64_t)(gen) << 2 | (tag))

struct ring {
	int fd;
	void *sq_map, *cq_map;         /* cq_map == sq_map with SINGLE_MMAP */
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
	uint32_t *sq_head, *sq_tail, *sq_array;
	uint32_t *cq_head, *cq_tail;
	struct io_uring_cqe *cqes;
	uint32_t sq_entries, cq_entries; /* powers of 2, checked at open */
	uint32_t tail;        /* our SQ tail: we are its only writer */
	uint32_t inflight;    /* ops submitted whose CQE we have not reaped */
	uint64_t gen;         /* generation of the newest arm */
	bool armed;           /* gen's futex wait is queued, its CQE unreaped */
	const uint32_t *word; /* gen's target, while armed */
	uint32_t expected;
	uint32_t probe;       /* word for the support probe */
};

struct helper {
	int efd;
	pthread_t tid;
	pthread_cond_t cond;  /* the helper waits here for a target */
	const uint32_t *word; /* target of the current arm; NULL none */
	uint32_t expected;
	uint64_t gen;         /* current arm */
	uint64_t served;      /* last arm the helper completed */
	bool waiting;         /* helper is in (or entering) a futex wait */
	bool ready;           /* the eventfd holds a count */
	bool stop;
};

struct sk_waitfd {
	int kind;
	unsigned fork_gen;    /* sk_fork_gen() at open: a child has another */
	pthread_mutex_t lock; /* serializes arm/signal (and the helper) */
	union {
		struct ring r;
		struct helper h;
	};
};

/* ---- process-wide choice ------------------------------------------------ */

enum { MODE_AUTO, MODE_THREAD, MODE_URING };

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static int mode;            /* written once under mode_once */
static int uring_refused;   /* the kernel said no to io_uring or the op */
static int uring_probed;    /* the futex op worked once in this process */

static void mode_read(void)
{
	const char *e = getenv("SHMKIT_WAITFD");

	if (e && strcmp(e, "thread") == 0)
		mode = MODE_THREAD;
	else if (e && strcmp(e, "io_uring") == 0)
		mode = MODE_URING;
	else
		mode = MODE_AUTO;
}

/* Errors that say "never here" (cached) rather than "not now". */
static bool refusal(int err)
{
	return err == -ENOSYS || err == -EPERM || err == -EACCES ||
	       err == -EINVAL || err == -EOPNOTSUPP;
}

/* ---- io_uring: system calls and ring access ------------------------------ */

static inline int sys_uring_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(SYS_io_uring_setup, entries, p);
}

static inline int sys_uring_enter(int fd, unsigned submit, unsigned min, unsigned flags)
{
	return (int)syscall(SYS_io_uring_enter, fd, submit, min, flags, NULL, 0);
}

/* Next SQE at our tail, zeroed, or NULL if the SQ looks full (never, as
 * every submit drains it; a kernel head out of bounds is caught here). */
static struct io_uring_sqe *ring_sqe(struct ring *r)
{
	/* Acquire: pairs with the kernel's release store of the SQ head after
	 * it has read the SQEs (io_commit_sqring), so the slot we refill is no
	 * longer being read. */
	uint32_t head = sk_load_acquire(r->sq_head);
	if (r->tail - head >= r->sq_entries)
		return NULL;
	uint32_t i = r->tail & (r->sq_entries - 1);
	struct io_uring_sqe *sqe = &r->sqes[i];
	memset(sqe, 0, sizeof(*sqe));
	r->sq_array[i] = i;
	r->tail++;
	return sqe;
}

/* Submit the n SQEs queued since the last submit.  Returns how many the
 * kernel took (each will post one CQE), or a negative errno if none; what
 * it did not take is taken back off the SQ. */
static int ring_submit(struct ring *r, unsigned n)
{
	/* Release: publishes the SQEs and sq_array slots written by ring_sqe;
	 * pairs with the kernel's acquire load of the SQ tail
	 * (io_sqring_entries) inside io_uring_enter. */
	sk_store_release(r->sq_tail, r->tail);
	int got;
	do
		got = sys_uring_enter(r->fd, n, 0, 0);
	while (got < 0 && errno == EINTR);
	int err = got < 0 ? sk_neg_errno() : 0;
	if (got < 0)
		got = 0;
	if ((unsigned)got > n)
		got = (int)n; /* bound what the kernel reports */
	r->inflight += (uint32_t)got;
	if ((unsigned)got < n) {
		/* The kernel reads the SQ tail only inside io_uring_enter, which
		 * only we call (under the handle's lock): lowering it un-queues
		 * the entries it did not consume.  Release as above. */
		r->tail -= n - (unsigned)got;
		sk_store_release(r->sq_tail, r->tail);
	}
	return got ? got : (err ? err : -EAGAIN);
}

static inline bool ud_current(const struct ring *r, uint64_t ud)
{
	return (ud >> 2) == r->gen && (ud & 3) != TAG_CANCEL;
}

/* Consume CQEs.  keep_current: stop at the first completion of the
 * current arm (its wait or NOP) and leave it in the CQ, so the fd stays
 * readable; a current wait that failed (not 0 or -EAGAIN) is consumed
 * and its error returned instead.  Otherwise consume everything.
 * Returns 0, that error, or -EIO if the CQ breaks its bounds. */
static int ring_reap(struct ring *r, bool keep_current)
{
	/* Relaxed: we are the only writer of the CQ head. */
	uint32_t head = sk_load_relaxed(r->cq_head);
	/* Acquire: pairs with the kernel's release store of the CQ tail after
	 * it wrote the CQEs (io_commit_cqring), so the CQEs read below are
	 * complete. */
	uint32_t tail = sk_load_acquire(r->cq_tail);
	int err = 0;

	if (tail - head > r->cq_entries)
		return sk_fail(-EIO, "io_uring CQ tail %u is %u past head %u (size %u)",
		               tail, tail - head, head, r->cq_entries);
	for (; head != tail; head++) {
		const struct io_uring_cqe *c = &r->cqes[head & (r->cq_entries - 1)];
		uint64_t ud = c->user_data;
		int res = c->res;
		bool cur = ud_current(r, ud);

		if (keep_current && cur) {
			if ((ud & 3) == TAG_NOP || res == 0 || res == -EAGAIN)
				break;
			err = res < 0 ? res : -EIO; /* the new wait failed */
		}
		if (r->inflight)
			r->inflight--;
		if (cur && (ud & 3) == TAG_WAIT)
			r->armed = false;
		if (err) {
			head++;
			break;
		}
	}
	/* Release: orders our reads of the consumed CQEs before the kernel
	 * may write new ones into their slots; pairs with the kernel's read
	 * of the CQ head when it looks for room (io_cqring_events, after its
	 * barrier). */
	sk_store_release(r->cq_head, head);
	return err;
}

/* Make room for n more CQEs.  Only completions of already cancelled or
 * finished ops can hold room beyond the one armed wait, and they are due,
 * so waiting for them (blocking, not spinning) ends. */
static int ring_room(struct ring *r, unsigned n)
{
	while (r->inflight + n > r->cq_entries) {
		if (r->inflight <= (r->armed ? 1u : 0u))
			return sk_fail(-EIO, "io_uring: %u ops in flight cannot need room",
			               r->inflight);
		int got = sys_uring_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS);
		if (got < 0 && errno != EINTR)
			return sk_neg_errno();
		int err = ring_reap(r, false);
		if (err)
			return err;
	}
	return 0;
}

static void prep_futex_wait(struct io_uring_sqe *s, const uint32_t *word, uint32_t expected)
{
	s->opcode = WFD_OP_FUTEX_WAIT;
	s->fd = FUTEX2_SIZE_U32;          /* futex2 flags: shared, 32 bits */
	s->addr = (uint64_t)(uintptr_t)word;
	s->addr2 = expected;
	s->addr3 = FUTEX_BITSET_MATCH_ANY;
	/* futex_flags (the rw_flags union), len, buf_index, file_index stay
	 * 0: io_futex_prep refuses anything else. */
}

/* Arm on (word, expected), or make readable now (word NULL).  Returns
 * 0 or a negative errno (state as documented for sk_waitfd_arm). */
static int ring_arm(struct ring *r, const uint32_t *word, uint32_t expected)
{
	int err = ring_reap(r, false); /* the acknowledgement */
	if (err)
		return err;
	if (word && r->armed && r->word == word && r->expected == expected)
		return 0; /* that wait is still queued: keep it */
	if ((err = ring_room(r, 2)))
		return err;

	bool cancel = r->armed;
	uint64_t g = r->gen + 1;
	unsigned n = cancel ? 2 : 1;
	struct io_uring_sqe *s;

	if (cancel) {
		if (!(s = ring_sqe(r)))
			return sk_fail(-EIO, "io_uring SQ unexpectedly full");
		s->opcode = IORING_OP_ASYNC_CANCEL;
		s->fd = -1;
		s->addr = UD(r->gen, TAG_WAIT); /* match by user_data */
		s->user_data = UD(r->gen, TAG_CANCEL);
	}
	if (!(s = ring_sqe(r))) {
		r->tail -= n - 1; /* un-queue the cancel: nothing was published */
		return sk_fail(-EIO, "io_uring SQ unexpectedly full");
	}
	if (word)
		prep_futex_wait(s, word, expected);
	else
		s->opcode = IORING_OP_NOP;
	s->user_data = UD(g, word ? TAG_WAIT : TAG_NOP);

	int got = ring_submit(r, n);
	if (got < 0)
		return sk_fail(got, "io_uring_enter: %s", strerror(-got));
	r->gen = g; /* the older wait (if any) is being cancelled: stale */
	r->armed = (unsigned)got == n && word;
	r->word = word;
	r->expected = expected;
	if ((unsigned)got < n)
		return sk_fail(-EAGAIN, "io_uring took %d of %u entries", got, n);
	return ring_reap(r, true);
}

static int ring_signal(struct ring *r)
{
	/* Acquire: as in ring_reap.  A CQE present already makes the fd
	 * readable; it stays until the next arm. */
	if (sk_load_acquire(r->cq_tail) != sk_load_relaxed(r->cq_head))
		return 0;
	int err = ring_room(r, 1);
	if (err)
		return err;
	struct io_uring_sqe *s = ring_sqe(r);
	if (!s)
		return sk_fail(-EIO, "io_uring SQ unexpectedly full");
	s->opcode = IORING_OP_NOP;
	s->user_data = UD(r->gen, TAG_NOP);
	int got = ring_submit(r, 1);
	return got < 0 ? sk_fail(got, "io_uring_enter: %s", strerror(-got)) : 0;
}

static void ring_unmap(struct ring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_len);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static void *ring_mmap(int fd, size_t len, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
	return p == MAP_FAILED ? NULL : p;
}

static bool pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/* Map the rings and check what the kernel reports. */
static int ring_map(struct ring *r, const struct io_uring_params *p)
{
	r->sq_entries = p->sq_entries;
	r->cq_entries = p->cq_entries;
	if (!pow2(r->sq_entries) || r->sq_entries < 2 || !pow2(r->cq_entries) ||
	    r->cq_entries < 4)
		return sk_fail(-EIO, "io_uring ring sizes %u/%u", r->sq_entries, r->cq_entries);
	r->sq_len = p->sq_off.array + r->sq_entries * sizeof(uint32_t);
	r->cq_len = p->cq_off.cqes + r->cq_entries * sizeof(struct io_uring_cqe);
	if (p->features & IORING_FEAT_SINGLE_MMAP)
		r->sq_len = r->cq_len = r->sq_len > r->cq_len ? r->sq_len : r->cq_len;
	if (!(r->sq_map = ring_mmap(r->fd, r->sq_len, IORING_OFF_SQ_RING)))
		return sk_neg_errno();
	r->cq_map = r->sq_map;
	if (!(p->features & IORING_FEAT_SINGLE_MMAP) &&
	    !(r->cq_map = ring_mmap(r->fd, r->cq_len, IORING_OFF_CQ_RING)))
		return sk_neg_errno();
	r->sqes_len = r->sq_entries * sizeof(struct io_uring_sqe);
	if (!(r->sqes = ring_mmap(r->fd, r->sqes_len, IORING_OFF_SQES)))
		return sk_neg_errno();

	uint8_t *sq = r->sq_map, *cq = r->cq_map;
	r->sq_head = (uint32_t *)(void *)(sq + p->sq_off.head);
	r->sq_tail = (uint32_t *)(void *)(sq + p->sq_off.tail);
	r->sq_array = (uint32_t *)(void *)(sq + p->sq_off.array);
	r->cq_head = (uint32_t *)(void *)(cq + p->cq_off.head);
	r->cq_tail = (uint32_t *)(void *)(cq + p->cq_off.tail);
	r->cqes = (struct io_uring_cqe *)(void *)(cq + p->cq_off.cqes);
	/* Relaxed: written by io_uring_setup before it returned. */
	if (sk_load_relaxed((uint32_t *)(void *)(sq + p->sq_off.ring_mask)) != r->sq_entries - 1 ||
	    sk_load_relaxed((uint32_t *)(void *)(cq + p->cq_off.ring_mask)) != r->cq_entries - 1)
		return sk_fail(-EIO, "io_uring ring masks disagree with sizes");
	/* Relaxed: nothing submitted yet, so nobody else writes these. */
	r->tail = sk_load_relaxed(r->sq_tail);
	return 0;
}

/* Does IORING_OP_FUTEX_WAIT work?  A wait on a word that differs from
 * the expected value must complete at once with -EAGAIN. */
static int ring_probe(struct ring *r)
{
	r->probe = 1;
	int err = ring_arm(r, &r->probe, 0);
	if (err)
		return err;
	/* Acquire: as in ring_reap; the -EAGAIN completion was posted inline. */
	bool done = sk_load_acquire(r->cq_tail) != sk_load_relaxed(r->cq_head);
	if ((err = ring_reap(r, false)))
		return err;
	if (!done || r->armed || r->inflight)
		return sk_fail(-EIO, "io_uring futex wait probe did not complete at once");
	sk_store_relaxed(&uring_probed, 1);
	return 0;
}

static int ring_open(struct ring *r)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	memset(r, 0, sizeof(*r));
	r->fd = sys_uring_setup(WFD_ENTRIES, &p);
	if (r->fd < 0)
		return sk_fail(sk_neg_errno(), "io_uring_setup: %s", strerror(errno));
	int err = ring_map(r, &p);
	/* Relaxed: a hint; a racing open merely probes once more. */
	if (!err && !sk_load_relaxed(&uring_probed))
		err = ring_probe(r);
	if (err)
		ring_unmap(r);
	return err;
}

static void ring_close(struct ring *r, bool forked)
{
	/* Cancel a pending wait now rather than at ring teardown, so it does
	 * not outlive the handle when a forked child still holds a copy of the
	 * ring fd.  Not in a child: the ring's state is the parent's. */
	if (!forked && r->armed) {
		struct io_uring_sqe *s = ring_sqe(r);
		if (s) {
			s->opcode = IORING_OP_ASYNC_CANCEL;
			s->fd = -1;
			s->addr = UD(r->gen, TAG_WAIT);
			s->user_data = UD(r->gen, TAG_CANCEL);
			(void)ring_submit(r, 1);
		}
	}
	ring_unmap(r);
}

/* ---- helper thread ------------------------------------------------------- */

static void helper_set_ready(struct helper *h)
{
	if (h->ready)
		return;
	uint64_t one = 1;
	/* Cannot fail short of a bug: the count never nears its maximum
	 * (one write per drain). */
	if (write(h->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
		h->ready = true;
}

static void helper_clear_ready(struct helper *h)
{
	uint64_t v;

	if (h->ready && read(h->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		h->ready = false;
}

/* Does *word still hold expected?  Asked of the kernel, so an unmapped
 * word is an error here rather than a fault: FUTEX_WAIT_BITSET with a
 * deadline already past compares first (EAGAIN: it differs) and then
 * times out at once (ETIMEDOUT: the same).  A wake that lands between the
 * two (a kick, anyone's FUTEX_WAKE) returns 0 and says nothing either
 * way: ask again, a few times, then count it as unchanged (the next wait
 * slice looks again).  1 differs (or cannot be read: readable, and the
 * caller's own look reports it), 0 unchanged. */
static int word_differs(const uint32_t *word, uint32_t expected)
{
	struct timespec past = { 0, 0 };

	for (int i = 0; i < 8; i++) {
		long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, &past, NULL,
		                 FUTEX_BITSET_MATCH_ANY);
		if (r == 0 || errno == EINTR)
			continue;
		return errno != ETIMEDOUT;
	}
	return 0;
}

static void *helper_main(void *arg)
{
	struct sk_waitfd *w = arg;
	struct helper *h = &w->h;

	pthread_mutex_lock(&w->lock);
	while (!h->stop) {
		if (!h->word || h->served == h->gen) {
			pthread_cond_wait(&h->cond, &w->lock);
			continue;
		}
		const uint32_t *word = h->word;
		uint32_t expected = h->expected;
		h->waiting = true;
		pthread_mutex_unlock(&w->lock);
		int r = sk_futex_wait_until(word, expected, sk_now_ns() + WFD_SLICE_NS);
		/* Woken (0 also means "already differs"): does the word still
		 * hold expected (word_differs)?  A wake that changed nothing
		 * (our own kick of a word we then re-armed on, or anyone's
		 * spurious wake) is then no completion. */
		if (r == 0 && !word_differs(word, expected))
			r = -ETIMEDOUT;
		pthread_mutex_lock(&w->lock);
		h->waiting = false;
		/* Unchanged, or a re-arm moved the target: look again.  (A
		 * re-arm to the same target keeps this wait's result.) */
		if (r == -ETIMEDOUT || h->word != word || h->expected != expected)
			continue;
		h->served = h->gen;
		helper_set_ready(h);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int helper_open(struct sk_waitfd *w)
{
	struct helper *h = &w->h;
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	memset(h, 0, sizeof(*h));
	h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd < 0)
		return sk_fail(sk_neg_errno(), "eventfd: %s", strerror(errno));
	if ((err = pthread_cond_init(&h->cond, NULL))) {
		close(h->efd);
		return -err;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WFD_STACK > PTHREAD_STACK_MIN ? WFD_STACK
	                                                               : PTHREAD_STACK_MIN);
	/* The helper inherits this mask: no application signal handler runs
	 * on it, and no signal interrupts its waits. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&h->tid, &attr, helper_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err) {
		pthread_cond_destroy(&h->cond);
		close(h->efd);
		return sk_fail(-err, "pthread_create: %s", strerror(err));
	}
	return 0;
}

/* Under w->lock.  Returns the word to kick (FUTEX_WAKE once unlocked)
 * when the helper may be asleep on another target, else NULL. */
static const uint32_t *helper_arm(struct helper *h, const uint32_t *word, uint32_t expected)
{
	const uint32_t *kick = NULL;

	helper_clear_ready(h); /* the acknowledgement */
	if (h->waiting && (h->word != word || h->expected != expected))
		kick = h->word;
	h->gen++;
	h->word = word;
	h->expected = expected;
	if (!word) {
		h->served = h->gen;
		helper_set_ready(h);
	} else if (!h->waiting) {
		pthread_cond_signal(&h->cond);
	}
	return kick;
}

static void helper_close(struct sk_waitfd *w, bool forked)
{
	struct helper *h = &w->h;

	if (!forked) {
		pthread_mutex_lock(&w->lock);
		h->stop = true;
		const uint32_t *kick = h->waiting ? h->word : NULL;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&w->lock);
		if (kick)
			sk_futex_wake(kick, -1);
		pthread_join(h->tid, NULL);
		pthread_cond_destroy(&h->cond);
	}
	/* In a child the helper does not exist and the condition variable
	 * and lock may be mid-use copies: only the descriptor is ours. */
	close(h->efd);
}

/* ---- the interface ------------------------------------------------------- */

static inline bool forked(const struct sk_waitfd *w)
{
	return w->fork_gen != sk_fork_gen_now();
}

static SK_COLD int forked_err(void)
{
	return sk_fail(-EBADF, "waitfd belongs to the parent process: a forked child opens its own");
}

int sk_waitfd_open(struct sk_waitfd **out)
{
	if (!out)
		return -EINVAL;
	struct sk_waitfd *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int err = pthread_mutex_init(&w->lock, NULL);
	if (err) {
		free(w);
		return -err;
	}
	w->fork_gen = sk_fork_gen(); /* also registers the fork handler */
	pthread_once(&mode_once, mode_read);

	/* Relaxed: a hint, see ring_open. */
	if (mode == MODE_URING || (mode == MODE_AUTO && !sk_load_relaxed(&uring_refused))) {
		err = ring_open(&w->r);
		if (!err) {
			w->kind = SK_WAITFD_URING;
		} else if (mode == MODE_URING || err == -EMFILE || err == -ENFILE) {
			goto fail; /* forced, or the fallback would hit the same limit */
		} else if (refusal(err)) {
			sk_store_relaxed(&uring_refused, 1);
		}
	}
	if (!w->kind) {
		if ((err = helper_open(w)))
			goto fail;
		w->kind = SK_WAITFD_THREAD;
	}
	*out = w;
	return 0;
fail:
	pthread_mutex_destroy(&w->lock);
	free(w);
	return err;
}

int sk_waitfd_fd(const struct sk_waitfd *w)
{
	if (!w)
		return -EINVAL;
	return w->kind == SK_WAITFD_URING ? w->r.fd : w->h.efd;
}

int sk_waitfd_kind(const struct sk_waitfd *w)
{
	return w ? w->kind : -EINVAL;
}

/* Arm on (word, expected); word NULL: readable now, nothing armed. */
static int waitfd_arm(struct sk_waitfd *w, const uint32_t *word, uint32_t expected)
{
	const uint32_t *kick = NULL;
	int err = 0;

	if (SK_UNLIKELY(forked(w)))
		return forked_err();
	pthread_mutex_lock(&w->lock);
	if (w->kind == SK_WAITFD_URING)
		err = ring_arm(&w->r, word, expected);
	else
		kick = helper_arm(&w->h, word, expected);
	pthread_mutex_unlock(&w->lock);
	if (kick)
		sk_futex_wake(kick, -1);
	return err;
}

int sk_waitfd_arm(struct sk_waitfd *w, const uint32_t *word, uint32_t expected)
{
	if (!w || !word || ((uintptr_t)word & (sizeof(uint32_t) - 1)))
		return sk_fail(-EINVAL, "waitfd or futex word is NULL, or the word is misaligned");
	return waitfd_arm(w, word, expected);
}

int sk_waitfd_arm_ec(struct sk_waitfd *w, shmkit_ec *ec, uint32_t old)
{
	if (!w || !ec)
		return sk_fail(-EINVAL, "waitfd or event count is NULL");
	old &= UINT32_MAX >> 1; /* the counter has 31 bits */
	for (;;) {
		/* A1 of sync.c.  Acquire: pairs with the release fetch_add (I1)
		 * of the increment that moved the counter. */
		uint32_t v = sk_load_acquire(&ec->word);
		if ((v >> 1) != old)
			return waitfd_arm(w, NULL, 0);
		/* A2 of sync.c.  Relaxed both ways: the flag handshake is on this
		 * one word (coherence orders it against I1, which also clears
		 * the flag); a failed CAS means the word moved: loop to A1.  Each retry
		 * follows a change of the word, so this does not spin. */
		if (!(v & EC_FLAG) &&
		    !sk_cas(&ec->word, &v, v | EC_FLAG, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		/* A3: the wait compares against counter|W as it is queued. */
		return waitfd_arm(w, &ec->word, v | EC_FLAG);
	}
}

int sk_waitfd_signal(struct sk_waitfd *w)
{
	int err = 0;

	if (!w)
		return -EINVAL;
	if (SK_UNLIKELY(forked(w)))
		return forked_err();
	pthread_mutex_lock(&w->lock);
	if (w->kind == SK_WAITFD_URING)
		err = ring_signal(&w->r);
	else
		helper_set_ready(&w->h);
	pthread_mutex_unlock(&w->lock);
	return err;
}

void sk_waitfd_close(struct sk_waitfd *w)
{
	if (!w)
		return;
	bool child = forked(w);
	if (w->kind == SK_WAITFD_URING)
		ring_close(&w->r, child);
	else
		helper_close(w, child);
	if (!child)
		pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- services ------------------------------------------------------------ */

int sk_waitfd_service_arm(struct sk_waitfd *w, shmkit_ec *ec, int (*ready)(void *arg),
                          void *arg)
{
	/* Arm, then test (sync.c file top, "Services"; as wait.h's sleep
	 * loop): the flag is set (seq_cst RMW and fence, sk_ec_arm) before
	 * ready() looks, and the queued wait compares against exactly the
	 * armed value, so a notifier whose condition ready() misses either
	 * sees the flag and wakes the wait, or has already moved the word
	 * and the wait completes at once.  ready() orders its own reads
	 * (acquire on the condition words).  If ready() finds the condition
	 * true the flag stays set: one needless wake for the next notifier. */
	uint32_t armed = sk_ec_arm(ec);
	int err = waitfd_arm(w, &ec->word, armed);

	if (err)
		return sk_fail(err, "cannot arm the pollable fd");
	if (ready(arg) == 0)
		return 0;
	return (err = sk_waitfd_signal(w)) ? sk_fail(err, "cannot signal the pollable fd") : 0;
}

int sk_waitfd_service_fd(struct sk_waitfd **slot, shmkit_ec *ec, int (*ready)(void *arg),
                         void *arg)
{
	int err;

	if (*slot)
		return sk_waitfd_fd(*slot);
	if ((err = sk_waitfd_open(slot)))
		return sk_fail(err, "cannot make a pollable fd");
	if ((err = sk_waitfd_service_arm(*slot, ec, ready, arg))) {
		sk_waitfd_close(*slot);
		*slot = NULL;
		return err;
	}
	return sk_waitfd_fd(*slot);
}
