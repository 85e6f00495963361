/*
 * journal_write.c - the journal's one writer: recovery when it opens,
 * appends (shmkit_journal_append and _append_at), durability, rolls and
 * retention, and copy_of.  The format and its invariants (I1-I4) are in
 * journal.c's file-top essay.
 *
 * ---- One writer -----------------------------------------------------------
 *
 * The writer holds an OFD write lock (fcntl F_OFD_SETLK) on journal.meta.
 * The kernel drops it when the last descriptor of that open file goes, so
 * a writer that dies (even by SIGKILL) is replaced at once; a second
 * writer while the first lives gets -EBUSY.  (A forked child shares the
 * parent's descriptor, hence the lock: fork does not make a second writer.)
 * No decision rests on a pid: pids are shown (`info`, -EBUSY's detail)
 * and name temporary files, nothing more.  A creator making journal.meta
 * holds the directory's flock shared while its temporary ".meta-*" file
 * exists; a writer removes such files only when it gets that flock
 * exclusively (the kernel drops a dead creator's).
 *
 * Append (shmkit_journal_append and _append_at share one path,
 * journal_put(); append_at gives the seq and stamp instead of taking the
 * next and the clock, writes a hole first for a jump, and may restart a
 * journal holding nothing at its seq: writer_restart()): write seq, time,
 * payload and crc with plain stores, then
 * release-store the commit word (pairs with the readers' acquire load),
 * then increment the tail event count (wakes sleeping readers), then make
 * it durable as the policy says.  When a record does not fit, the writer
 * syncs what is pending, creates the next file (I3), increments roll_gen
 * and the event count, and applies retention: the oldest files go while
 * there are more than keep_files or more than keep_bytes, never the
 * current one.
 *
 * ---- Crash and recovery ---------------------------------------------------
 *
 * What survives (commit = the record is visible to readers):
 *   process crash, any policy: every committed record (the page cache
 *     holds the mapping's pages); a record being written is invisible
 *     (its commit word is still 0) or, at worst, complete.
 *   power loss or kernel crash:
 *     SYNC   every record whose append returned (fdatasync of its
 *            file before returning; skj_writer_flush() argues why that
 *            covers stores made through the mapping);
 *     GROUP  every record covered by a completed group sync (at most
 *            group_records records or group_ms of appends are at risk,
 *            plus anything since the last append when appends stop; call
 *            shmkit_journal_sync() to close that window);
 *     ASYNC  whatever write-back reached the disk (the writer starts
 *            it for each MiB of records it completes, writer_writeback(),
 *            and waits for nothing); NONE: whatever the page cache
 *            wrote back.
 *   Files and their names always survive once made (I3); rolling syncs
 *   the old file's pending records under every policy but NONE.
 *
 * Opening for writing recovers the newest file: records are checked from
 * its start to the first one that is not valid (torn, bad CRC, wrong seq,
 * zeroed page, garbage, or the file truncated).  If no intact record
 * follows (found by its checksum at any 8-aligned offset whose seq could
 * come next), that is a torn tail: every non-zero byte from there to the
 * end is zeroed (I2), a truncated file is extended back to file_size, and
 * the result is synced; nothing valid is lost.  If intact records do
 * follow, cutting would delete them: the open is -EBADMSG, changes
 * nothing, and its detail names `shmkit journal repair`.  A newest file
 * whose header is damaged is removed if nothing in it is intact (the one
 * before it becomes the newest), refused the same way if something is.
 * The writer never reads older files: damage there stops readers, not
 * appends.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

/* ---- writer ---------------------------------------------------------------- */

static int64_t clamp_time(int64_t floor)
{
	int64_t t = sk_realtime_ns();
	return t < floor ? floor : t;
}

/* Remove ".tmp-*" data files a dead writer left (we hold the writer lock,
 * so no live writer is making one), and ".meta-*" ones a creator left,
 * if no creator is at work: creators hold the directory's flock shared
 * while their temporary meta exists (skj_meta_create), so getting it
 * exclusively means every such file is an orphan.  The kernel drops a
 * dead creator's flock: no pid is trusted, whatever it now names. */
