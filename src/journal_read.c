/*
 * journal_read.c - the journal's readers: a cursor that follows the
 * journal across files and waits for the live tail (shmkit_journal_next,
 * the pollable fd), seeks by seq and by time, and stats.  The format and
 * its invariants (I1-I4) are in journal.c's file-top essay.
 *
 * ---- Readers --------------------------------------------------------------
 *
 * A reader maps data files read-only.  For the record at (file, off) it
 * expects seq s: it acquire-loads the commit word (0 = nothing yet), then
 * checks the length against max_record (a hole's: the bytes left) and the
 * bytes left in the file, the seq against s, the CRC, and a hole's count
 * against overflow.  Anything else is -EBADMSG: a torn or garbage record
 * is never returned.  Every loop advances through a file of bounded size
 * or to a file with a larger first_seq, so none is unbounded.
 *
 * At the end of a file (only when roll_gen moved since it last looked, or
 * a wait slice ended, so a reader woken for each append makes no system
 * call there) the reader opens the file named s, by name: a directory
 * read while retention removes files may miss one.  If there is none but
 * the directory holds a later file, the writer has left this file for
 * good: it committed every record here before linking the later file,
 * and the kernel orders a link before any lookup that sees it, so the
 * reader looks at its position once more (a record committed after its
 * first look is read, not mistaken for a gap), then for the file named s
 * once more (linked meanwhile).  Still none: if its own file has been
 * unlinked (st_nlink 0), retention took it and, oldest first, the file
 * named s before it: the reader jumps to the oldest file left, the
 * returned seq showing the jump.  Otherwise seq s is in no file, a gap
 * verify reports too: -EBADMSG.  So a follower reports no damage verify
 * would not find.
 *
 * Live tail sleeps on the event count in journal.meta (futex), woken by
 * the writer's increment after each commit and roll; the ordering
 * argument is wait.h's.  A writer killed between committing a record (or
 * linking a file) and its increment wakes nobody, so a wait lasts at most
 * WAIT_SLICE_NS (100 ms): then the reader looks again, the directory
 * included.  Sleeping needs write access to journal.meta (the event
 * count's waiter flag); a read-only reader can read but not wait
 * (-EACCES).  Readers may see a record before the writer's sync has made
 * it durable.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "waitfd.h"
#include "wait.h"

#define WAIT_SLICE_NS (100 * SKJ_NS_PER_MS) /* longest futex wait before a recheck */

/* ---- reader cursor ------------------------------------------------------- */

static void cur_set(struct shmkit_journal *j, struct skj_file *f)
{
	skj_file_close(j->r);
	j->r = f;
	j->roff = SKJ_FIRST_OFF;
	j->rseq = f ? f->first_seq : 0;
	j->rlooked = false;
}

/* Index of the last file whose first seq is <= seq (0 if none is). */
static size_t find_seq(const uint64_t *seqs, size_t n, uint64_t seq)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (seqs[mid] <= seq)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Open the file for seqs[i], or the next one that opens if it vanished
 * (retention).  1 positioned, 0 no file, < 0 error. */
static int cur_open_at(struct shmkit_journal *j, const uint64_t *seqs, size_t n, size_t i)
{
	for (; i < n; i++) {
		struct skj_file *f;
		int err = skj_file_open(j, seqs[i], false, &f);
		if (err == -ENOENT)
			continue;
		if (err)
			return err;
		cur_set(j, f);
		return 1;
	}
	return 0;
}

/* Move to the file named for the cursor's next seq, the one a roll
 * makes: by name, not from a listing, since a directory read while files
 * come and go may miss one.  (While the current file holds nothing, that
 * name is its own.)  1 moved, 0 there is none, < 0 error. */
static int cur_open_named(struct shmkit_journal *j)
{
	struct skj_file *f;

	if (j->rseq == j->r->first_seq)
		return 0;
	int err = skj_file_open(j, j->rseq, false, &f);
	if (err)
		return err == -ENOENT ? 0 : err;
	cur_set(j, f);
	return 1;
}

/* Has the current file been removed from the directory (by retention)? */
static bool cur_removed(const struct shmkit_journal *j)
{
	struct stat st;

	return fstat(j->r->seg.fd, &st) == 0 && st.st_nlink == 0;
}

