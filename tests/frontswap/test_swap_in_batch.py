"""Batched swap-in (readahead): ``ZswapCache.load_batch`` and ``SwapSystem.swap_in_batch`` give
what looped ``load``/``swap_in`` give, decompress the hits in one backend call, and lose nothing
when a batch fails part-way."""

from __future__ import annotations

import errno
import random
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hwzswap
from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    HwzswapError,
    InvalidInputError,
    SwapDeviceError,
)
from hwzswap.frontswap.policy import ZswapPolicy
from hwzswap.frontswap.zswap import ZswapCache
from hwzswap.pool import PageAllocator, create_pool

from fsutil import WriteBarrier, compressible_pages, config, random_page, run_thread, same_filled

SLOTS = 12
BANK = compressible_pages(10, seed=7) + [random_page(4), bytes(4096), same_filled()]
HYP = settings(max_examples=80, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture,
                                      HealthCheck.too_slow])


def comparable(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "swap_io_us"}  # wall clock


def flip(pool: Any, handle: int, pos: int = 0, bit: int = 0) -> None:
    view = pool.map(handle, writable=True)
    view[pos] ^= 1 << bit
    pool.unmap(handle)


def handle_of(s: Any, off: int) -> int:
    entry = s.zswap._trees[0][off]
    assert entry.__class__ is int
    return entry


_out = st.tuples(st.just("out"), st.integers(0, SLOTS - 1), st.integers(0, len(BANK) - 1))
# a batch: a shuffle seed and a share of the live slots; sometimes a slot not in use too
_in = st.tuples(st.just("in"), st.integers(0, 2**32), st.floats(0, 1), st.booleans())
op_st = st.one_of(_out, _out, _out, _in, _in,
                  st.tuples(st.just("free"), st.integers(0, SLOTS - 1)),
                  st.tuples(st.just("wb"), st.integers(1, 4)))


@settings(HYP, max_examples=150)
@given(ops=st.lists(op_st, min_size=1, max_size=40), exclusive=st.booleans(),
       checksum=st.booleans(), backend=st.sampled_from(["lz4", "zstd"]))
def test_swap_in_batch_is_looped_swap_in(tmp_path, ops, exclusive, checksum, backend):
    # Two systems fed the same ops: one loads in batches, the other one page at a time. A pool
    # of 7 pages keeps writeback busy, so batches mix pool hits, same-filled pages and pages
    # read from the swap file (rejected or written back).
    sections = dict(
        zswap={"compressor": backend, "max_pool_percent": 3, "exclusive_loads": exclusive,
               "entry_checksum": checksum, "writeback_batch": 2},
        memory={"total_ram_mb": 1}, swap={"nr_pages": SLOTS})
    a = hwzswap.open_zswap(config(tmp_path, "a.img", **sections))
    b = hwzswap.open_zswap(config(tmp_path, "b.img", **sections))
    live: dict[int, int] = {}
    try:
        for op in ops:
            if op[0] == "out":
                _, off, j = op
                assert a.swap_out(0, off, BANK[j]) == b.swap_out(0, off, BANK[j])
                live[off] = j
            elif op[0] == "free":
                a.swap_free(0, op[1])
                b.swap_free(0, op[1])
                live.pop(op[1], None)
            elif op[0] == "wb":
                assert a.zswap.writeback(op[1]) == b.zswap.writeback(op[1])
            else:
                _, seed, share, with_free_slot = op
                used = sorted(live)
                random.Random(seed).shuffle(used)
                used = used[: round(share * len(used))]
                free = [o for o in range(SLOTS) if o not in live]
                if with_free_slot and free:
                    # a slot not in use anywhere in the batch: refused before anything is read
                    before = comparable(a.stats())
                    with pytest.raises(SwapDeviceError,
                                       match=f"offset {free[0]}: the slot is not in use"):
                        a.swap_in_batch(0, used + free)
                    assert comparable(a.stats()) == before
                got = a.swap_in_batch(0, used)
                assert got == [b.swap_in(0, o) for o in used]
                assert got == [BANK[live[o]] for o in used]
                assert all(type(p) is bytes for p in got)
                if exclusive:
                    for o in used:
                        del live[o]
                        assert not a.slot_in_use(0, o)
            assert comparable(a.stats()) == comparable(b.stats())
        a.zswap.check()
        st_ = a.stats()
        event(f"read from the swap file: {st_['pswpin'] > 0}")
        event(f"written back: {st_['written_back_pages'] > 0}")
        for off, j in live.items():
            assert a.swap_in(0, off) == BANK[j]
    finally:
        a.close()
        b.close()


