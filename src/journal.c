/*
 * journal.c - a durable, append-only log of records in memory-mapped
 * files: one writer at a time, any number of readers in any processes,
 * crash recovery on open.
 *
 * ---- On disk --------------------------------------------------------------
 *
 * A journal PATH is a directory:
 *
 *   PATH/journal.meta                 one page: settings + live state
 *   PATH/00000000000000000001.skj     data files, named by the sequence
 *   PATH/00000000000000004711.skj     number of their first record
 *
 * Data file (file_size bytes, preallocated with fallocate so a full disk
 * is -ENOSPC when the file is made, never SIGBUS later):
 *
 *   off  size  field
 *     0     8  magic        "SKJFILE\1"
 *     8     4  version      SKJ_VERSION
 *    12     4  fingerprint  hash of the record/header layout and endianness
 *    16     8  journal_id   random, the same in every file of one journal
 *    24     8  first_seq    equals the number in the file's name
 *    32     8  file_size
 *    40     4  max_record   largest payload this journal accepts
 *    48     8  created_ns   CLOCK_REALTIME (clamped, see "time" below)
 *    60     4  crc          CRC-32C of bytes 0..59
 *    64   ...  records, back to back, each 8-aligned:
 *
 *          0  4  commit     0 = free; SKJ_COMMIT (bit 31) | payload length
 *          4  4  crc        CRC-32C of (len u32, seq u64, time_ns i64, payload
 *                           with its padding)
 *          8  8  seq        first_seq, first_seq + 1, ... with no gap
 *         16  8  time_ns    CLOCK_REALTIME at append, never decreasing
 *         24  .  payload    len bytes, zero-padded to a multiple of 8
 *
 *   After the last record, every byte up to file_size is zero.
 *
 * The header checksum tells damage from incompatibility: a header whose
 * CRC fails is damage (recoverable: the file holds nothing trustworthy);
 * a header whose CRC holds but whose version or fingerprint differs was
 * written by another build (-EPROTO; never touched).  This is why data
 * files are mapped directly (sk_fd_* helpers of the segment layer, and
 * shmkit_seg_sync for msync) rather than as managed segments: the segment
 * header has no checksum, so a flipped bit in its version would pass for
 * an incompatible build, and its INIT/READY handshake is unnecessary for
 * files that are published complete by link(2).
 *
 * journal.meta (struct skj_meta): bytes 0..63 are fixed at creation
 * (magic "SKJMETA\1", version, fingerprint, journal_id, file_size,
 * max_record, created_ns, CRC-32C of bytes 0..51); the rest is live state
 * of the current writer: its pid, start time and durability (for `info`,
 * never trusted), a next-sequence hint, the tail event count and the roll
 * generation.  The meta file is also the lock file.
 *
 * ---- Invariants -----------------------------------------------------------
 *
 *  I1  Record k+1 starts where record k ends; its seq is k's seq + 1; the
 *      first record of a file has seq == first_seq.  A file's first_seq is
 *      the seq after the previous file's last record.
 *  I2  A commit word is written once, last, with release; the writer never
 *      changes a committed record.  Everything after the last record of a
 *      file is zero (recovery re-establishes this before appending).
 *  I3  Files appear only complete: made under a temporary name, filled,
 *      fsynced, then link(2)ed to their final name, and the directory
 *      fsynced.  A crash leaves at most a stray ".tmp-*" file, removed by
 *      the next writer.
 *  I4  time_ns never decreases along the journal: the writer stamps
 *      max(CLOCK_REALTIME, previous stamp), and a new file's created_ns is
 *      such a stamp.  A backwards clock step therefore shows as repeated
 *      stamps until the clock catches up, and time order is seq order, so
 *      seeking by time is exact.
 *
 * ---- One writer -----------------------------------------------------------
 *
 * The writer holds an OFD write lock (fcntl F_OFD_SETLK) on journal.meta.
 * The kernel drops it when the last descriptor of that open file goes, so
 * a writer that dies (even by SIGKILL) is replaced at once; a second
 * writer while the first lives gets -EBUSY.  (A forked child shares the
 * parent's descriptor, hence the lock: fork does not make a second writer.)
 *
 * Append: write seq, time, payload and crc with plain stores, then
 * release-store the commit word (pairs with the readers' acquire load),
 * then increment the tail event count (wakes sleeping readers), then make
 * it durable as the policy says.  When a record does not fit, the writer
 * syncs what is pending, creates the next file (I3), increments roll_gen
 * and the event count, and applies retention: the oldest files go while
 * there are more than keep_files or more than keep_bytes, never the
 * current one.
 *
 * ---- Readers --------------------------------------------------------------
 *
 * A reader maps data files read-only.  For the record at (file, off) it
 * expects seq s: it acquire-loads the commit word (0 = nothing yet), then
 * checks the length against max_record and the bytes left in the file,
 * the seq against s and the CRC.  Anything else is -EBADMSG: a torn or
 * garbage record is never returned.  Every loop advances through a file
 * of bounded size or to a file with a larger first_seq, so none is
 * unbounded.  At the end of a file the reader looks for the file named s
 * (only when roll_gen moved since it last looked, so the waiting path
 * issues no system call).  Records lost to retention are skipped: the
 * returned seq shows the jump.  Live tail sleeps on the event count in
 * journal.meta (futex, no polling); the waker is the writer's increment
 * after each commit and roll, and the ordering argument is wait.h's.
 * Sleeping needs write access to journal.meta (the event count's waiter
 * flag); a read-only reader can read but not wait (-EACCES).  Readers may
 * see a record before the writer's sync has made it durable.
 *
 * ---- Crash and recovery ---------------------------------------------------
 *
 * What survives (commit = the record is visible to readers):
 *   process crash, any policy: every committed record (the page cache
 *     holds the mapping's pages); a record being written is invisible
 *     (its commit word is still 0) or, at worst, complete.
 *   power loss or kernel crash:
 *     SYNC   every record whose append returned (msync MS_SYNC of its
 *            pages before returning);
 *     GROUP  every record covered by a completed group sync (at most
 *            group_records records or group_ms of appends are at risk,
 *            plus anything since the last append when appends stop; call
 *            shmkit_journal_sync() to close that window);
 *     ASYNC  whatever write-back reached the disk (msync MS_ASYNC only
 *            starts it); NONE: whatever the page cache wrote back.
 *   Files and their names always survive once made (I3); rolling syncs
 *   the old file's pending records under every policy but NONE.
 *
 * Opening for writing recovers the last file: records are checked from
 * its start; at the first one that is not valid (torn, bad CRC, wrong seq,
 * zeroed page, garbage, or the file truncated), the file is cut: every
 * non-zero byte from there to the end is zeroed (I2), a truncated file is
 * extended back to file_size, and the result is synced.  A last file
 * whose header is damaged is removed (it holds nothing that can be
 * trusted) and the one before it becomes the last.  Nothing valid before
 * the damage is lost.  shmkit_journal_verify() checks every file and
 * reports the first damage without writing; shmkit_journal_repair() takes
 * the writer lock and applies the same cut to every file, removing files
 * that no longer continue the sequence.
 *
 * A damaged journal.meta (checksum, size; or missing beside data files)
 * makes the journal unopenable (-EBADMSG).  Repair rebuilds it: its fixed
 * part is in every data file header too, under that header's own
 * checksum, so it is taken from the oldest sound one (files of two
 * journals are refused, not guessed between).  A damaged meta is locked
 * first (the lock works whatever the file holds), then rewritten in place
 * and fsynced, its live state zeroed; a missing one is made like a new
 * journal's.  Then the files are repaired as above.
 */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "seg.h"
#include "wait.h"

#define DEF_FILE_SIZE (64u << 20)
#define DEF_MAX_RECORD (1u << 20)
#define DEF_GROUP_RECORDS 64u
#define DEF_GROUP_MS 10u
#define MAX_FILE_SIZE (1ULL << 40)
#define FIRST_OFF SKJ_FHDR_SIZE
#define NS_PER_MS 1000000LL

