/*
 * test_bridge.c - the ZeroMQ bridge (issue 14: buses, channels, journals,
 * rpc).
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
 *   bus_two_hosts_losses_across_a_restart_are_counted  A's bridge killed,
 *       1000 messages published meanwhile, restarted: A counts them
 *       lost_local (its position kept beside the bus), B lost_remote;
 *       then the link cut while 1000 more are published: B counts every
 *       message it did not get
 *   journal_two_hosts_copy_is_identical, rpc_two_hosts_calls_deadlines_
 *       and_a_lost_link (CURVE on), curve_admits_only_who_knows_the_
 *       server_key, stats_segment_shows_services_and_link_state
 *   chan_two_hosts_mpmc_each_message_to_one_consumer  a consumer on A
 *       competes with A's bridge: each message received once, somewhere
 *   chan_full_remote_resends_when_it_drains  a full remote channel
 *       says when it drained: the sender resends then, not at its timer
 *   journal_frames_pack_records_and_bad_ones_are_dropped  packed records
 *       appended in order with the leader's stamps, a leader's hole
 *       carried; a good CRC over a bad structure is malformed, a frame
 *       past the copy's end out of order, another journal's refused
 *   journal_copy_has_the_leaders_stamps_holes_and_start  two bridges in
 *       this process: a leader trimmed by retention, with holes from
 *       append_at and from repair, copied record by record (stamps too)
 *       from its first retained seq
 *   journal_made_again_under_the_name_is_refused  the leader's journal
 *       removed and made again: counted jnl_identity, the copy unchanged
 *   chan_two_hosts_survive_kills_cuts_and_corruption  two simulated hosts
 *       (unshare --ipc --mount, a private /dev/shm each; nsenter runs the
 *       bridges and helper_bridge inside) joined over TCP on 127.0.0.1
 *       through a relay the test controls; a channel carried exactly once
 *       and in order through both bridges killed and restarted, a cut
 *       link, withheld acks and corrupted frames (details at the test)
 *   chan_two_hosts_mpmc_exactly_once_across_kills_in_the_windows  MPMC
 *       channels on both hosts (owner records); 39 kills of either bridge
 *       inside its crash windows (the bridge's crash points): each
 *       message once and in order
 *   mode_is_every_object_the_bridge_makes  opts.mode on every import,
 *       state segment, journal copy and the stats segment; a bridge made
 *       again with excl takes back what its imports made
 *   excl_refuses_names_no_bridge_import_made, excl_refuses_a_name_made_
 *       before_the_first_frame  opts.excl: -EEXIST at the import call,
 *       and an exclusive create at the first frame
 *   import_into_an_existing_bus_says_so  the stats text names a service
 *       an import opened, and both geometries
 *   command_takes_mode_and_excl  --mode, --excl and their configuration
 *       keys; exit 1 on an existing name, 2 on a bad mode
 *   help_and_man_page_name_the_same_options  --help against the SYNOPSIS
 *       of man/shmkit-bridge.1, and each option described there
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

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <zmq.h>

#include "shmkit.h"
#include "shmkit-bridge.h"

/* State segments the bridge makes beside channels a test named (they
 * outlive the bridge by design): removed with the test's names, also
 * when it fails. */
static char extra_names[16][300];
static int n_extra;

static void extra_name(const char *base, const char *suffix)
{
	if (n_extra < 16)
		snprintf(extra_names[n_extra++], sizeof(extra_names[0]), "%s.%s", base, suffix);
}

static char extra_file_path[300]; /* a file a test made, removed with its names */
static char jnl_paths[4][300];    /* journals a test made (/tmp), removed too */

/* A fresh journal path /tmp/RUN-tag, removed by the suite's .fini. */
static const char *jnl_path(const char *tag)
{
	char base[128];

	for (int i = 0; i < 4; i++)
		if (!jnl_paths[i][0]) {
			snprintf(jnl_paths[i], sizeof(jnl_paths[i]), "/tmp/%s",
			         sk_test_base(base, sizeof(base), tag));
			return jnl_paths[i];
		}
	cr_assert_fail("more than 4 journals in one test");
	return NULL;
}

/* Remove a journal directory whatever holds it (the suite's .fini). */
static void jnl_rmrf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	rmdir(path);
}

/* A file /tmp/RUN-tag holding the text of fmt (removed by the suite's
 * .fini: one per test); its path. */
static const char *extra_file(const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *extra_file(const char *tag, const char *fmt, ...)
{
	char base[128];
	va_list ap;

	snprintf(extra_file_path, sizeof(extra_file_path), "/tmp/%s",
	         sk_test_base(base, sizeof(base), tag));
	FILE *f = fopen(extra_file_path, "w");
	cr_assert(f, "%s: %s", extra_file_path, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	cr_assert_eq(fclose(f), 0);
	return extra_file_path;
}

static void bridge_fini(void)
{
	if (extra_file_path[0])
		unlink(extra_file_path);
	for (int i = 0; i < 4; i++) /* a bridge a failed test left open holds its lock */
		if (jnl_paths[i][0] && shmkit_journal_remove(jnl_paths[i]) == -EBUSY)
			jnl_rmrf(jnl_paths[i]);
	for (int i = 0; i < n_extra; i++)
		shmkit_seg_remove(extra_names[i]);
	sk_test_cleanup();
}

TestSuite(bridge, .fini = bridge_fini, .timeout = 60);

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
		if (!strncmp(line, "listening ", 10) && ep)
			snprintf(ep, cap, "%s", line + 10);
		if (!strncmp(line, "bound ", 6) && ep) /* a bus's PUB (none listens then) */
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
	extra_name(a, "skbr-bus"); /* the export's position, kept beside the bus */
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
	extra_name(a, "skbr-bus");
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
	/* Until three frames came back, bounded by 30 s of wall-clock time,
	 * not by a count of loops: a loop whose run returns at once would
	 * end before TCP and the subscription are up on a loaded machine. */
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (t = t0; st.own_origin < 3 && t.tv_sec - t0.tv_sec < 30;
	     clock_gettime(CLOCK_MONOTONIC, &t)) {
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

/* A PUB socket bound to a loopback port (into ep) forging frames of the
 * remote bus `remote`; the header of a good bus frame of origin 9. */
static void forger_open(struct forger *f, const char *remote, char *ep, size_t cap)
{
	f->ctx = zmq_ctx_new();
	f->pub = zmq_socket(f->ctx, ZMQ_PUB);
	cr_assert_eq(zmq_bind(f->pub, "tcp://127.0.0.1:*"), 0);
	cr_assert_eq(zmq_getsockopt(f->pub, ZMQ_LAST_ENDPOINT, ep, &cap), 0);
	f->topic_len = shmkit_bridge_topic(f->topic, sizeof(f->topic), SHMKIT_BRIDGE_KIND_BUS, remote);
	cr_assert_gt(f->topic_len, 0);
}

static struct shmkit_bridge_hdr forged_bus_hdr(void)
{
	return (struct shmkit_bridge_hdr){
		.magic = SHMKIT_BRIDGE_MAGIC, .version = SHMKIT_BRIDGE_VERSION,
		.kind = SHMKIT_BRIDGE_KIND_BUS, .delivery = SHMKIT_BUS_OVERWRITE,
		.origin = 9, .capacity = 64, .max_msg = 128,
	};
}

static void forger_close(struct forger *f)
{
	zmq_close(f->pub);
	zmq_ctx_term(f->ctx);
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

	forger_open(&f, "remote-X", ep, sizeof(ep));
	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "remote-X", local), 0);
	cr_assert_eq(shmkit_bridge_connect(br, ep), 0);

	struct shmkit_bridge_hdr h = forged_bus_hdr();
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
	char line[1024];
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
	forger_close(&f);
}

/* A journal record packed for the wire: u64 seq, u64 time, u32 length,
 * bytes (little-endian); returns the bytes written at p. */
static size_t jrec(unsigned char *p, uint64_t seq, const char *data, uint32_t len_said)
{
	size_t len = strlen(data);

	for (int i = 0; i < 8; i++) { /* stamp: seq * 1000 + 7 */
		p[i] = (unsigned char)(seq >> (8 * i));
		p[8 + i] = (unsigned char)((seq * 1000 + 7) >> (8 * i));
	}
	for (int i = 0; i < 4; i++)
		p[16 + i] = (unsigned char)(len_said >> (8 * i));
	memcpy(p + 20, data, len);
	return 20 + len;
}

/* Send a journal data frame of n records (payload plen bytes) read from
 * seq `from` in the leader journal whose identity is JID, from this
 * test's ROUTER to the follower bridge behind rid. */
#define JID 0x1badcafe2badf00dULL
static uint64_t jframe_id = JID;
static void jframe(void *router, const unsigned char *rid, size_t rid_len, const char *topic,
                   int topic_len, uint64_t from, uint32_t n, const unsigned char *payload,
                   size_t plen)
{
	unsigned char frame[1024];
	struct shmkit_bridge_hdr h = { .magic = SHMKIT_BRIDGE_MAGIC, .version = SHMKIT_BRIDGE_VERSION,
	                               .kind = SHMKIT_BRIDGE_KIND_JNL, .origin = 9, .seq = from,
	                               .capacity = n, .length = (uint32_t)plen,
	                               .max_msg = (uint32_t)jframe_id,
	                               .stream = (uint32_t)(jframe_id >> 32) };

	h.crc = shmkit_bridge_crc32c(0, payload, plen);
	memcpy(frame, topic, (size_t)topic_len);
	shmkit_bridge_hdr_encode(&h, frame + topic_len);
	memcpy(frame + topic_len + SHMKIT_BRIDGE_HDR, payload, plen);
	cr_assert_eq(zmq_send(router, rid, rid_len, ZMQ_SNDMORE), (int)rid_len);
	size_t len = (size_t)topic_len + SHMKIT_BRIDGE_HDR + plen;
	cr_assert_eq(zmq_send(router, frame, len, 0), (int)len);
}

/* Run br until its stats satisfy done (at most 3 s of turns). */
static void run_follower(shmkit_bridge *br, struct shmkit_bridge_stats *st,
                         bool (*done)(const struct shmkit_bridge_stats *st))
{
	for (int i = 0; i < 3000; i++) {
		cr_assert_geq(shmkit_bridge_run(br, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(br, st), 0);
		if (done(st))
			return;
	}
}

static bool three_in(const struct shmkit_bridge_stats *st) { return st->jnl_in >= 3; }
static bool four_in(const struct shmkit_bridge_stats *st) { return st->jnl_in >= 4; }
static bool late_and_foreign(const struct shmkit_bridge_stats *st)
{
	return st->out_of_order >= 1 && st->jnl_identity >= 1;
}

/* A follower bridge in this process, peered with this test's ROUTER
 * playing the leader: journal frames whose good CRC covers a bad
 * structure (a record's length past the payload; fewer records than the
 * header says; a record before the frame's `from`) are counted malformed
 * and append nothing; a frame packing records 1-3 appends all three,
 * with their bytes and stamps, in order, and makes the copy a copy of the
 * frame's journal.  A frame read from 4 whose record is 7 (the leader
 * has a hole at 4-6) appends 7 behind a hole; one read from 10 (frames
 * before it lost) and one of another journal append nothing (counted
 * out_of_order, jnl_identity).  verify is clean, with that one hole. */
Test(bridge, journal_frames_pack_records_and_bad_ones_are_dropped)
{
	char ep[256], topic[300];
	size_t eplen = sizeof(ep);
	unsigned char rid[256], in[1024], pl[512];
	struct shmkit_bridge_opts bo = { .id = 31 };
	struct shmkit_bridge_stats st;
	shmkit_bridge *br;
	int rid_len = -1;

	const char *path = jnl_path("jfollow");
	void *ctx = zmq_ctx_new(), *router = zmq_socket(ctx, ZMQ_ROUTER);
	cr_assert_eq(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
	cr_assert_eq(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	int topic_len = shmkit_bridge_topic(topic, sizeof(topic), SHMKIT_BRIDGE_KIND_JNL, "far-jnl");
	cr_assert_gt(topic_len, 0);
	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_import_journal(br, "far-jnl", path, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_peer(br, ep), 0);
	/* its first hello says who it is */
	for (int i = 0; i < 3000 && rid_len < 0; i++) {
		cr_assert_geq(shmkit_bridge_run(br, -1, 10000000), 0);
		int n = zmq_recv(router, rid, sizeof(rid), ZMQ_DONTWAIT);
		if (n > 0) {
			cr_assert_gt(zmq_recv(router, in, sizeof(in), 0), 0);
			rid_len = n;
		}
	}
	cr_assert_gt(rid_len, 0, "no hello from the follower");

	size_t n = jrec(pl, 1, "a", 1);
	n += jrec(pl + n, 2, "bb", 1000); /* past the payload */
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 1, 2, pl, n);
	n = jrec(pl, 1, "a", 1);
	n += jrec(pl + n, 2, "bb", 2);
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 1, 3, pl, n); /* says 3 */
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 2, 2, pl, n); /* 1 before from */
	n += jrec(pl + n, 3, "ccc", 3);
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 1, 3, pl, n);
	run_follower(br, &st, three_in);
	cr_assert_eq(st.malformed, 3);
	cr_assert_eq(st.bad_crc, 0);
	cr_assert_eq(st.jnl_in, 3);

	n = jrec(pl, 7, "ggggggg", 7);
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 4, 1, pl, n);
	run_follower(br, &st, four_in);
	cr_assert_eq(st.jnl_in, 4, "7 behind the leader's hole 4-6");
	n = jrec(pl, 12, "late", 4);
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 10, 1, pl, n);
	jframe_id = JID + 1;
	n = jrec(pl, 8, "other", 5);
	jframe(router, rid, (size_t)rid_len, topic, topic_len, 8, 1, pl, n);
	jframe_id = JID;
	run_follower(br, &st, late_and_foreign);
	cr_assert_eq(st.out_of_order, 1);
	cr_assert_eq(st.jnl_identity, 1);
	cr_assert_eq(st.jnl_in, 4);
	cr_assert_eq(shmkit_bridge_close(br), 0);

	shmkit_journal *j;
	struct shmkit_record rec;
	struct shmkit_journal_stats js;
	const char *want[] = { "a", "bb", "ccc", "ggggggg" };
	const uint64_t seqs[] = { 1, 2, 3, 7 };
	cr_assert_eq(shmkit_journal_open(&j, path, NULL), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(shmkit_journal_next(j, &rec, 0), 1);
		cr_assert_eq(rec.seq, seqs[i]);
		cr_assert_eq(rec.time_ns, (int64_t)seqs[i] * 1000 + 7, "the leader's stamp");
		cr_assert_eq(rec.len, strlen(want[i]));
		cr_assert_eq(memcmp(rec.data, want[i], rec.len), 0);
	}
	cr_assert_lt(shmkit_journal_next(j, &rec, 0), 1, "nothing more");
	cr_assert_eq(shmkit_journal_stats(j, &js), 0);
	cr_assert_eq(js.copy_of, JID);
	shmkit_journal_close(j);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_verify(path, &rep), 0, "%s", rep.where);
	cr_assert_eq(rep.holes, 1);
	cr_assert_eq(rep.hole_records, 3);
	zmq_close(router);
	zmq_ctx_term(ctx);
}

