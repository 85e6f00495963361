/*
 * test_bridge.c - the ZeroMQ bridge (issue 14, buses).
 *
 *   two_bridges_carry_a_bus_in_order  two shmkit-bridge processes over
 *       TCP on 127.0.0.1: a publisher process on A (exported by bridge 1),
 *       the test subscribed to A' (imported by bridge 2) gets every message
 *       in order, none lost, through more messages than the buses and
 *       high-water marks hold (back-pressure end to end); statistics on
 *       SIGUSR1 and at exit agree
 *   forged_frames_are_counted_and_dropped  a bridge in this process fed by
 *       the test's own PUB socket: bad CRC, other version or magic, its
 *       own origin id, short and lying frames are counted and never
 *       delivered; a sequence jump counts its losses
 *   small_high_water_marks_lose_nothing  the same with high-water marks
 *       of 4 (the PUB socket refuses, the bridge holds the frame)
 *   own_frames_never_come_back  a bridge subscribed to itself drops every
 *       frame as its own origin
 *   overwrite_losses_are_counted_on_both_sides  an export subscription
 *       lapped on an overwrite bus: lost_local at the sender, the same
 *       number as lost_remote (a sequence jump) at the receiver
 *   api_refusals, wire_format  loop refusal, missing bus; CRC-32C and the
 *       header layout
 * Without libzmq the bridge is not built: one test says it was skipped.
 */
#include <criterion/criterion.h>

#include "lib_test.h"

#ifndef SK_HAVE_ZMQ
Test(bridge, skipped_without_libzmq)
{
	cr_skip_test("libzmq is not installed (pkg-config libzmq): the bridge was not built");
}
#else

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <zmq.h>

#include "shmkit.h"
#include "shmkit-bridge.h"

TestSuite(bridge, .fini = sk_test_cleanup, .timeout = 60);

/* ---- helpers ---- */

/* One line of a child's stdout (without the newline), waiting at most
 * 10 s for each byte.  0, or -1 at EOF or timeout. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;
		if (poll(&p, 1, 10000) != 1 || read(fd, &c, 1) != 1)
			return -1;
		if (c == '\n')
			break;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return 0;
}

/* Start the bridge command; returns its pid, its stdout in *out, and the
 * endpoint of its first "bound" line in ep (if any), once it said
 * "ready". */
static pid_t bridge_start(const char *const argv[], int *out, char *ep, size_t cap)
{
	char line[1024];
	pid_t pid = sk_test_spawn(argv, -1, out);

	cr_assert_gt(pid, 0, "spawn %s: %d", argv[0], (int)pid);
	for (;;) {
		cr_assert_eq(read_line(*out, line, sizeof(line)), 0, "%s said no ready line", argv[0]);
		if (!strncmp(line, "bound ", 6) && ep)
			snprintf(ep, cap, "%s", line + 6);
		if (!strncmp(line, "ready", 5))
			return pid;
	}
}

static const char *bridge_path(void)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/../shmkit-bridge", sk_test_dir());
	return path;
}

/* The value of key=N in a stats line, or -1. */
static long long stat_of(const char *line, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	return p ? atoll(p + strlen(k)) : -1;
}

/* The last "stats" line of text into line. */
static void last_stats(const char *text, char *line, size_t cap)
{
	const char *p = text, *last = NULL;

	while ((p = strstr(p, "stats ")) != NULL)
		last = p++;
	cr_assert(last, "no stats line in: %s", text);
	snprintf(line, cap, "%.*s", (int)strcspn(last, "\n"), last);
}

/* ---- two bridge processes ---- */

struct pub_arg {
	const char *bus;
	int n;
};

static int publisher(void *arg)
{
	struct pub_arg *a = arg;
	shmkit_bus *bus;
	char m[32];

	if (shmkit_bus_open(&bus, a->bus, NULL))
		return 2;
	for (int i = 0; i < a->n; i++) {
		int len = snprintf(m, sizeof(m), "m%06d", i);
		if (shmkit_bus_publish(bus, m, (size_t)len, 20000000000ll))
			return 3;
	}
	shmkit_bus_close(bus);
	return 0;
}

