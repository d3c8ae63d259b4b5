/*
 * _hotpath: the per-page loops of zswap's batch store, compiled.
 *
 * hwzswap.frontswap.zswap.ZswapCache.store_batch and SwapSystem.swap_out_batch spend most of
 * their Python time in three loops that run once per page of a reclaim batch: finding the
 * same-filled pages, checking and claiming the batch's swap slots, and inserting the compressed
 * objects into the pool and the index under the tree lock. Each is written here as one C call.
 * The algorithm stays in Python: every function below has a Python twin of the same name with a
 * "_py" suffix in hwzswap/frontswap/_hotpath_py.py, which is the readable reference (and the
 * model the tests compare these against, case by case).
 *
 * Nothing here keeps state or touches another module's insides: the pool is reached through
 * its malloc_write method, the index (an OrderedDict) through the mapping protocol, the
 * counters through attributes of the cache object. Every function runs under the GIL and
 * releases it only inside the Python calls it makes.
 *
 * Written for hwzswap.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SIZE 4096
#define WORDS (PAGE_SIZE / 8)

static PyObject *PoolAllocError = NULL;  /* hwzswap.errors.PoolAllocError */
static PyObject *str_malloc_write, *str_drop_old, *str_csums, *str_zswpout;

/* -- same_filled_pages ---------------------------------------------------------------------- */

static int
page_is_same_filled(const unsigned char *pg)
{
    uint64_t w, x;
    memcpy(&w, pg, 8);
    memcpy(&x, pg + PAGE_SIZE - 8, 8);  /* the last word first: rules out most pages at once */
    if (x != w)
        return 0;
    for (int k = 1; k < WORDS - 1; k++) {
        memcpy(&x, pg + 8 * k, 8);
        if (x != w)
            return 0;
    }
    return 1;
}

static PyObject *
same_filled_pages(PyObject *mod, PyObject *arg)
{
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    if (b.len % PAGE_SIZE != 0) {
        PyErr_Format(PyExc_ValueError,
                     "same_filled_pages: a buffer of whole pages is needed, got %zd bytes",
                     b.len);
        PyBuffer_Release(&b);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto done;
    const unsigned char *base = (const unsigned char *)b.buf;
    for (Py_ssize_t i = 0; i < b.len / PAGE_SIZE; i++) {
        const unsigned char *pg = base + i * PAGE_SIZE;
        if (!page_is_same_filled(pg))
            continue;
        PyObject *item = Py_BuildValue("(ny#)", i, (const char *)pg, (Py_ssize_t)8);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(item);
    }
done:
    PyBuffer_Release(&b);
    return out;
}

/* -- claim_slots ---------------------------------------------------------------------------- */

static int
cmp_ssize(const void *a, const void *b)
{
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return (x > y) - (x < y);
}

/* claim_slots(smap, offsets, n) -> list[int] | None */
static PyObject *
claim_slots(PyObject *mod, PyObject *args)
{
    PyObject *smap, *offsets;
    Py_ssize_t want;
    if (!PyArg_ParseTuple(args, "YOn:claim_slots", &smap, &offsets, &want))
        return NULL;
    /* a list, tuple or range only: any other iterable could be consumed here */
    if (!PyList_Check(offsets) && !PyTuple_Check(offsets) && !PyRange_Check(offsets))
        Py_RETURN_NONE;
    Py_ssize_t len = PyObject_Length(offsets);  /* before a range is made into a list */
    if (len != want) {
        PyErr_Clear();  /* a range too long for a Py_ssize_t */
        Py_RETURN_NONE;
    }
    PyObject *seq = PySequence_Fast(offsets, "claim_slots: offsets must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != want) {
        Py_DECREF(seq);
        Py_RETURN_NONE;
    }
    Py_ssize_t nr = PyByteArray_GET_SIZE(smap);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = NULL;
    Py_ssize_t *sorted = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n > 0 ? n : 1));
    if (sorted == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = items[k];
        if (!PyLong_CheckExact(o))
            goto decline;  /* numpy integers and the like: the Python path converts them */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || v < 0 || v >= nr)
            goto decline;
        sorted[k] = (Py_ssize_t)v;
    }
    qsort(sorted, (size_t)n, sizeof(Py_ssize_t), cmp_ssize);
    for (Py_ssize_t k = 1; k < n; k++)
        if (sorted[k] == sorted[k - 1])
            goto decline;
    out = PyList_New(n);
    if (out == NULL)
        goto finish;
    char *map = PyByteArray_AS_STRING(smap);
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_INCREF(items[k]);
        PyList_SET_ITEM(out, k, items[k]);
        map[PyLong_AsSsize_t(items[k])] = 1;
    }
    goto finish;
