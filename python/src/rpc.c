/*
 * rpc.c - shmkit.RpcClient, shmkit.RpcServer and shmkit.Request: request/
 * response, each answer to its caller.  Both sides work by copy or in
 * place: a client's loan() is the request slot, wait() returns the
 * response in place (a Message, release() frees the call); a server's
 * recv() returns the Request in place, answered by respond() or by
 * request.loan() -> Loan -> commit(length).
 */
#include "pyshmkit.h"

#include <errno.h>

typedef struct {
	SkHandle h;
	shmkit_rpc *r;
	uint32_t max_request, max_response;
} SkRpc;

#define RPC(self) ((SkRpc *)(self))

static PyObject *rpc_make(PyTypeObject *type, PyObject *args, PyObject *kw, int create)
{
	static char *kwl[] = {"name", "max_clients", "depth", "max_request", "max_response",
	                      "max_servers", "mode", "exclusive", "populate", "mlock", "wait",
	                      "timeout", NULL};
	const char *name;
	unsigned clients = 0, depth = 0, req = 0, resp = 0, servers = 0, mode = 0;
	int excl = 0, pop = 0, mlock = 0, wait = 0, rc;
	int64_t tns = 0;
	shmkit_rpc *r;
	struct shmkit_rpc_stats st;
	SkRpc *o;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$IIIIIIpppiO&", kwl, &name, &clients, &depth,
	                                 &req, &resp, &servers, &mode, &excl, &pop, &mlock, &wait,
	                                 sk_py_timeout_conv, &tns))
		return NULL;
	struct shmkit_rpc_opts opts = {.max_clients = clients, .depth = depth, .max_request = req,
		.max_response = resp, .max_servers = servers, .mode = mode,
		.flags = sk_py_flags(excl, 0, pop, mlock, 0, 0), .wait = wait, .init_timeout_ns = tns};
	Py_BEGIN_ALLOW_THREADS
	rc = create ? shmkit_rpc_create(&r, name, &opts) : shmkit_rpc_open(&r, name, &opts);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, name);
	if ((rc = shmkit_rpc_stats(r, &st)) < 0 || !(o = (SkRpc *)type->tp_alloc(type, 0))) {
		shmkit_rpc_close(r);
		return rc < 0 ? sk_py_error(rc, name) : NULL;
	}
	o->r = r;
	sk_py_spin_init(&o->h, wait);
	o->max_request = st.max_request;
	o->max_response = st.max_response;
	return (PyObject *)o;
}

static PyObject *rpc_create(PyObject *cls, PyObject *args, PyObject *kw)
{
	return rpc_make((PyTypeObject *)cls, args, kw, 1);
}

static PyObject *rpc_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	return rpc_make((PyTypeObject *)cls, args, kw, 0);
}

static PyObject *rpc_close(PyObject *self, PyObject *unused)
{
	if (RPC(self)->h.closed)
		Py_RETURN_NONE;
	if (sk_views_close(&RPC(self)->h) < 0 || sk_py_enter(&RPC(self)->h) < 0)
		return NULL;
	shmkit_rpc_close(RPC(self)->r);
	RPC(self)->r = NULL;
	RPC(self)->h.closed = 1;
	sk_py_leave(&RPC(self)->h);
	Py_RETURN_NONE;
}

static void rpc_dealloc(PyObject *self)
{
	shmkit_rpc_close(RPC(self)->r);
	sk_handle_free_views(&RPC(self)->h);
	Py_TYPE(self)->tp_free(self);
}

struct rpc_op {
	shmkit_rpc *r;
	const void *in;
	size_t len;
	unsigned flags;
	int64_t call_timeout;   /* send: the call's deadline (the whole call) */
	uint64_t id;
	struct shmkit_rpc_req req;
};

static long long op_send(void *p, int64_t t)
{
	struct rpc_op *o = p;
	return shmkit_rpc_send(o->r, o->in, o->len, o->flags, o->call_timeout, &o->id);
}

