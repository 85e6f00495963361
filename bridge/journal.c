/*
 * journal.c - journal replication across hosts: a follower bridge keeps a
 * copy of a leader's journal with the same sequence numbers, the same
 * time stamps, the same record bytes and the same holes.  As far as we
 * know the first durable log in C that replicates across hosts without a
 * broker: the two bridges and the journal files are all there is.
 *
 *   leader bridge (export-journal PATH)        follower bridge
 *   a reader of PATH per follower              (import-journal R=LPATH)
 *      --jdata(from, id, records)-->           the writer of LPATH:
 *                                              append_at(seq, time)
 *      <--jhello(next wanted = last + 1)--     every 200 ms and after
 *                                              each batch of appends
 *
 * The follower's journal is the whole of its state: its last sequence
 * number says where to resume, after a restart of either side or a
 * disconnect, and its copy_of which leader journal it copies, so nothing
 * else is kept.  The hello is both the request and the acknowledgement:
 * the leader sends records from the wanted sequence on, at most `window`
 * past the last one acknowledged (flow control: a slow follower holds a
 * reader position, not leader memory), and seeks back to the last
 * acknowledged one + 1 when acknowledgements stop for 300 ms (a lost
 * frame, a cut link) or when a follower asks for an earlier one than it
 * sent (it restarted).  A record the follower already has is a duplicate
 * (counted, acknowledged again); a frame from past the copy's end (frames
 * lost before it) is dropped (out_of_order) and comes again.
 *
 * Numbers, stamps and holes: each record is appended with
 * shmkit_journal_append_at, the leader's seq and time_ns.  A data frame
 * says the seq its records were read from (`from`: the reader's position
 * when the frame began, the seq after the frame before).  The leader's
 * reader skips what is not in its journal -- holes repair (or an
 * append_at) left, records retention removed before they were read -- so
 * a record whose seq is past `from`, or past the record before it in the
 * frame, follows seqs the leader does not have: append_at leaves a hole
 * for them, as the leader has.  A jump is taken for a hole only inside a
 * frame that starts at or before the copy's end, so a lost frame is
 * never mistaken for one.  A new follower asks for seq 1 and gets the
 * leader's oldest retained record first: its empty journal starts there
 * (append_at into a journal holding nothing), with no hole for the seqs
 * retention took.  Stamps are the leader's; the leader's never decrease
 * (journal.c, I4), so the copy's do not either.
 *
 * Identity: every data frame carries the leader journal's id (random,
 * made with the journal: one removed and made again under the same path
 * has another).  A copy records the id it copies in its own journal
 * (shmkit_journal_set_copy_of, in journal.meta and the data file headers:
 * a state file beside it could be lost or outlive the copy, the copy's
 * own header goes with it), at the first frame for a copy that has none
 * (a new one, or one made by a bridge before identities: it trusts the
 * first leader it hears).  A frame of another id is refused: counted
 * jnl_identity, nothing appended, nothing acknowledged, said once on
 * stderr and in the stats text.  The leader bridge notices a journal
 * made again under the path it exports (journal.meta is another file) at
 * the follower's next hello, and reads the new one from then on, with its
 * id.
 *
 * The follower's journal is opened for writing by its bridge for as long
 * as the bridge runs (the journal's writer lock: nobody else appends to
 * it meanwhile, so it stays a copy).  A record is acknowledged once its
 * append returned: as durable as the follower journal's policy says
 * (--journal-sync: SHMKIT_DUR_SYNC).  A killed follower bridge loses
 * nothing it acknowledged (the journal survives a process crash whatever
 * the policy), and the next writer recovers the tail.
 *
 * Wire (version 4): topic 'j' + the exported path's name; kind 5 (data:
 * seq = from, capacity = how many records, max_msg and stream = the low
 * and high halves of the journal's id, payload = records, each u64 seq,
 * u64 time_ns, u32 length, the bytes; little-endian, unaligned) and kind
 * 6 (hello: seq = next wanted).  A data frame packs consecutive records
 * up to JNL_FRAME_BUDGET (64 KiB) of payload (a bigger record goes
 * alone) and the header's CRC-32C covers them all: one ZeroMQ message and
 * one CRC per 64 KiB rather than per record, which is what made the copy
 * slow (one message per record: 0.05-0.14x of the leader's append rate).
 * The follower checks the frame's structure (lengths fill the payload,
 * seqs increase from `from`, the count, an id) before it appends any
 * record of it, appends them in order (each judged as above: duplicate
 * or next) and acknowledges the last with its next hello.  The window
 * counts seqs: window * 64 (default 4096) in flight per follower.
 *
 * What a copy cannot have: records retention removed at the leader before
 * this follower read them (a follower away for long) are a hole in the
 * copy, as they are gone at the leader; a record bigger than the frame
 * limit (64 MiB) is not sent (unroutable), and its follower waits at it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
	uint64_t id;              /* the identity of the journal rd reads */
	dev_t dev;                /* and of its journal.meta: a journal made */
	ino_t ino;                /* again under the path is another file */
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
	uint64_t copy_of;         /* the leader journal's identity (0: none yet) */
	uint64_t refused;         /* the last other identity refused (said once) */
	int durability;           /* the writer's, for a reopen */
	unsigned mode;            /* the bridge's, if it makes the copy */
	int dirty;                /* an acknowledgement is owed to peer */
	unsigned peer;
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

