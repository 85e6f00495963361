/*
 * cmd_bridge.c - `shmkit bridge ARGS`: runs shmkit-bridge (bridge/, the
 * ZeroMQ bridge) with ARGS.  The tool itself stays free of libzmq: the
 * bridge is a program of its own, looked for beside this one first (as
 * `make` builds both into build/ and `make install` into one bin
 * directory), then on PATH.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static void bridge_usage(FILE *f)
{
	fprintf(f, "usage: shmkit bridge [SHMKIT-BRIDGE-ARGUMENTS...]\n"
	           "Runs shmkit-bridge (beside this program, or on PATH) with the arguments\n"
	           "given: carries buses, channels, journals and rpc services to other hosts\n"
	           "over ZeroMQ.  Its options: shmkit-bridge --help, man shmkit-bridge.\n");
}

int cmd_bridge(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		bridge_usage(stdout);
		return 0;
	}
	argv[0] = "shmkit-bridge";
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		snprintf(path, sizeof(path), "%s/shmkit-bridge", dirname(self));
		execv(path, argv); /* returns only on failure: try PATH */
	}
	execvp("shmkit-bridge", argv);
	fprintf(stderr, "shmkit: bridge: shmkit-bridge: %s (install the shmkit-bridge package, or make bridge: it needs libzmq)\n",
	        strerror(errno));
	return 1;
}
