/*
 * chan.c - channels across hosts: a message sent into an exported channel
 * is received by exactly one consumer somewhere, none lost while both
 * bridges eventually run, across disconnects and restarts of either.
 *
 * ---- The hand-over ------------------------------------------------------
 *
 *   exporting bridge                         importing bridge
 *   local channel C --peek--> outbox C.skbr-out --data(stream, seq)-->
 *        (release once in the outbox)           dedupe: seq == last + 1?
 *                                               send into local channel L,
 *                                               last = seq in L.skbr-in
 *        outbox slot freed <------ack(stream, last)---
 *
 * The outbox is the sender's durable place: a shmkit segment beside the
 * channel, of the channel's own backend (C is posix:/X -> posix:/X.skbr-out;
 * file:P -> file:P.skbr-out).  Why there and not in the bridge's memory
 * or in a file of its own: the outbox must live exactly as long as the
 * messages it guards.  A message in the channel lives in that segment's
 * backend (tmpfs for posix: until reboot; disk for file:), so its copy in
 * the outbox lives in the same place: a killed bridge loses neither, a
 * rebooted posix host loses both (they were never more durable than
 * that).  The same holds for the receiver's dedupe state beside the local
 * channel it guards (L.skbr-in): if the channel survives, so does the
 * record of what was committed into it; if the channel is gone, its
 * committed messages are gone too and a resend may fill it again.
 * Neither costs the bridge's heap more than one frame buffer per export:
 * flow control is the window - at most `window` un-acked messages per
 * outbox; then the bridge stops taking messages and the local channel
 * fills, its producers wait (or get -EAGAIN) as with a slow local
 * consumer.
 *
 * Outbox layout (data area of a shmkit bytes segment, little-endian host
 * order; one bridge at a time, enforced by flock on the segment's fd):
 *   0   u32 magic "SKOB", u32 version 1
 *   8   u32 window, u32 max_msg         geometry, fixed at creation
 *   16  u32 stream (random, non-zero: the dedupe key at receivers),
 *       u32 importer (bridge id the un-acked messages are pinned to)
 *   24  u64 next     sequence the next message gets (1 first)
 *   32  u64 acked    every sequence <= acked is committed remotely
 *   40  u64 chan_pos channel position after the newest message put (MPMC:
 *                    its position + 1, positions being 40-bit)
 *   48  u64 chan_id  the channel's creation time: a channel made again
 *       under the same name counts positions from 0 (chan_pos reset)
 *   64  window slots of round_up(32 + max_msg, 8) bytes:
 *       u64 seq, u64 chan_pos, u32 len, u32 pad, u64 pad, payload
 * Message n lives in slot n % window while acked < n < next, so
 * next - 1 - acked <= window.  Putting n: payload, len, chan_pos; then
 * store_release slot.seq = n; then hdr chan_pos; then store_release
 * next = n + 1.  Reopening recovers next (and chan_pos) by scanning
 * forward while slot[next % window].seq == next: a kill between the slot
 * and the header loses nothing.  Every value is bounded when read
 * (-EBADMSG).  The release stores order the payload before the word that
 * publishes it against a kill at any instruction (the only reader is a
 * later bridge process, which maps the same pages: no torn store survives
 * a kill, so no CPU ordering is needed beyond the compiler's).
 *
 * Inbox (dedupe) layout: 0 u32 magic "SKIB", u32 version 1, u32 entries
 * (64), pad to 64; then 64 entries of 32 bytes: u32 stream, u32 pad, u64
 * last (highest seq committed into the local channel), u64 pending (seq
 * being committed, 0 if none), u64 pending_pos (SPSC: the channel's
 * tail before that commit).
 *
 * ---- Crash windows, precisely ------------------------------------------
 *
 * MPMC channels are opened with an owner token (shmkit.h, "Owners"):
 * the exporter's is a hash of the channel's name, the importer's a hash of
 * its local name - stable across restarts and across the loss of the
 * state segments, so no owner record is ever orphaned; one bridge at a
 * time per channel holds it (a second one's open is -EBUSY, as its flock
 * of the state segment would be).  Should the channel have no entry left
 * for an owner (-ENOSPC), the bridge goes on without one: the two MPMC
 * windows below then stay open (at most one message each).
 *
 * Exporting bridge killed ...
 *   - after peek, before the outbox slot is published: the message is
 *     still the channel's.  SPSC channels give a dead consumer's peeked
 *     message to the next consumer: the restarted bridge takes it again -
 *     nothing lost.  MPMC: the owner's record keeps the claim for the
 *     restarted bridge (no other consumer gets it, no reclaimer frees it),
 *     whose first peek returns it again - nothing lost.
 *   - after the slot is published, before release: the message is in the
 *     outbox (sent on restart), and the restarted bridge gets it again
 *     from its first peek (SPSC: the next consumer's; MPMC: the owner's
 *     inherited claim).  Its position (SPSC: the channel's head, read by
 *     shmkit_chan_stats; MPMC: shmkit_chan_peek_pos) tells it is already
 *     in the outbox (SPSC: below chan_pos; MPMC: chan_pos is exactly its
 *     position + 1, since it was the last one put), so it is released,
 *     not put twice (`redelivered`).
 *   - after release, with frames un-acked: they are in the outbox;
 *     the restarted bridge sends them again (same stream, same seqs) and
 *     the receiver suppresses those it had.
 * Importing bridge killed ...
 *   - before the local send: nothing committed, no ack sent; the sender
 *     resends (go-back-N after 300 ms, or at the hello of the restarted
 *     importer).
 *   - between the channel's commit and the store of last = seq: pending
 *     is seq.  SPSC local channel: on reopening, the bridge takes the
 *     producer role (a reserve, aborted: the core reconciles its tail)
 *     and compares the tail with pending_pos: moved past it means
 *     committed, so last = seq - no duplicate.  MPMC: the commit is a
 *     shmkit_chan_commit_tag with tag = the entry's index and seq
 *     (ib_tag); on reopening, the owner's record has decided it (the core
 *     knows whether the slot was published, whoever moved the counters
 *     since), and shmkit_chan_owner_tag == that tag means committed, so
 *     last = seq - no duplicate; anything else means it never went in,
 *     and the resend delivers it.  (`uncertain` counts such a commit only
 *     on a channel that had no room for an owner record: at-least-once
 *     for that one message.)
 *   - after last = seq, before the ack: the resend is a duplicate,
 *     suppressed and acked.
 * A link cut or a frame dropped (bad CRC) only delays: frames past a gap
 * are dropped (out_of_order) and resent from the last ack.
 *
 * A full receiving channel: the frame is dropped (chan_full) and the
 * importer says so in its ack (delivery byte ACK_FULL); the exporter goes
 * back to the last ack and sends nothing more (what it sent would be
 * dropped as out of order).  The importer looks at its channel every
 * turn while it is full (no event says it drained: the loop polls
 * briefly, 1 ms) and, once there is room, acks with ACK_DRAINED; the
 * exporter resends at once (chan_drained) rather than after RESEND_NS.
 * Should that ack be lost, the 300 ms timer still resends.
 *
 * One importer per export at a time: a message sent to importer A and
 * un-acked must not be given to B too (A may have committed it).  The
 * outbox records the importer its un-acked messages went to; another
 * importer's hello is refused until everything is acked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define OB_MAGIC 0x424f4b53u /* "SKOB" */
