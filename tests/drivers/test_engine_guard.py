"""Each broken driver through the whole engine (open_zswap, swap_out, swap_in): a clear error or a
counter, no page lost, nothing hangs (issue 13's table, engine side)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from hwzswap.backends.contract import CompOp, OpStatus
from hwzswap.errors import BackendError, DriverError, HwzswapError
from hwzswap.frontswap.system import SwapSystem, open_zswap
from hwzswap.testing import real_memory_mix

import broken_drivers as bd
from helpers import engine_config

PAGE = 4096


def _pages(n: int, seed: int = 1) -> np.ndarray:
    """``n`` distinct pages that lz4 compresses well below zswap's 80% rule, not same-filled."""
    out = []
    for row in real_memory_mix(8 * n, seed):
        words = row.view(np.uint64)
        if (words == words[0]).all() or len(bd._lz4(row) or bytes(PAGE)) > 3000:
            continue
        if any(np.array_equal(row, o) for o in out):
            continue
        out.append(row)
        if len(out) == n:
            return np.stack(out)
    raise AssertionError("not enough distinct compressible pages")


def _bounded(fn: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Run ``fn`` in a daemon thread: the test fails (instead of hanging) when it does not
    return within ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"the engine hung for {seconds} s"
    if "exc" in box:
        raise box["exc"]
    return box.get("value")


def _driver(s: SwapSystem) -> dict[str, Any]:
    """The engine's per-kind driver counters (``stats()["driver_<kind>"]``)."""
    st = s.stats()
    out = {k[len("driver_"):]: v for k, v in st.items() if k.startswith("driver_")}
    assert out, f"stats() has no driver_* counters: {sorted(st)}"
    return out


def _held_or_written(s: SwapSystem, pages: np.ndarray, results: list[bool]) -> None:
    """Every page comes back byte-exact, from zswap or from the swap file."""
    for off, page in enumerate(pages):
        assert s.swap_in(0, off) == page.tobytes(), f"page {off} lost (stored={results[off]})"


MODES = ["page", "reclaim", "async"]


# -- rows 1 and 2: decompress returns 4095 bytes / wrong bytes ------------------------------------


@pytest.mark.parametrize("batching", MODES)
def test_short_decompress_is_a_driver_error(system, batching) -> None:
    s = system(bd.ShortDecompress, batching=batching)
    page = _pages(1)[0]
    assert s.swap_out(0, 3, page.tobytes()) is True
    s.drain()
    with pytest.raises(DriverError, match=r"broken-short-decompress.*decompress.*4095"):
        s.swap_in(0, 3)
    assert _driver(s)["bad_result_length"] >= 1


def test_flipped_bytes_caught_by_verify_pages(system) -> None:
    s = system(bd.FlippedDecompress, verify_pages=True)
    page = _pages(1)[0]
    assert s.swap_out(0, 3, page.tobytes()) is True
    with pytest.raises(HwzswapError, match=r"broken-flipped-decompress.*verify_pages"):
        s.swap_in(0, 3)
    assert s.stats()["verify_fail"] == 1
    with pytest.raises(HwzswapError, match="verify_pages"):  # the batch path checks too
        s.swap_in_batch(0, [3])


# -- rows 3 and 4: compress returns 5000 bytes / a str ---------------------------------------------


@pytest.mark.parametrize("cls", [bd.BigCompress, bd.StrCompress], ids=lambda c: c.name)
@pytest.mark.parametrize("batching", MODES)
def test_bad_compress_result_rejected_not_poor(system, cls, batching) -> None:
    s = system(cls, batching=batching)
    pages = _pages(8)
    results = [s.swap_out(0, off, p.tobytes()) for off, p in enumerate(pages)]
    s.drain()
    st = s.stats()
    assert st["reject_compress_poor"] == 0, "a driver bug counted as incompressible data"
    assert st["reject_compress_fail"] == 8
    assert _driver(s)["bad_result_type" if cls is bd.StrCompress else "bad_result_length"] >= 1
    _held_or_written(s, pages, results)


# -- rows 5 and 6: batch calls with N-1 items ---------------------------------------------------------


@pytest.mark.parametrize("batching", ["reclaim", "async"])
def test_short_compress_batch(system, batching) -> None:
    s = system(bd.ShortCompressBatch, batching=batching)
    pages = _pages(32)
    results = s.swap_out_batch(0, list(range(32)), pages)
    s.drain()
    assert _driver(s)["bad_item_count"] >= 1
    assert s.stats()["reject_compress_fail"] == 32
    _held_or_written(s, pages, results)


def test_short_decompress_batch_is_counted(system) -> None:
    s = system(bd.ShortDecompressBatch)
    pages = _pages(16)
    assert all(s.swap_out_batch(0, list(range(16)), pages))
    try:
        got = s.swap_in_batch(0, list(range(16)))
    except DriverError as exc:
        assert "broken-short-decompress-batch" in str(exc) and "decompress_batch" in str(exc)
    else:  # a fallback is fine, if it is counted and every page is right
        assert got == [p.tobytes() for p in pages]
    assert _driver(s)["bad_array_shape"] >= 1


# -- row 7: a device that never completes -------------------------------------------------------------


def test_stuck_poll_times_out_and_loses_nothing(system) -> None:
    s = system(bd.StuckPoll, batching="async", device_timeout_ms=50, device_fail_after=2)
    pages = _pages(24)

    def run() -> list[bool]:
        res = []
        for k in range(0, 24, 8):
            res += s.swap_out_batch(0, list(range(k, k + 8)), pages[k:k + 8])
        s.drain()
        return res

    results = _bounded(run)
    drv = _driver(s)
    assert drv["timeouts"] >= 1
    assert s.stats()["reject_compress_fail"] >= 1
    _bounded(lambda: _held_or_written(s, pages, results))


def test_hung_device_async_mode_never_hangs(system) -> None:
    s = system(bd.HungDevice, batching="async", device_timeout_ms=50)
    pages = _pages(8)
    results = _bounded(lambda: s.swap_out_batch(0, list(range(8)), pages), 10)
    _bounded(s.drain, 10)
    _bounded(lambda: _held_or_written(s, pages, results), 10)
    assert _driver(s)["timeouts"] >= 1


class _LateWriterSeen(bd.LateWriter):
    """LateWriter that keeps the ops it was given, so a test can see its late writes land."""

    name = "test-late-writer-seen"
    given: ClassVar[list[CompOp]] = []

    def submit(self, ops: Any) -> int:
        n = super().submit(ops)
        _LateWriterSeen.given.extend(ops[:n])
        return n


def test_a_device_writing_ops_after_their_deadline_cannot_change_the_results(system) -> None:
    """Ops given up at the deadline are the engine's: the device writes only its own copies,
    so its late "SUCCESS" never turns a timed-out op into a result."""
    _LateWriterSeen.given.clear()
    s = system(_LateWriterSeen, batching="async", device_timeout_ms=50)
    pages = _pages(4)
    ops = [CompOp.compress(row) for row in pages]
    _bounded(lambda: s.zswap.compressor.run_ops(ops), 10)
    timed_out = [(op.status, op.dst, op.produced) for op in ops]
    assert timed_out == [(OpStatus.DEVICE_ERROR, None, 0)] * 4
    given = list(_LateWriterSeen.given)
    assert len(given) >= 4  # every page went to the device
    late = (OpStatus.SUCCESS, b"late garbage", 12)
    deadline = time.monotonic() + 30  # it writes 0.2 s after submit: wait for it, not a guess
    while any((op.status, op.dst, op.produced) != late for op in given):
        assert time.monotonic() < deadline, "the device never wrote its late results"
        time.sleep(0.01)
    assert [(op.status, op.dst, op.produced) for op in ops] == timed_out
    results = _bounded(lambda: s.swap_out_batch(0, list(range(4)), pages), 10)
    _bounded(s.drain, 10)
    _bounded(lambda: _held_or_written(s, pages, results), 10)


# -- rows 8 and 9: constructors -----------------------------------------------------------------------


def test_constructor_exception_is_a_backend_error(tmp_path: Path, register) -> None:
    register(bd.InitRaises)
    with pytest.raises(BackendError, match=r"broken-init-raises.*RuntimeError: firmware image not found"):
        open_zswap(engine_config(tmp_path, "broken-init-raises"))


# -- row 10: device errors at a rate ----------------------------------------------------------------


@pytest.mark.parametrize("batching", MODES)
def test_compress_faults_are_counted_and_lose_nothing(system, batching) -> None:
    s = system(bd.FaultyDriver, {"fault_rate": 0.3, "fault_ops": "compress", "queue_depth": 4},
               batching=batching)
    pages = _pages(64)
    results: list[bool] = []
    for k in range(0, 64, 16):
        results += s.swap_out_batch(0, list(range(k, k + 16)), pages[k:k + 16])
    s.drain()
    st = s.stats()
    assert 0 < st["reject_compress_fail"] < 64
    assert _driver(s)["device_errors"] + _driver(s)["item_failures"] >= 1
    _held_or_written(s, pages, results)


def test_decompress_faults_give_a_clear_error_or_the_page(system) -> None:
    s = system(bd.FaultyDriver, {"fault_rate": 0.3, "fault_ops": "decompress"})
    pages = _pages(32)
    assert all(s.swap_out(0, off, p.tobytes()) for off, p in enumerate(pages))
    errors = 0
    for off, p in enumerate(pages):
        try:
            assert s.swap_in(0, off) == p.tobytes()
        except HwzswapError as exc:
            assert "test-faulty" in str(exc)
            errors += 1
    assert errors > 0 and _driver(s)["device_errors"] >= errors
