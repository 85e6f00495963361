/*
 * memfd_pass.c - a memfd segment handed to an unrelated process: the
 * parent creates "memfd:..." (sealed against shrinking and growing),
 * writes a message, forks, and the child execs this program afresh, so it
 * shares nothing with the parent but one end of a socketpair.  The parent
 * sends the segment's fd over it (SCM_RIGHTS); the receiver maps it,
 * prints the message, shows that the seals refuse a shrink, and writes a
 * reply the parent then reads.
 *
 * Usage: memfd_pass [MESSAGE]        (memfd_pass --receive FD is the child)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

static int receive(int sock)
{
	shmkit_seg *seg;
	int err = shmkit_seg_recv_fd(&seg, sock, NULL);

	if (err) {
		fprintf(stderr, "memfd_pass: receive: %s\n", shmkit_strerror(err));
		return 1;
	}
	char *p = shmkit_seg_data(seg);
	printf("receiver (pid %d, exec'd): got an fd, mapped %zu bytes: \"%s\"\n",
	       (int)getpid(), shmkit_seg_size(seg), p);
	if (ftruncate(shmkit_seg_fd(seg), 0) == 0)
		printf("receiver: shrinking was allowed (unexpected)\n");
	else
		printf("receiver: shrinking it is refused (%s): the memfd is sealed\n",
		       strerror(errno));
	snprintf(p, shmkit_seg_size(seg), "reply from pid %d", (int)getpid());
	shmkit_seg_close(seg);
	return 0;
}

static int run_child(const char *self, int sock)
{
	char fdarg[16];

	snprintf(fdarg, sizeof(fdarg), "%d", sock);
	execl(self, self, "--receive", fdarg, (char *)NULL);
	perror("memfd_pass: exec");
	_exit(127);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--receive"))
		return receive(atoi(argv[2]));

	const char *msg = argc > 1 ? argv[1] : "hello over a memfd";
	struct shmkit_seg_opts opts = { .size = 4096 };
	shmkit_seg *seg;
	int sv[2], err, status, rc = 1;

	if ((err = shmkit_seg_create(&seg, "memfd:memfd_pass", &opts))) {
		fprintf(stderr, "memfd_pass: create: %s\n", shmkit_strerror(err));
		return 1;
	}
	snprintf(shmkit_seg_data(seg), shmkit_seg_size(seg), "%s", msg);
	printf("sender   (pid %d): created memfd:memfd_pass and wrote \"%s\"\n", (int)getpid(), msg);
	fflush(stdout);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		perror("memfd_pass: socketpair");
		goto out;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		run_child(argv[0], sv[1]);
	}
	close(sv[1]);
	if (pid < 0) {
		perror("memfd_pass: fork");
		close(sv[0]);
		goto out;
	}
	if ((err = shmkit_seg_send_fd(seg, sv[0])))
		fprintf(stderr, "memfd_pass: send: %s\n", shmkit_strerror(err));
	close(sv[0]);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !err) {
		printf("sender: the receiver wrote back \"%s\"\n", (const char *)shmkit_seg_data(seg));
		rc = 0;
	}
out:
	shmkit_seg_close(seg);
	return rc;
}
