/*
 * cmd_seg.c - the segment subcommands of shmkit: ls, create, info, rm, gc,
 * read, write.  Public API only: listing through shmkit_seg_list(),
 * descriptions through shmkit_seg_info_name(), bytes through the data
 * area of shmkit_seg_open() (the whole mapping of a foreign segment,
 * opened SHMKIT_RAW).
 *
 * Reading and writing copy through a private buffer under a SIGBUS guard:
 * a foreign file truncated behind our back is reported, not a crash.
 *
 * Two guards against losing data by mistake: `write` refuses a segment
 * that is not plain bytes (a channel's, bus's or journal's control block)
 * unless --raw, and `rm` removes a file: name only when the file starts
 * with a shmkit segment header, unless --force.  Both recognise formats by
 * their first 8 bytes (format_of), as the library and journal write them.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bridge/stats_read.h"
#include "cmd.h"
#include "sysvtab.h"

#define SK_TOOL_SHM_DIR "/dev/shm"

#define CHUNK 65536

/* ---- small helpers ------------------------------------------------------ */

/* "shmkit: WHAT: message" for failures the library did not report. */
static int fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shmkit: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int show_help(const char *text)
{
	fputs(text, stdout);
	return 0;
}

/* A size or offset with optional K/M/G suffix. */
static int parse_size_opt(const char *cmd, const char *opt, const char *s, size_t *out)
{
	if (shmkit_parse_size(s, out))
		return tool_usage("%s: %s '%s' is not a size (a number with optional K, M or G)",
		                  cmd, opt, s);
	return 0;
}

static const char *backend_label(int backend)
{
	switch (backend) {
	case SHMKIT_POSIX: return "posix";
	case SHMKIT_SYSV: return "sysv";
	case SHMKIT_FILE: return "file";
	case SHMKIT_ANON: return "anon";
	case SHMKIT_MEMFD: return "memfd";
	}
	return "?";
}

static const char *kind_label(int kind)
{
	switch (kind) {
	case SHMKIT_KIND_FOREIGN: return "foreign";
	case SHMKIT_KIND_BYTES: return "bytes";
	case SHMKIT_KIND_CHAN: return "chan";
	case SHMKIT_KIND_BUS: return "bus";
	case SHMKIT_KIND_JOURNAL: return "journal";
	case SHMKIT_KIND_RPC: return "rpc";
	}
	return "?";
}

/* On-disk magics (the first 8 bytes, little-endian) of what shmkit writes:
 * a segment header (src/seg.h, SK_SEG_MAGIC) and the journal's files
 * (src/journal.h).  The tool sees them through the raw bytes only. */
#define SEG_MAGIC 0x0100544b4d4853ull
static const struct {
	uint64_t magic;
	const char *what;
} formats[] = {
	{ SEG_MAGIC, "shmkit segment whose header this build does not accept" },
	{ 0x01454c49464a4b53ull, "journal data file" },
	{ 0x014154454d4a4b53ull, "journal.meta file" },
};

/* The first 8 bytes of an object, as its magic. */
static uint64_t magic_of(const unsigned char head[8])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | head[i];
	return v;
}

/* What a magic says the object is, or NULL if none of ours. */
static const char *format_of(uint64_t magic)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].magic == magic)
			return formats[i].what;
	return NULL;
}

static void owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", res->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
}

