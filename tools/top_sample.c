/*
 * top_sample.c - one refresh of `shmkit top` (tools/top.h): every shmkit
 * object on the machine, with what its kind reports.
 *
 * What is sampled, and what it costs the objects:
 *   - POSIX segments: every file of /dev/shm through
 *     shmkit_seg_info_name() (a descriptor that holds no lock: a look does
 *     not count as "in use"); channels, buses and rpc services are opened
 *     for their statistics and closed again at each refresh.
 *   - System V segments: /proc/sysvipc/shm gives size, mode and attach
 *     count without attaching.  One without shmkit's lock file
 *     (/dev/shm/.shmkit-sysv-KEY.lock, as `ls` tells them) is foreign and
 *     never attached.  A shmkit segment's header (its kind) is read once,
 *     when its (shmid, ctime) is new; a service is attached once and kept
 *     attached while top runs, so top changes a segment's attach time once,
 *     not every second (and its attach count shows one more meanwhile: top
 *     subtracts its own).  A byte segment is not attached again.
 *   - Journals: directories named on the command line, and every journal
 *     a live process has mapped (".../journal.meta" in /proc/PID/maps).
 *     Opened as a reader for shmkit_journal_stats(); shmkit_journal_verify()
 *     (which reads every record) runs when a journal is first seen and
 *     again only when its files, records or writer changed.
 *   - Other names given as arguments (file:PATH segments, which no
 *     listing finds) are described by name at each refresh.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "sysvtab.h"
#include "top.h"

/* ---- one object as sampled --------------------------------------------- */



int64_t top_clock_ns(clockid_t c)
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
	struct shmkit_seg_info st;
	bool have_st;
	shmkit_chan *chan;
	shmkit_bus *bus;
	shmkit_rpc *rpc;
	bool seen;
};

/* A journal's last verification, and what it was made on. */
struct journal_entry {
	char path[PATH_MAX];
	struct shmkit_journal_stats sig;
	int verdict;               /* shmkit_journal_verify's result */
	struct shmkit_journal_report report;
	bool seen;
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

void top_state_free(struct state *s)
{
	for (size_t i = 0; i < s->nsysv; i++)
		sysv_entry_close(&s->sysv[i]);
	free(s->sysv);
	free(s->jr);
}

/* ---- services: statistics into an obj ----------------------------------- */

struct chan_acc {
	unsigned alive, dead, consumers;  /* consumers: live ones (SPSC: the
	                                     role; MPMC: a handle that has
	                                     received) */
	pid_t dead_pid[2];                /* SPSC: a dead role holder's pid */
};

static int chan_peer(const struct shmkit_chan_peer *p, void *arg)
{
	struct chan_acc *a = arg;
	bool consumer = p->role == SHMKIT_CHAN_PEER_CONSUMER || p->received > 0;

	if (p->alive == 0) {
		a->dead++;
		if (p->role != SHMKIT_CHAN_PEER_HANDLE)
			a->dead_pid[p->role - 1] = p->pid;
	} else {
		a->alive += p->alive > 0;
		a->consumers += consumer; /* unknown (-1) counts as alive */
	}
	return 0;
}

static void fill_chan(struct obj *o, shmkit_chan *ch, const struct shmkit_seg_info *seg)
{
	struct shmkit_chan_stats st;
	struct chan_acc a = { 0 };
	int err = shmkit_chan_stats(ch, &st);

	if (!err)
		err = shmkit_chan_peers(ch, chan_peer, &a);
	if (err) {
		note(o, false, "stats: %s", shmkit_strerror(err));
		return;
	}
	o->in = known(st.sent);
	o->out = known(st.received);
	o->depth = known(st.depth);
	o->capacity = known(st.capacity);
	o->alive = known(a.alive);
	o->dead = known(a.dead);
	bool full = st.depth >= st.capacity;
	if (full && seg && seg->in_use == 0)
		note(o, true, "full, nobody has it open");
	else if (full && !a.consumers)
		note(o, true, st.spsc ? "full, no live consumer" : "full, no live handle has received");
	if (a.dead_pid[0])
		note(o, false, "producer pid %d gone", (int)a.dead_pid[0]);
	if (a.dead_pid[1])
		note(o, false, "consumer pid %d gone", (int)a.dead_pid[1]);
	else if (!st.spsc && a.dead)
		note(o, false, "%u dead handle entr%s", a.dead, a.dead > 1 ? "ies" : "y");
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

/* The words ls and info use (cmd_info.c), and top's own kind for a
 * journal directory. */
const char *top_kind_word(int kind)
{
	return kind == JOURNAL_KIND ? "journal" : seg_kind_label(kind);
}

const char *top_backend_word(int backend)
{
	return backend == 0 ? "-" : seg_backend_label(backend);
}

/* Remarks every segment may earn from its header and the kernel. */
static void seg_notes(struct obj *o, const struct shmkit_seg_info *st)
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
                    const struct shmkit_seg_info *st, void *handle)
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
	struct shmkit_seg_info st;

