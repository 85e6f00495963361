/*
 * test_top.c - `shmkit top`: the snapshot (--once --json) against the
 * statistics of a channel, a bus and a journal this test made (values
 * read back through the library, not written down), the journal found
 * because this process maps it, the --once table, the stuck markers (a
 * full channel nobody has open, rpc calls and no server, a journal
 * needing repair), rates that move while a child publishes, System V
 * segments attached once per session (their attach time does not move
 * between refreshes), a System V channel top keeps attached not counted
 * as a peer (in IPC and mount namespaces of its own, where nobody else
 * attaches), usage errors, and
 * the live view driven in tmux (a private server on a socket named by the
 * run id: send-keys, capture-pane; filter, kind, sort, q quits).
 *
 * The tool is BUILD/shmkit, found from this binary (BUILD/tests/test_top).
 * JSON is read minimally: the flat object holding "name":"NAME", then
 * its fields by key.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal_test.h"
#include "lib_test.h"
#include "shmkit.h"

static char tmux_sock[96]; /* the tmux server a test started (-L name) */

static void tmux_kill(void)
{
	char path[PATH_MAX];

	if (!tmux_sock[0])
		return;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("tmux", "tmux", "-L", tmux_sock, "kill-server", (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	const char *dir = getenv("TMUX_TMPDIR");
	snprintf(path, sizeof(path), "%s/tmux-%u/%s", dir && *dir ? dir : "/tmp", (unsigned)getuid(),
	         tmux_sock);
	unlink(path);
	tmux_sock[0] = '\0';
}

static void cleanup(void)
{
	tmux_kill();
	sk_test_cleanup();
	jt_cleanup();
}

TestSuite(top, .timeout = 60, .fini = cleanup);

/* ---- running the tool ------------------------------------------------- */

static const char *tool(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/../shmkit", sk_test_dir());
	return path;
}

#define OUT_LEN (1 << 20)
static char out[OUT_LEN];

/* `shmkit top --once --json --interval 50 [extra]`; its output in out. */
static void top_json(const char *extra)
{
	int rc = sk_test_run(out, sizeof(out), tool(), "top", "--once", "--json", "--interval", "50",
	                     extra, (char *)NULL);
	cr_assert_eq(rc, 0, "shmkit top --once --json exited %d", rc);
	cr_assert(!strncmp(out, "{\"time_ns\":\"", 12), "not a snapshot: %.200s", out);
	size_t n = strlen(out);
	cr_assert(n > 3 && !strcmp(out + n - 3, "]}\n") && !memchr(out, '\n', n - 1),
	          "not one JSON object on one line");
}

/* The flat object of the snapshot whose name is name, into obj. */
static bool find_obj(const char *json, const char *name, char *obj, size_t len)
{
	char key[PATH_MAX + 16];

	snprintf(key, sizeof(key), "\"name\":\"%s\"", name);
	const char *p = strstr(json, key);
	if (!p)
		return false;
	const char *start = p, *end = strchr(p, '}');
	while (start > json && *start != '{')
		start--;
	cr_assert(end && *start == '{');
	snprintf(obj, len, "%.*s", (int)(end - start + 1), start);
	return true;
}

static void must_find(const char *json, const char *name, char *obj, size_t len)
{
	cr_assert(find_obj(json, name, obj, len), "%s not in the snapshot: %.2000s", name, json);
}

/* A numeric field: 1 and *v, 0 if null; fails the test if missing. */
static int field(const char *obj, const char *key, double *v)
{
	char k[64];

	snprintf(k, sizeof(k), "\"%s\":", key);
	const char *p = strstr(obj, k);
	cr_assert(p, "no %s in %s", key, obj);
	p += strlen(k);
	if (!strncmp(p, "null", 4))
		return 0;
	char *end;
	*v = strtod(p, &end);
	cr_assert(end != p, "%s is not a number in %s", key, obj);
	return 1;
}

static void expect(const char *obj, const char *key, double want)
{
	double v = -1;

	cr_assert_eq(field(obj, key, &v), 1, "%s is null in %s", key, obj);
	cr_assert_eq(v, want, "%s is %g, not %g, in %s", key, v, want, obj);
}

static void expect_null(const char *obj, const char *key)
{
	double v;

	cr_assert_eq(field(obj, key, &v), 0, "%s is not null in %s", key, obj);
}

/* ---- objects made here ------------------------------------------------- */

static shmkit_chan *make_chan(const char *name, uint32_t capacity, int sends, int recvs)
{
	struct shmkit_chan_opts o = { .capacity = capacity, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	char buf[64];

	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0, "%s: %s", name, shmkit_errdetail());
	for (int i = 0; i < sends; i++)
		cr_assert_eq(shmkit_chan_send(ch, "m", 1, 0), 0);
	for (int i = 0; i < recvs; i++)
		cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 1);
	return ch;
}

struct peer_count {
	unsigned alive, dead;
	uint64_t delivered, lost, lag;
};

static int count_peer(const struct shmkit_bus_peer *p, void *arg)
{
	struct peer_count *c = arg;

	if (p->alive > 0)
		c->alive++;
	else if (p->alive == 0)
		c->dead++;
	if (p->subscriber) {
		c->delivered += p->count;
		c->lost += p->lost;
		if (p->alive != 0 && p->lag > c->lag)
			c->lag = p->lag;
	}
	return 0;
}

static shmkit_journal *make_journal(const char *path, int records)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 65536, .max_record = 1024 };
	shmkit_journal *j;

	cr_assert_eq(shmkit_journal_open(&j, path, &o), 0, "%s: %s", path, shmkit_errdetail());
	for (int i = 0; i < records; i++)
		cr_assert_eq(shmkit_journal_append(j, "record-payload", 14, NULL), 0);
	return j;
}

