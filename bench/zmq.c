/*
 * zmq.c - ZeroMQ REQ/REP round trip, 64 bytes each way, between the same
 * two pinned processes, over ipc:// (a UNIX socket) and tcp:// loopback:
 *   zmq_reqrep_ipc_rtt   / rpc_call_block   (how many times a blocking
 *   zmq_reqrep_tcp_rtt   / rpc_call_block    shmkit call it costs)
 * Built when libzmq is installed (Debian libzmq3-dev; the Makefile defines
 * SK_HAVE_ZMQ); otherwise the rows say they were skipped.  Each process
 * makes its own context after fork (ZeroMQ contexts do not survive one).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ZMQ_MSG 64

#ifdef SK_HAVE_ZMQ
#include <zmq.h>

struct zmq_pp {
	char endpoint[128];
	void *ctx, *sock;
};

static void unlink_ipc(void *arg)
{
	unlink((const char *)arg + strlen("ipc://"));
}

static int ipc_setup(void *arg)
{
	struct zmq_pp *z = arg;
	char name[80];
	bench_unique_name(name, sizeof(name), "zmq");
	snprintf(z->endpoint, sizeof(z->endpoint), "ipc:///tmp/%s", name);
	return bench_cleanup_push(unlink_ipc, z->endpoint);
}

static int tcp_setup(void *arg)
{
	struct zmq_pp *z = arg;
	/* A port from the pid: two runs at once would need two pids alike. */
	snprintf(z->endpoint, sizeof(z->endpoint), "tcp://127.0.0.1:%d", 20000 + getpid() % 20000);
	return 0;
}

static int open_sock(struct zmq_pp *z, int type)
{
	int ms = 1000, zero = 0;

	if (!(z->ctx = zmq_ctx_new()) || !(z->sock = zmq_socket(z->ctx, type)))
		return -errno;
	zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &ms, sizeof(ms));
	zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof(zero));
	int r = type == ZMQ_REP ? zmq_bind(z->sock, z->endpoint) : zmq_connect(z->sock, z->endpoint);
	return r ? -errno : 0;
}

static int rep_init(void *arg)
{
	return open_sock(arg, ZMQ_REP);
}

static int req_init(void *arg)
{
	return open_sock(arg, ZMQ_REQ);
}

/* One message in, bounded: re-check bench_aborted() every second. */
static int zrecv(struct zmq_pp *z, void *buf)
{
	for (;;) {
		int n = zmq_recv(z->sock, buf, ZMQ_MSG, 0);
		if (n == ZMQ_MSG)
			return 0;
		if (n >= 0)
			return -EBADMSG;
		if ((errno != EAGAIN && errno != EINTR) || bench_aborted())
			return errno == EAGAIN ? -ECANCELED : -errno;
	}
}

static int req_run(void *arg, long n)
{
	struct zmq_pp *z = arg;
	unsigned char buf[ZMQ_MSG] = { 0 };
	for (long i = 0; i < n; i++) {
		memcpy(buf, &i, sizeof(i));
		long back;
		int r = zmq_send(z->sock, buf, ZMQ_MSG, 0) == ZMQ_MSG ? zrecv(z, buf) : -errno;
		memcpy(&back, buf, sizeof(back));
		if (r || back != i)
			return r ? r : -EBADMSG;
	}
	return 0;
}

static int rep_run(void *arg, long n)
{
	struct zmq_pp *z = arg;
	unsigned char buf[ZMQ_MSG];
	for (long i = 0; i < n; i++) {
		int r = zrecv(z, buf);
		if (r || zmq_send(z->sock, buf, ZMQ_MSG, 0) != ZMQ_MSG)
			return r ? r : -errno;
	}
	zmq_close(z->sock);
	zmq_ctx_term(z->ctx);
	return 0;
}

static void zmq_teardown(void *arg)
{
	struct zmq_pp *z = arg;
	if (z->sock)
		zmq_close(z->sock);
	if (z->ctx)
		zmq_ctx_term(z->ctx);
	z->sock = z->ctx = NULL;
	if (!strncmp(z->endpoint, "ipc://", 6)) {
		unlink_ipc(z->endpoint);
		bench_cleanup_pop(false);
	}
}

static void zmq_row(const char *name, int (*setup)(void *))
{
	struct zmq_pp z = { 0 };
	struct bench_pair p = {
		.iters = 200, .arg = &z, .setup = setup, .child_init = rep_init,
		.parent_init = req_init, .parent_run = req_run, .child_run = rep_run,
		.teardown = zmq_teardown,
	};
	struct bench_stat st;

	if (bench_check(name, bench_pair(&p, &st)))
		bench_report_kind(name, &st, 'n', ZMQ_MSG, "rpc_call_block");
}

static void zmq_suite(void)
{
	if (bench_want("zmq_reqrep_ipc_rtt"))
		zmq_row("zmq_reqrep_ipc_rtt", ipc_setup);
	if (bench_want("zmq_reqrep_tcp_rtt"))
		zmq_row("zmq_reqrep_tcp_rtt", tcp_setup);
}
#else
static void zmq_suite(void)
{
	if (bench_want("zmq_reqrep_ipc_rtt"))
		bench_skip("zmq_reqrep_ipc_rtt", "libzmq not installed (Debian libzmq3-dev)");
	if (bench_want("zmq_reqrep_tcp_rtt"))
		bench_skip("zmq_reqrep_tcp_rtt", "libzmq not installed (Debian libzmq3-dev)");
}
#endif

BENCH_SUITE("zmq", zmq_suite)