/* ---- journal replication between two bridges in this process ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Record seq of the leader journals below: "seq:" then its byte up to a
 * length of 1-150. */
static uint32_t jl_fill(uint64_t seq, char *buf)
{
	uint32_t len = 1 + (uint32_t)(seq * 37 % 150);
	int w = snprintf(buf, 160, "%llu:", (unsigned long long)seq);
	memset(buf + w, 'a' + (int)(seq % 26), 160 - (size_t)w);
	return len;
}

static shmkit_journal *jl_writer(const char *path, uint32_t keep_files)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 4096, .max_record = 256,
	                                 .keep_files = keep_files };
	shmkit_journal *j;
	int rc = shmkit_journal_open(&j, path, &o);
	cr_assert_eq(rc, 0, "open %s: %s", path, shmkit_strerror(rc));
	return j;
}

static void jl_append(shmkit_journal *j, uint64_t from, uint64_t to)
{
	char buf[160];
	uint64_t seq;

	for (uint64_t s = from; s <= to; s++) {
		cr_assert_eq(shmkit_journal_append(j, buf, jl_fill(s, buf), &seq), 0);
		cr_assert_eq(seq, s);
	}
}

static struct shmkit_journal_stats jl_stats(const char *path)
{
	struct shmkit_journal_stats st;
	shmkit_journal *j;

	cr_assert_eq(shmkit_journal_open(&j, path, NULL), 0, "%s", path);
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	shmkit_journal_close(j);
	return st;
}

/* Two bridges in this process: *lb exports the journal leader and
 * listens on loopback, *fb imports it into copy and peers with it. */