/* Exact and short: "4K", "1M", else the byte count. */
static void size_text(size_t v, char *buf, size_t len)
{
	static const char units[] = "GMK";

	for (int i = 0; i < 3; i++) {
		size_t unit = (size_t)1 << (10 * (3 - i));
		if (v >= unit && v % unit == 0) {
			snprintf(buf, len, "%zu%c", v / unit, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%zu", v);
}

/* Bytes a segment holds for its user: the data area of a managed one, the
 * whole mapping of a foreign one. */
static size_t useful_size(const struct shmkit_seg_info *st)
{
	return st->kind == SHMKIT_KIND_FOREIGN ? st->map_size : st->data_size;
}

/* What ls shows after the kind of a segment whose creator has not
 * finished it (shmkit_seg_info.initialising). */
static const char *init_label(int initialising)
{
	return initialising == 2 ? " (unfinished, creator gone)" : initialising ? " (initialising)" : "";
}

static const char *alive_label(int alive)
{
	return alive > 0 ? "alive" : alive == 0 ? "dead" : "unknown";
}

/* The name to give back to shmkit for this segment: a System V segment by
 * key when it has one (a removed one loses its key), else by id. */
static void address_of(const struct shmkit_seg_info *st, char *buf, size_t len)
{
	if (st->backend == SHMKIT_SYSV && st->key != 0)
		snprintf(buf, len, "sysv:0x%08lx", (unsigned long)(uint32_t)st->key);
	else if (st->backend == SHMKIT_SYSV)
		snprintf(buf, len, "sysv:id=%d", st->shmid);
	else
		snprintf(buf, len, "%s", st->name);
}

static void time_text(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "unknown");
}

/* ---- one stat as JSON (ls and info) -------------------------------------- */

static void json_kv_num(const char *key, long long v, bool known)
{
	if (known)
		printf(",\"%s\":%lld", key, v);
	else
		printf(",\"%s\":null", key);
}

static const char *json_tristate(int v)
{
	return v > 0 ? "true" : v == 0 ? "false" : "null";
}

/* Prints the members of one object, without the closing brace.  kind
 * overrides kind_label(); unread: a System V segment ls did not attach,
 * whose header (persistence, creation time, version) it did not read. */
static void stat_json_open(const struct shmkit_seg_info *st, const char *kind, bool unread)
{
	char buf[64], addr[sizeof(st->name) + 32];
	bool managed = st->kind != SHMKIT_KIND_FOREIGN;

	address_of(st, addr, sizeof(addr));
	printf("{");
	tool_json_name("name", addr);
	printf(",");
	tool_json_name("canonical", st->name);
	printf(",\"backend\":\"%s\",\"kind\":", backend_label(st->backend));
	tool_json_str(kind ? kind : kind_label(st->kind));
	json_kv_num("size", (long long)useful_size(st), !unread);
	printf(",\"map_size\":%zu", st->map_size);
	json_kv_num("data_offset", (long long)st->data_offset, managed);
	owner_name(st->uid, buf, sizeof(buf));
	printf(",\"owner\":");
	tool_json_str(buf);
	printf(",\"uid\":%u,\"mode\":\"%04o\"", (unsigned)st->uid, st->mode);
	json_kv_num("attach_count", st->attach_count, st->attach_count >= 0);
	json_kv_num("creator_pid", st->creator_pid, st->creator_pid > 0);
	printf(",\"creator_alive\":%s,", json_tristate(st->creator_alive));
	tool_json_time("created", st->created_ns);
	printf(",\"removed\":%s", st->removed ? "true" : "false");
	printf(",\"persistent\":%s", unread ? "null" : st->persistent ? "true" : "false");
	printf(",\"in_use\":%s", json_tristate(st->in_use));
	printf(",\"initialising\":%s", st->initialising == 2 ? "\"creator gone\"" :
	       st->initialising ? "true" : unread ? "null" : "false");
	json_kv_num("shmid", st->shmid, st->backend == SHMKIT_SYSV);
	if (st->backend == SHMKIT_SYSV)
		printf(",\"key\":\"0x%08lx\"", (unsigned long)(uint32_t)st->key);
	else
		printf(",\"key\":null");
	json_kv_num("version", st->version, managed && st->version);
}

/* ---- ls ------------------------------------------------------------------ */

static int bridge_stats(const char *name, char *buf, size_t cap);

struct row {
	struct shmkit_seg_info st;
	const char *kind; /* overrides kind_label(): no-access, semaphore, shmkit */
	bool unread;      /* System V: header not read (ls does not attach) */
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static struct row *rows_add(struct rows *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct row *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		r->v = v;
		r->cap = cap;
	}
	struct row *row = &r->v[r->n++];
	memset(row, 0, sizeof(*row));
	return row;
}

static int collect_one(const struct shmkit_seg_info *st, void *arg)
{
	struct row *row = rows_add(arg);

	if (!row)
		return -ENOMEM;
	row->st = *st;
	return 0;
}

/* Every segment shmkit_seg_list() reports, into r (freed on failure).
 * gc's view: it reads every header (System V ones by attaching). */
static int collect_rows(struct rows *r)
{
	int err = shmkit_seg_list(collect_one, r);

	if (err) {
		free(r->v);
		r->v = NULL;
		r->n = r->cap = 0;
	}
	return err;
}

static int row_cmp(const void *a, const void *b)
{
	const struct shmkit_seg_info *x = &((const struct row *)a)->st;
	const struct shmkit_seg_info *y = &((const struct row *)b)->st;

	if (x->backend != y->backend)
		return x->backend - y->backend;
	if (x->backend == SHMKIT_SYSV)
		return (x->shmid > y->shmid) - (x->shmid < y->shmid);
	return strcmp(x->name, y->name);
}

/* ls: a file of /dev/shm described by stat(2) alone (one this user may
 * not open, or a semaphore). */
static int add_posix_stat(struct rows *r, int dfd, const char *file, const char *kind)
{
	struct stat sb;

	if (fstatat(dfd, file, &sb, AT_SYMLINK_NOFOLLOW))
		return 0; /* gone meanwhile */
	struct row *row = rows_add(r);
	if (!row)
		return -ENOMEM;
	struct shmkit_seg_info *st = &row->st;
	st->backend = SHMKIT_POSIX;
	snprintf(st->name, sizeof(st->name), "posix:/%s", file);
	st->map_size = (size_t)sb.st_size;
	st->mode = sb.st_mode & 07777;
	st->uid = sb.st_uid;
	st->creator_alive = -1;
	st->attach_count = -1;
	st->in_use = -1;
	st->shmid = -1;
	row->kind = kind;
	return 0;
}

/* ls: every file of /dev/shm.  A segment is described by its header
 * (shmkit_seg_info_name: the file is opened and read, nothing of it
 * changes); one this user may not open is listed from stat(2) as
 * "no-access", as ipcs lists what it cannot read; POSIX semaphores
 * (sem.NAME) only with --all. */
static int ls_posix(struct rows *r, bool all)
{
	DIR *d = opendir(SK_TOOL_SHM_DIR);
	struct dirent *e;
	char name[PATH_MAX + 16];
	int err = 0;

	if (!d)
		return 0;
	while (!err && (e = readdir(d))) {
		if (e->d_name[0] == '.' || (e->d_type != DT_REG && e->d_type != DT_UNKNOWN))
			continue;
		if (!strncmp(e->d_name, "sem.", 4)) {
			if (all)
				err = add_posix_stat(r, dirfd(d), e->d_name, "semaphore");
			continue;
		}
		struct shmkit_seg_info st;
		snprintf(name, sizeof(name), "posix:/%s", e->d_name);
		int res = shmkit_seg_info_name(name, &st);
		if (res == 0)
			err = collect_one(&st, r);
		else if (res == -EACCES || res == -EPERM)
			err = add_posix_stat(r, dirfd(d), e->d_name, "no-access");
		else if (res != -ENOENT)
			err = add_posix_stat(r, dirfd(d), e->d_name, "unknown");
	}
	closedir(d);
	return err;
}

/* Byte 0 of a System V key's lock file (src/peer.h) is locked by its
 * creator while it initialises the segment: 1 locked, 0 free, -1 no lock
 * file (not made by shmkit, or removed by hand). */
static int sysv_creator_lock(long key)
{
	char path[64];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	snprintf(path, sizeof(path), SK_TOOL_SHM_DIR "/.shmkit-sysv-%08lx.lock",
	         (unsigned long)(uint32_t)key);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == EACCES ? 0 : -1; /* exists, unreadable: shmkit's all the same */
	int held = !fcntl(fd, F_OFD_GETLK, &fl) && fl.l_type != F_UNLCK;
	close(fd);
	return held;
}

/* One System V segment for ls, from the kernel's table alone: shmat()
 * would change its attach time and last pid, which ipcs never does.  A
 * segment shmkit made has a lock file (/dev/shm/.shmkit-sysv-KEY.lock):
 * kind "shmkit", its header unread; without one, "foreign".  Segments
 * this user may not read (shmctl IPC_STAT refuses) are "no-access". */
static int add_sysv(struct rows *r, const struct sysv_row *l, bool attach)
{
	struct shmid_ds ds;
	bool readable = shmctl(l->shmid, IPC_STAT, &ds) == 0 || errno != EACCES;
	struct row *row;

	if (attach && readable) { /* --attach: read the header, as info does */
		struct shmkit_seg_info st;
		char name[32];
		snprintf(name, sizeof(name), "sysv:id=%d", l->shmid);
		if (shmkit_seg_info_name(name, &st) == 0)
			return collect_one(&st, r);
	}
	if (!(row = rows_add(r)))
		return -ENOMEM;
	struct shmkit_seg_info *st = &row->st;
	st->backend = SHMKIT_SYSV;
	st->kind = SHMKIT_KIND_FOREIGN;
	snprintf(st->name, sizeof(st->name), "sysv:id=%d", l->shmid);
	st->map_size = (size_t)l->size;
	st->mode = l->perms & 0777;
	st->uid = (uid_t)l->uid;
	st->creator_pid = l->cpid;
	st->creator_alive = kill(l->cpid, 0) == 0 || errno == EPERM;
	st->attach_count = l->nattch;
	st->in_use = l->nattch > 0;
	st->removed = (l->perms & 01000) != 0; /* SHM_DEST */
	st->shmid = l->shmid;
	st->key = (long)(uint32_t)l->key;
	int lock = sysv_lock_file(st->key) ? sysv_creator_lock(st->key) : -1;
	if (!readable) {
		row->kind = "no-access";
		row->unread = true;
	} else if (lock >= 0) {
		row->kind = "shmkit";
		row->unread = true;
		st->initialising = lock;
	}
	return 0;
}

struct ls_sysv_ctx {
	struct rows *r;
	bool attach;
	int err;
};

static void ls_sysv_row(const struct sysv_row *row, void *arg)
{
	struct ls_sysv_ctx *c = arg;

	if (!c->err)
		c->err = add_sysv(c->r, row, c->attach);
}

/* ls: every System V segment of the kernel's table (tools/sysvtab.c). */
static int ls_sysv(struct rows *r, bool attach)
{
	struct ls_sysv_ctx c = { r, attach, 0 };

	sysv_table_each(ls_sysv_row, &c);
	return c.err;
}

enum { COLS = 9 };
static const char *const ls_head[COLS] = {
	"BACKEND", "NAME", "SIZE", "KIND", "OWNER", "MODE", "NATTCH", "CPID", "CREATOR",
};

static void ls_cells(const struct row *row, char cell[COLS][4200])
{
	const struct shmkit_seg_info *st = &row->st;

	snprintf(cell[0], 4200, "%s", backend_label(st->backend));
	char addr[sizeof(st->name) + 32];
	address_of(st, addr, sizeof(addr));
	tool_escape(addr, cell[1], 4200);
	size_text(useful_size(st), cell[2], 4200);
	snprintf(cell[3], 4200, "%s%s", row->kind ? row->kind : kind_label(st->kind),
	         init_label(st->initialising));
	owner_name(st->uid, cell[4], 4200);
	snprintf(cell[5], 4200, "%04o", st->mode);
	if (st->attach_count >= 0)
		snprintf(cell[6], 4200, "%ld", st->attach_count);
	else
		snprintf(cell[6], 4200, "-");
	if (st->creator_pid > 0)
		snprintf(cell[7], 4200, "%d", (int)st->creator_pid);
	else
		snprintf(cell[7], 4200, "-");
	snprintf(cell[8], 4200, "%s%s", st->creator_pid > 0 ? alive_label(st->creator_alive) : "-",
	         st->removed ? " removed" : "");
}

static void ls_print_line(const char *const cell[COLS], const int width[COLS])
{
	for (int c = 0; c + 1 < COLS; c++)
		printf("%-*s  ", width[c], cell[c]);
	printf("%s\n", cell[COLS - 1]);
}

static void ls_print_table(const struct rows *r)
{
	static char cell[COLS][4200];
	int width[COLS];

	for (int c = 0; c < COLS; c++)
		width[c] = (int)strlen(ls_head[c]);
	for (size_t i = 0; i < r->n; i++) {
		ls_cells(&r->v[i], cell);
		for (int c = 0; c < COLS; c++)
			if ((int)strlen(cell[c]) > width[c])
				width[c] = (int)strlen(cell[c]);
	}
	ls_print_line(ls_head, width);
	for (size_t i = 0; i < r->n; i++) {
		const char *line[COLS];
		ls_cells(&r->v[i], cell);
		for (int c = 0; c < COLS; c++)
			line[c] = cell[c];
		ls_print_line(line, width);
	}
}

static void ls_print_json(const struct rows *r)
{
	printf("[");
	for (size_t i = 0; i < r->n; i++) {
		printf(i ? ",\n " : "\n ");
		stat_json_open(&r->v[i].st, r->v[i].kind, r->v[i].unread);
		printf("}");
	}
	printf(r->n ? "\n]\n" : "]\n");
}

static const char ls_help[] =
	"usage: shmkit ls [--json] [--all] [--attach]\n"
	"\n"
	"List every shared-memory segment on the machine: shmkit's and foreign ones\n"
	"(POSIX segments in /dev/shm, System V segments from /proc/sysvipc/shm).\n"
	"Columns: backend, name (System V: key, or id once removed), size (data\n"
	"area of a managed segment, whole mapping of a foreign one), kind (bytes,\n"
	"chan, bus, journal, rpc, foreign; bridge: a ZeroMQ bridge's statistics,\n"
	"which shmkit info shows; no-access: this user may not open it;\n"
	"shmkit: a System V segment shmkit made, whose header ls does not read),\n"
	"owner, mode, attach count (System V), creator pid and whether it is\n"
	"alive; \"removed\" marks a System V segment that lives on until its last\n"
	"detach.  ls never attaches a System V segment (that would change its\n"
	"attach time and last pid, as ipcs never does) unless --attach.\n"
	"\n"
	"  --json     print a JSON array, one object per segment\n"
	"  --all      also list POSIX semaphores (sem.*)\n"
	"  --attach   attach System V segments this user may read, to show their\n"
	"             shmkit header (kind, data size, persistence, initialising)\n";

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "attach", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false, all = false, attach = false;
	struct rows r = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, ":ajh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'a': all = true; break;
		case 'A': attach = true; break;
		case 'h': return show_help(ls_help);
		default: return tool_bad_option("ls", c, argv);
		}
	}
	if (optind < argc)
		return tool_usage("ls: unexpected argument '%s'", argv[optind]);
	int err = ls_posix(&r, all);
	if (!err)
		err = ls_sysv(&r, attach);
	if (err) {
		free(r.v);
		return tool_err("ls", err);
	}
	if (r.n) /* r.v is NULL when nothing was found: no qsort(NULL, 0) */
		qsort(r.v, r.n, sizeof(*r.v), row_cmp);
	for (size_t i = 0; i < r.n; i++) { /* a bridge's statistics (not System V: no attach) */
		char probe[8];
		if (!r.v[i].kind && r.v[i].st.kind == SHMKIT_KIND_BYTES && !r.v[i].st.initialising &&
		    r.v[i].st.backend != SHMKIT_SYSV && bridge_stats(r.v[i].st.name, probe, sizeof(probe)) >= 0)
			r.v[i].kind = "bridge";
	}
	if (json)
		ls_print_json(&r);
	else
		ls_print_table(&r);
	free(r.v);
	return 0;
}

