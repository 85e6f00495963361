/*
 * test_peer.c - liveness the kernel vouches for (src/peer.c): a live peer
 * is never taken for dead, whatever /proc says of its pid, and a dead one
 * is recovered.  Each test below is a case where judging by pid and start
 * time went wrong: a main thread that called pthread_exit, a peer in
 * another PID namespace, one in another time namespace; and the crash
 * windows that judging by locks must close (an SPSC producer killed
 * between publishing a slot and moving tail).
 *
 * Peers are exec'd helpers (helper_chan), some inside `unshare`; as root.
 * A held reservation is released through the helper's stdin.  Nothing
 * asserts on time: "not reclaimed" is checked by a receive that waits well
 * past the reclaim grace (50 ms) and must time out, and by `reclaimed`.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

#define MS 1000000LL
#define SEC 1000000000LL

/* Run the helper in a new PID namespace, under a shell that stays its
 * pid 1: a namespace's init cannot kill itself with a signal. */
#define PIDNS_WRAP { "/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--mount-proc", \
	             "/bin/sh", "-c", "\"$0\" \"$@\"; exit $?", NULL }

TestSuite(peer, .timeout = 60, .fini = sk_test_cleanup);

/* Read one line from fd (the helper's stdout) into buf, without its '\n'. */
static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	char c;

	while (n + 1 < len && read(fd, &c, 1) == 1 && c != '\n')
		buf[n++] = c;
	buf[n] = '\0';
}

struct peer_proc {
	pid_t pid;
	int out;      /* its stdout */
	int release;  /* write end of its stdin: closing it lets it go on */
};

/* Start a helper, optionally wrapped in a command (unshare ...), and wait
 * for its first line, which must be want. */
static struct peer_proc start_peer(const char *const wrap[], const char *const args[],
                                   const char *want)
{
	const char *argv[24];
	char helper[4096];
	int in[2], n = 0;
	struct peer_proc p;

	snprintf(helper, sizeof(helper), "%s/helper_chan", sk_test_dir());
	for (int i = 0; wrap && wrap[i]; i++)
		argv[n++] = wrap[i];
	argv[n++] = wrap ? helper : "helper_chan";
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	p.pid = sk_test_spawn(argv, in[0], &p.out);
	close(in[0]);
	cr_assert_gt(p.pid, 0);
	p.release = in[1];
	char line[64];
	read_line(p.out, line, sizeof(line));
	cr_assert_str_eq(line, want, "helper's first line");
	return p;
}

static int finish_peer(struct peer_proc *p)
{
	char rest[256];

	close(p->release);
	return sk_test_finish(p->pid, p->out, rest, sizeof(rest));
}

static shmkit_chan *new_chan(const char *name, unsigned flags)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL | flags };
	shmkit_chan *ch = NULL;

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0, "%s", shmkit_errdetail());
	return ch;
}

static uint64_t reclaimed(shmkit_chan *ch)
{
	struct shmkit_chan_stats st;

	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	return st.reclaimed;
}

/* A live producer holds a reservation at the head of an MPMC channel; a
 * consumer blocked behind it well past the reclaim grace must not take it
 * (it times out), and gets the message once the producer commits. */
static void check_live_reservation(const char *const wrap[], const char *mode)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, 0);
	const char *args[] = { mode, name, NULL };
	struct peer_proc p = start_peer(wrap, args, "reserved");
	char buf[64];

	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 300 * MS);
	cr_expect_eq(n, -ETIMEDOUT, "a live producer's reservation was taken: recv gave %zd", n);
	cr_expect_eq(reclaimed(ch), 0, "reclaimed from a live producer");
	int rc = finish_peer(&p);
	cr_expect_eq(rc, 0, "the producer's commit failed (exit %d)", rc);
	n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_expect_eq(n, 4, "recv after commit: %zd (%s)", n, shmkit_errdetail());
	cr_expect_eq(memcmp(buf, "held", 4), 0);
	cr_expect_eq(shmkit_chan_send(ch, "next", 4, 20 * SEC), 0, "the channel still works");
	shmkit_chan_close(ch);
}

/* Its main thread called pthread_exit: /proc shows the leader as a
 * zombie, but the process lives in its other thread. */
