/*
 * test_rpc.c - request/response: every response reaches its caller and
 * only it, with many clients and servers in separate processes; async ids,
 * out-of-order answers, depth, deadlines and cancellation; servers killed
 * at every step of a request (crash points) and clients killed with calls
 * outstanding; idempotent retry; zero-copy both ways; the pollable fds;
 * forged tokens and slot words.  Every wait is bounded; nothing asserts on
 * timing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "lib_test.h"
#include "seg.h"
#include "shmkit.h"

#define SEC 1000000000LL
#define MS 1000000LL

TestSuite(rpc, .timeout = 120, .fini = sk_test_cleanup);

static uint32_t max_servers; /* 0: the default */

static shmkit_rpc *make(const char *name, uint32_t clients, uint32_t depth)
{
	struct shmkit_rpc_opts o = { .max_clients = clients, .depth = depth, .max_request = 256,
	                             .max_response = 300, .flags = SHMKIT_EXCL,
	                             .max_servers = max_servers };
	shmkit_rpc *r;
	cr_assert_eq(shmkit_rpc_create(&r, name, &o), 0, "%s", shmkit_errdetail());
	return r;
}

/* The answer to a request: "re:" + the request, so that a response that
 * reached the wrong caller (or a stale one) cannot pass. */
static size_t answer(const struct shmkit_rpc_req *q, char *out)
{
	memcpy(out, "re:", 3);
	memcpy(out + 3, q->data, q->len);
	return q->len + 3u;
}

/* A server: answers until no request comes for idle_ms, or n answered
 * (n 0: unbounded).  Run in a child; exit code 0, or what failed. */
struct server_arg {
	const char *name;
	int idle_ms;
	int n;
	const char *crash;     /* crash point to arm in the child, or NULL */
};

static int serve(void *p)
{
	const struct server_arg *a = p;
	shmkit_rpc *r;
	char out[300];

	sk_crash_arm(a->crash);
	if (shmkit_rpc_open(&r, a->name, NULL))
		return 10;
	for (int done = 0; !a->n || done < a->n; done++) {
		struct shmkit_rpc_req q;
		int err = shmkit_rpc_recv(r, &q, a->idle_ms * MS);
		if (err == -ETIMEDOUT)
			break;
		if (err)
			return 11;
		err = shmkit_rpc_respond(r, &q, out, answer(&q, out));
		if (err && err != -ECANCELED)
			return 12;
	}
	shmkit_rpc_close(r);
	return 0;
}

static void check_answer(const char *req, const char *resp, ssize_t n)
{
	cr_assert_eq(n, (ssize_t)strlen(req) + 3, "response of %zd bytes to '%s' (%s)", n, req,
	             n < 0 ? shmkit_errdetail() : "");
	cr_assert(!memcmp(resp, "re:", 3) && !memcmp(resp + 3, req, strlen(req)),
	          "response '%.*s' to '%s'", (int)n, resp, req);
}

Test(rpc, call_and_answer_in_process)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *r = make(name, 4, 4);
	struct server_arg sa = { name, 2000, 3, NULL };
	pid_t srv = sk_test_fork(serve, &sa);
	char resp[300];

	cr_assert_gt(srv, 0);
	check_answer("hello", resp, shmkit_rpc_call(r, "hello", 5, resp, sizeof(resp), 10 * SEC));
	check_answer("", resp, shmkit_rpc_call(r, "", 0, resp, sizeof(resp), 10 * SEC));
	char big[256];
	memset(big, 'b', sizeof(big));
	cr_expect_eq(shmkit_rpc_call(r, big, 257, resp, sizeof(resp), SEC), -EMSGSIZE);
	ssize_t n = shmkit_rpc_call(r, big, 256, resp, 10, 10 * SEC);
	cr_expect_eq(n, -EMSGSIZE, "a response larger than the buffer: %zd", n);
	cr_expect_eq(sk_test_reap(srv), 0);
	struct shmkit_rpc_stats st;
	cr_assert_eq(shmkit_rpc_stats(r, &st), 0);
	cr_expect_eq(st.requests, 3);
	cr_expect_eq(st.responses, 3);
	cr_expect_eq(st.in_flight, 0);
	cr_expect_eq(shmkit_rpc_close(r), 0);
}

/* Four client processes, two servers: every response is its caller's. */
static const char *many_name;