/* ---- create -------------------------------------------------------------- */

static const char create_help[] =
	"usage: shmkit create NAME --size S [--mode 0644] [--excl] [--populate]\n"
	"                          [--mlock] [--huge] [--temporary] [--json]\n"
	"\n"
	"Create a managed byte segment with S data bytes (K, M, G suffixes) after\n"
	"a one-page shmkit header.  NAME: NAME or posix:/NAME, sysv:0xKEY,\n"
	"sysv:/PATH:PROJ, file:PATH.  Without --excl an existing byte segment of\n"
	"that name is opened and reported as \"exists\"; if its size (or, with\n"
	"--mode, its mode) differs, that is an error (exit 1) and nothing changes.\n"
	"anon and memfd: segments cannot be named from another process; create\n"
	"them with the library.\n"
	"\n"
	"  --size S     data bytes (required)\n"
	"  --mode M     permission bits in octal (default 0600, umask ignored)\n"
	"  --excl       fail if the name exists\n"
	"  --populate   pre-fault the pages\n"
	"  --mlock      lock the pages in RAM\n"
	"  --huge       huge pages (sysv only from the tool)\n"
	"  --temporary  not persistent: `shmkit gc` may remove it once no live\n"
	"               process uses it (by default a created segment is kept\n"
	"               until `shmkit rm`)\n"
	"  --json       print one JSON object\n";

/* Print what create made or found (and close seg); 1 if the existing one
 * differs from what was asked (size, mode given), reported. */
