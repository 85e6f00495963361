/*
 * lib_test.c - shared test utilities; see lib_test.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmkit.h"
#include "lib_test.h"

#define SK_TEST_MAX_ARGS 32
#define SK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static unsigned name_counter, sysv_counter;

/* Export the run id before Criterion forks or execs its workers and
 * before any helper starts, so every process of this binary's run names
 * things alike (lib_test.h: sk_test_run_id). */
__attribute__((constructor)) static void run_id_init(void)
{
	sk_test_run_id();
}

char *sk_test_name(char *buf, size_t len, const char *prefix)
{
	unsigned n = name_counter++;
	char tag[16], base[64];
	int w;

	snprintf(tag, sizeof(tag), "%u", n);
	if (!sk_test_base(base, sizeof(base), tag))
		return NULL;
	if (!strcmp(prefix, "posix"))
		w = snprintf(buf, len, "posix:/%s", base);
	else if (!strcmp(prefix, "file"))
		w = snprintf(buf, len, "file:/tmp/%s", base);
	else if (!strcmp(prefix, "memfd"))
		w = snprintf(buf, len, "memfd:%s", base);
	else if (!strcmp(prefix, "anon"))
		w = snprintf(buf, len, "anon");
	else if (!strcmp(prefix, "sysv")) /* 0..31; sk_test_sysv_key(n) by hand: 32..63 */
		w = snprintf(buf, len, "sysv:0x%08x", sk_test_sysv_key(sysv_counter++ & 0x1fu));
	else if (!strcmp(prefix, "ftok")) {
		char path[96];
		snprintf(path, sizeof(path), "/tmp/%s.ftok", base);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return NULL;
		close(fd);
		w = snprintf(buf, len, "sysv:%s:1", path);
	} else
		return NULL;
	return w > 0 && (size_t)w < len ? buf : NULL;
}

void sk_test_remove(const char *name)
{
	const char *colon;

	if (!name || !strcmp(name, "anon") || !strncmp(name, "memfd:", 6))
		return;
	shmkit_seg_remove(name);
	/* An ftok name: the file was made by sk_test_name(). */
	if (!strncmp(name, "sysv:/", 6) && (colon = strrchr(name, ':')) > name + 5) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%.*s", (int)(colon - name - 5), name + 5);
		unlink(path);
	}
}

static char registered[32][128];
static unsigned nregistered;

const char *sk_test_new_name(const char *prefix)
{
	if (nregistered >= SK_ARRAY_LEN(registered))
		return NULL;
	char *slot = registered[nregistered];
	if (!sk_test_name(slot, sizeof(registered[0]), prefix))
		return NULL;
	nregistered++;
	return slot;
}

void sk_test_cleanup(void)
{
	while (nregistered)
		sk_test_remove(registered[--nregistered]);
}

const char *sk_test_dir(void)
{
	static char dir[PATH_MAX];

	if (!dir[0]) {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		dir[n > 0 ? n : 0] = '\0';
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(dir, sizeof(dir), ".");
	}
	return dir;
}

pid_t sk_test_fork(int (*fn)(void *arg), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		_exit(fn(arg));
	}
	return pid;
}

int sk_test_reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

pid_t sk_test_spawn(const char *const argv[], int in_fd, int *out_fd)
{
	char path[PATH_MAX];
	int pfd[2] = { -1, -1 };

	if (strchr(argv[0], '/'))
		snprintf(path, sizeof(path), "%s", argv[0]);
	else
		snprintf(path, sizeof(path), "%s/%s", sk_test_dir(), argv[0]);
	if (out_fd && pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		if (out_fd) {
			close(pfd[0]);
			close(pfd[1]);
		}
		return err;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(99);
		int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || (out_fd && dup2(pfd[1], 1) < 0))
			_exit(127);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	if (out_fd) {
		close(pfd[1]);
		*out_fd = pfd[0];
	}
	return pid;
}

int sk_test_finish(pid_t pid, int out_fd, char *buf, size_t len)
{
	size_t used = 0;
	char sink[256];

	if (out_fd >= 0) {
		for (;;) {
			/* Keep draining past a full buffer so the child never blocks. */
			char *dst = used + 1 < len ? buf + used : sink;
			size_t room = used + 1 < len ? len - 1 - used : sizeof(sink);
			ssize_t n = read(out_fd, dst, room);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (dst != sink)
				used += (size_t)n;
		}
		close(out_fd);
	}
	if (len)
		buf[used] = '\0';
	return sk_test_reap(pid);
}

int sk_test_run(char *buf, size_t len, const char *prog, ...)
{
	const char *argv[SK_TEST_MAX_ARGS + 1];
	va_list ap;
	int n = 0, out;

	argv[n++] = prog;
	va_start(ap, prog);
	while (n < SK_TEST_MAX_ARGS && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid = sk_test_spawn(argv, -1, &out);
	if (pid < 0)
		return pid;
	return sk_test_finish(pid, out, buf, len);
}

struct find {
	const char *name;
	int shmid;
	struct shmkit_seg_info *st;
	int found;
};

static int find_cb(const struct shmkit_seg_info *st, void *arg)
{
	struct find *f = arg;

	if (f->name ? !strcmp(st->name, f->name) : st->shmid == f->shmid) {
		if (f->st)
			*f->st = *st;
		f->found++;
	}
	return 0;
}

int sk_test_find_seg(const char *name, int shmid, struct shmkit_seg_info *st)
{
	struct find f = { name, shmid, st, 0 };
	int err = shmkit_seg_list(find_cb, &f);

	return err < 0 ? err : f.found;
}

int sk_test_eventually(int (*cond)(void *arg), void *arg)
{
	struct timespec nap = { 0, 1000000 };
	int r = 0;

	for (int i = 0; i < 10000 && !(r = cond(arg)); i++)
		nanosleep(&nap, NULL);
	return r;
}

int sk_test_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
}

int sk_test_exists(const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	const char *colon;

	if (!strncmp(name, "posix:", 6) || (!strchr(name, ':') && strcmp(name, "anon"))) {
		const char *base = strncmp(name, "posix:", 6) ? name : name + 6;
		snprintf(path, sizeof(path), "/dev/shm/%s", base + (base[0] == '/'));
		return lstat(path, &st) == 0;
	}
	if (!strncmp(name, "file:", 5))
		return lstat(name + 5, &st) == 0;
	if (!strncmp(name, "sysv:/", 6) && (colon = strrchr(name, ':')) > name + 5) {
		snprintf(path, sizeof(path), "%.*s", (int)(colon - name - 5), name + 5);
		key_t k = ftok(path, (int)strtol(colon + 1, NULL, 0));
		return k != -1 && shmget(k, 0, 0) >= 0;
	}
	if (!strncmp(name, "sysv:", 5) && strncmp(name, "sysv:id=", 8))
		return shmget((key_t)strtoul(name + 5, NULL, 0), 0, 0) >= 0;
	return -1;
}

int sk_test_drop_root(void)
{
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
		return -errno;
	return 0;
}
