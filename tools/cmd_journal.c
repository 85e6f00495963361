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
	"                              [--max-record S] [--keep-files N] [--keep-bytes S]\n"
	"                              [--mode M]\n"
	"       shmkit journal tail PATH [--from SEQ] [-n|--count N] [--follow] [--timeout MS]\n"
	"                            [--json]\n"
	"       shmkit journal dump PATH [--from SEQ] [--json]\n"
	"       shmkit journal verify PATH [--json]\n"
	"       shmkit journal repair PATH [--json]\n"
	"       shmkit journal rm PATH\n"
	"\n"
	"A journal is a directory of mapped files holding numbered, checksummed\n"
	"records.  append writes each MSG (or each line of stdin) as one record,\n"
	"creating the journal if needed.  tail prints the last N records (10),\n"
	"or those from SEQ on; --follow waits for new ones.  dump prints every\n"
	"record with its time.  verify checks every file without changing\n"
	"anything (exit 1 when damaged) and says which records repair would drop;\n"
	"repair keeps every intact record (damaged ones become holes that readers\n"
	"skip, a torn tail is cut, a damaged or missing journal.meta is rebuilt\n"
	"from the data files) and prints exactly what it dropped.  append refuses\n"
	"a journal damaged anywhere but at its tail until it is repaired, and\n"
	"removes a journal it made if it could append nothing.  rm removes the\n"
	"journal's files and its directory (not while a writer lives; other\n"
	"files stay).  Output lines: SEQ<TAB>TEXT (tail), SEQ TIME_NS LEN TEXT\n"
	"(dump).\n"
	"\n"
	"  --sync POLICY    append: none (default), async, sync (each record on\n"
	"                   disk before the next) or group\n"
	"  --file-size S    append, on creation: bytes per data file (default 64M),\n"
	"                   each preallocated in full when it is started\n"
	"  --max-record S   append, on creation: largest record (default 1M)\n"
	"  --keep-files N   append: remove the oldest files past N\n"
	"  --keep-bytes S   append: remove the oldest files past S bytes\n"
	"  --mode M         append, on creation: permission bits in octal (default\n"
	"                   0600; the directory gets x where r is set)\n"
	"  --from SEQ       tail, dump: start at sequence number SEQ\n"
	"  -n, --count N    tail: the last N records (default 10)\n"
	"  --follow         tail: wait for new records\n"
	"  --timeout MS     tail --follow: stop after MS without a record (default\n"
	"                   -1, forever)\n"
	"  --json           tail, dump: one JSON object per record and line:\n"
	"                   seq, time_ns (a string), time (UTC), len, and data (a\n"
	"                   string) or hex when the record is not UTF-8 or holds a\n"
	"                   NUL byte; verify, repair: one JSON object\n";

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
		{ "mode", required_argument, NULL, 'M' },
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
		case 'm':
			if (!(rc = size_opt(optarg, &kb)) && kb > UINT32_MAX)
				rc = tool_usage("journal append: --max-record '%s' is over 4G", optarg);
			o.max_record = (uint32_t)kb;
			kb = 0;
			break;
		case 'k': rc = u32_opt(optarg, &o.keep_files); break;
		case 'b': rc = size_opt(optarg, &kb); o.keep_bytes = kb; break;
		case 'M': rc = tool_parse_mode("journal append", "--mode", optarg, &o.mode); break;
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
	if (err) /* 2: an option (-EINVAL) or a PATH (-ENAMETOOLONG) it cannot use */
		return tool_open_err(path, err);
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
	printf("{\"seq\":%" PRIu64 ",", r->seq);
	tool_json_time("time", r->time_ns);
	printf(",\"len\":%u,", r->len);
	tool_json_data(r->data, r->len);
	fputs("}\n", stdout);
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
	if (r == -EAGAIN || r == -ETIMEDOUT)
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
		{ "count", required_argument, NULL, 'n' },
		{ 0 },
	};
	bool dump = !strcmp(sub, "dump");
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
		if (dump && (c == 'n' || c == 'f' || c == 't'))
			return tool_usage("journal dump: %s is for tail", c == 'n' ? "-n" :
			                  c == 'f' ? "--follow" : "--timeout");
	}
	if (optind + 1 != argc)
		return tool_usage("journal %s: give exactly one PATH (see shmkit journal --help)", sub);
	a->path = argv[optind];
	return 0;
}

