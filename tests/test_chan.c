/*
 * test_chan.c - channels in one process and across fork: send/recv,
 * wrap-around, full and empty, timeouts, variable sizes and -EMSGSIZE,
 * zero-copy, statistics, every backend, hand-corrupted shared state.
 * Multi-process stress and crash recovery are in test_chan_stress.c.
 *
 * Names come from sk_test_new_name() and are removed by the suite's .fini,
 * also after a failed assertion.  Forked children report through their
 * exit status and are always reaped.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "chan_msg.h"
#include "lib_test.h"
#include "shmkit.h"

#define MS 1000000LL
#define SEC 1000000000LL

TestSuite(chan, .timeout = 60, .fini = sk_test_cleanup);

static shmkit_chan *make(const char *name, uint32_t cap, uint32_t max, unsigned flags)
{
	struct shmkit_chan_opts o = { .capacity = cap, .max_msg = max, .flags = flags | SHMKIT_EXCL };
	shmkit_chan *ch = NULL;
	int r = shmkit_chan_create(&ch, name, &o);

	cr_assert_eq(r, 0, "create %s: %s (%s)", name, shmkit_strerror(r), shmkit_errdetail());
	return ch;
}

static void send_u64(shmkit_chan *ch, uint64_t v)
{
	int r = shmkit_chan_send(ch, &v, sizeof(v), 0);
	cr_assert_eq(r, 0, "send %llu: %s (%s)", (unsigned long long)v, shmkit_strerror(r),
	             shmkit_errdetail());
}

static void recv_u64(shmkit_chan *ch, uint64_t want)
{
	uint64_t v = ~want;
	ssize_t n = shmkit_chan_recv(ch, &v, sizeof(v), 0);
	cr_assert_eq(n, (ssize_t)sizeof(v), "recv: %s (%s)", shmkit_strerror((int)n),
	             shmkit_errdetail());
	cr_assert_eq(v, want, "got %llu, want %llu", (unsigned long long)v, (unsigned long long)want);
}

static struct shmkit_chan_stats stats(shmkit_chan *ch)
{
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	return st;
}

/* ---- basics -------------------------------------------------------------- */

Test(chan, send_recv_and_stats)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 5, 100, 0), *ro = NULL;
	struct shmkit_chan_opts ro_opts = { .flags = SHMKIT_RDONLY };

	cr_assert_eq(shmkit_chan_open(&ro, name, &ro_opts), 0);
	for (uint64_t i = 0; i < 3; i++)
		send_u64(ch, i);
	struct shmkit_chan_stats st = stats(ro);
	cr_expect_eq(st.capacity, 8, "capacity rounds up to a power of 2");
	cr_expect_eq(st.max_msg, 100);
	cr_expect_eq(st.depth, 3);
	cr_expect_eq(st.sent, 3);
	cr_expect_eq(st.slot_size, 128, "round_up(16 + 100, 128)");
	cr_expect_eq(st.seg_size, (st.hdr_size + 8 * st.slot_size + 4095) / 4096 * 4096);
	cr_expect_eq(st.spsc, 0);
	for (uint64_t i = 0; i < 3; i++)
		recv_u64(ch, i);
	st = stats(ro);
	cr_expect_eq(st.received, 3);
	cr_expect_eq(st.depth, 0);
	uint64_t v = 0;
	cr_expect_eq(shmkit_chan_send(ro, &v, sizeof(v), 0), -EPERM, "read-only handle sends");
	cr_expect_eq(shmkit_chan_recv(ro, &v, sizeof(v), 0), -EPERM);
	shmkit_chan_close(ro);
	shmkit_chan_close(ch);
}

Test(chan, bad_arguments)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = SK_CHAN_MAX_CAPACITY + 1, .max_msg = 8 };
	shmkit_chan *ch = NULL;

	cr_expect_eq(shmkit_chan_create(NULL, name, NULL), -EINVAL);
	cr_expect_eq(shmkit_chan_create(&ch, name, &o), -EINVAL);
	o.capacity = 4;
	o.max_msg = SK_CHAN_MAX_MSG + 1;
	cr_expect_eq(shmkit_chan_create(&ch, name, &o), -EINVAL);
	o.max_msg = 8;
	o.wait = 7;
	cr_expect_eq(shmkit_chan_create(&ch, name, &o), -EINVAL);
	o.wait = 0;
	o.flags = SHMKIT_COW;
	cr_expect_eq(shmkit_chan_create(&ch, name, &o), -EINVAL);
	cr_expect_eq(sk_test_exists(name), 0, "a failed create leaves nothing");
	cr_expect_eq(shmkit_chan_open(&ch, name, NULL), -ENOENT);

	/* A byte segment is not a channel. */
	struct shmkit_seg_opts so = { .size = 4096 };
	shmkit_seg *seg;
	cr_assert_eq(shmkit_seg_create(&seg, name, &so), 0);
	cr_expect_eq(shmkit_chan_open(&ch, name, NULL), -EPROTO);
	cr_expect_eq(shmkit_chan_attach(&ch, seg, NULL), -EPROTO);
	shmkit_seg_close(seg);
	cr_expect_eq(shmkit_chan_send(NULL, "x", 1, 0), -EINVAL);
	cr_expect_eq(shmkit_chan_close(NULL), 0);
}

