/*
 * chan.c - channels: a named bounded queue in shared memory; each message
 * goes to exactly one receiver.  The byte layout is in chan.h.  This file
 * lays a channel out and binds a handle to it (create, open, attach,
 * close, embedded channels) and keeps its statistics; chan_msg.c runs the
 * protocols (its file-top essay: MPMC and SPSC, the models), chan_recover.c
 * recovers what a crash leaves (its essay: recovery, owners).  chan_int.h
 * holds what they share.
 *
 * ---- Corruption ---------------------------------------------------------
 *
 * Capacity, max_msg and slot size are read once at open, checked against
 * the segment size, and never re-read.  Every shared index and seq word is
 * read into a local and classified against them; anything the invariants
 * of chan.h rule out is -EBADMSG.  Loops that follow shared values are
 * bounded (SK_CHAN_MAX_RETRY consecutive moves of an index, chan_msg.c),
 * waits by the caller's deadline.
 */
#include <stdlib.h>
#include <string.h>

#include "chan_int.h"

#define SK_CHAN_OPEN_FLAGS (SHMKIT_EXCL | SHMKIT_RDONLY | SHMKIT_POPULATE | SHMKIT_MLOCK | \
                            SHMKIT_HUGE | SHMKIT_NOSEAL | SHMKIT_PERSIST | SHMKIT_CHAN_SPSC)

/* ---- layout ------------------------------------------------------------ */

