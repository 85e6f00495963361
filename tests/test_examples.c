/*
 * test_examples.c - every program of examples/ (BUILD/examples/NAME) run
 * as a child with names that follow the suite's naming rule: each must
 * exit 0 (they check what they moved themselves), print its summary, and
 * leave its name behind nowhere.  The controls run an example on a name
 * that exists already: it must fail (so a failing example fails here).
 * examples_are_all_tested fails when an example is added without a test.
 *
 * Then the bash completion of contrib/bash-completion/shmkit, driven the
 * way bash drives it (COMP_LINE, COMP_POINT, then _shmkit, COMPREPLY),
 * against the tool of this build, and against a stand-in tool whose help
 * names a subcommand and options the real one does not have: completion
 * comes from the help at run time, so it offers those.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib_test.h"
#include "shmkit.h"

TestSuite(examples, .timeout = 120, .fini = sk_test_cleanup);
TestSuite(completion, .timeout = 60, .fini = sk_test_cleanup);

static char out[16384];
static char path[4200];

static const char *example(const char *name)
{
	snprintf(path, sizeof(path), "%s/../examples/%s", sk_test_dir(), name);
	cr_assert_eq(access(path, X_OK), 0, "%s not built (make examples)", path);
	return path;
}

#define RUN(ex, ...) sk_test_run(out, sizeof(out), example(ex), __VA_ARGS__, NULL)

Test(examples, chan_pipeline)
{
	const char *n = sk_test_new_name("posix");
	cr_assert_eq(RUN("chan_pipeline", n, "3000"), 0, "%s", out);
	cr_expect(strstr(out, "consumer"), "%s", out);
	cr_expect(strstr(out, "received 3000 messages in order"), "%s", out);
	cr_expect_eq(sk_test_exists(n), 0, "%s left behind", n);
}

Test(examples, bus_epoll)
{
	const char *n = sk_test_new_name("posix");
	cr_assert_eq(RUN("bus_epoll", n, "2000"), 0, "%s", out);
	cr_expect(strstr(out, "2000 messages in order, none lost"), "%s", out);
	cr_expect_eq(sk_test_exists(n), 0, "%s left behind", n);
}

Test(examples, journal_follow)
{
	char base[128], dir[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "journal"));
	cr_assert_eq(RUN("journal_follow", dir, "1500"), 0, "%s", out);
	cr_expect(strstr(out, "read records 1..1500 in order"), "%s", out);
	cr_expect(strstr(out, "appended 1500 records"), "%s", out);
	cr_expect_neq(stat(dir, &st), 0, "%s left behind", dir);
}

Test(examples, rpc_upper)
{
	const char *n = sk_test_new_name("posix");
	cr_assert_eq(RUN("rpc_upper", n, "1000"), 0, "%s", out);
	cr_expect(strstr(out, "1000 calls answered correctly"), "%s", out);
	/* Both servers report, and their counts add up to the calls. */
	unsigned total = 0, a, servers = 0;
	for (const char *p = out; (p = strstr(p, "): answered ")); p++)
		if (sscanf(p, "): answered %u calls", &a) == 1) {
			total += a;
			servers++;
		}
	cr_expect_eq(servers, 2, "%s", out);
	cr_expect_eq(total, 1000, "%s", out);
	cr_expect_eq(sk_test_exists(n), 0, "%s left behind", n);
}

Test(examples, memfd_pass)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "passed by %d", (int)getpid());
	cr_assert_eq(RUN("memfd_pass", msg), 0, "%s", out);
	char *got = strstr(out, "mapped 4096 bytes: \"");
	cr_expect(got && !strncmp(got + strlen("mapped 4096 bytes: \""), msg, strlen(msg)), "%s", out);
	cr_expect(strstr(out, "the memfd is sealed"), "%s", out);
	cr_expect(strstr(out, "the receiver wrote back \"reply from pid"), "%s", out);
}

Test(examples, hello_posix)
{
	const char *n = sk_test_new_name("posix");
	cr_assert_eq(RUN("hello_posix", n), 0, "%s", out);
	cr_expect(strstr(out, "\"hello, shared memory\""), "%s", out);
	cr_expect_eq(sk_test_exists(n), 0, "%s left behind", n);
}

Test(examples, anon_fork)
{
	cr_assert_eq(RUN("anon_fork", "from the child"), 0, "%s", out);
	cr_expect(strstr(out, "reads \"from the child\" from the anon segment, var = 10"), "%s", out);
}

/* Controls: a name that exists already is refused (the examples create
 * exclusively) and left as it was: a failing example fails its test. */