/* ---- the snapshot against the objects' own statistics ------------------ */

Test(top, json_snapshot_matches_the_objects_stats)
{
	const char *cname = sk_test_new_name("posix"), *bname = sk_test_new_name("posix");
	const char *jpath = jt_new_path();
	char obj[8192], buf[64];

	shmkit_chan *ch = make_chan(cname, 8, 3, 1);
	struct shmkit_bus_opts bo = { .capacity = 16, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_bus *bus;
	shmkit_sub *sub;
	cr_assert_eq(shmkit_bus_create(&bus, bname, &bo), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(shmkit_bus_publish(bus, "b", 1, 0), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(shmkit_sub_recv(sub, buf, sizeof(buf), NULL, 0), 1);
	/* the journal is not named: top finds it in this process's maps */
	shmkit_journal *j = make_journal(jpath, 4);

	top_json(NULL);

	struct shmkit_chan_stats cs;
	cr_assert_eq(shmkit_chan_stats(ch, &cs), 0);
	must_find(out, cname, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"kind\":\"chan\"") && strstr(obj, "\"backend\":\"posix\""), "%s", obj);
	expect(obj, "in", (double)cs.sent);
	expect(obj, "out", (double)cs.received);
	expect(obj, "depth", (double)cs.depth);
	expect(obj, "capacity", cs.capacity);
	expect(obj, "in_rate", 0); /* nothing moved between the two samples */
	expect(obj, "out_rate", 0);
	expect_null(obj, "lag");
	cr_assert_eq(cs.depth, 2);
	cr_assert(strstr(obj, "\"stuck\":false"), "%s", obj);

	struct shmkit_bus_stats bs;
	struct peer_count pc = { 0 };
	cr_assert_eq(shmkit_bus_stats(bus, &bs), 0);
	cr_assert_eq(shmkit_bus_peers(bus, count_peer, &pc), 0);
	must_find(out, bname, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"kind\":\"bus\""), "%s", obj);
	expect(obj, "in", (double)bs.head);
	expect(obj, "out", (double)pc.delivered);
	expect(obj, "depth", (double)(bs.head - bs.oldest));
	expect(obj, "capacity", bs.capacity);
	expect(obj, "lag", (double)pc.lag);
	expect(obj, "lost", (double)pc.lost);
	expect(obj, "peers_alive", pc.alive);
	expect(obj, "peers_dead", pc.dead);
	cr_assert_eq(pc.lag, 3);

	struct shmkit_journal_stats js;
	char real[PATH_MAX];
	cr_assert_eq(shmkit_journal_stats(j, &js), 0);
	cr_assert(realpath(jpath, real));
	must_find(out, real, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"kind\":\"journal\""), "%s", obj);
	expect(obj, "in", (double)js.last_seq);
	expect(obj, "depth", (double)js.records);
	expect(obj, "size", (double)js.bytes);
	expect(obj, "peers_alive", 1); /* this process writes it */
	cr_assert_eq(js.records, 4);
	expect(obj, "in_rate", 0);

	shmkit_journal_close(j);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	shmkit_chan_close(ch);
}

