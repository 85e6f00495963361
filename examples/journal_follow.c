/*
 * journal_follow.c - a journal writer and a follower in another process.
 *
 * A journal is a directory of mapped files holding numbered, checksummed
 * records that survive a crash of the writer (and, with a sync policy,
 * a power loss).  The parent creates one and appends "record 1" ..
 * "record N"; a forked child opens it as a reader and follows it: each
 * shmkit_journal_next() waits (on a futex) for the next record, across
 * file rolls.  The follower checks that sequence numbers run 1, 2, ...
 * and that each record holds what was written.
 *
 * Each data file is preallocated at its full size when the journal
 * rolls to it: 64 MiB by default.  This example asks for 64 KiB files,
 * so its records fill several of them.
 *
 * Usage: journal_follow [DIR [COUNT]]   (default /tmp/journal-follow-PID, 2000)
 * DIR must not exist; it is removed at the end.
 *
 *   cc journal_follow.c $(pkg-config --cflags --libs shmkit) -o journal_follow
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

static int follow(const char *dir, unsigned count)
{
	shmkit_journal *j;
	struct shmkit_record rec;
	struct shmkit_journal_stats st;
	char want[64];
	int err = shmkit_journal_open(&j, dir, NULL); /* NULL options: a reader */

	if (err) {
		fprintf(stderr, "follower: open %s: %s\n", dir, shmkit_strerror(err));
		return 1;
	}
	for (uint64_t seq = 1; seq <= count; seq++) {
		/* 1: a record; -ETIMEDOUT: none came within 5 s (writer gone?) */
		err = shmkit_journal_next(j, &rec, 5000000000LL);
		if (err != 1) {
			fprintf(stderr, "follower: waiting for record %" PRIu64 ": %s\n", seq,
			        err ? shmkit_strerror(err) : "end of journal");
			shmkit_journal_close(j);
			return 1;
		}
		int len = snprintf(want, sizeof(want), "record %" PRIu64, seq);
		if (rec.seq != seq || rec.len != (uint32_t)len || memcmp(rec.data, want, rec.len)) {
			fprintf(stderr, "follower: record %" PRIu64 " is not \"%s\"\n", rec.seq, want);
			shmkit_journal_close(j);
			return 1;
		}
	}
	shmkit_journal_stats(j, &st);
	printf("follower (pid %d): read records 1..%u in order, across %u files\n",
	       (int)getpid(), count, st.files);
	shmkit_journal_close(j);
	return 0;
}

static int write_records(shmkit_journal *j, unsigned count)
{
	char rec[64];

	for (unsigned i = 1; i <= count; i++) {
		int len = snprintf(rec, sizeof(rec), "record %u", i);
		uint64_t seq;
		int err = shmkit_journal_append(j, rec, (size_t)len, &seq);
		if (err) {
			fprintf(stderr, "writer: append %u: %s\n", i, shmkit_strerror(err));
			return 1;
		}
	}
	printf("writer   (pid %d): appended %u records\n", (int)getpid(), count);
	return 0;
}

int main(int argc, char **argv)
{
	char def[64];
	snprintf(def, sizeof(def), "/tmp/journal-follow-%d", (int)getpid());
	const char *dir = argc > 1 ? argv[1] : def;
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
	struct shmkit_journal_opts opts = {
		.flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
		.durability = SHMKIT_DUR_NONE, /* the page cache decides; a crash
		                                  of the process loses nothing */
		.file_size = 64 * 1024,        /* roll every 64 KiB (default 64 MiB) */
		.max_record = 1024,            /* largest record (default 1 MiB: it must
		                                  fit in a file) */
	};
	shmkit_journal *j;
	struct stat sb;
	int err, status, rc;

	if (stat(dir, &sb) == 0 || errno != ENOENT) {
		fprintf(stderr, "%s exists: give a new directory\n", dir);
		return 1;
	}
	if ((err = shmkit_journal_open(&j, dir, &opts))) {
		fprintf(stderr, "create %s: %s %s\n", dir, shmkit_strerror(err), shmkit_errdetail());
		return 1;
	}
	fflush(stdout); /* so the child does not print the parent's buffer again */
	pid_t pid = fork();
	if (pid == 0)
		exit(follow(dir, count)); /* a reader handle of its own */
	rc = pid < 0 ? 1 : write_records(j, count);
	if (pid > 0 && (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	                WEXITSTATUS(status)))
		rc = 1;
	shmkit_journal_close(j);
	if ((err = shmkit_journal_remove(dir))) {
		fprintf(stderr, "remove %s: %s\n", dir, shmkit_strerror(err));
		rc = 1;
	}
	return rc;
}
