/*
 * journal.c - shmkit.Journal (the writer) and shmkit.JournalReader: a
 * durable append-only log.  Records are read as copies (shmkit.Record:
 * seq, time_ns, data): the library's record pointer is valid only until
 * the next read, which suits no iterator.  Module functions verify and
 * repair a journal by path (shmkit.JournalReport) and remove it.
 */
#include "pyshmkit.h"

#include <errno.h>

typedef struct {
	SkHandle h;
	shmkit_journal *j;
} SkJournal;

#define JN(self) ((SkJournal *)(self))

static PyStructSequence_Field record_fields[] = {
	{"seq", "sequence number (1, 2, ...)"},
	{"time_ns", "CLOCK_REALTIME at append"},
	{"data", "the record's bytes (a copy)"},
	{NULL, NULL},
};

static PyStructSequence_Desc record_desc = {
	"shmkit.Record", "One journal record.", record_fields, 3,
};

PyTypeObject SkRecord_Type;

static PyStructSequence_Field report_fields[] = {
	{"clean", "True: no damage (verify; repair: always, once done)"},
	{"valid_records", "intact records (holes not counted)"},
	{"last_valid_seq", "seq of the last of them"},
	{"damaged_bytes", "bytes damaged (garbage tails, holes, bad headers, dropped files)"},
	{"where", "file and offset of the first damage ('' if none)"},
	{"meta_rebuilt_from", "repair: the data file journal.meta was rebuilt from, or ''"},
	{"dropped_records", "seqs repair drops (verify) or dropped (repair)"},
	{"dropped_first_seq", "the lowest of them (0 if none)"},
	{"dropped_last_seq", "the highest of them (0 if none)"},
	{"dropped_ranges", "runs of consecutive dropped seqs"},
	{"dropped", "the runs as text, e.g. '4 9-12'"},
	{"holes", "holes an earlier repair left (not damage)"},
	{"hole_records", "seqs those holes stand for"},
	{NULL, NULL},
};

static PyStructSequence_Desc report_desc = {
	"shmkit.JournalReport", "What journal_verify found or journal_repair did.",
	report_fields, 13,
};

static PyTypeObject SkReport_Type;

int sk_py_init_record(PyObject *m);
int sk_py_init_record(PyObject *m)
{
	if (PyStructSequence_InitType2(&SkRecord_Type, &record_desc) < 0 ||
	    PyStructSequence_InitType2(&SkReport_Type, &report_desc) < 0 ||
	    PyModule_AddObjectRef(m, "JournalReport", (PyObject *)&SkReport_Type) < 0)
		return -1;
	return PyModule_AddObjectRef(m, "Record", (PyObject *)&SkRecord_Type);
}

static PyObject *journal_make(PyTypeObject *type, PyObject *args, PyObject *kw, int write)
{
	static char *kw_reader[] = {"path", NULL};
	static char *kwl[] = {"path", "create", "durability", "group_records", "group_ms",
	                      "file_size", "max_record", "keep_files", "keep_bytes", "mode",
	                      "any_owner", NULL};
	const char *path;
	int create = 0, dur = 0, any = 0, rc;
	unsigned grec = 0, gms = 0, maxrec = 0, keep = 0, mode = 0;
	Py_ssize_t fsize = 0;
	unsigned long long keep_bytes = 0;
	shmkit_journal *j;
	SkJournal *o;

	if (!PyArg_ParseTupleAndKeywords(args, kw, write ? "s|$piIInIIKIp" : "s:open",
	                                 write ? kwl : kw_reader, &path,
	                                 &create, &dur, &grec, &gms, &fsize, &maxrec, &keep,
	                                 &keep_bytes, &mode, &any))
		return NULL;
	struct shmkit_journal_opts opts = {.durability = dur, .group_records = grec,
		.group_ms = gms, .file_size = (size_t)fsize, .max_record = maxrec,
		.keep_files = keep, .keep_bytes = keep_bytes, .mode = mode,
		.flags = write ? SHMKIT_JOURNAL_WRITE | (create ? SHMKIT_JOURNAL_CREATE : 0) |
		                 (any ? SHMKIT_JOURNAL_ANY_OWNER : 0) : 0};
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_journal_open(&j, path, write ? &opts : NULL);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, path);
	if (!(o = (SkJournal *)type->tp_alloc(type, 0))) {
		shmkit_journal_close(j);
		return NULL;
	}
	o->j = j;
	return (PyObject *)o;
}