Test(examples, an_existing_name_fails_them)
{
	const char *n = sk_test_new_name("posix");
	struct shmkit_seg_opts o = { .size = 4096 };
	shmkit_seg *seg;
	cr_assert_eq(shmkit_seg_create(&seg, n, &o), 0);
	shmkit_seg_close(seg);
	cr_expect_eq(RUN("chan_pipeline", n, "10"), 1, "%s", out);
	cr_expect_eq(RUN("bus_epoll", n, "10"), 1, "%s", out);
	cr_expect_eq(RUN("rpc_upper", n, "10"), 1, "%s", out);
	cr_expect_eq(sk_test_exists(n), 1, "the examples removed a name they did not make");

	char base[128], dir[160];
	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "exists"));
	example("journal_follow"); /* asserts it is built before the directory is made */
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_expect_eq(RUN("journal_follow", dir, "10"), 1, "%s", out);
	cr_expect_eq(rmdir(dir), 0, "the directory was changed");
}

/* Every program in BUILD/examples has a test above. */
Test(examples, examples_are_all_tested)
{
	static const char *const tested[] = { "chan_pipeline", "bus_epoll", "journal_follow",
		"rpc_upper", "memfd_pass", "hello_posix", "anon_fork" };
	char dirpath[4200];
	snprintf(dirpath, sizeof(dirpath), "%s/../examples", sk_test_dir());
	DIR *d = opendir(dirpath);
	cr_assert(d, "%s: no examples built", dirpath);
	struct dirent *e;
	unsigned found = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		unsigned i = 0;
		while (i < sizeof(tested) / sizeof(tested[0]) && strcmp(tested[i], e->d_name))
			i++;
		cr_expect_lt(i, sizeof(tested) / sizeof(tested[0]), "example %s has no test", e->d_name);
		found++;
	}
	closedir(d);
	cr_expect_geq(found, sizeof(tested) / sizeof(tested[0]));
}

/* ---- bash completion ------------------------------------------------ */

/* contrib/bash-completion/shmkit of the source tree: the first parent of
 * the build directory that has it. */
static const char *completion_file(void)
{
	static char file[4400];
	char dir[4200];

	snprintf(dir, sizeof(dir), "%s", sk_test_dir());
	for (int up = 0; up < 6; up++) {
		snprintf(file, sizeof(file), "%s/contrib/bash-completion/shmkit", dir);
		if (access(file, R_OK) == 0)
			return file;
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = '\0';
	}
	cr_assert_fail("contrib/bash-completion/shmkit not found above %s", sk_test_dir());
	return NULL;
}

/* bash-completion's own file, loaded first by complete() when set: its
 * _get_comp_words_by_ref is then what _shmkit reads the line with. */
static const char *bash_completion;

/* Complete LINE (the cursor at its end) with TOOLDIR first on PATH; the
 * candidates, one per line, in out.  COMP_WORDS is split as bash splits
 * it (':' a word of its own).  Returns bash's exit code. */
static int complete_in(const char *tooldir, const char *line)
{
	static const char script[] =
		"PATH=\"$1:$PATH\"; [ -z \"$4\" ] || source \"$4\" || exit 6; "
		"source \"$2\" || exit 3; complete -p shmkit >/dev/null || exit 4; "
		"COMP_LINE=$3; COMP_POINT=${#3}; l=${3//:/ : }; read -ra COMP_WORDS <<<\"$l\"; "
		"[[ $3 == *[[:space:]] ]] && COMP_WORDS+=(\"\"); "
		"COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _shmkit || exit 5; "
		"printf '%s\\n' \"${COMPREPLY[@]}\"";
	return sk_test_run(out, sizeof(out), "/bin/bash", "--norc", "-c", script, "bash", tooldir,
	                   completion_file(), line, bash_completion ? bash_completion : "", NULL);
}

static int complete(const char *line)
{
	char tooldir[4200];
	snprintf(tooldir, sizeof(tooldir), "%s/..", sk_test_dir());
	return complete_in(tooldir, line);
}

