/*
 * stress_tsan.c - concurrency stress for ThreadSanitizer, outside Criterion
 * (whose runner cannot start under TSan).  `make tsan` builds it and the
 * library with -fsanitize=thread and runs it; `make test SAN=thread` runs
 * it in place of the Criterion suite.  A plain build runs it too.
 *
 * TSan sees threads of one process only, so every scenario runs several
 * threads in this process, each with its own handle (its own open, its
 * own subscription, its own fd), and adds child processes (this program
 * exec'd again with --child) as cross-process load that TSan does not
 * watch but the checks count.
 *
 *   chan-spsc         1 producer, 1 consumer thread; send/recv and
 *                     reserve/commit/abort, peek/release
 *   chan-mpmc         2 producer threads + 1 producer process, 2 consumer
 *                     threads (one on the pollable fd)
 *   bus-backpressure  2 publisher threads (publish, loan/publish/abort),
 *                     3 subscriber threads (one on the fd) + 1 subscriber
 *                     process: every message to every subscriber, in order
 *   bus-overwrite     2 publisher threads + 1 publisher process, loans;
 *                     3 subscribers, one slow: order, lost counts
 *   journal           a writer thread (group commit, small files: rolls),
 *                     2 follower threads, 1 on the fd, 1 follower process
 *   waitfd            the pollable-fd module itself: arm / arm_ec / signal
 *                     from several threads against wakers
 *   sync              futex ping-pong handing data over, event count,
 *                     robust mutex over plain data, semaphore
 *   rpc               2 server threads (one on the fd; answers copied or
 *                     in a loan) and 3 client threads (one on the fd) + 1
 *                     client process: sync calls, async sends (copies
 *                     and loans) waited for in any order, some cancelled,
 *                     some deadlines missed; every answer checked, the
 *                     counts of both sides and the service's agree
 * Unless SHMKIT_WAITFD is set, the fd scenarios then run again in a child
 * with SHMKIT_WAITFD=thread (the first pass uses io_uring where the kernel
 * has it), so both kinds of pollable fd are checked.
 *
 * Every message is checked: length, bytes and checksum (stress_kill.h
 * messages, journal_test.h records), order per producer, exactly-once
 * delivery (chan), everything to everyone (back-pressure bus, journal).
 * Every wait is bounded; a scenario that runs out of time fails.  Names
 * follow lib_test.h's rule (run id) and are removed at the end.
 *
 *   stress_tsan [-l] [-s NAME[,NAME...]] [-n PERCENT]
 * Exit 0 if every scenario passed, 1 if one failed (TSan's own exit code,
 * 66 under make tsan, on a report).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "journal_test.h"
#include "lib_test.h"
#include "shmkit.h"
#include "stress_kill.h"
#include "waitfd.h"

#define TMO_NS 5000000000LL     /* one call: ample even under TSan */
#define SLICE_NS 20000000LL     /* receivers look at their stop condition */
#define RUN_NS 60000000000LL    /* one scenario at most */
#define MAX_STREAMS 4
#define MAX_WORKERS 8

static unsigned scale = 100;    /* -n: percent of the default counts */
static const char *scen_name;   /* the scenario running, for messages */
static uint32_t failures;       /* atomic: findings of the scenario */
static int64_t scen_deadline;

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Relaxed: a count read after every thread was joined. */
	sk_fetch_add(&failures, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "stress_tsan: %s: %s\n", scen_name, msg);
	return 1;
}

static int call_fail(const char *call, long err)
{
	return fail("%s: %s (%s)", call, shmkit_strerror((int)err), shmkit_errdetail());
}

static bool late(void)
{
	return sk_now_ns() > scen_deadline;
}

static uint64_t count_of(uint64_t base)
{
	uint64_t n = base * scale / 100;
	return n ? n : 1;
}

/* ---- threads and child processes ---------------------------------------- */

struct worker {
	pthread_t t;
	int (*fn)(struct worker *);
	void *ctx;
	unsigned idx;
	uint64_t rng;
	int rc;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->rc = w->fn(w);
	return NULL;
}

static void start(struct worker *w, int (*fn)(struct worker *), void *ctx, unsigned idx)
{
	*w = (struct worker){ .fn = fn, .ctx = ctx, .idx = idx, .rng = 0x5eed0000u + idx };
	if (pthread_create(&w->t, NULL, worker_main, w)) {
		fail("pthread_create failed");
		w->fn = NULL;
	}
}

static void join_all(struct worker *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (w[i].fn && !pthread_join(w[i].t, NULL) && w[i].rc)
			fail("thread %u (role %u) failed", i, w[i].idx);
}

/* Run this program again with argv (after argv[0]); its stdout on a pipe
 * whose read end goes to *out_fd if out_fd.  It dies with us.  The pid,
 * or -1. */
static pid_t spawn_self(const char *const *args, int *out_fd)
{
	const char *argv[12] = { "/proc/self/exe" };
	int n = 1, pfd[2] = { -1, -1 };

	for (; *args && n < 11; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (out_fd && pipe2(pfd, O_CLOEXEC))
		return -1;
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent || (out_fd && dup2(pfd[1], 1) < 0))
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (out_fd) {
		close(pfd[1]);
		*out_fd = pid > 0 ? pfd[0] : (close(pfd[0]), -1);
	}
	return pid;
}

/* This program as --child ROLE ARGS... */
static pid_t spawn_child(const char *const *args, int *out_fd)
{
	const char *argv[12] = { "--child" };
	int n = 1;

	for (const char *const *a = args; *a && n < 11; a++)
		argv[n++] = *a;
	argv[n] = NULL;
	pid_t pid = spawn_self(argv, out_fd);
	if (pid < 0)
		fail("cannot start child %s: %s", args[0], strerror(errno));
	return pid;
}

/* Wait for a child until the scenario's deadline (then SIGKILL it). */
static void reap_child(pid_t pid, const char *what)
{
	int st;

	if (pid <= 0)
		return;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			fail("waitpid %s: %s", what, strerror(errno));
			return;
		}
		if (late()) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail("child %s did not finish in time", what);
			return;
		}
		usleep(2000);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("child %s: %s %d", what, WIFEXITED(st) ? "exit" : "signal",
		     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* Wait (bounded) for a child's "READY" line on fd. */
static bool child_ready(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16] = "";

	if (poll(&p, 1, 30000) != 1 || read(fd, buf, sizeof(buf) - 1) < 5)
		return false;
	return !strncmp(buf, "READY", 5);
}

/* Bounded poll of one fd for POLLIN; EINTR (io_uring task work in this
 * thread) counts as a wake. */
static void poll_in(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	poll(&p, 1, ms);
}

static void seg_name(char *buf, size_t len, const char *tag)
{
	char base[64];

	snprintf(buf, len, "posix:/%s", sk_test_base(base, sizeof(base), tag));
}

/* ---- checking received messages -------------------------------------------- */

/* What one receiver saw: per-stream order, count, lost. */
struct rxlog {
	uint64_t next[MAX_STREAMS]; /* lowest seq still acceptable per stream */
	uint64_t n, lost;
};

/* Shared by the receivers of a scenario: exactly-once bookkeeping. */
struct rxshared {
	unsigned streams;
	uint64_t count;            /* seqs per stream: 0 .. count-1 */
	uint8_t *seen[MAX_STREAMS];/* chan: atomic flags, one per seq */
	uint64_t total;            /* atomic: messages received by all */
};

/* Check the n bytes at msg.  contiguous: the stream's next seq exactly
 * (every message to every receiver); else increasing.  0 or a finding. */
