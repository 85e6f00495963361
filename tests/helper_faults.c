/*
 * helper_faults.c - fault loops (libuv test-loop-oom.c, SQLite *fault.test):
 * for each operation, fail its Nth system call, N = 1, 2, ... until it
 * succeeds, and check every failure:
 *   - it returns the injected errno, negated (or a translation the
 *     operation's table below allows, each argued there), never 0 or a
 *     positive value, never "corrupt" (-EBADMSG) for a fault that is not;
 *   - it leaks no descriptor (/proc/self/fd, with targets) and no mapping
 *     (/proc/self/maps);
 *   - it leaves no name, file or segment: nothing new in /dev/shm (names
 *     and System V lock files), among System V keys, or in the run's
 *     directory /tmp/sktest-faults-PID (files, journals, ftok file);
 *   - a journal it failed on is still sound: the writer appends again
 *     (after a failed write-back, fdatasync or sync_file_range, the handle
 *     refuses with the same error, as documented, and a writer opened
 *     anew appends), verify is clean, repair can be run again.
 * The tool's commands run as child processes under the same shim, armed
 * by SKFAULT_NTH: a fault that hits must give exit status 1 and a
 * "shmkit: ..." message, and leave nothing behind.
 *
 * Runs under LD_PRELOAD=BUILD/tests/libskfault.so (tests/fault_shim.c);
 * without it, it says so and exits 77.
 *
 *   helper_faults [-v] [-1] [OP-PREFIX...]  run the loops (-1: one pass;
 *                                        all without prefix,
 *                                        but selftest.*: a leaky operation
 *                                        the loop must fail on)
 *   helper_faults -l                     list the operations
 * Every loop runs twice: with each call's first errno, then with its
 * second ("[2]"; tests/fault_shim.c has both).
 * Prints one line per operation and pass, and a closing
 *   "faults: OPS operations, POINTS injection points, FAILURES failures"
 * Exit status 0 if no check failed, 1 otherwise.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmkit.h"

#define MAX_N 2000          /* bound on the loop of one operation */
#define MAX_LINES 4096
#define TOOL_TIMEOUT_MS 20000

/* ---- the shim's controls (dlsym: the shim is LD_PRELOADed) ---------- */

static void (*f_arm)(long nth, int err);
static long (*f_disarm)(void);
static int (*f_fired)(char *buf, size_t len);
static long (*f_hits)(const char *call);

static int shim_find(void)
{
	f_arm = (void (*)(long, int))dlsym(RTLD_DEFAULT, "skfault_arm");
	f_disarm = (long (*)(void))dlsym(RTLD_DEFAULT, "skfault_disarm");
	f_fired = (int (*)(char *, size_t))dlsym(RTLD_DEFAULT, "skfault_fired");
	f_hits = (long (*)(const char *))dlsym(RTLD_DEFAULT, "skfault_hits");
	return f_arm && f_disarm && f_fired && f_hits ? 0 : -1;
}

/* ---- the run's names --------------------------------------------------- */

static char dir[64];        /* /tmp/sktest-faults-PID */
static char tag[32];        /* sktest-faults-PID: in every POSIX name */
static unsigned key_base;   /* System V keys key_base + 0..255 */
static char ftok_path[96];
static long ftok_key;
static char tool_path[4096];
static bool verbose;
static bool one_pass;      /* -1: the first errnos only */
static long failures;

static void fail(const char *op, long n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(const char *op, long n, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s N=%ld: ", op, n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (%s)\n", shmkit_errdetail());
	fflush(stdout);
	failures++;
}

/* ---- snapshots: sorted lines ------------------------------------------- */

struct lines {
	int n;
	char *v[MAX_LINES];
};

static void lines_add(struct lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lines_add(struct lines *l, const char *fmt, ...)
{
	va_list ap;

	if (l->n >= MAX_LINES)
		return;
	va_start(ap, fmt);
	if (vasprintf(&l->v[l->n], fmt, ap) >= 0)
		l->n++;
	va_end(ap);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_free(struct lines *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* Print what differs between before and after (as "+ line" / "- line");
 * the number of differences. */
static int lines_diff(struct lines *a, struct lines *b, const char *what)
{
	int i = 0, k = 0, d = 0;

	qsort(a->v, (size_t)a->n, sizeof(char *), cmp_str);
	qsort(b->v, (size_t)b->n, sizeof(char *), cmp_str);
	while (i < a->n || k < b->n) {
		int c = i >= a->n ? 1 : k >= b->n ? -1 : strcmp(a->v[i], b->v[k]);
		if (c == 0) {
			i++, k++;
			continue;
		}
		if (d++ < 6)
			printf("    %s %c %s\n", what, c < 0 ? '-' : '+', c < 0 ? a->v[i] : b->v[k]);
		if (c < 0)
			i++;
		else
			k++;
	}
	return d;
}

static void snap_fds(struct lines *l)
{
	char link[300], target[512];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		lines_add(l, "fd %s -> %s", e->d_name, target);
	}
	closedir(d);
}

/* Mappings but the heap, whose end moves with malloc. */
static void snap_maps(struct lines *l)
{
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strstr(line, "[heap]"))
			lines_add(l, "%s", line);
	}
	fclose(f);
}

static bool our_key(long key)
{
	unsigned k = (unsigned)key;
	return (k & ~0xffu) == key_base || (ftok_key && key == ftok_key);
}

static struct lines *walk_out;
static int walk_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (ftw->level > 0)
		lines_add(walk_out, "file %s%s", p, flag == FTW_D || flag == FTW_DP ? "/" : "");
	return 0;
}

