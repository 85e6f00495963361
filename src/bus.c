/*
 * bus.c - publish/subscribe over shared memory: every message goes to
 * every subscriber.  Any number of publishers and subscribers (up to the
 * table sizes in bus.h) join and leave by name, over any backend.
 *
 * This file: creating, opening and closing a bus, its tables' reaping and
 * its statistics.  The format and the protocol: bus.h, bus_pub.c, bus_sub.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "waitfd.h"

#define BUS_DEF_SUBS 64u
#define BUS_DEF_PUBS 62u
#define BUS_DEF_CAP 256u
#define BUS_DEF_MSG 1024u

/* ---- small helpers ------------------------------------------------------ */

static uint32_t bus_fingerprint(void)
{
	const uint64_t facts[] = {
		sizeof(struct sk_bus_ctl), offsetof(struct sk_bus_ctl, head),
		offsetof(struct sk_bus_ctl, armed), SK_BUS_SEQ_SHIFT, SK_BUS_PUB_SHIFT,
		sizeof(struct sk_bus_sub_ent), sizeof(struct sk_bus_pub_ent),
		sizeof(struct sk_bus_slot), offsetof(struct sk_bus_geom, claims_off),
		__BYTE_ORDER__,
	};
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < SK_ARRAY_LEN(facts); i++)
		for (int k = 0; k < 8; k++)
			h = (h ^ (uint8_t)(facts[i] >> (8 * k))) * 16777619u;
	return h;
}