static int rx_check(struct rxshared *s, struct rxlog *l, const void *msg, size_t n, bool contiguous)
{
	struct smsg_hdr h;
	const char *bad = smsg_check(msg, n, &h);

	if (bad)
		return fail("torn message (%zu bytes): %s", n, bad);
	if (h.stream >= s->streams || h.seq >= s->count)
		return fail("message of unknown stream %u seq %llu", h.stream, (unsigned long long)h.seq);
	if (contiguous ? h.seq != l->next[h.stream] : h.seq < l->next[h.stream])
		return fail("stream %u: seq %llu where %llu was next", h.stream,
		            (unsigned long long)h.seq, (unsigned long long)l->next[h.stream]);
	l->next[h.stream] = h.seq + 1;
	l->n++;
	/* Relaxed flags and count: each a value read after the join; the
	 * exchange itself catches a second delivery. */
	if (s->seen[h.stream] && __atomic_exchange_n(&s->seen[h.stream][h.seq], 1, __ATOMIC_RELAXED))
		return fail("stream %u seq %llu delivered twice", h.stream, (unsigned long long)h.seq);
	sk_fetch_add(&s->total, 1, __ATOMIC_RELAXED);
	return 0;
}

static int rxshared_init(struct rxshared *s, unsigned streams, uint64_t count, bool once)
{
	*s = (struct rxshared){ .streams = streams, .count = count };
	for (unsigned i = 0; once && i < streams; i++)
		if (!(s->seen[i] = calloc(count, 1)))
			return fail("out of memory");
	return 0;
}

static void rxshared_free(struct rxshared *s)
{
	for (unsigned i = 0; i < s->streams; i++)
		free(s->seen[i]);
}

static uint64_t rx_total(struct rxshared *s)
{
	return sk_load_relaxed(&s->total); /* a progress count only */
}

/* ---- channels ------------------------------------------------------------ */

struct chan_ctx {
	char name[128];
	bool spsc;
	struct rxshared rx;
	uint64_t expected;
	uint32_t producers_left;   /* atomic: threads and processes still sending */
	pthread_barrier_t go;
};

static int chan_open_own(struct chan_ctx *c, shmkit_chan **ch, int wait)
{
	struct shmkit_chan_opts o = { .wait = wait, .init_timeout_ns = TMO_NS };
	int e = shmkit_chan_open(ch, c->name, &o);

	return e ? call_fail("chan_open", e) : 0;
}

/* One message (stream, seq): a copy, or reserve + commit; now and then a
 * reserve + abort first (which must deliver nothing). */
static int chan_put(shmkit_chan *ch, uint64_t *rng, unsigned stream, uint64_t seq)
{
	uint8_t m[SK_MSG_MAX];
	unsigned r = (unsigned)sk_rand_below(rng, 16);
	void *p;
	int e;

	if (r < 6)
		return shmkit_chan_send(ch, m, smsg_fill(m, stream, seq), TMO_NS);
	if ((e = shmkit_chan_reserve(ch, &p, TMO_NS)))
		return e;
	size_t len = smsg_fill(p, stream, seq);
	if (r == 6) {
		if ((e = shmkit_chan_abort(ch)))
			return e;
		return shmkit_chan_send(ch, m, smsg_fill(m, stream, seq), TMO_NS);
	}
	return shmkit_chan_commit(ch, len);
}

static int chan_produce(shmkit_chan *ch, uint64_t *rng, unsigned stream, uint64_t count)
{
	for (uint64_t seq = 0; seq < count; seq++) {
		int e = chan_put(ch, rng, stream, seq);
		if (e)
			return call_fail("chan send/commit", e);
	}
	return 0;
}

static int chan_producer(struct worker *w)
{
	struct chan_ctx *c = w->ctx;
	shmkit_chan *ch;

	if (chan_open_own(c, &ch, w->idx & 1 ? SHMKIT_WAIT_BLOCK : SHMKIT_WAIT_ADAPTIVE))
		return 1;
	pthread_barrier_wait(&c->go);
	int rc = chan_produce(ch, &w->rng, w->idx, c->rx.count);
	shmkit_chan_close(ch);
	/* Release: pairs with the consumers' acquire load; after it they
	 * drain and stop. */
	sk_fetch_add(&c->producers_left, -1u, __ATOMIC_RELEASE);
	return rc;
}

/* One message off the channel (recv, or peek + copy + release) into buf:
 * its length, or a negative errno. */
static ssize_t chan_take(shmkit_chan *ch, uint64_t *rng, uint8_t *buf, int64_t tmo)
{
	const void *p;
	ssize_t n;

	if (sk_rand_below(rng, 2))
		return shmkit_chan_recv(ch, buf, SK_MSG_MAX, tmo);
	if ((n = shmkit_chan_peek(ch, &p, tmo)) < 0)
		return n;
	memcpy(buf, p, (size_t)n > SK_MSG_MAX ? SK_MSG_MAX : (size_t)n);
	int e = shmkit_chan_release(ch);
	return e ? e : n;
}

static int chan_consumer(struct worker *w)
{
	struct chan_ctx *c = w->ctx;
	bool use_fd = !c->spsc && w->idx == 1;
	struct rxlog log = { 0 };
	uint8_t buf[SK_MSG_MAX];
	shmkit_chan *ch;
	int fd = -1, rc = 0;

	if (chan_open_own(c, &ch, SHMKIT_WAIT_ADAPTIVE))
		return 1;
	if (use_fd && (fd = shmkit_chan_fd(ch, SHMKIT_CHAN_POLLIN)) < 0)
		rc = call_fail("chan_fd", fd);
	pthread_barrier_wait(&c->go);
	while (!rc && rx_total(&c->rx) < c->expected && !late()) {
		/* Acquire: pairs with the producers' release decrement. */
		bool done = sk_load_acquire(&c->producers_left) == 0;
		uint64_t before = log.n;
		if (use_fd) {
			poll_in(fd, 100);
			int e = shmkit_chan_ack_fd(ch);
			if (e)
				rc = call_fail("chan_ack_fd", e);
		}
		ssize_t n = chan_take(ch, &w->rng, buf, use_fd ? 0 : SLICE_NS);
		while (n >= 0 && !rc) {
			rc = rx_check(&c->rx, &log, buf, (size_t)n, false);
			n = use_fd ? chan_take(ch, &w->rng, buf, 0) : -EAGAIN;
		}
		if (!rc && n != -EAGAIN && n != -ETIMEDOUT)
			rc = call_fail("chan recv/peek", n);
		if (done && log.n == before)
			break; /* drained after the last send: the count tells */
	}
	shmkit_chan_close(ch);
	return rc;
}

static int chan_child(char **argv)
{
	uint64_t rng = (uint64_t)getpid();
	struct shmkit_chan_opts o = { .init_timeout_ns = TMO_NS };
	shmkit_chan *ch;
	int e = shmkit_chan_open(&ch, argv[0], &o);

	if (e)
		return call_fail("chan_open", e);
	e = chan_produce(ch, &rng, (unsigned)atoi(argv[1]), strtoull(argv[2], NULL, 10));
	shmkit_chan_close(ch);
	return e;
}

