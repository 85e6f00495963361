/*
 * lib_test.h - small utilities shared by every shmkit test binary (linked
 * into each of them by the Makefile).  Plain C, no Criterion asserts, so
 * forked children may call them too.
 *
 * THE NAMING RULE: every object a test makes that outlives a process - a
 * file in /dev/shm, a System V segment, a file or directory in /tmp or
 * /var/tmp (journals, ftok files, fifos, links, mkdtemp directories) -
 * gets its name from the helpers below, never from a pid or a fixed string
 * of its own.  Names carry the run id (SKTEST_RUN, exported by
 * scripts/run-tests.sh and scripts/stress.sh; without them, the pid of the
 * test binary), and the scripts check after a run only the names of that
 * run: whatever another program on the machine makes meanwhile is not the
 * suite's, and whatever of the run's is left fails the run.
 *   /dev/shm, /tmp, /var/tmp   "sktest-RUN-PID-TAG": sk_test_base(), or
 *                              sk_test_name() for a segment name.  A name
 *                              may have a prefix before it ("sem.", a
 *                              directory) and a suffix after it
 *                              (mkdtemp's "-XXXXXX", ".ftok").
 *   System V keys              sk_test_sysv_key(): 01 in the top two bits,
 *                              12 bits of the run id, 12 of the pid and a
 *                              6-bit counter; the library's lock file
 *                              /dev/shm/.shmkit-sysv-KEY.lock follows from
 *                              the key.  (ftok keys come from an inode: an
 *                              ftok segment is checked through its file,
 *                              "/tmp/sktest-RUN-PID-N.ftok".)
 * Memfd names and abstract sockets leave nothing behind; they may use
 * sk_test_base() too.  Segments made by other programs (ipcmk: a random
 * key) cannot carry the run id: the test removes them itself.
 *
 *   Unique names   sk_test_name() gives a segment name no other test
 *                  process uses (run id and pid are in it), for any
 *                  backend; sk_test_remove() removes whatever such a name
 *                  made; sk_test_new_name() + sk_test_cleanup() (.fini) do
 *                  both.  sk_test_base() and sk_test_sysv_key() for names
 *                  made by hand (see the rule above).
 *   Processes      sk_test_fork() runs a function in a child that dies with
 *                  the test; sk_test_spawn()/sk_test_finish()/sk_test_run()
 *                  exec a helper program from the directory of the test
 *                  binaries (a truly unrelated process) and capture its
 *                  stdout and exit code; sk_test_reap() waits for a child.
 *   Waiting        sk_test_eventually() polls a condition, bounded.
 *   Listing        sk_test_find_seg() looks a segment up in shmkit_seg_list().
 *   Leaks          sk_test_fd_count() counts this process's open fds;
 *                  sk_test_exists() checks a name's object without shmkit.
 *   Privileges     sk_test_drop_root() (in a child) for permission tests.
 *
 * Exit codes returned by sk_test_reap/finish/run: 0..255 = exit status,
 * 128 + N = killed by signal N, -1 = could not wait.
 */
#ifndef SK_LIB_TEST_H
#define SK_LIB_TEST_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The run id: SKTEST_RUN if it is 1-8 lowercase hex digits, else this
 * process's pid in hex, then exported as SKTEST_RUN to everything it
 * starts (lib_test.c does so in a constructor of every test binary).
 * Inline, like the two below: programs that do not link lib_test.c (the
 * stress programs) name things by the same rule. */
static inline const char *sk_test_run_id(void)
{
	static char id[9];
	const char *env = getenv("SKTEST_RUN");
	size_t n = env ? strspn(env, "0123456789abcdef") : 0;

	if (id[0])
		return id;
	if (n >= 1 && n <= 8 && env[n] == '\0') {
		memcpy(id, env, n + 1);
		return id;
	}
	snprintf(id, sizeof(id), "%x", (unsigned)getpid());
	setenv("SKTEST_RUN", id, 1);
	return id;
}

/* "sktest-RUN-PID-TAG" into buf (RUN the run id, PID this process's):
 * the base name of anything a test makes by hand in /dev/shm, /tmp or
 * /var/tmp.  Returns buf, or NULL if it does not fit. */
static inline char *sk_test_base(char *buf, size_t len, const char *tag)
{
	int w = snprintf(buf, len, "sktest-%s-%u-%s", sk_test_run_id(), (unsigned)getpid(), tag);

	return w > 0 && (size_t)w < len ? buf : NULL;
}

/* The run's System V keys: 01 in the top two bits, then 12 bits of the
 * run id, 12 of the pid, 6 of n.  sk_test_name("sysv") uses n 0..31; a
 * test picking keys itself uses n 32..63.  The scripts check the keys
 * (and the lock files /dev/shm/.shmkit-sysv-KEY.lock) whose top 14 bits
 * are the run's. */
