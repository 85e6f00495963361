/*
 * journal.h - journal internals: the on-disk structures (format essay at
 * the top of journal.c) and the CRC-32C used to check them, then what
 * the journal's files share (journal.c: format helpers, data files,
 * records, journal.meta, open/close; journal_write.c: the writer;
 * journal_read.c: the reader cursor, seeks, stats; journal_repair.c:
 * verify and repair).  Not public; tests include it to build damaged
 * files by hand.
 */
#ifndef SHMKIT_JOURNAL_H
#define SHMKIT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "seg.h"

#define SKJ_FILE_MAGIC 0x01454c49464a4b53ULL /* "SKJFILE\1" little-endian */
#define SKJ_META_MAGIC 0x014154454d4a4b53ULL /* "SKJMETA\1" little-endian */
#define SKJ_VERSION 1u             /* journal.meta, and data files without holes */
#define SKJ_VERSION_HOLES 2u       /* a data file holding a hole (journal.c) */
#define SKJ_COMMIT 0x80000000u     /* commit word: COMMIT | [HOLE |] length */
#define SKJ_HOLE 0x40000000u       /* the record is a hole left by repair */
#define SKJ_LEN_MASK 0x3fffffffu   /* the length bits of a commit word */
#define SKJ_MAX_RECORD (1u << 30)  /* hard ceiling for max_record */
#define SKJ_META_NAME "journal.meta"
#define SKJ_SUFFIX ".skj"
#define SKJ_NAME_LEN 24            /* 20 digits + ".skj" */

/* First 64 bytes of every data file. */
struct skj_fhdr {
	uint64_t magic;
	uint32_t version;
	uint32_t fingerprint;
	uint64_t journal_id;     /* same in every file and the meta file */
	uint64_t first_seq;      /* seq of the first record; also the name */
	uint64_t file_size;      /* bytes the file is meant to have */
	uint32_t max_record;
	uint32_t copy_lo;        /* copy_of, low half (0 in builds before it) */
	int64_t created_ns;
	uint32_t copy_hi;        /* copy_of, high half */
	uint32_t crc;            /* CRC-32C of bytes 0..59 */
};

/* Every record: this header, then the payload padded to 8 bytes.  A hole
 * (SKJ_HOLE in the commit word) has the same header; it stands for the
 * seqs [seq, seq + count) that repair found damaged, and its payload
 * (zeros) covers the damaged bytes. */
struct skj_rec {
	uint32_t commit;         /* 0 = free; SKJ_COMMIT | [SKJ_HOLE |] len,
	                            stored last */
	uint32_t crc;            /* CRC-32C of the commit word without
	                            SKJ_COMMIT, seq, time_ns or count, padded
	                            payload */
	uint64_t seq;            /* a hole: the first seq it stands for */
	union {
		int64_t time_ns;
		uint64_t count;  /* a hole: how many seqs (0: a filler) */
	};
};

/* PATH/journal.meta: one page.  Bytes 0..63 are fixed at creation and
 * checksummed; the rest is live state written by the current writer. */
struct skj_meta {
	uint64_t magic;
	uint32_t version;
	uint32_t fingerprint;
	uint64_t journal_id;
	uint64_t file_size;
	uint32_t max_record;
	uint32_t copy_lo;        /* copy_of, low half (as in struct skj_fhdr) */
	int64_t created_ns;
	uint32_t copy_hi;        /* copy_of, high half */
	uint32_t crc;            /* CRC-32C of bytes 0..51 */
	uint8_t pad0[8];
	/* 64: the writer's announcements (informational, never trusted) */
	int32_t writer_pid;
	uint32_t durability;
	uint64_t writer_start;
	uint64_t next_seq_hint;  /* seq after the last record at the last roll/close */
	uint8_t pad1[40];
	/* 128: live tail */
	shmkit_ec tail;          /* incremented after every commit and roll */
	uint32_t roll_gen;       /* incremented after a new file is linked */
};

#define SKJ_FHDR_SIZE sizeof(struct skj_fhdr)
#define SKJ_RHDR_SIZE sizeof(struct skj_rec)
#define SKJ_META_SIZE 4096u

