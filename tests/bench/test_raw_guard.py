"""The bench's own calls into a driver (the codec-alone pass, the warm-up) cannot hang it and
name the call a driver's bug came from: real drivers that hang or raise, registered in-process,
with a small ``zswap.device_timeout_ms``."""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import time
from typing import Any, ClassVar

import lz4.block
import numpy as np
import pytest

from hwzswap.backends.contract import PAGE_SIZE, Backend
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.bench.runner import BenchRun, bench_failed, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.testing import real_memory_mix

RELEASE = threading.Event()  # set at teardown: every call stuck in a driver here returns


@pytest.fixture(autouse=True)
def _release_stuck_calls() -> Any:
    RELEASE.clear()
    yield
    RELEASE.set()


def _bench(cls: type, modes: str = "reclaim", warm_up: bool = True, ms: float = 100,
           pages: int = 64) -> tuple[dict[str, Any], float]:
    """Run the bench on ``cls`` in a thread of its own (the guard does not need the main
    thread), failing the test, not hanging it, when the bench does not end."""
    wl = build_workload("roundtrip", real_memory_mix(pages, seed=4), seed=0)
    got: dict[str, Any] = {}

    def bench() -> None:
        got["doc"] = run_bench(wl, BenchRun(backends=[cls.name], batching=modes,
                                            warm_up=warm_up,
                                            config={"zswap": {"device_timeout_ms": ms}}))

    t0 = time.monotonic()
    with registered(cls):
        runner = threading.Thread(target=bench, daemon=True)
        runner.start()
        runner.join(30)
    assert not runner.is_alive(), "the bench hung on a driver call"
    return got["doc"], time.monotonic() - t0


class HangsInCompress(Lz4Backend):
    """lz4 whose compress blocks (until the test ends) from its 6th call on."""

    name = "test-raw-hang-compress"
    calls: ClassVar[int] = 0

    def compress(self, page: Any) -> bytes | None:
        HangsInCompress.calls += 1
        if HangsInCompress.calls > 5:
            RELEASE.wait()
        return super().compress(page)


class HangsInDecompress(Lz4Backend):
    """lz4 whose decompress blocks (until the test ends) from its 4th call on, from any
    thread: the engine's watchdog gives its calls up, the bench's raw pass must too."""

    name = "test-raw-hang-decompress"
    calls: ClassVar[int] = 0

    def decompress(self, data: Any) -> bytes:
        HangsInDecompress.calls += 1
        if HangsInDecompress.calls > 3:
            RELEASE.wait()
        return super().decompress(data)


def test_a_compress_that_hangs_fails_its_row_within_the_deadline() -> None:
    """It hung ``hwzswap bench`` for ever, in the warm-up's direct call."""
    HangsInCompress.calls = 0
    doc, took = _bench(HangsInCompress, modes="reclaim,page")
    assert not doc["results"] and bench_failed(doc)
    first, second = doc["failed"]
    assert (first["batching"], first["phase"]) == ("reclaim", "run")
    err = first["error"]
    assert err.startswith("DeviceTimeoutError: driver 'test-raw-hang-compress': compress")
    assert "did not return within 100 ms (zswap.device_timeout_ms)" in err
    assert "stuck in compress() at test_raw_guard.py:" in err  # the driver's own line
    # the next mode is not run into a driver that still holds the stuck call
    assert second["batching"] == "page" and "not run while that call is still in the driver" \
        in second["error"]
    # the call never returns before the test ends (the runner's join gives up at 30 s); the
    # bound is loose for a loaded CI box, the messages above say which deadline gave it up
    assert took < 10.0


def test_a_decompress_that_hangs_in_the_raw_pass_fails_its_row() -> None:
    """No warm-up: the stack's loads are bounded by the engine, the codec-alone pass's by the
    bench (it called ``decompress`` directly, and waited for ever)."""
    HangsInDecompress.calls = 0
    doc, took = _bench(HangsInDecompress, warm_up=False)
    (entry,) = doc["failed"]
    assert entry["phase"] == "run" and not doc["results"]
    assert "driver 'test-raw-hang-decompress': decompress did not return within 100 ms" in \
        entry["error"]
    assert "codec-alone pass" in entry["error"]
    assert took < 10.0  # the call never returns before the test ends


_libc = ctypes.CDLL(None)


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


_POLLIN = 1
_KEEP: list[Any] = []


class _Lz4CompressOnly(Backend):
    """lz4's compress; the decompress is the subclass's."""

    def compress(self, page: Any) -> bytes | None:
        out = lz4.block.compress(bytes(page), store_size=False)
        return out if len(out) < PAGE_SIZE else None


@pytest.fixture
def blocks_in_c() -> Any:
    """A driver whose decompress is C code with no Python frame of its own (a ctypes call of
    libc's ``poll`` on a pipe's read end, through ``functools.partial``): it blocks until
    teardown closes the pipe's write end (at most 60 s), far past a 5 ms deadline, then
    returns (so the abandoned thread ends by itself)."""
    rd, wr = os.pipe()
    pfd = _PollFd(rd, _POLLIN, 0)
    _KEEP.append((rd, pfd))  # a given-up poll may still read them after the test

    class BlocksInC(_Lz4CompressOnly):
        name = "test-raw-block-in-c"
        decompress = staticmethod(  # type: ignore[assignment]
            functools.partial(_libc.poll, ctypes.byref(pfd), 1, 60_000))

    try:
        yield BlocksInC
    finally:
        os.close(wr)  # poll sees the hang-up and returns; the read end stays open (_KEEP)


