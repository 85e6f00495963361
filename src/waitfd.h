/*
 * waitfd.h - a pollable file descriptor that becomes readable when a
 * shared 32-bit futex word is woken.  Not public; one mechanism for every
 * service that hands out an fd (the mechanism, its proofs and costs are
 * the essay at the top of waitfd.c).
 *
 * It waits on the futex itself, never FUTEX_PRIVATE, so it works wherever
 * the *memory* is shared: across PID, network and IPC namespaces, between
 * unrelated processes, over any segment backend.  Wakers do nothing new:
 * they change the word and FUTEX_WAKE it as they already do (shmkit_ec_inc
 * and sk_ec_notify do when a waiter set the ec's flag bit; sk_waitfd_arm_ec
 * and sk_waitfd_service_arm set it).
 *
 * Lifecycle:  sk_waitfd_open -> (sk_waitfd_arm[_ec] -> poll the fd)* ->
 * sk_waitfd_close.  The usual loop, which loses no wake-up:
 *
 *     for (;;) {
 *         uint32_t v = load_acquire(word);      (or shmkit_ec_value)
 *         if (condition holds) { handle it; continue; }
 *         sk_waitfd_arm(w, word, v);            (also acks earlier readiness)
 *         poll / epoll sk_waitfd_fd(w) for POLLIN;
 *     }
 *
 * Readiness is level-triggered and lasts until the next arm; it may be
 * spurious (io_uring kind: any FUTEX_WAKE of the word completes the wait,
 * even one that changed nothing; the thread kind completes only when it
 * finds the word changed): callers always re-check their condition, as
 * after any futex wait.  Nothing is read from the fd: arm is the
 * acknowledgement.
 *
 * Threads: arm, arm_ec and signal take the handle's lock and may be called
 * from any thread, signal concurrently with the others; close must not
 * race with any other call.  The fd may be polled from any thread.
 *
 * Caveats
 *   - fork: a waitfd is not usable in a forked child (arm, arm_ec and
 *     signal return -EBADF there): children make their own.  The child
 *     may close its copy; that never disturbs the parent's.  A child that
 *     keeps the inherited copy without closing it keeps the parent's
 *     kernel object alive until it exits or execs (the fd is O_CLOEXEC).
 *     Processes made by raw clone() or vfork() run no fork handler and
 *     must not touch an inherited waitfd at all.
 *   - io_uring kind: the completion is posted by task work that runs in
 *     the thread that armed, which the kernel interrupts for it
 *     (TWA_SIGNAL).  So that thread must be running or in an
 *     interruptible sleep (any blocking system call qualifies; if it has
 *     exited, a kernel worker posts instead).  As with a signal without a
 *     handler, poll()/ppoll()/select() in that thread restart
 *     transparently, but epoll_wait() may return EINTR: retry it.
 *   - An invalid word address: the io_uring kind returns -EFAULT from
 *     arm; the thread kind makes the fd readable (its helper's wait fails)
 *     and the caller's own read of the word then faults.
 *   - Fallback selection: SHMKIT_WAITFD, read once per process:
 *       unset, "" or "auto"  io_uring if the kernel accepts it, else thread
 *       "thread"             always the helper-thread kind
 *       "io_uring"           io_uring or fail (open returns its error)
 *     Any other value counts as "auto".
 */
#ifndef SHMKIT_WAITFD_H
#define SHMKIT_WAITFD_H

#include <stdint.h>

#include "internal.h"

struct sk_waitfd;

/* What sk_waitfd_kind() reports. */
enum {
	SK_WAITFD_URING = 1,  /* io_uring ring, IORING_OP_FUTEX_WAIT (>= 6.7) */
	SK_WAITFD_THREAD = 2, /* helper thread in futex wait, eventfd */
};

/* Open a waitfd, not armed and not readable.  0 and *out set, or a
 * negative errno (-EMFILE, -ENFILE, -ENOMEM, -EAGAIN for a thread that
 * could not start, or io_uring's own error when SHMKIT_WAITFD=io_uring)
 * with *out untouched and nothing left open.  Free with sk_waitfd_close. */
