/*
 * bus.pml - the bus's claim/commit handshake and the subscriber's
 * arm-then-recheck wait (src/bus_pub.c, src/bus_sub.c; format and shared
 * helpers in src/bus.h), overwrite mode, copy publishing
 * (shmkit_bus_publish): publishers take a sequence from head, claim its
 * slot on the claim word (CAS), mark the slot word WRITING (a plain
 * store), copy, commit by a CAS from their mark; a subscriber reads
 * the slot of its position, validates the copy by re-reading the word
 * (seqlock), resynchronises when lapped (counting the jump lost), and
 * passes a slot stuck behind a dead or stalled claimer after SK_BUS_STUCK_NS.
 *
 * Instance: capacity 2; publisher 1 publishes messages 1, 2, publisher 2
 * message 3; one subscriber (id 3) reads forever from sequence 0.  Either
 * publisher may die before any step (MAXDEAD = 1); the subscriber does
 * not (a dead subscriber only stops reading: nothing waits for it on an
 * overwrite bus).
 *
 * Slot word = (seq, pub, st, T) as in bus.h (seq << 13 | T << 11 | pub << 2
 * | st; st 0 = never written, 1 WRITING, 2 MSG, 3 SKIP; T: taken from its
 * holder; pub 0 stands for 510, nobody).  Claim word, one per slot, the
 * same fields: st 1 claimed by pub, 3 given up (T: pub may still be in
 * the slot).  A message is a value written in two steps (len, payload).
 * Steps, as named in src/bus_pub.c and src/bus_sub.c:
 *   P1 fetch_add head           P2 store cur (publisher entry)
 *   P3 slot_take: load the claim and the slot word, then CAS the claim
 *      c -> (s, me, claimed); a holder that may still be in the slot
 *      (not sk_bus_claim_done, sk_bus_holder_in_slot): wait, or give the
 *      sequence up (slot_give_up: claim given(s, holder, T), and the
 *      holder's marked record taken) and claim again; a claim already at s
 *      or later: claim again / lapped
 *   P3m store word = (s, me, WRITING): the mark, a plain store
 *   P4 store len, memcpy payload (after the release fence)
 *   P5 CAS (s, me, WRITING) -> (s, me, MSG)      the commit point; fails
 *      if the record was taken: claim again
 *   P5b store_release cur = none
 *   P6 sk_ec_notify(published): inc only if the flag is set (P5 is seq_cst)
 *   R1 load_acquire word        R2 load len, memcpy payload
 *   R3/R4 fence, reload word: changed -> discard, look again
 *   A2-skip (sub_quick_look): head and claim not read, "not yet" - only
 *      while the count's waiter flag is clear
 *   A2-head: load head when not ready (empty if head <= pos)
 *   R1c (sub_claim_look): the word shows nothing of pos: load the claim;
 *      a later sequence's: resync; pos given up: pass it
 *   sub_resync: load head, jump to head - cap, count the jump lost
 *   sub_stuck (after a SK_BUS_STUCK_NS slice): WRITING(p) of a holder still in
 *      the slot: keep waiting; else CAS the word to taken(p); claimed and
 *      unmarked by a live claimer: keep waiting; else (dead claimer, or
 *      not claimed) CAS the claim to given(p); ec_inc
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
 *                     mark: a stalled publisher whose record was taken
 *                     commits after readers passed it
 *   BUG_CLAIM_STORE   the claim is a plain store, not a CAS: a claimer whose
 *                     sequence was given up marks and writes over a slot
 *                     handed on (a torn read)
 *   BUG_NO_MARK       no WRITING mark before the payload: a lagging reader's
 *                     copy is torn
 *
 * Not modelled: back-pressure (cursor scan, reaping, the join handshake),
 * loans (W_LOST), the publisher table's OFD locks beyond alive[], C11
 * orderings (SPIN is sequentially consistent: the P4 release fence / R3
 * acquire fence pairing, P5/R1, P5b/sk_bus_holder_in_slot are assumed; in C the
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
#define NONE 255            /* cur: not in a slot (SK_BUS_SEQ_MAX) */

/* the subscriber can move on from pos: the slot word shows it (lapped,
 * or MSG/SKIP of pos), or - the word not marked for pos - its claim does
 * (claimed by a later sequence, or pos given up) */
#define WREADY (wst[pos % CAP] != NEVER && (wseq[pos % CAP] > pos || \
	(wseq[pos % CAP] == pos && wst[pos % CAP] != WRITING)))
#define CREADY (cst[pos % CAP] != NEVER && (cseq[pos % CAP] > pos || \
	(cseq[pos % CAP] == pos && cst[pos % CAP] == SKIP)))
#define READY (WREADY || (!(wst[pos % CAP] == WRITING && wseq[pos % CAP] == pos) && CREADY))
/* the slot of the subscriber's position is claimed but not ready */
#define STUCK (head > pos && !READY)
/* Timing made finite: a live claimer is taken for stalled (its claim
 * given up after SK_BUS_STUCK_NS, or a copy waited for given up) at most
 * MAXSTALL times per run; a dead one always. */
