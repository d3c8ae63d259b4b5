"""Defects a driver author's review found (engine and kit side), one test each: a driver that
breaks a rule gets a clear error or a counter, a page the engine accepted comes back
byte-exact, and the kit and the engine apply one rule."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import (
    Capabilities,
    OpKind,
    OpStatus,
    page_views,
    read_only_view,
)
from hwzswap.errors import DriverError
from hwzswap.testing import ConformanceError, run_conformance

import broken_drivers as bd
from test_engine_guard import _driver, _pages

# -- 1: the driver's read-only input cannot be made writable again ---------------------------------


def test_read_only_view_cannot_be_made_writable() -> None:
    base = np.zeros((4, 4096), np.uint8)
    for arr in (base, base[::2], base[1]):
        view = read_only_view(arr)
        assert np.shares_memory(view, arr) and view.shape == arr.shape
        with pytest.raises(ValueError):
            view.flags.writeable = True
        with pytest.raises(ValueError):
            view[0] = 1
    assert not base.any()


@pytest.mark.parametrize("batching", ["reclaim", "async"])
def test_a_driver_that_flips_its_input_writable_changes_no_page(system, batching) -> None:
    s = system(bd.FlipsWritable, batching=batching)
    pages = _pages(16)
    orig = pages.copy()
    results = s.swap_out_batch(0, list(range(16)), pages)
    s.drain()
    assert np.array_equal(pages, orig), "the driver changed the caller's pages"
    assert _driver(s)["bad_exception"] >= 1
    assert "read-only" in s.zswap.compressor.last_error
    for off in range(16):
        assert s.swap_in(0, off) == orig[off].tobytes(), f"page {off} (stored={results[off]})"


def test_the_kit_fails_a_driver_that_flips_its_input_writable(register) -> None:
    register(bd.FlipsWritable)
    with pytest.raises(ConformanceError) as info:
        run_conformance(bd.FlipsWritable.name, timeout_s=5.0)
    assert info.value.check == "batch"
    assert re.search(r"compress_batch wrote into its input .*read-only: compress_batch raised "
                     r"ValueError: cannot set WRITEABLE flag", str(info.value)), str(info.value)


# -- 2: async mode's merged calls get one deadline per merged batch ------------------------------


class _PerPageDevice(bd.GoodDriver):
    """A device that takes ``ms`` a page; its first call takes ``first_ms`` (so the next
    batches queue up and the engine merges them into one call)."""

    name = "review-per-page"
    ms = 1.5
    first_ms = 90.0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.sizes: list[int] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="review-dev", batch=True, preferred_batch=256)

    def compress_batch(self, pages: Any) -> list[Any]:
        self.sizes.append(len(pages))
        time.sleep((self.first_ms if len(self.sizes) == 1 else self.ms * len(pages)) / 1000.0)
        return [bd._lz4(v) for v in page_views(pages)]


def _store_behind_a_first_call(s: Any, pages: np.ndarray) -> None:
    """Store ``pages`` in 32-page passes: the first alone in the device's first call, the rest
    queued while it runs (so the engine merges them into the next call)."""
    s.swap_out_batch(0, list(range(32)), pages[:32])
    end = time.monotonic() + 10.0
    while not s.zswap.backend.sizes and time.monotonic() < end:
        time.sleep(0.001)
    for lo in range(32, len(pages), 32):
        s.swap_out_batch(0, list(range(lo, lo + 32)), pages[lo:lo + 32])
    s.drain()


@pytest.mark.parametrize("watchdog", ["auto", "off"])
def test_merged_async_calls_get_one_deadline_per_batch(system, watchdog) -> None:
    """32-page batches take 48 ms each, well within the 100 ms deadline; the engine merges the
    ones queued behind a slow first call into one call of 96+ pages (150+ ms). That call had
    one batch's deadline, timed out and, repeated, marked the device failed; a call merging
    k batches now gets k deadlines, so every page is stored."""
    s = system(_PerPageDevice, batching="async", device_timeout_ms=100,
               driver_watchdog=watchdog, device_fail_after=1)
    pages = _pages(128)
    _store_behind_a_first_call(s, pages)
    dev = s.zswap.backend
    assert max(dev.sizes) >= 64, f"no merged call: {dev.sizes}"
    st = s.stats()
    assert st["driver_timeouts"] == 0 and st["async_timeouts"] == 0, dev.sizes
    assert st["driver_failed"] == 0 and st["zswpout"] == 128
    assert [s.swap_in(0, o) for o in range(128)] == [p.tobytes() for p in pages]


def test_a_merged_call_past_its_deadlines_names_them(system) -> None:
    """A merged call that overruns even k deadlines is given up, its message saying so."""

    class Slow(_PerPageDevice):
        name = "review-slow-merged"
        ms = 6.0  # 192 ms a batch: over the 100 ms deadline alone, merged or not

    s = system(Slow, batching="async", device_timeout_ms=100, device_fail_after=100)
    pages = _pages(96)
    _store_behind_a_first_call(s, pages)
    assert s.zswap.backend.sizes == [32, 64]
    assert s.stats()["driver_timeouts"] == 1
    assert re.search(r"timed out after 2 x 100 ms \(zswap.device_timeout_ms\): a call "
                     r"of 2 merged batches gets one deadline each",
                     s.zswap.compressor.last_error), s.zswap.compressor.last_error
    end = time.monotonic() + 10.0  # the given-up call returns (its loads are refused till then)
    while any(check() for check in s.zswap.compressor.stuck_checks) and time.monotonic() < end:
        time.sleep(0.005)
    assert [s.swap_in(0, o) for o in range(96)] == [p.tobytes() for p in pages]


# -- 3: a call refused behind a stuck one is not a timeout -----------------------------------------


class _StallsOnce(bd.GoodDriver):
    """LZ4 blocks (``format='lz4'``: software decodes them); its second ``compress_batch``
    stalls until released (a device that hiccups once), every other call answers at once."""

    name = "review-stalls-once"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls = 0
        self.release = threading.Event()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="review-dev", batch=True, format="lz4")

    def compress_batch(self, pages: Any) -> list[Any]:
        self.calls += 1
        if self.calls == 2:
            self.release.wait(30)
        return [bd._lz4(v) for v in page_views(pages)]


def _wait_unstuck(s: Any) -> None:
    end = time.monotonic() + 10.0
    while any(check() for check in s.zswap.compressor.stuck_checks) and time.monotonic() < end:
        time.sleep(0.005)
    assert not any(check() for check in s.zswap.compressor.stuck_checks)


def test_one_stall_does_not_fail_the_device(system) -> None:
    """One stuck call (given up at 100 ms) and 12 stores while it is still stuck: those calls
    are refused (driver_refused_stuck; the pages go to the swap device, a load to the software
    decoder), not counted as timeouts; once it returns the device stores again. (The refused
    calls counted as timeouts: the device was failed within microseconds, and with
    device_retry_s null never came back.)"""
    s = system(_StallsOnce, batching="reclaim", device_timeout_ms=100, device_fail_after=8,
               device_retry_s=None)
    dev = s.zswap.backend
    pages = _pages(16)
    try:
        assert s.swap_out_batch(0, [0], pages[:1]) == [True]
        assert s.swap_out_batch(0, [1], pages[1:2]) == [False]  # stalls: given up
        for off in range(2, 14):
            assert s.swap_out_batch(0, [off], pages[off:off + 1]) == [False]
        assert s.swap_in(0, 0) == pages[0].tobytes()  # decoded in software meanwhile
        st = s.stats()
        assert dev.calls == 2
        assert st["driver_timeouts"] == 1 and st["driver_refused_stuck"] == 13
        assert st["driver_failed"] == 0 and st["driver_sw_fallbacks"] == 1
    finally:
        dev.release.set()
    _wait_unstuck(s)
    assert s.swap_out_batch(0, [14, 15], pages[14:]) == [True, True]
    assert s.stats()["driver_failed"] == 0 and dev.calls == 3
    assert [s.swap_in(0, o) for o in range(16)] == [p.tobytes() for p in pages]


def test_no_retry_while_a_given_up_call_is_still_stuck(system) -> None:
    """A device marked failed (device_fail_after 1) is not tried again after device_retry_s
    while the call given up on is still in the driver; once it has returned, it is."""
    s = system(_StallsOnce, batching="reclaim", device_timeout_ms=100, device_fail_after=1,
               device_retry_s=0.2)
    dev = s.zswap.backend
    pages = _pages(4)
    try:
        assert s.swap_out_batch(0, [0], pages[:1]) == [True]
        assert s.swap_out_batch(0, [1], pages[1:2]) == [False]  # stalls: failed
        assert s.stats()["driver_failed"] == 1
        time.sleep(0.3)  # past retry_s, the call still stuck: not tried again
        assert s.swap_out_batch(0, [2], pages[2:3]) == [False]
        assert dev.calls == 2 and s.stats()["driver_failed"] == 1
    finally:
        dev.release.set()
    _wait_unstuck(s)
    time.sleep(0.25)  # retry_s from the last look, now that nothing is stuck
    assert s.swap_out_batch(0, [3], pages[3:]) == [True]
    assert dev.calls == 3 and s.stats()["driver_recoveries"] == 1
    assert [s.swap_in(0, o) for o in range(4)] == [p.tobytes() for p in pages]


# -- 4: a decompression that breaks the contract falls back to software where there is one ---------


class _BadDecoder(bd.GoodDriver):
    """LZ4 blocks (``format='lz4'``) whose decompress calls break the contract: ``how`` is
    ``short`` (4095 bytes), ``foreign`` (a KeyError) or ``rows`` (a batch one row short)."""

    name = "review-bad-decoder"
    how = "short"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="review-dev", batch=True, format="lz4")

    def decompress(self, data: Any) -> bytes:
        page = super().decompress(data)
        if self.how == "foreign":
            raise KeyError("dma ring index")
        return page[:-1]

    def decompress_batch(self, items: Any) -> Any:
        if self.how == "foreign":
            raise KeyError("dma ring index")
        if self.how == "rows":
            return np.zeros((len(items) - 1, 4096), np.uint8)
        return [self.decompress(i) for i in items]  # a list: not an array


@pytest.mark.parametrize("how", ["short", "foreign", "rows"])
def test_a_decompression_that_breaks_the_contract_falls_back_to_software(system, how) -> None:
    cls = type(f"Bad_{how}", (_BadDecoder,), {"name": f"review-bad-decoder-{how}", "how": how})
    s = system(cls, batching="reclaim")
    pages = _pages(8)
    assert all(s.swap_out_batch(0, list(range(8)), pages))
    want = [p.tobytes() for p in pages]
    assert s.swap_in_batch(0, list(range(8))) == want
    assert s.swap_in(0, 0) == want[0]
    drv = _driver(s)
    assert drv["sw_fallbacks"] == 9 and drv["failed"] == 0
    bad = {"short": "result_length", "foreign": "exception", "rows": "array_shape"}[how]
    assert drv[f"bad_{bad}"] >= 1
    assert s.stats()["decompress_fail"] == 0


def test_without_a_software_decoder_a_broken_decompression_stays_a_driver_error(system) -> None:
    cls = type("BadNoFormat", (_BadDecoder,), {
        "name": "review-bad-decoder-no-format", "how": "rows",
        "capabilities": property(lambda self: Capabilities(batch=True))})
    s = system(cls, batching="reclaim")
    pages = _pages(4)
    assert all(s.swap_out_batch(0, list(range(4)), pages))
    with pytest.raises(DriverError, match=r"review-bad-decoder-no-format.*decompress_batch: "
                                          r"returned shape \(3, 4096\)"):
        s.swap_in_batch(0, list(range(4)))
    assert _driver(s)["sw_fallbacks"] == 0


class _AsyncShortDecoder(bd._AsyncBase):
    """An asynchronous device (``format='lz4'``) whose decompress ops complete SUCCESS with
    4095 bytes."""

    name = "review-async-short-decoder"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="review-queue", asynchronous=True, format="lz4")

    def decompress(self, data: Any) -> bytes:
        return super().decompress(data)[:-1]


def test_an_async_decompress_op_that_breaks_the_contract_falls_back_to_software(system) -> None:
    s = system(_AsyncShortDecoder, batching="page")
    pages = _pages(3)
    assert all(s.swap_out(0, off, p.tobytes()) for off, p in enumerate(pages))
    assert [s.swap_in(0, off) for off in range(3)] == [p.tobytes() for p in pages]
    assert s.swap_in_batch(0, [0, 1, 2]) == [p.tobytes() for p in pages]
    drv = _driver(s)
    assert drv["sw_fallbacks"] >= 3 and drv["bad_result_length"] >= 3


# -- 5: an op's produced must be len(dst) ------------------------------------------------------------


class _ShortReadBack(bd._AsyncBase):
    """An asynchronous device whose compress ops complete SUCCESS with ``produced`` the full
    length but ``dst`` only its first 10 bytes (a short DMA read-back)."""

    name = "review-short-read-back"

    def poll(self, max_ops: int | None = None) -> list[Any]:
        done = super().poll(max_ops)
        for op in done:
            if op.status is OpStatus.SUCCESS and op.kind is OpKind.COMPRESS:
                op.produced = len(op.dst)
                op.dst = op.dst[:10]
        return done


@pytest.mark.parametrize("batching", ["page", "reclaim", "async"])
def test_an_op_whose_produced_is_not_its_dst_length_is_a_device_error(system, batching) -> None:
    s = system(_ShortReadBack, batching=batching)
    pages = _pages(8)
    s.swap_out_batch(0, list(range(8)), pages)
    s.drain()
    st = s.stats()
    assert st["zswpout"] == 0 and st["reject_compress_fail"] == 8
    assert _driver(s)["bad_result_length"] >= 1
    assert "produced=" in s.zswap.compressor.last_error
    assert [s.swap_in(0, o) for o in range(8)] == [p.tobytes() for p in pages]


# -- 6: one rule for the counts a driver gives (submit's return, batch sizes) ------------------------


class _NumpySubmit(bd._AsyncBase):
    """A queue whose ``submit`` returns ``np.int64`` (a count computed with numpy) and whose
    batch sizes are numpy integers."""

    name = "review-numpy-submit"
    kind: Any = np.int64

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="review-queue", asynchronous=True,
                            preferred_batch=np.int64(4), max_batch=np.int64(64))

    def submit(self, ops: Any) -> Any:
        return self.kind(super().submit(ops))


@pytest.mark.parametrize("batching", ["page", "reclaim", "async"])
def test_submit_returning_a_numpy_integer_works_in_the_kit_and_the_engine(
        system, register, batching) -> None:
    s = system(_NumpySubmit, batching=batching)  # registers it
    if batching == "page":
        run_conformance(_NumpySubmit.name, timeout_s=5.0)  # passes, as the engine takes it
    pages = _pages(8)
    assert all(s.swap_out_batch(0, list(range(8)), pages))
    s.drain()
    assert s.stats()["zswpout"] == 8 and _driver(s)["bad_result_type"] == 0
    assert s.zswap.compressor.max_batch.__class__ is int
    assert [s.swap_in(0, o) for o in range(8)] == [p.tobytes() for p in pages]


def test_submit_returning_a_bool_is_refused_by_the_kit_and_the_engine(system, register) -> None:
    cls = type("BoolSubmit", (_NumpySubmit,), {"name": "review-bool-submit",
                                               "kind": staticmethod(bool)})
    register(cls)
    with pytest.raises(ConformanceError, match=r"submit\(\) of \d+ ops returned True, expected "
                                               r"the number accepted"):
        run_conformance(cls.name, timeout_s=5.0)
    s = system(cls, batching="reclaim")
    assert s.swap_out_batch(0, [0, 1], _pages(2)) == [False, False]
    assert _driver(s)["bad_result_type"] >= 1
    assert "submit: returned True for 2 ops" in s.zswap.compressor.last_error


def test_max_batch_and_preferred_batch_follow_one_integer_rule() -> None:
    from hwzswap.backends.contract import capabilities_problem

    for value in (np.int64(8), np.int32(8), 8):
        assert capabilities_problem(Capabilities(batch=True, max_batch=value,
                                                 preferred_batch=value)) is None
    for value in (True, np.bool_(True), 8.0, "8"):
        assert "max_batch must be" in capabilities_problem(Capabilities(max_batch=value))
        assert "preferred_batch must be" in capabilities_problem(
            Capabilities(preferred_batch=value))


# -- 7: a bytes-like page from decompress is taken without a second call -----------------------------


class _BytearrayDecoder(bd.GoodDriver):
    """A driver without batch calls whose decompress returns a bytearray (allowed: a
    bytes-like object), counting its calls."""

    name = "review-bytearray-decoder"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.decompress_calls = 0

    def decompress(self, data: Any) -> Any:
        self.decompress_calls += 1
        return bytearray(super().decompress(data))


@pytest.mark.parametrize("watchdog", ["auto", "off"])
def test_a_bytearray_page_is_decompressed_once(system, watchdog) -> None:
    s = system(_BytearrayDecoder, batching="reclaim", driver_watchdog=watchdog)
    pages = _pages(8)
    assert all(s.swap_out_batch(0, list(range(8)), pages))
    assert s.swap_in_batch(0, list(range(8))) == [p.tobytes() for p in pages]
    assert s.zswap.backend.decompress_calls == 8  # was 16: each page asked again
    assert all(v == 0 for k, v in _driver(s).items() if k.startswith("bad_"))


# -- 10: poll returns a list or a tuple, in the engine and the kit alike ----------------------------


class _PollsTuple(bd._AsyncBase):
    name = "review-polls-tuple"

    def poll(self, max_ops: int | None = None) -> Any:
        return tuple(super().poll(max_ops))


class _PollsGenerator(bd._AsyncBase):
    name = "review-polls-generator"

    def poll(self, max_ops: int | None = None) -> Any:
        return (op for op in super().poll(max_ops))


def test_poll_returning_a_tuple_passes_the_kit_and_the_engine(system) -> None:
    s = system(_PollsTuple, batching="reclaim")
    run_conformance(_PollsTuple.name, timeout_s=5.0)
    pages = _pages(4)
    assert all(s.swap_out_batch(0, list(range(4)), pages))
    assert [s.swap_in(0, o) for o in range(4)] == [p.tobytes() for p in pages]


def test_poll_returning_a_generator_fails_the_kit_and_the_engine(system) -> None:
    s = system(_PollsGenerator, batching="reclaim")
    with pytest.raises(ConformanceError, match=r"poll\(\) returned generator, expected a list "
                                               r"\(or a tuple\)"):
        run_conformance(_PollsGenerator.name, timeout_s=5.0)
    pages = _pages(2)
    assert s.swap_out_batch(0, [0, 1], pages) == [False, False]  # to the swap device
    assert _driver(s)["bad_result_type"] >= 1
    assert re.search(r"poll: returned generator; expected a list \(or a tuple\) of the "
                     r"completed ops", s.zswap.compressor.last_error)
    assert [s.swap_in(0, o) for o in range(2)] == [p.tobytes() for p in pages]
