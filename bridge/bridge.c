/*
 * bridge.c - the bridge's one event loop: exports (a local bus
 * subscription -> frames on the PUB socket) and imports (frames from the
 * SUB socket -> a local bus), on shmkit's public API and libzmq.  The
 * reliable link (link.c) and the services over it - channels (chan.c),
 * journals (journal.c), rpc (rpc.c), one interface (struct sk_service) -
 * join the same loop: their sockets and fds are polled with the rest, and
 * their part of a turn (pump) runs before the poll and after it.
 *
 * One turn (shmkit_bridge_run):
 *   1. retry the held frames: an import's frame its local back-pressure
 *      bus refused, an export's frame the PUB socket refused (its
 *      high-water mark, ZMQ_XPUB_NODROP);
 *   2. zmq_poll over the SUB socket (not while an import frame is held:
 *      that is the back-pressure), the XPUB socket (remote bridges'
 *      subscriptions: an export nobody remote subscribed to takes its
 *      messages and counts them `unsubscribed`, sending nothing), the
 *      caller's fd and every export
 *      subscription's fd, for at most 100 ms (a local publisher that dies
 *      mid-message is noticed on the next recv), 1 ms while a frame is
 *      held, 0 while a batch was cut short;
 *   3. read at most BATCH frames from the SUB socket, and at most BATCH
 *      messages of every export (a try-once recv costs no system call, so
 *      every export is pumped every turn: nothing relies on an edge of
 *      its fd).
 * Nothing blocks: every call into ZeroMQ or shmkit is try-once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "internal.h"

int sk_br_zerr(void)
{
	int e = zmq_errno();

	return e > 0 ? -e : -EIO;
}

uint32_t sk_br_random_id(void)
{
	uint32_t id = 0;

	for (int i = 0; i < 8 && id == 0; i++)
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = 0;
	return id ? id : 1;
}

int sk_br_sock_opts(shmkit_bridge *br, void *s)
{
	int zero = 0;
	int64_t maxmsg = FRAME_MAX;

	if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(s, ZMQ_SNDHWM, &br->hwm, sizeof(br->hwm)) ||
	    zmq_setsockopt(s, ZMQ_RCVHWM, &br->hwm, sizeof(br->hwm)) ||
	    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)))
		return sk_br_zerr();
	return 0;
}

static int sockets_open(shmkit_bridge *br)
{
	int nodrop = !br->drop;

	br->ctx = zmq_ctx_new();
	if (!br->ctx)
		return sk_br_zerr();
	br->pub = zmq_socket(br->ctx, ZMQ_XPUB); /* a PUB that says who subscribes */
	br->sub = zmq_socket(br->ctx, ZMQ_SUB);
	if (!br->pub || !br->sub)
		return sk_br_zerr();
	if (sk_br_sock_opts(br, br->pub) || sk_br_sock_opts(br, br->sub))
		return sk_br_zerr();
	int one = 1;
	if (zmq_setsockopt(br->pub, ZMQ_XPUB_NODROP, &nodrop, sizeof(nodrop)) ||
	    zmq_setsockopt(br->pub, ZMQ_XPUB_VERBOSER, &one, sizeof(one)))
		return sk_br_zerr();
	return 0;
}

int shmkit_bridge_create(shmkit_bridge **out, const struct shmkit_bridge_opts *opts)
{
	struct shmkit_bridge_opts o = opts ? *opts : (struct shmkit_bridge_opts){ 0 };
	shmkit_bridge *br;

	if (!out || o.hwm < 0 || o.window < 0 || o.window > SHMKIT_BRIDGE_WINDOW_MAX ||
	    (o.mode & ~0777u))
		return -EINVAL;
	br = calloc(1, sizeof(*br));
	if (!br)
		return -ENOMEM;
	br->id = o.id ? o.id : sk_br_random_id();
	br->st.id = br->id;
	br->hwm = o.hwm ? o.hwm : 10000;
	br->drop = !!o.drop;
	br->window = o.window ? o.window : 64;
	br->mode = o.mode;
	br->excl = !!o.excl;
	int rc = sockets_open(br);
	if (rc) {
		shmkit_bridge_close(br);
		return rc;
	}
	*out = br;
	return 0;
}

static void export_free(struct bexport *ex)
{
	if (ex->state_seg)
		shmkit_seg_close(ex->state_seg);
	if (ex->sub)
		shmkit_bus_unsubscribe(ex->sub);
	if (ex->bus)
		shmkit_bus_close(ex->bus);
	free(ex->frame);
	free(ex);
}

