/*
 * test_journal.c - the durable journal: checksums, every durability
 * policy, rolling and retention, replay by sequence and by time, live tail
 * in another process, followers racing a writer across rolls and
 * retention (no false damage), readers blocked while a writer dies before
 * waking them (sliced waits), the one-writer lock and the lock (not pid)
 * that guards half-made metas, argument checks.  Crash and damage
 * recovery are in test_journal_crash.c, the CLI in test_journal_tool.c.
 *
 * Journals live in /tmp/sktest-RUN-PID-jN, removed by .fini also when
 * an assertion fails.  Helper processes are reaped before asserting.
 * Every wait is bounded; nothing asserts on elapsed time.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "journal_test.h"
#include "lib_test.h"

#define MS 1000000LL
#define SEC 1000000000LL

TestSuite(journal, .timeout = 60, .fini = jt_cleanup);

/* ---- helpers ---------------------------------------------------------- */

#define open_writer jt_open_writer

static shmkit_journal *open_reader(const char *path)
{
	shmkit_journal *j = NULL;
	int err = shmkit_journal_open(&j, path, NULL);
	cr_assert_eq(err, 0, "open reader %s: %s (%s)", path, shmkit_strerror(err), shmkit_errdetail());
	return j;
}

static void append_range(shmkit_journal *j, uint64_t from, uint64_t to, uint32_t max)
{
	uint8_t buf[4096];

	cr_assert_leq(max, sizeof(buf));
	for (uint64_t s = from; s <= to; s++) {
		uint32_t len = jt_len(s, max);
		uint64_t got = 0;
		jt_fill(s, buf, len);
		int err = shmkit_journal_append(j, buf, len, &got);
		cr_assert_eq(err, 0, "append %llu: %s (%s)", (unsigned long long)s,
		             shmkit_strerror(err), shmkit_errdetail());
		cr_assert_eq(got, s);
	}
}

/* Read to the end from the reader's position: records must continue the
 * sequence from *first (0: take the first as given) with their payloads.
 * Returns the number read; *last the last seq. */
static uint64_t read_rest(shmkit_journal *j, uint64_t first, uint32_t max, uint64_t *last)
{
	struct shmkit_record rec;
	uint64_t n = 0, expect = first;
	int r;

	while ((r = shmkit_journal_next(j, &rec, 0)) == 1) {
		if (expect)
			cr_assert_eq(rec.seq, expect, "seq %llu, expected %llu",
			             (unsigned long long)rec.seq, (unsigned long long)expect);
		cr_assert(jt_check(rec.seq, rec.data, rec.len, max), "payload of %llu",
		          (unsigned long long)rec.seq);
		expect = rec.seq + 1;
		n++;
	}
	cr_assert_eq(r, -EAGAIN, "next: %s (%s)", shmkit_strerror(r), shmkit_errdetail());
	if (last)
		*last = expect ? expect - 1 : 0;
	return n;
}

static uint64_t read_all(const char *path, uint64_t first, uint32_t max, uint64_t *last)
{
	shmkit_journal *r = open_reader(path);
	uint64_t n = read_rest(r, first, max, last);
	shmkit_journal_close(r);
	return n;
}

static int count_files(const char *path)
{
	shmkit_journal *r = open_reader(path);
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(r, &st), 0);
	shmkit_journal_close(r);
	return (int)st.files;
}

static void expect_clean(const char *path)
{
	struct shmkit_journal_report rep;
	int err = shmkit_journal_verify(path, &rep);
	cr_assert_eq(err, 0, "verify: %s: %s", shmkit_strerror(err), rep.where);
	cr_assert_eq(rep.damaged_bytes, 0);
}

/* ---- checksum ---------------------------------------------------------- */