Test(chan, create_opens_existing_unless_exclusive)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *a = make(name, 4, 16, 0), *b = NULL;
	struct shmkit_chan_opts o = { .capacity = 64, .max_msg = 1000 };

	cr_assert_eq(shmkit_chan_create(&b, name, &o), 0);
	cr_expect_eq(stats(b).capacity, 4, "the existing channel's geometry applies");
	send_u64(a, 42);
	recv_u64(b, 42);
	o.flags = SHMKIT_EXCL;
	shmkit_chan *c = NULL;
	cr_expect_eq(shmkit_chan_create(&c, name, &o), -EEXIST);
	shmkit_chan_close(b);
	shmkit_chan_close(a);
}

static void wrap_many(unsigned flags)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 2, 8, flags);

	for (uint64_t i = 0; i < 100000; i += 2) {
		send_u64(ch, i);
		send_u64(ch, i + 1);
		recv_u64(ch, i);
		recv_u64(ch, i + 1);
	}
	struct shmkit_chan_stats st = stats(ch);
	cr_expect_eq(st.sent, 100000);
	cr_expect_eq(st.received, 100000);
	shmkit_chan_close(ch);
}

Test(chan, wrap_around_mpmc) { wrap_many(0); }
Test(chan, wrap_around_spsc) { wrap_many(SHMKIT_CHAN_SPSC); }

static void full_and_empty(unsigned flags, int wait)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 4, .max_msg = 8, .flags = flags, .wait = wait };
	shmkit_chan *ch = NULL;
	uint64_t v = 0;

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	cr_expect_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), -EAGAIN);
	cr_expect_eq(shmkit_chan_recv(ch, &v, sizeof(v), 20 * MS), -ETIMEDOUT);
	const void *p;
	cr_expect_eq(shmkit_chan_peek(ch, &p, 5 * MS), -ETIMEDOUT);
	for (uint64_t i = 0; i < 4; i++)
		send_u64(ch, i);
	cr_expect_eq(shmkit_chan_send(ch, &v, sizeof(v), 0), -EAGAIN);
	cr_expect_eq(shmkit_chan_send(ch, &v, sizeof(v), 20 * MS), -ETIMEDOUT);
	void *w;
	cr_expect_eq(shmkit_chan_reserve(ch, &w, 5 * MS), -ETIMEDOUT);
	struct shmkit_chan_stats st = stats(ch);
	cr_expect_eq(st.depth, 4);
	cr_expect_geq(st.full_waits, 3);
	cr_expect_geq(st.empty_waits, 3);
	for (uint64_t i = 0; i < 4; i++)
		recv_u64(ch, i);
	shmkit_chan_close(ch);
}

Test(chan, full_empty_timeouts_adaptive) { full_and_empty(0, SHMKIT_WAIT_ADAPTIVE); }
Test(chan, full_empty_timeouts_spin) { full_and_empty(0, SHMKIT_WAIT_SPIN); }
Test(chan, full_empty_timeouts_block) { full_and_empty(0, SHMKIT_WAIT_BLOCK); }
Test(chan, full_empty_timeouts_spsc) { full_and_empty(SHMKIT_CHAN_SPSC, SHMKIT_WAIT_ADAPTIVE); }

static void sizes(unsigned flags)
{
	const char *name = sk_test_new_name("posix");
	enum { MAX = 300 };
	shmkit_chan *ch = make(name, 4, MAX, flags);
	unsigned char in[MAX + 1], out[MAX + 1];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 13 + 1);
	cr_expect_eq(shmkit_chan_send(ch, in, MAX + 1, 0), -EMSGSIZE);
	for (size_t len = 0; len <= MAX; len += (len < 70 ? 1 : 23)) {
		cr_assert_eq(shmkit_chan_send(ch, in, len, 0), 0);
		if (len > 0) /* too small a buffer: the message stays queued */
			cr_assert_eq(shmkit_chan_recv(ch, out, len - 1, 0), -EMSGSIZE);
		memset(out, 0, sizeof(out));
		cr_assert_eq(shmkit_chan_recv(ch, out, sizeof(out), 0), (ssize_t)len);
		cr_assert_eq(memcmp(in, out, len), 0, "len %zu", len);
	}
	cr_expect_eq(stats(ch).received, stats(ch).sent);
	shmkit_chan_close(ch);
}

/* A message of up to 48 bytes shares one 64-byte line with its slot's seq
 * word (chan.h, version 5): a reserved buffer's 48 bytes lie in the line
 * its slot starts in; and each slot fills one 128-byte pair (version 7),
 * starting on its boundary. */
