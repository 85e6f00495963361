/*
 * rpc.c - request/response across hosts: clients on one host call servers
 * on another through their own local rpc service, as if local.
 *
 *   client host (import-rpc R[=L])           server host (export-rpc S)
 *   the bridge is a server of L:             the bridge is a client of S
 *   recv a request --rreq(token, timeout)--> send it into S with the time
 *                                            the caller has left
 *   respond_status  <--rresp(token, status)- its response (or the error)
 *   hellos every 200 ms --rhello-->          answered by rhello-ack
 *                   <--rack(geometry)---     (S's max_request/response)
 *
 * Deadlines travel as the time left (nanoseconds) when the request
 * leaves: each host measures it on its own clock, so clocks need not
 * agree (the network's delay is not counted).  The server host sends the
 * request into S with that timeout: its servers see the deadline, and a
 * call that runs out is cancelled there and answered with ETIMEDOUT.
 *
 * A lost link fails outstanding calls promptly, with the error a local
 * server's death gives: when the connection to the server host closes
 * (ZeroMQ's connection events: a cut link, a dead or restarted bridge
 * there) or no rhello-ack came for 3 s (a peer gone silent), the
 * client-host bridge closes
 * its server handle of L - every call it held fails in its caller with
 * -ECONNRESET (shmkit_rpc_close) - and opens a new one.  Requests that
 * come while the link is down are answered at once with the status
 * SHMKIT_BRIDGE_RPC_ERR + ENOTCONN.  Errors of the far side travel as
 * statuses too (SHMKIT_BRIDGE_RPC_ERR + errno: ETIMEDOUT the call ran out
 * there, ECONNRESET its server died, EBUSY the bridge there has no room
 * for another call, EMSGSIZE too big for S); an application status
 * (shmkit_rpc_respond_status) travels as it is.
 *
 * No request is carried twice: a frame lost on the way is a call that
 * times out (or fails with the link), never a call run twice.
 *
 * L is created at the first rhello-ack with S's geometry if missing; an
 * existing L keeps its own (a request larger than S allows fails
 * EMSGSIZE).  Outstanding calls per import: RPC_CALLS; per export, up to
 * RPC_HANDLES client handles of S (each `depth` calls).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RPC_CALLS 256
#define RPC_HANDLES 4
#define RPC_LINK_NS 3000000000ll  /* no ack this long: the link is lost */
#define RPC_NO_DEADLINE_NS 60000000000ll /* a call without one is given this */

struct rcall {
	int used;
	uint64_t token;
	struct shmkit_rpc_req req;
};

struct rimport {
	shmkit_rpc *r;            /* server handle of L, NULL until the first ack */
	int fd;
	uint32_t max_req, max_resp;
	int64_t acked_at;         /* last rhello-ack (0: never) */
	unsigned peer;            /* the peer that acked */
	int up;
	int made;                 /* L was made or opened by this import */
	uint64_t next_token;
	struct rcall call[RPC_CALLS];
	unsigned ncalls;
	unsigned char *frame;
	size_t frame_cap;
	int topic_len;
	char topic[TOPIC_MAX];
	char remote[NAME_MAX_ + 1], local[NAME_MAX_ + 1];
};

struct rflight {
	int used;
	unsigned h;               /* which client handle */
	uint64_t id, token;
	unsigned char rid[256];
	size_t rid_len;
};

struct rexport {
	shmkit_rpc *h[RPC_HANDLES];
	int fd[RPC_HANDLES];
	unsigned busy[RPC_HANDLES], depth;
	uint32_t max_req, max_resp;
	struct rflight fl[RPC_HANDLES * 64];
	unsigned char *frame;
	size_t frame_cap;
	int topic_len;
	char topic[TOPIC_MAX];
	char name[NAME_MAX_ + 1];
};

