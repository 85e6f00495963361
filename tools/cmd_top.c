/*
 * cmd_top.c - `shmkit top`: a live view of every shmkit object on the
 * machine, refreshed every --interval (default 1000 ms): kind, name,
 * backend, size, rates in and out (counter deltas between two refreshes,
 * divided by the time between them), depth, lag of the slowest live
 * reader, lost counts, peers alive and dead, and a note on anything stuck.
 * `--once` prints one table (after two samples, so rates are known),
 * `--json` one JSON object per refresh.  Public API only.
 *
 * Terminal: plain ANSI (ECMA-48) escapes under termios, not ncurses.
 * The view needs six sequences (alternate screen, home, clear to end of
 * line and of screen, reverse video, cursor hide/show) that every
 * terminal in use and tmux understand; a full-screen redraw per refresh
 * is a few kilobytes.  ncurses would buy terminfo lookups and partial
 * redraws we do not need, and cost the tool (which links only libc and
 * pthreads, and ships as one binary in the `shmkit` package) a runtime
 * dependency on libncurses6/libtinfo6 and a build dependency on
 * libncurses-dev.  TERM=dumb or output that is no terminal: the live view
 * refuses (exit 2) and names --once and --json.
 *
 * What is sampled, and what it costs the objects:
 *   - POSIX segments: every file of /dev/shm through
 *     shmkit_seg_stat_name() (a descriptor that holds no lock: a look does
 *     not count as "in use"); channels, buses and rpc services are opened
 *     for their statistics and closed again at each refresh.
 *   - System V segments: /proc/sysvipc/shm gives size, mode and attach
 *     count without attaching.  A segment's header (its kind) is read once,
 *     when its (shmid, ctime) is new; a service is attached once and kept
 *     attached while top runs, so top changes a segment's attach time once,
 *     not every second (and its attach count shows one more meanwhile: top
 *     subtracts its own).  Bytes and foreign segments are never attached
 *     again.
 *   - Journals: directories named on the command line, and every journal
 *     a live process has mapped (".../journal.meta" in /proc/PID/maps).
 *     Opened as a reader for shmkit_journal_stat(); shmkit_journal_verify()
 *     (which reads every record) runs when a journal is first seen and
 *     again only when its files, records or writer changed.
 *   - Other names given as arguments (file:PATH segments, which no
 *     listing finds) are described by name at each refresh.
 *
 * Columns (interactive and --once; --json has the same and the totals):
 *   IN/s OUT/s  chan: sent, received; bus: published, delivered (sum over
 *               subscriber entries); rpc: requests, responses; journal:
 *               records appended (IN only)
 *   DEPTH       chan: queued; bus: retained (head - oldest); rpc: call
 *               slots in use; journal: records
 *   LAG         bus: the slowest live subscriber's lag
 *   LOST        bus: messages subscribers lost; rpc: calls that got no
 *               answer (timeouts + resets)
 *   PEERS       alive/dead entries (bus, rpc; SPSC channel roles by pid;
 *               System V attach count; journal writer)
 *   NOTE        "!" and why, for something stuck; else remarks
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "sysvtab.h"

#define NAME_MAX_LEN 4200
#define NOTE_LEN 200
#define JOURNAL_KIND 100 /* a journal directory (not a segment kind) */

/* ---- one object as sampled --------------------------------------------- */

/* A value top may not know: shown as "-" and null. */
struct num {
	uint64_t v;
	bool known;
};

struct obj {
	char name[NAME_MAX_LEN];   /* what to give back to shmkit */
	int kind;                  /* enum shmkit_kind or JOURNAL_KIND */
	int backend;               /* enum shmkit_backend; 0 for a journal */
	uint64_t size;
	struct num in, out;        /* counter totals */
	double rate_in, rate_out;  /* per second; valid when rate_known */
	bool rate_in_known, rate_out_known;
	struct num depth, capacity, lag, lost, alive, dead;
	bool stuck;
	char note[NOTE_LEN];
};

struct snap {
	struct obj *v;
	size_t n, cap;
	int64_t mono_ns;           /* CLOCK_MONOTONIC when taken */
	int64_t real_ns;           /* CLOCK_REALTIME when taken */
};

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct num known(uint64_t v)
{
	return (struct num){ .v = v, .known = true };
}

/* v with room for one more of n elements (capacity *cap), or NULL. */
static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(v, c * size);
	if (p)
		*cap = c;
	return p;
}

static struct obj *snap_add(struct snap *s, const char *name, int kind, int backend)
{
	struct obj *v = grow(s->v, &s->cap, s->n, sizeof(*v));

	if (!v)
		return NULL;
	s->v = v;
	struct obj *o = &s->v[s->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->kind = kind;
	o->backend = backend;
	return o;
}

static bool snap_has(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, name))
			return true;
	return false;
}

/* Append a remark to o->note ("; " between); stuck ones are marked. */
static void note(struct obj *o, bool stuck, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct obj *o, bool stuck, const char *fmt, ...)
{
	size_t len = strlen(o->note);
	va_list ap;

	if (len && len + 2 < sizeof(o->note))
		len += (size_t)snprintf(o->note + len, sizeof(o->note) - len, "; ");
	va_start(ap, fmt);
	if (len < sizeof(o->note))
		vsnprintf(o->note + len, sizeof(o->note) - len, fmt, ap);
	va_end(ap);
	o->stuck |= stuck;
}

/* Alive by pid, for what the library reports by pid only (the SPSC
 * roles): a pid of another PID namespace may mislead, so it is only a
 * remark, shown as such. */