static void one_line(unsigned flags)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 8, 48, flags);
	struct shmkit_chan_stats st;
	void *w;

	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	cr_expect_eq(st.slot_size, 128, "a 48-byte slot fills one 128-byte pair, got %u", st.slot_size);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(shmkit_chan_reserve(ch, &w, 0), 0);
		uintptr_t a = (uintptr_t)w;
		cr_expect_eq((a - 16) & 127, 0, "slot %d starts at offset %u in its 128-byte pair "
		             "(the prefetcher's unit)", i, (unsigned)((a - 16) & 127));
		cr_expect_eq(a & ~(uintptr_t)63, (a + 47) & ~(uintptr_t)63,
		             "payload %d at line offset %u crosses into the next line", i, (unsigned)(a & 63));
		memset(w, i, 48);
		cr_assert_eq(shmkit_chan_commit(ch, 48), 0);
	}
	for (int i = 0; i < 8; i++) {
		unsigned char buf[48], want[48];
		memset(want, i, sizeof(want));
		cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 48);
		cr_expect_eq(memcmp(buf, want, 48), 0);
	}
	shmkit_chan_close(ch);
}

Test(chan, small_messages_share_the_seq_line_mpmc) { one_line(0); }
Test(chan, small_messages_share_the_seq_line_spsc) { one_line(SHMKIT_CHAN_SPSC); }

Test(chan, variable_sizes_mpmc) { sizes(0); }
Test(chan, variable_sizes_spsc) { sizes(SHMKIT_CHAN_SPSC); }

/* ---- zero-copy ----------------------------------------------------------- */

static void zero_copy(unsigned flags)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, flags);
	void *w, *w2;
	const void *r;

	cr_assert_eq(shmkit_chan_reserve(ch, &w, 0), 0);
	cr_expect_eq((uintptr_t)w % 16, 0, "payload is 16-byte aligned");
	cr_expect_eq(shmkit_chan_reserve(ch, &w2, 0), -EINVAL, "one reservation per handle");
	cr_expect_eq(shmkit_chan_send(ch, "x", 1, 0), -EINVAL);
	memcpy(w, "hello", 5);
	cr_expect_eq(shmkit_chan_commit(ch, 65), -EMSGSIZE, "too long: stays reserved");
	cr_assert_eq(shmkit_chan_commit(ch, 5), 0);
	cr_expect_eq(shmkit_chan_commit(ch, 5), -EINVAL);

	/* An aborted reservation is skipped: the next message follows. */
	cr_assert_eq(shmkit_chan_reserve(ch, &w, 0), 0);
	memcpy(w, "junk", 4);
	cr_assert_eq(shmkit_chan_abort(ch), 0);
	cr_expect_eq(shmkit_chan_abort(ch), -EINVAL);
	cr_assert_eq(shmkit_chan_send(ch, "world", 5, 0), 0);

	cr_assert_eq(shmkit_chan_peek(ch, &r, 0), 5);
	cr_expect_eq(memcmp(r, "hello", 5), 0);
	char buf[8];
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EINVAL, "peeked: release first");
	cr_assert_eq(shmkit_chan_release(ch), 0);
	cr_expect_eq(shmkit_chan_release(ch), -EINVAL);
	cr_assert_eq(shmkit_chan_peek(ch, &r, 0), 5);
	cr_expect_eq(memcmp(r, "world", 5), 0);
	cr_assert_eq(shmkit_chan_release(ch), 0);
	cr_expect_eq(shmkit_chan_peek(ch, &r, 0), -EAGAIN);

	/* Many laps of reserve/commit and abort. */
	for (uint32_t i = 0; i < 1000; i++) {
		cr_assert_eq(shmkit_chan_reserve(ch, &w, 0), 0);
		memcpy(w, &i, sizeof(i));
		if (i % 3 == 0) {
			cr_assert_eq(shmkit_chan_abort(ch), 0);
			continue;
		}
		cr_assert_eq(shmkit_chan_commit(ch, sizeof(i)), 0);
		uint32_t got;
		cr_assert_eq(shmkit_chan_recv(ch, &got, sizeof(got), 0), (ssize_t)sizeof(got));
		cr_assert_eq(got, i);
	}
	/* Close with a reservation open gives it back. */
	cr_assert_eq(shmkit_chan_reserve(ch, &w, 0), 0);
	shmkit_chan *other;
	cr_assert_eq(shmkit_chan_open(&other, name, NULL), 0);
	shmkit_chan_close(ch);
	cr_expect_eq(shmkit_chan_recv(other, buf, sizeof(buf), 0), -EAGAIN);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(shmkit_chan_send(other, "y", 1, 0), 0, "the slot came back");
	if (!(flags & SHMKIT_CHAN_SPSC))
		cr_expect_eq(stats(other).aborted, 1000 / 3 + 1 + 1 + 1);
	shmkit_chan_close(other);
}

Test(chan, zero_copy_mpmc) { zero_copy(0); }
Test(chan, zero_copy_spsc) { zero_copy(SHMKIT_CHAN_SPSC); }

/* ---- backends --------------------------------------------------------------- */

/* Two channels over one backend: requests to the child, replies back. */
struct pair {
	const char *names[2];
	shmkit_chan *inherited[2]; /* anon/memfd across fork: the parent's handles */
	int sock;                  /* memfd fd passing, else -1 */
	unsigned count;
};

