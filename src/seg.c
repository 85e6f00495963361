/*
 * seg.c - segments: one API over the five backends (seg_posix.c,
 * seg_sysv.c, seg_file.c, seg_anon.c, seg_memfd.c), each behind an ops
 * table, plus the managed-segment header (format and protocol in seg.h).
 */
#include <ctype.h>
#include <fcntl.h>
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "peer.h"
#include "seg.h"

#define SK_ALL_FLAGS (SHMKIT_EXCL | SHMKIT_RDONLY | SHMKIT_COW | SHMKIT_POPULATE | \
                      SHMKIT_MLOCK | SHMKIT_HUGE | SHMKIT_RAW | SHMKIT_NOSEAL | SHMKIT_PERSIST)
#define SK_OPEN_ONLY (SHMKIT_RDONLY | SHMKIT_COW | SHMKIT_RAW)

static const struct sk_backend_ops *backend_ops(int backend)
{
	switch (backend) {
	case SHMKIT_POSIX: return &sk_posix_ops;
	case SHMKIT_SYSV: return &sk_sysv_ops;
	case SHMKIT_FILE: return &sk_file_ops;
	case SHMKIT_ANON: return &sk_anon_ops;
	case SHMKIT_MEMFD: return &sk_memfd_ops;
	}
	return NULL;
}

/* ---- names ------------------------------------------------------------ */

static int parse_long(const char *s, int base, long min, long max, long *out)
{
	char *end;

	if (!*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || *end || v < (unsigned long)min || v > (unsigned long)max)
		return -EINVAL;
	*out = (long)v;
	return 0;
}

static int parse_posix(const char *s, struct sk_name *n)
{
	if (*s == '/')
		s++;
	if (!*s)
		return sk_fail(-EINVAL, "empty POSIX shared memory name");
	if (strchr(s, '/'))
		return sk_fail(-EINVAL, "a POSIX shared memory name has one '/', at the start");
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return sk_fail(-EINVAL, "'%s' is not a valid name", s);
	if (strlen(s) > NAME_MAX)
		return sk_fail(-ENAMETOOLONG, "POSIX names are at most %d bytes", NAME_MAX);
	n->backend = SHMKIT_POSIX;
	snprintf(n->path, sizeof(n->path), "/%s", s);
	snprintf(n->canon, sizeof(n->canon), "posix:/%s", s);
	return 0;
}

static int parse_sysv(const char *s, struct sk_name *n)
{
	long v;

	n->backend = SHMKIT_SYSV;
	if (!strncmp(s, "id=", 3)) {
		if (parse_long(s + 3, 10, 0, INT_MAX, &v))
			return sk_fail(-EINVAL, "'%s': id= takes a decimal shmid", s);
		n->shmid = (int)v;
		snprintf(n->canon, sizeof(n->canon), "sysv:id=%d", n->shmid);
		return 0;
	}
	if (*s == '/') {
		const char *colon = strrchr(s, ':');
		if (!colon || colon == s || !colon[1])
			return sk_fail(-EINVAL, "'%s': expected /PATH:PROJ", s);
		if (parse_long(colon + 1, 0, 1, 255, &v))
			return sk_fail(-EINVAL, "'%s': PROJ must be 1..255", s);
		size_t len = (size_t)(colon - s);
		if (len >= sizeof(n->path))
			return sk_fail(-ENAMETOOLONG, "ftok path too long");
		memcpy(n->path, s, len);
		n->path[len] = '\0';
		n->proj = (int)v;
		key_t k = ftok(n->path, n->proj);
		if (k == -1)
			return sk_fail(sk_neg_errno(), "ftok(%s, %d) failed", n->path, n->proj);
		n->key = k;
		snprintf(n->canon, sizeof(n->canon), "sysv:%s:%d", n->path, n->proj);
		return 0;
	}
	if (parse_long(s, 0, 1, 0xffffffffL, &v))
		return sk_fail(-EINVAL, "'%s': bad System V key (0x1..0xffffffff; 0 is IPC_PRIVATE)", s);
	n->key = (long)(int32_t)(uint32_t)v;
	snprintf(n->canon, sizeof(n->canon), "sysv:0x%08x", (unsigned)v);
	return 0;
}

