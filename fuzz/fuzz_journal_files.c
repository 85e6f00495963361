/*
 * fuzz_journal_files.c - a journal's files on disk damaged by the
 * fuzzer's bytes (data files and journal.meta garbled, truncated, made
 * empty, cut to nothing, grown, removed; stray data files; commit words
 * with huge lengths), and its live mapped state (journal.meta's tail and
 * roll words, the newest file's records) written under an open writer,
 * then open (reader and writer: recovery), next, seek, stat, append,
 * verify and repair.  A signal, a sanitizer report, an operation past its
 * time bound, a record longer than max_record, seqs going backwards, or
 * a repair that returns 0 after which verify is not clean is a finding.
 *
 * Input (gen_seeds.c writes seeds):
 *   byte 0   bits 0-1 file size 4096 * (1 + n); bits 2-3 max_record
 *            16 << n
 *   byte 1   records appended at creation (byte % 48; they roll across
 *            files), lengths cycling 0..max_record
 *   then     operations: a byte (opcode) and its arguments.  Damage to
 *            files at rest closes the writer first (truncating a file
 *            under a live mapping is SIGBUS by design of mmap, not a
 *            journal bug); writes in place may land under the live
 *            writer (the mapped state a hostile process shares).
 * Everything lives in a directory under the private /dev/shm
 * (fuzz_common.h) and is removed after each input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "journal.h"
#include "shmkit.h"

#define SK_FZ_NORETURN __attribute__((noreturn))

enum { J_PATCH, J_TRUNC, J_GROW, J_EMPTY, J_UNLINK, J_STRAY, J_HUGE_LEN, J_APPEND, J_CLOSE,
       J_READ, J_SEEK, J_STAT, J_VERIFY, J_REPAIR, J_COUNT };

struct fz_j {
	char dir[160];
	uint32_t file_size, max_record;
	shmkit_journal *w;
	uint8_t msg[256];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void close_writer(struct fz_j *j)
{
	if (j->w)
		shmkit_journal_close(j->w);
	j->w = NULL;
}

static void writer(struct fz_j *j)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };

	if (!j->w)
		fz_result(shmkit_journal_open(&j->w, j->dir, &o), 0, "journal_open writer");
}

/* Read up to 64 records from where the reader stands; seqs only grow. */
static int read_some(struct fz_j *j, shmkit_journal *r)
{
	struct shmkit_record rec;
	uint64_t last = 0;
	int err = 0;

	for (int i = 0; i < 64; i++) {
		err = shmkit_journal_next(r, &rec, 0);
		fz_result(err, 1, "journal_next");
		if (err <= 0)
			break;
		fz_journal_record(&rec, &last, j->max_record);
	}
	return err;
}

static void reader(struct fz_j *j, int op, struct fz_in *in)
{
	shmkit_journal *r;
	struct shmkit_journal_stats st;
	uint8_t arg = fz_u8(in);

	int err = shmkit_journal_open(&r, j->dir, NULL);
	fz_result(err, 0, "journal_open reader");
	if (err)
		return;
	if (op == J_SEEK && (arg & 1))
		fz_result(shmkit_journal_seek_seq(r, arg >> 1), 0, "journal_seek_seq");
	else if (op == J_SEEK)
		fz_result(shmkit_journal_seek_time(r, (arg & 2) ? INT64_MAX : 0), 0, "journal_seek_time");
	if (op == J_STAT)
		fz_result(shmkit_journal_stats(r, &st), 0, "journal_stat");
	else
		read_some(j, r);
	shmkit_journal_close(r);
}

static SK_FZ_NORETURN void after_repair(const char *what, int err, const char *where)
{
	fprintf(stderr, "fuzz: %s after a successful repair: %d (%s)%s%s\n", what, err,
	        shmkit_errdetail(), where ? ", at " : "", where ? where : "");
	abort();
}

/* Repair that returns 0 leaves a sound journal (shmkit.h): verify is
 * clean, a reader reads it to the end without -EBADMSG, and a writer
 * opens and appends. */
