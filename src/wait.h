/*
 * wait.h - the one waiting loop services use: wait until a condition
 * holds, by the handle's strategy (enum shmkit_wait), on an event count
 * that the other side increments after making the condition true.
 *
 * Why no wake-up is lost: before it sleeps the waiter arms first, then
 * tests, then sleeps: w = sk_ec_arm(ec) sets the count's waiter flag (a
 * seq_cst RMW and a seq_cst fence), then the condition is tested, then the
 * futex wait compares the word against exactly w.  The other side makes
 * the condition true, then notifies: shmkit_ec_inc (after a release store)
 * or sk_ec_notify (after a seq_cst RMW; increments only if the flag is
 * set).  Either the test sees the condition, or the notifier sees the flag
 * and moves the word (the wait returns or is woken).  Proof: sync.c file
 * top, "Services".
 */
#ifndef SHMKIT_WAIT_H
#define SHMKIT_WAIT_H

#include "internal.h"

/* The adaptive strategy spins for a budget of time, then sleeps.  A fixed
 * count of polls (2000, ~50-100 us with x86 PAUSE on this hardware) spent
 * the whole time slice of a peer on the same core before letting it run:
 * a round trip between two processes sharing a core cost ~120 us.  So the
 * budget is learned per thread (a thread mostly waits on one kind of
 * thing): a wait the spin satisfied after t ns moves it toward 4t (at most
 * SK_SPIN_MAX_NS); a spin that ran out halves it, down to nothing, and
 * then the thread sleeps at once, as a pipe reader does, but for one wait
 * in SK_SPIN_PROBE_EVERY, which spins SK_SPIN_PROBE_NS to learn whether
 * answers come quickly again.  With cores free, answers come in a few
 * hundred ns and the waiter never sleeps; with the peer sharing the core
 * (or the machine busy) the spin fails and the waiter soon stops spinning.
 * A probe spins as long as the largest budget: a shorter one (it was 2 us)
 * cannot see quick answers from a peer that stopped spinning too - the
 * answer waits for the peer's wake-up (futex wake to running on another
 * vCPU: 15-25 us here) - so once both sides of a ping-pong slept they
 * stayed asleep (64 B round trip 1.2-27 us with a 1 ms pause every 1000
 * trips, 1.21-1.32 us with this probe; no pause: 112-3279 ns, 103-181).
 * A probe that fails doubles the interval to the next one, up to
 * SK_SPIN_PROBE_MAX_EVERY (a peer on the same core costs 50 us in 1024
 * waits: one-core round trip 5.3-5.5 us, was 5.5-5.8); one that works
 * sets it back to SK_SPIN_PROBE_EVERY. */
#define SK_SPIN_MAX_NS 50000
#define SK_SPIN_START_NS 10000
#define SK_SPIN_PROBE_NS 50000
#define SK_SPIN_PROBE_EVERY 16
#define SK_SPIN_PROBE_MAX_EVERY 1024
struct sk_spin_state {
	uint32_t budget_ns;  /* 0 until first use: SK_SPIN_START_NS */
	uint32_t waits;      /* waits since the budget fell to nothing */
	uint32_t probe_every; /* 0 until first use: SK_SPIN_PROBE_EVERY */
	bool learned;        /* budget_ns has been set */
	bool probing;        /* this wait is a probe */
};
extern __thread struct sk_spin_state sk_spin; /* sync.c */

/* How long this wait may spin. */
static inline int64_t sk_spin_budget(void)
{
	if (!sk_spin.learned)
		return SK_SPIN_START_NS;
	if (sk_spin.budget_ns)
		return sk_spin.budget_ns;
	if (!sk_spin.probe_every)
		sk_spin.probe_every = SK_SPIN_PROBE_EVERY;
	if (++sk_spin.waits < sk_spin.probe_every)
		return 0;
	sk_spin.waits = 0;
	sk_spin.probing = true;
	return SK_SPIN_PROBE_NS;
}

