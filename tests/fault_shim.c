/*
 * fault_shim.c - an LD_PRELOAD library that fails the Nth system call of a
 * fault loop (built as BUILD/tests/libskfault.so by mk/faults.mk; driven
 * by tests/helper_faults.c, in the manner of libuv's test-loop-oom.c and
 * SQLite's *fault.test).
 *
 * It interposes the libc entry points through which shmkit reaches the
 * kernel for memory, files and names (the list in `calls` below; the
 * statically linked test programs and the tool import them from libc, so
 * every one goes through here: check with nm -D --undefined-only).  While
 * armed, each call is counted, and the nth fails with a realistic errno
 * for that call (EMFILE for an open, ENOSPC for a write or a reservation,
 * ENOMEM for a mapping, EIO for a sync, ENOLCK for a lock) without
 * reaching the kernel.  fcntl and flock count only their lock commands.
 * Nothing else is counted: close, munmap, unlink, shmdt, shmctl and
 * unlocks are cleanup, which must be free to run.
 *
 * Control, in process (looked up with dlsym by the driver):
 *   skfault_arm(nth, err)   restart the count; fail call nth (1-based) with
 *                           err, or the call's own errno when err is 0,
 *                           or its second one when err is -1; nth 0
 *                           counts only
 *   skfault_disarm()        stop counting; returns how many calls counted
 *   skfault_fired(buf,len)  the errno injected if the armed fault fired
 *                           (its call's name in buf), else 0
 *   skfault_hits(call)      calls of that name counted since load
 * or from the environment of an exec'd program (the tool): SKFAULT_NTH=N
 * arms at load (SKFAULT_ALT=1: with the second errnos); SKFAULT_LOG=PATH gets "fired CALL ERRNO" when the fault
 * fires and "calls N" at exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Every call interposed, and the errno its injected failure carries: err
 * in the first pass, alt in the second (skfault_arm(n, -1)), so that the
 * paths that tell errnos apart (a permission error that falls back to
 * read-only, say) are taken too. */
enum {
	C_OPEN, C_OPENAT, C_SHM_OPEN, C_MEMFD_CREATE, C_SHMGET, C_SHMAT, C_MMAP,
	C_MREMAP, C_FTRUNCATE, C_FALLOCATE, C_POSIX_FALLOCATE, C_WRITE, C_PWRITE,
	C_FSYNC, C_FDATASYNC, C_MSYNC, C_LINKAT, C_RENAMEAT, C_RENAME, C_MKDIR,
	C_MKDIRAT, C_FCNTL_LOCK, C_FLOCK, C_EVENTFD, C_NCALLS
};

static const struct {
	const char *name;
	int err;
	int alt;     /* the second pass: another errno the call may give */
} calls[C_NCALLS] = {
	[C_OPEN] = { "open", EMFILE, EACCES },
	[C_OPENAT] = { "openat", EMFILE, EACCES },
	[C_SHM_OPEN] = { "shm_open", EMFILE, EACCES },
	[C_MEMFD_CREATE] = { "memfd_create", EMFILE, ENFILE },
	[C_SHMGET] = { "shmget", ENOSPC, ENOMEM },
	[C_SHMAT] = { "shmat", ENOMEM, EACCES },
	[C_MMAP] = { "mmap", ENOMEM, EACCES },
	[C_MREMAP] = { "mremap", ENOMEM, EFAULT },
	[C_FTRUNCATE] = { "ftruncate", ENOSPC, EFBIG },
	[C_FALLOCATE] = { "fallocate", ENOSPC, EIO },
	[C_POSIX_FALLOCATE] = { "posix_fallocate", ENOSPC, EIO },
	[C_WRITE] = { "write", ENOSPC, EIO },
	[C_PWRITE] = { "pwrite", ENOSPC, EIO },
	[C_FSYNC] = { "fsync", EIO, ENOSPC },
	[C_FDATASYNC] = { "fdatasync", EIO, ENOSPC },
	[C_MSYNC] = { "msync", EIO, ENOMEM },
	[C_LINKAT] = { "linkat", ENOSPC, EMLINK },
	[C_RENAMEAT] = { "renameat", ENOSPC, EIO },
	[C_RENAME] = { "rename", ENOSPC, EIO },
	[C_MKDIR] = { "mkdir", ENOSPC, EACCES },
	[C_MKDIRAT] = { "mkdirat", ENOSPC, EACCES },
	[C_FCNTL_LOCK] = { "fcntl", ENOLCK, ENOLCK },
	[C_FLOCK] = { "flock", ENOLCK, EINTR },
	[C_EVENTFD] = { "eventfd", EMFILE, ENFILE },
};

static int armed;             /* counting */
static long nth;              /* the call to fail, 0 = none */
static long counted;          /* calls counted since arming */
static int force_err;         /* errno to inject, 0 = the call's own */
static int fired_call = -1;   /* the call that failed, -1 = none yet */
static int fired_err;         /* and the errno it got */
static long hits[C_NCALLS];   /* every call counted since load, by kind */
static const char *log_path;  /* SKFAULT_LOG */