static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* ---- state kept between refreshes --------------------------------------- */

/*
 * A System V segment once attached: its header's stat (kind never changes
 * once READY) and, for a service, the handle kept open.  Keyed by shmid
 * and the kernel's ctime, so a new segment with a reused id is read anew.
 */
struct sysv_entry {
	int shmid;
	long ctime;
	struct shmkit_seg_stat st;
	bool have_st;
	shmkit_chan *chan;
	shmkit_bus *bus;
	shmkit_rpc *rpc;
	bool seen;
};

/* A journal's last verification, and what it was made on. */
struct journal_entry {
	char path[PATH_MAX];
	struct shmkit_journal_stat sig;
	int verdict;               /* shmkit_journal_verify's result */
	struct shmkit_journal_report report;
	bool seen;
};

struct state {
	bool all;                  /* --all: foreign segments too */
	char **args;               /* NAMEs and journal PATHs given */
	int nargs;
	struct sysv_entry *sysv;
	size_t nsysv, capsysv;
	struct journal_entry *jr;
	size_t njr, capjr;
};

static void sysv_entry_close(struct sysv_entry *e)
{
	shmkit_chan_close(e->chan);
	if (e->bus)
		shmkit_bus_close(e->bus);
	shmkit_rpc_close(e->rpc);
	e->chan = NULL;
	e->bus = NULL;
	e->rpc = NULL;
}

/* Drop what the last refresh did not see; mark the rest unseen. */
static void state_sweep(struct state *s)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nsysv; i++) {
		if (s->sysv[i].seen) {
			s->sysv[i].seen = false;
			s->sysv[k++] = s->sysv[i];
		} else {
			sysv_entry_close(&s->sysv[i]);
		}
	}
	s->nsysv = k;
	k = 0;
	for (size_t i = 0; i < s->njr; i++)
		if (s->jr[i].seen) {
			s->jr[i].seen = false;
			s->jr[k++] = s->jr[i];
		}
	s->njr = k;
}

static void state_free(struct state *s)
{
	for (size_t i = 0; i < s->nsysv; i++)
		sysv_entry_close(&s->sysv[i]);
	free(s->sysv);
	free(s->jr);
}

/* ---- services: statistics into an obj ----------------------------------- */

static void fill_chan(struct obj *o, shmkit_chan *ch, const struct shmkit_seg_stat *seg)
{
	struct shmkit_chan_stats st;
	int err = shmkit_chan_stats(ch, &st);

	if (err) {
		note(o, false, "stats: %s", shmkit_strerror(err));
		return;
	}
	o->in = known(st.sent);
	o->out = known(st.received);
	o->depth = known(st.depth);
	o->capacity = known(st.capacity);
	bool full = st.depth >= st.capacity;
	if (st.spsc) {
		unsigned a = pid_alive((pid_t)st.producer) + pid_alive((pid_t)st.consumer);
		unsigned held = (st.producer != 0) + (st.consumer != 0);
		o->alive = known(a);
		o->dead = known(held - a);
		if (st.producer && !pid_alive((pid_t)st.producer))
			note(o, false, "producer pid %u gone", st.producer);
		if (full && (!st.consumer || !pid_alive((pid_t)st.consumer)))
			note(o, true, "full, no live consumer");
		else if (st.consumer && !pid_alive((pid_t)st.consumer))
			note(o, false, "consumer pid %u gone", st.consumer);
	}
	if (full && seg && seg->in_use == 0)
		note(o, true, "full, nobody has it open");
	if (st.reclaimed)
		note(o, false, "%" PRIu64 " reclaimed from dead peers", st.reclaimed);
}

struct bus_acc {
	uint64_t delivered, lost, lag;
	bool have_lag;
	unsigned alive, dead;
	pid_t slowest;
};

static int bus_peer(const struct shmkit_bus_peer *p, void *arg)
{
	struct bus_acc *a = arg;

	if (p->alive == 0)
		a->dead++;
	else if (p->alive > 0)
		a->alive++;
	if (!p->subscriber)
		return 0;
	a->delivered += p->count;
	a->lost += p->lost;
	if (p->alive != 0 && (!a->have_lag || p->lag > a->lag)) {
		a->lag = p->lag;
		a->have_lag = true;
		a->slowest = p->pid;
	}
	return 0;
}

static void fill_bus(struct obj *o, shmkit_bus *bus)
{
	struct shmkit_bus_stats st;
	struct bus_acc a = { 0 };
	int err = shmkit_bus_stats(bus, &st);

	if (!err)
		err = shmkit_bus_peers(bus, bus_peer, &a);
	if (err) {
		note(o, false, "stats: %s", shmkit_strerror(err));
		return;
	}
	o->in = known(st.head);
	o->out = known(a.delivered);
	o->depth = known(st.head >= st.oldest ? st.head - st.oldest : 0);
	o->capacity = known(st.capacity);
	o->lag.known = a.have_lag;
	o->lag.v = a.lag;
	o->lost = known(a.lost);
	o->alive = known(a.alive);
	o->dead = known(a.dead);
	if (st.delivery == SHMKIT_BUS_BACKPRESSURE && a.have_lag && a.lag >= st.capacity)
		note(o, true, "full: subscriber pid %d is %" PRIu64 " behind", (int)a.slowest, a.lag);
	if (a.dead)
		note(o, false, "%u dead peer entr%s", a.dead, a.dead > 1 ? "ies" : "y");
}

struct rpc_acc {
	unsigned alive, dead, dead_servers;
};

