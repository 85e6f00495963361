/*
 * mpmc.pml - the MPMC channel protocol of src/chan*.c (format 8): a
 * producer claims a position by a CAS of tail, after storing its claim
 * record (WRITING(t, me) in its statistics entry); the slot stays FREE(t)
 * while it writes, and its publication is a CAS FREE(t) -> FULL(t).
 * Consumers claim by CASes of the slot word that carry their peer id;
 * release is a CAS from that claim word; head is a hint consumers help
 * along (index_help).  A side blocked by a dead peer's claim reclaims it
 * after a wait slice, only if the kernel says its lock is gone - for a
 * FREE slot behind tail, only if no live producer's record names it.
 *
 * Instance: capacity 2 (or CAP = 1, where every message laps and the
 * reclaim of dead READING claims is reached); producer 1 sends messages
 * 1..NPER, producer 2 (NPROD = 2) NPER2 more; consumer 3 and (NCONS = 2) consumer 4 receive
 * forever.  scripts/models.sh checks producers racing (2 producers, 1
 * consumer) and consumers racing (1 producer, 2 consumers) separately:
 * the 2 x 2 instance takes minutes (models.sh -f runs larger ones).  Any
 * one process may die before any step (MAXDEAD = 1; a lone consumer does
 * not: someone must be left to receive), or (MAXLOSS = 1) lose its kernel
 * lock and go on.  Producers all hold an entry (the fallback claim P3' of
 * a handle without one is not modelled).
 *
 * Slot word = (position, state, id); a message is a value written in two
 * steps: payload (pay) and len (slen); a reader that sees them differ
 * read a torn message.  Steps, as named in src/chan_msg.c (R0, R1:
 * src/chan_recover.c):
 *   P1 load tail          P2 load slot word
 *   P3 record = WRITING(t, me) (recpos, recon)
 *   P4 CAS tail t -> t+1: the claim (fails: t = tail, back to P2)
 *      (a claim attempt that ends full clears the record, claim_none;
 *      the model does it in the P2 step that finds the slot full)
 *   P5 memcpy payload     P6 store_release len
 *   P7 CAS FREE(t) -> FULL(t)   commit point; fails (-ESTALE) if taken,
 *      which must happen only to a handle that lost its lock (asserted)
 *   P8 sk_ec_notify(not_empty): inc only if the flag is set (P7 is seq_cst)
 *   C1 load head          C2 load slot word + relaxed load of len
 *   peek: C3 CAS FULL(h) -> READING(h, me)   C4 CAS head h -> h+1 (index_help)
 *         C5 memcpy payload
 *         C6 CAS READING(h, me) -> FREE(h + cap)   delivery; fails (-ESTALE) if taken
 *   recv: C5' memcpy payload while the word says FULL(h)
 *         C3' CAS FULL(h) -> FREE(h + cap)   delivery; fails if another
 *             consumer took it (the copy is discarded, back to C2)
 *         C4
 *   C7 sk_ec_notify(not_full) (C3' and C6 are seq_cst)
 * Each consumer picks recv or peek for each message (nondeterminism).
 *   R0 reclaim_claim: a FREE(p) slot behind tail (a producer's claim in
 *      progress) -> FREE(p + cap), if no record of a live producer names
 *      p (stale records of dead ones, or of losers of the CAS of tail,
 *      may name it too)
 *   R1 reclaim_word: CAS dead claim word -> FREE(p + cap), after the
 *      kernel said its lock is free (sk_peer_held); R2 sk_chan_give_up:
 *      inc both event counts
 * Waits are sk_wait_for's (common.pml ec_arm_top/ec_block: test, arm,
 * test again, sleep on the armed word); a slice ends (SLICE) only when
 * a wake may have died with its waker or a dead peer's claim blocks this
 * waiter - then watch() reclaims it.
 *
 * Properties (the crash promise of chan_recover.c's header):
 *   - a message is delivered (C6, C3') at most once, in its producer's
 *     order for each consumer, never torn, and only if committed (P7);
 *   - at the end, every committed message was delivered, except one a
 *     consumer had claimed (C3) and not released when it died or lost
 *     its lock (documented loss: at most one per dead consumer);
 *   - no lost wake-up: at the end no consumer sleeps while a slot holds
 *     a message, no producer sleeps while the slot at tail is free;
 *   - the reclaimer only frees a dead claim (asserted: not alive at R1).
 *
 * Mutants (scripts/models.sh requires SPIN to fail on each):
 *   BUG_RECLAIM_LIVE   reclaim without asking the kernel (no liveness
 *                      check): a live consumer's claimed message is lost
 *   BUG_CLAIM_STORES   the consumer's claim C3 and release C6 are plain
 *                      stores, not CASes from the word read / the claim
 *                      word: two consumers deliver one message.  (Either
 *                      CAS alone suffices against that: with C3 a store
 *                      and C6 a CAS, the second release fails -ESTALE.)
 *   BUG_NO_RETEST      the waiter arms after testing the ring and sleeps
 *                      without testing again: a lost wake-up
 *   BUG_NOTIFY_IGNORES_FLAG  the conditional notify skips the increment
 *                      even when the flag is set: a lost wake-up
 *   BUG_COPY_STORE     recv's take C3' is a plain store, not a CAS from
 *                      the word read before the copy: two consumers
 *                      deliver one message
 *   BUG_NO_RECORD      R0 frees a FREE slot behind tail without reading
 *                      the records: a live producer's claim is taken, its
 *                      P7 fails
 *   BUG_RECORD_LATE    P3 after P4 (the record stored after the claim): a
 *                      reclaimer between them finds no record and takes
 *                      the live claim
 *   BUG_ANY_DEAD_RECORD  R0 frees the slot when a dead record names it,
 *                      not only when no live one does: a dead loser of
 *                      the CAS of tail lets a live claim be taken
 *
 * Finding (MAXLOSS = 1, not run by scripts/models.sh because it fails):
 * a producer that lost its lock (closefrom) while stalled between P4 and
 * P7 has its claim reclaimed; a producer a lap later claims the slot and
 * writes its message; the stalled one then does its P6 len store (and its
 * memcpy P5) into that slot before its P7 CAS fails (-ESTALE): a consumer
 * reads the new message's payload with the stale len - a torn message.
 * The CAS from the claim word guards the seq word only, not the payload
 * and len stores that precede it.  Reproduce with
 *   spin -DMAXDEAD=0 -DMAXLOSS=1 -a mpmc.pml  (then pan as in models.sh)
 *
 * Not modelled: C11 weak orderings (SPIN is sequentially consistent: the
 * pairs P7/C2, C6/P2, P4/the reclaimer's load of tail, index_help's
 * acq_rel chain, len_stable's fence, are assumed); -EMSGSIZE and abort
 * (abort is P7 to FREE(t + cap) instead of FULL(t)); the fallback claim
 * P3' of a handle without an entry; a new handle taking a dead one's
 * entry over (its record goes: R0 then finds none, as for a dead
 * claimer); id reuse after 2^22 ids (purge_stale); positions wrapping
 * at 2^40.
 */
