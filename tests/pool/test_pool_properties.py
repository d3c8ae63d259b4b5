"""Property tests: random malloc/write/read/free/compact/map sequences against a model.

A dict ``handle -> bytes`` is the model; the pools are zbud, the compiled zsmalloc and its
Python reference model. After every step the pool's own invariant check runs,
every live object must read back exactly, the totals must match the model, and the pool's
pages must be the allocator's pages in use; at the end, freeing everything must hand every page
back to the allocator.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hwzswap.errors import InvalidHandleError, PoolAllocError, PoolError
from hwzswap.pool import PAGE_SIZE, PageAllocator, ZbudPool, ZsPool
from hwzswap.pool.zsmalloc import PyZsPool

# Sizes: anything, plus clusters in a few classes (so zspages fill up, several zspages of one
# class exist and compaction has work) and the edges of the class table.
CLUSTERED = st.one_of(
    st.integers(1000, 1016),  # class 1024: 4 per 1-page zspage
    st.integers(2000, 2040),  # class 2048: 2 per page
    st.integers(1560, 1570),  # a multi-page zspage class with straddling objects
    st.integers(490, 504),  # class 512: 8 per page
)
SIZES = st.one_of(
    st.integers(1, PAGE_SIZE),
    st.sampled_from([1, 24, 25, 40, 1000, 1008, 1009, 2048, 3257, 3625, 3968, 3969, 4096]),
    CLUSTERED,
)


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, bytes] = {}
        self.freed: list[int] = []
        self.maps: dict[int, list[memoryview]] = {}

    @initialize(kind=st.sampled_from(["zsmalloc-1", "zsmalloc-4", "zsmalloc-8", "pyzsmalloc-1",
                                      "pyzsmalloc-4", "pyzsmalloc-8", "zbud"]),
                limit=st.one_of(st.none(), st.integers(1, 40)))
    def setup(self, kind: str, limit: int | None) -> None:
        self.alloc = PageAllocator(limit_pages=limit, cache_pages=8)
        if kind == "zbud":
            self.pool: ZsPool | PyZsPool | ZbudPool = ZbudPool(self.alloc)
        else:
            cls = PyZsPool if kind.startswith("py") else ZsPool
            self.pool = cls(self.alloc, max_pages_per_zspage=int(kind.split("-")[1]))

    # -- helpers ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[int, int, int, int]:
        st_ = self.pool.stats()
        return (st_["objects"], st_["stored_bytes"], st_["pages"], self.alloc.pages_in_use)

    def pick(self, index: int) -> int:
        handles = sorted(self.model)
        return handles[index % len(handles)]

    # -- rules -----------------------------------------------------------------------------

    @rule(size=SIZES, seed=st.integers(0, 2**32), fused=st.booleans(),
          fault=st.sampled_from([None, None, None, "next", "rate"]))
    def store(self, size: int, seed: int, fused: bool, fault: str | None) -> None:
        data = payload(size, seed)
        if fault == "next":
            self.alloc.fail_next(1)
        elif fault == "rate":
            self.alloc.fail_rate(0.5, seed=seed)
        before = self.snapshot()
        try:
            if fused:
                h = self.pool.malloc_write(data)
            else:
                h = self.pool.malloc(size)
                self.pool.write(h, data)
        except PoolAllocError:
            # refused: only when a fault was armed or the limit is in the way, and nothing
            # changed
            assert fault is not None or self.alloc.limit_pages is not None
            assert self.snapshot() == before
        else:
            assert h not in self.model and h not in self.freed
            self.model[h] = data
        finally:
            self.alloc.clear_faults()

    @rule(size=CLUSTERED, count=st.integers(2, 12), seed=st.integers(0, 2**32))
    def store_batch(self, size: int, count: int, seed: int) -> None:
        for i in range(count):
            data = payload(size, seed + i)
            try:
                h = self.pool.malloc_write(data)
            except PoolAllocError:
                assert self.alloc.limit_pages is not None
                return
            self.model[h] = data

    @precondition(lambda self: len(self.model) > 2)
    @rule(start=st.integers(0, 3), stride=st.integers(2, 4))
    def free_spread(self, start: int, stride: int) -> None:
        """Free every stride-th object: leaves many part-used zspages behind."""
        for h in sorted(self.model)[start::stride]:
            if not self.maps.get(h):
                self.pool.free(h)
                del self.model[h]
                self.freed.append(h)

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 10**6), fused=st.booleans())
    def free(self, index: int, fused: bool) -> None:
        h = self.pick(index)
        if self.maps.get(h):
            with pytest.raises(PoolError, match="mapped"):
                self.pool.free(h)
            return
        if fused:
            assert self.pool.read_free(h) == self.model[h]
        else:
            self.pool.free(h)
        del self.model[h]
        self.freed.append(h)

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 10**6), cut=st.floats(0, 1), seed=st.integers(0, 2**32))
    def rewrite_prefix(self, index: int, cut: float, seed: int) -> None:
        h = self.pick(index)
        old = self.model[h]
        n = int(len(old) * cut)
        new = payload(n, seed)
        self.pool.write(h, new)
        self.model[h] = new + old[n:]

    @rule()
    def compact(self) -> None:
        before = self.pool.stats()
        pinned = any(self.maps.values())
        freed = self.pool.compact()
        after = self.pool.stats()
        assert after["pages"] == before["pages"] - freed
        assert after["pages_compacted"] == before["pages_compacted"] + freed
        if isinstance(self.pool, (ZsPool, PyZsPool)):
            if not pinned:  # nothing held in place: every freeable page is freed
                assert freed == before["freeable"] and after["freeable"] == 0
            else:
                assert freed <= before["freeable"]
        else:
            assert freed == 0

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 10**6), writable=st.booleans())
    def map(self, index: int, writable: bool) -> None:
        h = self.pick(index)
        view = self.pool.map(h, writable=writable)
        assert view.readonly is not writable
        assert view.tobytes() == self.model[h]
        self.maps.setdefault(h, []).append(view)

    @precondition(lambda self: any(self.maps.values()))
    @rule(index=st.integers(0, 10**6))
    def unmap(self, index: int) -> None:
        mapped = sorted(h for h, views in self.maps.items() if views)
        h = mapped[index % len(mapped)]
        view = self.maps[h].pop()
        assert view.tobytes() == self.model[h]  # still the object, even after compaction
        self.pool.unmap(h)
        with pytest.raises(ValueError):
            view.tobytes()

    @precondition(lambda self: self.freed)
    @rule(index=st.integers(0, 10**6))
    def stale_handle(self, index: int) -> None:
        h = self.freed[index % len(self.freed)]
        with pytest.raises(InvalidHandleError, match="already freed"):
            self.pool.free(h)
        with pytest.raises(InvalidHandleError):
            self.pool.read(h)

    @rule(size=st.one_of(st.integers(-5, 0), st.integers(PAGE_SIZE + 1, PAGE_SIZE + 100)))
    def bad_size(self, size: int) -> None:
        before = self.snapshot()
        with pytest.raises(PoolError):
            self.pool.malloc(size)
        assert self.snapshot() == before

    @rule(extra=st.one_of(st.none(), st.integers(0, 8)))
    def set_limit(self, extra: int | None) -> None:
        self.alloc.limit_pages = None if extra is None else self.alloc.pages_in_use + extra

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "pool"):
            return
        self.pool.check()
        objects, stored, pages, in_use = self.snapshot()
        assert objects == len(self.model) == len(self.pool)
        assert stored == sum(len(d) for d in self.model.values())
        assert pages == in_use == self.pool.total_pages()
        for h, data in self.model.items():
            assert self.pool.read(h) == data
            assert self.pool.obj_size(h) == len(data)

    def teardown(self) -> None:
        if not hasattr(self, "pool"):
            return
        for h, views in self.maps.items():
            for _ in views:
                self.pool.unmap(h)
        for h in list(self.model):
            self.pool.free(h)
        assert self.alloc.pages_in_use == 0 and self.pool.total_pages() == 0
        self.pool.check()
        self.pool.destroy()


PoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30)  # the rest: conftest's profile
TestPoolMachine = PoolMachine.TestCase