static PyObject *writer_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	return journal_make((PyTypeObject *)cls, args, kw, 1);
}

static PyObject *reader_open(PyObject *cls, PyObject *args, PyObject *kw)
{
	return journal_make((PyTypeObject *)cls, args, kw, 0);
}

static PyObject *journal_close(PyObject *self, PyObject *unused)
{
	int rc;

	if (JN(self)->h.closed)
		Py_RETURN_NONE;
	if (sk_py_enter(&JN(self)->h) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_journal_close(JN(self)->j);  /* always frees the handle */
	Py_END_ALLOW_THREADS
	JN(self)->j = NULL;
	JN(self)->h.closed = 1;
	sk_py_leave(&JN(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static void journal_dealloc(PyObject *self)
{
	if (JN(self)->j)
		shmkit_journal_close(JN(self)->j);
	Py_TYPE(self)->tp_free(self);
}

struct jn_op {
	shmkit_journal *j;
	const void *in;
	size_t len;
	uint64_t seq;
	int64_t time_ns;
	struct shmkit_record rec;
};

static long long op_append_at(void *p, int64_t t)
{
	struct jn_op *o = p;
	return shmkit_journal_append_at(o->j, o->seq, o->time_ns, o->in, o->len);
}

static long long op_append(void *p, int64_t t)
{
	struct jn_op *o = p;
	return shmkit_journal_append(o->j, o->in, o->len, &o->seq);
}

static long long op_next(void *p, int64_t t)
{
	struct jn_op *o = p;
	int r = shmkit_journal_next(o->j, &o->rec, t);
	return r == -EAGAIN ? 0 : r; /* the end, with timeout 0: read() gives None */
}

static PyObject *journal_append(PyObject *self, PyObject *arg)
{
	Py_buffer b;
	long long rc;

	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	struct jn_op o = {.j = JN(self)->j, .in = b.buf, .len = (size_t)b.len};
	rc = sk_py_run_ns(&JN(self)->h, op_append, &o, 0);  /* may sync: no GIL */
	PyBuffer_Release(&b);
	return rc < 0 ? NULL : PyLong_FromUnsignedLongLong(o.seq);
}

/* append_at(seq, time_ns, data): a replica's record, with the leader's
 * seq and stamp (a jump leaves a hole). */
static PyObject *journal_append_at(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"seq", "time_ns", "data", NULL};
	unsigned long long seq;
	long long tns;
	Py_buffer b;
	long long rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "KLy*:append_at", kwl, &seq, &tns, &b))
		return NULL;
	struct jn_op o = {.j = JN(self)->j, .in = b.buf, .len = (size_t)b.len, .seq = seq,
		.time_ns = tns};
	rc = sk_py_run_ns(&JN(self)->h, op_append_at, &o, 0);  /* may sync: no GIL */
	PyBuffer_Release(&b);
	if (rc < 0)
		return NULL;
	Py_RETURN_NONE;
}

static int call_copy_of(void *p)
{
	struct jn_op *o = p;
	return shmkit_journal_set_copy_of(o->j, o->seq);
}

static PyObject *journal_set_copy_of(PyObject *self, PyObject *arg)
{
	struct jn_op o = {.j = JN(self)->j, .seq = PyLong_AsUnsignedLongLong(arg)};

	if (o.seq == (uint64_t)-1 && PyErr_Occurred())
		return NULL;
	return sk_py_call(&JN(self)->h, call_copy_of, &o, 1);
}

static long long op_sync(void *p, int64_t t)
{
	return shmkit_journal_sync(p);
}

static PyObject *journal_sync(PyObject *self, PyObject *unused)
{
	if (sk_py_run_ns(&JN(self)->h, op_sync, JN(self)->j, 0) < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* read(timeout=0): the next Record; None at the end when timeout is 0,
 * TimeoutError when a wait for one ran out. */
static PyObject *reader_read(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"timeout", NULL};
	int64_t tns = 0;
	long long rc;
	PyObject *rec, *data;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O&:read", kwl, sk_py_timeout_conv, &tns))
		return NULL;
	struct jn_op o = {.j = JN(self)->j};
	if ((rc = sk_py_run_ns(&JN(self)->h, op_next, &o, tns)) < 0)
		return NULL;
	if (rc == 0) {
		if (tns != 0)
			return sk_py_error(-ETIMEDOUT, NULL);
		Py_RETURN_NONE;
	}
	if (!(rec = PyStructSequence_New(&SkRecord_Type)))
		return NULL;
	if (!(data = PyBytes_FromStringAndSize(o.rec.data, o.rec.len))) {
		Py_DECREF(rec);
		return NULL;
	}
	PyStructSequence_SetItem(rec, 0, PyLong_FromUnsignedLongLong(o.rec.seq));
	PyStructSequence_SetItem(rec, 1, PyLong_FromLongLong(o.rec.time_ns));
	PyStructSequence_SetItem(rec, 2, data);
	if (!PyStructSequence_GetItem(rec, 0) || !PyStructSequence_GetItem(rec, 1)) {
		Py_DECREF(rec);
		return NULL;
	}
	return rec;
}

static PyObject *reader_iternext(PyObject *self)
{
	PyObject *empty = PyTuple_New(0), *r;

	if (!empty)
		return NULL;
	r = reader_read(self, empty, NULL);
	Py_DECREF(empty);
	if (r == Py_None) {
		Py_DECREF(r);
		return NULL;  /* the end */
	}
	return r;
}

static PyObject *reader_follow(PyObject *self, PyObject *args, PyObject *kw)
{
	return sk_py_iter_method(self, "read", args, kw);
}

/* tail(follow=False, timeout=None): the records from the reader's
 * position; follow waits for new ones (a wait of timeout ends it). */
static PyObject *reader_tail(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"follow", "timeout", NULL};
	int follow = 0;
	PyObject *timeout = Py_None, *zero, *it;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|p$O:tail", kwl, &follow, &timeout))
		return NULL;
	if (follow)
		return sk_py_iter_new(self, "read", timeout);
	if (!(zero = PyLong_FromLong(0)))
		return NULL;
	it = sk_py_iter_new(self, "read", zero);  /* read(0): None at the end */
	Py_DECREF(zero);
	return it;
}

static PyObject *reader_seek(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwl[] = {"seq", "time_ns", NULL};
	PyObject *seq = Py_None, *t = Py_None;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$O:seek", kwl, &seq, &t))
		return NULL;
	if ((seq == Py_None) == (t == Py_None)) {
		PyErr_SetString(PyExc_TypeError, "seek takes seq or time_ns");
		return NULL;
	}
	unsigned long long s = seq != Py_None ? PyLong_AsUnsignedLongLong(seq) : 0;
	long long tn = t != Py_None ? PyLong_AsLongLong(t) : 0;
	if (PyErr_Occurred() || sk_py_enter(&JN(self)->h) < 0)
		return NULL;
	rc = seq != Py_None ? shmkit_journal_seek_seq(JN(self)->j, s)
	                    : shmkit_journal_seek_time(JN(self)->j, tn);
	sk_py_leave(&JN(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	Py_RETURN_NONE;
}

static int call_fd(void *j)
{
	return shmkit_journal_fd(j);
}

static int call_ack(void *j)
{
	return shmkit_journal_ack_fd(j);
}

static PyObject *reader_fileno(PyObject *self, PyObject *unused)
{
	return sk_py_call(&JN(self)->h, call_fd, JN(self)->j, 0);
}

static PyObject *reader_ack(PyObject *self, PyObject *unused)
{
	return sk_py_call(&JN(self)->h, call_ack, JN(self)->j, 1);
}

static PyObject *journal_stat(PyObject *self, PyObject *unused)
{
	struct shmkit_journal_stats st;
	int rc;

	if (sk_py_enter(&JN(self)->h) < 0)
		return NULL;
	rc = shmkit_journal_stats(JN(self)->j, &st);
	sk_py_leave(&JN(self)->h);
	if (rc < 0)
		return sk_py_error(rc, NULL);
	return Py_BuildValue("{s:K,s:K,s:K,s:I,s:K,s:i,s:i,s:K,s:K}",
		"first_seq", (unsigned long long)st.first_seq,
		"last_seq", (unsigned long long)st.last_seq,
		"records", (unsigned long long)st.records, "files", st.files,
		"bytes", (unsigned long long)st.bytes, "durability", st.durability,
		"writer_pid", (int)st.writer_pid, "id", (unsigned long long)st.id,
		"copy_of", (unsigned long long)st.copy_of);
}

static PyObject *journal_remove(PyObject *cls, PyObject *arg)
{
	const char *path = PyUnicode_AsUTF8(arg);
	int rc;

	if (!path)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_journal_remove(path);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return sk_py_error(rc, path);
	Py_RETURN_NONE;
}

/* ---- by path: verify, repair, remove ---- */

static PyObject *report_new(const struct shmkit_journal_report *r, int clean)
{
	PyObject *o, *v = Py_BuildValue("(NKKKNNKKKINIK)", PyBool_FromLong(clean),
		(unsigned long long)r->valid_records, (unsigned long long)r->last_valid_seq,
		(unsigned long long)r->damaged_bytes, PyUnicode_DecodeFSDefault(r->where),
		PyUnicode_DecodeFSDefault(r->meta_rebuilt_from),
		(unsigned long long)r->dropped_records, (unsigned long long)r->dropped_first_seq,
		(unsigned long long)r->dropped_last_seq, r->dropped_ranges,
		PyUnicode_FromString(r->dropped), r->holes, (unsigned long long)r->hole_records);

	if (!v || !(o = PyStructSequence_New(&SkReport_Type))) {
		Py_XDECREF(v);
		return NULL;
	}
	for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++)
		PyStructSequence_SetItem(o, i, Py_NewRef(PyTuple_GET_ITEM(v, i)));
	Py_DECREF(v);
	return o;
}

/* verify (repair 0) or repair a journal by path: its report.  verify's
 * -EBADMSG is a report with clean False, not an exception. */
static PyObject *journal_check(PyObject *arg, int repair)
{
	PyObject *bytes, *o;
	struct shmkit_journal_report r = {0};
	const char *path;
	int rc;

	if (!PyUnicode_FSConverter(arg, &bytes))
		return NULL;
	path = PyBytes_AS_STRING(bytes);
	Py_BEGIN_ALLOW_THREADS
	rc = repair ? shmkit_journal_repair(path, &r) : shmkit_journal_verify(path, &r);
	Py_END_ALLOW_THREADS
	if (rc == 0 || (rc == -EBADMSG && !repair))
		o = report_new(&r, rc == 0);
	else
		o = sk_py_error(rc, path);
	Py_DECREF(bytes);
	return o;
}

static PyObject *py_journal_verify(PyObject *m, PyObject *arg)
{
	return journal_check(arg, 0);
}

static PyObject *py_journal_repair(PyObject *m, PyObject *arg)
{
	return journal_check(arg, 1);
}

PyMethodDef sk_journal_functions[] = {
	{"journal_verify", py_journal_verify, METH_O,
	 "journal_verify(path) -> JournalReport (.clean False when damaged); changes nothing"},
	{"journal_repair", py_journal_repair, METH_O,
	 "journal_repair(path) -> JournalReport of what was dropped; keeps every intact\n"
	 "record (OSError EBUSY while a writer lives)"},
	{"journal_remove", journal_remove, METH_O,
	 "journal_remove(path): the whole journal (OSError EBUSY while a writer lives)"},
	{NULL, NULL, 0, NULL},
};

static PyObject *get_closed(PyObject *self, void *c)
{
	return PyBool_FromLong(((SkHandle *)self)->closed);
}

static PyGetSetDef journal_getset[] = {
	{"closed", get_closed, NULL, "True once close() ran", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef writer_methods[] = {
	{"open", KWFN(writer_open) | METH_CLASS,
	 "open(path, *, create=False, durability=DUR_NONE, group_records=64, group_ms=10,\n"
	 "     file_size=64M, max_record=1M, keep_files=0, keep_bytes=0, mode=0o600,\n"
	 "     any_owner=False) -> Journal, the one writer (OSError EBUSY while another lives)"},
	{"append", journal_append, METH_O, "append(data) -> seq, as durable as the policy says"},
	{"append_at", KWFN(journal_append_at),
	 "append_at(seq, time_ns, data): a replica's record with the leader's seq and stamp;\n"
	 "a seq past the next leaves a hole (FileExistsError for one not past the last)"},
	{"set_copy_of", journal_set_copy_of, METH_O,
	 "set_copy_of(id): record once that this journal copies the journal of that id\n"
	 "(stat()['id'] of the leader; FileExistsError if it copies another)"},
	{"sync", journal_sync, METH_NOARGS, "make every appended record durable now"},
	{"stat", journal_stat, METH_NOARGS, "files, bytes, records, as a dict"},
	{"remove", journal_remove, METH_O | METH_STATIC, "remove(path): the whole journal"},
	{"close", journal_close, METH_NOARGS, "sync what is pending, release the writer lock"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkJournal_Type, "shmkit.Journal",
	"The writer of a durable append-only log (a directory of mapped files).",
	SkJournal, journal_dealloc, NULL, NULL, writer_methods, NULL, journal_getset);

static PyMethodDef reader_methods[] = {
	{"open", KWFN(reader_open) | METH_CLASS,
	 "open(path) -> JournalReader at the oldest record"},
	{"read", KWFN(reader_read),
	 "read(timeout=0) -> Record, None at the end (timeout 0); waits for new records\n"
	 "otherwise (TimeoutError)"},
	{"follow", KWFN(reader_follow),
	 "follow(timeout=None) -> iterator of records, waiting for new ones; ends when a\n"
	 "wait of timeout runs out (None: never)"},
	{"tail", KWFN(reader_tail),
	 "tail(follow=False, *, timeout=None) -> iterator of records from where the reader\n"
	 "stands: to the end, or (follow) waiting for new ones until a wait of timeout runs\n"
	 "out (None: never)"},
	{"seek", KWFN(reader_seek),
	 "seek(seq) or seek(time_ns=T): the next read returns the first record at or after"},
	{"fileno", reader_fileno, METH_NOARGS,
	 "fd readable when new records may be there (ack() it, then read until None)"},
	{"ack", reader_ack, METH_NOARGS, "re-arm the fd after it signalled"},
	{"read_async", KWFN(sk_aio_read),
	 "read_async(timeout=None) -> coroutine of the next Record, waiting for the writer\n"
	 "(shmkit.aio.read); `async for rec in reader` follows it"},
	{"stat", journal_stat, METH_NOARGS, "files, bytes, records, as a dict"},
	{"close", journal_close, METH_NOARGS, "close"},
	SK_CONTEXT_METHODS,
	{NULL, NULL, 0, NULL},
};

SK_HANDLE_TYPE(SkJournalReader_Type, "shmkit.JournalReader",
	"A reader of a journal; iterating reads to the end (follow() waits).",
	SkJournal, journal_dealloc, PyObject_SelfIter, reader_iternext, reader_methods, NULL,
	journal_getset);