static void two_bridges(const char *hwm, int n_msgs)
{
	const char *a = sk_test_new_name("posix"), *a2 = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 1024, .max_msg = 64,
	                              .delivery = SHMKIT_BUS_BACKPRESSURE };
	char ep[1024], imp[600], m[64], text[4096], line[1024];
	shmkit_bus *bus, *bus2 = NULL;
	shmkit_sub *sub;
	int out1, out2;

	cr_assert_eq(shmkit_bus_create(&bus, a, &bo), 0);
	const char *argv1[] = { bridge_path(), "--id", "1", "--bind", "tcp://127.0.0.1:*",
	                        "--export", a, "--hwm", hwm, NULL };
	pid_t b1 = bridge_start(argv1, &out1, ep, sizeof(ep));
	snprintf(imp, sizeof(imp), "%s=%s", a, a2);
	const char *argv2[] = { bridge_path(), "--id", "2", "--connect", ep, "--import", imp,
	                        "--hwm", hwm, NULL };
	pid_t b2 = bridge_start(argv2, &out2, NULL, 0);

	/* ZeroMQ joins a subscriber some time after connecting: probes until
	 * one arrives in A' (created by bridge 2 at its first frame). */
	int joined = 0;
	for (int i = 0; i < 2000 && !joined; i++) {
		cr_assert_eq(shmkit_bus_publish(bus, "probe", 5, 1000000000), 0);
		if (!bus2 && shmkit_bus_open(&bus2, a2, NULL) == 0) {
			struct shmkit_bus_opts so = { .from = SHMKIT_FROM_OLDEST };
			cr_assert_eq(shmkit_bus_subscribe(&sub, bus2, &so), 0);
		}
		if (bus2)
			joined = shmkit_sub_recv(sub, m, sizeof(m), NULL, 10000000) == 5;
		else
			usleep(10000);
	}
	cr_assert(joined, "no probe came through the bridges");
	struct shmkit_bus_stats bs;
	cr_assert_eq(shmkit_bus_stats(bus2, &bs), 0);
	cr_assert_eq(bs.capacity, 1024, "A' has the remote's geometry");
	cr_assert_eq(bs.max_msg, 64);
	cr_assert_eq(bs.delivery, SHMKIT_BUS_BACKPRESSURE);

	struct pub_arg pa = { a, n_msgs };
	pid_t pub = sk_test_fork(publisher, &pa);
	int next = 0;
	uint64_t lost_total = 0;
	while (next < n_msgs) {
		uint64_t lost = 0;
		ssize_t r = shmkit_sub_recv(sub, m, sizeof(m) - 1, &lost, 10000000000ll);
		cr_assert_gt(r, 0, "recv after %d messages: %zd", next, r);
		m[r] = '\0';
		lost_total += lost;
		if (!strcmp(m, "probe"))
			continue; /* probes retained or still in flight */
		cr_assert_eq(atoi(m + 1), next, "message %d came as %s", next, m);
		next++;
	}
	cr_assert_eq(lost_total, 0);
	cr_assert_eq(sk_test_reap(pub), 0);

	/* Statistics: on SIGUSR1 (the bridge goes on), then at exit. */
	kill(b2, SIGUSR1);
	cr_assert_eq(read_line(out2, line, sizeof(line)), 0);
	cr_assert(!strncmp(line, "stats ", 6), "SIGUSR1 printed: %s", line);
	cr_assert_geq(stat_of(line, "delivered"), n_msgs);
	kill(b1, SIGTERM);
	kill(b2, SIGTERM);
	cr_assert_eq(sk_test_finish(b1, out1, text, sizeof(text)), 0, "bridge 1: %s", text);
	last_stats(text, line, sizeof(line));
	cr_log_info("bridge 1: %s", line);
	long long sent = stat_of(line, "sent");
	cr_assert_geq(sent, n_msgs);
	cr_assert_eq(stat_of(line, "lost_local"), 0);
	cr_assert_eq(sk_test_finish(b2, out2, text, sizeof(text)), 0, "bridge 2: %s", text);
	last_stats(text, line, sizeof(line));
	cr_log_info("bridge 2: %s", line);
	long long received = stat_of(line, "received");
	cr_assert_geq(received, n_msgs);
	cr_assert_leq(received, sent);
	cr_assert_eq(stat_of(line, "delivered"), received);
	cr_assert_eq(stat_of(line, "lost_remote"), 0);
	cr_assert_eq(stat_of(line, "bad_version") + stat_of(line, "bad_crc") +
	             stat_of(line, "own_origin") + stat_of(line, "malformed") +
	             stat_of(line, "unroutable"), 0);

	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus2);
	shmkit_bus_close(bus);
}

