"""The conformance kit: checks every backend passes, built-in or third-party.

A driver runs the whole kit with one call::

    from hwzswap.testing import check_backend
    report = check_backend("mycodec-myaccel", queue_depth=4)   # a name (plus params) or an instance

or, in its own pytest suite, with one line (one test per parameter set of the YAML file)::

    from hwzswap.testing import conformance_tests
    test_conformance = conformance_tests("mycodec-myaccel", params_yaml="tests/params.yaml")

The kit hands a driver what the engine hands it: **read-only** input (pages, arrays, compressed
objects; a driver that writes into its input, or pins it writable with ``ctypes.from_buffer``,
fails naming that rule) and batches of at most the driver's ``max_batch`` pages, split as the
engine splits them.

What the checks cover (:data:`CHECKS`, in the order they run): the capabilities (each field of
the type and range the engine takes: :func:`~hwzswap.backends.contract.capabilities_problem`); single-page
round trips; BUSY semantics and ``pending()``; ``poll(max_ops)``; incompressible pages; the batch
calls and their per-item results (:class:`~hwzswap.backends.contract.CompressedBatch`,
:class:`~hwzswap.backends.contract.DecompressedBatch` or the old list/array shapes); async ops
against the sync results; byte-identical output from the sync, async and batch paths (one set of
settings); modelled device time advancing (``time_basis == "modeled"``); corrupt input; the config
round trip. A backend that declares a ``fault_rate`` parameter is also run with faults injected
(:func:`check_faults`): every op must complete as SUCCESS, INCOMPRESSIBLE or DEVICE_ERROR, nothing
may be lost, and the errors are counted in the report.

Every check runs in a worker thread under a deadline (``timeout_s``, default
:data:`DEFAULT_TIMEOUT_S`, or the environment's ``HWZSWAP_CHECK_TIMEOUT_S``): a driver whose
``poll`` never completes an op, or whose call never returns, fails that check with a timeout that
names the call it is stuck in (the driver's own frame, not the contract's default loop); the kit
never hangs. A failure is a :class:`ConformanceError` (an ``AssertionError``) whose message starts
``[backend] check: page i: ...``; an exception outside the ``HwzswapError`` family names the call
and the driver's line, and a ``close()`` that raises fails the ``close`` check.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    CompressedBatch,
    DecompressedBatch,
    ItemStatus,
    OpStatus,
    as_count,
    capabilities_problem,
    declared_gauges,
    read_only_view,
)
from hwzswap.backends.registry import get_backend, get_backend_class
from hwzswap.errors import (
    BackendError,
    ConfigError,
    CorruptDataError,
    DeviceError,
    HwzswapError,
    InvalidInputError,
    InvalidParameterError,
    UnknownBackendError,
)

#: Seconds one check may take before it fails as a timeout (``HWZSWAP_CHECK_TIMEOUT_S`` overrides).
DEFAULT_TIMEOUT_S = 120.0
#: The parameter a backend declares to inject device faults at a rate (a float in [0, 1]).
FAULT_PARAM = "fault_rate"
#: The fault rate the kit injects unless ``fault_params`` says otherwise.
DEFAULT_FAULT_RATE = 0.25


def _default_timeout() -> float:
    text = os.environ.get("HWZSWAP_CHECK_TIMEOUT_S")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"HWZSWAP_CHECK_TIMEOUT_S must be a number of seconds, got {text!r}"
        ) from None
    if not value > 0:
        raise ConfigError(f"HWZSWAP_CHECK_TIMEOUT_S must be > 0, got {text!r}")
    return value


# -- pages ----------------------------------------------------------------------------------


def sample_pages(seed: int = 0) -> dict[str, np.ndarray]:
    """Named pages covering the shapes real swap traffic has."""
    rng = np.random.default_rng(seed)
    pages: dict[str, np.ndarray] = {}
    pages["zero"] = np.zeros(PAGE_SIZE, np.uint8)
    pages["same_filled"] = np.frombuffer(
        np.full(PAGE_SIZE // 8, 0x0123456789ABCDEF, dtype=np.uint64).tobytes(), np.uint8
    ).copy()
    pages["random"] = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    words = [b"page ", b"swap ", b"zswap ", b"compress ", b"the ", b"kernel ", b"memory\n"]
    text = b"".join(words[i] for i in rng.integers(0, len(words), 2000))
    pages["text"] = np.frombuffer(text[:PAGE_SIZE], np.uint8).copy()
    # Heap-like: small integers, pointers sharing high bytes, zero runs.
    heap = np.zeros(PAGE_SIZE // 8, np.uint64)
    base = np.uint64(0x00007F3A_12340000)
    kinds = rng.integers(0, 4, heap.size)
    heap[kinds == 1] = base + rng.integers(0, 1 << 16, int((kinds == 1).sum())).astype(np.uint64) * 16
    heap[kinds == 2] = rng.integers(0, 100, int((kinds == 2).sum())).astype(np.uint64)
    heap[kinds == 3] = rng.integers(0, 1 << 63, int((kinds == 3).sum()), dtype=np.uint64)
    pages["heap_like"] = np.frombuffer(heap.tobytes(), np.uint8).copy()
    mixed = rng.integers(0, 256, PAGE_SIZE, dtype=np.uint8)
    mixed[: PAGE_SIZE // 2] = 0
    pages["half_zero"] = mixed
    ramp = (np.arange(PAGE_SIZE) % 251).astype(np.uint8)
    pages["ramp"] = ramp
    return pages


def real_memory_mix(n: int = 64, seed: int = 1) -> np.ndarray:
    """An ``(n, 4096)`` batch mixing the shapes of :func:`sample_pages` in random order."""
    rng = np.random.default_rng(seed)
    kinds = list(sample_pages(seed).values())
    out = np.empty((n, PAGE_SIZE), np.uint8)
    for i in range(n):
        out[i] = kinds[int(rng.integers(0, len(kinds)))]
        if rng.random() < 0.5:  # perturb so pages are not all identical
            j = int(rng.integers(0, PAGE_SIZE - 64))
            out[i, j : j + 64] = rng.integers(0, 256, 64, dtype=np.uint8)
    return out


# -- failures and reports -------------------------------------------------------------------


class ConformanceError(AssertionError):
    """A backend broke the contract. ``backend``, ``check`` and ``page`` (an index, a sample
    page's label, or ``None``) say where; the message reads ``[backend] check: page i: detail``."""

    def __init__(self, backend: str, check: str, detail: str, page: Any = None) -> None:
        self.backend, self.check, self.page, self.detail = backend, check, page, detail
        where = "" if page is None else f"page {page}: "
        super().__init__(f"[{backend}] {check}: {where}{detail}")


def _fail(backend: Backend | str, check: str, detail: str, page: Any = None) -> ConformanceError:
    name = backend if isinstance(backend, str) else backend.name
    return ConformanceError(name, check, detail, page)


@dataclass
class ConformanceReport:
    """What one run of the kit on one parameter set found (returned when every check passed).

    ``checks`` maps each check that ran to its seconds, in run order; ``faults`` holds the fault
    check's counts (ops per path, errors per path, the fault parameters used), or ``None`` when the
    backend declares no ``fault_rate`` parameter; ``source`` says where ``params`` came from (a
    YAML file and key) or is ``None``.
    """

    backend: str
    params: dict[str, Any]
    checks: dict[str, float] = field(default_factory=dict)
    faults: dict[str, Any] | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        text = f"{self.backend} {self.params}{where}: {len(self.checks)} checks passed"
        if self.faults is not None:
            text += f"; with faults injected: {self.faults['errors']} errors in {self.faults['ops']} ops"
        return text


# -- deadlines ------------------------------------------------------------------------------

_local = threading.local()


def _deadline() -> float:
    """The monotonic time by which the running check must finish (no deadline: 1 hour)."""
    return getattr(_local, "deadline", time.monotonic() + 3600.0)


def _timeout() -> float:
    return getattr(_local, "timeout", 3600.0)


_CONTRACT = os.path.abspath(os.path.join(os.path.dirname(__file__), "backends", "contract.py"))
_STDLIB = tuple(os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))


