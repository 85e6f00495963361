/*
 * test_doctor.c - `shmkit doctor`, judged on machines made wrong for real:
 * each case runs the tool in a child that entered new IPC and mount
 * namespaces (unshare(2), as `unshare --ipc --mount` does) and mounted a
 * tmpfs of a chosen size on /dev/shm, wrote a small
 * /proc/sys/kernel/shmmni, shmmax or shmall (per IPC namespace), lowered
 * RLIMIT_MEMLOCK (as a regular user, without CAP_IPC_LOCK, and as root
 * with it), filled that namespace
 * with System V segments, left a temporary segment whose creator died,
 * or hid /etc/systemd under a tmpfs holding logind.conf files of its
 * own.  Everything such a child makes dies with its namespaces: nothing is
 * left on the machine.  The peers' namespaces: a bus subscriber in new
 * network and time namespaces, and one in a new PID namespace; an MPMC
 * channel's handle (found by its maps, not by a name that starts with the
 * channel's) in a new network namespace.  Huge
 * pages (one count for the machine) are checked against /proc/meminfo.
 *
 * Needs root (unshare, mount); skipped, and counted so, without.  Exit
 * status and --json are checked together: 1 exactly when a check says
 * "problem".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(doctor, .timeout = 60, .fini = sk_test_cleanup);

#define NO_NS 77 /* the child could not make its namespaces */

static const char *tool(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/../shmkit", sk_test_dir());
	return path;
}

/* ---- the machine a child makes --------------------------------------- */

struct machine {
	bool ns;                 /* new IPC and mount namespaces */
	const char *shm_size;    /* tmpfs size= on /dev/shm (ns only) */
	const char *shmmni;      /* written to /proc/sys/kernel/shmmni */
	const char *shmmax;      /* ... shmmax (bytes; per IPC namespace too) */
	const char *shmall;      /* ... shmall (pages) */
	long long memlock;       /* RLIMIT_MEMLOCK soft and hard, lowered to
	                            this (0: as it is) */
	int sysv_segments;       /* IPC_PRIVATE segments made in the namespace */
	int fill_mib;            /* a file of that many MiB in /dev/shm */
	const char *leftover;    /* a temporary segment whose creator died */
	const char *leftover2;   /* another one */
	const char *persistent;  /* a persistent one whose creator died */
	const char *logind[3][2]; /* files under a tmpfs on /etc/systemd:
	                             {relative path, contents} */
	uid_t uid;               /* run the tool as this uid (0: stay) */
};

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A child making a segment and dying with it open: its creator is dead. */
static void orphan_segment(const char *name, unsigned flags)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL | flags };
		shmkit_seg *seg;
		_exit(shmkit_seg_create(&seg, name, &o) ? 1 : 0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		_exit(120);
}

