/*
 * channel.c - shmkit.Channel: a named queue, each message to one receiver.
 * Copies (send, recv, recv_into) and zero-copy (reserve -> Loan -> commit;
 * peek -> Message -> release); fileno()/ack() for event loops.
 */
#include "pyshmkit.h"

#include <errno.h>
#include <string.h>

typedef struct {
	SkHandle h;
	shmkit_chan *ch;
} SkChannel;

#define CH(self) ((SkChannel *)(self))

static PyObject *chan_wrap(shmkit_chan *ch, int wait)
{
	SkChannel *c = (SkChannel *)SkChannel_Type.tp_alloc(&SkChannel_Type, 0);

	if (!c) {
		shmkit_chan_close(ch);
		return NULL;
	}
	c->ch = ch;
	sk_py_spin_init(&c->h, wait);
	return (PyObject *)c;
}

static PyObject *chan_make(PyObject *args, PyObject *kw, int create)
{
	static char *kwl[] = {"name", "capacity", "max_msg", "mode", "exclusive", "spsc",
	                      "readonly", "populate", "mlock", "wait", "timeout", "owner", NULL};
	const char *name;
	unsigned cap = 0, max_msg = 0, mode = 0;
	int excl = 0, spsc = 0, ro = 0, pop = 0, mlock = 0, wait = 0, rc;
	int64_t tns = 0;
	unsigned long long owner = 0;
	shmkit_chan *ch;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$IIIpppppiO&K", kwl, &name, &cap, &max_msg,
	                                 &mode, &excl, &spsc, &ro, &pop, &mlock, &wait,
	                                 sk_py_timeout_conv, &tns, &owner))
		return NULL;
	struct shmkit_chan_opts o = {.capacity = cap, .max_msg = max_msg, .mode = mode,
		.flags = sk_py_flags(excl, ro, pop, mlock, 0, 0) | (spsc ? SHMKIT_CHAN_SPSC : 0),
		.wait = wait, .init_timeout_ns = tns, .owner = owner};
	Py_BEGIN_ALLOW_THREADS
	rc = create ? shmkit_chan_create(&ch, name, &o) : shmkit_chan_open(&ch, name, &o);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, name);
	return chan_wrap(ch, wait);
}

static PyObject *chan_create(PyObject *cls, PyObject *args, PyObject *kw)
{
	return chan_make(args, kw, 1);
}

static PyObject *chan_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	return chan_make(args, kw, 0);
}

/* attach(segment): a channel over an open segment of kind KIND_CHAN (a
 * received memfd); the Channel takes it over (the Segment is closed). */
static PyObject *chan_attach(PyObject *cls, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"segment", "wait", NULL};
	PyObject *segobj;
	int wait = 0, rc;
	shmkit_seg *seg;
	shmkit_chan *ch;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$i:attach", kwl, &segobj, &wait) ||
	    !(seg = sk_py_seg_take(segobj)))
		return NULL;
	struct shmkit_chan_opts o = {.wait = wait};
	if ((rc = shmkit_chan_attach(&ch, seg, &o)) < 0) {
		sk_py_seg_give_back(segobj, seg);
		return sk_py_error(rc, NULL);
	}
	return chan_wrap(ch, wait);
}

struct send_fd_call {
	shmkit_chan *ch;
	int sock;
};

static int call_send_fd(void *p)
{
	struct send_fd_call *c = p;
	return shmkit_seg_send_fd(shmkit_chan_seg(c->ch), c->sock);
}

static PyObject *chan_send_fd(PyObject *self, PyObject *sock)
{
	struct send_fd_call c = {CH(self)->ch, PyObject_AsFileDescriptor(sock)};

	return c.sock < 0 ? NULL : sk_py_call(&CH(self)->h, call_send_fd, &c, 1);
}

static PyObject *chan_close(PyObject *self, PyObject *unused)
{
	if (CH(self)->h.closed)
		Py_RETURN_NONE;
	if (sk_views_close(&CH(self)->h) < 0 || sk_py_enter(&CH(self)->h) < 0)
		return NULL;
	shmkit_chan_close(CH(self)->ch);
	CH(self)->ch = NULL;
	CH(self)->h.closed = 1;
	sk_py_leave(&CH(self)->h);
	Py_RETURN_NONE;
}

static void chan_dealloc(PyObject *self)
{
	shmkit_chan_close(CH(self)->ch);
	sk_handle_free_views(&CH(self)->h);
	Py_TYPE(self)->tp_free(self);
}

/* ---- blocking operations, run by sk_py_wait without the GIL ---- */

struct chan_op {
	shmkit_chan *ch;
	const void *in;
	void *out;
	size_t len;
};

static long long op_send(void *p, int64_t t)
{
	struct chan_op *o = p;
	return shmkit_chan_send(o->ch, o->in, o->len, t);
}

