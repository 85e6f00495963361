/*
 * stats.c - what a bridge shows to other programs: a shmkit segment of
 * text that `shmkit read NAME` prints as it is, and that `shmkit info` can
 * read (shmkit_bridge_stats_segment; layout in shmkit-bridge.h).
 *
 * The text: "shmkit-bridge id=N pid=P", one line per service ("export chan
 * jobs", "import journal /var/log/x=/copy"), the link ("listening
 * clients=N", "peer EP up|down") and the statistics line, refreshed every
 * 500 ms by the loop and at close.  The segment is made when asked for and
 * removed by shmkit_bridge_close; a killed bridge leaves it to `shmkit gc`
 * (nobody holds it open then).
 *
 * Publication is a sequence lock: the bridge is the only writer; gen is
 * odd while it writes.  A reader loads gen (acquire), copies, fences
 * (acquire) and loads gen again: an even and unchanged gen means the copy
 * is whole.  The bridge never waits for readers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "stats_read.h"

#define STATS_SIZE 16384
#define STATS_INTERVAL_NS 500000000ll

void sk_br_note(shmkit_bridge *br, const char *fmt, ...)
{
	va_list ap;
	size_t off = br->services_len;

	if (off >= sizeof(br->services))
		return;
	va_start(ap, fmt);
	int w = vsnprintf(br->services + off, sizeof(br->services) - off, fmt, ap);
	va_end(ap);
	if (w > 0 && off + (size_t)w + 1 < sizeof(br->services)) {
		br->services[off + (size_t)w] = '\n';
		br->services_len = off + (size_t)w + 1;
		br->services[br->services_len] = '\0';
	}
}

int shmkit_bridge_stats_segment(shmkit_bridge *br, const char *name)
{
	struct shmkit_seg_opts so = { .size = STATS_SIZE, .flags = SHMKIT_EXCL };
	int rc;

	if (!br || !name || br->stats_seg)
		return -EINVAL;
	so.mode = br->mode;
	if ((rc = shmkit_seg_create(&br->stats_seg, name, &so)) < 0)
		return rc;
	snprintf(br->stats_name, sizeof(br->stats_name), "%s", name);
	sk_stats_publish(br, 1);
	return 0;
}

void sk_stats_publish(shmkit_bridge *br, int now)
{
	unsigned char *d;
	char line[1024];
	int64_t t;

	if (!br->stats_seg)
		return;
	t = sk_br_now();
	if (!now && t < br->next_stats)
		return;
	br->next_stats = t + STATS_INTERVAL_NS;
	d = shmkit_seg_data(br->stats_seg);
	char *text = (char *)d + SHMKIT_BRIDGE_STATS_TEXT;
	size_t cap = shmkit_seg_size(br->stats_seg) - SHMKIT_BRIDGE_STATS_TEXT - 1, off = 0;
	uint64_t *gen = (uint64_t *)(d + 8), g = __atomic_load_n(gen, __ATOMIC_RELAXED);

	/* Relaxed store of an odd gen, then a release fence: a reader that
	 * sees any byte written below also sees gen odd (pairs with the
	 * reader's acquire fence before its second load of gen). */
	__atomic_store_n(gen, g | 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	off = (size_t)snprintf(text, cap, "shmkit-bridge id=%u pid=%d\n%s", (unsigned)br->id,
	                       (int)getpid(), br->services);
	if (off > cap)
		off = cap;
	sk_link_describe(br, text, cap, &off);
	if (off < cap && shmkit_bridge_stats_line(&br->st, line, sizeof(line)) > 0) {
		int w = snprintf(text + off, cap - off, "stats %s\n", line);
		off += w > 0 ? (size_t)w : 0;
	}
	if (off > cap)
		off = cap;
	text[off] = '\0';
	memcpy(d, "SKBS", 4);
	d[4] = 1; /* version */
	memcpy(d + 16, &(uint32_t){ (uint32_t)off }, 4);
	/* Release: the text and length before the even gen that says they
	 * are whole (pairs with the reader's acquire load of gen). */
	__atomic_store_n(gen, (g | 1) + 1, __ATOMIC_RELEASE);
}

void sk_stats_close(shmkit_bridge *br)
{
	if (!br->stats_seg)
		return;
	shmkit_seg_close(br->stats_seg);
	shmkit_seg_remove(br->stats_name);
	br->stats_seg = NULL;
}

int shmkit_bridge_stats_read(const void *data, size_t size, char *buf, size_t cap)
{
	return sk_bridge_stats_read(data, size, buf, cap);
}

_Static_assert(SK_BRIDGE_STATS_TEXT == SHMKIT_BRIDGE_STATS_TEXT, "stats_read.h agrees with shmkit-bridge.h");
