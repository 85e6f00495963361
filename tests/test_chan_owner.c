/*
 * test_chan_owner.c - owner tokens of MPMC channels (chan_recover.c, "Owners"):
 * a handle opened with shmkit_chan_opts.owner is a durable identity, so
 * what its process was doing when it was killed is neither lost nor left
 * in doubt:
 *   - a peeked message goes to the owner's next handle, to nobody else,
 *     and no reclaimer frees its slot meanwhile (a producer a lap later
 *     waits, as behind a slow consumer);
 *   - a commit_tag killed before or after its publication, and a
 *     reservation abandoned by a reclaimer, are told apart by
 *     shmkit_chan_owner_tag;
 *   - a live duplicate owner is refused; a handle without an owner
 *     behaves as before.
 * Kills are SIGKILLs at the library's crash points (src/crash.c), armed
 * in a forked child; every child is reaped.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "lib_test.h"
#include "peer.h"
#include "seg.h"
#include "shmkit.h"

#define MS 1000000LL
#define TOKEN 0x5eed0001ULL

TestSuite(chan_owner, .timeout = 60, .fini = sk_test_cleanup);

static shmkit_chan *make(const char *name, uint32_t cap)
{
	struct shmkit_chan_opts o = { .capacity = cap, .max_msg = 32, .flags = SHMKIT_EXCL };
	shmkit_chan *ch = NULL;
	int r = shmkit_chan_create(&ch, name, &o);

	cr_assert_eq(r, 0, "create %s: %s (%s)", name, shmkit_strerror(r), shmkit_errdetail());
	return ch;
}

static int open_owned(shmkit_chan **ch, const char *name, uint64_t owner)
{
	struct shmkit_chan_opts o = { .owner = owner };
	return shmkit_chan_open(ch, name, &o);
}

static shmkit_chan *owned(const char *name, uint64_t owner)
{
	shmkit_chan *ch = NULL;
	int r = open_owned(&ch, name, owner);

	cr_assert_eq(r, 0, "open owner %llx: %s (%s)", (unsigned long long)owner, shmkit_strerror(r),
	             shmkit_errdetail());
	return ch;
}

static void send_str(shmkit_chan *ch, const char *m)
{
	int r = shmkit_chan_send(ch, m, strlen(m), 0);
	cr_assert_eq(r, 0, "send %s: %s (%s)", m, shmkit_strerror(r), shmkit_errdetail());
}

/* recv into buf (NUL-terminated): the length, or the error. */
static ssize_t recv_str(shmkit_chan *ch, char *buf, size_t cap, int64_t timeout)
{
	ssize_t n = shmkit_chan_recv(ch, buf, cap - 1, timeout);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static struct shmkit_chan_stats stats(shmkit_chan *ch)
{
	struct shmkit_chan_stats st;
	cr_assert_eq(shmkit_chan_stats(ch, &st), 0);
	return st;
}

/* ---- children killed at a crash point ------------------------------------- */

enum act { PEEK, COMMIT_TAG, REOPEN };

struct victim {
	const char *name;
	const char *point;   /* crash point armed before the act */
	enum act act;
	const char *msg;     /* COMMIT_TAG: the message */
	uint64_t tag;
};

static int victim_main(void *arg)
{
	struct victim *v = arg;
	shmkit_chan *ch = NULL;
	const void *p;
	void *buf;

	if (v->act != REOPEN && open_owned(&ch, v->name, TOKEN))
		return 10;
	sk_crash_arm(v->point);
	if (v->act == REOPEN) {
		open_owned(&ch, v->name, TOKEN);
		return 11;
	}
	if (v->act == PEEK) {
		shmkit_chan_peek(ch, &p, 0);
		return 12;
	}
	if (shmkit_chan_reserve(ch, &buf, 0))
		return 13;
	memcpy(buf, v->msg, strlen(v->msg));
	shmkit_chan_commit_tag(ch, strlen(v->msg), v->tag);
	return 14; /* alive: the crash point was never reached */
}

static void kill_victim(struct victim *v)
{
	cr_assert_eq(sk_test_reap(sk_test_fork(victim_main, v)), 128 + SIGKILL,
	             "the victim was to die at %s", v->point);
}

/* ---- a consumer killed holding a peek ------------------------------------ */

/* An owned consumer killed right after its claim of the next message. */
static void kill_peeker(const char *name)
{
	struct victim v = { .name = name, .point = "chan.mpmc.taken", .act = PEEK };
	kill_victim(&v);
}

/* An owned consumer is killed right after claiming m0 (C3).  Another
 * consumer gets m1..m3, never m0; a producer a lap later (m4, into m0's
 * slot) waits well past the reclaim grace period: the slot is not freed.
 * The owner's next handle peeks m0 first (same position), releases it,
 * and the producer goes on.  (Without owners, the reclaimer frees the
 * slot and m0 is lost.) */
Test(chan_owner, killed_peek_goes_to_the_successor_and_nobody_else)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4);
	char buf[32];
	const void *p;

	for (int i = 0; i < 4; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		send_str(ch, buf);
	}
	kill_peeker(name);
	for (int i = 1; i < 4; i++) {
		cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 2);
		cr_assert_eq(buf[1], '0' + i, "got %s", buf);
	}
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), -EAGAIN, "m0 went to another consumer");
	cr_assert_eq(shmkit_chan_send(ch, "m4", 2, 300 * MS), -ETIMEDOUT,
	             "a producer a lap later freed the owner's slot");
	cr_assert_eq(stats(ch).reclaimed, 0);

	shmkit_chan *s = owned(name, TOKEN);
	uint64_t pos = 99;
	cr_assert_eq(shmkit_chan_peek_pos(s, &pos), 0, "the inherited peek is there at open");
	cr_assert_eq(pos, 0);
	ssize_t n = shmkit_chan_peek(s, &p, 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(memcmp(p, "m0", 2), 0);
	cr_assert_eq(shmkit_chan_peek_pos(s, &pos), 0);
	cr_assert_eq(pos, 0, "the same position");
	cr_assert_eq(shmkit_chan_release(s), 0);
	cr_assert_eq(shmkit_chan_send(ch, "m4", 2, 300 * MS), 0, "released: the producer goes on");
	cr_assert_eq(recv_str(s, buf, sizeof(buf), 0), 2);
	cr_assert_str_eq(buf, "m4");
	cr_assert_eq(shmkit_chan_peek_pos(s, &pos), -EINVAL);
	shmkit_chan_close(s);
	shmkit_chan_close(ch);
}

