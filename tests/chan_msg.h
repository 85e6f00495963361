/*
 * chan_msg.h - the stress message of the channel tests: producer id,
 * sequence number, and a body whose length and bytes are derived from
 * both, so a consumer can check every byte of every message it gets.
 */
#ifndef SK_CHAN_MSG_H
#define SK_CHAN_MSG_H

#include <stddef.h>
#include <stdint.h>

#define CHAN_MSG_MIN 8u
#define CHAN_MSG_BODY 56u

struct chan_msg {
	uint32_t id, seq;
	uint8_t body[CHAN_MSG_BODY];
};

static inline uint8_t chan_msg_byte(uint32_t id, uint32_t seq, size_t i)
{
	return (uint8_t)(id * 31u + seq * 7u + i);
}

/* Fill m for (id, seq); returns its length, 8..64 bytes. */
static inline size_t chan_msg_fill(struct chan_msg *m, uint32_t id, uint32_t seq)
{
	size_t body = (id * 7u + seq) % (CHAN_MSG_BODY + 1);

	m->id = id;
	m->seq = seq;
	for (size_t i = 0; i < body; i++)
		m->body[i] = chan_msg_byte(id, seq, i);
	return CHAN_MSG_MIN + body;
}

/* 1 if buf (len bytes) is a well-formed stress message; *m gets it. */
static inline int chan_msg_check(const void *buf, size_t len, struct chan_msg *m)
{
	const uint8_t *p = buf;

	if (len < CHAN_MSG_MIN || len > sizeof(*m))
		return 0;
	__builtin_memcpy(m, p, len);
	if (len != CHAN_MSG_MIN + (m->id * 7u + m->seq) % (CHAN_MSG_BODY + 1))
		return 0;
	for (size_t i = 0; i < len - CHAN_MSG_MIN; i++)
		if (m->body[i] != chan_msg_byte(m->id, m->seq, i))
			return 0;
	return 1;
}

#endif /* SK_CHAN_MSG_H */