static void clean_temps(struct shmkit_journal *j)
{
	int fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	bool metas = flock(j->dirfd, LOCK_EX | LOCK_NB) == 0;
	while ((de = readdir(d))) {
		if (!strncmp(de->d_name, ".tmp-", 5) || (metas && !strncmp(de->d_name, ".meta-", 6)))
			unlinkat(j->dirfd, de->d_name, 0);
	}
	if (metas)
		flock(j->dirfd, LOCK_UN);
	closedir(d);
}

static void writer_set_file(struct shmkit_journal *j, struct skj_file *f, size_t off,
                            uint64_t seq, int64_t t)
{
	j->w = f;
	j->woff = j->sync_from = off;
	j->filled = j->durability == SHMKIT_DUR_SYNC || j->durability == SHMKIT_DUR_GROUP ? off : SIZE_MAX;
	j->started = off;
	j->wseq = seq;
	j->wtime = t;
	j->unsynced = 0;
	j->last_sync_ns = sk_now_ns();
}

/* Damage a writer must not cut: why (the first damage), then where the
 * intact records resume. */
static SK_COLD int writer_refuse(const struct shmkit_journal *j, const char *why, uint64_t seq,
                                 const char *file, size_t at)
{
	return sk_fail(-EBADMSG, "%s; intact records follow (seq %llu at %s+%zu): appending "
	               "would cut them; run `shmkit journal repair %s`, which keeps them",
	               why, (unsigned long long)seq, file, at, j->path);
}

/* The newest file, first_seq, has a damaged header.  0 if it holds no
 * intact record (garbage: the writer removes it, nothing is lost), or
 * -EBADMSG: removing it would lose records that repair keeps. */
static int writer_bad_header(struct shmkit_journal *j, uint64_t first_seq)
{
	char why[PATH_MAX + 128];
	struct skj_file *f;
	struct skj_rec_view v;
	size_t at;

	snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	int err = skj_file_open_assumed(j, first_seq, false, &f);
	if (err)
		return err;
	int found = skj_rec_resync(f, SKJ_FIRST_OFF, first_seq, f->seg.map_size, &at, &v);
	if (found)
		err = writer_refuse(j, why, v.seq, f->seg.name.path, at);
	skj_file_close(f);
	return err;
}

/* Open the newest file for appending.  One whose header is damaged and
 * that holds nothing intact is removed, and the one before it is tried
 * (*next_seq: the seq a first file must then start at).  *f NULL: none. */
static int writer_last_file(struct shmkit_journal *j, uint64_t *next_seq, struct skj_file **f)
{
	uint64_t *seqs;
	size_t n;
	int err = skj_list_files(j->dirfd, &seqs, &n);

	*f = NULL;
	while (!err && n > 0) {
		err = skj_file_open(j, seqs[n - 1], true, f);
		if (err != -EBADMSG || (err = writer_bad_header(j, seqs[n - 1])))
			break;
		char name[SKJ_NAME_LEN + 1];
		skj_file_name(name, seqs[n - 1]);
		*next_seq = seqs[--n];
		if (unlinkat(j->dirfd, name, 0))
			err = sk_neg_errno();
		else
			err = skj_sync_dir(j->dirfd);
	}
	free(seqs);
	return err;
}

/* After the last valid record of the newest file f (scanned into sc): a
 * torn or garbage tail is cut (crash recovery, I2).  Damage followed by
 * intact records is not a tail: -EBADMSG, nothing changed. */
static int writer_tail(struct shmkit_journal *j, struct skj_file *f, const struct skj_scan *sc)
{
	size_t first, last_end, at;
	struct skj_rec_view v;
	char why[PATH_MAX + 128];

	if (sc->stop < 0)
		snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	else
		snprintf(why, sizeof(why), "%s+%zu: damaged record (seq %llu)", f->seg.name.path,
		         sc->end, (unsigned long long)sc->next_seq);
	skj_nonzero_extent(f, sc->end, &first, &last_end);
	if (first < last_end && skj_rec_resync(f, sc->end, sc->next_seq, last_end, &at, &v))
		return writer_refuse(j, why, v.seq, f->seg.name.path, at);
	int64_t cut = skj_file_cut_range(f, first, last_end);
	return cut < 0 ? (int)cut : 0;
}

