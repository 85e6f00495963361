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
 * Waits are bounded (60 s a message): a lost message fails, never hangs.
 * Exit 1 on failure, 2 on usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "chan"))
		return chan(argv);
	if (argc == 5 && !strcmp(argv[1], "produce"))
		return produce(argv);
	if (argc == 5 && !strcmp(argv[1], "consume"))
		return consume(argv);
	fprintf(stderr, "usage: helper_bridge chan|produce|consume ...\n");
	return 2;
}
