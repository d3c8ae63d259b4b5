"""The engine's guard against drivers that misbehave (``hwzswap/frontswap/compressor.py``).

Each driver here is real lz4 with one mistake a third-party driver made in review: it writes
into its input, hangs in decompress, returns ``None`` from ``poll``, declares malformed
capabilities, gets a second thread while a given-up call is still inside it, raises
``SystemExit``, or completes a decompress op as INCOMPRESSIBLE. The swap systems are real (a
swap file in tmp_path): a page the engine accepted must come back byte-exact, and the mistake
must show as an error from the HwzswapError family naming the driver.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities, CompOp, OpKind, OpStatus
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import DeviceError, DriverError, HwzswapError
from hwzswap.frontswap.compressor import Compressor

from fsutil import PAGE, compressible_pages


def as_batch(pages: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(pages), dtype=np.uint8).reshape(-1, PAGE).copy()


def system(make_system: Any, backend: Any, **zswap: Any) -> Any:
    return make_system(backend=backend, zswap=zswap, swap={"nr_pages": 128})


# -- a driver that writes into its input ---------------------------------------------------


class ScribbleFirst(Lz4Backend):
    """compress_batch writes into the pages it is given, then compresses what it wrote: the
    result decodes fine, to the wrong page (what the review's driver did)."""

    name = "test-scribble-first"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True)

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        pages[:, :16] = 0xEE
        return super().compress_batch(pages)


class ForceWritable(ScribbleFirst):
    """Sets its read-only view's write flag back, then writes (numpy allowed that on a view of
    a writable array; the engine's view is over a read-only buffer now, so it cannot)."""

    name = "test-force-writable"

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        pages.flags.writeable = True
        return super().compress_batch(pages)


class WritesThroughPointer(ScribbleFirst):
    """Writes through the batch's raw address, as a C driver (or a device's DMA) can whatever
    the flags say: only ``verify_pages``, with the CRCs taken before the call, can catch it."""

    name = "test-writes-through-pointer"

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        import ctypes

        raw = (ctypes.c_ubyte * pages.nbytes).from_address(pages.ctypes.data)
        np.frombuffer(raw, np.uint8).reshape(pages.shape)[:, :16] = 0xEE
        return [self.compress(p) for p in pages]


@pytest.mark.parametrize("watchdog", ["auto", "off"])
@pytest.mark.parametrize("mode", ["reclaim", "async"])
def test_a_driver_that_writes_its_input_gets_an_error_and_corrupts_nothing(
        make_system, mode, watchdog):
    """The driver gets read-only pages (the caller's, or async mode's staged copies): its
    write raises, the engine reports a DriverError naming it, the store is rejected and every
    page comes back exact from the swap file. (It used to write into the caller's array and
    the staged copies; 29 of 32 pages then loaded wrong, verify_pages seeing nothing.)"""
    s = system(make_system, ScribbleFirst(), batching=mode, verify_pages=True,
               driver_watchdog=watchdog)
    pages = compressible_pages(8)
    arr = as_batch(pages)
    s.swap_out_batch(0, range(8), arr)
    s.drain()
    assert arr.tobytes() == b"".join(pages)  # the caller's pages untouched
    assert [s.swap_in(0, o) for o in range(8)] == pages
    st_ = s.stats()
    assert st_["driver_bad_exception"] >= 1 and st_["zswpout"] == 0
    assert st_["verify_fail"] == 0
    last = s.zswap.compressor.last_error
    assert last.startswith("driver 'test-scribble-first': compress_batch: raised ValueError")
    assert "read-only: it must not write to its input" in last


def test_page_crcs_are_taken_before_the_driver_sees_the_pages(make_system):
    """A driver that writes through its batch's address (no flag stops that) and changes a
    page before compressing it: the object decodes to the changed page, and verify_pages (CRCs
    of the pages as given) catches it at load, where a CRC taken after the call blessed the
    wrong page."""
    s = system(make_system, WritesThroughPointer(), batching="reclaim", verify_pages=True)
    pages = compressible_pages(4)
    assert s.swap_out_batch(0, range(4), as_batch(pages)) == [True] * 4
    with pytest.raises(HwzswapError, match="verify_pages"):
        s.swap_in(0, 0)
    assert s.stats()["verify_fail"] == 1


