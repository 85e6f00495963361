/*
 * cmd_bench.c - `shmkit bench` and `shmkit demo`.
 *
 *   shmkit bench [--json] [--quick] [--filter S] [--list]
 *       runs the benchmark program shmkit-bench found next to this
 *       executable (else in PATH) with the same options.
 *
 *   shmkit demo [--count N] [--json]
 *       two unrelated processes -- this one and a copy of this program it
 *       starts with exec, sharing nothing but two channel names -- exchange
 *       N messages of 64 bytes (default 1,000,000) one way over a channel,
 *       then N/50 round trips; the same runs over a pipe and a UNIX stream
 *       socket (with a forked child, as those need a common parent) in the
 *       same run, and the rates and round-trip times are printed side by
 *       side.  The channels are removed on every exit path, including
 *       SIGINT, SIGTERM and SIGHUP.
 *
 *   shmkit demo --peer BASE --count N   (hidden: the exec'd peer)
 *
 * Built on the public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

/* ---- shmkit bench --------------------------------------------------------- */

static void bench_help(FILE *f)
{
	fputs("usage: shmkit bench [--json] [--quick] [--filter SUBSTR] [--list]\n"
	      "Measure channels, bus and journal next to the machine's limits (a raw\n"
	      "cache-line ping-pong, a raw futex ping-pong, memcpy bandwidth, a plain\n"
	      "ring) and to pipes, sockets and message queues, all in the same run.\n"
	      "  --json      one JSON object per row: name, value, unit, p99, ratio, ref\n"
	      "  --quick     small counts (a smoke test; figures are rough)\n"
	      "  --filter S  only rows whose name contains S\n"
	      "  --list      list the references and suites (with --json: one array of\n"
	      "              {kind, name})\n"
	      "Runs shmkit-bench from this program's directory, else from PATH.\n", f);
}

/* Directory of this executable into buf (no trailing slash); 0 or -errno. */
static int self_dir(char *buf, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return tool_err("bench", -ENOMEM);
	args[0] = (char *)"shmkit-bench";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (tool_is_help(a)) {
			bench_help(stdout);
			free(args);
			return 0;
		}
		bool ok = !strcmp(a, "--json") || !strcmp(a, "--quick") ||
		          !strcmp(a, "--list") || !strncmp(a, "--filter=", 9) ||
		          (!strcmp(a, "--filter") && i + 1 < argc);
		if (!ok) {
			free(args);
			return tool_usage("bench: bad option '%s' (see shmkit bench --help)", a);
		}
		args[i] = argv[i];
		if (!strcmp(a, "--filter")) {
			i++;
			args[i] = argv[i];
		}
	}
	char path[PATH_MAX];
	fflush(stdout);
	if (self_dir(path, sizeof(path) - 16) == 0) {
		strcat(path, "/shmkit-bench");
		if (access(path, X_OK) == 0)
			execv(path, args);
	}
	execvp("shmkit-bench", args);
	fprintf(stderr, "shmkit: bench: cannot run shmkit-bench (not next to this "
	        "program nor in PATH): %s\n", strerror(errno));
	free(args);
	return 1;
}

/* ---- shmkit demo: transports ---------------------------------------------- */

#define DEMO_MSG 64
#define DEMO_TIMEOUT_NS (10 * 1000000000LL) /* any single wait */
#define DEMO_DEFAULT_COUNT 1000000L

