/*
 * module.c - the extension module shmkit._shmkit (the package shmkit
 * re-exports it): errors, timeouts, the blocking wait loop, the busy rule
 * of handles, and module initialisation.
 */
#include "pyshmkit.h"

#include <errno.h>
#include <string.h>
#include <time.h>

PyObject *sk_CorruptError;

PyObject *sk_py_error(int err, const char *what)
{
	const char *detail = shmkit_errdetail();
	PyObject *msg, *exc, *type = err == -EBADMSG ? sk_CorruptError : PyExc_OSError;

	if (err == -EINTR && PyErr_Occurred())
		return NULL;  /* a signal handler raised: keep its exception */
	if (detail && detail[0])
		msg = PyUnicode_FromFormat("%s (%s)", shmkit_strerror(err), detail);
	else
		msg = PyUnicode_FromString(shmkit_strerror(err));
	if (!msg)
		return NULL;
	/* OSError(errno, text[, filename]) picks the subclass for errno
	 * (PEP 3151): TimeoutError, BlockingIOError, FileNotFoundError... */
	if (what)
		exc = PyObject_CallFunction(type, "iOs", -err, msg, what);
	else
		exc = PyObject_CallFunction(type, "iO", -err, msg);
	Py_DECREF(msg);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

int sk_py_timeout(PyObject *obj, int64_t *ns)
{
	double s;

	if (obj == NULL || obj == Py_None) {
		*ns = -1;
		return 0;
	}
	s = PyFloat_AsDouble(obj);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!(s >= 0)) {
		PyErr_SetString(PyExc_ValueError, "timeout must be a non-negative number or None");
		return -1;
	}
	*ns = s >= 9e9 ? -1 : (int64_t)(s * 1e9);  /* centuries: forever */
	return 0;
}