def test_a_driver_cannot_set_its_input_writable_again(make_system):
    """The flag of the driver's read-only view cannot be set back (the view is over a read-only
    buffer): the driver's ValueError is a DriverError, the store is rejected, the caller's
    pages are untouched and each comes back exact from the swap file."""
    s = system(make_system, ForceWritable(), batching="reclaim", verify_pages=True)
    pages = compressible_pages(4)
    arr = as_batch(pages)
    assert s.swap_out_batch(0, range(4), arr) == [False] * 4
    assert arr.tobytes() == b"".join(pages)
    assert [s.swap_in(0, o) for o in range(4)] == pages
    assert s.stats()["driver_bad_exception"] == 1 and s.stats()["verify_fail"] == 0
    assert "WRITEABLE flag" in s.zswap.compressor.last_error


class AsyncScribbleSrc(Lz4Backend):
    """An asynchronous device that completes each op, then writes into its ``src``."""

    name = "test-async-scribble"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(asynchronous=True)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        done = super().poll(max_ops)
        for op in done:
            if op.kind is OpKind.COMPRESS:
                op.src[:8] = 0xEE
        return done


@pytest.mark.parametrize("mode", ["reclaim", "async"])
def test_an_async_device_writing_op_src_after_completion_changes_nothing(make_system, mode):
    s = system(make_system, AsyncScribbleSrc(), batching=mode, verify_pages=True)
    pages = compressible_pages(6)
    arr = as_batch(pages)
    s.swap_out_batch(0, range(6), arr)
    s.drain()
    assert arr.tobytes() == b"".join(pages)
    assert [s.swap_in(0, o) for o in range(6)] == pages
    st_ = s.stats()
    assert st_["driver_bad_exception"] >= 1 and st_["verify_fail"] == 0
    assert "driver 'test-async-scribble': poll: raised ValueError" in \
        s.zswap.compressor.last_error


# -- a driver whose decompress hangs ---------------------------------------------------------


class HungDecompress(Lz4Backend):
    """lz4 whose decompress (single and batch) blocks until released; counts the calls that
    entered it (each one a thread left stuck there). ``fmt``: declare the lz4 format."""

    name = "test-hung-decompress"

    def __init__(self, fmt: bool = False, **params: Any) -> None:
        super().__init__(**params)
        self.fmt = fmt
        self.release = threading.Event()
        self.entered = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(format="lz4" if self.fmt else None)

    def decompress(self, data: Any) -> bytes:
        self.entered += 1
        self.release.wait(20)
        return super().decompress(data)


@pytest.mark.parametrize("fmt", [False, True], ids=["no-software", "software"])
def test_a_hung_decompress_is_entered_once_whatever_loads_follow(make_system, fmt):
    """After one decompress is given up at its deadline, no load enters the driver again
    while that call is stuck: a load decodes in software at once, or fails at once (with no
    software decoder), and a readahead cluster pays one deadline, not one a page. (Every load
    used to wait the full deadline and leave one more thread stuck, after the device was
    marked failed too.)"""
    backend = HungDecompress(fmt=fmt)
    s = system(make_system, backend, batching="reclaim", device_timeout_ms=100,
               device_fail_after=2)
    pages = compressible_pages(12)
    try:
        assert s.swap_out_batch(0, range(12), as_batch(pages)) == [True] * 12
        threads = threading.active_count()
        got = []
        for off in range(4):
            try:
                got.append(s.swap_in(0, off))
            except DeviceError as exc:
                assert "no software decoder" in str(exc) and not fmt
                got.append(None)
        try:
            got.extend(s.swap_in_batch(0, list(range(4, 12))))
        except DeviceError:
            assert not fmt
        assert backend.entered == 1  # one thread stuck, whatever came after
        assert threading.active_count() <= threads + 1
        if fmt:
            assert got == pages and s.stats()["driver_sw_fallbacks"] == 12
        else:
            assert got == [None] * 4
    finally:
        backend.release.set()


class HungPoll(Lz4Backend):
    """An asynchronous device whose poll blocks until released, after its first ``ok`` polls."""

    name = "test-hung-poll"

    def __init__(self, ok: int, **params: Any) -> None:
        super().__init__(**params)
        self.ok = ok
        self.polls = 0
        self.release = threading.Event()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(asynchronous=True, format="lz4")

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        self.polls += 1
        if self.polls > self.ok:
            self.release.wait(20)
        return super().poll(max_ops)


