"""The compiled zsmalloc core under misuse: nothing reachable from Python may crash the
interpreter, read freed memory or leave the pool inconsistent."""

from __future__ import annotations

import gc
import os
import struct

import numpy as np
import pytest

from hwzswap.errors import InvalidHandleError, PoolAllocError, PoolError
from hwzswap.pool import PageAllocator, ZsPool
from hwzswap.pool._handles import next_tag
from hwzswap.pool._zscore import ZsCore  # type: ignore[import-not-found]
from hwzswap.pool.zbud import ZbudPool
from hwzswap.pool.zsmalloc import PyZsPool, zs_layout


def test_views_outlive_free_destroy_and_the_pool() -> None:
    alloc = PageAllocator(cache_pages=0)
    pool = ZsPool(alloc)
    data = os.urandom(3000)
    h = pool.malloc_write(data)
    view, mapped = pool.view(h), pool.map(h)
    pool.unmap(h)
    pool.free(h)  # the zspage goes back to the allocator, which drops it (no cache)
    assert view.tobytes() == data  # the view keeps that memory alive: still the old bytes
    h2 = pool.malloc_write(b"y" * 100)
    view2 = pool.view(h2)
    pool.destroy()
    del pool
    gc.collect()
    assert view2.tobytes() == b"y" * 100 and len(view) == 3000
    with pytest.raises(ValueError):
        mapped.tobytes()  # released by unmap


def test_an_uninitialised_or_reinitialised_core_refuses_cleanly() -> None:
    bare = ZsPool.__new__(ZsPool)
    with pytest.raises(PoolError, match="not initialised"):
        bare.malloc(10)
    for op in (bare.read, bare.view, bare.free, bare.obj_size):
        with pytest.raises(PoolError, match="not initialised"):
            op(1 << 40 | 1)
    assert len(bare) == 0 and (5 in bare) is False and bare.compact() == 0
    core = ZsCore.__new__(ZsCore)
    for data in (b"abc", 42):
        with pytest.raises(PoolError, match="not initialised"):
            core.malloc_write(data)
    pool = ZsPool()
    with pytest.raises(PoolError, match="already initialised"):
        ZsCore.__init__(pool, PageAllocator(), 5, "x", [(32, 1, 128, 8)], [-1] * 4097)
    assert pool.read(pool.malloc_write(b"still fine")) == b"still fine"


@pytest.mark.parametrize("cls", [ZsPool, PyZsPool, ZbudPool], ids=["c", "py", "zbud"])
def test_odd_handles_are_refused(cls: type) -> None:
    pool = cls()
    h = pool.malloc_write(b"abc")
    for bad in (True, -1, 0, 2**64, 2**200, -(2**70), 1.0 * h, "h", None, object()):
        for op in (pool.read, pool.view, pool.obj_size, pool.map, pool.unmap, pool.free,
                   pool.read_free, lambda x: pool.write(x, b"z")):
            with pytest.raises(InvalidHandleError):
                op(bad)  # type: ignore[arg-type]
        assert bad not in pool and not pool.is_mapped(bad)
    assert pool.read(np.int64(h)) == b"abc"  # an integer type with __index__ is an int
    assert np.int64(h) in pool and pool.obj_size(np.int64(h)) == 3
    pool.map(np.int64(h))
    assert pool.is_mapped(h) and pool.is_mapped(np.int64(h)) and not pool.is_mapped(float(h))
    pool.unmap(np.int64(h))
    assert pool.read_free(np.int64(h)) == b"abc" and len(pool) == 0


def test_data_of_every_shape() -> None:
    pool, ref = ZsPool(), PyZsPool()
    raw = bytes(range(200))
    for data in (bytearray(raw), memoryview(raw)[::3], memoryview(raw)[::-1],
                 np.frombuffer(raw, dtype=np.uint8)[10:50], np.arange(6, dtype=np.uint8)):
        h, r = pool.malloc_write(data), ref.malloc_write(data)
        assert pool.read(h) == ref.read(r) == bytes(data)
        pool.write(h, data[:5])
        ref.write(r, data[:5])
        assert pool.read(h) == ref.read(r)
    for data in (np.zeros(4, dtype=np.int8), np.zeros((2, 2), dtype=np.uint8),
                 memoryview(b"abcd").cast("c")):
        with pytest.raises(PoolError, match="bytes-like"):
            pool.malloc_write(data)
        with pytest.raises(PoolError, match="bytes-like"):
            ref.malloc_write(data)
    pool.check()
    assert pool.pages == ref.pages


