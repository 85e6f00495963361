/*
 * test_journal_tool.c - `shmkit journal ...` and `shmkit info PATH`, run as
 * child processes of BUILD/shmkit (found beside this binary's directory):
 * output, exit status 0 / 1 (failure, damage) / 2 (usage).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "journal_test.h"
#include "lib_test.h"
#include "shmkit.h"

TestSuite(journal_tool, .timeout = 60, .fini = jt_cleanup);

static char out[65536];
static char tool_path[4200];

/* BUILD/shmkit, beside the directory of this test binary. */
static const char *tool_bin(void)
{
	snprintf(tool_path, sizeof(tool_path), "%s/../shmkit", sk_test_dir());
	return tool_path;
}

/* Run "../shmkit ARGS..." with stdin from text (NULL: empty); stdout into
 * out.  Returns the exit code. */
static int tool(const char *text, ...)
{
	const char *argv[32] = { tool_bin() };
	int argc = 1, p[2];
	va_list ap;

	va_start(ap, text);
	while (argc < 31 && (argv[argc] = va_arg(ap, const char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	cr_assert_eq(pipe(p), 0);
	if (text)
		cr_assert_eq(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	close(p[1]);
	int fd = -1;
	pid_t pid = sk_test_spawn(argv, p[0], &fd);
	close(p[0]);
	cr_assert_gt(pid, 0, "cannot run the tool: %s", strerror((int)-pid));
	return sk_test_finish(pid, fd, out, sizeof(out));
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(journal_tool, append_dump_tail)
{
	const char *path = jt_new_path();

	cr_assert_eq(tool(NULL, "journal", "append", path, "hello", "second one", NULL), 0);
	cr_assert_eq(tool("from stdin\nlast line\n", "journal", "append", "--sync", "sync", path, NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "append", path, "--sync", "group", "--", "-dash", NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "dump", path, NULL), 0);
	cr_assert_eq(count_lines(out), 5, "%s", out);
	cr_assert(strstr(out, "1 ") == out, "%s", out);
	cr_assert(strstr(out, " 10 second one\n") && strstr(out, " 9 last line\n") &&
	          strstr(out, " 5 -dash\n"), "%s", out);

	cr_assert_eq(tool(NULL, "journal", "dump", "--json", path, NULL), 0);
	cr_assert_eq(count_lines(out), 5);
	cr_assert(strstr(out, "{\"seq\":3,\"time_ns\":"), "%s", out);
	cr_assert(strstr(out, "\"len\":10,\"data\":\"from stdin\"}"), "%s", out);

	cr_assert_eq(tool(NULL, "journal", "tail", "-n", "2", path, NULL), 0);
	cr_assert_str_eq(out, "4\tlast line\n5\t-dash\n");
	cr_assert_eq(tool(NULL, "journal", "tail", "--from", "2", path, NULL), 0);
	cr_assert_eq(count_lines(out), 4);
	cr_assert(!strncmp(out, "2\tsecond one\n", 13), "%s", out);
}

Test(journal_tool, tail_follow_sees_new_records)
{
	const char *path = jt_new_path();
	cr_assert_eq(tool(NULL, "journal", "append", path, "one", NULL), 0);
	const char *argv[] = { tool_bin(), "journal", "tail", "--from", "1", "--follow",
	                       "--timeout", "3000", path, NULL };
	int fd = -1;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(pid, 0);
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE };
	shmkit_journal *j;
	int err = shmkit_journal_open(&j, path, &o);
	for (int i = 0; !err && i < 3; i++)
		err = shmkit_journal_append(j, "more", 4, NULL);
	if (!err)
		shmkit_journal_close(j);
	int rc = sk_test_finish(pid, fd, out, sizeof(out));
	cr_assert_eq(err, 0);
	cr_assert_eq(rc, 0, "tail exit %d", rc);
	cr_assert_str_eq(out, "1\tone\n2\tmore\n3\tmore\n4\tmore\n");
}

Test(journal_tool, verify_and_repair)
{
	const char *path = jt_new_path();
	char file[160];

	for (int i = 0; i < 20; i++)
		cr_assert_eq(tool(NULL, "journal", "append", path, "record payload", NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 0);
	cr_assert(strstr(out, "clean, 20 records, last seq 20"), "%s", out);

	/* Flip a payload byte of record 8. */
	size_t off = SKJ_FHDR_SIZE + 7 * (SKJ_RHDR_SIZE + skj_pad8(14)) + SKJ_RHDR_SIZE + 3;
	snprintf(file, sizeof(file), "%s/%020d.skj", path, 1);
	int fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "X", 1, (off_t)off), 1);
	close(fd);

	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 1);
	cr_assert(strstr(out, "damaged") && strstr(out, "checksum mismatch at seq 8") &&
	          strstr(out, "repair would drop 1 record (seq 8), 40 damaged bytes") &&
	          strstr(out, "19 valid records (last seq 20)"), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "dump", path, NULL), 1, "a reader stops at the damage");
	cr_assert_eq(count_lines(out), 7);
	cr_assert_eq(tool(NULL, "journal", "append", path, "would cut 9..20", NULL), 1,
	             "appending over middle damage is refused");
	cr_assert_eq(tool(NULL, "journal", "repair", path, NULL), 0);
	cr_assert(strstr(out, "repaired") && strstr(out, "dropped 1 record (seq 8), 40 damaged bytes") &&
	          strstr(out, "19 valid records kept (last seq 20)"), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 0);
	cr_assert(strstr(out, "clean, 19 records, last seq 20") &&
	          strstr(out, "1 hole (left by repair, or copied from a leader's): 1 record lost there"),
	          "%s", out);
	cr_assert_eq(tool(NULL, "journal", "dump", path, NULL), 0);
	cr_assert_eq(count_lines(out), 19);
	cr_assert(strstr(out, "\n7 ") && !strstr(out, "\n8 ") && strstr(out, "\n9 "), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "append", path, "after repair", NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "tail", "-n", "1", path, NULL), 0);
	cr_assert_str_eq(out, "21\tafter repair\n");
}

