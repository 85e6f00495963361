/*
 * cmd_doctor.c - `shmkit doctor [NAME]`: checks this machine and the
 * container the command runs in, and says what to change.  Every check
 * reads the live system of the process it runs in - /dev/shm as mounted in
 * its mount namespace, the System V limits of its IPC namespace
 * (/proc/sys/kernel/shm* are per IPC namespace), its own rlimits - so a
 * container is judged as its programs see it.  No alternate root: tests
 * run it in new namespaces (unshare --ipc --mount, a small tmpfs on
 * /dev/shm, a small shmmni) to make the machine wrong for real.
 *
 * Checks (each: ok, note or problem; any problem makes the exit status 1):
 *   dev_shm      /dev/shm is a tmpfs this user can write, of at least
 *                128 MiB (64 MiB is Docker's default: named), with at least
 *                16 MiB and 10% free
 *   sysv         shmmax >= 64 MiB, shmall >= 256 MiB, shmmni >= 256, and
 *                less than 90% of shmmni / shmall in use
 *   remove_ipc   systemd-logind's RemoveIPC (logind.conf and its .d
 *                directories, systemd's order; the default is yes): with
 *                yes, logind removes a regular user's segments when the
 *                user's last session ends - a problem when this user is a
 *                regular one (uid >= 1000), a note otherwise
 *   huge_pages   pages reserved in /proc/meminfo (a note: needed only for
 *                --huge / SHMKIT_HUGE)
 *   memlock      RLIMIT_MEMLOCK and CAP_IPC_LOCK (a note: needed only for
 *                --mlock / SHMKIT_MLOCK)
 *   leftovers    what `shmkit gc` would remove: gc's own dry run (cmd_gc
 *                with --dry-run --json in a forked child, its lines read
 *                back: each name exact, bytes that are not UTF-8 too,
 *                and gc's reason; the kind from the object's header where
 *                it has one), a problem when there is any
 *   namespaces   with NAME only: the live peers of that segment, channel,
 *                bus, rpc service or journal, found by the pids the library
 *                reports and by every process visible here that maps it
 *                (an MPMC channel's handles, journal readers: no table
 *                keeps their pids); a pid is taken for the peer only when
 *                that process maps the object (/proc/PID/maps), then its IPC,
 *                PID, network, time, mount and user namespaces are compared
 *                with ours and what works across each difference is said.
 *                Notes only: shmkit's liveness is the kernel's lock, which
 *                crosses them.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "sysvtab.h"

#define MIB (1024ull * 1024)
#define TMPFS_MAGIC_ 0x01021994

enum status { OK, NOTE, PROBLEM };
static const char *const status_words[] = { "ok", "note", "problem" };

/* A datum of a check, for --json. */
struct item {
	const char *key;
	bool is_str;
	long long num;
	char str[256];
};

struct check {
	const char *id;
	enum status status;
	char msg[768];
	char advice[768];
	struct item items[12];
	int nitems;
};

/* What gc would remove (the leftovers check): the name as gc gave it
 * (any bytes), its kind ("" if unknown) and gc's reason. */
struct leftover {
	char *name;
	char kind[32];
	char reason[256];
};

struct report {
	struct check v[16];
	int n;
	struct leftover *left;
	int nleft;
};

static struct check *check_new(struct report *r, const char *id)
{
	struct check *c = &r->v[r->n < 15 ? r->n++ : 15];

	memset(c, 0, sizeof(*c));
	c->id = id;
	return c;
}

/* Append to buf (len bytes), "; " after what is there. */
static void vappend(char *buf, size_t len, const char *fmt, va_list ap)
{
	size_t n = strlen(buf);

	if (n && n + 2 < len)
		n += (size_t)snprintf(buf + n, len - n, "; ");
	if (n < len)
		vsnprintf(buf + n, len - n, fmt, ap);
}

