/*
 * helper_journal.c - an unrelated process for the journal tests.
 *
 *   helper_journal write PATH POLICY FILE_SIZE MAX_RECORD COUNT [PAUSE_MS]
 *       open PATH for writing (creating it) with POLICY (none, async, sync,
 *       group), append COUNT records with the payloads of journal_test.h
 *       (COUNT 0 = until killed), writing "SEQ\n" to stdout after each
 *       append returns (the acknowledgement); with PAUSE_MS, nap that long
 *       before each append (so that readers the open woke sleep again).
 *       Exit 0, or 1 with a message.
 *   helper_journal tail PATH FROM N TIMEOUT_MS MAX_RECORD
 *       open PATH read-only, seek to FROM, print "READY\n", then read N
 *       records waiting up to TIMEOUT_MS for each, checking seq order and
 *       payloads; print "GOT SEQ\n" for each.  Exit 0 if all N came.
 *   helper_journal hold PATH
 *       open PATH as the writer, print "LOCKED PID\n", then wait for a
 *       signal (the test kills it).
 *   helper_journal fill PATH COUNT KEEP_FILES MAX_RECORD
 *       open the existing journal PATH for writing (its own sizes) with
 *       retention KEEP_FILES (0 = keep all), append COUNT records after
 *       its last one (payloads of journal_test.h for MAX_RECORD), as
 *       fast as it can and without acknowledgements, then print
 *       "DONE LAST_SEQ\n".  For followers racing the writer.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "journal_test.h"
#include "shmkit.h"

static int say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int say(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* write(2), not stdio: what was said is in the pipe even if we are
	 * killed right after. */
	return write(1, buf, (size_t)n) == n ? 0 : -EIO;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "helper_journal: %s: %s (%s)\n", what, shmkit_strerror(err),
	        shmkit_errdetail());
	return 1;
}

static int policy(const char *s)
{
	static const char *const names[] = { "none", "async", "sync", "group" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static int do_write(char **argv)
{
	struct shmkit_journal_opts o = {
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
		.durability = policy(argv[1]),
		.file_size = strtoull(argv[2], NULL, 0),
		.max_record = (uint32_t)strtoul(argv[3], NULL, 0),
	};
	long count = strtol(argv[4], NULL, 0);
	long pause_ms = argv[5] ? strtol(argv[5], NULL, 0) : 0;
	struct timespec nap = { pause_ms / 1000, (pause_ms % 1000) * 1000000L };
	shmkit_journal *j;
	uint8_t buf[65536];
	int err = shmkit_journal_open(&j, argv[0], &o);

	if (err)
		return fail("open", err);
	if (o.max_record > sizeof(buf))
		return fail("max_record", -EINVAL);
	struct shmkit_journal_stats st;
	if ((err = shmkit_journal_stats(j, &st)))
		return fail("stat", err);
	uint64_t next = st.records ? st.last_seq + 1 : 1;
	for (long i = 0; count == 0 || i < count; i++, next++) {
		uint32_t len = jt_len(next, o.max_record);
		uint64_t seq;
		if (pause_ms)
			nanosleep(&nap, NULL);
		jt_fill(next, buf, len);
		if ((err = shmkit_journal_append(j, buf, len, &seq)))
			return fail("append", err);
		if (seq != next)
			return fail("append gave an unexpected seq", -EPROTO);
		if (say("%" PRIu64 "\n", seq))
			return 1;
	}
	return shmkit_journal_close(j) ? 1 : 0;
}

static int do_tail(char **argv)
{
	uint64_t from = strtoull(argv[1], NULL, 0);
	long n = strtol(argv[2], NULL, 0);
	int64_t timeout = strtoll(argv[3], NULL, 0) * 1000000LL;
	uint32_t max = (uint32_t)strtoul(argv[4], NULL, 0);
	shmkit_journal *j;
	struct shmkit_record rec;
	int err = shmkit_journal_open(&j, argv[0], NULL);

	if (err)
		return fail("open", err);
	if ((err = shmkit_journal_seek_seq(j, from)))
		return fail("seek", err);
	if (say("READY\n"))
		return 1;
	for (long i = 0; i < n; i++) {
		if ((err = shmkit_journal_next(j, &rec, timeout)) != 1)
			return fail("next", err);
		if (rec.seq != from + (uint64_t)i || !jt_check(rec.seq, rec.data, rec.len, max))
			return fail("record out of order or corrupt", -EBADMSG);
		if (say("GOT %" PRIu64 "\n", rec.seq))
			return 1;
	}
	shmkit_journal_close(j);
	return 0;
}

static int do_fill(char **argv)
{
	struct shmkit_journal_opts o = {
		.flags = SHMKIT_JOURNAL_WRITE,
		.keep_files = (uint32_t)strtoul(argv[2], NULL, 0),
	};
	long count = strtol(argv[1], NULL, 0);
	uint32_t max = (uint32_t)strtoul(argv[3], NULL, 0);
	struct shmkit_journal_stats st;
	shmkit_journal *j;
	uint8_t buf[65536];
	uint64_t seq = 0;
	int err = shmkit_journal_open(&j, argv[0], &o);

	if (err)
		return fail("open", err);
	if (max > sizeof(buf))
		return fail("max_record", -EINVAL);
	if ((err = shmkit_journal_stats(j, &st)))
		return fail("stat", err);
	uint64_t next = st.records ? st.last_seq + 1 : 1;
	for (long i = 0; i < count; i++, next++) {
		uint32_t len = jt_len(next, max);
		jt_fill(next, buf, len);
		if ((err = shmkit_journal_append(j, buf, len, &seq)))
			return fail("append", err);
		if (seq != next)
			return fail("append gave an unexpected seq", -EPROTO);
	}
	if ((err = shmkit_journal_close(j)))
		return fail("close", err);
	return say("DONE %" PRIu64 "\n", seq) ? 1 : 0;
}

static int do_hold(char **argv)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	shmkit_journal *j;
	int err = shmkit_journal_open(&j, argv[0], &o);

	if (err)
		return fail("open", err);
	if (say("LOCKED %d\n", (int)getpid()))
		return 1;
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if ((argc == 7 || argc == 8) && !strcmp(argv[1], "write"))
		return do_write(argv + 2);
	if (argc == 7 && !strcmp(argv[1], "tail"))
		return do_tail(argv + 2);
	if (argc == 3 && !strcmp(argv[1], "hold"))
		return do_hold(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "fill"))
		return do_fill(argv + 2);
	fprintf(stderr, "usage: helper_journal write|tail|hold|fill ...\n");
	return 2;
}
