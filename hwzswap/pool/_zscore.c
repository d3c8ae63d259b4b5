/*
 * _zscore: the compiled core of hwzswap's zsmalloc pool (hwzswap.pool.zsmalloc.ZsPool).
 *
 * One ZsCore object holds the whole data structure of one pool: the size classes (layout
 * computed in Python by zs_layout()), the zspages with their free-slot stacks, the kernel-style
 * fullness groups and the "cur" zspage each class fills, the handle table, the peak tracking,
 * map pins and compaction. It implements exactly the algorithm of the pure-Python reference
 * model hwzswap.pool.zsmalloc.PyZsPool (same choices, so both place objects alike and compact
 * the same pages); the docstrings there explain the model, the comments here the C.
 *
 * Memory: every zspage is one page run from the Python PageAllocator (a writable memoryview
 * over a bytearray). The core holds a writable buffer export of the run while the zspage lives
 * (so the run cannot be released or resized under it) and gives the run back with
 * allocator.free_pages() when the zspage empties. Views handed out by view() are new
 * memoryviews on the run's managed buffer: they keep that memory alive whatever the pool does
 * afterwards, so they never point at freed memory. A map() view has its own exporter
 * (MapExport), so unmap() and destroy() can tell whether a view derived from it is alive and
 * refuse until it is gone: no derived view can write into memory the pool has reused.
 *
 * Calls out to Python (the allocator, error-message helpers, len() of odd data, buffer
 * exports) happen only where the core's state is consistent, and no pointer into the core's
 * arrays is kept across them. The one call made in the middle of an operation, alloc_pages(),
 * sets a flag under which every changing call is refused (a re-entrant allocator). Every method
 * runs under the GIL without releasing it, so each call is atomic.
 *
 * Written for hwzswap; facts about the kernel's zsmalloc are in shared/reference/kernel.md.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#ifdef Py_LIMITED_API
#error "_zscore slices memoryviews in place and needs the full C API"
#endif

#define ZS_PAGE_SIZE 4096
#define NR_FG 12        /* fullness groups: 0 empty, 1..10 by tenths of use, 11 full */
#define FG_FULL 11
#define NIL (-1)
#define MAX_CLASSES 255
#define MAX_OBJS 2048   /* 16 pages / 32 bytes */
#define MAX_PAGES 16

/* Error classes from hwzswap.errors, handed over by set_error_classes() (no import cycle). */
static PyObject *PoolError = NULL;
static PyObject *PoolAllocError = NULL;
static PyObject *InvalidHandleError = NULL;

static PyObject *str_alloc_pages, *str_free_pages;
static PyObject *str_release, *str_invalid, *str_bad_size, *str_bad_data, *str_pinned,
    *str_too_long, *str_alloc_failed, *str_bad_run, *str_not_mapped, *str_unmap_busy, *str_bad_maps,
    *str_batch_error, *str_unmap_derived, *str_destroy_busy;
static PyObject *str_arg_buf, *str_arg_offsets, *str_arg_sizes, *str_arg_idx;
static PyObject *zero;  /* the handle given to _bad_data by malloc_write */
static PyObject *op_free, *op_read, *op_view, *op_write, *op_read_free, *op_obj_size,
    *op_map, *op_unmap;

/* -- data structures ------------------------------------------------------------------------ */

typedef struct {
    PyObject *run;      /* the page run (a memoryview) from the allocator; NULL: unused id */
    Py_buffer buf;      /* writable export of run, held while the zspage lives */
    unsigned char *mem; /* buf.buf */
    uint64_t *owner;    /* the handle in each slot, 0 when the slot is free */
    uint16_t *freestk;  /* stack of free slot numbers, top at freestk[nfree - 1] */
    int32_t nfree;
    int32_t mapped;     /* objects of this zspage mapped now: pins it against compaction */
    int32_t prev, next; /* fullness group list links (next also chains unused ids) */
    int16_t cls;
    int16_t fg;         /* group it is filed in (stale while it is its class's cur) */
} Zspage;

typedef struct {
    int32_t size, pages, objs, hdr;
    int32_t cur;            /* zspage being filled (in no group) or NIL */
    uint32_t partial_mask;  /* bit g set <=> partial group g (1..10) is not empty */
    int32_t head[NR_FG], tail[NR_FG], count[NR_FG];
    uint8_t *fg_of_free;    /* fullness group by number of free slots, objs + 1 entries */
} SizeClass;

/* Handle table entry: open addressing, linear probing, key 0 = empty (a handle is never 0). */
typedef struct {
    uint64_t key;
    uint32_t zs;
    uint16_t slot;
    uint16_t size;
} Entry;

typedef struct {
    PyObject_HEAD
    Py_ssize_t pages, peak_pages;
    Py_ssize_t stored, stored_at_peak;  /* stored_at_peak as recorded (see its getter) */
    Py_ssize_t nobjs, nzspages, compacted, alloc_fail;
    unsigned long long tag;
    uint64_t serial;                    /* the last handle handed out */
    Py_ssize_t peak_before, at_peak_before; /* peak_pages, stored_at_peak before the last
                                             * new zspage (unwind puts them back) */
    int destroyed, busy, ready, initing;
    int nclasses;
    SizeClass *classes;
    int16_t class_of[ZS_PAGE_SIZE + 1]; /* payload size -> class + 1; 0: none */
    Zspage *zs;
    int32_t zs_len, zs_cap, zs_unused;  /* ids in use so far, capacity, chain of unused ids */
    Entry *tab;
    uint64_t tab_mask;
    int tab_shift;
    Py_ssize_t tab_used;
    PyObject *allocator, *alloc_fn, *free_fn, *name;
    PyObject *maps;                     /* dict: handle -> list of mapped views */
    uint64_t *scratch_h;                /* MAX_OBJS handles, for compaction */
} ZsCore;

/* -- helpers: errors built by the Python side -------------------------------------------- */

static int
check_ready(ZsCore *self)
{
    if (!self->ready || PoolError == NULL) {
        PyErr_SetString(PoolError ? PoolError : PyExc_RuntimeError,
                        "zsmalloc core: the pool is not initialised (ZsPool.__init__ did not run)");
        return -1;
    }
    return 0;
}

/* Raise the exception returned by self.<meth>(*args) (the message lives in Python). A core
 * that was never initialised says so instead: its error helpers and its state are missing, and
 * any other message (a bad size, a foreign handle) would send the user looking elsewhere. */
static PyObject *
raise_helper(ZsCore *self, PyObject *meth, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *exc;
    if (check_ready(self) < 0)
        return NULL;
    if (c != NULL)
        exc = PyObject_CallMethodObjArgs((PyObject *)self, meth, a, b, c, NULL);
    else if (b != NULL)
        exc = PyObject_CallMethodObjArgs((PyObject *)self, meth, a, b, NULL);
    else
        exc = PyObject_CallMethodObjArgs((PyObject *)self, meth, a, NULL);
    if (exc == NULL)
        return NULL;
    if (PyExceptionInstance_Check(exc))
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    else
        PyErr_Format(PyExc_TypeError, "%R did not return an exception", meth);
    Py_DECREF(exc);
    return NULL;
}

/* Raise exc (an exception returned by a message helper) and return NULL; NULL in: an error is
 * set already. */
static PyObject *
raise_returned(PyObject *exc)
{
    if (exc == NULL)
        return NULL;
    if (PyExceptionInstance_Check(exc))
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    else
        PyErr_SetString(PoolError, "zsmalloc: malloc_write_batch: bad arguments");
    Py_DECREF(exc);
    return NULL;
}

/* The invalid-handle error; an error already set (handle_key met one other than a TypeError
 * in the handle's __index__: KeyboardInterrupt, MemoryError, ...) stands instead. */
static PyObject *
raise_invalid(ZsCore *self, PyObject *handle, PyObject *op)
{
    if (PyErr_Occurred())
        return NULL;
    return raise_helper(self, str_invalid, handle, op, NULL);
}

static PyObject *
raise_invalid_h(ZsCore *self, uint64_t h, PyObject *op)
{
    PyObject *o = PyLong_FromUnsignedLongLong(h);
    if (o == NULL)
        return NULL;
    raise_helper(self, str_invalid, o, op, NULL);
    Py_DECREF(o);
    return NULL;
}

static int
check_not_busy(ZsCore *self)
{
    if (self->busy) {
        PyErr_SetString(PoolError, "zsmalloc: the pool was called from inside its own page "
                        "allocator call; an allocator must not use the pool it serves");
        return -1;
    }
    return 0;
}

/* -- handle table --------------------------------------------------------------------------- */

static inline uint64_t
tab_home(const ZsCore *self, uint64_t key)
{
    return (key * UINT64_C(0x9E3779B97F4A7C15)) >> self->tab_shift;
}

static inline Entry *
tab_lookup(ZsCore *self, uint64_t key)
{
    Entry *tab = self->tab;
    if (tab == NULL || key == 0)
        return NULL;
    uint64_t mask = self->tab_mask, i = tab_home(self, key);
    for (;;) {
        Entry *e = &tab[i];
        if (e->key == key)
            return e;
        if (e->key == 0)
            return NULL;
        i = (i + 1) & mask;
    }
}

static inline void
tab_put(Entry *tab, uint64_t mask, int shift, Entry item)
{
    uint64_t i = (item.key * UINT64_C(0x9E3779B97F4A7C15)) >> shift;
    while (tab[i].key != 0)
        i = (i + 1) & mask;
    tab[i] = item;
}

static int
tab_alloc(ZsCore *self, int bits)
{
    Entry *old = self->tab;
    uint64_t old_n = old ? self->tab_mask + 1 : 0;
    uint64_t n = (uint64_t)1 << bits;
    Entry *tab = PyMem_Calloc((size_t)n, sizeof(Entry));
    if (tab == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i < old_n; i++)
        if (old[i].key != 0)
            tab_put(tab, n - 1, 64 - bits, old[i]);
    PyMem_Free(old);
    self->tab = tab;
    self->tab_mask = n - 1;
    self->tab_shift = 64 - bits;
    return 0;
}

/* Room for one more entry (load <= 5/8), before any change to the pool. */
static inline int
tab_reserve(ZsCore *self)
{
    if ((uint64_t)(self->tab_used + 1) * 8 <= (self->tab_mask + 1) * 5)
        return 0;
    return tab_alloc(self, 64 - self->tab_shift + 1);
}

static inline void
tab_insert(ZsCore *self, uint64_t key, int32_t zs, int slot, Py_ssize_t size)
{
    Entry item = {key, (uint32_t)zs, (uint16_t)slot, (uint16_t)size};
    tab_put(self->tab, self->tab_mask, self->tab_shift, item);
    self->tab_used++;
}

/* Delete by backward shift: the entries after it that may move up, do. */
static inline void
tab_delete(ZsCore *self, Entry *e)
{
    Entry *tab = self->tab;
    uint64_t mask = self->tab_mask, i = (uint64_t)(e - tab), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (tab[j].key == 0)
            break;
        uint64_t k = tab_home(self, tab[j].key);
        /* entry j may fill the hole at i unless its home lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i].key = 0;
    self->tab_used--;
}

/* A handle argument as a key: 1 and *out set, or 0 if it cannot be a live handle: with no
 * error set when it is not an int (a TypeError from its __index__ included), with the error
 * set when its __index__ raised anything else (which propagates, as in PyZsPool; callers go
 * through raise_invalid, which lets a set error stand). */
static inline int
handle_key(PyObject *o, uint64_t *out)
{
    long long v;
    int overflow;
    if (PyLong_Check(o)) {
        v = PyLong_AsLongLongAndOverflow(o, &overflow);
    }
    else if (PyIndex_Check(o)) {
        PyObject *i = PyNumber_Index(o);
        if (i == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError))
                PyErr_Clear();
            return 0;
        }
        v = PyLong_AsLongLongAndOverflow(i, &overflow);
        Py_DECREF(i);
    }
    else {
        return 0;
    }
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow || v <= 0)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* -- fullness group lists (insertion ordered; append at the tail, pop from the tail) -------- */