/* Say something of check c, raising its status to st. */
static void set(struct check *c, enum status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set(struct check *c, enum status st, const char *fmt, ...)
{
	va_list ap;

	if (st > c->status)
		c->status = st;
	va_start(ap, fmt);
	vappend(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
}

/* What to change, for c. */
static void advise(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void advise(struct check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vappend(c->advice, sizeof(c->advice), fmt, ap);
	va_end(ap);
}

static void num(struct check *c, const char *key, long long v)
{
	if (c->nitems < 12)
		c->items[c->nitems++] = (struct item){ .key = key, .num = v };
}

static void str(struct check *c, const char *key, const char *v)
{
	if (c->nitems < 12) {
		struct item *it = &c->items[c->nitems++];
		size_t n = strnlen(v, sizeof(it->str) - 1); /* cut: shown, not parsed */
		*it = (struct item){ .key = key, .is_str = true };
		memcpy(it->str, v, n);
	}
}

/* "1.0 MiB", "24 GiB" */
static void bytes_text(unsigned long long v, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", d, units[u]);
}

/* A number from a one-line file (/proc/sys/...); false if unreadable. */
static bool read_ull(const char *path, unsigned long long *v)
{
	FILE *f = fopen(path, "re");
	bool got = f && fscanf(f, "%llu", v) == 1;

	if (f)
		fclose(f);
	return got;
}

/* Which container runtime made this one, if any: docker, podman, ...  */
static const char *container(void)
{
	static char name[64];
	FILE *f;

	if (!access("/.dockerenv", F_OK))
		return "docker";
	if (!access("/run/.containerenv", F_OK))
		return "podman";
	if ((f = fopen("/run/systemd/container", "re"))) {
		bool got = fgets(name, sizeof(name), f) != NULL;
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (got && name[0])
			return name;
	}
	return NULL;
}

/* ---- /dev/shm ------------------------------------------------------------ */

static void check_dev_shm(struct report *r)
{
	struct check *c = check_new(r, "dev_shm");
	struct statfs sf;
	char total[32], avail[32];
	const char *ctr = container();

	if (ctr)
		str(c, "container", ctr);
	if (statfs("/dev/shm", &sf)) {
		set(c, PROBLEM, "/dev/shm: %s: POSIX segments (the default backend) cannot be made",
		    strerror(errno));
		advise(c, "mount a tmpfs on /dev/shm (mount -t tmpfs -o size=1g,mode=1777 tmpfs /dev/shm)");
		return;
	}
	unsigned long long size = (unsigned long long)sf.f_blocks * (unsigned long long)sf.f_bsize;
	unsigned long long free_ = (unsigned long long)sf.f_bavail * (unsigned long long)sf.f_bsize;
	bytes_text(size, total, sizeof(total));
	bytes_text(free_, avail, sizeof(avail));
	num(c, "size", (long long)size);
	num(c, "free", (long long)free_);
	bool tmpfs = sf.f_type == TMPFS_MAGIC_;
	str(c, "type", tmpfs ? "tmpfs" : "other");
	if (!tmpfs) {
		set(c, PROBLEM, "/dev/shm is not a tmpfs: POSIX segments there are files on disk");
		advise(c, "mount a tmpfs on /dev/shm");
	}
	if (access("/dev/shm", W_OK | X_OK)) {
		set(c, PROBLEM, "/dev/shm is not writable by this user: no POSIX segment can be made");
		advise(c, "/dev/shm should be mode 1777 (chmod 1777 /dev/shm)");
	}
	if (size < 128 * MIB) {
		bool docker = size == 64 * MIB;
		set(c, PROBLEM, "/dev/shm holds only %s%s: segments, channels and buses larger than "
		    "what is free fail with -ENOSPC", total,
		    docker ? " (Docker's default for a container)" : "");
		advise(c, "give the container more: docker run --shm-size=1g, compose shm_size: 1gb, "
		       "Kubernetes: an emptyDir with medium: Memory mounted on /dev/shm; on a host: "
		       "mount -o remount,size=1g /dev/shm");
	} else if (free_ < 16 * MIB || free_ * 10 < size) { /* big enough, but full */
		set(c, PROBLEM, "/dev/shm is nearly full: %s free of %s", avail, total);
		advise(c, "remove what is left there (shmkit ls, shmkit gc, shmkit rm) or make it larger");
	}
	if (c->status == OK)
		set(c, OK, "/dev/shm: tmpfs, %s, %s free%s%s", total, avail, ctr ? "; container: " : "",
		    ctr ? ctr : "");
}

/* ---- System V limits ----------------------------------------------------- */

struct sysv_usage {
	unsigned long long segs, pages, page;
};

static void sysv_count(const struct sysv_row *row, void *arg)
{
	struct sysv_usage *u = arg;

	u->segs++;
	u->pages += (row->size + u->page - 1) / u->page;
}

static void check_sysv(struct report *r)
{
	struct check *c = check_new(r, "sysv");
	unsigned long long shmmax, shmall, shmmni;
	long page = sysconf(_SC_PAGESIZE);
	struct sysv_usage u = { .page = (unsigned long long)page };
	char a[32], b[32];

	if (!read_ull("/proc/sys/kernel/shmmax", &shmmax) ||
	    !read_ull("/proc/sys/kernel/shmall", &shmall) ||
	    !read_ull("/proc/sys/kernel/shmmni", &shmmni)) {
		set(c, NOTE, "System V limits unreadable (/proc/sys/kernel/shm*): %s", strerror(errno));
		return;
	}
	sysv_table_each(sysv_count, &u);
	unsigned long long segs = u.segs, pages = u.pages;
	num(c, "shmmax", (long long)(shmmax > LLONG_MAX ? LLONG_MAX : shmmax));
	num(c, "shmall", (long long)(shmall > LLONG_MAX ? LLONG_MAX : shmall));
	num(c, "shmmni", (long long)shmmni);
	num(c, "segments", (long long)segs);
	num(c, "pages_used", (long long)pages);
	num(c, "page_size", page);
	if (shmmax < 64 * MIB) {
		bytes_text(shmmax, a, sizeof(a));
		set(c, PROBLEM, "shmmax is %s: no System V segment may be larger", a);
		advise(c, "sysctl -w kernel.shmmax=%llu (or in the container: docker run --sysctl "
		       "kernel.shmmax=...)", 1024 * MIB);
	}
	unsigned long long all_bytes = shmall > ULLONG_MAX / (unsigned long long)page
	                               ? ULLONG_MAX : shmall * (unsigned long long)page;
	if (all_bytes < 256 * MIB) {
		bytes_text(all_bytes, a, sizeof(a));
		set(c, PROBLEM, "shmall is %llu pages (%s): all System V segments together may not "
		    "be larger", shmall, a);
		advise(c, "sysctl -w kernel.shmall=%llu", 4096 * MIB / (unsigned long long)page);
	}
	if (shmmni < 256) {
		set(c, PROBLEM, "shmmni is %llu: at most that many System V segments in this IPC "
		    "namespace", shmmni);
		advise(c, "sysctl -w kernel.shmmni=4096 (per IPC namespace: set it in the container)");
	}
	if (segs * 10 >= shmmni * 9) {
		set(c, PROBLEM, "%llu of shmmni %llu System V segments in use", segs, shmmni);
		advise(c, "remove what is left (shmkit ls, shmkit gc, ipcrm) or raise kernel.shmmni");
	}
	if (pages * 10 >= shmall * 9) {
		set(c, PROBLEM, "%llu of shmall %llu pages of System V memory in use", pages, shmall);
		advise(c, "remove what is left (shmkit gc, ipcrm) or raise kernel.shmall");
	}
	if (c->status == OK) {
		bytes_text(shmmax, a, sizeof(a));
		bytes_text(all_bytes, b, sizeof(b));
		set(c, OK, "System V: shmmax %s, shmall %s, shmmni %llu (%llu segment%s in use)", a, b,
		    shmmni, segs, segs == 1 ? "" : "s");
	}
}

/* ---- systemd-logind RemoveIPC -------------------------------------------- */

/* The last RemoveIPC= of the [Login] section of path into val/src. */
static void logind_parse(const char *path, char *val, size_t vlen, char *src, size_t slen)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	bool login = false;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		p[strcspn(p, "\r\n")] = '\0';
		if (*p == '[') {
			login = !strncmp(p, "[Login]", 7);
			continue;
		}
		if (!login || strncmp(p, "RemoveIPC", 9))
			continue;
		char *q = p + 9;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q++ != '=')
			continue;
		while (*q == ' ' || *q == '\t')
			q++;
		size_t n = strlen(q);
		while (n && isspace((unsigned char)q[n - 1]))
			q[--n] = '\0';
		snprintf(val, vlen, "%s", q);
		snprintf(src, slen, "%s", path);
	}
	fclose(f);
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	return strcmp(strrchr(x, '/') + 1, strrchr(y, '/') + 1);
}