#ifndef CAP
#define CAP 2
#endif
#ifndef NPER
#define NPER 2      /* messages per producer */
#endif
#ifndef NPER2
#define NPER2 NPER  /* messages of producer 2 */
#endif
#ifndef NPROD
#define NPROD 2     /* producers: 1 or 2 */
#endif
#ifndef NCONS
#define NCONS 1     /* consumers: 1 or 2; a lone consumer never dies */
#endif
#define NMSG (NPER + NPER2)
#define NE 0
#define NF 1
#define FREE 0
#define WRITING 1
#define FULL 2
#define READING 3

/* no claim record of a live producer names position q (R0) */
#if defined(BUG_NO_RECORD)
#define NO_LIVE_RECORD(q) true
#elif defined(BUG_ANY_DEAD_RECORD)
#define NO_LIVE_RECORD(q) ((recon[1] && recpos[1] == (q) && !alive[1]) || \
	(recon[2] && recpos[2] == (q) && !alive[2]))
#else
#define NO_LIVE_RECORD(q) (!(recon[1] && recpos[1] == (q) && alive[1]) && \
	!(recon[2] && recpos[2] == (q) && alive[2]))
#endif
/* position q is claimed (tail passed it), its slot still FREE(q), and no
 * live record names it */
#define FREE_CLAIM_DEAD(q) (tail > (q) && spos[(q) % CAP] == (q) && sst[(q) % CAP] == FREE && \
	NO_LIVE_RECORD(q))
