/*
 * wait.h - the one waiting loop services use: wait until a condition
 * holds, by the handle's strategy (enum shmkit_wait), on an event count
 * that the other side increments after making the condition true.
 *
 * Why no wake-up is lost: the waiter reads the event count *before*
 * testing the condition; shmkit_ec_wait(ec, v) returns at once if the
 * count moved past v.  The other side makes the condition true, then
 * increments the count (shmkit_ec_inc orders the two).  So either the
 * waiter's test sees the condition, or its wait sees the new count.
 */
#ifndef SHMKIT_WAIT_H
#define SHMKIT_WAIT_H

#include "internal.h"

/* The adaptive strategy spins for a budget of time, then sleeps.  A fixed
 * count of polls (2000, ~50-100 us with x86 PAUSE on this hardware) spent
 * the whole time slice of a peer on the same core before letting it run:
 * a round trip between two processes sharing a core cost ~120 us.  So the
 * budget is learned per thread (a thread mostly waits on one kind of
 * thing): a wait the spin satisfied after t ns moves it toward 4t; a spin
 * that ran out halves it; it stays within [SK_SPIN_MIN_NS, SK_SPIN_MAX_NS].
 * With cores free, answers come in well under the minimum and the waiter
 * never sleeps; with the peer sharing the core (or the machine busy) the
 * spin fails and shrinks to the minimum, and the waiter sleeps almost at
 * once, as a pipe reader would. */
#define SK_SPIN_MIN_NS 2000
#define SK_SPIN_MAX_NS 50000
#define SK_SPIN_START_NS 10000
extern __thread uint32_t sk_spin_budget_ns; /* sync.c; 0 until first use */

static inline void sk_spin_learn(int64_t took_ns, bool satisfied)
{
	uint32_t b = sk_spin_budget_ns ? sk_spin_budget_ns : SK_SPIN_START_NS;
	if (satisfied) {
		int64_t t = 4 * took_ns;
		t = t < SK_SPIN_MIN_NS ? SK_SPIN_MIN_NS : t > SK_SPIN_MAX_NS ? SK_SPIN_MAX_NS : t;
		b = (uint32_t)((3 * (int64_t)b + t) / 4);
	} else {
		b = b / 2 < SK_SPIN_MIN_NS ? SK_SPIN_MIN_NS : b / 2;
	}
	sk_spin_budget_ns = b;
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
		int64_t start = sk_now_ns();
		int64_t budget = sk_spin_budget_ns ? sk_spin_budget_ns : SK_SPIN_START_NS;
		for (unsigned i = 0;; i++) {
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
		uint32_t v = shmkit_ec_value(ec);
		if ((r = ready(arg)))
			return r < 0 ? r : 0;
		int64_t now = sk_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		shmkit_ec_wait(ec, v, deadline == INT64_MAX ? -1 : deadline - now);
	}
}

#endif /* SHMKIT_WAIT_H */