/* In the child: make the machine m describes (exits NO_NS if it cannot). */
static void make_machine(const struct machine *m)
{
	if (!m->ns)
		return;
	if (unshare(CLONE_NEWIPC | CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		_exit(NO_NS);
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%s,mode=1777", m->shm_size ? m->shm_size : "256M");
	if (mount("tmpfs", "/dev/shm", "tmpfs", 0, opts))
		_exit(NO_NS);
	if (m->fill_mib) {
		int fd = open("/dev/shm/fill", O_WRONLY | O_CREAT, 0600);
		if (fd < 0 || posix_fallocate(fd, 0, (off_t)m->fill_mib << 20))
			_exit(125);
		close(fd);
	}
	if (m->shmmni && write_file("/proc/sys/kernel/shmmni", m->shmmni))
		_exit(121);
	if (m->shmmax && write_file("/proc/sys/kernel/shmmax", m->shmmax))
		_exit(121);
	if (m->shmall && write_file("/proc/sys/kernel/shmall", m->shmall))
		_exit(121);
	for (int i = 0; i < m->sysv_segments; i++)
		if (shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) < 0)
			_exit(122);
	if (m->leftover)
		orphan_segment(m->leftover, 0);
	if (m->leftover2)
		orphan_segment(m->leftover2, 0);
	if (m->persistent)
		orphan_segment(m->persistent, SHMKIT_PERSIST);
	if (m->logind[0][0]) {
		if (mount("tmpfs", "/etc/systemd", "tmpfs", 0, "size=1M") ||
		    mkdir("/etc/systemd/logind.conf.d", 0755))
			_exit(NO_NS);
		/* drop-ins elsewhere would join in: hide them too */
		static const char *const others[] = { "/run/systemd/logind.conf.d",
		                                      "/usr/local/lib/systemd/logind.conf.d",
		                                      "/usr/lib/systemd/logind.conf.d",
		                                      "/run/systemd/logind.conf",
		                                      "/usr/local/lib/systemd/logind.conf",
		                                      "/usr/lib/systemd/logind.conf" };
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
			struct stat sb;
			if (!stat(others[i], &sb) && S_ISDIR(sb.st_mode) &&
			    mount("tmpfs", others[i], "tmpfs", 0, "size=64k"))
				_exit(NO_NS);
			if (!stat(others[i], &sb) && S_ISREG(sb.st_mode) &&
			    mount("/dev/null", others[i], NULL, MS_BIND, NULL))
				_exit(NO_NS);
		}
		char path[PATH_MAX];
		for (int i = 0; i < 3 && m->logind[i][0]; i++) {
			snprintf(path, sizeof(path), "/etc/systemd/%s", m->logind[i][0]);
			if (write_file(path, m->logind[i][1]))
				_exit(123);
		}
	}
	struct rlimit rl = { (rlim_t)m->memlock, (rlim_t)m->memlock };
	if (m->memlock && setrlimit(RLIMIT_MEMLOCK, &rl))
		_exit(124);
	/* a uid other than 0 also leaves every capability (CAP_IPC_LOCK) */
	if (m->uid && (setgid(m->uid) || setuid(m->uid)))
		_exit(124);
}

#define OUT_LEN 65536
static char out[OUT_LEN];

/* Run `shmkit doctor --json [name]` on machine m; its stdout in out,
 * its exit status returned.  Skips the test where namespaces cannot be
 * made. */
