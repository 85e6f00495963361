/*
 * test_chan_stress.c - channels between many processes: producers and
 * consumers behind start gates (forked, plus an exec'd helper), each
 * consumer checking every byte and the per-producer order of what it
 * gets, a shared table catching loss and duplicates; every wait strategy
 * in a ping-pong; producers and consumers killed by SIGKILL mid-operation
 * while the others go on.
 *
 * Nothing asserts on time: every wait is bounded by a generous deadline,
 * children report through exit codes, and every child is reaped.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chan_msg.h"
#include "internal.h"
#include "lib_test.h"
#include "shmkit.h"

#define MS 1000000LL
#define SEC 1000000000LL
#define BOUND (20 * SEC) /* a wait that is never reached when healthy */
#define MAXP 4
#define MAXC 3
#define PER_PRODUCER 20000

TestSuite(chan_stress, .timeout = 120, .fini = sk_test_cleanup);

/* Shared between the test and its forked children. */
struct board {
	uint32_t go;                     /* producers' start gate (futex word) */
	uint32_t cgo;                    /* consumers' start gate (futex word) */
	uint32_t stop;                   /* consumers: drain and leave */
	uint64_t taken;                  /* messages consumed, all consumers */
	uint8_t seen[MAXP][PER_PRODUCER];
	uint32_t dups, bad;
};

struct role {
	struct board *b;
	const char *name;
	unsigned id, count, flags;
	int wait;
};

