/*
 * mpmc_owner.pml - owner tokens of the MPMC channel (src/chan_recover.c,
 * "Owners"):
 * a handle opened with an owner token keeps an entry that outlives it; the
 * next handle with the token takes the entry over and with it the dead
 * one's claims, and decides its commit_tag in flight.
 *
 * Instance: capacity 2 (CAP), N = 3 messages.  Processes (ids):
 *   1  owned producer (token P): sends 1..N, each with commit_tag(tag = m)
 *   2  its successor: waits for 1's death, takes the entry over (the claim
 *      its record names, unpublished: abandoned), decides the pending
 *      tag, reads owner_tag T
 *      and sends T+1..N - as the importing bridge resends what the tag
 *      says did not go in (bridge/chan.c)
 *   3  owned consumer (token C): peeks and releases
 *   4  its successor: waits for 3's death, takes over (READING(h, 3)
 *      becomes READING(h, 4)), delivers the inherited message first
 *   5  a plain consumer, competing; like every blocked side, it reclaims
 *      a dead claimer's slot after checking its lock - an owner's peek
 *      excepted, an owner's reservation abandoned (abandoned = pos + 1,
 *      then the freeing CAS)
 * Processes 1 and 3 may die before any step (MAXDEAD, default 2: both);
 * waits are blocking guards ("something changed"), so a lost message
 * shows as a run where nobody can move and not all were delivered.
 *
 * Steps (src/chan_msg.c; the takeover and reclaimers: src/chan_recover.c):
 *   P1 load tail  P2 load slot  P3 record = WRITING(t, me)  P4 CAS tail t -> t+1
 *   T1 pending_tag = m; pending = t + 1      P5 payload
 *   P7 CAS FREE(t) -> FULL(t)                T2 last_tag = m; pending = 0
 *   C1 load head  C2 load slot  C3 CAS FULL(h) -> READING(h, me)  C4 help head
 *   C5 read payload  C6 CAS READING(h, me) -> FREE(h + cap)
 *   R0 reclaim_claim: a FREE(p) slot behind tail that no live record
 *      names (the owned producer's record, dead) -> R-AB
 *   R1 reclaim: dead claimer (lock free), not owned -> FREE(p + cap)
 *   R-OWN owned READING: left alone
 *   R-AB  re-read the word (still FREE(p): never published), store
 *         abandoned (monotonic) for the dead record naming p, then the
 *         freeing CAS
 *   S0 prev = old; owner = new    S1 READING(h, old) -> READING(h, new)
 *   S2 the record WRITING(t, old), slot FREE(t) behind tail: abandon as
 *      R-AB; clear the record      S3 prev = 0; decide pending
 *
 * Properties:
 *   - each message is delivered at most once (asserted at C6) and only
 *     if committed (P7);
 *   - when nobody can move, every message 1..N was delivered: none lost,
 *     whoever died where (the owned consumer's peek is not lost, the
 *     producer chain's tag is exact: no resend of a committed message,
 *     no message skipped).
 *
 * Mutants (scripts/models.sh requires SPIN to fail on each):
 *   BUG_RECLAIM_OWNED  the reclaimer frees an owner's READING claim like
 *                      any dead consumer's: the inherited message is lost
 *   BUG_NO_RECHECK     the reclaimer stores abandoned from the word it
 *                      saw before the liveness check, not re-read after
 *                      it (still FREE(p)): a producer that published and
 *                      then died is taken as abandoned, its message is
 *                      sent again
 *   BUG_ABANDON_AFTER  the reclaimer frees first and stores abandoned
 *                      after: a successor in between takes the message
 *                      as committed, and it is never sent
 *
 * Not modelled: C11 orders (SPIN is SC; the release/acquire pairs are
 * argued in chan_recover.c); a successor killed mid-takeover (prev: covered
 * by tests/test_chan_owner.c); the owner lock serializing openers (one
 * successor each here); sleeping and wake-ups (mpmc.pml checks them).
 */
#ifndef CAP
#define CAP 2
#endif
#ifndef N
#define N 3
#endif
#ifndef MAXDEAD
#define MAXDEAD 2
#endif
#define FREE 0
#define WRITING 1
#define FULL 2
#define READING 3
#define EP 0   /* the producer token's entry */
#define EC 1   /* the consumer token's entry */

byte spos[CAP], sst[CAP], sid[CAP], pay[CAP];
byte tail, head;
byte e_owner[2], e_prev[2];
byte pending, ptag, abandoned, last_tag;  /* the producer entry's owner record */
byte recpos, recid;                       /* its claim record: WRITING(recpos, recid) */
bool recon;                               /* ...set */
bool alive[6], mortal[6];
byte ndead;
bool committed[N + 1];
byte delivered[N + 1], ndelivered;

