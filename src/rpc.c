/*
 * rpc.c - request/response over shared memory: a client asks, exactly one
 * server answers that client, and neither side's death leaves the other
 * waiting for a timeout.
 *
 * Layout of the data area of a SHMKIT_KIND_RPC segment (64-byte aligned):
 *   0      256  control block (struct rpc_ctl): geometry, written once by
 *                the creator; counters on a line per side
 *   256    ...  the request queue: an embedded MPMC channel (chan.h) of
 *                8-byte tokens, capacity pow2(2 * max_clients * depth)
 *   servers_off  max_servers server entries of 64 bytes (struct rpc_srv:
 *                owner word = generation << 32 | pid, and counts)
 *   clients_off  max_clients client entries of ent_size bytes each:
 *                64-byte header (struct rpc_ent: owner word for display,
 *                the `done` event count its calls' responses bump, counts)
 *                then `depth` call slots of slot_size bytes:
 *                  64-byte header (struct rpc_slot: state word, deadline,
 *                  lengths, flags, status), the request (max_request,
 *                  rounded to 64), the response (max_response, rounded)
 *
 * Who owns what.  A client handle owns a client entry by the kernel's
 * lock on byte SK_PEER_RPC_CLIENT + i of the lock file (peer.h), a server
 * handle (from its first recv) a server entry by the lock on byte
 * SK_PEER_RPC_SERVER + j.  A server is named in a call's state word by its
 * server id: j + 1 and the low 10 bits of the entry's owner generation,
 * so a call whose server died is seen as such even after another server
 * took the same entry (the generation differs).  A call's request and response live in its slot, so nothing is
 * copied through the queue: the queue carries only the token (client,
 * slot, generation) that tells a server where to look.
 *
 * The state word of a call slot: generation (38 bits) | server id (22) |
 * state (4).  Transitions, and who makes them:
 *   FREE(g)         --client: loan-->         LOANED(g)
 *   LOANED(g)       --client: send-->         QUEUED(g), then a token
 *   QUEUED(g)       --server: CAS (R2)-->     TAKEN(g, s)
 *   TAKEN(g, s)     --server s: CAS (R5)-->   DONE(g, s), then wake
 *   DONE(g, s)      --client: release-->      FREE(g + 1)
 *   QUEUED(g)       --client: cancel CAS-->   FREE(g + 1)  (token stale)
 *   TAKEN(g, s)     --client: cancel CAS-->   ABANDONED(g, s)
 *   ABANDONED(g, s) --server s: CAS-->        FREE(g + 1)  (response dropped)
 *   TAKEN(g, s), s dead --client: CAS-->      FREE(g + 1) (-ECONNRESET) or,
 *                                             idempotent, QUEUED(g) + token
 *   ABANDONED(g, s), s dead --client-->       FREE(g + 1)
 * A server only ever moves a slot it claimed with its own id (every move
 * is a CAS from the exact word), so a token that is stale (the call was
 * cancelled, answered, re-queued) or forged finds another word and is
 * dropped.  The generation makes an answer to an abandoned call unable to
 * land in a later call of the same slot.
 *
 * Lost tokens.  A server killed after taking a token from the queue and
 * before its claim (R2) leaves the call QUEUED with no token anywhere.
 * The caller, waking every RPC_SLICE_NS, queues a duplicate token once its
 * call has waited QUEUED that long; a duplicate that finds the call
 * claimed is dropped.  (The queue is a shmkit channel: a producer or
 * consumer killed mid-operation there is recovered by the channel.)
 *
 * A client that dies leaves its entry's lock free.  The next client
 * handle that takes the entry resets each slot (client_reset): QUEUED,
 * LOANED and DONE to FREE(g + 1), TAKEN to ABANDONED, so a server still
 * working for the dead client frees the slot when it answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "peer.h"
#include "seg.h"
#include "wait.h"
#include "waitfd.h"

#define RPC_MAGIC 0x0100004350524b53ULL /* "SKRPC\0\0\1" little-endian */
#define RPC_VERSION 1u
#define RPC_CTL_SIZE 256u
#define RPC_ENT_HDR 64u
#define RPC_SLOT_HDR 64u
#define RPC_DEF_CLIENTS 64u
#define RPC_MAX_CLIENTS 4096u
#define RPC_DEF_SERVERS 64u
#define RPC_MAX_SERVERS 2048u   /* j + 1 fits the server id's 12 bits */
#define RPC_SRV_SIZE 64u
#define SID_MAKE(j, gen) (((uint32_t)(j) + 1) | ((uint32_t)(gen) & 0x3ff) << 12)
#define RPC_DEF_DEPTH 8u
#define RPC_MAX_DEPTH 64u
#define RPC_DEF_MSG 1024u
#define RPC_MAX_MSG (1u << 26)
#define RPC_SLICE_NS 50000000LL /* a waiting caller looks at its call's server this often */
#define RPC_OPEN_FLAGS (SHMKIT_EXCL | SHMKIT_POPULATE | SHMKIT_MLOCK | SHMKIT_HUGE | \
                        SHMKIT_NOSEAL | SHMKIT_PERSIST)

enum { ST_FREE, ST_LOANED, ST_QUEUED, ST_TAKEN, ST_DONE, ST_ABANDONED };

#define GEN_BITS 38
#define GEN_MASK ((UINT64_C(1) << GEN_BITS) - 1)
#define W_ST(w) ((unsigned)((w) & 15))
#define W_SID(w) ((uint32_t)((w) >> 4) & SK_PEER_ID_MAX)
#define W_GEN(w) ((w) >> 26)
#define W_MAKE(g, sid, st) ((uint64_t)(g) << 26 | (uint64_t)(sid) << 4 | (uint64_t)(st))

struct rpc_ctl {
	uint64_t magic;
	uint32_t version, fingerprint;
	uint32_t max_clients, depth, max_request, max_response;
	uint32_t slot_size, queue_cap;
	uint64_t queue_off, clients_off, ent_size;
	/* line 1: rare events counted by clients (the hot counts are per
	 * entry, summed by stats: no line all clients write) */
	uint64_t timeouts, retried, reset, requeued, pad1[4];
	/* line 2: rare events counted by servers */
	uint64_t cancelled, dropped, pad2[6];
	uint32_t max_servers, pad3a;
	uint64_t servers_off, pad3[6];
};

struct rpc_srv {
	uint64_t owner;          /* generation << 32 | pid (0: left); the lock owns */
	uint64_t taken, answered, cancelled;
	uint64_t pad[4];
};

struct rpc_ent {
	uint64_t owner;          /* generation << 32 | pid, display only; 0 left */
	shmkit_ec done;          /* bumped after each response to this entry */
	uint32_t pad0;
	uint64_t calls, answered;
	uint64_t pad[4];
};

struct rpc_slot {
	uint64_t state;
	int64_t deadline;        /* CLOCK_REALTIME ns; INT64_MAX none */
	uint32_t req_len, resp_len;
	uint32_t flags;
	int32_t status;          /* 0, or the error a server's library reports */
	uint64_t pad[4];
};

_Static_assert(sizeof(struct rpc_ctl) == RPC_CTL_SIZE, "rpc_ctl is one 256-byte block");
_Static_assert(sizeof(struct rpc_ent) == RPC_ENT_HDR, "rpc_ent is one line");
_Static_assert(sizeof(struct rpc_srv) == RPC_SRV_SIZE, "rpc_srv is one line");
_Static_assert(sizeof(struct rpc_slot) == RPC_SLOT_HDR, "rpc_slot header is one line");

struct geometry {
	uint32_t clients, depth, max_req, max_resp, servers;
	uint32_t slot_size, queue_cap;
	uint64_t queue_off, queue_bytes, servers_off, clients_off, ent_size, total;
};

