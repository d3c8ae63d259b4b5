/*
 * _hotpath: zswap's self-contained structures and scans, compiled.
 *
 * Three pieces, each a data structure or a loop that knows nothing of zswap (no attribute of
 * any other object is read, no Python code of the package is called):
 *
 *  - ZswapTree: one swap type's index and LRU (an array slot per offset, as the kernel's
 *    xarray, plus the LRU list), a mapping with the OrderedDict semantics the engine uses;
 *  - same_filled_pages: the same-filled pages of a buffer of whole pages (a reclaim batch);
 *  - claim_slots: a batch's swap slots checked and marked in use in the swap map.
 *
 * Each has a Python twin of the same name with a "Py"/"_py" suffix in
 * hwzswap/frontswap/_hotpath_py.py, the readable reference that behaves the same (the tests
 * drive both on the same cases; HWZSWAP_IMPL=py runs the engine on the references, through
 * hwzswap.frontswap.kernels). Everything runs under the GIL. Python code can run where an
 * object is made or dropped (the GC's finalisers, __index__ of a key): no pointer into the
 * structure and no count is trusted across such a point.
 *
 * Written for hwzswap.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SIZE 4096
#define WORDS (PAGE_SIZE / 8)

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
    /* strides asked for, so that a non-contiguous buffer (a strided memoryview, a numpy
     * slice) is the same ValueError as in same_filled_pages_py, not an exporter's BufferError */
    if (PyObject_GetBuffer(arg, &b, PyBUF_FULL_RO) < 0)
        return NULL;
    if (!PyBuffer_IsContiguous(&b, 'C')) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "same_filled_pages: the buffer is not C-contiguous");
        return NULL;
    }
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

/* tuple(o), safe when o is a list that a finaliser run by the GC may change meanwhile: CPython
 * copies an exact list into a new tuple from its item array as it was before allocating the
 * tuple (which can run the GC), so a list is first copied with list(), which reads the items
 * after its only object allocation, into a list no other code can reach. New reference. */
static PyObject *
owned_tuple(PyObject *o)
{
    if (!PyList_CheckExact(o))
        return PySequence_Tuple(o);
    PyObject *copy = PySequence_List(o);
    if (copy == NULL)
        return NULL;
    PyObject *t = PyList_AsTuple(copy);
    Py_DECREF(copy);
    return t;
}

/* claim_slots(smap, offsets, n) -> (list[int], bytes) | None: the offsets and the slots'
 * states before the claim (one byte each, for the caller's rollback). The arguments as
 * claim_slots_py takes them: the map a bytearray and n an integer (else TypeError); any other
 * batch is declined (None, the map untouched), n out of 0..len(smap) and a range longer than
 * a Py_ssize_t included. Python code can run inside (the GC's finalisers, when the results are
 * made): so the swap map is held exported (it cannot be resized meanwhile), the offsets are
 * read from a tuple copy, and every result object exists before the map is read and marked. */
