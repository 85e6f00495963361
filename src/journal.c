/*
 * journal.c - a durable, append-only log of records in memory-mapped
 * files: one writer at a time, any number of readers in any processes,
 * crash recovery on open, repair that keeps every intact record.
 *
 * This file: the format (below), data files, records, journal.meta, open,
 * close and removal.  The writer (appends, durability, rolls, recovery on
 * open) is in journal_write.c, the reader cursor, seeks and stats in
 * journal_read.c, verify and repair in journal_repair.c; each opens with
 * its part of the protocol.  What they share is in journal.h.
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
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "waitfd.h"

#define DEF_FILE_SIZE (64u << 20)
#define DEF_MAX_RECORD (1u << 20)
#define DEF_GROUP_RECORDS 64u
#define DEF_GROUP_MS 10u
#define MAX_FILE_SIZE (1ULL << 40)

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

void skj_file_name(char buf[SKJ_NAME_LEN + 1], uint64_t first_seq)
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
int skj_list_files(int dirfd, uint64_t **out, size_t *n)
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

int skj_sync_dir(int dirfd)
{
	return fsync(dirfd) ? sk_fail(sk_neg_errno(), "fsync of the journal directory failed") : 0;
}

/* ---- data files ------------------------------------------------------------ */

void skj_file_close(struct skj_file *f)
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
int skj_file_header(const struct skj_file *f, uint64_t first_seq, struct skj_fhdr *h)
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
	    h->file_size < SKJ_FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(h->max_record))
		return sk_fail(-EBADMSG, "%s: header sizes out of bounds", p);
	return 0;
}

/* Validate the header of a mapped file named for first_seq against the
 * journal and cache it.  -EBADMSG: damaged; -EPROTO: a sound header of
 * another build or another journal. */
