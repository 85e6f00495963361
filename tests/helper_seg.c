/*
 * helper_seg.c - an unrelated process for the segment tests (exec'd by
 * them, see lib_test.h sk_test_run).
 *
 *   helper_seg write NAME OFF STRING [OPTS]   open, copy STRING to data+OFF
 *   helper_seg read NAME OFF LEN [OPTS]       open, print LEN bytes at data+OFF
 *   helper_seg race NAME SIZE                 wait for EOF on stdin (the start
 *       barrier), create-or-open NAME (kind bytes) whose init writes
 *       "init:PID"; print "created DATA" or "opened DATA"
 *   helper_seg recvfd SOCKPATH OFF LEN [STRING]  connect to the UNIX socket
 *       (SOCKPATH "@NAME": abstract),
 *       receive a memfd segment, print LEN bytes at OFF, write STRING there,
 *       then print "\nshrink:R" with R the result of ftruncate(fd, 0)
 *       (-EPERM when sealed)
 *
 * OPTS is a comma-separated list of raw, rdonly, cow, t=MS (open timeout).
 * Exit 0 on success; on failure print "ERR CODE TEXT: DETAIL", exit 1;
 * bad usage exits 2.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "seg.h"

static int fail(int err)
{
	printf("ERR %d %s: %s\n", err, shmkit_strerror(err), shmkit_errdetail());
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: helper_seg write|read|race|recvfd ... (see helper_seg.c)\n");
	return 2;
}

static void parse_opts(const char *s, struct shmkit_seg_opts *o)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%s", s ? s : "");
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "raw"))
			o->flags |= SHMKIT_RAW;
		else if (!strcmp(t, "rdonly"))
			o->flags |= SHMKIT_RDONLY;
		else if (!strcmp(t, "cow"))
			o->flags |= SHMKIT_COW;
		else if (!strncmp(t, "t=", 2))
			o->init_timeout_ns = strtoll(t + 2, NULL, 10) * 1000000;
	}
}

/* Bound [off, off+len) by the data area; -EINVAL if outside. */
static int range_ok(const shmkit_seg *s, size_t off, size_t len)
{
	return off <= shmkit_seg_size(s) && len <= shmkit_seg_size(s) - off ? 0 : -EINVAL;
}

static int cmd_rw(int argc, char **argv, int write)
{
	struct shmkit_seg_opts o = { 0 };
	shmkit_seg *s;

	if (argc < 5)
		return usage();
	parse_opts(argc > 5 ? argv[5] : NULL, &o);
	size_t off = strtoul(argv[3], NULL, 0);
	size_t len = write ? strlen(argv[4]) : strtoul(argv[4], NULL, 0);
	int err = shmkit_seg_open(&s, argv[2], &o);
	if (err)
		return fail(err);
	if ((err = range_ok(s, off, len))) {
		shmkit_seg_close(s);
		return fail(err);
	}
	char *data = (char *)shmkit_seg_data(s) + off;
	if (write)
		memcpy(data, argv[4], len);
	else
		fwrite(data, 1, strnlen(data, len), stdout);
	shmkit_seg_close(s);
	return 0;
}

static int race_init(void *data, size_t size, void *arg)
{
	snprintf(data, size, "init:%d", (int)getpid());
	*(int *)arg = 1;
	return 0;
}

static int cmd_race(int argc, char **argv)
{
	struct shmkit_seg_opts o = { .init_timeout_ns = 30 * 1000000000LL };
	shmkit_seg *s;
	int created = 0;
	char c;

	if (argc < 4)
		return usage();
	o.size = strtoul(argv[3], NULL, 0);
	while (read(0, &c, 1) > 0) /* start barrier: the test closes our stdin */
		;
	int err = sk_seg_create_kind(&s, argv[2], &o, SHMKIT_KIND_BYTES, race_init, &created);
	if (err)
		return fail(err);
	/* Racers may each initialise an object of their own; the creator is
	 * the one whose object got the name. */
	char mine[32];
	snprintf(mine, sizeof(mine), "init:%d", (int)getpid());
	created = created && !strncmp(shmkit_seg_data(s), mine, strlen(mine) + 1);
	printf("%s %.*s", created ? "created" : "opened", (int)shmkit_seg_size(s),
	       (char *)shmkit_seg_data(s));
	shmkit_seg_close(s);
	return 0;
}

static int cmd_recvfd(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct shmkit_seg_opts o = { 0 };
	shmkit_seg *s;

	if (argc < 5)
		return usage();
	/* "@NAME" is an abstract socket: no file to clean up. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[2]);
	socklen_t salen = sizeof(sa);
	if (argv[2][0] == '@') {
		sa.sun_path[0] = '\0';
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(argv[2]));
	}
	size_t off = strtoul(argv[3], NULL, 0), len = strtoul(argv[4], NULL, 0);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, salen))
		return fail(-errno);
	int err = shmkit_seg_recv_fd(&s, sock, &o);
	close(sock);
	if (err)
		return fail(err);
	if ((err = range_ok(s, off, len))) {
		shmkit_seg_close(s);
		return fail(err);
	}
	char *data = (char *)shmkit_seg_data(s) + off;
	fwrite(data, 1, strnlen(data, len), stdout);
	if (argc > 5)
		memcpy(data, argv[5], strlen(argv[5]));
	printf("\nshrink:%d", ftruncate(shmkit_seg_fd(s), 0) ? -errno : 0);
	shmkit_seg_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "write"))
		return cmd_rw(argc, argv, 1);
	if (!strcmp(argv[1], "read"))
		return cmd_rw(argc, argv, 0);
	if (!strcmp(argv[1], "race"))
		return cmd_race(argc, argv);
	if (!strcmp(argv[1], "recvfd"))
		return cmd_recvfd(argc, argv);
	return usage();
}
