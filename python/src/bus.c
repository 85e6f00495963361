/*
 * bus.c - shmkit.Bus and shmkit.Subscription: publish/subscribe, each
 * message to every subscriber.  Copies (publish, recv) and zero-copy
 * (loan -> Loan -> commit publishes; peek -> Message -> release, which
 * raises OSError ESTALE when the message was overwritten while read).
 */
#include "pyshmkit.h"

#include <errno.h>

typedef struct {
	SkHandle h;
	shmkit_bus *bus;
	uint32_t max_msg;
} SkBus;

typedef struct {
	SkHandle h;
	shmkit_sub *sub;
	PyObject *bus;          /* the Bus it was made on (a strong reference) */
	uint32_t max_msg;
	unsigned long long lost, last_lost;
} SkSub;

#define BUS(self) ((SkBus *)(self))
#define SUB(self) ((SkSub *)(self))

static PyObject *bus_make(PyObject *args, PyObject *kw, int create)
{
	static char *kwl[] = {"name", "capacity", "max_msg", "delivery", "mode", "exclusive",
	                      "populate", "mlock", "wait", "timeout", "max_subscribers",
	                      "max_publishers", NULL};
	const char *name;
	unsigned cap = 0, max_msg = 0, mode = 0, max_subs = 0, max_pubs = 0;
	int delivery = 0, excl = 0, pop = 0, mlock = 0, wait = 0, rc;
	int64_t tns = 0;
	shmkit_bus *bus;
	struct shmkit_bus_stats st;
	SkBus *b;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$IIiIpppiO&II", kwl, &name, &cap, &max_msg,
	                                 &delivery, &mode, &excl, &pop, &mlock, &wait,
	                                 sk_py_timeout_conv, &tns, &max_subs, &max_pubs))
		return NULL;
	struct shmkit_bus_opts o = {.capacity = cap, .max_msg = max_msg, .delivery = delivery,
		.mode = mode, .flags = sk_py_flags(excl, 0, pop, mlock, 0, 0), .wait = wait,
		.init_timeout_ns = tns, .max_subscribers = max_subs, .max_publishers = max_pubs};
	Py_BEGIN_ALLOW_THREADS
	rc = create ? shmkit_bus_create(&bus, name, &o) : shmkit_bus_open(&bus, name, &o);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, name);
	if ((rc = shmkit_bus_stats(bus, &st)) < 0 ||
	    !(b = (SkBus *)SkBus_Type.tp_alloc(&SkBus_Type, 0))) {
		shmkit_bus_close(bus);
		return rc < 0 ? sk_py_error(rc, name) : NULL;
	}
	b->bus = bus;
	b->max_msg = st.max_msg;
	/* An overwrite bus never waits for room, but even a try-once publish
	 * waits (up to SK_BUS_STUCK_NS) for a live publisher's copy in
	 * progress in the slot it claimed: never with the GIL held. */
	if (st.delivery != SHMKIT_BUS_OVERWRITE)
		sk_py_spin_init(&b->h, wait);
	return (PyObject *)b;
}

static PyObject *bus_create(PyObject *cls, PyObject *args, PyObject *kw)
{
	return bus_make(args, kw, 1);
}

static PyObject *bus_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	return bus_make(args, kw, 0);
}

