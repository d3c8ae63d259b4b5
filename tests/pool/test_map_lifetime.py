"""A map's view cannot outlive ``unmap`` through a view derived from it: zsmalloc (compiled and
the Python model) and zbud.

Every ``map`` has its own exporter; a slice, ``memoryview(view)`` or ``view.obj`` keeps it alive,
and ``unmap`` (and ``destroy``) refuse while one does, so no derived view can write into the
memory once the pool frees, moves or reuses it (``zs_unmap_object`` ends all access too).
"""

from __future__ import annotations

import gc
import struct

import numpy as np
import pytest

from hwzswap.errors import PoolError
from hwzswap.pool import PageAllocator, Pool, ZbudPool, ZsPool
from hwzswap.pool.zsmalloc import PyZsPool

POOLS = [ZsPool, PyZsPool, ZbudPool]


@pytest.fixture(params=POOLS, ids=lambda c: c.__name__)
def pool(request: pytest.FixtureRequest) -> Pool:
    return request.param(PageAllocator())


def test_a_slice_kept_after_unmap_cannot_write_into_a_reused_object(pool: Pool) -> None:
    h = pool.malloc_write(b"A" * 100)
    view = pool.map(h, writable=True)
    part = view[10:20]
    with pytest.raises(PoolError, match=r"derived from its mapped view.*release it.*call "
                                        r"unmap again") as err:
        pool.unmap(h)
    assert f"{h:#x}" in str(err.value)
    assert pool.is_mapped(h)  # the map stays: the object is pinned
    with pytest.raises(PoolError, match="while it is mapped"):
        pool.free(h)
    with pytest.raises(ValueError):
        view.tobytes()  # the view map() returned is released
    # the memory the slice sees is still this object's: a new object goes elsewhere
    other = pool.malloc_write(b"B" * 100)
    part[:] = b"x" * 10
    assert pool.read(other) == b"B" * 100
    assert pool.read(h) == b"A" * 10 + b"x" * 10 + b"A" * 80
    del part
    pool.unmap(h)
    assert not pool.is_mapped(h)
    pool.free(h)
    again = pool.malloc_write(b"C" * 100)  # may reuse h's slot now: nothing can reach it
    assert pool.read(again) == b"C" * 100 and pool.read(other) == b"B" * 100
    pool.check()


@pytest.mark.parametrize("derive", [
    lambda v: v[1:3],
    lambda v: memoryview(v),
    lambda v: v.obj,
    lambda v: v.cast("B", (len(v),)),
    lambda v: np.asarray(v.obj),
    lambda v: np.asarray(v.obj)[1:][1:],
    lambda v: np.frombuffer(v, np.uint8),
], ids=["slice", "memoryview", "obj", "cast", "array-of-obj", "array-slices", "frombuffer"])
@pytest.mark.parametrize("writable", [True, False])
def test_every_derived_view_blocks_unmap_until_it_is_gone(pool: Pool, derive, writable) -> None:
    h = pool.malloc_write(b"0123456789")
    view = pool.map(h, writable=writable)
    derived = derive(view)
    with pytest.raises(PoolError, match="derived from its mapped view"):
        pool.unmap(h)
    with pytest.raises(PoolError, match="derived from its mapped view"):
        pool.unmap(h)  # (again: nothing changed)
    assert pool.is_mapped(h) and pool.read(h) == b"0123456789"
    del derived
    gc.collect()
    pool.unmap(h)
    assert not pool.is_mapped(h)
    pool.free(h)


def test_a_released_derived_view_does_not_block_unmap(pool: Pool) -> None:
    h = pool.malloc_write(b"0123456789")
    view = pool.map(h, writable=True)
    part = view[2:5]
    with part:
        part[0] = ord("z")
    other = memoryview(view)
    other.release()  # released but still referenced: not a live view
    pool.unmap(h)
    assert pool.read(h) == b"01z3456789"
    pool.free(h)


def test_a_buffer_exported_from_the_view_keeps_it_unreleased(pool: Pool) -> None:
    h = pool.malloc_write(b"0123456789")
    view = pool.map(h, writable=True)
    arr = struct.iter_unpack("B", view)  # holds a buffer exported from the view itself
    with pytest.raises(PoolError, match="still holds a buffer exported from its view"):
        pool.unmap(h)
    assert view.tobytes() == b"0123456789"  # unreleased: the map is untouched
    del arr
    pool.unmap(h)
    pool.free(h)


def test_nested_maps_end_latest_first(pool: Pool) -> None:
    h = pool.malloc_write(b"0123456789")
    outer = pool.map(h)
    part = outer[0:2]
    inner = pool.map(h, writable=True)
    pool.unmap(h)  # the inner map: nothing derived from it
    with pytest.raises(ValueError):
        inner.tobytes()
    with pytest.raises(PoolError, match="derived"):
        pool.unmap(h)  # the outer one: part is alive
    assert bytes(part) == b"01"
    del part
    pool.unmap(h)
    assert not pool.is_mapped(h)


def test_a_mapped_context_with_a_slice_kept_raises_on_exit(pool: Pool) -> None:
    h = pool.malloc_write(b"0123456789")
    kept = []
    with pytest.raises(PoolError, match="derived"):
        with pool.mapped(h, writable=True) as view:
            kept.append(view[0:4])
    assert pool.is_mapped(h)
    kept.clear()
    pool.unmap(h)
    pool.free(h)


def test_compaction_does_not_move_an_object_a_derived_view_holds() -> None:
    for cls in (ZsPool, PyZsPool):
        pool = cls(PageAllocator())
        handles = [pool.malloc_write(bytes([i]) * 1000) for i in range(40)]
        keep = handles[-1]
        part = pool.map(keep, writable=True)[0:8]
        with pytest.raises(PoolError, match="derived"):
            pool.unmap(keep)
        for h in handles[:-1]:
            pool.free(h)
        where = pool._where(keep)[1:3]
        pool.compact()
        assert pool._where(keep)[1:3] == where
        part[:] = b"z" * 8
        assert pool.read(keep) == b"z" * 8 + bytes([39]) * 992
        del part
        pool.unmap(keep)
        pool.free(keep)
        assert pool.pages == 0


def test_destroy_refuses_while_a_derived_view_lives_and_frees_nothing(pool: Pool) -> None:
    alloc = pool.allocator  # type: ignore[attr-defined]
    handles = [pool.malloc_write(bytes([i]) * 300) for i in range(20)]
    views = [pool.map(handles[0]), pool.map(handles[1], writable=True)]
    part = views[1][0:4]
    pages = alloc.pages_in_use
    with pytest.raises(PoolError, match=r"cannot destroy.*1 mapped object.*destroy again"):
        pool.destroy()
    assert alloc.pages_in_use == pages and pool.pages == pages
    assert pool.is_mapped(handles[0]) and pool.is_mapped(handles[1])
    assert all(pool.read(h) == bytes([i]) * 300 for i, h in enumerate(handles))
    part[:] = b"abcd"  # still the object's own memory
    assert pool.read(handles[1])[:4] == b"abcd"
    del part
    pool.destroy()
    assert alloc.pages_in_use == 0 and pool._maps == {}
    with pytest.raises(ValueError):
        views[0].tobytes()


def test_a_read_only_map_exports_read_only_memory(pool: Pool) -> None:
    h = pool.malloc_write(b"0123456789")
    view = pool.map(h)
    again = memoryview(view.obj)
    assert again.readonly
    with pytest.raises(TypeError):
        again[0] = 1
    del again
    pool.unmap(h)
    assert pool.read(h) == b"0123456789"