/* At the end of the current file; no file is named for the next seq, and
 * the directory held later files, seqs[i..n).  So the writer has left
 * our file for good: every record it committed here came before it
 * linked a later file, which our look at the directory saw (the kernel
 * orders a link before a lookup that finds it, and the writer's stores
 * before its link), so a record now at our position is found below.  If
 * none is, our file's end is final, and the next seq's file is missing:
 * retention removed it (oldest files first, so ours went before it:
 * cur_removed) and the cursor jumps to the oldest file left; or it never
 * was, a gap that verify finds too: -EBADMSG.  1 moved (or a record
 * appeared), 0 nothing yet, < 0 error. */
static int cur_past_end(struct shmkit_journal *j, const uint64_t *seqs, size_t n, size_t i)
{
	struct skj_rec_view v;
	int r;

	/* model: journal.pml F6 (without it, mutant BUG_NO_PAST_END_RECHECK
	 * reports a gap), then F7 */
	if (skj_rec_parse(j->r, j->roff, j->rseq, &v, false) != 0) {
		j->rlooked = false; /* committed meanwhile: cur_fetch() reads it */
		return 1;
	}
	if ((r = cur_open_named(j)) != 0) /* linked after our first try */
		return r;
	if (!cur_removed(j))
		return sk_fail(-EBADMSG, "%s: sequence gap: %s ends before seq %llu, the next file "
		               "starts at %llu", j->path, j->r->seg.name.path,
		               (unsigned long long)j->rseq, (unsigned long long)seqs[i]);
	while (i < n && seqs[i] < j->rseq)
		i++;
	if ((r = cur_open_at(j, seqs, n, i)) == 0)
		j->rlooked = false; /* all went to retention meanwhile: look again */
	return r;
}

/* At the end of the current file (or with none): move to the file that
 * continues the sequence if there is one.  1 moved, 0 nothing new, < 0
 * error.  Looks at the directory only when roll_gen moved since the last
 * look (or the cursor was told to: a new file, a wait slice), so a
 * reader woken at the end of a file for each append makes no system
 * call. */
static int cur_next_file(struct shmkit_journal *j)
{
	/* Acquire: pairs with the release increment in writer_roll(); a new
	 * file linked before the increment is found by the lookups below.
	 * model: journal.pml F3 (F4, F5 the lookups; SC in the model). */
	uint32_t gen = sk_load_acquire(&j->m->roll_gen);
	if (j->rlooked && gen == j->rgen)
		return 0;
	j->rlooked = true;
	j->rgen = gen;
	int r = j->r ? cur_open_named(j) : 0;
	if (r)
		return r;
	uint64_t *seqs;
	size_t n, i = 0;
	if ((r = skj_list_files(j->dirfd, &seqs, &n)))
		return r;
	while (j->r && i < n && seqs[i] <= j->r->first_seq)
		i++;
	if (i < n)
		r = j->r ? cur_past_end(j, seqs, n, i) : cur_open_at(j, seqs, n, i);
	free(seqs);
	return r;
}

/* The next record for the cursor, skipping holes and the records a seek
 * passes over.  1 *rec filled, 0 nothing yet, < 0 error (-EBADMSG
 * damage). */
static int cur_fetch(struct shmkit_journal *j, struct shmkit_record *rec)
{
	/* Bounded: each pass moves roff forward inside a file of bounded
	 * size, or moves to a file with a larger first seq. */
	for (;;) {
		struct skj_rec_view v;
		int r = j->r ? skj_rec_at(j->r, j->roff, j->rseq, &v, j->rseq >= j->min_seq) : 0;
		if (r < 0)
			return r;
		if (r == 0) {
			if ((r = cur_next_file(j)) <= 0)
				return r;
			continue;
		}
		j->roff = v.next;
		j->rseq += v.adv;
		if (!v.hole && v.seq >= j->min_seq && v.time_ns >= j->min_time) {
			rec->seq = v.seq;
			rec->time_ns = v.time_ns;
			rec->data = v.data;
			rec->len = v.len;
			return 1;
		}
	}
}

static int fetch_ready(void *arg)
{
	void **a = arg;
	return cur_fetch(a[0], a[1]);
}

