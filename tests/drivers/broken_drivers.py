"""Broken example drivers: each a small Backend subclass with one bug a vendor could make.

One class per row of issue 13's table (the bugs that reached zswap or the bench), plus the bugs
the old conformance kit let through. Each works like ``lz4`` except for its one bug. Drivers that
can block (a poll that never completes, a device that never answers) wait on :data:`RELEASE`, a
threading.Event the tests set when they finish, so no thread outlives its test for long.
"""

from __future__ import annotations

import sys
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import lz4.block as lz4block
import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    CompressedBatch,
    OpKind,
    OpStatus,
    Param,
    check_page,
    corrupt,
    page_views,
    wrong_length,
)
from hwzswap.errors import DeviceError, InvalidInputError, InvalidParameterError

#: Set by the tests' teardown: every blocked driver call returns (or raises) once it is set.
RELEASE = threading.Event()


def _lz4(page: Any, accel: int = 1, hc: bool = False) -> bytes | None:
    view = check_page(page)
    out = (lz4block.compress(view, mode="high_compression", compression=9, store_size=False) if hc
           else lz4block.compress(view, mode="fast", acceleration=accel, store_size=False))
    return out if len(out) < PAGE_SIZE else None


def _unlz4(name: str, data: Any) -> bytes:
    try:
        out = lz4block.decompress(bytes(data), uncompressed_size=PAGE_SIZE)
    except (lz4block.LZ4BlockError, ValueError, TypeError) as exc:
        raise corrupt(name, str(exc)) from None
    if len(out) != PAGE_SIZE:
        raise wrong_length(name, len(out))
    return out


class GoodDriver(Backend):
    """A correct driver (LZ4 blocks): the baseline each broken one departs from."""

    name = "test-good"

    def compress(self, page: Any) -> bytes | None:
        return _lz4(page)

    def decompress(self, data: Any) -> bytes:
        return _unlz4(self.name, data)


# -- the table's rows ------------------------------------------------------------------------


class ShortDecompress(GoodDriver):
    """Row 1: ``decompress`` returns 4095 bytes."""

    name = "broken-short-decompress"

    def decompress(self, data: Any) -> bytes:
        return super().decompress(data)[:-1]


class FlippedDecompress(GoodDriver):
    """Row 2: ``decompress`` returns wrong bytes (one flipped byte)."""

    name = "broken-flipped-decompress"

    def decompress(self, data: Any) -> bytes:
        out = bytearray(super().decompress(data))
        out[100] ^= 0x5A
        return bytes(out)


class BigCompress(GoodDriver):
    """Row 3: ``compress`` returns 5000 bytes."""

    name = "broken-big-compress"

    def compress(self, page: Any) -> bytes | None:
        out = super().compress(page) or b""
        return out + b"\0" * (5000 - len(out))


class StrCompress(GoodDriver):
    """Row 4: ``compress`` returns a str."""

    name = "broken-str-compress"

    def compress(self, page: Any) -> Any:
        out = super().compress(page)
        return None if out is None else out.hex()


class ShortCompressBatch(GoodDriver):
    """Row 5: ``compress_batch`` returns N-1 items."""

    name = "broken-short-compress-batch"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, preferred_batch=32)

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        return [_lz4(v) for v in page_views(pages)][:-1]


class ShortDecompressBatch(GoodDriver):
    """Row 6: ``decompress_batch`` returns an (N-1, 4096) array."""

    name = "broken-short-decompress-batch"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, preferred_batch=32)

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        out = np.empty((max(len(items) - 1, 0), PAGE_SIZE), np.uint8)
        for i in range(len(out)):
            out[i] = np.frombuffer(self.decompress(items[i]), np.uint8)
        return out


