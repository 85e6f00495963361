/*
 * segment.c - shmkit.Segment: a named, mapped region whose data area is
 * exported through the buffer protocol (numpy.frombuffer(seg) sees shared
 * memory in place); close() raises BufferError while an export lives.
 */
#include "pyshmkit.h"

#include <errno.h>

typedef struct {
	SkHandle h;
	shmkit_seg *seg;
	Py_ssize_t exports;
	int readonly;
} SkSegment;

static PyObject *seg_wrap(shmkit_seg *seg, int readonly)
{
	SkSegment *s = (SkSegment *)SkSegment_Type.tp_alloc(&SkSegment_Type, 0);

	if (!s) {
		shmkit_seg_close(seg);
		return NULL;
	}
	s->seg = seg;
	s->readonly = readonly;
	return (PyObject *)s;
}

/* The result of a create/open/recv_fd: the Segment, or rc raised. */
static PyObject *seg_made(int rc, shmkit_seg *seg, const char *name, int readonly)
{
	return rc < 0 ? sk_py_error(rc, name) : seg_wrap(seg, readonly);
}

static PyObject *seg_create(PyObject *cls, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"name", "size", "mode", "exclusive", "populate", "mlock",
	                      "huge", "persist", NULL};
	const char *name;
	Py_ssize_t size;
	unsigned mode = 0;
	int excl = 0, populate = 0, mlock = 0, huge = 0, persist = 0, rc;
	shmkit_seg *seg;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "sn|$Ippppp:create", kwl, &name, &size, &mode,
	                                 &excl, &populate, &mlock, &huge, &persist))
		return NULL;
	if (size <= 0) {
		PyErr_SetString(PyExc_ValueError, "size must be positive");
		return NULL;
	}
	struct shmkit_seg_opts o = {.size = (size_t)size, .mode = mode,
		.flags = sk_py_flags(excl, 0, populate, mlock, huge, persist)};
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_seg_create(&seg, name, &o);
	Py_END_ALLOW_THREADS
	return seg_made(rc, seg, name, 0);
}

static PyObject *seg_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"name", "readonly", "cow", "raw", "populate", "mlock", "timeout",
	                      NULL};
	const char *name;
	int ro = 0, cow = 0, raw = 0, populate = 0, mlock = 0, rc;
	int64_t tns = 0;
	shmkit_seg *seg;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$pppppO&:open", kwl, &name, &ro, &cow, &raw,
	                                 &populate, &mlock, sk_py_timeout_conv, &tns))
		return NULL;
	struct shmkit_seg_opts o = {.init_timeout_ns = tns,
		.flags = sk_py_flags(0, ro, populate, mlock, 0, 0) | (cow ? SHMKIT_COW : 0) |
		         (raw ? SHMKIT_RAW : 0)};
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_seg_open(&seg, name, &o);
	Py_END_ALLOW_THREADS
	return seg_made(rc, seg, name, ro);
}

static SkSegment *seg_live(PyObject *self);

static PyObject *seg_send_fd(PyObject *self, PyObject *sock)
{
	SkSegment *s = seg_live(self);
	int fd, rc;

	if (!s || (fd = PyObject_AsFileDescriptor(sock)) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_seg_send_fd(s->seg, fd);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static PyObject *seg_recv_fd(PyObject *cls, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"sock", "readonly", "cow", "noseal", NULL};
	PyObject *sock;
	int ro = 0, cow = 0, noseal = 0, fd, rc;
	shmkit_seg *seg;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$ppp:recv_fd", kwl, &sock, &ro, &cow,
	                                 &noseal) || (fd = PyObject_AsFileDescriptor(sock)) < 0)
		return NULL;
	struct shmkit_seg_opts o = {.flags = (ro ? SHMKIT_RDONLY : 0) | (cow ? SHMKIT_COW : 0) |
	                                     (noseal ? SHMKIT_NOSEAL : 0)};
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_seg_recv_fd(&seg, fd, &o);
	Py_END_ALLOW_THREADS
	return seg_made(rc, seg, NULL, ro);
}

shmkit_seg *sk_py_seg_take(PyObject *obj)
{
	SkSegment *s;
	shmkit_seg *seg;

	if (!PyObject_TypeCheck(obj, &SkSegment_Type)) {
		PyErr_SetString(PyExc_TypeError, "segment must be a shmkit.Segment");
		return NULL;
	}
	if (!(s = seg_live(obj)))
		return NULL;
	if (s->exports > 0 || sk_py_enter(&s->h) < 0) {
		if (s->exports > 0)
			PyErr_SetString(PyExc_BufferError, "the Segment has exported buffers");
		return NULL;
	}
	seg = s->seg;
	s->seg = NULL;
	s->h.closed = 1;
	sk_py_leave(&s->h);
	return seg;
}