static int create_report(const char *name, shmkit_seg *seg, bool created,
                         const struct shmkit_seg_opts *o, bool json)
{
	struct shmkit_seg_info st;
	int err = shmkit_seg_info(seg, &st);

	shmkit_seg_close(seg);
	if (err)
		return tool_err(name, err);
	const struct tool_geometry g[] = {
		{ "data size", !created, st.data_size, o->size, false, NULL },
		{ "mode", !created && o->mode, st.mode, o->mode, true, NULL },
	};
	if (tool_check_geometry(name, g, sizeof(g) / sizeof(g[0])))
		return 1;
	tool_made(st.name, created, "bytes", st.mode, json);
	if (json)
		printf("\"size\":%zu,\"map_size\":%zu,\"persistent\":%s}\n", st.data_size,
		       st.map_size, st.persistent ? "true" : "false");
	else
		printf("%zu data bytes, %zu mapped\n", st.data_size, st.map_size);
	return 0;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "excl", no_argument, NULL, 'x' },
		{ "populate", no_argument, NULL, 'p' },
		{ "mlock", no_argument, NULL, 'l' },
		{ "huge", no_argument, NULL, 'H' },
		{ "temporary", no_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* Made by a process that exits at once: persistent unless asked, so
	 * that gc does not take a segment someone made on purpose. */
	struct shmkit_seg_opts o = { .flags = SHMKIT_PERSIST };
	bool have_size = false, json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":s:m:xplHtjh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = parse_size_opt("create", "--size", optarg, &o.size)))
				return rc;
			have_size = true;
			break;
		case 'm':
			if ((rc = tool_parse_mode("create", "--mode", optarg, &o.mode)))
				return rc;
			break;
		case 'x': o.flags |= SHMKIT_EXCL; break;
		case 'p': o.flags |= SHMKIT_POPULATE; break;
		case 'l': o.flags |= SHMKIT_MLOCK; break;
		case 'H': o.flags |= SHMKIT_HUGE; break;
		case 't': o.flags &= ~SHMKIT_PERSIST; break;
		case 'j': json = true; break;
		case 'h': return show_help(create_help);
		default: return tool_bad_option("create", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("create: give exactly one NAME (see shmkit create --help)");
	const char *name = argv[optind];
	if ((rc = tool_check_name("create", name)))
		return rc;
	if (!have_size)
		return tool_usage("create: %s: --size is required", name);
	if (o.size == 0)
		return tool_usage("create: %s: --size must be at least 1 byte", name);
	/* Exclusive first, so the report can say whether we made it. */
	bool excl = o.flags & SHMKIT_EXCL;
	shmkit_seg *seg;
	o.flags |= SHMKIT_EXCL;
	int err = shmkit_seg_create(&seg, name, &o);
	bool created = !err;
	if (err == -EEXIST && !excl) {
		o.flags &= ~SHMKIT_EXCL;
		err = shmkit_seg_create(&seg, name, &o);
	}
	if (err)
		return tool_open_err(name, err);
	return create_report(name, seg, created, &o, json);
}

/* ---- info ---------------------------------------------------------------- */

static void info_print_text(const char *name, const struct shmkit_seg_info *st)
{
	char addr[sizeof(st->name) + 32], buf[64], shown[4 * sizeof(addr)];

	address_of(st, addr, sizeof(addr));
	tool_escape(addr, shown, sizeof(shown));
	printf("name:       %s\n", shown);
	if (strcmp(addr, st->name)) {
		tool_escape(st->name, shown, sizeof(shown));
		printf("canonical:  %s\n", shown);
	}
	printf("backend:    %s\n", backend_label(st->backend));
	if (st->kind == SHMKIT_KIND_FOREIGN) {
		printf("kind:       foreign (no shmkit header: read and write address the whole mapping)\n");
	} else {
		printf("kind:       %s%s (shmkit format version %u)\n", kind_label(st->kind),
		       init_label(st->initialising), st->version);
		size_text(st->data_size, buf, sizeof(buf));
		printf("data:       %zu bytes (%s) at offset %zu\n", st->data_size, buf, st->data_offset);
	}
	size_text(st->map_size, buf, sizeof(buf));
	printf("mapped:     %zu bytes (%s)\n", st->map_size, buf);
	owner_name(st->uid, buf, sizeof(buf));
	printf("owner:      %s (uid %u)\n", buf, (unsigned)st->uid);
	printf("mode:       %04o\n", st->mode);
	if (st->creator_pid > 0)
		printf("creator:    pid %d, %s\n", (int)st->creator_pid, alive_label(st->creator_alive));
	else
		printf("creator:    unknown\n");
	time_text(st->created_ns, buf, sizeof(buf));
	printf("created:    %s\n", buf);
	printf("in use:     %s\n", st->in_use > 0 ? "yes (open or attached, the kernel says)" :
	       st->in_use == 0 ? "no shmkit handle has it open" : "unknown");
	if (st->kind != SHMKIT_KIND_FOREIGN)
		printf("persistent: %s\n", st->persistent ? "yes: gc leaves it; remove it with `shmkit rm`"
		                                         : "no: gc removes it once only dead processes used it");
	if (st->backend == SHMKIT_SYSV) {
		printf("shmid:      %d\n", st->shmid);
		printf("key:        0x%08lx%s\n", (unsigned long)(uint32_t)st->key,
		       st->key ? "" : " (IPC_PRIVATE, or removed)");
		printf("attached:   %ld\n", st->attach_count);
	}
	if (st->removed)
		printf("removed:    yes: the name is gone; the memory lives until the last %s\n",
		       st->backend == SHMKIT_SYSV ? "detach" : "close");
	(void)name;
}

/* Where `shmkit info` should look for a journal: a name that is a file
 * path (file:PATH, or a bare name with a '/' after its start, or one that
 * exists in the filesystem when no POSIX segment has that name). */
static const char *path_of(const char *name, bool *bare)
{
	*bare = false;
	if (!strncmp(name, "file:", 5))
		return name + 5;
	if (!strncmp(name, "posix:", 6) || !strncmp(name, "sysv:", 5) ||
	    !strncmp(name, "memfd:", 6) || !strcmp(name, "anon"))
		return NULL;
	*bare = true;
	if (strchr(name + 1, '/') || !strncmp(name, "./", 2))
		return name;
	struct shmkit_seg_info st;
	if (shmkit_seg_info_name(name, &st) == -ENOENT && access(name, F_OK) == 0)
		return name;
	*bare = false;
	return NULL;
}

/* A byte segment a ZeroMQ bridge keeps its statistics in (shmkit-bridge
 * --stats-seg NAME; bridge/stats_read.h): its text into buf, or < 0 when
 * the segment is no such thing. */
static int bridge_stats(const char *name, char *buf, size_t cap)
{
	struct shmkit_seg_opts o = { .flags = SHMKIT_RDONLY };
	shmkit_seg *seg;
	int n = shmkit_seg_open(&seg, name, &o);

	if (n)
		return n;
	n = sk_bridge_stats_read(shmkit_seg_data(seg), shmkit_seg_size(seg), buf, cap);
	shmkit_seg_close(seg);
	return n;
}

static int info_service(const char *name, const struct shmkit_seg_info *st, bool json)
{
	static char bridge[16384];
	/* Only a finished, non-System V byte segment is opened to look (a
	 * bridge makes its statistics so; opening an unfinished one would wait
	 * for its creator). */
	bool is_bridge = st->kind == SHMKIT_KIND_BYTES && !st->initialising &&
	                 st->backend != SHMKIT_SYSV && bridge_stats(name, bridge, sizeof(bridge)) >= 0;
	int (*fn)(const char *, bool) = NULL;
	const char *label = kind_label(st->kind);

	if (st->kind == SHMKIT_KIND_CHAN)
		fn = info_chan;
	else if (st->kind == SHMKIT_KIND_BUS)
		fn = info_bus;
	else if (st->kind == SHMKIT_KIND_JOURNAL)
		fn = info_journal;
	else if (st->kind == SHMKIT_KIND_RPC)
		fn = info_rpc;
	if (json) {
		stat_json_open(st, NULL, false);
		if (is_bridge) { /* what a bridge exports and imports, its link, its counters */
			printf(",\"bridge\":");
			tool_json_str(bridge);
		}
		if (st->kind == SHMKIT_KIND_BYTES || st->kind == SHMKIT_KIND_FOREIGN) {
			printf("}\n");
			return 0;
		}
		printf(",\"%s\":", label);
		fflush(stdout);
		int rc = fn(name, true);
		printf("}\n");
		return rc;
	}
	info_print_text(name, st);
	if (is_bridge)
		printf("\nbridge statistics (shmkit-bridge --stats-seg):\n%s", bridge);
	if (st->kind == SHMKIT_KIND_BYTES || st->kind == SHMKIT_KIND_FOREIGN)
		return 0;
	printf("\n");
	fflush(stdout);
	return fn(name, false);
}

static const char info_help[] =
	"usage: shmkit info NAME [--json]\n"
	"       shmkit info PATH [--json]      (a journal)\n"
	"\n"
	"Describe a segment: its shmkit header (kind, format version, data area,\n"
	"creator and whether it lives, creation time) and the kernel's view (size,\n"
	"owner, mode; System V: id, key, attach count, removed).  For a channel or\n"
	"a bus, also its state (depth, capacity, counters, peers); for the\n"
	"statistics segment of a ZeroMQ bridge (shmkit-bridge --stats-seg), what\n"
	"it exports and imports, its link and its counters.  A path that is\n"
	"not a segment (or a journal's file) shows the journal: files, records,\n"
	"first/last sequence, sync policy, writer.  Use file:PATH for the raw file.\n"
	"\n"
	"  --json   print one JSON object\n";

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct shmkit_seg_info st;
	bool json = false, bare;
	int c;

	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': return show_help(info_help);
		default: return tool_bad_option("info", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("info: give exactly one NAME (see shmkit info --help)");
	const char *name = argv[optind];
	const char *path = path_of(name, &bare);
	char seg_name[PATH_MAX + 8];
	snprintf(seg_name, sizeof(seg_name), "%s%s", bare ? "file:" : "", name);
	int err = shmkit_seg_info_name(seg_name, &st);
	bool journal = (!err && st.kind == SHMKIT_KIND_JOURNAL) ||
	               (bare && (err || st.kind == SHMKIT_KIND_FOREIGN));
	if (journal && path)
		return info_journal(path, json);
	if (err)
		return tool_open_err(name, err);
	return info_service(name, &st, json);
}

/* ---- rm ------------------------------------------------------------------ */

static const char rm_help[] =
	"usage: shmkit rm [--force] NAME|PATH...\n"
	"\n"
	"Remove each named segment, channel, bus or rpc service (POSIX: unlink;\n"
	"System V: IPC_RMID, the memory lives on until the last detach; file:\n"
	"unlink), and each journal given by its directory PATH (its files and\n"
	"the directory; not while a writer lives; other files are kept, as by\n"
	"`shmkit journal rm`).  Processes that have it mapped keep their mapping.\n"
	"Goes on after a failure; exits 1 if any failed.\n"
	"\n"
	"A file: name is removed only if the file starts with a shmkit segment\n"
	"header; any other file (yours, a journal's, an empty one) is refused and\n"
	"kept.  POSIX and System V names are shared-memory objects whoever made\n"
	"them: foreign ones are removed too, as ipcrm(1) would.\n"
	"\n"
	"A bridge's state beside a channel or bus (NAME.skbr-out, NAME.skbr-in,\n"
	"NAME.skbr-bus: see shmkit-bridge(1)) goes with it.\n"
	"\n"
	"  --force   remove file: names without looking at their contents\n";

/* 0 if the file behind a file: name may go: it starts with a shmkit
 * segment header, or it is no regular file (the library refuses those
 * itself, as it reports a missing one). */
static int rm_check_file(const char *name)
{
	unsigned char head[8];
	struct stat sb;
	int fd = open(name + 5, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0 && (errno == ENOENT || errno == ELOOP))
		return 0;
	if (fd < 0)
		return fail(name, "cannot read it to check that it is a shmkit segment: %s; "
		            "nothing removed (--force removes it unread)", strerror(errno));
	bool reg = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
	ssize_t n = reg ? pread(fd, head, sizeof(head), 0) : 0;
	close(fd);
	if (!reg)
		return 0;
	uint64_t magic = n == (ssize_t)sizeof(head) ? magic_of(head) : 0;
	if (magic == SEG_MAGIC)
		return 0;
	const char *what = format_of(magic);
	return fail(name, "not a shmkit segment (%s); nothing removed (--force removes it "
	            "anyway)", what ? what : "the file has no shmkit header");
}

/* A bridge keeps its state for a channel or bus in segments beside it
 * (shmkit-bridge(1), FILES): NAME.skbr-out (an export's un-acknowledged
 * messages), NAME.skbr-in (what an import committed, per stream) and
 * NAME.skbr-bus (where a bus export stands).  They guard the service's
 * messages and live exactly as long as they do, so they go with it:
 * removed if there (a file: one only if it is a shmkit segment, as for
 * the service itself).  1 if one could not be removed. */
static int rm_companions(const char *name, bool force)
{
	static const char *const suffix[] = { "skbr-out", "skbr-in", "skbr-bus" };
	int rc = 0;

	if (!strncmp(name, "sysv:", 5)) /* a key has nothing beside it */
		return 0;
	for (size_t k = 0; k < sizeof(suffix) / sizeof(suffix[0]); k++) {
		char comp[PATH_MAX];
		if ((size_t)snprintf(comp, sizeof(comp), "%s.%s", name, suffix[k]) >= sizeof(comp))
			continue;
		if (!force && !strncmp(comp, "file:", 5) && rm_check_file(comp)) {
			rc = 1;
			continue;
		}
		int err = shmkit_seg_remove(comp);
		if (err && err != -ENOENT && err != -ENAMETOOLONG && err != -EINVAL) {
			tool_err(comp, err);
			rc = 1;
		}
	}
	return rc;
}

/* A path (a '/' past its first byte, so no segment name) naming a
 * directory, not through a link: what a journal is. */
static bool is_dir_path(const char *arg)
{
	struct stat st;
	return !strchr(arg, ':') && arg[0] && strchr(arg + 1, '/') && !lstat(arg, &st) &&
	       S_ISDIR(st.st_mode);
}

int cmd_rm(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool force = false;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': force = true; break;
		case 'h': return show_help(rm_help);
		default: return tool_bad_option("rm", c, argv);
		}
	}
	if (optind >= argc)
		return tool_usage("rm: give at least one NAME (see shmkit rm --help)");
	for (int i = optind; i < argc; i++) {
		if (!force && !strncmp(argv[i], "file:", 5) && rm_check_file(argv[i])) {
			rc = rc ? rc : 1;
			continue;
		}
		if (is_dir_path(argv[i])) { /* a journal's directory */
			int err = shmkit_journal_remove(argv[i]);
			if (err)
				rc = rc ? rc : tool_err(argv[i], err);
			continue;
		}
		int err = shmkit_seg_remove(argv[i]);
		if (err) {
			int r = tool_open_err(argv[i], err); /* 2: a name rm cannot use */
			rc = r > rc ? r : rc;
		} else if (rm_companions(argv[i], force)) {
			rc = rc ? rc : 1;
		}
	}
	return rc;
}