static void jl_pair(const char *leader, const char *copy, shmkit_bridge **lb, shmkit_bridge **fb)
{
	struct shmkit_bridge_opts o1 = { .id = 41 }, o2 = { .id = 42 };
	char ep[256];

	cr_assert_eq(shmkit_bridge_create(lb, &o1), 0);
	cr_assert_eq(shmkit_bridge_create(fb, &o2), 0);
	cr_assert_eq(shmkit_bridge_export_journal(*lb, leader), 0);
	cr_assert_eq(shmkit_bridge_import_journal(*fb, leader, copy, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_listen(*lb, "tcp://127.0.0.1:*", ep, sizeof(ep)), 0);
	cr_assert_eq(shmkit_bridge_peer(*fb, ep), 0);
}

/* Turn both bridges until the copy's last seq is last (at most ~10 s). */
static void jl_until(shmkit_bridge *lb, shmkit_bridge *fb, const char *copy, uint64_t last)
{
	struct shmkit_bridge_stats st;

	for (int i = 0; i < 10000; i++) {
		cr_assert_geq(shmkit_bridge_run(lb, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(fb, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(fb, &st), 0);
		if (st.jnl_in && jl_stats(copy).last_seq >= last)
			return;
	}
	cr_assert_fail("the copy never reached seq %llu (it has %llu)", (unsigned long long)last,
	               (unsigned long long)jl_stats(copy).last_seq);
}

/* Both journals verify clean and hold the same records one by one: seq,
 * stamp, length, bytes; with whole, the same holes and the same first
 * seq too (else the copy may keep records the leader's retention removed
 * since: compared from the leader's first seq). */
static void jl_same(const char *leader, const char *copy, bool whole)
{
	shmkit_journal *a, *b;
	struct shmkit_record ra, rb;
	struct shmkit_journal_report pa, pb;
	struct shmkit_journal_stats sa = jl_stats(leader), sb = jl_stats(copy);
	int n = 0, ga, gb;

	cr_assert_eq(shmkit_journal_open(&a, leader, NULL), 0);
	cr_assert_eq(shmkit_journal_open(&b, copy, NULL), 0);
	if (!whole)
		cr_assert_eq(shmkit_journal_seek_seq(b, sa.first_seq), 0);
	while ((ga = shmkit_journal_next(a, &ra, 0)) == 1) {
		gb = shmkit_journal_next(b, &rb, 0);
		cr_assert_eq(gb, 1, "the copy ends before leader record %llu", (unsigned long long)ra.seq);
		cr_assert_eq(rb.seq, ra.seq, "record %d: seq %llu, the leader's %llu", n,
		             (unsigned long long)rb.seq, (unsigned long long)ra.seq);
		cr_assert_eq(rb.time_ns, ra.time_ns, "stamp of %llu", (unsigned long long)ra.seq);
		cr_assert_eq(rb.len, ra.len);
		cr_assert_eq(memcmp(rb.data, ra.data, ra.len), 0, "bytes of %llu", (unsigned long long)ra.seq);
		n++;
	}
	cr_assert_eq(ga, -EAGAIN);
	cr_assert_eq(shmkit_journal_next(b, &rb, 0), -EAGAIN, "the copy has more");
	shmkit_journal_close(a);
	shmkit_journal_close(b);
	cr_assert(!whole || sb.first_seq == sa.first_seq, "the copy starts at %llu, the leader at %llu",
	          (unsigned long long)sb.first_seq, (unsigned long long)sa.first_seq);
	cr_assert_eq(sb.last_seq, sa.last_seq);
	cr_assert_eq(sb.copy_of, sa.id, "the copy says whose copy it is");
	cr_assert_eq(shmkit_journal_verify(leader, &pa), 0, "leader: %s", pa.where);
	cr_assert_eq(shmkit_journal_verify(copy, &pb), 0, "copy: %s", pb.where);
	cr_assert(!whole || pb.valid_records == pa.valid_records);
	cr_assert(!whole || pb.hole_records == pa.hole_records, "holes: copy %llu, leader %llu seqs",
	          (unsigned long long)pb.hole_records, (unsigned long long)pa.hole_records);
	cr_log_info("%d records, %u holes (%llu seqs) in the leader", n, pa.holes,
	            (unsigned long long)pa.hole_records);
}

/* A leader journal whose oldest files went to retention (keep_files 4),
 * with a hole append_at left (seqs 301-309) and one repair left (a
 * record of an older file damaged, then repaired), copied by a new
 * follower: the copy starts at the leader's first retained seq, with the
 * same records, stamps and holes; both verify clean.  Then the leader
 * goes on, another jump included: the copy follows. */
Test(bridge, journal_copy_has_the_leaders_stamps_holes_and_start)
{
	const char *leader = jnl_path("jlead"), *copy = jnl_path("jcopy");
	shmkit_journal *j = jl_writer(leader, 4);
	char buf[160];

	jl_append(j, 1, 300);
	cr_assert_eq(shmkit_journal_append_at(j, 310, 0, buf, jl_fill(310, buf)), 0);
	jl_append(j, 311, 360);
	shmkit_journal_close(j);
	/* damage the first record of the third newest file, repair */
	uint64_t first[16];
	int nf = 0;
	DIR *d = opendir(leader);
	struct dirent *de;
	cr_assert(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".skj") && nf < 16)
			first[nf++] = strtoull(de->d_name, NULL, 10);
	closedir(d);
	cr_assert_eq(nf, 4, "retention kept 4 files");
	qsort(first, (size_t)nf, sizeof(first[0]), cmp_u64);
	char file[400];
	snprintf(file, sizeof(file), "%s/%020llu.skj", leader, (unsigned long long)first[1]);
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char byte;
	cr_assert_eq(pread(fd, &byte, 1, 64 + 24 + 2), 1); /* its first record's payload */
	byte ^= 0x40;
	cr_assert_eq(pwrite(fd, &byte, 1, 64 + 24 + 2), 1);
	close(fd);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_repair(leader, &rep), 0, "%s", rep.where);
	cr_assert_eq(rep.dropped_records, 1);
	struct shmkit_journal_stats ls = jl_stats(leader);
	cr_assert_gt(ls.first_seq, 1, "retention removed the oldest files");

	shmkit_bridge *lb, *fb;
	jl_pair(leader, copy, &lb, &fb);
	jl_until(lb, fb, copy, 360);
	jl_same(leader, copy, true);
	struct shmkit_journal_report cr;
	cr_assert_eq(shmkit_journal_verify(copy, &cr), 0);
	cr_assert_eq(cr.hole_records, 10, "the jump (9 seqs) and the repaired record");

	j = jl_writer(leader, 4); /* the leader goes on while the bridges run */
	jl_append(j, 361, 400);
	cr_assert_eq(shmkit_journal_append_at(j, 420, 0, buf, jl_fill(420, buf)), 0);
	jl_append(j, 421, 430);
	shmkit_journal_close(j);
	jl_until(lb, fb, copy, 430);
	struct shmkit_bridge_stats st;
	cr_assert_eq(shmkit_bridge_stats(fb, &st), 0);
	cr_assert_eq(st.jnl_identity, 0);
	cr_assert_eq(shmkit_bridge_close(fb), 0);
	cr_assert_eq(shmkit_bridge_close(lb), 0);
	jl_same(leader, copy, false);
}

/* fdatasync for everything in this program (the library is linked in
 * statically, so its calls come here): the kernel's, but the next
 * fail_syncs calls fail with EIO, as a failed write-back does. */
static int fail_syncs, syncs_failed;

int fdatasync(int fd)
{
	if (fail_syncs > 0) {
		fail_syncs--;
		syncs_failed++;
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

/* The copy's writer (SYNC) has a write-back fail: that handle refuses
 * every later append (journal.c), so the follower opens the copy again
 * and takes the records when they come again; the copy ends identical. */
Test(bridge, journal_copy_goes_on_after_a_failed_write_back)
{
	const char *leader = jnl_path("jlead"), *copy = jnl_path("jcopy");
	struct shmkit_bridge_opts o1 = { .id = 41 }, o2 = { .id = 42 };
	shmkit_bridge *lb, *fb;
	shmkit_journal *j = jl_writer(leader, 0);
	char ep[256];

	jl_append(j, 1, 20);
	cr_assert_eq(shmkit_bridge_create(&lb, &o1), 0);
	cr_assert_eq(shmkit_bridge_create(&fb, &o2), 0);
	cr_assert_eq(shmkit_bridge_export_journal(lb, leader), 0);
	cr_assert_eq(shmkit_bridge_import_journal(fb, leader, copy, SHMKIT_DUR_SYNC), 0);
	cr_assert_eq(shmkit_bridge_listen(lb, "tcp://127.0.0.1:*", ep, sizeof(ep)), 0);
	cr_assert_eq(shmkit_bridge_peer(fb, ep), 0);
	jl_until(lb, fb, copy, 20);
	fail_syncs = 1; /* the leader's writer (durability NONE) never syncs */
	jl_append(j, 21, 60);
	jl_until(lb, fb, copy, 60);
	cr_assert_eq(syncs_failed, 1, "the copy's writer synced (and failed) once");
	cr_assert_eq(shmkit_bridge_close(fb), 0);
	cr_assert_eq(shmkit_bridge_close(lb), 0);
	shmkit_journal_close(j);
	jl_same(leader, copy, true);
}

static bool refused(const struct shmkit_bridge_stats *st) { return st->jnl_identity >= 1; }

/* A leader journal removed and made again under the same path while the
 * bridges run (records 1-20 of other bytes) is another journal: the
 * leader bridge reads the new one, the follower refuses its records
 * (counted jnl_identity), appends nothing, and its copy stays the copy
 * of the first journal (records 1-10, verify clean). */
Test(bridge, journal_made_again_under_the_name_is_refused)
{
	const char *leader = jnl_path("jlead"), *copy = jnl_path("jcopy");
	shmkit_journal *j = jl_writer(leader, 0);
	shmkit_bridge *lb, *fb;
	struct shmkit_bridge_stats st;

	jl_append(j, 1, 10);
	shmkit_journal_close(j);
	uint64_t first_id = jl_stats(leader).id;
	jl_pair(leader, copy, &lb, &fb);
	jl_until(lb, fb, copy, 10);
	jl_same(leader, copy, true);

	cr_assert_eq(shmkit_journal_remove(leader), 0);
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	cr_assert_eq(shmkit_journal_open(&j, leader, &o), 0);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(shmkit_journal_append(j, "another", 7, NULL), 0);
	shmkit_journal_close(j);
	cr_assert_neq(jl_stats(leader).id, first_id);
	for (int i = 0; i < 10000; i++) {
		cr_assert_geq(shmkit_bridge_run(lb, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(fb, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(fb, &st), 0);
		if (refused(&st))
			break;
	}
	cr_assert_geq(st.jnl_identity, 1, "the new journal's records were not refused");
	cr_assert_eq(st.jnl_in, 10, "nothing of it was appended");
	cr_assert_eq(shmkit_bridge_close(fb), 0);
	cr_assert_eq(shmkit_bridge_close(lb), 0);

	struct shmkit_journal_stats cs = jl_stats(copy);
	cr_assert_eq(cs.last_seq, 10);
	cr_assert_eq(cs.copy_of, first_id);
	shmkit_journal *r;
	struct shmkit_record rec;
	char buf[160];
	cr_assert_eq(shmkit_journal_open(&r, copy, NULL), 0);
	for (uint64_t s = 1; s <= 10; s++) {
		cr_assert_eq(shmkit_journal_next(r, &rec, 0), 1);
		cr_assert_eq(rec.seq, s);
		cr_assert_eq(rec.len, jl_fill(s, buf));
		cr_assert_eq(memcmp(rec.data, buf, rec.len), 0, "record %llu unchanged", (unsigned long long)s);
	}
	cr_assert_eq(shmkit_journal_next(r, &rec, 0), -EAGAIN);
	shmkit_journal_close(r);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_verify(copy, &rep), 0, "%s", rep.where);
}

/* Two bridges in this process; bridge 1's export subscription on an
 * overwrite bus of 8 slots is lapped by 20 messages while the loop does
 * not run: the 12 it lost are counted by bridge 1 (lost_local) and, as a
 * sequence jump, by bridge 2 (lost_remote); the 8 left arrive in order. */
Test(bridge, overwrite_losses_are_counted_on_both_sides)
{
	const char *a = sk_test_new_name("posix"), *b = sk_test_new_name("posix");
	extra_name(a, "skbr-bus");
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

/* ---- two hosts: namespaces, a relay ---- */

/* A simulated host: a process holding its own IPC and mount namespace
 * with a private tmpfs on /dev/shm; programs enter it with nsenter.
 * Nothing it makes outlives it. */
struct host {
	pid_t keeper;
	int out;
	char pid[16];
};

static void host_start(struct host *h)
{
	const char *argv[] = { "/usr/bin/unshare", "--ipc", "--mount", "--propagation", "private",
	                       "sh", "-c",
	                       "mount -t tmpfs -o size=256m tmpfs /dev/shm && echo up && exec sleep 600",
	                       NULL };
	char line[64];

	h->keeper = sk_test_spawn(argv, -1, &h->out);
	cr_assert_gt(h->keeper, 0);
	if (read_line(h->out, line, sizeof(line))) {
		/* unshare or mount refused (no CAP_SYS_ADMIN: not root, or a
		 * container without it): these tests cannot run here */
		int rc = sk_test_finish(h->keeper, h->out, NULL, 0);
		cr_assert(rc > 0 && rc < 128, "the host did not come up (exit %d)", rc);
		cr_skip_test("unshare --ipc --mount or mount -t tmpfs was refused (exit %d): "
		             "two hosts cannot be simulated here", rc);
	}
	cr_assert_str_eq(line, "up");
	snprintf(h->pid, sizeof(h->pid), "%d", (int)h->keeper);
}

static void host_stop(struct host *h)
{
	kill(h->keeper, SIGKILL);
	sk_test_reap(h->keeper);
	close(h->out);
}

/* Run prog (a path) with up to 12 arguments inside host h.  in and *out
 * as for sk_test_spawn (-1: /dev/null; NULL: stdout inherited). */
static pid_t host_spawn_in(struct host *h, int in, int *out, const char *prog,
                           const char *const args[])
{
	const char *argv[24] = { "/usr/bin/nsenter", "-t", h->pid, "--ipc", "--mount", "--", prog };
	int n = 7;

	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, in, out);
	cr_assert_gt(pid, 0);
	return pid;
}

static pid_t host_spawn(struct host *h, int *out, const char *prog, const char *const args[])
{
	return host_spawn_in(h, -1, out, prog, args);
}

/* A running bridge's statistics (SIGUSR1) into line. */
static void bridge_poke(pid_t pid, int out, char *line, size_t cap)
{
	kill(pid, SIGUSR1);
	cr_assert_eq(read_line(out, line, cap), 0, "no statistics on SIGUSR1");
	cr_assert(!strncmp(line, "stats ", 6), "SIGUSR1 printed: %s", line);
}

/* Until the bridge's statistics satisfy key - minus >= want (bounded:
 * 3000 looks, 10 ms apart); minus may be NULL. */
static void bridge_wait_stat(pid_t pid, int out, const char *key, const char *minus, long long want)
{
	char line[2048];
	long long v = 0;

	for (int i = 0; i < 3000; i++) {
		bridge_poke(pid, out, line, sizeof(line));
		v = stat_of(line, key) - (minus ? stat_of(line, minus) : 0);
		if (v >= want)
			return;
		usleep(10000);
	}
	cr_assert_fail("%s - %s stayed at %lld (want %lld)", key, minus ? minus : "0", v, want);
}

static const char *helper_path(void)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/helper_bridge", sk_test_dir());
	return path;
}

/* A bridge inside host h, once it said ready; its listening endpoint into
 * ep if ep is not NULL. */
static pid_t host_bridge(struct host *h, const char *const args[], int *out, char *ep, size_t cap)
{
	char line[1024];
	pid_t pid = host_spawn(h, out, bridge_path(), args);

	for (;;) {
		cr_assert_eq(read_line(*out, line, sizeof(line)), 0, "the bridge said no ready line");
		if (!strncmp(line, "listening ", 10) && ep)
			snprintf(ep, cap, "%s", line + 10);
		if (!strncmp(line, "bound ", 6) && ep) /* a bus's PUB (none listens then) */
			snprintf(ep, cap, "%s", line + 6);
		if (!strncmp(line, "ready", 5))
			return pid;
	}
}

/* A TCP relay on 127.0.0.1 the test controls: it forwards connections to
 * target; cut closes every connection and refuses new ones until
 * restored (what it had not forwarded is lost); freeze stops forwarding
 * from the connecting side (its bytes wait, unread); corrupt N flips one
 * byte inside a run of 'x' (payload, never a header) in the next N chunks
 * going back to the connecting side. */
#define RELAY_PAIRS 16
struct relay {
	int lfd, port, target;
	int cut, corrupt, stop, freeze; /* commands: __atomic */
	int corrupted, accepted;  /* results: __atomic */
	int pair[RELAY_PAIRS][2]; /* client, server; -1 if free */
	pthread_t th;
};

static void relay_close(struct relay *r, int i)
{
	close(r->pair[i][0]);
	close(r->pair[i][1]);
	r->pair[i][0] = r->pair[i][1] = -1;
}

static int write_all(int fd, const char *b, ssize_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, (size_t)n, MSG_NOSIGNAL); /* a closed peer: no SIGPIPE */
		if (w <= 0)
			return -1;
		b += w;
		n -= w;
	}
	return 0;
}

static void relay_accept(struct relay *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->target),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC), s;

	if (c < 0)
		return;
	if (__atomic_load_n(&r->cut, __ATOMIC_RELAXED)) {
		close(c);
		return;
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < RELAY_PAIRS; i++) {
		if (r->pair[i][0] >= 0)
			continue;
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
			break;
		r->pair[i][0] = c;
		r->pair[i][1] = s;
		__atomic_fetch_add(&r->accepted, 1, __ATOMIC_RELAXED);
		return;
	}
	close(c);
	if (s >= 0)
		close(s);
}

static void relay_corrupt(struct relay *r, char *b, ssize_t n)
{
	static const char run[33] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	int left = __atomic_load_n(&r->corrupt, __ATOMIC_RELAXED);
	char *x = left > 0 ? memmem(b, (size_t)n, run, 32) : NULL;

	if (!x)
		return;
	x[16] ^= 0x01;
	__atomic_fetch_sub(&r->corrupt, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->corrupted, 1, __ATOMIC_RELAXED);
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	char buf[65536];

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		struct pollfd p[1 + 2 * RELAY_PAIRS];
		int n = 0, frozen = __atomic_load_n(&r->freeze, __ATOMIC_RELAXED);
		p[n++] = (struct pollfd){ .fd = r->lfd, .events = POLLIN };
		for (int i = 0; i < RELAY_PAIRS; i++)
			for (int k = 0; k < 2; k++) /* a frozen side is not even watched */
				p[n++] = (struct pollfd){ .fd = k == 0 && frozen ? -1 : r->pair[i][k],
				                          .events = POLLIN };
		if (poll(p, (nfds_t)n, 20) < 0)
			continue;
		int cut = __atomic_load_n(&r->cut, __ATOMIC_RELAXED);
		for (int i = 0; i < RELAY_PAIRS; i++) {
			if (r->pair[i][0] < 0)
				continue;
			for (int k = 0; k < 2 && r->pair[i][0] >= 0; k++) {
				if (cut) {
					relay_close(r, i);
					break;
				}
				if (!(p[1 + 2 * i + k].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t got = read(r->pair[i][k], buf, sizeof(buf));
				if (got > 0 && k == 1)
					relay_corrupt(r, buf, got);
				if (got <= 0 || write_all(r->pair[i][!k], buf, got))
					relay_close(r, i);
			}
		}
		if (p[0].revents & POLLIN)
			relay_accept(r);
	}
	for (int i = 0; i < RELAY_PAIRS; i++)
		if (r->pair[i][0] >= 0)
			relay_close(r, i);
	return NULL;
}

static void relay_start(struct relay *r, int target)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	memset(r, 0, sizeof(*r));
	memset(r->pair, -1, sizeof(r->pair));
	r->target = target;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(r->lfd, 0);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(r->lfd, 16), 0);
	cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&a, &al), 0);
	r->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	pthread_join(r->th, NULL);
	close(r->lfd);
}

static int port_of(const char *ep)
{
	const char *c = strrchr(ep, ':');

	return c ? atoi(c + 1) : -1;
}

/* The stats a bridge prints at SIGTERM, into line. */
static void bridge_stop(pid_t pid, int out, char *line, size_t cap)
{
	char text[8192];

	kill(pid, SIGTERM);
	cr_assert_eq(sk_test_finish(pid, out, text, sizeof(text)), 0, "bridge: %s", text);
	last_stats(text, line, cap);
}

