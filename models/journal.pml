/*
 * journal.pml - the journal's record commit and file roll
 * (src/journal_write.c), with a reader following the live tail across
 * files (src/journal_read.c), and a writer that dies at any step replaced
 * by one that recovers (skj_writer_recover).
 *
 * Instance: data files of 2 record slots each (2 files); records 1, 2, 3
 * (the third needs a roll).  Writer W1 (id 1) holds the writer lock (an
 * OFD lock on journal.meta) and appends 1..3 then closes; W2 (id 2) waits
 * for the lock, recovers the newest file and appends what is missing.
 * Reader R (id 3) follows forever.  Either writer may die before any step
 * (MAXDEAD = 1); the kernel then drops its lock.
 *
 * Steps, as named in src/journal*.c and src/journal.h:
 *   J1 journal_commit: seq, time, payload and crc by plain stores (the
 *      model writes the payload, then the crc: two steps; a record is
 *      torn if they disagree)
 *   J2 journal_commit: store_release commit word          the commit point
 *   J3 append: shmkit_ec_inc(tail)
 *   J4 writer_roll -> skj_file_create -> file_publish: link(2) of the new
 *      file (complete, fsynced: I3); J5 next_seq_hint store; J6 roll_gen
 *      fetch_add (release); J7 shmkit_ec_inc(tail)
 *   J8 skj_writer_recover: scan the newest file (load commit words, check
 *      the crc); writer_tail: zero a torn tail
 *   F1 skj_rec_parse: load_acquire commit word; F2 read payload, crc
 *   F3 cur_next_file: load_acquire roll_gen; open the file named for the
 *      next seq (F4); list the directory (F5); cur_past_end: look at the
 *      position once more (F6), then for the named file once more (F7);
 *      still none: -EBADMSG (a gap)
 *   waits: sk_wait_for on the tail event count (common.pml) in slices of
 *      WAIT_SLICE_NS after which the reader looks again (rlooked = false)
 *
 * Properties:
 *   - the reader returns records in seq order without gap or repeat,
 *     never torn (payload == crc == seq), only committed ones, and never
 *     reports damage (-EBADMSG) in a sound journal;
 *   - nothing committed is lost: a writer's death loses no committed
 *     record (W2 appends after them), and at the end the reader has read
 *     every committed record;
 *   - no lost wake-up: the reader does not sleep while a committed record
 *     waits at its position or the next file is linked.
 *
 * Mutants (scripts/models.sh requires SPIN to fail on each):
 *   BUG_COMMIT_FIRST  the commit word is stored before payload and crc:
 *                     a torn record is returned
 *   BUG_NO_ROLL_GEN   the roll does not move roll_gen: a reader at the end
 *                     of a file never looks for the next one (lost wake-up)
 *   BUG_NO_PAST_END_RECHECK  cur_past_end does not look at its position
 *                     again: a record committed between the reader's first
 *                     look and its listing is reported as a gap
 *   BUG_RECOVER_FROM_HINT  the new writer trusts next_seq_hint instead of
 *                     scanning: it overwrites committed records
 *
 * Not modelled: durability (msync, fsync, power loss: the model is of
 * process crashes), retention, repair and holes, seek, time stamps, C11
 * orderings (SPIN is sequentially consistent: the release J2 / acquire
 * F1 pair and J6 / F3 are assumed; the kernel orders link before lookup).
 */
#define CAPF 2          /* record slots per data file */
#define NFILE 2
#define NREC 3
#define TAIL 0          /* ecw[TAIL]: the tail event count in journal.meta */
#define SLICE(p) (missed[p])
#define FIRST(k) (1 + (k) * CAPF)

#define FINAL_CHECK \
	/* the reader asleep while a record or the next file waits for it */ \
	assert(asleep[3] == 0 || \
	       !((roff < CAPF && commitw[rfile * CAPF + roff]) || (rfile + 1 < NFILE && linked[rfile + 1]))); \
	/* nothing committed is lost: the reader got every committed record */ \
	gi = 1; \
	do \
	:: gi <= NREC -> assert(!committed[gi] || gi < rseq); gi++ \
	:: else -> gi = 0; break \
	od;

#include "common.pml"

bool linked[NFILE];                  /* a data file under its final name */
bool commitw[NFILE * CAPF];          /* commit words */
byte dataw[NFILE * CAPF], crcw[NFILE * CAPF];
byte hint;                           /* journal.meta next_seq_hint */
byte rollgen;                        /* journal.meta roll_gen */
byte wlock;                          /* who holds the writer lock */
bool committed[NREC + 1];
byte rfile, roff, rseq = 1;          /* the reader's cursor (for FINAL_CHECK) */