uint32_t sk_chan_fingerprint(void)
{
	const uint32_t v[] = {
		sizeof(struct sk_chan_ctl), offsetof(struct sk_chan_ctl, tail),
		offsetof(struct sk_chan_ctl, head), offsetof(struct sk_chan_ctl, not_empty),
		offsetof(struct sk_chan_ctl, not_full), offsetof(struct sk_chan_ctl, reclaimed),
		offsetof(struct sk_chan_ctl, producer), offsetof(struct sk_chan_ctl, consumer),
		sizeof(struct sk_chan_slot), offsetof(struct sk_chan_slot, len),
		offsetof(struct sk_chan_ctl, stat_entries), sizeof(struct sk_chan_stat),
		offsetof(struct sk_chan_stat, token), offsetof(struct sk_chan_stat, prev),
		offsetof(struct sk_chan_stat, claim),
		SK_SEQ_POS_SHIFT, SK_SEQ_STATE_SHIFT, sizeof(shmkit_ec), SK_CACHELINE,
		0x01020304u,
	};
	uint32_t h = 2166136261u; /* FNV-1a over the bytes, endianness included */
	const unsigned char *p = (const unsigned char *)v;

	for (size_t i = 0; i < sizeof(v); i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

struct geometry {
	uint32_t capacity, max_msg, flags;
	uint32_t stats; /* statistics entries */
};

static int geometry_check(const struct geometry *g)
{
	if (g->capacity == 0 || g->capacity > SK_CHAN_MAX_CAPACITY || (g->capacity & (g->capacity - 1)))
		return sk_fail(-EINVAL, "capacity %u: must be a power of 2 up to %u",
		               g->capacity, SK_CHAN_MAX_CAPACITY);
	if (g->max_msg == 0 || g->max_msg > SK_CHAN_MAX_MSG)
		return sk_fail(-EINVAL, "max_msg %u: must be 1..%u", g->max_msg, SK_CHAN_MAX_MSG);
	return 0;
}

static uint64_t data_bytes(const struct geometry *g)
{
	return SK_CHAN_CTL_SIZE + (uint64_t)g->stats * sizeof(struct sk_chan_stat) +
	       (uint64_t)g->capacity * SK_CHAN_SLOT_SIZE(g->max_msg);
}

/* sk_seg_create_kind init callback: fill the control block and slots
 * before the segment is published READY (no ordering needed here: the
 * READY release store publishes all of it). */
static int chan_init(void *data, size_t size, void *arg)
{
	const struct geometry *g = arg;
	struct sk_chan_ctl *c = data;
	uint64_t slot_size = SK_CHAN_SLOT_SIZE(g->max_msg);

	if (size < data_bytes(g))
		return sk_fail(-EINVAL, "data area of %zu bytes too small", size);
	memset(c, 0, SK_CHAN_CTL_SIZE);
	c->magic = SK_CHAN_MAGIC;
	c->version = SK_CHAN_VERSION;
	c->fingerprint = sk_chan_fingerprint();
	c->flags = g->flags;
	c->capacity = g->capacity;
	c->max_msg = g->max_msg;
	c->slot_size = (uint32_t)slot_size;
	c->stat_entries = g->stats;
	c->slots_off = SK_CHAN_CTL_SIZE + (uint64_t)g->stats * sizeof(struct sk_chan_stat);
	c->slots_bytes = (uint64_t)g->capacity * slot_size;
	shmkit_ec_init(&c->not_empty);
	shmkit_ec_init(&c->not_full);
	memset((unsigned char *)data + SK_CHAN_CTL_SIZE, 0, g->stats * sizeof(struct sk_chan_stat));
	unsigned char *slots = (unsigned char *)data + c->slots_off;
	for (uint64_t i = 0; i < g->capacity; i++) {
		struct sk_chan_slot *s = (struct sk_chan_slot *)(void *)(slots + i * slot_size);
		memset(s, 0, SK_CHAN_SLOT_HDR);
		s->seq = sk_seq_make(i, SK_SLOT_FREE, 0);
	}
	return 0;
}

/* Read the control block once, check it against the segment, cache it. */
static int chan_bind(shmkit_chan *ch, shmkit_seg *seg, void *base, size_t size)
{
	struct sk_chan_ctl *c = base;

	if (size < SK_CHAN_CTL_SIZE)
		return sk_fail(-EBADMSG, "channel data area of %zu bytes holds no control block", size);
	if (c->magic != SK_CHAN_MAGIC)
		return sk_fail(-EPROTO, "not a channel: bad magic %#llx (another kind of segment, "
		               "or a damaged one)", (unsigned long long)c->magic);
	if (c->version != SK_CHAN_VERSION)
		return sk_fail(-EPROTO, "channel format %u, this build reads %u",
		               c->version, SK_CHAN_VERSION);
	if (c->fingerprint != sk_chan_fingerprint())
		return sk_fail(-EPROTO, "channel layout fingerprint %08x differs from this build's %08x",
		               c->fingerprint, sk_chan_fingerprint());
	struct geometry g = { c->capacity, c->max_msg, c->flags, c->stat_entries };
	uint32_t slot_size = c->slot_size;
	uint64_t off = c->slots_off, bytes = c->slots_bytes;
	if (geometry_check(&g) || (g.flags & ~SHMKIT_CHAN_SPSC) ||
	    (g.stats != 0 && (g.stats != SK_CHAN_STAT_ENTRIES || (g.flags & SHMKIT_CHAN_SPSC))) ||
	    slot_size != SK_CHAN_SLOT_SIZE(g.max_msg) ||
	    off != SK_CHAN_CTL_SIZE + (uint64_t)g.stats * sizeof(struct sk_chan_stat) ||
	    bytes != (uint64_t)g.capacity * slot_size || data_bytes(&g) > size)
		return sk_fail(-EBADMSG, "channel control block (capacity %u, max_msg %u, "
		               "slot %u, %u statistics entries) does not fit its %zu-byte segment",
		               g.capacity, g.max_msg, slot_size, g.stats, size);
	ch->seg = seg;
	ch->ctl = c;
	ch->stats = (struct sk_chan_stat *)(void *)((unsigned char *)c + SK_CHAN_CTL_SIZE);
	ch->nstats = g.stats;
	ch->slots = (unsigned char *)c + off;
	ch->cap = g.capacity;
	ch->mask = g.capacity - 1;
	ch->max_msg = g.max_msg;
	ch->slot_size = slot_size;
	ch->spsc = (g.flags & SHMKIT_CHAN_SPSC) != 0;
	return 0;
}

/* ---- public: lifecycle -------------------------------------------------- */

static const struct shmkit_chan_opts default_opts;

static int opts_check(const struct shmkit_chan_opts *o)
{
	if (o->flags & ~SK_CHAN_OPEN_FLAGS)
		return sk_fail(-EINVAL, "unknown channel flags 0x%x", o->flags & ~SK_CHAN_OPEN_FLAGS);
	if (o->wait < SHMKIT_WAIT_ADAPTIVE || o->wait > SHMKIT_WAIT_BLOCK)
		return sk_fail(-EINVAL, "wait strategy %d is not an enum shmkit_wait", o->wait);
	return 0;
}

static struct shmkit_seg_opts seg_opts(const struct shmkit_chan_opts *o, size_t size)
{
	struct shmkit_seg_opts so = {
		.size = size,
		.mode = o->mode,
		.flags = o->flags & ~SHMKIT_CHAN_SPSC,
		.init_timeout_ns = o->init_timeout_ns,
	};
	return so;
}

/* Wrap a channel segment in a handle; on failure seg is left to the caller. */
static int chan_new_at(shmkit_chan **out, shmkit_seg *seg, void *base, size_t size,
                       const struct shmkit_chan_opts *o)
{
	shmkit_chan *ch = calloc(1, sizeof(*ch));
	int err;

	if (!ch)
		return -ENOMEM;
	if ((err = chan_bind(ch, seg, base, size))) {
		free(ch);
		return err;
	}
	ch->peer = (struct sk_peer)SK_PEER_INIT;
	ch->wait = o->wait;
	ch->rdonly = (o->flags & SHMKIT_RDONLY) != 0;
	ch->token = o->owner;
	if (ch->token && (ch->rdonly || ch->spsc || !ch->nstats)) {
		free(ch);
		return sk_fail(-EINVAL, "an owner token needs a writable MPMC channel (an SPSC "
		               "channel gives a dead consumer's message to the next one itself)");
	}
	/* A handle that may claim takes its peer entry now, so that a
	 * missing /proc or lock file is an error of open, not of send. */
	if (!ch->rdonly && (err = sk_chan_identity_refresh(ch))) {
		sk_peer_leave(&ch->peer);
		free(ch);
		return err;
	}
	*out = ch;
	return 0;
}

static int chan_new(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *o)
{
	return chan_new_at(out, seg, shmkit_seg_data(seg), shmkit_seg_size(seg), o);
}

/* ---- embedded channels (chan.h) ------------------------------------------ */

uint64_t sk_chan_bytes(uint32_t capacity, uint32_t max_msg)
{
	struct geometry g = { capacity, max_msg, 0, 0 };
	return data_bytes(&g);
}

int sk_chan_init_at(void *base, size_t size, uint32_t capacity, uint32_t max_msg)
{
	struct geometry g = { capacity, max_msg, 0, 0 };
	int err = geometry_check(&g);
	return err ? err : chan_init(base, size, &g);
}

int sk_chan_embed(shmkit_chan **out, shmkit_seg *seg, void *base, size_t size, int wait)
{
	struct shmkit_chan_opts o = { .wait = wait };
	int err = chan_new_at(out, seg, base, size, &o);
	if (!err)
		(*out)->embedded = true;
	return err;
}

int sk_chan_identity(shmkit_chan *ch, uint32_t *id)
{
	int err = sk_chan_identity_check(ch);
	*id = ch->peer.id;
	return err;
}

static int chan_finish(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *o, int err)
{
	if (!err && (err = chan_new(out, seg, o)))
		shmkit_seg_close(seg);
	return err;
}

int shmkit_chan_create(shmkit_chan **out, const char *name, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	struct geometry g;
	shmkit_seg *seg = NULL;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (o->flags & SHMKIT_RDONLY)
		return sk_fail(-EINVAL, "a channel cannot be created read-only");
	g.capacity = o->capacity ? o->capacity : SK_CHAN_DEFAULT_CAPACITY;
	if (g.capacity <= SK_CHAN_MAX_CAPACITY)
		g.capacity = g.capacity <= 1 ? 1 : 1u << (32 - __builtin_clz(g.capacity - 1));
	g.max_msg = o->max_msg ? o->max_msg : SK_CHAN_DEFAULT_MAX_MSG;
	g.flags = o->flags & SHMKIT_CHAN_SPSC;
	g.stats = g.flags & SHMKIT_CHAN_SPSC ? 0 : SK_CHAN_STAT_ENTRIES;
	if ((err = geometry_check(&g)))
		return err;
	uint64_t bytes = data_bytes(&g);
	if (bytes > SIZE_MAX / 2)
		return sk_fail(-EINVAL, "channel of %llu bytes is too large", (unsigned long long)bytes);
	struct shmkit_seg_opts so = seg_opts(o, (size_t)bytes);
	err = sk_seg_create_kind(&seg, name, &so, SHMKIT_KIND_CHAN, chan_init, &g);
	if (err)
		return err;
	bool made = seg->made; /* a create-or-open may have found it */
	err = chan_finish(out, seg, o, err);
	/* As shmkit_bus_create: a handle that could not take its peer entry
	 * (no lock file descriptor, a refused lock) must not leave the
	 * channel it made behind (the fault loops found it named). */
	if (err && made)
		shmkit_seg_remove(name);
	return err;
}

int shmkit_chan_open(shmkit_chan **out, const char *name, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	shmkit_seg *seg = NULL;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (o->flags & (SHMKIT_EXCL | SHMKIT_CHAN_SPSC | SHMKIT_NOSEAL | SHMKIT_HUGE))
		return sk_fail(-EINVAL, "exclusive, SPSC, no-seal and huge are create options");
	struct shmkit_seg_opts so = seg_opts(o, 0);
	err = sk_seg_open_kind(&seg, name, &so, SHMKIT_KIND_CHAN);
	return chan_finish(out, seg, o, err);
}

int shmkit_chan_attach(shmkit_chan **out, shmkit_seg *seg, const struct shmkit_chan_opts *opts)
{
	const struct shmkit_chan_opts *o = opts ? opts : &default_opts;
	int err;

	sk_clear_detail();
	if (!out || !seg)
		return sk_fail(-EINVAL, "out or seg is NULL");
	*out = NULL;
	if ((err = opts_check(o)))
		return err;
	if (shmkit_seg_kind(seg) != SHMKIT_KIND_CHAN)
		return sk_fail(-EPROTO, "segment of kind %d is not a channel", shmkit_seg_kind(seg));
	return chan_new(out, seg, o);
}

shmkit_seg *shmkit_chan_seg(const shmkit_chan *ch)
{
	return ch ? ch->seg : NULL;
}

int shmkit_chan_close(shmkit_chan *ch)
{
	if (!ch)
		return 0;
	if (sk_peer_forked(&ch->peer)) {
		/* A forked child: claims, roles and statistics entry are its
		 * parent's. */
		sk_peer_forget(&ch->peer);
		ch->reserved = ch->role[PROD] = ch->role[CONS] = false;
		ch->peeked = PEEK_NONE;
		ch->stat = NULL;
	}
	if (ch->reserved)
		shmkit_chan_abort(ch);
	if (ch->peeked == PEEK_OPEN)
		shmkit_chan_release(ch);
	/* PEEK_INHERITED: never returned, so left claimed for the owner's
	 * next handle (the entry keeps our id: sk_chan_stat_give). */
	sk_chan_role_drop(ch, PROD);
	sk_chan_role_drop(ch, CONS);
	sk_chan_stat_give(ch);
	sk_peer_leave(&ch->peer); /* drops the locks: after the roles */
	sk_waitfd_close(ch->wfd);
	if (!ch->embedded)
		shmkit_seg_close(ch->seg);
	free(ch);
	return 0;
}

/* ---- public: statistics ------------------------------------------------- */

int shmkit_chan_stats(shmkit_chan *ch, struct shmkit_chan_stats *st)
{
	if (!ch || !st)
		return sk_fail(-EINVAL, "channel or stats is NULL");
	const struct sk_chan_ctl *c = ch->ctl;
	/* Relaxed throughout: a snapshot for people, ordered with nothing. */
	uint64_t tail = sk_load_relaxed(&c->tail), head = sk_load_relaxed(&c->head);

	memset(st, 0, sizeof(*st));
	st->capacity = (uint32_t)ch->cap;
	st->max_msg = ch->max_msg;
	st->depth = (int64_t)(tail - head) < 0 ? 0 : tail - head > ch->cap ? ch->cap : tail - head;
	st->sent = ch->spsc ? tail : sk_load_relaxed(&c->sent);
	st->received = ch->spsc ? head : sk_load_relaxed(&c->received);
	st->full_waits = sk_load_relaxed(&c->full_waits);
	st->empty_waits = sk_load_relaxed(&c->empty_waits);
	for (uint32_t i = 0; i < ch->nstats; i++) { /* the handles' own counts */
		const struct sk_chan_stat *e = &ch->stats[i];
		st->sent += sk_load_relaxed(&e->sent);
		st->received += sk_load_relaxed(&e->received);
		st->full_waits += sk_load_relaxed(&e->full_waits);
		st->empty_waits += sk_load_relaxed(&e->empty_waits);
	}
	st->reclaimed = sk_load_relaxed(&c->reclaimed);
	st->aborted = sk_load_relaxed(&c->aborted);
	st->slot_size = ch->slot_size;
	st->hdr_size = ch->seg->data_off + (size_t)((unsigned char *)ch->slots - (unsigned char *)c);
	st->seg_size = ch->seg->map_size;
	st->spsc = ch->spsc;
	/* Relaxed: a snapshot for people. */
	st->producer = sk_role_pid(sk_load_relaxed(&c->producer));
	st->consumer = sk_role_pid(sk_load_relaxed(&c->consumer));
	return 0;
}

/* Whether peer id lives: the kernel's lock on its byte (peer.h). */
static int peer_alive(const shmkit_chan *ch, uint32_t id)
{
	int held = sk_peer_held(ch->seg, SK_PEER_CHAN + id);

	return held < 0 ? -1 : held;
}

int shmkit_chan_peers(shmkit_chan *ch, int (*fn)(const struct shmkit_chan_peer *p, void *arg),
                      void *arg)
{
	if (!ch || !fn)
		return sk_fail(-EINVAL, "channel or fn is NULL");
	/* Relaxed loads throughout: a snapshot for people, ordered with
	 * nothing; whether a peer lives is the lock's word. */
	if (ch->spsc) {
		const uint64_t *words[2] = { &ch->ctl->producer, &ch->ctl->consumer };
		for (int r = 0; r < 2; r++) {
			uint64_t w = sk_load_relaxed(words[r]);
			if (!w)
				continue;
			struct shmkit_chan_peer p = {
				.role = r ? SHMKIT_CHAN_PEER_CONSUMER : SHMKIT_CHAN_PEER_PRODUCER,
				.pid = (pid_t)sk_role_pid(w),
				.alive = peer_alive(ch, sk_role_id(w)),
			};
			int rc = fn(&p, arg);
			if (rc)
				return rc;
		}
		return 0;
	}
	for (uint32_t i = 0; i < ch->nstats; i++) {
		const struct sk_chan_stat *e = &ch->stats[i];
		uint64_t w = sk_load_relaxed(&e->owner);
		if (w == 0 || w > SK_SEQ_PID_MASK) /* free, or not an id: bounded */
			continue;
		struct shmkit_chan_peer p = {
			.role = SHMKIT_CHAN_PEER_HANDLE,
			.index = i,
			.alive = peer_alive(ch, (uint32_t)w),
			.sent = sk_load_relaxed(&e->sent),
			.received = sk_load_relaxed(&e->received),
			.owned = sk_load_relaxed(&e->token) != 0,
		};
		int rc = fn(&p, arg);
		if (rc)
			return rc;
	}
	return 0;
}