static int rpc_peer(const struct shmkit_rpc_peer *p, void *arg)
{
	struct rpc_acc *a = arg;

	if (p->alive == 0) {
		a->dead++;
		a->dead_servers += p->server != 0;
	} else if (p->alive > 0) {
		a->alive++;
	}
	return 0;
}

static void fill_rpc(struct obj *o, shmkit_rpc *r)
{
	struct shmkit_rpc_stats st;
	struct rpc_acc a = { 0 };
	int err = shmkit_rpc_stats(r, &st);

	if (!err)
		err = shmkit_rpc_peers(r, rpc_peer, &a);
	if (err) {
		note(o, false, "stats: %s", shmkit_strerror(err));
		return;
	}
	o->in = known(st.requests);
	o->out = known(st.responses);
	o->depth = known(st.in_flight);
	o->capacity = known((uint64_t)st.max_clients * st.depth);
	o->lost = known(st.timeouts + st.reset);
	o->alive = known(a.alive);
	o->dead = known(a.dead);
	if (st.in_flight && !st.servers)
		note(o, true, "%u call%s waiting, no live server", st.in_flight,
		     st.in_flight > 1 ? "s" : "");
	if (a.dead_servers)
		note(o, false, "%u dead server entr%s", a.dead_servers, a.dead_servers > 1 ? "ies" : "y");
}

/* ---- segments ------------------------------------------------------------ */

static const char *kind_word(int kind)
{
	static const char *const words[] = { "foreign", "bytes", "chan", "bus", "journal", "rpc" };

	if (kind == JOURNAL_KIND)
		return "journal";
	return kind >= 0 && kind <= SHMKIT_KIND_RPC ? words[kind] : "?";
}

static const char *backend_word(int backend)
{
	static const char *const words[] = { "-", "posix", "sysv", "file", "anon", "memfd" };

	return backend >= 0 && backend <= SHMKIT_MEMFD ? words[backend] : "?";
}

/* Remarks every segment may earn from its header and the kernel. */
static void seg_notes(struct obj *o, const struct shmkit_seg_stat *st)
{
	if (st->initialising == 2)
		note(o, true, "unfinished: its creator died initialising it (gc removes it)");
	else if (st->initialising)
		note(o, false, "initialising");
	else if (st->kind != SHMKIT_KIND_FOREIGN && !st->persistent && st->creator_alive == 0 &&
	         st->in_use == 0)
		note(o, true, "creator pid %d dead, nobody has it open (gc removes it)",
		     (int)st->creator_pid);
	if (st->removed)
		note(o, false, "removed, still attached");
}

/* One segment: an obj with what its kind reports.  Services are opened
 * here unless a handle is given (System V's, kept open). */
static void add_seg(struct snap *s, const struct state *g, const char *name,
                    const struct shmkit_seg_stat *st, void *handle)
{
	if (st->kind == SHMKIT_KIND_FOREIGN && !g->all)
		return;
	struct obj *o = snap_add(s, name, st->kind, st->backend);
	if (!o)
		return;
	o->size = st->kind == SHMKIT_KIND_FOREIGN ? st->map_size : st->data_size;
	if (st->backend == SHMKIT_SYSV && st->attach_count >= 0) {
		o->alive = known((uint64_t)st->attach_count);
	} else if (st->kind == SHMKIT_KIND_BYTES && st->in_use >= 0) {
		o->alive = known((uint64_t)st->in_use);
	}
	seg_notes(o, st);
	if (st->initialising || st->kind == SHMKIT_KIND_BYTES || st->kind == SHMKIT_KIND_FOREIGN)
		return;
	int err = 0;
	if (st->kind == SHMKIT_KIND_CHAN) {
		struct shmkit_chan_opts co = { .flags = SHMKIT_RDONLY };
		shmkit_chan *ch = handle;
		if (ch || !(err = shmkit_chan_open(&ch, name, &co)))
			fill_chan(o, ch, st);
		if (!handle)
			shmkit_chan_close(ch);
	} else if (st->kind == SHMKIT_KIND_BUS) {
		shmkit_bus *bus = handle;
		if (bus || !(err = shmkit_bus_open(&bus, name, NULL)))
			fill_bus(o, bus);
		if (!handle && !err)
			shmkit_bus_close(bus);
	} else if (st->kind == SHMKIT_KIND_RPC) {
		shmkit_rpc *r = handle;
		if (r || !(err = shmkit_rpc_open(&r, name, NULL)))
			fill_rpc(o, r);
		if (!handle)
			shmkit_rpc_close(r);
	}
	if (err)
		note(o, false, "open: %s", shmkit_strerror(err));
}

static void sample_posix(struct snap *s, const struct state *g)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	char name[NAME_MAX_LEN];
	struct shmkit_seg_stat st;

	if (!d)
		return;
	while ((e = readdir(d))) {
		/* dot files are the library's lock files, sem.* semaphores */
		if (e->d_name[0] == '.' || !strncmp(e->d_name, "sem.", 4))
			continue;
		snprintf(name, sizeof(name), "posix:/%s", e->d_name);
		if (!shmkit_seg_stat_name(name, &st))
			add_seg(s, g, name, &st, NULL);
	}
	closedir(d);
}

