/*
 * sync.c - shmkit.EventCount, shmkit.Mutex and shmkit.Semaphore: the
 * synchronization objects of the C library placed at an offset of a
 * Segment's data area, so that any process mapping the segment shares
 * them.  Each object holds a buffer export of its segment: the memory
 * stays mapped while it lives (Segment.close raises BufferError), until
 * the object's own close().  The C calls keep no state in the handle, so
 * these objects are not bound to one thread: any thread may wait on one
 * (a Mutex is owned by the thread that locked it, as in C).
 *   All three also have fileno()/ack() for event loops: the library's
 * pollable fd (shmkit_ec_fd, shmkit_sem_fd, shmkit_mutex_fd), made on the
 * first fileno() and closed by close() before the segment is released
 * (its wait points into the mapping).  Those calls hold the GIL (they do
 * not block), so two threads never race on the fd's creation.
 */
#include "pyshmkit.h"

#include <errno.h>

enum { SK_EC, SK_MUTEX, SK_SEM };

typedef struct {
	PyObject_HEAD
	Py_buffer buf;      /* the segment's data area; buf.obj NULL once closed */
	void *ptr;          /* the object in it */
	int owner_died;     /* Mutex: the last lock recovered a dead holder's */
	shmkit_syncfd *fd;  /* NULL until fileno() */
	int fdno;
} SkSync;

#define SY(self) ((SkSync *)(self))

static const struct {
	size_t size, align;
} sync_layout[] = {
	[SK_EC] = {sizeof(shmkit_ec), _Alignof(shmkit_ec)},
	[SK_MUTEX] = {sizeof(shmkit_mutex), _Alignof(shmkit_mutex)},
	[SK_SEM] = {sizeof(shmkit_sem), _Alignof(shmkit_sem)},
};

static int sync_kind(PyTypeObject *type)
{
	return type == &SkMutex_Type ? SK_MUTEX : type == &SkSemaphore_Type ? SK_SEM : SK_EC;
}

/* Type(segment, offset=0, *, init=...): init False/None attaches to an
 * object another process initialised; True (a Semaphore: its count)
 * initialises it first. */
static PyObject *sync_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"segment", "offset", "init", NULL};
	PyObject *seg, *init = Py_None;
	Py_ssize_t off = 0;
	int kind = sync_kind(type), rc = 0;
	SkSync *s;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n$O", kwl, &seg, &off, &init))
		return NULL;
	if (!PyObject_TypeCheck(seg, &SkSegment_Type)) {
		PyErr_SetString(PyExc_TypeError, "segment must be a shmkit.Segment");
		return NULL;
	}
	if (!(s = (SkSync *)type->tp_alloc(type, 0)))
		return NULL;
	if (PyObject_GetBuffer(seg, &s->buf, PyBUF_WRITABLE) < 0) {
		Py_DECREF(s);
		return NULL;
	}
	if (off < 0 || (size_t)off % sync_layout[kind].align ||
	    (size_t)off + sync_layout[kind].size > (size_t)s->buf.len) {
		PyErr_Format(PyExc_ValueError, "offset %zd: %s needs %zu bytes aligned to %zu inside "
		             "the %zd-byte data area", off, type->tp_name, sync_layout[kind].size,
		             sync_layout[kind].align, s->buf.len);
		Py_DECREF(s);
		return NULL;
	}
	s->ptr = (char *)s->buf.buf + off;
	if (kind == SK_SEM && init != Py_None) {
		long v = PyLong_AsLong(init);
		if (v == -1 && PyErr_Occurred()) {
			Py_DECREF(s);
			return NULL;
		}
		rc = v < 0 || v > INT32_MAX ? -EINVAL : shmkit_sem_init(s->ptr, (unsigned)v);
	} else if (PyObject_IsTrue(init) == 1) {
		if (kind == SK_EC)
			shmkit_ec_init(s->ptr);
		else
			rc = shmkit_mutex_init(s->ptr);
	}
	if (rc < 0) {
		Py_DECREF(s);
		return sk_py_error(rc, NULL);
	}
	return (PyObject *)s;
}

