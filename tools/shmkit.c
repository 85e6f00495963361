/*
 * shmkit.c - the shmkit command: dispatches `shmkit SUBCOMMAND [OPTIONS]
 * [ARGS]` to the cmd_* entry points of tools/cmd.h, and holds the helpers
 * every subcommand shares (error and usage messages, timeouts, JSON
 * strings).  Built on the public API only (include/shmkit.h).
 *
 * Exit status: 0 success, 1 failure, 2 usage error.  Errors go to stderr
 * as "shmkit: NAME: reason".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{ "ls", cmd_ls, "list every shared-memory segment on the machine" },
	{ "create", cmd_create, "create a managed byte segment (NAME --size S)" },
	{ "info", cmd_info, "describe a segment, channel, bus or journal" },
	{ "rm", cmd_rm, "remove segments by name" },
	{ "gc", cmd_gc, "remove segments only dead processes used" },
	{ "read", cmd_read, "copy bytes from a segment to stdout" },
	{ "write", cmd_write, "copy bytes from stdin into a segment" },
	{ "chan", cmd_chan, "create a channel (queue: each message to one receiver)" },
	{ "send", cmd_send, "send arguments or stdin lines to a channel" },
	{ "recv", cmd_recv, "receive messages from a channel" },
	{ "bus", cmd_bus, "create a bus (each message to every subscriber)" },
	{ "pub", cmd_pub, "publish arguments or stdin lines on a bus" },
	{ "sub", cmd_sub, "subscribe to a bus and print its messages" },
	{ "rpc", cmd_rpc, "create a request/response service" },
	{ "call", cmd_call, "call an rpc service with arguments or stdin lines" },
	{ "serve", cmd_serve, "answer an rpc service's calls (--echo, or -- COMMAND)" },
	{ "journal", cmd_journal, "append, tail, dump, verify, repair a journal" },
	{ "top", cmd_top, "a live view of every shmkit object (--once, --json)" },
	{ "doctor", cmd_doctor, "check this machine and container for shmkit" },
	{ "bridge", cmd_bridge, "carry services to other hosts over ZeroMQ (runs shmkit-bridge)" },
	{ "bench", cmd_bench, "measured comparisons against pipes, sockets, limits" },
	{ "demo", cmd_demo, "a two-process demonstration" },
};

static void print_help(FILE *out)
{
	fprintf(out,
	        "usage: shmkit SUBCOMMAND [OPTIONS] [ARGS]\n"
	        "       shmkit SUBCOMMAND --help\n"
	        "\n"
	        "Linux shared memory as an IPC system: segments over POSIX, System V,\n"
	        "files, anonymous mappings and memfd; channels, a bus, request/response\n"
	        "(rpc) and a journal.\n"
	        "\n"
	        "Subcommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out,
	        "\n"
	        "Names: NAME or posix:/NAME, sysv:0xKEY, sysv:/PATH:PROJ, sysv:id=SHMID,\n"
	        "file:PATH (anon and memfd: are library-only).  Sizes and offsets take\n"
	        "K, M, G suffixes.  Exit status: 0 success, 1 failure, 2 usage error.\n"
	        "See shmkit(1).\n");
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(subcommands[i].name, name))
			return &subcommands[i];
	return NULL;
}

static int run_subcommand(const struct subcommand *sc, int argc, char **argv)
{
	optind = 1; /* each subcommand parses its own options from argv[1] */
	int rc = sc->fn(argc, argv);
	if (fflush(stdout) == EOF && rc == 0) {
		fprintf(stderr, "shmkit: %s: writing output: %s\n", sc->name, strerror(errno));
		return 1;
	}
	return rc;
}

/* `shmkit help [SUBCOMMAND]` */
static int help(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stdout);
		return 0;
	}
	const struct subcommand *sc = find_subcommand(argv[1]);
	if (!sc)
		return tool_usage("help: unknown subcommand '%s'", argv[1]);
	char *sub_argv[] = { argv[1], (char *)"--help", NULL };
	return run_subcommand(sc, 2, sub_argv);
}

int main(int argc, char **argv)
{
	opterr = 0; /* subcommands report bad options as "shmkit: SUB: ..." */
	if (argc < 2) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[1];
	if (tool_is_help(name) || !strcmp(name, "help"))
		return help(argc - 1, argv + 1);
	if (!strcmp(name, "--version")) {
		printf("shmkit %d.%d.%d\n", SHMKIT_VERSION_MAJOR, SHMKIT_VERSION_MINOR,
		       SHMKIT_VERSION_PATCH);
		return 0;
	}
	const struct subcommand *sc = find_subcommand(name);
	if (!sc)
		return tool_usage("'%s' is not a subcommand (see shmkit --help)", name);
	return run_subcommand(sc, argc - 1, argv + 1);
}

/* ---- helpers shared by every subcommand (tools/cmd.h) ------------------ */

