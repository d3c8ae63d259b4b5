"""``deflate-iaa``: the hwzswap driver for the emulated IAA-like device (:mod:`.device`).

How the contract's calls map onto the device:

* ``submit(ops)`` turns each op into a descriptor and enqueues it until the work queue is full;
  the accepted prefix's length is returned and every refused op is marked BUSY (and counted in
  ``busy``). ``poll(max_ops)`` reaps completion records and turns them into op results, oldest
  first, at most ``max_ops``; when none has completed yet, it waits (the virtual clock advances
  to the next completion). ``pending()`` is accepted minus polled.
* ``compress`` / ``decompress`` submit one descriptor and wait for it (iaa_crypto's ``sync``
  mode); a full queue is waited out, as the kernel retries -EBUSY.
* ``compress_batch`` / ``decompress_batch`` keep the queue full and return per-item results: a
  :class:`~hwzswap.backends.contract.CompressedBatch` (one flat buffer; a faulted page is FAILED
  alone) and an array, or a :class:`~hwzswap.backends.contract.DecompressedBatch` marking the
  corrupt items.

Failure policy, as iaa_crypto's: a faulted **compress** is a device error (``DeviceError`` /
``DEVICE_ERROR`` / a FAILED item: zswap rejects that page); a faulted or refused **decompress** is
redone in software (zlib, ``sw_decomp``), so a valid page always comes back; data that software
cannot decode either is corrupt (``CorruptDataError`` / ``INVALID_INPUT`` / a FAILED item).

Timing figures (defaults of the parameters): Intel's zswap measurements of deflate-iaa-canned
give 3.57 µs to compress one 4 KiB page and 3.00 µs to decompress one; the defaults split each
into a fixed setup cost and a streaming rate (2.2 µs + 4096 B at 3.0 GB/s; 2.23 µs + 4096 B at
5.3 GB/s) -- the split is an assumption. 8 engines per device (QEMU's qpl-compression notes).
The work-queue depth (32) is a modelled choice: accel-config sets it per WQ.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from time import perf_counter_ns
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
    OpKind,
    OpStatus,
    Param,
    check_page,
    check_pages,
    compressed_input,
    corrupt,
)
from hwzswap.errors import DeviceError, InvalidInputError

from hwzswap_iaa_driver.device import (
    ST_ANALYTICS_ERROR,
    ST_OUTPUT_OVERFLOW,
    ST_SUCCESS,
    Descriptor,
    IaaDevice,
)


class IaaBackend(Backend):
    """An asynchronous deflate accelerator with a queue, modelled time and fault injection."""

    name = "deflate-iaa"
    PARAMS = {
        "engines": Param(int, 8, min=1, max=64, doc="engines per device (Sapphire Rapids IAA: 8)"),
        "wq_depth": Param(int, 32, min=1, max=4096,
                          doc="work-queue slots; more descriptors are refused BUSY (modelled choice)"),
        "mode": Param(str, "fixed", choices=("fixed", "dynamic"),
                      doc="Huffman codes: fixed (deflate-iaa) or dynamic (deflate-iaa-dynamic)"),
        "level": Param(int, 1, min=1, max=9, doc="zlib level standing in for the engine's search"),
        "verify_compress": Param(bool, True,
                                 doc="decompress every compressed page on the device to check it "
                                     "(iaa_crypto's default); costs device time"),
        "comp_setup_us": Param(float, 2.2, min=0.0, doc="fixed device cost of a compress (µs)"),
        "comp_gbps": Param(float, 3.0, min=1e-6, doc="compress streaming rate (GB/s)"),
        "decomp_setup_us": Param(float, 2.23, min=0.0, doc="fixed device cost of a decompress (µs)"),
        "decomp_gbps": Param(float, 5.3, min=1e-6, doc="decompress streaming rate (GB/s)"),
        "fault_rate": Param(float, 0.0, min=0.0, max=1.0,
                            doc="share of descriptors that fail with an analytics error"),
        "fault_ops": Param(str, "both", choices=("both", "compress", "decompress"),
                           doc="which descriptors faults hit"),
        "fault_seed": Param(int, 0, min=0, doc="seed of the fault generator"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._dev = IaaDevice(
            engines=p["engines"], wq_depth=p["wq_depth"], level=p["level"],
            fixed=p["mode"] == "fixed", comp_setup_us=p["comp_setup_us"], comp_gbps=p["comp_gbps"],
            decomp_setup_us=p["decomp_setup_us"], decomp_gbps=p["decomp_gbps"],
            verify=p["verify_compress"], fault_rate=p["fault_rate"], fault_ops=p["fault_ops"],
            fault_seed=p["fault_seed"],
        )
        self._async_out = 0  # async ops accepted, completion not yet reaped
        self._done: deque[CompOp] = deque()  # async ops completed, not yet polled
        self._c = dict.fromkeys(
            ("total_comp_calls", "total_decomp_calls", "total_sw_decomp_calls",
             "total_comp_bytes_out", "total_decomp_bytes_in", "comp_buf_overflow",
             "comp_errors", "decomp_errors", "corrupt", "busy"), 0)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="iaa-emulated", asynchronous=True, batch=True,
                            preferred_batch=self.params["wq_depth"], time_basis="modeled")

    def describe(self) -> str:
        return f"{self.name} on an emulated IAA ({self.params['engines']} engines, WQ depth " \
               f"{self.params['wq_depth']})"

    # -- completion handling -----------------------------------------------------------------

    def _reap(self, wait: bool) -> None:
        """Move completed descriptors' results into their owners (ops or batch slots)."""
        for desc in self._dev.reap(wait):
            owner = desc.tag
            if isinstance(owner, CompOp):
                self._finish_op(owner, desc)
                self._async_out -= 1
                self._done.append(owner)
            else:  # a synchronous or batch request: owner is a one-slot list to fill
                owner.append(desc)

    def _finish_op(self, op: CompOp, desc: Descriptor) -> None:
        op.device_us = desc.busy_us
        if desc.compress:
            op.consumed = PAGE_SIZE
            self._c["total_comp_calls"] += 1
            if desc.status == ST_SUCCESS:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, desc.out, len(desc.out or b"")
                self._c["total_comp_bytes_out"] += op.produced
            elif desc.status == ST_OUTPUT_OVERFLOW:
                op.status, op.dst = OpStatus.INCOMPRESSIBLE, None
                self._c["comp_buf_overflow"] += 1
            else:
                self._c["comp_errors"] += 1
                op.status, op.dst = OpStatus.DEVICE_ERROR, None
                op.error = f"{self.name}: compress failed with completion status {desc.status:#04x}"
        else:
            op.consumed = len(desc.src)
            page = self._decomp_result(desc)
            if page is None:
                op.status, op.dst = OpStatus.INVALID_INPUT, None
                op.error = f"{self.name}: compressed data is corrupt or truncated"
            else:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, page, PAGE_SIZE

    def _decomp_result(self, desc: Descriptor) -> bytes | None:
        """A decompress descriptor's page; a failed one is redone in software (iaa_crypto's
        deflate_generic_decompress fallback). None: the data is corrupt."""
        self._c["total_decomp_calls"] += 1
        self._c["total_decomp_bytes_in"] += len(desc.src)
        if desc.status == ST_SUCCESS:
            return desc.out
        if desc.status == ST_ANALYTICS_ERROR:
            self._c["decomp_errors"] += 1
        self._c["total_sw_decomp_calls"] += 1
        t0 = perf_counter_ns()
        page = IaaDevice.inflate(desc.src)
        self._host_ns += perf_counter_ns() - t0
        if page is None:
            self._c["corrupt"] += 1
        return page

    _host_ns = 0

    def _run(self, descs: Sequence[Descriptor]) -> list[Descriptor]:
        """Run requests to completion (synchronous and batch calls), keeping the queue full."""
        results: list[list[Descriptor]] = []
        for desc in descs:
            slot: list[Descriptor] = []
            desc.tag = slot
            results.append(slot)
            while not self._dev.enqueue(desc):
                self._c["busy"] += 1
                self._reap(wait=True)  # a slot frees when the next descriptor completes
        while any(not slot for slot in results):
            self._reap(wait=True)
        return [slot[0] for slot in results]

    # -- single page ---------------------------------------------------------------------------

    def compress(self, page: Any) -> bytes | None:
        view = check_page(page)
        (desc,) = self._run([Descriptor(True, view.tobytes())])
        self._c["total_comp_calls"] += 1
        if desc.status == ST_SUCCESS:
            self._c["total_comp_bytes_out"] += len(desc.out or b"")
            return desc.out
        if desc.status == ST_OUTPUT_OVERFLOW:
            self._c["comp_buf_overflow"] += 1
            return None
        self._c["comp_errors"] += 1
        raise DeviceError(f"{self.name}: compress failed with completion status "
                          f"{desc.status:#04x} (analytics error); the page is not stored")

    def decompress(self, data: Any) -> bytes:
        # the contract's input check: bytes-like and contiguous, or InvalidInputError
        src = bytes(compressed_input(self.name, data))
        (desc,) = self._run([Descriptor(False, src)])
        page = self._decomp_result(desc)
        if page is None:
            raise corrupt(self.name, "not a raw deflate stream of exactly one page")
        return page

    # -- batch -----------------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> CompressedBatch:
        rows = check_pages(pages)
        descs = self._run([Descriptor(True, rows[i].tobytes()) for i in range(len(rows))])
        n = len(descs)
        sizes = np.zeros(n, np.int64)
        status = np.zeros(n, np.uint8)
        errors: dict[int, str] = {}
        parts = []
        for i, d in enumerate(descs):
            self._c["total_comp_calls"] += 1
            if d.status == ST_SUCCESS:
                sizes[i] = len(d.out or b"")
                parts.append(d.out)
                self._c["total_comp_bytes_out"] += int(sizes[i])
            elif d.status == ST_OUTPUT_OVERFLOW:
                status[i] = ItemStatus.INCOMPRESSIBLE
                self._c["comp_buf_overflow"] += 1
            else:
                status[i] = ItemStatus.FAILED
                errors[i] = f"{self.name}: compress failed with completion status {d.status:#04x}"
                self._c["comp_errors"] += 1
        offsets = np.zeros(n, np.int64)
        if n:
            np.cumsum(sizes[:-1], out=offsets[1:])
        return CompressedBatch(b"".join(parts), offsets, sizes, status, errors)

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray | DecompressedBatch:
        descs = self._run([Descriptor(False, memoryview(it).tobytes()) for it in items])
        out = np.zeros((len(descs), PAGE_SIZE), np.uint8)
        status = np.zeros(len(descs), np.uint8)
        errors: dict[int, str] = {}
        for i, d in enumerate(descs):
            page = self._decomp_result(d)
            if page is None:
                status[i] = ItemStatus.FAILED
                errors[i] = f"{self.name}: item {i}: compressed data is corrupt or truncated"
            else:
                out[i] = np.frombuffer(page, np.uint8)
        return DecompressedBatch(out, status, errors) if errors else out

    # -- asynchronous ops --------------------------------------------------------------------------

    def submit(self, ops: Sequence[CompOp]) -> int:
        self._reap(wait=False)
        for i, op in enumerate(ops):
            try:
                src = (check_page(op.src) if op.kind is OpKind.COMPRESS
                       else memoryview(op.src)).tobytes()
            except (InvalidInputError, TypeError) as exc:
                op.status, op.error, op.dst = OpStatus.INVALID_INPUT, str(exc), None
                self._done.append(op)  # accepted, completed at once
                continue
            desc = Descriptor(op.kind is OpKind.COMPRESS, src, tag=op)
            if not self._dev.enqueue(desc):
                for rest in ops[i:]:
                    rest.status = OpStatus.BUSY
                self._c["busy"] += len(ops) - i
                return i
            op.status = OpStatus.NOT_PROCESSED
            self._async_out += 1
        return len(ops)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        self._reap(wait=False)
        if not self._done and self._async_out:
            while not self._done and self._async_out:
                self._reap(wait=True)
        k = len(self._done) if max_ops is None else min(max_ops, len(self._done))
        return [self._done.popleft() for _ in range(k)]

    def pending(self) -> int:
        return self._async_out + len(self._done)

    # -- accounting ----------------------------------------------------------------------------------

    def modeled_device_us(self) -> float:
        return self._dev.busy_us

    def counters(self) -> dict[str, Any]:
        return {
            **self._c,
            "faults_injected": self._dev.faults,
            "device_us": self._dev.busy_us,
            "clock_us": self._dev.now_us,
            "emulation_us": self._dev.emulation_ns / 1000.0,
            "sw_decomp_us": self._host_ns / 1000.0,
        }
