/*
 * test_man.c - the manual cannot drift from the program:
 *   - shmkit(1): for every subcommand `shmkit --help` lists, the options
 *     its `--help` shows (usage lines and option lines) are exactly those
 *     of its synopsis line in man/shmkit.1, the line after the marker
 *     `.\" options: SUB` (`journal append` etc. for the journal's);
 *   - section 3: every function declared in include/shmkit.h is named in
 *     the NAME line of exactly one page man/shmkit_AREA.3 and shown there
 *     with its parameters ("name("), and every name those lines list is in
 *     the header;
 *   - scripts/man-links.sh makes a page per function that redirects to its
 *     area (.so man3/shmkit_AREA.3), and man(1) shows it.
 * The comparison is also run on a copy of the man page with one option
 * taken out, which it must reject: the check can fail.
 * Subcommands whose --help says "not implemented", and those a comment
 * `.\" undocumented: SUB...` in shmkit.1 names (sections the lead writes),
 * are skipped with a warning.
 * The sources are found by going up from this binary's directory to the
 * first one holding man/shmkit.1 and include/shmkit.h.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib_test.h"

static char tmpdir[PATH_MAX];

static void cleanup(void)
{
	if (tmpdir[0]) {
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "test_man: cannot remove %s\n", tmpdir);
	}
}

TestSuite(man, .timeout = 60, .fini = cleanup);

/* ---- small string sets --------------------------------------------------- */

#define MAXW 64

struct set {
	char w[MAXW][40];
	int n;
};

static bool set_has(const struct set *s, const char *w)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->w[i], w))
			return true;
	return false;
}

static void set_add(struct set *s, const char *w, size_t len)
{
	char buf[40];
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, w, len);
	buf[len] = '\0';
	if (!strcmp(buf, "-h") || !strcmp(buf, "--help") || set_has(s, buf) || s->n == MAXW)
		return;
	strcpy(s->w[s->n++], buf);
}

