/*
 * test_bus.c - the publish/subscribe bus across processes, on every
 * backend: sequence checks (no duplicate, no reorder, losses reported
 * exactly equal to the gaps in overwrite mode, none in back-pressure
 * mode), late joins, killed peers, an epoll subscriber, torn-message races.
 *
 * Subscribers are exec'd helpers (helper_bus, unrelated processes) on
 * named backends and forked children running the same code (included from
 * helper_bus.c) everywhere; anon and memfd buses are shared by fork only.
 * Every peer reports through a pipe; every child is reaped; every wait is
 * bounded; nothing asserts on timing.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"

#define HELPER_BUS_NO_MAIN
#include "helper_bus.c"

#define SEC 1000000000LL

TestSuite(bus, .timeout = 120, .fini = sk_test_cleanup);

/* ---- peers ---------------------------------------------------------------- */

struct peer {
	pid_t pid;
	int out;             /* read end of its stdout */
};

/* Read one line from a peer (bounded), into line. */
static void peer_line(struct peer *p, char *line, size_t len, const char *want)
{
	size_t n = 0;
	while (n + 1 < len) {
		struct pollfd pfd = { .fd = p->out, .events = POLLIN };
		cr_assert_eq(poll(&pfd, 1, 30000), 1, "peer %d silent (waiting for %s)", p->pid, want);
		ssize_t k = read(p->out, line + n, 1);
		cr_assert_eq(k, 1, "peer %d closed its output (waiting for %s)", p->pid, want);
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	cr_assert_str_eq(line, want, "peer %d said '%s', not '%s'", p->pid, line, want);
}

static void peer_exec(struct peer *p, const char *const argv[])
{
	p->pid = sk_test_spawn(argv, -1, &p->out);
	cr_assert_gt(p->pid, 0, "spawn %s: %s", argv[0], shmkit_strerror(p->pid));
}

enum sub_kind { SUB_RECV, SUB_PEEK, SUB_EPOLL };

struct fork_sub_arg {
	shmkit_bus *bus;
	int out;
	int from;
	enum sub_kind kind;
};

static int fork_sub_main(void *argp)
{
	struct fork_sub_arg *a = argp;
	struct shmkit_bus_opts o = { .from = a->from };
	shmkit_sub *sub;
	struct hb_check c;
	struct shmkit_bus_stats st;

	memset(&c, 0, sizeof(c));
	dup2(a->out, STDOUT_FILENO);
	if (shmkit_bus_subscribe(&sub, a->bus, &o) || shmkit_bus_stats(a->bus, &st))
		return 3;
	printf("ready\n");
	fflush(stdout);
	int r = a->kind == SUB_PEEK ? hb_peek_loop(sub, &c, st.max_msg)
	      : a->kind == SUB_EPOLL ? hb_epoll_loop(sub, &c, st.max_msg)
	      : hb_sub_loop(sub, &c, st.max_msg);
	hb_print(&c);
	shmkit_bus_unsubscribe(sub);
	return r ? 1 : 0;
}

/* A subscriber forked off the test process, on the inherited handle. */
static void peer_fork_sub(struct peer *p, shmkit_bus *bus, int from, enum sub_kind kind)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct fork_sub_arg a = { bus, fds[1], from, kind };
	p->pid = sk_test_fork(fork_sub_main, &a);
	close(fds[1]);
	cr_assert_gt(p->pid, 0);
	p->out = fds[0];
}

/* Collect a subscriber's summary: "ok RECEIVED LOST GAPS". */
static void peer_result(struct peer *p, struct hb_result *r)
{
	char buf[256];
	int code = sk_test_finish(p->pid, p->out, buf, sizeof(buf));
	unsigned long long a, b, c;
	cr_assert_eq(sscanf(buf, "ok %llu %llu %llu", &a, &b, &c), 3,
	             "subscriber %d (exit %d): %s", p->pid, code, buf);
	cr_assert_eq(code, 0, "subscriber %d exit %d", p->pid, code);
	r->received = a, r->lost = b, r->gaps = c;
}

