/*
 * internal.h - what the bridge's source files share (not installed): the
 * bridge handle, the bus export/import records of bridge.c, the reliable
 * link (link.c: a ROUTER bound, one DEALER per peer) and the channel
 * services over it (chan.c).
 */
#ifndef SK_BRIDGE_INTERNAL_H
#define SK_BRIDGE_INTERNAL_H

#include <stdint.h>
#include <zmq.h>

#include "shmkit.h"
#include "shmkit-bridge.h"

#define MAX_EXPORTS 64
#define MAX_IMPORTS 64
#define MAX_PEERS 16
#define MAX_ORIGINS 16
#define NAME_MAX_ 255
#define TOPIC_MAX (NAME_MAX_ + 2)
#define BATCH 256
/* A remote geometry bigger than this is not trusted to size a local
 * service: the defaults are used instead. */
#define GEOMETRY_LIMIT (256ull << 20)
/* The largest frame a socket accepts: topic, header, 64 MiB of payload. */
#define FRAME_MAX (TOPIC_MAX + SHMKIT_BRIDGE_HDR + (64ll << 20))
/* Routing ids of DEALER sockets: 'B' and the bridge id, little-endian
 * (ZeroMQ refuses ids starting with a zero byte). */
#define RID_LEN 5
#define MAX_FOLLOWERS 8        /* per exported journal */
#define MAX_ALLOW 64           /* client keys a bridge allows */

/* Where a bus export stands, kept beside the bus (BUS.skbr-bus) so that
 * a restarted bridge counts what was published while none carried it:
 * seq, the last frame sequence number handed to ZeroMQ; pos, the bus
 * sequence after the message it carried. */
struct bus_state {
	uint32_t magic, version;
	uint64_t seq, pos;
	uint64_t pad[5];
};

struct bexport {
	shmkit_bus *bus;
	shmkit_sub *sub;
	shmkit_seg *state_seg;  /* NULL: no state (another bridge holds it,
	                           or a name it cannot sit beside) */
	struct bus_state *bst;
	uint64_t pos;          /* bus sequence after the last message taken */
	uint64_t held_pos;     /* pos once the held frame is sent */
	int remote_subs;       /* remote subscriptions to its topic (XPUB) */
	int fd;                /* the subscription's pollable fd */
	uint32_t capacity, max_msg;
	int delivery;
	uint64_t seq;          /* last sequence numbered */
	int topic_len;
	unsigned char *frame;  /* topic, header, payload */
	size_t frame_len;      /* of the held frame, 0 if none */
	int refused;           /* the held frame was refused (counted once) */
	char name[NAME_MAX_ + 1];
};

struct origin_seen {
	uint32_t origin;
	uint64_t last;
};

struct bimport {
	shmkit_bus *bus;       /* NULL until the first frame (or an open) */
	uint32_t max_msg;      /* of the local bus */
	unsigned nseen, evict;
	struct origin_seen seen[MAX_ORIGINS];
	char topic[TOPIC_MAX];
	int topic_len;
	char remote[NAME_MAX_ + 1], local[NAME_MAX_ + 1];
};

struct cexport;
struct cimport;
struct jexport;
struct jimport;
struct rexport;
struct rimport;

/* One DEALER connected to another bridge's reliable endpoint. */
struct bpeer {
	void *sock;
	void *mon;             /* PAIR socket of its zmq_socket_monitor */
	int up;                /* a connection is established */
	int64_t down_since;    /* when it was last lost (0: never) */
	char ep[256];
};

