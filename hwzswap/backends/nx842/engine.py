"""One emulated 842 engine: the hardware's checks, real 842 work, and a timing model.

Timing model
------------
A request occupies its engine for ``setup + bytes / throughput`` (separately for compress and
decompress). ``bytes`` is what the unit streams: the source bytes for compression, the produced
(uncompressed) bytes for decompression -- each 842 template yields one 8-byte group, so the
decompressor's natural unit is output bytes.

Defaults (Power7+), with their sources:

* **two engines per chip, 8 bytes per bus cycle each, for compress and for decompress** --
  Hot Chips 2012 as reported by The Register (offload.md §6 "Power7+ NX-842"; 842.md §0 W/L).
* **bus clock: 2.0 GHz -- an assumption**, not a published figure: the Power7+ bus frequency is
  not in our sources (the Blaner et al. IBM J. R&D 2013 paper's figures were not retrievable,
  offload.md §6). 8 B x 2.0 GHz = **16 GB/s per engine** (``16_000`` bytes/µs). Cross-check:
  two engines per chip and two sockets give ~64 GB/s, inside the 60-70 GB/s B. Abali quotes for
  a 2-socket Power8 (abalib/power-gzip issue #1, offload.md §6) -- consistent, though Power8 is
  a later part.
* **setup latency: 2.0 µs compress, 1.5 µs decompress -- an assumption.** No per-request NX
  latency is published in our sources. The figure covers the submission (an ``H_COP_OP``
  hypercall on pSeries, ``icswx``/VAS paste on PowerNV, 842.md §4.1), CRB/DDE fetch and CSB
  write-back. It is chosen so that a 4 KiB request (~2.3 µs / ~1.8 µs modelled) sits a little
  below the only measured on-chip figure we have, Intel IAA's 3.6 µs compress / 3.0 µs
  decompress per page one at a time, which also includes the kernel's software path
  (offload.md §0 item 3).

All of these are constructor parameters of the ``842-nx`` backend, so a user with better numbers
can plug them in.

Faults
------
:class:`FaultInjector` decides, per request and at submission time (so both clock modes see the
same faults), whether the engine reports a chosen completion code or never completes (``HANG``).
Faults come from a seeded rate and/or from one-shot arms (``arm(CC.CRC_MISMATCH, "decompress")``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Literal

from hwzswap.backends.nx842.crb import (
    CC,
    CC_CRC_MISMATCH,
    CC_DATA_LENGTH,
    CC_INVALID_ALIGN,
    CC_NOSPC,
    CC_OPERAND_OVERLAP,
    CC_SUCCESS,
    CC_TEMPL_INVALID,
    CC_TEMPL_OVERFLOW,
    CC_TPBC_GT_SPBC,
    CC_UNKNOWN_CODE,
    CSB_CE_TPBC,
    DDE_BUFFER_ALIGN,
    FC_COMP_CRC,
    FC_DECOMP_CRC,
    HANG,
    NX842_MIN,
    Crb,
)
from hwzswap.errors import CorruptDataError, InvalidParameterError

# 8 bytes per bus cycle (Hot Chips 2012) x an assumed 2.0 GHz bus clock, in bytes per µs.
POWER7P_BYTES_PER_CYCLE = 8
ASSUMED_BUS_GHZ = 2.0
DEFAULT_GBPS = POWER7P_BYTES_PER_CYCLE * ASSUMED_BUS_GHZ  # 16 GB/s per engine
DEFAULT_COMP_SETUP_US = 2.0  # assumption, see the module docstring
DEFAULT_DECOMP_SETUP_US = 1.5  # assumption, see the module docstring
ENGINES_PER_CHIP = 2  # Power7+, Hot Chips 2012
_ALIGN_MASK = DDE_BUFFER_ALIGN - 1


@dataclass(frozen=True)
class TimingModel:
    """Per-engine service time: ``setup_us + bytes / (gbps * 1000)`` µs (1 GB/s = 1000 B/µs)."""

    comp_setup_us: float = DEFAULT_COMP_SETUP_US
    decomp_setup_us: float = DEFAULT_DECOMP_SETUP_US
    comp_gbps: float = DEFAULT_GBPS
    decomp_gbps: float = DEFAULT_GBPS

    def __post_init__(self) -> None:
        if self.comp_gbps <= 0 or self.decomp_gbps <= 0:
            raise InvalidParameterError("842-nx: engine throughput must be > 0 GB/s")
        if self.comp_setup_us < 0 or self.decomp_setup_us < 0:
            raise InvalidParameterError("842-nx: setup latency must be >= 0 µs")

    def comp_us(self, nbytes: int) -> float:
        return self.comp_setup_us + nbytes / (self.comp_gbps * 1000.0)

    def decomp_us(self, nbytes: int) -> float:
        return self.decomp_setup_us + nbytes / (self.decomp_gbps * 1000.0)


FaultOps = Literal["both", "compress", "decompress"]


class FaultInjector:
    """Chooses which requests fail and how; deterministic for a given seed and request order.

    ``rate``: probability that a request gets completion code ``cc``; ``hang_rate``: probability
    that it never completes. ``ops`` limits rate-driven faults to one direction. One-shot faults
    queued with :meth:`arm` take precedence over the rates.
    """

    def __init__(
        self,
        rate: float = 0.0,
        cc: int = int(CC.INTERNAL),
        hang_rate: float = 0.0,
        ops: FaultOps = "both",
        seed: int = 0,
    ) -> None:
        if cc == CC_SUCCESS:
            raise InvalidParameterError("842-nx: an injected fault needs a non-zero completion code")
        self.rate = rate
        self.cc = cc
        self.hang_rate = hang_rate
        self.comp = ops in ("both", "compress")
        self.decomp = ops in ("both", "decompress")
        self._rng = random.Random(seed)
        self._armed: dict[bool, deque[int]] = {True: deque(), False: deque()}
        self.injected = 0

    @property
    def active(self) -> bool:
        return bool(self.rate or self.hang_rate or self._armed[True] or self._armed[False])

    def arm(
        self, fault: int, op: Literal["compress", "decompress"], count: int = 1
    ) -> None:
        """Make the next ``count`` requests of kind ``op`` fail with ``fault`` (a CC or HANG)."""
        if op not in ("compress", "decompress"):
            raise InvalidParameterError(f"842-nx: fault op must be 'compress' or 'decompress', not {op!r}")
        if count < 0:
            raise InvalidParameterError(f"842-nx: fault count must be >= 0, not {count}")
        if fault != HANG:
            try:
                fault = int(CC(fault))
            except ValueError:
                raise InvalidParameterError(
                    f"842-nx: {fault!r} is not an NX completion code (see hwzswap.backends.nx842.CC)"
                ) from None
            if fault == CC_SUCCESS:
                raise InvalidParameterError("842-nx: cannot inject CC 0 (success) as a fault")
        self._armed[op == "compress"].extend([fault] * count)

    def disarm(self) -> None:
        """Drop every fault armed with :meth:`arm` and not drawn yet (the seeded rates stay)."""
        self._armed[True].clear()
        self._armed[False].clear()

    def draw(self, is_compress: bool) -> int | None:
        """The fault for the next request of this kind, or ``None``."""
        armed = self._armed[is_compress]
        if armed:
            self.injected += 1
            return armed.popleft()
        if not (self.comp if is_compress else self.decomp):
            return None
        rnd = self._rng.random
        if self.hang_rate and rnd() < self.hang_rate:
            self.injected += 1
            return HANG
        if self.rate and rnd() < self.rate:
            self.injected += 1
            return self.cc
        return None


# DecodeFailure (hwzswap.backends.sw842.status) value -> the completion code the hardware gives.
_FAILURE_CC = {
    "bad_op": CC_TEMPL_INVALID,
    "short_data_zero": CC_TEMPL_INVALID,
    "short_data_forbidden": CC_TEMPL_INVALID,  # the hardware has no SHORT_DATA (842.md §1.5)
    "repeat_early": CC_TEMPL_INVALID,
    "index_past_end": CC_TEMPL_INVALID,
    "output_overflow": CC_NOSPC,
    "input_end": CC_TEMPL_OVERFLOW,  # a template needs data past the end of the input
    "crc_mismatch": CC_CRC_MISMATCH,
}


def classify_decode_error(exc: CorruptDataError) -> int:
    """The completion code the hardware would give for a stream the decoder rejected."""
    failure = getattr(exc, "failure", None)
    if failure is not None and failure.value in _FAILURE_CC:
        return _FAILURE_CC[failure.value]
    text = str(exc).lower()  # a decoder without a failure tag: go by the message
    if "short_data" in text:
        return CC_TEMPL_INVALID
    if "crc" in text:
        return CC_CRC_MISMATCH
    if "overflow" in text:
        return CC_NOSPC
    if "truncat" in text or "ran out" in text:
        return CC_TEMPL_OVERFLOW
    return CC_TEMPL_INVALID


class Engine:
    """One 842 unit. :meth:`run` does what the hardware does with a CRB and returns its modelled
    service time; it never sets the CSB valid bit -- the queue does that when the modelled
    completion time is reached.

    ``busy_ps`` (modelled busy time, integer picoseconds so sums are exact and independent of
    which engine ran what), ``emulation_ns`` (host time spent emulating) and the request count
    are per engine, so realtime worker threads never share a counter.
    """

    __slots__ = (
        "index",
        "timing",
        "max_sync_size",
        "timeout_us",
        "busy_ps",
        "emulation_ns",
        "requests",
        "_compress",
        "_decompress",
        "_comp_ns_per_byte",
        "_decomp_ns_per_byte",
    )

    def __init__(
        self,
        index: int,
        timing: TimingModel,
        max_sync_size: int,
        timeout_us: float,
        compress: Callable[..., bytes] | None = None,
        decompress: Callable[..., bytes] | None = None,
    ) -> None:
        if compress is None or decompress is None:
            from hwzswap.backends.sw842 import codec

            compress = compress or codec.compress
            decompress = decompress or codec.decompress
        self.index = index
        self.timing = timing
        self.max_sync_size = max_sync_size
        self.timeout_us = timeout_us
        self._compress = compress
        self._decompress = decompress
        self.busy_ps = 0
        self.emulation_ns = 0
        self.requests = 0

    def run(self, crb: Crb) -> float:
        """Process ``crb``: check it, do the 842 work, fill the CSB and target. Returns µs."""
        t0 = perf_counter_ns()
        csb = crb.csb
        src = crb.source
        dst = crb.target
        n = src.length
        cap = dst.length
        fc = crb.fc
        tm = self.timing
        comp = fc == FC_COMP_CRC
        if not comp and fc != FC_DECOMP_CRC:
            cc = CC_UNKNOWN_CODE
            us = tm.comp_setup_us
        elif src.address & _ALIGN_MASK or dst.address & _ALIGN_MASK:
            cc = CC_INVALID_ALIGN
            csb.address = src.address if src.address & _ALIGN_MASK else dst.address
            us = tm.comp_setup_us if comp else tm.decomp_setup_us
        elif (
            n & 7
            or cap & 7
            or n > self.max_sync_size
            or cap > self.max_sync_size
            or (n < NX842_MIN if comp else cap < NX842_MIN)
        ):
            cc = CC_DATA_LENGTH
            us = tm.comp_setup_us if comp else tm.decomp_setup_us
        elif src.address < dst.address + cap and dst.address < src.address + n:
            cc = CC_OPERAND_OVERLAP
            us = tm.comp_setup_us if comp else tm.decomp_setup_us
        elif crb.fault is not None:
            fault = crb.fault
            if fault == HANG:  # the engine holds the request until the driver gives up
                us = self.timeout_us
                cc = CC_SUCCESS
                crb.hung = True
            else:
                cc = fault
                us = tm.comp_us(n) if comp else tm.decomp_us(n)
        else:
            mem = src.mem
            if len(mem) != n:
                mem = memoryview(mem)[:n]
            if comp:
                out = self._compress(mem, strict=True)
                m = len(out)
                if m > cap:
                    # The unit stops when the target is full, having read about cap/m of the input.
                    cc = CC_NOSPC
                    us = tm.comp_us(n * cap // m)
                else:
                    dst.mem[:m] = out
                    csb.count = m
                    csb.ce = CSB_CE_TPBC
                    cc = CC_TPBC_GT_SPBC if m > n else CC_SUCCESS
                    us = tm.comp_us(n)
            else:
                try:
                    out = self._decompress(mem, cap, allow_short_data=False)
                except CorruptDataError as exc:
                    cc = classify_decode_error(exc)
                    us = tm.decomp_us(n)
                else:
                    m = len(out)
                    dst.mem[:m] = out
                    csb.count = m
                    csb.ce = CSB_CE_TPBC
                    cc = CC_SUCCESS
                    us = tm.decomp_us(m)
        csb.cc = cc
        crb.service_us = us
        crb.engine = self.index
        self.busy_ps += int(us * 1e6 + 0.5)
        self.requests += 1
        self.emulation_ns += perf_counter_ns() - t0
        return us
