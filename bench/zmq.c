/*
 * zmq.c - ZeroMQ as a peer (bench/peer.h, rows in bench/peer_suite.c):
 * two PAIR sockets over ipc:// (a UNIX socket in /tmp), one message per
 * zmq_send/zmq_recv, the payload written and read in full on both sides.
 *   zmq_ipc_rtt_spin_64    zmq_recv(ZMQ_DONTWAIT) polled in a loop,
 *                          sched_yield() between polls
 *                                               / shmkit_rtt_spin_64
 *   zmq_ipc_rtt_block_64   blocking zmq_recv    / shmkit_rtt_block_64
 *   stream (plot data)     blocking zmq_send and zmq_recv (ZeroMQ's own
 *                          queue of 1000 messages between them)
 * PAIR is ZeroMQ's fastest pattern for one-to-one (no REQ/REP envelope
 * and state machine).  ZeroMQ's I/O thread is part of the cost: every
 * message crosses from the caller to it and over the socket.  That thread
 * runs on its process's pinned CPU, so a caller that polls without ever
 * giving up the CPU starves it: the spinning round trip measured 137 us
 * with the bench's usual busy-wait (a yield every 1024 polls) against
 * 60 us with a yield after every empty poll, and 69-76 us blocking.  The
 * yield is the honest way for ZeroMQ to busy-wait here; it never sleeps.
 * Built when libzmq is installed (Debian libzmq3-dev; the Makefile defines
 * SK_HAVE_ZMQ); otherwise the rows say "skipped: not installed".  Each
 * process makes its own context after fork (contexts do not survive one).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "peer.h"

#ifdef SK_HAVE_ZMQ
#include <zmq.h>

struct zmq_pp {
	char endpoint[128];
	enum peer_mode mode;
	size_t msg;
	void *ctx, *sock;
	unsigned char *buf;
	uint64_t seq;
};

static struct zmq_pp zq;

static void unlink_ipc(void *arg)
{
	unlink((const char *)arg + strlen("ipc://"));
}

static int zq_setup(void *arg)
{
	char name[80];
	bench_unique_name(name, sizeof(name), "zmq");
	snprintf(zq.endpoint, sizeof(zq.endpoint), "ipc:///tmp/%s", name);
	zq.seq = 0;
	return bench_cleanup_push(unlink_ipc, zq.endpoint);
}

/* Per process, after fork: context, socket, buffer.  The child binds,
 * the parent connects (ZeroMQ queues until the bind is there).
 * Linger: the child sends last (a stream's tail, a round trip's final
 * answer) and closes its socket as soon as it has; zmq_close hands what
 * is still queued to the I/O thread, and zmq_ctx_term waits up to the
 * linger time for it to reach the parent.  With a linger of 0 ZeroMQ
 * drops that tail (the parent then waits for messages that never come,
 * and the pair is aborted: every stream and the large round trips failed
 * so).  The child's wait is bounded (the harness also kills a child that
 * outlives its pair); the parent, which receives last, lingers 0. */
#define ZQ_CHILD_LINGER_MS 10000

static int zq_open(bool bind)
{
	int ms = 1000, linger = bind ? ZQ_CHILD_LINGER_MS : 0, hwm = 1000;

	if (!(zq.buf = malloc(zq.msg)))
		return -ENOMEM;
	if (!(zq.ctx = zmq_ctx_new()) || !(zq.sock = zmq_socket(zq.ctx, ZMQ_PAIR)))
		return -errno;
	zmq_setsockopt(zq.sock, ZMQ_RCVTIMEO, &ms, sizeof(ms));
	zmq_setsockopt(zq.sock, ZMQ_SNDTIMEO, &ms, sizeof(ms));
	zmq_setsockopt(zq.sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(zq.sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(zq.sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	int r = bind ? zmq_bind(zq.sock, zq.endpoint) : zmq_connect(zq.sock, zq.endpoint);
	return r ? -errno : 0;
}

static int zq_child_init(void *arg)
{
	return zq_open(true);
}

static int zq_parent_init(void *arg)
{
	return zq_open(false);
}

/* One message in, checked: polled without sleeping (PEER_RTT_SPIN), else
 * blocking, re-checking bench_aborted() every second. */
static int zq_recv(uint64_t seq)
{
	int flags = zq.mode == PEER_RTT_SPIN ? ZMQ_DONTWAIT : 0;
	for (;;) {
		int n = zmq_recv(zq.sock, zq.buf, zq.msg, flags);
		if (n >= 0)
			return (size_t)n == zq.msg ? peer_check(zq.buf, zq.msg, seq) : -EBADMSG;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (bench_aborted())
			return -ECANCELED;
		if (flags)
			sched_yield(); /* the I/O thread shares this CPU */
	}
}

static int zq_send(uint64_t seq)
{
	peer_fill(zq.buf, zq.msg, seq);
	while (zmq_send(zq.sock, zq.buf, zq.msg, 0) != (int)zq.msg) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (bench_aborted())
			return -ECANCELED;
	}
	return 0;
}

static int zq_ping(void *arg, long n)
{
	for (long i = 0; i < n; i++, zq.seq++) {
		int r = zq_send(zq.seq);
		if (r || (r = zq_recv(PEER_REPLY(zq.seq))))
			return r;
	}
	return 0;
}

static int zq_close(int r)
{
	if (zq.sock)
		zmq_close(zq.sock);
	if (zq.ctx)
		zmq_ctx_term(zq.ctx);
	zq.sock = zq.ctx = NULL;
	free(zq.buf);
	zq.buf = NULL;
	return r;
}

static int zq_pong(void *arg, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, zq.seq++)
		if (!(r = zq_recv(zq.seq)))
			r = zq_send(PEER_REPLY(zq.seq));
	return zq_close(r);
}

static int zq_consume(void *arg, long n)
{
	for (long i = 0; i < n; i++, zq.seq++) {
		int r = zq_recv(zq.seq);
		if (r)
			return r;
	}
	return 0;
}

static int zq_produce(void *arg, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, zq.seq++)
		r = zq_send(zq.seq);
	return zq_close(r);
}

static void zq_teardown(void *arg)
{
	zq_close(0);
	unlink_ipc(zq.endpoint);
	bench_cleanup_pop(false);
}

static int zq_make(struct bench_pair *p, enum peer_mode mode, size_t msg)
{
	memset(&zq, 0, sizeof(zq));
	zq.mode = mode;
	zq.msg = msg;
	*p = (struct bench_pair){
		.arg = &zq, .setup = zq_setup, .teardown = zq_teardown,
		.child_init = zq_child_init, .parent_init = zq_parent_init,
		.parent_run = mode == PEER_STREAM ? zq_consume : zq_ping,
		.child_run = mode == PEER_STREAM ? zq_produce : zq_pong,
	};
	return 0;
}

const struct peer peer_zmq = {
	.name = "zmq_ipc", .make = zq_make,
};
#else
const struct peer peer_zmq = {
	.name = "zmq_ipc", .missing = "not installed (Debian libzmq3-dev)",
};
#endif