Test(bridge, two_bridges_carry_a_bus_in_order)
{
	two_bridges("10000", 30000);
}

/* High-water marks of 4 messages: the PUB socket refuses often, and the
 * bridge holds the frame and the local bus waits; still none is lost.
 * (A full PUB socket gives no event: the held frame is retried every
 * millisecond, hence fewer messages.) */
Test(bridge, small_high_water_marks_lose_nothing)
{
	two_bridges("4", 3000);
}

/* A bridge connected to its own endpoint, importing its own export into
 * another bus: every frame comes back with its own origin id and is
 * dropped; the other bus is never even created. */
Test(bridge, own_frames_never_come_back)
{
	const char *a = sk_test_new_name("posix"), *b = sk_test_new_name("posix");
	struct shmkit_bridge_opts bo = { .id = 5 };
	struct shmkit_bridge_stats st = { 0 };
	shmkit_bridge *br;
	shmkit_bus *bus;
	char ep[256];

	cr_assert_eq(shmkit_bus_create(&bus, a, NULL), 0);
	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_export_bus(br, a), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, a, b), 0);
	cr_assert_eq(shmkit_bridge_bind(br, "tcp://127.0.0.1:*", ep, sizeof(ep)), 0);
	cr_assert_eq(shmkit_bridge_connect(br, ep), 0);
	for (int i = 0; i < 3000 && st.own_origin < 3; i++) {
		cr_assert_eq(shmkit_bus_publish(bus, "x", 1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(br, -1, 10000000), 0);
		cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
	}
	cr_assert_geq(st.own_origin, 3, "no frame came back at all");
	cr_assert_eq(st.delivered, 0);
	cr_assert_eq(st.received, st.own_origin);
	shmkit_bus *other;
	cr_assert_eq(shmkit_bus_open(&other, b, NULL), -ENOENT);
	cr_assert_eq(shmkit_bridge_close(br), 0);
	shmkit_bus_close(bus);
}

/* ---- forged frames against a bridge in this process ---- */

struct forger {
	void *ctx, *pub;
	char topic[300];
	int topic_len;
};

/* Send topic + header + payload, the header from h with length and CRC
 * filled in unless told (len_delta, crc_delta). */
static void forge(struct forger *f, struct shmkit_bridge_hdr h, const char *payload,
                  int len_delta, uint32_t crc_delta, size_t cut)
{
	unsigned char frame[1024];
	size_t plen = strlen(payload);

	h.length = (uint32_t)((int)plen + len_delta);
	h.crc = shmkit_bridge_crc32c(0, payload, plen) + crc_delta;
	memcpy(frame, f->topic, (size_t)f->topic_len);
	shmkit_bridge_hdr_encode(&h, frame + f->topic_len);
	memcpy(frame + f->topic_len + SHMKIT_BRIDGE_HDR, payload, plen);
	size_t len = (size_t)f->topic_len + SHMKIT_BRIDGE_HDR + plen - cut;
	cr_assert_eq(zmq_send(f->pub, frame, len, 0), (int)len);
}

