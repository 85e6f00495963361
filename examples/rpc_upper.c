/*
 * rpc_upper.c - request/response: a client and two server processes.
 *
 * The parent creates the service and forks two servers; each opens it by
 * name and answers every request it takes with the request in upper case.
 * Each request goes to exactly one server, each response back to the
 * client that asked (and only to it).  The client (the parent) makes N
 * calls and checks every answer, then sends one empty request per server:
 * a server that takes one answers it and exits.
 *
 * Usage: rpc_upper [NAME [COUNT]]   (default posix:/rpc-upper-PID, 2000)
 *
 *   cc rpc_upper.c $(pkg-config --cflags --libs shmkit) -o rpc_upper
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

#define SERVERS 2
#define WAIT_NS (5 * 1000000000LL)

static int serve(const char *name)
{
	shmkit_rpc *r;
	struct shmkit_rpc_req req;
	char resp[64];
	unsigned answered = 0;
	int err = shmkit_rpc_open(&r, name, NULL);

	while (!err) {
		/* Take the next request; it stays in shared memory (req.data)
		 * until answered.  -ETIMEDOUT: no client for 5 s, give up. */
		if ((err = shmkit_rpc_recv(r, &req, WAIT_NS)))
			break;
		size_t len = req.len < sizeof(resp) ? req.len : sizeof(resp);
		for (size_t i = 0; i < len; i++)
			resp[i] = (char)toupper(((const unsigned char *)req.data)[i]);
		err = shmkit_rpc_respond(r, &req, resp, len);
		if (err == -ECANCELED) /* the caller gave up: not our problem */
			err = 0;
		if (req.len == 0) /* the client's "stop" */
			break;
		answered++;
	}
	if (err)
		fprintf(stderr, "server: %s: %s\n", name, shmkit_strerror(err));
	else
		printf("server (pid %d): answered %u calls\n", (int)getpid(), answered);
	shmkit_rpc_close(r);
	return err ? 1 : 0;
}

static int client(shmkit_rpc *r, unsigned count)
{
	char req[64], resp[64], want[64];

	for (unsigned i = 0; i < count; i++) {
		int len = snprintf(req, sizeof(req), "call %u", i);
		snprintf(want, sizeof(want), "CALL %u", i);
		/* Send, wait for the answer, copy it out: its length. */
		ssize_t n = shmkit_rpc_call(r, req, (size_t)len, resp, sizeof(resp), WAIT_NS);
		if (n != len || memcmp(resp, want, (size_t)len)) {
			fprintf(stderr, "client: call %u: %s\n", i,
			        n < 0 ? shmkit_strerror((int)n) : "wrong answer");
			return 1;
		}
	}
	printf("client (pid %d): %u calls answered correctly\n", (int)getpid(), count);
	return 0;
}

int main(int argc, char **argv)
{
	char def[64];
	snprintf(def, sizeof(def), "posix:/rpc-upper-%d", (int)getpid());
	const char *name = argc > 1 ? argv[1] : def;
	unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
	struct shmkit_rpc_opts opts = { .max_request = 64, .max_response = 64,
	                                .flags = SHMKIT_EXCL };
	shmkit_rpc *r;
	pid_t pids[SERVERS];
	int err, status, rc, started = 0;

	if ((err = shmkit_rpc_create(&r, name, &opts))) {
		fprintf(stderr, "create %s: %s %s\n", name, shmkit_strerror(err), shmkit_errdetail());
		return 1;
	}
	fflush(stdout); /* so the child does not print the parent's buffer again */
	for (; started < SERVERS; started++) {
		if ((pids[started] = fork()) == 0)
			exit(serve(name));
		if (pids[started] < 0)
			break;
	}
	rc = started < SERVERS ? 1 : client(r, count);
	/* Stop each server that started: one empty request each. */
	for (int i = 0; i < started; i++)
		shmkit_rpc_call(r, "", 0, NULL, 0, WAIT_NS);
	for (int i = 0; i < started; i++)
		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			rc = 1;
	shmkit_rpc_close(r);
	shmkit_seg_remove(name);
	return rc;
}
