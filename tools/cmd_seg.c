/*
 * cmd_seg.c - the segment subcommands of shmkit that make and remove
 * segments: create, rm, gc; and the helpers all the segment subcommands
 * share (tools/cmd.h, "Segments").  ls and info, which describe, are in
 * tools/cmd_info.c; read and write, which copy bytes, in tools/cmd_bytes.c.
 * Public API only: segments made through shmkit_seg_create(), removed
 * through shmkit_seg_remove(), gc's listing through shmkit_seg_list().
 *
 * Two guards against losing data by mistake: `write` refuses a segment
 * that is not plain bytes (a channel's, bus's or journal's control block)
 * unless --raw, and `rm` removes a file: name only when the file starts
 * with a shmkit segment header, unless --force.  Both recognise formats by
 * their first 8 bytes (seg_format_of), as the library and journal write
 * them.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

/* ---- small helpers ------------------------------------------------------ */

/* "shmkit: WHAT: message" for failures the library did not report. */
int seg_fail(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shmkit: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int seg_show_help(const char *text)
{
	fputs(text, stdout);
	return 0;
}

/* A size or offset with optional K/M/G suffix. */
int seg_parse_size(const char *cmd, const char *opt, const char *s, size_t *out)
{
	if (shmkit_parse_size(s, out))
		return tool_usage("%s: %s '%s' is not a size (a number with optional K, M or G)",
		                  cmd, opt, s);
	return 0;
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
uint64_t seg_magic_of(const unsigned char head[8])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | head[i];
	return v;
}

/* What a magic says the object is, or NULL if none of ours. */
const char *seg_format_of(uint64_t magic)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].magic == magic)
			return formats[i].what;
	return NULL;
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
			if ((rc = seg_parse_size("create", "--size", optarg, &o.size)))
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
		case 'h': return seg_show_help(create_help);
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
	"A bridge's state beside a channel, bus or rpc service (NAME.skbr-out,\n"
	"NAME.skbr-in, NAME.skbr-bus: see shmkit-bridge(1)) goes with it.\n"
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
		return seg_fail(name, "cannot read it to check that it is a shmkit segment: %s; "
		                "nothing removed (--force removes it unread)", strerror(errno));
	bool reg = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
	ssize_t n = reg ? pread(fd, head, sizeof(head), 0) : 0;
	close(fd);
	if (!reg)
		return 0;
	uint64_t magic = n == (ssize_t)sizeof(head) ? seg_magic_of(head) : 0;
	if (magic == SEG_MAGIC)
		return 0;
	const char *what = seg_format_of(magic);
	return seg_fail(name, "not a shmkit segment (%s); nothing removed (--force removes it "
	                "anyway)", what ? what : "the file has no shmkit header");
}

/* A bridge keeps its state for a channel or bus in segments beside it
 * (shmkit-bridge(1), FILES): NAME.skbr-out (an export's un-acknowledged
 * messages), NAME.skbr-in (what an import committed, per stream) and
 * NAME.skbr-bus (where a bus export stands).  They guard the service's
 * messages and live exactly as long as they do, so they go with it:
 * removed if there (a file: one only if it is a shmkit segment, as for
 * the service itself).  1 if one could not be removed. */
static const char *const companion_sfx[] = { "skbr-out", "skbr-in", "skbr-bus" };
#define N_COMPANIONS (sizeof(companion_sfx) / sizeof(companion_sfx[0]))

/* The name of companion k of service name in comp; false if there is
 * none (a System V key has nothing beside it) or it does not fit. */
static bool companion_name(const char *name, size_t k, char *comp, size_t len)
{
	return strncmp(name, "sysv:", 5) &&
	       (size_t)snprintf(comp, len, "%s.%s", name, companion_sfx[k]) < len;
}

/* The service a companion belongs to (NAME of NAME.skbr-*) in base, or
 * false if name is no companion's. */