/* The device and inode of the exported journal's journal.meta now. */
static int journal_meta_stat(const struct jexport *je, dev_t *dev, ino_t *ino)
{
	char p[NAME_MAX_ + 16];
	struct stat st;

	snprintf(p, sizeof(p), "%s/journal.meta", je->path);
	if (stat(p, &st))
		return -errno;
	*dev = st.st_dev;
	*ino = st.st_ino;
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
	struct shmkit_journal_stats js;
	free_f->fd = shmkit_journal_fd(free_f->rd);
	if (free_f->fd < 0 || shmkit_journal_seek_seq(free_f->rd, want) ||
	    shmkit_journal_stats(free_f->rd, &js) || journal_meta_stat(je, &free_f->dev, &free_f->ino)) {
		follower_drop(free_f);
		return NULL;
	}
	free_f->id = js.id;
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
	for (int i = 0; i < MAX_FOLLOWERS; i++) {
		/* A journal removed and made again under the exported path
		 * is another journal: its followers read it anew, and say
		 * its identity (their copies refuse it).  One stat(2) per
		 * hello, every 200 ms per follower. */
		struct follower *g = &je->f[i];
		dev_t dev;
		ino_t ino;
		if (g->rd && g->rid_len == rid_len && !memcmp(g->rid, rid, rid_len) &&
		    (journal_meta_stat(je, &dev, &ino) || dev != g->dev || ino != g->ino))
			follower_drop(g);
	}
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

/* Send the frame of je->frame holding count records read from seq
 * f->next on (the first is first, the last last; plen payload bytes
 * already in place): 0 sent, 1 not now, <0 error. */
static int follower_flush(shmkit_bridge *br, struct jexport *je, struct follower *f, uint64_t first,
                          uint64_t last, uint32_t count, size_t plen, int64_t now)
{
	struct shmkit_bridge_hdr h = { .kind = SHMKIT_BRIDGE_KIND_JNL, .origin = br->id,
	                               .seq = f->next, .capacity = count,
	                               .max_msg = (uint32_t)f->id, .stream = (uint32_t)(f->id >> 32) };
	unsigned char *payload = je->frame + je->topic_len + SHMKIT_BRIDGE_HDR;
	ssize_t fl = sk_br_frame(je->frame, je->frame_cap, je->topic, je->topic_len, &h, payload,
	                         (uint32_t)plen);
	int rc = fl < 0 ? (int)fl : sk_link_to_rid(br, f->rid, f->rid_len, je->frame, (size_t)fl);

	if (rc)
		return rc;
	if (f->next == f->acked + 1)
		f->progress = now;
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
	uint64_t first = 0, last = 0;
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
			rc = follower_flush(br, je, f, first, last, count, plen, now);
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
		last = rec.seq;
		count++;
		plen += need;
	}
	if (!count)
		return frames == JNL_FRAMES_PER_TURN;
	rc = follower_flush(br, je, f, first, last, count, plen, now);
	if (!rc)
		return frames + 1 >= JNL_FRAMES_PER_TURN;
not_sent: /* read them again next time */
	shmkit_journal_seek_seq(f->rd, first);
	if (rc == -EHOSTUNREACH)
		follower_drop(f); /* it comes back with a hello */
	return rc == 1 ? 2 : 0;
}