struct fork_pub_arg {
	shmkit_bus *bus;
	const char *name;    /* NULL: use the inherited handle */
	uint32_t id, fill;
	uint64_t count;
};

static int fork_pub_main(void *argp)
{
	struct fork_pub_arg *a = argp;
	shmkit_bus *bus = a->bus;

	if (a->name && shmkit_bus_open(&bus, a->name, NULL))
		return 3;
	int err = hb_pub(bus, a->id, a->count, a->fill);
	if (a->name)
		shmkit_bus_close(bus);
	return err ? 10 + (-err & 0x7f) : 0;
}

static bool named(const char *backend)
{
	return strcmp(backend, "anon") && strcmp(backend, "memfd");
}

static shmkit_bus *make_bus(const char *name, uint32_t cap, uint32_t max_msg, int delivery)
{
	struct shmkit_bus_opts o = { .capacity = cap, .max_msg = max_msg, .delivery = delivery,
	                             .flags = SHMKIT_EXCL };
	shmkit_bus *bus;
	int err = shmkit_bus_create(&bus, name, &o);
	cr_assert_eq(err, 0, "create %s: %s (%s)", name, shmkit_strerror(err), shmkit_errdetail());
	return bus;
}

/* ---- the sequence scenario ----------------------------------------------- */

struct scenario {
	const char *backend;
	int delivery;
	uint32_t cap, fill;
	int npub;
	uint64_t count;
	enum sub_kind kinds[4];
	int nsub;
};