int shmkit_bridge_close(shmkit_bridge *br)
{
	if (!br)
		return -EINVAL;
	for (unsigned i = 0; i < br->nex; i++)
		export_free(br->ex[i]);
	for (unsigned i = 0; i < br->nim; i++) {
		if (br->im[i]->bus)
			shmkit_bus_close(br->im[i]->bus);
		free(br->im[i]);
	}
	if (br->held_im)
		zmq_msg_close(&br->held);
	sk_stats_publish(br, 1);
	sk_stats_close(br);
	for (int i = 0; i < 3; i++)
		sk_services[i]->free_all(br);
	sk_link_close(br);
	sk_auth_close(br);
	if (br->pub)
		zmq_close(br->pub);
	if (br->sub)
		zmq_close(br->sub);
	if (br->ctx)
		zmq_ctx_term(br->ctx);
	free(br);
	return 0;
}

int sk_br_bind(void *sock, const char *endpoint, char *actual, size_t cap)
{
	char last[1024];
	size_t len = sizeof(last);

	if (zmq_bind(sock, endpoint))
		return sk_br_zerr();
	if (!actual)
		return 0;
	if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &len))
		return sk_br_zerr();
	if (strlen(last) + 1 > cap)
		return -ENOSPC;
	strcpy(actual, last);
	return 0;
}

int shmkit_bridge_bind(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap)
{
	int rc;

	if (!br || !endpoint)
		return -EINVAL;
	rc = sk_br_curve_server(br, br->pub);
	return rc ? rc : sk_br_bind(br->pub, endpoint, actual, cap);
}

int shmkit_bridge_connect(shmkit_bridge *br, const char *endpoint)
{
	int rc;

	if (!br || !endpoint)
		return -EINVAL;
	rc = sk_br_curve_client(br, br->sub);
	return rc ? rc : zmq_connect(br->sub, endpoint) ? sk_br_zerr() : 0;
}

/* 1 if key is 40 characters of Z85 (a 32-byte CURVE key). */
static int z85_key(const char *key)
{
	uint8_t raw[32];

	return key && strlen(key) == 40 && zmq_z85_decode(raw, key) != NULL;
}

int shmkit_bridge_curve(shmkit_bridge *br, const char *public_key, const char *secret_key)
{
	if (!br || !z85_key(public_key) || !z85_key(secret_key))
		return -EINVAL;
	if (!zmq_has("curve"))
		return -ENOTSUP;
	memcpy(br->curve_pub, public_key, 41);
	memcpy(br->curve_sec, secret_key, 41);
	br->curve = 1;
	return 0;
}

int shmkit_bridge_server_key(shmkit_bridge *br, const char *key)
{
	if (!br || (key && key[0] && !z85_key(key)))
		return -EINVAL;
	if (key && key[0] && !zmq_has("curve"))
		return -ENOTSUP;
	snprintf(br->server_key, sizeof(br->server_key), "%s", key ? key : "");
	return 0;
}

int sk_br_curve_server(shmkit_bridge *br, void *s)
{
	int one = 1;

	if (!br->curve)
		return 0;
	if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)) ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, br->curve_sec, 40))
		return sk_br_zerr();
	return 0;
}

int sk_br_curve_client(shmkit_bridge *br, void *s)
{
	if (!br->server_key[0])
		return 0;
	if (!br->curve_pub[0] && zmq_curve_keypair(br->curve_pub, br->curve_sec))
		return sk_br_zerr(); /* a keypair of its own for the client side */
	if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, br->server_key, 40) ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, br->curve_pub, 40) ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, br->curve_sec, 40))
		return sk_br_zerr();
	return 0;
}

int sk_br_name_ok(const char *name)
{
	return name && name[0] && strlen(name) <= NAME_MAX_;
}

static int is_import_target(shmkit_bridge *br, const char *local)
{
	for (unsigned i = 0; i < br->nim; i++)
		if (!strcmp(br->im[i]->local, local))
			return 1;
	return 0;
}

struct pos_find {
	pid_t pid;
	uint64_t pos;
	int n;
};

static int pos_one(const struct shmkit_bus_peer *p, void *arg)
{
	struct pos_find *f = arg;

	if (p->subscriber && p->pid == f->pid && p->alive == 1) {
		f->pos = p->position;
		f->n++;
	}
	return 0;
}