Test(journal, crc32c_vectors)
{
	static const uint8_t zeros[32], ones[32] = { [0 ... 31] = 0xff };
	uint8_t inc[32], buf[300];

	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	/* RFC 3720 (iSCSI) B.4 test vectors and the classic check value. */
	cr_assert_eq(sk_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(sk_crc32c(0, zeros, 32), 0x8A9136AAu);
	cr_assert_eq(sk_crc32c(0, ones, 32), 0x62A8AB43u);
	cr_assert_eq(sk_crc32c(0, inc, 32), 0x46DD794Eu);
	cr_assert_eq(sk_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(sk_crc32c(0, "", 0), 0);
	/* Hardware and table agree at every length and alignment, and the
	 * checksum continues across split buffers. */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 7) {
			uint32_t a = sk_crc32c(0, buf + off, len);
			cr_assert_eq(a, sk_crc32c_sw(0, buf + off, len), "off %zu len %zu", off, len);
			size_t half = len / 3;
			cr_assert_eq(sk_crc32c(sk_crc32c(0, buf + off, half), buf + off + half, len - half), a);
		}
}

/* ---- policies, reading back ------------------------------------------- */

Test(journal, every_policy_appends_and_reads_back)
{
	for (int policy = SHMKIT_DUR_NONE; policy <= SHMKIT_DUR_GROUP; policy++) {
		const char *path = jt_new_path();
		shmkit_journal *j = open_writer(path, policy, 16384, 300);
		append_range(j, 1, 400, 300); /* ~60 KiB: several files */
		cr_assert_eq(shmkit_journal_sync(j), 0);
		struct shmkit_journal_stats st;
		cr_assert_eq(shmkit_journal_stats(j, &st), 0);
		cr_assert_eq(st.durability, policy);
		cr_assert_eq(st.writer_pid, getpid());
		cr_assert_eq(shmkit_journal_close(j), 0);

		uint64_t last;
		cr_assert_eq(read_all(path, 1, 300, &last), 400, "policy %d", policy);
		cr_assert_eq(last, 400);
		shmkit_journal *r = open_reader(path);
		cr_assert_eq(shmkit_journal_stats(r, &st), 0);
		cr_assert_eq(st.first_seq, 1);
		cr_assert_eq(st.last_seq, 400);
		cr_assert_eq(st.records, 400);
		cr_assert_gt(st.files, 2, "400 records of up to 300 bytes roll 16 KiB files");
		cr_assert_eq(st.writer_pid, 0, "no live writer after close");
		cr_assert_eq(st.durability, policy);
		shmkit_journal_close(r);
		expect_clean(path);
	}
}

Test(journal, group_commit_counts_and_forced_sync)
{
	const char *path = jt_new_path();
	struct shmkit_journal_opts o = {
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
		.durability = SHMKIT_DUR_GROUP, .group_records = 3, .group_ms = 1000000,
		.file_size = 65536, .max_record = 100,
	};
	shmkit_journal *j;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), 0);
	append_range(j, 1, 10, 100);
	cr_assert_eq(shmkit_journal_sync(j), 0);
	cr_assert_eq(shmkit_journal_sync(j), 0, "nothing pending is fine");
	cr_assert_eq(shmkit_journal_close(j), 0);
	cr_assert_eq(read_all(path, 1, 100, NULL), 10);
}

Test(journal, reopen_continues_the_sequence)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 64);
	append_range(j, 1, 50, 64);
	shmkit_journal_close(j);
	j = open_writer(path, SHMKIT_DUR_ASYNC, 0, 0); /* sizes come from the journal */
	append_range(j, 51, 120, 64);
	shmkit_journal_close(j);
	uint64_t last;
	cr_assert_eq(read_all(path, 1, 64, &last), 120);
	cr_assert_eq(last, 120);
	expect_clean(path);
}

Test(journal, reader_follows_a_writer_in_the_same_process)
{
	const char *path = jt_new_path();
	shmkit_journal *w = open_writer(path, SHMKIT_DUR_NONE, 8192, 128);
	shmkit_journal *r = open_reader(path);
	uint64_t expect = 1;
	struct shmkit_record rec;

	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN, "empty journal: end");
	for (uint64_t s = 1; s <= 300; s += 7) {
		append_range(w, s, s + 6, 128);
		int got;
		while ((got = shmkit_journal_next(r, &rec, 0)) == 1) {
			cr_assert_eq(rec.seq, expect);
			cr_assert(jt_check(rec.seq, rec.data, rec.len, 128));
			expect++;
		}
		cr_assert_eq(got, -EAGAIN, "%s", shmkit_errdetail());
		cr_assert_eq(expect, s + 7, "reader saw every record, across rolls");
	}
	shmkit_journal_close(r);
	shmkit_journal_close(w);
}

Test(journal, empty_and_max_size_records)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 1000);
	uint8_t big[1001];
	uint64_t seq;
	struct shmkit_record rec;

	memset(big, 0xab, sizeof(big));
	cr_assert_eq(shmkit_journal_append(j, NULL, 0, &seq), 0);
	cr_assert_eq(shmkit_journal_append(j, big, 1000, &seq), 0);
	cr_assert_eq(seq, 2);
	cr_assert_eq(shmkit_journal_append(j, big, 1001, &seq), -EMSGSIZE);
	cr_assert_eq(shmkit_journal_append(j, NULL, 5, &seq), -EINVAL);
	shmkit_journal *r = open_reader(path);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_eq(rec.len, 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_eq(rec.len, 1000);
	cr_assert_eq(memcmp(rec.data, big, 1000), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);
	cr_assert_eq(shmkit_journal_append(r, big, 1, &seq), -EPERM, "readers cannot append");
	cr_assert_eq(shmkit_journal_sync(r), -EPERM);
	shmkit_journal_close(r);
	shmkit_journal_close(j);
}

/* ---- rolling and retention --------------------------------------------- */