def test_unmap_refuses_while_a_buffer_is_exported() -> None:
    pool = ZsPool()
    h = pool.malloc_write(b"0123456789")
    view = pool.map(h, writable=True)
    arr = struct.iter_unpack("B", view)  # holds a buffer exported from the view
    with pytest.raises(PoolError, match="still holds a buffer"):
        pool.unmap(h)
    assert pool.is_mapped(h)
    with pytest.raises(PoolError, match="mapped"):
        pool.free(h)
    del arr
    pool.unmap(h)
    pool.free(h)
    pool.check()


class _Reentrant(PageAllocator):
    """An allocator that calls back into the pool it serves (which the pool must refuse)."""

    pool: ZsPool | None = None
    seen: list[BaseException]

    def alloc_pages(self, n: int) -> memoryview:
        assert self.pool is not None
        try:
            self.pool.malloc(100)
        except PoolError as exc:
            self.seen.append(exc)
        return super().alloc_pages(n)


def test_a_reentrant_allocator_is_refused_and_the_pool_stays_whole() -> None:
    alloc = _Reentrant()
    alloc.seen = []
    pool = ZsPool(alloc)
    alloc.pool = pool
    h = pool.malloc_write(b"x" * 500)
    assert len(alloc.seen) == 1 and "allocator" in str(alloc.seen[0])
    assert pool.read(h) == b"x" * 500 and len(pool) == 1
    pool.check()


class _Bogus(PageAllocator):
    def alloc_pages(self, n: int) -> memoryview:
        run = super().alloc_pages(n)
        return run[:100]  # not a whole run: the pool must not use it


class _NotAView(PageAllocator):
    def alloc_pages(self, n: int) -> memoryview:
        return bytearray(super().alloc_pages(n))  # type: ignore[return-value]


@pytest.mark.parametrize("alloc", [_Bogus, _NotAView])
def test_a_wrong_run_from_the_allocator_is_refused_alike(alloc: type[PageAllocator]) -> None:
    """The compiled pool and its Python reference both refuse a run that is not a writable
    memoryview of the zspage's size, with one message naming its type and size (the reference
    used to store into a 100-byte run and lose data; the core's message held the repr of the
    whole 28 KiB buffer)."""
    errors = []
    for make in (ZsPool, PyZsPool):
        pool = make(alloc())
        with pytest.raises(PoolError, match="the page allocator returned a ") as err:
            pool.malloc(10)
        assert pool.pages == 0 and len(pool) == 0
        pool.check()
        errors.append(str(err.value))
    assert errors[0] == errors[1] and len(errors[0]) < 200


def test_allocation_failure_message_and_count() -> None:
    alloc = PageAllocator(limit_pages=0)
    pool, ref = ZsPool(alloc), PyZsPool(PageAllocator(limit_pages=0))
    with pytest.raises(PoolAllocError) as c_err:
        pool.malloc_write(b"z" * 2000)
    with pytest.raises(PoolAllocError) as py_err:
        ref.malloc_write(b"z" * 2000)
    assert str(c_err.value) == str(py_err.value)
    assert c_err.value.__cause__ is None
    assert pool.stats()["alloc_fail"] == 1 and pool.pages == 0


# -- issue 16, rows 1, 2 and 4: reproducers of crashes found by an adversarial run -----------


class _ClearsOnIndex:
    """An integer (through ``__index__``) whose conversion empties the list it sits in."""

    def __init__(self, value: int, victim: list) -> None:
        self.value, self.victim = value, victim

    def __index__(self) -> int:
        self.victim.clear()
        return self.value


def _layout_lists() -> tuple[list, list]:
    layout = zs_layout(8)
    rows = [[c.size, c.pages_per_zspage, c.objs_per_zspage, c.header] for c in layout.classes]
    return rows, list(layout.class_of_size)


def test_core_init_survives_index_hooks_that_empty_its_lists() -> None:
    """Row 1: ZsCore.__init__ read list items while an ``__index__`` emptied the list."""
    rows, class_of = _layout_lists()
    classes: list = [tuple(r) for r in rows]
    classes[3] = (_ClearsOnIndex(rows[3][0], classes), *rows[3][1:])
    class_of[40] = _ClearsOnIndex(class_of[40], class_of)
    inner = [(_ClearsOnIndex(rows[0][0], rows), *rows[0][1:])] + [tuple(r) for r in rows[1:]]
    pool = ZsPool.__new__(ZsPool)
    ZsCore.__init__(pool, PageAllocator(), next_tag(), "hooked", classes, class_of)
    assert classes == [] and class_of == []  # the hooks ran; the core read its own copies
    pool.layout, pool.max_pages_per_zspage = zs_layout(8), 8
    with pytest.raises(PoolError, match="already initialised"):
        ZsCore.__init__(pool, PageAllocator(), next_tag(), "again", inner, _layout_lists()[1])
    ref = PyZsPool()
    for size in (1, 40, 100, 700, 3000, 4096, 40, 100):
        h, r = pool.malloc_write(b"q" * size), ref.malloc_write(b"q" * size)
        assert pool._where(h)[1:3] == ref._where(r)[1:3]  # same slot, same size
    assert pool.stats()["classes"] == ref.stats()["classes"]
    pool.check()