class _AsyncBase(GoodDriver):
    """An asynchronous device with a queue: ops run when polled."""

    name = "test-async-base"
    PARAMS = {"queue_depth": Param(int, 4, min=1, max=1024, doc="ops in flight")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._inflight: list[CompOp] = []
        self._done: list[CompOp] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-queue", asynchronous=True,
                            preferred_batch=self.params["queue_depth"])

    def submit(self, ops: Sequence[CompOp]) -> int:
        room = max(self.params["queue_depth"] - len(self._inflight) - len(self._done), 0)
        for op in ops[room:]:
            op.status = OpStatus.BUSY
        self._inflight.extend(ops[:room])
        return min(room, len(ops))

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        for op in self._inflight:
            self._execute(op)
        self._done.extend(self._inflight)
        self._inflight = []
        k = len(self._done) if max_ops is None else min(max_ops, len(self._done))
        out, self._done = self._done[:k], self._done[k:]
        return out

    def pending(self) -> int:
        return len(self._inflight) + len(self._done)


class StuckPoll(_AsyncBase):
    """Row 7a: ``poll`` never completes an op (it keeps returning nothing)."""

    name = "broken-stuck-poll"

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        RELEASE.wait(0.001)
        return []


class HungDevice(_AsyncBase):
    """Row 7b: the device never answers: every call waits for a completion that never comes
    (until the test releases it, and then it fails with DeviceError)."""

    name = "broken-hung-device"

    def _hang(self) -> None:
        RELEASE.wait()
        raise DeviceError(f"{self.name}: released by the test")

    def compress(self, page: Any) -> bytes | None:
        self._hang()
        return None

    def decompress(self, data: Any) -> bytes:
        self._hang()
        return b""

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        self._hang()
        return []


class LateWriter(_AsyncBase):
    """A device that writes its results into the ops it was given long after their deadline,
    and never hands them back through ``poll``."""

    name = "broken-late-writer"

    def submit(self, ops: Sequence[CompOp]) -> int:
        n = super().submit(ops)
        accepted = list(ops[:n])

        def later() -> None:
            RELEASE.wait(0.2)
            for op in accepted:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, b"late garbage", 12

        threading.Thread(target=later, daemon=True).start()
        return n

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        return []


class InitRaises(GoodDriver):
    """Row 8: ``__init__`` raises a plain exception."""

    name = "broken-init-raises"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        raise RuntimeError("firmware image not found")


