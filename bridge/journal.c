/*
 * journal.c - journal replication across hosts: a follower bridge keeps a
 * copy of a leader's journal with the same sequence numbers and the same
 * record bytes.  As far as we know the first durable log in C that
 * replicates across hosts without a broker: the two bridges and the
 * journal files are all there is.
 *
 *   leader bridge (export-journal PATH)        follower bridge
 *   a reader of PATH per follower              (import-journal R=LPATH)
 *      --jdata(seq, time, record)-->           the writer of LPATH:
 *                                              append if seq == last + 1
 *      <--jhello(next wanted = last + 1)--     every 200 ms and after
 *                                              each batch of appends
 *
 * The follower's journal is the whole of its state: its last sequence
 * number says where to resume, after a restart of either side or a
 * disconnect, so nothing else is kept.  The hello is both the request
 * and the acknowledgement: the leader sends records from the wanted
 * sequence on, at most `window` past the last one acknowledged
 * (flow control: a slow follower holds a reader position, not leader
 * memory), and seeks back to the last acknowledged one + 1 when
 * acknowledgements stop for 300 ms (a lost frame, a cut link) or when a
 * follower asks for an earlier one than it sent (it restarted).  A frame
 * the follower already has is a duplicate (counted, acknowledged again);
 * one past a gap is dropped (out_of_order) and comes again.
 *
 * The follower's journal is opened for writing by its bridge for as long
 * as the bridge runs (the journal's writer lock: nobody else appends to
 * it meanwhile, so it stays a copy).  A record is acknowledged once its
 * append returned: as durable as the follower journal's policy says
 * (--journal-sync: SHMKIT_DUR_SYNC).  A killed follower bridge loses
 * nothing it acknowledged (the journal survives a process crash whatever
 * the policy), and the next writer recovers the tail.
 *
 * Wire (version 3): topic 'j' + the exported path's name; kind 5 (data:
 * seq = the first record's, capacity = how many records, payload =
 * records, each u64 seq, u64 time_ns, u32 length, the bytes;
 * little-endian, unaligned) and kind 6 (hello: seq = next wanted).  A
 * data frame packs consecutive records up to JNL_FRAME_BUDGET (64 KiB)
 * of payload (a bigger record goes alone) and the header's CRC-32C
 * covers them all: one ZeroMQ message and one CRC per 64 KiB rather
 * than per record, which is what made the copy slow (one message per
 * record: 0.05-0.14x of the leader's append rate).  The follower checks
 * the frame's structure (lengths fill the payload, seqs increase, the
 * count) before it appends any record of it, appends them in order
 * (each judged as above: duplicate, jump or next) and acknowledges the
 * last with its next hello.  The window counts records: window * 64
 * (default 4096) in flight per follower.

 * Limits of this increment (they need core API):
 *   - the follower's records carry their own append time, not the
 *     leader's (shmkit_journal_append sets time_ns): the bytes and the
 *     sequence numbers are the same, the stamps are not.  A core
 *     shmkit_journal_append_at(j, seq, time_ns, data, len) for replicas
 *     would make them the same.
 *   - a leader whose journal has holes (repair) or whose oldest records
 *     went to retention before a new follower started cannot be copied
 *     with the same numbers: the follower's first append is seq 1, and a
 *     jump cannot be appended (counted `jnl_gap`, the follower stops
 *     there).  The same core call, accepting a seq past last + 1 as a
 *     hole, would cover it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define JNL_RESEND_NS 300000000ll
#define JNL_FORGET_NS 30000000000ll /* a follower silent this long gives its slot up */
/* A data frame packs records up to this many payload bytes (one bigger
 * record goes alone, up to FRAME_MAX). */
#define JNL_FRAME_BUDGET 65536
#define JNL_FRAMES_PER_TURN 16    /* then the loop's other work has its turn */
#define JREC_HDR 20               /* u64 seq, u64 time_ns, u32 length */
/* Records in flight per follower: window * this (default 64 * 64). */
#define JNL_RECS_PER_WINDOW 64

struct follower {
	shmkit_journal *rd;       /* NULL: slot free */
	int fd;
	unsigned char rid[256];
	size_t rid_len;
	uint64_t next;            /* seq of the next record to send */
	uint64_t acked;           /* the follower has every seq <= acked */
	uint64_t max_sent;        /* highest seq sent to it (resends count) */
	int64_t progress, heard;
};