Test(top, once_table_shows_the_rows)
{
	const char *cname = sk_test_new_name("posix");
	shmkit_chan *ch = make_chan(cname, 8, 5, 2);
	struct shmkit_chan_stats cs;
	char want[256];

	cr_assert_eq(shmkit_chan_stats(ch, &cs), 0);
	cr_assert_eq(sk_test_run(out, sizeof(out), tool(), "top", "--once", "--interval", "50",
	                         (char *)NULL), 0);
	cr_assert(!strncmp(out, "KIND", 4), "no header: %.200s", out);
	const char *row = strstr(out, cname);
	cr_assert(row, "%s not in the table", cname);
	while (row > out && row[-1] != '\n')
		row--; /* the start of its line */
	snprintf(want, sizeof(want), " %" PRIu64 " ", cs.depth);
	char line[1024];
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(row, "\n"), row);
	cr_assert(!strncmp(line, "chan ", 5) && strstr(line, want) && strstr(line, " posix "),
	          "row: %s", line);
	shmkit_chan_close(ch);
}

/* ---- stuck markers ---------------------------------------------------- */

Test(top, full_channel_nobody_has_open_is_stuck)
{
	const char *full = sk_test_new_name("posix"), *held = sk_test_new_name("posix");
	char obj[8192];

	/* full, closed: no live consumer can drain it */
	shmkit_chan *ch = make_chan(full, 2, 2, 0);
	shmkit_chan_close(ch);
	/* full too, but a handle that receives from it is open: not stuck */
	shmkit_chan *h = make_chan(held, 2, 2, 1);
	cr_assert_eq(shmkit_chan_send(h, "m", 1, 0), 0);

	/* another top (a concurrent test's) opening it for an instant makes it
	 * "in use" then: asked again until that passed */
	for (int i = 0; i < 20; i++) {
		top_json(NULL);
		must_find(out, full, obj, sizeof(obj));
		if (strstr(obj, "\"stuck\":true"))
			break;
	}
	cr_assert(strstr(obj, "\"stuck\":true") && strstr(obj, "full"), "%s", obj);
	must_find(out, held, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"stuck\":false"), "%s", obj);
	shmkit_chan_close(h);
}

/* A forked child receives from the channel and dies; this process fills
 * it: the one handle that received is dead, so nobody drains it (stuck),
 * and the child's entry counts dead - the kernel's lock, not its pid.
 * Then this handle receives one: a live consumer, not stuck. */
Test(top, full_channel_whose_consumer_died_is_stuck)
{
	const char *name = sk_test_new_name("posix");
	char obj[8192], buf[64];
	shmkit_chan *ch = make_chan(name, 2, 1, 0);

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(shmkit_chan_recv(ch, buf, sizeof(buf), 0) == 1 ? 0 : 1);
	cr_assert_eq(sk_test_reap(pid), 0);
	cr_assert_eq(shmkit_chan_send(ch, "m", 1, 0), 0);
	cr_assert_eq(shmkit_chan_send(ch, "m", 1, 0), 0);
	top_json(NULL);
	must_find(out, name, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"stuck\":true") && strstr(obj, "no live handle has received"),
	          "%s", obj);
	expect(obj, "peers_alive", 1);
	expect(obj, "peers_dead", 1);

	cr_assert_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), 1);
	cr_assert_eq(shmkit_chan_send(ch, "m", 1, 0), 0);
	top_json(NULL);
	must_find(out, name, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"stuck\":false"), "%s", obj);
	shmkit_chan_close(ch);
}

