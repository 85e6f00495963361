/*
 * main.c - the shmkit-bridge command: one bridge process per host, a thin
 * program over libshmkit-bridge (shmkit-bridge.h).
 *
 *   shmkit-bridge [--id N] [--bind EP]... [--connect EP]...
 *                 [--export BUS]... [--import REMOTE[=LOCAL]]...
 *                 [--listen EP]... [--peer EP]...
 *                 [--export-chan CHAN]... [--import-chan REMOTE[=LOCAL]]...
 *                 [--export-journal PATH]... [--import-journal REMOTE[=PATH]]...
 *                 [--export-rpc SERVICE]... [--import-rpc REMOTE[=LOCAL]]...
 *                 [--journal-sync] [--hwm N] [--drop] [--window N]
 *                 [--curve-keys FILE] [--server-key KEY]... [--config FILE]
 *                 [--stats-seg NAME] [--allow-key KEY]... [--mode OCTAL] [--excl]
 *   shmkit-bridge --keygen
 *
 * --config FILE (an INI file read by libinih, where it was built with
 * it): the same settings, sections [bridge] (id, bind, connect, listen,
 * peer, window, hwm, drop, curve-keys, server-key, allow-key,
 * journal-sync, stats-seg, mode, excl),
 * [export] and [import] (bus, chan, journal, rpc); a key may repeat;
 * options and the file add up, in their order.
 *
 * CURVE: --curve-keys FILE gives this bridge its keypair (lines "public
 * KEY" and "secret KEY", Z85; --keygen prints a new pair in that form):
 * its --bind and --listen sockets are then CURVE servers.  --server-key
 * KEY applies to the --connect and --peer options after it: the public
 * key of the bridge they reach.  --allow-key KEY (repeatable): only the
 * clients with these public keys get in (a ZAP handler; without any, every
 * client that knows this bridge's public key does).
 * Buses travel PUB (--bind) to SUB (--connect); channels over the
 * reliable link, ROUTER (--listen) and DEALER (--peer).  A bridge that
 * carries channels should be given a fixed --id: an exported channel's
 * un-acked messages are pinned to the importing bridge's id.
 *
 * --mode OCTAL: the permission bits of everything the bridge creates
 * (imported services, journal copies, the state beside services, the
 * stats segment; default 0600).  --excl: an import refuses a local name
 * that exists and that no bridge import made (shmkit-bridge.h, "Existing
 * names").
 *
 * Prints on stdout "bound ENDPOINT" for every bind and "listening
 * ENDPOINT" for every listen (the port a '*' got),
 * then "ready id=N"; "stats id=N sent=..." on SIGUSR1 and at exit
 * (SIGINT, SIGTERM, SIGHUP).  Signals come through a signalfd polled by the
 * bridge's own loop.  Exit 0 when stopped by a signal, 1 on failure, 2 on
 * a usage error; errors go to stderr as "shmkit-bridge: WHAT: reason".
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <zmq.h>
#ifdef SK_HAVE_INIH
#include <ini.h>
#endif

#include "shmkit.h"
#include "shmkit-bridge.h"

#define MAX_ARGS 64

struct args {
	struct shmkit_bridge_opts o;
	const char *bind[MAX_ARGS], *connect[MAX_ARGS], *export[MAX_ARGS], *import[MAX_ARGS];
	const char *listen[MAX_ARGS], *peer[MAX_ARGS], *xchan[MAX_ARGS], *ichan[MAX_ARGS];
	const char *xjnl[MAX_ARGS], *ijnl[MAX_ARGS], *xrpc[MAX_ARGS], *irpc[MAX_ARGS];
	const char *connect_key[MAX_ARGS], *peer_key[MAX_ARGS], *server_key, *curve_keys, *stats_seg;
	const char *allow[MAX_ARGS];
	int nallow;
	int nbind, nconnect, nexport, nimport, nlisten, npeer, nxchan, nichan, nxjnl, nijnl;
	int nxrpc, nirpc;
	char *owned[MAX_ARGS * 8]; /* values of the configuration file, freed at exit */
	int nowned;
};

static int journal_durability = SHMKIT_DUR_NONE; /* --journal-sync */

struct args;
static int option(struct args *a, int c, const char *v);

