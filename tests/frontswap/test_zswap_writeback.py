"""LRU writeback to the swap file: order, bounds, failures, background thread, and the races."""

from __future__ import annotations

import errno
import random
import time

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities, DecompressedBatch, ItemStatus
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import CorruptDataError, HwzswapError, SwapDeviceError

from fsutil import WriteBarrier, compressible_pages, random_page, run_thread

REPEAT = 25  # each race scenario, each time with fresh pages and offsets


def test_writeback_takes_the_least_recently_stored_entries(make_system):
    s = make_system()
    pages = compressible_pages(10)
    s.swap_out(0, 20, bytes(4096))  # same-filled: never written back (no pool memory)
    for off, page in enumerate(pages):
        assert s.swap_out(0, off, page)
    s.swap_out(0, 2, pages[2])  # re-stored: now the most recent
    assert s.zswap.writeback(3) == 3
    st = s.stats()
    assert st["written_back_pages"] == 3 and st["pswpout"] == 3 and st["stored_pages"] == 8
    assert [off for off in range(10) if s.zswap.load(0, off) is None] == [0, 1, 3]
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page
    assert s.stats()["pswpin"] == 3
    assert s.devices[0].is_written(0) and not s.devices[0].is_written(20)
    assert s.zswap.writeback(100) == 7
    assert s.zswap.load(0, 20) == bytes(4096)
    assert s.zswap.writeback(5) == 0


def test_outstanding_writebacks_are_bounded(make_system):
    s = make_system(zswap={"max_outstanding_writebacks": 3})
    for off, page in enumerate(compressible_pages(10)):
        s.swap_out(0, off, page)
    assert s.zswap.writeback(10) == 3  # one call never has more than the cap in flight
    barrier = WriteBarrier(s.devices[0], 3)
    t, out = run_thread(s.zswap.writeback, 10)
    barrier.wait_started()
    assert s.stats()["outstanding_writebacks"] == 3
    assert s.zswap.writeback(5) == 0  # the cap is reached: nothing more starts
    barrier.release()
    t.join(20)
    assert out == [3] and s.stats()["outstanding_writebacks"] == 0


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_a_failing_device_leaves_the_entries_in_the_pool(make_system, code):
    s = make_system()
    pages = compressible_pages(6)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    objects = len(s.pool)
    s.devices[0].inject("write", code, count=2)
    assert s.zswap.writeback(2) == 0
    st = s.stats()
    assert st["writeback_fail"] == 2 and st["written_back_pages"] == 0
    assert st["swap_failed_writes"] == 2 and len(s.pool) == objects
    assert all(s.zswap.load(0, off) == page for off, page in enumerate(pages))
    assert s.zswap.writeback(2) == 2  # the device works again: the next oldest go out
    assert sorted(off for off in range(6) if s.zswap.load(0, off) is None) == [2, 3]
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page


class BatchLz4(Lz4Backend):
    """lz4 as a batch device: counts its calls; ``fail_items`` fails those objects in a
    ``decompress_batch`` (the one-page ``decompress`` still works)."""

    name = "test-batch-lz4"

    def __init__(self, **params):
        super().__init__(**params)
        self.batch_calls: list[int] = []
        self.single_calls = 0
        self.fail_items: set[bytes] = set()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, preferred_batch=16)

    def decompress(self, data):
        self.single_calls += 1
        return super().decompress(data)

    def decompress_batch(self, items):
        self.batch_calls.append(len(items))
        out = np.zeros((len(items), 4096), dtype=np.uint8)
        status = np.zeros(len(items), dtype=np.uint8)
        errors = {}
        for i, data in enumerate(items):
            if bytes(data) in self.fail_items:
                status[i], errors[i] = ItemStatus.FAILED, "injected"
                continue
            try:  # a corrupt object fails its own item, as a device reports it
                out[i] = np.frombuffer(Lz4Backend.decompress(self, data), dtype=np.uint8)
            except HwzswapError as exc:
                status[i], errors[i] = ItemStatus.FAILED, str(exc)
        return DecompressedBatch(out, status, errors)


def _stored_on(make_system, backend, n):
    """A swap system on ``backend`` holding ``n`` compressible pages at offsets 0..n-1."""
    s = make_system(backend=backend)
    pages = compressible_pages(n)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    return s, pages


def test_a_batch_device_decompresses_a_writeback_batch_in_one_call(make_system):
    backend = BatchLz4()
    s, pages = _stored_on(make_system, backend, 12)
    assert s.zswap.writeback(8) == 8
    assert backend.batch_calls == [8] and backend.single_calls == 0
    assert s.stats()["written_back_pages"] == 8
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page  # 0..7 from the swap file, byte for byte
    assert s.stats()["pswpin"] == 8


