/*
 * stress_kill.c - the crash promise of include/shmkit.h under a kill loop,
 * outside Criterion, in a process tree of its own: a peer killed by
 * SIGKILL at any instant never loses a committed message, never
 * duplicates one beyond what the header documents, never hands out a
 * torn one, and never hangs the others.
 *
 *   stress_kill [-n KILLS] [-s SEED] [-S SCENARIO] [-i FIRST] [-T SECONDS]
 *               [-P POINT,...] [-v]
 *
 * Scenarios, taken in turn (or only -S, by number or name):
 *   1 chan-mpmc         channel, 2 producers 2 consumers, send / recv
 *   2 chan-mpmc-zc      the same with reserve + commit (and abort) / peek
 *   3 chan-spsc         SPSC channel, both kinds of call mixed
 *   4 bus-backpressure  2 publishers (publish, loan + publish / abort), 2
 *                       subscribers that must lose nothing
 *   5 bus-overwrite     the same with loans held a while and subscribers
 *                       that nap: every gap must be reported in `lost`
 *   6 journal           a writer (durability NONE or GROUP) and a follower
 *   7 rpc               2 servers (hold 1..4 requests, answer "re:" + the
 *                       request by copy or loan) and 2 clients (sync calls,
 *                       batches of async sends - copies and loans, some
 *                       idempotent, some cancelled - waited for in any
 *                       order, now and then a deadline too short to meet)
 *
 * An iteration makes a fresh channel, bus or journal (names
 * sktest-RUN-PID-kill-N, journals /tmp/sktest-RUN-PID-kill-N: lib_test.h's
 * naming rule) and a fresh board
 * (stress_kill.h), starts the processes (stress_roles.h), then kills a
 * victim 1..6 times: a producer, publisher or writer, or for channels now
 * and then a consumer; for rpc a client or a server.  The victim dies by SIGKILL after a random delay
 * of 0..2 ms (from when it entered its loop, or now and then from its
 * exec), or - for a share of the kills - at the Nth pass of a crash point
 * (SHMKIT_CRASH_AT in its environment; -P adds point names to the
 * built-in ones, scripts/stress.sh passes every SK_CRASH_POINT in src/).
 * A replacement continues the victim's stream after the last sequence it
 * tried.  Then producers stop, receivers drain, and the driver judges
 * from the board:
 *   - every COMMITTED message received exactly once, TRYING ones at most
 *     once, NONE/ABORTED ones never (a phantom);
 *   - channels: MPMC may lose at most one message per killed consumer;
 *     SPSC loses none and may deliver again only the last message of a
 *     killed consumer, to its successor, in order;
 *   - bus back-pressure: subscribers miss no committed message and their
 *     `lost` is at most one per dead publisher (its abandoned slot) plus
 *     loans readers abandoned; overwrite: every committed message a
 *     subscriber missed lies in a gap its `lost` counts covered, and
 *     received + lost never exceeds the sequences published;
 *   - journal: after every kill, reopening as writer succeeds, verify is
 *     clean, and a reader finds seqs 1..last contiguous and intact, with
 *     every committed record, at most the one in flight beyond them, and
 *     nothing the follower had already read cut away;
 *   - rpc: a client never receives an answer but the one to its own
 *     request (WRONG ANSWER), each call ends within its deadline + -T
 *     with the answer, -ECONNRESET (never for an idempotent call, and in
 *     all at most SK_HOLD per killed server: only a server's death resets
 *     a call) or -ETIMEDOUT, never -ECANCELED; no call answered twice
 *     (servers' logs), none answered that was never sent or was aborted,
 *     none received that no server answered, none reset that a server had
 *     answered; servers never see a torn request.  After the loop a fresh
 *     server and max_clients fresh clients (taking every entry back) make
 *     depth calls each, 4 rounds, all answered; with them closed the
 *     service shows no call in flight and no client;
 *   - every call, start, drain and exit within -T seconds (else HANG).
 * Exit 0 when no scenario saw a violation.  The closing line is
 * "stress_kill: N passed, M failed" (scenarios), for CI.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "lib_test.h"
#include "stress_roles.h"

#define US 1000LL
#define MS 1000000LL
#define SEC 1000000000LL
#define KILL_DELAY_NS (2 * MS)   /* random kills land 0..2 ms in */
#define CP_WAIT_NS (50 * MS)     /* an armed victim gets this long to hit its point */
#define QUIET_NS (1 * SEC)       /* MPMC drain: no progress this long ends it */
#define ARM_PERCENT 35           /* victims armed with a crash point */
#define MAX_POINTS 64

enum scn { S_MPMC = 1, S_MPMC_ZC, S_SPSC, S_BUS_BP, S_BUS_OW, S_JOURNAL, S_RPC, S_COUNT };

static const char *const scn_names[S_COUNT] = {
	[S_MPMC] = "chan-mpmc", [S_MPMC_ZC] = "chan-mpmc-zc", [S_SPSC] = "chan-spsc",
	[S_BUS_BP] = "bus-backpressure", [S_BUS_OW] = "bus-overwrite", [S_JOURNAL] = "journal",
	[S_RPC] = "rpc",
};

struct tally {
	uint64_t iters, kills, cp_kills, committed, maybe, received;
	uint64_t lost, dups, rep_lost, torn, hangs, allowed, violations;
	/* rpc: calls by outcome, server answers and answers dropped (the
	 * caller gone), -EBUSY retries, calls of the check after the loop */
	uint64_t calls, answered, resets, timeouts, cancels, aborted, srv_answers, srv_dropped;
	uint64_t busy, after_calls, after_foreign, srv_kills;
};

struct point {
	char name[96];
	uint64_t armed, fired;
};

static struct {
	uint64_t kills, seed, first;
	int scn, verbose;
	int64_t hang_ns;
	struct point points[MAX_POINTS];
	int npoints;
} opt = { .kills = 1500, .hang_ns = 10 * SEC };

/* A role the iteration keeps filled: its current process. */
struct slot {
	int kind;
	uint32_t stream;
	int role;          /* index of the current incarnation in board.roles */
	pid_t pid;
	bool alive, victim;
	int point;         /* crash point armed in it, -1 none */
};

/* One dead consumer's last message (SPSC may deliver it again). */
struct final {
	uint32_t stream;
	uint64_t seq;
	bool used;
	bool inflight; /* held in inflight, not logged (else: its last logged) */
};

struct iter {
	enum scn scn;
	uint64_t no, seed, rng;
	struct tally *t;
	struct board *b;
	int fd;
	char name[128];        /* posix:/... or the journal directory */
	bool made;             /* the service exists (to remove) */
	shmkit_chan *ch;
	shmkit_bus *bus;
	shmkit_rpc *rpc;
	struct slot slots[4];
	int nslots, nroles, nlogs;
	bool stopping;         /* producers told to stop: no more replacements */
	unsigned kills, dead_cons, dead_pubs, dead_srvs;
	uint64_t next[SK_STREAMS];   /* next seq for a replacement producer */
	uint64_t absorbed[SK_ROLES]; /* channel: log entries counted, per role */
	uint64_t absorbed_total;
	struct final finals[SK_LOGS];
	int nfinals;
	bool extra[SK_ROLES];        /* a dead consumer's unlogged inflight counted */
	struct slog extra_key[SK_ROLES];
	uint64_t jlast;              /* journal: last seq at the last check */
	uint64_t jlost;
	bool violated;
};

static pid_t driver_pid;
static struct iter *live;        /* for cleanup on exit or signal */
static struct tally tallies[S_COUNT];
static uint8_t cnt[SK_STREAMS][SK_MAXSEQ + 1];   /* receipts per message */
static uint32_t cum[SK_STREAMS][SK_MAXSEQ + 2];  /* committed below seq */
static uint8_t held_dead[SK_STREAMS][SK_MAXSEQ + 1]; /* rpc: held by a killed server */