/* Recover the newest file (see the file-top essay) and position the
 * writer after its last valid record; make the first file if there is
 * none. */
int skj_writer_recover(struct shmkit_journal *j)
{
	struct skj_file *f = NULL;
	struct skj_scan sc;

	clean_temps(j);
	/* Relaxed: only we write it (we hold the lock).  model: journal.pml
	 * J8 scans instead of trusting it (mutant BUG_RECOVER_FROM_HINT). */
	uint64_t next_seq = sk_load_relaxed(&j->m->next_seq_hint);
	int err = writer_last_file(j, &next_seq, &f);
	if (err)
		return err;
	if (!f) {
		int64_t t = clamp_time(0);
		if ((err = skj_file_create(j, next_seq ? next_seq : 1, t, 0, &f)))
			return err;
		writer_set_file(j, f, SKJ_FIRST_OFF, f->first_seq, t);
		return 0;
	}
	skj_file_scan(f, &sc);
	if ((err = writer_tail(j, f, &sc))) {
		skj_file_close(f);
		return err;
	}
	writer_set_file(j, f, sc.end, sc.next_seq, sc.last_time);
	return 0;
}

/* Make the pending range [sync_from, woff) durable: fdatasync(2) of the
 * current file.
 *
 * Why that persists what a record needs.  The records were stored through
 * a MAP_SHARED mapping of the file; Linux has one page cache, so those
 * stores are in the file's page-cache pages, marked dirty by the write
 * fault that let them in (and write-protected again by write-back before
 * it copies a page, so a store made before this call is in the copy).
 * fdatasync writes back every dirty page of the file and waits for it,
 * then makes durable the metadata needed to read them back -- here the
 * conversion of the preallocated (unwritten) extents the pages landed in;
 * the size never changes (files are made at full size, I3) -- and flushes
 * the device's write cache.  msync(MS_SYNC) of a range is, in the kernel,
 * the same vfs_fsync_range(datasync) limited to the range, so the
 * guarantee is the same or wider (pages outside the range are clean, or
 * recovery's zeroing, which may as well be durable too).
 *
 * Why not the range msync through shmkit_seg_sync().  That path fstat()s
 * the file before every msync to refuse a truncated file.  Measured on
 * ext4 (Linux 6.18, bench journal_append_sync_64 against
 * write_fdatasync_64, interleaved): 0.60-0.71x with fstat + msync,
 * 0.95-1.12x with fdatasync alone, 0.52-0.75x with fstat + fdatasync.
 * The stat, not the call, costs: with it, the next write to the file is
 * stamped with a fine-grained ctime (a stat that read the timestamps asks
 * for that), so every record dirties the inode and the sync carries an
 * inode update too.  Without the stat msync and fdatasync cost the same
 * (within 5%); fdatasync is one call with no page arithmetic.
 * Truncation is still caught where it can be: a store into a part
 * another process cut off faults, the guard (guard.c) marks the mapping
 * lost, and sk_map_lost() below turns that into -EIO rather than a
 * success.  A cut made after the store and before the sync drops the
 * page unseen; the fstat could not close that window either (it could
 * come between fstat and msync). */
/* A failed write-back is final for this handle.  The kernel reports a
 * write-back error once per descriptor (errseq) and may have marked the
 * pages clean after it: a later fdatasync that succeeds proves nothing
 * about the records whose write-back failed, and the page cache still
 * shows them to readers.  So every later append, sync and close of this
 * handle fails with the same error, as PostgreSQL stops at a failed
 * fsync, rather than report records durable that may not be.  Another
 * handle, opened after the cause is dealt with, checks the file anew. */
static SK_COLD int writer_wb_failed(struct shmkit_journal *j, int err, const char *call)
{
	j->wb_err = err;
	return sk_fail(err, "%s of %s failed%s; this handle accepts nothing more (records since "
	               "the last sync may be missing from the disk): close it and open the journal again",
	               call, j->w->seg.name.path,
	               err == -EIO ? " (or the file was truncated under the writer)" : "");
}