static int chan_scenario(bool spsc, unsigned prod_threads, unsigned child_prods,
                         unsigned cons_threads, uint64_t count)
{
	struct chan_ctx c = { .spsc = spsc };
	struct shmkit_chan_opts o = { .capacity = 64, .max_msg = SK_MSG_MAX,
	                              .flags = SHMKIT_EXCL | (spsc ? SHMKIT_CHAN_SPSC : 0) };
	struct worker w[MAX_WORKERS];
	pid_t kids[MAX_STREAMS] = { 0 };
	unsigned streams = prod_threads + child_prods, nw = 0;
	shmkit_chan *ch;
	char num[2][24];

	seg_name(c.name, sizeof(c.name), spsc ? "tsan-spsc" : "tsan-mpmc");
	if (rxshared_init(&c.rx, streams, count, true))
		return 1;
	c.expected = streams * count;
	c.producers_left = streams;
	int e = shmkit_chan_create(&ch, c.name, &o);
	if (e)
		return call_fail("chan_create", e);
	pthread_barrier_init(&c.go, NULL, prod_threads + cons_threads);
	for (unsigned i = 0; i < cons_threads; i++)
		start(&w[nw++], chan_consumer, &c, i);
	for (unsigned i = 0; i < prod_threads; i++)
		start(&w[nw++], chan_producer, &c, i);
	snprintf(num[1], sizeof(num[1]), "%llu", (unsigned long long)count);
	for (unsigned i = 0; i < child_prods; i++) {
		snprintf(num[0], sizeof(num[0]), "%u", prod_threads + i);
		const char *args[] = { "chan-prod", c.name, num[0], num[1], NULL };
		kids[i] = spawn_child(args, NULL);
	}
	for (unsigned i = 0; i < child_prods; i++) {
		reap_child(kids[i], "chan-prod");
		sk_fetch_add(&c.producers_left, -1u, __ATOMIC_RELEASE); /* as a producer's */
	}
	join_all(w, nw);
	if (rx_total(&c.rx) != c.expected)
		fail("received %llu messages of %llu", (unsigned long long)rx_total(&c.rx),
		     (unsigned long long)c.expected);
	shmkit_chan_close(ch);
	shmkit_seg_remove(c.name);
	pthread_barrier_destroy(&c.go);
	rxshared_free(&c.rx);
	printf("  %llu messages, %u producer threads + %u processes, %u consumers\n",
	       (unsigned long long)c.expected, prod_threads, child_prods, cons_threads);
	return 0;
}

static int scn_chan_spsc(void)
{
	return chan_scenario(true, 1, 0, 1, count_of(20000));
}

static int scn_chan_mpmc(void)
{
	return chan_scenario(false, 2, 1, 2, count_of(8000));
}

/* ---- bus ---------------------------------------------------------------- */

struct bus_ctx {
	char name[128];
	int delivery;
	struct rxshared rx;
	uint32_t pubs_done;        /* atomic: publisher threads finished */
	unsigned pub_threads;
	uint64_t per_sub;          /* back-pressure: messages each subscriber gets */
	pthread_barrier_t go;
	uint64_t lost_sum;         /* atomic: overwrite, lost over all threads */
};

static int bus_open_own(struct bus_ctx *c, shmkit_bus **b)
{
	struct shmkit_bus_opts o = { .init_timeout_ns = TMO_NS };
	int e = shmkit_bus_open(b, c->name, &o);

	return e ? call_fail("bus_open", e) : 0;
}

/* One message: a copy, or a loan published (back-pressure: now and then
 * aborted first).  0, 1 to try the seq again (a loan readers abandoned:
 * -ESTALE), or a negative errno. */
static int bus_put(shmkit_bus *b, uint64_t *rng, bool may_abort, unsigned stream, uint64_t seq)
{
	uint8_t m[SK_MSG_MAX];
	unsigned r = (unsigned)sk_rand_below(rng, 16);
	void *p;
	int e;

	if (r < 8)
		return shmkit_bus_publish(b, m, smsg_fill(m, stream, seq), TMO_NS);
	if ((e = shmkit_bus_loan(b, &p, TMO_NS)))
		return e;
	size_t len = smsg_fill(p, stream, seq);
	if (r == 8 && may_abort)
		return shmkit_bus_abort_loan(b) ?: 1;
	e = shmkit_bus_publish_loan(b, len);
	return e == -ESTALE ? 1 : e;
}

static int bus_produce(shmkit_bus *b, uint64_t *rng, bool may_abort, unsigned stream,
                       uint64_t count)
{
	for (uint64_t seq = 0; seq < count;) {
		int e = bus_put(b, rng, may_abort, stream, seq);
		if (e < 0)
			return call_fail("bus publish/loan", e);
		seq += e == 0;
	}
	return 0;
}

static int bus_publisher(struct worker *w)
{
	struct bus_ctx *c = w->ctx;
	shmkit_bus *b;
	int rc;

	if (bus_open_own(c, &b))
		return 1;
	pthread_barrier_wait(&c->go);
	rc = bus_produce(b, &w->rng, c->delivery == SHMKIT_BUS_BACKPRESSURE, w->idx, c->rx.count);
	shmkit_bus_close(b);
	/* Release: pairs with the subscribers' acquire load; after it they
	 * drain and stop. */
	sk_fetch_add(&c->pubs_done, 1, __ATOMIC_RELEASE);
	return rc;
}

static ssize_t sub_take(shmkit_sub *s, uint64_t *rng, uint8_t *buf, uint64_t *lost, int64_t tmo)
{
	const void *p;
	ssize_t n;

	if (sk_rand_below(rng, 2))
		return shmkit_sub_recv(s, buf, SK_MSG_MAX, lost, tmo);
	if ((n = shmkit_sub_peek(s, &p, lost, tmo)) < 0)
		return n;
	memcpy(buf, p, (size_t)n > SK_MSG_MAX ? SK_MSG_MAX : (size_t)n);
	int e = shmkit_sub_release(s);
	return e == -ESTALE ? 0 : e ? e : n; /* 0: overwritten while read, counted lost */
}

/* Take what is there (or wait a slice); 0 = nothing came, 1 = took some,
 * or a finding. */
static int sub_round(struct bus_ctx *c, shmkit_sub *s, struct rxlog *l, uint64_t *rng, int fd,
                     bool contiguous)
{
	uint8_t buf[SK_MSG_MAX];
	uint64_t lost = 0;
	int took = 0;

	if (fd >= 0) {
		poll_in(fd, 100);
		int e = shmkit_sub_ack_fd(s);
		if (e)
			return -call_fail("sub_ack_fd", e);
	}
	for (;;) {
		ssize_t n = sub_take(s, rng, buf, &lost, fd >= 0 || took ? 0 : SLICE_NS);
		if (n == -EAGAIN || n == -ETIMEDOUT)
			return took;
		if (n < 0)
			return -call_fail("sub recv/peek", n);
		l->lost += lost;
		lost = 0;
		if (n > 0 && rx_check(&c->rx, l, buf, (size_t)n, contiguous))
			return -1;
		took = 1;
	}
}

static int bus_subscribe_own(struct bus_ctx *c, shmkit_bus **b, shmkit_sub **s)
{
	struct shmkit_bus_opts o = { .from = SHMKIT_FROM_OLDEST };
	int e;

	if (bus_open_own(c, b))
		return 1;
	if ((e = shmkit_bus_subscribe(s, *b, &o))) {
		shmkit_bus_close(*b);
		return call_fail("bus_subscribe", e);
	}
	return 0;
}

static int bus_subscriber(struct worker *w)
{
	struct bus_ctx *c = w->ctx;
	bool bp = c->delivery == SHMKIT_BUS_BACKPRESSURE, slow = !bp && w->idx == 2;
	struct rxlog log = { 0 };
	shmkit_bus *b;
	shmkit_sub *s;
	int fd = -1, r = 0;

	if (bus_subscribe_own(c, &b, &s))
		return 1;
	if (w->idx == 1 && (fd = shmkit_sub_fd(s)) < 0)
		r = -call_fail("sub_fd", fd);
	pthread_barrier_wait(&c->go);
	while (r >= 0 && !late()) {
		/* Acquire: pairs with the publishers' release increment. */
		bool done = sk_load_acquire(&c->pubs_done) == c->pub_threads;
		if (bp && log.n == c->per_sub)
			break;
		r = sub_round(c, s, &log, &w->rng, fd, bp);
		if (!bp && done && r == 0)
			break; /* drained after the last publish */
		if (slow && sk_rand_below(&w->rng, 32) == 0)
			usleep((useconds_t)sk_rand_below(&w->rng, 400));
	}
	if (r >= 0 && late())
		r = -fail("subscriber %u ran out of time", w->idx);
	if (r >= 0 && bp && log.n != c->per_sub)
		r = -fail("subscriber %u got %llu of %llu", w->idx, (unsigned long long)log.n,
		          (unsigned long long)c->per_sub);
	if (r >= 0 && bp && log.lost)
		r = -fail("subscriber %u lost %llu on a back-pressure bus", w->idx,
		          (unsigned long long)log.lost);
	sk_fetch_add(&c->lost_sum, log.lost, __ATOMIC_RELAXED); /* read after the join */
	shmkit_bus_unsubscribe(s);
	shmkit_bus_close(b);
	return r < 0;
}