/* One mapped data file. */
struct skj_file {
	shmkit_seg seg;          /* fd, map, map_size; file backend for msync */
	uint64_t first_seq;
	size_t cap;              /* records end here: min(file_size, mapped) */
	size_t file_size;        /* from the header */
	uint32_t max_record;
	int64_t created_ns;
};

/* Result of walking a file's records from the start. */
struct skj_scan {
	size_t end;              /* offset after the last valid record */
	uint64_t next_seq;       /* seq after the last valid record */
	uint64_t records;
	int64_t last_time;
	int stop;                /* 0 clean end, -EBADMSG stopped at damage */
};

struct shmkit_journal {
	int dirfd;
	char path[PATH_MAX - 32];  /* room left for "/" and a file name */
	shmkit_seg meta_seg;     /* journal.meta, mapped (RW unless refused) */
	struct skj_meta *m;
	bool meta_rw;
	uint64_t jid;
	size_t file_size;
	uint32_t max_record;
	unsigned mode;
	/* writer */
	bool writer;
	int durability;
	uint32_t group_records, group_ms, keep_files;
	uint64_t keep_bytes;
	struct skj_file *w;
	size_t woff;
	uint64_t wseq;
	int64_t wtime;
	size_t sync_from;        /* first byte of w not yet synced */
	uint32_t unsynced;       /* records since the last sync (GROUP) */
	int64_t last_sync_ns;    /* CLOCK_MONOTONIC of the last sync (GROUP) */
	/* reader cursor */
	struct skj_file *r;
	size_t roff;
	uint64_t rseq;
	bool rlooked;            /* looked for the next file at roll_gen rgen */
	uint32_t rgen;
	uint64_t min_seq;        /* next() skips records before these */
	int64_t min_time;
};

/* ---- small helpers -------------------------------------------------------- */

static uint32_t fnv1a(uint32_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (uint8_t)(v >> (8 * i));
		h *= 16777619u;
	}
	return h;
}

/* Everything two builds must agree on to share a journal. */
static uint32_t journal_fingerprint(void)
{
	const uint64_t facts[] = {
		sizeof(struct skj_fhdr), offsetof(struct skj_fhdr, crc),
		sizeof(struct skj_rec), offsetof(struct skj_rec, seq),
		offsetof(struct skj_rec, time_ns), offsetof(struct skj_meta, tail),
		offsetof(struct skj_meta, roll_gen), sizeof(shmkit_ec),
		SKJ_COMMIT, SKJ_META_SIZE, __BYTE_ORDER__,
	};
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < SK_ARRAY_LEN(facts); i++)
		h = fnv1a(h, facts[i]);
	return h;
}

uint32_t sk_journal_rec_crc(uint32_t len, uint64_t seq, int64_t time_ns,
                            const void *payload)
{
	unsigned char h[20];

	memcpy(h, &len, 4);
	memcpy(h + 4, &seq, 8);
	memcpy(h + 12, &time_ns, 8);
	return sk_crc32c(sk_crc32c(0, h, sizeof(h)), payload, skj_pad8(len));
}

static void file_name(char buf[SKJ_NAME_LEN + 1], uint64_t first_seq)
{
	snprintf(buf, SKJ_NAME_LEN + 1, "%020llu" SKJ_SUFFIX, (unsigned long long)first_seq);
}

/* The seq a data file's name stands for, or 0 if it is not one. */
static uint64_t parse_file_name(const char *name)
{
	if (strlen(name) != SKJ_NAME_LEN || strcmp(name + 20, SKJ_SUFFIX))
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The first seqs of every data file, ascending.  *out is malloc'd (NULL
 * when there are none). */
static int list_files(int dirfd, uint64_t **out, size_t *n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;

	*out = NULL;
	*n = 0;
	if (!d) {
		int err = sk_neg_errno();
		if (fd >= 0)
			close(fd);
		return err;
	}
	while ((de = readdir(d))) {
		uint64_t seq = parse_file_name(de->d_name);
		if (!seq)
			continue;
		if (cnt == cap) {
			uint64_t *nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = seq;
	}
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_u64);
	*out = v;
	*n = cnt;
	return 0;
}

static int sync_dir(int dirfd)
{
	return fsync(dirfd) ? sk_fail(sk_neg_errno(), "fsync of the journal directory failed") : 0;
}

static int64_t clamp_time(int64_t floor)
{
	int64_t t = sk_realtime_ns();
	return t < floor ? floor : t;
}

/* ---- data files ------------------------------------------------------------ */

static void file_close(struct skj_file *f)
{
	if (!f)
		return;
	sk_fd_close(&f->seg);
	free(f);
}

static struct skj_file *file_alloc(const struct shmkit_journal *j, const char *name)
{
	struct skj_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->seg.fd = -1;
	f->seg.shmid = -1;
	f->seg.name.backend = SHMKIT_FILE;
	f->seg.name.shmid = -1;
	snprintf(f->seg.name.path, sizeof(f->seg.name.path), "%s/%s", j->path, name);
	snprintf(f->seg.name.canon, sizeof(f->seg.name.canon), "file:%s", f->seg.name.path);
	return f;
}

/* Map fd (taking it over) read-only or read-write. */
static int file_map(struct skj_file *f, int fd, bool rw)
{
	struct shmkit_seg_opts o = { .flags = rw ? 0 : SHMKIT_RDONLY };
	int err = sk_fd_map(&f->seg, fd, &o);

	if (err) {
		close(fd);
		return err;
	}
	f->seg.fd = fd;
	f->seg.flags = o.flags;
	f->seg.data_off = 0;
	f->seg.data_size = f->seg.map_size;
	return 0;
}

/* Copy the header of mapped file f, named for first_seq, and check it on
 * its own (without the journal's settings, which a rebuild of
 * journal.meta takes from here).  -EBADMSG: damaged (checksum, name,
 * bounds); -EPROTO: a sound header of another build. */
static int file_header(const struct skj_file *f, uint64_t first_seq, struct skj_fhdr *h)
{
	const char *p = f->seg.name.path;

	if (f->seg.map_size < SKJ_FHDR_SIZE)
		return sk_fail(-EBADMSG, "%s: %zu bytes, shorter than its header", p, f->seg.map_size);
	memcpy(h, f->seg.map, sizeof(*h)); /* read once */
	if (sk_crc32c(0, h, offsetof(struct skj_fhdr, crc)) != h->crc)
		return sk_fail(-EBADMSG, "%s: header checksum mismatch", p);
	if (h->magic != SKJ_FILE_MAGIC)
		return sk_fail(-EPROTO, "%s: not a journal data file", p);
	if (h->version != SKJ_VERSION || h->fingerprint != journal_fingerprint())
		return sk_fail(-EPROTO, "%s: format version %u/%08x, this build reads %u/%08x",
		               p, h->version, h->fingerprint, SKJ_VERSION, journal_fingerprint());
	if (h->first_seq != first_seq)
		return sk_fail(-EBADMSG, "%s: header says first seq %llu", p,
		               (unsigned long long)h->first_seq);
	if (h->max_record == 0 || h->max_record > SKJ_MAX_RECORD || h->file_size > MAX_FILE_SIZE ||
	    h->file_size < FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(h->max_record))
		return sk_fail(-EBADMSG, "%s: header sizes out of bounds", p);
	return 0;
}

/* Validate the header of a mapped file named for first_seq against the
 * journal and cache it.  -EBADMSG: damaged; -EPROTO: a sound header of
 * another build or another journal. */
