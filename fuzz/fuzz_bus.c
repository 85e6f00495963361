/*
 * fuzz_bus.c - a bus whose shared state (control words, subscriber and
 * publisher tables, slot words and lengths) holds the fuzzer's bytes,
 * then a scripted sequence of publishes, loans, subscriptions, receives,
 * peeks, fds, statistics and peer listings through two handles, with
 * timeouts of 0 or 1 ms.  A signal, a sanitizer report, an operation past
 * its time bound (fuzz_common.h) or a result outside the contract is a
 * finding.
 *
 * Input (fuzz_common.h; gen_seeds.c writes seeds):
 *   byte 0   bit 0 back-pressure; bits 1-2 capacity 1 << n; bits 3-4
 *            subscriber table 1 + n; bits 5-6 publisher table 1 + n;
 *            bit 7 keep the geometry (first 128 bytes) after the image
 *   byte 1   max_msg = 1 + byte % 96
 *   byte 2   subscriptions made before the image (byte % 3; handle 0,
 *            alternately newest and oldest)
 *   byte 3-4 image length L, then L bytes over the data area from 0
 *   then     operations: a byte (bits 0-3 opcode, bit 4 handle, bits 5-6
 *            subscription, bit 7 with opcode bits: 1 ms timeout) and its
 *            arguments
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "shmkit.h"

#define MS 1000000LL
#define NSUB 4
#define FZ_BUS_GEOM 128

enum { OP_PUB, OP_LOAN, OP_PUB_LOAN, OP_ABORT_LOAN, OP_SUB, OP_UNSUB, OP_RECV, OP_PEEK,
       OP_RELEASE, OP_FD, OP_ACK, OP_STATS, OP_PEERS, OP_PATCH, OP_REOPEN, OP_COUNT };

struct fz_bus {
	const char *name;
	shmkit_bus *h[2];
	shmkit_sub *sub[NSUB];
	int sub_h[NSUB];
	uint32_t max_msg;
	void *loan[2];
	unsigned char *data;
	size_t data_size;
	uint8_t msg[256], buf[256];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void unsub(struct fz_bus *b, int k)
{
	if (b->sub[k])
		fz_result(shmkit_bus_unsubscribe(b->sub[k]), 0, "bus_unsubscribe");
	b->sub[k] = NULL;
}

static void close_handle(struct fz_bus *b, int i)
{
	for (int k = 0; k < NSUB; k++)
		if (b->sub[k] && b->sub_h[k] == i)
			unsub(b, k);
	if (b->h[i] && shmkit_bus_close(b->h[i])) {
		fprintf(stderr, "fuzz: bus_close refused with no subscription open\n");
		abort();
	}
	b->h[i] = NULL;
	b->loan[i] = NULL;
}

static void reopen(struct fz_bus *b, int i)
{
	struct shmkit_bus_opts o = { .init_timeout_ns = MS };
	close_handle(b, i);
	int64_t t0 = fz_now();
	int err = shmkit_bus_open(&b->h[i], b->name, &o);
	fz_check_bound(t0, "bus_open");
	fz_result(err, 0, "bus_open");
}

static void subscribe(struct fz_bus *b, int i, int k, int from)
{
	struct shmkit_bus_opts o = { .from = from };
	unsub(b, k);
	if (shmkit_bus_subscribe(&b->sub[k], b->h[i], &o) == 0)
		b->sub_h[k] = i;
}

static int count_peer(const struct shmkit_bus_peer *p, void *arg)
{
	(void)p;
	return ++*(int *)arg > 100000;
}

/* The largest message handle i takes: its own geometry, read when it
 * opened.  A handle opened after the image (or reopened) may have read a
 * geometry the image wrote, valid for the segment but not the creator's. */
static uint32_t handle_max(const struct fz_bus *b, int i)
{
	struct shmkit_bus_stats st;

	return b->h[i] && !shmkit_bus_stats(b->h[i], &st) ? st.max_msg : b->max_msg;
}