static int put_frame(unsigned char **buf, size_t *cap, size_t need)
{
	unsigned char *b;

	if (need <= *cap)
		return 0;
	if (need > (size_t)FRAME_MAX || !(b = realloc(*buf, need)))
		return -ENOMEM;
	*buf = b;
	*cap = need;
	return 0;
}

/* ======================= server host ======================= */

int shmkit_bridge_export_rpc(shmkit_bridge *br, const char *name)
{
	struct shmkit_rpc_stats rs;
	struct rexport *rx;
	int rc;

	if (!br || !sk_br_name_ok(name))
		return -EINVAL;
	if (br->nrex == MAX_EXPORTS)
		return -ENOSPC;
	rx = calloc(1, sizeof(*rx));
	if (!rx)
		return -ENOMEM;
	snprintf(rx->name, sizeof(rx->name), "%s", name);
	rc = rx->topic_len = shmkit_bridge_topic(rx->topic, sizeof(rx->topic), SHMKIT_BRIDGE_KIND_RPC, name);
	for (int i = 0; rc >= 0 && i < RPC_HANDLES; i++) {
		rc = shmkit_rpc_open(&rx->h[i], name, NULL);
		if (!rc)
			rc = rx->fd[i] = shmkit_rpc_fd(rx->h[i], SHMKIT_RPC_CLIENT);
	}
	if (rc >= 0)
		rc = shmkit_rpc_stats(rx->h[0], &rs);
	if (rc >= 0) {
		rx->depth = rs.depth;
		rx->max_req = rs.max_request;
		rx->max_resp = rs.max_response;
		rx->frame_cap = TOPIC_MAX + SHMKIT_BRIDGE_HDR + 4096;
		rx->frame = malloc(rx->frame_cap);
		rc = rx->frame ? 0 : -ENOMEM;
	}
	if (rc < 0) {
		for (int i = 0; i < RPC_HANDLES; i++)
			if (rx->h[i])
				shmkit_rpc_close(rx->h[i]);
		free(rx->frame);
		free(rx);
		return rc;
	}
	br->rex[br->nrex++] = rx;
	sk_br_note(br, "export rpc %s", name);
	return 0;
}

static void rexport_reply(shmkit_bridge *br, struct rexport *rx, const unsigned char *rid,
                          size_t rid_len, int kind, uint64_t token, uint32_t status,
                          const void *data, uint32_t len)
{
	struct shmkit_bridge_hdr h = { .kind = (uint8_t)kind, .origin = br->id, .seq = token,
	                               .stream = status, .capacity = rx->max_req,
	                               .max_msg = rx->max_resp };
	ssize_t fl;

	if (put_frame(&rx->frame, &rx->frame_cap, (size_t)TOPIC_MAX + SHMKIT_BRIDGE_HDR + len)) {
		br->st.unroutable++;
		return;
	}
	fl = sk_br_frame(rx->frame, rx->frame_cap, rx->topic, rx->topic_len, &h, data, len);
	if (fl < 0 || sk_link_to_rid(br, rid, rid_len, rx->frame, (size_t)fl))
		br->st.unroutable++; /* the caller's call times out or fails with its link */
	else if (kind == SHMKIT_BRIDGE_KIND_RPC_RESP)
		br->st.rpc_answered++;
}