static int file_check(struct skj_file *f, const struct shmkit_journal *j, uint64_t first_seq)
{
	struct skj_fhdr h;
	int err = file_header(f, first_seq, &h);

	if (err)
		return err;
	if (h.journal_id != j->jid)
		return sk_fail(-EPROTO, "%s: belongs to another journal", f->seg.name.path);
	if (h.max_record > j->max_record)
		return sk_fail(-EBADMSG, "%s: header sizes out of bounds", f->seg.name.path);
	f->first_seq = first_seq;
	f->file_size = h.file_size;
	f->max_record = h.max_record;
	f->created_ns = h.created_ns;
	f->cap = (f->seg.map_size < h.file_size ? f->seg.map_size : h.file_size) & ~(size_t)7;
	return 0;
}

/* Open and map the data file for first_seq; its header is not checked. */
static int file_map_named(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                          struct skj_file **out)
{
	char name[SKJ_NAME_LEN + 1];
	int err;

	*out = NULL;
	file_name(name, first_seq);
	struct skj_file *f = file_alloc(j, name);
	if (!f)
		return -ENOMEM;
	/* O_NONBLOCK: a FIFO planted under the name must not hang us;
	 * sk_fd_map refuses anything but a regular file. */
	int fd = openat(j->dirfd, name, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	err = fd < 0 ? sk_neg_errno() : file_map(f, fd, rw);
	if (err) {
		file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Open and validate the data file for first_seq. */
static int file_open(struct shmkit_journal *j, uint64_t first_seq, bool rw, struct skj_file **out)
{
	int err = file_map_named(j, first_seq, rw, out);

	if (!err && (err = file_check(*out, j, first_seq))) {
		file_close(*out);
		*out = NULL;
	}
	return err;
}

static void fhdr_fill(struct skj_fhdr *h, const struct shmkit_journal *j, uint64_t first_seq,
                      int64_t created_ns)
{
	memset(h, 0, sizeof(*h));
	h->magic = SKJ_FILE_MAGIC;
	h->version = SKJ_VERSION;
	h->fingerprint = journal_fingerprint();
	h->journal_id = j->jid;
	h->first_seq = first_seq;
	h->file_size = j->file_size;
	h->max_record = j->max_record;
	h->created_ns = created_ns;
	h->crc = sk_crc32c(0, h, offsetof(struct skj_fhdr, crc));
}

/* Make the data file for first_seq, complete, under its final name (I3):
 * temporary name, reserve, header, fsync, link, fsync the directory.  On
 * failure nothing is left. */
static int file_create(struct shmkit_journal *j, uint64_t first_seq, int64_t created_ns,
                       struct skj_file **out)
{
	char name[SKJ_NAME_LEN + 1], tmp[64];
	int err;

	*out = NULL;
	file_name(name, first_seq);
	snprintf(tmp, sizeof(tmp), ".tmp-%d-%s", (int)getpid(), name);
	struct skj_file *f = file_alloc(j, name);
	if (!f)
		return -ENOMEM;
	unlinkat(j->dirfd, tmp, 0); /* a stale one of ours from an earlier failure */
	int fd = openat(j->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, j->mode);
	if (fd < 0) {
		free(f);
		return sk_fail(sk_neg_errno(), "cannot create %s/%s", j->path, tmp);
	}
	err = fchmod(fd, j->mode) ? sk_neg_errno() : sk_fd_reserve(fd, j->file_size);
	if (err)
		close(fd);
	else if (!(err = file_map(f, fd, true))) {
		fhdr_fill(f->seg.map, j, first_seq, created_ns);
		if ((err = file_check(f, j, first_seq)))
			;
		else if (fsync(f->seg.fd))
			err = sk_fail(sk_neg_errno(), "fsync of %s failed", f->seg.name.path);
		else if (linkat(j->dirfd, tmp, j->dirfd, name, 0))
			err = sk_fail(sk_neg_errno(), "cannot link %s", f->seg.name.path);
		else if ((err = sync_dir(j->dirfd)))
			unlinkat(j->dirfd, name, 0);
	}
	unlinkat(j->dirfd, tmp, 0);
	if (err) {
		file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* ---- records ------------------------------------------------------------- */

static SK_COLD int rec_bad(const struct skj_file *f, size_t off, const char *why,
                           unsigned long long v)
{
	return sk_fail(-EBADMSG, "%s+%zu: %s %llu", f->seg.name.path, off, why, v);
}

/* The record at off, expected to carry seq.  1 valid (*rec filled, *next
 * is where the following one starts), 0 nothing there (free commit word,
 * or no room left in the file), -EBADMSG damage.  With full = false the
 * payload checksum is skipped (for records a seek passes over). */
static inline int rec_at(const struct skj_file *f, size_t off, uint64_t seq,
                         struct shmkit_record *rec, size_t *next, bool full)
{
	if (off > f->cap - SKJ_RHDR_SIZE)
		return 0;
	const struct skj_rec *r = (const struct skj_rec *)((const char *)f->seg.map + off);
	/* Acquire: pairs with the release store of the commit word in
	 * journal_commit(); the record's fields and payload, written before
	 * it, are visible once it is non-zero. */
	uint32_t w = sk_load_acquire(&r->commit);
	if (!w)
		return 0;
	uint32_t len = w & ~SKJ_COMMIT;
	if (SK_UNLIKELY(!(w & SKJ_COMMIT)))
		return rec_bad(f, off, "commit word without its commit bit:", w);
	if (SK_UNLIKELY(len > f->max_record || skj_pad8(len) > f->cap - off - SKJ_RHDR_SIZE))
		return rec_bad(f, off, "record length out of bounds:", len);
	uint64_t rseq = r->seq;
	if (SK_UNLIKELY(rseq != seq))
		return rec_bad(f, off, "sequence break, expected seq", (unsigned long long)seq);
	int64_t t = r->time_ns;
	const void *data = r + 1;
	if (full && SK_UNLIKELY(sk_journal_rec_crc(len, seq, t, data) != r->crc))
		return rec_bad(f, off, "checksum mismatch at seq", (unsigned long long)seq);
	rec->seq = seq;
	rec->time_ns = t;
	rec->data = data;
	rec->len = len;
	*next = off + SKJ_RHDR_SIZE + skj_pad8(len);
	return 1;
}

/* Walk the valid records of f from its start. */
static void file_scan(const struct skj_file *f, struct skj_scan *sc)
{
	struct shmkit_record rec = { 0 };
	size_t off = FIRST_OFF, next = 0;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->next_seq = f->first_seq;
	sc->last_time = f->created_ns;
	/* Bounded: each step moves off forward inside a file of cap bytes. */
	while ((r = rec_at(f, off, sc->next_seq, &rec, &next, true)) == 1) {
		off = next;
		sc->next_seq++;
		sc->records++;
		sc->last_time = rec.time_ns;
	}
	sc->end = off;
	sc->stop = r;
}

/* Bounds [*lo, *hi) of the non-zero bytes of p[0..n); false if none. */
static bool nonzero_bounds(const char *p, size_t n, size_t *lo, size_t *hi)
{
	size_t i = 0;

	while (i < n && !p[i])
		i++;
	if (i == n)
		return false;
	size_t k = n;
	while (!p[k - 1])
		k--;
	*lo = i;
	*hi = k;
	return true;
}

/* The extent [*first, *last_end) of non-zero bytes in f's mapping at or
 * after from; *first == *last_end when all of it is zero.  Holes (and
 * fallocated, never-written extents) are skipped with SEEK_DATA/SEEK_HOLE
 * so a mostly-empty 64 MiB file is not read page by page. */
static void nonzero_extent(const struct skj_file *f, size_t from, size_t *first, size_t *last_end)
{
	const size_t page = sk_page_size(), end = f->seg.map_size;
	const char *base = f->seg.map;
	size_t pos = from, lo, hi;
	bool found = false;

	*first = *last_end = end;
	while (pos < end) {
		off_t d = lseek(f->seg.fd, (off_t)pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;
		size_t seg_end = end;
		if (d >= 0) {
			pos = (size_t)d > pos ? (size_t)d : pos;
			off_t h = lseek(f->seg.fd, (off_t)pos, SEEK_HOLE);
			if (h > 0 && (size_t)h < end)
				seg_end = (size_t)h;
		}
		/* Bounded: pos advances by at least one byte per chunk. */
		while (pos < seg_end) {
			size_t chunk = page - (pos % page);
			if (chunk > seg_end - pos)
				chunk = seg_end - pos;
			if (nonzero_bounds(base + pos, chunk, &lo, &hi)) {
				if (!found)
					*first = pos + lo;
				found = true;
				*last_end = pos + hi;
			}
			pos += chunk;
		}
		if (d < 0)
			break; /* SEEK_DATA unsupported: scanned to the end */
	}
	if (!found)
		*first = *last_end = end;
}

/* Cut f at off (I2): zero every non-zero byte after it and sync, and
 * extend a truncated file back to its size.  Returns the bytes of the
 * damaged extent (0 if it was clean), or a negative error. */
static int64_t file_cut(struct skj_file *f, size_t off)
{
	size_t first, last_end;

	nonzero_extent(f, off, &first, &last_end);
	int64_t damaged = (int64_t)(last_end - first);
	if (last_end > first) {
		memset((char *)f->seg.map + first, 0, last_end - first);
		int err = shmkit_seg_sync(&f->seg, first, last_end - first, 0);
		if (err)
			return sk_fail(err, "sync of %s failed", f->seg.name.path);
	}
	if (f->seg.map_size < f->file_size) {
		int fd = f->seg.fd;
		int err = sk_fd_reserve(fd, f->file_size);
		if (!err && fsync(fd))
			err = sk_neg_errno();
		if (err)
			return err;
		munmap(f->seg.map, f->seg.map_size);
		f->seg.map = NULL;
		f->seg.fd = -1;
		if ((err = file_map(f, fd, true)))
			return err;
		f->cap = f->file_size & ~(size_t)7;
	}
	return damaged;
}

/* ---- journal.meta ----------------------------------------------------------- */

static int meta_check(struct shmkit_journal *j)
{
	struct skj_meta h;

	if (j->meta_seg.map_size < SKJ_META_SIZE)
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME ": %zu bytes, too short",
		               j->path, j->meta_seg.map_size);
	memcpy(&h, j->meta_seg.map, offsetof(struct skj_meta, pad0)); /* read once */
	if (sk_crc32c(0, &h, offsetof(struct skj_meta, crc)) != h.crc)
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME ": header checksum mismatch", j->path);
	if (h.magic != SKJ_META_MAGIC)
		return sk_fail(-EPROTO, "%s is not a shmkit journal", j->path);
	if (h.version != SKJ_VERSION || h.fingerprint != journal_fingerprint())
		return sk_fail(-EPROTO, "%s: journal format %u/%08x, this build reads %u/%08x",
		               j->path, h.version, h.fingerprint, SKJ_VERSION, journal_fingerprint());
	if (h.max_record == 0 || h.max_record > SKJ_MAX_RECORD || h.file_size > MAX_FILE_SIZE ||
	    h.file_size < FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(h.max_record))
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME ": sizes out of bounds", j->path);
	j->m = j->meta_seg.map;
	j->jid = h.journal_id;
	j->file_size = h.file_size;
	j->max_record = h.max_record;
	return 0;
}

static uint64_t random_id(void)
{
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = (uint64_t)sk_realtime_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)sk_now_ns();
	return id ? id : 1;
}

/* The fixed header of journal.meta, live state zero. */
static void meta_fill(struct skj_meta *h, uint64_t journal_id, uint64_t file_size,
                      uint32_t max_record, int64_t created_ns)
{
	memset(h, 0, sizeof(*h));
	h->magic = SKJ_META_MAGIC;
	h->version = SKJ_VERSION;
	h->fingerprint = journal_fingerprint();
	h->journal_id = journal_id;
	h->file_size = file_size;
	h->max_record = max_record;
	h->created_ns = created_ns;
	h->crc = sk_crc32c(0, h, offsetof(struct skj_meta, crc));
}

/* Write h, then zeros to the end of the page, at the start of fd (the
 * file name, in the journal directory, for errors), and fsync. */
static int meta_write(const struct shmkit_journal *j, int fd, const struct skj_meta *h,
                      const char *name)
{
	union {
		struct skj_meta m;
		char page[SKJ_META_SIZE];
	} buf;

	memset(&buf, 0, sizeof(buf));
	buf.m = *h;
	ssize_t n = pwrite(fd, &buf, sizeof(buf), 0);
	int err = 0;
	if (n != (ssize_t)sizeof(buf))
		err = n < 0 ? sk_neg_errno() : -EIO;
	else if (fsync(fd))
		err = sk_neg_errno();
	return err ? sk_fail(err, "cannot write %s/%s", j->path, name) : 0;
}

/* Make journal.meta holding h complete under a temporary name, then link
 * it in.  -EEXIST if another process linked one first (the caller opens
 * that). */
static int meta_create(struct shmkit_journal *j, const struct skj_meta *h)
{
	char tmp[64];
	int err;

	snprintf(tmp, sizeof(tmp), ".meta-%d-%llx", (int)getpid(), (unsigned long long)h->journal_id);
	int fd = openat(j->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, j->mode);
	if (fd < 0)
		return sk_fail(sk_neg_errno(), "cannot create %s/%s", j->path, tmp);
	if (fchmod(fd, j->mode))
		err = sk_neg_errno();
	else if (!(err = sk_fd_reserve(fd, SKJ_META_SIZE)) && !(err = meta_write(j, fd, h, tmp))) {
		if (linkat(j->dirfd, tmp, j->dirfd, SKJ_META_NAME, 0))
			err = errno == EEXIST ? -EEXIST : sk_fail(sk_neg_errno(), "cannot link %s/" SKJ_META_NAME, j->path);
		else
			err = sync_dir(j->dirfd);
	}
	close(fd);
	unlinkat(j->dirfd, tmp, 0);
	return err;
}

/* Map journal.meta from j->meta_seg.fd (read-write when meta_rw) and
 * check it; j->m is set once it passes. */
static int meta_map(struct shmkit_journal *j)
{
	struct shmkit_seg_opts so = { .flags = j->meta_rw ? 0 : SHMKIT_RDONLY };
	int err = sk_fd_map(&j->meta_seg, j->meta_seg.fd, &so);

	return err ? err : meta_check(j);
}

/* Open journal.meta read-write when allowed (the writer must; readers need
 * it to sleep on the event count), read-only otherwise.  On failure the
 * descriptor, if any, stays in j->meta_seg for journal_free() (repair
 * rebuilds a damaged meta through it). */
static int meta_open(struct shmkit_journal *j, bool create, bool *created)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = openat(j->dirfd, SKJ_META_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		j->meta_rw = fd >= 0;
		if (fd < 0 && errno == EACCES && !j->writer)
			fd = openat(j->dirfd, SKJ_META_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd >= 0) {
			j->meta_seg.fd = fd;
			return meta_map(j);
		}
		if (errno != ENOENT)
			return sk_fail(sk_neg_errno(), "cannot open %s/" SKJ_META_NAME, j->path);
		if (!create)
			return sk_fail(-ENOENT, "%s is not a journal (no " SKJ_META_NAME ")", j->path);
		/* Data files without their meta are a damaged journal, not a
		 * place for a new one (whose random id would disown them). */
		uint64_t *seqs;
		size_t n;
		int err = list_files(j->dirfd, &seqs, &n);
		free(seqs);
		if (err)
			return err;
		if (n)
			return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " is missing beside %zu data file%s: "
			               "repair rebuilds it", j->path, n, n == 1 ? "" : "s");
		struct skj_meta h;
		meta_fill(&h, random_id(), j->file_size, j->max_record, sk_realtime_ns());
		err = meta_create(j, &h);
		if (err && err != -EEXIST)
			return err;
		*created = !err;
	}
	return sk_fail(-EAGAIN, "%s/" SKJ_META_NAME " vanished while opening", j->path);
}

