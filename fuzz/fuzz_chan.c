/*
 * fuzz_chan.c - a channel whose shared state (control block, indices,
 * role words, slot words, lengths) holds the fuzzer's bytes, then a
 * scripted sequence of operations through two handles with timeouts of
 * 0 or 1 ms.  A signal, a sanitizer report, an operation past its time
 * bound (fuzz_common.h) or a result outside the contract (a length above
 * max_msg or the buffer, a positive errno) is a finding.
 *
 * Input (fuzz_common.h; gen_seeds.c writes seeds):
 *   byte 0   bit 0 SPSC; bits 1-2 capacity 1 << n; bit 3 keep the
 *            control block's fixed part (magic, geometry) after the image,
 *            so the second open gets past validation most of the time
 *   byte 1   max_msg = 1 + byte % 96
 *   byte 2-3 image length L (little-endian), then L bytes copied over the
 *            data area from offset 0 (control block, then slots)
 *   then     operations: a byte (bits 0-4 opcode, bit 5 handle, bits 6-7
 *            both set: 1 ms timeout, else try once) and its arguments
 * Handle 0 creates the channel (its geometry is cached before the image);
 * handle 1 opens it by name after the image (validation of the image).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "fuzz_common.h"
#include "shmkit.h"

#define FZ_CHAN_FIXED 48 /* magic .. slots_bytes: written once at create */
#define MS 1000000LL

enum { OP_SEND, OP_RECV, OP_RESERVE, OP_COMMIT, OP_ABORT, OP_PEEK, OP_RELEASE, OP_FD, OP_ACK,
       OP_STATS, OP_PATCH, OP_REOPEN, OP_CLOSE, OP_COUNT };

struct fz_chan {
	const char *name;
	shmkit_chan *h[2];
	uint32_t max_msg;
	unsigned char *data;   /* the data area, mapped apart from the handles */
	size_t data_size;
	uint8_t msg[256], buf[256];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reopen(struct fz_chan *c, int i)
{
	struct shmkit_chan_opts o = { .timeout_ns = MS };
	shmkit_chan_close(c->h[i]);
	c->h[i] = NULL;
	int64_t t0 = fz_now();
	int err = shmkit_chan_open(&c->h[i], c->name, &o);
	fz_check_bound(t0, "chan_open");
	fz_result(err, 0, "chan_open");
}

static void op_fd(shmkit_chan *h, uint8_t arg)
{
	int fd = shmkit_chan_fd(h, (arg & 1) ? SHMKIT_CHAN_POLLOUT : SHMKIT_CHAN_POLLIN);
	fz_result(fd, 1 << 20, "chan_fd");
	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, 0);
	}
}

static void run_op(struct fz_chan *c, struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	int i = (b >> 5) & 1, op = (b & 0x1f) % OP_COUNT;
	int64_t tmo = (b & 0xc0) == 0xc0 ? MS : 0;
	shmkit_chan *h = c->h[i];
	void *rbuf;
	const void *pbuf;
	long r = 0;

	if (!h && op != OP_REOPEN && op != OP_PATCH)
		return;
	int64_t t0 = fz_now();
	switch (op) {
	case OP_SEND:
		r = shmkit_chan_send(h, c->msg, fz_u8(in) % (c->max_msg + 8), tmo);
		break;
	case OP_RECV: {
		size_t cap = fz_u8(in);
		r = shmkit_chan_recv(h, c->buf, cap, tmo);
		fz_result(r, (long)(cap < c->max_msg ? cap : c->max_msg), "chan_recv");
		break;
	}
	case OP_RESERVE:
		r = shmkit_chan_reserve(h, &rbuf, tmo);
		if (r == 0)
			memset(rbuf, 0xa5, c->max_msg);
		break;
	case OP_COMMIT:
		r = shmkit_chan_commit(h, fz_u8(in) % (c->max_msg + 8));
		break;
	case OP_ABORT:
		r = shmkit_chan_abort(h);
		break;
	case OP_PEEK:
		r = shmkit_chan_peek(h, &pbuf, tmo);
		fz_result(r, c->max_msg, "chan_peek");
		if (r > 0)
			fz_touch(pbuf, r);
		break;
	case OP_RELEASE:
		r = shmkit_chan_release(h);
		break;
	case OP_FD:
		op_fd(h, fz_u8(in));
		break;
	case OP_ACK:
		r = shmkit_chan_ack_fd(h);
		break;
	case OP_STATS: {
		struct shmkit_chan_stats st;
		r = shmkit_chan_stats(h, &st);
		break;
	}
	case OP_PATCH:
		fz_patch(in, c->data, c->data_size);
		break;
	case OP_REOPEN:
		reopen(c, i);
		break;
	case OP_CLOSE:
		shmkit_chan_close(h);
		c->h[i] = NULL;
		break;
	}
	fz_check_bound(t0, "channel operation");
	fz_result(r, 1 << 30, "channel operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_chan c = { .name = fz_name("chan") };
	uint8_t cfg = fz_u8(&in);
	struct shmkit_chan_opts o = {
		.capacity = 1u << ((cfg >> 1) & 3),
		.max_msg = 1u + fz_u8(&in) % 96,
		.flags = SHMKIT_EXCL | ((cfg & 1) ? SHMKIT_CHAN_SPSC : 0),
		.timeout_ns = MS,
	};
	uint8_t fixed[FZ_CHAN_FIXED];

	if (size > 65536)
		return 0;
	c.max_msg = o.max_msg;
	memset(c.msg, 0x5a, sizeof(c.msg));
	if (shmkit_chan_create(&c.h[0], c.name, &o)) {
		fprintf(stderr, "fuzz: cannot create channel %s: %s\n", c.name, shmkit_errdetail());
		abort();
	}
	shmkit_seg *raw = fz_raw_open(c.name, &c.data, &c.data_size);
	memcpy(fixed, c.data, sizeof(fixed));
	fz_image(&in, c.data, fz_u16(&in) % (c.data_size + 1));
	if (cfg & 8)
		memcpy(c.data, fixed, sizeof(fixed));
	reopen(&c, 1);
	for (int n = 0; fz_left(&in) && n < 64; n++)
		run_op(&c, &in);
	shmkit_chan_close(c.h[0]);
	shmkit_chan_close(c.h[1]);
	shmkit_seg_close(raw);
	shmkit_seg_remove(c.name);
	return 0;
}