struct shmkit_bridge {
	uint32_t id;
	int hwm, drop, window;
	unsigned mode;         /* opts.mode (0: the library's 0600) */
	int excl;              /* opts.excl */
	void *ctx, *pub, *sub;
	struct bexport *ex[MAX_EXPORTS];
	unsigned nex;
	struct bimport *im[MAX_IMPORTS];
	unsigned nim;
	zmq_msg_t held;        /* an import frame its bus refused */
	struct bimport *held_im;
	int held_refused;      /* counted in publish_waits */
	const unsigned char *held_payload;
	uint32_t held_len;
	int more;              /* a batch was cut short: poll without waiting */
	/* the reliable link (link.c) */
	void *router;          /* NULL until shmkit_bridge_listen */
	void *rmon;            /* its monitor (connections accepted, lost) */
	int clients;           /* connections the router holds */
	shmkit_seg *stats_seg; /* shmkit_bridge_stats_segment, or NULL */
	int64_t next_stats;    /* when it is written next */
	char stats_name[NAME_MAX_ + 1];
	char services[8192];   /* "export chan X" lines (sk_br_note) */
	size_t services_len;
	struct bpeer peer[MAX_PEERS];
	unsigned npeer;
	struct cexport *cex[MAX_EXPORTS];
	unsigned ncex;
	struct cimport *cim[MAX_IMPORTS];
	unsigned ncim;
	struct jexport *jex[MAX_EXPORTS];
	unsigned njex;
	struct jimport *jim[MAX_IMPORTS];
	unsigned njim;
	struct rexport *rex[MAX_EXPORTS];
	unsigned nrex;
	struct rimport *rim[MAX_IMPORTS];
	unsigned nrim;
	int64_t next_hello;    /* CLOCK_MONOTONIC ns of the next hello round */
	/* CURVE (Z85 keys, 40 characters): this bridge's keypair (given:
	 * curve, its bound sockets are CURVE servers; else made up for the
	 * client side when first needed) and the server key for the next
	 * connect/peer ("" for none) */
	int curve;
	char curve_pub[41], curve_sec[41], server_key[41];
	void *zap;             /* the ZAP handler (auth.c), NULL without a list */
	uint8_t allow[MAX_ALLOW][32]; /* client public keys allowed in */
	int nallow;
	struct shmkit_bridge_stats st;
};

int sk_br_zerr(void);
uint32_t sk_br_random_id(void);
int64_t sk_br_now(void);
int sk_br_name_ok(const char *name);
int sk_br_sock_opts(shmkit_bridge *br, void *s);
/* CURVE options of a socket about to bind (server) or connect (client);
 * nothing without keys. */
int sk_br_curve_server(shmkit_bridge *br, void *s);
int sk_br_curve_client(shmkit_bridge *br, void *s);
/* Bind sock; the endpoint bound (a '*' port resolved) into actual. */
int sk_br_bind(void *sock, const char *endpoint, char *actual, size_t cap);

/* 32-bit little-endian to and from bytes (the wire's byte order). */
void sk_br_put32(unsigned char *p, uint32_t v);
uint32_t sk_br_get32(const unsigned char *p);

/* A frame (topic, header with length and CRC filled in, payload) into
 * buf of cap bytes: its length, or -EMSGSIZE.  The payload may already
 * be in place (payload == buf + topic_len + SHMKIT_BRIDGE_HDR). */
ssize_t sk_br_frame(unsigned char *buf, size_t cap, const char *topic, int topic_len,
                    struct shmkit_bridge_hdr *h, const void *payload, uint32_t len);
/* Judge a frame's topic and header (magic, version, length, CRC, own
 * origin), counting a bad one.  0 good (h, *topic_len and *payload set),
 * -1 dropped. */
int sk_br_judge(shmkit_bridge *br, const unsigned char *f, size_t len,
                struct shmkit_bridge_hdr *h, size_t *topic_len, const unsigned char **payload);

/* chan.c: the name of a state segment beside a service's (NAME.suffix;
 * -EINVAL for sysv, anon, memfd names), and that segment opened or
 * created (size bytes) for this bridge alone (flock: -EBUSY). */
int sk_br_state_name(char *buf, size_t cap, const char *chan, const char *suffix);
int sk_br_state_open(shmkit_bridge *br, shmkit_seg **out, const char *name, size_t size,
                     size_t min);
/* Imports and an existing local name (opts.excl, "Existing names" in
 * shmkit-bridge.h): check, 0 or -EEXIST at the import call; flags,
 * SHMKIT_EXCL for the create at the first frame unless the name is a
 * bridge import's; mark, with excl, LOCAL.skbr-in made beside a bus or
 * rpc service the import made or took back (a channel's inbox is its
 * mark), 0 or -errno: best effort (without it a bridge restarted with
 * excl refuses the name). */