/* 1 if some open file description holds the writer lock, 0 if not. */
static int writer_locked(const struct shmkit_journal *j)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(j->meta_seg.fd, F_OFD_GETLK, &fl))
		return sk_neg_errno();
	return fl.l_type != F_UNLCK;
}

static int writer_lock(struct shmkit_journal *j)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(j->meta_seg.fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return sk_fail(sk_neg_errno(), "cannot lock %s/" SKJ_META_NAME, j->path);
	/* Relaxed: informational only; the lock is the truth.  (No j->m:
	 * repair locks a damaged meta before rebuilding it.) */
	int pid = j->m ? sk_load_relaxed(&j->m->writer_pid) : 0;
	return sk_fail(-EBUSY, "%s has a live writer (pid %d)", j->path, pid);
}

/* Announce ourselves in the meta page (informational; the lock decides). */
static void writer_announce(struct shmkit_journal *j, bool present)
{
	/* Relaxed stores: readers (stat/info) read these once each and only
	 * display them; no other data is published through them. */
	sk_store_relaxed(&j->m->writer_start, present ? sk_self_start() : 0);
	sk_store_relaxed(&j->m->durability, (uint32_t)j->durability);
	sk_store_relaxed(&j->m->writer_pid, present ? (int32_t)getpid() : 0);
	sk_store_relaxed(&j->m->next_seq_hint, j->wseq);
}