/* The bus state beside the exported bus, and what was published while no
 * bridge carried it (counted lost, and the frame numbers jump by as much,
 * so the receivers count it too).  No state if this process subscribes to
 * the bus more than once (its position would be ambiguous), if another
 * bridge holds the state, or for names nothing can sit beside. */
static void export_state(shmkit_bridge *br, struct bexport *ex)
{
	struct pos_find f = { getpid(), 0, 0 };
	char name[NAME_MAX_ + 32];

	if (shmkit_bus_peers(ex->bus, pos_one, &f) || f.n != 1 ||
	    sk_br_state_name(name, sizeof(name), ex->name, "skbr-bus") ||
	    sk_br_state_open(br, &ex->state_seg, name, sizeof(struct bus_state), sizeof(struct bus_state)))
		return;
	ex->bst = shmkit_seg_data(ex->state_seg);
	ex->pos = f.pos;
	/* Acquire: pairs with the release store of the magic below, by the
	 * bridge that made the state. */
	if (__atomic_load_n(&ex->bst->magic, __ATOMIC_ACQUIRE) == 0x42424b53u && ex->bst->version == 1) {
		/* Acquire: pairs with export_sent's release stores. */
		uint64_t seq = __atomic_load_n(&ex->bst->seq, __ATOMIC_ACQUIRE);
		uint64_t pos = __atomic_load_n(&ex->bst->pos, __ATOMIC_ACQUIRE);
		uint64_t gap = pos && pos <= f.pos ? f.pos - pos : 0; /* a bus made again: none */
		br->st.lost_local += gap;
		ex->seq = seq + gap;
	} else {
		ex->bst->version = 1;
		/* Release: the version before the magic that says it is set. */
		__atomic_store_n(&ex->bst->magic, 0x42424b53u, __ATOMIC_RELEASE); /* "SKBB" */
	}
	/* Release: read by the next bridge's acquire loads above. */
	__atomic_store_n(&ex->bst->seq, ex->seq, __ATOMIC_RELEASE);
	__atomic_store_n(&ex->bst->pos, ex->pos, __ATOMIC_RELEASE);
}

static int export_open(struct bexport *ex, const char *name)
{
	struct shmkit_bus_stats bs;
	struct shmkit_bus_opts so = { .from = SHMKIT_FROM_NEWEST };
	int rc;

	snprintf(ex->name, sizeof(ex->name), "%s", name);
	rc = shmkit_bus_open(&ex->bus, name, NULL);
	if (!rc)
		rc = shmkit_bus_stats(ex->bus, &bs);
	if (!rc)
		rc = shmkit_bus_subscribe(&ex->sub, ex->bus, &so);
	if (!rc)
		rc = ex->fd = shmkit_sub_fd(ex->sub);
	if (rc < 0)
		return rc;
	ex->capacity = bs.capacity;
	ex->max_msg = bs.max_msg;
	ex->delivery = bs.delivery;
	ex->topic_len = shmkit_bridge_topic((char *)ex->frame, TOPIC_MAX, SHMKIT_BRIDGE_KIND_BUS, name);
	if (ex->topic_len < 0)
		return ex->topic_len;
	unsigned char *f = realloc(ex->frame, (size_t)ex->topic_len + SHMKIT_BRIDGE_HDR + ex->max_msg);
	if (!f)
		return -ENOMEM;
	ex->frame = f;
	return 0;
}

int shmkit_bridge_export_bus(shmkit_bridge *br, const char *name)
{
	struct bexport *ex;
	int rc;

	if (!br || !sk_br_name_ok(name) || is_import_target(br, name))
		return -EINVAL;
	if (br->nex == MAX_EXPORTS)
		return -ENOSPC;
	ex = calloc(1, sizeof(*ex));
	if (ex)
		ex->frame = malloc(TOPIC_MAX);
	if (!ex || !ex->frame) {
		free(ex);
		return -ENOMEM;
	}
	rc = export_open(ex, name);
	if (rc) {
		export_free(ex);
		return rc;
	}
	export_state(br, ex);
	br->ex[br->nex++] = ex;
	sk_br_note(br, "export bus %s", name);
	return 0;
}