void sk_py_seg_give_back(PyObject *obj, shmkit_seg *seg)
{
	SkSegment *s = (SkSegment *)obj;

	s->seg = seg;
	s->h.closed = 0;
}

static PyObject *seg_remove(PyObject *cls, PyObject *arg)
{
	const char *name = PyUnicode_AsUTF8(arg);
	int rc;

	if (!name)
		return NULL;
	rc = shmkit_seg_remove(name);
	if (rc < 0)
		return sk_py_error(rc, name);
	Py_RETURN_NONE;
}

static PyObject *seg_close(PyObject *self, PyObject *unused)
{
	SkSegment *s = (SkSegment *)self;

	if (s->h.closed)
		Py_RETURN_NONE;
	if (s->exports > 0) {
		PyErr_SetString(PyExc_BufferError,
		                "cannot close Segment: exported buffers exist (release "
		                "memoryviews and arrays first)");
		return NULL;
	}
	if (sk_py_enter(&s->h) < 0)
		return NULL;
	shmkit_seg_close(s->seg);
	s->seg = NULL;
	s->h.closed = 1;
	sk_py_leave(&s->h);
	Py_RETURN_NONE;
}

static void seg_dealloc(PyObject *self)
{
	SkSegment *s = (SkSegment *)self;

	shmkit_seg_close(s->seg);  /* no export can live: it holds a reference */
	Py_TYPE(self)->tp_free(self);
}

static int seg_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
	SkSegment *s = (SkSegment *)self;

	if (s->h.closed) {
		PyErr_SetString(PyExc_ValueError, "Segment is closed");
		return -1;
	}
	if (PyBuffer_FillInfo(view, self, shmkit_seg_data(s->seg),
	                      (Py_ssize_t)shmkit_seg_size(s->seg), s->readonly, flags) < 0)
		return -1;
	s->exports++;
	return 0;
}

static void seg_releasebuffer(PyObject *self, Py_buffer *view)
{
	((SkSegment *)self)->exports--;
}

static PyBufferProcs seg_as_buffer = {seg_getbuffer, seg_releasebuffer};

static SkSegment *seg_live(PyObject *self)
{
	SkSegment *s = (SkSegment *)self;

	if (s->h.closed) {
		PyErr_SetString(PyExc_ValueError, "Segment is closed");
		return NULL;
	}
	return s;
}

static Py_ssize_t seg_length(PyObject *self)
{
	SkSegment *s = seg_live(self);

	return s ? (Py_ssize_t)shmkit_seg_size(s->seg) : -1;
}

static PySequenceMethods seg_as_sequence = {.sq_length = seg_length};