#define DIE if :: ndead < MAXDEAD && mortal[me] -> ndead++; goto died :: skip fi
#define OWNED(id, e) (e_owner[e] == id || e_prev[e] == id)
#define SAME(i, p, s, d) (spos[i] == p && sst[i] == s && sid[i] == d)
/* R0's test: position q claimed (tail passed it), and no live record names it */
#define CLAIM_UNNAMED(q) (tail > (q) && !(recon && recpos == (q) && alive[recid]))

/* abandoned moves forward only (note_abandoned). */
inline note_abandoned(p) {
	if :: abandoned < p + 1 -> abandoned = p + 1 :: else fi
}

/* R0, R1, R-OWN, R-AB: the blocker word (bp, bs, bi) seen earlier, and
 * now (a later step) the kernel says bi's lock is free - or, for a FREE
 * word (a producer's claim, named by the record), no live record names
 * bp. */
inline reclaim() {
	atomic {
		if
		:: bs == FREE && CLAIM_UNNAMED(bp) -> ab = 1          /* R0 */
		:: bs != FREE && bi != 0 && bi != me && !alive[bi] -> /* sk_peer_held said free */
			if
			:: bs == READING && (OWNED(bi, EP) || OWNED(bi, EC)) ->
#ifdef BUG_RECLAIM_OWNED
				ab = 2
#else
				skip                          /* R-OWN: waits for the owner */
#endif
			:: else -> ab = 2
			fi
		:: else
		fi };
	if
	:: ab == 1 ->
		/* R-AB: re-read the slot (still FREE(bp): never published),
		 * abandoned for the owned entry whose dead record names bp,
		 * then the freeing CAS */
#ifndef BUG_ABANDON_AFTER
		atomic {
#ifdef BUG_NO_RECHECK
			if :: recon && recpos == bp -> note_abandoned(bp) :: else fi
#else
			if :: SAME(bp % CAP, bp, FREE, 0) && recon && recpos == bp -> note_abandoned(bp)
			:: else fi
#endif
		};
#endif
		atomic { if :: SAME(bp % CAP, bp, FREE, 0) -> spos[bp % CAP] = bp + CAP :: else fi };
#ifdef BUG_ABANDON_AFTER
		atomic { if :: recon && recpos == bp -> note_abandoned(bp) :: else fi };
#endif
		skip
	:: ab == 2 ->                                         /* R1 */
		atomic { if :: SAME(bp % CAP, bp, bs, bi) ->
			spos[bp % CAP] = bp + CAP; sst[bp % CAP] = FREE; sid[bp % CAP] = 0
			:: else fi }
	:: else
	fi;
	ab = 0; bp = 0; bs = 0; bi = 0
}

/* Send messages m..N (the owned producer chain, id me): claim (P3 the
 * record, P4 the CAS of tail), T1, P5, P7, T2. */
inline send_all() {
	do
	:: m <= N ->
		do /* claim */
		:: atomic { DIE; t = tail;                                  /* P1 */
			wp = spos[t % CAP]; ws = sst[t % CAP]; wi = sid[t % CAP] }; /* P2 */
			if
			:: wp == t && ws == FREE ->
				atomic { DIE; recpos = t; recid = me; recon = true }; /* P3 */
				atomic { DIE; if :: tail == t -> tail = t + 1; got = true :: else fi }; /* P4 */
				if :: got -> break :: else fi
			:: wp >= t && !(wp == t && ws == FREE) -> skip       /* stale tail: P1 again */
			:: wp + CAP == t ->                                  /* full */
				if
				:: ws == FULL -> atomic { !SAME(t % CAP, wp, ws, wi) }
				:: ws == FREE -> /* t - cap claimed, unpublished */
					atomic { !SAME(t % CAP, wp, ws, wi) || CLAIM_UNNAMED(wp) };
					bp = wp; bs = ws; bi = 0; reclaim()
				:: else -> /* a claim blocks: wait for a change or its claimer's death */
					atomic { !SAME(t % CAP, wp, ws, wi) || !alive[wi] };
					bp = wp; bs = ws; bi = wi; reclaim()
				fi
			:: else -> assert(false)                             /* -EBADMSG */
			fi;
			wp = 0; ws = 0; wi = 0
		od;
		atomic { DIE; ptag = m };                                   /* T1 */
		atomic { DIE; pending = t + 1 };
		atomic { DIE; pay[t % CAP] = m };                           /* P5 */
		atomic { DIE; if :: SAME(t % CAP, t, FREE, 0) ->            /* P7 */
			sst[t % CAP] = FULL; committed[m] = true :: else fi };
		atomic { DIE; last_tag = m };                               /* T2 */
		atomic { DIE; pending = 0; got = false; t = 0; m++ }
	:: else -> break
	od
}

/* Deliver the message claimed at h (C5, C6). */
inline deliver() {
	atomic { DIE; v = pay[h % CAP] };                                   /* C5 */
	atomic { DIE;                                                       /* C6 */
		if
		:: SAME(h % CAP, h, READING, me) ->
			assert(committed[v] && delivered[v] == 0);
			delivered[v]++; ndelivered++;
			spos[h % CAP] = h + CAP; sst[h % CAP] = FREE; sid[h % CAP] = 0
		:: else -> assert(false) /* only a live owner's claim is ours */
		fi;
		v = 0; got = false; h = 0 }
}

