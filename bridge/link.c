/*
 * link.c - the bridge's reliable link: a ROUTER socket bound to this
 * bridge's listening endpoints, and one DEALER per peer bridge.  Channels
 * (chan.c) travel on it; buses keep their PUB/SUB sockets (bridge.c).
 *
 * Why ROUTER/DEALER: acknowledgements need a way back to the sender of a
 * frame, and flow control needs a send that says "full" rather than
 * dropping.  The ROUTER is ZMQ_ROUTER_MANDATORY (a frame for a peer that
 * is gone fails with EHOSTUNREACH, one for a full peer with EAGAIN -
 * never a silent drop) and ZMQ_ROUTER_HANDOVER (a peer bridge that
 * restarts with the same id takes its routing id over at once).  A
 * DEALER's routing id is 'B' and its bridge id; it is ZMQ_IMMEDIATE (no
 * queue while not connected: hellos and acks are sent again anyway, and a
 * frame queued for a dead connection would only be lost later).  ZeroMQ
 * heartbeats (1 s, 3 s timeout) close a connection whose peer went
 * silent (a cut cable rather than a closed socket), so it reconnects.
 *
 * CURVE (shmkit_bridge_curve, shmkit_bridge_server_key): a bridge given a
 * keypair binds its ROUTER (and PUB) as a CURVE server; connecting
 * bridges must know its public key.  ZeroMQ then encrypts and
 * authenticates every frame: a tampered one breaks the connection (it is
 * made again), it never reaches the CRC check.  Any client holding the
 * server's public key is accepted unless the bridge has an allow list
 * (auth.c: a ZAP handler in the loop).
 *
 * Link state comes from ZeroMQ's socket monitors (an inproc PAIR socket
 * per monitored socket, polled in the loop): a peer is up between
 * ZMQ_EVENT_CONNECTED and ZMQ_EVENT_DISCONNECTED; the ROUTER counts the
 * connections it accepted and has not lost.  Counted in the statistics
 * (links_up, links_down, peers_up, clients).
 *
 * Frames are single ZeroMQ frames as on the PUB socket (topic, header,
 * payload; shmkit-bridge.h); the ROUTER sees the routing id before each.
 * A frame is judged (sk_br_judge: version, CRC, own origin, lengths) and
 * handed to its service by kind.  Nothing blocks: every send and receive
 * is ZMQ_DONTWAIT.
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "internal.h"

static int link_opts(shmkit_bridge *br, void *s)
{
	int ivl = 1000, timeout = 3000;

	if (sk_br_sock_opts(br, s) ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl)) ||
	    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof(timeout)))
		return sk_br_zerr();
	return 0;
}

/* A PAIR socket receiving s's connection events; NULL on failure (the
 * link works without it, its state is then unknown). */
static void *monitor(shmkit_bridge *br, void *s, int events)
{
	char addr[64];
	void *m;

	snprintf(addr, sizeof(addr), "inproc://skbr-mon-%p", s);
	if (zmq_socket_monitor(s, addr, events))
		return NULL;
	m = zmq_socket(br->ctx, ZMQ_PAIR);
	if (m && zmq_connect(m, addr)) {
		zmq_close(m);
		m = NULL;
	}
	return m;
}

/* The next event of monitor m: its number, 0 if none waits. */
static int monitor_event(void *m)
{
	unsigned char ev[6];
	char addr[256];
	int more = 0;
	size_t ml = sizeof(more);

	if (zmq_recv(m, ev, sizeof(ev), ZMQ_DONTWAIT) < 2)
		return 0;
	if (zmq_getsockopt(m, ZMQ_RCVMORE, &more, &ml) == 0 && more)
		zmq_recv(m, addr, sizeof(addr), ZMQ_DONTWAIT); /* the endpoint */
	return ev[0] | ev[1] << 8;
}

static void monitors_pump(shmkit_bridge *br)
{
	int ev;

	while (br->rmon && (ev = monitor_event(br->rmon)) != 0) {
		if (ev == ZMQ_EVENT_ACCEPTED)
			br->clients++;
		else if (ev == ZMQ_EVENT_DISCONNECTED && br->clients > 0)
			br->clients--;
	}
	for (unsigned i = 0; i < br->npeer; i++) {
		while (br->peer[i].mon && (ev = monitor_event(br->peer[i].mon)) != 0) {
			if (ev == ZMQ_EVENT_CONNECTED && !br->peer[i].up) {
				br->peer[i].up = 1;
				br->st.links_up++;
			} else if (ev == ZMQ_EVENT_DISCONNECTED && br->peer[i].up) {
				br->peer[i].up = 0;
				br->peer[i].down_since = sk_br_now();
				br->st.links_down++;
			}
		}
	}
	br->st.clients = (uint32_t)br->clients;
	br->st.peers_up = 0;
	for (unsigned i = 0; i < br->npeer; i++)
		br->st.peers_up += (uint32_t)br->peer[i].up;
}

