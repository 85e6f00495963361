/*
 * peer_suite.c - shmkit against the IPC a user would pick instead, in the
 * same run, interleaved round by round (bench_pair_interleaved: shmkit,
 * then each peer, four times over), between the same two pinned processes.
 * The peers and the rules every side follows are in bench/peer.h (every
 * byte of every message written by its sender and read by its receiver).
 *
 * Rows (64-byte messages)
 *   shmkit_rtt_spin_64    request and reply over two SPSC channels (the
 *                         copying send/recv), SHMKIT_WAIT_SPIN  / msg64_rtt
 *   shmkit_rtt_block_64   the same, SHMKIT_WAIT_BLOCK           / futex_rtt
 *   PEER_rtt_spin_64      the peer polling without sleeping
 *                                                   / shmkit_rtt_spin_64
 *   PEER_rtt_block_64     the peer's blocking receive
 *                                                   / shmkit_rtt_block_64
 * so a peer's ratio is how many times shmkit's time its round trip takes.
 * PEER is zmq_ipc (ZeroMQ PAIR sockets over ipc://), boost_mq
 * (Boost.Interprocess message_queue) and iceoryx (its C binding; the bench
 * starts and stops RouDi).  A peer that is not built says "skipped: not
 * installed" (scripts/deps.sh --bench installs them).
 *
 * For the plot (only when SHMKIT_BENCH_DATA names a file, see bench.h),
 * shmkit and every peer also run round trips (spinning) and one-way
 * streams at 64 B to 256 KiB; those figures go to the data file only
 * (scripts/plot.sh draws them), interleaved the same way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peer.h"

#define ROUNDS 4

/* ---- payloads --------------------------------------------------------- */

void peer_fill(void *buf, size_t len, uint64_t seq)
{
	unsigned char *b = buf;
	uint64_t w = seq * 0x9e3779b97f4a7c15ull;
	for (size_t off = 0; off + 8 <= len; off += 8, w++)
		memcpy(b + off, off ? &w : &seq, 8);
}

int peer_check(const void *buf, size_t len, uint64_t seq)
{
	const unsigned char *b = buf;
	uint64_t w = seq * 0x9e3779b97f4a7c15ull, got, bad = 0;
	memcpy(&got, b, 8);
	bad |= got ^ seq;
	for (size_t off = 8; off + 8 <= len; off += 8) {
		memcpy(&got, b + off, 8);
		bad |= got ^ ++w;
	}
	return bad ? -EBADMSG : 0;
}

/* ---- shmkit's side ---------------------------------------------------- */

struct sk_side {
	char names[2][80];
	int nchan;              /* 2: request and reply; 1: a stream */
	int wait;
	size_t msg;
	shmkit_chan *ch[2];
	unsigned char *buf;
	uint64_t seq;
};

static struct sk_side sk;

static int again(int r)
{
	return r == -ETIMEDOUT && !bench_aborted();
}

static int sk_send(shmkit_chan *ch, uint64_t seq)
{
	int r;
	peer_fill(sk.buf, sk.msg, seq);
	while (again(r = shmkit_chan_send(ch, sk.buf, sk.msg, BENCH_WAIT_NS)))
		;
	return r == -ETIMEDOUT ? -ECANCELED : r;
}

static int sk_recv(shmkit_chan *ch, uint64_t seq)
{
	ssize_t n;
	while (again((int)(n = shmkit_chan_recv(ch, sk.buf, sk.msg, BENCH_WAIT_NS))))
		;
	if (n < 0)
		return n == -ETIMEDOUT ? -ECANCELED : (int)n;
	return (size_t)n == sk.msg ? peer_check(sk.buf, sk.msg, seq) : -EBADMSG;
}

static void sk_teardown(void *arg)
{
	for (int i = sk.nchan - 1; i >= 0; i--) {
		if (!sk.ch[i])
			continue;
		shmkit_chan_close(sk.ch[i]);
		shmkit_seg_remove(sk.names[i]);
		bench_cleanup_pop(false);
		sk.ch[i] = NULL;
	}
	free(sk.buf);
	sk.buf = NULL;
}

static int sk_setup(void *arg)
{
	struct shmkit_chan_opts o = { .capacity = peer_capacity(sk.msg), .max_msg = (uint32_t)sk.msg,
	                              .flags = SHMKIT_CHAN_SPSC | SHMKIT_EXCL, .wait = sk.wait };
	int r = 0;

	sk.seq = 0;
	if (!(sk.buf = malloc(sk.msg)))
		return -ENOMEM;
	for (int i = 0; i < sk.nchan && !r; i++) {
		bench_unique_name(sk.names[i], sizeof(sk.names[i]), "peerchan");
		if (!(r = shmkit_chan_create(&sk.ch[i], sk.names[i], &o)) &&
		    (r = bench_cleanup_push(bench_unlink_shm, sk.names[i]))) {
			shmkit_chan_close(sk.ch[i]);
			shmkit_seg_remove(sk.names[i]);
			sk.ch[i] = NULL;
		}
	}
	if (r)
		sk_teardown(NULL);
	return r;
}

static int sk_ping(void *arg, long n)
{
	for (long i = 0; i < n; i++, sk.seq++) {
		int r = sk_send(sk.ch[0], sk.seq);
		if (r || (r = sk_recv(sk.ch[1], PEER_REPLY(sk.seq))))
			return r;
	}
	return 0;
}

static int sk_pong(void *arg, long n)
{
	for (long i = 0; i < n; i++, sk.seq++) {
		int r = sk_recv(sk.ch[0], sk.seq);
		if (r || (r = sk_send(sk.ch[1], PEER_REPLY(sk.seq))))
			return r;
	}
	return 0;
}