_Static_assert(sizeof(struct skj_fhdr) == 64, "file header is 64 bytes");
_Static_assert(sizeof(struct skj_rec) == 24, "record header is 24 bytes");
_Static_assert(offsetof(struct skj_meta, writer_pid) == 64, "meta live part at 64");
_Static_assert(offsetof(struct skj_meta, tail) == 128, "meta tail at 128");
_Static_assert(sizeof(struct skj_meta) <= SKJ_META_SIZE, "meta fits a page");

static inline size_t skj_pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* CRC-32C, continuing from crc (0 to start): sk_crc32c(0, "123456789", 9)
 * == 0xE3069283.  Hardware (SSE4.2) when the CPU has it. */
uint32_t sk_crc32c(uint32_t crc, const void *data, size_t len);
/* The software (table) path, for tests comparing the two. */
uint32_t sk_crc32c_sw(uint32_t crc, const void *data, size_t len);
bool sk_crc32c_hw_available(void);

/* The record checksum as the writer computes it: word (the commit word
 * without SKJ_COMMIT: the payload length for a record, SKJ_HOLE | length
 * for a hole), seq, time_ns (a hole: its count), then the payload with
 * its zero padding (skj_pad8(word & SKJ_LEN_MASK) bytes at payload). */
uint32_t sk_journal_rec_crc(uint32_t word, uint64_t seq, int64_t time_ns,
                            const void *payload);

/* ---- between journal.c, journal_write.c, journal_read.c, journal_repair.c -- */

#define SKJ_FIRST_OFF SKJ_FHDR_SIZE  /* where a data file's first record starts */
#define SKJ_NS_PER_MS 1000000LL

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

/* A journal handle (shmkit_journal). */
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

/* A record or hole as found in a file. */
struct skj_rec_view {
	uint64_t seq;
	uint64_t adv;            /* seqs it stands for: 1, or a hole's count */
	int64_t time_ns;         /* a record's (not a hole's) */
	const void *data;
	uint32_t len;
	bool hole;
	size_t next;             /* where the following one starts */
};

/* Why the thing at an offset is not a valid record (skj_rec_parse). */
enum {
	SKJ_RB_COMMIT = -1, SKJ_RB_LEN = -2, SKJ_RB_SEQ = -3, SKJ_RB_CRC = -4, SKJ_RB_COUNT = -5
};

/* journal.c: small helpers */
void skj_file_name(char buf[SKJ_NAME_LEN + 1], uint64_t first_seq);
int skj_list_files(int dirfd, uint64_t **out, size_t *n);
int skj_sync_dir(int dirfd);

/* journal.c: data files */
void skj_file_close(struct skj_file *f);
int skj_file_header(const struct skj_file *f, uint64_t first_seq, struct skj_fhdr *h);
int skj_file_check(struct skj_file *f, const struct shmkit_journal *j, uint64_t first_seq);
int skj_file_map_named(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                       struct skj_file **out);
int skj_file_open(struct shmkit_journal *j, uint64_t first_seq, bool rw, struct skj_file **out);
int skj_file_open_assumed(struct shmkit_journal *j, uint64_t first_seq, bool rw,
                          struct skj_file **out);
void skj_fhdr_fill(struct skj_fhdr *h, const struct shmkit_journal *j, uint64_t first_seq,
                   int64_t created_ns, uint32_t version);
void skj_hole_put(struct skj_file *f, size_t off, size_t span, uint64_t seq, uint64_t count);
int skj_file_create(struct shmkit_journal *j, uint64_t first_seq, int64_t created_ns,
                    uint64_t hole, struct skj_file **out);
int skj_file_header_put(struct skj_file *f, struct skj_fhdr *h);
int skj_file_allow_holes(struct skj_file *f);

/* journal.c: records */
SK_COLD void skj_rec_bad(const struct skj_file *f, size_t off, int why, uint64_t seq);
void skj_file_scan_from(const struct skj_file *f, size_t off, uint64_t seq,
                        struct skj_scan *sc);
int skj_rec_resync(const struct skj_file *f, size_t off, uint64_t seq, size_t end,
                   size_t *at, struct skj_rec_view *v);
void skj_nonzero_extent(const struct skj_file *f, size_t from, size_t *first, size_t *last_end);
int64_t skj_file_cut_range(struct skj_file *f, size_t first, size_t last_end);

/* journal.c: journal.meta and the writer lock */
void skj_meta_fill(struct skj_meta *h, uint64_t journal_id, uint64_t copy_of,
                   uint64_t file_size, uint32_t max_record, int64_t created_ns);
