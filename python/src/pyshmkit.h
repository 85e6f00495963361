/*
 * pyshmkit.h - shared declarations of the CPython extension module shmkit.
 *
 * The module is built on the public API only (shmkit.h).  Its rules:
 *   - Every handle object is used by one thread at a time: a call that
 *     releases the GIL marks its handle busy, and another thread's call
 *     on that handle meanwhile raises RuntimeError instead of racing in C.
 *   - Memory the library lends (a segment's data area, a loan, a peeked
 *     message, an rpc request or response) is exported through the buffer
 *     protocol by a view object that counts its exports: the operation that
 *     ends the lending (close, commit, publish, release, respond) raises
 *     BufferError while an export is alive, so Python code never touches
 *     memory the library has taken back (the rule of CPython's mmap).
 *   - Blocking calls take a timeout in seconds (None = forever), release
 *     the GIL and wait in slices so that signals (Ctrl-C) are handled.
 */
#ifndef PYSHMKIT_H
#define PYSHMKIT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#include "shmkit.h"

/* Raise the OSError subclass for a negative errno (CorruptError for
 * -EBADMSG), its message shmkit_strerror + shmkit_errdetail; what (may be
 * NULL) becomes the exception's filename.  Returns NULL. */
PyObject *sk_py_error(int err, const char *what);
extern PyObject *sk_CorruptError;

/* Timeout argument (None, int or float seconds) to nanoseconds: None ->
 * -1 (forever).  0 on success, -1 with ValueError/TypeError set. */
int sk_py_timeout(PyObject *obj, int64_t *ns);
/* A converter for PyArg_Parse ("O&"). */
int sk_py_timeout_conv(PyObject *obj, void *ns);

/* One blocking operation: called with the GIL released, with a slice of
 * the caller's timeout in nanoseconds (0 = try once). */
typedef long long (*sk_py_op)(void *ctx, int64_t slice_ns);
/* Run op until it returns anything but -ETIMEDOUT or the timeout runs
 * out, in slices of at most 100 ms, checking signals between slices.
 * Returns op's result, or -EINTR with the Python exception set. */
long long sk_py_wait(sk_py_op op, void *ctx, int64_t timeout_ns);

typedef struct SkView SkView;

/* How a handle's timed waits start (SkHandle.spin), before sk_py_wait
 * sleeps in the library without the GIL: */
enum {
	SK_SPIN_NONE = 0,  /* straight to sk_py_wait (ops that may block at
	                      slice 0, or whose 0-slice result is not "not yet") */
	SK_SPIN_LOOK,      /* one look (a 0 slice) with the GIL held: no GIL
	                      release when the wait is already over */
	SK_SPIN_ADAPTIVE,  /* the look, then a learned spin without the GIL
	                      (WAIT_ADAPTIVE handles; module.c sk_py_spin) */
};

/* Head of every handle object: busy while a call released the GIL; the
 * live views of its lent memory; the spin state of its waits. */
typedef struct {
	PyObject_HEAD
	int busy;
	int closed;
	SkView **views;
	Py_ssize_t nviews, capviews;
	int spin;              /* SK_SPIN_* */
	uint32_t spin_ns;      /* learned budget; 0: sleep at once (but probes) */
	uint32_t spin_waits;   /* waits since the budget fell to 0 */
	uint32_t probe_every;  /* probe one wait in this many (16..1024) */
} SkHandle;
/* Set h->spin for a handle whose ops report "not yet" at a 0 slice as
 * -EAGAIN/-ETIMEDOUT and never block there, waiting by strategy wait
 * (enum shmkit_wait). */
void sk_py_spin_init(SkHandle *h, int wait);
/* Mark h busy: -1 with ValueError (closed) or RuntimeError (busy) set. */
int sk_py_enter(SkHandle *h);
void sk_py_leave(SkHandle *h);

/* Run op (sk_py_wait) with h entered and the timeout object given; the
 * result, or a negative value with the exception set. */
long long sk_py_run(SkHandle *h, sk_py_op op, void *ctx, PyObject *timeout);
long long sk_py_run_ns(SkHandle *h, sk_py_op op, void *ctx, int64_t timeout_ns);
/* Call fn(c) with h entered: its result (>= 0) as an int object, None
 * for 0 when none_for_zero, or NULL with the error raised. */
PyObject *sk_py_call(SkHandle *h, int (*fn)(void *c), void *c, int none_for_zero);

/* peers(): the C listing's callback appends one dict per peer to list. */
struct sk_peers_call {
	void *handle;
	PyObject *list;
};
/* Append d (a new reference, NULL: failed) to list: 0, or 1 (stops the
 * listing) with the exception set. */
int sk_py_list_add(PyObject *list, PyObject *d);
/* fn(c) with h entered and c->list a new list: the list, or NULL with the
 * error raised. */
PyObject *sk_py_peers(SkHandle *h, int (*fn)(void *c), struct sk_peers_call *c);

/* ---- views: lent memory exported through the buffer protocol ---- */

struct sk_view_ops {
	/* Give the memory back (release, abort); called with exports == 0
	 * and the owner entered.  0 or a negative errno. */
	int (*end)(SkView *v);
	/* Commit a loan: args and kwargs of Loan.commit; returns the result
	 * or NULL with an exception set (the view stays live on failure). */
	PyObject *(*commit)(SkView *v, PyObject *args, PyObject *kw);
};

