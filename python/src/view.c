/*
 * view.c - Loan and Message: memory the library lends, exported through
 * the buffer protocol with an export count.
 *
 * A view is live from the call that lends the memory (reserve, loan, peek,
 * wait, recv) until it is given back (commit, publish, abort, release,
 * respond) or its handle closes.  Giving back while a memoryview or numpy
 * array still exports it raises BufferError; once given back the view has
 * no memory (len 0, no new exports).  A view dropped while live gives its
 * memory back itself (abort / release).
 */
#include "pyshmkit.h"

#include <errno.h>

static int views_add(SkHandle *h, SkView *v)
{
	if (h->nviews == h->capviews) {
		Py_ssize_t cap = h->capviews ? 2 * h->capviews : 4;
		SkView **n = PyMem_Realloc(h->views, (size_t)cap * sizeof *n);

		if (!n) {
			PyErr_NoMemory();
			return -1;
		}
		h->views = n;
		h->capviews = cap;
	}
	h->views[h->nviews++] = v;
	return 0;
}

static void views_remove(SkHandle *h, SkView *v)
{
	for (Py_ssize_t i = 0; i < h->nviews; i++)
		if (h->views[i] == v) {
			h->views[i] = h->views[--h->nviews];
			return;
		}
}

SkView *sk_view_new(PyTypeObject *type, SkHandle *owner,
                    const struct sk_view_ops *ops, void *ptr, Py_ssize_t len)
{
	SkView *v = (SkView *)type->tp_alloc(type, 0);

	if (!v)
		return NULL;
	if (views_add(owner, v) < 0) {
		Py_DECREF(v);
		return NULL;
	}
	v->owner = (SkHandle *)Py_NewRef(owner);
	v->ops = ops;
	v->ptr = ptr;
	v->len = len;
	v->readonly = type != &SkLoan_Type;
	v->live = 1;
	return v;
}

int sk_view_check_free(SkView *v, const char *what)
{
	if (!v->live) {
		PyErr_Format(PyExc_ValueError, "%s: already given back", what);
		return -1;
	}
	if (v->exports > 0) {
		PyErr_Format(PyExc_BufferError,
		             "%s: %zd exported buffer(s) still in use (release memoryviews "
		             "and arrays first)", what, v->exports);
		return -1;
	}
	return 0;
}

int sk_view_len_ok(const SkView *v, Py_ssize_t len)
{
	if (len < 0 || len > v->len) {
		PyErr_Format(PyExc_ValueError, "length must be 0..%zd", v->len);
		return -1;
	}
	return 0;
}

int sk_view_commit_len(SkView *v, PyObject *args, PyObject *kw, Py_ssize_t *len)
{
	static char *kwl[] = {"length", NULL};

	if (!PyArg_ParseTupleAndKeywords(args, kw, "n:commit", kwl, len))
		return -1;
	return sk_view_len_ok(v, *len);
}

void sk_view_kill(SkView *v)
{
	if (v->live && v->owner)
		views_remove(v->owner, v);
	v->live = 0;
	v->ptr = NULL;
	v->len = 0;
}

int sk_views_check(SkHandle *h)
{
	for (Py_ssize_t i = 0; i < h->nviews; i++)
		if (h->views[i]->exports > 0) {
			PyErr_Format(PyExc_BufferError,
			             "cannot close %s: a buffer it lent is exported "
			             "(release memoryviews and arrays first)", Py_TYPE(h)->tp_name);
			return -1;
		}
	return 0;
}

int sk_views_close(SkHandle *h)
{
	if (sk_views_check(h) < 0)
		return -1;
	while (h->nviews > 0)
		sk_view_kill(h->views[h->nviews - 1]);
	return 0;
}

void sk_handle_free_views(SkHandle *h)
{
	PyMem_Free(h->views);
	h->views = NULL;
	h->nviews = h->capviews = 0;
}

/* Give the memory back through ops->end; the owner must be usable. */
static PyObject *view_end(SkView *v, const char *what)
{
	int rc;

	if (sk_view_check_free(v, what) < 0 || sk_py_enter(v->owner) < 0)
		return NULL;
	rc = v->ops->end ? v->ops->end(v) : 0;
	sk_py_leave(v->owner);
	sk_view_kill(v);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static int view_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
	SkView *v = (SkView *)self;

	if (!v->live) {
		PyErr_SetString(PyExc_BufferError, "the memory has been given back");
		return -1;
	}
	if (PyBuffer_FillInfo(view, self, v->ptr, v->len, v->readonly, flags) < 0)
		return -1;
	v->exports++;
	return 0;
}

static void view_releasebuffer(PyObject *self, Py_buffer *view)
{
	((SkView *)self)->exports--;
}

static PyBufferProcs view_as_buffer = {view_getbuffer, view_releasebuffer};

static Py_ssize_t view_length(PyObject *self)
{
	return ((SkView *)self)->len;
}

static PySequenceMethods view_as_sequence = {.sq_length = view_length};

static void view_dealloc(PyObject *self)
{
	SkView *v = (SkView *)self;

	/* A live view nobody references: give its memory back, unless the
	 * handle is closed (its close did) or busy in another thread (its
	 * close will). */
	if (v->live && v->owner && !v->owner->closed && !v->owner->busy && v->ops->end) {
		PyObject *t, *val, *tb;

		PyErr_Fetch(&t, &val, &tb);
		v->owner->busy = 1;
		v->ops->end(v);
		v->owner->busy = 0;
		PyErr_Restore(t, val, tb);
	}
	sk_view_kill(v);
	Py_CLEAR(v->parent);
	Py_CLEAR(v->owner);
	Py_TYPE(self)->tp_free(self);
}

