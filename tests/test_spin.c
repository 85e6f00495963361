/*
 * test_spin.c - the adaptive wait's learned spin (src/wait.h): the budget
 * falls to nothing after spins that did not pay, probes then come one wait
 * in SK_SPIN_PROBE_EVERY, a probe that fails doubles that interval (up to
 * SK_SPIN_PROBE_MAX_EVERY), one that works brings the budget back at once
 * and the interval to its start.  The rule is per thread (sk_spin); these
 * tests drive it directly, with no clock and no peer.
 */
#include <criterion/criterion.h>

#include "wait.h"

TestSuite(spin, .timeout = 30);

/* Spins that never paid: the budget falls to nothing. */
static void budget_to_nothing(void)
{
	for (int i = 0; i < 64 && (!sk_spin.learned || sk_spin.budget_ns); i++)
		sk_spin_learn(0, false);
	cr_assert(sk_spin.learned && sk_spin.budget_ns == 0, "budget %u", sk_spin.budget_ns);
}

/* Waits until the next probe: how many sk_spin_budget() calls, the last
 * one included, and that the probe spins SK_SPIN_PROBE_NS. */
static unsigned waits_to_probe(void)
{
	for (unsigned n = 1; n <= 4 * SK_SPIN_PROBE_MAX_EVERY; n++) {
		int64_t b = sk_spin_budget();
		if (b) {
			cr_assert_eq(b, SK_SPIN_PROBE_NS);
			return n;
		}
	}
	cr_assert_fail("no probe within %u waits", 4 * SK_SPIN_PROBE_MAX_EVERY);
	return 0;
}

Test(spin, a_failed_probe_doubles_the_interval_up_to_the_limit)
{
	sk_spin = (struct sk_spin_state){ 0 };
	budget_to_nothing();
	unsigned want = SK_SPIN_PROBE_EVERY;
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(waits_to_probe(), want, "probe %d", i);
		sk_spin_learn(SK_SPIN_PROBE_NS, false); /* the probe saw nothing */
		cr_assert_eq(sk_spin.budget_ns, 0);
		want = want * 2 > SK_SPIN_PROBE_MAX_EVERY ? SK_SPIN_PROBE_MAX_EVERY : want * 2;
	}
	cr_assert_eq(want, SK_SPIN_PROBE_MAX_EVERY);
}

Test(spin, a_probe_that_pays_brings_the_spin_back_and_resets_the_interval)
{
	sk_spin = (struct sk_spin_state){ 0 };
	budget_to_nothing();
	for (int i = 0; i < 3; i++) { /* the interval grows to 128 */
		waits_to_probe();
		sk_spin_learn(SK_SPIN_PROBE_NS, false);
	}
	waits_to_probe();
	sk_spin_learn(1000, true); /* answered after 1 us */
	cr_assert_geq(sk_spin.budget_ns, 4000, "budget %u after a probe that paid", sk_spin.budget_ns);
	cr_assert_eq(sk_spin_budget(), sk_spin.budget_ns, "the next wait spins its budget");
	budget_to_nothing();
	cr_assert_eq(waits_to_probe(), SK_SPIN_PROBE_EVERY, "the interval starts again");
}

/* A probe outlasts any budget: the peer it waits for may be asleep too,
 * and its answer comes only after the peer's wake-up. */
Test(spin, a_probe_spins_as_long_as_the_largest_budget)
{
	cr_assert_geq(SK_SPIN_PROBE_NS, SK_SPIN_MAX_NS);
}