int tool_err(const char *what, int err)
{
	const char *detail = shmkit_errdetail();

	if (what && !*what)
		what = "(empty name)"; /* not "shmkit: : ..." */
	if (detail && *detail)
		fprintf(stderr, "shmkit: %s: %s (%s)\n", what, shmkit_strerror(err), detail);
	else
		fprintf(stderr, "shmkit: %s: %s\n", what, shmkit_strerror(err));
	return 1;
}

int tool_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("shmkit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

int tool_parse_ms(const char *s, int64_t *ns)
{
	char *end;

	if (!s || !ns || !*s)
		return -EINVAL;
	if (!strcmp(s, "-1")) {
		*ns = -1;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long ms = strtoull(s, &end, 10);
	if (errno || *end || ms > (unsigned long long)(INT64_MAX / 1000000))
		return -EINVAL;
	*ns = (int64_t)ms * 1000000;
	return 0;
}

/* Length of the valid UTF-8 sequence at p (1-4) within avail bytes, or 0
 * if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
	size_t n;
	unsigned cp;

	if (!avail)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* True if p[0..len) is valid UTF-8 without a NUL byte: text that a JSON
 * string carries exactly and that C readers of it can hold. */
static bool utf8_text(const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len;) {
		size_t n = b[i] ? utf8_len(b + i, len - i) : 0;
		if (!n)
			return false;
		i += n;
	}
	return true;
}

static void json_hex(FILE *f, const void *p, size_t len)
{
	putc('"', f);
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", ((const unsigned char *)p)[i]);
	putc('"', f);
}

static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putc('"', f);
	while (*p) {
		size_t n = utf8_len(p, 4);
		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20) {
			fprintf(f, "\\u%04x", *p);
		} else if (n) {
			fwrite(p, 1, n, f);
			p += n;
			continue;
		} else {
			/* Not UTF-8 (a name in /dev/shm can hold any byte): keep
			 * the JSON valid by reading the byte as Latin-1. */
			fprintf(f, "\\u%04x", *p);
		}
		p++;
	}
	putc('"', f);
}

void tool_json_str(const char *s)
{
	json_str(stdout, s);
}

void tool_escape(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;

	if (!len)
		return;
	while (*p && o + 1 < len) {
		size_t n = utf8_len(p, 4);
		if (*p == '\\' || *p < 0x20 || *p == 0x7f || !n) {
			/* a backslash, a control byte or a byte that is not
			 * UTF-8: four visible characters, never a terminal
			 * escape sequence from a hostile name */
			if (o + 5 > len)
				break;
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
			p++;
		} else {
			if (o + n + 1 > len)
				break;
			memcpy(buf + o, p, n);
			o += n;
			p += n;
		}
	}
	buf[o] = '\0';
}

static void json_data(FILE *f, const void *p, size_t len)
{
	if (utf8_text(p, len)) {
		/* valid UTF-8 without NUL: json_str() copies it exactly */
		char *s = malloc(len + 1);
		if (s) {
			memcpy(s, p, len);
			s[len] = '\0';
			fprintf(f, "\"data\":");
			json_str(f, s);
			free(s);
			return;
		}
	}
	fprintf(f, "\"hex\":");
	json_hex(f, p, len);
}

void tool_json_data(const void *p, size_t len)
{
	json_data(stdout, p, len);
}

void tool_json_name(const char *key, const char *s)
{
	printf("\"%s\":", key);
	tool_json_str(s);
	if (!utf8_text(s, strlen(s))) {
		printf(",\"%s_hex\":", key);
		json_hex(stdout, s, strlen(s));
	}
}

void tool_json_time(const char *key, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char buf[64];

	if (ns <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
		printf("\"%s_ns\":null,\"%s\":null", key, key);
		return;
	}
	printf("\"%s_ns\":\"%" PRId64 "\",\"%s\":\"%s.%09dZ\"", key, ns, key, buf,
	       (int)(ns % 1000000000));
}

void tool_made(const char *name, bool created, const char *kind, unsigned mode, bool json)
{
	if (json) {
		printf("{");
		tool_json_name("name", name);
		printf(",\"created\":%s,\"kind\":\"%s\",\"mode\":\"%04o\",",
		       created ? "true" : "false", kind, mode);
	} else {
		printf("%s %s: %s, mode %04o, ", created ? "created" : "exists", name, kind, mode);
	}
}

int tool_check_name(const char *cmd, const char *name)
{
	if (!strcmp(name, "anon") || !strncmp(name, "memfd:", 6))
		return tool_usage("%s: %s: anon and memfd segments are library-only: they live "
		                  "in the processes holding them and cannot be named from another "
		                  "process (see examples/anon_fork.c, examples/memfd_pass.c)", cmd, name);
	return 0;
}

int tool_open_err(const char *what, int err)
{
	tool_err(what, err);
	/* A name the library cannot parse, or an option its backend cannot
	 * honour (huge pages on posix): what the command line asked for is
	 * wrong, not the state of the machine. */
	return err == -EINVAL || err == -ENAMETOOLONG ? EXIT_USAGE : 1;
}