static int64_t now_ns(void)
{
	return sk_now_ns();
}

static void nap_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / SEC, .tv_nsec = ns % SEC };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

__attribute__((format(printf, 2, 3)))
static void violation(struct iter *it, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	it->t->violations++;
	it->violated = true;
	printf("stress_kill: VIOLATION in %s, iteration %llu (replay: -s 0x%llx -i %llu -S %d -n 1): %s\n",
	       scn_names[it->scn], (unsigned long long)it->no, (unsigned long long)opt.seed,
	       (unsigned long long)it->no, it->scn, msg);
	fflush(stdout);
}

/* ---- cleanup ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Kill and reap every process of the iteration, remove its service and
 * board.  Safe to call twice. */
static void teardown(struct iter *it)
{
	for (int i = 0; i < it->nslots; i++) {
		struct slot *s = &it->slots[i];
		if (s->alive && s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
			s->alive = false;
		}
	}
	if (it->ch)
		shmkit_chan_close(it->ch);
	if (it->bus)
		shmkit_bus_close(it->bus);
	if (it->rpc)
		shmkit_rpc_close(it->rpc);
	it->ch = NULL;
	it->bus = NULL;
	it->rpc = NULL;
	if (it->made) {
		if (it->scn == S_JOURNAL)
			nftw(it->name, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		else
			shmkit_seg_remove(it->name);
		it->made = false;
	}
	if (it->b)
		munmap(it->b, sizeof(*it->b));
	if (it->fd >= 0)
		close(it->fd);
	it->b = NULL;
	it->fd = -1;
}

static void cleanup_at_exit(void)
{
	if (getpid() == driver_pid && live)
		teardown(live);
}

/* SIGINT, SIGTERM, and the watchdog's SIGALRM.  The driver is then
 * inside a bounded wait or a library call, not inside malloc or stdio,
 * so the cleanup's calls are safe enough here; it ends in _exit. */
static void on_signal(int sig)
{
	static const char hang[] = "stress_kill: HANG: the driver itself is stuck (watchdog)\n";
	if (sig == SIGALRM && write(2, hang, sizeof(hang) - 1) < 0)
		sig = SIGALRM;
	cleanup_at_exit();
	_exit(sig == SIGALRM ? 3 : 128 + sig);
}

/* ---- processes ------------------------------------------------------------------ */

static bool point_applies(const char *p, enum scn s)
{
	if (!strncmp(p, "chan.mpmc.", 10)) /* rpc: its request queue */
		return s == S_MPMC || s == S_MPMC_ZC || s == S_RPC;
	if (!strncmp(p, "chan.spsc.", 10))
		return s == S_SPSC;
	if (!strncmp(p, "chan.", 5))
		return s <= S_SPSC;
	if (!strncmp(p, "bus.", 4))
		return s == S_BUS_BP || s == S_BUS_OW;
	if (!strncmp(p, "journal.", 8))
		return s == S_JOURNAL;
	if (!strncmp(p, "rpc.", 4))
		return s == S_RPC;
	return false;
}

/* Receivers: consumers, subscribers, followers, servers (a server takes
 * requests off the queue); they start first and drain last. */
static bool rx_kind(int kind)
{
	return kind == K_CONSUMER || kind == K_SUBSCRIBER || kind == K_FOLLOWER || kind == K_SERVER;
}

/* Whether a point lies on the receiving side (by its name), where only
 * receivers pass it: chan.mpmc.copied and .taken are a consumer's (an rpc server's),
 * rpc.taken and rpc.responded a server's. */
static bool point_side_ok(const char *p, int kind)
{
	bool rx = strstr(p, "recv") || strstr(p, "peek") || strstr(p, "release") ||
	          strstr(p, "consum") || strstr(p, "sub.") || strstr(p, "read") ||
	          strstr(p, "taken") || strstr(p, "copied") || strstr(p, "respond");
	return rx == rx_kind(kind);
}

/* A crash point for a victim about to start, or -1 (most of the time). */
static int pick_point(struct iter *it, const struct slot *s, bool may_arm)
{
	int ok[MAX_POINTS], n = 0;

	if (!may_arm || !s->victim || sk_rand_below(&it->rng, 100) >= ARM_PERCENT)
		return -1;
	for (int i = 0; i < opt.npoints; i++)
		if (point_applies(opt.points[i].name, it->scn) && point_side_ok(opt.points[i].name, s->kind))
			ok[n++] = i;
	return n ? ok[sk_rand_below(&it->rng, (uint64_t)n)] : -1;
}

static int role_mode(const struct iter *it)
{
	return it->scn == S_MPMC ? M_COPY : it->scn == S_MPMC_ZC ? M_ZC : M_MIX;
}

static void exec_child(struct iter *it, int r, const char *crash)
{
	char fds[16], sizes[32], idxs[16];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != driver_pid || fcntl(it->fd, F_SETFD, 0))
		_exit(120);
	if (crash)
		setenv("SHMKIT_CRASH_AT", crash, 1);
	else
		unsetenv("SHMKIT_CRASH_AT");
	snprintf(fds, sizeof(fds), "%d", it->fd);
	snprintf(sizes, sizeof(sizes), "%zu", sizeof(struct board));
	snprintf(idxs, sizeof(idxs), "%d", r);
	execl("/proc/self/exe", "stress_kill", "--child", fds, sizes, idxs, (char *)NULL);
	_exit(121);
}

/* Start a new incarnation of slot si.  0, or -1 when the board is full
 * (the iteration then stops killing). */