Test(journal, retention_by_file_count)
{
	const char *path = jt_new_path();
	struct shmkit_journal_opts o = {
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
		.file_size = 8192, .max_record = 200, .keep_files = 3,
	};
	shmkit_journal *j;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), 0);
	shmkit_journal *r = open_reader(path); /* starts at seq 1, then falls behind */
	struct shmkit_record rec;
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);
	append_range(j, 1, 1000, 200);
	cr_assert_leq(count_files(path), 3);
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	cr_assert_eq(st.last_seq, 1000);
	cr_assert_gt(st.first_seq, 1, "old files were removed");
	cr_assert_eq(st.files, 3);
	/* A reader left behind keeps the file it has mapped (records 1...),
	 * then skips what retention removed: one jump to the oldest kept
	 * file, then the sequence continues to the end. */
	uint64_t expect = 1, jumps = 0;
	int got;
	while ((got = shmkit_journal_next(r, &rec, 0)) == 1) {
		if (rec.seq != expect) {
			cr_assert_eq(rec.seq, st.first_seq, "jump to %llu", (unsigned long long)rec.seq);
			jumps++;
		}
		cr_assert(jt_check(rec.seq, rec.data, rec.len, 200));
		expect = rec.seq + 1;
	}
	cr_assert_eq(got, -EAGAIN, "%s", shmkit_errdetail());
	cr_assert_eq(jumps, 1);
	cr_assert_eq(expect, 1001);
	shmkit_journal_close(r);
	shmkit_journal_close(j);
	cr_assert_eq(read_all(path, st.first_seq, 200, NULL), 1000 - st.first_seq + 1);
	expect_clean(path);
}

Test(journal, retention_by_bytes)
{
	const char *path = jt_new_path();
	struct shmkit_journal_opts o = {
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
		.file_size = 8192, .max_record = 200, .keep_bytes = 5 * 8192,
	};
	shmkit_journal *j;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), 0);
	append_range(j, 1, 2000, 200);
	struct shmkit_journal_stats st;
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	cr_assert_leq(st.bytes, 5 * 8192);
	cr_assert_geq(st.files, 4);
	shmkit_journal_close(j);
	cr_assert_eq(read_all(path, st.first_seq, 200, NULL), 2000 - st.first_seq + 1);
}

/* ---- replay by sequence and by time ------------------------------------- */

Test(journal, seek_by_sequence)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 150);
	append_range(j, 1, 700, 150);
	shmkit_journal *r = open_reader(path);
	struct shmkit_record rec;

	for (uint64_t s = 1; s <= 700; s += 37) {
		cr_assert_eq(shmkit_journal_seek_seq(r, s), 0);
		cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1, "%s", shmkit_errdetail());
		cr_assert_eq(rec.seq, s);
		cr_assert(jt_check(rec.seq, rec.data, rec.len, 150));
	}
	cr_assert_eq(shmkit_journal_seek_seq(r, 0), 0);
	cr_assert_eq(read_rest(r, 1, 150, NULL), 700, "seq 0 is the start");
	/* Beyond the end: nothing now; records up to the target are skipped
	 * as they arrive. */
	cr_assert_eq(shmkit_journal_seek_seq(r, 710), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);
	append_range(j, 701, 720, 150);
	cr_assert_eq(read_rest(r, 710, 150, NULL), 11);
	shmkit_journal_close(r);
	shmkit_journal_close(j);
}

Test(journal, seek_by_time)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 100);
	static int64_t times[601];
	struct shmkit_record rec;

	for (uint64_t s = 1; s <= 600; s += 50) {
		append_range(j, s, s + 49, 100);
		struct timespec ts = { 0, 200000 }; /* let the clock move between groups */
		nanosleep(&ts, NULL);
	}
	shmkit_journal *r = open_reader(path);
	for (uint64_t s = 1; s <= 600; s++) {
		cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
		times[s] = rec.time_ns;
		cr_assert_geq(times[s], times[s - 1], "time never goes back along the journal");
	}
	for (uint64_t s = 1; s <= 600; s += 23) {
		uint64_t first = s;
		while (first > 1 && times[first - 1] == times[s])
			first--;
		cr_assert_eq(shmkit_journal_seek_time(r, times[s]), 0);
		cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
		cr_assert_eq(rec.seq, first, "time %lld: seq %llu, expected %llu",
		             (long long)times[s], (unsigned long long)rec.seq, (unsigned long long)first);
	}
	cr_assert_eq(shmkit_journal_seek_time(r, times[1] - SEC), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
	cr_assert_eq(rec.seq, 1);
	cr_assert_eq(shmkit_journal_seek_time(r, times[600] + 1), 0);
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN, "after the newest record: end");
	shmkit_journal_close(r);
	shmkit_journal_close(j);
}

/* ---- live tail ----------------------------------------------------------- */

Test(journal, empty_journal_next_times_out)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 100);
	shmkit_journal *r = open_reader(path);
	struct shmkit_record rec;
	cr_assert_eq(shmkit_journal_next(r, &rec, 20 * MS), -ETIMEDOUT);
	shmkit_journal_close(r);
	shmkit_journal_close(j);
}

/* Another process tails the journal from seq 1 while we append across
 * several file rolls, pausing so it goes to sleep on the futex. */
Test(journal, live_tail_in_another_process)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 200);
	const char *argv[] = { "helper_journal", "tail", path, "1", "120", "20000", "200", NULL };
	int out = -1;
	char buf[4096];
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	ssize_t n = read(out, buf, 6); /* "READY\n" */
	if (n != 6) {
		shmkit_journal_close(j);
		sk_test_finish(pid, out, buf, sizeof(buf));
		cr_assert_fail("helper did not start");
	}
	for (uint64_t s = 1; s <= 120; s += 10) {
		append_range(j, s, s + 9, 200);
		struct timespec ts = { 0, 2 * MS };
		nanosleep(&ts, NULL);
	}
	static char all[8192];
	int rc = sk_test_finish(pid, out, all, sizeof(all));
	shmkit_journal_close(j);
	cr_assert_eq(rc, 0, "helper exit %d, output: %s", rc, all);
	cr_assert(strstr(all, "GOT 1\n") && strstr(all, "GOT 120\n"), "output: %s", all);
}