/* Every option token (-x, --long-name) of text, not "--" alone. */
static void options_of(const char *text, struct set *s)
{
	for (const char *p = text; *p; p++) {
		if (*p != '-' || (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-')))
			continue;
		const char *q = p + (p[1] == '-' ? 2 : 1);
		if (!isalpha((unsigned char)*q))
			continue;
		while (isalnum((unsigned char)*q) || *q == '-')
			q++;
		set_add(s, p, (size_t)(q - p));
		p = q - 1;
	}
}

/* ---- the sources and the tool ------------------------------------------- */

static char root[PATH_MAX];

static const char *src_root(void)
{
	char probe[PATH_MAX + 32];

	if (root[0])
		return root;
	snprintf(root, sizeof(root), "%s", sk_test_dir());
	for (int up = 0; up < 8; up++) {
		snprintf(probe, sizeof(probe), "%s/man/shmkit.1", root);
		if (!access(probe, R_OK)) {
			snprintf(probe, sizeof(probe), "%s/include/shmkit.h", root);
			if (!access(probe, R_OK))
				return root;
		}
		char *slash = strrchr(root, '/');
		cr_assert(slash && slash != root, "no man/shmkit.1 above %s", sk_test_dir());
		*slash = '\0';
	}
	cr_assert_fail("no man/shmkit.1 above %s", sk_test_dir());
	return NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	cr_assert(f, "cannot read %s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t cap = 0, len = 0, n;
	char chunk[4096];
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			buf = realloc(buf, cap);
			cr_assert(buf);
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	fclose(f);
	if (!buf)
		buf = calloc(1, 1);
	buf[len] = '\0';
	return buf;
}

static char *src_file(const char *rel)
{
	char path[PATH_MAX + 64];
	int w = snprintf(path, sizeof(path), "%s/%s", src_root(), rel);
	cr_assert(w > 0 && (size_t)w < sizeof(path));
	return slurp(path);
}

/* stdout of `shmkit ARGS...` (BUILD/shmkit beside the tests directory). */
static char *tool_out(const char *a1, const char *a2)
{
	static char buf[65536];
	char tool[PATH_MAX];
	snprintf(tool, sizeof(tool), "%s/../shmkit", sk_test_dir());
	const char *argv[] = { tool, a1, a2, NULL };
	int fd;
	pid_t pid = sk_test_spawn(argv, -1, &fd);
	cr_assert_gt(pid, 0, "cannot run %s", tool);
	int rc = sk_test_finish(pid, fd, buf, sizeof(buf));
	cr_assert_eq(rc, 0, "shmkit %s %s: exit %d", a1, a2 ? a2 : "", rc);
	return strdup(buf);
}

/* ---- --help ----------------------------------------------------------------- */

/* The subcommands `shmkit --help` lists (two spaces, a name, spaces). */
static int subcommands(char names[][16], int max)
{
	char *help = tool_out("--help", NULL), *p = strstr(help, "Subcommands:");
	int n = 0;
	cr_assert(p, "no Subcommands: in shmkit --help");
	for (p = strchr(p, '\n'); p && p[1] == ' ' && p[2] == ' ' && n < max; p = strchr(p + 1, '\n')) {
		char *w = p + 3;
		size_t len = strspn(w, "abcdefghijklmnopqrstuvwxyz");
		if (!len || len >= 16)
			break;
		memcpy(names[n], w, len);
		names[n++][len] = '\0';
	}
	free(help);
	return n;
}

/* One subcommand's options from its help: the usage block (up to the
 * first blank line) and the lines that start with a two-space indent
 * and an option.  A help with several "shmkit SUB WORD" usage entries
 * (journal) gives each WORD its own set from its entry: keys "SUB WORD". */
struct helpset {
	char key[32];
	struct set opts;
};

static int help_sets(const char *sub, const char *help, struct helpset *hs, int max)
{
	int n = 0;
	char prefix[40];
	const char *p = help;
	snprintf(prefix, sizeof(prefix), "shmkit %s ", sub);
	struct set lines = { .n = 0 };
	bool in_usage = true;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), p);
		if (!line[0])
			in_usage = false;
		if (in_usage) {
			char *at = strstr(line, prefix);
			char word[24] = "";
			if (at && sscanf(at + strlen(prefix), "%23[a-z]", word) == 1 &&
			    strcmp(word, "NAME") && (at[strlen(prefix)] >= 'a')) {
				cr_assert_lt(n, max);
				snprintf(hs[n].key, sizeof(hs[n].key), "%s %s", sub, word);
				hs[n].opts.n = 0;
				n++;
			}
			/* a usage line of SUB itself, or its continuation */
			if (n)
				options_of(line, &hs[n - 1].opts);
			else
				options_of(line, &lines);
		} else if ((line[0] == ' ' && line[1] == ' ' && line[2] == '-') ||
		           (line[0] == ' ' && line[1] == ' ' && line[2] == ' ' && line[3] == '-' &&
		            !n)) {
			/* "  -n, --count N  text": the options before the text */
			char *text = strstr(line + 2, "  ");
			if (text)
				*text = '\0';
			options_of(line, &lines);
		}
		p = eol ? eol + 1 : p + len;
	}
	if (!n) {
		snprintf(hs[0].key, sizeof(hs[0].key), "%s", sub);
		hs[0].opts = lines;
		return 1;
	}
	/* Grouped: each option of the option lines belongs to some entry. */
	for (int i = 0; i < lines.n; i++) {
		bool found = false;
		for (int k = 0; k < n && !found; k++)
			found = set_has(&hs[k].opts, lines.w[i]);
		cr_expect(found, "shmkit %s --help: option %s is in no usage line", sub, lines.w[i]);
	}
	return n;
}

/* ---- man/shmkit.1 ---------------------------------------------------------- */

/* Plain text of a roff line: fonts and quotes gone, \- as -. */
static void roff_plain(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p && o + 1 < len; p++) {
		if (p[0] == '\\' && p[1] == 'f' && p[2]) {
			p += 2;
			continue;
		}
		if (p[0] == '\\' && p[1] == '-') {
			out[o++] = '-';
			p++;
			continue;
		}
		if (*p == '"')
			continue;
		out[o++] = *p;
	}
	out[o] = '\0';
}

/* The options of the synopsis line of KEY in the man text: the first
 * line after `.\" options: KEY` that is not a request (.TP) or comment.
 * False if there is no marker. */
static bool man_options(const char *man, const char *key, struct set *s)
{
	char marker[64];
	snprintf(marker, sizeof(marker), ".\\\" options: %s\n", key);
	const char *p = strstr(man, marker);
	if (!p)
		return false;
	p += strlen(marker);
	while (!strncmp(p, ".TP", 3) || !strncmp(p, ".\\\"", 3))
		p = strchr(p, '\n') + 1;
	char line[1024], plain[1024];
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
	roff_plain(line, plain, sizeof(plain));
	s->n = 0;
	options_of(plain, s);
	return true;
}

/* Names the comment `.\" undocumented: A B ...` lists. */
static bool man_waived(const char *man, const char *sub)
{
	const char *p = strstr(man, ".\\\" undocumented:");
	if (!p)
		return false;
	char line[256], word[40];
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p + 17);
	for (char *q = line; sscanf(q, " %39s", word) == 1; q = strstr(q, word) + strlen(word))
		if (!strcmp(word, sub))
			return true;
	return false;
}