static void run_scenario(const struct scenario *sc)
{
	const char *name = sk_test_new_name(sc->backend);
	cr_assert_not_null(name);
	shmkit_bus *bus = make_bus(name, sc->cap, (uint32_t)sizeof(struct hb_msg) + sc->fill,
	                           sc->delivery);
	struct peer subs[4], pubs[HB_MAXPUB];
	char line[64];

	for (int i = 0; i < sc->nsub; i++) {
		/* On named backends every other plain subscriber is exec'd. */
		if (named(sc->backend) && sc->kinds[i] != SUB_PEEK && i % 2 == 0) {
			const char *argv[] = { "helper_bus", sc->kinds[i] == SUB_EPOLL ? "epoll" : "sub",
			                       name, "1", "newest", NULL };
			peer_exec(&subs[i], argv);
		} else {
			peer_fork_sub(&subs[i], bus, SHMKIT_FROM_NEWEST, sc->kinds[i]);
		}
	}
	for (int i = 0; i < sc->nsub; i++)
		peer_line(&subs[i], line, sizeof(line), "ready");
	/* Start barrier passed: every subscriber has joined. */
	struct fork_pub_arg pa[HB_MAXPUB];
	for (int i = 0; i < sc->npub; i++) {
		pa[i] = (struct fork_pub_arg){ bus, named(sc->backend) ? name : NULL, (uint32_t)i,
		                               sc->fill, sc->count };
		pubs[i].pid = sk_test_fork(fork_pub_main, &pa[i]);
		cr_assert_gt(pubs[i].pid, 0);
	}
	for (int i = 0; i < sc->npub; i++) {
		int code = sk_test_reap(pubs[i].pid);
		cr_assert_eq(code, 0, "publisher %d failed: exit %d (10 + errno)", i, code);
	}
	char end[sizeof(struct hb_msg)];
	size_t n = hb_make_end(end, (uint32_t)sc->npub, (uint32_t)sc->count);
	cr_assert_eq(shmkit_bus_publish(bus, end, n, 30 * SEC), 0);
	for (int i = 0; i < sc->nsub; i++) {
		struct hb_result r;
		peer_result(&subs[i], &r);
		cr_assert_eq(r.received + r.gaps, (uint64_t)sc->npub * sc->count,
		             "sub %d: received %llu + gaps %llu", i, (unsigned long long)r.received,
		             (unsigned long long)r.gaps);
		cr_assert_eq(r.lost, r.gaps, "sub %d: reported lost %llu, saw gaps %llu", i,
		             (unsigned long long)r.lost, (unsigned long long)r.gaps);
		if (sc->delivery == SHMKIT_BUS_BACKPRESSURE)
			cr_assert_eq(r.lost, 0, "sub %d lost %llu in back-pressure mode", i,
			             (unsigned long long)r.lost);
	}
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

static const char *const backends[] = { "posix", "sysv", "file", "anon", "memfd" };

static void overwrite_on(const char *backend)
{
	struct scenario sc = { backend, SHMKIT_BUS_OVERWRITE, 16, 40, 2, 20000,
	                       { SUB_RECV, SUB_RECV, SUB_PEEK }, 3 };
	run_scenario(&sc);
}

static void backpressure_on(const char *backend)
{
	struct scenario sc = { backend, SHMKIT_BUS_BACKPRESSURE, 16, 40, 2, 5000,
	                       { SUB_RECV, SUB_RECV, SUB_PEEK }, 3 };
	run_scenario(&sc);
}

Test(bus, overwrite_posix) { overwrite_on(backends[0]); }
Test(bus, overwrite_sysv) { overwrite_on(backends[1]); }
Test(bus, overwrite_file) { overwrite_on(backends[2]); }
Test(bus, overwrite_anon) { overwrite_on(backends[3]); }
Test(bus, overwrite_memfd) { overwrite_on(backends[4]); }
Test(bus, backpressure_posix) { backpressure_on(backends[0]); }
Test(bus, backpressure_sysv) { backpressure_on(backends[1]); }
Test(bus, backpressure_file) { backpressure_on(backends[2]); }
Test(bus, backpressure_anon) { backpressure_on(backends[3]); }
Test(bus, backpressure_memfd) { backpressure_on(backends[4]); }

/* A tiny ring of large messages: overwrite races every reader, copying
 * and in place; the pattern check proves no torn message gets through. */
Test(bus, overwrite_never_torn)
{
	struct scenario sc = { "posix", SHMKIT_BUS_OVERWRITE, 2, 32768, 1, 3000,
	                       { SUB_RECV, SUB_PEEK, SUB_RECV }, 3 };
	run_scenario(&sc);
}

/* An exec'd subscriber sitting in epoll on shmkit_sub_fd, and a forked one. */
Test(bus, epoll_subscribers)
{
	struct scenario sc = { "posix", SHMKIT_BUS_BACKPRESSURE, 8, 16, 1, 3000,
	                       { SUB_EPOLL, SUB_EPOLL }, 2 };
	run_scenario(&sc);
	struct scenario ov = { "anon", SHMKIT_BUS_OVERWRITE, 8, 16, 2, 3000,
	                       { SUB_EPOLL }, 1 };
	run_scenario(&ov);
}

/* ---- single process ---------------------------------------------------------- */

static void pub_seq(shmkit_bus *bus, uint64_t from, uint64_t to)
{
	char buf[sizeof(struct hb_msg)];
	for (uint64_t s = from; s < to; s++) {
		size_t n = hb_make(buf, 0, s, 0);
		int err = shmkit_bus_publish(bus, buf, n, 0);
		cr_assert_eq(err, 0, "publish %llu: %s", (unsigned long long)s, shmkit_strerror(err));
	}
}

/* Receive one message and return its per-publisher sequence. */
static uint64_t recv_seq(shmkit_sub *sub, uint64_t *lost)
{
	char buf[64];
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), lost, 10 * SEC);
	cr_assert_eq(n, (ssize_t)sizeof(struct hb_msg), "recv: %zd %s", n, shmkit_strerror((int)n));
	return ((struct hb_msg *)buf)->seq;
}