struct jexport {
	char path[NAME_MAX_ + 1];
	char topic[TOPIC_MAX];
	int topic_len;
	unsigned char *frame;
	size_t frame_cap;
	struct follower f[MAX_FOLLOWERS];
};

struct jimport {
	shmkit_journal *w;
	char remote[NAME_MAX_ + 1], path[NAME_MAX_ + 1];
	char topic[TOPIC_MAX];
	int topic_len;
	uint64_t last;            /* the journal's last seq */
	int dirty;                /* an acknowledgement is owed to peer */
	unsigned peer;
	int stuck;                /* a jump it cannot append: stopped */
};

static int topic_of(char *buf, const char *path)
{
	return shmkit_bridge_topic(buf, TOPIC_MAX, SHMKIT_BRIDGE_KIND_JNL, path);
}

/* ======================= leader ======================= */

int shmkit_bridge_export_journal(shmkit_bridge *br, const char *path)
{
	struct shmkit_journal_stats js;
	shmkit_journal *j;
	struct jexport *je;
	int rc;

	if (!br || !sk_br_name_ok(path))
		return -EINVAL;
	if (br->njex == MAX_EXPORTS)
		return -ENOSPC;
	if ((rc = shmkit_journal_open(&j, path, NULL)) < 0) /* it must exist */
		return rc;
	rc = shmkit_journal_stats(j, &js);
	shmkit_journal_close(j);
	if (rc)
		return rc;
	je = calloc(1, sizeof(*je));
	if (!je)
		return -ENOMEM;
	snprintf(je->path, sizeof(je->path), "%s", path);
	je->topic_len = topic_of(je->topic, path);
	/* The frame buffer grows with the records, up to FRAME_MAX (records
	 * may be 1 GiB: a bigger one is not sent, counted unroutable). */
	je->frame_cap = TOPIC_MAX + SHMKIT_BRIDGE_HDR + 65536;
	if (je->topic_len < 0 || !(je->frame = malloc(je->frame_cap))) {
		rc = je->topic_len < 0 ? je->topic_len : -ENOMEM;
		free(je);
		return rc;
	}
	br->jex[br->njex++] = je;
	sk_br_note(br, "export journal %s", path);
	return 0;
}

static void follower_drop(struct follower *f)
{
	if (f->rd)
		shmkit_journal_close(f->rd);
	memset(f, 0, sizeof(*f));
}

/* The slot of rid, or a free (or forgotten) one opened on the journal
 * at seq want. */
static struct follower *follower_get(struct jexport *je, const unsigned char *rid, size_t rid_len,
                                     uint64_t want, int64_t now)
{
	struct follower *free_f = NULL;

	for (int i = 0; i < MAX_FOLLOWERS; i++) {
		struct follower *f = &je->f[i];
		if (f->rd && f->rid_len == rid_len && !memcmp(f->rid, rid, rid_len))
			return f;
		if (f->rd && now - f->heard > JNL_FORGET_NS)
			follower_drop(f);
		if (!f->rd && !free_f)
			free_f = f;
	}
	if (!free_f || shmkit_journal_open(&free_f->rd, je->path, NULL))
		return NULL;
	free_f->fd = shmkit_journal_fd(free_f->rd);
	if (free_f->fd < 0 || shmkit_journal_seek_seq(free_f->rd, want)) {
		follower_drop(free_f);
		return NULL;
	}
	memcpy(free_f->rid, rid, rid_len);
	free_f->rid_len = rid_len;
	free_f->next = want;
	free_f->acked = want - 1;
	free_f->progress = now;
	return free_f;
}

static void jexport_hello(shmkit_bridge *br, struct jexport *je, const unsigned char *rid,
                          size_t rid_len, uint64_t want)
{
	int64_t now = sk_br_now();
	struct follower *f;

	if (!want)
		want = 1;
	f = follower_get(je, rid, rid_len, want, now);
	if (!f) {
		br->st.refused++;
		return;
	}
	f->heard = now;
	if (want - 1 > f->acked) {
		f->acked = want - 1;
		f->progress = now;
	}
	if (want > f->next || want < f->acked + 1) {
		/* it has more than this bridge sent (the leader bridge
		 * restarted) or less than it acknowledged (its copy was made
		 * again): from what it wants */
		if (shmkit_journal_seek_seq(f->rd, want) == 0) {
			f->next = want;
			f->acked = want - 1;
			f->progress = now;
		}
	}
}