static inline void
list_append(ZsCore *self, SizeClass *c, int32_t id, int fg)
{
    Zspage *z = &self->zs[id];
    z->fg = (int16_t)fg;
    z->next = NIL;
    z->prev = c->tail[fg];
    if (c->tail[fg] != NIL)
        self->zs[c->tail[fg]].next = id;
    else
        c->head[fg] = id;
    c->tail[fg] = id;
    c->count[fg]++;
    if (fg != FG_FULL)
        c->partial_mask |= 1u << fg;
}

static inline void
list_remove(ZsCore *self, SizeClass *c, int32_t id)
{
    Zspage *z = &self->zs[id];
    int fg = z->fg;
    if (z->prev != NIL)
        self->zs[z->prev].next = z->next;
    else
        c->head[fg] = z->next;
    if (z->next != NIL)
        self->zs[z->next].prev = z->prev;
    else
        c->tail[fg] = z->prev;
    z->prev = z->next = NIL;
    if (--c->count[fg] == 0 && fg != FG_FULL)
        c->partial_mask &= ~(1u << fg);
}

/* Put cur back into its fullness group. */
static inline void
attach_cur(ZsCore *self, SizeClass *c)
{
    int32_t id = c->cur;
    if (id != NIL) {
        list_append(self, c, id, c->fg_of_free[self->zs[id].nfree]);
        c->cur = NIL;
    }
}

/* -- zspages ------------------------------------------------------------------------------- */

/* An unused zspage id (the array may move: take pointers after this). */
static int32_t
zs_reserve_id(ZsCore *self)
{
    if (self->zs_unused != NIL)
        return self->zs_unused;
    if (self->zs_len == self->zs_cap) {
        int32_t cap = self->zs_cap ? self->zs_cap * 2 : 64;
        if (cap < 0 || (size_t)cap > PY_SSIZE_T_MAX / sizeof(Zspage)) {
            PyErr_NoMemory();
            return NIL;
        }
        Zspage *zs = PyMem_Realloc(self->zs, (size_t)cap * sizeof(Zspage));
        if (zs == NULL) {
            PyErr_NoMemory();
            return NIL;
        }
        self->zs = zs;
        self->zs_cap = cap;
    }
    return self->zs_len;
}

/* Take the id zs_reserve_id() returned. */
static void
zs_take_id(ZsCore *self, int32_t id)
{
    if (id == self->zs_unused)
        self->zs_unused = self->zs[id].next;
    else
        self->zs_len++;
}

/* Give a zspage's pages back. Its run goes to *deferred (the caller frees it later) or straight
 * to allocator.free_pages(). The caller has taken it out of its group and cleared cur. */
static int
release_zspage(ZsCore *self, int32_t id, PyObject **deferred, Py_ssize_t *ndeferred)
{
    Zspage *z = &self->zs[id];
    SizeClass *c = &self->classes[z->cls];
    PyObject *run = z->run;
    self->pages -= c->pages;
    self->nzspages--;
    PyBuffer_Release(&z->buf);
    PyMem_Free(z->owner);
    z->owner = NULL;
    z->freestk = NULL;
    z->mem = NULL;
    z->run = NULL;
    z->mapped = 0;
    z->fg = 0;
    z->nfree = 0;
    z->prev = NIL;
    z->next = self->zs_unused;
    self->zs_unused = id;
    if (deferred != NULL) {
        deferred[(*ndeferred)++] = run;
        return 0;
    }
    /* state is consistent now: the allocator may run any Python code */
    PyObject *r = self->free_fn ? PyObject_CallOneArg(self->free_fn, run) : NULL;
    Py_DECREF(run);
    if (r == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PoolError, "zsmalloc: the pool's allocator is gone");
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Give back the deferred runs, in order; the first error is raised after all are tried. */
static int
free_deferred(ZsCore *self, PyObject **runs, Py_ssize_t n)
{
    int rc = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = NULL;
        if (self->free_fn != NULL)
            r = PyObject_CallOneArg(self->free_fn, runs[i]);
        Py_DECREF(runs[i]);
        if (r != NULL) {
            Py_DECREF(r);
        }
        else if (rc == 0) {
            rc = -1;
            if (!PyErr_Occurred())
                PyErr_SetString(PoolError, "zsmalloc: the pool's allocator is gone");
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            for (Py_ssize_t j = i + 1; j < n; j++) {
                PyObject *r2 = self->free_fn ? PyObject_CallOneArg(self->free_fn, runs[j]) : NULL;
                Py_DECREF(runs[j]);
                if (r2 == NULL)
                    PyErr_Clear();
                Py_XDECREF(r2);
            }
            PyErr_Restore(t, v, tb);
            return rc;
        }
    }
    return rc;
}

/* A new empty zspage for class ci, made cur (for an object of size bytes: the peak). */
static int32_t
new_zspage(ZsCore *self, int ci, Py_ssize_t size)
{
    SizeClass *c = &self->classes[ci];
    int32_t pages = c->pages, objs = c->objs, csize = c->size;
    if (check_not_busy(self) < 0)
        return NIL;
    if (self->alloc_fn == NULL) {
        PyErr_SetString(PoolError, "zsmalloc: the pool's allocator is gone");
        return NIL;
    }
    /* C memory first: after alloc_pages() succeeds nothing may fail */
    if (zs_reserve_id(self) == NIL)
        return NIL;
    uint64_t *owner = PyMem_Calloc((size_t)objs, sizeof(uint64_t) + sizeof(uint16_t));
    if (owner == NULL) {
        PyErr_NoMemory();
        return NIL;
    }
    PyObject *npages = PyLong_FromLong(pages);
    if (npages == NULL) {
        PyMem_Free(owner);
        return NIL;
    }
    self->busy = 1;
    PyObject *run = PyObject_CallOneArg(self->alloc_fn, npages);
    self->busy = 0;
    Py_DECREF(npages);
    if (run == NULL) {
        PyMem_Free(owner);
        if (PoolAllocError != NULL && PyErr_ExceptionMatches(PoolAllocError)) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_NormalizeException(&t, &v, &tb);
            self->alloc_fail++;
            PyObject *p = PyLong_FromLong(pages), *s = PyLong_FromLong(csize);
            if (p != NULL && s != NULL && v != NULL)
                raise_helper(self, str_alloc_failed, p, s, v);
            Py_XDECREF(p);
            Py_XDECREF(s);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        }
        return NIL;
    }
    /* A run must be a writable, contiguous memoryview of single bytes, pages * 4096 long. */
    Py_buffer buf;
    int ok = 0;
    if (PyMemoryView_Check(run)
        && PyObject_GetBuffer(run, &buf, PyBUF_CONTIG | PyBUF_FORMAT) == 0) {
        ok = buf.ndim == 1 && buf.itemsize == 1 && buf.len == (Py_ssize_t)pages * ZS_PAGE_SIZE
             && (buf.format == NULL || strcmp(buf.format, "B") == 0);
        if (!ok)
            PyBuffer_Release(&buf);
    }
    if (!ok) {
        PyErr_Clear();
        PyObject *r = PyObject_CallOneArg(self->free_fn, run);
        Py_XDECREF(r);
        PyErr_Clear();
        PyObject *n = PyLong_FromLong(pages);
        if (n != NULL) {
            raise_helper(self, str_bad_run, run, n, NULL);  /* the message lives in Python */
            Py_DECREF(n);
        }
        Py_DECREF(run);
        PyMem_Free(owner);
        return NIL;
    }
    int32_t id = zs_reserve_id(self);  /* reserved above; the array did not move since */
    zs_take_id(self, id);
    c = &self->classes[ci];
    Zspage *z = &self->zs[id];
    z->run = run;
    z->buf = buf;
    z->mem = buf.buf;
    z->owner = owner;
    z->freestk = (uint16_t *)(owner + objs);
    for (int32_t i = 0; i < objs; i++)
        z->freestk[i] = (uint16_t)(objs - 1 - i);  /* pops hand out the lowest slot first */
    z->nfree = objs;
    z->mapped = 0;
    z->prev = z->next = NIL;
    z->cls = (int16_t)ci;
    z->fg = 0;
    self->pages += pages;
    self->nzspages++;
    c->cur = id;
    self->peak_before = self->peak_pages;
    self->at_peak_before = self->stored_at_peak;
    if (self->pages > self->peak_pages) {
        self->peak_pages = self->pages;
        self->stored_at_peak = self->stored + size;
    }
    return id;
}

/* The fullest partial zspage of the class (its group's last added) made cur, or a new one. */
static inline int32_t
pick_zspage(ZsCore *self, int ci, Py_ssize_t size)
{
    SizeClass *c = &self->classes[ci];
    uint32_t mask = c->partial_mask;
    if (mask == 0)
        return new_zspage(self, ci, size);
    int fg = 31 - __builtin_clz(mask);
    int32_t id = c->tail[fg];
    list_remove(self, c, id);
    c->cur = id;
    return id;
}

/* Undo a malloc_write whose data could not be written (its slot was not taken), so that the
 * pool is as it was: a zspage made for the object goes back, and the peak with it; a zspage
 * picked from its fullness group goes back to its place there (the tail it was taken from). */
static int
unwind(ZsCore *self, int ci, int32_t id, int picked)
{
    SizeClass *c = &self->classes[ci];
    Zspage *z = &self->zs[id];
    if (z->nfree == c->objs) {
        c->cur = NIL;
        self->peak_pages = self->peak_before;
        self->stored_at_peak = self->at_peak_before;
        return release_zspage(self, id, NULL, NULL);
    }
    if (picked) {
        c->cur = NIL;
        list_append(self, c, id, z->fg);
    }
    return 0;
}

/* The slot just taken filled the zspage: into the full group; the next malloc picks again. */
static inline void
after_take(ZsCore *self, SizeClass *c, int32_t id)
{
    if (self->zs[id].nfree == 0) {
        list_append(self, c, id, FG_FULL);
        c->cur = NIL;
    }
}

/* -- data arguments ------------------------------------------------------------------------ */

/* The bytes of data: 1 = contiguous (ptr, len), 2 = strided 'B' buffer in *b (len), 0 = not a
 * bytes-like object of single bytes (no error set). *held says whether *b must be released. */
