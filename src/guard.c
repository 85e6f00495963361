/*
 * guard.c - a peer that shrinks a segment must not kill this process.
 *
 * The threat: a posix, file or memfd segment is a file.  Anyone who may
 * write it may also truncate it (`truncate -s 0 /dev/shm/x` on a 0666
 * channel, a sender that shrinks a memfd after passing it), and a tmpfs
 * that is full cannot supply a page for a hole.  The kernel answers the
 * next access through the mapping, ours or the user's own through a
 * pointer shmkit lent, with SIGBUS, whose default action kills the
 * process.
 *
 * The defence chosen, and why:
 *   - Sealing does not apply: only memfds can be sealed (received memfds
 *     are refused unless sealed against shrinking, seg_memfd.c), and a
 *     posix or file segment is shared by name with peers who must write.
 *   - Checking the size before each access costs a system call on every
 *     message, and still leaves the window between check and access.
 *   - A jump buffer around shmkit's own accesses (LMDB's and SQLite's
 *     way) would cost a sigsetjmp per call on the hot paths, and cannot
 *     cover the user's own reads of a loaned or peeked buffer.
 * So: a SIGBUS handler, installed once per process when the first file-
 * backed mapping is made, that looks the faulting address up in a table
 * of shmkit's mappings.  For an address of ours it replaces the whole
 * mapping, at the same address, with private anonymous memory (zeros) and
 * marks it lost; the faulting instruction then runs again and succeeds.
 * Nothing dies: shmkit's code already treats any value in shared memory
 * as possibly hostile (zeros included), its waits look at the mark at
 * every slice (sk_map_check, at most 100 ms later), and every service
 * call on the handle from then on fails with -EIO.  The data is gone
 * anyway: it was truncated away.  A fault at any other address goes to
 * the handler that was installed before ours, or, if that was the
 * default, kills the process exactly as before.
 *
 * Caveats, stated in shmkit(3): a program that installs its own SIGBUS
 * handler after opening a segment replaces this one (it may call
 * shmkit's behaviour back by keeping ours as its previous handler);
 * SHMKIT_SIGBUS=0 in the environment leaves SIGBUS alone.  System V and
 * anon segments cannot be shrunk and are not in the table.  mmap() is not
 * on POSIX's list of async-signal-safe functions, but on Linux it is the
 * bare system call, which is; so are the atomics the handler reads.  A
 * thread that unmaps a handle while another still uses it is a use after
 * close, as with any handle.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "seg.h"

#define GUARD_SLOTS SK_GUARD_SLOTS

struct guard_slot {
	uintptr_t base; /* 0: free.  Written last when a slot is filled
	                   (release), first when emptied. */
	size_t len;
	int prot;
};

static struct guard_slot slots[GUARD_SLOTS];
/* Set by the handler once slot i's mapping was replaced (seg.h reads it
 * on the services' hot paths: sk_map_lost). */
unsigned char sk_guard_lost[SK_GUARD_SLOTS];
static unsigned slots_high;  /* slots below this index may be in use */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction previous; /* SIGBUS action before ours */
static int installed;

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Default (or ignored, which the kernel does not honour for a
	 * fault): put the default back and return; the access faults again
	 * and the process dies of it as it would have without shmkit. */
	signal(SIGBUS, SIG_DFL);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uintptr_t a = (uintptr_t)si->si_addr;
	/* acquire: pairs with the release store of slots_high in
	 * sk_guard_add, so every slot below it was initialised. */
	unsigned high = __atomic_load_n(&slots_high, __ATOMIC_ACQUIRE);

	/* si_code > 0: raised by the kernel for an access, not kill(2). */
	if (si->si_code > 0) {
		for (unsigned i = 0; i < high; i++) {
			/* acquire: pairs with the release store of base in
			 * sk_guard_add (len and prot written before it). */
			uintptr_t base = __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE);
			if (!base || a - base >= slots[i].len)
				continue;
			void *p = mmap((void *)base, slots[i].len, slots[i].prot,
			               MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				break; /* cannot save it: die as before */
			/* relaxed: a flag read by sk_map_check; the mapping
			 * change itself is ordered by the mmap system call. */
			__atomic_store_n(&sk_guard_lost[i], 1, __ATOMIC_RELAXED);
			errno = saved;
			return;
		}
	}
	chain(sig, si, uc);
	errno = saved;
}

static void install(void)
{
	const char *e = getenv("SHMKIT_SIGBUS");
	struct sigaction sa;

	if (e && !strcmp(e, "0"))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (!sigaction(SIGBUS, &sa, &previous))
		installed = 1;
}

void sk_guard_add(shmkit_seg *s)
{
	pthread_once(&install_once, install);
	if (!installed || !s->map)
		return;
	pthread_mutex_lock(&slots_lock);
	for (unsigned i = 0; i < GUARD_SLOTS; i++) {
		if (slots[i].base)
			continue;
		slots[i].len = s->map_size;
		slots[i].prot = (s->flags & SHMKIT_RDONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
		/* relaxed: the slot is not in use; ordered for the handler by
		 * the release store of base below, for sk_map_lost by the
		 * handle being published to other threads after this call. */
		__atomic_store_n(&sk_guard_lost[i], 0, __ATOMIC_RELAXED);
		/* release: len and prot before base, for the handler's
		 * acquire load of base. */
		__atomic_store_n(&slots[i].base, (uintptr_t)s->map, __ATOMIC_RELEASE);
		if (i >= slots_high) /* release: pairs with the handler's acquire */
			__atomic_store_n(&slots_high, i + 1, __ATOMIC_RELEASE);
		s->guard = i + 1;
		break;
	}
	pthread_mutex_unlock(&slots_lock);
}

void sk_guard_remove(shmkit_seg *s)
{
	if (!s->guard)
		return;
	pthread_mutex_lock(&slots_lock);
	/* release: the handler that still finds this slot (a fault racing
	 * the unmap, a use after close) sees either the old base or 0. */
	__atomic_store_n(&slots[s->guard - 1].base, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&slots_lock);
	s->guard = 0;
}

int sk_map_check(const shmkit_seg *s)
{
	struct stat st;

	if (!s)
		return 0;
	if (sk_map_lost(s))
		return sk_fail(-EIO, "segment %s lost its memory under this process: another "
		               "process truncated it (or its file system is full)", s->name.canon);
	/* A sleeper may never touch the shrunk part: look at the size too. */
	if (s->fd >= 0 && s->map && !fstat(s->fd, &st) && (uint64_t)st.st_size < s->map_size)
		return sk_fail(-EIO, "segment %s was truncated to %lld bytes by another process "
		               "(%zu mapped)", s->name.canon, (long long)st.st_size, s->map_size);
	return 0;
}