Test(bus, late_join_newest_and_oldest)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 16, 64, SHMKIT_BUS_OVERWRITE);
	shmkit_sub *newest, *oldest, *early;
	struct shmkit_bus_opts old = { .from = SHMKIT_FROM_OLDEST };
	uint64_t lost;
	char buf[64];

	cr_assert_eq(shmkit_bus_subscribe(&early, bus, NULL), 0);
	pub_seq(bus, 0, 10);
	cr_assert_eq(shmkit_bus_subscribe(&newest, bus, NULL), 0);
	cr_assert_eq(shmkit_bus_subscribe(&oldest, bus, &old), 0);
	cr_assert_eq(shmkit_sub_recv(newest, buf, sizeof(buf), NULL, 0), -EAGAIN);
	for (uint64_t s = 0; s < 10; s++) {
		cr_assert_eq(recv_seq(oldest, &lost), s);
		cr_assert_eq(lost, 0);
	}
	pub_seq(bus, 10, 11);
	cr_assert_eq(recv_seq(newest, &lost), 10);
	cr_assert_eq(lost, 0);
	pub_seq(bus, 11, 40); /* 40 published, 16 retained: 24..39 */
	cr_assert_eq(recv_seq(newest, &lost), 24, "a lapped reader resumes at the oldest retained");
	cr_assert_eq(lost, 13);
	cr_assert_eq(recv_seq(early, &lost), 24);
	cr_assert_eq(lost, 24);
	cr_assert_eq(recv_seq(oldest, &lost), 24);
	cr_assert_eq(lost, 14);
	shmkit_sub *late;
	cr_assert_eq(shmkit_bus_subscribe(&late, bus, &old), 0);
	cr_assert_eq(recv_seq(late, &lost), 24);
	cr_assert_eq(lost, 0);
	shmkit_bus_unsubscribe(late);
	shmkit_bus_unsubscribe(newest);
	shmkit_bus_unsubscribe(oldest);
	shmkit_bus_unsubscribe(early);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

Test(bus, backpressure_full_and_oldest)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 64, SHMKIT_BUS_BACKPRESSURE);
	shmkit_sub *sub, *late;
	struct shmkit_bus_opts old = { .from = SHMKIT_FROM_OLDEST };
	char buf[sizeof(struct hb_msg)];
	uint64_t lost;

	pub_seq(bus, 0, 20); /* nobody subscribed: never full */
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, &old), 0);
	cr_assert_eq(recv_seq(sub, &lost), 13, "back-pressure keeps capacity - 1 for joiners");
	pub_seq(bus, 20, 22); /* sub at 14: claims up to 21 fit */
	size_t n = hb_make(buf, 0, 99, 0);
	cr_assert_eq(shmkit_bus_publish(bus, buf, n, 0), -EAGAIN);
	cr_assert_eq(shmkit_bus_publish(bus, buf, n, 20 * 1000000LL), -ETIMEDOUT);
	cr_assert_eq(recv_seq(sub, &lost), 14);
	cr_assert_eq(shmkit_bus_publish(bus, buf, n, 0), 0);
	cr_assert_eq(shmkit_bus_subscribe(&late, bus, &old), 0); /* head 23: from 16 */
	for (uint64_t s = 15; s < 22; s++) {
		cr_assert_eq(recv_seq(sub, &lost), s);
		cr_assert_eq(lost, 0);
	}
	cr_assert_eq(recv_seq(sub, &lost), 99);
	cr_assert_eq(lost, 0);
	cr_assert_eq(recv_seq(late, &lost), 16);
	cr_assert_eq(lost, 0);
	shmkit_bus_unsubscribe(late);
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

/* Each slot fills whole 128-byte pairs, starting on their boundary
 * (SK_PAIR, layout 4): a loan's buffer is 16 bytes into its pair, for
 * small messages as for larger ones. */
