/*
 * test_attack.c - a second, unprivileged user (made here with useradd)
 * does what the permissions it was given allow, against root's segments:
 * truncates a 0666 channel, bus or journal under root's readers and
 * sleepers, plants symbolic links where root will create.  Root's process
 * must neither die nor hang nor write through the link: each call gets an
 * error that names the cause.  Control tests show the same truncation
 * kills a process whose SIGBUS guard is off (guard.c), and that the guard
 * leaves faults outside shmkit's mappings to the default action.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

#define SEC 1000000000LL

/* ---- the second user ---------------------------------------------------- */

static char user[32];
static uid_t user_uid;
static gid_t user_gid;

static void user_del(void)
{
	char cmd[96];

	if (!user[0])
		return;
	snprintf(cmd, sizeof(cmd), "userdel %s >/dev/null 2>&1", user);
	if (system(cmd)) { /* nothing more to do: the name carries the run id */ }
	user[0] = '\0';
}

static void fini(void)
{
	user_del();
	sk_test_cleanup();
}

/* Make the attacker: a system user with no home, named after the run and
 * this test process.  Skips where that cannot be done (not root). */
static void user_make(void)
{
	char cmd[160];

	if (geteuid() != 0)
		cr_skip_test("needs root to run useradd");
	snprintf(user, sizeof(user), "sku%s%x", sk_test_run_id(), (unsigned)getpid());
	user[31] = '\0';
	snprintf(cmd, sizeof(cmd), "useradd -M -N -r -s /usr/sbin/nologin %s >/dev/null 2>&1", user);
	if (system(cmd)) {
		user[0] = '\0';
		cr_skip_test("useradd failed");
	}
	struct passwd *pw = getpwnam(user);
	cr_assert(pw, "useradd made no %s", user);
	user_uid = pw->pw_uid;
	user_gid = pw->pw_gid;
}

/* Run fn(arg) in a child as the attacker; its exit code. */
struct as_user { int (*fn)(void *); void *arg; };

static int become(void *p)
{
	struct as_user *a = p;

	if (setgroups(0, NULL) || setgid(user_gid) || setuid(user_uid))
		return 90;
	if (geteuid() == 0)
		return 91;
	return a->fn(a->arg);
}

static int as_user(int (*fn)(void *), void *arg)
{
	struct as_user a = { fn, arg };
	pid_t pid = sk_test_fork(become, &a);

	cr_assert_gt(pid, 0);
	return sk_test_reap(pid);
}

/* The attacks themselves, run as the user. */
static int truncate_path(void *path)
{
	int fd = open(path, O_WRONLY | O_NOFOLLOW);
	if (fd < 0)
		return 10;
	int r = ftruncate(fd, 0) ? 11 : 0;
	close(fd);
	return r;
}

static int plant_link(void *arg)
{
	const char *const *p = arg; /* link, target */
	return symlink(p[1], p[0]) ? 20 : 0;
}

/* "/dev/shm/x" for "posix:/x" */
static const char *shm_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/dev/shm%s", strchr(name, '/'));
	return buf;
}

TestSuite(attack, .timeout = 60, .fini = fini);

/* ---- truncation ----------------------------------------------------------- */

struct sleeper { shmkit_chan *ch; shmkit_sub *sub; shmkit_journal *j; ssize_t r; };

static void *chan_sleep(void *p)
{
	struct sleeper *s = p;
	char buf[64];
	s->r = shmkit_chan_recv(s->ch, buf, sizeof(buf), 30 * SEC);
	return NULL;
}

/* A 0666 channel truncated to 0 by the other user: root's reader, which
 * holds a peeked message in place, reads it without dying, every call on
 * the handle says -EIO, and a consumer asleep in recv wakes with -EIO
 * (before this, the read died of SIGBUS and the sleeper slept its whole
 * timeout). */