def _driver_call(stack: Sequence[traceback.FrameSummary]) -> str | None:
    """The name of the driver call the kit made (the first frame below this module's)."""
    here = os.path.abspath(__file__)
    last = max((i for i, f in enumerate(stack) if os.path.abspath(f.filename) == here), default=-1)
    return stack[last + 1].name if last + 1 < len(stack) else None


def _driver_site(stack: Sequence[traceback.FrameSummary]) -> str | None:
    """Where in a driver a call is (or raised): the call the kit made (the first frame below
    this module's) and the deepest frame of the driver's own code below it (not the contract's
    default loops in ``hwzswap/backends/contract.py``, not the standard library), as
    ``decompress() at driver.py:88`` or ``decompress() at driver.py:88, in decompress_batch()``;
    None when no frame lies below this module's."""
    here = os.path.abspath(__file__)
    last = max((i for i, f in enumerate(stack) if os.path.abspath(f.filename) == here), default=-1)
    below = list(stack[last + 1:])
    if not below:
        return None
    own = [f for f in below if os.path.abspath(f.filename) != _CONTRACT
           and not os.path.abspath(f.filename).startswith(_STDLIB)]
    f = (own or below)[-1]
    text = f"{f.name}() at {Path(f.filename).name}:{f.lineno}"
    if f is not below[0]:
        text += f", in {below[0].name}()"
    return text


def _stuck_in(thread: threading.Thread) -> str:
    """The driver call a hung check thread is in: its own frame (not the contract's default
    loop that called it), and the call the kit made when that differs."""
    frame = sys._current_frames().get(thread.ident or -1)  # documented CPython API
    if frame is None:
        return "an unknown call"
    stack = traceback.extract_stack(frame)
    site = _driver_site(stack)
    if site is not None:
        return site
    f = stack[-1]
    return f"{f.name}() at {Path(f.filename).name}:{f.lineno}"