static inline int
data_bytes(PyObject *data, Py_buffer *b, int *held, const char **ptr, Py_ssize_t *len)
{
    *held = 0;
    if (PyBytes_CheckExact(data)) {
        *ptr = PyBytes_AS_STRING(data);
        *len = PyBytes_GET_SIZE(data);
        return 1;
    }
    if (PyObject_GetBuffer(data, b, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        return 0;
    }
    *held = 1;
    if (b->ndim != 1 || b->itemsize != 1
        || (b->format != NULL && strcmp(b->format, "B") != 0 && strcmp(b->format, "@B") != 0)) {
        PyBuffer_Release(b);
        *held = 0;
        return 0;
    }
    *len = b->shape[0];
    *ptr = b->buf;
    if (b->strides != NULL && b->strides[0] != 1 && b->shape[0] > 1)
        return 2;
    return 1;
}

/* len(data) for the error paths; -1 with no error set if it has none (a TypeError: the
 * caller raises its "bytes-like" error), -1 with the error set if __len__ raised anything
 * else (which propagates, as in PyZsPool: KeyboardInterrupt, MemoryError, OverflowError). */
static Py_ssize_t
data_len(PyObject *data)
{
    Py_ssize_t n = PyObject_Length(data);
    if (n < 0 && PyErr_ExceptionMatches(PyExc_TypeError))
        PyErr_Clear();
    return n;
}

/* Copy n bytes of data into dst. The data may be a view of the pool's own memory, even of the
 * same object (write(h, view(h)[10:])): memmove for a contiguous source, a bounce buffer for a
 * strided one. 0, or -1 with an error set. */
static inline int
copy_in(unsigned char *dst, int kind, const char *ptr, Py_buffer *b, Py_ssize_t n)
{
    if (kind == 1) {
        memmove(dst, ptr, (size_t)n);
        return 0;
    }
    unsigned char *tmp = PyMem_Malloc((size_t)(n > 0 ? n : 1));
    if (tmp == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = PyBuffer_ToContiguous(tmp, b, n, 'C');
    if (rc == 0)
        memcpy(dst, tmp, (size_t)n);
    PyMem_Free(tmp);
    return rc;
}

/* A memoryview of len bytes at off in a run, sharing the run's managed buffer (so it keeps the
 * memory alive). The same as run[off:off + len] (or its toreadonly()) without the slice
 * object: a new view of the run's buffer narrowed in place, as memoryview slicing does. */
/* -- MapExport: the exporter of one map() ------------------------------------------------ */

/* map() returns memoryview(MapExport): each map has its own exporter, held by the view's managed
 * buffer, which every view derived from the mapped view (a slice, memoryview(view)) shares. So
 * once the mapped view is released, the exporter is still referenced exactly while a derived
 * view (or view.obj) is alive: unmap refuses then, before the object can be freed or moved and
 * its memory reused (the Python pools' MapExport, a numpy array, is checked the same way). */
typedef struct {
    PyObject_HEAD
    Py_buffer run;      /* an export of the zspage's run: its memory stays valid */
    char *buf;
    Py_ssize_t len;
    int readonly;
} MapExport;

static int
MapExport_getbuffer(MapExport *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, self->readonly,
                             flags);
}

static void
MapExport_dealloc(MapExport *self)
{
    PyBuffer_Release(&self->run);
    PyObject_Free(self);
}

static PyBufferProcs MapExport_as_buffer = {
    .bf_getbuffer = (getbufferproc)MapExport_getbuffer,
};

static PyTypeObject MapExportType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.pool._zscore.MapExport",
    .tp_doc = PyDoc_STR("The exporter of one ZsPool.map(): the object's bytes, for the view "
                        "map() returns (made by the pool only)."),
    .tp_basicsize = sizeof(MapExport),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_dealloc = (destructor)MapExport_dealloc,
    .tp_as_buffer = &MapExport_as_buffer,
};

/* A map's view of run[off : off + len]: memoryview(a new MapExport). */
static PyObject *
map_view(PyObject *run, Py_ssize_t off, Py_ssize_t len, int readonly)
{
    MapExport *x = PyObject_New(MapExport, &MapExportType);
    if (x == NULL)
        return NULL;
    x->run.obj = NULL;
    if (PyObject_GetBuffer(run, &x->run, PyBUF_WRITABLE) < 0) {
        Py_DECREF(x);
        return NULL;
    }
    if (off < 0 || off + len > x->run.len) {
        Py_DECREF(x);
        PyErr_SetString(PoolError, "zsmalloc: a zspage's run changed shape");
        return NULL;
    }
    x->buf = (char *)x->run.buf + off;
    x->len = len;
    x->readonly = readonly;
    PyObject *v = PyMemoryView_FromObject((PyObject *)x);
    Py_DECREF(x);
    return v;
}

/* The MapExport of a live map view in the (writable) map table, or NULL (borrowed). */
static PyObject *
map_exporter(PyObject *view)
{
    if (!PyMemoryView_Check(view))
        return NULL;
    PyMemoryViewObject *mv = (PyMemoryViewObject *)view;
    if (mv->flags & _Py_MEMORYVIEW_RELEASED || mv->view.obj == NULL
        || Py_TYPE(mv->view.obj) != &MapExportType)
        return NULL;
    return mv->view.obj;
}

/* Replace view (by identity) in list with a new view of exporter x: the map stays. */
static int
rearm_map(PyObject *list, PyObject *view, PyObject *x)
{
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(list, i) == view) {
            PyObject *fresh = PyMemoryView_FromObject(x);
            if (fresh == NULL)
                return -1;
            return PyList_SetItem(list, i, fresh);
        }
    }
    return 0;
}

static PyObject *
run_view(PyObject *run, Py_ssize_t off, Py_ssize_t len, int readonly)
{
    /* hold the run: making the view may run the GC, and a finalizer might free the object */
    Py_INCREF(run);
    PyObject *v = PyMemoryView_FromObject(run);
    Py_DECREF(run);
    if (v == NULL)
        return NULL;
    PyMemoryViewObject *mv = (PyMemoryViewObject *)v;
    if (mv->view.ndim != 1 || mv->view.strides == NULL || mv->view.strides[0] != 1
        || off < 0 || off + len > mv->view.len) {
        Py_DECREF(v);
        PyErr_SetString(PoolError, "zsmalloc: a zspage's run changed shape");
        return NULL;
    }
    mv->view.buf = (char *)mv->view.buf + off;
    mv->view.len = len;
    mv->view.shape[0] = len;
    if (readonly)
        mv->view.readonly = 1;
    return v;
}

/* -- the hot methods --------------------------------------------------------------------- */

static PyObject *
bad_size(ZsCore *self, PyObject *size)
{
    return raise_helper(self, str_bad_size, size, NULL, NULL);
}

static PyObject *
ZsCore_malloc(ZsCore *self, PyObject *arg)
{
    Py_ssize_t size;
    if (PyLong_CheckExact(arg)) {
        size = PyLong_AsSsize_t(arg);
    }
    else if (PyIndex_Check(arg)) {
        size = PyNumber_AsSsize_t(arg, NULL);
    }
    else {
        return bad_size(self, arg);
    }
    if (size == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return bad_size(self, arg);
    }
    int ci;
    if (size <= 0 || size > ZS_PAGE_SIZE || (ci = self->class_of[size] - 1) < 0)
        return bad_size(self, arg);
    if (check_not_busy(self) < 0 || tab_reserve(self) < 0)
        return NULL;
    SizeClass *c = &self->classes[ci];
    int32_t id = c->cur;
    if (id == NIL) {
        id = pick_zspage(self, ci, size);
        if (id == NIL)
            return NULL;
    }
    Zspage *z = &self->zs[id];
    int slot = z->freestk[--z->nfree];
    after_take(self, c, id);
    uint64_t h = ++self->serial;
    z->owner[slot] = h;
    tab_insert(self, h, id, slot, size);
    self->nobjs++;
    self->stored += size;
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *
ZsCore_malloc_write(ZsCore *self, PyObject *data)
{
    Py_buffer b;
    int held;
    const char *ptr = NULL;
    Py_ssize_t size;
    int kind = data_bytes(data, &b, &held, &ptr, &size);
    if (kind == 0) {  /* not writable as bytes: the size decides which error (as PyZsPool) */
        size = data_len(data);
        if (size < 0) {
            if (PyErr_Occurred())
                return NULL;
            return raise_helper(self, str_bad_data, zero, data, NULL);
        }
    }
    int ci;
    if (size <= 0 || size > ZS_PAGE_SIZE || (ci = self->class_of[size] - 1) < 0) {
        if (held)
            PyBuffer_Release(&b);
        PyObject *n = PyLong_FromSsize_t(size);
        if (n == NULL)
            return NULL;
        bad_size(self, n);
        Py_DECREF(n);
        return NULL;
    }
    if (check_not_busy(self) < 0 || tab_reserve(self) < 0)
        goto fail;
    SizeClass *c = &self->classes[ci];
    int32_t id = c->cur;
    int picked = id == NIL;
    if (picked) {
        id = pick_zspage(self, ci, size);
        if (id == NIL)
            goto fail;
        c = &self->classes[ci];
    }
    Zspage *z = &self->zs[id];
    int slot = z->freestk[z->nfree - 1];
    if (kind == 0 || copy_in(z->mem + (Py_ssize_t)slot * c->size + c->hdr, kind, ptr, &b,
                             size) < 0) {
        /* the slot was never taken: give back a zspage made for it */
        if (kind != 0) {
            PyErr_Clear();
            PyBuffer_Release(&b);
            held = 0;
        }
        if (unwind(self, ci, id, picked) < 0)
            return NULL;
        return raise_helper(self, str_bad_data, zero, data, NULL);
    }
    if (held)
        PyBuffer_Release(&b);
    z->nfree--;
    after_take(self, c, id);
    uint64_t h = ++self->serial;
    z->owner[slot] = h;
    tab_insert(self, h, id, slot, size);
    self->nobjs++;
    self->stored += size;
    return PyLong_FromUnsignedLongLong(h);
fail:
    if (held)
        PyBuffer_Release(&b);
    return NULL;
}

static inline unsigned char *
entry_ptr(ZsCore *self, Entry *e)
{
    Zspage *z = &self->zs[e->zs];
    SizeClass *c = &self->classes[z->cls];
    return z->mem + (Py_ssize_t)e->slot * c->size + c->hdr;
}

static PyObject *
ZsCore_read(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_read);
    return PyBytes_FromStringAndSize((const char *)entry_ptr(self, e), e->size);
}

static PyObject *
ZsCore_view(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_view);
    Zspage *z = &self->zs[e->zs];
    SizeClass *c = &self->classes[z->cls];
    return run_view(z->run, (Py_ssize_t)e->slot * c->size + c->hdr, e->size, 1);
}

static PyObject *
ZsCore_obj_size(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_obj_size);
    return PyLong_FromLong(e->size);
}