#ifndef MAXSTALL
#define MAXSTALL 1
#endif
#define SLICE(p) (missed[p] || (STUCK && (!alive[claimer[pos]] || nstall < MAXSTALL)))

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
byte cseq[CAP], cpub[CAP], cst[CAP]; /* claim words (st NEVER, WRITING = claimed, SKIP = given up) */
bool cT[CAP];
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

/* sk_bus_holder_in_slot for the record (vs, vp) (a claim or a word) at the slot of vs */
#define HOLDER_IN(vs, vp) (vp != 0 && cur[vp] != NONE && cur[vp] % CAP == (vs) % CAP && \
	cur[vp] <= (vs) && alive[vp])
/* sk_bus_claim_done: nobody the claim (cs, cp, cst, cT) names may write into the
 * slot whose word is (ws, wp, wst, wT) */
#define CLAIM_DONE(cs, cp, cst, cT, ws, wp, wst, wT) (cst == NEVER || (cst == SKIP && !cT) || \
	(cst == WRITING && wst != NEVER && ws == cs && wp == cp && (wst == MSG || (wst == SKIP && !wT))))
#define SAME_CLAIM(i) (cseq[i] == vs && cpub[i] == vp && cst[i] == vst && cT[i] == vT)
#define SAME_WORD(i) (wseq[i] == ws && wpub[i] == wp && wst[i] == wstt && wT[i] == wTT)