static int child_echo(shmkit_chan *req, shmkit_chan *rep, unsigned count)
{
	struct chan_msg m, got;
	char buf[sizeof(m)];

	for (unsigned i = 0; i < count; i++) {
		ssize_t n = shmkit_chan_recv(req, buf, sizeof(buf), 10 * SEC);
		if (n < 0 || !chan_msg_check(buf, (size_t)n, &got) || got.id != 0 || got.seq != i)
			return 10;
		size_t len = chan_msg_fill(&m, 1, i);
		if (shmkit_chan_send(rep, &m, len, 10 * SEC))
			return 11;
	}
	return 0;
}

/* The child's handle number i: inherited, received over the socket, or
 * opened by name.  NULL on failure. */
static shmkit_chan *child_handle(const struct pair *p, int i)
{
	shmkit_chan *ch = NULL;
	shmkit_seg *seg;

	if (p->inherited[i])
		return p->inherited[i];
	if (p->sock < 0)
		return shmkit_chan_open(&ch, p->names[i], NULL) ? NULL : ch;
	if (shmkit_seg_recv_fd(&seg, p->sock, NULL))
		return NULL;
	if (shmkit_chan_attach(&ch, seg, NULL))
		shmkit_seg_close(seg);
	return ch;
}

static int child_main(void *arg)
{
	struct pair *p = arg;
	shmkit_chan *ch[2];

	for (int i = 0; i < 2; i++)
		if (!(ch[i] = child_handle(p, i)))
			return 20 + i;
	int r = child_echo(ch[0], ch[1], p->count);
	for (int i = 0; i < 2; i++)
		if (ch[i] != p->inherited[i])
			shmkit_chan_close(ch[i]);
	return r;
}

static void ping_pong_child(const char *prefix, bool inherit, bool pass_fd)
{
	int sv[2] = { -1, -1 };
	struct pair p = { .sock = -1, .count = 300 };
	shmkit_chan *ch[2];

	for (int i = 0; i < 2; i++) {
		p.names[i] = sk_test_new_name(prefix);
		ch[i] = make(p.names[i], 2, sizeof(struct chan_msg), 0);
		p.inherited[i] = inherit ? ch[i] : NULL;
	}
	if (pass_fd) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		p.sock = sv[1];
	}
	pid_t pid = sk_test_fork(child_main, &p);
	cr_assert_gt(pid, 0);
	for (int i = 0; pass_fd && i < 2; i++)
		cr_assert_eq(shmkit_seg_send_fd(shmkit_chan_seg(ch[i]), sv[0]), 0);
	struct chan_msg m, got;
	char buf[sizeof(m)];
	int bad = 0;
	for (unsigned i = 0; i < p.count && !bad; i++) {
		size_t len = chan_msg_fill(&m, 0, i);
		bad |= shmkit_chan_send(ch[0], &m, len, 10 * SEC) != 0;
		ssize_t n = shmkit_chan_recv(ch[1], buf, sizeof(buf), 10 * SEC);
		bad |= n < 0 || !chan_msg_check(buf, (size_t)n, &got) || got.id != 1 || got.seq != i;
	}
	int rc = sk_test_reap(pid);
	if (pass_fd) {
		close(sv[0]);
		close(sv[1]);
	}
	for (int i = 0; i < 2; i++)
		shmkit_chan_close(ch[i]);
	cr_expect_eq(bad, 0);
	cr_expect_eq(rc, 0, "child exit %d", rc);
}

Test(chan, backend_posix) { ping_pong_child("posix", false, false); }
Test(chan, backend_sysv) { ping_pong_child("sysv", false, false); }
Test(chan, backend_file) { ping_pong_child("file", false, false); }
Test(chan, backend_anon_fork) { ping_pong_child("anon", true, false); }
Test(chan, backend_memfd_fork) { ping_pong_child("memfd", true, false); }
Test(chan, backend_memfd_fd_passing) { ping_pong_child("memfd", false, true); }

/* ---- corruption ------------------------------------------------------------ */

static struct sk_chan_ctl *ctl_of(shmkit_chan *ch)
{
	return shmkit_seg_data(shmkit_chan_seg(ch));
}

static struct sk_chan_slot *slot_of(shmkit_chan *ch, uint64_t pos)
{
	struct sk_chan_ctl *c = ctl_of(ch);
	return (struct sk_chan_slot *)(void *)((char *)c + c->slots_off +
	                                       (pos & (c->capacity - 1)) * c->slot_size);
}

/* A new handle on name in place of ch (closed: its roles are free), so
 * that the next recv takes the consumer role and reads head anew. */
static shmkit_chan *reopen(shmkit_chan *ch, const char *name)
{
	struct shmkit_chan_opts o = { 0 };
	shmkit_chan *n = NULL;
	int r = shmkit_chan_open(&n, name, &o);

	cr_assert_eq(r, 0, "open %s: %s", name, shmkit_strerror(r));
	shmkit_chan_close(ch);
	return n;
}