/* the claim word that blocks waiter p is still there, and its claimer dead */
#define BLOCKED_BY_DEAD(p) ((bid[p] != 0 && !alive[bid[p]] && \
	spos[bpos[p] % CAP] == bpos[p] && sst[bpos[p] % CAP] == bst[p] && sid[bpos[p] % CAP] == bid[p]) || \
	(bfree[p] && FREE_CLAIM_DEAD(bpos[p])))
#define SLICE(p) (missed[p] || BLOCKED_BY_DEAD(p))

#define FINAL_CHECK \
	/* lost wake-ups */ \
	gi = 0; \
	do \
	:: gi < CAP -> assert(!(asleep[3] == NE + 1 || asleep[4] == NE + 1) || sst[gi] != FULL); gi++ \
	:: else -> gi = 0; break \
	od; \
	assert(!(asleep[1] == NF + 1 || asleep[2] == NF + 1) || spos[tail % CAP] < tail); \
	gi = 1; \
	do \
	:: gi <= NMSG -> assert(!committed[gi] || delivered[gi] == 1 || excused[gi]); gi++ \
	:: else -> gi = 0; break \
	od;

#include "common.pml"

byte spos[CAP], sst[CAP], sid[CAP];  /* slot seq words */
byte pay[CAP], slen[CAP];            /* a message: two stores */
byte tail, head;
byte bpos[NPROC], bst[NPROC], bid[NPROC]; /* each waiter's blocker word (bid 0: none) */
bool bfree[NPROC];                   /* ...or a FREE(bpos) word: a claim named by records */
byte recpos[NPROC];                  /* producers' claim records: WRITING(recpos, p) */
bool recon[NPROC];                   /* ...set */
bool committed[NMSG + 1], excused[NMSG + 1];
byte delivered[NMSG + 1];
byte lastdel[NPROC * 2];             /* [consumer * 2 + producer]: last delivered */

/* R1, R2: watch() after a slice: reclaim the blocker if its claimer is
 * dead (sk_chan_reclaim(), reclaim_word(), sk_chan_give_up()). */
inline reclaim() {
	atomic { DIE;                                       /* R1 */
		if
		:: bid[me] != 0 && bid[me] != me &&
#ifndef BUG_RECLAIM_LIVE
		   !alive[bid[me]] &&                       /* sk_peer_held */
#endif
		   spos[bpos[me] % CAP] == bpos[me] && sst[bpos[me] % CAP] == bst[me] &&
		   sid[bpos[me] % CAP] == bid[me] ->
			if  /* a dead consumer's message: the documented loss */
			:: bst[me] == READING && !alive[bid[me]] -> excused[pay[bpos[me] % CAP]] = true
			:: else
			fi;
			spos[bpos[me] % CAP] = bpos[me] + CAP;
			sst[bpos[me] % CAP] = FREE; sid[bpos[me] % CAP] = 0;
			pendwake = true
		:: bfree[me] && FREE_CLAIM_DEAD(bpos[me]) ->   /* R0: reclaim_claim */
			spos[bpos[me] % CAP] = bpos[me] + CAP;
			pendwake = true
		:: else
		fi;
		bid[me] = 0; bpos[me] = 0; bst[me] = 0; bfree[me] = false; sliced = false };
	if
	:: pendwake -> ec_inc(NE); pendwake = true; ec_inc(NF)   /* R2 */
	:: else
	fi
}