/* What the run has made in the system: its /dev/shm names and System V
 * lock files, its System V segments, everything in its directory. */
static void snap_objects(struct lines *l)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	char line[512];

	if (d) {
		while ((e = readdir(d))) {
			unsigned k;
			if (strstr(e->d_name, tag) ||
			    (sscanf(e->d_name, ".shmkit-sysv-%8x.lock", &k) == 1 && our_key((long)(int)k)))
				lines_add(l, "shm %s", e->d_name);
		}
		closedir(d);
	}
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	if (f) {
		long key;
		int id;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%ld %d", &key, &id) == 2 && our_key(key))
				lines_add(l, "sysv key 0x%08lx id %d", key & 0xffffffffL, id);
		fclose(f);
	}
	walk_out = l;
	nftw(dir, walk_one, 16, FTW_PHYS);
}

struct snap {
	struct lines fds, maps, objs;
};

static void snap_take(struct snap *s, bool in_process)
{
	s->fds.n = s->maps.n = s->objs.n = 0;
	if (in_process) {
		snap_fds(&s->fds);
		snap_maps(&s->maps);
	}
	snap_objects(&s->objs);
}

static void snap_free(struct snap *s)
{
	lines_free(&s->fds);
	lines_free(&s->maps);
	lines_free(&s->objs);
}

/* ---- scrubbing: remove whatever the run made (after a failure) ---------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (ftw->level > 0 && strcmp(p, ftok_path))
		remove(p);
	return 0;
}

static void scrub(void)
{
	struct lines l = { 0 };

	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snap_objects(&l);
	for (int i = 0; i < l.n; i++) {
		char path[600];
		unsigned long key;
		int id;
		if (!strncmp(l.v[i], "shm ", 4)) {
			snprintf(path, sizeof(path), "/dev/shm/%s", l.v[i] + 4);
			unlink(path);
		} else if (sscanf(l.v[i], "sysv key 0x%lx id %d", &key, &id) == 2) {
			shmctl(id, IPC_RMID, NULL);
		}
	}
	lines_free(&l);
}

/* ---- operations ----------------------------------------------------------- */

struct ctx {
	char name[256];          /* the segment or journal of this operation */
	shmkit_seg *seg, *seg2;
	shmkit_chan *ch;
	shmkit_bus *bus;
	shmkit_sub *sub;
	shmkit_journal *j;
	shmkit_rpc *rpc;
	int sock[2];
	unsigned chan_flags;
	int durability;
	uint64_t records;        /* journal: records appended so far */
	uint64_t last_seq;       /* journal: the last seq before the run */
	const char *failed;      /* the call that failed, for the after hook */
	int failed_errno;
};

struct op {
	const char *name;
	const char *target;      /* "posix", "file", "memfd", "anon", "sysv", "ftok", "journal" */
	int (*setup)(struct ctx *c);      /* disarmed: what the operation needs */
	int (*run)(struct ctx *c);        /* armed: the operation; 0 or -errno */
	void (*undo)(struct ctx *c);      /* disarmed: release what a run made */
	void (*teardown)(struct ctx *c);  /* disarmed: release what setup made */
	int (*after)(struct ctx *c);      /* disarmed, after a failed run: still sound? */
	/* Did a failed run take effect all the same, as documented (an
	 * append whose sync failed after its commit)?  Then the run's own
	 * descriptors and files may differ, but what teardown leaves may
	 * not.  Called before the run (to note the state) and after. */
	bool (*took_effect)(struct ctx *c, bool before);
	const int *extra;        /* further errors this operation may return */
};

static void set_name(struct ctx *c, const char *target, int idx)
{
	if (!strcmp(target, "posix"))
		snprintf(c->name, sizeof(c->name), "posix:/%s-%d", tag, idx);
	else if (!strcmp(target, "file"))
		snprintf(c->name, sizeof(c->name), "file:%s/seg-%d", dir, idx);
	else if (!strcmp(target, "memfd"))
		snprintf(c->name, sizeof(c->name), "memfd:%s-%d", tag, idx);
	else if (!strcmp(target, "anon"))
		snprintf(c->name, sizeof(c->name), "anon");
	else if (!strcmp(target, "sysv"))
		snprintf(c->name, sizeof(c->name), "sysv:0x%08x", key_base + (unsigned)idx);
	else if (!strcmp(target, "ftok"))
		snprintf(c->name, sizeof(c->name), "sysv:%s:1", ftok_path);
	else
		snprintf(c->name, sizeof(c->name), "%s/journal-%d", dir, idx);
}

static void remove_name(struct ctx *c)
{
	if (strcmp(c->name, "anon") && strncmp(c->name, "memfd:", 6))
		shmkit_seg_remove(c->name);
}

/* Close every handle the context holds (NULL ones are no-ops). */
static void ctx_close(struct ctx *c)
{
	shmkit_bus_unsubscribe(c->sub);
	shmkit_bus_close(c->bus);
	shmkit_chan_close(c->ch);
	shmkit_seg_close(c->seg);
	shmkit_journal_close(c->j);
	shmkit_rpc_close(c->rpc);
	c->rpc = NULL;
	c->sub = NULL;
	c->bus = NULL;
	c->ch = NULL;
	c->seg = NULL;
	c->j = NULL;
}

static void ctx_close_remove(struct ctx *c)
{
	ctx_close(c);
	remove_name(c);
}

/* segments */
static const struct shmkit_seg_opts seg_opts = { .size = 65536 };