def test_a_failed_item_of_a_writeback_batch_is_redone_alone(make_system):
    backend = BatchLz4()
    s, pages = _stored_on(make_system, backend, 4)
    backend.fail_items.add(bytes(s.pool.read(s.pool.handles()[1])))
    assert s.zswap.writeback(4) == 4
    assert backend.batch_calls == [4] and backend.single_calls == 1
    st = s.stats()
    assert st["written_back_pages"] == 4 and st["writeback_fail"] == 0
    assert st["driver_item_failures"] == 1
    assert [s.swap_in(0, off) for off in range(4)] == pages


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "batch-device"])
def test_a_corrupt_object_is_not_written_back(make_system, batch):
    """Written back one by one, or in one call of a batch device: the corrupt object fails
    alone, its entry is kept, and the others go to the swap file."""
    backend = BatchLz4() if batch else None
    s, pages = _stored_on(make_system, backend, 4)
    handle = s.pool.handles()[2]
    s.pool.write(handle, b"\xff" * s.pool.obj_size(handle))
    assert s.zswap.writeback(4) == 3
    st = s.stats()
    assert st["writeback_fail"] == 1 and st["decompress_fail"] == 1 and st["pswpout"] == 3
    if backend is not None:  # one batch call; only the corrupt object was tried again alone
        assert backend.batch_calls == [4] and backend.single_calls == 1
    with pytest.raises(CorruptDataError):
        s.swap_in(0, 2)
    assert [s.swap_in(0, off) for off in (0, 1, 3)] == [pages[0], pages[1], pages[3]]


def test_a_full_pool_writes_back_from_the_store_path(make_system):
    # 1 MiB of "RAM" and 16 % of it: a pool of 40 pages.
    s = make_system(memory={"total_ram_mb": 1}, zswap={"max_pool_percent": 16},
                    swap={"nr_pages": 2048})
    pages = compressible_pages(600)
    stored = sum(s.swap_out(0, off, page) for off, page in enumerate(pages))
    st = s.stats()
    assert st["pool_limit_hit"] > 0 and st["written_back_pages"] > 0
    assert st["pool_peak_pages"] <= 40 + 8  # over the limit by at most one zspage
    assert stored + st["pswpout"] - st["written_back_pages"] == len(pages)
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page
    assert st["reject_pool_limit"] > 0  # the hysteresis refused some while draining


def test_background_writeback_keeps_the_pool_under_the_threshold(make_system):
    s = make_system(memory={"total_ram_mb": 1}, zswap={"max_pool_percent": 16,
                                                       "background_writeback": True},
                    swap={"nr_pages": 2048})
    pages = compressible_pages(500)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    accept = s.config.accept_pool_pages
    deadline = time.monotonic() + 20
    while s.pool.total_pages() > accept and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.pool.total_pages() <= accept
    assert s.stats()["written_back_pages"] > 0
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page


