"""zsmalloc specifics: the class layout, straddling objects, fullness groups, compaction, stats.

Every test runs on the compiled pool (``ZsPool``) and on its Python reference model
(``PyZsPool``)."""

from __future__ import annotations

import os

import pytest

from hwzswap.errors import InvalidParameterError
from hwzswap.pool import PAGE_SIZE, PageAllocator, ZsPool
from hwzswap.pool.zsmalloc import (
    FULLNESS_LABELS,
    PyZsPool,
    ZS_HANDLE_SIZE,
    ZS_SIZE_CLASSES,
    class_index,
    zs_layout,
)


@pytest.fixture(params=[ZsPool, PyZsPool], ids=["c", "py"])
def Zs(request: pytest.FixtureRequest) -> type:
    return request.param


def zspage_of(pool: ZsPool, handle: int) -> int:
    return pool._where(handle)[3]


# -- layout ------------------------------------------------------------------------------------


def test_class_constants() -> None:
    assert ZS_SIZE_CLASSES == 255
    assert class_index(32) == 0 and class_index(33) == 1 and class_index(48) == 1
    assert class_index(4096) == 254 and class_index(4104) == 254  # clamped


@pytest.mark.parametrize(
    "chain, distinct, largest_normal, huge_class_size",
    # distinct counts: the reference's re-computation with the current merge rule; watermarks and
    # zs_huge_class_size as in Documentation/mm/zsmalloc.rst (see shared/reference/kernel.md)
    [(4, 69, 3264, 3257), (8, 119, 3632, 3625), (16, 192, 3840, 3833)],
)
def test_layout_matches_the_kernel(chain: int, distinct: int, largest_normal: int,
                                   huge_class_size: int, Zs: type) -> None:
    layout = zs_layout(chain)
    assert len(layout.classes) == distinct
    assert max(c.size for c in layout.classes if not c.huge) == largest_normal
    assert layout.huge_class_size == huge_class_size
    assert Zs(max_pages_per_zspage=chain).huge_class_size == huge_class_size


@pytest.mark.parametrize("chain", [1, 4, 8, 16])
def test_layout_rules(chain: int) -> None:
    layout = zs_layout(chain)
    covered = []
    prev = None
    for spec in layout.classes:
        size = spec.size
        # pages per zspage: least tail waste over 1..chain, first minimum; 1 for powers of two
        wastes = [(p * PAGE_SIZE) % size for p in range(1, chain + 1)]
        expect = 1 if size & (size - 1) == 0 else wastes.index(min(wastes)) + 1
        assert spec.pages_per_zspage == expect
        assert spec.objs_per_zspage == spec.pages_per_zspage * PAGE_SIZE // size
        # a merged run keeps the largest size; neighbours always differ in layout
        assert size == min(32 + 16 * spec.index, PAGE_SIZE)
        if prev is not None:
            assert (prev.pages_per_zspage, prev.objs_per_zspage) != (
                spec.pages_per_zspage, spec.objs_per_zspage)
        covered.extend(range(spec.first_index, spec.index + 1))
        prev = spec
    assert covered == list(range(ZS_SIZE_CLASSES))
    assert sum(c.huge for c in layout.classes) == 1  # all one-per-page classes merge into one
    for payload in range(1, PAGE_SIZE + 1):
        spec = layout.classes[layout.class_of_size[payload]]
        assert payload <= spec.max_payload
        if not spec.huge:
            assert spec.first_index <= class_index(payload + ZS_HANDLE_SIZE) <= spec.index
        else:
            assert payload >= layout.huge_class_size


@pytest.mark.parametrize("bad", [0, 17, 8.0, "8"])
def test_bad_chain_size(bad: object, Zs: type) -> None:
    with pytest.raises(InvalidParameterError, match="ZSMALLOC_CHAIN_SIZE"):
        Zs(max_pages_per_zspage=bad)  # type: ignore[arg-type]


def row_for(pool: ZsPool, payload: int) -> dict:
    layout = pool.layout
    size = layout.classes[layout.class_of_size[payload]].size
    return next(r for r in pool.stats()["classes"] if r["size"] == size)


def test_class_choice_includes_the_handle_header(Zs: type) -> None:
    pool = Zs()
    pool.malloc(24)  # 24 + 8 = 32: the smallest class
    assert row_for(pool, 24)["size"] == 32 and row_for(pool, 24)["objects"] == 1
    pool.malloc(25)  # 33 bytes: next class up
    assert row_for(pool, 25)["size"] > 32
    h = pool.malloc(pool.huge_class_size)
    row = row_for(pool, pool.huge_class_size)
    assert row["huge"] and row["size"] == PAGE_SIZE and row["objs_per_zspage"] == 1
    pool.free(h)
    assert row_for(pool, pool.huge_class_size)["zspages"] == 0


