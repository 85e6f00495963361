/*
 * test_cli_tool.c - the shmkit command behaves as one tool (issue 15):
 *   - ls lists System V segments without attaching them (their attach
 *     time and last pid stay as they were) and lists what this user may
 *     not open, marked no-access;
 *   - create, chan, bus and rpc on an existing name open it and say so,
 *     refuse with --excl, and report a geometry asked for that differs
 *     (exit 1, nothing changed);
 *   - a name the command cannot use (anon, memfd:, malformed; top's NAMEs
 *     too), an option the library refuses or a PATH too long (journal) is
 *     exit 2;
 *   - JSON on the commands that print: an object for create/chan/bus/rpc,
 *     one object per line for recv, sub, call, gc and journal tail, bytes
 *     that are not UTF-8 as hex (they round-trip), times as strings; one
 *     object for demo --json;
 *   - a failure part way through a list of messages says how far it got.
 * The tool is BUILD/shmkit beside this binary's directory; helper_tool
 * runs it with stderr on stdout where a test reads the error.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

static int sysv_id = -1;
static char raw_posix[128]; /* "/NAME" of a raw POSIX object, if made */
static char jdir[128];

static void cleanup(void)
{
	sk_test_cleanup();
	if (sysv_id >= 0)
		shmctl(sysv_id, IPC_RMID, NULL);
	if (raw_posix[0])
		shm_unlink(raw_posix);
	if (jdir[0])
		shmkit_journal_remove(jdir);
}

TestSuite(cli_tool, .timeout = 60, .fini = cleanup);

static char out[65536];

/* Run the tool (through helper_tool, stderr on stdout: what the test
 * reads) with stdin from text (NULL: /dev/null); output into out.
 * Returns the exit code. */
static int run_v(const char *text, const char *const *args)
{
	const char *argv[40] = { "helper_tool", "-", "stdout" };
	int argc = 3, in = -1;

	while (argc < 39 && (argv[argc] = *args++))
		argc++;
	argv[argc] = NULL;
	if (text) {
		int p[2];
		cr_assert_eq(pipe(p), 0);
		cr_assert_eq(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
		close(p[1]);
		in = p[0];
	}
	int fd;
	pid_t pid = sk_test_spawn(argv, in, &fd);
	if (in >= 0)
		close(in);
	cr_assert_gt(pid, 0, "cannot run helper_tool");
	return sk_test_finish(pid, fd, out, sizeof(out));
}

#define RUN(text, ...) run_v(text, (const char *const[]){ __VA_ARGS__, NULL })

/* python3 checks the output in out: EXPR over each JSON document (lines=1:
 * one per line, as a list d) is printed into res; false if not JSON. */
static bool json_check(bool lines, const char *expr, char *res, size_t len)
{
	char code[1024], path[128], base[64];
	snprintf(path, sizeof(path), "/tmp/%s", sk_test_base(base, sizeof(base), "json"));
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, out, strlen(out)), (ssize_t)strlen(out));
	lseek(fd, 0, SEEK_SET);
	snprintf(code, sizeof(code),
	         "import json,sys\n"
	         "t=sys.stdin.read()\n"
	         "d=[json.loads(l) for l in t.splitlines()] if %d else json.loads(t)\n"
	         "print(%s)", lines, expr);
	const char *argv[] = { "/usr/bin/python3", "-c", code, NULL };
	int ofd;
	pid_t pid = sk_test_spawn(argv, fd, &ofd);
	close(fd);
	cr_assert_gt(pid, 0);
	int rc = sk_test_finish(pid, ofd, res, len);
	res[strcspn(res, "\n")] = '\0';
	return rc == 0;
}

static void expect_json(bool lines, const char *expr, const char *want)
{
	char res[4096], copy[sizeof(out)];
	snprintf(copy, sizeof(copy), "%s", out);
	cr_assert(json_check(lines, expr, res, sizeof(res)), "not JSON: %s", copy);
	cr_expect_str_eq(res, want, "%s over %s", expr, copy);
}

/* ---- ls ------------------------------------------------------------------ */

/* A System V segment made by shmkit, closed: ls must neither attach it
 * (shm_atime, shm_lpid, shm_nattch move) nor call it foreign. */