/* The entry of (shmid, ctime), made (by one attach) when new. */
static struct sysv_entry *sysv_entry(struct state *g, int shmid, long ctime)
{
	for (size_t i = 0; i < g->nsysv; i++)
		if (g->sysv[i].shmid == shmid && g->sysv[i].ctime == ctime)
			return &g->sysv[i];
	struct sysv_entry *v = grow(g->sysv, &g->capsysv, g->nsysv, sizeof(*v));
	if (!v)
		return NULL;
	g->sysv = v;
	struct sysv_entry *e = &v[g->nsysv++];
	memset(e, 0, sizeof(*e));
	e->shmid = shmid;
	e->ctime = ctime;
	char name[32];
	snprintf(name, sizeof(name), "sysv:id=%d", shmid);
	e->have_st = !shmkit_seg_stat_name(name, &e->st);
	return e;
}

/* Keep a System V service attached (one attach for the whole session). */
static void *sysv_handle(struct sysv_entry *e, const char *name)
{
	struct shmkit_chan_opts co = { .flags = SHMKIT_RDONLY };

	if (e->st.initialising)
		return NULL;
	if (e->st.kind == SHMKIT_KIND_CHAN && !e->chan)
		shmkit_chan_open(&e->chan, name, &co);
	else if (e->st.kind == SHMKIT_KIND_BUS && !e->bus)
		shmkit_bus_open(&e->bus, name, NULL);
	else if (e->st.kind == SHMKIT_KIND_RPC && !e->rpc)
		shmkit_rpc_open(&e->rpc, name, NULL);
	return e->chan ? (void *)e->chan : e->bus ? (void *)e->bus : (void *)e->rpc;
}

struct sysv_walk {
	struct snap *s;
	struct state *g;
};

static void sysv_row(const struct sysv_row *row, void *arg)
{
	struct sysv_walk *w = arg;
	struct sysv_entry *e = sysv_entry(w->g, row->shmid, row->ctime);
	char name[32];

	if (!e || !e->have_st)
		return; /* no permission to attach, or gone */
	e->seen = true;
	if (row->key)
		snprintf(name, sizeof(name), "sysv:0x%08lx", (unsigned long)(uint32_t)row->key);
	else
		snprintf(name, sizeof(name), "sysv:id=%d", row->shmid);
	void *h = sysv_handle(e, name);
	/* The kernel's fields now, from the table; our own attach is not
	 * someone using it. */
	struct shmkit_seg_stat st = e->st;
	st.attach_count = row->nattch - (h != NULL);
	st.in_use = st.attach_count > 0;
	st.removed = (row->perms & 01000) != 0; /* SHM_DEST */
	st.creator_alive = pid_alive(row->cpid) ? 1 : st.creator_alive;
	add_seg(w->s, w->g, name, &st, h);
}

static void sample_sysv(struct snap *s, struct state *g)
{
	struct sysv_walk w = { s, g };

	sysv_table_each(sysv_row, &w);
}

/* ---- journals ------------------------------------------------------------ */

/* Directories of journals some live process maps (its journal.meta). */
static void journals_mapped(struct snap *s, struct state *g, void (*add)(struct snap *,
                            struct state *, const char *))
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], line[PATH_MAX + 128];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			char *p = strchr(line, '/');
			size_t n = p ? strcspn(p, "\n") : 0;
			static const char tail[] = "/journal.meta";
			if (n <= sizeof(tail) - 1 || strncmp(p + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1))
				continue;
			p[n - (sizeof(tail) - 1)] = '\0';
			add(s, g, p);
		}
		fclose(f);
	}
	closedir(d);
}

static struct journal_entry *journal_entry(struct state *g, const char *path)
{
	for (size_t i = 0; i < g->njr; i++)
		if (!strcmp(g->jr[i].path, path))
			return &g->jr[i];
	struct journal_entry *v = grow(g->jr, &g->capjr, g->njr, sizeof(*v));
	if (!v)
		return NULL;
	g->jr = v;
	struct journal_entry *e = &v[g->njr++];
	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->verdict = 1; /* not verified yet */
	return e;
}

static bool journal_same(const struct shmkit_journal_stat *a, const struct shmkit_journal_stat *b)
{
	return a->first_seq == b->first_seq && a->last_seq == b->last_seq && a->files == b->files &&
	       a->bytes == b->bytes && a->writer_pid == b->writer_pid;
}

static void add_journal(struct snap *s, struct state *g, const char *path)
{
	char real[PATH_MAX];
	struct shmkit_journal_stat st;
	shmkit_journal *j;

	if (!realpath(path, real) || snap_has(s, real))
		return;
	int err = shmkit_journal_open(&j, real, NULL);
	if (!err) {
		err = shmkit_journal_stat(j, &st);
		shmkit_journal_close(j);
	}
	struct obj *o = snap_add(s, real, JOURNAL_KIND, 0);
	struct journal_entry *e = journal_entry(g, real);
	if (!o || !e)
		return;
	e->seen = true;
	if (err) {
		note(o, err == -EBADMSG, "%s%s", shmkit_strerror(err),
		     err == -EBADMSG ? ": needs shmkit journal repair" : "");
		return;
	}
	o->size = st.bytes;
	o->in = known(st.last_seq);
	o->depth = known(st.records);
	o->alive = known(st.writer_pid != 0);
	if (e->verdict == 1 || !journal_same(&e->sig, &st)) {
		e->verdict = shmkit_journal_verify(real, &e->report);
		e->sig = st;
	}
	if (e->verdict == -EBADMSG)
		note(o, true, "needs repair: damage at %s (shmkit journal repair)", e->report.where);
	else if (e->verdict < 0)
		note(o, false, "verify: %s", shmkit_strerror(e->verdict));
	if (!st.writer_pid)
		note(o, false, "no writer");
}

/* ---- one refresh --------------------------------------------------------- */