static SK_COLD int writer_wb_sticky(const struct shmkit_journal *j)
{
	return sk_fail(j->wb_err, "%s: a write-back of this handle failed earlier (%s); records "
	               "since its last sync may be missing from the disk: close it and open the "
	               "journal again", j->path, strerror(-j->wb_err));
}

int skj_writer_flush(struct shmkit_journal *j)
{
	int err = 0;

	if (!j->w)
		return sk_fail(-EIO, "%s: the writer lost its file (a failed restart): reopen", j->path);
	if (SK_UNLIKELY(j->wb_err))
		return writer_wb_sticky(j);
	if (j->woff > j->sync_from && fdatasync(j->w->seg.fd))
		err = sk_neg_errno();
	else if (sk_map_lost(&j->w->seg))
		err = -EIO;
	if (err)
		return writer_wb_failed(j, err, "fdatasync");
	j->sync_from = j->woff;
	j->unsynced = 0;
	j->last_sync_ns = sk_now_ns();
	return 0;
}

/* A new file is linked (a roll, or append_at's restart of an empty
 * journal): tell readers. */
static void writer_announce_file(struct shmkit_journal *j)
{
	/* Release: orders the link of the new file (done before) before the
	 * new generation; pairs with the acquire load in cur_next_file(), so
	 * a reader that sees the new generation finds the file by name.  (A
	 * writer dying before this leaves the file linked and nobody told:
	 * readers find it on their next wait slice, cur_wait().)  model:
	 * journal.pml J6, then J7 (SC in the model; the kernel orders the
	 * link before a lookup that sees it). */
	sk_fetch_add(&j->m->roll_gen, 1, __ATOMIC_RELEASE);
	shmkit_ec_inc(&j->m->tail);
}

/* Retention after a roll: drop the oldest files beyond keep_files or
 * keep_bytes, never the current one.  Best effort: a failure to remove
 * leaves the file for the next roll. */
static void writer_retain(struct shmkit_journal *j)
{
	uint64_t *seqs;
	size_t n, first = 0;

	if ((!j->keep_files && !j->keep_bytes) || skj_list_files(j->dirfd, &seqs, &n))
		return;
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		char name[SKJ_NAME_LEN + 1];
		struct stat st;
		skj_file_name(name, seqs[i]);
		if (!fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
			total += (uint64_t)st.st_size;
	}
	while (n - first > 1 && seqs[first] < j->w->first_seq &&
	       ((j->keep_files && n - first > j->keep_files) || (j->keep_bytes && total > j->keep_bytes))) {
		char name[SKJ_NAME_LEN + 1];
		struct stat st;
		skj_file_name(name, seqs[first]);
		if (fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) || unlinkat(j->dirfd, name, 0))
			break;
		total -= (uint64_t)st.st_size < total ? (uint64_t)st.st_size : total;
		first++;
	}
	free(seqs);
	if (first)
		skj_sync_dir(j->dirfd);
}

/* The current file is full: sync it, make the next (created_ns t, at
 * least the last stamp), wake readers.  With hole != 0 the next file
 * starts with a hole standing for that many seqs (append_at's jump), so
 * the writer's next seq is past it. */
static SK_COLD int writer_roll(struct shmkit_journal *j, int64_t t, uint64_t hole)
{
	struct skj_file *f;
	int err;

	if (j->durability != SHMKIT_DUR_NONE && (err = skj_writer_flush(j)))
		return err;
	if ((err = skj_file_create(j, j->wseq, t, hole, &f)))
		return err;
	skj_file_close(j->w);
	writer_set_file(j, f, SKJ_FIRST_OFF + (hole ? SKJ_RHDR_SIZE : 0), j->wseq + hole, t);
	/* Relaxed: a hint for a later writer that finds no file at all.
	 * model: journal.pml J5 (the link in skj_file_create is J4). */
	sk_store_relaxed(&j->m->next_seq_hint, j->wseq);
	writer_announce_file(j);
	writer_retain(j);
	return 0;
}