static int doctor(const struct machine *m, const char *name)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	pid_t parent = getpid(), pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		close(p[0]);
		make_machine(m);
		dup2(p[1], STDOUT_FILENO);
		execl(tool(), "shmkit", "doctor", "--json", name, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	for (ssize_t n; (n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0 || (n < 0 && errno == EINTR);)
		len += n > 0 ? (size_t)n : 0;
	out[len] = '\0';
	close(p[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	if (WEXITSTATUS(st) == NO_NS)
		cr_skip_test("cannot make IPC and mount namespaces here (needs root)");
	cr_assert(WEXITSTATUS(st) < 120 || WEXITSTATUS(st) > 125,
	          "the child failed making the machine (%d)", WEXITSTATUS(st));
	cr_assert_neq(WEXITSTATUS(st), 127, "could not run %s", tool());
	/* the exit status says what the JSON says */
	bool ok = strstr(out, "{\"ok\":true,") == out;
	cr_assert(ok || strstr(out, "{\"ok\":false,") == out, "not a report: %.300s", out);
	cr_assert_eq(WEXITSTATUS(st), ok ? 0 : 1, "exit %d but ok is %d: %s", WEXITSTATUS(st), ok,
	             out);
	cr_assert_eq(!ok, strstr(out, "\"status\":\"problem\"") != NULL, "%s", out);
	return WEXITSTATUS(st);
}

/* The JSON object of check id (the n-th of that id), into buf. */
static void check_of(const char *id, int n, char *buf, size_t len)
{
	char key[64];
	const char *p = out;

	snprintf(key, sizeof(key), "{\"check\":\"%s\"", id);
	for (int i = 0; i <= n; i++) {
		p = strstr(p, key);
		cr_assert(p, "no check %s (#%d) in %s", id, n, out);
		if (i < n)
			p++;
	}
	/* to the end of its data object: "}}" */
	const char *end = strstr(p, "}}");
	cr_assert(end);
	snprintf(buf, len, "%.*s", (int)(end - p + 2), p);
}

/* The first check id whose object holds needle, into buf. */
static void check_with(const char *id, const char *needle, char *buf, size_t len)
{
	for (int n = 0;; n++) {
		check_of(id, n, buf, len);
		if (strstr(buf, needle))
			return;
	}
}

static void has(const char *obj, const char *what)
{
	cr_assert(strstr(obj, what), "'%s' not in %s", what, obj);
}

/* Doctor on m exits 1, and check id says "problem" (its object in c). */
static void problem_in(const struct machine *m, const char *id, char *c, size_t len)
{
	cr_assert_eq(doctor(m, NULL), 1);
	check_of(id, 0, c, len);
	has(c, "\"status\":\"problem\"");
}

/* ---- /dev/shm ---------------------------------------------------------- */

Test(doctor, small_dev_shm_is_a_problem)
{
	struct machine m = { .ns = true, .shm_size = "1M" };
	char c[4096];

	problem_in(&m, "dev_shm", c, sizeof(c));
	has(c, "\"size\":1048576");
	has(c, "1.0 MiB");
	has(c, "--shm-size");
}

Test(doctor, dockers_64m_default_is_named)
{
	struct machine m = { .ns = true, .shm_size = "64M" };
	char c[4096];

	problem_in(&m, "dev_shm", c, sizeof(c));
	has(c, "Docker's default");
}

Test(doctor, nearly_full_dev_shm_is_a_problem)
{
	struct machine m = { .ns = true, .shm_size = "128M", .fill_mib = 120 };
	char c[4096];

	problem_in(&m, "dev_shm", c, sizeof(c));
	has(c, "nearly full");
	has(c, "\"size\":134217728");
}

Test(doctor, a_fine_dev_shm_is_ok)
{
	struct machine m = { .ns = true, .shm_size = "256M" };
	char c[4096];

	doctor(&m, NULL); /* other checks may find this machine wrong */
	check_of("dev_shm", 0, c, sizeof(c));
	has(c, "\"status\":\"ok\"");
	has(c, "\"size\":268435456");
	/* a fresh IPC namespace and tmpfs hold nothing: no leftovers, no
	 * System V segment */
	check_of("leftovers", 0, c, sizeof(c));
	has(c, "\"status\":\"ok\"");
	has(c, "\"count\":0");
	check_of("sysv", 0, c, sizeof(c));
	has(c, "\"segments\":0");
}

/* ---- System V ------------------------------------------------------------ */

/* Each System V limit set low in turn: the check names it, its value and
 * the sysctl to raise it. */
Test(doctor, small_sysv_limits_are_reported)
{
	static const struct {
		const char *shmmni, *shmmax, *shmall, *json, *text, *advice;
	} cases[] = {
		{ "32", NULL, NULL, "\"shmmni\":32", "shmmni is 32", "kernel.shmmni" },
		{ NULL, "1048576", NULL, "\"shmmax\":1048576", "shmmax is 1.0 MiB", "kernel.shmmax" },
		{ NULL, NULL, "1000", "\"shmall\":1000", "shmall is 1000 pages", "kernel.shmall" },
	};
	char c[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct machine m = { .ns = true, .shmmni = cases[i].shmmni,
		                     .shmmax = cases[i].shmmax, .shmall = cases[i].shmall };
		problem_in(&m, "sysv", c, sizeof(c));
		has(c, cases[i].json);
		has(c, cases[i].text);
		has(c, cases[i].advice);
	}
}

Test(doctor, sysv_segments_near_shmmni_are_reported)
{
	struct machine m = { .ns = true, .shmmni = "8", .sysv_segments = 8 };
	char c[4096];

	problem_in(&m, "sysv", c, sizeof(c));
	has(c, "\"segments\":8");
	has(c, "8 of shmmni 8");
}

/* ---- huge pages and RLIMIT_MEMLOCK (notes: only --huge, --mlock need
 * them) ------------------------------------------------------------------- */

Test(doctor, huge_pages_are_the_kernels_count)
{
	struct machine m = { .ns = false };
	char c[4096], line[256], want[64];
	long long total = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	cr_assert(f);
	while (fgets(line, sizeof(line), f))
		sscanf(line, "HugePages_Total: %lld", &total);
	fclose(f);
	cr_assert_geq(total, 0, "no HugePages_Total in /proc/meminfo");
	doctor(&m, NULL);
	check_of("huge_pages", 0, c, sizeof(c));
	snprintf(want, sizeof(want), "\"total\":%lld", total);
	has(c, want);
	has(c, total ? "\"status\":\"ok\"" : "\"status\":\"note\"");
	if (!total)
		has(c, "vm.nr_hugepages");
}

/* CAP_IPC_LOCK in this process's effective set (capget(2)'s word, read
 * from /proc/self/status as ps does). */
static bool cap_ipc_lock(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long caps = 0;

	cr_assert(f);
	while (fgets(line, sizeof(line), f) && sscanf(line, "CapEff: %llx", &caps) != 1)
		;
	fclose(f);
	return caps >> 14 & 1; /* CAP_IPC_LOCK */
}

/* Doctor on m: its memlock check has status, the soft limit 64 KiB, cap
 * (0 or 1) and says text. */
static void memlock_says(const struct machine *m, const char *status, int cap, const char *text)
{
	char c[4096], want[64];

	doctor(m, NULL);
	check_of("memlock", 0, c, sizeof(c));
	snprintf(want, sizeof(want), "\"status\":\"%s\"", status);
	has(c, want);
	has(c, "\"soft\":65536");
	snprintf(want, sizeof(want), "\"cap_ipc_lock\":%d", cap);
	has(c, want);
	has(c, text);
}

Test(doctor, memlock_limit_of_a_regular_user_is_a_note)
{
	struct machine m = { .ns = true, .uid = 1000, .memlock = 65536 };

	memlock_says(&m, "note", 0, "RLIMIT_MEMLOCK is 64.0 KiB");
	/* the same limit for a process with CAP_IPC_LOCK (root here, unless
	 * the container took it away): no limit applies */
	if (!cap_ipc_lock())
		cr_skip_test("this process has no CAP_IPC_LOCK");
	m.uid = 0;
	memlock_says(&m, "ok", 1, "CAP_IPC_LOCK (no limit)");
}

/* ---- leftovers: gc's dry run -------------------------------------------- */

Test(doctor, leftovers_gc_would_remove_are_a_problem)
{
	char left[128], kept[128], c[8192];
	struct machine m = { .ns = true };

	m.leftover = sk_test_name(left, sizeof(left), "posix");
	m.persistent = sk_test_name(kept, sizeof(kept), "posix");
	problem_in(&m, "leftovers", c, sizeof(c));
	has(c, "\"count\":1");
	has(c, left);
	cr_assert(!strstr(c, kept), "a persistent segment is no leftover: %s", c);
	has(c, "shmkit gc");
}

/* "RAWHEX KIND NAME_HEX? REASON? MEMBERS" of a leftover named raw, as
 * the python below prints it. */
static void leftover_line(char *buf, size_t len, const char *raw, bool hex_too)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)raw; *p && o + 3 < len; p++)
		o += (size_t)snprintf(buf + o, len - o, "%02x", *p);
	snprintf(buf + o, len - o, " bytes %s True %s", hex_too ? "True" : "False",
	         hex_too ? "kind,name,name_hex,reason" : "kind,name,reason");
}