/* systemd's order: the first main file found, then every drop-in *.conf
 * of the four directories sorted by file name, a name in an earlier
 * directory hiding the same name in a later one. */
static void logind_setting(char *val, size_t vlen, char *src, size_t slen)
{
	static const char *const dirs[] = { "/etc/systemd", "/run/systemd", "/usr/local/lib/systemd",
	                                    "/usr/lib/systemd" };
	char path[PATH_MAX], *drop[256];
	int ndrop = 0;

	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/logind.conf", dirs[i]);
		if (!access(path, R_OK)) {
			logind_parse(path, val, vlen, src, slen);
			break;
		}
	}
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/logind.conf.d", dirs[i]);
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d)) && ndrop < 256) {
			size_t n = strlen(e->d_name);
			if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".conf"))
				continue;
			bool hidden = false;
			for (int k = 0; k < ndrop && !hidden; k++)
				hidden = !strcmp(strrchr(drop[k], '/') + 1, e->d_name);
			if (!hidden && asprintf(&drop[ndrop], "%s/%s", path, e->d_name) > 0)
				ndrop++;
		}
		if (d)
			closedir(d);
	}
	qsort(drop, (size_t)ndrop, sizeof(*drop), name_cmp);
	for (int k = 0; k < ndrop; k++) {
		logind_parse(drop[k], val, vlen, src, slen);
		free(drop[k]);
	}
}

