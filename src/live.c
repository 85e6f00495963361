/*
 * live.c - is a peer process still alive?
 *
 * A pid alone does not name a process: pids are reused.  A (pid, start)
 * pair does, where start is field 22 of /proc/PID/stat (clock ticks since
 * boot at which the process started).  Shared structures record the pair;
 * a checker compares it with what /proc says now.
 *
 * /proc/PID/stat reads "PID (COMM) STATE PPID ...".  COMM is chosen by the
 * process (prctl PR_SET_NAME) and may hold spaces and ')', so fields are
 * counted from the LAST ')' in the line, never by splitting on spaces from
 * the start.
 *
 * A zombie (state Z or X) counts as dead: it will never again unlock,
 * post or publish anything, which is what callers ask about.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct proc_info {
	char state;      /* field 3 */
	uint64_t start;  /* field 22 */
};

/* Parse the text of /proc/PID/stat.  0, or -EBADMSG if it is not shaped
 * as expected. */
static int parse_stat(char *buf, struct proc_info *pi)
{
	char *p = strrchr(buf, ')');
	char *end;

	if (!p || p[1] != ' ' || p[2] == '\0')
		return -EBADMSG;
	p += 2;
	pi->state = *p; /* field 3 */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EBADMSG;
		p++;
	}
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (end == p || errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EBADMSG;
	pi->start = v;
	return 0;
}

/* Read /proc/PID/stat.  0, -ENOENT if there is no such process (or it is
 * hidden from us), another negative errno if /proc cannot tell. */
static int read_stat(pid_t pid, struct proc_info *pi)
{
	char path[32], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ESRCH ? -ENOENT : sk_neg_errno();
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	int err = n < 0 ? sk_neg_errno() : 0;
	close(fd);
	if (err)
		return err == -ESRCH ? -ENOENT : err; /* exited while open */
	buf[n] = '\0';
	return parse_stat(buf, pi);
}

uint64_t sk_proc_start(pid_t pid)
{
	struct proc_info pi;

	if (pid <= 0 || read_stat(pid, &pi) != 0)
		return 0;
	return pi.start;
}

/* kill(pid, 0): 1 exists (EPERM: exists, not ours), 0 gone. */
static int pid_exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

int sk_proc_alive(pid_t pid, uint64_t start)
{
	struct proc_info pi;

	if (pid <= 0 || !pid_exists(pid))
		return 0;
	int r = read_stat(pid, &pi);
	if (r != 0) {
		/* Gone since kill(), or /proc hides it (hidepid) or is
		 * missing: ask kill() again to tell the cases apart. */
		if (!pid_exists(pid))
			return 0;
		return start == 0 ? 1 : -1;
	}
	if (pi.state == 'Z' || pi.state == 'X')
		return 0;
	return start == 0 || pi.start == start;
}

/* Cache of this process's start time, keyed by pid so that a forked
 * child, whose getpid() differs, recomputes its own.  The key alone would
 * be fooled if a descendant got the pid of a dead ancestor whose value it
 * inherited, so a fork handler also clears the key in every child of
 * fork(); the key still covers raw clone() and vfork(), which run no
 * handlers.  Threads may race to fill the cache; they compute the same
 * value, so the race is benign. */
static uint64_t self_start;
static pid_t self_pid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_forget(void)
{
	/* Relaxed: the child has one thread while fork handlers run. */
	sk_store_relaxed(&self_pid, 0);
}

static void self_register(void)
{
	pthread_atfork(NULL, NULL, self_forget);
}

uint64_t sk_self_start(void)
{
	pid_t pid = getpid();

	/* Acquire: pairs with the release store of self_pid below, so a
	 * matching pid guarantees self_start holds that pid's value. */
	if (sk_load_acquire(&self_pid) == pid)
		return sk_load_relaxed(&self_start); /* ordered by the acquire above */
	pthread_once(&self_once, self_register);
	uint64_t start = sk_proc_start(pid);
	if (start == 0)
		return 0; /* /proc unreadable: do not cache a non-answer */
	/* Relaxed: published by the release store of self_pid next. */
	sk_store_relaxed(&self_start, start);
	/* Release: pairs with the acquire load above in another thread. */
	sk_store_release(&self_pid, pid);
	return start;
}
