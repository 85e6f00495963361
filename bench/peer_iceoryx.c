/*
 * peer_iceoryx.c - Eclipse iceoryx (its C binding) as a peer
 * (bench/peer.h, rows in bench/peer_suite.c): a publisher and a
 * subscriber each way, messages loaned from iceoryx's shared memory
 * pools, written in place, published, taken and read in place (iceoryx's
 * zero-copy way; shmkit's side copies in and out, so this favours the
 * peer), every byte written and read.
 *   iceoryx_rtt_spin_64    iox_sub_take_chunk() polled in a loop
 *                                              / shmkit_rtt_spin_64
 *   iceoryx_rtt_block_64   a wait set on "has data" (iox_ws_timed_wait)
 *                                              / shmkit_rtt_block_64
 *   stream (plot data)     a blocking producer (queue of peer_capacity()
 *                          chunks, the publisher waits for the consumer),
 *                          the consumer in a wait set
 * The bench starts iceoryx's daemon RouDi (iox-roudi, default config)
 * before the first row and stops it (SIGTERM: it removes its shared memory
 * and sockets) after the last; RouDi dies with the bench.  If another
 * RouDi runs on the machine ours cannot start and the rows are skipped.
 * iceoryx's runtime is made once per process and does not survive a fork,
 * so each round's parent side runs in a fresh process
 * (bench_pair.fresh_parent).  Ports are named per round
 * ("shmkit-bench"/"PID-N"/"ping"...), so a round never meets the ports of
 * an earlier one that RouDi has not yet cleaned up.
 * Built when the C binding is installed (Debian libiceoryx-binding-c-dev;
 * the Makefile defines SK_HAVE_ICEORYX); without it, or without iox-roudi
 * (Debian iceoryx), the rows say "skipped: not installed".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "peer.h"

#ifdef SK_HAVE_ICEORYX
#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>

#define ROUDI_SOCKET "/tmp/roudi"
#define CONNECT_LIMIT_NS (10 * 1000000000LL)

struct iox_pp {
	enum peer_mode mode;
	size_t msg;
	char instance[64];
	uint64_t seq;
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_ws_storage_t ws_st;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
};

static struct iox_pp ix;
static pid_t roudi;
static unsigned rounds;

/* ---- RouDi ------------------------------------------------------------- */

static void stop_roudi(void)
{
	if (roudi <= 0)
		return;
	/* SIGTERM: RouDi removes its shared memory and sockets, then exits;
	 * SIGKILL only if it has not after 5 s. */
	kill(roudi, SIGTERM);
	pid_t r = 0;
	for (int i = 0; i < 500 && (r = waitpid(roudi, NULL, WNOHANG)) == 0; i++)
		usleep(10000);
	if (r == 0) {
		kill(roudi, SIGKILL);
		waitpid(roudi, NULL, 0);
	}
	roudi = 0;
}