proctype writer(byte me)
{
	byte k, o, s, prev, w, v;
	bool pendwake, sliced;

	/* skj_writer_lock: F_OFD_SETLK; -EBUSY while a live writer holds it (W2
	 * retries: waiting is an end state if W1 lives on) */
endlock:
	atomic { (wlock == 0 || wlock == me || !alive[wlock]) -> wlock = me };
	/* skj_writer_recover: the newest file, scanned from its start (J8) */
	atomic { DIE; k = 0; if :: linked[1] -> k = 1 :: else fi; o = 0; s = FIRST(k) };
#ifdef BUG_RECOVER_FROM_HINT
	atomic { DIE; if :: hint > 0 -> s = hint; k = (s - 1) / CAPF; o = (s - 1) % CAPF :: else fi };
#else
	do
	:: o < CAPF ->
		atomic { DIE;
			if
			:: commitw[k * CAPF + o] && dataw[k * CAPF + o] == s && crcw[k * CAPF + o] == s -> o++; s++
			:: else -> break
			fi }
	:: else -> break
	od;
	/* writer_tail: zero what a dead writer left past the last record */
	w = o;
	do
	:: w < CAPF ->
		assert(!commitw[k * CAPF + w]);   /* intact records after damage: refused */
		atomic { DIE; dataw[k * CAPF + w] = 0; crcw[k * CAPF + w] = 0; w++ }
	:: else -> w = 0; break
	od;
#endif
	do
	:: s <= NREC ->
		if
		:: o == CAPF ->                   /* writer_roll */
			assert(k + 1 < NFILE);
			atomic { DIE; linked[k + 1] = true; pendwake = true; k++; o = 0 }; /* J4 */
			atomic { DIE; hint = s };                                       /* J5 */
#ifndef BUG_NO_ROLL_GEN
			atomic { DIE; rollgen++ };                                      /* J6 */
#endif
			ec_inc(TAIL)                                                     /* J7 */
		:: else
		fi;
#ifdef BUG_COMMIT_FIRST
		atomic { DIE; commitw[k * CAPF + o] = true; committed[s] = true; pendwake = true };
#endif
		/* J1 (I2: a committed record is never written again) */
		atomic { DIE;
#ifndef BUG_COMMIT_FIRST
			assert(!commitw[k * CAPF + o]);
#endif
			dataw[k * CAPF + o] = s };
		atomic { DIE; crcw[k * CAPF + o] = s };
#ifndef BUG_COMMIT_FIRST
		atomic { DIE; commitw[k * CAPF + o] = true; committed[s] = true; pendwake = true }; /* J2 */
#endif
		atomic { o++; s++ };
		ec_inc(TAIL)                                                             /* J3 */
	:: else -> break
	od;
	atomic { DIE; wlock = 0 };                /* close */
	goto done;
died:
	atomic { alive[me] = false; if :: pendwake -> all_missed() :: else fi };
done:
	skip
}

proctype reader(byte me)
{
	byte rgen, d, c, prev, w, armed;
	bool rlooked, pendwake, sliced, found;

	do
	:: ec_arm_top(TAIL);                                    /* W1, F (armed only) */
		do  /* cur_fetch */
		:: atomic {                                         /* F1 */
			if
			:: roff < CAPF && commitw[rfile * CAPF + roff] -> found = true
			:: else
			fi };
			if
			:: found ->
				atomic { d = dataw[rfile * CAPF + roff] }; /* F2 */
				atomic { c = crcw[rfile * CAPF + roff];
					assert(d == c && d == rseq);         /* never torn, in order */
					assert(committed[rseq]);
					rseq++; roff++; d = 0; c = 0; found = false;
					ec_done() }                      /* found one: the wait returned */
			:: else ->  /* cur_next_file */
				atomic {                                 /* F3 */
					if
					:: rlooked && rollgen == rgen -> break   /* nothing new */
					:: else -> rlooked = true; rgen = rollgen
					fi };
				atomic {                                 /* F4: cur_open_named */
					if
					:: rseq != FIRST(rfile) && rfile + 1 < NFILE && linked[rfile + 1] &&
					   FIRST(rfile + 1) == rseq -> rfile++; roff = 0; rlooked = false; found = true
					:: else
					fi };
				if
				:: found -> found = false                /* moved: fetch again */
				:: else ->
					atomic {                         /* F5: skj_list_files */
						if
						:: rfile + 1 < NFILE && linked[rfile + 1] -> found = true
						:: else
						fi };
					if
					:: found ->                      /* cur_past_end */
						found = false;
#ifndef BUG_NO_PAST_END_RECHECK
						atomic {                 /* F6 */
							if
							:: roff < CAPF && commitw[rfile * CAPF + roff] ->
								rlooked = false; found = true
							:: else
							fi };
#endif
						if
						:: found -> found = false /* committed meanwhile */
						:: else ->
							atomic {         /* F7 */
								if
								:: FIRST(rfile + 1) == rseq && linked[rfile + 1] ->
									rfile++; roff = 0; rlooked = false
								:: else -> assert(false) /* -EBADMSG: a gap */
								fi }
						fi
					:: else -> break                 /* no later file: nothing yet */
					fi
				fi
			fi
		od;
		ec_block(TAIL);                                     /* cur_wait */
		atomic { if :: sliced -> rlooked = false :: else fi }
	od;
died:
	skip
}

init {
	atomic {
		linked[0] = true;
		alive[1] = true; alive[2] = true; alive[3] = true;
		mortal[1] = true; mortal[2] = true;
		wlock = 1;
		run writer(1);
		run writer(2);
		run reader(3)
	}
}

WATCHDOG
