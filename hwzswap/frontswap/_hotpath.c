/*
 * _hotpath: zswap's per-page hot paths, compiled.
 *
 * hwzswap.frontswap.zswap.ZswapCache.store_batch and SwapSystem.swap_out_batch spend most of
 * their Python time in three loops that run once per page of a reclaim batch: finding the
 * same-filled pages, checking and claiming the batch's swap slots, and inserting the compressed
 * objects into the pool and the index under the tree lock. Each is written here as one C call.
 * A load that hits a compressed entry (ZswapCache.load, SwapSystem.swap_in) is LoadHit, one
 * call instead of two Python frames, and a one-page store's common path is StoreHit; every
 * other case goes to the Python method.
 * The algorithm stays in Python: everything below has a Python twin of the same name with a
 * "_py"/"Py" suffix in hwzswap/frontswap/_hotpath_py.py, which is the readable reference (and
 * the model the tests compare these against, case by case).
 *
 * ZswapTree, the per-type index and LRU (an array slot per offset, as the kernel's xarray), is
 * here too: it replaces an OrderedDict, whose semantics it keeps (_hotpath_py.ZswapTreePy).
 *
 * Nothing here touches another module's insides: the pool is reached through its malloc_write
 * and view methods, the codec through the backend's decompress, the index through the mapping
 * protocol (LoadHit reads a ZswapTree's slot directly, being in the same file), the counters
 * through attributes of the cache object. Everything runs under the GIL and releases it only
 * inside the Python calls it makes.
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
    Py_ssize_t lo = nr, hi = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *o = items[k];
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
     * sort them */
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

/* obj.name += delta, keeping any exception that is being raised (the first error wins). 0, or
 * -1 with an error set. */
