/*
 * baseline.c - the references every other row is compared to, measured
 * in the same run between the same two pinned processes:
 *
 *   cacheline_rtt   two processes spin on one shared 64-byte line: the
 *                   parent stores an odd value, the child answers with the
 *                   next even one.  The hardware limit for spinning (with
 *                   the same pause hint a spinning service uses).
 *   msg64_rtt       the same ping-pong carrying a 64-byte message: each
 *                   side copies 64 bytes into its own 128-byte buffer
 *                   behind an 8-byte ready word (so, like any 64-byte
 *                   message with a flag, it spans two cache lines) and the
 *                   other spins on that word and copies the bytes out.
 *                   The floor for a 64-byte round trip; its ratio to
 *                   cacheline_rtt is what the second line costs here.
 *   futex_rtt       the same hand-off on a shared word, but each side
 *                   sleeps in FUTEX_WAIT as soon as the value is not there
 *                   yet (after flagging that it sleeps) and the other calls
 *                   FUTEX_WAKE when it finds the flag: the limit for
 *                   blocking.
 *   pipe_rtt, unix_stream_rtt, unix_dgram_rtt, posix_mq_rtt, sysv_mq_rtt,
 *   tcp_rtt         a 64-byte message out and echoed back through the
 *                   kernel (TCP on 127.0.0.1 with TCP_NODELAY).
 *   memcpy_64, memcpy_4k, memcpy_1m
 *                   one core copying B-byte blocks (libc memcpy) from a hot
 *                   source to destinations cycling through max(8 B, 1 MiB).
 *   spsc_ring_64, spsc_ring_4k, spsc_ring_1m
 *                   the simplest cache-friendly single-producer/single-
 *                   consumer ring in shared memory: head and tail on their
 *                   own cache lines, each side caching the other's index,
 *                   one copy in and one copy out per message, the index
 *                   published per message.  64-byte messages in 1024 slots,
 *                   4 KiB in 64, 1 MiB in 8.
 *   ring_rtt_2slot, ring_rtt_64slot
 *                   64-byte round trips over two such rings (one each
 *                   way) of 2 and of 64 slots, a slot per 128-byte pair
 *                   of lines (SK_PAIR: no slot shares the prefetcher's
 *                   pair with the next): a hand-written queue's round
 *                   trip, and what its capacity costs.
 *   ring_rtt_64slot_80b
 *                   the same 64-slot rings carrying 80-byte records: the
 *                   two lines any 64-byte message behind a 16-byte
 *                   header (shmkit's slot) spans.  What the second line
 *                   of each slot costs a ring (see README "Performance").
 *
 * POSIX queues are unlinked as soon as both ends are open and System V
 * queues are removed in teardown (and on SIGINT/SIGTERM), so nothing is
 * left behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "refs.h"

#define MSG 64 /* bytes per round-trip message */

/* -errno of a failed call to retry (0: retry after EINTR), or the error. */
static int retry_or_fail(void)
{
	if (errno != EINTR)
		return sk_neg_errno();
	return bench_aborted() ? -ECANCELED : 0;
}

/* Run a two-process row; an unavailable mechanism (-ENOSYS from set-up)
 * is skipped, any other failure reported. */
static void pair_row(const char *name, const struct bench_pair *p,
                     const char *ref, int kind, size_t bytes)
{
	struct bench_stat st;
	int r = bench_pair(p, &st);
	if (r == -ENOSYS) {
		bench_skip(name, "not available on this system");
		return;
	}
	if (bench_check(name, r))
		bench_report_kind(name, &st, kind, bytes, ref);
}

/* ---- one shared word: spinning and futex ping-pong --------------------- */

/* The parent stores odd values, the child the even ones after them. */
struct word_pp {
	uint32_t *word; /* in a shared page of its own */
	uint32_t next;  /* private: the value this side last saw */
};

static int word_setup(void *arg)
{
	struct word_pp *w = arg;
	w->word = bench_shared_alloc(4096);
	w->next = 0;
	return w->word ? 0 : -ENOMEM;
}

static void word_teardown(void *arg)
{
	struct word_pp *w = arg;
	bench_shared_free(w->word, 4096);
}

