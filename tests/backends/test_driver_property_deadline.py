"""A driver from outside the package whose ``capabilities`` getter, or whose ``close()`` once
it was refused, never returns: the registry gives each a deadline (``DRIVER_CALL_TIMEOUT_S``,
shortened here), so ``open_zswap``, the engine and ``hwzswap bench`` end with a DriverError
naming the driver and saying what to do, never hang. Real drivers registered in-process; their
blocked calls wait on an event set when each test ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import hwzswap
from helpers import bench_driver

from hwzswap.backends import registry
from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import close_backend, read_capabilities, registered
from hwzswap.errors import DriverError
from hwzswap.frontswap.compressor import Compressor

RELEASE = threading.Event()  # set when a test ends: every call blocked in a driver returns
DEADLINE_S = 0.3


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    RELEASE.clear()
    monkeypatch.setattr(registry, "DRIVER_CALL_TIMEOUT_S", DEADLINE_S)
    try:
        yield
    finally:
        RELEASE.set()


class HungCaps(Lz4Backend):
    """lz4 whose ``capabilities`` probes a device that never answers; its ``close`` works."""

    name = "test-hung-caps"
    closes: ClassVar[int] = 0

    @property
    def capabilities(self) -> Capabilities:
        RELEASE.wait(30)
        return Capabilities(concurrent=True)

    def close(self) -> None:
        type(self).closes += 1


class RefusedHungClose(Lz4Backend):
    """lz4 with capabilities the engine refuses (``preferred_batch`` 0) and a ``close`` that
    blocks (a wedged device)."""

    name = "test-refused-hung-close"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(preferred_batch=0)

    def close(self) -> None:
        RELEASE.wait(30)


class HungClose(Lz4Backend):
    """A working lz4 driver whose ``close`` blocks."""

    name = "test-hung-close"

    def close(self) -> None:
        RELEASE.wait(30)


class CountsReads(Lz4Backend):
    """A working driver that counts the reads of its ``capabilities``."""

    name = "test-counts-cap-reads"
    reads: ClassVar[int] = 0

    @property
    def capabilities(self) -> Capabilities:
        type(self).reads += 1
        return Capabilities(concurrent=True)


def _timed(fn: Any) -> tuple[BaseException, float]:
    """The error ``fn()`` raises and the seconds it took."""
    t0 = time.monotonic()
    with pytest.raises(BaseException) as info:
        fn()
    return info.value, time.monotonic() - t0


def test_a_capabilities_getter_that_hangs_is_a_driver_error_at_the_deadline() -> None:
    backend = HungCaps()
    err, took = _timed(lambda: read_capabilities(backend))
    assert isinstance(err, DriverError)
    assert str(err).startswith("driver 'test-hung-caps': reading its capabilities did not "
                               "return within 0.3 s; given up")
    assert "HungCaps" in str(err) and "choose another compressor" in str(err)
    assert took < 5
    # the engine's own read is the same one
    err, took = _timed(lambda: Compressor(HungCaps()))
    assert isinstance(err, DriverError) and "did not return within 0.3 s" in str(err)
    assert took < 5


def test_no_second_call_enters_a_driver_beside_a_stuck_getter() -> None:
    """While the given-up read is still in the driver, a close (or another read) is not made:
    a DriverError saying why and what to do, at once, not a second stuck thread."""
    backend = HungCaps()
    with pytest.raises(DriverError):
        read_capabilities(backend)
    for call in (lambda: close_backend(backend), lambda: read_capabilities(backend)):
        with pytest.raises(DriverError, match=r"^driver 'test-hung-caps': .* not made: reading "
                                              r"its capabilities, given up at its deadline, is "
                                              r"still running in the driver .*restart the "
                                              r"process"):
            call()
    assert HungCaps.closes == 0
    RELEASE.set()  # the getter returns: the driver gets calls again
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            close_backend(backend)
            break
        except DriverError:
            time.sleep(0.01)
    assert HungCaps.closes == 1


def test_open_zswap_on_a_driver_whose_capabilities_hang_ends_with_a_clear_error() -> None:
    HungCaps.closes = 0
    with registered(HungCaps):
        err, took = _timed(lambda: hwzswap.open_zswap(
            {"zswap": {"compressor": HungCaps.name}, "swap": {"nr_pages": 16}}))
    assert isinstance(err, DriverError)
    assert "driver 'test-hung-caps': reading its capabilities did not return within 0.3 s" \
        in str(err)
    # undoing the open does not call close beside the stuck getter, and says so
    assert any("close() not made: reading its capabilities" in n
               for n in getattr(err, "__notes__", []))
    assert took < 5


def test_a_refused_driver_whose_close_hangs_is_closed_under_the_deadline() -> None:
    """The engine refuses the driver's capabilities; closing it while undoing the open hangs:
    the user sees the refusal, with the close's own DriverError as a note, at the deadline."""
    with registered(RefusedHungClose):
        err, took = _timed(lambda: hwzswap.open_zswap(
            {"zswap": {"compressor": RefusedHungClose.name}, "swap": {"nr_pages": 16}}))
    assert isinstance(err, DriverError)
    assert str(err).startswith("driver 'test-refused-hung-close': capabilities.preferred_batch "
                               "must be an int >= 1")
    notes = getattr(err, "__notes__", [])
    assert any("driver 'test-refused-hung-close': close() did not return within 0.3 s; given "
               "up" in n and "RefusedHungClose" in n for n in notes), notes
    assert took < 5