def test_a_hung_poll_costs_one_deadline_for_a_readahead_cluster(make_system):
    backend = HungPoll(ok=1)
    s = system(make_system, backend, batching="reclaim", device_timeout_ms=100)
    pages = compressible_pages(8)
    try:
        assert s.swap_out_batch(0, range(8), as_batch(pages)) == [True] * 8
        assert s.swap_in_batch(0, list(range(8))) == pages  # in software, but the first
        assert backend.polls == 2  # the one that hung; none beside or after it
        assert s.stats()["driver_sw_fallbacks"] == 8
    finally:
        backend.release.set()


# -- poll() returning something that is not a list --------------------------------------------


class PollNone(Lz4Backend):
    name = "test-poll-none"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(asynchronous=True)

    def poll(self, max_ops: int | None = None) -> Any:
        super().poll(max_ops)
        return None


@pytest.mark.parametrize("mode", ["page", "reclaim"])
def test_poll_returning_none_is_a_driver_error_not_a_type_error(make_system, mode):
    s = system(make_system, PollNone(), batching=mode)
    pages = compressible_pages(4)
    assert s.swap_out_batch(0, range(4), as_batch(pages)) == [False] * 4  # rejected
    assert [s.swap_in(0, o) for o in range(4)] == pages
    assert s.stats()["driver_bad_result_type"] >= 1
    with pytest.raises(DriverError, match=r"driver 'test-poll-none': poll: returned NoneType; "
                                          r"expected a list \(or a tuple\) of the completed ops"):
        s.zswap.compressor.run_ops([CompOp.compress(pages[0])])


# -- malformed capabilities ---------------------------------------------------------------


class BadCaps(Lz4Backend):
    name = "test-bad-caps"
    caps: Any = None

    @property
    def capabilities(self) -> Any:
        if isinstance(self.caps, BaseException):
            raise self.caps
        return self.caps


@pytest.mark.parametrize("caps, why", [
    (Capabilities(batch=True, preferred_batch="lots"),  # type: ignore[arg-type]
     r"capabilities\.preferred_batch must be an int >= 1, got 'lots' \(str\)"),
    (Capabilities(preferred_batch=0), r"capabilities\.preferred_batch must be an int >= 1"),
    (Capabilities(batch="yes"),  # type: ignore[arg-type]
     r"capabilities\.batch must be True or False, got 'yes'"),
    (Capabilities(concurrent=None),  # type: ignore[arg-type]
     r"capabilities\.concurrent must be True or False, got None"),
    (Capabilities(asynchronous=1),  # type: ignore[arg-type]
     r"capabilities\.asynchronous must be True or False, got 1"),
    (Capabilities(format=7),  # type: ignore[arg-type]
     r"capabilities\.format must be None or the name of a software backend"),
    (Capabilities(max_batch=2.5),  # type: ignore[arg-type]
     r"capabilities\.max_batch must be an int >= 1 or None"),
    ({"batch": True}, r"capabilities is a dict, not a hwzswap\.backends\.contract\.Capabilities"),
    (RuntimeError("no caps"), r"reading its capabilities raised RuntimeError: no caps"),
    (SystemExit(3), r"reading its capabilities raised SystemExit: 3"),
], ids=["preferred-str", "preferred-0", "batch-str", "concurrent-none", "async-int",
        "format-int", "max-float", "dict", "raises", "sysexit"])
def test_malformed_capabilities_are_a_driver_error_naming_the_field(make_system, caps, why):
    backend = BadCaps()
    backend.caps = caps
    with pytest.raises(DriverError, match=r"^driver 'test-bad-caps': " + why):
        system(make_system, backend)


def test_a_keyboard_interrupt_reading_capabilities_is_not_swallowed():
    backend = BadCaps()
    backend.caps = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        Compressor(backend)


# -- a second thread in a driver that serves one call at a time ------------------------------


class SlowSerial(Lz4Backend):
    """compress_batch takes longer than the deadline, and records how many threads are in it
    at once. Not concurrent (the default)."""

    name = "test-slow-serial"
    delay_s = 0.25

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.lock = threading.Lock()
        self.inside = self.peak = self.calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True)

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        with self.lock:
            self.calls += 1
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            time.sleep(self.delay_s)
            return super().compress_batch(pages)
        finally:
            with self.lock:
                self.inside -= 1