static struct board *board_new(void)
{
	void *p = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

/* A start gate: a futex word the test opens once.  The acquire load pairs
 * with the release store in gate_open (the children see the board as the
 * test left it). */
static void gate_wait(uint32_t *gate)
{
	while (!sk_load_acquire(gate))
		shmkit_futex_wait(gate, 0, 100 * MS);
}

static void gate_open(uint32_t *gate)
{
	sk_store_release(gate, 1); /* pairs with the acquire in gate_wait */
	shmkit_futex_wake(gate, -1);
}

static shmkit_chan *open_role(const struct role *r)
{
	struct shmkit_chan_opts o = { .wait = r->wait };
	shmkit_chan *ch = NULL;
	return shmkit_chan_open(&ch, r->name, &o) ? NULL : ch;
}

static int producer(void *arg)
{
	const struct role *r = arg;
	shmkit_chan *ch = open_role(r);
	struct chan_msg m;

	if (!ch)
		return 30;
	gate_wait(&r->b->go);
	for (unsigned seq = 0; seq < r->count; seq++) {
		size_t len = chan_msg_fill(&m, r->id, seq);
		int e;
		if (seq % 5 == 4) { /* every fifth goes zero-copy */
			void *w;
			if ((e = shmkit_chan_reserve(ch, &w, BOUND)))
				return 31;
			memcpy(w, &m, len);
			e = shmkit_chan_commit(ch, len);
		} else {
			e = shmkit_chan_send(ch, &m, len, BOUND);
		}
		if (e)
			return 32;
	}
	shmkit_chan_close(ch);
	return 0;
}

/* Record one message; 0 if it is well-formed, new, and in order. */
static int record(struct board *b, uint32_t *last, const void *buf, ssize_t n)
{
	struct chan_msg m;

	if (n < 0 || !chan_msg_check(buf, (size_t)n, &m) || m.id >= MAXP || m.seq >= PER_PRODUCER)
		return 40;
	if (last[m.id] != UINT32_MAX && m.seq <= last[m.id])
		return 41; /* per-producer order broken for this consumer */
	last[m.id] = m.seq;
	if (sk_exchange(&b->seen[m.id][m.seq], 1, __ATOMIC_RELAXED))
		sk_fetch_add(&b->dups, 1, __ATOMIC_RELAXED);
	sk_fetch_add(&b->taken, 1, __ATOMIC_RELAXED);
	return 0;
}

static int consumer(void *arg)
{
	const struct role *r = arg;
	shmkit_chan *ch = open_role(r);
	uint32_t last[MAXP];
	char buf[sizeof(struct chan_msg)];
	unsigned n = 0;

	if (!ch)
		return 50;
	memset(last, 0xff, sizeof(last));
	gate_wait(&r->b->cgo);
	for (;;) {
		ssize_t len;
		const void *p = NULL;
		if (++n % 7 == 0) /* every seventh in place */
			len = shmkit_chan_peek(ch, &p, 20 * MS);
		else
			len = shmkit_chan_recv(ch, buf, sizeof(buf), 20 * MS);
		if (len == -ETIMEDOUT) {
			if (sk_load_acquire(&r->b->stop))
				break;
			continue;
		}
		int e = record(r->b, last, p ? p : buf, len);
		if (p && shmkit_chan_release(ch))
			e = 51;
		if (e)
			return e;
	}
	shmkit_chan_close(ch);
	return 0;
}

/* Wait until `want` messages were taken (or the bound passes), then let
 * the consumers go. */
static void drain(struct board *b, uint64_t want)
{
	int64_t end = sk_now_ns() + 4 * BOUND;
	while (sk_load_relaxed(&b->taken) < want && sk_now_ns() < end)
		usleep(2000);
	sk_store_release(&b->stop, 1);
}

static unsigned missing(const struct board *b, unsigned producers, unsigned count)
{
	unsigned miss = 0;
	for (unsigned p = 0; p < producers; p++)
		for (unsigned s = 0; s < count; s++)
			miss += !b->seen[p][s];
	return miss;
}

struct run {
	unsigned forked_producers, helper_producers, consumers, flags, capacity;
	int wait;
	bool crashers; /* also a reserve-and-die and a peek-and-die helper */
};

static pid_t spawn_helper(const char *mode, const char *name, unsigned id, unsigned count, int *out)
{
	char ids[16], counts[16];
	snprintf(ids, sizeof(ids), "%u", id);
	snprintf(counts, sizeof(counts), "%u", count);
	const char *argv[] = { "helper_chan", mode, name, ids, counts, NULL };
	if (strcmp(mode, "produce"))
		argv[3] = NULL;
	return sk_test_spawn(argv, -1, out);
}

/* A crash helper: run it, read what it printed, check it died by SIGKILL. */
static void crash_helper(const char *mode, const char *name, char *out, size_t len)
{
	int fd = -1;
	pid_t pid = spawn_helper(mode, name, 0, 0, &fd);
	cr_assert_gt(pid, 0);
	int rc = sk_test_finish(pid, fd, out, len);
	cr_assert_eq(rc, 128 + SIGKILL, "%s exited %d, printed '%s'", mode, rc, out);
}

static void stress(const struct run *run)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = run->capacity, .max_msg = sizeof(struct chan_msg),
	                              .flags = run->flags | SHMKIT_EXCL };
	struct board *b = board_new();
	shmkit_chan *ch = NULL;
	struct role roles[MAXP + MAXC];
	pid_t pids[MAXP + MAXC + 1];
	unsigned np = 0, producers = run->forked_producers + run->helper_producers;

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	for (unsigned i = 0; i < run->forked_producers + run->consumers; i++) {
		bool prod = i < run->forked_producers;
		/* wait < 0: mix the strategies across the processes */
		roles[i] = (struct role){ .b = b, .name = name, .id = i, .count = PER_PRODUCER,
		                          .flags = run->flags,
		                          .wait = run->wait >= 0 ? run->wait : (int)(i % 3) };
		pids[np++] = sk_test_fork(prod ? producer : consumer, &roles[i]);
	}
	char out[64] = "";
	unsigned lost_id = UINT32_MAX, lost_seq = 0;
	if (run->crashers) {
		/* Ordered so that neither crasher can starve, however the
		 * machine schedules: the reserver dies holding the first slot
		 * of an empty channel; then the producers fill the channel
		 * behind that dead slot while the consumers are held back, so
		 * the peeker must get past the dead reservation to a message
		 * that is sure to be there.  Only then do the consumers start. */
		crash_helper("reserve-die", name, out, sizeof(out));
		gate_open(&b->go);
		crash_helper("peek-die", name, out, sizeof(out));
		cr_assert_eq(sscanf(out, "%u %u", &lost_id, &lost_seq), 2, "peek-die printed '%s'", out);
	}
	gate_open(&b->go);
	gate_open(&b->cgo);
	for (unsigned i = 0; i < run->helper_producers; i++)
		pids[np++] = spawn_helper("produce", name, run->forked_producers + i, PER_PRODUCER, NULL);
	uint64_t want = (uint64_t)producers * PER_PRODUCER - (lost_id != UINT32_MAX);
	drain(b, want);
	int rcs[MAXP + MAXC + 1];
	for (unsigned i = 0; i < np; i++)
		rcs[i] = pids[i] > 0 ? sk_test_reap(pids[i]) : -1;
	struct shmkit_chan_stats st;
	shmkit_chan_stats(ch, &st);
	if (lost_id < MAXP && lost_seq < PER_PRODUCER)
		b->seen[lost_id][lost_seq] = 1; /* taken by the consumer that died */
	unsigned miss = missing(b, producers, PER_PRODUCER), dups = b->dups;
	uint64_t taken = b->taken;
	shmkit_chan_close(ch);
	munmap(b, sizeof(*b));
	for (unsigned i = 0; i < np; i++)
		cr_expect_eq(rcs[i], 0, "child %u exited %d", i, rcs[i]);
	cr_expect_eq(miss, 0, "%u messages lost", miss);
	cr_expect_eq(dups, 0, "%u duplicates", dups);
	cr_expect_eq(taken, want);
	cr_expect_eq(st.received + (lost_id != UINT32_MAX), st.sent);
	if (run->crashers)
		cr_expect_geq(st.reclaimed, 1, "the dead producer's slot was reclaimed");
}