Test(journal_tool, repair_rebuilds_a_garbled_meta)
{
	const char *path = jt_new_path();
	char meta[160], file[160];

	for (int i = 0; i < 20; i++)
		cr_assert_eq(tool(NULL, "journal", "append", path, "record payload", NULL), 0);
	snprintf(meta, sizeof(meta), "%s/" SKJ_META_NAME, path);
	cr_assert_eq(jt_flip(meta, 17, 0x20), 0, "journal_id garbled");
	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 1);
	cr_assert(strstr(out, "damaged") && strstr(out, SKJ_META_NAME ": header checksum mismatch"),
	          "%s", out);
	cr_assert_eq(tool(NULL, "journal", "dump", path, NULL), 1, "no reader opens it");
	cr_assert_eq(tool(NULL, "journal", "repair", path, NULL), 0, "%s", out);
	cr_assert(strstr(out, "repaired") &&
	          strstr(out, "rebuilt journal.meta from 00000000000000000001.skj\n"), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 0, "%s", out);
	cr_assert(strstr(out, "clean, 20 records, last seq 20"), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "append", path, "after rebuild", NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "tail", "-n", "1", path, NULL), 0);
	cr_assert_str_eq(out, "21\tafter rebuild\n");

	/* Nothing to rebuild from: exit 1, saying so. */
	cr_assert_eq(jt_flip(meta, 17, 0x20), 0);
	snprintf(file, sizeof(file), "%s/%020d.skj", path, 1);
	cr_assert_eq(unlink(file), 0);
	cr_assert_eq(tool(NULL, "journal", "repair", path, NULL), 1);
	cr_assert(strstr(out, "no data file to rebuild it from") && !strstr(out, "rebuilt"),
	          "%s", out);
}

Test(journal_tool, info_shows_files_records_policy_writer)
{
	const char *path = jt_new_path();
	cr_assert_eq(tool(NULL, "journal", "append", "--sync", "group", "--file-size", "8K",
	                  "--max-record", "512", path, "a", "b", "c", NULL), 0);
	cr_assert_eq(tool(NULL, "info", path, NULL), 0);
	cr_assert(strstr(out, "files      1 (8192 bytes)") && strstr(out, "records    3") &&
	          strstr(out, "first seq  1") && strstr(out, "last seq   3") &&
	          strstr(out, "sync       group") && strstr(out, "writer     none"), "%s", out);
	/* Its identity, as the library has it; no copy_of line for a journal
	 * that copies none. */
	shmkit_journal *j;
	struct shmkit_journal_stats st;
	char want[64];
	cr_assert_eq(shmkit_journal_open(&j, path, NULL), 0);
	cr_assert_eq(shmkit_journal_stats(j, &st), 0);
	shmkit_journal_close(j);
	cr_assert_neq(st.id, 0);
	snprintf(want, sizeof(want), "id         %016" PRIx64 "\n", st.id);
	cr_assert(strstr(out, want) && !strstr(out, "copy of"), "%s", out);
	cr_assert_eq(tool(NULL, "info", "--json", path, NULL), 0);
	cr_assert(strstr(out, "\"kind\":\"journal\"") && strstr(out, "\"records\":3") &&
	          strstr(out, "\"writer_alive\":false"), "%s", out);
	snprintf(want, sizeof(want), "\"id\":\"%016" PRIx64 "\",\"copy_of\":\"%016x\"", st.id, 0);
	cr_assert(strstr(out, want), "%s", out);

	/* With a live writer in another process. */
	const char *argv[] = { "helper_journal", "hold", path, NULL };
	int fd = -1;
	char said[64] = "";
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(pid, 0);
	ssize_t n = read(fd, said, sizeof(said) - 1);
	int rc = n > 0 ? tool(NULL, "info", path, NULL) : -1;
	char expect[64];
	snprintf(expect, sizeof(expect), "writer     pid %d (alive)", (int)pid);
	bool shown = strstr(out, expect) != NULL;
	int busy = n > 0 ? tool(NULL, "journal", "append", path, "x", NULL) : -1;
	kill(pid, SIGKILL);
	sk_test_finish(pid, fd, said + (n > 0 ? n : 0), sizeof(said) - (size_t)(n > 0 ? n : 0));
	cr_assert_eq(rc, 0);
	cr_assert(shown, "%s", out);
	cr_assert_eq(busy, 1, "a second writer is refused");
	cr_assert_eq(tool(NULL, "journal", "append", path, "d", NULL), 0, "admitted after the kill");
}