/* ---- writer ---------------------------------------------------------------- */

/* Remove ".tmp-*" data files a dead writer left (we hold the lock, so no
 * live writer is making one) and ".meta-PID-*" ones whose maker is dead. */
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
	while ((de = readdir(d))) {
		int pid = 0;
		if (!strncmp(de->d_name, ".tmp-", 5))
			unlinkat(j->dirfd, de->d_name, 0);
		else if (sscanf(de->d_name, ".meta-%d-", &pid) == 1 && pid > 0 &&
		         sk_proc_alive(pid, 0) == 0)
			unlinkat(j->dirfd, de->d_name, 0);
	}
	closedir(d);
}

static void writer_set_file(struct shmkit_journal *j, struct skj_file *f, size_t off,
                            uint64_t seq, int64_t t)
{
	j->w = f;
	j->woff = j->sync_from = off;
	j->wseq = seq;
	j->wtime = t;
	j->unsynced = 0;
	j->last_sync_ns = sk_now_ns();
}

/* Recover the last file (see the file-top essay) and position the writer
 * after its last valid record; make the first file if there is none. */
static int writer_recover(struct shmkit_journal *j)
{
	uint64_t *seqs, next_seq;
	size_t n;
	struct skj_file *f = NULL;
	int err;

	clean_temps(j);
	if ((err = list_files(j->dirfd, &seqs, &n)))
		return err;
	/* Relaxed: only we write it (we hold the lock). */
	next_seq = sk_load_relaxed(&j->m->next_seq_hint);
	while (n > 0) {
		err = file_open(j, seqs[n - 1], true, &f);
		if (err != -EBADMSG)
			break;
		/* Its header is damaged: nothing in it can be trusted. */
		char name[SKJ_NAME_LEN + 1];
		file_name(name, seqs[n - 1]);
		next_seq = seqs[--n];
		if (unlinkat(j->dirfd, name, 0) || (err = sync_dir(j->dirfd)))
			break;
	}
	free(seqs);
	if (err)
		return err;
	if (!f) {
		int64_t t = clamp_time(0);
		if ((err = file_create(j, next_seq ? next_seq : 1, t, &f)))
			return err;
		writer_set_file(j, f, FIRST_OFF, f->first_seq, t);
		return 0;
	}
	struct skj_scan sc;
	file_scan(f, &sc);
	int64_t cut = file_cut(f, sc.end);
	if (cut < 0) {
		file_close(f);
		return (int)cut;
	}
	writer_set_file(j, f, sc.end, sc.next_seq, sc.last_time);
	return 0;
}

/* Make the pending range [sync_from, woff) durable (msync MS_SYNC). */
static int writer_flush(struct shmkit_journal *j)
{
	int err = 0;

	if (j->woff > j->sync_from)
		err = shmkit_seg_sync(&j->w->seg, j->sync_from, j->woff - j->sync_from, 0);
	if (err)
		return sk_fail(err, "msync of %s failed", j->w->seg.name.path);
	j->sync_from = j->woff;
	j->unsynced = 0;
	j->last_sync_ns = sk_now_ns();
	return 0;
}

/* Retention after a roll: drop the oldest files beyond keep_files or
 * keep_bytes, never the current one.  Best effort: a failure to remove
 * leaves the file for the next roll. */
static void writer_retain(struct shmkit_journal *j)
{
	uint64_t *seqs;
	size_t n, first = 0;

	if ((!j->keep_files && !j->keep_bytes) || list_files(j->dirfd, &seqs, &n))
		return;
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		char name[SKJ_NAME_LEN + 1];
		struct stat st;
		file_name(name, seqs[i]);
		if (!fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
			total += (uint64_t)st.st_size;
	}
	while (n - first > 1 && seqs[first] < j->w->first_seq &&
	       ((j->keep_files && n - first > j->keep_files) || (j->keep_bytes && total > j->keep_bytes))) {
		char name[SKJ_NAME_LEN + 1];
		struct stat st;
		file_name(name, seqs[first]);
		if (fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) || unlinkat(j->dirfd, name, 0))
			break;
		total -= (uint64_t)st.st_size < total ? (uint64_t)st.st_size : total;
		first++;
	}
	free(seqs);
	if (first)
		sync_dir(j->dirfd);
}

/* The current file is full: sync it, make the next, wake readers. */
static SK_COLD int writer_roll(struct shmkit_journal *j)
{
	struct skj_file *f;
	int err;

	if (j->durability != SHMKIT_DUR_NONE && (err = writer_flush(j)))
		return err;
	int64_t t = clamp_time(j->wtime);
	if ((err = file_create(j, j->wseq, t, &f)))
		return err;
	file_close(j->w);
	writer_set_file(j, f, FIRST_OFF, j->wseq, t);
	/* Relaxed: a hint for a later writer that finds no file at all. */
	sk_store_relaxed(&j->m->next_seq_hint, j->wseq);
	/* Release: orders the link of the new file (done above) before the
	 * new generation; pairs with the acquire load in cur_next_file(), so
	 * a reader that sees the new generation finds the file by name. */
	sk_fetch_add(&j->m->roll_gen, 1, __ATOMIC_RELEASE);
	shmkit_ec_inc(&j->m->tail);
	writer_retain(j);
	return 0;
}

/* Durability step after a commit of need bytes at off. */
static inline int writer_durable(struct shmkit_journal *j, size_t off, size_t need)
{
	switch (j->durability) {
	case SHMKIT_DUR_ASYNC:
		return shmkit_seg_sync(&j->w->seg, off, need, SHMKIT_SYNC_ASYNC);
	case SHMKIT_DUR_SYNC:
		return writer_flush(j);
	case SHMKIT_DUR_GROUP:
		if (++j->unsynced >= j->group_records ||
		    sk_now_ns() - j->last_sync_ns >= (int64_t)j->group_ms * NS_PER_MS)
			return writer_flush(j);
		return 0;
	}
	return 0;
}

