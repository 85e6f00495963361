/*
 * shmkit-bridge.h - the ZeroMQ bridge (issue 14): carries shmkit services
 * between hosts.  A separate library (libshmkit-bridge.a, linked with
 * libzmq and libshmkit.a) on shmkit's public API only; the `shmkit-bridge`
 * command is a thin program over it.
 *
 * One bridge per host.  It exports local services (a PUB socket bound to
 * its endpoints) and imports remote ones (a SUB socket connected to other
 * bridges), all in ONE event loop: zmq_poll over the ZeroMQ sockets and
 * the services' pollable fds, no thread per service.
 *
 * Buses travel over PUB/SUB (below).  Channels travel over a second,
 * reliable link: a ROUTER socket bound with shmkit_bridge_listen and one
 * DEALER per peer bridge (shmkit_bridge_peer), with acknowledged hand-over
 * (see "Channels" below and the essay in chan.c).
 *
 * Buses:
 *   export NAME        a subscription to the local bus NAME; every message
 *                      goes out as one frame on the topic of NAME
 *   import NAME=LOCAL  frames of the remote bus NAME are published into the
 *                      local bus LOCAL, created at the first frame with
 *                      the remote bus's geometry (capacity, max_msg,
 *                      delivery) if missing; an existing bus's geometry
 *                      wins.  A bridge does not export a bus it imports
 *                      into (-EINVAL): a message cannot go round a loop.
 *
 * Wire format: one ZeroMQ frame (a single part, so a full socket refuses
 * it whole), little-endian:
 *   topic    'b' (kind bus), 'c' (channel kinds), 'j' (journal kinds) or
 *            'r' (rpc kinds),
 *            the exported name,
 *            a NUL byte: the SUB socket's prefix filter ("A\0" does not
 *            match "AB\0")
 *   header   40 bytes:
 *     0  u32 magic "SKBR"      4  u8 version (4)   5  u8 kind (1 = bus,
 *        2 channel data, 3 channel ack, 4 channel hello, 5 journal
 *        records, 6 journal hello, 7 rpc request, 8 rpc response, 9 rpc
 *        hello, 10 rpc hello-ack)
 *     6  u8 delivery (bus: enum shmkit_bus_delivery; channel data: 1 if the
 *        exported channel is SPSC)          7  u8 reserved (0)
 *     8  u32 origin bridge id  12 u32 payload length
 *     16 u64 sequence number (per origin and exported bus, from 1; a jump
 *        says how many the sender numbered and never sent, or the network
 *        dropped)
 *        Channel data: the outbox's sequence number; ack: the highest
 *        sequence committed into the importer's local channel (its
 *        delivery byte: 1 the next frame found that channel full, 2 it
 *        has room again, 0 otherwise); hello: 0.
 *        Journal records: the seq the leader's reader read them from
 *        (the seqs it skipped before a record are holes or retention at
 *        the leader), capacity says how many records the payload packs,
 *        and max_msg and stream hold the low and high halves of the
 *        leader journal's identity (shmkit_journal_stats id); journal
 *        hello: the next seq wanted.  rpc request/response: the call's
 *        token; the request carries the time left in ns the same way
 *        (0: none) and its flags in delivery; the response its status in
 *        stream; the hello-ack the service's max_request and
 *        max_response in capacity and max_msg.
 *     24 u32 capacity          28 u32 max_msg   (the exported service's
 *        geometry)
 *     32 u32 CRC-32C of the payload
 *     36 u32 stream: channel data and ack, the exporting outbox's stream
 *        id (random, kept in the outbox for its life, so it survives a
 *        restart of the exporting bridge); 0 otherwise
 *   payload  the message (empty for ack and hello); journal records:
 *            consecutive records, each u64 seq, u64 time_ns, u32
 *            length and its bytes, up to 64 KiB (a bigger record alone)
 * Version 2 gave the reserved word at 36 to the stream id; version 3
 * packs journal records several per frame; version 4 gives journal
 * records the seq they were read from and the journal's identity (older
 * versions' frames are counted bad_version and dropped).
 * A frame of another magic or version, a bad CRC, a length that disagrees
 * with the frame, or the receiver's own origin id is counted and dropped,
 * never delivered.
 *
 * Losses are counted, never hidden: a message the export subscription was
 * overwritten past (overwrite bus) advances the sequence without a frame
 * (lost_local at the sender, lost_remote at the receiver); a sequence jump
 * at the receiver counts lost_remote.  Only buses somebody subscribed to
 * remotely travel: the PUB socket is an XPUB that reports subscriptions;
 * an export without one takes its messages and counts them
 * `unsubscribed`.  Where an export stands is kept beside the bus
 * (BUS.skbr-bus: the last frame number and bus position carried): a
 * bridge restarted counts what was published while none carried it as
 * lost_local and numbers on past it, so the receivers count it as
 * lost_remote too.  Back-pressure: the PUB socket
 * refuses to drop at its high-water mark (ZMQ_XPUB_NODROP) unless
 * opts.drop, and the bridge then stops reading the local bus; an import
 * whose local back-pressure bus is full stops reading its SUB socket.
 * Over one TCP connection ZeroMQ still drops at the receiver's high-water
 * mark: the sequence numbers count it.
 *
 * Channels (exactly one consumer somewhere, none lost, none twice):
 *   export-chan NAME   the bridge is a consumer of the local channel NAME;
 *                      each message it takes goes first into the outbox
 *                      NAME.skbr-out (a shmkit segment beside the channel,
 *                      same backend), numbered, and leaves the outbox only
 *                      when the importer acknowledged it was committed into
 *                      its local channel.  At most `window` messages are
 *                      un-acked: then the bridge stops taking messages and
 *                      the local channel fills (flow control: a slow or
 *                      absent remote costs no bridge memory).
 *   import-chan R[=L]  frames of the remote channel R are sent into the
 *                      local channel L (created at the first frame with the
 *                      remote geometry if missing); the highest sequence
 *                      committed per stream lives in L.skbr-in, so
 *                      duplicates (resends after a lost ack, a restart of
 *                      either side) are suppressed and acked again.
 *   Un-acked frames are sent again after 300 ms without progress (go-back-N),
 *   at once when an importer says hello again after a reconnect, and at
 *   once when an importer whose local channel was full (it says so in its
 *   ack, delivery byte 1) says it drained (delivery 2).  One
 *   importing bridge at a time per exported channel: the outbox is pinned to
 *   the importer holding un-acked messages (others are `refused`) until all
 *   is acked.  Names: posix (NAME, posix:/NAME) or file: channels (their
 *   state segments need a name beside them).  The crash windows are stated
 *   in chan.c.
 *
 * Existing names: an import opens a local service that exists (its
 * geometry wins) unless opts.excl, and says so in the stats text
 * ("import bus R=L: L existed: opened", with both geometries when they
 * differ).  With opts.excl it takes only a name that does
 * not exist or that a bridge import made: LOCAL.skbr-in beside it (a
 * channel's inbox, which every channel import keeps; for a bus or rpc
 * service a mark that only an import with excl makes, once it made the
 * service), or a journal that is a copy (copy_of) or holds no record;
 * any other is -EEXIST, at the import call and again when the import
 * creates the service at its first frame (made exclusively: a name that
 * appeared meanwhile is refused, the frames counted unroutable).  So a
 * bridge restarted with excl takes back what it made.  Names with
 * nothing beside them (System V keys) are always refused when they
 * exist.  Exports need their service to exist; their state beside it
 * (NAME.skbr-out, .skbr-bus) is taken back whoever made it.
 *
 * All functions return 0 (or a non-negative count) or a negative errno.
 * A bridge handle is used by one thread.
 */