void sk_link_describe(shmkit_bridge *br, char *buf, size_t cap, size_t *off)
{
	int w;

	if (br->router && *off < cap) {
		w = snprintf(buf + *off, cap - *off, "listening clients=%d\n", br->clients);
		*off += w > 0 ? (size_t)w : 0;
	}
	for (unsigned i = 0; i < br->npeer && *off < cap; i++) {
		w = snprintf(buf + *off, cap - *off, "peer %s %s\n", br->peer[i].ep,
		             br->peer[i].up ? "up" : "down");
		*off += w > 0 ? (size_t)w : 0;
	}
}

static int router_open(shmkit_bridge *br)
{
	int one = 1, rc;

	if (br->router)
		return 0;
	br->router = zmq_socket(br->ctx, ZMQ_ROUTER);
	if (!br->router)
		return sk_br_zerr();
	rc = link_opts(br, br->router);
	if (!rc)
		rc = sk_br_curve_server(br, br->router);
	if (!rc && (zmq_setsockopt(br->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) ||
	            zmq_setsockopt(br->router, ZMQ_ROUTER_HANDOVER, &one, sizeof(one))))
		rc = sk_br_zerr();
	if (rc) {
		zmq_close(br->router);
		br->router = NULL;
		return rc;
	}
	br->rmon = monitor(br, br->router, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED);
	return 0;
}

int sk_link_listen(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap)
{
	int rc = router_open(br);

	return rc ? rc : sk_br_bind(br->router, endpoint, actual, cap);
}

int sk_link_peer(shmkit_bridge *br, const char *endpoint)
{
	unsigned char rid[RID_LEN] = { 'B', (unsigned char)br->id, (unsigned char)(br->id >> 8),
	                               (unsigned char)(br->id >> 16), (unsigned char)(br->id >> 24) };
	int one = 1, rc;
	void *s;

	if (br->npeer == MAX_PEERS)
		return -ENOSPC;
	s = zmq_socket(br->ctx, ZMQ_DEALER);
	if (!s)
		return sk_br_zerr();
	rc = link_opts(br, s);
	if (!rc)
		rc = sk_br_curve_client(br, s);
	if (!rc && (zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, sizeof(rid)) ||
	            zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one))))
		rc = sk_br_zerr();
	/* The monitor before the connect: its first event must not be lost. */
	void *mon = rc ? NULL : monitor(br, s, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED);
	if (!rc && zmq_connect(s, endpoint))
		rc = sk_br_zerr();
	if (rc) {
		if (mon)
			zmq_close(mon);
		zmq_close(s);
		return rc;
	}
	br->peer[br->npeer].sock = s;
	br->peer[br->npeer].mon = mon;
	snprintf(br->peer[br->npeer].ep, sizeof(br->peer[0].ep), "%s", endpoint);
	br->npeer++;
	return 0;
}

void sk_link_close(shmkit_bridge *br)
{
	for (unsigned i = 0; i < br->npeer; i++) {
		zmq_socket_monitor(br->peer[i].sock, NULL, 0);
		if (br->peer[i].mon)
			zmq_close(br->peer[i].mon);
		zmq_close(br->peer[i].sock);
	}
	br->npeer = 0;
	if (br->router) {
		zmq_socket_monitor(br->router, NULL, 0);
		zmq_close(br->router);
	}
	if (br->rmon)
		zmq_close(br->rmon);
	br->router = br->rmon = NULL;
}

