"""One hung device call must not wedge the swap system (``Compressor._serial``).

A driver called directly (a built-in under ``driver_watchdog: auto``; here ``off``) that is not
``concurrent`` has its calls serialised by one lock. A ``compress_batch`` that hangs on async
mode's worker used to keep that lock after the pipeline had given the call up: the next load,
which waits for the device under zswap's tree lock, then waited as long as the hung call, and
so did the completion of the failed batch (it needs the tree lock), ``drain`` and ``stats``.
Now a caller waits for the device while the call holding it is within its own deadline, and
is refused once that call is past it (``driver_refused_stuck``): the store rejected and a
load decoded in software (the driver's format) or failed with a DeviceError, the entry kept.
A caller that merely queued behind healthy calls (each within its deadline) longer than one
deadline in total is not refused: the device is busy, not stuck (it used to be refused, and
every later caller with it, until the call holding the device then had ended).

The drivers are real lz4 with one call that blocks until the test releases it (or sleeps well
inside its deadline); deadlines are short, and the only time bounds asserted are generous
"finished" ones.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities, ItemStatus
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import DeviceError, DeviceTimeoutError
from hwzswap.frontswap import pipeline
from hwzswap.frontswap.compressor import Compressor

from fsutil import PAGE, compressible_pages

DEADLINE_MS = 150
BOUND_S = 5.0  # "well before the hung call": the test releases it only afterwards


class ArmedHang(Lz4Backend):
    """lz4 that hangs once, in whichever call a subclass puts :meth:`_maybe_hang` in, after
    ``arm()``: it sets ``entered`` and blocks until ``release`` is set."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def arm(self) -> None:
        self.armed = True

    def _maybe_hang(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.release.wait(60)


class HangsOnce(ArmedHang):
    """lz4 whose next ``compress_batch`` (or ``compress``) after ``arm()`` blocks until
    ``release`` is set. Not ``concurrent``: the engine serialises its calls."""

    name = "test-serial-hangs-once"
    fmt: str | None = "lz4"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial", batch=True, format=self.fmt)

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


def hang_second_pass(s: Any, dev: ArmedHang, pages: list[bytes]) -> None:
    """Store pages 0-7 (drained: in the pool), then arm ``dev`` and store pages 8-15: that
    pass's device call hangs (async mode: the batch call on the pipeline's worker; the poll of
    an asynchronous device's ops in whichever caller waits for them first)."""
    s.swap_out_batch(0, list(range(8)), as_batch(pages[:8]))
    s.drain()
    dev.arm()
    s.swap_out_batch(0, list(range(8, 16)), as_batch(pages[8:16]))


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
        hang_second_pass(s, dev, pages)
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
        hang_second_pass(s, dev, pages)
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
        hang_second_pass(s, dev, pages)
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
        # what is true (the holder's time in the driver and its own deadline) and what to do
        assert "the call holding the device" in str(err), err
        assert "past its own deadline of 50 ms" in str(err), err
        assert "raise zswap.device_timeout_ms" in str(err), err
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


def test_a_readahead_behind_a_hung_call_pays_its_deadline_once_not_one_a_page(
        pages: list[bytes]) -> None:
    """Once the holder (a pipeline call of 2 merged batches: 2 deadlines of its own) is past
    its deadline, every call behind it is refused at once: a load cluster redone page by page
    pays the rest of the holder's deadline once, not a deadline a page."""
    dev = HangsOnce()
    comp = Compressor(dev, timeout_ms=200, watchdog="off")
    objs = [comp.compress(p) for p in pages[:16]]

    def merged_holder() -> Any:
        pipeline._MERGE.k = 2  # a call of 2 merged batches: 2 deadlines
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
        # the holder's 2 x 200 ms, then none; a deadline a page would be 16 x 200 ms more
        t.join(2.5)
        assert not t.is_alive(), "each page waited a deadline of its own"
        assert all("not made" in r and "past its own deadline of 2 x 200 ms" in r
                   for r in box["value"]), box
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


class PollHangsOnce(ArmedHang):
    """An asynchronous lz4 device (``concurrent``: no ``_serial``) whose next ``poll`` after
    ``arm()`` blocks until released: the submit/poll loop holding the compressor's ops lock
    is stuck in it."""

    name = "test-serial-poll-hangs-once"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial-poll", asynchronous=True, format="lz4",
                            concurrent=True)

    def poll(self, max_ops: int | None = None) -> list[Any]:
        self._maybe_hang()
        return super().poll(max_ops)