#ifndef SHMKIT_BRIDGE_H
#define SHMKIT_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMKIT_BRIDGE_VERSION 4
#define SHMKIT_BRIDGE_WINDOW_MAX 4096

typedef struct shmkit_bridge shmkit_bridge;

struct shmkit_bridge_opts {
	uint32_t id;        /* origin id of this bridge; 0: a random non-zero one */
	int hwm;            /* ZeroMQ send/receive high-water marks in messages
	                       (default 10000) */
	int drop;           /* 1: the PUB socket drops at its high-water mark
	                       (default: it refuses, and the bridge waits) */
	int window;         /* channels: un-acked messages per export (default
	                       64, at most SHMKIT_BRIDGE_WINDOW_MAX); an existing
	                       outbox keeps the window it was made with */
	unsigned mode;      /* permission bits (at most 0777) of everything the
	                       bridge creates: imported buses, channels and rpc
	                       services, journal copies (their directory gets x
	                       wherever r), the state beside services
	                       (NAME.skbr-out, .skbr-in, .skbr-bus) and the
	                       stats segment; 0: 0600.  Existing objects keep
	                       theirs. */
	int excl;           /* 1: an import refuses a local name that exists
	                       and is no bridge import's (-EEXIST; see
	                       "Existing names" above) */
};