decline:
    out = Py_None;
    Py_INCREF(out);
finish:
    PyMem_Free(sorted);
    Py_DECREF(seq);
    return out;
}

/* -- insert_objects ------------------------------------------------------------------------- */

/* Add `stored` to cache.zswpout, keeping any exception that is being raised. */
static int
count_stored(PyObject *cache, Py_ssize_t stored)
{
    if (stored == 0)
        return 0;
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    int rc = -1;
    PyObject *cur = PyObject_GetAttr(cache, str_zswpout);
    if (cur != NULL) {
        PyObject *add = PyLong_FromSsize_t(stored);
        PyObject *sum = add != NULL ? PyNumber_Add(cur, add) : NULL;
        if (sum != NULL)
            rc = PyObject_SetAttr(cache, str_zswpout, sum);
        Py_XDECREF(sum);
        Py_XDECREF(add);
        Py_DECREF(cur);
    }
    if (et != NULL) {
        if (rc < 0)
            PyErr_Clear();  /* the first error wins */
        PyErr_Restore(et, ev, tb);
        return -1;
    }
    return rc;
}

/* One object of the batch (position k): the loop body of insert_objects_py. 0 ok, -1 error. */
static int
insert_one(PyObject *cache, PyObject *tree, PyObject *malloc_write, PyObject *csums,
           PyObject *offs, PyObject *i, PyObject *data, PyObject *sum, Py_ssize_t max_len,
           PyObject *results, PyObject *poor, PyObject *retry, Py_ssize_t *stored)
{
    Py_ssize_t len = 0;
    if (data != Py_None && (len = PyObject_Length(data)) < 0)
        return -1;
    if (data == Py_None || len > max_len)
        return PyList_Append(poor, i);
    PyObject *handle = PyObject_CallOneArg(malloc_write, data);
    if (handle == NULL) {
        if (!PyErr_ExceptionMatches(PoolAllocError))
            return -1;
        PyErr_Clear();
        PyObject *pair = PyTuple_Pack(2, i, data);
        int rc = pair == NULL ? -1 : PyList_Append(retry, pair);
        Py_XDECREF(pair);
        return rc;
    }
    int rc = -1;
    PyObject *off = PyObject_GetItem(offs, i);
    if (off == NULL)
        goto out;
    int has = PySequence_Contains(tree, off);
    if (has < 0)
        goto out;
    if (has) {
        PyObject *r = PyObject_CallMethodObjArgs(cache, str_drop_old, tree, off, NULL);
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    if (PyObject_SetItem(tree, off, handle) < 0)
        goto out;
    if (csums != Py_None && PyObject_SetItem(csums, handle, sum) < 0)
        goto out;
    if (PyObject_SetItem(results, i, Py_True) < 0)
        goto out;
    (*stored)++;
    rc = 0;
out:
    Py_XDECREF(off);
    Py_DECREF(handle);
    return rc;
}

/* insert_objects(cache, tree, offs, idx, outs, sums, max_len, results, poor, retry) -> None */
static PyObject *
insert_objects(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "insert_objects takes 10 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *cache = args[0], *tree = args[1], *offs = args[2], *idx = args[3];
    PyObject *outs = args[4], *sums = args[5], *results = args[7], *poor = args[8];
    PyObject *retry = args[9];
    Py_ssize_t max_len = PyLong_AsSsize_t(args[6]);
    if (max_len == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(idx) || !PyList_Check(outs) || !PyList_Check(poor)
        || !PyList_Check(retry) || (sums != Py_None && !PyList_Check(sums))) {
        PyErr_SetString(PyExc_TypeError,
                        "insert_objects: idx, outs, poor, retry (and sums, unless None) must be "
                        "lists");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(idx);
    if (PyList_GET_SIZE(outs) != n || (sums != Py_None && PyList_GET_SIZE(sums) != n)) {
        PyErr_SetString(PyExc_ValueError, "insert_objects: idx, outs (and sums) differ in length");
        return NULL;
    }
    PyObject *malloc_write = PyObject_GetAttr(cache, str_malloc_write);
    if (malloc_write == NULL)
        return NULL;
    PyObject *csums = PyObject_GetAttr(cache, str_csums);
    if (csums == NULL) {
        Py_DECREF(malloc_write);
        return NULL;
    }
    Py_ssize_t stored = 0;
    int rc = 0;
    for (Py_ssize_t k = 0; k < n && rc == 0; k++) {
        if (k >= PyList_GET_SIZE(idx) || k >= PyList_GET_SIZE(outs)
            || (sums != Py_None && k >= PyList_GET_SIZE(sums))) {
            PyErr_SetString(PyExc_RuntimeError, "insert_objects: a list changed size");
            rc = -1;
            break;
        }
        /* hold the items: the calls made for them run Python code */
        PyObject *i = PyList_GET_ITEM(idx, k), *data = PyList_GET_ITEM(outs, k);
        PyObject *sum = sums == Py_None ? Py_None : PyList_GET_ITEM(sums, k);
        Py_INCREF(i);
        Py_INCREF(data);
        Py_INCREF(sum);
        rc = insert_one(cache, tree, malloc_write, csums, offs, i, data, sum, max_len, results,
                        poor, retry, &stored);
        Py_DECREF(i);
        Py_DECREF(data);
        Py_DECREF(sum);
    }
    Py_DECREF(malloc_write);
    Py_DECREF(csums);
    if (count_stored(cache, stored) < 0 || rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- module --------------------------------------------------------------------------------- */

static PyMethodDef hotpath_methods[] = {
    {"same_filled_pages", same_filled_pages, METH_O,
     "same_filled_pages(buf) -> list[(index, word)]: the same-filled pages of a buffer of "
     "whole pages, each with its repeated 8-byte word."},
    {"claim_slots", claim_slots, METH_VARARGS,
     "claim_slots(smap, offsets, n) -> list[int] | None: mark a batch's slots in use in the "
     "swap map when offsets is a list, tuple or range of n distinct ints in range; None "
     "(nothing marked) otherwise."},
    {"insert_objects", (PyCFunction)(void (*)(void))insert_objects, METH_FASTCALL,
     "insert_objects(cache, tree, offs, idx, outs, sums, max_len, results, poor, retry): the "
     "store_batch critical section's loop (see _hotpath_py.insert_objects_py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT, "hwzswap.frontswap._hotpath",
    "The per-page loops of zswap's batch store, compiled (see _hotpath_py for the reference).",
    -1, hotpath_methods,
};

#define INTERN(var, text)                                                                    \
    do {                                                                                     \
        if ((var) == NULL && ((var) = PyUnicode_InternFromString(text)) == NULL)             \
            return NULL;                                                                     \
    } while (0)

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    INTERN(str_malloc_write, "_malloc_write");
    INTERN(str_drop_old, "_drop_old_locked");
    INTERN(str_csums, "_csums");
    INTERN(str_zswpout, "zswpout");
    if (PoolAllocError == NULL) {
        PyObject *errors = PyImport_ImportModule("hwzswap.errors");
        if (errors == NULL)
            return NULL;
        PoolAllocError = PyObject_GetAttrString(errors, "PoolAllocError");
        Py_DECREF(errors);
        if (PoolAllocError == NULL)
            return NULL;
    }
    return PyModule_Create(&hotpath_module);
}