static void log_line(const char *fmt, long a, const char *s)
{
	char line[128];

	if (!log_path)
		return;
	int n = s ? snprintf(line, sizeof(line), fmt, s, a) : snprintf(line, sizeof(line), fmt, a);
	/* Raw system calls: nothing here may come back through the shim. */
	int fd = (int)syscall(SYS_openat, AT_FDCWD, log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (syscall(SYS_write, fd, line, (size_t)n) < 0)
			n = 0;
		syscall(SYS_close, fd);
	}
}

/* Count a call of kind c; 1 if it is the one to fail (errno then set). */
static int fault(int c)
{
	if (!__atomic_load_n(&armed, __ATOMIC_RELAXED))
		return 0;
	__atomic_add_fetch(&hits[c], 1, __ATOMIC_RELAXED);
	long k = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
	if (k != nth)
		return 0;
	fired_call = c;
	fired_err = force_err > 0 ? force_err : force_err < 0 ? calls[c].alt : calls[c].err;
	errno = fired_err;
	log_line("fired %s %ld\n", errno, calls[c].name);
	return 1;
}

void skfault_arm(long n, int err);
long skfault_disarm(void);
int skfault_fired(char *buf, size_t len);
long skfault_hits(const char *call);
/* Interposed, without a prototype in the headers included here. */
int __open_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int eventfd(unsigned initval, int flags);

void skfault_arm(long n, int err)
{
	__atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
	nth = n;
	force_err = err;
	counted = 0;
	fired_call = -1;
	__atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);
}

long skfault_disarm(void)
{
	__atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&counted, __ATOMIC_SEQ_CST);
}

int skfault_fired(char *buf, size_t len)
{
	if (buf && len)
		snprintf(buf, len, "%s", fired_call >= 0 ? calls[fired_call].name : "");
	return fired_call >= 0 ? fired_err : 0;
}

long skfault_hits(const char *call)
{
	for (int c = 0; c < C_NCALLS; c++)
		if (!strcmp(calls[c].name, call))
			return __atomic_load_n(&hits[c], __ATOMIC_RELAXED);
	return -1;
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *s = getenv("SKFAULT_NTH");

	log_path = getenv("SKFAULT_LOG");
	if (s && *s)
		skfault_arm(strtol(s, NULL, 10), getenv("SKFAULT_ALT") ? -1 : 0);
}

__attribute__((destructor)) static void shim_fini(void)
{
	if (getenv("SKFAULT_NTH"))
		log_line("calls %ld\n", counted, NULL);
}

/* The next definition of a libc function (resolved once). */
#define REAL(ret, name, ...)                                                   \
	static ret (*real)(__VA_ARGS__);                                       \
	if (!real)                                                             \
		real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* open, openat and their 64-bit names: the mode argument is there only
 * with O_CREAT or O_TMPFILE. */
#define OPEN_LIKE(fn, kind, params, ptypes, args)                              \
	int fn params                                                          \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode_t mode = mode_arg(flags, ap);                             \
		va_end(ap);                                                    \
		static int (*real) ptypes;                                     \
		if (!real)                                                     \
			real = (int (*) ptypes)dlsym(RTLD_NEXT, #fn);          \
		return fault(kind) ? -1 : real args;                           \
	}

#define OPEN_PARAMS (const char *path, int flags, ...)
#define OPEN_TYPES (const char *, int, ...)
#define OPENAT_PARAMS (int dirfd, const char *path, int flags, ...)
#define OPENAT_TYPES (int, const char *, int, ...)
OPEN_LIKE(open, C_OPEN, OPEN_PARAMS, OPEN_TYPES, (path, flags, mode))
OPEN_LIKE(open64, C_OPEN, OPEN_PARAMS, OPEN_TYPES, (path, flags, mode))
OPEN_LIKE(openat, C_OPENAT, OPENAT_PARAMS, OPENAT_TYPES, (dirfd, path, flags, mode))
OPEN_LIKE(openat64, C_OPENAT, OPENAT_PARAMS, OPENAT_TYPES, (dirfd, path, flags, mode))