int sk_parse_name(const char *name, struct sk_name *n)
{
	memset(n, 0, sizeof(*n));
	n->shmid = -1;
	if (!name || !*name)
		return sk_fail(-EINVAL, "empty segment name");
	if (strlen(name) >= PATH_MAX)
		return sk_fail(-ENAMETOOLONG, "name longer than PATH_MAX");
	if (!strncmp(name, "posix:", 6))
		return parse_posix(name + 6, n);
	if (!strncmp(name, "sysv:", 5))
		return parse_sysv(name + 5, n);
	if (!strncmp(name, "file:", 5)) {
		if (!name[5])
			return sk_fail(-EINVAL, "empty file path");
		n->backend = SHMKIT_FILE;
		snprintf(n->path, sizeof(n->path), "%s", name + 5);
		snprintf(n->canon, sizeof(n->canon), "file:%s", n->path);
		return 0;
	}
	if (!strcmp(name, "anon")) {
		n->backend = SHMKIT_ANON;
		snprintf(n->canon, sizeof(n->canon), "anon");
		return 0;
	}
	if (!strncmp(name, "memfd:", 6)) {
		if (!name[6])
			return sk_fail(-EINVAL, "empty memfd name");
		if (strlen(name + 6) > 249)
			return sk_fail(-ENAMETOOLONG, "memfd names are at most 249 bytes");
		n->backend = SHMKIT_MEMFD;
		snprintf(n->path, sizeof(n->path), "%s", name + 6);
		snprintf(n->canon, sizeof(n->canon), "memfd:%s", n->path);
		return 0;
	}
	const char *colon = strchr(name, ':');
	if (colon && !strchr(name, '/'))
		return sk_fail(-EINVAL, "unknown backend '%.*s' (posix, sysv, file, anon, memfd)",
		               (int)(colon - name), name);
	return parse_posix(name, n);
}

/* ---- header ----------------------------------------------------------- */

static uint32_t fnv1a(uint32_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (uint8_t)(v >> (8 * i));
		h *= 16777619u;
	}
	return h;
}

/* Everything two builds must agree on to share a segment. */
static uint32_t layout_fingerprint(void)
{
	const uint64_t facts[] = {
		sizeof(struct sk_seg_hdr), offsetof(struct sk_seg_hdr, state),
		offsetof(struct sk_seg_hdr, data_off), offsetof(struct sk_seg_hdr, creator_start),
		offsetof(struct sk_seg_hdr, flags), offsetof(struct sk_seg_hdr, peer_next),
		sizeof(long), sizeof(void *), _Alignof(uint64_t), SK_HDR_SIZE,
		sizeof(shmkit_mutex), sizeof(shmkit_ec), sizeof(shmkit_sem),
		__BYTE_ORDER__,
	};
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < SK_ARRAY_LEN(facts); i++)
		h = fnv1a(h, facts[i]);
	return h;
}

static void header_fill(shmkit_seg *s, int kind)
{
	struct sk_seg_hdr *h = s->map;

	/* Relaxed atomic: openers peek at magic before state says READY; the
	 * release store of state in header_publish() orders it for them. */
	sk_store_relaxed(&h->magic, SK_SEG_MAGIC);
	h->version = SK_SEG_VERSION;
	h->fingerprint = layout_fingerprint();
	h->kind = (uint32_t)kind;
	h->map_size = s->map_size;
	h->data_off = s->data_off;
	h->data_size = s->data_size;
	h->creator_pid = getpid();
	h->creator_uid = getuid();
	h->created_ns = sk_realtime_ns();
	h->creator_start = sk_self_start();
	h->flags = (s->flags & SHMKIT_PERSIST) ? SK_HDR_PERSIST : 0;
	s->hdr_flags = h->flags;
	s->kind = kind;
	s->creator_pid = h->creator_pid;
	s->creator_start = h->creator_start;
	s->created_ns = h->created_ns;
	s->version = SK_SEG_VERSION;
}

static void header_publish(shmkit_seg *s)
{
	struct sk_seg_hdr *h = s->map;

	/* Release: orders every header field and the service's data area
	 * written above before READY; pairs with the acquire load of state
	 * in header_wait_ready() of every opener. */
	sk_store_release(&h->state, SK_STATE_READY);
	sk_futex_wake(&h->state, -1);
}

/* System V: is the creator of a segment still in INIT gone?  It locked
 * byte 0 of the key's lock file before the segment existed and unlocks it
 * after READY (seg.h), so byte 0 free while the state still reads INIT
 * (read after the lock was seen free) means it died. */