int sk_py_timeout_conv(PyObject *obj, void *ns)
{
	return sk_py_timeout(obj, ns) == 0;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define SLICE_NS 100000000LL

long long sk_py_wait(sk_py_op op, void *ctx, int64_t timeout_ns)
{
	int64_t deadline = timeout_ns > 0 ? mono_ns() + timeout_ns : 0;
	long long rc;

	for (;;) {
		int64_t slice = timeout_ns == 0 ? 0 : SLICE_NS;

		if (timeout_ns > 0) {
			int64_t left = deadline - mono_ns();
			if (left <= 0)
				left = 0;
			if (left < slice)
				slice = left;
		}
		Py_BEGIN_ALLOW_THREADS
		rc = op(ctx, slice);
		Py_END_ALLOW_THREADS
		/* A try-once slice at the deadline reports "nothing" as
		 * -EAGAIN: the caller asked for a bounded wait. */
		if (rc == -EAGAIN && timeout_ns != 0 && slice == 0)
			rc = -ETIMEDOUT;
		if (rc != -ETIMEDOUT || timeout_ns == 0 || slice == 0)
			return rc;
		if (timeout_ns > 0 && mono_ns() >= deadline)
			return rc;
		if (PyErr_CheckSignals() < 0)
			return -EINTR;
	}
}

/* ---- the first part of a timed wait: a look, then a learned spin ----
 *
 * A round trip between two Python processes is two waits of each side,
 * about 0.3 us of interpreter apart.  The library's adaptive wait learns
 * a spin budget per thread, down to nothing (then it sleeps at once,
 * probing with a 2 us spin one wait in 16).  In a ping-pong both sides
 * then sleep, and a probe cannot see an answer come quickly: the peer is
 * asleep too, and waking it (futex wake -> running on another vCPU) takes
 * 15-25 us on this VM, so the state where every wait sleeps (about 40 us
 * a round trip instead of 0.4) lasts until luck ends it (the sleeps/trip
 * column of bench/python/bench.py shows it).  So a handle with the
 * adaptive wait spins here first, with a budget learned per handle by the
 * same rule, but its probe, when the budget has fallen to nothing, spins
 * long enough to outlast a sleeping peer's wake-up (SK_PY_PROBE_NS): one
 * side that finds the peer answers then keeps spinning, and the other's
 * probes (the library's, or this one) see quick answers again.  A probe that
 * fails (the peer shares this core, or is slow) doubles the interval to
 * the next one, up to SK_PY_PROBE_MAX_EVERY: two processes on one CPU pay
 * 50 us in 1024 waits; one that works sets it back to SK_PY_PROBE_EVERY.
 *
 * The first look holds the GIL: a wait that is over at once (a message
 * already there) costs no release and re-acquisition (the bench measures
 * it: 30-40 ns).  The spin and the sleep release it, so that the other
 * threads run meanwhile (another thread may be what produces the answer;
 * holding the GIL through a spin of up to 50 us would stall them, for a
 * gain too small to see among the round trip's noise).  Each look is the
 * op with a 0 slice (try once: no sleep, no learning in the library). */
#define SK_PY_SPIN_MAX_NS 50000
#define SK_PY_SPIN_START_NS 10000
#define SK_PY_PROBE_NS 50000
#define SK_PY_PROBE_EVERY 16
#define SK_PY_PROBE_MAX_EVERY 1024

void sk_py_spin_init(SkHandle *h, int wait)
{
	h->spin = wait == SHMKIT_WAIT_ADAPTIVE ? SK_SPIN_ADAPTIVE : SK_SPIN_LOOK;
	h->spin_ns = SK_PY_SPIN_START_NS;
	h->spin_waits = 0;
	h->probe_every = SK_PY_PROBE_EVERY;
}

static int not_yet(long long rc)
{
	return rc == -EAGAIN || rc == -ETIMEDOUT;
}

/* The library's rule (sk_spin_learn, src/wait.h, internal: the module
 * sees only shmkit.h) on this handle's budget instead of the thread's. */
static void spin_learn(SkHandle *h, int64_t took, int satisfied)
{
	int64_t b = h->spin_ns;

	if (satisfied) {  /* toward 4x the wait it satisfied */
		int64_t t = 4 * took > SK_PY_SPIN_MAX_NS ? SK_PY_SPIN_MAX_NS : 4 * took;
		b = (3 * b + t) / 4;
		if (b < t / 2)  /* from nothing: a probe that worked counts at once */
			b = t;
	} else {
		b = b / 2 < 250 ? 0 : b / 2;
	}
	h->spin_ns = (uint32_t)b;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Look (with the GIL), then spin (SK_SPIN_ADAPTIVE; without).  Returns op's
 * result when the wait is over, else -ETIMEDOUT with *timeout_ns reduced
 * by the time spent (a bounded timeout that ran out while spinning is
 * over: returns -ETIMEDOUT with *timeout_ns = 0). */
static long long sk_py_spin(SkHandle *h, sk_py_op op, void *ctx, int64_t *timeout_ns)
{
	long long rc = op(ctx, 0);
	int64_t budget, start, t;
	int probe = 0;

	if (!not_yet(rc) || h->spin != SK_SPIN_ADAPTIVE)
		return not_yet(rc) ? -ETIMEDOUT : rc;
	budget = h->spin_ns;
	if (!budget && ++h->spin_waits >= h->probe_every) {
		h->spin_waits = 0;
		budget = SK_PY_PROBE_NS;
		probe = 1;
	}
	if (!budget)
		return -ETIMEDOUT;
	if (*timeout_ns > 0 && budget > *timeout_ns)
		budget = *timeout_ns;
	start = mono_ns();
	Py_BEGIN_ALLOW_THREADS
	for (unsigned i = 1;; i++) {
		cpu_relax();
		rc = op(ctx, 0);
		if (!not_yet(rc)) {
			t = -1;
			break;
		}
		if (i % 8)
			continue;
		if ((t = mono_ns() - start) >= budget)
			break;
	}
	Py_END_ALLOW_THREADS
	if (t < 0) {  /* the spin saw the wait end */
		spin_learn(h, mono_ns() - start, 1);
		if (probe)
			h->probe_every = SK_PY_PROBE_EVERY;
		return rc;
	}
	if (*timeout_ns > 0)
		*timeout_ns = *timeout_ns > t ? *timeout_ns - t : 0;
	if (*timeout_ns == 0)
		return -ETIMEDOUT;
	/* A deadline that cut the spin short says nothing about the peer. */
	if (probe && budget == SK_PY_PROBE_NS && h->probe_every < SK_PY_PROBE_MAX_EVERY)
		h->probe_every *= 2;
	else if (!probe && budget == h->spin_ns)
		spin_learn(h, t, 0);
	return -ETIMEDOUT;
}

int sk_py_fast_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, const char *const *names, int nreq, PyObject **out)
{
	Py_ssize_t n = 0, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

	while (names[n])
		out[n++] = NULL;
	if (nargs > n) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fn, n,
		             nargs);
		return -1;
	}
	for (Py_ssize_t i = 0; i < nargs; i++)
		out[i] = args[i];
	for (Py_ssize_t k = 0; k < nkw; k++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, k);
		Py_ssize_t i = 0;

		while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
			i++;
		if (i == n) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
			             fn, key);
			return -1;
		}
		if (out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn,
			             names[i]);
			return -1;
		}
		out[i] = args[nargs + k];
	}
	for (int i = 0; i < nreq; i++)
		if (!out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn,
			             names[i]);
			return -1;
		}
	return 0;
}