/* Compare one help set with the man page; the differences are reported
 * through report (cr_expect, or counted), and their number returned. */
static int compare(const char *man, const struct helpset *h, bool quiet)
{
	struct set m;
	int bad = 0;

	if (!man_options(man, h->key, &m)) {
		if (!quiet)
			cr_expect_fail("man/shmkit.1 has no `.\\\" options: %s` synopsis", h->key);
		return 1;
	}
	for (int i = 0; i < h->opts.n; i++)
		if (!set_has(&m, h->opts.w[i])) {
			bad++;
			if (!quiet)
				cr_expect_fail("shmkit %s --help has %s; man/shmkit.1 does not", h->key,
				               h->opts.w[i]);
		}
	for (int i = 0; i < m.n; i++)
		if (!set_has(&h->opts, m.w[i])) {
			bad++;
			if (!quiet)
				cr_expect_fail("man/shmkit.1 has %s for %s; its --help does not", m.w[i],
				               h->key);
		}
	return bad;
}

Test(man, shmkit_1_lists_every_option_of_every_subcommand)
{
	char names[64][16];
	int n = subcommands(names, 64), checked = 0;
	char *man = src_file("man/shmkit.1");
	struct helpset hs[16];

	cr_assert_geq(n, 15, "shmkit --help lists %d subcommands", n);
	for (int i = 0; i < n; i++) {
		char *help = tool_out(names[i], "--help");
		if (strstr(help, "not implemented") || man_waived(man, names[i])) {
			cr_log_warn("shmkit %s: not in man/shmkit.1 yet (%s)", names[i],
			            strstr(help, "not implemented") ? "not implemented" :
			            "listed as undocumented");
			free(help);
			continue;
		}
		int k = help_sets(names[i], help, hs, 16);
		for (int j = 0; j < k; j++, checked++)
			compare(man, &hs[j], false);
		free(help);
	}
	cr_expect_geq(checked, 20, "only %d synopses compared", checked);
	free(man);
}

/* The check fails when one option is taken out of the man page: the
 * first option of the chan synopsis, removed from a copy. */
Test(man, removing_an_option_from_the_man_page_is_caught)
{
	char *man = src_file("man/shmkit.1");
	struct helpset hs[16];
	char *help = tool_out("chan", "--help");
	int k = help_sets("chan", help, hs, 16);

	cr_assert_eq(k, 1);
	cr_assert_eq(compare(man, &hs[0], true), 0, "chan agrees to begin with");
	char *at = strstr(man, ".\\\" options: chan\n");
	cr_assert(at);
	char *opt = strstr(at, "\\-\\-capacity");
	cr_assert(opt && opt < strstr(at, "\n.\\\" options: send"));
	memmove(opt, opt + strlen("\\-\\-capacity"), strlen(opt + strlen("\\-\\-capacity")) + 1);
	cr_expect_eq(compare(man, &hs[0], true), 1, "--capacity taken out is not caught");
	free(help);
	free(man);
}

/* ---- section 3 ------------------------------------------------------------ */

/* Functions declared in the header: a line that starts with a type at
 * column 0 and holds "shmkit_NAME(". */
static int header_functions(char names[][48], int max)
{
	char *h = src_file("include/shmkit.h");
	int n = 0;
	for (char *line = h; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (!isalpha((unsigned char)*line) || !strncmp(line, "typedef", 7))
			continue;
		char *eol = strchr(line, '\n');
		char *f = strstr(line, "shmkit_");
		if (!f || (eol && f > eol))
			continue;
		size_t len = strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (f[len] != '(' || len >= 48)
			continue;
		cr_assert_lt(n, max);
		memcpy(names[n], f, len);
		names[n++][len] = '\0';
	}
	free(h);
	return n;
}

struct page {
	char file[64];
	char *text;
	char names[4096]; /* the NAME line */
};

static int area_pages(struct page *pg, int max)
{
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/man", src_root());
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	cr_assert(d);
	while ((e = readdir(d)) && n < max) {
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, "shmkit_", 7) || len < 3 || strcmp(e->d_name + len - 2, ".3"))
			continue;
		char rel[128];
		snprintf(pg[n].file, sizeof(pg[n].file), "%s", e->d_name);
		snprintf(rel, sizeof(rel), "man/%s", e->d_name);
		pg[n].text = src_file(rel);
		char *nm = strstr(pg[n].text, "\n.SH NAME\n");
		cr_assert(nm, "%s has no NAME section", e->d_name);
		nm += strlen("\n.SH NAME\n");
		char *dash = strstr(nm, "\\-");
		cr_assert(dash, "%s: NAME has no \\-", e->d_name);
		snprintf(pg[n].names, sizeof(pg[n].names), "%.*s", (int)(dash - nm), nm);
		n++;
	}
	closedir(d);
	return n;
}