static bool yes_word(const char *v)
{
	return !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
	       !strcmp(v, "1") || !strcasecmp(v, "y") || !strcasecmp(v, "t");
}

static void check_remove_ipc(struct report *r)
{
	struct check *c = check_new(r, "remove_ipc");
	char val[64] = "", src[PATH_MAX] = "";
	bool logind = !access("/usr/lib/systemd/systemd-logind", X_OK) ||
	              !access("/lib/systemd/systemd-logind", X_OK);
	uid_t uid = getuid();

	logind_setting(val, sizeof(val), src, sizeof(src));
	bool yes = val[0] ? yes_word(val) : true; /* systemd's default is yes */
	str(c, "value", yes ? "yes" : "no");
	str(c, "source", src[0] ? src : "default");
	num(c, "logind_installed", logind);
	if (!yes) {
		set(c, OK, "RemoveIPC=no (%s)", src);
		return;
	}
	const char *from = src[0] ? src : "systemd's default";
	if (!logind) {
		set(c, OK, "RemoveIPC=yes (%s), but systemd-logind is not installed here", from);
		return;
	}
	if (uid >= 1000) {
		set(c, PROBLEM, "RemoveIPC=yes (%s): systemd-logind removes this user's (uid %u) "
		    "POSIX and System V segments when the user's last session ends, under running "
		    "programs", from, (unsigned)uid);
	} else {
		set(c, NOTE, "RemoveIPC=yes (%s): systemd-logind removes the segments of regular "
		    "users (uid >= 1000, not this one) when their last session ends", from);
	}
	advise(c, "set RemoveIPC=no under [Login] in /etc/systemd/logind.conf.d/shmkit.conf and "
	       "restart systemd-logind, or run the programs as a system user or under "
	       "loginctl enable-linger");
}

/* ---- huge pages and memlock ---------------------------------------------- */

static void check_huge_pages(struct report *r)
{
	struct check *c = check_new(r, "huge_pages");
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long long total = -1, free_ = -1, kb = -1;

	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "HugePages_Total: %lld", &total);
		sscanf(line, "HugePages_Free: %lld", &free_);
		sscanf(line, "Hugepagesize: %lld kB", &kb);
	}
	if (f)
		fclose(f);
	num(c, "total", total);
	num(c, "free", free_);
	num(c, "page_size", kb * 1024);
	if (total <= 0) {
		set(c, NOTE, "no huge pages reserved: --huge (SHMKIT_HUGE) fails with -ENOMEM");
		advise(c, "if you need them: sysctl -w vm.nr_hugepages=N (N pages of %lld kB)", kb);
	} else {
		set(c, OK, "huge pages: %lld reserved, %lld free, %lld kB each", total, free_, kb);
	}
}

/* CAP_IPC_LOCK in the effective set (/proc/self/status CapEff). */
static bool cap_ipc_lock(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long caps = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	if (f)
		fclose(f);
	return caps & (1ull << 14); /* CAP_IPC_LOCK */
}

