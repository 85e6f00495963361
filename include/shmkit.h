/*
 * shmkit.h - Linux shared memory as a complete inter-process communication
 * system: one API over every kernel mechanism (POSIX, System V, file
 * mappings, anonymous mappings, memfd), the synchronization raw shared
 * memory lacks, and messaging on top (channels, a publish/subscribe bus, a
 * durable journal).  No daemon: every process maps the memory and talks
 * directly.
 *
 * Conventions
 *   - Every function returns 0 (or a non-negative count) on success and a
 *     negative errno on failure.  errno is never part of the contract; use
 *     shmkit_strerror() to turn a result into text.
 *   - Timeouts are nanoseconds on CLOCK_MONOTONIC: 0 = try once, negative =
 *     wait forever.
 *   - Options are structs passed by pointer; NULL means defaults and zeroed
 *     fields mean defaults, so fields can be added without breaking callers.
 *   - Handles are opaque.  A handle is used by one thread at a time unless
 *     its comment says otherwise; many processes share the memory behind it.
 *
 * Errors with a fixed meaning across the library
 *   -EINVAL        bad argument or malformed name
 *   -ENAMETOOLONG  name too long for its backend
 *   -ENOENT        no such segment          -EEXIST  exists (exclusive create)
 *   -EACCES/-EPERM permission, or a sealed memfd
 *   -ENOSPC/-ENOMEM no room (tmpfs full, SysV limits, RLIMIT_MEMLOCK), found
 *                  at create time, never as SIGBUS later
 *   -EPROTO        not a shmkit segment of this kind, or incompatible layout
 *   -EBADMSG       corrupt shared state detected
 *   -EIO           the segment was truncated under this handle by another
 *                  process: its memory reads as zeros, every call fails
 *                  so, the process does not die (SHMKIT_SIGBUS in shmkit(3))
 *   -EAGAIN        empty or full in a non-blocking call
 *   -ETIMEDOUT     a bounded wait ran out
 *   -EMSGSIZE      message larger than the service allows
 *   -EOWNERDEAD    a dead peer's state was recovered; see each function
 *
 * Caveats
 *   - fork: a child inherits mappings; `anon` segments are shared only with
 *     children forked after creation.  Handles are not fork-safe to use in
 *     both processes at once for the same role: open a new handle in the
 *     child (except anon, where the child uses the inherited one).  A
 *     child's first claim, role, publish or subscription through an
 *     inherited handle takes a peer entry of its own; what the parent held
 *     stays the parent's.
 *   - Liveness of peers is the kernel's word, not a pid's: every handle
 *     that can hold others up holds an open-file-description lock (fcntl
 *     F_OFD_SETLK) on a byte of the segment's lock file, which the kernel
 *     drops when the process dies - whatever its threads, PID namespace
 *     or time namespace.  Peers may live in different PID, time and
 *     network namespaces (containers sharing /dev/shm and IPC).  The cost:
 *     one descriptor per channel or bus handle (plus the segment's own),
 *     one kernel lock per entry held, and a system call only when a peer
 *     has held others up past a grace period.  The lock file is the
 *     segment itself (posix, file, memfd), a memfd inherited with the
 *     mapping (anon), or /dev/shm/.shmkit-sysv-KEY.lock (System V; `shmkit
 *     rm` and `gc` remove it with the segment).  Needs /proc (handles
 *     reopen the lock file through /proc/self/fd).  A program that closes
 *     descriptors it does not own (closefrom) drops its entries: its
 *     peers then take it for dead, and its next commit is -ESTALE; a
 *     channel or bus message it was writing at that moment may be read
 *     torn by a reader of the slot's next lap (found by models/mpmc.pml).
 *     Never close descriptors a library opened.
 *   - Huge pages need pages reserved in /proc/sys/vm/nr_hugepages (posix
 *     and file backends cannot use them; sysv, anon and memfd can).  When
 *     none are available creation fails with -ENOMEM; it never falls back.
 *   - tmpfs size: containers often mount a small /dev/shm.  shmkit reserves
 *     memory at create time so a full tmpfs is -ENOSPC then, not SIGBUS later.
 *   - Dead peers: a crashed process leaves POSIX and System V segments
 *     behind.  `shmkit info` and `ls --json` show whether anyone has one
 *     open (the kernel says: a lock every handle holds, or System V's
 *     attach count);
 *     `shmkit gc` removes temporary segments nobody has open.  A creator
 *     killed while it initialises leaves nothing (posix, file: the segment
 *     is made unnamed and named when ready) or a System V segment that
 *     the next create-or-open replaces.
 *   - A peer can write anything into shared memory.  shmkit bounds every
 *     value it reads there and reports -EBADMSG; it cannot stop a hostile
 *     peer from overwriting your payload bytes.
 */
#ifndef SHMKIT_H
#define SHMKIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMKIT_VERSION_MAJOR 0
#define SHMKIT_VERSION_MINOR 1
#define SHMKIT_VERSION_PATCH 0

/* Text for a shmkit result code (negative errno).  Never NULL; the string
 * is static. */
const char *shmkit_strerror(int err);

/* Detail of the last failure in this thread, e.g. which System V limit a
 * size exceeded, or "" if none was recorded.  Valid until the next shmkit
 * call in this thread.  A convenience for messages, not part of the
 * contract: the return code is. */
const char *shmkit_errdetail(void);

/* ------------------------------------------------------------------------
 * Segments: a named, mapped region over one backend.
 *
 * Names:
 *   "NAME" or "posix:/NAME"  shm_open in /dev/shm
 *   "sysv:0xKEY"             System V key (hex or decimal)
 *   "sysv:/PATH:PROJ"        System V key from ftok(PATH, PROJ)
 *   "sysv:id=SHMID"          an existing System V segment by id (open only)
 *   "file:PATH"              a regular file mapped MAP_SHARED
 *   "anon"                   MAP_SHARED|MAP_ANONYMOUS, shared across fork
 *   "memfd:NAME"             memfd_create, sealed against shrinking; pass it
 *                            with shmkit_seg_send_fd()/shmkit_seg_recv_fd()
 *
 * Lifecycle: shmkit_seg_create() or shmkit_seg_open() -> use ->
 * shmkit_seg_close().  shmkit_seg_remove() removes the name; mappings stay
 * valid until closed (System V: until the last detach).
 * ------------------------------------------------------------------------ */

typedef struct shmkit_seg shmkit_seg;

enum shmkit_backend {
	SHMKIT_POSIX = 1,
	SHMKIT_SYSV = 2,
	SHMKIT_FILE = 3,
	SHMKIT_ANON = 4,
	SHMKIT_MEMFD = 5,
};

/* What a managed segment holds (its header's kind word). */
enum shmkit_kind {
	SHMKIT_KIND_FOREIGN = 0, /* no shmkit header: raw bytes */
	SHMKIT_KIND_BYTES = 1,
	SHMKIT_KIND_CHAN = 2,
	SHMKIT_KIND_BUS = 3,
	SHMKIT_KIND_JOURNAL = 4,
	SHMKIT_KIND_RPC = 5,
};

/* Creation and attach flags (shmkit_seg_opts.flags). */
#define SHMKIT_EXCL      0x0001u /* create: fail with -EEXIST if it exists */
#define SHMKIT_RDONLY    0x0002u /* open: map read-only */
#define SHMKIT_COW       0x0004u /* open: MAP_PRIVATE, own writes stay private */
#define SHMKIT_POPULATE  0x0008u /* pre-fault pages (MAP_POPULATE) */
#define SHMKIT_MLOCK     0x0010u /* lock in RAM; -ENOMEM/-EPERM if refused */
#define SHMKIT_HUGE      0x0020u /* huge pages; -ENOMEM if none, -EINVAL if
                                    the backend cannot */
#define SHMKIT_RAW       0x0040u /* open: attach as raw bytes, skip header */
#define SHMKIT_NOSEAL    0x0080u /* memfd create: do not seal; recv_fd: accept
                                    an fd not sealed against shrinking */