static void usage(FILE *f)
{
	fprintf(f, "usage: shmkit-bridge [--id N] [--bind EP]... [--connect EP]...\n"
	           "                     [--export BUS]... [--import REMOTE[=LOCAL]]...\n"
	           "                     [--listen EP]... [--peer EP]...\n"
	           "                     [--export-chan CHAN]... [--import-chan REMOTE[=LOCAL]]...\n"
	           "                     [--export-journal PATH]... [--import-journal REMOTE[=PATH]]...\n"
	           "                     [--export-rpc SERVICE]... [--import-rpc REMOTE[=LOCAL]]...\n"
	           "                     [--journal-sync] [--hwm N] [--drop] [--window N]\n"
	           "                     [--curve-keys FILE] [--server-key KEY]... [--config FILE]\n"
	           "                     [--stats-seg NAME] [--allow-key KEY]... [--mode OCTAL] [--excl]\n"
	           "       shmkit-bridge --keygen\n"
	           "Carries shmkit buses (PUB --bind, SUB --connect), channels, journals, rpc (ROUTER\n"
	           "--listen, DEALER --peer) between hosts over ZeroMQ (EP: tcp://HOST:PORT, tcp://HOST:*,\n"
	           "ipc://PATH).  Prints \"bound EP\", \"listening EP\", \"ready id=N\"; statistics\n"
	           "on SIGUSR1 and at exit.  --mode: permission bits of everything it creates\n"
	           "(default 0600); --excl: an import refuses an existing local name no bridge\n"
	           "import made.\n");
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "shmkit-bridge: %s: %s\n", what, shmkit_strerror(err));
	return 1;
}

static int keygen(void)
{
	char pub[41], sec[41];

	if (zmq_curve_keypair(pub, sec)) {
		fprintf(stderr, "shmkit-bridge: keygen: %s\n", zmq_strerror(zmq_errno()));
		return 1;
	}
	printf("public %s\nsecret %s\n", pub, sec);
	return 0;
}

/* The keypair file of --curve-keys into br. */
static int curve_keys(shmkit_bridge *br, const char *path)
{
	char line[256], pub[64] = "", sec[64] = "";
	FILE *f = fopen(path, "re");
	int rc;

	if (!f)
		return fail(path, -errno);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "public ", 7))
			sscanf(line + 7, "%63s", pub);
		else if (!strncmp(line, "secret ", 7))
			sscanf(line + 7, "%63s", sec);
	}
	fclose(f);
	rc = shmkit_bridge_curve(br, pub, sec);
	return rc ? fail(path, rc) : 0;
}

static int add(const char **list, int *n, const char *v)
{
	if (*n == MAX_ARGS)
		return -1;
	list[(*n)++] = v;
	return 0;
}

static int number(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 0);
	return errno || end == s || *end || s[0] == '-' || *v > max ? -1 : 0;
}

/* --mode: octal permission bits, 1 to 0777 (what every backend and a
 * journal take).  0, or -1 (said). */
static int octal_mode(const char *s, unsigned *mode)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (*s < '0' || *s > '7' || *end || errno || !v || v > 0777) {
		fprintf(stderr, "shmkit-bridge: --mode '%s' is not an octal permission mode (1-777)\n", s);
		return -1;
	}
	*mode = (unsigned)v;
	return 0;
}

#ifdef SK_HAVE_INIH
/* The configuration file, by libinih: sections [bridge], [export],
 * [import]; keys as the long options (without "--", "export-"/"import-":
 * [export] chan = jobs is --export-chan jobs); a key may repeat; lines
 * are taken in order (server-key before the peer lines it is for). */
static const struct { const char *section, *key; int code; } config_keys[] = {
	{ "bridge", "id", 'i' },          { "bridge", "bind", 'b' },
	{ "bridge", "connect", 'c' },     { "bridge", "listen", 'l' },
	{ "bridge", "peer", 'p' },        { "bridge", "window", 'W' },
	{ "bridge", "hwm", 'w' },         { "bridge", "drop", 'd' },
	{ "bridge", "curve-keys", 'K' },  { "bridge", "server-key", 'k' },
	{ "bridge", "journal-sync", 'S' },  { "bridge", "stats-seg", 'T' },
	{ "bridge", "allow-key", 'A' },   { "bridge", "mode", 'o' },
	{ "bridge", "excl", 'x' },
	{ "export", "bus", 'e' },         { "export", "chan", 'E' },
	{ "export", "journal", 'J' },     { "export", "rpc", 'X' },
	{ "import", "bus", 'm' },         { "import", "chan", 'M' },
	{ "import", "journal", 'L' },     { "import", "rpc", 'R' },
};