/* A reader blocked in next() (no timeout) in a forked child is woken by
 * an append, including one that starts a new file. */
static int blocked_reader(void *arg)
{
	const char *path = arg;
	shmkit_journal *r;
	struct shmkit_record rec;

	if (shmkit_journal_open(&r, path, NULL))
		return 10;
	for (uint64_t s = 1; s <= 3; s++) {
		int got = shmkit_journal_next(r, &rec, 20 * SEC);
		if (got != 1)
			return 20 + (int)s;
		if (rec.seq != s || !jt_check(s, rec.data, rec.len, 4000))
			return 30;
	}
	shmkit_journal_close(r);
	return 0;
}

Test(journal, blocked_reader_woken_across_a_roll)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, 8192, 4000);
	pid_t pid = sk_test_fork(blocked_reader, (void *)path);
	cr_assert_gt(pid, 0);
	struct timespec ts = { 0, 30 * MS };
	for (uint64_t s = 1; s <= 3; s++) { /* 4000-byte records: each file holds one */
		nanosleep(&ts, NULL);
		append_range(j, s, s, 4000);
	}
	int rc = sk_test_reap(pid);
	shmkit_journal_close(j);
	cr_assert_eq(rc, 0, "reader exit %d", rc);
}

/* ---- followers racing a writer ------------------------------------------ */

#define FOLLOW_N 100000
#define FOLLOW_MAX 64

/* Is seq still in the journal?  probe is positioned at it afresh; a probe
 * that cannot tell counts as "still there", so a jump it cannot explain
 * fails the test. */
static bool still_there(shmkit_journal *probe, uint64_t seq)
{
	struct shmkit_record rec;

	if (shmkit_journal_seek_seq(probe, seq))
		return true;
	return shmkit_journal_next(probe, &rec, 0) != 1 || rec.seq <= seq;
}

struct follower {
	const char *path;
	unsigned keep_files;
	unsigned pause_every;    /* records between 5 ms naps (falls behind) */
};

/* One follower (a forked child): from seq 1 to FOLLOW_N with timeouts.
 * Exit 0, or a code naming the failure, said on stderr. */
static int follower_main(void *arg)
{
	const struct follower *fo = arg;
	shmkit_journal *r, *probe;
	struct shmkit_record rec;
	uint64_t last = 0;
	int got = 1;

	if (shmkit_journal_open(&r, fo->path, NULL) || shmkit_journal_open(&probe, fo->path, NULL))
		return 10;
	while (last < FOLLOW_N && (got = shmkit_journal_next(r, &rec, 30 * SEC)) == 1) {
		if (rec.seq <= last)
			return 20;
		if (rec.seq != last + 1 && (!fo->keep_files || still_there(probe, last + 1))) {
			fprintf(stderr, "follower: jump from %llu to %llu, but %llu is still there\n",
			        (unsigned long long)last, (unsigned long long)rec.seq,
			        (unsigned long long)last + 1);
			return 30;
		}
		if (rec.seq % fo->pause_every == 0)
			nanosleep(&(struct timespec){ 0, 5 * MS }, NULL);
		if (!jt_check(rec.seq, rec.data, rec.len, FOLLOW_MAX))
			return 40;
		last = rec.seq;
	}
	if (got != 1) {
		fprintf(stderr, "follower after seq %llu: %s (%s)\n", (unsigned long long)last,
		        shmkit_strerror(got), shmkit_errdetail());
		return got == -EBADMSG ? 50 : 60;
	}
	shmkit_journal_close(probe);
	shmkit_journal_close(r);
	return 0;
}

#define FOLLOWERS 4
#define HOGS 2

/* Spin until killed: load, so that followers are preempted anywhere. */
static int hog_main(void *arg)
{
	(void)arg;
	for (volatile unsigned long i = 0;; i++)
		;
	return 0;
}

/* A writer process appends FOLLOW_N small records to a journal of 4 KiB
 * files (a roll every ~60 records), with retention keep_files (0: none),
 * while FOLLOWERS processes follow it from seq 1 with timeouts (several,
 * so that on two cores they are preempted at every point of their
 * reading; each naps now and then, so that it falls behind and meets
 * retention).  Each must see every seq in order, skipping only records
 * retention removed (checked by a second reader at each jump), and never
 * -EBADMSG: the journal is sound, as verify says at the end.  Exit codes:
 * 30 an unexplained jump, 50 -EBADMSG (see follower_main). */
