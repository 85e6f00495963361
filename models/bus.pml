/*
 * bus.pml - the bus's claim/commit handshake and the subscriber's
 * arm-then-recheck wait (src/bus.c), overwrite mode, copy publishing
 * (shmkit_bus_publish): publishers claim a sequence from head, mark its
 * slot WRITING, copy, commit by a CAS from their mark; a subscriber reads
 * the slot of its position, validates the copy by re-reading the word
 * (seqlock), resynchronises when lapped (counting the jump lost), and
 * passes a slot stuck behind a dead or stalled claimer after STUCK_NS.
 *
 * Instance: capacity 2; publisher 1 publishes messages 1, 2, publisher 2
 * message 3; one subscriber (id 3) reads forever from sequence 0.  Either
 * publisher may die before any step (MAXDEAD = 1); the subscriber does
 * not (a dead subscriber only stops reading: nothing waits for it on an
 * overwrite bus).
 *
 * Slot word = (seq, pub, st, T) as in bus.c (seq << 13 | T << 11 | pub << 2
 * | st; st 0 = never written, 1 WRITING, 2 MSG, 3 SKIP; T: taken from its
 * holder; pub 0 stands for 510, an abandoned claim).  A message is a value
 * written in two steps (len, payload).  Steps, as named in src/bus.c:
 *   P1 fetch_add head           P2 store cur (publisher entry)
 *   P3 slot_take: load word, then CAS v -> (s, me, WRITING); a live
 *      holder's record still in the slot (holder_in_slot): wait, or give
 *      the sequence up (slot_give_up: taken(s, holder)) and claim again;
 *      a word already at s or later: claim again / lapped
 *   P4 store len, memcpy payload (after the release fence)
 *   P5 CAS (s, me, WRITING) -> (s, me, MSG)      the commit point; fails
 *      if a reader took the record: claim again
 *   P5b store_release cur = none
 *   P6 sk_ec_notify(published): inc only if the flag is set (P5 is seq_cst)
 *   R1 load_acquire word        R2 load len, memcpy payload
 *   R3/R4 fence, reload word: changed -> discard, look again
 *   A2-head: load head when not ready (empty if head <= pos)
 *   A2-skip: when the slot holds nothing of pos, the head read is
 *      skipped on most looks (the look says "not yet"); modelled as one
 *      skip per position, which reaches every state a run of them does
 *   sub_resync: load head, jump to head - cap, count the jump lost
 *   sub_stuck (after a STUCK_NS slice): WRITING(p) of a holder still in
 *      the slot: keep waiting; else CAS to taken(p) / SKIP(p), ec_inc
 * The subscriber waits with sk_wait_for on `published` (look; arm, look
 * again, sleep: common.pml ec_arm_top/ec_block); the pollable fd's arming
 * (sk_waitfd_service_arm: arm, look) is the same handshake.
 *
 * Properties (the bus's promise: never torn; lost counts exact):
 *   - a delivered message is the one committed under that sequence, whole
 *     (len == payload), at most once, in its publisher's order;
 *   - at the end every committed message was delivered or counted lost by
 *     the subscriber (a lapped reader's jump);
 *   - no lost wake-up: the subscriber does not sleep while the slot at its
 *     position is ready or lapped.
 *
 * Mutants (scripts/models.sh requires SPIN to fail on each):
 *   BUG_NO_R4         the reader does not re-read the word after copying:
 *                     it returns a message overwritten while it read
 *   BUG_NO_RETEST     the subscriber arms after its look and sleeps without
 *                     looking again: a lost wake-up
 *   BUG_NOTIFY_IGNORES_FLAG  P6 skips the increment even when the flag is
 *                     set: a lost wake-up
 *   BUG_P5_STORE      commit is a plain store, not a CAS from the WRITING
 *                     mark: a stalled publisher whose claim a reader gave
 *                     up commits into a slot handed on
 *
 * Not modelled: back-pressure (cursor scan, reaping, the join handshake),
 * loans (W_LOST), the publisher table's OFD locks beyond alive[], C11
 * orderings (SPIN is sequentially consistent: the P4 release fence / R3
 * acquire fence pairing, P5/R1, P5b/holder_in_slot are assumed; in C the
 * payload copy races a writer as a benign seqlock data race that R4
 * discards).
 */
#define CAP 2
#ifndef NPER
#define NPER 2              /* messages of publisher 1 (publisher 2: NPER2) */
#endif
#ifndef NPER2
#define NPER2 1
#endif
#define NMSG (NPER + NPER2)
#define NSEQ 10             /* sequences the instance can use */
#define PUBE 0              /* ecw[PUBE]: published */
#define NEVER 0
#define WRITING 1
#define MSG 2
#define SKIP 3
#define NONE 255            /* cur: not in a slot (BUS_SEQ_MAX) */