struct SkView {
	PyObject_HEAD
	SkHandle *owner;            /* the handle (a strong reference); it lists
	                               this view while it is live */
	const struct sk_view_ops *ops;
	void *ptr;
	Py_ssize_t len;
	int readonly;
	int live;                   /* 0 once given back: no more exports */
	Py_ssize_t exports;
	uint64_t id;                /* rpc call id */
	uint64_t lost;              /* bus: messages lost before this one */
	int status;                 /* rpc: the server's status */
	unsigned flags;             /* rpc request: SHMKIT_RPC_* */
	int64_t deadline_ns;        /* rpc request: CLOCK_REALTIME */
	struct shmkit_rpc_req req;  /* rpc request as the server took it */
	PyObject *parent;           /* rpc response loan: its Request */
};

extern PyTypeObject SkLoan_Type, SkMessage_Type;
extern PyMethodDef sk_request_methods[];  /* rpc.c */
/* A live view over ptr/len lent by owner; NULL with an exception set. */
SkView *sk_view_new(PyTypeObject *type, SkHandle *owner,
                    const struct sk_view_ops *ops, void *ptr, Py_ssize_t len);
/* Loan.commit's length argument, checked against the loan: 0 or -1. */
int sk_view_commit_len(SkView *v, PyObject *args, PyObject *kw, Py_ssize_t *len);
/* 0 if len fits the view, else -1 with ValueError set. */
int sk_view_len_ok(const SkView *v, Py_ssize_t len);
/* Check that v can be given back: BufferError while exported. */
int sk_view_check_free(SkView *v, const char *what);
/* The view is given back: no memory, no longer the owner's. */
void sk_view_kill(SkView *v);
/* BufferError (-1) if one of h's views is exported, else 0. */
int sk_views_check(SkHandle *h);
/* Before an owner closes: BufferError if one of its views is exported,
 * else they are all killed (the C close gives their memory back). */
int sk_views_close(SkHandle *h);
/* Release what a handle holds (tp_dealloc, tp_free after). */
void sk_handle_free_views(SkHandle *h);

/* ---- the types, one file each ---- */
extern PyTypeObject SkSegment_Type, SkChannel_Type, SkBus_Type,
	SkSubscription_Type, SkRpcServer_Type, SkRpcClient_Type,
	SkRequest_Type, SkJournal_Type, SkJournalReader_Type,
	SkEventCount_Type, SkMutex_Type, SkSemaphore_Type;
extern PyTypeObject SkRecord_Type;
int sk_py_init_types(PyObject *m);
int sk_py_init_record(PyObject *m);  /* journal.c */
/* Module-level functions defined beside their types. */
extern PyMethodDef sk_journal_functions[];

/* Channel.attach: take the shmkit_seg out of a Segment object (which is
 * then closed), or give it back when the attach failed. */
shmkit_seg *sk_py_seg_take(PyObject *seg);
void sk_py_seg_give_back(PyObject *seg, shmkit_seg *s);

/* asyncio (aio.c): methods returning shmkit.aio's coroutines for self,
 * and the `async for` slots set on the types before they are readied. */
PyObject *sk_aio_recv(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_send(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_call(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_wait(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_request(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_read(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_publish(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_ec_wait(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_sem_wait(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sk_aio_mutex_lock(PyObject *self, PyObject *args, PyObject *kw);
void sk_py_init_aio(void);

/* Common context-manager slots: __enter__ returns self, __exit__ calls
 * self.close(). */
PyObject *sk_py_enter_self(PyObject *self, PyObject *unused);
PyObject *sk_py_exit_close(PyObject *self, PyObject *args);
#define SK_CONTEXT_METHODS \
	{"__enter__", sk_py_enter_self, METH_NOARGS, "__enter__() -> self"}, \
	{"__exit__", sk_py_exit_close, METH_VARARGS, "__exit__(*exc_info) -> False: close()"}

/* An iterator calling self.<method>(timeout=timeout) until it raises
 * TimeoutError or BlockingIOError (which end it); timeout None: it never ends by itself. */
PyObject *sk_py_iter_new(PyObject *self, const char *method, PyObject *timeout);
/* The same with the timeout parsed from (timeout=None). */
PyObject *sk_py_iter_method(PyObject *self, const char *method, PyObject *args, PyObject *kw);
extern PyTypeObject SkIter_Type;

/* A method table entry's function and flags for keyword methods. */
#define KWFN(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS
/* The same through the vectorcall protocol (METH_FASTCALL): no argument
 * tuple, no keyword dict - for the calls a round trip is made of. */
#define FASTFN(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS
#define SK_FAST_ARGS PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames
/* Parse FASTFN arguments: names (NULL-terminated) may all be given by
 * position or keyword, the first nreq are required; out[i] is the i-th
 * (borrowed), NULL when not given.  0, or -1 with TypeError set. */
int sk_py_fast_args(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, const char *const *names, int nreq, PyObject **out);
/* A contiguous buffer of obj, writable if asked (TypeError otherwise, as
 * "y*"/"w*" raise): 0, or -1 with the error set. */
int sk_py_fast_buffer(const char *fn, PyObject *obj, Py_buffer *b, int writable);
/* The common case: (timeout=None) only. */
int sk_py_fast_timeout(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, PyObject **timeout);

/* The type object of a handle class. */
#define SK_HANDLE_TYPE(var, name, doc, ctype, dealloc, iter, iternext, methods, members, \
                       getset) \
	PyTypeObject var = { \
		PyVarObject_HEAD_INIT(NULL, 0) \
		.tp_name = name, .tp_doc = doc, .tp_basicsize = sizeof(ctype), \
		.tp_flags = Py_TPFLAGS_DEFAULT, .tp_dealloc = dealloc, .tp_iter = iter, \
		.tp_iternext = iternext, \
		.tp_methods = methods, .tp_members = members, .tp_getset = getset, \
	}

/* The segment flags every create/open takes as keyword arguments. */
unsigned sk_py_flags(int exclusive, int readonly, int populate, int mlock,
                     int huge, int persist);

#endif