static bool creator_gone(const shmkit_seg *s)
{
	const struct sk_seg_hdr *h = s->map;

	if (s->name.backend != SHMKIT_SYSV || s->lock_fd < 0 || sk_peer_held(s, SK_PEER_CREATOR) != 0)
		return false;
	/* Acquire: pairs with the release store of READY in header_publish(),
	 * which precedes the creator's unlock. */
	return sk_load_acquire(&h->state) == SK_STATE_INIT;
}

#define SK_INIT_CHECK_NS 10000000LL /* how often a waiting opener asks for the creator */

static int header_wait_ready(const shmkit_seg *s, int64_t timeout_ns)
{
	const struct sk_seg_hdr *h = s->map;
	int64_t deadline = sk_deadline(timeout_ns ? timeout_ns : SK_DEFAULT_OPEN_TIMEOUT_NS);

	for (;;) {
		/* Acquire: pairs with the release store of READY in
		 * header_publish(); makes the creator's writes visible. */
		uint32_t st = sk_load_acquire(&h->state);
		if (st == SK_STATE_READY)
			return 0;
		if (st == SK_STATE_FAILED && sk_load_relaxed(&h->magic) == SK_SEG_MAGIC)
			return sk_fail(-ENOENT, "its creator failed to initialise it");
		/* Relaxed loads of magic here and below: only telling a foreign
		 * segment from ours; no field is trusted before the acquire of
		 * READY above (pairs with header_publish). */
		if (st != SK_STATE_INIT && sk_load_relaxed(&h->magic) != SK_SEG_MAGIC)
			return sk_fail(-EPROTO, "no shmkit header (a foreign segment? open it raw)");
		if (st != SK_STATE_INIT)
			return sk_fail(-EBADMSG, "header state word %u is invalid", st);
		if (creator_gone(s))
			return sk_fail(-EOWNERDEAD, "its creator died while initialising it");
		int64_t now = sk_now_ns();
		if (now >= deadline)
			break;
		int64_t until = deadline - now > SK_INIT_CHECK_NS ? now + SK_INIT_CHECK_NS : deadline;
		sk_futex_wait_until(&h->state, st, until);
	}
	if (sk_load_relaxed(&h->magic) == SK_SEG_MAGIC)
		return sk_fail(-ETIMEDOUT, "creator did not finish initialising");
	return sk_fail(-EPROTO, "no shmkit header (a foreign segment? open it raw)");
}

/* Is there a shmkit header to read through the mapping?  Reading a page
 * of a sparse tmpfs file through a mapping allocates it, and when the
 * file system is full that is SIGBUS - a user who can truncate a file in
 * /dev/shm and fill the rest could kill root's `shmkit ls`.  So for the
 * fd backends the first look goes through the descriptor: pread of a hole
 * returns zeros and allocates nothing; and a header page that is a hole
 * (SEEK_DATA) is no shmkit header, whose creator sizes and reserves its
 * file before writing it.  1: our magic is there (the page holds data:
 * the mapping may be read); 0: a zero, still-unwritten header page that
 * is backed (a creator may be filling it); -EAGAIN: the header page is
 * a hole (a sparse foreign segment, or a creator that has not written it
 * yet: open_existing waits a while); -EPROTO: not ours.
 * System V and anon (no fd) answer from the mapping: no tmpfs limit. */
static int header_peek(const shmkit_seg *s)
{
	uint64_t magic = 0;

	if (s->fd < 0) {
		/* Relaxed: a first look, as in header_check. */
		magic = sk_load_relaxed(&((const struct sk_seg_hdr *)s->map)->magic);
	} else {
		ssize_t n = pread(s->fd, &magic, sizeof(magic), 0);
		if (n != (ssize_t)sizeof(magic))
			return sk_fail(-EPROTO, "no shmkit header (cannot read one: %s)",
			               n < 0 ? strerror(errno) : "short file");
		if (magic == 0 && lseek(s->fd, 0, SEEK_DATA) != 0)
			return sk_fail(-EAGAIN, "no shmkit header (its first page is a hole: a "
			               "sparse foreign segment, or a creator still sizing it)");
	}
	if (magic == SK_SEG_MAGIC)
		return 1;
	if (magic != 0)
		return sk_fail(-EPROTO, "no shmkit header (a foreign segment? open it raw)");
	return 0;
}