/* Wait for the next record until deadline, on the tail event count, in
 * slices of at most WAIT_SLICE_NS after each of which the cursor looks
 * again, the directory included: a writer that died between making a
 * record visible and waking us, or between linking a new file and
 * announcing it, holds a reader up for one slice, not forever. */
static int cur_wait(struct shmkit_journal *j, struct shmkit_record *rec, int64_t deadline)
{
	void *arg[2] = { j, rec };
	int waited = 0;

	for (int round = 0;; round++) {
		int64_t now = sk_now_ns();
		int64_t slice = deadline - now > WAIT_SLICE_NS ? now + WAIT_SLICE_NS : deadline;
		int err = sk_wait_for(&j->m->tail, round ? SHMKIT_WAIT_BLOCK : SHMKIT_WAIT_ADAPTIVE,
		                      slice, fetch_ready, arg, &waited);
		if (!err)
			return 1;
		if (err != -ETIMEDOUT && err != -EAGAIN)
			return err;
		/* journal.meta or the file being read truncated by another
		 * process: nobody wakes us, each slice looks (guard.c). */
		if ((err = sk_map_check(&j->meta_seg)) || (j->r && (err = sk_map_check(&j->r->seg))))
			return err;
		if (sk_now_ns() >= deadline)
			return -ETIMEDOUT;
		j->rlooked = false;
	}
}

int shmkit_journal_next(shmkit_journal *j, struct shmkit_record *rec, int64_t timeout_ns)
{
	if (!j || !rec)
		return -EINVAL;
	sk_clear_detail();
	if (timeout_ns == 0) { /* try once: nothing there is -EAGAIN, as everywhere */
		int r = cur_fetch(j, rec);
		return r == 0 ? -EAGAIN : r;
	}
	if (!j->meta_rw) {
		int r = cur_fetch(j, rec);
		return r ? r : sk_fail(-EACCES, "waiting needs write access to %s/" SKJ_META_NAME,
		                       j->path);
	}
	return cur_wait(j, rec, sk_deadline(timeout_ns));
}

/* The pollable fd (waitfd.c, the mechanism every service shares): armed
 * on the tail event count, which the writer increments after each commit
 * and each new file; then a look at the cursor (a record there, or a new
 * file announced) makes it readable at once: either the look sees what was
 * committed before the increment, or the armed wait sees the count move. */
/* A record at the cursor (or damage there), no file open yet, or maybe a
 * new file: sk_waitfd_service_arm's look.  Relaxed roll_gen: a hint that
 * a file was linked; next() looks again and decides. */
static int journal_fd_ready(void *arg)
{
	struct shmkit_journal *j = arg;
	struct skj_rec_view rv;

	if (!j->r || sk_load_relaxed(&j->m->roll_gen) != j->rgen)
		return 1;
	return skj_rec_at(j->r, j->roff, j->rseq, &rv, j->rseq >= j->min_seq);
}

int shmkit_journal_fd(shmkit_journal *j)
{
	if (!j)
		return -EINVAL;
	sk_clear_detail();
	if (!j->wfd && !j->meta_rw)
		return sk_fail(-EACCES, "waiting needs write access to %s/" SKJ_META_NAME, j->path);
	return sk_waitfd_service_fd(&j->wfd, &j->m->tail, journal_fd_ready, j);
}

int shmkit_journal_ack_fd(shmkit_journal *j)
{
	if (!j || !j->wfd)
		return sk_fail(-EINVAL, "no fd on this journal handle (call shmkit_journal_fd)");
	return sk_waitfd_service_arm(j->wfd, &j->m->tail, journal_fd_ready, j);
}

/* Position at the start of file i of seqs (none: wait for the first). */
static int cur_seek(struct shmkit_journal *j, const uint64_t *seqs, size_t n, size_t i)
{
	cur_set(j, NULL);
	int r = cur_open_at(j, seqs, n, i);
	return r < 0 ? r : 0;
}

int shmkit_journal_seek_seq(shmkit_journal *j, uint64_t seq)
{
	uint64_t *seqs;
	size_t n;

	if (!j)
		return -EINVAL;
	sk_clear_detail();
	int err = skj_list_files(j->dirfd, &seqs, &n);
	if (err)
		return err;
	j->min_seq = seq;
	j->min_time = INT64_MIN;
	err = cur_seek(j, seqs, n, find_seq(seqs, n, seq));
	free(seqs);
	return err;
}