/* Records not yet acknowledged (in flight or in the frame being
 * filled) a follower may have. */
static uint64_t jnl_inflight_max(const shmkit_bridge *br)
{
	return (uint64_t)br->window * JNL_RECS_PER_WINDOW;
}

static void put64(unsigned char *p, uint64_t v)
{
	sk_br_put32(p, (uint32_t)v);
	sk_br_put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)sk_br_get32(p) | (uint64_t)sk_br_get32(p + 4) << 32;
}

/* Send the frame of je->frame holding count records (first..first+count-1,
 * plen payload bytes already in place): 0 sent, 1 not now, <0 error. */
static int follower_flush(shmkit_bridge *br, struct jexport *je, struct follower *f, uint64_t first,
                          uint32_t count, size_t plen, int64_t now)
{
	struct shmkit_bridge_hdr h = { .kind = SHMKIT_BRIDGE_KIND_JNL, .origin = br->id,
	                               .seq = first, .capacity = count };
	unsigned char *payload = je->frame + je->topic_len + SHMKIT_BRIDGE_HDR;
	ssize_t fl = sk_br_frame(je->frame, je->frame_cap, je->topic, je->topic_len, &h, payload,
	                         (uint32_t)plen);
	int rc = fl < 0 ? (int)fl : sk_link_to_rid(br, f->rid, f->rid_len, je->frame, (size_t)fl);

	if (rc)
		return rc;
	if (f->next == f->acked + 1)
		f->progress = now;
	uint64_t last = first + count - 1;
	br->st.jnl_sent += count;
	if (first <= f->max_sent)
		br->st.resends += (last <= f->max_sent ? last : f->max_sent) - first + 1;
	if (last > f->max_sent)
		f->max_sent = last;
	f->next = last + 1;
	return 0;
}

/* Send records to one follower while its window has room, packed into
 * frames of up to JNL_FRAME_BUDGET payload bytes (a bigger record goes
 * alone): 0, 1 cut short, 2 the socket is full. */
static int follower_pump(shmkit_bridge *br, struct jexport *je, struct follower *f, int64_t now)
{
	size_t off = (size_t)je->topic_len + SHMKIT_BRIDGE_HDR, plen = 0;
	uint64_t first = 0;
	uint32_t count = 0;
	int frames = 0, rc;

	if (f->next > f->acked + 1 && now - f->progress > JNL_RESEND_NS) {
		if (shmkit_journal_seek_seq(f->rd, f->acked + 1) == 0)
			f->next = f->acked + 1; /* go back N */
		f->progress = now;
	}
	for (;;) {
		struct shmkit_record rec;

		if (f->next + count - f->acked - 1 >= jnl_inflight_max(br) || frames == JNL_FRAMES_PER_TURN ||
		    (rc = shmkit_journal_next(f->rd, &rec, 0)) <= 0)
			break; /* the window is full, a turn's work, the end (or damage:
			          the next look tries again) */
		size_t need = JREC_HDR + (size_t)rec.len;
		if (count && plen + need > JNL_FRAME_BUDGET) {
			/* rec stays valid: sending reads nothing */
			rc = follower_flush(br, je, f, first, count, plen, now);
			if (rc)
				goto not_sent;
			frames++;
			count = 0;
			plen = 0;
		}
		if (off + plen + need > je->frame_cap) {
			size_t cap = off + plen + need;
			unsigned char *fr = cap <= (size_t)FRAME_MAX ? realloc(je->frame, cap) : NULL;
			if (!fr) { /* too big to send: skipped, counted */
				br->st.unroutable++;
				if (!count)
					f->next = rec.seq + 1;
				continue;
			}
			je->frame = fr;
			je->frame_cap = cap;
		}
		unsigned char *r = je->frame + off + plen;
		put64(r, rec.seq);
		put64(r + 8, (uint64_t)rec.time_ns);
		sk_br_put32(r + 16, rec.len);
		memcpy(r + JREC_HDR, rec.data, rec.len);
		if (!count)
			first = rec.seq;
		count++;
		plen += need;
	}
	if (!count)
		return frames == JNL_FRAMES_PER_TURN;
	rc = follower_flush(br, je, f, first, count, plen, now);
	if (!rc)
		return frames + 1 >= JNL_FRAMES_PER_TURN;
not_sent: /* read them again next time */
	shmkit_journal_seek_seq(f->rd, first);
	if (rc == -EHOSTUNREACH)
		follower_drop(f); /* it comes back with a hello */
	return rc == 1 ? 2 : 0;
}