Test(top, rpc_calls_waiting_without_a_server_are_stuck)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_rpc_opts o = { .max_clients = 4, .depth = 2, .flags = SHMKIT_EXCL };
	struct shmkit_rpc_stats st;
	shmkit_rpc *r;
	uint64_t id;
	char obj[8192];

	cr_assert_eq(shmkit_rpc_create(&r, name, &o), 0);
	top_json(NULL);
	must_find(out, name, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"kind\":\"rpc\"") && strstr(obj, "\"stuck\":false"), "%s", obj);
	/* a call sent, no server to take it */
	cr_assert_eq(shmkit_rpc_send(r, "q", 1, 0, -1, &id), 0);
	top_json(NULL);
	cr_assert_eq(shmkit_rpc_stats(r, &st), 0);
	must_find(out, name, obj, sizeof(obj));
	expect(obj, "in", (double)st.requests);
	expect(obj, "out", (double)st.responses);
	expect(obj, "depth", st.in_flight);
	expect(obj, "capacity", (double)st.max_clients * st.depth);
	cr_assert_eq(st.in_flight, 1);
	cr_assert(strstr(obj, "\"stuck\":true") && strstr(obj, "no live server"), "%s", obj);
	shmkit_rpc_close(r);
}

Test(top, journal_needing_repair_is_stuck)
{
	const char *jpath = jt_new_path(), *good = jt_new_path();
	char obj[8192], file[PATH_MAX], real[PATH_MAX];

	shmkit_journal_close(make_journal(jpath, 3));
	shmkit_journal_close(make_journal(good, 3));
	/* flip a payload byte of record 1: intact records after it, so this
	 * is damage repair must mend, not a torn tail */
	snprintf(file, sizeof(file), "%s/00000000000000000001.skj", jpath);
	int fd = open(file, O_RDWR);
	cr_assert(fd >= 0, "%s: %s", file, strerror(errno));
	char b;
	cr_assert_eq(pread(fd, &b, 1, 64 + 24), 1);
	b ^= 0x55;
	cr_assert_eq(pwrite(fd, &b, 1, 64 + 24), 1);
	close(fd);
	struct shmkit_journal_report rep;
	cr_assert_eq(shmkit_journal_verify(jpath, &rep), -EBADMSG);

	cr_assert_eq(sk_test_run(out, sizeof(out), tool(), "top", "--once", "--json", "--interval",
	                         "50", jpath, good, (char *)NULL), 0);
	cr_assert(realpath(jpath, real));
	must_find(out, real, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"stuck\":true") && strstr(obj, "repair"), "%s", obj);
	cr_assert(realpath(good, real));
	must_find(out, real, obj, sizeof(obj));
	cr_assert(strstr(obj, "\"stuck\":false"), "%s", obj);
}

/* ---- rates ------------------------------------------------------------ */

static const char *rate_bus;

static int publish_forever(void *arg)
{
	shmkit_bus *bus;
	struct timespec nap = { 0, 1000000 };

	(void)arg;
	if (shmkit_bus_open(&bus, rate_bus, NULL))
		return 1;
	for (;;) {
		shmkit_bus_publish(bus, "r", 1, 0);
		nanosleep(&nap, NULL);
	}
}

Test(top, rates_follow_the_counters)
{
	struct shmkit_bus_opts bo = { .capacity = 16, .max_msg = 16, .flags = SHMKIT_EXCL };
	shmkit_bus *bus;
	char obj[8192];
	double rate = 0;

	rate_bus = sk_test_new_name("posix");
	cr_assert_eq(shmkit_bus_create(&bus, rate_bus, &bo), 0);
	pid_t child = sk_test_fork(publish_forever, NULL);
	cr_assert(child > 0);
	/* the child publishes all along: some pair of samples sees it move */
	for (int i = 0; i < 50 && rate <= 0; i++) {
		top_json(NULL);
		must_find(out, rate_bus, obj, sizeof(obj));
		cr_assert_eq(field(obj, "in_rate", &rate), 1, "%s", obj);
	}
	kill(child, SIGKILL);
	sk_test_reap(child);
	cr_assert_gt(rate, 0, "the bus was published on, yet its in_rate stayed 0");
	shmkit_bus_close(bus);
}

