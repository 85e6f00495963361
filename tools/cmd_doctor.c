/*
 * cmd_doctor.c - `shmkit doctor` (issue 15).  Not written yet.
 */
#include <stdio.h>

#include "cmd.h"

int cmd_doctor(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "shmkit: doctor: not implemented yet\n");
	return 1;
}