static PyObject *
ZsCore_write(ZsCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "write() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *handle = args[0], *data = args[1];
    uint64_t h;
    if (!handle_key(handle, &h) || tab_lookup(self, h) == NULL)
        return raise_invalid(self, handle, op_write);
    Py_buffer b;
    int held;
    const char *ptr = NULL;
    Py_ssize_t n;
    int kind = data_bytes(data, &b, &held, &ptr, &n);
    if (kind == 0) {
        n = data_len(data);
        if (n < 0 && PyErr_Occurred())
            return NULL;
    }
    /* getting the data may have run Python code: look the handle up again */
    Entry *e = tab_lookup(self, h);
    if (e == NULL) {
        if (held)
            PyBuffer_Release(&b);
        return raise_invalid(self, handle, op_write);
    }
    Py_ssize_t size = e->size;
    if (n < 0 || (kind == 0 && n <= size)) {
        PyObject *hh = PyLong_FromUnsignedLongLong(h);
        if (hh != NULL) {
            raise_helper(self, str_bad_data, hh, data, NULL);
            Py_DECREF(hh);
        }
        return NULL;
    }
    if (n > size) {
        if (held)
            PyBuffer_Release(&b);
        PyObject *hh = PyLong_FromUnsignedLongLong(h), *nn = PyLong_FromSsize_t(n),
                 *ss = PyLong_FromSsize_t(size);
        if (hh && nn && ss)
            raise_helper(self, str_too_long, hh, nn, ss);
        Py_XDECREF(hh);
        Py_XDECREF(nn);
        Py_XDECREF(ss);
        return NULL;
    }
    int rc = copy_in(entry_ptr(self, e), kind, ptr, &b, n);
    if (held)
        PyBuffer_Release(&b);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Free the object of entry e (handle h); handle_obj for the messages. 0 or -1 (raised). */
static int
free_entry(ZsCore *self, Entry *e, uint64_t h)
{
    int32_t id = (int32_t)e->zs;
    Zspage *z = &self->zs[id];
    if (z->mapped && self->maps != NULL && PyDict_GET_SIZE(self->maps) > 0) {
        PyObject *key = PyLong_FromUnsignedLongLong(h);
        if (key == NULL)
            return -1;
        int pinned = PyDict_Contains(self->maps, key);
        if (pinned != 0) {
            if (pinned > 0)
                raise_helper(self, str_pinned, key, NULL, NULL);
            Py_DECREF(key);
            return -1;
        }
        Py_DECREF(key);
        e = tab_lookup(self, h);  /* (nothing ran, but stay safe) */
        if (e == NULL) {
            raise_invalid_h(self, h, op_free);
            return -1;
        }
        id = (int32_t)e->zs;
        z = &self->zs[id];
    }
    Py_ssize_t stored = self->stored;
    if (self->pages == self->peak_pages && stored > self->stored_at_peak)
        self->stored_at_peak = stored;  /* the most the pool held at its peak size */
    self->stored = stored - e->size;
    int slot = e->slot;
    tab_delete(self, e);
    self->nobjs--;
    z->owner[slot] = 0;
    z->freestk[z->nfree++] = (uint16_t)slot;
    SizeClass *c = &self->classes[z->cls];
    int32_t nfree = z->nfree;
    int fg = c->fg_of_free[nfree];
    int32_t cur = c->cur;
    if (id == cur) {  /* the zspage being filled is in no group */
        if (fg != c->fg_of_free[nfree - 1]) {
            if (nfree == c->objs) {
                c->cur = NIL;
                return release_zspage(self, id, NULL, NULL);
            }
            if (c->partial_mask >> (fg + 1))
                attach_cur(self, c);  /* a fuller zspage exists: the next malloc picks it */
        }
        return 0;
    }
    if (fg != z->fg) {  /* crossed into another fullness group */
        list_remove(self, c, id);
        if (nfree == c->objs)
            return release_zspage(self, id, NULL, NULL);
        if (cur != NIL && fg > c->fg_of_free[self->zs[cur].nfree]) {
            attach_cur(self, c);  /* fuller than the zspage being filled: fill this one */
            c->cur = id;
        }
        else {
            list_append(self, c, id, fg);
        }
    }
    return 0;
}

static PyObject *
ZsCore_free(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_free);
    if (check_not_busy(self) < 0 || free_entry(self, e, h) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
ZsCore_read_free(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_read_free);
    if (check_not_busy(self) < 0)
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize((const char *)entry_ptr(self, e), e->size);
    if (data == NULL)
        return NULL;
    if (free_entry(self, e, h) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

static int
ZsCore_contains(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    if (!handle_key(handle, &h))
        return PyErr_Occurred() ? -1 : 0;
    return tab_lookup(self, h) != NULL;
}

static Py_ssize_t
ZsCore_len(ZsCore *self)
{
    return self->nobjs;
}

/* -- malloc_write_batch ---------------------------------------------------------------------- */

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

/* Integers from a buffer of a native integer format, as int64 (an unsigned value above
 * INT64_MAX wraps negative: it is out of every range checked, as it is in Python). */
static int
buffer_ints(Py_buffer *b, int64_t *out)
{
    const char *f = b->format ? b->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (f[0] == '\0' || f[1] != '\0')
        return 0;
    for (Py_ssize_t i = 0; i < b->shape[0]; i++) {
        const char *p = (const char *)b->buf + i * b->strides[0];
        int64_t v;
#define GET(T) do { T x; memcpy(&x, p, sizeof x); v = (int64_t)x; } while (0)
        switch (f[0]) {
        case 'b': if (b->itemsize != 1) return 0; GET(int8_t); break;
        case 'B': if (b->itemsize != 1) return 0; GET(uint8_t); break;
        case 'h': if (b->itemsize != 2) return 0; GET(int16_t); break;
        case 'H': if (b->itemsize != 2) return 0; GET(uint16_t); break;
        case 'i': case 'l': case 'q': case 'n':
            if (b->itemsize == 4) GET(int32_t);
            else if (b->itemsize == 8) GET(int64_t);
            else return 0;
            break;
        case 'I': case 'L': case 'Q': case 'N':
            if (b->itemsize == 4) GET(uint32_t);
            else if (b->itemsize == 8) GET(uint64_t);
            else return 0;
            break;
        default:
            return 0;
        }
#undef GET
        out[i] = v;
    }
    return 1;
}

/* The integers of o (a 1-D integer array, or any iterable of integers), read once, as a new
 * int64 array (PyMem_Free it) of *n. 1 ok, 0 not integers (no error set: the caller asks
 * Python for the message), -1 another error (set). An int too big for int64 becomes INT64_MIN:
 * out of range for every use, as the big int is in Python. For the error message, which must
 * not read o again: *exact is the tuple of the ints as Python has them (the generic way; NULL
 * for a buffer, whose values *out holds exactly), *u64 whether they came from an unsigned
 * 64-bit buffer (a value above INT64_MAX wrapped negative). */
static int
read_ints(PyObject *o, int64_t **out, Py_ssize_t *n, PyObject **exact, int *u64)
{
    *out = NULL;
    *n = 0;
    *exact = NULL;
    *u64 = 0;
    Py_buffer b;
    if (PyObject_CheckBuffer(o) && PyObject_GetBuffer(o, &b, PyBUF_RECORDS_RO) == 0) {
        int ok = 0;
        if (b.ndim == 1) {
            const char *f = b.format ? b.format : "B";
            f += (*f == '@' || *f == '=' || *f == '<');
            *u64 = b.itemsize == 8 && strchr("ILQN", *f) != NULL && *f != '\0';
            *out = PyMem_Malloc(sizeof(int64_t) * (size_t)(b.shape[0] > 0 ? b.shape[0] : 1));
            if (*out == NULL) {
                PyBuffer_Release(&b);
                PyErr_NoMemory();
                return -1;
            }
            ok = buffer_ints(&b, *out);
            *n = b.shape[0];
        }
        PyBuffer_Release(&b);
        if (ok)
            return 1;
        PyMem_Free(*out);
        *out = NULL;
        *n = 0;
    }
    PyErr_Clear();
    /* the generic way, as Python's [operator.index(v) for v in o]: a tuple holds the items
     * while their __index__ runs */
    PyObject *t = owned_tuple(o);
    if (t == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t len = PyTuple_GET_SIZE(t);
    int64_t *vals = PyMem_Malloc(sizeof(int64_t) * (size_t)(len > 0 ? len : 1));
    PyObject *ints = PyTuple_New(len);
    if (vals == NULL || ints == NULL) {
        Py_DECREF(t);
        Py_XDECREF(ints);
        PyMem_Free(vals);
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *v = PyNumber_Index(PyTuple_GET_ITEM(t, i));
        if (v == NULL) {
            Py_DECREF(t);
            Py_DECREF(ints);
            PyMem_Free(vals);
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        PyTuple_SET_ITEM(ints, i, v);  /* (the int itself: exact for the message) */
        if (x == -1 && PyErr_Occurred()) {
            Py_DECREF(t);
            Py_DECREF(ints);
            PyMem_Free(vals);
            return -1;
        }
        vals[i] = overflow ? INT64_MIN : (int64_t)x;
    }
    Py_DECREF(t);
    *out = vals;
    *n = len;
    *exact = ints;
    return 1;
}

/* The ints read_ints read, as a tuple for the error message: exact (a new reference). */
static PyObject *
ints_as_read(const int64_t *vals, Py_ssize_t n, PyObject *exact, int u64)
{
    if (exact != NULL) {
        Py_INCREF(exact);
        return exact;
    }
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; t != NULL && i < n; i++) {
        PyObject *v = u64 ? PyLong_FromUnsignedLongLong((unsigned long long)vals[i])
                          : PyLong_FromLongLong(vals[i]);
        if (v == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* Free the objects the batch wrote (newest first), keeping the error being raised. */
static void
batch_rollback(ZsCore *self, const uint64_t *hs, Py_ssize_t n)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        Entry *e = tab_lookup(self, hs[k]);
        if (e != NULL && free_entry(self, e, hs[k]) < 0)
            PyErr_Clear();
    }
    PyErr_Restore(et, ev, tb);
}

/* malloc_write_batch(buf, offsets, sizes, idx=None) -> list of handles: see
 * hwzswap.pool.base.Pool.malloc_write_batch. Every argument is read into C memory and every
 * item checked first (the messages come from the Python side, which makes the same checks);
 * then one loop takes a slot per item and copies its bytes, as ZsCore_malloc then a write. */
static PyObject *
ZsCore_malloc_write_batch(ZsCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buf", "offsets", "sizes", "idx", NULL};
    PyObject *buf, *offsets, *sizes, *idx = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:malloc_write_batch", kwlist, &buf,
                                     &offsets, &sizes, &idx))
        return NULL;
    if (check_ready(self) < 0)
        return NULL;
    Py_buffer b;
    int64_t *offs = NULL, *lens = NULL, *order = NULL;
    uint64_t *hs = NULL;
    Py_ssize_t noffs = 0, n = 0, norder = 0, nh = 0;
    PyObject *out = NULL;
    /* each argument is read once; the error message is built from what was read */
    PyObject *exact[3] = {NULL, NULL, NULL};
    int u64[3] = {0, 0, 0};
    PyObject *unread = NULL;  /* the name of the argument that could not be read */
    if (PyObject_GetBuffer(buf, &b, PyBUF_SIMPLE) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_BufferError)
            && !PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL;
        PyErr_Clear();
        PyObject *exc = PyObject_CallMethodObjArgs((PyObject *)self, str_batch_error, buf,
                                                   Py_None, Py_None, Py_None, str_arg_buf,
                                                   NULL);
        return raise_returned(exc);
    }
    int rc = read_ints(offsets, &offs, &noffs, &exact[0], &u64[0]);
    if (rc == 0)
        unread = str_arg_offsets;
    if (rc == 1 && (rc = read_ints(sizes, &lens, &n, &exact[1], &u64[1])) == 0)
        unread = str_arg_sizes;
    if (rc == 1 && noffs != n)
        rc = 0;
    if (rc == 1 && idx != Py_None && (rc = read_ints(idx, &order, &norder, &exact[2],
                                                     &u64[2])) == 0)
        unread = str_arg_idx;
    if (rc == 1 && idx == Py_None) {
        norder = n;
        order = PyMem_Malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        if (order == NULL) {
            PyErr_NoMemory();
            rc = -1;
        }
        for (Py_ssize_t i = 0; order != NULL && i < n; i++)
            order[i] = i;
    }
    for (Py_ssize_t k = 0; rc == 1 && k < norder; k++) {
        int64_t i = order[k];
        if (i < 0 || i >= n || lens[i] < 1 || lens[i] > ZS_PAGE_SIZE || offs[i] < 0
            || offs[i] > (int64_t)b.len - lens[i])
            rc = 0;
    }
    if (rc < 0)
        goto done;
    if (rc == 0)
        goto bad_args;
    hs = PyMem_Malloc(sizeof(uint64_t) * (size_t)(norder > 0 ? norder : 1));
    if (hs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const unsigned char *base = b.buf;
    for (Py_ssize_t k = 0; k < norder; k++) {
        int64_t i = order[k];
        Py_ssize_t size = (Py_ssize_t)lens[i];
        int ci = self->class_of[size] - 1;
        if (ci < 0) {  /* a destroyed pool: malloc's error */
            PyObject *s = PyLong_FromSsize_t(size);
            if (s != NULL) {
                bad_size(self, s);
                Py_DECREF(s);
            }
            goto fail;
        }
        if (check_not_busy(self) < 0 || tab_reserve(self) < 0)
            goto fail;
        SizeClass *c = &self->classes[ci];
        int32_t id = c->cur;
        if (id == NIL) {
            id = pick_zspage(self, ci, size);
            if (id == NIL) {
                if (PoolAllocError != NULL && PyErr_ExceptionMatches(PoolAllocError)) {
                    PyErr_Clear();  /* no room: the batch stops here */
                    break;
                }
                goto fail;
            }
            c = &self->classes[ci];
        }
        Zspage *z = &self->zs[id];
        int slot = z->freestk[--z->nfree];
        memmove(z->mem + (Py_ssize_t)slot * c->size + c->hdr, base + offs[i], (size_t)size);
        after_take(self, c, id);
        uint64_t h = ++self->serial;
        z->owner[slot] = h;
        tab_insert(self, h, id, slot, size);
        self->nobjs++;
        self->stored += size;
        hs[nh++] = h;
    }
    out = PyList_New(nh);
    for (Py_ssize_t k = 0; out != NULL && k < nh; k++) {
        PyObject *v = PyLong_FromUnsignedLongLong(hs[k]);
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, k, v);
    }
    if (out == NULL)
        goto fail;
    goto done;
fail:
    batch_rollback(self, hs, nh);
    goto done;
bad_args:
    {
        /* the arguments as read: buf's size, the ints read (exact), up to the one that could
         * not be read, passed as it came (Python names it without reading it) */
        PyObject *a[4] = {PyLong_FromSsize_t(b.len), NULL, NULL, NULL};
        PyObject *raw[3] = {offsets, sizes, idx};
        const int64_t *vals[3] = {offs, lens, order};
        Py_ssize_t lens3[3] = {noffs, n, norder};
        PyObject *names[3] = {str_arg_offsets, str_arg_sizes, str_arg_idx};
        int ok = a[0] != NULL;
        for (int k = 0; k < 3; k++) {
            if (!ok || (k == 2 && idx == Py_None) || unread == names[k] || vals[k] == NULL) {
                a[k + 1] = (k == 2 && idx == Py_None) || unread == names[k] ? raw[k] : Py_None;
                Py_INCREF(a[k + 1]);
            }
            else {
                a[k + 1] = ints_as_read(vals[k], lens3[k], exact[k], u64[k]);
                ok = a[k + 1] != NULL;
            }
        }
        PyObject *exc = NULL;
        if (ok && a[3] != NULL)
            exc = PyObject_CallMethodObjArgs((PyObject *)self, str_batch_error, a[0], a[1], a[2],
                                             a[3], unread ? unread : Py_None, NULL);
        for (int k = 0; k < 4; k++)
            Py_XDECREF(a[k]);
        raise_returned(exc);
    }
done:
    PyBuffer_Release(&b);
    PyMem_Free(offs);
    PyMem_Free(lens);
    PyMem_Free(order);
    PyMem_Free(hs);
    for (int k = 0; k < 3; k++)
        Py_XDECREF(exact[k]);
    return out;
}

/* -- map / unmap ----------------------------------------------------------------------------- */

/* Remove the object v from the list by identity (the last occurrence), if it is there. */
static int
list_remove_obj(PyObject *list, PyObject *v)
{
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--)
        if (PyList_GET_ITEM(list, i) == v)
            return PyList_SetSlice(list, i, i + 1, NULL);
    return 0;
}

/* The list of views mapped now for key in maps (a new reference); created when absent if
 * create. NULL with an error (a PoolError when _maps holds something else than a list: it is
 * reachable from Python), or NULL without one when absent and not create. */
static PyObject *
maps_views(ZsCore *self, PyObject *maps, PyObject *key, int create)
{
    PyObject *views = PyDict_GetItemWithError(maps, key);  /* borrowed */
    if (views == NULL) {
        if (PyErr_Occurred() || !create)
            return NULL;
        views = PyList_New(0);
        if (views == NULL || PyDict_SetItem(maps, key, views) < 0) {
            Py_XDECREF(views);
            return NULL;
        }
        return views;
    }
    if (!PyList_CheckExact(views))
        return raise_helper(self, str_bad_maps, key, NULL, NULL);
    Py_INCREF(views);
    return views;
}

static PyObject *
ZsCore_map(ZsCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"handle", "writable", NULL};
    PyObject *handle;
    int writable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:map", kwlist, &handle, &writable))
        return NULL;
    uint64_t h;
    if (!handle_key(handle, &h) || tab_lookup(self, h) == NULL)
        return raise_invalid(self, handle, op_map);
    if (self->maps == NULL) {
        PyErr_SetString(PoolError, "zsmalloc: the pool's map table is gone");
        return NULL;
    }
    PyObject *maps = self->maps, *key = PyLong_FromUnsignedLongLong(h);
    if (key == NULL)
        return NULL;
    Py_INCREF(maps);
    /* Making the view and filing it run Python code (the GC's finalisers, a foreign key's
     * __eq__ in the writable _maps), which may free or move the object: file it, then check
     * that the object is still where the view is; else take it out and try again. */
    for (int tries = 0; tries < 64; tries++) {
        Entry *e = tab_lookup(self, h);
        if (e == NULL)
            break;
        uint32_t zid = e->zs;
        uint16_t slot = e->slot;
        Zspage *z = &self->zs[zid];
        SizeClass *c = &self->classes[z->cls];
        PyObject *run = z->run;
        Py_INCREF(run);  /* held: its identity tells whether the zspage is still the same */
        PyObject *view = map_view(run, (Py_ssize_t)slot * c->size + c->hdr, e->size,
                                  !writable);
        PyObject *views = view == NULL ? NULL : maps_views(self, maps, key, 1);
        if (views == NULL || PyList_Append(views, view) < 0) {
            Py_XDECREF(views);
            Py_XDECREF(view);
            Py_DECREF(run);
            Py_DECREF(key);
            Py_DECREF(maps);
            return NULL;
        }
        e = tab_lookup(self, h);
        if (e != NULL && e->zs == zid && e->slot == slot && self->zs[zid].run == run) {
            self->zs[zid].mapped++;
            Py_DECREF(views);
            Py_DECREF(run);
            Py_DECREF(key);
            Py_DECREF(maps);
            return view;
        }
        int rc = list_remove_obj(views, view);
        if (rc == 0 && PyList_GET_SIZE(views) == 0
            && PyDict_GetItemWithError(maps, key) == views)
            rc = PyDict_DelItem(maps, key);
        Py_DECREF(views);
        Py_DECREF(view);
        Py_DECREF(run);
        if (rc < 0 || PyErr_Occurred()) {
            Py_DECREF(key);
            Py_DECREF(maps);
            return NULL;
        }
    }
    Py_DECREF(key);
    Py_DECREF(maps);
    if (tab_lookup(self, h) != NULL) {
        PyErr_SetString(PoolError, "zsmalloc: map: the object kept moving while it was mapped "
                        "(finalisers that compact the pool?)");
        return NULL;
    }
    return raise_invalid(self, handle, op_map);
}

