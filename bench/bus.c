/*
 * bus.c - benchmark rows for the publish/subscribe bus.
 *
 *   bus_rtt_Nsub        round trip: the parent publishes a 64-byte ping on
 *                       bus A (overwrite), the pinned child receives it and
 *                       publishes the answer on bus B; N - 1 extra
 *                       subscribers on A receive every ping too
 *   bus_tput_Nsub       64-byte messages per second through a
 *                       back-pressure bus: the child publishes, the parent
 *                       and N - 1 extra subscribers all receive every
 *                       message, so the rate is that of the slowest
 *   bus_pub_cost_Nsub   one process: the cost of one publish (overwrite)
 *                       with N idle subscribers registered (in the same
 *                       process, so not oversubscribed: idle), up to
 *                       1024: flat in N
 *   bus_rtt_spin        bus_rtt_1sub with both sides SHMKIT_WAIT_SPIN,
 *                       measured in chan.c's interleaved group against
 *                       chan_rtt_spsc_spin (refs.h: bench_bus_spin_pair)
 *   bus_wake_futex_rtt  round trip where the child sleeps in the futex
 *   bus_wake_fd_rtt     (SHMKIT_WAIT_BLOCK), or in epoll on its
 *                       shmkit_sub_fd(); the parent always blocks on the
 *                       futex
 *
 * Extra subscribers are unpinned processes: on a two-core machine every
 * row with more than one subscriber is oversubscribed (three or more
 * processes on two cores) and is named *_oversub to say so.  Every message
 * carries a sequence number its receivers check.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "refs.h"

#define BUS_MSG 64
#define BUS_MAX_EXTRA 7

enum child_wait { CW_ADAPTIVE, CW_BLOCK, CW_EPOLL, CW_SPIN };

struct bus_bench {
	char name_a[96], name_b[96];
	int delivery;            /* of bus A */
	int nextra;
	enum child_wait cw;
	bool tput;               /* stream A child -> parent, no bus B */
	pid_t extra[BUS_MAX_EXTRA];
	uint32_t *ready;         /* shared: extras subscribed */
	/* per process */
	shmkit_bus *a, *b;
	shmkit_sub *sa, *sb;
	int ep;
	uint64_t seq;
};

static void bus_unlink(void *arg)
{
	shmkit_seg_remove(arg);
}

/* An extra subscriber: receive and check until killed. */
static int extra_main(struct bus_bench *bb)
{
	struct shmkit_bus_opts o = { .wait = SHMKIT_WAIT_ADAPTIVE };
	unsigned char buf[BUS_MSG];
	uint64_t next = 0;

	if (shmkit_bus_subscribe(&bb->sa, bb->a, &o))
		return 1;
	sk_fetch_add(bb->ready, 1, __ATOMIC_RELEASE); /* pairs with the acquire poll in setup */
	for (;;) {
		uint64_t lost = 0, seq;
		ssize_t n = shmkit_sub_recv(bb->sa, buf, sizeof(buf), &lost, BENCH_WAIT_NS);
		if (n == -ETIMEDOUT)
			continue;
		if (n != BUS_MSG)
			return 2;
		memcpy(&seq, buf, sizeof(seq));
		if (bb->delivery == SHMKIT_BUS_BACKPRESSURE && seq != next)
			return 3;
		next = seq + 1;
	}
}

static int bus_setup(void *arg)
{
	struct bus_bench *bb = arg;
	struct shmkit_bus_opts o = { .capacity = 256, .max_msg = BUS_MSG, .flags = SHMKIT_EXCL };
	int err;

	bb->ep = -1;
	bench_unique_name(bb->name_a, sizeof(bb->name_a), "bus");
	bench_unique_name(bb->name_b, sizeof(bb->name_b), "bus");
	o.delivery = bb->delivery;
	if ((err = shmkit_bus_create(&bb->a, bb->name_a, &o)))
		return err;
	bench_cleanup_push(bus_unlink, bb->name_a);
	o.delivery = SHMKIT_BUS_OVERWRITE;
	if (!bb->tput && (err = shmkit_bus_create(&bb->b, bb->name_b, &o)))
		return err;
	if (!bb->tput)
		bench_cleanup_push(bus_unlink, bb->name_b);
	bb->ready = bench_shared_alloc(sizeof(*bb->ready));
	if (!bb->ready)
		return -ENOMEM;
	for (int i = 0; i < bb->nextra; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
			_exit(extra_main(bb));
		}
		bb->extra[i] = pid;
	}
	unsigned spins = 0;
	/* Acquire: pairs with each extra's release increment. */
	while (sk_load_acquire(bb->ready) != (uint32_t)bb->nextra)
		if ((err = bench_poll(&spins)))
			return err;
	return 0;
}

