/*
 * aio.c - the asyncio entry points of the handles: ch.recv_async(),
 * ch.send_async(), client.call_async(), client.wait_async(),
 * server.recv_async(), reader.read_async(), bus.publish_async(),
 * ec.wait_async(), sem.wait_async(), mutex.lock_async() return the
 * coroutines of the pure-Python module shmkit.aio (loop.add_reader on the handle's fileno(),
 * no thread), and `async for` over a Channel, Subscription, RpcServer or
 * JournalReader iterates shmkit.aio's messages / requests / records
 * (waiting for ever).  One implementation: these only forward.
 */
#include "pyshmkit.h"

/* shmkit.aio.<fn>(self, *args, **kw). */
static PyObject *aio_forward(PyObject *self, const char *fn, PyObject *args, PyObject *kw)
{
	PyObject *mod = PyImport_ImportModule("shmkit.aio"), *f, *all, *r = NULL;
	Py_ssize_t n = args ? PyTuple_GET_SIZE(args) : 0;

	if (!mod)
		return NULL;
	f = PyObject_GetAttrString(mod, fn);
	Py_DECREF(mod);
	if (!f)
		return NULL;
	if ((all = PyTuple_New(n + 1))) {
		PyTuple_SET_ITEM(all, 0, Py_NewRef(self));
		for (Py_ssize_t i = 0; i < n; i++)
			PyTuple_SET_ITEM(all, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
		r = PyObject_Call(f, all, kw);
		Py_DECREF(all);
	}
	Py_DECREF(f);
	return r;
}

#define AIO_METHOD(cname, fn) \
	PyObject *cname(PyObject *self, PyObject *args, PyObject *kw) \
	{ \
		return aio_forward(self, fn, args, kw); \
	}

AIO_METHOD(sk_aio_recv, "recv")
AIO_METHOD(sk_aio_send, "send")
AIO_METHOD(sk_aio_call, "call")
AIO_METHOD(sk_aio_wait, "wait")
AIO_METHOD(sk_aio_request, "request")
AIO_METHOD(sk_aio_read, "read")
AIO_METHOD(sk_aio_publish, "publish")
AIO_METHOD(sk_aio_ec_wait, "ec_wait")
AIO_METHOD(sk_aio_sem_wait, "sem_wait")
AIO_METHOD(sk_aio_mutex_lock, "mutex_lock")

static PyObject *aiter_messages(PyObject *self)
{
	return aio_forward(self, "messages", NULL, NULL);
}

static PyObject *aiter_requests(PyObject *self)
{
	return aio_forward(self, "requests", NULL, NULL);
}

static PyObject *aiter_records(PyObject *self)
{
	return aio_forward(self, "records", NULL, NULL);
}

static PyAsyncMethods aio_messages = {.am_aiter = aiter_messages};
static PyAsyncMethods aio_requests = {.am_aiter = aiter_requests};
static PyAsyncMethods aio_records = {.am_aiter = aiter_records};

void sk_py_init_aio(void)
{
	SkChannel_Type.tp_as_async = &aio_messages;
	SkSubscription_Type.tp_as_async = &aio_messages;
	SkRpcServer_Type.tp_as_async = &aio_requests;
	SkJournalReader_Type.tp_as_async = &aio_records;
}
