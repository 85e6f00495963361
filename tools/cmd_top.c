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
 * What is sampled, and what that costs the objects: tools/top_sample.c.
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
 *   PEERS       alive/dead entries, by the kernel's locks (chan: handles,
 *               SPSC roles; bus, rpc: table entries); System V attach
 *               count; journal writer
 *   NOTE        "!" and why, for something stuck; else remarks
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "top.h"

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
	case S_KIND: c = strcmp(top_kind_word(a->kind), top_kind_word(b->kind)); break;
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
	snprintf(c[C_KIND], CELL, "%s%s", o->stuck ? "!" : "", top_kind_word(o->kind));
	tool_escape(o->name, c[C_NAME], CELL);
	snprintf(c[C_BACKEND], CELL, "%s", o->kind == JOURNAL_KIND ? "file" : top_backend_word(o->backend));
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
	printf("{");
	tool_json_time("time", s->real_ns);
	printf(",\"interval_ms\":%" PRId64 ",\"count\":%zu,\"objects\":[", interval_ns / 1000000,
	       s->n);
	for (size_t i = 0; i < s->n; i++) {
		const struct obj *o = &s->v[i];
		printf("%s{\"kind\":\"%s\",", i ? "," : "", top_kind_word(o->kind));
		tool_json_name("name", o->name);
		printf(",\"backend\":\"%s\",\"size\":%" PRIu64,
		       o->kind == JOURNAL_KIND ? "file" : top_backend_word(o->backend), o->size);
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
	         v->reverse ? " (reversed)" : "", v->kind < 0 ? "all" : top_kind_word(v->kind),
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

/* The live view, from the first refresh *first (taken by cmd_top; its
 * objects are freed here). */
static int live(struct state *g, int64_t interval_ns, const struct snap *first)
{
	struct term t = { .raw = false };
	struct snap a = *first, b = { 0 }, *cur = &a, *prev = &b;
	struct view v = { .sort = S_KIND, .kind = -1 };
	char typed[sizeof(v.filter)], *typing = NULL;
	int err = term_enter(&t);

	if (err) {
		term_leave(&t);
		free(a.v);
		return tool_err("top: terminal", err);
	}
	draw(&t, cur, &v, typing);
	int64_t next = cur->mono_ns + interval_ns;
	while (!quit_sig) {
		int64_t wait = next - top_clock_ns(CLOCK_MONOTONIC);
		if (wait <= 0) {
			struct snap *x = prev;
			prev = cur;
			cur = x;
			top_sample(cur, g);
			top_rates(cur, prev);
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
	"  PEERS       alive/dead entries (chan handles or SPSC roles, bus, rpc),\n"
	"              System V attach count, journal writer\n"
	"  NOTE        why a row is marked stuck (\"!\" before its kind): a full\n"
	"              channel no live handle receives from, a full back-pressure\n"
	"              bus, calls and no server, a journal needing repair, an\n"
	"              unfinished or leftover segment; and remarks (dead peer\n"
	"              entries, no writer)\n"
	"Keys: s / S cycle the sort column (kind, name, size, in/s, out/s, depth,\n"
	"lag, lost), r reverses it, / filters by a name substring (Enter applies,\n"
	"Esc cancels), k cycles the kind shown, c clears filters, q or Ctrl-C quits.\n"
	"A System V service is attached once for the session (its attach time\n"
	"changes once) and stays attached while top runs (one more attach for\n"
	"others to see: gc keeps it meanwhile); another shmkit System V segment\n"
	"is attached once, to read its header; a foreign one never.\n"
	"\n"
	"  --once          print one table (after two samples an interval apart,\n"
	"                  so rates are known) and exit\n"
	"  --json          print each refresh as one JSON object on one line\n"
	"                  (with --once: one): time_ns (a string) and time (UTC),\n"
	"                  interval_ms, count, objects (the columns; null where a\n"
	"                  value does not apply; name_hex for a name not UTF-8)\n"
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
	for (int i = 0; i < g.nargs; i++) {
		int rc = tool_check_name("top", g.args[i]);
		if (rc)
			return rc;
	}
	const char *term = getenv("TERM");
	if (!once && !json &&
	    (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || !term || !strcmp(term, "dumb")))
		return tool_usage("top: the live view needs a terminal (stdin and stdout, TERM "
		                  "not dumb); use --once or --json");
	/* The first refresh, before any output: a NAME the library cannot
	 * parse is a usage error (one that does not exist yet is shown once
	 * it does). */
	struct snap a = { 0 }, b = { 0 }, *cur = &a, *prev = &b;
	top_sample(prev, &g);
	if (g.bad_arg) {
		free(b.v);
		top_state_free(&g);
		return tool_open_err(g.args[g.bad_arg - 1], g.bad_err);
	}
	if (!once && !json) {
		int rc = live(&g, interval, prev);
		top_state_free(&g);
		return rc;
	}
	struct sigaction sa = { .sa_handler = on_quit };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int rc = 0;
	while (!quit_sig) {
		struct timespec ts = { .tv_sec = interval / 1000000000, .tv_nsec = interval % 1000000000 };
		while (nanosleep(&ts, &ts) && errno == EINTR && !quit_sig)
			;
		if (quit_sig)
			break;
		top_sample(cur, &g);
		top_rates(cur, prev);
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
	top_state_free(&g);
	return rc;
}
