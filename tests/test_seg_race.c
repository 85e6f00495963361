/*
 * test_seg_race.c - the managed-segment init protocol under contention:
 * several processes (forked and exec'd) racing to create-or-open one name,
 * exactly one creator; an opener waiting for a creator slow to publish
 * (the object built by hand, empty first, then with its header in INIT
 * state); an opener giving up with -ETIMEDOUT on one that never publishes.
 *
 * Racers start behind a barrier: they block reading a pipe the test closes.
 * Nothing asserts on timing: a "slow" creator is slow only in that the test
 * publishes after starting the opener; the opener succeeds whichever runs
 * first, and its timeout is generous.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "peer.h"
#include "seg.h"
#include "lib_test.h"

#define SEC 1000000000LL
#define NFORK 3
#define NEXEC 3
#define RACE_SIZE 4096

TestSuite(seg_race, .timeout = 90, .fini = sk_test_cleanup);

/* Results of the forked racers, in MAP_SHARED|MAP_ANONYMOUS memory. */
struct race_out {
	int created;
	char data[64];
};

struct racer {
	const char *name;
	int barrier;           /* read end: EOF means go */
	int barrier_w;         /* write end, closed in the child */
	struct race_out *out;
};

static int race_init(void *data, size_t size, void *arg)
{
	snprintf(data, size, "init:%d", (int)getpid());
	*(int *)arg = 1;
	return 0;
}

static int race_is_mine(const char *data)
{
	char mine[32];

	snprintf(mine, sizeof(mine), "init:%d", (int)getpid());
	return !strcmp(data, mine);
}

static int racer(void *p)
{
	struct racer *r = p;
	struct shmkit_seg_opts o = { .size = RACE_SIZE, .init_timeout_ns = 30 * SEC };
	shmkit_seg *s;
	char c;

	close(r->barrier_w);
	while (read(r->barrier, &c, 1) > 0)
		;
	int err = sk_seg_create_kind(&s, r->name, &o, SHMKIT_KIND_BYTES, race_init, &r->out->created);
	if (err)
		return 10;
	snprintf(r->out->data, sizeof(r->out->data), "%s", (char *)shmkit_seg_data(s));
	/* Racers may all initialise an object of their own; the creator is
	 * the one whose object got the name (seg.h). */
	r->out->created = r->out->created && race_is_mine(r->out->data);
	shmkit_seg_close(s);
	return 0;
}

