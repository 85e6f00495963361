/*
 * rpc.c - request/response rows: a client process calls, a server process
 * answers, 64-byte request and 64-byte response, ratios against what the
 * same run measured:
 *   rpc_call_spin        both sides SHMKIT_WAIT_SPIN    / chan_rtt_spsc_spin
 *                        (a call is a round trip; issue target 1.3x)
 *   rpc_call_adaptive    the default strategy           / rpc_call_spin
 *   rpc_call_block       SHMKIT_WAIT_BLOCK              / futex_rtt
 *                        (target 1.2x); unix_stream_rtt, the socket
 *                        request/response of the same size, is a row of
 *                        its own in the same run
 * The server answers with a copy (shmkit_rpc_respond); the client uses
 * shmkit_rpc_call (send, wait, copy, release).  Each answer is checked
 * against its request.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define CALL_MSG 64

struct rpc_pp {
	char name[80];
	int wait;
	shmkit_rpc *r;
	uint64_t seq;
};

static void unlink_name(void *arg)
{
	char path[96];
	path[0] = '/';
	strncpy(path + 1, arg, sizeof(path) - 2);
	path[sizeof(path) - 1] = '\0';
	shm_unlink(path); /* async-signal-safe enough: one system call */
}

static int rpc_setup(void *arg)
{
	struct rpc_pp *c = arg;
	struct shmkit_rpc_opts o = { .max_clients = 4, .depth = 4, .max_request = CALL_MSG,
	                             .max_response = CALL_MSG, .flags = SHMKIT_EXCL, .wait = c->wait };
	int r;

	c->seq = 0;
	bench_unique_name(c->name, sizeof(c->name), "rpc");
	if ((r = shmkit_rpc_create(&c->r, c->name, &o)))
		return r;
	if ((r = bench_cleanup_push(unlink_name, c->name))) {
		shmkit_rpc_close(c->r);
		shmkit_seg_remove(c->name);
	}
	return r;
}

static int server_init(void *arg)
{
	struct rpc_pp *c = arg;
	struct shmkit_rpc_opts o = { .wait = c->wait };
	/* The inherited handle stays the client's: the server opens its own. */
	return shmkit_rpc_open(&c->r, c->name, &o);
}

static void rpc_teardown(void *arg)
{
	struct rpc_pp *c = arg;
	shmkit_rpc_close(c->r);
	shmkit_seg_remove(c->name);
	bench_cleanup_pop(false);
}

static int client_run(void *arg, long n)
{
	struct rpc_pp *c = arg;
	unsigned char req[CALL_MSG], resp[CALL_MSG];

	memset(req, 0x5a, sizeof(req));
	for (long i = 0; i < n; i++, c->seq++) {
		memcpy(req, &c->seq, sizeof(c->seq));
		ssize_t k;
		while ((k = shmkit_rpc_call(c->r, req, sizeof(req), resp, sizeof(resp),
		                            BENCH_WAIT_NS)) == -ETIMEDOUT && !bench_aborted())
			;
		if (k < 0)
			return k == -ETIMEDOUT ? -ECANCELED : (int)k;
		if (k != CALL_MSG || memcmp(req, resp, sizeof(req)))
			return -EBADMSG;
	}
	return 0;
}

static int server_run(void *arg, long n)
{
	struct rpc_pp *c = arg;
	for (long i = 0; i < n; i++) {
		struct shmkit_rpc_req q;
		int r;
		while ((r = shmkit_rpc_recv(c->r, &q, BENCH_WAIT_NS)) == -ETIMEDOUT && !bench_aborted())
			;
		if (r || (r = shmkit_rpc_respond(c->r, &q, q.data, q.len)))
			return r == -ETIMEDOUT ? -ECANCELED : r;
	}
	return 0;
}

static void call_row(const char *name, int wait, long iters, const char *ref)
{
	struct rpc_pp c = { .wait = wait };
	struct bench_pair p = {
		.iters = iters, .arg = &c, .setup = rpc_setup, .child_init = server_init,
		.parent_run = client_run, .child_run = server_run, .teardown = rpc_teardown,
	};
	struct bench_stat st;

	if (bench_check(name, bench_pair(&p, &st)))
		bench_report_kind(name, &st, 'n', CALL_MSG, ref);
}

static void rpc_suite(void)
{
	if (bench_want("rpc_call_spin") || bench_want("rpc_call_adaptive"))
		call_row("rpc_call_spin", SHMKIT_WAIT_SPIN, 10000, "chan_rtt_spsc_spin");
	if (bench_want("rpc_call_adaptive"))
		call_row("rpc_call_adaptive", SHMKIT_WAIT_ADAPTIVE, 2000, "rpc_call_spin");
	if (bench_want("rpc_call_block"))
		call_row("rpc_call_block", SHMKIT_WAIT_BLOCK, 200, "futex_rtt");
}

BENCH_SUITE("rpc", rpc_suite)
