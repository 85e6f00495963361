/*
 * main.c - the shmkit-bridge command: one bridge process per host, a thin
 * program over libshmkit-bridge (shmkit-bridge.h).
 *
 *   shmkit-bridge [--id N] [--bind EP]... [--connect EP]...
 *                 [--export BUS]... [--import REMOTE[=LOCAL]]...
 *                 [--hwm N] [--drop]
 *
 * Prints on stdout "bound ENDPOINT" for every bind (the port a '*' got),
 * then "ready id=N"; "stats id=N sent=..." on SIGUSR1 and at exit
 * (SIGINT, SIGTERM, SIGHUP).  Signals come through a signalfd polled by the
 * bridge's own loop.  Exit 0 when stopped by a signal, 1 on failure, 2 on
 * a usage error; errors go to stderr as "shmkit-bridge: WHAT: reason".
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "shmkit.h"
#include "shmkit-bridge.h"

#define MAX_ARGS 64

struct args {
	struct shmkit_bridge_opts o;
	const char *bind[MAX_ARGS], *connect[MAX_ARGS], *export[MAX_ARGS], *import[MAX_ARGS];
	int nbind, nconnect, nexport, nimport;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: shmkit-bridge [--id N] [--bind EP]... [--connect EP]...\n"
	           "                     [--export BUS]... [--import REMOTE[=LOCAL]]...\n"
	           "                     [--hwm N] [--drop]\n"
	           "Carries shmkit buses between hosts over ZeroMQ (EP: tcp://HOST:PORT, tcp://HOST:*,\n"
	           "ipc://PATH).  Prints \"bound EP\", \"ready id=N\"; statistics on SIGUSR1 and at exit.\n");
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "shmkit-bridge: %s: %s\n", what, shmkit_strerror(err));
	return 1;
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

/* 0, or 2 for a usage error (already said). */
static int parse(int argc, char **argv, struct args *a)
{
	static const struct option lo[] = {
		{ "id", required_argument, 0, 'i' },      { "bind", required_argument, 0, 'b' },
		{ "connect", required_argument, 0, 'c' }, { "export", required_argument, 0, 'e' },
		{ "import", required_argument, 0, 'm' },  { "hwm", required_argument, 0, 'w' },
		{ "drop", no_argument, 0, 'd' },          { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	unsigned long v;
	int c, bad = 0;

	while ((c = getopt_long(argc, argv, "i:b:c:e:m:w:dh", lo, NULL)) != -1) {
		switch (c) {
		case 'i': bad |= number(optarg, UINT32_MAX, &v) || !v; a->o.id = (uint32_t)v; break;
		case 'w': bad |= number(optarg, INT_MAX, &v) || !v; a->o.hwm = (int)v; break;
		case 'd': a->o.drop = 1; break;
		case 'b': bad |= add(a->bind, &a->nbind, optarg); break;
		case 'c': bad |= add(a->connect, &a->nconnect, optarg); break;
		case 'e': bad |= add(a->export, &a->nexport, optarg); break;
		case 'm': bad |= add(a->import, &a->nimport, optarg); break;
		case 'h': usage(stdout); exit(0);
		default: bad = 1;
		}
	}
	if (bad || optind != argc || (!a->nexport && !a->nimport)) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int setup(shmkit_bridge *br, const struct args *a)
{
	char ep[1024];
	int rc;

	for (int i = 0; i < a->nimport; i++) {
		char remote[512];
		const char *eq = strchr(a->import[i], '=');
		size_t len = eq ? (size_t)(eq - a->import[i]) : strlen(a->import[i]);
		if (len >= sizeof(remote))
			return fail(a->import[i], -ENAMETOOLONG);
		memcpy(remote, a->import[i], len);
		remote[len] = '\0';
		if ((rc = shmkit_bridge_import_bus(br, remote, eq ? eq + 1 : NULL)) < 0)
			return fail(a->import[i], rc);
	}
	for (int i = 0; i < a->nexport; i++)
		if ((rc = shmkit_bridge_export_bus(br, a->export[i])) < 0)
			return fail(a->export[i], rc);
	for (int i = 0; i < a->nbind; i++) {
		if ((rc = shmkit_bridge_bind(br, a->bind[i], ep, sizeof(ep))) < 0)
			return fail(a->bind[i], rc);
		printf("bound %s\n", ep);
	}
	for (int i = 0; i < a->nconnect; i++)
		if ((rc = shmkit_bridge_connect(br, a->connect[i])) < 0)
			return fail(a->connect[i], rc);
	return 0;
}

static void print_stats(shmkit_bridge *br)
{
	struct shmkit_bridge_stats st;
	char line[512];

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
	return rc;
}