#define SK_TEST_SYSV_FIXED 0x40000000u
static inline unsigned sk_test_sysv_key(unsigned n)
{
	unsigned run = (unsigned)strtoul(sk_test_run_id(), NULL, 16) & 0xfffu;

	return SK_TEST_SYSV_FIXED | run << 18 | ((unsigned)getpid() & 0xfffu) << 6 | (n & 0x3fu);
}

/* Write a unique segment name into buf for the backend named by prefix
 * (BASE = sk_test_base() with the tag N):
 *   "posix" -> "posix:/BASE"                "file"  -> "file:/tmp/BASE"
 *   "sysv"  -> "sysv:0xKEY" (sk_test_sysv_key(M), M counting sysv names
 *              of this process modulo 32)   "memfd" -> "memfd:BASE"
 *   "ftok"  -> "sysv:/tmp/BASE.ftok:1" (creates that empty file)
 *   "anon"  -> "anon"
 * N counts per process.  Returns buf, or NULL for an unknown prefix or a
 * too-small buffer. */
char *sk_test_name(char *buf, size_t len, const char *prefix);

/* sk_test_name() into a slot of this process that sk_test_cleanup()
 * removes; the string lives as long as the process.  At most 32 per
 * process; NULL when full or for an unknown prefix. */
const char *sk_test_new_name(const char *prefix);

/* sk_test_remove() every name from sk_test_new_name() in this process;
 * fit for TestSuite(x, .fini = sk_test_cleanup), which also runs after a
 * failed assertion. */
void sk_test_cleanup(void);

/* Remove what a name from sk_test_name made: the segment (ignoring
 * -ENOENT) and the ftok file of an "ftok" name.  Safe to call twice. */
void sk_test_remove(const char *name);

/* Directory holding the test binaries and helpers (dirname of
 * /proc/self/exe), without a trailing slash. */
const char *sk_test_dir(void);

/* Fork a child running fn(arg) and _exit() with its return value.  The
 * child gets SIGKILL if the parent dies.  Returns the pid, -1 on error. */
pid_t sk_test_fork(int (*fn)(void *arg), void *arg);

/* Wait for a child; see the exit code convention above. */
int sk_test_reap(pid_t pid);

/* Start a helper: argv[0] is a program name in sk_test_dir() (e.g.
 * "helper_seg") or, if it holds a '/', a path ("/usr/bin/env"); argv is
 * NULL-terminated.  Its stdin is in_fd (-1:
 * /dev/null); if out_fd is not NULL its stdout goes to a pipe whose read
 * end is stored there, else stdout is inherited.  Returns the pid or a
 * negative errno. */
pid_t sk_test_spawn(const char *const argv[], int in_fd, int *out_fd);

/* Read out_fd to EOF into buf (NUL-terminated, truncated to len - 1),
 * close it, and reap pid.  out_fd may be -1.  Returns the exit code. */
int sk_test_finish(pid_t pid, int out_fd, char *buf, size_t len);

/* Run a helper to completion: sk_test_run(buf, len, "helper_seg", "read",
 * name, "0", "5", NULL).  Captures stdout into buf; returns the exit code
 * or a negative errno if it could not be started. */
int sk_test_run(char *buf, size_t len, const char *prog, ...)
	__attribute__((sentinel));

struct shmkit_seg_info;
/* How many times shmkit_seg_list() reports the segment with this canonical
 * name (or, name NULL, this System V shmid); the last match goes to *st
 * (may be NULL).  Negative errno if the listing fails. */
int sk_test_find_seg(const char *name, int shmid, struct shmkit_seg_info *st);

/* Call cond(arg) until it returns non-zero, at most ~10 s (1 ms naps):
 * for states another process may disturb briefly, e.g. a System V attach
 * count while some `shmkit ls` attaches to read headers.  Returns cond's
 * last result (0 = never held). */
int sk_test_eventually(int (*cond)(void *arg), void *arg);

/* Number of open file descriptors of this process (/proc/self/fd). */
int sk_test_fd_count(void);

/* 1 if the kernel object behind a posix, sysv (key or ftok) or file name
 * exists, checked without shmkit (/dev/shm, shmget, lstat); 0 if not;
 * -1 for names it cannot check (anon, memfd, sysv:id=). */
int sk_test_exists(const char *name);

/* Become uid/gid 65534 ("nobody") with no supplementary groups, dropping
 * root's capabilities; for permission tests, in a child only.  0 or a
 * negative errno. */
int sk_test_drop_root(void);

#endif /* SK_LIB_TEST_H */