proctype producer(byte me; byte first; byte n)
{
	byte t, m, ws, wp, wi, prev, w, v, armed;
	bool pendwake, sliced, got, cand;

	m = first;
	do
	:: m < first + n ->
		do  /* claim (mpmc_claim_send), waiting on not_full */
		:: ec_arm_top(NF);                          /* W1, F (armed only) */
			atomic { DIE; t = tail };           /* P1 */
			do
			:: atomic { DIE;                    /* P2 */
				wp = spos[t % CAP]; ws = sst[t % CAP]; wi = sid[t % CAP];
				if
				:: wp + CAP == t ->         /* full: wait (claim_none) */
					if
					:: ws == READING -> bpos[me] = wp; bst[me] = ws; bid[me] = wi
					:: ws == FREE -> bpos[me] = wp; bfree[me] = true /* t - cap being written */
					:: else
					fi;
					recon[me] = false; recpos[me] = 0;
					wp = 0; ws = 0; wi = 0; t = 0;
					break
				:: wp == t && ws == FREE -> /* P3: the record */
					cand = true;
#ifndef BUG_RECORD_LATE
					recpos[me] = t; recon[me] = true
#else
					skip
#endif
				:: wp >= t && !(wp == t && ws == FREE) -> t = tail /* tail was stale */
				:: else -> assert(false)    /* -EBADMSG */
				fi };
				if
				:: cand ->
					atomic { DIE;               /* P4: the claim, CAS tail */
						if
						:: tail == t -> tail = t + 1; got = true
						:: else -> t = tail
						fi;
						wp = 0; ws = 0; wi = 0; cand = false };
#ifdef BUG_RECORD_LATE
					if :: got -> atomic { DIE; recpos[me] = t; recon[me] = true } :: else fi;
#endif
					if :: got -> v = 0; break :: else fi
				:: else -> wp = 0; ws = 0; wi = 0
				fi
			od;
			if
			:: got -> atomic { ec_done() }; break
			:: else
			fi;
			ec_block(NF);
			atomic { v = 0; if :: !sliced -> bid[me] = 0; bfree[me] = false :: else fi };
			if :: sliced -> reclaim() :: else fi
		od;
		atomic { DIE; pay[t % CAP] = m };            /* P5 */
		atomic { DIE; slen[t % CAP] = m };           /* P6 */
		atomic { DIE;                                /* P7: the commit point */
			if
			:: spos[t % CAP] == t && sst[t % CAP] == FREE ->
				sst[t % CAP] = FULL; sid[t % CAP] = 0;
				committed[m] = true; pendwake = true
			:: else  /* -ESTALE: the claim was taken; nothing published */
				assert(!alive[me])  /* only from a handle that lost its lock */
			fi;
			t = 0; got = false; m++ };
		if :: pendwake -> ec_notify(NE) :: else fi   /* P8 */
	:: else -> break
	od;
	goto done;
died:
	atomic { alive[me] = false; if :: pendwake -> all_missed() :: else fi };
done:
	skip
}