int sk_waitfd_open(struct sk_waitfd **out);

/* The descriptor to poll for POLLIN: an io_uring ring fd or an eventfd,
 * O_CLOEXEC.  Valid until sk_waitfd_close; never read, write, dup-and-keep
 * or close it yourself (its readiness is managed by arm). */
int sk_waitfd_fd(const struct sk_waitfd *w);

/* Arm: after this returns 0, the fd becomes readable when *word is woken
 * (FUTEX_WAKE, any waker in any process mapping the same memory) or if
 * *word already differs from expected when the wait is queued (thread
 * kind: when its helper, woken or starting, finds *word != expected).  First
 * clears earlier readiness (acknowledges completions, including an
 * earlier sk_waitfd_signal) and cancels an older armed wait, so stale
 * completions never pile up: resources stay bounded however often arm is
 * called.  word must stay mapped while armed (until the next arm, or
 * close).  Returns 0; -EINVAL for a NULL or misaligned word; -EBADF in a
 * forked child; -EFAULT (io_uring kind) for an unmapped word; or another
 * negative errno from io_uring_enter.  On failure the handle is not armed
 * (no wait pending), readiness is unspecified, and it may be armed again
 * or closed. */
int sk_waitfd_arm(struct sk_waitfd *w, const uint32_t *word, uint32_t expected);

/* Arm on an event count as shmkit_ec_wait(ec, old) sleeps: if the counter
 * already differs from old (taken modulo 2^31), make the fd readable at
 * once (clearing earlier readiness like arm); else set the ec's waiter
 * flag (the same CAS protocol as sync.c) so that the next shmkit_ec_inc
 * FUTEX_WAKEs it, and arm on the flagged word.  Returns and leaves what
 * sk_waitfd_arm does; -EINVAL for a NULL ec. */
int sk_waitfd_arm_ec(struct sk_waitfd *w, shmkit_ec *ec, uint32_t old);

/* Make the fd readable now (until the next arm), leaving an armed wait
 * armed.  Idempotent: already readable costs nothing.  Any thread, any
 * time the handle is open.  0, -EBADF in a forked child, or a negative
 * errno from io_uring_enter (nothing changed then). */
int sk_waitfd_signal(struct sk_waitfd *w);

/* Free everything: the fd, the ring or the helper thread (joined), and a
 * pending wait (cancelled).  NULL is a no-op.  In a forked child only the
 * child's copies are dropped; the parent's waitfd is untouched. */
void sk_waitfd_close(struct sk_waitfd *w);

/* How every service hands out its fd (chan, bus, journal): arm w on the
 * event count ec - set its waiter flag (sk_ec_arm), queue the wait on
 * exactly that value - then ask ready(arg): 1 (the caller could go on) or
 * < 0 (an error its next call will report) makes the fd readable at once,
 * 0 leaves it to the armed wait.  Either the look sees what the other side
 * did, or the notifier (shmkit_ec_inc, or sk_ec_notify after a seq_cst
 * RMW) sees the flag and moves the count (sync.c, "Services"): no wake-up
 * is lost, and an ack may come before or after the caller drains.  0 or
 * -errno (the detail is set). */
int sk_waitfd_service_arm(struct sk_waitfd *w, shmkit_ec *ec, int (*ready)(void *arg),
                          void *arg);
/* The fd of *slot, made and armed (sk_waitfd_service_arm) on first use;
 * on failure *slot stays NULL and nothing is left open.  The fd or -errno. */
int sk_waitfd_service_fd(struct sk_waitfd **slot, shmkit_ec *ec, int (*ready)(void *arg),
                         void *arg);

/* SK_WAITFD_URING or SK_WAITFD_THREAD, for tests and diagnostics. */
int sk_waitfd_kind(const struct sk_waitfd *w);

#endif /* SHMKIT_WAITFD_H */