static long long op_wait(void *p, int64_t t)
{
	struct rpc_op *o = p;
	return shmkit_rpc_wait(o->r, &o->id, &o->in, t);
}

static long long op_recv(void *p, int64_t t)
{
	struct rpc_op *o = p;
	return shmkit_rpc_recv(o->r, &o->req, t);
}

/* ---- client ---- */

static int send_args(PyObject *args, PyObject *kw, const char *fmt, Py_buffer *b,
                     struct rpc_op *o)
{
	static char *kwl[] = {"data", "idempotent", "timeout", NULL};
	int idem = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwl, b, &idem, sk_py_timeout_conv,
	                                 &o->call_timeout))
		return -1;
	o->flags = idem ? SHMKIT_RPC_IDEMPOTENT : 0;
	return 0;
}

/* Send a copy; the call's id, or 0 with an exception set. */
static uint64_t client_send_copy(PyObject *self, Py_buffer *b, struct rpc_op *o)
{
	long long rc;

	o->r = RPC(self)->r;
	o->in = b->buf;
	o->len = (size_t)b->len;
	/* Sending does not wait for room (-EBUSY when depth calls are out):
	 * one try, with the call's own deadline. */
	rc = sk_py_run_ns(&RPC(self)->h, op_send, o, 0);
	return rc < 0 ? 0 : o->id;
}

static PyObject *client_send(PyObject *self, PyObject *args, PyObject *kw)
{
	Py_buffer b;
	struct rpc_op o = {.call_timeout = -1};
	uint64_t id;

	if (send_args(args, kw, "y*|$pO&:send", &b, &o) < 0)
		return NULL;
	id = client_send_copy(self, &b, &o);
	PyBuffer_Release(&b);
	return id ? PyLong_FromUnsignedLongLong(id) : NULL;
}

static int response_end(SkView *v)
{
	return shmkit_rpc_release(RPC(v->owner)->r, v->id);
}

static const struct sk_view_ops response_ops = {.end = response_end};

/* The live view of h that ops lent for call id (of parent, when not
 * NULL), or NULL. */
static SkView *view_of(SkHandle *h, const struct sk_view_ops *ops, uint64_t id,
                       PyObject *parent)
{
	for (Py_ssize_t i = 0; i < h->nviews; i++)
		if (h->views[i]->ops == ops && h->views[i]->id == id &&
		    (!parent || h->views[i]->parent == parent))
			return h->views[i];
	return NULL;
}

/* Wait for call id (0: any) up to timeout; its response in place.  A
 * response answered but not yet released is found again by the C wait:
 * its Message is returned again (one view per call, so that releasing
 * it leaves no second view over the freed slot). */
static SkView *client_wait_id(PyObject *self, uint64_t id, PyObject *timeout)
{
	struct rpc_op o = {.r = RPC(self)->r, .id = id};
	long long n = sk_py_run(&RPC(self)->h, op_wait, &o, timeout);
	SkView *v;

	if (n < 0)
		return NULL;
	if ((v = view_of(&RPC(self)->h, &response_ops, o.id, NULL)))
		return (SkView *)Py_NewRef(v);
	v = sk_view_new(&SkMessage_Type, &RPC(self)->h, &response_ops, (void *)o.in,
	                (Py_ssize_t)n);
	if (!v) {
		shmkit_rpc_release(RPC(self)->r, o.id);
		return NULL;
	}
	v->id = o.id;
	v->status = shmkit_rpc_status(RPC(self)->r, o.id);
	return v;
}

static PyObject *client_wait(SK_FAST_ARGS)
{
	static const char *const names[] = {"id", "timeout", NULL};
	unsigned long long id = 0;
	PyObject *a[2];

	if (sk_py_fast_args("wait", args, nargs, kwnames, names, 0, a) < 0)
		return NULL;
	if (a[0] && (id = PyLong_AsUnsignedLongLong(a[0])) == (unsigned long long)-1 &&
	    PyErr_Occurred())
		return NULL;
	return (PyObject *)client_wait_id(self, id, a[1]);
}