/* Is name a whole word of the NAME line's list? */
static bool listed(const char *list, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
		    !(isalnum((unsigned char)p[len]) || p[len] == '_'))
			return true;
	return false;
}

Test(man, section_3_covers_every_public_function)
{
	static char fn[256][48];
	struct page pg[16];
	int nf = header_functions(fn, 256), np = area_pages(pg, 16);
	static const char *const areas[] = { "shmkit_seg.3", "shmkit_chan.3", "shmkit_bus.3",
	                                     "shmkit_journal.3", "shmkit_rpc.3", "shmkit_sync.3" };

	cr_assert_geq(nf, 80, "only %d functions found in the header", nf);
	for (size_t a = 0; a < sizeof(areas) / sizeof(*areas); a++) {
		bool found = false;
		for (int i = 0; i < np; i++)
			found |= !strcmp(pg[i].file, areas[a]);
		cr_expect(found, "man/%s is missing", areas[a]);
	}
	for (int f = 0; f < nf; f++) {
		int where = -1, count = 0;
		char call[64];
		for (int i = 0; i < np; i++)
			if (listed(pg[i].names, fn[f])) {
				where = i;
				count++;
			}
		cr_expect_eq(count, 1, "%s is in the NAME line of %d section-3 pages", fn[f], count);
		if (where < 0)
			continue;
		snprintf(call, sizeof(call), "%s(", fn[f]);
		char bcall[72];
		snprintf(bcall, sizeof(bcall), "%s\\fP(", fn[f]);
		cr_expect(strstr(pg[where].text, call) || strstr(pg[where].text, bcall),
		          "man/%s does not show %s(...)", pg[where].file, fn[f]);
	}
	/* No page names a function the header does not declare. */
	for (int i = 0; i < np; i++) {
		char list[4096], *save = NULL;
		snprintf(list, sizeof(list), "%s", pg[i].names);
		for (char *w = strtok_r(list, " ,\n", &save); w; w = strtok_r(NULL, " ,\n", &save)) {
			bool known = false;
			for (int f = 0; f < nf && !known; f++)
				known = !strcmp(w, fn[f]);
			cr_expect(known || !strcmp(w, pg[i].file) ||
			          !strncmp(w, pg[i].file, strlen(pg[i].file) - 2),
			          "man/%s names %s, which include/shmkit.h does not declare", pg[i].file,
			          w);
		}
		free(pg[i].text);
	}
}

/* scripts/man-links.sh DIR PAGES: a page per function, .so to its area;
 * man(1) then shows `man 3 shmkit_chan_send`. */
Test(man, install_links_reach_each_function)
{
	char base[64], cmd[4 * PATH_MAX], path[PATH_MAX + 64];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s", sk_test_base(base, sizeof(base), "man"));
	int w = snprintf(cmd, sizeof(cmd), "mkdir -p '%s/man3' && cp '%s'/man/shmkit_*.3 '%s/man3/' "
	                 "&& sh '%s/scripts/man-links.sh' '%s/man3' '%s'/man/shmkit_*.3",
	                 tmpdir, src_root(), tmpdir, src_root(), tmpdir, src_root());
	cr_assert(w > 0 && (size_t)w < sizeof(cmd));
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	static char fn[256][48];
	int nf = header_functions(fn, 256);
	for (int f = 0; f < nf; f++) {
		w = snprintf(path, sizeof(path), "%s/man3/%s.3", tmpdir, fn[f]);
		cr_assert(w > 0 && (size_t)w < sizeof(path));
		FILE *fp = fopen(path, "re");
		cr_expect(fp, "no %s", path);
		if (!fp)
			continue;
		char line[128] = "";
		cr_expect(fgets(line, sizeof(line), fp), "%s is empty", path);
		fclose(fp);
		cr_expect(!strncmp(line, ".so man3/shmkit_", 16), "%s: %s", path, line);
	}
	if (access("/usr/bin/man", X_OK))
		cr_skip_test("man(1) is not installed: links checked, not rendered");
	w = snprintf(cmd, sizeof(cmd), "MANWIDTH=80 MANPAGER=cat PAGER=cat man -M '%s' 3 "
	             "shmkit_chan_send 2>/dev/null | grep -q 'shmkit_chan_send'", tmpdir);
	cr_assert(w > 0 && (size_t)w < sizeof(cmd));
	cr_expect_eq(system(cmd), 0, "man 3 shmkit_chan_send does not show it");
}
