"""``malloc_write_batch``: a batch of objects from one flat buffer in one call.

The compiled pool's C loop (``ZsPool``) against the Python reference (``PyZsPool``): the same
handles in the same order (by serial: each pool tags its own), the same bytes, the same stats,
the same errors. Every pool (zbud, and the interface's default loop) keeps the contract: the
handles of a prefix of ``idx``, stopping at the first item the pool has no room for; bad
arguments raise ``PoolError`` with nothing written.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.errors import PoolAllocError, PoolError
from hwzswap.pool import PAGE_SIZE, PageAllocator, Pool, PyZsPool, ZbudPool, ZsPool
from hwzswap.pool._handles import serial_of

SIZES = st.one_of(st.integers(1, PAGE_SIZE), st.sampled_from([1, 32, 1000, 3625, 4096]),
                  st.integers(490, 520))


@st.composite
def batches(draw):
    """A flat buffer of random bytes with items at random places (overlapping or not), an
    item order (None, a subset, a permutation, repeats) and the buffer's type."""
    n = draw(st.integers(0, 24))
    sizes = [draw(SIZES) for _ in range(n)]
    length = draw(st.integers(max(sizes, default=0), max(sizes, default=0) + 20000))
    offsets = [draw(st.integers(0, length - s)) for s in sizes]
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8)
    kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "ndarray", "2d"]))
    if kind == "2d" and length % 8 == 0:
        buf = raw.reshape(8, -1)
    elif kind in ("ndarray", "2d"):
        buf = raw
    else:
        buf = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](
            raw.tobytes())
    idx = draw(st.one_of(
        st.none(),
        st.lists(st.integers(0, n - 1), max_size=30) if n else st.just([]),
        st.permutations(range(n)),
    ))
    arrays = draw(st.booleans())
    as_ints = (lambda v: np.asarray(v, dtype=np.int64)) if arrays else list
    return (buf, as_ints(offsets), as_ints(sizes), None if idx is None else as_ints(idx),
            raw.tobytes())


def _expected(flat, offsets, sizes, idx):
    order = range(len(sizes)) if idx is None else idx
    return [flat[int(offsets[i]) : int(offsets[i]) + int(sizes[i])] for i in order]


@settings(max_examples=150, deadline=None)
@given(batches(), st.sampled_from([None, 2, 6, 20]), st.integers(0, 3), st.booleans())
def test_compiled_and_reference_write_a_batch_alike(batch, limit, fail_after, prefill):
    buf, offsets, sizes, idx, flat = batch
    pools = []
    for cls in (ZsPool, PyZsPool):
        alloc = PageAllocator(limit_pages=limit, cache_pages=4)
        pool = cls(alloc)
        if prefill:  # some objects and a free first: batches land in partial zspages too
            hs = [pool.malloc_write(bytes([k]) * (200 + 300 * k)) for k in range(4)
                  if pool.pages + 4 <= (limit or 99)]
            if hs:
                pool.free(hs[0])
        if fail_after:  # injected allocation failures: the batch stops where one hits
            alloc.fail_next(fail_after)
        pools.append((pool, alloc))
    results = []
    for pool, _ in pools:
        results.append(pool.malloc_write_batch(buf, offsets, sizes, idx))
    (c, _), (p, _) = pools
    hc, hp = results
    assert [serial_of(h) for h in hc] == [serial_of(h) for h in hp]
    want = _expected(flat, offsets, sizes, idx)
    assert len(hc) <= len(want)
    assert [c.read(h) for h in hc] == [p.read(h) for h in hp] == want[: len(hc)]
    if len(hc) < len(want) and not fail_after:  # it stopped: the next item did not fit
        with pytest.raises(PoolAllocError):
            c.malloc_write(want[len(hc)])
        with pytest.raises(PoolAllocError):
            p.malloc_write(want[len(hp)])
    assert c.stats() == p.stats()
    assert (c.peak_pages, c.stored_at_peak) == (p.peak_pages, p.stored_at_peak)
    c.check()
    p.check()