/* --child bus-sub NAME STREAMS COUNT: every message of every stream, in
 * order (back-pressure bus); "READY" on stdout once subscribed. */
static int bus_sub_child(char **argv)
{
	struct bus_ctx c = { .delivery = SHMKIT_BUS_BACKPRESSURE };
	struct rxlog log = { 0 };
	uint64_t rng = (uint64_t)getpid();
	shmkit_bus *b;
	shmkit_sub *s;
	int r = 0;

	snprintf(c.name, sizeof(c.name), "%s", argv[0]);
	c.rx = (struct rxshared){ .streams = (unsigned)atoi(argv[1]),
	                          .count = strtoull(argv[2], NULL, 10) };
	if (bus_subscribe_own(&c, &b, &s))
		return 1;
	printf("READY\n");
	fflush(stdout);
	while (r >= 0 && log.n < c.rx.streams * c.rx.count && !late())
		r = sub_round(&c, s, &log, &rng, -1, true);
	if (r >= 0 && log.n != c.rx.streams * c.rx.count)
		r = -fail("child subscriber got %llu", (unsigned long long)log.n);
	shmkit_bus_unsubscribe(s);
	shmkit_bus_close(b);
	return r < 0;
}

/* --child bus-pub NAME STREAM COUNT */
static int bus_pub_child(char **argv)
{
	struct bus_ctx c;
	uint64_t rng = (uint64_t)getpid();
	shmkit_bus *b;

	snprintf(c.name, sizeof(c.name), "%s", argv[0]);
	if (bus_open_own(&c, &b))
		return 1;
	int rc = bus_produce(b, &rng, false, (unsigned)atoi(argv[1]), strtoull(argv[2], NULL, 10));
	shmkit_bus_close(b);
	return rc;
}

static int bus_scenario(int delivery, uint64_t count)
{
	bool bp = delivery == SHMKIT_BUS_BACKPRESSURE;
	struct bus_ctx c = { .delivery = delivery, .pub_threads = 2 };
	struct shmkit_bus_opts o = { .capacity = 64, .max_msg = SK_MSG_MAX, .delivery = delivery,
	                             .flags = SHMKIT_EXCL };
	unsigned streams = bp ? 2 : 3, subs = 3, nw = 0;
	struct worker w[MAX_WORKERS];
	struct shmkit_bus_stats st;
	pid_t kid = -1;
	int out = -1;
	shmkit_bus *b;
	char num[2][24];

	seg_name(c.name, sizeof(c.name), bp ? "tsan-busbp" : "tsan-busow");
	rxshared_init(&c.rx, streams, count, false);
	c.per_sub = streams * count;
	int e = shmkit_bus_create(&b, c.name, &o);
	if (e)
		return call_fail("bus_create", e);
	snprintf(num[0], sizeof(num[0]), "%u", bp ? streams : 2);
	snprintf(num[1], sizeof(num[1]), "%llu", (unsigned long long)count);
	if (bp) {
		/* Subscribed before anything is published: it must get it all. */
		const char *args[] = { "bus-sub", c.name, num[0], num[1], NULL };
		kid = spawn_child(args, &out);
		if (kid > 0 && !child_ready(out))
			fail("child subscriber never said READY");
	}
	pthread_barrier_init(&c.go, NULL, subs + c.pub_threads);
	for (unsigned i = 0; i < subs; i++)
		start(&w[nw++], bus_subscriber, &c, i);
	for (unsigned i = 0; i < c.pub_threads; i++)
		start(&w[nw++], bus_publisher, &c, i);
	if (!bp) {
		const char *args[] = { "bus-pub", c.name, num[0], num[1], NULL };
		kid = spawn_child(args, NULL);
	}
	/* An overwrite subscriber stops once the publisher threads are done
	 * and it is drained: the child publisher is reaped first. */
	if (!bp)
		reap_child(kid, "bus-pub");
	join_all(w, nw);
	if (bp)
		reap_child(kid, "bus-sub");
	if (out >= 0)
		close(out);
	if ((e = shmkit_bus_stats(b, &st)))
		call_fail("bus_stats", e);
	/* Overwrite: each subscriber took or was told lost of at most every
	 * sequence claimed (head); given-up sequences count neither. */
	uint64_t got = rx_total(&c.rx), lost = sk_load_relaxed(&c.lost_sum);
	if (!bp && (got + lost > subs * st.head || got == 0))
		fail("received %llu + lost %llu over %u subscribers, head %llu",
		     (unsigned long long)got, (unsigned long long)lost, subs,
		     (unsigned long long)st.head);
	shmkit_bus_close(b);
	shmkit_seg_remove(c.name);
	pthread_barrier_destroy(&c.go);
	printf("  %llu messages published, %llu received by %u subscriber threads (+1 process), "
	       "%llu lost\n", (unsigned long long)st.head, (unsigned long long)got, subs,
	       (unsigned long long)lost);
	return 0;
}

static int scn_bus_bp(void)
{
	return bus_scenario(SHMKIT_BUS_BACKPRESSURE, count_of(4000));
}

static int scn_bus_ow(void)
{
	/* The child publisher's stream is the third one. */
	return bus_scenario(SHMKIT_BUS_OVERWRITE, count_of(4000));
}

/* ---- journal ------------------------------------------------------------ */

#define J_MAX 256

struct journal_ctx {
	const char *path;
	uint64_t count;
	pthread_barrier_t go;
};

/* Read records want.. until count, checking each; fd < 0: blocking
 * next() in slices, else poll + ack + drain. */
static int follow(const char *path, uint64_t count, int use_fd, pthread_barrier_t *go)
{
	struct shmkit_record rec;
	shmkit_journal *j;
	int64_t t = INT64_MIN;
	uint64_t want = 1;
	int fd = -1, rc = 0, e = shmkit_journal_open(&j, path, NULL);

	if (e)
		return call_fail("journal_open (reader)", e);
	if (use_fd && (fd = shmkit_journal_fd(j)) < 0)
		rc = call_fail("journal_fd", fd);
	if (go)
		pthread_barrier_wait(go);
	while (!rc && want <= count && !late()) {
		if (fd >= 0) {
			poll_in(fd, 100);
			if ((e = shmkit_journal_ack_fd(j)))
				rc = call_fail("journal_ack_fd", e);
		}
		int r;
		while (!rc && want <= count && (r = shmkit_journal_next(j, &rec, fd >= 0 ? 0 : SLICE_NS)) == 1) {
			if (rec.seq != want || !jt_check(rec.seq, rec.data, rec.len, J_MAX) || rec.time_ns < t)
				rc = fail("record seq %llu (%u bytes) where %llu was next: bad seq, "
				          "payload or stamp", (unsigned long long)rec.seq, rec.len,
				          (unsigned long long)want);
			t = rec.time_ns;
			want++;
		}
		if (!rc && want <= count && r != -EAGAIN && r != -ETIMEDOUT)
			rc = call_fail("journal_next", r);
	}
	if (!rc && want <= count)
		rc = fail("follower stopped at %llu of %llu", (unsigned long long)want - 1,
		          (unsigned long long)count);
	shmkit_journal_close(j);
	return rc;
}

static int journal_follower(struct worker *w)
{
	struct journal_ctx *c = w->ctx;

	return follow(c->path, c->count, w->idx == 1, &c->go);
}

