/*
 * helper_bus.c - bus peers for the tests: run as a program (exec'd by
 * test_bus.c, so a truly unrelated process) or included by test_bus.c with
 * HELPER_BUS_NO_MAIN defined, so forked peers on anon/memfd buses run the
 * very same checks.
 *
 * Messages are struct hb_msg: publisher id, per-publisher sequence and a
 * payload of `fill` bytes derived from both, with a checksum, so a torn or
 * mixed message is detected byte for byte.
 *
 *   helper_bus sub NAME NPUB oldest|newest       subscribe, print "ready",
 *       check every message until an END from each of NPUB... (the test
 *       sends one END after the publishers finish), print the summary
 *       "ok RECEIVED LOST GAPS" or "bad ..." and exit 0 / 1
 *   helper_bus epoll NAME                        the same, in an epoll loop
 *       on shmkit_sub_fd()
 *   helper_bus pub NAME ID COUNT FILL            publish COUNT messages
 *   helper_bus say NAME TEXT                     publish TEXT once
 *   helper_bus loan NAME                         loan a buffer, print
 *       "loaned", then sleep until killed
 *   helper_bus peek NAME                         subscribe (back-pressure
 *       reader), print "ready", peek the first message (mid-read), print
 *       "peeked", then sleep until killed
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "shmkit.h"

#define HB_MAXPUB 8
/* Shared helpers: the program uses some, test_bus.c others. */
#define HB_FN static __attribute__((unused))
#define HB_END 0xffffffffu
#define HB_WAIT_NS (20 * 1000000000LL) /* generous bound for any wait */

struct hb_msg {
	uint32_t pub;        /* publisher id, HB_END for the end marker */
	uint32_t fill;       /* payload bytes that follow */
	uint64_t seq;        /* per-publisher sequence, from 0 */
	uint32_t sum;        /* checksum of the payload */
	uint32_t pad;
	unsigned char payload[];
};

struct hb_result {
	uint64_t received, lost, gaps;
	int bad;             /* first problem seen, 0 none */
	char why[128];
};

HB_FN inline unsigned char hb_byte(const struct hb_msg *m, uint32_t i)
{
	return (unsigned char)(m->seq * 31 + m->pub * 7 + i * 13);
}

