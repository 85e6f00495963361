/*
 * cmd_chan.c - the channel subcommands of shmkit: chan (create), send,
 * recv, and the channel part of `shmkit info`.  Public API only.
 *
 * Messages on the command line are text: send takes each argument, or
 * each line of stdin (without its newline), as one message; recv prints
 * each message followed by a newline, written out (tool_out_msg) before
 * the next is taken.  One receive buffer of max_msg + 1 bytes is
 * allocated per run, none per message.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* ---- shared helpers -------------------------------------------------------- */

/* A decimal count in 1..max (--capacity, -n). */
static int parse_count(const char *cmd, const char *opt, const char *s, unsigned long max,
                       unsigned long *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v == 0 || v > max || *s < '0' || *s > '9')
		return tool_usage("%s: %s '%s' is not a count from 1 to %lu", cmd, opt, s, max);
	*out = v;
	return 0;
}

static int parse_timeout(const char *cmd, const char *s, int64_t *ns)
{
	if (tool_parse_ms(s, ns))
		return tool_usage("%s: --timeout '%s' is not milliseconds (or -1 for ever)", cmd, s);
	return 0;
}

static int one_name(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return tool_usage("%s: give a channel NAME (see shmkit %s --help)", cmd, cmd);
	return 0;
}

/* ---- chan ------------------------------------------------------------------ */

static const char chan_help[] =
	"usage: shmkit chan NAME [--capacity N] [--max-msg BYTES] [--spsc] [--mode M]\n"
	"                        [--excl] [--json]\n"
	"\n"
	"Create a channel: a queue where each message goes to exactly one receiver,\n"
	"many producers and consumers, per-producer order.  NAME: NAME or\n"
	"posix:/NAME, sysv:0xKEY, sysv:/PATH:PROJ, file:PATH.  Without --excl an\n"
	"existing channel of that name is opened and reported as \"exists\"; an\n"
	"option given that it does not match (capacity, max message, --spsc,\n"
	"mode) is an error (exit 1) that changes nothing.\n"
	"\n"
	"  --capacity N     slots, rounded up to a power of 2 (default 64)\n"
	"  --max-msg BYTES  largest message, K/M/G suffixes (default 1024)\n"
	"  --spsc           one producer and one consumer at a time (faster)\n"
	"  --mode M         permission bits in octal (default 0600)\n"
	"  --excl           fail if the name exists\n"
	"  --json           print one JSON object\n";

struct chan_args {
	struct shmkit_chan_opts o;
	bool json, given_capacity, given_max, given_mode;
};