Test(chan_stress, mpmc_three_producers_two_consumers)
{
	struct run r = { .forked_producers = 2, .helper_producers = 1, .consumers = 2,
	                 .capacity = 8, .wait = -1 };
	stress(&r);
}

Test(chan_stress, mpmc_many_small_capacity_block)
{
	struct run r = { .forked_producers = 3, .helper_producers = 1, .consumers = 3,
	                 .capacity = 2, .wait = SHMKIT_WAIT_BLOCK };
	stress(&r);
}

Test(chan_stress, spsc_one_to_one)
{
	struct run r = { .forked_producers = 1, .consumers = 1, .capacity = 16,
	                 .flags = SHMKIT_CHAN_SPSC, .wait = SHMKIT_WAIT_ADAPTIVE };
	stress(&r);
}

Test(chan_stress, spsc_exec_producer)
{
	struct run r = { .helper_producers = 1, .consumers = 1, .capacity = 4,
	                 .flags = SHMKIT_CHAN_SPSC, .wait = SHMKIT_WAIT_BLOCK };
	stress(&r);
}

Test(chan_stress, crashers_while_others_go_on)
{
	struct run r = { .forked_producers = 2, .helper_producers = 1, .consumers = 2,
	                 .capacity = 4, .wait = -1, .crashers = true };
	stress(&r);
}

/* ---- every wait strategy in a ping-pong ------------------------------------ */

struct pp {
	const char *req, *rep;
	int wait;
	unsigned rounds;
};

static int ponger(void *arg)
{
	const struct pp *p = arg;
	struct shmkit_chan_opts o = { .wait = p->wait };
	shmkit_chan *req, *rep;
	uint64_t v;

	if (shmkit_chan_open(&req, p->req, &o) || shmkit_chan_open(&rep, p->rep, &o))
		return 60;
	for (unsigned i = 0; i < p->rounds; i++) {
		if (shmkit_chan_recv(req, &v, sizeof(v), BOUND) != sizeof(v) || v != i)
			return 61;
		v = ~v;
		if (shmkit_chan_send(rep, &v, sizeof(v), BOUND))
			return 62;
	}
	shmkit_chan_close(req);
	shmkit_chan_close(rep);
	return 0;
}

static void ping_pong(int wait, unsigned flags)
{
	struct pp p = { .req = sk_test_new_name("posix"), .rep = sk_test_new_name("posix"),
	                .wait = wait, .rounds = 3000 };
	struct shmkit_chan_opts o = { .capacity = 1, .max_msg = 8, .wait = wait, .flags = flags };
	shmkit_chan *req, *rep;
	int bad = 0;

	cr_assert_eq(shmkit_chan_create(&req, p.req, &o), 0);
	cr_assert_eq(shmkit_chan_create(&rep, p.rep, &o), 0);
	pid_t pid = sk_test_fork(ponger, &p);
	cr_assert_gt(pid, 0);
	for (uint64_t i = 0; i < p.rounds && !bad; i++) {
		uint64_t v = i;
		bad |= shmkit_chan_send(req, &v, sizeof(v), BOUND) != 0;
		bad |= shmkit_chan_recv(rep, &v, sizeof(v), BOUND) != sizeof(v) || v != ~i;
	}
	int rc = sk_test_reap(pid);
	shmkit_chan_close(req);
	shmkit_chan_close(rep);
	cr_expect_eq(bad, 0);
	cr_expect_eq(rc, 0, "ponger exited %d", rc);
}