static void bus_teardown(void *arg)
{
	struct bus_bench *bb = arg;

	for (int i = 0; i < bb->nextra; i++)
		if (bb->extra[i] > 0) {
			kill(bb->extra[i], SIGKILL);
			waitpid(bb->extra[i], NULL, 0);
		}
	if (bb->ready)
		bench_shared_free(bb->ready, sizeof(*bb->ready));
	if (bb->ep >= 0)
		close(bb->ep);
	if (bb->sa)
		shmkit_bus_unsubscribe(bb->sa);
	if (bb->sb)
		shmkit_bus_unsubscribe(bb->sb);
	if (bb->a) {
		shmkit_bus_close(bb->a);
		shmkit_seg_remove(bb->name_a);
		bench_cleanup_pop(false);
	}
	if (bb->b) {
		shmkit_bus_close(bb->b);
		shmkit_seg_remove(bb->name_b);
		bench_cleanup_pop(false);
	}
}

static int bus_child_init(void *arg)
{
	struct bus_bench *bb = arg;
	struct shmkit_bus_opts o = {
		.wait = bb->cw == CW_BLOCK || bb->cw == CW_EPOLL ? SHMKIT_WAIT_BLOCK :
		        bb->cw == CW_SPIN ? SHMKIT_WAIT_SPIN : SHMKIT_WAIT_ADAPTIVE,
	};
	if (bb->tput)
		return 0; /* the child publishes on A */
	int err = shmkit_bus_subscribe(&bb->sa, bb->a, &o);
	if (err || bb->cw != CW_EPOLL)
		return err;
	int fd = shmkit_sub_fd(bb->sa);
	if (fd < 0)
		return fd;
	bb->ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	if (bb->ep < 0 || epoll_ctl(bb->ep, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	return 0;
}

static int bus_parent_init(void *arg)
{
	struct bus_bench *bb = arg;
	struct shmkit_bus_opts o = {
		.wait = bb->cw == CW_ADAPTIVE ? SHMKIT_WAIT_ADAPTIVE :
		        bb->cw == CW_SPIN ? SHMKIT_WAIT_SPIN : SHMKIT_WAIT_BLOCK,
	};
	return shmkit_bus_subscribe(bb->tput ? &bb->sa : &bb->sb, bb->tput ? bb->a : bb->b, &o);
}

/* Receive one message and check its sequence number. */
static int bus_take(shmkit_sub *sub, uint64_t want)
{
	unsigned char buf[BUS_MSG];
	uint64_t seq;

	for (;;) {
		ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), NULL, BENCH_WAIT_NS);
		if (n == -ETIMEDOUT) {
			if (bench_aborted())
				return -ECANCELED;
			continue;
		}
		if (n != BUS_MSG)
			return n < 0 ? (int)n : -EBADMSG;
		memcpy(&seq, buf, sizeof(seq));
		return seq == want ? 0 : -EBADMSG;
	}
}

/* The child's receive in epoll mode: try, else sleep on the fd. */
static int bus_take_epoll(struct bus_bench *bb, uint64_t want)
{
	unsigned char buf[BUS_MSG];
	uint64_t seq;

	for (;;) {
		ssize_t n = shmkit_sub_recv(bb->sa, buf, sizeof(buf), NULL, 0);
		if (n == BUS_MSG) {
			memcpy(&seq, buf, sizeof(seq));
			return seq == want ? 0 : -EBADMSG;
		}
		if (n != -EAGAIN)
			return n < 0 ? (int)n : -EBADMSG;
		struct epoll_event ev;
		if (epoll_wait(bb->ep, &ev, 1, 1000) < 0 && errno != EINTR)
			return -errno;
		if (bench_aborted())
			return -ECANCELED;
		shmkit_sub_ack_fd(bb->sa);
	}
}

static int bus_put(shmkit_bus *bus, uint64_t seq)
{
	unsigned char buf[BUS_MSG] = { 0 };

	memcpy(buf, &seq, sizeof(seq));
	for (;;) {
		int err = shmkit_bus_publish(bus, buf, sizeof(buf), BENCH_WAIT_NS);
		if (err != -ETIMEDOUT)
			return err;
		if (bench_aborted())
			return -ECANCELED;
	}
}

static int bus_parent_run(void *arg, long n)
{
	struct bus_bench *bb = arg;
	int err = 0;

	for (long i = 0; i < n && !err; i++, bb->seq++) {
		if (bb->tput) {
			err = bus_take(bb->sa, bb->seq);
			continue;
		}
		if (!(err = bus_put(bb->a, bb->seq)))
			err = bus_take(bb->sb, bb->seq);
	}
	return err;
}

static int bus_child_run(void *arg, long total)
{
	struct bus_bench *bb = arg;
	int err = 0;

	for (long i = 0; i < total && !err; i++, bb->seq++) {
		if (bb->tput) {
			err = bus_put(bb->a, bb->seq);
			continue;
		}
		err = bb->cw == CW_EPOLL ? bus_take_epoll(bb, bb->seq) : bus_take(bb->sa, bb->seq);
		if (!err)
			err = bus_put(bb->b, bb->seq);
	}
	return err;
}

/* refs.h: bus_rtt_spin, one subscriber, both sides spinning, as a pair
 * another suite measures interleaved with its own rows. */
