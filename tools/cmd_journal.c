/*
 * cmd_journal.c - `shmkit journal append|tail|dump|verify|repair PATH` and
 * the journal part of `shmkit info PATH`, over the public API only.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cmd.h"

static const char journal_help[] =
	"usage: shmkit journal append PATH [MSG...] [--sync POLICY] [--file-size S]\n"
	"                              [--max-record N] [--keep-files N] [--keep-bytes S]\n"
	"       shmkit journal tail PATH [--from SEQ] [-n N] [--follow] [--timeout MS] [--json]\n"
	"       shmkit journal dump PATH [--from SEQ] [--json]\n"
	"       shmkit journal verify PATH\n"
	"       shmkit journal repair PATH\n"
	"       shmkit journal rm PATH\n"
	"\n"
	"A journal is a directory of mapped files holding numbered, checksummed\n"
	"records.  append writes each MSG (or each line of stdin) as one record,\n"
	"creating the journal if needed; POLICY is none, async, sync (each append\n"
	"on disk before the next) or group.  tail prints the last N records (10),\n"
	"or those from SEQ on; --follow waits for new ones (until --timeout MS\n"
	"passes with none, default forever).  dump prints every record with its\n"
	"time.  verify checks every file without changing anything (exit 1 when\n"
	"damaged) and says which records repair would drop; repair keeps every\n"
	"intact record (damaged ones become holes that readers skip, a torn\n"
	"tail is cut, a damaged or missing journal.meta is rebuilt from the data\n"
	"files) and prints exactly what it dropped.  append refuses a journal\n"
	"damaged anywhere but at its tail until it is repaired, and removes a\n"
	"journal it made if it could append nothing.  rm removes the journal's\n"
	"files and its directory (not while a writer lives; other files stay).\n"
	"Output lines: SEQ<TAB>TEXT (tail), SEQ TIME_NS LEN TEXT (dump); --json:\n"
	"one object per record, \"data\" as a string, or \"hex\" if it holds NUL.\n";

static const char *const policy_names[] = { "none", "async", "sync", "group" };

static int parse_policy(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, policy_names[i]))
			return i;
	return -1;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int bad_opt(const char *sub, int c, char **argv)
{
	if (c == ':')
		return tool_usage("journal %s: option '%s' needs a value (see shmkit journal --help)",
		                  sub, argv[optind - 1]);
	return tool_usage("journal %s: unknown option '%s' (see shmkit journal --help)", sub,
	                  argv[optind - 1]);
}

/* ---- append --------------------------------------------------------------- */

struct appender {
	shmkit_journal *j;
	const char *path;
	uint64_t appended;
};

static int append_one(void *ctx, const char *p, size_t len)
{
	struct appender *ap = ctx;
	int err = shmkit_journal_append(ap->j, p, len, NULL);
	if (err)
		return tool_err(ap->path, err);
	ap->appended++;
	return 0;
}

static int size_opt(const char *s, size_t *out)
{
	return shmkit_parse_size(s, out) ? tool_usage("journal append: bad size '%s'", s) : 0;
}

static int u32_opt(const char *s, uint32_t *out)
{
	uint64_t v;
	if (parse_u64(s, &v) || v > UINT32_MAX)
		return tool_usage("journal append: bad number '%s'", s);
	*out = (uint32_t)v;
	return 0;
}

static int journal_append(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sync", required_argument, NULL, 's' },
		{ "file-size", required_argument, NULL, 'f' },
		{ "max-record", required_argument, NULL, 'm' },
		{ "keep-files", required_argument, NULL, 'k' },
		{ "keep-bytes", required_argument, NULL, 'b' },
		{ 0 },
	};
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	size_t kb = 0;
	int c, rc = 0;

	while (!rc && (c = getopt_long(argc, argv, ":s:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((o.durability = parse_policy(optarg)) < 0)
				return tool_usage("journal append: --sync is none, async, sync or group");
			break;
		case 'f': rc = size_opt(optarg, &o.file_size); break;
		case 'm': rc = u32_opt(optarg, &o.max_record); break;
		case 'k': rc = u32_opt(optarg, &o.keep_files); break;
		case 'b': rc = size_opt(optarg, &kb); o.keep_bytes = kb; break;
		default: return bad_opt("append", c, argv);
		}
	}
	if (rc)
		return rc;
	if (optind >= argc)
		return tool_usage("journal append: give a PATH (see shmkit journal --help)");
	const char *path = argv[optind++];
	shmkit_journal *j;
	struct stat st;
	/* A journal this command makes and then fails to append anything to
	 * (a record over --max-record, say) is removed again: a failed
	 * command leaves nothing. */
	bool fresh = lstat(path, &st) && errno == ENOENT;
	int err = shmkit_journal_open(&j, path, &o);
	if (err)
		return tool_err(path, err);
	struct appender ap = { j, path, 0 };
	if (optind == argc)
		rc = tool_each_line(path, append_one, &ap);
	for (; !rc && optind < argc; optind++)
		rc = append_one(&ap, argv[optind], strlen(argv[optind]));
	err = shmkit_journal_close(j);
	if ((rc || err) && fresh && !ap.appended)
		shmkit_journal_remove(path); /* the error reported is the first */
	return rc ? rc : err ? tool_err(path, err) : 0;
}