static PyObject *
ZsCore_unmap(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    if (!handle_key(handle, &h) || tab_lookup(self, h) == NULL)
        return raise_invalid(self, handle, op_unmap);
    if (self->maps == NULL)
        return raise_helper(self, str_not_mapped, handle, NULL, NULL);
    PyObject *maps = self->maps, *key = PyLong_FromUnsignedLongLong(h);
    if (key == NULL)
        return NULL;
    Py_INCREF(maps);
    PyObject *result = NULL, *view = NULL, *x = NULL;
    PyObject *views = maps_views(self, maps, key, 0);
    if (views == NULL || PyList_GET_SIZE(views) == 0) {
        if (!PyErr_Occurred())
            raise_helper(self, str_not_mapped, handle, NULL, NULL);
        goto out;
    }
    view = PyList_GET_ITEM(views, PyList_GET_SIZE(views) - 1);
    Py_INCREF(view);
    x = map_exporter(view);
    if (x == NULL) {
        raise_helper(self, str_bad_maps, key, NULL, NULL);
        goto out;
    }
    Py_INCREF(x);
    PyObject *r = PyObject_CallMethodNoArgs(view, str_release);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            raise_helper(self, str_unmap_busy, handle, NULL, NULL);
        }
        goto out;
    }
    Py_DECREF(r);
    if (Py_REFCNT(x) > 1) {  /* a derived view (or view.obj) still holds the exporter */
        if (rearm_map(views, view, x) == 0)
            raise_helper(self, str_unmap_derived, handle, NULL, NULL);
        goto out;
    }
    if (list_remove_obj(views, view) < 0)
        goto out;
    if (PyList_GET_SIZE(views) == 0) {
        PyObject *cur = PyDict_GetItemWithError(maps, key);
        if ((cur == views && PyDict_DelItem(maps, key) < 0) || PyErr_Occurred())
            goto out;
    }
    Entry *e = tab_lookup(self, h);
    if (e != NULL && self->zs[e->zs].mapped > 0)
        self->zs[e->zs].mapped--;
    result = Py_None;
    Py_INCREF(result);
out:
    Py_XDECREF(x);
    Py_XDECREF(view);
    Py_XDECREF(views);
    Py_DECREF(key);
    Py_DECREF(maps);
    return result;
}

/* -- compaction ---------------------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static Py_ssize_t
class_free_slots(ZsCore *self, SizeClass *c)
{
    Py_ssize_t n = 0;
    for (int g = 0; g < NR_FG; g++)
        for (int32_t id = c->head[g]; id != NIL; id = self->zs[id].next)
            n += self->zs[id].nfree;
    if (c->cur != NIL)
        n += self->zs[c->cur].nfree;
    return n;
}

/* Pages compaction could free in the class (the kernel's zs_can_compact). */
static Py_ssize_t
can_compact(ZsCore *self, SizeClass *c)
{
    if (c->objs == 1)
        return 0;
    return class_free_slots(self, c) / c->objs * c->pages;
}

/* Two-finger compaction of one class: sources from the least used end, destinations from the
 * most used end of its partial zspages (a stable sort, as PyZsPool). part and tmp have room
 * for every zspage of the pool. */