/* Counters since creation (frames are ZeroMQ messages). */
struct shmkit_bridge_stats {
	uint32_t id;
	uint64_t sent;          /* frames sent */
	uint64_t received;      /* frames that arrived, good or bad */
	uint64_t delivered;     /* published into a local bus */
	uint64_t bad_version;   /* dropped: another magic or version */
	uint64_t bad_crc;       /* dropped: payload CRC-32C mismatch */
	uint64_t own_origin;    /* dropped: came from this bridge */
	uint64_t malformed;     /* dropped: short, lengths disagree, unknown
	                           kind or topic, extra frames */
	uint64_t unroutable;    /* dropped: no import (or local bus) for it,
	                           or larger than the local bus allows */
	uint64_t lost_remote;   /* sequence numbers that never arrived */
	uint64_t lost_local;    /* messages an export subscription lost */
	uint64_t send_waits;    /* frames the PUB socket refused at first (full) */
	uint64_t publish_waits; /* frames a local bus refused at first (full) */
	/* channels */
	uint64_t chan_out;      /* messages taken from exported channels into
	                           outboxes */
	uint64_t chan_sent;     /* data frames sent (resends included) */
	uint64_t resends;       /* data frames sent again */
	uint64_t acked;         /* outbox messages acknowledged */
	uint64_t chan_in;       /* messages committed into local channels */
	uint64_t chan_drained;  /* exports that resent at once when the
	                           importer's full channel drained (rather
	                           than at the 300 ms timer) */
	uint64_t duplicates;    /* data frames already committed: suppressed */
	uint64_t out_of_order;  /* data frames past a gap: dropped (resent) */
	uint64_t chan_full;     /* data frames the local channel had no room
	                           for: dropped (resent) */
	uint64_t refused;       /* hellos of a second importer while the
	                           outbox is pinned to another */
	uint64_t redelivered;   /* messages given again after a restart (SPSC:
	                           to the next consumer; MPMC: the owner's
	                           inherited peek) that the outbox already
	                           held: skipped */
	uint64_t uncertain;     /* MPMC imports found mid-commit at a restart
	                           into a channel with no room for an owner
	                           record: the message may be delivered twice */
	/* journals (duplicates, out_of_order, resends, refused shared with
	 * channels; refused: no follower slot free) */
	uint64_t jnl_sent;      /* record frames sent (resends included) */
	uint64_t jnl_in;        /* records appended to follower journals */
	uint64_t jnl_identity;  /* record frames of another leader journal than
	                           the one the copy is of (one removed and made
	                           again under the name): dropped */
	/* rpc */
	uint64_t rpc_calls;     /* calls forwarded (client host: to the link;
	                           server host: into the local service) */
	uint64_t rpc_answered;  /* responses (or errors) given back */
	uint64_t rpc_failed;    /* calls failed because the link was lost */
	uint64_t rpc_link_lost; /* times an import's link was found lost */
	/* the reliable link (ZeroMQ's connection events) */
	uint64_t links_up, links_down; /* peer connections made, lost */
	uint32_t peers_up;      /* peers connected now */
	uint32_t clients;       /* connections the listening socket holds */
	/* buses */
	uint64_t unsubscribed;  /* bus messages taken while no remote bridge
	                           subscribed to their bus: not sent */
	uint32_t bus_subscribers; /* remote subscriptions to exported buses */
	uint64_t auth_denied;   /* CURVE clients refused (not on the allow list) */
};

/* A bridge with no sockets bound or connected yet.  On failure nothing is
 * left. */
int shmkit_bridge_create(shmkit_bridge **out, const struct shmkit_bridge_opts *opts);
/* Close every socket, subscription and bus handle (the buses stay). */
int shmkit_bridge_close(shmkit_bridge *br);

/* Bind the PUB socket to a ZeroMQ endpoint ("tcp://127.0.0.1:5555",
 * "tcp://127.0.0.1:*", "ipc:///run/x").  The endpoint actually bound (a
 * port chosen for '*') is written to actual (may be NULL). */
