/*
 * crash.c - crash points for tests, in the spirit of SQLite's fault hooks:
 * SK_CRASH_POINT("chan.spsc.published") marks an instant where a process
 * killed would leave a window the recovery code must close.  Compiled in
 * only with -DSK_TESTING (the library the test suite links); a release
 * build has none, not even a branch.
 *
 * A test arms one point through the environment of the process it
 * starts: SHMKIT_CRASH_AT=NAME kills the process with SIGKILL the first
 * time it passes NAME, SHMKIT_CRASH_AT=NAME:N the Nth time.
 */
#include "internal.h"

#ifdef SK_TESTING
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char armed[128];
static unsigned long at = 1;
static unsigned long passed;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void arm_spec(const char *e)
{
	armed[0] = '\0';
	at = 1;
	passed = 0;
	if (!e || strlen(e) >= sizeof(armed))
		return;
	strcpy(armed, e);
	char *colon = strchr(armed, ':');
	if (colon) {
		*colon = '\0';
		at = strtoul(colon + 1, NULL, 10);
	}
}

static void arm(void)
{
	arm_spec(getenv("SHMKIT_CRASH_AT"));
}

void sk_crash_arm(const char *spec)
{
	pthread_once(&once, arm);
	arm_spec(spec);
}

void sk_crash_point(const char *where)
{
	pthread_once(&once, arm);
	if (!armed[0] || strcmp(where, armed))
		return;
	/* Relaxed: a count of this process's passes; any thread may die. */
	if (sk_fetch_add(&passed, 1, __ATOMIC_RELAXED) + 1 == at)
		kill(getpid(), SIGKILL);
}
#else
typedef int sk_crash_points_are_for_test_builds;
#endif
