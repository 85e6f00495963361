/*
 * cmd.h - the shmkit command's subcommands.  Each is implemented in its own
 * tools/cmd_*.c over the public API only (include/shmkit.h), and returns the
 * process exit status: 0 success, 1 failure, 2 usage error.  Errors go to
 * stderr as "shmkit: NAME: reason" through tool_err().
 */
#ifndef SHMKIT_TOOL_CMD_H
#define SHMKIT_TOOL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmkit.h"

#define EXIT_USAGE 2

/* tools/shmkit.c (dispatcher and shared helpers) */
/* Print "shmkit: WHAT: reason[ (detail)]" for a negative result; returns 1. */
int tool_err(const char *what, int err);
/* Print "shmkit: msg" (printf-style) to stderr; returns 2 (usage). */
int tool_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse a timeout in milliseconds ("-1" forever) to ns; -EINVAL if bad. */
int tool_parse_ms(const char *s, int64_t *ns);
/* Write a JSON string literal (quoted, escaped) to stdout. */
void tool_json_str(const char *s);
/* Copy s into buf (len bytes, always terminated) for a terminal: a
 * backslash, control byte or non-UTF-8 byte becomes \xNN.  Truncates. */
void tool_escape(const char *s, char *buf, size_t len);
/* 1 if argv[i] is -h or --help. */
bool tool_is_help(const char *arg);
/* Report what getopt_long refused ('?' unknown option, ':' missing value)
 * for subcommand CMD; returns 2 (usage). */
int tool_bad_option(const char *cmd, int c, char **argv);
/* Parse an octal permission mode (1..07777) given to OPT; 2 (usage) if bad. */
int tool_parse_mode(const char *cmd, const char *opt, const char *s, unsigned *mode);
/* JSON output (no newline is written; the caller writes separators):
 *   tool_json_data(p, len)  "data":"TEXT" when p[0..len) is UTF-8 without
 *                           NUL, else "hex":"HEXDIGITS": the bytes always
 *                           round-trip;
 *   tool_json_name(key, s)  "KEY":"S" (a byte that is not UTF-8 read as
 *                           Latin-1), and then ,"KEY_hex":"..." with the
 *                           exact bytes when s is not UTF-8;
 *   tool_json_time(key, ns) "KEY_ns":"NS" (a string: JSON readers hold
 *                           numbers as doubles, which drop digits past
 *                           2^53), "KEY":"YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ"
 *                           (UTC); both null when ns <= 0 (unknown). */
void tool_json_data(const void *p, size_t len);
void tool_json_name(const char *key, const char *s);
void tool_json_time(const char *key, int64_t ns);
/* The start of what create, chan, bus and rpc print: text "created|exists
 * NAME: KIND, mode MODE, " or JSON {"name":NAME,"created":BOOL,"kind":KIND,
 * "mode":"MODE", (the caller ends the line, and the object with "}"). */
void tool_made(const char *name, bool created, const char *kind, unsigned mode, bool json);
/* 2 (usage, reported) if NAME is one the tool cannot use (anon, memfd:),
 * else 0. */
int tool_check_name(const char *cmd, const char *name);
/* tool_err() for the result of a create or open: returns 2 (usage) when
 * the name is malformed or the options cannot apply to its backend
 * (-EINVAL, -ENAMETOOLONG), else 1. */
int tool_open_err(const char *what, int err);
/* A failure part way through a list of messages: "shmkit: WHAT: reason;
 * VERB DONE of TOTAL messages" (TOTAL 0, from stdin: "VERB DONE messages
 * before it").  Returns 1. */
int tool_err_progress(const char *what, int err, const char *verb, unsigned long long done,
                      unsigned long long total);
/* An existing object's geometry against what the command line asked
 * for: each given field that differs is reported as "shmkit: NAME: exists
 * with WHAT HAVE, not WANT; ..." (labels: two words for 0 and non-zero;
 * octal: a mode).  1 if any differs, else 0. */