/* Validate the header of a freshly mapped segment and cache its fields. */
static int header_check(shmkit_seg *s, int64_t timeout_ns)
{
	const struct sk_seg_hdr *h = s->map;

	if (s->map_size < SK_HDR_SIZE)
		return sk_fail(-EPROTO, "%zu bytes: too small to hold a shmkit header", s->map_size);
	/* A first look to refuse foreign (and sparse) segments at once, not
	 * through the mapping (header_peek); a creator still initialising
	 * shows 0 or the magic (relaxed store in header_fill), and READY is
	 * then awaited with acquire. */
	int err = header_peek(s);
	if (err < 0)
		return err;
	err = header_wait_ready(s, timeout_ns);
	if (err)
		return err;
	if (h->magic != SK_SEG_MAGIC)
		return sk_fail(-EPROTO, "bad magic");
	uint32_t version = h->version, fp = h->fingerprint, kind = h->kind;
	uint64_t map_size = h->map_size, off = h->data_off, size = h->data_size;
	if (version != SK_SEG_VERSION)
		return sk_fail(-EPROTO, "format version %u, this build reads %u", version, SK_SEG_VERSION);
	if (fp != layout_fingerprint())
		return sk_fail(-EPROTO, "layout fingerprint %08x differs from this build's %08x",
		               fp, layout_fingerprint());
	if (kind < SHMKIT_KIND_BYTES || kind > SHMKIT_KIND_RPC)
		return sk_fail(-EBADMSG, "header kind %u is invalid", kind);
	if (map_size > s->map_size)
		return sk_fail(-EBADMSG, "segment is %zu bytes but its header says %llu (truncated?)",
		               s->map_size, (unsigned long long)map_size);
	if (off < sizeof(*h) || off > map_size || size > map_size - off)
		return sk_fail(-EBADMSG, "header data area %llu+%llu out of bounds",
		               (unsigned long long)off, (unsigned long long)size);
	/* Page-aligned, as every creator lays it out: a misaligned data
	 * area would misalign every futex word and atomic in it (EINVAL
	 * from the kernel, undefined behaviour here). */
	if (off % sk_page_size())
		return sk_fail(-EBADMSG, "header data offset %llu is not page-aligned",
		               (unsigned long long)off);
	s->kind = (int)kind;
	s->data_off = off;
	s->data_size = size;
	s->version = version;
	s->creator_pid = h->creator_pid;
	s->creator_start = h->creator_start;
	s->created_ns = h->created_ns;
	s->hdr_flags = h->flags & SK_HDR_PERSIST;
	return 0;
}

/* ---- create / open ---------------------------------------------------- */

static int check_opts(const struct shmkit_seg_opts *o, bool create)
{
	if (o->flags & ~SK_ALL_FLAGS)
		return sk_fail(-EINVAL, "unknown flags 0x%x", o->flags & ~SK_ALL_FLAGS);
	if (o->mode & ~07777u)
		return sk_fail(-EINVAL, "mode %o is not a permission mode", o->mode);
	if (create && (o->flags & SK_OPEN_ONLY))
		return sk_fail(-EINVAL, "read-only, copy-on-write and raw are attach options");
	if ((o->flags & SHMKIT_RDONLY) && (o->flags & SHMKIT_COW))
		return sk_fail(-EINVAL, "read-only and copy-on-write exclude each other");
	return 0;
}

static shmkit_seg *seg_alloc(const struct sk_name *n, unsigned flags)
{
	shmkit_seg *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->name = *n;
	s->ops = backend_ops(n->backend);
	s->fd = -1;
	s->lock_fd = -1;
	s->shmid = -1;
	s->flags = flags;
	return s;
}

/* close() releases whatever the handle holds: a mapping, an fd (an empty
 * object has an fd but no mapping), a System V attach. */
static void seg_free(shmkit_seg *s)
{
	s->ops->close(s);
	free(s);
}

static int apply_mlock(shmkit_seg *s)
{
	if (!(s->flags & SHMKIT_MLOCK))
		return 0;
	if (mlock(s->map, s->map_size) == 0)
		return 0;
	int err = sk_neg_errno();
	if (err == -EAGAIN)
		err = -ENOMEM;
	return sk_fail(err, "mlock of %zu bytes refused (RLIMIT_MEMLOCK?)", s->map_size);
}