static int config_line(void *user, const char *section, const char *key, const char *value)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
		if (strcmp(config_keys[i].section, section) || strcmp(config_keys[i].key, key))
			continue;
		int c = config_keys[i].code;
		if ((c == 'd' || c == 'S' || c == 'x') && strcmp(value, "yes") && strcmp(value, "true") &&
		    strcmp(value, "1"))
			return 1; /* a switch left off */
		struct args *a = user;
		char *v = a->nowned < MAX_ARGS * 8 ? strdup(value) : NULL;
		if (!v)
			return 0;
		a->owned[a->nowned++] = v; /* the lists point into it until exit */
		return !option(a, c, v);
	}
	fprintf(stderr, "shmkit-bridge: config: unknown key [%s] %s\n", section, key);
	return 0;
}

static int config(struct args *a, const char *path)
{
	int rc = ini_parse(path, config_line, a);

	if (rc < 0)
		fprintf(stderr, "shmkit-bridge: %s: cannot read it\n", path);
	else if (rc > 0)
		fprintf(stderr, "shmkit-bridge: %s: line %d is not right\n", path, rc);
	return rc ? 1 : 0;
}
#else
static int config(struct args *a, const char *path)
{
	(void)a;
	fprintf(stderr, "shmkit-bridge: %s: built without libinih: no --config\n", path);
	return 1;
}
#endif

/* One option (its getopt code) into a: 0, or 1 if its value is bad. */
static int option(struct args *a, int c, const char *v)
{
	unsigned long n;
	int bad = 0;

	switch (c) {
	case 'i': bad |= number(v, UINT32_MAX, &n) || !n; a->o.id = (uint32_t)n; break;
	case 'w': bad |= number(v, INT_MAX, &n) || !n; a->o.hwm = (int)n; break;
	case 'd': a->o.drop = 1; break;
	case 'b': bad |= add(a->bind, &a->nbind, v); break;
	case 'c':
		a->connect_key[a->nconnect < MAX_ARGS ? a->nconnect : 0] = a->server_key;
		bad |= add(a->connect, &a->nconnect, v);
		break;
	case 'e': bad |= add(a->export, &a->nexport, v); break;
	case 'm': bad |= add(a->import, &a->nimport, v); break;
	case 'l': bad |= add(a->listen, &a->nlisten, v); break;
	case 'p':
		a->peer_key[a->npeer < MAX_ARGS ? a->npeer : 0] = a->server_key;
		bad |= add(a->peer, &a->npeer, v);
		break;
	case 'K': a->curve_keys = v; break;
	case 'k': a->server_key = v; break;
	case 'E': bad |= add(a->xchan, &a->nxchan, v); break;
	case 'M': bad |= add(a->ichan, &a->nichan, v); break;
	case 'J': bad |= add(a->xjnl, &a->nxjnl, v); break;
	case 'L': bad |= add(a->ijnl, &a->nijnl, v); break;
	case 'S': journal_durability = SHMKIT_DUR_SYNC; break;
	case 'X': bad |= add(a->xrpc, &a->nxrpc, v); break;
	case 'R': bad |= add(a->irpc, &a->nirpc, v); break;
	case 'W':
		bad |= number(v, SHMKIT_BRIDGE_WINDOW_MAX, &n) || !n;
		a->o.window = (int)n;
		break;
	case 'C': bad |= config(a, v); break;
	case 'T': a->stats_seg = v; break;
	case 'A': bad |= add(a->allow, &a->nallow, v); break;
	case 'o': bad |= octal_mode(v, &a->o.mode) != 0; break;
	case 'x': a->o.excl = 1; break;
	default: bad = 1;
	}
	return bad;
}