static Py_ssize_t
compact_class(ZsCore *self, int ci, int32_t *part, int32_t *tmp, Py_ssize_t *cnt,
              PyObject **deferred, Py_ssize_t *ndeferred)
{
    SizeClass *c = &self->classes[ci];
    int32_t objs = c->objs, csize = c->size, hdr = c->hdr;
    attach_cur(self, c);
    Py_ssize_t n = 0;
    for (int g = 1; g < FG_FULL; g++) {
        for (int32_t id = c->head[g]; id != NIL; id = self->zs[id].next)
            tmp[n++] = id;
        c->head[g] = c->tail[g] = NIL;
        c->count[g] = 0;
    }
    c->partial_mask = 0;
    /* stable counting sort by (mapped > 0, objects in use) */
    int32_t nkeys = 2 * (objs + 1);
    memset(cnt, 0, sizeof(Py_ssize_t) * ((size_t)nkeys + 1));
    for (Py_ssize_t i = 0; i < n; i++) {
        Zspage *z = &self->zs[tmp[i]];
        cnt[(z->mapped ? objs + 1 : 0) + objs - z->nfree + 1]++;
    }
    for (int32_t k = 1; k <= nkeys; k++)
        cnt[k] += cnt[k - 1];
    for (Py_ssize_t i = 0; i < n; i++) {
        Zspage *z = &self->zs[tmp[i]];
        part[cnt[(z->mapped ? objs + 1 : 0) + objs - z->nfree]++] = tmp[i];
    }

    Py_ssize_t freed = 0, src_i = 0, dst_i = n - 1;
    uint64_t *hs = self->scratch_h;
    int hn = 0;
    int32_t loaded = NIL;  /* the source whose handles are in hs */
    while (src_i < dst_i) {
        int32_t sid = part[src_i];
        Zspage *src = &self->zs[sid];
        if (src->mapped) {
            src_i++;
            continue;
        }
        int32_t did = part[dst_i];
        Zspage *dst = &self->zs[did];
        if (loaded != sid) {  /* its objects, moved from the newest handle down */
            hn = 0;
            for (int32_t s = 0; s < objs; s++)
                if (src->owner[s])
                    hs[hn++] = src->owner[s];
            qsort(hs, (size_t)hn, sizeof(uint64_t), cmp_u64);
            loaded = sid;
        }
        while (hn > 0 && dst->nfree > 0) {
            uint64_t h = hs[--hn];
            Entry *e = tab_lookup(self, h);
            int sslot = e->slot;
            int dslot = dst->freestk[--dst->nfree];
            memcpy(dst->mem + (Py_ssize_t)dslot * csize + hdr,
                   src->mem + (Py_ssize_t)sslot * csize + hdr, e->size);
            dst->owner[dslot] = h;
            e->zs = (uint32_t)did;
            e->slot = (uint16_t)dslot;
            src->owner[sslot] = 0;
            src->freestk[src->nfree++] = (uint16_t)sslot;
        }
        if (hn == 0) {
            release_zspage(self, sid, deferred, ndeferred);
            freed += c->pages;
            part[src_i] = NIL;
            src_i++;
            loaded = NIL;
        }
        if (dst->nfree == 0)
            dst_i--;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (part[i] != NIL)
            list_append(self, c, part[i], c->fg_of_free[self->zs[part[i]].nfree]);
    return freed;
}

static void
note_peak(ZsCore *self)
{
    if (self->pages == self->peak_pages && self->stored > self->stored_at_peak)
        self->stored_at_peak = self->stored;
}

static PyObject *
ZsCore_compact(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->destroyed || !self->ready)
        return PyLong_FromLong(0);
    if (check_not_busy(self) < 0)
        return NULL;
    note_peak(self);
    /* all the memory it needs first: once a class is taken apart nothing may fail */
    Py_ssize_t nz = self->nzspages;
    int32_t *part = PyMem_Malloc(sizeof(int32_t) * (size_t)(2 * nz + 1));
    PyObject **deferred = PyMem_Malloc(sizeof(PyObject *) * (size_t)(nz + 1));
    Py_ssize_t *cnt = PyMem_Malloc(sizeof(Py_ssize_t) * (2 * (MAX_OBJS + 1) + 1));
    if (part == NULL || deferred == NULL || cnt == NULL) {
        PyMem_Free(part);
        PyMem_Free(deferred);
        PyMem_Free(cnt);
        return PyErr_NoMemory();
    }
    Py_ssize_t freed = 0, ndeferred = 0;
    for (int ci = self->nclasses - 1; ci >= 0; ci--) {
        if (can_compact(self, &self->classes[ci]) != 0)
            freed += compact_class(self, ci, part, part + nz, cnt, deferred, &ndeferred);
    }
    self->compacted += freed;
    PyMem_Free(part);
    PyMem_Free(cnt);
    /* the pool is consistent again: the allocator may run any Python code */
    int rc = free_deferred(self, deferred, ndeferred);
    PyMem_Free(deferred);
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(freed);
}

/* -- destroy -------------------------------------------------------------------------------- */

/* Before destroy frees the memory: release every map's view, or raise a PoolError (nothing
 * freed, every map kept, with a live view) when a buffer or view derived from one is still
 * alive (the Python pools' _release_maps). Anything else in the table is dropped. */
static int
release_maps(ZsCore *self)
{
    if (self->maps == NULL)
        return 0;
    PyObject *maps = self->maps;
    Py_INCREF(maps);
    int rc = -1;
    Py_ssize_t busy = 0;
    PyObject *first_busy = NULL;
    PyObject *released = PyList_New(0);  /* (views, view, exporter) of every released map */
    PyObject *all = PyDict_Items(maps);  /* a snapshot: the table is writable from Python */
    if (released == NULL || all == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all); i++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(all, i), 0);
        PyObject *views = PyTuple_GET_ITEM(PyList_GET_ITEM(all, i), 1);
        if (!PyList_CheckExact(views))
            continue;
        PyObject *copy = PySequence_List(views);  /* (safe under the GC, see owned_tuple) */
        if (copy == NULL)
            goto out;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(copy); j++) {
            PyObject *v = PyList_GET_ITEM(copy, j);
            if (!PyMemoryView_Check(v))
                continue;
            PyObject *x = map_exporter(v);
            Py_XINCREF(x);
            PyObject *r = PyObject_CallMethodNoArgs(v, str_release);
            if (r == NULL) {
                Py_XDECREF(x);
                if (!PyErr_ExceptionMatches(PyExc_BufferError)) {
                    Py_DECREF(copy);
                    goto out;
                }
                PyErr_Clear();
                if (x != NULL && busy++ == 0)
                    first_busy = key;
                continue;
            }
            Py_DECREF(r);
            if (x == NULL)
                continue;  /* not a map's view: dropped */
            PyObject *t = PyTuple_Pack(3, views, v, x);
            Py_DECREF(x);  /* now held by t only (and by derived views) */
            if (t == NULL || PyList_Append(released, t) < 0) {
                Py_XDECREF(t);
                Py_DECREF(copy);
                goto out;
            }
            Py_DECREF(t);
            if (Py_REFCNT(x) > 1 && busy++ == 0)
                first_busy = key;
        }
        Py_DECREF(copy);
    }
    if (busy) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(released); i++) {
            PyObject *t = PyList_GET_ITEM(released, i);
            if (rearm_map(PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1),
                          PyTuple_GET_ITEM(t, 2)) < 0)
                goto out;
        }
        PyObject *n = PyLong_FromSsize_t(busy);
        if (n != NULL) {
            raise_helper(self, str_destroy_busy, n, first_busy, NULL);
            Py_DECREF(n);
        }
        goto out;
    }
    PyDict_Clear(maps);
    rc = 0;
out:
    Py_XDECREF(all);
    Py_XDECREF(released);
    Py_DECREF(maps);
    return rc;
}

static PyObject *
ZsCore_destroy(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->destroyed || !self->ready)
        Py_RETURN_NONE;
    if (check_not_busy(self) < 0)
        return NULL;
    if (release_maps(self) < 0)
        return NULL;
    note_peak(self);
    PyObject **deferred = PyMem_Malloc(sizeof(PyObject *) * (size_t)(self->nzspages + 1));
    if (deferred == NULL)
        return PyErr_NoMemory();
    Py_ssize_t nd = 0;
    for (int ci = 0; ci < self->nclasses; ci++) {
        SizeClass *c = &self->classes[ci];
        for (int g = 0; g < NR_FG; g++) {
            int32_t id = c->head[g];
            while (id != NIL) {
                int32_t next = self->zs[id].next;
                release_zspage(self, id, deferred, &nd);
                id = next;
            }
            c->head[g] = c->tail[g] = NIL;
            c->count[g] = 0;
        }
        if (c->cur != NIL) {
            int32_t id = c->cur;
            c->cur = NIL;
            release_zspage(self, id, deferred, &nd);
        }
        c->partial_mask = 0;
    }
    memset(self->tab, 0, sizeof(Entry) * (size_t)(self->tab_mask + 1));
    self->tab_used = 0;
    self->nobjs = 0;
    self->stored = 0;
    self->destroyed = 1;
    memset(self->class_of, 0, sizeof(self->class_of));
    int rc = free_deferred(self, deferred, nd);
    PyMem_Free(deferred);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- cold accessors (stats, check, tests) ---------------------------------------------------- */

static PyObject *
ZsCore_class_stats(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(self->nclasses);
    if (out == NULL)
        return NULL;
    for (int ci = 0; ci < self->nclasses; ci++) {
        SizeClass *c = &self->classes[ci];
        Py_ssize_t counts[NR_FG];
        for (int g = 0; g < NR_FG; g++)
            counts[g] = c->count[g];
        if (c->cur != NIL)
            counts[c->fg_of_free[self->zs[c->cur].nfree]]++;
        PyObject *ct = PyTuple_New(NR_FG);
        if (ct == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (int g = 0; g < NR_FG; g++) {
            PyObject *v = PyLong_FromSsize_t(counts[g]);
            if (v == NULL) {
                Py_DECREF(ct);
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(ct, g, v);
        }
        PyObject *row = Py_BuildValue("(Nn)", ct, class_free_slots(self, c));
        if (row == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, ci, row);
    }
    return out;
}

static PyObject *
ZsCore_handles(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t n = self->nobjs, k = 0;
    uint64_t *hs = PyMem_Malloc(sizeof(uint64_t) * (size_t)(n + 1));
    if (hs == NULL)
        return PyErr_NoMemory();
    if (self->tab != NULL)
        for (uint64_t i = 0; i <= self->tab_mask && k < n; i++)
            if (self->tab[i].key)
                hs[k++] = self->tab[i].key;
    qsort(hs, (size_t)k, sizeof(uint64_t), cmp_u64);  /* allocation order */
    PyObject *out = PyList_New(k);
    for (Py_ssize_t i = 0; out != NULL && i < k; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(hs[i]);
        if (v == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, v);
    }
    PyMem_Free(hs);
    return out;
}

/* (run, offset, size, zspage id) of a live handle: where the object is (tests, debugging). */
static PyObject *
ZsCore_where(ZsCore *self, PyObject *handle)
{
    uint64_t h;
    Entry *e;
    if (!handle_key(handle, &h) || (e = tab_lookup(self, h)) == NULL)
        return raise_invalid(self, handle, op_read);
    Zspage *z = &self->zs[e->zs];
    SizeClass *c = &self->classes[z->cls];
    Py_INCREF(z->run);  /* "N" hands this reference to the tuple (or drops it on failure) */
    return Py_BuildValue("(Nnin)", z->run, (Py_ssize_t)e->slot * c->size + c->hdr,
                         (int)e->size, (Py_ssize_t)e->zs);
}

/* The runs of the live zspages (for check(): each must be the allocator's). */
static PyObject *
ZsCore_runs(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);
    for (int32_t id = 0; out != NULL && id < self->zs_len; id++)
        if (self->zs[id].run != NULL && PyList_Append(out, self->zs[id].run) < 0)
            Py_CLEAR(out);
    return out;
}

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            PyErr_Format(PoolError, __VA_ARGS__);          \
            goto fail;                                     \
        }                                                  \
    } while (0)

