/*
 * common.pml - the pieces every shmkit model shares: process death, the
 * kernel's OFD locks (peer.c), the event count (src/sync.c, shmkit_ec)
 * over a futex, and the end-of-run check.
 *
 * Death.  DIE may stand before every step that touches shared memory:
 * the process nondeterministically jumps to its `died` label (at most
 * MAXDEAD deaths per run).  There it loses its kernel lock (alive[me] =
 * false: the kernel drops an open file description's locks at death,
 * peer.c) and writes nothing more; each model's died block then records,
 * as ghost state, what the documented crash promise excuses.  With
 * MAXLOSS > 0 a live process may instead lose its lock and go on (the
 * Caveats of shmkit.h: a program that closes descriptors it does not
 * own): its peers take it for dead.
 *
 * Futex.  asleep[p] = 1 + the event count p sleeps on.  FUTEX_WAIT is
 * "compare the word and queue" in one atomic step (A3); FUTEX_WAKE wakes
 * every queued waiter of the word (I3, wake all), and only those already
 * queued: a wake before a waiter queues is lost for it, exactly the
 * kernel's contract.  Nothing else wakes a sleeper except:
 *   - a wait slice timing out (SK_WAKE_SLICE_NS, SK_CHAN_RECLAIM_NS,
 *     STUCK_NS, WAIT_SLICE_NS in the C code).  The C code sleeps in slices
 *     only so that dead peers are noticed; the model lets a slice end
 *     ONLY when that is what it is for - SLICE(p), defined by each model:
 *     missed[p] (a waker died between making its condition true and its
 *     wake) or a dead peer's claim blocks p.  With slices that ended at
 *     will no lost wake-up could ever be seen.
 *   - its own death.
 *
 * Event count (sync.c file-top comment, steps I1-I3, "Services"):
 *   inc:    I1 prev = word; word = (word + 2) & ~W (one RMW); if (prev & W) I3 wake all
 *   notify: R2 if (load(word) & W) inc       (sk_ec_notify: MPMC, bus)
 *   wait:   W1 w = fetch_or(word, W) | W; F fence; test; A3 futex_wait(w)
 * sk_wait_for (wait.h) tests once, then arms, tests again and sleeps;
 * after a wake it tests before arming again.  SPIN's interleavings are
 * sequentially consistent: that the C11 orders used (seq_cst RMW W1 and
 * fence F against the notifier's seq_cst RMW and seq_cst load R2) give
 * the same outcomes here is the argument of sync.c, assumed, not checked.
 *
 * End of run.  The watchdog's `timeout` fires only when no other process
 * can move: every live process is asleep (an end state: sleeping is
 * allowed), blocked where waiting is legitimate, or finished.  Then
 * FINAL_CHECK (each model's) asserts that no sleeper has work it could do
 * - a lost wake-up - and that nothing committed was lost.  A process
 * stuck anywhere else is SPIN's "invalid end state".
 */
#ifndef MAXDEAD
#define MAXDEAD 1
#endif
#ifndef MAXLOSS
#define MAXLOSS 0   /* live processes that lose their lock (closefrom) */
#endif
#define NPROC 6

byte ndead;                 /* deaths so far (bounded by MAXDEAD) */
byte nloss;                 /* lock losses so far (bounded by MAXLOSS) */
bool alive[NPROC];          /* holds its kernel lock (peer.c) */
bool mortal[NPROC];         /* may die or lose its lock in this run */
bool missed[NPROC];         /* a wake meant for it may have died with its waker */
byte asleep[NPROC];         /* 0, or 1 + index of the event count it sleeps on */
byte ecw[2];                /* event count words: counter << 1 | W */
byte gi;                    /* scratch for d_steps (always 0 between steps) */

/* Used first inside the atomic of each step: the step, or death instead. */
#define DIE if :: ndead < MAXDEAD && mortal[me] -> ndead++; goto died \
	:: nloss < MAXLOSS && alive[me] && mortal[me] -> nloss++; alive[me] = false \
	:: skip fi

/* I3: FUTEX_WAKE(all) on event count e. */
inline wake_all(e) {	/* inside the caller's atomic step */
	gi = 0;
	do
	:: gi < NPROC -> if :: asleep[gi] == e + 1 -> asleep[gi] = 0 :: else fi; gi++
	:: else -> gi = 0; break
	od
}

/* A waker died with its wake pending: every waiter may miss it. */
inline all_missed() {	/* inside the caller's atomic step */
	gi = 0;
	do
	:: gi < NPROC -> missed[gi] = true; gi++
	:: else -> gi = 0; break
	od
}

