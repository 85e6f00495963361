/*
 * test_bad_inputs.c - the counted proof behind the README's reliability
 * table: at least 100 bad inputs through the API and at least 100
 * through the tool, each refused with its specific error (the API: the
 * errno named beside it, with a detail; the tool: exit status 1 or 2 and
 * a "shmkit: " message), and none leaves anything behind: no fd, no
 * mapping, no name in /dev/shm, /tmp or System V.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bad_names.h"
#include "lib_test.h"
#include "internal.h"
#include "shmkit.h"

TestSuite(bad_inputs, .timeout = 120, .fini = sk_test_cleanup);

/* ---- what exists, before and after ------------------------------------------ */

/* Each test runs in mount and IPC namespaces of its own, with a private
 * tmpfs on /dev/shm (root; the suite runs as root in CI): then whatever
 * another program on the machine makes in /dev/shm or System V meanwhile
 * is not seen, and the listings below compare only what this test's calls
 * could have made - under any name, expected or not.  Without the rights
 * (not root) the test runs on the machine's own, as it did before. */
static void isolate(void)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
	    mount("sktest-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") == 0)
		return;
	cr_log_warn("not isolated (%s): foreign names made meanwhile would count",
	            strerror(errno));
}

/* What a bad input could have made, one line each: every /dev/shm entry
 * but other runs' test names and lock files, this run's names in /tmp and
 * /var/tmp, and System V keys outside other runs' ranges (lib_test.h: the
 * naming rule), so that concurrent runs on the machine do not count. */
static void listing(char *buf, size_t len)
{
	char cmd[1024];
	unsigned hi = sk_test_sysv_key(0) >> 18;
	const char *run = sk_test_run_id();

	snprintf(cmd, sizeof(cmd),
	         "{ ls -A /dev/shm | grep -v -e '^sktest-' -e '^\\.shmkit-sysv-';"
	         "  ls -A /dev/shm /tmp /var/tmp | grep -e 'sktest-%s-';"
	         "  awk 'NR > 1 && (int($1 / 1073741824) != 1 || int($1 / 262144) == %u) "
	         "{ print \"sysv\", $1 }' /proc/sysvipc/shm; } 2>/dev/null",
	         run, hi);
	FILE *p = popen(cmd, "r");
	size_t n = 0;

	cr_assert(p);
	buf[0] = '\0';
	while (n + 1 < len && fgets(buf + n, (int)(len - n), p))
		n += strlen(buf + n);
	pclose(p);
}

/* Shared mappings of this process: files in /dev/shm, memfds, System V
 * segments, deleted files (what a leaked segment mapping looks like;
 * allocators, sanitizers included, add private mappings of their own). */
static int maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4400];
	int n = 0;

	cr_assert(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, " /dev/shm/") || strstr(line, "/memfd:") ||
		     strstr(line, "SYSV") || strstr(line, "(deleted)");
	fclose(f);
	return n;
}

static char before[1 << 16], after[1 << 16];

/* ---- the API ---------------------------------------------------------------- */

enum op { SEG_CREATE, SEG_OPEN, CHAN_CREATE, CHAN_OPEN, BUS_CREATE, BUS_OPEN, N_OPS };
static const char *const op_names[] = { "seg_create", "seg_open", "chan_create",
	                                "chan_open", "bus_create", "bus_open" };

static int run_op(enum op op, const char *name)
{
	struct shmkit_seg_opts so = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *s = NULL;
	shmkit_chan *c = NULL;
	shmkit_bus *b = NULL;
	int r = -1;

	switch (op) {
	case SEG_CREATE: r = shmkit_seg_create(&s, name, &so); break;
	case SEG_OPEN: r = shmkit_seg_open(&s, name, NULL); break;
	case CHAN_CREATE: r = shmkit_chan_create(&c, name, NULL); break;
	case CHAN_OPEN: r = shmkit_chan_open(&c, name, NULL); break;
	case BUS_CREATE: r = shmkit_bus_create(&b, name, NULL); break;
	case BUS_OPEN: r = shmkit_bus_open(&b, name, NULL); break;
	case N_OPS: break;
	}
	cr_assert(r != 0, "%s('%s') succeeded", op_names[op], name);
	return r;
}

/* Options each service must refuse, -EINVAL with a detail naming them. */
static const struct shmkit_chan_opts bad_chan[] = {
	{ .capacity = UINT32_MAX }, { .capacity = 1u << 31 }, { .capacity = (1u << 24) + 1 },
	{ .max_msg = UINT32_MAX }, { .max_msg = (1u << 30) + 1 }, { .wait = 99 }, { .wait = -1 },
	{ .flags = 0x80000000u }, { .mode = 010000 },
};
static const struct shmkit_bus_opts bad_bus[] = {
	{ .capacity = UINT32_MAX }, { .capacity = (1u << 24) + 1 }, { .max_msg = UINT32_MAX },
	{ .delivery = 7 }, { .delivery = -1 }, { .wait = 99 }, { .flags = 0x80000000u },
	{ .max_subscribers = 100000 }, { .max_publishers = 100000 }, { .mode = 010000 },
};
static const struct shmkit_journal_opts bad_journal[] = {
	{ .flags = SHMKIT_JOURNAL_CREATE },
	{ .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE, .max_record = (1u << 30) + 1 },
	{ .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE, .file_size = SIZE_MAX },
	{ .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE, .durability = 9 },
	{ .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE, .durability = -1 },
	{ .flags = 0x80000000u },
};