int sk_br_import_check(shmkit_bridge *br, const char *local);
/* 1 if a segment (service) of that name exists. */
int sk_br_exists(const char *name);
/* An import opened a local service that existed: a line in the stats
 * text, with both geometries where the existing one (kept) differs from
 * the remote's.  Two numbers named a_name and b_name (capacity, max_msg;
 * rpc: max_request, max_response). */
struct sk_geometry {
	const char *a_name;
	uint32_t a;
	const char *b_name;
	uint32_t b;
};
void sk_br_note_opened(shmkit_bridge *br, const char *kind, const char *remote, const char *local,
                       const struct sk_geometry *have, const struct sk_geometry *remote_g);
unsigned sk_br_import_flags(shmkit_bridge *br, const char *local);
int sk_br_import_mark(shmkit_bridge *br, const char *local);

/* stats.c: a line about a service into the stats text; the segment
 * written (at most every 500 ms unless now), removed at close. */
void sk_br_note(shmkit_bridge *br, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sk_stats_publish(shmkit_bridge *br, int now);
void sk_stats_close(shmkit_bridge *br);

/* auth.c: answer the ZAP requests waiting; close the handler. */
void sk_auth_pump(shmkit_bridge *br);
void sk_auth_close(shmkit_bridge *br);

/* link.c */
int sk_link_listen(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap);
int sk_link_peer(shmkit_bridge *br, const char *endpoint);
/* Send one frame to the peer bridge behind routing id rid (ROUTER side):
 * 0, 1 not now (its queue is full: try later), -EHOSTUNREACH (no such
 * connection), <0 other errors. */
int sk_link_to_rid(shmkit_bridge *br, const unsigned char *rid, size_t rid_len,
                   const void *frame, size_t len);
/* Send one frame on peer p's DEALER: 0, 1 not now (no connection, or
 * full), <0 error. */
int sk_link_to_peer(shmkit_bridge *br, unsigned p, const void *frame, size_t len);
/* Poll items of the link (ROUTER, each DEALER, their monitors) from it[0];
 * returns how many. */
int sk_link_pollitems(shmkit_bridge *br, zmq_pollitem_t *it);
/* Read what the link's sockets hold (items as filled above). */
int sk_link_pump(shmkit_bridge *br, const zmq_pollitem_t *it);
void sk_link_close(shmkit_bridge *br);
/* What the link is: "listening ... clients=N" and one "peer EP up|down"
 * line per peer, appended to buf at *off (bounded by cap). */
void sk_link_describe(shmkit_bridge *br, char *buf, size_t cap, size_t *off);

/* The services of the reliable link (chan.c, journal.c, rpc.c), one
 * interface each, which the loop (bridge.c) and the link (link.c) drive
 * in turn:
 *   frame      a frame of one of kinds first..last, from routing id rid
 *              (ROUTER side, rid_len > 0) or from peer p (DEALER side),
 *              already judged (sk_br_judge);
 *   pump       its part of a turn (send, resend, acknowledge, and hellos
 *              if hello): 1 if work was cut short (poll without waiting),
 *              2 if a socket refused a frame (poll briefly: no event says
 *              when it has room), 0, or <0 an error;
 *   pollitems  its pollable fds into it (those with room to go on), how
 *              many (at most max_items);
 *   polled     the same items after the poll (acknowledge fds that fired);
 *   free_all   everything it holds. */
struct sk_service {
	int first, last;
	int max_items;
	void (*frame)(shmkit_bridge *br, const unsigned char *rid, size_t rid_len, unsigned p,
	              const struct shmkit_bridge_hdr *h, const char *topic, size_t topic_len,
	              const unsigned char *payload);
	int (*pump)(shmkit_bridge *br, int hello);
	int (*pollitems)(shmkit_bridge *br, zmq_pollitem_t *it);
	void (*polled)(shmkit_bridge *br, const zmq_pollitem_t *it);
	void (*free_all)(shmkit_bridge *br);
};
extern const struct sk_service sk_chan_service, sk_jnl_service, sk_rpc_service;
extern const struct sk_service *const sk_services[3];
#define SERVICE_POLLITEMS (MAX_EXPORTS + MAX_EXPORTS * MAX_FOLLOWERS + MAX_EXPORTS * 4 + MAX_IMPORTS)

#define HELLO_NS 200000000ll /* hellos (and heartbeats of imports) */

#endif