static int chan_parse(int argc, char **argv, struct chan_args *a)
{
	static const struct option opts[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "max-msg", required_argument, NULL, 'M' },
		{ "spsc", no_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "excl", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct shmkit_chan_opts *o = &a->o;
	unsigned long v;
	size_t size;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":c:M:sm:xjh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if ((rc = parse_count("chan", "--capacity", optarg, 1ul << 24, &v)))
				return rc;
			o->capacity = (uint32_t)v;
			a->given_capacity = true;
			break;
		case 'M':
			if (shmkit_parse_size(optarg, &size) || size == 0 || size > (1u << 30))
				return tool_usage("chan: --max-msg '%s' is not a size from 1 to 1G", optarg);
			o->max_msg = (uint32_t)size;
			a->given_max = true;
			break;
		case 's': o->flags |= SHMKIT_CHAN_SPSC; break;
		case 'm':
			if ((rc = tool_parse_mode("chan", "--mode", optarg, &o->mode)))
				return rc;
			a->given_mode = true;
			break;
		case 'x': o->flags |= SHMKIT_EXCL; break;
		case 'j': a->json = true; break;
		case 'h': fputs(chan_help, stdout); return -1;
		default: return tool_bad_option("chan", c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("chan: give exactly one NAME (see shmkit chan --help)");
	return tool_check_name("chan", argv[optind]);
}

/* An existing channel against the options given: 0, or 1 (reported). */
static int chan_check(const char *name, const struct chan_args *a,
                      const struct shmkit_chan_stats *st, unsigned mode)
{
	static const char *const kinds[] = { "mpmc", "spsc" };
	const struct tool_geometry g[] = {
		{ "capacity", a->given_capacity, st->capacity, tool_pow2(a->o.capacity), false, NULL },
		{ "max message", a->given_max, st->max_msg, a->o.max_msg, false, NULL },
		{ "kind", (a->o.flags & SHMKIT_CHAN_SPSC) != 0, st->spsc != 0, 1, false, kinds },
		{ "mode", a->given_mode, mode, a->o.mode, true, NULL },
	};
	return tool_check_geometry(name, g, sizeof(g) / sizeof(g[0]));
}

static void chan_report(const char *name, bool created, const struct shmkit_chan_stats *st,
                        unsigned mode, bool json)
{
	tool_made(name, created, "chan", mode, json);
	if (json)
		printf("\"spsc\":%s,\"capacity\":%u,\"max_msg\":%u,\"seg_size\":%zu}\n",
		       st->spsc ? "true" : "false", st->capacity, st->max_msg, st->seg_size);
	else
		printf("%s, capacity %u, max message %u bytes, %zu bytes\n",
		       st->spsc ? "spsc" : "mpmc", st->capacity, st->max_msg, st->seg_size);
}

int cmd_chan(int argc, char **argv)
{
	/* Made by a process that exits at once: persistent, so gc leaves it. */
	struct chan_args a = { .o = { .flags = SHMKIT_PERSIST } };
	struct shmkit_chan_stats st;
	struct shmkit_seg_info ss;
	shmkit_chan *ch;
	int rc = chan_parse(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	const char *name = argv[optind];
	bool excl = a.o.flags & SHMKIT_EXCL;
	a.o.flags |= SHMKIT_EXCL; /* first exclusively, to say whether we made it */
	int err = shmkit_chan_create(&ch, name, &a.o);
	bool created = !err;
	if (err == -EEXIST && !excl) {
		struct shmkit_chan_opts oo = a.o;
		oo.flags &= ~(SHMKIT_EXCL | SHMKIT_CHAN_SPSC);
		err = shmkit_chan_open(&ch, name, &oo);
	}
	if (err)
		return tool_open_err(name, err);
	if ((err = shmkit_chan_stats(ch, &st)) || (err = shmkit_seg_info(shmkit_chan_seg(ch), &ss))) {
		shmkit_chan_close(ch);
		if (created)
			shmkit_seg_remove(name); /* a failed command leaves nothing */
		return tool_err(name, err);
	}
	rc = created ? 0 : chan_check(name, &a, &st, ss.mode);
	if (!rc)
		chan_report(name, created, &st, ss.mode, a.json);
	shmkit_chan_close(ch);
	return rc;
}

/* ---- send ------------------------------------------------------------------ */

static const char send_help[] =
	"usage: shmkit send NAME [MSG...] [--timeout MS]\n"
	"\n"
	"Send each MSG as one message, or each line of stdin (without its newline)\n"
	"when none is given.  Waits while the channel is full.  A failure part way\n"
	"says how far it got (\"sent 4 of 10 messages\").\n"
	"\n"
	"  --timeout MS   how long to wait for room, per message (default -1: for ever;\n"
	"                 0: fail at once when full)\n";

struct io_args {
	int64_t timeout;       /* -2: not given */
	unsigned long count;   /* recv -n; 0: none */
	bool follow, json;
};

/* Parse the options shared by send and recv; -1 after --help. */
static int io_parse(const char *cmd, const char *help, int argc, char **argv, bool recv,
                    struct io_args *a)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, rc;

	while ((c = getopt_long(argc, argv, recv ? ":t:n:fjh" : ":t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if ((rc = parse_timeout(cmd, optarg, &a->timeout)))
				return rc;
			break;
		case 'n':
		case 'f':
		case 'j':
			if (!recv)
				return tool_bad_option(cmd, '?', argv);
			if (c == 'f')
				a->follow = true;
			else if (c == 'j')
				a->json = true;
			else if ((rc = parse_count(cmd, "-n", optarg, 4294967295ul, &a->count)))
				return rc;
			break;
		case 'h': fputs(help, stdout); return -1;
		default: return tool_bad_option(cmd, c, argv);
		}
	}
	if ((rc = one_name(cmd, argc, argv)))
		return rc;
	return tool_check_name(cmd, argv[optind]);
}

struct sender {
	shmkit_chan *ch;
	const char *name;
	int64_t timeout;
	unsigned long sent, total; /* total 0: lines of stdin */
};

static int send_one(void *ctx, const char *msg, size_t len)
{
	struct sender *snd = ctx;
	int err = shmkit_chan_send(snd->ch, msg, len, snd->timeout);

	if (err)
		return tool_err_progress(snd->name, err, "sent", snd->sent, snd->total);
	snd->sent++;
	return 0;
}

int cmd_send(int argc, char **argv)
{
	struct io_args a = { .timeout = -1 };
	shmkit_chan *ch;
	int rc = io_parse("send", send_help, argc, argv, false, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	const char *name = argv[optind++];
	int err = shmkit_chan_open(&ch, name, NULL);
	if (err)
		return tool_open_err(name, err);
	struct sender snd = { ch, name, a.timeout, 0, (unsigned long)(argc - optind) };
	if (optind == argc)
		rc = tool_each_line(name, send_one, &snd);
	for (int i = optind; i < argc && !rc; i++)
		rc = send_one(&snd, argv[i], strlen(argv[i]));
	shmkit_chan_close(ch);
	return rc;
}

/* ---- recv ------------------------------------------------------------------ */

static const char recv_help[] =
	"usage: shmkit recv NAME [-n N] [--follow] [--timeout MS] [--json]\n"
	"\n"
	"Receive messages and print each on its own line.  Without -n or --follow,\n"
	"prints what is queued now and stops when the channel is empty.\n"
	"\n"
	"  -n, --count N  stop after N messages (waiting for them)\n"
	"  --follow       keep waiting for new messages\n"
	"  --timeout MS   how long to wait for each message (default: for ever with\n"
	"                 -n or --follow, else 0); running out ends --follow (exit\n"
	"                 0), and is an error with -n (exit 1, \"received 3 of 5\n"
	"                 messages\")\n"
	"  --json         one JSON object per message and line: {\"data\":TEXT}, or\n"
	"                 {\"hex\":HEX} when it is not UTF-8 or holds a NUL byte\n"
	"\n"
	"Each message is written to stdout (write(2), unbuffered) before the next\n"
	"is taken from the channel.  If recv is stopped (SIGINT, SIGTERM) or its\n"
	"output fails (stdout closed, a pipe whose reader has gone: exit 1 with\n"
	"\"shmkit: NAME: writing output: ...\"), at most the one message in flight\n"
	"is lost: taken from the channel but not (fully) written.\n";

static int recv_loop(shmkit_chan *ch, const char *name, const struct io_args *a)
{
	struct shmkit_chan_stats st;
	unsigned long got = 0;
	int rc = 0;

	shmkit_chan_stats(ch, &st);
	char *buf = malloc((size_t)st.max_msg + 1); /* + its newline */
	if (!buf)
		return tool_err(name, -ENOMEM);
	while (!a->count || got < a->count) {
		if ((rc = tool_out_ready(name)))
			break;
		ssize_t n = shmkit_chan_recv(ch, buf, st.max_msg, a->timeout);
		if (n == -EAGAIN || (n == -ETIMEDOUT && !a->count))
			break; /* drained, or --follow idle for --timeout */
		if (n < 0) {
			rc = tool_err_progress(name, (int)n, "received", got, a->count);
			break;
		}
		rc = a->json ? tool_out_json(name, buf, (size_t)n, NULL)
		             : tool_out_msg(name, buf, (size_t)n);
		if (rc)
			break;
		got++;
	}
	free(buf);
	return rc;
}

int cmd_recv(int argc, char **argv)
{
	struct io_args a = { .timeout = -2 };
	shmkit_chan *ch;
	int rc = io_parse("recv", recv_help, argc, argv, true, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (optind + 1 != argc)
		return tool_usage("recv: give exactly one NAME (see shmkit recv --help)");
	const char *name = argv[optind];
	if (a.timeout == -2)
		a.timeout = a.count || a.follow ? -1 : 0;
	if ((rc = tool_out_start(name)))
		return rc;
	int err = shmkit_chan_open(&ch, name, NULL);
	if (err)
		return tool_open_err(name, err);
	rc = recv_loop(ch, name, &a);
	shmkit_chan_close(ch);
	return rc;
}

/* ---- info ------------------------------------------------------------------ */

static void info_text(const struct shmkit_chan_stats *st)
{
	printf("channel:     %s, %u slots, max message %u bytes\n",
	       st->spsc ? "spsc (one producer, one consumer)" : "mpmc", st->capacity, st->max_msg);
	printf("depth:       %llu queued\n", (unsigned long long)st->depth);
	printf("sent:        %llu\n", (unsigned long long)st->sent);
	printf("received:    %llu\n", (unsigned long long)st->received);
	printf("full waits:  %llu\n", (unsigned long long)st->full_waits);
	printf("empty waits: %llu\n", (unsigned long long)st->empty_waits);
	if (st->spsc) {
		printf("producer:    %s", st->producer ? "pid " : "none\n");
		if (st->producer)
			printf("%u\n", st->producer);
		printf("consumer:    %s", st->consumer ? "pid " : "none\n");
		if (st->consumer)
			printf("%u\n", st->consumer);
	}
	printf("reclaimed:   %llu slots from dead peers\n", (unsigned long long)st->reclaimed);
	printf("aborted:     %llu reservations\n", (unsigned long long)st->aborted);
	printf("memory:      header %zu + %u slots x %zu bytes = %zu bytes, %zu mapped "
	       "(page-rounded)\n", st->hdr_size, st->capacity, st->slot_size,
	       st->hdr_size + st->capacity * st->slot_size, st->seg_size);
}

static const char *const peer_roles[] = { "handle", "producer", "consumer" };

static const char *peer_role(int role)
{
	return role >= 0 && role <= 2 ? peer_roles[role] : "?";
}

/* One line of `info` per peer (shmkit_chan_peers). */
static int peer_text(const struct shmkit_chan_peer *p, void *arg)
{
	(void)arg;
	const char *alive = p->alive > 0 ? "alive" : p->alive == 0 ? "dead" : "unknown";
	if (p->role == SHMKIT_CHAN_PEER_HANDLE)
		printf("  handle %-3u %-7s sent %-10llu received %llu%s\n", p->index, alive,
		       (unsigned long long)p->sent, (unsigned long long)p->received,
		       p->owned ? "  (owner token)" : "");
	else
		printf("  %-8s pid %-8d %s\n", peer_role(p->role), (int)p->pid, alive);
	return 0;
}

static int peer_json(const struct shmkit_chan_peer *p, void *arg)
{
	int *first = arg;

	printf("%s{\"role\":\"%s\",\"index\":%u,", *first ? "" : ",", peer_role(p->role),
	       p->index);
	if (p->pid)
		printf("\"pid\":%d,", (int)p->pid);
	else
		printf("\"pid\":null,");
	printf("\"alive\":%s,\"sent\":%llu,\"received\":%llu,\"owned\":%s}",
	       p->alive > 0 ? "true" : p->alive == 0 ? "false" : "null",
	       (unsigned long long)p->sent, (unsigned long long)p->received,
	       p->owned ? "true" : "false");
	*first = 0;
	return 0;
}

static void info_json(shmkit_chan *ch, const struct shmkit_chan_stats *st)
{
	int first = 1;

	printf("{\"spsc\":%s,\"capacity\":%u,\"max_msg\":%u,\"depth\":%llu,\"sent\":%llu,"
	       "\"received\":%llu,\"full_waits\":%llu,\"empty_waits\":%llu,\"reclaimed\":%llu,"
	       "\"aborted\":%llu,\"hdr_size\":%zu,\"slot_size\":%zu,\"seg_size\":%zu,"
	       "\"producer\":%u,\"consumer\":%u,\"formula\":",
	       st->spsc ? "true" : "false", st->capacity, st->max_msg,
	       (unsigned long long)st->depth, (unsigned long long)st->sent,
	       (unsigned long long)st->received, (unsigned long long)st->full_waits,
	       (unsigned long long)st->empty_waits, (unsigned long long)st->reclaimed,
	       (unsigned long long)st->aborted, st->hdr_size, st->slot_size, st->seg_size,
	       st->producer, st->consumer);
	tool_json_str("hdr_size + capacity * slot_size, page-rounded");
	printf(",\"peers\":[");
	shmkit_chan_peers(ch, peer_json, &first);
	printf("]}");
}

int info_chan(const char *name, bool json)
{
	struct shmkit_chan_opts o = { .flags = SHMKIT_RDONLY };
	struct shmkit_chan_stats st;
	shmkit_chan *ch;
	int err = shmkit_chan_open(&ch, name, &o);

	if (!err)
		err = shmkit_chan_stats(ch, &st);
	if (err) {
		if (json)
			printf("null");
		shmkit_chan_close(ch);
		return tool_err(name, err);
	}
	if (json) {
		info_json(ch, &st);
	} else {
		info_text(&st);
		printf("peers:       (handles that sent or received; SPSC: the roles)\n");
		shmkit_chan_peers(ch, peer_text, NULL);
	}
	shmkit_chan_close(ch);
	return 0;
}