/* Quick polls: a waiter that may spin polls SK_QUICK_POLLS times before
 * it reads a clock to set up its wait - in a ping-pong the answer often
 * lands while the waiter would still be computing a deadline (clock reads
 * that cost more than the hand-off itself).  The channel, the bus and rpc
 * all do it; whether to, for a wait of strategy `wait` with a non-zero
 * timeout: spinning ones, and adaptive ones unless this thread's waits
 * have learned that spinning does not pay. */
#define SK_QUICK_POLLS 64
static inline bool sk_quick_polls_pay(int wait)
{
	return wait == SHMKIT_WAIT_SPIN ||
	       (wait == SHMKIT_WAIT_ADAPTIVE && (!sk_spin.learned || sk_spin.budget_ns));
}

static inline void sk_spin_learn(int64_t took_ns, bool satisfied)
{
	int64_t b = sk_spin.learned ? sk_spin.budget_ns : SK_SPIN_START_NS;
	if (sk_spin.probing) {
		sk_spin.probing = false;
		if (satisfied)
			sk_spin.probe_every = SK_SPIN_PROBE_EVERY;
		else if (sk_spin.probe_every < SK_SPIN_PROBE_MAX_EVERY)
			sk_spin.probe_every *= 2;
	}
	if (satisfied) {
		int64_t t = 4 * took_ns > SK_SPIN_MAX_NS ? SK_SPIN_MAX_NS : 4 * took_ns;
		b = (3 * b + t) / 4;
		if (b < t / 2) /* from nothing: a probe that worked counts at once */
			b = t;
	} else {
		b = b / 2 < 250 ? 0 : b / 2;
	}
	sk_spin.budget_ns = (uint32_t)b;
	sk_spin.learned = true;
}

/* Wait until ready(arg) is true or the absolute CLOCK_MONOTONIC deadline
 * passes.  0 when ready, -EAGAIN if deadline is "now" (try once) and not
 * ready, -ETIMEDOUT, or a negative error ready() reports (it returns < 0
 * for corrupt state, 1 for ready, 0 for not yet).  *waited is set to 1 if
 * the caller had to wait at all (for full/empty statistics). */
static inline int sk_wait_for(shmkit_ec *ec, int strategy, int64_t deadline,
                              int (*ready)(void *arg), void *arg, int *waited)
{
	int r = ready(arg);
	if (r)
		return r < 0 ? r : 0;
	if (deadline <= sk_now_ns())
		return -EAGAIN;
	*waited = 1;
	if (strategy != SHMKIT_WAIT_BLOCK) {
		bool adaptive = strategy == SHMKIT_WAIT_ADAPTIVE;
		int64_t budget = adaptive ? sk_spin_budget() : INT64_MAX;
		int64_t start = budget ? sk_now_ns() : 0;
		for (unsigned i = 0; budget; i++) {
			sk_cpu_relax();
			if ((r = ready(arg))) {
				if (adaptive)
					sk_spin_learn(sk_now_ns() - start, true);
				return r < 0 ? r : 0;
			}
			if ((i & 15) != 15)
				continue;
			int64_t now = sk_now_ns();
			if (now >= deadline)
				return -ETIMEDOUT;
			if (adaptive && now - start >= budget) {
				sk_spin_learn(now - start, false);
				break;
			}
		}
	}
	for (;;) {
		/* Arm, test, sleep (see the top): the flag is set before the
		 * test, so a notifier whose condition the test misses sees it. */
		uint32_t w = sk_ec_arm(ec);
		if ((r = ready(arg)))
			return r < 0 ? r : 0;
		if (sk_now_ns() >= deadline)
			return -ETIMEDOUT;
		/* Returns at once if the word is no longer w: a notifier moved
		 * it.  Errors (none expected) and spurious returns: re-test. */
		sk_futex_wait_until(&ec->word, w, deadline);
		/* Woken: test before arming again, so that a waiter whose
		 * waker cleared the flag does not set it again needlessly
		 * (a stale flag costs the next notifier a wake call). */
		if ((r = ready(arg)))
			return r < 0 ? r : 0;
		if (sk_now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

#endif /* SHMKIT_WAIT_H */
