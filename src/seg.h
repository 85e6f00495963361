/*
 * seg.h - segment internals: the handle, parsed names, the backend ops
 * table and the managed-segment header.  Not public.
 *
 * The managed-segment header (first page of every shmkit segment)
 * ----------------------------------------------------------------
 *   off  size  field
 *     0     8  magic        "SHMKIT\0\1" as a little-endian u64
 *     8     4  version      SK_SEG_VERSION
 *    12     4  fingerprint  hash of the layout this build uses (sizes,
 *                           offsets, alignment, endianness); builds that
 *                           disagree refuse to share (-EPROTO)
 *    16     4  kind         enum shmkit_kind
 *    20     4  state        0 INIT, 1 READY, 2 FAILED: the futex word
 *                           openers wait on
 *    24     8  map_size     bytes of the whole mapping
 *    32     8  data_off     offset of the data area (SK_HDR_SIZE)
 *    40     8  data_size    bytes of the data area
 *    48     4  creator_pid
 *    52     4  creator_uid
 *    56     8  created_ns   CLOCK_REALTIME
 *    64     8  creator_start  start time of the creator (see live.c), so a
 *                           reused PID is not taken for the creator
 *    72     4  flags        SK_HDR_PERSIST: made to outlive its creator
 *    80     8  peer_next    counter that spreads peer ids (peer.h)
 *    88   ...  reserved, zero, up to SK_HDR_SIZE
 *
 * Protocol: posix and file segments are made unnamed (O_TMPFILE), sized,
 * reserved and filled, state READY included, and only then given their
 * name with linkat(), which fails if the name exists: an opener never
 * sees a half-made one, and a creator killed on the way leaves nothing.
 * System V cannot do that: there the creator first locks byte 0 of the
 * lock file (peer.h), makes the object exclusively (IPC_EXCL), reserves
 * its memory, fills every header field and the service's data area while
 * state == INIT, then release-stores state = READY, wakes futex waiters
 * and unlocks.  (posix and file segments on a file system without
 * O_TMPFILE are made under their name at once (O_EXCL), with no creator
 * lock: an opener waits for READY up to its timeout, and a creator killed
 * there leaves an unfinished segment that only a person can judge.)
 * An opener checks the mapping holds at least a header, acquire-loads
 * state (pairs with that release store, so every field the creator wrote
 * is visible), waits a bounded time for READY, then checks
 * magic, version, fingerprint, kind and sizes against the mapping it has.
 * Every field is read once into the private handle; nothing in the header
 * is trusted again after open.  A System V creator that dies during INIT
 * leaves a segment in INIT whose byte-0 lock is free: an opener that finds
 * it so removes it (the very segment it attached: its shmid) and a
 * create-or-open then creates afresh; `shmkit gc` removes it too.
 * A creator whose initialisation fails stores FAILED (release) and wakes
 * waiters before it removes the name, so a create-or-open racing it
 * retries at once instead of waiting out its timeout.
 */
#ifndef SHMKIT_SEG_H
#define SHMKIT_SEG_H

#include <limits.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

#define SK_SEG_MAGIC 0x0100544b4d4853ULL /* "SHMKIT\0\1" little-endian */
#define SK_SEG_VERSION 2u /* 2: peer_next; posix/file made unnamed, then linked */
#define SK_HDR_SIZE 4096u
#define SK_SHM_DIR "/dev/shm"
#define SK_STATE_INIT 0u
#define SK_STATE_READY 1u
#define SK_STATE_FAILED 2u /* creator's init failed; the name is being removed */
#define SK_DEFAULT_OPEN_TIMEOUT_NS 1000000000LL

struct sk_seg_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t fingerprint;
	uint32_t kind;
	uint32_t state;
	uint64_t map_size;
	uint64_t data_off;
	uint64_t data_size;
	int32_t creator_pid;
	uint32_t creator_uid;
	int64_t created_ns;
	uint64_t creator_start;
	uint32_t flags;
	uint32_t pad0;
	uint64_t peer_next;
};

#define SK_HDR_PERSIST 0x1u

/* A parsed segment name. */
struct sk_name {
	int backend;              /* enum shmkit_backend */
	char canon[PATH_MAX + 8]; /* canonical form, e.g. "posix:/x" */
	char path[PATH_MAX];      /* posix "/x"; file path; memfd name; ftok path */
	int proj;                 /* ftok project id, 0 if none */
	long key;                 /* sysv key; 0 if by id */
	int shmid;                /* sysv id (for "id=" names), else -1 */
};

struct shmkit_seg {
	const struct sk_backend_ops *ops;
	struct sk_name name;
	int fd;                   /* -1 for sysv and anon */
	int lock_fd;              /* sysv, anon: the lock file (peer.h); -1 for
	                             fd backends, whose lock file is fd */
	bool linked;              /* posix/file: the name is in place (not an
	                             O_TMPFILE object waiting for linkat) */
	int shmid;                /* sysv only, else -1 */
	void *map;
	size_t map_size;
	size_t data_off, data_size;
	unsigned flags;           /* SHMKIT_* flags the handle was made with */
	int kind;                 /* enum shmkit_kind; 0 = raw/foreign */
	pid_t creator_pid;
	uint64_t creator_start;
	int64_t created_ns;
	uint32_t version;
	uint32_t hdr_flags;       /* SK_HDR_* from the header */
	bool made;                /* this handle created the object (not a
	                             create-or-open that found it) */
	unsigned guard;           /* guard.c slot + 1 of a file-backed mapping,
	                             0 if unguarded */
};