/* ---- ahead of the writer: zeros (SYNC, GROUP), write-back (ASYNC) ---------
 *
 * A data file is reserved with posix_fallocate (sk_fd_reserve), which on
 * ext4 and XFS makes unwritten extents: blocks that are allocated but
 * read as zeros until written.  The first write-back into such a block
 * converts its extent to written, a metadata change, so the fdatasync
 * that carries it must also write that metadata (on a journalled ext4, a
 * journal commit).  Every record that starts a new block paid that, and
 * at 4 KiB records every record did: measured on ext4 (Linux 6.18,
 * virtio disk), one 4 KiB write + fdatasync took 263 us into an
 * unwritten block, 162 us into a written one (64 B: 165 vs 111).
 *
 * So under SYNC and GROUP the writer keeps the blocks ahead of it
 * written: before a record crosses `filled` it writes zeros (pwrite) from
 * there to the next FILL_CHUNK boundary.  The bytes after the last record
 * are zero already (I2), so this changes no byte anyone can read; it only
 * makes the next sync convert a whole chunk at once (one metadata commit
 * per MiB instead of one per block).  The cost: 1 MiB of zeros copied
 * into the page cache and written back once (the first sync after a fill
 * writes it, a latency step once per MiB of records).  Measured
 * (shmkit-bench --filter journal, interleaved, four runs), against write
 * + fdatasync into a preallocated file: 4 KiB SYNC 0.96-1.01x without,
 * 1.37-1.57x with (SQLite WAL synchronous=FULL went from 1.16-1.26x the
 * journal's rate to 0.70-0.79x); 64 B GROUP 294-352 K/s -> 506-541 K/s;
 * 64 B SYNC unchanged within noise (a block is shared by ~46 records, so
 * it converted once per 46 syncs).  256 KiB chunks measured the same as
 * 1 MiB; starting the chunk's write-back at once (sync_file_range) gained
 * nothing.  The alternatives: zeroing the whole 64 MiB file at creation
 * (doubles the disk writes of a fast GROUP writer and adds 64 MiB of I/O
 * to every open and roll), FALLOC_FL_ZERO_RANGE (ext4 makes unwritten
 * extents again) and FALLOC_FL_WRITE_ZEROES (Linux 6.17; needs a device
 * that zeroes by unmapping, which this one does not).  Not under NONE and
 * ASYNC: nothing waits for a sync there, and the copy of zeros cost NONE
 * 13% at 64 B (15.6 -> 13.5 M/s).
 *
 * The fill is only an optimisation: a failed or short pwrite leaves the
 * rest of the file as it was (preallocated, reading as zeros), the record
 * goes through the mapping as always, and the fill is not tried again in
 * this file. */
#define FILL_CHUNK ((size_t)1 << 20)
#define START_CHUNK ((size_t)1 << 20)

static SK_COLD void writer_fill(struct shmkit_journal *j, size_t end)
{
	static const char zeros[64 * 1024];
	size_t at = j->filled, to = (end + FILL_CHUNK - 1) & ~(FILL_CHUNK - 1);

	if (to > j->w->cap)
		to = j->w->cap;
	while (at < to) {
		size_t n = to - at < sizeof(zeros) ? to - at : sizeof(zeros);
		ssize_t k = pwrite(j->w->seg.fd, zeros, n, (off_t)at);
		if (k <= 0)
			break;
		at += (size_t)k;
	}
	j->filled = at >= to ? to : SIZE_MAX; /* failed: give up in this file */
}