static void repair(struct fz_j *j)
{
	struct shmkit_journal_report rep;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };
	shmkit_journal *r;

	close_writer(j);
	int err = shmkit_journal_repair(j->dir, &rep);
	fz_result(err, 0, "journal_repair");
	if (err)
		return;
	if ((err = shmkit_journal_verify(j->dir, &rep)))
		after_repair("verify", err, rep.where);
	if ((err = shmkit_journal_open(&r, j->dir, NULL)))
		after_repair("reader open", err, NULL);
	for (int i = 0; i < 1000 && (err = read_some(j, r)) > 0; i++)
		;
	shmkit_journal_close(r);
	if (err && err != -EAGAIN) /* -EAGAIN: the end */
		after_repair("read", err, NULL);
	if ((err = shmkit_journal_open(&j->w, j->dir, &o)))
		after_repair("writer open", err, NULL);
	if ((err = shmkit_journal_append(j->w, j->msg, 1, NULL)))
		after_repair("append", err, NULL);
}

/* Damage to a file at rest: the writer is closed first. */
static void damage(struct fz_j *j, int op, struct fz_in *in)
{
	char path[320];
	unsigned k = fz_u8(in);
	uint16_t v = fz_u16(in);

	close_writer(j);
	fz_journal_file(j->dir, k, path, sizeof(path));
	switch (op) {
	case J_TRUNC:
		(void)!truncate(path, v % (j->file_size + 1));
		break;
	case J_GROW:
		(void)!truncate(path, (off_t)j->file_size + 8 * (off_t)v);
		break;
	case J_EMPTY:
		(void)!truncate(path, 0);
		break;
	case J_UNLINK:
		unlink(path);
		break;
	case J_STRAY: {
		/* A data file named for a seq near the real ones. */
		snprintf(path, sizeof(path), "%s/%020u%s", j->dir, v % 64, SKJ_SUFFIX);
		int fd = open(path, O_WRONLY | O_CREAT, 0600);
		const uint8_t *b;
		size_t n = fz_bytes(in, k, &b);
		if (fd >= 0) {
			(void)!write(fd, b, n);
			close(fd);
		}
		break;
	}
	}
}

/* Writes in place, the writer possibly open: bytes, or a commit word. */
static void patch(struct fz_j *j, int op, struct fz_in *in)
{
	char path[320];
	unsigned k = fz_u8(in);
	uint64_t off = fz_u16(in);
	const uint8_t *b;
	size_t n;
	uint32_t word;

	fz_journal_file(j->dir, k, path, sizeof(path));
	if (op == J_HUGE_LEN) {
		uint8_t sel = fz_u8(in);
		word = sel & 1 ? SKJ_COMMIT | SKJ_LEN_MASK : SKJ_COMMIT | (uint32_t)fz_u16(in) << (sel >> 4);
		if (sel & 2)
			word |= SKJ_HOLE;
		b = (const uint8_t *)&word;
		n = sizeof(word);
		off &= ~(uint64_t)7; /* where commit words stand (files are 8-aligned) */
	} else {
		n = fz_bytes(in, fz_u8(in), &b);
	}
	fz_write_in_place(path, off, b, n);
}

static void run_op(struct fz_j *j, struct fz_in *in)
{
	int op = fz_u8(in) % J_COUNT;
	struct shmkit_journal_report rep;
	int64_t t0 = fz_now();

	switch (op) {
	case J_PATCH:
	case J_HUGE_LEN:
		patch(j, op, in);
		break;
	case J_TRUNC:
	case J_GROW:
	case J_EMPTY:
	case J_UNLINK:
	case J_STRAY:
		damage(j, op, in);
		break;
	case J_APPEND:
		writer(j);
		if (j->w)
			fz_result(shmkit_journal_append(j->w, j->msg, fz_u8(in) % (j->max_record + 8), NULL),
			          0, "journal_append");
		break;
	case J_CLOSE:
		close_writer(j);
		break;
	case J_READ:
	case J_SEEK:
	case J_STAT:
		reader(j, op, in);
		break;
	case J_VERIFY:
		fz_result(shmkit_journal_verify(j->dir, &rep), 0, "journal_verify");
		break;
	case J_REPAIR:
		repair(j);
		break;
	}
	fz_check_bound(t0, "journal operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_j j;
	uint8_t cfg = fz_u8(&in);
	unsigned nrec = fz_u8(&in) % 48;

	if (size > 16384)
		return 0;
	memset(&j, 0, sizeof(j));
	memset(j.msg, 0x5a, sizeof(j.msg));
	j.w = fz_journal_make(j.dir, sizeof(j.dir), "j", cfg, nrec, &j.file_size, &j.max_record);
	for (int n = 0; fz_left(&in) && n < 64; n++)
		run_op(&j, &in);
	close_writer(&j);
	fz_rmtree(j.dir);
	return 0;
}