static void follow_a_writer(unsigned keep_files)
{
	const char *path = jt_new_path();
	struct follower fo[FOLLOWERS];
	pid_t followers[FOLLOWERS], hogs[HOGS];
	shmkit_journal_close(open_writer(path, SHMKIT_DUR_NONE, 4096, FOLLOW_MAX));
	for (int i = 0; i < HOGS; i++)
		hogs[i] = sk_test_fork(hog_main, NULL);
	for (int i = 0; i < FOLLOWERS; i++) {
		fo[i] = (struct follower){ path, keep_files, 997u + 1000u * (unsigned)i };
		followers[i] = sk_test_fork(follower_main, &fo[i]);
	}
	char count[24], keep[24], max[24];
	snprintf(count, sizeof(count), "%d", FOLLOW_N);
	snprintf(keep, sizeof(keep), "%u", keep_files);
	snprintf(max, sizeof(max), "%d", FOLLOW_MAX);
	const char *argv[] = { "helper_journal", "fill", path, count, keep, max, NULL };
	int out = -1;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	static char said[4096];
	int rc = pid > 0 ? sk_test_finish(pid, out, said, sizeof(said)) : -1;
	int frc[FOLLOWERS];
	for (int i = 0; i < FOLLOWERS; i++)
		frc[i] = followers[i] > 0 ? sk_test_reap(followers[i]) : -1;
	for (int i = 0; i < HOGS; i++)
		if (hogs[i] > 0 && !kill(hogs[i], SIGKILL))
			sk_test_reap(hogs[i]);
	cr_assert_eq(rc, 0, "writer exit %d: %s", rc, said);
	for (int i = 0; i < FOLLOWERS; i++)
		cr_assert_eq(frc[i], 0, "follower %d exit %d (50: -EBADMSG, 30: a jump over "
		             "records still there)", i, frc[i]);
	expect_clean(path);
}

Test(journal, followers_across_rolls_see_no_false_gap, .timeout = 150)
{
	follow_a_writer(0);
}

Test(journal, followers_under_retention_skip_only_removed_records, .timeout = 150)
{
	follow_a_writer(2);
}

/* ---- a waker that died: waits are sliced --------------------------------- */

/* Wait for child pid for up to ~30 s (a generous bound, far above the
 * 100 ms a wait slice lasts); kill it if it has not exited by then.
 * Returns its exit code, or -2 if it had to be killed. */
static int reap_bounded(pid_t pid)
{
	struct timespec nap = { 0, 2 * MS };
	for (int i = 0; i < 15000; i++) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		nanosleep(&nap, NULL);
	}
	kill(pid, SIGKILL);
	sk_test_reap(pid);
	return -2;
}

/* Until pid sleeps (state S in /proc/PID/stat), at most ~5 s: then it is
 * blocked in its futex wait, not about to start it.  Only makes the test
 * sharper; it passes either way with a correct library. */
static void wait_asleep(pid_t pid)
{
	char f[64], buf[256];
	struct timespec nap = { 0, 1 * MS };
	snprintf(f, sizeof(f), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 5000; i++) {
		FILE *in = fopen(f, "r");
		size_t n = in ? fread(buf, 1, sizeof(buf) - 1, in) : 0;
		if (in)
			fclose(in);
		buf[n] = '\0';
		const char *close_paren = strrchr(buf, ')');
		if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'S')
			return;
		nanosleep(&nap, NULL);
	}
}

struct sleeper {
	const char *path;
	uint64_t expect;   /* the seq the blocked next() must return */
	uint32_t max;
	int ready;         /* write end of a pipe: one byte before blocking */
};

/* Read to the end, say so, then block in next() with no timeout. */
static int sleeper_main(void *arg)
{
	struct sleeper *sl = arg;
	shmkit_journal *r;
	struct shmkit_record rec;
	int got;

	if (shmkit_journal_open(&r, sl->path, NULL))
		return 10;
	while ((got = shmkit_journal_next(r, &rec, 0)) == 1)
		;
	if (got != -EAGAIN)
		return 11;
	if (write(sl->ready, "R", 1) != 1)
		return 12;
	got = shmkit_journal_next(r, &rec, -1);
	if (got != 1)
		return 20;
	if (rec.seq != sl->expect || !jt_check(rec.seq, rec.data, rec.len, sl->max))
		return 30;
	shmkit_journal_close(r);
	return 0;
}

/* Fork a sleeper, wait until it blocks, run act(path), then expect the
 * sleeper to return its record although nobody woke it. */
static void blocked_sleeper_then(struct sleeper *sl, void (*act)(const char *path, void *arg),
                                 void *arg)
{
	int p[2];
	char c;
	cr_assert_eq(pipe(p), 0);
	sl->ready = p[1];
	pid_t pid = sk_test_fork(sleeper_main, sl);
	close(p[1]);
	cr_assert_gt(pid, 0);
	ssize_t n = read(p[0], &c, 1);
	close(p[0]);
	if (n == 1) {
		wait_asleep(pid);
		act(sl->path, arg);
	}
	int rc = reap_bounded(pid);
	cr_assert_eq(n, 1, "sleeper failed before blocking (exit %d)", rc);
	cr_assert_neq(rc, -2, "the blocked reader never saw seq %llu: nobody woke it",
	              (unsigned long long)sl->expect);
	cr_assert_eq(rc, 0, "sleeper exit %d", rc);
}

static char *data_file(char *buf, size_t len, const char *path, uint64_t first_seq)
{
	snprintf(buf, len, "%s/%020llu" SKJ_SUFFIX, path, (unsigned long long)first_seq);
	return buf;
}