static int seg_create_excl(struct ctx *c)
{
	struct shmkit_seg_opts o = seg_opts;
	o.flags = SHMKIT_EXCL;
	return shmkit_seg_create(&c->seg, c->name, &o);
}

static int seg_create_plain(struct ctx *c)
{
	return shmkit_seg_create(&c->seg, c->name, &seg_opts);
}

static int seg_open_rw(struct ctx *c)
{
	return shmkit_seg_open(&c->seg, c->name, NULL);
}

static int seg_open_ro(struct ctx *c)
{
	struct shmkit_seg_opts o = { .flags = SHMKIT_RDONLY };
	return shmkit_seg_open(&c->seg, c->name, &o);
}

/* An existing segment, made and closed (the creator is gone). */
static int seg_made(struct ctx *c)
{
	shmkit_seg *s;
	int err = shmkit_seg_create(&s, c->name, &seg_opts);
	shmkit_seg_close(s);
	return err;
}

/* memfd receive: the fd of a live memfd segment waits on a socket. */
static int memfd_sent(struct ctx *c)
{
	int err = shmkit_seg_create(&c->seg2, c->name, &seg_opts);
	if (err)
		return err;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->sock))
		return -errno;
	return shmkit_seg_send_fd(c->seg2, c->sock[0]);
}

static int memfd_recv(struct ctx *c)
{
	return shmkit_seg_recv_fd(&c->seg, c->sock[1], NULL);
}

static void memfd_teardown(struct ctx *c)
{
	shmkit_seg_close(c->seg2);
	c->seg2 = NULL;
	close(c->sock[0]);
	close(c->sock[1]);
}

/* channels */
static int chan_create(struct ctx *c)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 64, .flags = c->chan_flags | SHMKIT_EXCL };
	return shmkit_chan_create(&c->ch, c->name, &o);
}

/* Create-or-open (no SHMKIT_EXCL) of a name that does not exist: the
 * call makes it, so on failure it must remove it too. */
static int chan_create_or_open(struct ctx *c)
{
	struct shmkit_chan_opts o = { .capacity = 8, .max_msg = 64 };
	return shmkit_chan_create(&c->ch, c->name, &o);
}

static int chan_made(struct ctx *c)
{
	int err = chan_create(c);
	ctx_close(c);
	return err;
}

static int chan_made_spsc(struct ctx *c)
{
	c->chan_flags = SHMKIT_CHAN_SPSC;
	return chan_made(c);
}

static int chan_create_spsc(struct ctx *c)
{
	c->chan_flags = SHMKIT_CHAN_SPSC;
	return chan_create(c);
}

static int chan_open(struct ctx *c)
{
	return shmkit_chan_open(&c->ch, c->name, NULL);
}

/* First send and first receive: each takes a role or a peer entry. */
static int chan_open_existing(struct ctx *c)
{
	int err = chan_made(c);
	return err ? err : chan_open(c);
}

static int chan_open_existing_spsc(struct ctx *c)
{
	c->chan_flags = SHMKIT_CHAN_SPSC;
	return chan_open_existing(c);
}

static int chan_send_recv(struct ctx *c)
{
	char buf[64];
	int err = shmkit_chan_send(c->ch, "fault", 5, 0);
	if (err)
		return err;
	ssize_t n = shmkit_chan_recv(c->ch, buf, sizeof(buf), 0);
	return n < 0 ? (int)n : n == 5 ? 0 : -EIO;
}

/* The handle that failed may hold a role: a fresh one for the next N. */
static void chan_reopen(struct ctx *c)
{
	ctx_close(c);
	chan_open(c);
}

/* bus */
static int bus_create(struct ctx *c)
{
	struct shmkit_bus_opts o = { .capacity = 8, .max_msg = 64, .flags = SHMKIT_EXCL };
	return shmkit_bus_create(&c->bus, c->name, &o);
}

/* rpc */
static int rpc_create(struct ctx *c)
{
	struct shmkit_rpc_opts o = { .max_clients = 2, .depth = 2, .max_request = 64,
	                             .max_response = 64, .flags = SHMKIT_EXCL };
	return shmkit_rpc_create(&c->rpc, c->name, &o);
}

static int rpc_made(struct ctx *c)
{
	int err = rpc_create(c);
	ctx_close(c);
	return err;
}

static int rpc_open(struct ctx *c)
{
	return shmkit_rpc_open(&c->rpc, c->name, NULL);
}

static int rpc_open_existing(struct ctx *c)
{
	int err = rpc_made(c);
	return err ? err : rpc_open(c);
}

/* The first call of a client handle takes its entry (a lock) and sends;
 * cancelled at once (nobody serves). */
static int rpc_first_send(struct ctx *c)
{
	uint64_t id;
	int err = shmkit_rpc_send(c->rpc, "fault", 5, 0, 1000000000LL, &id);
	return err ? err : shmkit_rpc_cancel(c->rpc, id);
}

static void rpc_reopen(struct ctx *c)
{
	ctx_close(c);
	rpc_open(c);
}

static int bus_create_or_open(struct ctx *c)
{
	struct shmkit_bus_opts o = { .capacity = 8, .max_msg = 64 };
	return shmkit_bus_create(&c->bus, c->name, &o);
}

static int bus_open(struct ctx *c)
{
	return shmkit_bus_open(&c->bus, c->name, NULL);
}

static int bus_made(struct ctx *c)
{
	int err = bus_create(c);
	ctx_close(c);
	return err;
}

static int bus_open_existing(struct ctx *c)
{
	int err = bus_made(c);
	return err ? err : bus_open(c);
}