/* ASYNC promises "whatever write-back reached the disk": nothing is
 * waited for.  It used to msync(MS_ASYNC) every record through
 * shmkit_seg_sync(), which on Linux (since 2.6.19) starts nothing -- the
 * kernel tracks a shared mapping's dirty pages itself -- after an fstat()
 * that makes the file's next timestamp update fine-grained, so every
 * record dirtied the inode (see skj_writer_flush()): 1.4 M/s at 64 B against
 * NONE's 15.6 M/s.  Now, once START_CHUNK bytes of records are complete,
 * the writer starts their write-back (sync_file_range with
 * SYNC_FILE_RANGE_WRITE: queues the dirty pages, waits for no I/O),
 * whole pages only, so the page still being filled is not written over
 * and over.  ASYNC so does what MS_ASYNC was meant to: records older
 * than the last MiB are on their way to the disk, not left for the
 * kernel's 30-second expiry; the promise is the same (nothing waited
 * for).  Truncation is caught as under SYNC (sk_map_lost: -EIO).
 * Measured interleaved with write_SZ (shmkit-bench --filter
 * journal_append): 64 B 1.4 M/s before, 10-12 M/s now; 4 KiB 1.5-2.0
 * GB/s before (1.03-1.40x write_4k), 1.5-1.6 GB/s now (0.96-1.06x),
 * where NONE makes 3.2: at that rate the writer pays for queueing the
 * write-back itself, which under NONE (and in write_4k) the kernel's
 * flusher does later, or never for a file removed first, as the bench's
 * are. */
static SK_COLD int writer_writeback(struct shmkit_journal *j)
{
	size_t to = j->woff & ~(sk_page_size() - 1);

	if (sync_file_range(j->w->seg.fd, (off_t)j->started, (off_t)(to - j->started),
	                    SYNC_FILE_RANGE_WRITE))
		return writer_wb_failed(j, sk_neg_errno(), "sync_file_range");
	j->started = to;
	return 0;
}

/* Durability step after a commit. */
static inline int writer_durable(struct shmkit_journal *j)
{
	switch (j->durability) {
	case SHMKIT_DUR_ASYNC:
		if (j->woff - j->started >= START_CHUNK)
			return writer_writeback(j);
		return sk_map_lost(&j->w->seg) ? -EIO : 0;
	case SHMKIT_DUR_SYNC:
		return skj_writer_flush(j);
	case SHMKIT_DUR_GROUP:
		if (++j->unsynced >= j->group_records ||
		    sk_now_ns() - j->last_sync_ns >= (int64_t)j->group_ms * SKJ_NS_PER_MS)
			return skj_writer_flush(j);
		return 0;
	}
	return 0;
}

/* Write one record, stamped t, at the writer's position; the commit word
 * goes last. */
static inline void journal_commit(struct shmkit_journal *j, int64_t t, const void *data,
                                  uint32_t len)
{
	struct skj_rec *r = (struct skj_rec *)((char *)j->w->seg.map + j->woff);

	r->seq = j->wseq;
	r->time_ns = t;
	if (len)
		memcpy(r + 1, data, len);
	r->crc = sk_journal_rec_crc(len, j->wseq, t, r + 1);
	/* Release: orders the fields and payload above before the commit
	 * word; pairs with the acquire load in skj_rec_at() of every reader.
	 * model: journal.pml J2, the commit point, after J1 (the plain
	 * stores above); SC in the model. */
	sk_store_release(&r->commit, SKJ_COMMIT | len);
	j->wtime = t;
}

/* append_at's jump: seqs [wseq, seq) are not in this journal (a replica
 * of a journal with a hole there).  They become one hole, as repair
 * marks damage, so that readers skip them and verify counts them: here,
 * in front of the record's room (need bytes), or, if the two do not fit,
 * at the start of the next file.  The zeros ahead of the writer are
 * written first (writer_fill writes them with pwrite, which would wipe a
 * hole stored through the mapping past `filled`).  The hole is committed
 * before the record: a writer killed between the two leaves the hole, and
 * its successor goes on after it. */
static SK_COLD int writer_jump(struct shmkit_journal *j, uint64_t seq, int64_t t, size_t need)
{
	uint64_t count = seq - j->wseq;
	int err;

	if (need + SKJ_RHDR_SIZE > j->w->cap - j->woff)
		return writer_roll(j, t, count);
	if (j->woff + SKJ_RHDR_SIZE + need > j->filled)
		writer_fill(j, j->woff + SKJ_RHDR_SIZE + need);
	if ((err = skj_file_allow_holes(j->w)))
		return err;
	skj_hole_put(j->w, j->woff, SKJ_RHDR_SIZE, j->wseq, count);
	j->woff += SKJ_RHDR_SIZE;
	j->wseq = seq;
	SK_CRASH_POINT("journal.append_at.hole");
	return 0;
}