/* 0, or 2 for a usage error (already said). */
static int parse(int argc, char **argv, struct args *a)
{
	static const struct option lo[] = {
		{ "id", required_argument, 0, 'i' },      { "bind", required_argument, 0, 'b' },
		{ "connect", required_argument, 0, 'c' }, { "export", required_argument, 0, 'e' },
		{ "import", required_argument, 0, 'm' },  { "hwm", required_argument, 0, 'w' },
		{ "drop", no_argument, 0, 'd' },          { "help", no_argument, 0, 'h' },
		{ "listen", required_argument, 0, 'l' },  { "peer", required_argument, 0, 'p' },
		{ "export-chan", required_argument, 0, 'E' },
		{ "import-chan", required_argument, 0, 'M' },
		{ "window", required_argument, 0, 'W' },
		{ "export-journal", required_argument, 0, 'J' },
		{ "import-journal", required_argument, 0, 'L' },
		{ "journal-sync", no_argument, 0, 'S' },
		{ "export-rpc", required_argument, 0, 'X' },
		{ "import-rpc", required_argument, 0, 'R' },
		{ "curve-keys", required_argument, 0, 'K' },
		{ "server-key", required_argument, 0, 'k' },
		{ "keygen", no_argument, 0, 'G' },
		{ "config", required_argument, 0, 'C' },
		{ "stats-seg", required_argument, 0, 'T' },
		{ "allow-key", required_argument, 0, 'A' },
		{ "mode", required_argument, 0, 'o' },
		{ "excl", no_argument, 0, 'x' },
		{ 0, 0, 0, 0 },
	};
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "i:b:c:e:m:w:dhl:p:E:M:W:J:L:SX:R:K:k:GC:T:A:o:x", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == 'G')
			exit(keygen());
		bad |= option(a, c, optarg);
	}
	if (bad || optind != argc || (!a->nexport && !a->nimport && !a->nxchan && !a->nichan && !a->nxjnl && !a->nijnl &&
	             !a->nxrpc && !a->nirpc)) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int import_journal(shmkit_bridge *br, const char *remote, const char *path)
{
	return shmkit_bridge_import_journal(br, remote, path, journal_durability);
}

/* REMOTE[=LOCAL] through fn (import_bus, import_chan, import_journal). */
static int import_one(shmkit_bridge *br, const char *arg,
                      int (*fn)(shmkit_bridge *, const char *, const char *))
{
	char remote[512];
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	int rc;

	if (len >= sizeof(remote))
		return fail(arg, -ENAMETOOLONG);
	memcpy(remote, arg, len);
	remote[len] = '\0';
	if ((rc = fn(br, remote, eq ? eq + 1 : NULL)) < 0)
		return fail(arg, rc);
	return 0;
}

/* Endpoints through fn (bind or listen), printing what was bound. */
static int bind_all(shmkit_bridge *br, const char *const *eps, int n, const char *what,
                    int (*fn)(shmkit_bridge *, const char *, char *, size_t))
{
	char ep[1024];
	int rc;

	for (int i = 0; i < n; i++) {
		if ((rc = fn(br, eps[i], ep, sizeof(ep))) < 0)
			return fail(eps[i], rc);
		printf("%s %s\n", what, ep);
	}
	return 0;
}

struct glob {
	shmkit_bridge *br;
	const char *pattern;
	int kind, found, rc;
	int (*fn)(shmkit_bridge *, const char *);
};

static int glob_one(const struct shmkit_seg_info *st, void *arg)
{
	struct glob *g = arg;
	const char *bare = strncmp(st->name, "posix:/", 7) ? st->name : st->name + 7;

	if (st->kind != g->kind || (fnmatch(g->pattern, st->name, 0) && fnmatch(g->pattern, bare, 0)))
		return 0;
	g->found++;
	if ((g->rc = g->fn(g->br, st->name)) < 0)
		return fail(st->name, g->rc);
	return 0;
}

/* Export every name of the list through fn; a name with * ? [ is a glob
 * over the services of that kind there are now (posix names match bare
 * or whole).  0, or 1 on a failure (said). */
static int export_all(shmkit_bridge *br, const char *const *names, int n, int kind,
                      int (*fn)(shmkit_bridge *, const char *))
{
	for (int i = 0; i < n; i++) {
		struct glob g = { br, names[i], kind, 0, 0, fn };
		int rc;
		if (!strpbrk(names[i], "*?[")) {
			if ((rc = fn(br, names[i])) < 0)
				return fail(names[i], rc);
			continue;
		}
		if ((rc = shmkit_seg_list(glob_one, &g)) != 0)
			return rc < 0 ? fail(names[i], rc) : 1;
		if (!g.found)
			return fail(names[i], -ENOENT);
	}
	return 0;
}