/* ---- System V: attached once per session ------------------------------ */

/* Read one line of the child's stdout (blocking). */
static bool read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t k = read(fd, buf + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return true;
}

/* The kernel's attach time and last attaching/detaching pid, read
 * without attaching. */
static void attach_of(const char *name, time_t *atime, pid_t *lpid)
{
	struct shmid_ds ds;
	unsigned key;

	cr_assert_eq(sscanf(name, "sysv:0x%x", &key), 1);
	int id = shmget((key_t)key, 0, 0);
	cr_assert(id >= 0);
	cr_assert_eq(shmctl(id, IPC_STAT, &ds), 0);
	*atime = ds.shm_atime;
	*lpid = ds.shm_lpid;
}

Test(top, sysv_segments_are_not_attached_at_every_refresh)
{
	const char *chan = sk_test_new_name("sysv"), *bytes = sk_test_new_name("sysv");
	struct shmkit_seg_opts so = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *seg;
	static char line[OUT_LEN];
	int fd;

	shmkit_chan_close(make_chan(chan, 4, 1, 0));
	cr_assert_eq(shmkit_seg_create(&seg, bytes, &so), 0);
	shmkit_seg_close(seg);
	/* 1.5 s apart: an attach at the third refresh would be at least one
	 * second after one at the first, so the attach time would move */
	const char *argv[] = { tool(), "top", "--json", "--interval", "1500", NULL };
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert(pid > 0);
	cr_assert(read_line(fd, line, sizeof(line)), "no first refresh");
	cr_assert(strstr(line, chan) && strstr(line, bytes), "%.500s", line);
	time_t c1, c2, b1, b2;
	pid_t cl, bl;
	attach_of(chan, &c1, &cl);
	attach_of(bytes, &b1, &bl);
	cr_assert(read_line(fd, line, sizeof(line)), "no second refresh");
	cr_assert(strstr(line, chan), "%.500s", line);
	attach_of(chan, &c2, &cl);
	attach_of(bytes, &b2, &bl);
	kill(pid, SIGTERM);
	cr_assert_eq(sk_test_finish(pid, fd, line, sizeof(line)), 0);
	/* Another process listing segments (a concurrent shmkit ls) may
	 * attach meanwhile: then the last pid is its, not top's. */
	cr_assert(c1 == c2 || cl != pid, "top attached the System V channel again");
	cr_assert(b1 == b2 || bl != pid, "top attached the System V byte segment again");
}

/* ---- System V: top does not count itself ---------------------------- */

#define NO_NS 77

/* In a child with IPC and mount namespaces of its own (a tmpfs on
 * /dev/shm for the lock file): no other process on the machine (another
 * top, a lister) can attach what it makes, so attach counts are exact.
 * A System V channel this process holds open: top, which keeps it
 * attached, shows one peer; a foreign segment (no shmkit lock file): top
 * lists it (--all) and never attaches it (its attach time and last pid
 * stay 0).  Returns 0, NO_NS, or the failing step. */