static int round_size(size_t data, unsigned flags, size_t *map_size)
{
	size_t align = (flags & SHMKIT_HUGE) ? (2u << 20) : sk_page_size();
	if (data > SIZE_MAX / 2 - SK_HDR_SIZE - align)
		return sk_fail(-EINVAL, "size %zu too large", data);
	*map_size = (SK_HDR_SIZE + data + align - 1) & ~(align - 1);
	return 0;
}

static int open_existing(shmkit_seg **out, const struct sk_name *n,
                         const struct shmkit_seg_opts *o, int kind);

/* Mark the segment in use for as long as this handle lives: a shared
 * lock on byte SK_PEER_ATTACHED of its file, through the handle's own
 * descriptor (fd backends; System V counts attaches itself).  The kernel
 * drops it with the descriptor, so `gc` and `ls` ask the kernel, in any
 * PID namespace, whether anyone has the segment open (seg_in_use). */
static void attach_mark(shmkit_seg *s)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
	                    .l_start = SK_PEER_ATTACHED, .l_len = 1 };

	if (s->fd >= 0)
		fcntl(s->fd, F_OFD_SETLK, &fl); /* best effort: only a hint is lost */
}

/* Fill the header and the service's data area of a just-made object and
 * publish it: READY, then its name where it has none yet (seg.h).  On
 * failure the object is gone (named: FAILED, then removed; unnamed: closed)
 * and s is ready for another create. */
static int seg_init(shmkit_seg *s, const struct shmkit_seg_opts *o, int kind,
                    int (*init)(void *data, size_t size, void *arg), void *arg)
{
	struct sk_seg_hdr *h = s->map;
	int err;

	s->data_off = SK_HDR_SIZE;
	s->data_size = o->size; /* exactly what was asked; the page slack stays unused */
	header_fill(s, kind);
	if (!(err = apply_mlock(s)) && init)
		err = init((char *)s->map + s->data_off, s->data_size, arg);
	if (err) {
		if (s->linked || !s->ops->publish) {
			/* Release: pairs with the acquire load in
			 * header_wait_ready() of an opener already waiting,
			 * which then retries. */
			sk_store_release(&h->state, SK_STATE_FAILED);
			sk_futex_wake(&h->state, -1);
			if (s->name.backend != SHMKIT_ANON && s->name.backend != SHMKIT_MEMFD)
				s->ops->remove(&s->name);
		}
		s->ops->close(s);
		return err;
	}
	header_publish(s);
	if (s->ops->publish && (err = s->ops->publish(s))) {
		s->ops->close(s); /* unnamed: the object goes with its last fd */
		return err;
	}
	if (s->lock_fd >= 0 && s->name.backend == SHMKIT_SYSV) {
		struct sk_peer creator = { .fd = s->lock_fd };
		sk_peer_unlock(&creator, SK_PEER_CREATOR); /* after READY: see creator_gone() */
	}
	return 0;
}

int sk_seg_create_kind(shmkit_seg **out, const char *name,
                       const struct shmkit_seg_opts *o, int kind,
                       int (*init)(void *data, size_t size, void *arg), void *arg)
{
	struct sk_name n;
	size_t map_size = 0;
	int err;

	if (!out || !o)
		return -EINVAL;
	*out = NULL;
	if ((err = sk_parse_name(name, &n)) || (err = check_opts(o, true)))
		return err;
	if (o->size == 0)
		return sk_fail(-EINVAL, "size must be at least 1 byte");
	if ((err = round_size(o->size, o->flags, &map_size)))
		return err;
	shmkit_seg *s = seg_alloc(&n, o->flags);
	if (!s)
		return -ENOMEM;
	/* Create-or-open: if the object vanished between our EEXIST and our
	 * open (removed, or its creator failed or died), try again, a
	 * bounded number of times. */
	for (int tries = 0;; tries++) {
		err = s->ops->create(s, map_size, o);
		if (!err && !(err = seg_init(s, o, kind, init, arg))) {
			attach_mark(s);
			s->made = true;
			*out = s;
			return 0;
		}
		if (err != -EEXIST || (o->flags & SHMKIT_EXCL) || tries == 8)
			break;
		err = open_existing(out, &n, o, kind);
		if (err != -ENOENT)
			break;
	}
	free(s);
	return err;
}