/* ---- gc ------------------------------------------------------------------ */

/*
 * Which POSIX segments a live process holds: every "/dev/shm/NAME" in
 * /proc/PID/maps (mapped) or among the links in /proc/PID/fd (open).  A
 * POSIX segment has no attach count, so this is how gc knows nobody uses
 * one.  Processes this user may not inspect (another user's, or a
 * non-dumpable one) are counted and named in a warning when gc removes a
 * POSIX segment: removing a name never breaks a mapping that exists, it
 * only stops new openers.
 */
struct users {
	char **names;
	size_t n, cap;
	int hidden;          /* processes that could not be inspected */
	char hidden_pids[64];
};

static void users_add(struct users *u, const char *path)
{
	const char *name = path + strlen("/dev/shm/");
	size_t len = strcspn(name, " \n");

	for (size_t i = 0; i < u->n; i++)
		if (strlen(u->names[i]) == len && !strncmp(u->names[i], name, len))
			return;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 16;
		char **v = realloc(u->names, cap * sizeof(*v));
		if (!v)
			return;
		u->names = v;
		u->cap = cap;
	}
	if ((u->names[u->n] = strndup(name, len)))
		u->n++;
}

static void users_hidden(struct users *u, const char *pid)
{
	size_t len = strlen(u->hidden_pids);

	if (u->hidden++ < 4)
		snprintf(u->hidden_pids + len, sizeof(u->hidden_pids) - len, "%s%s",
		         len ? ", " : "", pid);
}