int shmkit_bridge_bind(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap);
/* Connect the SUB socket to another bridge's endpoint (ZeroMQ reconnects
 * by itself). */
int shmkit_bridge_connect(shmkit_bridge *br, const char *endpoint);

/* CURVE encryption (ZeroMQ's, Z85 keys of 40 characters; call before
 * bind/listen and connect/peer): shmkit_bridge_curve gives this bridge
 * its keypair, and the PUB and ROUTER sockets it binds from then on are
 * CURVE servers; shmkit_bridge_server_key names the public key of the
 * bridge(s) the following connect/peer calls reach (NULL or "": plain),
 * a keypair of this bridge's own (made up if none was given) on the
 * client side.  -EINVAL for a malformed key, -ENOTSUP if libzmq lacks
 * CURVE. */
int shmkit_bridge_curve(shmkit_bridge *br, const char *public_key, const char *secret_key);
int shmkit_bridge_server_key(shmkit_bridge *br, const char *key);
/* Allow the client whose public key this is (call before bind/listen;
 * up to 64): once a bridge has such a list, its CURVE server sockets let
 * in only the clients on it (a ZAP handler in its loop; the others are
 * counted in auth_denied).  Without one, any client that knows this
 * bridge's public key gets in. */
int shmkit_bridge_allow_key(shmkit_bridge *br, const char *key);

/* The reliable link (channels): bind the ROUTER socket to an endpoint
 * (actual as for bind), and connect a DEALER to another bridge's listening
 * endpoint (one DEALER per peer, at most 16). */
int shmkit_bridge_listen(shmkit_bridge *br, const char *endpoint, char *actual, size_t cap);
int shmkit_bridge_peer(shmkit_bridge *br, const char *endpoint);

/* Export the local channel `name` (it must exist: -ENOENT) over the
 * reliable link; its outbox NAME.skbr-out is created or recovered.
 * -EBUSY: another bridge exports it; -EINVAL: not a posix or file name, or
 * an imported channel; -EPROTO: the outbox does not fit the channel
 * (remove it once empty). */
int shmkit_bridge_export_chan(shmkit_bridge *br, const char *name);
/* Import the remote channel `remote` into the local channel `local`
 * (NULL: the same name); hellos go to every peer. */
int shmkit_bridge_import_chan(shmkit_bridge *br, const char *remote, const char *local);

/* Journal replication (essay in journal.c): the leader exports the
 * journal at path (it must exist) to any number of followers (8 at
 * once); a follower imports the remote journal `remote` into the local
 * journal at path (NULL: the same path), created if missing, opened for
 * writing by the bridge while it runs (durability: enum
 * shmkit_durability of its appends; a record is acknowledged once its
 * append returned).  The copy has the leader's sequence numbers, stamps,
 * record bytes and holes (shmkit_journal_append_at), from the leader's
 * oldest retained record on; it is a copy of one leader journal for life
 * (shmkit_journal_set_copy_of: frames of another are jnl_identity). */
int shmkit_bridge_export_journal(shmkit_bridge *br, const char *path);
int shmkit_bridge_import_journal(shmkit_bridge *br, const char *remote, const char *path,
                                 int durability);

/* rpc (essay in rpc.c): export the local service `name` (it must
 * exist): the bridge becomes a client of it for callers on other hosts;
 * import the remote service `remote` as the local service `local` (NULL:
 * the same name), created at the first answer of the far bridge with the
 * remote geometry if missing: the bridge serves it by forwarding.  A
 * deadline travels as the time left.  When the link is lost (its
 * connection closes, or no answer to hellos for 3 s) the calls
 * outstanding fail in their callers with -ECONNRESET at once.  Other failures reach the caller as the response
 * status (shmkit_rpc_status) SHMKIT_BRIDGE_RPC_ERR + errno, with an empty
 * response: ENOTCONN (no link), ETIMEDOUT (ran out on the far side),
 * ECONNRESET (the far server died), EBUSY (the far bridge has no room),
 * EMSGSIZE. */
#define SHMKIT_BRIDGE_RPC_ERR 0x40000000
int shmkit_bridge_export_rpc(shmkit_bridge *br, const char *name);
int shmkit_bridge_import_rpc(shmkit_bridge *br, const char *remote, const char *local);

