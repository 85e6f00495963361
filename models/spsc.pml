/*
 * spsc.pml - the SPSC channel protocol of src/chan_msg.c (SHMKIT_CHAN_SPSC):
 * one producer and one consumer at a time, enforced by role words; a
 * dead holder's role is taken over, and a new producer reconciles tail
 * with the slots (spsc_reconcile_tail).
 *
 * Instance: capacity 2; producer P0 (id 1) sends messages 1, 2 then closes
 * (sk_chan_role_drop); P1 (id 2) takes the producer role after it -
 * cleanly, or from P0's corpse - and sends 3, 4.  Consumer C0 (id 3)
 * receives forever; C1 (id 4) takes the consumer role if C0 dies.  Any one
 * of them may die before any step (MAXDEAD = 1).
 *
 * Steps, as named beside the atomics in src/chan_msg.c:
 *   S-R1  role_take: CAS role word 0 (or a dead holder's) -> me
 *   S-R2  sk_chan_role_drop: CAS role word me -> 0
 *   S-K1..K3 spsc_reconcile_tail: load head; load tail; load seq while FULL
 *   S-K4  spsc_reconcile_tail: store tail
 *   S-P1  spsc_claim_send: load head when the cached head says full
 *   S-P2  publish: store len, payload in 2 steps (payload is a value
 *         written twice: pay, then slen; a reader that sees them differ
 *         read a torn message)
 *   S-P3  publish: store_release seq = FULL(t)      the commit point
 *   S-P4  publish: store tail = t + 1
 *   S-P5  shmkit_ec_inc(not_empty)
 *   S-C1  spsc_claim_recv: load_acquire seq of slot head
 *   S-C2  read len, payload
 *   S-C3  consumed: store_release head = h + 1      delivery
 *   S-C4  shmkit_ec_inc(not_full)
 *
 * Properties (the crash promise of chan_recover.c's header: SPSC has
 * nothing to reclaim; a consumer killed mid-read has not moved head, so
 * the next consumer gets that message again - at-least-once reading,
 * exactly-once delivery counted at S-C3):
 *   - a message is delivered (S-C3) at most once, in its producer's order,
 *     never torn, and only if committed (S-P3);
 *   - at the end, every committed message was delivered (nothing
 *     committed is lost, whoever died);
 *   - no lost wake-up: nobody sleeps while its side has work (FINAL_CHECK).
 *
 * Mutants (scripts/models.sh runs them and requires SPIN to fail):
 *   BUG_NO_RECONCILE   a new producer trusts tail: after P0 dies between
 *                      S-P3 and S-P4, P1 overwrites a committed message
 *   BUG_NO_RETEST      the waiter arms (sets the event count's flag) after
 *                      testing the ring and sleeps without testing again:
 *                      a lost wake-up
 *   BUG_EARLY_PUBLISH  S-P3 before S-P2: a torn read
 *
 * Not modelled: the C11 orderings (SPIN is sequentially consistent; the
 * release/acquire pairs S-P3/S-C1 and S-C3/S-P1, S-R2/S-R1 are assumed),
 * and tail's relaxed store S-P4, which a C11 consumer may see late (the
 * consumer never learns of messages through tail).
 */
#define SLICE(p) (missed[p])
#define CAP 2
#ifndef NPER
#define NPER 2   /* messages per producer */
#endif
#define NMSG (2 * NPER)
#define NE 0    /* ecw[NE]: not_empty */
#define NF 1    /* ecw[NF]: not_full */
#define FREE 0
#define FULL 2

#define FINAL_CHECK \
	/* a consumer asleep while the slot at head holds a message */ \
	assert(!(asleep[3] == NE + 1 || asleep[4] == NE + 1) || \
	       !(spos[head % CAP] == head && sst[head % CAP] == FULL)); \
	/* a producer asleep while there is room */ \
	assert(!(asleep[1] == NF + 1 || asleep[2] == NF + 1) || tail - head < CAP); \
	/* nothing committed is lost */ \
	gi = 1; \
	do \
	:: gi <= NMSG -> assert(!committed[gi] || delivered[gi] == 1); gi++ \
	:: else -> gi = 0; break \
	od;

#include "common.pml"

byte spos[CAP], sst[CAP];   /* slot seq word: position, state (id is 0) */
byte pay[CAP], slen[CAP];    /* the message, written in two steps */
byte tail, head;
byte prole, crole;          /* role words: holder's id, 0 = none */
bool committed[NMSG + 1];
byte delivered[NMSG + 1];
byte lastdel[2];            /* per producer: last message delivered */

