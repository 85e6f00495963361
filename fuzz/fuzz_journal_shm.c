/*
 * fuzz_journal_shm.c - the journal's shared live state: what a writer and
 * its readers share through MAP_SHARED mappings while they run (the
 * journal has no System V or POSIX shared memory; its shared state is
 * journal.meta's live part - tail event count, roll generation, next-seq
 * hint, writer announcements - and the records of the data files, mapped
 * by every handle).  A writer and a follower stay open while the
 * fuzzer's bytes land in those pages between appends, reads (timeouts 0
 * or 1 ms), seeks, fds, statistics, syncs and reopens.  A signal, a
 * sanitizer report, an operation past its time bound, a record longer
 * than max_record or seqs going backwards between seeks is a finding.
 * (fuzz_journal_files does the files at rest: truncation, removal,
 * repair.)
 *
 * Input:
 *   byte 0   bits 0-1 file size 4096 * (1 + n); bits 2-3 max_record 16 << n
 *   byte 1   records appended before the reader opens (byte % 48)
 *   then     operations: an opcode byte and its arguments
 * Writes go through write(2) into the same page-cache pages the
 * mappings show, never past a file's end (no SIGBUS by truncation here).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "shmkit.h"

#define MS 1000000LL

enum { S_APPEND, S_NEXT, S_PATCH_META, S_PATCH_DATA, S_FD, S_SEEK, S_STAT, S_SYNC,
       S_REOPEN_READER, S_REOPEN_WRITER, S_APPEND_AT, S_COUNT };

struct fz_js {
	char dir[160];
	uint32_t max_record;
	shmkit_journal *w, *r;
	uint64_t last;        /* the reader's last seq since it was positioned */
	uint8_t msg[256];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void open_reader(struct fz_js *j)
{
	if (j->r)
		shmkit_journal_close(j->r);
	j->r = NULL;
	j->last = 0;
	fz_result(shmkit_journal_open(&j->r, j->dir, NULL), 0, "journal_open reader");
}

static void open_writer(struct fz_js *j)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };

	if (j->w)
		shmkit_journal_close(j->w);
	j->w = NULL;
	fz_result(shmkit_journal_open(&j->w, j->dir, &o), 0, "journal_open writer");
}

static void next(struct fz_js *j, uint8_t arg)
{
	struct shmkit_record rec;

	for (int i = 0; i < 1 + (arg & 15); i++) {
		int err = shmkit_journal_next(j->r, &rec, (arg & 0x80) ? MS : 0);
		fz_result(err, 1, "journal_next");
		if (err <= 0)
			return;
		fz_journal_record(&rec, &j->last, j->max_record);
	}
}

/* Bytes into a live page: journal.meta, or the newest data file (the
 * last before journal.meta in fz_journal_file's order). */
static void patch(struct fz_js *j, int meta, struct fz_in *in)
{
	char path[320];
	uint64_t off = fz_u16(in);
	const uint8_t *b;
	size_t n = fz_bytes(in, fz_u8(in), &b);

	if (meta) {
		snprintf(path, sizeof(path), "%s/journal.meta", j->dir);
	} else {
		char probe[320];
		unsigned k = 0;
		for (;; k++) {
			fz_journal_file(j->dir, k, probe, sizeof(probe));
			if (strstr(probe, "journal.meta"))
				break;
			memcpy(path, probe, sizeof(path));
		}
		if (!k)
			return;
	}
	fz_write_in_place(path, off, b, n);
}

static void run_op(struct fz_js *j, struct fz_in *in)
{
	int op = fz_u8(in) % S_COUNT;
	struct shmkit_journal_stats st;
	uint8_t arg;
	int64_t t0 = fz_now();

	switch (op) {
	case S_APPEND:
		if (j->w)
			fz_result(shmkit_journal_append(j->w, j->msg, fz_u8(in) % (j->max_record + 8), NULL),
			          0, "journal_append");
		break;
	case S_NEXT:
		if (j->r)
			next(j, fz_u8(in));
		break;
	case S_PATCH_META:
	case S_PATCH_DATA:
		patch(j, op == S_PATCH_META, in);
		break;
	case S_FD:
		if (j->r) {
			int fd = shmkit_journal_fd(j->r);
			fz_result(fd, 1 << 20, "journal_fd");
			if (fd >= 0) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				poll(&p, 1, 0);
				fz_result(shmkit_journal_ack_fd(j->r), 0, "journal_ack_fd");
			}
		}
		break;
	case S_SEEK:
		arg = fz_u8(in);
		if (j->r) {
			j->last = 0;
			if (arg & 1)
				fz_result(shmkit_journal_seek_seq(j->r, arg >> 1), 0, "journal_seek_seq");
			else
				fz_result(shmkit_journal_seek_time(j->r, (arg & 2) ? INT64_MAX : 0), 0,
				          "journal_seek_time");
		}
		break;
	case S_STAT:
		if (j->r)
			fz_result(shmkit_journal_stats(j->r, &st), 0, "journal_stat reader");
		if (j->w)
			fz_result(shmkit_journal_stats(j->w, &st), 0, "journal_stat writer");
		break;
	case S_SYNC:
		if (j->w)
			fz_result(shmkit_journal_sync(j->w), 0, "journal_sync");
		break;
	case S_REOPEN_READER:
		open_reader(j);
		break;
	case S_REOPEN_WRITER:
		open_writer(j);
		break;
	case S_APPEND_AT: /* a replica's append: a jump of 0-15 seqs, any stamp */
		arg = fz_u8(in);
		if (j->w && !shmkit_journal_stats(j->w, &st))
			fz_result(shmkit_journal_append_at(j->w, st.last_seq + 1 + (arg & 15),
			                                   (int64_t)fz_u16(in) << 24, j->msg,
			                                   fz_u8(in) % (j->max_record + 8)),
			          0, "journal_append_at");
		break;
	}
	fz_check_bound(t0, "journal operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_js j;
	uint8_t cfg = fz_u8(&in);
	unsigned nrec = fz_u8(&in) % 48;

	if (size > 16384)
		return 0;
	memset(&j, 0, sizeof(j));
	memset(j.msg, 0x5a, sizeof(j.msg));
	uint32_t file_size;
	j.w = fz_journal_make(j.dir, sizeof(j.dir), "js", cfg, nrec, &file_size, &j.max_record);
	open_reader(&j);
	for (int n = 0; fz_left(&in) && n < 64; n++)
		run_op(&j, &in);
	if (j.r)
		shmkit_journal_close(j.r);
	if (j.w)
		shmkit_journal_close(j.w);
	fz_rmtree(j.dir);
	return 0;
}