static int client(void *p)
{
	long id = (long)p;
	shmkit_rpc *r;
	char req[64], resp[300];

	if (shmkit_rpc_open(&r, many_name, NULL))
		return 20;
	for (int i = 0; i < 500; i++) {
		int len = snprintf(req, sizeof(req), "client %ld pid %d call %d", id, getpid(), i);
		ssize_t n = shmkit_rpc_call(r, req, (size_t)len, resp, sizeof(resp), 20 * SEC);
		if (n != len + 3 || memcmp(resp + 3, req, (size_t)len))
			return 21;
	}
	shmkit_rpc_close(r);
	return 0;
}

static int count_peer(const struct shmkit_rpc_peer *p, void *arg)
{
	struct count { unsigned servers, clients; uint64_t taken; } *c = arg;
	if (p->server) {
		c->servers++;
		c->taken += p->calls;
	} else {
		c->clients++;
	}
	return 0;
}

Test(rpc, many_clients_many_servers_each_answer_to_its_caller)
{
	many_name = sk_test_new_name("posix");
	shmkit_rpc *r = make(many_name, 8, 4);
	struct server_arg sa = { many_name, 1500, 0, NULL };
	pid_t s1 = sk_test_fork(serve, &sa), s2 = sk_test_fork(serve, &sa), c[4];

	for (long i = 0; i < 4; i++)
		c[i] = sk_test_fork(client, (void *)i);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(sk_test_reap(c[i]), 0, "client %d", i);
	cr_expect_eq(sk_test_reap(s1), 0);
	cr_expect_eq(sk_test_reap(s2), 0);
	struct shmkit_rpc_stats st;
	cr_assert_eq(shmkit_rpc_stats(r, &st), 0);
	cr_expect_eq(st.requests, 2000);
	cr_expect_eq(st.responses, 2000);
	cr_expect_eq(st.reset, 0);
	cr_expect_eq(st.clients, 0, "every client closed");
	cr_expect_eq(st.servers, 0, "every server closed");
	struct count { unsigned servers, clients; uint64_t taken; } cnt = { 0 };
	cr_assert_eq(shmkit_rpc_peers(r, count_peer, &cnt), 0);
	cr_expect_eq(cnt.servers, 2);
	cr_expect_eq(cnt.clients, 0, "client entries are cleared when their handle closes");
	cr_expect_eq(cnt.taken, 2000, "the two servers took every call between them");
	shmkit_rpc_close(r);
}

/* Async: depth calls out at once, answered in reverse order by a server
 * that holds them all; waits by id and for any. */
Test(rpc, async_ids_out_of_order_and_depth)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 4), *s;
	uint64_t id[5];
	char req[4][8];

	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	for (int i = 0; i < 4; i++) {
		snprintf(req[i], sizeof(req[i]), "q%d", i);
		cr_assert_eq(shmkit_rpc_send(c, req[i], 2, 0, 10 * SEC, &id[i]), 0);
	}
	cr_expect_eq(shmkit_rpc_send(c, "x", 1, 0, SEC, &id[4]), -EBUSY, "depth 4");
	struct shmkit_rpc_req q[4];
	char out[300];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(shmkit_rpc_recv(s, &q[i], SEC), 0);
	cr_expect_eq(shmkit_rpc_recv(s, &q[0], 0), -EAGAIN);
	for (int i = 3; i >= 0; i--)
		cr_assert_eq(shmkit_rpc_respond(s, &q[i], out, answer(&q[i], out)), 0);
	const void *p;
	uint64_t want = id[2];
	ssize_t n = shmkit_rpc_wait(c, &want, &p, SEC);
	check_answer(req[2], p, n);
	cr_expect_eq(shmkit_rpc_release(c, want), 0);
	cr_expect_eq(shmkit_rpc_release(c, want), -EINVAL, "released twice");
	for (int left = 3; left > 0; left--) {
		uint64_t any = 0;
		n = shmkit_rpc_wait(c, &any, &p, SEC);
		int i = any == id[0] ? 0 : any == id[1] ? 1 : any == id[3] ? 3 : -1;
		cr_assert_geq(i, 0, "wait for any gave id %llu", (unsigned long long)any);
		check_answer(req[i], p, n);
		cr_expect_eq(shmkit_rpc_release(c, any), 0);
	}
	uint64_t none = 0;
	cr_expect_eq(shmkit_rpc_wait(c, &none, &p, 0), -EINVAL, "nothing outstanding");
	shmkit_rpc_close(s);
	shmkit_rpc_close(c);
}