/* The inherited message comes out of recv too (and the handle's fd says
 * it is there); a successor closed before it returned the message leaves
 * it to the next one. */
Test(chan_owner, inherited_peek_survives_a_close_and_comes_out_of_recv)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4);
	char buf[32];

	send_str(ch, "hello");
	kill_peeker(name);
	shmkit_chan_close(owned(name, TOKEN)); /* never asked for it */
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), -EAGAIN);
	shmkit_chan *s = owned(name, TOKEN);
	int fd = shmkit_chan_fd(s, SHMKIT_CHAN_POLLIN);
	cr_assert_geq(fd, 0);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 1000), 1, "the fd says the inherited message is there");
	cr_assert_eq(recv_str(s, buf, 3, 0), -EMSGSIZE, "too small a buffer: it stays");
	cr_assert_eq(recv_str(s, buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "hello");
	cr_assert_eq(recv_str(s, buf, sizeof(buf), 0), -EAGAIN, "delivered once");
	shmkit_chan_close(s);
	shmkit_chan_close(ch);
}

/* A successor killed in the middle of its takeover (owner moved to it,
 * the claim not yet): the next one still gets the message, and no
 * reclaimer takes it meanwhile. */
Test(chan_owner, successor_killed_mid_takeover)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 2);
	char buf[32];
	const void *p;

	send_str(ch, "a");
	send_str(ch, "b");
	kill_peeker(name);
	struct victim w = { .name = name, .point = "chan.owner.adopted", .act = REOPEN };
	kill_victim(&w);
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 1);
	cr_assert_str_eq(buf, "b");
	cr_assert_eq(shmkit_chan_send(ch, "c", 1, 300 * MS), -ETIMEDOUT, "the held slot was freed");
	shmkit_chan *s = owned(name, TOKEN);
	cr_assert_eq(shmkit_chan_peek(s, &p, 0), 1);
	cr_assert_eq(*(const char *)p, 'a');
	cr_assert_eq(shmkit_chan_release(s), 0);
	shmkit_chan_close(s);
	shmkit_chan_close(ch);
}

/* ---- a producer killed in commit_tag -------------------------------------- */

static uint64_t tag_of(const char *name)
{
	shmkit_chan *s = owned(name, TOKEN);
	uint64_t tag = 99;
	cr_assert_eq(shmkit_chan_owner_tag(s, &tag), 0);
	shmkit_chan_close(s);
	return tag;
}