# -- placement ---------------------------------------------------------------------------------


def test_objects_straddling_page_boundaries(Zs: type) -> None:
    alloc = PageAllocator()
    pool = Zs(alloc)
    spec = pool.layout.classes[pool.layout.class_of_size[40]]  # class 48: 3 pages, 256 objects
    assert spec.size == 48 and spec.pages_per_zspage == 3
    data = {}
    for i in range(spec.objs_per_zspage):
        d = os.urandom(40)
        data[pool.malloc_write(d)] = d
    assert alloc.pages_in_use == 3 and pool.stats()["zspages"] == 1
    straddling = []
    for h, d in data.items():
        _, off, size, _ = pool._where(h)
        if off // PAGE_SIZE != (off + size - 1) // PAGE_SIZE:
            straddling.append(h)
    assert straddling  # slots 85 and 170 cross into the next page
    for h in straddling:
        assert pool.read(h) == data[h]
        with pool.mapped(h, writable=True) as view:
            assert view.tobytes() == data[h]
            view[:] = bytes(reversed(data[h]))
        assert pool.read(h) == bytes(reversed(data[h]))


def test_malloc_prefers_the_fullest_zspage(Zs: type) -> None:
    pool = Zs()
    spec = pool.layout.classes[pool.layout.class_of_size[1000]]
    per = spec.objs_per_zspage
    assert (spec.size, per, spec.pages_per_zspage) == (1024, 4, 1)
    handles = [pool.malloc(1000) for _ in range(3 * per)]
    a, b, c = handles[0:per], handles[per : 2 * per], handles[2 * per :]
    assert len({zspage_of(pool, a[0]), zspage_of(pool, b[0]), zspage_of(pool, c[0])}) == 3
    pool.free(a[0])  # zspage A: 3 of 4 in use
    for h in b[:3]:  # zspage B: 1 of 4
        pool.free(h)
    row = row_for(pool, 1000)
    assert row["fullness"]["80%"] == 1 and row["fullness"]["30%"] == 1
    assert row["fullness"]["100%"] == 1 and row["freeable"] == 1
    first = pool.malloc(1000)
    assert zspage_of(pool, first) == zspage_of(pool, a[1])  # the fuller one
    second = pool.malloc(1000)
    assert zspage_of(pool, second) == zspage_of(pool, b[3])
    # a free that leaves a zspage fuller than the one being filled makes it the next target
    pool.free(c[0])  # C: 3 of 4, B (being filled): 2 of 4
    third = pool.malloc(1000)
    assert zspage_of(pool, third) == zspage_of(pool, c[1])
    pool.check()


def test_empty_zspage_goes_back_at_once(Zs: type) -> None:
    alloc = PageAllocator()
    pool = Zs(alloc)
    hs = [pool.malloc(1000) for _ in range(8)]
    assert alloc.pages_in_use == 2
    for h in hs[:4]:
        pool.free(h)
    assert alloc.pages_in_use == 1 and pool.total_pages() == 1
    for h in hs[4:]:
        pool.free(h)
    assert alloc.pages_in_use == 0
    pool.check()


def test_failed_zspage_allocation_keeps_existing_room_usable(Zs: type) -> None:
    alloc = PageAllocator(limit_pages=1)
    pool = Zs(alloc)
    hs = [pool.malloc(1000) for _ in range(4)]  # one full 1-page zspage
    pool.free(hs[0])
    with pytest.raises(Exception, match="class 32"):
        pool.malloc(10)  # a new class needs a new zspage
    assert pool.malloc(1000) > 0  # the hole in the existing zspage is still usable
    pool.check()


# -- compaction --------------------------------------------------------------------------------


def fill(pool: ZsPool, sizes: list[int]) -> dict[int, bytes]:
    out = {}
    for n in sizes:
        d = os.urandom(n)
        out[pool.malloc_write(d)] = d
    return out


def test_compaction_moves_objects_and_keeps_handles(Zs: type) -> None:
    alloc = PageAllocator()
    pool = Zs(alloc)
    live = fill(pool, [700] * 200 + [1500] * 100 + [60] * 500)
    handles = list(live)
    for h in handles[::3] + handles[1::3]:
        pool.free(h)
        del live[h]
    before = pool.stats()
    assert before["freeable"] > 0
    pages_before = alloc.pages_in_use
    freed = pool.compact()
    assert freed > 0 and freed == before["freeable"]
    assert alloc.pages_in_use == pages_before - freed == pool.total_pages()
    after = pool.stats()
    assert after["pages_compacted"] == freed and after["freeable"] == 0
    assert after["density"] > before["density"]
    assert after["stored_bytes"] == before["stored_bytes"]
    for h, d in live.items():
        assert pool.read(h) == d
    pool.check()
    assert pool.compact() == 0 and pool.stats()["pages_compacted"] == freed
    for h in live:
        pool.free(h)
    assert alloc.pages_in_use == 0