Test(attack, truncated_channel_is_eio_not_sigbus)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts co = { .capacity = 8, .max_msg = 64, .mode = 0666,
	                               .flags = SHMKIT_EXCL };
	shmkit_chan *ch, *sleeper_ch;
	const void *p;
	char path[128], buf[64];
	pthread_t t;

	user_make();
	cr_assert_eq(shmkit_chan_create(&ch, name, &co), 0);
	cr_assert_eq(shmkit_chan_open(&sleeper_ch, name, NULL), 0);
	cr_assert_eq(shmkit_chan_send(ch, "hello", 5, 0), 0);
	cr_assert_eq(shmkit_chan_peek(ch, &p, 0), 5);
	struct sleeper s = { .ch = sleeper_ch };
	cr_assert_eq(shmkit_chan_recv(sleeper_ch, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert_eq(pthread_create(&t, NULL, chan_sleep, &s), 0);

	cr_assert_eq(as_user(truncate_path, (void *)shm_path(path, sizeof(path), name)), 0);

	volatile const char *v = p; /* the user's own read of a lent buffer */
	char c = v[0];
	(void)c;
	cr_expect_eq(shmkit_chan_release(ch), -EIO);
	cr_expect(strstr(shmkit_errdetail(), "truncated") || strstr(shmkit_errdetail(), "lost"),
	          "%s", shmkit_errdetail());
	cr_expect_eq(shmkit_chan_send(ch, "x", 1, 0), -EIO);
	cr_expect_eq(shmkit_chan_recv(ch, buf, sizeof(buf), 0), -EIO);
	pthread_join(t, NULL);
	cr_expect_eq(s.r, -EIO, "sleeping recv gave %zd", s.r);
	cr_expect_eq(shmkit_chan_close(sleeper_ch), 0);
	cr_expect_eq(shmkit_chan_close(ch), 0);
}

static void *sub_sleep(void *p)
{
	struct sleeper *s = p;
	char buf[64];
	s->r = shmkit_sub_recv(s->sub, buf, sizeof(buf), NULL, 30 * SEC);
	return NULL;
}

/* The same for a bus: a subscriber asleep on the futex wakes with -EIO
 * (it slept for good before), the publisher's next call is -EIO. */
Test(attack, truncated_bus_wakes_its_sleeper_with_eio)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_bus_opts bo = { .capacity = 8, .max_msg = 64, .mode = 0666,
	                              .flags = SHMKIT_EXCL };
	shmkit_bus *b;
	char path[128];
	pthread_t t;
	struct sleeper s = { 0 };

	user_make();
	cr_assert_eq(shmkit_bus_create(&b, name, &bo), 0);
	cr_assert_eq(shmkit_bus_subscribe(&s.sub, b, NULL), 0);
	cr_assert_eq(pthread_create(&t, NULL, sub_sleep, &s), 0);
	cr_assert_eq(as_user(truncate_path, (void *)shm_path(path, sizeof(path), name)), 0);
	pthread_join(t, NULL);
	cr_expect_eq(s.r, -EIO, "sleeping subscriber gave %zd", s.r);
	int r = shmkit_bus_publish(b, "x", 1, 0);
	cr_expect_eq(r, -EIO, "publish gave %d", r);
	shmkit_bus_unsubscribe(s.sub);
	cr_expect_eq(shmkit_bus_close(b), 0);
}

static void *journal_sleep(void *p)
{
	struct sleeper *s = p;
	struct shmkit_record rec;
	s->r = shmkit_journal_next(s->j, &rec, 30 * SEC);
	return NULL;
}

/* A 0666 journal whose journal.meta the other user truncates: a reader
 * waiting for the next record wakes with -EIO. */
Test(attack, truncated_journal_meta_wakes_its_reader_with_eio)
{
	char dir[96], meta[128], base[64];
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                  .file_size = 1 << 16, .max_record = 256, .mode = 0666 };
	shmkit_journal *w;
	struct sleeper s = { 0 };
	struct shmkit_record rec;
	pthread_t t;

	user_make();
	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "attack-journal"));
	snprintf(meta, sizeof(meta), "%s/journal.meta", dir);
	cr_assert_eq(shmkit_journal_open(&w, dir, &wo), 0);
	cr_assert_eq(shmkit_journal_append(w, "one", 3, NULL), 0);
	cr_assert_eq(shmkit_journal_open(&s.j, dir, NULL), 0);
	cr_assert_eq(shmkit_journal_next(s.j, &rec, 0), 1);
	cr_assert_eq(pthread_create(&t, NULL, journal_sleep, &s), 0);
	cr_assert_eq(as_user(truncate_path, meta), 0);
	pthread_join(t, NULL);
	cr_expect_eq(s.r, -EIO, "sleeping reader gave %zd", s.r);
	shmkit_journal_close(s.j);
	shmkit_journal_close(w);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

