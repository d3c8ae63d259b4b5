"""A large folio is stored all or nothing in every batched engine mode, as today's
``zswap_store(folio)`` (6.13+, mTHP) stores one: when any page of it is rejected (compression
failed or too poor, no pool room, the limit), none of it stays in zswap and every page goes to
the swap device. ``page`` mode models v9, which had no large folios, and stays per page."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, create_pool

from fsutil import random_page, same_filled, sized_page

BATCHED = ["folio", "reclaim", "async"]


def _rejects(st_: dict) -> int:
    return sum(v for k, v in st_.items() if k.startswith("reject_"))


def _arr(pages: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(pages), dtype=np.uint8).reshape(len(pages), 4096)


def _system(tmp_path, mode: str, **zswap):
    return hwzswap.open_zswap({"zswap": {"compressor": "lz4", "batching": mode, **zswap},
                               "swap": {"nr_pages": 4096, "path": str(tmp_path / "swap.img")}})


def _identities(st_: dict) -> None:
    """The README's counter identities once nothing is in flight (no frees, no disabling)."""
    assert st_["stores"] == st_["zswpout"] + _rejects(st_) + st_["staged_dropped"], st_
    assert st_["pswpout"] == (st_["written_back_pages"] + _rejects(st_) + st_["writeback_raced"]
                              - st_["async_write_skipped"]), st_


@pytest.mark.parametrize("mode", BATCHED)
@pytest.mark.parametrize("bad", ["incompressible", "over_ratio"])
def test_a_folio_with_one_rejected_page_goes_to_the_swap_device_whole(tmp_path, mode, bad):
    s = _system(tmp_path, mode)
    try:
        pages = [sized_page(600, seed) for seed in range(16)]
        pages[3] = bytes(4096)  # same-filled pages of the folio go with it
        pages[9] = same_filled()
        pages[5] = random_page(5) if bad == "incompressible" else sized_page(3282, 0)  # 3318 B
        res = s.swap_out_batch(0, range(16), _arr(pages), [16])
        s.drain()
        st_ = s.stats()
        assert res == [mode == "async"] * 16  # async: staged (True), refused when it landed
        assert st_["stored_pages"] == st_["zswpout"] == st_["same_filled_pages"] == 0
        assert st_["reject_compress_poor"] == 1 and st_["reject_folio"] == 15
        assert st_["pool_pages"] == 0 and st_["pswpout"] == 16
        _identities(st_)
        assert s.swap_in_batch(0, range(16)) == pages
        s.zswap.check()
    finally:
        s.close()


@pytest.mark.parametrize("mode", BATCHED)
def test_only_the_folio_with_the_rejected_page_is_refused(tmp_path, mode):
    s = _system(tmp_path, mode)
    try:
        pages = [sized_page(500 + 40 * i, i) for i in range(24)]
        pages[1] = pages[17] = bytes(4096)
        pages[12] = random_page(12)  # in the second folio (8..15)
        folios = [1, 1, 6, 8, 4, 4]  # 0 | 1 | 2-7 | 8-15 | 16-19 | 20-23
        res = s.swap_out_batch(0, range(24), _arr(pages), folios)
        s.drain()
        st_ = s.stats()
        refused = set(range(8, 16))
        if mode != "async":
            assert res == [i not in refused for i in range(24)]
        assert st_["stored_pages"] == st_["zswpout"] == 16 and st_["same_filled_pages"] == 2
        assert st_["reject_compress_poor"] == 1 and st_["reject_folio"] == 7
        assert st_["pswpout"] == 8
        _identities(st_)
        assert s.swap_in_batch(0, range(24)) == pages
        s.zswap.check()
    finally:
        s.close()


def test_page_mode_stays_per_page(tmp_path):
    """v9 (2013) had no large folios: each page of a pass is its own store."""
    s = _system(tmp_path, "page")
    try:
        pages = [sized_page(600, seed) for seed in range(16)]
        pages[5] = random_page(5)
        res = s.swap_out_batch(0, range(16), _arr(pages), [16])
        st_ = s.stats()
        assert res == [i != 5 for i in range(16)]
        assert st_["zswpout"] == 15 and st_["reject_folio"] == 0 and st_["pswpout"] == 1
        assert s.swap_in_batch(0, range(16)) == pages
    finally:
        s.close()


@pytest.mark.parametrize("mode", ["folio", "reclaim"])
def test_a_folio_the_pool_has_no_room_for_is_refused_whole_its_objects_freed(mode):
    """The batch write stops mid-folio and the retry after reclaim fails too (the allocator's
    limit, nothing to write back): the objects already written for that folio are freed, the
    folio is refused whole, and the folios before it stay stored."""
    # zbud: two ~1.5 KiB objects a page, one page at a time; 3 pages hold one folio and half
    # of the next, whose write stops after its second object
    c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zbud", PageAllocator(limit_pages=3)),
                   ZswapPolicy(batching=mode))
    try:
        c.init(0, 256)
        pages = [sized_page(1500, seed) for seed in range(16)]
        res = c.store_batch(0, range(16), _arr(pages), [4, 4, 4, 4])
        st_ = c.stats()
        assert res == [True] * 4 + [False] * 12
        assert st_["stored_pages"] == st_["zswpout"] == len(c.pool) == 4
        assert st_["pool_pages"] == 2  # the refused folio's two objects were freed
        assert st_["reject_reclaim_fail"] == 3 and st_["reject_folio"] == 9
        assert st_["stores"] == st_["zswpout"] + _rejects(st_)
        c.check()
        for off, page in enumerate(pages):
            assert c.load(0, off) == (page if res[off] else None)
    finally:
        c.close()