static int start_roudi(void)
{
	struct stat st;
	if (!stat(ROUDI_SOCKET, &st))
		return -EBUSY; /* another RouDi (or one that died): not ours to use */
	fflush(NULL);
	roudi = fork();
	if (roudi < 0)
		return -errno;
	if (roudi == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int null = open(getenv("SKB_ROUDI_LOG") ? getenv("SKB_ROUDI_LOG") : "/dev/null", O_RDWR | O_CREAT | O_APPEND, 0600);
		dup2(null, 1);
		dup2(null, 2);
		execlp("iox-roudi", "iox-roudi", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (!stat(ROUDI_SOCKET, &st))
			return 0;
		if (waitpid(roudi, NULL, WNOHANG) == roudi) {
			roudi = 0;
			return -ENOENT;
		}
		usleep(10000);
	}
	stop_roudi();
	return -ETIMEDOUT;
}

/* ---- ports ------------------------------------------------------------- */

/* In the process that will use them: the runtime, a publisher on event
 * `out` and a subscriber on `in` (either may be NULL), a wait set unless
 * spinning; then wait until each port sees its counterpart. */
static int iox_open(const char *who, const char *out, const char *in)
{
	char name[96];
	snprintf(name, sizeof(name), "shmkit-bench-%d-%s", (int)getpid(), who);
	/* Debian's build logs at Verbose: each runtime printed four lines
	 * (segments registered, RouDi's clean-up) on stderr in the middle of
	 * the report.  Warnings and errors still show. */
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
	if (out) {
		iox_pub_options_t o;
		iox_pub_options_init(&o);
		o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
		ix.pub = iox_pub_init(&ix.pub_st, "shmkit-bench", ix.instance, out, &o);
	}
	if (in) {
		iox_sub_options_t o;
		iox_sub_options_init(&o);
		/* peer_capacity(): 64, fewer for large messages.  RouDi's
		 * default pool for 256 KiB has 50 chunks of 512 KiB: a queue of
		 * 64 ran it dry, and every loan that failed logged an error. */
		o.queueCapacity = peer_capacity(ix.msg);
		o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
		ix.sub = iox_sub_init(&ix.sub_st, "shmkit-bench", ix.instance, in, &o);
		if (ix.mode != PEER_RTT_SPIN) {
			ix.ws = iox_ws_init(&ix.ws_st);
			if (iox_ws_attach_subscriber_state(ix.ws, ix.sub, SubscriberState_HAS_DATA,
			                                   0, NULL) != WaitSetResult_SUCCESS)
				return -EIO;
		}
	}
	int64_t limit = sk_now_ns() + CONNECT_LIMIT_NS;
	while ((ix.pub && !iox_pub_has_subscribers(ix.pub)) ||
	       (ix.sub && iox_sub_get_subscription_state(ix.sub) != SubscribeState_SUBSCRIBED)) {
		if (bench_aborted() || sk_now_ns() > limit)
			return -ETIMEDOUT;
		usleep(1000);
	}
	return 0;
}

static void iox_close(void *arg)
{
	if (ix.ws)
		iox_ws_deinit(ix.ws);
	if (ix.sub)
		iox_sub_deinit(ix.sub);
	if (ix.pub)
		iox_pub_deinit(ix.pub);
	ix.ws = NULL;
	ix.sub = NULL;
	ix.pub = NULL;
}

/* The end of a process that used iceoryx: exit(3), not the bench's
 * _exit(2), so iceoryx's destructors deregister the process from RouDi
 * (RouDi, stopping, fails on a registered process that is gone) and
 * remove its socket in /tmp. */
static _Noreturn void iox_exit(int r)
{
	iox_close(NULL);
	fflush(NULL);
	exit(r ? 1 : 0);
}

static int ix_setup(void *arg)
{
	snprintf(ix.instance, sizeof(ix.instance), "%d-%u", (int)getpid(), rounds++);
	ix.seq = 0;
	return 0;
}

static int ix_parent_init(void *arg)
{
	return ix.mode == PEER_STREAM ? iox_open("p", NULL, "data") : iox_open("p", "ping", "pong");
}

static int ix_child_init(void *arg)
{
	return ix.mode == PEER_STREAM ? iox_open("c", "data", NULL) : iox_open("c", "pong", "ping");
}

/* ---- messages ---------------------------------------------------------- */

static int ix_send(uint64_t seq)
{
	void *chunk;
	unsigned spins = 0;
	/* The pools may be empty for a moment while the peer still holds
	 * chunks: poll (bounded by the pair's time limit). */
	while (iox_pub_loan_chunk(ix.pub, &chunk, (uint32_t)ix.msg) != AllocationResult_SUCCESS) {
		int r = bench_poll(&spins);
		if (r)
			return r;
	}
	peer_fill(chunk, ix.msg, seq);
	iox_pub_publish_chunk(ix.pub, chunk);
	return 0;
}

static int ix_recv(uint64_t seq)
{
	const void *chunk;
	unsigned spins = 0;
	while (iox_sub_take_chunk(ix.sub, &chunk) != ChunkReceiveResult_SUCCESS) {
		if (ix.ws) {
			iox_notification_info_t info[1];
			uint64_t missed;
			iox_ws_timed_wait(ix.ws, (struct timespec){ 1, 0 }, info, 1, &missed);
			if (bench_aborted())
				return -ECANCELED;
		} else {
			int r = bench_poll(&spins);
			if (r)
				return r;
		}
	}
	int r = peer_check(chunk, ix.msg, seq);
	iox_sub_release_chunk(ix.sub, chunk);
	return r;
}

static int ix_ping(void *arg, long n)
{
	for (long i = 0; i < n; i++, ix.seq++) {
		int r = ix_send(ix.seq);
		if (r || (r = ix_recv(PEER_REPLY(ix.seq))))
			return r;
	}
	return 0;
}

static int ix_pong(void *arg, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, ix.seq++)
		if (!(r = ix_recv(ix.seq)))
			r = ix_send(PEER_REPLY(ix.seq));
	iox_exit(r);
}

static int ix_consume(void *arg, long n)
{
	for (long i = 0; i < n; i++, ix.seq++) {
		int r = ix_recv(ix.seq);
		if (r)
			return r;
	}
	return 0;
}

static int ix_produce(void *arg, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, ix.seq++)
		r = ix_send(ix.seq);
	/* Let the consumer take the last ones before the publisher goes. */
	for (int i = 0; i < 1000 && !r && !bench_aborted() && iox_pub_has_subscribers(ix.pub); i++)
		usleep(1000);
	iox_exit(r);
}

/* The parent's side, in its fresh process after its last batch (which
 * ends with exit(3), see bench_pair.fresh_parent). */
static void iox_fini(void *arg)
{
	iox_close(NULL);
}

static int ix_make(struct bench_pair *p, enum peer_mode mode, size_t msg)
{
	ix.mode = mode;
	ix.msg = msg;
	ix.pub = NULL;
	ix.sub = NULL;
	ix.ws = NULL;
	*p = (struct bench_pair){
		.arg = &ix, .setup = ix_setup, .fresh_parent = true,
		.child_init = ix_child_init, .parent_init = ix_parent_init,
		.parent_run = mode == PEER_STREAM ? ix_consume : ix_ping,
		.child_run = mode == PEER_STREAM ? ix_produce : ix_pong,
		.parent_fini = iox_fini,
	};
	return 0;
}

const struct peer peer_iceoryx = {
	.name = "iceoryx", .start = start_roudi, .stop = stop_roudi, .make = ix_make,
};
#else
const struct peer peer_iceoryx = {
	.name = "iceoryx",
	.missing = "not installed (Debian iceoryx and libiceoryx-binding-c-dev)",
};
#endif
