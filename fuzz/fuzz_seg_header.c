/*
 * fuzz_seg_header.c - the managed-segment header (seg.h) holding the
 * fuzzer's bytes, in an object of a fuzzed size, through everything that
 * reads one: open (managed and raw), stat by handle and by name, the
 * listing, and the services' opens (channel, bus, journal kinds), each
 * with an opening timeout of 1 ms.  A signal, a sanitizer report, an open
 * past its time bound, or an open that succeeds with a data area outside
 * the object is a finding.
 *
 * Input (gen_seeds.c writes seeds from real headers):
 *   byte 0   kind of the segment made first: 0 bytes, 1 channel, 2 bus
 *            (byte % 3), so its data area is the real one of that kind
 *   byte 1   size of the object afterwards: 0 as made, else one of a few
 *            sizes from empty to past the header (ftruncate)
 *   byte 2-3 image length L, then L bytes over the object from offset 0
 *            (the header, then the data area)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "shmkit.h"

#define MS 1000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A managed open that succeeded: its data area lies within the object. */
static void use_seg(shmkit_seg *s, off_t file_size)
{
	struct shmkit_seg_info st;
	size_t n = shmkit_seg_size(s);

	fz_result(shmkit_seg_info(s, &st), 0, "seg_stat");
	if (st.data_offset + n > (size_t)file_size) {
		fprintf(stderr, "fuzz: data area %zu+%zu past the object's %lld bytes\n",
		        st.data_offset, n, (long long)file_size);
		abort();
	}
	fz_touch(shmkit_seg_data(s), (long)n);
}

static int count_one(const struct shmkit_seg_info *st, void *arg)
{
	(void)st;
	++*(int *)arg;
	return 0;
}

static void open_all(const char *name, off_t file_size)
{
	struct shmkit_seg_opts so = { .init_timeout_ns = MS };
	struct shmkit_seg_info st;
	shmkit_seg *s;
	int err, n = 0;
	int64_t t0 = fz_now();

	if ((err = shmkit_seg_open(&s, name, &so)) == 0) {
		use_seg(s, file_size);
		shmkit_seg_close(s);
	}
	fz_result(err, 0, "seg_open");
	so.flags = SHMKIT_RAW;
	if ((err = shmkit_seg_open(&s, name, &so)) == 0)
		shmkit_seg_close(s);
	fz_result(err, 0, "seg_open raw");
	fz_result(shmkit_seg_info_name(name, &st), 0, "seg_stat_name");
	fz_result(shmkit_seg_list(count_one, &n), 0, "seg_list");
	fz_check_bound(t0, "segment open");

	struct shmkit_chan_opts co = { .init_timeout_ns = MS };
	shmkit_chan *ch;
	if ((err = shmkit_chan_open(&ch, name, &co)) == 0) {
		struct shmkit_chan_stats cs;
		fz_result(shmkit_chan_stats(ch, &cs), 0, "chan_stats");
		shmkit_chan_close(ch);
	}
	fz_result(err, 0, "chan_open");
	struct shmkit_bus_opts bo = { .init_timeout_ns = MS };
	shmkit_bus *b;
	if ((err = shmkit_bus_open(&b, name, &bo)) == 0) {
		struct shmkit_bus_stats bs;
		fz_result(shmkit_bus_stats(b, &bs), 0, "bus_stats");
		shmkit_bus_close(b);
	}
	fz_result(err, 0, "bus_open");
	fz_check_bound(t0, "service open");
}

static int make(const char *name, int kind, shmkit_seg **raw)
{
	struct shmkit_chan_opts co = { .capacity = 2, .max_msg = 16, .flags = SHMKIT_EXCL };
	struct shmkit_bus_opts bo = { .capacity = 2, .max_msg = 16, .flags = SHMKIT_EXCL,
	                              .max_subscribers = 1, .max_publishers = 1 };
	struct shmkit_seg_opts so = { .size = 4096, .flags = SHMKIT_EXCL };
	shmkit_chan *ch;
	shmkit_bus *b;
	shmkit_seg *s;
	int err;

	if (kind == 1 && !(err = shmkit_chan_create(&ch, name, &co)))
		shmkit_chan_close(ch);
	else if (kind == 2 && !(err = shmkit_bus_create(&b, name, &bo)))
		shmkit_bus_close(b);
	else if (kind == 0 && !(err = shmkit_seg_create(&s, name, &so)))
		shmkit_seg_close(s);
	if (err)
		return err;
	so.flags = SHMKIT_RAW;
	return shmkit_seg_open(raw, name, &so);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const off_t sizes[] = { 0, 0, 8, 100, 4095, 4096, 4097, 8192, 12288 };
	struct fz_in in = { data, size };
	const char *name = fz_name("hdr");
	int kind = fz_u8(&in) % 3;
	uint8_t sz = fz_u8(&in);
	shmkit_seg *raw;

	if (size > 65536)
		return 0;
	if (make(name, kind, &raw)) {
		fprintf(stderr, "fuzz: cannot make %s: %s\n", name, shmkit_errdetail());
		abort();
	}
	fz_image(&in, shmkit_seg_data(raw), fz_u16(&in) % (shmkit_seg_size(raw) + 1));
	off_t file_size = (off_t)shmkit_seg_size(raw);
	if (sz % (sizeof(sizes) / sizeof(sizes[0]))) {
		file_size = sizes[sz % (sizeof(sizes) / sizeof(sizes[0]))];
		if (ftruncate(shmkit_seg_fd(raw), file_size))
			abort();
	}
	shmkit_seg_close(raw); /* no access through it after a truncate */
	open_all(name, file_size);
	shmkit_seg_remove(name);
	return 0;
}