Test(peer, main_thread_exited_is_alive)
{
	check_live_reservation(NULL, "thread-hold");
}

/* A producer in another PID namespace (two containers sharing /dev/shm
 * and IPC but not their pids). */
Test(peer, other_pid_namespace_is_alive)
{
	const char *const wrap[] = PIDNS_WRAP;
	check_live_reservation(wrap, "hold");
}

/* ... and one that dies there is recovered from outside. */
Test(peer, dead_in_other_pid_namespace_is_reclaimed)
{
	const char *const wrap[] = PIDNS_WRAP;
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, 0);
	const char *args[] = { "reserve-die", name, NULL };
	struct peer_proc p = start_peer(wrap, args, "reserved");
	int rc = finish_peer(&p);
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	cr_assert_eq(shmkit_chan_send(ch, "after", 5, 20 * SEC), 0);
	char buf[64];
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_expect_eq(n, 5, "recv past the dead reservation: %zd (%s)", n, shmkit_errdetail());
	cr_expect_eq(reclaimed(ch), 1, "helper exit %d; before: sent %llu depth %llu reclaimed %llu",
	             rc, (unsigned long long)st.sent, (unsigned long long)st.depth,
	             (unsigned long long)st.reclaimed);
	shmkit_chan_close(ch);
}

/* An SPSC producer in another time namespace (boot time shifted, as CRIU
 * restores and some runtimes do): its role is not taken from it. */
Test(peer, other_time_namespace_keeps_its_role)
{
	const char *const wrap[] = { "/usr/bin/unshare", "--time", "--fork", "--kill-child",
	                             "--boottime", "1000000", NULL };
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, SHMKIT_CHAN_SPSC);
	const char *args[] = { "spsc-hold", name, NULL };
	struct peer_proc p = start_peer(wrap, args, "ready");

	int r = shmkit_chan_send(ch, "second", 6, 0);
	cr_expect_eq(r, -EBUSY, "the live producer's role was taken: send gave %d", r);
	cr_expect_eq(reclaimed(ch), 0);
	cr_expect_eq(finish_peer(&p), 0);
	cr_expect_eq(shmkit_chan_send(ch, "second", 6, 0), 0, "free once the holder left: %s",
	             shmkit_errdetail());
	shmkit_chan_close(ch);
}

/* Run `helper_chan produce NAME 0 COUNT` armed to die at crash point
 * `point` (NAME or NAME:N, src/crash.c); it must die there. */
static void produce_and_die(const char *name, const char *point, const char *count)
{
	char helper[4096], env[128], out[64];

	snprintf(helper, sizeof(helper), "%s/helper_chan", sk_test_dir());
	snprintf(env, sizeof(env), "SHMKIT_CRASH_AT=%s", point);
	const char *argv[] = { "/usr/bin/env", env, helper, "produce", name, "0", count, NULL };
	pid_t pid = sk_test_spawn(argv, -1, NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(sk_test_finish(pid, -1, out, sizeof(out)), 128 + SIGKILL, "killed at %s", point);
}

/* SPSC producer killed after publishing its 3rd message and before moving
 * tail (crash point chan.spsc.published:3).  The next producer must not
 * overwrite that message: the consumer gets 0, 1, 2, then the new one. */
Test(peer, spsc_producer_killed_before_tail)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, SHMKIT_CHAN_SPSC);

	produce_and_die(name, "chan.spsc.published:3", "5");
	cr_assert_eq(shmkit_chan_send(ch, "new", 3, 20 * SEC), 0, "%s", shmkit_errdetail());
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	cr_expect_eq(st.sent, 4, "tail counts the 3 published and the new message");
	char buf[256];
	for (int i = 0; i < 3; i++) {
		ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
		cr_assert_gt(n, 3, "message %d: %zd (%s)", i, n, shmkit_errdetail());
	}
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_assert_eq(n, 3, "the new message comes after the dead producer's: %zd", n);
	cr_expect_eq(memcmp(buf, "new", 3), 0);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EAGAIN);
	shmkit_chan_close(ch);
}

/* A forked child takes an entry of its own: when the parent's handle is
 * closed (its entry gone), the child's claims are still the child's. */