static int journal_writer(struct worker *w)
{
	struct journal_ctx *c = w->ctx;
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE,
	                                 .durability = SHMKIT_DUR_GROUP, .group_records = 16,
	                                 .group_ms = 2 };
	uint8_t buf[J_MAX];
	shmkit_journal *j;
	int e = shmkit_journal_open(&j, c->path, &o), rc = 0;

	if (e)
		return call_fail("journal_open (writer)", e);
	pthread_barrier_wait(&c->go);
	for (uint64_t seq = 1; seq <= c->count && !rc; seq++) {
		uint64_t got = 0;
		uint32_t len = jt_len(seq, J_MAX);
		jt_fill(seq, buf, len);
		if ((e = shmkit_journal_append(j, buf, len, &got)))
			rc = call_fail("journal_append", e);
		else if (got != seq)
			rc = fail("append gave seq %llu, want %llu", (unsigned long long)got,
			          (unsigned long long)seq);
	}
	if ((e = shmkit_journal_close(j)))
		rc = call_fail("journal_close", e);
	return rc;
}

/* --child journal-follow PATH COUNT */
static int journal_child(char **argv)
{
	return follow(argv[0], strtoull(argv[1], NULL, 10), 0, NULL);
}

static int scn_journal(void)
{
	struct journal_ctx c = { .path = jt_new_path(), .count = count_of(6000) };
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 64 * 1024, .max_record = J_MAX };
	struct worker w[4];
	shmkit_journal *j;
	char num[24];

	if (!c.path)
		return fail("no journal path");
	int e = shmkit_journal_open(&j, c.path, &o);
	if (e)
		return call_fail("journal_open (create)", e);
	shmkit_journal_close(j);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)c.count);
	const char *args[] = { "journal-follow", c.path, num, NULL };
	pid_t kid = spawn_child(args, NULL);
	pthread_barrier_init(&c.go, NULL, 4);
	start(&w[0], journal_writer, &c, 0);
	for (unsigned i = 1; i < 4; i++)
		start(&w[i], journal_follower, &c, i - 1);
	join_all(w, 4);
	reap_child(kid, "journal-follow");
	pthread_barrier_destroy(&c.go);
	jt_cleanup();
	printf("  %llu records (64 KiB files), 3 follower threads (1 on the fd) + 1 process\n",
	       (unsigned long long)c.count);
	return 0;
}

/* ---- the pollable-fd module ------------------------------------------------ */

struct wfd_ctx {
	uint32_t word;             /* futex word the wakers move */
	shmkit_ec ec;
	uint32_t target;
	struct sk_waitfd *shared;  /* atomic pointer: the waiter's, for signallers */
	uint32_t stop;             /* atomic: signallers stop */
	uint64_t signals;          /* atomic */
};

/* Waits on the fd until the word and the ec reach target, arming on one
 * or the other in turn. */
static int wfd_waiter(struct worker *w)
{
	struct wfd_ctx *c = w->ctx;
	struct sk_waitfd *fdw;
	int e = sk_waitfd_open(&fdw), rc = 0;
	uint64_t rounds = 0;

	if (e) {
		sk_store_release(&c->stop, 1); /* pairs with the signallers' acquire */
		return call_fail("sk_waitfd_open", e);
	}
	/* Release: the handle is whole before a signaller's acquire load. */
	__atomic_store_n(&c->shared, fdw, __ATOMIC_RELEASE);
	while (!rc && !late()) {
		/* Acquire: pairs with the waker's release store / ec increment. */
		uint32_t v = sk_load_acquire(&c->word), ev = shmkit_ec_value(&c->ec);
		if (v >= c->target && ev >= c->target)
			break;
		if (rounds++ & 1 || v >= c->target)
			e = sk_waitfd_arm_ec(fdw, &c->ec, ev);
		else
			e = sk_waitfd_arm(fdw, &c->word, v);
		if (e)
			rc = call_fail("sk_waitfd_arm", e);
		poll_in(sk_waitfd_fd(fdw), 200);
	}
	if (!rc && late())
		rc = fail("waiter never saw the target (word %u, ec %u)", sk_load_acquire(&c->word),
		          shmkit_ec_value(&c->ec));
	sk_store_release(&c->stop, 1); /* pairs with the signallers' acquire */
	/* Signallers use the handle until they see stop: join them first. */
	return rc;
}

static int wfd_waker(struct worker *w)
{
	struct wfd_ctx *c = w->ctx;

	for (uint32_t i = 1; i <= c->target; i++) {
		sk_store_release(&c->word, i); /* pairs with the waiter's acquire load */
		shmkit_futex_wake(&c->word, 1);
		shmkit_ec_inc(&c->ec);
		if (sk_rand_below(&w->rng, 8) == 0)
			sched_yield();
	}
	return 0;
}

static int wfd_signaller(struct worker *w)
{
	struct wfd_ctx *c = w->ctx;
	struct sk_waitfd *fdw;

	while (!(fdw = __atomic_load_n(&c->shared, __ATOMIC_ACQUIRE)) && !sk_load_acquire(&c->stop) &&
	       !late())
		sched_yield(); /* acquire: pairs with the waiter's release store */
	while (fdw && !sk_load_acquire(&c->stop)) {
		int e = sk_waitfd_signal(fdw);
		if (e)
			return call_fail("sk_waitfd_signal", e);
		sk_fetch_add(&c->signals, 1, __ATOMIC_RELAXED); /* a figure only */
		usleep(50);
	}
	return 0;
}

static int scn_waitfd(void)
{
	struct wfd_ctx c = { .target = (uint32_t)count_of(3000) };
	struct worker w[4];
	struct sk_waitfd *probe;

	shmkit_ec_init(&c.ec);
	if (!sk_waitfd_open(&probe)) {
		printf("  kind: %s\n", sk_waitfd_kind(probe) == SK_WAITFD_URING ? "io_uring" : "thread");
		sk_waitfd_close(probe);
	}
	start(&w[0], wfd_waiter, &c, 0);
	start(&w[1], wfd_signaller, &c, 1);
	start(&w[2], wfd_signaller, &c, 2);
	start(&w[3], wfd_waker, &c, 3);
	join_all(w, 4);
	sk_waitfd_close(c.shared);
	printf("  %u wakes of a word and an event count, %llu signals\n", c.target,
	       (unsigned long long)sk_load_relaxed(&c.signals));
	return 0;
}

/* ---- sync primitives ---------------------------------------------------------- */

struct sync_ctx {
	uint32_t turn;             /* futex ping-pong: whose turn (atomic) */
	uint64_t handed[2];        /* plain: written before the turn passes */
	shmkit_mutex mutex;
	uint64_t guarded;          /* plain: under the mutex */
	shmkit_sem sem;
	uint64_t taken;            /* atomic */
	shmkit_ec ec;
	uint64_t rounds;
};

/* Ping-pong: thread idx waits for turn == idx, checks what the other
 * handed over (plain memory, ordered by the turn word), hands its own. */
static int sync_pingpong(struct worker *w)
{
	struct sync_ctx *c = w->ctx;
	unsigned me = w->idx & 1;

	for (uint64_t i = 0; i < c->rounds; i++) {
		int64_t dl = sk_now_ns() + TMO_NS;
		/* Acquire: pairs with the other thread's release store of turn. */
		while (sk_load_acquire(&c->turn) != me) {
			if (sk_now_ns() > dl)
				return fail("ping-pong stuck at round %llu", (unsigned long long)i);
			shmkit_futex_wait(&c->turn, !me, SLICE_NS);
		}
		if (c->handed[!me] != (me ? i + 1 : i))
			return fail("ping-pong: got %llu in round %llu", (unsigned long long)c->handed[!me],
			            (unsigned long long)i);
		c->handed[me] = i + 1;
		sk_store_release(&c->turn, !me); /* pairs with the other's acquire */
		shmkit_futex_wake(&c->turn, 1);
	}
	return 0;
}