static void expect_bad(shmkit_chan *ch, const char *what)
{
	char buf[64];
	const void *p;
	void *w;

	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EBADMSG, "%s: recv", what);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 50 * MS), -EBADMSG, "%s: timed recv", what);
	cr_expect_eq(shmkit_chan_peek(ch, &p, 0), -EBADMSG, "%s: peek", what);
	cr_expect_eq(shmkit_chan_send(ch, "x", 1, 0), -EBADMSG, "%s: send", what);
	cr_expect_eq(shmkit_chan_reserve(ch, &w, 50 * MS), -EBADMSG, "%s: reserve", what);
}

Test(chan, corrupt_indices_mpmc)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, 0);
	struct sk_chan_ctl *c = ctl_of(ch);

	send_u64(ch, 1);
	c->head = c->tail + 4 + 1; /* head far beyond tail */
	c->tail = c->head + 2 * 4 + 1;
	expect_bad(ch, "indices");
	c->head = 1000003;
	c->tail = 7; /* tail a lap behind a FREE slot and far behind head */
	expect_bad(ch, "backwards");
	shmkit_chan_close(ch);
}

Test(chan, corrupt_slot_words)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, 0);
	char buf[64];

	send_u64(ch, 1);
	struct sk_chan_slot *s = slot_of(ch, 0);
	uint64_t good = s->seq;
	s->seq = sk_seq_make(1, SK_SLOT_FULL, 0); /* position 1 in slot 0 */
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EBADMSG);
	s->seq = sk_seq_make(12345, SK_SLOT_FULL, 0); /* a lap far in the past/future */
	s->seq = sk_seq_make((uint64_t)-8, SK_SLOT_FULL, 0);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EBADMSG);
	s->seq = good;
	s->len = 65; /* longer than max_msg */
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EBADMSG);
	const void *p;
	cr_expect_eq(shmkit_chan_peek(ch, &p, 0), -EBADMSG);
	s->len = 8;
	recv_u64(ch, 1);
	shmkit_chan_close(ch);
}

/* A consumer polling an SPSC channel with timeout 0: its empty calls
 * check the indices once per SK_CHAN_POLL_BATCH (64) of them (chan_msg.c,
 * count_wait), so a poller meets corrupt indices within 64 calls.  The
 * result of the first call that is not -EAGAIN, or -EAGAIN after 64. */
static int poll_64(shmkit_chan *ch)
{
	char buf[64];
	int r = -EAGAIN;

	for (int i = 0; i < 64 && r == -EAGAIN; i++)
		r = (int)shmkit_chan_recv(ch, buf, sizeof(buf), 0);
	return r;
}

Test(chan, corrupt_indices_spsc)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, SHMKIT_CHAN_SPSC);
	struct sk_chan_ctl *c = ctl_of(ch);
	char buf[64];

	send_u64(ch, 1);
	/* More than capacity queued: the producer, which reads head against
	 * tail, reports it; the consumer learns of messages from the slots,
	 * not from tail, so it still takes the one real message. */
	c->tail = c->head + 5;
	void *w;
	cr_expect_eq(shmkit_chan_send(ch, "x", 1, 0), -EBADMSG, "spsc tail: send");
	cr_expect_eq(shmkit_chan_reserve(ch, &w, 50 * MS), -EBADMSG, "spsc tail: reserve");
	recv_u64(ch, 1);
	/* The consumer learns of messages from the slots, so it can be one
	 * ahead of a tail store it has not seen yet (head 1, tail 0): that is
	 * an empty channel, not corruption. */
	c->tail = c->head - 1;
	cr_expect_eq(poll_64(ch), -EAGAIN, "spsc: tail lagging by one");
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), MS), -ETIMEDOUT, "spsc: lagging, waiting");
	c->tail = c->head + 5; /* head 1, tail 6: more than capacity apart */
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), MS), -EBADMSG, "spsc: head vs tail");
	cr_expect_eq(poll_64(ch), -EBADMSG, "spsc: head vs tail, polling");
	/* A consumer keeps its own copy of head while it holds the role (its
	 * polls never load the head line: README "Performance"), so a
	 * garbled head is met by the next handle that takes the role. */
	ch = reopen(ch, name);
	c = ctl_of(ch);
	c->head = 0;
	c->tail = 1;
	slot_of(ch, 0)->seq = sk_seq_make(0, SK_SLOT_FULL, 0); /* the message back */
	c->head = 3; /* head two past tail (one is a tail store not yet seen) */
	cr_expect_eq(poll_64(ch), -EBADMSG);
	ch = reopen(ch, name);
	c = ctl_of(ch);
	c->head = 0;
	slot_of(ch, 0)->len = 1000;
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EBADMSG);
	slot_of(ch, 0)->len = 8;
	recv_u64(ch, 1);
	shmkit_chan_close(ch);
}

Test(chan, corrupt_control_block_refused_at_open)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, 0), *o = NULL;
	struct sk_chan_ctl *c = ctl_of(ch);
	struct sk_chan_ctl saved = *c;

	c->capacity = 1u << 20; /* does not fit the segment */
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EBADMSG);
	c->capacity = 3;
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EBADMSG);
	c->capacity = 4;
	c->slot_size = 64;
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EBADMSG);
	c->slot_size = saved.slot_size;
	c->flags = 0x7;
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EBADMSG);
	c->flags = 0;
	c->fingerprint ^= 1;
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EPROTO);
	c->fingerprint ^= 1;
	c->version = 99;
	cr_expect_eq(shmkit_chan_open(&o, name, NULL), -EPROTO);
	c->version = SK_CHAN_VERSION;
	cr_assert_eq(shmkit_chan_open(&o, name, NULL), 0, "restored: opens again");
	shmkit_chan_close(o);
	shmkit_chan_close(ch);
}