Test(peer, forked_child_claims_as_itself)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 64 };
	shmkit_chan *ch = NULL;
	int go[2], ready[2];
	char c;

	cr_assert_eq(shmkit_chan_create(&ch, "anon", &o), 0);
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		void *buf;
		close(go[1]);
		if (shmkit_chan_reserve(ch, &buf, 20 * SEC))
			_exit(1);
		memcpy(buf, "kid", 3);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		while (read(go[0], &c, 1) > 0)
			;
		_exit(shmkit_chan_commit(ch, 3) ? 3 : 0);
	}
	close(go[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1);
	char buf[64];
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 300 * MS);
	cr_expect_eq(n, -ETIMEDOUT, "the child's live reservation was taken: %zd", n);
	close(go[1]);
	cr_expect_eq(sk_test_reap(pid), 0);
	n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_expect_eq(n, 3, "%zd %s", n, shmkit_errdetail());
	cr_expect_eq(reclaimed(ch), 0);
	shmkit_chan_close(ch);
}

/* ---- bus ----------------------------------------------------------------- */

static shmkit_bus *new_bus(const char *name, int delivery, uint32_t cap)
{
	struct shmkit_bus_opts o = { .capacity = cap, .max_msg = 64, .delivery = delivery,
	                             .flags = SHMKIT_EXCL };
	shmkit_bus *b = NULL;

	cr_assert_eq(shmkit_bus_create(&b, name, &o), 0, "%s", shmkit_errdetail());
	return b;
}

/* A child that loans a buffer, says so, and publishes it when told: its
 * exit code is 0 if that publish_loan gave want. */
struct loaner {
	const char *name;
	int ready_w, go_r, go_w;
	int want;
};

static int loaner_main(void *p)
{
	struct loaner *l = p;
	shmkit_bus *b;
	void *buf;
	char c;

	close(l->go_w);
	if (shmkit_bus_open(&b, l->name, NULL) || shmkit_bus_loan(b, &buf, 20 * SEC))
		return 10;
	memcpy(buf, "loan", 4);
	if (write(l->ready_w, "r", 1) != 1)
		return 11;
	while (read(l->go_r, &c, 1) > 0)
		;
	int r = shmkit_bus_publish_loan(b, 4);
	shmkit_bus_close(b);
	return r == l->want ? 0 : 20 + (-r & 63);
}

static pid_t start_loaner(struct loaner *l, const char *name, int want)
{
	int ready[2], go[2];
	char c;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	*l = (struct loaner){ name, ready[1], go[0], go[1], want };
	pid_t pid = sk_test_fork(loaner_main, l);
	cr_assert_gt(pid, 0);
	close(ready[1]);
	close(go[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the loaner loaned");
	close(ready[0]);
	return pid;
}

/* Overwrite bus: a loan held by a stopped publisher does not hold its
 * subscribers up (passed, counted lost) nor other publishers: a try-once
 * publish whose claim lands on the loan's slot is -EAGAIN at once (the
 * slot cannot be reused while the holder may write into it), one with a
 * timeout gives that sequence up and takes the next; the holder's
 * publish_loan then gets -ESTALE, as the header promises. */
static void publish_a_lap(shmkit_bus *b, int n, int *eagain)
{
	for (int i = 0; i < n; i++) {
		int r = shmkit_bus_publish(b, "lap", 3, 0);
		cr_expect(r == 0 || r == -EAGAIN, "try-once publish %d: %d %s", i, r, shmkit_errdetail());
		*eagain += r == -EAGAIN;
	}
}

Test(peer, overwrite_bus_passes_a_stopped_loan)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *b = new_bus(name, SHMKIT_BUS_OVERWRITE, 8);
	shmkit_sub *sub;
	struct loaner l;
	char buf[64];
	uint64_t lost = 0;

	cr_assert_eq(shmkit_bus_subscribe(&sub, b, NULL), 0);
	pid_t pid = start_loaner(&l, name, -ESTALE);
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	cr_assert_eq(shmkit_bus_publish(b, "m1", 2, 0), 0);
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 20 * SEC);
	cr_expect_eq(n, 2, "recv behind a stopped loan: %zd (%s)", n, shmkit_errdetail());
	cr_expect_eq(lost, 1, "the passed loan counts lost");
	int eagain = 0;
	publish_a_lap(b, 8, &eagain);
	cr_expect_eq(eagain, 1, "exactly the claim on the loan's slot is refused");
	cr_expect_eq(shmkit_bus_publish(b, "wait", 4, 20 * SEC), 0, "%s", shmkit_errdetail());
	cr_assert_eq(kill(pid, SIGCONT), 0);
	close(l.go_w);
	cr_expect_eq(sk_test_reap(pid), 0, "the loan's holder gets -ESTALE");
	eagain = 0;
	publish_a_lap(b, 16, &eagain);
	cr_expect_eq(eagain, 0, "the slot is free once its holder let go");
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
}