proctype producer(byte me; byte first)
{
	byte t, h, cached, m, prev, w, armed;
	bool pendwake, sliced;

	/* S-R1: role_take; -EBUSY (the program retries) while a live holder has it */
	atomic { (prole == 0 || !alive[prole]) -> prole = me };
	/* spsc_reconcile_tail */
	atomic { DIE; h = head };                       /* S-K1 */
	atomic { DIE; t = tail };                       /* S-K2 */
#ifndef BUG_NO_RECONCILE
	if :: t + 1 == h -> t = h :: else fi;
	assert(t - h <= CAP);
	do
	:: t - h < CAP ->
		atomic { DIE;                           /* S-K3 */
		if
		:: spos[t % CAP] == t && sst[t % CAP] == FULL -> t++
		:: else -> break
		fi }
	:: else -> break
	od;
	if :: t != tail -> atomic { DIE; tail = t } :: else fi; /* S-K4 */
#endif
	cached = h; h = 0;
	m = first;
	do
	:: m < first + NPER ->
		/* claim: spsc_claim_send, waiting on not_full (sk_wait_for) */
		do
		:: ec_arm_top(NF);                      /* W1, F (armed only) */
			atomic { DIE; t = tail;         /* own word */
			if :: t - cached < CAP -> ec_done(); break :: else fi };
			atomic { DIE; h = head;         /* S-P1 */
			assert(t - h <= CAP);
			cached = h; h = 0;
			if :: t - cached < CAP -> ec_done(); break :: else fi };
			ec_block(NF)
		od;
#ifdef BUG_EARLY_PUBLISH
		atomic { DIE; spos[t % CAP] = t; sst[t % CAP] = FULL; committed[m] = true; pendwake = true };
#endif
		atomic { DIE; pay[t % CAP] = m };       /* S-P2 */
		atomic { DIE; slen[t % CAP] = m };
#ifndef BUG_EARLY_PUBLISH
		atomic { DIE;                           /* S-P3: the commit point */
			spos[t % CAP] = t; sst[t % CAP] = FULL; committed[m] = true; pendwake = true };
#endif
		atomic { DIE; tail = t + 1 };           /* S-P4 */
		ec_inc(NE);                             /* S-P5 */
		m++
	:: else -> break
	od;
	atomic { DIE; if :: prole == me -> prole = 0 :: else fi }; /* S-R2 */
	goto done;
died:
	atomic { alive[me] = false; if :: pendwake -> all_missed() :: else fi };
done:
	skip
}

proctype consumer(byte me)
{
	byte h, s, rl, rp, prev, w, armed;
	bool pendwake, sliced;

	/* S-R1 (C1 waits here for good while C0 lives: an end state) */
endrole:
	atomic { (crole == 0 || !alive[crole]) -> crole = me };
	do
	:: ec_arm_top(NE);                              /* W1, F (armed only) */
		atomic { DIE;
		h = head;                               /* own word */
		s = h % CAP };
		atomic { DIE;                           /* S-C1 */
		if
		:: spos[s] == h && sst[s] == FULL -> rl = 1
		:: (spos[s] == h && sst[s] == FREE) || (spos[s] + CAP == h && sst[s] == FULL) -> rl = 0
		:: else -> assert(false)                /* -EBADMSG: no SPSC state */
		fi };
		if
		:: rl ->
			atomic { DIE; rl = slen[s] };   /* S-C2 */
			atomic { DIE; rp = pay[s];
				assert(rl == rp) };     /* never torn */
			atomic { DIE;                   /* S-C3: delivery */
				assert(committed[rp] && delivered[rp] == 0);
				assert(rp > lastdel[(rp - 1) / NPER]);
				lastdel[(rp - 1) / NPER] = rp;
				delivered[rp]++;
				head = h + 1;
				pendwake = true;
				rl = 0; rp = 0; ec_done() };
			ec_inc(NF)                      /* S-C4 */
		:: else ->
			ec_block(NE)
		fi
	od;
died:
	atomic { alive[me] = false; if :: pendwake -> all_missed() :: else fi }
}

init {
	atomic {
		gi = 0;
		do
		:: gi < CAP -> spos[gi] = gi; gi++
		:: else -> gi = 0; break
		od;
		alive[1] = true; alive[2] = true; alive[3] = true; alive[4] = true;
		mortal[1] = true; mortal[2] = true; mortal[3] = true; mortal[4] = true;
		run producer(1, 1);
		run producer(2, NPER + 1);
		run consumer(3);
		run consumer(4)
	}
}
WATCHDOG
