/*
 * lib_test.h - small utilities shared by every shmkit test binary (linked
 * into each of them by the Makefile).  Plain C, no Criterion asserts, so
 * forked children may call them too.
 *
 *   Unique names   sk_test_name() gives a segment name no other test
 *                  process uses (the pid is in it), for any backend;
 *                  sk_test_remove() removes whatever such a name made;
 *                  sk_test_new_name() + sk_test_cleanup() (.fini) do both.
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
#include <sys/types.h>

/* Write a unique segment name into buf for the backend named by prefix:
 *   "posix" -> "posix:/sktest-PID-N"        "file"  -> "file:/tmp/sktest-PID-N"
 *   "sysv"  -> "sysv:0xKEY" (key from PID, N) "memfd" -> "memfd:sktest-PID-N"
 *   "ftok"  -> "sysv:/tmp/sktest-PID-N.ftok:1" (creates that empty file)
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

struct shmkit_seg_stat;
/* How many times shmkit_seg_list() reports the segment with this canonical
 * name (or, name NULL, this System V shmid); the last match goes to *st
 * (may be NULL).  Negative errno if the listing fails. */
int sk_test_find_seg(const char *name, int shmid, struct shmkit_seg_stat *st);

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
