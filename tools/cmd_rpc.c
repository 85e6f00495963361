/*
 * cmd_rpc.c - the request/response subcommands of shmkit: rpc (create),
 * call, serve, and the rpc part of `shmkit info`.  Public API only.
 *
 * `serve NAME -- COMMAND [ARGS]` makes any command a shared-memory
 * service: each request is the command's stdin, its stdout the response
 * and its exit status the call's status (`call` exits 1 and says so when
 * it is not 0).  --jobs N runs N workers, each with its own handle, so N
 * commands run at once.  A command is killed (SIGKILL) when the caller
 * gives up, dies, or its deadline passes, and when --timeout runs out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

static int parse_u32(const char *cmd, const char *opt, const char *s, unsigned long max,
                     uint32_t *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v == 0 || v > max)
		return tool_usage("%s: %s '%s' is not a count from 1 to %lu", cmd, opt, s, max);
	*out = (uint32_t)v;
	return 0;
}

static int parse_bytes(const char *cmd, const char *opt, const char *s, uint32_t *out)
{
	size_t v;
	if (shmkit_parse_size(s, &v) || v == 0 || v > (1u << 26))
		return tool_usage("%s: %s '%s' is not a size from 1 to 64M", cmd, opt, s);
	*out = (uint32_t)v;
	return 0;
}

/* ---- rpc --------------------------------------------------------------------- */

static const char rpc_help[] =
	"usage: shmkit rpc NAME [--max-request B] [--max-response B] [--clients N]\n"
	"                       [--depth N] [--servers N] [--mode M] [--excl] [--json]\n"
	"\n"
	"Create a request/response service: clients call (shmkit call), servers\n"
	"answer (shmkit serve); each request goes to one server, each response to\n"
	"its caller.  Without --excl an existing service of that name is opened\n"
	"and reported as \"exists\"; an option given that it does not match is an\n"
	"error (exit 1) that changes nothing.\n"
	"\n"
	"  --max-request B   largest request, K/M suffixes (default 1024)\n"
	"  --max-response B  largest response (default 1024)\n"
	"  --clients N       client handles at once (default 64, at most 4096)\n"
	"  --depth N         calls outstanding per client (default 8, at most 64)\n"
	"  --servers N       server handles at once (default 64, at most 2048)\n"
	"  --mode M          permission bits in octal (default 0600)\n"
	"  --excl            fail if the name exists\n"
	"  --json            print one JSON object\n";

/* Which creation options were given (the geometry an existing service
 * is checked against). */
enum { G_REQ, G_RESP, G_CLIENTS, G_DEPTH, G_SERVERS, G_MODE, G_N };

static int rpc_check(const char *name, const bool *given, const struct shmkit_rpc_opts *o,
                     const struct shmkit_rpc_stats *st, unsigned mode)
{
	const struct tool_geometry g[G_N] = {
		{ "max request", given[G_REQ], st->max_request, o->max_request, false, NULL },
		{ "max response", given[G_RESP], st->max_response, o->max_response, false, NULL },
		{ "clients", given[G_CLIENTS], st->max_clients, o->max_clients, false, NULL },
		{ "depth", given[G_DEPTH], st->depth, o->depth, false, NULL },
		{ "servers", given[G_SERVERS], st->max_servers, o->max_servers, false, NULL },
		{ "mode", given[G_MODE], mode, o->mode, true, NULL },
	};
	return tool_check_geometry(name, g, G_N);
}

static void rpc_report(const char *name, bool created, const struct shmkit_rpc_stats *st,
                       unsigned mode, bool json)
{
	tool_made(name, created, "rpc", mode, json);
	if (json)
		printf("\"max_request\":%u,\"max_response\":%u,\"max_clients\":%u,\"depth\":%u,"
		       "\"max_servers\":%u,\"seg_size\":%zu}\n", st->max_request, st->max_response,
		       st->max_clients, st->depth, st->max_servers, st->seg_size);
	else
		printf("%u clients x %u calls, %u servers, requests up to %u bytes, responses up "
		       "to %u, %zu bytes\n", st->max_clients, st->depth, st->max_servers,
		       st->max_request, st->max_response, st->seg_size);
}