def cache(exclusive: bool = False, checksum: bool = False, backend: Any = "lz4") -> ZswapCache:
    be = hwzswap.get_backend(backend) if isinstance(backend, str) else backend
    c = ZswapCache(be, create_pool("zsmalloc", PageAllocator()),
                   ZswapPolicy(exclusive_loads=exclusive, entry_checksum=checksum))
    c.init(0, 64)
    return c


@HYP
@given(stored=st.dictionaries(st.integers(0, 63), st.integers(0, len(BANK) - 1), max_size=20),
       batch=st.lists(st.integers(0, 63), max_size=24, unique=True), exclusive=st.booleans())
def test_load_batch_is_looped_load(stored, batch, exclusive):
    a, b = cache(exclusive), cache(exclusive)
    try:
        for off, j in stored.items():
            assert a.store(0, off, BANK[j]) == b.store(0, off, BANK[j])
        got = a.load_batch(0, np.asarray(batch, dtype=np.int64))  # numpy offsets are fine
        assert got == [b.load(0, off) for off in batch]
        assert a.stats() == b.stats()
        assert sorted(a._trees[0]) == sorted(b._trees[0])
        a.check()
    finally:
        a.close()
        b.close()


def test_empty_batches(make_system):
    s = make_system()
    assert s.swap_in_batch(0, []) == [] and s.zswap.load_batch(0, []) == []
    assert s.stats()["loads_hit"] == s.stats()["loads_miss"] == 0


def test_bad_offsets_are_refused_before_anything_is_read(make_system):
    s = make_system(swap={"nr_pages": 16}, zswap={"exclusive_loads": True})
    pages = compressible_pages(3)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    before = s.stats()
    for offs, exc, msg in (
        ([0, 16], SwapDeviceError, r"swap_in_batch: offset 16 is outside swap type 0 "
                                   r"\(slots 0\.\.15\)"),
        ([-1, 0], SwapDeviceError, "offset -1 is outside"),
        ([0, 1, 0], InvalidInputError, "an offset appears twice"),
        ([0, 1.5], SwapDeviceError, "an offset must be an integer, got float 1.5"),
        ([0, 1, 2, 5], SwapDeviceError, "offset 5: the slot is not in use"),
    ):
        with pytest.raises(exc, match=msg):
            s.swap_in_batch(0, offs)
    with pytest.raises(SwapDeviceError, match="swap type 3 is not on"):
        s.swap_in_batch(3, [0])
    z = s.zswap
    for offs, exc, msg in (
        ([0, 16], SwapDeviceError,
         r"zswap load_batch: offset 16 is outside swap type 0 \(slots 0\.\.15\)"),
        ([0, 0], InvalidInputError, "zswap load_batch: an offset appears twice"),
        (["1"], SwapDeviceError, "an offset must be an integer, got str '1'"),
    ):
        with pytest.raises(exc, match=msg):
            z.load_batch(0, offs)
    with pytest.raises(SwapDeviceError, match="load_batch: swap type 2 is not on"):
        z.load_batch(2, [0])
    assert s.stats() == before  # nothing was loaded or freed
    assert s.swap_in_batch(0, [2, 0, 1]) == [pages[2], pages[0], pages[1]]
    s.close()
    with pytest.raises(SwapDeviceError, match="closed"):
        s.swap_in_batch(0, [0])


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_checksum_failure_names_the_offset_and_loses_nothing(make_system, exclusive):
    s = make_system(zswap={"entry_checksum": True, "exclusive_loads": exclusive})
    pages = compressible_pages(4) + [random_page(2), same_filled()]
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    flip(s.pool, handle_of(s, 2), pos=5, bit=3)
    flip(s.pool, handle_of(s, 0), pos=1, bit=1)
    before = s.stats()
    order = [5, 4, 1, 2, 3, 0]  # slot 2 is the first corrupt one in batch order
    with pytest.raises(CorruptDataError, match="offset 2: .*fails its checksum"):
        s.swap_in_batch(0, order)
    after = s.stats()
    assert after["decompress_fail"] == before["decompress_fail"] + 2  # each bad object once
    assert {k: v for k, v in after.items() if k not in ("decompress_fail", "swap_io_us")} == \
        {k: v for k, v in before.items() if k not in ("decompress_fail", "swap_io_us")}
    flip(s.pool, handle_of(s, 2), pos=5, bit=3)  # repair slot 2: now slot 0 is to blame
    with pytest.raises(CorruptDataError, match="offset 0: .*fails its checksum"):
        s.swap_in_batch(0, order)
    flip(s.pool, handle_of(s, 0), pos=1, bit=1)
    assert s.swap_in_batch(0, order) == [pages[o] for o in order]  # every page still there
    st_ = s.stats()
    assert st_["loads_hit"] == 5 and st_["loads_miss"] == 1 and st_["pswpin"] == 1
    assert st_["stored_pages"] == (0 if exclusive else 5)
    assert all(s.slot_in_use(0, o) != exclusive for o in order)
    s.zswap.check()


