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

#define SK_SPIN_ADAPTIVE 2000 /* polls before an adaptive waiter sleeps */

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
		for (unsigned i = 0;; i++) {
			sk_cpu_relax();
			if ((r = ready(arg)))
				return r < 0 ? r : 0;
			if ((i & 255) == 255 && sk_now_ns() >= deadline)
				return -ETIMEDOUT;
			if (strategy == SHMKIT_WAIT_ADAPTIVE && i >= SK_SPIN_ADAPTIVE)
				break;
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