static PyObject *
claim_slots(PyObject *mod, PyObject *args)
{
    PyObject *smap, *offsets, *nobj;
    if (!PyArg_ParseTuple(args, "YOO:claim_slots", &smap, &offsets, &nobj))
        return NULL;
    PyObject *ni = PyNumber_Index(nobj);  /* a TypeError for a float n, as operator.index */
    if (ni == NULL)
        return NULL;
    int n_overflow;
    long long n_value = PyLong_AsLongLongAndOverflow(ni, &n_overflow);
    Py_DECREF(ni);
    if (n_value == -1 && PyErr_Occurred())
        return NULL;
    /* a list, tuple or range only: any other iterable could be consumed here */
    if (!PyList_CheckExact(offsets) && !PyTuple_CheckExact(offsets) && !PyRange_Check(offsets))
        Py_RETURN_NONE;
    /* n distinct offsets in 0..len(smap) - 1 are at most len(smap): no copy of a huge range */
    if (n_overflow || n_value < 0 || n_value > PyByteArray_GET_SIZE(smap))
        Py_RETURN_NONE;
    Py_ssize_t want = (Py_ssize_t)n_value;
    Py_ssize_t len = PyObject_Length(offsets);  /* before a range is made into a tuple */
    if (len < 0) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();  /* a range too long for a Py_ssize_t */
        Py_RETURN_NONE;
    }
    if (len != want)
        Py_RETURN_NONE;
    Py_buffer mb;
    if (PyObject_GetBuffer(smap, &mb, PyBUF_WRITABLE) < 0)
        return NULL;
    PyObject *seq = owned_tuple(offsets);
    if (seq == NULL) {
        PyBuffer_Release(&mb);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject *out = NULL;
    Py_ssize_t *sorted = NULL;
    if (n != want)
        goto decline;
    Py_ssize_t nr = mb.len;
    sorted = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n > 0 ? n : 1));
    if (sorted == NULL) {
        PyErr_NoMemory();
        goto finish;
    }
    Py_ssize_t lo = nr, hi = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = PyTuple_GET_ITEM(seq, k);
        if (!PyLong_CheckExact(o))
            goto decline;  /* numpy integers and the like: the Python path converts them */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || v < 0 || v >= nr)
            goto decline;
        sorted[k] = (Py_ssize_t)v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* distinct? a bitmap when the offsets span a few thousand slots (a reclaim batch), else
     * sort a copy */
    if (n > 1 && hi - lo < 4096) {
        uint64_t bits[64] = {0};
        for (Py_ssize_t k = 0; k < n; k++) {
            Py_ssize_t b = sorted[k] - lo;
            if (bits[b >> 6] & ((uint64_t)1 << (b & 63)))
                goto decline;
            bits[b >> 6] |= (uint64_t)1 << (b & 63);
        }
    }
    else if (n > 1) {
        qsort(sorted, (size_t)n, sizeof(Py_ssize_t), cmp_ssize);
        for (Py_ssize_t k = 1; k < n; k++)
            if (sorted[k] == sorted[k - 1])
                goto decline;
    }
    PyObject *offs = PyList_New(n), *before = PyBytes_FromStringAndSize(NULL, n);
    out = offs == NULL || before == NULL ? NULL : PyTuple_New(2);
    if (out == NULL) {
        Py_XDECREF(offs);
        Py_XDECREF(before);
        goto finish;
    }
    char *map = mb.buf, *was = PyBytes_AS_STRING(before);
    for (Py_ssize_t k = 0; k < n; k++) {  /* no Python code runs from here on */
        PyObject *o = PyTuple_GET_ITEM(seq, k);
        Py_INCREF(o);
        PyList_SET_ITEM(offs, k, o);
        Py_ssize_t off = PyLong_AsSsize_t(o);  /* checked in range above; the map kept its size */
        was[k] = map[off];
        map[off] = 1;
    }
    PyTuple_SET_ITEM(out, 0, offs);
    PyTuple_SET_ITEM(out, 1, before);
    goto finish;
decline:
    out = Py_None;
    Py_INCREF(out);
finish:
    PyMem_Free(sorted);
    Py_DECREF(seq);
    PyBuffer_Release(&mb);
    return out;
}

/* -- ZswapTree ------------------------------------------------------------------------------- */

/* The index of one swap type (the kernel's per-type zswap tree, an xarray keyed by swap offset)
 * with the LRU order of its entries: offset -> entry (a pool handle, or the word of a
 * same-filled page), oldest stored first. A mapping with the OrderedDict methods the engine
 * uses (get, pop, move_to_end, iteration oldest first, ...) and the same semantics; its Python
 * reference is _hotpath_py.ZswapTreePy, an OrderedDict. Keys are the type's offsets,
 * 0..nr_pages - 1: an array slot each, in chunks of 64 made on first use, so a lookup is an
 * index, not a hash probe. A key that is not an offset is simply absent (get gives the
 * default), and storing at one raises. */

#define CHUNK 64
/* the largest nr_pages: hwzswap.config's limit on swap.nr_pages (2**30 pages, 4 TiB of swap),
 * as _hotpath_py.MAX_NR_PAGES */
#define MAX_NR_PAGES ((Py_ssize_t)1 << 30)
#define NONE (-1)