/* Killed after its message was published (before it could note the
 * tag): owner_tag says it went in. */
Test(chan_owner, commit_tag_killed_after_publish_is_committed)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4);
	char buf[32];

	struct victim v = { .name = name, .point = "chan.owner.published", .act = COMMIT_TAG,
	                    .msg = "seven", .tag = 7 };
	kill_victim(&v);
	cr_assert_eq(tag_of(name), 7);
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "seven");
	cr_assert_eq(tag_of(name), 7, "and still after it was consumed");
	shmkit_chan_close(ch);
}

/* Killed after it claimed its slot and noted the tag pending, before
 * publishing: owner_tag keeps the last tag that went in; the successor
 * gives the slot back, and consumers go on. */
Test(chan_owner, commit_tag_killed_before_publish_is_not)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4);
	char buf[32];

	struct victim v1 = { .name = name, .point = "none", .act = COMMIT_TAG, .msg = "one", .tag = 1 };
	cr_assert_eq(sk_test_reap(sk_test_fork(victim_main, &v1)), 14);
	struct victim v2 = { .name = name, .point = "chan.owner.pending", .act = COMMIT_TAG,
	                     .msg = "two", .tag = 2 };
	kill_victim(&v2);
	cr_assert_eq(tag_of(name), 1, "the pending commit did not land");
	send_str(ch, "three");
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 3);
	cr_assert_str_eq(buf, "one");
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 5, "the abandoned slot was skipped");
	cr_assert_str_eq(buf, "three");
	shmkit_chan_close(ch);
}

/* The same kill, but a consumer waiting at that position reclaims the
 * slot first (consumers never wait for a dead producer, owned or not):
 * the reclaimer notes it abandoned, so the successor still knows the
 * message did not go in. */
Test(chan_owner, commit_tag_abandoned_by_a_reclaimer_is_not)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4), *other = NULL;
	char buf[32];

	struct victim v1 = { .name = name, .point = "none", .act = COMMIT_TAG, .msg = "one", .tag = 1 };
	cr_assert_eq(sk_test_reap(sk_test_fork(victim_main, &v1)), 14);
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 3);
	struct victim v2 = { .name = name, .point = "chan.owner.pending", .act = COMMIT_TAG,
	                     .msg = "two", .tag = 2 };
	kill_victim(&v2);
	cr_assert_eq(shmkit_chan_open(&other, name, NULL), 0);
	send_str(other, "three");
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 2000 * MS), 5, "the consumer reclaimed nothing");
	cr_assert_str_eq(buf, "three");
	cr_assert_eq(stats(ch).reclaimed, 1);
	cr_assert_eq(tag_of(name), 1, "abandoned, not committed");
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), -EAGAIN);
	shmkit_chan_close(other);
	shmkit_chan_close(ch);
}

/* ---- refusals, and handles without an owner ------------------------------- */

Test(chan_owner, live_duplicate_owner_is_refused_and_a_closed_one_resumed)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 4), *a = owned(name, TOKEN), *b = NULL;
	void *buf;

	cr_assert_eq(open_owned(&b, name, TOKEN), -EBUSY);
	cr_assert_null(b);
	cr_assert_eq(shmkit_chan_reserve(a, &buf, 0), 0);
	uint64_t pos = 99;
	cr_assert_eq(shmkit_chan_reserve_pos(a, &pos), 0);
	cr_assert_eq(pos, 0);
	memcpy(buf, "x", 1);
	cr_assert_eq(shmkit_chan_commit_tag(a, 1, 41), 0);
	cr_assert_eq(shmkit_chan_reserve_pos(a, &pos), -EINVAL);
	shmkit_chan_close(a);
	b = owned(name, TOKEN);
	uint64_t tag = 0;
	cr_assert_eq(shmkit_chan_owner_tag(b, &tag), 0);
	cr_assert_eq(tag, 41, "a clean close keeps the owner's record");
	cr_assert_eq(shmkit_chan_disown(b), 0);
	cr_assert_eq(shmkit_chan_owner_tag(b, &tag), -EINVAL);
	shmkit_chan_close(b);
	b = owned(name, TOKEN);
	cr_assert_eq(shmkit_chan_owner_tag(b, &tag), 0);
	cr_assert_eq(tag, 0, "disowned: a new record");
	shmkit_chan_close(b);
	shmkit_chan_close(ch);
}

