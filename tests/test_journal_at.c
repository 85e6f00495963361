/*
 * test_journal_at.c - shmkit_journal_append_at, the append of replicas:
 *   - the caller's seqs and stamps are what readers, seek and verify see;
 *     a seq past the next one leaves a hole (skipped by readers, counted
 *     by verify and stats), also where the hole opens the next file;
 *   - a journal holding nothing starts at the first seq given (no hole,
 *     its one file named for it), stamped as given even before the file
 *     was made;
 *   - bad seqs (0, UINT64_MAX, one the journal holds) are refused and
 *     change nothing; a stamp below the one before is raised to it;
 *   - a writer killed between the hole and the record (crash point
 *     journal.append_at.hole), with a torn record after it, one killed
 *     after committing the record, one killed restarting an empty
 *     journal (journal.append_at.restart): the next writer keeps what
 *     was committed, cuts the torn one, and verify is clean;
 *   - a reader in another process follows a replica's writer live
 *     through holes in place and at rolls;
 *   - identity: id, copy_of, shmkit_journal_set_copy_of.
 * Journals live in /tmp/sktest-RUN-PID-jN, removed by .fini.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "journal_test.h"
#include "lib_test.h"

#define MAXREC 200
#define FSIZE 16384
#define T0 1000000000000LL /* stamps far in the past: not the writer's clock */

TestSuite(journal_at, .timeout = 60, .fini = jt_cleanup);

#define open_writer(path, policy) jt_open_writer(path, policy, FSIZE, MAXREC)

static int64_t stamp(uint64_t seq)
{
	return T0 + (int64_t)seq * 1000;
}

/* append_at record seq with its payload and stamp(seq). */
static int put(shmkit_journal *j, uint64_t seq)
{
	uint8_t buf[MAXREC];
	uint32_t len = jt_len(seq, MAXREC);

	jt_fill(seq, buf, len);
	return shmkit_journal_append_at(j, seq, stamp(seq), buf, len);
}

static void put_ok(shmkit_journal *j, uint64_t seq)
{
	int err = put(j, seq);
	cr_assert_eq(err, 0, "append_at %llu: %s (%s)", (unsigned long long)seq, shmkit_strerror(err),
	             shmkit_errdetail());
}

/* Read from the start: exactly the seqs of want[0..n), with their
 * payloads and stamps, then the end. */
static void expect_records(const char *path, const uint64_t *want, size_t n)
{
	shmkit_journal *r = NULL;
	struct shmkit_record rec;

	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		int got = shmkit_journal_next(r, &rec, 0);
		cr_assert_eq(got, 1, "record %zu (seq %llu): %s (%s)", i, (unsigned long long)want[i],
		             shmkit_strerror(got), shmkit_errdetail());
		cr_assert_eq(rec.seq, want[i], "got seq %llu, want %llu", (unsigned long long)rec.seq,
		             (unsigned long long)want[i]);
		cr_assert_eq(rec.time_ns, stamp(rec.seq), "stamp of %llu", (unsigned long long)rec.seq);
		cr_assert(jt_check(rec.seq, rec.data, rec.len, MAXREC), "payload of %llu",
		          (unsigned long long)rec.seq);
	}
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN, "nothing more");
	shmkit_journal_close(r);
}

static struct shmkit_journal_report verify_clean(const char *path)
{
	struct shmkit_journal_report rep;
	int err = shmkit_journal_verify(path, &rep);
	cr_assert_eq(err, 0, "verify: %s: %s", shmkit_strerror(err), rep.where);
	return rep;
}

/* The data files' first seqs, ascending (at most cap). */
static size_t file_seqs(const char *path, uint64_t *seqs, size_t cap)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	cr_assert(d);
	while ((de = readdir(d)))
		if (strlen(de->d_name) == SKJ_NAME_LEN && strstr(de->d_name, SKJ_SUFFIX) && n < cap)
			seqs[n++] = strtoull(de->d_name, NULL, 10);
	closedir(d);
	for (size_t i = 1; i < n; i++) /* insertion sort: a few files */
		for (size_t k = i; k > 0 && seqs[k - 1] > seqs[k]; k--) {
			uint64_t t = seqs[k];
			seqs[k] = seqs[k - 1];
			seqs[k - 1] = t;
		}
	return n;
}

