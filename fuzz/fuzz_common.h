/*
 * fuzz_common.h - what every libFuzzer target of fuzz/ shares: a private
 * place for what an iteration creates, a reader of the fuzzer's bytes, and
 * the check that an operation stayed within its time bound.
 *
 * Nothing left behind.  fz_init() moves the process into a mount namespace
 * of its own with a fresh tmpfs on /dev/shm (root, or a user namespace where
 * the kernel allows it): every posix segment and journal directory a target
 * makes lives there and vanishes with the process, whatever kills it.
 * Where that is refused, names carry the pid (sktest-fuzz-PID-...) and each
 * iteration removes what it made; `make fuzz` removes leftovers of a crash.
 *
 * Input formats.  Each target starts with a few configuration bytes (the
 * object's geometry), then an image copied over the object's shared state,
 * then a script of operations, one opcode byte and its arguments each.
 * fuzz/gen_seeds.c writes seeds of this form from real objects in valid
 * states (make fuzz-seeds).
 */
#ifndef SK_FUZZ_COMMON_H
#define SK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The fuzzer's bytes, consumed front to back; reads past the end give 0. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

/* Read n bytes so that an out-of-bounds pointer or length is caught. */
void fz_touch(const void *p, long n);

static inline size_t fz_left(const struct fz_in *in)
{
	return in->n;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);
	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)fz_u8(in) << (8 * i);
	return v;
}

/* Up to want bytes (fewer at the end); returns how many, *out points at
 * them. */
static inline size_t fz_bytes(struct fz_in *in, size_t want, const uint8_t **out)
{
	size_t k = want < in->n ? want : in->n;
	*out = in->p;
	in->p += k;
	in->n -= k;
	return k;
}

/* Copy up to len input bytes over dst (an image of shared state);
 * returns how many were copied. */
static inline size_t fz_image(struct fz_in *in, void *dst, size_t len)
{
	const uint8_t *src;
	size_t k = fz_bytes(in, len, &src);
	memcpy(dst, src, k);
	return k;
}

/* A patch of live shared state: offset (u16, taken modulo size), length
 * (u8, cut at the end), bytes.  Models a peer writing anything at any
 * time between two operations. */
void fz_patch(struct fz_in *in, void *base, size_t size);

/* Map a managed segment by name a second time, raw, so a target can
 * write its service's data area (after the 4096-byte segment header)
 * whatever happens to the handles under test.  Aborts if it cannot. */
struct shmkit_seg;
struct shmkit_seg *fz_raw_open(const char *name, unsigned char **data, size_t *size);

/* Once per process: the private /dev/shm above.  Every target's
 * LLVMFuzzerInitialize (defined in fuzz_common.c) calls it. */
void fz_init(void);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A result of the library: 0..limit, or a negative errno; anything else
 * breaks the contract (a length past the buffer, a positive error):
 * abort, a finding. */
void fz_result(long r, long limit, const char *what);
/* 1 if this process has a private /dev/shm (names need no cleanup). */
int fz_private(void);
/* A name unique to this process and counter: "sktest-fuzz-PID-TAG-N"
 * (posix: a bare name).  Valid until the next call. */
const char *fz_name(const char *tag);
/* A directory path for a journal, under /dev/shm: unique like fz_name. */
const char *fz_dir(const char *tag);
/* The path of file k of the journal in dir: its data files (*.skj) in
 * name order, then journal.meta (k taken modulo their count + 1). */
void fz_journal_file(const char *dir, unsigned k, char *out, size_t len);
/* A new journal in a fresh directory under fz_dir(tag) (dir receives
 * its path), its geometry from the configuration byte of the journal
 * targets - bits 0-1 file size 4096 * (1 + n), bits 2-3 max_record
 * 16 << n - holding nrec records of cycling lengths, open for writing.
 * Aborts if it cannot. */
struct shmkit_journal;
struct shmkit_journal *fz_journal_make(char *dir, size_t dirlen, const char *tag, uint8_t cfg,
                                       unsigned nrec, uint32_t *file_size, uint32_t *max_record);
/* A record a journal reader returned: at most max_record bytes, a seq
 * above *last (then stored there), its bytes readable; abort if not. */
struct shmkit_record;
void fz_journal_record(const struct shmkit_record *rec, uint64_t *last, uint32_t max_record);
/* Write up to n bytes into an existing file at off taken modulo its size,
 * never growing it (a write in place, as through a shared mapping). */
void fz_write_in_place(const char *path, uint64_t off, const void *buf, size_t n);
/* Remove a directory tree made under fz_dir (journal files only). */
void fz_rmtree(const char *path);

/* Time bound of one operation: an operation given a timeout of at most a
 * few milliseconds that takes longer than FZ_OP_BOUND_NS has waited on a
 * value from shared memory without bound, or looped on one: a finding
 * (abort, so libFuzzer keeps the input).  Measured by fz_now, which leaves
 * out the time the thread waited for a CPU: CI found 3.4 s on a journal
 * operation that runs in 5 ms, on a machine busy with other work.  What
 * remains (running, sleeping, disk I/O: the file journal's fdatasync may
 * queue behind other writers) is bounded at 10 s, below libFuzzer's own
 * -timeout=30 that stops a real hang anyway. */
#define FZ_OP_BOUND_NS (10 * 1000000000LL)
int64_t fz_now(void);
void fz_check_bound(int64_t start, const char *what);

/* Timeouts of a scripted operation, from one byte: mostly try-once, some
 * of 1 ms.  Never longer: iterations must stay fast. */
int64_t fz_timeout(uint8_t b);

#endif /* SK_FUZZ_COMMON_H */