/* Join as a subscriber, then as a publisher: one message goes round. */
static int bus_join(struct ctx *c)
{
	char buf[64];
	int err = shmkit_bus_subscribe(&c->sub, c->bus, NULL);
	if (err)
		return err;
	if ((err = shmkit_bus_publish(c->bus, "fault", 5, 0)))
		return err;
	ssize_t n = shmkit_sub_recv(c->sub, buf, sizeof(buf), NULL, 0);
	return n < 0 ? (int)n : n == 5 ? 0 : -EIO;
}

static void bus_unjoin(struct ctx *c)
{
	ctx_close(c);
	bus_open(c);
}

/* journals */
static int journal_writer(struct ctx *c, unsigned flags, size_t file_size)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | flags,
	                                 .durability = c->durability, .file_size = file_size,
	                                 .max_record = 256, .group_records = 2 };
	return shmkit_journal_open(&c->j, c->name, &o);
}

static int journal_create(struct ctx *c)
{
	return journal_writer(c, SHMKIT_JOURNAL_CREATE, 0);
}

static int journal_open_w(struct ctx *c)
{
	return journal_writer(c, 0, 0);
}

static int journal_open_r(struct ctx *c)
{
	return shmkit_journal_open(&c->j, c->name, NULL);
}

static void journal_close_remove(struct ctx *c)
{
	ctx_close(c);
	scrub(); /* the journal is in the run's directory */
}

static int journal_append_n(struct ctx *c, int n)
{
	char rec[16];
	for (int i = 0; i < n; i++) {
		memset(rec, 'a' + (int)(c->records % 26), sizeof(rec));
		int err = shmkit_journal_append(c->j, rec, sizeof(rec), NULL);
		if (err)
			return err;
		c->records++;
	}
	return 0;
}

/* A journal of 10 records, closed. */
static int journal_made(struct ctx *c)
{
	int err = journal_create(c);
	if (!err)
		err = journal_append_n(c, 10);
	ctx_close(c);
	return err;
}

static int journal_made_open(struct ctx *c, int durability, size_t file_size)
{
	c->durability = durability;
	int err = journal_writer(c, SHMKIT_JOURNAL_CREATE, file_size);
	return err ? err : journal_append_n(c, 3);
}

static int jw_none(struct ctx *c) { return journal_made_open(c, SHMKIT_DUR_NONE, 0); }
static int jw_group(struct ctx *c) { return journal_made_open(c, SHMKIT_DUR_GROUP, 0); }
static int jw_sync(struct ctx *c) { return journal_made_open(c, SHMKIT_DUR_SYNC, 0); }

/* A writer whose current file has room for exactly no more record: the
 * next append rolls to a new file (a page holds the header and 100
 * records of 40 bytes: 64 + 100 * 40 = 4064; 4096 - 4064 < 40). */
static int jw_full(struct ctx *c)
{
	c->durability = SHMKIT_DUR_SYNC;
	int err = journal_writer(c, SHMKIT_JOURNAL_CREATE, 4096);
	return err ? err : journal_append_n(c, 100);
}

static int journal_append1(struct ctx *c)
{
	return journal_append_n(c, 1);
}

/* A record whose append failed may still be committed (a sync error):
 * count from the journal, not from our tally.  After a failed write-back
 * the handle must refuse appends with that error (journal_write.c,
 * writer_wb_failed); a writer opened anew goes on. */
static int journal_after_append(struct ctx *c)
{
	struct shmkit_journal_report r;
	struct shmkit_journal_stats st;
	int err = journal_append_n(c, 1);
	if (c->failed && (!strcmp(c->failed, "fdatasync") || !strcmp(c->failed, "sync_file_range"))) {
		if (err != -c->failed_errno) {
			printf("    append after a failed %s: %s, not the same error again\n", c->failed,
			       err ? shmkit_strerror(err) : "success");
			return err ? err : -EPROTO;
		}
		shmkit_journal_close(c->j); /* fails again, by design */
		c->j = NULL;
		if ((err = journal_open_w(c)) == 0)
			err = journal_append_n(c, 1);
	}
	if (err) {
		printf("    append after the failure: %s (%s)\n", shmkit_strerror(err), shmkit_errdetail());
		return err;
	}
	if ((err = shmkit_journal_verify(c->name, &r))) {
		printf("    verify after the failure: %s (%s)\n", shmkit_strerror(err), shmkit_errdetail());
		return err;
	}
	if ((err = shmkit_journal_stats(c->j, &st)))
		return err;
	if (st.records != r.valid_records || st.last_seq != r.last_valid_seq) {
		printf("    stat says %llu records up to %llu, verify %llu up to %llu\n",
		       (unsigned long long)st.records, (unsigned long long)st.last_seq,
		       (unsigned long long)r.valid_records, (unsigned long long)r.last_valid_seq);
		return -EIO;
	}
	return 0;
}

static bool journal_committed(struct ctx *c, bool before)
{
	struct shmkit_journal_stats st;

	if (shmkit_journal_stats(c->j, &st))
		return false;
	if (before)
		c->last_seq = st.last_seq;
	return !before && st.last_seq > c->last_seq;
}

/* After a failed open of an existing journal: it verifies clean. */
static int journal_after_open(struct ctx *c)
{
	struct shmkit_journal_report r;
	int err = shmkit_journal_verify(c->name, &r);
	if (err)
		printf("    verify after the failure: %s (%s)\n", shmkit_strerror(err), shmkit_errdetail());
	else if (r.valid_records != 10)
		printf("    verify after the failure: %llu records, not 10\n",
		       (unsigned long long)r.valid_records);
	return err ? err : r.valid_records == 10 ? 0 : -EIO;
}