/* created_ns of file seq (INT64_MAX if it cannot be read). */
static int64_t file_created(struct shmkit_journal *j, uint64_t seq)
{
	struct skj_file *f;

	if (skj_file_open(j, seq, false, &f))
		return INT64_MAX;
	int64_t t = f->created_ns;
	skj_file_close(f);
	return t;
}

int shmkit_journal_seek_time(shmkit_journal *j, int64_t time_ns)
{
	uint64_t *seqs;
	size_t n;

	if (!j)
		return -EINVAL;
	sk_clear_detail();
	int err = skj_list_files(j->dirfd, &seqs, &n);
	if (err)
		return err;
	/* I4: every record of file i is stamped >= its created_ns and <= the
	 * next file's, so the first record at or after time_ns lies in the
	 * last file created strictly before it (or in the first file). */
	size_t lo = 0, hi = n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (file_created(j, seqs[mid]) < time_ns)
			lo = mid;
		else
			hi = mid;
	}
	j->min_seq = 0;
	j->min_time = time_ns;
	err = cur_seek(j, seqs, n, lo);
	free(seqs);
	return err;
}

/* ---- stat ------------------------------------------------------------------ */

/* Seq after the last valid record of the newest file (reader's view). */
static int last_file_end(struct shmkit_journal *j, uint64_t seq, uint64_t *next_seq)
{
	struct skj_file *f;
	struct skj_scan sc;
	int err = skj_file_open(j, seq, false, &f);

	if (err)
		return err;
	skj_file_scan(f, &sc);
	skj_file_close(f);
	*next_seq = sc.next_seq;
	return 0;
}

static void stat_writer(shmkit_journal *j, struct shmkit_journal_stats *st)
{
	if (j->writer) {
		st->durability = j->durability;
		st->writer_pid = getpid();
		return;
	}
	/* Relaxed loads: informational fields, each read once and bounded. */
	uint32_t d = sk_load_relaxed(&j->m->durability);
	int32_t pid = sk_load_relaxed(&j->m->writer_pid);
	st->durability = d <= SHMKIT_DUR_GROUP ? (int)d : -1;
	/* The lock says whether a writer lives; the pid only names it (-1
	 * when it announced none, e.g. a repair holding the lock). */
	if (skj_writer_locked(j) != 1)
		st->writer_pid = 0;
	else
		st->writer_pid = pid > 0 ? pid : -1;
}

/* journal.meta's copy_of now: set_copy_of may have set it since this
 * handle opened.  The fixed part is copied and its checksum checked: a
 * copy made while the writer rewrites it (a few bytes, once in a
 * journal's life) fails the check, and the handle's value is kept. */
static uint64_t meta_copy_of(struct shmkit_journal *j)
{
	struct skj_meta h;

	memcpy(&h, j->m, offsetof(struct skj_meta, pad0)); /* read once */
	if (sk_crc32c(0, &h, offsetof(struct skj_meta, crc)) == h.crc && h.journal_id == j->jid)
		j->copy_of = skj_copy_join(h.copy_lo, h.copy_hi);
	return j->copy_of;
}

int shmkit_journal_stats(shmkit_journal *j, struct shmkit_journal_stats *st)
{
	uint64_t *seqs, next = 0;
	size_t n;

	if (!j || !st)
		return -EINVAL;
	sk_clear_detail();
	memset(st, 0, sizeof(*st));
	int err = skj_list_files(j->dirfd, &seqs, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		char name[SKJ_NAME_LEN + 1];
		struct stat sb;
		skj_file_name(name, seqs[i]);
		if (!fstatat(j->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW))
			st->bytes += (uint64_t)sb.st_size;
	}
	st->files = (uint32_t)n;
	st->id = j->jid;
	st->copy_of = meta_copy_of(j);
	if (j->writer)
		next = j->wseq;
	else if (n && (err = last_file_end(j, seqs[n - 1], &next)) == -ENOENT)
		err = 0; /* removed under us: report what the others say */
	if (n && next > seqs[0]) {
		st->first_seq = seqs[0];
		st->last_seq = next - 1;
		st->records = next - seqs[0];
	}
	free(seqs);
	stat_writer(j, st);
	return err;
}