int sk_py_fast_buffer(const char *fn, PyObject *obj, Py_buffer *b, int writable)
{
	if (PyObject_GetBuffer(obj, b, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) == 0)
		return 0;
	if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
		PyErr_Clear();
		PyErr_Format(PyExc_TypeError, "%s() argument must be a %scontiguous bytes-like "
		             "object, not '%.100s'", fn, writable ? "writable " : "",
		             Py_TYPE(obj)->tp_name);
	}
	return -1;
}

int sk_py_fast_timeout(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, PyObject **timeout)
{
	static const char *const names[] = {"timeout", NULL};

	return sk_py_fast_args(fn, args, nargs, kwnames, names, 0, timeout);
}

long long sk_py_run(SkHandle *h, sk_py_op op, void *ctx, PyObject *timeout)
{
	int64_t tns;

	if (sk_py_timeout(timeout, &tns) < 0)
		return -EINTR;
	return sk_py_run_ns(h, op, ctx, tns);
}

long long sk_py_run_ns(SkHandle *h, sk_py_op op, void *ctx, int64_t timeout_ns)
{
	long long rc;

	if (sk_py_enter(h) < 0)
		return -EINTR;
	/* A timed wait of a handle that may look first (sk_py_spin). */
	if (timeout_ns != 0 && h->spin != SK_SPIN_NONE) {
		rc = sk_py_spin(h, op, ctx, &timeout_ns);
		if (rc == -ETIMEDOUT && timeout_ns != 0)
			rc = sk_py_wait(op, ctx, timeout_ns);
	} else {
		rc = sk_py_wait(op, ctx, timeout_ns);
	}
	sk_py_leave(h);
	if (rc < 0)
		sk_py_error((int)rc, NULL);
	return rc;
}

