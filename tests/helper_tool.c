/*
 * helper_tool.c - run the shmkit tool (BUILD/shmkit, beside the directory
 * of this helper) with its standard output and error arranged as a test
 * asks, for test_chan_tool.c and test_bus_tool.c:
 *
 *   helper_tool OUT ERR ARGS...
 *
 * OUT is "-" (keep this helper's stdout), "closed" (fd 1 closed) or
 * "broken" (a pipe whose read end is already closed); ERR is "-" (keep
 * stderr) or "stdout" (this helper's stdout, as it was before OUT was
 * arranged: what a test captures).  SIGINT, SIGTERM and
 * SIGPIPE get their default action and are unblocked, as in a shell, so
 * that what the test runner ignores or blocks does not reach the tool.
 * The helper then execs the tool in its own pid: a signal sent to the pid
 * the test spawned reaches the tool.  Exit 127 if that fails.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Put what spec names on fd (1 or 2); -1 if spec is not understood. */
static int arrange(int fd, const char *spec)
{
	int p[2];

	if (!strcmp(spec, "-"))
		return 0;
	if (fd == 2 && !strcmp(spec, "stdout"))
		return dup2(1, 2) < 0 ? -1 : 0;
	if (fd == 1 && !strcmp(spec, "closed")) {
		close(1);
		return 0;
	}
	if (fd == 1 && !strcmp(spec, "broken")) {
		if (pipe(p) || dup2(p[1], 1) < 0)
			return -1;
		close(p[0]);
		close(p[1]);
		return 0;
	}
	return -1;
}

static void default_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
}

int main(int argc, char **argv)
{
	char tool[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", tool, sizeof(tool) - 16);

	if (argc < 4 || n <= 0) {
		fprintf(stderr, "usage: helper_tool OUT ERR ARGS...\n");
		return 127;
	}
	tool[n] = '\0';
	strcpy(strrchr(tool, '/'), "/../shmkit");
	if (arrange(2, argv[2]) || arrange(1, argv[1])) {
		fprintf(stderr, "helper_tool: cannot arrange stdout '%s', stderr '%s'\n", argv[1],
		        argv[2]);
		return 127;
	}
	default_signals();
	argv[2] = (char *)"shmkit";
	execv(tool, argv + 2);
	perror("helper_tool: exec");
	return 127;
}
