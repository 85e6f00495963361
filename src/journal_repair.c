/*
 * journal_repair.c - verify and repair: every data file checked, the
 * first damage and the seqs lost reported, and with repair every intact
 * record kept (holes, hole files, headers and journal.meta rebuilt).  The
 * format, holes and invariants are in journal.c's file-top essay; the
 * writer's own recovery on open in journal_write.c's.
 *
 * ---- Verify and repair ----------------------------------------------------
 *
 * shmkit_journal_verify() checks every file and reports the first damage,
 * the intact records and exactly the seqs repair would drop, without
 * writing.  shmkit_journal_repair() takes the writer lock and keeps every
 * intact record: damage followed by intact records in a file becomes a
 * hole for the seqs between; a file's tail after its last valid record is
 * cut; seqs in no file get a hole file; a damaged header is written anew
 * (settings from journal.meta, created_ns from the first intact record)
 * if anything in the file is intact, the file removed if nothing is (and
 * a file overlapping the one before it is removed).  The report lists the
 * dropped seqs; bytes that name none (a torn tail, a file of garbage)
 * count as damaged bytes.  Then roll_gen and the event count move, so
 * readers look again.  A reader may see a hole being written as "nothing
 * yet" for a moment (its commit word is cleared first, set last).
 *
 * A damaged journal.meta (checksum, size; or missing beside data files)
 * makes the journal unopenable (-EBADMSG).  Repair rebuilds it: its fixed
 * part is in every data file header too, under that header's own
 * checksum, so it is taken from the oldest sound one (files of two
 * journals are refused, not guessed between).  A damaged meta is locked
 * first (the lock works whatever the file holds), then rewritten in place
 * and fsynced, its live state zeroed; a missing one is made like a new
 * journal's.  Then the files are repaired as above.
 */
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

/* ---- verify / repair -------------------------------------------------------- */

struct check {
	struct shmkit_journal_report *rep;
	bool fix, damaged;
	bool removed;             /* repair removed a file: sync the directory */
	uint64_t expected;        /* first seq the next file must have; 0: any */
	int64_t last_time;        /* stamp of the last valid record so far */
};

static void check_damage(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_damage(struct check *c, const char *fmt, ...)
{
	if (c->damaged)
		return; /* report the first damage only */
	c->damaged = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->rep->where, sizeof(c->rep->where), fmt, ap);
	va_end(ap);
}

/* The seqs [lo, hi) are lost to damage: count them, and list them in
 * rep->dropped while there is room (then " ..."). */
static void check_lost(struct check *c, uint64_t lo, uint64_t hi)
{
	struct shmkit_journal_report *r = c->rep;
	size_t used = strlen(r->dropped);
	char run[48];

	r->dropped_records += hi - lo;
	if (!r->dropped_first_seq)
		r->dropped_first_seq = lo;
	r->dropped_last_seq = hi - 1;
	r->dropped_ranges++;
	if (hi - lo == 1)
		snprintf(run, sizeof(run), "%s%llu", used ? " " : "", (unsigned long long)lo);
	else
		snprintf(run, sizeof(run), "%s%llu-%llu", used ? " " : "", (unsigned long long)lo,
		         (unsigned long long)hi - 1);
	if (used >= 4 && !strcmp(r->dropped + used - 4, " ..."))
		return;
	if (used + strlen(run) + 4 < sizeof(r->dropped))
		memcpy(r->dropped + used, run, strlen(run) + 1);
	else
		snprintf(r->dropped + used, sizeof(r->dropped) - used, " ...");
}

/* A file removed whole (repair): its header is damaged and nothing in it
 * is intact, or it overlaps the sequence.  Its bytes count as damaged. */