static int sysv_in_private_ipc(void *arg)
{
	char name[64], obj[8192];
	struct shmkit_chan_stats cs;
	double alive = -1, depth = -1;

	(void)arg;
	if (unshare(CLONE_NEWIPC | CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=4M,mode=1777"))
		return NO_NS;
	struct shmkit_chan_opts o = { .capacity = 4, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	if (!sk_test_name(name, sizeof(name), "sysv") || shmkit_chan_create(&ch, name, &o))
		return 1;
	if (shmkit_chan_send(ch, "a", 1, 0) || shmkit_chan_send(ch, "b", 1, 0) ||
	    shmkit_chan_stats(ch, &cs))
		return 2;
	/* a foreign segment (no shmkit lock file): listed, never attached */
	unsigned key = sk_test_sysv_key(40);
	int foreign = shmget((key_t)key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	if (foreign < 0)
		return 8;
	if (sk_test_run(out, sizeof(out), tool(), "top", "--once", "--json", "--all", "--interval",
	                "50", (char *)NULL))
		return 3;
	struct shmid_ds ds;
	char fname[32];
	snprintf(fname, sizeof(fname), "sysv:0x%08x", key);
	if (shmctl(foreign, IPC_STAT, &ds) || !find_obj(out, fname, obj, sizeof(obj)) ||
	    !strstr(obj, "\"kind\":\"foreign\""))
		return 9;
	if (ds.shm_atime != 0 || ds.shm_lpid != 0)
		return 10; /* top attached it */
	shmctl(foreign, IPC_RMID, NULL);
	if (!find_obj(out, name, obj, sizeof(obj)) || !strstr(obj, "\"backend\":\"sysv\""))
		return 4;
	const char *a = strstr(obj, "\"peers_alive\":"), *d = strstr(obj, "\"depth\":");
	if (!a || !d || sscanf(a, "\"peers_alive\":%lf", &alive) != 1 ||
	    sscanf(d, "\"depth\":%lf", &depth) != 1)
		return 5;
	fprintf(stderr, "%s\n", obj);
	if (depth != (double)cs.depth)
		return 6;
	if (alive != 1)
		return 7; /* this process's attach only, not top's */
	shmkit_chan_close(ch);
	shmkit_seg_remove(name);
	return 0;
}

Test(top, sysv_attaches_in_a_private_ipc_namespace)
{
	pid_t pid = sk_test_fork(sysv_in_private_ipc, NULL);
	cr_assert(pid > 0);
	int rc = sk_test_reap(pid);
	if (rc == NO_NS)
		cr_skip_test("cannot make IPC and mount namespaces here (needs root)");
	cr_assert_eq(rc, 0, "step %d failed (6: depth differs, 7: top counted itself, 10: top "
	             "attached a foreign segment)", rc);
}

/* ---- usage -------------------------------------------------------------- */

Test(top, usage_errors_exit_2)
{
	char err[1];

	cr_assert_eq(sk_test_run(err, sizeof(err), tool(), "top", "--interval", "5", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(err, sizeof(err), tool(), "top", "--interval", "x", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(err, sizeof(err), tool(), "top", "--bogus", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(err, sizeof(err), tool(), "top", "--once", "anon", (char *)NULL), 2);
	/* stdin is /dev/null, stdout a pipe: no live view */
	cr_assert_eq(sk_test_run(err, sizeof(err), tool(), "top", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(out, sizeof(out), tool(), "top", "--help", (char *)NULL), 0);
	cr_assert(strstr(out, "--once") && strstr(out, "--json") && strstr(out, "--interval"));
}

/* ---- the live view in tmux ---------------------------------------------- */

/* Run tmux -L tmux_sock ARGS...; its stdout into buf (may be NULL). */
static int tmux(char *buf, size_t len, ...)
{
	const char *argv[16] = { "/usr/bin/env", "tmux", "-L", tmux_sock };
	int n = 4, fd;
	va_list ap;

	va_start(ap, len);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert(pid > 0);
	static char sink[4096];
	return sk_test_finish(pid, fd, buf ? buf : sink, buf ? len : sizeof(sink));
}

static char screen[65536];

struct wait_for {
	const char *what, *absent;
};

/* The pane shows w->what (and not w->absent). */
static int screen_has(void *arg)
{
	const struct wait_for *w = arg;

	if (tmux(screen, sizeof(screen), "capture-pane", "-p", "-t", "top", (char *)NULL))
		return 0;
	return strstr(screen, w->what) && (!w->absent || !strstr(screen, w->absent));
}

static void see(const char *what, const char *absent)
{
	struct wait_for w = { what, absent };

	cr_assert(sk_test_eventually(screen_has, &w), "the screen never showed '%s'%s%s:\n%s", what,
	          absent ? " without " : "", absent ? absent : "", screen);
}

struct order {
	const char *first, *second, *also;
};

/* The pane shows o->also, and o->first on a line above o->second. */
static int screen_order(void *arg)
{
	const struct order *o = arg;

	if (tmux(screen, sizeof(screen), "capture-pane", "-p", "-t", "top", (char *)NULL))
		return 0;
	const char *a = strstr(screen, o->first), *b = strstr(screen, o->second);
	return a && b && a < b && strchr(a, '\n') < b && strstr(screen, o->also);
}

/* The screen comes to show first above second, and also. */
static void see_order(const char *first, const char *second, const char *also)
{
	struct order o = { first, second, also };

	cr_assert(sk_test_eventually(screen_order, &o), "the screen never showed %s above %s "
	          "with '%s':\n%s", first, second, also, screen);
}

static int server_gone(void *arg)
{
	(void)arg;
	return tmux(NULL, 0, "has-session", "-t", "top", (char *)NULL) != 0;
}

/* The line of the screen holding s. */
static void screen_line(const char *s, char *line, size_t len)
{
	const char *p = strstr(screen, s);
	cr_assert(p);
	const char *b = p;
	while (b > screen && b[-1] != '\n')
		b--;
	snprintf(line, len, "%.*s", (int)strcspn(b, "\n"), b);
}

Test(top, live_view_in_tmux)
{
	const char *cname = sk_test_new_name("posix"), *bname = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 16, .max_msg = 16, .flags = SHMKIT_EXCL };
	char cmd[PATH_MAX + 64], base[64], line[1024], want[128];
	shmkit_bus *bus;

	if (access("/usr/bin/tmux", X_OK) && system("command -v tmux >/dev/null 2>&1"))
		cr_skip_test("tmux is not installed");
	shmkit_chan *ch = make_chan(cname, 8, 6, 1);
	cr_assert_eq(shmkit_bus_create(&bus, bname, &bo), 0);
	sk_test_base(tmux_sock, sizeof(tmux_sock), "tmux");
	snprintf(cmd, sizeof(cmd), "exec %s top --interval 200", tool());
	cr_assert_eq(tmux(NULL, 0, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "200",
	                  "-y", "50", cmd, (char *)NULL), 0);
	see("s sort", NULL);

	/* only this test's objects: a filter typed after '/' */
	sk_test_base(base, sizeof(base), "");
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "/", (char *)NULL), 0);
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "-l", base, (char *)NULL), 0);
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "Enter", (char *)NULL), 0);
	snprintf(want, sizeof(want), "filter: %s", base);
	see(want, "_");
	see(cname, NULL);
	see(bname, NULL);
	see("2 shown", NULL);
	struct shmkit_chan_stats cs;
	cr_assert_eq(shmkit_chan_stats(ch, &cs), 0);
	screen_line(cname, line, sizeof(line));
	snprintf(want, sizeof(want), " %" PRIu64 " ", cs.depth);
	cr_assert(!strncmp(line, "chan", 4) && strstr(line, want) && strstr(line, "posix"),
	          "chan row: %s", line);

	/* sorted by kind (the default): the bus above the channel; s: by
	 * name, the channel (made first: its name is the smaller) above the
	 * bus; r reverses that; r and S (the previous column) go back */
	see_order(bname, cname, "sort: kind  ");
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "s", (char *)NULL), 0);
	see_order(cname, bname, "sort: name  ");
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "r", (char *)NULL), 0);
	see_order(bname, cname, "sort: name (reversed)");
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "r", "S", (char *)NULL), 0);
	see_order(bname, cname, "sort: kind  ");

	/* Esc while typing a filter cancels it: the filter stays this test's */
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "/", "z", "z", (char *)NULL), 0);
	see("zz", NULL);
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "Escape", (char *)NULL), 0);
	snprintf(want, sizeof(want), "filter: %s", base);
	see(want, "zz");
	see("2 shown", NULL);

	/* k: channels only, then buses only */
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "k", (char *)NULL), 0);
	see("kind: chan", bname);
	see(cname, NULL);
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "k", (char *)NULL), 0);
	see("kind: bus", cname);
	see(bname, NULL);

	/* s: the next sort column */
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "c", "s", (char *)NULL), 0);
	see("sort: name", NULL);
	see("kind: all", NULL);

	/* q quits: the pane's command ends, and with it the session */
	cr_assert_eq(tmux(NULL, 0, "send-keys", "-t", "top", "q", (char *)NULL), 0);
	cr_assert(sk_test_eventually(server_gone, NULL), "top did not quit on q");
	tmux_kill();
	shmkit_bus_close(bus);
	shmkit_chan_close(ch);
}