def test_shrink_writes_back_to_a_target(make_system):
    s = make_system()
    for off, page in enumerate(compressible_pages(200)):
        s.swap_out(0, off, page)
    before = s.pool.total_pages()
    written = s.zswap.shrink(before // 2)
    assert written > 0 and s.pool.total_pages() <= before // 2
    assert s.zswap.shrink(0) > 0 and s.pool.total_pages() == 0


# -- races: each scenario holds one writeback's device write open with a barrier ---------------


def _fill(s, rng, n=6):
    """Free every slot, then swap out ``n`` fresh pages at random offsets; the first one is
    the LRU's oldest. Returns {offset: page}."""
    for off in range(s.devices[0].nr_pages):
        if s.slot_in_use(0, off):
            s.swap_free(0, off)
    offsets = rng.sample(range(s.devices[0].nr_pages), n)
    pages = compressible_pages(n, seed=rng.randrange(1 << 30))
    for off, page in zip(offsets, pages):
        assert s.swap_out(0, off, page)
    return dict(zip(offsets, pages))


def _start_writeback_of_oldest(s, victim):
    barrier = WriteBarrier(s.devices[0], victim)
    t, out = run_thread(s.zswap.writeback, 1)
    barrier.wait_started()
    assert s.stats()["outstanding_writebacks"] == 1
    return barrier, t, out


def test_race_load_during_writeback_returns_the_right_bytes(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(1)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        assert s.swap_in(0, victim) == pages[victim]  # from the pool, mid-writeback
        barrier.remove()
        t.join(20)
        assert out == [1]
        assert s.zswap.load(0, victim) is None  # written back and freed
        assert s.swap_in(0, victim) == pages[victim]  # now from the file
        for off, page in pages.items():
            assert s.swap_in(0, off) == page


def test_race_exclusive_load_during_writeback(make_system):
    s = make_system(swap={"nr_pages": 64}, zswap={"exclusive_loads": True})
    rng = random.Random(2)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        raced = s.stats()["writeback_raced"]
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        assert s.swap_in(0, victim) == pages[victim]  # takes the page and frees the slot
        barrier.remove()
        t.join(20)
        assert out == [0] and s.stats()["writeback_raced"] == raced + 1
        with pytest.raises(SwapDeviceError, match="not in use"):
            s.swap_in(0, victim)  # the stale copy on the device is never read
        fresh = random_page(rng.randrange(1 << 30))
        assert s.swap_out(0, victim, fresh) is False  # device write, after the stale one
        assert s.swap_in(0, victim) == fresh


def test_race_invalidate_during_writeback(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(3)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        st0 = s.stats()
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        s.swap_free(0, victim)
        objects = len(s.pool)
        barrier.remove()
        t.join(20)
        st = s.stats()
        assert out == [0]
        assert st["writeback_raced"] == st0["writeback_raced"] + 1
        assert st["written_back_pages"] == st0["written_back_pages"]
        assert len(s.pool) == objects  # nothing freed twice, nothing leaked
        with pytest.raises(SwapDeviceError, match="not in use"):
            s.swap_in(0, victim)
        again = compressible_pages(1, seed=rng.randrange(1 << 30))[0]
        assert s.swap_out(0, victim, again)
        assert s.swap_in(0, victim) == again
        del pages[victim]
        for off, page in pages.items():
            assert s.swap_in(0, off) == page


def test_race_store_during_writeback_wins(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(4)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        newer = compressible_pages(1, seed=rng.randrange(1 << 30))[0]
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        assert s.swap_out(0, victim, newer) is True  # a new store while the old one is written
        barrier.remove()
        t.join(20)
        assert out == [0]
        assert s.swap_in(0, victim) == newer  # zswap's newer entry, not the stale file copy
        # write the newer entry back too: the file now holds it
        while s.zswap.load(0, victim) is not None:
            assert s.zswap.writeback(1) == 1
        assert s.swap_in(0, victim) == newer


def test_race_rejected_store_during_writeback_lands_after_it(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(5)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        newer = random_page(rng.randrange(1 << 30))  # zswap rejects it: it goes to the device
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        c, cout = run_thread(s.swap_out, 0, victim, newer)
        c.join(0.05)
        assert c.is_alive()  # it waits for the in-flight writeback of the same slot
        barrier.remove()
        t.join(20)
        c.join(20)
        assert out == [0] and cout == [False]
        assert s.swap_in(0, victim) == newer  # the stale page did not land after it


def test_race_two_writebacks_never_take_the_same_entry(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(6)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        order = list(pages)
        barrier, t, out = _start_writeback_of_oldest(s, order[0])
        assert s.zswap.writeback(1) == 1  # takes the next oldest, not the one in flight
        assert s.zswap.load(0, order[1]) is None
        assert s.zswap.load(0, order[0]) == pages[order[0]]
        barrier.remove()
        t.join(20)
        assert out == [1] and s.stats()["pswpout"] >= 2
        for off, page in pages.items():
            assert s.swap_in(0, off) == page


def test_race_device_failure_during_writeback_with_a_load(make_system):
    s = make_system(swap={"nr_pages": 64})
    rng = random.Random(7)
    for _ in range(REPEAT):
        pages = _fill(s, rng)
        victim = next(iter(pages))
        s.devices[0].inject("write", errno.EIO, 1)
        barrier, t, out = _start_writeback_of_oldest(s, victim)
        assert s.swap_in(0, victim) == pages[victim]
        barrier.remove()
        t.join(20)
        assert out == [0]
        assert s.zswap.load(0, victim) == pages[victim]  # kept in the pool
    assert s.stats()["writeback_fail"] == REPEAT


def test_swapoff_waits_for_writeback_in_flight(make_system):
    s = make_system(swap={"nr_pages": 64})
    pages = _fill(s, random.Random(8))
    victim = next(iter(pages))
    barrier, t, out = _start_writeback_of_oldest(s, victim)
    off, offout = run_thread(s.swapoff, 0)
    off.join(0.05)
    assert off.is_alive()
    barrier.remove()
    t.join(20)
    off.join(20)
    assert offout == [None] and out == [0]
    assert s.stats()["stored_pages"] == 0 and len(s.pool) == 0
