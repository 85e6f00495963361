/*
 * fuzz_rpc.c - a request/response service whose shared state (control
 * block, request queue, server and client tables, call slots) holds the
 * fuzzer's bytes, then a scripted sequence of client calls (send, loan,
 * wait, release, status, cancel) and server work (recv, respond, loan,
 * abandoned) through two handles, each both client and server, with
 * timeouts of 0 or 1 ms.  A signal, a sanitizer report, an operation past
 * its time bound (fuzz_common.h), or a request or response longer than
 * the service allows is a finding.
 *
 * Input (gen_seeds.c writes seeds from real services):
 *   byte 0   bit 0 max_clients 1 + n; bits 1-2 depth 1 + n; bit 3
 *            max_servers 1 + n; bit 7 keep the first 128 bytes of the
 *            data area after the image
 *   byte 1   max_request = 1 + byte % 64;  byte 2  max_response likewise
 *   byte 3-4 image length L, then L bytes over the data area from 0
 *   then     operations: a byte (bits 0-4 opcode, bit 5 handle, bits 6-7
 *            call or request slot k) and its arguments
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "shmkit.h"

#define MS 1000000LL
#define NK 4
#define FZ_RPC_FIXED 128

enum { R_SEND, R_CALL, R_LOAN, R_SEND_LOAN, R_ABORT_LOAN, R_WAIT, R_RELEASE, R_STATUS,
       R_CANCEL, R_RECV, R_RESPOND, R_RESPOND_STATUS, R_RESPOND_LOAN, R_ABANDONED, R_FD,
       R_ACK, R_STATS, R_PEERS, R_PATCH, R_REOPEN, R_COUNT };

struct fz_rpc {
	const char *name;
	shmkit_rpc *h[2];
	uint64_t id[NK];                 /* calls sent, by slot */
	int id_h[NK];
	struct shmkit_rpc_req req[NK];   /* requests taken, by slot */
	int req_h[NK];                   /* handle that took it, -1 none */
	uint32_t max_request, max_response;
	unsigned char *data;
	size_t data_size;
	uint8_t msg[128], buf[128];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reopen(struct fz_rpc *r, int i)
{
	struct shmkit_rpc_opts o = { .init_timeout_ns = MS };

	for (int k = 0; k < NK; k++) {
		if (r->req_h[k] == i)
			r->req_h[k] = -1;
		if (r->id_h[k] == i)
			r->id[k] = 0;
	}
	if (r->h[i])
		fz_result(shmkit_rpc_close(r->h[i]), 0, "rpc_close");
	r->h[i] = NULL;
	int64_t t0 = fz_now();
	fz_result(shmkit_rpc_open(&r->h[i], r->name, &o), 0, "rpc_open");
	fz_check_bound(t0, "rpc_open");
}

static int count_peer(const struct shmkit_rpc_peer *p, void *arg)
{
	(void)p;
	return ++*(int *)arg > 100000;
}

static long client_op(struct fz_rpc *r, int op, int i, int k, struct fz_in *in, int64_t tmo)
{
	shmkit_rpc *h = r->h[i];
	const void *resp;
	void *lbuf;
	uint64_t id;
	long n = 0;

	switch (op) {
	case R_SEND:
		id = 0;
		n = shmkit_rpc_send(h, r->msg, fz_u8(in) % (r->max_request + 8), fz_u8(in) & 1, tmo, &id);
		if (n == 0)
			r->id[k] = id, r->id_h[k] = i;
		break;
	case R_CALL: {
		size_t cap = fz_u8(in) % sizeof(r->buf);
		n = shmkit_rpc_call(h, r->msg, fz_u8(in) % (r->max_request + 8), r->buf, cap, tmo);
		fz_result(n, (long)(cap < r->max_response ? cap : r->max_response), "rpc_call");
		break;
	}
	case R_LOAN:
		if ((n = shmkit_rpc_loan(h, &lbuf)) == 0)
			memset(lbuf, 0xa5, r->max_request);
		break;
	case R_SEND_LOAN:
		id = 0;
		n = shmkit_rpc_send_loan(h, fz_u8(in) % (r->max_request + 8), 0, tmo, &id);
		if (n == 0)
			r->id[k] = id, r->id_h[k] = i;
		break;
	case R_ABORT_LOAN:
		n = shmkit_rpc_abort_loan(h);
		break;
	case R_WAIT:
		id = k == NK - 1 ? 0 : r->id[k];
		n = shmkit_rpc_wait(h, &id, &resp, tmo);
		fz_result(n, r->max_response, "rpc_wait");
		if (n > 0)
			fz_touch(resp, n);
		break;
	case R_RELEASE:
		n = shmkit_rpc_release(h, r->id[k]);
		break;
	case R_STATUS:
		n = shmkit_rpc_status(h, r->id[k]);
		break;
	case R_CANCEL:
		n = shmkit_rpc_cancel(h, r->id[k]);
		break;
	}
	return n;
}