HB_FN uint32_t hb_sum(const unsigned char *p, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Fill a message in buf (at least sizeof(hb_msg) + fill bytes). */
HB_FN inline size_t hb_make(void *buf, uint32_t pub, uint64_t seq, uint32_t fill)
{
	struct hb_msg *m = buf;
	m->pub = pub;
	m->fill = fill;
	m->seq = seq;
	m->pad = 0;
	for (uint32_t i = 0; i < fill; i++)
		m->payload[i] = hb_byte(m, i);
	m->sum = hb_sum(m->payload, fill);
	return sizeof(*m) + fill;
}

/* 0 if a received message is intact, else a description in r->why. */
HB_FN int hb_intact(const void *buf, size_t len, struct hb_result *r)
{
	const struct hb_msg *m = buf;

	if (len < sizeof(*m) || len != sizeof(*m) + m->fill) {
		snprintf(r->why, sizeof(r->why), "length %zu does not match", len);
		return -1;
	}
	if (m->pub == HB_END)
		return 0;
	for (uint32_t i = 0; i < m->fill; i++)
		if (m->payload[i] != hb_byte(m, i)) {
			snprintf(r->why, sizeof(r->why), "torn: pub %u seq %llu byte %u", m->pub,
			         (unsigned long long)m->seq, i);
			return -1;
		}
	if (hb_sum(m->payload, m->fill) != m->sum) {
		snprintf(r->why, sizeof(r->why), "checksum mismatch");
		return -1;
	}
	return 0;
}

/* Sequence checker: per publisher no duplicate, no reordering; gaps are
 * the sequences never seen.  Returns 1 at the END marker. */
struct hb_check {
	int64_t next[HB_MAXPUB];   /* next expected sequence per publisher */
	uint64_t count;            /* messages each publisher sends (at END) */
	struct hb_result r;
};

HB_FN int hb_account(struct hb_check *c, const void *buf, size_t len, uint64_t lost)
{
	const struct hb_msg *m = buf;

	c->r.lost += lost;
	if (hb_intact(buf, len, &c->r)) {
		c->r.bad = 1;
		return 1;
	}
	if (m->pub == HB_END) {
		/* The END carries the count each publisher sent: what is
		 * still missing at the end is a gap too. */
		for (uint32_t p = 0; p < HB_MAXPUB && p < m->seq; p++)
			c->r.gaps += (uint64_t)m->pad - (uint64_t)c->next[p];
		return 1;
	}
	if (m->pub >= HB_MAXPUB || (int64_t)m->seq < c->next[m->pub]) {
		snprintf(c->r.why, sizeof(c->r.why), "duplicate or reordered: pub %u seq %llu, expected %lld",
		         m->pub, (unsigned long long)m->seq, (long long)c->next[m->pub]);
		c->r.bad = 1;
		return 1;
	}
	c->r.gaps += m->seq - (uint64_t)c->next[m->pub];
	c->next[m->pub] = (int64_t)m->seq + 1;
	c->r.received++;
	return 0;
}

/* The END marker: pub = HB_END, seq = number of publishers, pad = count
 * each of them sent. */
HB_FN size_t hb_make_end(void *buf, uint32_t npub, uint32_t count)
{
	struct hb_msg *m = buf;
	memset(m, 0, sizeof(*m));
	m->pub = HB_END;
	m->seq = npub;
	m->pad = count;
	return sizeof(*m);
}

/* Receive and check until END.  0, or -1 with r->why. */
HB_FN int hb_sub_loop(shmkit_sub *sub, struct hb_check *c, size_t cap)
{
	void *buf = malloc(cap);
	if (!buf)
		return -1;
	for (;;) {
		uint64_t lost = 0;
		ssize_t n = shmkit_sub_recv(sub, buf, cap, &lost, HB_WAIT_NS);
		if (n < 0) {
			snprintf(c->r.why, sizeof(c->r.why), "recv: %s", shmkit_strerror((int)n));
			c->r.bad = 1;
			break;
		}
		if (hb_account(c, buf, (size_t)n, lost))
			break;
	}
	free(buf);
	return c->r.bad ? -1 : 0;
}

/* The same reading in place: peek, copy, release; a message overwritten
 * while read (-ESTALE) is discarded (it shows up as lost later). */
HB_FN int hb_peek_loop(shmkit_sub *sub, struct hb_check *c, size_t cap)
{
	void *copy = malloc(cap);
	if (!copy)
		return -1;
	for (;;) {
		const void *p;
		uint64_t lost = 0;
		ssize_t n = shmkit_sub_peek(sub, &p, &lost, HB_WAIT_NS);
		if (n < 0) {
			snprintf(c->r.why, sizeof(c->r.why), "peek: %s", shmkit_strerror((int)n));
			c->r.bad = 1;
			break;
		}
		memcpy(copy, p, (size_t)n);
		int r = shmkit_sub_release(sub);
		if (r == -ESTALE) {
			c->r.lost += lost;
			continue;
		}
		if (r || hb_account(c, copy, (size_t)n, lost))
			break;
	}
	free(copy);
	return c->r.bad ? -1 : 0;
}

/* The same through an epoll loop on the subscriber's fd. */
HB_FN int hb_epoll_loop(shmkit_sub *sub, struct hb_check *c, size_t cap)
{
	int fd = shmkit_sub_fd(sub), ep = epoll_create1(EPOLL_CLOEXEC);
	void *buf = malloc(cap);
	int done = 0;

	if (fd < 0 || ep < 0 || !buf) {
		snprintf(c->r.why, sizeof(c->r.why), "setup failed");
		c->r.bad = 1;
		goto out;
	}
	struct epoll_event ev = { .events = EPOLLIN };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	while (!done) {
		int k = epoll_wait(ep, &ev, 1, (int)(HB_WAIT_NS / 1000000));
		if (k == 0) {
			snprintf(c->r.why, sizeof(c->r.why), "epoll_wait timed out");
			c->r.bad = 1;
			break;
		}
		if (k < 0)
			continue;
		shmkit_sub_ack_fd(sub);
		for (;;) {
			uint64_t lost = 0;
			ssize_t n = shmkit_sub_recv(sub, buf, cap, &lost, 0);
			if (n == -EAGAIN)
				break;
			if (n < 0) {
				snprintf(c->r.why, sizeof(c->r.why), "recv: %s", shmkit_strerror((int)n));
				c->r.bad = done = 1;
				break;
			}
			if (hb_account(c, buf, (size_t)n, lost)) {
				done = 1;
				break;
			}
		}
	}
out:
	free(buf);
	if (ep >= 0)
		close(ep);
	return c->r.bad ? -1 : 0;
}

/* Publish count messages as publisher id. */
HB_FN int hb_pub(shmkit_bus *bus, uint32_t id, uint64_t count, uint32_t fill)
{
	void *buf = malloc(sizeof(struct hb_msg) + fill);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t s = 0; s < count && !err; s++) {
		size_t n = hb_make(buf, id, s, fill);
		err = shmkit_bus_publish(bus, buf, n, HB_WAIT_NS);
	}
	free(buf);
	return err;
}