/* Write record seq at off of the mapped file like a writer, commit word
 * last, and stop: no event count increment (the waker died there). */
static void raw_commit_at(char *map, size_t off, uint64_t seq, uint32_t max)
{
	struct skj_rec *rec = (struct skj_rec *)(map + off);
	uint32_t len = jt_len(seq, max);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t = (int64_t)ts.tv_sec * SEC + ts.tv_nsec;

	rec->seq = seq;
	rec->time_ns = t;
	jt_fill(seq, (uint8_t *)(rec + 1), len);
	rec->crc = sk_journal_rec_crc(len, seq, t, rec + 1);
	__atomic_store_n(&rec->commit, SKJ_COMMIT | len, __ATOMIC_RELEASE);
}

struct raw_rec {
	uint64_t first_seq, seq;   /* the file, and the record to commit */
	uint32_t max;
};

/* Commit raw->seq after the last record of file raw->first_seq. */
static void raw_commit(const char *path, void *arg)
{
	const struct raw_rec *rr = arg;
	char f[160];
	int fd = open(data_file(f, sizeof(f), path, rr->first_seq), O_RDWR);
	cr_assert_geq(fd, 0);
	struct stat sb;
	cr_assert_eq(fstat(fd, &sb), 0);
	char *map = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(map, MAP_FAILED);
	size_t off = SKJ_FHDR_SIZE;
	for (uint64_t s = rr->first_seq; s < rr->seq; s++)
		off += SKJ_RHDR_SIZE + skj_pad8(jt_len(s, rr->max));
	raw_commit_at(map, off, rr->seq, rr->max);
	munmap(map, (size_t)sb.st_size);
}

/* Make the next data file, named raw->seq, holding that one record, the
 * way a writer rolls (complete, then linked), and stop: no roll_gen or
 * event count increment.  Its header is the previous file's, renamed. */
static void raw_roll(const char *path, void *arg)
{
	const struct raw_rec *rr = arg;
	char prev[160], tmp[200], f[160];
	struct skj_fhdr h;
	int fd = open(data_file(prev, sizeof(prev), path, rr->first_seq), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
	h.first_seq = rr->seq;
	h.crc = sk_crc32c(0, &h, offsetof(struct skj_fhdr, crc));
	snprintf(tmp, sizeof(tmp), "%s/raw-roll", path);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)h.file_size), 0);
	char *map = mmap(NULL, h.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(map, MAP_FAILED);
	memcpy(map, &h, sizeof(h));
	raw_commit_at(map, SKJ_FHDR_SIZE, rr->seq, rr->max);
	munmap(map, h.file_size);
	cr_assert_eq(rename(tmp, data_file(f, sizeof(f), path, rr->seq)), 0);
}

/* A journal of records 1..5 in files of file_size bytes and a reader
 * blocked after them; act makes record 6 visible without waking anyone
 * (as a writer that dies at that instant would): the reader gets it. */
static void blocked_reader_gets_6(size_t file_size, void (*act)(const char *path, void *arg),
                                  void *arg)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_NONE, file_size, 100);
	append_range(j, 1, 5, 100);
	shmkit_journal_close(j);
	struct sleeper sl = { .path = path, .expect = 6, .max = 100 };
	blocked_sleeper_then(&sl, act, arg);
	expect_clean(path);
}

/* A record committed by a writer that died before waking anyone: a reader
 * blocked in next() with no timeout still gets it (its waits are sliced
 * and recheck), rather than sleeping until the next writer's append. */
Test(journal, blocked_reader_sees_a_commit_nobody_woke_it_for)
{
	struct raw_rec rr = { .first_seq = 1, .seq = 6, .max = 100 };
	blocked_reader_gets_6(65536, raw_commit, &rr);
}

/* The same for a roll: the next file was linked but neither roll_gen nor
 * the event count moved; the blocked reader finds the file anyway. */
Test(journal, blocked_reader_finds_a_file_nobody_announced)
{
	struct raw_rec rr = { .first_seq = 1, .seq = 6, .max = 100 };
	blocked_reader_gets_6(8192, raw_roll, &rr);
}

/* Run helper_journal ARGS... with SHMKIT_CRASH_AT=point in its
 * environment only (through env(1)); its exit code. */
static int helper_crashing_at(const char *point, const char *const args[])
{
	char env[96], helper[4200];
	const char *argv[16] = { "/usr/bin/env", env, helper };
	int n = 3, out = -1;
	static char said[4096];

	snprintf(env, sizeof(env), "SHMKIT_CRASH_AT=%s", point);
	snprintf(helper, sizeof(helper), "%s/helper_journal", sk_test_dir());
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	return sk_test_finish(pid, out, said, sizeof(said));
}

static void write_killed_after_commit(const char *path, void *arg)
{
	/* The nap: the sleeper the writer's open woke is asleep again when
	 * the record comes. */
	const char *args[] = { "write", path, "none", "65536", "100", "1", "300", NULL };
	int *rc = arg;
	*rc = helper_crashing_at("journal.append.committed", args);
}

