/*
 * stress_kill.h - what the kill-loop stress driver (stress_kill.c) shares
 * with the children it execs: the message every producer sends, and the
 * board, a memfd mapped MAP_SHARED by all of them, where each process
 * records what it did so that the driver can judge after it died.
 *
 * Message: stream, length, sequence number, an FNV-1a sum, and a body
 * whose length and bytes are functions of (stream, seq).  A message that
 * fails smsg_check() is torn (or never sent).
 *
 * What a producer records (state[stream][seq]): TRYING before the call
 * that may commit the message, COMMITTED after it returned success,
 * ABORTED after an abort (or a loan readers abandoned) returned.  A
 * SIGKILL can land anywhere, so after a death COMMITTED means committed,
 * TRYING means "maybe" (the call may have committed it before the kill),
 * NONE and ABORTED mean the message must never be received.
 *
 * What a receiver records: its own log of (stream, seq, lost), one entry
 * after each message it accepted, published by a release store of nlog.
 * A copy-receiver receives into `inflight` in the board itself, so a
 * receiver killed after the library delivered a message but before it
 * logged it still shows which message it had (the driver counts it).
 *
 * rpc: a client is a producer whose messages are requests (its stream is
 * the client's number); after its call ended it records how: COMMITTED
 * (the right answer: "re:" + the request), RESET (-ECONNRESET), TIMEDOUT
 * (-ETIMEDOUT, also a send that found the queue full that long),
 * CANCELLED (it gave the call up), ABORTED (a request loan aborted).  A
 * server is a receiver whose log holds the calls it answered (respond
 * returned 0); the requests it holds, not yet answered, are in `held`, so
 * a server killed after answering and before logging still shows which
 * calls it may have answered.
 */
#ifndef SK_STRESS_KILL_H
#define SK_STRESS_KILL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shmkit.h"

/* ---- the message --------------------------------------------------------- */

#define SK_MSG_HDR 24u
#define SK_MSG_MAX 256u

struct smsg_hdr {
	uint32_t stream, len;
	uint64_t seq;
	uint32_t sum, zero;
};

static inline uint32_t smsg_len(uint32_t stream, uint64_t seq)
{
	uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)stream << 7;

	x ^= x >> 29;
	if (x % 11 == 0)
		return SK_MSG_MAX; /* now and then the largest */
	return SK_MSG_HDR + (uint32_t)(x % 160);
}

static inline uint8_t smsg_byte(uint32_t stream, uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 31u + stream * 101u + i * 7u + 1u);
}

