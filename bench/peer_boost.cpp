/*
 * peer_boost.cpp - Boost.Interprocess message_queue as a peer
 * (bench/peer.h, rows in bench/peer_suite.c): two queues in POSIX shared
 * memory (peer_capacity(): 64 messages, fewer when large), one
 * send/receive per message, the payload written and read in full on both
 * sides.
 *   boost_mq_rtt_spin_64    try_receive() polled in a loop
 *                                               / shmkit_rtt_spin_64
 *   boost_mq_rtt_block_64   timed_receive() (a process-shared mutex and
 *                           condition variable)  / shmkit_rtt_block_64
 *   stream (plot data)      send() and timed_receive()
 * message_queue copies each message in and out under its mutex, like
 * shmkit's send/recv.  The queues are /dev/shm/shmkit-bench-PID-boost-N,
 * removed in teardown and on SIGINT/SIGTERM/SIGHUP.
 * Compiled only when Boost's headers are installed (Debian libboost-dev;
 * the Makefile builds this file and defines SK_HAVE_BOOST); otherwise
 * peer_suite.c says the rows were skipped.
 */
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

extern "C" {
#include "bench.h"
#include "peer.h"
}

namespace bip = boost::interprocess;

namespace {

struct boost_pp {
	char names[2][80];
	int nq;                 /* 2: request and reply; 1: a stream */
	enum peer_mode mode;
	size_t msg;
	bip::message_queue *q[2];
	unsigned char *buf;
	uint64_t seq;
};

boost_pp bq;

int make_queue(int i, bool create)
{
	try {
		if (create)
			bq.q[i] = new bip::message_queue(bip::create_only, bq.names[i], peer_capacity(bq.msg), bq.msg);
		else
			bq.q[i] = new bip::message_queue(bip::open_only, bq.names[i]);
		return 0;
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (const bip::interprocess_exception &e) {
		return e.get_native_error() > 0 ? -e.get_native_error() : -EIO;
	}
}

void drop_queues(bool remove)
{
	for (int i = bq.nq - 1; i >= 0; i--) {
		delete bq.q[i];
		bq.q[i] = nullptr;
		if (remove) {
			bip::message_queue::remove(bq.names[i]);
			bench_cleanup_pop(false);
		}
	}
	free(bq.buf);
	bq.buf = nullptr;
}

int bq_setup(void *)
{
	int r = 0, made = 0;
	bq.seq = 0;
	for (int i = 0; i < bq.nq && !r; i++) {
		bench_unique_name(bq.names[i], sizeof(bq.names[i]), "boost");
		bip::message_queue::remove(bq.names[i]);
		if (!(r = make_queue(i, true)) && !(r = bench_cleanup_push(bench_unlink_shm, bq.names[i])))
			made++;
	}
	if (r) {
		/* Undo what was made: the queues pushed, and one made but
		 * not pushed. */
		for (int i = bq.nq - 1; i >= 0; i--) {
			delete bq.q[i];
			bq.q[i] = nullptr;
			bip::message_queue::remove(bq.names[i]);
			if (i < made)
				bench_cleanup_pop(false);
		}
	}
	return r;
}

/* Per process after fork: the child opens the queues by name (the parent
 * keeps the ones it made); both get a private buffer. */
int bq_child_init(void *)
{
	for (int i = 0; i < bq.nq; i++) {
		bq.q[i] = nullptr; /* the parent's objects, copied by fork: not ours */
		int r = make_queue(i, false);
		if (r)
			return r;
	}
	return (bq.buf = static_cast<unsigned char *>(malloc(bq.msg))) ? 0 : -ENOMEM;
}

int bq_parent_init(void *)
{
	return (bq.buf = static_cast<unsigned char *>(malloc(bq.msg))) ? 0 : -ENOMEM;
}

/* Waits are bounded: a second, then bench_aborted() is checked again. */
boost::posix_time::ptime in_a_second()
{
	return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::seconds(1);
}

int bq_send(bip::message_queue *q, uint64_t seq)
{
	peer_fill(bq.buf, bq.msg, seq);
	try {
		do {
			if (bench_aborted())
				return -ECANCELED;
		} while (!q->timed_send(bq.buf, bq.msg, 0, in_a_second()));
	} catch (const bip::interprocess_exception &) {
		return -EIO;
	}
	return 0;
}

int bq_recv(bip::message_queue *q, uint64_t seq)
{
	bip::message_queue::size_type n = 0;
	unsigned prio, spins = 0;
	try {
		if (bq.mode == PEER_RTT_SPIN) {
			while (!q->try_receive(bq.buf, bq.msg, n, prio)) {
				int r = bench_poll(&spins);
				if (r)
					return r;
			}
		} else {
			do {
				if (bench_aborted())
					return -ECANCELED;
			} while (!q->timed_receive(bq.buf, bq.msg, n, prio, in_a_second()));
		}
	} catch (const bip::interprocess_exception &) {
		return -EIO;
	}
	return n == bq.msg ? peer_check(bq.buf, bq.msg, seq) : -EBADMSG;
}

int bq_ping(void *, long n)
{
	for (long i = 0; i < n; i++, bq.seq++) {
		int r = bq_send(bq.q[0], bq.seq);
		if (r || (r = bq_recv(bq.q[1], PEER_REPLY(bq.seq))))
			return r;
	}
	return 0;
}

int bq_pong(void *, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, bq.seq++)
		if (!(r = bq_recv(bq.q[0], bq.seq)))
			r = bq_send(bq.q[1], PEER_REPLY(bq.seq));
	drop_queues(false);
	return r;
}

int bq_consume(void *, long n)
{
	for (long i = 0; i < n; i++, bq.seq++) {
		int r = bq_recv(bq.q[0], bq.seq);
		if (r)
			return r;
	}
	return 0;
}

int bq_produce(void *, long n)
{
	int r = 0;
	for (long i = 0; i < n && !r; i++, bq.seq++)
		r = bq_send(bq.q[0], bq.seq);
	drop_queues(false);
	return r;
}

void bq_teardown(void *)
{
	drop_queues(true);
}

int bq_make(struct bench_pair *p, enum peer_mode mode, size_t msg)
{
	bq = boost_pp();
	bq.mode = mode;
	bq.msg = msg;
	bq.nq = mode == PEER_STREAM ? 1 : 2;
	*p = (struct bench_pair){};
	p->arg = &bq;
	p->setup = bq_setup;
	p->teardown = bq_teardown;
	p->child_init = bq_child_init;
	p->parent_init = bq_parent_init;
	p->parent_run = mode == PEER_STREAM ? bq_consume : bq_ping;
	p->child_run = mode == PEER_STREAM ? bq_produce : bq_pong;
	return 0;
}

} // namespace

extern "C" const struct peer peer_boost = {
	"boost_mq", nullptr, nullptr, nullptr, bq_make,
};