/* Verify every invariant of the structure; raise PoolError naming the first broken one. */
static PyObject *
ZsCore_check(ZsCore *self, PyObject *Py_UNUSED(ignored))
{
    if (check_ready(self) < 0)
        return NULL;
    uint8_t *seen = PyMem_Calloc((size_t)self->zs_len + 1, 1);
    if (seen == NULL)
        return PyErr_NoMemory();
    Py_ssize_t live_ids = 0;
    for (int32_t id = 0; id < self->zs_len; id++)
        live_ids += self->zs[id].run != NULL;
    Py_ssize_t pages = 0, zspages = 0, used_slots = 0;
    for (int ci = 0; ci < self->nclasses; ci++) {
        SizeClass *c = &self->classes[ci];
        for (int g = 0; g <= NR_FG; g++) {
            int32_t id = g < NR_FG ? c->head[g] : c->cur, prev = NIL;
            Py_ssize_t k = 0;
            while (id != NIL) {
                CHECK(id >= 0 && id < self->zs_len && self->zs[id].run != NULL,
                      "class %d: a group lists a zspage id %d that is not in use", c->size, id);
                CHECK(!seen[id], "class %d: zspage %d is filed twice", c->size, id);
                seen[id] = 1;
                Zspage *z = &self->zs[id];
                CHECK(z->cls == ci, "class %d: zspage of another class", c->size);
                CHECK(z->nfree >= 0 && z->nfree < c->objs,
                      "class %d: an empty zspage was kept", c->size);
                if (g < NR_FG) {
                    CHECK(z->fg == g && c->fg_of_free[z->nfree] == g && z->prev == prev,
                          "class %d: zspage in the wrong fullness group", c->size);
                }
                else {
                    CHECK(z->nfree > 0, "class %d: the zspage being filled is full", c->size);
                    for (int f = c->fg_of_free[z->nfree] + 1; f < FG_FULL; f++)
                        CHECK(c->count[f] == 0, "class %d: the zspage being filled is not "
                              "the fullest", c->size);
                }
                Py_ssize_t owned = 0;
                for (int32_t s = 0; s < c->objs; s++)
                    owned += z->owner[s] != 0;
                CHECK(owned + z->nfree == c->objs,
                      "class %d: free list and live objects disagree", c->size);
                for (int32_t i = 0; i < z->nfree; i++)
                    CHECK(z->freestk[i] < c->objs && z->owner[z->freestk[i]] == 0,
                          "class %d: free list and live objects disagree", c->size);
                used_slots += owned;
                pages += c->pages;
                zspages++;
                k++;
                prev = id;
                id = g < NR_FG ? z->next : NIL;
            }
            if (g < NR_FG) {
                CHECK(k == c->count[g] && c->tail[g] == prev,
                      "class %d: group %d's list and count disagree", c->size, g);
                if (g > 0 && g < FG_FULL)
                    CHECK(((c->partial_mask >> g) & 1) == (k > 0),
                          "class %d: partial_mask disagrees with group %d", c->size, g);
            }
        }
        CHECK(c->count[0] == 0, "class %d: an empty zspage was kept", c->size);
    }
    CHECK(pages == self->pages && zspages == self->nzspages && zspages == live_ids,
          "page/zspage counters disagree with the zspages held");
    Py_ssize_t objs = 0, stored = 0;
    for (uint64_t i = 0; self->tab != NULL && i <= self->tab_mask; i++) {
        Entry *e = &self->tab[i];
        if (e->key == 0)
            continue;
        CHECK(tab_lookup(self, e->key) == e, "handle table: %llx cannot be found",
              (unsigned long long)e->key);
        CHECK(e->zs < (uint32_t)self->zs_len && seen[e->zs],
              "handle %llx: its zspage is not in the pool", (unsigned long long)e->key);
        Zspage *z = &self->zs[e->zs];
        SizeClass *c = &self->classes[z->cls];
        CHECK(e->slot < c->objs && z->owner[e->slot] == e->key,
              "handle %llx: its slot is not its own", (unsigned long long)e->key);
        CHECK(e->size > 0 && e->size <= c->size - c->hdr,
              "handle %llx: size %d wrong for class %d", (unsigned long long)e->key,
              (int)e->size, c->size);
        CHECK((e->key >> 40) == self->tag && e->key <= self->serial,
              "handle %llx: not one of this pool's", (unsigned long long)e->key);
        objs++;
        stored += e->size;
    }
    CHECK(objs == self->nobjs && objs == self->tab_used && objs == used_slots,
          "object counters disagree with the handle table");
    CHECK(stored == self->stored, "stored_bytes counter disagrees with the live objects");
    PyMem_Free(seen);
    Py_RETURN_NONE;
fail:
    PyMem_Free(seen);
    return NULL;
}

/* -- type ---------------------------------------------------------------------------------- */

static void
free_structure(ZsCore *self)
{
    for (int32_t id = 0; self->zs != NULL && id < self->zs_len; id++) {
        Zspage *z = &self->zs[id];
        if (z->run != NULL) {
            PyBuffer_Release(&z->buf);
            Py_CLEAR(z->run);
            PyMem_Free(z->owner);
            z->owner = NULL;
        }
    }
    PyMem_Free(self->zs);
    self->zs = NULL;
    self->zs_len = self->zs_cap = 0;
    self->zs_unused = NIL;
    for (int ci = 0; self->classes != NULL && ci < self->nclasses; ci++)
        PyMem_Free(self->classes[ci].fg_of_free);
    PyMem_Free(self->classes);
    self->classes = NULL;
    self->nclasses = 0;
    PyMem_Free(self->tab);
    self->tab = NULL;
    PyMem_Free(self->scratch_h);
    self->scratch_h = NULL;
}

static int
ZsCore_traverse(ZsCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->allocator);
    Py_VISIT(self->alloc_fn);
    Py_VISIT(self->free_fn);
    Py_VISIT(self->name);
    Py_VISIT(self->maps);
    return 0;
}

static int
ZsCore_clear(ZsCore *self)
{
    Py_CLEAR(self->allocator);
    Py_CLEAR(self->alloc_fn);
    Py_CLEAR(self->free_fn);
    Py_CLEAR(self->name);
    Py_CLEAR(self->maps);
    return 0;
}

static void
ZsCore_dealloc(ZsCore *self)
{
    PyObject_GC_UnTrack(self);
    /* Dropped without destroy(): the runs stay the allocator's (as with PyZsPool). */
    free_structure(self);
    ZsCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
ZsCore_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ZsCore *self = (ZsCore *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->zs_unused = NIL;
    return (PyObject *)self;
}

/* ZsCore(allocator, tag, name, classes, class_of): classes is a sequence of
 * (size, pages_per_zspage, objs_per_zspage, header) from zs_layout(), class_of the payload
 * size -> class position table (4097 entries, -1 for size 0). */
static int
ZsCore_init(ZsCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"allocator", "tag", "name", "classes", "class_of", NULL};
    PyObject *allocator, *name, *classes, *class_of;
    unsigned long long tag;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKOOO:ZsCore", kwlist, &allocator, &tag,
                                     &name, &classes, &class_of))
        return -1;
    if (PoolError == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "hwzswap.pool._zscore: set_error_classes() was not called");
        return -1;
    }
    if (self->ready || self->initing) {
        PyErr_SetString(PoolError, "zsmalloc: the pool is already initialised");
        return -1;
    }
    if (tag == 0 || tag >= (1ULL << 23)) {
        PyErr_SetString(PoolError, "zsmalloc: the pool tag must be in 1..2**23-1");
        return -1;
    }
    /* Phase 1: read every Python value into C locals. Reading runs Python code (__index__,
     * __iter__, __getattr__), which may change the argument lists or call this object: so the
     * lists are copied to tuples (which hold their items), nothing of self is touched, and a
     * nested __init__ is refused (initing). */
    int spec[MAX_CLASSES][4];
    int16_t cls_of[ZS_PAGE_SIZE + 1];
    PyObject *cs = NULL, *co = NULL, *alloc_fn = NULL, *free_fn = NULL, *maps = NULL;
    Py_ssize_t nc = 0;
    self->initing = 1;
    cs = owned_tuple(classes);
    if (cs == NULL)
        goto fail;
    nc = PyTuple_GET_SIZE(cs);
    if (nc < 1 || nc > MAX_CLASSES) {
        PyErr_SetString(PoolError, "zsmalloc: 1..255 size classes expected");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *row = owned_tuple(PyTuple_GET_ITEM(cs, i));
        if (row == NULL)
            goto fail;
        int *v = spec[i];
        int ok = PyArg_ParseTuple(row, "iiii;class (size, pages, objs, header)", &v[0], &v[1],
                                  &v[2], &v[3]);
        Py_DECREF(row);
        if (!ok)
            goto fail;
        int size = v[0], pages = v[1], objs = v[2], hdr = v[3];
        if (size < 1 || size > ZS_PAGE_SIZE || pages < 1 || pages > MAX_PAGES || objs < 1
            || objs > MAX_OBJS || (Py_ssize_t)objs * size > (Py_ssize_t)pages * ZS_PAGE_SIZE
            || hdr < 0 || hdr >= size) {
            PyErr_Format(PoolError, "zsmalloc: bad size class (%d, %d, %d, %d)", size, pages,
                         objs, hdr);
            goto fail;
        }
    }
    co = owned_tuple(class_of);
    if (co == NULL)
        goto fail;
    if (PyTuple_GET_SIZE(co) != ZS_PAGE_SIZE + 1) {
        PyErr_SetString(PoolError, "zsmalloc: class_of needs 4097 entries");
        goto fail;
    }
    cls_of[0] = 0;
    for (int s = 1; s <= ZS_PAGE_SIZE; s++) {
        long pos = PyLong_AsLong(PyTuple_GET_ITEM(co, s));
        if (pos == -1 && PyErr_Occurred())
            goto fail;
        if (pos < 0 || pos >= nc || s > spec[pos][0] - spec[pos][3]) {
            PyErr_Format(PoolError, "zsmalloc: class_of[%d] = %ld does not fit", s, pos);
            goto fail;
        }
        cls_of[s] = (int16_t)(pos + 1);
    }
    Py_CLEAR(co);
    Py_CLEAR(cs);
    alloc_fn = PyObject_GetAttr(allocator, str_alloc_pages);
    if (alloc_fn == NULL)
        goto fail;
    free_fn = PyObject_GetAttr(allocator, str_free_pages);
    if (free_fn == NULL)
        goto fail;
    maps = PyDict_New();
    if (maps == NULL)
        goto fail;
    /* Phase 2: build the structure from the locals; no Python code runs from here on. */
    self->classes = PyMem_Calloc((size_t)nc, sizeof(SizeClass));
    self->scratch_h = PyMem_Malloc(sizeof(uint64_t) * MAX_OBJS);
    if (self->classes == NULL || self->scratch_h == NULL) {
        PyErr_NoMemory();
        goto fail_structure;
    }
    self->nclasses = (int)nc;
    for (Py_ssize_t i = 0; i < nc; i++) {
        SizeClass *c = &self->classes[i];
        int objs = spec[i][2];
        c->size = spec[i][0];
        c->pages = spec[i][1];
        c->objs = objs;
        c->hdr = spec[i][3];
        c->cur = NIL;
        for (int g = 0; g < NR_FG; g++)
            c->head[g] = c->tail[g] = NIL;
        c->fg_of_free = PyMem_Malloc((size_t)objs + 1);
        if (c->fg_of_free == NULL) {
            PyErr_NoMemory();
            goto fail_structure;
        }
        for (int nfree = 0; nfree <= objs; nfree++) {
            int inuse = objs - nfree;
            c->fg_of_free[nfree] = inuse == 0 ? 0 : inuse == objs ? FG_FULL
                                                 : 100 * inuse / objs / 10 + 1;
        }
    }
    if (tab_alloc(self, 10) < 0)
        goto fail_structure;
    memcpy(self->class_of, cls_of, sizeof(cls_of));
    self->alloc_fn = alloc_fn;
    self->free_fn = free_fn;
    self->maps = maps;
    Py_INCREF(allocator);
    self->allocator = allocator;
    self->tag = tag;
    self->serial = (uint64_t)tag << 40;
    self->ready = 1;
    self->initing = 0;
    Py_INCREF(name);
    Py_XSETREF(self->name, name);  /* last: dropping an old name may run a finaliser */
    return 0;