static PyObject *loan_commit(PyObject *self, PyObject *args, PyObject *kw)
{
	SkView *v = (SkView *)self;
	PyObject *r;

	if (sk_view_check_free(v, "commit") < 0)
		return NULL;
	if (v->parent && sk_view_check_free((SkView *)v->parent, "commit (the request)") < 0)
		return NULL;
	if (sk_py_enter(v->owner) < 0)
		return NULL;
	r = v->ops->commit(v, args, kw);
	sk_py_leave(v->owner);
	if (r) {
		if (v->parent)
			sk_view_kill((SkView *)v->parent);
		sk_view_kill(v);
	}
	return r;
}

static PyObject *loan_abort(PyObject *self, PyObject *unused)
{
	return view_end((SkView *)self, "abort");
}

static PyObject *loan_exit(PyObject *self, PyObject *args)
{
	SkView *v = (SkView *)self;
	PyObject *r;

	if (!v->live)
		Py_RETURN_FALSE;  /* committed inside the block */
	if (!(r = view_end(v, "abort")))
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyObject *message_release(PyObject *self, PyObject *unused)
{
	return view_end((SkView *)self, "release");
}

static PyObject *message_exit(PyObject *self, PyObject *args)
{
	PyObject *r;

	if (!((SkView *)self)->live)
		Py_RETURN_FALSE;
	if (!(r = view_end((SkView *)self, "release")))
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyObject *view_tobytes(PyObject *self, PyObject *unused)
{
	SkView *v = (SkView *)self;

	if (!v->live) {
		PyErr_SetString(PyExc_ValueError, "the memory has been given back");
		return NULL;
	}
	return PyBytes_FromStringAndSize(v->ptr, v->len);
}

static PyObject *view_get_live(PyObject *self, void *c)
{
	return PyBool_FromLong(((SkView *)self)->live);
}

static PyMemberDef view_members[] = {
	{"id", T_ULONGLONG, offsetof(SkView, id), READONLY, "rpc: the call's id"},
	{"lost", T_ULONGLONG, offsetof(SkView, lost), READONLY,
	 "bus: messages lost before this one"},
	{"status", T_INT, offsetof(SkView, status), READONLY,
	 "rpc response: the server's application status"},
	{"flags", T_UINT, offsetof(SkView, flags), READONLY, "rpc request: RPC_* flags of the call"},
	{"deadline_ns", T_LONGLONG, offsetof(SkView, deadline_ns), READONLY,
	 "rpc request: the caller's deadline, CLOCK_REALTIME ns (2**63-1: none)"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef view_getset[] = {
	{"live", view_get_live, NULL, "True until the memory is given back", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef loan_methods[] = {
	{"commit", (PyCFunction)(void (*)(void))loan_commit, METH_VARARGS | METH_KEYWORDS,
	 "commit(length, ...): send / publish / answer the first length bytes"},
	{"abort", loan_abort, METH_NOARGS, "give the buffer back unsent"},
	{"tobytes", view_tobytes, METH_NOARGS, "a copy of the bytes"},
	{"__enter__", sk_py_enter_self, METH_NOARGS, "__enter__() -> self"},
	{"__exit__", loan_exit, METH_VARARGS, "abort unless committed"},
	{NULL, NULL, 0, NULL},
};

static PyMethodDef message_methods[] = {
	{"release", message_release, METH_NOARGS, "give the message's memory back"},
	{"tobytes", view_tobytes, METH_NOARGS, "a copy of the bytes"},
	{"__enter__", sk_py_enter_self, METH_NOARGS, "__enter__() -> self"},
	{"__exit__", message_exit, METH_VARARGS, "release"},
	{NULL, NULL, 0, NULL},
};

/* Loan, Message and rpc.c's Request share the object layout and buffer. */
#define SK_VIEW_TYPE(var, name, doc, methods) \
	PyTypeObject var = { \
		PyVarObject_HEAD_INIT(NULL, 0) \
		.tp_name = name, .tp_doc = doc, .tp_basicsize = sizeof(SkView), \
		.tp_flags = Py_TPFLAGS_DEFAULT, .tp_dealloc = view_dealloc, \
		.tp_as_buffer = &view_as_buffer, .tp_as_sequence = &view_as_sequence, \
		.tp_methods = methods, .tp_members = view_members, .tp_getset = view_getset, \
	}

SK_VIEW_TYPE(SkLoan_Type, "shmkit.Loan",
	"A writable buffer in shared memory lent by reserve()/loan(): fill it\n"
	"(memoryview, numpy.asarray), then commit(length) or abort().", loan_methods);
SK_VIEW_TYPE(SkRequest_Type, "shmkit.Request",
	"A request a server took, in place (.id, .flags, .deadline_ns): a read-only\n"
	"buffer valid until it is answered.", sk_request_methods);
SK_VIEW_TYPE(SkMessage_Type, "shmkit.Message",
	"A message read in place (peek, rpc response): a read-only buffer\n"
	"valid until release().", message_methods);