/*
 * One backend.  create() makes the object exclusively with map_size bytes
 * and maps it read-write; on failure it leaves nothing (no name, fd or
 * mapping).  open() attaches an existing object according to the flags in
 * o and sets map/map_size.  close() unmaps and releases.  stat() fills the
 * kernel's view of an open handle; stat_name() of a name without keeping
 * it open (it may attach briefly to read the header).
 */
struct sk_backend_ops {
	int backend;
	const char *label;        /* "posix", "sysv", ... */
	int (*create)(shmkit_seg *s, size_t map_size, const struct shmkit_seg_opts *o);
	int (*open)(shmkit_seg *s, const struct shmkit_seg_opts *o);
	void (*close)(shmkit_seg *s);
	int (*remove)(const struct sk_name *n);
	int (*stat)(const shmkit_seg *s, struct shmkit_seg_info *st);
	/* Give a created object its name (posix, file: linkat of the
	 * O_TMPFILE object); -EEXIST if the name is taken.  NULL: created
	 * under its name already. */
	int (*publish)(shmkit_seg *s);
};

extern const struct sk_backend_ops sk_posix_ops, sk_sysv_ops, sk_file_ops,
	sk_anon_ops, sk_memfd_ops;

/* seg.c */
int sk_parse_name(const char *name, struct sk_name *n);
/* Create a managed segment of the given kind with data_size data bytes;
 * init (may be NULL) fills the data area before the segment is published
 * READY.  Without SHMKIT_EXCL in o->flags an existing segment of the same
 * kind is opened instead; -EPROTO if it is of another kind.  Leaves
 * nothing behind on failure. */
int sk_seg_create_kind(shmkit_seg **out, const char *name,
                       const struct shmkit_seg_opts *o, int kind,
                       int (*init)(void *data, size_t size, void *arg),
                       void *arg);
/* Open a managed segment and check it is of this kind (-EPROTO if not). */
int sk_seg_open_kind(shmkit_seg **out, const char *name,
                     const struct shmkit_seg_opts *o, int kind);
/* Map a segment from an fd already open (memfd receive). */
int sk_seg_from_fd(shmkit_seg **out, int fd, const struct sk_name *n,
                   const struct shmkit_seg_opts *o);
/* Kind of a name, read from its header without keeping it open:
 * SHMKIT_KIND_* or negative errno. */
int sk_seg_peek_kind(const char *name);

/* The descriptor through which peers' locks are asked (peer.h): lock_fd,
 * or fd for the fd backends; -1 if none. */
static inline int sk_seg_lock_fd(const shmkit_seg *s)
{
	return s->lock_fd >= 0 ? s->lock_fd : s->fd;
}

/* seg_fd.c: shared by the fd-based backends (posix, file, memfd) */
int sk_fd_reserve(int fd, size_t size);
int sk_fd_map(shmkit_seg *s, int fd, const struct shmkit_seg_opts *o);
int sk_fd_link(shmkit_seg *s, const char *path);
void sk_fd_close(shmkit_seg *s);
/* Unmap s->map (guard slot first) and clear it; the fd stays. */
void sk_fd_unmap(shmkit_seg *s);

/* guard.c: a file-backed mapping that another process shrinks costs this
 * process an -EIO, never a SIGBUS (the argument is at the top of
 * guard.c).  sk_guard_add enters s->map in the table (after mmap),
 * sk_guard_remove takes it out (before munmap).  sk_map_check: 0, or -EIO
 * once the mapping was lost or the file is smaller than the mapping;
 * services call it where their waits slice, and on their entry points. */
#define SK_GUARD_SLOTS 4096 /* mappings guarded at once; more go unguarded */
extern unsigned char sk_guard_lost[SK_GUARD_SLOTS];

/* The handler replaced this mapping: every service call on it is -EIO
 * (sk_map_check says why).  Two loads; for the hot paths. */
static inline bool sk_map_lost(const shmkit_seg *s)
{
	/* relaxed: pairs with the handler's relaxed store; a late sight
	 * of the mark costs one more call or slice, nothing else (the
	 * memory it guards reads as zeros, which every reader bounds). */
	return SK_UNLIKELY(s->guard && __atomic_load_n(&sk_guard_lost[s->guard - 1],
	                                               __ATOMIC_RELAXED));
}

void sk_guard_add(shmkit_seg *s);
void sk_guard_remove(shmkit_seg *s);
int sk_map_check(const shmkit_seg *s);
int sk_fd_stat(const shmkit_seg *s, struct shmkit_seg_info *st);
int sk_map_prot(unsigned flags);
int sk_map_flags(unsigned flags);

static inline size_t sk_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

#endif /* SHMKIT_SEG_H */