/* A caller whose calls wait with no server queues another token for a
 * call only once the last one left the queue (a server took it, then
 * died before claiming the call): its tokens still queued are not
 * duplicated, so another client with free slots finds room in the queue
 * however long the first one waits.  (Before: a token every 50 ms per
 * call, until the queue was full of duplicates and every other client's
 * send said "request queue full" - the kill loop's rpc check after the
 * loop met it.) */
Test(rpc, waiting_callers_do_not_fill_the_queue_with_duplicates)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *a = make(name, 2, 2), *b, *s;
	struct shmkit_rpc_stats st;
	uint64_t ida[2], idb[2], any = 0;
	const void *p;

	cr_assert_eq(shmkit_rpc_open(&b, name, NULL), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(shmkit_rpc_send(a, "a", 1, 0, -1, &ida[i]), 0);
	/* 8 slices of 50 ms: a token per call per slice before. */
	cr_assert_eq(shmkit_rpc_wait(a, &any, &p, 400 * MS), -ETIMEDOUT);
	cr_assert_eq(shmkit_rpc_stats(a, &st), 0);
	cr_expect_eq(st.requeued, 0, "tokens still queued were queued again: %llu",
	             (unsigned long long)st.requeued);
	for (int i = 0; i < 2; i++)
		cr_expect_eq(shmkit_rpc_send(b, "b", 1, 0, 0, &idb[i]), 0, "b's call %d: %s", i,
		             shmkit_errdetail());
	/* A server answers all four calls, and nothing else is queued. */
	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	char out[300];
	for (int i = 0; i < 4; i++) {
		struct shmkit_rpc_req q;
		cr_assert_eq(shmkit_rpc_recv(s, &q, 5 * SEC), 0, "request %d: %s", i, shmkit_errdetail());
		cr_assert_eq(shmkit_rpc_respond(s, &q, out, answer(&q, out)), 0);
	}
	struct shmkit_rpc_req extra;
	cr_expect_eq(shmkit_rpc_recv(s, &extra, 0), -EAGAIN);
	for (int i = 0; i < 2; i++) {
		ssize_t n = shmkit_rpc_wait(a, &ida[i], &p, 5 * SEC);
		check_answer("a", p, n);
		shmkit_rpc_release(a, ida[i]);
		n = shmkit_rpc_wait(b, &idb[i], &p, 5 * SEC);
		check_answer("b", p, n);
		shmkit_rpc_release(b, idb[i]);
	}
	cr_assert_eq(shmkit_rpc_stats(a, &st), 0);
	cr_expect_eq(st.dropped, 0, "stale tokens dropped: %llu", (unsigned long long)st.dropped);
	shmkit_rpc_close(s);
	shmkit_rpc_close(b);
	shmkit_rpc_close(a);
}

/* Deadlines and cancellation: a call nobody takes times out; a taken call
 * the caller gives up is -ECANCELED for its server, which sees it
 * abandoned; the slot's next call gets its own answer, not the old one. */
Test(rpc, deadline_cancel_and_no_stale_answer)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 1), *s;
	char resp[300], out[300];
	struct shmkit_rpc_req q;
	uint64_t id;

	cr_expect_eq(shmkit_rpc_call(c, "late", 4, resp, sizeof(resp), 50 * MS), -ETIMEDOUT);
	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	cr_expect_eq(shmkit_rpc_recv(s, &q, 0), -EAGAIN, "the timed-out call's token is dropped");
	cr_assert_eq(shmkit_rpc_send(c, "old", 3, 0, 10 * SEC, &id), 0);
	cr_assert_eq(shmkit_rpc_recv(s, &q, SEC), 0);
	cr_expect_eq(shmkit_rpc_abandoned(s, &q), 0);
	cr_assert_eq(shmkit_rpc_cancel(c, id), 0);
	cr_expect_eq(shmkit_rpc_abandoned(s, &q), 1);
	cr_expect_eq(shmkit_rpc_send(c, "new", 3, 0, SEC, &id), -EBUSY,
	             "the slot waits for the server that holds the old call");
	cr_expect_eq(shmkit_rpc_respond(s, &q, out, answer(&q, out)), -ECANCELED);
	cr_assert_eq(shmkit_rpc_send(c, "new", 3, 0, 10 * SEC, &id), 0, "%s", shmkit_errdetail());
	cr_assert_eq(shmkit_rpc_recv(s, &q, SEC), 0);
	cr_assert_eq(shmkit_rpc_respond(s, &q, out, answer(&q, out)), 0);
	const void *p;
	ssize_t n = shmkit_rpc_wait(c, &id, &p, SEC);
	check_answer("new", p, n);
	shmkit_rpc_release(c, id);
	struct shmkit_rpc_stats st;
	cr_assert_eq(shmkit_rpc_stats(c, &st), 0);
	cr_expect_eq(st.timeouts, 2);
	cr_expect_eq(st.cancelled, 1);
	cr_expect_geq(st.dropped, 1);
	shmkit_rpc_close(s);
	shmkit_rpc_close(c);
}