int tool_err_progress(const char *what, int err, const char *verb, unsigned long long done,
                      unsigned long long total)
{
	const char *detail = shmkit_errdetail();
	char more[256] = "";

	if (detail && *detail)
		snprintf(more, sizeof(more), " (%.240s)", detail);
	if (what && !*what)
		what = "(empty name)";
	if (total)
		fprintf(stderr, "shmkit: %s: %s%s; %s %llu of %llu messages\n", what,
		        shmkit_strerror(err), more, verb, done, total);
	else
		fprintf(stderr, "shmkit: %s: %s%s; %s %llu message%s before it\n", what,
		        shmkit_strerror(err), more, verb, done, done == 1 ? "" : "s");
	return 1;
}

int tool_mismatch(const char *name, const char *what, const char *have, const char *want)
{
	fprintf(stderr, "shmkit: %s: exists with %s %s, not %s; nothing changed (remove it "
	        "first, or leave the option out to use it as it is)\n", name, what, have, want);
	return 1;
}

int tool_check_geometry(const char *name, const struct tool_geometry *g, size_t n)
{
	char have[32], want[32];
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (!g[i].given || g[i].have == g[i].want)
			continue;
		const char *fmt = g[i].octal ? "%04llo" : "%llu";
		if (g[i].labels) {
			snprintf(have, sizeof(have), "%s", g[i].labels[g[i].have ? 1 : 0]);
			snprintf(want, sizeof(want), "%s", g[i].labels[g[i].want ? 1 : 0]);
		} else {
			snprintf(have, sizeof(have), fmt, g[i].have);
			snprintf(want, sizeof(want), fmt, g[i].want);
		}
		rc = tool_mismatch(name, g[i].what, have, want);
	}
	return rc;
}

unsigned long long tool_pow2(unsigned long long v)
{
	unsigned long long p = 1;

	while (p < v && p < (1ull << 62))
		p <<= 1;
	return p;
}

bool tool_is_help(const char *arg)
{
	return arg && (!strcmp(arg, "-h") || !strcmp(arg, "--help"));
}

int tool_bad_option(const char *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return tool_usage("%s: option '%s' needs a value (see shmkit %s --help)", cmd, arg, cmd);
	if (optopt && optopt != '?' && arg[0] == '-' && arg[1] != '-')
		return tool_usage("%s: unknown option '-%c' (see shmkit %s --help)", cmd, optopt, cmd);
	return tool_usage("%s: unknown option '%s' (see shmkit %s --help)", cmd, arg, cmd);
}

int tool_parse_mode(const char *cmd, const char *opt, const char *s, unsigned *mode)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 8);
	if (!*s || *end || errno || v == 0 || v > 07777 || *s < '0' || *s > '7')
		return tool_usage("%s: %s '%s' is not an octal permission mode", cmd, opt, s);
	*mode = (unsigned)v;
	return 0;
}

int tool_each_line(const char *what, int (*fn)(void *ctx, const char *line, size_t len),
                   void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		rc = fn(ctx, line, (size_t)n);
	}
	free(line);
	if (!rc && ferror(stdin))
		rc = tool_err(what, -EIO);
	return rc;
}

/* ---- message output for recv and sub (tools/cmd.h) --------------------- */

static int out_fail(const char *what, int err, const char *after)
{
	fprintf(stderr, "shmkit: %s: writing output: %s%s\n", what, strerror(err), after);
	return 1;
}

int tool_out_start(const char *what)
{
	int fl = fcntl(STDOUT_FILENO, F_GETFL);

	signal(SIGPIPE, SIG_IGN);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
		return out_fail(what, fl < 0 ? errno : EBADF, " (stdout is not open for writing); "
		                "no message received");
	return 0;
}

int tool_out_ready(const char *what)
{
	struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };

	/* A pipe or socket whose reader has gone polls POLLERR: stop before
	 * taking a message that could not be written. */
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)))
		return out_fail(what, p.revents & POLLNVAL ? EBADF : EPIPE,
		                "; stopped before receiving another message");
	return 0;
}

/* Wait until fd takes more (a non-blocking stdout said EAGAIN). */
static void out_wait(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

int tool_out_msg(const char *what, char *msg, size_t len)
{
	const char *p = msg;

	msg[len++] = '\n';
	while (len) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			out_wait(STDOUT_FILENO);
		} else if (n == 0 || errno != EINTR) {
			return out_fail(what, n ? errno : EIO,
			                "; the message in flight was not (fully) written");
		}
	}
	return 0;
}

int tool_out_json(const char *what, const void *msg, size_t len, const char *extra)
{
	char *line = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&line, &n);

	if (!f)
		return out_fail(what, ENOMEM, "; the message in flight was not written");
	fputc('{', f);
	json_data(f, msg, len);
	if (extra && *extra)
		fprintf(f, ",%s", extra);
	fputc('}', f);
	if (fclose(f) || !line) {
		free(line);
		return out_fail(what, ENOMEM, "; the message in flight was not written");
	}
	int rc = tool_out_msg(what, line, n); /* open_memstream leaves room for a NUL */
	free(line);
	return rc;
}