/* ---- reading ---------------------------------------------------------------- */

enum out_style { OUT_TAIL, OUT_DUMP, OUT_JSON };

static void print_json(const struct shmkit_record *r)
{
	printf("{\"seq\":%" PRIu64 ",\"time_ns\":%" PRId64 ",\"len\":%u,", r->seq, r->time_ns, r->len);
	if (memchr(r->data, 0, r->len)) {
		fputs("\"hex\":\"", stdout);
		for (uint32_t i = 0; i < r->len; i++)
			printf("%02x", ((const unsigned char *)r->data)[i]);
		fputs("\"}\n", stdout);
		return;
	}
	char *s = malloc((size_t)r->len + 1);
	if (s) {
		memcpy(s, r->data, r->len);
		s[r->len] = '\0';
	}
	fputs("\"data\":", stdout);
	tool_json_str(s ? s : "");
	fputs("}\n", stdout);
	free(s);
}

static void print_record(const struct shmkit_record *r, enum out_style style)
{
	if (style == OUT_JSON)
		print_json(r);
	else if (style == OUT_TAIL)
		printf("%" PRIu64 "\t", r->seq);
	else
		printf("%" PRIu64 " %" PRId64 " %u ", r->seq, r->time_ns, r->len);
	if (style != OUT_JSON) {
		fwrite(r->data, 1, r->len, stdout);
		putchar('\n');
	}
}

/* Print records from the reader's position: until the end (timeout 0), or
 * following until timeout_ns passes without one (negative: forever). */
static int print_records(shmkit_journal *j, const char *path, enum out_style style,
                         int64_t timeout_ns)
{
	struct shmkit_record rec;
	int r;

	while ((r = shmkit_journal_next(j, &rec, timeout_ns)) == 1) {
		print_record(&rec, style);
		if (timeout_ns)
			fflush(stdout);
	}
	if (r == 0 || r == -ETIMEDOUT)
		return 0;
	return tool_err(path, r);
}

struct read_args {
	bool json, follow, have_from;
	uint64_t from, n;
	int64_t timeout_ns;
	const char *path;
};

static int parse_read(int argc, char **argv, const char *sub, struct read_args *a)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "follow", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->n = 10;
	a->timeout_ns = -1;
	while ((c = getopt_long(argc, argv, ":n:f", opts, NULL)) != -1) {
		switch (c) {
		case 'F':
			if (parse_u64(optarg, &a->from))
				return tool_usage("journal %s: bad --from '%s'", sub, optarg);
			a->have_from = true;
			break;
		case 'n':
			if (parse_u64(optarg, &a->n))
				return tool_usage("journal %s: bad -n '%s'", sub, optarg);
			break;
		case 'f': a->follow = true; break;
		case 't':
			if (tool_parse_ms(optarg, &a->timeout_ns))
				return tool_usage("journal %s: bad --timeout '%s' (ms, -1 forever)", sub, optarg);
			break;
		case 'j': a->json = true; break;
		default: return bad_opt(sub, c, argv);
		}
	}
	if (optind + 1 != argc)
		return tool_usage("journal %s: give exactly one PATH (see shmkit journal --help)", sub);
	a->path = argv[optind];
	return 0;
}

/* Where tail starts without --from: the last n records. */
static uint64_t tail_start(shmkit_journal *j, uint64_t n)
{
	struct shmkit_journal_stat st;

	if (shmkit_journal_stat(j, &st) || !st.records)
		return 0;
	return st.last_seq >= n ? st.last_seq - n + 1 : 0;
}

static int journal_read(int argc, char **argv, bool dump)
{
	const char *sub = dump ? "dump" : "tail";
	struct read_args a;
	shmkit_journal *j;
	int rc = parse_read(argc, argv, sub, &a);

	if (rc)
		return rc;
	if (dump && a.follow)
		return tool_usage("journal dump: --follow is for tail");
	int err = shmkit_journal_open(&j, a.path, NULL);
	if (err)
		return tool_err(a.path, err);
	uint64_t from = a.have_from || dump ? a.from : tail_start(j, a.n);
	if ((err = shmkit_journal_seek_seq(j, from))) {
		shmkit_journal_close(j);
		return tool_err(a.path, err);
	}
	enum out_style style = a.json ? OUT_JSON : dump ? OUT_DUMP : OUT_TAIL;
	rc = print_records(j, a.path, style, a.follow ? a.timeout_ns : 0);
	shmkit_journal_close(j);
	return rc;
}

