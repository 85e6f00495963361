/*
 * bus_epoll.c - a bus subscriber inside an epoll loop, next to another
 * descriptor (a timerfd ticking every 100 ms).
 *
 * The parent creates a back-pressure bus (publishers wait for the slowest
 * subscriber, so nothing is lost), subscribes, and puts the subscription's
 * descriptor and the timer into one epoll set.  A forked child opens the
 * bus by name and publishes "tick 0" .. "tick N-1".  The subscriber checks
 * it sees every message, in order, none lost.
 *
 * The pattern for a subscription's fd: when it is readable, acknowledge it
 * (shmkit_sub_ack_fd), then drain with timeout 0 until -EAGAIN.  The timer
 * is what the header asks for anyway: a publisher killed mid-message is
 * noticed by the next recv, so never wait on the fd alone for ever.
 *
 * Usage: bus_epoll [NAME [COUNT]]   (default posix:/bus-epoll-PID, 5000)
 *
 *   cc bus_epoll.c $(pkg-config --cflags --libs shmkit) -o bus_epoll
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

#define IDLE_TICKS 50 /* give up after 5 s of ticks without a message */

static int publish(const char *name, unsigned count)
{
	shmkit_bus *bus;
	char msg[64];
	int err = shmkit_bus_open(&bus, name, NULL);

	for (unsigned i = 0; !err && i < count; i++) {
		int len = snprintf(msg, sizeof(msg), "tick %u", i);
		err = shmkit_bus_publish(bus, msg, (size_t)len, 5000000000LL);
	}
	if (err)
		fprintf(stderr, "publisher: %s: %s\n", name, shmkit_strerror(err));
	shmkit_bus_close(bus);
	return err ? 1 : 0;
}

/* Take every message waiting now; 0, or 1 on a message out of order. */
static int drain(shmkit_sub *sub, unsigned *got)
{
	char buf[64], want[64];
	uint64_t lost;
	ssize_t n;

	while ((n = shmkit_sub_recv(sub, buf, sizeof(buf) - 1, &lost, 0)) >= 0) {
		buf[n] = '\0';
		snprintf(want, sizeof(want), "tick %u", *got);
		if (lost || strcmp(buf, want)) {
			fprintf(stderr, "subscriber: got \"%s\" (%llu lost), expected \"%s\"\n",
			        buf, (unsigned long long)lost, want);
			return 1;
		}
		++*got;
	}
	return n == -EAGAIN ? 0 : (fprintf(stderr, "subscriber: recv: %s\n",
	                                   shmkit_strerror((int)n)), 1);
}

static int subscribe_loop(shmkit_sub *sub, unsigned count)
{
	struct itimerspec every100ms = { .it_interval.tv_nsec = 100000000,
	                                 .it_value.tv_nsec = 100000000 };
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int sfd = shmkit_sub_fd(sub); /* owned by the subscription: never close it */
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned got = 0, ticks = 0, idle = 0;
	int rc = 1;

	if (tfd < 0 || ep < 0 || sfd < 0 || timerfd_settime(tfd, 0, &every100ms, NULL))
		goto out;
	ev.data.fd = sfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	while (got < count && idle < IDLE_TICKS) {
		struct epoll_event ready[2];
		int n = epoll_wait(ep, ready, 2, -1);
		if (n < 0 && errno == EINTR)
			continue; /* the fd's wake may interrupt epoll_wait: retry */
		for (int i = 0; i < n; i++) {
			if (ready[i].data.fd == tfd) {
				uint64_t expirations;
				if (read(tfd, &expirations, sizeof(expirations)) > 0) {
					ticks += (unsigned)expirations;
					idle += (unsigned)expirations;
				}
			}
			/* On a tick too: the drain also notices a dead publisher. */
			unsigned before = got;
			shmkit_sub_ack_fd(sub); /* first acknowledge, then drain */
			if (drain(sub, &got))
				goto out;
			if (got != before)
				idle = 0;
		}
	}
	printf("subscriber (pid %d): %u messages in order, none lost, %u timer ticks meanwhile\n",
	       (int)getpid(), got, ticks);
	rc = got == count ? 0 : 1;
out:
	if (rc && got < count)
		fprintf(stderr, "subscriber: %u of %u messages\n", got, count);
	if (ep >= 0)
		close(ep);
	if (tfd >= 0)
		close(tfd);
	return rc;
}

int main(int argc, char **argv)
{
	char def[64];
	snprintf(def, sizeof(def), "posix:/bus-epoll-%d", (int)getpid());
	const char *name = argc > 1 ? argv[1] : def;
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 5000;
	struct shmkit_bus_opts opts = { .capacity = 64, .max_msg = 64, .flags = SHMKIT_EXCL,
	                                .delivery = SHMKIT_BUS_BACKPRESSURE };
	shmkit_bus *bus;
	shmkit_sub *sub;
	int err, status, rc = 1;

	if ((err = shmkit_bus_create(&bus, name, &opts))) {
		fprintf(stderr, "create %s: %s %s\n", name, shmkit_strerror(err), shmkit_errdetail());
		return 1;
	}
	/* Subscribe before the publisher starts: FROM_NEWEST (the default)
	 * then means every message it will publish. */
	if ((err = shmkit_bus_subscribe(&sub, bus, NULL))) {
		fprintf(stderr, "subscribe: %s\n", shmkit_strerror(err));
		goto out;
	}
	fflush(stdout); /* so the child does not print the parent's buffer again */
	pid_t pid = fork();
	if (pid == 0)
		exit(publish(name, count));
	if (pid > 0)
		rc = subscribe_loop(sub, count);
	shmkit_bus_unsubscribe(sub); /* a back-pressure publisher stops waiting for us */
	if (pid > 0 && (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	                WEXITSTATUS(status)))
		rc = 1;
out:
	shmkit_bus_close(bus);
	shmkit_seg_remove(name);
	return rc;
}