/* Two hosts with a bridge each: A's listens on 127.0.0.1 (its endpoint
 * in ep), B's peers with it through the relay.  Each bridge gets its id
 * and endpoint, then its arguments from a/b (NULL-terminated). */
struct duo {
	struct host A, B;
	struct relay r;
	pid_t ba, bb;
	int oa, ob;
	char ep[1024], peer[256];
	const char *a[8], *b[8];
	const char *server_key;   /* B reaches A with it (A given its keypair in a) */
};

static pid_t duo_bridge(struct duo *d, int which)
{
	const char *argv[16] = { "--id", which ? "2" : "1", which ? "--peer" : "--listen",
	                         which ? d->peer : d->ba ? d->ep : "tcp://127.0.0.1:*" };
	const char *const *extra = which ? d->b : d->a;
	int n = 4;

	if (which && d->server_key) {
		argv[2] = "--server-key";
		argv[3] = d->server_key;
		argv[n++] = "--peer";
		argv[n++] = d->peer;
	}
	for (int i = 0; extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if (which)
		return d->bb = host_bridge(&d->B, argv, &d->ob, NULL, 0);
	return d->ba = host_bridge(&d->A, argv, &d->oa, d->ba ? NULL : d->ep, sizeof(d->ep));
}

static void duo_hosts(struct duo *d)
{
	memset(d, 0, sizeof(*d));
	host_start(&d->A);
	host_start(&d->B);
}

/* The bridges (a, b set), the relay between them. */
static void duo_bridges(struct duo *d)
{
	duo_bridge(d, 0);
	relay_start(&d->r, port_of(d->ep));
	snprintf(d->peer, sizeof(d->peer), "tcp://127.0.0.1:%d", d->r.port);
	duo_bridge(d, 1);
}

/* SIGKILL a bridge (0 A, 1 B) and start it again, on the same endpoint. */
static void duo_kill_restart(struct duo *d, int which)
{
	pid_t pid = which ? d->bb : d->ba;

	kill(pid, SIGKILL);
	cr_assert_eq(sk_test_finish(pid, which ? d->ob : d->oa, NULL, 0), 128 + SIGKILL);
	duo_bridge(d, which);
}

/* Stop both bridges (their last statistics into la, lb) and the relay. */
static void duo_stop(struct duo *d, char *la, char *lb, size_t cap)
{
	bridge_stop(d->ba, d->oa, la, cap);
	cr_log_info("bridge A: %s", la);
	bridge_stop(d->bb, d->ob, lb, cap);
	cr_log_info("bridge B: %s", lb);
	relay_stop(&d->r);
}

static void duo_end(struct duo *d)
{
	host_stop(&d->A);
	host_stop(&d->B);
}

/* A stream between two hosts for the channel tests: a channel of kind
 * ("spsc" or "mpmc"; 64 slots of 256 bytes) on each, A's exported (by
 * the glob NAME*: the one channel there) with a window of 32, B's
 * imported; a consumer on B of n messages, held every `every` (its stdin
 * is go), and a producer on A of n messages of 200 bytes. */
struct stream {
	struct duo d;
	char glob[300];
	int oc, op, go;
	pid_t pc, pp;
};

static void stream_start(struct stream *s, const char *chan, const char *n, const char *kind,
                         const char *every)
{
	int go[2];

	duo_hosts(&s->d);
	const char *mk[] = { "chan", chan, "64", "256", kind, NULL };
	cr_assert_eq(sk_test_finish(host_spawn(&s->d.A, NULL, helper_path(), mk), -1, NULL, 0), 0);
	cr_assert_eq(sk_test_finish(host_spawn(&s->d.B, NULL, helper_path(), mk), -1, NULL, 0), 0);
	snprintf(s->glob, sizeof(s->glob), "%s*", chan);
	const char *a[] = { "--export-chan", s->glob, "--window", "32", NULL };
	const char *b[] = { "--import-chan", chan, NULL };
	memcpy(s->d.a, a, sizeof(a));
	memcpy(s->d.b, b, sizeof(b));
	duo_bridges(&s->d);
	const char *cons[] = { "consume", chan, n, every, NULL };
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	s->pc = host_spawn_in(&s->d.B, go[0], &s->oc, helper_path(), cons);
	close(go[0]);
	s->go = go[1];
	const char *prod[] = { "produce", chan, n, "200", NULL };
	s->pp = host_spawn(&s->d.A, &s->op, helper_path(), prod);
}

/* The consumer's next line into line: 1 if it is "at K" (the consumer
 * waits for a line on go), 0 if it is its last. */
static int stream_at(struct stream *s, char *line, size_t cap)
{
	cr_assert_eq(read_line(s->oc, line, cap), 0, "the consumer stalled");
	return !strncmp(line, "at ", 3);
}

/* Every message once and in order; both bridges stopped, their last
 * statistics into la and lb. */
static void stream_end(struct stream *s, char *la, char *lb, size_t cap)
{
	close(s->go);
	cr_log_info("consumer: %s", la);
	cr_assert_str_eq(la, "done got=20000 dup=0 order=0 bad=0 rc=0");
	cr_assert_eq(sk_test_finish(s->pc, s->oc, NULL, 0), 0);
	cr_assert_eq(sk_test_finish(s->pp, s->op, NULL, 0), 0, "the producer failed");
	duo_stop(&s->d, la, lb, cap);
}

/* Two hosts, a channel exported by A's bridge and imported by B's through
 * the relay; 20000 messages of 200 bytes from a producer on A to a
 * consumer on B, while:
 *   after 2000 received, the consumer is held until B's channel is full
 *   and A's window of 32 is all un-acked (so the outbox holds 32), then
 *   A's bridge is SIGKILLed and restarted: they must come from the outbox;
 *   after 5000, held until B drops frames for want of room, then B's
 *   bridge is SIGKILLed and restarted (its dedupe state survives);
 *   after 8000, the link is cut for 0.5 s and restored;
 *   after 11000, the relay withholds what B sends (its acks) until B has
 *   committed at least one more message; then B's bridge is SIGKILLed,
 *   the link cut (the withheld acks are lost) and B restarted: A sends
 *   again what B had committed, and B's dedupe state, which survived in
 *   its host's /dev/shm, suppresses it;
 *   after 15000, 3 frames are corrupted by the relay.
 * The consumer gets every message exactly once and in order; B counts
 * the corrupted frames as bad CRC, exactly.  SPSC channels on both sides
 * (the crash windows closed for them in chan.c are crossed only when a
 * kill happens to land in one). */
Test(bridge, chan_two_hosts_survive_kills_cuts_and_corruption, .timeout = 240)
{
	/* The name is the run's (naming rule), though it lives and dies in
	 * the hosts' own /dev/shm. */
	const char *n_msgs = "20000", *chan = sk_test_new_name("posix");
	char line[2048], lb[2048];
	struct stream st;

	stream_start(&st, chan, n_msgs, "spsc", "1000");
	struct duo *d = &st.d;
	int go1 = st.go;

	while (stream_at(&st, line, sizeof(line))) {
		int at = atoi(line + 3);
		if (at == 2000) { /* A's bridge dies with a full window */
			bridge_wait_stat(d->ba, d->oa, "chan_out", "acked", 32);
			duo_kill_restart(d, 0);
		} else if (at == 5000) { /* B's bridge dies with a full channel */
			bridge_wait_stat(d->bb, d->ob, "chan_full", NULL, 1);
			duo_kill_restart(d, 1);
		} else if (at == 8000) { /* the link goes down for a while */
			__atomic_store_n(&d->r.cut, 1, __ATOMIC_RELAXED);
			usleep(500000);
			__atomic_store_n(&d->r.cut, 0, __ATOMIC_RELAXED);
		} else if (at == 11000) { /* B commits, its acks are lost, it dies */
			/* First a still state: B's channel full (the consumer is
			 * held), A sending again what B refused - so A has every
			 * ack B sent (B commits nothing meanwhile).  Then the acks
			 * are withheld and the consumer let go: what A sends next
			 * B commits, and A never hears of it. */
			bridge_wait_stat(d->bb, d->ob, "chan_full", NULL, 1);
			bridge_poke(d->ba, d->oa, line, sizeof(line));
			bridge_wait_stat(d->ba, d->oa, "resends", NULL, stat_of(line, "resends") + 1);
			__atomic_store_n(&d->r.freeze, 1, __ATOMIC_RELAXED);
			bridge_poke(d->bb, d->ob, line, sizeof(line));
			/* the consumer goes on now: B's channel must have room */
			cr_assert_eq(write(go1, "go\n", 3), 3);
			bridge_wait_stat(d->bb, d->ob, "chan_in", NULL, stat_of(line, "chan_in") + 1);
			kill(d->bb, SIGKILL);
			__atomic_store_n(&d->r.cut, 1, __ATOMIC_RELAXED);
			usleep(100000);
			__atomic_store_n(&d->r.freeze, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&d->r.cut, 0, __ATOMIC_RELAXED);
			duo_kill_restart(d, 1);
		} else if (at == 15000) {
			__atomic_store_n(&d->r.corrupt, 3, __ATOMIC_RELAXED);
		}
		if (at != 11000)
			cr_assert_eq(write(go1, "go\n", 3), 3);
	}
	stream_end(&st, line, lb, sizeof(line));
	cr_assert_eq(stat_of(line, "refused") + stat_of(line, "bad_crc"), 0);
	cr_assert_geq(stat_of(lb, "duplicates"), 1, "B's last life saw what it had committed again");
	cr_assert_eq(__atomic_load_n(&d->r.corrupted, __ATOMIC_RELAXED), 3);
	cr_assert_eq(stat_of(lb, "bad_crc"), 3, "every corrupted frame is counted and dropped");
	cr_assert_gt(__atomic_load_n(&d->r.accepted, __ATOMIC_RELAXED), 2, "the link was made again");
	duo_end(d);
}

/* Two hosts, an MPMC channel on each (A's exported, B's imported: both
 * bridges hold owner records, bridge/chan.c), 20000 messages of 200 bytes
 * from a producer on A to a consumer on B.  Every 500 received, one
 * bridge is SIGKILLed (wherever it is) and restarted armed to kill itself
 * inside one of the MPMC crash windows of bridge/chan.c (its crash
 * points, in turn, at their 1st-20th pass): A after a peek, before the
 * outbox has the message; A after the outbox has it, before the release;
 * B between its reservation and its commit; B after the commit, before
 * `last` is stored.  Once it died there it is restarted.  Exactly once
 * must hold: the consumer gets every message once and in order, and no
 * commit is uncertain.  (Before owner records, the first window lost a
 * message and the last delivered one twice.) */
Test(bridge, chan_two_hosts_mpmc_exactly_once_across_kills_in_the_windows, .timeout = 240)
{
	static const char *const points[] = { "chan.export.peeked", "chan.export.put",
	                                      "chan.import.reserved", "chan.import.committed" };
	const char *n_msgs = "20000", *chan = sk_test_new_name("posix");
	char line[2048], lb[2048], arm[64];
	struct stream st;
	int round = 0;
	unsigned seed = (unsigned)time(NULL);

	cr_log_info("seed %u", seed);
	stream_start(&st, chan, n_msgs, "mpmc", "500");
	struct duo *d = &st.d;
	int go1 = st.go;

	while (stream_at(&st, line, sizeof(line))) {
		if (atoi(line + 3) == 20000) {
			cr_assert_eq(write(go1, "go\n", 3), 3);
			continue;
		}
		int k = round++ % 4, which = k >= 2;
		snprintf(arm, sizeof(arm), "%s:%u", points[k], 1 + rand_r(&seed) % 20);
		setenv("SHMKIT_BRIDGE_CRASH_AT", arm, 1);
		duo_kill_restart(d, which);
		unsetenv("SHMKIT_BRIDGE_CRASH_AT");
		cr_assert_eq(write(go1, "go\n", 3), 3);
		pid_t pid = which ? d->bb : d->ba;
		cr_assert_eq(sk_test_finish(pid, which ? d->ob : d->oa, NULL, 0), 128 + SIGKILL,
		             "the bridge armed at %s did not die there", arm);
		duo_bridge(d, which);
	}
	cr_log_info("%d kills in the windows", round);
	stream_end(&st, line, lb, sizeof(line));
	cr_assert_eq(stat_of(lb, "uncertain"), 0, "B owns its channel: no commit is in doubt");
	duo_end(d);
}

/* Two hosts, a back-pressure bus on A exported by A's bridge (PUB) and
 * imported into a bus on B (SUB) through the relay; a publisher on A, a
 * subscriber on B.  After 5000 messages all came, A's bridge is
 * SIGKILLed; 1000 are published while it is down (nobody carries them);
 * it is restarted and 2000 more follow.  Then the relay cuts the link
 * (A sees its remote subscriber go) while 1000 are published, and
 * restores it (the subscriber back) for the last 1000.  The subscriber
 * gets what was carried, in order; A counts the 1000 of its restart as
 * lost_local (the position it kept beside the bus), exactly, and those of
 * the cut as unsubscribed; B counts every message it did not get as
 * lost_remote (the jumps in the frames' sequence numbers): got +
 * lost_remote = 10000, exactly. */
Test(bridge, bus_two_hosts_losses_across_a_restart_are_counted, .timeout = 120)
{
	const char *bus = sk_test_new_name("posix");
	char line[2048], lb[2048], ep[1024];
	struct host A, B;
	int oa, ob, op, os, go[2];

	host_start(&A);
	host_start(&B);
	const char *mk[] = { "bus", bus, "256", NULL };
	cr_assert_eq(sk_test_finish(host_spawn(&A, NULL, helper_path(), mk), -1, NULL, 0), 0);
	const char *a1[] = { "--id", "1", "--bind", "tcp://127.0.0.1:*", "--export", bus, NULL };
	pid_t ba = host_bridge(&A, a1, &oa, ep, sizeof(ep));
	struct relay r;
	char rep[64];
	relay_start(&r, port_of(ep));
	snprintf(rep, sizeof(rep), "tcp://127.0.0.1:%d", r.port);
	const char *b1[] = { "--id", "2", "--connect", rep, "--import", bus, NULL };
	pid_t bb = host_bridge(&B, b1, &ob, NULL, 0);
	const char *sb[] = { "subscribe", bus, "9999", "1000", NULL };
	pid_t ps = host_spawn(&B, &os, helper_path(), sb);
	const char *pb[] = { "publish", bus, "10000", "1000", NULL };
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	pid_t pp = host_spawn_in(&A, go[0], &op, helper_path(), pb);
	close(go[0]);

	/* Probes until B's bus exists and the subscriber is on it: then the
	 * numbered messages. */
	cr_assert_eq(read_line(os, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "subscribed");
	cr_assert_eq(write(go[1], "go\n", 3), 3);
	const char *a2[] = { "--id", "1", "--bind", ep, "--export", bus, NULL };
	for (int at = 1000; at <= 10000; at += 1000) {
		cr_assert_eq(read_line(op, line, sizeof(line)), 0, "the publisher stalled");
		cr_assert_eq(atoi(line + 3), at);
		if (at == 5000) { /* everything so far came; then A's bridge dies */
			cr_assert_eq(read_line(os, line, sizeof(line)), 0);
			while (strcmp(line, "at 5000"))
				cr_assert_eq(read_line(os, line, sizeof(line)), 0, "the subscriber stalled");
			kill(ba, SIGKILL);
			cr_assert_eq(sk_test_finish(ba, oa, NULL, 0), 128 + SIGKILL);
		} else if (at == 6000) { /* 1000 published with no bridge */
			ba = host_bridge(&A, a2, &oa, NULL, 0);
			/* B's SUB reconnects and subscribes again: A's XPUB says so */
			bridge_wait_stat(ba, oa, "bus_subscribers", NULL, 1);
		} else if (at == 8000) { /* the link cut: A sees B's subscription go */
			__atomic_store_n(&r.cut, 1, __ATOMIC_RELAXED);
			int subs = 1;
			for (int i = 0; i < 3000 && subs; i++) {
				bridge_poke(ba, oa, line, sizeof(line));
				if ((subs = (int)stat_of(line, "bus_subscribers")) != 0)
					usleep(10000);
			}
			cr_assert_eq(subs, 0, "A still sees a remote subscriber after the cut");
		} else if (at == 9000) { /* 1000 published while cut; restored */
			__atomic_store_n(&r.cut, 0, __ATOMIC_RELAXED);
			bridge_wait_stat(ba, oa, "bus_subscribers", NULL, 1);
		}
		cr_assert_eq(write(go[1], "go\n", 3), 3);
	}
	close(go[1]);
	cr_assert_eq(sk_test_finish(pp, op, NULL, 0), 0, "the publisher failed");
	do
		cr_assert_eq(read_line(os, line, sizeof(line)), 0, "the subscriber stalled");
	while (strncmp(line, "done", 4));
	cr_log_info("subscriber: %s", line);
	cr_assert_eq(sk_test_finish(ps, os, NULL, 0), 0);
	int got = -1;
	cr_assert_eq(sscanf(line, "done got=%d order=0 lost=0", &got), 1, "%s", line);
	cr_assert_leq(got, 8000, "what was published during the cut never came");

	bridge_stop(ba, oa, line, sizeof(line));
	cr_log_info("bridge A: %s", line);
	bridge_stop(bb, ob, lb, sizeof(lb));
	cr_log_info("bridge B: %s", lb);
	relay_stop(&r);
	cr_assert_eq(stat_of(line, "lost_local"), 1000, "A counts what it could not carry");
	cr_assert_geq(stat_of(line, "unsubscribed"), 1000, "A carried nothing during the cut");
	cr_assert_eq(got + stat_of(lb, "lost_remote"), 10000,
	             "B counts every message it did not get (got %d)", got);
	host_stop(&A);
	host_stop(&B);
}

/* Two hosts, an MPMC channel on A with a consumer of its own there,
 * competing with A's bridge, which exports it to B (imported MPMC, a
 * consumer there); 20000 messages from a producer on A: every one is
 * received exactly once, on one host or the other. */
Test(bridge, chan_two_hosts_mpmc_each_message_to_one_consumer, .timeout = 120)
{
	const char *chan = sk_test_new_name("posix");
	static unsigned char seen[20000];
	int oc[2], in[2][2], op, total = 0, dup = 0, got[2] = { 0, 0 };
	char line[2048], lb[2048];
	struct duo d;

	memset(seen, 0, sizeof(seen));
	duo_hosts(&d);
	const char *mk[] = { "chan", chan, "64", "256", "mpmc", NULL };
	cr_assert_eq(sk_test_finish(host_spawn(&d.A, NULL, helper_path(), mk), -1, NULL, 0), 0);
	const char *a[] = { "--export-chan", chan, NULL }, *b[] = { "--import-chan", chan, NULL };
	memcpy(d.a, a, sizeof(a));
	memcpy(d.b, b, sizeof(b));
	duo_bridges(&d);
	const char *co[] = { "collect", chan, NULL };
	struct host *hs[2] = { &d.A, &d.B };
	for (int h = 0; h < 2; h++) {
		cr_assert_eq(pipe2(in[h], O_CLOEXEC), 0);
		host_spawn_in(hs[h], in[h][0], &oc[h], helper_path(), co);
		close(in[h][0]);
	}
	cr_assert_eq(read_line(oc[0], line, sizeof(line)), 0);
	cr_assert_str_eq(line, "open");
	/* B's channel is made at the first frame: the collector there says
	 * "open" once it came */
	const char *prod[] = { "produce", chan, "20000", "200", NULL };
	pid_t pp = host_spawn(&d.A, &op, helper_path(), prod);
	while (total < 20000 && !dup) {
		struct pollfd p[2] = { { .fd = oc[0], .events = POLLIN }, { .fd = oc[1], .events = POLLIN } };
		cr_assert_eq(poll(p, 2, 30000) > 0, 1, "the consumers stalled at %d", total);
		for (int h = 0; h < 2; h++) {
			if (!(p[h].revents & (POLLIN | POLLHUP)))
				continue;
			cr_assert_eq(read_line(oc[h], line, sizeof(line)), 0);
			if (!strcmp(line, "open"))
				continue;
			long seq = atol(line);
			cr_assert(seq >= 0 && seq < 20000, "%s", line);
			dup += seen[seq]++ != 0;
			total += seen[seq] == 1;
			got[h]++;
		}
	}
	cr_log_info("A's own consumer got %d, B's %d", got[0], got[1]);
	for (int h = 0; h < 2; h++) {
		cr_assert_eq(write(in[h][1], "stop\n", 5), 5);
		close(in[h][1]);
		do /* anything left in flight would be a duplicate */
			cr_assert_eq(read_line(oc[h], line, sizeof(line)), 0);
		while (strncmp(line, "end", 3) && !(dup += seen[atol(line)]++ != 0));
		close(oc[h]);
	}
	cr_assert_eq(dup, 0, "a message was received twice");
	cr_assert_eq(total, 20000);
	cr_assert_eq(sk_test_finish(pp, op, NULL, 0), 0);
	duo_stop(&d, line, lb, sizeof(line));
	cr_assert_eq(stat_of(lb, "chan_in"), got[1], "B committed what its consumer got");
	duo_end(&d);
}

/* A journal dump of path inside host h (helper jdump) into a buffer the
 * caller frees; its exit code must be 0 (the journal verifies clean). */
static char *host_jdump(struct host *h, const char *path)
{
	size_t cap = 4u << 20;
	char *text = malloc(cap);
	int out;

	cr_assert(text);
	const char *args[] = { "jdump", path, NULL };
	pid_t pid = host_spawn(h, &out, helper_path(), args);
	int rc = sk_test_finish(pid, out, text, cap);
	char *v = strstr(text, "verify");
	cr_assert_eq(rc, 0, "jdump %s in host %s: %s", path, h->pid, v ? v : "(no verify line)");
	return text;
}

/* Two hosts, a journal in host A's /dev/shm written by a helper in steps
 * of 1000 records, exported by A's bridge and copied by B's into a
 * journal of the same path in B's /dev/shm, through the relay, while:
 * B's bridge is SIGKILLed and restarted (after 5000 appended), A's
 * likewise (10000), the link is cut for 0.3 s (15000) and 2 frames are
 * corrupted (20000, and 21000 once the first was counted).  After 30000
 * records, both journals verify clean and hold the same records (seq,
 * stamp, length, bytes) one by one; B counts the corrupted frames as bad
 * CRC. */
Test(bridge, journal_two_hosts_copy_is_identical, .timeout = 240)
{
	char path[256], base[128], line[2048], lb[2048];
	struct duo d;
	int ow, go[2];

	snprintf(path, sizeof(path), "/dev/shm/%s", sk_test_base(base, sizeof(base), "jnl"));
	duo_hosts(&d);
	const char *mk[] = { "jappend", path, "0", "100", "1", NULL };
	cr_assert_eq(sk_test_finish(host_spawn(&d.A, NULL, helper_path(), mk), -1, NULL, 0), 0);
	/* A's bridge reads what it exports from a configuration file (where
	 * it was built with libinih). */
	const char *conf = extra_file("conf", "; the leader\n[bridge]\nwindow = 64\n[export]\njournal = %s\n", path);
#ifdef SK_HAVE_INIH
	const char *a[] = { "--config", conf, NULL };
#else
	const char *a[] = { "--export-journal", path, NULL };
#endif
	const char *b[] = { "--import-journal", path, NULL };
	memcpy(d.a, a, sizeof(a));
	memcpy(d.b, b, sizeof(b));
	duo_bridges(&d);

	const char *wr[] = { "jappend", path, "30000", "100", "1000", NULL };
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	pid_t pw = host_spawn_in(&d.A, go[0], &ow, helper_path(), wr);
	close(go[0]);
	for (int at = 1000; at <= 30000; at += 1000) {
		cr_assert_eq(read_line(ow, line, sizeof(line)), 0, "the writer stalled");
		cr_assert_eq(atoi(line + 3), at);
		if (at == 5000) { /* the follower's bridge dies mid-stream */
			bridge_wait_stat(d.bb, d.ob, "jnl_in", NULL, 1);
			duo_kill_restart(&d, 1);
		} else if (at == 10000) { /* the leader's */
			duo_kill_restart(&d, 0);
		} else if (at == 15000) {
			__atomic_store_n(&d.r.cut, 1, __ATOMIC_RELAXED);
			usleep(300000);
			__atomic_store_n(&d.r.cut, 0, __ATOMIC_RELAXED);
		} else if (at == 20000) {
			__atomic_store_n(&d.r.corrupt, 1, __ATOMIC_RELAXED);
		} else if (at == 21000) {
			/* One frame packs many records (and spans chunks of the
			 * relay): the second byte is flipped once the first
			 * corrupted frame was counted, so it lands in another. */
			bridge_wait_stat(d.bb, d.ob, "bad_crc", NULL, 1);
			__atomic_store_n(&d.r.corrupt, 1, __ATOMIC_RELAXED);
		}
		cr_assert_eq(write(go[1], "go\n", 3), 3);
	}
	close(go[1]);
	cr_assert_eq(sk_test_finish(pw, ow, NULL, 0), 0, "the writer failed");
	const char *wait[] = { "jwait", path, "30000", NULL };
	cr_assert_eq(sk_test_finish(host_spawn(&d.B, NULL, helper_path(), wait), -1, NULL, 0), 0,
	             "the copy never got record 30000");

	duo_stop(&d, line, lb, sizeof(line));
	cr_assert_eq(__atomic_load_n(&d.r.corrupted, __ATOMIC_RELAXED), 2);
	cr_assert_eq(stat_of(lb, "bad_crc"), 2, "every corrupted frame is counted and dropped");
	cr_assert_eq(stat_of(lb, "jnl_identity"), 0);
	/* Records travel packed: the writer appends 1000 at a time, so a
	 * frame carries many (a record per frame would make these equal). */
	cr_assert_lt(stat_of(lb, "received") * 2, stat_of(lb, "jnl_in"), "records are not packed");

	unlink(conf);
	char *da = host_jdump(&d.A, path), *db = host_jdump(&d.B, path);
	cr_assert(strstr(da, "verify 0 records 30000 holes 0"), "leader: %s", strstr(da, "verify"));
	cr_assert_str_eq(da, db, "the copy differs from the leader's journal");
	free(da);
	free(db);
	duo_end(&d);
}

/* Two hosts, an rpc service on A (a helper serving it) exported by A's
 * bridge and imported on B through the relay, with CURVE on (A has a
 * keypair, B its public key): 2000 calls from a client
 * on B come back right; a call's deadline reaches A's server (it sees
 * time left, at most the 3 s given); an application status comes back.
 * Then a call A's server holds for 20 s is outstanding when the link is
 * cut: it fails in its caller with -ECONNRESET (not at its 30 s
 * timeout), and B counts the lost link. */
Test(bridge, rpc_two_hosts_calls_deadlines_and_a_lost_link, .timeout = 120)
{
	const char *svc = sk_test_new_name("posix");
	char line[2048], lb[2048], want[32], keys[256], pub[41], sec[41];
	struct duo d;
	int os, oc;

	cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
	snprintf(keys, sizeof(keys), "%s", extra_file("keys", "public %s\nsecret %s\n", pub, sec));
	duo_hosts(&d);
	d.server_key = pub;
	const char *sv[] = { "serve", svc, NULL };
	pid_t ps = host_spawn(&d.A, &os, helper_path(), sv);
	cr_assert_eq(read_line(os, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "serving");
	const char *a[] = { "--curve-keys", keys, "--export-rpc", svc, NULL },
	           *b[] = { "--import-rpc", svc, NULL };
	memcpy(d.a, a, sizeof(a));
	memcpy(d.b, b, sizeof(b));
	duo_bridges(&d);
	unlink(keys); /* read at start */

	const char *cl[] = { "call", svc, "2000", NULL };
	pid_t pc = host_spawn(&d.B, &oc, helper_path(), cl);
	cr_assert_eq(read_line(oc, line, sizeof(line)), 0, "the client said nothing");
	cr_log_info("client: %s", line);
	cr_assert_eq(sk_test_finish(pc, oc, NULL, 0), 0);
	cr_assert(!strncmp(line, "calls=2000 left=", 16), "%s", line);
	long left = atol(line + 16);
	cr_assert(left > 0 && left <= 3000, "the deadline did not travel: %s", line);
	cr_assert(strstr(line, " status=7"), "%s", line);

	const char *hg[] = { "hang", svc, NULL };
	pc = host_spawn(&d.B, &oc, helper_path(), hg);
	cr_assert_eq(read_line(oc, line, sizeof(line)), 0);
	cr_assert_str_eq(line, "calling");
	bridge_wait_stat(d.bb, d.ob, "rpc_calls", NULL, 2003); /* the call left B */
	__atomic_store_n(&d.r.cut, 1, __ATOMIC_RELAXED);
	cr_assert_eq(read_line(oc, line, sizeof(line)), 0, "the call did not fail");
	cr_assert_eq(sk_test_finish(pc, oc, NULL, 0), 0);
	snprintf(want, sizeof(want), "rc=%d", -ECONNRESET);
	cr_assert_str_eq(line, want, "a call over a lost link fails with -ECONNRESET");
	__atomic_store_n(&d.r.cut, 0, __ATOMIC_RELAXED);

	duo_stop(&d, line, lb, sizeof(line));
	cr_assert_geq(stat_of(lb, "rpc_link_lost"), 1);
	cr_assert_eq(stat_of(lb, "rpc_failed"), 1);
	kill(ps, SIGKILL);
	sk_test_finish(ps, os, NULL, 0);
	duo_end(&d);
}

/* CURVE: bridge 1 has a keypair, allows one client key, and exports a
 * bus.  Bridge 2 knows bridge 1's public key and has the allowed keypair:
 * it gets the messages (the control).  Bridge 3 knows the server key but
 * has a keypair of its own (not allowed: refused by the ZAP handler and
 * counted), bridge 4 a wrong server key, bridge 5 none: none of those
 * gets a single frame, however long it listens after bridge 2 got its
 * first. */
Test(bridge, curve_admits_only_who_knows_the_server_key)
{
	const char *a = sk_test_new_name("posix");
	const char *local[4] = { sk_test_new_name("posix"), sk_test_new_name("posix"),
	                         sk_test_new_name("posix"), sk_test_new_name("posix") };
	char pub[41], sec[41], pub2[41], sec2[41], cpub[41], csec[41], ep[256];
	struct shmkit_bridge_opts o = { .id = 1 };
	struct shmkit_bridge_stats st[5];
	shmkit_bridge *b[5];
	shmkit_bus *bus;

	extra_name(a, "skbr-bus");
	cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
	cr_assert_eq(zmq_curve_keypair(pub2, sec2), 0);
	cr_assert_eq(zmq_curve_keypair(cpub, csec), 0);
	cr_assert_eq(shmkit_bus_create(&bus, a, NULL), 0);
	cr_assert_eq(shmkit_bridge_create(&b[0], &o), 0);
	cr_assert_eq(shmkit_bridge_curve(b[0], pub, "short"), -EINVAL);
	cr_assert_eq(shmkit_bridge_curve(b[0], pub, sec), 0);
	cr_assert_eq(shmkit_bridge_allow_key(b[0], "short"), -EINVAL);
	cr_assert_eq(shmkit_bridge_allow_key(b[0], cpub), 0);
	cr_assert_eq(shmkit_bridge_export_bus(b[0], a), 0);
	cr_assert_eq(shmkit_bridge_bind(b[0], "tcp://127.0.0.1:*", ep, sizeof(ep)), 0);
	const char *key[4] = { pub, pub, pub2, NULL };
	for (int i = 1; i < 5; i++) {
		o.id = (uint32_t)i + 1;
		cr_assert_eq(shmkit_bridge_create(&b[i], &o), 0);
		if (i == 1) /* the allowed client's keypair */
			cr_assert_eq(shmkit_bridge_curve(b[i], cpub, csec), 0);
		cr_assert_eq(shmkit_bridge_import_bus(b[i], a, local[i - 1]), 0);
		cr_assert_eq(shmkit_bridge_server_key(b[i], key[i - 1]), 0);
		cr_assert_eq(shmkit_bridge_connect(b[i], ep), 0);
	}
	int got = 0, after = 0;
	for (int t = 0; t < 5000 && (after < 300 || !st[0].auth_denied); t++) {
		cr_assert_eq(shmkit_bus_publish(bus, "probe", 5, 0), 0);
		for (int i = 0; i < 5; i++) {
			cr_assert_geq(shmkit_bridge_run(b[i], -1, i ? 1000000 : 0), 0);
			cr_assert_eq(shmkit_bridge_stats(b[i], &st[i]), 0);
		}
		got = st[1].delivered > 0;
		after += got;
	}
	cr_assert(got, "the allowed client got nothing");
	cr_assert_gt(st[0].auth_denied, 0, "the ZAP handler refused nobody");
	cr_assert_eq(st[2].received, 0, "a client not on the allow list got frames");
	cr_assert_eq(st[3].received, 0, "a wrong server key got frames");
	cr_assert_eq(st[4].received, 0, "a plain client got frames from a CURVE server");
	for (int i = 4; i >= 0; i--)
		cr_assert_eq(shmkit_bridge_close(b[i]), 0);
	shmkit_bus_close(bus);
}

/* Two bridges in this process, ids id1 and id2: b1 exports channel c
 * and listens on a loopback port (into ep), b2 imports c into c2 and
 * connects to it. */
static void chan_pair(const char *c, const char *c2, uint32_t id1, uint32_t id2,
                      shmkit_bridge **b1, shmkit_bridge **b2, char *ep, size_t cap)
{
	struct shmkit_bridge_opts o1 = { .id = id1 }, o2 = { .id = id2 };

	cr_assert_eq(shmkit_bridge_create(b1, &o1), 0);
	cr_assert_eq(shmkit_bridge_create(b2, &o2), 0);
	cr_assert_eq(shmkit_bridge_export_chan(*b1, c), 0);
	cr_assert_eq(shmkit_bridge_import_chan(*b2, c, c2), 0);
	cr_assert_eq(shmkit_bridge_listen(*b1, "tcp://127.0.0.1:*", ep, cap), 0);
	cr_assert_eq(shmkit_bridge_peer(*b2, ep), 0);
}

/* Two bridges in this process carry a channel; the importing one shows
 * itself in a stats segment: its service, its peer "up" (ZeroMQ's
 * connection events), its counters; the exporting one counts the
 * connection it accepted.  Closing removes the segment. */
Test(bridge, stats_segment_shows_services_and_link_state)
{
	const char *c = sk_test_new_name("posix"), *c2 = sk_test_new_name("posix");
	const char *seg = sk_test_new_name("posix");
	struct shmkit_bridge_stats s1, s2;
	char ep[256], text[16384], m[16], want[600], state[300];
	shmkit_bridge *b1, *b2;
	shmkit_chan *ch, *ch2 = NULL;
	shmkit_seg *sg;

	extra_name(c, "skbr-out");
	extra_name(c2, "skbr-in");
	cr_assert_eq(shmkit_chan_create(&ch, c, NULL), 0);
	chan_pair(c, c2, 11, 12, &b1, &b2, ep, sizeof(ep));
	cr_assert_eq(shmkit_bridge_stats_segment(b2, seg), 0);
	cr_assert_eq(shmkit_bridge_stats_segment(b2, seg), -EINVAL, "one per bridge");
	cr_assert_eq(shmkit_chan_send(ch, "hello", 5, 0), 0);
	ssize_t r = -EAGAIN;
	for (int i = 0; i < 3000 && r < 0; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		if (!ch2 && shmkit_chan_open(&ch2, c2, NULL))
			ch2 = NULL;
		if (ch2)
			r = shmkit_chan_recv(ch2, m, sizeof(m), 0);
	}
	cr_assert_eq(r, 5, "the message never came through");
	cr_assert_eq(memcmp(m, "hello", 5), 0);
	/* The connection events come by ZeroMQ's inproc monitor: soon. */
	for (int i = 0; i < 3000; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(b1, &s1), 0);
		cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
		if (s1.clients && s2.peers_up && s1.acked)
			break;
	}
	cr_assert_eq(s1.clients, 1);
	cr_assert_eq(s2.peers_up, 1);
	cr_assert_eq(s2.links_up, 1);
	cr_assert_eq(s1.acked, 1);

	for (int i = 0; i < 10; i++) /* past the 500 ms refresh, and the final one */
		cr_assert_geq(shmkit_bridge_run(b2, -1, 100000000), 0);
	cr_assert_eq(shmkit_seg_open(&sg, seg, NULL), 0);
	cr_assert_gt(shmkit_bridge_stats_read(shmkit_seg_data(sg), shmkit_seg_size(sg), text, sizeof(text)), 0);
	cr_log_info("%s", text);
	snprintf(want, sizeof(want), "shmkit-bridge id=12 pid=%d\nimport chan %s=%s\n", (int)getpid(), c, c2);
	cr_assert(!strncmp(text, want, strlen(want)), "%s", text);
	snprintf(want, sizeof(want), "peer %s up\n", ep);
	cr_assert(strstr(text, want), "%s", text);
	cr_assert(strstr(text, "stats id=12 ") && strstr(text, " chan_in=1 "), "%s", text);
	cr_assert_eq(shmkit_bridge_stats_read(text, 64, text, sizeof(text)), -EPROTO);
	shmkit_seg_close(sg);

	cr_assert_eq(shmkit_bridge_close(b2), 0);
	cr_assert_eq(shmkit_seg_open(&sg, seg, NULL), -ENOENT, "close removes the segment");
	cr_assert_eq(shmkit_bridge_close(b1), 0);
	shmkit_chan_close(ch2);
	shmkit_chan_close(ch);
	snprintf(state, sizeof(state), "%s.skbr-out", c);
	cr_assert_eq(shmkit_seg_remove(state), 0, "the outbox is beside the channel");
	snprintf(state, sizeof(state), "%s.skbr-in", c2);
	cr_assert_eq(shmkit_seg_remove(state), 0, "the dedupe state is beside the local channel");
}

/* Two bridges in this process carry 40 messages into a local channel of
 * 4 slots whose consumer (this test) starts only once a frame found it
 * full.  The importer says "full" in its ack and "drained" when the
 * consumer made room; the exporter then resends at once (chan_drained)
 * rather than at its 300 ms timer (the old code took 2.7 s here, one
 * timer per fill; this 0.02 s).  All 40 come, in order, and the
 * exporter counts resends started by a drain report. */
Test(bridge, chan_full_remote_resends_when_it_drains)
{
	const char *c = sk_test_new_name("posix"), *c2 = sk_test_new_name("posix");
	struct shmkit_chan_opts small = { .capacity = 4, .max_msg = 64 };
	struct shmkit_bridge_stats s1, s2;
	char ep[256], m[64], want[64], state[300];
	shmkit_bridge *b1, *b2;
	shmkit_chan *ch, *ch2;

	extra_name(c, "skbr-out");
	extra_name(c2, "skbr-in");
	cr_assert_eq(shmkit_chan_create(&ch, c, NULL), 0);
	cr_assert_eq(shmkit_chan_create(&ch2, c2, &small), 0);
	chan_pair(c, c2, 21, 22, &b1, &b2, ep, sizeof(ep));
	for (int i = 0; i < 40; i++) {
		int n = snprintf(m, sizeof(m), "m%d", i);
		cr_assert_eq(shmkit_chan_send(ch, m, (size_t)n, 0), 0);
	}
	/* until a frame found the 4 slots full */
	for (int i = 0; i < 30000; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
		if (s2.chan_full)
			break;
	}
	cr_assert_geq(s2.chan_full, 1, "the local channel never filled");
	int got = 0;
	for (int i = 0; i < 30000 && got < 40; i++) {
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		ssize_t r = shmkit_chan_recv(ch2, m, sizeof(m) - 1, 0);
		if (r == -EAGAIN)
			continue;
		cr_assert_gt(r, 0);
		m[r] = '\0';
		snprintf(want, sizeof(want), "m%d", got++);
		cr_assert_str_eq(m, want);
	}
	cr_assert_eq(got, 40, "the hand-over stopped after %d", got);
	cr_assert_eq(shmkit_bridge_stats(b1, &s1), 0);
	cr_assert_eq(shmkit_bridge_stats(b2, &s2), 0);
	cr_log_info("exporter: resends=%llu chan_drained=%llu; importer: chan_full=%llu",
	            (unsigned long long)s1.resends, (unsigned long long)s1.chan_drained,
	            (unsigned long long)s2.chan_full);
	cr_assert_geq(s1.chan_drained, 1, "no resend was started by a drain report");
	cr_assert_eq(s1.acked, 40);

	cr_assert_eq(shmkit_bridge_close(b2), 0);
	cr_assert_eq(shmkit_bridge_close(b1), 0);
	shmkit_chan_close(ch2);
	shmkit_chan_close(ch);
	snprintf(state, sizeof(state), "%s.skbr-out", c);
	shmkit_seg_remove(state);
	snprintf(state, sizeof(state), "%s.skbr-in", c2);
	shmkit_seg_remove(state);
}

/* ---- permissions and existing names (issue 15: --mode, --excl) ---- */

/* NAME.suffix into buf. */
static const char *beside(char *buf, size_t cap, const char *name, const char *suffix)
{
	snprintf(buf, cap, "%s.%s", name, suffix);
	return buf;
}

static bool seg_exists(const char *name)
{
	struct shmkit_seg_info si;
	return shmkit_seg_info_name(name, &si) == 0;
}

/* The permission bits of the segment behind name. */
static unsigned seg_mode(const char *name)
{
	struct shmkit_seg_info si;
	int rc = shmkit_seg_info_name(name, &si);

	cr_assert_eq(rc, 0, "%s: %s", name, shmkit_strerror(rc));
	return si.mode & 07777;
}

static unsigned path_mode(const char *path)
{
	struct stat sb;

	cr_assert_eq(lstat(path, &sb), 0, "%s: %s", path, strerror(errno));
	return sb.st_mode & 07777;
}

/* A journal's directory has mode dmode and each of its files mode m. */
static void jnl_modes(const char *dir, unsigned dmode, unsigned m)
{
	char p[600];
	struct dirent *de;
	DIR *d = opendir(dir);
	int files = 0;

	cr_assert(d, "%s: %s", dir, strerror(errno));
	cr_expect_eq(path_mode(dir), dmode, "%s: %o, not %o", dir, path_mode(dir), dmode);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		cr_expect_eq(path_mode(p), m, "%s: %o, not %o", p, path_mode(p), m);
		files++;
	}
	closedir(d);
	cr_assert_gt(files, 0, "%s has no file", dir);
}

/* Two bridges in this process, each with its own --mode; the importing
 * one with excl too (the names are new: it makes them exclusively).
 * Everything either makes has its bridge's mode: the state beside the
 * exported bus and channel (0640); the imported bus, channel and rpc
 * service, each import's mark or inbox beside it, the journal copy
 * (its directory with x wherever r) and the stats segment (0660).  The
 * exported services keep theirs.  A bridge made again with excl takes
 * back every name the imports made. */
Test(bridge, mode_is_every_object_the_bridge_makes, .timeout = 120)
{
	const char *a = sk_test_new_name("posix"), *a2 = sk_test_new_name("posix");
	const char *c = sk_test_new_name("posix"), *c2 = sk_test_new_name("posix");
	const char *s = sk_test_new_name("posix"), *s2 = sk_test_new_name("posix");
	const char *seg = sk_test_new_name("posix");
	const char *j = jnl_path("lead"), *j2 = jnl_path("copy");
	struct shmkit_bridge_opts o1 = { .id = 51, .mode = 0640 },
	                          o2 = { .id = 52, .mode = 0660, .excl = 1 };
	struct shmkit_bridge_stats st = { 0 };
	char pub_ep[256], link_ep[256], n[320];
	shmkit_bridge *b1, *b2;
	shmkit_bus *bus;
	shmkit_chan *ch;
	shmkit_rpc *rpc;

	extra_name(a, "skbr-bus");
	extra_name(a2, "skbr-in");
	extra_name(c, "skbr-out");
	extra_name(c2, "skbr-in");
	extra_name(s2, "skbr-in");
	cr_assert_eq(shmkit_bus_create(&bus, a, NULL), 0);
	cr_assert_eq(shmkit_chan_create(&ch, c, NULL), 0);
	cr_assert_eq(shmkit_rpc_create(&rpc, s, NULL), 0);
	shmkit_journal *jw = jl_writer(j, 0);
	jl_append(jw, 1, 3);

	cr_assert_eq(shmkit_bridge_create(&b1, &o1), 0);
	cr_assert_eq(shmkit_bridge_export_bus(b1, a), 0);
	cr_assert_eq(shmkit_bridge_export_chan(b1, c), 0);
	cr_assert_eq(shmkit_bridge_export_rpc(b1, s), 0);
	cr_assert_eq(shmkit_bridge_export_journal(b1, j), 0);
	cr_assert_eq(shmkit_bridge_bind(b1, "tcp://127.0.0.1:*", pub_ep, sizeof(pub_ep)), 0);
	cr_assert_eq(shmkit_bridge_listen(b1, "tcp://127.0.0.1:*", link_ep, sizeof(link_ep)), 0);
	cr_assert_eq(shmkit_bridge_create(&b2, &o2), 0);
	cr_assert_eq(shmkit_bridge_stats_segment(b2, seg), 0);
	cr_assert_eq(shmkit_bridge_import_bus(b2, a, a2), 0);
	cr_assert_eq(shmkit_bridge_import_chan(b2, c, c2), 0);
	cr_assert_eq(shmkit_bridge_import_rpc(b2, s, s2), 0);
	cr_assert_eq(shmkit_bridge_import_journal(b2, j, j2, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_connect(b2, pub_ep), 0);
	cr_assert_eq(shmkit_bridge_peer(b2, link_ep), 0);
	cr_assert_eq(shmkit_chan_send(ch, "m", 1, 0), 0);

	/* Until every import made its service (bounded by wall-clock time). */
	struct timespec t0, t;
	bool all = false;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (t = t0; !all && t.tv_sec - t0.tv_sec < 60; clock_gettime(CLOCK_MONOTONIC, &t)) {
		cr_assert_eq(shmkit_bus_publish(bus, "probe", 5, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b1, -1, 0), 0);
		cr_assert_geq(shmkit_bridge_run(b2, -1, 1000000), 0);
		cr_assert_eq(shmkit_bridge_stats(b2, &st), 0);
		all = st.delivered && st.chan_in && st.jnl_in >= 3 && seg_exists(s2);
	}
	cr_assert(all, "not every import made its service: delivered %llu chan_in %llu jnl_in %llu rpc %d",
	          (unsigned long long)st.delivered, (unsigned long long)st.chan_in,
	          (unsigned long long)st.jnl_in, seg_exists(s2));

	cr_expect_eq(seg_mode(beside(n, sizeof(n), a, "skbr-bus")), 0640);
	cr_expect_eq(seg_mode(beside(n, sizeof(n), c, "skbr-out")), 0640);
	const char *made[] = { a2, c2, s2, seg };
	for (int i = 0; i < 4; i++)
		cr_expect_eq(seg_mode(made[i]), 0660, "%s: %o", made[i], seg_mode(made[i]));
	const char *marked[] = { a2, c2, s2 };
	for (int i = 0; i < 3; i++)
		cr_expect_eq(seg_mode(beside(n, sizeof(n), marked[i], "skbr-in")), 0660, "%s", n);
	jnl_modes(j2, 0770, 0660);
	cr_expect_eq(seg_mode(a), 0600, "an exported service keeps its mode");
	cr_expect_eq(seg_mode(c), 0600);
	cr_assert_eq(shmkit_bridge_close(b2), 0);

	/* Restarted with excl: the names its imports made are taken back. */
	cr_assert_eq(shmkit_bridge_create(&b2, &o2), 0);
	cr_assert_eq(shmkit_bridge_import_bus(b2, a, a2), 0);
	cr_assert_eq(shmkit_bridge_import_chan(b2, c, c2), 0);
	cr_assert_eq(shmkit_bridge_import_rpc(b2, s, s2), 0);
	cr_assert_eq(shmkit_bridge_import_journal(b2, j, j2, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_close(b2), 0);
	cr_assert_eq(shmkit_bridge_close(b1), 0);
	shmkit_journal_close(jw);
	shmkit_rpc_close(rpc);
	shmkit_chan_close(ch);
	shmkit_bus_close(bus);
}

/* With excl an import refuses (-EEXIST) a local name that exists and
 * that no bridge import made: a bus, a channel, an rpc service, a journal
 * holding a record.  It takes a name with a bridge import's mark beside
 * it, a journal with no record, a missing name; without excl it takes
 * them all, as before.  A mode beyond 0777 is refused. */
Test(bridge, excl_refuses_names_no_bridge_import_made)
{
	const char *bn = sk_test_new_name("posix"), *cn = sk_test_new_name("posix");
	const char *rn = sk_test_new_name("posix"), *mn = sk_test_new_name("posix");
	const char *missing = sk_test_new_name("posix");
	const char *jfull = jnl_path("full"), *jempty = jnl_path("empty");
	struct shmkit_bridge_opts ox = { .excl = 1 }, bad = { .mode = 01777 };
	struct shmkit_seg_opts mark = { .size = 64 };
	char n[320];
	shmkit_bridge *br;
	shmkit_bus *bus, *mbus;
	shmkit_chan *ch;
	shmkit_rpc *rpc;
	shmkit_seg *ms;

	extra_name(mn, "skbr-in");
	cr_assert_eq(shmkit_bus_create(&bus, bn, NULL), 0);
	cr_assert_eq(shmkit_chan_create(&ch, cn, NULL), 0);
	cr_assert_eq(shmkit_rpc_create(&rpc, rn, NULL), 0);
	cr_assert_eq(shmkit_bus_create(&mbus, mn, NULL), 0);
	cr_assert_eq(shmkit_seg_create(&ms, beside(n, sizeof(n), mn, "skbr-in"), &mark), 0);
	shmkit_seg_close(ms);
	shmkit_journal *jw = jl_writer(jfull, 0);
	jl_append(jw, 1, 1);
	shmkit_journal_close(jw);
	shmkit_journal_close(jl_writer(jempty, 0));

	cr_assert_eq(shmkit_bridge_create(&br, &bad), -EINVAL);
	cr_assert_eq(shmkit_bridge_create(&br, &ox), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "far-bus", bn), -EEXIST);
	cr_assert_eq(shmkit_bridge_import_chan(br, "far-chan", cn), -EEXIST);
	cr_assert_eq(shmkit_bridge_import_rpc(br, "far-rpc", rn), -EEXIST);
	cr_assert_eq(shmkit_bridge_import_journal(br, "far-jnl", jfull, SHMKIT_DUR_NONE), -EEXIST);
	cr_assert_eq(shmkit_bridge_import_journal(br, "far-jnl2", jempty, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "far-marked", mn), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "far-missing", missing), 0);
	cr_assert_eq(shmkit_bridge_close(br), 0);
	cr_assert(!seg_exists(missing), "an import makes its service at the first frame");

	cr_assert_eq(shmkit_bridge_create(&br, NULL), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "far-bus", bn), 0);
	cr_assert_eq(shmkit_bridge_import_chan(br, "far-chan", cn), 0);
	cr_assert_eq(shmkit_bridge_import_rpc(br, "far-rpc", rn), 0);
	cr_assert_eq(shmkit_bridge_import_journal(br, "far-jnl", jfull, SHMKIT_DUR_NONE), 0);
	cr_assert_eq(shmkit_bridge_close(br), 0);
	shmkit_rpc_close(rpc);
	shmkit_chan_close(ch);
	shmkit_bus_close(mbus);
	shmkit_bus_close(bus);
}