/* The same with a real writer process killed at that instant (crash
 * point journal.append.committed, in the test build of the library):
 * record 6 is committed, the writer dies before waking anyone. */
Test(journal, blocked_reader_sees_the_record_of_a_writer_killed_before_waking)
{
	int rc = -1;
	blocked_reader_gets_6(65536, write_killed_after_commit, &rc);
	cr_assert_eq(rc, 128 + SIGKILL, "the writer died at the crash point (exit %d)", rc);
}

/* ---- one writer --------------------------------------------------------- */

Test(journal, second_writer_refused_then_admitted_when_first_dies)
{
	const char *path = jt_new_path();
	const char *argv[] = { "helper_journal", "hold", path, NULL };
	int out = -1;
	char buf[256] = "";
	pid_t pid = sk_test_spawn(argv, -1, &out);
	cr_assert_gt(pid, 0);
	ssize_t n = read(out, buf, sizeof(buf) - 1);

	shmkit_journal *j = NULL;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };
	int busy = n > 0 ? shmkit_journal_open(&j, path, &o) : -1;
	struct shmkit_journal_stats st = { 0 };
	shmkit_journal *r = NULL;
	if (n > 0 && shmkit_journal_open(&r, path, NULL) == 0) {
		shmkit_journal_stats(r, &st);
		shmkit_journal_close(r);
	}
	kill(pid, SIGKILL);
	int rc = sk_test_finish(pid, out, buf + (n > 0 ? n : 0), sizeof(buf) - (size_t)(n > 0 ? n : 0));
	cr_assert_gt(n, 0, "helper said nothing");
	cr_assert_eq(busy, -EBUSY, "second writer: %s", shmkit_strerror(busy));
	cr_assert_eq(st.writer_pid, pid, "stat names the live writer");
	cr_assert_eq(rc, 128 + SIGKILL);
	/* The kernel released the dead writer's lock: admitted at once. */
	int err = shmkit_journal_open(&j, path, &o);
	cr_assert_eq(err, 0, "%s (%s)", shmkit_strerror(err), shmkit_errdetail());
	append_range(j, 1, 5, 100);
	shmkit_journal_close(j);
	cr_assert_eq(read_all(path, 1, 100, NULL), 5);
}

Test(journal, writer_lock_released_on_close)
{
	const char *path = jt_new_path();
	shmkit_journal *a = open_writer(path, SHMKIT_DUR_NONE, 8192, 100);
	shmkit_journal *b = NULL;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };
	cr_assert_eq(shmkit_journal_open(&b, path, &o), -EBUSY);
	cr_assert_null(b);
	shmkit_journal_close(a);
	cr_assert_eq(shmkit_journal_open(&b, path, &o), 0);
	shmkit_journal_close(b);
}

static int exit_at_once(void *arg)
{
	(void)arg;
	return 0;
}

static bool exists_in(const char *path, const char *name)
{
	char f[200];
	snprintf(f, sizeof(f), "%s/%s", path, name);
	return access(f, F_OK) == 0;
}

static void touch_in(const char *path, const char *name)
{
	char f[200];
	snprintf(f, sizeof(f), "%s/%s", path, name);
	int fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "%s", f);
	close(fd);
}

/* Who may remove a half-made journal.meta (".meta-PID-ID", left by a
 * creator that died) is decided by a kernel-held lock, never by its pid:
 * creators hold the journal directory's flock shared while their temp
 * file exists, and a writer removes temps only when it gets that flock
 * exclusively.  So a temp named after a live pid (a dead creator whose
 * pid was reused: here our own) goes, and one named after a dead pid
 * whose maker still holds the lock (a live creator) stays. */
Test(journal, stale_meta_temps_judged_by_lock_not_pid)
{
	const char *path = jt_new_path();
	char reused[64], dead_pid_live_maker[64];
	shmkit_journal_close(open_writer(path, SHMKIT_DUR_NONE, 8192, 100));
	pid_t gone = sk_test_fork(exit_at_once, NULL);
	cr_assert_gt(gone, 0);
	sk_test_reap(gone); /* a pid nobody has, for now */
	snprintf(reused, sizeof(reused), ".meta-%d-1", (int)getpid());
	snprintf(dead_pid_live_maker, sizeof(dead_pid_live_maker), ".meta-%d-2", (int)gone);

	/* A creator at work: the directory's flock held shared. */
	int dfd = open(path, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dfd, 0);
	cr_assert_eq(flock(dfd, LOCK_SH), 0);
	touch_in(path, reused);
	touch_in(path, dead_pid_live_maker);
	shmkit_journal_close(open_writer(path, SHMKIT_DUR_NONE, 0, 0));
	bool kept_live = exists_in(path, dead_pid_live_maker);
	bool kept_reused = exists_in(path, reused);
	close(dfd); /* the creator is gone */
	cr_assert(kept_live, "a live creator's temp was removed (its pid looked dead)");
	cr_assert(kept_reused, "removed while a creator may be at work");
	shmkit_journal_close(open_writer(path, SHMKIT_DUR_NONE, 0, 0));
	cr_assert(!exists_in(path, reused), "a dead creator's temp stayed (its pid looked alive)");
	cr_assert(!exists_in(path, dead_pid_live_maker));
}

