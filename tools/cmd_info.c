/*
 * cmd_info.c - the segment subcommands of shmkit that describe: ls (every
 * segment on the machine, as ipcs lists them) and info (one segment; the
 * state of a channel, bus, rpc service or journal through its info_*()),
 * with the labels and the JSON object of a segment that both print.
 * Public API only: listing through shmkit_seg_info_name() on each file of
 * /dev/shm and the kernel's System V table (ls), or shmkit_seg_list() (gc's
 * view, seg_collect_rows); descriptions through shmkit_seg_info_name().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
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

/* ---- small helpers ------------------------------------------------------ */

const char *seg_backend_label(int backend)
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

const char *seg_kind_label(int kind)
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
void seg_address(const struct shmkit_seg_info *st, char *buf, size_t len)
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
 * overrides seg_kind_label(); unread: a System V segment ls did not attach,
 * whose header (persistence, creation time, version) it did not read. */
static void stat_json_open(const struct shmkit_seg_info *st, const char *kind, bool unread)
{
	char buf[64], addr[sizeof(st->name) + 32];
	bool managed = st->kind != SHMKIT_KIND_FOREIGN;

	seg_address(st, addr, sizeof(addr));
	printf("{");
	tool_json_name("name", addr);
	printf(",");
	tool_json_name("canonical", st->name);
	printf(",\"backend\":\"%s\",\"kind\":", seg_backend_label(st->backend));
	tool_json_str(kind ? kind : seg_kind_label(st->kind));
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

static struct seg_row *rows_add(struct seg_rows *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct seg_row *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		r->v = v;
		r->cap = cap;
	}
	struct seg_row *row = &r->v[r->n++];
	memset(row, 0, sizeof(*row));
	return row;
}

static int collect_one(const struct shmkit_seg_info *st, void *arg)
{
	struct seg_row *row = rows_add(arg);

	if (!row)
		return -ENOMEM;
	row->st = *st;
	return 0;
}

/* Every segment shmkit_seg_list() reports, into r (freed on failure).
 * gc's view: it reads every header (System V ones by attaching). */
int seg_collect_rows(struct seg_rows *r)
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
	const struct shmkit_seg_info *x = &((const struct seg_row *)a)->st;
	const struct shmkit_seg_info *y = &((const struct seg_row *)b)->st;

	if (x->backend != y->backend)
		return x->backend - y->backend;
	if (x->backend == SHMKIT_SYSV)
		return (x->shmid > y->shmid) - (x->shmid < y->shmid);
	return strcmp(x->name, y->name);
}

/* ls: a file of /dev/shm described by stat(2) alone (one this user may
 * not open, or a semaphore). */
static int add_posix_stat(struct seg_rows *r, int dfd, const char *file, const char *kind)
{
	struct stat sb;

	if (fstatat(dfd, file, &sb, AT_SYMLINK_NOFOLLOW))
		return 0; /* gone meanwhile */
	struct seg_row *row = rows_add(r);
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
static int ls_posix(struct seg_rows *r, bool all)
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
static int add_sysv(struct seg_rows *r, const struct sysv_row *l, bool attach)
{
	struct shmid_ds ds;
	bool readable = shmctl(l->shmid, IPC_STAT, &ds) == 0 || errno != EACCES;
	struct seg_row *row;

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
	struct seg_rows *r;
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
static int ls_sysv(struct seg_rows *r, bool attach)
{
	struct ls_sysv_ctx c = { r, attach, 0 };

	sysv_table_each(ls_sysv_row, &c);
	return c.err;
}

enum { COLS = 9 };
static const char *const ls_head[COLS] = {
	"BACKEND", "NAME", "SIZE", "KIND", "OWNER", "MODE", "NATTCH", "CPID", "CREATOR",
};

static void ls_cells(const struct seg_row *row, char cell[COLS][4200])
{
	const struct shmkit_seg_info *st = &row->st;

	snprintf(cell[0], 4200, "%s", seg_backend_label(st->backend));
	char addr[sizeof(st->name) + 32];
	seg_address(st, addr, sizeof(addr));
	tool_escape(addr, cell[1], 4200);
	size_text(useful_size(st), cell[2], 4200);
	snprintf(cell[3], 4200, "%s%s", row->kind ? row->kind : seg_kind_label(st->kind),
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

static void ls_print_table(const struct seg_rows *r)
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

static void ls_print_json(const struct seg_rows *r)
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
	struct seg_rows r = { 0 };
	int c;

	while ((c = getopt_long(argc, argv, ":ajh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'a': all = true; break;
		case 'A': attach = true; break;
		case 'h': return seg_show_help(ls_help);
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

/* ---- info ---------------------------------------------------------------- */

static void info_print_text(const char *name, const struct shmkit_seg_info *st)
{
	char addr[sizeof(st->name) + 32], buf[64], shown[4 * sizeof(addr)];

	seg_address(st, addr, sizeof(addr));
	tool_escape(addr, shown, sizeof(shown));
	printf("name:       %s\n", shown);
	if (strcmp(addr, st->name)) {
		tool_escape(st->name, shown, sizeof(shown));
		printf("canonical:  %s\n", shown);
	}
	printf("backend:    %s\n", seg_backend_label(st->backend));
	if (st->kind == SHMKIT_KIND_FOREIGN) {
		printf("kind:       foreign (no shmkit header: read and write address the whole mapping)\n");
	} else {
		printf("kind:       %s%s (shmkit format version %u)\n", seg_kind_label(st->kind),
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
	const char *label = seg_kind_label(st->kind);

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
		case 'h': return seg_show_help(info_help);
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