static PyObject *seg_sync(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"offset", "length", "asynchronous", "invalidate", NULL};
	Py_ssize_t off = 0, len = 0;
	int as = 0, inv = 0, rc;
	SkSegment *s = seg_live(self);

	if (!s || !PyArg_ParseTupleAndKeywords(args, kw, "|nn$pp:sync", kwl, &off, &len, &as, &inv))
		return NULL;
	if (off < 0 || len < 0) {
		PyErr_SetString(PyExc_ValueError, "offset and length must be non-negative");
		return NULL;
	}
	if (sk_py_enter(&s->h) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_seg_sync(s->seg, (size_t)off, (size_t)len,
	                     (as ? SHMKIT_SYNC_ASYNC : 0) | (inv ? SHMKIT_SYNC_INVALIDATE : 0));
	Py_END_ALLOW_THREADS
	sk_py_leave(&s->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static PyObject *stat_dict(const struct shmkit_seg_info *st)
{
	return Py_BuildValue(
		"{s:i,s:i,s:s,s:n,s:n,s:n,s:I,s:I,s:i,s:i,s:L,s:l,s:O,s:i,s:l,s:I,s:O,s:i,s:i}",
		"backend", st->backend, "kind", st->kind, "name", st->name,
		"map_size", (Py_ssize_t)st->map_size, "data_size", (Py_ssize_t)st->data_size,
		"data_offset", (Py_ssize_t)st->data_offset, "mode", st->mode,
		"uid", (unsigned)st->uid, "creator_pid", (int)st->creator_pid,
		"creator_alive", st->creator_alive, "created_ns", (long long)st->created_ns,
		"attach_count", st->attach_count, "removed", st->removed ? Py_True : Py_False,
		"shmid", st->shmid, "key", st->key, "version", st->version,
		"persistent", st->persistent ? Py_True : Py_False, "in_use", st->in_use,
		"initialising", st->initialising);
}

static PyObject *seg_stat(PyObject *self, PyObject *unused)
{
	SkSegment *s = seg_live(self);
	struct shmkit_seg_info st;
	int rc;

	if (!s)
		return NULL;
	if ((rc = shmkit_seg_info(s->seg, &st)) < 0)
		return sk_py_error(rc, NULL);
	return stat_dict(&st);
}

/* shmkit.stat(name): a segment described without keeping it open. */
PyObject *sk_py_stat_name(PyObject *m, PyObject *arg);
PyObject *sk_py_stat_name(PyObject *m, PyObject *arg)
{
	const char *name = PyUnicode_AsUTF8(arg);
	struct shmkit_seg_info st;
	int rc;

	if (!name)
		return NULL;
	if ((rc = shmkit_seg_info_name(name, &st)) < 0)
		return sk_py_error(rc, name);
	return stat_dict(&st);
}

static int list_one(const struct shmkit_seg_info *st, void *arg)
{
	return sk_py_list_add(arg, stat_dict(st));
}

/* shmkit.list(): every segment on the machine, as stat dicts. */
PyObject *sk_py_list(PyObject *m, PyObject *unused);
PyObject *sk_py_list(PyObject *m, PyObject *unused)
{
	PyObject *l = PyList_New(0);
	int rc;

	if (!l)
		return NULL;
	rc = shmkit_seg_list(list_one, l);
	if (rc != 0) {
		Py_DECREF(l);
		return rc == 1 ? NULL : sk_py_error(rc, NULL);
	}
	return l;
}

static PyObject *seg_get_int(PyObject *self, void *which)
{
	SkSegment *s = seg_live(self);

	if (!s)
		return NULL;
	switch ((intptr_t)which) {
	case 0: return PyLong_FromSize_t(shmkit_seg_size(s->seg));
	case 1: return PyLong_FromLong(shmkit_seg_kind(s->seg));
	case 2: return PyLong_FromLong(shmkit_seg_backend(s->seg));
	default: return PyLong_FromLong(shmkit_seg_fd(s->seg));
	}
}

static PyObject *seg_get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(((SkSegment *)self)->h.closed);
}

static PyGetSetDef seg_getset[] = {
	{"size", seg_get_int, NULL, "bytes of the data area", (void *)0},
	{"kind", seg_get_int, NULL, "KIND_* of the header", (void *)1},
	{"backend", seg_get_int, NULL, "POSIX, SYSV, FILE, ANON or MEMFD", (void *)2},
	{"fd", seg_get_int, NULL, "the descriptor behind it (-1 for sysv, anon)", (void *)3},
	{"closed", seg_get_closed, NULL, "True once close() ran or Channel.attach took it", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef seg_methods[] = {
	{"create", (PyCFunction)(void (*)(void))seg_create,
	 METH_VARARGS | METH_KEYWORDS | METH_CLASS,
	 "create(name, size, *, mode=0o600, exclusive=False, populate=False, mlock=False,\n"
	 "       huge=False, persist=False) -> Segment (opens an existing one unless exclusive)"},
	{"open", (PyCFunction)(void (*)(void))seg_open, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
	 "open(name, *, readonly=False, cow=False, raw=False, populate=False, mlock=False,\n"
	 "     timeout=1.0) -> Segment (timeout: seconds to wait for a creator still\n"
	 "     initialising; None = forever)"},
	{"remove", seg_remove, METH_O | METH_STATIC, "remove(name): unlink the name"},
	{"send_fd", seg_send_fd, METH_O,
	 "send_fd(sock): pass a memfd segment's fd over a connected UNIX socket (SCM_RIGHTS)"},
	{"recv_fd", KWFN(seg_recv_fd) | METH_CLASS,
	 "recv_fd(sock, *, readonly=False, cow=False, noseal=False) -> Segment from a\n"
	 "received memfd (OSError EPERM if not sealed against shrinking, unless noseal)"},
	{"close", seg_close, METH_NOARGS, "unmap; BufferError while a view is exported"},
	{"sync", (PyCFunction)(void (*)(void))seg_sync, METH_VARARGS | METH_KEYWORDS,
	 "sync(offset=0, length=0, *, asynchronous=False, invalidate=False): msync"},
	{"stat", seg_stat, METH_NOARGS, "the segment described, as a dict"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

PyTypeObject SkSegment_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit.Segment",
	.tp_doc = "A named, mapped region; its data area is a buffer (memoryview,\n"
	          "numpy.frombuffer) over shared memory.",
	.tp_basicsize = sizeof(SkSegment),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = seg_dealloc,
	.tp_as_buffer = &seg_as_buffer,
	.tp_as_sequence = &seg_as_sequence,
	.tp_methods = seg_methods,
	.tp_getset = seg_getset,
};