static void rexport_request(shmkit_bridge *br, struct rexport *rx, const unsigned char *rid,
                            size_t rid_len, const struct shmkit_bridge_hdr *h,
                            const unsigned char *payload)
{
	uint64_t left = (uint64_t)h->capacity | (uint64_t)h->max_msg << 32, id = 0;
	struct rflight *f = NULL;
	unsigned k = RPC_HANDLES;
	int rc;

	for (unsigned i = 0; i < RPC_HANDLES * 64 && !f; i++)
		if (!rx->fl[i].used)
			f = &rx->fl[i];
	for (unsigned i = 0; i < RPC_HANDLES && k == RPC_HANDLES; i++)
		if (rx->busy[i] < rx->depth)
			k = i;
	if (!f || k == RPC_HANDLES) {
		rexport_reply(br, rx, rid, rid_len, SHMKIT_BRIDGE_KIND_RPC_RESP, h->seq,
		              SHMKIT_BRIDGE_RPC_ERR + EBUSY, NULL, 0);
		return;
	}
	if (!left || left > (uint64_t)RPC_NO_DEADLINE_NS)
		left = RPC_NO_DEADLINE_NS;
	rc = shmkit_rpc_send(rx->h[k], payload, h->length, h->delivery & SHMKIT_RPC_IDEMPOTENT,
	                     (int64_t)left, &id);
	if (rc) {
		rexport_reply(br, rx, rid, rid_len, SHMKIT_BRIDGE_KIND_RPC_RESP, h->seq,
		              SHMKIT_BRIDGE_RPC_ERR + (uint32_t)-rc, NULL, 0);
		return;
	}
	br->st.rpc_calls++;
	rx->busy[k]++;
	*f = (struct rflight){ .used = 1, .h = k, .id = id, .token = h->seq, .rid_len = rid_len };
	memcpy(f->rid, rid, rid_len);
}

/* Responses of client handle k, carried back. */
static void rexport_drain(shmkit_bridge *br, struct rexport *rx, unsigned k)
{
	while (rx->busy[k]) {
		const void *resp = NULL;
		uint64_t id = 0;
		ssize_t n = shmkit_rpc_wait(rx->h[k], &id, &resp, 0);
		if (n == -EAGAIN || n == -ETIMEDOUT || !id)
			return;
		struct rflight *f = NULL;
		for (unsigned i = 0; i < RPC_HANDLES * 64 && !f; i++)
			if (rx->fl[i].used && rx->fl[i].h == k && rx->fl[i].id == id)
				f = &rx->fl[i];
		if (n >= 0) {
			int st = shmkit_rpc_status(rx->h[k], id);
			if (f)
				rexport_reply(br, rx, f->rid, f->rid_len, SHMKIT_BRIDGE_KIND_RPC_RESP, f->token,
				              st < 0 ? SHMKIT_BRIDGE_RPC_ERR + (uint32_t)-st : (uint32_t)st,
				              resp, (uint32_t)n);
			shmkit_rpc_release(rx->h[k], id);
		} else if (f) {
			rexport_reply(br, rx, f->rid, f->rid_len, SHMKIT_BRIDGE_KIND_RPC_RESP, f->token,
			              SHMKIT_BRIDGE_RPC_ERR + (uint32_t)-n, NULL, 0);
		}
		if (f) {
			f->used = 0;
			rx->busy[k]--;
		}
	}
}

/* ======================= client host ======================= */

int shmkit_bridge_import_rpc(shmkit_bridge *br, const char *remote, const char *local)
{
	struct rimport *ri;
	int rc;

	if (!local)
		local = remote;
	if (!br || !sk_br_name_ok(remote) || !sk_br_name_ok(local))
		return -EINVAL;
	for (unsigned i = 0; i < br->nrex; i++)
		if (!strcmp(br->rex[i]->name, local))
			return -EINVAL; /* served here and forwarded: a loop */
	if (br->nrim == MAX_IMPORTS)
		return -ENOSPC;
	if ((rc = sk_br_import_check(br, local)) < 0)
		return rc;
	ri = calloc(1, sizeof(*ri));
	if (!ri)
		return -ENOMEM;
	snprintf(ri->remote, sizeof(ri->remote), "%s", remote);
	snprintf(ri->local, sizeof(ri->local), "%s", local);
	ri->next_token = 1;
	ri->fd = -1;
	rc = ri->topic_len = shmkit_bridge_topic(ri->topic, sizeof(ri->topic), SHMKIT_BRIDGE_KIND_RPC, remote);
	ri->frame_cap = TOPIC_MAX + SHMKIT_BRIDGE_HDR + 4096;
	if (rc < 0 || !(ri->frame = malloc(ri->frame_cap))) {
		free(ri);
		return rc < 0 ? rc : -ENOMEM;
	}
	br->rim[br->nrim++] = ri;
	sk_br_note(br, "import rpc %s=%s", remote, local);
	return 0;
}