def test_a_hung_poll_does_not_hold_up_loads_or_later_passes(make_system: Any,
                                                            pages: list[bytes]) -> None:
    """The same for the submit/poll loop (one at a time: ``_ops_lock``): a poll that never
    returns used to keep later loads (under the tree lock) and every later pass waiting on
    that lock for good. An asynchronous device's batches are polled by the caller that waits
    for them (a drain here, on its own thread, which the trusted driver's hung poll keeps):
    loads, later passes and another drain go on without it."""
    dev = PollHangsOnce()
    s = system(make_system, dev, device_timeout_ms=60)
    try:
        hang_second_pass(s, dev, pages)
        assert not dev.entered.is_set(), "the store polled: async mode's submit returns at once"
        in_thread(s.drain)
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


# -- healthy contention: a busy device is not a stuck one ------------------------------------


class SlowSerial(Lz4Backend):
    """lz4 whose every call sleeps ``call_s`` (well inside the deadline) before it runs; not
    ``concurrent`` (the engine serialises its calls) and no software format (a load refused
    at the device would fail: nothing hides a refusal)."""

    name = "test-serial-slow"
    call_s = 0.04

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial-slow", batch=True, format=None)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        time.sleep(self.call_s)
        return super().compress_batch(pages)

    def decompress(self, data: Any) -> bytes:
        time.sleep(self.call_s)
        return super().decompress(data)


def test_callers_queued_behind_healthy_calls_are_not_refused(pages: list[bytes]) -> None:
    """Five threads at once on a one-call-at-a-time driver, each call 0.4 of a deadline: the
    last one in queues 1.6 deadlines or more behind calls each within their own, and none is
    refused (they used to be: the waiter's own deadline passed)."""
    dev = SlowSerial()
    comp = Compressor(dev, timeout_ms=250, watchdog="off")
    dev.call_s = 0.0
    objs = [comp.compress(p) for p in pages[:5]]
    dev.call_s = 0.1
    start = threading.Barrier(5)

    def load(i: int) -> Any:
        start.wait()
        return [comp.decompress(objs[i]) for _ in range(2)]

    runs = [in_thread(lambda i=i: load(i)) for i in range(5)]
    for t, _ in runs:
        t.join(BOUND_S * 2)
    assert not any(t.is_alive() for t, _ in runs)
    assert [box.get("value", box.get("error")) for _, box in runs] == [
        [p, p] for p in pages[:5]]
    assert comp.refused_stuck == 0 and comp.timeouts == 0 and not comp.failed
    assert max(box["s"] for _, box in runs) > 0.25  # someone queued past one deadline


def test_reclaim_stores_and_loads_beside_a_busy_serial_driver_all_succeed(
        make_system: Any) -> None:
    """The reviewer's reclaim case: three threads store reclaim batches and one loads pages
    stored before, on a one-call-at-a-time driver whose calls take 0.4 of the deadline:
    nothing is refused, no store is rejected for it, no load of an accepted page fails."""
    dev = SlowSerial()
    dev.call_s = 0.0
    s = make_system(backend=dev, swap={"nr_pages": 512},
                    zswap={"batching": "reclaim", "device_timeout_ms": 100,
                           "driver_watchdog": "off"})
    data = compressible_pages(80, seed=5)
    s.swap_out_batch(0, list(range(32)), as_batch(data[:32]))
    assert s.stats()["zswpout"] == 32
    dev.call_s = 0.04
    stored = threading.Event()
    errors: list[str] = []
    loaded = [0]

    def storer(k: int) -> None:
        for lo in range(32 + 8 * k, 80, 24):
            s.swap_out_batch(0, list(range(lo, lo + 8)), as_batch(data[lo:lo + 8]))

    def loader() -> None:
        while not stored.is_set():
            for off in range(0, 32, 3):
                try:
                    if s.swap_in(0, off) != data[off]:
                        errors.append(f"offset {off}: wrong data")
                    loaded[0] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is the finding
                    errors.append(f"offset {off}: {type(exc).__name__}: {exc}")
                time.sleep(0.02)  # the storers get the tree lock between loads too

    stores = [in_thread(lambda k=k: storer(k)) for k in range(3)]
    tl, lbox = in_thread(loader)
    for t, _ in stores:
        t.join(BOUND_S * 4)
    stored.set()
    tl.join(BOUND_S)
    assert not tl.is_alive() and not any(t.is_alive() for t, _ in stores)
    assert all("error" not in box for _, box in stores), stores
    assert "error" not in lbox and errors == [] and loaded[0] > 0, errors[:3]
    st = s.stats()
    assert st["driver_refused_stuck"] == 0 and st["driver_timeouts"] == 0, st
    assert st["reject_compress_fail"] == 0 and st["zswpout"] == 80, st
    assert [s.swap_in(0, off) for off in range(32, 80)] == data[32:80]