/* A journal of 10 records of 16 bytes with record 3 damaged (a payload
 * byte flipped: its checksum fails) and intact records after it: middle
 * damage, which repair turns into a hole. */
static int journal_damaged(struct ctx *c)
{
	char path[512];
	int err = journal_made(c);
	if (err)
		return err;
	/* The first (only) data file: 20 digits of 1 and ".skj". */
	snprintf(path, sizeof(path), "%s/%020d.skj", c->name, 1);
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -errno;
	char b = 0;
	off_t off = 64 + 2 * 40 + 24 + 3; /* file header, 2 records, header of 3 */
	if (pread(fd, &b, 1, off) != 1 || (b ^= 0x5a, pwrite(fd, &b, 1, off)) != 1)
		err = -EIO;
	close(fd);
	struct shmkit_journal_report r;
	if (!err && shmkit_journal_verify(c->name, &r) != -EBADMSG)
		err = -EIO; /* the damage must be seen */
	return err;
}

static int journal_repair(struct ctx *c)
{
	struct shmkit_journal_report r;
	return shmkit_journal_repair(c->name, &r);
}

static int journal_verify(struct ctx *c)
{
	struct shmkit_journal_report r;
	int err = shmkit_journal_verify(c->name, &r);
	return err == -EBADMSG ? 0 : err ? err : -EIO; /* it must see the damage */
}

/* After a failed repair: repair again succeeds and keeps the 9 intact
 * records; verify is then clean. */
static int journal_after_repair(struct ctx *c)
{
	struct shmkit_journal_report r;
	int err = shmkit_journal_repair(c->name, &r);
	if (!err)
		err = shmkit_journal_verify(c->name, &r);
	if (err)
		printf("    repair/verify after the failure: %s (%s)\n", shmkit_strerror(err),
		       shmkit_errdetail());
	else if (r.valid_records != 9)
		printf("    after repair: %llu intact records, not 9\n", (unsigned long long)r.valid_records);
	return err ? err : r.valid_records == 9 ? 0 : -EIO;
}

/* The loops' own check (selected only by name, never by "all"): an
 * operation that leaks a descriptor and leaves a file when its second
 * call fails must make the loop fail. */
static int selftest_leaky(struct ctx *c)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/selftest", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 4096))
		return -errno; /* the bug: fd and file left */
	close(fd);
	unlink(path);
	return 0;
}

/* Operations that make objects: a failure leaves what was there before. */
#define OP(nm, tgt, setup_, run_, undo_, td_, after_) \
	{ nm, tgt, setup_, run_, undo_, td_, after_, NULL, NULL }
/* Appends: a sync error after the commit is documented. */
#define OP_APPEND(nm, setup_) \
	{ nm, "journal", setup_, journal_append1, NULL, journal_close_remove, \
	  journal_after_append, journal_committed, NULL }

/* Errors besides the injected one, argued:
 * - create over posix/file: a failing linkat of the unnamed object is
 *   returned as is (ENOSPC injected); nothing else. */