Test(chan_owner, owner_needs_a_writable_mpmc_channel)
{
	const char *name = sk_test_new_name("posix"), *sp = sk_test_new_name("posix");
	struct shmkit_chan_opts so = { .flags = SHMKIT_CHAN_SPSC | SHMKIT_EXCL };
	shmkit_chan *ch = make(name, 4), *s = NULL, *x = NULL;
	struct shmkit_chan_opts ro = { .flags = SHMKIT_RDONLY, .owner = TOKEN };
	void *buf;
	uint64_t tag;

	cr_assert_eq(shmkit_chan_create(&s, sp, &so), 0);
	cr_assert_eq(open_owned(&x, sp, TOKEN), -EINVAL);
	cr_assert_eq(shmkit_chan_open(&x, name, &ro), -EINVAL);
	cr_assert_eq(shmkit_chan_reserve(ch, &buf, 0), 0);
	cr_assert_eq(shmkit_chan_commit_tag(ch, 1, 5), -EINVAL, "no owner: no tag");
	cr_assert_eq(shmkit_chan_commit(ch, 1), 0, "the reservation stayed");
	cr_assert_eq(shmkit_chan_owner_tag(ch, &tag), -EINVAL);
	cr_assert_eq(shmkit_chan_disown(ch), -EINVAL);
	shmkit_chan_close(s);
	shmkit_chan_close(ch);
}

/* owner 0: a consumer killed holding a peek loses its message, as ever:
 * the reclaimer frees the slot for the producer a lap later. */
static int plain_peek_main(void *arg)
{
	shmkit_chan *ch = NULL;
	const void *p;

	if (shmkit_chan_open(&ch, arg, NULL))
		return 10;
	sk_crash_arm("chan.mpmc.taken");
	shmkit_chan_peek(ch, &p, 0);
	return 12;
}

Test(chan_owner, without_an_owner_nothing_changes)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 2);
	char buf[32];

	send_str(ch, "a");
	send_str(ch, "b");
	cr_assert_eq(sk_test_reap(sk_test_fork(plain_peek_main, (void *)name)), 128 + SIGKILL);
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 1);
	cr_assert_str_eq(buf, "b");
	cr_assert_eq(shmkit_chan_send(ch, "c", 1, 2000 * MS), 0, "the dead peek was reclaimed");
	cr_assert_eq(stats(ch).reclaimed, 1);
	cr_assert_eq(recv_str(ch, buf, sizeof(buf), 0), 1);
	cr_assert_str_eq(buf, "c", "a is lost");
	shmkit_chan_close(ch);
}

/* ---- id wrap --------------------------------------------------------------- */

/* The peer id counter wraps onto the id of a dead owner's handle: the new
 * handle must take another id (else the owner's peek would look like the
 * new handle's own claim, and its successor would find the owner "alive"),
 * and purge_stale must not free the owner's claim. */
Test(chan_owner, wrapped_ids_skip_an_owners_id)
{
	const char *name = sk_test_new_name("posix");
	shmkit_chan *ch = make(name, 2), *n = NULL;
	struct sk_chan_ctl *c = shmkit_seg_data(shmkit_chan_seg(ch));
	struct sk_chan_stat *e = (struct sk_chan_stat *)(void *)((char *)c + SK_CHAN_CTL_SIZE);
	struct sk_seg_hdr *h = shmkit_chan_seg(ch)->map;
	const void *p;
	char buf[8];

	send_str(ch, "a");
	kill_peeker(name);
	uint64_t dead = 0;
	for (uint32_t i = 0; i < c->stat_entries; i++)
		if (e[i].token == TOKEN)
			dead = e[i].owner;
	cr_assert_neq(dead, 0);
	h->peer_next = SK_PEER_ID_MAX + dead - 1; /* the next id taken would be dead's, wrapped */
	cr_assert_eq(shmkit_chan_open(&n, name, NULL), 0);
	send_str(n, "b");
	cr_assert_eq(recv_str(n, buf, sizeof(buf), 0), 1);
	cr_assert_str_eq(buf, "b");
	shmkit_chan *s = owned(name, TOKEN);
	cr_assert_eq(shmkit_chan_peek(s, &p, 0), 1, "the owner's peek survived the wrap");
	cr_assert_eq(*(const char *)p, 'a');
	shmkit_chan_close(s);
	shmkit_chan_close(n);
	shmkit_chan_close(ch);
}