/* ======================= follower ======================= */

/* Open the copy's writer handle (made with the bridge's mode if
 * missing). */
static int jimport_open(struct jimport *ji)
{
	struct shmkit_journal_opts o = { .flags = SHMKIT_JOURNAL_WRITE | SHMKIT_JOURNAL_CREATE,
	                                 .durability = ji->durability, .mode = ji->mode };

	return shmkit_journal_open(&ji->w, ji->path, &o);
}

/* excl: 0 if the bridge may copy into path: no journal there, or one a
 * bridge import made (a copy: copy_of) or that holds no record; else
 * -EEXIST (or the open's error). */
static int jimport_check(shmkit_bridge *br, const char *path)
{
	struct shmkit_journal_stats js;
	shmkit_journal *j;
	int rc;

	if (!br->excl)
		return 0;
	if ((rc = shmkit_journal_open(&j, path, NULL)) < 0)
		return rc == -ENOENT ? 0 : rc;
	rc = shmkit_journal_stats(j, &js);
	shmkit_journal_close(j);
	return rc < 0 ? rc : js.copy_of || !js.last_seq ? 0 : -EEXIST;
}

int shmkit_bridge_import_journal(shmkit_bridge *br, const char *remote, const char *path,
                                 int durability)
{
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
	if ((rc = jimport_check(br, path)) < 0)
		return rc;
	ji = calloc(1, sizeof(*ji));
	if (!ji)
		return -ENOMEM;
	snprintf(ji->remote, sizeof(ji->remote), "%s", remote);
	snprintf(ji->path, sizeof(ji->path), "%s", path);
	ji->durability = durability;
	ji->mode = br->mode;
	ji->topic_len = rc = topic_of(ji->topic, remote);
	if (rc > 0)
		rc = jimport_open(ji);
	if (!rc)
		rc = shmkit_journal_stats(ji->w, &js);
	if (rc < 0) {
		if (ji->w)
			shmkit_journal_close(ji->w);
		free(ji);
		return rc;
	}
	ji->last = js.last_seq;
	ji->copy_of = js.copy_of;
	br->jim[br->njim++] = ji;
	sk_br_note(br, "import journal %s=%s", remote, path);
	return 0;
}

/* A write error that may be a failed write-back, which is final for the
 * writer handle (shmkit_journal_append): the handle is closed (a journal
 * has one writer at a time), and a new one, opened when the next data
 * frame comes (jimport_data), takes the records, which come again. */
static void jimport_reopen(shmkit_bridge *br, struct jimport *ji, int why)
{
	sk_br_note(br, "journal %s: %s (%s); opening it again", ji->path, shmkit_strerror(why),
	           shmkit_errdetail());
	shmkit_journal_close(ji->w); /* fails again: its write-back failed */
	ji->w = NULL;
}

/* One record of a data frame whose seqs before rseq down to the frame's
 * `from` are not in the leader's journal: appended with the leader's seq
 * and stamp (append_at leaves a hole for a jump), or a duplicate.  0, or
 * -1 if it was not appended (the rest of the frame must wait: appending
 * it would leave a hole where this record belongs). */