static void check_memlock(struct report *r)
{
	struct check *c = check_new(r, "memlock");
	struct rlimit rl;
	char a[32];

	if (getrlimit(RLIMIT_MEMLOCK, &rl)) {
		set(c, NOTE, "RLIMIT_MEMLOCK unreadable: %s", strerror(errno));
		return;
	}
	bool cap = cap_ipc_lock();
	num(c, "soft", rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
	num(c, "hard", rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max);
	num(c, "cap_ipc_lock", cap);
	if (rl.rlim_cur == RLIM_INFINITY || cap) {
		set(c, OK, "locking memory: %s", cap ? "CAP_IPC_LOCK (no limit)" : "unlimited");
		return;
	}
	bytes_text(rl.rlim_cur, a, sizeof(a));
	set(c, NOTE, "RLIMIT_MEMLOCK is %s: --mlock (SHMKIT_MLOCK) of more than that fails "
	    "(-ENOMEM or -EPERM)", a);
	advise(c, "if you lock segments: ulimit -l, LimitMEMLOCK= in a systemd unit, docker run "
	       "--ulimit memlock=-1");
}

/* ---- leftovers: gc's own dry run ----------------------------------------- */

/* The string member "key" of one line of gc --json into out (cap bytes,
 * NUL-terminated, cut if longer), unescaped: gc writes \" \\ and
 * \u00XX for a control byte or a byte that is not UTF-8 (tool_json_str),
 * so the bytes come back exactly.  false if the line has no such member. */
static bool gc_member(const char *line, const char *key, char *out, size_t cap)
{
	char pat[40];
	size_t o = 0;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(line, pat);
	if (!p || !cap)
		return false;
	for (p += strlen(pat); *p && *p != '"'; p++) {
		unsigned v = (unsigned char)*p;
		if (*p == '\\' && p[1] == 'u' && sscanf(p + 2, "%4x", &v) == 1 && isxdigit((unsigned char)p[5]))
			p += 5;
		else if (*p == '\\' && p[1])
			v = (unsigned char)*++p;
		if (o + 1 < cap)
			out[o++] = (char)v;
	}
	out[o] = '\0';
	return *p == '"';
}

/* A line of gc --dry-run --json into r->left; its kind from the
 * object's header where one can be read (gc does not print it). */
static void gc_line(struct report *r, const char *line)
{
	char name[PATH_MAX + 64], action[32];
	struct shmkit_seg_info st;
	struct leftover *l;

	if (!gc_member(line, "action", action, sizeof(action)) || strcmp(action, "would remove") ||
	    !gc_member(line, "name", name, sizeof(name)))
		return;
	l = realloc(r->left, (size_t)(r->nleft + 1) * sizeof(*l));
	if (!l)
		return;
	r->left = l;
	l += r->nleft;
	memset(l, 0, sizeof(*l));
	if (!(l->name = strdup(name)))
		return;
	r->nleft++;
	gc_member(line, "reason", l->reason, sizeof(l->reason));
	if (!gc_member(line, "kind", l->kind, sizeof(l->kind)) && name[0] != '/' &&
	    shmkit_seg_info_name(name, &st) == 0)
		snprintf(l->kind, sizeof(l->kind), "%s", seg_kind_label(st.kind));
}

static void leftovers_free(struct report *r)
{
	for (int i = 0; i < r->nleft; i++)
		free(r->left[i].name);
	free(r->left);
	r->left = NULL;
	r->nleft = 0;
}

/* "NAME (REASON)" of leftover i into buf, the name's bytes as they are
 * (print_text escapes the message for a terminal, JSON for itself). */
static const char *leftover_text(const struct report *r, int i, char *buf, size_t len)
{
	if (i >= r->nleft)
		return "";
	snprintf(buf, len, "%.200s (%s)", r->left[i].name, r->left[i].reason);
	return buf;
}

/* Run `shmkit gc --dry-run --json` (cmd_gc in a forked child) and read
 * what it would remove: the same verdicts as gc, no copy of its rules. */
static void check_leftovers(struct report *r)
{
	struct check *c = check_new(r, "leftovers");
	int p[2];
	static char buf[1 << 20];
	size_t len = 0;

	fflush(stdout);
	if (pipe(p)) {
		set(c, NOTE, "cannot run gc --dry-run: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		char *av[] = { (char *)"gc", (char *)"--dry-run", (char *)"--json", NULL };
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(p[1], STDOUT_FILENO);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		close(p[0]);
		close(p[1]);
		optind = 1;
		int rc = cmd_gc(3, av);
		fflush(stdout);
		_exit(rc);
	}
	close(p[1]);
	while (pid > 0 && len + 1 < sizeof(buf)) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(p[0]);
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		set(c, NOTE, "shmkit gc --dry-run failed");
		return;
	}
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		gc_line(r, line);
	int count = r->nleft;
	char first[3][520];
	num(c, "count", count);
	if (!count) {
		set(c, OK, "nothing left behind that gc would remove");
		return;
	}
	set(c, PROBLEM, "%d thing%s left behind by dead processes: %s%s%s%s%s%s", count,
	    count > 1 ? "s" : "", leftover_text(r, 0, first[0], sizeof(first[0])),
	    count > 1 ? ", " : "", leftover_text(r, 1, first[1], sizeof(first[1])),
	    count > 2 ? ", " : "", leftover_text(r, 2, first[2], sizeof(first[2])),
	    count > 3 ? ", ..." : "");
	advise(c, "shmkit gc (shmkit gc --dry-run lists them)");
}

/* ---- namespaces of a segment's peers ------------------------------------- */

struct peers {
	pid_t pid[64];
	const char *role[64];
	int n;
};

static void peer_add(struct peers *p, pid_t pid, const char *role)
{
	if (pid <= 0 || pid == getpid())
		return;
	for (int i = 0; i < p->n; i++)
		if (p->pid[i] == pid)
			return;
	if (p->n < 64) {
		p->pid[p->n] = pid;
		p->role[p->n++] = role;
	}
}

static int bus_peer(const struct shmkit_bus_peer *b, void *arg)
{
	if (b->alive > 0)
		peer_add(arg, b->pid, b->subscriber ? "subscriber" : "publisher");
	return 0;
}

static int rpc_peer(const struct shmkit_rpc_peer *b, void *arg)
{
	if (b->alive > 0)
		peer_add(arg, b->pid, b->server ? "server" : "client");
	return 0;
}

/* Peers of a segment by the pids the library reports. */
static int seg_peers(const char *name, const struct shmkit_seg_info *st, struct peers *p)
{
	int err = 0;

	if (st->creator_alive > 0)
		peer_add(p, st->creator_pid, "creator");
	if (st->kind == SHMKIT_KIND_CHAN) {
		struct shmkit_chan_opts o = { .flags = SHMKIT_RDONLY };
		struct shmkit_chan_stats cs;
		shmkit_chan *ch = NULL;
		if (!(err = shmkit_chan_open(&ch, name, &o)) && !(err = shmkit_chan_stats(ch, &cs))) {
			peer_add(p, (pid_t)cs.producer, "producer");
			peer_add(p, (pid_t)cs.consumer, "consumer");
		}
		shmkit_chan_close(ch);
	} else if (st->kind == SHMKIT_KIND_BUS) {
		shmkit_bus *bus;
		if (!(err = shmkit_bus_open(&bus, name, NULL))) {
			err = shmkit_bus_peers(bus, bus_peer, p);
			shmkit_bus_close(bus);
		}
	} else if (st->kind == SHMKIT_KIND_RPC) {
		shmkit_rpc *rpc;
		if (!(err = shmkit_rpc_open(&rpc, name, NULL))) {
			err = shmkit_rpc_peers(rpc, rpc_peer, p);
			shmkit_rpc_close(rpc);
		}
	}
	return err;
}

/* What shows in /proc/PID/maps when a process maps the object: its path
 * and the space after it (maps_have turns the line's newline into one;
 * " (deleted)" may follow), so that NAME does not match NAME2. */
static void map_mark(const char *name, const struct shmkit_seg_info *st, bool journal, char *buf,
                     size_t len)
{
	if (journal)
		snprintf(buf, len, "%s/journal.meta ", name);
	else if (st->backend == SHMKIT_SYSV)
		snprintf(buf, len, "/SYSV%08lx ", (unsigned long)(uint32_t)st->key);
	else if (st->backend == SHMKIT_POSIX)
		snprintf(buf, len, "/dev/shm/%s ", st->name + strlen("posix:/"));
	else
		snprintf(buf, len, "%s ", st->name + strlen("file:"));
}

/* 1 if process pid maps mark, 0 if not, -1 if its maps cannot be read. */
static int maps_have(pid_t pid, const char *mark)
{
	char path[64], line[PATH_MAX + 128];
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = ' ';
		found = strstr(line, mark) != NULL;
	}
	fclose(f);
	return found;
}