/* the slot of the subscriber's position is claimed but not ready */
#define STUCK (head > pos && !(wst[pos % CAP] != NEVER && wseq[pos % CAP] >= pos && \
	(wseq[pos % CAP] > pos || wst[pos % CAP] != WRITING)))
/* Timing made finite: a live claimer is taken for stalled (its claim
 * given up after STUCK_NS, or a copy waited for given up) at most
 * MAXSTALL times per run; a dead one always. */
#ifndef MAXSTALL
#define MAXSTALL 1
#endif
#define SLICE(p) (missed[p] || (STUCK && (!alive[claimer[pos]] || nstall < MAXSTALL)))
#define READY (wst[pos % CAP] != NEVER && (wseq[pos % CAP] > pos || \
	(wseq[pos % CAP] == pos && wst[pos % CAP] != WRITING)))

#define FINAL_CHECK \
	assert(asleep[3] == 0 || !READY); \
	gi = 0; \
	do \
	:: gi < NSEQ -> assert(seqmsg[gi] == 0 || (gi < pos && (delivered[seqmsg[gi]] || lostc[gi]))); gi++ \
	:: else -> gi = 0; break \
	od;

#include "common.pml"

byte wseq[CAP], wpub[CAP], wst[CAP];
bool wT[CAP];
byte slen[CAP], pay[CAP];
byte head;
byte cur[3] = NONE;         /* publisher entries' cur */
byte seqmsg[NSEQ];          /* the message committed under a sequence */
bool lostc[NSEQ];           /* counted lost by the subscriber */
bool delivered[NMSG + 1];
byte lastdel[3];
byte pos;                   /* the subscriber's position */
byte claimer[NSEQ];         /* ghost: who claimed a sequence (P1) */
byte nstall;                /* live claimers taken for stalled so far */

/* holder_in_slot for the word in (vs, vp, vst, vT) at slot of s */
#define HOLDER_IN(vs, vp) (vp != 0 && cur[vp] != NONE && cur[vp] % CAP == (vs) % CAP && \
	cur[vp] <= (vs) && alive[vp])

proctype publisher(byte me; byte first; byte n)
{
	byte m, s, vs, vp, vst, r, prev, w, v;
	bool vT, pendwake, sliced, ok;

	m = first;
	do
	:: m < first + n ->
		atomic { DIE; s = head; head++; assert(head < NSEQ); claimer[s] = me }; /* P1 */
		atomic { DIE; cur[me] = s };                                /* P2 */
		do  /* slot_take */
		:: atomic { DIE;                                            /* P3: load */
			vs = wseq[s % CAP]; vp = wpub[s % CAP]; vst = wst[s % CAP]; vT = wT[s % CAP];
			if
			:: vst != NEVER && vs > s -> r = 2          /* lapped */
			:: vst != NEVER && vs == s -> r = 0         /* taken over: claim again */
			:: vst != NEVER && vs < s && (vst == WRITING || vT) && HOLDER_IN(vs, vp) ->
				r = 3                               /* a live holder is in the slot */
			:: else -> r = 1
			fi };
			if
			:: r == 1 ->
				atomic { DIE;                               /* P3: CAS */
				if
				:: wseq[s % CAP] == vs && wpub[s % CAP] == vp && wst[s % CAP] == vst &&
				   wT[s % CAP] == vT ->
					wseq[s % CAP] = s; wpub[s % CAP] = me; wst[s % CAP] = WRITING;
					wT[s % CAP] = false; r = 4;
					pendwake = true  /* a lapped reader may go on now; P6 wakes it */
				:: else
				fi };
				if :: r == 4 -> break :: else fi
			:: r == 3 ->    /* wait for the copy, or give s up (slot_give_up) */
				if
				:: skip
				:: atomic { nstall < MAXSTALL -> DIE; nstall++;
					if
					:: wseq[s % CAP] == vs && wpub[s % CAP] == vp && wst[s % CAP] == vst &&
					   wT[s % CAP] == vT ->
						wseq[s % CAP] = s; wst[s % CAP] = SKIP; wT[s % CAP] = true; r = 0
					:: else
					fi };
					if :: r == 0 -> break :: else fi
				fi
			:: else -> break
			fi
		od;
		if
		:: r == 4 ->
			atomic { DIE; slen[s % CAP] = m };                  /* P4 */
			atomic { DIE; pay[s % CAP] = m };
			atomic { DIE;                                       /* P5: the commit point */
#ifdef BUG_P5_STORE
				wseq[s % CAP] = s; wpub[s % CAP] = me; wst[s % CAP] = MSG; wT[s % CAP] = false;
				seqmsg[s] = m; ok = true; pendwake = true
#else
				if
				:: wseq[s % CAP] == s && wpub[s % CAP] == me && wst[s % CAP] == WRITING && !wT[s % CAP] ->
					wst[s % CAP] = MSG; seqmsg[s] = m; ok = true; pendwake = true
				:: else -> ok = false
				fi
#endif
				};
			atomic { DIE; cur[me] = NONE };                     /* P5b */
			if
			:: ok -> ec_notify(PUBE); m++; ok = false           /* P6 */
			:: else                                             /* taken: claim again */
			fi
		:: r == 2 -> atomic { cur[me] = NONE; m++ }  /* lapped: published and overwritten at once */
		:: else -> atomic { cur[me] = NONE }         /* claim again */
		fi;
		atomic { s = 0; r = 0; vs = 0; vp = 0; vst = 0; vT = false }
	:: else -> break
	od;
	goto done;
died:
	atomic { alive[me] = false; if :: pendwake -> all_missed() :: else fi };
done:
	skip
}