static long long op_recv(void *p, int64_t t)
{
	struct chan_op *o = p;
	return shmkit_chan_recv(o->ch, o->out, o->len, t);
}

static long long op_peek(void *p, int64_t t)
{
	struct chan_op *o = p;
	return shmkit_chan_peek(o->ch, (const void **)&o->in, t);
}

static long long op_reserve(void *p, int64_t t)
{
	struct chan_op *o = p;
	return shmkit_chan_reserve(o->ch, &o->out, t);
}

static long long chan_run(PyObject *self, sk_py_op op, struct chan_op *o, PyObject *timeout)
{
	o->ch = CH(self)->ch;
	return sk_py_run(&CH(self)->h, op, o, timeout);
}

/* send(data) and recv_into(buffer): a copy between a Python buffer and
 * the channel.  The count, or -1 with an exception set. */
static long long chan_copy(SK_FAST_ARGS, int into)
{
	static const char *const kw_send[] = {"data", "timeout", NULL},
		*const kw_into[] = {"buffer", "timeout", NULL};
	Py_buffer b;
	PyObject *a[2];
	struct chan_op o = {0};
	long long rc;

	if (sk_py_fast_args(into ? "recv_into" : "send", args, nargs, kwnames,
	                    into ? kw_into : kw_send, 1, a) < 0 ||
	    sk_py_fast_buffer(into ? "recv_into" : "send", a[0], &b, into) < 0)
		return -1;
	PyObject *timeout = a[1];
	o.in = o.out = b.buf;
	o.len = (size_t)b.len;
	rc = chan_run(self, into ? op_recv : op_send, &o, timeout);
	PyBuffer_Release(&b);
	return rc < 0 ? -1 : rc;
}