@pytest.mark.parametrize("make", [ZsPool, PyZsPool, ZbudPool])
def test_a_batch_stops_at_the_first_item_without_room(make) -> None:
    alloc = PageAllocator(limit_pages=3)
    pool = make(alloc)
    flat = bytes(range(256)) * 64
    sizes = np.array([3900] * 5, dtype=np.int64)  # one per page each
    offsets = np.array([0, 5, 10, 15, 20], dtype=np.int64)
    handles = pool.malloc_write_batch(flat, offsets, sizes)
    assert len(handles) == 3 and [pool.read(h) for h in handles] == [
        flat[o : o + 3900] for o in (0, 5, 10)]
    assert alloc.pages_in_use == 3
    pool.check()


class _Plain(Pool):
    """A pool with only the abstract methods: it gets the interface's default batch loop."""

    def __init__(self) -> None:
        self.inner = ZbudPool(PageAllocator(limit_pages=2))

    def malloc(self, size):
        return self.inner.malloc(size)

    def free(self, handle):
        self.inner.free(handle)

    def write(self, handle, data):
        self.inner.write(handle, data)

    def read(self, handle):
        return self.inner.read(handle)

    def obj_size(self, handle):
        return self.inner.obj_size(handle)

    def __len__(self):
        return len(self.inner)

    @property
    def stored_bytes(self):
        return self.inner.stored_bytes

    def stats(self):
        return self.inner.stats()


@pytest.mark.parametrize("make", [ZsPool, PyZsPool, ZbudPool, _Plain])
def test_bad_batches_raise_with_nothing_written(make) -> None:
    pool = make()
    flat = b"abcdefgh" * 600
    bad = [
        ("not bytes-like", "text", [0], [1], None),
        ("not contiguous", np.zeros((8, 8), np.uint8)[:, 0], [0], [1], None),
        ("floats", flat, [0.0], [1], None),
        ("lengths", flat, [0, 1], [1], None),
        ("index", flat, [0], [1], [0, 1]),
        ("negative index", flat, [0], [1], [-1]),
        ("size 0", flat, [0, 0], [5, 0], None),
        ("size > page", flat, [0], [PAGE_SIZE + 1], None),
        ("outside", flat, [0, len(flat) - 3], [5, 4], None),
        ("negative offset", flat, [-1], [4], None),
        ("huge", flat, [2**70], [4], None),
    ]
    messages = []
    for why, buf, offsets, sizes, idx in bad:
        with pytest.raises(PoolError) as err:
            pool.malloc_write_batch(buf, offsets, sizes, idx)
        messages.append(str(err.value))
        assert pool.stored_bytes == 0, why
    assert all("malloc_write_batch" in m for m in messages)
    if make is not _Plain:
        assert len(pool) == 0  # type: ignore[arg-type]


def test_compiled_and_reference_say_the_same() -> None:
    flat = b"x" * 5000
    for args in [("s", [0], [1]), (flat, [0], [4097]), (flat, [1, 2], [1]),
                 (flat, [0], [1], [3]), (flat, ["0"], [1]), (flat, [4999], [2])]:
        msgs = []
        for cls in (ZsPool, PyZsPool):
            with pytest.raises(PoolError) as err:
                cls().malloc_write_batch(*args)
            msgs.append(str(err.value))
        assert msgs[0] == msgs[1]


class _ExplodingAllocator(PageAllocator):
    """Refuses its third page run with an error that is not an allocation failure."""

    calls = 0

    def alloc_pages(self, n):
        type(self).calls += 1
        if type(self).calls == 3:
            raise RuntimeError("the allocator broke")
        return super().alloc_pages(n)


@pytest.mark.parametrize("make", [ZsPool, PyZsPool])
def test_another_error_frees_what_the_batch_wrote(make) -> None:
    _ExplodingAllocator.calls = 0
    alloc = _ExplodingAllocator()
    pool = make(alloc)
    keep = pool.malloc_write(b"k" * 3900)  # huge class: a page each
    with pytest.raises(RuntimeError, match="broke"):
        pool.malloc_write_batch(b"y" * 9000, [0, 10, 20], [3900, 3900, 3900])
    assert len(pool) == 1 and pool.read(keep) == b"k" * 3900
    assert alloc.pages_in_use == pool.pages
    pool.check()


def test_a_batch_from_the_pools_own_memory() -> None:
    """buf may be a view of the pool itself (even the slot the item lands in)."""
    for cls in (ZsPool, PyZsPool):
        pool = cls()
        h = pool.malloc_write(bytes(range(200)))
        view = pool.view(h)
        pool.free(h)
        got = pool.malloc_write_batch(view, [0, 50], [200, 100])
        assert [pool.read(g) for g in got] == [bytes(range(200)), bytes(range(50, 150))]
        pool.check()