static int sk_consume(void *arg, long n)
{
	for (long i = 0; i < n; i++, sk.seq++) {
		int r = sk_recv(sk.ch[0], sk.seq);
		if (r)
			return r;
	}
	return 0;
}

static int sk_produce(void *arg, long n)
{
	for (long i = 0; i < n; i++, sk.seq++) {
		int r = sk_send(sk.ch[0], sk.seq);
		if (r)
			return r;
	}
	return 0;
}

static int sk_make(struct bench_pair *p, enum peer_mode mode, size_t msg)
{
	memset(&sk, 0, sizeof(sk));
	sk.msg = msg;
	sk.nchan = mode == PEER_STREAM ? 1 : 2;
	sk.wait = mode == PEER_RTT_BLOCK ? SHMKIT_WAIT_BLOCK :
	          mode == PEER_RTT_SPIN ? SHMKIT_WAIT_SPIN : SHMKIT_WAIT_ADAPTIVE;
	*p = (struct bench_pair){
		.arg = &sk, .setup = sk_setup, .teardown = sk_teardown,
		.parent_run = mode == PEER_STREAM ? sk_consume : sk_ping,
		.child_run = mode == PEER_STREAM ? sk_produce : sk_pong,
	};
	return 0;
}

static const struct peer peer_shmkit = {
	.name = "shmkit", .make = sk_make,
};

#ifndef SK_HAVE_BOOST
const struct peer peer_boost = {
	.name = "boost_mq", .missing = "not installed (Debian libboost-dev)",
};
#endif

/* ---- the comparison --------------------------------------------------- */

static const struct peer *const peers[] = { &peer_shmkit, &peer_zmq, &peer_boost, &peer_iceoryx };
#define NPEERS (sizeof(peers) / sizeof(peers[0]))

static const char *const mode_name[] = { "rtt_spin", "rtt_block", "stream" };

/* Operations per batch for a mode and size: a batch of a few ms. */
static long mode_iters(enum peer_mode mode, size_t msg)
{
	if (mode == PEER_RTT_BLOCK)
		return 200;
	if (mode == PEER_STREAM)
		return msg <= 4096 ? 20000 : msg <= 32768 ? 2000 : 200;
	return msg <= 4096 ? 2000 : msg <= 32768 ? 500 : 50;
}

/* Measure mode at msg bytes for shmkit and every built peer whose name is
 * wanted (or all, for_plot), interleaved; report 64-byte rows, write the
 * data file's lines.  started[i]: peer i's start() succeeded. */
static void compare(enum peer_mode mode, size_t msg, const bool *started, bool for_plot)
{
	struct bench_pair p[NPEERS];
	struct bench_stat st[NPEERS];
	int err[NPEERS], idx[NPEERS], k = 0;
	char name[NPEERS][64];

	for (size_t i = 0; i < NPEERS; i++) {
		snprintf(name[k], sizeof(name[k]), "%s_%s_%zu", peers[i]->name, mode_name[mode], msg);
		if (!started[i] || (!for_plot && i && !bench_want(name[k])))
			continue;
		if (peers[i]->make(&p[k], mode, msg))
			continue; /* this peer cannot: no row */
		p[k].iters = mode_iters(mode, msg);
		p[k].batches = for_plot ? 16 : mode == PEER_RTT_BLOCK ? 40 : 0;
		idx[k++] = (int)i;
	}
	if (k < 1 || (!for_plot && k == 1 && !bench_want(name[0])))
		return;
	bench_pair_interleaved(p, k, ROUNDS, st, err);
	for (int j = 0; j < k; j++) {
		if (!bench_check(name[j], err[j]))
			continue;
		if (for_plot)
			bench_data(peers[idx[j]]->name, mode_name[mode], msg,
			           mode == PEER_STREAM ? 1e9 / st[j].median_ns : st[j].median_ns,
			           mode == PEER_STREAM ? "msg/s" : "ns");
		else
			bench_report_kind(name[j], &st[j], 'n', msg,
			                  j ? name[0] : mode == PEER_RTT_BLOCK ? "futex_rtt" : "msg64_rtt");
	}
}

static void peers_suite(void)
{
	static const size_t sizes[] = { 64, 512, 4096, 32768, 262144 };
	bool started[NPEERS], plot = bench_data_wanted(), any = plot;

	for (size_t i = 0; i < NPEERS; i++) {
		char row[2][64];
		snprintf(row[0], sizeof(row[0]), "%s_rtt_spin_64", peers[i]->name);
		snprintf(row[1], sizeof(row[1]), "%s_rtt_block_64", peers[i]->name);
		bool wanted = bench_want(row[0]) || bench_want(row[1]);
		any = any || wanted;
		started[i] = !peers[i]->missing;
		if (!started[i] && wanted) {
			bench_skip(row[0], peers[i]->missing);
			bench_skip(row[1], peers[i]->missing);
		}
	}
	if (!any)
		return;
	for (size_t i = 0; i < NPEERS; i++)
		if (started[i] && peers[i]->start && peers[i]->start()) {
			bench_skip(peers[i]->name, "its daemon did not start");
			started[i] = false;
		}
	compare(PEER_RTT_SPIN, 64, started, false);
	compare(PEER_RTT_BLOCK, 64, started, false);
	for (size_t s = 0; plot && s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		compare(PEER_RTT_SPIN, sizes[s], started, true);
		compare(PEER_STREAM, sizes[s], started, true);
	}
	for (size_t i = NPEERS; i-- > 0;)
		if (started[i] && peers[i]->stop)
			peers[i]->stop();
}

BENCH_SUITE("peers", peers_suite)