def test_without_the_checksum_the_first_object_that_does_not_decompress_is_named(make_system):
    s = make_system(zswap={"entry_checksum": False})
    pages = compressible_pages(4)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    for off in (1, 3):
        h = handle_of(s, off)
        s.pool.write(h, b"\xff" * s.pool.obj_size(h))  # lz4 detects this one
    with pytest.raises(CorruptDataError, match="offset 3: .*does not decompress"):
        s.zswap.load_batch(0, [0, 3, 2, 1])
    assert s.stats()["decompress_fail"] == 2 and s.stats()["loads_hit"] == 0


def test_a_decompress_failure_before_a_checksum_failure_is_the_one_named(make_system):
    # entry_checksum on: slot 3's object keeps its stored CRC but no longer decompresses, slot 1
    # fails its CRC. Batch order decides which error a looped load would have hit first.
    s = make_system(zswap={"entry_checksum": True})
    pages = compressible_pages(4)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    h3 = handle_of(s, 3)
    s.pool.write(h3, b"\xff" * s.pool.obj_size(h3))
    s.zswap._csums[h3] = zlib.crc32(s.pool.read(h3))
    flip(s.pool, handle_of(s, 1))
    with pytest.raises(CorruptDataError, match="offset 3: .*does not decompress"):
        s.zswap.load_batch(0, [0, 3, 2, 1])
    with pytest.raises(CorruptDataError, match="offset 1: .*checksum"):
        s.zswap.load_batch(0, [0, 1, 2, 3])
    assert s.stats()["decompress_fail"] == 4  # both bad objects, in each call


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_failing_device_read_frees_nothing(make_system, exclusive):
    s = make_system(zswap={"exclusive_loads": exclusive})
    pages = [compressible_pages(1)[0], random_page(5), bytes(4096)]
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    s.devices[0].inject("read", errno.EIO, 1)
    with pytest.raises(SwapDeviceError, match=r"read of slot 1 failed: \[Errno 5\]"):
        s.swap_in_batch(0, [0, 1, 2])
    assert s.stats()["stored_pages"] == 2 and all(s.slot_in_use(0, o) for o in range(3))
    assert s.swap_in_batch(0, [0, 1, 2]) == pages  # a transient read error loses nothing
    assert s.stats()["stored_pages"] == (0 if exclusive else 2)


def test_written_back_pages_come_from_the_swap_file(make_system):
    s = make_system(zswap={"exclusive_loads": True})
    pages = compressible_pages(6)
    s.swap_out_batch(0, range(6), np.frombuffer(b"".join(pages), np.uint8).reshape(6, 4096))
    assert s.zswap.writeback(3) == 3  # slots 0..2, the oldest
    got = s.swap_in_batch(0, [4, 0, 5, 2, 1, 3])
    assert got == [pages[o] for o in (4, 0, 5, 2, 1, 3)]
    st_ = s.stats()
    assert st_["pswpin"] == 3 and st_["loads_miss"] == 3 and st_["loads_hit"] == 3
    assert st_["stored_pages"] == 0 and not any(s.slot_in_use(0, o) for o in range(6))
    assert not any(s.devices[0].is_written(o) for o in range(6))  # discarded


def test_exclusive_batch_during_a_writeback_of_one_of_its_slots(make_system):
    # The writeback of slot 0 is held at its device write; the batch finds the entry still in
    # the index (load during writeback), returns the right page and frees it; the writeback then
    # fails its re-check and frees nothing.
    s = make_system(zswap={"exclusive_loads": True})
    pages = compressible_pages(3)
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    barrier = WriteBarrier(s.devices[0], 0)
    t, out = run_thread(s.zswap.writeback, 1)
    barrier.wait_started()
    assert s.swap_in_batch(0, [1, 0, 2]) == [pages[1], pages[0], pages[2]]
    barrier.remove()
    t.join(20)
    assert out == [0]
    st_ = s.stats()
    assert st_["writeback_raced"] == 1 and st_["stored_pages"] == 0 and len(s.pool) == 0
    s.zswap.check()
    assert not s.slot_in_use(0, 0)
    new = compressible_pages(4)[3]
    assert s.swap_out(0, 0, new) and s.swap_in_batch(0, [0]) == [new]