Test(bus, slots_fill_prefetch_pairs)
{
	static const uint32_t sizes[] = { 8, 48, 64, 200 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		const char *name = sk_test_new_name("posix");
		shmkit_bus *bus = make_bus(name, 8, sizes[k], SHMKIT_BUS_OVERWRITE);
		for (int i = 0; i < 8; i++) {
			void *p;
			cr_assert_eq(shmkit_bus_loan(bus, &p, 0), 0);
			uintptr_t a = (uintptr_t)p;
			cr_expect_eq((a - 16) & 127, 0, "max %u, slot %d starts %u bytes into its pair",
			             sizes[k], i, (unsigned)((a - 16) & 127));
			cr_assert_eq(shmkit_bus_publish_loan(bus, 1), 0);
		}
		cr_assert_eq(shmkit_bus_close(bus), 0);
	}
}

Test(bus, loans_peek_and_errors)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 4, 32, SHMKIT_BUS_OVERWRITE), *again;
	shmkit_sub *sub;
	void *p;
	const void *cp;
	char buf[64];
	uint64_t lost = 7;

	cr_assert_eq(shmkit_bus_open(&again, name, NULL), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, again, NULL), 0);
	cr_assert_eq(shmkit_bus_close(again), -EBUSY);
	cr_assert_eq(shmkit_bus_loan(bus, &p, 0), 0);
	cr_assert_eq(shmkit_bus_loan(bus, &p, 0), -EINVAL);
	cr_assert_eq(shmkit_bus_publish(bus, "x", 1, 0), -EINVAL);
	cr_assert_eq(shmkit_bus_abort_loan(bus), 0);
	cr_assert_eq(shmkit_bus_loan(bus, &p, 0), 0);
	memcpy(p, "hello", 5);
	cr_assert_eq(shmkit_bus_publish_loan(bus, 33), -EMSGSIZE);
	cr_assert_eq(shmkit_bus_publish_loan(bus, 5), 0);
	cr_assert_eq(shmkit_bus_publish_loan(bus, 5), -EINVAL);
	cr_assert_eq(shmkit_bus_publish(bus, buf, 33, 0), -EMSGSIZE);
	cr_assert_eq(shmkit_bus_publish(bus, "", 0, 0), 0);
	/* The aborted loan is passed silently. */
	cr_assert_eq(shmkit_sub_recv(sub, buf, 2, &lost, 0), -EMSGSIZE);
	cr_assert_eq(shmkit_sub_peek(sub, &cp, &lost, 0), 5);
	cr_assert_eq(lost, 0);
	cr_assert_eq(memcmp(cp, "hello", 5), 0);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), -EINVAL);
	cr_assert_eq(shmkit_sub_release(sub), 0);
	cr_assert_eq(shmkit_sub_release(sub), -EINVAL);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 0), 0);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 0), -EAGAIN);
	/* Peeked, then overwritten: release says -ESTALE and counts it. */
	cr_assert_eq(shmkit_bus_publish(bus, "abc", 3, 0), 0);
	cr_assert_eq(shmkit_sub_peek(sub, &cp, &lost, 0), 3);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(shmkit_bus_publish(bus, "def", 3, 0), 0);
	cr_assert_eq(shmkit_sub_release(sub), -ESTALE);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 0), 3);
	cr_assert_eq(lost, 1);
	cr_assert_eq(memcmp(buf, "def", 3), 0);
	/* Bad arguments. */
	struct shmkit_bus_opts bad = { .delivery = 7 };
	shmkit_bus *b2;
	cr_assert_eq(shmkit_bus_create(&b2, "posix:/sktest-never", &bad), -EINVAL);
	cr_assert_eq(shmkit_bus_open(&b2, "posix:/sktest-none-at-all", NULL), -ENOENT);
	cr_assert_eq(shmkit_bus_create(&b2, name, &(struct shmkit_bus_opts){ .flags = SHMKIT_EXCL }),
	             -EEXIST);
	cr_assert_eq(shmkit_bus_subscribe(NULL, bus, NULL), -EINVAL);
	cr_assert_eq(shmkit_sub_ack_fd(sub), -EINVAL);
	cr_assert_eq(shmkit_bus_unsubscribe(sub), 0);
	cr_assert_eq(shmkit_bus_close(again), 0);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