static bool contains(const uint64_t *v, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/* Records with the caller's seqs and stamps, every other one after a
 * jump of 1-3 seqs, across several files: readers get exactly those
 * records (seqs, stamps, bytes), verify is clean and counts each jump as
 * a hole, stats count the holes' seqs.  Every roll here comes from a
 * jump, so some file starts with a hole (named for a seq no record has).
 * seek_time and seek_seq land on the right records; reopened, the writer
 * goes on after the last (a plain append too). */
Test(journal_at, seqs_stamps_and_holes_are_what_readers_and_verify_see)
{
	const char *path = jt_new_path();
	static uint64_t want[2000];
	size_t n = 0;
	uint64_t seq = 1, holes = 0, hole_seqs = 0;
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE);

	while (n < 600) {
		put_ok(j, seq);
		want[n++] = seq;
		uint64_t skip = n % 2 ? 1 + n % 3 : 0;
		holes += skip != 0;
		hole_seqs += skip;
		seq += 1 + skip;
	}
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	cr_assert_eq(st.first_seq, 1);
	cr_assert_eq(st.last_seq, want[n - 1]);
	cr_assert_eq(st.records, want[n - 1], "records counts the holes' seqs too");
	cr_assert_geq(st.files, 4, "several files");
	shmkit_journal_close(j);

	/* holes: one after each odd record but the last (the next put
	 * never came) */
	holes -= n % 2 != 0;
	expect_records(path, want, n);
	struct shmkit_journal_report rep = verify_clean(path);
	cr_assert_eq(rep.valid_records, n);
	cr_assert_eq(rep.last_valid_seq, want[n - 1]);
	uint64_t last_skip = n % 2 ? 1 + n % 3 : 0;
	cr_assert_eq(rep.holes, holes);
	cr_assert_eq(rep.hole_records, hole_seqs - last_skip);

	uint64_t fs[64];
	size_t nf = file_seqs(path, fs, 64);
	bool hole_first = false;
	for (size_t i = 0; i < nf; i++)
		hole_first |= !contains(want, n, fs[i]);
	cr_assert(hole_first, "a file starts with a hole (the jump at a roll)");

	shmkit_journal *r = NULL;
	struct shmkit_record rec;
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	cr_assert_eq(shmkit_journal_seek_time(r, stamp(want[300]) - 1), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_eq(rec.seq, want[300], "seek_time: %llu", (unsigned long long)rec.seq);
	cr_assert_eq(shmkit_journal_seek_seq(r, want[301] - 1), 0); /* a hole's seq, or 300's */
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_geq(rec.seq, want[301] - 1);
	cr_assert_leq(rec.seq, want[301]);
	shmkit_journal_close(r);

	j = open_writer(path, SHMKIT_DUR_NONE);
	uint64_t got = 0;
	cr_assert_eq(shmkit_journal_append(j, "x", 1, &got), 0);
	cr_assert_eq(got, want[n - 1] + 1, "append goes on after append_at's last");
	cr_assert_eq(shmkit_journal_append_at(j, got + 5, stamp(got + 5), "y", 1), 0);
	shmkit_journal_close(j);
	rep = verify_clean(path);
	cr_assert_eq(rep.valid_records, n + 2);
}

/* A journal holding nothing starts at the first seq appended: its one
 * file is named for it, no hole, the stamp as given (before the file was
 * made: the file is made again with it, so seek_time finds it).  The
 * same after a writer was opened and closed on the empty journal. */
Test(journal_at, empty_journal_starts_at_the_first_seq)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_SYNC);
	shmkit_journal_close(j);
	j = open_writer(path, SHMKIT_DUR_SYNC);
	/* a reader already on the empty file follows the journal to its
	 * new first file */
	shmkit_journal *r = NULL;
	struct shmkit_record rec;
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);

	uint64_t want[] = { 4711, 4712, 4800 };
	for (size_t i = 0; i < 3; i++)
		put_ok(j, want[i]);
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	cr_assert_eq(st.first_seq, 4711);
	cr_assert_eq(st.last_seq, 4800);
	cr_assert_eq(st.files, 1);
	shmkit_journal_close(j);

	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1, "%s", shmkit_errdetail());
	cr_assert_eq(rec.seq, 4711);
	shmkit_journal_close(r);
	expect_records(path, want, 3);
	uint64_t fs[4];
	cr_assert_eq(file_seqs(path, fs, 4), 1);
	cr_assert_eq(fs[0], 4711);
	struct shmkit_journal_report rep = verify_clean(path);
	cr_assert_eq(rep.holes, 1, "only the jump 4712 -> 4800");
	cr_assert_eq(rep.hole_records, 87);
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	cr_assert_eq(shmkit_journal_seek_time(r, stamp(4712)), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_eq(rec.seq, 4712);
	shmkit_journal_close(r);
}