static void users_scan_maps(struct users *u, const char *pid)
{
	char path[64], line[4400];

	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno != ENOENT && errno != ESRCH)
			users_hidden(u, pid);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, " /dev/shm/");
		if (p)
			users_add(u, p + 1);
	}
	fclose(f);
}

static void users_scan_fds(struct users *u, const char *pid)
{
	char path[64], link[PATH_MAX + 64], target[PATH_MAX];
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return; /* its maps told already */
	while ((e = readdir(d))) {
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strncmp(target, "/dev/shm/", 9))
			users_add(u, target);
	}
	closedir(d);
}

static void users_scan(struct users *u)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d) {
		users_hidden(u, "all (no /proc)");
		return;
	}
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		users_scan_maps(u, e->d_name);
		users_scan_fds(u, e->d_name);
	}
	closedir(d);
}

static bool users_holds(const struct users *u, const char *canon)
{
	const char *name = canon + strlen("posix:/");

	for (size_t i = 0; i < u->n; i++)
		if (!strcmp(u->names[i], name))
			return true;
	return false;
}

static void users_free(struct users *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	free(u->names);
}

/* Why st may go, in why; false to keep it. */
static bool gc_verdict(const struct shmkit_seg_info *st, bool foreign, const struct users *u,
                       char *why, size_t len)
{
	bool managed = st->kind != SHMKIT_KIND_FOREIGN;

	/* Keep anything the kernel says is open or attached, in whatever PID
	 * namespace (a pid-based test alone cannot see other containers);
	 * the creator's pid only adds a reason to keep. */
	if (st->initialising == 2) { /* whatever it was to be: it never was */
		snprintf(why, len, "its creator died while initialising it");
		return true;
	}
	if ((!managed && !foreign) || st->persistent || st->in_use > 0)
		return false;
	if (st->backend == SHMKIT_SYSV) {
		if (st->creator_alive != 0 || st->attach_count != 0)
			return false;
		snprintf(why, len, "creator pid %d is dead, nothing attached", (int)st->creator_pid);
		return true;
	}
	if (st->backend != SHMKIT_POSIX || users_holds(u, st->name))
		return false;
	if (managed && st->creator_alive != 0)
		return false;
	if (managed)
		snprintf(why, len, "creator pid %d is dead, no process maps it", (int)st->creator_pid);
	else
		snprintf(why, len, "foreign, no process maps it or has it open");
	return true;
}

static bool gc_matches(const struct shmkit_seg_info *st, char **pat, int npat)
{
	char addr[sizeof(st->name) + 32];

	if (npat == 0)
		return true;
	address_of(st, addr, sizeof(addr));
	const char *bare = st->backend == SHMKIT_POSIX ? st->name + strlen("posix:/") : addr;
	for (int i = 0; i < npat; i++)
		if (!fnmatch(pat[i], st->name, 0) || !fnmatch(pat[i], addr, 0) ||
		    !fnmatch(pat[i], bare, 0))
			return true;
	return false;
}

/* One line of gc's output: "removed NAME (WHY)", "would remove ..." with
 * --dry-run; with --json {"action":"removed"|"would remove","name":NAME,
 * "reason":WHY}. */
static void gc_say(bool json, bool dry_run, const char *name, const char *why)
{
	char shown[4 * (PATH_MAX + 48)];

	if (json) {
		printf("{\"action\":\"%s\",", dry_run ? "would remove" : "removed");
		tool_json_name("name", name);
		printf(",\"reason\":");
		tool_json_str(why);
		printf("}\n");
		return;
	}
	tool_escape(name, shown, sizeof(shown));
	printf("%s %s (%s)\n", dry_run ? "would remove" : "removed", shown, why);
}

static int gc_one(const struct shmkit_seg_info *st, const char *why, bool dry_run, bool json)
{
	char addr[sizeof(st->name) + 32], shown[4 * sizeof(addr)];

	address_of(st, addr, sizeof(addr));
	if (dry_run) {
		gc_say(json, true, addr, why);
		return 0;
	}
	int err = shmkit_seg_remove(addr);
	if (err == -ENOENT)
		return 0; /* someone else removed it meanwhile */
	if (err) {
		tool_escape(addr, shown, sizeof(shown));
		return tool_err(shown, err);
	}
	gc_say(json, false, addr, why);
	return 0;
}

/*
 * Lock files of System V keys (peer.h: /dev/shm/.shmkit-sysv-KEY.lock)
 * whose segment is gone: left by a creator killed between making the file
 * and the segment, or by a segment removed with ipcrm.  One goes when no
 * segment has its key (in this IPC namespace), nobody holds any lock on it
 * (every handle of a segment holds byte 1, a creator byte 0: so no handle
 * of any namespace sharing this /dev/shm uses it) and it is older than
 * LOCK_ORPHAN_AGE: a creator takes its lock right after making the file,
 * so only one stopped in between for that long could still want it.
 */
#define LOCK_ORPHAN_AGE 60

static bool lock_orphan(int dfd, const char *name, key_t key)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET }; /* whole file */
	struct stat st;
	bool orphan = false;

	if (shmget(key, 0, 0) >= 0 || errno != ENOENT)
		return false; /* its segment exists (or we cannot tell) */
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime >= LOCK_ORPHAN_AGE &&
	    !fcntl(fd, F_OFD_GETLK, &fl) && fl.l_type == F_UNLCK)
		orphan = true;
	close(fd);
	return orphan;
}