struct peer_seen {
	int pubs, subs, dead;
	uint64_t lag;
};

static int count_peer(const struct shmkit_bus_peer *p, void *arg)
{
	struct peer_seen *s = arg;
	if (p->alive != 1) {
		s->dead++;
		return 0;
	}
	if (p->pid != getpid())
		return 0;
	if (p->subscriber)
		s->subs++, s->lag = p->lag;
	else
		s->pubs++;
	return 0;
}

Test(bus, stats_and_peers)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 100, 10, SHMKIT_BUS_OVERWRITE);
	shmkit_sub *sub;
	struct shmkit_bus_stats st;

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	cr_assert_eq(shmkit_bus_publish(bus, "a", 1, 0), 0);
	cr_assert_eq(shmkit_bus_publish(bus, "b", 1, 0), 0);
	cr_assert_eq(shmkit_bus_stats(bus, &st), 0);
	cr_assert_eq(st.capacity, 128, "capacity rounds up to a power of 2");
	cr_assert_eq(st.max_msg, 10);
	cr_assert_eq(st.head, 2);
	cr_assert_eq(st.publishers, 1);
	cr_assert_eq(st.subscribers, 1);
	struct peer_seen seen = { 0, 0, 0, 0 };
	cr_assert_eq(shmkit_bus_peers(bus, count_peer, &seen), 0);
	cr_assert_eq(seen.dead, 0);
	cr_assert_eq(seen.pubs, 1);
	cr_assert_eq(seen.subs, 1);
	cr_assert_eq(seen.lag, 2);
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

/* The fd: not readable while nothing waits, readable after a publish,
 * quiet again after ack + drain; nothing left after unsubscribe. */
Test(bus, fd_readiness_and_no_residue)
{
	const char *name = sk_test_new_name("posix");
	int fds0 = sk_test_fd_count();
	shmkit_bus *bus = make_bus(name, 8, 16, SHMKIT_BUS_OVERWRITE);
	shmkit_sub *sub;
	char buf[16];

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	int fd = shmkit_sub_fd(sub);
	cr_assert_geq(fd, 0);
	cr_assert_eq(shmkit_sub_fd(sub), fd);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0);
	cr_assert_eq(shmkit_bus_publish(bus, "m1", 2, 0), 0);
	cr_assert_eq(poll(&pfd, 1, 10000), 1);
	cr_assert_eq(shmkit_sub_ack_fd(sub), 0);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 2);
	cr_assert_eq(shmkit_sub_ack_fd(sub), 0);
	cr_assert_eq(poll(&pfd, 1, 0), 0);
	/* Published between the drain and the re-arm: arming sees it. */
	cr_assert_eq(shmkit_bus_publish(bus, "m2", 2, 0), 0);
	cr_assert_eq(shmkit_sub_ack_fd(sub), 0);
	cr_assert_eq(poll(&pfd, 1, 10000), 1);
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
	cr_assert_eq(sk_test_fd_count(), fds0, "an fd leaked");
	cr_assert_eq(shmkit_seg_remove(name), 0);
	cr_assert_eq(sk_test_exists(name), 0);
}

/* ---- killed peers ------------------------------------------------------------- */

/* A back-pressure subscriber SIGKILLed while reading in place: the
 * publisher is blocked by it while it lives and proceeds once it is dead. */
Test(bus, subscriber_killed_mid_read)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 32, SHMKIT_BUS_BACKPRESSURE);
	struct peer p;
	char line[32];
	const char *argv[] = { "helper_bus", "peek", name, NULL };

	peer_exec(&p, argv);
	peer_line(&p, line, sizeof(line), "ready");
	cr_assert_eq(shmkit_bus_publish(bus, "first", 5, 0), 0);
	peer_line(&p, line, sizeof(line), "peeked");
	for (int i = 1; i < 8; i++)
		cr_assert_eq(shmkit_bus_publish(bus, "fill", 4, 0), 0);
	cr_assert_eq(shmkit_bus_publish(bus, "full", 4, 0), -EAGAIN, "a live reader holds the ring");
	kill(p.pid, SIGKILL);
	cr_assert_eq(sk_test_finish(p.pid, p.out, line, sizeof(line)), 128 + SIGKILL);
	for (int i = 0; i < 32; i++) {
		int err = shmkit_bus_publish(bus, "after", 5, 30 * SEC);
		cr_assert_eq(err, 0, "publish after the reader died: %s", shmkit_strerror(err));
	}
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

