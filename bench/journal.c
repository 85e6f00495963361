/*
 * journal.c (bench) - the durable journal against what a user would pick
 * instead: a plain file (pwrite(2), with fdatasync(2) for the synced
 * levels) and SQLite (a table in WAL mode, one row per insert), each
 * durability level next to its equivalents, measured interleaved in the
 * same run (batch by batch: journal, file, SQLite, journal, ...; see
 * bench_solo_interleaved), for 64-byte and 4 KiB records; and tail
 * latency from an append to a live reader in another process.
 *
 * Rows (64-byte rows in msg/s, 4 KiB rows in GB/s; SZ is 64 or 4k)
 *   write_SZ                pwrite(2) of one record into a preallocated
 *                           file, no sync
 *   write_fdatasync_SZ      the same, then fdatasync(2): one durable write
 *   write_fdatasync_zeroed_SZ  the same into a file whose blocks were
 *       written (zeros) beforehand, so no sync converts an unwritten
 *       extent: the fastest a plain file gets (the journal writes zeros
 *       ahead of itself under SYNC and GROUP for this reason, see
 *       writer_fill in src/journal_write.c); ratio against
 *       journal_append_sync_SZ, so below 1.0x means the journal is ahead
 *   journal_append_LEVEL_SZ one shmkit_journal_append() per record, rolling
 *       64 MiB files, keeping two, LEVEL none, async, sync, group (64
 *       records or 10 ms); ratio against the plain-file row of its kind
 *       (write_fdatasync_SZ for sync and group, write_SZ for the others)
 *   sqlite_wal_MODE_SZ      one INSERT (seq, time, blob) per record, its
 *       own transaction, prepared once; journal_mode=WAL,
 *       synchronous=MODE; ratio against the journal row of the matching
 *       level, so below 1.0x means the journal is ahead:
 *         full   / journal_append_sync_SZ   both durable when the call
 *                returns (SQLite syncs the WAL at every commit)
 *         normal / journal_append_group_SZ  both bound what a power loss
 *                takes, not per record (SQLite syncs at checkpoints, every
 *                1000 WAL pages; the journal every 64 records or 10 ms)
 *         off    / journal_append_async_SZ  neither waits for the disk
 *                (async only starts write-back, a MiB at a time; it is
 *                the slower of the journal's two unsynced levels, so also
 *                the bound for none)
 *       Without SQLite (Debian libsqlite3-dev; the Makefile defines
 *       SK_HAVE_SQLITE) these rows say "skipped: not installed".
 *   journal_tail_rtt [ns]: the writer appends, a reader in another process
 *       wakes in shmkit_journal_next() (adaptive wait) and answers through
 *       a shared word; one round trip, against futex_rtt
 * Journals, files and databases live in /tmp (a real file system: tmpfs
 * would make every sync free) under /tmp/shmkit-bench-PID-journal-N,
 * removed after each group and on SIGINT/SIGTERM/SIGHUP.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifdef SK_HAVE_SQLITE
#include <sqlite3.h>
#define HAVE_SQLITE 1
#else
#define HAVE_SQLITE 0
#endif

#define PLAIN_SIZE (64u << 20)
#define ZEROED_SIZE (8u << 20)   /* more than a full run's synced 4 KiB writes */
#define SYNC_BATCHES 30
#define UNSYNCED_BATCHES 40

enum { JB_PLAIN, JB_JOURNAL, JB_SQLITE };