class SlowPoll(Lz4Backend):
    """An asynchronous lz4 device (``concurrent``: no ``_serial``; no software format) whose
    next ``poll`` after ``arm()`` sleeps ``poll_s`` before it answers: the submit/poll loop
    holding the compressor's ops lock is slow but not stuck."""

    name = "test-serial-slow-poll"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.poll_s = 0.0
        self.armed = False
        self.entered = threading.Event()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-serial-slow-poll", asynchronous=True, format=None,
                            concurrent=True)

    def arm(self, poll_s: float) -> None:
        self.poll_s, self.armed = poll_s, True

    def poll(self, max_ops: int | None = None) -> list[Any]:
        if self.armed:
            self.armed = False
            self.entered.set()
            time.sleep(self.poll_s)
        return super().poll(max_ops)


def test_loads_behind_a_merged_loop_within_its_deadlines_are_not_refused(
        pages: list[bytes]) -> None:
    """A pipeline call merging 3 batches (3 deadlines of 100 ms) holds the submit/poll loop for
    200 ms: two deadlines of the loads behind it, within its own three. Four loader threads
    wait for it and are all served, none refused."""
    dev = SlowPoll()
    comp = Compressor(dev, timeout_ms=100, watchdog="off")
    objs = [comp.compress_ops(as_batch([p])).item_bytes(0) for p in pages[:4]]

    def merged_holder() -> Any:
        pipeline._MERGE.k = 3
        try:
            return comp.compress_ops(as_batch(pages[4:12]))
        finally:
            pipeline._MERGE.k = 1

    dev.arm(0.2)
    holder, hbox = in_thread(merged_holder)
    assert dev.entered.wait(BOUND_S)
    loads = [in_thread(lambda o=o: [comp.decompress_op(o) for _ in range(3)]) for o in objs]
    holder.join(BOUND_S)
    for t, _ in loads:
        t.join(BOUND_S)
    assert not holder.is_alive() and not any(t.is_alive() for t, _ in loads)
    assert [box.get("value", box.get("error")) for _, box in loads] == [
        [p] * 3 for p in pages[:4]]
    assert not np.any(hbox["value"].status == int(ItemStatus.FAILED)), hbox
    assert comp.refused_stuck == 0 and comp.timeouts == 0 and not comp.failed


def test_loads_behind_a_hung_merged_loop_are_refused_and_the_device_failed(
        pages: list[bytes]) -> None:
    """A loop of 2 merged batches (2 x 50 ms) whose poll hangs: the load behind it is refused
    once the loop is past its 100 ms, saying so; once the loop has been in the driver for
    fail_after (3) deadlines the device is marked failed, with no retry while the loop is
    still stuck; after it returns the device serves again."""
    dev = PollHangsOnce()
    comp = Compressor(dev, timeout_ms=50, fail_after=3, watchdog="off", retry_s=0.0)
    obj = comp.compress_ops(as_batch(pages[:1])).item_bytes(0)

    def merged_holder() -> Any:
        pipeline._MERGE.k = 2
        try:
            return comp.compress_ops(as_batch(pages[1:3]))
        finally:
            pipeline._MERGE.k = 1

    dev.arm()
    holder, _ = in_thread(merged_holder)
    try:
        assert dev.entered.wait(BOUND_S)
        t, box = in_thread(lambda: comp.decompress_op(obj))
        t.join(BOUND_S)
        assert not t.is_alive()
        err = box.get("error")
        assert isinstance(err, DeviceTimeoutError) and err.given_up, box
        assert "the submit/poll loop holding the device" in str(err), err
        assert "past its own deadline of 2 x 50 ms" in str(err), err
        assert comp.refused_stuck == 1 and comp.timeouts == 0
        time.sleep(0.1)  # the loop has now been in the driver for fail_after deadlines
        with pytest.raises(DeviceTimeoutError, match="not made"):
            comp.decompress_op(obj)
        assert comp.failed and comp.failed  # retry_s 0, but the loop is still stuck
    finally:
        dev.release.set()
    holder.join(BOUND_S)
    assert not holder.is_alive()
    assert not comp.failed  # nothing stuck: tried again
    assert comp.decompress_op(obj) == pages[0]