static int sync_mutex(struct worker *w)
{
	struct sync_ctx *c = w->ctx;

	for (uint64_t i = 0; i < c->rounds; i++) {
		int e = shmkit_mutex_lock(&c->mutex, TMO_NS);
		if (e)
			return call_fail("mutex_lock", e);
		c->guarded++;
		if ((e = shmkit_mutex_unlock(&c->mutex)))
			return call_fail("mutex_unlock", e);
	}
	return 0;
}

static int sync_sem_post(struct worker *w)
{
	struct sync_ctx *c = w->ctx;

	for (uint64_t i = 0; i < c->rounds; i++) {
		int e = shmkit_sem_post(&c->sem);
		if (e)
			return call_fail("sem_post", e);
		shmkit_ec_inc(&c->ec);
	}
	return 0;
}

/* Takes from the semaphore until both posters' counts are taken, then
 * waits on the ec until both posters' increments are seen. */
static int sync_sem_wait(struct worker *w)
{
	struct sync_ctx *c = w->ctx;

	while (sk_load_relaxed(&c->taken) < 2 * c->rounds && !late()) {
		int e = shmkit_sem_wait(&c->sem, SLICE_NS);
		if (e == 0)
			sk_fetch_add(&c->taken, 1, __ATOMIC_RELAXED); /* read after join */
		else if (e != -ETIMEDOUT)
			return call_fail("sem_wait", e);
	}
	for (uint32_t v; (v = shmkit_ec_value(&c->ec)) < 2 * c->rounds && !late();) {
		int e = shmkit_ec_wait(&c->ec, v, SLICE_NS);
		if (e && e != -ETIMEDOUT)
			return call_fail("ec_wait", e);
	}
	return 0;
}