PyObject *sk_py_call(SkHandle *h, int (*fn)(void *c), void *c, int none_for_zero)
{
	int rc;

	if (sk_py_enter(h) < 0)
		return NULL;
	rc = fn(c);
	sk_py_leave(h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	if (rc == 0 && none_for_zero)
		Py_RETURN_NONE;
	return PyLong_FromLong(rc);
}

int sk_py_list_add(PyObject *list, PyObject *d)
{
	int rc = d ? PyList_Append(list, d) : -1;

	Py_XDECREF(d);
	return rc < 0 ? 1 : 0;
}

PyObject *sk_py_peers(SkHandle *h, int (*fn)(void *c), struct sk_peers_call *c)
{
	int rc;

	if (!(c->list = PyList_New(0)))
		return NULL;
	if (sk_py_enter(h) < 0) {
		Py_DECREF(c->list);
		return NULL;
	}
	rc = fn(c);
	sk_py_leave(h);
	if (rc != 0) {
		Py_DECREF(c->list);
		return rc == 1 ? NULL : sk_py_error(rc, NULL);
	}
	return c->list;
}

int sk_py_enter(SkHandle *h)
{
	if (h->closed) {
		PyErr_Format(PyExc_ValueError, "%s is closed", Py_TYPE(h)->tp_name);
		return -1;
	}
	if (h->busy) {
		PyErr_Format(PyExc_RuntimeError,
		             "%s is in use by another thread (one thread at a time per handle)",
		             Py_TYPE(h)->tp_name);
		return -1;
	}
	h->busy = 1;
	return 0;
}

void sk_py_leave(SkHandle *h)
{
	h->busy = 0;
}

PyObject *sk_py_enter_self(PyObject *self, PyObject *unused)
{
	return Py_NewRef(self);
}

PyObject *sk_py_exit_close(PyObject *self, PyObject *args)
{
	PyObject *r = PyObject_CallMethod(self, "close", NULL);

	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

typedef struct {
	PyObject_HEAD
	PyObject *method;   /* bound method */
	PyObject *timeout;
} SkIter;

PyObject *sk_py_iter_new(PyObject *self, const char *method, PyObject *timeout)
{
	SkIter *it = PyObject_New(SkIter, &SkIter_Type);

	if (!it)
		return NULL;
	it->timeout = Py_NewRef(timeout);
	it->method = PyObject_GetAttrString(self, method);
	if (!it->method) {
		Py_DECREF(it);
		return NULL;
	}
	return (PyObject *)it;
}

PyObject *sk_py_iter_method(PyObject *self, const char *method, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"timeout", NULL};
	PyObject *timeout = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwl, &timeout))
		return NULL;
	return sk_py_iter_new(self, method, timeout);
}

static PyObject *iter_next(PyObject *self)
{
	SkIter *it = (SkIter *)self;
	PyObject *kw = Py_BuildValue("{s:O}", "timeout", it->timeout), *r, *empty;

	if (!kw || !(empty = PyTuple_New(0))) {
		Py_XDECREF(kw);
		return NULL;
	}
	r = PyObject_Call(it->method, empty, kw);
	Py_DECREF(empty);
	Py_DECREF(kw);
	/* Nothing came within the timeout (try-once: BlockingIOError): the
	 * end, NULL without an exception. */
	if (r == Py_None) {  /* a try-once read at the end */
		Py_DECREF(r);
		return NULL;
	}
	if (!r && (PyErr_ExceptionMatches(PyExc_TimeoutError) ||
	           PyErr_ExceptionMatches(PyExc_BlockingIOError)))
		PyErr_Clear();
	return r;
}

static void iter_dealloc(PyObject *self)
{
	Py_XDECREF(((SkIter *)self)->method);
	Py_XDECREF(((SkIter *)self)->timeout);
	PyObject_Free(self);
}

PyTypeObject SkIter_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit.Iterator",
	.tp_doc = "Items until a wait of the given timeout runs out.",
	.tp_basicsize = sizeof(SkIter),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = iter_dealloc,
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = iter_next,
};

unsigned sk_py_flags(int exclusive, int readonly, int populate, int mlock,
                     int huge, int persist)
{
	return (exclusive ? SHMKIT_EXCL : 0) | (readonly ? SHMKIT_RDONLY : 0) |
	       (populate ? SHMKIT_POPULATE : 0) | (mlock ? SHMKIT_MLOCK : 0) |
	       (huge ? SHMKIT_HUGE : 0) | (persist ? SHMKIT_PERSIST : 0);
}