/* Every process visible here that maps the object (mark in its maps):
 * the peers no table names with a pid (an MPMC channel's handles, readers
 * of a journal, users of a byte segment). */
static void map_users(struct peers *p, const char *mark)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT_MAX)
			continue;
		if (maps_have((pid_t)pid, mark) == 1)
			peer_add(p, (pid_t)pid, "maps it");
	}
	if (d)
		closedir(d);
}

static const struct {
	const char *ns, *key, *word, *across;
} ns_list[] = {
	{ "ipc", "ns_ipc", "IPC", "System V segments are per IPC namespace: a sysv: name there is another "
	  "segment; POSIX, file and memfd work if both see the same files" },
	{ "mnt", "ns_mnt", "mount", "POSIX segments are shared only if both mount the same /dev/shm; file: "
	  "and journals only if both see the same file system" },
	{ "pid", "ns_pid", "PID", "liveness works (kernel locks, not pids); pids shmkit shows are the peer's "
	  "own; shmkit_mutex (robust futex) does not work across PID namespaces" },
	{ "net", "ns_net", "network", "nothing of shmkit depends on it, but fd passing (memfd) over an "
	  "abstract UNIX socket needs the same one: use a socket path both see" },
	{ "time", "ns_time", "time", "timeouts are local and rpc deadlines are CLOCK_REALTIME, which time "
	  "namespaces do not shift: all works" },
	{ "user", "ns_user", "user", "permissions follow uid mapping: a segment's mode must let the peer's "
	  "mapped uid in" },
};