/* Operations on subscription k (of handle hi); r is their result. */
static long sub_op(struct fz_bus *b, int op, int hi, shmkit_sub *s, struct fz_in *in, int64_t tmo)
{
	const void *pbuf;
	uint64_t lost;
	uint32_t max = handle_max(b, hi);
	long r = 0;

	switch (op) {
	case OP_RECV: {
		size_t cap = fz_u8(in);
		r = shmkit_sub_recv(s, b->buf, cap, &lost, tmo);
		fz_result(r, (long)(cap < max ? cap : max), "sub_recv");
		break;
	}
	case OP_PEEK:
		r = shmkit_sub_peek(s, &pbuf, &lost, tmo);
		fz_result(r, max, "sub_peek");
		if (r > 0)
			fz_touch(pbuf, r);
		break;
	case OP_RELEASE:
		r = shmkit_sub_release(s);
		break;
	case OP_FD: {
		int fd = shmkit_sub_fd(s);
		fz_result(fd, 1 << 20, "sub_fd");
		if (fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 0);
		}
		break;
	}
	case OP_ACK:
		r = shmkit_sub_ack_fd(s);
		break;
	}
	return r;
}

static long handle_op(struct fz_bus *b, int op, int i, int k, struct fz_in *in, int64_t tmo)
{
	shmkit_bus *h = b->h[i];
	long r = 0;

	switch (op) {
	case OP_PUB:
		r = shmkit_bus_publish(h, b->msg, fz_u8(in) % (b->max_msg + 8), tmo);
		break;
	case OP_LOAN:
		r = shmkit_bus_loan(h, &b->loan[i], tmo);
		if (r == 0)
			memset(b->loan[i], 0xa5, b->max_msg);
		break;
	case OP_PUB_LOAN:
		r = shmkit_bus_publish_loan(h, fz_u8(in) % (b->max_msg + 8));
		break;
	case OP_ABORT_LOAN:
		r = shmkit_bus_abort_loan(h);
		break;
	case OP_SUB:
		subscribe(b, i, k, fz_u8(in) & 1);
		break;
	case OP_STATS: {
		struct shmkit_bus_stats st;
		r = shmkit_bus_stats(h, &st);
		break;
	}
	case OP_PEERS: {
		int n = 0;
		r = shmkit_bus_peers(h, count_peer, &n);
		break;
	}
	}
	return r;
}

static void run_op(struct fz_bus *b, struct fz_in *in)
{
	uint8_t c = fz_u8(in);
	int op = (c & 0x0f) % OP_COUNT, i = (c >> 4) & 1, k = (c >> 5) & 3;
	int64_t tmo = (c & 0x80) && (c & 0x0f) == 0x0f ? MS : 0;
	long r = 0;

	if (op == OP_PATCH) {
		fz_patch(in, b->data, b->data_size);
		return;
	}
	int64_t t0 = fz_now();
	if (op == OP_REOPEN)
		reopen(b, i);
	else if (op == OP_UNSUB)
		unsub(b, k);
	else if (op >= OP_RECV && op <= OP_ACK)
		r = b->sub[k] ? sub_op(b, op, b->sub_h[k], b->sub[k], in, tmo) : 0;
	else if (b->h[i])
		r = handle_op(b, op, i, k, in, tmo);
	fz_check_bound(t0, "bus operation");
	fz_result(r, 1 << 30, "bus operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_bus b = { .name = fz_name("bus") };
	uint8_t cfg = fz_u8(&in), fixed[FZ_BUS_GEOM];
	struct shmkit_bus_opts o = {
		.delivery = cfg & 1,
		.capacity = 1u << ((cfg >> 1) & 3),
		.max_subscribers = 1u + ((cfg >> 3) & 3),
		.max_publishers = 1u + ((cfg >> 5) & 3),
		.max_msg = 1u + fz_u8(&in) % 96,
		.flags = SHMKIT_EXCL,
		.init_timeout_ns = MS,
	};

	if (size > 65536)
		return 0;
	b.max_msg = o.max_msg;
	memset(b.msg, 0x5a, sizeof(b.msg));
	if (shmkit_bus_create(&b.h[0], b.name, &o)) {
		fprintf(stderr, "fuzz: cannot create bus %s: %s\n", b.name, shmkit_errdetail());
		abort();
	}
	int pre = fz_u8(&in) % 3;
	for (int k = 0; k < pre; k++)
		subscribe(&b, 0, k, k & 1);
	shmkit_seg *raw = fz_raw_open(b.name, &b.data, &b.data_size);
	memcpy(fixed, b.data, sizeof(fixed));
	fz_image(&in, b.data, fz_u16(&in) % (b.data_size + 1));
	if (cfg & 0x80)
		memcpy(b.data, fixed, sizeof(fixed));
	reopen(&b, 1);
	for (int n = 0; fz_left(&in) && n < 64; n++)
		run_op(&b, &in);
	close_handle(&b, 0);
	close_handle(&b, 1);
	shmkit_seg_close(raw);
	shmkit_seg_remove(b.name);
	return 0;
}