/* append_at into a journal that holds nothing (its one file is empty, no
 * hole in it), for a seq other than the file's or a stamp before its
 * created_ns: the file is replaced by one named seq, created at t, so a
 * copy starts where its leader's retained records do, without a hole for
 * the seqs before.  The empty file is unlinked first: a crash between the
 * two leaves no file, and the next writer makes one (nothing is lost:
 * there was nothing); a reader holding the old file sees it unlinked and
 * moves to the new one, as after retention.  If the new file cannot be
 * made, an empty one like the old is made again; failing that too, the
 * handle has no file (appends: -EIO, reopen).  1 replaced, 0 not empty,
 * < 0 error. */
static SK_COLD int writer_restart(struct shmkit_journal *j, uint64_t seq, int64_t t)
{
	char name[SKJ_NAME_LEN + 1];
	struct skj_file *f;
	uint64_t *seqs, old = j->w->first_seq;
	int64_t old_t = j->w->created_ns;
	size_t n;
	int err = skj_list_files(j->dirfd, &seqs, &n);

	if (err)
		return err;
	bool alone = n == 1 && seqs[0] == old;
	free(seqs);
	if (!alone)
		return 0;
	skj_file_name(name, old);
	if (unlinkat(j->dirfd, name, 0)) /* the new file's link syncs the directory */
		return sk_fail(sk_neg_errno(), "cannot remove %s/%s", j->path, name);
	SK_CRASH_POINT("journal.append_at.restart");
	skj_file_close(j->w);
	j->w = NULL;
	if ((err = skj_file_create(j, seq, t, 0, &f))) {
		if (!skj_file_create(j, old, old_t, 0, &f))
			writer_set_file(j, f, SKJ_FIRST_OFF, old, old_t);
		return err;
	}
	writer_set_file(j, f, SKJ_FIRST_OFF, seq, t);
	/* Relaxed: a hint for a later writer that finds no file at all. */
	sk_store_relaxed(&j->m->next_seq_hint, seq);
	writer_announce_file(j);
	return 1;
}

/* Append one record numbered seq (>= the writer's next seq; a larger one
 * leaves a hole for those between), stamped t (raised to the last stamp:
 * I4).  The one append path of shmkit_journal_append and _append_at. */
static inline int journal_put(struct shmkit_journal *j, uint64_t seq, int64_t t,
                              const void *data, size_t len)
{
	size_t need = SKJ_RHDR_SIZE + skj_pad8(len);
	int err;

	if (t < j->wtime)
		t = j->wtime;
	if (SK_UNLIKELY(seq != j->wseq)) {
		if ((err = writer_jump(j, seq, t, need)))
			return err;
	} else if (need > j->w->cap - j->woff && (err = writer_roll(j, t, 0))) {
		return err;
	}
	if (j->woff + need > j->filled)
		writer_fill(j, j->woff + need);
	journal_commit(j, t, data, (uint32_t)len);
	j->woff += need;
	j->wseq++;
	/* A writer dying here leaves the record visible and nobody woken:
	 * readers see it on their next wait slice (cur_wait()). */
	SK_CRASH_POINT("journal.append.committed");
	/* Wake live readers (release RMW; see wait.h for the ordering).
	 * model: journal.pml J3. */
	shmkit_ec_inc(&j->m->tail);
	if ((err = writer_durable(j)))
		return sk_fail(err, "record %llu committed but not synced", (unsigned long long)seq);
	return 0;
}

/* Is j a writer with a file to write to?  (Detail cleared first.) */
static int writer_check(shmkit_journal *j)
{
	sk_clear_detail();
	if (!j->writer)
		return sk_fail(-EPERM, "journal not opened for writing (SHMKIT_JOURNAL_WRITE)");
	if (!j->w)
		return sk_fail(-EIO, "%s: the writer lost its file (a failed restart): reopen", j->path);
	if (SK_UNLIKELY(j->wb_err))
		return writer_wb_sticky(j);
	return 0;
}