struct jbench {
	char path[128];
	size_t rec;
	int kind;              /* JB_PLAIN, JB_JOURNAL, JB_SQLITE */
	int policy;            /* enum shmkit_durability, or -1: not a journal */
	bool plain_sync;
	off_t plain_size;      /* the plain file's writes wrap here */
	int sqlite_sync;       /* 0 OFF, 1 NORMAL, 2 FULL */
#ifdef SK_HAVE_SQLITE
	sqlite3 *db;
	sqlite3_stmt *ins;
#endif
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

/* ---- appends: journal, plain file, SQLite ---------------------------------- */

static int open_journal(struct jbench *b, unsigned flags)
{
	struct shmkit_journal_opts o = {
		.flags = flags, .durability = b->policy, .keep_files = 2,
		.max_record = 4096,
	};
	return shmkit_journal_open(&b->j, b->path, &o);
}

/* The next record: its sequence number in the first 8 bytes. */
static void next_record(struct jbench *b)
{
	memcpy(b->buf, &b->seq, sizeof(b->seq));
	b->seq++;
}

static int append_run(void *arg, long n)
{
	struct jbench *b = arg;
	for (long i = 0; i < n; i++) {
		next_record(b);
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
		next_record(b);
		if (b->off + (off_t)b->rec > b->plain_size)
			b->off = 0;
		if (pwrite(b->fd, b->buf, b->rec, b->off) != (ssize_t)b->rec)
			return -EIO;
		b->off += (off_t)b->rec;
		if (b->plain_sync && fdatasync(b->fd))
			return -errno;
	}
	return 0;
}

#ifdef SK_HAVE_SQLITE
static int sqlite_err(struct jbench *b, int rc)
{
	fprintf(stderr, "shmkit-bench: sqlite: %s\n", b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
	return -EIO;
}

/* One row per insert, each its own transaction (autocommit): the
 * sequence number, a CLOCK_REALTIME stamp (the journal stamps each record
 * alike) and the payload. */
static int sqlite_run(void *arg, long n)
{
	struct jbench *b = arg;
	for (long i = 0; i < n; i++) {
		next_record(b);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		sqlite3_bind_int64(b->ins, 1, (sqlite3_int64)b->seq);
		sqlite3_bind_int64(b->ins, 2, (sqlite3_int64)ts.tv_sec * 1000000000 + ts.tv_nsec);
		sqlite3_bind_blob(b->ins, 3, b->buf, (int)b->rec, SQLITE_STATIC);
		int rc = sqlite3_step(b->ins);
		sqlite3_reset(b->ins);
		if (rc != SQLITE_DONE)
			return sqlite_err(b, rc);
	}
	return 0;
}

static int sqlite_open(struct jbench *b)
{
	static const char *const mode[] = { "OFF", "NORMAL", "FULL" };
	char file[160], sql[160];
	snprintf(file, sizeof(file), "%.127s/log.sqlite", b->path);
	int rc = sqlite3_open_v2(file, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK)
		return sqlite_err(b, rc);
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
	         "CREATE TABLE log(seq INTEGER PRIMARY KEY, t INTEGER, data BLOB);",
	         mode[b->sqlite_sync]);
	if ((rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(b->db, "INSERT INTO log VALUES(?, ?, ?)", -1, &b->ins, NULL)))
		return sqlite_err(b, rc);
	return 0;
}

static void sqlite_close(struct jbench *b)
{
	sqlite3_finalize(b->ins);
	sqlite3_close(b->db);
	b->ins = NULL;
	b->db = NULL;
}
#else
static int sqlite_run(void *arg, long n)
{
	return -ENOSYS;
}

static int sqlite_open(struct jbench *b)
{
	return -ENOSYS;
}

static void sqlite_close(struct jbench *b)
{
}
#endif

/* Write size bytes of zeros and make them durable: every block written,
 * none an unwritten extent. */
static int zero_fill(int fd, off_t size)
{
	static const char zeros[65536];
	for (off_t at = 0; at < size; at += (off_t)sizeof(zeros))
		if (pwrite(fd, zeros, sizeof(zeros), at) != (ssize_t)sizeof(zeros))
			return -EIO;
	return fsync(fd) ? -errno : 0;
}

static int solo_setup(struct jbench *b)
{
	name_path(b);
	bench_cleanup_push(remove_tree, b->path);
	if (b->kind == JB_JOURNAL)
		return open_journal(b, SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE);
	if (mkdir(b->path, 0700))
		return -errno;
	if (b->kind == JB_SQLITE)
		return sqlite_open(b);
	char file[160];
	snprintf(file, sizeof(file), "%.127s/plain", b->path);
	b->fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (b->fd < 0)
		return -errno;
	if (b->plain_size == ZEROED_SIZE)
		return zero_fill(b->fd, ZEROED_SIZE);
	int err = posix_fallocate(b->fd, 0, PLAIN_SIZE);
	return err && err != EOPNOTSUPP ? -err : 0;
}

static void solo_teardown(struct jbench *b)
{
	if (b->j)
		shmkit_journal_close(b->j);
	if (b->fd >= 0)
		close(b->fd);
	sqlite_close(b);
	remove_tree(b->path);
	bench_cleanup_pop(false);
}

/* ---- interleaved groups ---------------------------------------------------- */

/* One contestant of a group: its row name, what it is, the row its ratio
 * is taken against (NULL: none) and operations per batch. */
struct contestant {
	const char *name;
	int kind;               /* JB_PLAIN, JB_JOURNAL, JB_SQLITE */
	int level;              /* JB_JOURNAL: enum shmkit_durability;
	                           JB_PLAIN: 1 = fdatasync, 2 = fdatasync
	                           into a zero-filled file; JB_SQLITE: 0 OFF,
	                           1 NORMAL, 2 FULL */
	const char *ref;
	long iters;
};

#define GROUP_MAX 6

static bool group_wanted(const struct contestant *c, int k)
{
	for (int i = 0; i < k; i++)
		if (bench_want(c[i].name))
			return true;
	return false;
}

/* Set up every contestant of the group (SQLite ones only when built
 * with it), time them batch by batch interleaved, report in order. */
static void group_run(const struct contestant *c, int k, size_t rec, int batches)
{
	static struct jbench b[GROUP_MAX];
	struct bench_solo_spec sp[GROUP_MAX];
	struct bench_stat st[GROUP_MAX];
	int map[GROUP_MAX], n = 0, err = 0;

	if (!group_wanted(c, k))
		return;
	for (int i = 0; i < k && !err; i++) {
		if (c[i].kind == JB_SQLITE && !HAVE_SQLITE) {
			bench_skip(c[i].name, "not installed (Debian libsqlite3-dev)");
			continue;
		}
		memset(&b[n], 0, sizeof(b[n]));
		b[n].fd = -1;
		b[n].rec = rec;
		b[n].kind = c[i].kind;
		b[n].policy = c[i].kind == JB_JOURNAL ? c[i].level : -1;
		b[n].plain_sync = c[i].kind == JB_PLAIN && c[i].level;
		b[n].plain_size = c[i].kind == JB_PLAIN && c[i].level == 2 ? ZEROED_SIZE : PLAIN_SIZE;
		b[n].sqlite_sync = c[i].level;
		err = solo_setup(&b[n]);
		sp[n] = (struct bench_solo_spec){
			.run = c[i].kind == JB_JOURNAL ? append_run :
			       c[i].kind == JB_SQLITE ? sqlite_run : plain_run,
			.arg = &b[n], .iters = c[i].iters,
		};
		map[n++] = i;
	}
	if (!err)
		err = bench_solo_interleaved(sp, n, batches, st);
	for (int i = n - 1; i >= 0; i--)
		solo_teardown(&b[i]);
	for (int i = 0; i < n; i++) {
		const struct contestant *ci = &c[map[i]];
		if (!bench_check(ci->name, err))
			break;
		if (rec > 64)
			bench_report_gbps(ci->name, &st[i], rec, ci->ref);
		else
			bench_report_rate(ci->name, &st[i], ci->ref);
	}
}

/* Levels that sync: each record durable when its call returns (sync,
 * full), or every so often (group, normal): all wait for the disk, so they
 * are interleaved with each other and with write + fdatasync. */
static void synced_group(size_t rec, const char *sz)
{
	char n[6][48];
	snprintf(n[0], sizeof(n[0]), "write_fdatasync_%s", sz);
	snprintf(n[1], sizeof(n[1]), "journal_append_sync_%s", sz);
	snprintf(n[2], sizeof(n[2]), "sqlite_wal_full_%s", sz);
	snprintf(n[3], sizeof(n[3]), "journal_append_group_%s", sz);
	snprintf(n[4], sizeof(n[4]), "sqlite_wal_normal_%s", sz);
	snprintf(n[5], sizeof(n[5]), "write_fdatasync_zeroed_%s", sz);
	struct contestant c[] = {
		{ n[0], JB_PLAIN, 1, NULL, 50 },
		{ n[1], JB_JOURNAL, SHMKIT_DUR_SYNC, n[0], 50 },
		{ n[2], JB_SQLITE, 2, n[1], 50 },
		{ n[3], JB_JOURNAL, SHMKIT_DUR_GROUP, n[0], rec > 64 ? 500 : 2000 },
		{ n[4], JB_SQLITE, 1, n[3], rec > 64 ? 200 : 1000 },
		{ n[5], JB_PLAIN, 2, n[1], 50 },
	};
	group_run(c, 6, rec, SYNC_BATCHES);
}

/* Levels that never wait for the disk. */
static void unsynced_group(size_t rec, const char *sz)
{
	char n[4][48];
	bool big = rec > 64;
	snprintf(n[0], sizeof(n[0]), "write_%s", sz);
	snprintf(n[1], sizeof(n[1]), "journal_append_none_%s", sz);
	snprintf(n[2], sizeof(n[2]), "journal_append_async_%s", sz);
	snprintf(n[3], sizeof(n[3]), "sqlite_wal_off_%s", sz);
	struct contestant c[] = {
		{ n[0], JB_PLAIN, 0, NULL, big ? 500 : 20000 },
		{ n[1], JB_JOURNAL, SHMKIT_DUR_NONE, n[0], big ? 500 : 20000 },
		{ n[2], JB_JOURNAL, SHMKIT_DUR_ASYNC, n[0], big ? 500 : 20000 },
		{ n[3], JB_SQLITE, 0, n[2], big ? 200 : 1000 },
	};
	group_run(c, 4, rec, UNSYNCED_BATCHES);
}

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
	synced_group(64, "64");
	synced_group(4096, "4k");
	unsynced_group(64, "64");
	unsynced_group(4096, "4k");
	if (bench_want("journal_tail_rtt"))
		tail_row();
}

BENCH_SUITE("journal", journal_suite)