/* The same with no subscriber: the publisher that laps the held loan
 * does not wait for it, and the holder's late publish fails: -ESTALE
 * (the lapping claims took the record from it). */
Test(peer, overwrite_publisher_laps_a_stopped_loan)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *b = new_bus(name, SHMKIT_BUS_OVERWRITE, 4);
	struct loaner l;

	pid_t pid = start_loaner(&l, name, -ESTALE);
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	int eagain = 0;
	publish_a_lap(b, 8, &eagain);
	cr_expect_eq(eagain, 2, "the two claims on the loan's slot are refused, at once");
	cr_assert_eq(kill(pid, SIGCONT), 0);
	close(l.go_w);
	cr_expect_eq(sk_test_reap(pid), 0, "the loan's holder gets -ESTALE");
	shmkit_bus_close(b);
}

/* A publisher killed after committing and before waking (crash point
 * bus.committed): a subscriber asleep with no timeout still gets the
 * message (within a wake slice). */
struct sleeper {
	const char *name;
	int ready_w;
};

static int sleeper_main(void *p)
{
	struct sleeper *sl = p;
	struct shmkit_bus_opts o = { .wait = SHMKIT_WAIT_BLOCK };
	shmkit_bus *b;
	shmkit_sub *sub;
	char buf[64];

	if (shmkit_bus_open(&b, sl->name, NULL) || shmkit_bus_subscribe(&sub, b, &o))
		return 10;
	if (write(sl->ready_w, "r", 1) != 1)
		return 11;
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), NULL, -1);
	return n == 5 && !memcmp(buf, "hello", 5) ? 0 : 12;
}

Test(peer, bus_subscriber_gets_message_of_publisher_killed_before_waking)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *b = new_bus(name, SHMKIT_BUS_OVERWRITE, 8);
	int ready[2];
	char c, helper[4096], out[64];

	cr_assert_eq(pipe(ready), 0);
	struct sleeper sl = { name, ready[1] };
	pid_t pid = sk_test_fork(sleeper_main, &sl);
	cr_assert_eq(read(ready[0], &c, 1), 1);
	snprintf(helper, sizeof(helper), "%s/helper_bus", sk_test_dir());
	const char *argv[] = { "/usr/bin/env", "SHMKIT_CRASH_AT=bus.committed", helper, "say", name,
	                       "hello", NULL };
	pid_t pub = sk_test_spawn(argv, -1, NULL);
	cr_assert_eq(sk_test_finish(pub, -1, out, sizeof(out)), 128 + SIGKILL,
	             "the publisher died at the crash point");
	cr_expect_eq(sk_test_reap(pid), 0, "the sleeper got the message");
	close(ready[0]);
	close(ready[1]);
	shmkit_bus_close(b);
}

/* Tables sized at creation: 1,024 subscriptions on one bus each get a
 * message; one more is -ENOSPC. */