/* A server killed at each step of a request: the caller's call fails with
 * -ECONNRESET (taken, or answered-not-woken: then it is answered), or is
 * queued again and answered by another server (the token lost with a
 * server killed between taking it from the queue and claiming the call;
 * any call marked idempotent). */
struct kill_case {
	const char *point;
	unsigned flags;
	ssize_t want;          /* what the call returns: 0 = the answer */
};

static void server_killed_at(const struct kill_case *kc)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 2);
	struct server_arg victim = { name, 5000, 1, kc->point }, other = { name, 3000, 0, NULL };
	pid_t v = sk_test_fork(serve, &victim);
	uint64_t id;
	const void *p;

	cr_assert_gt(v, 0);
	cr_assert_eq(shmkit_rpc_send(c, "work", 4, kc->flags, 30 * SEC, &id), 0);
	int st;
	cr_assert_eq(waitpid(v, &st, 0), v);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: the server was not killed there "
	          "(status %#x)", kc->point, st);
	pid_t o = sk_test_fork(serve, &other);
	ssize_t n = shmkit_rpc_wait(c, &id, &p, 30 * SEC);
	if (kc->want == 0) {
		check_answer("work", p, n);
		shmkit_rpc_release(c, id);
	} else {
		cr_expect_eq(n, kc->want, "%s: %zd (%s)", kc->point, n, shmkit_errdetail());
	}
	cr_expect_eq(sk_test_reap(o), 0);
	/* The client goes on. */
	struct server_arg again = { name, 3000, 1, NULL };
	pid_t a = sk_test_fork(serve, &again);
	char resp[300];
	check_answer("after", resp, shmkit_rpc_call(c, "after", 5, resp, sizeof(resp), 30 * SEC));
	cr_expect_eq(sk_test_reap(a), 0);
	shmkit_rpc_close(c);
}

Test(rpc, server_killed_holding_a_call_resets_it)
{
	struct kill_case kc = { "rpc.taken", 0, -ECONNRESET };
	server_killed_at(&kc);
}

Test(rpc, server_killed_holding_an_idempotent_call_gives_it_to_another)
{
	struct kill_case kc = { "rpc.taken", SHMKIT_RPC_IDEMPOTENT, 0 };
	server_killed_at(&kc);
}

Test(rpc, server_killed_before_claiming_its_token_the_call_is_requeued)
{
	struct kill_case kc = { "chan.mpmc.taken", 0, 0 };
	server_killed_at(&kc);
}

/* One server entry: the server that replaces the dead one takes the same
 * entry (and its lock) before the caller looks; the call it never held is
 * still seen as its dead holder's, since the entry's generation moved on.
 * (Without the generation the caller would take the new server for the
 * holder and wait out its deadline.) */
static int one_server_alive(void *arg)
{
	struct shmkit_rpc_stats st;
	return !shmkit_rpc_stats(arg, &st) && st.servers == 1;
}

Test(rpc, server_entry_taken_again_still_resets_the_dead_holders_call)
{
	const char *name = sk_test_new_name("posix");
	max_servers = 1;
	shmkit_rpc *c = make(name, 2, 2);
	struct server_arg victim = { name, 5000, 1, "rpc.taken" }, other = { name, 30000, 1, NULL };
	pid_t v = sk_test_fork(serve, &victim);
	uint64_t id;
	const void *p;
	int st;

	cr_assert_eq(shmkit_rpc_send(c, "work", 4, 0, 10 * SEC, &id), 0);
	cr_assert_eq(waitpid(v, &st, 0), v);
	cr_assert(WIFSIGNALED(st), "the server was not killed at rpc.taken");
	pid_t o = sk_test_fork(serve, &other);
	cr_assert(sk_test_eventually(one_server_alive, c), "the second server never joined");
	/* The second server lives on (it answers one call, below), so only
	 * the generation can tell the caller its call's holder is gone. */
	ssize_t n = shmkit_rpc_wait(c, &id, &p, 3 * SEC);
	cr_expect_eq(n, -ECONNRESET, "%zd (%s)", n, shmkit_errdetail());
	char resp[300];
	check_answer("bye", resp, shmkit_rpc_call(c, "bye", 3, resp, sizeof(resp), 10 * SEC));
	cr_expect_eq(sk_test_reap(o), 0);
	shmkit_rpc_close(c);
}

