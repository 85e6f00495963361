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
 * This increment carries buses only:
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
 *   topic    'b' (kind bus), the exported name, a NUL byte: the SUB
 *            socket's prefix filter ("A\0" does not match "AB\0")
 *   header   40 bytes:
 *     0  u32 magic "SKBR"      4  u8 version (1)   5  u8 kind (1 = bus)
 *     6  u8 delivery           7  u8 reserved (0)
 *     8  u32 origin bridge id  12 u32 payload length
 *     16 u64 sequence number (per origin and exported bus, from 1; a jump
 *        says how many the sender numbered and never sent, or the network
 *        dropped)
 *     24 u32 capacity          28 u32 max_msg   (the exported bus's geometry)
 *     32 u32 CRC-32C of the payload             36 u32 reserved (0)
 *   payload  the message
 * A frame of another magic or version, a bad CRC, a length that disagrees
 * with the frame, or the receiver's own origin id is counted and dropped,
 * never delivered.
 *
 * Losses are counted, never hidden: a message the export subscription was
 * overwritten past (overwrite bus) advances the sequence without a frame
 * (lost_local at the sender, lost_remote at the receiver); a sequence jump
 * at the receiver counts lost_remote.  Back-pressure: the PUB socket
 * refuses to drop at its high-water mark (ZMQ_XPUB_NODROP) unless
 * opts.drop, and the bridge then stops reading the local bus; an import
 * whose local back-pressure bus is full stops reading its SUB socket.
 * Over one TCP connection ZeroMQ still drops at the receiver's high-water
 * mark: the sequence numbers count it.
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

#define SHMKIT_BRIDGE_VERSION 1

typedef struct shmkit_bridge shmkit_bridge;

struct shmkit_bridge_opts {
	uint32_t id;        /* origin id of this bridge; 0: a random non-zero one */
	int hwm;            /* ZeroMQ send/receive high-water marks in messages
	                       (default 10000) */
	int drop;           /* 1: the PUB socket drops at its high-water mark
	                       (default: it refuses, and the bridge waits) */
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
/* One line "id=... sent=... ..." (no newline) into buf; returns its
 * length, or -ENOSPC if it did not fit. */
int shmkit_bridge_stats_line(const struct shmkit_bridge_stats *st, char *buf, size_t cap);

/* ---- the wire format, for tests and other implementations ---- */
#define SHMKIT_BRIDGE_HDR 40
#define SHMKIT_BRIDGE_MAGIC 0x52424b53u /* "SKBR" read little-endian */
#define SHMKIT_BRIDGE_KIND_BUS 1

struct shmkit_bridge_hdr {
	uint32_t magic;
	uint8_t version, kind, delivery;
	uint32_t origin;
	uint32_t length;
	uint64_t seq;
	uint32_t capacity, max_msg;
	uint32_t crc;
};

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start at 0). */
uint32_t shmkit_bridge_crc32c(uint32_t crc, const void *data, size_t len);
/* Header to 40 bytes, and back.  decode: 0, or -EBADMSG if len is short
 * (it checks nothing else: the caller judges magic, version, CRC). */
void shmkit_bridge_hdr_encode(const struct shmkit_bridge_hdr *h, unsigned char *out);
int shmkit_bridge_hdr_decode(struct shmkit_bridge_hdr *h, const void *buf, size_t len);
/* The topic of a name into buf (the start of a frame); returns its
 * length (NUL included), or -ENAMETOOLONG. */
int shmkit_bridge_topic(char *buf, size_t cap, int kind, const char *name);

#ifdef __cplusplus
}
#endif

#endif