struct shmkit_rpc {
	shmkit_seg *seg;
	struct rpc_ctl *ctl;
	shmkit_chan *q;
	unsigned char *ents;
	struct rpc_srv *srvs;
	struct geometry g;       /* read once at open */
	int wait;
	/* entries */
	struct sk_peer peer;     /* holds the client and server entries' locks */
	unsigned pgen;           /* fork generation the entries were taken in */
	int si;                  /* server entry, -1 until the first recv */
	uint32_t sid;            /* this server's id in call state words */
	/* client side */
	int ci;                  /* entry index, -1 until the first call */
	uint64_t busy;           /* slots with a call of this handle */
	int loan;                /* slot of the open request loan, -1 */
	int64_t queued_at[RPC_MAX_DEPTH]; /* monotonic: first slice that found
	                                     the call queued (0: none yet) */
	uint64_t token_pos[RPC_MAX_DEPTH]; /* queue position of its last token */
	/* pollable fd */
	struct sk_waitfd *wfd;
	int fd_side;
};

static inline uint64_t round64(uint64_t v)
{
	return (v + 63) & ~UINT64_C(63);
}

/* Count on a line only its owner writes (a client or server entry): a
 * plain load and store, no locked instruction.  Relaxed: statistics,
 * read by people through stats and peers, ordered with nothing. */
static inline void own_count(uint64_t *c)
{
	sk_store_relaxed(c, sk_load_relaxed(c) + 1);
}

static inline uint64_t gen_next(uint64_t g)
{
	g = (g + 1) & GEN_MASK;
	return g ? g : 1; /* generation 0 never names a call: ids are never 0 */
}

static uint32_t rpc_fingerprint(void)
{
	const uint32_t v[] = {
		sizeof(struct rpc_ctl), sizeof(struct rpc_ent), sizeof(struct rpc_slot),
		offsetof(struct rpc_ctl, timeouts), offsetof(struct rpc_ctl, cancelled),
		offsetof(struct rpc_ctl, servers_off), sizeof(struct rpc_srv),
		offsetof(struct rpc_ent, done), offsetof(struct rpc_slot, status), GEN_BITS,
	};
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < SK_ARRAY_LEN(v); i++)
		h = (h ^ v[i]) * 16777619u;
	return h;
}

/* Derive the layout from the four sizes; -EINVAL names a bad one. */
static int geometry_make(struct geometry *g)
{
	if (g->clients < 1 || g->clients > RPC_MAX_CLIENTS)
		return sk_fail(-EINVAL, "max_clients %u: must be 1..%u", g->clients, RPC_MAX_CLIENTS);
	if (g->depth < 1 || g->depth > RPC_MAX_DEPTH)
		return sk_fail(-EINVAL, "depth %u: must be 1..%u", g->depth, RPC_MAX_DEPTH);
	if (g->max_req < 1 || g->max_req > RPC_MAX_MSG)
		return sk_fail(-EINVAL, "max_request %u: must be 1..%u", g->max_req, RPC_MAX_MSG);
	if (g->max_resp < 1 || g->max_resp > RPC_MAX_MSG)
		return sk_fail(-EINVAL, "max_response %u: must be 1..%u", g->max_resp, RPC_MAX_MSG);
	if (g->servers < 1 || g->servers > RPC_MAX_SERVERS)
		return sk_fail(-EINVAL, "max_servers %u: must be 1..%u", g->servers, RPC_MAX_SERVERS);
	uint32_t want = 2 * g->clients * g->depth; /* <= 2^19 */
	g->queue_cap = want <= 1 ? 1 : 1u << (32 - __builtin_clz(want - 1));
	g->slot_size = (uint32_t)(RPC_SLOT_HDR + round64(g->max_req) + round64(g->max_resp));
	g->queue_off = RPC_CTL_SIZE;
	g->queue_bytes = round64(sk_chan_bytes(g->queue_cap, sizeof(uint64_t)));
	g->servers_off = g->queue_off + g->queue_bytes;
	g->clients_off = g->servers_off + (uint64_t)g->servers * RPC_SRV_SIZE;
	g->ent_size = RPC_ENT_HDR + (uint64_t)g->depth * g->slot_size;
	g->total = g->clients_off + (uint64_t)g->clients * g->ent_size;
	return 0;
}

static inline struct rpc_ent *ent_at(const shmkit_rpc *r, unsigned ci)
{
	return (struct rpc_ent *)(void *)(r->ents + (size_t)ci * r->g.ent_size);
}

static inline struct rpc_slot *slot_at(const shmkit_rpc *r, unsigned ci, unsigned k)
{
	return (struct rpc_slot *)(void *)(r->ents + (size_t)ci * r->g.ent_size + RPC_ENT_HDR +
	                                   (size_t)k * r->g.slot_size);
}

static inline unsigned char *req_area(struct rpc_slot *s)
{
	return (unsigned char *)s + RPC_SLOT_HDR;
}

static inline unsigned char *resp_area(const shmkit_rpc *r, struct rpc_slot *s)
{
	return (unsigned char *)s + RPC_SLOT_HDR + round64(r->g.max_req);
}

/* Tokens: generation << 18 | slot << 12 | client. */
static inline uint64_t token_make(unsigned ci, unsigned k, uint64_t gen)
{
	return gen << 18 | (uint64_t)k << 12 | ci;
}

/* ---- creation and opening ------------------------------------------------- */

static int rpc_init(void *data, size_t size, void *arg)
{
	const struct geometry *g = arg;
	struct rpc_ctl *c = data;
	int err;

	if (size < g->total)
		return sk_fail(-EINVAL, "data area of %zu bytes too small", size);
	memset(c, 0, RPC_CTL_SIZE);
	c->magic = RPC_MAGIC;
	c->version = RPC_VERSION;
	c->fingerprint = rpc_fingerprint();
	c->max_clients = g->clients;
	c->depth = g->depth;
	c->max_request = g->max_req;
	c->max_response = g->max_resp;
	c->slot_size = g->slot_size;
	c->queue_cap = g->queue_cap;
	c->queue_off = g->queue_off;
	c->clients_off = g->clients_off;
	c->ent_size = g->ent_size;
	c->max_servers = g->servers;
	c->servers_off = g->servers_off;
	memset((unsigned char *)data + g->servers_off, 0, (size_t)g->servers * RPC_SRV_SIZE);
	if ((err = sk_chan_init_at((unsigned char *)data + g->queue_off, g->queue_bytes,
	                           g->queue_cap, sizeof(uint64_t))))
		return err;
	for (uint32_t i = 0; i < g->clients; i++) {
		unsigned char *e = (unsigned char *)data + g->clients_off + (size_t)i * g->ent_size;
		memset(e, 0, RPC_ENT_HDR);
		shmkit_ec_init(&((struct rpc_ent *)(void *)e)->done);
		for (uint32_t k = 0; k < g->depth; k++) {
			struct rpc_slot *s = (struct rpc_slot *)(void *)(e + RPC_ENT_HDR +
			                                                 (size_t)k * g->slot_size);
			memset(s, 0, RPC_SLOT_HDR);
			s->state = W_MAKE(1, 0, ST_FREE);
		}
	}
	return 0;
}

