/*
 * chan_pipeline.c - a channel between a producer and a consumer process.
 *
 * The parent creates the channel and produces; a forked child opens the
 * channel by name, as an unrelated program would, and consumes.  A channel
 * gives each message to exactly one receiver, in the order its producer
 * sent them, so the consumer checks that it gets "job 0" .. "job N-1" in
 * order.  The channel (64 slots) is smaller than the batch: the producer
 * waits whenever the consumer falls behind.
 *
 * Usage: chan_pipeline [NAME [COUNT]]   (default posix:/chan-pipeline-PID, 10000)
 * Exit status 0 when every message arrived, in order; the channel is
 * removed either way.
 *
 *   cc chan_pipeline.c $(pkg-config --cflags --libs shmkit) -o chan_pipeline
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

#define WAIT_NS (5 * 1000000000LL) /* longest wait for room or a message */

static int consume(const char *name, unsigned count)
{
	shmkit_chan *ch;
	char buf[64], want[64];
	int err = shmkit_chan_open(&ch, name, NULL);

	if (err) {
		fprintf(stderr, "consumer: open %s: %s\n", name, shmkit_strerror(err));
		return 1;
	}
	for (unsigned i = 0; i < count; i++) {
		/* recv copies the message out and returns its length. */
		ssize_t n = shmkit_chan_recv(ch, buf, sizeof(buf) - 1, WAIT_NS);
		if (n < 0) {
			fprintf(stderr, "consumer: recv %u: %s\n", i, shmkit_strerror((int)n));
			shmkit_chan_close(ch);
			return 1;
		}
		buf[n] = '\0';
		snprintf(want, sizeof(want), "job %u", i);
		if (strcmp(buf, want)) {
			fprintf(stderr, "consumer: got \"%s\", expected \"%s\"\n", buf, want);
			shmkit_chan_close(ch);
			return 1;
		}
	}
	printf("consumer (pid %d): received %u messages in order\n", (int)getpid(), count);
	shmkit_chan_close(ch);
	return 0;
}

static int produce(shmkit_chan *ch, unsigned count)
{
	char msg[64];

	for (unsigned i = 0; i < count; i++) {
		int len = snprintf(msg, sizeof(msg), "job %u", i);
		int err = shmkit_chan_send(ch, msg, (size_t)len, WAIT_NS);
		if (err) {
			fprintf(stderr, "producer: send %u: %s\n", i, shmkit_strerror(err));
			return 1;
		}
	}
	printf("producer (pid %d): sent %u messages\n", (int)getpid(), count);
	return 0;
}

int main(int argc, char **argv)
{
	char def[64];
	snprintf(def, sizeof(def), "posix:/chan-pipeline-%d", (int)getpid());
	const char *name = argc > 1 ? argv[1] : def;
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10000;
	/* EXCL: never share a channel someone else left under this name. */
	struct shmkit_chan_opts opts = { .capacity = 64, .max_msg = 64, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	int err, status, rc;

	if ((err = shmkit_chan_create(&ch, name, &opts))) {
		fprintf(stderr, "create %s: %s %s\n", name, shmkit_strerror(err), shmkit_errdetail());
		return 1;
	}
	fflush(stdout); /* so the child does not print the parent's buffer again */
	pid_t pid = fork();
	if (pid == 0)
		exit(consume(name, count)); /* the child uses a handle of its own */
	rc = pid < 0 ? 1 : produce(ch, count);
	if (pid > 0 && (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	                WEXITSTATUS(status)))
		rc = 1;
	shmkit_chan_close(ch);
	shmkit_seg_remove(name); /* the name goes; open handles would stay valid */
	return rc;
}