int shmkit_bridge_import_bus(shmkit_bridge *br, const char *remote, const char *local)
{
	struct bimport *im;

	if (!local)
		local = remote;
	if (!br || !sk_br_name_ok(remote) || !sk_br_name_ok(local))
		return -EINVAL;
	for (unsigned i = 0; i < br->nex; i++)
		if (!strcmp(br->ex[i]->name, local))
			return -EINVAL; /* carried back out: a loop */
	if (br->nim == MAX_IMPORTS)
		return -ENOSPC;
	int rc = sk_br_import_check(br, local);
	if (rc < 0)
		return rc;
	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	snprintf(im->remote, sizeof(im->remote), "%s", remote);
	snprintf(im->local, sizeof(im->local), "%s", local);
	im->topic_len = shmkit_bridge_topic(im->topic, sizeof(im->topic), SHMKIT_BRIDGE_KIND_BUS, remote);
	if (im->topic_len < 0 || zmq_setsockopt(br->sub, ZMQ_SUBSCRIBE, im->topic, (size_t)im->topic_len)) {
		rc = im->topic_len < 0 ? im->topic_len : sk_br_zerr();
		free(im);
		return rc;
	}
	br->im[br->nim++] = im;
	sk_br_note(br, "import bus %s=%s", remote, local);
	return 0;
}

/* ---- exports ---- */

/* Number the message now in the frame (lost: messages the subscription
 * was overwritten past, which take sequence numbers too). */
static void export_seal(shmkit_bridge *br, struct bexport *ex, size_t len, uint64_t lost)
{
	unsigned char *payload = ex->frame + ex->topic_len + SHMKIT_BRIDGE_HDR;
	struct shmkit_bridge_hdr h = {
		.magic = SHMKIT_BRIDGE_MAGIC, .version = SHMKIT_BRIDGE_VERSION,
		.kind = SHMKIT_BRIDGE_KIND_BUS, .delivery = (uint8_t)ex->delivery,
		.origin = br->id, .length = (uint32_t)len,
		.capacity = ex->capacity, .max_msg = ex->max_msg,
	};

	br->st.lost_local += lost;
	ex->seq += lost + 1;
	ex->held_pos = ex->pos + lost + 1;
	h.seq = ex->seq;
	h.crc = shmkit_bridge_crc32c(0, payload, len);
	shmkit_bridge_hdr_encode(&h, ex->frame + ex->topic_len);
	ex->frame_len = (size_t)ex->topic_len + SHMKIT_BRIDGE_HDR + len;
}

/* The sealed message is done with (sent, or not wanted): where the export
 * stands is kept beside the bus. */
static void export_sent(struct bexport *ex)
{
	ex->pos = ex->held_pos;
	if (ex->bst) { /* Release: read by the next bridge's acquire loads (export_state). */
		__atomic_store_n(&ex->bst->seq, ex->seq, __ATOMIC_RELEASE);
		__atomic_store_n(&ex->bst->pos, ex->pos, __ATOMIC_RELEASE);
	}
}

/* Subscriptions from remote bridges (ZMQ_XPUB_VERBOSER: every subscribe
 * and unsubscribe, a disconnected subscriber's too): byte 1 or 0, then
 * the topic prefix.  An export counts those whose prefix its topic has. */
static void subscriptions(shmkit_bridge *br)
{
	unsigned char m[TOPIC_MAX + 1];

	for (int n = 0; n < BATCH; n++) {
		int len = zmq_recv(br->pub, m, sizeof(m), ZMQ_DONTWAIT);
		if (len < 1)
			break;
		if (len > (int)sizeof(m))
			continue; /* longer than any topic of ours */
		for (unsigned i = 0; i < br->nex; i++) {
			struct bexport *ex = br->ex[i];
			if (len - 1 > ex->topic_len || memcmp(ex->frame, m + 1, (size_t)len - 1))
				continue;
			if (m[0] == 1)
				ex->remote_subs++;
			else if (m[0] == 0 && ex->remote_subs > 0)
				ex->remote_subs--;
		}
	}
	br->st.bus_subscribers = 0;
	for (unsigned i = 0; i < br->nex; i++)
		br->st.bus_subscribers += (uint32_t)br->ex[i]->remote_subs;
}

/* 0 sent, 1 the socket is full (the frame stays held), <0 an error. */
static int export_send(shmkit_bridge *br, struct bexport *ex)
{
	if (zmq_send(br->pub, ex->frame, ex->frame_len, ZMQ_DONTWAIT) >= 0) {
		ex->frame_len = 0;
		export_sent(ex);
		ex->refused = 0;
		br->st.sent++;
		return 0;
	}
	if (zmq_errno() == EAGAIN) {
		br->st.send_waits += !ex->refused;
		ex->refused = 1;
		return 1;
	}
	return sk_br_zerr();
}