# -- the property ---------------------------------------------------------------------------

_KINDS = st.sampled_from(["small", "mid", "large", "zero", "word", "random", "poor"])


def _page(kind: str, seed: int) -> bytes:
    if kind == "zero":
        return bytes(4096)
    if kind == "word":
        return same_filled(seed.to_bytes(8, "little"))
    if kind == "random":
        return os.urandom(4096)
    if kind == "poor":
        return sized_page(3600, seed)  # compresses, but past the 80 % ratio
    return sized_page({"small": 300, "mid": 1200, "large": 2600}[kind], seed)


_PASS = st.lists(st.lists(_KINDS, min_size=1, max_size=16), min_size=1, max_size=6)


@pytest.mark.parametrize("mode", BATCHED)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(passes=st.lists(_PASS, min_size=1, max_size=5), limit=st.integers(1, 3))
def test_every_folio_is_wholly_in_zswap_or_wholly_on_the_swap_device(tmp_path_factory, mode,
                                                                        passes, limit):
    """Random reclaim passes of folios (1..16 pages; some pages same-filled, incompressible or
    too poor) against a small pool limit: every page written to the swap device other than
    by writeback belongs to a folio refused whole; every page comes back byte-exact; the
    counters add up."""
    tmp = tmp_path_factory.mktemp("folios")
    s = hwzswap.open_zswap({"zswap": {"compressor": "lz4", "batching": mode,
                                      "max_pool_percent": limit, "writeback_batch": 4},
                            "memory": {"total_ram_mb": 4},
                            "swap": {"nr_pages": 2048, "path": str(tmp / "swap.img")}})
    zs = s.zswap
    refused: set[int] = set()

    def note_write(op: str, offset: int) -> None:
        # a page written while its slot is not in the index was refused (writeback writes
        # entries still indexed)
        if op == "write":
            with zs._lock:
                if zs._trees[0].get(offset) is None:
                    refused.add(offset)

    s.devices[0].io_hook = note_write
    try:
        expect: dict[int, bytes] = {}
        off, seed = 0, 0
        for folios in passes:
            pages, sizes, offs = [], [], []
            for kinds in folios:
                for kind in kinds:
                    pages.append(_page(kind, seed))
                    seed += 1
                sizes.append(len(kinds))
            offs = list(range(off, off + len(pages)))
            off += len(pages)
            res = s.swap_out_batch(0, offs, _arr(pages), sizes)
            s.drain()
            at = 0
            for size in sizes:
                folio = offs[at:at + size]
                got = {o in refused for o in folio}
                assert len(got) == 1, (mode, size, [o in refused for o in folio])
                if size > 1:
                    event(f"{mode}: a large folio {'refused' if True in got else 'stored'}")
                if mode != "async":
                    assert len({res[k] for k in range(at, at + size)}) == 1
                for k in range(at, at + size):
                    if not res[k]:
                        assert offs[k] in refused
                at += size
            expect.update(zip(offs, pages))
            st_ = s.stats()
            _identities(st_)
            for key in ("reject_folio", "reject_pool_limit", "reject_reclaim_fail",
                        "written_back_pages"):
                if st_[key]:
                    event(f"{mode}: {key}")
            zs.check()
        s.devices[0].io_hook = None
        for o, page in expect.items():
            assert s.swap_in(0, o) == page, o
    finally:
        s.devices[0].io_hook = None
        s.close()


def test_held_back_same_filled_pages_are_numbered_by_their_folio_after_a_refused_start():
    """The limit refused the first folio (``start``), the second is wholly same-filled (stored
    at once), the third and fourth mix pages to compress with same-filled ones: those are held
    back under their folio's index among the folios left to compress, numbered after the
    pages to compress."""
    c = ZswapCache(hwzswap.get_backend("lz4"), create_pool("zsmalloc", PageAllocator()),
                   ZswapPolicy(batching="reclaim"))
    try:
        c.init(0, 64)
        zero, word, comp = bytes(4096), same_filled(), sized_page(700, 1)
        pages = [comp, zero, zero, zero, zero, comp, zero, zero, comp, word]
        groups = [2, 3, 2, 3]  # 0-1 | 2-4 | 5-6 | 7-9
        results = [False] * 10
        adm = c._same_filled_split(c._trees[0], list(range(10)), _arr(pages), results, groups,
                                   start=2)
        assert adm.idx == [5, 8]
        assert adm.words == [(6, zero[:8]), (7, zero[:8]), (9, word[:8])]
        assert adm.folio_words == {0: [(2, zero[:8])], 1: [(3, zero[:8]), (4, word[:8])]}
        assert results == [False, False, True, True, True] + [False] * 5
        assert c.stats()["same_filled_pages"] == 3
    finally:
        c.close()
