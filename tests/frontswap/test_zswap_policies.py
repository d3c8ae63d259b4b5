"""The frontswap operations, every store policy and every counter, on real backends and pools."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import CorruptDataError, InvalidInputError, SwapDeviceError
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, ZsPool, create_pool

from fsutil import compressible_pages, lz4_len, random_page, same_filled, sized_page

API_KEYS = {
    "stored_pages", "pool_total_size", "pool_pages", "pool_peak_pages", "compressed_bytes",
    "compressed_bytes_at_peak", "pool_limit_hit", "reject_compress_poor", "reject_compress_fail",
    "reject_alloc_fail", "reject_reclaim_fail", "written_back_pages", "writeback_fail",
    "duplicate_entry", "same_filled_pages", "outstanding_writebacks", "decompress_fail",
    "loads_hit", "loads_miss", "stores", "pswpin", "pswpout", "swap_model_us", "swap_io_us",
}


def cache(policy=None, backend="lz4", pool="zsmalloc", limit=None, **params) -> ZswapCache:
    """A cache with no swap device behind it (writeback impossible), type 0 initialised."""
    c = ZswapCache(hwzswap.get_backend(backend, **params),
                   create_pool(pool, PageAllocator(limit_pages=limit)),
                   policy or ZswapPolicy())
    c.init(0, 4096)
    return c


@pytest.mark.parametrize("backend", ["lzo", "lz4", "lz4hc", "zstd", "deflate", "842"])
@pytest.mark.parametrize("pool", ["zsmalloc", "zbud"])
def test_store_load_round_trip(backend, pool):
    c = cache(backend=backend, pool=pool)
    pages = compressible_pages(24)
    for off, page in enumerate(pages):
        assert c.store(0, off, page) is True
    for off, page in enumerate(pages):
        assert c.load(0, off) == page
        assert c.load(0, off) == page  # v9: a load keeps the entry
    s = c.stats()
    assert s["stored_pages"] == len(pages) == s["zswpout"] == s["stores"]
    assert s["loads_hit"] == 2 * len(pages) and s["loads_miss"] == 0
    assert s["compressed_bytes"] == c.pool.stats()["stored_bytes"] > 0
    assert s["pool_pages"] == c.pool.total_pages()
    assert s["pool_total_size"] == 4096 * s["pool_pages"]
    for off in range(len(pages)):
        c.invalidate_page(0, off)
    s = c.stats()
    assert s["stored_pages"] == 0 and s["pool_pages"] == 0 and s["compressed_bytes"] == 0
    assert s["invalidates"] == len(pages)
    assert s["pool_peak_pages"] > 0
    assert 0 < s["compressed_bytes_at_peak"] <= 4096 * s["pool_peak_pages"]
    c.close()


def test_any_buffer_is_a_page_and_wrong_sizes_are_refused():
    c = cache()
    page = compressible_pages(1)[0]
    assert c.store(0, 1, np.frombuffer(page, np.uint8))
    assert c.store(0, 2, bytearray(page))
    assert c.store(0, 3, memoryview(page))
    assert c.load(0, 1) == c.load(0, 2) == c.load(0, 3) == page
    with pytest.raises(InvalidInputError, match="4096 bytes"):
        c.store(0, 4, page[:100])
    with pytest.raises(SwapDeviceError, match=r"offset 4096 is outside swap type 0 \(slots 0\.\.4095\)"):
        c.store(0, 4096, page)
    with pytest.raises(SwapDeviceError, match="swap type 3 is not on"):
        c.load(3, 0)
    with pytest.raises(SwapDeviceError, match="already initialised"):
        c.init(0, 10)
    for bad in (0, 2**30 + 1, 2**64, 10.0):  # a type's size is bounded like swap.nr_pages
        with pytest.raises(SwapDeviceError, match=r"nr_pages must be an int 1\.\.1073741824"):
            c.init(1, bad)
    assert c.stats()["stores"] == 3


def test_load_miss_and_invalidate_of_nothing():
    c = cache()
    assert c.load(0, 9) is None
    c.invalidate_page(0, 9)
    assert c.stats()["loads_miss"] == 1 and c.stats()["invalidates"] == 0


def test_same_filled_pages_take_no_pool_space_and_no_compression():
    c = cache()
    zero, pattern = bytes(4096), same_filled()
    assert c.store(0, 0, zero) and c.store(0, 1, pattern)
    s = c.stats()
    assert s["same_filled_pages"] == 2 and s["stored_pages"] == 2
    assert s["pool_pages"] == 0 and s["compressed_bytes"] == 0 and len(c.pool) == 0
    assert c.load(0, 0) == zero and c.load(0, 1) == pattern
    # almost same-filled: the last word differs -> compressed normally
    near = pattern[:-1] + b"\x00"
    assert c.store(0, 2, near) and len(c.pool) == 1 and c.load(0, 2) == near
    c.invalidate_page(0, 1)
    assert c.stats()["same_filled_pages"] == 1
    off = cache(ZswapPolicy(same_filled_pages=False))
    assert off.store(0, 0, zero) and off.store(0, 1, pattern)
    s = off.stats()
    assert s["same_filled_pages"] == 0 and len(off.pool) == 2 and s["compressed_bytes"] > 0
    assert off.load(0, 0) == zero and off.load(0, 1) == pattern


@pytest.mark.parametrize("ratio", [50, 80, 100])
def test_max_compression_ratio_rejects_poor_pages(ratio):
    c = cache(ZswapPolicy(max_compression_ratio=ratio))
    limit = ((ratio + 1) * 4096 - 1) // 100  # v9: reject when dlen * 100 / 4096 > ratio (C ints)
    sizes = [500, 1900, 2100, 3000, 3400, 3900]
    expect = {}
    for off, k in enumerate(sizes):
        page = sized_page(k, seed=off)
        dlen = lz4_len(page)
        expect[off] = dlen < 4096 and dlen <= limit
        assert c.store(0, off, page) is expect[off], (k, dlen, limit)
        assert (c.load(0, off) == page) if expect[off] else (c.load(0, off) is None)
    assert c.store(0, 99, random_page()) is False  # does not compress at all
    s = c.stats()
    assert s["reject_compress_poor"] == sum(not v for v in expect.values()) + 1
    assert s["stored_pages"] == sum(expect.values())


def test_disabled_rejects_every_store_but_keeps_what_is_stored():
    c = cache()
    pages = compressible_pages(3)
    assert c.store(0, 0, pages[0]) and c.store(0, 1, pages[1])
    c.enabled = False
    assert c.store(0, 2, pages[2]) is False
    assert c.load(0, 0) == pages[0]
    # a rejected store of an offset that has an entry drops that entry (check_old)
    assert c.store(0, 1, pages[2]) is False
    assert c.load(0, 1) is None
    s = c.stats()
    assert s["stores"] == 4 and s["zswpout"] == 2 and s["stored_pages"] == 1
    c.enabled = True
    assert c.store(0, 2, pages[2])


def test_duplicate_store_replaces_the_entry():
    c = cache()
    a, b = compressible_pages(2)
    assert c.store(0, 7, a) and c.store(0, 7, b)
    assert c.load(0, 7) == b
    s = c.stats()
    assert s["duplicate_entry"] == 1 and s["stored_pages"] == 1 and len(c.pool) == 1
    assert c.store(0, 7, bytes(4096))  # same-filled replacing a pool entry
    assert len(c.pool) == 0 and c.stats()["duplicate_entry"] == 2
    assert c.store(0, 7, a) and c.stats()["same_filled_pages"] == 0


def test_a_rejected_store_never_lets_the_older_page_come_back():
    c = cache()
    old = compressible_pages(1)[0]
    assert c.store(0, 5, old)
    assert c.store(0, 5, random_page(5)) is False  # reject_compress_poor
    assert c.load(0, 5) is None and len(c.pool) == 0
    assert c.store(0, 6, bytes(4096))
    assert c.store(0, 6, random_page(6)) is False
    assert c.load(0, 6) is None and c.stats()["same_filled_pages"] == 0


def test_a_failing_compressor_rejects_cleanly():
    c = cache(backend="842-nx", fault_rate=1.0, fault_ops="compress")
    pages = compressible_pages(4)
    assert c.store(0, 0, bytes(4096))  # same-filled never reaches the compressor
    for off, page in enumerate(pages, 1):
        assert c.store(0, off, page) is False
    s = c.stats()
    assert s["reject_compress_fail"] == 4 and s["stored_pages"] == 1 and len(c.pool) == 0
    # half the requests fail: the others are stored and read back right
    c2 = cache(backend="842-nx", fault_rate=0.5, fault_ops="compress", fault_seed=1)
    pages = compressible_pages(40)
    stored = {off: page for off, page in enumerate(pages) if c2.store(0, off, page)}
    assert 0 < len(stored) < 40
    assert c2.stats()["reject_compress_fail"] == 40 - len(stored)
    assert all(c2.load(0, off) == page for off, page in stored.items())


def test_pool_limit_and_accept_threshold_hysteresis():
    # No swap device: writeback is impossible, so only invalidation shrinks the pool.
    c = cache(ZswapPolicy(max_pool_pages=80, accept_threshold_percent=50))
    pages = compressible_pages(700)
    off = 0
    while c.store(0, off, pages[off]):
        off += 1
    s = c.stats()
    assert s["pool_pages"] >= 80  # the store that found it full was refused
    assert s["pool_limit_hit"] == 1 and s["reject_reclaim_fail"] == 1
    refused = off
    # Free the oldest entries until the pool is under the limit, but still above 50 % of it.
    victim = 0
    while c.pool.total_pages() >= 80:
        c.invalidate_page(0, victim)
        victim += 1
    assert 40 < c.pool.total_pages() < 80
    assert c.store(0, refused, pages[refused]) is False  # the hysteresis holds
    s = c.stats()
    assert s["pool_limit_hit"] == 1  # under the limit: not a new hit
    assert s["reject_reclaim_fail"] == 2
    while c.pool.total_pages() > 40:
        c.invalidate_page(0, victim)
        victim += 1
    assert c.store(0, refused, pages[refused]) is True  # at/under the threshold: accepted again
    assert c.load(0, refused) == pages[refused]


def test_pool_limit_hit_counts_stores_that_find_the_pool_full():
    c = cache(ZswapPolicy(max_pool_pages=10, accept_threshold_percent=100), limit=None)
    pages = compressible_pages(200)
    results = [c.store(0, off, page) for off, page in enumerate(pages)]
    s = c.stats()
    assert s["pool_pages"] >= 10  # no allocator cap here: the check happens before each store
    assert s["pool_limit_hit"] == results.count(False) > 0
    assert s["reject_reclaim_fail"] == results.count(False)  # nothing could be written back
    # accept_threshold_percent=100: the first store that finds the pool under the limit goes in
    for off in range(len(pages)):
        c.invalidate_page(0, off)
        if c.pool.total_pages() < 10:
            break
    assert c.store(0, 1000, pages[0]) is True


@pytest.mark.parametrize("pool", ["zbud", "zsmalloc"])
def test_at_the_limit_no_store_goes_in_even_with_a_100_percent_threshold(pool):
    """As the kernel's zswap_check_limits: a store that finds the pool at its limit is refused
    whatever the threshold. At 100 % the threshold equals the limit, and the re-check after a
    reclaim that freed nothing let a store in with the pool exactly at the limit (zbud grows
    a page at a time, so it gets there exactly)."""
    c = cache(ZswapPolicy(max_pool_pages=10, accept_threshold_percent=100), pool=pool)
    refused = 0
    for off, page in enumerate(compressible_pages(300)):
        at_limit = c.pool.total_pages() >= 10
        stored = c.store(0, off, page)
        assert not (at_limit and stored), f"store {off} went in with the pool at its limit"
        refused += not stored
    assert refused > 0 and c.pool.total_pages() <= 10 + 8  # at most one zspage past it


def test_background_writeback_with_a_100_percent_threshold_lets_stores_resume(make_system):
    """At 100 % the threshold equalled the limit: a pool sitting exactly at its limit refused
    every store, and the background thread (which shrinks only a pool over the threshold)
    never wrote back: 1,423 of 1,500 stores refused, the last 200 all. The threshold is now
    always under the limit, so the thread writes back a pass there, as the kernel's
    shrink_worker (a do-while) does."""
    s = make_system(zswap={"background_writeback": True, "max_pool_percent": 1,
                           "accept_threshold_percent": 100},
                    memory={"total_ram_mb": 16}, swap={"nr_pages": 2048})
    assert s.config.accept_pool_pages == s.config.max_pool_pages - 1
    pages = compressible_pages(1500)
    stored = []
    for off, page in enumerate(pages):
        stored.append(s.swap_out(0, off, page))
        if off % 50 == 49:
            time.sleep(0.01)  # the thread's turn, whatever the scheduler
    assert any(stored[-200:]), "stores never resumed after the pool reached its limit"
    assert s.stats()["written_back_pages"] > 0
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page


def test_a_dead_background_thread_neither_stops_stores_nor_close(make_system, monkeypatch):
    """Stores that find the pool at its limit reclaim themselves once the background thread
    is dead; its error is raised by close, after the rest of close is done (the compressor
    closed, every entry dropped, the pool destroyed: close used to stop there)."""
    s = make_system(zswap={"background_writeback": True, "max_pool_percent": 1},
                    memory={"total_ram_mb": 4})
    z = s.zswap

    def broken(*args, **kwargs):
        raise RuntimeError("the shrinker broke")

    monkeypatch.setattr(z, "shrink", broken)
    pages = compressible_pages(400)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)  # over the accept threshold: the thread is woken, and dies
    thread, deadline = z._background, time.monotonic() + 10
    while thread.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not thread.alive
    # With the thread dead, the stores that find the pool at its limit reclaim themselves
    # (they were all refused, waking a dead thread).
    written = s.stats()["written_back_pages"]
    assert [s.swap_out(0, 400 + k, p) for k, p in enumerate(pages[:40])].count(True) > 0
    assert s.stats()["written_back_pages"] > written
    with pytest.raises(RuntimeError, match="the shrinker broke"):
        z.close()
    assert z.pool.allocator.pages_in_use == 0  # destroyed
    z.close()  # idempotent, and quiet now


def test_a_batch_write_that_stops_reclaims_once_for_the_items_after_it(make_system):
    """A reclaim pass whose batch write the allocator stops: the first item left reclaims
    (one writeback batch) and retries; the later ones try the pool first, since that reclaim
    may have made room (each used to write back a batch of its own: 352 entries written
    back to store 26 pages)."""
    s = make_system(zswap={"writeback_batch": 4, "batching": "reclaim"})
    pages = compressible_pages(8)
    assert s.swap_out_batch(0, range(8), np.frombuffer(b"".join(pages), np.uint8)
                            .reshape(8, -1)) == [True] * 8
    fresh = [sized_page(k, seed=80 + k) for k in (3100, 2500, 2000, 1500)]
    s.pool.allocator.fail_next(1)  # the batch write stops at its first new zspage
    batch = np.frombuffer(b"".join(fresh), np.uint8).reshape(4, -1)
    assert s.swap_out_batch(0, range(8, 12), batch) == [True] * 4
    st_ = s.stats()
    assert st_["written_back_pages"] == 4 and st_["reject_alloc_fail"] == 0, st_
    assert [s.swap_in(0, o) for o in range(12)] == pages + fresh


def test_allocation_failure_is_reject_alloc_fail_or_saved_by_writeback(make_system):
    s = make_system(zswap={"writeback_batch": 4})
    z = s.zswap
    pages = compressible_pages(12)
    for off in range(8):
        assert s.swap_out(0, off, pages[off])
    alloc = s.pool.allocator
    # A page in a size class with no zspage yet needs a new zspage from the allocator.
    fresh = sized_page(3100, seed=77)
    alloc.fail_next(1)  # v9: malloc fails -> write back a batch -> retry succeeds
    assert s.swap_out(0, 8, fresh) is True
    st = s.stats()
    assert st["written_back_pages"] == 4 and st["reject_alloc_fail"] == 0
    alloc.fail_next(2)  # the retry fails too
    fresh2 = sized_page(2500, seed=78)
    assert s.swap_out(0, 9, fresh2) is False
    st = s.stats()
    assert st["reject_alloc_fail"] == 1 and st["written_back_pages"] == 8
    assert s.swap_in(0, 9) == fresh2 and s.swap_in(0, 8) == fresh  # device, then zswap
    for off in range(8):
        assert s.swap_in(0, off) == pages[off]
    # No swap device behind the cache: nothing can be written back -> reject_reclaim_fail
    c = cache()
    c.pool.allocator.fail_next(2)
    assert c.store(0, 0, fresh) is False
    assert c.stats()["reject_reclaim_fail"] == 1 and c.stats()["reject_alloc_fail"] == 0
    assert z.stats()["outstanding_writebacks"] == 0


def test_exclusive_loads_free_the_entry():
    c = cache(ZswapPolicy(exclusive_loads=True))
    page = compressible_pages(1)[0]
    assert c.store(0, 1, page) and c.store(0, 2, bytes(4096))
    assert c.load(0, 1) == page and c.load(0, 2) == bytes(4096)
    assert c.load(0, 1) is None and c.load(0, 2) is None
    s = c.stats()
    assert s["stored_pages"] == 0 and len(c.pool) == 0 and s["same_filled_pages"] == 0
    assert s["loads_hit"] == 2 and s["loads_miss"] == 2


def test_invalidate_area_drops_everything_of_one_type():
    c = cache()
    c.init(1, 64)
    pages = compressible_pages(10)
    for off, page in enumerate(pages):
        assert c.store(off % 2, off, page)
    c.invalidate_area(0)
    assert c.stats()["stored_pages"] == 5
    assert all(c.load(1, off) == pages[off] for off in range(1, 10, 2))
    with pytest.raises(SwapDeviceError, match="swap type 0 is not on"):
        c.load(0, 0)
    c.invalidate_area(0)  # twice: no-op
    c.init(0, 16)  # swapon again
    assert c.load(0, 0) is None
    c.close()
    with pytest.raises(SwapDeviceError, match="closed"):
        c.store(1, 1, pages[1])
    c.close()  # idempotent


def test_a_corrupt_pool_object_raises_instead_of_returning_wrong_bytes():
    c = cache()
    page = compressible_pages(1)[0]
    assert c.store(0, 3, page)
    (handle,) = c.pool.handles()
    size = c.pool.obj_size(handle)
    c.pool.write(handle, b"\xff" * size)  # the pool memory is overwritten
    with pytest.raises(CorruptDataError, match="swap type 0 offset 3.*does not decompress"):
        c.load(0, 3)
    s = c.stats()
    assert s["decompress_fail"] == 1 and s["loads_hit"] == 0 and s["stored_pages"] == 1
    c.pool.write(handle, bytes(size))  # all zeros is another kind of garbage
    with pytest.raises(CorruptDataError):
        c.load(0, 3)
    assert c.stats()["decompress_fail"] == 2


class _CountingLz4(Lz4Backend):
    """lz4 that counts its batch and single calls (to see what store_batch asks of it)."""

    name = "lz4"

    def __init__(self, **params):
        super().__init__(**params)
        self.batch_calls = 0
        self.single_calls = 0

    def compress(self, page):
        self.single_calls += 1
        return super().compress(page)

    def compress_batch(self, pages):
        self.batch_calls += 1
        out = [Lz4Backend.compress(self, p) for p in pages]
        return out


def test_store_batch_uses_one_batch_call_and_applies_every_policy():
    backend = _CountingLz4()
    c = ZswapCache(backend, ZsPool(PageAllocator()), ZswapPolicy(max_compression_ratio=60))
    c.init(0, 1024)
    good = compressible_pages(6)
    rows = [good[0], bytes(4096), random_page(1), same_filled(), good[1], sized_page(3000, 3),
            good[2], good[3]]
    offsets = [10, 11, 12, 13, 14, 15, 16, 17]
    assert c.store(0, 12, good[5])  # an older entry for an offset the batch rejects
    assert c.store(0, 10, good[4])  # an older entry the batch replaces
    backend.single_calls = 0
    res = c.store_batch(0, offsets, np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 4096))
    assert res == [True, True, False, True, True, False, True, True]
    assert backend.batch_calls == 1 and backend.single_calls == 0
    assert c.load(0, 10) == good[0] and c.load(0, 11) == bytes(4096)
    assert c.load(0, 17) == good[3]
    assert c.load(0, 12) is None  # check_old on the rejected page
    assert c.load(0, 13) == same_filled() and c.load(0, 16) == good[2]
    s = c.stats()
    assert s["same_filled_pages"] == 2 and s["reject_compress_poor"] == 2
    assert s["duplicate_entry"] == 1 and s["stored_pages"] == 6
    assert c.store_batch(0, [], np.empty((0, 4096), np.uint8)) == []
    with pytest.raises(InvalidInputError, match="an offset appears twice"):
        c.store_batch(0, [1, 1], np.zeros((2, 4096), np.uint8))
    with pytest.raises(InvalidInputError, match="2 offsets for 1 pages"):
        c.store_batch(0, [1, 2], np.zeros((1, 4096), np.uint8))
    with pytest.raises(InvalidInputError):
        c.store_batch(0, [1], np.zeros((1, 100), np.uint8))
    with pytest.raises(SwapDeviceError, match="is outside swap type 0"):
        c.store_batch(0, [5000], np.zeros((1, 4096), np.uint8))


def test_store_batch_on_a_failing_compressor_and_when_disabled():
    backend = hwzswap.get_backend("842-nx", fault_rate=1.0, fault_ops="compress")
    c = ZswapCache(backend, ZsPool(PageAllocator()))
    c.init(0, 64)
    pages = compressible_pages(4)
    batch = np.frombuffer(b"".join(pages) + bytes(4096), np.uint8).reshape(-1, 4096)
    assert c.store_batch(0, range(5), batch) == [False] * 4 + [True]
    assert c.stats()["reject_compress_fail"] == 4
    c.enabled = False
    assert c.store_batch(0, range(5), batch) == [False] * 5
    assert c.stats()["stored_pages"] == 0  # the same-filled entry at 4 was dropped (check_old)


def test_system_stats_carry_every_documented_key(make_system):
    s = make_system()
    s.swap_out(0, 0, compressible_pages(1)[0])
    stats = s.stats()
    assert API_KEYS <= set(stats)
    assert all(isinstance(v, (int, float)) for v in stats.values())


def test_policy_defaults_and_knobs_match_the_config_section() -> None:
    """The engine's policy and the YAML ``zswap:`` section name the same knobs with the same
    defaults, and a loaded config carries every knob over (nothing silently left at default)."""
    from dataclasses import fields

    from hwzswap.config import ZswapSettings, load_config

    settings = ZswapSettings()
    policy = ZswapPolicy()
    for f in fields(ZswapPolicy):
        if f.name == "max_pool_pages":
            continue
        assert getattr(settings, f.name) == getattr(policy, f.name), f.name
    cfg = load_config({"zswap": {"max_compression_ratio": 70, "accept_threshold_percent": 50,
                                 "same_filled_pages": False, "exclusive_loads": True,
                                 "writeback_batch": 4, "max_outstanding_writebacks": 8,
                                 "entry_checksum": True, "background_writeback": True,
                                 "enabled": False}})
    got = ZswapPolicy.from_config(cfg)
    assert (got.max_compression_ratio, got.accept_threshold_percent, got.same_filled_pages,
            got.exclusive_loads, got.writeback_batch, got.max_outstanding_writebacks,
            got.entry_checksum, got.background_writeback, got.enabled) == (
        70, 50, False, True, 4, 8, True, True, False)
    assert got.max_pool_pages == cfg.max_pool_pages


_WORD = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@st.composite
def _near_same_filled_batches(draw):
    """Batches of same-filled pages and pages one byte away from being same-filled (anywhere,
    the first and last byte included), with a few ordinary pages between."""
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["zero", "word", "zero-1", "word-1", "plain"]))
        page = bytearray(bytes(4096) if kind.startswith("zero") else _WORD * 512)
        if kind.endswith("-1"):
            at = draw(st.sampled_from([0, 7, 8, 2048, 4088, 4095]) | st.integers(0, 4095))
            page[at] ^= draw(st.integers(1, 255))
        elif kind == "plain":
            page = bytearray(compressible_pages(1, seed=draw(st.integers(0, 50)))[0])
        rows.append(bytes(page))
    return rows


@settings(max_examples=60, deadline=None)
@given(_near_same_filled_batches())
def test_store_batch_finds_the_same_same_filled_pages_as_store(rows):
    """The batch path's same-filled detection (a byte compare per page, then the candidates
    whole) keeps exactly the pages ``store`` keeps as a word, and every page loads back."""
    one, many = cache(), cache()
    for off, page in enumerate(rows):
        assert one.store(0, off, page)
    arr = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 4096)
    assert many.store_batch(0, range(len(rows)), arr) == [True] * len(rows)
    for key in ("same_filled_pages", "stored_pages", "compressed_bytes", "zswpout"):
        assert many.stats()[key] == one.stats()[key], key
    for off, page in enumerate(rows):
        assert many.load(0, off) == page