/* ---- per-handle statistics (chan.h: statistics entries) -------------------- */

static unsigned entries_taken(shmkit_chan *ch)
{
	struct sk_chan_ctl *c = ctl_of(ch);
	struct sk_chan_stat *e = (struct sk_chan_stat *)(void *)((char *)c + SK_CHAN_CTL_SIZE);
	unsigned n = 0;
	for (uint32_t i = 0; i < c->stat_entries; i++)
		n += e[i].owner != 0;
	return n;
}

static uint64_t sent_of(shmkit_chan *ch)
{
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	return st.sent;
}

struct stat_child {
	const char *name;
	shmkit_chan *inherited;
	int sends;
	int ready_fd; /* hang: write a byte there, then wait to be killed */
};

static int stat_child_main(void *arg)
{
	struct stat_child *s = arg;
	shmkit_chan *ch = s->inherited;
	if (!ch && shmkit_chan_open(&ch, s->name, NULL))
		return 10;
	for (int i = 0; i < s->sends; i++)
		if (shmkit_chan_send(ch, "x", 1, 0))
			return 11;
	if (s->ready_fd > 0) {
		if (write(s->ready_fd, "r", 1) != 1)
			return 12;
		pause();
	}
	shmkit_chan_close(ch);
	return 0;
}

/* Each MPMC handle counts in an entry of its own; stats sums them and the
 * counts of handles gone, so the totals are exact whoever sent what. */
Test(chan, stats_sum_per_handle_entries)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *a = make(name, 64, 8, 0), *b = NULL;
	struct shmkit_chan_stats st;
	char buf[8];

	cr_assert_eq(shmkit_chan_open(&b, name, NULL), 0);
	cr_expect_eq(entries_taken(a), 2, "one entry per handle");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(shmkit_chan_send(a, "a", 1, 0), 0);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(shmkit_chan_send(b, "b", 1, 0), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(shmkit_chan_recv(b, buf, sizeof(buf), 0), 1);
	cr_expect_eq(shmkit_chan_recv(a, buf, sizeof(buf), 0), 1);
	cr_expect_eq(shmkit_chan_recv(b, buf, sizeof(buf), 0), 1);
	cr_assert_eq(shmkit_chan_stats(a, &st), 0);
	cr_expect_eq(st.sent, 12);
	cr_expect_eq(st.received, 6);
	shmkit_chan_close(b);
	cr_expect_eq(entries_taken(a), 1, "close gives the entry back");
	cr_assert_eq(shmkit_chan_stats(a, &st), 0);
	cr_expect_eq(st.sent, 12, "a closed handle's counts stay");
	cr_expect_eq(st.received, 6);
	cr_expect_eq(st.depth, 6);
	/* A child counts through a handle of its own, opened or inherited:
	 * never in its parent's entry. */
	struct stat_child c1 = { .name = name, .sends = 3 }, c2 = { .name = name, .inherited = a,
	                                                           .sends = 2 };
	cr_assert_eq(sk_test_reap(sk_test_fork(stat_child_main, &c1)), 0);
	cr_assert_eq(sk_test_reap(sk_test_fork(stat_child_main, &c2)), 0);
	cr_expect_eq(sent_of(a), 17);
	cr_expect_eq(entries_taken(a), 1);
	shmkit_chan_close(a);
}

/* A killed handle's entry keeps its counts, and a new handle takes the
 * entry over (its lock is free) once the others are taken, moving the
 * counts to the control block: nothing is lost or counted twice.  Beyond
 * the table, handles count in the control block. */
Test(chan, stats_dead_handle_entry_taken_over, .timeout = 30)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *a = make(name, 256, 8, 0), *h[SK_CHAN_STAT_ENTRIES + 1] = { 0 };
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct stat_child c = { .name = name, .sends = 5, .ready_fd = fds[1] };
	pid_t pid = sk_test_fork(stat_child_main, &c);

	cr_assert_gt(pid, 0);
	char line[4];
	cr_assert_eq(read(fds[0], line, 1), 1, "child ready");
	cr_expect_eq(sent_of(a), 5);
	cr_expect_eq(entries_taken(a), 2);
	kill(pid, SIGKILL);
	sk_test_reap(pid);
	close(fds[0]);
	close(fds[1]);
	cr_expect_eq(sent_of(a), 5, "a dead handle's counts stay");
	/* a holds one entry, the dead child one: 62 are free, then the dead
	 * one is taken over, then the table is full. */
	for (unsigned i = 0; i < SK_CHAN_STAT_ENTRIES; i++)
		cr_assert_eq(shmkit_chan_open(&h[i], name, NULL), 0, "open %u", i);
	cr_expect_eq(entries_taken(a), SK_CHAN_STAT_ENTRIES);
	cr_expect_eq(sent_of(a), 5, "taken over: counts moved, not lost or doubled");
	cr_expect_eq(ctl_of(a)->sent, 5, "the dead handle's counts went to the control block");
	for (unsigned i = 0; i < SK_CHAN_STAT_ENTRIES; i++)
		cr_assert_eq(shmkit_chan_send(h[i], "h", 1, 0), 0);
	cr_expect_eq(sent_of(a), 5 + SK_CHAN_STAT_ENTRIES);
	cr_expect_eq(ctl_of(a)->sent, 6, "the handle without an entry counts in the control block");
	for (unsigned i = 0; i < SK_CHAN_STAT_ENTRIES; i++)
		shmkit_chan_close(h[i]);
	cr_expect_eq(entries_taken(a), 1);
	cr_expect_eq(sent_of(a), 5 + SK_CHAN_STAT_ENTRIES);
	shmkit_chan_close(a);
}

