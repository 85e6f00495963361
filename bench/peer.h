/*
 * peer.h - what the peer rows share (bench/peer_*.c, bench/peer_*.cpp,
 * bench/zmq.c): the other IPC systems a user would pick instead of shmkit,
 * each measured against shmkit's matching row in the same run,
 * interleaved (bench_pair_interleaved), by bench/peer_suite.c.
 *
 * A peer moves messages between the bench's two pinned processes in three
 * modes, the same for every peer and for shmkit's own side:
 *   PEER_RTT_SPIN   round trip; each side polls for the next message
 *                   without sleeping (the peer's non-blocking receive in a
 *                   loop, or its own busy-wait mode)
 *   PEER_RTT_BLOCK  round trip; each side sleeps in the peer's blocking
 *                   receive
 *   PEER_STREAM     one way, the consumer timed (messages per second); each
 *                   side uses the peer's default way to wait
 * Honest payloads: the sender writes every byte of every message
 * (peer_fill), the receiver reads every byte and checks it (peer_check);
 * the answer of a round trip is a new message written in full.  The
 * parent pings, the child answers (and in a stream the child produces).
 *
 * Compiles as C and C++ (bench/peer_boost.cpp).
 */
#ifndef SHMKIT_BENCH_PEER_H
#define SHMKIT_BENCH_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench_pair;

enum peer_mode { PEER_RTT_SPIN, PEER_RTT_BLOCK, PEER_STREAM };

/* Messages a ring-buffer queue holds (shmkit's channels, Boost's
 * message_queue): 64, or as many as fit in 1 MiB for large messages (4 at
 * 256 KiB).  Every slot is then touched within the first batch, which
 * is warm-up: with 64 slots of 256 KiB the timed batches of a fresh
 * queue paid first-touch page faults in 16 MiB, and its round trips
 * cycled through memory no cache holds, where iceoryx reuses a few pool
 * chunks (measured before: shmkit 0.39-1.1 ms per 256 KiB round trip
 * against iceoryx's 0.10). */
static inline uint32_t peer_capacity(size_t msg)
{
	size_t fit = ((size_t)1 << 20) / (msg ? msg : 1);
	return fit >= 64 ? 64 : fit >= 4 ? (uint32_t)fit : 4;
}

/* The sequence number of a round trip's answer to seq. */
#define PEER_REPLY(seq) ((seq) ^ 0x8000000000000000ull)

/* Write every byte of a len-byte message (len a multiple of 8, >= 8) for
 * sequence number seq. */
void peer_fill(void *buf, size_t len, uint64_t seq);
/* Read every byte: 0 if buf holds peer_fill's message for seq, else
 * -EBADMSG. */
int peer_check(const void *buf, size_t len, uint64_t seq);

struct peer {
	const char *name;          /* row prefix: "zmq_ipc", "boost_mq", ... */
	/* NULL when built in; else why not ("not installed (Debian X)"). */
	const char *missing;
	/* Once before this peer's first pair and after its last (a daemon
	 * to start and stop); NULL if none.  start: 0 or a negative errno. */
	int (*start)(void);
	void (*stop)(void);
	/* Fill *p (hooks and arg; the arg is the peer's own static state)
	 * for mode and messages of msg bytes; iters is set by the caller.
	 * 0, or -ENOTSUP if the peer cannot do that mode or size. */
	int (*make)(struct bench_pair *p, enum peer_mode mode, size_t msg);
};

extern const struct peer peer_zmq;      /* bench/zmq.c */
extern const struct peer peer_boost;    /* bench/peer_boost.cpp, or a stub */
extern const struct peer peer_iceoryx;  /* bench/peer_iceoryx.c */

#ifdef __cplusplus
}
#endif

#endif /* SHMKIT_BENCH_PEER_H */