static int gc_lock_files(bool dry_run, bool json)
{
	int dfd = open(SK_TOOL_SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *e;
	unsigned key;
	char tail[8];
	int rc = 0;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	while ((e = readdir(d))) {
		if (sscanf(e->d_name, ".shmkit-sysv-%8x%7s", &key, tail) != 2 || strcmp(tail, ".lock") ||
		    strlen(e->d_name) != strlen(".shmkit-sysv-00000000.lock") ||
		    !lock_orphan(dfd, e->d_name, (key_t)key))
			continue;
		char path[PATH_MAX], why[80];
		snprintf(path, sizeof(path), SK_TOOL_SHM_DIR "/%s", e->d_name);
		snprintf(why, sizeof(why), "lock file of sysv:0x%08x, which is gone", key);
		if (!dry_run && unlinkat(dfd, e->d_name, 0) && errno != ENOENT)
			rc |= tool_err(e->d_name, -errno);
		else
			gc_say(json, dry_run, path, why);
	}
	closedir(d);
	return rc;
}

static const char gc_help[] =
	"usage: shmkit gc [--dry-run] [--foreign] [--json] [PATTERN...]\n"
	"\n"
	"Remove segments only dead processes used, and print each one removed\n"
	"(never a persistent one: made by `shmkit create` without --temporary, by\n"
	"`shmkit chan` or `shmkit bus`, or by the library with SHMKIT_PERSIST):\n"
	"  managed System V: creator dead and nothing attached;\n"
	"  managed POSIX: creator dead and no live process maps it or has it open\n"
	"  (found in /proc/PID/maps and /proc/PID/fd; processes this user may not\n"
	"  inspect are named in a warning).\n"
	"With --foreign, segments without a shmkit header too: System V when the\n"
	"creator is dead and nothing is attached; POSIX when no live process maps\n"
	"it or has it open.  PATTERNs (shell globs, matched against posix:/NAME,\n"
	"NAME, sysv:0xKEY or sysv:id=ID) limit gc to the segments they match.\n"
	"Without PATTERNs, gc also removes the lock files of System V keys whose\n"
	"segment is gone (/dev/shm/.shmkit-sysv-KEY.lock: unlocked, over a minute\n"
	"old).\n"
	"\n"
	"  --dry-run   print what would be removed, remove nothing\n"
	"  --foreign   consider foreign segments too\n"
	"  --json      one JSON object per line and segment: {\"action\":\"removed\"\n"
	"              (or \"would remove\"),\"name\":NAME,\"reason\":WHY}\n";

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "foreign", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool dry_run = false, foreign = false, json = false;
	struct rows r = { 0 };
	struct users u = { 0 };
	char why[128];
	int c, rc = 0;
	bool posix_gone = false;

	while ((c = getopt_long(argc, argv, ":nfjh", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry_run = true; break;
		case 'f': foreign = true; break;
		case 'j': json = true; break;
		case 'h': return show_help(gc_help);
		default: return tool_bad_option("gc", c, argv);
		}
	}
	int err = collect_rows(&r);
	if (err)
		return tool_err("gc", err);
	users_scan(&u);
	for (size_t i = 0; i < r.n; i++) {
		const struct shmkit_seg_info *st = &r.v[i].st;
		if (gc_matches(st, argv + optind, argc - optind) &&
		    gc_verdict(st, foreign, &u, why, sizeof(why))) {
			rc |= gc_one(st, why, dry_run, json);
			posix_gone |= st->backend == SHMKIT_POSIX;
		}
	}
	if (argc == optind) /* patterns name segments, not lock files */
		rc |= gc_lock_files(dry_run, json);
	if (posix_gone && u.hidden)
		fprintf(stderr, "shmkit: gc: warning: %d process%s could not be inspected (pid %s%s); "
		        "a POSIX segment only they map was taken as unused\n", u.hidden,
		        u.hidden > 1 ? "es" : "", u.hidden_pids, u.hidden > 4 ? ", ..." : "");
	users_free(&u);
	free(r.v);
	return rc;
}

/* ---- read / write: bytes under a SIGBUS guard ---------------------------- */

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, sig);
}

/* memcpy that reports a SIGBUS (the object shrank under the mapping) as
 * -EFAULT instead of dying. */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int err = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0)
		memcpy(dst, src, n);
	else
		err = -EFAULT;
	sigaction(SIGBUS, &old, NULL);
	return err;
}

static int copy_fault(const char *name)
{
	return fail(name, "the segment shrank under its mapping (truncated behind shmkit's back), "
	            "or its pages cannot be had (file system full)");
}

/* Open a managed segment's data area, or a foreign one's whole mapping. */
static int open_bytes(const char *name, unsigned flags, shmkit_seg **seg)
{
	struct shmkit_seg_opts o = { .flags = flags };
	int err = shmkit_seg_open(seg, name, &o);

	if (err == -EPROTO) {
		o.flags |= SHMKIT_RAW;
		err = shmkit_seg_open(seg, name, &o);
	}
	return err;
}

static int check_range(const char *name, size_t size, size_t off, size_t len)
{
	if (off > size)
		return fail(name, "offset %zu is past the end of its %zu bytes", off, size);
	if (len > size - off)
		return fail(name, "%zu bytes at offset %zu go past the end of its %zu bytes",
		            len, off, size);
	return 0;
}

/* One line of a hexdump -C style listing; off is the segment offset. */
static void hex_line(size_t off, const unsigned char *p, size_t n)
{
	printf("%08zx ", off);
	for (size_t i = 0; i < 16; i++) {
		if (i == 8)
			putchar(' ');
		if (i < n)
			printf(" %02x", p[i]);
		else
			printf("   ");
	}
	printf("  |");
	for (size_t i = 0; i < n; i++)
		putchar(isprint(p[i]) ? p[i] : '.');
	printf("|\n");
}

struct hexdump {
	unsigned char prev[16];
	bool have_prev, starred;
};

/* Dump buf (a multiple of 16 bytes except at the end) at segment offset
 * off; repeated lines print once, then "*", as hexdump -C does. */
static void hex_chunk(struct hexdump *h, size_t off, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		size_t k = n - i < 16 ? n - i : 16;
		if (k == 16 && h->have_prev && !memcmp(h->prev, buf + i, 16)) {
			if (!h->starred)
				printf("*\n");
			h->starred = true;
			continue;
		}
		hex_line(off + i, buf + i, k);
		memcpy(h->prev, buf + i, k);
		h->have_prev = k == 16;
		h->starred = false;
	}
}

/* Copy n bytes at off of the data area into buf: through the descriptor
 * where there is one (a hole in a sparse tmpfs file reads as zeros and
 * allocates nothing, where touching it through the mapping would SIGBUS
 * on a full file system), else from the mapping, guarded.  0 or -errno. */
static int read_bytes(shmkit_seg *seg, void *buf, size_t off, size_t n)
{
	struct shmkit_seg_info st;
	int fd = shmkit_seg_fd(seg);

	if (fd >= 0 && shmkit_seg_info(seg, &st) == 0) {
		for (size_t got = 0; got < n;) {
			ssize_t k = pread(fd, (char *)buf + got, n - got,
			                  (off_t)(st.data_offset + off + got));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return k < 0 ? -errno : -EFAULT;
			got += (size_t)k;
		}
		return 0;
	}
	return guarded_copy(buf, (const char *)shmkit_seg_data(seg) + off, n);
}

static int read_out(const char *name, shmkit_seg *seg, size_t off, size_t len, bool hex)
{
	static unsigned char buf[CHUNK];
	struct hexdump h = { .have_prev = false };

	for (size_t done = 0; done < len;) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		if (read_bytes(seg, buf, off + done, n))
			return copy_fault(name);
		if (hex)
			hex_chunk(&h, off + done, buf, n);
		else if (fwrite(buf, 1, n, stdout) != n)
			return fail(name, "writing to stdout: %s", strerror(errno));
		done += n;
	}
	if (hex)
		printf("%08zx\n", off + len);
	return 0;
}

/* read --json: {"name":NAME,"offset":N,"length":N,"data"|"hex":...}, the
 * range read whole first (bytes that are not UTF-8 come out as hex). */