def test_a_driver_call_with_no_python_frame_is_given_up_too(blocks_in_c: type) -> None:
    """Without a frame of its own the call is given up once no op finished for the deadline
    times the most calls one op can make (never sooner than a legitimate op)."""
    doc, took = _bench(blocks_in_c, warm_up=False, ms=5, pages=16)
    (entry,) = doc["failed"]
    assert "driver 'test-raw-block-in-c': a call made no progress for" in entry["error"]
    assert "ms (130 calls' deadlines) (zswap.device_timeout_ms)" in entry["error"]
    # given up (after 130 x 5 ms of no progress) long before the call returns (at teardown,
    # or 60 s); loose for a loaded CI box
    assert took < 15.0


class SlowButAnswers(Lz4Backend):
    """Every call takes 3 ms, well within a 100 ms deadline, while a chunk of them takes far
    longer than 100 ms: the raw pass must not give that up."""

    name = "test-raw-slow"

    def compress(self, page: Any) -> bytes | None:
        time.sleep(0.003)
        return super().compress(page)

    def decompress(self, data: Any) -> bytes:
        time.sleep(0.003)
        return super().decompress(data)


def test_a_slow_driver_within_its_deadline_is_measured() -> None:
    doc, _ = _bench(SlowButAnswers, ms=100, pages=48)
    assert not doc["failed"], doc["failed"]
    (r,) = doc["results"]
    assert r["verified_pages"] == r["pages"] and r["raw_mismatches"] == 0


class Raises(Lz4Backend):
    """A bug: decompress raises ValueError on every call from its 3rd on."""

    name = "test-raw-raises"
    calls: ClassVar[int] = 0

    def decompress(self, data: Any) -> bytes:
        Raises.calls += 1
        if Raises.calls > 2:
            raise ValueError("boom")
        return super().decompress(data)


class WrongType(Lz4Backend):
    """A bug: decompress returns a list of ints; the default decompress_batch trips on it."""

    name = "test-raw-wrong-type"

    def decompress(self, data: Any) -> Any:
        return list(super().decompress(data))


class CompressGivesText(Lz4Backend):
    name = "test-raw-text"

    def compress(self, page: Any) -> Any:
        out = super().compress(page)
        return None if out is None else "not bytes"


@pytest.mark.parametrize(("cls", "expect"), [
    (Raises, "DriverError: driver 'test-raw-raises': decompress_batch raised ValueError: boom "
             "(in decompress() at test_raw_guard.py:"),
    (WrongType, "DriverError: driver 'test-raw-wrong-type': decompress_batch raised TypeError: "),
    (CompressGivesText, "DriverError: driver 'test-raw-text': compress returned a str for a "
                        "page; a compressed page is bytes-like"),
])
def test_a_drivers_bug_in_a_direct_call_names_the_driver_and_the_call(cls: type,
                                                                      expect: str) -> None:
    """They were bare errors on the failed row ("ValueError: boom")."""
    Raises.calls = 0
    doc, _ = _bench(cls)
    (entry,) = doc["failed"]
    assert entry["phase"] == "run" and entry["error"].startswith(expect), entry["error"]


def test_the_raw_pass_runs_on_the_guards_worker_and_is_timed_there() -> None:
    """The codec-alone calls happen on the bench's worker, not on the caller's thread (the
    hand-off is once a chunk, outside every timed call)."""
    seen: set[str] = set()

    class Where(Lz4Backend):
        name = "test-raw-where"

        def compress(self, page: Any) -> bytes | None:
            seen.add(threading.current_thread().name)
            return super().compress(page)

    doc, _ = _bench(Where, warm_up=False)
    assert not doc["failed"]
    assert "hwzswap-bench-raw-test-raw-where" in seen
    assert np.isfinite(doc["results"][0]["raw_store_pages_per_s"])


def test_the_raw_pass_bounds_a_drivers_calls_as_the_engine_does() -> None:
    """A driver the engine watches gets the engine's deadline per call; one the engine calls
    directly (a built-in) is not held to it (20 ms failed a whole batch call of the emulated
    NX-842, its first one loading modules): it gets a safety net of at least a minute."""
    from hwzswap.backends.registry import get_backend
    from hwzswap.bench.runner import RAW_SAFETY_NET_S, _configure_guard, compile_workload, raw_guard
    from hwzswap.config import load_config

    cw = compile_workload(build_workload("roundtrip", real_memory_mix(64, 3), seed=0))
    cfg = load_config({"zswap": {"device_timeout_ms": 20}})
    builtin = get_backend("lz4")
    guard = raw_guard(builtin)
    _configure_guard(guard, builtin, cfg, cw)
    assert guard.timeout_s >= RAW_SAFETY_NET_S and "safety net" in guard.source

    class Outside(Lz4Backend):
        name = "test-raw-outside"

    with registered(Outside):
        outside = Outside()
        guard = raw_guard(outside)
        _configure_guard(guard, outside, cfg, cw)
        assert guard.timeout_s == pytest.approx(0.02) and guard.source == "zswap.device_timeout_ms"
