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

/* Segments: tools/cmd_seg.c */
int cmd_ls(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_write(int argc, char **argv);

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

/* Benchmarks and demonstration: tools/cmd_bench.c */
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif /* SHMKIT_TOOL_CMD_H */