/* ======================= follower ======================= */

int shmkit_bridge_import_journal(shmkit_bridge *br, const char *remote, const char *path,
                                 int durability)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .durability = durability };
	struct shmkit_journal_stats js;
	struct jimport *ji;
	int rc;

	if (!path)
		path = remote;
	if (!br || !sk_br_name_ok(remote) || !sk_br_name_ok(path))
		return -EINVAL;
	for (unsigned i = 0; i < br->njex; i++)
		if (!strcmp(br->jex[i]->path, path))
			return -EINVAL; /* a copy is not exported again by its own bridge */
	if (br->njim == MAX_IMPORTS)
		return -ENOSPC;
	ji = calloc(1, sizeof(*ji));
	if (!ji)
		return -ENOMEM;
	snprintf(ji->remote, sizeof(ji->remote), "%s", remote);
	snprintf(ji->path, sizeof(ji->path), "%s", path);
	ji->topic_len = rc = topic_of(ji->topic, remote);
	if (rc > 0)
		rc = shmkit_journal_open(&ji->w, path, &o);
	if (!rc)
		rc = shmkit_journal_stats(ji->w, &js);
	if (rc < 0) {
		if (ji->w)
			shmkit_journal_close(ji->w);
		free(ji);
		return rc;
	}
	ji->last = js.last_seq;
	br->jim[br->njim++] = ji;
	sk_br_note(br, "import journal %s=%s", remote, path);
	return 0;
}

/* One record of a data frame. */
static void jimport_record(shmkit_bridge *br, struct jimport *ji, uint64_t rseq,
                           const unsigned char *data, uint32_t len)
{
	uint64_t seq = 0;

	if (rseq <= ji->last) {
		br->st.duplicates++;
		return;
	}
	if (rseq > ji->last + 1 || ji->stuck) {
		/* A jump: frames lost (they come again), or a hole or
		 * retention at the leader (see the limits above). */
		br->st.out_of_order++;
		return;
	}
	int rc = shmkit_journal_append(ji->w, data, len, &seq);
	if (rc && !seq) {
		br->st.unroutable++; /* not appended (too big, no room): comes again */
		return;
	}
	if (seq != rseq) { /* the copy's numbering differs from the leader's */
		ji->stuck = 1;
		br->st.jnl_gap++;
		return;
	}
	ji->last = seq;
	br->st.jnl_in++;
}

/* A data frame (its CRC already checked): h->capacity records, each
 * seq, time, length and bytes, filling the payload exactly and in
 * increasing seq from h->seq; anything else is malformed and dropped
 * whole before a record is appended. */
static void jimport_data(shmkit_bridge *br, struct jimport *ji, unsigned p,
                         const struct shmkit_bridge_hdr *h, const unsigned char *payload)
{
	size_t off = 0;
	uint64_t prev = 0;
	uint32_t n = 0;

	for (; off < h->length; n++) {
		uint64_t rseq;
		if (h->length - off < JREC_HDR ||
		    sk_br_get32(payload + off + 16) > h->length - off - JREC_HDR ||
		    (rseq = get64(payload + off)) <= prev || (!n && rseq != h->seq)) {
			br->st.malformed++;
			return;
		}
		prev = rseq;
		off += JREC_HDR + sk_br_get32(payload + off + 16);
	}
	if (n != h->capacity || !n) {
		br->st.malformed++;
		return;
	}
	ji->dirty = 1;
	ji->peer = p;
	for (off = 0; off < h->length;) {
		uint32_t len = sk_br_get32(payload + off + 16);
		jimport_record(br, ji, get64(payload + off), payload + off + JREC_HDR, len);
		off += JREC_HDR + len;
	}
}