/* seq 0, UINT64_MAX and seqs the journal holds (the last one, an earlier
 * one, one a hole stands for) are refused and append nothing; a reader's
 * handle may not append; a stamp below the last is raised to it. */
Test(journal_at, bad_seqs_are_refused_and_stamps_never_go_back)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE);

	cr_assert_eq(put(j, 0), -EINVAL);
	cr_assert_eq(shmkit_journal_append_at(j, UINT64_MAX, 1, "a", 1), -EINVAL);
	put_ok(j, 5);
	put_ok(j, 9);
	cr_assert_eq(put(j, 9), -EEXIST);
	cr_assert_eq(put(j, 7), -EEXIST, "a hole's seq");
	cr_assert_eq(put(j, 2), -EEXIST);
	cr_assert_eq(shmkit_journal_append_at(j, 10, 1, NULL, 5), -EINVAL);
	cr_assert_eq(shmkit_journal_append_at(NULL, 10, 1, "a", 1), -EINVAL);
	uint8_t big[MAXREC + 1] = { 0 };
	cr_assert_eq(shmkit_journal_append_at(j, 10, stamp(10), big, sizeof(big)), -EMSGSIZE);
	shmkit_journal *r = NULL;
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	cr_assert_eq(shmkit_journal_append_at(r, 10, stamp(10), "a", 1), -EPERM);

	cr_assert_eq(shmkit_journal_append_at(j, 10, stamp(9) - 5, "b", 1), 0);
	struct shmkit_record rec;
	uint64_t seqs[3];
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
		seqs[i] = rec.seq;
	}
	cr_assert_eq(seqs[0], 5);
	cr_assert_eq(seqs[1], 9);
	cr_assert_eq(seqs[2], 10);
	cr_assert_eq(rec.time_ns, stamp(9), "a stamp below the last is raised to it");
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);
	shmkit_journal_close(r);
	shmkit_journal_close(j);
	verify_clean(path);
}

/* ---- a writer killed in append_at ---------------------------------------- */

struct killed {
	const char *path, *point;
	uint64_t before, seq;     /* records 1..before, then seq armed */
};

/* Child: records 1..before, then append_at(seq) with the crash point
 * armed. */
static int killed_main(void *arg)
{
	struct killed *k = arg;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .durability = SHMKIT_DUR_SYNC, .file_size = FSIZE,
	                                 .max_record = MAXREC };
	shmkit_journal *j;
	if (shmkit_journal_open(&j, k->path, &o))
		return 10;
	for (uint64_t s = 1; s <= k->before; s++)
		if (put(j, s))
			return 11;
	sk_crash_arm(k->point);
	put(j, k->seq);
	return 20; /* alive: the crash point was never reached */
}