def test_a_swap_system_whose_driver_close_hangs_closes_the_rest_and_says_so() -> None:
    with registered(HungClose):
        swap = hwzswap.open_zswap({"zswap": {"compressor": HungClose.name},
                                   "swap": {"nr_pages": 16}})
        page = bytes(range(256)) * 16
        assert swap.swap_out(0, 1, page) and swap.swap_in(0, 1) == page
        dev = swap.devices[0]
        err, took = _timed(swap.close)
    assert isinstance(err, DriverError)
    assert "driver 'test-hung-close': close() did not return within 0.3 s" in str(err)
    assert "may still hold its device or memory: restart the process" in str(err)
    assert dev.closed and took < 5
    swap.close()  # idempotent: the driver is not asked again


def test_capabilities_are_read_once_per_engine_not_on_the_hot_path() -> None:
    CountsReads.reads = 0
    with registered(CountsReads):
        with hwzswap.open_zswap({"zswap": {"compressor": CountsReads.name},
                                 "swap": {"nr_pages": 64}}) as swap:
            pages = [bytes([i]) * 2048 + bytes(2048) for i in range(32)]
            for i, page in enumerate(pages):
                assert swap.swap_out(0, i, page)
            assert [swap.swap_in(0, i) for i in range(32)] == pages
            assert swap.zswap.compressor.capabilities == Capabilities(concurrent=True)
    assert CountsReads.reads == 1


def _bench(cls: type, tmp_path: Path) -> tuple[int, dict[str, Any], float]:
    """``hwzswap bench`` on ``cls`` in reclaim and page mode (see
    :func:`helpers.bench_driver`): (exit status, JSON, seconds)."""
    return bench_driver(cls, tmp_path, "zswap:\n  device_timeout_ms: 200\n", "reclaim,page")


def test_the_bench_ends_on_a_driver_whose_capabilities_hang(tmp_path: Path) -> None:
    """Each mode's row fails (phase run) naming the getter; the close is not made beside it
    (phase close); the results are written, exit 1. One deadline in all, not one a mode."""
    rc, doc, took = _bench(HungCaps, tmp_path)
    assert rc == 1 and doc["results"] == []
    runs = [f for f in doc["failed"] if f["phase"] == "run"]
    assert [f["batching"] for f in runs] == ["reclaim", "page"]
    assert "reading its capabilities did not return within 0.3 s" in runs[0]["error"]
    assert "not made: reading its capabilities" in runs[1]["error"]
    (close,) = [f for f in doc["failed"] if f["phase"] == "close"]
    assert close["error"].startswith("DriverError: driver 'test-hung-caps': close() not made")
    assert took < 30


def test_the_bench_closes_a_refused_driver_under_the_deadline(tmp_path: Path) -> None:
    rc, doc, took = _bench(RefusedHungClose, tmp_path)
    assert rc == 1 and doc["results"] == []
    runs = [f for f in doc["failed"] if f["phase"] == "run"]
    assert len(runs) == 2 and all("capabilities.preferred_batch must be an int >= 1"
                                  in f["error"] for f in runs)
    (close,) = [f for f in doc["failed"] if f["phase"] == "close"]
    assert close["error"].startswith("DriverError: driver 'test-refused-hung-close': close() "
                                     "did not return within 0.3 s")
    assert took < 30