/* The server handle of L (created with the remote geometry and the
 * bridge's mode if missing; with excl only if missing or the bridge's),
 * the import's mark beside it. */
static int rimport_open(shmkit_bridge *br, struct rimport *ri)
{
	struct shmkit_rpc_opts o = { .max_request = ri->max_req, .max_response = ri->max_resp,
	                             .mode = br->mode };
	int rc;

	if (ri->r)
		return 0;
	if (!o.max_request || o.max_request > (64u << 20) || !o.max_response || o.max_response > (64u << 20))
		o.max_request = o.max_response = 0; /* not sane: the defaults */
	int existed = !ri->made && sk_br_exists(ri->local);
	if (!ri->made) /* a reopen (a lost link) takes back its own L */
		o.flags = sk_br_import_flags(br, ri->local);
	rc = shmkit_rpc_create(&ri->r, ri->local, &o);
	if (!rc && !ri->made) {
		struct shmkit_rpc_stats rs;
		ri->made = 1;
		sk_br_import_mark(br, ri->local);
		if (existed && !shmkit_rpc_stats(ri->r, &rs))
			sk_br_note_opened(br, "rpc", ri->remote, ri->local,
			                  &(struct sk_geometry){ "max_request", rs.max_request, "max_response",
			                                         rs.max_response },
			                  &(struct sk_geometry){ NULL, ri->max_req, NULL, ri->max_resp });
	}
	if (!rc && (rc = ri->fd = shmkit_rpc_fd(ri->r, SHMKIT_RPC_SERVER)) < 0) {
		shmkit_rpc_close(ri->r);
		ri->r = NULL;
	}
	return rc < 0 ? rc : 0;
}

/* The link is lost: every call held fails in its caller (-ECONNRESET,
 * the close), and a new handle serves the next ones. */
static void rimport_fail_all(shmkit_bridge *br, struct rimport *ri)
{
	if (!ri->r)
		return;
	br->st.rpc_failed += ri->ncalls;
	memset(ri->call, 0, sizeof(ri->call));
	ri->ncalls = 0;
	shmkit_rpc_close(ri->r);
	ri->r = NULL;
	ri->fd = -1;
	rimport_open(br, ri);
}

static void rimport_answer(shmkit_bridge *br, struct rimport *ri, struct rcall *c, uint32_t status,
                           const void *data, uint32_t len)
{
	int rc = shmkit_rpc_respond_status(ri->r, &c->req, data, len, (int)(status & 0x7fffffff));

	if (rc == -EMSGSIZE) /* bigger than L allows */
		shmkit_rpc_respond_status(ri->r, &c->req, NULL, 0, SHMKIT_BRIDGE_RPC_ERR + EMSGSIZE);
	if (c->used) {
		c->used = 0;
		ri->ncalls--;
	}
	br->st.rpc_answered++;
}