static int
attr_add(PyObject *obj, PyObject *name, Py_ssize_t delta)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    int rc = -1;
    PyObject *cur = PyObject_GetAttr(obj, name);
    PyObject *d = cur != NULL ? PyLong_FromSsize_t(delta) : NULL;
    PyObject *sum = d != NULL ? PyNumber_Add(cur, d) : NULL;
    if (sum != NULL)
        rc = PyObject_SetAttr(obj, name, sum);
    Py_XDECREF(sum);
    Py_XDECREF(d);
    Py_XDECREF(cur);
    if (et != NULL) {
        if (rc < 0)
            PyErr_Clear();
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
    /* counted also when an error stopped the loop */
    if ((stored > 0 && attr_add(cache, str_zswpout, stored) < 0) || rc < 0)
        return NULL;
    Py_RETURN_NONE;
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
    t->mutations++;
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
    PyObject *type;
    Py_ssize_t nr;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On:ZswapTree", kwlist, &type, &nr))
        return -1;
    if (t->chunks != NULL) {
        PyErr_SetString(PyExc_TypeError, "ZswapTree: already initialised");
        return -1;
    }
    if (nr < 1) {
        PyErr_Format(PyExc_ValueError, "ZswapTree: nr_pages must be >= 1, got %zd", nr);
        return -1;
    }
    t->nchunks = (nr + CHUNK - 1) / CHUNK;
    t->chunks = PyMem_Calloc((size_t)t->nchunks, sizeof(Chunk *));
    if (t->chunks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(type);
    t->type = type;
    t->nr_pages = nr;
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
 * move_to_end that moves) ends it with an error, as an OrderedDict's iterator. */
typedef struct {
    PyObject_HEAD
    ZswapTree *tree;
    Py_ssize_t next;
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
    if (t->mutations != it->mutations || t->chunks == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ZswapTree mutated during iteration");
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

/* -- LoadHit and StoreHit ---------------------------------------------------------------------- */

/* Both are callables over a few objects they hold, the last of which is the fallback (the
 * Python method every case they do not take goes to). One layout, so one set of GC, init and
 * getter functions serves both; each type names its objects with an enum. */
#define HIT_MAX 8

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int n;                  /* objects held: o[0 .. n - 1], o[n - 1] the fallback */
    PyObject *o[HIT_MAX];
} HitPath;

#define FALLBACK(self) ((self)->o[(self)->n - 1])

static PyObject *str_loads_hit;

/* Take the n objects (new references) and the call; 0, or -1 if not a dict where one is due. */
static int
hit_set(HitPath *self, PyObject **objs, int n, vectorcallfunc call)
{
    if (!PyDict_Check(objs[0])) {
        PyErr_Format(PyExc_TypeError, "%s: trees must be a dict, not %.100s",
                     Py_TYPE(self)->tp_name, Py_TYPE(objs[0])->tp_name);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        Py_INCREF(objs[k]);
        Py_XSETREF(self->o[k], objs[k]);
    }
    self->n = n;
    self->vectorcall = call;
    return 0;
}

static int
hit_traverse(HitPath *self, visitproc visit, void *arg)
{
    for (int k = 0; k < self->n; k++)
        Py_VISIT(self->o[k]);
    return 0;
}

static int
hit_clear(HitPath *self)
{
    for (int k = 0; k < self->n; k++)
        Py_CLEAR(self->o[k]);
    return 0;
}

static void
hit_dealloc(HitPath *self)
{
    PyObject_GC_UnTrack(self);
    hit_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
hit_fallback_get(HitPath *self, void *closure)
{
    PyObject *f = self->n > 0 && FALLBACK(self) != NULL ? FALLBACK(self) : Py_None;
    Py_INCREF(f);
    return f;
}

static PyGetSetDef hit_getset[] = {
    {"fallback", (getter)hit_fallback_get, NULL,
     "The Python method the cases this path does not take go to.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Hand the call (nargs arguments) to the fallback, dropping the error (if any) that ended the
 * fast path; one that is not an Exception (KeyboardInterrupt, SystemExit) is raised instead. */
static PyObject *
hit_fallback(HitPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
    }
    return PyObject_Vectorcall(FALLBACK(self), args, nargs, NULL);
}

/* Call the tree lock's release, keeping an error that is being raised. 0, or -1 (its error). */
static int
release_keeping_error(PyObject *release)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r = PyObject_CallNoArgs(release);
    if (r == NULL) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        return -1;
    }
    Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
    return 0;
}

/* -- LoadHit: the hit path of a load -- */

/* A callable (type, offset) -> page for the hit path of ZswapCache.load (and of
 * SwapSystem.swap_in, which is the same when loads are not exclusive): look the offset up in
 * the type's index under the tree lock, decompress the pool object straight from the pool's
 * memory, count loads_hit. Anything else -- no such type, a miss, a same-filled entry, a pool
 * or codec error -- calls the fallback (the Python method) with the same arguments, having
 * changed nothing; the Python method then does what it always does (and raises what it
 * raises). Only built for caches without exclusive loads or entry checksums. See
 * _hotpath_py.LoadHitPy for the same in Python. */
enum { LH_TREES, LH_ACQUIRE, LH_RELEASE, LH_VIEW, LH_DECOMPRESS, LH_CACHE, LH_FALLBACK, LH_N };

static PyObject *
load_hit_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    HitPath *self = (HitPath *)op;
    PyObject **o = self->o;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL)
        return PyObject_Vectorcall(o[LH_FALLBACK], args, nargsf, kwnames);
    PyObject *tree = PyDict_GetItemWithError(o[LH_TREES], args[0]);  /* borrowed */
    if (tree == NULL)
        return hit_fallback(self, args, 2);
    Py_INCREF(tree);
    PyObject *r = PyObject_CallNoArgs(o[LH_ACQUIRE]);
    if (r == NULL) {
        Py_DECREF(tree);
        return NULL;
    }
    Py_DECREF(r);
    PyObject *page = NULL, *entry = NULL;
    Py_ssize_t off;
    if (Py_IS_TYPE(tree, &ZswapTreeType) && ((ZswapTree *)tree)->chunks != NULL
        && tree_key((ZswapTree *)tree, args[1], &off) > 0)
        entry = tree_lookup((ZswapTree *)tree, off);  /* borrowed */
    if (entry != NULL && PyLong_CheckExact(entry)) {
        Py_INCREF(entry);
        PyObject *data = PyObject_CallOneArg(o[LH_VIEW], entry);
        if (data != NULL) {
            page = PyObject_CallOneArg(o[LH_DECOMPRESS], data);
            Py_DECREF(data);  /* the view must not outlive the lock */
        }
        Py_DECREF(entry);
        if (page != NULL && attr_add(o[LH_CACHE], str_loads_hit, 1) < 0)
            Py_CLEAR(page);
    }
    Py_DECREF(tree);
    if (release_keeping_error(o[LH_RELEASE]) < 0) {
        Py_XDECREF(page);
        return NULL;
    }
    if (page != NULL)
        return page;
    return hit_fallback(self, args, 2);
}