/* Turns of the loop until stats.delivered reaches want (bounded). */
static void run_until(shmkit_bridge *br, uint64_t want, struct forger *f,
                      struct shmkit_bridge_hdr *probe)
{
	struct shmkit_bridge_stats st;

	for (int i = 0; i < 3000; i++) {
		cr_assert_geq(shmkit_bridge_run(br, -1, 10000000), 0);
		cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
		if (st.delivered >= want)
			return;
		if (probe && i % 10 == 0) {
			probe->seq++;
			forge(f, *probe, "probe", 0, 0, 0);
		}
	}
	cr_assert_fail("the bridge delivered %llu of %llu", (unsigned long long)st.delivered,
	               (unsigned long long)want);
}

Test(bridge, forged_frames_are_counted_and_dropped)
{
	const char *local = sk_test_new_name("posix");
	struct shmkit_bridge_opts bo = { .id = 7 };
	struct shmkit_bridge_stats st;
	struct forger f = { 0 };
	shmkit_bridge *br;
	char ep[256], m[64];
	size_t eplen = sizeof(ep);

	f.ctx = zmq_ctx_new();
	f.pub = zmq_socket(f.ctx, ZMQ_PUB);
	cr_assert_eq(zmq_bind(f.pub, "tcp://127.0.0.1:*"), 0);
	cr_assert_eq(zmq_getsockopt(f.pub, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	f.topic_len = shmkit_bridge_topic(f.topic, sizeof(f.topic), SHMKIT_BRIDGE_KIND_BUS, "remote-X");
	cr_assert_gt(f.topic_len, 0);

	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "remote-X", local), 0);
	cr_assert_eq(shmkit_bridge_connect(br, ep), 0);

	struct shmkit_bridge_hdr h = {
		.magic = SHMKIT_BRIDGE_MAGIC, .version = SHMKIT_BRIDGE_VERSION,
		.kind = SHMKIT_BRIDGE_KIND_BUS, .delivery = SHMKIT_BUS_OVERWRITE,
		.origin = 9, .capacity = 64, .max_msg = 128,
	};
	run_until(br, 1, &f, &h); /* probes until the subscription joined */

	shmkit_bus *bus;
	shmkit_sub *sub;
	struct shmkit_bus_opts so = { .from = SHMKIT_FROM_NEWEST };
	cr_assert_eq(shmkit_bus_open(&bus, local, NULL), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, &so), 0);
	struct shmkit_bus_stats bs;
	cr_assert_eq(shmkit_bus_stats(bus, &bs), 0);
	cr_assert_eq(bs.capacity, 64);
	cr_assert_eq(bs.max_msg, 128);
	/* Late probes may still be on their way: count from what is there now. */
	cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
	struct shmkit_bridge_stats before = st;

	struct shmkit_bridge_hdr x = h;
	forge(&f, x, "forged-crc", 0, 1, 0);
	x.version = SHMKIT_BRIDGE_VERSION + 1;
	forge(&f, x, "forged-version", 0, 0, 0);
	x = h;
	x.magic ^= 1;
	forge(&f, x, "forged-magic", 0, 0, 0);
	x = h;
	x.origin = 7;
	forge(&f, x, "forged-own-origin", 0, 0, 0);
	forge(&f, h, "forged-long", 1, 0, 0);
	forge(&f, h, "forged-short-header", 0, 0, strlen("forged-short-header") + 20);
	x = h;
	x.kind = 9;
	forge(&f, x, "forged-kind", 0, 0, 0);
	h.seq++;
	forge(&f, h, "good", 0, 0, 0);
	h.seq += 6;
	forge(&f, h, "jump", 0, 0, 0);

	/* Frames keep their order on one connection: once "jump" is in, every
	 * frame before it was judged.  Probes sent meanwhile came before. */
	run_until(br, before.delivered + 2, &f, NULL);
	cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
	cr_assert_eq(st.bad_crc - before.bad_crc, 1);
	cr_assert_eq(st.bad_version - before.bad_version, 2);
	cr_assert_eq(st.own_origin - before.own_origin, 1);
	cr_assert_eq(st.malformed - before.malformed, 3);
	cr_assert_eq(st.lost_remote - before.lost_remote, 5);
	cr_assert_eq(st.received - before.received, 9);
	cr_assert_eq(st.unroutable, 0);
	char line[512];
	cr_assert_gt(shmkit_bridge_stats_line(&st, line, sizeof(line)), 0);
	cr_log_info("%s", line);

	ssize_t r = shmkit_sub_recv(sub, m, sizeof(m) - 1, NULL, 0);
	cr_assert_eq(r, 4);
	cr_assert_eq(memcmp(m, "good", 4), 0, "only good frames are delivered");
	r = shmkit_sub_recv(sub, m, sizeof(m) - 1, NULL, 0);
	cr_assert_eq(r, 4);
	cr_assert_eq(memcmp(m, "jump", 4), 0);
	cr_assert_eq(shmkit_sub_recv(sub, m, sizeof(m), NULL, 0), -EAGAIN);

	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	cr_assert_eq(shmkit_bridge_close(br), 0);
	zmq_close(f.pub);
	zmq_ctx_term(f.ctx);
}