static void check_race(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct race_out *outs = mmap(NULL, sizeof(*outs) * NFORK, PROT_READ | PROT_WRITE,
	                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t fpid[NFORK], xpid[NEXEC];
	int xout[NEXEC], rc[NFORK + NEXEC], bar[2];
	char xbuf[NEXEC][128];

	cr_assert_neq(outs, MAP_FAILED);
	memset(outs, 0, sizeof(*outs) * NFORK);
	cr_assert_eq(pipe2(bar, O_CLOEXEC), 0);
	for (int i = 0; i < NFORK; i++) {
		struct racer r = { .name = name, .barrier = bar[0], .barrier_w = bar[1], .out = &outs[i] };
		fpid[i] = sk_test_fork(racer, &r);
	}
	const char *argv[] = { "helper_seg", "race", name, "4096", NULL };
	for (int i = 0; i < NEXEC; i++)
		xpid[i] = sk_test_spawn(argv, bar[0], &xout[i]);
	close(bar[1]); /* go */
	close(bar[0]);
	for (int i = 0; i < NFORK; i++)
		rc[i] = fpid[i] > 0 ? sk_test_reap(fpid[i]) : -1;
	for (int i = 0; i < NEXEC; i++)
		rc[NFORK + i] = xpid[i] > 0 ? sk_test_finish(xpid[i], xout[i], xbuf[i], sizeof(xbuf[i])) : -1;

	int creators = 0;
	char creator_data[64] = "";
	for (int i = 0; i < NFORK + NEXEC; i++)
		cr_assert_eq(rc[i], 0, "racer %d exited %d (%s)", i, rc[i], i >= NFORK ? xbuf[i - NFORK] : "");
	for (int i = 0; i < NFORK; i++) {
		if (outs[i].created) {
			creators++;
			snprintf(creator_data, sizeof(creator_data), "%s", outs[i].data);
		}
	}
	for (int i = 0; i < NEXEC; i++) {
		if (!strncmp(xbuf[i], "created ", 8)) {
			creators++;
			snprintf(creator_data, sizeof(creator_data), "%s", xbuf[i] + 8);
		}
	}
	cr_assert_eq(creators, 1, "exactly one racer creates");
	cr_assert_eq(strncmp(creator_data, "init:", 5), 0, "%s", creator_data);
	for (int i = 0; i < NFORK; i++)
		cr_assert_str_eq(outs[i].data, creator_data, "racer %d disagrees", i);
	for (int i = 0; i < NEXEC; i++) {
		const char *space = strchr(xbuf[i], ' ');
		cr_assert_not_null(space);
		cr_assert_str_eq(space + 1, creator_data, "helper %d disagrees", i);
	}
	munmap(outs, sizeof(*outs) * NFORK);
}

Test(seg_race, create_or_open_posix) { check_race("posix"); }
Test(seg_race, create_or_open_sysv) { check_race("sysv"); }
Test(seg_race, create_or_open_file) { check_race("file"); }

/* ---- slow creator, built by hand ---------------------------------------- */

static struct sk_seg_hdr *hdr_of(shmkit_seg *s)
{
	return (struct sk_seg_hdr *)((char *)shmkit_seg_data(s) - SK_HDR_SIZE);
}

struct opener {
	const char *name;
	int64_t init_timeout_ns;
	const char *expect;
};

static int opener(void *p)
{
	struct opener *a = p;
	struct shmkit_seg_opts o = { .init_timeout_ns = a->init_timeout_ns };
	shmkit_seg *s;
	int err = shmkit_seg_open(&s, a->name, &o);

	if (err)
		return 20 + (-err & 63);
	int ok = !strcmp(shmkit_seg_data(s), a->expect);
	shmkit_seg_close(s);
	return ok ? 0 : 10;
}

/* Publish like a creator does: release-store READY, wake futex waiters. */
static void publish(struct sk_seg_hdr *h)
{
	/* Release: orders the header and data written above before READY;
	 * pairs with the opener's acquire load of state in seg.c. */
	sk_store_release(&h->state, SK_STATE_READY);
	sk_futex_wake(&h->state, -1);
}

/* A real header copied into an object made raw: empty at first (a creator
 * between shm_open and ftruncate), then sized with the header in INIT
 * state, then published.  Openers (forked and exec'd) started while it was
 * empty must end up with the data. */
Test(seg_race, opener_waits_for_slow_creator)
{
	const char *model = sk_test_new_name("posix"), *name = sk_test_new_name("posix");
	struct shmkit_seg_opts mo = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *m;
	char out[128];
	int out_fd;

	cr_assert_eq(shmkit_seg_create(&m, model, &mo), 0);
	strcpy(shmkit_seg_data(m), "slow but sure");
	size_t map_size = hdr_of(m)->map_size;
	int fd = shm_open(name + 6, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	struct opener a = { .name = name, .init_timeout_ns = 60 * SEC, .expect = "slow but sure" };
	pid_t child = sk_test_fork(opener, &a);
	const char *argv[] = { "helper_seg", "read", name, "0", "64", "t=60000", NULL };
	pid_t helper = sk_test_spawn(argv, -1, &out_fd);
	sched_yield();
	cr_assert_eq(ftruncate(fd, (off_t)map_size), 0);
	char *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	cr_assert_neq(p, MAP_FAILED);
	memcpy(p, hdr_of(m), map_size);
	struct sk_seg_hdr *h = (struct sk_seg_hdr *)p;
	sk_store_relaxed(&h->state, SK_STATE_INIT);
	sched_yield();
	publish(h);
	int crc = sk_test_reap(child);
	int hrc = sk_test_finish(helper, out_fd, out, sizeof(out));
	munmap(p, map_size);
	shmkit_seg_close(m);
	cr_assert_eq(crc, 0, "forked opener: %d", crc);
	cr_assert_eq(hrc, 0, "helper: %d %s", hrc, out);
	cr_assert_str_eq(out, "slow but sure");
}

/* Stand in for a creator still initialising a System V segment: hold
 * byte 0 of its lock file through a description of our own (peer.h).
 * Other backends' creators work unnamed and need no lock. */
static void creator_lock(struct sk_peer *p, shmkit_seg *s)
{
	*p = (struct sk_peer)SK_PEER_INIT;
	if (shmkit_seg_backend(s) == SHMKIT_SYSV) {
		cr_assert_eq(sk_peer_join(p, s), 0);
		cr_assert_eq(sk_peer_lock(p, SK_PEER_CREATOR), 0);
	}
}

/* A managed segment sent back to INIT (its creator "still initialising"). */
static void check_init_state(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 100, .flags = SHMKIT_EXCL };
	shmkit_seg *s;

	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	struct sk_peer cl;
	creator_lock(&cl, s);
	strcpy(shmkit_seg_data(s), "late");
	sk_store_relaxed(&hdr_of(s)->state, SK_STATE_INIT);
	struct opener a = { .name = name, .init_timeout_ns = 60 * SEC, .expect = "late" };
	pid_t child = sk_test_fork(opener, &a);
	sched_yield();
	publish(hdr_of(s));
	sk_peer_leave(&cl);
	int rc = sk_test_reap(child);
	shmkit_seg_close(s);
	cr_assert_eq(rc, 0, "opener: %d", rc);
}

Test(seg_race, opener_waits_init_posix) { check_init_state("posix"); }
Test(seg_race, opener_waits_init_sysv) { check_init_state("sysv"); }
Test(seg_race, opener_waits_init_file) { check_init_state("file"); }

/* A creator that never publishes: -ETIMEDOUT within the bound, and the
 * failed opens leak no fd. */
static void check_never_published(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	struct shmkit_seg_opts o = { .size = 100, .flags = SHMKIT_EXCL };
	shmkit_seg *s, *t = NULL;

	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	struct sk_peer cl;
	creator_lock(&cl, s);
	sk_store_relaxed(&hdr_of(s)->state, SK_STATE_INIT);
	int fds = sk_test_fd_count();
	struct shmkit_seg_opts wo = { .init_timeout_ns = 50 * 1000000LL };
	int err = shmkit_seg_open(&t, name, &wo);
	int err2 = shmkit_seg_create(&t, name, &(struct shmkit_seg_opts){ .size = 100, .init_timeout_ns = 1 });
	int err3 = shmkit_seg_open(&t, name, &(struct shmkit_seg_opts){ .flags = SHMKIT_RAW });
	if (!err3)
		shmkit_seg_close(t);
	int fds_after = sk_test_fd_count();
	sk_peer_leave(&cl);
	shmkit_seg_close(s);
	cr_assert_eq(err, -ETIMEDOUT, "got %d %s", err, shmkit_errdetail());
	cr_assert_eq(err2, -ETIMEDOUT, "create-or-open got %d", err2);
	cr_assert_eq(err3, 0, "raw attach ignores the state word");
	cr_assert_eq(fds_after, fds);
}

Test(seg_race, never_published_posix) { check_never_published("posix"); }
Test(seg_race, never_published_sysv) { check_never_published("sysv"); }
Test(seg_race, never_published_file) { check_never_published("file"); }

/* A System V segment left in INIT by a creator that is gone (its byte-0
 * lock free): an opener removes that very segment and says so; a
 * create-or-open makes a new one at once. */
Test(seg_race, dead_creator_sysv_recovers)
{
	const char *name = sk_test_new_name("sysv");
	struct shmkit_seg_opts o = { .size = 100, .flags = SHMKIT_EXCL };
	shmkit_seg *s, *t = NULL;

	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	int old_id = s->shmid;
	sk_store_relaxed(&hdr_of(s)->state, SK_STATE_INIT);
	struct shmkit_seg_info st;
	cr_assert_eq(shmkit_seg_info_name(name, &st), 0);
	cr_expect_eq(st.initialising, 2, "ls sees it unfinished, its creator gone");
	cr_expect_eq(st.kind, SHMKIT_KIND_BYTES);
	struct shmkit_seg_opts wo = { .init_timeout_ns = 60 * SEC };
	int err = shmkit_seg_open(&t, name, &wo);
	cr_assert_eq(err, -ENOENT, "got %d %s", err, shmkit_errdetail());
	cr_assert(strstr(shmkit_errdetail(), "died"), "%s", shmkit_errdetail());
	shmkit_seg_close(s);
	cr_assert_eq(sk_test_exists(name), 0, "the dead creator's segment is removed");
	/* And again, this time through create-or-open. */
	cr_assert_eq(shmkit_seg_create(&s, name, &o), 0);
	sk_store_relaxed(&hdr_of(s)->state, SK_STATE_INIT);
	struct shmkit_seg_opts co = { .size = 100, .init_timeout_ns = 60 * SEC };
	err = shmkit_seg_create(&t, name, &co);
	cr_assert_eq(err, 0, "create-or-open got %d %s", err, shmkit_errdetail());
	cr_assert_neq(t->shmid, old_id);
	cr_assert_eq(sk_load_acquire(&hdr_of(t)->state), SK_STATE_READY);
	shmkit_seg_close(t);
	shmkit_seg_close(s);
}

/* A creator killed while it initialises (init blocks; SIGKILL) leaves
 * nothing under the name for posix and file (made unnamed, linked when
 * ready), and a System V segment that the next create-or-open replaces. */
static int blocking_init(void *data, size_t size, void *arg)
{
	int *fds = arg;
	char c;

	if (write(fds[1], "s", 1) != 1)
		return -EIO;
	while (read(fds[0], &c, 1) > 0)
		; /* until the test kills us */
	return -EIO;
}

static int doomed_creator(void *p)
{
	const char *name = ((const char **)p)[0];
	int *fds = ((int **)p)[1];
	struct shmkit_seg_opts o = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_seg *s;

	return sk_seg_create_kind(&s, name, &o, SHMKIT_KIND_BYTES, blocking_init, fds) ? 1 : 0;
}

static void check_killed_creator(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	int started[2], hold[2], fds[2];
	char c;

	cr_assert_eq(pipe(started), 0);
	cr_assert_eq(pipe(hold), 0);
	fds[0] = hold[0];
	fds[1] = started[1];
	const void *arg[2] = { name, fds };
	pid_t pid = sk_test_fork(doomed_creator, arg);
	cr_assert_eq(read(started[0], &c, 1), 1, "creator started its init");
	int exists = sk_test_exists(name);
	kill(pid, SIGKILL);
	cr_assert_eq(sk_test_reap(pid), 128 + SIGKILL);
	close(hold[1]);
	close(hold[0]);
	close(started[0]);
	close(started[1]);
	if (strcmp(prefix, "sysv"))
		cr_assert_eq(exists, 0, "%s: a half-made segment is visible by name", prefix);
	struct shmkit_seg_opts o = { .size = 4096, .init_timeout_ns = 60 * SEC };
	shmkit_seg *s;
	int err = shmkit_seg_create(&s, name, &o);
	cr_assert_eq(err, 0, "create after a killed creator: %d %s", err, shmkit_errdetail());
	cr_assert_eq(sk_load_acquire(&hdr_of(s)->state), SK_STATE_READY);
	shmkit_seg_close(s);
}

Test(seg_race, killed_creator_posix) { check_killed_creator("posix"); }
Test(seg_race, killed_creator_sysv) { check_killed_creator("sysv"); }
Test(seg_race, killed_creator_file) { check_killed_creator("file"); }

/* An object that stays empty (a creator that died before sizing it): an
 * error within the bound, no fd leaked. */
Test(seg_race, never_sized)
{
	const char *name = sk_test_new_name("posix");
	int fd = shm_open(name + 6, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	shmkit_seg *s = NULL;

	cr_assert_geq(fd, 0);
	close(fd);
	int fds = sk_test_fd_count();
	struct shmkit_seg_opts o = { .init_timeout_ns = 50 * 1000000LL };
	int err = shmkit_seg_open(&s, name, &o);
	int fds_after = sk_test_fd_count();
	cr_assert(err == -ETIMEDOUT || err == -EPROTO, "got %d", err);
	cr_assert_null(s);
	cr_assert_eq(fds_after, fds, "a failed open leaked %d fds", fds_after - fds);
}

/* ---- a creator whose init fails while another process create-or-opens --- */

struct failing {
	const char *name;
	int started_w;  /* write end: the child says "init running" */
	int go_r;       /* read end: EOF means "fail now" */
	int go_w;       /* write end, closed in the child */
};

static int failing_init(void *data, size_t size, void *arg)
{
	struct failing *f = arg;
	char c;

	if (write(f->started_w, "s", 1) != 1)
		return -EIO;
	while (read(f->go_r, &c, 1) > 0)
		;
	return -EIO;
}

static int failing_creator(void *p)
{
	struct failing *f = p;
	struct shmkit_seg_opts o = { .size = RACE_SIZE, .flags = SHMKIT_EXCL };
	shmkit_seg *s;

	close(f->go_w);

	int err = sk_seg_create_kind(&s, f->name, &o, SHMKIT_KIND_BYTES, failing_init, f);
	return err == -EIO ? 0 : 1;
}

static void check_failed_creator(const char *prefix)
{
	const char *name = sk_test_new_name(prefix);
	int started[2], go[2];
	cr_assert_eq(pipe(started), 0);
	cr_assert_eq(pipe(go), 0);
	struct failing f = { name, started[1], go[0], go[1] };
	pid_t pid = sk_test_fork(failing_creator, &f);
	close(started[1]);
	close(go[0]);
	char c;
	cr_assert_eq(read(started[0], &c, 1), 1, "creator never reached its init");

	/* The creator sits in init (state INIT).  Release it to fail once our
	 * create-or-open is under way; whichever comes first, the open must
	 * end with a valid segment of ours, not -ETIMEDOUT. */
	pid_t releaser = fork();
	cr_assert_geq(releaser, 0);
	if (releaser == 0) {
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
		close(go[1]);
		_exit(0);
	}
	close(go[1]);
	struct shmkit_seg_opts o = { .size = RACE_SIZE, .init_timeout_ns = 60 * SEC };
	shmkit_seg *s = NULL;
	int created = 0;
	int err = sk_seg_create_kind(&s, name, &o, SHMKIT_KIND_BYTES, race_init, &created);
	cr_assert_eq(sk_test_reap(releaser), 0);
	cr_assert_eq(sk_test_reap(pid), 0, "the failing creator did not see its own -EIO");
	cr_assert_eq(err, 0, "create-or-open after a failed creator: %s (%s)",
	             shmkit_strerror(err), shmkit_errdetail());
	cr_assert_eq(created, 1, "the second creator must have made a fresh segment");
	char want[64];
	snprintf(want, sizeof(want), "init:%d", (int)getpid());
	cr_assert_str_eq(shmkit_seg_data(s), want);
	shmkit_seg_close(s);
	close(started[0]);
}

Test(seg_race, failed_creator_posix) { check_failed_creator("posix"); }
Test(seg_race, failed_creator_sysv) { check_failed_creator("sysv"); }
Test(seg_race, failed_creator_file) { check_failed_creator("file"); }
