/*
 * page_flags.h - is a page of a mapping dirty in the page cache?  From
 * /proc/self/pagemap (its page frame) and /proc/kpageflags (the frame's
 * flags), which only root can read.  For the journal tests that check
 * what a sync or a started write-back left dirty.  Plain C, static inline.
 */
#ifndef SK_PAGE_FLAGS_H
#define SK_PAGE_FLAGS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#define PF_KPF_DIRTY 4

struct page_flags {
	int pagemap, kflags;
};

/* Open both files; false (nothing left open) when either cannot be read:
 * the caller skips. */
static inline bool page_flags_open(struct page_flags *pf)
{
	pf->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pf->kflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (pf->pagemap >= 0 && pf->kflags >= 0)
		return true;
	if (pf->pagemap >= 0)
		close(pf->pagemap);
	if (pf->kflags >= 0)
		close(pf->kflags);
	return false;
}

static inline void page_flags_close(struct page_flags *pf)
{
	close(pf->pagemap);
	close(pf->kflags);
}

/* 1 dirty, 0 clean, -1 unknown, for the page under addr (faulted in). */
static inline int page_dirty(const struct page_flags *pf, const volatile uint8_t *addr)
{
	uint64_t ent, flags;
	(void)*addr;
	if (pread(pf->pagemap, &ent, 8, (off_t)((uintptr_t)addr / 4096 * 8)) != 8 || !(ent >> 63))
		return -1;
	uint64_t pfn = ent & ((1ULL << 55) - 1);
	if (!pfn || pread(pf->kflags, &flags, 8, (off_t)(pfn * 8)) != 8)
		return -1;
	return (int)((flags >> PF_KPF_DIRTY) & 1);
}

#endif /* SK_PAGE_FLAGS_H */
