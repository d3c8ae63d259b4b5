"""``842-nx`` calls that end early or wait: batch calls that raise part-way, poll's bounded wait
and the engine's deadline, the driver's own completion timeout, one call at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwzswap import open_zswap
from hwzswap.backends.contract import CompOp, OpStatus
from hwzswap.backends.nx842 import HANG
from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.errors import DeviceError, DeviceTimeoutError, InvalidInputError
from hwzswap.frontswap.compressor import Compressor
from hwzswap.backends.sw842.backend import Sw842Backend
from hwzswap.testing import real_memory_mix

_MIX = real_memory_mix(64, seed=2)
#: 24 real-memory pages that 842 shrinks
PAGES = np.ascontiguousarray(
    _MIX[[i for i, p in enumerate(_MIX) if Sw842Backend().compress(p) is not None][:24]])
CLOCKS = ("virtual", "host", "realtime")


class Interrupt(BaseException):
    """Stands in for Ctrl-C (KeyboardInterrupt) reaching a batch call part-way."""


class InterruptedItems(Sequence[Any]):
    """Compressed items whose ``k``-th access raises :class:`Interrupt`: the batch call has
    submitted the items before it when it is interrupted."""

    def __init__(self, items: list[bytes], k: int) -> None:
        self.items, self.k = items, k

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        if i == self.k:
            raise Interrupt()
        return self.items[i]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))


@pytest.fixture(params=CLOCKS)
def nx(request: pytest.FixtureRequest) -> Iterator[Nx842Backend]:
    b = Nx842Backend(clock=request.param, queue_depth=8)
    try:
        yield b
    finally:
        b.close()


def compressed(b: Nx842Backend) -> list[bytes]:
    out = [b.compress(p) for p in PAGES]
    assert all(isinstance(x, bytes) for x in out)
    return out  # type: ignore[return-value]


def settled(b: Nx842Backend) -> None:
    """Nothing queued, nothing for poll, every slot free (a realtime request left behind by
    an interrupted call is dropped by the next reap)."""
    assert b.poll() == [] and b.pending() == 0
    assert len(b._free) == b.params["queue_depth"]  # noqa: SLF001


# -- a batch call that raises part-way --------------------------------------------------------


def test_a_batch_call_interrupted_part_way_leaves_nothing_for_the_next(nx: Nx842Backend) -> None:
    """The interrupted call's requests are its own: the next batch calls get their own rows
    (none of the first call's pages, no garbage), and nothing stays queued."""
    comp = compressed(nx)
    with pytest.raises(Interrupt):
        nx.decompress_batch(InterruptedItems(comp[:8], k=6))  # 6 requests in flight
    out = nx.decompress_batch(comp[8:16])
    assert out.tobytes() == PAGES[8:16].tobytes()
    with pytest.raises(Interrupt):
        nx.decompress_batch(InterruptedItems(comp[:12], k=10))  # more items than slots
    items = nx.compress_batch(PAGES[:8])
    assert items == comp[:8]  # no row taken for "incompressible" from a stale completion
    assert nx.decompress_batch(comp[16:]).tobytes() == PAGES[16:].tobytes()
    settled(nx)


def test_a_strided_item_is_a_bad_item_of_its_batch_and_changes_nothing_after(
        nx: Nx842Backend) -> None:
    """A non-contiguous item (9 bytes, so the software path; or 16, so the engine's) is the
    batch's InvalidInputError naming it (as on every backend), raised only once the batch's
    other requests are finished; the next calls are right."""
    comp = compressed(nx)
    for bad in (memoryview(bytes(range(18)))[::2], memoryview(bytes(32))[::2]):
        with pytest.raises(InvalidInputError, match="item 7: .*contiguous"):
            nx.decompress_batch(comp[:7] + [bad])
        assert nx.decompress_batch(comp[8:16]).tobytes() == PAGES[8:16].tobytes()
        settled(nx)
    op = CompOp.decompress(memoryview(bytes(32))[::2])
    assert nx.submit([op]) == 1
    (done,) = nx.poll()
    assert done is op and op.status is OpStatus.INVALID_INPUT and "contiguous" in op.error
    settled(nx)


# -- the driver's completion timeout; poll's bounded wait --------------------------------------


def test_a_request_that_never_completes_is_a_device_timeout() -> None:
    b = Nx842Backend(timeout_ms=2.0)
    b.inject(HANG, "compress")
    with pytest.raises(DeviceTimeoutError, match="did not complete within 2 ms"):
        b.compress(PAGES[0])
    b.inject(HANG, "compress")
    items = b.compress_batch(PAGES[:4])
    assert isinstance(items[0], DeviceTimeoutError)
    assert all(isinstance(x, bytes) for x in items[1:])
    assert b.capabilities.timeout_ms == 2.0  # the engine's default deadline is the driver's
    assert b.counters()["timeouts"] == 2


@pytest.mark.parametrize("clock", CLOCKS)
def test_poll_returns_without_waiting_for_a_hung_request(clock: str) -> None:
    """poll waits a bounded time and may return nothing (the contract's poll): a hung request
    stays pending until the driver's own timeout, which then completes it as DEVICE_ERROR."""
    b = Nx842Backend(clock=clock, timeout_ms=300.0)
    try:
        b.inject(HANG, "compress")
        hung, ok = CompOp.compress(PAGES[0]), CompOp.compress(PAGES[1])
        assert b.submit([hung, ok]) == 2
        got: list[CompOp] = []
        while ok not in got:
            got += b.poll()
        assert got == [ok] and ok.status is OpStatus.SUCCESS
        assert b.poll() == [] and b.pending() == 1  # the hung one: not yet
        while not got[1:]:
            got += b.poll()
        assert got[1] is hung and hung.status is OpStatus.DEVICE_ERROR
        assert "did not complete within 300 ms" in hung.error
    finally:
        b.close()


def test_poll_on_a_slow_realtime_device_returns_nothing_yet() -> None:
    b = Nx842Backend(clock="realtime", comp_setup_us=2_000_000.0)
    try:
        op = CompOp.compress(PAGES[0])
        assert b.submit([op]) == 1
        assert b.poll() == [] and b.pending() == 1 and not op.done
    finally:
        b.close()  # stops pacing: the request completes at once
    done = b.poll()
    while b.pending():
        done += b.poll()
    assert done == [op] and op.status is OpStatus.SUCCESS


# -- the engine's deadline and device_fail_after -----------------------------------------------


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_the_engine_times_out_a_hung_device_and_marks_it_failed(tmp_path: Path,
                                                                 clock: str) -> None:
    """zswap.device_timeout_ms and device_fail_after work on 842-nx: each hung request is a
    timeout at the engine's deadline (not a device error after the driver's 5 s), two in a
    row mark the device failed, and every page comes back byte for byte (software 842 decodes
    the pool's objects once the device is marked failed)."""
    b = Nx842Backend(clock=clock, timeout_ms=400.0)
    s = open_zswap({"zswap": {"compressor": "842-nx", "batching": "page",
                              "device_timeout_ms": 30, "device_fail_after": 2},
                    "swap": {"nr_pages": 16, "path": str(tmp_path / "swap.img")}}, backend=b)
    try:
        pages = [p.tobytes() for p in PAGES[:6]]
        assert s.swap_out(0, 0, pages[0]) is True
        b.inject(HANG, "compress", 2)
        assert s.swap_out(0, 1, pages[1]) is False  # timed out: to the swap device
        st = s.stats()
        assert st["driver_timeouts"] == 1 and not st["driver_failed"]
        assert s.swap_out(0, 2, pages[2]) is False
        st = s.stats()
        assert st["driver_timeouts"] == 2 and st["driver_failed"]
        assert st["driver_device_errors"] == 0
        for off in range(3, 6):
            assert s.swap_out(0, off, pages[off]) is False  # refused at once
        for off, page in enumerate(pages):
            assert s.swap_in(0, off) == page
        assert s.stats()["driver_timeouts"] == 2
    finally:
        s.close()
        b.close()


# -- one call at a time -------------------------------------------------------------------------


def test_a_call_given_up_by_the_watchdog_keeps_the_driver_to_itself() -> None:
    """zswap.driver_watchdog: on gives a call up at its deadline while it still runs inside the
    driver. The next calls are not made (the watchdog refuses them at once: counted as refused,
    not as timeouts),
    submit answers BUSY and poll nothing meanwhile; once it returns, the driver works."""
    b = Nx842Backend(clock="realtime", comp_setup_us=300_000.0)
    c = Compressor(b, timeout_ms=20, fail_after=8, watchdog="on")
    try:
        with pytest.raises(DeviceTimeoutError):
            c.compress(PAGES[0].tobytes())
        assert c.watchdog is not None and c.watchdog.stuck()
        op = CompOp.compress(PAGES[1])
        assert b.submit([op]) == 0 and op.status is OpStatus.BUSY  # not beside the stuck call
        assert b.poll() == []
        with pytest.raises(DeviceTimeoutError):
            c.compress(PAGES[2].tobytes())  # not made while the first is stuck
        assert c.timeouts == 1 and c.refused_stuck == 1 and c.device_errors == 0
        deadline = time.monotonic() + 10
        while c.watchdog.stuck() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not c.watchdog.stuck()
        assert b.counters()["comp_complete"] == 1  # the first ran; the second was not made
        assert b.submit([op]) == 1
        got = b.poll()
        while not got:
            got = b.poll()
        assert got == [op] and op.status is OpStatus.SUCCESS
        settled(b)
    finally:
        c.close()
        b.close()


def test_a_call_waits_for_an_earlier_one_at_most_the_driver_timeout() -> None:
    """A synchronous call that meets an earlier call still inside the driver waits at most
    ``timeout_ms`` for it, then raises DeviceError saying so. (The earlier call is a batch of
    16 requests of 20 ms, one at a time: each within the 30 ms, the call about 320 ms.)"""
    b = Nx842Backend(clock="realtime", comp_setup_us=20_000.0, timeout_ms=30.0, engines=1,
                     queue_depth=1)
    first = threading.Thread(target=b.compress_batch, args=(PAGES[:16],))
    try:
        first.start()
        while not b.pending() and b._queue.inflight() == 0:  # noqa: SLF001
            time.sleep(0.001)
        with pytest.raises(DeviceError, match="earlier call is still inside the driver"):
            b.decompress(b"\0" * 8)
    finally:
        first.join(10)
        b.close()
    assert not first.is_alive() and b.counters()["comp_complete"] == 16
    assert b.counters()["timeouts"] == 0


def test_a_load_is_not_held_up_by_a_batch_call_given_up_inside_the_driver(tmp_path: Path) -> None:
    """async mode on the realtime clock: the pipeline gives a compress_batch with a hung request
    up at zswap.device_timeout_ms while it is still inside the driver. A load meanwhile gets
    its page (the device's submit answers BUSY until its deadline, then software 842 decodes
    it) while the hung request is still in flight: the driver serialises itself with bounded
    waits (``concurrent``), so the engine holds no lock of its own across the stuck call."""
    b = Nx842Backend(clock="realtime", timeout_ms=1000.0)
    assert b.capabilities.concurrent
    s = open_zswap({"zswap": {"compressor": "842-nx", "batching": "async",
                              "device_timeout_ms": 30, "device_fail_after": 8},
                    "swap": {"nr_pages": 16, "path": str(tmp_path / "swap.img")}}, backend=b)
    try:
        s.swap_out_batch(0, [0, 1], PAGES[:2])
        s.drain()
        b.inject(HANG, "compress")
        s.swap_out_batch(0, [2, 3], PAGES[2:4])
        while not b._queue.inflight():  # noqa: SLF001 - the hung request has been submitted
            time.sleep(0.001)
        assert s.swap_in(0, 0) == PAGES[0].tobytes()
        assert b._queue.inflight() == 1  # noqa: SLF001 - still hung: the load did not wait
    finally:
        s.close()
        b.close()
    # (closing stops the engines' pacing, so the hung request ends at once)