int skj_file_check(struct skj_file *f, const struct shmkit_journal *j, uint64_t first_seq)
{
	struct skj_fhdr h;
	int err = skj_file_header(f, first_seq, &h);

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
int skj_file_map_named(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                       struct skj_file **out)
{
	char name[SKJ_NAME_LEN + 1];
	int err;

	*out = NULL;
	skj_file_name(name, first_seq);
	struct skj_file *f = file_alloc(j, name);
	if (!f)
		return -ENOMEM;
	/* O_NONBLOCK: a FIFO planted under the name must not hang us;
	 * sk_fd_map refuses anything but a regular file. */
	int fd = openat(j->dirfd, name, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	err = fd < 0 ? sk_neg_errno() : file_map(f, fd, rw);
	if (err) {
		skj_file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Open and validate the data file for first_seq. */
int skj_file_open(struct shmkit_journal *j, uint64_t first_seq, bool rw, struct skj_file **out)
{
	int err = skj_file_map_named(j, first_seq, rw, out);

	if (!err && (err = skj_file_check(*out, j, first_seq))) {
		skj_file_close(*out);
		*out = NULL;
	}
	return err;
}

/* Open the data file for first_seq whose header is damaged, taking the
 * journal's settings for the header's, to look for records inside.  cap
 * is at least SKJ_FIRST_OFF, so cap - SKJ_RHDR_SIZE cannot wrap; the record
 * walkers read only records ending at or below cap, all inside the
 * mapping then, and find none in a file too short to hold one. */
int skj_file_open_assumed(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                          struct skj_file **out)
{
	int err = skj_file_map_named(j, first_seq, rw, out);

	if (err)
		return err;
	struct skj_file *f = *out;
	size_t cap = (f->seg.map_size < j->file_size ? f->seg.map_size : j->file_size) & ~(size_t)7;
	f->first_seq = first_seq;
	f->file_size = j->file_size;
	f->max_record = j->max_record;
	f->created_ns = 0;
	f->cap = cap < SKJ_FIRST_OFF ? SKJ_FIRST_OFF : cap;
	return 0;
}

void skj_fhdr_fill(struct skj_fhdr *h, const struct shmkit_journal *j, uint64_t first_seq,
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
	else if ((err = skj_sync_dir(j->dirfd)))
		unlinkat(j->dirfd, name, 0);
	return err;
}

/* Write one hole over [off, off + span) of f (span a multiple of 8, at
 * least a record header, at most HOLE_SPAN_MAX) standing for count seqs
 * from seq: commit word cleared, the rest zeroed, header and checksum
 * written, the commit word last. */
void skj_hole_put(struct skj_file *f, size_t off, size_t span, uint64_t seq, uint64_t count)
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
	 * commit word; pairs with the acquire load in skj_rec_parse(). */
	sk_store_release(&r->commit, SKJ_COMMIT | word);
}

/* Make the data file for first_seq, complete, under its final name (I3):
 * temporary name, reserve, header, fsync, link, fsync the directory.  With
 * hole != 0 it holds one hole standing for that many seqs (repair marks a
 * gap between files so).  On failure nothing is left. */
int skj_file_create(struct shmkit_journal *j, uint64_t first_seq, int64_t created_ns,
                    uint64_t hole, struct skj_file **out)
{
	char name[SKJ_NAME_LEN + 1], tmp[64];
	int err;

	*out = NULL;
	skj_file_name(name, first_seq);
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
		skj_fhdr_fill(f->seg.map, j, first_seq, created_ns, hole ? SKJ_VERSION_HOLES : SKJ_VERSION);
		err = skj_file_check(f, j, first_seq);
		if (!err && hole)
			skj_hole_put(f, SKJ_FIRST_OFF, SKJ_RHDR_SIZE, first_seq, hole);
		if (!err)
			err = file_publish(j, f, tmp, name);
	}
	unlinkat(j->dirfd, tmp, 0);
	if (err) {
		skj_file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Write h, its checksum made anew, over f's header in place, and sync
 * it.  The header is 64 bytes in the file's first sector: a crash leaves
 * the old one or the new one.  (Readers cache a header when they open a
 * file; what is rewritten here -- version, copy_of -- they do not use.) */
int skj_file_header_put(struct skj_file *f, struct skj_fhdr *h)
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
int skj_file_allow_holes(struct skj_file *f)
{
	struct skj_fhdr h;

	memcpy(&h, f->seg.map, sizeof(h));
	if (h.version == SKJ_VERSION_HOLES)
		return 0;
	h.version = SKJ_VERSION_HOLES;
	return skj_file_header_put(f, &h);
}

/* ---- records ------------------------------------------------------------- */

SK_COLD void skj_rec_bad(const struct skj_file *f, size_t off, int why, uint64_t seq)
{
	static const char *const text[] = {
		[-SKJ_RB_COMMIT] = "commit word without its commit bit at seq",
		[-SKJ_RB_LEN] = "record length out of bounds at seq",
		[-SKJ_RB_SEQ] = "sequence break, expected seq",
		[-SKJ_RB_CRC] = "checksum mismatch at seq",
		[-SKJ_RB_COUNT] = "hole count out of bounds at seq",
	};
	sk_fail(-EBADMSG, "%s+%zu: %s %llu", f->seg.name.path, off, text[-why],
	        (unsigned long long)seq);
}

/* Walk the valid records and holes of f from (off, seq), where a record
 * starts; sc->stop is skj_rec_at's verdict where the walk ended. */
void skj_file_scan_from(const struct skj_file *f, size_t off, uint64_t seq,
                        struct skj_scan *sc)
{
	struct skj_rec_view v;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->next_seq = seq;
	sc->last_time = f->created_ns;
	/* Bounded: each step moves off forward inside a file of cap bytes. */
	while ((r = skj_rec_at(f, off, sc->next_seq, &v, true)) == 1) {
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

/* After damage at off, where seq was expected: the first intact record or
 * hole in f before byte end, told by its checksum.  Every 8-aligned
 * offset is tried whose record could follow: at off itself seq, further
 * on a larger seq, by at most one per record header's worth of bytes
 * passed (the records in between).  1 found (*at, *v), 0 none.  Bounded:
 * at most (end - off) / 8 tries, each reading inside the file. */
int skj_rec_resync(const struct skj_file *f, size_t off, uint64_t seq, size_t end,
                   size_t *at, struct skj_rec_view *v)
{
	const char *base = f->seg.map;

	for (size_t o = off; o < end && o <= f->cap - SKJ_RHDR_SIZE; o += 8) {
		const struct skj_rec *r = (const struct skj_rec *)(base + o);
		/* Relaxed: a filter only; skj_rec_parse() loads it again with
		 * acquire before trusting anything. */
		if (!(sk_load_relaxed(&r->commit) & SKJ_COMMIT))
			continue;
		uint64_t s = r->seq;
		if (o == off ? s != seq : s <= seq || s - seq > (o - off) / SKJ_RHDR_SIZE)
			continue;
		if (skj_rec_parse(f, o, s, v, true) == 1) {
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
void skj_nonzero_extent(const struct skj_file *f, size_t from, size_t *first, size_t *last_end)
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
 * the last valid record, skj_nonzero_extent) and sync, and extend a
 * truncated file back to its size.  Returns the bytes zeroed, or a
 * negative error. */
int64_t skj_file_cut_range(struct skj_file *f, size_t first, size_t last_end)
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
	    h.file_size < SKJ_FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(h.max_record))
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME ": sizes out of bounds", j->path);
	j->m = j->meta_seg.map;
	j->jid = h.journal_id;
	j->copy_of = skj_copy_join(h.copy_lo, h.copy_hi);
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
void skj_meta_fill(struct skj_meta *h, uint64_t journal_id, uint64_t copy_of,
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
int skj_meta_write(const struct shmkit_journal *j, int fd, const struct skj_meta *h,
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
int skj_meta_create(struct shmkit_journal *j, const struct skj_meta *h)
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
	else if (!(err = sk_fd_reserve(fd, SKJ_META_SIZE)) && !(err = skj_meta_write(j, fd, h, tmp))) {
		if (linkat(j->dirfd, tmp, j->dirfd, SKJ_META_NAME, 0))
			err = errno == EEXIST ? -EEXIST : sk_fail(sk_neg_errno(), "cannot link %s/" SKJ_META_NAME, j->path);
		else if ((err = skj_sync_dir(j->dirfd)))
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
int skj_meta_map(struct shmkit_journal *j)
{
	struct shmkit_seg_opts so = { .flags = j->meta_rw ? 0 : SHMKIT_RDONLY };
	int err = sk_fd_map(&j->meta_seg, j->meta_seg.fd, &so);

	return err ? err : meta_check(j);
}

/* Open journal.meta read-write when allowed (the writer must; readers need
 * it to sleep on the event count), read-only otherwise.  On failure the
 * descriptor, if any, stays in j->meta_seg for skj_journal_free() (repair
 * rebuilds a damaged meta through it). */
int skj_meta_open(struct shmkit_journal *j, bool create, bool *created)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = openat(j->dirfd, SKJ_META_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		j->meta_rw = fd >= 0;
		if (fd < 0 && errno == EACCES && !j->writer)
			fd = openat(j->dirfd, SKJ_META_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd >= 0) {
			j->meta_seg.fd = fd;
			return skj_meta_map(j);
		}
		if (errno != ENOENT)
			return sk_fail(sk_neg_errno(), "cannot open %s/" SKJ_META_NAME, j->path);
		if (!create)
			return sk_fail(-ENOENT, "%s is not a journal (no " SKJ_META_NAME ")", j->path);
		/* Data files without their meta are a damaged journal, not a
		 * place for a new one (whose random id would disown them). */
		uint64_t *seqs;
		size_t n;
		int err = skj_list_files(j->dirfd, &seqs, &n);
		free(seqs);
		if (err)
			return err;
		if (n)
			return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " is missing beside %zu data file%s: "
			               "repair rebuilds it", j->path, n, n == 1 ? "" : "s");
		struct skj_meta h;
		skj_meta_fill(&h, random_id(), 0, j->file_size, j->max_record, sk_realtime_ns());
		err = skj_meta_create(j, &h);
		if (err && err != -EEXIST)
			return err;
		*created = !err;
	}
	return sk_fail(-EAGAIN, "%s/" SKJ_META_NAME " vanished while opening", j->path);
}

/* 1 if some open file description holds the writer lock, 0 if not. */
int skj_writer_locked(const struct shmkit_journal *j)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(j->meta_seg.fd, F_OFD_GETLK, &fl))
		return sk_neg_errno();
	return fl.l_type != F_UNLCK;
}

int skj_writer_lock(struct shmkit_journal *j)
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

/* ---- open / close ---------------------------------------------------------- */

void skj_journal_free(shmkit_journal *j)
{
	sk_waitfd_close(j->wfd);
	skj_file_close(j->w);
	skj_file_close(j->r);
	sk_fd_close(&j->meta_seg); /* closing the fd drops the writer lock */
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j);
}

shmkit_journal *skj_journal_alloc(const char *path)
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

/* Open the journal directory.  Its last component is never followed if
 * it is a symbolic link (ELOOP; what comes before it is followed, as for
 * file: paths).  A writer (or repair) refuses a directory owned by another
 * user than itself or root, who could plant links or swap files in it,
 * unless SHMKIT_JOURNAL_ANY_OWNER.  The descriptor or -errno. */
int skj_journal_dir_open(const char *path, bool writing, unsigned flags)
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
	if (j->file_size < SKJ_FIRST_OFF + SKJ_RHDR_SIZE + skj_pad8(j->max_record))
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
			skj_file_name(name, j->w->first_seq);
			unlinkat(j->dirfd, name, 0);
		}
		unlinkat(j->dirfd, SKJ_META_NAME, 0);
	}
	skj_journal_free(j);
	if (made_dir)
		rmdir(path);
}

/* Take the lock, recover, announce; wake readers waiting for a file. */
static int writer_start(shmkit_journal *j)
{
	int err = skj_writer_lock(j);

	if (!err)
		err = skj_writer_recover(j);
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
	shmkit_journal *j = skj_journal_alloc(path);
	if (!j)
		return -ENOMEM;
	if (!(err = open_opts(j, o)) && (made_dir = make_dir(j, o->flags)) >= 0) {
		j->dirfd = skj_journal_dir_open(path, j->writer, o->flags);
		if (j->dirfd < 0)
			err = j->dirfd;
		else if (!(err = skj_meta_open(j, o->flags & SHMKIT_JOURNAL_CREATE, &made_meta)) && j->writer)
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
			err = skj_writer_flush(j);
		writer_announce(j, false);
	}
	skj_journal_free(j);
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
	int dfd = skj_journal_dir_open(path, false, 0);
	if (dfd < 0)
		return dfd;
	int err = 0, lk = openat(dfd, SKJ_META_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	/* The writer lock (as skj_writer_lock): held until the files are gone. */
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