int cmd_rpc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-request", required_argument, NULL, 'q' },
		{ "max-response", required_argument, NULL, 'r' },
		{ "clients", required_argument, NULL, 'c' },
		{ "depth", required_argument, NULL, 'd' },
		{ "servers", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "excl", no_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* Made by a process that exits at once: persistent, so gc leaves it. */
	struct shmkit_rpc_opts o = { .flags = SHMKIT_PERSIST };
	struct shmkit_rpc_stats st;
	struct shmkit_seg_info ss;
	bool given[G_N] = { false }, json = false;
	shmkit_rpc *r;
	int c, rc = 0;

	while (!rc && (c = getopt_long(argc, argv, ":q:r:c:d:s:m:xjh", opts, NULL)) != -1) {
		switch (c) {
		case 'q': rc = parse_bytes("rpc", "--max-request", optarg, &o.max_request);
			given[G_REQ] = true; break;
		case 'r': rc = parse_bytes("rpc", "--max-response", optarg, &o.max_response);
			given[G_RESP] = true; break;
		case 'c': rc = parse_u32("rpc", "--clients", optarg, 4096, &o.max_clients);
			given[G_CLIENTS] = true; break;
		case 'd': rc = parse_u32("rpc", "--depth", optarg, 64, &o.depth);
			given[G_DEPTH] = true; break;
		case 's': rc = parse_u32("rpc", "--servers", optarg, 2048, &o.max_servers);
			given[G_SERVERS] = true; break;
		case 'm': rc = tool_parse_mode("rpc", "--mode", optarg, &o.mode);
			given[G_MODE] = true; break;
		case 'x': o.flags |= SHMKIT_EXCL; break;
		case 'j': json = true; break;
		case 'h': fputs(rpc_help, stdout); return 0;
		default: return tool_bad_option("rpc", c, argv);
		}
	}
	if (rc)
		return rc;
	if (optind + 1 != argc)
		return tool_usage("rpc: give exactly one NAME (see shmkit rpc --help)");
	const char *name = argv[optind];
	if ((rc = tool_check_name("rpc", name)))
		return rc;
	bool excl = o.flags & SHMKIT_EXCL;
	o.flags |= SHMKIT_EXCL; /* first exclusively, to say whether we made it */
	int err = shmkit_rpc_create(&r, name, &o);
	bool created = !err;
	if (err == -EEXIST && !excl)
		err = shmkit_rpc_open(&r, name, NULL);
	if (err)
		return tool_open_err(name, err);
	/* The mode: as asked when made here (no second open that could
	 * fail and leave the new object behind), else the kernel's. */
	ss.mode = o.mode ? o.mode : 0600;
	if ((err = shmkit_rpc_stats(r, &st)) || (!created && (err = shmkit_seg_info_name(name, &ss)))) {
		shmkit_rpc_close(r);
		if (created)
			shmkit_seg_remove(name); /* a failed command leaves nothing */
		return tool_err(name, err);
	}
	rc = created ? 0 : rpc_check(name, given, &o, &st, ss.mode);
	if (!rc)
		rpc_report(name, created, &st, ss.mode, json);
	shmkit_rpc_close(r);
	return rc;
}

/* ---- call ---------------------------------------------------------------------- */

static const char call_help[] =
	"usage: shmkit call NAME [MSG...] [--timeout MS] [--json]\n"
	"\n"
	"Send each MSG (or each line of stdin) as one request and print each\n"
	"response on its own line.  Exit 1 if a call fails, times out, or its\n"
	"server answers with a non-zero status (a failed command under serve);\n"
	"a failure part way says how far it got (\"answered 4 of 10 messages\").\n"
	"\n"
	"  --timeout MS   deadline of each call (default 10000; -1: for ever)\n"
	"  --json         one JSON object per response and line: {\"data\":TEXT} or\n"
	"                 {\"hex\":HEX} (not UTF-8, or a NUL byte), and \"status\"\n";

struct caller {
	shmkit_rpc *r;
	const char *name;
	int64_t timeout;
	void *buf;
	size_t cap;
	bool json;
	unsigned long long done, total; /* total 0: lines of stdin */
};

static int call_one(void *ctx, const char *msg, size_t len)
{
	struct caller *c = ctx;
	uint64_t id;
	const void *p;
	int err = shmkit_rpc_send(c->r, msg, len, 0, c->timeout, &id);

	if (err)
		return tool_err_progress(c->name, err, "answered", c->done, c->total);
	ssize_t n = shmkit_rpc_wait(c->r, &id, &p, c->timeout);
	if (n < 0) {
		int rc = tool_err_progress(c->name, (int)n, "answered", c->done, c->total);
		if (n == -ETIMEDOUT)
			shmkit_rpc_cancel(c->r, id); /* if the wait ended first */
		return rc;
	}
	memcpy(c->buf, p, (size_t)n);
	int status = shmkit_rpc_status(c->r, id);
	shmkit_rpc_release(c->r, id);
	int rc;
	if (c->json) {
		char extra[32];
		snprintf(extra, sizeof(extra), "\"status\":%d", status);
		rc = tool_out_json(c->name, c->buf, (size_t)n, extra);
	} else {
		rc = tool_out_msg(c->name, c->buf, (size_t)n);
	}
	if (!rc && status) {
		fprintf(stderr, "shmkit: %s: the server answered with status %d\n", c->name, status);
		rc = 1;
	}
	c->done++;
	return rc;
}