/* ---- verify / repair -------------------------------------------------------- */

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* What damage costs (verify: would cost), exactly: the seqs dropped. */
static void print_dropped(const char *path, const struct shmkit_journal_report *r, bool done)
{
	const char *verb = done ? "dropped" : "repair would drop";

	if (r->dropped_records)
		printf("%s: %s %" PRIu64 " record%s (seq%s %s), %" PRIu64 " damaged bytes\n", path,
		       verb, r->dropped_records, plural(r->dropped_records),
		       plural(r->dropped_records), r->dropped, r->damaged_bytes);
	else
		printf("%s: %s no record, %" PRIu64 " damaged bytes\n", path, verb, r->damaged_bytes);
}

static void print_holes(const char *path, const struct shmkit_journal_report *r)
{
	if (r->holes)
		printf("%s: %u hole%s left by repair: %" PRIu64 " record%s lost there\n", path,
		       r->holes, plural(r->holes), r->hole_records, plural(r->hole_records));
}

static int journal_check(int argc, char **argv, bool repair)
{
	const char *sub = repair ? "repair" : "verify";
	struct shmkit_journal_report r;
	int c;

	while ((c = getopt_long(argc, argv, ":", NULL, NULL)) != -1)
		return bad_opt(sub, c, argv);
	if (optind + 1 != argc)
		return tool_usage("journal %s: give exactly one PATH (see shmkit journal --help)", sub);
	const char *path = argv[optind];
	int err = repair ? shmkit_journal_repair(path, &r) : shmkit_journal_verify(path, &r);
	if (err && err != -EBADMSG)
		return tool_err(path, err);
	if (err == -EBADMSG && !r.where[0])
		return tool_err(path, err);
	if (!err && !r.damaged_bytes && !r.where[0]) {
		printf("%s: clean, %" PRIu64 " records, last seq %" PRIu64 "\n", path,
		       r.valid_records, r.last_valid_seq);
		print_holes(path, &r);
		return 0;
	}
	bool done = repair && !err;
	printf("%s: %s: %s\n", path, done ? "repaired" : "damaged", r.where);
	if (done && r.meta_rebuilt_from[0])
		printf("%s: rebuilt journal.meta from %s\n", path, r.meta_rebuilt_from);
	print_dropped(path, &r, done);
	printf("%s: %" PRIu64 " valid records%s (last seq %" PRIu64 ")\n", path, r.valid_records,
	       done ? " kept" : "", r.last_valid_seq);
	print_holes(path, &r);
	if (!repair && err)
		printf("%s: `shmkit journal repair %s` keeps every valid record\n", path, path);
	return err ? 1 : 0;
}

/* ---- info ----------------------------------------------------------------- */

int info_journal(const char *path, bool json)
{
	struct shmkit_journal_stat st;
	shmkit_journal *j;
	int err = shmkit_journal_open(&j, path, NULL);

	if (err)
		return tool_err(path, err);
	err = shmkit_journal_stat(j, &st);
	shmkit_journal_close(j);
	if (err)
		return tool_err(path, err);
	const char *pol = st.durability >= 0 && st.durability <= 3 ? policy_names[st.durability] : "?";
	if (json) {
		fputs("{\"kind\":\"journal\",\"path\":", stdout);
		tool_json_str(path);
		printf(",\"files\":%u,\"bytes\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
		       ",\"sync\":\"%s\",\"writer_pid\":%d,\"writer_alive\":%s}\n",
		       st.files, st.bytes, st.records, st.first_seq, st.last_seq, pol,
		       (int)st.writer_pid, st.writer_pid ? "true" : "false");
		return 0;
	}
	printf("journal    %s\n", path);
	printf("files      %u (%" PRIu64 " bytes)\n", st.files, st.bytes);
	printf("records    %" PRIu64 "\n", st.records);
	printf("first seq  %" PRIu64 "\n", st.first_seq);
	printf("last seq   %" PRIu64 "\n", st.last_seq);
	printf("sync       %s\n", pol);
	if (st.writer_pid > 0)
		printf("writer     pid %d (alive)\n", (int)st.writer_pid);
	else if (st.writer_pid)
		printf("writer     alive (pid unknown)\n");
	else
		printf("writer     none\n");
	return 0;
}

int cmd_journal(int argc, char **argv)
{
	if (argc < 2 || tool_is_help(argv[1])) {
		fputs(journal_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--"))
			break;
		else if (tool_is_help(argv[i])) {
			fputs(journal_help, stdout);
			return 0;
		}
	argc--;
	argv++;
	optind = 1;
	if (!strcmp(sub, "append"))
		return journal_append(argc, argv);
	if (!strcmp(sub, "tail"))
		return journal_read(argc, argv, false);
	if (!strcmp(sub, "dump"))
		return journal_read(argc, argv, true);
	if (!strcmp(sub, "verify"))
		return journal_check(argc, argv, false);
	if (!strcmp(sub, "repair"))
		return journal_check(argc, argv, true);
	if (!strcmp(sub, "rm")) {
		if (argc != 2)
			return tool_usage("journal rm: give one PATH");
		int err = shmkit_journal_remove(argv[1]);
		return err ? tool_err(argv[1], err) : 0;
	}
	return tool_usage("journal: '%s' is not append, tail, dump, verify, repair or rm", sub);
}