static int spawn(struct iter *it, int si, bool may_arm)
{
	struct slot *s = &it->slots[si];
	bool rx = s->kind == K_CONSUMER || s->kind == K_SUBSCRIBER || s->kind == K_SERVER;
	char crash[128];

	if (it->nroles >= SK_ROLES || (rx && it->nlogs >= SK_LOGS))
		return -1;
	may_arm = may_arm && it->nroles < SK_ROLES - 8 && it->nlogs < SK_LOGS - 4;
	int r = it->nroles++;
	struct role *ro = &it->b->roles[r];
	ro->kind = (uint32_t)s->kind;
	ro->stream = s->stream;
	ro->log = rx ? (uint32_t)it->nlogs++ : 0;
	ro->mode = (uint32_t)role_mode(it);
	ro->wait = sk_rand_below(&it->rng, 2) ? SHMKIT_WAIT_ADAPTIVE : SHMKIT_WAIT_BLOCK;
	ro->start = it->next[s->stream];
	ro->seed = sk_rand(&it->rng);
	s->point = pick_point(it, s, may_arm);
	if (s->point >= 0) {
		uint64_t n = 1 + sk_rand_below(&it->rng, sk_rand_below(&it->rng, 2) ? 4 : 64);
		snprintf(crash, sizeof(crash), "%s:%llu", opt.points[s->point].name, (unsigned long long)n);
		opt.points[s->point].armed++;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		exec_child(it, r, s->point >= 0 ? crash : NULL);
	if (pid < 0) {
		violation(it, "fork: %s", strerror(errno));
		return -1;
	}
	s->role = r;
	s->pid = pid;
	s->alive = true;
	return 0;
}

/* Wait (bounded) until slot si's process entered its loop or died (left
 * for pump to reap). */
static void wait_running(struct iter *it, int si)
{
	struct slot *s = &it->slots[si];
	int64_t end = now_ns() + opt.hang_ns;
	siginfo_t si_;

	while (!sk_load_acquire(&it->b->roles[s->role].running)) {
		si_.si_pid = 0;
		if (waitid(P_PID, (id_t)s->pid, &si_, WEXITED | WNOHANG | WNOWAIT) == 0 && si_.si_pid)
			return;
		if (now_ns() > end) {
			it->t->hangs++;
			violation(it, "HANG: %s (role %d) did not start within %lld s", kind_names[s->kind],
			          s->role, (long long)(opt.hang_ns / SEC));
			return;
		}
		nap_ns(100 * US);
	}
}

/* ---- what a process left ------------------------------------------------------- */

/* Count a consumer's new log entries (channel scenarios). */
static void absorb(struct iter *it, int r)
{
	struct role *ro = &it->b->roles[r];
	/* Acquire: pairs with the consumer's release store of nlog. */
	uint64_t n = sk_load_acquire(&ro->nlog);
	const struct slog *log = it->b->logs[ro->log];

	for (uint64_t i = it->absorbed[r]; i < n; i++)
		if (cnt[log[i].stream][log[i].seq] < UINT8_MAX)
			cnt[log[i].stream][log[i].seq]++;
	it->absorbed_total += n - it->absorbed[r];
	it->absorbed[r] = n;
}

/* A consumer died: count the message it held in inflight if it had not
 * logged it, and remember its last message (SPSC may deliver it again). */
static void consumer_died(struct iter *it, int r)
{
	struct role *ro = &it->b->roles[r];
	const struct slog *log = it->b->logs[ro->log];
	struct smsg_hdr h;
	uint32_t len;

	absorb(it, r);
	it->dead_cons++;
	memcpy(&len, ro->inflight + offsetof(struct smsg_hdr, len), sizeof(len));
	bool held = len <= SK_MSG_MAX && !smsg_check(ro->inflight, len, &h) && h.stream < SK_STREAMS &&
	            h.seq <= SK_MAXSEQ;
	uint64_t n = ro->nlog;
	if (held && (n == 0 || log[n - 1].stream != h.stream || log[n - 1].seq != h.seq)) {
		it->extra[r] = true;
		it->extra_key[r] = (struct slog){ .stream = h.stream, .seq = h.seq };
		if (cnt[h.stream][h.seq] < UINT8_MAX)
			cnt[h.stream][h.seq]++;
		it->absorbed_total++;
	}
	if (it->nfinals < SK_LOGS && (held || n))
		it->finals[it->nfinals++] = held ? (struct final){ h.stream, h.seq, false, true }
		                                 : (struct final){ log[n - 1].stream, log[n - 1].seq, false, false };
}

/* Where a replacement producer of the stream starts: after the last seq
 * any predecessor tried. */
static void producer_done(struct iter *it, int r)
{
	struct role *ro = &it->b->roles[r];
	uint64_t q = ro->start;

	while (q <= SK_MAXSEQ && it->b->state[ro->stream][q] != ST_NONE)
		q++;
	if (q > it->next[ro->stream])
		it->next[ro->stream] = q;
}

static void journal_check(struct iter *it);

/* An rpc server was killed: the requests it held may have been answered
 * (killed after respond, before its log). */
static void server_died(struct iter *it, int r)
{
	const struct role *ro = &it->b->roles[r];
	uint32_t n = ro->nheld < SK_HOLD ? ro->nheld : SK_HOLD;

	it->dead_srvs++;
	for (uint32_t i = 0; i < n; i++)
		if (ro->held[i].stream < SK_STREAMS && ro->held[i].seq <= SK_MAXSEQ)
			held_dead[ro->held[i].stream][ro->held[i].seq] = 1;
}

/* Slot si's process is gone (status from waitpid; by_us: we killed it). */
static void on_death(struct iter *it, int si, int status, bool by_us)
{
	struct slot *s = &it->slots[si];
	bool sigkill = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;

	s->alive = false;
	if (sigkill && (by_us || s->point >= 0) && s->victim) {
		it->kills++;
		it->t->kills++;
		if (!by_us) {
			it->t->cp_kills++;
			opt.points[s->point].fired++;
		}
	} else if (sigkill) {
		violation(it, "%s (role %d) killed by someone else", kind_names[s->kind], s->role);
	} else if (WIFSIGNALED(status)) {
		violation(it, "%s (role %d) died of signal %d (%s)", kind_names[s->kind], s->role,
		          WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (WEXITSTATUS(status) && (WEXITSTATUS(status) < 10 || WEXITSTATUS(status) >= 10 + F_COUNT)) {
		violation(it, "%s (role %d) exited with %d", kind_names[s->kind], s->role, WEXITSTATUS(status));
	} else if (!WEXITSTATUS(status) && !it->stopping) {
		violation(it, "%s (role %d) exited before it was told to", kind_names[s->kind], s->role);
	}
	if (s->kind == K_CONSUMER)
		sigkill ? consumer_died(it, s->role) : absorb(it, s->role);
	if (s->kind == K_PRODUCER || s->kind == K_PUBLISHER || s->kind == K_CLIENT)
		producer_done(it, s->role);
	if (s->kind == K_SERVER && sigkill)
		server_died(it, s->role);
	if (s->kind == K_PUBLISHER && sigkill)
		it->dead_pubs++;
	if (s->kind == K_WRITER && sigkill)
		journal_check(it);
}

/* Replace a dead process where its role must go on. */
static void replace(struct iter *it, int si)
{
	struct slot *s = &it->slots[si];

	if (s->alive || s->kind == K_SUBSCRIBER || s->kind == K_FOLLOWER)
		return;
	if (s->kind != K_CONSUMER && s->kind != K_SERVER && it->stopping)
		return;
	if (spawn(it, si, !it->stopping) == 0 && sk_rand_below(&it->rng, 5))
		wait_running(it, si); /* else it may be killed while it opens */
}

/* Reap whatever died, count channel receipts, replace the dead. */
static void pump(struct iter *it)
{
	for (int i = 0; i < it->nslots; i++) {
		struct slot *s = &it->slots[i];
		int status;
		if (s->alive && waitpid(s->pid, &status, WNOHANG) == s->pid) {
			on_death(it, i, status, false);
			replace(it, i);
		}
	}
	if (it->scn <= S_SPSC)
		for (int r = 0; r < it->nroles; r++)
			if (it->b->roles[r].kind == K_CONSUMER)
				absorb(it, r);
}

/* ---- the kill loop ---------------------------------------------------------------- */

static int pick_victim(struct iter *it)
{
	int prod[4], cons[4], np = 0, nc = 0;

	for (int i = 0; i < it->nslots; i++) {
		if (!it->slots[i].victim || !it->slots[i].alive)
			continue;
		if (rx_kind(it->slots[i].kind))
			cons[nc++] = i;
		else
			prod[np++] = i;
	}
	unsigned pct = it->scn == S_SPSC ? 40u : it->scn == S_RPC ? 50u : 30u;
	if (nc && (!np || sk_rand_below(&it->rng, 100) < pct))
		return cons[sk_rand_below(&it->rng, (uint64_t)nc)];
	return np ? prod[sk_rand_below(&it->rng, (uint64_t)np)] : -1;
}

/* Kill one victim: an armed one gets CP_WAIT_NS to die at its point,
 * the others a random 0..2 ms. */
static void kill_one(struct iter *it, int si)
{
	struct slot *s = &it->slots[si];
	int64_t until = now_ns() + (s->point >= 0 ? CP_WAIT_NS : (int64_t)sk_rand_below(&it->rng, KILL_DELAY_NS));
	int status;
	bool by_us = false;
	pid_t got;

	while ((got = waitpid(s->pid, &status, WNOHANG)) == 0 && now_ns() < until)
		nap_ns(s->point >= 0 ? 200 * US : until > now_ns() ? until - now_ns() : 0);
	if (got == 0) {
		kill(s->pid, SIGKILL);
		by_us = true;
		got = waitpid(s->pid, &status, 0);
	}
	if (got != s->pid) {
		violation(it, "waitpid: %s", strerror(errno));
		s->alive = false;
		return;
	}
	on_death(it, si, status, by_us);
	replace(it, si);
}

/* ---- services --------------------------------------------------------------------- */

static int add_slot(struct iter *it, int kind, uint32_t stream, bool victim)
{
	it->slots[it->nslots] = (struct slot){ .kind = kind, .stream = stream, .victim = victim,
	                                       .role = -1, .point = -1 };
	return it->nslots++;
}

static int make_chan(struct iter *it)
{
	static const uint32_t caps[] = { 2, 4, 8, 64 };
	struct shmkit_chan_opts o = { .capacity = caps[sk_rand_below(&it->rng, 4)], .max_msg = SK_MSG_MAX,
	                              .flags = SHMKIT_EXCL | (it->scn == S_SPSC ? SHMKIT_CHAN_SPSC : 0) };
	int e = shmkit_chan_create(&it->ch, it->name, &o);
	unsigned n = it->scn == S_SPSC ? 1 : 2;

	if (e)
		return e;
	it->made = true;
	for (unsigned i = 0; i < n; i++)
		add_slot(it, K_CONSUMER, 0, true);
	for (unsigned i = 0; i < n; i++)
		add_slot(it, K_PRODUCER, i, true);
	return 0;
}

static int make_bus(struct iter *it)
{
	static const uint32_t caps[] = { 4, 16, 64 };
	struct shmkit_bus_opts o = { .capacity = caps[sk_rand_below(&it->rng, 3)], .max_msg = SK_MSG_MAX,
	                             .delivery = it->scn == S_BUS_BP ? SHMKIT_BUS_BACKPRESSURE
	                                                             : SHMKIT_BUS_OVERWRITE,
	                             .flags = SHMKIT_EXCL };
	int e = shmkit_bus_create(&it->bus, it->name, &o);

	if (e)
		return e;
	it->made = true;
	it->b->delivery = (uint32_t)o.delivery;
	it->b->hold_loans = it->scn == S_BUS_OW;
	it->b->slow = it->scn == S_BUS_OW;
	add_slot(it, K_SUBSCRIBER, 0, false);
	add_slot(it, K_SUBSCRIBER, 0, false);
	add_slot(it, K_PUBLISHER, 0, true);
	add_slot(it, K_PUBLISHER, 1, true);
	return 0;
}

static int make_journal(struct iter *it)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .file_size = 64 << 10, .max_record = 1024 };
	shmkit_journal *j;
	bool group = sk_rand_below(&it->rng, 2);
	int e = shmkit_journal_open(&j, it->name, &o);

	if (e)
		return e;
	it->made = true;
	shmkit_journal_close(j);
	it->b->durability = group ? SHMKIT_DUR_GROUP : SHMKIT_DUR_NONE;
	it->b->group_records = group ? 1 + (uint32_t)sk_rand_below(&it->rng, 64) : 0;
	it->b->group_ms = group ? 1 + (uint32_t)sk_rand_below(&it->rng, 10) : 0;
	it->next[0] = 1;
	add_slot(it, K_FOLLOWER, 0, false);
	add_slot(it, K_WRITER, 0, true);
	return 0;
}

static int make_rpc(struct iter *it)
{
	static const uint32_t clients[] = { 2, 3, 8 }, depths[] = { 1, 2, 4, 8 };
	struct shmkit_rpc_opts o = { .max_clients = clients[sk_rand_below(&it->rng, 3)],
	                             .depth = depths[sk_rand_below(&it->rng, 4)],
	                             .max_request = SK_MSG_MAX, .max_response = SK_MSG_MAX + 3,
	                             .flags = SHMKIT_EXCL };
	int e = shmkit_rpc_create(&it->rpc, it->name, &o);

	if (e)
		return e;
	it->made = true;
	it->b->rpc_depth = o.depth;
	it->b->rpc_hold = 1 + (uint32_t)sk_rand_below(&it->rng, SK_HOLD);
	add_slot(it, K_SERVER, 0, true);
	add_slot(it, K_SERVER, 0, true);
	add_slot(it, K_CLIENT, 0, true);
	add_slot(it, K_CLIENT, 1, true);
	return 0;
}

static int setup(struct iter *it)
{
	it->fd = memfd_create("sktest-kill-board", MFD_CLOEXEC);
	if (it->fd < 0 || ftruncate(it->fd, sizeof(struct board)))
		return -errno;
	it->b = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE, MAP_SHARED, it->fd, 0);
	if (it->b == MAP_FAILED) {
		it->b = NULL;
		return -errno;
	}
	it->b->scenario = it->scn;
	it->b->hang_ns = opt.hang_ns;
	char tag[32], base[64];
	snprintf(tag, sizeof(tag), "kill-%llu", (unsigned long long)it->no);
	snprintf(it->name, sizeof(it->name), "%s%s", it->scn == S_JOURNAL ? "/tmp/" : "posix:/",
	         sk_test_base(base, sizeof(base), tag));
	snprintf(it->b->name, sizeof(it->b->name), "%s", it->name);
	return it->scn <= S_SPSC ? make_chan(it) : it->scn == S_JOURNAL ? make_journal(it)
	       : it->scn == S_RPC ? make_rpc(it) : make_bus(it);
}