	if (!d)
		return;
	while ((e = readdir(d))) {
		/* dot files are the library's lock files, sem.* semaphores */
		if (e->d_name[0] == '.' || !strncmp(e->d_name, "sem.", 4))
			continue;
		snprintf(name, sizeof(name), "posix:/%s", e->d_name);
		if (!shmkit_seg_info_name(name, &st))
			add_seg(s, g, name, &st, NULL);
	}
	closedir(d);
}

/* What the kernel's table says of a segment shmkit did not make: listed
 * (with --all) as foreign, never attached. */
static void sysv_foreign(struct shmkit_seg_info *st, const struct sysv_row *row)
{
	st->backend = SHMKIT_SYSV;
	st->kind = SHMKIT_KIND_FOREIGN;
	snprintf(st->name, sizeof(st->name), "sysv:id=%d", row->shmid);
	st->map_size = st->data_size = (size_t)row->size;
	st->mode = row->perms & 0777;
	st->uid = (uid_t)row->uid;
	st->creator_pid = row->cpid;
	st->shmid = row->shmid;
	st->key = (long)(uint32_t)row->key;
}

/* The entry of (shmid, ctime), made when new: a segment with shmkit's
 * lock file is attached once, to read its header (its kind); any other is
 * foreign and not attached at all. */
static struct sysv_entry *sysv_entry(struct state *g, const struct sysv_row *row)
{
	for (size_t i = 0; i < g->nsysv; i++)
		if (g->sysv[i].shmid == row->shmid && g->sysv[i].ctime == row->ctime)
			return &g->sysv[i];
	struct sysv_entry *v = grow(g->sysv, &g->capsysv, g->nsysv, sizeof(*v));
	if (!v)
		return NULL;
	g->sysv = v;
	struct sysv_entry *e = &v[g->nsysv++];
	memset(e, 0, sizeof(*e));
	e->shmid = row->shmid;
	e->ctime = row->ctime;
	if (!sysv_lock_file(row->key)) {
		sysv_foreign(&e->st, row);
		e->have_st = true;
		return e;
	}
	char name[32];
	snprintf(name, sizeof(name), "sysv:id=%d", row->shmid);
	e->have_st = !shmkit_seg_info_name(name, &e->st);
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
	struct sysv_entry *e = sysv_entry(w->g, row);
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
	struct shmkit_seg_info st = e->st;
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

static bool journal_same(const struct shmkit_journal_stats *a, const struct shmkit_journal_stats *b)
{
	return a->first_seq == b->first_seq && a->last_seq == b->last_seq && a->files == b->files &&
	       a->bytes == b->bytes && a->writer_pid == b->writer_pid;
}

static void add_journal(struct snap *s, struct state *g, const char *path)
{
	char real[PATH_MAX];
	struct shmkit_journal_stats st;
	shmkit_journal *j;

	if (!realpath(path, real) || snap_has(s, real))
		return;
	int err = shmkit_journal_open(&j, real, NULL);
	if (!err) {
		err = shmkit_journal_stats(j, &st);
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

void top_sample(struct snap *s, struct state *g)
{
	s->n = 0;
	s->mono_ns = top_clock_ns(CLOCK_MONOTONIC);
	s->real_ns = top_clock_ns(CLOCK_REALTIME);
	sample_posix(s, g);
	sample_sysv(s, g);
	for (int i = 0; i < g->nargs; i++) {
		struct shmkit_seg_info st;
		int err;
		if (is_dir(g->args[i]))
			add_journal(s, g, g->args[i]);
		else if (snap_has(s, g->args[i]))
			continue;
		else if (!(err = shmkit_seg_info_name(g->args[i], &st)) && !snap_has(s, st.name))
			add_seg(s, g, g->args[i], &st, NULL);
		else if (!g->bad_arg && (err == -EINVAL || err == -ENAMETOOLONG) &&
		         (strchr(g->args[i], ':') || !strchr(g->args[i], '/'))) {
			/* a segment name the library cannot parse (a PATH
			 * may be a journal not made yet) */
			g->bad_arg = i + 1;
			g->bad_err = err;
		}
	}
	journals_mapped(s, g, add_journal);
	state_sweep(g);
}

void top_rates(struct snap *cur, const struct snap *prev)
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
