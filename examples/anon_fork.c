/*
 * anon_fork.c - the parent/child example of the source articles over an
 * `anon` segment (MAP_SHARED|MAP_ANONYMOUS): the child writes into the
 * shared mapping and into a global variable; the parent then sees the
 * child's text in the mapping, but its own copy of the variable, because
 * ordinary memory is copied on write across fork while a shared mapping
 * is the same memory in both processes.
 *
 * The parent waits for the child with waitpid() instead of sleep(), so the
 * order is guaranteed.  Usage: anon_fork [MESSAGE]
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

static int var = 10;

int main(int argc, char **argv)
{
	const char *msg = argc > 1 ? argv[1] : "This is child";
	struct shmkit_seg_opts opts = { .size = 4096 };
	shmkit_seg *seg;
	int err, status;

	if ((err = shmkit_seg_create(&seg, "anon", &opts))) {
		fprintf(stderr, "anon_fork: create anon: %s\n", shmkit_strerror(err));
		return 1;
	}
	char *p = shmkit_seg_data(seg);
	pid_t pid = fork();
	if (pid < 0) {
		perror("anon_fork: fork");
		shmkit_seg_close(seg);
		return 1;
	}
	if (pid == 0) {
		snprintf(p, shmkit_seg_size(seg), "%s", msg);
		var = 100;
		printf("child  (pid %d): wrote \"%s\" into the anon segment, set var = %d\n",
		       (int)getpid(), p, var);
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "anon_fork: child failed\n");
		shmkit_seg_close(seg);
		return 1;
	}
	printf("parent (pid %d): reads \"%s\" from the anon segment, var = %d\n",
	       (int)getpid(), p, var);
	printf("the mapping is shared; the global variable was copied on write\n");
	int ok = !strcmp(p, msg) && var == 10;
	shmkit_seg_close(seg);
	return ok ? 0 : 1;
}