/* With excl, a local bus someone made after the import was set up (so
 * before its first frame) is not written into: the bridge creates its
 * bus exclusively, and the frames are counted unroutable; no mark is
 * made beside the stranger's bus. */
Test(bridge, excl_refuses_a_name_made_before_the_first_frame)
{
	const char *local = sk_test_new_name("posix");
	struct shmkit_bridge_opts bo = { .id = 8, .excl = 1 };
	struct shmkit_bus_opts from = { .from = SHMKIT_FROM_OLDEST };
	struct shmkit_bridge_stats st = { 0 };
	struct forger f = { 0 };
	shmkit_bridge *br;
	shmkit_bus *bus;
	shmkit_sub *sub;
	char ep[256], n[320], m[16];

	extra_name(local, "skbr-in"); /* if the bridge wrongly made one */
	forger_open(&f, "remote-Y", ep, sizeof(ep));
	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "remote-Y", local), 0);
	cr_assert_eq(shmkit_bridge_connect(br, ep), 0);
	cr_assert_eq(shmkit_bus_create(&bus, local, NULL), 0, "made by someone else meanwhile");
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, &from), 0);

	struct shmkit_bridge_hdr h = forged_bus_hdr();
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (t = t0; st.unroutable < 3 && !st.delivered && t.tv_sec - t0.tv_sec < 30;
	     clock_gettime(CLOCK_MONOTONIC, &t)) {
		h.seq++;
		forge(&f, h, "probe", 0, 0, 0);
		cr_assert_geq(shmkit_bridge_run(br, -1, 10000000), 0);
		cr_assert_eq(shmkit_bridge_stats(br, &st), 0);
	}
	cr_assert_eq(st.delivered, 0, "frames were written into the stranger's bus");
	cr_assert_geq(st.unroutable, 3, "no frame came (received %llu)", (unsigned long long)st.received);
	cr_assert_eq(shmkit_sub_recv(sub, m, sizeof(m), NULL, 0), -EAGAIN, "nothing in the stranger's bus");
	cr_assert(!seg_exists(beside(n, sizeof(n), local, "skbr-in")), "no mark beside it");
	cr_assert_eq(shmkit_bridge_close(br), 0);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	forger_close(&f);
}