/* ---- a consumer killed inside recv -------------------------------------- */

struct killed_recv {
	const char *name, *point;
};

static int killed_recv_main(void *arg)
{
	struct killed_recv *k = arg;
	shmkit_chan *ch = NULL;
	char buf[16];
	if (shmkit_chan_open(&ch, k->name, NULL))
		return 10;
	sk_crash_arm(k->point);
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf), 5 * SEC);
	return n == 5 ? 20 : 21; /* alive: the crash point was never reached */
}

/* An MPMC recv copies the message out before it takes it (C3' in chan_msg.c):
 * a consumer killed after the copy and before the take leaves the message
 * for the next consumer - nothing to reclaim, nothing lost.  (With a
 * claim before the copy, the message died with its claimer.) */
Test(chan, recv_killed_before_taking_loses_nothing, .timeout = 30)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 8, 16, 0);
	struct killed_recv k = { name, "chan.mpmc.copied" };
	char buf[16];

	cr_assert_eq(shmkit_chan_send(ch, "first", 5, 0), 0);
	int rc = sk_test_reap(sk_test_fork(killed_recv_main, &k));
	cr_assert_eq(rc, 128 + SIGKILL, "the consumer died at %s (exit %d)", k.point, rc);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 5, "the message is still there");
	cr_expect_eq(memcmp(buf, "first", 5), 0);
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	cr_expect_eq(st.received, 1);
	cr_expect_eq(st.reclaimed, 0, "nothing to reclaim");
	shmkit_chan_close(ch);
}

/* Killed after taking it: the one documented loss of a dead consumer; the
 * channel goes on at once (no claim to wait out). */
Test(chan, recv_killed_after_taking_loses_that_one_only, .timeout = 30)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 8, 16, 0);
	struct killed_recv k = { name, "chan.mpmc.taken" };
	char buf[16];

	cr_assert_eq(shmkit_chan_send(ch, "first", 5, 0), 0);
	cr_assert_eq(shmkit_chan_send(ch, "other", 5, 0), 0);
	int rc = sk_test_reap(sk_test_fork(killed_recv_main, &k));
	cr_assert_eq(rc, 128 + SIGKILL, "exit %d", rc);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 5);
	cr_expect_eq(memcmp(buf, "other", 5), 0, "the next message, at once");
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EAGAIN);
	shmkit_chan_close(ch);
}

/* ---- claim records (format 8: chan_msg.c "MPMC protocol") ------------------ */

/* An id no handle of the test holds: its lock is free, so it reads dead. */
#define DEAD_ID (SK_SEQ_PID_MASK - 7)

static struct sk_chan_stat *entry_of(shmkit_chan *ch, uint32_t i)
{
	struct sk_chan_ctl *c = ctl_of(ch);
	cr_assert_lt(i, c->stat_entries);
	return (struct sk_chan_stat *)(void *)((char *)c + SK_CHAN_CTL_SIZE) + i;
}

/* The entry whose record is w, or NULL. */
static struct sk_chan_stat *record_named(shmkit_chan *ch, uint64_t w)
{
	for (uint32_t i = 0; i < ctl_of(ch)->stat_entries; i++)
		if (entry_of(ch, i)->claim == w)
			return entry_of(ch, i);
	return NULL;
}

/* A live producer's reservation: the slot stays FREE(0) behind tail and
 * its record names it.  A consumer blocked there for several wait slices
 * must not free it - not even with a dead handle's stale record naming
 * the same position (a loser of the CAS of tail that died) - and the
 * commit then lands (not -ESTALE). */