static int spin_ping(void *arg, long n)
{
	struct word_pp *w = arg;
	for (long i = 0; i < n; i++) {
		uint32_t v = w->next;
		/* Release: nothing else to publish, but pairs with the child's
		 * acquire in bench_spin_until like a real hand-off would. */
		sk_store_release(w->word, v + 1);
		int r = bench_spin_until(w->word, v + 2);
		if (r)
			return r;
		w->next = v + 2;
	}
	return 0;
}

static int spin_pong(void *arg, long n)
{
	struct word_pp *w = arg;
	for (long i = 0; i < n; i++) {
		uint32_t v = w->next;
		int r = bench_spin_until(w->word, v + 1);
		if (r)
			return r;
		sk_store_release(w->word, v + 2); /* pairs with the parent's acquire spin */
		w->next = v + 2;
	}
	return 0;
}

/* The futex ping-pong keeps the value in the low 31 bits of the word and
 * a "someone sleeps" flag in the top bit, in the manner of ck_ec (and of
 * shmkit's event counts): a side about to sleep sets the flag, and the
 * other issues FUTEX_WAKE only when it finds the flag in the value it
 * replaces.  Without the flag each side's unconditional FUTEX_WAKE can
 * cover the other's answer, both stop sleeping, and the row measures
 * system-call overhead instead of blocking. */
#define FX_SLEEPER 0x80000000u
#define FX_VALUE(v) ((v) & ~FX_SLEEPER)

/* Hand over value v: the exchange (release: publishes v and what came
 * before it; pairs with the acquire load in fx_wait_change) clears the
 * flag, and says whether the other side sleeps or is about to. */
