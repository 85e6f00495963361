/*
 * helper_chan.c - an unrelated process for the channel tests (exec'd by
 * test_chan.c through sk_test_spawn).
 *
 *   helper_chan produce NAME ID COUNT   send COUNT stress messages of
 *                                      producer ID (format in chan_msg.h)
 *   helper_chan reserve-die NAME       reserve a slot, print "reserved",
 *                                      then die by SIGKILL
 *   helper_chan peek-die NAME          peek a message, print "ID SEQ" (or
 *                                      "LEN" for a non-stress one), then
 *                                      die by SIGKILL
 *   helper_chan hold NAME              reserve a slot, write "held", print
 *                                      "reserved", wait for EOF on stdin,
 *                                      commit, exit
 *   helper_chan thread-hold NAME       the same in a second thread while
 *                                      the main thread calls pthread_exit
 *   helper_chan lose-lock NAME         reserve a slot, close every fd above
 *                                      2 (as closefrom would: the peer lock
 *                                      goes), print "lost", wait for EOF on
 *                                      stdin, commit; exit 0 if the commit
 *                                      is -ESTALE
 *   helper_chan spsc-hold NAME         send "first" (taking an SPSC
 *                                      producer role), print "ready", wait
 *                                      for EOF on stdin, exit
 * Exit 0 on success, 1 on a channel error (printed to stderr), 2 usage.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan_msg.h"
#include "shmkit.h"

#define HELPER_WAIT 20000000000LL /* 20 s: a bound, never reached when healthy */

static int fail(const char *what, long err)
{
	fprintf(stderr, "helper_chan: %s: %s (%s)\n", what, shmkit_strerror((int)err),
	        shmkit_errdetail());
	return 1;
}

static int produce(shmkit_chan *ch, unsigned id, unsigned count)
{
	struct chan_msg m;

	for (unsigned seq = 0; seq < count; seq++) {
		size_t len = chan_msg_fill(&m, id, seq);
		int r = shmkit_chan_send(ch, &m, len, HELPER_WAIT);
		if (r)
			return fail("send", r);
	}
	return 0;
}

static int reserve_die(shmkit_chan *ch)
{
	void *buf;
	int r = shmkit_chan_reserve(ch, &buf, HELPER_WAIT);

	if (r)
		return fail("reserve", r);
	memset(buf, 0xee, 16); /* half-written garbage nobody may read */
	printf("reserved\n");
	fflush(stdout);
	raise(SIGKILL);
	return 1;
}

static int peek_die(shmkit_chan *ch)
{
	const void *buf;
	ssize_t n = shmkit_chan_peek(ch, &buf, HELPER_WAIT);

	if (n < 0)
		return fail("peek", n);
	struct chan_msg m;
	if ((size_t)n >= CHAN_MSG_MIN && (size_t)n <= sizeof(m)) {
		memcpy(&m, buf, (size_t)n);
		printf("%u %u\n", m.id, m.seq);
	} else {
		printf("%zd\n", n);
	}
	fflush(stdout);
	raise(SIGKILL);
	return 1;
}

static void wait_stdin_eof(void)
{
	char c;

	while (read(0, &c, 1) > 0)
		;
}

static int hold(shmkit_chan *ch)
{
	void *buf;
	int r = shmkit_chan_reserve(ch, &buf, HELPER_WAIT);

	if (r)
		return fail("reserve", r);
	memcpy(buf, "held", 4);
	printf("reserved\n");
	fflush(stdout);
	wait_stdin_eof();
	return (r = shmkit_chan_commit(ch, 4)) ? fail("commit", r) : 0;
}

/* The main thread leaves by pthread_exit: the process lives on in the
 * other thread, though /proc shows its leader as a zombie. */
static void *hold_thread(void *ch)
{
	exit(hold(ch));
}

static int thread_hold(shmkit_chan *ch)
{
	pthread_t t;

	if (pthread_create(&t, NULL, hold_thread, ch))
		return fail("pthread_create", -EAGAIN);
	pthread_exit(NULL);
}

static int lose_lock(shmkit_chan *ch)
{
	void *buf;
	int r = shmkit_chan_reserve(ch, &buf, HELPER_WAIT);

	if (r)
		return fail("reserve", r);
	memcpy(buf, "gone", 4);
	for (int fd = 3; fd < 1024; fd++)
		close(fd); /* a daemon's closefrom(3): our peer lock goes with it */
	printf("lost\n");
	fflush(stdout);
	wait_stdin_eof();
	r = shmkit_chan_commit(ch, 4);
	return r == -ESTALE ? 0 : fail("commit (want -ESTALE)", r ? r : -1);
}

static int spsc_hold(shmkit_chan *ch)
{
	int r = shmkit_chan_send(ch, "first", 5, HELPER_WAIT);

	if (r)
		return fail("send", r);
	printf("ready\n");
	fflush(stdout);
	wait_stdin_eof();
	return 0;
}

int main(int argc, char **argv)
{
	shmkit_chan *ch;

	if (argc < 3)
		return 2;
	int r = shmkit_chan_open(&ch, argv[2], NULL);
	if (r)
		return fail(argv[2], r);
	if (!strcmp(argv[1], "produce") && argc == 5)
		r = produce(ch, (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	else if (!strcmp(argv[1], "reserve-die"))
		r = reserve_die(ch);
	else if (!strcmp(argv[1], "peek-die"))
		r = peek_die(ch);
	else if (!strcmp(argv[1], "hold"))
		r = hold(ch);
	else if (!strcmp(argv[1], "thread-hold"))
		r = thread_hold(ch);
	else if (!strcmp(argv[1], "lose-lock"))
		r = lose_lock(ch);
	else if (!strcmp(argv[1], "spsc-hold"))
		r = spsc_hold(ch);
	else
		r = 2;
	shmkit_chan_close(ch);
	return r;
}