/* Receivers first (subscribers must have joined before anything is
 * published), then the producers. */
static void start_all(struct iter *it)
{
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < it->nslots; i++) {
			if (rx_kind(it->slots[i].kind) != (pass == 0))
				continue;
			if (spawn(it, i, pass == 1) == 0)
				wait_running(it, i);
		}
}

/* ---- the journal after a kill --------------------------------------------------- */

/* Read the whole journal: seqs 1..last contiguous, each its own payload.
 * Returns last, or UINT64_MAX after a violation. */
static uint64_t journal_scan(struct iter *it)
{
	struct shmkit_record rec;
	shmkit_journal *j;
	uint64_t want = 1;
	int e = shmkit_journal_open(&j, it->name, NULL);

	if (e) {
		violation(it, "journal: open as reader after a kill: %s (%s)", shmkit_strerror(e), shmkit_errdetail());
		return UINT64_MAX;
	}
	while ((e = shmkit_journal_next(j, &rec, 0)) == 1) {
		struct smsg_hdr h;
		const char *bad = smsg_check(rec.data, rec.len, &h);
		if (rec.seq != want || bad || h.seq != rec.seq || h.stream) {
			it->t->torn += bad != NULL;
			violation(it, "journal: record %llu where %llu was next: %s", (unsigned long long)rec.seq,
			          (unsigned long long)want, bad ? bad : "seq out of order or foreign payload");
			e = -EBADMSG;
			break;
		}
		want++;
	}
	if (e == -EAGAIN) /* the end */
		e = 0;
	if (e < 0 && !it->violated) {
		it->t->torn += e == -EBADMSG;
		violation(it, "journal: reading record %llu: %s (%s)", (unsigned long long)want,
		          shmkit_strerror(e), shmkit_errdetail());
	}
	shmkit_journal_close(j);
	return e < 0 ? UINT64_MAX : want - 1;
}

/* After the writer died (or, last, exited): reopen as writer (recovery),
 * verify, read everything, and hold it against what the writers recorded
 * and what the follower read. */
static void journal_check(struct iter *it)
{
	struct shmkit_journal_opts wo = { .flags = SHMKIT_JOURNAL_WRITE };
	struct shmkit_journal_report rep;
	const uint8_t *st = it->b->state[0];
	shmkit_journal *j;
	uint64_t committed = 0, tried = 0;
	int e = shmkit_journal_open(&j, it->name, &wo);

	if (e) {
		violation(it, "journal: reopen as writer after a kill: %s (%s)", shmkit_strerror(e), shmkit_errdetail());
		return;
	}
	shmkit_journal_close(j);
	if ((e = shmkit_journal_verify(it->name, &rep)))
		violation(it, "journal: verify after recovery: %s, first damage at %s", shmkit_strerror(e), rep.where);
	uint64_t last = journal_scan(it);
	if (last == UINT64_MAX)
		return;
	for (uint64_t q = 1; q <= SK_MAXSEQ && st[q] != ST_NONE; q++) {
		tried = q;
		if (st[q] == ST_COMMITTED)
			committed = q;
	}
	uint64_t seen = sk_load_acquire(&it->b->follow_hi); /* pairs with the follower's release */
	if (last < committed) {
		it->jlost += committed - last;
		violation(it, "journal: committed records %llu..%llu missing after recovery",
		          (unsigned long long)last + 1, (unsigned long long)committed);
	}
	if (last > tried)
		violation(it, "journal: records up to %llu, but only %llu were ever appended",
		          (unsigned long long)last, (unsigned long long)tried);
	if (seen > last)
		violation(it, "journal: the follower read record %llu, recovery kept only %llu",
		          (unsigned long long)seen, (unsigned long long)last);
	it->jlast = last;
}