/* Two bridges in this process; bridge 1's export subscription on an
 * overwrite bus of 8 slots is lapped by 20 messages while the loop does
 * not run: the 12 it lost are counted by bridge 1 (lost_local) and, as a
 * sequence jump, by bridge 2 (lost_remote); the 8 left arrive in order. */
Test(bridge, overwrite_losses_are_counted_on_both_sides)
{
	const char *a = sk_test_new_name("posix"), *b = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 8, .max_msg = 32 };
	struct shmkit_bridge_opts o1 = { .id = 1 }, o2 = { .id = 2 };
	struct shmkit_bridge_stats s1, s2 = { 0 };
	shmkit_bridge *b1, *b2;
	shmkit_bus *bus, *bus2;
	shmkit_sub *sub;
	char ep[256], m[32];

	cr_assert_eq(shmkit_bus_create(&bus, a, &bo), 0);
	cr_assert_eq(shmkit_bridge_create(&b1, &o1), 0);
	cr_assert_eq(shmkit_bridge_create(&b2, &o2), 0);
	cr_assert_eq(shmkit_bridge_export_bus(b1, a), 0);
	cr_assert_eq(shmkit_bridge_import_bus(b2, a, b), 0);
	cr_assert_eq(shmkit_bridge_bind(b1, "tcp://127.0.0.1:*", ep, sizeof(ep)), 0);
	cr_assert_eq(shmkit_bridge_connect(b2, ep), 0);
	for (int i = 0; i < 3000 && !s2.delivered; i++) { /* join */
		cr_assert_eq(shmkit_bus_publish(bus, "probe", 5, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 10000000), 0);
		cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
	}
	cr_assert_gt(s2.delivered, 0, "no probe came through");
	cr_assert_eq(shmkit_bus_open(&bus2, b, NULL), 0);
	struct shmkit_bus_opts so = { .from = SHMKIT_FROM_NEWEST };
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus2, &so), 0);
	/* Every probe is through once a marker sent after them is. */
	cr_assert_eq(shmkit_bus_publish(bus, "sync", 4, 0), 0);
	int synced = 0;
	for (int i = 0; i < 3000 && !synced; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		ssize_t r;
		while (!synced && (r = shmkit_sub_recv(sub, m, sizeof(m), NULL, 0)) > 0)
			synced = r == 4 && !memcmp(m, "sync", 4);
	}
	cr_assert(synced, "the marker never came");
	cr_assert_eq(shmkit_bridge_stats(b1, &s1), 0);
	cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
	struct shmkit_bridge_stats base1 = s1, base2 = s2;

	for (int i = 0; i < 20; i++) {
		int len = snprintf(m, sizeof(m), "%d", i);
		cr_assert_eq(shmkit_bus_publish(bus, m, (size_t)len, 0), 0);
	}
	for (int i = 0; i < 3000 && s2.delivered < base2.delivered + 8; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
	}
	cr_assert_eq(shmkit_bridge_stats(b1, &s1), 0);
	cr_assert_eq(s1.lost_local - base1.lost_local, 12);
	cr_assert_eq(s1.sent - base1.sent, 8);
	cr_assert_eq(s2.lost_remote - base2.lost_remote, 12);
	cr_assert_eq(s2.delivered - base2.delivered, 8);
	for (int i = 12; i < 20; i++) {
		ssize_t r = shmkit_sub_recv(sub, m, sizeof(m) - 1, NULL, 0);
		cr_assert_gt(r, 0);
		m[r] = '\0';
		cr_assert_eq(atoi(m), i);
	}
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus2);
	cr_assert_eq(shmkit_bridge_close(b2), 0);
	cr_assert_eq(shmkit_bridge_close(b1), 0);
	shmkit_bus_close(bus);
}