/* Leftovers in --json are objects, not gc's text lines: two segments
 * whose creators died, one named with a byte that is not UTF-8 (0xff).
 * Each item has its name exactly - the other in "name", that one also in
 * "name_hex" (the bytes, so it round-trips) - its kind from the header
 * ("bytes") and gc's reason; nothing else.  python3 reads the JSON
 * (fails on the old doctor, whose items were gc's escaped text lines). */
Test(doctor, leftovers_in_json_are_names_with_kind_and_reason)
{
	char plain[128], odd[136], want[2][700], res[4096], code[1024];
	struct machine m = { .ns = true };

	m.leftover = sk_test_name(plain, sizeof(plain), "posix");
	sk_test_name(odd, sizeof(odd) - 2, "posix");
	strcat(odd, "\xff");
	m.leftover2 = odd;
	cr_assert_eq(doctor(&m, NULL), 1);
	leftover_line(want[0], sizeof(want[0]), plain, false);
	leftover_line(want[1], sizeof(want[1]), odd, true);
	if (strcmp(want[0], want[1]) > 0) {
		char t[700];
		memcpy(t, want[0], sizeof(t));
		memcpy(want[0], want[1], sizeof(t));
		memcpy(want[1], t, sizeof(t));
	}

	snprintf(code, sizeof(code),
	         "import json,sys\n"
	         "d=json.loads(sys.argv[1])\n"
	         "w=[c for c in d['checks'] if c['check']=='leftovers'][0]['data']['would_remove']\n"
	         "def raw(x): return bytes.fromhex(x['name_hex']) if 'name_hex' in x else x['name'].encode()\n"
	         "for x in sorted(w,key=lambda x:raw(x).hex()):\n"
	         "  print(raw(x).hex(),x.get('kind'),'name_hex' in x,x['reason'].startswith('creator pid'),\n"
	         "        ','.join(sorted(x)),\n"
	         "        'name_hex' not in x or x['name']==raw(x).decode('latin-1'))\n");
	const char *argv[] = { "/usr/bin/python3", "-c", code, out, NULL };
	int ofd;
	pid_t pid = sk_test_spawn(argv, -1, &ofd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(sk_test_finish(pid, ofd, res, sizeof(res)), 0, "not JSON: %s", out);
	char expect[1500];
	snprintf(expect, sizeof(expect), "%s True\n%s True\n", want[0], want[1]);
	cr_assert_str_eq(res, expect, "in %s", out);
}

/* ---- RemoveIPC ----------------------------------------------------------- */

Test(doctor, remove_ipc_follows_logind_conf_and_drop_ins)
{
	char c[4096];
	struct machine m = {
		.ns = true,
		.logind = {
			{ "logind.conf", "[Login]\nRemoveIPC=yes\n" },
			{ "logind.conf.d/10-a.conf", "[Login]\nRemoveIPC=no\n[Other]\nRemoveIPC=yes\n" },
			{ "logind.conf.d/20-b.conf", "# nothing\n[Login]\nKillUserProcesses=no\n" },
		},
	};

	doctor(&m, NULL);
	check_of("remove_ipc", 0, c, sizeof(c));
	has(c, "\"value\":\"no\"");
	has(c, "\"source\":\"/etc/systemd/logind.conf.d/10-a.conf\"");
	has(c, "\"status\":\"ok\"");

	/* a later drop-in turns it back on */
	m.logind[2][1] = "[Login]\n  RemoveIPC = yes\n";
	doctor(&m, NULL);
	check_of("remove_ipc", 0, c, sizeof(c));
	has(c, "\"value\":\"yes\"");
	has(c, "\"source\":\"/etc/systemd/logind.conf.d/20-b.conf\"");
	bool logind = !access("/usr/lib/systemd/systemd-logind", X_OK) ||
	              !access("/lib/systemd/systemd-logind", X_OK);
	has(c, logind ? "\"status\":\"note\"" : "\"status\":\"ok\""); /* root is exempt */

	/* a regular user's segments are what logind removes */
	m.uid = 1000;
	doctor(&m, NULL);
	check_of("remove_ipc", 0, c, sizeof(c));
	has(c, logind ? "\"status\":\"problem\"" : "\"status\":\"ok\"");
}

Test(doctor, remove_ipc_defaults_to_yes)
{
	char c[4096];
	struct machine m = { .ns = true, .logind = { { "logind.conf", "[Login]\n#RemoveIPC=no\n" } } };

	doctor(&m, NULL);
	check_of("remove_ipc", 0, c, sizeof(c));
	has(c, "\"value\":\"yes\"");
	has(c, "\"source\":\"default\"");
}

/* ---- namespaces of a segment's peers -------------------------------------- */

static const char *bus_name;
static int ready_fd;

/* Subscribe to bus_name, say so on ready_fd, wait to be killed. */
static int subscriber(void)
{
	shmkit_bus *bus;
	shmkit_sub *sub;

	if (shmkit_bus_open(&bus, bus_name, NULL) || shmkit_bus_subscribe(&sub, bus, NULL))
		return 1;
	if (write(ready_fd, "r", 1) != 1)
		return 1;
	for (;;)
		pause();
}

/* Open the channel bus_name (an MPMC handle: no table keeps its pid),
 * say so on ready_fd, wait to be killed. */
static int chan_holder(void)
{
	shmkit_chan *ch;

	if (shmkit_chan_open(&ch, bus_name, NULL))
		return 1;
	if (write(ready_fd, "r", 1) != 1)
		return 1;
	for (;;)
		pause();
}

/* What a peer does once in its namespaces: subscriber() or chan_holder(). */
static int (*peer_role)(void) = subscriber;

/* A child entering namespaces flags (and, for PID and time namespaces,
 * which take effect for children, forking once more) then subscribing
 * (peer_role).
 * Returns the pid of the process that is subscribed, as seen here. */
static pid_t peer_in(int flags, pid_t *top)
{
	int p[2], q[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(q), 0);
	pid_t parent = getpid(), pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		ready_fd = p[1];
		if (unshare(flags))
			_exit(NO_NS);
		if (!(flags & (CLONE_NEWPID | CLONE_NEWTIME)))
			_exit(peer_role());
		pid_t g = fork();
		if (g == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(peer_role());
		}
		/* the grandchild's pid as this namespace (the test's) sees it */
		if (g < 0 || write(q[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		int st;
		waitpid(g, &st, 0);
		_exit(0);
	}
	close(p[1]);
	close(q[1]);
	*top = pid;
	char r;
	pid_t g = pid;
	if (flags & (CLONE_NEWPID | CLONE_NEWTIME))
		cr_assert_eq(read(q[0], &g, sizeof(g)), (ssize_t)sizeof(g));
	ssize_t n = read(p[0], &r, 1);
	close(p[0]);
	close(q[0]);
	if (n != 1) {
		int st;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == NO_NS)
			cr_skip_test("cannot make namespaces here (needs root)");
		cr_assert_fail("the peer did not subscribe");
	}
	return g;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	sk_test_reap(pid);
}

/* A bus, a subscriber of it in namespaces flags, `shmkit doctor BUS`: the
 * namespaces check of the process whose pid the subscriber reports
 * (as_pid, or the subscriber's pid here when 0) into c. */
static void peer_report(int flags, pid_t as_pid, char *c, size_t len)
{
	struct shmkit_bus_opts o = { .capacity = 8, .max_msg = 16, .flags = SHMKIT_EXCL };
	struct machine m = { .ns = false };
	shmkit_bus *bus;
	pid_t top;
	char want[64];

	bus_name = sk_test_new_name("posix");
	cr_assert_eq(shmkit_bus_create(&bus, bus_name, &o), 0);
	pid_t peer = peer_in(flags, &top);
	doctor(&m, bus_name);
	stop(top);
	shmkit_bus_close(bus);
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)(as_pid ? as_pid : peer));
	check_with("namespaces", want, c, len);
	has(c, "\"role\":\"subscriber\"");
}