/* A publisher SIGKILLed holding a loan: subscribers pass its slot (counted
 * lost) and go on, in both modes. */
static void publisher_killed(int delivery)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 32, delivery);
	shmkit_sub *sub;
	struct peer p;
	char line[32], buf[32];
	const char *argv[] = { "helper_bus", "loan", name, NULL };
	uint64_t lost = 0;

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	peer_exec(&p, argv);
	peer_line(&p, line, sizeof(line), "loaned");
	kill(p.pid, SIGKILL);
	cr_assert_eq(sk_test_finish(p.pid, p.out, line, sizeof(line)), 128 + SIGKILL);
	cr_assert_eq(shmkit_bus_publish(bus, "next", 4, 10 * SEC), 0);
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 30 * SEC);
	cr_assert_eq(n, 4, "recv: %s", shmkit_strerror((int)n));
	cr_assert_eq(memcmp(buf, "next", 4), 0);
	cr_assert_eq(lost, 1, "the abandoned loan counts as one lost message");
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

Test(bus, publisher_killed_mid_loan_overwrite) { publisher_killed(SHMKIT_BUS_OVERWRITE); }
Test(bus, publisher_killed_mid_loan_backpressure) { publisher_killed(SHMKIT_BUS_BACKPRESSURE); }

/* After a dead publisher's hole: the next message published is the one
 * received, nothing counted lost (the hole carried no message), and
 * nothing else is there. */
static void next_passes_hole(shmkit_bus *bus, shmkit_sub *sub, const char *why)
{
	uint64_t lost = 99;
	char buf[32];

	cr_assert_eq(shmkit_bus_publish(bus, "next", 4, 10 * SEC), 0);
	ssize_t n = shmkit_sub_recv(sub, buf, sizeof(buf), &lost, 30 * SEC);
	cr_assert_eq(n, 4, "recv: %s", shmkit_strerror((int)n));
	cr_assert_eq(memcmp(buf, "next", 4), 0);
	cr_assert_eq(lost, 0, "%s", why);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), -EAGAIN);
}

/* A publisher that died between claiming a sequence (P1 in bus_pub.c: head
 * advanced) and taking its slot (P3) leaves a hole that no slot word
 * describes.  Built by hand through a raw attach of the same segment, at
 * the documented offset of head.  Subscribers must pass it silently (it
 * carried no message) within a bounded time, in both modes. */
static void claim_abandoned(int delivery)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 32, delivery);
	struct shmkit_seg_opts raw_opts = { .flags = SHMKIT_RAW };
	shmkit_sub *sub;
	shmkit_seg *raw;

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	cr_assert_eq(shmkit_seg_open(&raw, name, &raw_opts), 0);
	/* Data area after the 4096-byte segment header; head at offset 128. */
	uint64_t *head = (uint64_t *)(void *)((char *)shmkit_seg_data(raw) + 4096 + 128);
	cr_assert_eq(__atomic_load_n(head, __ATOMIC_SEQ_CST), 0);
	__atomic_fetch_add(head, 1, __ATOMIC_SEQ_CST); /* a claim, then death */
	next_passes_hole(bus, sub, "an abandoned claim carried no message: nothing is lost");
	shmkit_seg_close(raw);
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

Test(bus, claim_abandoned_overwrite) { claim_abandoned(SHMKIT_BUS_OVERWRITE); }
Test(bus, claim_abandoned_backpressure) { claim_abandoned(SHMKIT_BUS_BACKPRESSURE); }