/* ---- API and wire format ---- */

Test(bridge, api_refusals)
{
	const char *name = sk_test_new_name("posix"), *missing = sk_test_new_name("posix");
	shmkit_bridge *br;
	shmkit_bus *bus;

	cr_assert_eq(shmkit_bus_create(&bus, name, NULL), 0);
	cr_assert_eq(shmkit_bridge_create(&br, NULL), 0);
	cr_assert_eq(shmkit_bridge_export_bus(br, missing), -ENOENT);
	cr_assert_eq(shmkit_bridge_import_bus(br, "far", name), 0);
	cr_assert_eq(shmkit_bridge_export_bus(br, name), -EINVAL, "a bus it imports into goes no further");
	cr_assert_eq(shmkit_bridge_import_bus(br, "", NULL), -EINVAL);
	cr_assert_lt(shmkit_bridge_connect(br, "nonsense"), 0);
	struct shmkit_bridge_stats st;
	cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
	cr_assert_neq(st.id, 0, "a random origin id is never 0");
	cr_assert_eq(shmkit_bridge_close(br), 0);
	shmkit_bus_close(bus);
}

Test(bridge, wire_format)
{
	unsigned char b[SHMKIT_BRIDGE_HDR];
	struct shmkit_bridge_hdr h = { .magic = SHMKIT_BRIDGE_MAGIC, .version = 1, .kind = 1,
	                               .delivery = 1, .origin = 0x01020304, .length = 5,
	                               .seq = 0x1122334455667788ull, .capacity = 256,
	                               .max_msg = 1024, .crc = 0xdeadbeef }, g;
	char t[8];

	cr_assert_eq(shmkit_bridge_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(shmkit_bridge_crc32c(shmkit_bridge_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
	shmkit_bridge_hdr_encode(&h, b);
	cr_assert_eq(memcmp(b, "SKBR", 4), 0);
	cr_assert_eq(b[16], 0x88, "little-endian sequence");
	cr_assert_eq(shmkit_bridge_hdr_decode(&g, b, sizeof(b)), 0);
	cr_assert_eq(g.seq, h.seq);
	cr_assert_eq(g.origin, h.origin);
	cr_assert_eq(g.crc, h.crc);
	cr_assert_eq(g.max_msg, h.max_msg);
	cr_assert_eq(shmkit_bridge_hdr_decode(&g, b, sizeof(b) - 1), -EBADMSG);
	cr_assert_eq(shmkit_bridge_topic(t, sizeof(t), SHMKIT_BRIDGE_KIND_BUS, "abc"), 5);
	cr_assert_eq(memcmp(t, "babc", 5), 0);
	cr_assert_eq(shmkit_bridge_topic(t, sizeof(t), SHMKIT_BRIDGE_KIND_BUS, "abcdefg"), -ENAMETOOLONG);
}

#endif