static int
load_hit_init(HitPath *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"trees", "acquire", "release", "view", "decompress", "cache",
                             "fallback", NULL};
    PyObject *o[LH_N];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO:LoadHit", kwlist, &o[0], &o[1],
                                     &o[2], &o[3], &o[4], &o[5], &o[6]))
        return -1;
    return hit_set(self, o, LH_N, load_hit_call);
}

static PyTypeObject LoadHitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.frontswap._hotpath.LoadHit",
    .tp_basicsize = sizeof(HitPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "LoadHit(trees, acquire, release, view, decompress, cache, fallback): the hit "
              "path of zswap's load as one call (see _hotpath_py.LoadHitPy).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)load_hit_init,
    .tp_dealloc = (destructor)hit_dealloc,
    .tp_traverse = (traverseproc)hit_traverse,
    .tp_clear = (inquiry)hit_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(HitPath, vectorcall),
    .tp_getset = hit_getset,
};

/* -- StoreHit: the common path of a one-page store -- */

/* A callable (type, offset, page) -> bool for the common path of ZswapCache.store: a page (4096
 * bytes) that is not a same-filled candidate, with the pool under its limit gate. It does what
 * the method does from there on -- compress outside the lock; reject a failed or poor result
 * (cache._reject); under the tree lock, malloc_write, replace an older entry, index, count
 * zswpout; on a full pool, cache._store_after_reclaim -- calling the same Python helpers for
 * every outcome but the plain insert. Before the codec is called, any other case (an unknown
 * type, an offset out of range or not an int, a page that is not bytes, a possibly same-filled
 * page, the pool at its gate) goes to the fallback (the Python method) with nothing changed;
 * after it, nothing falls back (a modelled device must not be asked twice). Only built for
 * caches without entry checksums. See _hotpath_py.StoreHitPy for the same in Python. */
enum { SH_TREES, SH_CACHE, SH_POOL, SH_COMPRESS, SH_MALLOC_WRITE, SH_ACQUIRE, SH_RELEASE,
       SH_FALLBACK, SH_N };

static PyObject *HwzswapError = NULL;  /* hwzswap.errors.HwzswapError */
static PyObject *str_limit_gate, *str_max_len, *str_pages, *str_reject, *str_after_reclaim,
    *str_compress_fail, *str_compress_poor;

/* An int attribute of obj as a Py_ssize_t; -1 with an error set on failure (or a value of -1). */
static Py_ssize_t
int_attr(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return n;
}

/* The locked part: malloc_write, replace, index, count. 1 stored, 0 the pool had no room (no
 * error set), -1 error. The lock is released on return. */
static int
store_hit_insert(HitPath *self, PyObject *tree, PyObject *offset, PyObject *data)
{
    PyObject **o = self->o;
    PyObject *r = PyObject_CallNoArgs(o[SH_ACQUIRE]);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    int rc = -1;
    PyObject *handle = PyObject_CallOneArg(o[SH_MALLOC_WRITE], data);
    if (handle == NULL) {
        if (PyErr_ExceptionMatches(PoolAllocError)) {
            PyErr_Clear();
            rc = 0;
        }
        goto out;
    }
    int has = PySequence_Contains(tree, offset);
    if (has > 0) {
        r = PyObject_CallMethodObjArgs(o[SH_CACHE], str_drop_old, tree, offset, NULL);
        has = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    if (has == 0 && PyObject_SetItem(tree, offset, handle) == 0
        && attr_add(o[SH_CACHE], str_zswpout, 1) == 0)
        rc = 1;
    Py_DECREF(handle);
out:
    if (release_keeping_error(o[SH_RELEASE]) < 0)
        return -1;
    return rc;
}

static PyObject *
store_hit_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    HitPath *self = (HitPath *)op;
    PyObject **o = self->o;
    if (PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL)
        return PyObject_Vectorcall(o[SH_FALLBACK], args, nargsf, kwnames);
    PyObject *offset = args[1], *page = args[2];
    if (!PyLong_CheckExact(offset) || !PyBytes_CheckExact(page)
        || PyBytes_GET_SIZE(page) != PAGE_SIZE)
        return hit_fallback(self, args, 3);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(page);
    if (p[PAGE_SIZE - 8] == p[0])  /* maybe same-filled: the method's test, then its path */
        return hit_fallback(self, args, 3);
    PyObject *tree = PyDict_GetItemWithError(o[SH_TREES], args[0]);  /* borrowed */
    if (tree == NULL || !Py_IS_TYPE(tree, &ZswapTreeType))
        return hit_fallback(self, args, 3);
    Py_ssize_t off = PyLong_AsSsize_t(offset);
    if (off < 0 || off >= ((ZswapTree *)tree)->nr_pages)
        return hit_fallback(self, args, 3);
    /* the gate: max_pool_pages, 0 while the hysteresis holds, -1 while zswap is disabled */
    Py_ssize_t gate = int_attr(o[SH_CACHE], str_limit_gate);
    Py_ssize_t pages = gate < 0 ? -1 : int_attr(o[SH_POOL], str_pages);
    if (gate < 0 || pages < 0 || pages >= gate)
        return hit_fallback(self, args, 3);  /* the method checks the limits */
    Py_INCREF(tree);
    PyObject *result = NULL;
    PyObject *data = PyObject_CallOneArg(o[SH_COMPRESS], page);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(HwzswapError)) {
            PyErr_Clear();
            result = PyObject_CallMethodObjArgs(o[SH_CACHE], str_reject, tree, offset,
                                                str_compress_fail, NULL);
        }
        Py_DECREF(tree);
        return result;
    }
    Py_ssize_t max_len = int_attr(o[SH_CACHE], str_max_len);
    Py_ssize_t len = data == Py_None ? 0 : PyObject_Length(data);
    if ((max_len == -1 && PyErr_Occurred()) || len < 0)
        goto done;
    if (data == Py_None || len > max_len) {
        result = PyObject_CallMethodObjArgs(o[SH_CACHE], str_reject, tree, offset,
                                            str_compress_poor, NULL);
        goto done;
    }
    int rc = store_hit_insert(self, tree, offset, data);
    if (rc == 1) {
        result = Py_True;
        Py_INCREF(result);
    }
    else if (rc == 0) {
        result = PyObject_CallMethodObjArgs(o[SH_CACHE], str_after_reclaim, tree, offset, data,
                                            NULL);
    }
