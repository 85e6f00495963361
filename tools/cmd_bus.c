/*
 * cmd_bus.c - `shmkit bus`, `shmkit pub`, `shmkit sub` and the bus part of
 * `shmkit info`, over the public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static int parse_u32(const char *cmd, const char *opt, const char *s, uint32_t *out)
{
	size_t v;
	if (shmkit_parse_size(s, &v) || v == 0 || v > UINT32_MAX)
		return tool_usage("%s: %s '%s' is not a count from 1 to %u", cmd, opt, s, UINT32_MAX);
	*out = (uint32_t)v;
	return 0;
}

static const char *mode_label(int delivery)
{
	return delivery == SHMKIT_BUS_BACKPRESSURE ? "backpressure" : "overwrite";
}

/* ---- bus ------------------------------------------------------------------- */

static const char bus_help[] =
	"usage: shmkit bus NAME [--capacity N] [--max-msg BYTES]\n"
	"                       [--delivery overwrite|backpressure] [--mode M] [--excl]\n"
	"                       [--json]\n"
	"\n"
	"Create a publish/subscribe bus: every message goes to every subscriber.\n"
	"Without --excl an existing bus of that name is opened and reported as\n"
	"\"exists\"; an option given that it does not match (capacity, max\n"
	"message, delivery, mode) is an error (exit 1) that changes nothing.\n"
	"\n"
	"  --capacity N     messages retained (rounded up to a power of 2; 256)\n"
	"  --max-msg BYTES  largest message, K/M suffixes (default 1024)\n"
	"  --delivery D     overwrite (default): publishers never wait, a slow\n"
	"                   subscriber loses the oldest messages and is told how\n"
	"                   many; backpressure: publishers wait for the slowest\n"
	"                   live subscriber\n"
	"  --mode M         permission bits in octal (default 0600)\n"
	"  --excl           fail if the name exists\n"
	"  --json           print one JSON object\n"
	"Remove it with `shmkit rm NAME`.\n";

struct bus_args {
	struct shmkit_bus_opts o;
	bool json, given_capacity, given_max, given_delivery, given_mode;
};