/* Write one record at the writer's position; the commit word goes last. */
static inline void journal_commit(struct shmkit_journal *j, const void *data, uint32_t len)
{
	struct skj_rec *r = (struct skj_rec *)((char *)j->w->seg.map + j->woff);
	int64_t t = clamp_time(j->wtime);

	r->seq = j->wseq;
	r->time_ns = t;
	if (len)
		memcpy(r + 1, data, len);
	r->crc = sk_journal_rec_crc(len, j->wseq, t, r + 1);
	/* Release: orders the fields and payload above before the commit
	 * word; pairs with the acquire load in rec_at() of every reader. */
	sk_store_release(&r->commit, SKJ_COMMIT | len);
	j->wtime = t;
}

int shmkit_journal_append(shmkit_journal *j, const void *data, size_t len, uint64_t *seq)
{
	if (!j || (!data && len))
		return -EINVAL;
	sk_clear_detail();
	if (!j->writer)
		return sk_fail(-EPERM, "journal not opened for writing (SHMKIT_JOURNAL_WRITE)");
	if (len > j->max_record)
		return sk_fail(-EMSGSIZE, "record of %zu bytes exceeds max_record %u", len, j->max_record);
	size_t need = SKJ_RHDR_SIZE + skj_pad8(len);
	int err;
	if (need > j->w->cap - j->woff && (err = writer_roll(j)))
		return err;
	size_t off = j->woff;
	uint64_t s = j->wseq;
	journal_commit(j, data, (uint32_t)len);
	j->woff += need;
	j->wseq++;
	/* Wake live readers (release RMW; see wait.h for the ordering). */
	shmkit_ec_inc(&j->m->tail);
	if (seq)
		*seq = s;
	if ((err = writer_durable(j, off, need)))
		return sk_fail(err, "record %llu committed but not synced", (unsigned long long)s);
	return 0;
}

int shmkit_journal_sync(shmkit_journal *j)
{
	if (!j)
		return -EINVAL;
	sk_clear_detail();
	if (!j->writer)
		return sk_fail(-EPERM, "journal not opened for writing");
	return writer_flush(j);
}

/* ---- reader cursor ------------------------------------------------------- */

static void cur_set(struct shmkit_journal *j, struct skj_file *f)
{
	file_close(j->r);
	j->r = f;
	j->roff = FIRST_OFF;
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
		int err = file_open(j, seqs[i], false, &f);
		if (err == -ENOENT)
			continue;
		if (err)
			return err;
		cur_set(j, f);
		return 1;
	}
	return 0;
}

/* At the end of the current file (or with none): move to the file that
 * continues the sequence if there is one.  1 moved, 0 nothing new, < 0
 * error.  Looks at the directory only when roll_gen moved since the last
 * look, so a reader waiting at the end makes no system call. */
static int cur_next_file(struct shmkit_journal *j)
{
	/* Acquire: pairs with the release increment in writer_roll(); a new
	 * file linked before the increment is found by the lookup below. */
	uint32_t gen = sk_load_acquire(&j->m->roll_gen);
	if (j->rlooked && gen == j->rgen)
		return 0;
	j->rlooked = true;
	j->rgen = gen;
	uint64_t *seqs;
	size_t n;
	int err = list_files(j->dirfd, &seqs, &n), r = 0;
	if (err)
		return err;
	if (!j->r) {
		r = cur_open_at(j, seqs, n, 0);
	} else {
		size_t i = 0;
		while (i < n && seqs[i] <= j->r->first_seq)
			i++;
		if (i < n && seqs[i] == j->rseq)
			r = cur_open_at(j, seqs, n, i);
		else if (i < n && j->rseq < seqs[0])
			r = cur_open_at(j, seqs, n, 0); /* ours went to retention */
		else if (i < n)
			r = sk_fail(-EBADMSG, "%s: sequence gap, seq %llu missing before file %llu",
			            j->path, (unsigned long long)j->rseq, (unsigned long long)seqs[i]);
	}
	if (r == 1)
		j->rlooked = false; /* the new file may end at once: look again */
	free(seqs);
	return r;
}

/* The next record for the cursor, skipping those a seek passes over.
 * 1 *rec filled, 0 nothing yet, < 0 error (-EBADMSG damage). */
static int cur_fetch(struct shmkit_journal *j, struct shmkit_record *rec)
{
	/* Bounded: each pass moves roff forward inside a file of bounded
	 * size, or moves to a file with a larger first seq. */
	for (;;) {
		size_t next = 0;
		int r = j->r ? rec_at(j->r, j->roff, j->rseq, rec, &next,
		                      j->rseq >= j->min_seq)
		             : 0;
		if (r < 0)
			return r;
		if (r == 0) {
			if ((r = cur_next_file(j)) <= 0)
				return r;
			continue;
		}
		j->roff = next;
		j->rseq++;
		if (rec->seq >= j->min_seq && rec->time_ns >= j->min_time)
			return 1;
	}
}

static int fetch_ready(void *arg)
{
	void **a = arg;
	return cur_fetch(a[0], a[1]);
}

int shmkit_journal_next(shmkit_journal *j, struct shmkit_record *rec, int64_t timeout_ns)
{
	if (!j || !rec)
		return -EINVAL;
	sk_clear_detail();
	if (timeout_ns == 0)
		return cur_fetch(j, rec);
	if (!j->meta_rw) {
		int r = cur_fetch(j, rec);
		return r ? r : sk_fail(-EACCES, "waiting needs write access to %s/" SKJ_META_NAME,
		                       j->path);
	}
	void *arg[2] = { j, rec };
	int waited = 0;
	int err = sk_wait_for(&j->m->tail, SHMKIT_WAIT_ADAPTIVE, sk_deadline(timeout_ns),
	                      fetch_ready, arg, &waited);
	return err ? err : 1;
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
	int err = list_files(j->dirfd, &seqs, &n);
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

	if (file_open(j, seq, false, &f))
		return INT64_MAX;
	int64_t t = f->created_ns;
	file_close(f);
	return t;
}

int shmkit_journal_seek_time(shmkit_journal *j, int64_t time_ns)
{
	uint64_t *seqs;
	size_t n;

	if (!j)
		return -EINVAL;
	sk_clear_detail();
	int err = list_files(j->dirfd, &seqs, &n);
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
	int err = file_open(j, seq, false, &f);

	if (err)
		return err;
	file_scan(f, &sc);
	file_close(f);
	*next_seq = sc.next_seq;
	return 0;
}

static void stat_writer(shmkit_journal *j, struct shmkit_journal_stat *st)
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
	st->writer_pid = writer_locked(j) == 1 && pid > 0 ? pid : 0;
}

