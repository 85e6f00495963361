/*
 * hello_posix.c - the README's example: create a POSIX shared-memory
 * segment, write into it, open it again by name (as another process
 * would), read it back, remove it.
 *
 * Usage: hello_posix [NAME]   (default posix:/hello-shmkit-PID)
 *
 *   cc hello_posix.c $(pkg-config --cflags --libs shmkit) -o hello_posix
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmkit.h>

int main(int argc, char **argv)
{
	struct shmkit_seg_opts opts = { .size = 4096, .mode = 0600 };
	shmkit_seg *w, *r;
	char name[64];
	int err;

	snprintf(name, sizeof(name), "posix:/hello-shmkit-%d", (int)getpid());
	if (argc > 1)
		snprintf(name, sizeof(name), "%s", argv[1]);
	if ((err = shmkit_seg_create(&w, name, &opts))) {
		fprintf(stderr, "create %s: %s\n", name, shmkit_strerror(err));
		return 1;
	}
	strcpy(shmkit_seg_data(w), "hello, shared memory");

	/* Any process with permission can do this part. */
	if ((err = shmkit_seg_open(&r, name, NULL))) {
		fprintf(stderr, "open %s: %s\n", name, shmkit_strerror(err));
		shmkit_seg_close(w);
		shmkit_seg_remove(name);
		return 1;
	}
	printf("%s holds %zu bytes: \"%s\"\n", name, shmkit_seg_size(r),
	       (const char *)shmkit_seg_data(r));
	int rc = strcmp(shmkit_seg_data(r), "hello, shared memory") ? 1 : 0;

	shmkit_seg_close(r);
	shmkit_seg_close(w);
	shmkit_seg_remove(name);
	return rc;
}