struct tool_geometry {
	const char *what;
	bool given;
	unsigned long long have, want;
	bool octal;
	const char *const *labels;
};
int tool_mismatch(const char *name, const char *what, const char *have, const char *want);
int tool_check_geometry(const char *name, const struct tool_geometry *g, size_t n);
/* The power of 2 at or above v (capacities the library rounds up). */
unsigned long long tool_pow2(unsigned long long v);
/* Call fn for each line of stdin, without its newline, until fn returns
 * non-zero (returned) or input ends (0); a read error is reported as
 * "shmkit: WHAT: ..." and returns 1. */
int tool_each_line(const char *what, int (*fn)(void *ctx, const char *line, size_t len),
                   void *ctx);

/* Message output of recv and sub: one message per line on stdout, each
 * written out with write(2) (all of it, after EINTR and partial writes)
 * before the next is taken, so a signal or a failed write loses at most
 * the message in flight.  Each returns 0, or reports "shmkit: WHAT: ..."
 * and returns 1.
 *   tool_out_start()  once, before anything is taken: ignores SIGPIPE (a
 *                     reader that went away is EPIPE, reported, not a
 *                     silent death) and fails if stdout is not open for
 *                     writing;
 *   tool_out_ready()  before each take: fails if stdout is already broken
 *                     (a pipe whose reader has gone);
 *   tool_out_msg()    writes msg[0..len) and a newline; msg must have room
 *                     for len + 1 bytes. */
int tool_out_start(const char *what);
int tool_out_ready(const char *what);
int tool_out_msg(const char *what, char *msg, size_t len);
/* The same for --json: one line {"data":...} or {"hex":...} (as
 * tool_json_data), then ,EXTRA (members, e.g. "lost":3) when not NULL. */
int tool_out_json(const char *what, const void *msg, size_t len, const char *extra);

/* Segments: tools/cmd_seg.c (create, rm, gc), tools/cmd_info.c (ls, info),
 * tools/cmd_bytes.c (read, write) */
int cmd_ls(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_write(int argc, char **argv);

/* What those three files share (each is described where it is defined).
 * tools/cmd_seg.c: */
#define SK_TOOL_SHM_DIR "/dev/shm"
int seg_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int seg_show_help(const char *text);
int seg_parse_size(const char *cmd, const char *opt, const char *s, size_t *out);
uint64_t seg_magic_of(const unsigned char head[8]);
const char *seg_format_of(uint64_t magic);
/* tools/cmd_info.c: the words for a kind and a backend (ls, info, top) */
const char *seg_kind_label(int kind);
const char *seg_backend_label(int backend);
void seg_address(const struct shmkit_seg_info *st, char *buf, size_t len);
/* A segment as ls lists it; gc takes the same list. */
struct seg_row {
	struct shmkit_seg_info st;
	const char *kind; /* overrides seg_kind_label(): no-access, semaphore, shmkit */
	bool unread;      /* System V: header not read (ls does not attach) */
};

struct seg_rows {
	struct seg_row *v;
	size_t n, cap;
};
int seg_collect_rows(struct seg_rows *r);

/* Channels: tools/cmd_chan.c.  info_chan prints the state of a channel
 * for `shmkit info` (json: as one JSON object). */
int cmd_chan(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_recv(int argc, char **argv);
int info_chan(const char *name, bool json);

/* Bus: tools/cmd_bus.c */
int cmd_bus(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int info_bus(const char *name, bool json);

/* Request/response: tools/cmd_rpc.c */
int cmd_rpc(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int info_rpc(const char *name, bool json);

/* Journal: tools/cmd_journal.c; info_journal for `shmkit info PATH`. */
int cmd_journal(int argc, char **argv);
int info_journal(const char *path, bool json);

/* Live view and checks: tools/cmd_top.c, tools/cmd_doctor.c */
int cmd_top(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* The ZeroMQ bridge, a program of its own: tools/cmd_bridge.c */
int cmd_bridge(int argc, char **argv);

/* Benchmarks and demonstration: tools/cmd_bench.c */
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif /* SHMKIT_TOOL_CMD_H */