int shmkit_journal_stat(shmkit_journal *j, struct shmkit_journal_stat *st)
{
	uint64_t *seqs, next = 0;
	size_t n;

	if (!j || !st)
		return -EINVAL;
	sk_clear_detail();
	memset(st, 0, sizeof(*st));
	int err = list_files(j->dirfd, &seqs, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		char name[SKJ_NAME_LEN + 1];
		struct stat sb;
		file_name(name, seqs[i]);
		if (!fstatat(j->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW))
			st->bytes += (uint64_t)sb.st_size;
	}
	st->files = (uint32_t)n;
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

/* ---- verify / repair -------------------------------------------------------- */

struct check {
	struct shmkit_journal_report *rep;
	bool fix, damaged, dead;  /* dead: the sequence is broken from here on */
	uint64_t expected;        /* first seq the next file must have */
};

static void check_damage(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_damage(struct check *c, const char *fmt, ...)
{
	if (c->damaged)
		return; /* report the first damage only */
	c->damaged = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->rep->where, sizeof(c->rep->where), fmt, ap);
	va_end(ap);
}

/* A file after the sequence broke: all of it is damage; repair removes it. */
static int check_drop(struct shmkit_journal *j, struct check *c, uint64_t seq)
{
	char name[SKJ_NAME_LEN + 1];
	struct stat st;

	file_name(name, seq);
	if (!fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		c->rep->damaged_bytes += (uint64_t)st.st_size;
	c->dead = true;
	if (c->fix && unlinkat(j->dirfd, name, 0) && errno != ENOENT)
		return sk_fail(sk_neg_errno(), "cannot remove %s/%s", j->path, name);
	return 0;
}

/* Check (and with fix, cut) one file that continues the sequence. */
static int check_file(struct skj_file *f, struct check *c)
{
	struct skj_scan sc;
	size_t first, last_end;

	file_scan(f, &sc);
	if (sc.stop < 0)
		check_damage(c, "%s", shmkit_errdetail());
	nonzero_extent(f, sc.end, &first, &last_end);
	if (last_end > first)
		check_damage(c, "%s+%zu: %zu non-zero bytes after the last valid record (seq %llu)",
		             f->seg.name.path, sc.end, last_end - first,
		             (unsigned long long)sc.next_seq - 1);
	if (f->seg.map_size < f->file_size)
		check_damage(c, "%s: truncated to %zu bytes of %zu", f->seg.name.path,
		             f->seg.map_size, f->file_size);
	c->rep->damaged_bytes += last_end - first;
	c->rep->valid_records += sc.records;
	if (sc.records)
		c->rep->last_valid_seq = sc.next_seq - 1;
	c->expected = sc.next_seq;
	if (c->fix && (last_end > first || f->seg.map_size < f->file_size)) {
		int64_t cut = file_cut(f, sc.end);
		if (cut < 0)
			return (int)cut;
	}
	return 0;
}

static int check_files(struct shmkit_journal *j, struct check *c)
{
	uint64_t *seqs;
	size_t n;
	int err = list_files(j->dirfd, &seqs, &n);

	for (size_t i = 0; !err && i < n; i++) {
		struct skj_file *f = NULL;
		if (c->dead || (i > 0 && seqs[i] != c->expected)) {
			if (!c->dead)
				check_damage(c, "%s: sequence gap, file starts at %llu, expected %llu",
				             j->path, (unsigned long long)seqs[i],
				             (unsigned long long)c->expected);
			err = check_drop(j, c, seqs[i]);
			continue;
		}
		err = file_open(j, seqs[i], c->fix, &f);
		if (err == -ENOENT) {
			err = 0; /* removed by retention meanwhile */
			continue;
		}
		if (err == -EBADMSG) {
			check_damage(c, "%s", shmkit_errdetail());
			err = check_drop(j, c, seqs[i]);
			continue;
		}
		if (!err)
			err = check_file(f, c);
		file_close(f);
	}
	free(seqs);
	if (!err && c->fix && c->dead)
		err = sync_dir(j->dirfd);
	return err;
}

/* ---- rebuilding journal.meta ------------------------------------------------ */

/* The header to rebuild journal.meta (what = "damaged" or "missing") with,
 * from the data files' headers: each has its own checksum and carries
 * every setting of the meta's fixed part.  Those of the oldest sound one
 * are taken.  Every sound header must name the same journal: with files
 * of two journals nothing tells which one the meta belonged to, so that
 * is refused (-EBADMSG), not guessed.  Damaged headers are skipped
 * (check_files() drops those files after); a sound one of another build
 * is -EPROTO.  next_seq_hint is the newest sound file's first seq, so a
 * writer that finds no file left after repair does not count from 1
 * again.  *src gets the oldest's name, j->mode its permissions (for a new
 * journal.meta). */
static int meta_recover(struct shmkit_journal *j, const uint64_t *seqs, size_t n,
                        const char *what, struct skj_meta *h, char src[SKJ_NAME_LEN + 1])
{
	struct skj_fhdr oldest = { 0 }, fh;
	uint64_t newest = 0;

	for (size_t i = 0; i < n; i++) {
		struct skj_file *f;
		struct stat st;
		int err = file_map_named(j, seqs[i], false, &f);
		if (!err && !(err = file_header(f, seqs[i], &fh)) && fstat(f->seg.fd, &st))
			err = sk_neg_errno();
		file_close(f);
		if (err == -EBADMSG || err == -ENOENT)
			continue; /* damaged header, or removed meanwhile */
		if (err)
			return err;
		if (!newest) {
			oldest = fh;
			file_name(src, seqs[i]);
			j->mode = st.st_mode & 0777;
		} else if (fh.journal_id != oldest.journal_id) {
			char other[SKJ_NAME_LEN + 1];
			file_name(other, seqs[i]);
			return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " %s and data files of two journals "
			               "(%s, %s): remove the foreign ones and repair again",
			               j->path, what, src, other);
		}
		newest = seqs[i];
	}
	if (!newest)
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " %s and no data file to rebuild it from",
		               j->path, what);
	meta_fill(h, oldest.journal_id, oldest.file_size, oldest.max_record, oldest.created_ns);
	h->next_seq_hint = newest;
	return 0;
}

/* Rewrite a damaged journal.meta in place, under the writer lock taken on
 * it: in place rather than by rename so the lock, and any descriptor open
 * on the file, stay on the same inode.  A crash midway leaves it damaged,
 * and repair can run again.  The live part is zeroed: no writer uses it
 * (none opens a damaged meta, and we hold the lock). */
static int meta_rewrite(struct shmkit_journal *j, const struct skj_meta *h)
{
	if (j->meta_seg.map)
		munmap(j->meta_seg.map, j->meta_seg.map_size);
	j->meta_seg.map = NULL;
	int err = meta_write(j, j->meta_seg.fd, h, SKJ_META_NAME);
	if (err || (err = meta_map(j)))
		return err;
	/* A reader that opened before the damage may sleep on the event
	 * count just zeroed, its waiter flag gone with it, so no writer's
	 * increment would wake it: wake every sleeper on the word, whatever
	 * its value; each re-reads the count and sleeps again if need be. */
	sk_futex_wake(&j->m->tail.word, -1);
	return 0;
}

/* Link a new journal.meta holding h, then open and lock it as any repair
 * does.  -EEXIST from meta_create (another process linked one meanwhile):
 * that one is opened instead, and *made stays false. */
static int meta_relink(struct shmkit_journal *j, const struct skj_meta *h, bool *made)
{
	bool created = false;
	int err = meta_create(j, h);

	*made = !err;
	if (!err || err == -EEXIST)
		err = meta_open(j, false, &created);
	return err ? err : writer_lock(j);
}

/* journal.meta is damaged (err -EBADMSG: open, mapped, j->m unset) or
 * missing (-ENOENT).  Missing with no data file either is no journal:
 * -ENOENT, as ever.  Otherwise verify reports the damage and returns 0
 * with j->m unset (nothing more to check); repair rebuilds the meta from
 * the data files and returns 0 with j->m set and the writer lock held, so
 * the files are checked next.  A rebuild that cannot be done changes
 * nothing and is -EBADMSG, the report saying why. */
static int meta_repair(struct shmkit_journal *j, struct check *c, int err)
{
	const bool missing = err == -ENOENT;
	char why[256], src[SKJ_NAME_LEN + 1];
	struct skj_meta h;
	bool made = false;
	uint64_t *seqs;
	size_t n;

	snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	if ((err = list_files(j->dirfd, &seqs, &n)))
		return err;
	if (missing && !n)
		err = sk_fail(-ENOENT, "%s", why);
	else if (!missing && c->fix)
		err = writer_lock(j); /* first: a live writer is -EBUSY, not damage */
	if (err) {
		free(seqs);
		return err;
	}
	if (missing)
		check_damage(c, "%s/" SKJ_META_NAME ": missing (data files: %zu)", j->path, n);
	else
		check_damage(c, "%s", why);
	if (c->fix && !(err = meta_recover(j, seqs, n, missing ? "missing" : "damaged", &h, src)))
		err = missing ? meta_relink(j, &h, &made) : meta_rewrite(j, &h);
	free(seqs);
	if (err == -EBADMSG)
		snprintf(c->rep->where, sizeof(c->rep->where), "%s", shmkit_errdetail());
	else if (!err && c->fix && (made || !missing))
		snprintf(c->rep->meta_rebuilt_from, sizeof(c->rep->meta_rebuilt_from), "%s", src);
	return err;
}