/* Requests of local clients, forwarded while the link is up. */
static void rimport_pump(shmkit_bridge *br, struct rimport *ri, int64_t now)
{
	/* Lost: the connection closed (ZeroMQ's monitor says so at once), or
	 * silence (a peer that stopped without closing it). */
	if (ri->up && (br->peer[ri->peer].down_since > ri->acked_at || now - ri->acked_at > RPC_LINK_NS)) {
		ri->up = 0;
		br->st.rpc_link_lost++;
		rimport_fail_all(br, ri);
	}
	for (int n = 0; ri->r && n < BATCH && ri->ncalls < RPC_CALLS; n++) {
		struct rcall tmp = { 0 }, *c = &tmp;
		if (shmkit_rpc_recv(ri->r, &tmp.req, 0))
			return;
		if (!ri->up) {
			rimport_answer(br, ri, c, SHMKIT_BRIDGE_RPC_ERR + ENOTCONN, NULL, 0);
			continue;
		}
		for (unsigned i = 0; i < RPC_CALLS; i++)
			if (!ri->call[i].used) {
				c = &ri->call[i];
				break;
			}
		*c = tmp;
		c->used = 1;
		c->token = ri->next_token++;
		ri->ncalls++;
		int64_t left = 0;
		if (c->req.deadline_ns != INT64_MAX) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			left = c->req.deadline_ns - ((int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec);
			if (left <= 0) {
				rimport_answer(br, ri, c, SHMKIT_BRIDGE_RPC_ERR + ETIMEDOUT, NULL, 0);
				continue;
			}
		}
		struct shmkit_bridge_hdr h = { .kind = SHMKIT_BRIDGE_KIND_RPC_REQ, .origin = br->id,
		                               .seq = c->token, .delivery = (uint8_t)c->req.flags,
		                               .capacity = (uint32_t)(uint64_t)left,
		                               .max_msg = (uint32_t)((uint64_t)left >> 32) };
		ssize_t fl = put_frame(&ri->frame, &ri->frame_cap,
		                       (size_t)TOPIC_MAX + SHMKIT_BRIDGE_HDR + c->req.len)
		             ? -ENOMEM
		             : sk_br_frame(ri->frame, ri->frame_cap, ri->topic, ri->topic_len, &h,
		                           c->req.data, c->req.len);
		if (fl < 0 || sk_link_to_peer(br, ri->peer, ri->frame, (size_t)fl)) {
			rimport_answer(br, ri, c, SHMKIT_BRIDGE_RPC_ERR + ENOTCONN, NULL, 0);
			continue;
		}
		br->st.rpc_calls++;
	}
}

static void rimport_frame(shmkit_bridge *br, struct rimport *ri, unsigned p,
                          const struct shmkit_bridge_hdr *h, const unsigned char *payload)
{
	if (h->kind == SHMKIT_BRIDGE_KIND_RPC_ACK) {
		ri->max_req = h->capacity;
		ri->max_resp = h->max_msg;
		ri->acked_at = sk_br_now();
		ri->peer = p;
		ri->up = rimport_open(br, ri) == 0;
		return;
	}
	for (unsigned i = 0; i < RPC_CALLS; i++)
		if (ri->call[i].used && ri->call[i].token == h->seq) {
			rimport_answer(br, ri, &ri->call[i], h->stream, payload, h->length);
			return;
		}
	br->st.unroutable++; /* its call was failed meanwhile */
}

static void rimport_hello(shmkit_bridge *br, struct rimport *ri)
{
	unsigned char f[TOPIC_MAX + SHMKIT_BRIDGE_HDR];
	struct shmkit_bridge_hdr h = { .kind = SHMKIT_BRIDGE_KIND_RPC_HELLO, .origin = br->id };
	ssize_t fl = sk_br_frame(f, sizeof(f), ri->topic, ri->topic_len, &h, NULL, 0);

	for (unsigned p = 0; fl > 0 && p < br->npeer; p++)
		sk_link_to_peer(br, p, f, (size_t)fl);
}

/* ======================= the loop's part ======================= */