static const struct op ops[] = {
	OP("seg.create.posix", "posix", NULL, seg_create_excl, ctx_close_remove, NULL, NULL),
	OP("seg.create.file", "file", NULL, seg_create_excl, ctx_close_remove, NULL, NULL),
	OP("seg.create.memfd", "memfd", NULL, seg_create_excl, ctx_close, NULL, NULL),
	OP("seg.create.anon", "anon", NULL, seg_create_excl, ctx_close, NULL, NULL),
	OP("seg.create.sysv", "sysv", NULL, seg_create_excl, ctx_close_remove, NULL, NULL),
	OP("seg.create.ftok", "ftok", NULL, seg_create_excl, ctx_close_remove, NULL, NULL),
	OP("seg.create-or-open.posix", "posix", seg_made, seg_create_plain, ctx_close, remove_name, NULL),
	OP("seg.create-or-open.sysv", "sysv", seg_made, seg_create_plain, ctx_close, remove_name, NULL),
	OP("seg.open.posix", "posix", seg_made, seg_open_rw, ctx_close, remove_name, NULL),
	OP("seg.open.posix-rdonly", "posix", seg_made, seg_open_ro, ctx_close, remove_name, NULL),
	OP("seg.open.file", "file", seg_made, seg_open_rw, ctx_close, remove_name, NULL),
	OP("seg.open.sysv", "sysv", seg_made, seg_open_rw, ctx_close, remove_name, NULL),
	OP("seg.open.ftok", "ftok", seg_made, seg_open_rw, ctx_close, remove_name, NULL),
	OP("seg.recv.memfd", "memfd", memfd_sent, memfd_recv, ctx_close, memfd_teardown, NULL),
	OP("chan.create.mpmc", "posix", NULL, chan_create, ctx_close_remove, NULL, NULL),
	OP("chan.create.spsc", "posix", NULL, chan_create_spsc, ctx_close_remove, NULL, NULL),
	OP("chan.create.sysv", "sysv", NULL, chan_create, ctx_close_remove, NULL, NULL),
	OP("chan.create-or-open", "posix", NULL, chan_create_or_open, ctx_close_remove, NULL, NULL),
	OP("chan.open.mpmc", "posix", chan_made, chan_open, ctx_close, remove_name, NULL),
	OP("chan.open.spsc", "posix", chan_made_spsc, chan_open, ctx_close, remove_name, NULL),
	OP("chan.first-send-recv.mpmc", "posix", chan_open_existing, chan_send_recv, chan_reopen,
	       ctx_close_remove, NULL),
	OP("chan.first-send-recv.spsc", "posix", chan_open_existing_spsc, chan_send_recv, chan_reopen,
	       ctx_close_remove, NULL),
	OP("bus.create", "posix", NULL, bus_create, ctx_close_remove, NULL, NULL),
	OP("bus.create.sysv", "sysv", NULL, bus_create, ctx_close_remove, NULL, NULL),
	OP("bus.create-or-open", "posix", NULL, bus_create_or_open, ctx_close_remove, NULL, NULL),
	OP("bus.open", "posix", bus_made, bus_open, ctx_close, remove_name, NULL),
	OP("bus.join", "posix", bus_open_existing, bus_join, bus_unjoin, ctx_close_remove, NULL),
	OP("rpc.create", "posix", NULL, rpc_create, ctx_close_remove, NULL, NULL),
	OP("rpc.create.sysv", "sysv", NULL, rpc_create, ctx_close_remove, NULL, NULL),
	OP("rpc.open", "posix", rpc_made, rpc_open, ctx_close, remove_name, NULL),
	OP("rpc.first-send", "posix", rpc_open_existing, rpc_first_send, rpc_reopen,
	       ctx_close_remove, NULL),
	OP("journal.create", "journal", NULL, journal_create, journal_close_remove, NULL, NULL),
	OP("journal.open.writer", "journal", journal_made, journal_open_w, ctx_close,
	       journal_close_remove, journal_after_open),
	OP("journal.open.reader", "journal", journal_made, journal_open_r, ctx_close,
	       journal_close_remove, journal_after_open),
	OP_APPEND("journal.append.none", jw_none),
	OP_APPEND("journal.append.group", jw_group),
	OP_APPEND("journal.append.sync", jw_sync),
	OP_APPEND("journal.append.roll", jw_full),
	OP("journal.verify", "journal", journal_damaged, journal_verify, NULL, journal_close_remove,
	       NULL),
	OP("journal.repair", "journal", journal_damaged, journal_repair, NULL, journal_close_remove,
	       journal_after_repair),
	OP("selftest.leaky", "file", NULL, selftest_leaky, NULL, NULL, NULL),
};

/* ---- the loop, in process ----------------------------------------------- */

static long points_total;

/* Check a failed run's result: the errno injected, negated, or one of
 * the operation's argued translations. */
static void check_result(const struct op *op, long n, int r, int injected, const char *call)
{
	if (r == -injected)
		return;
	for (const int *e = op->extra; e && *e; e++)
		if (r == *e)
			return;
	fail(op->name, n, "%s failed with %s: returned %d (%s), not -%s", call, strerrorname_np(injected),
	     r, r < 0 ? strerrorname_np(-r) : "not an error", strerrorname_np(injected));
}

static int run_op(const struct op *op, int idx, int pass)
{
	struct ctx c = { .sock = { -1, -1 } };
	long n, calls = -1;
	char call[32];
	int r;

	set_name(&c, op->target, idx);
	scrub();
	/* Warm-up, counting only: the calls it makes, and libc's one-time
	 * set-ups (which would look like leaks) done before the loop. */
	if (op->setup && (r = op->setup(&c))) {
		fail(op->name, 0, "setup: %s", shmkit_strerror(r));
		return -1;
	}
	f_arm(0, 0);
	r = op->run(&c);
	calls = f_disarm();
	if (r) {
		fail(op->name, 0, "without a fault: %s", shmkit_strerror(r));
		return -1;
	}
	if (op->undo)
		op->undo(&c);
	if (op->teardown)
		op->teardown(&c);
	scrub();
	for (n = 1; n <= MAX_N; n++) {
		struct snap base, before, after, end;
		memset(&c, 0, sizeof(c));
		c.sock[0] = c.sock[1] = -1;
		set_name(&c, op->target, idx);
		snap_take(&base, true);
		if (op->setup && (r = op->setup(&c))) {
			fail(op->name, n, "setup: %s", shmkit_strerror(r));
			snap_free(&base);
			break;
		}
		if (op->took_effect)
			op->took_effect(&c, true);
		snap_take(&before, true);
		f_arm(n, pass);
		r = op->run(&c);
		f_disarm();
		int injected = f_fired(call, sizeof(call));
		bool fired = injected != 0;
		if (verbose)
			printf("  %s N=%ld: %s -> %d %s\n", op->name, n, fired ? call : "(no fault)", r,
			       r < 0 ? strerrorname_np(-r) : "");
		if (fired)
			points_total++;
		if (fired && r && op->took_effect && op->took_effect(&c, false)) {
			/* Committed, then a sync failed: documented.  Only a
			 * sync may fail so, and with its own errno (the
			 * journal's SYNC and GROUP levels flush with
			 * fdatasync, ASYNC with msync). */
			if (strcmp(call, "msync") && strcmp(call, "fsync") && strcmp(call, "fdatasync"))
				fail(op->name, n, "%s failed, yet the record was committed", call);
			check_result(op, n, r, injected, call);
			c.failed = call;
			c.failed_errno = injected;
			if (op->after && (r = op->after(&c)))
				fail(op->name, n, "after %s failed: not sound (%s)", call,
				     shmkit_strerror(r));
		} else if (fired && r) {
			check_result(op, n, r, injected, call);
			snap_take(&after, true);
			int d = lines_diff(&before.fds, &after.fds, "fd") +
			        lines_diff(&before.maps, &after.maps, "map") +
			        lines_diff(&before.objs, &after.objs, "object");
			if (d)
				fail(op->name, n, "%s failed (%s): %d descriptors, mappings or objects "
				     "differ (above)", call, strerrorname_np(injected), d);
			snap_free(&after);
			c.failed = call;
			c.failed_errno = injected;
			if (op->after && (r = op->after(&c)))
				fail(op->name, n, "after %s failed: not sound (%s)", call,
				     shmkit_strerror(r));
		} else if (r) {
			fail(op->name, n, "no fault injected, yet %d (%s)", r, shmkit_strerror(r));
		} else if (op->undo) {
			op->undo(&c);
		}
		snap_free(&before);
		if (op->teardown)
			op->teardown(&c);
		/* Whatever happened, teardown leaves what was there before
		 * setup: a leak on any path shows here. */
		snap_take(&end, true);
		if (lines_diff(&base.fds, &end.fds, "fd") + lines_diff(&base.maps, &end.maps, "map") +
		    lines_diff(&base.objs, &end.objs, "object"))
			fail(op->name, n, "after teardown (%s): descriptors, mappings or objects "
			     "differ (above)", fired ? call : "no fault");
		snap_free(&base);
		snap_free(&end);
		scrub();
		if (!fired)
			break;
	}
	if (n > MAX_N)
		fail(op->name, n, "still faulting after %d calls", MAX_N);
	printf("%-28s%s %4ld calls, %4ld points\n", op->name, pass ? " [2]" : "    ", calls, n - 1);
	fflush(stdout);
	return 0;
}

