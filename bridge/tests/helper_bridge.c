/*
 * helper_bridge.c - a producer or consumer for the bridge's tests, run
 * inside a "host" (its own IPC and mount namespace) by nsenter.
 *
 *   helper_bridge chan NAME CAPACITY MAX_MSG spsc|mpmc   create (or open)
 *   helper_bridge produce NAME N SIZE     send N messages: an 8-digit
 *       number 0..N-1, then 'x' up to SIZE bytes (the test's relay
 *       corrupts only inside such runs of 'x')
 *   helper_bridge consume NAME N EVERY    receive until N distinct
 *       messages came; "at K" every EVERY of them, then it reads a line
 *       of stdin before going on (the test holds it there: the channel
 *       fills up behind it); at the end "done got=G dup=D order=O bad=B";
 *       exit 0 only if G == N and D, O, B are 0
 *   helper_bridge jappend PATH N SIZE EVERY   a journal writer (created
 *       if missing) appends N records like produce's; "at K" every EVERY
 *       of them, then it waits for a line of stdin
 *   helper_bridge jwait PATH SEQ          wait until record SEQ is there
 *   helper_bridge jdump PATH              "SEQ TIME LEN HASH" per record
 *       (its stamp, FNV-1a of its bytes), then "verify RC records N holes H"; exit 0 if the
 *       journal verifies clean
 *   helper_bridge serve NAME              an rpc server (the service created
 *       if missing; "serving" once it is): "deadline" is answered
 *       "left=MS" (-1: none), "sleep:MS" after that long, "status:N" with
 *       the status N, anything else with "re:" and the request
 *   helper_bridge call NAME N             N calls checked, a deadline and a
 *       status read back: "calls=N left=MS status=S"
 *   helper_bridge hang NAME               "calling", then one call the
 *       server holds 20 s (timeout 30 s): "rc=RC" (the error it got)
 *   helper_bridge bus NAME CAPACITY       create a back-pressure bus
 *   helper_bridge publish NAME N EVERY    "probe" every 10 ms until a line
 *       comes on stdin, then N messages like produce's; "at K" every EVERY
 *       of them, and it waits for a line
 *   helper_bridge subscribe NAME LAST EVERY   subscribe (the bus opened
 *       when it exists; then "subscribed") and receive until message
 *       LAST; probes skipped;
 *       "at K" every EVERY received, then "done got=G order=O lost=L"
 *       (order: a number not above the one before; lost: the bus's count)
 *   helper_bridge collect NAME            receive (the channel opened when
 *       it exists) and print each message's number on a line, until a
 *       line comes on stdin; then "end N"
 * Waits are bounded (60 s a message): a lost message fails, never hangs.
 * Exit 1 on failure, 2 on usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmkit.h"

#define WAIT_NS 60000000000ll

static int chan(char **argv)
{
	struct shmkit_chan_opts o = { .capacity = (uint32_t)atoi(argv[3]),
	                              .max_msg = (uint32_t)atoi(argv[4]),
	                              .flags = strcmp(argv[5], "spsc") ? 0 : SHMKIT_CHAN_SPSC };
	shmkit_chan *ch;
	int rc = shmkit_chan_create(&ch, argv[2], &o);

	if (rc) {
		fprintf(stderr, "helper_bridge: %s: %s\n", argv[2], shmkit_strerror(rc));
		return 1;
	}
	shmkit_chan_close(ch);
	return 0;
}

static int produce(char **argv)
{
	int n = atoi(argv[3]);
	size_t size = (size_t)atoi(argv[4]);
	char *m = malloc(size + 1);
	shmkit_chan *ch;
	int rc = m && size >= 8 ? shmkit_chan_open(&ch, argv[2], NULL) : -22;

	for (int i = 0; !rc && i < n; i++) {
		snprintf(m, size + 1, "%08d", i);
		memset(m + 8, 'x', size - 8);
		rc = shmkit_chan_send(ch, m, size, WAIT_NS);
	}
	if (rc) {
		fprintf(stderr, "helper_bridge: produce %s: %s\n", argv[2], shmkit_strerror(rc));
		return 1;
	}
	shmkit_chan_close(ch);
	free(m);
	return 0;
}

static int consume(char **argv)
{
	int n = atoi(argv[3]), every = atoi(argv[4]), got = 0, dup = 0, order = 0, bad = 0;
	unsigned char *seen = calloc((size_t)n, 1);
	long last = -1;
	char m[65536];
	shmkit_chan *ch;
	int rc = seen ? shmkit_chan_open(&ch, argv[2], NULL) : -12;

	while (!rc && got < n) {
		ssize_t r = shmkit_chan_recv(ch, m, sizeof(m) - 1, WAIT_NS);
		if (r < 0) {
			rc = (int)r;
			break;
		}
		m[r] = '\0';
		long seq = r >= 8 ? strtol(m, NULL, 10) : -1;
		if (seq < 0 || seq >= n || strspn(m + 8, "x") != (size_t)r - 8) {
			bad++;
			continue;
		}
		if (seen[seq]) {
			dup++;
			continue;
		}
		order += seq != last + 1;
		last = seq;
		seen[seq] = 1;
		if (++got % every == 0) {
			char go[16];
			printf("at %d\n", got);
			fflush(stdout);
			if (!fgets(go, sizeof(go), stdin))
				clearerr(stdin); /* EOF: go on */
		}
	}
	printf("done got=%d dup=%d order=%d bad=%d rc=%d\n", got, dup, order, bad, rc);
	fflush(stdout);
	if (!rc)
		shmkit_chan_close(ch);
	free(seen);
	return !rc && got == n && !dup && !order && !bad ? 0 : 1;
}

