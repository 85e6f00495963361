/*
 * stats_read.h - read the text of a bridge's statistics segment (layout in
 * shmkit-bridge.h: "SKBS", version, a sequence lock, the length, the text
 * at SHMKIT_BRIDGE_STATS_TEXT).  Header-only, libc alone: the bridge
 * library (stats.c) and the shmkit tool (`shmkit info`, which links no
 * ZeroMQ) share it.
 */
#ifndef SHMKIT_BRIDGE_STATS_READ_H
#define SHMKIT_BRIDGE_STATS_READ_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define SK_BRIDGE_STATS_MAGIC "SKBS"
#define SK_BRIDGE_STATS_TEXT 64 /* SHMKIT_BRIDGE_STATS_TEXT */

/* Copy the text (NUL-terminated, at most cap - 1 bytes) into buf: its
 * length, -EPROTO if data is no bridge's statistics, -EAGAIN if the writer
 * never held still for a whole copy.  The bridge is the only writer and
 * never waits for readers: a sequence lock (gen odd while it writes). */
static inline int sk_bridge_stats_read(const void *data, size_t size, char *buf, size_t cap)
{
	const unsigned char *d = data;
	const uint64_t *gen = (const uint64_t *)(const void *)(d + 8);

	if (!d || size < SK_BRIDGE_STATS_TEXT || memcmp(d, SK_BRIDGE_STATS_MAGIC, 4) || !cap)
		return -EPROTO;
	for (int tries = 0; tries < 1000; tries++) {
		/* Acquire: pairs with the writer's release store of an even gen. */
		uint64_t g1 = __atomic_load_n(gen, __ATOMIC_ACQUIRE);
		uint32_t len;
		memcpy(&len, d + 16, 4);
		if (len > size - SK_BRIDGE_STATS_TEXT)
			len = 0; /* bounded: a bad length reads as nothing */
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(buf, d + SK_BRIDGE_STATS_TEXT, n);
		buf[n] = '\0';
		/* Acquire fence: the copy above before the second load of gen
		 * (pairs with the writer's release fence after its odd gen). */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(g1 & 1) && __atomic_load_n(gen, __ATOMIC_RELAXED) == g1)
			return (int)n;
		usleep(100);
	}
	return -EAGAIN;
}

#endif /* SHMKIT_BRIDGE_STATS_READ_H */