static int journal_check(const char *path, struct shmkit_journal_report *rep, bool fix);

int shmkit_journal_verify(const char *path, struct shmkit_journal_report *r)
{
	return journal_check(path, r, false);
}

int shmkit_journal_repair(const char *path, struct shmkit_journal_report *r)
{
	return journal_check(path, r, true);
}

/* ---- open / close ---------------------------------------------------------- */

static void journal_free(shmkit_journal *j)
{
	file_close(j->w);
	file_close(j->r);
	sk_fd_close(&j->meta_seg); /* closing the fd drops the writer lock */
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j);
}

static shmkit_journal *journal_alloc(const char *path)
{
	shmkit_journal *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->dirfd = -1;
	j->meta_seg.fd = -1;
	j->meta_seg.shmid = -1;
	j->meta_seg.name.backend = SHMKIT_FILE;
	snprintf(j->path, sizeof(j->path), "%s", path);
	snprintf(j->meta_seg.name.path, sizeof(j->meta_seg.name.path), "%s/" SKJ_META_NAME, path);
	j->min_time = INT64_MIN;
	return j;
}

static int journal_check(const char *path, struct shmkit_journal_report *rep, bool fix)
{
	struct check c = { .rep = rep, .fix = fix };
	bool created = false;
	int err;

	if (!path || !*path || !rep)
		return -EINVAL;
	sk_clear_detail();
	memset(rep, 0, sizeof(*rep));
	if (strlen(path) >= sizeof(((shmkit_journal *)0)->path))
		return sk_fail(-ENAMETOOLONG, "journal path too long");
	shmkit_journal *j = journal_alloc(path);
	if (!j)
		return -ENOMEM;
	j->writer = fix;
	j->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0)
		err = sk_fail(sk_neg_errno(), "cannot open journal directory %s", path);
	else if ((err = meta_open(j, false, &created)) == -EBADMSG || err == -ENOENT)
		err = meta_repair(j, &c, err);
	else if (!err && fix)
		err = writer_lock(j);
	if (!err && j->m) /* journal.meta is sound (with fix, perhaps rebuilt) */
		err = check_files(j, &c);
	journal_free(j);
	/* Repair stopped by something other than damage (a live writer, an
	 * I/O error) says what stopped it. */
	if (c.damaged && (!fix || err == -EBADMSG))
		return sk_fail(-EBADMSG, "%s", rep->where);
	return err;
}

static int open_opts(shmkit_journal *j, const struct shmkit_journal_opts *o)
{
	if (o->flags & ~(SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE))
		return sk_fail(-EINVAL, "unknown journal flags 0x%x", o->flags);
	if ((o->flags & SHMKIT_JOURNAL_CREATE) && !(o->flags & SHMKIT_JOURNAL_WRITE))
		return sk_fail(-EINVAL, "SHMKIT_JOURNAL_CREATE needs SHMKIT_JOURNAL_WRITE");
	if (o->durability < SHMKIT_DUR_NONE || o->durability > SHMKIT_DUR_GROUP)
		return sk_fail(-EINVAL, "durability %d is not a policy", o->durability);
	if (o->mode & ~0777u)
		return sk_fail(-EINVAL, "mode %o is not a permission mode", o->mode);
	if (o->max_record > SKJ_MAX_RECORD)
		return sk_fail(-EINVAL, "max_record %u exceeds %u", o->max_record, SKJ_MAX_RECORD);
	j->writer = o->flags & SHMKIT_JOURNAL_WRITE;
	j->durability = o->durability;
	j->group_records = o->group_records ? o->group_records : DEF_GROUP_RECORDS;
	j->group_ms = o->group_ms ? o->group_ms : DEF_GROUP_MS;
	j->keep_files = o->keep_files;
	j->keep_bytes = o->keep_bytes;
	j->mode = o->mode ? o->mode : 0600;
	j->max_record = o->max_record ? o->max_record : DEF_MAX_RECORD;
	size_t page = sk_page_size(), fs = o->file_size ? o->file_size : DEF_FILE_SIZE;
	if (fs > MAX_FILE_SIZE)
		return sk_fail(-EINVAL, "file_size %zu exceeds %llu", fs, MAX_FILE_SIZE);
	j->file_size = (fs + page - 1) & ~(page - 1);
	if (j->file_size < FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(j->max_record))
		return sk_fail(-EINVAL, "file_size %zu cannot hold a record of max_record %u bytes",
		               fs, j->max_record);
	return 0;
}

/* Make the directory (CREATE); 1 if we made it. */
static int make_dir(const shmkit_journal *j, unsigned flags)
{
	if (!(flags & SHMKIT_JOURNAL_CREATE))
		return 0;
	mode_t dmode = j->mode | ((j->mode & 0444) >> 2); /* x wherever r */
	if (mkdir(j->path, dmode) == 0) {
		chmod(j->path, dmode); /* umask must not narrow it */
		return 1;
	}
	return errno == EEXIST ? 0 : sk_fail(sk_neg_errno(), "cannot create directory %s", j->path);
}

/* Undo a failed open of a journal this call created, then free j. */
static void open_undo(shmkit_journal *j, bool made_dir, bool made_meta)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", j->path);
	if (made_meta && j->dirfd >= 0) {
		if (j->w) {
			char name[SKJ_NAME_LEN + 1];
			file_name(name, j->w->first_seq);
			unlinkat(j->dirfd, name, 0);
		}
		unlinkat(j->dirfd, SKJ_META_NAME, 0);
	}
	journal_free(j);
	if (made_dir)
		rmdir(path);
}

/* Take the lock, recover, announce; wake readers waiting for a file. */
static int writer_start(shmkit_journal *j)
{
	int err = writer_lock(j);

	if (!err)
		err = writer_recover(j);
	if (err)
		return err;
	writer_announce(j, true);
	/* Release: the file recovery may have made is linked; pairs with the
	 * acquire load in cur_next_file() of a reader waiting for a file. */
	sk_fetch_add(&j->m->roll_gen, 1, __ATOMIC_RELEASE);
	shmkit_ec_inc(&j->m->tail);
	return 0;
}

static const struct shmkit_journal_opts default_opts;

int shmkit_journal_open(shmkit_journal **out, const char *path,
                        const struct shmkit_journal_opts *opts)
{
	bool made_meta = false;
	int made_dir = 0, err;

	if (!out || !path || !*path)
		return -EINVAL;
	*out = NULL;
	sk_clear_detail();
	if (strlen(path) >= sizeof(((shmkit_journal *)0)->path))
		return sk_fail(-ENAMETOOLONG, "journal path too long");
	const struct shmkit_journal_opts *o = opts ? opts : &default_opts;
	shmkit_journal *j = journal_alloc(path);
	if (!j)
		return -ENOMEM;
	if (!(err = open_opts(j, o)) && (made_dir = make_dir(j, o->flags)) >= 0) {
		j->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (j->dirfd < 0)
			err = sk_fail(sk_neg_errno(), "cannot open journal directory %s", path);
		else if (!(err = meta_open(j, o->flags & SHMKIT_JOURNAL_CREATE, &made_meta)) && j->writer)
			err = writer_start(j);
	} else if (!err) {
		err = made_dir;
		made_dir = 0;
	}
	if (err) {
		open_undo(j, made_dir > 0, made_meta && err != -EBUSY);
		return err;
	}
	*out = j;
	return 0;
}

int shmkit_journal_close(shmkit_journal *j)
{
	int err = 0;

	if (!j)
		return 0;
	sk_clear_detail();
	if (j->writer) {
		if (j->durability != SHMKIT_DUR_NONE)
			err = writer_flush(j);
		writer_announce(j, false);
	}
	journal_free(j);
	return err;
}