#define SHMKIT_PERSIST   0x0100u /* create: meant to outlive its creator; `shmkit
                                    gc` leaves it (remove it by name) */

struct shmkit_seg_opts {
	size_t size;          /* create: data bytes wanted (>0) */
	unsigned mode;        /* create: permission bits, default 0600 */
	unsigned flags;       /* SHMKIT_* above */
	int64_t init_timeout_ns;   /* open: wait for a creator still initialising;
	                         0 = default (1 s), negative = forever */
};

/* Create a managed segment of kind SHMKIT_KIND_BYTES holding opts->size
 * data bytes (plus a header page).  Memory is reserved now: a full tmpfs
 * is -ENOSPC here.  Without SHMKIT_EXCL an existing managed segment of the
 * same kind is opened instead (-EPROTO if it is of another kind).
 * On failure nothing is left behind: no name, file, fd or mapping. */
int shmkit_seg_create(shmkit_seg **out, const char *name,
                      const struct shmkit_seg_opts *opts);

/* Open an existing segment.  A managed one is validated (magic, version,
 * layout, size) and waited for up to opts->init_timeout_ns while its creator
 * initialises; one without a header is -EPROTO unless SHMKIT_RAW is given,
 * in which case the whole mapping is the data area.  "anon" cannot be
 * opened by name (-EINVAL). */
int shmkit_seg_open(shmkit_seg **out, const char *name,
                    const struct shmkit_seg_opts *opts);

/* Unmap and release the handle.  NULL is a no-op.  Returns 0. */
int shmkit_seg_close(shmkit_seg *seg);

/* Remove the name (unlink / IPC_RMID).  Existing mappings stay valid.
 * -ENOENT if there is nothing to remove, -EINVAL for anon and memfd. */
int shmkit_seg_remove(const char *name);

/* Data area of the segment, valid until shmkit_seg_close(). */
void *shmkit_seg_data(const shmkit_seg *seg);
size_t shmkit_seg_size(const shmkit_seg *seg);

/* Flags for shmkit_seg_sync(). */
#define SHMKIT_SYNC_ASYNC      0x1u /* schedule write-back (MS_ASYNC) */
#define SHMKIT_SYNC_INVALIDATE 0x2u /* also MS_INVALIDATE */

/* Write a range of the data area back to its file (msync).  Synchronous
 * by default: when it returns 0, read(2) of the file shows the data and
 * it is on stable storage.  Other backends have no file: 0, nothing done.
 * off/len are relative to the data area; len 0 means to the end. */
int shmkit_seg_sync(shmkit_seg *seg, size_t off, size_t len, unsigned flags);

struct shmkit_seg_info {
	int backend;              /* enum shmkit_backend */
	int kind;                 /* enum shmkit_kind */
	char name[4112];          /* canonical name, e.g. "posix:/x" */
	size_t map_size;          /* bytes mapped */
	size_t data_size;         /* bytes in the data area */
	size_t data_offset;       /* offset of data area in the mapping */
	unsigned mode;            /* permission bits */
	uid_t uid;                /* owner */
	pid_t creator_pid;        /* 0 if unknown */
	int creator_alive;        /* 1 alive, 0 dead, -1 unknown */
	int64_t created_ns;       /* CLOCK_REALTIME ns, 0 if unknown */
	long attach_count;        /* System V nattch; -1 if unknown */
	int removed;              /* name removed, segment still attached */
	int shmid;                /* System V id, -1 otherwise */
	long key;                 /* System V key, 0 otherwise */
	unsigned version;         /* format version of a managed header */
	int persistent;           /* created with SHMKIT_PERSIST */
	int in_use;               /* 1 if some process holds it open or attached
	                             (asked of the kernel: a lock every shmkit
	                             handle holds, or System V's attach count;
	                             any PID namespace), 0 if none, -1 unknown.
	                             A foreign program's mapping of a posix or
	                             file segment is not seen here. */
	int initialising;         /* shmkit_seg_info_name: 1 its creator has not
	                             finished initialising it; 2 and that creator
	                             is gone (System V: its lock is free), so
	                             `gc` removes it and the next create-or-open
	                             replaces it; 0 otherwise */
};

/* Describe an open segment (the kernel's view refreshed now). */
int shmkit_seg_info(const shmkit_seg *seg, struct shmkit_seg_info *st);

/* Describe a segment by name without keeping it open; foreign segments
 * are described as kind SHMKIT_KIND_FOREIGN. */
int shmkit_seg_info_name(const char *name, struct shmkit_seg_info *st);

/* Call fn for every POSIX segment in /dev/shm and every System V segment
 * on the machine, managed or foreign.  Stops early and returns fn's value
 * if fn returns non-zero. */
int shmkit_seg_list(int (*fn)(const struct shmkit_seg_info *st, void *arg),
                    void *arg);

/* memfd only: send the segment's fd over a connected UNIX socket
 * (SCM_RIGHTS), and build a segment from a received one.  The receiver
 * maps it with opts (SHMKIT_RDONLY, SHMKIT_COW honoured).  recv_fd:
 * -ENOMSG if the message carries no fd, -ECONNRESET if the peer closed,
 * -EPERM if the fd is not sealed against shrinking (its sender could
 * truncate it under the mapping: SIGBUS) unless opts has SHMKIT_NOSEAL. */
int shmkit_seg_send_fd(const shmkit_seg *seg, int sock);
int shmkit_seg_recv_fd(shmkit_seg **out, int sock,
                       const struct shmkit_seg_opts *opts);

/* The segment's kind and its backend; the fd behind it (-1 for sysv and
 * anon), valid until close. */
int shmkit_seg_kind(const shmkit_seg *seg);
int shmkit_seg_backend(const shmkit_seg *seg);
int shmkit_seg_fd(const shmkit_seg *seg);

/* Parse a size with optional K, M, G, T suffix (powers of 1024; "Ki",
 * "KiB", "KB" too).  -EINVAL for anything but digits and a suffix (a sign,
 * a space, a fraction), -ERANGE for a size over SIZE_MAX. */
int shmkit_parse_size(const char *s, size_t *out);

/* ------------------------------------------------------------------------
 * Synchronization on shared memory.  Every object below lives in memory
 * that any process may map (place it in a segment's data area).  Waits
 * are futex-based (never FUTEX_PRIVATE) and bounded by timeout_ns.
 * ------------------------------------------------------------------------ */

/* Wait while *word == expected, up to timeout_ns.  0 when woken or the
 * value differs, -ETIMEDOUT, -EAGAIN if timeout_ns == 0 and it would wait.
 * May return 0 spuriously: callers re-check their condition. */
int shmkit_futex_wait(const uint32_t *word, uint32_t expected,
                      int64_t timeout_ns);
/* Wake up to n waiters (n < 0: all).  Returns the number woken. */
int shmkit_futex_wake(const uint32_t *word, int n);

/* Event count: a counter waiters can sleep on.  Increment issues no system
 * call when nobody waits (in the spirit of ck_ec). */
typedef struct shmkit_ec { uint32_t word; } shmkit_ec;
void shmkit_ec_init(shmkit_ec *ec);
/* Current value (31 bits, wraps). */
uint32_t shmkit_ec_value(const shmkit_ec *ec);
/* Increment and wake all waiters, if any. */
void shmkit_ec_inc(shmkit_ec *ec);
/* Wait until the value differs from old (taken modulo 2^31); 0,
 * -ETIMEDOUT, or -EAGAIN when timeout_ns is 0 and it has not moved. */
int shmkit_ec_wait(shmkit_ec *ec, uint32_t old, int64_t timeout_ns);

/* Robust process-shared mutex.  If a holder dies, the next locker gets
 * -EOWNERDEAD with the lock held; it repairs the protected state and calls
 * shmkit_mutex_consistent(), else the mutex becomes unusable
 * (-ENOTRECOVERABLE).  lock: 0, -EAGAIN (timeout 0, busy), -ETIMEDOUT,
 * -EDEADLK (this thread holds it).  The lock is owned by a thread: unlock
 * from another is -EPERM.  All users must share a PID namespace, and the
 * holder must not unmap the memory while holding it. */
typedef union shmkit_mutex { uint64_t align_; unsigned char opaque[64]; } shmkit_mutex;
int shmkit_mutex_init(shmkit_mutex *m);
int shmkit_mutex_lock(shmkit_mutex *m, int64_t timeout_ns);
int shmkit_mutex_unlock(shmkit_mutex *m);
int shmkit_mutex_consistent(shmkit_mutex *m);

/* Counting semaphore over a futex.  post: 0, -EOVERFLOW at INT32_MAX.
 * wait: 0, -EAGAIN (timeout 0, count 0), -ETIMEDOUT. */
typedef struct shmkit_sem { uint32_t count; uint32_t waiters; } shmkit_sem;
int shmkit_sem_init(shmkit_sem *s, unsigned value);
int shmkit_sem_post(shmkit_sem *s);
int shmkit_sem_wait(shmkit_sem *s, int64_t timeout_ns);
int shmkit_sem_value(const shmkit_sem *s);

/* Pollable fds for event counts, semaphores and mutexes, for poll/epoll: the
 * mechanism of shmkit_sub_fd (a futex wait on the shared word itself,
 * never FUTEX_PRIVATE: any process, PID or network namespace, backend).
 * The handle owns the fd, O_CLOEXEC; shmkit_syncfd_close closes it and
 * frees what stands behind it (an io_uring ring, or a helper thread,
 * joined); never close the fd yourself.  Readiness is level-triggered and
 * lasts until the next ack, which re-arms; it may be spurious, so re-check
 * (or try) after it.  Not usable in a forked child (ack: -EBADF; make one
 * there; closing the inherited handle there is safe).  io_uring
 * completions run in the thread that armed (open, ack): epoll_wait there
 * may return EINTR; retry it.
 *   shmkit_ec_fd: readable once the count differs from old (taken modulo
 *   2^31), at once if it already does: the wait shmkit_ec_wait(ec, old)
 *   would end.  shmkit_ec_ack_fd re-arms on a new old (usually the value
 *   the caller last read).  Nothing to poll on for a dead incrementer: the
 *   count just does not move.
 *   shmkit_sem_fd: readable when the count is above 0, i.e. a
 *   shmkit_sem_wait(s, 0) may succeed - a hint: another taker may win the
 *   unit (-EAGAIN), then ack and poll again.  After a unit is taken (or
 *   the try failed) call shmkit_sem_ack_fd, which re-arms and makes the fd
 *   readable at once if units remain.  The fd registers in s->waiters
 *   while open (at most 65534 at a time: -EUSERS), and while any is, each
 *   post makes a system call and wakes all sleepers instead of one.  A poster killed between
 *   adding its unit and its wake may leave the fd unsignalled: poll with
 *   a timeout (say 100 ms) and ack on timeout (ack looks at the count).
 * The fd or -errno (-EINVAL: NULL arguments or the wrong kind of handle
 * for the ack); on failure *out is untouched and nothing is left open. */
typedef struct shmkit_syncfd shmkit_syncfd;
int shmkit_ec_fd(shmkit_syncfd **out, shmkit_ec *ec, uint32_t old);
int shmkit_ec_ack_fd(shmkit_syncfd *f, uint32_t old);
int shmkit_sem_fd(shmkit_syncfd **out, shmkit_sem *s);
int shmkit_sem_ack_fd(shmkit_syncfd *f);
/*   shmkit_mutex_fd: readable while the mutex is free or its owner died,
 *   i.e. a shmkit_mutex_lock(m, 0) may succeed (or return -EOWNERDEAD
 *   and hold the lock, as any lock does) - a hint: another locker may win
 *   (-EAGAIN), then ack and poll again.  After the try call
 *   shmkit_mutex_ack_fd, which re-arms and makes the fd readable at once
 *   if the mutex is free.  The fd registers in the mutex while open (at
 *   most 65534 at a time: -EUSERS), and while any is, each unlock makes a
 *   system call and wakes all sleepers.  An owner that dies wakes the fd
 *   only if someone slept on the lock: poll with a timeout (say 100 ms)
 *   and ack on timeout (ack looks at the lock word, where the kernel marks
 *   a dead owner).  Needs a mutex set up by shmkit_mutex_init. */
int shmkit_mutex_fd(shmkit_syncfd **out, shmkit_mutex *m);
int shmkit_mutex_ack_fd(shmkit_syncfd *f);
/* 0; NULL is a no-op. */
int shmkit_syncfd_close(shmkit_syncfd *f);

/* Wait strategy for services (chan, bus). */
enum shmkit_wait {
	SHMKIT_WAIT_ADAPTIVE = 0, /* spin briefly, then futex (default) */
	SHMKIT_WAIT_SPIN = 1,     /* busy-spin until the deadline */
	SHMKIT_WAIT_BLOCK = 2,    /* futex at once */
};

/* ------------------------------------------------------------------------
 * Channels: a named queue; each message goes to exactly one receiver.
 * Many producers, many consumers, per-producer FIFO.  Messages are
 * variable-size up to max_msg (0-byte messages are allowed).
 *
 * Crashes: a producer or consumer killed at any point, even holding a
 * reservation or a peeked message, never wedges the others: within about
 * 100 ms of blocking someone, its slot is reclaimed (counted in
 * `reclaimed`).  A message whose consumer died after taking it (recv in
 * progress, or peeked and not released) is lost, at most one per dead
 * handle; SPSC channels instead deliver it again to the next consumer,
 * and an MPMC handle opened with an owner token (below) to the owner's
 * next handle.  Only a dead peer is reclaimed (its kernel lock is gone: see Caveats); a
 * stopped or stalled one blocks its position until it goes on or dies.
 * Should a handle's claim be taken all the same (its lock lost), its
 * commit, send, recv, release or abort is -ESTALE and nothing is
 * delivered twice or into a reused slot.  Memory: 4096 + 384 (+ 8192
 * for MPMC: per-handle entries) + capacity * round_up(16 + max_msg, 128)
 * bytes, rounded up to the page size.
 * ------------------------------------------------------------------------ */

typedef struct shmkit_chan shmkit_chan;

/* create: one producer, one consumer at a time (no read-modify-write on
 * the fast path).  Enforced per handle: the first send/reserve takes the
 * producer role and the first recv/peek the consumer role until close;
 * another handle's first call then gets -EBUSY while the holder lives (a
 * dead holder's role is taken over).  Threads sharing one handle must
 * take turns themselves. */
#define SHMKIT_CHAN_SPSC 0x10000u

struct shmkit_chan_opts {
	uint32_t capacity;    /* create: slots (rounded up to a power of 2,
	                         at most 2^24; 0 = 64) */
	uint32_t max_msg;     /* create: largest message in bytes (at most
	                         2^30; 0 = 1024) */
	unsigned mode;        /* create: permission bits, default 0600 */
	unsigned flags;       /* SHMKIT_EXCL, SHMKIT_CHAN_SPSC, seg flags */
	int wait;             /* enum shmkit_wait for this handle */
	int64_t init_timeout_ns;   /* open: wait for initialisation (default 1 s) */
	uint64_t owner;       /* MPMC: a durable identity for this handle, 0 =
	                         none (see "Owners" below) */
};

/* Create a channel in a new segment of any backend.  Without SHMKIT_EXCL
 * an existing channel of that name is opened instead (its own capacity and
 * max_msg apply).  On failure nothing is left behind. */
int shmkit_chan_create(shmkit_chan **out, const char *name,
                       const struct shmkit_chan_opts *opts);
/* Open an existing channel (-EPROTO if the segment is not one).  Flags:
 * SHMKIT_RDONLY (statistics only: sending or receiving is -EPERM),
 * SHMKIT_POPULATE, SHMKIT_MLOCK.  anon and memfd channels cannot be
 * opened by name: use the handle inherited across fork, or pass the fd
 * (shmkit_chan_seg + shmkit_seg_send_fd, then shmkit_seg_recv_fd +
 * shmkit_chan_attach). */
int shmkit_chan_open(shmkit_chan **out, const char *name,
                     const struct shmkit_chan_opts *opts);
/* Make a channel handle over an open segment of kind SHMKIT_KIND_CHAN
 * (e.g. a received memfd).  On success the channel owns seg and closes it
 * with itself; on failure the caller still owns it. */
int shmkit_chan_attach(shmkit_chan **out, shmkit_seg *seg,
                       const struct shmkit_chan_opts *opts);
/* The segment under a channel, valid until shmkit_chan_close(). */
shmkit_seg *shmkit_chan_seg(const shmkit_chan *ch);
/* Close; an open reservation is aborted and a peeked message released
 * (it counts as received).  NULL is a no-op.  Returns 0. */
int shmkit_chan_close(shmkit_chan *ch);

/* Copy a message in / out.  send: 0, -EAGAIN (full, timeout 0),
 * -ETIMEDOUT, -EMSGSIZE.  recv: the message length, -EAGAIN, -ETIMEDOUT,
 * -EMSGSIZE if cap is too small (the message stays queued).  Both: -EBADMSG
 * if the shared state is corrupt, -EINVAL while this handle holds a
 * reservation (send) or a peeked message (recv).  No allocation.  An MPMC
 * recv copies a message out before it takes it (so a consumer killed in
 * recv loses nothing): after an error, buf may hold bytes of a message
 * another consumer took. */
int shmkit_chan_send(shmkit_chan *ch, const void *msg, size_t len,
                     int64_t timeout_ns);
ssize_t shmkit_chan_recv(shmkit_chan *ch, void *buf, size_t cap,
                         int64_t timeout_ns);

/* Zero-copy: reserve a slot, write up to max_msg bytes at *buf (16-byte
 * aligned), commit len bytes (or abort: the slot goes back, no message).
 * The pointer is valid until commit/abort.  One reservation per handle;
 * commit above max_msg is -EMSGSIZE and keeps the reservation. */
int shmkit_chan_reserve(shmkit_chan *ch, void **buf, int64_t timeout_ns);
int shmkit_chan_commit(shmkit_chan *ch, size_t len);
int shmkit_chan_abort(shmkit_chan *ch);
/* Zero-copy: peek the next message in place; valid until release.
 * Returns its length.  One peeked message per handle; release takes it
 * off the queue. */
ssize_t shmkit_chan_peek(shmkit_chan *ch, const void **buf,
                         int64_t timeout_ns);
int shmkit_chan_release(shmkit_chan *ch);

/* The channel position of the message this handle has peeked (also an
 * inherited one not returned yet), or of its open reservation: 0, or
 * -EINVAL if there is none.  MPMC positions are 40-bit counters (they
 * wrap at 2^40) and increase along one consumer's (one producer's)
 * claims; SPSC: head or tail. */
int shmkit_chan_peek_pos(const shmkit_chan *ch, uint64_t *pos);
int shmkit_chan_reserve_pos(const shmkit_chan *ch, uint64_t *pos);

/* Owners (MPMC): a handle opened with opts.owner = T (any non-zero
 * token the application keeps, e.g. in a state file) is a durable
 * identity; its record in the channel outlives the handle, so a crash of
 * its process neither loses nor doubts what it was doing:
 *   - opening with T while a live handle holds T is -EBUSY; a dead (or
 *     closed) holder's record is taken over.  -ENOSPC if the channel's 64
 *     per-handle entries are all held; -EINVAL for an SPSC channel or
 *     SHMKIT_RDONLY.
 *   - a message the predecessor had peeked and not released is not lost
 *     and goes to nobody else: the next shmkit_chan_peek (or recv) of
 *     the new handle returns it first (its POLLIN fd is readable for
 *     it).  Until then it holds its slot: the channel fills one lap
 *     later, as behind a slow consumer.  Closing a handle before it
 *     returned that message leaves it to the next one.
 *   - a reservation the predecessor left is given back (no message), and
 *     so is one whose owner stays dead while consumers wait on it.
 *   - shmkit_chan_commit_tag commits like shmkit_chan_commit and records
 *     tag; shmkit_chan_owner_tag gives the tag of the owner's last
 *     commit_tag that delivered its message (0 if none), exact across a
 *     crash at any instant of the commit: so an importer that tags each
 *     message with its sequence number knows after a restart whether the
 *     last one went in.  Both -EINVAL without an owner.
 *   - shmkit_chan_disown makes the record an ordinary one again (close
 *     then frees it; an inherited message not yet returned becomes an
 *     ordinary peek, which close releases).  Records of owners that never
 *     come back stay until then, or until the channel is removed.
 * A forked child's copy of an owned handle is not owned.  Handles without
 * an owner pay nothing for this. */
int shmkit_chan_commit_tag(shmkit_chan *ch, size_t len, uint64_t tag);
int shmkit_chan_owner_tag(shmkit_chan *ch, uint64_t *tag);
int shmkit_chan_disown(shmkit_chan *ch);

/* A file descriptor for poll/epoll that becomes readable when this
 * handle's side may go on: SHMKIT_CHAN_POLLIN, a message may be waiting;
 * SHMKIT_CHAN_POLLOUT, room may be free.  The same mechanism as
 * shmkit_sub_fd (it waits on the shared memory itself, so it works for
 * peers in any PID or network namespace).  One fd per handle, for the
 * direction of the first call (the other is -EINVAL); owned by the handle
 * (closed by shmkit_chan_close).  After it signals call
 * shmkit_chan_ack_fd(), then drain with timeout 0 until -EAGAIN.  It may
 * signal spuriously.  A peer that dies blocking the channel, or between
 * its commit and its wake, is noticed by a call, not by the fd: poll with
 * a timeout (say 100 ms).  Not usable in a forked child (make one there).
 * The fd or -errno. */
#define SHMKIT_CHAN_POLLIN 1
#define SHMKIT_CHAN_POLLOUT 4
int shmkit_chan_fd(shmkit_chan *ch, int events);
int shmkit_chan_ack_fd(shmkit_chan *ch);

struct shmkit_chan_stats {
	uint32_t capacity, max_msg;
	uint64_t depth;              /* messages queued now (approximate) */
	uint64_t sent, received;
	uint64_t full_waits, empty_waits; /* calls that found it full / empty
	                                     (an SPSC side adds its timeout-0
	                                     calls 64 at a time, and at close) */
	uint64_t reclaimed;          /* slots (SPSC: roles) taken from dead peers */
	uint64_t aborted;            /* reservations given back */
	size_t slot_size;            /* round_up(16 + max_msg, 64) */
	size_t hdr_size;             /* bytes before the first slot (an MPMC
	                                channel's include 8 KiB of per-handle
	                                entries: statistics, owners) */
	size_t seg_size;             /* bytes of the segment: hdr_size +
	                                capacity * slot_size, page-rounded */
	int spsc;
	uint32_t producer, consumer; /* SPSC: pid holding the role, 0 if free
	                                (it may have died since) */
};
/* Statistics, readable through any handle (also SHMKIT_RDONLY).  Counters
 * are relaxed snapshots; sent/received of an SPSC channel are its
 * indices. */
int shmkit_chan_stats(shmkit_chan *ch, struct shmkit_chan_stats *st);

/* A handle taking part in a channel (shmkit_chan_peers).  An MPMC handle
 * takes a statistics entry at its first send or receive; an SPSC
 * channel's peers are its two role holders. */
#define SHMKIT_CHAN_PEER_HANDLE 0   /* MPMC: a handle's entry */
#define SHMKIT_CHAN_PEER_PRODUCER 1 /* SPSC: the producer role */
#define SHMKIT_CHAN_PEER_CONSUMER 2 /* SPSC: the consumer role */
struct shmkit_chan_peer {
	int role;                    /* SHMKIT_CHAN_PEER_* */
	unsigned index;              /* MPMC: its entry; SPSC: 0 */
	pid_t pid;                   /* SPSC: the role holder's; MPMC: 0 (not
	                                kept) */
	int alive;                   /* 1 alive, 0 dead, -1 unknown: the
	                                kernel's lock, not the pid */
	uint64_t sent, received;     /* MPMC: this handle's messages */
	int owned;                   /* MPMC: the entry of an owner token */
};
/* Call fn for every peer; stops early and returns fn's value if it
 * returns non-zero.  Readable through any handle (also SHMKIT_RDONLY);
 * a snapshot for display. */
int shmkit_chan_peers(shmkit_chan *ch,
                      int (*fn)(const struct shmkit_chan_peer *p, void *arg),
                      void *arg);

/* ------------------------------------------------------------------------
 * Bus: publish/subscribe; each message goes to every subscriber.  Up to
 * max_publishers publishing handles and max_subscribers subscriptions at
 * once (creation options; 62 and 64 by default), by name over any backend
 * (anon and memfd: shared by fork; a forked child may publish and
 * subscribe on the inherited bus handle).  Dead peers are detected by
 * kernel-held locks (see Caveats), which no pid, namespace or exited main
 * thread can fool.  A message is never
 * returned torn: one overwritten while it is read is discarded and counted
 * lost.  Lost counts are exact in sequence numbers; an aborted loan inside
 * a range a lapped reader jumps over counts too.
 * ------------------------------------------------------------------------ */

typedef struct shmkit_bus shmkit_bus;
typedef struct shmkit_sub shmkit_sub;

enum shmkit_bus_delivery {
	SHMKIT_BUS_OVERWRITE = 0,    /* publishers never wait; slow readers lose */
	SHMKIT_BUS_BACKPRESSURE = 1, /* publishers wait for the slowest reader */
};

enum shmkit_bus_from {
	SHMKIT_FROM_NEWEST = 0,      /* only messages published after joining */
	SHMKIT_FROM_OLDEST = 1,      /* the oldest retained message first */
};

struct shmkit_bus_opts {
	uint32_t capacity;    /* create: slots, rounded up to a power of 2
	                         (default 256, at most 2^24) */
	uint32_t max_msg;     /* create: largest message (default 1024) */
	int delivery;         /* create: enum shmkit_bus_delivery */
	unsigned mode;        /* create: permission bits, default 0600 */
	unsigned flags;       /* SHMKIT_EXCL, seg flags */
	int wait;             /* enum shmkit_wait */
	int from;             /* subscribe: enum shmkit_bus_from */
	int64_t init_timeout_ns;   /* open: wait for initialisation */
	uint32_t max_subscribers; /* create: subscription table (default 64,
	                             at most 16384) */
	uint32_t max_publishers;  /* create: publisher table (default 62, at
	                             most 510) */
};

/* Without SHMKIT_EXCL an existing bus is opened and its geometry wins.
 * On failure nothing is left behind. */
int shmkit_bus_create(shmkit_bus **out, const char *name,
                      const struct shmkit_bus_opts *opts);
int shmkit_bus_open(shmkit_bus **out, const char *name,
                    const struct shmkit_bus_opts *opts);
/* -EBUSY while subscriptions made on this handle are open; an outstanding
 * loan is aborted. */
int shmkit_bus_close(shmkit_bus *bus);

/* Publish a copy.  Overwrite mode never waits for readers; if its claim
 * lands on a slot a live publisher still holds a whole ring later - a
 * loan, or a copy stalled over 50 ms (a copy in progress is waited for up
 * to that) - it gives that sequence up and claims the next, pausing 1 ms
 * between tries, until timeout_ns (-EAGAIN at once when timeout_ns is 0,
 * -ETIMEDOUT); back-pressure mode
 * waits up to timeout_ns (-EAGAIN / -ETIMEDOUT) while the slowest live
 * subscriber is capacity messages behind; a dead one stops counting
 * within milliseconds.  No system call when nobody sleeps. */
int shmkit_bus_publish(shmkit_bus *bus, const void *msg, size_t len,
                       int64_t timeout_ns);
/* Zero-copy loan: a buffer of max_msg bytes in shared memory; publish
 * len bytes of it, or abort (subscribers pass an aborted loan silently).
 * Valid until publish/abort.  A loan whose holder dies is skipped by
 * subscribers after 50 ms (counted lost).  On an overwrite bus nobody
 * waits for a loan: subscribers pass one held over 50 ms (counted lost),
 * and a publisher whose claim laps it gives that sequence up and claims
 * another (a try-once publish returns -EAGAIN at once instead): the slot
 * is not reused while its holder may still write into it.  The holder's
 * publish_loan is then -ESTALE.  On a back-pressure bus subscribers wait
 * for a live holder's loan. */
int shmkit_bus_loan(shmkit_bus *bus, void **buf, int64_t timeout_ns);
int shmkit_bus_publish_loan(shmkit_bus *bus, size_t len);
int shmkit_bus_abort_loan(shmkit_bus *bus);

/* Join at the newest or oldest retained message (opts->from; in
 * back-pressure mode the oldest is capacity - 1 back).  opts->wait is the
 * strategy of this subscription.  A subscription is used by the process
 * that made it. */
int shmkit_bus_subscribe(shmkit_sub **out, shmkit_bus *bus,
                         const struct shmkit_bus_opts *opts);
int shmkit_bus_unsubscribe(shmkit_sub *sub);
/* Copy the next message out: its length, -EAGAIN, -ETIMEDOUT.  *lost (may
 * be NULL) receives how many messages were skipped before this one. */
ssize_t shmkit_sub_recv(shmkit_sub *sub, void *buf, size_t cap,
                        uint64_t *lost, int64_t timeout_ns);
/* Read in place; release returns 0, or -ESTALE if the message was
 * overwritten while read (the bytes seen must be discarded). */
ssize_t shmkit_sub_peek(shmkit_sub *sub, const void **buf, uint64_t *lost,
                        int64_t timeout_ns);
int shmkit_sub_release(shmkit_sub *sub);
/* A file descriptor that becomes readable when messages are waiting, for
 * poll/epoll.  It waits on the shared memory itself (an io_uring futex
 * wait, or where the kernel refuses io_uring a helper thread and an
 * eventfd: SHMKIT_WAITFD=thread|io_uring|auto chooses), so it wakes for
 * publishers in any PID or network namespace, and leaves nothing on disk.
 * Owned by the subscription; call shmkit_sub_ack_fd() after it signals,
 * before draining.  It may signal spuriously.  Publishers pay a system
 * call only when someone sleeps.  A publisher dying mid-message is
 * noticed on the next recv: poll with a timeout (say 100 ms) to bound it.
 * io_uring completions run in the thread that armed the fd (sub_fd,
 * ack_fd): epoll_wait there may return EINTR; retry it. */
int shmkit_sub_fd(shmkit_sub *sub);
int shmkit_sub_ack_fd(shmkit_sub *sub);

/* The publisher's fd, for poll/epoll (the mechanism of shmkit_sub_fd):
 * events must be SHMKIT_BUS_POLLOUT.  Back-pressure bus: readable when a
 * publish may go on without waiting, i.e. the slowest live subscriber is
 * less than capacity messages behind (another publisher may take the room
 * first: publish with timeout 0, and on -EAGAIN ack and poll again).
 * Overwrite bus: a publish never waits for readers, so the fd is always
 * readable (a try-once publish may still return -EAGAIN while a live
 * publisher's loan holds the slot a whole ring on).  Owned by the handle,
 * closed by shmkit_bus_close.  After it signals call shmkit_bus_ack_fd(),
 * then publish; ack re-arms and makes it readable at once if there is
 * room.  It may signal spuriously.  Subscribers leaving wake it; one that
 * dies holding the bus back is noticed by a look (within milliseconds),
 * not by the fd: poll with a timeout (say 100 ms) and ack on timeout.
 * Not usable in a forked child (make one there).  The fd or -errno. */
#define SHMKIT_BUS_POLLOUT 4
int shmkit_bus_fd(shmkit_bus *bus, int events);
int shmkit_bus_ack_fd(shmkit_bus *bus);

/* State of a bus, for monitoring (a snapshot; values move meanwhile). */
struct shmkit_bus_stats {
	uint32_t capacity, max_msg;
	int delivery;                /* enum shmkit_bus_delivery */
	uint64_t head;               /* sequences published (claimed) so far */
	uint64_t oldest;             /* oldest sequence still retained */
	uint32_t publishers;         /* registered entries, alive or not */
	uint32_t subscribers;
	uint32_t armed;              /* subscribers sleeping on their fd */
	size_t seg_size;             /* bytes of the data area */
	uint32_t max_publishers, max_subscribers; /* table sizes */
};
int shmkit_bus_stats(shmkit_bus *bus, struct shmkit_bus_stats *st);

/* One registered publisher or subscriber. */
struct shmkit_bus_peer {
	int subscriber;              /* 1 subscriber, 0 publisher */
	unsigned index;              /* entry in its table */
	pid_t pid;
	int alive;                   /* 1 alive, 0 dead, -1 unknown */
	uint64_t position;           /* sub: next sequence; pub: last claimed */
	uint64_t lag;                /* sub: head - position */
	uint64_t count;              /* messages received / published */
	uint64_t lost;               /* sub: lost; pub: aborted loans */
	int armed;                   /* sub: sleeping on its fd */
};
/* Call fn for every registered peer; stops early and returns fn's value
 * if it returns non-zero. */
int shmkit_bus_peers(shmkit_bus *bus,
                     int (*fn)(const struct shmkit_bus_peer *p, void *arg),
                     void *arg);

/* ------------------------------------------------------------------------
 * Request/response (rpc): a client asks, one server answers that client.
 *
 * Any number of servers share the requests (each goes to exactly one);
 * each response goes back to the client handle that asked, and only to
 * it.  A client handle takes one entry of the client table (max_clients)
 * at its first call and may have up to `depth` calls outstanding; the
 * request and response of a call live in that call's slot, so both sides
 * can work in place (zero-copy).  Peers are judged alive by the kernel
 * (the locks of peer liveness), never by pid:
 *   - a server that dies holding a request: the caller's wait returns
 *     -ECONNRESET within about 50 ms of noticing (it looks every slice),
 *     or, for a call sent with SHMKIT_RPC_IDEMPOTENT, the request is given
 *     to another server;
 *   - a server killed after taking a request from the queue but before
 *     claiming it: the caller re-queues it after a slice (a duplicate that
 *     finds the call claimed is dropped); a request still in the queue is
 *     never queued twice, so waiting callers do not fill the queue;
 *   - a client that dies: its entry and slots are reclaimed by the next
 *     client that takes the entry; servers still working for it finish
 *     into the void (shmkit_rpc_abandoned tells them it is gone).
 * A call's deadline (the timeout given to send) travels with the request;
 * when the caller gives up (timeout, cancel) a server's response is
 * dropped, never delivered to a later call.
 * A client handle takes its client entry at its first call, a server
 * handle its server entry at its first recv (or fd); -ENOSPC when the
 * table is full.
 * Memory: 4096 + 256 + queue + 64 * max_servers + max_clients * (64 +
 * depth * slot), queue =
 * 384 + 64 * pow2(2 * max_clients * depth), slot = 64 +
 * round_up(max_request, 64) + round_up(max_response, 64); page-rounded.
 * ------------------------------------------------------------------------ */

typedef struct shmkit_rpc shmkit_rpc;

struct shmkit_rpc_opts {
	uint32_t max_clients;  /* create: client handles at once (default 64,
	                          at most 4096) */
	uint32_t depth;        /* create: calls outstanding per client
	                          (default 8, at most 64) */
	uint32_t max_request;  /* create: bytes (default 1024, at most 64M) */
	uint32_t max_response; /* create: bytes (default 1024, at most 64M) */
	unsigned mode;         /* create: permission bits, default 0600 */
	unsigned flags;        /* SHMKIT_EXCL and segment flags */
	int wait;              /* enum shmkit_wait for this handle */
	int64_t init_timeout_ns;    /* open: wait for initialisation */
	uint32_t max_servers;  /* create: server handles at once (default 64,
	                          at most 2048) */
};

/* Create (or, without SHMKIT_EXCL, open) a service; open one. */
int shmkit_rpc_create(shmkit_rpc **out, const char *name, const struct shmkit_rpc_opts *opts);
int shmkit_rpc_open(shmkit_rpc **out, const char *name, const struct shmkit_rpc_opts *opts);
/* Close: calls still outstanding are cancelled; requests this handle took
 * as a server and did not answer fail their callers (-ECONNRESET). */
int shmkit_rpc_close(shmkit_rpc *r);

#define SHMKIT_RPC_IDEMPOTENT 0x1u /* send: may be given to another server
                                      if the one holding it dies */

/* Client, blocking: send req, wait for its response, copy it into resp.
 * The response length, -EMSGSIZE if cap is too small (the response is
 * dropped), -ETIMEDOUT (the call is cancelled), -ECONNRESET (the server
 * died holding it), -EBUSY (depth calls already outstanding on this
 * handle), -ENOSPC (client table full). */
ssize_t shmkit_rpc_call(shmkit_rpc *r, const void *req, size_t len, void *resp, size_t cap,
                        int64_t timeout_ns);
/* Client, asynchronous: send a copy of req; *id names the call.  The
 * timeout bounds the call as a whole: it is the deadline servers see. */
int shmkit_rpc_send(shmkit_rpc *r, const void *req, size_t len, unsigned flags,
                    int64_t timeout_ns, uint64_t *id);
/* Zero-copy request: loan a max_request-byte buffer in shared memory,
 * fill it, send it (or abort the loan). */
int shmkit_rpc_loan(shmkit_rpc *r, void **buf);
int shmkit_rpc_send_loan(shmkit_rpc *r, size_t len, unsigned flags, int64_t timeout_ns,
                         uint64_t *id);
int shmkit_rpc_abort_loan(shmkit_rpc *r);
/* Wait for the response to call *id, or (*id == 0) to any outstanding
 * call, whose id is stored in *id.  The response length; *resp points
 * into shared memory (valid until shmkit_rpc_release of that id).  A
 * timeout of this wait leaves the call outstanding (-ETIMEDOUT), unless
 * the call's own deadline has passed: then it is cancelled. */
ssize_t shmkit_rpc_wait(shmkit_rpc *r, uint64_t *id, const void **resp, int64_t timeout_ns);
int shmkit_rpc_release(shmkit_rpc *r, uint64_t id);
/* The status the server gave an answered call (0 unless it used
 * shmkit_rpc_respond_status), before its release. */
int shmkit_rpc_status(shmkit_rpc *r, uint64_t id);
/* Give a call up: a response that comes later is dropped. */
int shmkit_rpc_cancel(shmkit_rpc *r, uint64_t id);

/* Server: the request a server took; data points into shared memory until
 * the request is answered. */
struct shmkit_rpc_req {
	uint64_t id;           /* opaque: names the call */
	const void *data;
	uint32_t len;
	unsigned flags;        /* SHMKIT_RPC_* of the call */
	int64_t deadline_ns;   /* CLOCK_REALTIME; INT64_MAX if none */
};
/* Take the next request (-EAGAIN / -ETIMEDOUT when none came).  A server
 * may hold several and answer them in any order. */
int shmkit_rpc_recv(shmkit_rpc *r, struct shmkit_rpc_req *req, int64_t timeout_ns);
/* Answer with a copy; or loan the response buffer (max_response bytes)
 * and commit it.  -ECANCELED: the caller gave up, or it died and the
 * client entry it held was taken over since (its calls were reset); the
 * response was dropped.  A caller that died while its entry was not yet
 * taken over is not known to be gone: the answer is stored (0) and
 * nobody reads it (shmkit_rpc_abandoned tells a server beforehand,
 * from the entry's lock). */
int shmkit_rpc_respond(shmkit_rpc *r, const struct shmkit_rpc_req *req, const void *resp,
                       size_t len);
/* The same with an application status (0 or positive, e.g. an exit
 * status) that the caller reads with shmkit_rpc_status. */
int shmkit_rpc_respond_status(shmkit_rpc *r, const struct shmkit_rpc_req *req, const void *resp,
                              size_t len, int status);
int shmkit_rpc_respond_loan(shmkit_rpc *r, const struct shmkit_rpc_req *req, void **buf);
int shmkit_rpc_respond_commit(shmkit_rpc *r, const struct shmkit_rpc_req *req, size_t len);
/* 1 if the caller gave up, died or its deadline passed (skip the work),
 * 0 if it still waits, or a negative error. */
int shmkit_rpc_abandoned(shmkit_rpc *r, const struct shmkit_rpc_req *req);

/* Pollable descriptor: SHMKIT_RPC_SERVER readable when requests wait,
 * SHMKIT_RPC_CLIENT when a response to this handle arrived.  One side per
 * handle; ack after it signals, before draining (as shmkit_chan_fd). */
#define SHMKIT_RPC_SERVER 1
#define SHMKIT_RPC_CLIENT 2
int shmkit_rpc_fd(shmkit_rpc *r, int side);
int shmkit_rpc_ack_fd(shmkit_rpc *r);

struct shmkit_rpc_stats {
	uint32_t max_clients, depth, max_request, max_response, max_servers;
	size_t seg_size;       /* bytes of the data area */
	uint64_t requests;     /* calls sent (requeued ones count once) */
	uint64_t responses;    /* answers their callers received */
	uint64_t timeouts;     /* calls given up by their callers */
	uint64_t cancelled;    /* responses dropped: the caller had given up */
	uint64_t retried;      /* idempotent calls given to another server */
	uint64_t reset;        /* calls failed because their server died */
	uint64_t requeued;     /* requests queued again (lost queue entries) */
	uint64_t dropped;      /* stale or forged queue entries skipped */
	uint32_t clients;      /* client entries held by live handles */
	uint32_t servers;      /* server entries held by live handles */
	uint32_t in_flight;    /* call slots in use */
};
int shmkit_rpc_stats(shmkit_rpc *r, struct shmkit_rpc_stats *st);

/* One client or server entry (clients first). */
struct shmkit_rpc_peer {
	int server;            /* 1 server, 0 client */
	unsigned index;
	pid_t pid;             /* display only; 0: the server left cleanly */
	int alive;             /* 1 alive, 0 dead, -1 unknown */
	uint64_t calls;        /* client: calls sent; server: calls taken */
	uint64_t answered;     /* client: answers received; server: given */
	uint64_t cancelled;    /* server: answers dropped (caller gone) */
	uint32_t in_flight;    /* client: call slots in use */
};
int shmkit_rpc_peers(shmkit_rpc *r, int (*fn)(const struct shmkit_rpc_peer *p, void *arg),
                     void *arg);

/* ------------------------------------------------------------------------
 * Journal: a durable append-only log of records in mapped files.
 *
 * A journal PATH is a directory of numbered data files (rolled when full)
 * and PATH/journal.meta.  One writer at a time, enforced by a kernel file
 * lock the writer's death releases; any number of readers in any process.
 * Every record has a sequence number (1, 2, ... without gaps, but for
 * seqs lost to damage that repair marked, and holes a replica's
 * shmkit_journal_append_at left where its leader has them), a
 * CLOCK_REALTIME stamp that never decreases along the journal (a
 * backwards clock step shows as repeated stamps), its length and a
 * CRC-32C.  Each journal has a random identity (stats: id); a replica
 * says whose copy it is (copy_of).  A reader never gets a torn
 * or corrupt record: it gets -EBADMSG.
 * What survives a crash: a process crash loses no committed record under
 * any policy; a power loss keeps every record whose append returned under
 * SHMKIT_DUR_SYNC, those covered by the last group sync under GROUP (or by
 * shmkit_journal_sync()), and what write-back reached the disk otherwise.
 * ------------------------------------------------------------------------ */

typedef struct shmkit_journal shmkit_journal;

enum shmkit_durability {
	SHMKIT_DUR_NONE = 0,   /* the page cache decides */
	SHMKIT_DUR_ASYNC = 1,  /* start write-back of each completed MiB; wait for nothing */
	SHMKIT_DUR_SYNC = 2,   /* fdatasync on each commit */
	SHMKIT_DUR_GROUP = 3,  /* fdatasync every group_records or group_ms */
};

#define SHMKIT_JOURNAL_WRITE 0x100000u /* open for appending (one writer) */
#define SHMKIT_JOURNAL_CREATE 0x200000u /* create if missing */
#define SHMKIT_JOURNAL_ANY_OWNER 0x400000u /* write into a journal directory
                                        owned by another (non-root) user */

struct shmkit_journal_opts {
	unsigned flags;          /* SHMKIT_JOURNAL_* */
	int durability;          /* enum shmkit_durability */
	uint32_t group_records;  /* GROUP: sync every N records (default 64) */
	uint32_t group_ms;       /* GROUP: or every T ms (default 10) */
	size_t file_size;        /* create: bytes per file before rolling
	                            (default 64M, rounded up to a page) */
	uint32_t max_record;     /* create: largest record (default 1M, at
	                            most 1G); both are fixed at creation */
	uint32_t keep_files;     /* writer: retention by count, 0 = keep all */
	uint64_t keep_bytes;     /* writer: retention by total size, 0 = all */
	unsigned mode;           /* create: default 0600 (directory: +x) */
};

struct shmkit_record {
	uint64_t seq;            /* 1, 2, 3, ... */
	int64_t time_ns;         /* CLOCK_REALTIME at append */
	const void *data;        /* valid until the next read call or close */
	uint32_t len;
};

/* Open a journal; opts NULL = a reader.  With SHMKIT_JOURNAL_WRITE the
 * caller becomes the writer: -EBUSY while another writer lives (in any
 * process; a forked child shares its parent's lock, it is not a second
 * writer); a dead writer is replaced at once.  Opening for writing
 * recovers the newest file: a torn or garbage tail is cut back to the last
 * valid record (nothing valid before it is lost).  Damage with intact
 * records after it is no tail: cutting would delete them, so the open is
 * -EBADMSG, changes nothing, and the detail names `shmkit journal repair`
 * (shmkit_journal_repair), which keeps them.  SHMKIT_JOURNAL_CREATE
 * (needs WRITE) makes the directory and journal if missing.  -ENOENT: no
 * journal at path; -EPROTO: not a journal, or one of another format;
 * -EBADMSG: journal.meta damaged, or damage as above.  On failure nothing
 * is left (a journal this call created is removed).  A reader starts at
 * the oldest record. */
int shmkit_journal_open(shmkit_journal **out, const char *path,
                        const struct shmkit_journal_opts *opts);
/* Writer: sync what is pending (any policy but NONE), release the lock.
 * Always frees the handle; returns the sync's error if it failed. */
int shmkit_journal_close(shmkit_journal *j);
/* Append one record (writer only, else -EPERM); returns 0 when it is as
 * durable as the policy says.  *seq (may be NULL) receives its sequence
 * number.  -EMSGSIZE above max_record; -ENOSPC if a new file cannot be
 * made.  A sync error is returned after the record is committed: readers
 * may see it, its durability is unknown.  A failed write-back (fdatasync,
 * or ASYNC's sync_file_range) is final for the handle: every later
 * append, sync and close of it returns the same error (the kernel reports
 * such an error once, and a later sync that succeeds says nothing of the
 * records it lost); open the journal again to go on.  Readers may see a
 * record before its sync completes. */
int shmkit_journal_append(shmkit_journal *j, const void *data, size_t len,
                          uint64_t *seq);
/* Append one record with the caller's sequence number and stamp, for a
 * replica of another journal (writer only; the same durability, crash
 * guarantees and errors as shmkit_journal_append, whose path it is).
 * seq must come after every seq the journal holds (-EEXIST otherwise;
 * -EINVAL for 0 and UINT64_MAX).  A seq past the next one leaves a hole
 * for the seqs between, as repair marks damage: readers skip it (the
 * returned seq shows the jump), verify counts it (report.holes), stats
 * count its seqs.  Into a journal that holds nothing the first record
 * may have any seq: the journal then starts there, with no hole (a copy
 * of a journal whose oldest records went to retention).  time_ns is
 * stored as given, but never below the stamp before it: readers rely on
 * stamps that never decrease (seek by time), so a smaller one is raised
 * to it, as shmkit_journal_append does when the clock steps back (a
 * faithful copy of a journal never needs that). */
int shmkit_journal_append_at(shmkit_journal *j, uint64_t seq, int64_t time_ns,
                             const void *data, size_t len);
/* Writer: make every appended record durable now (fdatasync).  After a
 * failed write-back, this and every later call of the handle fail with
 * that error (see shmkit_journal_append). */
int shmkit_journal_sync(shmkit_journal *j);

/* Readers (any handle): position, then read the next record (1), or
 * -EAGAIN at the end when timeout_ns is 0; waits for new records otherwise
 * (-ETIMEDOUT), on a futex, across file rolls.  seek_seq: next() returns
 * the first record with seq >= the given one (0 = the start), also one
 * not yet written; seek_time: the first with time_ns >= the given one.
 * Records removed by retention before a reader got to them are skipped,
 * and so are holes repair left (the returned seq shows the jump); a
 * follower never reports a sound journal as damaged.  -EBADMSG: damage
 * at the reader's position (no record is returned; see
 * shmkit_journal_repair).  Waiting needs write access to
 * PATH/journal.meta (-EACCES without it); a waiter rechecks at least
 * every 100 ms, so a writer that died before waking it holds it up no
 * longer than that.
 * rec->data is valid until the next read call or close on this handle. */
int shmkit_journal_seek_seq(shmkit_journal *j, uint64_t seq);
int shmkit_journal_seek_time(shmkit_journal *j, int64_t time_ns);
int shmkit_journal_next(shmkit_journal *j, struct shmkit_record *rec,
                        int64_t timeout_ns);

/* A file descriptor for poll/epoll that becomes readable when new records
 * (or a new file) may be there: the mechanism of shmkit_sub_fd.  Readable
 * at once the first time; after it signals call shmkit_journal_ack_fd(),
 * then read with shmkit_journal_next(..., 0) until it returns -EAGAIN.  It may
 * signal spuriously; a writer killed between a commit and its wake is
 * noticed by a poll with a timeout (say 100 ms).  Needs write access to
 * PATH/journal.meta (-EACCES).  Owned by the handle. */
int shmkit_journal_fd(shmkit_journal *j);
int shmkit_journal_ack_fd(shmkit_journal *j);

struct shmkit_journal_stats {
	uint64_t first_seq, last_seq, records;
	uint32_t files;
	uint64_t bytes;
	int durability;          /* the current or last writer's policy */
	pid_t writer_pid;        /* 0 if no live writer (the writer lock
	                            decides), -1 if its pid is unknown */
	uint64_t id;             /* the journal's identity: random, made
	                            with it (one removed and made again under
	                            the same path has another) */
	uint64_t copy_of;        /* the id of the journal this one is a copy
	                            of (shmkit_journal_set_copy_of), 0 if none */
};
/* Files, bytes and records now (first/last_seq 0 when empty; records
 * counts the seqs from first to last, those of holes included). */
int shmkit_journal_stats(shmkit_journal *j, struct shmkit_journal_stats *st);
/* Writer: record that this journal is a copy of the journal whose id
 * (shmkit_journal_stats) is given, so that a replica never takes records
 * of another journal under the same name (the bridge refuses them).  Set
 * once for the journal's life: 0 if it is already a copy of id, -EEXIST
 * if of another (remove the copy to copy another journal), -EINVAL for
 * id 0, -EPERM without the writer lock.  Kept in journal.meta and the
 * data files' headers under their checksums (repair keeps it); builds
 * before it ignore it. */
int shmkit_journal_set_copy_of(shmkit_journal *j, uint64_t id);

/* Check every file without changing anything: 0 if clean, -EBADMSG if
 * damaged; the report says where the first damage is, how many records
 * are intact, and exactly which seqs repair would drop.  Repair takes the
 * writer lock (-EBUSY while a writer lives) and keeps every intact record:
 * damage followed by intact records becomes a hole, a marker readers
 * skip (next() returns the record after it, its seq showing the jump);
 * seqs missing between files are marked so too; garbage after the last
 * valid record of a file is zeroed (a torn tail).  A file whose header is
 * damaged gets a new one if anything in it is intact, and is removed if
 * nothing is.  0 when done, the report saying what was dropped: verify
 * is then clean (holes are not damage; it counts them).  A damaged
 * journal.meta (or a missing one beside data files) is -EBADMSG for
 * verify; repair rebuilds it from the header of the oldest sound data
 * file (journal id and settings), then goes on as above.  With no sound
 * data file, or data files of two journals, repair is -EBADMSG and
 * changes nothing.  Files holding holes are of format version 2: builds
 * before holes refuse them (-EPROTO) rather than misread them. */
struct shmkit_journal_report {
	uint64_t valid_records;  /* intact records (holes not counted) */
	uint64_t last_valid_seq; /* seq of the last of them */
	uint64_t damaged_bytes;  /* bytes damaged: garbage after a file's last
	                            valid record, bytes a hole covers, damaged
	                            headers, files dropped whole */
	char where[256];         /* file and offset of the first damage */
	char meta_rebuilt_from[32]; /* repair: the data file (a name in the
	                               journal directory) journal.meta was
	                               rebuilt from; "" if it was not */
	/* What damage costs, exactly (verify: what repair would drop; repair:
	 * what it dropped).  A seq is dropped when its record is damaged or
	 * in no file; bytes that name no seq (a torn tail of the newest file,
	 * a file of garbage) are in damaged_bytes only. */
	uint64_t dropped_records;   /* seqs dropped */
	uint64_t dropped_first_seq; /* the lowest and highest (0 if none) */
	uint64_t dropped_last_seq;
	uint32_t dropped_ranges;    /* runs of consecutive seqs */
	uint32_t holes;             /* holes an earlier repair left (not
	                               damage), and the seqs they stand for */
	uint64_t hole_records;
	char dropped[128];          /* the runs, "4 9-12" (" ..." if more) */
};
int shmkit_journal_verify(const char *path, struct shmkit_journal_report *r);
int shmkit_journal_repair(const char *path, struct shmkit_journal_report *r);

/* Remove the journal at path: journal.meta, its data files and stray
 * temporaries, then the directory.  -EBUSY while a writer lives (its lock
 * is held during the removal, so none starts meanwhile); -ELOOP for a
 * symbolic link; -EPROTO for a directory that is no journal; -ENOTEMPTY
 * when other files keep the directory (the journal's own are gone).  A
 * reader still open keeps reading what it has mapped. */
int shmkit_journal_remove(const char *path);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start):
 * the checksum journal records and the bridge's frames carry; SSE4.2's
 * instruction where the CPU has it.  shmkit_crc32c(0, "123456789", 9) is
 * 0xE3069283.  Returns the checksum (not an error: data may be NULL only
 * with len 0). */
uint32_t shmkit_crc32c(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* SHMKIT_H */