static void fx_give(uint32_t *word, uint32_t v)
{
	if (sk_exchange(word, FX_VALUE(v), __ATOMIC_RELEASE) & FX_SLEEPER)
		syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Sleep in FUTEX_WAIT (shared, never private) until the value is no longer
 * old; no spinning.  1-second sleeps so an abort is noticed. */
static int fx_wait_change(uint32_t *word, uint32_t old)
{
	struct timespec ts = { 1, 0 };
	for (;;) {
		/* Acquire: pairs with the release exchange in fx_give. */
		uint32_t cur = sk_load_acquire(word);
		if (FX_VALUE(cur) != FX_VALUE(old))
			return 0;
		/* Set the flag before sleeping; the CAS fails if the value (or
		 * flag) moved, and the loop looks again.  Relaxed: the futex
		 * compares the word in the kernel. */
		if (!(cur & FX_SLEEPER) &&
		    !sk_cas(word, &cur, cur | FX_SLEEPER, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		if (syscall(SYS_futex, word, FUTEX_WAIT, cur | FX_SLEEPER, &ts, NULL, 0) < 0 &&
		    errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
			return sk_neg_errno();
		if (bench_aborted())
			return -ECANCELED;
	}
}

static int futex_ping(void *arg, long n)
{
	struct word_pp *w = arg;
	for (long i = 0; i < n; i++) {
		fx_give(w->word, w->next + 1);
		int r = fx_wait_change(w->word, w->next + 1);
		if (r)
			return r;
		if (FX_VALUE(sk_load_relaxed(w->word)) != FX_VALUE(w->next + 2))
			return -EBADMSG;
		w->next = FX_VALUE(w->next + 2);
	}
	return 0;
}

static int futex_pong(void *arg, long n)
{
	struct word_pp *w = arg;
	for (long i = 0; i < n; i++) {
		int r = fx_wait_change(w->word, w->next);
		if (r)
			return r;
		if (FX_VALUE(sk_load_relaxed(w->word)) != FX_VALUE(w->next + 1))
			return -EBADMSG;
		w->next = FX_VALUE(w->next + 2);
		fx_give(w->word, w->next);
	}
	return 0;
}

static void ref_cacheline(void)
{
	struct bench_pair p;
	bench_ref_pair("cacheline_rtt", &p);
	pair_row("cacheline_rtt", &p, NULL, 'n', 0);
}

/* ---- a 64-byte message behind a ready word, each way ------------------ */

struct msg_pp {
	unsigned char *buf;       /* two 128-byte buffers, 64-aligned: the
	                             parent writes [0], the child [128] */
	uint64_t next;            /* private: the last sequence seen */
	unsigned char msg[MSG];   /* private: what is sent and received */
};

static int msg_setup(void *arg)
{
	struct msg_pp *m = arg;
	m->buf = bench_shared_alloc(4096);
	m->next = 0;
	memset(m->msg, 0x5a, sizeof(m->msg));
	return m->buf ? 0 : -ENOMEM;
}

static void msg_teardown(void *arg)
{
	struct msg_pp *m = arg;
	bench_shared_free(m->buf, 4096);
}

/* Copy the message in behind word, then publish seq in the word.  The
 * release store pairs with msg_take's acquire: the bytes are visible
 * with the word. */
static void msg_give(unsigned char *slot, const unsigned char *msg, uint64_t seq)
{
	memcpy(slot + 8, msg, MSG);
	sk_store_release((uint64_t *)(void *)slot, seq);
}

/* Spin until the word says seq (acquire: pairs with msg_give's release),
 * then copy the message out. */
static int msg_take(const unsigned char *slot, unsigned char *msg, uint64_t seq)
{
	unsigned spins = 0;
	while (sk_load_acquire((const uint64_t *)(const void *)slot) != seq) {
		int r = bench_poll(&spins);
		if (r)
			return r;
	}
	memcpy(msg, slot + 8, MSG);
	return 0;
}

static int msg_ping(void *arg, long n)
{
	struct msg_pp *m = arg;
	for (long i = 0; i < n; i++) {
		m->next++;
		msg_give(m->buf, m->msg, m->next);
		int r = msg_take(m->buf + 128, m->msg, m->next);
		if (r)
			return r;
	}
	return 0;
}

static int msg_pong(void *arg, long n)
{
	struct msg_pp *m = arg;
	for (long i = 0; i < n; i++) {
		m->next++;
		int r = msg_take(m->buf, m->msg, m->next);
		if (r)
			return r;
		msg_give(m->buf + 128, m->msg, m->next);
	}
	return 0;
}

static void ref_msg64(void)
{
	struct bench_pair p;
	bench_ref_pair("msg64_rtt", &p);
	pair_row("msg64_rtt", &p, "cacheline_rtt", 'n', 0);
}

static void ref_futex(void)
{
	struct word_pp w;
	struct bench_pair p = {
		.iters = 200, .arg = &w, .setup = word_setup,
		.parent_run = futex_ping, .child_run = futex_pong,
		.teardown = word_teardown,
	};
	pair_row("futex_rtt", &p, "cacheline_rtt", 'n', 0);
}

/* ---- file descriptors: pipe, UNIX sockets, TCP ------------------------- */

/* fd[0] parent reads, fd[1] parent writes, fd[2] child reads, fd[3] child
 * writes (the same descriptor twice for a socket). */
struct fd_pp {
	int fd[4];
	uint64_t seq;
	unsigned char msg[MSG];
};

static void close_fds(int *fd, int a, int b)
{
	if (fd[a] >= 0)
		close(fd[a]);
	if (fd[b] >= 0 && fd[b] != fd[a])
		close(fd[b]);
	fd[a] = fd[b] = -1;
}

static int fd_child_init(void *arg)
{
	close_fds(((struct fd_pp *)arg)->fd, 0, 1);
	return 0;
}

static int fd_parent_init(void *arg)
{
	close_fds(((struct fd_pp *)arg)->fd, 2, 3);
	return 0;
}

static void fd_teardown(void *arg)
{
	struct fd_pp *f = arg;
	close_fds(f->fd, 0, 1);
	close_fds(f->fd, 2, 3);
}

static int fd_ping(void *arg, long n)
{
	struct fd_pp *f = arg;
	for (long i = 0; i < n; i++) {
		uint64_t seq = f->seq++, echo;
		memcpy(f->msg, &seq, sizeof(seq));
		int r = bench_write_full(f->fd[1], f->msg, MSG);
		if (!r)
			r = bench_read_full(f->fd[0], f->msg, MSG);
		if (r)
			return r;
		memcpy(&echo, f->msg, sizeof(echo));
		if (echo != seq)
			return -EBADMSG;
	}
	return 0;
}

static int fd_pong(void *arg, long n)
{
	struct fd_pp *f = arg;
	for (long i = 0; i < n; i++) {
		int r = bench_read_full(f->fd[2], f->msg, MSG);
		if (!r)
			r = bench_write_full(f->fd[3], f->msg, MSG);
		if (r)
			return r;
	}
	return 0;
}

static int pipe_setup(void *arg)
{
	struct fd_pp *f = arg;
	int down[2], up[2];
	if (pipe2(down, O_CLOEXEC))
		return sk_neg_errno();
	if (pipe2(up, O_CLOEXEC)) {
		int r = sk_neg_errno();
		close(down[0]);
		close(down[1]);
		return r;
	}
	f->fd[0] = up[0];
	f->fd[1] = down[1];
	f->fd[2] = down[0];
	f->fd[3] = up[1];
	return 0;
}

static int socketpair_setup(struct fd_pp *f, int type)
{
	int sv[2];
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv))
		return errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT ? -ENOSYS
		                                                       : sk_neg_errno();
	f->fd[0] = f->fd[1] = sv[0];
	f->fd[2] = f->fd[3] = sv[1];
	return 0;
}

static int ustream_setup(void *arg)
{
	return socketpair_setup(arg, SOCK_STREAM);
}

static int udgram_setup(void *arg)
{
	return socketpair_setup(arg, SOCK_DGRAM);
}

static int nodelay(int fd)
{
	int one = 1;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ? sk_neg_errno() : 0;
}

/* A connected TCP pair over 127.0.0.1 on an ephemeral port; the listener
 * is closed before returning.  *a, *b are -1 on failure. */
static int tcp_connect_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t len = sizeof(sa);
	int r = 0, lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*a = *b = -1;
	if (lst < 0)
		return errno == EAFNOSUPPORT ? -ENOSYS : sk_neg_errno();
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lst, (struct sockaddr *)&sa, sizeof(sa)) || listen(lst, 1) ||
	    getsockname(lst, (struct sockaddr *)&sa, &len) ||
	    (*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(*a, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (*b = accept4(lst, NULL, NULL, SOCK_CLOEXEC)) < 0)
		r = errno == EADDRNOTAVAIL ? -ENOSYS : sk_neg_errno();
	if (!r)
		r = nodelay(*a);
	if (!r)
		r = nodelay(*b);
	close(lst);
	if (r) {
		if (*a >= 0)
			close(*a);
		if (*b >= 0)
			close(*b);
		*a = *b = -1;
	}
	return r;
}

static int tcp_setup(void *arg)
{
	struct fd_pp *f = arg;
	int a, b;
	int r = tcp_connect_pair(&a, &b);
	if (r)
		return r;
	f->fd[0] = f->fd[1] = a;
	f->fd[2] = f->fd[3] = b;
	return 0;
}

static void fd_row(const char *name, int (*setup)(void *))
{
	struct fd_pp f = { .fd = { -1, -1, -1, -1 } };
	struct bench_pair p = {
		.iters = 200, .arg = &f, .setup = setup,
		.child_init = fd_child_init, .parent_init = fd_parent_init,
		.parent_run = fd_ping, .child_run = fd_pong, .teardown = fd_teardown,
	};
	pair_row(name, &p, "futex_rtt", 'n', 0);
}

static void ref_pipe(void)
{
	fd_row("pipe_rtt", pipe_setup);
}

/* The same with both cores kept busy by a load generator (2 spinning
 * processes): the kernel's sleep and wake-up on a busy machine. */
static void ref_pipe_loaded(void)
{
	if (bench_load_start(2)) {
		bench_skip("pipe_rtt_loaded", "cannot start the load generator");
		return;
	}
	fd_row("pipe_rtt_loaded", pipe_setup);
	bench_load_stop();
}

static void ref_ustream(void)
{
	fd_row("unix_stream_rtt", ustream_setup);
}

static void ref_udgram(void)
{
	fd_row("unix_dgram_rtt", udgram_setup);
}

static void ref_tcp(void)
{
	fd_row("tcp_rtt", tcp_setup);
}

/* ---- POSIX message queues ----------------------------------------------- */

struct mq_pp {
	mqd_t down, up; /* parent -> child, child -> parent */
	uint64_t seq;
	char msg[MSG];
};

/* Open a fresh queue and unlink its name at once: the descriptor (which
 * fork copies) keeps it alive, and nothing outlives the processes. */
static int mq_fresh(mqd_t *q)
{
	char name[96] = "/";
	struct mq_attr at = { .mq_maxmsg = 8, .mq_msgsize = MSG };
	bench_unique_name(name + 1, sizeof(name) - 1, "mq");
	*q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &at);
	if (*q == (mqd_t)-1)
		return errno == ENOSYS || errno == EACCES || errno == EPERM ? -ENOSYS
		                                                          : sk_neg_errno();
	mq_unlink(name);
	return 0;
}