/* Without excl an import opens a local bus that exists and says so in
 * the stats text, with both geometries: the existing one is kept
 * (capacity 8, max_msg 32), the remote's (64, 128) is not. */
Test(bridge, import_into_an_existing_bus_says_so)
{
	const char *local = sk_test_new_name("posix"), *seg = sk_test_new_name("posix");
	struct shmkit_bus_opts small = { .capacity = 8, .max_msg = 32 };
	struct shmkit_bridge_opts bo = { .id = 10 };
	struct forger f = { 0 };
	shmkit_bridge *br;
	shmkit_bus *bus;
	shmkit_seg *sg;
	char ep[256], text[16384], want[700];

	forger_open(&f, "remote-Z", ep, sizeof(ep));
	cr_assert_eq(shmkit_bus_create(&bus, local, &small), 0);
	cr_assert_eq(shmkit_bridge_create(&br, &bo), 0);
	cr_assert_eq(shmkit_bridge_stats_segment(br, seg), 0);
	cr_assert_eq(shmkit_bridge_import_bus(br, "remote-Z", local), 0);
	cr_assert_eq(shmkit_bridge_connect(br, ep), 0);
	struct shmkit_bridge_hdr h = forged_bus_hdr();
	run_until(br, 1, &f, &h);
	for (int i = 0; i < 7; i++) /* past the 500 ms refresh */
		cr_assert_geq(shmkit_bridge_run(br, -1, 100000000), 0);
	cr_assert_eq(shmkit_seg_open(&sg, seg, NULL), 0);
	cr_assert_gt(shmkit_bridge_stats_read(shmkit_seg_data(sg), shmkit_seg_size(sg), text, sizeof(text)), 0);
	shmkit_seg_close(sg);
	snprintf(want, sizeof(want), "import bus remote-Z=%s: %s existed: opened, its geometry kept "
	         "(capacity 8, max_msg 32; the remote's 64, 128)\n", local, local);
	cr_assert(strstr(text, want), "no '%s' in:\n%s", want, text);
	cr_assert_eq(shmkit_bridge_close(br), 0);
	shmkit_bus_close(bus);
	forger_close(&f);
}