static int jappend(char **argv)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE };
	int n = atoi(argv[3]), every = atoi(argv[5]);
	size_t size = (size_t)atoi(argv[4]);
	char *m = malloc(size + 1);
	shmkit_journal *j;
	int rc = m && size >= 8 ? shmkit_journal_open(&j, argv[2], &o) : -22;

	for (int i = 0; !rc && i < n; i++) {
		snprintf(m, size + 1, "%08d", i);
		memset(m + 8, 'x', size - 8);
		rc = shmkit_journal_append(j, m, size, NULL);
		if (!rc && (i + 1) % every == 0) {
			char go[16];
			printf("at %d\n", i + 1);
			fflush(stdout);
			if (!fgets(go, sizeof(go), stdin))
				clearerr(stdin);
		}
	}
	if (rc) {
		fprintf(stderr, "helper_bridge: jappend %s: %s\n", argv[2], shmkit_strerror(rc));
		return 1;
	}
	free(m);
	return shmkit_journal_close(j) ? 1 : 0;
}

static int jwait(char **argv)
{
	struct shmkit_record rec;
	shmkit_journal *j;
	int rc;

	for (int i = 0; i < 600 && (rc = shmkit_journal_open(&j, argv[2], NULL)) == -ENOENT; i++)
		usleep(100000);
	if (!rc)
		rc = shmkit_journal_seek_seq(j, (uint64_t)atoll(argv[3]));
	if (!rc)
		rc = shmkit_journal_next(j, &rec, WAIT_NS);
	if (rc != 1) {
		fprintf(stderr, "helper_bridge: jwait %s: %s\n", argv[2], shmkit_strerror(rc));
		return 1;
	}
	shmkit_journal_close(j);
	return 0;
}

static int jdump(char **argv)
{
	struct shmkit_journal_report rep;
	struct shmkit_record rec;
	shmkit_journal *j;
	int rc = shmkit_journal_open(&j, argv[2], NULL), n = 0;

	while (!rc && (rc = shmkit_journal_next(j, &rec, 0)) == 1) {
		uint64_t h = 1469598103934665603ull;
		for (uint32_t i = 0; i < rec.len; i++)
			h = (h ^ ((const unsigned char *)rec.data)[i]) * 1099511628211ull;
		printf("%llu %lld %u %016llx\n", (unsigned long long)rec.seq, (long long)rec.time_ns,
		       rec.len, (unsigned long long)h);
		n++;
		rc = 0;
	}
	if (rc == -EAGAIN)
		rc = 0; /* the end, said as "nothing yet" (shmkit.h says 0) */
	if (rc == 0)
		shmkit_journal_close(j);
	int v = shmkit_journal_verify(argv[2], &rep);
	printf("verify %d records %d holes %u\n", v, n, rep.holes);
	return rc || v ? 1 : 0;
}