Test(cli_tool, ls_does_not_attach_sysv_segments)
{
	const char *n = sk_test_new_name("sysv");
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *s;
	struct shmkit_seg_info st;
	struct shmid_ds before, after;

	cr_assert_eq(shmkit_seg_create(&s, n, &o), 0);
	cr_assert_eq(shmkit_seg_info(s, &st), 0);
	shmkit_seg_close(s);
	int id = st.shmid;
	cr_assert_eq(shmctl(id, IPC_STAT, &before), 0);
	sleep(1); /* shm_atime counts seconds: an attach now would show */
	const char *argv[] = { "helper_tool", "-", "-", "ls", "--json", NULL };
	int fd;
	pid_t ls = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(ls, 0);
	cr_assert_eq(sk_test_finish(ls, fd, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(shmctl(id, IPC_STAT, &after), 0);
	/* The last pid to attach or detach is never the ls (another program
	 * on the machine may attach meanwhile: then atime moves too). */
	cr_expect_neq(after.shm_lpid, ls, "ls (pid %d) attached the segment", (int)ls);
	if (after.shm_lpid == before.shm_lpid)
		cr_expect_eq(after.shm_atime, before.shm_atime, "ls attached the segment");
	char expr[256];
	snprintf(expr, sizeof(expr), "[(x['kind'], x['attach_count'], x['map_size']) for x in d "
	         "if x['name'] == '%s']", n);
	expect_json(false, expr, "[('shmkit', 0, 8192)]");
	/* --attach reads the header, as info does. */
	cr_assert_eq(RUN(NULL, "ls", "--json", "--attach"), 0, "%s", out);
	snprintf(expr, sizeof(expr), "[(x['kind'], x['size']) for x in d if x['name'] == '%s']", n);
	expect_json(false, expr, "[('bytes', 4096)]");
}

/* ls run by a user who may open neither a POSIX segment nor a System V
 * one (both 0600, root's) lists both, as ipcs does, marked no-access. */
Test(cli_tool, ls_shows_segments_the_user_cannot_open)
{
	char base[64], tool[4200], key[16];
	snprintf(raw_posix, sizeof(raw_posix), "/%s", sk_test_base(base, sizeof(base), "noaccess"));
	int fd = shm_open(raw_posix, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	close(fd);
	unsigned k = sk_test_sysv_key(40);
	sysv_id = shmget((key_t)k, 4096, IPC_CREAT | IPC_EXCL | 0600);
	cr_assert_geq(sysv_id, 0);
	snprintf(key, sizeof(key), "0x%08x", k);
	if (geteuid() != 0)
		cr_skip_test("needs root to make objects another user cannot open");

	snprintf(tool, sizeof(tool), "%s/../shmkit", sk_test_dir());
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (sk_test_drop_root())
			_exit(125);
		execl(tool, "shmkit", "ls", "--json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	int rc = sk_test_finish(pid, p[0], out, sizeof(out));
	cr_assert_eq(rc, 0, "ls as nobody: exit %d", rc);
	char expr[512];
	snprintf(expr, sizeof(expr), "sorted(x['backend'] + ' ' + x['kind'] for x in d if "
	         "x['name'] == 'posix:%s' or x['key'] == '%s')", raw_posix, key);
	expect_json(false, expr, "['posix no-access', 'sysv no-access']");
}

/* ---- an existing name ------------------------------------------------------- */

Test(cli_tool, existing_names_are_opened_checked_or_refused)
{
	const char *c = sk_test_new_name("posix"), *r = sk_test_new_name("posix");
	const char *b = sk_test_new_name("posix"), *s = sk_test_new_name("posix");

	cr_assert_eq(RUN(NULL, "chan", c, "--capacity", "16", "--max-msg", "64"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--capacity", "16"), 0, "%s", out);
	cr_expect(!strncmp(out, "exists ", 7), "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--capacity", "32"), 1, "capacity differs: %s", out);
	cr_expect(strstr(out, "exists with capacity 16, not 32"), "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--max-msg", "128"), 1, "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--spsc"), 1, "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--mode", "0644"), 1, "%s", out);
	cr_expect(strstr(out, "mode 0600, not 0644"), "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c, "--excl"), 1, "%s", out);

	cr_assert_eq(RUN(NULL, "rpc", r, "--max-request", "100"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "rpc", r, "--max-request", "100"), 0, "%s", out);
	cr_expect(!strncmp(out, "exists ", 7), "%s", out);
	cr_assert_eq(RUN(NULL, "rpc", r, "--max-request", "200"), 1, "%s", out);
	cr_assert_eq(RUN(NULL, "rpc", r, "--depth", "2"), 1, "%s", out);
	cr_assert_eq(RUN(NULL, "rpc", r, "--excl"), 1, "%s", out);

	cr_assert_eq(RUN(NULL, "bus", b, "--delivery", "backpressure", "--mode", "0640"), 0, "%s",
	             out);
	cr_assert_eq(RUN(NULL, "bus", b), 0, "%s", out);
	cr_expect(!strncmp(out, "exists ", 7), "%s", out);
	cr_assert_eq(RUN(NULL, "bus", b, "--delivery", "overwrite"), 1, "%s", out);
	cr_assert_eq(RUN(NULL, "bus", b, "--mode", "0600"), 1, "%s", out);

	cr_assert_eq(RUN(NULL, "create", s, "--size", "4K"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "create", s, "--size", "4K"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "create", s, "--size", "8K"), 1, "%s", out);
	cr_expect(strstr(out, "exists with data size 4096, not 8192"), "%s", out);
	/* Nothing changed. */
	struct shmkit_seg_info st;
	cr_assert_eq(shmkit_seg_info_name(s, &st), 0);
	cr_expect_eq(st.data_size, 4096);
}

/* ---- exit 2 for a name the command cannot use ---------------------------- */

Test(cli_tool, names_the_command_cannot_use_exit_2)
{
	cr_expect_eq(RUN(NULL, "send", "anon", "x"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "recv", "memfd:x"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "sub", "anon"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "call", "memfd:x", "m"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "rpc", "anon"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "info", "sysv:0xZZ"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "read", "posix:/a/b"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "rm", "anon"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "journal", "dump", "-n", "3", "/tmp/x"), 2, "%s", out);
	/* top: a NAME the library cannot parse (a PATH that is no journal yet
	 * may become one: it is watched) */
	cr_expect_eq(RUN(NULL, "top", "--once", "--interval", "10", "sysv:0xZZ"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "top", "--json", "--once", "--interval", "10", "posix:/a/b"), 2,
	             "%s", out);
	/* journal: an option the library refuses (a file that cannot hold
	 * the largest record), a PATH too long; nothing is made */
	char base[64], path[400];
	snprintf(jdir, sizeof(jdir), "/tmp/%s", sk_test_base(base, sizeof(base), "jbad"));
	cr_expect_eq(RUN(NULL, "journal", "append", jdir, "--file-size", "1K", "x"), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "journal", "append", jdir, "--max-record", "2G", "x"), 2, "%s", out);
	cr_expect(access(jdir, F_OK) && errno == ENOENT, "%s was made", jdir);
	snprintf(path, sizeof(path), "/tmp/%s-%0300d", base, 0);
	cr_expect_eq(RUN(NULL, "journal", "tail", path), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "journal", "verify", path), 2, "%s", out);
	cr_expect_eq(RUN(NULL, "journal", "rm", path), 2, "%s", out);
}

/* ---- JSON ------------------------------------------------------------------ */

static int subscribed(void *arg)
{
	struct shmkit_bus_stats st;
	return shmkit_bus_stats(arg, &st) == 0 && st.subscribers > 0;
}

/* Keep only the lines of out that are JSON objects (stderr is on stdout:
 * warnings of gc, for one). */
static void json_lines_only(void)
{
	char *w = out;
	for (char *l = out, *nl; (nl = strchr(l, '\n')); l = nl + 1)
		if (*l == '{') {
			memmove(w, l, (size_t)(nl - l + 1));
			w += nl - l + 1;
		}
	*w = '\0';
}

Test(cli_tool, json_objects_and_lines_round_trip_bytes)
{
	const char *c = sk_test_new_name("posix"), *b = sk_test_new_name("posix");

	cr_assert_eq(RUN(NULL, "chan", c, "--json"), 0, "%s", out);
	expect_json(false, "d['created'], d['kind'], d['capacity'], d['mode']",
	            "True chan 64 0600");
	cr_assert_eq(RUN(NULL, "chan", c, "--json"), 0, "%s", out);
	expect_json(false, "d['created']", "False");
	/* "caf\xc3\xa9" is UTF-8, "\xff\xfe" is not, "" is empty. */
	cr_assert_eq(RUN("caf\xc3\xa9\n\xff\xfe\n\n", "send", c), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "recv", c, "--json"), 0, "%s", out);
	expect_json(true, "[x.get('data') or bytes.fromhex(x.get('hex', '')) for x in d]",
	            "['café', b'\\xff\\xfe', b'']");

	cr_assert_eq(RUN(NULL, "bus", b, "--capacity", "2", "--json"), 0, "%s", out);
	expect_json(false, "d['kind'], d['capacity'], d['delivery']", "bus 2 overwrite");
	/* A subscriber stopped while 5 messages pass through 2 slots: it
	 * reads the 4th with "lost":3, then the 5th. */
	const char *argv[] = { "helper_tool", "-", "-", "sub", b, "--json", "-n", "2", NULL };
	int fd;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(pid, 0);
	shmkit_bus *bus;
	cr_assert_eq(shmkit_bus_open(&bus, b, NULL), 0);
	cr_assert(sk_test_eventually(subscribed, bus), "sub did not subscribe");
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	for (int i = 1; i <= 5; i++) {
		char m[4];
		snprintf(m, sizeof(m), "%d", i);
		cr_assert_eq(shmkit_bus_publish(bus, m, strlen(m), 0), 0);
	}
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cr_assert_eq(sk_test_finish(pid, fd, out, sizeof(out)), 0, "%s", out);
	shmkit_bus_close(bus);
	expect_json(true, "[(x['data'], x.get('lost', 0)) for x in d]", "[('4', 3), ('5', 0)]");

	const char *seg = sk_test_new_name("posix");
	cr_assert_eq(RUN(NULL, "create", seg, "--size", "3", "--json"), 0, "%s", out);
	expect_json(false, "d['created'], d['size']", "True 3");
	cr_assert_eq(RUN("ff0061", "write", seg, "--hex"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "read", seg, "--json"), 0, "%s", out);
	expect_json(false, "d['length'], d.get('data'), d['hex']", "3 None ff0061");

	jdir[0] = '\0';
	char base[64];
	snprintf(jdir, sizeof(jdir), "/tmp/%s", sk_test_base(base, sizeof(base), "jcli"));
	cr_assert_eq(RUN("rec\n", "journal", "append", jdir, "--file-size", "64K",
	                 "--max-record", "1K"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "journal", "tail", jdir, "--json"), 0, "%s", out);
	expect_json(true, "[(type(x['time_ns']).__name__, x['time'][-1], x['data']) for x in d]",
	            "[('str', 'Z', 'rec')]");
	cr_assert_eq(RUN(NULL, "journal", "verify", jdir, "--json"), 0, "%s", out);
	expect_json(false, "d['state'], d['valid_records']", "clean 1");
}