Test(peer, bus_takes_1024_subscribers)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_bus_opts o = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL,
	                             .max_subscribers = 1024, .max_publishers = 300 };
	shmkit_bus *b = NULL;
	static shmkit_sub *subs[1025];
	char buf[64];

	cr_assert_eq(shmkit_bus_create(&b, name, &o), 0, "%s", shmkit_errdetail());
	for (int i = 0; i < 1024; i++)
		cr_assert_eq(shmkit_bus_subscribe(&subs[i], b, NULL), 0, "subscriber %d: %s", i,
		             shmkit_errdetail());
	cr_expect_eq(shmkit_bus_subscribe(&subs[1024], b, NULL), -ENOSPC);
	cr_assert_eq(shmkit_bus_publish(b, "all", 3, 0), 0);
	for (int i = 0; i < 1024; i++)
		cr_expect_eq(shmkit_sub_recv(subs[i], buf, sizeof(buf), NULL, 0), 3, "subscriber %d", i);
	struct shmkit_bus_stats st;
	cr_assert_eq(shmkit_bus_stats(b, &st), 0);
	cr_expect_eq(st.subscribers, 1024);
	cr_expect_eq(st.max_subscribers, 1024);
	cr_expect_eq(st.max_publishers, 300);
	for (int i = 0; i < 1024; i++)
		shmkit_bus_unsubscribe(subs[i]);
	shmkit_bus_close(b);
}

/* Joiners racing for entries left by dead subscribers: the kernel lets
 * exactly one take each, so on a back-pressure bus every joiner is
 * counted and none is published past (before, two joiners could own one
 * entry: "published 40 of 40", a subscriber "received 8, lost 32"). */
struct joiner {
	const char *name;
	uint32_t *gate;
	int ready_w;
	int count;
};

static int joiner_main(void *p)
{
	struct joiner *j = p;
	shmkit_bus *b;
	shmkit_sub *sub;
	char buf[64];
	uint64_t lost = 0, all_lost = 0;

	if (shmkit_bus_open(&b, j->name, NULL))
		return 10;
	while (!__atomic_load_n(j->gate, __ATOMIC_ACQUIRE))
		shmkit_futex_wait(j->gate, 0, 100 * MS);
	if (shmkit_bus_subscribe(&sub, b, NULL))
		return 11;
	if (write(j->ready_w, "r", 1) != 1)
		return 12;
	for (int i = 0; i < j->count; i++) {
		ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 20 * SEC);
		if (n != 4)
			return 13;
		all_lost += lost;
		if (memcmp(buf, &i, 4))
			return 14;
	}
	return all_lost ? 15 : 0;
}

static int dead_subscriber(void *p)
{
	shmkit_bus *b;
	shmkit_sub *sub;

	if (shmkit_bus_open(&b, p, NULL) || shmkit_bus_subscribe(&sub, b, NULL))
		return 1;
	_exit(0); /* leaves its entry behind */
}

Test(peer, joiners_racing_for_dead_entries_each_get_their_own, .timeout = 120)
{
	enum { DEAD = 6, JOINERS = 6, MSGS = 40, ROUNDS = 10 };
	const char *name = sk_test_new_name("posix");
	struct shmkit_bus_opts o = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL,
	                             .delivery = SHMKIT_BUS_BACKPRESSURE, .max_subscribers = 8 };
	shmkit_bus *b = NULL;
	uint32_t *gate = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(gate, MAP_FAILED);
	cr_assert_eq(shmkit_bus_create(&b, name, &o), 0, "%s", shmkit_errdetail());
	for (int round = 0; round < ROUNDS; round++) {
		pid_t dead[DEAD], joiners[JOINERS];
		int ready[2];
		char c;

		for (int i = 0; i < DEAD; i++)
			dead[i] = sk_test_fork(dead_subscriber, (void *)name);
		for (int i = 0; i < DEAD; i++)
			cr_assert_eq(sk_test_reap(dead[i]), 0);
		cr_assert_eq(pipe(ready), 0);
		__atomic_store_n(gate, 0, __ATOMIC_RELEASE);
		struct joiner j = { name, gate, ready[1], MSGS };
		for (int i = 0; i < JOINERS; i++)
			joiners[i] = sk_test_fork(joiner_main, &j);
		__atomic_store_n(gate, 1, __ATOMIC_RELEASE);
		shmkit_futex_wake(gate, -1);
		for (int i = 0; i < JOINERS; i++)
			cr_assert_eq(read(ready[0], &c, 1), 1, "joiner %d joined", i);
		for (int i = 0; i < MSGS; i++)
			cr_assert_eq(shmkit_bus_publish(b, &i, 4, 20 * SEC), 0, "round %d publish %d: %s",
			             round, i, shmkit_errdetail());
		for (int i = 0; i < JOINERS; i++) {
			int rc = sk_test_reap(joiners[i]);
			cr_assert_eq(rc, 0, "round %d joiner %d exit %d (15: lost messages)", round, i, rc);
		}
		close(ready[0]);
		close(ready[1]);
	}
	shmkit_bus_close(b);
	munmap(gate, 4096);
}