static PyObject *chan_send(SK_FAST_ARGS)
{
	if (chan_copy(self, args, nargs, kwnames, 0) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *chan_recv_into(SK_FAST_ARGS)
{
	long long n = chan_copy(self, args, nargs, kwnames, 1);

	return n < 0 ? NULL : PyLong_FromLongLong(n);
}

static const struct sk_view_ops peek_ops;

/* recv(): the next message copied out (peek, copy, release: no buffer of
 * max_msg bytes per call). */
static PyObject *chan_recv(SK_FAST_ARGS)
{
	PyObject *timeout, *r;
	struct chan_op o = {0};
	long long n;

	if (sk_py_fast_timeout("recv", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	if ((n = chan_run(self, op_peek, &o, timeout)) < 0)
		return NULL;
	r = PyBytes_FromStringAndSize(o.in, (Py_ssize_t)n);
	/* Released in any case: the copy was the only use of it. */
	n = shmkit_chan_release(CH(self)->ch);
	if (r && n < 0) {
		Py_CLEAR(r);
		sk_py_error((int)n, NULL);
	}
	return r;
}

static int peek_end(SkView *v)
{
	return shmkit_chan_release(CH(v->owner)->ch);
}

static const struct sk_view_ops peek_ops = {.end = peek_end};

static PyObject *chan_peek(SK_FAST_ARGS)
{
	PyObject *timeout;
	struct chan_op o = {0};
	long long n;
	SkView *v;

	if (sk_py_fast_timeout("peek", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	if ((n = chan_run(self, op_peek, &o, timeout)) < 0)
		return NULL;
	v = sk_view_new(&SkMessage_Type, &CH(self)->h, &peek_ops, (void *)o.in, (Py_ssize_t)n);
	if (!v)
		shmkit_chan_release(CH(self)->ch);
	return (PyObject *)v;
}

static int loan_end(SkView *v)
{
	return shmkit_chan_abort(CH(v->owner)->ch);
}

/* commit(length, *, tag=None): with a tag, shmkit_chan_commit_tag (an
 * owned handle's record of its last delivered commit). */
static PyObject *loan_commit(SkView *v, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"length", "tag", NULL};
	Py_ssize_t len;
	PyObject *tag = Py_None;
	unsigned long long t = 0;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "n|$O:commit", kwl, &len, &tag) ||
	    sk_view_len_ok(v, len) < 0)
		return NULL;
	if (tag != Py_None && (t = PyLong_AsUnsignedLongLong(tag)) == (unsigned long long)-1 &&
	    PyErr_Occurred())
		return NULL;
	rc = tag == Py_None ? shmkit_chan_commit(CH(v->owner)->ch, (size_t)len)
	                    : shmkit_chan_commit_tag(CH(v->owner)->ch, (size_t)len, t);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static const struct sk_view_ops loan_ops = {.end = loan_end, .commit = loan_commit};

static PyObject *chan_reserve(SK_FAST_ARGS)
{
	PyObject *timeout;
	struct chan_op o = {0};
	struct shmkit_chan_stats st;
	SkView *v;

	if (sk_py_fast_timeout("reserve", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	if (chan_run(self, op_reserve, &o, timeout) < 0)
		return NULL;
	shmkit_chan_stats(CH(self)->ch, &st);
	v = sk_view_new(&SkLoan_Type, &CH(self)->h, &loan_ops, o.out, st.max_msg);
	if (!v)
		shmkit_chan_abort(CH(self)->ch);
	return (PyObject *)v;
}

struct fd_call {
	shmkit_chan *ch;
	int events;
};

static int call_fd(void *p)
{
	struct fd_call *f = p;
	return shmkit_chan_fd(f->ch, f->events);
}

static int call_ack(void *p)
{
	return shmkit_chan_ack_fd(p);
}

static PyObject *chan_fileno(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"events", NULL};
	struct fd_call f = {CH(self)->ch, SHMKIT_CHAN_POLLIN};

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:fileno", kwl, &f.events))
		return NULL;
	return sk_py_call(&CH(self)->h, call_fd, &f, 0);
}

static PyObject *chan_ack(PyObject *self, PyObject *unused)
{
	return sk_py_call(&CH(self)->h, call_ack, CH(self)->ch, 1);
}

static PyObject *chan_stats(PyObject *self, PyObject *unused)
{
	struct shmkit_chan_stats st;
	int rc;

	if (sk_py_enter(&CH(self)->h) < 0)
		return NULL;
	rc = shmkit_chan_stats(CH(self)->ch, &st);
	sk_py_leave(&CH(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	return Py_BuildValue("{s:I,s:I,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:n,s:n,s:n,s:O,s:I,s:I}",
		"capacity", st.capacity, "max_msg", st.max_msg,
		"depth", (unsigned long long)st.depth, "sent", (unsigned long long)st.sent,
		"received", (unsigned long long)st.received,
		"full_waits", (unsigned long long)st.full_waits,
		"empty_waits", (unsigned long long)st.empty_waits,
		"reclaimed", (unsigned long long)st.reclaimed,
		"aborted", (unsigned long long)st.aborted, "slot_size", (Py_ssize_t)st.slot_size,
		"hdr_size", (Py_ssize_t)st.hdr_size, "seg_size", (Py_ssize_t)st.seg_size,
		"spsc", st.spsc ? Py_True : Py_False, "producer", st.producer,
		"consumer", st.consumer);
}

/* peek_pos(), reserve_pos(), owner_tag(): a u64 from the handle. */
static PyObject *chan_u64(PyObject *self, int (*fn)(shmkit_chan *, uint64_t *))
{
	uint64_t v = 0;
	int rc;

	if (sk_py_enter(&CH(self)->h) < 0)
		return NULL;
	rc = fn(CH(self)->ch, &v);
	sk_py_leave(&CH(self)->h);
	return rc < 0 ? sk_py_error(rc, NULL) : PyLong_FromUnsignedLongLong(v);
}

static int peek_pos_fn(shmkit_chan *ch, uint64_t *v)
{
	return shmkit_chan_peek_pos(ch, v);
}

static int reserve_pos_fn(shmkit_chan *ch, uint64_t *v)
{
	return shmkit_chan_reserve_pos(ch, v);
}

static PyObject *chan_peek_pos(PyObject *self, PyObject *unused)
{
	return chan_u64(self, peek_pos_fn);
}

static PyObject *chan_reserve_pos(PyObject *self, PyObject *unused)
{
	return chan_u64(self, reserve_pos_fn);
}

static PyObject *chan_owner_tag(PyObject *self, PyObject *unused)
{
	return chan_u64(self, shmkit_chan_owner_tag);
}

static int call_disown(void *p)
{
	return shmkit_chan_disown(p);
}

static PyObject *chan_disown(PyObject *self, PyObject *unused)
{
	return sk_py_call(&CH(self)->h, call_disown, CH(self)->ch, 1);
}

static int peer_one(const struct shmkit_chan_peer *p, void *list)
{
	PyObject *d = Py_BuildValue("{s:i,s:I,s:i,s:i,s:K,s:K,s:O}",
		"role", p->role, "index", p->index, "pid", (int)p->pid, "alive", p->alive,
		"sent", (unsigned long long)p->sent, "received", (unsigned long long)p->received,
		"owned", p->owned ? Py_True : Py_False);

	return sk_py_list_add(list, d);
}

static int call_peers(void *p)
{
	struct sk_peers_call *c = p;
	return shmkit_chan_peers(c->handle, peer_one, c->list);
}

static PyObject *chan_peers(PyObject *self, PyObject *unused)
{
	struct sk_peers_call c = {CH(self)->ch};

	return sk_py_peers(&CH(self)->h, call_peers, &c);
}

static PyObject *chan_iter(PyObject *self)
{
	return sk_py_iter_new(self, "recv", Py_None);
}

static PyObject *chan_messages(PyObject *self, PyObject *args, PyObject *kw)
{
	return sk_py_iter_method(self, "recv", args, kw);
}

static PyObject *chan_get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(CH(self)->h.closed);
}

static PyGetSetDef chan_getset[] = {
	{"closed", chan_get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef chan_methods[] = {
	{"create", KWFN(chan_create) | METH_CLASS,
	 "create(name, *, capacity=64, max_msg=1024, mode=0o600, exclusive=False, spsc=False,\n"
	 "       populate=False, mlock=False, wait=WAIT_ADAPTIVE) -> Channel\n"
	 "(opens an existing channel unless exclusive; its geometry wins); owner: see open"},
	{"open", KWFN(chan_open) | METH_CLASS,
	 "open(name, *, readonly=False, populate=False, mlock=False, wait=WAIT_ADAPTIVE,\n"
	 "     timeout=1.0, owner=0) -> Channel; owner (MPMC): a durable identity - a dead\n"
	 "predecessor's peeked message comes back to the next handle with that owner,\n"
	 "owner_tag() tells whether its last commit(tag=) went in"},
	{"attach", KWFN(chan_attach) | METH_CLASS,
	 "attach(segment, *, wait=WAIT_ADAPTIVE) -> Channel over an open Segment of kind\n"
	 "KIND_CHAN (e.g. Segment.recv_fd); the Channel takes the segment over (closed)"},
	{"send_fd", chan_send_fd, METH_O,
	 "send_fd(sock): pass a memfd channel's segment over a connected UNIX socket\n"
	 "(the receiver: Channel.attach(Segment.recv_fd(sock)))"},
	{"close", chan_close, METH_NOARGS,
	 "close; an open loan is aborted, a peeked message released (BufferError while\n"
	 "one is exported)"},
	{"send", FASTFN(chan_send), "send(data, timeout=None): a copy of data (bytes-like)"},
	{"recv", FASTFN(chan_recv), "recv(timeout=None) -> bytes"},
	{"recv_into", FASTFN(chan_recv_into),
	 "recv_into(buffer, timeout=None) -> length (OSError EMSGSIZE if it does not fit)"},
	{"reserve", FASTFN(chan_reserve),
	 "reserve(timeout=None) -> Loan of max_msg bytes in the channel; loan.commit(n)"},
	{"peek", FASTFN(chan_peek), "peek(timeout=None) -> Message in place; message.release()"},
	{"peek_pos", chan_peek_pos, METH_NOARGS,
	 "peek_pos() -> the channel position of the message this handle has peeked"},
	{"reserve_pos", chan_reserve_pos, METH_NOARGS,
	 "reserve_pos() -> the channel position of this handle's open loan"},
	{"owner_tag", chan_owner_tag, METH_NOARGS,
	 "owner_tag() -> the tag of the owner's last commit(n, tag=T) that delivered (0: none)"},
	{"disown", chan_disown, METH_NOARGS,
	 "disown(): the owner's record becomes an ordinary handle's (close frees it)"},
	{"fileno", KWFN(chan_fileno),
	 "fileno(events=POLLIN) -> fd readable when this side may go on (ack() it, then drain\n"
	 "with timeout=0 until BlockingIOError)"},
	{"ack", chan_ack, METH_NOARGS, "re-arm the fd after it signalled"},
	{"stats", chan_stats, METH_NOARGS, "counters, as a dict"},
	{"peers", chan_peers, METH_NOARGS,
	 "peers() -> a dict per handle taking part (role CHAN_PEER_HANDLE: an MPMC handle's\n"
	 "entry, with sent/received/owned; CHAN_PEER_PRODUCER/CONSUMER: an SPSC role's\n"
	 "holder, with pid), alive 1/0/-1 by the kernel's lock"},
	{"messages", KWFN(chan_messages),
	 "messages(timeout=None) -> iterator of recv(timeout) that ends when one times out"},
	{"recv_async", KWFN(sk_aio_recv),
	 "recv_async(timeout=None) -> coroutine of the next message (shmkit.aio.recv);\n"
	 "`async for msg in channel` waits for each"},
	{"send_async", KWFN(sk_aio_send),
	 "send_async(data, timeout=None) -> coroutine sending a copy, waiting for room\n"
	 "(shmkit.aio.send; the handle's fd then serves POLLOUT)"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkChannel_Type, "shmkit.Channel",
	"A named queue: each message goes to exactly one receiver.",
	SkChannel, chan_dealloc, chan_iter, NULL, chan_methods, NULL, chan_getset);