Test(cli_tool, gc_json_is_one_object_per_line)
{
	const char *n = sk_test_new_name("posix");
	char pat[128];

	cr_assert_eq(RUN(NULL, "create", n, "--size", "4K", "--temporary"), 0, "%s", out);
	snprintf(pat, sizeof(pat), "%s", n);
	cr_assert_eq(RUN(NULL, "gc", "--dry-run", "--json", pat), 0, "%s", out);
	json_lines_only();
	char want[256];
	snprintf(want, sizeof(want), "[('would remove', '%s')]", n);
	expect_json(true, "[(x['action'], x['name']) for x in d]", want);
}

/* bench --list --json: one array of the references and suites (the rows
 * bench --json prints are tested in test_bench). */
Test(cli_tool, bench_list_json_is_an_array)
{
	cr_assert_eq(RUN(NULL, "bench", "--list", "--json"), 0, "%s", out);
	expect_json(false, "sorted(set(x['kind'] for x in d)), "
	            "'cacheline_rtt' in [x['name'] for x in d if x['kind'] == 'ref']",
	            "['ref', 'suite'] True");
}

/* ---- how far a failure got ------------------------------------------------- */

Test(cli_tool, failures_say_how_far_they_got)
{
	const char *c = sk_test_new_name("posix"), *r = sk_test_new_name("posix");

	cr_assert_eq(RUN(NULL, "chan", c, "--capacity", "2"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "send", c, "--timeout", "0", "a", "b", "c", "d"), 1, "%s", out);
	cr_expect(strstr(out, "sent 2 of 4 messages"), "%s", out);
	cr_assert_eq(RUN("x\ny\n", "send", c, "--timeout", "0"), 1, "%s", out);
	cr_expect(strstr(out, "sent 0 messages before it"), "%s", out);
	cr_assert_eq(RUN(NULL, "recv", c, "-n", "3", "--timeout", "10"), 1, "%s", out);
	cr_expect(strstr(out, "received 2 of 3 messages"), "%s", out);

	cr_assert_eq(RUN(NULL, "rpc", r), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "call", r, "--timeout", "20", "q1", "q2"), 1, "%s", out);
	cr_expect(strstr(out, "answered 0 of 2 messages"), "%s", out);

	/* pub on a back-pressure bus of 2 whose one subscriber (this
	 * process) reads nothing: 2 of 4 go out, the 3rd finds it full. */
	const char *b = sk_test_new_name("posix");
	shmkit_bus *bus;
	shmkit_sub *sub;
	cr_assert_eq(RUN(NULL, "bus", b, "--capacity", "2", "--delivery", "backpressure"), 0, "%s",
	             out);
	cr_assert_eq(shmkit_bus_open(&bus, b, NULL), 0);
	cr_assert_eq(shmkit_bus_subscribe(&sub, bus, NULL), 0);
	cr_assert_eq(RUN(NULL, "pub", b, "--timeout", "0", "a", "b", "c", "d"), 1, "%s", out);
	cr_expect(strstr(out, "published 2 of 4 messages"), "%s", out);
	cr_assert_eq(RUN("x\ny\n", "pub", b, "--timeout", "0"), 1, "%s", out);
	cr_expect(strstr(out, "published 0 messages before it"), "%s", out);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
}