/* ---- the end of an iteration -------------------------------------------------------- */

static void release_word(uint32_t *w)
{
	sk_store_release(w, 1); /* pairs with the children's acquire loads */
	shmkit_futex_wake(w, -1);
}

static uint64_t chan_missing(struct iter *it)
{
	uint64_t miss = 0;

	for (int s = 0; s < SK_STREAMS; s++)
		for (uint64_t q = 0; q < SK_MAXSEQ; q++)
			miss += it->b->state[s][q] == ST_COMMITTED && !cnt[s][q];
	return miss;
}

struct lag {
	uint64_t max;
	unsigned subs;
};

static int lag_of(const struct shmkit_bus_peer *p, void *arg)
{
	struct lag *l = arg;

	if (p->subscriber && p->alive == 1) {
		l->subs++;
		if (p->lag > l->max)
			l->max = p->lag;
	}
	return 0;
}

/* 1 when the receivers have all there is to get. */
static int drained(struct iter *it, int64_t quiet_ns)
{
	if (it->scn <= S_SPSC) {
		uint64_t miss = chan_missing(it);
		unsigned allow = it->scn == S_SPSC ? 0 : it->dead_cons;
		return miss == 0 || (quiet_ns > QUIET_NS && miss <= allow);
	}
	if (it->scn == S_JOURNAL)
		return sk_load_acquire(&it->b->follow_hi) >= it->jlast;
	if (it->scn == S_RPC)
		return 1; /* the clients have exited: every call ended */
	struct lag l = { 0, 0 };
	shmkit_bus_peers(it->bus, lag_of, &l);
	return l.max == 0;
}

/* Wait (bounded) until every producer (or every receiver) has exited. */
static void wait_exit(struct iter *it, bool producers)
{
	int64_t end = now_ns() + opt.hang_ns;

	for (;;) {
		bool any = false;
		pump(it);
		for (int i = 0; i < it->nslots; i++)
			any |= it->slots[i].alive && !rx_kind(it->slots[i].kind) == producers;
		if (!any)
			return;
		if (now_ns() > end) {
			it->t->hangs++;
			violation(it, "HANG: %s still running %lld s after being told to stop",
			          producers ? "producers" : "receivers", (long long)(opt.hang_ns / SEC));
			return;
		}
		nap_ns(MS);
	}
}

/* ---- rpc: the service after the loop ------------------------------------------------ */

#define AFTER_ROUNDS 4
#define AFTER_TMO_NS (5 * SEC)

/* The servers' rule: the answer is "re:" + the request. */
static size_t rpc_reply(uint8_t *out, const void *req, size_t len)
{
	memcpy(out, "re:", 3);
	memcpy(out + 3, req, len);
	return len + 3;
}

/* The fresh server answers until n requests of the fresh clients (text
 * "after ...") came; calls that dead clients left queued in entries not
 * yet taken back are answered too (counted).  n 0: it takes what the
 * loop left queued until a second passes idle - requests of clients
 * killed with calls outstanding, tokens of calls that ended while the
 * servers were told to stop (a server stops at its first idle wait,
 * which a dead claim at the queue's head can cause: the channel passes
 * it only after SK_CHAN_RECLAIM_NS); a wedged queue then fails the
 * batches.  0, or -1 after a violation. */
static int after_serve(struct iter *it, shmkit_rpc *srv, unsigned n)
{
	uint8_t out[SK_MSG_MAX + 3];
	struct shmkit_rpc_req q;
	struct smsg_hdr h;
	bool drain = !n;

	while (n || drain) {
		int e = shmkit_rpc_recv(srv, &q, drain ? SEC : AFTER_TMO_NS);
		if (e == -ETIMEDOUT && drain)
			return 0;
		if (e) {
			violation(it, "after the loop: a fresh server waited %lld s for %u requests: %s (%s)",
			          (long long)(AFTER_TMO_NS / SEC), n, shmkit_strerror(e), shmkit_errdetail());
			return -1;
		}
		bool ours = q.len > 6 && q.len < 64 && !memcmp(q.data, "after ", 6);
		if (ours && drain) {
			violation(it, "after the loop: a fresh client's request before any was sent");
			return -1;
		}
		if (!ours && (q.len > SK_MSG_MAX || smsg_check(q.data, q.len, &h))) {
			it->t->torn++;
			violation(it, "after the loop: a torn request of %u bytes", q.len);
			return -1;
		}
		it->t->after_foreign += !ours;
		e = shmkit_rpc_respond(srv, &q, out, rpc_reply(out, q.data, q.len));
		if (e && (ours || e != -ECANCELED)) {
			violation(it, "after the loop: respond: %s (%s)", shmkit_strerror(e), shmkit_errdetail());
			return -1;
		}
		n -= ours;
	}
	return 0;
}

/* Send call j of a fresh client's batch (odd ones through a loan),
 * retrying -EBUSY a bounded number of times. */
static int after_send(struct iter *it, shmkit_rpc *cl, const char *req, size_t len, unsigned j,
                      uint64_t *id)
{
	void *buf;
	int e;

	for (unsigned tries = 0;; tries++) {
		if (j & 1 && !(e = shmkit_rpc_loan(cl, &buf))) {
			memcpy(buf, req, len);
			e = shmkit_rpc_send_loan(cl, len, 0, AFTER_TMO_NS, id);
		} else if (!(j & 1)) {
			e = shmkit_rpc_send(cl, req, len, 0, AFTER_TMO_NS, id);
		}
		if (e != -EBUSY || tries == 100)
			break;
		it->t->busy++;
		nap_ns(MS);
	}
	if (e)
		violation(it, "after the loop: a fresh client's send %u: %s (%s)", j, shmkit_strerror(e),
		          shmkit_errdetail());
	return e;
}

/* Fresh client ci: depth calls at once (every slot of its entry), the
 * fresh server answers them, the client waits for each, any order. */
static int after_batch(struct iter *it, shmkit_rpc *cl, shmkit_rpc *srv, unsigned ci, unsigned round)
{
	unsigned depth = it->b->rpc_depth;
	char req[64][48];
	size_t len[64];
	uint64_t id[64];
	uint8_t want[64];

	for (unsigned j = 0; j < depth; j++) {
		len[j] = (size_t)snprintf(req[j], sizeof(req[j]), "after %u client %u call %u", round, ci, j);
		if (after_send(it, cl, req[j], len[j], j, &id[j]))
			return -1;
	}
	if (after_serve(it, srv, depth))
		return -1;
	for (unsigned left = depth; left; left--) {
		uint64_t got = 0;
		const void *p;
		ssize_t n = shmkit_rpc_wait(cl, &got, &p, AFTER_TMO_NS);
		unsigned j = 0;
		while (j < depth && id[j] != got)
			j++;
		if (n < 0 || j == depth || (size_t)n != rpc_reply(want, req[j], len[j]) ||
		    memcmp(p, want, (size_t)n)) {
			violation(it, "after the loop: a fresh client's call %llu: %zd (%s)",
			          (unsigned long long)got, n, n < 0 ? shmkit_errdetail() : "a wrong answer");
			return -1;
		}
		id[j] = 0;
		shmkit_rpc_release(cl, got);
		it->t->after_calls++;
	}
	return 0;
}