int skj_meta_write(const struct shmkit_journal *j, int fd, const struct skj_meta *h,
                   const char *name);
int skj_meta_create(struct shmkit_journal *j, const struct skj_meta *h);
int skj_meta_map(struct shmkit_journal *j);
int skj_meta_open(struct shmkit_journal *j, bool create, bool *created);
int skj_writer_locked(const struct shmkit_journal *j);
int skj_writer_lock(struct shmkit_journal *j);

/* journal.c: open / close */
void skj_journal_free(shmkit_journal *j);
shmkit_journal *skj_journal_alloc(const char *path);
int skj_journal_dir_open(const char *path, bool writing, unsigned flags);

/* journal_write.c */
int skj_writer_recover(struct shmkit_journal *j);
int skj_writer_flush(struct shmkit_journal *j);

/* The record walkers are inline: the reader's next() and the scans run
 * them for every record. */

/* The record or hole at off, expected to carry seq, checked without a
 * word of detail (resync tries many offsets).  1 valid (*v filled), 0
 * nothing there (free commit word, or no room left in the file), SKJ_RB_*
 * damage.  With full = false a record's payload checksum is skipped (for
 * records a seek passes over); a hole's is always checked, since its
 * count decides where reading goes on.  Every field is read once and
 * bounded before use. */
static inline int skj_rec_parse(const struct skj_file *f, size_t off, uint64_t seq,
                                struct skj_rec_view *v, bool full)
{
	if (off > f->cap - SKJ_RHDR_SIZE)
		return 0;
	const struct skj_rec *r = (const struct skj_rec *)((const char *)f->seg.map + off);
	/* Acquire: pairs with the release store of the commit word in
	 * journal_commit() (a hole's: skj_hole_put()); the fields and payload
	 * written before it are visible once it is non-zero.  model:
	 * journal.pml F1 (the reads below: F2), J8 in a recovering writer's
	 * scan (SC in the model). */
	uint32_t w = sk_load_acquire(&r->commit);
	if (!w)
		return 0;
	uint32_t len = w & SKJ_LEN_MASK;
	bool hole = w & SKJ_HOLE;
	if (SK_UNLIKELY(!(w & SKJ_COMMIT)))
		return SKJ_RB_COMMIT;
	if (SK_UNLIKELY((!hole && len > f->max_record) ||
	                skj_pad8(len) > f->cap - off - SKJ_RHDR_SIZE))
		return SKJ_RB_LEN;
	if (SK_UNLIKELY(r->seq != seq))
		return SKJ_RB_SEQ;
	int64_t t = r->time_ns;
	if ((full || hole) && SK_UNLIKELY(sk_journal_rec_crc(w & ~SKJ_COMMIT, seq, t, r + 1) != r->crc))
		return SKJ_RB_CRC;
	v->adv = hole ? (uint64_t)t : 1;
	if (SK_UNLIKELY(hole && v->adv > UINT64_MAX - seq))
		return SKJ_RB_COUNT;
	v->seq = seq;
	v->time_ns = t;
	v->data = r + 1;
	v->len = len;
	v->hole = hole;
	v->next = off + SKJ_RHDR_SIZE + skj_pad8(len);
	return 1;
}

/* skj_rec_parse, saying what is wrong: 1, 0, or -EBADMSG (detail set). */
static inline int skj_rec_at(const struct skj_file *f, size_t off, uint64_t seq,
                             struct skj_rec_view *v, bool full)
{
	int r = skj_rec_parse(f, off, seq, v, full);
	if (SK_UNLIKELY(r < 0)) {
		skj_rec_bad(f, off, r, seq);
		return -EBADMSG;
	}
	return r;
}

/* Walk the valid records and holes of f from its first record. */
static inline void skj_file_scan(const struct skj_file *f, struct skj_scan *sc)
{
	skj_file_scan_from(f, SKJ_FIRST_OFF, f->first_seq, sc);
}

/* copy_of in a header's two halves (struct skj_fhdr, struct skj_meta). */
static inline uint64_t skj_copy_join(uint32_t lo, uint32_t hi)
{
	return (uint64_t)hi << 32 | lo;
}

#endif /* SHMKIT_JOURNAL_H */