/* Where tail starts without --from: the last n records. */
static uint64_t tail_start(shmkit_journal *j, uint64_t n)
{
	struct shmkit_journal_stats st;

	if (shmkit_journal_stats(j, &st) || !st.records)
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
	int err = shmkit_journal_open(&j, a.path, NULL);
	if (err)
		return tool_open_err(a.path, err);
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
		printf("%s: %u hole%s (left by repair, or copied from a leader's): %" PRIu64
		       " record%s lost there\n", path, r->holes, plural(r->holes), r->hole_records,
		       plural(r->hole_records));
}

/* verify/repair --json: the report as one object. */
static void report_json(const char *path, const struct shmkit_journal_report *r, int err,
                        bool repair)
{
	bool clean = !err && !r->damaged_bytes && !r->where[0];
	const char *state = clean ? "clean" : repair && !err ? "repaired" : "damaged";

	printf("{");
	tool_json_name("path", path);
	printf(",\"state\":\"%s\",\"valid_records\":%" PRIu64 ",\"last_valid_seq\":%" PRIu64
	       ",\"damaged_bytes\":%" PRIu64 ",\"where\":", state, r->valid_records,
	       r->last_valid_seq, r->damaged_bytes);
	if (r->where[0])
		tool_json_str(r->where);
	else
		printf("null");
	printf(",\"meta_rebuilt_from\":");
	if (r->meta_rebuilt_from[0])
		tool_json_str(r->meta_rebuilt_from);
	else
		printf("null");
	printf(",\"dropped_records\":%" PRIu64 ",\"dropped_first_seq\":%" PRIu64
	       ",\"dropped_last_seq\":%" PRIu64 ",\"dropped_ranges\":%u,\"dropped\":",
	       r->dropped_records, r->dropped_first_seq, r->dropped_last_seq, r->dropped_ranges);
	tool_json_str(r->dropped);
	printf(",\"holes\":%u,\"hole_records\":%" PRIu64 "}\n", r->holes, r->hole_records);
}

static int journal_check(int argc, char **argv, bool repair)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *sub = repair ? "repair" : "verify";
	struct shmkit_journal_report r;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c != 'j')
			return bad_opt(sub, c, argv);
		json = true;
	}
	if (optind + 1 != argc)
		return tool_usage("journal %s: give exactly one PATH (see shmkit journal --help)", sub);
	const char *path = argv[optind];
	memset(&r, 0, sizeof(r));
	int err = repair ? shmkit_journal_repair(path, &r) : shmkit_journal_verify(path, &r);
	if (err && err != -EBADMSG)
		return tool_open_err(path, err);
	if (err == -EBADMSG && !r.where[0])
		return tool_err(path, err);
	if (json) {
		report_json(path, &r, err, repair);
		return err ? 1 : 0;
	}
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
	struct shmkit_journal_stats st;
	shmkit_journal *j;
	int err = shmkit_journal_open(&j, path, NULL);

	if (err)
		return tool_err(path, err);
	err = shmkit_journal_stats(j, &st);
	shmkit_journal_close(j);
	if (err)
		return tool_err(path, err);
	const char *pol = st.durability >= 0 && st.durability <= 3 ? policy_names[st.durability] : "?";
	if (json) {
		fputs("{\"kind\":\"journal\",", stdout);
		tool_json_name("path", path);
		printf(",\"files\":%u,\"bytes\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
		       ",\"sync\":\"%s\",\"writer_pid\":%d,\"writer_alive\":%s"
		       ",\"id\":\"%016" PRIx64 "\",\"copy_of\":\"%016" PRIx64 "\"}\n",
		       st.files, st.bytes, st.records, st.first_seq, st.last_seq, pol,
		       (int)st.writer_pid, st.writer_pid ? "true" : "false", st.id, st.copy_of);
		return 0;
	}
	printf("journal    %s\n", path);
	printf("id         %016" PRIx64 "\n", st.id);
	if (st.copy_of)
		printf("copy of    %016" PRIx64 "\n", st.copy_of);
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
		return err ? tool_open_err(argv[1], err) : 0;
	}
	return tool_usage("journal: '%s' is not append, tail, dump, verify, repair or rm", sub);
}