static int scn_sync(void)
{
	/* Shared memory as the primitives are meant for (anon MAP_SHARED). */
	struct sync_ctx *c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
	                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct worker w[8];
	int e;

	if (c == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	c->rounds = count_of(5000);
	if ((e = shmkit_mutex_init(&c->mutex)) || (e = shmkit_sem_init(&c->sem, 0)))
		return call_fail("mutex/sem init", e);
	shmkit_ec_init(&c->ec);
	for (unsigned i = 0; i < 2; i++) {
		start(&w[i], sync_pingpong, c, i);
		start(&w[2 + i], sync_mutex, c, 2 + i);
		start(&w[4 + i], sync_sem_post, c, 4 + i);
		start(&w[6 + i], sync_sem_wait, c, 6 + i);
	}
	join_all(w, 8);
	if (c->guarded != 2 * c->rounds)
		fail("mutex: %llu increments of %llu", (unsigned long long)c->guarded,
		     (unsigned long long)(2 * c->rounds));
	if (c->taken != 2 * c->rounds || shmkit_sem_value(&c->sem) != 0)
		fail("sem: %llu taken of %llu, %d left", (unsigned long long)c->taken,
		     (unsigned long long)(2 * c->rounds), shmkit_sem_value(&c->sem));
	if (shmkit_ec_value(&c->ec) != 2 * c->rounds)
		fail("ec: %u of %llu", shmkit_ec_value(&c->ec), (unsigned long long)(2 * c->rounds));
	printf("  %llu ping-pong rounds, %llu mutex sections, %llu sem posts and ec increments\n",
	       (unsigned long long)c->rounds, (unsigned long long)(2 * c->rounds),
	       (unsigned long long)(2 * c->rounds));
	munmap(c, sizeof(*c));
	return 0;
}

/* ---- rpc ------------------------------------------------------------------ */

#define RPC_DEPTH 4

/* What a client saw: calls sent, calls that returned an answer, answers
 * checked right, calls it cancelled, calls that timed out. */
struct rpc_counts {
	uint64_t sent, ok, checked, cancelled, timedout;
};

struct rpc_ctx {
	char name[128];
	uint64_t calls;            /* per client */
	uint32_t clients_left;     /* atomic: client threads and the child still calling */
	pthread_barrier_t go;
	struct rpc_counts k;       /* atomic sums, read after the joins */
	uint64_t srv_ok, srv_dropped; /* atomic: responds that returned 0, -ECANCELED */
};

static void rpc_counts_add(struct rpc_counts *to, const struct rpc_counts *k)
{
	/* Relaxed: sums read after every thread was joined. */
	sk_fetch_add(&to->sent, k->sent, __ATOMIC_RELAXED);
	sk_fetch_add(&to->ok, k->ok, __ATOMIC_RELAXED);
	sk_fetch_add(&to->checked, k->checked, __ATOMIC_RELAXED);
	sk_fetch_add(&to->cancelled, k->cancelled, __ATOMIC_RELAXED);
	sk_fetch_add(&to->timedout, k->timedout, __ATOMIC_RELAXED);
}

static int rpc_open_own(const char *name, shmkit_rpc **r, int wait)
{
	struct shmkit_rpc_opts o = { .wait = wait, .init_timeout_ns = TMO_NS };
	int e = shmkit_rpc_open(r, name, &o);

	return e ? call_fail("rpc_open", e) : 0;
}

/* The answer to request (stream, seq) is "re:" + the request. */
static int rpc_check(unsigned stream, uint64_t seq, const void *p, ssize_t n, struct rpc_counts *k)
{
	uint8_t want[SK_MSG_MAX + 3];
	size_t len = smsg_fill(want + 3, stream, seq) + 3;

	memcpy(want, "re:", 3);
	k->ok++;
	if ((size_t)n != len || memcmp(p, want, len))
		return fail("client %u call %llu: a wrong answer of %zd bytes", stream,
		            (unsigned long long)seq, n);
	k->checked++;
	return 0;
}

/* -EBUSY (slots held by servers still answering given-up calls): wait a
 * little, bounded by the scenario's deadline.  True to try again. */
static bool rpc_busy(long e)
{
	if (e != -EBUSY || late())
		return false;
	usleep(100);
	return true;
}

/* A synchronous call; one in 16 with a 100 us deadline it may miss. */
static int rpc_sync_call(shmkit_rpc *r, unsigned stream, uint64_t seq, uint64_t *rng,
                         struct rpc_counts *k)
{
	uint8_t req[SK_MSG_MAX], resp[SK_MSG_MAX + 3];
	size_t len = smsg_fill(req, stream, seq);
	bool hurry = sk_rand_below(rng, 16) == 0;
	ssize_t n;

	while (rpc_busy(n = shmkit_rpc_call(r, req, len, resp, sizeof(resp), hurry ? 100000 : TMO_NS)))
		;
	k->sent++;
	if (n == -ETIMEDOUT && hurry) {
		k->timedout++;
		return 0;
	}
	return n < 0 ? call_fail("rpc_call", n) : rpc_check(stream, seq, resp, n, k);
}

/* Send request (stream, seq): a copy or through a loan; some idempotent. */
static int rpc_send_any(shmkit_rpc *r, unsigned stream, uint64_t seq, uint64_t *rng, uint64_t *id)
{
	unsigned flags = sk_rand_below(rng, 2) ? SHMKIT_RPC_IDEMPOTENT : 0;
	uint8_t req[SK_MSG_MAX];
	void *buf;
	int e;

	if (sk_rand_below(rng, 2)) {
		size_t len = smsg_fill(req, stream, seq);
		return shmkit_rpc_send(r, req, len, flags, TMO_NS, id);
	}
	if ((e = shmkit_rpc_loan(r, &buf)))
		return e;
	return shmkit_rpc_send_loan(r, smsg_fill(buf, stream, seq), flags, TMO_NS, id);
}

/* One answer of a batch (n > 0 calls out): waited for any, on the fd
 * (poll, ack, then try) or blocking; checked in place, released.  0, 1
 * (none yet, on the fd), or a finding (-1). */
static int rpc_take(shmkit_rpc *r, unsigned stream, uint64_t *ids, uint64_t *seqs, unsigned *n,
                    int fd, struct rpc_counts *k)
{
	uint64_t id = 0;
	const void *p;
	ssize_t m;
	int e;

	if (fd >= 0) {
		poll_in(fd, 100);
		if ((e = shmkit_rpc_ack_fd(r)))
			return -call_fail("rpc_ack_fd", e);
	}
	m = shmkit_rpc_wait(r, &id, &p, fd >= 0 ? 0 : TMO_NS);
	if (m == -EAGAIN && fd >= 0)
		return late() ? -fail("client %u: no answer on the fd in time", stream) : 1;
	if (m < 0)
		return -call_fail("rpc_wait", m);
	unsigned j = 0;
	while (j < *n && ids[j] != id)
		j++;
	if (j == *n)
		return -fail("client %u: wait returned id %llu, no call of ours", stream,
		             (unsigned long long)id);
	if (rpc_check(stream, seqs[j], p, m, k))
		return -1;
	if ((e = shmkit_rpc_release(r, id)))
		return -call_fail("rpc_release", e);
	ids[j] = ids[--*n];
	seqs[j] = seqs[*n];
	return 0;
}

/* 1..RPC_DEPTH calls sent at once, one in 4 batches one of them
 * cancelled, then the answers in any order. */
static int rpc_batch(shmkit_rpc *r, unsigned stream, uint64_t *seq, uint64_t end, uint64_t *rng,
                     int fd, struct rpc_counts *k)
{
	uint64_t ids[RPC_DEPTH], seqs[RPC_DEPTH];
	unsigned n = 0, want = 1 + (unsigned)sk_rand_below(rng, RPC_DEPTH);
	int e;

	while (n < want && *seq < end) {
		if (rpc_busy(e = rpc_send_any(r, stream, *seq, rng, &ids[n])) && !n)
			continue;
		if (e == -EBUSY)
			break;
		if (e)
			return call_fail("rpc send/send_loan", e);
		seqs[n++] = (*seq)++;
		k->sent++;
	}
	if (n > 1 && sk_rand_below(rng, 4) == 0) {
		unsigned j = (unsigned)sk_rand_below(rng, n);
		if ((e = shmkit_rpc_cancel(r, ids[j])))
			return call_fail("rpc_cancel", e);
		k->cancelled++;
		ids[j] = ids[--n];
		seqs[j] = seqs[n];
	}
	while (n)
		if ((e = rpc_take(r, stream, ids, seqs, &n, fd, k)) < 0)
			return 1;
	return 0;
}

/* A client's calls: seqs 0..count-1 of its stream, a third sync. */
static int rpc_calls(shmkit_rpc *r, unsigned stream, uint64_t count, uint64_t *rng, int fd,
                     struct rpc_counts *k)
{
	int e = 0;

	for (uint64_t seq = 0; seq < count && !e && !late();)
		e = sk_rand_below(rng, 3) == 0 ? rpc_sync_call(r, stream, seq++, rng, k)
		                               : rpc_batch(r, stream, &seq, count, rng, fd, k);
	return e ? e : late() ? fail("client %u ran out of time", stream) : 0;
}

static int rpc_client(struct worker *w)
{
	struct rpc_ctx *c = w->ctx;
	struct rpc_counts k = { 0 };
	shmkit_rpc *r;
	int fd = -1, rc = 0;

	if (rpc_open_own(c->name, &r, w->idx & 1 ? SHMKIT_WAIT_BLOCK : SHMKIT_WAIT_ADAPTIVE))
		return 1;
	if (w->idx == 2 && (fd = shmkit_rpc_fd(r, SHMKIT_RPC_CLIENT)) < 0)
		rc = call_fail("rpc_fd", fd);
	pthread_barrier_wait(&c->go);
	if (!rc)
		rc = rpc_calls(r, w->idx, c->calls, &w->rng, fd, &k);
	shmkit_rpc_close(r);
	rpc_counts_add(&c->k, &k);
	/* Release: pairs with the servers' acquire load; after it they stop
	 * once the queue is empty. */
	sk_fetch_add(&c->clients_left, -1u, __ATOMIC_RELEASE);
	return rc;
}

/* Answer "re:" + the request, copied or in the response loan. */
static int rpc_answer(struct rpc_ctx *c, shmkit_rpc *r, const struct shmkit_rpc_req *q, uint64_t *rng)
{
	struct smsg_hdr h;
	const char *bad = q->len <= SK_MSG_MAX ? smsg_check(q->data, q->len, &h) : "too long";

	if (bad)
		return fail("server: a request of %u bytes: %s", q->len, bad);
	int e = smsg_rpc_answer(r, q, (int)sk_rand_below(rng, 2));
	if (e && e != -ECANCELED)
		return call_fail("rpc respond", e);
	/* Relaxed: counts read after the join. */
	sk_fetch_add(e ? &c->srv_dropped : &c->srv_ok, 1, __ATOMIC_RELAXED);
	return 0;
}

/* A server thread: takes 1..3 requests, answers them; one waits on the
 * fd.  Stops when the clients are done and nothing comes. */
static int rpc_server(struct worker *w)
{
	struct rpc_ctx *c = w->ctx;
	bool use_fd = w->idx == 1;
	shmkit_rpc *r;
	int fd = -1, rc = 0;

	if (rpc_open_own(c->name, &r, w->idx & 1 ? SHMKIT_WAIT_ADAPTIVE : SHMKIT_WAIT_BLOCK))
		return 1;
	if (use_fd && (fd = shmkit_rpc_fd(r, SHMKIT_RPC_SERVER)) < 0)
		rc = call_fail("rpc_fd", fd);
	pthread_barrier_wait(&c->go);
	while (!rc && !late()) {
		/* Acquire: pairs with the clients' release decrement. */
		bool done = sk_load_acquire(&c->clients_left) == 0;
		struct shmkit_rpc_req q[3];
		unsigned n = 1, want = 1 + (unsigned)sk_rand_below(&w->rng, 3);
		if (use_fd) {
			poll_in(fd, 100);
			if ((rc = shmkit_rpc_ack_fd(r)))
				rc = call_fail("rpc_ack_fd", rc);
		}
		int e = shmkit_rpc_recv(r, &q[0], use_fd ? 0 : SLICE_NS);
		if (e == -EAGAIN || e == -ETIMEDOUT) {
			if (done)
				break;
			continue;
		}
		if (e) {
			rc = call_fail("rpc_recv", e);
			break;
		}
		while (n < want && shmkit_rpc_recv(r, &q[n], 0) == 0)
			n++;
		for (unsigned i = 0; i < n; i++)
			rc |= rpc_answer(c, r, &q[i], &w->rng);
	}
	if (!rc && late())
		rc = fail("server %u ran out of time", w->idx);
	shmkit_rpc_close(r);
	return rc;
}

/* --child rpc-client NAME STREAM COUNT: its calls, then its counts on
 * stdout ("COUNTS sent ok checked cancelled timedout"). */
static int rpc_child(char **argv)
{
	uint64_t rng = (uint64_t)getpid();
	struct rpc_counts k = { 0 };
	shmkit_rpc *r;

	if (rpc_open_own(argv[0], &r, SHMKIT_WAIT_ADAPTIVE))
		return 1;
	int rc = rpc_calls(r, (unsigned)atoi(argv[1]), strtoull(argv[2], NULL, 10), &rng, -1, &k);
	shmkit_rpc_close(r);
	printf("COUNTS %llu %llu %llu %llu %llu\n", (unsigned long long)k.sent,
	       (unsigned long long)k.ok, (unsigned long long)k.checked,
	       (unsigned long long)k.cancelled, (unsigned long long)k.timedout);
	return rc;
}

/* The child's counts from its stdout, added to the scenario's. */
static void rpc_child_counts(struct rpc_ctx *c, int fd)
{
	unsigned long long v[5];
	char buf[256] = "";
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (n <= 0 || sscanf(buf, "COUNTS %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	                     &v[4]) != 5) {
		fail("the rpc child reported no counts");
		return;
	}
	struct rpc_counts k = { v[0], v[1], v[2], v[3], v[4] };
	rpc_counts_add(&c->k, &k);
}

/* 2 server threads (one on the fd), 3 client threads (one on the fd) and
 * a client process; every answer checked; then the counts: answers
 * received right == calls that returned one; servers' accepted answers
 * between those and those + given-up calls; the service's counts agree
 * (requests = sent, responses = received, timeouts = given up, cancelled
 * = answers servers were refused, no reset) and, every client closed,
 * nothing is in flight. */
static int scn_rpc(void)
{
	struct rpc_ctx c = { .calls = count_of(1500), .clients_left = 4 };
	struct shmkit_rpc_opts o = { .max_clients = 8, .depth = RPC_DEPTH, .max_request = SK_MSG_MAX,
	                             .max_response = SK_MSG_MAX + 3, .flags = SHMKIT_EXCL };
	struct shmkit_rpc_stats st;
	struct worker w[5];
	shmkit_rpc *r;
	char num[24];
	int out = -1;

	seg_name(c.name, sizeof(c.name), "tsan-rpc");
	int e = shmkit_rpc_create(&r, c.name, &o);
	if (e)
		return call_fail("rpc_create", e);
	pthread_barrier_init(&c.go, NULL, 5);
	for (unsigned i = 0; i < 2; i++)
		start(&w[i], rpc_server, &c, i);
	for (unsigned i = 0; i < 3; i++)
		start(&w[2 + i], rpc_client, &c, i);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)c.calls);
	const char *args[] = { "rpc-client", c.name, "3", num, NULL };
	pid_t kid = spawn_child(args, &out);
	reap_child(kid, "rpc-client");
	rpc_child_counts(&c, out);
	if (out >= 0)
		close(out);
	sk_fetch_add(&c.clients_left, -1u, __ATOMIC_RELEASE); /* as a client thread's */
	join_all(w, 5);
	const struct rpc_counts *k = &c.k;
	if (k->checked != k->ok)
		fail("%llu answers right of %llu calls answered", (unsigned long long)k->checked,
		     (unsigned long long)k->ok);
	if (c.srv_ok < k->ok || c.srv_ok > k->ok + k->cancelled + k->timedout)
		fail("servers had %llu answers accepted; clients received %llu, gave up %llu",
		     (unsigned long long)c.srv_ok, (unsigned long long)k->ok,
		     (unsigned long long)(k->cancelled + k->timedout));
	if ((e = shmkit_rpc_stats(r, &st)))
		call_fail("rpc_stats", e);
	else if (st.requests != k->sent || st.responses != k->ok ||
	         st.timeouts != k->cancelled + k->timedout || st.reset || st.cancelled != c.srv_dropped ||
	         st.in_flight || st.clients)
		fail("stats: requests %llu (sent %llu), responses %llu (received %llu), timeouts %llu "
		     "(given up %llu), reset %llu, cancelled %llu (dropped %llu), in flight %u, clients %u",
		     (unsigned long long)st.requests, (unsigned long long)k->sent,
		     (unsigned long long)st.responses, (unsigned long long)k->ok,
		     (unsigned long long)st.timeouts, (unsigned long long)(k->cancelled + k->timedout),
		     (unsigned long long)st.reset, (unsigned long long)st.cancelled,
		     (unsigned long long)c.srv_dropped, st.in_flight, st.clients);
	shmkit_rpc_close(r);
	shmkit_seg_remove(c.name);
	pthread_barrier_destroy(&c.go);
	printf("  %llu calls by 3 client threads + 1 process (%llu answered and checked, %llu "
	       "cancelled, %llu timed out); 2 server threads: %llu answers, %llu dropped\n",
	       (unsigned long long)k->sent, (unsigned long long)k->checked,
	       (unsigned long long)k->cancelled, (unsigned long long)k->timedout,
	       (unsigned long long)c.srv_ok, (unsigned long long)c.srv_dropped);
	return 0;
}