def run_with_deadline(name: str, check: str, fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``fn`` in a daemon thread and return its result; raise a :class:`ConformanceError`
    naming ``check`` when it does not finish within ``timeout_s`` (the thread is abandoned) or
    when it raises something other than a :class:`ConformanceError`."""
    result: dict[str, Any] = {}

    def target() -> None:
        _local.deadline = time.monotonic() + timeout_s
        _local.timeout = timeout_s
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["exc"] = exc

    thread = threading.Thread(target=target, name=f"hwzswap-check-{name}-{check}", daemon=True)
    thread.start()
    # a little past the in-check deadline, so _drive's own (more precise) message wins
    thread.join(timeout_s + min(1.0, timeout_s))
    if thread.is_alive():
        raise _fail(
            name, check,
            f"timed out: did not finish within {timeout_s:g} s, stuck in {_stuck_in(thread)}; "
            "a driver call must return (an overdue device op completes as DEVICE_ERROR, a "
            "synchronous call raises DeviceError)",
        )
    exc = result.get("exc")
    if exc is None:
        return result.get("value")
    if isinstance(exc, ConformanceError):
        raise exc
    raise _fail(name, check, _raised(exc)) from exc


def _raised(exc: BaseException, call: str | None = None) -> str:
    """``compress raised ValueError: boom (in compress() at driver.py:12)``: what a driver call
    raised, naming the call (from the traceback when ``call`` is None) and the driver's line;
    an error that says the input is read-only gets the rule (the kit's input is, as the
    engine's is)."""
    stack = traceback.extract_tb(exc.__traceback__)
    site = _driver_site(stack)
    call = call or _driver_call(stack)
    text = f"{call + ' ' if call else ''}raised {type(exc).__name__}: {exc}"
    if site is not None:
        text += f" (in {site})"
    if _read_only_error(exc):
        text = (f"{call or 'a call'} wrote into its input (or asked for a writable buffer), "
                f"which is read-only: {text}. A driver's input pages and objects are read-only "
                "(the engine and the bench pass them so); a driver that needs a writable buffer "
                "copies first (bytearray(page), np.array(page), ctypes' from_buffer_copy)")
    return text


def _read_only_error(exc: BaseException) -> bool:
    """Whether ``exc`` is what writing into read-only memory raises (numpy, memoryview,
    ctypes' ``from_buffer``)."""
    text = str(exc).lower()
    return isinstance(exc, (TypeError, ValueError, BufferError)) and (
        "read-only" in text or "readonly" in text or "not writable" in text
        or "writeable flag" in text)


# -- result shapes --------------------------------------------------------------------------

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _frozen(pages: np.ndarray) -> np.ndarray:
    """A read-only copy of ``pages`` over immutable memory (a ``bytes`` object), as a driver
    gets its input from the engine: writing into it raises, and it cannot be made writable."""
    return np.frombuffer(np.ascontiguousarray(pages).tobytes(), np.uint8).reshape(pages.shape)


def _call(backend: Backend, check: str, page: Any, call: str, *args: Any) -> Any:
    """``backend.<call>(*args)``: its result, a HwzswapError as it is (the checks judge those),
    anything else a failure naming the call, the page and the driver's line (and, for a write
    into the read-only input, the rule)."""
    try:
        return getattr(backend, call)(*args)
    except (HwzswapError, ConformanceError):
        raise
    except Exception as exc:  # noqa: BLE001 - a driver bug, reported with where it happened
        raise _fail(backend, check, _raised(exc, call), page) from exc


def _batch_parts(backend: Backend, n: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of at most the driver's ``max_batch`` items, as the engine splits a
    batch (:func:`hwzswap.frontswap.compressor.in_calls_of`): a driver is never handed more."""
    cap = backend.capabilities.max_batch
    if cap is None or n <= cap:
        return [(0, n)]
    return [(lo, min(n, lo + cap)) for lo in range(0, n, cap)]


def _moved(exc: ConformanceError, by: int) -> ConformanceError:
    """``exc`` with its page index counted from the whole batch, not from one call's part."""
    if not by or not isinstance(exc.page, int):
        return exc
    return ConformanceError(exc.backend, exc.check, exc.detail, exc.page + by)


def compress_batch_items(backend: Backend, check: str, pages: np.ndarray,
                         raws: list[tuple[int, Any]] | None = None) -> list[Any]:
    """``compress_batch`` on ``pages`` in calls of at most ``max_batch`` pages (as the engine
    makes them), each result validated (:func:`batch_items`); one item per page. ``raws``
    collects each call's result with its first page's index."""
    items: list[Any] = []
    for lo, hi in _batch_parts(backend, len(pages)):
        out = _call(backend, check, None, "compress_batch", pages[lo:hi])
        if raws is not None:
            raws.append((lo, out))
        try:
            items += batch_items(backend, check, out, hi - lo)
        except ConformanceError as exc:
            raise _moved(exc, lo) from None
    return items


def decompress_batch_pages(backend: Backend, check: str, items: Any
                           ) -> tuple[np.ndarray, dict[int, str]]:
    """``decompress_batch`` on ``items`` (a list or a CompressedBatch) in calls of at most
    ``max_batch`` items, each result validated (:func:`batch_pages`): the pages and the failed
    items with their reasons, numbered over all of ``items``."""
    n = len(items)
    parts = _batch_parts(backend, n)
    if len(parts) == 1:
        return batch_pages(backend, check, _call(backend, check, None, "decompress_batch", items), n)
    pages, errors = [], {}
    for lo, hi in parts:
        chunk = (items.take(range(lo, hi)) if isinstance(items, CompressedBatch)
                 else items[lo:hi])
        try:
            got, errs = batch_pages(backend, check,
                                    _call(backend, check, None, "decompress_batch", chunk), hi - lo)
        except ConformanceError as exc:
            raise _moved(exc, lo) from None
        pages.append(got)  # joined once every call returned, as the engine joins them
        errors.update({lo + i: why for i, why in errs.items()})
    return np.concatenate(pages), errors


def _compressed(backend: Backend, check: str, out: Any, page: Any, call: str = "compress") -> bytes | None:
    """A single-page compress result as bytes (or None), or fail naming what is wrong."""
    if out is None:
        return None
    if not isinstance(out, _BYTES_LIKE):
        raise _fail(backend, check, f"{call} returned {type(out).__name__}, expected bytes-like "
                    "or None", page)
    data = memoryview(out).tobytes()
    if not data:
        raise _fail(backend, check, f"{call} returned 0 bytes (an incompressible page is None)", page)
    if len(data) >= PAGE_SIZE:
        raise _fail(backend, check, f"{call} returned {len(data)} bytes, not smaller than the "
                    f"{PAGE_SIZE}-byte page (an incompressible page is None)", page)
    return data


def _page_back(backend: Backend, check: str, out: Any, expect: bytes | None, page: Any,
               call: str = "decompress") -> bytes:
    """A single-page decompress result: bytes-like, exactly one page, equal to ``expect``."""
    if not isinstance(out, _BYTES_LIKE) and not isinstance(out, np.ndarray):
        raise _fail(backend, check, f"{call} returned {type(out).__name__}, expected bytes", page)
    data = memoryview(out).tobytes() if not isinstance(out, np.ndarray) else out.tobytes()
    if len(data) != PAGE_SIZE:
        raise _fail(backend, check, f"{call} returned {len(data)} bytes, expected exactly "
                    f"{PAGE_SIZE}", page)
    if expect is not None and data != expect:
        j = next(i for i in range(PAGE_SIZE) if data[i] != expect[i])
        raise _fail(backend, check, f"{call} returned wrong bytes (first difference at byte {j})",
                    page)
    return data


def batch_items(backend: Backend, check: str, out: Any, n: int) -> list[Any]:
    """Validate a ``compress_batch`` result for ``n`` pages and return one item per page: bytes,
    ``None`` (incompressible) or an exception / error text for a failed item.

    Accepted shapes: a :class:`CompressedBatch` (one flat buffer, offsets, sizes, per-item status,
    a reason for each failed item) or the old list (bytes-like, ``None``, an exception instance).
    """
    if isinstance(out, CompressedBatch):
        if len(out) != n:
            raise _fail(backend, check, f"compress_batch returned a CompressedBatch of {len(out)} "
                        f"items for {n} pages")
        if out.sizes.shape != (n,) or out.offsets.shape != (n,) or out.status.shape != (n,):
            raise _fail(backend, check, "compress_batch returned a CompressedBatch whose offsets, "
                        "sizes and status do not have one entry per page")
        total = memoryview(out.data).nbytes
        valid = {int(s) for s in ItemStatus}
        items: list[Any] = []
        for i in range(n):
            st, size, off = int(out.status[i]), int(out.sizes[i]), int(out.offsets[i])
            if st not in valid:
                raise _fail(backend, check, f"CompressedBatch status {st} is not an ItemStatus", i)
            if st == ItemStatus.OK:
                if not 0 < size < PAGE_SIZE:
                    raise _fail(backend, check, f"CompressedBatch item of {size} bytes: an OK item "
                                f"holds 1..{PAGE_SIZE - 1} bytes", i)
                if off < 0 or off + size > total:
                    raise _fail(backend, check, f"CompressedBatch item at offset {off}+{size} lies "
                                f"outside its {total}-byte buffer", i)
                items.append(out.item_bytes(i))
            elif st == ItemStatus.INCOMPRESSIBLE:
                if size != 0:
                    raise _fail(backend, check, f"CompressedBatch INCOMPRESSIBLE item has size {size}",
                                i)
                items.append(None)
            else:
                reason = out.errors.get(i)
                if not reason:
                    raise _fail(backend, check, "CompressedBatch FAILED item has no reason in errors",
                                i)
                items.append(DeviceError(reason))
        stray = sorted(set(out.errors) - set(out.failed()))
        if stray:
            raise _fail(backend, check, f"CompressedBatch errors name items that did not fail: "
                        f"{stray[:5]}")
        return items
    if not isinstance(out, (list, tuple)):
        raise _fail(backend, check, f"compress_batch returned {type(out).__name__}, expected a "
                    "list or a CompressedBatch")
    if len(out) != n:
        raise _fail(backend, check, f"compress_batch returned {len(out)} items for {n} pages")
    items = []
    for i, item in enumerate(out):
        if isinstance(item, BaseException):
            items.append(item)
        else:
            items.append(_compressed(backend, check, item, i, "compress_batch"))
    return items


def batch_pages(backend: Backend, check: str, out: Any, n: int) -> tuple[np.ndarray, dict[int, str]]:
    """Validate a ``decompress_batch`` result for ``n`` items: the ``(n, 4096)`` uint8 pages and
    the failed items with their reasons (a :class:`DecompressedBatch` may mark some FAILED)."""
    errors: dict[int, str] = {}
    if isinstance(out, DecompressedBatch):
        pages = out.pages
        if not isinstance(pages, np.ndarray) or pages.shape != (n, PAGE_SIZE) or pages.dtype != np.uint8:
            shape = getattr(pages, "shape", type(pages).__name__)
            raise _fail(backend, check, f"decompress_batch returned a DecompressedBatch of {shape} "
                        f"pages for {n} items, expected ({n}, {PAGE_SIZE}) uint8")
        if out.status.shape != (n,):
            raise _fail(backend, check, f"DecompressedBatch status has shape {out.status.shape}, "
                        f"expected ({n},)")
        for i in out.failed():
            if int(out.status[i]) != ItemStatus.FAILED:
                raise _fail(backend, check, f"DecompressedBatch status {int(out.status[i])} is "
                            "neither OK nor FAILED", i)
            if not out.errors.get(i):
                raise _fail(backend, check, "DecompressedBatch FAILED item has no reason", i)
            errors[i] = out.errors[i]
        return pages, errors
    if not isinstance(out, np.ndarray):
        raise _fail(backend, check, f"decompress_batch returned {type(out).__name__}, expected an "
                    f"({n}, {PAGE_SIZE}) uint8 array or a DecompressedBatch")
    if out.shape != (n, PAGE_SIZE) or out.dtype != np.uint8:
        raise _fail(backend, check, f"decompress_batch returned {out.shape} {out.dtype} for {n} "
                    f"items, expected ({n}, {PAGE_SIZE}) uint8")
    return out, errors


# -- the async driver loop ------------------------------------------------------------------


def _drive(backend: Backend, ops: Sequence[CompOp], check: str,
           on_step: Callable[[int, int], None] | None = None) -> list[CompOp]:
    """Submit ``ops`` (resubmitting BUSY ones) and poll until every op came back, checking the
    async contract as it goes: ``submit`` accepts a prefix and marks the rest BUSY, ``poll``
    returns only accepted ops, each once, each completed; ``on_step(accepted_total, polled_total)``
    runs after every call. Fails when the check's deadline passes with ops still out."""
    index = {id(op): i for i, op in enumerate(ops)}
    waiting = list(ops)
    out: set[int] = set()
    accepted_total = polled_total = 0
    deadline = _deadline()
    while waiting or out:
        if waiting:
            for op in waiting:
                op.status = OpStatus.NOT_PROCESSED
            got = backend.submit(waiting)
            k = as_count(got)  # the engine's rule: an int or numpy integer, not a bool
            if k is None or not 0 <= k <= len(waiting):
                raise _fail(backend, check, f"submit() of {len(waiting)} ops returned {got!r}, "
                            f"expected the number accepted (an int, 0..{len(waiting)})")
            for op in waiting[:k]:
                if op.status is OpStatus.BUSY:
                    raise _fail(backend, check, f"op {index[id(op)]} was accepted (submit returned "
                                f"{k}) but is marked BUSY")
            for op in waiting[k:]:
                if op.status is not OpStatus.BUSY:
                    raise _fail(backend, check, f"op {index[id(op)]} was refused (submit accepted "
                                f"{k} of {len(waiting)}) but its status is {op.status.name}; a refused "
                                "op must be marked BUSY")
            out.update(id(op) for op in waiting[:k])
            accepted_total += k
            waiting = waiting[k:]
            if on_step:
                on_step(accepted_total, polled_total)
        got = backend.poll()
        if not isinstance(got, (list, tuple)):
            raise _fail(backend, check, f"poll() returned {type(got).__name__}, expected a list "
                        f"(or a tuple) of the completed ops, as the engine does")
        for op in got:
            key = id(op)
            if key not in index:
                raise _fail(backend, check, "poll() returned an op that was never submitted")
            if key not in out:
                raise _fail(backend, check, f"poll() returned op {index[key]}, which is not "
                            "outstanding (refused, or returned before)")
            if not op.done:
                raise _fail(backend, check, f"poll() returned op {index[key]} with status "
                            f"{op.status.name}")
            out.discard(key)
        polled_total += len(got)
        if on_step:
            on_step(accepted_total, polled_total)
        if time.monotonic() > deadline:
            stuck = sorted(index[k] for k in out)
            raise _fail(backend, check, f"timed out: {len(stuck)} accepted ops never completed within "
                        f"{_timeout():g} s (poll() keeps returning none of ops {stuck[:8]}); an "
                        "overdue op must complete as DEVICE_ERROR")
        if not got and (not waiting or k == 0):
            time.sleep(0.0002)  # a realtime device: let it work
    return list(ops)


# -- the checks -----------------------------------------------------------------------------


def check_capabilities(backend: Backend) -> None:
    """Every capability of a type and in a range the engine takes (the engine's rule,
    :func:`~hwzswap.backends.contract.capabilities_problem`), ``counters()`` a mapping and ``gauges`` a set of its key
    names; a modelled backend reports its device time."""
    try:
        caps = backend.capabilities
    except Exception as exc:  # noqa: BLE001 - a driver bug, reported with its line
        raise _fail(backend, "capabilities", _raised(exc, "reading capabilities")) from exc
    if not isinstance(caps, Capabilities):
        raise _fail(backend, "capabilities", f"capabilities is a {type(caps).__name__}, not a "
                    "hwzswap.backends.contract.Capabilities")
    problem = capabilities_problem(caps)
    if problem is not None:
        raise _fail(backend, "capabilities", problem)
    if caps.time_basis == "modeled":
        t = backend.modeled_device_us()
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise _fail(backend, "capabilities", f"a modeled backend reports modeled_device_us() "
                        f"= {t!r}, expected a finite number of µs >= 0")
    counters = backend.counters()
    if not isinstance(counters, Mapping):
        raise _fail(backend, "capabilities", f"counters() returned {type(counters).__name__}, "
                    "expected a dict")
    try:
        declared_gauges(backend)
    except BackendError as exc:
        raise _fail(backend, "capabilities", str(exc)) from None


def check_roundtrip(backend: Backend, pages: dict[str, np.ndarray] | None = None) -> None:
    """Every sample page compresses to something smaller (or None) and decodes byte-exact, from
    every buffer form; every form is read-only, as the engine's input is (a driver that writes
    into its input, or pins it writable, fails naming the rule)."""
    for label, page in (pages or sample_pages()).items():
        raw = page.tobytes()
        frozen = _frozen(page)
        forms = (frozen, raw, memoryview(frozen), memoryview(bytearray(raw)).toreadonly())
        for form in forms:
            out = _compressed(backend, "roundtrip", _call(backend, "roundtrip", label, "compress",
                                                          form), label)
            if bytes(form) != raw:  # not through the read-only view: another way in
                raise _fail(backend, "roundtrip", "compress wrote into its input page; a "
                            "driver's input is read-only", label)
            if out is None:
                continue
            _page_back(backend, "roundtrip", _call(backend, "roundtrip", label, "decompress", out),
                       raw, label)
    zero = _frozen(np.zeros(PAGE_SIZE, np.uint8))
    if _call(backend, "roundtrip", "zero", "compress", zero) is None:
        raise _fail(backend, "roundtrip", "a zero page did not compress", "zero")


def check_busy(backend: Backend, pages: np.ndarray | None = None) -> None:
    """BUSY semantics and ``pending()``: a burst of ops larger than any sane queue; ``submit``
    accepts a prefix and marks every refused op BUSY (never NOT_PROCESSED), and ``pending()``
    equals accepted minus polled after every call; every accepted op comes back exactly once."""
    batch = _frozen(real_memory_mix(64, seed=21) if pages is None else pages)
    if backend.pending() != 0:
        raise _fail(backend, "busy", f"pending() is {backend.pending()} before any op was submitted")

    def step(accepted: int, polled: int) -> None:
        p = backend.pending()
        if p != accepted - polled:
            raise _fail(backend, "busy", f"pending() is {p} with {accepted} ops accepted and "
                        f"{polled} polled; it must be accepted minus polled ({accepted - polled})")

    ops = _drive(backend, [CompOp.compress(p, user_data=i) for i, p in enumerate(batch)], "busy",
                 step)
    for i, op in enumerate(ops):
        if op.status not in (OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE):
            raise _fail(backend, "busy", f"op completed as {op.status.name} ({op.error})", i)


def check_poll(backend: Backend) -> None:
    """``poll(max_ops)`` returns at most ``max_ops`` ops; repeated polls return every accepted op
    once; ``pending()`` is 0 at the end."""
    batch = _frozen(real_memory_mix(8, seed=23))
    ops = [CompOp.compress(p, user_data=i) for i, p in enumerate(batch)]
    accepted = int(backend.submit(ops))
    if accepted < 1:
        raise _fail(backend, "poll", "an idle backend accepted none of 8 ops")
    back: list[CompOp] = []
    deadline = _deadline()
    limits = (1, 2)
    while len(back) < accepted:
        limit = limits[len(back) % 2]
        got = backend.poll(max_ops=limit)
        if len(got) > limit:
            raise _fail(backend, "poll", f"poll(max_ops={limit}) returned {len(got)} ops")
        back.extend(got)
        if time.monotonic() > deadline:
            raise _fail(backend, "poll", f"timed out: {accepted - len(back)} of {accepted} accepted "
                        f"ops never completed within {_timeout():g} s")
        if not got:
            time.sleep(0.0002)
    if {id(o) for o in back} != {id(o) for o in ops[:accepted]} or len(back) != accepted:
        raise _fail(backend, "poll", f"{accepted} ops accepted; poll() returned {len(back)}, not "
                    "each accepted op once")
    if ops[accepted:]:
        _drive(backend, ops[accepted:], "poll")
    if backend.pending() != 0:
        raise _fail(backend, "poll", f"pending() is {backend.pending()} after every op was polled")


def check_incompressible(backend: Backend, seed: int = 7) -> None:
    """Random pages come back as None / INCOMPRESSIBLE, never as output >= the page."""
    page = _frozen(np.random.default_rng(seed).integers(0, 256, PAGE_SIZE, dtype=np.uint8))
    out = _compressed(backend, "incompressible",
                      _call(backend, "incompressible", "random", "compress", page), "random")
    if out is not None:
        raise _fail(backend, "incompressible", f"random page gave {len(out)} bytes, not None",
                    "random")
    (op,) = _drive(backend, [CompOp.compress(page)], "incompressible")
    if op.status is not OpStatus.INCOMPRESSIBLE or op.dst is not None:
        raise _fail(backend, "incompressible",
                    f"async op status {op.status.name}, dst {op.dst!r:.20}", "random")


def _overlap_note(raws: list[tuple[int, Any]], i: int) -> str:
    """For item ``i`` of a batch compressed in calls whose results are ``raws``: which other
    OK items of its CompressedBatch share its bytes (offsets pointing at the same place), or
    an empty string."""
    for lo, out in raws:
        if not isinstance(out, CompressedBatch) or not lo <= i < lo + len(out):
            continue
        k = i - lo
        a, b = int(out.offsets[k]), int(out.offsets[k]) + int(out.sizes[k])
        ok = np.flatnonzero(out.status == int(ItemStatus.OK))
        other = [int(j) + lo for j in ok if j != k and int(out.offsets[j]) < b
                 and a < int(out.offsets[j]) + int(out.sizes[j])]
        if other:
            return (f"; its bytes {a}..{b} of the CompressedBatch overlap item(s) {other[:4]}'s: "
                    "are the offsets right?")
    return ""


def _snapshot(result: Any) -> list[bytes | None]:
    """A batch call's result as copied bytes per item (or the pages' bytes), to tell later
    whether the driver changed what it had returned."""
    if isinstance(result, CompressedBatch):
        return [result.item_bytes(i) for i in range(len(result))]
    if isinstance(result, DecompressedBatch):
        return [result.pages.tobytes()]
    if isinstance(result, np.ndarray):
        return [result.tobytes()]
    return [bytes(x) if isinstance(x, _BYTES_LIKE) else None for x in result]


def check_batch(backend: Backend, pages: np.ndarray | None = None) -> None:
    """Batch results are well formed per item, each decodes to its page, and None where the
    single-page result is None; a strided batch gives the same; ``decompress_batch`` takes a
    list or a CompressedBatch; the input (read-only) is untouched; a result stays as it was
    after the next call (the caller owns it: the engine may hold it until after its next call,
    e.g. a batch split by ``max_batch``). Batches go in calls of at most ``max_batch``."""
    batch = _frozen(real_memory_mix() if pages is None else pages)
    before = batch.copy()
    raws: list[tuple[int, Any]] = []
    items = compress_batch_items(backend, "batch", batch, raws)
    if not np.array_equal(batch, before):
        raise _fail(backend, "batch", "compress_batch wrote to its input pages")
    # the engine's form: a read-only view of a writable array (the caller's pages, a staged
    # copy): a driver that sets its write flag back, or writes through it another way, fails
    writable = np.array(batch)
    compress_batch_items(backend, "batch", read_only_view(writable))
    if not np.array_equal(writable, before):
        raise _fail(backend, "batch", "compress_batch changed its input pages (handed as a "
                    "read-only view of a writable array, as the engine hands them): a driver's "
                    "input is read-only, its write flag too; copy first (np.array(pages))")
    for i, item in enumerate(items):
        if isinstance(item, BaseException):
            raise _fail(backend, "batch", f"compress_batch failed this item: {item}", i)
        if item is not None:
            try:
                got = bytes(_call(backend, "batch", i, "decompress", item))
            except HwzswapError as exc:
                raise _fail(backend, "batch", "compress_batch's item does not decode to its page "
                            f"(decompress raised {type(exc).__name__}: {exc})"
                            f"{_overlap_note(raws, i)}", i) from exc
            if got != batch[i].tobytes():
                raise _fail(backend, "batch", "compress_batch's item does not decode to its page "
                            f"(decompress gave {len(got)} other bytes){_overlap_note(raws, i)}", i)
    kept_raws = [(lo, out, _snapshot(out)) for lo, out in raws]
    # a strided (non-contiguous) view of the batch compresses to the same pages
    big = np.repeat(np.asarray(batch), 2, axis=0)
    big.flags.writeable = False
    strided = big[::2]
    for i, item in enumerate(compress_batch_items(backend, "batch", strided)):
        if isinstance(item, BaseException) or (item is None) != (items[i] is None) or (
                item is not None and bytes(backend.decompress(item)) != batch[i].tobytes()):
            raise _fail(backend, "batch", "wrong result from a non-contiguous (strided) batch, "
                        "where the contiguous batch was right", i)
    # another batch (the pages in reverse order): a driver that reuses its output buffer
    # overwrites what it returned for the first one
    compress_batch_items(backend, "batch", _frozen(np.asarray(batch)[::-1]))
    for lo, out, snap in kept_raws:
        if _snapshot(out) != snap:
            raise _fail(backend, "batch", "the result of an earlier compress_batch call changed "
                        "when it was called again: the driver reuses the buffer it returned "
                        "(CompressedBatch.data or an item); once returned it is the caller's "
                        "(return a new buffer each call)")
    for i, page in enumerate(batch):
        single = _compressed(backend, "batch", _call(backend, "batch", i, "compress", page), i)
        if (items[i] is None) != (single is None):
            raise _fail(backend, "batch", f"batch None={items[i] is None}, single "
                        f"None={single is None}", i)
    kept = [i for i, it in enumerate(items) if it is not None]
    if kept:
        first = [items[i] for i in kept]
        out, errors = decompress_batch_pages(backend, "batch", first)
        if errors:
            j, why = next(iter(errors.items()))
            raise _fail(backend, "batch", f"decompress_batch failed a valid item: {why}", kept[j])
        held = out.tobytes()
        for j, i in enumerate(kept):
            if not np.array_equal(out[j], batch[i]):
                raise _fail(backend, "batch", "decompress_batch returned wrong bytes", i)
            if bytes(_call(backend, "batch", i, "decompress", items[i])) != batch[i].tobytes():
                raise _fail(backend, "batch", "single decompress of the batch output differs", i)
        back, _ = decompress_batch_pages(backend, "batch", first[::-1])
        if not np.array_equal(back, batch[kept[::-1]]):
            raise _fail(backend, "batch", "decompress_batch of the items in reverse order "
                        "returned wrong bytes")
        packed = CompressedBatch.from_items(first)
        out2, errors2 = decompress_batch_pages(backend, "batch", packed)
        if errors2 or not np.array_equal(out2, batch[kept]):
            raise _fail(backend, "batch", "decompress_batch of a CompressedBatch differs from the "
                        "input pages")
        if out.tobytes() != held:
            raise _fail(backend, "batch", "the pages an earlier decompress_batch call returned "
                        "changed when it was called again: the driver reuses the array it "
                        "returned; once returned it is the caller's (return a new array each call)")
    empty = backend.compress_batch(np.empty((0, PAGE_SIZE), np.uint8))
    if len(empty) != 0:
        raise _fail(backend, "batch", "an empty batch did not give an empty result")


def check_async(backend: Backend, pages: np.ndarray | None = None) -> None:
    """Async submit/poll results are correct, ``user_data`` untouched, bad input INVALID_INPUT."""
    batch = _frozen(real_memory_mix(24, seed=3) if pages is None else pages)
    ops = _drive(backend, [CompOp.compress(p, user_data=i) for i, p in enumerate(batch)], "async")
    for i, op in enumerate(ops):
        if op.user_data != i:
            raise _fail(backend, "async", f"user_data was changed to {op.user_data!r}", i)
        if op.status is OpStatus.INCOMPRESSIBLE:
            if op.dst is not None:
                raise _fail(backend, "async", "an INCOMPRESSIBLE op has a dst", i)
            continue
        if op.status is not OpStatus.SUCCESS or op.dst is None:
            raise _fail(backend, "async", f"status {op.status.name} ({op.error})", i)
        dst = _compressed(backend, "async", op.dst, i, "a compress op")
        if op.produced != len(dst):
            raise _fail(backend, "async", f"produced {op.produced} != len(dst) {len(dst)}", i)
        _page_back(backend, "async", _call(backend, "async", i, "decompress", dst),
                   batch[i].tobytes(), i)
    comp = [op for op in ops if op.status is OpStatus.SUCCESS]
    dops = _drive(backend, [CompOp.decompress(op.dst, user_data=op.user_data) for op in comp], "async")
    for dop in dops:
        if dop.status is not OpStatus.SUCCESS:
            raise _fail(backend, "async", f"decompress op: {dop.status.name} ({dop.error})",
                        dop.user_data)
        _page_back(backend, "async", dop.dst, batch[dop.user_data].tobytes(), dop.user_data,
                   "a decompress op")
    (bad,) = _drive(backend, [CompOp.compress(b"too short")], "async")
    if bad.status is not OpStatus.INVALID_INPUT:
        raise _fail(backend, "async", f"a 9-byte page gave {bad.status.name}, not INVALID_INPUT")


def check_sync_async(backend: Backend, pages: np.ndarray | None = None) -> None:
    """The sync, async and batch paths give byte-identical output (one set of settings)."""
    batch = _frozen(real_memory_mix(16, seed=5) if pages is None else pages)
    sync = [_compressed(backend, "sync_async", _call(backend, "sync_async", i, "compress", p), i)
            for i, p in enumerate(batch)]
    ops = _drive(backend, [CompOp.compress(p) for p in batch], "sync_async")
    items = compress_batch_items(backend, "sync_async", batch)
    for i, (s, op, b) in enumerate(zip(sync, ops, items, strict=True)):
        a = None if op.status is OpStatus.INCOMPRESSIBLE else (
            bytes(op.dst) if op.status is OpStatus.SUCCESS and op.dst is not None else op.status)
        for path, other in (("async", a), ("batch", b)):
            if isinstance(other, (OpStatus, BaseException)):
                raise _fail(backend, "sync_async", f"the {path} path failed: {other}", i)
            if other != s:
                raise _fail(
                    backend, "sync_async",
                    f"the {path} path gave {'None' if other is None else f'{len(other)} bytes'}, "
                    f"sync gave {'None' if s is None else f'{len(s)} bytes'}"
                    f"{' (different bytes)' if s is not None and other is not None and len(s) == len(other) else ''}; "
                    "every path must compress with the same settings", i)
    kept = [i for i, s in enumerate(sync) if s is not None]
    dops = _drive(backend, [CompOp.decompress(sync[i]) for i in kept], "sync_async")
    for i, dop in zip(kept, dops, strict=True):
        if dop.status is not OpStatus.SUCCESS:
            raise _fail(backend, "sync_async", f"async decompress: {dop.status.name} ({dop.error})", i)
        _page_back(backend, "sync_async", dop.dst, batch[i].tobytes(), i, "a decompress op")


def check_modeled_time(backend: Backend) -> None:
    """For ``time_basis == "modeled"``: ``modeled_device_us()`` is a finite number that grows
    with every kind of work (sync, async, batch; compress and decompress) and never falls."""
    if backend.capabilities.time_basis != "modeled":
        return
    page = _frozen(sample_pages()["heap_like"])
    last = [float(backend.modeled_device_us())]

    def advanced(what: str) -> None:
        t = backend.modeled_device_us()
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise _fail(backend, "modeled_time", f"modeled_device_us() = {t!r} after {what}")
        if t <= last[0]:
            raise _fail(backend, "modeled_time", f"modeled_device_us() did not advance after {what} "
                        f"(stays at {t:g} µs); a modeled backend charges device time for every op")
        last[0] = float(t)

    data = backend.compress(page)
    advanced("compress()")
    if data is None:
        raise _fail(backend, "modeled_time", "the heap-like page did not compress", "heap_like")
    backend.decompress(data)
    advanced("decompress()")
    (op,) = _drive(backend, [CompOp.compress(page)], "modeled_time")
    advanced("an async compress op")
    if op.device_us is not None and (not math.isfinite(op.device_us) or op.device_us < 0):
        raise _fail(backend, "modeled_time", f"op.device_us = {op.device_us!r}")
    compress_batch_items(backend, "modeled_time", _frozen(np.stack([page, page])))
    advanced("compress_batch()")


def _corruptions(data: bytes, rng: np.random.Generator) -> Iterable[tuple[str, bytes]]:
    yield "empty", b""
    yield "truncated to half", data[: len(data) // 2]
    yield "truncated by one", data[:-1]
    yield "garbage", rng.integers(0, 256, max(16, len(data)), dtype=np.uint8).tobytes()
    yield "all 0xff", b"\xff" * max(16, len(data))
    for k in range(8):
        buf = bytearray(data)
        pos = int(rng.integers(0, len(buf)))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
        yield f"bit flip at {pos}", bytes(buf)


def check_corrupt(backend: Backend, seed: int = 11) -> None:
    """Corrupt input raises CorruptDataError, or (a bit flip can be valid) decodes to a page.

    It must never return something that is not exactly one page, and never crash.
    """
    rng = np.random.default_rng(seed)
    page = _frozen(sample_pages()["heap_like"])
    data = _compressed(backend, "corrupt", backend.compress(page), "heap_like")
    if data is None:
        raise _fail(backend, "corrupt", "the heap-like sample page did not compress", "heap_like")
    for label, bad in _corruptions(data, rng):
        try:
            out = backend.decompress(bad)
        except CorruptDataError:
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to report any other type
            raise _fail(backend, "corrupt", f"{label}: raised {type(exc).__name__}: {exc}") from exc
        _page_back(backend, "corrupt", out, None, None, f"decompress of {label} data")
        if label.startswith("truncated") or label == "empty":
            raise _fail(backend, "corrupt", f"{label}: decoded without error")
    for bad_page in (b"short", np.zeros(PAGE_SIZE + 1, np.uint8)):
        try:
            backend.compress(bad_page)
        except InvalidInputError:
            continue
        raise _fail(backend, "corrupt", f"compress accepted a {len(bad_page)}-byte page")


def _same_class(backend: Backend) -> Callable[..., Backend]:
    """How to build another backend like this one: through the registry when the name is
    registered to this class, else from the class itself (a driver not installed yet)."""
    try:
        cls = get_backend_class(backend.name)
    except UnknownBackendError:
        cls = None
    if cls is type(backend):
        return lambda **p: get_backend(backend.name, **p)
    return lambda **p: type(backend)(**p)


def check_config(backend: Backend) -> None:
    """The config dict round-trips through the registry to an equivalent backend."""
    cfg = backend.get_config()
    if not isinstance(cfg, dict) or cfg.get("name") != backend.name:
        raise _fail(backend, "config", f"get_config() gave {cfg!r}")
    params = {k: v for k, v in cfg.items() if k != "name"}
    build = _same_class(backend)
    clone = build(**params)
    try:
        if clone.get_config() != cfg:
            raise _fail(backend, "config", f"{clone.get_config()!r} != {cfg!r}")
        page = _frozen(sample_pages()["heap_like"])
        a, b = backend.compress(page), clone.compress(page)
        if (a is None) != (b is None) or (a is not None and bytes(clone.decompress(a)) != page.tobytes()):
            raise _fail(backend, "config", "the clone does not interoperate with the original")
    except BaseException:
        if clone is not backend:
            with contextlib.suppress(Exception):
                clone.close()
        raise
    if clone is not backend:
        _call(clone, "close", None, "close")
    try:
        build(**params, no_such_parameter_xyz=1)
    except ValueError:
        pass
    else:
        raise _fail(backend, "config", "an unknown parameter was accepted")


def check_faults(backend: Backend, reference: Backend, pages: np.ndarray | None = None) -> dict[str, Any]:
    """With device faults injected in ``backend`` (``reference``: the same settings, no faults):
    every sync call returns a correct result or raises DeviceError, every op completes as SUCCESS,
    INCOMPRESSIBLE or DEVICE_ERROR (none lost, none left pending), every batch item is correct or
    FAILED, and at least one fault shows. Returns the counts: ops and errors per path."""
    batch = _frozen(real_memory_mix(48, seed=9) if pages is None else pages)
    n = len(batch)
    raws = [p.tobytes() for p in batch]
    ref = [_compressed(reference, "faults", reference.compress(p), i) for i, p in enumerate(batch)]
    ops_n: dict[str, int] = {}
    errs: dict[str, int] = {}

    def count(path: str, ops: int, errors: int) -> None:
        ops_n[path] = ops_n.get(path, 0) + ops
        errs[path] = errs.get(path, 0) + errors

    def good_compressed(data: bytes, i: int, path: str) -> None:
        if reference.decompress(data) != raws[i]:
            raise _fail(backend, "faults", f"{path} output does not decode to the page", i)

    def none_ok(i: int, path: str) -> None:
        if ref[i] is not None:
            raise _fail(backend, "faults", f"{path} reported a compressible page as incompressible "
                        "while faults were injected: a device fault must be an error (DeviceError, "
                        "DEVICE_ERROR, FAILED), never look like incompressible data", i)

    # sync compress
    e = 0
    for i, p in enumerate(batch):
        try:
            out = _compressed(backend, "faults", backend.compress(p), i)
        except DeviceError:
            e += 1
            continue
        except Exception as exc:  # noqa: BLE001
            raise _fail(backend, "faults", f"{_raised(exc, 'compress')}; a device fault must "
                        "raise DeviceError", i) from exc
        none_ok(i, "compress") if out is None else good_compressed(out, i, "compress")
    count("compress", n, e)
    # async compress
    ops = _drive(backend, [CompOp.compress(p, user_data=i) for i, p in enumerate(batch)], "faults")
    e = 0
    for i, op in enumerate(ops):
        if op.status is OpStatus.DEVICE_ERROR:
            if not op.error:
                raise _fail(backend, "faults", "a DEVICE_ERROR op has no error text", i)
            e += 1
        elif op.status is OpStatus.SUCCESS:
            good_compressed(_compressed(backend, "faults", op.dst, i, "a compress op"), i, "a compress op")
        elif op.status is OpStatus.INCOMPRESSIBLE:
            none_ok(i, "a compress op")
        else:
            raise _fail(backend, "faults", f"a compress op completed as {op.status.name} ({op.error}); "
                        "expected SUCCESS, INCOMPRESSIBLE or DEVICE_ERROR", i)
    count("async_compress", n, e)
    # batch compress
    try:
        items = compress_batch_items(backend, "faults", batch)
    except DeviceError:
        count("compress_batch", n, n)
    else:
        e = 0
        for i, item in enumerate(items):
            if isinstance(item, BaseException):
                e += 1
            elif item is None:
                none_ok(i, "compress_batch")
            else:
                good_compressed(item, i, "compress_batch")
        count("compress_batch", n, e)
    # decompress valid data: the page, or DeviceError (never CorruptDataError: the data is good)
    kept = [i for i in range(n) if ref[i] is not None]
    e = 0
    for i in kept:
        try:
            out = backend.decompress(ref[i])
        except DeviceError:
            e += 1
            continue
        except CorruptDataError as exc:
            raise _fail(backend, "faults", f"decompress of valid data raised CorruptDataError ({exc}); "
                        "a device fault must raise DeviceError (or fall back to software)", i) from exc
        _page_back(backend, "faults", out, raws[i], i)
    count("decompress", len(kept), e)
    dops = _drive(backend, [CompOp.decompress(ref[i], user_data=i) for i in kept], "faults")
    e = 0
    for dop in dops:
        i = dop.user_data
        if dop.status is OpStatus.DEVICE_ERROR:
            e += 1
        elif dop.status is OpStatus.SUCCESS:
            _page_back(backend, "faults", dop.dst, raws[i], i, "a decompress op")
        else:
            raise _fail(backend, "faults", f"a decompress op of valid data completed as "
                        f"{dop.status.name} ({dop.error}); expected SUCCESS or DEVICE_ERROR", i)
    count("async_decompress", len(kept), e)
    if kept:
        try:
            out, failed = decompress_batch_pages(backend, "faults", [ref[i] for i in kept])
        except DeviceError:
            count("decompress_batch", len(kept), len(kept))
        else:
            for j, i in enumerate(kept):
                if j not in failed and out[j].tobytes() != raws[i]:
                    raise _fail(backend, "faults", "decompress_batch returned wrong bytes", i)
            count("decompress_batch", len(kept), len(failed))
    if backend.pending() != 0:
        raise _fail(backend, "faults", f"pending() is {backend.pending()} after every op came back")
    total_ops, total_errs = sum(ops_n.values()), sum(errs.values())
    if total_errs == 0:
        raise _fail(backend, "faults", f"no fault showed in {total_ops} calls and ops with "
                    f"{backend.params.get(FAULT_PARAM)!r} {FAULT_PARAM}: the fault parameter has no "
                    "visible effect (or faults are hidden as successes)")
    return {"ops": total_ops, "errors": total_errs, "ops_by_path": ops_n, "errors_by_path": errs}


#: Every check on a fault-free backend, in the order they run.
CHECKS: dict[str, Callable[[Backend], None]] = {
    "capabilities": check_capabilities,
    "roundtrip": check_roundtrip,
    "busy": check_busy,
    "poll": check_poll,
    "incompressible": check_incompressible,
    "batch": check_batch,
    "async": check_async,
    "sync_async": check_sync_async,
    "modeled_time": check_modeled_time,
    "corrupt": check_corrupt,
    "config": check_config,
}


# -- parameter sets from YAML ---------------------------------------------------------------


@dataclass(frozen=True)
class ParamSet:
    """One parameter set for the kit and where it came from (file and dotted key)."""

    params: dict[str, Any]
    source: str | None = None  # e.g. "tests/params.yaml: params[1]"
    id: str = "defaults"


def load_param_sets(path: str | os.PathLike[str]) -> tuple[list[ParamSet], dict[str, Any] | None]:
    """Read the parameter sets (and optional fault parameters) the kit runs with.

    The file holds one of: a mapping of parameters (one set); a list of mappings (several sets);
    a mapping with ``params`` (a mapping or a list) and optional ``fault_params`` (what to inject
    instead of ``fault_rate: 0.25``); or a hwzswap config (its ``zswap.compressor.params``).
    Raises :class:`ConfigError` naming the file and the key.
    """
    from hwzswap.config import read_config_file

    p = Path(path)
    doc = read_config_file(p)  # bounded, a regular file; errors name it
    fault = None
    if isinstance(doc, Mapping) and isinstance(doc.get("zswap"), Mapping):
        comp = doc["zswap"].get("compressor") or {}
        sets: Any = (comp.get("params") if isinstance(comp, Mapping) else None) or {}
        prefix = "zswap.compressor.params"
    elif isinstance(doc, Mapping) and "params" in doc and set(doc) <= {"params", "fault_params"}:
        sets, prefix = doc["params"], "params"
        fault = doc.get("fault_params")
        if fault is not None and not isinstance(fault, Mapping):
            raise ConfigError(f"{p}: fault_params: must be a mapping of parameters, got "
                              f"{type(fault).__name__}")
    else:
        sets, prefix = ({} if doc is None else doc), ""
    many = isinstance(sets, list)
    out = []
    for i, s in enumerate(sets if many else [sets]):
        key = f"{prefix}[{i}]" if many else prefix
        if not isinstance(s, Mapping):
            raise ConfigError(f"{p}: {key or 'top level'}: a parameter set must be a mapping, got "
                              f"{type(s).__name__}")
        label = ",".join(f"{k}={v}" for k, v in s.items()) or "defaults"
        out.append(ParamSet(dict(s), f"{p}: {key}" if key else str(p), label))
    if not out:
        raise ConfigError(f"{p}: {prefix or 'top level'}: no parameter set")
    return out, (dict(fault) if fault is not None else None)


def _dotted(source: str | None, key: str) -> str:
    if not source:
        return key
    file, _, prefix = source.partition(": ")
    return f"{file}: {prefix + '.' if prefix else ''}{key}"


def _construct(name_or_cls: str | type[Backend], ps: ParamSet, timeout_s: float) -> Backend:
    """Build the backend for a parameter set under the deadline; a parameter error names the
    file and the dotted key, any other exception names the constructor."""
    label = name_or_cls if isinstance(name_or_cls, str) else (name_or_cls.name or name_or_cls.__name__)

    def build() -> Backend:
        try:
            if isinstance(name_or_cls, str):
                return get_backend(name_or_cls, **ps.params)
            return name_or_cls(**ps.params)
        except InvalidParameterError as exc:
            text = str(exc)
            key = next((k for k in ps.params if f"'{k}'" in text), None) or next(
                (k for k in ps.params if k in text), None)
            where = _dotted(ps.source, key) if key else (ps.source or "parameters")
            raise _fail(label, "construct", f"{where}: {text}") from exc

    return run_with_deadline(label, "construct", build, timeout_s)


def _faulty_twin(backend: Backend, fault_params: Mapping[str, Any] | None) -> tuple[Backend, Backend] | None:
    """(faulty, fault-free) backends of ``backend``'s settings, or None without a fault parameter."""
    if FAULT_PARAM not in type(backend).PARAMS:
        return None
    build = _same_class(backend)
    base = dict(backend.params)
    inject = dict(fault_params or {FAULT_PARAM: DEFAULT_FAULT_RATE})
    if not inject.get(FAULT_PARAM):
        raise ConfigError(f"fault_params {inject!r} inject no faults ({FAULT_PARAM} must be > 0)")
    clean = backend if not base.get(FAULT_PARAM) else build(**{**base, FAULT_PARAM: 0.0})
    return build(**{**base, **inject}), clean


def run_conformance(
    backend: Backend | str | type[Backend],
    params: Mapping[str, Any] | None = None,
    *,
    params_yaml: str | os.PathLike[str] | None = None,
    fault_params: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    checks: Sequence[str] | None = None,
) -> list[ConformanceReport]:
    """Run the kit on ``backend`` and return one :class:`ConformanceReport` per parameter set.

    ``backend`` is an instance (checked as it is), a registered name or a Backend class (built
    with ``params``, or with each set of ``params_yaml``: see :func:`load_param_sets`).
    ``checks`` limits the run to some of :data:`CHECKS` (the fault check is ``"faults"``).
    Raises :class:`ConformanceError` at the first failure (naming backend, check and page) and
    :class:`~hwzswap.errors.ConfigError` for an unreadable parameter file.
    """
    timeout = _default_timeout() if timeout_s is None else float(timeout_s)
    names = list(CHECKS) + ["faults"] if checks is None else list(checks)
    unknown = [c for c in names if c not in CHECKS and c != "faults"]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; checks: {', '.join([*CHECKS, 'faults'])}")
    if isinstance(backend, Backend):
        if params or params_yaml:
            raise ValueError("pass parameters with a backend name or class, not with an instance")
        return [_run_one(backend, ParamSet(dict(backend.params)), names, fault_params, timeout)]
    if params_yaml is not None:
        sets, yaml_faults = load_param_sets(params_yaml)
        if params:
            sets = [ParamSet({**dict(params), **s.params}, s.source, s.id) for s in sets]
        fault_params = fault_params or yaml_faults
    else:
        sets = [ParamSet(dict(params or {}))]
    reports = []
    for ps in sets:
        instance = _construct(backend, ps, timeout)
        with _closing(instance, timeout):
            reports.append(_run_one(instance, ps, names, fault_params, timeout))
    return reports


def _close(backend: Backend, timeout_s: float) -> None:
    """``backend.close()`` under the deadline: one that raises (or hangs) is a
    :class:`ConformanceError` naming the driver (check ``close``), not a bare error."""
    run_with_deadline(backend.name, "close", backend.close, timeout_s)


@contextlib.contextmanager
def _closing(backend: Backend, timeout_s: float) -> Iterator[Backend]:
    """Close ``backend`` (:func:`_close`) when the block ends; when the block failed, its
    failure is the one raised (a close that fails too does not hide it)."""
    try:
        yield backend
    except BaseException:
        with contextlib.suppress(ConformanceError):
            _close(backend, timeout_s)
        raise
    _close(backend, timeout_s)


def _run_one(backend: Backend, ps: ParamSet, names: Sequence[str],
             fault_params: Mapping[str, Any] | None, timeout: float) -> ConformanceReport:
    try:
        return _run_checks(backend, ps, names, fault_params, timeout)
    except ConformanceError as exc:
        if not ps.source and not ps.params:
            raise
        where = f" from {ps.source}" if ps.source else ""
        raise ConformanceError(exc.backend, exc.check,
                               f"{exc.detail} [parameters {ps.params}{where}]", exc.page) from exc


def _run_checks(backend: Backend, ps: ParamSet, names: Sequence[str],
                fault_params: Mapping[str, Any] | None, timeout: float) -> ConformanceReport:
    report = ConformanceReport(backend.name, dict(backend.params), source=ps.source)
    target = backend
    own: list[Backend] = []
    try:
        if backend.params.get(FAULT_PARAM):  # faults on: the plain checks run on a fault-free twin
            target = _same_class(backend)(**{**backend.params, FAULT_PARAM: 0.0})
            own.append(target)
        for check in names:
            if check == "faults":
                continue
            t0 = time.perf_counter()
            run_with_deadline(backend.name, check, lambda c=CHECKS[check]: c(target), timeout)
            report.checks[check] = time.perf_counter() - t0
        if "faults" in names:
            if backend.params.get(FAULT_PARAM):
                pair: tuple[Backend, Backend] | None = (backend, target)
            else:
                pair = _faulty_twin(backend, fault_params)
                if pair is not None:
                    own.extend(b for b in pair if b is not backend)
            if pair is not None:
                faulty, clean = pair
                t0 = time.perf_counter()
                counts = run_with_deadline(backend.name, "faults",
                                           lambda: check_faults(faulty, clean), timeout)
                report.checks["faults"] = time.perf_counter() - t0
                report.faults = {**counts, "fault_params": {
                    k: v for k, v in faulty.params.items() if k.startswith("fault")}}
    except BaseException:
        for b in own:
            with contextlib.suppress(ConformanceError):
                _close(b, timeout)
        raise
    for b in own:
        _close(b, timeout)
    return report


def check_backend(backend: Backend | str, **params: Any) -> ConformanceReport:
    """Run every conformance check on ``backend`` (an instance, or a registered name built with
    ``params``), with faults injected too when the backend declares ``fault_rate``.

    Returns a :class:`ConformanceReport` (checks run with their seconds, fault counts). Raises
    :class:`ConformanceError` -- an ``AssertionError`` whose message starts
    ``[backend] check: page i:`` -- at the first failure, including a check that timed out
    (``HWZSWAP_CHECK_TIMEOUT_S``, default 120 s per check) and a constructor that raised.
    """
    return run_conformance(backend, params or None)[0]


def conformance_tests(
    backend: str | type[Backend],
    params_yaml: str | os.PathLike[str] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    fault_params: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Callable[..., None]:
    """A pytest test function running the kit, one test per parameter set, for a vendor's suite::

        test_conformance = conformance_tests("deflate-mydev", params_yaml="tests/params.yaml")

    ``params_yaml`` is read (relative to the working directory, or absolute) when the test module
    is collected, so a bad file fails collection naming the file and the key.
    """
    import pytest

    sets = load_param_sets(params_yaml)[0] if params_yaml is not None else [
        ParamSet(dict(params or {}), None, "defaults" if not params else
                 ",".join(f"{k}={v}" for k, v in params.items()))]
    if params_yaml is not None and params:
        sets = [ParamSet({**dict(params), **s.params}, s.source, s.id) for s in sets]

    @pytest.mark.parametrize("param_set", sets, ids=[s.id for s in sets])
    def test_hwzswap_conformance(param_set: ParamSet) -> None:
        faults = fault_params
        if faults is None and params_yaml is not None:
            faults = load_param_sets(params_yaml)[1]
        limit = _default_timeout() if timeout_s is None else float(timeout_s)
        instance = _construct(backend, param_set, limit)
        with _closing(instance, limit):
            _run_one(instance, param_set, [*CHECKS, "faults"], faults, limit)

    return test_hwzswap_conformance


def check_reference_interop(
    backend: Backend,
    reference_compress: Callable[[bytes], bytes],
    reference_decompress: Callable[[bytes], bytes],
    pages: Iterable[np.ndarray] | None = None,
) -> None:
    """The backend decodes the reference library's output and vice versa."""
    for i, page in enumerate(pages if pages is not None else sample_pages().values()):
        raw = page.tobytes()
        ref = reference_compress(raw)
        if bytes(backend.decompress(ref)) != raw:
            raise _fail(backend, "interop", "reference output did not decode", i)
        ours = backend.compress(page)
        if ours is not None and bytes(reference_decompress(bytes(ours))) != raw:
            raise _fail(backend, "interop", "reference could not decode our output", i)


__all__ = [
    "CHECKS",
    "DEFAULT_TIMEOUT_S",
    "FAULT_PARAM",
    "ConformanceError",
    "ConformanceReport",
    "ParamSet",
    "batch_items",
    "batch_pages",
    "check_backend",
    "check_faults",
    "check_reference_interop",
    "compress_batch_items",
    "conformance_tests",
    "decompress_batch_pages",
    "load_param_sets",
    "real_memory_mix",
    "run_conformance",
    "run_with_deadline",
    "sample_pages",
]