class InitRejectsValue(GoodDriver):
    """Row 9: ``__init__`` raises InvalidParameterError for a value its Param allows."""

    name = "broken-init-rejects"
    PARAMS = {"level": Param(int, 1, min=0, max=9, doc="compression level")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["level"] > 6:
            raise InvalidParameterError(
                f"backend {self.name!r}: parameter 'level' = {self.params['level']} is not "
                "supported by this device (at most 6)"
            )


class FaultyDriver(_AsyncBase):
    """Row 10 (correct): device errors injected at ``fault_rate`` on both directions; a faulted
    call raises DeviceError and a faulted op completes as DEVICE_ERROR."""

    name = "test-faulty"
    PARAMS = {
        "queue_depth": Param(int, 4, min=1, max=1024, doc="ops in flight"),
        "fault_rate": Param(float, 0.0, min=0.0, max=1.0, doc="share of requests that fail"),
        "fault_ops": Param(str, "both", choices=("both", "compress", "decompress"),
                           doc="which requests faults hit"),
        "fault_seed": Param(int, 0, doc="seed of the fault generator"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._rng = np.random.default_rng(self.params["fault_seed"])
        self.faults = 0

    def _fault(self, kind: OpKind) -> bool:
        which = self.params["fault_ops"]
        if which != "both" and which != kind.value:
            return False
        hit = bool(self._rng.random() < self.params["fault_rate"])
        self.faults += hit
        return hit

    def compress(self, page: Any) -> bytes | None:
        check_page(page)
        if self._fault(OpKind.COMPRESS):
            raise DeviceError(f"{self.name}: injected compress fault")
        return _lz4(page)

    def decompress(self, data: Any) -> bytes:
        if self._fault(OpKind.DECOMPRESS):
            raise DeviceError(f"{self.name}: injected decompress fault")
        return _unlz4(self.name, data)

    def counters(self) -> dict[str, Any]:
        return {"faults": self.faults}


class FaultyLosesOps(FaultyDriver):
    """Row 10 (broken): a faulted op is dropped; ``poll`` never returns it."""

    name = "broken-faulty-loses-ops"

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        out = super().poll(max_ops)
        return [op for op in out if op.status is not OpStatus.DEVICE_ERROR]


# -- what the old kit let through ------------------------------------------------------------


class RefusedNotProcessed(_AsyncBase):
    """Refused ops are left NOT_PROCESSED instead of BUSY."""

    name = "broken-refused-not-processed"

    def submit(self, ops: Sequence[CompOp]) -> int:
        room = max(self.params["queue_depth"] - len(self._inflight) - len(self._done), 0)
        self._inflight.extend(ops[:room])
        return min(room, len(ops))


class PendingZero(_AsyncBase):
    """``pending()`` is always 0."""

    name = "broken-pending-zero"

    def pending(self) -> int:
        return 0


class PollIgnoresMax(_AsyncBase):
    """``poll(max_ops)`` returns every completed op whatever ``max_ops`` says."""

    name = "broken-poll-ignores-max"

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        return super().poll(None)


class ModeledTimeStuck(GoodDriver):
    """A modelled device whose ``modeled_device_us()`` stays at 0."""

    name = "broken-modeled-time"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-model", time_basis="modeled")

    def modeled_device_us(self) -> float:
        return 0.0


class GaugesAsString(GoodDriver):
    """``gauges`` written as one string, which would be read letter by letter."""

    name = "broken-gauges"
    gauges = "queue_depth"  # type: ignore[assignment]


class SyncAsyncDisagree(_AsyncBase):
    """The async path compresses with other settings (LZ4HC) than the sync path (LZ4 fast)."""

    name = "broken-sync-async"

    def _execute(self, op: CompOp) -> None:
        if op.kind is OpKind.COMPRESS:
            try:
                out = _lz4(op.src, hc=True)
            except Exception as exc:  # noqa: BLE001 - bad input, as the default reports it
                op.status, op.error = OpStatus.INVALID_INPUT, str(exc)
                return
            op.consumed = PAGE_SIZE
            if out is None:
                op.status, op.dst = OpStatus.INCOMPRESSIBLE, None
            else:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, out, len(out)
            return
        super()._execute(op)


class FailsNonDefault(Backend):
    """Correct with its default ``strategy``; ``strategy: small`` decodes with the wrong
    dictionary setting, so every page comes back wrong."""

    name = "broken-nondefault"
    PARAMS = {"strategy": Param(str, "fast", choices=("fast", "small"), doc="zlib level 1 or 9")}

    def compress(self, page: Any) -> bytes | None:
        view = check_page(page)
        level = 1 if self.params["strategy"] == "fast" else 9
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        out = c.compress(view) + c.flush()
        return out if len(out) < PAGE_SIZE else None

    def decompress(self, data: Any) -> bytes:
        try:
            out = zlib.decompress(bytes(data), -15)
        except zlib.error as exc:
            raise corrupt(self.name, str(exc)) from None
        if len(out) != PAGE_SIZE:
            raise wrong_length(self.name, len(out))
        if self.params["strategy"] == "small":
            out = out[1:] + out[:1]  # the bug: only on the non-default path
        return out


TABLE_ROWS: list[type[Backend]] = [
    ShortDecompress, FlippedDecompress, BigCompress, StrCompress, ShortCompressBatch,
    ShortDecompressBatch, StuckPoll, HungDevice, InitRaises, InitRejectsValue, FaultyLosesOps,
]
KIT_ONLY: list[type[Backend]] = [
    RefusedNotProcessed, PendingZero, PollIgnoresMax, ModeledTimeStuck, SyncAsyncDisagree,
    FailsNonDefault,
]


# -- bugs the kit let through, or named wrongly (review of the driver kit) --------------------


class WritesInput(GoodDriver):
    """compress scribbles over its input page after compressing it (the engine hands it a
    read-only page: numpy refuses the write)."""

    name = "broken-writes-input"

    def compress(self, page: Any) -> bytes | None:
        out = _lz4(page)
        np.asarray(memoryview(page)).reshape(-1)[:8] = 0xEE
        return out


class PinsWritable(GoodDriver):
    """A DMA-style driver: pins its batch with ``ctypes.from_buffer``, which wants a writable
    buffer (it never writes; ``from_buffer_copy`` would do)."""

    name = "broken-pins-writable"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True)

    def compress_batch(self, pages: Any) -> list[Any]:
        import ctypes

        arr = np.ascontiguousarray(pages)
        pinned = (ctypes.c_ubyte * arr.nbytes).from_buffer(arr)
        flat = bytes(pinned)
        return [_lz4(flat[i:i + PAGE_SIZE]) for i in range(0, len(flat), PAGE_SIZE)]


def _with_caps(name: str, **caps: Any) -> type[Backend]:
    """A correct driver declaring ``caps`` (a capability the engine refuses)."""
    return type(f"Caps_{name}", (GoodDriver,), {
        "name": f"broken-caps-{name}", "capabilities": property(lambda self: Capabilities(**caps))})


TimeoutAsText = _with_caps("timeout-text", timeout_ms="5000")
TimeoutNegative = _with_caps("timeout-negative", timeout_ms=-1)
MaxBatchBool = _with_caps("max-batch-bool", batch=True, max_batch=True)
MaxBatchFloat = _with_caps("max-batch-float", batch=True, max_batch=2.5)


class MaxBatch8(GoodDriver):
    """Correct: a batch device that takes at most 8 pages a call (its ``max_batch``) and
    refuses more, as a device with an 8-entry descriptor ring would."""

    name = "test-max-batch-8"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, max_batch=8, preferred_batch=8)

    def compress_batch(self, pages: Any) -> list[Any]:
        if len(pages) > 8:
            raise InvalidInputError(f"{self.name}: a batch of {len(pages)} > max_batch 8")
        return [_lz4(v) for v in page_views(pages)]

    def decompress_batch(self, items: Any) -> Any:
        if len(items) > 8:
            raise InvalidInputError(f"{self.name}: a batch of {len(items)} > max_batch 8")
        return super().decompress_batch(items)


class OverlappingBatch(GoodDriver):
    """compress_batch returns a CompressedBatch whose items all start at offset 0."""

    name = "broken-overlapping-batch"

    def compress_batch(self, pages: Any) -> CompressedBatch:
        out = CompressedBatch.from_items([_lz4(v) for v in page_views(pages)])
        out.offsets[:] = 0
        return out


class ReusesBuffer(GoodDriver):
    """compress_batch returns a CompressedBatch over one output buffer of its own that its
    next call overwrites (a DMA ring reused too early)."""

    name = "broken-reuses-buffer"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._ring = bytearray(256 * PAGE_SIZE)

    def compress_batch(self, pages: Any) -> CompressedBatch:
        outs = [_lz4(v) for v in page_views(pages)]
        sizes = np.array([0 if o is None else len(o) for o in outs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        for o, at in zip(outs, offsets, strict=True):
            if o is not None:
                self._ring[at:at + len(o)] = o
        status = np.array([1 if o is None else 0 for o in outs], np.uint8)
        return CompressedBatch(memoryview(self._ring)[: int(sizes.sum())], offsets, sizes, status)


class HangsInDefaultLoop(GoodDriver):
    """decompress never returns when the contract's default ``decompress_batch`` loop calls it
    (until the test releases it): the kit must name this frame, not the loop's."""

    name = "broken-hangs-in-loop"

    def decompress(self, data: Any) -> bytes:
        if sys._getframe(1).f_code.co_name == "decompress_batch":
            RELEASE.wait()
        return super().decompress(data)


class RaisesForeign(GoodDriver):
    """decompress raises a ValueError (a bug, not a HwzswapError)."""

    name = "broken-raises-foreign"

    def decompress(self, data: Any) -> bytes:
        raise ValueError("boom")


class CloseRaises(GoodDriver):
    name = "broken-close-raises"

    def close(self) -> None:
        raise RuntimeError("close failed: device busy")


class FlipsWritable(GoodDriver):
    """A DMA-style driver that sets its read-only batch's write flag back ("the device needs a
    writable buffer") and scribbles on it: numpy allowed that on a read-only *view* of a
    writable array, so the caller's pages changed under their CRCs."""

    name = "broken-flips-writable"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True)

    def compress_batch(self, pages: Any) -> list[Any]:
        pages.flags.writeable = True
        pages[:, 0] ^= 0xFF
        return [_lz4(v) for v in page_views(pages)]
