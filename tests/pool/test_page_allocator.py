"""PageAllocator: accounting, limit, reuse, fault injection, misuse."""

from __future__ import annotations

import pytest

from hwzswap.errors import InvalidParameterError, PoolAllocError, PoolError
from hwzswap.pool import PAGE_SIZE, PageAllocator


def test_runs_are_real_contiguous_memory_and_accounted() -> None:
    a = PageAllocator()
    run = a.alloc_pages(3)
    assert isinstance(run, memoryview) and not run.readonly
    assert len(run) == 3 * PAGE_SIZE and run.format == "B"
    run[PAGE_SIZE - 2 : PAGE_SIZE + 2] = b"\x01\x02\x03\x04"  # across a page boundary
    assert run[PAGE_SIZE - 2 : PAGE_SIZE + 2].tobytes() == b"\x01\x02\x03\x04"
    assert a.pages_in_use == 3 and a.bytes_in_use == 3 * PAGE_SIZE and a.runs_in_use == 1
    assert a.owns(run)
    assert a.free_pages(run) == 3
    assert a.pages_in_use == 0 and a.runs_in_use == 0 and not a.owns(run)
    assert a.peak_pages == 3


def test_limit_refuses_growth_and_takes_nothing() -> None:
    a = PageAllocator(limit_pages=4)
    first = a.alloc_pages(3)
    with pytest.raises(PoolAllocError, match="limit reached: 2 more page"):
        a.alloc_pages(2)
    assert a.pages_in_use == 3 and a.limit_hits == 1
    second = a.alloc_pages(1)
    assert a.pages_in_use == 4
    a.free_pages(first)
    a.free_pages(second)
    assert a.pages_in_use == 0


def test_limit_is_settable_at_run_time() -> None:
    a = PageAllocator()
    runs = [a.alloc_pages(2) for _ in range(3)]
    a.limit_pages = 5  # below what is in use: nothing is freed, growth is refused
    assert a.limit_pages == 5 and a.pages_in_use == 6 and a.peak_pages == 6
    with pytest.raises(PoolAllocError):
        a.alloc_pages(1)
    a.free_pages(runs.pop())
    a.free_pages(runs.pop())
    assert a.pages_in_use == 2
    a.alloc_pages(3)
    assert a.pages_in_use == 5
    a.limit_pages = None
    a.alloc_pages(100)
    assert a.pages_in_use == 105 and a.peak_pages == 105


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_bad_limit(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="limit"):
        PageAllocator(limit_pages=bad)  # type: ignore[arg-type]
    a = PageAllocator()
    with pytest.raises(InvalidParameterError):
        a.limit_pages = bad  # type: ignore[assignment]
    assert a.limit_pages is None


@pytest.mark.parametrize("bad", [0, -2, 1.0, None])
def test_bad_page_count(bad: object) -> None:
    a = PageAllocator()
    with pytest.raises(InvalidParameterError, match="page count"):
        a.alloc_pages(bad)  # type: ignore[arg-type]
    assert a.pages_in_use == 0


def test_double_and_foreign_free_are_refused_without_changing_accounting() -> None:
    a, b = PageAllocator(), PageAllocator()
    run = a.alloc_pages(2)
    with pytest.raises(PoolError, match="not allocated by this page allocator"):
        b.free_pages(run)
    with pytest.raises(PoolError):
        a.free_pages(memoryview(bytearray(2 * PAGE_SIZE)))
    a.free_pages(run)
    with pytest.raises(PoolError, match="already freed"):
        a.free_pages(run)
    assert a.pages_in_use == 0 and b.pages_in_use == 0


def test_freed_runs_are_reused_but_not_counted() -> None:
    a = PageAllocator(cache_pages=4)
    run = a.alloc_pages(2)
    a.free_pages(run)
    assert a.cached_pages == 2 and a.pages_in_use == 0
    again = a.alloc_pages(2)
    assert again is run and a.cached_pages == 0
    other = a.alloc_pages(1)
    a.free_pages(again)
    a.free_pages(other)
    assert a.cached_pages == 3
    big = a.alloc_pages(5)
    a.free_pages(big)  # would exceed the cache bound: dropped
    assert a.cached_pages == 3
    assert a.drop_cache() == 3 and a.cached_pages == 0


def test_cache_can_be_disabled() -> None:
    a = PageAllocator(cache_pages=0)
    run = a.alloc_pages(1)
    a.free_pages(run)
    assert a.cached_pages == 0
    assert a.alloc_pages(1) is not run
    with pytest.raises(InvalidParameterError):
        PageAllocator(cache_pages=-1)


def test_fail_next_counts_calls_and_takes_nothing() -> None:
    a = PageAllocator()
    a.fail_next(2)
    for _ in range(2):
        with pytest.raises(PoolAllocError, match="injected"):
            a.alloc_pages(1)
    assert a.pages_in_use == 0 and a.injected_failures == 2
    a.alloc_pages(1)
    assert a.pages_in_use == 1


def test_fail_rate_is_reproducible_and_can_be_cleared() -> None:
    def pattern(seed: int) -> list[bool]:
        a = PageAllocator()
        a.fail_rate(0.5, seed=seed)
        out = []
        for _ in range(64):
            try:
                a.alloc_pages(1)
                out.append(True)
            except PoolAllocError:
                out.append(False)
        assert a.pages_in_use == sum(out)
        return out

    first = pattern(7)
    assert first == pattern(7)
    assert 10 < first.count(False) < 54
    a = PageAllocator()
    a.fail_rate(1.0)
    a.fail_next(3)
    a.clear_faults()
    a.alloc_pages(1)
    with pytest.raises(InvalidParameterError):
        a.fail_rate(1.5)
    with pytest.raises(InvalidParameterError):
        a.fail_next(-1)


def test_fault_and_limit_both_armed() -> None:
    a = PageAllocator(limit_pages=1)
    a.fail_next(1)
    with pytest.raises(PoolAllocError, match="injected"):
        a.alloc_pages(1)
    a.alloc_pages(1)
    with pytest.raises(PoolAllocError, match="limit"):
        a.alloc_pages(1)
    assert "pages_in_use=1" in repr(a)