static void *sync_ptr(PyObject *self)
{
	if (!SY(self)->buf.obj) {
		PyErr_Format(PyExc_ValueError, "%s is closed", Py_TYPE(self)->tp_name);
		return NULL;
	}
	return SY(self)->ptr;
}

/* The fd first: its armed wait points into the segment. */
static void sync_fd_close(PyObject *self)
{
	shmkit_syncfd_close(SY(self)->fd);
	SY(self)->fd = NULL;
}

static PyObject *sync_close(PyObject *self, PyObject *unused)
{
	sync_fd_close(self);
	if (SY(self)->buf.obj)
		PyBuffer_Release(&SY(self)->buf);
	SY(self)->ptr = NULL;
	Py_RETURN_NONE;
}

static void sync_dealloc(PyObject *self)
{
	sync_fd_close(self);
	if (SY(self)->buf.obj)
		PyBuffer_Release(&SY(self)->buf);
	Py_TYPE(self)->tp_free(self);
}

struct sync_op {
	void *ptr;
	uint32_t old;
	int kind;
};

static long long op_wait(void *p, int64_t t)
{
	struct sync_op *o = p;

	switch (o->kind) {
	case SK_EC: return shmkit_ec_wait(o->ptr, o->old, t);
	case SK_MUTEX: return shmkit_mutex_lock(o->ptr, t);
	default: return shmkit_sem_wait(o->ptr, t);
	}
}

/* The blocking call of the object (ec wait, lock, sem wait), in slices
 * without the GIL: 0 or -EOWNERDEAD (a lock taken from a dead holder), or
 * -1 with the error raised. */
static long long sync_wait(PyObject *self, uint32_t old, PyObject *timeout)
{
	struct sync_op o = {.ptr = sync_ptr(self), .old = old, .kind = sync_kind(Py_TYPE(self))};
	int64_t tns;
	long long rc;

	if (!o.ptr || sk_py_timeout(timeout, &tns) < 0)
		return -1;
	rc = sk_py_wait(op_wait, &o, tns);
	if (rc < 0 && rc != -EOWNERDEAD) {
		sk_py_error((int)rc, NULL);
		return -1;
	}
	return rc;
}

static PyObject *none_or_error(int rc)
{
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static PyObject *get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(!SY(self)->buf.obj);
}

/* fileno(): the fd, made on first use (an EventCount's armed on the value
 * now), or NULL with the error raised. */
static PyObject *sync_fileno(PyObject *self, PyObject *unused)
{
	void *p = sync_ptr(self);
	int rc;

	if (!p)
		return NULL;
	if (!SY(self)->fd) {
		switch (sync_kind(Py_TYPE(self))) {
		case SK_EC: rc = shmkit_ec_fd(&SY(self)->fd, p, shmkit_ec_value(p)); break;
		case SK_MUTEX: rc = shmkit_mutex_fd(&SY(self)->fd, p); break;
		default: rc = shmkit_sem_fd(&SY(self)->fd, p);
		}
		if (rc < 0)
			return sk_py_error(rc, NULL);
		SY(self)->fdno = rc;
	}
	return PyLong_FromLong(SY(self)->fdno);
}

/* The fd of an ack: NULL with ValueError before fileno(). */
static shmkit_syncfd *sync_fd(PyObject *self)
{
	if (!sync_ptr(self))
		return NULL;
	if (!SY(self)->fd)
		PyErr_Format(PyExc_ValueError, "%s: no fd yet (call fileno())", Py_TYPE(self)->tp_name);
	return SY(self)->fd;
}

#define SYNC_FD_METHOD \
	{"fileno", sync_fileno, METH_NOARGS, \
	 "fd for poll/epoll/asyncio, readable when a wait would end (ack() after it signals)"}

#define SYNC_COMMON_METHODS \
	{"close", sync_close, METH_NOARGS, "release the segment (the object stays in it)"}

/* ---- EventCount ---- */