int sk_link_to_rid(shmkit_bridge *br, const unsigned char *rid, size_t rid_len,
                   const void *frame, size_t len)
{
	if (!br->router)
		return -EHOSTUNREACH;
	if (zmq_send(br->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return zmq_errno() == EAGAIN ? 1 : sk_br_zerr();
	/* The routing id was taken: the frame goes with it (a ROUTER checks
	 * room at the first part). */
	if (zmq_send(br->router, frame, len, ZMQ_DONTWAIT) < 0)
		return zmq_errno() == EAGAIN ? 1 : sk_br_zerr();
	return 0;
}

int sk_link_to_peer(shmkit_bridge *br, unsigned p, const void *frame, size_t len)
{
	if (zmq_send(br->peer[p].sock, frame, len, ZMQ_DONTWAIT) < 0)
		return zmq_errno() == EAGAIN ? 1 : sk_br_zerr();
	return 0;
}

int sk_link_pollitems(shmkit_bridge *br, zmq_pollitem_t *it)
{
	int n = 0;

	it[n++] = (zmq_pollitem_t){ .socket = br->router, .fd = -1,
	                            .events = br->router ? ZMQ_POLLIN : 0 };
	for (unsigned i = 0; i < br->npeer; i++)
		it[n++] = (zmq_pollitem_t){ .socket = br->peer[i].sock, .events = ZMQ_POLLIN };
	/* The ZAP handler and the monitors: read every turn (sk_auth_pump,
	 * monitors_pump), polled so a request or an event wakes the loop. */
	it[n++] = (zmq_pollitem_t){ .socket = br->zap, .fd = -1, .events = br->zap ? ZMQ_POLLIN : 0 };
	it[n++] = (zmq_pollitem_t){ .socket = br->rmon, .fd = -1, .events = br->rmon ? ZMQ_POLLIN : 0 };
	for (unsigned i = 0; i < br->npeer; i++)
		it[n++] = (zmq_pollitem_t){ .socket = br->peer[i].mon, .fd = -1,
		                            .events = br->peer[i].mon ? ZMQ_POLLIN : 0 };
	return n;
}

/* Hand a judged frame to its service. */
static void dispatch(shmkit_bridge *br, const unsigned char *rid, size_t rid_len, unsigned p,
                     const unsigned char *f, size_t len)
{
	struct shmkit_bridge_hdr h;
	const unsigned char *payload;
	size_t topic_len;

	if (sk_br_judge(br, f, len, &h, &topic_len, &payload))
		return;
	for (int i = 0; i < 3; i++) {
		const struct sk_service *sv = sk_services[i];
		if (h.kind >= sv->first && h.kind <= sv->last) {
			sv->frame(br, rid, rid_len, p, &h, (const char *)f, topic_len, payload);
			return;
		}
	}
	br->st.malformed++; /* a kind of no service of the link */
}

/* Receive one message of up to two parts (ROUTER: routing id, frame).
 * 1 one handled, 0 none waiting, <0 error. */
static int recv_one(shmkit_bridge *br, void *s, int router, unsigned p)
{
	unsigned char rid[256];
	int rid_len = 0, more = 0;
	size_t ml = sizeof(more);
	zmq_msg_t m;

	if (router) {
		rid_len = zmq_recv(s, rid, sizeof(rid), ZMQ_DONTWAIT);
		if (rid_len < 0)
			return zmq_errno() == EAGAIN ? 0 : sk_br_zerr();
		if (rid_len > (int)sizeof(rid))
			rid_len = sizeof(rid); /* truncated: cannot be one of ours */
	}
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
		int rc = zmq_errno() == EAGAIN ? 0 : sk_br_zerr();
		zmq_msg_close(&m);
		return rc;
	}
	if (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
		br->st.received++; /* more parts than ours: drain and drop */
		br->st.malformed++;
		while (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) >= 0 &&
		       zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml) == 0 && more)
			;
	} else {
		dispatch(br, rid, (size_t)rid_len, p, zmq_msg_data(&m), zmq_msg_size(&m));
	}
	zmq_msg_close(&m);
	return 1;
}

static int drain(shmkit_bridge *br, void *s, int router, unsigned p)
{
	for (int n = 0; n < BATCH; n++) {
		int rc = recv_one(br, s, router, p);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

int sk_link_pump(shmkit_bridge *br, const zmq_pollitem_t *it)
{
	int more = 0, rc;

	sk_auth_pump(br);
	monitors_pump(br);
	if (br->router && (it[0].revents & ZMQ_POLLIN)) {
		if ((rc = drain(br, br->router, 1, 0)) < 0)
			return rc;
		more |= rc;
	}
	for (unsigned i = 0; i < br->npeer; i++) {
		if (!(it[1 + i].revents & ZMQ_POLLIN))
			continue;
		if ((rc = drain(br, br->peer[i].sock, 0, i)) < 0)
			return rc;
		more |= rc;
	}
	return more;
}