/* Read the control block once and check it against the segment. */
static int rpc_bind(shmkit_rpc *r, shmkit_seg *seg)
{
	const struct rpc_ctl *c = shmkit_seg_data(seg);
	size_t size = shmkit_seg_size(seg);

	if (size < RPC_CTL_SIZE)
		return sk_fail(-EBADMSG, "rpc data area of %zu bytes holds no control block", size);
	if (c->magic != RPC_MAGIC)
		return sk_fail(-EPROTO, "not an rpc service: bad magic %#llx (another kind of segment, "
		               "or a damaged one)", (unsigned long long)c->magic);
	if (c->version != RPC_VERSION || c->fingerprint != rpc_fingerprint())
		return sk_fail(-EPROTO, "rpc format %u (layout %08x), this build reads %u (%08x)",
		               c->version, c->fingerprint, RPC_VERSION, rpc_fingerprint());
	struct geometry g = { .clients = c->max_clients, .depth = c->depth,
	                      .max_req = c->max_request, .max_resp = c->max_response,
	                      .servers = c->max_servers };
	if (geometry_make(&g) || g.slot_size != c->slot_size || g.queue_cap != c->queue_cap ||
	    g.queue_off != c->queue_off || g.clients_off != c->clients_off ||
	    g.servers_off != c->servers_off ||
	    g.ent_size != c->ent_size || g.total > size)
		return sk_fail(-EBADMSG, "rpc control block (%u clients, depth %u, %u/%u bytes) does "
		               "not fit its %zu-byte segment", c->max_clients, c->depth,
		               c->max_request, c->max_response, size);
	r->seg = seg;
	r->ctl = (struct rpc_ctl *)c;
	r->ents = (unsigned char *)c + g.clients_off;
	r->srvs = (struct rpc_srv *)(void *)((unsigned char *)c + g.servers_off);
	r->g = g;
	return 0;
}