/* ---- arguments, failures leave nothing ----------------------------------- */

Test(journal, bad_arguments)
{
	const char *path = jt_new_path();
	shmkit_journal *j = NULL;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	struct stat sb;

	cr_assert_eq(shmkit_journal_open(&j, path, NULL), -ENOENT);
	cr_assert_eq(shmkit_journal_open(NULL, path, &o), -EINVAL);
	cr_assert_eq(shmkit_journal_open(&j, "", &o), -EINVAL);
	o.flags = 0x1;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EINVAL);
	o.flags = SHMKIT_JOURNAL_CREATE;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EINVAL, "create needs write");
	o.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE;
	o.durability = 9;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EINVAL);
	o.durability = 0;
	o.file_size = 4096;
	o.max_record = 8192;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EINVAL, "a record must fit a file");
	o.max_record = SKJ_MAX_RECORD + 1;
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EINVAL);
	cr_assert_null(j);
	cr_assert_neq(stat(path, &sb), 0, "failed opens left nothing");
	cr_assert_eq(shmkit_journal_close(NULL), 0);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_verify(path, &rep), -ENOENT);
	cr_assert_eq(shmkit_journal_verify(NULL, &rep), -EINVAL);
}

Test(journal, not_a_journal_is_eproto)
{
	const char *path = jt_new_path();
	char p[160];
	shmkit_journal *j = NULL;

	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(p, sizeof(p), "%s/" SKJ_META_NAME, path);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < 4096; i++)
		fputc('x', f);
	fclose(f);
	cr_assert_eq(shmkit_journal_open(&j, path, NULL), -EBADMSG, "checksum fails first");
	cr_assert_null(j);
}

Test(journal, no_descriptor_or_memory_left_by_open_close)
{
	const char *path = jt_new_path();
	shmkit_journal *j = open_writer(path, SHMKIT_DUR_SYNC, 8192, 100);
	shmkit_journal_close(j);
	int before = sk_test_fd_count();
	for (int i = 0; i < 20; i++) {
		j = open_writer(path, SHMKIT_DUR_GROUP, 0, 0);
		append_range(j, (uint64_t)i * 30 + 1, (uint64_t)i * 30 + 30, 100);
		shmkit_journal *r = open_reader(path);
		read_rest(r, 1, 100, NULL);
		struct shmkit_journal_stats st;
		shmkit_journal_stats(r, &st);
		shmkit_journal_close(r);
		shmkit_journal_close(j);
	}
	cr_assert_eq(sk_test_fd_count(), before);
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };
	shmkit_journal *a = open_writer(path, 0, 0, 0);
	cr_assert_eq(shmkit_journal_open(&j, path, &o), -EBUSY);
	shmkit_journal_close(a);
	cr_assert_eq(sk_test_fd_count(), before, "a refused open leaks no fd");
}

/* A journal path that is a symbolic link is not followed (root's writer
 * once wrote journal.meta and a data file into the link's target), and a
 * writer refuses a directory another user owns unless told to accept it;
 * a reader may read it. */
Test(journal, symlinked_or_foreign_directories_are_refused)
{
	const char *target = jt_new_path(), *link = jt_new_path();
	struct shmkit_journal_opts w = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 65536, .max_record = 1024 };
	shmkit_journal *j;

	cr_assert_eq(mkdir(target, 0700), 0);
	cr_assert_eq(symlink(target, link), 0);
	cr_expect_eq(shmkit_journal_open(&j, link, &w), -ELOOP, "%s", shmkit_errdetail());
	char meta[PATH_MAX];
	snprintf(meta, sizeof(meta), "%s/journal.meta", target);
	cr_expect_eq(access(meta, F_OK), -1, "nothing was written through the link");
	unlink(link);

	cr_assert_eq(chown(target, 65534, 65534), 0);
	int err = shmkit_journal_open(&j, target, &w);
	cr_expect_eq(err, -EPERM, "a writer in another user's directory: %d %s", err,
	             shmkit_errdetail());
	w.flags |= SHMKIT_JOURNAL_ANY_OWNER;
	cr_assert_eq(shmkit_journal_open(&j, target, &w), 0, "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_journal_append(j, "x", 1, NULL), 0);
	shmkit_journal_close(j);
	cr_assert_eq(shmkit_journal_open(&j, target, NULL), 0, "a reader may read it");
	shmkit_journal_close(j);
}

/* shmkit_crc32c: the check value of CRC-32C, the same in pieces as whole,
 * the same as the records carry (their CRC is of header and payload: only
 * the public function's contract is checked here). */
Test(journal, public_crc32c_check_value_and_pieces)
{
	char buf[1000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3);
	cr_expect_eq(shmkit_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_expect_eq(shmkit_crc32c(0, NULL, 0), 0u);
	uint32_t whole = shmkit_crc32c(0, buf, sizeof(buf));
	uint32_t part = shmkit_crc32c(0, buf, 333);
	part = shmkit_crc32c(part, buf + 333, sizeof(buf) - 333);
	cr_expect_eq(part, whole, "in pieces as whole");
	cr_expect_neq(shmkit_crc32c(0, buf, sizeof(buf) - 1), whole);
}
