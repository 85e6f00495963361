/*
 * journal.c (bench) - the durable journal: append throughput under each
 * durability policy for 64-byte and 4 KiB records, next to plain files
 * measured in the same run (write(2) for the unsynced policies,
 * write(2) + fdatasync for the synced ones), and tail latency from an
 * append to a live reader in another process.
 *
 * Rows
 *   write_64, write_4k [msg/s, GB/s]          (references) pwrite(2) of
 *       one record into a preallocated file in /tmp, no sync
 *   write_fdatasync_64, write_fdatasync_4k     (references) the same, then
 *       fdatasync(2): the cost of one durable write
 *   journal_append_POLICY_64 [msg/s], journal_append_POLICY_4k [GB/s] for
 *       POLICY none, async, sync, group (64 records or 10 ms): one
 *       shmkit_journal_append() each, rolling 64 MiB files, keeping two;
 *       ratio against the plain-file row of the same kind
 *   journal_tail_rtt [ns]: the writer appends, a reader in another process
 *       wakes in shmkit_journal_next() (adaptive wait) and answers through
 *       a shared word; one round trip, against futex_rtt
 * Journals and files live in /tmp (a real file system: tmpfs would make
 * every sync free) as /tmp/shmkit-bench-PID-journal-N, removed after each
 * row and on SIGINT/SIGTERM/SIGHUP.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define PLAIN_SIZE (64u << 20)
#define SYNC_BATCHES 30

struct jbench {
	char path[128];
	size_t rec;
	int policy;            /* enum shmkit_durability, or -1: plain file */
	bool plain_sync;
	shmkit_journal *j;
	int fd;
	off_t off;
	uint32_t *ack;         /* tail: shared word the reader answers on */
	uint64_t seq;
	uint8_t buf[4096];
};

/* ---- cleanup (async-signal-safe: raw getdents64 + unlinkat) -------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static void remove_tree(void *arg)
{
	const char *path = arg;
	char buf[4096];
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0) {
		unlink(path);
		return;
	}
	/* One pass removes every entry; a second catches any the first
	 * listing missed.  Bounded: never more than two passes. */
	for (int pass = 0; pass < 2; pass++) {
		long n;
		lseek(dfd, 0, SEEK_SET);
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
				if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
					unlinkat(dfd, d->d_name, 0);
				off += d->d_reclen;
			}
		}
	}
	close(dfd);
	rmdir(path);
}

static void name_path(struct jbench *b)
{
	char name[96];
	bench_unique_name(name, sizeof(name), "journal");
	snprintf(b->path, sizeof(b->path), "/tmp/%s", name);
}

/* ---- appends: journal and plain file ------------------------------------ */

static int open_journal(struct jbench *b, unsigned flags)
{
	struct shmkit_journal_opts o = {
		.flags = flags, .durability = b->policy, .keep_files = 2,
		.max_record = 4096,
	};
	return shmkit_journal_open(&b->j, b->path, &o);
}

static int append_run(void *arg, long n)
{
	struct jbench *b = arg;
	for (long i = 0; i < n; i++) {
		memcpy(b->buf, &b->seq, sizeof(b->seq));
		b->seq++;
		int err = shmkit_journal_append(b->j, b->buf, b->rec, NULL);
		if (err)
			return err;
	}
	return 0;
}

static int plain_run(void *arg, long n)
{
	struct jbench *b = arg;
	for (long i = 0; i < n; i++) {
		memcpy(b->buf, &b->seq, sizeof(b->seq));
		b->seq++;
		if (b->off + (off_t)b->rec > (off_t)PLAIN_SIZE)
			b->off = 0;
		if (pwrite(b->fd, b->buf, b->rec, b->off) != (ssize_t)b->rec)
			return -EIO;
		b->off += (off_t)b->rec;
		if (b->plain_sync && fdatasync(b->fd))
			return -errno;
	}
	return 0;
}

static int solo_setup(struct jbench *b)
{
	name_path(b);
	bench_cleanup_push(remove_tree, b->path);
	if (b->policy >= 0)
		return open_journal(b, SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE);
	if (mkdir(b->path, 0700))
		return -errno;
	char file[160];
	snprintf(file, sizeof(file), "%s/plain", b->path);
	b->fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (b->fd < 0)
		return -errno;
	int err = posix_fallocate(b->fd, 0, PLAIN_SIZE);
	return err && err != EOPNOTSUPP ? -err : 0;
}

static void solo_teardown(struct jbench *b)
{
	if (b->j)
		shmkit_journal_close(b->j);
	if (b->fd >= 0)
		close(b->fd);
	remove_tree(b->path);
	bench_cleanup_pop(false);
}

/* One throughput row: 64-byte rows in msg/s, 4 KiB rows in GB/s.
 * References call it directly (they are measured on demand even when
 * --filter hides them); suite rows check bench_want() first. */