static bool is_dir(const char *path)
{
	struct stat sb;

	return !strchr(path, ':') && !stat(path, &sb) && S_ISDIR(sb.st_mode);
}

static void sample(struct snap *s, struct state *g)
{
	s->n = 0;
	s->mono_ns = clock_ns(CLOCK_MONOTONIC);
	s->real_ns = clock_ns(CLOCK_REALTIME);
	sample_posix(s, g);
	sample_sysv(s, g);
	for (int i = 0; i < g->nargs; i++) {
		struct shmkit_seg_stat st;
		if (is_dir(g->args[i]))
			add_journal(s, g, g->args[i]);
		else if (!snap_has(s, g->args[i]) && !shmkit_seg_stat_name(g->args[i], &st) &&
		         !snap_has(s, st.name))
			add_seg(s, g, g->args[i], &st, NULL);
	}
	journals_mapped(s, g, add_journal);
	state_sweep(g);
}

/* Rates of cur from the counters of prev (same name and kind). */
static void rates(struct snap *cur, const struct snap *prev)
{
	double dt = (double)(cur->mono_ns - prev->mono_ns) / 1e9;

	for (size_t i = 0; i < cur->n && dt > 0; i++) {
		struct obj *o = &cur->v[i];
		for (size_t k = 0; k < prev->n; k++) {
			const struct obj *p = &prev->v[k];
			if (p->kind != o->kind || strcmp(p->name, o->name))
				continue;
			/* A counter that went back (an entry reclaimed, an
			 * object made anew) gives no rate. */
			if (o->in.known && p->in.known && o->in.v >= p->in.v) {
				o->rate_in = (double)(o->in.v - p->in.v) / dt;
				o->rate_in_known = true;
			}
			if (o->out.known && p->out.known && o->out.v >= p->out.v) {
				o->rate_out = (double)(o->out.v - p->out.v) / dt;
				o->rate_out_known = true;
			}
			break;
		}
	}
}

/* ---- sorting and filtering ----------------------------------------------- */

enum sort_key { S_KIND, S_NAME, S_SIZE, S_IN, S_OUT, S_DEPTH, S_LAG, S_LOST, S_COUNT };
static const char *const sort_words[S_COUNT] = {
	"kind", "name", "size", "in/s", "out/s", "depth", "lag", "lost",
};

struct view {
	enum sort_key sort;
	bool reverse;
	char filter[128];          /* substring of the name; "" = all */
	int kind;                  /* -1 all, else a kind to show */
};

static int cmp_num(double a, double b)
{
	return (a > b) - (a < b);
}

static double num_or(struct num n)
{
	return n.known ? (double)n.v : -1;
}

static enum sort_key sort_by;

static int obj_cmp(const void *pa, const void *pb)
{
	const struct obj *a = pa, *b = pb;
	int c = 0;

	switch (sort_by) {
	case S_KIND: c = strcmp(kind_word(a->kind), kind_word(b->kind)); break;
	case S_NAME: break;
	case S_SIZE: c = -cmp_num((double)a->size, (double)b->size); break;
	case S_IN: c = -cmp_num(a->rate_in_known ? a->rate_in : -1, b->rate_in_known ? b->rate_in : -1); break;
	case S_OUT: c = -cmp_num(a->rate_out_known ? a->rate_out : -1, b->rate_out_known ? b->rate_out : -1); break;
	case S_DEPTH: c = -cmp_num(num_or(a->depth), num_or(b->depth)); break;
	case S_LAG: c = -cmp_num(num_or(a->lag), num_or(b->lag)); break;
	case S_LOST: c = -cmp_num(num_or(a->lost), num_or(b->lost)); break;
	case S_COUNT: break;
	}
	return c ? c : strcmp(a->name, b->name);
}

static bool sort_reverse;

static int row_cmp(const void *pa, const void *pb)
{
	int c = obj_cmp(*(const struct obj *const *)pa, *(const struct obj *const *)pb);

	return sort_reverse ? -c : c;
}

/* The rows to show, in order: pointers into s (freed by the caller). */
static const struct obj **view_rows(const struct snap *s, const struct view *v, size_t *n)
{
	const struct obj **rows = calloc(s->n + 1, sizeof(*rows));

	*n = 0;
	if (!rows)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		const struct obj *o = &s->v[i];
		if ((v->kind < 0 || o->kind == v->kind) && (!v->filter[0] || strstr(o->name, v->filter)))
			rows[(*n)++] = o;
	}
	sort_by = v->sort;
	sort_reverse = v->reverse;
	qsort(rows, *n, sizeof(*rows), row_cmp);
	return rows;
}

/* ---- text cells ------------------------------------------------------------ */

enum { C_KIND, C_NAME, C_BACKEND, C_SIZE, C_IN, C_OUT, C_DEPTH, C_LAG, C_LOST, C_PEERS, C_NOTE,
       NCOLS };
static const char *const heads[NCOLS] = {
	"KIND", "NAME", "BACKEND", "SIZE", "IN/s", "OUT/s", "DEPTH", "LAG", "LOST", "PEERS", "NOTE",
};
#define CELL 512

/* Short for a screen: 999, 1.2k, 34.5M. */
static void short_num(double v, char *buf, size_t len)
{
	static const char units[] = " kMGTP";
	int u = 0;

	while (v >= 9999.5 && u < 5) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, v < 10 && v != (double)(long long)v ? "%.1f" : "%.0f", v);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
}

static void num_cell(struct num n, char *buf)
{
	if (n.known)
		snprintf(buf, CELL, "%" PRIu64, n.v);
	else
		snprintf(buf, CELL, "-");
}