Test(doctor, peer_in_other_network_and_time_namespaces)
{
	bool time_ns = !access("/proc/self/ns/time", F_OK);
	char c[4096];

	peer_report(CLONE_NEWNET | (time_ns ? CLONE_NEWTIME : 0), 0, c, sizeof(c));
	has(c, "\"peer\":\"confirmed\"");
	has(c, "\"ns_net\":\"differs\"");
	has(c, "\"ns_ipc\":\"same\"");
	has(c, "\"ns_pid\":\"same\"");
	has(c, "\"ns_mnt\":\"same\"");
	if (time_ns)
		has(c, "\"ns_time\":\"differs\"");
	has(c, "abstract UNIX socket");
}

Test(doctor, peer_in_another_pid_namespace_is_not_taken_for_its_pid)
{
	char c[4096];

	/* the subscriber is pid 1 of its namespace, and says so; pid 1 here
	 * is this machine's init: not the peer (or, where its maps are closed
	 * to us, not known to be) */
	peer_report(CLONE_NEWPID, 1, c, sizeof(c));
	cr_assert(strstr(c, "\"peer\":\"other process\"") || strstr(c, "\"peer\":\"unreadable\""),
	          "%s", c);
	cr_assert(!strstr(c, "confirmed") && !strstr(c, "ns_net"), "%s", c);
}

