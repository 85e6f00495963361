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
 *   rpc_calls_Cc_Ss      calls per second, C client processes against S
 *                        server processes (C = 1, 2, 4, 8; S = 1, 2), the
 *                        default (adaptive) wait   / rpc_calls_1c_1s
 *                        On this 2-core machine every row past 1c_1s is
 *                        oversubscribed: the figures say how the service
 *                        shares the cores, not how it scales.
 * The server answers with a copy (shmkit_rpc_respond); the client uses
 * shmkit_rpc_call (send, wait, copy, release).  Each answer is checked
 * against its request.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CALL_MSG 64

struct rpc_pp {
	char name[80];
	int wait;
	shmkit_rpc *r;
	uint64_t seq;
};

static int rpc_setup(void *arg)
{
	struct rpc_pp *c = arg;
	struct shmkit_rpc_opts o = { .max_clients = 16, .depth = 4, .max_request = CALL_MSG,
	                             .max_response = CALL_MSG, .flags = SHMKIT_EXCL, .wait = c->wait };
	int r;

	c->seq = 0;
	bench_unique_name(c->name, sizeof(c->name), "rpc");
	if ((r = shmkit_rpc_create(&c->r, c->name, &o)))
		return r;
	if ((r = bench_cleanup_push(bench_unlink_shm, c->name))) {
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

/* ---- throughput: C clients, S servers ------------------------------------------ */

#define MAX_PROCS 10

struct tput {
	shmkit_ec go, finished;  /* bumped by the parent / by each client */
	uint32_t done;           /* clients done with this round */
	uint32_t stop;
	long per_client;
	int32_t failed;          /* a client's first error (0: none) */
};

struct tput_arg {
	struct rpc_pp pp;
	struct tput *t;
	int clients, servers;
	pid_t kids[MAX_PROCS];
	int nkids;
};

static void tput_server(struct tput_arg *a)
{
	shmkit_rpc *r;
	if (shmkit_rpc_open(&r, a->pp.name, NULL))
		_exit(1);
	/* Relaxed: a flag polled each 100 ms; nothing is published with it. */
	while (!sk_load_relaxed(&a->t->stop)) {
		struct shmkit_rpc_req q;
		int e = shmkit_rpc_recv(r, &q, 100000000LL);
		if (!e && shmkit_rpc_respond(r, &q, q.data, q.len))
			_exit(2);
	}
	shmkit_rpc_close(r);
	_exit(0);
}

static void tput_client(struct tput_arg *a)
{
	shmkit_rpc *r;
	unsigned char req[CALL_MSG], resp[CALL_MSG];
	uint64_t seq = 0;

	int err = shmkit_rpc_open(&r, a->pp.name, NULL);
	if (err)
		sk_store_relaxed(&a->t->failed, err); /* read after the round */
	memset(req, 0x33, sizeof(req));
	for (uint32_t seen = 0;;) {
		uint32_t v = shmkit_ec_value(&a->t->go); /* acquire: per_client, stop */
		if (sk_load_relaxed(&a->t->stop))
			break;
		if (v == seen) { /* each round once: the parent waits for all */
			shmkit_ec_wait(&a->t->go, v, 100000000LL);
			continue;
		}
		seen = v;
		for (long i = 0; !err && i < a->t->per_client; i++, seq++) {
			memcpy(req, &seq, sizeof(seq));
			ssize_t k = shmkit_rpc_call(r, req, sizeof(req), resp, sizeof(resp), 10000000000LL);
			if (k != CALL_MSG || memcmp(req, resp, sizeof(req)))
				err = k < 0 ? (int)k : -EBADMSG;
		}
		if (err) /* relaxed: read after the round (ordered by done) */
			sk_store_relaxed(&a->t->failed, err);
		/* Release (with ec_inc's): our round's calls before the count. */
		sk_fetch_add(&a->t->done, 1, __ATOMIC_RELEASE);
		shmkit_ec_inc(&a->t->finished);
	}
	shmkit_rpc_close(r);
	_exit(0);
}

static void tput_teardown(void *arg)
{
	struct tput_arg *a = arg;
	sk_store_relaxed(&a->t->stop, 1);
	shmkit_ec_inc(&a->t->go);
	for (int i = 0; i < a->nkids; i++)
		waitpid(a->kids[i], NULL, 0);
	a->nkids = 0;
	rpc_teardown(&a->pp);
}

static int tput_setup(struct tput_arg *a)
{
	int r = rpc_setup(&a->pp);
	if (r)
		return r;
	memset(a->t, 0, sizeof(*a->t));
	shmkit_ec_init(&a->t->go);
	shmkit_ec_init(&a->t->finished);
	for (int i = 0; i < a->servers + a->clients; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			if (i < a->servers)
				tput_server(a);
			tput_client(a);
		}
		if (pid < 0) {
			tput_teardown(a);
			return -errno;
		}
		a->kids[a->nkids++] = pid;
	}
	return 0;
}

/* One batch: n calls shared by the clients. */
static int tput_run(void *arg, long n)
{
	struct tput_arg *a = arg;
	a->t->per_client = n / a->clients ? n / a->clients : 1;
	sk_store_relaxed(&a->t->done, 0);
	shmkit_ec_inc(&a->t->go); /* release: per_client and done before */
	int64_t give_up = sk_now_ns() + 120 * 1000000000LL;
	for (;;) {
		uint32_t v = shmkit_ec_value(&a->t->finished);
		if (sk_load_acquire(&a->t->done) == (uint32_t)a->clients)
			break;
		if (bench_aborted() || sk_now_ns() > give_up)
			return -ECANCELED;
		shmkit_ec_wait(&a->t->finished, v, 1000000000LL);
	}
	return sk_load_relaxed(&a->t->failed);
}

static void tput_row(int clients, int servers)
{
	char name[40];
	struct tput_arg a = { .pp = { .wait = SHMKIT_WAIT_ADAPTIVE }, .clients = clients,
	                      .servers = servers };
	struct bench_stat st;

	snprintf(name, sizeof(name), "rpc_calls_%dc_%ds", clients, servers);
	if (!bench_want(name))
		return;
	if (!(a.t = bench_shared_alloc(sizeof(*a.t)))) {
		bench_check(name, -ENOMEM);
		return;
	}
	int err = tput_setup(&a);
	if (!err) {
		/* The per-call time over the batch; reported as calls/s. */
		err = bench_solo(tput_run, &a, 4000, 20, &st);
		tput_teardown(&a);
	}
	bench_shared_free(a.t, sizeof(*a.t));
	if (bench_check(name, err))
		bench_report_kind(name, &st, 'r', CALL_MSG,
		                  clients == 1 && servers == 1 ? NULL : "rpc_calls_1c_1s");
}

static void rpc_suite(void)
{
	if (bench_want("rpc_call_spin") || bench_want("rpc_call_adaptive"))
		call_row("rpc_call_spin", SHMKIT_WAIT_SPIN, 10000, "chan_rtt_spsc_spin");
	if (bench_want("rpc_call_adaptive"))
		call_row("rpc_call_adaptive", SHMKIT_WAIT_ADAPTIVE, 2000, "rpc_call_spin");
	if (bench_want("rpc_call_block"))
		call_row("rpc_call_block", SHMKIT_WAIT_BLOCK, 200, "futex_rtt");
	for (int servers = 1; servers <= 2; servers++)
		for (int clients = 1; clients <= 8; clients *= 2)
			tput_row(clients, servers);
}

BENCH_SUITE("rpc", rpc_suite)