class _FlakyBatch(Lz4Backend):
    """lz4 claiming a batch path whose batch call fails once (a transient device fault) while
    every object decompresses fine on its own."""

    name = "test-flaky-batch"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.batch_calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="cpu", batch=True)

    def decompress_batch(self, items: Any) -> np.ndarray:
        self.batch_calls += 1
        if self.batch_calls == 1:
            raise DeviceError("test-flaky-batch: queue reset")
        return super().decompress_batch(items)


def test_a_batch_call_failure_no_object_reproduces_still_returns_the_pages():
    be = _FlakyBatch()
    c = cache(backend=be)
    pages = compressible_pages(5)
    for off, page in enumerate(pages):
        c.store(0, off, page)
    assert c.load_batch(0, [4, 3, 2, 1, 0]) == pages[::-1]
    assert c.load_batch(0, [0, 1, 9]) == [pages[0], pages[1], None]
    assert be.batch_calls == 2
    s = c.stats()
    assert s["decompress_fail"] == 0 and s["loads_hit"] == 7 and s["loads_miss"] == 1
    c.close()


def test_lz4_opencl_decompresses_a_batch_in_one_device_call(make_system):
    be = hwzswap.get_backend("lz4-opencl", batch_size=64)
    try:
        s = make_system(backend=be, zswap={"compressor": "lz4-opencl", "entry_checksum": False,
                                           "exclusive_loads": True})
        pages = compressible_pages(40) + [random_page(6), bytes(4096)]
        n = len(pages)
        s.swap_out_batch(0, range(n), np.frombuffer(b"".join(pages), np.uint8).reshape(n, 4096))
        order = list(np.random.default_rng(3).permutation(n))
        launches = be.counters()["decompress_launches"]
        half = order[: n // 2]
        assert s.swap_in_batch(0, half) == [pages[o] for o in half]
        assert be.counters()["decompress_launches"] == launches + 1
        rest = order[n // 2:]
        bad = [o for o in rest if o < 40][3]  # a compressed page, fourth in batch order
        h = handle_of(s, bad)
        s.pool.write(h, b"\xff" * s.pool.obj_size(h))
        with pytest.raises(CorruptDataError, match=f"offset {bad}: .*lz4-opencl.*does not "
                                                   "decompress"):
            s.swap_in_batch(0, rest)
        assert s.stats()["stored_pages"] == len(rest) - (40 in rest)  # nothing freed
        s.swap_out(0, bad, pages[bad])  # a new store replaces the corrupt object
        assert s.swap_in_batch(0, rest) == [pages[o] for o in rest]
        assert s.stats()["stored_pages"] == 0
    finally:
        be.close()


# -- partial: per-page results, as each folio of a kernel readahead completes alone ------------

def _outcome(x: Any) -> Any:
    """A page, or an error as (type, message): two systems given the same ops must agree (their
    swap files, a.img and b.img, aside)."""
    if isinstance(x, Exception):
        return type(x).__name__, str(x).replace("/b.img:", "/a.img:")
    return x


def _damage(s: Any, off: int) -> None:
    """Make slot ``off``'s pool object fail to load: lz4 detects an object of 0xff bytes; with
    entry_checksum any change is caught."""
    h = handle_of(s, off)
    s.pool.write(h, b"\xff" * s.pool.obj_size(h))


@settings(HYP, max_examples=60)
@given(data=st.data(), mode=st.sampled_from(["page", "folio", "reclaim", "async"]),
       exclusive=st.booleans(), checksum=st.booleans(), backend=st.sampled_from(["lz4", "zstd"]))
def test_partial_swap_in_batch_is_looped_swap_in_with_its_errors(
        tmp_path, data, mode, exclusive, checksum, backend):
    # Two systems, the same stores, the same damaged objects and failing device reads: one
    # reads a readahead cluster with partial=True, the other page by page. Every page comes
    # back, every failure is the error swap_in raises for that page, counted once; failed
    # slots keep their data and the rest are freed as exclusive loads free them.
    sections = dict(zswap={"compressor": backend, "batching": mode, "exclusive_loads": exclusive,
                           "entry_checksum": checksum},
                    memory={"total_ram_mb": 64}, swap={"nr_pages": SLOTS})
    systems = [hwzswap.open_zswap(config(tmp_path, f"{name}.img", **sections))
               for name in ("a", "b")]
    a, b = systems
    try:
        js = data.draw(st.lists(st.integers(0, len(BANK) - 1), min_size=1, max_size=SLOTS))
        pages = [BANK[j] for j in js]
        batch = np.frombuffer(b"".join(pages), np.uint8).reshape(len(pages), 4096)
        for s in systems:
            s.swap_out_batch(0, range(len(pages)), batch)
            s.drain()
        in_pool = [o for o in range(len(pages)) if handle_of_or_none(a, o) is not None]
        bad = data.draw(st.lists(st.sampled_from(in_pool), unique=True) if in_pool
                        else st.just([]))
        order = data.draw(st.permutations(range(len(pages))))
        n_dev = sum(1 for o in order if a.zswap._trees[0].get(o) is None)  # on the device
        fail_reads = data.draw(st.integers(0, n_dev))
        for s in systems:
            for o in bad:
                _damage(s, o)
            s.devices[0].inject("read", errno.EIO, fail_reads)
        got = a.swap_in_batch(0, order, partial=True)
        want = []
        for o in order:
            try:
                want.append(b.swap_in(0, o))
            except HwzswapError as exc:
                want.append(exc)
        assert list(map(_outcome, got)) == list(map(_outcome, want))
        assert comparable(a.stats()) == comparable(b.stats())
        failed = [o for o, x in zip(order, got) if isinstance(x, HwzswapError)]
        assert len(failed) == len(bad) + fail_reads
        assert a.stats()["decompress_fail"] == len(bad)
        for o, x in zip(order, got):
            if not isinstance(x, HwzswapError):
                assert x == pages[o]
            assert a.slot_in_use(0, o) == (not exclusive or isinstance(x, HwzswapError))
        event(f"failed pages: {len(failed) > 0}")
        a.zswap.check()
        # nothing was lost: repair what was damaged, and every failed page reads back
        for o in bad:
            a.zswap.invalidate_page(0, o)  # the object is gone; rewrite the page as the
            a.swap_out(0, o, pages[o])     # owner of a failed slot would
        a.drain()
        again = a.swap_in_batch(0, failed, partial=True)
        assert again == [pages[o] for o in failed]
    finally:
        for s in systems:
            s.close()


def handle_of_or_none(s: Any, off: int) -> Any:
    entry = s.zswap._trees[0].get(off)
    return entry if entry.__class__ is int else None


@pytest.mark.parametrize("exclusive", [False, True])
def test_partial_returns_the_good_pages_of_a_cluster_with_a_corrupt_object(make_system,
                                                                          exclusive):
    s = make_system(zswap={"exclusive_loads": exclusive})
    pages = compressible_pages(4) + [same_filled()]
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    _damage(s, 1)
    got = s.swap_in_batch(0, [4, 1, 0, 3, 2], partial=True)
    assert isinstance(got[1], CorruptDataError)
    assert "offset 1: " in str(got[1]) and "does not decompress" in str(got[1])
    assert [got[i] for i in (0, 2, 3, 4)] == [pages[4], pages[0], pages[3], pages[2]]
    st_ = s.stats()
    assert st_["decompress_fail"] == 1 and st_["loads_hit"] == 4
    assert s.slot_in_use(0, 1) and st_["stored_pages"] == (1 if exclusive else 5)
    assert all(s.slot_in_use(0, o) != exclusive for o in (0, 2, 3, 4))
    # the default stays all or nothing: the same cluster raises and changes nothing
    if not exclusive:
        before = s.stats()
        with pytest.raises(CorruptDataError, match="offset 1: "):
            s.swap_in_batch(0, [4, 1, 0])
        assert s.stats()["loads_hit"] == before["loads_hit"]
    s.zswap.check()


@pytest.mark.parametrize("exclusive", [False, True])
def test_partial_keeps_a_page_whose_device_read_failed(make_system, exclusive):
    s = make_system(zswap={"exclusive_loads": exclusive})
    pages = [compressible_pages(1)[0], random_page(5), random_page(6), bytes(4096)]
    for off, page in enumerate(pages):
        s.swap_out(0, off, page)
    s.devices[0].inject("read", errno.EIO, 1)  # the first device read: slot 1 (incompressible)
    got = s.swap_in_batch(0, [0, 1, 2, 3], partial=True)
    assert isinstance(got[1], SwapDeviceError) and "read of slot 1 failed" in str(got[1])
    assert [got[i] for i in (0, 2, 3)] == [pages[0], pages[2], pages[3]]
    assert s.slot_in_use(0, 1) and s.devices[0].is_written(1)
    assert all(s.slot_in_use(0, o) != exclusive for o in (0, 2, 3))
    assert s.swap_in_batch(0, [1], partial=True) == [pages[1]]  # the failure was transient