/* Carry up to BATCH messages.  0 drained, 1 held or cut short, <0 error. */
static int export_pump(shmkit_bridge *br, struct bexport *ex)
{
	unsigned char *payload = ex->frame + ex->topic_len + SHMKIT_BRIDGE_HDR;

	for (int n = 0; n < BATCH; n++) {
		if (!ex->frame_len) {
			uint64_t lost = 0;
			ssize_t r = shmkit_sub_recv(ex->sub, payload, ex->max_msg, &lost, 0);
			if (r == -EAGAIN)
				return 0;
			if (r < 0) /* a corrupt or truncated bus: nothing to carry this turn */
				return r == -EBADMSG || r == -EIO ? 0 : (int)r;
			export_seal(br, ex, (size_t)r, lost);
			if (!ex->remote_subs) { /* nobody remote wants it: not sent */
				br->st.unsubscribed++;
				ex->frame_len = 0;
				export_sent(ex);
				continue;
			}
		}
		int rc = export_send(br, ex);
		if (rc)
			return rc;
	}
	return 1;
}

/* ---- imports ---- */

static struct bimport *import_find(shmkit_bridge *br, const char *topic, size_t len)
{
	for (unsigned i = 0; i < br->nim; i++)
		if ((size_t)br->im[i]->topic_len == len && !memcmp(br->im[i]->topic, topic, len))
			return br->im[i];
	return NULL;
}

/* Count the sequence numbers between this frame and the last one of its
 * origin that never came.  A smaller number is a sender that restarted:
 * counting starts again. */
static void import_account(shmkit_bridge *br, struct bimport *im, uint32_t origin, uint64_t seq)
{
	struct origin_seen *s = NULL;

	for (unsigned i = 0; i < im->nseen && !s; i++)
		if (im->seen[i].origin == origin)
			s = &im->seen[i];
	if (!s) {
		s = &im->seen[im->nseen < MAX_ORIGINS ? im->nseen++ : im->evict++ % MAX_ORIGINS];
		*s = (struct origin_seen){ origin, seq };
		return;
	}
	if (seq > s->last + 1)
		br->st.lost_remote += seq - s->last - 1;
	s->last = seq;
}

/* The local bus, created at the first frame with the remote geometry
 * when that is sane, else the defaults, and the bridge's mode; an
 * existing bus's geometry wins (with excl only the bridge's own), and
 * the import's mark goes beside it. */
static int import_bus(shmkit_bridge *br, struct bimport *im, const struct shmkit_bridge_hdr *h)
{
	struct shmkit_bus_opts o = { .mode = br->mode, .flags = sk_br_import_flags(br, im->local) };
	struct shmkit_bus_stats bs;
	int rc;

	if (im->bus)
		return 0;
	if (h->capacity && h->capacity <= (1u << 24) && h->max_msg &&
	    (uint64_t)h->capacity * ((uint64_t)h->max_msg + 64) <= GEOMETRY_LIMIT) {
		o.capacity = h->capacity;
		o.max_msg = h->max_msg;
	}
	o.delivery = h->delivery == SHMKIT_BUS_BACKPRESSURE ? SHMKIT_BUS_BACKPRESSURE : SHMKIT_BUS_OVERWRITE;
	int existed = sk_br_exists(im->local);
	rc = shmkit_bus_create(&im->bus, im->local, &o);
	if (!rc)
		sk_br_import_mark(br, im->local);
	if (!rc && (rc = shmkit_bus_stats(im->bus, &bs)) != 0) {
		shmkit_bus_close(im->bus);
		im->bus = NULL;
	}
	if (rc)
		return rc;
	im->max_msg = bs.max_msg;
	if (existed)
		sk_br_note_opened(br, "bus", im->remote, im->local,
		                  &(struct sk_geometry){ "capacity", bs.capacity, "max_msg", bs.max_msg },
		                  &(struct sk_geometry){ NULL, h->capacity, NULL, h->max_msg });
	return 0;
}