/* The service is not wedged: a fresh server and max_clients fresh clients
 * (so every entry, dead clients' too, is taken back and all its slots
 * used) complete AFTER_ROUNDS batches; with the clients closed, no call
 * is in flight and no client is counted. */
static void rpc_after(struct iter *it)
{
	struct shmkit_rpc_stats st;
	shmkit_rpc *srv, *cl[8] = { NULL };
	unsigned nc;
	int e;

	if ((e = shmkit_rpc_stats(it->rpc, &st)) || (e = shmkit_rpc_open(&srv, it->name, NULL))) {
		violation(it, "after the loop: rpc stats/open: %s (%s)", shmkit_strerror(e), shmkit_errdetail());
		return;
	}
	nc = st.max_clients < 8 ? st.max_clients : 8;
	e = after_serve(it, srv, 0);
	for (unsigned i = 0; i < nc && !e; i++)
		if ((e = shmkit_rpc_open(&cl[i], it->name, NULL)))
			violation(it, "after the loop: rpc_open: %s", shmkit_strerror(e));
	for (unsigned round = 0; round < AFTER_ROUNDS && !e; round++)
		for (unsigned i = 0; i < nc && !e; i++)
			e = after_batch(it, cl[i], srv, i, round);
	for (unsigned i = 0; i < nc; i++)
		shmkit_rpc_close(cl[i]);
	if (!e && !(e = shmkit_rpc_stats(srv, &st)) && (st.in_flight || st.clients))
		violation(it, "after the loop: %u calls in flight, %u clients, with every client closed",
		          st.in_flight, st.clients);
	if (opt.verbose && !e)
		printf("rpc stats: requests %llu responses %llu timeouts %llu cancelled %llu retried %llu "
		       "reset %llu requeued %llu dropped %llu\n", (unsigned long long)st.requests,
		       (unsigned long long)st.responses, (unsigned long long)st.timeouts,
		       (unsigned long long)st.cancelled, (unsigned long long)st.retried,
		       (unsigned long long)st.reset, (unsigned long long)st.requeued,
		       (unsigned long long)st.dropped);
	shmkit_rpc_close(srv);
}

static void finish(struct iter *it)
{
	it->stopping = true;
	release_word(&it->b->stop_prod);
	wait_exit(it, true);
	if (it->scn == S_JOURNAL)
		journal_check(it);
	int64_t end = now_ns() + opt.hang_ns, quiet = now_ns();
	uint64_t seen = it->absorbed_total;
	while (!drained(it, now_ns() - quiet)) {
		if (now_ns() > end) {
			struct shmkit_chan_stats cs = { 0 };
			if (it->ch)
				shmkit_chan_stats(it->ch, &cs);
			it->t->hangs++;
			violation(it, "HANG: receivers did not drain within %lld s (channel depth %llu)",
			          (long long)(opt.hang_ns / SEC), (unsigned long long)cs.depth);
			break;
		}
		nap_ns(2 * MS);
		pump(it);
		if (it->absorbed_total != seen) {
			seen = it->absorbed_total;
			quiet = now_ns();
		}
	}
	release_word(&it->b->stop_cons);
	wait_exit(it, false);
	if (it->scn == S_RPC)
		rpc_after(it);
}

/* ---- judging -------------------------------------------------------------------------- */

/* SPSC: each consumer's messages in order, and across a killed one only
 * its last message may come again. */
static void spsc_order(struct iter *it)
{
	int64_t prev = -1;
	bool prev_dead = false;

	for (int r = 0; r < it->nroles; r++) {
		struct role *ro = &it->b->roles[r];
		if (ro->kind != K_CONSUMER)
			continue;
		const struct slog *log = it->b->logs[ro->log];
		for (uint64_t i = 0; i <= ro->nlog; i++) {
			if (i == ro->nlog && !it->extra[r])
				break;
			int64_t q = (int64_t)(i < ro->nlog ? log[i].seq : it->extra_key[r].seq);
			if (q < prev || (q == prev && !(i == 0 && prev_dead))) {
				violation(it, "SPSC order: seq %lld after %lld (consumer role %d)", (long long)q,
				          (long long)prev, r);
				return;
			}
			prev = q;
		}
		prev_dead = true; /* only the last consumer exits; the rest were killed */
	}
}

/* An extra receipt of (s, q) that a dead consumer's last message
 * explains, if any is left: SPSC delivers the message a consumer died
 * holding again (at-least-once); an MPMC recv copies a message out before
 * it takes it (chan_msg.c C3'), so a consumer killed between the two held a
 * copy of a message it never took, which another consumer then receives
 * (only what was in inflight, not logged, counts: a logged message was
 * taken). */
static bool redelivery(struct iter *it, uint32_t s, uint64_t q)
{
	for (int i = 0; i < it->nfinals; i++)
		if (!it->finals[i].used && it->finals[i].stream == s && it->finals[i].seq == q &&
		    (it->scn == S_SPSC || it->finals[i].inflight))
			return it->finals[i].used = true;
	return false;
}

static void judge_chan(struct iter *it)
{
	struct tally *t = it->t;
	uint64_t lost = 0, dups = 0, phantom = 0, bad_dups = 0;

	for (uint32_t s = 0; s < SK_STREAMS; s++)
		for (uint64_t q = 0; q < SK_MAXSEQ; q++) {
			uint8_t st = it->b->state[s][q], c = cnt[s][q];
			t->received += c;
			t->committed += st == ST_COMMITTED;
			t->maybe += st == ST_TRYING;
			lost += st == ST_COMMITTED && !c;
			if ((st == ST_NONE || st == ST_ABORTED) && c && !phantom++)
				violation(it, "stream %u seq %llu received but never %s", s, (unsigned long long)q,
				          st == ST_NONE ? "sent" : "committed (aborted)");
			for (unsigned k = 1; k < c; k++) {
				dups++;
				if (!redelivery(it, s, q))
					if (!bad_dups++)
						violation(it, "stream %u seq %llu received %u times", s,
						          (unsigned long long)q, c);
			}
		}
	unsigned allow = it->scn == S_SPSC ? 0 : it->dead_cons;
	t->lost += lost;
	t->dups += dups;
	t->allowed += (lost < allow ? lost : allow) + (dups - bad_dups);
	if (lost > allow)
		violation(it, "%llu committed messages lost (%u consumers killed, %s)", (unsigned long long)lost,
		          it->dead_cons, it->scn == S_SPSC ? "SPSC loses none" : "at most one each");
	if (it->scn == S_SPSC)
		spsc_order(it);
}

static void build_cum(struct iter *it)
{
	for (int s = 0; s < SK_STREAMS; s++) {
		cum[s][0] = 0;
		for (uint64_t q = 0; q <= SK_MAXSEQ; q++)
			cum[s][q + 1] = cum[s][q] + (it->b->state[s][q] == ST_COMMITTED);
	}
}

/* Committed messages of stream s with seq in [a, b). */
static uint64_t committed_in(int s, uint64_t a, uint64_t b)
{
	return b > a ? cum[s][b] - cum[s][a] : 0;
}

/* One subscriber: its log against the publishers' records and its lost
 * counts.  stale: loans readers abandoned (-ESTALE, each counted lost). */