static int mq_setup(void *arg)
{
	struct mq_pp *m = arg;
	int r = mq_fresh(&m->down);
	if (r)
		return r;
	r = mq_fresh(&m->up);
	if (r)
		mq_close(m->down);
	return r;
}

static void mq_teardown(void *arg)
{
	struct mq_pp *m = arg;
	mq_close(m->down);
	mq_close(m->up);
}

static int mq_put(mqd_t q, const char *msg)
{
	int r;
	while (mq_send(q, msg, MSG, 0) < 0)
		if ((r = retry_or_fail()))
			return r;
	return 0;
}

static int mq_get(mqd_t q, char *msg)
{
	int r;
	ssize_t k;
	while ((k = mq_receive(q, msg, MSG, NULL)) < 0)
		if ((r = retry_or_fail()))
			return r;
	return k == MSG ? 0 : -EBADMSG;
}

static int mq_ping(void *arg, long n)
{
	struct mq_pp *m = arg;
	for (long i = 0; i < n; i++) {
		uint64_t seq = m->seq++, echo;
		memcpy(m->msg, &seq, sizeof(seq));
		int r = mq_put(m->down, m->msg);
		if (!r)
			r = mq_get(m->up, m->msg);
		if (r)
			return r;
		memcpy(&echo, m->msg, sizeof(echo));
		if (echo != seq)
			return -EBADMSG;
	}
	return 0;
}