/* call(): send, wait, copy, release.  A wait cut short by a signal
 * cancels the call, as a timeout of the whole call does. */
static PyObject *client_call(PyObject *self, PyObject *args, PyObject *kw)
{
	Py_buffer b;
	struct rpc_op o = {.call_timeout = -1};
	PyObject *timeout, *r;
	uint64_t id;
	SkView *v;

	if (send_args(args, kw, "y*|$pO&:call", &b, &o) < 0)
		return NULL;
	id = client_send_copy(self, &b, &o);
	PyBuffer_Release(&b);
	if (!id)
		return NULL;
	timeout = o.call_timeout < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(o.call_timeout / 1e9);
	v = timeout ? client_wait_id(self, id, timeout) : NULL;
	Py_XDECREF(timeout);
	if (!v) {
		shmkit_rpc_cancel(RPC(self)->r, id);
		return NULL;
	}
	r = PyBytes_FromStringAndSize(v->ptr, v->len);
	shmkit_rpc_release(RPC(self)->r, id);
	sk_view_kill(v);
	Py_DECREF(v);
	return r;
}

static int loan_end(SkView *v)
{
	return shmkit_rpc_abort_loan(RPC(v->owner)->r);
}

static PyObject *loan_commit(SkView *v, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"length", "idempotent", "timeout", NULL};
	Py_ssize_t len;
	int idem = 0, rc;
	int64_t tns = -1;
	uint64_t id;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "n|$pO&:commit", kwl, &len, &idem,
	                                 sk_py_timeout_conv, &tns))
		return NULL;
	if (len < 0 || len > v->len) {
		PyErr_Format(PyExc_ValueError, "length must be 0..%zd", v->len);
		return NULL;
	}
	rc = shmkit_rpc_send_loan(RPC(v->owner)->r, (size_t)len,
	                          idem ? SHMKIT_RPC_IDEMPOTENT : 0, tns, &id);
	return rc < 0 ? sk_py_error(rc, NULL) : PyLong_FromUnsignedLongLong(id);
}

static const struct sk_view_ops loan_ops = {.end = loan_end, .commit = loan_commit};