proctype subscriber(byte me)
{
	byte vs, vp, vst, h, rl, rp, nst, np, prev, w, armed, skipped;
	bool vT, nT, pendwake, sliced, got;

	do
	:: ec_arm_top(PUBE);                                                /* W1, F (armed only) */
		do  /* sub_locate */
		:: atomic {                                                 /* R1 */
			vs = wseq[pos % CAP]; vp = wpub[pos % CAP]; vst = wst[pos % CAP]; vT = wT[pos % CAP] };
			if
			:: vst != NEVER && vs > pos ->                      /* lapped: sub_resync */
				atomic { h = head;
					assert(h > vs && h >= CAP && h - CAP > pos);
					gi = pos;
					do
					:: gi < h - CAP -> lostc[gi] = true; gi++
					:: else -> gi = 0; break
					od;
					pos = h - CAP; h = 0 }
			:: vst == MSG && vs == pos ->
				atomic { rl = slen[pos % CAP] };            /* R2 */
				atomic { rp = pay[pos % CAP] };
				atomic {                                    /* R3, R4 */
#ifndef BUG_NO_R4
					if
					:: wseq[pos % CAP] == vs && wpub[pos % CAP] == vp && wst[pos % CAP] == vst &&
					   wT[pos % CAP] == vT ->
#endif
						assert(rl == rp && rp == seqmsg[pos]);  /* whole, the right one */
						assert(!delivered[rp]);
						assert(rp > lastdel[(rp - 1) / NPER]);
						lastdel[(rp - 1) / NPER] = rp;
						delivered[rp] = true;
						pos++; got = true
#ifndef BUG_NO_R4
					:: else                             /* overwritten: look again */
					fi;
#endif
					rl = 0; rp = 0 };
				if :: got -> break :: else fi
			:: vst == SKIP && vs == pos -> atomic { pos++ }     /* passed silently */
			:: else ->                                          /* not ready */
				if  /* A2-skip: nothing of pos in the slot, head not read (C: 63 looks in 64): "not yet" */
				:: (vst == NEVER || vs < pos) && skipped != pos + 1 -> skipped = pos + 1; break
				:: true
				fi;
				atomic { h = head;                          /* (A2 of the fd handshake) */
					if :: h <= pos -> h = 0; break :: else -> h = 0 fi };
				/* stuck: waited for in slices; sub_stuck after STUCK_NS */
				if
				:: atomic { sliced -> sliced = false };
					if  /* sub_stuck: judge the word v read at R1 */
					:: vst == WRITING && vs == pos ->
						if
						:: HOLDER_IN(vs, vp) -> nst = 0  /* a live copier: keep waiting */
						:: else -> np = vp; nst = SKIP; nT = true
						fi
					:: (vst == WRITING || vT) && vs != pos -> np = vp; nst = SKIP; nT = true
					:: else -> np = 0; nst = SKIP; nT = false
					fi;
					if
					:: nst != 0 ->
						atomic {
						if :: alive[claimer[pos]] -> nstall++ :: else fi;
						if
						:: wseq[pos % CAP] == vs && wpub[pos % CAP] == vp &&
						   wst[pos % CAP] == vst && wT[pos % CAP] == vT ->
							wseq[pos % CAP] = pos; wpub[pos % CAP] = np;
							wst[pos % CAP] = nst; wT[pos % CAP] = nT; pendwake = true
						:: else
						fi;
						nst = 0; np = 0; nT = false };
						if :: pendwake -> ec_inc(PUBE) :: else fi
					:: else
					fi
				:: else -> break
				fi
			fi;
			atomic { vs = 0; vp = 0; vst = 0; vT = false }
		od;
		if
		:: got -> atomic { got = false; ec_done() }
		:: else -> ec_block(PUBE)
		fi
	od;
died:
	skip
}

init {
	atomic {
		alive[1] = true; alive[2] = true; alive[3] = true;
		mortal[1] = true; mortal[2] = true;
		run publisher(1, 1, NPER);
		run publisher(2, NPER + 1, NPER2);
		run subscriber(3)
	}
}

WATCHDOG