static PyObject *ec_inc(PyObject *self, PyObject *unused)
{
	void *p = sync_ptr(self);

	if (!p)
		return NULL;
	shmkit_ec_inc(p);
	Py_RETURN_NONE;
}

static PyObject *ec_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"old", "timeout", NULL};
	unsigned old;
	PyObject *timeout = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "I|O:wait", kwl, &old, &timeout) ||
	    sync_wait(self, old, timeout) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *ec_ack(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"old", NULL};
	PyObject *oldobj = Py_None;
	shmkit_syncfd *f;
	unsigned long old;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:ack", kwl, &oldobj) || !(f = sync_fd(self)))
		return NULL;
	if (oldobj == Py_None) {
		old = shmkit_ec_value(SY(self)->ptr);
	} else {
		old = PyLong_AsUnsignedLongMask(oldobj);
		if (PyErr_Occurred())
			return NULL;
	}
	return none_or_error(shmkit_ec_ack_fd(f, (uint32_t)old));
}

static PyObject *sync_value(PyObject *self, void *c)
{
	void *p = sync_ptr(self);

	if (!p)
		return NULL;
	return sync_kind(Py_TYPE(self)) == SK_EC ? PyLong_FromUnsignedLong(shmkit_ec_value(p))
	                                         : PyLong_FromLong(shmkit_sem_value(p));
}