Test(rpc, server_killed_after_answering_before_waking)
{
	struct kill_case kc = { "rpc.responded", 0, 0 };
	server_killed_at(&kc);
}

/* A client killed with calls outstanding (one queued, one taken): its
 * entry is reclaimed by the next client, which gets only its own answers;
 * the server answering the dead client's call is not disturbed. */
static const char *dead_name;

static int doomed_client(void *unused)
{
	shmkit_rpc *r;
	uint64_t id;

	if (shmkit_rpc_open(&r, dead_name, NULL) ||
	    shmkit_rpc_send(r, "dead-1", 6, 0, 60 * SEC, &id) ||
	    shmkit_rpc_send(r, "dead-2", 6, 0, 60 * SEC, &id))
		return 30;
	kill(getpid(), SIGKILL);
	return 31;
}

Test(rpc, client_killed_with_calls_outstanding_is_reclaimed)
{
	dead_name = sk_test_new_name("posix");
	shmkit_rpc *s = make(dead_name, 1, 2), *c;
	pid_t d = sk_test_fork(doomed_client, NULL);
	struct shmkit_rpc_req q;
	char out[300];
	int st;

	cr_assert_gt(d, 0);
	cr_assert_eq(waitpid(d, &st, 0), d);
	cr_assert(WIFSIGNALED(st));
	cr_assert_eq(shmkit_rpc_recv(s, &q, SEC), 0); /* dead-1, taken */
	cr_expect_eq(shmkit_rpc_abandoned(s, &q), 1, "its caller is dead");
	cr_assert_eq(shmkit_rpc_open(&c, dead_name, NULL), 0);
	uint64_t id;
	cr_assert_eq(shmkit_rpc_send(c, "mine", 4, 0, 10 * SEC, &id), 0, "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_rpc_respond(s, &q, out, answer(&q, out)), -ECANCELED,
	             "the dead client's call was given up by the entry's next owner");
	struct shmkit_rpc_req q2;
	cr_assert_eq(shmkit_rpc_recv(s, &q2, SEC), 0); /* dead-2 is stale: skipped */
	cr_expect_eq(q2.len, 4);
	cr_expect(!memcmp(q2.data, "mine", 4));
	cr_assert_eq(shmkit_rpc_respond(s, &q2, out, answer(&q2, out)), 0);
	const void *p;
	ssize_t n = shmkit_rpc_wait(c, &id, &p, SEC);
	check_answer("mine", p, n);
	shmkit_rpc_release(c, id);
	shmkit_rpc_close(c);
	shmkit_rpc_close(s);
}

/* Zero-copy both ways: the request written in a loan is read in place,
 * the response written in the server's loan is read in place. */
Test(rpc, zero_copy_both_ways)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 2), *s;
	void *buf;
	uint64_t id;
	struct shmkit_rpc_req q;

	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	cr_assert_eq(shmkit_rpc_loan(c, &buf), 0);
	cr_expect_eq(shmkit_rpc_loan(c, &buf), -EINVAL, "one loan at a time");
	memcpy(buf, "in place", 8);
	cr_expect_eq(shmkit_rpc_send_loan(c, 257, 0, SEC, &id), -EMSGSIZE);
	cr_assert_eq(shmkit_rpc_send_loan(c, 8, 0, 10 * SEC, &id), 0);
	cr_assert_eq(shmkit_rpc_recv(s, &q, SEC), 0);
	/* In place: the two handles map the same memory (at two addresses). */
	((char *)(uintptr_t)q.data)[0] = 'I';
	cr_expect_eq(((char *)buf)[0], 'I', "the server reads the client's buffer in place");
	void *rb;
	cr_assert_eq(shmkit_rpc_respond_loan(s, &q, &rb), 0);
	memcpy(rb, "answered", 8);
	cr_assert_eq(shmkit_rpc_respond_commit(s, &q, 8), 0);
	const void *p;
	cr_assert_eq(shmkit_rpc_wait(c, &id, &p, SEC), 8);
	cr_expect(!memcmp(p, "answered", 8));
	((char *)rb)[0] = 'A';
	cr_expect_eq(((const char *)p)[0], 'A', "the client reads the server's buffer in place");
	cr_assert_eq(shmkit_rpc_release(c, id), 0);
	cr_assert_eq(shmkit_rpc_loan(c, &buf), 0);
	cr_expect_eq(shmkit_rpc_abort_loan(c), 0);
	shmkit_rpc_close(s);
	shmkit_rpc_close(c);
}