#define IB_MAGIC 0x42494b53u /* "SKIB" */
#define STATE_VERSION 1
#define OB_HDR 64
#define OB_SLOT_HDR 32
#define IB_ENTRIES 64
#define RESEND_NS 300000000ll
#define MAX_MSG_LIMIT (1u << 30)
/* An ack's delivery byte: what the importer's local channel did. */
#define ACK_FULL 1
#define ACK_DRAINED 2

struct ob_hdr {
	uint32_t magic, version;
	uint32_t window, max_msg;
	uint32_t stream, importer;
	uint64_t next, acked, chan_pos;
	uint64_t chan_id;   /* creation time of the channel chan_pos counts in */
	uint64_t pad;
};

struct ob_slot {
	uint64_t seq, chan_pos;
	uint32_t len, pad;
	uint64_t pad2;
};

struct ib_hdr {
	uint32_t magic, version, entries, pad;
	uint64_t pad2[6];
};

struct ib_entry {
	uint32_t stream, pad;
	uint64_t last, pending, pending_pos;
};

_Static_assert(sizeof(struct ob_hdr) == OB_HDR, "outbox header");
_Static_assert(sizeof(struct ob_slot) == OB_SLOT_HDR, "outbox slot header");
_Static_assert(sizeof(struct ib_hdr) == 64 && sizeof(struct ib_entry) == 32, "inbox");

struct cexport {
	shmkit_chan *ch;
	int fd;                   /* the channel's POLLIN fd */
	int spsc;
	int owned;                /* MPMC, opened with an owner token */
	uint32_t capacity, max_msg;
	shmkit_seg *seg;
	struct ob_hdr *oh;
	unsigned char *slots;
	size_t stride;
	uint32_t window;
	uint64_t chan_id;
	uint64_t next, acked;     /* private copies of the header's */
	uint64_t sent_upto;       /* highest seq sent since the last go-back */
	uint64_t max_sent;        /* highest seq ever sent by this process */
	int64_t progress;         /* when acked last moved (or sending began) */
	int held;                 /* the importer's channel was full: nothing
	                             is sent until it says it drained (or
	                             RESEND_NS passed) */
	unsigned char rid[256];   /* the importer's routing id */
	size_t rid_len;           /* 0: no importer heard */
	unsigned char *frame;
	size_t frame_cap;
	int topic_len;
	char topic[TOPIC_MAX];
	char name[NAME_MAX_ + 1];
};

struct cimport {
	shmkit_chan *ch;          /* NULL until the first frame */
	int spsc;
	int owned;                /* MPMC, opened with an owner token */
	uint32_t max_msg;
	shmkit_seg *seg;
	struct ib_entry *e;
	unsigned char dirty[IB_ENTRIES]; /* an ack is owed, to peer ack_peer */
	unsigned char ack_peer[IB_ENTRIES];
	unsigned char full[IB_ENTRIES]; /* ACK_FULL: a frame found the channel
	                             full (said in acks until it drains);
	                             ACK_DRAINED: room again, to be said */
	int topic_len;
	char topic[TOPIC_MAX];
	char remote[NAME_MAX_ + 1], local[NAME_MAX_ + 1];
};

/* Stores into the state segments.  Release: the payload and fields
 * written before must not be moved after the word that publishes them
 * (by the compiler: a kill may land at any instruction); the reader is the
 * next bridge process, which loads with acquire (ld_acq). */