static int mq_pong(void *arg, long n)
{
	struct mq_pp *m = arg;
	for (long i = 0; i < n; i++) {
		int r = mq_get(m->down, m->msg);
		if (!r)
			r = mq_put(m->up, m->msg);
		if (r)
			return r;
	}
	return 0;
}

static void ref_posix_mq(void)
{
	struct mq_pp m;
	struct bench_pair p = {
		.iters = 200, .arg = &m, .setup = mq_setup,
		.parent_run = mq_ping, .child_run = mq_pong, .teardown = mq_teardown,
	};
	pair_row("posix_mq_rtt", &p, "futex_rtt", 'n', 0);
}

/* ---- System V message queues -------------------------------------------- */

/* One private queue; type 1 travels to the child, type 2 back. */
struct sysv_pp {
	int id;
	uint64_t seq;
	struct { long type; char text[MSG]; } m;
};

static void sysv_remove(void *arg)
{
	msgctl(*(int *)arg, IPC_RMID, NULL);
}

static int sysv_setup(void *arg)
{
	struct sysv_pp *s = arg;
	s->id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (s->id < 0)
		return errno == ENOSYS ? -ENOSYS : sk_neg_errno();
	int r = bench_cleanup_push(sysv_remove, &s->id);
	if (r)
		sysv_remove(&s->id);
	return r;
}

static void sysv_teardown(void *arg)
{
	bench_cleanup_pop(true);
}

static int sysv_put(struct sysv_pp *s, long type)
{
	int r;
	s->m.type = type;
	while (msgsnd(s->id, &s->m, MSG, 0) < 0)
		if ((r = retry_or_fail()))
			return r;
	return 0;
}

static int sysv_get(struct sysv_pp *s, long type)
{
	int r;
	ssize_t k;
	while ((k = msgrcv(s->id, &s->m, MSG, type, 0)) < 0)
		if ((r = retry_or_fail()))
			return r;
	return k == MSG ? 0 : -EBADMSG;
}