static void judge_sub(struct iter *it, struct role *ro, uint64_t head, uint64_t stale)
{
	const struct slog *log = it->b->logs[ro->log];
	uint64_t lsum = 0, at[SK_STREAMS] = { 0 }, from[SK_STREAMS] = { 0 }, lost = 0, gaps = 0;
	struct tally *t = it->t;

	memset(cnt, 0, sizeof(cnt));
	for (uint64_t i = 0; i < ro->nlog; i++) {
		const struct slog *e = &log[i];
		uint8_t st = it->b->state[e->stream][e->seq];
		lsum += e->lost;
		if ((st == ST_NONE || st == ST_ABORTED) && cnt[e->stream][e->seq] == 0)
			violation(it, "stream %u seq %llu delivered but never %s", e->stream,
			          (unsigned long long)e->seq, st == ST_NONE ? "published" : "committed (aborted)");
		else if (cnt[e->stream][e->seq])
			violation(it, "stream %u seq %llu delivered twice", e->stream, (unsigned long long)e->seq);
		cnt[e->stream][e->seq] = 1;
		uint64_t missed = committed_in((int)e->stream, from[e->stream], e->seq);
		if (missed > lsum - at[e->stream] && !gaps++)
			violation(it, "stream %u: %llu committed messages missed before seq %llu, lost reported %llu",
			          e->stream, (unsigned long long)missed, (unsigned long long)e->seq,
			          (unsigned long long)(lsum - at[e->stream]));
		at[e->stream] = lsum;
		from[e->stream] = e->seq + 1;
	}
	bool ended = sk_load_acquire(&ro->finished); /* else lost_total was never set */
	for (int s = 0; s < SK_STREAMS; s++) {
		uint64_t missed = committed_in(s, from[s], SK_MAXSEQ + 1);
		if (ended && missed > ro->lost_total - at[s] && !gaps++)
			violation(it, "stream %d: %llu committed messages missed at the end, lost %llu",
			          s, (unsigned long long)missed, (unsigned long long)(ro->lost_total - at[s]));
		for (uint64_t q = 0; q <= SK_MAXSEQ; q++)
			lost += it->b->state[s][q] == ST_COMMITTED && !cnt[s][q];
	}
	if (!ended) {
		violation(it, "a subscriber did not finish; its lost counts are not judged");
		return;
	}
	if (lsum > ro->lost_total)
		violation(it, "subscriber reported %llu lost, its entry counts %llu", (unsigned long long)lsum,
		          (unsigned long long)ro->lost_total);
	t->received += ro->nlog;
	t->lost += lost;
	t->rep_lost += ro->lost_total;
	if (it->scn == S_BUS_BP) {
		if (lost)
			violation(it, "back-pressure: %llu committed messages missed", (unsigned long long)lost);
		if (ro->lost_total > it->dead_pubs + stale)
			violation(it, "back-pressure: %llu lost, but %u publishers died and %llu loans went stale",
			          (unsigned long long)ro->lost_total, it->dead_pubs, (unsigned long long)stale);
		else
			t->allowed += ro->lost_total;
	} else {
		t->allowed += gaps ? 0 : lost;
		if (ro->nlog + ro->lost_total > head)
			violation(it, "received %llu + lost %llu > %llu sequences published",
			          (unsigned long long)ro->nlog, (unsigned long long)ro->lost_total,
			          (unsigned long long)head);
	}
}

static void judge_bus(struct iter *it)
{
	struct shmkit_bus_stats bs;
	uint64_t stale = 0;

	build_cum(it);
	shmkit_bus_stats(it->bus, &bs);
	for (int r = 0; r < it->nroles; r++)
		if (it->b->roles[r].kind == K_PUBLISHER)
			stale += it->b->roles[r].stale;
	for (int s = 0; s < SK_STREAMS; s++) {
		it->t->committed += cum[s][SK_MAXSEQ + 1];
		for (uint64_t q = 0; q < SK_MAXSEQ; q++)
			it->t->maybe += it->b->state[s][q] == ST_TRYING;
	}
	for (int r = 0; r < it->nroles; r++)
		if (it->b->roles[r].kind == K_SUBSCRIBER)
			judge_sub(it, &it->b->roles[r], bs.head, stale);
}

static void judge_journal(struct iter *it)
{
	const uint8_t *st = it->b->state[0];
	uint64_t follower = 0;

	for (uint64_t q = 1; q <= SK_MAXSEQ; q++) {
		it->t->committed += st[q] == ST_COMMITTED && q <= it->jlast;
		it->t->maybe += st[q] == ST_TRYING;
	}
	for (int r = 0; r < it->nroles; r++)
		if (it->b->roles[r].kind == K_FOLLOWER)
			follower += it->b->roles[r].ops;
	it->t->received += follower;
	it->t->lost += it->jlost;
	if (follower != it->jlast)
		violation(it, "journal: the follower read %llu records of %llu", (unsigned long long)follower,
		          (unsigned long long)it->jlast);
}

/* rpc: the clients' records against the servers' logs. */
static void judge_rpc(struct iter *it)
{
	struct tally *t = it->t;
	uint64_t twice = 0, phantom = 0, unanswered = 0, reset_answered = 0, resets = 0;

	for (int r = 0; r < it->nroles; r++) {
		const struct role *ro = &it->b->roles[r];
		if (ro->kind == K_SERVER) {
			absorb(it, r);
			t->srv_dropped += ro->stale;
		}
		t->busy += ro->kind == K_CLIENT ? ro->busy : 0;
	}
	t->srv_kills += it->dead_srvs;
	for (uint32_t s = 0; s < SK_STREAMS; s++)
		for (uint64_t q = 0; q < SK_MAXSEQ; q++) {
			uint8_t st = it->b->state[s][q], c = cnt[s][q], m = held_dead[s][q];
			t->calls += st != ST_NONE && st != ST_ABORTED;
			t->committed += st == ST_COMMITTED;
			t->maybe += st == ST_TRYING;
			t->timeouts += st == ST_TIMEDOUT;
			t->cancels += st == ST_CANCELLED;
			t->aborted += st == ST_ABORTED;
			t->srv_answers += c;
			resets += st == ST_RESET;
			if (c > 1 && !twice++)
				violation(it, "client %u call %llu answered %u times (servers' logs)", s,
				          (unsigned long long)q, c);
			if ((st == ST_NONE || st == ST_ABORTED) && (c || m) && !phantom++)
				violation(it, "client %u call %llu answered, but it was never %s", s,
				          (unsigned long long)q, st == ST_NONE ? "sent" : "sent (loan aborted)");
			if (st == ST_COMMITTED && !c && !m && !unanswered++)
				violation(it, "client %u call %llu received an answer no server gave", s,
				          (unsigned long long)q);
			if (st == ST_RESET && c && !reset_answered++)
				violation(it, "client %u call %llu reset (-ECONNRESET), but a server answered it",
				          s, (unsigned long long)q);
		}
	t->answered = t->committed;
	t->received = t->srv_answers;
	t->resets += resets;
	t->lost += resets;
	t->dups += twice;
	if (resets > (uint64_t)it->dead_srvs * SK_HOLD)
		violation(it, "%llu calls reset (-ECONNRESET), but %u servers were killed, holding at most "
		          "%u calls each", (unsigned long long)resets, it->dead_srvs, SK_HOLD);
	else
		t->allowed += resets;
}

static void judge(struct iter *it)
{
	const uint32_t *f = it->b->findings;

	it->t->torn += f[F_TORN];
	it->t->hangs += f[F_HANG];
	if (f[F_TORN] + f[F_HANG] + f[F_ORDER] + f[F_ERROR] + f[F_WRONG])
		violation(it, "the processes reported %u torn, %u hangs, %u out of order, %u errors, "
		          "%u wrong answers (above)", f[F_TORN], f[F_HANG], f[F_ORDER], f[F_ERROR], f[F_WRONG]);
	if (it->scn == S_RPC)
		judge_rpc(it);
	else if (it->scn <= S_SPSC)
		judge_chan(it);
	else if (it->scn == S_JOURNAL)
		judge_journal(it);
	else
		judge_bus(it);
}

/* ---- iterations -------------------------------------------------------------------------- */