/* What both appends check first. */
static int append_check(shmkit_journal *j, const void *data, size_t len)
{
	if (!j || (!data && len))
		return -EINVAL;
	int err = writer_check(j);
	if (err)
		return err;
	if (len > j->max_record)
		return sk_fail(-EMSGSIZE, "record of %zu bytes exceeds max_record %u", len, j->max_record);
	return 0;
}

int shmkit_journal_append(shmkit_journal *j, const void *data, size_t len, uint64_t *seq)
{
	int err = append_check(j, data, len);

	if (err)
		return err;
	uint64_t s = j->wseq;
	err = journal_put(j, s, sk_realtime_ns(), data, len);
	if (seq && (!err || j->wseq > s))
		*seq = s;
	return err;
}

int shmkit_journal_append_at(shmkit_journal *j, uint64_t seq, int64_t time_ns, const void *data,
                             size_t len)
{
	int err = append_check(j, data, len);

	if (err)
		return err;
	if (!seq || seq == UINT64_MAX)
		return sk_fail(-EINVAL, "seq %llu is not a record's", (unsigned long long)seq);
	if (seq < j->wseq)
		return sk_fail(-EEXIST, "%s holds seqs up to %llu: seq %llu is not after them",
		               j->path, (unsigned long long)j->wseq - 1, (unsigned long long)seq);
	if (j->woff == SKJ_FIRST_OFF && j->w->first_seq == j->wseq && (seq != j->wseq || time_ns < j->wtime) &&
	    (err = writer_restart(j, seq, time_ns)) < 0)
		return err;
	return journal_put(j, seq, time_ns, data, len);
}

int shmkit_journal_sync(shmkit_journal *j)
{
	if (!j)
		return -EINVAL;
	sk_clear_detail();
	if (!j->writer)
		return sk_fail(-EPERM, "journal not opened for writing");
	return skj_writer_flush(j);
}

/* ---- identity ------------------------------------------------------------- */

/* A journal's id is random, made with journal.meta (a journal removed and
 * made again under the same path has another).  copy_of, 0 until set,
 * names the journal this one is a replica of: it is in journal.meta's
 * fixed part and in the header of every data file made after it was set
 * (the newest file's too: rewritten in place), all under their checksums,
 * so repair's rebuild of journal.meta keeps it.  Builds before it wrote
 * zeros there and read nothing: the layout and fingerprint are
 * unchanged, and both kinds of build share such a journal. */
int shmkit_journal_set_copy_of(shmkit_journal *j, uint64_t id)
{
	if (!j || !id)
		return -EINVAL;
	int err = writer_check(j);
	if (err || j->copy_of == id)
		return err;
	if (j->copy_of)
		return sk_fail(-EEXIST, "%s is a copy of journal %016llx, not of %016llx", j->path,
		               (unsigned long long)j->copy_of, (unsigned long long)id);
	struct skj_meta h;
	memcpy(&h, j->m, offsetof(struct skj_meta, pad0));
	h.copy_lo = (uint32_t)id;
	h.copy_hi = (uint32_t)(id >> 32);
	h.crc = sk_crc32c(0, &h, offsetof(struct skj_meta, crc));
	/* One pwrite of the fixed part (the first sector: the old or the new
	 * one survives a crash), then fdatasync; the mapping shows it. */
	ssize_t w = pwrite(j->meta_seg.fd, &h, offsetof(struct skj_meta, pad0), 0);
	if (w != (ssize_t)offsetof(struct skj_meta, pad0) || fdatasync(j->meta_seg.fd))
		return sk_fail(w < 0 ? sk_neg_errno() : -EIO, "cannot write %s/" SKJ_META_NAME, j->path);
	j->copy_of = id;
	struct skj_fhdr fh;
	memcpy(&fh, j->w->seg.map, sizeof(fh));
	fh.copy_lo = h.copy_lo;
	fh.copy_hi = h.copy_hi;
	return skj_file_header_put(j->w, &fh);
}