static int rpc_new(shmkit_rpc **out, shmkit_seg *seg, const struct shmkit_rpc_opts *o)
{
	shmkit_rpc *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->peer = (struct sk_peer)SK_PEER_INIT;
	r->ci = -1;
	r->si = -1;
	r->loan = -1;
	r->wait = o->wait;
	if ((err = rpc_bind(r, seg)) ||
	    (err = sk_chan_embed(&r->q, seg, (unsigned char *)r->ctl + r->g.queue_off,
	                         r->g.queue_bytes, o->wait))) {
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

static const struct shmkit_rpc_opts default_opts;

static int opts_check(const struct shmkit_rpc_opts *o)
{
	if (o->flags & ~RPC_OPEN_FLAGS)
		return sk_fail(-EINVAL, "unknown rpc flags %#x", o->flags & ~RPC_OPEN_FLAGS);
	if (o->wait < SHMKIT_WAIT_ADAPTIVE || o->wait > SHMKIT_WAIT_BLOCK)
		return sk_fail(-EINVAL, "wait strategy %d is not an enum shmkit_wait", o->wait);
	if (o->mode & ~0777u)
		return sk_fail(-EINVAL, "mode %o is not a permission mode", o->mode);
	return 0;
}

/* What create and open check first; the options to use. */
static int entry_check(shmkit_rpc **out, const struct shmkit_rpc_opts **o)
{
	sk_clear_detail();
	if (!out)
		return sk_fail(-EINVAL, "out is NULL");
	*out = NULL;
	if (!*o)
		*o = &default_opts;
	return opts_check(*o);
}

int shmkit_rpc_create(shmkit_rpc **out, const char *name, const struct shmkit_rpc_opts *opts)
{
	const struct shmkit_rpc_opts *o = opts;
	shmkit_seg *seg;
	int err;

	if ((err = entry_check(out, &o)))
		return err;
	struct geometry g = {
		.clients = o->max_clients ? o->max_clients : RPC_DEF_CLIENTS,
		.depth = o->depth ? o->depth : RPC_DEF_DEPTH,
		.max_req = o->max_request ? o->max_request : RPC_DEF_MSG,
		.max_resp = o->max_response ? o->max_response : RPC_DEF_MSG,
		.servers = o->max_servers ? o->max_servers : RPC_DEF_SERVERS,
	};
	if ((err = geometry_make(&g)))
		return err;
	if (g.total > SIZE_MAX / 2)
		return sk_fail(-EINVAL, "rpc service of %llu bytes is too large", (unsigned long long)g.total);
	struct shmkit_seg_opts so = { .size = (size_t)g.total, .mode = o->mode, .flags = o->flags,
	                              .init_timeout_ns = o->init_timeout_ns };
	if ((err = sk_seg_create_kind(&seg, name, &so, SHMKIT_KIND_RPC, rpc_init, &g)))
		return err;
	bool made = seg->made;
	if ((err = rpc_new(out, seg, o))) {
		shmkit_seg_close(seg);
		if (made)
			shmkit_seg_remove(name); /* we made it: leave nothing behind */
	}
	return err;
}

int shmkit_rpc_open(shmkit_rpc **out, const char *name, const struct shmkit_rpc_opts *opts)
{
	const struct shmkit_rpc_opts *o = opts;
	shmkit_seg *seg;
	int err;

	if ((err = entry_check(out, &o)))
		return err;
	if (o->flags & (SHMKIT_EXCL | SHMKIT_NOSEAL | SHMKIT_HUGE))
		return sk_fail(-EINVAL, "exclusive, no-seal and huge are create options");
	struct shmkit_seg_opts so = { .flags = o->flags, .init_timeout_ns = o->init_timeout_ns };
	if ((err = sk_seg_open_kind(&seg, name, &so, SHMKIT_KIND_RPC)))
		return err;
	if ((err = rpc_new(out, seg, o)))
		shmkit_seg_close(seg);
	return err;
}

/* ---- client entry ------------------------------------------------------------ */

/* A slot left by a dead owner of our new entry: nothing of it may reach
 * us.  Each move is a CAS from the word read (a server may move it too). */
static void slot_reset(shmkit_rpc *r, struct rpc_slot *s)
{
	/* Acquire: pairs with a server's release CAS (R5, or its free of an
	 * abandoned slot): its writes are done when we reuse the slot. */
	uint64_t w = sk_load_acquire(&s->state);

	for (;;) {
		uint64_t to;
		switch (W_ST(w)) {
		case ST_FREE:
		case ST_ABANDONED:
			return;
		case ST_TAKEN:
			to = W_MAKE(W_GEN(w), W_SID(w), ST_ABANDONED);
			break;
		default: /* LOANED, QUEUED, DONE, or a value no state has */
			to = W_MAKE(gen_next(W_GEN(w)), 0, ST_FREE);
			break;
		}
		/* Acq_rel: as the load above; release orders nothing of ours
		 * but keeps the chain of CASes on the word ordered. */
		if (sk_cas(&s->state, &w, to, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return;
	}
}

/* The handle's entries in this process: after a fork they are the
 * parent's (and so are its calls); the child takes its own. */
static int entries_refresh(shmkit_rpc *r)
{
	if ((r->ci >= 0 || r->si >= 0) && r->pgen != sk_fork_gen_now()) {
		sk_peer_forget(&r->peer);
		r->ci = r->si = -1;
		r->busy = 0;
		r->loan = -1;
	}
	r->pgen = sk_fork_gen_now();
	return sk_peer_join(&r->peer, r->seg);
}

/* Take a client entry (at the first call, or in a forked child whose
 * entry is its parent's). */
static int client_join(shmkit_rpc *r)
{
	int err;

	if (SK_LIKELY(r->ci >= 0 && r->pgen == sk_fork_gen_now()))
		return 0;
	if ((err = entries_refresh(r)))
		return err;
	int i = sk_peer_take_entry(&r->peer, SK_PEER_RPC_CLIENT, &ent_at(r, 0)->owner,
	                           r->g.ent_size, r->g.clients, NULL);
	if (i < 0)
		return sk_fail(-ENOSPC, "rpc client table full (%u live clients; see max_clients)",
		               r->g.clients);
	for (unsigned k = 0; k < r->g.depth; k++)
		slot_reset(r, slot_at(r, (unsigned)i, k));
	struct rpc_ent *e = ent_at(r, (unsigned)i);
	/* Relaxed: display only; the lock is the ownership. */
	uint64_t gen = (sk_load_relaxed(&e->owner) >> 32) + 1;
	sk_store_relaxed(&e->owner, gen << 32 | (uint32_t)getpid());
	r->ci = i;
	return 0;
}

/* Take a server entry (at the first recv or server fd). */
static int server_join(shmkit_rpc *r)
{
	int err;

	if (SK_LIKELY(r->si >= 0 && r->pgen == sk_fork_gen_now()))
		return 0;
	if ((err = entries_refresh(r)))
		return err;
	int j = sk_peer_take_entry(&r->peer, SK_PEER_RPC_SERVER, &r->srvs[0].owner, RPC_SRV_SIZE,
	                           r->g.servers, NULL);
	if (j < 0)
		return sk_fail(-ENOSPC, "rpc server table full (%u live servers; see max_servers)",
		               r->g.servers);
	struct rpc_srv *v = &r->srvs[j];
	/* Relaxed: the generation names this owner in call words; a client
	 * compares it only after seeing our id there, which our claim CAS
	 * (R2) published after this store. */
	uint64_t gen = (sk_load_relaxed(&v->owner) >> 32) + 1;
	sk_store_relaxed(&v->owner, gen << 32 | (uint32_t)getpid());
	r->si = j;
	r->sid = SID_MAKE(j, gen);
	return 0;
}

static void server_leave(shmkit_rpc *r)
{
	if (r->si < 0 || r->pgen != sk_fork_gen_now())
		return;
	struct rpc_srv *v = &r->srvs[r->si];
	/* Release: our writes to the entry come before the next owner's. */
	sk_store_release(&v->owner, sk_load_relaxed(&v->owner) & ~UINT64_C(0xffffffff));
	sk_peer_unlock(&r->peer, SK_PEER_RPC_SERVER + (unsigned)r->si);
	r->si = -1;
}

static void client_leave(shmkit_rpc *r)
{
	if (r->ci < 0 || r->pgen != sk_fork_gen_now())
		return;
	/* Release: our writes to the entry are done before the next owner,
	 * whose lock is taken after our unlock, reads it. */
	sk_store_release(&ent_at(r, (unsigned)r->ci)->owner, 0);
	sk_peer_unlock(&r->peer, SK_PEER_RPC_CLIENT + (unsigned)r->ci);
	r->ci = -1;
}

/* Is server sid dead?  Its entry was taken by another owner since (the
 * generation differs), or the kernel says its lock is free (an error of
 * that question counts as alive).  An id naming no entry is a forged
 * value: dead. */
static bool server_dead(const shmkit_rpc *r, uint32_t sid)
{
	unsigned j = (sid & 0xfff) - 1;

	if (!sid)
		return false;
	if (j >= r->g.servers)
		return true;
	/* Relaxed: see server_join. */
	if ((sk_load_relaxed(&r->srvs[j].owner) >> 32 & 0x3ff) != sid >> 12)
		return true;
	return sk_peer_held(r->seg, SK_PEER_RPC_SERVER + j) == 0;
}

/* A slot of ours (not busy) into LOANED: its index, or -EBUSY. */
static int slot_take(shmkit_rpc *r)
{
	unsigned abandoned = 0;

	for (unsigned k = 0; k < r->g.depth; k++) {
		if (r->busy >> k & 1)
			continue;
		struct rpc_slot *s = slot_at(r, (unsigned)r->ci, k);
		/* Acquire: pairs with the release of whoever freed it last (a
		 * server's free of an abandoned slot): its writes are done. */
		uint64_t w = sk_load_acquire(&s->state);
		if (W_ST(w) == ST_ABANDONED && server_dead(r, W_SID(w))) {
			uint64_t freed = W_MAKE(gen_next(W_GEN(w)), 0, ST_FREE);
			/* Acq_rel, as slot_reset.  On success w is still the old
			 * word (a CAS updates it only on failure): take the new. */
			if (sk_cas(&s->state, &w, freed, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				w = freed;
				sk_fetch_add(&r->ctl->reset, 1, __ATOMIC_RELAXED); /* a statistic */
			}
		}
		if (W_ST(w) == ST_ABANDONED) {
			abandoned++;
			continue;
		}
		if (W_ST(w) != ST_FREE) {
			slot_reset(r, s); /* nothing of ours: a hostile or stale value */
			w = sk_load_acquire(&s->state);
			if (W_ST(w) != ST_FREE)
				continue;
		}
		/* Relaxed: only this entry's owner moves a FREE slot. */
		sk_store_relaxed(&s->state, W_MAKE(W_GEN(w), 0, ST_LOANED));
		return (int)k;
	}
	return sk_fail(-EBUSY, "%u calls outstanding on this handle (depth %u%s)",
	               (unsigned)__builtin_popcountll(r->busy), r->g.depth,
	               abandoned ? "; some slots wait for servers still answering given-up calls" : "");
}

/* ---- client: sending ------------------------------------------------------------ */

/* Queue call k's token, noting its queue position: a caller whose call
 * stays QUEUED queues another only once this one has left the queue
 * (call_look), so the queue holds at most one token per call and a
 * client with a free slot finds room (capacity 2 * clients * depth:
 * room for a dead client's tokens beside its successor's). */
static int push_token(shmkit_rpc *r, unsigned k, uint64_t gen, int64_t timeout_ns)
{
	uint64_t tok = token_make((unsigned)r->ci, k, gen);
	void *buf;
	int e = shmkit_chan_reserve(r->q, &buf, timeout_ns);

	if (e)
		return e;
	memcpy(buf, &tok, sizeof(tok));
	shmkit_chan_reserve_pos(r->q, &r->token_pos[k]);
	r->queued_at[k] = 0; /* stamped by the first slice that looks (no clock here) */
	return shmkit_chan_commit(r->q, sizeof(tok));
}

/* LOANED slot k, request written: queue it. */
static int send_slot(shmkit_rpc *r, unsigned k, size_t len, unsigned flags, int64_t timeout_ns,
                     uint64_t *id)
{
	struct rpc_slot *s = slot_at(r, (unsigned)r->ci, k);
	/* Relaxed: only we move a LOANED slot. */
	uint64_t gen = W_GEN(sk_load_relaxed(&s->state));

	/* Relaxed: published by the release store of QUEUED below. */
	sk_store_relaxed(&s->req_len, (uint32_t)len);
	sk_store_relaxed(&s->flags, flags);
	sk_store_relaxed(&s->resp_len, 0);
	sk_store_relaxed(&s->status, 0);
	int64_t now = sk_realtime_ns();
	sk_store_relaxed(&s->deadline, timeout_ns < 0 || timeout_ns > INT64_MAX - now
	                                   ? INT64_MAX : now + timeout_ns);
	/* Q1.  Release: pairs with a server's acquire CAS (R2): the request
	 * bytes, length, flags and deadline are visible to whoever claims. */
	sk_store_release(&s->state, W_MAKE(gen, 0, ST_QUEUED));
	SK_CRASH_POINT("rpc.queued");
	r->busy |= UINT64_C(1) << k;
	int err = push_token(r, k, gen, timeout_ns);
	if (err) {
		uint64_t w = W_MAKE(gen, 0, ST_QUEUED);
		/* Relaxed: nothing was handed over (a CAS: a duplicate token
		 * pushed earlier could have let a server claim it). */
		if (sk_cas(&s->state, &w, W_MAKE(gen_next(gen), 0, ST_FREE), __ATOMIC_RELAXED,
		           __ATOMIC_RELAXED))
			r->busy &= ~(UINT64_C(1) << k);
		else
			shmkit_rpc_cancel(r, gen << 6 | k);
		return err == -EAGAIN || err == -ETIMEDOUT
		       ? sk_fail(err, "request queue full (servers behind or gone)") : err;
	}
	own_count(&ent_at(r, (unsigned)r->ci)->calls);
	*id = gen << 6 | k;
	return 0;
}

static int send_check(shmkit_rpc *r, unsigned flags, uint64_t *id)
{
	if (!r || !id)
		return sk_fail(-EINVAL, "rpc or id is NULL");
	if (flags & ~SHMKIT_RPC_IDEMPOTENT)
		return sk_fail(-EINVAL, "unknown call flags %#x", flags);
	return 0;
}

int shmkit_rpc_send(shmkit_rpc *r, const void *req, size_t len, unsigned flags,
                    int64_t timeout_ns, uint64_t *id)
{
	int err, k;

	sk_clear_detail();
	if ((err = send_check(r, flags, id)))
		return err;
	if (!req && len)
		return sk_fail(-EINVAL, "req is NULL");
	if (len > r->g.max_req)
		return sk_fail(-EMSGSIZE, "request of %zu bytes, max_request %u", len, r->g.max_req);
	if (r->loan >= 0)
		return sk_fail(-EINVAL, "a request loan is open on this handle");
	if ((err = client_join(r)) || (k = slot_take(r)) < 0)
		return err ? err : k;
	if (len)
		memcpy(req_area(slot_at(r, (unsigned)r->ci, (unsigned)k)), req, len);
	return send_slot(r, (unsigned)k, len, flags, timeout_ns, id);
}

int shmkit_rpc_loan(shmkit_rpc *r, void **buf)
{
	int err, k;

	sk_clear_detail();
	if (!r || !buf)
		return sk_fail(-EINVAL, "rpc or buf is NULL");
	if (r->loan >= 0 && r->pgen == sk_fork_gen_now())
		return sk_fail(-EINVAL, "a request loan is already open on this handle");
	if ((err = client_join(r)) || (k = slot_take(r)) < 0)
		return err ? err : k;
	r->loan = k;
	*buf = req_area(slot_at(r, (unsigned)r->ci, (unsigned)k));
	return 0;
}

int shmkit_rpc_send_loan(shmkit_rpc *r, size_t len, unsigned flags, int64_t timeout_ns,
                         uint64_t *id)
{
	int err;

	sk_clear_detail();
	if ((err = send_check(r, flags, id)))
		return err;
	if (r->loan < 0 || r->pgen != sk_fork_gen_now())
		return sk_fail(-EINVAL, "no request loan open");
	if (len > r->g.max_req)
		return sk_fail(-EMSGSIZE, "request of %zu bytes, max_request %u (the loan stays open)",
		               len, r->g.max_req);
	unsigned k = (unsigned)r->loan;
	r->loan = -1;
	return send_slot(r, k, len, flags, timeout_ns, id);
}

int shmkit_rpc_abort_loan(shmkit_rpc *r)
{
	if (!r || r->loan < 0 || r->pgen != sk_fork_gen_now())
		return sk_fail(-EINVAL, "no request loan open");
	struct rpc_slot *s = slot_at(r, (unsigned)r->ci, (unsigned)r->loan);
	/* Relaxed: only we move a LOANED slot, and nothing was handed over. */
	sk_store_relaxed(&s->state, W_MAKE(W_GEN(sk_load_relaxed(&s->state)), 0, ST_FREE));
	r->loan = -1;
	return 0;
}

/* ---- client: waiting ---------------------------------------------------------- */

/* Decode a call id of this handle: its slot k and generation. */
static int call_of(shmkit_rpc *r, uint64_t id, unsigned *k, uint64_t *gen)
{
	if (!r)
		return sk_fail(-EINVAL, "rpc is NULL");
	*k = (unsigned)(id & 63);
	*gen = id >> 6;
	if (r->ci < 0 || r->pgen != sk_fork_gen_now() || *k >= r->g.depth || !(r->busy >> *k & 1) ||
	    *gen == 0 || *gen > GEN_MASK)
		return sk_fail(-EINVAL, "no outstanding call %llu on this handle", (unsigned long long)id);
	return 0;
}

/* call_of, and the call's slot. */
static int call_slot(shmkit_rpc *r, uint64_t id, unsigned *k, uint64_t *gen, struct rpc_slot **s)
{
	int err = call_of(r, id, k, gen);
	if (!err)
		*s = slot_at(r, (unsigned)r->ci, *k);
	return err;
}

static void call_done(shmkit_rpc *r, unsigned k)
{
	r->busy &= ~(UINT64_C(1) << k);
}

/* Give call (k, gen) up; 0 whatever it was in.  count: a caller's
 * timeout or cancel (not a close). */
static int cancel_slot(shmkit_rpc *r, unsigned k, uint64_t gen, bool count)
{
	struct rpc_slot *s = slot_at(r, (unsigned)r->ci, k);
	/* Acquire: as in slot_reset. */
	uint64_t w = sk_load_acquire(&s->state);

	for (;;) {
		uint64_t to;
		if (W_GEN(w) != gen)
			break; /* taken from us already (reset): nothing of ours */
		switch (W_ST(w)) {
		case ST_QUEUED: to = W_MAKE(gen_next(gen), 0, ST_FREE); break;
		case ST_TAKEN: to = W_MAKE(gen, W_SID(w), ST_ABANDONED); break;
		case ST_DONE: to = W_MAKE(gen_next(gen), 0, ST_FREE); break;
		default: to = 0; break;
		}
		/* Acq_rel: ABANDONED is read by the server (its CAS R5 fails
		 * and it frees the slot); FREE by nobody but us. */
		if (!to || sk_cas(&s->state, &w, to, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	call_done(r, k);
	if (count) /* relaxed: a statistic */
		sk_fetch_add(&r->ctl->timeouts, 1, __ATOMIC_RELAXED);
	return 0;
}

int shmkit_rpc_cancel(shmkit_rpc *r, uint64_t id)
{
	unsigned k;
	uint64_t gen;
	int err;

	if ((err = call_of(r, id, &k, &gen)))
		return err;
	return cancel_slot(r, k, gen, true);
}

/* Where call slot k stands: 1 answered (DONE), 0 still waiting, or < 0:
 * its server died (-ECONNRESET, slot freed), or its deadline passed. */
static int call_look(shmkit_rpc *r, unsigned k, bool slice_over, uint64_t *genp)
{
	struct rpc_slot *s = slot_at(r, (unsigned)r->ci, k);
	/* W1.  Acquire: pairs with the server's release CAS (R5): the
	 * response bytes and length are visible once DONE is. */
	uint64_t w = sk_load_acquire(&s->state);
	uint64_t gen = *genp = W_GEN(w);

	if (W_ST(w) == ST_DONE)
		return 1;
	if (W_ST(w) != ST_QUEUED && W_ST(w) != ST_TAKEN) {
		call_done(r, k);
		return sk_fail(-ECONNRESET, "the call was reset (slot state %u)", W_ST(w));
	}
	if (!slice_over)
		return 0;
	/* Relaxed: our own field, written before QUEUED. */
	if (sk_realtime_ns() >= sk_load_relaxed(&s->deadline)) {
		cancel_slot(r, k, gen, true);
		return sk_fail(-ETIMEDOUT, "the call's deadline passed");
	}
	if (W_ST(w) == ST_QUEUED) {
		/* Its token may have died with a server: queue another (a
		 * duplicate is dropped by whoever finds the call claimed). */
		int64_t now = sk_now_ns();
		if (!r->queued_at[k])
			r->queued_at[k] = now;
		else if (now - r->queued_at[k] >= RPC_SLICE_NS &&
		         !sk_chan_still_queued(r->q, r->token_pos[k]) && !push_token(r, k, gen, 0))
			sk_fetch_add(&r->ctl->requeued, 1, __ATOMIC_RELAXED); /* a statistic */
		return 0;
	}
	if (!server_dead(r, W_SID(w)))
		return 0;
	/* Relaxed: flags are ours, written before QUEUED. */
	if (sk_load_relaxed(&s->flags) & SHMKIT_RPC_IDEMPOTENT) {
		/* Q1 again.  Release: the request is still ours and unchanged;
		 * pairs with the next server's acquire CAS (R2). */
		if (sk_cas(&s->state, &w, W_MAKE(gen, 0, ST_QUEUED), __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
			sk_fetch_add(&r->ctl->retried, 1, __ATOMIC_RELAXED); /* a statistic */
			push_token(r, k, gen, 0); /* if the queue is full: requeued later */
		}
		return 0;
	}
	/* Acq_rel, as slot_reset: the dead server writes nothing more. */
	if (!sk_cas(&s->state, &w, W_MAKE(gen_next(gen), 0, ST_FREE), __ATOMIC_ACQ_REL,
	            __ATOMIC_ACQUIRE))
		return 0; /* it moved: look again next time */
	call_done(r, k);
	sk_fetch_add(&r->ctl->reset, 1, __ATOMIC_RELAXED); /* a statistic */
	return sk_fail(-ECONNRESET, "the server holding the call died");
}

struct wait_arg {
	shmkit_rpc *r;
	uint64_t want;           /* slot mask looked at */
	int k;                   /* the slot found, or -1 */
	uint64_t gen;            /* and its call's generation */
	bool slice_over;
};

/* sk_wait_for's condition: 1 when a looked-at call is answered or failed. */
static int wait_ready(void *arg)
{
	struct wait_arg *a = arg;

	for (unsigned k = 0; k < a->r->g.depth; k++) {
		if (!(a->want >> k & 1) || !(a->r->busy >> k & 1))
			continue;
		int v = call_look(a->r, k, a->slice_over, &a->gen);
		if (v) {
			a->k = (int)k;
			return v;
		}
	}
	return 0;
}

ssize_t shmkit_rpc_wait(shmkit_rpc *r, uint64_t *id, const void **resp, int64_t timeout_ns)
{
	struct wait_arg a = { .r = r, .k = -1 };
	unsigned k;
	uint64_t gen;
	int err, waited = 0;

	sk_clear_detail();
	if (!r || !id || !resp)
		return sk_fail(-EINVAL, "rpc, id or resp is NULL");
	if (*id) {
		if ((err = call_of(r, *id, &k, &gen)))
			return err;
		a.want = UINT64_C(1) << k;
	} else {
		if (r->ci < 0 || r->pgen != sk_fork_gen_now() || !r->busy)
			return sk_fail(-EINVAL, "no call outstanding on this handle");
		a.want = r->busy;
	}
	struct rpc_ent *e = ent_at(r, (unsigned)r->ci);
	err = 0;
	/* Quick polls before any clock is read, as the channel does: an
	 * answer from a running server comes within them (unless this
	 * thread learned that spinning does not pay: wait.h). */
	if (timeout_ns != 0 && sk_quick_polls_pay(r->wait)) {
		for (unsigned i = 0; i < SK_QUICK_POLLS && !(err = wait_ready(&a)); i++)
			sk_cpu_relax();
	}
	int64_t deadline = err ? 0 : sk_deadline(timeout_ns);
	for (; !err;) {
		int64_t now = sk_now_ns();
		int64_t until = deadline - now > RPC_SLICE_NS ? now + RPC_SLICE_NS : deadline;
		a.slice_over = false;
		err = sk_wait_for(&e->done, r->wait, until, wait_ready, &a, &waited);
		if (err == 0 || (err != -ETIMEDOUT && err != -EAGAIN))
			break;
		a.slice_over = true; /* look at deadlines, servers, lost tokens */
		if ((err = wait_ready(&a)))
			break;
		if ((err = sk_map_check(r->seg)))
			return err;
		if (sk_now_ns() >= deadline)
			return timeout_ns == 0 ? sk_fail(-EAGAIN, "no response yet")
			                       : sk_fail(-ETIMEDOUT, "no response within the timeout");
	}
	if (a.k < 0)
		return err < 0 ? err : sk_fail(-EBADMSG, "wait found no call");
	k = (unsigned)a.k;
	*id = a.gen << 6 | k; /* the call answered, or failed */
	if (err < 0)
		return err;
	struct rpc_slot *s = slot_at(r, (unsigned)r->ci, k);
	/* Relaxed: ordered by the acquire load of DONE (W1). */
	uint32_t len = sk_load_relaxed(&s->resp_len);
	int32_t status = sk_load_relaxed(&s->status);
	own_count(&e->answered);
	if (status < 0 || len > r->g.max_resp) {
		shmkit_rpc_release(r, *id);
		return status < 0 ? sk_fail(status, "the server's library refused the request")
		                  : sk_fail(-EBADMSG, "response of %u bytes, max_response %u: corrupt",
		                            len, r->g.max_resp);
	}
	*resp = resp_area(r, s);
	return len;
}

int shmkit_rpc_status(shmkit_rpc *r, uint64_t id)
{
	unsigned k;
	uint64_t gen;
	struct rpc_slot *s;
	int err;

	if ((err = call_slot(r, id, &k, &gen, &s)))
		return err;
	/* Acquire: as W1 (the status is written before DONE). */
	uint64_t w = sk_load_acquire(&s->state);
	if (W_ST(w) != ST_DONE || W_GEN(w) != gen)
		return sk_fail(-EINVAL, "call %llu is not answered", (unsigned long long)id);
	int32_t st = sk_load_relaxed(&s->status);
	return st < 0 ? 0 : st;
}

int shmkit_rpc_release(shmkit_rpc *r, uint64_t id)
{
	unsigned k;
	uint64_t gen;
	struct rpc_slot *s;
	int err;

	if ((err = call_slot(r, id, &k, &gen, &s)))
		return err;
	uint64_t w = W_MAKE(gen, 0, ST_DONE) | (sk_load_relaxed(&s->state) & (SK_PEER_ID_MAX << 4));
	/* Release: our reads of the response are done before the slot is
	 * reused; a CAS from DONE: release of a call not answered is wrong. */
	if (!sk_cas(&s->state, &w, W_MAKE(gen_next(gen), 0, ST_FREE), __ATOMIC_RELEASE,
	            __ATOMIC_RELAXED))
		return sk_fail(-EINVAL, "call %llu is not answered (cancel it instead)",
		               (unsigned long long)id);
	call_done(r, k);
	return 0;
}

ssize_t shmkit_rpc_call(shmkit_rpc *r, const void *req, size_t len, void *resp, size_t cap,
                        int64_t timeout_ns)
{
	uint64_t id;
	const void *p;
	int err = shmkit_rpc_send(r, req, len, 0, timeout_ns, &id);

	if (err)
		return err;
	if (!resp && cap) {
		shmkit_rpc_cancel(r, id);
		return sk_fail(-EINVAL, "resp is NULL");
	}
	/* The call's deadline (in its slot, from send) ends the wait at the
	 * right instant; the wait's own bound may run over it by the time
	 * send took, which no clock read is spent on. */
	ssize_t n = shmkit_rpc_wait(r, &id, &p, timeout_ns);
	if (n == -ETIMEDOUT || n == -EAGAIN) {
		shmkit_rpc_cancel(r, id);
		return n == -EAGAIN ? sk_fail(-ETIMEDOUT, "no response within the timeout") : n;
	}
	if (n < 0)
		return n;
	if ((size_t)n > cap) {
		shmkit_rpc_release(r, id);
		return sk_fail(-EMSGSIZE, "response of %zd bytes, buffer of %zu (dropped)", n, cap);
	}
	if (n)
		memcpy(resp, p, (size_t)n);
	shmkit_rpc_release(r, id);
	return n;
}

/* ---- server ---------------------------------------------------------------------- */

/* The slot a server's request names, if the id is well formed. */
static struct rpc_slot *req_slot(shmkit_rpc *r, uint64_t id, unsigned *ci, uint64_t *gen)
{
	*ci = (unsigned)(id & 0xfff);
	unsigned k = (unsigned)(id >> 12 & 63);
	*gen = id >> 18;
	if (*ci >= r->g.clients || k >= r->g.depth || *gen == 0 || *gen > GEN_MASK)
		return NULL;
	return slot_at(r, *ci, k);
}

/* TAKEN(gen, sid) -> DONE, wake the caller; or, if the caller gave up,
 * free the slot and say so. */
static int finish(shmkit_rpc *r, struct rpc_slot *s, unsigned ci, uint64_t gen, uint32_t sid,
                  uint32_t len, int32_t status)
{
	/* Relaxed: published by the release CAS below. */
	sk_store_relaxed(&s->resp_len, len);
	sk_store_relaxed(&s->status, status);
	uint64_t w = W_MAKE(gen, sid, ST_TAKEN);
	/* R5.  Release: pairs with the caller's acquire load W1: the
	 * response is visible with DONE.  Acquire on failure: we read who
	 * moved it. */
	if (sk_cas(&s->state, &w, W_MAKE(gen, sid, ST_DONE), __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
		SK_CRASH_POINT("rpc.responded");
		struct rpc_ent *e = ent_at(r, ci);
		own_count(&r->srvs[r->si].answered); /* the caller counts its own */
		shmkit_ec_inc(&e->done); /* wakes the caller (its release orders R5 first) */
		return 0;
	}
	if (w == W_MAKE(gen, sid, ST_ABANDONED)) {
		/* Release: our writes to the slot are done before its reuse
		 * (pairs with the client's acquire in slot_take). */
		if (sk_cas(&s->state, &w, W_MAKE(gen_next(gen), 0, ST_FREE), __ATOMIC_RELEASE,
		           __ATOMIC_RELAXED)) {
			sk_fetch_add(&r->ctl->cancelled, 1, __ATOMIC_RELAXED); /* statistics */
			own_count(&r->srvs[r->si].cancelled);
		}
		return sk_fail(-ECANCELED, "the caller gave up: response dropped");
	}
	return sk_fail(-ECANCELED, "the call is no longer this server's (taken as dead?): "
	               "response dropped");
}

int shmkit_rpc_recv(shmkit_rpc *r, struct shmkit_rpc_req *req, int64_t timeout_ns)
{
	uint32_t sid;
	int err;

	sk_clear_detail();
	if (!r || !req)
		return sk_fail(-EINVAL, "rpc or req is NULL");
	if ((err = server_join(r)))
		return err;
	sid = r->sid;
	/* The first receive takes the caller's timeout as it is; a deadline
	 * (a clock read) is set only if a stale or forged entry makes us go
	 * round, so a request waited for costs no clock here, and the whole
	 * call is bounded by twice the timeout at worst. */
	int64_t deadline = INT64_MIN;
	for (;;) {
		uint64_t tok = 0;
		int64_t t = timeout_ns;
		if (deadline != INT64_MIN) {
			int64_t left = deadline - sk_now_ns();
			t = deadline == INT64_MAX ? -1 : left < 0 ? 0 : left;
		}
		ssize_t n = shmkit_chan_recv(r->q, &tok, sizeof(tok), t);
		if (n == -EMSGSIZE) /* a forged entry longer than a token */
			n = 0;
		else if (n < 0)
			return n == -EAGAIN ? sk_fail(-EAGAIN, "no request waiting")
			       : n == -ETIMEDOUT ? sk_fail(-ETIMEDOUT, "no request within the timeout")
			       : (int)n;
		unsigned ci;
		uint64_t gen = 0; /* an entry that is no token sets nothing: W_MAKE below
		                     must not read an indeterminate value (clang -Werror) */
		struct rpc_slot *s = n == sizeof(tok) ? req_slot(r, tok, &ci, &gen) : NULL;
		uint64_t w = W_MAKE(gen, 0, ST_QUEUED);
		/* R2.  Acquire: pairs with the caller's release store Q1: the
		 * request is visible once we own the call. */
		if (!s || !sk_cas(&s->state, &w, W_MAKE(gen, sid, ST_TAKEN), __ATOMIC_ACQUIRE,
		                  __ATOMIC_RELAXED)) {
			sk_fetch_add(&r->ctl->dropped, 1, __ATOMIC_RELAXED); /* a statistic */
			if (deadline == INT64_MIN) /* going round: from now */
				deadline = sk_deadline(timeout_ns);
			continue; /* stale (answered, cancelled, requeued) or forged */
		}
		SK_CRASH_POINT("rpc.taken");
		own_count(&r->srvs[r->si].taken);
		/* Relaxed: ordered by R2. */
		uint32_t len = sk_load_relaxed(&s->req_len);
		if (len > r->g.max_req) {
			finish(r, s, ci, gen, sid, 0, -EBADMSG);
			if (deadline == INT64_MIN)
				deadline = sk_deadline(timeout_ns);
			continue;
		}
		req->id = tok;
		req->data = req_area(s);
		req->len = len;
		req->flags = sk_load_relaxed(&s->flags);
		req->deadline_ns = sk_load_relaxed(&s->deadline);
		return 0;
	}
}

/* The slot of req if this server still holds it (TAKEN with our id). */
static int held_slot(shmkit_rpc *r, const struct shmkit_rpc_req *req, struct rpc_slot **s,
                     unsigned *ci, uint64_t *gen, uint32_t *sid)
{
	if (!r || !req)
		return sk_fail(-EINVAL, "rpc or req is NULL");
	if (r->si < 0 || r->pgen != sk_fork_gen_now())
		return sk_fail(-EINVAL, "this handle holds no request (it took none, or forked)");
	*sid = r->sid;
	if (!(*s = req_slot(r, req->id, ci, gen)))
		return sk_fail(-EINVAL, "request id %llu names no call", (unsigned long long)req->id);
	/* Relaxed: our own claim; a change by the caller is met by the CAS. */
	uint64_t w = sk_load_relaxed(&(*s)->state);
	if (W_GEN(w) != *gen || W_SID(w) != *sid ||
	    (W_ST(w) != ST_TAKEN && W_ST(w) != ST_ABANDONED))
		return sk_fail(-EINVAL, "request %llu is not held by this server",
		               (unsigned long long)req->id);
	return 0;
}

int shmkit_rpc_respond(shmkit_rpc *r, const struct shmkit_rpc_req *req, const void *resp,
                       size_t len)
{
	return shmkit_rpc_respond_status(r, req, resp, len, 0);
}

int shmkit_rpc_respond_status(shmkit_rpc *r, const struct shmkit_rpc_req *req, const void *resp,
                              size_t len, int status)
{
	struct rpc_slot *s;
	unsigned ci;
	uint64_t gen;
	uint32_t sid;
	int err;

	sk_clear_detail();
	if ((err = held_slot(r, req, &s, &ci, &gen, &sid)))
		return err;
	if (!resp && len)
		return sk_fail(-EINVAL, "resp is NULL");
	if (status < 0)
		return sk_fail(-EINVAL, "status %d: must be 0 or positive", status);
	if (len > r->g.max_resp)
		return sk_fail(-EMSGSIZE, "response of %zu bytes, max_response %u (still held)", len,
		               r->g.max_resp);
	if (len)
		memcpy(resp_area(r, s), resp, len);
	return finish(r, s, ci, gen, sid, (uint32_t)len, status);
}

int shmkit_rpc_respond_loan(shmkit_rpc *r, const struct shmkit_rpc_req *req, void **buf)
{
	struct rpc_slot *s;
	unsigned ci;
	uint64_t gen;
	uint32_t sid;
	int err;

	sk_clear_detail();
	if (!buf)
		return sk_fail(-EINVAL, "buf is NULL");
	if ((err = held_slot(r, req, &s, &ci, &gen, &sid)))
		return err;
	*buf = resp_area(r, s);
	return 0;
}

int shmkit_rpc_respond_commit(shmkit_rpc *r, const struct shmkit_rpc_req *req, size_t len)
{
	struct rpc_slot *s;
	unsigned ci;
	uint64_t gen;
	uint32_t sid;
	int err;

	sk_clear_detail();
	if ((err = held_slot(r, req, &s, &ci, &gen, &sid)))
		return err;
	if (len > r->g.max_resp)
		return sk_fail(-EMSGSIZE, "response of %zu bytes, max_response %u (still held)", len,
		               r->g.max_resp);
	return finish(r, s, ci, gen, sid, (uint32_t)len, 0);
}

int shmkit_rpc_abandoned(shmkit_rpc *r, const struct shmkit_rpc_req *req)
{
	struct rpc_slot *s;
	unsigned ci;
	uint64_t gen;
	uint32_t sid;
	int err;

	sk_clear_detail();
	if ((err = held_slot(r, req, &s, &ci, &gen, &sid)))
		return err;
	/* Relaxed: a hint; the CAS at the answer decides. */
	if (W_ST(sk_load_relaxed(&s->state)) == ST_ABANDONED ||
	    sk_realtime_ns() >= sk_load_relaxed(&s->deadline))
		return 1;
	return sk_peer_held(r->seg, SK_PEER_RPC_CLIENT + ci) == 0;
}

/* ---- pollable fd ----------------------------------------------------------------- */

static int client_fd_ready(void *arg)
{
	struct wait_arg a = { .r = arg, .k = -1 };

	a.want = a.r->busy;
	return wait_ready(&a);
}

int shmkit_rpc_fd(shmkit_rpc *r, int side)
{
	int err;

	sk_clear_detail();
	if (!r || (side != SHMKIT_RPC_SERVER && side != SHMKIT_RPC_CLIENT))
		return sk_fail(-EINVAL, "rpc is NULL or side is not SHMKIT_RPC_SERVER/CLIENT");
	if (r->fd_side && side != r->fd_side)
		return sk_fail(-EINVAL, "this handle's fd signals the other side");
	r->fd_side = side;
	if (side == SHMKIT_RPC_SERVER)
		return (err = server_join(r)) ? err : shmkit_chan_fd(r->q, SHMKIT_CHAN_POLLIN);
	if ((err = client_join(r)))
		return err;
	return sk_waitfd_service_fd(&r->wfd, &ent_at(r, (unsigned)r->ci)->done, client_fd_ready, r);
}

int shmkit_rpc_ack_fd(shmkit_rpc *r)
{
	if (!r || !r->fd_side)
		return sk_fail(-EINVAL, "no fd on this rpc handle (call shmkit_rpc_fd)");
	if (r->fd_side == SHMKIT_RPC_SERVER)
		return shmkit_chan_ack_fd(r->q);
	if (r->ci < 0)
		return sk_fail(-EINVAL, "the client entry of this fd is gone (forked?)");
	return sk_waitfd_service_arm(r->wfd, &ent_at(r, (unsigned)r->ci)->done, client_fd_ready, r);
}

/* ---- statistics, peers, close ------------------------------------------------------ */

static unsigned ent_in_flight(const shmkit_rpc *r, unsigned ci)
{
	unsigned n = 0;
	for (unsigned k = 0; k < r->g.depth; k++)
		/* Relaxed: a snapshot for people. */
		n += W_ST(sk_load_relaxed(&slot_at(r, ci, k)->state)) != ST_FREE;
	return n;
}

int shmkit_rpc_stats(shmkit_rpc *r, struct shmkit_rpc_stats *st)
{
	if (!r || !st)
		return sk_fail(-EINVAL, "rpc or stats is NULL");
	const struct rpc_ctl *c = r->ctl;
	memset(st, 0, sizeof(*st));
	st->max_clients = r->g.clients;
	st->depth = r->g.depth;
	st->max_request = r->g.max_req;
	st->max_response = r->g.max_resp;
	st->seg_size = shmkit_seg_size(r->seg);
	st->max_servers = r->g.servers;
	/* Relaxed throughout: a snapshot for people, ordered with nothing. */
	st->timeouts = sk_load_relaxed(&c->timeouts);
	st->cancelled = sk_load_relaxed(&c->cancelled);
	st->retried = sk_load_relaxed(&c->retried);
	st->reset = sk_load_relaxed(&c->reset);
	st->requeued = sk_load_relaxed(&c->requeued);
	st->dropped = sk_load_relaxed(&c->dropped);
	for (unsigned i = 0; i < r->g.clients; i++) {
		const struct rpc_ent *e = ent_at(r, i);
		st->requests += sk_load_relaxed(&e->calls);
		st->responses += sk_load_relaxed(&e->answered);
		st->in_flight += ent_in_flight(r, i);
		if (sk_load_relaxed(&e->owner) && sk_peer_held(r->seg, SK_PEER_RPC_CLIENT + i) != 0)
			st->clients++;
	}
	for (unsigned j = 0; j < r->g.servers; j++)
		if ((uint32_t)sk_load_relaxed(&r->srvs[j].owner) &&
		    sk_peer_held(r->seg, SK_PEER_RPC_SERVER + j) != 0)
			st->servers++;
	return 0;
}

int shmkit_rpc_peers(shmkit_rpc *r, int (*fn)(const struct shmkit_rpc_peer *p, void *arg),
                     void *arg)
{
	if (!r || !fn)
		return sk_fail(-EINVAL, "rpc or fn is NULL");
	for (unsigned i = 0; i < r->g.clients; i++) {
		const struct rpc_ent *e = ent_at(r, i);
		/* Relaxed: a snapshot for people. */
		uint64_t owner = sk_load_relaxed(&e->owner);
		if (!owner)
			continue;
		int held = sk_peer_held(r->seg, SK_PEER_RPC_CLIENT + i);
		struct shmkit_rpc_peer p = {
			.index = i, .pid = (pid_t)(uint32_t)owner, .alive = held < 0 ? -1 : held,
			.calls = sk_load_relaxed(&e->calls), .answered = sk_load_relaxed(&e->answered),
			.in_flight = ent_in_flight(r, i),
		};
		int v = fn(&p, arg);
		if (v)
			return v;
	}
	for (unsigned j = 0; j < r->g.servers; j++) {
		const struct rpc_srv *v = &r->srvs[j];
		/* Relaxed: a snapshot for people. */
		uint64_t owner = sk_load_relaxed(&v->owner);
		if (!owner)
			continue; /* never used */
		int held = sk_peer_held(r->seg, SK_PEER_RPC_SERVER + j);
		uint64_t taken = sk_load_relaxed(&v->taken), answered = sk_load_relaxed(&v->answered),
		         cancelled = sk_load_relaxed(&v->cancelled);
		struct shmkit_rpc_peer p = {
			.server = 1, .index = j, .pid = (pid_t)(uint32_t)owner,
			.alive = held < 0 ? -1 : held, .calls = taken, .answered = answered,
			.cancelled = cancelled,
		};
		int rv = fn(&p, arg);
		if (rv)
			return rv;
	}
	return 0;
}

int shmkit_rpc_close(shmkit_rpc *r)
{
	if (!r)
		return 0;
	if (r->ci >= 0 && r->pgen == sk_fork_gen_now()) {
		if (r->loan >= 0)
			shmkit_rpc_abort_loan(r);
		for (unsigned k = 0; k < r->g.depth; k++) {
			if (!(r->busy >> k & 1))
				continue;
			uint64_t w = sk_load_acquire(&slot_at(r, (unsigned)r->ci, k)->state);
			if (W_ST(w) == ST_DONE) { /* answered, never read */
				shmkit_rpc_release(r, W_GEN(w) << 6 | k);
				continue;
			}
			cancel_slot(r, k, W_GEN(w), false);
		}
	}
	client_leave(r);
	server_leave(r); /* its held calls fail: their callers see it gone */
	sk_peer_leave(&r->peer);
	sk_waitfd_close(r->wfd);
	shmkit_chan_close(r->q);
	shmkit_seg_close(r->seg);
	free(r);
	return 0;
}