static int serve(char **argv)
{
	shmkit_rpc *r;
	int rc = shmkit_rpc_create(&r, argv[2], NULL);

	if (rc) {
		fprintf(stderr, "helper_bridge: serve %s: %s\n", argv[2], shmkit_strerror(rc));
		return 1;
	}
	printf("serving\n");
	fflush(stdout);
	for (;;) {
		struct shmkit_rpc_req q;
		char out[2048], in[1100];
		int st = 0;
		if (shmkit_rpc_recv(r, &q, 100000000))
			continue;
		snprintf(in, sizeof(in), "%.*s", (int)(q.len < 1000 ? q.len : 1000), (const char *)q.data);
		if (!strcmp(in, "deadline")) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long long now = (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
			snprintf(out, sizeof(out), "left=%lld",
			         q.deadline_ns == INT64_MAX ? -1 : (q.deadline_ns - now) / 1000000);
		} else if (!strncmp(in, "sleep:", 6)) {
			usleep((useconds_t)atoi(in + 6) * 1000);
			snprintf(out, sizeof(out), "slept");
		} else if (!strncmp(in, "status:", 7)) {
			st = atoi(in + 7);
			snprintf(out, sizeof(out), "st");
		} else {
			snprintf(out, sizeof(out), "re:%s", in);
		}
		shmkit_rpc_respond_status(r, &q, out, strlen(out), st);
	}
}

static int rpc_open(shmkit_rpc **r, const char *name)
{
	int rc;

	for (int i = 0; i < 600 && (rc = shmkit_rpc_open(r, name, NULL)) == -ENOENT; i++)
		usleep(100000); /* the bridge makes it at the far bridge's first answer */
	return rc;
}

static int call(char **argv)
{
	int n = atoi(argv[3]), rc;
	char req[64], resp[2048];
	shmkit_rpc *r;
	ssize_t len;

	if ((rc = rpc_open(&r, argv[2])))
		return fprintf(stderr, "helper_bridge: call %s: %s\n", argv[2], shmkit_strerror(rc)), 1;
	for (int i = 0; i < n; i++) {
		int l = snprintf(req, sizeof(req), "m%06d", i);
		len = shmkit_rpc_call(r, req, (size_t)l, resp, sizeof(resp) - 1, 10000000000ll);
		if (len != l + 3 || memcmp(resp, "re:", 3) || memcmp(resp + 3, req, (size_t)l)) {
			fprintf(stderr, "helper_bridge: call %d: %zd\n", i, len);
			return 1;
		}
	}
	len = shmkit_rpc_call(r, "deadline", 8, resp, sizeof(resp) - 1, 3000000000ll);
	resp[len > 0 ? len : 0] = '\0';
	uint64_t id = 0;
	const void *p;
	int st = -1;
	if (!shmkit_rpc_send(r, "status:7", 8, 0, 10000000000ll, &id) &&
	    shmkit_rpc_wait(r, &id, &p, 10000000000ll) >= 0) {
		st = shmkit_rpc_status(r, id);
		shmkit_rpc_release(r, id);
	}
	printf("calls=%d %s status=%d\n", n, resp, st);
	shmkit_rpc_close(r);
	return 0;
}

static int hang(char **argv)
{
	char resp[64];
	shmkit_rpc *r;
	int rc = rpc_open(&r, argv[2]);

	if (rc)
		return 1;
	printf("calling\n");
	fflush(stdout);
	ssize_t len = shmkit_rpc_call(r, "sleep:20000", 11, resp, sizeof(resp), 30000000000ll);
	printf("rc=%zd\n", len);
	shmkit_rpc_close(r);
	return 0;
}

static int bus(char **argv)
{
	struct shmkit_bus_opts o = { .capacity = (uint32_t)atoi(argv[3]), .max_msg = 256,
	                             .delivery = SHMKIT_BUS_BACKPRESSURE };
	shmkit_bus *b;
	int rc = shmkit_bus_create(&b, argv[2], &o);

	if (rc)
		return fprintf(stderr, "helper_bridge: bus %s: %s\n", argv[2], shmkit_strerror(rc)), 1;
	shmkit_bus_close(b);
	return 0;
}

/* A line on stdin within ms milliseconds: 1, else 0. */
static int line_within(int ms)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char go[16];

	if (poll(&p, 1, ms) != 1)
		return 0;
	if (!fgets(go, sizeof(go), stdin))
		clearerr(stdin);
	return 1;
}