/* Peek and release until every message was delivered. */
inline consume_all() {
	do
	:: ndelivered == N -> break
	:: else ->
		atomic { DIE; h = head;                                     /* C1 */
			wp = spos[h % CAP]; ws = sst[h % CAP]; wi = sid[h % CAP] }; /* C2 */
		if
		:: wp == h && ws == FULL ->
			atomic { DIE; if :: SAME(h % CAP, wp, ws, wi) ->             /* C3 */
				sst[h % CAP] = READING; sid[h % CAP] = me; got = true :: else fi };
			if
			:: got -> atomic { DIE; if :: head == h -> head = h + 1 :: else fi }; /* C4 */
				deliver()
			:: else
			fi
		:: wp > h || (wp == h && ws == READING) ->               /* C4: stale head */
			atomic { DIE; if :: head == h -> head = h + 1 :: else fi }
		:: wp == h && ws == FREE ->           /* empty, or a producer's claim blocks */
			atomic { !SAME(h % CAP, wp, ws, wi) || ndelivered == N || CLAIM_UNNAMED(h) };
			bp = wp; bs = ws; bi = 0; reclaim()
		:: wp + CAP == h && ws == READING ->                     /* a claim blocks */
			atomic { !SAME(h % CAP, wp, ws, wi) || !alive[wi] || ndelivered == N };
			bp = wp; bs = ws; bi = wi; reclaim()
		:: else -> assert(false)                                     /* -EBADMSG */
		fi;
		wp = 0; ws = 0; wi = 0; h = 0
	od
}

proctype producer(byte me)
{
	byte m = 1, t, wp, ws, wi, bp, bs, bi, ab;
	bool got;

	send_all();
	goto done;
died:
	alive[me] = false;
done:
	skip
}

/* S0-S3 on the producer's entry, then owner_tag and the rest. */
proctype producer_successor(byte me)
{
	byte m, t, wp, ws, wi, bp, bs, bi, ab, i;
	bool got;

end_wait:
	!alive[1];
	atomic { e_prev[EP] = e_owner[EP] };                                /* S0 */
	atomic { e_owner[EP] = me };
	/* S2 (owner_claim_resolve): the dead holder's record names t; its
	 * slot still FREE(t) behind tail: abandoned, then freed. */
	atomic { if :: recon && recid == e_prev[EP] -> wp = recpos; got = true :: else fi };
	if
	:: got ->
		atomic { if :: tail > wp && SAME(wp % CAP, wp, FREE, 0) -> note_abandoned(wp); ab = 1
			:: else fi };
		atomic { if :: ab == 1 && SAME(wp % CAP, wp, FREE, 0) -> spos[wp % CAP] = wp + CAP
			:: else fi };
		ab = 0; got = false
	:: else
	fi;
	atomic { recon = false; recpos = 0; recid = 0; wp = 0 };
	atomic { e_prev[EP] = 0 };                                          /* S3 */
	atomic { if :: pending != 0 && abandoned != pending -> last_tag = ptag :: else fi; pending = 0 };
	m = last_tag + 1;
	send_all();
died:
	skip
}

proctype consumer(byte me)
{
	byte h, v, wp, ws, wi, bp, bs, bi, ab;
	bool got;

	consume_all();
	goto done;
died:
	alive[me] = false;
done:
	skip
}

/* S0, S1 on the consumer's entry; the inherited message first. */
proctype consumer_successor(byte me)
{
	byte h, v, wp, ws, wi, bp, bs, bi, ab, i;
	bool got;

end_wait:
	!alive[3];
	atomic { e_prev[EC] = e_owner[EC] };                                /* S0 */
	atomic { e_owner[EC] = me };
	i = 0;
	do
	:: i < CAP ->
		atomic {                                                    /* S1 */
			if
			:: sst[i] == READING && sid[i] == e_prev[EC] -> sid[i] = me; h = spos[i]; got = true
			:: else
			fi;
			i++ }
	:: else -> i = 0; break
	od;
	atomic { e_prev[EC] = 0 };                                          /* S3 */
	if :: got -> deliver() :: else fi;
	consume_all();
died:
	skip
}

init {
	byte k;
	atomic {
		do
		:: k < CAP -> spos[k] = k; k++
		:: else -> break
		od;
		e_owner[EP] = 1; e_owner[EC] = 3;
		alive[1] = true; mortal[1] = true; run producer(1);
		alive[2] = true; run producer_successor(2);
		alive[3] = true; mortal[3] = true; run consumer(3);
		alive[4] = true; run consumer_successor(4);
		alive[5] = true; run consumer(5)
	}
}

active proctype watchdog()
{
end:
	timeout -> assert(ndelivered == N)
}