proctype consumer(byte me)
{
	byte h, rl, rp, ws, wp, wi, prev, w, v, armed;
	bool pendwake, sliced, got, took;

	do
	:: ec_arm_top(NE);                                   /* W1, F (armed only) */
		atomic { DIE; h = head };                    /* C1 */
		do
		:: atomic { DIE;                             /* C2 (+ relaxed load of len) */
			wp = spos[h % CAP]; ws = sst[h % CAP]; wi = sid[h % CAP];
			if
			:: wp == h && ws == FULL -> rl = slen[h % CAP]
			:: wp > h || (wp == h && ws == READING) /* taken: head is stale */
			:: wp == h && ws == FREE ->     /* nothing published at h: watched */
				bpos[me] = wp; bfree[me] = true;
				wp = 0; ws = 0; wi = 0; h = 0;
				break
			:: wp + CAP == h && ws == READING -> /* a slow consumer holds h - cap */
				bpos[me] = wp; bst[me] = ws; bid[me] = wi;
				wp = 0; ws = 0; wi = 0; h = 0;
				break
			:: else -> assert(false)             /* -EBADMSG */
			fi };
			if
			:: wp == h && ws == FULL ->          /* recv: copy, then take (C3') */
				atomic { DIE; rp = pay[h % CAP] };   /* C5' */
				atomic { DIE;                        /* C3': the delivery */
				if
#ifdef BUG_COPY_STORE
				:: true ->
#else
				:: spos[h % CAP] == wp && sst[h % CAP] == ws && sid[h % CAP] == wi ->
#endif
					assert(rl == rp);            /* never torn */
					assert(committed[rp] && delivered[rp] == 0);
					assert(rp > lastdel[me * 2 + (rp - 1) / NPER]);
					lastdel[me * 2 + (rp - 1) / NPER] = rp;
					delivered[rp]++;
					spos[h % CAP] = h + CAP; sst[h % CAP] = FREE; sid[h % CAP] = 0;
					pendwake = true; took = true
				:: else                      /* another consumer took it: discard */
				fi;
				rl = 0; rp = 0; wp = 0; ws = 0; wi = 0;
				if :: took -> v = 0; break :: else fi }
			:: true
			fi;
			atomic { DIE;
				if
				:: wp == h && ws == FULL ->  /* C3 (peek) */
					if
#ifdef BUG_CLAIM_STORES
					:: true ->
#else
					:: spos[h % CAP] == wp && sst[h % CAP] == ws && sid[h % CAP] == wi ->
#endif
						sst[h % CAP] = READING; sid[h % CAP] = me; got = true
					:: else -> rl = 0
					fi
				:: else ->                   /* C4: head is stale */
					if :: head == h -> h++; head = h :: else -> h = head fi
				fi;
				wp = 0; ws = 0; wi = 0;
				if :: got -> v = 0; break :: else fi }
		od;
		if
		:: took ->
			atomic { DIE; if :: head == h -> head = h + 1 :: else fi; /* C4 */
				h = 0; took = false; ec_done() };
			if :: pendwake -> ec_notify(NF) :: else fi /* C7 */
		:: got ->
			atomic { DIE; if :: head == h -> head = h + 1 :: else fi; ec_done() }; /* C4 */
			atomic { DIE; rp = pay[h % CAP] };   /* C5 */
			atomic { DIE;                        /* C6: delivery */
			if
#ifdef BUG_CLAIM_STORES
			:: true ->
#else
			:: spos[h % CAP] == h && sst[h % CAP] == READING && sid[h % CAP] == me ->
#endif
				assert(rl == rp);            /* never torn */
				assert(committed[rp] && delivered[rp] == 0);
				assert(rp > lastdel[me * 2 + (rp - 1) / NPER]);
				lastdel[me * 2 + (rp - 1) / NPER] = rp;
				delivered[rp]++;
				spos[h % CAP] = h + CAP; sst[h % CAP] = FREE; sid[h % CAP] = 0;
				pendwake = true
			:: else  /* -ESTALE: taken from us; what we read is discarded */
			fi;
			rl = 0; rp = 0; h = 0; got = false };
			if :: pendwake -> ec_notify(NF) :: else fi /* C7 */
		:: else ->
			ec_block(NE);
			atomic { v = 0; if :: !sliced -> bid[me] = 0; bfree[me] = false :: else fi };
			if :: sliced -> reclaim() :: else fi
		fi
	od;
died:
	atomic {
		alive[me] = false;
		if :: pendwake -> all_missed() :: else fi;
		/* claimed (C3), not released (C6): the documented loss */
		if
		:: got && spos[h % CAP] == h && sst[h % CAP] == READING && sid[h % CAP] == me ->
			excused[pay[h % CAP]] = true
		:: else
		fi }
}

init {
	atomic {
		gi = 0;
		do
		:: gi < CAP -> spos[gi] = gi; gi++
		:: else -> gi = 0; break
		od;
		alive[1] = true; run producer(1, 1, NPER);
		mortal[1] = true;
		alive[3] = true; run consumer(3);
#if NPROD == 2
		alive[2] = true; run producer(2, NPER + 1, NPER2);
		mortal[2] = true;
#endif
#if NCONS == 2
		alive[4] = true; run consumer(4);
		mortal[3] = true; mortal[4] = true;
#endif
		skip
	}
}

WATCHDOG