static void rate_cell(bool is_known, double v, char *buf)
{
	if (is_known)
		short_num(v, buf, CELL);
	else
		snprintf(buf, CELL, "-");
}

static void size_cell(uint64_t v, char *buf)
{
	static const char units[] = "KMGT";
	int u = -1;
	double d = (double)v;

	while (d >= 1024 && u < 3) {
		d /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, CELL, "%" PRIu64, v);
	else
		snprintf(buf, CELL, d < 10 && d != (double)(long long)d ? "%.1f%c" : "%.0f%c", d, units[u]);
}

static void cells(const struct obj *o, char c[NCOLS][CELL])
{
	snprintf(c[C_KIND], CELL, "%s%s", o->stuck ? "!" : "", kind_word(o->kind));
	tool_escape(o->name, c[C_NAME], CELL);
	snprintf(c[C_BACKEND], CELL, "%s", o->kind == JOURNAL_KIND ? "file" : backend_word(o->backend));
	size_cell(o->size, c[C_SIZE]);
	rate_cell(o->rate_in_known, o->rate_in, c[C_IN]);
	rate_cell(o->rate_out_known, o->rate_out, c[C_OUT]);
	num_cell(o->depth, c[C_DEPTH]);
	num_cell(o->lag, c[C_LAG]);
	num_cell(o->lost, c[C_LOST]);
	if (o->alive.known && o->dead.known)
		snprintf(c[C_PEERS], CELL, "%" PRIu64 "/%" PRIu64, o->alive.v, o->dead.v);
	else if (o->alive.known)
		snprintf(c[C_PEERS], CELL, "%" PRIu64 "/-", o->alive.v);
	else
		snprintf(c[C_PEERS], CELL, "-");
	tool_escape(o->note, c[C_NOTE], CELL);
}

/* Columns right-aligned (numbers). */
static bool right_col(int c)
{
	return c >= C_SIZE && c <= C_PEERS;
}

/* Characters a terminal shows for s (UTF-8: continuation bytes take none). */
static int text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Print the table, each line cut at maxw columns (0: no limit) and ended
 * by eol. */
static void print_table(const struct obj *const *rows, size_t n, int maxw, const char *eol,
                        const char *head_on, const char *head_off)
{
	static char c[NCOLS][CELL];
	int width[NCOLS];
	char line[NCOLS * (CELL + 2) + 1];

	for (int k = 0; k < NCOLS; k++)
		width[k] = (int)strlen(heads[k]);
	for (size_t i = 0; i < n; i++) {
		cells(rows[i], c);
		for (int k = 0; k < NCOLS; k++)
			if (text_width(c[k]) > width[k])
				width[k] = text_width(c[k]);
	}
	for (size_t i = 0; i <= n; i++) {
		const char *cell[NCOLS];
		if (i == 0)
			memcpy(cell, heads, sizeof(cell));
		else {
			cells(rows[i - 1], c);
			for (int k = 0; k < NCOLS; k++)
				cell[k] = c[k];
		}
		size_t len = 0;
		int shown = 0;
		for (int k = 0; k < NCOLS; k++) {
			int pad = width[k] - text_width(cell[k]);
			const char *sep = k + 1 < NCOLS ? "  " : "";
			if (k + 1 == NCOLS)
				pad = 0;
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%*s%s%*s%s",
			                        right_col(k) ? pad : 0, "", cell[k],
			                        right_col(k) ? 0 : pad, "", sep);
		}
		while (len && line[len - 1] == ' ')
			line[--len] = '\0';
		if (maxw > 0) { /* cut at maxw characters */
			size_t b = 0;
			for (; line[b]; b++) {
				if (((unsigned char)line[b] & 0xc0) != 0x80 && shown++ == maxw)
					break;
			}
			line[b] = '\0';
		}
		printf("%s%s%s%s", i == 0 ? head_on : "", line, i == 0 ? head_off : "", eol);
	}
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_num(const char *key, struct num n)
{
	if (n.known)
		printf(",\"%s\":%" PRIu64, key, n.v);
	else
		printf(",\"%s\":null", key);
}

static void json_rate(const char *key, bool is_known, double v)
{
	if (is_known)
		printf(",\"%s\":%.3f", key, v);
	else
		printf(",\"%s\":null", key);
}

static void print_json(const struct snap *s, int64_t interval_ns)
{
	printf("{\"time_ns\":\"%" PRId64 "\",\"time\":%" PRId64 ".%09" PRId64
	       ",\"interval_ms\":%" PRId64 ",\"count\":%zu,\"objects\":[",
	       s->real_ns, s->real_ns / 1000000000, s->real_ns % 1000000000, interval_ns / 1000000, s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct obj *o = &s->v[i];
		printf("%s{\"kind\":\"%s\",\"name\":", i ? "," : "", kind_word(o->kind));
		tool_json_str(o->name);
		printf(",\"backend\":\"%s\",\"size\":%" PRIu64,
		       o->kind == JOURNAL_KIND ? "file" : backend_word(o->backend), o->size);
		json_num("in", o->in);
		json_num("out", o->out);
		json_rate("in_rate", o->rate_in_known, o->rate_in);
		json_rate("out_rate", o->rate_out_known, o->rate_out);
		json_num("depth", o->depth);
		json_num("capacity", o->capacity);
		json_num("lag", o->lag);
		json_num("lost", o->lost);
		json_num("peers_alive", o->alive);
		json_num("peers_dead", o->dead);
		printf(",\"stuck\":%s,\"note\":", o->stuck ? "true" : "false");
		tool_json_str(o->note);
		printf("}");
	}
	printf("]}\n");
}