static int setup(shmkit_bridge *br, const struct args *a)
{
	int rc;

	if (a->curve_keys && curve_keys(br, a->curve_keys))
		return 1;
	for (int i = 0; i < a->nallow; i++)
		if ((rc = shmkit_bridge_allow_key(br, a->allow[i])) < 0)
			return fail(a->allow[i], rc);
	if (a->stats_seg && (rc = shmkit_bridge_stats_segment(br, a->stats_seg)) < 0)
		return fail(a->stats_seg, rc);
	for (int i = 0; i < a->nimport; i++)
		if (import_one(br, a->import[i], shmkit_bridge_import_bus))
			return 1;
	for (int i = 0; i < a->nichan; i++)
		if (import_one(br, a->ichan[i], shmkit_bridge_import_chan))
			return 1;
	if (export_all(br, a->export, a->nexport, SHMKIT_KIND_BUS, shmkit_bridge_export_bus) ||
	    export_all(br, a->xchan, a->nxchan, SHMKIT_KIND_CHAN, shmkit_bridge_export_chan) ||
	    export_all(br, a->xrpc, a->nxrpc, SHMKIT_KIND_RPC, shmkit_bridge_export_rpc))
		return 1;
	for (int i = 0; i < a->nijnl; i++)
		if (import_one(br, a->ijnl[i], import_journal))
			return 1;
	for (int i = 0; i < a->nxjnl; i++)
		if ((rc = shmkit_bridge_export_journal(br, a->xjnl[i])) < 0)
			return fail(a->xjnl[i], rc);
	for (int i = 0; i < a->nirpc; i++)
		if (import_one(br, a->irpc[i], shmkit_bridge_import_rpc))
			return 1;
	if (bind_all(br, a->bind, a->nbind, "bound", shmkit_bridge_bind) ||
	    bind_all(br, a->listen, a->nlisten, "listening", shmkit_bridge_listen))
		return 1;
	for (int i = 0; i < a->nconnect; i++)
		if ((rc = shmkit_bridge_server_key(br, a->connect_key[i])) < 0 ||
		    (rc = shmkit_bridge_connect(br, a->connect[i])) < 0)
			return fail(a->connect[i], rc);
	for (int i = 0; i < a->npeer; i++)
		if ((rc = shmkit_bridge_server_key(br, a->peer_key[i])) < 0 ||
		    (rc = shmkit_bridge_peer(br, a->peer[i])) < 0)
			return fail(a->peer[i], rc);
	return 0;
}

static void print_stats(shmkit_bridge *br)
{
	struct shmkit_bridge_stats st;
	char line[1024];

	if (shmkit_bridge_stats(br, &st) == 0 && shmkit_bridge_stats_line(&st, line, sizeof(line)) > 0)
		printf("stats %s\n", line);
	fflush(stdout);
}

/* Until a stopping signal: 0, or 1 on a failure of the loop. */
static int loop(shmkit_bridge *br, int sfd)
{
	for (;;) {
		struct signalfd_siginfo si;
		int rc = shmkit_bridge_run(br, sfd, -1);
		if (rc < 0)
			return fail("loop", rc);
		if (rc == 0 || read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		print_stats(br);
		if (si.ssi_signo != SIGUSR1)
			return 0;
	}
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	shmkit_bridge *br;
	sigset_t set;
	int rc, sfd;

	if ((rc = parse(argc, argv, &a)) != 0)
		return rc;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) || (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		return fail("signalfd", -errno);
	if ((rc = shmkit_bridge_create(&br, &a.o)) < 0)
		return fail("create", rc);
	rc = setup(br, &a);
	if (!rc) {
		struct shmkit_bridge_stats st;
		shmkit_bridge_stats(br, &st);
		printf("ready id=%u\n", (unsigned)st.id);
		fflush(stdout);
		rc = loop(br, sfd);
	}
	shmkit_bridge_close(br);
	close(sfd);
	for (int i = 0; i < a.nowned; i++)
		free(a.owned[i]);
	return rc;
}