static PyGetSetDef value_getset[] = {
	{"value", sync_value, NULL, "the current value", NULL},
	{"closed", get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef ec_methods[] = {
	{"inc", ec_inc, METH_NOARGS, "increment and wake every waiter"},
	{"wait", KWFN(ec_wait),
	 "wait(old, timeout=None): until value differs from old (TimeoutError)"},
	SYNC_FD_METHOD,
	{"ack", KWFN(ec_ack),
	 "ack(old=None): re-arm the fd; readable once value differs from old (None: the\n"
	 "value now), at once if it already does"},
	{"wait_async", KWFN(sk_aio_ec_wait),
	 "wait_async(old, timeout=None) -> coroutine of the value once it differs from old\n"
	 "(shmkit.aio.ec_wait)"},
	SYNC_COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

#define SYNC_TYPE(var, name, doc, methods, members, getset) \
	PyTypeObject var = { \
		PyVarObject_HEAD_INIT(NULL, 0) \
		.tp_name = name, .tp_doc = doc, .tp_basicsize = sizeof(SkSync), \
		.tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = sync_new, .tp_dealloc = sync_dealloc, \
		.tp_methods = methods, .tp_members = members, .tp_getset = getset, \
	}

SYNC_TYPE(SkEventCount_Type, "shmkit.EventCount",
	"EventCount(segment, offset=0, *, init=False): a counter waiters sleep on, 4 bytes\n"
	"at offset of the segment's data area (init=True zeroes it).",
	ec_methods, NULL, value_getset);

/* ---- Mutex ---- */

static PyObject *mutex_lock(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"timeout", NULL};
	PyObject *timeout = Py_None;
	long long rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:lock", kwl, &timeout) ||
	    (rc = sync_wait(self, 0, timeout)) == -1)
		return NULL;
	SY(self)->owner_died = rc == -EOWNERDEAD;
	return PyBool_FromLong(SY(self)->owner_died);
}

static PyObject *mutex_call(PyObject *self, int (*fn)(shmkit_mutex *))
{
	void *p = sync_ptr(self);

	return p ? none_or_error(fn(p)) : NULL;
}

static PyObject *mutex_unlock(PyObject *self, PyObject *unused)
{
	return mutex_call(self, shmkit_mutex_unlock);
}

static PyObject *mutex_consistent(PyObject *self, PyObject *unused)
{
	return mutex_call(self, shmkit_mutex_consistent);
}

static PyObject *mutex_ack(PyObject *self, PyObject *unused)
{
	shmkit_syncfd *f = sync_fd(self);

	return f ? none_or_error(shmkit_mutex_ack_fd(f)) : NULL;
}

static PyObject *mutex_enter(PyObject *self, PyObject *unused)
{
	PyObject *r = PyObject_CallMethod(self, "lock", NULL);

	if (!r)
		return NULL;
	Py_DECREF(r);
	return Py_NewRef(self);
}

static PyObject *mutex_exit(PyObject *self, PyObject *args)
{
	PyObject *r = mutex_unlock(self, NULL);

	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyMemberDef mutex_members[] = {
	{"owner_died", T_BOOL, offsetof(SkSync, owner_died), READONLY,
	 "the last lock() took the mutex from a holder that died: repair the state it\n"
	 "protects, then consistent()"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef closed_getset[] = {
	{"closed", get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef mutex_methods[] = {
	{"lock", KWFN(mutex_lock),
	 "lock(timeout=None) -> owner_died: True when its holder died holding it (the\n"
	 "lock is held: repair, then consistent()); TimeoutError, BlockingIOError\n"
	 "(timeout 0), OSError EDEADLK (this thread holds it), ENOTRECOVERABLE"},
	{"unlock", mutex_unlock, METH_NOARGS, "unlock (OSError EPERM from another thread)"},
	{"consistent", mutex_consistent, METH_NOARGS,
	 "after lock() returned True: the protected state is repaired"},
	SYNC_FD_METHOD,
	{"ack", mutex_ack, METH_NOARGS,
	 "re-arm the fd after each try (readable at once while the mutex is free or its\n"
	 "holder died); the fd is a hint: another locker may win (lock(timeout=0)\n"
	 "raises BlockingIOError).  A holder's death may not signal it: poll with a\n"
	 "timeout and ack() on timeout"},
	{"lock_async", KWFN(sk_aio_mutex_lock),
	 "lock_async(timeout=None) -> coroutine of owner_died, locking without blocking\n"
	 "the event loop (shmkit.aio.mutex_lock)"},
	{"__enter__", mutex_enter, METH_NOARGS, "lock(); see owner_died"},
	{"__exit__", mutex_exit, METH_VARARGS, "unlock()"},
	SYNC_COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

SYNC_TYPE(SkMutex_Type, "shmkit.Mutex",
	"Mutex(segment, offset=0, *, init=False): a robust process-shared mutex, 64 bytes\n"
	"at offset (8-aligned) of the segment's data area; a holder's death is reported\n"
	"to the next locker (owner_died).",
	mutex_methods, mutex_members, closed_getset);

/* ---- Semaphore ---- */

static PyObject *sem_post(PyObject *self, PyObject *unused)
{
	void *p = sync_ptr(self);

	return p ? none_or_error(shmkit_sem_post(p)) : NULL;
}

static PyObject *sem_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"timeout", NULL};
	PyObject *timeout = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwl, &timeout) ||
	    sync_wait(self, 0, timeout) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *sem_ack(PyObject *self, PyObject *unused)
{
	shmkit_syncfd *f = sync_fd(self);

	return f ? none_or_error(shmkit_sem_ack_fd(f)) : NULL;
}

static PyMethodDef sem_methods[] = {
	{"post", sem_post, METH_NOARGS, "add one (OSError EOVERFLOW at 2^31-1)"},
	{"wait", KWFN(sem_wait),
	 "wait(timeout=None): take one (TimeoutError; BlockingIOError for timeout 0)"},
	SYNC_FD_METHOD,
	{"ack", sem_ack, METH_NOARGS,
	 "re-arm the fd after each try (readable at once while units remain); the fd is a\n"
	 "hint: another taker may win the unit (wait(timeout=0) raises BlockingIOError)"},
	{"wait_async", KWFN(sk_aio_sem_wait),
	 "wait_async(timeout=None) -> coroutine taking one (shmkit.aio.sem_wait)"},
	SYNC_COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

SYNC_TYPE(SkSemaphore_Type, "shmkit.Semaphore",
	"Semaphore(segment, offset=0, *, init=None): a counting semaphore, 8 bytes at\n"
	"offset (4-aligned) of the segment's data area (init=N sets its count).",
	sem_methods, NULL, value_getset);