static void iteration(enum scn scn, uint64_t no)
{
	struct iter *it = calloc(1, sizeof(*it));

	if (!it) {
		perror("stress_kill: calloc");
		exit(2);
	}
	it->scn = scn;
	it->no = no;
	it->seed = opt.seed ^ (no + 1) * 0xD1B54A32D192ED03ull;
	it->rng = it->seed;
	it->t = &tallies[scn];
	it->fd = -1;
	it->t->iters++;
	live = it;
	alarm((unsigned)(opt.hang_ns / SEC) * 8 + 60);
	memset(cnt, 0, sizeof(cnt));
	memset(held_dead, 0, sizeof(held_dead));
	int e = setup(it);
	if (e) {
		violation(it, "making the %s: %s (%s)", scn_names[scn], shmkit_strerror(e), shmkit_errdetail());
	} else {
		unsigned want = 1 + (unsigned)sk_rand_below(&it->rng, 6);
		start_all(it);
		while (it->kills < want && it->nroles < SK_ROLES - 1 && it->nlogs < SK_LOGS - 1) {
			pump(it);
			int v = pick_victim(it);
			if (v < 0)
				break;
			kill_one(it, v);
		}
		finish(it);
		judge(it);
	}
	if (opt.verbose)
		printf("%-16s iteration %-5llu kills %u  roles %d  %s\n", scn_names[scn], (unsigned long long)no,
		       it->kills, it->nroles, it->violated ? "VIOLATION" : "ok");
	teardown(it);
	alarm(0);
	live = NULL;
	free(it);
}

/* ---- options and the report ------------------------------------------------------------- */

static void add_points(const char *list)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save, *p = strtok_r(buf, ", \n", &save); p; p = strtok_r(NULL, ", \n", &save)) {
		bool dup = false;
		for (int i = 0; i < opt.npoints; i++)
			dup |= !strcmp(opt.points[i].name, p);
		if (!dup && opt.npoints < MAX_POINTS && strlen(p) < sizeof(opt.points[0].name))
			snprintf(opt.points[opt.npoints++].name, sizeof(opt.points[0].name), "%s", p);
	}
}

static int parse_scn(const char *s)
{
	for (int i = 1; i < S_COUNT; i++)
		if (!strcmp(s, scn_names[i]))
			return i;
	int n = atoi(s);
	return n >= 1 && n < S_COUNT ? n : -1;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: stress_kill [-n KILLS] [-s SEED] [-S SCENARIO] [-i FIRST] [-T SECONDS]\n"
	        "                   [-P POINT,...] [-v]\n"
	        "  -n  SIGKILLs in total (default 1500)   -s  seed (default: from the clock)\n"
	        "  -S  1..7 or a name (default: all in turn)   -i  first iteration number\n"
	        "  -T  a wait longer than this is a HANG (default 10)\n"
	        "  -P  more crash point names (SK_CRASH_POINT in src/)   -v  a line per iteration\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	int c;

	opt.seed = (uint64_t)sk_realtime_ns() ^ (uint64_t)getpid() << 32;
	add_points("chan.spsc.published,chan.mpmc.written,journal.append.committed");
	while ((c = getopt(argc, argv, "n:s:S:i:T:P:vh")) != -1) {
		switch (c) {
		case 'n': opt.kills = strtoull(optarg, NULL, 0); break;
		case 's': opt.seed = strtoull(optarg, NULL, 0); break;
		case 'S': if ((opt.scn = parse_scn(optarg)) < 0) usage(); break;
		case 'i': opt.first = strtoull(optarg, NULL, 0); break;
		case 'T': opt.hang_ns = (int64_t)atoi(optarg) * SEC; break;
		case 'P': add_points(optarg); break;
		case 'v': opt.verbose++; break;
		default: usage();
		}
	}
	if (optind != argc || opt.hang_ns <= 0 || !opt.kills)
		usage();
}

/* Anything of this run left in /dev/shm or /tmp: reported and removed. */
static unsigned residue(void)
{
	static const char *const dirs[] = { "/dev/shm", "/tmp" };
	char prefix[64], path[512];
	unsigned n = 0;

	sk_test_base(prefix, sizeof(prefix), "kill-");
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (strncmp(e->d_name, prefix, strlen(prefix)))
				continue;
			printf("stress_kill: LEFT BEHIND: %s/%s\n", dirs[i], e->d_name);
			snprintf(path, sizeof(path), "%s/%s", dirs[i], e->d_name);
			nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
			n++;
		}
		if (d)
			closedir(d);
	}
	return n;
}

/* The rpc scenario's own figures, one line. */
static void report_rpc(const struct tally *r)
{
	const struct {
		const char *fmt;
		uint64_t v;
	} f[] = {
		{ "rpc: %llu calls:", r->calls }, { " %llu answered right,", r->answered },
		{ " %llu reset,", r->resets }, { " %llu timed out,", r->timeouts },
		{ " %llu cancelled,", r->cancels }, { " %llu in flight at a client's kill", r->maybe },
		{ " (+%llu loans aborted);", r->aborted }, { " servers: %llu answers,", r->srv_answers },
		{ " %llu dropped (caller gone),", r->srv_dropped }, { " %llu killed;", r->srv_kills },
		{ " %llu -EBUSY retries;", r->busy }, { " after the loop: %llu calls answered", r->after_calls },
		{ " (+%llu left by dead clients)\n", r->after_foreign },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		printf(f[i].fmt, (unsigned long long)f[i].v);
}

static int report(double secs, unsigned left)
{
	int passed = 0, failed = 0, skipped = 0;
	uint64_t kills = 0;

	printf("%-17s %6s %6s %5s %9s %6s %9s %5s %5s %8s %5s %5s %7s %5s\n", "scenario", "iters", "kills",
	       "cp", "committed", "maybe", "received", "lost", "dups", "rep_lost", "torn", "hangs",
	       "allowed", "viol");
	for (int s = 1; s < S_COUNT; s++) {
		const struct tally *t = &tallies[s];
		if (!t->iters) {
			skipped++;
			continue;
		}
		kills += t->kills;
		t->violations ? failed++ : passed++;
		printf("%-17s %6llu %6llu %5llu %9llu %6llu %9llu %5llu %5llu %8llu %5llu %5llu %7llu %5llu\n",
		       scn_names[s], (unsigned long long)t->iters, (unsigned long long)t->kills,
		       (unsigned long long)t->cp_kills, (unsigned long long)t->committed,
		       (unsigned long long)t->maybe, (unsigned long long)t->received,
		       (unsigned long long)t->lost, (unsigned long long)t->dups,
		       (unsigned long long)t->rep_lost, (unsigned long long)t->torn,
		       (unsigned long long)t->hangs, (unsigned long long)t->allowed,
		       (unsigned long long)t->violations);
	}
	if (tallies[S_RPC].iters)
		report_rpc(&tallies[S_RPC]);
	printf("crash points (armed/fired):");
	for (int i = 0; i < opt.npoints; i++)
		printf(" %s %llu/%llu", opt.points[i].name, (unsigned long long)opt.points[i].armed,
		       (unsigned long long)opt.points[i].fired);
	printf("\nstress_kill: %llu kills in %.1f s, seed 0x%llx\n", (unsigned long long)kills, secs,
	       (unsigned long long)opt.seed);
	if (left) {
		printf("stress_kill: %u names left behind (removed now)\n", left);
		failed += !failed;
	}
	printf("stress_kill: %d passed, %d failed", passed, failed);
	if (skipped)
		printf(", %d skipped", skipped);
	printf("\n");
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--child"))
		return child_main(argv);
	driver_pid = getpid();
	unsetenv("SHMKIT_CRASH_AT"); /* the driver never dies at a point */
	parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(cleanup_at_exit);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	printf("stress_kill: seed 0x%llx, %llu kills, %s\n", (unsigned long long)opt.seed,
	       (unsigned long long)opt.kills, opt.scn ? scn_names[opt.scn] : "every scenario in turn");
	int64_t t0 = now_ns();
	uint64_t done = 0;
	for (uint64_t no = opt.first; done < opt.kills; no++) {
		enum scn scn = opt.scn ? (enum scn)opt.scn : (enum scn)(1 + no % (S_COUNT - 1));
		uint64_t before = tallies[scn].kills;
		iteration(scn, no);
		done += tallies[scn].kills - before;
	}
	return report((double)(now_ns() - t0) / SEC, residue());
}
