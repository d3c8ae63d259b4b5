"""The core promise under combined faults, as a hypothesis state machine.

"A page the framework accepted comes back byte-exact until it is invalidated": random sequences
of the swap system's public operations (``swap_out``, ``swap_out_batch`` with folios,
``swap_in``, ``swap_in_batch``, ``swap_free``, ``drain``, writeback and shrink, zswap switched
off and on, swapoff/swapon, and two reclaim passes, a readahead and a writeback at once from
four threads) run in every engine mode, with exclusive loads, checksums, page verification and
background writeback on or off, zsmalloc or zbud, on a pool small enough that writeback never
stops, while faults are injected at every layer: a compressor that fails single items, raises
DeviceError, has a bug (a plain exception), hangs past the deadline, answers BUSY or returns
wrong bytes (:class:`FaultLz4`, synchronous or queued, with or without a real batch path and a
software decoder of its format; and the emulated NX-842 with its own fault injector), a swap file
whose reads or writes fail or which is full (``SwapDevice.inject``, EIO / ENOSPC), and a page
allocator that refuses pages. A plain dict (slot -> page) is the model.

What the model expects of each operation, from the API's docstrings:

* ``swap_out`` returns: the slot holds the page. It raises :class:`SwapDeviceError`: the slot is
  free (the caller still has the page), and only when a device write really failed;
* ``swap_out_batch`` returns: every slot holds its page. It raises :class:`SwapBatchError`:
  ``stored`` and ``written`` hold their new pages, ``failed`` are free; the three lists split
  the batch exactly;
* ``swap_in`` / ``swap_in_batch`` of a slot in use returns the page byte-exact (and frees it with
  exclusive loads); a :class:`HwzswapError` is allowed only when a fault fired during that
  very read (a device read failure; a decompress failure with no software decoder, a driver
  bug, or wrong bytes caught by ``verify_pages``) and loses nothing: the slot still holds its
  page, which loads once the fault is gone. A slot not in use raises :class:`SwapDeviceError`.
  (In the concurrent step "that very read" is "that step".)

After every step: ``zswap.check()`` passes, the swap map says exactly which slots the model
holds, zswap holds no more pages than the model, no counter is negative and every store is
counted once (stored or rejected for one reason). Freeing every slot returns the pool to zero
pages. At the end every page the model holds is read back with all faults cleared.
"""

from __future__ import annotations

import errno
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lz4.block as lz4block
import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    OpStatus,
    Param,
    check_page,
    corrupt,
)
from hwzswap.backends.nx842.crb import CC, HANG
from hwzswap.backends.registry import get_backend
from hwzswap.errors import DeviceError, HwzswapError, SwapBatchError, SwapDeviceError
from hwzswap.frontswap import open_zswap

from fsutil import compressible_pages, random_page, same_filled

SLOTS = 12
# mostly compressible pages, two that go to the swap file, a zero and a same-filled page
BANK = (compressible_pages(10, seed=21) + [random_page(4), random_page(5), bytes(PAGE_SIZE),
                                           same_filled()])
BANK_ARR = np.frombuffer(b"".join(BANK), dtype=np.uint8).reshape(len(BANK), PAGE_SIZE)
#: the deadline of a device call (zswap.device_timeout_ms) and how long a hung call blocks:
#: wide enough that a call which does not hang is never late on a busy 2-core machine
TIMEOUT_MS = 60
HANG_S = 0.12
#: the same for the reproducers below, which assert exact outcomes ("this call answered"):
#: a wider margin, so one slow call on a loaded machine cannot turn into a timeout
REPRO_TIMEOUT_MS = 250
REPRO_HANG_S = 0.35

# Fault kinds FaultLz4 takes (each armed with a count, consumed one per call / page / submit).
FAULTS = ("item", "raise", "bug", "hang", "busy", "dec_raise", "dec_bug", "dec_hang", "dec_flip")