/* The fds: the server's is readable when a request waits, the client's
 * when its response came. */
Test(rpc, pollable_fds_both_sides)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 2), *s;
	struct shmkit_rpc_req q;
	uint64_t id;
	char out[300];

	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	int sfd = shmkit_rpc_fd(s, SHMKIT_RPC_SERVER), cfd = shmkit_rpc_fd(c, SHMKIT_RPC_CLIENT);
	cr_assert_geq(sfd, 0, "%s", shmkit_errdetail());
	cr_assert_geq(cfd, 0, "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_rpc_fd(s, SHMKIT_RPC_CLIENT), -EINVAL, "one side per handle");
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };
	cr_expect_eq(poll(&pfd, 1, 0), 0, "nothing waits yet");
	cr_assert_eq(shmkit_rpc_send(c, "fd", 2, 0, 10 * SEC, &id), 0);
	cr_expect_eq(poll(&pfd, 1, 5000), 1, "the server's fd signals the request");
	cr_assert_eq(shmkit_rpc_ack_fd(s), 0);
	cr_assert_eq(shmkit_rpc_recv(s, &q, 0), 0);
	pfd.fd = cfd;
	cr_assert_eq(shmkit_rpc_ack_fd(c), 0);
	cr_expect_eq(poll(&pfd, 1, 0), 0, "no response yet");
	cr_assert_eq(shmkit_rpc_respond(s, &q, out, answer(&q, out)), 0);
	cr_expect_eq(poll(&pfd, 1, 5000), 1, "the client's fd signals the response");
	const void *p;
	ssize_t n = shmkit_rpc_wait(c, &id, &p, 0);
	check_answer("fd", p, n);
	shmkit_rpc_release(c, id);
	shmkit_rpc_close(s);
	shmkit_rpc_close(c);
}

/* Hostile memory: forged tokens in the queue (out of range, wrong
 * generation, garbage) are skipped and counted; a forged slot word in a
 * client's entry is reset, not trusted; a control block that does not
 * fit is -EBADMSG; a channel is not an rpc service. */
Test(rpc, forged_tokens_and_words_are_refused)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 2), *s;
	shmkit_seg *seg;
	shmkit_chan *q;
	char resp[300];

	cr_assert_eq(shmkit_rpc_open(&s, name, NULL), 0);
	struct shmkit_seg_opts raw = { .flags = SHMKIT_RAW };
	cr_assert_eq(shmkit_seg_open(&seg, name, &raw), 0);
	unsigned char *d = (unsigned char *)shmkit_seg_data(seg) + 4096; /* the rpc data area */
	/* The queue lies from 256 to servers_off (control block offset 200). */
	cr_assert_eq(sk_chan_embed(&q, seg, d + 256, (size_t)*(uint64_t *)(void *)(d + 200) - 256, 0), 0);
	uint64_t forged[] = { 0, UINT64_MAX, 0xfff, 1ull << 18 | 63ull << 12, 5ull << 18 | 1 };
	for (size_t i = 0; i < SK_ARRAY_LEN(forged); i++)
		cr_assert_eq(shmkit_chan_send(q, &forged[i], 8, 0), 0);
	cr_assert_eq(shmkit_chan_send(q, "short", 5, 0), 0);
	struct shmkit_rpc_req r;
	cr_expect_eq(shmkit_rpc_recv(s, &r, 0), -EAGAIN, "every forged token is skipped");
	struct shmkit_rpc_stats st;
	cr_assert_eq(shmkit_rpc_stats(s, &st), 0);
	cr_expect_eq(st.dropped, SK_ARRAY_LEN(forged) + 1);
	shmkit_chan_close(q);
	/* A forged word in client entry 0's first slot: 0xff state. */
	uint64_t clients_off = *(uint64_t *)(void *)(d + 48);
	uint64_t *word = (uint64_t *)(void *)(d + clients_off + 64);
	__atomic_store_n(word, 0xffffffffffffffffull, __ATOMIC_RELEASE);
	struct server_arg sa = { name, 2000, 1, NULL };
	pid_t srv = sk_test_fork(serve, &sa);
	check_answer("still", resp, shmkit_rpc_call(c, "still", 5, resp, sizeof(resp), 10 * SEC));
	cr_expect_eq(sk_test_reap(srv), 0);
	shmkit_rpc_close(c);
	shmkit_rpc_close(s);
	/* A control block whose depth does not fit the segment. */
	__atomic_store_n((uint32_t *)(void *)(d + 20), 64u, __ATOMIC_RELAXED);
	cr_expect_eq(shmkit_rpc_open(&c, name, NULL), -EBADMSG);
	cr_expect(strstr(shmkit_errdetail(), "does not fit"), "%s", shmkit_errdetail());
	__atomic_store_n((uint64_t *)(void *)d, 0ull, __ATOMIC_RELAXED);
	cr_expect_eq(shmkit_rpc_open(&c, name, NULL), -EPROTO);
	shmkit_seg_close(seg);
	shmkit_chan *ch;
	cr_expect_eq(shmkit_chan_open(&ch, name, NULL), -EPROTO, "an rpc service is not a channel");
}