def test_no_second_thread_enters_a_driver_while_a_given_up_call_is_inside(make_system):
    """The watchdog gave a call up at its deadline; until it returns, later calls are not made
    (refused at once, counted as refused, not as timeouts), so the driver never has two threads
    in it. Once it
    has returned, the driver is asked again. (A new worker used to enter beside it.)"""
    backend = SlowSerial()
    s = system(make_system, backend, batching="reclaim", device_timeout_ms=100,
               device_fail_after=100)
    pages = compressible_pages(6)
    for k in range(3):
        assert s.swap_out_batch(0, [k], as_batch(pages[k:k + 1])) == [False]
    assert backend.peak == 1 and backend.calls == 1
    assert s.stats()["driver_timeouts"] == 1 and s.stats()["driver_refused_stuck"] == 2
    dog = s.zswap.compressor.watchdog
    deadline = time.monotonic() + 10
    while dog.stuck() and time.monotonic() < deadline:
        time.sleep(0.01)
    backend.delay_s = 0.0
    assert s.swap_out_batch(0, [3, 4, 5], as_batch(pages[3:])) == [True] * 3
    assert backend.peak == 1 and backend.calls == 2
    assert [s.swap_in(0, o) for o in range(6)] == pages


# -- SystemExit and KeyboardInterrupt from a driver -------------------------------------------


class Raises(Lz4Backend):
    """compress raises ``exc`` (a BaseException) on every call; decompress works."""

    name = "test-raises-base"
    exc: BaseException = SystemExit(3)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=self.batch)

    batch = False

    def compress(self, page: Any) -> bytes | None:
        raise self.exc

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        raise self.exc


@pytest.mark.parametrize("watchdog", ["auto", "off"])
@pytest.mark.parametrize("mode", ["page", "reclaim"])
def test_system_exit_from_a_driver_is_a_driver_error(make_system, mode, watchdog):
    backend = Raises()
    backend.batch = mode == "reclaim"
    s = system(make_system, backend, batching=mode, driver_watchdog=watchdog)
    pages = compressible_pages(3)
    assert s.swap_out_batch(0, range(3), as_batch(pages)) == [False] * 3
    assert [s.swap_in(0, o) for o in range(3)] == pages
    assert s.stats()["driver_bad_exception"] >= 1
    assert "raised SystemExit: 3" in s.zswap.compressor.last_error
    with pytest.raises(DriverError, match=r"driver 'test-raises-base': compress(_batch)?: "
                                          r"raised SystemExit: 3"):
        if backend.batch:
            s.zswap.compressor._compress_call(as_batch(pages[:1]))
        else:
            s.zswap.compressor.compress(pages[0])


@pytest.mark.parametrize("watchdog", ["on", "off"])
def test_keyboard_interrupt_from_a_driver_still_propagates(watchdog):
    backend = Raises()
    backend.exc = KeyboardInterrupt()
    comp = Compressor(backend, timeout_ms=5000, watchdog=watchdog)
    try:
        with pytest.raises(KeyboardInterrupt):
            comp.compress(compressible_pages(1)[0])
    finally:
        comp.close()


# -- a decompress op completed INCOMPRESSIBLE --------------------------------------------------


class DecompressIncompressible(Lz4Backend):
    name = "test-dop-incompressible"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(asynchronous=True)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        done = super().poll(max_ops)
        for op in done:
            if op.kind is OpKind.DECOMPRESS:
                op.status, op.dst = OpStatus.INCOMPRESSIBLE, None
        return done


def test_a_decompress_op_completed_incompressible_is_a_contract_violation(make_system):
    s = system(make_system, DecompressIncompressible(), batching="page")
    page = compressible_pages(1)[0]
    assert s.swap_out(0, 0, page) is True
    with pytest.raises(DriverError, match=r"driver 'test-dop-incompressible': poll: returned "
                                          r"a decompress op completed INCOMPRESSIBLE"):
        s.swap_in(0, 0)
    st_ = s.stats()
    assert st_["driver_bad_result_type"] == 1 and st_["decompress_fail"] == 1