/* Controls.  With the guard off (SHMKIT_SIGBUS=0, read before the first
 * mapping) the same read of a truncated channel kills the process with
 * SIGBUS: the guard, not luck, is what keeps the test above alive. */
static int read_after_truncate(void *unused)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts co = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	const void *p;
	char path[128];

	if (shmkit_chan_create(&ch, name, &co) || shmkit_chan_send(ch, "hello", 5, 0) != 0 ||
	    shmkit_chan_peek(ch, &p, 0) != 5)
		return 30;
	int fd = open(shm_path(path, sizeof(path), name), O_WRONLY);
	if (fd < 0 || ftruncate(fd, 0))
		return 31;
	close(fd);
	shmkit_seg_remove(name);
	volatile const char *v = p;
	return v[0] == 0 ? 0 : 32; /* zeros: the guard replaced the mapping */
}

static int unguarded(void *arg)
{
	setenv("SHMKIT_SIGBUS", "0", 1);
	return read_after_truncate(arg);
}

/* Run fn in a child: did it die of SIGBUS?  Under AddressSanitizer, whose
 * handler reports a SIGBUS and then aborts, SIGABRT counts too. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_ABORTS 1
#else
#define SANITIZER_ABORTS 0
#endif

static void expect_sigbus_death(int (*fn)(void *))
{
	pid_t pid = sk_test_fork(fn, NULL);
	int st;

	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFSIGNALED(st) && (WTERMSIG(st) == SIGBUS ||
	                              (SANITIZER_ABORTS && WTERMSIG(st) == SIGABRT)),
	          "status %#x", st);
}

Test(attack, without_the_guard_the_same_read_is_sigbus)
{
	expect_sigbus_death(unguarded);
	pid_t pid = sk_test_fork(read_after_truncate, NULL);
	cr_assert_gt(pid, 0);
	cr_expect_eq(sk_test_reap(pid), 0);
}

/* A fault in a mapping that is not shmkit's still takes the default
 * action with the guard installed: the guard hides nothing of the
 * program's own. */
static int own_mapping_fault(void *unused)
{
	const char *name = sk_test_new_name("posix");
	struct shmkit_chan_opts co = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	char path[96], base[64];

	if (shmkit_chan_create(&ch, name, &co)) /* installs the guard */
		return 40;
	shmkit_chan_close(ch);
	shmkit_seg_remove(name);
	snprintf(path, sizeof(path), "/tmp/%s", sk_test_base(base, sizeof(base), "own-map"));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, 4096))
		return 41;
	unlink(path);
	volatile char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || ftruncate(fd, 0))
		return 42;
	return m[0]; /* SIGBUS */
}

Test(attack, faults_outside_shmkit_keep_the_default_action)
{
	expect_sigbus_death(own_mapping_fault);
}

/* ---- planted links -------------------------------------------------------- */

/* Links the other user plants where root will create: a /dev/shm name, a
 * file: path, a journal directory, a System V lock file.  Root's create
 * fails with an error that names the cause, and the link's target (a root
 * file) is unchanged. */