typedef struct {
    PyObject *entry[CHUNK];             /* NULL: no entry */
    Py_ssize_t prev[CHUNK], next[CHUNK];  /* LRU neighbours (offsets), NONE at the ends */
} Chunk;

typedef struct {
    PyObject_HEAD
    PyObject *type;                     /* the swap type, as given */
    Py_ssize_t nr_pages, count, head, tail;
    Py_ssize_t nchunks;
    Chunk **chunks;
    size_t mutations;                   /* bumped by every insert, removal and move (iterators) */
} ZswapTree;

static PyTypeObject ZswapTreeType;

#define SLOT_ENTRY(t, o) ((t)->chunks[(o) / CHUNK]->entry[(o) % CHUNK])
#define SLOT_PREV(t, o) ((t)->chunks[(o) / CHUNK]->prev[(o) % CHUNK])
#define SLOT_NEXT(t, o) ((t)->chunks[(o) / CHUNK]->next[(o) % CHUNK])

/* The offset a key names: 1 and *off set, 0 when it names none (not an integer, out of range),
 * -1 on an error other than a TypeError. */
static int
tree_key(ZswapTree *t, PyObject *key, Py_ssize_t *off)
{
    Py_ssize_t v;
    if (PyLong_CheckExact(key)) {
        v = PyLong_AsSsize_t(key);
    }
    else {
        PyObject *i = PyNumber_Index(key);  /* numpy integers and the like */
        if (i == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                return 0;
            }
            return -1;
        }
        v = PyLong_AsSsize_t(i);
        Py_DECREF(i);
    }
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (v < 0 || v >= t->nr_pages)
        return 0;
    *off = v;
    return 1;
}

/* The entry at an offset (borrowed), or NULL. */
static inline PyObject *
tree_lookup(ZswapTree *t, Py_ssize_t off)
{
    Chunk *c = t->chunks[off / CHUNK];
    return c == NULL ? NULL : c->entry[off % CHUNK];
}

static void
lru_unlink(ZswapTree *t, Py_ssize_t off)
{
    Py_ssize_t p = SLOT_PREV(t, off), n = SLOT_NEXT(t, off);
    if (p == NONE)
        t->head = n;
    else
        SLOT_NEXT(t, p) = n;
    if (n == NONE)
        t->tail = p;
    else
        SLOT_PREV(t, n) = p;
}

static void
lru_append(ZswapTree *t, Py_ssize_t off)
{
    SLOT_PREV(t, off) = t->tail;
    SLOT_NEXT(t, off) = NONE;
    if (t->tail == NONE)
        t->head = off;
    else
        SLOT_NEXT(t, t->tail) = off;
    t->tail = off;
}

/* Store value at off (a new reference is taken); a new entry goes to the LRU tail, a replaced
 * one keeps its place (as OrderedDict). 0 or -1 (MemoryError). */