static int open_existing(shmkit_seg **out, const struct sk_name *n,
                         const struct shmkit_seg_opts *o, int kind)
{
	int64_t timeout = o->init_timeout_ns ? o->init_timeout_ns : SK_DEFAULT_OPEN_TIMEOUT_NS;
	int64_t deadline = sk_deadline(timeout);
	int err;

	if (n->backend == SHMKIT_ANON || n->backend == SHMKIT_MEMFD)
		return sk_fail(-EINVAL, "%s segments cannot be opened by name%s", n->canon,
		               n->backend == SHMKIT_MEMFD ? "; receive the fd instead" : "");
	shmkit_seg *s = seg_alloc(n, o->flags);
	if (!s)
		return -ENOMEM;
	for (;;) {
		if ((err = s->ops->open(s, o)))
			break;
		if (o->flags & SHMKIT_RAW) {
			s->data_off = 0;
			s->data_size = s->map_size;
			break;
		}
		/* A creator between its exclusive create and its ftruncate shows
		 * an empty object: retry until the deadline, then give up.  One
		 * sized but shorter than a header is never a creator's (it sizes
		 * in one step): refuse it at once. */
		int64_t left = deadline == INT64_MAX ? -1 : deadline - sk_now_ns();
		if (s->map_size > 0 || left <= 0) {
			err = header_check(s, left > 0 || left == -1 ? left : 1);
			/* A sized object whose header page is still a hole: a
			 * creator between sizing and writing it (the O_EXCL
			 * path), like an empty one above - until the deadline. */
			if (err != -EAGAIN || (left != -1 && left <= 0))
				break;
			err = 0;
		}
		s->ops->close(s);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (err == -EAGAIN)
		err = sk_fail(-EPROTO, "no shmkit header (its first page is a hole: a sparse "
		              "foreign segment? open it raw)");
	if (err == -EOWNERDEAD) {
		/* The very segment we attached (its shmid), not whatever the key
		 * names by now; a create-or-open then makes it afresh. */
		shmctl(s->shmid, IPC_RMID, NULL);
		err = sk_fail(-ENOENT, "%s: its creator died while initialising it; removed", n->canon);
	}
	if (!err && kind && s->kind != kind)
		err = sk_fail(-EPROTO, "%s holds a segment of kind %d, not %d", n->canon, s->kind, kind);
	if (!err)
		err = apply_mlock(s);
	if (err) {
		seg_free(s);
		return err;
	}
	*out = s;
	return 0;
}

int sk_seg_open_kind(shmkit_seg **out, const char *name,
                     const struct shmkit_seg_opts *o, int kind)
{
	struct sk_name n;
	int err;

	if (!out || !o)
		return sk_fail(-EINVAL, "no place for the handle (out is NULL)");
	*out = NULL;
	if ((err = sk_parse_name(name, &n)) || (err = check_opts(o, false)))
		return err;
	if ((o->flags & SHMKIT_RAW) && kind)
		return sk_fail(-EINVAL, "a service cannot be opened raw");
	if (!(err = open_existing(out, &n, o, kind)))
		attach_mark(*out);
	return err;
}

int sk_seg_from_fd(shmkit_seg **out, int fd, const struct sk_name *n,
                   const struct shmkit_seg_opts *o)
{
	int err;
	shmkit_seg *s = seg_alloc(n, o->flags);

	if (!s)
		return -ENOMEM;
	if ((err = sk_fd_map(s, fd, o))) {
		free(s);
		return err;
	}
	s->fd = fd;
	if (o->flags & SHMKIT_RAW) {
		s->data_off = 0;
		s->data_size = s->map_size;
	} else if ((err = header_check(s, o->init_timeout_ns))) {
		s->fd = -1; /* the caller keeps its fd on failure */
		seg_free(s);
		return err;
	}
	*out = s;
	return 0;
}

static const struct shmkit_seg_opts default_opts;

int shmkit_seg_create(shmkit_seg **out, const char *name, const struct shmkit_seg_opts *opts)
{
	sk_clear_detail();
	if (!opts)
		return sk_fail(-EINVAL, "a size is needed to create a segment");
	return sk_seg_create_kind(out, name, opts, SHMKIT_KIND_BYTES, NULL, NULL);
}

int shmkit_seg_open(shmkit_seg **out, const char *name, const struct shmkit_seg_opts *opts)
{
	sk_clear_detail();
	return sk_seg_open_kind(out, name, opts ? opts : &default_opts, 0);
}

int shmkit_seg_close(shmkit_seg *seg)
{
	if (seg)
		seg_free(seg);
	return 0;
}

int shmkit_seg_remove(const char *name)
{
	struct sk_name n;
	int err;

	sk_clear_detail();
	if ((err = sk_parse_name(name, &n)))
		return err;
	return backend_ops(n.backend)->remove(&n);
}

void *shmkit_seg_data(const shmkit_seg *seg)
{
	return seg ? (char *)seg->map + seg->data_off : NULL;
}

size_t shmkit_seg_size(const shmkit_seg *seg)
{
	return seg ? seg->data_size : 0;
}

int shmkit_seg_kind(const shmkit_seg *seg)
{
	return seg ? seg->kind : -EINVAL;
}

int shmkit_seg_backend(const shmkit_seg *seg)
{
	return seg ? seg->name.backend : -EINVAL;
}

int shmkit_seg_fd(const shmkit_seg *seg)
{
	return seg ? seg->fd : -EINVAL;
}

int shmkit_seg_sync(shmkit_seg *seg, size_t off, size_t len, unsigned flags)
{
	sk_clear_detail();
	if (!seg || (flags & ~(SHMKIT_SYNC_ASYNC | SHMKIT_SYNC_INVALIDATE)))
		return -EINVAL;
	if (off > seg->data_size || len > seg->data_size - off)
		return sk_fail(-EINVAL, "range %zu+%zu outside the %zu-byte data area",
		               off, len, seg->data_size);
	if (seg->name.backend != SHMKIT_FILE || (seg->flags & SHMKIT_COW))
		return 0;
	struct stat st;
	if (fstat(seg->fd, &st))
		return sk_neg_errno();
	if ((uint64_t)st.st_size < seg->map_size)
		return sk_fail(-EBADMSG, "file is %lld bytes, shorter than its %zu-byte mapping "
		               "(truncated behind shmkit's back)", (long long)st.st_size, seg->map_size);
	if (len == 0)
		len = seg->data_size - off;
	/* msync wants a page-aligned start: widen the range down to a page. */
	size_t start = seg->data_off + off, page = sk_page_size();
	size_t aligned = start & ~(page - 1);
	int how = (flags & SHMKIT_SYNC_ASYNC) ? MS_ASYNC : MS_SYNC;
	if (flags & SHMKIT_SYNC_INVALIDATE)
		how |= MS_INVALIDATE;
	if (msync((char *)seg->map + aligned, len + (start - aligned), how))
		return sk_neg_errno();
	return 0;
}

/* ---- stat / list ------------------------------------------------------ */

static void stat_from_handle(const shmkit_seg *s, struct shmkit_seg_info *st)
{
	memset(st, 0, sizeof(*st));
	st->backend = s->name.backend;
	st->kind = s->kind;
	snprintf(st->name, sizeof(st->name), "%s", s->name.canon);
	st->map_size = s->map_size;
	st->data_size = s->data_size;
	st->data_offset = s->data_off;
	st->creator_pid = s->creator_pid;
	st->creator_alive = s->creator_pid > 0 ? sk_proc_alive(s->creator_pid, s->creator_start) : -1;
	st->created_ns = s->created_ns;
	st->attach_count = -1;
	st->shmid = -1;
	st->version = s->version;
	st->persistent = (s->hdr_flags & SK_HDR_PERSIST) != 0;
	st->in_use = 1; /* this handle has it */
}

/* Does anyone hold the segment open (attach_mark)?  Asked through a
 * descriptor that holds no such lock itself (shmkit_seg_info_name's). */
static int seg_in_use(const shmkit_seg *s, const struct shmkit_seg_info *st)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = SK_PEER_ATTACHED, .l_len = 1 };

	if (st->backend == SHMKIT_SYSV)
		return st->attach_count > 0;
	if (s->fd < 0 || fcntl(s->fd, F_OFD_GETLK, &fl))
		return -1;
	return fl.l_type != F_UNLCK;
}

