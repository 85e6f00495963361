/*
 * test_chan_peers.c - shmkit_chan_peers: who takes part in a channel and
 * whether each lives, as the kernel's locks say (what `shmkit top` shows
 * in PEERS and judges "no live consumer" by):
 *   - MPMC: one entry per handle that sent or received, with its own
 *     counts; a forked child's entry counts dead once it exited;
 *   - SPSC: the two role holders with their pids, dead once they exited;
 *   - the callback's non-zero value stops the walk and is returned;
 *     NULL arguments are -EINVAL.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(chan_peers, .timeout = 30, .fini = sk_test_cleanup);

#define MAXP 8

struct seen {
	struct shmkit_chan_peer p[MAXP];
	int n;
};

static int collect(const struct shmkit_chan_peer *p, void *arg)
{
	struct seen *s = arg;

	if (s->n < MAXP)
		s->p[s->n] = *p;
	s->n++;
	return 0;
}

static shmkit_chan *make(unsigned flags)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 32, .flags = SHMKIT_EXCL | flags };
	shmkit_chan *ch;

	cr_assert_eq(shmkit_chan_create(&ch, sk_test_new_name("posix"), &o), 0, "%s",
	             shmkit_errdetail());
	return ch;
}

/* In a forked child: send n messages and receive m on the inherited
 * handle, then exit (0 if all went). */
static void child_uses(shmkit_chan *ch, int n, int m)
{
	char buf[32];
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int bad = 0;
		for (int i = 0; i < n; i++)
			bad |= shmkit_chan_send(ch, "c", 1, 0) != 0;
		for (int i = 0; i < m; i++)
			bad |= shmkit_chan_recv(ch, buf, sizeof(buf), 0) != 1;
		_exit(bad);
	}
	cr_assert_eq(sk_test_reap(pid), 0);
}

Test(chan_peers, mpmc_entries_with_their_counts_and_liveness)
{
	shmkit_chan *ch = make(0);
	struct seen s = { .n = 0 };
	char buf[32];

	/* at most this handle (its entry may be taken at creation), alive,
	 * nothing counted */
	cr_assert_eq(shmkit_chan_peers(ch, collect, &s), 0);
	cr_assert_leq(s.n, 1);
	cr_expect(s.n == 0 || (s.p[0].alive == 1 && s.p[0].sent == 0 && s.p[0].received == 0));

	cr_assert_eq(shmkit_chan_send(ch, "a", 1, 0), 0);
	cr_assert_eq(shmkit_chan_send(ch, "b", 1, 0), 0);
	child_uses(ch, 3, 1);
	cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 1);

	s.n = 0;
	cr_assert_eq(shmkit_chan_peers(ch, collect, &s), 0);
	cr_assert_eq(s.n, 2, "this handle and the child's");
	int me = s.p[0].alive == 1 ? 0 : 1, child = 1 - me;
	cr_expect_eq(s.p[me].alive, 1);
	cr_expect_eq(s.p[me].sent, 2);
	cr_expect_eq(s.p[me].received, 1);
	cr_expect_eq(s.p[child].alive, 0, "the child exited: its lock is gone");
	cr_expect_eq(s.p[child].sent, 3);
	cr_expect_eq(s.p[child].received, 1);
	for (int i = 0; i < 2; i++) {
		cr_expect_eq(s.p[i].role, SHMKIT_CHAN_PEER_HANDLE);
		cr_expect_eq(s.p[i].pid, 0);
		cr_expect_eq(s.p[i].owned, 0);
	}
	cr_expect_neq(s.p[0].index, s.p[1].index);
	shmkit_chan_close(ch);
}

Test(chan_peers, spsc_roles_with_pids)
{
	shmkit_chan *ch = make(SHMKIT_CHAN_SPSC);
	struct seen s = { .n = 0 };
	char buf[32];

	cr_assert_eq(shmkit_chan_send(ch, "a", 1, 0), 0); /* producer: this process */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(shmkit_chan_recv(ch, buf, sizeof(buf), 0) == 1 ? 0 : 1); /* consumer */
	cr_assert_eq(sk_test_reap(pid), 0);

	cr_assert_eq(shmkit_chan_peers(ch, collect, &s), 0);
	cr_assert_eq(s.n, 2);
	for (int i = 0; i < 2; i++) {
		bool prod = s.p[i].role == SHMKIT_CHAN_PEER_PRODUCER;
		cr_expect(prod || s.p[i].role == SHMKIT_CHAN_PEER_CONSUMER);
		cr_expect_eq(s.p[i].pid, prod ? getpid() : pid);
		cr_expect_eq(s.p[i].alive, prod ? 1 : 0);
	}
	cr_expect_neq(s.p[0].role, s.p[1].role);
	shmkit_chan_close(ch);
}

static int stop_at_first(const struct shmkit_chan_peer *p, void *arg)
{
	(*(int *)arg)++;
	return 7;
}

Test(chan_peers, callback_stops_the_walk_and_bad_arguments)
{
	shmkit_chan *ch = make(0);
	int calls = 0;

	cr_assert_eq(shmkit_chan_send(ch, "a", 1, 0), 0);
	child_uses(ch, 1, 0);
	cr_expect_eq(shmkit_chan_peers(ch, stop_at_first, &calls), 7);
	cr_expect_eq(calls, 1);
	cr_expect_eq(shmkit_chan_peers(NULL, stop_at_first, &calls), -EINVAL);
	cr_expect_eq(shmkit_chan_peers(ch, NULL, NULL), -EINVAL);
	shmkit_chan_close(ch);
}