static uint32_t round_pow2(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static inline uint32_t stride_for(uint32_t max_msg)
{
	return (SK_BUS_SLOT_HDR + max_msg + SK_PAIR - 1) & ~(uint32_t)(SK_PAIR - 1);
}

static uint64_t random_id(void)
{
	uint64_t r = (uint64_t)sk_realtime_ns() ^ ((uint64_t)getpid() << 40);
	r ^= (uint64_t)(uintptr_t)&r;
	r ^= r >> 33;
	r *= 0xff51afd7ed558ccdULL;
	return r ^ (r >> 29);
}

/* ---- create / open / close ---------------------------------------------- */

struct bus_init_arg {
	uint32_t cap, max_msg, delivery, nsubs, npubs;
	uint64_t subs_off, pubs_off, claims_off, slots_off, total;
};

/* Where the tables and slots go for the geometry in a (its offsets and
 * total are filled in). */
static void bus_layout(struct bus_init_arg *a)
{
	a->subs_off = sizeof(struct sk_bus_ctl);
	a->pubs_off = a->subs_off + (uint64_t)a->nsubs * sizeof(struct sk_bus_sub_ent);
	a->claims_off = a->pubs_off + (uint64_t)a->npubs * sizeof(struct sk_bus_pub_ent);
	a->slots_off = (a->claims_off + (uint64_t)a->cap * sizeof(uint64_t) + SK_PAIR - 1) /
	               SK_PAIR * SK_PAIR;
	a->total = a->slots_off + (uint64_t)a->cap * stride_for(a->max_msg);
}

static int bus_init(void *data, size_t size, void *argp)
{
	const struct bus_init_arg *a = argp;
	struct sk_bus_ctl *c = data;

	if (size < a->total)
		return -EINVAL;
	/* The segment is fresh and zero-filled (a new object); only the
	 * geometry and event counts need writing.  Plain stores: the
	 * READY release store in sk_seg_create_kind publishes them. */
	c->geom = (struct sk_bus_geom){
		.magic = SK_BUS_MAGIC, .version = SK_BUS_VERSION,
		.fingerprint = bus_fingerprint(), .capacity = a->cap,
		.max_msg = a->max_msg, .delivery = a->delivery,
		.stride = stride_for(a->max_msg), .nsubs = a->nsubs,
		.npubs = a->npubs, .bus_id = random_id(),
		.subs_off = a->subs_off, .pubs_off = a->pubs_off,
		.slots_off = a->slots_off, .total = a->total, .claims_off = a->claims_off,
	};
	shmkit_ec_init(&c->published);
	shmkit_ec_init(&c->consumed);
	return 0;
}

/* Validate the geometry once and cache it privately. */
static int bus_attach(shmkit_bus *b, shmkit_seg *seg, const struct shmkit_bus_opts *o)
{
	size_t size = shmkit_seg_size(seg);
	struct sk_bus_ctl *c = shmkit_seg_data(seg);

	if (size < sizeof(*c))
		return sk_fail(-EBADMSG, "bus segment too small (%zu bytes)", size);
	struct sk_bus_geom g = c->geom;
	if (g.magic != SK_BUS_MAGIC)
		return sk_fail(-EPROTO, "not a bus: bad magic %08x (another kind of segment, or "
		               "a damaged one)", g.magic);
	if (g.version != SK_BUS_VERSION || g.fingerprint != bus_fingerprint())
		return sk_fail(-EPROTO, "bus layout version %u/%08x differs from this build's %u/%08x",
		               g.version, g.fingerprint, SK_BUS_VERSION, bus_fingerprint());
	struct bus_init_arg a = { .cap = g.capacity, .max_msg = g.max_msg,
	                          .nsubs = g.nsubs, .npubs = g.npubs };
	bus_layout(&a);
	if (!g.capacity || g.capacity > SK_BUS_MAX_CAP || (g.capacity & (g.capacity - 1)) ||
	    !g.max_msg || g.max_msg > SK_BUS_MAX_MSG || g.stride != stride_for(g.max_msg) ||
	    g.delivery > SHMKIT_BUS_BACKPRESSURE || !g.nsubs || g.nsubs > SK_BUS_MAX_SUBS ||
	    !g.npubs || g.npubs > SK_BUS_MAX_PUBS || g.subs_off != a.subs_off ||
	    g.pubs_off != a.pubs_off || g.slots_off != a.slots_off || g.claims_off != a.claims_off ||
	    g.total != a.total || g.total > size)
		return sk_fail(-EBADMSG, "bus geometry is corrupt");
	b->seg = seg;
	b->ctl = c;
	b->subs = (struct sk_bus_sub_ent *)(void *)((unsigned char *)c + g.subs_off);
	b->pubs = (struct sk_bus_pub_ent *)(void *)((unsigned char *)c + g.pubs_off);
	b->nsubs_max = g.nsubs;
	b->npubs_max = g.npubs;
	b->held = calloc((g.nsubs + 63) / 64, sizeof(uint64_t));
	if (!b->held)
		return -ENOMEM;
	b->slots = (unsigned char *)c + g.slots_off;
	b->claims = (uint64_t *)(void *)((unsigned char *)c + g.claims_off);
	b->cap = g.capacity;
	b->mask = g.capacity - 1;
	b->max_msg = g.max_msg;
	b->stride = g.stride;
	b->delivery = g.delivery;
	b->bus_id = g.bus_id;
	b->wait = o->wait;
	b->pub_idx = -1;
	return 0;
}

int sk_bus_check_opts(const struct shmkit_bus_opts *o, bool create)
{
	if (o->wait < SHMKIT_WAIT_ADAPTIVE || o->wait > SHMKIT_WAIT_BLOCK)
		return sk_fail(-EINVAL, "unknown wait strategy %d", o->wait);
	if (o->from != SHMKIT_FROM_NEWEST && o->from != SHMKIT_FROM_OLDEST)
		return sk_fail(-EINVAL, "unknown subscribe position %d", o->from);
	if (!create)
		return 0;
	if (o->delivery != SHMKIT_BUS_OVERWRITE && o->delivery != SHMKIT_BUS_BACKPRESSURE)
		return sk_fail(-EINVAL, "unknown delivery mode %d", o->delivery);
	if (o->capacity > SK_BUS_MAX_CAP)
		return sk_fail(-EINVAL, "capacity %u exceeds %u", o->capacity, SK_BUS_MAX_CAP);
	if (o->max_msg > SK_BUS_MAX_MSG)
		return sk_fail(-EINVAL, "max_msg %u exceeds %u", o->max_msg, SK_BUS_MAX_MSG);
	if (o->max_subscribers > SK_BUS_MAX_SUBS)
		return sk_fail(-EINVAL, "max_subscribers %u exceeds %u", o->max_subscribers,
		               SK_BUS_MAX_SUBS);
	if (o->max_publishers > SK_BUS_MAX_PUBS)
		return sk_fail(-EINVAL, "max_publishers %u exceeds %u", o->max_publishers,
		               SK_BUS_MAX_PUBS);
	return 0;
}

const struct shmkit_bus_opts sk_bus_default_opts;

static int bus_finish(shmkit_bus **out, shmkit_seg *seg, const struct shmkit_bus_opts *o)
{
	shmkit_bus *b = calloc(1, sizeof(*b));
	int err;

	if (!b) {
		shmkit_seg_close(seg);
		return -ENOMEM;
	}
	b->peer = (struct sk_peer)SK_PEER_INIT;
	if ((err = bus_attach(b, seg, o)) || (err = sk_peer_join(&b->peer, seg))) {
		sk_peer_leave(&b->peer);
		shmkit_seg_close(seg);
		free(b->held);
		free(b);
		return err;
	}
	*out = b;
	return 0;
}

int shmkit_bus_create(shmkit_bus **out, const char *name, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &sk_bus_default_opts;
	shmkit_seg *seg;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = sk_bus_check_opts(o, true)))
		return err;
	struct bus_init_arg a = {
		.cap = round_pow2(o->capacity ? o->capacity : BUS_DEF_CAP),
		.max_msg = o->max_msg ? o->max_msg : BUS_DEF_MSG,
		.delivery = (uint32_t)o->delivery,
		.nsubs = o->max_subscribers ? o->max_subscribers : BUS_DEF_SUBS,
		.npubs = o->max_publishers ? o->max_publishers : BUS_DEF_PUBS,
	};
	bus_layout(&a);
	struct shmkit_seg_opts so = {
		.size = a.total, .mode = o->mode, .flags = o->flags, .init_timeout_ns = o->init_timeout_ns,
	};
	if ((err = sk_seg_create_kind(&seg, name, &so, SHMKIT_KIND_BUS, bus_init, &a)))
		return err;
	bool made = seg->made; /* a create-or-open may have found it */
	err = bus_finish(out, seg, o);
	if (err && made)
		shmkit_seg_remove(name); /* we made it: leave nothing behind */
	return err;
}