static void jimport_talk(shmkit_bridge *br, struct jimport *ji, int hello)
{
	unsigned char f[TOPIC_MAX + SHMKIT_BRIDGE_HDR];
	struct shmkit_bridge_hdr h = { .kind = SHMKIT_BRIDGE_KIND_JNL_HELLO, .origin = br->id,
	                               .seq = ji->last + 1 };
	ssize_t fl;

	if (!ji->dirty && !hello)
		return;
	fl = sk_br_frame(f, sizeof(f), ji->topic, ji->topic_len, &h, NULL, 0);
	if (fl < 0)
		return;
	if (ji->dirty && sk_link_to_peer(br, ji->peer, f, (size_t)fl) == 0)
		ji->dirty = 0;
	for (unsigned p = 0; hello && p < br->npeer; p++)
		sk_link_to_peer(br, p, f, (size_t)fl); /* not now: the next round */
}

/* ======================= the loop's part ======================= */

static void jnl_frame(shmkit_bridge *br, const unsigned char *rid, size_t rid_len, unsigned p,
                  const struct shmkit_bridge_hdr *h, const char *topic, size_t topic_len,
                  const unsigned char *payload)
{
	if (h->kind == SHMKIT_BRIDGE_KIND_JNL && !rid_len) {
		for (unsigned i = 0; i < br->njim; i++)
			if ((size_t)br->jim[i]->topic_len == topic_len &&
			    !memcmp(br->jim[i]->topic, topic, topic_len)) {
				jimport_data(br, br->jim[i], p, h, payload);
				return;
			}
	} else if (h->kind == SHMKIT_BRIDGE_KIND_JNL_HELLO && rid_len) {
		for (unsigned i = 0; i < br->njex; i++)
			if ((size_t)br->jex[i]->topic_len == topic_len &&
			    !memcmp(br->jex[i]->topic, topic, topic_len)) {
				jexport_hello(br, br->jex[i], rid, rid_len, h->seq);
				return;
			}
	}
	br->st.unroutable++;
}

static int jnl_pump(shmkit_bridge *br, int hello)
{
	int64_t now = sk_br_now();
	int more = 0, full = 0;

	for (unsigned i = 0; i < br->njex; i++)
		for (int k = 0; k < MAX_FOLLOWERS; k++) {
			struct follower *f = &br->jex[i]->f[k];
			if (!f->rd)
				continue;
			int rc = follower_pump(br, br->jex[i], f, now);
			more |= rc == 1;
			full |= rc == 2;
		}
	for (unsigned i = 0; i < br->njim; i++)
		jimport_talk(br, br->jim[i], hello);
	return more ? 1 : full ? 2 : 0;
}

static int jnl_pollitems(shmkit_bridge *br, zmq_pollitem_t *it)
{
	int n = 0;

	for (unsigned i = 0; i < br->njex; i++)
		for (int k = 0; k < MAX_FOLLOWERS; k++) {
			struct follower *f = &br->jex[i]->f[k];
			int room = f->rd && f->next - f->acked - 1 < jnl_inflight_max(br);
			it[n++] = (zmq_pollitem_t){ .fd = f->rd ? f->fd : -1, .events = room ? ZMQ_POLLIN : 0 };
		}
	return n;
}

static void jnl_polled(shmkit_bridge *br, const zmq_pollitem_t *it)
{
	int n = 0;

	for (unsigned i = 0; i < br->njex; i++)
		for (int k = 0; k < MAX_FOLLOWERS; k++, n++)
			if (br->jex[i]->f[k].rd && (it[n].revents & ZMQ_POLLIN))
				shmkit_journal_ack_fd(br->jex[i]->f[k].rd);
}

static void jnl_free_all(shmkit_bridge *br)
{
	for (unsigned i = 0; i < br->njex; i++) {
		for (int k = 0; k < MAX_FOLLOWERS; k++)
			follower_drop(&br->jex[i]->f[k]);
		free(br->jex[i]->frame);
		free(br->jex[i]);
	}
	for (unsigned i = 0; i < br->njim; i++) {
		shmkit_journal_close(br->jim[i]->w);
		free(br->jim[i]);
	}
	br->njex = br->njim = 0;
}

const struct sk_service sk_jnl_service = {
	.first = SHMKIT_BRIDGE_KIND_JNL, .last = SHMKIT_BRIDGE_KIND_JNL_HELLO,
	.max_items = MAX_EXPORTS * MAX_FOLLOWERS,
	.frame = jnl_frame, .pump = jnl_pump, .pollitems = jnl_pollitems,
	.polled = jnl_polled, .free_all = jnl_free_all,
};
