/*
 * journal.c - a durable, append-only log of records in memory-mapped
 * files: one writer at a time, any number of readers in any processes,
 * crash recovery on open, repair that keeps every intact record.
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
 * is -ENOSPC when the file is made, never SIGBUS later; under SYNC and
 * GROUP the writer also writes zeros a MiB ahead of itself, so its syncs
 * find written blocks: writer_fill()):
 *
 *   off  size  field
 *     0     8  magic        "SKJFILE\1"
 *     8     4  version      1, or 2 for a file holding a hole (below)
 *    12     4  fingerprint  hash of the record/header layout and endianness
 *    16     8  journal_id   random, the same in every file of one journal
 *    24     8  first_seq    equals the number in the file's name
 *    32     8  file_size
 *    40     4  max_record   largest payload this journal accepts
 *    44     4  copy_of      low half: the id of the journal this one is a
 *                           copy of (0: none; shmkit_journal_set_copy_of)
 *    48     8  created_ns   CLOCK_REALTIME (clamped, see "time" below)
 *    56     4  copy_of      high half
 *    60     4  crc          CRC-32C of bytes 0..59
 *    64   ...  records, back to back, each 8-aligned:
 *
 *          0  4  commit     0 = free; SKJ_COMMIT (bit 31) | payload length,
 *                           or, for a hole, SKJ_COMMIT | SKJ_HOLE (bit 30)
 *                           | length
 *          4  4  crc        CRC-32C of (commit word without SKJ_COMMIT u32,
 *                           seq u64, time_ns or count i64, payload with
 *                           its padding); for a record the first field is
 *                           just its length
 *          8  8  seq        first_seq, first_seq + 1, ... with no gap
 *         16  8  time_ns    CLOCK_REALTIME at append, never decreasing
 *                           (a hole: count, the seqs it stands for)
 *         24  .  payload    len bytes, zero-padded to a multiple of 8
 *
 *   After the last record, every byte up to file_size is zero.
 *
 * The header checksum tells damage from incompatibility: a header whose
 * CRC fails is damage (repairable: the header holds nothing journal.meta
 * and the name do not; the records have checksums of their own); a
 * header whose CRC holds but whose version or fingerprint is unknown was
 * written by another build (-EPROTO; never touched).  This is why data
 * files are mapped directly (sk_fd_* helpers of the segment layer, and
 * shmkit_seg_sync for msync) rather than as managed segments: the segment
 * header has no checksum, so a flipped bit in its version would pass for
 * an incompatible build, and its INIT/READY handshake is unnecessary for
 * files that are published complete by link(2).
 *
 * journal.meta (struct skj_meta): bytes 0..63 are fixed at creation
 * (magic "SKJMETA\1", version, fingerprint, journal_id, file_size,
 * max_record, copy_of in two halves at 36 and 48, created_ns, CRC-32C of
 * bytes 0..51); the rest is live state
 * of the current writer: its pid, start time and durability (for `info`,
 * never trusted), a next-sequence hint, the tail event count and the roll
 * generation.  The meta file is also the lock file.
 *
 * ---- Holes ----------------------------------------------------------------
 *
 * A hole is a record repair writes where damage was, and append_at where
 * a replica's seqs jump (its leader has a hole there, or lost records to
 * retention): the same header, SKJ_HOLE in its commit word, seq its first
 * missing seq, count (in place of time_ns) how many seqs it stands for, a
 * zero payload covering the damaged bytes (append_at's: none), a checksum
 * like any record's.  Readers skip it: the next
 * record returned shows the jump in seq.  Verify counts holes, not as
 * damage.  A hole longer than a length field holds is followed by
 * fillers (holes of count 0).  Seqs missing between two files get a file
 * of their own, named for the first, holding one hole: every data file
 * still starts at its name's seq and continues the previous one (I1).
 *
 * Versions: a file holding a hole says version 2 in its header, written
 * (and synced) before the first hole.  A build that knows no holes reads
 * one as damage, and a writer of that build would cut everything after
 * it: with version 2 such a build refuses the file (-EPROTO) instead, and
 * deletes nothing.  Every other file, and journal.meta, stays version 1,
 * so a journal that never needed a repair is still shared with builds
 * before holes.  The layout did not change: the fingerprint is the same.
 *
 * ---- Invariants -----------------------------------------------------------
 *
 *  I1  Record k+1 starts where record k ends; its seq is k's seq + 1 (k's
 *      seq + count after a hole); the first record of a file has seq ==
 *      first_seq.  A file's first_seq is the seq after the previous file's
 *      last record.
 *  I2  A commit word is written once, last, with release; the writer never
 *      changes a committed record (repair replaces damaged bytes by a hole,
 *      under the writer lock).  Everything after the last record of a file
 *      is zero (recovery re-establishes this before appending).
 *  I3  Files appear only complete: made under a temporary name, filled,
 *      fsynced, then link(2)ed to their final name, and the directory
 *      fsynced.  A crash leaves at most a stray ".tmp-*" file, removed by
 *      the next writer.
 *  I4  time_ns never decreases along the journal: the writer stamps
 *      max(CLOCK_REALTIME, previous stamp) (append_at: max(the stamp
 *      given, previous stamp)), and a new file's created_ns is such a
 *      stamp, that of the record that made the roll.  A backwards clock step therefore shows as repeated
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
 *
 * ---- Crash and recovery ---------------------------------------------------
 *
 * What survives (commit = the record is visible to readers):
 *   process crash, any policy: every committed record (the page cache
 *     holds the mapping's pages); a record being written is invisible
 *     (its commit word is still 0) or, at worst, complete.
 *   power loss or kernel crash:
 *     SYNC   every record whose append returned (fdatasync of its
 *            file before returning; writer_flush() argues why that
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
 *
 * shmkit_journal_verify() checks every file and reports the first damage,
 * the intact records and exactly the seqs repair would drop, without
 * writing.  shmkit_journal_repair() takes the writer lock and keeps every
 * intact record: damage followed by intact records in a file becomes a
 * hole for the seqs between; a file's tail after its last valid record is
 * cut; seqs in no file get a hole file; a damaged header is written anew
 * (settings from journal.meta, created_ns from the first intact record)
 * if anything in the file is intact, the file removed if nothing is (and
 * a file overlapping the one before it is removed).  The report lists the
 * dropped seqs; bytes that name none (a torn tail, a file of garbage)
 * count as damaged bytes.  Then roll_gen and the event count move, so
 * readers look again.  A reader may see a hole being written as "nothing
 * yet" for a moment (its commit word is cleared first, set last).
 *
 * A damaged journal.meta (checksum, size; or missing beside data files)
 * makes the journal unopenable (-EBADMSG).  Repair rebuilds it: its fixed
 * part is in every data file header too, under that header's own
 * checksum, so it is taken from the oldest sound one (files of two
 * journals are refused, not guessed between).  A damaged meta is locked
 * first (the lock works whatever the file holds), then rewritten in place
 * and fsynced, its live state zeroed; a missing one is made like a new
 * journal's.  Then the files are repaired as above.
 *
 * Model: models/journal.pml (make models; SPIN) checks the commit (J1-J3),
 * the roll (J4-J7), the follower (F1-F7, cur_wait) and a writer dying
 * before any step, replaced by one that recovers (J8): records in order
 * without gap or repeat, never torn, no damage reported in a sound
 * journal, nothing committed lost, no lost wake-up.  Comments "model:
 * journal.pml STEP" name the step an atomic stands for; SPIN's
 * interleavings are sequentially consistent, so where they say "SC in the
 * model" the C11 order used (the release/acquire pairs) is assumed, not
 * checked.  Not modelled: durability (msync, fsync, power loss),
 * retention, repair and holes (append_at's too), seek, time stamps.
 *
 * Caveat: an intact record is recognised after damage by its checksum and
 * seq alone.  A payload that embeds records of this journal verbatim can
 * therefore, if damage lands just before it, pass for the records it
 * embeds.
 */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "waitfd.h"