static int publish(char **argv)
{
	int n = atoi(argv[3]), every = atoi(argv[4]), rc;
	char m[64];
	shmkit_bus *b;

	if ((rc = shmkit_bus_open(&b, argv[2], NULL)))
		return 1;
	do
		rc = shmkit_bus_publish(b, "probe", 5, WAIT_NS);
	while (!rc && !line_within(10));
	for (int i = 0; !rc && i < n; i++) {
		memset(m, 'x', sizeof(m));
		snprintf(m, sizeof(m), "%08d", i);
		m[8] = 'x';
		rc = shmkit_bus_publish(b, m, sizeof(m), WAIT_NS);
		if (!rc && (i + 1) % every == 0) {
			printf("at %d\n", i + 1);
			fflush(stdout);
			line_within(-1);
		}
	}
	if (rc)
		return fprintf(stderr, "helper_bridge: publish: %s\n", shmkit_strerror(rc)), 1;
	shmkit_bus_close(b);
	return 0;
}

static int subscribe(char **argv)
{
	struct shmkit_bus_opts so = { .from = SHMKIT_FROM_OLDEST };
	long last = atol(argv[3]), prev = -1;
	int every = atoi(argv[4]), got = 0, order = 0, rc;
	uint64_t lost = 0;
	shmkit_bus *b;
	shmkit_sub *sub;
	char m[300];

	for (int i = 0; i < 600 && (rc = shmkit_bus_open(&b, argv[2], NULL)) == -ENOENT; i++)
		usleep(100000);
	if (rc || (rc = shmkit_bus_subscribe(&sub, b, &so)))
		return 1;
	printf("subscribed\n");
	fflush(stdout);
	while (prev < last) {
		uint64_t l = 0;
		ssize_t r = shmkit_sub_recv(sub, m, sizeof(m) - 1, &l, WAIT_NS);
		if (r < 0)
			break;
		lost += l;
		m[r] = '\0';
		if (!strcmp(m, "probe"))
			continue;
		long seq = atol(m);
		order += seq <= prev;
		prev = seq;
		if (++got % every == 0) {
			printf("at %d\n", got);
			fflush(stdout);
		}
	}
	printf("done got=%d order=%d lost=%llu\n", got, order, (unsigned long long)lost);
	fflush(stdout);
	shmkit_bus_unsubscribe(sub);
	shmkit_bus_close(b);
	return prev == last ? 0 : 1;
}

static int collect(char **argv)
{
	shmkit_chan *ch;
	char m[65536];
	int n = 0, rc;

	for (int i = 0; i < 600 && (rc = shmkit_chan_open(&ch, argv[2], NULL)) == -ENOENT; i++)
		usleep(100000);
	if (rc)
		return 1;
	printf("open\n");
	fflush(stdout);
	while (!line_within(0)) {
		ssize_t r = shmkit_chan_recv(ch, m, sizeof(m) - 1, 10000000);
		if (r == -ETIMEDOUT || r == -EAGAIN)
			continue;
		if (r < 8)
			return 1;
		m[8] = '\0';
		printf("%s\n", m);
		fflush(stdout);
		n++;
	}
	printf("end %d\n", n);
	shmkit_chan_close(ch);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "collect"))
		return collect(argv);
	if (argc == 4 && !strcmp(argv[1], "bus"))
		return bus(argv);
	if (argc == 5 && !strcmp(argv[1], "publish"))
		return publish(argv);
	if (argc == 5 && !strcmp(argv[1], "subscribe"))
		return subscribe(argv);
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(argv);
	if (argc == 4 && !strcmp(argv[1], "call"))
		return call(argv);
	if (argc == 3 && !strcmp(argv[1], "hang"))
		return hang(argv);
	if (argc == 6 && !strcmp(argv[1], "jappend"))
		return jappend(argv);
	if (argc == 4 && !strcmp(argv[1], "jwait"))
		return jwait(argv);
	if (argc == 3 && !strcmp(argv[1], "jdump"))
		return jdump(argv);
	if (argc == 6 && !strcmp(argv[1], "chan"))
		return chan(argv);
	if (argc == 5 && !strcmp(argv[1], "produce"))
		return produce(argv);
	if (argc == 5 && !strcmp(argv[1], "consume"))
		return consume(argv);
	fprintf(stderr, "usage: helper_bridge chan|produce|consume ...\n");
	return 2;
}