Test(rpc, bad_options_and_arguments)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *r;
	struct shmkit_rpc_opts o = { .max_clients = 4097 };

	cr_expect_eq(shmkit_rpc_create(&r, name, &o), -EINVAL);
	o = (struct shmkit_rpc_opts){ .depth = 65 };
	cr_expect_eq(shmkit_rpc_create(&r, name, &o), -EINVAL);
	o = (struct shmkit_rpc_opts){ .max_request = (1u << 26) + 1 };
	cr_expect_eq(shmkit_rpc_create(&r, name, &o), -EINVAL);
	o = (struct shmkit_rpc_opts){ .wait = 9 };
	cr_expect_eq(shmkit_rpc_create(&r, name, &o), -EINVAL);
	cr_expect_eq(shmkit_rpc_open(&r, name, NULL), -ENOENT);
	cr_expect_eq(sk_test_exists(name), 0, "nothing left");
	r = make(name, 1, 1);
	uint64_t id;
	cr_expect_eq(shmkit_rpc_send(r, "x", 1, 0x80, SEC, &id), -EINVAL);
	cr_expect_eq(shmkit_rpc_release(r, 12345), -EINVAL);
	cr_expect_eq(shmkit_rpc_cancel(r, 0), -EINVAL);
	shmkit_rpc *other;
	cr_assert_eq(shmkit_rpc_open(&other, name, NULL), 0);
	cr_assert_eq(shmkit_rpc_send(r, "x", 1, 0, SEC, &id), 0);
	cr_expect_eq(shmkit_rpc_send(other, "y", 1, 0, SEC, &id), -ENOSPC, "one client entry");
	shmkit_rpc_close(other);
	shmkit_rpc_close(r);
}

/* A call given up while its server held it (ABANDONED), then the server
 * dies: the slot is free again for the next call at once (before, the
 * slot was freed but skipped, and the call got -EBUSY). */
Test(rpc, abandoned_slot_of_a_dead_server_is_reused_at_once)
{
	const char *name = sk_test_new_name("posix");
	shmkit_rpc *c = make(name, 2, 1);
	struct server_arg victim = { name, 5000, 1, "rpc.taken" };
	pid_t v = sk_test_fork(serve, &victim);
	uint64_t id;
	int st;

	cr_assert_eq(shmkit_rpc_send(c, "lost", 4, 0, 10 * SEC, &id), 0);
	cr_assert_eq(waitpid(v, &st, 0), v);
	cr_assert(WIFSIGNALED(st));
	cr_assert_eq(shmkit_rpc_cancel(c, id), 0); /* TAKEN -> ABANDONED, holder dead */
	int err = shmkit_rpc_send(c, "next", 4, 0, 10 * SEC, &id);
	cr_expect_eq(err, 0, "%d (%s)", err, shmkit_errdetail());
	if (!err)
		shmkit_rpc_cancel(c, id);
	shmkit_rpc_close(c);
}