static int
tree_store(ZswapTree *t, Py_ssize_t off, PyObject *value)
{
    Chunk *c = t->chunks[off / CHUNK];
    if (c == NULL) {
        c = PyMem_Calloc(1, sizeof(Chunk));
        if (c == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->chunks[off / CHUNK] = c;
    }
    PyObject *old = c->entry[off % CHUNK];
    Py_INCREF(value);
    c->entry[off % CHUNK] = value;
    if (old != NULL) {
        Py_DECREF(old);
        return 0;
    }
    lru_append(t, off);
    t->count++;
    t->mutations++;
    return 0;
}

/* Take the entry out of off (the caller gets the reference), or NULL when there is none. */
static PyObject *
tree_take(ZswapTree *t, Py_ssize_t off)
{
    Chunk *c = t->chunks[off / CHUNK];
    if (c == NULL || c->entry[off % CHUNK] == NULL)
        return NULL;
    PyObject *v = c->entry[off % CHUNK];
    lru_unlink(t, off);
    c->entry[off % CHUNK] = NULL;
    t->count--;
    t->mutations++;
    return v;
}

static int
tree_clear_all(ZswapTree *t)
{
    /* unlink everything first, then drop the references: a finaliser run by a decref sees an
     * empty, consistent tree */
    Chunk **chunks = t->chunks;
    Py_ssize_t nchunks = t->nchunks;
    t->chunks = PyMem_Calloc((size_t)(nchunks > 0 ? nchunks : 1), sizeof(Chunk *));
    if (t->chunks == NULL) {
        t->chunks = chunks;
        PyErr_NoMemory();
        return -1;
    }
    t->count = 0;
    t->head = t->tail = NONE;
    /* no mutations++: as an OrderedDict's clear, iterators see the size change instead */
    for (Py_ssize_t k = 0; k < nchunks; k++) {
        Chunk *c = chunks[k];
        if (c == NULL)
            continue;
        for (int j = 0; j < CHUNK; j++)
            Py_XDECREF(c->entry[j]);
        PyMem_Free(c);
    }
    PyMem_Free(chunks);
    return 0;
}

static int
ZswapTree_init(ZswapTree *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"swap_type", "nr_pages", NULL};
    PyObject *type, *nr_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:ZswapTree", kwlist, &type, &nr_obj))
        return -1;
    if (t->chunks != NULL) {
        PyErr_SetString(PyExc_TypeError, "ZswapTree: already initialised");
        return -1;
    }
    /* an integer (TypeError otherwise) in 1..MAX_NR_PAGES: the array of chunk pointers is
     * made up front (nr_pages / 8 bytes), so a huge nr_pages is refused before any allocation
     * (and before nr + CHUNK - 1 could overflow) */
    PyObject *nr_int = PyNumber_Index(nr_obj);
    if (nr_int == NULL)
        return -1;
    int overflow;
    long long nr = PyLong_AsLongLongAndOverflow(nr_int, &overflow);
    if (nr == -1 && PyErr_Occurred()) {
        Py_DECREF(nr_int);
        return -1;
    }
    if (overflow || nr < 1 || nr > MAX_NR_PAGES) {
        PyErr_Format(PyExc_ValueError,
                     "ZswapTree: nr_pages must be in 1..%lld (the most swap.nr_pages allows), "
                     "got %S", (long long)MAX_NR_PAGES, nr_int);
        Py_DECREF(nr_int);
        return -1;
    }
    Py_DECREF(nr_int);
    t->nchunks = (Py_ssize_t)((nr + CHUNK - 1) / CHUNK);
    t->chunks = PyMem_Calloc((size_t)t->nchunks, sizeof(Chunk *));
    if (t->chunks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(type);
    t->type = type;
    t->nr_pages = (Py_ssize_t)nr;
    t->count = 0;
    t->head = t->tail = NONE;
    return 0;
}

static int
tree_ready(ZswapTree *t)
{
    if (t->chunks == NULL) {
        PyErr_SetString(PyExc_TypeError, "ZswapTree: not initialised");
        return -1;
    }
    return 0;
}

static int
ZswapTree_traverse(ZswapTree *t, visitproc visit, void *arg)
{
    Py_VISIT(t->type);
    if (t->chunks == NULL || t->count == 0)
        return 0;
    for (Py_ssize_t off = t->head; off != NONE; off = SLOT_NEXT(t, off))
        Py_VISIT(SLOT_ENTRY(t, off));
    return 0;
}

static int
ZswapTree_clear(ZswapTree *t)
{
    if (t->chunks != NULL && t->count > 0 && tree_clear_all(t) < 0)
        PyErr_Clear();
    Py_CLEAR(t->type);
    return 0;
}

static void
ZswapTree_dealloc(ZswapTree *t)
{
    PyObject_GC_UnTrack(t);
    ZswapTree_clear(t);
    if (t->chunks != NULL) {
        for (Py_ssize_t k = 0; k < t->nchunks; k++)
            PyMem_Free(t->chunks[k]);
        PyMem_Free(t->chunks);
    }
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t
ZswapTree_len(ZswapTree *t)
{
    return t->count;
}

static int
ZswapTree_contains(ZswapTree *t, PyObject *key)
{
    Py_ssize_t off;
    int k = tree_key(t, key, &off);
    if (k <= 0 || t->chunks == NULL)
        return k;
    return tree_lookup(t, off) != NULL;
}

/* tree_ready, then tree_key: -1 on an error, 0 when the key names no offset, 1 with *off set. */
static int
tree_offset(ZswapTree *t, PyObject *key, Py_ssize_t *off)
{
    return tree_ready(t) < 0 ? -1 : tree_key(t, key, off);
}

/* The call takes one key and, optionally, a default. */
static int
key_args(Py_ssize_t nargs, const char *usage)
{
    if (nargs >= 1 && nargs <= 2)
        return 0;
    PyErr_SetString(PyExc_TypeError, usage);
    return -1;
}

static PyObject *
key_error(PyObject *key)
{
    PyObject *tup = PyTuple_Pack(1, key);
    if (tup != NULL) {
        PyErr_SetObject(PyExc_KeyError, tup);
        Py_DECREF(tup);
    }
    return NULL;
}

static PyObject *
ZswapTree_subscript(ZswapTree *t, PyObject *key)
{
    Py_ssize_t off;
    int k = tree_offset(t, key, &off);
    if (k < 0)
        return NULL;
    PyObject *v = k ? tree_lookup(t, off) : NULL;
    if (v == NULL)
        return key_error(key);
    Py_INCREF(v);
    return v;
}

static int
ZswapTree_ass_subscript(ZswapTree *t, PyObject *key, PyObject *value)
{
    Py_ssize_t off;
    int k = tree_offset(t, key, &off);
    if (k < 0)
        return -1;
    if (value == NULL) {  /* del tree[key] */
        PyObject *v = k ? tree_take(t, off) : NULL;
        if (v == NULL) {
            key_error(key);
            return -1;
        }
        Py_DECREF(v);
        return 0;
    }
    if (!k) {
        PyErr_Format(PyExc_KeyError,
                     "ZswapTree of swap type %R: %R is not an offset in 0..%zd",
                     t->type, key, t->nr_pages - 1);
        return -1;
    }
    return tree_store(t, off, value);
}

static PyObject *
ZswapTree_get(ZswapTree *t, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t off;
    int k = key_args(nargs, "get(key, default=None)") < 0 ? -1 : tree_offset(t, args[0], &off);
    if (k < 0)
        return NULL;
    PyObject *v = k ? tree_lookup(t, off) : NULL;
    if (v == NULL)
        v = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *
ZswapTree_pop(ZswapTree *t, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t off;
    int k = key_args(nargs, "pop(key[, default])") < 0 ? -1 : tree_offset(t, args[0], &off);
    if (k < 0)
        return NULL;
    PyObject *v = k ? tree_take(t, off) : NULL;
    if (v != NULL)
        return v;
    if (nargs == 2) {
        Py_INCREF(args[1]);
        return args[1];
    }
    return key_error(args[0]);
}

static PyObject *
ZswapTree_move_to_end(ZswapTree *t, PyObject *key)
{
    Py_ssize_t off;
    int k = tree_offset(t, key, &off);
    if (k < 0)
        return NULL;
    if (!k || tree_lookup(t, off) == NULL)
        return key_error(key);
    if (t->tail != off) {  /* a move is a change, as in an OrderedDict: iterators stop */
        lru_unlink(t, off);
        lru_append(t, off);
        t->mutations++;
    }
    Py_RETURN_NONE;
}

/* what: 0 keys, 1 values, 2 (key, value) pairs; a list, oldest first. A snapshot taken before
 * any Python object is made: making the list, ints and tuples may run the GC, whose finalisers
 * may change the tree, so the offsets and (held) entries are copied to C arrays first and the
 * list is built from the copy alone. */
static PyObject *
tree_list(ZswapTree *t, int what)
{
    Py_ssize_t n = t->count, k = 0;
    Py_ssize_t *offs = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n > 0 ? n : 1));
    PyObject **vals = PyMem_Malloc(sizeof(PyObject *) * (size_t)(n > 0 ? n : 1));
    PyObject *out = NULL;
    if (offs == NULL || vals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t off = t->head; off != NONE && k < n; off = SLOT_NEXT(t, off), k++) {
        offs[k] = off;
        vals[k] = SLOT_ENTRY(t, off);
        Py_INCREF(vals[k]);
    }
    /* from here on only the copy is read */
    out = PyList_New(k);
    for (Py_ssize_t i = 0; out != NULL && i < k; i++) {
        PyObject *item;
        if (what == 1) {
            item = vals[i];
            Py_INCREF(item);
        }
        else {
            PyObject *key = PyLong_FromSsize_t(offs[i]);
            item = what == 0 || key == NULL ? key : PyTuple_Pack(2, key, vals[i]);
            if (what == 2)
                Py_XDECREF(key);
        }
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
done:
    for (Py_ssize_t i = 0; vals != NULL && i < k; i++)
        Py_DECREF(vals[i]);
    PyMem_Free(offs);
    PyMem_Free(vals);
    return out;
}

static PyObject *
ZswapTree_keys(ZswapTree *t, PyObject *unused)
{
    return tree_ready(t) < 0 ? NULL : tree_list(t, 0);
}

static PyObject *
ZswapTree_values(ZswapTree *t, PyObject *unused)
{
    return tree_ready(t) < 0 ? NULL : tree_list(t, 1);
}

static PyObject *
ZswapTree_items(ZswapTree *t, PyObject *unused)
{
    return tree_ready(t) < 0 ? NULL : tree_list(t, 2);
}

static PyObject *
ZswapTree_clear_method(ZswapTree *t, PyObject *unused)
{
    if (tree_ready(t) < 0 || tree_clear_all(t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ZswapTree_repr(ZswapTree *t)
{
    return PyUnicode_FromFormat("<ZswapTree of swap type %R: %zd of %zd offsets>",
                                t->type ? t->type : Py_None, t->count, t->nr_pages);
}

/* Iteration over the keys, oldest first; changing the tree meanwhile (an insert, a removal, a
 * move_to_end that moves, a clear) ends it with an error, exactly as an OrderedDict's
 * iterator. */
typedef struct {
    PyObject_HEAD
    ZswapTree *tree;
    Py_ssize_t next;        /* the offset to return next, NONE when done */
    Py_ssize_t size;        /* the tree's size when iteration began; -1 after a clear */
    size_t mutations;
} TreeIter;

static PyTypeObject TreeIterType;

static PyObject *
ZswapTree_iter(ZswapTree *t)
{
    if (tree_ready(t) < 0)
        return NULL;
    TreeIter *it = PyObject_GC_New(TreeIter, &TreeIterType);
    if (it == NULL)
        return NULL;
    Py_INCREF(t);
    it->tree = t;
    it->next = t->head;
    it->size = t->count;
    it->mutations = t->mutations;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *
TreeIter_next(TreeIter *it)
{
    ZswapTree *t = it->tree;
    if (t == NULL || it->next == NONE)
        return NULL;
    /* as an OrderedDict's iterator: a change ends the iteration with an error; a clear makes
     * every later call an error (the sizes differ for good) */
    if (t->mutations != it->mutations) {
        it->next = NONE;
        PyErr_SetString(PyExc_RuntimeError, "ZswapTree mutated during iteration");
        return NULL;
    }
    if (t->count != it->size || t->chunks == NULL) {
        it->size = -1;
        PyErr_SetString(PyExc_RuntimeError, "ZswapTree changed size during iteration");
        return NULL;
    }
    Py_ssize_t off = it->next;
    it->next = SLOT_NEXT(t, off);
    return PyLong_FromSsize_t(off);
}

static int
TreeIter_traverse(TreeIter *it, visitproc visit, void *arg)
{
    Py_VISIT(it->tree);
    return 0;
}

static void
TreeIter_dealloc(TreeIter *it)
{
    PyObject_GC_UnTrack(it);
    Py_XDECREF(it->tree);
    PyObject_GC_Del(it);
}

static PyTypeObject TreeIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.frontswap._hotpath.ZswapTreeIterator",
    .tp_basicsize = sizeof(TreeIter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)TreeIter_dealloc,
    .tp_traverse = (traverseproc)TreeIter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)TreeIter_next,
};

static PyMappingMethods ZswapTree_as_mapping = {
    .mp_length = (lenfunc)ZswapTree_len,
    .mp_subscript = (binaryfunc)ZswapTree_subscript,
    .mp_ass_subscript = (objobjargproc)ZswapTree_ass_subscript,
};

static PySequenceMethods ZswapTree_as_sequence = {
    .sq_contains = (objobjproc)ZswapTree_contains,
};

static PyMethodDef ZswapTree_methods[] = {
    {"get", (PyCFunction)(void (*)(void))ZswapTree_get, METH_FASTCALL,
     "get(offset, default=None): the offset's entry, or default."},
    {"pop", (PyCFunction)(void (*)(void))ZswapTree_pop, METH_FASTCALL,
     "pop(offset[, default]): remove and return the offset's entry."},
    {"move_to_end", (PyCFunction)ZswapTree_move_to_end, METH_O,
     "move_to_end(offset): make the entry the newest in LRU order."},
    {"keys", (PyCFunction)ZswapTree_keys, METH_NOARGS, "The offsets, oldest first (a list)."},
    {"values", (PyCFunction)ZswapTree_values, METH_NOARGS, "The entries, oldest first (a list)."},
    {"items", (PyCFunction)ZswapTree_items, METH_NOARGS,
     "(offset, entry) pairs, oldest first (a list)."},
    {"clear", (PyCFunction)ZswapTree_clear_method, METH_NOARGS, "Drop every entry."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ZswapTree_members[] = {
    {"type", T_OBJECT, offsetof(ZswapTree, type), READONLY, "The swap type."},
    {"nr_pages", T_PYSSIZET, offsetof(ZswapTree, nr_pages), READONLY,
     "Offsets are 0..nr_pages - 1."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ZswapTreeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.frontswap._hotpath.ZswapTree",
    .tp_basicsize = sizeof(ZswapTree),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ZswapTree(swap_type, nr_pages): one swap type's zswap index and LRU, offset -> "
              "entry, oldest first (see _hotpath_py.ZswapTreePy).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ZswapTree_init,
    .tp_dealloc = (destructor)ZswapTree_dealloc,
    .tp_traverse = (traverseproc)ZswapTree_traverse,
    .tp_clear = (inquiry)ZswapTree_clear,
    .tp_repr = (reprfunc)ZswapTree_repr,
    .tp_iter = (getiterfunc)ZswapTree_iter,
    .tp_as_mapping = &ZswapTree_as_mapping,
    .tp_as_sequence = &ZswapTree_as_sequence,
    .tp_methods = ZswapTree_methods,
    .tp_members = ZswapTree_members,
};

/* -- module --------------------------------------------------------------------------------- */

static PyMethodDef hotpath_methods[] = {
    {"same_filled_pages", same_filled_pages, METH_O,
     "same_filled_pages(buf) -> list[(index, word)]: the same-filled pages of a buffer of "
     "whole pages, each with its repeated 8-byte word."},
    {"claim_slots", claim_slots, METH_VARARGS,
     "claim_slots(smap, offsets, n) -> (list[int], bytes) | None: mark a batch's slots in use "
     "in the swap map when offsets is a list, tuple or range of n distinct ints in range, and "
     "return them with the slots' states before (one byte each); None (nothing marked) "
     "otherwise."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hotpath_module = {
    PyModuleDef_HEAD_INIT, "hwzswap.frontswap._hotpath",
    "zswap's self-contained structures and scans, compiled: the index ZswapTree, "
    "same_filled_pages and claim_slots (see _hotpath_py for the references).",
    -1, hotpath_methods,
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    if (PyType_Ready(&ZswapTreeType) < 0 || PyType_Ready(&TreeIterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&hotpath_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_NR_PAGES", (long)MAX_NR_PAGES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ZswapTreeType);
    if (PyModule_AddObject(m, "ZswapTree", (PyObject *)&ZswapTreeType) < 0) {
        Py_DECREF(&ZswapTreeType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