/* ---- driver ---------------------------------------------------------------- */

static const struct scenario {
	const char *name;
	int (*run)(void);
	bool uses_fd;
} scenarios[] = {
	{ "chan-spsc", scn_chan_spsc, false },
	{ "chan-mpmc", scn_chan_mpmc, true },
	{ "bus-backpressure", scn_bus_bp, true },
	{ "bus-overwrite", scn_bus_ow, true },
	{ "journal", scn_journal, true },
	{ "waitfd", scn_waitfd, true },
	{ "sync", scn_sync, false },
	{ "rpc", scn_rpc, true },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

static int child_main(int argc, char **argv)
{
	static const struct {
		const char *role;
		int (*fn)(char **);
		int nargs;
	} roles[] = {
		{ "chan-prod", chan_child, 3 },
		{ "bus-sub", bus_sub_child, 3 },
		{ "bus-pub", bus_pub_child, 3 },
		{ "journal-follow", journal_child, 2 },
		{ "rpc-client", rpc_child, 3 },
	};

	scen_name = "child";
	scen_deadline = sk_now_ns() + RUN_NS;
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (argc == roles[i].nargs + 1 && !strcmp(argv[0], roles[i].role))
			return roles[i].fn(argv + 1) || sk_load_relaxed(&failures) ? 1 : 0;
	fprintf(stderr, "stress_tsan: bad --child arguments\n");
	return 2;
}

static bool selected(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
		if (strcspn(p, ",") == n && !strncmp(p, name, n))
			return true;
	return !list;
}

/* The fd scenarios again with the helper-thread kind (a fresh process:
 * SHMKIT_WAITFD is read once per process). */
static int rerun_thread_kind(void)
{
	char list[256] = "", pct[16];
	size_t used = 0;

	for (size_t i = 0; i < NSCEN; i++)
		if (scenarios[i].uses_fd)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? "," : "",
			                         scenarios[i].name);
	snprintf(pct, sizeof(pct), "%u", scale);
	setenv("SHMKIT_WAITFD", "thread", 1);
	printf("== again with SHMKIT_WAITFD=thread: %s\n", list);
	fflush(stdout);
	const char *argv[] = { "-s", list, "-n", pct, NULL };
	pid_t pid = spawn_self(argv, NULL);
	int st;

	while (pid > 0 && waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	return pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int failed = 0, opt;

	if (argc > 1 && !strcmp(argv[1], "--child"))
		return child_main(argc - 2, argv + 2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "ls:n:")) != -1) {
		switch (opt) {
		case 'l':
			for (size_t i = 0; i < NSCEN; i++)
				printf("%s\n", scenarios[i].name);
			return 0;
		case 's': only = optarg; break;
		case 'n': scale = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: stress_tsan [-l] [-s NAME[,NAME...]] [-n PERCENT]\n");
			return 2;
		}
	}
	int64_t t0 = sk_now_ns();
	for (size_t i = 0; i < NSCEN; i++) {
		if (!selected(only, scenarios[i].name))
			continue;
		scen_name = scenarios[i].name;
		sk_store_relaxed(&failures, 0);
		int64_t t = sk_now_ns();
		scen_deadline = t + RUN_NS;
		printf("== %s\n", scen_name);
		int rc = scenarios[i].run();
		bool ok = !rc && !sk_load_relaxed(&failures);
		printf("   %s in %.1f s\n", ok ? "ok" : "FAILED", (double)(sk_now_ns() - t) / 1e9);
		failed += !ok;
	}
	if (!only && !getenv("SHMKIT_WAITFD"))
		failed += rerun_thread_kind() != 0;
	printf("stress_tsan: %s, %.1f s\n", failed ? "FAILED" : "all scenarios passed",
	       (double)(sk_now_ns() - t0) / 1e9);
	return failed ? 1 : 0;
}