static void st_rel(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Acquire: pairs with st_rel of the bridge process that wrote it. */
static uint64_t ld_acq(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Crash points for the tests, at the instants the essay's crash windows
 * name: SHMKIT_BRIDGE_CRASH_AT=NAME:N kills this process with SIGKILL the
 * Nth time it passes NAME (as SHMKIT_CRASH_AT does for the core's
 * points, src/crash.c; those are compiled into test builds only, while
 * the bridge's tests run the command itself).  Unset: one test of a
 * flag per pass. */
static void crash_point(const char *where)
{
	static int armed = -1;   /* -1: environment not read yet */
	static char name[64];
	static unsigned long at, passed;

	if (armed < 0) {
		const char *e = getenv("SHMKIT_BRIDGE_CRASH_AT"), *colon = e ? strchr(e, ':') : NULL;
		armed = colon && (size_t)(colon - e) < sizeof(name);
		if (armed) {
			memcpy(name, e, (size_t)(colon - e));
			at = strtoul(colon + 1, NULL, 10);
		}
	}
	if (armed && !strcmp(where, name) && ++passed == at)
		kill(getpid(), SIGKILL);
}

/* An owner token for a channel handle of the bridge (shmkit.h, "Owners"):
 * FNV-1a of role and channel name, never 0.  Stable across restarts and
 * state segments. */
static uint64_t owner_token(const char *role, const char *name)
{
	uint64_t h = 14695981039346656037ull;

	for (const char *p = role; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h ? h : 1;
}

/* Reopen ch (an MPMC channel, by name) as the owner of token: 1 owned, 0
 * the channel has no entry left for an owner (ch kept as it was), or
 * -errno (-EBUSY: another live bridge owns it; ch is then closed). */
static int chan_own(shmkit_chan **ch, const char *name, uint64_t token)
{
	struct shmkit_chan_opts o = { .owner = token };
	shmkit_chan *owned = NULL;
	int rc = shmkit_chan_open(&owned, name, &o);

	if (rc == -ENOSPC)
		return 0;
	shmkit_chan_close(*ch);
	*ch = owned;
	return rc ? rc : 1;
}

int64_t sk_br_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* The state segment's name beside a channel's: NAME.suffix for posix
 * names (bare or posix:/) and file:PATH; -EINVAL for other backends. */
int sk_br_state_name(char *buf, size_t cap, const char *chan, const char *suffix)
{
	if (!strncmp(chan, "sysv:", 5) || !strncmp(chan, "anon", 4) || !strncmp(chan, "memfd:", 6))
		return -EINVAL;
	if ((size_t)snprintf(buf, cap, "%s.%s", chan, suffix) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* Open or create (size bytes, the bridge's mode) the state segment,
 * exclusively (flock): -EBUSY if another bridge holds it, -EPROTO if an
 * existing one is smaller than min. */
int sk_br_state_open(shmkit_bridge *br, shmkit_seg **out, const char *name, size_t size,
                     size_t min)
{
	struct shmkit_seg_opts so = { .size = size, .mode = br->mode, .flags = SHMKIT_PERSIST };
	int rc = shmkit_seg_create(out, name, &so);

	if (rc)
		return rc;
	if (shmkit_seg_size(*out) < min) {
		rc = -EPROTO;
	} else if (flock(shmkit_seg_fd(*out), LOCK_EX | LOCK_NB)) {
		rc = -EBUSY;
	}
	if (rc) {
		shmkit_seg_close(*out);
		*out = NULL;
	}
	return rc;
}

int sk_br_exists(const char *name)
{
	struct shmkit_seg_info si;

	return !shmkit_seg_info_name(name, &si);
}

void sk_br_note_opened(shmkit_bridge *br, const char *kind, const char *remote, const char *local,
                       const struct sk_geometry *have, const struct sk_geometry *remote_g)
{
	if (have->a == remote_g->a && have->b == remote_g->b)
		sk_br_note(br, "import %s %s=%s: %s existed: opened", kind, remote, local, local);
	else
		sk_br_note(br, "import %s %s=%s: %s existed: opened, its geometry kept (%s %u, %s %u; "
		           "the remote's %u, %u)", kind, remote, local, local, have->a_name, have->a,
		           have->b_name, have->b, remote_g->a, remote_g->b);
}

/* A bridge import's state is beside local (LOCAL.skbr-in). */
static int import_marked(const char *local)
{
	char name[NAME_MAX_ + 32];

	return !sk_br_state_name(name, sizeof(name), local, "skbr-in") && sk_br_exists(name);
}

int sk_br_import_check(shmkit_bridge *br, const char *local)
{
	struct shmkit_seg_info si;
	int rc;

	if (!br->excl || import_marked(local))
		return 0;
	rc = shmkit_seg_info_name(local, &si);
	return rc == -ENOENT ? 0 : !rc ? -EEXIST : rc; /* -EACCES etc.: said as it is */
}

unsigned sk_br_import_flags(shmkit_bridge *br, const char *local)
{
	return br->excl && !import_marked(local) ? SHMKIT_EXCL : 0;
}

int sk_br_import_mark(shmkit_bridge *br, const char *local)
{
	char name[NAME_MAX_ + 32];
	struct shmkit_seg_opts so = { .size = 64, .mode = br->mode, .flags = SHMKIT_PERSIST };
	shmkit_seg *seg;
	int rc;

	if (!br->excl || sk_br_state_name(name, sizeof(name), local, "skbr-in"))
		return 0; /* not asked for, or nothing can sit beside it */
	if ((rc = shmkit_seg_create(&seg, name, &so)) == 0)
		shmkit_seg_close(seg);
	return rc;
}

static int is_chan_import(shmkit_bridge *br, const char *local)
{
	for (unsigned i = 0; i < br->ncim; i++)
		if (!strcmp(br->cim[i]->local, local))
			return 1;
	return 0;
}

static int is_chan_export(shmkit_bridge *br, const char *name)
{
	for (unsigned i = 0; i < br->ncex; i++)
		if (!strcmp(br->cex[i]->name, name))
			return 1;
	return 0;
}

/* ======================= exports ======================= */

static struct ob_slot *ob_slot(struct cexport *ce, uint64_t seq)
{
	return (struct ob_slot *)(ce->slots + (seq % ce->window) * ce->stride);
}

/* A fresh outbox (magic 0): geometry, a new stream, published by the
 * magic last. */
static void outbox_init(struct cexport *ce, uint32_t window)
{
	struct ob_hdr *oh = ce->oh;

	oh->version = STATE_VERSION;
	oh->window = window;
	oh->max_msg = ce->max_msg;
	oh->stream = sk_br_random_id();
	oh->importer = 0;
	oh->next = 1;
	oh->acked = 0;
	oh->chan_pos = 0;
	oh->chan_id = ce->chan_id;
	/* Release: the fields above before the magic that says they are
	 * there (a kill mid-way leaves magic 0: initialised again). */
	__atomic_store_n(&oh->magic, OB_MAGIC, __ATOMIC_RELEASE);
}

/* Validate an outbox and recover next/chan_pos; -EBADMSG if a bound is
 * broken, -EPROTO if it does not fit the channel. */
static int outbox_recover(struct cexport *ce, size_t seg_size)
{
	struct ob_hdr *oh = ce->oh;

	if (oh->version != STATE_VERSION || !oh->window || oh->window > SHMKIT_BRIDGE_WINDOW_MAX ||
	    oh->max_msg > MAX_MSG_LIMIT || !oh->stream)
		return -EBADMSG;
	if (oh->max_msg < ce->max_msg)
		return -EPROTO;
	ce->window = oh->window;
	ce->stride = (OB_SLOT_HDR + (size_t)oh->max_msg + 7) & ~(size_t)7;
	if (OB_HDR + ce->window * ce->stride > seg_size)
		return -EBADMSG;
	if (oh->chan_id != ce->chan_id) { /* the channel was made again */
		st_rel(&oh->chan_pos, 0);
		oh->chan_id = ce->chan_id;
	}
	ce->slots = (unsigned char *)oh + OB_HDR;
	ce->acked = ld_acq(&oh->acked);
	ce->next = ld_acq(&oh->next);
	if (ce->next < 1 || ce->acked >= ce->next || ce->next - 1 - ce->acked > ce->window)
		return -EBADMSG;
	uint64_t pos = ld_acq(&oh->chan_pos);
	/* A kill between a slot's publication and the header's: the slot
	 * says so.  At most window steps. */
	while (ce->next - 1 - ce->acked < ce->window && ld_acq(&ob_slot(ce, ce->next)->seq) == ce->next)
		pos = ob_slot(ce, ce->next++)->chan_pos;
	st_rel(&oh->chan_pos, pos);
	st_rel(&oh->next, ce->next);
	for (uint64_t s = ce->acked + 1; s < ce->next; s++)
		if (ob_slot(ce, s)->len > oh->max_msg || ld_acq(&ob_slot(ce, s)->seq) != s)
			return -EBADMSG;
	return 0;
}

static int outbox_open(shmkit_bridge *br, struct cexport *ce)
{
	char name[NAME_MAX_ + 32];
	size_t stride = (OB_SLOT_HDR + (size_t)ce->max_msg + 7) & ~(size_t)7, size;
	int rc = sk_br_state_name(name, sizeof(name), ce->name, "skbr-out");

	if (!rc)
		rc = sk_br_state_open(br, &ce->seg, name, OB_HDR + (size_t)br->window * stride, OB_HDR);
	if (rc)
		return rc;
	size = shmkit_seg_size(ce->seg);
	ce->oh = shmkit_seg_data(ce->seg);
	/* Acquire: pairs with the release store of the magic (outbox_init). */
	if (__atomic_load_n(&ce->oh->magic, __ATOMIC_ACQUIRE) != OB_MAGIC) {
		size_t fits = (size - OB_HDR) / stride; /* a segment a killed creator left */
		if (!fits)
			return -EPROTO;
		outbox_init(ce, (uint32_t)(fits < (size_t)br->window ? fits : (size_t)br->window));
	}
	return outbox_recover(ce, size);
}

static void cexport_free(struct cexport *ce)
{
	if (ce->ch)
		shmkit_chan_close(ce->ch);
	if (ce->seg)
		shmkit_seg_close(ce->seg); /* its fd goes, and the flock with it */
	free(ce->frame);
	free(ce);
}

int shmkit_bridge_export_chan(shmkit_bridge *br, const char *name)
{
	struct shmkit_chan_stats cs;
	struct shmkit_seg_info ss;
	struct cexport *ce;
	int rc;

	if (!br || !sk_br_name_ok(name) || is_chan_import(br, name) || is_chan_export(br, name))
		return -EINVAL;
	if (br->ncex == MAX_EXPORTS)
		return -ENOSPC;
	ce = calloc(1, sizeof(*ce));
	if (!ce)
		return -ENOMEM;
	snprintf(ce->name, sizeof(ce->name), "%s", name);
	rc = shmkit_chan_open(&ce->ch, name, NULL);
	if (!rc)
		rc = shmkit_chan_stats(ce->ch, &cs);
	if (!rc)
		rc = shmkit_seg_info(shmkit_chan_seg(ce->ch), &ss);
	if (!rc && !cs.spsc)
		rc = ce->owned = chan_own(&ce->ch, name, owner_token("export ", name));
	if (rc >= 0) {
		ce->spsc = cs.spsc;
		ce->capacity = cs.capacity;
		ce->max_msg = cs.max_msg;
		ce->chan_id = (uint64_t)ss.created_ns;
		rc = outbox_open(br, ce);
	}
	if (!rc)
		rc = ce->fd = shmkit_chan_fd(ce->ch, SHMKIT_CHAN_POLLIN);
	if (rc >= 0) {
		ce->topic_len = shmkit_bridge_topic(ce->topic, sizeof(ce->topic),
		                                    SHMKIT_BRIDGE_KIND_CHAN, name);
		rc = ce->topic_len < 0 ? ce->topic_len : 0;
	}
	if (!rc) {
		ce->frame_cap = (size_t)ce->topic_len + SHMKIT_BRIDGE_HDR + ce->oh->max_msg;
		ce->frame = malloc(ce->frame_cap);
		rc = ce->frame ? 0 : -ENOMEM;
	}
	if (rc < 0) {
		cexport_free(ce);
		return rc;
	}
	ce->sent_upto = ce->max_sent = ce->acked;
	br->cex[br->ncex++] = ce;
	sk_br_note(br, "export chan %s", name);
	return 0;
}

/* Put the peeked message into the outbox as seq next. */
static void outbox_put(struct cexport *ce, const void *msg, size_t len, uint64_t chan_pos)
{
	struct ob_slot *s = ob_slot(ce, ce->next);

	memcpy((unsigned char *)s + OB_SLOT_HDR, msg, len);
	s->len = (uint32_t)len;
	s->chan_pos = chan_pos;
	st_rel(&s->seq, ce->next);      /* the commit point of the put */
	st_rel(&ce->oh->chan_pos, chan_pos);
	st_rel(&ce->oh->next, ++ce->next);
}

/* Take messages from the channel while the window has room: 1 cut
 * short, 0 empty or window full, <0 error. */
static int cexport_fill(shmkit_bridge *br, struct cexport *ce)
{
	for (int n = 0; n < BATCH; n++) {
		struct shmkit_chan_stats cs;
		const void *buf;
		uint64_t pos = 0;

		if (ce->next - 1 - ce->acked >= ce->window)
			return 0;
		ssize_t r = shmkit_chan_peek(ce->ch, &buf, 0);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r == -EBADMSG || r == -EIO ? 0 : (int)r;
		crash_point("chan.export.peeked");
		if (ce->spsc) {
			/* Our peek holds head: it is the message's position. */
			shmkit_chan_stats(ce->ch, &cs);
			pos = cs.received;
			if (pos < ld_acq(&ce->oh->chan_pos)) {
				br->st.redelivered++;
				shmkit_chan_release(ce->ch);
				continue;
			}
		} else if (ce->owned && shmkit_chan_peek_pos(ce->ch, &pos) == 0 &&
		           pos + 1 == ld_acq(&ce->oh->chan_pos)) {
			/* The claim our killed predecessor put and never
			 * released (inherited: see the essay). */
			br->st.redelivered++;
			shmkit_chan_release(ce->ch);
			continue;
		}
		outbox_put(ce, buf, (size_t)r, pos + 1);
		crash_point("chan.export.put");
		br->st.chan_out++;
		/* -ESTALE here (our claim taken as dead: a closed descriptor)
		 * would mean the channel handed the message on as well; the
		 * outbox keeps its copy. */
		shmkit_chan_release(ce->ch);
	}
	return 1;
}

static void send_hdr(shmkit_bridge *br, struct shmkit_bridge_hdr *h, int kind, uint32_t stream,
                     uint64_t seq)
{
	*h = (struct shmkit_bridge_hdr){ .kind = (uint8_t)kind, .origin = br->id,
	                                 .stream = stream, .seq = seq };
}

/* Send un-sent outbox messages to the importer: 0 done, 2 the socket is
 * full, <0 error. */
static int cexport_send(shmkit_bridge *br, struct cexport *ce, int64_t now)
{
	if (!ce->rid_len)
		return 0;
	if (ce->held) {
		if (now - ce->progress <= RESEND_NS)
			return 0; /* what it sent now would be dropped */
		ce->held = 0; /* no word of the drain (lost?): the timer's resend */
	}
	if (ce->sent_upto > ce->acked && now - ce->progress > RESEND_NS) {
		ce->sent_upto = ce->acked; /* go back N */
		ce->progress = now;
	}
	if (ce->sent_upto < ce->acked)
		ce->sent_upto = ce->acked;
	while (ce->sent_upto + 1 < ce->next) {
		uint64_t seq = ce->sent_upto + 1;
		struct ob_slot *s = ob_slot(ce, seq);
		struct shmkit_bridge_hdr h;
		uint32_t len = s->len;

		if (ld_acq(&s->seq) != seq || len > ce->oh->max_msg)
			return -EBADMSG; /* our own outbox overwritten */
		send_hdr(br, &h, SHMKIT_BRIDGE_KIND_CHAN, ce->oh->stream, seq);
		h.delivery = (uint8_t)ce->spsc;
		h.capacity = ce->capacity;
		h.max_msg = ce->max_msg;
		ssize_t fl = sk_br_frame(ce->frame, ce->frame_cap, ce->topic, ce->topic_len, &h,
		                         (unsigned char *)s + OB_SLOT_HDR, len);
		int rc = fl < 0 ? (int)fl : sk_link_to_rid(br, ce->rid, ce->rid_len, ce->frame, (size_t)fl);
		if (rc == 1)
			return 2;
		if (rc == -EHOSTUNREACH) {
			ce->rid_len = 0; /* gone: wait for its next hello */
			return 0;
		}
		if (rc < 0)
			return rc;
		if (ce->sent_upto == ce->acked)
			ce->progress = now;
		br->st.chan_sent++;
		if (seq <= ce->max_sent)
			br->st.resends++;
		else
			ce->max_sent = seq;
		ce->sent_upto = seq;
	}
	return 0;
}

static struct cexport *cexport_find(shmkit_bridge *br, const char *topic, size_t len)
{
	for (unsigned i = 0; i < br->ncex; i++)
		if ((size_t)br->cex[i]->topic_len == len && !memcmp(br->cex[i]->topic, topic, len))
			return br->cex[i];
	return NULL;
}

static void cexport_hello(shmkit_bridge *br, struct cexport *ce, const unsigned char *rid,
                          size_t rid_len, uint32_t importer)
{
	int unacked = ce->next - 1 > ce->acked;

	if (unacked && ce->oh->importer && ce->oh->importer != importer) {
		br->st.refused++;
		return;
	}
	ce->oh->importer = importer;
	if (ce->rid_len != rid_len || memcmp(ce->rid, rid, rid_len)) {
		memcpy(ce->rid, rid, rid_len);
		ce->rid_len = rid_len;
		ce->sent_upto = ce->acked; /* a new connection: send everything un-acked */
		ce->held = 0;
	}
}

static void cexport_ack(shmkit_bridge *br, struct cexport *ce, const struct shmkit_bridge_hdr *h)
{
	uint64_t n = h->seq;

	if (h->stream != ce->oh->stream || ce->oh->importer != h->origin)
		return; /* an ack of an older outbox, or of another importer */
	if (n > ce->next - 1)
		n = ce->next - 1; /* acks what was never sent: bounded */
	if (n > ce->acked) {
		br->st.acked += n - ce->acked;
		ce->acked = n;
		st_rel(&ce->oh->acked, n);
		ce->progress = sk_br_now();
	}
	if (h->delivery == ACK_FULL && ce->sent_upto > ce->acked) {
		/* The frame after n found the channel full, and those after it
		 * were dropped as out of order: wait for the drain. */
		ce->sent_upto = ce->acked;
		ce->held = 1;
		ce->progress = sk_br_now();
	} else if (h->delivery == ACK_DRAINED && ce->held) {
		ce->held = 0; /* resend now, not at the timer */
		ce->sent_upto = ce->acked;
		ce->progress = sk_br_now();
		br->st.chan_drained++;
	}
}

/* ======================= imports ======================= */

int shmkit_bridge_import_chan(shmkit_bridge *br, const char *remote, const char *local)
{
	struct cimport *ci;
	char state[NAME_MAX_ + 32];
	int rc;

	if (!local)
		local = remote;
	if (!br || !sk_br_name_ok(remote) || !sk_br_name_ok(local) || is_chan_export(br, local) ||
	    is_chan_import(br, local) || sk_br_state_name(state, sizeof(state), local, "skbr-in"))
		return -EINVAL;
	if (br->ncim == MAX_IMPORTS)
		return -ENOSPC;
	if ((rc = sk_br_import_check(br, local)) < 0)
		return rc;
	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return -ENOMEM;
	snprintf(ci->remote, sizeof(ci->remote), "%s", remote);
	snprintf(ci->local, sizeof(ci->local), "%s", local);
	ci->topic_len = shmkit_bridge_topic(ci->topic, sizeof(ci->topic), SHMKIT_BRIDGE_KIND_CHAN, remote);
	if (ci->topic_len < 0) {
		rc = ci->topic_len;
		free(ci);
		return rc;
	}
	br->cim[br->ncim++] = ci;
	sk_br_note(br, "import chan %s=%s", remote, local);
	return 0;
}

static void cimport_free(struct cimport *ci)
{
	if (ci->ch)
		shmkit_chan_close(ci->ch);
	if (ci->seg)
		shmkit_seg_close(ci->seg);
	free(ci);
}

/* The SPSC producer role, taken now (a reserve, aborted): the core
 * reconciles the channel's tail with its slots, so the tail read next is
 * exact.  -EAGAIN (full) takes the role too. */
static int spsc_take_role(shmkit_chan *ch)
{
	void *b;
	int rc = shmkit_chan_reserve(ch, &b, 0);

	if (!rc)
		return shmkit_chan_abort(ch);
	return rc == -EAGAIN ? 0 : rc;
}

/* The tag an MPMC commit of seq for inbox entry i carries: unique per
 * (entry, seq), never 0. */
static uint64_t ib_tag(unsigned i, uint64_t seq)
{
	return (uint64_t)(i + 1) << 56 | (seq & ((1ull << 56) - 1));
}

/* A commit a killed bridge left pending: decide it (see the essay). */
static int inbox_recover(shmkit_bridge *br, struct cimport *ci)
{
	struct shmkit_chan_stats cs;
	uint64_t tag = 0;
	int rc = ci->spsc ? spsc_take_role(ci->ch) : 0;

	if (!rc)
		rc = shmkit_chan_stats(ci->ch, &cs);
	if (!rc && ci->owned)
		rc = shmkit_chan_owner_tag(ci->ch, &tag);
	for (unsigned i = 0; !rc && i < IB_ENTRIES; i++) {
		struct ib_entry *e = &ci->e[i];
		uint64_t last = ld_acq(&e->last), pending = ld_acq(&e->pending);
		if (!pending || pending != last + 1)
			continue;
		if (ci->spsc ? cs.sent > e->pending_pos : ci->owned && tag == ib_tag(i, pending))
			st_rel(&e->last, pending); /* it was committed */
		else if (!ci->spsc && !ci->owned)
			br->st.uncertain++;
		st_rel(&e->pending, 0);
	}
	return rc;
}

static int inbox_open(shmkit_bridge *br, struct cimport *ci)
{
	char name[NAME_MAX_ + 32];
	struct ib_hdr *ih;
	int rc = sk_br_state_name(name, sizeof(name), ci->local, "skbr-in");

	if (!rc)
		rc = sk_br_state_open(br, &ci->seg, name, sizeof(*ih) + IB_ENTRIES * sizeof(struct ib_entry),
		                sizeof(*ih) + IB_ENTRIES * sizeof(struct ib_entry));
	if (rc)
		return rc;
	ih = shmkit_seg_data(ci->seg);
	ci->e = (struct ib_entry *)(ih + 1);
	/* Acquire: pairs with the release store of the magic below. */
	if (__atomic_load_n(&ih->magic, __ATOMIC_ACQUIRE) != IB_MAGIC) {
		memset(ci->e, 0, IB_ENTRIES * sizeof(struct ib_entry));
		ih->version = STATE_VERSION;
		ih->entries = IB_ENTRIES;
		/* Release: the zeroed entries before the magic. */
		__atomic_store_n(&ih->magic, IB_MAGIC, __ATOMIC_RELEASE);
	} else if (ih->version != STATE_VERSION || ih->entries != IB_ENTRIES) {
		return -EBADMSG;
	}
	return inbox_recover(br, ci);
}

/* The local channel (created with the remote geometry if missing and
 * sane, the bridge's mode; with excl only if missing or the bridge's)
 * and its inbox, at the first frame. */
static int cimport_open(shmkit_bridge *br, struct cimport *ci, const struct shmkit_bridge_hdr *h)
{
	struct shmkit_chan_opts o = { .mode = br->mode, .flags = sk_br_import_flags(br, ci->local) };
	struct shmkit_chan_stats cs;
	int rc;

	if (ci->ch)
		return 0;
	if (h->capacity && h->capacity <= (1u << 24) && h->max_msg && h->max_msg <= MAX_MSG_LIMIT &&
	    (uint64_t)h->capacity * ((uint64_t)h->max_msg + 64) <= GEOMETRY_LIMIT) {
		o.capacity = h->capacity;
		o.max_msg = h->max_msg;
	}
	if (h->delivery == 1)
		o.flags |= SHMKIT_CHAN_SPSC;
	int existed = sk_br_exists(ci->local);
	rc = shmkit_chan_create(&ci->ch, ci->local, &o);
	if (!rc)
		rc = shmkit_chan_stats(ci->ch, &cs);
	if (!rc && existed)
		sk_br_note_opened(br, "chan", ci->remote, ci->local,
		                  &(struct sk_geometry){ "capacity", cs.capacity, "max_msg", cs.max_msg },
		                  &(struct sk_geometry){ NULL, h->capacity, NULL, h->max_msg });
	if (!rc && !cs.spsc)
		rc = ci->owned = chan_own(&ci->ch, ci->local, owner_token("import ", ci->local));
	if (rc >= 0) {
		ci->spsc = cs.spsc;
		ci->max_msg = cs.max_msg;
		rc = inbox_open(br, ci);
	}
	if (rc) {
		if (ci->seg)
			shmkit_seg_close(ci->seg);
		if (ci->ch)
			shmkit_chan_close(ci->ch);
		ci->seg = NULL;
		ci->ch = NULL;
		ci->owned = 0;
	}
	return rc;
}

static struct ib_entry *inbox_entry(struct cimport *ci, uint32_t stream, uint64_t seq, unsigned *idx)
{
	struct ib_entry *free_e = NULL;

	for (unsigned i = 0; i < IB_ENTRIES; i++) {
		if (ci->e[i].stream == stream) {
			*idx = i;
			return &ci->e[i];
		}
		if (!ci->e[i].stream && !free_e) {
			free_e = &ci->e[i];
			*idx = i;
		}
	}
	if (!free_e)
		return NULL;
	/* A stream never seen: it starts where it stands (its earlier
	 * messages were acked to nobody else: they went elsewhere or were
	 * committed before this state existed). */
	free_e->pending = 0;
	st_rel(&free_e->last, seq - 1);
	/* Release: last before the stream word that makes the entry live. */
	__atomic_store_n(&free_e->stream, stream, __ATOMIC_RELEASE);
	return free_e;
}

/* Send, or with an owner record commit with the tag of (entry, seq). */
static int cimport_send(struct cimport *ci, unsigned i, uint64_t seq, const unsigned char *payload,
                        uint32_t len)
{
	void *buf;
	int rc;

	if (!ci->owned)
		return shmkit_chan_send(ci->ch, payload, len, 0);
	if ((rc = shmkit_chan_reserve(ci->ch, &buf, 0)))
		return rc;
	memcpy(buf, payload, len);
	crash_point("chan.import.reserved");
	return shmkit_chan_commit_tag(ci->ch, len, ib_tag(i, seq));
}

/* Commit one message into the local channel as seq of entry e. */
static void cimport_commit(shmkit_bridge *br, struct cimport *ci, struct ib_entry *e, uint64_t seq,
                           const unsigned char *payload, uint32_t len)
{
	struct shmkit_chan_stats cs;

	if (ci->spsc && shmkit_chan_stats(ci->ch, &cs) == 0)
		e->pending_pos = cs.sent; /* we are the only producer: exact */
	st_rel(&e->pending, seq);
	int rc = cimport_send(ci, (unsigned)(e - ci->e), seq, payload, len);
	if (!rc || rc == -EAGAIN) /* full: said in acks until it drains */
		ci->full[e - ci->e] = rc ? ACK_FULL : 0;
	if (!rc) {
		crash_point("chan.import.committed");
		st_rel(&e->last, seq);
		br->st.chan_in++;
	} else if (rc == -EAGAIN) {
		br->st.chan_full++; /* dropped, sent again by the exporter */
	} else {
		br->st.unroutable++;
	}
	st_rel(&e->pending, 0);
}

static void cimport_data(shmkit_bridge *br, struct cimport *ci, unsigned p,
                         const struct shmkit_bridge_hdr *h, const unsigned char *payload)
{
	struct ib_entry *e;
	unsigned idx = 0;

	if (!h->stream || !h->seq || cimport_open(br, ci, h)) {
		br->st.unroutable++;
		return;
	}
	e = inbox_entry(ci, h->stream, h->seq, &idx);
	if (!e) {
		br->st.unroutable++;
		return;
	}
	uint64_t last = ld_acq(&e->last);
	if (h->seq <= last) {
		br->st.duplicates++;
	} else if (h->seq > last + 1) {
		br->st.out_of_order++;
	} else if (h->length > ci->max_msg) {
		/* Never deliverable here: counted, and acked so that the
		 * outbox is not wedged by it. */
		br->st.unroutable++;
		st_rel(&e->last, h->seq);
	} else {
		cimport_commit(br, ci, e, h->seq, payload, h->length);
	}
	ci->dirty[idx] = 1;
	ci->ack_peer[idx] = (unsigned char)p;
}

static struct cimport *cimport_find(shmkit_bridge *br, const char *topic, size_t len)
{
	for (unsigned i = 0; i < br->ncim; i++)
		if ((size_t)br->cim[i]->topic_len == len && !memcmp(br->cim[i]->topic, topic, len))
			return br->cim[i];
	return NULL;
}

/* Acks owed, and hellos when due (to every peer). */
static void cimport_talk(shmkit_bridge *br, struct cimport *ci, int hello)
{
	unsigned char f[TOPIC_MAX + SHMKIT_BRIDGE_HDR];
	struct shmkit_bridge_hdr h;

	struct shmkit_chan_stats cs;
	int room = -1; /* not looked yet */

	for (unsigned i = 0; ci->e && i < IB_ENTRIES; i++) {
		if (ci->full[i] == ACK_FULL) {
			if (room < 0)
				room = shmkit_chan_stats(ci->ch, &cs) == 0 && cs.depth < cs.capacity;
			if (room) {
				ci->full[i] = ACK_DRAINED;
				ci->dirty[i] = 1;
			}
		}
		if (!ci->dirty[i])
			continue;
		send_hdr(br, &h, SHMKIT_BRIDGE_KIND_CHAN_ACK, ci->e[i].stream, ld_acq(&ci->e[i].last));
		h.delivery = ci->full[i];
		ssize_t fl = sk_br_frame(f, sizeof(f), ci->topic, ci->topic_len, &h, NULL, 0);
		if (fl > 0 && sk_link_to_peer(br, ci->ack_peer[i], f, (size_t)fl) == 0) {
			ci->dirty[i] = 0;
			if (ci->full[i] == ACK_DRAINED)
				ci->full[i] = 0;
		}
	}
	if (!hello)
		return;
	send_hdr(br, &h, SHMKIT_BRIDGE_KIND_CHAN_HELLO, 0, 0);
	ssize_t fl = sk_br_frame(f, sizeof(f), ci->topic, ci->topic_len, &h, NULL, 0);
	for (unsigned p = 0; fl > 0 && p < br->npeer; p++)
		sk_link_to_peer(br, p, f, (size_t)fl); /* not now: the next round */
}

/* ======================= the loop's part ======================= */

static void chan_frame(shmkit_bridge *br, const unsigned char *rid, size_t rid_len, unsigned p,
                   const struct shmkit_bridge_hdr *h, const char *topic, size_t topic_len,
                   const unsigned char *payload)
{
	if (h->kind == SHMKIT_BRIDGE_KIND_CHAN) {
		struct cimport *ci = rid_len ? NULL : cimport_find(br, topic, topic_len);
		if (ci)
			cimport_data(br, ci, p, h, payload);
		else
			br->st.unroutable++;
		return;
	}
	struct cexport *ce = rid_len ? cexport_find(br, topic, topic_len) : NULL;
	if (!ce) {
		br->st.unroutable++;
		return;
	}
	if (h->kind == SHMKIT_BRIDGE_KIND_CHAN_HELLO)
		cexport_hello(br, ce, rid, rid_len, h->origin);
	else
		cexport_ack(br, ce, h);
}

static int chan_pump(shmkit_bridge *br, int hello)
{
	int64_t now = sk_br_now();
	int more = 0, full = 0;

	for (unsigned i = 0; i < br->ncex; i++) {
		int rc = cexport_fill(br, br->cex[i]);
		if (rc < 0)
			return rc;
		more |= rc;
		rc = cexport_send(br, br->cex[i], now);
		if (rc < 0)
			return rc;
		full |= rc == 2;
	}
	for (unsigned i = 0; i < br->ncim; i++) {
		cimport_talk(br, br->cim[i], hello);
		/* a full local channel gives no event when it drains: look
		 * again soon (the loop's brief poll) */
		full |= memchr(br->cim[i]->full, ACK_FULL, IB_ENTRIES) != NULL;
	}
	return more ? 1 : full ? 2 : 0;
}

static int chan_pollitems(shmkit_bridge *br, zmq_pollitem_t *it)
{
	for (unsigned i = 0; i < br->ncex; i++) {
		struct cexport *ce = br->cex[i];
		/* A full window is not polled: the fd would stay readable. */
		it[i] = (zmq_pollitem_t){ .fd = ce->fd,
		                          .events = ce->next - 1 - ce->acked < ce->window ? ZMQ_POLLIN : 0 };
	}
	return (int)br->ncex;
}

static void chan_polled(shmkit_bridge *br, const zmq_pollitem_t *it)
{
	for (unsigned i = 0; i < br->ncex; i++)
		if (it[i].revents & ZMQ_POLLIN)
			shmkit_chan_ack_fd(br->cex[i]->ch);
}

static void chan_free_all(shmkit_bridge *br)
{
	for (unsigned i = 0; i < br->ncex; i++)
		cexport_free(br->cex[i]);
	for (unsigned i = 0; i < br->ncim; i++)
		cimport_free(br->cim[i]);
	br->ncex = br->ncim = 0;
}

const struct sk_service sk_chan_service = {
	.first = SHMKIT_BRIDGE_KIND_CHAN, .last = SHMKIT_BRIDGE_KIND_CHAN_HELLO,
	.max_items = MAX_EXPORTS,
	.frame = chan_frame, .pump = chan_pump, .pollitems = chan_pollitems,
	.polled = chan_polled, .free_all = chan_free_all,
};