Test(attack, planted_links_are_never_followed)
{
	char target[96], base[64], link[128], tmp[64];
	struct stat before, after;

	user_make();
	snprintf(target, sizeof(target), "/tmp/%s", sk_test_base(base, sizeof(base), "root-file"));
	int fd = open(target, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "root", 4), 4);
	close(fd);
	cr_assert_eq(stat(target, &before), 0);

	/* posix name */
	const char *pn = sk_test_new_name("posix");
	shm_path(link, sizeof(link), pn);
	const char *pl[2] = { link, target };
	cr_assert_eq(as_user(plant_link, pl), 0);
	shmkit_seg *s;
	struct shmkit_seg_opts so = { .size = 4096, .flags = SHMKIT_EXCL };
	cr_expect_eq(shmkit_seg_create(&s, pn, &so), -EEXIST);
	so.flags = 0;
	int r = shmkit_seg_create(&s, pn, &so); /* create-or-open */
	cr_expect(r == -ELOOP || r == -EEXIST, "create-or-open through a link: %d", r);
	cr_expect_eq(shmkit_seg_open(&s, pn, NULL), -ELOOP);
	unlink(link);

	/* file: path */
	snprintf(link, sizeof(link), "/tmp/%s", sk_test_base(tmp, sizeof(tmp), "planted-file"));
	char fname[160];
	snprintf(fname, sizeof(fname), "file:%s", link);
	cr_assert_eq(as_user(plant_link, pl), 0);
	so.flags = SHMKIT_EXCL;
	cr_expect_eq(shmkit_seg_create(&s, fname, &so), -EEXIST);
	cr_expect_eq(shmkit_seg_open(&s, fname, NULL), -ELOOP);
	unlink(link);

	/* journal directory */
	snprintf(link, sizeof(link), "/tmp/%s", sk_test_base(tmp, sizeof(tmp), "planted-journal"));
	char jdir[96];
	snprintf(jdir, sizeof(jdir), "/tmp/%s", sk_test_base(tmp, sizeof(tmp), "root-dir"));
	cr_assert_eq(mkdir(jdir, 0700), 0);
	const char *jl[2] = { link, jdir };
	cr_assert_eq(as_user(plant_link, jl), 0);
	shmkit_journal *j;
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	cr_expect_eq(shmkit_journal_open(&j, link, &wo), -ELOOP);
	unlink(link);
	char probe[128];
	snprintf(probe, sizeof(probe), "%s/journal.meta", jdir);
	cr_expect_neq(access(probe, F_OK), 0, "root wrote through the user's link");
	rmdir(jdir);

	/* System V lock file */
	char sname[32];
	cr_assert(sk_test_name(sname, sizeof(sname), "sysv"));
	long key = strtol(sname + 5, NULL, 0);
	snprintf(link, sizeof(link), "/dev/shm/.shmkit-sysv-%08x.lock", (unsigned)key);
	cr_assert_eq(as_user(plant_link, pl), 0);
	so.flags = SHMKIT_EXCL;
	r = shmkit_seg_create(&s, sname, &so);
	cr_expect_eq(r, -ELOOP, "sysv create with a planted lock link: %d (%s)", r, shmkit_errdetail());
	if (r == 0) {
		shmkit_seg_close(s);
		shmkit_seg_remove(sname);
	}
	cr_expect_eq(sk_test_exists(sname), 0, "a segment was left behind");
	unlink(link);

	cr_assert_eq(stat(target, &after), 0);
	cr_expect_eq(after.st_size, before.st_size);
	cr_expect_eq(after.st_mode, before.st_mode);
	cr_expect_eq(after.st_uid, 0u);
	cr_expect_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	unlink(target);
}

/* A journal directory the other user owns (made by them, where root is
 * asked to write): root's writer refuses it unless told to trust it. */
static int make_dir(void *path)
{
	return mkdir(path, 0777) ? 50 : 0;
}

Test(attack, journal_directory_of_another_user_is_refused)
{
	char dir[96], base[64], cmd[160];
	shmkit_journal *j = NULL;
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                  .file_size = 1 << 16, .max_record = 256 };

	user_make();
	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "user-journal"));
	cr_assert_eq(as_user(make_dir, dir), 0);
	int r = shmkit_journal_open(&j, dir, &wo);
	cr_expect_eq(r, -EPERM, "%d %s", r, shmkit_errdetail());
	cr_expect(strstr(shmkit_errdetail(), "belongs to uid"), "%s", shmkit_errdetail());
	wo.flags |= SHMKIT_JOURNAL_ANY_OWNER;
	cr_expect_eq(shmkit_journal_open(&j, dir, &wo), 0);
	if (j)
		shmkit_journal_close(j);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}