HB_FN void hb_print(const struct hb_check *c)
{
	if (c->r.bad)
		printf("bad %s\n", c->r.why);
	else
		printf("ok %llu %llu %llu\n", (unsigned long long)c->r.received,
		       (unsigned long long)c->r.lost, (unsigned long long)c->r.gaps);
	fflush(stdout);
}

#ifndef HELPER_BUS_NO_MAIN
static int run_sub(const char *name, int from, int use_epoll)
{
	shmkit_bus *bus;
	shmkit_sub *sub;
	struct hb_check c;
	struct shmkit_bus_opts o = { .from = from, .wait = SHMKIT_WAIT_ADAPTIVE };

	memset(&c, 0, sizeof(c));
	if (shmkit_bus_open(&bus, name, NULL) || shmkit_bus_subscribe(&sub, bus, &o))
		return 3;
	printf("ready\n");
	fflush(stdout);
	struct shmkit_bus_stats st;
	shmkit_bus_stats(bus, &st);
	int r = use_epoll ? hb_epoll_loop(sub, &c, st.max_msg) : hb_sub_loop(sub, &c, st.max_msg);
	hb_print(&c);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	return r ? 1 : 0;
}

static int run_hang(const char *name, int loan)
{
	shmkit_bus *bus;
	shmkit_sub *sub = NULL;
	struct shmkit_bus_opts o = { .from = SHMKIT_FROM_NEWEST };
	void *p;
	const void *cp;

	if (shmkit_bus_open(&bus, name, NULL))
		return 3;
	if (loan) {
		if (shmkit_bus_loan(bus, &p, HB_WAIT_NS))
			return 4;
		memset(p, 0x5a, 16); /* half-written: never committed */
		printf("loaned\n");
	} else {
		if (shmkit_bus_subscribe(&sub, bus, &o))
			return 4;
		printf("ready\n");
		fflush(stdout);
		if (shmkit_sub_peek(sub, &cp, NULL, HB_WAIT_NS) < 0)
			return 5;
		printf("peeked\n");
	}
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "sub"))
		return run_sub(argv[2], !strcmp(argv[4], "oldest") ? SHMKIT_FROM_OLDEST : SHMKIT_FROM_NEWEST, 0);
	if (argc >= 3 && !strcmp(argv[1], "epoll"))
		return run_sub(argv[2], SHMKIT_FROM_NEWEST, 1);
	if (argc >= 6 && !strcmp(argv[1], "pub")) {
		shmkit_bus *bus;
		if (shmkit_bus_open(&bus, argv[2], NULL))
			return 3;
		int err = hb_pub(bus, (uint32_t)atoi(argv[3]), strtoull(argv[4], NULL, 10),
		                 (uint32_t)atoi(argv[5]));
		shmkit_bus_close(bus);
		return err ? 1 : 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "say")) {
		shmkit_bus *bus;
		if (shmkit_bus_open(&bus, argv[2], NULL))
			return 3;
		int err = shmkit_bus_publish(bus, argv[3], strlen(argv[3]), HB_WAIT_NS);
		shmkit_bus_close(bus);
		return err ? 1 : 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "loan"))
		return run_hang(argv[2], 1);
	if (argc >= 3 && !strcmp(argv[1], "peek"))
		return run_hang(argv[2], 0);
	fprintf(stderr, "usage: helper_bus sub|epoll|pub|loan|peek NAME ...\n");
	return 2;
}
#endif