int cmd_call(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int64_t timeout = 10000000000LL;
	struct shmkit_rpc_stats st;
	bool json = false;
	shmkit_rpc *r;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, ":t:jh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (tool_parse_ms(optarg, &timeout))
				return tool_usage("call: --timeout '%s' is not milliseconds (or -1)", optarg);
			break;
		case 'j': json = true; break;
		case 'h': fputs(call_help, stdout); return 0;
		default: return tool_bad_option("call", c, argv);
		}
	}
	if (optind >= argc)
		return tool_usage("call: give an rpc NAME (see shmkit call --help)");
	const char *name = argv[optind++];
	if ((rc = tool_check_name("call", name)) || (rc = tool_out_start(name)))
		return rc;
	int err = shmkit_rpc_open(&r, name, NULL);
	if (err)
		return tool_open_err(name, err);
	shmkit_rpc_stats(r, &st);
	/* room for the response and the newline tool_out_msg adds */
	struct caller cl = { r, name, timeout, malloc((size_t)st.max_response + 1),
	                     st.max_response, json, 0, (unsigned long long)(argc - optind) };
	if (!cl.buf) {
		shmkit_rpc_close(r);
		return tool_err(name, -ENOMEM);
	}
	if (optind == argc)
		rc = tool_each_line(name, call_one, &cl);
	for (int i = optind; i < argc && !rc; i++)
		rc = call_one(&cl, argv[i], strlen(argv[i]));
	free(cl.buf);
	shmkit_rpc_close(r);
	return rc;
}

/* ---- serve --------------------------------------------------------------------- */

static const char serve_help[] =
	"usage: shmkit serve NAME (--echo | -- COMMAND [ARGS...]) [--jobs N] [-n N]\n"
	"                         [--timeout MS] [--idle MS]\n"
	"\n"
	"Answer the requests of an rpc service.  --echo answers each request with\n"
	"itself.  With COMMAND, each request runs COMMAND with the request on its\n"
	"stdin; its stdout (up to the service's max response) is the response and\n"
	"its exit status the call's status.  A command whose caller gives up, dies\n"
	"or passes its deadline is killed, as is one that runs past --timeout.\n"
	"\n"
	"  --jobs N       N workers, each answering one request at a time (default 1)\n"
	"  -n, --count N  stop after N requests (per worker)\n"
	"  --timeout MS   longest a command may run (default: the call's deadline)\n"
	"  --idle MS      stop after MS without a request (default: never)\n";