/* ---- the live view ------------------------------------------------------- */

static volatile sig_atomic_t quit_sig, resized;

static void on_quit(int sig)
{
	quit_sig = sig;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

struct term {
	struct termios saved;
	bool raw;
	int rows, cols;
};

static void term_size(struct term *t)
{
	struct winsize ws;

	t->rows = 24;
	t->cols = 80;
	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_row && ws.ws_col) {
		t->rows = ws.ws_row;
		t->cols = ws.ws_col;
	}
}

static int term_enter(struct term *t)
{
	struct termios raw;
	struct sigaction sa = { .sa_handler = on_quit }; /* no SA_RESTART: poll wakes */

	if (tcgetattr(STDIN_FILENO, &t->saved))
		return -errno;
	raw = t->saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG kept: Ctrl-C quits */
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw))
		return -errno;
	t->raw = true;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
	/* alternate screen, cursor hidden */
	fputs("\033[?1049h\033[?25l", stdout);
	term_size(t);
	return 0;
}

static void term_leave(struct term *t)
{
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
}

static const int kind_cycle[] = { -1, SHMKIT_KIND_CHAN, SHMKIT_KIND_BUS, SHMKIT_KIND_RPC,
                                  JOURNAL_KIND, SHMKIT_KIND_BYTES, SHMKIT_KIND_FOREIGN };

static void draw(const struct term *t, const struct snap *s, const struct view *v,
                 const char *typing)
{
	size_t n, stuck = 0;
	const struct obj **rows = view_rows(s, v, &n);
	char clock[16];
	time_t now = (time_t)(s->real_ns / 1000000000);
	struct tm tm;

	for (size_t i = 0; i < s->n; i++)
		stuck += s->v[i].stuck;
	if (!localtime_r(&now, &tm) || !strftime(clock, sizeof(clock), "%H:%M:%S", &tm))
		snprintf(clock, sizeof(clock), "?");
	fputs("\033[H", stdout);
	char head[512];
	snprintf(head, sizeof(head), "shmkit top  %s  %zu objects, %zu shown, %zu stuck  sort: %s%s"
	         "  kind: %s  filter: %s%s", clock, s->n, n, stuck, sort_words[v->sort],
	         v->reverse ? " (reversed)" : "", v->kind < 0 ? "all" : kind_word(v->kind),
	         typing ? typing : v->filter[0] ? v->filter : "-", typing ? "_" : "");
	head[t->cols < (int)sizeof(head) ? t->cols : (int)sizeof(head) - 1] = '\0';
	printf("%s\033[K\r\n", head);
	char keys[256];
	snprintf(keys, sizeof(keys), "%s", typing ? "filter by name: type, Enter applies, Esc cancels"
	         : "s sort  r reverse  / filter  k kind  c clear  q quit");
	keys[t->cols < (int)sizeof(keys) ? t->cols : (int)sizeof(keys) - 1] = '\0';
	printf("%s\033[K\r\n", keys);
	size_t room = t->rows > 3 ? (size_t)t->rows - 3 : 0;
	if (rows)
		print_table(rows, n < room ? n : room, t->cols, "\033[K\r\n", "\033[7m", "\033[m");
	fputs("\033[J", stdout);
	fflush(stdout);
	free(rows);
}

/* One key; false to quit.  *typing holds the filter being typed (NULL
 * when not typing). */
static bool key(struct view *v, char **typing, char *buf, unsigned char ch)
{
	if (*typing) {
		size_t len = strlen(buf);
		if (ch == '\r' || ch == '\n') {
			snprintf(v->filter, sizeof(v->filter), "%s", buf);
			*typing = NULL;
		} else if (ch == 27) {
			*typing = NULL;
		} else if ((ch == 127 || ch == 8) && len) {
			buf[len - 1] = '\0';
		} else if (ch >= 0x20 && ch != 127 && len + 1 < sizeof(v->filter)) {
			buf[len] = (char)ch;
			buf[len + 1] = '\0';
		}
		return true;
	}
	switch (ch) {
	case 'q': case 'Q': return false;
	case 's': v->sort = (v->sort + 1) % S_COUNT; break;
	case 'S': v->sort = (v->sort + S_COUNT - 1) % S_COUNT; break;
	case 'r': v->reverse = !v->reverse; break;
	case '/': buf[0] = '\0'; *typing = buf; break;
	case 'c': v->filter[0] = '\0'; v->kind = -1; break;
	case 'k': {
		size_t n = sizeof(kind_cycle) / sizeof(kind_cycle[0]), i = 0;
		while (i < n && kind_cycle[i] != v->kind)
			i++;
		v->kind = kind_cycle[(i + 1) % n];
		break;
	}
	}
	return true;
}