/* ---- the tool's commands, as children -------------------------------- */

struct tool_op {
	const char *name;
	const char *target;
	const char *argv[8];     /* after "shmkit"; "@" is the name */
	const char *setup[8];    /* a tool command run first, disarmed (or NULL) */
	const char *undo[8];     /* after a success, disarmed */
};

static const struct tool_op tool_ops[] = {
	{ "tool.create", "posix", { "create", "@", "--size", "64K" }, { NULL }, { "rm", "@" } },
	{ "tool.create.sysv", "sysv", { "create", "@", "--size", "64K" }, { NULL }, { "rm", "@" } },
	{ "tool.chan", "posix", { "chan", "@", "--capacity", "8" }, { NULL }, { "rm", "@" } },
	{ "tool.bus", "posix", { "bus", "@", "--capacity", "8" }, { NULL }, { "rm", "@" } },
	{ "tool.journal.append", "journal", { "journal", "append", "@", "one", "two" }, { NULL },
	  { NULL } },
	{ "tool.journal.repair", "journal", { "journal", "repair", "@" },
	  { "journal", "append", "@", "one", "two" }, { NULL } },
	{ "tool.rm", "posix", { "rm", "@" }, { "create", "@", "--size", "4K" }, { NULL } },
	{ "tool.rm.sysv", "sysv", { "rm", "@" }, { "create", "@", "--size", "4K" }, { NULL } },
	{ "tool.gc", "posix", { "gc", "@" }, { "create", "@", "--size", "4K", "--temporary" },
	  { NULL } },
};

/* Run the tool with args (NULL-terminated, "@" replaced by name), armed at
 * nth when nth > 0; stderr into err.  Exit status, 128 + signal, or -1. */
