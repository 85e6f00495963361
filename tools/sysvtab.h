/*
 * sysvtab.h - the kernel's table of System V segments (/proc/sysvipc/shm),
 * read without attaching anything: for `shmkit top` and `shmkit doctor`
 * (tools/sysvtab.c).
 */
#ifndef SHMKIT_TOOL_SYSVTAB_H
#define SHMKIT_TOOL_SYSVTAB_H

#include <stdbool.h>
#include <sys/types.h>

/* One segment as the kernel lists it (of this IPC namespace). */
struct sysv_row {
	long key;                /* 0: IPC_PRIVATE, or removed */
	int shmid;
	unsigned perms;          /* mode bits; 01000 SHM_DEST (removed) */
	unsigned long long size;
	pid_t cpid, lpid;        /* creator, last to attach or detach */
	long nattch;
	unsigned uid;
	long atime, dtime, ctime;
};

/* Call fn for every row of /proc/sysvipc/shm (malformed lines skipped).
 * False when the table cannot be read (no /proc, no System V). */
bool sysv_table_each(void (*fn)(const struct sysv_row *row, void *arg), void *arg);

/* Whether a segment of this key has the lock file shmkit makes for every
 * System V segment it creates (/dev/shm/.shmkit-sysv-KEY.lock, src/peer.h):
 * how a tool tells shmkit's from foreign ones without attaching.  False for
 * key 0 (IPC_PRIVATE, or removed). */
bool sysv_lock_file(long key);

#endif /* SHMKIT_TOOL_SYSVTAB_H */