class FaultLz4(Backend):
    """LZ4 blocks behind a device with armed faults, the test's fault-injecting driver.

    ``arm(kind, count)``: ``item`` fails the next ``count`` pages of a compress call alone
    (an exception item; a single-page compress raises DeviceError); ``raise`` fails whole
    compress calls with DeviceError; ``hang`` blocks whole compress calls past the deadline
    (the late result is dropped by the engine); ``busy`` answers the next submits with BUSY
    (queue mode); ``dec_raise`` / ``dec_hang`` do the same to decompress calls. ``queue``: an
    asynchronous device driven through submit/poll; ``batch``: a real batch path; ``fmt``:
    declare the ``lz4`` format, so zswap decodes in software what the device fails on.
    ``bug`` / ``dec_bug`` raise a plain RuntimeError (a driver bug, which the engine reports
    as a DriverError); ``dec_flip`` returns a page with one byte wrong (which only
    ``verify_pages`` can catch). ``injected`` counts the faults that fired. Safe from several threads (the engine's watchdog
    may abandon a hung call while the next one runs)."""

    name = "test-fault-lz4"
    hang_s = HANG_S  # how long a hung call blocks
    PARAMS = {
        "queue": Param(bool, False, doc="asynchronous device (submit/poll)"),
        "batch": Param(bool, True, doc="a real batch path"),
        "fmt": Param(bool, True, doc="declare the lz4 format (software decode fallback)"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._lock = threading.Lock()
        self.armed = dict.fromkeys(FAULTS, 0)
        self.injected = 0
        self._queued: list[CompOp] = []
        self._done: list[CompOp] = []

    @property
    def capabilities(self) -> Capabilities:
        p = self.params
        return Capabilities(device="test-faults", asynchronous=p["queue"], batch=p["batch"],
                            preferred_batch=8, format="lz4" if p["fmt"] else None,
                            concurrent=True)

    def arm(self, kind: str, count: int) -> None:
        with self._lock:
            self.armed[kind] += count

    def clear(self) -> None:
        with self._lock:
            self.armed = dict.fromkeys(FAULTS, 0)

    def _take(self, kind: str) -> bool:
        with self._lock:
            if self.armed[kind] > 0:
                self.armed[kind] -= 1
                self.injected += 1
                return True
            return False

    def _call_faults(self, compress: bool) -> None:
        if self._take("hang" if compress else "dec_hang"):
            time.sleep(self.hang_s)  # past the deadline: the engine has given up on this call
        if self._take("bug" if compress else "dec_bug"):
            raise RuntimeError("injected driver bug")
        if self._take("raise" if compress else "dec_raise"):
            raise DeviceError(f"{self.name}: injected {'compress' if compress else 'decompress'}"
                              f" fault")

    @staticmethod
    def _lz4(page: Any) -> bytes | None:
        out = lz4block.compress(check_page(page), mode="fast", store_size=False)
        return out if len(out) < PAGE_SIZE else None

    def compress(self, page: Any) -> bytes | None:
        self._call_faults(True)
        if self._take("item"):
            raise DeviceError(f"{self.name}: injected page fault")
        return self._lz4(page)

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        self._call_faults(True)
        return [DeviceError(f"{self.name}: injected item fault") if self._take("item")
                else self._lz4(row) for row in pages]

    def decompress(self, data: Any) -> bytes:
        self._call_faults(False)
        try:
            out = lz4block.decompress(bytes(data), uncompressed_size=PAGE_SIZE)
        except (lz4block.LZ4BlockError, ValueError) as exc:
            raise corrupt(self.name, str(exc)) from None
        if self._take("dec_flip"):
            out = bytes([out[0] ^ 0x5A]) + out[1:]
        return out

    def decompress_batch(self, items: Any) -> np.ndarray:
        self._call_faults(False)
        return np.frombuffer(b"".join(map(self.decompress, items)),
                             dtype=np.uint8).reshape(len(items), PAGE_SIZE)

    def submit(self, ops: Any) -> int:
        if not self.params["queue"]:
            return super().submit(ops)
        if self._take("busy"):
            for op in ops:
                op.status = OpStatus.BUSY
            return 0
        with self._lock:
            room = max(0, 4 - len(self._queued) - len(self._done))
            self._queued.extend(ops[:room])
        for op in ops[room:]:
            op.status = OpStatus.BUSY
        return min(room, len(ops))

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        if not self.params["queue"]:
            return super().poll(max_ops)
        with self._lock:
            run, self._queued = self._queued, []
        for op in run:  # outside the lock: a hung op must not block the next caller
            self._execute(op)
        with self._lock:
            self._done.extend(run)
            k = len(self._done) if max_ops is None else min(max_ops, len(self._done))
            out, self._done = self._done[:k], self._done[k:]
        return out

    def pending(self) -> int:
        if not self.params["queue"]:
            return super().pending()
        with self._lock:
            return len(self._queued) + len(self._done)


@contextmanager
def _fault_system(tmp_path: Path, backend: FaultLz4, mode: str, fail_after: int
                  ) -> Iterator[Any]:
    """A swap system on ``backend`` with the reproducers' deadline (their hangs outlast it);
    the system and the backend are closed when the ``with`` ends."""
    backend.hang_s = REPRO_HANG_S
    try:
        s = open_zswap({
            "zswap": {"compressor": "lz4", "batching": mode,
                      "device_timeout_ms": REPRO_TIMEOUT_MS, "device_fail_after": fail_after},
            "swap": {"nr_pages": 16, "path": str(tmp_path / "swap.img")},
        }, backend=backend)
        try:
            yield s
        finally:
            s.close()
    finally:
        backend.close()


def _fail_the_device_holding_three_pages(s: Any, backend: FaultLz4) -> None:
    """With ``device_fail_after: 1``: pages 0-2 are stored by the device in one batch, then the
    batch of page 3 times out (page 3 goes to the swap device) and the device is marked
    failed, holding the three pages it compressed."""
    assert s.swap_out_batch(0, [0, 1, 2], BANK_ARR[[0, 1, 2]]) == [True] * 3
    backend.arm("hang", 1)
    assert s.swap_out_batch(0, [3], BANK_ARR[[3]]) == [False]  # timed out: on the device
    time.sleep(REPRO_HANG_S)
    assert s.stats()["driver_failed"] == 1


# -- reproducers of what the state machine found ------------------------------------------


@pytest.mark.parametrize("queue", [False, True], ids=["sync", "queue"])
@pytest.mark.parametrize("mode", ["page", "reclaim"])
def test_a_device_marked_failed_still_gives_back_the_pages_it_holds(tmp_path, mode, queue):
    """Two compress calls time out and the device is marked failed; it has no software decoder
    (no ``format``), so the pages it compressed before must still be decompressed by it (under
    the deadline), not refused: they come back no other way. Later stores are rejected."""
    backend = FaultLz4(queue=queue, batch=not queue, fmt=False)
    with _fault_system(tmp_path, backend, mode, fail_after=2) as s:
        assert s.swap_out(0, 0, BANK[0]) is True
        for off in (1, 2):
            backend.arm("hang", 1)
            assert s.swap_out(0, off, BANK[off]) is False  # timed out: on the swap device
            time.sleep(REPRO_HANG_S)  # returned: the next call is made (not refused as stuck)
        assert s.stats()["driver_failed"] == 1
        assert [s.swap_in(0, off) for off in range(3)] == BANK[:3]
        assert s.swap_out(0, 3, BANK[3]) is False  # a failed device takes no stores
        assert s.swap_in(0, 3) == BANK[3]
        assert s.zswap.writeback(4) == 1 and s.swap_in(0, 0) == BANK[0]  # writeback works too


def test_timeouts_apart_do_not_mark_the_device_failed(tmp_path):
    """``device_fail_after`` counts *consecutive* timeouts: a call the device answers in
    between starts the count again (single-page calls reset it as batch calls do)."""
    backend = FaultLz4(batch=False)
    with _fault_system(tmp_path, backend, "page", fail_after=2) as s:
        for off in range(4):
            backend.arm("hang", 1)
            assert s.swap_out(0, 2 * off, BANK[0]) is False  # timed out
            time.sleep(REPRO_HANG_S)  # the given-up call returns (till then none is made)
            assert s.swap_out(0, 2 * off + 1, BANK[1]) is True  # answered
        time.sleep(REPRO_HANG_S)
        st_ = s.stats()
        assert st_["driver_timeouts"] == 4 and st_["driver_failed"] == 0, st_


@pytest.mark.parametrize("queue", [False, True], ids=["sync", "queue"])
def test_a_readahead_after_the_device_is_marked_failed_decodes_in_software(tmp_path, queue):
    """The device is marked failed (one timeout, ``device_fail_after: 1``) and software decodes
    its format: a readahead of pages it compressed must decode them in software, as a single
    swap_in does, not raise DeviceError for the whole batch (found by the state machine)."""
    backend = FaultLz4(queue=queue, batch=True)
    with _fault_system(tmp_path, backend, "reclaim", fail_after=1) as s:
        _fail_the_device_holding_three_pages(s, backend)
        assert s.swap_in_batch(0, [0, 1, 2, 3]) == BANK[:4]
        assert s.stats()["driver_sw_fallbacks"] == 3


def test_writeback_after_the_device_is_marked_failed_decodes_in_software(tmp_path):
    """Once the device is marked failed, writeback decodes the pool's objects in software (as a
    load does) when software knows the format, so the pool can still be emptied onto the swap
    device; before, every writeback failed and the pool stayed full for good."""
    backend = FaultLz4(batch=True)
    with _fault_system(tmp_path, backend, "reclaim", fail_after=1) as s:
        _fail_the_device_holding_three_pages(s, backend)
        assert s.zswap.writeback(8) == 3
        st_ = s.stats()
        assert st_["stored_pages"] == 0 and st_["writeback_fail"] == 0, st_
        assert [s.swap_in(0, off) for off in range(4)] == BANK[:4]  # from the device


def test_exclusive_load_batch_around_a_staged_page_going_to_the_device(tmp_path):
    """async mode, exclusive loads: a page whose compression failed after the store returned
    is written to the swap device from its staged copy. ``load_batch`` used to look the staged
    copies up in one lock section and free what it served in another; a write landing between
    them made it raise (KeyError) with the batch half freed, losing a page. It now does both
    in one section: while the write is held the page comes from its staged copy; once the
    write has landed it is a zswap miss, read from the device; no page is lost either way."""
    backend = FaultLz4()
    s = open_zswap({
        "zswap": {"compressor": "lz4", "batching": "async", "exclusive_loads": True},
        "swap": {"nr_pages": 16, "path": str(tmp_path / "swap.img")},
    }, backend=backend)
    cache = s.zswap
    entered, go = threading.Event(), threading.Event()

    def hold_writes(op: str, offset: int) -> None:
        if op == "write":
            entered.set()
            go.wait(5)

    s.devices[0].io_hook = hold_writes
    try:
        for first in ([3, 4], [7, 8]):
            entered.clear()
            go.clear()
            backend.arm("item", 1)  # the first page's compression fails: it goes to the device
            assert s.swap_out_batch(0, first, BANK_ARR[[0, 1]]) == [True, True]
            assert entered.wait(5)  # its device write is held
            if first == [3, 4]:  # served from the staged copy while the write is in flight
                assert cache.load_batch(0, [4, 3]) == [BANK[1], BANK[0]]
                go.set()
            else:  # the write lands first: a zswap miss, and the device has the page
                go.set()
                deadline = time.monotonic() + 5
                while s.stats()["staged_pages"] and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert cache.load_batch(0, [8, 7]) == [BANK[1], None]
                assert s.swap_in(0, 7) == BANK[0]
            s.drain()
            cache.check()
        assert s.stats()["staged_pages"] == 0
    finally:
        go.set()
        s.close()
        backend.close()


def _wait_unstuck(system: Any) -> None:
    """Wait until no call given up at its deadline is still in the driver: till then the
    engine makes no call to it (each is refused at once, as a timeout)."""
    dog = system.zswap.compressor.watchdog
    deadline = time.monotonic() + 10 * HANG_S + 5
    while dog is not None and dog.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)


def _counters(system: Any) -> tuple[int, ...]:
    """What shows that a fault fired: device read/write failures, driver faults (injected,
    a call past its deadline, or a call refused while an earlier one is still stuck in the
    driver after its deadline)."""
    s = system.stats()
    b = system.backend
    injected = b.injected if isinstance(b, FaultLz4) else b.faults.injected
    return (s["swap_failed_reads"], s["swap_failed_writes"],
            injected + s["driver_timeouts"] + s["driver_refused_stuck"])


class FaultModel(RuleBasedStateMachine):
    """Every page swapped out and not freed comes back exactly, whatever faults were injected."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.system: Any = None
        self.backend: Any = None
        self.expected: dict[int, int] = {}  # slot -> BANK index
        self.enabled = True
        self.offered_disabled = 0  # pages offered while zswap was off: rejected, no reason
        self.offered = 0  # pages offered to zswap (stores)

    @initialize(
        mode=st.sampled_from(["page", "folio", "reclaim", "async"]),
        driver=st.sampled_from(["lz4", "lz4-batch", "lz4-queue", "lz4-queue-batch", "842-nx"]),
        fmt=st.booleans(),
        exclusive=st.booleans(), checksum=st.booleans(), verify=st.booleans(),
        background=st.booleans(), fail_after=st.sampled_from([1, 2, 8]),
        threshold=st.sampled_from([50, 90]), pool=st.sampled_from(["zsmalloc", "zbud"]),
        submit=st.sampled_from(["auto", "worker"]))
    def open(self, mode, driver, fmt, exclusive, checksum, verify, background, fail_after,
             threshold, pool, submit):
        if driver == "842-nx":
            self.backend = get_backend("842-nx")
        else:
            self.backend = FaultLz4(queue="queue" in driver, batch=driver.endswith("batch"),
                                    fmt=fmt)
        self.exclusive = exclusive
        self.verify = verify
        self.system = open_zswap({
            # 1 MiB of RAM, 3 %: a pool of 7 pages, so limits and writeback happen constantly
            "zswap": {"compressor": "lz4", "batching": mode, "max_pool_percent": 3,
                      "exclusive_loads": exclusive, "entry_checksum": checksum,
                      "verify_pages": verify, "background_writeback": background,
                      "accept_threshold_percent": threshold, "writeback_batch": 2,
                      "device_timeout_ms": TIMEOUT_MS, "device_fail_after": fail_after,
                      "async_max_batches": 2,
                      # async: an asynchronous driver's own queue (auto), or the worker's
                      # batch calls for every driver
                      "async_submit": submit},
            "memory": {"total_ram_mb": 1},
            "pool": {"type": pool},
            "swap": {"nr_pages": SLOTS, "path": str(Path(self.dir.name) / "swap.img")},
        }, backend=self.backend)

    # -- stores ----------------------------------------------------------------------------

    @rule(off=st.integers(0, SLOTS - 1), j=st.integers(0, len(BANK) - 1))
    def swap_out(self, off, j):
        self.offered_disabled += not self.enabled
        self.offered += 1
        before = _counters(self.system)
        try:
            self.system.swap_out(0, off, BANK[j])
        except SwapDeviceError as exc:
            assert _counters(self.system)[1] > before[1], f"no device write failed: {exc}"
            event("swap_out: device write failed")
            self.expected.pop(off, None)
            return
        self.expected[off] = j

    def _draw_pass(self, data: Any, offs: list[int]) -> tuple[list[int], list[int]]:
        """Pages (BANK indices) and folio sizes for a reclaim pass over ``offs``."""
        js = data.draw(st.lists(st.integers(0, len(BANK) - 1), min_size=len(offs),
                                max_size=len(offs)), label="pages")
        cuts = data.draw(st.lists(st.booleans(), min_size=len(offs) - 1,
                                  max_size=len(offs) - 1), label="folio cuts")
        folios, size = [], 1
        for cut in cuts:
            if cut:
                folios.append(size)
                size = 0
            size += 1
        folios.append(size)
        return js, folios

    def _out_batch(self, offs: list[int], js: list[int], folios: list[int]) -> Any:
        """swap_out_batch's result, or the exception it raised."""
        try:
            return self.system.swap_out_batch(0, offs, BANK_ARR[js], folios)
        except Exception as exc:  # noqa: BLE001 - judged by _apply_out_batch
            return exc

    def _apply_out_batch(self, offs: list[int], js: list[int], out: Any,
                         before: tuple[int, ...]) -> None:
        """What the model expects of a reclaim pass that returned or raised ``out``."""
        if isinstance(out, SwapBatchError):
            assert _counters(self.system)[1] > before[1], f"no device write failed: {out}"
            assert str(out)
            parts = [set(out.stored), set(out.written), set(out.failed)]
            assert sum(map(len, parts)) == len(offs) and set().union(*parts) == set(offs), out
            assert out.failed, out
            event("swap_out_batch: SwapBatchError")
            for off, j in zip(offs, js):
                if off in out.failed:
                    self.expected.pop(off, None)
                else:
                    self.expected[off] = j
            return
        if isinstance(out, BaseException):
            raise out
        assert len(out) == len(offs) and all(type(r) is bool for r in out)
        for off, j in zip(offs, js):
            self.expected[off] = j

    @rule(data=st.data())
    def swap_out_batch(self, data):
        offs = data.draw(st.lists(st.integers(0, SLOTS - 1), min_size=1, max_size=8,
                                  unique=True), label="offsets")
        js, folios = self._draw_pass(data, offs)
        self.offered_disabled += 0 if self.enabled else len(offs)
        self.offered += len(offs)
        before = _counters(self.system)
        self._apply_out_batch(offs, js, self._out_batch(offs, js, folios), before)

    # -- loads -----------------------------------------------------------------------------

    def _load_failed(self, exc: HwzswapError, before: tuple[int, ...]) -> None:
        """A load error is allowed only when a fault fired in it; it must say what happened."""
        assert isinstance(exc, HwzswapError) and len(str(exc)) > 20, repr(exc)
        event(f"load failed: {type(exc).__name__}")
        after = _counters(self.system)
        assert after[0] > before[0] or after[2] > before[2], (
            f"a load failed with no fault injected: {type(exc).__name__}: {exc}")

    @rule(off=st.integers(0, SLOTS - 1))
    def swap_in(self, off):
        before = _counters(self.system)
        if off not in self.expected:
            try:
                page = self.system.swap_in(0, off)
            except SwapDeviceError as exc:
                assert "not in use" in str(exc), exc
                return
            raise AssertionError(f"slot {off} is free but swap_in returned a page "
                                 f"(BANK index {BANK.index(page) if page in BANK else None})")
        try:
            page = self.system.swap_in(0, off)
        except HwzswapError as exc:
            self._load_failed(exc, before)
            return
        assert page == BANK[self.expected[off]], f"slot {off}: wrong page"
        if self.exclusive:
            del self.expected[off]

    def _in_batch(self, offs: list[int]) -> Any:
        try:
            return self.system.swap_in_batch(0, offs)
        except Exception as exc:  # noqa: BLE001 - judged by _apply_in_batch
            return exc

    def _apply_in_batch(self, offs: list[int], out: Any, before: tuple[int, ...]) -> None:
        """What the model expects of a readahead of slots in use that returned or raised."""
        if isinstance(out, HwzswapError):
            self._load_failed(out, before)
            return
        if isinstance(out, BaseException):
            raise out
        for off, page in zip(offs, out):
            assert page == BANK[self.expected[off]], f"slot {off}: wrong page in a batch"
        if self.exclusive:
            for off in offs:
                del self.expected[off]

    @rule(offs=st.lists(st.integers(0, SLOTS - 1), min_size=1, max_size=8, unique=True))
    def swap_in_batch(self, offs):
        before = _counters(self.system)
        if any(off not in self.expected for off in offs):
            try:
                self.system.swap_in_batch(0, offs)
            except SwapDeviceError as exc:
                assert "not in use" in str(exc), exc
                return
            raise AssertionError(f"swap_in_batch of {offs} read a free slot")
        self._apply_in_batch(offs, self._in_batch(offs), before)

    @rule(data=st.data())
    def concurrent(self, data):
        """Two reclaim passes, a readahead and a writeback at once, from four threads, on
        disjoint slots (the kernel's folio lock serialises the ops of one slot only)."""
        slots = data.draw(st.permutations(range(SLOTS)), label="slots")
        a, b = data.draw(st.integers(1, 5), label="a"), data.draw(st.integers(1, 5), label="b")
        out1, out2 = slots[:a], slots[a:a + b]
        loads = [off for off in slots[a + b:] if off in self.expected][:6]
        (js1, f1), (js2, f2) = self._draw_pass(data, out1), self._draw_pass(data, out2)
        results: dict[str, Any] = {}

        def run(name: str, fn: Any, *args: Any) -> threading.Thread:
            t = threading.Thread(target=lambda: results.__setitem__(name, fn(*args)))
            t.start()
            return t

        self.offered_disabled += 0 if self.enabled else len(out1) + len(out2)
        self.offered += len(out1) + len(out2)
        before = _counters(self.system)
        threads = [run("out1", self._out_batch, out1, js1, f1),
                   run("out2", self._out_batch, out2, js2, f2),
                   run("wb", self.system.zswap.writeback, 4)]
        if loads:
            threads.append(run("in", self._in_batch, loads))
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads), "a concurrent swap op hung"
        self._apply_out_batch(out1, js1, results["out1"], before)
        self._apply_out_batch(out2, js2, results["out2"], before)
        if loads:
            self._apply_in_batch(loads, results["in"], before)

    @rule(off=st.integers(0, SLOTS - 1),
          where=st.sampled_from(["device", "dec_raise", "dec_bug", "dec_hang", "dec_flip"]),
          batch=st.booleans())
    def faulty_load(self, off, where, batch):
        """A load that meets a read fault (the swap file's, or the compressor's decompress):
        it fails with a clear error, or succeeds when the fault was not in its way or software
        took over; either way the page is still there, and loads once the fault is gone."""
        if off not in self.expected:
            return
        if where == "device":
            self.system.devices[0].inject("read", errno.EIO, 1)
        elif isinstance(self.backend, FaultLz4):
            self.backend.arm(where if where != "dec_flip" or self.verify else "dec_raise", 1)
        else:
            self.backend.inject(int(CC.INTERNAL), "decompress", 1)
        if batch:
            self.swap_in_batch([off])
        else:
            self.swap_in(off)
        self._clear()
        if off in self.expected:
            self.swap_in(off)

    @rule(off=st.integers(0, SLOTS - 1))
    def swap_free(self, off):
        self.system.swap_free(0, off)
        self.expected.pop(off, None)

    @rule()
    def free_all(self):
        """Freeing every slot returns the pool to empty."""
        for off in range(SLOTS):
            self.system.swap_free(0, off)
        self.expected.clear()
        self.system.drain()
        s = self.system.stats()
        assert s["stored_pages"] == 0 and s["staged_pages"] == 0, s
        assert s["pool_pages"] == 0 and s["compressed_bytes"] == 0, s
        assert s["same_filled_pages"] == 0, s

    @rule()
    def swapoff_swapon(self):
        """swapoff drops every page of the area (waiting for its device writes in flight);
        after a drain the pool is empty, and swapon starts a fresh, empty area."""
        self.system.swapoff(0)
        self.expected.clear()
        self.system.drain()
        s = self.system.stats()
        assert s["stored_pages"] == 0 and s["staged_pages"] == 0 and s["pool_pages"] == 0, s
        self.system.swapon(0, SLOTS)

    # -- engine ----------------------------------------------------------------------------

    @rule()
    def drain(self):
        self.system.drain()
        s = self.system.stats()
        assert s["stores"] == self.offered, (s["stores"], self.offered)
        # after a drain a page is staged only when its device write failed (kept in RAM)
        assert s["staged_pages"] == 0 or s["async_write_fail"] > 0, s

    @rule(on=st.booleans())
    def enable(self, on):
        """zswap switched off and on at run time: what it holds stays loadable."""
        self.system.zswap.enabled = on
        self.enabled = on

    @rule(n=st.integers(1, 6))
    def writeback(self, n):
        self.system.zswap.writeback(n)

    @rule(pages=st.integers(0, 8))
    def shrink(self, pages):
        self.system.zswap.shrink(pages)

    # -- faults ----------------------------------------------------------------------------

    @rule(op=st.sampled_from(["read", "write"]), code=st.sampled_from([errno.EIO, errno.ENOSPC]),
          count=st.integers(1, 3))
    def device_fault(self, op, code, count):
        self.system.devices[0].inject(op, code, count)

    @rule(data=st.data())
    def driver_fault(self, data):
        if isinstance(self.backend, FaultLz4):
            # wrong bytes from the driver are caught only by verify_pages (as documented)
            kinds = FAULTS if self.verify else FAULTS[:-1]
            kind = data.draw(st.sampled_from(kinds), label="fault")
            # each hang costs a deadline of wall time; two in a row mark the device failed
            count = data.draw(st.integers(1, 2 if kind.endswith("hang") else 3), label="count")
            self.backend.arm(kind, count)
        else:  # the emulated NX-842's own injector: a completion code, or no completion
            fault = data.draw(st.sampled_from([int(CC.INTERNAL), int(CC.CRC_MISMATCH), HANG]),
                              label="fault")
            op = data.draw(st.sampled_from(["compress", "decompress"]), label="op")
            self.backend.inject(fault, op, data.draw(st.integers(1, 4), label="count"))

    @rule(count=st.integers(1, 3))
    def allocator_fault(self, count):
        self.system.pool.allocator.fail_next(count)

    @rule()
    def clear_faults(self):
        self._clear()

    def _clear(self) -> None:
        self.system.devices[0].clear_faults()
        self.system.pool.allocator.clear_faults()
        if isinstance(self.backend, FaultLz4):
            self.backend.clear()
        else:
            self.backend.faults.disarm()

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def consistent(self):
        if self.system is None:
            return
        self.system.zswap.check()
        s = self.system.stats()
        negative = {k: v for k, v in s.items() if isinstance(v, (int, float)) and v < 0}
        assert not negative, negative
        assert s["stores"] == s["zswpout"] + sum(
            s[k] for k in ("reject_compress_poor", "reject_compress_fail", "reject_alloc_fail",
                           "reject_reclaim_fail", "reject_pool_limit", "reject_folio")) \
            + self.offered_disabled \
            + s["staged_dropped"], s
        # every page offered is counted once its batch has completed (async: in flight, none)
        assert s["stores"] <= self.offered, (s["stores"], self.offered)
        in_use = {off for off in range(SLOTS) if self.system.slot_in_use(0, off)}
        assert in_use == set(self.expected), (sorted(in_use), sorted(self.expected))
        assert s["stored_pages"] + s["staged_pages"] <= len(self.expected), s

    def teardown(self):
        try:
            if self.system is not None:
                s = self.system.stats()
                for key in ("driver_failed", "driver_timeouts", "driver_sw_fallbacks",
                            "driver_busy_retries", "driver_item_failures", "writeback_fail",
                            "written_back_pages", "async_write_fail", "reject_compress_fail",
                            "reject_alloc_fail", "reject_pool_limit", "reject_folio",
                            "writeback_raced"):
                    if s.get(key):
                        event(f"reached {key}")
                self._clear()
                self.system.drain()
                _wait_unstuck(self.system)  # until a hung call returns, none is made
                for off, j in sorted(self.expected.items()):
                    assert self.system.swap_in(0, off) == BANK[j], f"slot {off} lost its page"
                self.free_all()
                self.system.zswap.check()
        finally:
            if self.system is not None:
                self.system.close()
            if self.backend is not None:
                self.backend.close()
            self.dir.cleanup()


TestFaultModel = FaultModel.TestCase
TestFaultModel.settings = settings(max_examples=250, stateful_step_count=50, deadline=None,
                                   derandomize=True,
                                   suppress_health_check=[HealthCheck.too_slow])