static int tool_run(const char *const *args, const char *name, long nth, int pass,
                    const char *log, char *err, size_t errlen)
{
	const char *argv[16];
	int p[2], k = 0;
	char nthbuf[32];

	argv[k++] = "shmkit";
	for (int i = 0; args[i] && k < 15; i++)
		argv[k++] = strcmp(args[i], "@") ? args[i] : name;
	argv[k] = NULL;
	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(p[1], 2);
		if (nth > 0) {
			snprintf(nthbuf, sizeof(nthbuf), "%ld", nth);
			setenv("SKFAULT_NTH", nthbuf, 1);
			setenv("SKFAULT_LOG", log, 1);
			if (pass)
				setenv("SKFAULT_ALT", "1", 1);
		} else {
			unsetenv("SKFAULT_NTH");
		}
		execv(tool_path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	size_t used = 0;
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	for (;;) {
		/* Bounded: a tool that hangs is killed after TOOL_TIMEOUT_MS. */
		if (poll(&pf, 1, TOOL_TIMEOUT_MS) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		char sink[256];
		ssize_t got = read(p[0], used + 1 < errlen ? err + used : sink,
		                   used + 1 < errlen ? errlen - 1 - used : sizeof(sink));
		if (got <= 0)
			break;
		if (used + 1 < errlen)
			used += (size_t)got;
	}
	err[used] = '\0';
	close(p[0]);
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* The shim's log of one run: the call that failed ("" if none). */
static void read_log(const char *log, char *call, size_t len)
{
	char line[128], name[64];
	FILE *f = fopen(log, "re");
	int e;

	call[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "fired %63s %d", name, &e) == 2)
			snprintf(call, len, "%s", name);
	fclose(f);
}

static int run_tool_op(const struct tool_op *op, int idx, int pass)
{
	struct ctx c;
	char log[128], call[64], err[4096];
	long n;

	set_name(&c, op->target, idx);
	snprintf(log, sizeof(log), "/tmp/sktest-faults-%d.log", (int)getpid());
	scrub();
	for (n = 1; n <= MAX_N; n++) {
		struct snap before, after;
		if (op->setup[0] && tool_run(op->setup, c.name, 0, 0, log, err, sizeof(err)) != 0) {
			fail(op->name, n, "setup failed: %s", err);
			break;
		}
		snap_take(&before, false);
		unlink(log);
		int rc = tool_run(op->argv, c.name, n, pass, log, err, sizeof(err));
		read_log(log, call, sizeof(call));
		unlink(log);
		if (verbose)
			printf("  %s N=%ld: %s -> exit %d %s", op->name, n, call[0] ? call : "(no fault)", rc,
			       err);
		if (call[0])
			points_total++;
		if (call[0] && rc != 0) {
			if (rc != 1)
				fail(op->name, n, "%s failed: exit status %d, not 1", call, rc);
			if (strncmp(err, "shmkit: ", 8))
				fail(op->name, n, "%s failed: stderr does not start 'shmkit: ': '%.200s'",
				     call, err);
			snap_take(&after, false);
			if (lines_diff(&before.objs, &after.objs, "object"))
				fail(op->name, n, "%s failed: objects differ (above)", call);
			snap_free(&after);
		} else if (rc != 0) {
			fail(op->name, n, "no fault injected, yet exit %d: %.200s", rc, err);
		} else if (op->undo[0]) {
			tool_run(op->undo, c.name, 0, 0, log, err, sizeof(err));
		}
		snap_free(&before);
		remove_name(&c);
		scrub();
		if (!call[0])
			break;
	}
	printf("%-28s%s %4s       %4ld points\n", op->name, pass ? " [2]" : "    ", "", n - 1);
	fflush(stdout);
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

/* Every call the shim interposes that the loops must have reached. */
static const char *const must_hit[] = {
	"open", "openat", "shm_open", "memfd_create", "shmget", "shmat", "mmap", "ftruncate",
	"posix_fallocate", "fsync", "msync", "linkat", "pwrite", "mkdir", "fcntl", "flock",
};
/* Interposed, but shmkit calls them nowhere (reported, not required). */
static const char *const may_hit[] = {
	"fallocate", "fdatasync", "write", "renameat", "rename", "mkdirat", "mremap", "eventfd",
};

static bool selected(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return strncmp(name, "selftest.", 9) != 0;
	for (int i = first; i < argc; i++)
		if (!strncmp(name, argv[i], strlen(argv[i])))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int first = 1, nops = 0;
	bool all;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "-l")) {
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			printf("%s\n", ops[i].name);
		for (size_t i = 0; i < sizeof(tool_ops) / sizeof(tool_ops[0]); i++)
			printf("%s\n", tool_ops[i].name);
		return 0;
	}
	for (; first < argc && argv[first][0] == '-'; first++) {
		if (!strcmp(argv[first], "-v"))
			verbose = true;
		else if (!strcmp(argv[first], "-1"))
			one_pass = true;
	}
	all = first >= argc;
	if (shim_find()) {
		fprintf(stderr, "helper_faults: the fault shim is not loaded "
		        "(LD_PRELOAD=BUILD/tests/libskfault.so)\n");
		return 77;
	}
	/* The tool beside the tests directory: BUILD/shmkit. */
	ssize_t len = readlink("/proc/self/exe", tool_path, sizeof(tool_path) - 16);
	tool_path[len > 0 ? len : 0] = '\0';
	char *slash = strrchr(tool_path, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(tool_path, '/');
	snprintf(slash ? slash + 1 : tool_path, 16, "shmkit");

	int pid = (int)getpid();
	snprintf(tag, sizeof(tag), "sktest-faults-%d", pid);
	snprintf(dir, sizeof(dir), "/tmp/%s", tag);
	key_base = 0x6b000000u | (((unsigned)pid & 0xffffu) << 8);
	if (mkdir(dir, 0700)) {
		perror(dir);
		return 1;
	}
	snprintf(ftok_path, sizeof(ftok_path), "%s/ftok", dir);
	int fd = open(ftok_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	ftok_key = (long)ftok(ftok_path, 1);

	/* Two passes: each call's first errno, then its second ([2]). */
	for (int pass = 0; pass >= (one_pass ? 0 : -1); pass--) {
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
			if (selected(ops[i].name, argc, argv, first)) {
				run_op(&ops[i], (int)i, pass);
				nops += !pass;
			}
		for (size_t i = 0; i < sizeof(tool_ops) / sizeof(tool_ops[0]); i++)
			if (selected(tool_ops[i].name, argc, argv, first)) {
				run_tool_op(&tool_ops[i], 100 + (int)i, pass);
				nops += !pass;
			}
	}
	/* The loops must have gone through every call they claim to cover:
	 * a shim that intercepted nothing would pass them all. */
	if (all) {
		for (size_t i = 0; i < sizeof(must_hit) / sizeof(must_hit[0]); i++)
			if (f_hits(must_hit[i]) <= 0)
				fail("shim", 0, "%s was never intercepted", must_hit[i]);
		printf("calls intercepted in process:");
		for (size_t i = 0; i < sizeof(must_hit) / sizeof(must_hit[0]); i++)
			printf(" %s=%ld", must_hit[i], f_hits(must_hit[i]));
		for (size_t i = 0; i < sizeof(may_hit) / sizeof(may_hit[0]); i++)
			printf(" %s=%ld", may_hit[i], f_hits(may_hit[i]));
		printf("\n");
	}
	scrub();
	rmdir(dir);
	unlink(ftok_path);
	rmdir(dir);
	printf("faults: %d operations, %ld injection points, %ld failures\n", nops, points_total,
	       failures);
	return failures ? 1 : 0;
}