static PyObject *py_strerror(PyObject *m, PyObject *arg)
{
	long e = PyLong_AsLong(arg);

	if (e == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(shmkit_strerror(e > 0 ? (int)-e : (int)e));
}

PyObject *sk_py_stat_name(PyObject *m, PyObject *arg);
PyObject *sk_py_list(PyObject *m, PyObject *unused);

static PyMethodDef module_methods[] = {
	{"stat", sk_py_stat_name, METH_O, "stat(name) -> dict describing a segment by name"},
	{"list", sk_py_list, METH_NOARGS,
	 "list() -> a dict per segment on the machine (POSIX and System V, managed or foreign)"},
	{"strerror", py_strerror, METH_O,
	 "strerror(err) -> text for a shmkit result (negative or positive errno)"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmkit._shmkit",
	.m_doc = "Linux shared memory IPC: segments, channels, a publish/subscribe bus,\n"
	         "request/response and a durable journal (the shmkit C library).",
	.m_size = -1,
	.m_methods = module_methods,
};

static int add_ints(PyObject *m)
{
	static const struct { const char *name; long v; } ints[] = {
		{"POSIX", SHMKIT_POSIX}, {"SYSV", SHMKIT_SYSV}, {"FILE", SHMKIT_FILE},
		{"ANON", SHMKIT_ANON}, {"MEMFD", SHMKIT_MEMFD},
		{"KIND_FOREIGN", SHMKIT_KIND_FOREIGN}, {"KIND_BYTES", SHMKIT_KIND_BYTES},
		{"KIND_CHAN", SHMKIT_KIND_CHAN}, {"KIND_BUS", SHMKIT_KIND_BUS},
		{"KIND_JOURNAL", SHMKIT_KIND_JOURNAL}, {"KIND_RPC", SHMKIT_KIND_RPC},
		{"WAIT_ADAPTIVE", SHMKIT_WAIT_ADAPTIVE}, {"WAIT_SPIN", SHMKIT_WAIT_SPIN},
		{"WAIT_BLOCK", SHMKIT_WAIT_BLOCK},
		{"POLLIN", SHMKIT_CHAN_POLLIN}, {"POLLOUT", SHMKIT_CHAN_POLLOUT},
		{"CHAN_PEER_HANDLE", SHMKIT_CHAN_PEER_HANDLE},
		{"CHAN_PEER_PRODUCER", SHMKIT_CHAN_PEER_PRODUCER},
		{"CHAN_PEER_CONSUMER", SHMKIT_CHAN_PEER_CONSUMER},
		{"OVERWRITE", SHMKIT_BUS_OVERWRITE}, {"BACKPRESSURE", SHMKIT_BUS_BACKPRESSURE},
		{"RPC_IDEMPOTENT", SHMKIT_RPC_IDEMPOTENT},
		{"DUR_NONE", SHMKIT_DUR_NONE}, {"DUR_ASYNC", SHMKIT_DUR_ASYNC},
		{"DUR_SYNC", SHMKIT_DUR_SYNC}, {"DUR_GROUP", SHMKIT_DUR_GROUP},
	};

	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		if (PyModule_AddIntConstant(m, ints[i].name, ints[i].v) < 0)
			return -1;
	return 0;
}

int sk_py_init_types(PyObject *m)
{
	static PyTypeObject *const types[] = {
		&SkIter_Type, &SkLoan_Type, &SkMessage_Type, &SkSegment_Type, &SkChannel_Type,
		&SkBus_Type, &SkSubscription_Type,
		&SkRpcClient_Type, &SkRpcServer_Type, &SkRequest_Type,
		&SkJournal_Type, &SkJournalReader_Type,
		&SkEventCount_Type, &SkMutex_Type, &SkSemaphore_Type,
	};

	sk_py_init_aio();
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (PyType_Ready(types[i]) < 0 ||
		    PyModule_AddObjectRef(m, strrchr(types[i]->tp_name, '.') + 1,
		                          (PyObject *)types[i]) < 0)
			return -1;
	}
	return sk_py_init_record(m);
}

PyMODINIT_FUNC PyInit__shmkit(void);
PyMODINIT_FUNC PyInit__shmkit(void)
{
	PyObject *m = PyModule_Create(&module_def);

	if (!m)
		return NULL;
	sk_CorruptError = PyErr_NewExceptionWithDoc(
		"shmkit.CorruptError",
		"Corrupt shared state detected (EBADMSG): a peer wrote values out of\n"
		"bounds, or a file is damaged.", PyExc_OSError, NULL);
	if (!sk_CorruptError || PyModule_AddObjectRef(m, "CorruptError", sk_CorruptError) < 0 ||
	    add_ints(m) < 0 || sk_py_init_types(m) < 0 ||
	    PyModule_AddFunctions(m, sk_journal_functions) < 0 ||
	    PyModule_AddStringConstant(m, "__version__", "0.1.0") < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