static int jimport_record(shmkit_bridge *br, struct jimport *ji, uint64_t rseq, int64_t time_ns,
                           const unsigned char *data, uint32_t len)
{
	struct shmkit_journal_stats js;

	if (rseq <= ji->last) {
		br->st.duplicates++;
		return 0;
	}
	int rc = shmkit_journal_append_at(ji->w, rseq, time_ns, data, len);
	if (rc && (shmkit_journal_stats(ji->w, &js) || js.last_seq < rseq)) {
		br->st.unroutable++; /* not appended (too big, no room): comes again */
		if (rc == -EIO || rc == -ENOSPC || rc == -EDQUOT)
			jimport_reopen(br, ji, rc);
		return -1;
	}
	ji->last = rseq; /* appended (a failed sync after the commit included) */
	br->st.jnl_in++;
	return 0;
}

/* Is id the identity of the journal ji copies?  A copy that has none yet
 * (new, or made by a bridge before identities) takes the first it hears
 * for good; another is refused: counted, said once per identity. */
static int jimport_identity(shmkit_bridge *br, struct jimport *ji, uint64_t id)
{
	int rc;

	if (ji->copy_of == id)
		return 1;
	if (!ji->copy_of && (rc = shmkit_journal_set_copy_of(ji->w, id)) == 0) {
		ji->copy_of = id;
		sk_br_note(br, "journal %s is a copy of journal %016" PRIx64, ji->path, id);
		return 1;
	}
	br->st.jnl_identity++;
	if (ji->refused != id) {
		ji->refused = id;
		fprintf(stderr, "shmkit-bridge: journal %s: refusing the records of journal %016" PRIx64
		        " (remote %s): this copy is of journal %016" PRIx64 "; a journal made again "
		        "under that name is another one: remove the copy to copy it\n", ji->path, id,
		        ji->remote, ji->copy_of);
		sk_br_note(br, "journal %s refused journal %016" PRIx64 " (a copy of %016" PRIx64 ")",
		           ji->path, id, ji->copy_of);
	}
	return 0;
}

/* A data frame (its CRC already checked): h->capacity records, each
 * seq, time, length and bytes, filling the payload exactly and in
 * increasing seq from h->seq on (the leader's reader read them from
 * there: the seqs it skipped are holes or retention at the leader), and
 * the leader journal's identity; anything else is malformed and dropped
 * whole before a record is appended.  A frame from past the copy's end
 * (frames lost before it) is dropped: it comes again. */
static void jimport_data(shmkit_bridge *br, struct jimport *ji, unsigned p,
                         const struct shmkit_bridge_hdr *h, const unsigned char *payload)
{
	uint64_t id = (uint64_t)h->stream << 32 | h->max_msg, prev = 0;
	size_t off = 0;
	uint32_t n = 0;

	for (; off < h->length; n++) {
		uint64_t rseq;
		if (h->length - off < JREC_HDR ||
		    sk_br_get32(payload + off + 16) > h->length - off - JREC_HDR ||
		    (rseq = get64(payload + off)) <= prev || rseq < h->seq) {
			br->st.malformed++;
			return;
		}
		prev = rseq;
		off += JREC_HDR + sk_br_get32(payload + off + 16);
	}
	if (n != h->capacity || !n || !h->seq || !id) {
		br->st.malformed++;
		return;
	}
	if (!ji->w && jimport_open(ji)) {
		ji->w = NULL;
		br->st.unroutable++; /* the copy cannot be opened now: comes again */
		return;
	}
	if (!jimport_identity(br, ji, id))
		return; /* not acknowledged either */
	ji->dirty = 1;
	ji->peer = p;
	if (h->seq > ji->last + 1) {
		br->st.out_of_order += n; /* what came before it was lost */
		return;
	}
	for (off = 0; off < h->length;) {
		uint32_t len = sk_br_get32(payload + off + 16);
		if (jimport_record(br, ji, get64(payload + off), (int64_t)get64(payload + off + 8),
		                   payload + off + JREC_HDR, len))
			return;
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
