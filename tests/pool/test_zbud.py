"""zbud specifics: two buddies per page, chunk layout, best fit, no compaction."""

from __future__ import annotations

import os

from hwzswap.pool import PAGE_SIZE, PageAllocator, ZbudPool
from hwzswap.pool.zbud import CHUNK_SIZE, MAX_BUDDY_SIZE, NCHUNKS, ZHDR_SIZE_ALIGNED


def page_of(pool: ZbudPool, h: int) -> object:
    return pool._objs[h][3]


def offset_of(pool: ZbudPool, h: int) -> int:
    return pool._objs[h][1]


def test_constants() -> None:
    assert CHUNK_SIZE == 64 and ZHDR_SIZE_ALIGNED == 64 and NCHUNKS == 63
    assert MAX_BUDDY_SIZE == 3968


def test_first_and_last_buddy_share_a_page() -> None:
    alloc = PageAllocator()
    pool = ZbudPool(alloc)
    first = pool.malloc_write(b"F" * 1000)
    last = pool.malloc_write(b"L" * 2900)
    assert alloc.pages_in_use == 1 and page_of(pool, first) is page_of(pool, last)
    assert offset_of(pool, first) == ZHDR_SIZE_ALIGNED  # right after the header chunk
    assert offset_of(pool, last) == PAGE_SIZE - 46 * CHUNK_SIZE  # ends at the page's end
    third = pool.malloc(10)  # at most two per page, however small
    assert alloc.pages_in_use == 2 and page_of(pool, third) is not page_of(pool, first)
    assert pool.read(first) == b"F" * 1000 and pool.read(last) == b"L" * 2900
    st = pool.stats()
    assert (st["buddied_pages"], st["unbuddied_pages"], st["huge_pages"]) == (1, 1, 0)
    pool.check()


def test_buddies_must_fit_in_63_chunks() -> None:
    pool = ZbudPool()
    a = pool.malloc(32 * CHUNK_SIZE)
    b = pool.malloc(31 * CHUNK_SIZE + 1)  # 32 chunks: 64 > 63, needs its own page
    assert page_of(pool, a) is not page_of(pool, b)
    c = pool.malloc(31 * CHUNK_SIZE)  # 31 chunks fit beside a (32 + 31 = 63)
    assert page_of(pool, c) is page_of(pool, a)
    pool.check()


def test_best_fit_among_unbuddied_pages() -> None:
    pool = ZbudPool()
    p1 = pool.malloc(3000)  # 47 chunks: 16 free
    p2 = pool.malloc(1100)  # 18 chunks: does not fit p1, new page with 45 free
    assert page_of(pool, p2) is not page_of(pool, p1)
    small = pool.malloc(500)  # 8 chunks: the tightest page that fits is p1's
    assert page_of(pool, small) is page_of(pool, p1)
    mid = pool.malloc(2000)  # 32 chunks: only p2's page has room
    assert page_of(pool, mid) is page_of(pool, p2)
    assert pool.stats()["buddied_pages"] == 2
    pool.check()


def test_freeing_a_buddy_reopens_its_side() -> None:
    alloc = PageAllocator()
    pool = ZbudPool(alloc)
    first = pool.malloc_write(b"1" * 100)
    last = pool.malloc_write(b"2" * 100)
    pool.free(first)
    again = pool.malloc_write(b"3" * 3000)  # goes into the free first slot
    assert offset_of(pool, again) == ZHDR_SIZE_ALIGNED and alloc.pages_in_use == 1
    assert pool.read(last) == b"2" * 100 and pool.read(again) == b"3" * 3000
    pool.free(last)
    pool.free(again)
    assert alloc.pages_in_use == 0
    pool.check()


def test_objects_too_big_for_a_buddy_get_a_page() -> None:
    alloc = PageAllocator()
    pool = ZbudPool(alloc)
    data = os.urandom(PAGE_SIZE)
    h = pool.malloc_write(data)
    assert offset_of(pool, h) == 0 and pool.read(h) == data
    pool.malloc(MAX_BUDDY_SIZE + 1)
    pool.malloc(MAX_BUDDY_SIZE)  # still a buddy: 62 chunks
    st = pool.stats()
    assert st["huge_pages"] == 2 and st["unbuddied_pages"] == 1 and alloc.pages_in_use == 3
    pool.check()


def test_density_ceiling_and_no_compaction() -> None:
    pool = ZbudPool()
    handles = [pool.malloc_write(os.urandom(60)) for _ in range(100)]
    st = pool.stats()
    assert st["pages"] == 50  # two tiny objects per page: 2 * 60 / 4096 density at best
    assert st["density"] < 0.03
    for h in handles[::2]:
        pool.free(h)
    assert pool.compact() == 0 and pool.total_pages() == 50
    assert pool.stats()["pages_compacted"] == 0 and pool.stats()["classes"] == []