/* 1 if word is one line of out. */
static int offered(const char *word)
{
	size_t n = strlen(word);
	for (const char *p = out; (p = strstr(p, word)); p++)
		if ((p == out || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static int lines(void)
{
	int n = 0;
	for (const char *p = out; *p; p++)
		n += *p == '\n';
	return n;
}

static void subcommands_from_the_tools_help(void)
{
	cr_assert_eq(complete("shmkit "), 0, "%s", out);
	const char *const want[] = { "ls", "create", "rm", "gc", "chan", "send", "recv", "bus",
		                     "pub", "sub", "rpc", "call", "serve", "journal", "info" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect(offered(want[i]), "%s not offered:\n%s", want[i], out);
	cr_assert_eq(complete("shmkit jo"), 0);
	cr_expect_str_eq(out, "journal\n");
	cr_assert_eq(complete("shmkit zzz"), 0);
	cr_expect_str_eq(out, "\n", "nothing for an unknown prefix: %s", out);
}

static void options_and_their_values(void)
{
	cr_assert_eq(complete("shmkit chan x --"), 0, "%s", out);
	cr_expect(offered("--capacity") && offered("--max-msg") && offered("--help"), "%s", out);
	cr_expect(!offered("--follow"), "another command's option: %s", out);
	cr_assert_eq(complete("shmkit recv x -"), 0);
	cr_expect(offered("-n") && offered("--follow"), "%s", out);
	cr_assert_eq(complete("shmkit sub x --from "), 0);
	cr_expect(offered("oldest") && offered("newest") && lines() == 2, "%s", out);
	cr_assert_eq(complete("shmkit sub x --timeout "), 0);
	cr_expect_str_eq(out, "\n", "a number to type: %s", out);
}

static void second_level_subcommands(void)
{
	cr_assert_eq(complete("shmkit journal "), 0, "%s", out);
	cr_expect(offered("append") && offered("tail") && offered("verify") && offered("repair"),
	          "%s", out);
	cr_assert_eq(complete("shmkit journal tail /tmp/j --f"), 0);
	cr_expect(offered("--follow") && offered("--from"), "%s", out);
	cr_expect(!offered("--file-size"), "append's option offered for tail: %s", out);
}

static void names_of_existing_segments(void)
{
	const char *n = sk_test_new_name("posix");
	shmkit_chan *ch;
	struct shmkit_chan_opts o = { .capacity = 2, .max_msg = 8 };
	cr_assert_eq(shmkit_chan_create(&ch, n, &o), 0);
	char line[256];
	snprintf(line, sizeof(line), "shmkit send %.*s", (int)strlen(n) - 2, n + strlen("posix:/"));
	cr_assert_eq(complete(line), 0);
	cr_expect(offered(n + strlen("posix:/")), "bare name of %s not offered:\n%s", n, out);
	/* With the backend prefix, bash has split at ':' and replaces what
	 * follows it: the candidate is "/NAME". */
	snprintf(line, sizeof(line), "shmkit send %.*s", (int)strlen(n) - 2, n);
	cr_assert_eq(complete(line), 0);
	cr_expect(offered(n + strlen("posix:")), "%s not offered:\n%s", n, out);
	shmkit_chan_close(ch);
}

Test(completion, subcommands) { subcommands_from_the_tools_help(); }
Test(completion, options) { options_and_their_values(); }
Test(completion, journal_subcommands) { second_level_subcommands(); }
Test(completion, segment_names) { names_of_existing_segments(); }

/* The same with bash-completion loaded (where it is installed). */
Test(completion, with_bash_completion_loaded)
{
	bash_completion = "/usr/share/bash-completion/bash_completion";
	if (access(bash_completion, R_OK))
		cr_skip_test("bash-completion is not installed");
	subcommands_from_the_tools_help();
	options_and_their_values();
	second_level_subcommands();
	names_of_existing_segments();
}

/* A stand-in tool with a subcommand and options the real one lacks: they
 * are offered, so nothing is listed in the completion file itself. */
Test(completion, follows_the_help_of_the_tool_it_finds)
{
	char base[128], dir[200], tool[260];
	snprintf(dir, sizeof(dir), "/tmp/%s", sk_test_base(base, sizeof(base), "fake-tool"));
	snprintf(tool, sizeof(tool), "%s/shmkit", dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	FILE *f = fopen(tool, "w");
	if (!f)
		rmdir(dir);
	cr_assert(f);
	fputs("#!/bin/sh\n"
	      "case \"$1\" in\n"
	      "--help) printf 'usage: shmkit SUBCOMMAND\\n\\nSubcommands:\\n"
	      "  frobnicate  twist a segment\\n  ls       list\\n\\nNames: ...\\n' ;;\n"
	      "frobnicate) printf 'usage: shmkit frobnicate NAME [--wibble] [--twist N|M]\\n\\n"
	      "  --wibble     wobble\\n  -q, --quietly  hush\\n' ;;\n"
	      "esac\n", f);
	fclose(f);
	chmod(tool, 0700);
	int rc1 = complete_in(dir, "shmkit fr");
	static char got1[sizeof(out)];
	snprintf(got1, sizeof(got1), "%s", out);
	int rc2 = complete_in(dir, "shmkit frobnicate x -");
	static char got2[sizeof(out)];
	snprintf(got2, sizeof(got2), "%s", out);
	int rc3 = complete_in(dir, "shmkit frobnicate x --twist ");
	unlink(tool);
	rmdir(dir);
	cr_assert_eq(rc1 | rc2 | rc3, 0);
	cr_expect_str_eq(got1, "frobnicate\n");
	cr_expect_str_eq(got2, "--quietly\n--twist\n--wibble\n-q\n--help\n");
	cr_expect_str_eq(out, "N\nM\n");
}