static int sysv_ping(void *arg, long n)
{
	struct sysv_pp *s = arg;
	for (long i = 0; i < n; i++) {
		uint64_t seq = s->seq++, echo;
		memcpy(s->m.text, &seq, sizeof(seq));
		int r = sysv_put(s, 1);
		if (!r)
			r = sysv_get(s, 2);
		if (r)
			return r;
		memcpy(&echo, s->m.text, sizeof(echo));
		if (echo != seq)
			return -EBADMSG;
	}
	return 0;
}

static int sysv_pong(void *arg, long n)
{
	struct sysv_pp *s = arg;
	for (long i = 0; i < n; i++) {
		int r = sysv_get(s, 1);
		if (!r)
			r = sysv_put(s, 2);
		if (r)
			return r;
	}
	return 0;
}

static void ref_sysv_mq(void)
{
	struct sysv_pp s;
	struct bench_pair p = {
		.iters = 200, .arg = &s, .setup = sysv_setup,
		.parent_run = sysv_ping, .child_run = sysv_pong,
		.teardown = sysv_teardown,
	};
	pair_row("sysv_mq_rtt", &p, "futex_rtt", 'n', 0);
}

/* ---- memcpy bandwidth ----------------------------------------------------- */

struct copy {
	unsigned char *src, *dst;
	size_t block, nblocks, pos, span;
};

static int copy_run(void *arg, long n)
{
	struct copy *c = arg;
	for (long i = 0; i < n; i++) {
		unsigned char *d = c->dst + c->pos * c->block;
		memcpy(d, c->src, c->block);
		/* The copy escapes: the compiler must perform it. */
		__asm__ __volatile__("" : : "r"(d) : "memory");
		if (++c->pos == c->nblocks)
			c->pos = 0;
	}
	bench_sink(c->dst[c->pos * c->block]);
	return 0;
}

static void copy_row(const char *name, size_t block, long iters)
{
	struct copy c = { .block = block };
	c.span = block * 8 > (1u << 20) ? block * 8 : 1u << 20;
	c.nblocks = c.span / block;
	c.src = malloc(block);
	c.dst = bench_shared_alloc(c.span); /* page-aligned, any mapping will do */
	struct bench_stat st;
	int r = c.src && c.dst ? 0 : -ENOMEM;
	if (!r) {
		memset(c.src, 0x5a, block);
		memset(c.dst, 0, c.span); /* fault the pages in before timing */
		r = bench_solo(copy_run, &c, iters, 0, &st);
	}
	if (bench_check(name, r))
		bench_report_gbps(name, &st, block, NULL);
	free(c.src);
	bench_shared_free(c.dst, c.span);
}

static void ref_memcpy_64(void)
{
	copy_row("memcpy_64", 64, 100000);
}

static void ref_memcpy_4k(void)
{
	copy_row("memcpy_4k", 4096, 10000);
}

static void ref_memcpy_1m(void)
{
	copy_row("memcpy_1m", 1 << 20, 16);
}

/* ---- a plain SPSC ring ---------------------------------------------------- */

/* Shared: head (next slot the consumer reads) and tail (next slot the
 * producer writes) on their own cache lines, then cap slots of msg bytes.
 * Indices count messages and never wrap in practice (64 bits). */
struct ring_hdr {
	uint64_t head SK_ALIGNED_CL;
	uint64_t tail SK_ALIGNED_CL;
};

/* One direction: the shared header and slots, and this side's private
 * index and cached copy of the other side's. */
struct ring {
	struct ring_hdr *hdr;
	unsigned char *slots;
	size_t msg, cap, stride;   /* stride: bytes from one slot to the next */
	uint64_t pos, seen;
};

struct ring_pp {
	struct ring r[2];          /* stream: r[0]; round trip: r[0] out, r[1] back */
	int nring;
	unsigned char *base, *buf; /* buf: private message buffer */
	size_t msg, cap, map;
	size_t stride;             /* 0: msg (slots back to back) */
};