/* The pollable fd of a subscription wakes for a publisher in another
 * network namespace (a container sharing /dev/shm and IPC, not the
 * network): it waits on the shared memory itself, not on a socket. */
Test(peer, sub_fd_wakes_for_a_publisher_in_another_network_namespace)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *b = new_bus(name, SHMKIT_BUS_OVERWRITE, 8);
	shmkit_sub *sub;
	char helper[4096], out[64], buf[64];

	cr_assert_eq(shmkit_bus_subscribe(&sub, b, NULL), 0);
	int fd = shmkit_sub_fd(sub);
	cr_assert_geq(fd, 0, "%s", shmkit_errdetail());
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "readable with nothing published");
	snprintf(helper, sizeof(helper), "%s/helper_bus", sk_test_dir());
	const char *argv[] = { "/usr/bin/unshare", "--net", helper, "say", name, "netns", NULL };
	pid_t pub = sk_test_spawn(argv, -1, NULL);
	cr_assert_eq(sk_test_finish(pub, -1, out, sizeof(out)), 0, "the publisher published");
	int k;
	do
		k = poll(&pfd, 1, 20000);
	while (k < 0 && errno == EINTR);
	cr_expect_eq(k, 1, "the fd did not wake for a publisher in another network namespace");
	cr_expect_eq(shmkit_sub_ack_fd(sub), 0);
	cr_expect_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 5);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
}

/* Channels get the same pollable fd: a consumer's POLLIN fd wakes for a
 * producer in another network namespace, and a producer's POLLOUT fd for
 * room made by a consumer. */
Test(peer, chan_fd_wakes_both_ways)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 2, .max_msg = 256, .flags = SHMKIT_EXCL };
	shmkit_chan *ch, *tx;
	char helper[4096], out[64], buf[256];

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	int fd = shmkit_chan_fd(ch, SHMKIT_CHAN_POLLIN);
	cr_assert_geq(fd, 0, "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_chan_fd(ch, SHMKIT_CHAN_POLLOUT), -EINVAL);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "readable while empty");
	snprintf(helper, sizeof(helper), "%s/helper_chan", sk_test_dir());
	const char *argv[] = { "/usr/bin/unshare", "--net", helper, "produce", name, "0", "1", NULL };
	pid_t pid = sk_test_spawn(argv, -1, NULL);
	cr_assert_eq(sk_test_finish(pid, -1, out, sizeof(out)), 0);
	int k;
	do
		k = poll(&pfd, 1, 20000);
	while (k < 0 && errno == EINTR);
	cr_expect_eq(k, 1, "the consumer's fd did not wake");
	cr_expect_eq(shmkit_chan_ack_fd(ch), 0);
	cr_expect_gt(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 0);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EAGAIN);

	/* POLLOUT: full, then a consumer takes one. */
	cr_assert_eq(shmkit_chan_open(&tx, name, NULL), 0);
	cr_assert_eq(shmkit_chan_send(tx, "a", 1, 0), 0);
	cr_assert_eq(shmkit_chan_send(tx, "b", 1, 0), 0);
	int ofd = shmkit_chan_fd(tx, SHMKIT_CHAN_POLLOUT);
	cr_assert_geq(ofd, 0);
	struct pollfd opfd = { .fd = ofd, .events = POLLIN };
	cr_assert_eq(poll(&opfd, 1, 0), 0, "writable while full");
	cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 1);
	do
		k = poll(&opfd, 1, 20000);
	while (k < 0 && errno == EINTR);
	cr_expect_eq(k, 1, "the producer's fd did not wake");
	cr_expect_eq(shmkit_chan_ack_fd(tx), 0);
	cr_expect_eq(shmkit_chan_send(tx, "c", 1, 0), 0);
	shmkit_chan_close(tx);
	shmkit_chan_close(ch);
}

/* One epoll waits on every service: a subscription, a channel consumer
 * and a journal reader; each wakes for its own event. */