static long server_op(struct fz_rpc *r, int op, int i, int k, struct fz_in *in, int64_t tmo)
{
	shmkit_rpc *h = r->h[i];
	struct shmkit_rpc_req *q = &r->req[k];
	void *lbuf;
	long n = 0;

	if (op == R_RECV) {
		n = shmkit_rpc_recv(h, q, tmo);
		r->req_h[k] = n == 0 ? i : -1;
		if (n == 0 && q->len > r->max_request) {
			fprintf(stderr, "fuzz: request of %u bytes (max %u)\n", q->len, r->max_request);
			abort();
		}
		if (n == 0)
			fz_touch(q->data, q->len);
		return n;
	}
	if (r->req_h[k] != i)
		return 0;
	size_t len = fz_u8(in) % (r->max_response + 8);
	switch (op) {
	case R_RESPOND:
		n = shmkit_rpc_respond(h, q, r->msg, len);
		break;
	case R_RESPOND_STATUS:
		n = shmkit_rpc_respond_status(h, q, r->msg, len, fz_u8(in));
		break;
	case R_RESPOND_LOAN:
		if ((n = shmkit_rpc_respond_loan(h, q, &lbuf)) == 0) {
			memset(lbuf, 0x3c, r->max_response);
			n = shmkit_rpc_respond_commit(h, q, len);
		}
		break;
	case R_ABANDONED:
		return shmkit_rpc_abandoned(h, q);
	}
	if (n != -EMSGSIZE)
		r->req_h[k] = -1; /* answered, or gone */
	return n;
}

static void run_op(struct fz_rpc *r, struct fz_in *in)
{
	uint8_t b = fz_u8(in);
	int op = (b & 0x1f) % R_COUNT, i = (b >> 5) & 1, k = (b >> 6) & 3;
	int64_t tmo = (b & 0xc0) == 0xc0 ? MS : 0;
	long n = 0;

	if (op == R_PATCH) {
		fz_patch(in, r->data, r->data_size);
		return;
	}
	int64_t t0 = fz_now();
	if (op == R_REOPEN) {
		reopen(r, i);
	} else if (!r->h[i]) {
		return;
	} else if (op <= R_CANCEL) {
		n = client_op(r, op, i, k, in, tmo);
	} else if (op <= R_ABANDONED) {
		n = server_op(r, op, i, k, in, tmo);
	} else if (op == R_FD) {
		n = shmkit_rpc_fd(r->h[i], (fz_u8(in) & 1) ? SHMKIT_RPC_CLIENT : SHMKIT_RPC_SERVER);
		if (n >= 0) {
			struct pollfd p = { .fd = (int)n, .events = POLLIN };
			poll(&p, 1, 0);
		}
	} else if (op == R_ACK) {
		n = shmkit_rpc_ack_fd(r->h[i]);
	} else if (op == R_STATS) {
		struct shmkit_rpc_stats st;
		n = shmkit_rpc_stats(r->h[i], &st);
	} else if (op == R_PEERS) {
		int cnt = 0;
		n = shmkit_rpc_peers(r->h[i], count_peer, &cnt);
	}
	fz_check_bound(t0, "rpc operation");
	fz_result(n, 1 << 20, "rpc operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_rpc r = { .name = fz_name("rpc") };
	uint8_t cfg = fz_u8(&in), fixed[FZ_RPC_FIXED];
	struct shmkit_rpc_opts o = {
		.max_clients = 1u + (cfg & 1),
		.depth = 1u + ((cfg >> 1) & 3),
		.max_servers = 1u + ((cfg >> 3) & 1),
		.max_request = 1u + fz_u8(&in) % 64,
		.max_response = 1u + fz_u8(&in) % 64,
		.flags = SHMKIT_EXCL,
		.init_timeout_ns = MS,
	};

	if (size > 65536)
		return 0;
	r.max_request = o.max_request;
	r.max_response = o.max_response;
	for (int k = 0; k < NK; k++)
		r.req_h[k] = -1;
	memset(r.msg, 0x5a, sizeof(r.msg));
	if (shmkit_rpc_create(&r.h[0], r.name, &o)) {
		fprintf(stderr, "fuzz: cannot create rpc %s: %s\n", r.name, shmkit_errdetail());
		abort();
	}
	shmkit_seg *raw = fz_raw_open(r.name, &r.data, &r.data_size);
	memcpy(fixed, r.data, sizeof(fixed));
	fz_image(&in, r.data, fz_u16(&in) % (r.data_size + 1));
	if (cfg & 0x80)
		memcpy(r.data, fixed, sizeof(fixed));
	reopen(&r, 1);
	for (int n = 0; fz_left(&in) && n < 64; n++)
		run_op(&r, &in);
	for (int i = 0; i < 2; i++)
		if (r.h[i])
			shmkit_rpc_close(r.h[i]);
	shmkit_seg_close(raw);
	shmkit_seg_remove(r.name);
	return 0;
}