Test(doctor, same_namespaces_are_ok)
{
	char c[4096];

	peer_report(0, 0, c, sizeof(c));
	has(c, "\"status\":\"ok\"");
	has(c, "\"ns_net\":\"same\"");
}

static char other_chan[160];

static void remove_other(void)
{
	if (other_chan[0])
		shmkit_seg_remove(other_chan);
	sk_test_cleanup();
}

/* An MPMC channel's handles are in no table with a pid: doctor finds the
 * processes that map it (here one in another network namespace), and not
 * those mapping a channel whose name only starts with its name. */
Test(doctor, channel_peers_are_found_by_their_maps, .fini = remove_other)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 16, .flags = SHMKIT_EXCL };
	struct machine m = { .ns = false };
	shmkit_chan *ch, *other;
	pid_t top, top2;
	char c[4096], want[64];

	const char *name = sk_test_new_name("posix");
	snprintf(other_chan, sizeof(other_chan), "%s0", name);
	cr_assert_eq(shmkit_chan_create(&ch, name, &o), 0);
	cr_assert_eq(shmkit_chan_create(&other, other_chan, &o), 0);
	peer_role = chan_holder;
	bus_name = name;
	pid_t peer = peer_in(CLONE_NEWNET, &top);
	bus_name = other_chan;
	pid_t bystander = peer_in(0, &top2);
	doctor(&m, name);
	stop(top);
	stop(top2);
	shmkit_chan_close(other);
	shmkit_chan_close(ch);
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)peer);
	check_with("namespaces", want, c, sizeof(c));
	has(c, "\"role\":\"maps it\"");
	has(c, "\"ns_net\":\"differs\"");
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)bystander);
	cr_assert(!strstr(out, want), "pid %d maps %s, not %s: %s", (int)bystander, other_chan, name,
	          out);
}

/* ---- usage ------------------------------------------------------------------ */

Test(doctor, usage_and_missing_names)
{
	char buf[4096], name[128];

	cr_assert_eq(sk_test_run(buf, sizeof(buf), tool(), "doctor", "a", "b", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(buf, sizeof(buf), tool(), "doctor", "--bogus", (char *)NULL), 2);
	cr_assert_eq(sk_test_run(buf, sizeof(buf), tool(), "doctor", "memfd:x", (char *)NULL), 2);
	sk_test_name(name, sizeof(name), "posix");
	cr_assert_eq(sk_test_run(buf, sizeof(buf), tool(), "doctor", name, (char *)NULL), 1);
	cr_assert_eq(sk_test_run(buf, sizeof(buf), tool(), "doctor", "--help", (char *)NULL), 0);
	has(buf, "--json");
}