static bool companion_base(const char *name, char *base, size_t len)
{
	size_t n = strlen(name);

	for (size_t k = 0; k < N_COMPANIONS; k++) {
		size_t m = strlen(companion_sfx[k]) + 1;
		if (n > m && n - m < len && name[n - m] == '.' &&
		    !strcmp(name + n - m + 1, companion_sfx[k])) {
			memcpy(base, name, n - m);
			base[n - m] = '\0';
			return true;
		}
	}
	return false;
}

static int rm_companions(const char *name, bool force)
{
	int rc = 0;

	for (size_t k = 0; k < N_COMPANIONS; k++) {
		char comp[PATH_MAX];
		if (!companion_name(name, k, comp, sizeof(comp)))
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
		case 'h': return seg_show_help(rm_help);
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
	seg_address(st, addr, sizeof(addr));
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

static int gc_remove(const char *addr, const char *why, bool dry_run, bool json)
{
	char shown[4 * PATH_MAX];

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

/* st goes, and with it a bridge's state beside it (rm_companions): that
 * state guards the service's messages and is persistent, so nothing else
 * would ever remove it. */
static int gc_one(const struct shmkit_seg_info *st, const char *why, bool dry_run, bool json)
{
	char addr[sizeof(st->name) + 32], comp[PATH_MAX], cwhy[64];
	struct shmkit_seg_info cst;
	int rc = gc_remove((seg_address(st, addr, sizeof(addr)), addr), why, dry_run, json);

	for (size_t k = 0; !rc && k < N_COMPANIONS; k++)
		if (companion_name(addr, k, comp, sizeof(comp)) && !shmkit_seg_info_name(comp, &cst) &&
		    cst.kind != SHMKIT_KIND_FOREIGN) {
			snprintf(cwhy, sizeof(cwhy), "a bridge's state, its service goes");
			rc = gc_remove(comp, cwhy, dry_run, json);
		}
	return rc;
}

/* A bridge's state (NAME.skbr-*, POSIX) whose service NAME is gone, that
 * no live process maps and whose creator is dead: left when its service
 * went by other means than rm or gc (an unlink, a container's /dev/shm
 * cleaned). */
static bool gc_orphan(const struct shmkit_seg_info *st, const struct seg_rows *r,
                      const struct users *u, char *why, size_t len)
{
	char base[sizeof(st->name)];

	if (st->backend != SHMKIT_POSIX || st->kind == SHMKIT_KIND_FOREIGN || st->in_use > 0 ||
	    st->creator_alive != 0 || !companion_base(st->name, base, sizeof(base)) ||
	    users_holds(u, st->name))
		return false;
	for (size_t j = 0; j < r->n; j++)
		if (!strcmp(r->v[j].st.name, base))
			return false;
	snprintf(why, len, "a bridge's state, its service is gone");
	return true;
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
	"A bridge's state beside a service it removes (NAME.skbr-out, .skbr-in,\n"
	"NAME.skbr-bus: persistent) goes with it; so does such state whose service\n"
	"is gone, once its creator is dead and nothing maps it.\n"
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
	struct seg_rows r = { 0 };
	struct users u = { 0 };
	char why[128];
	int c, rc = 0;
	bool posix_gone = false;

	while ((c = getopt_long(argc, argv, ":nfjh", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry_run = true; break;
		case 'f': foreign = true; break;
		case 'j': json = true; break;
		case 'h': return seg_show_help(gc_help);
		default: return tool_bad_option("gc", c, argv);
		}
	}
	int err = seg_collect_rows(&r);
	if (err)
		return tool_err("gc", err);
	users_scan(&u);
	for (size_t i = 0; i < r.n; i++) {
		const struct shmkit_seg_info *st = &r.v[i].st;
		if (gc_matches(st, argv + optind, argc - optind) &&
		    (gc_verdict(st, foreign, &u, why, sizeof(why)) ||
		     gc_orphan(st, &r, &u, why, sizeof(why)))) {
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