/* Export the local bus `name` (it must exist: -ENOENT).  Messages
 * published from now on are carried. */
int shmkit_bridge_export_bus(shmkit_bridge *br, const char *name);
/* Import the remote bus `remote` into the local bus `local` (NULL: the
 * same name). */
int shmkit_bridge_import_bus(shmkit_bridge *br, const char *remote, const char *local);

/* One turn of the event loop: wait up to timeout_ns (bounded to 100 ms,
 * so a dead local publisher is noticed) for the sockets, the services'
 * fds and extra_fd (-1: none), then carry whatever is ready.  Returns 1
 * if extra_fd is readable (the caller's to handle), else 0. */
int shmkit_bridge_run(shmkit_bridge *br, int extra_fd, int64_t timeout_ns);

int shmkit_bridge_stats(shmkit_bridge *br, struct shmkit_bridge_stats *st);

/* Show this bridge to other programs: a new shmkit segment `name` (-EEXIST
 * if it exists) of text - "shmkit-bridge id=N pid=P", a line per service
 * exported or imported, the link's state, "stats id=..." - refreshed every
 * 500 ms and at close, which removes it.  Layout of its data area: 0 "SKBS",
 * 4 u8 version 1, 8 u64 gen (a sequence lock: odd while the bridge
 * writes), 16 u32 length, the text at SHMKIT_BRIDGE_STATS_TEXT.
 * shmkit_bridge_stats_read copies the text of such a data area into buf
 * consistently: its length, -EPROTO if it is not one, -EAGAIN if the
 * writer kept it busy. */
#define SHMKIT_BRIDGE_STATS_TEXT 64
int shmkit_bridge_stats_segment(shmkit_bridge *br, const char *name);
int shmkit_bridge_stats_read(const void *data, size_t size, char *buf, size_t cap);
/* One line "id=... sent=... ..." (no newline) into buf; returns its
 * length, or -ENOSPC if it did not fit. */
int shmkit_bridge_stats_line(const struct shmkit_bridge_stats *st, char *buf, size_t cap);

/* ---- the wire format, for tests and other implementations ---- */
#define SHMKIT_BRIDGE_HDR 40
#define SHMKIT_BRIDGE_MAGIC 0x52424b53u /* "SKBR" read little-endian */
#define SHMKIT_BRIDGE_KIND_BUS 1
#define SHMKIT_BRIDGE_KIND_CHAN 2
#define SHMKIT_BRIDGE_KIND_CHAN_ACK 3
#define SHMKIT_BRIDGE_KIND_CHAN_HELLO 4
#define SHMKIT_BRIDGE_KIND_JNL 5
#define SHMKIT_BRIDGE_KIND_JNL_HELLO 6
#define SHMKIT_BRIDGE_KIND_RPC_REQ 7
#define SHMKIT_BRIDGE_KIND_RPC_RESP 8
#define SHMKIT_BRIDGE_KIND_RPC_HELLO 9
#define SHMKIT_BRIDGE_KIND_RPC_ACK 10
#define SHMKIT_BRIDGE_KIND_RPC SHMKIT_BRIDGE_KIND_RPC_REQ /* for topics */

struct shmkit_bridge_hdr {
	uint32_t magic;
	uint8_t version, kind, delivery;
	uint32_t origin;
	uint32_t length;
	uint64_t seq;
	uint32_t capacity, max_msg;
	uint32_t crc;
	uint32_t stream;
};

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start at 0). */
uint32_t shmkit_bridge_crc32c(uint32_t crc, const void *data, size_t len);
/* Header to 40 bytes, and back.  decode: 0, or -EBADMSG if len is short
 * (it checks nothing else: the caller judges magic, version, CRC). */
void shmkit_bridge_hdr_encode(const struct shmkit_bridge_hdr *h, unsigned char *out);
int shmkit_bridge_hdr_decode(struct shmkit_bridge_hdr *h, const void *buf, size_t len);
/* The topic of a name into buf (the start of a frame); returns its
 * length (NUL included), or -ENAMETOOLONG.  "posix:/X" is written "X":
 * both forms name one segment. */
int shmkit_bridge_topic(char *buf, size_t cap, int kind, const char *name);

#ifdef __cplusplus
}
#endif

#endif