#include "seg.h"
#include "wait.h"

#define DEF_FILE_SIZE (64u << 20)
#define DEF_MAX_RECORD (1u << 20)
#define DEF_GROUP_RECORDS 64u
#define DEF_GROUP_MS 10u
#define MAX_FILE_SIZE (1ULL << 40)
#define FIRST_OFF SKJ_FHDR_SIZE
#define NS_PER_MS 1000000LL
#define WAIT_SLICE_NS (100 * NS_PER_MS) /* longest futex wait before a recheck */
/* The most one hole record spans: its header and the largest length. */
#define HOLE_SPAN_MAX (SKJ_RHDR_SIZE + (SKJ_LEN_MASK & ~(size_t)7))

/* One mapped data file. */
struct skj_file {
	shmkit_seg seg;          /* fd, map, map_size; file backend for msync */
	uint64_t first_seq;
	size_t cap;              /* records end here: min(file_size, mapped) */
	size_t file_size;        /* from the header */
	uint32_t max_record;
	int64_t created_ns;
};

/* Result of walking a file's records (and holes) from a record's start. */
struct skj_scan {
	size_t end;              /* offset after the last valid one */
	uint64_t next_seq;       /* seq after it */
	uint64_t records;        /* valid records (not holes) */
	uint64_t last_seq;       /* of the last valid record, 0 if none */
	uint64_t holes, hole_seqs; /* holes passed, and the seqs they stand for */
	int64_t last_time;       /* of the last record (created_ns if none) */
	int stop;                /* 0 clean end, -EBADMSG stopped at damage */
};

