/*
 * cmd_top.c - `shmkit top` (issue 15).  Not written yet.
 */
#include <stdio.h>

#include "cmd.h"

int cmd_top(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "shmkit: top: not implemented yet\n");
	return 1;
}
