/*
 * auth.c - who may connect: a ZAP handler (ZeroMQ's RFC 27) in the
 * bridge's own loop.  Once a bridge is given client keys to allow
 * (shmkit_bridge_allow_key), its CURVE server sockets ask this handler
 * about every client handshake; a client whose public key is not on the
 * list is refused (the handshake fails, nothing is delivered either way)
 * and counted in auth_denied.  Without a list any client that knows the
 * server's public key gets in (CURVE then encrypts, it does not choose).
 *
 * The handler is a REP socket bound to inproc://zeromq.zap.01 in the
 * bridge's context, polled with the rest; a request is: version "1.0",
 * request id, domain, address, routing id, mechanism, then the
 * mechanism's credentials (CURVE: the client's 32-byte public key).
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "internal.h"

int shmkit_bridge_allow_key(shmkit_bridge *br, const char *key)
{
	uint8_t raw[32];

	if (!br || !key || strlen(key) != 40 || !zmq_z85_decode(raw, key))
		return -EINVAL;
	if (br->nallow == MAX_ALLOW)
		return -ENOSPC;
	if (!br->zap) {
		br->zap = zmq_socket(br->ctx, ZMQ_REP);
		if (!br->zap)
			return sk_br_zerr();
		int zero = 0;
		zmq_setsockopt(br->zap, ZMQ_LINGER, &zero, sizeof(zero));
		if (zmq_bind(br->zap, "inproc://zeromq.zap.01")) {
			int rc = sk_br_zerr();
			zmq_close(br->zap);
			br->zap = NULL;
			return rc;
		}
	}
	memcpy(br->allow[br->nallow++], raw, 32);
	return 0;
}

/* Read one frame of a request into buf (cap bytes, truncated); its length
 * or -1 when none is there. */
static int part(void *s, void *buf, size_t cap, int *more)
{
	size_t ml = sizeof(*more);
	int n = zmq_recv(s, buf, cap, ZMQ_DONTWAIT);

	if (n < 0 || zmq_getsockopt(s, ZMQ_RCVMORE, more, &ml))
		return -1;
	return n;
}

void sk_auth_pump(shmkit_bridge *br)
{
	for (int k = 0; br->zap && k < BATCH; k++) {
		unsigned char f[8][256];
		int len[8], n = 0, more = 1;

		while (more && n < 8) {
			len[n] = part(br->zap, f[n], sizeof(f[n]), &more);
			if (len[n] < 0)
				break;
			n++;
		}
		if (n == 0)
			return;
		while (more) /* more parts than a request has: drop them */
			if (part(br->zap, f[0], sizeof(f[0]), &more) < 0)
				break;
		int ok = 0;
		if (n >= 7 && len[5] == 5 && !memcmp(f[5], "CURVE", 5) && len[6] == 32)
			for (int i = 0; i < br->nallow && !ok; i++)
				ok = !memcmp(br->allow[i], f[6], 32);
		br->st.auth_denied += !ok;
		const char *code = ok ? "200" : "400", *text = ok ? "OK" : "not allowed";
		zmq_send(br->zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(br->zap, f[1], n > 1 ? (size_t)len[1] : 0, ZMQ_SNDMORE);
		zmq_send(br->zap, code, 3, ZMQ_SNDMORE);
		zmq_send(br->zap, text, strlen(text), ZMQ_SNDMORE);
		zmq_send(br->zap, "", 0, ZMQ_SNDMORE);
		zmq_send(br->zap, "", 0, 0);
	}
}

void sk_auth_close(shmkit_bridge *br)
{
	if (br->zap)
		zmq_close(br->zap);
	br->zap = NULL;
}
