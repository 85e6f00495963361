/*
 * journal.h - journal internals: the on-disk structures (format essay at
 * the top of journal.c) and the CRC-32C used to check them.  Not public;
 * tests include it to build damaged files by hand.
 */
#ifndef SHMKIT_JOURNAL_H
#define SHMKIT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

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

#endif /* SHMKIT_JOURNAL_H */