static int read_json(const char *name, shmkit_seg *seg, size_t off, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);

	if (!buf)
		return tool_err(name, -ENOMEM);
	for (size_t done = 0; done < len;) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		if (read_bytes(seg, buf + done, off + done, n)) {
			free(buf);
			return copy_fault(name);
		}
		done += n;
	}
	printf("{");
	tool_json_name("name", name);
	printf(",\"offset\":%zu,\"length\":%zu,", off, len);
	tool_json_data(buf, len);
	printf("}\n");
	free(buf);
	return 0;
}

static const char read_help[] =
	"usage: shmkit read NAME [--offset N] [--length N] [--hex] [--json]\n"
	"\n"
	"Copy bytes of a segment to stdout: of its data area when it is a shmkit\n"
	"segment, of the whole mapping when it is foreign.  Without --length, to\n"
	"the end.  A range past the end is an error and prints nothing.\n"
	"\n"
	"  --offset N   start N bytes in (K, M, G suffixes)\n"
	"  --length N   copy N bytes\n"
	"  --hex        print a hexdump -C style listing (offsets are the\n"
	"               segment's); repeated lines show as '*'\n"
	"  --json       print one JSON object: name, offset, length, and data (a\n"
	"               string) or hex when the bytes are not UTF-8 or hold a NUL\n";

int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "hex", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	size_t off = 0, len = 0;
	bool hex = false, have_len = false, json = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":o:l:xjh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if ((rc = parse_size_opt("read", "--offset", optarg, &off)))
				return rc;
			break;
		case 'l':
			if ((rc = parse_size_opt("read", "--length", optarg, &len)))
				return rc;
			have_len = true;
			break;
		case 'x': hex = true; break;
		case 'j': json = true; break;
		case 'h': return show_help(read_help);
		default: return tool_bad_option("read", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("read: give exactly one NAME (see shmkit read --help)");
	const char *name = argv[optind];
	shmkit_seg *seg;
	int err = open_bytes(name, SHMKIT_RDONLY, &seg);
	if (err)
		return tool_open_err(name, err);
	size_t size = shmkit_seg_size(seg);
	if (!have_len)
		len = off <= size ? size - off : 0;
	rc = check_range(name, size, off, len);
	if (!rc && json && hex)
		rc = tool_usage("read: --hex and --json: choose one");
	else if (!rc)
		rc = json ? read_json(name, seg, off, len) : read_out(name, seg, off, len, hex);
	shmkit_seg_close(seg);
	return rc;
}

/* Input for `write`: raw bytes, or hex digits decoded as they come. */
struct input {
	unsigned char *buf;
	size_t len, cap, limit;
	bool hex, half;
	unsigned nibble;
};

static int input_put(struct input *in, unsigned char b)
{
	if (in->len == in->limit)
		return -EFBIG;
	if (in->len == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : CHUNK;
		unsigned char *p = realloc(in->buf, cap);
		if (!p)
			return -ENOMEM;
		in->buf = p;
		in->cap = cap;
	}
	in->buf[in->len++] = b;
	return 0;
}

static int input_hex(struct input *in, unsigned char ch)
{
	if (isspace(ch))
		return 0;
	if (!isxdigit(ch))
		return -EILSEQ;
	unsigned v = isdigit(ch) ? (unsigned)(ch - '0') : (unsigned)(tolower(ch) - 'a' + 10);
	if (!in->half) {
		in->nibble = v;
		in->half = true;
		return 0;
	}
	in->half = false;
	return input_put(in, (unsigned char)(in->nibble << 4 | v));
}

/* Read stdin until EOF into in->buf, at most in->limit bytes. */
static int input_read(struct input *in)
{
	static unsigned char chunk[CHUNK];

	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return in->half ? -EILSEQ : 0;
		for (ssize_t i = 0; i < n; i++) {
			int err = in->hex ? input_hex(in, chunk[i]) : input_put(in, chunk[i]);
			if (err)
				return err;
		}
	}
}

static int input_error(const char *name, const struct input *in, int err, size_t off)
{
	if (err == -EFBIG)
		return fail(name, "input is longer than the %zu bytes from offset %zu to the end; "
		            "nothing written", in->limit, off);
	if (err == -EILSEQ)
		return fail(name, "--hex input must be pairs of hex digits (whitespace ignored); "
		            "nothing written");
	return fail(name, "reading stdin: %s; nothing written", strerror(-err));
}

static const char write_help[] =
	"usage: shmkit write NAME [--offset N] [--hex] [--raw]\n"
	"\n"
	"Copy stdin into a segment: into its data area when it is a shmkit byte\n"
	"segment, into the whole mapping when it is foreign.  All of stdin is read\n"
	"first; if it does not fit between the offset and the end nothing is\n"
	"written and the exit status is 1.  A file: segment is synced (msync)\n"
	"before exit.  A channel, a bus, a journal's file, or a shmkit header\n"
	"this build does not accept is refused with exit 1: writing would\n"
	"overwrite its control block.\n"
	"\n"
	"  --offset N   start N bytes in (K, M, G suffixes)\n"
	"  --hex        stdin is hex digits, two per byte, whitespace ignored\n"
	"               (as printed by xxd -p)\n"
	"  --raw        write into a channel's, bus's or journal's memory anyway,\n"
	"               at the same place: the data area after a shmkit header,\n"
	"               else the whole mapping\n";

/* 0 if seg holds plain bytes (a byte segment, or a foreign one that is no
 * journal file nor an unreadable shmkit header), else why not, reported. */
static int write_check(const char *name, shmkit_seg *seg)
{
	int kind = shmkit_seg_kind(seg);
	unsigned char head[8];
	const char *what = NULL;

	if (kind == SHMKIT_KIND_FOREIGN && shmkit_seg_size(seg) >= sizeof(head) &&
	    !guarded_copy(head, shmkit_seg_data(seg), sizeof(head)))
		what = format_of(magic_of(head));
	if (kind == SHMKIT_KIND_BYTES || (kind == SHMKIT_KIND_FOREIGN && !what))
		return 0;
	return fail(name, "is a %s%s, not plain bytes: writing would overwrite its control "
	            "block; nothing written (--raw writes anyway)", what ? what : kind_label(kind),
	            what ? "" : " segment");
}

int cmd_write(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "hex", no_argument, NULL, 'x' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct input in = { .hex = false };
	size_t off = 0;
	bool raw = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":o:xrh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if ((rc = parse_size_opt("write", "--offset", optarg, &off)))
				return rc;
			break;
		case 'x': in.hex = true; break;
		case 'r': raw = true; break;
		case 'h': return show_help(write_help);
		default: return tool_bad_option("write", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("write: give exactly one NAME (see shmkit write --help)");
	const char *name = argv[optind];
	shmkit_seg *seg;
	int err = open_bytes(name, 0, &seg);
	if (err)
		return tool_open_err(name, err);
	size_t size = shmkit_seg_size(seg);
	if ((!raw && (rc = write_check(name, seg))) || (rc = check_range(name, size, off, 0)))
		goto out;
	in.limit = size - off;
	if ((err = input_read(&in))) {
		rc = input_error(name, &in, err, off);
		goto out;
	}
	if (in.len && guarded_copy((char *)shmkit_seg_data(seg) + off, in.buf, in.len))
		rc = copy_fault(name);
	else if (in.len && (err = shmkit_seg_sync(seg, off, in.len, 0)))
		rc = tool_err(name, err);
out:
	free(in.buf);
	shmkit_seg_close(seg);
	return rc;
}