int shmkit_bus_open(shmkit_bus **out, const char *name, const struct shmkit_bus_opts *opts)
{
	const struct shmkit_bus_opts *o = opts ? opts : &sk_bus_default_opts;
	shmkit_seg *seg;
	int err;

	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if ((err = sk_bus_check_opts(o, false)))
		return err;
	if (o->flags & (SHMKIT_RDONLY | SHMKIT_COW | SHMKIT_RAW))
		return sk_fail(-EINVAL, "a bus needs a shared read-write mapping");
	struct shmkit_seg_opts so = { .flags = o->flags, .init_timeout_ns = o->init_timeout_ns };
	if ((err = sk_seg_open_kind(&seg, name, &so, SHMKIT_KIND_BUS)))
		return err;
	return bus_finish(out, seg, o);
}

/* Make sure this handle has a peer of this process (a forked child
 * inheriting the handle takes its own: its parent's entries, publisher
 * entry and loan are the parent's). */
int sk_bus_peer_ready(shmkit_bus *b)
{
	if (sk_peer_forked(&b->peer)) {
		b->pub_idx = -1;
		b->loaned = false;
		memset(b->held, 0, (b->nsubs_max + 63) / 64 * sizeof(uint64_t));
	}
	return sk_peer_join(&b->peer, b->seg);
}

int shmkit_bus_close(shmkit_bus *bus)
{
	if (!bus)
		return 0;
	if (bus->nsubs)
		return sk_fail(-EBUSY, "%d subscriptions still open on this handle", bus->nsubs);
	sk_bus_pub_leave(bus);
	sk_waitfd_close(bus->wfd); /* the fd, its ring or helper (joined) */
	sk_peer_leave(&bus->peer); /* any lock left goes with the description */
	shmkit_seg_close(bus->seg);
	free(bus->held);
	free(bus);
	return 0;
}

/* ---- table entries: reaping (who owns an entry: bus.h) ---------------- */

static inline bool held_by_us(const shmkit_bus *b, const uint64_t *mine, unsigned i)
{
	return mine && (mine[i / 64] >> (i % 64) & 1);
}

