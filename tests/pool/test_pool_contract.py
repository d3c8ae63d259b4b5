"""The pool contract, for zsmalloc (compiled and the Python model) and zbud alike: data, handles,
errors, failure, lifecycle."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from hwzswap.errors import InvalidHandleError, InvalidParameterError, PoolAllocError, PoolError
from hwzswap.impl import compiled
from hwzswap.pool import PAGE_SIZE, PageAllocator, Pool, ZbudPool, ZsPool, create_pool, pool_class
from hwzswap.pool._handles import serial_of
from hwzswap.pool.zsmalloc import PyZsPool

#: "zsmalloc" is the compiled pool, "zsmalloc-py" its pure-Python reference model.
KINDS = ["zsmalloc", "zsmalloc-py", "zbud"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def make(kind: str, allocator: PageAllocator | None = None) -> Pool:
    alloc = allocator if allocator is not None else PageAllocator()
    if kind == "zsmalloc-py":
        return PyZsPool(alloc)
    return create_pool(kind, alloc)


def check(pool: Pool) -> None:
    pool.check()


SIZES = [1, 2, 24, 25, 31, 32, 33, 100, 1000, 2047, 2048, 2049, 3000, 3257, 3625, 3968, 3969,
         4000, 4095, 4096]


def test_create_pool_kinds_and_errors() -> None:
    want = ZsPool if compiled() else PyZsPool  # HWZSWAP_IMPL picks
    assert type(create_pool("zsmalloc")) is want and pool_class("zsmalloc") is want
    assert isinstance(create_pool("zbud", PageAllocator()), ZbudPool)
    pool = create_pool("zsmalloc", None, max_pages_per_zspage=4, name="zswap1")
    assert pool.name == "zswap1" and pool.max_pages_per_zspage == 4  # type: ignore[attr-defined]
    with pytest.raises(InvalidParameterError, match="unknown pool kind 'z3fold'.*zsmalloc, zbud"):
        create_pool("z3fold")
    with pytest.raises(InvalidParameterError, match="bad parameters"):
        create_pool("zbud", None, max_pages_per_zspage=4)
    for cls in (ZsPool, PyZsPool, ZbudPool):
        with pytest.raises(PoolError, match="PageAllocator"):
            cls(allocator=object())  # type: ignore[arg-type]


def test_every_size_round_trips(kind: str) -> None:
    pool = make(kind)
    stored = {}
    for size in SIZES:
        data = os.urandom(size)
        h = pool.malloc(size)
        assert isinstance(h, int) and pool.obj_size(h) == size
        pool.write(h, data)
        stored[h] = data
    check(pool)
    for h, data in stored.items():
        out = pool.read(h)
        assert type(out) is bytes and out == data
    assert pool.stats()["stored_bytes"] == sum(SIZES)
    assert pool.stats()["objects"] == len(SIZES)


def test_partial_write_replaces_a_prefix(kind: str) -> None:
    pool = make(kind)
    h = pool.malloc(10)
    pool.write(h, b"abcdefghij")
    pool.write(h, bytearray(b"XY"))
    pool.write(h, memoryview(b"__Z")[2:])
    assert pool.read(h) == b"ZYcdefghij"
    pool.write(h, b"")
    assert pool.read(h) == b"ZYcdefghij"


def test_the_bytes_live_in_the_allocators_pages(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    data = os.urandom(777)
    h = pool.malloc_write(data)
    run, off, size, _ = pool._where(h)  # type: ignore[attr-defined]
    assert alloc.owns(run) and size == 777
    assert run[off : off + size].tobytes() == data
    run[off] ^= 0xFF  # and reading (and view) comes from there
    assert pool.read(h)[0] == data[0] ^ 0xFF
    view = pool.view(h)
    assert view.readonly and view.tobytes() == pool.read(h) and view.obj is run.obj


def test_grows_on_demand_and_shrinks_to_nothing(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    assert alloc.pages_in_use == 0 and pool.total_pages() == 0  # nothing preallocated
    handles = [pool.malloc_write(os.urandom(n)) for n in range(100, 3000, 37)]
    assert alloc.pages_in_use == pool.total_pages() > 0
    assert pool.total_bytes() == pool.total_pages() * PAGE_SIZE
    for h in handles:
        pool.free(h)
    assert alloc.pages_in_use == 0 and pool.total_pages() == 0
    assert pool.stats()["density"] == 0.0
    check(pool)


@pytest.mark.parametrize("size", [0, -1, -4096, PAGE_SIZE + 1, 10**9])
def test_bad_sizes(kind: str, size: int) -> None:
    pool = make(kind)
    with pytest.raises(PoolError, match="malloc of"):
        pool.malloc(size)
    assert pool.total_pages() == 0 and pool.stats()["objects"] == 0


@pytest.mark.parametrize("size", [1.0, "8", None])
def test_non_int_sizes(kind: str, size: object) -> None:
    pool = make(kind)
    with pytest.raises(PoolError, match="must be an int"):
        pool.malloc(size)  # type: ignore[arg-type]


def test_write_too_long_changes_nothing(kind: str) -> None:
    pool = make(kind)
    h = pool.malloc(4)
    pool.write(h, b"abcd")
    with pytest.raises(PoolError, match="write of 5 bytes .* exceeds its size of 4"):
        pool.write(h, b"12345")
    assert pool.read(h) == b"abcd"


@pytest.mark.parametrize("data", ["text", 12, memoryview(b"\0" * 8).cast("I")])
def test_write_needs_bytes(kind: str, data: object) -> None:
    pool = make(kind)
    h = pool.malloc(32)
    pool.write(h, b"k" * 32)
    with pytest.raises(PoolError, match="bytes-like"):
        pool.write(h, data)
    assert pool.read(h) == b"k" * 32


def test_stale_double_free_and_use_after_free(kind: str) -> None:
    pool = make(kind)
    h = pool.malloc_write(b"x" * 100)
    keep = pool.malloc_write(b"y" * 100)
    pool.free(h)
    with pytest.raises(InvalidHandleError, match="already freed \\(double free\\)"):
        pool.free(h)
    for op in (pool.read, pool.obj_size, pool.map, pool.read_free):
        with pytest.raises(InvalidHandleError, match="already freed"):
            op(h)
    with pytest.raises(InvalidHandleError, match="already freed"):
        pool.write(h, b"z")
    # the handle is never handed out again, so a stale copy can never reach a new object
    fresh = [pool.malloc(100) for _ in range(50)]
    assert h not in fresh
    assert pool.read(keep) == b"y" * 100
    check(pool)


def test_foreign_and_made_up_handles(kind: str) -> None:
    pool, other = make(kind), make(kind)
    h = other.malloc_write(b"other pool")
    with pytest.raises(InvalidHandleError, match="does not belong to this pool"):
        pool.read(h)
    with pytest.raises(InvalidHandleError, match="does not belong"):
        pool.free(h)
    mine = pool.malloc(8)
    with pytest.raises(InvalidHandleError, match="never handed out"):
        pool.free(mine + 1000)
    for bad in (0, -5, "1", 1.5, None, [1]):
        with pytest.raises(InvalidHandleError):
            pool.free(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidHandleError):
            pool.read(bad)  # type: ignore[arg-type]
    assert other.read(h) == b"other pool" and pool.obj_size(mine) == 8
    assert h not in pool and mine in pool and [1] not in pool
    check(pool)
    check(other)


def test_allocation_failure_leaves_pool_consistent(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    live = {pool.malloc_write(os.urandom(n)): n for n in (500, 1500, 3000)}
    before = (alloc.pages_in_use, pool.stats()["objects"], pool.stats()["stored_bytes"])
    alloc.fail_next(1)
    with pytest.raises(PoolAllocError, match="injected"):
        pool.malloc(4096)  # always needs a new page
    assert (alloc.pages_in_use, pool.stats()["objects"], pool.stats()["stored_bytes"]) == before
    assert pool.stats()["alloc_fail"] == 1
    check(pool)
    h = pool.malloc(4096)  # the next attempt works
    live[h] = 4096
    for h in live:
        pool.free(h)
    assert alloc.pages_in_use == 0


def test_limit_reached(kind: str) -> None:
    alloc = PageAllocator(limit_pages=3)
    pool = make(kind, alloc)
    handles = []
    with pytest.raises(PoolAllocError, match="limit reached"):
        for _ in range(100):
            handles.append(pool.malloc_write(b"\x5a" * 4000))
    assert len(handles) == 3 and alloc.pages_in_use == 3
    check(pool)
    alloc.limit_pages = 4
    handles.append(pool.malloc_write(b"\x5a" * 4000))
    assert all(pool.read(h) == b"\x5a" * 4000 for h in handles)


def test_malloc_write_and_read_free(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    data = os.urandom(1234)
    h = pool.malloc_write(data)
    assert pool.obj_size(h) == 1234
    assert pool.read_free(h) == data
    assert h not in pool and alloc.pages_in_use == 0
    for bad in (b"", b"x" * (PAGE_SIZE + 1)):
        with pytest.raises(PoolError, match="malloc of"):
            pool.malloc_write(bad)
    with pytest.raises(PoolError, match="bytes-like"):
        pool.malloc_write("text of 12 c")
    with pytest.raises(PoolError, match="bytes-like"):
        pool.malloc_write(memoryview(b"\0" * 16).cast("I"))
    assert alloc.pages_in_use == 0 and pool.stats()["objects"] == 0
    check(pool)


def test_buffer_without_len_is_bytes_like(kind: str) -> None:
    """A buffer exporter with no ``len()`` (``pickle.PickleBuffer``) is taken by its byte
    count, by every pool alike (the compiled pool reads it through the buffer protocol)."""
    import pickle

    pool = make(kind)
    data = os.urandom(300)
    h = pool.malloc_write(pickle.PickleBuffer(data))
    assert pool.obj_size(h) == 300 and pool.read(h) == data
    new = os.urandom(200)
    pool.write(h, pickle.PickleBuffer(new))
    assert pool.read(h)[:200] == new
    with pytest.raises(PoolError, match="bytes-like"):
        pool.malloc_write(pickle.PickleBuffer(np.zeros(8, np.uint32)))
    with pytest.raises(PoolError, match="too long|does not fit|bytes"):
        pool.write(h, pickle.PickleBuffer(os.urandom(301)))
    pool.free(h)
    check(pool)


def test_map_is_zero_copy_and_pins(kind: str) -> None:
    pool = make(kind)
    h = pool.malloc_write(b"0123456789")
    ro = pool.map(h)
    assert ro.readonly and ro.tobytes() == b"0123456789"
    with pytest.raises(TypeError):
        ro[0] = 1  # type: ignore[index]
    rw = pool.map(h, writable=True)
    rw[0:2] = b"AB"
    assert ro.tobytes() == b"AB23456789" == pool.read(h)  # same memory, no copy
    assert pool.is_mapped(h)
    with pytest.raises(PoolError, match="while it is mapped"):
        pool.free(h)
    with pytest.raises(PoolError, match="while it is mapped"):
        pool.read_free(h)
    pool.unmap(h)
    with pytest.raises(ValueError):
        rw.tobytes()  # released: a view cannot outlive its unmap
    pool.unmap(h)
    assert not pool.is_mapped(h)
    with pytest.raises(PoolError, match="not mapped"):
        pool.unmap(h)
    with pool.mapped(h) as view:
        assert view.tobytes() == b"AB23456789"
    assert not pool.is_mapped(h)
    pool.free(h)
    with pytest.raises(InvalidHandleError):
        pool.unmap(h)
    check(pool)


def test_destroy_returns_everything_and_disables_the_pool(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    handles = [pool.malloc_write(os.urandom(n)) for n in range(50, 4096, 91)]
    view = pool.map(handles[0])
    pool.destroy()
    assert alloc.pages_in_use == 0 and pool.total_pages() == 0
    with pytest.raises(ValueError):
        view.tobytes()
    with pytest.raises(PoolError, match="destroyed"):
        pool.malloc(10)
    with pytest.raises(PoolError, match="destroyed"):
        pool.malloc_write(b"abc")
    with pytest.raises(InvalidHandleError, match="destroyed"):
        pool.read(handles[1])
    assert pool.compact() == 0
    pool.destroy()  # idempotent
    assert alloc.pages_in_use == 0


def test_pools_share_an_allocator(kind: str) -> None:
    alloc = PageAllocator()
    a, b = make(kind, alloc), make("zsmalloc", alloc)
    ha = a.malloc_write(b"a" * 3000)
    hb = b.malloc_write(b"b" * 3000)
    assert alloc.pages_in_use == a.total_pages() + b.total_pages()
    assert ha != hb
    a.free(ha)
    b.free(hb)
    assert alloc.pages_in_use == 0


def test_stats_totals(kind: str) -> None:
    pool = make(kind)
    sizes = [100, 900, 2500, 4096]
    for n in sizes:
        pool.malloc_write(os.urandom(n))
    st = pool.stats()
    for key in ("pool_bytes", "pages", "objects", "stored_bytes", "density", "pages_compacted",
                "classes"):
        assert key in st
    assert st["objects"] == 4 and st["stored_bytes"] == sum(sizes)
    assert st["pool_bytes"] == st["pages"] * PAGE_SIZE == pool.total_bytes()
    assert st["density"] == pytest.approx(sum(sizes) / st["pool_bytes"])
    assert st["kind"] == kind.split("-")[0] and len(pool) == 4
    assert repr(pool).startswith(type(pool).__name__)


def test_view_is_zero_copy_read_only_and_unpinned(kind: str) -> None:
    pool = make(kind)
    h = pool.malloc_write(b"0123456789")
    view = pool.view(h)
    assert view.readonly and view.tobytes() == b"0123456789"
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]
    pool.write(h, b"AB")
    assert view.tobytes() == b"AB23456789"  # the pool's memory itself, not a copy
    assert not pool.is_mapped(h)
    del view
    pool.free(h)  # not pinned: free does not refuse it
    with pytest.raises(InvalidHandleError, match="view of handle"):
        pool.view(h)
    check(pool)


def test_pages_and_peak_are_tracked(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    assert pool.pages == pool.peak_pages == pool.stored_at_peak == 0
    handles, peak, at_peak = [], 0, 0
    for n in [3000, 100, 4096, 700, 2500, 3900, 1500] * 3:
        handles.append(pool.malloc_write(os.urandom(n)))
        assert pool.pages == pool.total_pages() == alloc.pages_in_use
        if pool.pages > peak:  # a new peak: it starts at what is stored now
            peak, at_peak = pool.pages, pool.stored_bytes
        elif pool.pages == peak:  # still at the peak: the most stored while there
            at_peak = max(at_peak, pool.stored_bytes)
        assert (pool.peak_pages, pool.stored_at_peak) == (peak, at_peak)
    for h in handles[::2]:
        pool.free(h)
    pool.compact()
    assert pool.pages < peak and (pool.peak_pages, pool.stored_at_peak) == (peak, at_peak)
    assert 0 < pool.stored_at_peak <= pool.peak_pages * PAGE_SIZE
    pool.destroy()
    assert (pool.peak_pages, pool.stored_at_peak) == (peak, at_peak)


def test_the_peak_holds_its_fullest_state_through_compaction_and_destroy(kind: str) -> None:
    pool = make(kind)
    small = [pool.malloc_write(os.urandom(200)) for _ in range(60)]
    peak = pool.pages
    assert pool.peak_pages == peak
    top = pool.stored_bytes
    for h in small[1::2]:
        pool.free(h)  # at the peak: what it held just before is the most
    pool.compact()  # shrinks without a free at the peak
    assert pool.peak_pages == peak and pool.stored_at_peak == top
    pool.destroy()
    assert pool.stored_at_peak == top


def test_failed_malloc_write_leaves_the_peak_true(kind: str) -> None:
    alloc = PageAllocator()
    pool = make(kind, alloc)
    h = pool.malloc_write(b"x" * 3000)
    with pytest.raises(PoolError, match="bytes-like"):
        pool.malloc_write(memoryview(b"\0" * 4000).cast("I"))  # 1000 items: fails to write
    assert pool.pages == alloc.pages_in_use and len(pool) == 1
    assert pool.stored_at_peak == pool.stored_bytes == 3000  # nothing counted for the failure
    pool.free(h)
    check(pool)


def test_a_failed_malloc_write_at_an_old_peak_keeps_the_old_record(kind: str) -> None:
    pool = make(kind)
    handles = [pool.malloc_write(os.urandom(3900)) for _ in range(4)]  # a page each
    top = pool.stored_bytes
    for h in handles[2:]:
        pool.free(h)
    assert pool.stored_at_peak == top and pool.pages < pool.peak_pages
    pool.malloc_write(os.urandom(3900))  # back up, not to a new peak
    with pytest.raises(PoolError, match="bytes-like"):
        pool.malloc_write(memoryview(bytes(3900 * 4)).cast("I"))  # reaches the old peak, fails
    assert pool.stored_at_peak == top
    check(pool)


# -- what zswap relies on: refused calls change nothing; handles increase, never reused -------


def _state(pool: Pool) -> tuple[object, ...]:
    """What a caller can see of a pool: its live handles (types and order included), length,
    totals, per-class rows and page counters."""
    hs = pool.handles()  # type: ignore[attr-defined]
    return ([(type(h), h) for h in hs], len(pool), pool.stats(), pool.pages, pool.peak_pages,
            pool.stored_at_peak, pool.stored_bytes)


@pytest.mark.parametrize("as_handle", [int, np.int64, np.uint64], ids=["int", "int64", "uint64"])
def test_a_refused_free_of_a_mapped_object_changes_nothing(kind: str, as_handle: type) -> None:
    pool = make(kind)
    handles = [pool.malloc_write(bytes([n % 256]) * n) for n in (100, 700, 1500, 3000, 40, 2000)]
    h = handles[2]
    view = pool.map(as_handle(h))
    before = _state(pool)
    for refused in (pool.free, pool.read_free):
        with pytest.raises(PoolError, match="while it is mapped"):
            refused(as_handle(h))
        assert _state(pool) == before
    hs = pool.handles()  # type: ignore[attr-defined]
    assert hs == sorted(hs) == handles and all(type(x) is int for x in hs)
    assert view.tobytes() == pool.read(h) == bytes([1500 % 256]) * 1500
    check(pool)
    pool.unmap(as_handle(h))
    pool.free(as_handle(h))  # and once unmapped it goes, by the same handle
    assert pool.handles() == handles[:2] + handles[3:]  # type: ignore[attr-defined]
    check(pool)


@pytest.mark.parametrize("as_handle", [np.int64, np.uint64], ids=["int64", "uint64"])
def test_numpy_integer_handles_are_handles(kind: str, as_handle: type) -> None:
    pool = make(kind)
    h = pool.malloc_write(b"abcdef")
    nh = as_handle(h)
    assert nh in pool and pool.obj_size(nh) == 6 and pool.read(nh) == b"abcdef"
    pool.write(nh, b"XY")
    assert bytes(pool.view(nh)) == b"XYcdef"
    with pool.mapped(nh) as view:
        assert view.tobytes() == b"XYcdef" and pool.is_mapped(nh) and pool.is_mapped(h)
    assert pool.read_free(nh) == b"XYcdef" and h not in pool and nh not in pool
    # a stale numpy handle is named as stale, as the int is
    for op in (pool.free, pool.read, pool.read_free):
        with pytest.raises(InvalidHandleError, match="already freed"):
            op(nh)
    assert pool.handles() == [] and len(pool) == 0  # type: ignore[attr-defined]
    check(pool)


def test_malloc_takes_numpy_integer_sizes(kind: str) -> None:
    pool = make(kind)
    sizes = [np.int64(100), np.uint16(3000), np.int32(4096)]
    handles = [pool.malloc(n) for n in sizes]
    assert [pool.obj_size(h) for h in handles] == [100, 3000, 4096]
    assert all(type(h) is int and type(pool.obj_size(h)) is int for h in handles)
    assert type(pool.stored_bytes) is int and type(pool.stats()["stored_bytes"]) is int
    for bad in (np.int64(0), np.int64(4097), np.float64(8.0)):
        with pytest.raises(PoolError, match="malloc"):
            pool.malloc(bad)
    assert pool.handles() == handles  # type: ignore[attr-defined]
    check(pool)


def test_handles_increase_with_every_malloc_and_are_never_reused(kind: str) -> None:
    """zswap uses a handle as the entry's store-sequence number (its LRU order) and as its
    identity in writeback's re-check: each handle a pool hands out, by any call, is greater
    than every handle it handed out before, whatever was freed or moved meanwhile."""
    rng = random.Random(7)
    alloc = PageAllocator(limit_pages=24)
    pool = make(kind, alloc)
    last = 0
    seen: set[int] = set()
    live: list[int] = []

    def took(new: list[int]) -> None:
        nonlocal last
        for h in new:
            assert type(h) is int and h > last and h not in seen
            last = h
            seen.add(h)
            live.append(h)

    for step in range(600):
        op = rng.random()
        try:
            if op < 0.3:
                took([pool.malloc(rng.randint(1, PAGE_SIZE))])
            elif op < 0.55:
                took([pool.malloc_write(os.urandom(rng.choice([64, 500, 1000, 2000, 4000])))])
            elif op < 0.65:
                buf = os.urandom(8192)
                n = rng.randint(1, 6)
                took(pool.malloc_write_batch(buf, [rng.randint(0, 4000) for _ in range(n)],
                                             [rng.randint(1, 4096) for _ in range(n)]))
            elif op < 0.95 and live:
                h = live.pop(rng.randrange(len(live)))
                pool.free(np.int64(h) if step % 2 else h)
            else:
                pool.compact()
        except PoolAllocError:  # (the limit): no handle taken
            pass
        if step % 50 == 0:
            check(pool)
        assert pool.handles() == live == sorted(live)  # type: ignore[attr-defined]
    assert len(seen) > 150


def _layout(pool: Pool) -> list[tuple[int, int, int, int]]:
    """Where every live object is: (serial, offset, size, owner), the owners numbered by first
    appearance, so two pools that made the same choices have the same layout."""
    owners: dict[int, int] = {}
    out = []
    for h in pool.handles():  # type: ignore[attr-defined]
        _, off, size, owner = pool._where(h)  # type: ignore[attr-defined]
        out.append((serial_of(h), off, size, owners.setdefault(owner, len(owners))))
    return out


def _seen(pool: Pool) -> tuple[object, ...]:
    st = dict(pool.stats())
    del st["name"], st["alloc_fail"]  # (a refused malloc counts in alloc_fail: the twin's not)
    return (_layout(pool), len(pool), st, pool.pages, pool.peak_pages, pool.stored_at_peak,
            pool.stored_bytes)


def _refuse(pool: Pool, alloc: PageAllocator, live: list[int], freed: list[int],
            rng: random.Random, sizes: list[int]) -> None:
    """One call that the pool must refuse, and leave as it was."""
    what = rng.randrange(9)
    if what == 0 and live:  # free of a mapped object
        h = rng.choice(live)
        with pool.mapped(np.int64(h)):
            with pytest.raises(PoolError, match="while it is mapped"):
                pool.free(np.int64(h) if rng.random() < 0.5 else h)
            with pytest.raises(PoolError, match="while it is mapped"):
                pool.read_free(h)
    elif what == 1:  # malloc_write of data that is not single bytes: a slot is tried
        n = rng.choice(sizes) + rng.randint(0, 8)  # (a class the pool has zspages of)
        with pytest.raises(PoolError, match="bytes-like"):
            pool.malloc_write(memoryview(bytes(4 * n)).cast("I"))
    elif what == 2 and live:  # write too long, or not bytes
        h = rng.choice(live)
        with pytest.raises(PoolError, match="exceeds its size"):
            pool.write(np.int64(h), b"z" * (pool.obj_size(h) + 1))
        with pytest.raises(PoolError, match="bytes-like"):
            pool.write(h, "text")
    elif what == 3:
        with pytest.raises(PoolError, match="malloc"):
            pool.malloc(rng.choice([0, -3, PAGE_SIZE + 1, np.int64(0)]))
    elif what == 4 and freed:  # a double free, as int or numpy
        with pytest.raises(InvalidHandleError, match="already freed"):
            pool.free(np.int64(rng.choice(freed)) if rng.random() < 0.5 else rng.choice(freed))
    elif what == 5:  # no page to be had
        alloc.fail_next(1)
        with pytest.raises(PoolAllocError):
            pool.malloc(PAGE_SIZE)  # always a page of its own
    elif what == 6:
        alloc.fail_next(1)
        assert pool.malloc_write_batch(bytes(PAGE_SIZE), [0], [PAGE_SIZE]) == []
    elif what == 7:  # a batch with a bad item: refused before anything is written
        with pytest.raises(PoolError, match="out of range"):
            pool.malloc_write_batch(bytes(100), [0, 10], [10, 10], [0, 1, 2])
    elif what == 8:
        with pytest.raises(PoolError, match="bytes-like"):
            pool.malloc_write("not bytes")


@pytest.mark.parametrize("seed", range(4))
def test_refused_calls_are_invisible(kind: str, seed: int) -> None:
    """A pool that was refused calls along the way and one that never was, given the same
    successful calls, are the same pool: same objects in the same slots of the same pages,
    same handles (serials), totals and peak. (The refused calls include a slot taken and given
    back, a page got and given back, and a zspage picked for an object that never came.)"""
    rng = random.Random(seed)
    allocs = (PageAllocator(), PageAllocator())
    pools = (make(kind, allocs[0]), make(kind, allocs[1]))
    lives: tuple[list[int], list[int]] = ([], [])
    freed: list[int] = []
    sizes = [40, 100, 500, 1000, 1010, 1560, 2040, 3000, 4000]
    for step in range(300):
        if rng.random() < 0.3:
            _refuse(pools[0], allocs[0], lives[0], freed, rng, sizes)
        else:
            op = rng.random()
            if op < 0.55 or not lives[0]:
                data = os.urandom(rng.choice(sizes) + rng.randint(0, 8))
                for pool, live in zip(pools, lives):
                    live.append(pool.malloc_write(data))
            elif op < 0.95:
                i = rng.randrange(len(lives[0]))
                freed.append(lives[0][i])  # (a handle of pools[0], which the refusals use)
                for pool, live in zip(pools, lives):
                    pool.free(live.pop(i))
            else:
                assert pools[0].compact() == pools[1].compact()
        assert _seen(pools[0]) == _seen(pools[1]), f"step {step}"
    for pool in pools:
        check(pool)
    assert [pools[0].read(h) for h in lives[0]] == [pools[1].read(h) for h in lives[1]]


def test_a_refused_malloc_write_leaves_the_next_choice_of_slot_alone(kind: str) -> None:
    """The refused ``malloc_write`` of an object whose zspage (zbud: page) has to be picked
    from the partly used ones puts it back where it was in its list: the next object goes
    where it would have gone without the refusal. (Twelve ~1000-byte objects fill three
    4-object zspages (six buddied zbud pages); freeing one object each of three of them leaves
    them in one fullness group (unbuddied list) in the order freed.)"""
    pools = (make(kind), make(kind))
    lives = [[p.malloc_write(bytes([i]) * 1000) for i in range(12)] for p in pools]
    for pool, live in zip(pools, lives):
        pool.free(live[0])
        pool.free(live[4])
    with pytest.raises(PoolError, match="bytes-like"):
        pools[0].malloc_write(memoryview(bytes(4000)).cast("I"))  # 1000 items, not bytes
    for pool, live in zip(pools, lives):
        pool.free(live[8])
        pool.malloc_write(b"n" * 1000)
    assert _layout(pools[0]) == _layout(pools[1])
    for pool in pools:
        check(pool)


def test_the_interface_declares_len_and_check(kind: str) -> None:
    """``len(pool)`` and ``pool.check()`` are part of :class:`Pool`, so a caller (zswap's
    check) uses them on any pool: ``__len__`` every pool must define, ``check`` has a default
    that checks nothing, and each pool here has its own."""
    assert "__len__" in Pool.__abstractmethods__ and "check" not in Pool.__abstractmethods__
    pool = make(kind)
    assert type(pool).check is not Pool.check  # (its own)
    handles = [pool.malloc_write(b"x" * n) for n in (10, 2000, 4096)]
    assert len(pool) == 3
    pool.free(handles[1])
    assert len(pool) == 2
    check(pool)

    class Bare(Pool):  # only what it must define
        def __init__(self) -> None:
            self.objs: dict[int, bytes] = {}

        def malloc(self, size: int) -> int:
            self.objs[len(self.objs) + 1] = bytes(size)
            return len(self.objs)

        def free(self, handle: int) -> None:
            del self.objs[handle]

        def write(self, handle: int, data: object) -> None:
            raise NotImplementedError

        def read(self, handle: int) -> bytes:
            return self.objs[handle]

        def obj_size(self, handle: int) -> int:
            return len(self.objs[handle])

        def __len__(self) -> int:
            return len(self.objs)

        @property
        def stored_bytes(self) -> int:
            return sum(map(len, self.objs.values()))

        def stats(self) -> dict[str, object]:
            return {}

    bare = Bare()
    bare.malloc(5)
    assert len(bare) == 1 and bare.check() is None

    class NoLen(Pool):  # an interface without __len__ is not a pool
        malloc = Bare.malloc
        free = Bare.free
        write = Bare.write
        read = Bare.read
        obj_size = Bare.obj_size
        stored_bytes = Bare.stored_bytes
        stats = Bare.stats

    with pytest.raises(TypeError, match="__len__"):
        NoLen()  # type: ignore[abstract]
