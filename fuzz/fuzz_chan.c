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

#define SK_FZ_NORETURN __attribute__((noreturn))

#define FZ_CHAN_FIXED 52 /* magic .. stat_entries: written once at create */
#define MS 1000000LL

enum { OP_SEND, OP_RECV, OP_RESERVE, OP_COMMIT, OP_ABORT, OP_PEEK, OP_RELEASE, OP_FD, OP_ACK,
       OP_STATS, OP_PATCH, OP_REOPEN, OP_CLOSE, OP_COUNT };

/* What a channel not touched by the fuzzer must do: a FIFO of the
 * messages sent (length, a tag byte filling it), by position; a message
 * peeked by a handle leaves the FIFO but keeps its slot until released,
 * so the ring is full when tail - (oldest position not released) reaches
 * the capacity (a peeked message blocks its slot for a whole lap).
 * On while no image byte and no patch has touched the shared state, and
 * no reservation was made (a reservation orders its message by its claim,
 * not by its commit). */
struct fz_model {
	int on;
	unsigned head, tail, peeked[2], peek_pos[2], cap;
	uint16_t len[256];
	uint8_t tag[256], next_tag;
};

struct fz_chan {
	const char *name;
	struct fz_model m;
	shmkit_chan *h[2];
	uint32_t max_msg;
	unsigned char *data;   /* the data area, mapped apart from the handles */
	size_t data_size;
	uint8_t msg[256], buf[256];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reopen(struct fz_chan *c, int i)
{
	struct shmkit_chan_opts o = { .init_timeout_ns = MS };
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

static SK_FZ_NORETURN void model_fail(const char *what, long r)
{
	fprintf(stderr, "fuzz: untouched channel: %s (result %ld)\n", what, r);
	abort();
}

/* Positions from the oldest one not released to tail. */
static unsigned model_used(const struct fz_model *m)
{
	unsigned oldest = m->head;
	for (int i = 0; i < 2; i++)
		if (m->peeked[i] && m->peek_pos[i] < oldest)
			oldest = m->peek_pos[i];
	return m->tail - oldest;
}

static void model_send(struct fz_chan *c, long r, size_t len)
{
	struct fz_model *m = &c->m;

	if (r == 0) {
		if (model_used(m) >= m->cap)
			model_fail("a send succeeded on a full channel", r);
		m->len[m->tail % 256] = (uint16_t)len;
		m->tag[m->tail++ % 256] = m->next_tag++;
	} else if ((r == -EAGAIN || r == -ETIMEDOUT) && model_used(m) < m->cap) {
		model_fail("a send found a channel with room full", r);
	} else if (r == -EBADMSG) {
		model_fail("send", r);
	}
}

/* A message taken (recv, or peek into peeked[i]): the oldest queued. */
static void model_take(struct fz_chan *c, int i, long r, const uint8_t *p, size_t cap, int peek)
{
	struct fz_model *m = &c->m;

	if (r >= 0) {
		if (m->head == m->tail)
			model_fail("a message came from an empty channel", r);
		m->peek_pos[i] = m->head;
		unsigned k = m->head++ % 256;
		if (r != m->len[k])
			model_fail("a message of another length came", r);
		for (long n = 0; n < r; n++)
			if (p[n] != m->tag[k])
				model_fail("a message came with other bytes (order or content)", r);
		m->peeked[i] = (unsigned)peek;
	} else if ((r == -EAGAIN || r == -ETIMEDOUT) && m->head != m->tail) {
		model_fail("a receive found a channel holding messages empty", r);
	} else if (r == -EMSGSIZE && (m->head == m->tail || m->len[m->head % 256] <= cap)) {
		model_fail("-EMSGSIZE for a message that fits", r);
	} else if (r == -EBADMSG) {
		model_fail("receive", r);
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
	case OP_SEND: {
		size_t len = fz_u8(in) % (c->max_msg + 8);
		memset(c->msg, c->m.next_tag, sizeof(c->msg));
		r = shmkit_chan_send(h, c->msg, len, tmo);
		if (c->m.on && len <= c->max_msg)
			model_send(c, r, len);
		break;
	}
	case OP_RECV: {
		size_t cap = fz_u8(in);
		r = shmkit_chan_recv(h, c->buf, cap, tmo);
		fz_result(r, (long)(cap < c->max_msg ? cap : c->max_msg), "chan_recv");
		if (c->m.on && !c->m.peeked[i])
			model_take(c, i, r, c->buf, cap, 0);
		break;
	}
	case OP_RESERVE:
		r = shmkit_chan_reserve(h, &rbuf, tmo);
		if (r == 0) {
			memset(rbuf, 0xa5, c->max_msg);
			c->m.on = 0;
		}
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
		if (c->m.on && !c->m.peeked[i])
			model_take(c, i, r, pbuf, SIZE_MAX, 1);
		break;
	case OP_RELEASE:
		r = shmkit_chan_release(h);
		if (r == 0)
			c->m.peeked[i] = 0;
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
		c->m.on = 0;
		break;
	case OP_REOPEN:
		reopen(c, i); /* closing releases a peeked message */
		c->m.peeked[i] = 0;
		break;
	case OP_CLOSE:
		shmkit_chan_close(h);
		c->h[i] = NULL;
		c->m.peeked[i] = 0;
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
		.init_timeout_ns = MS,
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
	c.m.on = fz_image(&in, c.data, fz_u16(&in) % (c.data_size + 1)) == 0;
	c.m.cap = o.capacity;
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