static void rpc_frame(shmkit_bridge *br, const unsigned char *rid, size_t rid_len, unsigned p,
                  const struct shmkit_bridge_hdr *h, const char *topic, size_t topic_len,
                  const unsigned char *payload)
{
	if (rid_len) { /* to an export: a request or a hello */
		for (unsigned i = 0; i < br->nrex; i++) {
			struct rexport *rx = br->rex[i];
			if ((size_t)rx->topic_len != topic_len || memcmp(rx->topic, topic, topic_len))
				continue;
			if (h->kind == SHMKIT_BRIDGE_KIND_RPC_REQ)
				rexport_request(br, rx, rid, rid_len, h, payload);
			else if (h->kind == SHMKIT_BRIDGE_KIND_RPC_HELLO)
				rexport_reply(br, rx, rid, rid_len, SHMKIT_BRIDGE_KIND_RPC_ACK, 0, 0, NULL, 0);
			return;
		}
	} else if (h->kind == SHMKIT_BRIDGE_KIND_RPC_RESP || h->kind == SHMKIT_BRIDGE_KIND_RPC_ACK) {
		for (unsigned i = 0; i < br->nrim; i++) {
			struct rimport *ri = br->rim[i];
			if ((size_t)ri->topic_len == topic_len && !memcmp(ri->topic, topic, topic_len)) {
				rimport_frame(br, ri, p, h, payload);
				return;
			}
		}
	}
	br->st.unroutable++;
}

static int rpc_pump(shmkit_bridge *br, int hello)
{
	int64_t now = sk_br_now();

	for (unsigned i = 0; i < br->nrex; i++)
		for (unsigned k = 0; k < RPC_HANDLES; k++)
			rexport_drain(br, br->rex[i], k);
	for (unsigned i = 0; i < br->nrim; i++) {
		if (hello)
			rimport_hello(br, br->rim[i]);
		rimport_pump(br, br->rim[i], now);
	}
	return 0; /* its work is never cut short */
}

static int rpc_pollitems(shmkit_bridge *br, zmq_pollitem_t *it)
{
	int n = 0;

	for (unsigned i = 0; i < br->nrex; i++)
		for (unsigned k = 0; k < RPC_HANDLES; k++)
			it[n++] = (zmq_pollitem_t){ .fd = br->rex[i]->fd[k], .events = ZMQ_POLLIN };
	for (unsigned i = 0; i < br->nrim; i++) {
		struct rimport *ri = br->rim[i];
		it[n++] = (zmq_pollitem_t){ .fd = ri->fd,
		                            .events = ri->fd >= 0 && ri->ncalls < RPC_CALLS ? ZMQ_POLLIN : 0 };
	}
	return n;
}

static void rpc_polled(shmkit_bridge *br, const zmq_pollitem_t *it)
{
	int n = 0;

	for (unsigned i = 0; i < br->nrex; i++)
		for (unsigned k = 0; k < RPC_HANDLES; k++, n++)
			if (it[n].revents & ZMQ_POLLIN)
				shmkit_rpc_ack_fd(br->rex[i]->h[k]);
	for (unsigned i = 0; i < br->nrim; i++, n++)
		if (br->rim[i]->r && (it[n].revents & ZMQ_POLLIN))
			shmkit_rpc_ack_fd(br->rim[i]->r);
}

static void rpc_free_all(shmkit_bridge *br)
{
	for (unsigned i = 0; i < br->nrex; i++) {
		for (unsigned k = 0; k < RPC_HANDLES; k++)
			shmkit_rpc_close(br->rex[i]->h[k]);
		free(br->rex[i]->frame);
		free(br->rex[i]);
	}
	for (unsigned i = 0; i < br->nrim; i++) {
		if (br->rim[i]->r)
			shmkit_rpc_close(br->rim[i]->r);
		free(br->rim[i]->frame);
		free(br->rim[i]);
	}
	br->nrex = br->nrim = 0;
}

const struct sk_service sk_rpc_service = {
	.first = SHMKIT_BRIDGE_KIND_RPC_REQ, .last = SHMKIT_BRIDGE_KIND_RPC_ACK,
	.max_items = MAX_EXPORTS * RPC_HANDLES + MAX_IMPORTS,
	.frame = rpc_frame, .pump = rpc_pump, .pollitems = rpc_pollitems,
	.polled = rpc_polled, .free_all = rpc_free_all,
};