/* demo --json: one JSON object, the three transports with a rate and
 * round-trip times each, nothing else on stdout; its two channels
 * (/dev/shm/shmkit-demo-PID-out, -back: names the tool chooses) are gone
 * after it. */
Test(cli_tool, demo_json_is_one_object)
{
	const char *argv[] = { "helper_tool", "-", "-", "demo", "--count", "2000", "--json", NULL };
	int fd;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(sk_test_finish(pid, fd, out, sizeof(out)), 0, "%s", out);
	expect_json(false, "d['count'], d['msg_bytes'], d['round_trips'], "
	            "[t['transport'] for t in d['transports']], "
	            "all(t['msgs_per_s'] > 0 and 0 < t['rtt_median_ns'] <= t['rtt_p99_ns'] "
	            "for t in d['transports'])",
	            "2000 64 40 ['channel', 'pipe', 'unix_socket'] True");
	char path[128];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/dev/shm/shmkit-demo-%d-%s", (int)pid,
		         i ? "back" : "out");
		cr_expect(access(path, F_OK) && errno == ENOENT, "%s left behind", path);
	}
}

/* info of a channel lists its peers (shmkit_chan_peers): this process's
 * handle, alive, and a forked child's, dead once it exited. */
Test(cli_tool, info_lists_a_channels_handles)
{
	const char *c = sk_test_new_name("posix");
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 16, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	char buf[16];

	cr_assert_eq(shmkit_chan_create(&ch, c, &o), 0);
	cr_assert_eq(shmkit_chan_send(ch, "a", 1, 0), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(shmkit_chan_recv(ch, buf, sizeof(buf), 0) == 1 ? 0 : 1);
	cr_assert_eq(sk_test_reap(pid), 0);
	cr_assert_eq(RUN(NULL, "info", c, "--json"), 0, "%s", out);
	expect_json(false, "sorted((p['role'], p['alive'], p['sent'], p['received']) "
	            "for p in d['chan']['peers'])",
	            "[('handle', False, 0, 1), ('handle', True, 1, 0)]");
	cr_assert_eq(RUN(NULL, "info", c), 0, "%s", out);
	cr_expect(strstr(out, "dead    sent 0          received 1"), "%s", out);
	shmkit_chan_close(ch);
}

/* sub --follow with a timeout ends as recv --follow does: exit 0. */
Test(cli_tool, follow_timeouts_end_quietly)
{
	const char *b = sk_test_new_name("posix"), *c = sk_test_new_name("posix");

	cr_assert_eq(RUN(NULL, "bus", b), 0, "%s", out);
	cr_expect_eq(RUN(NULL, "sub", b, "--follow", "--timeout", "20"), 0, "%s", out);
	cr_assert_eq(RUN(NULL, "chan", c), 0, "%s", out);
	cr_expect_eq(RUN(NULL, "recv", c, "--follow", "--timeout", "20"), 0, "%s", out);
	cr_expect_eq(RUN(NULL, "sub", b, "-n", "1", "--timeout", "20"), 1, "%s", out);
	cr_expect(strstr(out, "received 0 of 1 messages"), "%s", out);
}

/* `shmkit bridge` runs shmkit-bridge from beside the tool (the tool itself
 * does not link ZeroMQ): its --help says so; with the bridge built (make
 * bridge, libzmq installed) an argument reaches it (--keygen prints a
 * CURVE key pair); without it the command says how to get it. */
Test(cli_tool, bridge_runs_shmkit_bridge_beside_the_tool)
{
	char self[PATH_MAX], bridge[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0'; /* BUILD/tests */
	snprintf(bridge, sizeof(bridge), "%s/../shmkit-bridge", self);
	cr_assert_eq(RUN(NULL, "bridge", "--help"), 0, "%s", out);
	cr_expect(strstr(out, "shmkit-bridge"), "%s", out);
	int rc = RUN(NULL, "bridge", "--keygen");
	if (access(bridge, X_OK) == 0) {
		cr_expect_eq(rc, 0, "%s", out);
		cr_expect(strstr(out, "public ") && strstr(out, "secret "), "a key pair: %s", out);
	} else {
		cr_expect_eq(rc, 1, "%s", out);
		cr_expect(strstr(out, "make bridge"), "%s", out);
	}
}

static int seg_exists(void *arg)
{
	struct shmkit_seg_info st;
	return shmkit_seg_info_name(arg, &st) == 0;
}

/* `shmkit info` of a bridge's statistics segment (shmkit-bridge
 * --stats-seg) shows what the bridge exports, its link and its counters,
 * in text and in JSON: issue 14's "info shows what a bridge exports". */
Test(cli_tool, info_shows_a_bridges_exports_and_counters)
{
	char self[PATH_MAX], bridge[PATH_MAX + 32], outbox[128];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	cr_assert_gt(n, 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(bridge, sizeof(bridge), "%s/../shmkit-bridge", self);
	if (access(bridge, X_OK))
		cr_skip_test("no shmkit-bridge (make bridge; needs libzmq)");
	const char *chan = sk_test_new_name("posix"), *stats = sk_test_new_name("posix");
	snprintf(outbox, sizeof(outbox), "%s.skbr-out", chan);
	cr_assert_eq(RUN(NULL, "chan", chan, "--capacity", "16"), 0, "%s", out);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(bridge, "shmkit-bridge", "--id", "7", "--listen", "tcp://127.0.0.1:*",
		      "--export-chan", chan, "--stats-seg", stats, (char *)NULL);
		_exit(127);
	}
	int up = sk_test_eventually(seg_exists, (void *)stats);
	/* The segment is made before the services are set up: the text shows
	 * them from the next refresh (every 500 ms). */
	for (int i = 0; up && i < 200; i++) {
		if (RUN(NULL, "info", stats) == 0 && strstr(out, "export chan"))
			break;
		usleep(50000);
	}
	int rc_text = up ? RUN(NULL, "info", stats) : -1;
	bool text_ok = rc_text == 0 && strstr(out, "bridge statistics") && strstr(out, "export chan") &&
	               strstr(out, "stats id=7");
	bool listed = up && RUN(NULL, "ls") == 0 && strstr(out, stats + 7) &&
	              strstr(strstr(out, stats + 7), "bridge");
	int rc_json = up ? RUN(NULL, "info", stats, "--json") : -1;
	bool json_ok = rc_json == 0 && strstr(out, "\"bridge\":\"shmkit-bridge id=7") &&
	               strstr(out, "export chan");
	kill(pid, SIGTERM); /* a bridge that ends removes its statistics segment */
	waitpid(pid, NULL, 0);
	shmkit_seg_remove(outbox);
	cr_assert(up, "the bridge made no statistics segment");
	cr_expect(text_ok, "info: %s", out);
	cr_expect(json_ok, "info --json");
	cr_expect(listed, "ls marks it kind bridge");
}