static PyObject *client_loan(PyObject *self, PyObject *unused)
{
	void *buf;
	int rc;
	SkView *v;

	if (sk_py_enter(&RPC(self)->h) < 0)
		return NULL;
	rc = shmkit_rpc_loan(RPC(self)->r, &buf);
	sk_py_leave(&RPC(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	v = sk_view_new(&SkLoan_Type, &RPC(self)->h, &loan_ops, buf, RPC(self)->max_request);
	if (!v)
		shmkit_rpc_abort_loan(RPC(self)->r);
	return (PyObject *)v;
}

static PyObject *client_cancel(PyObject *self, PyObject *arg)
{
	unsigned long long id = PyLong_AsUnsignedLongLong(arg);
	int rc;

	if (PyErr_Occurred() || sk_py_enter(&RPC(self)->h) < 0)
		return NULL;
	rc = shmkit_rpc_cancel(RPC(self)->r, id);
	sk_py_leave(&RPC(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static int call_fd_client(void *r)
{
	return shmkit_rpc_fd(r, SHMKIT_RPC_CLIENT);
}

static int call_fd_server(void *r)
{
	return shmkit_rpc_fd(r, SHMKIT_RPC_SERVER);
}

static int call_ack(void *r)
{
	return shmkit_rpc_ack_fd(r);
}

static PyObject *rpc_fileno(PyObject *self, PyObject *unused)
{
	return sk_py_call(&RPC(self)->h, Py_TYPE(self) == &SkRpcServer_Type ? call_fd_server
	                  : call_fd_client, RPC(self)->r, 0);
}

static PyObject *rpc_ack(PyObject *self, PyObject *unused)
{
	return sk_py_call(&RPC(self)->h, call_ack, RPC(self)->r, 1);
}

static PyObject *rpc_stats(PyObject *self, PyObject *unused)
{
	struct shmkit_rpc_stats st;
	int rc;

	if (sk_py_enter(&RPC(self)->h) < 0)
		return NULL;
	rc = shmkit_rpc_stats(RPC(self)->r, &st);
	sk_py_leave(&RPC(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	return Py_BuildValue("{s:I,s:I,s:I,s:I,s:I,s:n,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:I,s:I}",
		"max_clients", st.max_clients, "depth", st.depth, "max_request", st.max_request,
		"max_response", st.max_response, "max_servers", st.max_servers,
		"seg_size", (Py_ssize_t)st.seg_size, "requests", (unsigned long long)st.requests,
		"responses", (unsigned long long)st.responses,
		"timeouts", (unsigned long long)st.timeouts,
		"cancelled", (unsigned long long)st.cancelled,
		"retried", (unsigned long long)st.retried, "reset", (unsigned long long)st.reset,
		"requeued", (unsigned long long)st.requeued,
		"dropped", (unsigned long long)st.dropped, "clients", st.clients,
		"servers", st.servers, "in_flight", st.in_flight);
}

static int peer_one(const struct shmkit_rpc_peer *p, void *list)
{
	PyObject *d = Py_BuildValue("{s:O,s:I,s:i,s:i,s:K,s:K,s:K,s:I}",
		"server", p->server ? Py_True : Py_False, "index", p->index, "pid", (int)p->pid,
		"alive", p->alive, "calls", (unsigned long long)p->calls,
		"answered", (unsigned long long)p->answered,
		"cancelled", (unsigned long long)p->cancelled, "in_flight", p->in_flight);

	return sk_py_list_add(list, d);
}

static int call_peers(void *p)
{
	struct sk_peers_call *c = p;
	return shmkit_rpc_peers(c->handle, peer_one, c->list);
}

static PyObject *rpc_peers(PyObject *self, PyObject *unused)
{
	struct sk_peers_call c = {RPC(self)->r};

	return sk_py_peers(&RPC(self)->h, call_peers, &c);
}

static PyObject *get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(((SkHandle *)self)->closed);
}

static PyGetSetDef rpc_getset[] = {
	{"closed", get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

#define RPC_COMMON_METHODS \
	{"create", KWFN(rpc_create) | METH_CLASS, \
	 "create(name, *, max_clients=64, depth=8, max_request=1024, max_response=1024,\n" \
	 "       max_servers=64, mode=0o600, exclusive=False, populate=False, mlock=False,\n" \
	 "       wait=WAIT_ADAPTIVE) (opens an existing service unless exclusive)"}, \
	{"open", KWFN(rpc_open) | METH_CLASS, \
	 "open(name, *, populate=False, mlock=False, wait=WAIT_ADAPTIVE, timeout=1.0)"}, \
	{"close", rpc_close, METH_NOARGS, \
	 "close: outstanding calls cancelled, unanswered requests fail their callers\n" \
	 "(BufferError while a lent buffer is exported)"}, \
	{"fileno", rpc_fileno, METH_NOARGS, \
	 "fd readable when requests wait (server) / a response arrived (client)"}, \
	{"ack", rpc_ack, METH_NOARGS, "re-arm the fd after it signalled, before draining"}, \
	{"stats", rpc_stats, METH_NOARGS, "the service's counters, as a dict"}, \
	{"peers", rpc_peers, METH_NOARGS, \
	 "peers() -> a dict per client and server entry, clients first (server, index,\n" \
	 "pid, alive, calls, answered, cancelled, in_flight)"}, \
	SK_CONTEXT_METHODS

static PyMethodDef client_methods[] = {
	RPC_COMMON_METHODS,
	{"call", KWFN(client_call),
	 "call(data, *, idempotent=False, timeout=None) -> bytes: send and wait for the\n"
	 "answer (TimeoutError: the call is cancelled)"},
	{"send", KWFN(client_send),
	 "send(data, *, idempotent=False, timeout=None) -> id; timeout bounds the whole call"},
	{"loan", client_loan, METH_NOARGS,
	 "loan() -> Loan of max_request bytes; loan.commit(length, *, idempotent=False,\n"
	 "timeout=None) sends it and returns the id"},
	{"wait", FASTFN(client_wait),
	 "wait(id=0, timeout=None) -> Message: the response in place (.id, .status);\n"
	 "release() frees the call.  id 0: any outstanding call.  A response not yet\n"
	 "released is the same Message again"},
	{"cancel", client_cancel, METH_O, "cancel(id): give a call up"},
	{"call_async", KWFN(sk_aio_call),
	 "call_async(data, *, idempotent=False, timeout=None) -> coroutine of the answer\n"
	 "(bytes; shmkit.aio.call: cancelled with the task or at its timeout)"},
	{"wait_async", KWFN(sk_aio_wait),
	 "wait_async(id=0, timeout=None) -> coroutine of the response in place, a Message\n"
	 "(shmkit.aio.wait)"},
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkRpcClient_Type, "shmkit.RpcClient",
	"The client side of a request/response service.",
	SkRpc, rpc_dealloc, NULL, NULL, client_methods, NULL, rpc_getset);

/* ---- server ---- */

/* No end: a request is given back only by answering it (or by the
 * server's close, which fails its caller). */
static const struct sk_view_ops request_ops;

static PyObject *server_recv(SK_FAST_ARGS)
{
	PyObject *timeout;
	struct rpc_op o = {.r = RPC(self)->r};
	SkView *v;

	if (sk_py_fast_timeout("recv", args, nargs, kwnames, &timeout) < 0)
		return NULL;
	if (sk_py_run(&RPC(self)->h, op_recv, &o, timeout) < 0)
		return NULL;
	v = sk_view_new(&SkRequest_Type, &RPC(self)->h, &request_ops, (void *)o.req.data,
	                o.req.len);
	if (!v)
		return NULL;
	v->req = o.req;
	v->id = o.req.id;
	v->flags = o.req.flags;
	v->deadline_ns = o.req.deadline_ns;
	return (PyObject *)v;
}

static PyObject *server_iter(PyObject *self)
{
	return sk_py_iter_new(self, "recv", Py_None);
}

static PyObject *server_requests(PyObject *self, PyObject *args, PyObject *kw)
{
	return sk_py_iter_method(self, "recv", args, kw);
}

static PyMethodDef server_methods[] = {
	RPC_COMMON_METHODS,
	{"recv", FASTFN(server_recv),
	 "recv(timeout=None) -> Request in place; answer with request.respond(data) or\n"
	 "request.loan() -> Loan -> commit(length)"},
	{"requests", KWFN(server_requests),
	 "requests(timeout=None) -> iterator of recv(timeout) that ends when one times out"},
	{"recv_async", KWFN(sk_aio_request),
	 "recv_async(timeout=None) -> coroutine of the next Request (shmkit.aio.request);\n"
	 "`async for req in server` waits for each"},
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkRpcServer_Type, "shmkit.RpcServer",
	"The server side of a request/response service.",
	SkRpc, rpc_dealloc, server_iter, NULL, server_methods, NULL, rpc_getset);

/* ---- Request ---- */

static const struct sk_view_ops respond_loan_ops;

/* The live response loan of a request, or NULL. */
static SkView *response_loan(SkView *req)
{
	return view_of(req->owner, &respond_loan_ops, req->id, (PyObject *)req);
}

/* After an answer (or a caller gone: -ECANCELED) the request is over,
 * and so is its response loan (its memory is the caller's now). */
static PyObject *answered(SkView *req, int rc)
{
	SkView *loan;

	if ((rc == 0 || rc == -ECANCELED) && (loan = response_loan(req)))
		sk_view_kill(loan);
	if (rc == 0 || rc == -ECANCELED)
		sk_view_kill(req);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static PyObject *request_respond(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"data", "status", NULL};
	SkView *v = (SkView *)self;
	PyObject *data;
	Py_buffer b;
	int status = 0, rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$i:respond", kwl, &data, &status))
		return NULL;
	if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	/* The request's memory ends with the answer: no view of it may live,
	 * but for the one this call took of it (respond(request) echoes). */
	v->exports -= data == self;
	rc = sk_view_check_free(v, "respond");
	v->exports += data == self;
	if (rc == 0 && response_loan(v))
		rc = sk_view_check_free(response_loan(v), "respond (the response loan)");
	if (rc < 0 || sk_py_enter(v->owner) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	rc = shmkit_rpc_respond_status(RPC(v->owner)->r, &v->req, b.buf, (size_t)b.len, status);
	sk_py_leave(v->owner);
	PyBuffer_Release(&b);
	return answered(v, rc);
}

static PyObject *respond_commit(SkView *loan, PyObject *args, PyObject *kw)
{
	SkView *req = (SkView *)loan->parent;
	Py_ssize_t len;
	int rc;

	if (sk_view_commit_len(loan, args, kw, &len) < 0)
		return NULL;
	rc = shmkit_rpc_respond_commit(RPC(loan->owner)->r, &req->req, (size_t)len);
	if (rc == -ECANCELED)
		sk_view_kill(loan);
	return answered(req, rc);
}

static const struct sk_view_ops respond_loan_ops = {.commit = respond_commit};

struct req_call {
	SkView *v;
	void *buf;
};

static int call_respond_loan(void *p)
{
	struct req_call *c = p;
	return shmkit_rpc_respond_loan(RPC(c->v->owner)->r, &c->v->req, &c->buf);
}

static int call_abandoned(void *p)
{
	struct req_call *c = p;
	return shmkit_rpc_abandoned(RPC(c->v->owner)->r, &c->v->req);
}

/* fn on a request not answered yet, with its server entered. */
static PyObject *request_call(PyObject *self, int (*fn)(void *), struct req_call *c)
{
	c->v = (SkView *)self;
	if (!c->v->live) {
		PyErr_SetString(PyExc_ValueError, "the request was answered");
		return NULL;
	}
	return sk_py_call(c->v->owner, fn, c, 0);
}

static PyObject *request_loan(PyObject *self, PyObject *unused)
{
	struct req_call c = {0};
	PyObject *rc;
	SkView *loan;

	if (((SkView *)self)->live && response_loan((SkView *)self)) {
		PyErr_SetString(PyExc_ValueError, "this request's response loan is already out "
		                "(commit it, or drop it first)");
		return NULL;
	}
	if (!(rc = request_call(self, call_respond_loan, &c)))
		return NULL;
	Py_DECREF(rc);
	loan = sk_view_new(&SkLoan_Type, c.v->owner, &respond_loan_ops, c.buf,
	                   RPC(c.v->owner)->max_response);
	if (loan) {
		loan->parent = Py_NewRef(self);
		loan->id = c.v->id;
	}
	return (PyObject *)loan;
}

static PyObject *request_abandoned(PyObject *self, PyObject *unused)
{
	struct req_call c = {0};
	PyObject *rc = request_call(self, call_abandoned, &c), *r;

	if (!rc)
		return NULL;
	r = PyBool_FromLong(PyObject_IsTrue(rc));
	Py_DECREF(rc);
	return r;
}

PyMethodDef sk_request_methods[] = {
	{"respond", KWFN(request_respond),
	 "respond(data, *, status=0): answer with a copy (OSError ECANCELED: the caller\n"
	 "gave up; the answer was dropped)"},
	{"loan", request_loan, METH_NOARGS,
	 "loan() -> Loan of max_response bytes; loan.commit(length) answers (ValueError\n"
	 "while this request's loan is out; an answer by respond() ends the loan too)"},
	{"abandoned", request_abandoned, METH_NOARGS,
	 "True if the caller gave up, died or its deadline passed"},
	{NULL, NULL, 0, NULL},
};