proctype publisher(byte me; byte first; byte n)
{
	byte m, s, vs, vp, vst, ws, wp, wstt, r, prev, w, v;
	bool vT, wTT, pendwake, sliced, ok;

	m = first;
	do
	:: m < first + n ->
		atomic { DIE; s = head; head++; assert(head < NSEQ); claimer[s] = me }; /* P1 */
		atomic { DIE; cur[me] = s };                                /* P2 */
		do  /* slot_take */
		:: atomic { DIE;                                            /* P3: load claim, word */
			vs = cseq[s % CAP]; vp = cpub[s % CAP]; vst = cst[s % CAP]; vT = cT[s % CAP];
			ws = wseq[s % CAP]; wp = wpub[s % CAP]; wstt = wst[s % CAP]; wTT = wT[s % CAP];
			if
			:: vst != NEVER && vs > s -> r = 2          /* lapped */
			:: vst != NEVER && vs == s -> r = 0         /* given up: claim again */
			:: (vst == NEVER || vs < s) && !CLAIM_DONE(vs, vp, vst, vT, ws, wp, wstt, wTT) &&
			   HOLDER_IN(vs, vp) ->
				r = 3                               /* a live holder is in the slot */
			:: else -> r = 1
			fi };
			if
			:: r == 1 ->
				atomic { DIE;                               /* P3: CAS claim */
				if
#ifdef BUG_CLAIM_STORE
				:: true ->
#else
				:: SAME_CLAIM(s % CAP) ->
#endif
					cseq[s % CAP] = s; cpub[s % CAP] = me; cst[s % CAP] = WRITING;
					cT[s % CAP] = false; r = 4;
					pendwake = true  /* a lapped reader may go on now; P6 wakes it */
				:: else
				fi };
				if :: r == 4 -> break :: else fi
			:: r == 3 ->    /* wait for the copy, or give s up (slot_give_up) */
				if
				:: skip
				:: atomic { nstall < MAXSTALL -> DIE; nstall++;
					if
					:: SAME_CLAIM(s % CAP) ->
						cseq[s % CAP] = s; cst[s % CAP] = SKIP; cT[s % CAP] = true; r = 0;
						pendwake = true
					:: else
					fi };
					if
					:: r == 0 ->
						atomic { DIE;               /* take the holder's marked record */
						if
						:: wst[s % CAP] == WRITING && wpub[s % CAP] == vp ->
							wst[s % CAP] = SKIP; wT[s % CAP] = true
						:: else
						fi };
						ec_inc(PUBE);
						break
					:: else
					fi
				fi
			:: else -> break
			fi
		od;
		if
		:: r == 4 ->
#ifndef BUG_NO_MARK
			atomic { DIE;                                       /* P3m: the mark, a plain store */
				wseq[s % CAP] = s; wpub[s % CAP] = me; wst[s % CAP] = WRITING; wT[s % CAP] = false };
#endif
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
#ifdef BUG_NO_MARK
				:: wst[s % CAP] != WRITING || wseq[s % CAP] < s ->
					wseq[s % CAP] = s; wpub[s % CAP] = me; wst[s % CAP] = MSG; wT[s % CAP] = false;
					seqmsg[s] = m; ok = true; pendwake = true
#endif
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
		atomic { s = 0; r = 0; vs = 0; vp = 0; vst = 0; vT = false; ws = 0; wp = 0; wstt = 0; wTT = false }
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
	byte vs, vp, vst, ws, wp, wstt, h, rl, rp, nst, np, prev, w, armed;
	bool vT, wTT, nT, pendwake, sliced, got, settled;

	do
	:: ec_arm_top(PUBE);                                                /* W1, F (armed only) */
		do  /* sub_locate */
		:: atomic {                                                 /* R1 */
			ws = wseq[pos % CAP]; wp = wpub[pos % CAP]; wstt = wst[pos % CAP]; wTT = wT[pos % CAP] };
			if
			:: wstt != NEVER && ws > pos ->                     /* lapped: sub_resync */
				atomic { h = head;
					assert(h > ws && h >= CAP && h - CAP > pos);
					gi = pos;
					do
					:: gi < h - CAP -> lostc[gi] = true; gi++
					:: else -> gi = 0; break
					od;
					pos = h - CAP; h = 0 }
			:: wstt == MSG && ws == pos ->
				atomic { rl = slen[pos % CAP] };            /* R2 */
				atomic { rp = pay[pos % CAP] };
				atomic {                                    /* R3, R4 */
#ifndef BUG_NO_R4
					if
					:: SAME_WORD(pos % CAP) ->
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
			:: wstt == SKIP && ws == pos -> atomic { pos++ }    /* passed silently */
			:: else ->                                          /* not ready */
				/* A2-skip (sub_quick_look): head and claim not read, "not yet" -
				 * only while the count's waiter flag is clear: a look after
				 * arming is always a full one (C also makes one look in 64
				 * full: liveness of a spinner only, not modelled) */
				if
				:: atomic { !(ecw[PUBE] & 1) } -> break
				:: true
				fi;
				atomic { h = head;                          /* (A2 of the fd handshake) */
					if :: h <= pos -> h = 0; break :: else -> h = 0 fi };
				if
				:: !(wstt == WRITING && ws == pos) ->       /* sub_claim_look (R1c) */
					atomic {
					vs = cseq[pos % CAP]; vp = cpub[pos % CAP]; vst = cst[pos % CAP]; vT = cT[pos % CAP];
					if
					:: vst != NEVER && vs > pos ->      /* lapped: sub_resync */
						h = head;
						assert(h > vs && h >= CAP && h - CAP > pos);
						gi = pos;
						do
						:: gi < h - CAP -> lostc[gi] = true; gi++
						:: else -> gi = 0; break
						od;
						pos = h - CAP; h = 0; settled = true
					:: vst == SKIP && vs == pos -> pos++; settled = true   /* given up */
					:: else
					fi };
					if :: settled -> atomic { settled = false; vs = 0; vp = 0; vst = 0; vT = false; ws = 0; wp = 0; wstt = 0; wTT = false }; goto looked :: else fi
				:: else
				fi;
				/* stuck: waited for in slices; sub_stuck after SK_BUS_STUCK_NS */
				if
				:: atomic { sliced -> sliced = false };
					if
					:: wstt == WRITING && ws == pos ->  /* marked: take the record */
						if
						:: HOLDER_IN(ws, wp) -> nst = 0  /* a live copier: keep waiting */
						:: else -> nst = SKIP
						fi;
						if
						:: nst != 0 ->
							atomic {
							if :: alive[claimer[pos]] -> nstall++ :: else fi;
							if
							:: SAME_WORD(pos % CAP) ->
								wst[pos % CAP] = SKIP; wT[pos % CAP] = true; pendwake = true
							:: else
							fi;
							nst = 0 };
							if :: pendwake -> ec_inc(PUBE) :: else fi
						:: else
						fi
					:: else ->                          /* not marked: give pos up in its claim */
						if
						:: vst == WRITING && vs == pos ->
							if
							:: HOLDER_IN(vs, vp) -> nst = 0  /* a live claimer about to mark */
							:: else -> np = 0; nst = SKIP; nT = false
							fi
						:: else ->              /* not claimed: the claimer stalled or died before P3 */
							if
							:: !CLAIM_DONE(vs, vp, vst, vT, ws, wp, wstt, wTT) && HOLDER_IN(vs, vp) ->
								np = vp; nT = true
							:: else -> np = 0; nT = false
							fi;
							nst = SKIP
						fi;
						if
						:: nst != 0 ->
							atomic {
							if :: alive[claimer[pos]] -> nstall++ :: else fi;
							if
							:: SAME_CLAIM(pos % CAP) ->
								cseq[pos % CAP] = pos; cpub[pos % CAP] = np;
								cst[pos % CAP] = nst; cT[pos % CAP] = nT; pendwake = true
							:: else
							fi;
							nst = 0; np = 0; nT = false };
							if :: pendwake -> ec_inc(PUBE) :: else fi
						:: else
						fi
					fi
				:: else -> break
				fi
			fi;
looked:
			atomic { vs = 0; vp = 0; vst = 0; vT = false; ws = 0; wp = 0; wstt = 0; wTT = false }
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