static int bus_parse(int argc, char **argv, struct bus_args *a)
{
	static const struct option opts[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "max-msg", required_argument, NULL, 'M' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "mode", required_argument, NULL, 'm' },
		{ "excl", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "perm", required_argument, NULL, 'p' }, /* before 0.2: says what it became */
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, rc;

	while ((c = getopt_long(argc, argv, ":c:M:d:m:xjh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if ((rc = parse_u32("bus", "--capacity", optarg, &a->o.capacity)))
				return rc;
			a->given_capacity = true;
			break;
		case 'M':
			if ((rc = parse_u32("bus", "--max-msg", optarg, &a->o.max_msg)))
				return rc;
			a->given_max = true;
			break;
		case 'd':
			if (!strcmp(optarg, "overwrite"))
				a->o.delivery = SHMKIT_BUS_OVERWRITE;
			else if (!strcmp(optarg, "backpressure") || !strcmp(optarg, "back-pressure"))
				a->o.delivery = SHMKIT_BUS_BACKPRESSURE;
			else
				return tool_usage("bus: --delivery is overwrite or backpressure, not '%s'",
				                  optarg);
			a->given_delivery = true;
			break;
		case 'm':
			if (!strcmp(optarg, "overwrite") || !strncmp(optarg, "back", 4))
				return tool_usage("bus: --mode is the permission bits (octal); the delivery "
				                  "mode is --delivery %s", optarg);
			if ((rc = tool_parse_mode("bus", "--mode", optarg, &a->o.mode)))
				return rc;
			a->given_mode = true;
			break;
		case 'x': a->o.flags |= SHMKIT_EXCL; break;
		case 'j': a->json = true; break;
		case 'p':
			return tool_usage("bus: --perm is --mode now (permission bits, octal); the "
			                  "delivery mode is --delivery");
		case 'h':
			fputs(bus_help, stdout);
			return -1;
		default:
			return tool_bad_option("bus", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("bus: give exactly one NAME (see shmkit bus --help)");
	return tool_check_name("bus", argv[optind]);
}

static int bus_check(const char *name, const struct bus_args *a,
                     const struct shmkit_bus_stats *st, unsigned mode)
{
	static const char *const deliveries[] = { "overwrite", "backpressure" };
	const struct tool_geometry g[] = {
		{ "capacity", a->given_capacity, st->capacity, tool_pow2(a->o.capacity), false, NULL },
		{ "max message", a->given_max, st->max_msg, a->o.max_msg, false, NULL },
		{ "delivery", a->given_delivery, st->delivery == SHMKIT_BUS_BACKPRESSURE,
		  a->o.delivery == SHMKIT_BUS_BACKPRESSURE, false, deliveries },
		{ "mode", a->given_mode, mode, a->o.mode, true, NULL },
	};
	return tool_check_geometry(name, g, sizeof(g) / sizeof(g[0]));
}

static void bus_report(const char *name, bool created, const struct shmkit_bus_stats *st,
                       unsigned mode, bool json)
{
	tool_made(name, created, "bus", mode, json);
	if (json)
		printf("\"capacity\":%u,\"max_msg\":%u,\"delivery\":\"%s\",\"max_publishers\":%u,"
		       "\"max_subscribers\":%u}\n", st->capacity, st->max_msg,
		       mode_label(st->delivery), st->max_publishers, st->max_subscribers);
	else
		printf("capacity %u, max message %u bytes, %s\n", st->capacity, st->max_msg,
		       mode_label(st->delivery));
}

int cmd_bus(int argc, char **argv)
{
	/* Made by a process that exits at once: persistent, so gc leaves it. */
	struct bus_args a = { .o = { .flags = SHMKIT_PERSIST } };
	struct shmkit_bus_stats st;
	struct shmkit_seg_info ss;
	shmkit_bus *bus;
	int rc = bus_parse(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	const char *name = argv[optind];
	bool excl = a.o.flags & SHMKIT_EXCL;
	a.o.flags |= SHMKIT_EXCL; /* first exclusively, to say whether we made it */
	int err = shmkit_bus_create(&bus, name, &a.o);
	bool created = !err;
	if (err == -EEXIST && !excl)
		err = shmkit_bus_open(&bus, name, NULL);
	if (err)
		return tool_open_err(name, err);
	/* The mode: as asked when made here (no second open that could
	 * fail and leave the new object behind), else the kernel's. */
	ss.mode = a.o.mode ? a.o.mode : 0600;
	if ((err = shmkit_bus_stats(bus, &st)) || (!created && (err = shmkit_seg_info_name(name, &ss)))) {
		shmkit_bus_close(bus);
		if (created)
			shmkit_seg_remove(name); /* a failed command leaves nothing */
		return tool_err(name, err);
	}
	rc = created ? 0 : bus_check(name, &a, &st, ss.mode);
	if (!rc)
		bus_report(name, created, &st, ss.mode, a.json);
	shmkit_bus_close(bus);
	return rc;
}

/* ---- pub ------------------------------------------------------------------- */

static const char pub_help[] =
	"usage: shmkit pub NAME [--timeout MS] [--] [MSG...]\n"
	"\n"
	"Publish each MSG on the bus NAME, or each line of stdin (without its\n"
	"newline) when no MSG is given.  In backpressure mode a publisher waits\n"
	"for the slowest subscriber up to --timeout MS per message (default -1:\n"
	"forever; 0: fail at once when full).  A failure part way says how far\n"
	"it got (\"published 4 of 10 messages\").\n"
	"\n"
	"  --timeout MS   how long to wait for room, per message\n";

struct publisher {
	shmkit_bus *bus;
	const char *name;
	int64_t timeout;
	unsigned long long done, total; /* total 0: lines of stdin */
};

static int pub_one(void *ctx, const char *msg, size_t len)
{
	struct publisher *pb = ctx;
	int err = shmkit_bus_publish(pb->bus, msg, len, pb->timeout);

	if (err)
		return tool_err_progress(pb->name, err, "published", pb->done, pb->total);
	pb->done++;
	return 0;
}

int cmd_pub(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int64_t timeout = -1;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (tool_parse_ms(optarg, &timeout))
				return tool_usage("pub: --timeout '%s' is not milliseconds", optarg);
			break;
		case 'h':
			fputs(pub_help, stdout);
			return 0;
		default:
			return tool_bad_option("pub", c, argv);
		}
	}
	if (optind >= argc)
		return tool_usage("pub: give a bus NAME (see shmkit pub --help)");
	const char *name = argv[optind++];
	if ((rc = tool_check_name("pub", name)))
		return rc;
	shmkit_bus *bus;
	int err = shmkit_bus_open(&bus, name, NULL);
	if (err)
		return tool_open_err(name, err);
	struct publisher pb = { bus, name, timeout, 0, (unsigned long long)(argc - optind) };
	if (optind == argc)
		rc = tool_each_line(name, pub_one, &pb);
	for (int i = optind; i < argc && !rc; i++)
		rc = pub_one(&pb, argv[i], strlen(argv[i]));
	shmkit_bus_close(bus);
	return rc;
}

/* ---- sub ------------------------------------------------------------------- */

static const char sub_help[] =
	"usage: shmkit sub NAME [--from oldest|newest] [-n N] [--follow]\n"
	"                       [--timeout MS] [--json]\n"
	"\n"
	"Subscribe to the bus NAME and print each message followed by a newline.\n"
	"  --from D       oldest: start at the oldest message still retained;\n"
	"                 newest: only messages published from now on.  Default:\n"
	"                 newest with --follow or -n, else oldest\n"
	"  -n, --count N  exit after N messages\n"
	"  --follow       keep waiting for messages (until -n is reached)\n"
	"  --timeout MS   longest wait for each message (default: forever with\n"
	"                 --follow or -n, else 0: print what is there and exit);\n"
	"                 running out ends --follow (exit 0), and is an error with\n"
	"                 -n (exit 1, \"received 3 of 5 messages\")\n"
	"  --json         one JSON object per message and line: {\"data\":TEXT} or\n"
	"                 {\"hex\":HEX} (not UTF-8, or a NUL byte), with \"lost\":N\n"
	"                 when messages were lost just before it\n"
	"Lost messages (overwritten before they were read) are reported on\n"
	"stderr (and with --json in the next message's object too).\n"
	"Each message is written to stdout (write(2), unbuffered) before the next\n"
	"is read.  If sub is stopped (SIGINT, SIGTERM) or its output fails (stdout\n"
	"closed, a pipe whose reader has gone: exit 1 with \"shmkit: NAME: writing\n"
	"output: ...\"), at most the one message in flight is lost: read but not\n"
	"(fully) written.\n";

struct sub_args {
	int from;            /* -1: default */
	long long count;     /* -1: unlimited */
	bool follow, json;
	int64_t timeout;     /* INT64_MIN: default */
};

static int sub_parse(int argc, char **argv, struct sub_args *a)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "follow", no_argument, NULL, 'F' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, ":f:Fn:t:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "oldest"))
				a->from = SHMKIT_FROM_OLDEST;
			else if (!strcmp(optarg, "newest"))
				a->from = SHMKIT_FROM_NEWEST;
			else
				return tool_usage("sub: --from is oldest or newest, not '%s'", optarg);
			break;
		case 'F':
			a->follow = true;
			break;
		case 'n':
			errno = 0;
			a->count = strtoll(optarg, &end, 10);
			if (errno || *end || !*optarg || a->count < 1)
				return tool_usage("sub: -n '%s' is not a count of at least 1", optarg);
			break;
		case 't':
			if (tool_parse_ms(optarg, &a->timeout))
				return tool_usage("sub: --timeout '%s' is not milliseconds", optarg);
			break;
		case 'j':
			a->json = true;
			break;
		case 'h':
			fputs(sub_help, stdout);
			return -1;
		default:
			return tool_bad_option("sub", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("sub: give exactly one bus NAME (see shmkit sub --help)");
	bool waits = a->follow || a->count > 0;
	if (a->from < 0)
		a->from = waits ? SHMKIT_FROM_NEWEST : SHMKIT_FROM_OLDEST;
	if (a->timeout == INT64_MIN)
		a->timeout = waits ? -1 : 0;
	return tool_check_name("sub", argv[optind]);
}

/* Print messages until -n, or a wait ends.  Exit status. */
static int sub_loop(shmkit_sub *sub, const char *name, const struct sub_args *a, size_t cap)
{
	char *buf = malloc(cap + 1); /* + its newline */
	long long got = 0;
	int rc = 0;

	if (!buf)
		return tool_err(name, -ENOMEM);
	while (a->count < 0 || got < a->count) {
		uint64_t lost = 0;
		if ((rc = tool_out_ready(name)))
			break;
		ssize_t n = shmkit_sub_recv(sub, buf, cap, &lost, a->timeout);
		if ((n == -EAGAIN || n == -ETIMEDOUT) && a->count < 0)
			break; /* drained, or --follow idle for --timeout */
		if (n < 0) {
			rc = tool_err_progress(name, (int)n, "received", (unsigned long long)got,
			                       a->count > 0 ? (unsigned long long)a->count : 0);
			break;
		}
		if (lost)
			fprintf(stderr, "shmkit: %s: %llu messages lost\n", name, (unsigned long long)lost);
		if (a->json) {
			char extra[40] = "";
			if (lost)
				snprintf(extra, sizeof(extra), "\"lost\":%llu", (unsigned long long)lost);
			rc = tool_out_json(name, buf, (size_t)n, extra);
		} else {
			rc = tool_out_msg(name, buf, (size_t)n);
		}
		if (rc)
			break;
		got++;
	}
	free(buf);
	return rc;
}

int cmd_sub(int argc, char **argv)
{
	struct sub_args a = { .from = -1, .count = -1, .timeout = INT64_MIN };
	int rc = sub_parse(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	const char *name = argv[optind];
	shmkit_bus *bus;
	shmkit_sub *sub;
	struct shmkit_bus_opts o = { .from = a.from };
	struct shmkit_bus_stats st;
	if ((rc = tool_out_start(name)))
		return rc;
	int err = shmkit_bus_open(&bus, name, NULL);
	if (err)
		return tool_open_err(name, err);
	if ((err = shmkit_bus_stats(bus, &st)) || (err = shmkit_bus_subscribe(&sub, bus, &o))) {
		shmkit_bus_close(bus);
		return tool_err(name, err);
	}
	rc = sub_loop(sub, name, &a, st.max_msg);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(bus);
	return rc;
}

/* ---- info ------------------------------------------------------------------ */

static const char *alive_word(int alive)
{
	return alive > 0 ? "alive" : alive == 0 ? "dead" : "unknown";
}

static int peer_text(const struct shmkit_bus_peer *p, void *arg)
{
	(void)arg;
	if (p->subscriber)
		printf("  sub %-3u pid %-8d %-7s next %-10llu lag %-8llu received %-10llu lost %llu%s\n",
		       p->index, (int)p->pid, alive_word(p->alive), (unsigned long long)p->position,
		       (unsigned long long)p->lag, (unsigned long long)p->count,
		       (unsigned long long)p->lost, p->armed ? "  (sleeping on its fd)" : "");
	else
		printf("  pub %-3u pid %-8d %-7s published %-10llu aborted %llu\n", p->index,
		       (int)p->pid, alive_word(p->alive), (unsigned long long)p->count,
		       (unsigned long long)p->lost);
	return 0;
}

static int peer_json(const struct shmkit_bus_peer *p, void *arg)
{
	int *first = arg;
	printf("%s{\"role\":\"%s\",\"index\":%u,\"pid\":%d,\"alive\":%s", *first ? "" : ",",
	       p->subscriber ? "subscriber" : "publisher", p->index, (int)p->pid,
	       p->alive > 0 ? "true" : p->alive == 0 ? "false" : "null");
	if (p->subscriber)
		printf(",\"next\":%llu,\"lag\":%llu,\"received\":%llu,\"lost\":%llu,\"armed\":%s}",
		       (unsigned long long)p->position, (unsigned long long)p->lag,
		       (unsigned long long)p->count, (unsigned long long)p->lost,
		       p->armed ? "true" : "false");
	else
		printf(",\"published\":%llu,\"aborted\":%llu}", (unsigned long long)p->count,
		       (unsigned long long)p->lost);
	*first = 0;
	return 0;
}

int info_bus(const char *name, bool json)
{
	shmkit_bus *bus;
	struct shmkit_bus_stats st;
	int err = shmkit_bus_open(&bus, name, NULL);

	if (!err && (err = shmkit_bus_stats(bus, &st)))
		shmkit_bus_close(bus);
	if (err) {
		if (json)
			printf("null");
		return tool_err(name, err);
	}
	if (json) {
		int first = 1;
		printf("{\"capacity\":%u,\"max_msg\":%u,\"delivery\":\"%s\",\"published\":%llu,"
		       "\"oldest\":%llu,\"publishers\":%u,\"subscribers\":%u,\"armed\":%u,\"peers\":[",
		       st.capacity, st.max_msg, mode_label(st.delivery), (unsigned long long)st.head,
		       (unsigned long long)st.oldest, st.publishers, st.subscribers, st.armed);
		shmkit_bus_peers(bus, peer_json, &first);
		printf("]}");
	} else {
		printf("bus:        capacity %u messages, max message %u bytes, %s\n", st.capacity,
		       st.max_msg, mode_label(st.delivery));
		printf("published:  %llu (oldest retained: %llu)\n", (unsigned long long)st.head,
		       (unsigned long long)st.oldest);
		printf("peers:      %u publishers, %u subscribers (%u sleeping on their fd)\n",
		       st.publishers, st.subscribers, st.armed);
		shmkit_bus_peers(bus, peer_text, NULL);
	}
	shmkit_bus_close(bus);
	return 0;
}
