"""The bench's calls into a driver outside the measured engine path (``counters()``,
``modeled_device_us()``, ``describe()``, ``close()``) cannot hang ``hwzswap bench``: real
drivers whose calls block on an event set only at teardown, run through the CLI with a small
``zswap.device_timeout_ms``; the JSON is written and the exit status follows the README's rule.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from helpers import bench_driver

from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.bench.runner import DriverCalls, base_config
from hwzswap.errors import DeviceTimeoutError

RELEASE = threading.Event()  # set at teardown: every call stuck in a driver here returns


@pytest.fixture(autouse=True)
def _release_stuck_calls() -> Any:
    RELEASE.clear()
    yield
    RELEASE.set()


def _bench(cls: type, tmp_path: Path, modes: str = "reclaim", ms: float = 50,
           extra: str = "") -> tuple[int, dict[str, Any], float]:
    """``hwzswap bench`` on ``cls`` with a ``ms`` device deadline (see
    :func:`helpers.bench_driver`): (exit status, JSON, seconds)."""
    return bench_driver(cls, tmp_path, f"zswap:\n  device_timeout_ms: {ms}\n{extra}", modes)


class HangsInCounters(Lz4Backend):
    """lz4 whose ``counters()`` blocks (until the test ends) from its 4th call on."""

    name = "test-calls-hang-counters"
    reads: ClassVar[int] = 0

    def counters(self) -> dict[str, Any]:
        HangsInCounters.reads += 1
        if HangsInCounters.reads > 3:
            RELEASE.wait()
        return {"reads": HangsInCounters.reads}


class HangsInClose(Lz4Backend):
    """lz4 whose ``close()`` blocks until the test ends (a wedged device)."""

    name = "test-calls-hang-close"

    def close(self) -> None:
        RELEASE.wait()


class HangsInModeledTime(Nx842Backend):
    """The emulated NX-842 whose ``modeled_device_us()`` blocks (until the test ends) from its
    6th call on: in the middle of the stack's first chunk."""

    name = "test-calls-hang-modeled"
    reads: ClassVar[int] = 0

    def modeled_device_us(self) -> float:
        HangsInModeledTime.reads += 1
        if HangsInModeledTime.reads > 5:
            RELEASE.wait()
        return super().modeled_device_us()


def test_a_counters_call_that_hangs_leaves_an_error_note_and_the_rows_are_written(
        tmp_path: Path) -> None:
    """It hung ``hwzswap bench`` for ever (runner ``_safe_counters``, on the main thread).
    Both engine modes still run and verify every page; their counters say why they are
    missing; the backend cannot be closed while the counters call is still in the driver,
    which is a failure (exit 1)."""
    HangsInCounters.reads = 0
    rc, doc, took = _bench(HangsInCounters, tmp_path, modes="reclaim,page")
    assert rc == 1
    assert [(r["batching"], r["verified_pages"], r["mismatches"]) for r in doc["results"]] == \
        [("reclaim", 64, 0), ("page", 64, 0)]
    # the first row's counts cover the stretches read before the hang, and say so
    assert "stretches left out, a counters() read failed" in \
        doc["results"][0]["backend_counters"]["error"]
    for r in doc["results"]:
        note = r["backend_counters"]["error"]
        assert "DeviceTimeoutError: counters() not called: an earlier call given up on is " \
            "still in the driver" in note
        assert "counters did not return within 50 ms (zswap.device_timeout_ms)" in note
        assert "stuck in counters() at test_driver_calls_deadline.py:" in note
    (f,) = doc["failed"]
    assert f["phase"] == "close" and f["backend"] == HangsInCounters.name
    assert f["error"].startswith("DeviceTimeoutError: close() not called")
    assert took < 20.0


def test_a_close_that_hangs_is_a_failure_and_the_results_are_still_written(
        tmp_path: Path) -> None:
    """It hung the bench after every row was measured (``backend.close()``), the JSON never
    written."""
    rc, doc, took = _bench(HangsInClose, tmp_path)
    assert rc == 1
    (r,) = doc["results"]
    assert r["verified_pages"] == 64 and not r["mismatches"] and not r["device_failed"]
    (f,) = doc["failed"]
    assert f["phase"] == "close" and f["backend"] == HangsInClose.name
    assert "close did not return within 50 ms (zswap.device_timeout_ms)" in f["error"]
    assert "stuck in close() at test_driver_calls_deadline.py:" in f["error"]
    assert took < 20.0


def test_a_modeled_time_read_that_hangs_fails_its_row(tmp_path: Path) -> None:
    """The reads of a modelled driver's time between the stack's ops are bounded too: the
    row fails (phase ``run``), naming the call, and the document is written."""
    HangsInModeledTime.reads = 0
    # 1 s: the emulation's first call loads modules (the warm-up's codec calls are bounded)
    rc, doc, took = _bench(HangsInModeledTime, tmp_path, ms=1000, extra="  compressor:\n    name: "
                           f"{HangsInModeledTime.name}\n    params: {{clock: virtual}}\n")
    assert rc == 1 and not doc["results"]
    run, close = doc["failed"]
    assert run["phase"] == "run"
    assert "modeled_device_us did not return within 1000 ms" in run["error"]
    assert close["phase"] == "close" and "close() not called" in close["error"]
    assert took < 20.0


def test_only_the_drivers_the_engine_watches_get_the_deadline() -> None:
    """``zswap.driver_watchdog`` decides, as for the engine's calls: ``auto`` watches a driver
    from outside the package (a built-in is called directly, with no thread hand-off), ``on``
    every driver, ``off`` none."""
    outside, builtin = HangsInClose(), Lz4Backend()
    try:
        cases = {("auto", outside): True, ("auto", builtin): False,
                 ("on", builtin): True, ("off", outside): False}
        for (mode, backend), watched in cases.items():
            calls = DriverCalls(backend)
            calls.configure(base_config({"zswap": {"driver_watchdog": mode,
                                                   "device_timeout_ms": 30}}))
            assert (calls.guard is not None) is watched, (mode, backend.name)
            calls.end()
        calls = DriverCalls(outside)
        calls.configure(base_config({"zswap": {"device_timeout_ms": 30}}))
        with pytest.raises(DeviceTimeoutError, match="close did not return within 30 ms"):
            calls.call(outside.close)
        assert "not called" in calls.counters()["error"]  # refused at once while stuck
        calls.end()
    finally:
        RELEASE.set()
        builtin.close()