/* 0 published, 1 the bus is full (hold the frame), <0 dropped. */
static int import_publish(shmkit_bridge *br, struct bimport *im, const void *p, uint32_t len)
{
	int rc = shmkit_bus_publish(im->bus, p, len, 0);

	if (!rc) {
		br->st.delivered++;
		br->held_refused = 0;
		return 0;
	}
	if (rc == -EAGAIN || rc == -ETIMEDOUT) {
		br->st.publish_waits += !br->held_refused;
		br->held_refused = 1;
		return 1;
	}
	br->st.unroutable++;
	return rc;
}

int sk_br_judge(shmkit_bridge *br, const unsigned char *f, size_t len,
                struct shmkit_bridge_hdr *h, size_t *topic_len, const unsigned char **payload)
{
	const unsigned char *nul = memchr(f, 0, len < TOPIC_MAX ? len : TOPIC_MAX);

	br->st.received++;
	if (!nul || shmkit_bridge_hdr_decode(h, nul + 1, len - (size_t)(nul + 1 - f))) {
		br->st.malformed++;
		return -1;
	}
	*topic_len = (size_t)(nul + 1 - f);
	*payload = nul + 1 + SHMKIT_BRIDGE_HDR;
	if (h->magic != SHMKIT_BRIDGE_MAGIC || h->version != SHMKIT_BRIDGE_VERSION) {
		br->st.bad_version++;
		return -1;
	}
	if (h->length != len - *topic_len - SHMKIT_BRIDGE_HDR) {
		br->st.malformed++;
		return -1;
	}
	if (shmkit_bridge_crc32c(0, *payload, h->length) != h->crc) {
		br->st.bad_crc++;
		return -1;
	}
	if (h->origin == br->id) {
		br->st.own_origin++;
		return -1;
	}
	return 0;
}

/* Judge one frame of the SUB socket; its verdict is counted.  Returns 1
 * if msg must be held (its payload points into it), else 0. */
static int import_frame(shmkit_bridge *br, zmq_msg_t *msg)
{
	const unsigned char *f = zmq_msg_data(msg), *payload;
	struct shmkit_bridge_hdr h;
	struct bimport *im;
	size_t topic_len;

	if (sk_br_judge(br, f, zmq_msg_size(msg), &h, &topic_len, &payload))
		return 0;
	if (h.kind != SHMKIT_BRIDGE_KIND_BUS) {
		br->st.malformed++;
		return 0;
	}
	im = import_find(br, (const char *)f, topic_len);
	if (!im) {
		br->st.unroutable++;
		return 0;
	}
	import_account(br, im, h.origin, h.seq);
	if (import_bus(br, im, &h) || h.length > im->max_msg) {
		br->st.unroutable++;
		return 0;
	}
	if (import_publish(br, im, payload, h.length) != 1)
		return 0;
	br->held_im = im;
	br->held_payload = payload;
	br->held_len = h.length;
	return 1;
}

/* Publish the held frame.  0 done (or dropped), 1 still held. */
static int import_retry(shmkit_bridge *br)
{
	if (!br->held_im)
		return 0;
	if (import_publish(br, br->held_im, br->held_payload, br->held_len) == 1)
		return 1;
	zmq_msg_close(&br->held);
	br->held_im = NULL;
	return 0;
}