/* Reset the subscriber entry i of a dead owner, if we can take its lock:
 * true if it is free now (false: someone holds it, it is alive). */
bool sk_bus_sub_reap(shmkit_bus *b, unsigned i)
{
	struct sk_bus_sub_ent *e = &b->subs[i];

	if (held_by_us(b, b->held, i) || sk_peer_lock(&b->peer, sk_bus_sub_lock(i)))
		return false;
	/* Relaxed: a dead owner's flag; the count is a hint. */
	if (sk_exchange(&e->armed, 0, __ATOMIC_RELAXED))
		sk_fetch_add(&b->ctl->armed, UINT32_MAX, __ATOMIC_RELAXED);
	/* Release: orders the reset before the owner word's clear. */
	sk_store_release(&e->state, SK_BUS_ENT_FREE);
	sk_bus_ent_leave(b, &e->owner, sk_bus_sub_lock(i));
	return true;
}

/* ---- statistics ----------------------------------------------------------- */

int shmkit_bus_stats(shmkit_bus *bus, struct shmkit_bus_stats *st)
{
	if (!bus || !st)
		return sk_fail(-EINVAL, "bus or st is NULL");
	struct sk_bus_ctl *c = bus->ctl;
	memset(st, 0, sizeof(*st));
	st->capacity = bus->cap;
	st->max_msg = bus->max_msg;
	st->delivery = (int)bus->delivery;
	/* Relaxed: a snapshot for display; orders nothing. */
	st->head = sk_load_relaxed(&c->head);
	if (st->head > SK_BUS_SEQ_MAX)
		return sk_fail(-EBADMSG, "bus head out of range");
	st->oldest = st->head > bus->cap ? st->head - bus->cap : 0;
	for (unsigned i = 0; i < bus->npubs_max; i++)
		st->publishers += sk_bus_owner_pid(sk_load_relaxed(&bus->pubs[i].owner)) != 0;
	for (unsigned i = 0; i < bus->nsubs_max; i++)
		st->subscribers += sk_bus_owner_pid(sk_load_relaxed(&bus->subs[i].owner)) != 0;
	st->max_publishers = bus->npubs_max;
	st->max_subscribers = bus->nsubs_max;
	st->armed = sk_load_relaxed(&c->armed);
	st->seg_size = shmkit_seg_size(bus->seg);
	return 0;
}

int shmkit_bus_peers(shmkit_bus *bus, int (*fn)(const struct shmkit_bus_peer *p, void *arg),
                     void *arg)
{
	if (!bus || !fn)
		return sk_fail(-EINVAL, "bus or fn is NULL");
	/* Relaxed loads throughout: a snapshot for display. */
	uint64_t head = sk_load_relaxed(&bus->ctl->head);
	for (unsigned i = 0; i < bus->npubs_max + bus->nsubs_max; i++) {
		struct shmkit_bus_peer p = { .subscriber = i >= bus->npubs_max };
		const uint64_t *owner;
		uint64_t lock;
		if (p.subscriber) {
			const struct sk_bus_sub_ent *e = &bus->subs[i - bus->npubs_max];
			owner = &e->owner;
			p.index = i - bus->npubs_max;
			lock = sk_bus_sub_lock(p.index);
			p.position = sk_load_relaxed(&e->cursor);
			p.lag = head > p.position ? head - p.position : 0;
			p.count = sk_load_relaxed(&e->delivered);
			p.lost = sk_load_relaxed(&e->lost);
			p.armed = (int)sk_load_relaxed(&e->armed);
		} else {
			const struct sk_bus_pub_ent *e = &bus->pubs[i];
			owner = &e->owner;
			p.index = i;
			lock = sk_bus_pub_lock(i);
			p.position = sk_load_relaxed(&e->cur);
			p.count = sk_load_relaxed(&e->count);
			p.lost = sk_load_relaxed(&e->aborted);
		}
		p.pid = sk_bus_owner_pid(sk_load_relaxed(owner));
		if (p.pid == 0)
			continue;
		int held = sk_peer_held(bus->seg, lock);
		p.alive = held < 0 ? -1 : held; /* the kernel's word, not the pid's */
		int r = fn(&p, arg);
		if (r)
			return r;
	}
	return 0;
}