static int ring_setup(void *arg)
{
	struct ring_pp *r = arg;
	size_t stride = r->stride ? r->stride : r->msg;
	size_t one = 4096 + ((r->cap * stride + 4095) & ~(size_t)4095);
	r->nring = r->nring ? r->nring : 1;
	r->map = one * (size_t)r->nring;
	r->base = bench_shared_alloc(r->map);
	r->buf = malloc(r->msg);
	if (!r->base || !r->buf) {
		bench_shared_free(r->base, r->map);
		free(r->buf);
		return -ENOMEM;
	}
	for (int i = 0; i < r->nring; i++)
		r->r[i] = (struct ring){ .hdr = (struct ring_hdr *)(void *)(r->base + i * one),
		                         .slots = r->base + i * one + 4096,
		                         .msg = r->msg, .cap = r->cap, .stride = stride };
	memset(r->buf, 0x5a, r->msg);
	return 0;
}

static void ring_teardown(void *arg)
{
	struct ring_pp *r = arg;
	bench_shared_free(r->base, r->map);
	free(r->buf);
}

/* Producer: wait for a free slot, copy buf in (its first 8 bytes: the
 * position), publish. */
static int ring_put(struct ring *q, unsigned char *buf)
{
	uint64_t t = q->pos;
	unsigned spins = 0;
	/* Acquire: pairs with the consumer's release of head; its copy out
	 * of the slot we are about to overwrite is complete. */
	while (t - q->seen >= q->cap && t - (q->seen = sk_load_acquire(&q->hdr->head)) >= q->cap)
		if (bench_poll(&spins))
			return -ECANCELED;
	memcpy(buf, &t, sizeof(t));
	memcpy(q->slots + (t & (q->cap - 1)) * q->stride, buf, q->msg);
	/* Release: publishes the slot's bytes; pairs with the consumer's
	 * acquire load of tail. */
	sk_store_release(&q->hdr->tail, t + 1);
	q->pos = t + 1;
	return 0;
}

/* Consumer: wait for a message, copy it out into buf, check its position,
 * free the slot. */
static int ring_get(struct ring *q, unsigned char *buf)
{
	uint64_t h = q->pos, seq;
	unsigned spins = 0;
	/* Acquire: pairs with the producer's release of tail. */
	while (h == q->seen && h == (q->seen = sk_load_acquire(&q->hdr->tail)))
		if (bench_poll(&spins))
			return -ECANCELED;
	if (q->seen - h > q->cap)
		return -EBADMSG;
	memcpy(buf, q->slots + (h & (q->cap - 1)) * q->stride, q->msg);
	memcpy(&seq, buf, sizeof(seq));
	if (seq != h)
		return -EBADMSG;
	/* Release: our copy out is done before the producer may reuse the
	 * slot; pairs with its acquire load of head. */
	sk_store_release(&q->hdr->head, h + 1);
	q->pos = h + 1;
	return 0;
}

static int ring_produce(void *arg, long n)
{
	struct ring_pp *r = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++)
		e = ring_put(&r->r[0], r->buf);
	return e;
}

/* Consumer (timed). */
static int ring_consume(void *arg, long n)
{
	struct ring_pp *r = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++)
		e = ring_get(&r->r[0], r->buf);
	return e;
}

/* Round trip: the parent puts into r[0] and takes the answer from r[1]. */
static int ring_ping(void *arg, long n)
{
	struct ring_pp *r = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++)
		if (!(e = ring_put(&r->r[0], r->buf)))
			e = ring_get(&r->r[1], r->buf);
	return e;
}

static int ring_pong(void *arg, long n)
{
	struct ring_pp *r = arg;
	int e = 0;
	for (long i = 0; i < n && !e; i++)
		if (!(e = ring_get(&r->r[0], r->buf)))
			e = ring_put(&r->r[1], r->buf);
	return e;
}

static void ring_row(const char *name, size_t msg, size_t cap, long iters,
                     const char *ref)
{
	struct ring_pp r = { .msg = msg, .cap = cap, .nring = 1 };
	struct bench_pair p = {
		.iters = iters, .arg = &r, .setup = ring_setup,
		.parent_run = ring_consume, .child_run = ring_produce,
		.teardown = ring_teardown,
	};
	pair_row(name, &p, ref, ref ? 'g' : 'r', msg);
}

/* A 64-byte round trip over two such rings of 2 (or 64) slots each. */
static void ref_ring_rtt_2(void)
{
	struct bench_pair p;
	bench_ref_pair("ring_rtt_2slot", &p);
	pair_row("ring_rtt_2slot", &p, "msg64_rtt", 'n', 0);
}