/* The command: --mode and --excl as options and as configuration keys
 * ([bridge] mode, excl); --excl refuses an existing bus (exit 1, saying
 * why); a bad mode is a usage error (exit 2). */
Test(bridge, command_takes_mode_and_excl)
{
	const char *seg = sk_test_new_name("posix"), *bn = sk_test_new_name("posix");
	const char *j = jnl_path("copy");
	char out[4096], imp[400];
	shmkit_bus *bus;
	int fd;

#ifdef SK_HAVE_INIH
	const char *conf = extra_file("conf", "[bridge]\nmode = 0640\nexcl = yes\nstats-seg = %s\n"
	                              "[import]\njournal = far=%s\n", seg, j);
	const char *argv1[] = { bridge_path(), "--config", conf, NULL };
#else
	char opt_j[400];
	snprintf(opt_j, sizeof(opt_j), "far=%s", j);
	const char *argv1[] = { bridge_path(), "--mode", "0640", "--excl", "--stats-seg", seg,
	                        "--import-journal", opt_j, NULL };
#endif
	pid_t pid = bridge_start(argv1, &fd, NULL, 0);
	cr_expect_eq(seg_mode(seg), 0640);
	jnl_modes(j, 0750, 0640);
	kill(pid, SIGTERM);
	cr_assert_eq(sk_test_finish(pid, fd, out, sizeof(out)), 0, "%s", out);

	cr_assert_eq(shmkit_bus_create(&bus, bn, NULL), 0);
	snprintf(imp, sizeof(imp), "far=%s", bn);
	const char *argv2[] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", bridge_path(), "--mode",
	                        "0604", "--excl", "--import", imp, NULL };
	pid = sk_test_spawn(argv2, -1, &fd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(sk_test_finish(pid, fd, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, imp) && strstr(out, strerror(EEXIST)), "%s", out);
	shmkit_bus_close(bus);

	const char *bad[] = { "0", "8", "1777", "-1", "rw", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv3[] = { bridge_path(), "--mode", bad[i], "--import", "x", NULL };
		pid = sk_test_spawn(argv3, -1, &fd);
		cr_assert_eq(sk_test_finish(pid, fd, out, sizeof(out)), 2, "--mode '%s': %s", bad[i], out);
	}
}