int shmkit_seg_info(const shmkit_seg *seg, struct shmkit_seg_info *st)
{
	if (!seg || !st)
		return -EINVAL;
	stat_from_handle(seg, st);
	return seg->ops->stat(seg, st);
}

int shmkit_seg_info_name(const char *name, struct shmkit_seg_info *st)
{
	struct shmkit_seg_opts o = { .flags = SHMKIT_RDONLY | SHMKIT_RAW };
	struct sk_name n;
	shmkit_seg *s;
	int err, init = 0;

	if (!st)
		return -EINVAL;
	sk_clear_detail();
	/* Not sk_seg_open_kind: a look must not mark the segment in use. */
	if ((err = sk_parse_name(name, &n)) || (err = open_existing(&s, &n, &o, 0)))
		return err;
	/* Read the header if there is one; a foreign segment stays raw. */
	const struct sk_seg_hdr *h = s->map;
	if (s->map_size >= SK_HDR_SIZE && header_peek(s) == 1) {
		err = header_check(s, 1);
		if (err == -ETIMEDOUT || err == -EOWNERDEAD)
			init = err == -EOWNERDEAD ? 2 : 1;
		if (err)
			s->kind = SHMKIT_KIND_FOREIGN;
		if (init) {
			/* Relaxed: a look at a header still being written;
			 * bounded, shown only. */
			uint32_t kind = sk_load_relaxed(&h->kind);
			s->kind = kind >= SHMKIT_KIND_BYTES && kind <= SHMKIT_KIND_RPC ? (int)kind
			                                                                 : SHMKIT_KIND_BYTES;
		}
	} else {
		s->kind = SHMKIT_KIND_FOREIGN;
	}
	sk_clear_detail();
	err = shmkit_seg_info(s, st);
	st->initialising = init;
	/* System V counts the brief attach made here to read the header: report
	 * the attaches of everyone else. */
	if (!err && st->backend == SHMKIT_SYSV && st->attach_count > 0)
		st->attach_count--;
	if (!err)
		st->in_use = seg_in_use(s, st);
	seg_free(s);
	return err;
}