static void run_killed(const char *path, const char *point, uint64_t before, uint64_t seq)
{
	struct killed k = { path, point, before, seq };
	pid_t pid = sk_test_fork(killed_main, &k);
	cr_assert_gt(pid, 0);
	int st = 0;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer died at %s (status %#x)",
	          point, st);
}

/* Where record 6 would start after the hole behind record 5 (SKJ_FIRST_OFF,
 * then records 1-5, then the hole's header): the writer's own layout. */
static long torn_offset(void)
{
	long off = (long)SKJ_FHDR_SIZE;
	for (uint64_t s = 1; s <= 5; s++)
		off += (long)(SKJ_RHDR_SIZE + skj_pad8(jt_len(s, MAXREC)));
	return off + (long)SKJ_RHDR_SIZE;
}

/* Killed after the hole for 6-9 was committed, before record 10: a torn
 * record is planted where 10 was going (bytes without a commit word).
 * The next writer keeps 1-5 and the hole, cuts the torn bytes, and goes
 * on at 10 without another hole; verify is clean. */
Test(journal_at, writer_killed_between_hole_and_record)
{
	const char *path = jt_new_path();
	char file[256];

	run_killed(path, "journal.append_at.hole", 5, 10);
	snprintf(file, sizeof(file), "%s/%020d%s", path, 1, SKJ_SUFFIX);
	long off = torn_offset();
	for (long i = 4; i < 40; i++) /* seq, stamp, payload: no commit word */
		cr_assert_eq(jt_flip(file, off + i, 0x5a), 0);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_verify(path, &rep), -EBADMSG, "the torn bytes are damage");

	shmkit_journal *j = open_writer(path, SHMKIT_DUR_SYNC);
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	cr_assert_eq(st.last_seq, 9, "the hole for 6-9 survived");
	put_ok(j, 10);
	shmkit_journal_close(j);
	uint64_t want[] = { 1, 2, 3, 4, 5, 10 };
	expect_records(path, want, 6);
	rep = verify_clean(path);
	cr_assert_eq(rep.holes, 1);
	cr_assert_eq(rep.hole_records, 4);
}

/* Killed after committing record 10 (behind its hole), before waking
 * anyone or syncing: 10 is there, as for a plain append. */
Test(journal_at, writer_killed_after_the_record_keeps_it)
{
	const char *path = jt_new_path();

	run_killed(path, "journal.append.committed", 5, 10);
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_SYNC);
	put_ok(j, 11);
	shmkit_journal_close(j);
	uint64_t want[] = { 1, 2, 3, 4, 5, 10, 11 };
	expect_records(path, want, 7);
	struct shmkit_journal_report rep = verify_clean(path);
	cr_assert_eq(rep.holes, 1);
}

/* ---- identity -------------------------------------------------------------- */

static struct shmkit_journal_stats stats_of(shmkit_journal *j)
{
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	return st;
}

/* A journal has a random id, another once removed and made again under
 * the same path; copy_of is 0 until set.  Set once: the same id again is
 * fine, another is -EEXIST, 0 -EINVAL, a reader -EPERM.  A reader opened
 * before sees it; it survives reopening, rolls, and the loss of
 * journal.meta (repair rebuilds it from a data file's header). */