static inline uint32_t smsg_fnv(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* Sum over the header (sum and zero taken as 0) and the body. */
static inline uint32_t smsg_sum(const struct smsg_hdr *h, const uint8_t *body, size_t blen)
{
	struct smsg_hdr c = *h;

	c.sum = 0;
	c.zero = 0;
	return smsg_fnv(smsg_fnv(2166136261u, &c, sizeof(c)), body, blen);
}

/* Write the message (stream, seq) at buf; returns its length. */
static inline size_t smsg_fill(void *buf, uint32_t stream, uint64_t seq)
{
	struct smsg_hdr h = { .stream = stream, .len = smsg_len(stream, seq), .seq = seq };
	uint8_t *body = (uint8_t *)buf + SK_MSG_HDR;

	for (size_t i = 0; i < h.len - SK_MSG_HDR; i++)
		body[i] = smsg_byte(stream, seq, i);
	h.sum = smsg_sum(&h, body, h.len - SK_MSG_HDR);
	memcpy(buf, &h, sizeof(h));
	return h.len;
}

/* 0 if the n bytes at buf are a whole message (its stream and seq in *h),
 * else what is wrong with them. */
static inline const char *smsg_check(const void *buf, size_t n, struct smsg_hdr *h)
{
	const uint8_t *body = (const uint8_t *)buf + SK_MSG_HDR;

	memset(h, 0, sizeof(*h));
	if (n < SK_MSG_HDR || n > SK_MSG_MAX)
		return "length out of range";
	memcpy(h, buf, sizeof(*h));
	if (h->len != n || n != smsg_len(h->stream, h->seq))
		return "length does not match its (stream, seq)";
	for (size_t i = 0; i < n - SK_MSG_HDR; i++)
		if (body[i] != smsg_byte(h->stream, h->seq, i))
			return "body bytes do not match its (stream, seq)";
	if (h->zero || h->sum != smsg_sum(h, body, n - SK_MSG_HDR))
		return "checksum mismatch";
	return NULL;
}

/* rpc: the servers' answer to a request is "re:" + the request, written
 * in the response loan (zc) or copied.  What respond returned. */
static inline int smsg_rpc_answer(shmkit_rpc *r, const struct shmkit_rpc_req *q, int zc)
{
	uint8_t out[SK_MSG_MAX + 3];
	void *w = out;
	int e;

	if (q->len > SK_MSG_MAX)
		return -EMSGSIZE;
	if (zc && (e = shmkit_rpc_respond_loan(r, q, &w)))
		return e;
	memcpy(w, "re:", 3);
	memcpy((uint8_t *)w + 3, q->data, q->len);
	return zc ? shmkit_rpc_respond_commit(r, q, q->len + 3u)
	          : shmkit_rpc_respond(r, q, out, q->len + 3u);
}

/* ---- the board ------------------------------------------------------------ */

#define SK_STREAMS 2                  /* producers (publishers) at once */
#define SK_MAXSEQ (1u << 16)          /* messages per stream and iteration */
#define SK_ROLES 64                   /* processes per iteration */
#define SK_LOGS 16                    /* receiving processes per iteration */
#define SK_LOGCAP (SK_STREAMS * SK_MAXSEQ)

enum sk_state {
	ST_NONE = 0, ST_TRYING = 1, ST_COMMITTED = 2, ST_ABORTED = 3,
	ST_RESET = 4, ST_TIMEDOUT = 5, ST_CANCELLED = 6, /* rpc calls */
};

enum sk_kind {
	K_PRODUCER = 1, /* channel send / reserve + commit */
	K_CONSUMER,     /* channel recv / peek + release */
	K_PUBLISHER,    /* bus publish / loan + publish_loan */
	K_SUBSCRIBER,   /* bus recv / peek + release */
	K_WRITER,       /* journal append */
	K_FOLLOWER,     /* journal reader following the writer */
	K_SERVER,       /* rpc recv + respond / respond_loan + commit */
	K_CLIENT,       /* rpc call / send, loan + send_loan, wait any */
};

/* How a role mixes copying and zero-copy calls. */
enum sk_mode { M_COPY = 0, M_ZC = 1, M_MIX = 2 };

/* What children found (counted on the board, told on stderr). */
enum sk_finding { F_TORN, F_HANG, F_ORDER, F_ERROR, F_WRONG, F_COUNT };

#define SK_HOLD 4 /* rpc: requests a server holds at once, at most */

struct slog {
	uint32_t stream;
	uint32_t lost; /* bus: lost reported with this message */
	uint64_t seq;
};

/* One process (an incarnation of a role). */
struct role {
	/* set by the driver before the exec */
	uint32_t kind, mode, stream, log;
	int32_t wait;
	uint32_t pad;
	uint64_t start;      /* producer: first seq */
	uint64_t seed;       /* its own PRNG */
	/* written by the process */
	uint32_t running;    /* 1 once it entered its loop */
	uint32_t finished;   /* subscriber: lost_total is set */
	uint64_t nlog;       /* receiver: log entries published */
	uint64_t ops;        /* calls that succeeded */
	uint64_t lost_total; /* subscriber: its entry's lost count at the end */
	uint64_t stale;      /* publisher: loans readers abandoned (-ESTALE);
	                        subscriber: releases of overwritten messages */
	uint64_t busy;       /* rpc client: -EBUSY answers (slots held by
	                        servers still answering given-up calls) */
	uint32_t nheld;      /* rpc server: requests taken, not yet logged */
	uint32_t pad2;
	struct slog held[SK_HOLD];
	uint8_t inflight[SK_MSG_MAX] __attribute__((aligned(64)));
};

struct board {
	/* the iteration, set by the driver */
	uint32_t scenario, delivery, durability, group_records;
	uint32_t group_ms, hold_loans, slow, pad;
	uint32_t rpc_depth, rpc_hold;  /* rpc: calls per client, held per server */
	int64_t hang_ns;
	char name[256];        /* channel or bus name, journal directory */
	/* control */
	uint32_t stop_prod;    /* futex word: producers finish */
	uint32_t stop_cons;    /* receivers finish when idle */
	uint32_t findings[F_COUNT];
	uint32_t pad2;
	uint64_t follow_hi;    /* journal follower: highest seq read */
	struct role roles[SK_ROLES];
	uint8_t state[SK_STREAMS][SK_MAXSEQ + 1];
	struct slog logs[SK_LOGS][SK_LOGCAP];
};

/* ---- a small PRNG (splitmix64) ------------------------------------------ */

static inline uint64_t sk_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t sk_rand_below(uint64_t *s, uint64_t n)
{
	return n ? sk_rand(s) % n : 0;
}

#endif /* SK_STRESS_KILL_H */