int sk_seg_peek_kind(const char *name)
{
	struct shmkit_seg_info st;
	int err = shmkit_seg_info_name(name, &st);

	return err ? err : st.kind;
}

static int list_one(const char *name, int (*fn)(const struct shmkit_seg_info *, void *),
                    void *arg)
{
	struct shmkit_seg_info st;

	if (shmkit_seg_info_name(name, &st))
		return 0; /* vanished, or no permission: skip */
	return fn(&st, arg);
}

int shmkit_seg_list(int (*fn)(const struct shmkit_seg_info *st, void *arg), void *arg)
{
	char name[PATH_MAX + 16];
	int ret = 0;

	if (!fn)
		return -EINVAL;
	DIR *d = opendir("/dev/shm");
	if (d) {
		struct dirent *e;
		while (!ret && (e = readdir(d))) {
			/* POSIX semaphores live in /dev/shm as sem.NAME: not segments. */
			if (e->d_name[0] == '.' || !strncmp(e->d_name, "sem.", 4))
				continue;
			if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
				continue;
			snprintf(name, sizeof(name), "posix:/%s", e->d_name);
			ret = list_one(name, fn, arg);
		}
		closedir(d);
	}
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	if (f) {
		char line[512];
		long key;
		int id;
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		while (!ret && fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%ld %d", &key, &id) != 2)
				continue;
			snprintf(name, sizeof(name), "sysv:id=%d", id);
			ret = list_one(name, fn, arg);
		}
		fclose(f);
	}
	return ret;
}

int shmkit_parse_size(const char *s, size_t *out)
{
	char *end;

	sk_clear_detail();
	if (!s || !out)
		return sk_fail(-EINVAL, "size or result is NULL");
	if (!*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return sk_fail(-EINVAL, "size '%s': digits first (no sign, no space)", s);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s)
		return sk_fail(-EINVAL, "size '%s' is not a number", s);
	if (errno == ERANGE)
		return sk_fail(-ERANGE, "size '%s' is too large", s);
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (*end == 'i' || *end == 'B'))
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return sk_fail(-EINVAL, "size '%s': unknown suffix '%s' (K, M, G, T)", s, end);
	if (shift && v > (SIZE_MAX >> shift))
		return sk_fail(-ERANGE, "size '%s' is too large", s);
	*out = (size_t)(v << shift);
	return 0;
}