static int check_drop(struct shmkit_journal *j, struct check *c, uint64_t seq)
{
	char name[SKJ_NAME_LEN + 1];
	struct stat st;

	skj_file_name(name, seq);
	if (!fstatat(j->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		c->rep->damaged_bytes += (uint64_t)st.st_size;
	if (!c->fix)
		return 0;
	if (unlinkat(j->dirfd, name, 0) && errno != ENOENT)
		return sk_fail(sk_neg_errno(), "cannot remove %s/%s", j->path, name);
	c->removed = true;
	return 0;
}

/* The seqs [from, to) are in no file.  Repair marks them lost with a file
 * named from holding one hole, so that the files after it stay readable. */
static int check_gap(struct shmkit_journal *j, struct check *c, uint64_t from, uint64_t to)
{
	struct skj_file *f;

	check_damage(c, "%s: sequence gap, file starts at %llu, expected %llu", j->path,
	             (unsigned long long)to, (unsigned long long)from);
	check_lost(c, from, to);
	if (!c->fix)
		return 0;
	int err = skj_file_create(j, from, c->last_time, to - from, &f);
	skj_file_close(f);
	return err;
}

/* The most one hole record spans: its header and the largest length. */
#define HOLE_SPAN_MAX (SKJ_RHDR_SIZE + (SKJ_LEN_MASK & ~(size_t)7))

/* The span of the first of the holes that cover n bytes: all of them if
 * one length field holds them, else as much as one does while leaving at
 * least a record header's worth for the next. */
static size_t hole_span(size_t n)
{
	if (n <= HOLE_SPAN_MAX)
		return n;
	return n - HOLE_SPAN_MAX >= SKJ_RHDR_SIZE ? HOLE_SPAN_MAX : HOLE_SPAN_MAX - SKJ_RHDR_SIZE;
}

/* Mark [off, end) of f (8-aligned, at least a record header) as a hole
 * standing for count seqs from seq: one hole record, or, past what a
 * length field holds, fillers after it standing for no seq.  The first is
 * committed last, so that no reader reaches a filler before it. */
static void hole_mark(struct skj_file *f, size_t off, size_t end, uint64_t seq, uint64_t count)
{
	size_t first = hole_span(end - off);

	/* Bounded: each filler covers at least a record header of the span. */
	for (size_t o = off + first; o < end;) {
		size_t span = hole_span(end - o);
		skj_hole_put(f, o, span, seq + count, 0);
		o += span;
	}
	skj_hole_put(f, off, first, seq, count);
}

/* Repair: [off, end) of f, damaged, becomes a hole for count seqs from seq. */
static int check_hole(struct skj_file *f, size_t off, size_t end, uint64_t seq, uint64_t count)
{
	int err = skj_file_allow_holes(f);

	if (err)
		return err;
	hole_mark(f, off, end, seq, count);
	err = shmkit_seg_sync(&f->seg, off, end - off, 0);
	return err ? sk_fail(err, "sync of %s failed", f->seg.name.path) : 0;
}

/* Count what a walk found valid. */
static void check_count(struct check *c, const struct skj_scan *sc)
{
	c->rep->valid_records += sc->records;
	c->rep->holes += (uint32_t)sc->holes;
	c->rep->hole_records += sc->hole_seqs;
	if (sc->records) {
		c->rep->last_valid_seq = sc->last_seq;
		c->last_time = sc->last_time;
	}
	c->expected = sc->next_seq;
}

/* What follows the last valid record of f is not a record: report it and,
 * with fix, cut it (zeroed; a truncated file extended).  In the newest
 * file a committed record whose bytes are damaged there (its header
 * names the seq, its checksum fails) is counted as dropped; elsewhere the
 * seqs after the last valid record are the gap the next file shows. */
static int check_tail(struct skj_file *f, struct check *c, const struct skj_scan *sc,
                      bool newest, size_t first, size_t last_end)
{
	struct skj_rec_view v;
	bool truncated = f->seg.map_size < f->file_size;

	if (truncated)
		check_damage(c, "%s: truncated to %zu bytes of %zu", f->seg.name.path,
		             f->seg.map_size, f->file_size);
	c->rep->damaged_bytes += last_end - first;
	if (newest && skj_rec_parse(f, sc->end, sc->next_seq, &v, true) == SKJ_RB_CRC)
		check_lost(c, sc->next_seq, sc->next_seq + 1);
	if (!c->fix || (last_end == first && !truncated))
		return 0;
	int64_t cut = skj_file_cut_range(f, first, last_end);
	return cut < 0 ? (int)cut : 0;
}

/* After a walk of f stopped (sc): the end, or damage.  Damage followed by
 * intact records becomes a hole for the seqs in between (repair), and the
 * walk goes on after it: 1, *off and *seq set.  Otherwise what is left
 * is a tail: 0 (check_tail), or < 0 error. */
static int check_after(struct skj_file *f, struct check *c, const struct skj_scan *sc,
                       bool newest, size_t *off, uint64_t *seq)
{
	size_t first, last_end, at;
	struct skj_rec_view v;

	skj_nonzero_extent(f, sc->end, &first, &last_end);
	if (sc->stop < 0)
		check_damage(c, "%s", shmkit_errdetail());
	else if (last_end > first)
		check_damage(c, "%s+%zu: %zu non-zero bytes after the last valid record (seq %llu)",
		             f->seg.name.path, sc->end, last_end - first,
		             (unsigned long long)sc->next_seq - 1);
	if (last_end == first || !skj_rec_resync(f, sc->end, sc->next_seq, last_end, &at, &v))
		return check_tail(f, c, sc, newest, first, last_end);
	c->rep->damaged_bytes += at - sc->end;
	if (v.seq > sc->next_seq)
		check_lost(c, sc->next_seq, v.seq);
	int err = c->fix ? check_hole(f, sc->end, at, sc->next_seq, v.seq - sc->next_seq) : 0;
	*off = at;
	*seq = v.seq;
	return err ? err : 1;
}

/* Check (and with fix, repair) f from its first record; see check_after.
 * newest: f is the journal's last file. */
static int check_file(struct skj_file *f, struct check *c, bool newest)
{
	size_t off = SKJ_FIRST_OFF;
	uint64_t seq = f->first_seq;
	struct skj_scan sc;
	int r;

	/* Bounded: each round resumes at an intact record further on. */
	do {
		skj_file_scan_from(f, off, seq, &sc);
		check_count(c, &sc);
	} while ((r = check_after(f, c, &sc, newest, &off, &seq)) == 1);
	return r;
}

/* Repair: write f's damaged header anew, named for seq, the settings from
 * journal.meta; created_ns (I4) from the first intact thing in it. */
static int header_rebuild(struct shmkit_journal *j, struct skj_file *f, uint64_t seq,
                          int64_t created_ns)
{
	skj_fhdr_fill(f->seg.map, j, seq, created_ns, SKJ_VERSION);
	int err = shmkit_seg_sync(&f->seg, 0, SKJ_FHDR_SIZE, 0);
	if (err)
		return sk_fail(err, "sync of %s failed", f->seg.name.path);
	return skj_file_check(f, j, seq);
}

/* The file for seq has a damaged header (skj_file_open said -EBADMSG).  Its
 * records carry checksums of their own: if one is intact, the file is
 * checked on with the journal's settings for its header's (verify), or
 * after repair rebuilt the header: *out.  With nothing intact it is
 * garbage, dropped whole (*out NULL); if files follow, its seqs are the
 * gap the next one shows. */
static int check_bad_header(struct shmkit_journal *j, struct check *c, uint64_t seq,
                            struct skj_file **out)
{
	struct skj_file *f;
	struct skj_rec_view v;
	size_t at;

	check_damage(c, "%s", shmkit_errdetail());
	*out = NULL;
	int err = skj_file_open_assumed(j, seq, c->fix, &f);
	if (err)
		return err == -ENOENT ? 0 : err;
	if (!skj_rec_resync(f, SKJ_FIRST_OFF, seq, f->seg.map_size, &at, &v)) {
		skj_file_close(f);
		return check_drop(j, c, seq);
	}
	c->rep->damaged_bytes += SKJ_FHDR_SIZE;
	if (c->fix && (err = header_rebuild(j, f, seq, v.hole ? c->last_time : v.time_ns))) {
		skj_file_close(f);
		return err;
	}
	*out = f;
	return 0;
}

/* Check (repair) the file for seq, which should start at c->expected. */
static int check_one(struct shmkit_journal *j, struct check *c, uint64_t seq, bool newest)
{
	struct skj_file *f = NULL;
	int err = 0;

	if (c->expected && seq < c->expected) {
		check_damage(c, "%s: file %llu overlaps the one before it (ends before %llu)", j->path,
		             (unsigned long long)seq, (unsigned long long)c->expected);
		return check_drop(j, c, seq);
	}
	if (c->expected && seq > c->expected && (err = check_gap(j, c, c->expected, seq)))
		return err;
	err = skj_file_open(j, seq, c->fix, &f);
	if (err == -ENOENT) {
		c->expected = 0; /* removed by retention meanwhile: the oldest goes on */
		return 0;
	}
	if (err == -EBADMSG)
		err = check_bad_header(j, c, seq, &f);
	if (!err && f)
		err = check_file(f, c, newest);
	skj_file_close(f);
	return err;
}

static int check_files(struct shmkit_journal *j, struct check *c)
{
	uint64_t *seqs;
	size_t n;
	int err = skj_list_files(j->dirfd, &seqs, &n);

	for (size_t i = 0; !err && i < n; i++)
		err = check_one(j, c, seqs[i], i + 1 == n);
	free(seqs);
	if (!err && c->removed)
		err = skj_sync_dir(j->dirfd);
	return err;
}

/* ---- rebuilding journal.meta ------------------------------------------------ */

/* The header to rebuild journal.meta (what = "damaged" or "missing") with,
 * from the data files' headers: each has its own checksum and carries
 * every setting of the meta's fixed part.  Those of the oldest sound one
 * are taken.  Every sound header must name the same journal: with files
 * of two journals nothing tells which one the meta belonged to, so that
 * is refused (-EBADMSG), not guessed.  Damaged headers are skipped
 * (check_files() drops those files after); a sound one of another build
 * is -EPROTO.  next_seq_hint is the newest sound file's first seq, so a
 * writer that finds no file left after repair does not count from 1
 * again.  copy_of (shmkit_journal_set_copy_of) is the newest sound
 * header's that has one: files made before it was set have none.  *src
 * gets the oldest's name, j->mode its permissions (for a new
 * journal.meta). */
static int meta_recover(struct shmkit_journal *j, const uint64_t *seqs, size_t n,
                        const char *what, struct skj_meta *h, char src[SKJ_NAME_LEN + 1])
{
	struct skj_fhdr oldest = { 0 }, fh;
	uint64_t newest = 0, copy_of = 0;

	for (size_t i = 0; i < n; i++) {
		struct skj_file *f;
		struct stat st;
		int err = skj_file_map_named(j, seqs[i], false, &f);
		if (!err && !(err = skj_file_header(f, seqs[i], &fh)) && fstat(f->seg.fd, &st))
			err = sk_neg_errno();
		skj_file_close(f);
		if (err == -EBADMSG || err == -ENOENT)
			continue; /* damaged header, or removed meanwhile */
		if (err)
			return err;
		if (!newest) {
			oldest = fh;
			skj_file_name(src, seqs[i]);
			j->mode = st.st_mode & 0777;
		} else if (fh.journal_id != oldest.journal_id) {
			char other[SKJ_NAME_LEN + 1];
			skj_file_name(other, seqs[i]);
			return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " %s and data files of two journals "
			               "(%s, %s): remove the foreign ones and repair again",
			               j->path, what, src, other);
		}
		newest = seqs[i];
		if (skj_copy_join(fh.copy_lo, fh.copy_hi))
			copy_of = skj_copy_join(fh.copy_lo, fh.copy_hi);
	}
	if (!newest)
		return sk_fail(-EBADMSG, "%s/" SKJ_META_NAME " %s and no data file to rebuild it from",
		               j->path, what);
	skj_meta_fill(h, oldest.journal_id, copy_of, oldest.file_size, oldest.max_record,
	              oldest.created_ns);
	h->next_seq_hint = newest;
	return 0;
}

/* Rewrite a damaged journal.meta in place, under the writer lock taken on
 * it: in place rather than by rename so the lock, and any descriptor open
 * on the file, stay on the same inode.  A crash midway leaves it damaged,
 * and repair can run again.  The live part is zeroed: no writer uses it
 * (none opens a damaged meta, and we hold the lock). */
static int meta_rewrite(struct shmkit_journal *j, const struct skj_meta *h)
{
	sk_fd_unmap(&j->meta_seg);
	int err = skj_meta_write(j, j->meta_seg.fd, h, SKJ_META_NAME);
	if (err || (err = skj_meta_map(j)))
		return err;
	/* A reader that opened before the damage may sleep on the event
	 * count just zeroed, its waiter flag gone with it, so no writer's
	 * increment would wake it: wake every sleeper on the word, whatever
	 * its value; each re-reads the count and sleeps again if need be. */
	sk_futex_wake(&j->m->tail.word, -1);
	return 0;
}

/* Link a new journal.meta holding h, then open and lock it as any repair
 * does.  -EEXIST from skj_meta_create (another process linked one meanwhile):
 * that one is opened instead, and *made stays false. */
static int meta_relink(struct shmkit_journal *j, const struct skj_meta *h, bool *made)
{
	bool created = false;
	int err = skj_meta_create(j, h);

	*made = !err;
	if (!err || err == -EEXIST)
		err = skj_meta_open(j, false, &created);
	return err ? err : skj_writer_lock(j);
}

/* journal.meta is damaged (err -EBADMSG: open, mapped, j->m unset) or
 * missing (-ENOENT).  Missing with no data file either is no journal:
 * -ENOENT, as ever.  Otherwise verify reports the damage and returns 0
 * with j->m unset (nothing more to check); repair rebuilds the meta from
 * the data files and returns 0 with j->m set and the writer lock held, so
 * the files are checked next.  A rebuild that cannot be done changes
 * nothing and is -EBADMSG, the report saying why. */
static int meta_repair(struct shmkit_journal *j, struct check *c, int err)
{
	const bool missing = err == -ENOENT;
	char why[256], src[SKJ_NAME_LEN + 1];
	struct skj_meta h;
	bool made = false;
	uint64_t *seqs;
	size_t n;

	snprintf(why, sizeof(why), "%s", shmkit_errdetail());
	if ((err = skj_list_files(j->dirfd, &seqs, &n)))
		return err;
	if (missing && !n)
		err = sk_fail(-ENOENT, "%s", why);
	else if (!missing && c->fix)
		err = skj_writer_lock(j); /* first: a live writer is -EBUSY, not damage */
	if (err) {
		free(seqs);
		return err;
	}
	if (missing)
		check_damage(c, "%s/" SKJ_META_NAME ": missing (data files: %zu)", j->path, n);
	else
		check_damage(c, "%s", why);
	if (c->fix && !(err = meta_recover(j, seqs, n, missing ? "missing" : "damaged", &h, src)))
		err = missing ? meta_relink(j, &h, &made) : meta_rewrite(j, &h);
	free(seqs);
	if (err == -EBADMSG)
		snprintf(c->rep->where, sizeof(c->rep->where), "%s", shmkit_errdetail());
	else if (!err && c->fix && (made || !missing))
		snprintf(c->rep->meta_rebuilt_from, sizeof(c->rep->meta_rebuilt_from), "%s", src);
	return err;
}

/* ---- entry points ----------------------------------------------------------- */

/* The permissions of files repair makes (a gap's hole file): those of
 * journal.meta, as the journal's creator chose them. */
static int repair_mode(struct shmkit_journal *j)
{
	struct stat st;

	if (fstat(j->meta_seg.fd, &st))
		return sk_fail(sk_neg_errno(), "cannot stat %s/" SKJ_META_NAME, j->path);
	j->mode = st.st_mode & 0777;
	return 0;
}

/* After repair changed files: readers look at the directory and their
 * position again (holes where damage stopped them, hole files). */
static void repair_announce(struct shmkit_journal *j)
{
	/* Release: orders the repair's writes (holes, files linked) before
	 * the new generation; pairs with the acquire load in cur_next_file(). */
	sk_fetch_add(&j->m->roll_gen, 1, __ATOMIC_RELEASE);
	/* Wake sleeping readers (release RMW; see wait.h for the ordering). */
	shmkit_ec_inc(&j->m->tail);
}

static int journal_check(const char *path, struct shmkit_journal_report *rep, bool fix)
{
	struct check c = { .rep = rep, .fix = fix };
	bool created = false;
	int err;

	if (!path || !*path || !rep)
		return -EINVAL;
	sk_clear_detail();
	memset(rep, 0, sizeof(*rep));
	if (strlen(path) >= sizeof(((shmkit_journal *)0)->path))
		return sk_fail(-ENAMETOOLONG, "journal path too long");
	shmkit_journal *j = skj_journal_alloc(path);
	if (!j)
		return -ENOMEM;
	j->writer = fix;
	j->dirfd = skj_journal_dir_open(path, fix, 0);
	if (j->dirfd < 0)
		err = j->dirfd;
	else if ((err = skj_meta_open(j, false, &created)) == -EBADMSG || err == -ENOENT)
		err = meta_repair(j, &c, err);
	else if (!err && fix)
		err = skj_writer_lock(j);
	if (!err && fix && !j->mode)
		err = repair_mode(j);
	if (!err && j->m) /* journal.meta is sound (with fix, perhaps rebuilt) */
		err = check_files(j, &c);
	if (!err && fix && c.damaged)
		repair_announce(j);
	skj_journal_free(j);
	/* Repair stopped by something other than damage (a live writer, an
	 * I/O error) says what stopped it. */
	if (c.damaged && (!fix || err == -EBADMSG))
		return sk_fail(-EBADMSG, "%s", rep->where);
	return err;
}

int shmkit_journal_verify(const char *path, struct shmkit_journal_report *r)
{
	return journal_check(path, r, false);
}

int shmkit_journal_repair(const char *path, struct shmkit_journal_report *r)
{
	return journal_check(path, r, true);
}
