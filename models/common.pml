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
 * Event count (sync.c file-top comment, steps I1-I3 and A1-A3):
 *   inc:  I1 prev = fetch_add(word, 2); if (prev & W) { I2 clear W; I3 wake all }
 *   wait: A1 w = load(word); counter moved: return; A2 CAS W on; A3 futex_wait(w|W)
 * and sk_wait_for (wait.h): v = value (A0) BEFORE the condition test, then
 * ec_wait(v).  SPIN's interleavings are sequentially consistent: the
 * acquire/release pairing of I1 with A0/A1 (which makes the condition
 * visible with the count) is assumed, not checked.
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

/* shmkit_ec_inc (sync.c I1-I3).  The caller set pendwake = true when it
 * made its condition true (a death from then until I3 loses a wake). */
inline ec_inc(e) {
	atomic { DIE; prev = ecw[e]; ecw[e] = ecw[e] + 2;    /* I1 */
#ifdef BUG_EC_NO_WAKE
		prev = 0;
#endif
		if :: !(prev & 1) -> pendwake = false :: else fi };
	if
	:: prev & 1 ->
		atomic { DIE; ecw[e] = ecw[e] & 254 };       /* I2 */
		atomic { DIE; wake_all(e); pendwake = false; prev = 0 } /* I3 */
	:: else
	fi
}

/* shmkit_ec_wait(e, v) (sync.c A1-A3), one futex sleep at most.  Sets
 * sliced if it returned by a slice ending.  One use per proctype (its
 * end label). */
inline ec_wait(e, v) {
	sliced = false;
	do
	:: atomic { DIE; w = ecw[e];                          /* A1 */
		if :: (w >> 1) != v -> w = 0; break :: else fi };
		atomic { DIE;
			if
			:: !(w & 1) ->                        /* A2: CAS W on */
				if :: ecw[e] == w -> w = w | 1; ecw[e] = w :: else -> w = 0 fi
			:: else ->                            /* A3: compare and queue */
				if :: ecw[e] == w -> asleep[me] = e + 1 :: else fi; w = 0
			fi };
		if
		:: w & 1 ->                                   /* A3 after A2 */
			atomic { DIE; if :: ecw[e] == w -> asleep[me] = e + 1 :: else fi; w = 0 }
		:: else                                       /* A2 failed: back to A1 */
		fi;
endsleep:	atomic {
		if
		:: asleep[me] == 0                            /* woken, or never slept */
		:: asleep[me] != 0 && SLICE(me) ->            /* a slice ended */
			asleep[me] = 0; missed[me] = false; sliced = true; break
		:: asleep[me] != 0 && ndead < MAXDEAD && mortal[me] -> /* killed asleep */
			asleep[me] = 0; ndead++; goto died
		fi }
	od
}

/* The end of run (see above); each model states it after its globals. */
#define WATCHDOG active proctype watchdog() { timeout -> d_step { FINAL_CHECK } }