Test(chan, live_claim_named_by_its_record_is_never_reclaimed, .timeout = 30)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *a = make(name, 4, 64, 0), *b = NULL;
	struct sk_chan_ctl *c = ctl_of(a);
	uint64_t v = 5;
	void *w;

	cr_assert_eq(shmkit_chan_open(&b, name, NULL), 0);
	cr_assert_eq(shmkit_chan_reserve(a, &w, 0), 0, "%s", shmkit_errdetail());
	cr_expect_eq(slot_of(a, 0)->seq, sk_seq_make(0, SK_SLOT_FREE, 0), "the slot says nothing yet");
	cr_expect_eq(c->tail, 1, "the claim is the CAS of tail");
	struct sk_chan_stat *mine = NULL;
	for (uint32_t i = 0; i < c->stat_entries && !mine; i++) {
		uint64_t r = entry_of(a, i)->claim;
		if (r && sk_seq_pos(r) == 0 && sk_seq_state(r) == SK_SLOT_WRITING)
			mine = entry_of(a, i);
	}
	cr_assert_not_null(mine, "a record names the reservation");
	struct sk_chan_stat *stale = entry_of(a, c->stat_entries - 1);
	cr_assert_eq(stale->owner, 0, "the last entry is free");
	stale->owner = DEAD_ID;
	stale->claim = sk_seq_make(0, SK_SLOT_WRITING, DEAD_ID);

	cr_expect_eq(shmkit_chan_recv(b, &v, sizeof(v), 300 * MS), -ETIMEDOUT,
	             "six wait slices: the live claim is left alone");
	memcpy(w, &v, sizeof(v));
	cr_expect_eq(shmkit_chan_commit(a, sizeof(v)), 0, "%s", shmkit_errdetail());
	v = 0;
	cr_expect_eq(shmkit_chan_recv(b, &v, sizeof(v), 0), (ssize_t)sizeof(v));
	cr_expect_eq(v, 5);
	cr_expect_eq(stats(a).reclaimed, 0);
	stale->claim = 0;
	stale->owner = 0;
	shmkit_chan_close(b);
	shmkit_chan_close(a);
}

/* A producer that died between its claim (tail moved) and its
 * publication leaves the slot FREE(p) behind tail.  The position is
 * freed by the blocked consumer whether a dead record names it or no
 * record does (a new handle took the dead one's entry over). */
static void dead_claim(bool with_record)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4, 64, 0);
	struct sk_chan_ctl *c = ctl_of(ch);
	struct sk_chan_stat *dead = entry_of(ch, c->stat_entries - 1);
	uint64_t v;

	/* The dead producer's claim of position 0, by hand. */
	if (with_record) {
		dead->owner = DEAD_ID;
		dead->claim = sk_seq_make(0, SK_SLOT_WRITING, DEAD_ID);
	}
	c->tail = 1;
	send_u64(ch, 1); /* position 1 */
	cr_expect_eq(shmkit_chan_recv(ch, &v, sizeof(v), 0), -EAGAIN, "blocked at position 0");
	v = 0;
	cr_assert_eq(shmkit_chan_recv(ch, &v, sizeof(v), 20 * SEC), (ssize_t)sizeof(v), "%s",
	             shmkit_errdetail());
	cr_expect_eq(v, 1, "position 0 skipped after a wait slice");
	cr_expect_eq(slot_of(ch, 0)->seq, sk_seq_make(4, SK_SLOT_FREE, 0));
	cr_expect_eq(stats(ch).reclaimed, 1);
	dead->claim = 0;
	dead->owner = 0;
	shmkit_chan_close(ch);
}

Test(chan, dead_claim_named_by_a_dead_record_is_freed, .timeout = 30) { dead_claim(true); }
Test(chan, dead_claim_named_by_no_record_is_freed, .timeout = 30) { dead_claim(false); }

/* With every statistics entry held by a live handle, one more handle has
 * no record: it claims by the CAS of tail and then names itself in the
 * slot (P3'), and works like any other. */
Test(chan, handle_without_entry_names_its_claim_in_the_slot, .timeout = 30)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *h[SK_CHAN_STAT_ENTRIES + 1];
	uint64_t v = 0;
	void *w;

	h[0] = make(name, 4, 64, 0);
	for (unsigned i = 1; i <= SK_CHAN_STAT_ENTRIES; i++)
		cr_assert_eq(shmkit_chan_open(&h[i], name, NULL), 0);
	for (unsigned i = 0; i < SK_CHAN_STAT_ENTRIES; i++) /* each takes an entry */
		cr_assert_eq(shmkit_chan_recv(h[i], &v, sizeof(v), 0), -EAGAIN);
	cr_assert_eq(entries_taken(h[0]), SK_CHAN_STAT_ENTRIES);
	shmkit_chan *last = h[SK_CHAN_STAT_ENTRIES];
	cr_assert_eq(shmkit_chan_reserve(last, &w, 0), 0, "%s", shmkit_errdetail());
	uint64_t s = slot_of(last, 0)->seq;
	cr_expect_eq(sk_seq_state(s), SK_SLOT_WRITING, "slot word %016llx", (unsigned long long)s);
	cr_expect_eq(sk_seq_pos(s), 0);
	cr_expect_neq(sk_seq_id(s), 0, "it names its claimer");
	cr_expect_null(record_named(last, s), "no record: it has no entry");
	v = 42;
	memcpy(w, &v, sizeof(v));
	cr_assert_eq(shmkit_chan_commit(last, sizeof(v)), 0, "%s", shmkit_errdetail());
	send_u64(last, 43);
	recv_u64(h[0], 42);
	recv_u64(h[1], 43);
	for (unsigned i = 0; i <= SK_CHAN_STAT_ENTRIES; i++)
		shmkit_chan_close(h[i]);
}