/* One way of moving a 64-byte message each way between two processes. */
struct xport {
	const char *label;
	shmkit_chan *tx, *rx; /* channels, or NULL */
	int fd_tx, fd_rx;     /* descriptors, or -1 */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fd_io(int fd, void *buf, size_t len, bool out)
{
	unsigned char *b = buf;
	while (len > 0) {
		ssize_t k = out ? write(fd, b, len) : read(fd, b, len);
		if (k > 0) {
			b += k;
			len -= (size_t)k;
		} else if (k == 0) {
			return -EPIPE;
		} else if (errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

static int x_send(struct xport *x, const void *msg)
{
	if (x->tx)
		return shmkit_chan_send(x->tx, msg, DEMO_MSG, DEMO_TIMEOUT_NS);
	return fd_io(x->fd_tx, (void *)msg, DEMO_MSG, true);
}

static int x_recv(struct xport *x, void *msg)
{
	if (x->rx) {
		ssize_t n = shmkit_chan_recv(x->rx, msg, DEMO_MSG, DEMO_TIMEOUT_NS);
		return n == DEMO_MSG ? 0 : n < 0 ? (int)n : -EBADMSG;
	}
	return fd_io(x->fd_rx, msg, DEMO_MSG, false);
}

static void stamp(unsigned char *msg, uint64_t seq)
{
	memcpy(msg, &seq, sizeof(seq));
}

static uint64_t seq_of(const unsigned char *msg)
{
	uint64_t seq;
	memcpy(&seq, msg, sizeof(seq));
	return seq;
}

/* Round trips timed after `count` one-way messages. */
static long trips_for(long count)
{
	return count / 50 > 0 ? count / 50 : 1;
}

/* The peer's side: take count messages, checking they arrive in order,
 * acknowledge with the count, then echo `trips` round trips. */
static int serve(struct xport *x, long count, long trips)
{
	unsigned char msg[DEMO_MSG] = { 0 };
	for (long i = 0; i < count; i++) {
		int r = x_recv(x, msg);
		if (r)
			return r;
		if (seq_of(msg) != (uint64_t)i)
			return -EBADMSG;
	}
	stamp(msg, (uint64_t)count);
	int r = x_send(x, msg);
	for (long j = 0; j < trips && !r; j++) {
		r = x_recv(x, msg);
		if (!r)
			r = x_send(x, msg);
	}
	return r;
}

struct outcome {
	double rate;          /* messages per second, one way */
	double rtt_median_ns, rtt_p99_ns;
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Time `trips` round trips one by one; median and 99th percentile. */
static int round_trips(struct xport *x, long trips, struct outcome *o)
{
	unsigned char msg[DEMO_MSG] = { 0 };
	int64_t *t = calloc((size_t)trips, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int r = 0;
	for (long j = 0; j < trips && !r; j++) {
		stamp(msg, (uint64_t)j);
		int64_t t0 = now_ns();
		r = x_send(x, msg);
		if (!r)
			r = x_recv(x, msg);
		t[j] = now_ns() - t0;
		if (!r && seq_of(msg) != (uint64_t)j)
			r = -EBADMSG;
	}
	if (!r) {
		qsort(t, (size_t)trips, sizeof(*t), cmp_i64);
		o->rtt_median_ns = (double)t[trips / 2];
		o->rtt_p99_ns = (double)t[(trips * 99 + 99) / 100 - 1];
	}
	free(t);
	return r;
}

/* This side: count messages one way until the peer acknowledges them
 * all, then the round trips. */
static int drive(struct xport *x, long count, long trips, struct outcome *o)
{
	unsigned char msg[DEMO_MSG] = { 0 };
	int64_t t0 = now_ns();
	for (long i = 0; i < count; i++) {
		stamp(msg, (uint64_t)i);
		int r = x_send(x, msg);
		if (r)
			return r;
	}
	int r = x_recv(x, msg);
	if (r)
		return r;
	if (seq_of(msg) != (uint64_t)count)
		return -EBADMSG;
	o->rate = (double)count * 1e9 / (double)(now_ns() - t0);
	return round_trips(x, trips, o);
}

/* ---- shmkit demo: processes and cleanup ------------------------------------ */

/* What a signal handler must undo: the peer, and the channels' names
 * (POSIX shared memory; shm_unlink is an unlink(2) of /dev/shm/NAME).
 * Set before the channels are created, so no window leaks them. */
static struct {
	volatile pid_t peer;
	char shm[2][80];  /* "/shmkit-demo-PID-x" */
} demo;

static void demo_on_signal(int sig)
{
	if (demo.peer > 0)
		kill(demo.peer, SIGKILL);
	for (int i = 0; i < 2; i++)
		shm_unlink(demo.shm[i]); /* harmless if already removed */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void demo_signals(void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int wait_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}

/* Drive x against the started peer pid; kill it on failure; reap it. */
static int drive_peer(struct xport *x, pid_t pid, long count, struct outcome *o)
{
	demo.peer = pid;
	int r = drive(x, count, trips_for(count), o);
	if (r)
		kill(pid, SIGKILL);
	int rc = wait_child(pid);
	demo.peer = 0;
	return r ? r : rc;
}

static void chan_names(char out[2][96], const char *base)
{
	snprintf(out[0], 96, "posix:/%s-out", base);
	snprintf(out[1], 96, "posix:/%s-back", base);
}

/* The exec'd peer: open both channels by name and serve. */
static int demo_peer(const char *base, long count)
{
	char names[2][96];
	struct shmkit_chan_opts o = { .init_timeout_ns = DEMO_TIMEOUT_NS };
	struct xport x = { .label = "peer", .fd_tx = -1, .fd_rx = -1 };
	chan_names(names, base);
	int r = shmkit_chan_open(&x.rx, names[0], &o);
	if (!r)
		r = shmkit_chan_open(&x.tx, names[1], &o);
	if (!r)
		r = serve(&x, count, trips_for(count));
	shmkit_chan_close(x.rx);
	shmkit_chan_close(x.tx);
	return r ? tool_err("demo peer", r) : 0;
}

/* Start `shmkit demo --peer BASE --count N` from /proc/self/exe. */
static pid_t spawn_peer(const char *base, long count)
{
	char cnt[32];
	snprintf(cnt, sizeof(cnt), "%ld", count);
	pid_t parent = getpid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	execl("/proc/self/exe", "shmkit", "demo", "--peer", base, "--count", cnt,
	      (char *)NULL);
	_exit(127);
}

static int chan_leg(const char *base, long count, struct outcome *o, pid_t *peer_pid)
{
	char names[2][96];
	struct shmkit_chan_opts co = {
		.capacity = 1024, .max_msg = DEMO_MSG,
		.flags = SHMKIT_EXCL | SHMKIT_CHAN_SPSC,
	};
	struct xport x = { .label = "channel", .fd_tx = -1, .fd_rx = -1 };
	chan_names(names, base);
	int r = shmkit_chan_create(&x.tx, names[0], &co);
	if (r)
		return r;
	r = shmkit_chan_create(&x.rx, names[1], &co);
	pid_t pid = r ? -1 : spawn_peer(base, count);
	if (pid > 0) {
		*peer_pid = pid;
		r = drive_peer(&x, pid, count, o);
	} else if (!r) {
		r = -errno;
	}
	shmkit_chan_close(x.tx);
	shmkit_chan_close(x.rx);
	shmkit_seg_remove(names[0]);
	shmkit_seg_remove(names[1]);
	return r;
}

/* A forked child serving over a pair of descriptors: two pipes, or one
 * UNIX stream socketpair (fds[0]/[1] ours, fds[2]/[3] the child's). */
static int fd_leg(const char *label, int fds[4], long count, struct outcome *o)
{
	struct xport x = { .label = label, .fd_rx = fds[0], .fd_tx = fds[1] };
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[0]);
		if (fds[1] != fds[0])
			close(fds[1]);
		struct xport c = { .label = label, .fd_rx = fds[2], .fd_tx = fds[3] };
		_exit(serve(&c, count, trips_for(count)) ? 1 : 0);
	}
	close(fds[2]);
	if (fds[3] != fds[2])
		close(fds[3]);
	int r = pid < 0 ? -errno : drive_peer(&x, pid, count, o);
	close(fds[0]);
	if (fds[1] != fds[0])
		close(fds[1]);
	return r;
}

static int pipe_leg(long count, struct outcome *o)
{
	int down[2], up[2];
	if (pipe2(down, O_CLOEXEC))
		return -errno;
	if (pipe2(up, O_CLOEXEC)) {
		int r = -errno;
		close(down[0]);
		close(down[1]);
		return r;
	}
	int fds[4] = { up[0], down[1], down[0], up[1] };
	return fd_leg("pipe", fds, count, o);
}

static int socket_leg(long count, struct outcome *o)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	int fds[4] = { sv[0], sv[0], sv[1], sv[1] };
	return fd_leg("UNIX socket", fds, count, o);
}

/* ---- shmkit demo: words ------------------------------------------------------ */

static void fmt_rate(char *buf, size_t cap, double r)
{
	if (r >= 1e6)
		snprintf(buf, cap, "%.2f million", r / 1e6);
	else
		snprintf(buf, cap, "%.0f thousand", r / 1e3);
}

static void fmt_time(char *buf, size_t cap, double ns)
{
	if (ns < 1000)
		snprintf(buf, cap, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, cap, "%.1f us", ns / 1e3);
	else
		snprintf(buf, cap, "%.2f ms", ns / 1e6);
}

static void print_line(const char *label, const struct outcome *o)
{
	char r[32], m[32], p[32];
	fmt_rate(r, sizeof(r), o->rate);
	fmt_time(m, sizeof(m), o->rtt_median_ns);
	fmt_time(p, sizeof(p), o->rtt_p99_ns);
	printf("  %-16s %18s msgs/s %14s %14s\n", label, r, m, p);
}

/* "12.3x quicker" or "1.5x slower": how `other` compares with the channel. */
static void fmt_speed(char *buf, size_t cap, double chan_ns, double other_ns)
{
	if (chan_ns <= other_ns)
		snprintf(buf, cap, "%.1fx quicker", other_ns / chan_ns);
	else
		snprintf(buf, cap, "%.1fx slower", chan_ns / other_ns);
}

static void print_verdict(const struct outcome o[3])
{
	char a[32], b[32];
	fmt_speed(a, sizeof(a), o[0].rtt_median_ns, o[1].rtt_median_ns);
	fmt_speed(b, sizeof(b), o[0].rtt_median_ns, o[2].rtt_median_ns);
	printf("\nIn this run the channel carried %.1fx the messages per second of the\n"
	       "pipe and %.1fx those of the UNIX socket; its round trip was %s\n"
	       "than the pipe's and %s than the socket's.\n",
	       o[0].rate / o[1].rate, o[0].rate / o[2].rate, a, b);
	printf("Why the round trips differ so much: the channel waits the default\n"
	       "(adaptive) way - it polls shared memory briefly before sleeping, so a\n"
	       "reply that comes quickly costs no system call - while a pipe or socket\n"
	       "reader always sleeps in the kernel and must be woken.  A channel told to\n"
	       "block at once (SHMKIT_WAIT_BLOCK) pays that wake-up too: `shmkit bench`\n"
	       "shows both, each beside the raw limits measured in the same run.\n"
	       "Figures on a shared machine vary from run to run; the comparison made\n"
	       "within one run is what counts.\n");
}

static void demo_help(FILE *f)
{
	fputs("usage: shmkit demo [--count N] [--json]\n"
	      "Two unrelated processes exchange N messages of 64 bytes (default\n"
	      "1000000) over a shmkit channel, then N/50 round trips; the same over a\n"
	      "pipe and a UNIX socket in the same run.  Prints rates and round trips.\n"
	      "  --count N   messages one way (1 to 1000000000)\n"
	      "  --json      print one JSON object at the end: count, msg_bytes,\n"
	      "              round_trips, peer_pid, and transports (channel, pipe,\n"
	      "              unix_socket), each with msgs_per_s, rtt_median_ns and\n"
	      "              rtt_p99_ns\n", f);
}

/* The result as one JSON object (--json) on one line. */
static void print_json(long count, pid_t peer, const struct outcome o[3])
{
	static const char *const names[3] = { "channel", "pipe", "unix_socket" };

	printf("{\"count\":%ld,\"msg_bytes\":%d,\"round_trips\":%ld,\"peer_pid\":%d,"
	       "\"transports\":[", count, DEMO_MSG, trips_for(count), (int)peer);
	for (int i = 0; i < 3; i++)
		printf("%s{\"transport\":\"%s\",\"msgs_per_s\":%.0f,\"rtt_median_ns\":%.0f,"
		       "\"rtt_p99_ns\":%.0f}", i ? "," : "", names[i], o[i].rate,
		       o[i].rtt_median_ns, o[i].rtt_p99_ns);
	printf("]}\n");
}

static int parse_count(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 1000000000L)
		return -EINVAL;
	*out = v;
	return 0;
}

static int demo_main(long count, bool json)
{
	char base[64];
	struct outcome o[3];
	pid_t peer = 0;
	snprintf(base, sizeof(base), "shmkit-demo-%d", (int)getpid());
	snprintf(demo.shm[0], sizeof(demo.shm[0]), "/%s-out", base);
	snprintf(demo.shm[1], sizeof(demo.shm[1]), "/%s-back", base);
	demo_signals(demo_on_signal);
	if (!json)
		printf("shmkit demo: %ld messages of %d bytes, one way, then %ld round trips.\n",
		       count, DEMO_MSG, trips_for(count));
	fflush(stdout);
	int r = chan_leg(base, count, &o[0], &peer);
	if (r)
		return tool_err("demo: channel", r);
	if (!json)
		printf("Channel: this process (pid %d) created two channels, %s-out and\n"
		       "%s-back, and started an unrelated process (pid %d, a fresh exec of\n"
		       "shmkit) that opened them by name; every message arrived, in order.\n"
		       "Then the same over a pipe and a UNIX socket to a forked child:\n\n",
		       (int)getpid(), base, base, (int)peer);
	if ((r = pipe_leg(count, &o[1])))
		return tool_err("demo: pipe", r);
	if ((r = socket_leg(count, &o[2])))
		return tool_err("demo: UNIX socket", r);
	if (json) {
		print_json(count, peer, o);
		return 0;
	}
	printf("  %-16s %25s %14s %14s\n", "", "one way", "round trip", "99% within");
	print_line("shmkit channel", &o[0]);
	print_line("pipe", &o[1]);
	print_line("UNIX socket", &o[2]);
	print_verdict(o);
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	long count = DEMO_DEFAULT_COUNT;
	const char *peer = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (tool_is_help(argv[i])) {
			demo_help(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (parse_count(argv[++i], &count))
				return tool_usage("demo: bad --count '%s' (1 to 1000000000)", argv[i]);
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--peer") && i + 1 < argc) {
			peer = argv[++i];
		} else {
			return tool_usage("demo: bad argument '%s' (see shmkit demo --help)", argv[i]);
		}
	}
	if (peer)
		return demo_peer(peer, count);
	return demo_main(count, json);
}