static int epoll_one(int ep, int64_t ms)
{
	struct epoll_event ev;
	int k;

	do
		k = epoll_wait(ep, &ev, 1, (int)ms);
	while (k < 0 && errno == EINTR);
	return k == 1 ? (int)ev.data.u32 : -1;
}

static char epoll_dir[96]; /* /tmp/sktest-RUN-PID-peer-XXXXXX */
static bool epoll_dir_made;

static void rm_epoll_dir(void)
{
	char cmd[4200];

	if (!epoll_dir_made)
		return; /* (mkdtemp's letters may include an X: a flag, not a look) */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", epoll_dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", epoll_dir);
	sk_test_cleanup();
}

Test(peer, one_epoll_waits_on_every_service, .fini = rm_epoll_dir)
{
	const char *bname = sk_test_new_name("posix"), *cname = sk_test_new_name("posix");
	shmkit_bus *b = new_bus(bname, SHMKIT_BUS_OVERWRITE, 8);
	shmkit_chan *ch = new_chan(cname, 0);
	shmkit_sub *sub;
	char *dir = epoll_dir, jpath[128], buf[128];
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                  .file_size = 65536, .max_record = 1024 };
	shmkit_journal *jw, *jr;
	struct shmkit_record rec;

	char base[64];
	snprintf(dir, sizeof(epoll_dir), "/tmp/%s", sk_test_base(base, sizeof(base), "peer-XXXXXX"));
	cr_assert_not_null(mkdtemp(dir));
	epoll_dir_made = true;
	snprintf(jpath, sizeof(jpath), "%s/j", dir);
	cr_assert_eq(shmkit_journal_open(&jw, jpath, &wo), 0, "%s", shmkit_errdetail());
	cr_assert_eq(shmkit_journal_open(&jr, jpath, NULL), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, b, NULL), 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fds[3] = { shmkit_sub_fd(sub), shmkit_chan_fd(ch, SHMKIT_CHAN_POLLIN),
	               shmkit_journal_fd(jr) };
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_geq(fds[i], 0, "fd %u: %s", i, shmkit_errdetail());
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
		cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev), 0);
	}
	/* The journal's reader has no file open yet: readable at once; a
	 * drain opens it. */
	cr_assert_eq(epoll_one(ep, 20000), 2);
	cr_assert_eq(shmkit_journal_next(jr, &rec, 0), -EAGAIN);
	cr_assert_eq(shmkit_journal_ack_fd(jr), 0);
	cr_assert_eq(epoll_one(ep, 0), -1, "nothing ready");

	/* Each: wake, drain, ack (an ack after draining looks itself, so
	 * nothing committed in between is missed). */
	cr_assert_eq(shmkit_bus_publish(b, "bus", 3, 0), 0);
	cr_expect_eq(epoll_one(ep, 20000), 0);
	cr_expect_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 3);
	cr_assert_eq(shmkit_sub_ack_fd(sub), 0);

	cr_assert_eq(shmkit_chan_send(ch, "chan", 4, 0), 0);
	cr_expect_eq(epoll_one(ep, 20000), 1);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 4);
	cr_assert_eq(shmkit_chan_ack_fd(ch), 0);

	cr_assert_eq(shmkit_journal_append(jw, "journal", 7, NULL), 0);
	cr_expect_eq(epoll_one(ep, 20000), 2);
	cr_expect_eq(shmkit_journal_next(jr, &rec, 0), 1);
	cr_expect_eq(rec.len, 7);
	cr_assert_eq(shmkit_journal_ack_fd(jr), 0);
	cr_expect_eq(epoll_one(ep, 0), -1, "nothing ready after draining all three");

	close(ep);
	shmkit_journal_close(jr);
	shmkit_journal_close(jw);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
	shmkit_chan_close(ch);
}

/* A live producer whose peer lock is lost (it closed every descriptor it
 * did not own, as closefrom(3) does) is taken for dead and its claim
 * reclaimed; its commit then fails -ESTALE rather than writing into a
 * slot that was handed on, and the channel goes on. */
