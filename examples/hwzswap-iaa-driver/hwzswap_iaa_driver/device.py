"""An emulated IAA-like deflate device: one work queue in front of N engines, on a virtual clock.

What it models (facts from Intel's iaa_crypto documentation and the zswap batching series; the
figures it uses are defaults of the driver's parameters, see ``driver.py``):

* a **work queue** of ``wq_depth`` descriptors: a descriptor submitted while the queue is full is
  refused (the driver answers BUSY), as an ENQCMD to a full shared WQ is;
* **engines** (8 per device on Sapphire Rapids) take descriptors in order; each is busy for
  ``setup_us + bytes / GB/s``. Results are computed when the descriptor is accepted (by zlib,
  standing in for the hardware) and become visible when the virtual clock reaches the modelled
  completion time;
* a **virtual clock** that advances only when the caller waits for a completion (no sleeping, no
  threads), so runs are deterministic and every figure is modelled device time;
* **fault injection**: a descriptor fails with an analytics error at ``fault_rate``, decided when
  it is accepted (so every path sees the same faults for the same seed).

The format is raw deflate with a 4 KiB history window (``wbits=-12``), as IAA's is; ``fixed``
mode uses fixed Huffman codes only (zlib's ``Z_FIXED``), like the kernel's ``deflate-iaa``.
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import numpy as np

PAGE_SIZE = 4096
WBITS = -12  # raw deflate, 4 KiB history window

# completion status codes (modelled on the IAA completion record's status byte)
ST_SUCCESS = 0x01
ST_ANALYTICS_ERROR = 0x0A  # the injected fault: the driver falls back or reports it
ST_OUTPUT_OVERFLOW = 0x10  # the output did not fit (incompressible page)
ST_BAD_INPUT = 0x13  # the input is not a valid deflate stream of one page


@dataclass(slots=True)
class Descriptor:
    """One request and, once completed, its completion record."""

    compress: bool
    src: bytes
    seq: int = 0
    done_us: float = 0.0
    status: int = 0
    out: bytes | None = None
    busy_us: float = 0.0
    tag: Any = None


class IaaDevice:
    """The queue, the engines and the clock (see the module docstring)."""

    def __init__(self, *, engines: int, wq_depth: int, level: int, fixed: bool,
                 comp_setup_us: float, comp_gbps: float, decomp_setup_us: float,
                 decomp_gbps: float, verify: bool, fault_rate: float, fault_ops: str,
                 fault_seed: int) -> None:
        self.now_us = 0.0
        self.engine_free = [0.0] * engines
        self.wq_depth = wq_depth
        self.level, self.strategy = level, (zlib.Z_FIXED if fixed else zlib.Z_DEFAULT_STRATEGY)
        self.comp = (comp_setup_us, comp_gbps)
        self.decomp = (decomp_setup_us, decomp_gbps)
        self.verify = verify
        self.fault_rate, self.fault_ops = fault_rate, fault_ops
        self.rng = np.random.default_rng(fault_seed)
        self.inflight: list[tuple[float, int, Descriptor]] = []  # heap by completion time
        self.seq = 0
        self.busy_us = 0.0  # modelled device time, all engines
        self.emulation_ns = 0  # host time spent standing in for the hardware (zlib)
        self.faults = 0

    # -- the hardware's work -------------------------------------------------------------

    def deflate(self, page: bytes) -> bytes | None:
        c = zlib.compressobj(self.level, zlib.DEFLATED, WBITS, 8, self.strategy)
        out = c.compress(page) + c.flush()
        return out if len(out) < PAGE_SIZE else None

    @staticmethod
    def inflate(data: bytes) -> bytes | None:
        """One page from a raw deflate stream, or None when it is not exactly one page."""
        d = zlib.decompressobj(WBITS)
        try:
            out = d.decompress(data, PAGE_SIZE + 1)
        except zlib.error:
            return None
        if not d.eof or len(out) != PAGE_SIZE:
            return None
        return out

    def _service_us(self, compress: bool, nbytes: int) -> float:
        setup, gbps = self.comp if compress else self.decomp
        return setup + nbytes / (gbps * 1e3)  # GB/s = 1e3 bytes per µs

    def _faulted(self, compress: bool) -> bool:
        if self.fault_rate <= 0.0:
            return False
        if self.fault_ops != "both" and self.fault_ops != ("compress" if compress else "decompress"):
            return False
        hit = bool(self.rng.random() < self.fault_rate)
        self.faults += hit
        return hit

    # -- the queue ---------------------------------------------------------------------------

    def occupancy(self) -> int:
        """Descriptors the device still holds (accepted, not completed at the current time)."""
        return sum(1 for done, _, _ in self.inflight if done > self.now_us)

    def full(self) -> bool:
        return self.occupancy() >= self.wq_depth

    def enqueue(self, desc: Descriptor) -> bool:
        """Accept ``desc`` (False: the work queue is full). Its result is computed now and its
        completion time modelled; it becomes visible at that time."""
        if self.full():
            return False
        t0 = perf_counter_ns()
        if self._faulted(desc.compress):
            desc.status, desc.out = ST_ANALYTICS_ERROR, None
            nbytes = len(desc.src)
        elif desc.compress:
            out = self.deflate(desc.src)
            nbytes = PAGE_SIZE
            if out is None:
                desc.status, desc.out = ST_OUTPUT_OVERFLOW, None
            else:
                desc.status, desc.out = ST_SUCCESS, out
        else:
            out = self.inflate(desc.src)
            nbytes = len(desc.src)
            desc.status, desc.out = (ST_SUCCESS, out) if out is not None else (ST_BAD_INPUT, None)
        self.emulation_ns += perf_counter_ns() - t0
        busy = self._service_us(desc.compress, nbytes)
        if desc.compress and self.verify and desc.status == ST_SUCCESS:
            busy += self._service_us(False, len(desc.out or b""))  # verify_compress
        k = min(range(len(self.engine_free)), key=self.engine_free.__getitem__)
        start = max(self.now_us, self.engine_free[k])
        desc.done_us = self.engine_free[k] = start + busy
        desc.busy_us = busy
        self.busy_us += busy
        self.seq += 1
        desc.seq = self.seq
        heapq.heappush(self.inflight, (desc.done_us, desc.seq, desc))
        return True

    def reap(self, wait: bool) -> list[Descriptor]:
        """Completed descriptors, in completion order; with ``wait``, advance the clock to the
        next completion when none has completed yet."""
        if wait and self.inflight and self.inflight[0][0] > self.now_us:
            self.now_us = self.inflight[0][0]
        out = []
        while self.inflight and self.inflight[0][0] <= self.now_us:
            out.append(heapq.heappop(self.inflight)[2])
        return out

    def wait_for_room(self) -> None:
        """Advance the clock until the work queue has a free slot (a synchronous caller's retry)."""
        while self.full():
            self.now_us = min(done for done, _, _ in self.inflight if done > self.now_us)