/* shmkit_ec_inc (sync.c I1, I3).  The caller set pendwake = true when it
 * made its condition true (a death from then until I3 loses a wake).  I1
 * moves the counter and clears W in one RMW (a CAS loop in C).  Mutant
 * BUG_SPLIT_CLEAR: the older form, I1 adds 2 and a second step (I2)
 * clears W - a waiter can arm between them, and the word can come back
 * to the value it armed on (ABA): a lost wake-up for arm-first waiters. */
inline ec_inc(e) {
	atomic { DIE; prev = ecw[e];                         /* I1 */
#ifdef BUG_SPLIT_CLEAR
		ecw[e] = ecw[e] + 2;
#else
		ecw[e] = (ecw[e] + 2) & 254;
#endif
#ifdef BUG_EC_NO_WAKE
		prev = 0;
#endif
		if :: !(prev & 1) -> pendwake = false :: else fi };
	if
	:: prev & 1 ->
#ifdef BUG_SPLIT_CLEAR
		atomic { DIE; ecw[e] = ecw[e] & 254 };       /* I2 */
#endif
		atomic { DIE; wake_all(e); pendwake = false; prev = 0 } /* I3 */
	:: else
	fi
}

/* sk_ec_notify (sync.c R2): after a condition made true by a seq_cst
 * RMW, increment (and wake) only if the waiter flag is set.  Mutant
 * BUG_NOTIFY_IGNORES_FLAG: the notifier skips the increment (and the
 * wake) even when the flag is set. */
inline ec_notify(e) {
	atomic { DIE; prev = ecw[e];                         /* R2 */
#ifdef BUG_NOTIFY_IGNORES_FLAG
		prev = 0;
#endif
		if :: !(prev & 1) -> pendwake = false; prev = 0 :: else fi };
	if
	:: prev & 1 -> prev = 0; ec_inc(e)
	:: else
	fi
}

/* sk_ec_arm (sync.c W1 + F): set the waiter flag; w = the word with it. */
inline ec_arm(e) {
	atomic { DIE; ecw[e] = ecw[e] | 1; w = ecw[e] }
}

/* The futex wait of an armed waiter on exactly w (A3), one sleep at most.
 * Sets sliced if it returned by a slice ending.  One use per proctype
 * (its end label). */
inline ec_sleep(e) {
	sliced = false;
	atomic { DIE; if :: ecw[e] == w -> asleep[me] = e + 1 :: else fi; w = 0 };
endsleep:
	atomic {
	if
	:: asleep[me] == 0                                    /* woken, or never slept */
	:: asleep[me] != 0 && SLICE(me) ->                    /* a slice ended */
		asleep[me] = 0; missed[me] = false; sliced = true
	:: asleep[me] != 0 && ndead < MAXDEAD && mortal[me] -> /* killed asleep */
		asleep[me] = 0; ndead++; goto died
	fi }
}

/* sk_wait_for's sleep loop (wait.h), in two pieces around the waiter's
 * condition test.  armed: 0 = not armed, 1 = arm before the next test,
 * 2 = armed (w holds the armed word).  ec_arm_top(e) stands at the top of
 * the test; ec_block(e) where the test found the condition false: the
 * first time it only asks for an arm and a second test (arm, test,
 * sleep); armed, it sleeps, and after a wake it arms and tests again.
 * (wait.h tests once more before arming again after a wake; the model
 * leaves that test out to stay within its memory bound: a test that finds
 * the condition false is followed by arm and test anyway, and one that
 * finds it true is a return the armed test can make too - the only
 * difference is a flag left set, which costs a needless wake.)  A waiter
 * that finds its condition true resets armed and w (ec_done).  Mutant
 * BUG_NO_RETEST: the waiter arms after its test and sleeps without
 * testing again - a lost wake-up. */
inline ec_arm_top(e) {
	if :: armed == 1 -> ec_arm(e); armed = 2 :: else fi
}
inline ec_block(e) {
	sliced = false;
	if
	:: armed == 0 ->
#ifdef BUG_NO_RETEST
		ec_arm(e); ec_sleep(e)
#else
		armed = 1
#endif
	:: armed == 2 -> ec_sleep(e); armed = 1
	fi
}
#define ec_done() armed = 0; w = 0

/* The end of run (see above); each model states it after its globals. */
#define WATCHDOG active proctype watchdog() { timeout -> d_step { FINAL_CHECK } }