struct server {
	shmkit_rpc *r;
	const char *name;
	char **cmd;              /* NULL: echo */
	int64_t cmd_timeout;     /* ns, -1: the call's deadline only */
	void *buf;
	size_t cap;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the command on request q: its stdout into s->buf (*len), its exit
 * status (128 + signal when killed).  -ECANCELED when it was killed
 * because its caller gave up or its time ran out. */
static int run_command(struct server *s, const struct shmkit_rpc_req *q, size_t *len, int *status)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setpgid(0, 0); /* its own group: a kill reaches what it started */
		dup2(in[0], 0);
		dup2(out[1], 1);
		signal(SIGPIPE, SIG_DFL);
		execvp(s->cmd[0], s->cmd);
		fprintf(stderr, "shmkit: serve: cannot run %s: %s\n", s->cmd[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t sent = 0;
	*len = 0;
	int wfd = in[1], rfd = out[0], cancelled = 0;
	if (q->len == 0) {
		close(wfd);
		wfd = -1;
	}
	int64_t start = mono_ms();
	while (rfd >= 0) {
		struct pollfd p[2] = { { .fd = rfd, .events = POLLIN }, { .fd = wfd, .events = POLLOUT } };
		int n = poll(p, wfd >= 0 ? 2 : 1, 100);
		if (n < 0 && errno != EINTR)
			break;
		if (wfd >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t k = write(wfd, (const char *)q->data + sent, q->len - sent);
			if (k > 0)
				sent += (size_t)k;
			if (k < 0 && errno != EAGAIN) /* the command does not read it all */
				sent = q->len;
			if (sent == q->len) {
				close(wfd);
				wfd = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char tmp[4096];
			ssize_t k = read(rfd, tmp, sizeof(tmp));
			if (k <= 0) {
				close(rfd);
				rfd = -1;
				break;
			}
			size_t take = (size_t)k > s->cap - *len ? s->cap - *len : (size_t)k;
			memcpy((char *)s->buf + *len, tmp, take); /* the rest is cut */
			*len += take;
		}
		if (n == 0 && (shmkit_rpc_abandoned(s->r, q) == 1 ||
		               (s->cmd_timeout >= 0 && (mono_ms() - start) * 1000000 >= s->cmd_timeout))) {
			cancelled = 1;
			kill(-pid, SIGKILL); /* the group: a child left holding stdout would keep us */
			kill(pid, SIGKILL);
			break;
		}
	}
	if (wfd >= 0)
		close(wfd);
	if (rfd >= 0)
		close(rfd);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return cancelled ? -ECANCELED : 0;
}

static int serve_loop(struct server *s, unsigned long count, int64_t idle)
{
	for (unsigned long done = 0; !count || done < count; done++) {
		struct shmkit_rpc_req q;
		int err = shmkit_rpc_recv(s->r, &q, idle);
		if (err == -ETIMEDOUT || err == -EAGAIN)
			return 0;
		if (err)
			return tool_err(s->name, err);
		size_t len = q.len;
		int status = 0;
		if (s->cmd) {
			err = run_command(s, &q, &len, &status);
			if (err == -ECANCELED) {
				shmkit_rpc_respond_status(s->r, &q, NULL, 0, 128 + SIGKILL); /* dropped */
				continue;
			}
			if (err)
				status = 126;
		} else {
			len = q.len < s->cap ? q.len : s->cap;
			memcpy(s->buf, q.data, len);
		}
		err = shmkit_rpc_respond_status(s->r, &q, s->buf, len, status);
		if (err && err != -ECANCELED)
			return tool_err(s->name, err);
	}
	return 0;
}

static int serve_worker(struct server *s, unsigned long count, int64_t idle)
{
	struct shmkit_rpc_stats st;
	int err = shmkit_rpc_open(&s->r, s->name, NULL);

	if (err)
		return tool_open_err(s->name, err);
	shmkit_rpc_stats(s->r, &st);
	s->cap = st.max_response;
	s->buf = malloc(s->cap ? s->cap : 1);
	int rc = s->buf ? serve_loop(s, count, idle) : tool_err(s->name, -ENOMEM);
	free(s->buf);
	shmkit_rpc_close(s->r);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "echo", no_argument, NULL, 'e' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "idle", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct server s = { .cmd_timeout = -1 };
	uint32_t jobs = 1, count = 0;
	int64_t idle = -1;
	bool echo = false;
	int c, rc = 0;

	while (!rc && (c = getopt_long(argc, argv, ":ej:n:t:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'e': echo = true; break;
		case 'j': rc = parse_u32("serve", "--jobs", optarg, 256, &jobs); break;
		case 'n': rc = parse_u32("serve", "-n", optarg, UINT32_MAX, &count); break;
		case 't':
			if (tool_parse_ms(optarg, &s.cmd_timeout))
				rc = tool_usage("serve: --timeout '%s' is not milliseconds", optarg);
			break;
		case 'i':
			if (tool_parse_ms(optarg, &idle))
				rc = tool_usage("serve: --idle '%s' is not milliseconds", optarg);
			break;
		case 'h': fputs(serve_help, stdout); return 0;
		default: return tool_bad_option("serve", c, argv);
		}
	}
	if (rc)
		return rc;
	if (optind >= argc)
		return tool_usage("serve: give an rpc NAME (see shmkit serve --help)");
	s.name = argv[optind++];
	if ((rc = tool_check_name("serve", s.name)))
		return rc;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (echo == (optind < argc))
		return tool_usage("serve: give --echo or -- COMMAND (not both)");
	s.cmd = optind < argc ? argv + optind : NULL;
	if (jobs == 1)
		return serve_worker(&s, count, idle);
	pid_t *kids = calloc(jobs, sizeof(*kids));
	if (!kids)
		return tool_err(s.name, -ENOMEM);
	for (uint32_t i = 0; i < jobs; i++) {
		fflush(NULL);
		if ((kids[i] = fork()) == 0)
			_exit(serve_worker(&s, count, idle));
		if (kids[i] < 0)
			rc = tool_err(s.name, -errno);
	}
	for (uint32_t i = 0; i < jobs; i++) {
		int st;
		if (kids[i] > 0 && (waitpid(kids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)))
			rc = 1;
	}
	free(kids);
	return rc;
}

/* ---- info ------------------------------------------------------------------------- */

static int peer_text(const struct shmkit_rpc_peer *p, void *arg)
{
	const char *alive = p->alive == 1 ? "alive" : p->alive == 0 ? "gone" : "?";
	if (p->server)
		printf("server %-5u pid %-8d %-5s taken %llu, answered %llu, dropped %llu\n", p->index,
		       (int)p->pid, alive, (unsigned long long)p->calls,
		       (unsigned long long)p->answered, (unsigned long long)p->cancelled);
	else
		printf("client %-5u pid %-8d %-5s calls %llu, answered %llu, in flight %u\n",
		       p->index, (int)p->pid, alive, (unsigned long long)p->calls,
		       (unsigned long long)p->answered, p->in_flight);
	return 0;
}

static int peer_json(const struct shmkit_rpc_peer *p, void *arg)
{
	int *first = arg;
	printf("%s{\"server\":%s,\"index\":%u,\"pid\":%d,\"alive\":%s,\"calls\":%llu,"
	       "\"answered\":%llu,\"cancelled\":%llu,\"in_flight\":%u}", *first ? "" : ",",
	       p->server ? "true" : "false", p->index, (int)p->pid,
	       p->alive > 0 ? "true" : p->alive == 0 ? "false" : "null",
	       (unsigned long long)p->calls, (unsigned long long)p->answered,
	       (unsigned long long)p->cancelled, p->in_flight);
	*first = 0;
	return 0;
}

int info_rpc(const char *name, bool json)
{
	struct shmkit_rpc_stats st;
	shmkit_rpc *r;
	int err = shmkit_rpc_open(&r, name, NULL);

	if (err)
		return tool_err(name, err);
	shmkit_rpc_stats(r, &st);
	if (json) {
		printf("{\"max_clients\":%u,\"max_servers\":%u,\"depth\":%u,\"max_request\":%u,"
		       "\"max_response\":%u,\"seg_size\":%zu,\"requests\":%llu,\"responses\":%llu,\"timeouts\":%llu,"
		       "\"cancelled\":%llu,\"retried\":%llu,\"reset\":%llu,\"requeued\":%llu,"
		       "\"dropped\":%llu,\"clients\":%u,\"servers\":%u,\"in_flight\":%u,\"peers\":[",
		       st.max_clients, st.max_servers, st.depth, st.max_request, st.max_response, st.seg_size,
		       (unsigned long long)st.requests, (unsigned long long)st.responses,
		       (unsigned long long)st.timeouts, (unsigned long long)st.cancelled,
		       (unsigned long long)st.retried, (unsigned long long)st.reset,
		       (unsigned long long)st.requeued, (unsigned long long)st.dropped, st.clients,
		       st.servers, st.in_flight);
		int first = 1;
		shmkit_rpc_peers(r, peer_json, &first);
		printf("]}\n");
	} else {
		printf("rpc:         %u clients x %u calls, requests up to %u bytes, responses up "
		       "to %u\n", st.max_clients, st.depth, st.max_request, st.max_response);
		printf("calls:       %llu sent, %llu answered, %u in flight\n",
		       (unsigned long long)st.requests, (unsigned long long)st.responses, st.in_flight);
		printf("given up:    %llu by callers, %llu answers dropped for them\n",
		       (unsigned long long)st.timeouts, (unsigned long long)st.cancelled);
		printf("servers:     %llu calls reset by a server's death, %llu given to another, "
		       "%llu re-queued\n", (unsigned long long)st.reset,
		       (unsigned long long)st.retried, (unsigned long long)st.requeued);
		printf("dropped:     %llu stale or forged queue entries\n",
		       (unsigned long long)st.dropped);
		printf("memory:      %zu bytes (4096 + 256 + queue + 64 x %u servers + %u clients "
		       "x (64 + %u x slot))\n", st.seg_size, st.max_servers, st.max_clients, st.depth);
		printf("peers:       %u clients, %u servers alive\n", st.clients, st.servers);
		shmkit_rpc_peers(r, peer_text, NULL);
	}
	shmkit_rpc_close(r);
	return 0;
}