Test(chan_stress, ping_pong_spin) { ping_pong(SHMKIT_WAIT_SPIN, 0); }
Test(chan_stress, ping_pong_adaptive) { ping_pong(SHMKIT_WAIT_ADAPTIVE, 0); }
Test(chan_stress, ping_pong_block) { ping_pong(SHMKIT_WAIT_BLOCK, 0); }
Test(chan_stress, ping_pong_spsc_block) { ping_pong(SHMKIT_WAIT_BLOCK, SHMKIT_CHAN_SPSC); }

/* ---- deterministic crash recovery ------------------------------------------ */

/* The test is producer and consumer; helpers die holding a reservation
 * and a peeked message.  Both slots come back; only the peeked message
 * is lost. */
Test(chan_stress, dead_producer_and_consumer_slots_reclaimed)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 4, .max_msg = 8, .flags = SHMKIT_EXCL,
	                              .wait = SHMKIT_WAIT_BLOCK };
	shmkit_chan *ch;
	char out[64] = "";
	uint64_t v;

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	crash_helper("reserve-die", name, out, sizeof(out)); /* position 0 */
	cr_assert_str_eq(out, "reserved\n");
	for (v = 0; v < 3; v++) /* positions 1..3 */
		cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), 0);
	for (uint64_t want = 0; want < 3; want++) { /* blocked on position 0 until reclaimed */
		cr_assert_eq(shmkit_chan_recv(ch, &v, sizeof(v), BOUND), (ssize_t)sizeof(v),
		             "%s", shmkit_errdetail());
		cr_assert_eq(v, want);
	}
	struct shmkit_chan_stats st;
	shmkit_chan_stats(ch, &st);
	cr_expect_eq(st.reclaimed, 1);

	v = 3;
	cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), 0); /* position 4, slot 0 */
	crash_helper("peek-die", name, out, sizeof(out));
	/* It prints a message of 8 bytes as two u32: 3 is "3 0". */
	cr_expect_str_eq(out, "3 0\n", "it peeked message 3");
	for (v = 4; v < 8; v++) /* 4..6 fit; 7 needs slot 0 back from the dead peeker */
		cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), BOUND), 0, "%s", shmkit_errdetail());
	for (uint64_t want = 4; want < 8; want++) {
		cr_assert_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), (ssize_t)sizeof(v));
		cr_assert_eq(v, want, "message 3 went with the dead consumer, the rest follow");
	}
	shmkit_chan_stats(ch, &st);
	cr_expect_eq(st.reclaimed, 2);
	cr_expect_eq(st.depth, 0);
	/* Try-once callers recover too: a dead reservation, then polling. */
	crash_helper("reserve-die", name, out, sizeof(out));
	v = 9;
	cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), 0);
	ssize_t n;
	int64_t end = sk_now_ns() + BOUND;
	while ((n = shmkit_chan_recv(ch, &v, sizeof(v), 0)) == -EAGAIN && sk_now_ns() < end)
		usleep(1000);
	cr_expect_eq(n, (ssize_t)sizeof(v));
	cr_expect_eq(v, 9);
	shmkit_chan_close(ch);
}

/* SPSC: a consumer that dies holding a peeked message never moved head,
 * so the next consumer gets the same message again; a producer that dies
 * holding a reservation never moved tail.  Both dead peers' roles are
 * taken over at once. */
Test(chan_stress, spsc_dead_consumer_redelivers)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 2, .max_msg = 8, .flags = SHMKIT_EXCL | SHMKIT_CHAN_SPSC };
	shmkit_chan *ch;
	struct shmkit_chan_stats st;
	char out[64] = "";
	uint64_t v = 77;

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), 0);
	cr_assert_eq(shmkit_chan_close(ch), 0, "gives the producer role back");
	crash_helper("peek-die", name, out, sizeof(out));
	crash_helper("reserve-die", name, out, sizeof(out));
	cr_assert_eq(shmkit_chan_open(&ch, name, NULL), 0);
	shmkit_chan_stats(ch, &st);
	cr_expect_neq(st.producer, 0, "the dead reserver still holds the producer role");
	cr_expect_neq(st.consumer, 0, "the dead peeker still holds the consumer role");
	v = 0;
	cr_assert_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), (ssize_t)sizeof(v), "%s", shmkit_errdetail());
	cr_expect_eq(v, 77);
	cr_expect_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), -EAGAIN, "the dead reservation left nothing");
	v = 78;
	cr_assert_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), 0, "%s", shmkit_errdetail());
	cr_assert_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	cr_expect_eq(v, 78);
	shmkit_chan_stats(ch, &st);
	cr_expect_eq(st.reclaimed, 2, "both roles taken from the dead");
	cr_expect_eq(st.producer, (uint32_t)getpid());
	cr_expect_eq(st.consumer, (uint32_t)getpid());
	shmkit_chan_close(ch);
}