def test_compaction_can_leave_a_source_part_moved(Zs: type) -> None:
    pool = Zs()
    spec = pool.layout.classes[pool.layout.class_of_size[500]]
    assert (spec.size, spec.objs_per_zspage, spec.pages_per_zspage) == (512, 8, 1)
    live = fill(pool, [500] * 24)  # zspages X, Y, Z
    handles = list(live)
    keep = handles[0:2] + handles[8:10] + handles[16:21]  # X: 2, Y: 2, Z: 5 objects
    for h in handles:
        if h not in keep:
            pool.free(h)
            del live[h]
    assert pool.stats()["freeable"] == 1
    # X's two move into Z, then one of Y's fills Z: Y stays with one object
    assert pool.compact() == 1
    row = row_for(pool, 500)
    assert row["zspages"] == 2 and row["fullness"]["100%"] == 1 and row["fullness"]["20%"] == 1
    pool.check()  # the part-moved source's free list is whole again
    for h, d in live.items():
        assert pool.read(h) == d
    fill(pool, [500] * 7)  # Y's seven free slots take seven more without a new page
    assert pool.total_pages() == 2


def test_compaction_leaves_mapped_objects_in_place(Zs: type) -> None:
    pool = Zs()
    live = fill(pool, [1000] * 12)  # three 1-page zspages of four
    handles = list(live)
    for i in (0, 4, 8, 9, 10):  # A and B keep 3 objects, C keeps 1
        pool.free(handles[i])
        del live[handles[i]]
    pinned = handles[11]
    view = pool.map(pinned)
    where = pool._where(pinned)[:2]
    # C cannot be emptied, but it can take objects: A's three move in, A is freed
    assert pool.compact() == 1
    assert pool._where(pinned)[:2] == where and view.tobytes() == live[pinned]
    pool.unmap(pinned)
    for h, d in live.items():
        assert pool.read(h) == d
    pool.check()


def test_compaction_waits_for_unmap(Zs: type) -> None:
    pool = Zs()
    handles = list(fill(pool, [1000] * 8))  # two 1-page zspages of four
    a, b = handles[0], handles[4]
    data = {a: pool.read(a), b: pool.read(b)}
    for h in handles:
        if h not in (a, b):
            pool.free(h)
    assert row_for(pool, 1000)["zspages"] == 2
    pool.map(a)
    pool.map(b)
    assert pool.compact() == 0  # both zspages pinned
    pool.unmap(b)
    assert pool.compact() == 1  # b moves in with a
    assert zspage_of(pool, a) == zspage_of(pool, b)
    assert pool.read(a) == data[a] and pool.read(b) == data[b]
    pool.unmap(a)
    pool.check()


def test_nothing_to_compact(Zs: type) -> None:
    pool = Zs()
    assert pool.compact() == 0
    fill(pool, [4096] * 3 + [1024] * 8)  # huge and full zspages only
    assert pool.compact() == 0 and pool.stats()["freeable"] == 0


# -- stats -------------------------------------------------------------------------------------


def test_class_rows_are_consistent(Zs: type) -> None:
    pool = Zs()
    live = fill(pool, [n for n in range(1, PAGE_SIZE + 1, 13)])
    for h in list(live)[::2]:
        pool.free(h)
    st = pool.stats()
    rows = st["classes"]
    assert len(rows) == len(pool.layout.classes)
    assert sum(r["objects"] for r in rows) == st["objects"]
    assert sum(r["pages_used"] for r in rows) == st["pages"]
    assert sum(r["zspages"] for r in rows) == st["zspages"]
    assert sum(r["freeable"] for r in rows) == st["freeable"]
    for r in rows:
        assert list(r["fullness"]) == list(FULLNESS_LABELS)
        assert sum(r["fullness"].values()) == r["zspages"]
        assert r["fullness"]["0%"] == 0  # empty zspages are never kept
        assert r["obj_allocated"] == r["zspages"] * r["objs_per_zspage"] >= r["objects"]
        assert r["pages_used"] == r["zspages"] * r["pages_per_zspage"]
    assert st["max_pages_per_zspage"] == 8 and st["huge_class_size"] == 3625