#define CHECK_API(call, want)                                                                    \
	do {                                                                                     \
		int r_ = (call);                                                                 \
		cr_expect_eq(r_, (want), "%s: %d, want %d (%s)", #call, r_, (want),              \
		             shmkit_errdetail());                                                \
		if ((want) == -EINVAL)                                                           \
			cr_expect_neq(shmkit_errdetail()[0], '\0', "%s: no detail", #call);      \
		n++;                                                                             \
	} while (0)

Test(bad_inputs, api_at_least_100_each_refused_and_nothing_left)
{
	const char *name = sk_test_new_name("posix");
	char jpath[96], base[64], longpath[5000];
	shmkit_seg *s;
	shmkit_chan *c;
	shmkit_bus *b;
	shmkit_journal *j;
	int n = 0;

	snprintf(jpath, sizeof(jpath), "/tmp/%s", sk_test_base(base, sizeof(base), "bad-journal"));
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	isolate();
	listing(before, sizeof(before));
	int fds = sk_test_fd_count(), maps = maps_count();

	for (size_t i = 0; i < SK_ARRAY_LEN(bad_names); i++)
		for (int op = 0; op < N_OPS; op++)
			CHECK_API(run_op((enum op)op, bad_names[i].name), bad_names[i].err);
	for (size_t i = 0; i < SK_ARRAY_LEN(bad_chan); i++)
		CHECK_API(shmkit_chan_create(&c, name, &bad_chan[i]), -EINVAL);
	for (size_t i = 0; i < SK_ARRAY_LEN(bad_bus); i++)
		CHECK_API(shmkit_bus_create(&b, name, &bad_bus[i]), -EINVAL);
	for (size_t i = 0; i < SK_ARRAY_LEN(bad_journal); i++)
		CHECK_API(shmkit_journal_open(&j, jpath, &bad_journal[i]), -EINVAL);
	/* Missing arguments and paths that cannot be journals. */
	CHECK_API(shmkit_seg_create(NULL, name, NULL), -EINVAL);
	CHECK_API(shmkit_seg_create(&s, NULL, NULL), -EINVAL);
	CHECK_API(shmkit_seg_open(NULL, name, NULL), -EINVAL);
	CHECK_API(shmkit_chan_create(NULL, name, NULL), -EINVAL);
	CHECK_API(shmkit_chan_create(&c, NULL, NULL), -EINVAL);
	CHECK_API(shmkit_bus_create(NULL, name, NULL), -EINVAL);
	CHECK_API(shmkit_bus_create(&b, NULL, NULL), -EINVAL);
	CHECK_API(shmkit_journal_open(NULL, jpath, NULL), -EINVAL);
	CHECK_API(shmkit_journal_open(&j, NULL, NULL), -EINVAL);
	CHECK_API(shmkit_journal_open(&j, "", NULL), -EINVAL);
	CHECK_API(shmkit_journal_open(&j, longpath, NULL), -ENAMETOOLONG);
	CHECK_API(shmkit_journal_open(&j, "/dev/null", NULL), -ENOTDIR);
	CHECK_API(shmkit_journal_open(&j, jpath, NULL), -ENOENT);
	CHECK_API(shmkit_journal_open(&j, "/tmp", NULL), -ENOENT);
	CHECK_API(shmkit_journal_remove(NULL), -EINVAL);
	CHECK_API(shmkit_journal_remove(jpath), -ENOENT);
	CHECK_API(shmkit_journal_verify(jpath, NULL), -EINVAL);
	CHECK_API(shmkit_seg_remove(name), -ENOENT);
	CHECK_API(shmkit_chan_open(&c, name, NULL), -ENOENT);
	CHECK_API(shmkit_bus_open(&b, name, NULL), -ENOENT);
	CHECK_API(shmkit_parse_size("", &(size_t){ 0 }), -EINVAL);
	CHECK_API(shmkit_parse_size("+5", &(size_t){ 0 }), -EINVAL);
	CHECK_API(shmkit_parse_size("-1", &(size_t){ 0 }), -EINVAL);
	CHECK_API(shmkit_parse_size("1Q", &(size_t){ 0 }), -EINVAL);
	CHECK_API(shmkit_parse_size("1.5M", &(size_t){ 0 }), -EINVAL);
	CHECK_API(shmkit_parse_size("99999999999999999999", &(size_t){ 0 }), -ERANGE);
	CHECK_API(shmkit_parse_size("17179869184G", &(size_t){ 0 }), -ERANGE);

	cr_expect_eq(sk_test_fd_count(), fds, "a refused call leaked a descriptor");
	cr_expect_eq(maps_count(), maps, "a refused call leaked a mapping");
	listing(after, sizeof(after));
	cr_expect_str_eq(after, before, "a refused call left a name behind");
	cr_log_info("API: %d bad inputs refused", n);
	cr_expect_geq(n, 100);
}

/* ---- the tool ------------------------------------------------------------- */

static char out[8192];

/* Run BUILD/shmkit argv[...] with stdin from /dev/null, stdout and stderr
 * both into out; its exit status, or -1 if it died of a signal. */
static int tool(const char *const *argv)
{
	char path[4200];
	int p[2], st;

	snprintf(path, sizeof(path), "%s/../shmkit", sk_test_dir());
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t k;
	while ((k = read(p[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int cli_n;

#define CLI(...)                                                                                 \
	do {                                                                                     \
		const char *const argv_[] = { "shmkit", __VA_ARGS__, NULL };                     \
		int rc_ = tool(argv_);                                                           \
		cr_expect(rc_ == 1 || rc_ == 2, "shmkit %s %s: exit %d: %s", argv_[1],           \
		          argv_[2] ? argv_[2] : "", rc_, out);                                   \
		cr_expect(strstr(out, "shmkit"), "shmkit %s %s: no message", argv_[1],           \
		          argv_[2] ? argv_[2] : "");                                             \
		cli_n++;                                                                         \
	} while (0)

Test(bad_inputs, cli_at_least_100_each_refused_and_nothing_left)
{
	const char *name = sk_test_new_name("posix");
	char jpath[96], base[64];

	snprintf(jpath, sizeof(jpath), "/tmp/%s", sk_test_base(base, sizeof(base), "bad-cli"));
	isolate();
	listing(before, sizeof(before));
	for (size_t i = 0; i < SK_ARRAY_LEN(bad_names); i++) {
		const char *bn = bad_names[i].name;
		if (!*bn)
			continue; /* an empty argument is a usage error below */
		CLI("create", bn, "--size", "4K");
		CLI("info", bn);
		CLI("chan", bn);
		CLI("bus", bn);
	}
	CLI("frobnicate");
	CLI("create");
	CLI("create", name);
	CLI("create", name, "--size");
	CLI("create", name, "--size", "");
	CLI("create", name, "--size", "abc");
	CLI("create", name, "--size", "+5");
	CLI("create", name, "--size", "-1");
	CLI("create", name, "--size", "1Q");
	CLI("create", name, "--size", "0");
	CLI("create", name, "--size", "1.5M");
	CLI("create", name, "--size", "99999999999999999999");
	CLI("create", name, "--size", "4K", "--mode", "999");
	CLI("create", name, "--size", "4K", "--mode", "abc");
	CLI("create", name, "--size", "4K", "--frobnicate");
	CLI("create", "", "--size", "4K");
	CLI("chan", name, "--capacity", "abc");
	CLI("chan", name, "--capacity", "99999999999");
	CLI("chan", name, "--max-msg", "abc");
	CLI("chan", name, "--max-msg", "2G");
	CLI("chan", name, "--mode", "abc");
	CLI("bus", name, "--capacity", "abc");
	CLI("bus", name, "--mode", "sometimes");
	CLI("bus", name, "--perm", "abc");
	CLI("info", name);
	CLI("read", name);
	CLI("read", name, "--offset", "abc");
	CLI("read", name, "--length", "-1");
	CLI("write", name);
	CLI("send", name, "x");
	CLI("send", name, "x", "--timeout", "abc");
	CLI("recv", name, "--timeout", "0");
	CLI("recv", name, "-n", "x");
	CLI("pub", name, "x");
	CLI("sub", name, "--from", "middle");
	CLI("sub", name, "-n", "x");
	CLI("rm", name);
	CLI("gc", "--frobnicate");
	CLI("ls", "--frobnicate");
	CLI("journal");
	CLI("journal", "frobnicate", jpath);
	CLI("journal", "append");
	CLI("journal", "append", jpath, "--sync", "sometimes");
	CLI("journal", "append", jpath, "--file-size", "abc");
	CLI("journal", "append", jpath, "--max-record", "abc");
	CLI("journal", "append", jpath, "--keep-files", "-1");
	CLI("journal", "append", "--max-record", "4", jpath, "too long for it");
	CLI("journal", "tail", jpath);
	CLI("journal", "tail", jpath, "-n", "x");
	CLI("journal", "tail", jpath, "--from", "abc");
	CLI("journal", "dump", jpath, "--follow");
	CLI("journal", "verify", jpath);
	CLI("journal", "repair", jpath);
	CLI("journal", "rm", jpath);
	CLI("journal", "rm", "/tmp");
	listing(after, sizeof(after));
	cr_expect_str_eq(after, before, "a refused command left a name behind");
	cr_log_info("CLI: %d bad inputs refused", cli_n);
	cr_expect_geq(cli_n, 100);
}