int __open_2(const char *path, int flags)
{
	REAL(int, "__open_2", const char *, int);
	return fault(C_OPEN) ? -1 : real(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	REAL(int, "__openat_2", int, const char *, int);
	return fault(C_OPENAT) ? -1 : real(dirfd, path, flags);
}

int shm_open(const char *name, int flags, mode_t mode)
{
	REAL(int, "shm_open", const char *, int, mode_t);
	return fault(C_SHM_OPEN) ? -1 : real(name, flags, mode);
}

int memfd_create(const char *name, unsigned flags)
{
	REAL(int, "memfd_create", const char *, unsigned);
	return fault(C_MEMFD_CREATE) ? -1 : real(name, flags);
}

int shmget(key_t key, size_t size, int flags)
{
	REAL(int, "shmget", key_t, size_t, int);
	return fault(C_SHMGET) ? -1 : real(key, size, flags);
}

void *shmat(int id, const void *addr, int flags)
{
	REAL(void *, "shmat", int, const void *, int);
	return fault(C_SHMAT) ? (void *)-1 : real(id, addr, flags);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(void *, "mmap", void *, size_t, int, int, int, off_t);
	return fault(C_MMAP) ? MAP_FAILED : real(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(void *, "mmap64", void *, size_t, int, int, int, off_t);
	return fault(C_MMAP) ? MAP_FAILED : real(addr, len, prot, flags, fd, off);
}

void *mremap(void *old, size_t old_len, size_t len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *addr = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	REAL(void *, "mremap", void *, size_t, size_t, int, ...);
	return fault(C_MREMAP) ? MAP_FAILED : real(old, old_len, len, flags, addr);
}

int ftruncate(int fd, off_t len)
{
	REAL(int, "ftruncate", int, off_t);
	return fault(C_FTRUNCATE) ? -1 : real(fd, len);
}

int ftruncate64(int fd, off_t len)
{
	REAL(int, "ftruncate64", int, off_t);
	return fault(C_FTRUNCATE) ? -1 : real(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	REAL(int, "fallocate", int, int, off_t, off_t);
	return fault(C_FALLOCATE) ? -1 : real(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	REAL(int, "fallocate64", int, int, off_t, off_t);
	return fault(C_FALLOCATE) ? -1 : real(fd, mode, off, len);
}

/* posix_fallocate returns the error number; errno is not its contract. */
int posix_fallocate(int fd, off_t off, off_t len)
{
	REAL(int, "posix_fallocate", int, off_t, off_t);
	return fault(C_POSIX_FALLOCATE) ? errno : real(fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
	REAL(int, "posix_fallocate64", int, off_t, off_t);
	return fault(C_POSIX_FALLOCATE) ? errno : real(fd, off, len);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	REAL(ssize_t, "write", int, const void *, size_t);
	return fault(C_WRITE) ? -1 : real(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	REAL(ssize_t, "pwrite", int, const void *, size_t, off_t);
	return fault(C_PWRITE) ? -1 : real(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	REAL(ssize_t, "pwrite64", int, const void *, size_t, off_t);
	return fault(C_PWRITE) ? -1 : real(fd, buf, len, off);
}

int fsync(int fd)
{
	REAL(int, "fsync", int);
	return fault(C_FSYNC) ? -1 : real(fd);
}

int fdatasync(int fd)
{
	REAL(int, "fdatasync", int);
	return fault(C_FDATASYNC) ? -1 : real(fd);
}

int msync(void *addr, size_t len, int flags)
{
	REAL(int, "msync", void *, size_t, int);
	return fault(C_MSYNC) ? -1 : real(addr, len, flags);
}

int linkat(int olddir, const char *old, int newdir, const char *new, int flags)
{
	REAL(int, "linkat", int, const char *, int, const char *, int);
	return fault(C_LINKAT) ? -1 : real(olddir, old, newdir, new, flags);
}

int renameat(int olddir, const char *old, int newdir, const char *new)
{
	REAL(int, "renameat", int, const char *, int, const char *);
	return fault(C_RENAMEAT) ? -1 : real(olddir, old, newdir, new);
}

int rename(const char *old, const char *new)
{
	REAL(int, "rename", const char *, const char *);
	return fault(C_RENAME) ? -1 : real(old, new);
}

int mkdir(const char *path, mode_t mode)
{
	REAL(int, "mkdir", const char *, mode_t);
	return fault(C_MKDIR) ? -1 : real(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	REAL(int, "mkdirat", int, const char *, mode_t);
	return fault(C_MKDIRAT) ? -1 : real(dirfd, path, mode);
}

/* Only the commands that take or test a lock count (and fail, ENOLCK: the
 * kernel's lock table is full); unlocks, seals, flags and the like pass
 * through uncounted. */
static int lock_cmd(int cmd, void *arg)
{
	if (cmd != F_SETLK && cmd != F_SETLKW && cmd != F_GETLK && cmd != F_OFD_SETLK &&
	    cmd != F_OFD_SETLKW && cmd != F_OFD_GETLK)
		return 0;
	return arg && ((struct flock *)arg)->l_type != F_UNLCK;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	REAL(int, "fcntl", int, int, ...);
	return lock_cmd(cmd, arg) && fault(C_FCNTL_LOCK) ? -1 : real(fd, cmd, arg);
}

int flock(int fd, int op)
{
	REAL(int, "flock", int, int);
	return !(op & LOCK_UN) && fault(C_FLOCK) ? -1 : real(fd, op);
}

int eventfd(unsigned initval, int flags)
{
	REAL(int, "eventfd", unsigned, int);
	return fault(C_EVENTFD) ? -1 : real(initval, flags);
}
