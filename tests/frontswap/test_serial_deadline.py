"""One hung device call must not wedge the swap system (``Compressor._serial``).

A driver called directly (a built-in under ``driver_watchdog: auto``; here ``off``) that is not
``concurrent`` has its calls serialised by one lock. A ``compress_batch`` that hangs on async
mode's worker used to keep that lock after the pipeline had given the call up: the next load,
which waits for the device under zswap's tree lock, then waited as long as the hung call, and
so did the completion of the failed batch (it needs the tree lock), ``drain`` and ``stats``.
Now a call waits for the device no longer than its own deadline, and not at all behind a call
past its deadline: it is refused (``driver_refused_stuck``), the store rejected and a load
decoded in software (the driver's format) or failed with a DeviceError, the entry kept.

The drivers are real lz4 with one call that blocks until the test releases it; deadlines are
short, and the only time bound asserted is a generous "finishes well before the hung call".
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import DeviceError, DeviceTimeoutError
from hwzswap.frontswap import pipeline
from hwzswap.frontswap.compressor import Compressor

from fsutil import PAGE, compressible_pages

DEADLINE_MS = 150
BOUND_S = 5.0  # "well before the hung call": the test releases it only afterwards


class HangsOnce(Lz4Backend):
    """lz4 whose next ``compress_batch`` (or ``compress``) after ``arm()`` blocks until
    ``release`` is set. Not ``concurrent``: the engine serialises its calls."""

    name = "test-serial-hangs-once"
    fmt: str | None = "lz4"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial", batch=True, format=self.fmt)

    def arm(self) -> None:
        self.armed = True

    def _maybe_hang(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.release.wait(60)

    def compress(self, page: Any) -> bytes | None:
        self._maybe_hang()
        return super().compress(page)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        self._maybe_hang()
        return super().compress_batch(pages)


class HangsOnceNoFormat(HangsOnce):
    name = "test-serial-hangs-once-nofmt"
    fmt = None


def as_batch(pages: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(pages), dtype=np.uint8).reshape(-1, PAGE).copy()


def in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        t0 = time.monotonic()
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            box["error"] = exc
        box["s"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def system(make_system: Any, backend: Any, mode: str = "async", **zswap: Any) -> Any:
    return make_system(backend=backend, swap={"nr_pages": 256},
                       zswap={"batching": mode, "device_timeout_ms": DEADLINE_MS,
                              "driver_watchdog": "off", **zswap})


@pytest.fixture
def pages() -> list[bytes]:
    return compressible_pages(24, seed=11)


def test_a_load_after_a_hung_async_call_is_not_held_up(make_system: Any,
                                                       pages: list[bytes]) -> None:
    """The reviewer's single-thread case: drain gives the hung call up; the next load of a
    pooled page returns it (software lz4) instead of waiting for the hung call."""
    dev = HangsOnce()
    s = system(make_system, dev)
    try:
        s.swap_out_batch(0, list(range(8)), as_batch(pages[:8]))
        s.drain()
        dev.arm()
        s.swap_out_batch(0, list(range(8, 16)), as_batch(pages[8:16]))
        s.drain()
        assert dev.entered.is_set()
        t, box = in_thread(lambda: [s.swap_in(0, off) for off in range(8)])
        t.join(BOUND_S)
        assert not t.is_alive(), "a load waited for the hung device call"
        assert box.get("value") == pages[:8], box.get("error")
        st = s.stats()
        assert st["driver_refused_stuck"] >= 1 and st["driver_sw_fallbacks"] >= 1, st
        # the hung pass went to the swap device, exact
        assert [s.swap_in(0, off) for off in range(8, 16)] == pages[8:16]
    finally:
        dev.release.set()


def test_load_drain_and_stats_beside_a_hung_call_finish(make_system: Any,
                                                        pages: list[bytes]) -> None:
    """The reviewer's deadlock: a load (holding the tree lock) waiting on the device while
    drain gives the hung call up and must complete its batch under the tree lock."""
    dev = HangsOnce()
    s = system(make_system, dev)
    try:
        s.swap_out_batch(0, list(range(8)), as_batch(pages[:8]))
        s.drain()
        dev.arm()
        s.swap_out_batch(0, list(range(8, 16)), as_batch(pages[8:16]))
        assert dev.entered.wait(BOUND_S)
        tl, load = in_thread(lambda: s.swap_in(0, 0))
        time.sleep(0.02)
        td, drained = in_thread(s.drain)
        td.join(BOUND_S)
        tl.join(BOUND_S)
        assert not tl.is_alive() and not td.is_alive(), "the swap system hung on one call"
        assert load.get("value") == pages[0], load.get("error")
        assert "error" not in drained, drained
        ts, stats = in_thread(s.stats)
        ts.join(BOUND_S)
        assert not ts.is_alive() and stats["value"]["async_timeouts"] >= 1
        assert [s.swap_in(0, off) for off in range(1, 16)] == pages[1:16]
    finally:
        dev.release.set()


def test_without_a_software_decoder_the_load_fails_at_once_and_keeps_the_entry(
        make_system: Any, pages: list[bytes]) -> None:
    dev = HangsOnceNoFormat()
    s = system(make_system, dev)
    try:
        s.swap_out_batch(0, list(range(8)), as_batch(pages[:8]))
        s.drain()
        dev.arm()
        s.swap_out_batch(0, list(range(8, 16)), as_batch(pages[8:16]))
        s.drain()
        t, box = in_thread(lambda: s.swap_in(0, 3))
        t.join(BOUND_S)
        assert not t.is_alive()
        err = box.get("error")
        assert isinstance(err, DeviceError), box
        assert "not made" in str(err) and dev.name in str(err)
    finally:
        dev.release.set()
    # once the hung call has returned, the device serves the kept entry again
    end = time.monotonic() + BOUND_S
    while True:
        try:
            assert s.swap_in(0, 3) == pages[3]
            break
        except DeviceError:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def test_sync_callers_behind_a_hung_call_are_refused_and_the_device_failed(
        pages: list[bytes]) -> None:
    """In the synchronous modes a trusted driver's call has no deadline of its own, but a
    second caller waits for it no longer than its deadline; a holder stuck for fail_after
    deadlines marks the device failed, and there is no retry while it is still stuck."""
    dev = HangsOnce()
    comp = Compressor(dev, timeout_ms=50, fail_after=3, watchdog="off", retry_s=0.0)
    obj = comp.compress(pages[0])
    assert obj is not None
    dev.arm()
    holder, _ = in_thread(lambda: comp.compress(pages[1]))
    try:
        assert dev.entered.wait(BOUND_S)
        t, box = in_thread(lambda: comp.decompress(obj))
        t.join(BOUND_S)
        assert not t.is_alive()
        err = box.get("error")
        assert isinstance(err, DeviceTimeoutError) and err.given_up, box
        assert comp.refused_stuck >= 1 and comp.timeouts == 0
        assert comp.software_decompress(obj, err) == pages[0]
        time.sleep(3 * 0.05)  # the holder has now been in the driver for fail_after deadlines
        with pytest.raises(DeviceTimeoutError, match="not made"):
            comp.compress(pages[2])
        assert comp.failed, "a call stuck for fail_after deadlines marks the device failed"
        assert comp.failed  # retry_s 0, but the stuck call is still in the driver: no retry
    finally:
        dev.release.set()
    holder.join(BOUND_S)
    assert not holder.is_alive()
    assert not comp.failed  # retry_s 0 and nothing stuck: tried again
    assert comp.decompress(comp.compress(pages[3])) == pages[3]


def test_a_readahead_behind_a_long_call_pays_one_deadline_not_one_a_page(
        pages: list[bytes]) -> None:
    """Once one call has waited its whole deadline behind the holder (here a pipeline call of
    many merged batches, whose own deadline is far off), the calls after it are refused at
    once: a load cluster redone page by page does not wait a deadline per page."""
    dev = HangsOnce()
    comp = Compressor(dev, timeout_ms=200, watchdog="off")
    objs = [comp.compress(p) for p in pages[:16]]

    def merged_holder() -> Any:
        pipeline._MERGE.k = 1000  # a call of 1000 merged batches: 1000 deadlines
        try:
            return comp.compress(pages[20])
        finally:
            pipeline._MERGE.k = 1

    dev.arm()
    holder, _ = in_thread(merged_holder)
    try:
        assert dev.entered.wait(BOUND_S)

        def loads() -> list[str]:
            out = []
            for o in objs:
                try:
                    comp.decompress(o)
                    out.append("served")
                except DeviceTimeoutError as exc:
                    out.append(str(exc))
            return out

        t, box = in_thread(loads)
        t.join(1.6)  # one deadline each would be 16 x 200 ms = 3.2 s; the first is 0.2 s
        assert not t.is_alive(), "each page waited a deadline of its own"
        assert all("not made" in r for r in box["value"]), box
        assert comp.refused_stuck == 16
    finally:
        dev.release.set()
    holder.join(BOUND_S)
    assert [comp.decompress(o) for o in objs] == pages[:16]


def test_pipeline_threads_stay_bounded_after_a_hung_call(make_system: Any,
                                                         pages: list[bytes]) -> None:
    """Each pass after the hung call used to block its worker behind it, and each timed-out
    pass left one more thread; now the passes are refused at once (their pages go to the swap
    device) and only the hung worker stays behind."""
    dev = HangsOnce()
    s = system(make_system, dev, device_fail_after=1000)
    try:
        dev.arm()
        for k in range(10):
            s.swap_out_batch(0, list(range(8 * k, 8 * k + 8)), as_batch(pages[:8]))
            s.drain()
        workers = [t for t in threading.enumerate() if t.name.startswith("zswap-async")]
        assert len(workers) <= 3, [t.name for t in workers]
        st = s.stats()
        assert st["async_timeouts"] >= 1 and st["driver_refused_stuck"] >= 1, st
        assert [s.swap_in(0, off) for off in range(0, 80, 8)] == [pages[0]] * 10
    finally:
        dev.release.set()


class PollHangsOnce(Lz4Backend):
    """An asynchronous lz4 device (``concurrent``: no ``_serial``) whose next ``poll`` after
    ``arm()`` blocks until released: the submit/poll loop holding the compressor's ops lock
    is stuck in it."""

    name = "test-serial-poll-hangs-once"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial-poll", asynchronous=True, format="lz4",
                            concurrent=True)

    def arm(self) -> None:
        self.armed = True

    def poll(self, max_ops: int | None = None) -> list[Any]:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.release.wait(60)
        return super().poll(max_ops)


def test_a_hung_poll_does_not_hold_up_loads_or_later_passes(make_system: Any,
                                                            pages: list[bytes]) -> None:
    """The same for the submit/poll loop (one at a time: ``_ops_lock``): a poll that never
    returns used to keep later loads (under the tree lock) and every later pass's worker
    waiting on that lock for good."""
    dev = PollHangsOnce()
    s = system(make_system, dev, device_timeout_ms=60)
    try:
        s.swap_out_batch(0, list(range(8)), as_batch(pages[:8]))
        s.drain()
        dev.arm()
        s.swap_out_batch(0, list(range(8, 16)), as_batch(pages[8:16]))
        assert dev.entered.wait(BOUND_S)
        t, box = in_thread(lambda: [s.swap_in(0, off) for off in range(8)])
        t.join(BOUND_S)
        assert not t.is_alive(), "a load waited for the hung poll"
        assert box.get("value") == pages[:8], box.get("error")
        for k in range(2, 8):
            s.swap_out_batch(0, list(range(8 * k, 8 * k + 8)), as_batch(pages[:8]))
        td, drained = in_thread(s.drain)
        td.join(BOUND_S)
        assert not td.is_alive() and "error" not in drained, drained
        workers = [t for t in threading.enumerate() if t.name.startswith("zswap-async")]
        assert len(workers) <= 3, [t.name for t in workers]
        st = s.stats()
        assert st["driver_refused_stuck"] >= 1 and st["driver_sw_fallbacks"] >= 1, st
        assert [s.swap_in(0, off) for off in range(8, 16)] == pages[8:16]
        assert [s.swap_in(0, off) for off in range(16, 64, 8)] == [pages[0]] * 6
    finally:
        dev.release.set()