struct shmkit_journal {
	int dirfd;
	char path[PATH_MAX - 32];  /* room left for "/" and a file name */
	shmkit_seg meta_seg;     /* journal.meta, mapped (RW unless refused) */
	struct skj_meta *m;
	bool meta_rw;
	uint64_t jid;
	uint64_t copy_of;        /* journal.meta's, as this handle last knew it */
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
	size_t filled;           /* SYNC, GROUP: w's blocks below this are
	                            written, not unwritten extents (writer_fill) */
	size_t started;          /* ASYNC: write-back of w started below this */
	uint32_t unsynced;       /* records since the last sync (GROUP) */
	int64_t last_sync_ns;    /* CLOCK_MONOTONIC of the last sync (GROUP) */
	int wb_err;              /* a write-back failed (writer_wb_failed): sticky */
	/* reader cursor */
	struct skj_file *r;
	size_t roff;
	uint64_t rseq;
	bool rlooked;            /* looked for the next file at roll_gen rgen */
	uint32_t rgen;
	uint64_t min_seq;        /* next() skips records before these */
	int64_t min_time;
	struct sk_waitfd *wfd;   /* shmkit_journal_fd(), NULL until asked */
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

uint32_t sk_journal_rec_crc(uint32_t word, uint64_t seq, int64_t time_ns,
                            const void *payload)
{
	unsigned char h[20];

	memcpy(h, &word, 4);
	memcpy(h + 4, &seq, 8);
	memcpy(h + 12, &time_ns, 8);
	return sk_crc32c(sk_crc32c(0, h, sizeof(h)), payload, skj_pad8(word & SKJ_LEN_MASK));
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
	f->seg.lock_fd = -1;
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
	if ((h->version != SKJ_VERSION && h->version != SKJ_VERSION_HOLES) ||
	    h->fingerprint != journal_fingerprint())
		return sk_fail(-EPROTO, "%s: format version %u/%08x, this build reads %u-%u/%08x", p,
		               h->version, h->fingerprint, SKJ_VERSION, SKJ_VERSION_HOLES,
		               journal_fingerprint());
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
	/* Every file of a journal has the max_record of its journal.meta: a
	 * smaller one would have writer recovery cut valid records as too
	 * long, a larger one let records past the journal's limit through. */
	if (h.max_record != j->max_record)
		return sk_fail(-EBADMSG, "%s: header says max_record %u, journal.meta %u",
		               f->seg.name.path, h.max_record, j->max_record);
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

/* Open the data file for first_seq whose header is damaged, taking the
 * journal's settings for the header's, to look for records inside.  cap
 * is at least FIRST_OFF, so cap - SKJ_RHDR_SIZE cannot wrap; the record
 * walkers read only records ending at or below cap, all inside the
 * mapping then, and find none in a file too short to hold one. */
static int file_open_assumed(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                             struct skj_file **out)
{
	int err = file_map_named(j, first_seq, rw, out);

	if (err)
		return err;
	struct skj_file *f = *out;
	size_t cap = (f->seg.map_size < j->file_size ? f->seg.map_size : j->file_size) & ~(size_t)7;
	f->first_seq = first_seq;
	f->file_size = j->file_size;
	f->max_record = j->max_record;
	f->created_ns = 0;
	f->cap = cap < FIRST_OFF ? FIRST_OFF : cap;
	return 0;
}

/* copy_of in a header's two halves (struct skj_fhdr, struct skj_meta). */
static uint64_t copy_join(uint32_t lo, uint32_t hi)
{
	return (uint64_t)hi << 32 | lo;
}

static void fhdr_fill(struct skj_fhdr *h, const struct shmkit_journal *j, uint64_t first_seq,
                      int64_t created_ns, uint32_t version)
{
	memset(h, 0, sizeof(*h));
	h->magic = SKJ_FILE_MAGIC;
	h->version = version;
	h->fingerprint = journal_fingerprint();
	h->journal_id = j->jid;
	h->copy_lo = (uint32_t)j->copy_of;
	h->copy_hi = (uint32_t)(j->copy_of >> 32);
	h->first_seq = first_seq;
	h->file_size = j->file_size;
	h->max_record = j->max_record;
	h->created_ns = created_ns;
	h->crc = sk_crc32c(0, h, offsetof(struct skj_fhdr, crc));
}

/* fsync the complete file f, made under tmp, link it to name, and fsync
 * the directory (I3); on failure the name is not left behind. */
static int file_publish(struct shmkit_journal *j, struct skj_file *f, const char *tmp,
                        const char *name)
{
	int err = 0;

	if (fsync(f->seg.fd))
		err = sk_fail(sk_neg_errno(), "fsync of %s failed", f->seg.name.path);
	else if (linkat(j->dirfd, tmp, j->dirfd, name, 0))
		err = sk_fail(sk_neg_errno(), "cannot link %s", f->seg.name.path);
	else if ((err = sync_dir(j->dirfd)))
		unlinkat(j->dirfd, name, 0);
	return err;
}

/* Write one hole over [off, off + span) of f (span a multiple of 8, at
 * least a record header, at most HOLE_SPAN_MAX) standing for count seqs
 * from seq: commit word cleared, the rest zeroed, header and checksum
 * written, the commit word last. */
static void hole_put(struct skj_file *f, size_t off, size_t span, uint64_t seq, uint64_t count)
{
	struct skj_rec *r = (struct skj_rec *)((char *)f->seg.map + off);
	uint32_t word = SKJ_HOLE | (uint32_t)(span - SKJ_RHDR_SIZE);

	/* Relaxed: publishes nothing; a reader at off sees the damage that
	 * was there, or nothing, until the release store below. */
	sk_store_relaxed(&r->commit, 0);
	memset((char *)r + sizeof(r->commit), 0, span - sizeof(r->commit));
	r->seq = seq;
	r->count = count;
	r->crc = sk_journal_rec_crc(word, seq, (int64_t)count, r + 1);
	/* Release: orders the hole's fields and zeroed payload before its
	 * commit word; pairs with the acquire load in rec_parse(). */
	sk_store_release(&r->commit, SKJ_COMMIT | word);
}

/* The span of the first of the holes that cover n bytes: all of them if
 * one length field holds them, else as much as one does while leaving at
 * least a record header's worth for the next. */
static size_t hole_span(size_t n)
{
	if (n <= HOLE_SPAN_MAX)
		return n;
	return n - HOLE_SPAN_MAX >= SKJ_RHDR_SIZE ? HOLE_SPAN_MAX : HOLE_SPAN_MAX - SKJ_RHDR_SIZE;
}

/* Mark [off, end) of f (8-aligned, at least a record header) as a hole
 * standing for count seqs from seq: one hole record, or, past what a
 * length field holds, fillers after it standing for no seq.  The first is
 * committed last, so that no reader reaches a filler before it. */
static void hole_mark(struct skj_file *f, size_t off, size_t end, uint64_t seq, uint64_t count)
{
	size_t first = hole_span(end - off);

	/* Bounded: each filler covers at least a record header of the span. */
	for (size_t o = off + first; o < end;) {
		size_t span = hole_span(end - o);
		hole_put(f, o, span, seq + count, 0);
		o += span;
	}
	hole_put(f, off, first, seq, count);
}

/* Make the data file for first_seq, complete, under its final name (I3):
 * temporary name, reserve, header, fsync, link, fsync the directory.  With
 * hole != 0 it holds one hole standing for that many seqs (repair marks a
 * gap between files so).  On failure nothing is left. */
static int file_create(struct shmkit_journal *j, uint64_t first_seq, int64_t created_ns,
                       uint64_t hole, struct skj_file **out)
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
		fhdr_fill(f->seg.map, j, first_seq, created_ns, hole ? SKJ_VERSION_HOLES : SKJ_VERSION);
		err = file_check(f, j, first_seq);
		if (!err && hole)
			hole_put(f, FIRST_OFF, SKJ_RHDR_SIZE, first_seq, hole);
		if (!err)
			err = file_publish(j, f, tmp, name);
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

/* A record or hole as found in a file. */
struct rec_view {
	uint64_t seq;
	uint64_t adv;            /* seqs it stands for: 1, or a hole's count */
	int64_t time_ns;         /* a record's (not a hole's) */
	const void *data;
	uint32_t len;
	bool hole;
	size_t next;             /* where the following one starts */
};

/* Why the thing at an offset is not a valid record (rec_parse). */
enum { RB_COMMIT = -1, RB_LEN = -2, RB_SEQ = -3, RB_CRC = -4, RB_COUNT = -5 };

/* The record or hole at off, expected to carry seq, checked without a
 * word of detail (resync tries many offsets).  1 valid (*v filled), 0
 * nothing there (free commit word, or no room left in the file), RB_*
 * damage.  With full = false a record's payload checksum is skipped (for
 * records a seek passes over); a hole's is always checked, since its
 * count decides where reading goes on.  Every field is read once and
 * bounded before use. */
static inline int rec_parse(const struct skj_file *f, size_t off, uint64_t seq,
                            struct rec_view *v, bool full)
{
	if (off > f->cap - SKJ_RHDR_SIZE)
		return 0;
	const struct skj_rec *r = (const struct skj_rec *)((const char *)f->seg.map + off);
	/* Acquire: pairs with the release store of the commit word in
	 * journal_commit() (a hole's: hole_put()); the fields and payload
	 * written before it are visible once it is non-zero.  model:
	 * journal.pml F1 (the reads below: F2), J8 in a recovering writer's
	 * scan (SC in the model). */
	uint32_t w = sk_load_acquire(&r->commit);
	if (!w)
		return 0;
	uint32_t len = w & SKJ_LEN_MASK;
	bool hole = w & SKJ_HOLE;
	if (SK_UNLIKELY(!(w & SKJ_COMMIT)))
		return RB_COMMIT;
	if (SK_UNLIKELY((!hole && len > f->max_record) ||
	                skj_pad8(len) > f->cap - off - SKJ_RHDR_SIZE))
		return RB_LEN;
	if (SK_UNLIKELY(r->seq != seq))
		return RB_SEQ;
	int64_t t = r->time_ns;
	if ((full || hole) && SK_UNLIKELY(sk_journal_rec_crc(w & ~SKJ_COMMIT, seq, t, r + 1) != r->crc))
		return RB_CRC;
	v->adv = hole ? (uint64_t)t : 1;
	if (SK_UNLIKELY(hole && v->adv > UINT64_MAX - seq))
		return RB_COUNT;
	v->seq = seq;
	v->time_ns = t;
	v->data = r + 1;
	v->len = len;
	v->hole = hole;
	v->next = off + SKJ_RHDR_SIZE + skj_pad8(len);
	return 1;
}

static SK_COLD void rec_bad(const struct skj_file *f, size_t off, int why, uint64_t seq)
{
	static const char *const text[] = {
		[-RB_COMMIT] = "commit word without its commit bit at seq",
		[-RB_LEN] = "record length out of bounds at seq",
		[-RB_SEQ] = "sequence break, expected seq",
		[-RB_CRC] = "checksum mismatch at seq",
		[-RB_COUNT] = "hole count out of bounds at seq",
	};
	sk_fail(-EBADMSG, "%s+%zu: %s %llu", f->seg.name.path, off, text[-why],
	        (unsigned long long)seq);
}

/* rec_parse, saying what is wrong: 1, 0, or -EBADMSG (detail set). */
static inline int rec_at(const struct skj_file *f, size_t off, uint64_t seq,
                         struct rec_view *v, bool full)
{
	int r = rec_parse(f, off, seq, v, full);
	if (SK_UNLIKELY(r < 0)) {
		rec_bad(f, off, r, seq);
		return -EBADMSG;
	}
	return r;
}

/* Walk the valid records and holes of f from (off, seq), where a record
 * starts; sc->stop is rec_at's verdict where the walk ended. */
static void file_scan_from(const struct skj_file *f, size_t off, uint64_t seq,
                           struct skj_scan *sc)
{
	struct rec_view v;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->next_seq = seq;
	sc->last_time = f->created_ns;
	/* Bounded: each step moves off forward inside a file of cap bytes. */
	while ((r = rec_at(f, off, sc->next_seq, &v, true)) == 1) {
		off = v.next;
		sc->next_seq += v.adv;
		if (v.hole) {
			sc->holes++;
			sc->hole_seqs += v.adv;
			continue;
		}
		sc->records++;
		sc->last_seq = v.seq;
		sc->last_time = v.time_ns;
	}
	sc->end = off;
	sc->stop = r;
}

static void file_scan(const struct skj_file *f, struct skj_scan *sc)
{
	file_scan_from(f, FIRST_OFF, f->first_seq, sc);
}

/* After damage at off, where seq was expected: the first intact record or
 * hole in f before byte end, told by its checksum.  Every 8-aligned
 * offset is tried whose record could follow: at off itself seq, further
 * on a larger seq, by at most one per record header's worth of bytes
 * passed (the records in between).  1 found (*at, *v), 0 none.  Bounded:
 * at most (end - off) / 8 tries, each reading inside the file. */
static int rec_resync(const struct skj_file *f, size_t off, uint64_t seq, size_t end,
                      size_t *at, struct rec_view *v)
{
	const char *base = f->seg.map;

	for (size_t o = off; o < end && o <= f->cap - SKJ_RHDR_SIZE; o += 8) {
		const struct skj_rec *r = (const struct skj_rec *)(base + o);
		/* Relaxed: a filter only; rec_parse() loads it again with
		 * acquire before trusting anything. */
		if (!(sk_load_relaxed(&r->commit) & SKJ_COMMIT))
			continue;
		uint64_t s = r->seq;
		if (o == off ? s != seq : s <= seq || s - seq > (o - off) / SKJ_RHDR_SIZE)
			continue;
		if (rec_parse(f, o, s, v, true) == 1) {
			*at = o;
			return 1;
		}
	}
	return 0;
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

/* Cut f (I2): zero its non-zero bytes [first, last_end) (those after
 * the last valid record, nonzero_extent) and sync, and extend a
 * truncated file back to its size.  Returns the bytes zeroed, or a
 * negative error. */
static int64_t file_cut_range(struct skj_file *f, size_t first, size_t last_end)
{
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
		sk_fd_unmap(&f->seg);
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
	j->copy_of = copy_join(h.copy_lo, h.copy_hi);
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
static void meta_fill(struct skj_meta *h, uint64_t journal_id, uint64_t copy_of,
                      uint64_t file_size, uint32_t max_record, int64_t created_ns)
{
	memset(h, 0, sizeof(*h));
	h->magic = SKJ_META_MAGIC;
	h->version = SKJ_VERSION;
	h->fingerprint = journal_fingerprint();
	h->journal_id = journal_id;
	h->copy_lo = (uint32_t)copy_of;
	h->copy_hi = (uint32_t)(copy_of >> 32);
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
 * that).  While the temporary file exists we hold the directory's flock
 * shared: a writer cleaning up (clean_temps) leaves it alone meanwhile,
 * and finds it orphaned once the kernel has dropped our flock, whatever
 * becomes of our pid (which names the file, and nothing more). */
static int meta_create(struct shmkit_journal *j, const struct skj_meta *h)
{
	char tmp[64];
	int err;

	/* A file system without flock refuses the writer's exclusive one
	 * too, so no temporary meta is ever removed there: go on unlocked. */
	bool locked = flock(j->dirfd, LOCK_SH) == 0;
	snprintf(tmp, sizeof(tmp), ".meta-%d-%llx", (int)getpid(), (unsigned long long)h->journal_id);
	int fd = openat(j->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, j->mode);
	if (fd < 0) {
		err = sk_fail(sk_neg_errno(), "cannot create %s/%s", j->path, tmp);
		if (locked)
			flock(j->dirfd, LOCK_UN);
		return err;
	}
	if (fchmod(fd, j->mode))
		err = sk_neg_errno();
	else if (!(err = sk_fd_reserve(fd, SKJ_META_SIZE)) && !(err = meta_write(j, fd, h, tmp))) {
		if (linkat(j->dirfd, tmp, j->dirfd, SKJ_META_NAME, 0))
			err = errno == EEXIST ? -EEXIST : sk_fail(sk_neg_errno(), "cannot link %s/" SKJ_META_NAME, j->path);
		else if ((err = sync_dir(j->dirfd)))
			/* Not created, so the caller will not undo it: take
			 * the name back, as file_publish does (the fault
			 * loops found journal.meta left by a failed fsync). */
			unlinkat(j->dirfd, SKJ_META_NAME, 0);
	}
	close(fd);
	unlinkat(j->dirfd, tmp, 0);
	if (locked)
		flock(j->dirfd, LOCK_UN);
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
		meta_fill(&h, random_id(), 0, j->file_size, j->max_record, sk_realtime_ns());
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

/* Remove ".tmp-*" data files a dead writer left (we hold the writer lock,
 * so no live writer is making one), and ".meta-*" ones a creator left,
 * if no creator is at work: creators hold the directory's flock shared
 * while their temporary meta exists (meta_create), so getting it
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
	struct rec_view v;
	size_t at;

	snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	int err = file_open_assumed(j, first_seq, false, &f);
	if (err)
		return err;
	int found = rec_resync(f, FIRST_OFF, first_seq, f->seg.map_size, &at, &v);
	if (found)
		err = writer_refuse(j, why, v.seq, f->seg.name.path, at);
	file_close(f);
	return err;
}

/* Open the newest file for appending.  One whose header is damaged and
 * that holds nothing intact is removed, and the one before it is tried
 * (*next_seq: the seq a first file must then start at).  *f NULL: none. */
static int writer_last_file(struct shmkit_journal *j, uint64_t *next_seq, struct skj_file **f)
{
	uint64_t *seqs;
	size_t n;
	int err = list_files(j->dirfd, &seqs, &n);

	*f = NULL;
	while (!err && n > 0) {
		err = file_open(j, seqs[n - 1], true, f);
		if (err != -EBADMSG || (err = writer_bad_header(j, seqs[n - 1])))
			break;
		char name[SKJ_NAME_LEN + 1];
		file_name(name, seqs[n - 1]);
		*next_seq = seqs[--n];
		if (unlinkat(j->dirfd, name, 0))
			err = sk_neg_errno();
		else
			err = sync_dir(j->dirfd);
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
	struct rec_view v;
	char why[PATH_MAX + 128];

	if (sc->stop < 0)
		snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	else
		snprintf(why, sizeof(why), "%s+%zu: damaged record (seq %llu)", f->seg.name.path,
		         sc->end, (unsigned long long)sc->next_seq);
	nonzero_extent(f, sc->end, &first, &last_end);
	if (first < last_end && rec_resync(f, sc->end, sc->next_seq, last_end, &at, &v))
		return writer_refuse(j, why, v.seq, f->seg.name.path, at);
	int64_t cut = file_cut_range(f, first, last_end);
	return cut < 0 ? (int)cut : 0;
}

/* Recover the newest file (see the file-top essay) and position the
 * writer after its last valid record; make the first file if there is
 * none. */
static int writer_recover(struct shmkit_journal *j)
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
		if ((err = file_create(j, next_seq ? next_seq : 1, t, 0, &f)))
			return err;
		writer_set_file(j, f, FIRST_OFF, f->first_seq, t);
		return 0;
	}
	file_scan(f, &sc);
	if ((err = writer_tail(j, f, &sc))) {
		file_close(f);
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

static int writer_flush(struct shmkit_journal *j)
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

/* The current file is full: sync it, make the next (created_ns t, at
 * least the last stamp), wake readers.  With hole != 0 the next file
 * starts with a hole standing for that many seqs (append_at's jump), so
 * the writer's next seq is past it. */
static SK_COLD int writer_roll(struct shmkit_journal *j, int64_t t, uint64_t hole)
{
	struct skj_file *f;
	int err;

	if (j->durability != SHMKIT_DUR_NONE && (err = writer_flush(j)))
		return err;
	if ((err = file_create(j, j->wseq, t, hole, &f)))
		return err;
	file_close(j->w);
	writer_set_file(j, f, FIRST_OFF + (hole ? SKJ_RHDR_SIZE : 0), j->wseq + hole, t);
	/* Relaxed: a hint for a later writer that finds no file at all.
	 * model: journal.pml J5 (the link in file_create is J4). */
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
 * record dirtied the inode (see writer_flush()): 1.4 M/s at 64 B against
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
		return writer_flush(j);
	case SHMKIT_DUR_GROUP:
		if (++j->unsynced >= j->group_records ||
		    sk_now_ns() - j->last_sync_ns >= (int64_t)j->group_ms * NS_PER_MS)
			return writer_flush(j);
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
	 * word; pairs with the acquire load in rec_at() of every reader.
	 * model: journal.pml J2, the commit point, after J1 (the plain
	 * stores above); SC in the model. */
	sk_store_release(&r->commit, SKJ_COMMIT | len);
	j->wtime = t;
}

static int file_allow_holes(struct skj_file *f);
static int file_header_put(struct skj_file *f, struct skj_fhdr *h);

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
	if ((err = file_allow_holes(j->w)))
		return err;
	hole_put(j->w, j->woff, SKJ_RHDR_SIZE, j->wseq, count);
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
	int err = list_files(j->dirfd, &seqs, &n);

	if (err)
		return err;
	bool alone = n == 1 && seqs[0] == old;
	free(seqs);
	if (!alone)
		return 0;
	file_name(name, old);
	if (unlinkat(j->dirfd, name, 0)) /* the new file's link syncs the directory */
		return sk_fail(sk_neg_errno(), "cannot remove %s/%s", j->path, name);
	SK_CRASH_POINT("journal.append_at.restart");
	file_close(j->w);
	j->w = NULL;
	if ((err = file_create(j, seq, t, 0, &f))) {
		if (!file_create(j, old, old_t, 0, &f))
			writer_set_file(j, f, FIRST_OFF, old, old_t);
		return err;
	}
	writer_set_file(j, f, FIRST_OFF, seq, t);
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
	if (j->woff == FIRST_OFF && j->w->first_seq == j->wseq && (seq != j->wseq || time_ns < j->wtime) &&
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

/* Move to the file named for the cursor's next seq, the one a roll
 * makes: by name, not from a listing, since a directory read while files
 * come and go may miss one.  (While the current file holds nothing, that
 * name is its own.)  1 moved, 0 there is none, < 0 error. */
static int cur_open_named(struct shmkit_journal *j)
{
	struct skj_file *f;

	if (j->rseq == j->r->first_seq)
		return 0;
	int err = file_open(j, j->rseq, false, &f);
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
	struct rec_view v;
	int r;

	/* model: journal.pml F6 (without it, mutant BUG_NO_PAST_END_RECHECK
	 * reports a gap), then F7 */
	if (rec_parse(j->r, j->roff, j->rseq, &v, false) != 0) {
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
	if ((r = list_files(j->dirfd, &seqs, &n)))
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
		struct rec_view v;
		int r = j->r ? rec_at(j->r, j->roff, j->rseq, &v, j->rseq >= j->min_seq) : 0;
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
	struct rec_view rv;

	if (!j->r || sk_load_relaxed(&j->m->roll_gen) != j->rgen)
		return 1;
	return rec_at(j->r, j->roff, j->rseq, &rv, j->rseq >= j->min_seq);
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
	if (writer_locked(j) != 1)
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
		j->copy_of = copy_join(h.copy_lo, h.copy_hi);
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
	return file_header_put(j->w, &fh);
}

/* ---- verify / repair -------------------------------------------------------- */

struct check {
	struct shmkit_journal_report *rep;
	bool fix, damaged;
	bool removed;             /* repair removed a file: sync the directory */
	uint64_t expected;        /* first seq the next file must have; 0: any */
	int64_t last_time;        /* stamp of the last valid record so far */
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

/* The seqs [lo, hi) are lost to damage: count them, and list them in
 * rep->dropped while there is room (then " ..."). */
static void check_lost(struct check *c, uint64_t lo, uint64_t hi)
{
	struct shmkit_journal_report *r = c->rep;
	size_t used = strlen(r->dropped);
	char run[48];

	r->dropped_records += hi - lo;
	if (!r->dropped_first_seq)
		r->dropped_first_seq = lo;
	r->dropped_last_seq = hi - 1;
	r->dropped_ranges++;
	if (hi - lo == 1)
		snprintf(run, sizeof(run), "%s%llu", used ? " " : "", (unsigned long long)lo);
	else
		snprintf(run, sizeof(run), "%s%llu-%llu", used ? " " : "", (unsigned long long)lo,
		         (unsigned long long)hi - 1);
	if (used >= 4 && !strcmp(r->dropped + used - 4, " ..."))
		return;
	if (used + strlen(run) + 4 < sizeof(r->dropped))
		memcpy(r->dropped + used, run, strlen(run) + 1);
	else
		snprintf(r->dropped + used, sizeof(r->dropped) - used, " ...");
}

/* A file removed whole (repair): its header is damaged and nothing in it
 * is intact, or it overlaps the sequence.  Its bytes count as damaged. */
static int check_drop(struct shmkit_journal *j, struct check *c, uint64_t seq)
{
	char name[SKJ_NAME_LEN + 1];
	struct stat st;

	file_name(name, seq);
	if (!fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		c->rep->damaged_bytes += (uint64_t)st.st_size;
	if (!c->fix)
		return 0;
	if (unlinkat(j->dirfd, name, 0) && errno != ENOENT)
		return sk_fail(sk_neg_errno(), "cannot remove %s/%s", j->path, name);
	c->removed = true;
	return 0;
}

/* The seqs [from, to) are in no file.  Repair marks them lost with a file
 * named from holding one hole, so that the files after it stay readable. */
static int check_gap(struct shmkit_journal *j, struct check *c, uint64_t from, uint64_t to)
{
	struct skj_file *f;

	check_damage(c, "%s: sequence gap, file starts at %llu, expected %llu", j->path,
	             (unsigned long long)to, (unsigned long long)from);
	check_lost(c, from, to);
	if (!c->fix)
		return 0;
	int err = file_create(j, from, c->last_time, to - from, &f);
	file_close(f);
	return err;
}

/* Write h, its checksum made anew, over f's header in place, and sync
 * it.  The header is 64 bytes in the file's first sector: a crash leaves
 * the old one or the new one.  (Readers cache a header when they open a
 * file; what is rewritten here -- version, copy_of -- they do not use.) */
static int file_header_put(struct skj_file *f, struct skj_fhdr *h)
{
	h->crc = sk_crc32c(0, h, offsetof(struct skj_fhdr, crc));
	memcpy(f->seg.map, h, sizeof(*h));
	int err = shmkit_seg_sync(&f->seg, 0, sizeof(*h), 0);
	return err ? sk_fail(err, "sync of %s failed", f->seg.name.path) : 0;
}

/* Say in f's header that it holds holes (SKJ_VERSION_HOLES), before the
 * first is written: a build that knows no holes then refuses the file
 * (-EPROTO) rather than reading a hole as damage and cutting the records
 * after it. */
static int file_allow_holes(struct skj_file *f)
{
	struct skj_fhdr h;

	memcpy(&h, f->seg.map, sizeof(h));
	if (h.version == SKJ_VERSION_HOLES)
		return 0;
	h.version = SKJ_VERSION_HOLES;
	return file_header_put(f, &h);
}

/* Repair: [off, end) of f, damaged, becomes a hole for count seqs from seq. */
static int check_hole(struct skj_file *f, size_t off, size_t end, uint64_t seq, uint64_t count)
{
	int err = file_allow_holes(f);

	if (err)
		return err;
	hole_mark(f, off, end, seq, count);
	err = shmkit_seg_sync(&f->seg, off, end - off, 0);
	return err ? sk_fail(err, "sync of %s failed", f->seg.name.path) : 0;
}

/* Count what a walk found valid. */
static void check_count(struct check *c, const struct skj_scan *sc)
{
	c->rep->valid_records += sc->records;
	c->rep->holes += (uint32_t)sc->holes;
	c->rep->hole_records += sc->hole_seqs;
	if (sc->records) {
		c->rep->last_valid_seq = sc->last_seq;
		c->last_time = sc->last_time;
	}
	c->expected = sc->next_seq;
}

/* What follows the last valid record of f is not a record: report it and,
 * with fix, cut it (zeroed; a truncated file extended).  In the newest
 * file a committed record whose bytes are damaged there (its header
 * names the seq, its checksum fails) is counted as dropped; elsewhere the
 * seqs after the last valid record are the gap the next file shows. */
static int check_tail(struct skj_file *f, struct check *c, const struct skj_scan *sc,
                      bool newest, size_t first, size_t last_end)
{
	struct rec_view v;
	bool truncated = f->seg.map_size < f->file_size;

	if (truncated)
		check_damage(c, "%s: truncated to %zu bytes of %zu", f->seg.name.path,
		             f->seg.map_size, f->file_size);
	c->rep->damaged_bytes += last_end - first;
	if (newest && rec_parse(f, sc->end, sc->next_seq, &v, true) == RB_CRC)
		check_lost(c, sc->next_seq, sc->next_seq + 1);
	if (!c->fix || (last_end == first && !truncated))
		return 0;
	int64_t cut = file_cut_range(f, first, last_end);
	return cut < 0 ? (int)cut : 0;
}

/* After a walk of f stopped (sc): the end, or damage.  Damage followed by
 * intact records becomes a hole for the seqs in between (repair), and the
 * walk goes on after it: 1, *off and *seq set.  Otherwise what is left
 * is a tail: 0 (check_tail), or < 0 error. */
static int check_after(struct skj_file *f, struct check *c, const struct skj_scan *sc,
                       bool newest, size_t *off, uint64_t *seq)
{
	size_t first, last_end, at;
	struct rec_view v;

	nonzero_extent(f, sc->end, &first, &last_end);
	if (sc->stop < 0)
		check_damage(c, "%s", shmkit_errdetail());
	else if (last_end > first)
		check_damage(c, "%s+%zu: %zu non-zero bytes after the last valid record (seq %llu)",
		             f->seg.name.path, sc->end, last_end - first,
		             (unsigned long long)sc->next_seq - 1);
	if (last_end == first || !rec_resync(f, sc->end, sc->next_seq, last_end, &at, &v))
		return check_tail(f, c, sc, newest, first, last_end);
	c->rep->damaged_bytes += at - sc->end;
	if (v.seq > sc->next_seq)
		check_lost(c, sc->next_seq, v.seq);
	int err = c->fix ? check_hole(f, sc->end, at, sc->next_seq, v.seq - sc->next_seq) : 0;
	*off = at;
	*seq = v.seq;
	return err ? err : 1;
}

/* Check (and with fix, repair) f from its first record; see check_after.
 * newest: f is the journal's last file. */
static int check_file(struct skj_file *f, struct check *c, bool newest)
{
	size_t off = FIRST_OFF;
	uint64_t seq = f->first_seq;
	struct skj_scan sc;
	int r;

	/* Bounded: each round resumes at an intact record further on. */
	do {
		file_scan_from(f, off, seq, &sc);
		check_count(c, &sc);
	} while ((r = check_after(f, c, &sc, newest, &off, &seq)) == 1);
	return r;
}

/* Repair: write f's damaged header anew, named for seq, the settings from
 * journal.meta; created_ns (I4) from the first intact thing in it. */
static int header_rebuild(struct shmkit_journal *j, struct skj_file *f, uint64_t seq,
                          int64_t created_ns)
{
	fhdr_fill(f->seg.map, j, seq, created_ns, SKJ_VERSION);
	int err = shmkit_seg_sync(&f->seg, 0, SKJ_FHDR_SIZE, 0);
	if (err)
		return sk_fail(err, "sync of %s failed", f->seg.name.path);
	return file_check(f, j, seq);
}

/* The file for seq has a damaged header (file_open said -EBADMSG).  Its
 * records carry checksums of their own: if one is intact, the file is
 * checked on with the journal's settings for its header's (verify), or
 * after repair rebuilt the header: *out.  With nothing intact it is
 * garbage, dropped whole (*out NULL); if files follow, its seqs are the
 * gap the next one shows. */
static int check_bad_header(struct shmkit_journal *j, struct check *c, uint64_t seq,
                            struct skj_file **out)
{
	struct skj_file *f;
	struct rec_view v;
	size_t at;

	check_damage(c, "%s", shmkit_errdetail());
	*out = NULL;
	int err = file_open_assumed(j, seq, c->fix, &f);
	if (err)
		return err == -ENOENT ? 0 : err;
	if (!rec_resync(f, FIRST_OFF, seq, f->seg.map_size, &at, &v)) {
		file_close(f);
		return check_drop(j, c, seq);
	}
	c->rep->damaged_bytes += SKJ_FHDR_SIZE;
	if (c->fix && (err = header_rebuild(j, f, seq, v.hole ? c->last_time : v.time_ns))) {
		file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Check (repair) the file for seq, which should start at c->expected. */
static int check_one(struct shmkit_journal *j, struct check *c, uint64_t seq, bool newest)
{
	struct skj_file *f = NULL;
	int err = 0;

	if (c->expected && seq < c->expected) {
		check_damage(c, "%s: file %llu overlaps the one before it (ends before %llu)", j->path,
		             (unsigned long long)seq, (unsigned long long)c->expected);
		return check_drop(j, c, seq);
	}
	if (c->expected && seq > c->expected && (err = check_gap(j, c, c->expected, seq)))
		return err;
	err = file_open(j, seq, c->fix, &f);
	if (err == -ENOENT) {
		c->expected = 0; /* removed by retention meanwhile: the oldest goes on */
		return 0;
	}
	if (err == -EBADMSG)
		err = check_bad_header(j, c, seq, &f);
	if (!err && f)
		err = check_file(f, c, newest);
	file_close(f);
	return err;
}

static int check_files(struct shmkit_journal *j, struct check *c)
{
	uint64_t *seqs;
	size_t n;
	int err = list_files(j->dirfd, &seqs, &n);

	for (size_t i = 0; !err && i < n; i++)
		err = check_one(j, c, seqs[i], i + 1 == n);
	free(seqs);
	if (!err && c->removed)
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
 * again.  copy_of (shmkit_journal_set_copy_of) is the newest sound
 * header's that has one: files made before it was set have none.  *src
 * gets the oldest's name, j->mode its permissions (for a new
 * journal.meta). */
static int meta_recover(struct shmkit_journal *j, const uint64_t *seqs, size_t n,
                        const char *what, struct skj_meta *h, char src[SKJ_NAME_LEN + 1])
{
	struct skj_fhdr oldest = { 0 }, fh;
	uint64_t newest = 0, copy_of = 0;

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
		if (copy_join(fh.copy_lo, fh.copy_hi))
			copy_of = copy_join(fh.copy_lo, fh.copy_hi);
	}
	if (!newest)
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " %s and no data file to rebuild it from",
		               j->path, what);
	meta_fill(h, oldest.journal_id, copy_of, oldest.file_size, oldest.max_record,
	          oldest.created_ns);
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
	sk_fd_unmap(&j->meta_seg);
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
	sk_waitfd_close(j->wfd);
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
	j->meta_seg.lock_fd = -1;
	j->meta_seg.shmid = -1;
	j->meta_seg.name.backend = SHMKIT_FILE;
	snprintf(j->path, sizeof(j->path), "%s", path);
	snprintf(j->meta_seg.name.path, sizeof(j->meta_seg.name.path), "%s/" SKJ_META_NAME, path);
	j->min_time = INT64_MIN;
	return j;
}

/* The permissions of files repair makes (a gap's hole file): those of
 * journal.meta, as the journal's creator chose them. */
static int repair_mode(struct shmkit_journal *j)
{
	struct stat st;

	if (fstat(j->meta_seg.fd, &st))
		return sk_fail(sk_neg_errno(), "cannot stat %s/" SKJ_META_NAME, j->path);
	j->mode = st.st_mode & 0777;
	return 0;
}

/* After repair changed files: readers look at the directory and their
 * position again (holes where damage stopped them, hole files). */
static void repair_announce(struct shmkit_journal *j)
{
	/* Release: orders the repair's writes (holes, files linked) before
	 * the new generation; pairs with the acquire load in cur_next_file(). */
	sk_fetch_add(&j->m->roll_gen, 1, __ATOMIC_RELEASE);
	/* Wake sleeping readers (release RMW; see wait.h for the ordering). */
	shmkit_ec_inc(&j->m->tail);
}

/* Open the journal directory.  Its last component is never followed if
 * it is a symbolic link (ELOOP; what comes before it is followed, as for
 * file: paths).  A writer (or repair) refuses a directory owned by another
 * user than itself or root, who could plant links or swap files in it,
 * unless SHMKIT_JOURNAL_ANY_OWNER.  The descriptor or -errno. */
static int journal_dir_open(const char *path, bool writing, unsigned flags)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		int err = sk_neg_errno();
		/* O_DIRECTORY may say ENOTDIR before O_NOFOLLOW says ELOOP. */
		if (err == -ELOOP || (err == -ENOTDIR && !lstat(path, &st) && S_ISLNK(st.st_mode)))
			return sk_fail(-ELOOP, "%s is a symbolic link: give the real path", path);
		return sk_fail(err, "cannot open journal directory %s", path);
	}
	if (writing && !(flags & SHMKIT_JOURNAL_ANY_OWNER) && !fstat(fd, &st) &&
	    st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return sk_fail(-EPERM, "%s belongs to uid %u, not to us: refusing to write "
		               "there (SHMKIT_JOURNAL_ANY_OWNER accepts it)", path, (unsigned)st.st_uid);
	}
	return fd;
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
	j->dirfd = journal_dir_open(path, fix, 0);
	if (j->dirfd < 0)
		err = j->dirfd;
	else if ((err = meta_open(j, false, &created)) == -EBADMSG || err == -ENOENT)
		err = meta_repair(j, &c, err);
	else if (!err && fix)
		err = writer_lock(j);
	if (!err && fix && !j->mode)
		err = repair_mode(j);
	if (!err && j->m) /* journal.meta is sound (with fix, perhaps rebuilt) */
		err = check_files(j, &c);
	if (!err && fix && c.damaged)
		repair_announce(j);
	journal_free(j);
	/* Repair stopped by something other than damage (a live writer, an
	 * I/O error) says what stopped it. */
	if (c.damaged && (!fix || err == -EBADMSG))
		return sk_fail(-EBADMSG, "%s", rep->where);
	return err;
}

static int open_opts(shmkit_journal *j, const struct shmkit_journal_opts *o)
{
	if (o->flags & ~(SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE | SHMKIT_JOURNAL_ANY_OWNER))
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
		/* The umask must not narrow the mode: set it through the
		 * directory we made, never by name - a user who can write
		 * the parent could swap a link in between, and chmod would
		 * follow it to a file of ours (O_NOFOLLOW: then ELOOP). */
		int fd = open(j->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchmod(fd, dmode)) {
			int err = sk_fail(sk_neg_errno(), "cannot set the mode of %s (replaced "
			                  "while we made it?)", j->path);
			if (fd >= 0)
				close(fd);
			/* The caller undoes only what succeeded: the directory
			 * made here goes here (the fault loops found it left).
			 * rmdir follows no link and removes only an empty one. */
			rmdir(j->path);
			return err;
		}
		close(fd);
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
		j->dirfd = journal_dir_open(path, j->writer, o->flags);
		if (j->dirfd < 0)
			err = j->dirfd;
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

/* ---- removal ---------------------------------------------------------------- */

/* Is name one of a journal's own files: journal.meta, a data file, or a
 * temporary a writer or repair makes (".tmp-*", ".meta-*")? */
static bool journal_own_name(const char *name)
{
	return !strcmp(name, SKJ_META_NAME) || parse_file_name(name) ||
	       !strncmp(name, ".tmp-", 5) || !strncmp(name, ".meta-", 6);
}

/* Remove a journal: its own files, then the directory if nothing else is
 * in it.  Never follows a link (-ELOOP), refuses a directory that holds no
 * journal.meta and no data file and is not empty (-EPROTO: not a
 * journal), and a journal
 * with a live writer (-EBUSY: the writer lock is taken for the removal, so
 * no writer starts meanwhile).  Other files in the directory are kept, and
 * the directory with them (-ENOTEMPTY says so, after the journal's own
 * files are gone). */
int shmkit_journal_remove(const char *path)
{
	if (!path || !*path)
		return -EINVAL;
	sk_clear_detail();
	int dfd = journal_dir_open(path, false, 0);
	if (dfd < 0)
		return dfd;
	int err = 0, lk = openat(dfd, SKJ_META_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	/* The writer lock (as writer_lock): held until the files are gone. */
	if (lk >= 0 && fcntl(lk, F_OFD_SETLK, &fl))
		err = errno == EAGAIN || errno == EACCES
		      ? sk_fail(-EBUSY, "%s has a live writer", path)
		      : sk_fail(sk_neg_errno(), "cannot lock %s/" SKJ_META_NAME, path);
	else if (lk < 0 && errno != ENOENT)
		err = sk_fail(sk_neg_errno(), "cannot open %s/" SKJ_META_NAME, path);
	int fd = err ? -1 : openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!err && !d)
		err = sk_fail(sk_neg_errno(), "cannot read %s", path);
	bool journal = lk >= 0, others = false;
	if (d) {
		struct dirent *de;
		bool empty = true;
		while (!journal && (de = readdir(d))) {
			journal = parse_file_name(de->d_name) != 0;
			empty = empty && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."));
		}
		/* An empty directory goes too: what an earlier removal kept
		 * for other files, once they are gone. */
		if (!journal && !empty)
			err = sk_fail(-EPROTO, "%s is not a journal (no journal.meta, no data file)", path);
		rewinddir(d);
		while (!err && (de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (!journal_own_name(de->d_name))
				others = true;
			else if (unlinkat(dfd, de->d_name, 0) && errno != ENOENT)
				err = sk_fail(sk_neg_errno(), "cannot remove %s/%s", path, de->d_name);
		}
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	if (lk >= 0)
		close(lk);
	close(dfd);
	if (err)
		return err;
	if (others)
		return sk_fail(-ENOTEMPTY, "%s: the journal's files are removed; other files "
		               "keep the directory", path);
	if (rmdir(path) && errno != ENOENT)
		return sk_fail(sk_neg_errno(), "cannot remove directory %s", path);
	return 0;
}