def test_empty_batches_and_a_destroyed_pool() -> None:
    for cls in (ZsPool, PyZsPool, ZbudPool):
        pool = cls()
        assert pool.malloc_write_batch(b"", [], []) == []
        assert pool.malloc_write_batch(b"abc", [0], [3], []) == []
        pool.destroy()
        with pytest.raises(PoolError, match="destroyed"):
            pool.malloc_write_batch(b"abc", [0], [3])


def test_buffers_of_any_format_give_their_bytes() -> None:
    data = np.arange(1000, dtype=np.int32)
    for buf in (data, data.astype(">i4"), data.view(np.float32), data.reshape(10, 100),
                memoryview(data.tobytes()).cast("c")):
        flat = memoryview(buf).tobytes()
        for cls in (ZsPool, PyZsPool, ZbudPool):
            pool = cls()
            handles = pool.malloc_write_batch(buf, [0, 13, 3000], [13, 2000, 1000])
            assert [pool.read(h) for h in handles] == [flat[0:13], flat[13:2013],
                                                        flat[3000:4000]]


class _Once:
    """An iterable of integers that counts how often it is iterated and its items read."""

    def __init__(self, values):
        self.values, self.iterations, self.reads = list(values), 0, 0

    def __iter__(self):
        self.iterations += 1
        for v in self.values:
            yield _Counted(self, v) if type(v) is int else v


class _Counted:
    def __init__(self, owner, value):
        self.owner, self.value = owner, value

    def __index__(self):
        self.owner.reads += 1
        return self.value


@pytest.mark.parametrize("case", [
    ("a bad item", [0, "x", 2], [1, 1, 1], None, "offsets must be a sequence"),
    ("sizes, not ints", [0, 1], [1, 2.5], None, "sizes must be a sequence"),
    ("a size of 0", [0, 1, 2], [1, 0, 1], None, "item 1 has 0 bytes"),
    ("outside buf", [0, 4998], [1, 5], None, "item 1 (5 bytes at offset 4998) lies outside"),
    ("a bad index", [0, 1], [1, 1], [1, 2], "item index 2 is out of range for 2 items"),
    ("an index not an int", [0, 1], [1, 1], [0, None], "idx must be a sequence"),
    ("lengths", [0, 1, 2], [1, 1], [0], "3 offsets for 2 sizes"),
    ("a huge offset", [2**70], [1], None, f"at offset {2**70}) lies outside"),
], ids=lambda c: c[0])
def test_bad_arguments_are_read_once_and_named_alike(case) -> None:
    """The compiled pool builds its message from what it read: no argument is iterated, and
    no item's ``__index__`` called, twice (a generator's second pass would be empty)."""
    _, offsets, sizes, idx, want = case
    flat = b"x" * 5000
    msgs = []
    for cls in (ZsPool, PyZsPool):
        args = [_Once(offsets), _Once(sizes), None if idx is None else _Once(idx)]
        with pytest.raises(PoolError, match=re.escape(want)) as err:
            cls().malloc_write_batch(flat, *args)
        msgs.append(re.sub(r" at 0x[0-9a-f]+", "", str(err.value)))
        for arg in args:
            if arg is not None:
                assert arg.iterations <= 1 and arg.reads <= len(arg.values), (cls, arg.values)
    assert msgs[0] == msgs[1]


def test_a_generator_and_an_unsigned_array_are_named_as_they_were_read() -> None:
    flat = b"x" * 5000
    big = np.array([2**63 + 5], np.uint64)
    for cls in (ZsPool, PyZsPool):
        with pytest.raises(PoolError, match=f"offset {2**63 + 5}\\) lies outside buf"):
            cls().malloc_write_batch(flat, big, [4])
        with pytest.raises(PoolError, match="item 0 has 5000 bytes"):
            cls().malloc_write_batch(flat, (o for o in [0]), (s for s in [5000]))
        with pytest.raises(PoolError, match="offsets must be a sequence.*generator"):
            cls().malloc_write_batch(flat, (o for o in [0, 1.5]), [1, 1])
        with pytest.raises(PoolError, match="buf must be a C-contiguous.*got str"):
            cls().malloc_write_batch("text", (o for o in [0]), [1])