done:
    Py_DECREF(data);
    Py_DECREF(tree);
    return result;
}

static int
store_hit_init(HitPath *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"trees", "cache", "pool", "compress", "malloc_write", "acquire",
                             "release", "fallback", NULL};
    PyObject *o[SH_N];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOO:StoreHit", kwlist, &o[0], &o[1],
                                     &o[2], &o[3], &o[4], &o[5], &o[6], &o[7]))
        return -1;
    return hit_set(self, o, SH_N, store_hit_call);
}

static PyTypeObject StoreHitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.frontswap._hotpath.StoreHit",
    .tp_basicsize = sizeof(HitPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "StoreHit(trees, cache, pool, compress, malloc_write, acquire, release, fallback): "
              "the common path of zswap's store as one call (see _hotpath_py.StoreHitPy).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)store_hit_init,
    .tp_dealloc = (destructor)hit_dealloc,
    .tp_traverse = (traverseproc)hit_traverse,
    .tp_clear = (inquiry)hit_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(HitPath, vectorcall),
    .tp_getset = hit_getset,
};

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
    INTERN(str_loads_hit, "loads_hit");
    INTERN(str_limit_gate, "_limit_gate");
    INTERN(str_max_len, "_max_len");
    INTERN(str_pages, "pages");
    INTERN(str_reject, "_reject");
    INTERN(str_after_reclaim, "_store_after_reclaim");
    INTERN(str_compress_fail, "reject_compress_fail");
    INTERN(str_compress_poor, "reject_compress_poor");
    if (PoolAllocError == NULL) {
        PyObject *errors = PyImport_ImportModule("hwzswap.errors");
        if (errors == NULL)
            return NULL;
        PoolAllocError = PyObject_GetAttrString(errors, "PoolAllocError");
        HwzswapError = PyObject_GetAttrString(errors, "HwzswapError");
        Py_DECREF(errors);
        if (PoolAllocError == NULL || HwzswapError == NULL)
            return NULL;
    }
    if (PyType_Ready(&LoadHitType) < 0 || PyType_Ready(&ZswapTreeType) < 0
        || PyType_Ready(&TreeIterType) < 0 || PyType_Ready(&StoreHitType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&hotpath_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LoadHitType);
    if (PyModule_AddObject(m, "LoadHit", (PyObject *)&LoadHitType) < 0) {
        Py_DECREF(&LoadHitType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ZswapTreeType);
    if (PyModule_AddObject(m, "ZswapTree", (PyObject *)&ZswapTreeType) < 0) {
        Py_DECREF(&ZswapTreeType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&StoreHitType);
    if (PyModule_AddObject(m, "StoreHit", (PyObject *)&StoreHitType) < 0) {
        Py_DECREF(&StoreHitType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