/* The command's --help and its man page name the same options (the
 * SYNOPSIS of man/shmkit-bridge.1, found above the test binary), and the
 * man page describes each one. */
static void long_options(const char *text, const char *dash, char set[][32], int *n, int max)
{
	for (const char *p = text; (p = strstr(p, dash)) != NULL;) {
		char w[32];
		size_t k = 0;
		p += strlen(dash);
		while (k + 1 < sizeof(w) && (isalnum((unsigned char)*p) || *p == '-' || *p == '\\')) {
			if (*p != '\\')
				w[k++] = *p;
			p++;
		}
		w[k] = '\0';
		bool seen = !k;
		for (int i = 0; i < *n && !seen; i++)
			seen = !strcmp(set[i], w);
		if (!seen && *n < max)
			snprintf(set[(*n)++], 32, "%s", w);
	}
}

static char *man_page(void)
{
	char path[4096 + 64], dir[4096];
	static char text[65536];

	snprintf(dir, sizeof(dir), "%s", sk_test_dir());
	for (;;) {
		snprintf(path, sizeof(path), "%s/man/shmkit-bridge.1", dir);
		FILE *f = fopen(path, "re");
		if (f) {
			size_t len = fread(text, 1, sizeof(text) - 1, f);
			text[len] = '\0';
			fclose(f);
			return text;
		}
		char *slash = strrchr(dir, '/');
		cr_assert(slash && slash != dir, "no man/shmkit-bridge.1 above %s", sk_test_dir());
		*slash = '\0';
	}
}

Test(bridge, help_and_man_page_name_the_same_options)
{
	char help[8192], syn[64][32], opts[64][32], page[64][32];
	int nsyn = 0, nopts = 0, npage = 0;
	const char *argv[] = { bridge_path(), "--help", NULL };
	int fd;
	pid_t pid = sk_test_spawn(argv, -1, &fd);

	cr_assert_eq(sk_test_finish(pid, fd, help, sizeof(help)), 0);
	char *man = man_page();
	char *desc = strstr(man, ".SH DESCRIPTION");
	cr_assert(desc, "no DESCRIPTION in the man page");
	*desc = '\0'; /* the synopsis before it */
	long_options(man, "\\-\\-", syn, &nsyn, 64);
	*desc = '.';
	long_options(desc, "\\-\\-", page, &npage, 64);
	char *usage_end = strstr(help, "\nCarries");
	cr_assert(usage_end, "%s", help);
	*usage_end = '\0';
	long_options(help, "--", opts, &nopts, 64);
	cr_assert_geq(nopts, 20, "%s", help);
	for (int i = 0; i < nopts; i++) {
		bool in_syn = false, in_page = false;
		for (int k = 0; k < nsyn; k++)
			in_syn |= !strcmp(syn[k], opts[i]);
		for (int k = 0; k < npage; k++)
			in_page |= !strcmp(page[k], opts[i]);
		cr_expect(in_syn, "--%s is in --help, not in the man page's SYNOPSIS", opts[i]);
		cr_expect(in_page, "--%s is described nowhere in the man page", opts[i]);
	}
	for (int k = 0; k < nsyn; k++) {
		bool in_help = false;
		for (int i = 0; i < nopts; i++)
			in_help |= !strcmp(syn[k], opts[i]);
		cr_expect(in_help, "--%s is in the man page's SYNOPSIS, not in --help", syn[k]);
	}
}

/* ---- API and wire format ---- */

Test(bridge, api_refusals)
{
	const char *name = sk_test_new_name("posix"), *missing = sk_test_new_name("posix");
	extra_name(name, "skbr-bus");
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
	char t2[16];
	cr_assert_eq(shmkit_bridge_topic(t2, sizeof(t2), SHMKIT_BRIDGE_KIND_CHAN, "posix:/abc"), 5);
	cr_assert_eq(memcmp(t2, "cabc", 5), 0, "posix:/X and X are one topic");
	cr_assert_eq(shmkit_bridge_topic(t, sizeof(t), SHMKIT_BRIDGE_KIND_BUS, "abcdefg"), -ENAMETOOLONG);
}

#endif