Test(peer, commit_after_losing_the_lock_is_estale)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, 0);
	const char *args[] = { "lose-lock", name, NULL };
	struct peer_proc p = start_peer(NULL, args, "lost");
	char buf[64];

	cr_assert_eq(shmkit_chan_send(ch, "next", 4, 20 * SEC), 0);
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_expect_eq(n, 4, "recv past the reclaimed claim: %zd (%s)", n, shmkit_errdetail());
	cr_expect_eq(memcmp(buf, "next", 4), 0);
	cr_expect_eq(finish_peer(&p), 0, "the late commit was not -ESTALE");
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EAGAIN, "nothing else delivered");
	shmkit_chan_close(ch);
}

/* A producer killed the instant after its claim (crash point
 * chan.mpmc.claimed), in another PID namespace where its pid names some
 * other live process out here: the claim names its peer id, not a pid,
 * so it is reclaimed, and the next message goes through.  (Before, a
 * claimer killed before recording its start time was judged by pid
 * alone: a reused pid kept the slot stuck for ever.) */
Test(peer, producer_killed_right_after_its_claim_is_reclaimed)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, 0);
	char helper[4096], out[64], buf[64];

	snprintf(helper, sizeof(helper), "%s/helper_chan", sk_test_dir());
	const char *argv[] = { "/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
	                       "/usr/bin/env", "SHMKIT_CRASH_AT=chan.mpmc.claimed", "/bin/sh", "-c",
	                       "\"$0\" \"$@\"; exit $?", helper, "produce", name, "0", "1", NULL };
	pid_t pid = sk_test_spawn(argv, -1, NULL);
	cr_assert_gt(pid, 0);
	sk_test_finish(pid, -1, out, sizeof(out)); /* its shell reports the kill */
	cr_assert_eq(shmkit_chan_send(ch, "next", 4, 20 * SEC), 0);
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
	cr_expect_eq(n, 4, "recv past the dead claim: %zd (%s)", n, shmkit_errdetail());
	cr_expect_eq(reclaimed(ch), 1);
	shmkit_chan_close(ch);
}

/* The same window seen by a slow poller (recv with timeout 0, one call
 * every 10 ms): it reads no clock at most calls, yet the dead claim must
 * be noticed a few calls after SK_CHAN_RECLAIM_NS (50 ms), not only at
 * its 64th call (what a poll counter alone gave: 640 ms at this rate,
 * and a minute for a poller of once a second). */
Test(peer, slow_poller_passes_a_dead_claim)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, 0);
	const struct timespec ms10 = { 0, 10000000 };
	char buf[64];
	ssize_t n = -EAGAIN;
	int polls = 0;

	produce_and_die(name, "chan.mpmc.claimed", "1");
	cr_assert_eq(shmkit_chan_send(ch, "next", 4, 20 * SEC), 0);
	while (n == -EAGAIN && polls < 30) {
		nanosleep(&ms10, NULL);
		n = shmkit_chan_recv(ch, buf, sizeof(buf), 0);
		polls++;
	}
	cr_expect_eq(n, 4, "after %d polls 10 ms apart: %zd (%s)", polls, n, shmkit_errdetail());
	cr_expect_eq(reclaimed(ch), 1);
	shmkit_chan_close(ch);
}

/* The same window, but the consumer takes the dead producer's last
 * message before a new producer comes (head is then tail + 1): the next
 * producers must neither see corruption nor write behind head. */
Test(peer, spsc_producer_killed_before_tail_message_already_taken)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = new_chan(name, SHMKIT_CHAN_SPSC);
	char buf[256];

	produce_and_die(name, "chan.spsc.published", "1");
	cr_assert_gt(shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC), 3, "%s", shmkit_errdetail());
	for (int i = 0; i < 2; i++) { /* two producers in turn, each handing over cleanly */
		shmkit_chan *tx;
		cr_assert_eq(shmkit_chan_open(&tx, name, NULL), 0);
		int r = shmkit_chan_send(tx, "new", 3, 20 * SEC);
		cr_assert_eq(r, 0, "producer %d: %d %s", i, r, shmkit_errdetail());
		shmkit_chan_close(tx);
		ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * SEC);
		cr_assert_eq(n, 3, "message of producer %d: %zd %s", i, n, shmkit_errdetail());
	}
	shmkit_chan_close(ch);
}
