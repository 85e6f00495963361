/*
 * top.h - `shmkit top`: what a refresh samples (tools/top_sample.c) and
 * what the view shows of it (tools/cmd_top.c).
 */
#ifndef SHMKIT_TOOL_TOP_H
#define SHMKIT_TOOL_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NAME_MAX_LEN 4200
#define NOTE_LEN 200
#define JOURNAL_KIND 100 /* a journal directory (not a segment kind) */

/* A value top may not know: shown as "-" and null. */
struct num {
	uint64_t v;
	bool known;
};

struct obj {
	char name[NAME_MAX_LEN];   /* what to give back to shmkit */
	int kind;                  /* enum shmkit_kind or JOURNAL_KIND */
	int backend;               /* enum shmkit_backend; 0 for a journal */
	uint64_t size;
	struct num in, out;        /* counter totals */
	double rate_in, rate_out;  /* per second, when rate_*_known */
	bool rate_in_known, rate_out_known;
	struct num depth, capacity, lag, lost, alive, dead;
	bool stuck;
	char note[NOTE_LEN];
};

/* One refresh: every object seen. */
struct snap {
	struct obj *v;
	size_t n, cap;
	int64_t mono_ns;           /* CLOCK_MONOTONIC when taken */
	int64_t real_ns;           /* CLOCK_REALTIME when taken */
};

struct sysv_entry;
struct journal_entry;

/* What outlives a refresh: System V segments already read (and services
 * kept attached), journals already verified. */
struct state {
	bool all;                  /* --all: foreign segments too */
	char **args;               /* NAMEs and journal PATHs given */
	int nargs;
	int bad_arg;               /* set by top_sample: 1 + the index of a NAME
	                              (not a PATH: one with a ':' or without a
	                              '/') the library cannot parse (-EINVAL,
	                              -ENAMETOOLONG: bad_err), else 0 */
	int bad_err;
	struct sysv_entry *sysv;
	size_t nsysv, capsysv;
	struct journal_entry *jr;
	size_t njr, capjr;
};

/* CLOCK c in nanoseconds. */
int64_t top_clock_ns(clockid_t c);

/* Take one refresh into s (its objects replaced); g carries what the
 * previous refreshes learned. */
void top_sample(struct snap *s, struct state *g);

/* Rates of cur from the counters of prev (same name and kind). */
void top_rates(struct snap *cur, const struct snap *prev);

/* Close what g holds open, free it. */
void top_state_free(struct state *g);

/* "chan", "journal", ...; "posix", "sysv", ... */
const char *top_kind_word(int kind);
const char *top_backend_word(int backend);

#endif /* SHMKIT_TOOL_TOP_H */