Test(journal_tool, usage_and_failures)
{
	const char *path = jt_new_path();
	cr_assert_eq(tool(NULL, "journal", NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "frobnicate", path, NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "append", NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "append", "--sync", "sometimes", path, NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "tail", "-n", "x", path, NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "dump", "--follow", path, NULL), 2);
	cr_assert_eq(tool(NULL, "journal", "tail", path, NULL), 1, "no such journal");
	cr_assert_eq(tool(NULL, "journal", "verify", path, NULL), 1);
	cr_assert_eq(tool(NULL, "journal", "--help", NULL), 0);
	cr_assert(strstr(out, "usage: shmkit journal append"), "%s", out);
	cr_assert_eq(tool(NULL, "journal", "append", "--max-record", "100", path, NULL), 0);
	char big[300];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(tool(NULL, "journal", "append", path, big, NULL), 1, "larger than max_record");
}

/* A journal `append` makes and cannot append anything to (a record over
 * --max-record) is removed again: before, an empty journal with a
 * preallocated data file stayed.  One that existed is kept. */
Test(journal_tool, failed_first_append_leaves_nothing)
{
	const char *path = jt_new_path();
	char big[64];

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(tool(NULL, "journal", "append", "--max-record", "16", path, big, NULL), 1);
	cr_expect_neq(access(path, F_OK), 0, "%s was left behind", path);
	cr_assert_eq(tool(NULL, "journal", "append", "--max-record", "16", path, "ok", NULL), 0);
	cr_assert_eq(tool(NULL, "journal", "append", path, big, NULL), 1);
	cr_expect_eq(tool(NULL, "journal", "tail", path, NULL), 0, "the journal that existed is kept");
	cr_expect(strstr(out, "ok"), "%s", out);
}

/* `journal rm` (shmkit_journal_remove): not while a writer lives, never
 * through a link, not a directory that is no journal; other files keep
 * the directory (and a later rm of the then empty directory works). */
Test(journal_tool, rm_removes_a_journal_and_only_that)
{
	const char *path = jt_new_path();
	char link[4200], other[4200];
	shmkit_journal *w;
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE };

	cr_assert_eq(tool(NULL, "journal", "append", path, "a", "b", NULL), 0);
	cr_assert_eq(shmkit_journal_open(&w, path, &wo), 0);
	cr_expect_eq(tool(NULL, "journal", "rm", path, NULL), 1);
	cr_expect_eq(access(path, F_OK), 0, "removed under a live writer");
	cr_expect_eq(shmkit_journal_remove(path), -EBUSY);
	shmkit_journal_close(w);
	snprintf(link, sizeof(link), "%s-link", path);
	cr_assert_eq(symlink(path, link), 0);
	cr_expect_eq(shmkit_journal_remove(link), -ELOOP);
	unlink(link);
	cr_expect_eq(shmkit_journal_remove("/tmp"), -EPROTO);
	snprintf(other, sizeof(other), "%s/notes.txt", path);
	int fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(shmkit_journal_remove(path), -ENOTEMPTY);
	cr_expect_eq(access(other, F_OK), 0, "another file was removed");
	unlink(other);
	cr_expect_eq(tool(NULL, "journal", "rm", path, NULL), 0);
	cr_expect_neq(access(path, F_OK), 0);
	cr_expect_eq(tool(NULL, "journal", "rm", path, NULL), 1, "no such journal");
}

/* `shmkit rm PATH` removes a journal as `journal rm` does (not while a
 * writer lives). */
Test(journal_tool, rm_takes_a_journal_path)
{
	const char *path = jt_new_path();
	shmkit_journal *w;
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE };

	cr_assert_eq(tool(NULL, "journal", "append", path, "a", NULL), 0);
	cr_assert_eq(shmkit_journal_open(&w, path, &wo), 0);
	cr_expect_eq(tool(NULL, "rm", path, NULL), 1, "a live writer");
	shmkit_journal_close(w);
	cr_expect_eq(tool(NULL, "rm", path, NULL), 0);
	cr_expect_neq(access(path, F_OK), 0, "%s is still there", path);
}