/* SPSC roles: a second live producer (or consumer) handle is refused with
 * -EBUSY, in another process or in this one, and nothing it does touches
 * the channel; once the holder closes (or exits), the next one gets it.
 * A forked child does not inherit its parent's role. */
static int child_send(void *arg)
{
	shmkit_chan *ch = NULL;
	uint64_t v = 1;
	if (shmkit_chan_open(&ch, arg, NULL))
		return 10;
	int r = shmkit_chan_send(ch, &v, sizeof(v), 0);
	shmkit_chan_close(ch);
	return r == -EBUSY ? 0 : r == 0 ? 11 : 12;
}

static int child_inherited(void *arg)
{
	shmkit_chan *ch = arg; /* the parent's handle, producer role held */
	uint64_t v = 2;
	int r = shmkit_chan_send(ch, &v, sizeof(v), 0);
	shmkit_chan_close(ch); /* must not give the parent's role away */
	return r == -EBUSY ? 0 : 13;
}

Test(chan_stress, spsc_one_producer_one_consumer_enforced)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 4, .max_msg = 8, .flags = SHMKIT_EXCL | SHMKIT_CHAN_SPSC };
	shmkit_chan *a, *b;
	struct shmkit_chan_stats st;
	uint64_t v = 5;
	const void *p;
	void *w;

	cr_assert_eq(shmkit_chan_create(&a, name, &o), 0);
	cr_assert_eq(shmkit_chan_open(&b, name, NULL), 0);
	shmkit_chan_stats(a, &st);
	cr_expect_eq(st.producer, 0, "opening takes no role");
	cr_assert_eq(shmkit_chan_send(a, &v, sizeof(v), 0), 0);
	cr_expect_eq(shmkit_chan_send(b, &v, sizeof(v), 0), -EBUSY);
	cr_expect(strstr(shmkit_errdetail(), "producer role"), "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_chan_reserve(b, &w, 0), -EBUSY);
	cr_expect_eq(sk_test_reap(sk_test_fork(child_send, (void *)name)), 0, "another process: -EBUSY");
	cr_expect_eq(sk_test_reap(sk_test_fork(child_inherited, a)), 0, "a forked child: -EBUSY");
	cr_assert_eq(shmkit_chan_send(a, &v, sizeof(v), 0), 0, "the role is still ours: %s", shmkit_errdetail());

	cr_assert_eq(shmkit_chan_peek(b, &p, 0), (ssize_t)sizeof(v));
	cr_expect_eq(shmkit_chan_recv(a, &v, sizeof(v), 0), -EBUSY, "b is the consumer");
	cr_expect(strstr(shmkit_errdetail(), "consumer role"), "%s", shmkit_errdetail());
	cr_assert_eq(shmkit_chan_release(b), 0);
	shmkit_chan_stats(a, &st);
	cr_expect_eq(st.sent, 2, "refused calls sent nothing");
	cr_expect_eq(st.received, 1);
	cr_expect_eq(st.reclaimed, 0);

	cr_assert_eq(shmkit_chan_close(b), 0, "gives the consumer role back");
	cr_assert_eq(shmkit_chan_recv(a, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	cr_assert_eq(shmkit_chan_close(a), 0);
	cr_assert_eq(shmkit_chan_open(&b, name, NULL), 0);
	cr_expect_eq(shmkit_chan_send(b, &v, sizeof(v), 0), 0, "the producer role is free again");
	shmkit_chan_stats(b, &st);
	cr_expect_eq(st.producer, (uint32_t)getpid());
	cr_expect_eq(st.consumer, 0);
	shmkit_chan_close(b);
}

/* Many processes race for the producer role of a fresh SPSC channel at
 * the same instant: exactly one wins, every other gets -EBUSY, and the
 * channel holds exactly the winner's message. */
struct role_race {
	struct board *b;
	const char *name;
	uint32_t done; /* futex word: the test has counted */
};

static int role_racer(void *arg)
{
	struct role_race *rr = arg;
	shmkit_chan *ch = NULL;
	uint64_t v = (uint64_t)getpid();

	if (shmkit_chan_open(&ch, rr->name, NULL))
		return 20;
	gate_wait(&rr->b->go);
	int r = shmkit_chan_send(ch, &v, sizeof(v), 0);
	sk_fetch_add(&rr->b->taken, 1, __ATOMIC_RELEASE); /* pairs with the test's acquire poll */
	gate_wait(&rr->done); /* hold the role until every racer has tried */
	shmkit_chan_close(ch);
	return r == 0 ? 0 : r == -EBUSY ? 1 : 21;
}

Test(chan_stress, spsc_role_race_has_one_winner)
{
	enum { RACERS = 6 };
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 8, .flags = SHMKIT_EXCL | SHMKIT_CHAN_SPSC };
	shmkit_chan *ch;
	struct role_race *rr = mmap(NULL, sizeof(*rr), PROT_READ | PROT_WRITE,
	                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[RACERS];
	unsigned won = 0, busy = 0;

	cr_assert_neq(rr, MAP_FAILED);
	rr->b = board_new();
	rr->name = name;
	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	for (int i = 0; i < RACERS; i++)
		pids[i] = sk_test_fork(role_racer, rr);
	gate_open(&rr->b->go);
	int64_t end = sk_now_ns() + BOUND;
	while (sk_load_acquire(&rr->b->taken) < RACERS && sk_now_ns() < end)
		usleep(1000);
	gate_open(&rr->done);
	for (int i = 0; i < RACERS; i++) {
		int rc = sk_test_reap(pids[i]);
		won += rc == 0;
		busy += rc == 1;
	}
	cr_expect_eq(won, 1, "%u racers won the producer role", won);
	cr_expect_eq(busy, RACERS - 1);
	struct shmkit_chan_stats st;
	shmkit_chan_stats(ch, &st);
	cr_expect_eq(st.sent, 1);
	cr_expect_eq(st.producer, 0, "the winner gave the role back on close");
	shmkit_chan_close(ch);
	munmap(rr->b, sizeof(*rr->b));
	munmap(rr, sizeof(*rr));
}

/* An SPSC consumer that polls in a tight loop keeps finding the ring
 * empty just after taking a message, when the producer's tail store for
 * it may not be visible yet: that must read as empty, never as corrupt
 * indices (test_chan.c corrupt_indices_spsc builds that state by hand;
 * this is the same situation arising for real, when timing allows).
 * Every message arrives once, in order. */
#define POLL_MSGS 300000

/* Pin to one CPU when there are two, so producer and consumer truly run
 * at once (unpinned, they may share a core and never race). */
static void pin_to(int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) < 2 || !CPU_ISSET(cpu, &set))
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int poll_producer(void *arg)
{
	shmkit_chan *ch = arg;

	pin_to(1);
	uint64_t msg[8] = { 0 }; /* 64 bytes: the slot spans two cache lines */
	for (uint64_t i = 0; i < POLL_MSGS; i++) {
		int r;
		msg[0] = i;
		while ((r = shmkit_chan_send(ch, msg, sizeof(msg), 0)) == -EAGAIN)
			sk_cpu_relax();
		if (r)
			return 1;
	}
	return 0;
}

Test(chan_stress, spsc_polling_consumer_never_sees_corruption)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 1024, .max_msg = 64, .flags = SHMKIT_CHAN_SPSC,
	                              .wait = SHMKIT_WAIT_SPIN };
	shmkit_chan *ch;
	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	pid_t pid = sk_test_fork(poll_producer, ch);
	pin_to(0);
	uint64_t want = 0, msg[8];
	int64_t deadline = sk_now_ns() + BOUND;
	while (want < POLL_MSGS && sk_now_ns() < deadline) {
		/* Alternate polling and bounded waits: both end in the check
		 * of head against tail when the ring is found empty. */
		ssize_t n = shmkit_chan_recv(ch, msg, sizeof(msg), (want & 1) ? BOUND : 0);
		if (n == -EAGAIN) {
			sk_cpu_relax();
			continue;
		}
		if (n != (ssize_t)sizeof(msg)) {
			kill(pid, SIGKILL);
			sk_test_reap(pid);
			cr_assert_fail("recv after %llu messages: %s (%s)", (unsigned long long)want,
			               shmkit_strerror((int)n), shmkit_errdetail());
		}
		if (msg[0] != want) {
			kill(pid, SIGKILL);
			sk_test_reap(pid);
			cr_assert_fail("message %llu arrived as %llu", (unsigned long long)want,
			               (unsigned long long)msg[0]);
		}
		want++;
	}
	cr_expect_eq(sk_test_reap(pid), 0);
	cr_expect_eq(want, POLL_MSGS, "only %llu of %d messages in the bound",
	             (unsigned long long)want, POLL_MSGS);
	shmkit_chan_close(ch);
}