/* Read up to BATCH frames.  0 drained, 1 held or cut short, <0 error. */
static int import_pump(shmkit_bridge *br)
{
	for (int n = 0; n < BATCH; n++) {
		int more = 0;
		size_t ml = sizeof(more);
		zmq_msg_init(&br->held);
		if (zmq_msg_recv(&br->held, br->sub, ZMQ_DONTWAIT) < 0) {
			int rc = zmq_errno() == EAGAIN ? 0 : sk_br_zerr();
			zmq_msg_close(&br->held);
			return rc;
		}
		if (zmq_getsockopt(br->sub, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
			br->st.received++; /* a multi-part message is no frame of ours */
			br->st.malformed++;
		} else if (import_frame(br, &br->held)) {
			return 1;
		}
		zmq_msg_close(&br->held);
	}
	return 1;
}

/* ---- the loop ---- */

static long poll_ms(shmkit_bridge *br, int held, int64_t timeout_ns)
{
	if (br->more)
		return 0;
	if (held)
		return 1;
	if (timeout_ns < 0 || timeout_ns > 100000000)
		return 100;
	return (long)((timeout_ns + 999999) / 1000000);
}

const struct sk_service *const sk_services[3] = { &sk_chan_service, &sk_jnl_service,
                                                  &sk_rpc_service };

/* The link's services' part of a turn (see struct sk_service): 2 if one
 * waits for a socket's room, 1 if one cut its work short, 0, or <0. */
static int services_pump(shmkit_bridge *br, int hello, int *held)
{
	int more = 0;

	for (int i = 0; i < 3; i++) {
		int rc = sk_services[i]->pump(br, hello);
		if (rc < 0)
			return rc;
		*held |= rc == 2;
		more |= rc == 1;
	}
	return more;
}

int shmkit_bridge_run(shmkit_bridge *br, int extra_fd, int64_t timeout_ns)
{
	zmq_pollitem_t it[3 + MAX_EXPORTS + 3 + 2 * MAX_PEERS + SERVICE_POLLITEMS];
	int n = 0, in_held, held, ret = 0, rc, nlink, nsv[3], at;

	if (!br)
		return -EINVAL;
	held = in_held = import_retry(br);
	for (unsigned i = 0; i < br->nex; i++)
		if (br->ex[i]->frame_len && export_send(br, br->ex[i]) == 1)
			held = 1;
	int64_t now = sk_br_now();
	int hello = now >= br->next_hello;
	if (hello)
		br->next_hello = now + HELLO_NS;
	/* before the poll: an outbox may hold frames to send */
	if ((rc = services_pump(br, 0, &held)) < 0)
		return rc;
	br->more |= rc;
	/* While an import frame is held the SUB socket is not read: its
	 * queue fills up to the high-water mark (the back-pressure). */
	it[n++] = (zmq_pollitem_t){ .socket = br->sub, .events = in_held ? 0 : ZMQ_POLLIN };
	it[n++] = (zmq_pollitem_t){ .socket = br->pub, .events = ZMQ_POLLIN };
	it[n++] = (zmq_pollitem_t){ .fd = extra_fd, .events = extra_fd >= 0 ? ZMQ_POLLIN : 0 };
	/* An export holding a frame is not polled either: its fd would stay
	 * readable while the bus has messages, and the poll would spin. */
	for (unsigned i = 0; i < br->nex; i++)
		it[n++] = (zmq_pollitem_t){ .fd = br->ex[i]->fd,
		                            .events = br->ex[i]->frame_len ? 0 : ZMQ_POLLIN };
	nlink = sk_link_pollitems(br, it + n);
	at = n + nlink;
	for (int i = 0; i < 3; i++)
		at += nsv[i] = sk_services[i]->pollitems(br, it + at);
	rc = zmq_poll(it, at, poll_ms(br, held, timeout_ns));
	if (rc < 0 && zmq_errno() != EINTR)
		return sk_br_zerr();
	br->more = 0;
	if (extra_fd >= 0 && (it[2].revents & ZMQ_POLLIN))
		ret = 1;
	subscriptions(br); /* every turn: the exports below need their count */
	if (it[0].revents & ZMQ_POLLIN) {
		rc = import_pump(br);
		if (rc < 0)
			return rc;
		br->more |= rc == 1 && !br->held_im;
	}
	for (unsigned i = 0; i < br->nex; i++) {
		if (it[3 + i].revents & ZMQ_POLLIN)
			shmkit_sub_ack_fd(br->ex[i]->sub);
		rc = export_pump(br, br->ex[i]);
		if (rc < 0)
			return rc;
		br->more |= rc == 1 && !br->ex[i]->frame_len;
	}
	rc = sk_link_pump(br, it + n);
	if (rc < 0)
		return rc;
	br->more |= rc == 1;
	at = n + nlink;
	for (int i = 0; i < 3; i++) {
		sk_services[i]->polled(br, it + at);
		at += nsv[i];
	}
	if ((rc = services_pump(br, hello, &held)) < 0)
		return rc;
	br->more |= rc;
	sk_stats_publish(br, 0);
	return ret;
}

int shmkit_bridge_listen(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap)
{
	if (!br || !endpoint)
		return -EINVAL;
	return sk_link_listen(br, endpoint, actual, cap);
}

int shmkit_bridge_peer(shmkit_bridge *br, const char *endpoint)
{
	if (!br || !endpoint)
		return -EINVAL;
	return sk_link_peer(br, endpoint);
}

int shmkit_bridge_stats(shmkit_bridge *br, struct shmkit_bridge_stats *st)
{
	if (!br || !st)
		return -EINVAL;
	*st = br->st;
	return 0;
}