/* A publisher killed between claiming its sequence's slot and marking it
 * (crash point bus.claimed: the claim word names it, the slot word still
 * shows the previous lap) leaves a sequence that only its claim
 * describes.  Subscribers must pass it silently (it carried no message)
 * within a bounded time, and the next publisher is not held up, in both
 * modes. */
static void killed_before_mark(int delivery)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 32, delivery);
	shmkit_sub *sub;
	char helper[4096], out[64], buf[32];

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	snprintf(helper, sizeof(helper), "%s/helper_bus", sk_test_dir());
	const char *argv[] = { "/usr/bin/env", "SHMKIT_CRASH_AT=bus.claimed", helper, "say", name,
	                       "never", NULL };
	pid_t pub = sk_test_spawn(argv, -1, NULL);
	cr_assert_gt(pub, 0);
	cr_assert_eq(sk_test_finish(pub, -1, out, sizeof(out)), 128 + SIGKILL,
	             "the publisher died at the crash point");
	next_passes_hole(bus, sub, "a claim never marked carried no message: nothing is lost");
	/* A lap later the dead claimer's slot is reused. */
	for (int i = 0; i < 8; i++)
		cr_assert_eq(shmkit_bus_publish(bus, "lap", 3, 10 * SEC), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 10 * SEC), 3, "lap %d", i);
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

Test(bus, publisher_killed_before_marking_overwrite) { killed_before_mark(SHMKIT_BUS_OVERWRITE); }
Test(bus, publisher_killed_before_marking_backpressure)
{
	killed_before_mark(SHMKIT_BUS_BACKPRESSURE);
}

/* A bus of an older layout (version 2: claims in the slot word) is
 * refused with a clear error, never misread. */
Test(bus, older_layout_is_eproto)
{
	const char *name = sk_test_new_name("posix");
	shmkit_bus *bus = make_bus(name, 8, 32, SHMKIT_BUS_OVERWRITE), *again;
	struct shmkit_seg_opts raw_opts = { .flags = SHMKIT_RAW };
	shmkit_seg *raw;

	cr_assert_eq(shmkit_seg_open(&raw, name, &raw_opts), 0);
	/* sk_bus_geom.version (src/bus.h), after the 4096-byte segment header and the magic. */
	uint32_t *version = (uint32_t *)(void *)((char *)shmkit_seg_data(raw) + 4096 + 4);
	cr_assert_eq(*version, 4);
	*version = 3;
	cr_assert_eq(shmkit_bus_open(&again, name, NULL), -EPROTO);
	cr_assert(strstr(shmkit_errdetail(), "version 3"), "detail: %s", shmkit_errdetail());
	shmkit_seg_close(raw);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}

/* A forked child publishing on an inherited handle registers itself. */
static int child_pub(void *arg)
{
	return shmkit_bus_publish(arg, "kid", 3, 10 * SEC) ? 1 : 0;
}

Test(bus, fork_inherited_handle)
{
	shmkit_bus *bus = make_bus("anon", 8, 8, SHMKIT_BUS_OVERWRITE);
	shmkit_sub *sub;
	char buf[8];

	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	cr_assert_eq(shmkit_bus_publish(bus, "mom", 3, 0), 0);
	cr_assert_eq(sk_test_reap(sk_test_fork(child_pub, bus)), 0);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 3);
	cr_assert_eq(memcmp(buf, "mom", 3), 0);
	cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 3);
	cr_assert_eq(memcmp(buf, "kid", 3), 0);
	struct peer_seen seen = { 0, 0, 0, 0 };
	cr_assert_eq(shmkit_bus_peers(bus, count_peer, &seen), 0);
	cr_assert_eq(seen.pubs, 1);
	cr_assert_eq(seen.dead, 1, "the exited child is listed dead");
	shmkit_bus_unsubscribe(sub);
	cr_assert_eq(shmkit_bus_close(bus), 0);
}