static bool ns_id(pid_t pid, const char *ns, char *buf, size_t len)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns);
	else
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	ssize_t n = readlink(path, buf, len - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static void check_peer(struct report *r, pid_t pid, const char *role, const char *mark)
{
	struct check *c = check_new(r, "namespaces");
	char mine[64], theirs[64], dir[32];

	num(c, "pid", pid);
	str(c, "role", role);
	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	if (access(dir, F_OK)) {
		str(c, "peer", "not visible");
		set(c, NOTE, "%s pid %d: no such process here: the peer lives in another PID namespace "
		    "(the pid is its own), which shmkit's liveness does not mind", role, (int)pid);
		return;
	}
	int have = maps_have(pid, mark);
	if (have <= 0) {
		str(c, "peer", have < 0 ? "unreadable" : "other process");
		set(c, NOTE, "%s pid %d: %s", role, (int)pid, have < 0
		    ? "its maps are not readable by this user: cannot tell its namespaces"
		    : "this pid here does not map the object: the peer is probably in another PID "
		      "namespace");
		return;
	}
	str(c, "peer", "confirmed");
	int differ = 0;
	for (size_t i = 0; i < sizeof(ns_list) / sizeof(ns_list[0]); i++) {
		const char *state = "unknown";
		if (ns_id(0, ns_list[i].ns, mine, sizeof(mine)) &&
		    ns_id(pid, ns_list[i].ns, theirs, sizeof(theirs)))
			state = strcmp(mine, theirs) ? "differs" : "same";
		str(c, ns_list[i].key, state);
		if (!strcmp(state, "differs")) {
			set(c, NOTE, "%s pid %d: %s namespace differs: %s", role, (int)pid,
			    ns_list[i].word, ns_list[i].across);
			differ++;
		}
	}
	if (!differ)
		set(c, OK, "%s pid %d shares every namespace with this process", role, (int)pid);
}

static bool is_journal_dir(const char *path)
{
	char meta[PATH_MAX];
	struct stat sb;

	snprintf(meta, sizeof(meta), "%s/journal.meta", path);
	return !strchr(path, ':') && !stat(path, &sb) && S_ISDIR(sb.st_mode) && !access(meta, F_OK);
}

/* The namespaces checks of NAME; 0 or an error for the name. */
static int check_namespaces(struct report *r, const char *name)
{
	struct shmkit_seg_info st = { .backend = 0 };
	struct peers p = { .n = 0 };
	char mark[PATH_MAX + 32], real[PATH_MAX];
	bool journal = is_journal_dir(name);
	int err = 0;

	if (journal) {
		shmkit_journal *j;
		struct shmkit_journal_stats js;
		if (!realpath(name, real))
			return -errno;
		if (!(err = shmkit_journal_open(&j, real, NULL))) {
			if (!(err = shmkit_journal_stats(j, &js)))
				peer_add(&p, js.writer_pid, "writer");
			shmkit_journal_close(j);
		}
		name = real;
	} else if (!(err = shmkit_seg_info_name(name, &st))) {
		err = seg_peers(name, &st, &p);
	}
	if (err)
		return err;
	map_mark(name, &st, journal, mark, sizeof(mark));
	map_users(&p, mark);
	if (!p.n) {
		struct check *c = check_new(r, "namespaces");
		set(c, NOTE, "no live peer of %s reports a pid", name);
	}
	for (int i = 0; i < p.n; i++)
		check_peer(r, p.pid[i], p.role[i], mark);
	return 0;
}

/* ---- output -------------------------------------------------------------- */

static void print_text(const struct report *r)
{
	for (int i = 0; i < r->n; i++) {
		const struct check *c = &r->v[i];
		char shown[4 * sizeof(c->msg)];
		tool_escape(c->msg, shown, sizeof(shown));
		printf("%-8s %s\n", c->status == PROBLEM ? "PROBLEM" : status_words[c->status], shown);
		if (c->advice[0] && c->status != OK)
			printf("         change: %s\n", c->advice);
	}
}

/* sep"would_remove":[{"name":..., "name_hex" beside a name that is not
 * UTF-8, "kind" where known, "reason"}, ...] */
static void print_leftovers(const struct report *r, const char *sep)
{
	printf("%s\"would_remove\":[", sep);
	for (int i = 0; i < r->nleft; i++) {
		const struct leftover *l = &r->left[i];
		printf("%s{", i ? "," : "");
		tool_json_name("name", l->name);
		if (l->kind[0])
			printf(",\"kind\":\"%s\"", l->kind);
		printf(",\"reason\":");
		tool_json_str(l->reason);
		printf("}");
	}
	printf("]");
}

static void print_json(const struct report *r, int problems)
{
	printf("{\"ok\":%s,\"problems\":%d,\"checks\":[", problems ? "false" : "true", problems);
	for (int i = 0; i < r->n; i++) {
		const struct check *c = &r->v[i];
		printf("%s{\"check\":\"%s\",\"status\":\"%s\",\"message\":", i ? "," : "", c->id,
		       status_words[c->status]);
		tool_json_str(c->msg);
		printf(",\"advice\":");
		tool_json_str(c->advice);
		printf(",\"data\":{");
		for (int k = 0; k < c->nitems; k++) {
			const struct item *it = &c->items[k];
			printf("%s\"%s\":", k ? "," : "", it->key);
			if (it->is_str)
				tool_json_str(it->str);
			else
				printf("%lld", it->num);
		}
		if (!strcmp(c->id, "leftovers"))
			print_leftovers(r, c->nitems ? "," : "");
		printf("}}");
	}
	printf("]}\n");
}

static const char doctor_help[] =
	"usage: shmkit doctor [--json] [NAME|PATH]\n"
	"\n"
	"Check this machine and the container this runs in for shmkit, and say what\n"
	"to change.  Each check prints ok, note or PROBLEM, and for the latter two\n"
	"what to change:\n"
	"  /dev/shm     a writable tmpfs of at least 128 MiB (64 MiB is Docker's\n"
	"               default: --shm-size), at least 16 MiB and 10% free\n"
	"  System V     kernel.shmmax >= 64 MiB, shmall >= 256 MiB, shmmni >= 256,\n"
	"               under 90% of shmmni and shmall in use (this IPC namespace)\n"
	"  RemoveIPC    systemd-logind's setting (logind.conf, logind.conf.d; yes by\n"
	"               default): a problem for a regular user (uid >= 1000), whose\n"
	"               segments logind removes at logout\n"
	"  huge pages   reserved pages (a note: only --huge needs them)\n"
	"  memlock      RLIMIT_MEMLOCK, CAP_IPC_LOCK (a note: only --mlock needs them)\n"
	"  leftovers    what `shmkit gc` would remove (its --dry-run)\n"
	"With NAME (a segment, channel, bus or rpc service) or the PATH of a\n"
	"journal: for each live peer the library reports a pid of (creator, SPSC\n"
	"roles, bus and rpc entries, journal writer) and each process visible here\n"
	"that maps it (\"maps it\": an MPMC channel's handles, journal readers),\n"
	"whether its IPC, mount, PID, network, time and user namespaces differ from\n"
	"this process's, and what works across each difference.  A pid is taken\n"
	"for the peer only if that process maps the object; a pid not here means\n"
	"another PID namespace.\n"
	"\n"
	"Exit status: 0 when nothing is a problem (notes are fine), 1 when\n"
	"something is (or NAME cannot be examined), 2 for a usage error.\n"
	"\n"
	"  --json   print one JSON object: {\"ok\", \"problems\", \"checks\": [{\"check\",\n"
	"           \"status\", \"message\", \"advice\", \"data\"}]}; the leftovers' data\n"
	"           has \"would_remove\": [{\"name\", \"name_hex\" (a name that is not\n"
	"           UTF-8, in hex), \"kind\" (where known), \"reason\"}]\n";

int cmd_doctor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct report r;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': fputs(doctor_help, stdout); return 0;
		default: return tool_bad_option("doctor", c, argv);
		}
	}
	if (argc - optind > 1)
		return tool_usage("doctor: give at most one NAME (see shmkit doctor --help)");
	r.n = 0;
	check_dev_shm(&r);
	check_sysv(&r);
	check_remove_ipc(&r);
	check_huge_pages(&r);
	check_memlock(&r);
	check_leftovers(&r);
	int rc = optind < argc ? tool_check_name("doctor", argv[optind]) : 0;
	int err = !rc && optind < argc ? check_namespaces(&r, argv[optind]) : 0;
	if (rc || err) {
		leftovers_free(&r);
		return rc ? rc : tool_open_err(argv[optind], err);
	}
	int problems = 0;
	for (int i = 0; i < r.n; i++)
		problems += r.v[i].status == PROBLEM;
	if (json)
		print_json(&r, problems);
	else {
		print_text(&r);
		printf("%d problem%s\n", problems, problems == 1 ? "" : "s");
	}
	leftovers_free(&r);
	return problems ? 1 : 0;
}