static int live(struct state *g, int64_t interval_ns)
{
	struct term t = { .raw = false };
	struct snap a = { 0 }, b = { 0 }, *cur = &a, *prev = &b;
	struct view v = { .sort = S_KIND, .kind = -1 };
	char typed[sizeof(v.filter)], *typing = NULL;
	int err = term_enter(&t);

	if (err) {
		term_leave(&t);
		return tool_err("top: terminal", err);
	}
	sample(cur, g);
	draw(&t, cur, &v, typing);
	int64_t next = cur->mono_ns + interval_ns;
	while (!quit_sig) {
		int64_t wait = next - clock_ns(CLOCK_MONOTONIC);
		if (wait <= 0) {
			struct snap *x = prev;
			prev = cur;
			cur = x;
			sample(cur, g);
			rates(cur, prev);
			next = cur->mono_ns + interval_ns;
			draw(&t, cur, &v, typing);
			continue;
		}
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = poll(&p, 1, (int)((wait + 999999) / 1000000));
		if (resized) {
			resized = 0;
			term_size(&t);
			draw(&t, cur, &v, typing);
		}
		if (r <= 0)
			continue;
		unsigned char buf[64];
		ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
		if (k <= 0)
			break; /* the terminal went away */
		bool go = true;
		/* an escape sequence (an arrow key) is one key we ignore; a lone
		 * ESC cancels typing */
		if (buf[0] == 27 && k > 1)
			k = 0;
		for (ssize_t i = 0; i < k && go; i++)
			go = key(&v, &typing, typed, buf[i]);
		if (!go)
			break;
		draw(&t, cur, &v, typing);
	}
	term_leave(&t);
	free(a.v);
	free(b.v);
	return 0;
}

/* ---- entry point ------------------------------------------------------- */

static const char top_help[] =
	"usage: shmkit top [--once] [--json] [--interval MS] [--all] [NAME|PATH...]\n"
	"\n"
	"A live view of every shmkit object on the machine, refreshed every\n"
	"--interval: channels, buses, rpc services and byte segments in /dev/shm\n"
	"and System V, and journals (those a live process maps, and the PATHs\n"
	"given).  NAMEs add segments no listing finds (file:PATH).  Columns:\n"
	"  KIND NAME BACKEND SIZE\n"
	"  IN/s OUT/s  messages or records per second between two refreshes: chan\n"
	"              sent/received, bus published/delivered, rpc requests/\n"
	"              responses, journal records appended\n"
	"  DEPTH       chan queued, bus retained, rpc calls in flight, journal records\n"
	"  LAG         bus: the slowest live subscriber's lag\n"
	"  LOST        bus: lost by subscribers; rpc: calls unanswered (timeouts, resets)\n"
	"  PEERS       alive/dead entries (bus, rpc, SPSC channel roles), System V\n"
	"              attach count, journal writer\n"
	"  NOTE        why a row is marked stuck (\"!\" before its kind): a full\n"
	"              channel nobody drains, a full back-pressure bus, calls and no\n"
	"              server, a journal needing repair, an unfinished or leftover\n"
	"              segment; and remarks (dead peer entries, no writer)\n"
	"Keys: s / S cycle the sort column (kind, name, size, in/s, out/s, depth,\n"
	"lag, lost), r reverses it, / filters by a name substring (Enter applies,\n"
	"Esc cancels), k cycles the kind shown, c clears filters, q or Ctrl-C quits.\n"
	"A System V service is attached once for the session (its attach time\n"
	"changes once), never just to be listed again.\n"
	"\n"
	"  --once          print one table (after two samples an interval apart,\n"
	"                  so rates are known) and exit\n"
	"  --json          print each refresh as one JSON object on one line\n"
	"                  (with --once: one); times as a string of ns and seconds\n"
	"  --interval MS   milliseconds between refreshes (default 1000, at least 10)\n"
	"  --all           also list foreign segments (no shmkit header)\n";

int cmd_top(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, '1' },
		{ "json", no_argument, NULL, 'j' },
		{ "interval", required_argument, NULL, 'i' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct state g = { .all = false };
	bool once = false, json = false;
	int64_t interval = 1000000000;
	int c;

	while ((c = getopt_long(argc, argv, ":1ji:ah", opts, NULL)) != -1) {
		switch (c) {
		case '1': once = true; break;
		case 'j': json = true; break;
		case 'i':
			if (tool_parse_ms(optarg, &interval) || interval < 10000000)
				return tool_usage("top: --interval '%s' is not a number of milliseconds "
				                  "(at least 10)", optarg);
			break;
		case 'a': g.all = true; break;
		case 'h': fputs(top_help, stdout); return 0;
		default: return tool_bad_option("top", c, argv);
		}
	}
	g.args = argv + optind;
	g.nargs = argc - optind;
	if (!once && !json) {
		const char *term = getenv("TERM");
		if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || !term || !strcmp(term, "dumb"))
			return tool_usage("top: the live view needs a terminal (stdin and stdout, TERM "
			                  "not dumb); use --once or --json");
		int rc = live(&g, interval);
		state_free(&g);
		return rc;
	}
	struct snap a = { 0 }, b = { 0 }, *cur = &a, *prev = &b;
	struct sigaction sa = { .sa_handler = on_quit };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sample(prev, &g);
	int rc = 0;
	while (!quit_sig) {
		struct timespec ts = { .tv_sec = interval / 1000000000, .tv_nsec = interval % 1000000000 };
		while (nanosleep(&ts, &ts) && errno == EINTR && !quit_sig)
			;
		if (quit_sig)
			break;
		sample(cur, &g);
		rates(cur, prev);
		if (json) {
			print_json(cur, interval);
		} else {
			size_t n;
			struct view v = { .sort = S_KIND, .kind = -1 };
			const struct obj **rows = view_rows(cur, &v, &n);
			if (rows)
				print_table(rows, n, 0, "\n", "", "");
			free(rows);
		}
		if (fflush(stdout) == EOF) {
			rc = tool_err("top: writing output", -errno);
			break;
		}
		if (once)
			break;
		struct snap *x = prev;
		prev = cur;
		cur = x;
	}
	free(a.v);
	free(b.v);
	state_free(&g);
	return rc;
}