static PyObject *bus_close(PyObject *self, PyObject *unused)
{
	int rc;

	if (BUS(self)->h.closed)
		Py_RETURN_NONE;
	/* The views die only once the C close succeeded: a close refused
	 * (-EBUSY: subscriptions open) leaves a loan open, and usable. */
	if (sk_views_check(&BUS(self)->h) < 0 || sk_py_enter(&BUS(self)->h) < 0)
		return NULL;
	rc = shmkit_bus_close(BUS(self)->bus);
	sk_py_leave(&BUS(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);  /* -EBUSY: subscriptions open */
	sk_views_close(&BUS(self)->h);     /* nothing exported: kills them */
	BUS(self)->bus = NULL;
	BUS(self)->h.closed = 1;
	Py_RETURN_NONE;
}

static void bus_dealloc(PyObject *self)
{
	shmkit_bus_close(BUS(self)->bus);  /* no Subscription is left: each holds it */
	sk_handle_free_views(&BUS(self)->h);
	Py_TYPE(self)->tp_free(self);
}

struct bus_op {
	shmkit_bus *bus;
	shmkit_sub *sub;
	const void *in;
	void *out;
	size_t len;
	uint64_t lost;
};

static long long op_publish(void *p, int64_t t)
{
	struct bus_op *o = p;
	return shmkit_bus_publish(o->bus, o->in, o->len, t);
}

static long long op_loan(void *p, int64_t t)
{
	struct bus_op *o = p;
	return shmkit_bus_loan(o->bus, &o->out, t);
}

static long long op_recv(void *p, int64_t t)
{
	struct bus_op *o = p;
	return shmkit_sub_recv(o->sub, o->out, o->len, &o->lost, t);
}

static long long op_peek(void *p, int64_t t)
{
	struct bus_op *o = p;
	return shmkit_sub_peek(o->sub, (const void **)&o->in, &o->lost, t);
}

#define bus_run sk_py_run

static PyObject *bus_publish(SK_FAST_ARGS)
{
	static const char *const names[] = {"data", "timeout", NULL};
	Py_buffer b;
	PyObject *a[2];
	long long rc;

	if (sk_py_fast_args("publish", args, nargs, kwnames, names, 1, a) < 0 ||
	    sk_py_fast_buffer("publish", a[0], &b, 0) < 0)
		return NULL;
	struct bus_op o = {.bus = BUS(self)->bus, .in = b.buf, .len = (size_t)b.len};
	rc = bus_run(&BUS(self)->h, op_publish, &o, a[1]);
	PyBuffer_Release(&b);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

static int loan_end(SkView *v)
{
	return shmkit_bus_abort_loan(BUS(v->owner)->bus);
}

static PyObject *loan_commit(SkView *v, PyObject *args, PyObject *kw)
{
	Py_ssize_t len;
	int rc;

	if (sk_view_commit_len(v, args, kw, &len) < 0)
		return NULL;
	if ((rc = shmkit_bus_publish_loan(BUS(v->owner)->bus, (size_t)len)) < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static const struct sk_view_ops loan_ops = {.end = loan_end, .commit = loan_commit};

static PyObject *bus_loan(SK_FAST_ARGS)
{
	PyObject *timeout;
	SkView *v;

	if (sk_py_fast_timeout("loan", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	struct bus_op o = {.bus = BUS(self)->bus};
	if (bus_run(&BUS(self)->h, op_loan, &o, timeout) < 0)
		return NULL;
	v = sk_view_new(&SkLoan_Type, &BUS(self)->h, &loan_ops, o.out, BUS(self)->max_msg);
	if (!v)
		shmkit_bus_abort_loan(BUS(self)->bus);
	return (PyObject *)v;
}

static PyObject *bus_subscribe(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"from_oldest", "wait", NULL};
	int oldest = 0, wait = 0, rc;
	shmkit_sub *sub;
	SkSub *s;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|$pi:subscribe", kwl, &oldest, &wait) ||
	    sk_py_enter(&BUS(self)->h) < 0)
		return NULL;
	struct shmkit_bus_opts o = {.from = oldest ? SHMKIT_FROM_OLDEST : SHMKIT_FROM_NEWEST,
		.wait = wait};
	rc = shmkit_bus_subscribe(&sub, BUS(self)->bus, &o);
	sk_py_leave(&BUS(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	if (!(s = (SkSub *)SkSubscription_Type.tp_alloc(&SkSubscription_Type, 0))) {
		shmkit_bus_unsubscribe(sub);
		return NULL;
	}
	s->sub = sub;
	sk_py_spin_init(&s->h, wait);
	s->bus = Py_NewRef(self);
	s->max_msg = BUS(self)->max_msg;
	return (PyObject *)s;
}

static PyObject *bus_stats(PyObject *self, PyObject *unused)
{
	struct shmkit_bus_stats st;
	int rc;

	if (sk_py_enter(&BUS(self)->h) < 0)
		return NULL;
	rc = shmkit_bus_stats(BUS(self)->bus, &st);
	sk_py_leave(&BUS(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	return Py_BuildValue("{s:I,s:I,s:i,s:K,s:K,s:I,s:I,s:I,s:n,s:I,s:I}",
		"capacity", st.capacity, "max_msg", st.max_msg, "delivery", st.delivery,
		"head", (unsigned long long)st.head, "oldest", (unsigned long long)st.oldest,
		"publishers", st.publishers, "subscribers", st.subscribers, "armed", st.armed,
		"seg_size", (Py_ssize_t)st.seg_size, "max_publishers", st.max_publishers,
		"max_subscribers", st.max_subscribers);
}

static int peer_one(const struct shmkit_bus_peer *p, void *list)
{
	PyObject *d = Py_BuildValue("{s:O,s:I,s:i,s:i,s:K,s:K,s:K,s:K,s:O}",
		"subscriber", p->subscriber ? Py_True : Py_False, "index", p->index,
		"pid", (int)p->pid, "alive", p->alive,
		"position", (unsigned long long)p->position, "lag", (unsigned long long)p->lag,
		"count", (unsigned long long)p->count, "lost", (unsigned long long)p->lost,
		"armed", p->armed ? Py_True : Py_False);

	return sk_py_list_add(list, d);
}

static int call_peers(void *p)
{
	struct sk_peers_call *c = p;
	return shmkit_bus_peers(c->handle, peer_one, c->list);
}

static PyObject *bus_peers(PyObject *self, PyObject *unused)
{
	struct sk_peers_call c = {BUS(self)->bus};

	return sk_py_peers(&BUS(self)->h, call_peers, &c);
}

static PyObject *get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(((SkHandle *)self)->closed);
}

static PyGetSetDef bus_getset[] = {
	{"closed", get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

struct bus_fd_call {
	shmkit_bus *bus;
	int events;
};

static int call_bus_fd(void *p)
{
	struct bus_fd_call *f = p;
	return shmkit_bus_fd(f->bus, f->events);
}

static int call_bus_ack(void *p)
{
	return shmkit_bus_ack_fd(p);
}

static PyObject *bus_fileno(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"events", NULL};
	struct bus_fd_call f = {BUS(self)->bus, SHMKIT_BUS_POLLOUT};

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:fileno", kwl, &f.events))
		return NULL;
	return sk_py_call(&BUS(self)->h, call_bus_fd, &f, 0);
}

static PyObject *bus_ack(PyObject *self, PyObject *unused)
{
	return sk_py_call(&BUS(self)->h, call_bus_ack, BUS(self)->bus, 1);
}

static PyMethodDef bus_methods[] = {
	{"create", KWFN(bus_create) | METH_CLASS,
	 "create(name, *, capacity=256, max_msg=1024, delivery=OVERWRITE, mode=0o600,\n"
	 "       exclusive=False, populate=False, mlock=False, wait=WAIT_ADAPTIVE,\n"
	 "       max_subscribers=64, max_publishers=62) -> Bus (opens an existing one\n"
	 "       unless exclusive; its geometry wins)"},
	{"open", KWFN(bus_open) | METH_CLASS,
	 "open(name, *, populate=False, mlock=False, wait=WAIT_ADAPTIVE, timeout=1.0) -> Bus"},
	{"close", bus_close, METH_NOARGS,
	 "close (OSError EBUSY while subscriptions made on it are open; then nothing\n"
	 "changes: an open loan stays open)"},
	{"publish", FASTFN(bus_publish), "publish(data, timeout=None): a copy to every subscriber"},
	{"loan", FASTFN(bus_loan),
	 "loan(timeout=None) -> Loan of max_msg bytes; loan.commit(n) publishes n bytes"},
	{"subscribe", KWFN(bus_subscribe),
	 "subscribe(*, from_oldest=False, wait=WAIT_ADAPTIVE) -> Subscription"},
	{"fileno", KWFN(bus_fileno),
	 "fileno(events=POLLOUT) -> the publisher's fd: on a back-pressure bus readable\n"
	 "when a publish may go on without waiting (ack() it, then publish with\n"
	 "timeout=0); on an overwrite bus always readable (it never waits for readers)"},
	{"ack", bus_ack, METH_NOARGS, "re-arm the fd after it signalled"},
	{"publish_async", KWFN(sk_aio_publish),
	 "publish_async(data, timeout=None) -> coroutine publishing a copy, waiting for\n"
	 "room on the fd (shmkit.aio.publish)"},
	{"stats", bus_stats, METH_NOARGS, "the bus's state, as a dict"},
	{"peers", bus_peers, METH_NOARGS,
	 "peers() -> a dict per registered publisher and subscriber (subscriber, index,\n"
	 "pid, alive, position, lag, count, lost, armed)"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkBus_Type, "shmkit.Bus",
	"Publish/subscribe: each message goes to every subscriber.",
	SkBus, bus_dealloc, NULL, NULL, bus_methods, NULL, bus_getset);

/* ---- Subscription ---- */

static PyObject *sub_close(PyObject *self, PyObject *unused)
{
	if (SUB(self)->h.closed)
		Py_RETURN_NONE;
	if (sk_views_close(&SUB(self)->h) < 0 || sk_py_enter(&SUB(self)->h) < 0)
		return NULL;
	shmkit_bus_unsubscribe(SUB(self)->sub);
	SUB(self)->sub = NULL;
	SUB(self)->h.closed = 1;
	sk_py_leave(&SUB(self)->h);
	Py_CLEAR(SUB(self)->bus);
	Py_RETURN_NONE;
}

static void sub_dealloc(PyObject *self)
{
	if (SUB(self)->sub)
		shmkit_bus_unsubscribe(SUB(self)->sub);
	Py_CLEAR(SUB(self)->bus);
	sk_handle_free_views(&SUB(self)->h);
	Py_TYPE(self)->tp_free(self);
}

static void sub_count(SkSub *s, uint64_t lost)
{
	s->last_lost = lost;
	s->lost += lost;
}

static PyObject *sub_recv(SK_FAST_ARGS)
{
	PyObject *timeout, *r;
	long long n;

	if (sk_py_fast_timeout("recv", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	if (!(r = PyBytes_FromStringAndSize(NULL, SUB(self)->max_msg)))
		return NULL;
	struct bus_op o = {.sub = SUB(self)->sub, .out = PyBytes_AS_STRING(r),
		.len = SUB(self)->max_msg};
	n = bus_run(&SUB(self)->h, op_recv, &o, timeout);
	if (n < 0) {
		Py_DECREF(r);
		return NULL;
	}
	sub_count(SUB(self), o.lost);
	_PyBytes_Resize(&r, (Py_ssize_t)n);
	return r;
}

static int peek_end(SkView *v)
{
	return shmkit_sub_release(SUB(v->owner)->sub);
}

static const struct sk_view_ops peek_ops = {.end = peek_end};

static PyObject *sub_peek(SK_FAST_ARGS)
{
	PyObject *timeout;
	long long n;
	SkView *v;

	if (sk_py_fast_timeout("peek", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	struct bus_op o = {.sub = SUB(self)->sub};
	if ((n = bus_run(&SUB(self)->h, op_peek, &o, timeout)) < 0)
		return NULL;
	sub_count(SUB(self), o.lost);
	v = sk_view_new(&SkMessage_Type, &SUB(self)->h, &peek_ops, (void *)o.in, (Py_ssize_t)n);
	if (!v)
		shmkit_sub_release(SUB(self)->sub);
	else
		v->lost = o.lost;
	return (PyObject *)v;
}

static int call_fd(void *p)
{
	return shmkit_sub_fd(p);
}

static int call_ack(void *p)
{
	return shmkit_sub_ack_fd(p);
}

static PyObject *sub_fileno(PyObject *self, PyObject *unused)
{
	return sk_py_call(&SUB(self)->h, call_fd, SUB(self)->sub, 0);
}

static PyObject *sub_ack(PyObject *self, PyObject *unused)
{
	return sk_py_call(&SUB(self)->h, call_ack, SUB(self)->sub, 1);
}

static PyObject *sub_iter(PyObject *self)
{
	return sk_py_iter_new(self, "recv", Py_None);
}

static PyObject *sub_messages(PyObject *self, PyObject *args, PyObject *kw)
{
	return sk_py_iter_method(self, "recv", args, kw);
}

static PyMemberDef sub_members[] = {
	{"lost", T_ULONGLONG, offsetof(SkSub, lost), READONLY,
	 "messages lost (overwritten before this subscription read them) so far"},
	{"last_lost", T_ULONGLONG, offsetof(SkSub, last_lost), READONLY,
	 "messages lost just before the last one received"},
	{NULL, 0, 0, 0, NULL},
};

static PyMethodDef sub_methods[] = {
	{"close", sub_close, METH_NOARGS, "unsubscribe (BufferError while a peeked message is exported)"},
	{"recv", FASTFN(sub_recv),
	 "recv(timeout=None) -> bytes; lost messages before it counted in last_lost, lost"},
	{"peek", FASTFN(sub_peek),
	 "peek(timeout=None) -> Message in place (its .lost); release() raises OSError\n"
	 "ESTALE if it was overwritten while read (discard what was seen)"},
	{"fileno", sub_fileno, METH_NOARGS,
	 "fd readable when messages wait (ack() it, then drain with timeout=0)"},
	{"ack", sub_ack, METH_NOARGS, "re-arm the fd after it signalled"},
	{"messages", KWFN(sub_messages),
	 "messages(timeout=None) -> iterator of recv(timeout) that ends when one times out"},
	{"recv_async", KWFN(sk_aio_recv),
	 "recv_async(timeout=None) -> coroutine of the next message (shmkit.aio.recv);\n"
	 "`async for msg in subscription` waits for each"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkSubscription_Type, "shmkit.Subscription",
	"A subscription to a Bus: every message published after it joined.",
	SkSub, sub_dealloc, sub_iter, NULL, sub_methods, sub_members, bus_getset);