int bench_bus_spin_pair(struct bench_pair *p)
{
	static struct bus_bench bb;

	bb = (struct bus_bench){ .delivery = SHMKIT_BUS_OVERWRITE, .cw = CW_SPIN };
	*p = (struct bench_pair){
		.iters = 10000, .arg = &bb,
		.setup = bus_setup, .teardown = bus_teardown,
		.child_init = bus_child_init, .parent_init = bus_parent_init,
		.parent_run = bus_parent_run, .child_run = bus_child_run,
	};
	return 0;
}

static void bus_row(const char *name, const char *ref, int nsub, bool tput, enum child_wait cw)
{
	struct bus_bench bb = {
		.delivery = tput ? SHMKIT_BUS_BACKPRESSURE : SHMKIT_BUS_OVERWRITE,
		.nextra = nsub - 1, .cw = cw, .tput = tput,
	};
	struct bench_pair p = {
		.iters = tput ? 20000 : 2000, .arg = &bb,
		.setup = bus_setup, .teardown = bus_teardown,
		.child_init = bus_child_init, .parent_init = bus_parent_init,
		.parent_run = bus_parent_run, .child_run = bus_child_run,
	};
	struct bench_stat st;

	if (!bench_want(name) || !bench_check(name, bench_pair(&p, &st)))
		return;
	if (tput)
		bench_report_rate(name, &st, ref);
	else
		bench_report_ns(name, &st, ref);
}

/* ---- publisher cost against idle subscribers ------------------------------ */

struct pub_cost {
	shmkit_bus *bus;
	uint64_t seq;
};

static int pub_cost_run(void *arg, long n)
{
	struct pub_cost *pc = arg;
	unsigned char buf[BUS_MSG] = { 0 };

	for (long i = 0; i < n; i++, pc->seq++) {
		memcpy(buf, &pc->seq, sizeof(pc->seq));
		int err = shmkit_bus_publish(pc->bus, buf, sizeof(buf), 0);
		if (err)
			return err;
	}
	return 0;
}

static void pub_cost_row(const char *name, const char *ref, int nsub)
{
	struct shmkit_bus_opts o = { .capacity = 1024, .max_msg = BUS_MSG, .flags = SHMKIT_EXCL,
	                             .max_subscribers = nsub > 64 ? (uint32_t)nsub : 0 };
	struct pub_cost pc = { 0 };
	static shmkit_sub *subs[1024];
	struct bench_stat st;
	char bname[96];
	int n = 0, err;

	if (!bench_want(name))
		return;
	bench_unique_name(bname, sizeof(bname), "bus");
	if (!bench_check(name, shmkit_bus_create(&pc.bus, bname, &o)))
		return;
	bench_cleanup_push(bus_unlink, bname);
	for (err = 0; n < nsub && !err; n++)
		err = shmkit_bus_subscribe(&subs[n], pc.bus, NULL);
	if (err)
		n--;
	if (bench_check(name, err) &&
	    bench_check(name, bench_solo(pub_cost_run, &pc, 100000, 0, &st)))
		bench_report_ns(name, &st, ref);
	while (n > 0)
		shmkit_bus_unsubscribe(subs[--n]);
	shmkit_bus_close(pc.bus);
	shmkit_seg_remove(bname);
	bench_cleanup_pop(false);
}

static void bus_suite(void)
{
	bus_row("bus_rtt_1sub", "cacheline_rtt", 1, false, CW_ADAPTIVE);
	bus_row("bus_rtt_2sub_oversub", "bus_rtt_1sub", 2, false, CW_ADAPTIVE);
	bus_row("bus_rtt_4sub_oversub", "bus_rtt_1sub", 4, false, CW_ADAPTIVE);
	bus_row("bus_rtt_8sub_oversub", "bus_rtt_1sub", 8, false, CW_ADAPTIVE);
	bus_row("bus_tput_1sub", "spsc_ring_64", 1, true, CW_ADAPTIVE);
	bus_row("bus_tput_2sub_oversub", "bus_tput_1sub", 2, true, CW_ADAPTIVE);
	bus_row("bus_tput_4sub_oversub", "bus_tput_1sub", 4, true, CW_ADAPTIVE);
	bus_row("bus_tput_8sub_oversub", "bus_tput_1sub", 8, true, CW_ADAPTIVE);
	pub_cost_row("bus_pub_cost_0sub", NULL, 0);
	pub_cost_row("bus_pub_cost_1sub", "bus_pub_cost_0sub", 1);
	pub_cost_row("bus_pub_cost_8sub", "bus_pub_cost_0sub", 8);
	pub_cost_row("bus_pub_cost_64sub", "bus_pub_cost_0sub", 64);
	pub_cost_row("bus_pub_cost_1024sub_idle", "bus_pub_cost_0sub", 1024);
	bus_row("bus_wake_futex_rtt", "futex_rtt", 1, false, CW_BLOCK);
	bus_row("bus_wake_fd_rtt", "bus_wake_futex_rtt", 1, false, CW_EPOLL);
}
BENCH_SUITE("bus", bus_suite)