Test(journal_at, identity_and_copy_of)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE);
	struct shmkit_journal_stats st = stats_of(j);
	uint64_t id1 = st.id;
	cr_assert_neq(id1, 0);
	cr_assert_eq(st.copy_of, 0);
	put_ok(j, 1);
	shmkit_journal_close(j);
	cr_assert_eq(shmkit_journal_remove(path), 0);
	j = open_writer(path, SHMKIT_DUR_NONE);
	cr_assert_neq(stats_of(j).id, id1, "made again: another journal");

	shmkit_journal *r = NULL;
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	const uint64_t leader = 0x0123456789abcdefULL;
	cr_assert_eq(shmkit_journal_set_copy_of(j, 0), -EINVAL);
	cr_assert_eq(shmkit_journal_set_copy_of(r, leader), -EPERM);
	cr_assert_eq(shmkit_journal_set_copy_of(j, leader), 0);
	cr_assert_eq(stats_of(r).copy_of, leader, "a reader opened before sees it");
	cr_assert_eq(shmkit_journal_set_copy_of(j, leader), 0);
	cr_assert_eq(shmkit_journal_set_copy_of(j, leader + 1), -EEXIST);
	shmkit_journal_close(r);
	for (uint64_t s = 1; s <= 400; s++) /* several files */
		put_ok(j, s);
	cr_assert_geq(stats_of(j).files, 3);
	shmkit_journal_close(j);

	char meta[256];
	snprintf(meta, sizeof(meta), "%s/" SKJ_META_NAME, path);
	cr_assert_eq(unlink(meta), 0);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_repair(path, &rep), 0, "%s", rep.where);
	cr_assert_eq(shmkit_journal_open(&r, path, NULL), 0);
	st = stats_of(r);
	cr_assert_eq(st.copy_of, leader, "kept through the rebuild of journal.meta");
	shmkit_journal_close(r);
	verify_clean(path);
}

/* A writer killed while it restarts an empty journal at another seq
 * (no file at all then): the next writer makes an empty journal again,
 * verify is clean, and append_at(50) starts it at 50. */
Test(journal_at, writer_killed_restarting_an_empty_journal)
{
	const char *path = jt_new_path();

	run_killed(path, "journal.append_at.restart", 0, 50);
	uint64_t fs[4];
	cr_assert_eq(file_seqs(path, fs, 4), 0, "killed between the unlink and the new file");
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_SYNC);
	put_ok(j, 50);
	put_ok(j, 51);
	shmkit_journal_close(j);
	uint64_t want[] = { 50, 51 };
	expect_records(path, want, 2);
	cr_assert_eq(file_seqs(path, fs, 4), 1);
	cr_assert_eq(fs[0], 50);
	struct shmkit_journal_report rep = verify_clean(path);
	cr_assert_eq(rep.holes, 0);
}

/* ---- a live reader ----------------------------------------------------------- */

/* The seq of the i-th record of the stream below (from 0): jumps of 0-4
 * seqs between records, so holes in place and at rolls. */
static uint64_t stream_seq(uint64_t i)
{
	uint64_t s = 1;

	for (uint64_t k = 1; k <= i; k++)
		s += 1 + k * 7 % 5;
	return s;
}

#define STREAM 400

/* Child: a reader following the journal as the writer goes (waits of up
 * to 10 s each): every record of the stream, in order, stamps and bytes
 * right.  0 on success. */
static int follow_main(void *arg)
{
	const char *path = arg;
	shmkit_journal *r = NULL;
	struct shmkit_record rec;

	for (int i = 0; i < 500 && shmkit_journal_open(&r, path, NULL); i++)
		usleep(10000);
	if (!r)
		return 10;
	for (uint64_t i = 0; i < STREAM; i++) {
		int got = shmkit_journal_next(r, &rec, 10LL * 1000000000);
		if (got != 1)
			return 11;
		if (rec.seq != stream_seq(i) || rec.time_ns != stamp(rec.seq) ||
		    !jt_check(rec.seq, rec.data, rec.len, MAXREC))
			return 12;
	}
	shmkit_journal_close(r);
	return 0;
}

/* A reader in another process follows a replica's writer live, through
 * holes in place and holes that open new files: it gets the stream's
 * records exactly, never a hole's seq, never damage. */
Test(journal_at, live_reader_follows_holes_and_rolls)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE);
	pid_t pid = sk_test_fork(follow_main, (void *)path);

	cr_assert_gt(pid, 0);
	for (uint64_t i = 0; i < STREAM; i++) {
		put_ok(j, stream_seq(i));
		if (i % 50 == 0)
			usleep(1000); /* let the reader catch up and sleep sometimes */
	}
	cr_assert_geq(stats_of(j).files, 4);
	shmkit_journal_close(j);
	cr_assert_eq(sk_test_reap(pid), 0, "the live reader failed");
	verify_clean(path);
}
