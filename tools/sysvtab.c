/*
 * sysvtab.c - rows of /proc/sysvipc/shm (see sysvtab.h).  The columns are
 * key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime
 * ctime ...; key is decimal and may be negative (keys above 2^31).
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "sysvtab.h"

bool sysv_table_each(void (*fn)(const struct sysv_row *row, void *arg), void *arg)
{
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	char line[512];

	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0'; /* the header */
	while (fgets(line, sizeof(line), f)) {
		struct sysv_row r;
		int cpid, lpid;
		unsigned gid, cuid, cgid;
		if (sscanf(line, "%ld %d %o %llu %d %d %ld %u %u %u %u %ld %ld %ld", &r.key, &r.shmid,
		           &r.perms, &r.size, &cpid, &lpid, &r.nattch, &r.uid, &gid, &cuid, &cgid,
		           &r.atime, &r.dtime, &r.ctime) != 14)
			continue;
		r.cpid = cpid;
		r.lpid = lpid;
		fn(&r, arg);
	}
	fclose(f);
	return true;
}

bool sysv_lock_file(long key)
{
	char path[64];
	struct stat sb;

	snprintf(path, sizeof(path), "/dev/shm/.shmkit-sysv-%08lx.lock", (unsigned long)(uint32_t)key);
	return key && !lstat(path, &sb);
}