static void ref_ring_rtt_64(void)
{
	struct bench_pair p;
	bench_ref_pair("ring_rtt_64slot", &p);
	pair_row("ring_rtt_64slot", &p, "msg64_rtt", 'n', 0);
}

static void ref_ring_rtt_80b(void)
{
	struct bench_pair p;
	bench_ref_pair("ring_rtt_64slot_80b", &p);
	pair_row("ring_rtt_64slot_80b", &p, "ring_rtt_64slot", 'n', 0);
}

static void ref_ring_64(void)
{
	ring_row("spsc_ring_64", 64, 1024, 100000, NULL);
}

static void ref_ring_4k(void)
{
	ring_row("spsc_ring_4k", 4096, 64, 5000, "memcpy_4k");
}

static void ref_ring_1m(void)
{
	ring_row("spsc_ring_1m", 1 << 20, 8, 16, "memcpy_1m");
}

/* ---- references as pairs (refs.h) ------------------------------------- */

int bench_ref_pair(const char *name, struct bench_pair *p)
{
	static struct word_pp w;
	static struct msg_pp m;
	/* Round-trip rings: one slot per 128-byte pair (SK_PAIR), as a
	 * cache-friendly ring lays them out. */
	static struct ring_pp r2 = { .msg = MSG, .cap = 2, .nring = 2, .stride = SK_PAIR };
	static struct ring_pp r64 = { .msg = MSG, .cap = 64, .nring = 2, .stride = SK_PAIR };
	static struct ring_pp r80 = { .msg = MSG + 16, .cap = 64, .nring = 2, .stride = SK_PAIR };

	if (!strcmp(name, "cacheline_rtt"))
		*p = (struct bench_pair){ .iters = 10000, .arg = &w, .setup = word_setup,
		                          .parent_run = spin_ping, .child_run = spin_pong,
		                          .teardown = word_teardown };
	else if (!strcmp(name, "msg64_rtt"))
		*p = (struct bench_pair){ .iters = 10000, .arg = &m, .setup = msg_setup,
		                          .parent_run = msg_ping, .child_run = msg_pong,
		                          .teardown = msg_teardown };
	else if (!strcmp(name, "ring_rtt_2slot") || !strcmp(name, "ring_rtt_64slot") ||
	         !strcmp(name, "ring_rtt_64slot_80b"))
		*p = (struct bench_pair){ .iters = 10000,
		                          .arg = name[9] == '2' ? &r2 : name[15] ? &r80 : &r64,
		                          .setup = ring_setup, .parent_run = ring_ping,
		                          .child_run = ring_pong, .teardown = ring_teardown };
	else
		return -ENOENT;
	return 0;
}

/* ---- registration (one constructor: the order below is the run order) --- */

static void __attribute__((constructor)) baseline_register(void)
{
	static const struct { const char *name; bench_fn fn; } refs[] = {
		{ "cacheline_rtt", ref_cacheline },
		{ "msg64_rtt", ref_msg64 },
		{ "futex_rtt", ref_futex },
		{ "pipe_rtt", ref_pipe },
		{ "pipe_rtt_loaded", ref_pipe_loaded },
		{ "unix_stream_rtt", ref_ustream },
		{ "unix_dgram_rtt", ref_udgram },
		{ "posix_mq_rtt", ref_posix_mq },
		{ "sysv_mq_rtt", ref_sysv_mq },
		{ "tcp_rtt", ref_tcp },
		{ "memcpy_64", ref_memcpy_64 },
		{ "memcpy_4k", ref_memcpy_4k },
		{ "memcpy_1m", ref_memcpy_1m },
		{ "spsc_ring_64", ref_ring_64 },
		{ "spsc_ring_4k", ref_ring_4k },
		{ "spsc_ring_1m", ref_ring_1m },
		{ "ring_rtt_2slot", ref_ring_rtt_2 },
		{ "ring_rtt_64slot", ref_ring_rtt_64 },
		{ "ring_rtt_64slot_80b", ref_ring_rtt_80b },
	};
	for (size_t i = 0; i < SK_ARRAY_LEN(refs); i++)
		bench_register_ref(refs[i].name, refs[i].fn);
}