fail_structure:
    free_structure(self);
fail:
    self->initing = 0;
    Py_XDECREF(cs);
    Py_XDECREF(co);
    Py_XDECREF(alloc_fn);
    Py_XDECREF(free_fn);
    Py_XDECREF(maps);
    return -1;
}

static PyObject *
ZsCore_get_stored_at_peak(ZsCore *self, void *Py_UNUSED(closure))
{
    Py_ssize_t v = self->stored_at_peak;
    if (self->pages == self->peak_pages && self->stored > v)
        v = self->stored;
    return PyLong_FromSsize_t(v);
}

static PyObject *
ZsCore_get_destroyed(ZsCore *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->destroyed);
}

static PyObject *
ZsCore_get_serial(ZsCore *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->serial);
}

static PyObject *
ZsCore_get_name(ZsCore *self, void *Py_UNUSED(closure))
{
    if (self->name == NULL)
        return PyUnicode_FromString("zsmalloc");
    Py_INCREF(self->name);
    return self->name;
}

static int
ZsCore_set_name(ZsCore *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a pool's name cannot be deleted");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->name, value);
    return 0;
}

static PyObject *
ZsCore_get_maps(ZsCore *self, void *Py_UNUSED(closure))
{
    if (self->maps == NULL)
        return PyDict_New();
    Py_INCREF(self->maps);
    return self->maps;
}

static PyObject *
ZsCore_get_allocator(ZsCore *self, void *Py_UNUSED(closure))
{
    PyObject *a = self->allocator ? self->allocator : Py_None;
    Py_INCREF(a);
    return a;
}

static PyMemberDef ZsCore_members[] = {
    {"pages", T_PYSSIZET, offsetof(ZsCore, pages), READONLY,
     "Physical pages held now (zs_get_total_pages)."},
    {"peak_pages", T_PYSSIZET, offsetof(ZsCore, peak_pages), READONLY,
     "The most pages held at once since the pool was made."},
    {"stored_bytes", T_PYSSIZET, offsetof(ZsCore, stored), READONLY,
     "Sum of the sizes given to malloc for the live objects."},
    {"tag", T_ULONGLONG, offsetof(ZsCore, tag), READONLY,
     "This pool's handle tag (bits 62..40 of its handles)."},
    {"_zspages", T_PYSSIZET, offsetof(ZsCore, nzspages), READONLY, NULL},
    {"_compacted", T_PYSSIZET, offsetof(ZsCore, compacted), READONLY, NULL},
    {"_alloc_fail", T_PYSSIZET, offsetof(ZsCore, alloc_fail), READONLY, NULL},
    {NULL}
};

static PyGetSetDef ZsCore_getset[] = {
    {"stored_at_peak", (getter)ZsCore_get_stored_at_peak, NULL,
     "The most bytes stored while the pool held peak_pages pages.", NULL},
    {"_destroyed", (getter)ZsCore_get_destroyed, NULL, "Whether destroy() ran.", NULL},
    {"_serial", (getter)ZsCore_get_serial, NULL, "The last handle handed out.", NULL},
    {"name", (getter)ZsCore_get_name, (setter)ZsCore_set_name, "The pool's name.", NULL},
    {"_maps", (getter)ZsCore_get_maps, NULL, "handle -> list of mapped views.", NULL},
    {"allocator", (getter)ZsCore_get_allocator, NULL, "The PageAllocator it draws from.", NULL},
    {NULL}
};

static PyMethodDef ZsCore_methods[] = {
    {"malloc", (PyCFunction)ZsCore_malloc, METH_O,
     "malloc(size) -> handle: reserve size (1..4096) bytes."},
    {"malloc_write", (PyCFunction)ZsCore_malloc_write, METH_O,
     "malloc_write(data) -> handle: store a bytes-like object."},
    {"malloc_write_batch", (PyCFunction)(void (*)(void))ZsCore_malloc_write_batch,
     METH_VARARGS | METH_KEYWORDS,
     "malloc_write_batch(buf, offsets, sizes, idx=None) -> handles: store items "
     "buf[offsets[i]:offsets[i] + sizes[i]] for i in idx, stopping where the pool has no room "
     "(see Pool.malloc_write_batch)."},
    {"write", (PyCFunction)(void (*)(void))ZsCore_write, METH_FASTCALL,
     "write(handle, data): copy data into the object, from its start."},
    {"read", (PyCFunction)ZsCore_read, METH_O, "read(handle) -> bytes: a copy of the object."},
    {"view", (PyCFunction)ZsCore_view, METH_O,
     "view(handle) -> memoryview: read-only, zero-copy, not pinned."},
    {"free", (PyCFunction)ZsCore_free, METH_O, "free(handle): release the object."},
    {"read_free", (PyCFunction)ZsCore_read_free, METH_O,
     "read_free(handle) -> bytes: read then free."},
    {"obj_size", (PyCFunction)ZsCore_obj_size, METH_O,
     "obj_size(handle) -> the size given to malloc."},
    {"map", (PyCFunction)(void (*)(void))ZsCore_map, METH_VARARGS | METH_KEYWORDS,
     "map(handle, writable=False) -> memoryview: zero-copy, pinned until unmap."},
    {"unmap", (PyCFunction)ZsCore_unmap, METH_O, "unmap(handle): end the latest map."},
    {"compact", (PyCFunction)ZsCore_compact, METH_NOARGS,
     "compact() -> pages freed by moving objects out of sparse zspages."},
    {"handles", (PyCFunction)ZsCore_handles, METH_NOARGS,
     "handles() -> the live handles, in allocation order."},
    {"_destroy", (PyCFunction)ZsCore_destroy, METH_NOARGS, NULL},
    {"_class_stats", (PyCFunction)ZsCore_class_stats, METH_NOARGS,
     "Per class: (zspages per fullness group, free slots)."},
    {"_check", (PyCFunction)ZsCore_check, METH_NOARGS, NULL},
    {"_where", (PyCFunction)ZsCore_where, METH_O,
     "_where(handle) -> (run, offset, size, zspage id)."},
    {"_runs", (PyCFunction)ZsCore_runs, METH_NOARGS, NULL},
    {NULL}
};

static PySequenceMethods ZsCore_as_sequence = {
    .sq_length = (lenfunc)ZsCore_len,
    .sq_contains = (objobjproc)ZsCore_contains,
};

static PyTypeObject ZsCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwzswap.pool._zscore.ZsCore",
    .tp_doc = PyDoc_STR("The compiled zsmalloc data structure of one pool (see ZsPool)."),
    .tp_basicsize = sizeof(ZsCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = ZsCore_new,
    .tp_init = (initproc)ZsCore_init,
    .tp_dealloc = (destructor)ZsCore_dealloc,
    .tp_traverse = (traverseproc)ZsCore_traverse,
    .tp_clear = (inquiry)ZsCore_clear,
    .tp_methods = ZsCore_methods,
    .tp_members = ZsCore_members,
    .tp_getset = ZsCore_getset,
    .tp_as_sequence = &ZsCore_as_sequence,
};

/* -- module -------------------------------------------------------------------------------- */

static PyObject *
zscore_setup(PyObject *module, PyObject *args)
{
    PyObject *pe, *pae, *ihe;
    if (!PyArg_ParseTuple(args, "OOO:set_error_classes", &pe, &pae, &ihe))
        return NULL;
    if (!PyExceptionClass_Check(pe) || !PyExceptionClass_Check(pae)
        || !PyExceptionClass_Check(ihe)) {
        PyErr_SetString(PyExc_TypeError, "set_error_classes(PoolError, PoolAllocError, "
                        "InvalidHandleError) takes exception classes");
        return NULL;
    }
    Py_INCREF(pe);
    Py_XSETREF(PoolError, pe);
    Py_INCREF(pae);
    Py_XSETREF(PoolAllocError, pae);
    Py_INCREF(ihe);
    Py_XSETREF(InvalidHandleError, ihe);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"set_error_classes", zscore_setup, METH_VARARGS,
     "set_error_classes(PoolError, PoolAllocError, InvalidHandleError): the error classes "
     "to raise."},
    {NULL}
};

static struct PyModuleDef zscore_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hwzswap.pool._zscore",
    .m_doc = "Compiled core of hwzswap's zsmalloc pool (hwzswap.pool.zsmalloc.ZsPool).",
    .m_size = -1,
    .m_methods = module_methods,
};

#define INTERN(var, text)                               \
    do {                                                \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                \
    } while (0)

PyMODINIT_FUNC
PyInit__zscore(void)
{
    INTERN(str_alloc_pages, "alloc_pages");
    INTERN(str_free_pages, "free_pages");
    INTERN(str_release, "release");
    INTERN(str_invalid, "invalid_handle_error");
    INTERN(str_bad_size, "bad_size_error");
    INTERN(str_bad_data, "bad_data_error");
    INTERN(str_pinned, "pinned_error");
    INTERN(str_too_long, "too_long_error");
    INTERN(str_alloc_failed, "alloc_failed_error");
    INTERN(str_bad_run, "bad_run_error");
    INTERN(str_not_mapped, "not_mapped_error");
    INTERN(str_unmap_busy, "unmap_busy_error");
    INTERN(str_bad_maps, "bad_maps_error");
    INTERN(str_unmap_derived, "unmap_derived_error");
    INTERN(str_destroy_busy, "destroy_busy_error");
    INTERN(str_batch_error, "batch_error");
    INTERN(str_arg_buf, "buf");
    INTERN(str_arg_offsets, "offsets");
    INTERN(str_arg_sizes, "sizes");
    INTERN(str_arg_idx, "idx");
    INTERN(op_free, "free");
    INTERN(op_read, "read");
    INTERN(op_view, "view");
    INTERN(op_write, "write");
    INTERN(op_read_free, "read_free");
    INTERN(op_obj_size, "obj_size");
    INTERN(op_map, "map");
    INTERN(op_unmap, "unmap");
    if (zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    if (PyType_Ready(&ZsCoreType) < 0 || PyType_Ready(&MapExportType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&zscore_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ZsCoreType);
    if (PyModule_AddObject(m, "ZsCore", (PyObject *)&ZsCoreType) < 0) {
        Py_DECREF(&ZsCoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