class _Reinit:
    """An ``__index__`` that calls ``ZsCore.__init__`` on the pool being initialised."""

    def __init__(self, value: int) -> None:
        self.value, self.pool, self.seen = value, None, []

    def __index__(self) -> int:
        rows, class_of = _layout_lists()
        try:
            ZsCore.__init__(self.pool, PageAllocator(), next_tag(), "inner", rows, class_of)
        except PoolError as exc:
            self.seen.append(str(exc))
        return self.value


def test_core_init_refuses_to_be_nested() -> None:
    rows, class_of = _layout_lists()
    hook = _Reinit(rows[0][0])
    rows[0][0] = hook
    pool = ZsPool.__new__(ZsPool)
    hook.pool = pool
    ZsCore.__init__(pool, PageAllocator(), next_tag(), "outer", rows, class_of)
    assert hook.seen and "already initialised" in hook.seen[0]
    assert pool.name == "outer" and pool.read(pool.malloc_write(b"ok")) == b"ok"


@pytest.mark.parametrize("junk", [(1, 2, 3), [1, 2], "views", None, [memoryview(b"x"), 5]])
@pytest.mark.parametrize("make", [ZsPool, PyZsPool])
def test_unmap_checks_the_writable_map_table(make, junk) -> None:
    """Row 2: ``unmap`` trusted ``_maps`` (writable from Python) to hold lists of views."""
    pool = make()
    h = pool.malloc_write(b"a" * 100)
    pool._maps[h] = junk
    with pytest.raises(PoolError) as err:
        pool.unmap(h)
    assert "not a list of mapped views" in str(err.value)
    if junk.__class__ is not list:
        with pytest.raises(PoolError, match="not a list of mapped views"):
            pool.map(h)
    pool._maps[h + 1000] = junk  # a foreign key: ignored, and dropped by destroy
    del pool._maps[h]
    with pool.mapped(h, writable=True) as view:
        view[:2] = b"zz"
    pool.free(h)
    pool.check()
    pool._maps[5] = junk
    pool.destroy()
    assert pool._maps == {}


@pytest.mark.parametrize("make", [ZsPool, PyZsPool])
def test_writes_from_the_pools_own_memory_overlap_safely(make) -> None:
    """Row 4: ``write(h, view(h)[10:])`` copied overlapping ranges with memcpy."""
    pool = make()
    data = os.urandom(300)
    h = pool.malloc_write(data)
    pool.write(h, pool.view(h)[10:])
    assert pool.read(h) == data[10:] + data[-10:]
    with pool.mapped(h) as ro:
        pool.write(h, ro[1::2])  # strided, over the same bytes
    now = data[10:] + data[-10:]
    assert pool.read(h) == now[1::2] + now[len(now[1::2]):]
    view = pool.view(h)
    snapshot = view.tobytes()
    pool.free(h)
    h2 = pool.malloc_write(view)  # the freed slot is the one taken again
    assert pool.read(h2) == snapshot
    pool.check()


class _Clearer:
    """Cyclic garbage whose finaliser empties lists: run by the GC at whatever allocation is
    due, such as one made while the core copies those very lists."""

    def __init__(self, *lists: list) -> None:
        self.lists, self.me = lists, self

    def __del__(self) -> None:
        for lst in self.lists:
            lst.clear()


def test_lists_emptied_by_finalisers_while_the_core_copies_them() -> None:
    threshold = gc.get_threshold()
    gc.collect()
    outcomes = set()
    try:
        for _ in range(40):
            rows, class_of = _layout_lists()
            pool = ZsPool.__new__(ZsPool)
            _Clearer(rows, class_of)
            gc.set_threshold(1)
            try:
                ZsCore.__init__(pool, PageAllocator(), next_tag(), "gc", rows, class_of)
                outcomes.add("init")
            except PoolError:
                outcomes.add("init refused")
            gc.set_threshold(*threshold)
            for make in (ZsPool, PyZsPool):
                pool = make()
                offsets, sizes = [0, 10, 20, 30], [100, 200, 300, 400]
                _Clearer(offsets, sizes)
                gc.set_threshold(1)
                try:
                    handles = pool.malloc_write_batch(b"abcdefghij" * 50, offsets, sizes)
                    outcomes.add("batch")
                    got = [len(pool.read(h)) for h in handles]
                    assert got in ([], [100, 200, 300, 400])  # both read before or after
                except PoolError:
                    outcomes.add("batch refused")
                gc.set_threshold(*threshold)
                pool.check()
    finally:
        gc.set_threshold(*threshold)
    assert outcomes  # (which ones depends on where the GC ran; none may crash)