static void append_row(const char *name, int policy, bool plain_sync, size_t rec,
                       const char *ref)
{
	static struct jbench b;
	struct bench_stat st;
	bool synced = policy == SHMKIT_DUR_SYNC || plain_sync;
	long iters = synced ? 50 : rec > 64 ? 500 : 20000;

	memset(&b, 0, sizeof(b));
	b.fd = -1;
	b.rec = rec;
	b.policy = policy;
	b.plain_sync = plain_sync;
	int err = solo_setup(&b);
	if (!err)
		err = bench_solo(policy >= 0 ? append_run : plain_run, &b, iters,
		                 synced ? SYNC_BATCHES : 0, &st);
	solo_teardown(&b);
	if (!bench_check(name, err))
		return;
	if (rec > 64)
		bench_report_gbps(name, &st, rec, ref);
	else
		bench_report_rate(name, &st, ref);
}

static void ref_write_64(void) { append_row("write_64", -1, false, 64, NULL); }
static void ref_write_4k(void) { append_row("write_4k", -1, false, 4096, NULL); }
static void ref_fdatasync_64(void) { append_row("write_fdatasync_64", -1, true, 64, NULL); }
static void ref_fdatasync_4k(void) { append_row("write_fdatasync_4k", -1, true, 4096, NULL); }
BENCH_REF("write_64", ref_write_64)
BENCH_REF("write_4k", ref_write_4k)
BENCH_REF("write_fdatasync_64", ref_fdatasync_64)
BENCH_REF("write_fdatasync_4k", ref_fdatasync_4k)

/* ---- tail latency ----------------------------------------------------------- */

static int tail_setup(void *arg)
{
	struct jbench *b = arg;
	name_path(b);
	bench_cleanup_push(remove_tree, b->path);
	b->ack = bench_shared_alloc(64);
	if (!b->ack)
		return -ENOMEM;
	/* Make the journal now; the writer reopens it after fork. */
	int err = open_journal(b, SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE);
	if (!err)
		err = shmkit_journal_close(b->j);
	b->j = NULL;
	return err;
}

static int tail_parent_init(void *arg)
{
	return open_journal(arg, SHMKIT_JOURNAL_WRITE);
}

static int tail_child_init(void *arg)
{
	struct jbench *b = arg;
	return shmkit_journal_open(&b->j, b->path, NULL);
}

static int tail_ping(void *arg, long n)
{
	struct jbench *b = arg;
	for (long i = 0; i < n; i++) {
		b->seq++;
		memcpy(b->buf, &b->seq, sizeof(b->seq));
		int err = shmkit_journal_append(b->j, b->buf, 64, NULL);
		/* The reader's release store of the seq it read; acquire pairs. */
		if (err || (err = bench_spin_until(b->ack, (uint32_t)b->seq)))
			return err;
	}
	return 0;
}

static int tail_pong(void *arg, long total)
{
	struct jbench *b = arg;
	struct shmkit_record rec;
	for (long i = 0; i < total; i++) {
		int r;
		while ((r = shmkit_journal_next(b->j, &rec, BENCH_WAIT_NS)) == -ETIMEDOUT)
			if (bench_aborted())
				return -ECANCELED;
		if (r != 1)
			return r < 0 ? r : -EBADMSG;
		uint64_t got;
		memcpy(&got, rec.data, sizeof(got));
		if (got != ++b->seq || rec.len != 64)
			return -EBADMSG;
		/* Release: orders our reading before the answer; pairs with
		 * the writer's acquire spin in tail_ping(). */
		sk_store_release(b->ack, (uint32_t)got);
	}
	return 0;
}

static void tail_teardown(void *arg)
{
	struct jbench *b = arg;
	if (b->j)
		shmkit_journal_close(b->j);
	b->j = NULL;
	if (b->ack)
		bench_shared_free(b->ack, 64);
	remove_tree(b->path);
	bench_cleanup_pop(false);
}

static void tail_row(void)
{
	static struct jbench b;
	struct bench_stat st;
	struct bench_pair p = {
		.iters = 2000, .arg = &b, .setup = tail_setup,
		.parent_init = tail_parent_init, .child_init = tail_child_init,
		.parent_run = tail_ping, .child_run = tail_pong, .teardown = tail_teardown,
	};

	memset(&b, 0, sizeof(b));
	b.fd = -1;
	b.policy = SHMKIT_DUR_NONE;
	if (bench_check("journal_tail_rtt", bench_pair(&p, &st)))
		bench_report_ns("journal_tail_rtt", &st, "futex_rtt");
}

static void journal_suite(void)
{
	static const char *const pol[] = { "none", "async", "sync", "group" };
	for (int p = SHMKIT_DUR_NONE; p <= SHMKIT_DUR_GROUP; p++) {
		bool synced = p == SHMKIT_DUR_SYNC || p == SHMKIT_DUR_GROUP;
		char n64[48], n4k[48];
		snprintf(n64, sizeof(n64), "journal_append_%s_64", pol[p]);
		snprintf(n4k, sizeof(n4k), "journal_append_%s_4k", pol[p]);
		if (bench_want(n64))
			append_row(n64, p, false, 64, synced ? "write_fdatasync_64" : "write_64");
		if (bench_want(n4k))
			append_row(n4k, p, false, 4096, synced ? "write_fdatasync_4k" : "write_4k");
	}
	if (bench_want("journal_tail_rtt"))
		tail_row();
}

BENCH_SUITE("journal", journal_suite)
