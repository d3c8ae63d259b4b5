"""``842-nx``: the driver for the emulated NX-842 unit, behind the compressor contract.

What it mirrors from the Linux NX-842 drivers (842.md §4):

* one CRB per request, function codes 1/3 (compress/decompress with CRC), source and target
  described by 128-byte-aligned DDEs; the completion is read from the CSB once its valid bit is
  set, and the CSB's target byte count is the output length;
* **compression errors are reported** (the crypto layer has no software compress fallback, so
  zswap rejects the store): :meth:`compress` raises :class:`~hwzswap.errors.DeviceError` and an
  async op completes with ``DEVICE_ERROR``. CC 64 (output larger than input) and CC 13 (output
  buffer too small) mean the page does not shrink: ``None`` / ``INCOMPRESSIBLE``;
* **decompression errors fall back to software 842** (``sw842_decompress``), counted in
  ``swdecomp``. So streams the hardware rejects -- SHORT_DATA from the software compressor, a
  group larger than ``max_sync_size``, an engine fault or timeout -- still decode; a stream that
  is really corrupt raises :class:`~hwzswap.errors.CorruptDataError` from the software decoder;
* a full queue answers BUSY; synchronous calls retry it for at most 250 ms (compress) / 50 ms
  (decompress) of device time, as the crypto layer retries -EBUSY, then give up (compress:
  DeviceError; decompress: software);
* the pSeries sysfs counters and µs histograms (:mod:`.stats`).

Host-cost accounting. In ``virtual`` mode the engines run in the caller's thread, but their work
(the 842 codec and the model) is the *device's* work. The driver therefore times its own path
(input checks, CRB set-up, queueing, CSB handling, copying the result out, software fallbacks)
separately from the emulation: ``counters()["host_driver_us"]`` is the host CPU a real driver
would spend, ``counters()["emulation_us"]`` the time this process spent standing in for the
hardware, and ``modeled_device_us()`` the hardware's time per the model. In ``realtime`` mode
the engines run on their own threads and time spent blocked waiting for them is excluded from
``host_driver_us`` too.

Overlap accounting (``virtual`` and ``host`` clocks; :mod:`.queue` has the rules):
``device_us`` is the engines' busy time summed over the engines, ``device_busy_union_us`` the
time at least one of them was busy, and ``device_exposed_us`` the part of that during which the
host (the main thread) was blocked on the device: inside a blocking call of this driver
(``compress``, ``decompress``, the batch calls, ``submit`` and ``poll``), with ops it submitted
not yet handed back by a poll, or parked waiting for another thread that is. ``1 -
device_exposed_us / device_busy_union_us`` is the share of the device's time that overlapped
the host's own work (always 0 on the ``virtual`` clock, where host work takes no model time).
``device_exposed_parked_us`` is the part of the exposed time the host spent parked waiting for
another thread (an async engine's drain or backpressure) rather than in this driver itself.
``device_waited_us`` stays what the clock moved by waits.

One thread at a time may call a backend instance (the kernel serialises a tfm with a lock).
The driver enforces it: its entry points share one lock, which serves waiting calls in arrival
order as the hardware's request FIFO does (:mod:`.fifo`), so a call given up by a caller (the
engine's watchdog) that is still running inside the driver makes the next call wait for it --
a synchronous call at most ``timeout_ms``, then DeviceError; ``submit`` and ``poll`` at most
about a millisecond, then BUSY / nothing -- instead of two threads sharing the queue.

Async ``poll`` waits a bounded time (about 1 ms) for a completion and may return nothing, as
the contract allows, so a caller's deadline (``zswap.device_timeout_ms``) is checked while a
request is slow or hung. A request not complete ``timeout_ms`` after its submission -- one that
never completes (``HANG``), or whose modelled queueing plus service takes longer -- comes back
then, on every clock, as :class:`~hwzswap.errors.DeviceTimeoutError` (compress; an async op:
DEVICE_ERROR saying it timed out); decompression then falls back to software (see
:mod:`.queue`: the engine still finishes the request, busy as modelled).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from threading import get_ident
from time import perf_counter_ns
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    PAGE_SIZE,
    Backend,
    Capabilities,
    CompOp,
    OpKind,
    OpStatus,
    Param,
    check_page,
    check_pages,
    compressed_input,
    wrong_length,
)
from hwzswap.backends.nx842.crb import (
    CC,
    CC_NOSPC,
    CC_SUCCESS,
    CC_TPBC_GT_SPBC,
    CSB_V,
    FC_COMP_CRC,
    FC_DECOMP_CRC,
    HANG,
    Crb,
    DmaArena,
    DmaBuffer,
    cc_name,
    describe_cc,
)
from hwzswap.backends.nx842.engine import (
    DEFAULT_COMP_SETUP_US,
    DEFAULT_DECOMP_SETUP_US,
    DEFAULT_GBPS,
    ENGINES_PER_CHIP,
    Engine,
    FaultInjector,
    TimingModel,
)
from hwzswap.backends.nx842.fifo import FifoLock
from hwzswap.backends.nx842.queue import HostClockQueue, RealtimeQueue, VirtualQueue
from hwzswap.backends.nx842.stats import HIST_BUCKETS
from hwzswap.config import MAX_DEVICE_TIMEOUT_MS  # the engine takes no longer deadline
from hwzswap.errors import (
    CorruptDataError,
    DeviceError,
    DeviceTimeoutError,
    HwzswapError,
    InvalidInputError,
    InvalidParameterError,
)

# The crypto layer's -EBUSY retry windows (842.md §4.1), in µs of device time.
_BUSY_RETRY_COMP_US = 250_000.0
_BUSY_RETRY_DECOMP_US = 50_000.0
_FAULT_CCS = tuple(int(c) for c in CC if c not in (CC.SUCCESS, CC.TPBC_GT_SPBC))
# How long an async poll() waits for a completion before returning what it has (maybe
# nothing), and how long submit()/poll() wait for an earlier call still inside the driver.
_POLL_WAIT_S = 0.001


class _BatchCall:
    """``Crb.op`` of the requests one batch call issued: a token of that call alone, so a call
    takes back only its own completions. A request whose call has ended (it raised part-way,
    or was interrupted) is dropped when it completes; anything that is not a :class:`CompOp`
    is never handed to :meth:`Nx842Backend.poll`."""

    __slots__ = ()


def _refuse_op(op: CompOp, exc: InvalidInputError, completed: Any) -> None:
    """An op whose input is not what the contract takes completes at once as INVALID_INPUT."""
    op.status, op.error, op.dst, op.produced = (OpStatus.INVALID_INPUT, str(exc), None, 0)
    completed.append(op)


class Nx842Backend(Backend):
    """The ``842-nx`` driver over an emulated Power7+-style NX-842 unit (see the module docstring)."""

    name = "842-nx"
    gauges = frozenset({"clock"})  # the clock's kind (a setting); the rest are counts
    PARAMS = {
        "engines": Param(int, ENGINES_PER_CHIP, min=1, max=64,
                         doc="842 engines (Power7+: two per chip, Hot Chips 2012)"),
        "queue_depth": Param(int, 8, min=1, max=4096,
                             doc="requests in flight before submissions get BUSY (modelled "
                                 "choice; the hardware FIFO depth is not published)"),
        "clock": Param(str, "virtual", choices=("virtual", "host", "realtime"),
                       doc="virtual: modelled clock, no sleeping, moved only by the host's "
                           "waits; host: the same, also moved by the host's own time (engines "
                           "work while the host does); realtime: engines pace wall time"),
        "comp_gbps": Param(float, DEFAULT_GBPS, min=1e-6,
                           doc="compress throughput per engine, GB/s of input (8 B/cycle x an "
                               "assumed 2 GHz bus)"),
        "decomp_gbps": Param(float, DEFAULT_GBPS, min=1e-6,
                             doc="decompress throughput per engine, GB/s of output"),
        "comp_setup_us": Param(float, DEFAULT_COMP_SETUP_US, min=0.0,
                               doc="per-request compress set-up latency, µs (assumption)"),
        "decomp_setup_us": Param(float, DEFAULT_DECOMP_SETUP_US, min=0.0,
                                 doc="per-request decompress set-up latency, µs (assumption)"),
        "max_sync_size": Param(int, 4096, min=4096, max=65536,
                               doc="largest request in bytes (pSeries ibm,max-sync-cop; the "
                                   "documented example is 4096), a multiple of 8"),
        "timeout_ms": Param(float, 5000.0, min=0.001, max=MAX_DEVICE_TIMEOUT_MS,
                            doc="completion timeout (PowerNV CSB_WAIT_MAX = 5000 ms): a "
                                "request with no completion this long after its submission "
                                "(queueing + service, or a hang) times out, on every clock"),
        "fault_rate": Param(float, 0.0, min=0.0, max=1.0,
                            doc="probability that a request completes with fault_cc"),
        "fault_cc": Param(int, int(CC.INTERNAL), choices=_FAULT_CCS,
                          doc="completion code of injected faults (default 10, internal error)"),
        "hang_rate": Param(float, 0.0, min=0.0, max=1.0,
                           doc="probability that a request never completes (driver timeout)"),
        "fault_ops": Param(str, "both", choices=("both", "compress", "decompress"),
                           doc="which requests the fault rates apply to"),
        "fault_seed": Param(int, 0, doc="seed of the fault-injection generator"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        mss = p["max_sync_size"]
        if mss % 8:
            raise InvalidParameterError(
                f"backend {self.name!r}: parameter 'max_sync_size' must be a multiple of 8; got {mss}"
            )
        from hwzswap.backends.sw842 import codec
        from hwzswap.backends.sw842.backend import Sw842Backend

        # The fallback decoder: the ``842`` backend, so a page the hardware refuses gets exactly
        # the software backend's verdict (including its check that the stream is not truncated).
        self._sw_decompress_page = Sw842Backend().decompress
        self.timing = TimingModel(
            p["comp_setup_us"], p["decomp_setup_us"], p["comp_gbps"], p["decomp_gbps"]
        )
        self._timeout_us = p["timeout_ms"] * 1000.0
        self.engines = [
            Engine(i, self.timing, mss, self._timeout_us, codec.compress, codec.decompress)
            for i in range(p["engines"])
        ]
        self.faults = FaultInjector(
            p["fault_rate"], p["fault_cc"], p["hang_rate"], p["fault_ops"], p["fault_seed"]
        )
        self._draw = self.faults.draw if self.faults.active else None
        self._max_sync = mss
        # pSeries clamps the output length to max_sync_size; zswap's buffer is two pages.
        self._comp_cap = min(2 * PAGE_SIZE, mss)
        # Per queue slot: a CRB, its target buffer and a source "window": the caller's buffer,
        # described at a page-aligned address (zswap's pages are page-aligned; Python gives us
        # no address to check, so the driver vouches for it as the kernel's bounce copy would).
        arena = DmaArena()
        self.arena = arena
        tcap = max(self._comp_cap, PAGE_SIZE)
        self._slots: list[Crb] = []
        for i in range(p["queue_depth"]):
            window = DmaBuffer(b"", arena.address(mss, PAGE_SIZE), 0)
            crb = Crb(FC_COMP_CRC, window, arena.alloc(tcap), slot=i)
            self._slots.append(crb)
        self._free: list[Crb] = self._slots[::-1]
        queues = {"virtual": VirtualQueue, "host": HostClockQueue, "realtime": RealtimeQueue}
        self._queue = queues[p["clock"]](self.engines)
        self._finalizer = weakref.finalize(self, self._queue.close)
        #: one call at a time inside the driver (see the module docstring), served in arrival
        #: order like the hardware's request FIFO: Python's Lock is not FIFO, so a thread calling
        #: back to back could starve another past its timeout_ms (see :mod:`.fifo`)
        self._entry = FifoLock()
        self._inflight_async = 0
        #: id(op) -> (op, the thread that submitted it) for an op its caller waits for
        #: (``caller_waits``), until a poll hands it back: the overlap accounting counts that
        #: thread as waiting for it (queue docstring)
        self._submitter: dict[int, tuple[CompOp, int]] = {}
        # counters (pSeries names where they exist)
        self._comp_complete = 0
        self._comp_failed = 0
        self._decomp_complete = 0
        self._decomp_failed = 0
        self._swdecomp = 0
        self._busy_retries = 0
        self._timeouts = 0
        self._cc = [0] * 256
        self._comp_times = [0] * HIST_BUCKETS
        self._decomp_times = [0] * HIST_BUCKETS
        self._host_ns = 0

    # -- description -----------------------------------------------------------------------

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        """The engines run the software 842 codec; without it (or without numba, which makes
        it usable) neither ``842`` nor ``842-nx`` can run."""
        try:
            from hwzswap.backends.sw842.backend import Sw842Backend
        except Exception as exc:  # noqa: BLE001 - report any import failure as the reason
            return False, f"the software 842 codec is not importable: {type(exc).__name__}: {exc}"
        ok, reason = Sw842Backend.availability()
        return (True, None) if ok else (False, f"the engines' 842 codec cannot run: {reason}")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            device="nx842-emulated",
            asynchronous=True,
            batch=True,
            preferred_batch=self.params["queue_depth"],
            time_basis="modeled",
            format="842",  # plain 842 streams: the software 842 backend decodes them
            timeout_ms=self.params["timeout_ms"],  # the engine's default deadline: CSB_WAIT_MAX
            # safe from several threads: the driver serialises its own entry points, with
            # bounded waits, so the engine adds no lock of its own that a call it gave up on
            # (still inside the driver) would hold with no deadline
            concurrent=True,
        )

    def describe(self) -> str:
        p = self.params
        return (
            f"{self.name} on nx842-emulated ({p['engines']} engines, queue depth "
            f"{p['queue_depth']}, {p['clock']} clock)"
        )

    def close(self) -> None:
        self._finalizer()

    # -- fault injection -------------------------------------------------------------------

    def inject(self, fault: int, op: str, count: int = 1) -> None:
        """Make the next ``count`` ``op`` requests ("compress"/"decompress") fail with ``fault``:
        a completion code (e.g. ``CC.CRC_MISMATCH``) or ``HANG`` (no completion: timeout)."""
        self.faults.arm(fault, op, count)  # type: ignore[arg-type]
        self._draw = self.faults.draw

    # -- one call at a time ----------------------------------------------------------------

    def _enter(self, call: str) -> None:
        """Take the driver's lock for a synchronous call, waiting at most ``timeout_ms`` for an
        earlier call still inside (one its caller gave up on); DeviceError if it stays."""
        lock = self._entry
        if lock.acquire(False) or lock.acquire(timeout=self._timeout_us / 1e6):
            return
        raise DeviceError(
            f"842-nx: {call}: an earlier call is still inside the driver after "
            f"{self.params['timeout_ms']:g} ms (its caller gave up on it); the device is busy"
        )

    # -- slots -----------------------------------------------------------------------------

    def _release(self, crb: Crb) -> None:
        csb = crb.csb
        csb.flags = 0
        csb.ce = 0
        csb.count = 0
        crb.posted = False
        crb.hung = False
        crb.op = None
        self._free.append(crb)

    def _wait_slot(self, is_comp: bool) -> Crb | None:
        """All slots taken by async requests: retry BUSY like the crypto layer, or give up."""
        q = self._queue
        deadline = q.clock_us() + (_BUSY_RETRY_COMP_US if is_comp else _BUSY_RETRY_DECOMP_US)
        free = self._free
        while not free:
            self._busy_retries += 1
            if not q.wait_any_until(deadline):
                return None
            self._reap_async()
        return free.pop()

    def _fill_comp(self, crb: Crb, page: Any) -> None:
        crb.fc = FC_COMP_CRC
        src = crb.source
        src.mem = page
        src.length = PAGE_SIZE
        crb.target.length = self._comp_cap
        draw = self._draw
        crb.fault = draw(True) if draw is not None else None

    def _fill_decomp(self, crb: Crb, data: Any, n: int) -> None:
        crb.fc = FC_DECOMP_CRC
        src = crb.source
        src.mem = data
        src.length = n
        crb.target.length = PAGE_SIZE
        draw = self._draw
        crb.fault = draw(False) if draw is not None else None

    # -- completion handling ---------------------------------------------------------------

    def _comp_result(self, crb: Crb) -> bytes | None:
        """Turn a completed compress CRB into the contract's result; frees the slot."""
        csb = crb.csb
        if csb.flags & CSB_V:
            cc = csb.cc
            self._cc[cc] += 1
            if cc == CC_SUCCESS or cc == CC_TPBC_GT_SPBC:
                self._comp_complete += 1
                b = int(crb.t_done - crb.t_submit).bit_length() - 1
                self._comp_times[0 if b < 0 else (b if b < HIST_BUCKETS else HIST_BUCKETS - 1)] += 1
                n = csb.count
                out = bytes(crb.target.mem[:n]) if cc == CC_SUCCESS and n < PAGE_SIZE else None
                csb.flags = csb.ce = csb.count = 0
                crb.posted = False
                crb.op = None
                self._free.append(crb)
                return out
            self._comp_failed += 1
            self._release(crb)
            if cc == CC_NOSPC:  # -ENOSPC: the page does not fit; zswap rejects it as poor
                return None
            raise DeviceError(
                f"842-nx: the engine failed a compress request: {describe_cc(cc)}; the store "
                "is rejected (the NX driver has no software compress fallback)"
            )
        self._comp_failed += 1
        self._timeouts += 1
        self._release(crb)
        raise DeviceTimeoutError(
            f"842-nx: a compress request did not complete within {self.params['timeout_ms']:g} ms "
            "(-ETIMEDOUT); the store is rejected"
        )

    def _decomp_result(self, crb: Crb, data: Any) -> bytes:
        """Turn a completed decompress CRB into a page, falling back to software on any engine
        failure; frees the slot. Raises CorruptDataError only if software 842 fails too."""
        csb = crb.csb
        if csb.flags & CSB_V:
            cc = csb.cc
            self._cc[cc] += 1
            if cc == CC_SUCCESS:
                self._decomp_complete += 1
                b = int(crb.t_done - crb.t_submit).bit_length() - 1
                self._decomp_times[0 if b < 0 else (b if b < HIST_BUCKETS else HIST_BUCKETS - 1)] += 1
                n = csb.count
                if n == PAGE_SIZE:
                    out = bytes(crb.target.mem[:PAGE_SIZE])
                    csb.flags = csb.ce = csb.count = 0
                    crb.posted = False
                    crb.op = None
                    self._free.append(crb)
                    return out
                self._release(crb)
                raise wrong_length(self.name, n)
            self._decomp_failed += 1
        else:
            self._decomp_failed += 1
            self._timeouts += 1
        self._release(crb)
        return self._software_decompress(data)

    def _software_decompress(self, data: Any) -> bytes:
        """``sw842_decompress`` on the host: the kernel's fallback when the engine fails."""
        self._swdecomp += 1
        return self._sw_decompress_page(data)

    def _finish(self, crb: Crb) -> None:
        """Complete the async op that ``crb`` carried and queue it for :meth:`poll`."""
        op = crb.op
        if not isinstance(op, CompOp):
            # left behind by a call that ended before it completed (raised, interrupted): its
            # caller is gone, so the result is dropped and the slot comes back
            self._release(crb)
            return
        op.device_us = crb.service_us
        if crb.fc == FC_COMP_CRC:
            op.consumed = PAGE_SIZE
            try:
                out = self._comp_result(crb)
            except DeviceError as exc:
                op.status, op.error, op.dst, op.produced = OpStatus.DEVICE_ERROR, str(exc), None, 0
            else:
                if out is None:
                    op.status, op.dst, op.produced = OpStatus.INCOMPRESSIBLE, None, 0
                else:
                    op.status, op.dst, op.produced = OpStatus.SUCCESS, out, len(out)
        else:
            src = crb.source.mem  # the checked view of op.src
            op.consumed = len(src) if type(src) is bytes else memoryview(src).nbytes
            try:
                out = self._decomp_result(crb, src)
            except (CorruptDataError, InvalidInputError) as exc:
                op.status, op.error, op.dst, op.produced = OpStatus.INVALID_INPUT, str(exc), None, 0
            else:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, out, PAGE_SIZE
        self._inflight_async -= 1
        self._completed.append(op)

    def _abandon(self, token: _BatchCall) -> None:
        """A batch call with ``token`` ended early (it raised, or was interrupted): its requests
        still queued are dropped as they complete (:meth:`_finish`). On the model clocks their
        work is already done, so the host waits for them now (no wall time) and nothing is left
        queued; in realtime the engine threads finish them and whoever reaps next drops them."""
        q = self._queue
        if isinstance(q, VirtualQueue):
            mine = [c for c in q.queued() if c.op is token]
            if mine:
                q.wait_all(mine)
                self._reap_async()

    def _reap_async(self) -> None:
        for crb in self._queue.reap():
            self._finish(crb)

    # -- single page -----------------------------------------------------------------------

    def compress(self, page: Any) -> bytes | None:
        self._enter("compress")
        q = self._queue
        q.enter_blocking()  # the caller waits for the result: no overlap (queue docstring)
        try:
            return self._compress_locked(page)
        finally:
            q.leave_blocking()
            self._entry.release()

    def _compress_locked(self, page: Any) -> bytes | None:
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        try:
            if type(page) is not bytes or len(page) != PAGE_SIZE:
                page = check_page(page)
            free = self._free
            crb = free.pop() if free else self._wait_slot(True)
            if crb is None:
                raise DeviceError(
                    "842-nx: the request queue stayed full for 250 ms (-EBUSY); poll() the "
                    "outstanding async ops or raise queue_depth"
                )
            crb.fc = FC_COMP_CRC
            src = crb.source
            src.mem = page
            src.length = PAGE_SIZE
            crb.target.length = self._comp_cap
            draw = self._draw
            crb.fault = draw(True) if draw is not None else None
            done = q.run_sync(crb)
            if len(done) > 1:
                for c in done:
                    if c is not crb:
                        self._finish(c)
            return self._comp_result(crb)
        finally:
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    def decompress(self, data: Any) -> bytes:
        """Decompress one page on an engine; any engine failure falls back to software 842.

        Input the engine cannot take goes to software directly: larger than ``max_sync_size``
        (as the crypto layer does), empty, or not a multiple of 8 bytes. The kernel's crypto
        layer would zero-pad the last case into a bounce buffer; here every stored page is a
        whole 842 stream, which producers pad to 8 bytes, so an odd length means the data was
        cut or damaged and the software decoder (which checks that) gives the verdict.
        """
        self._enter("decompress")
        q = self._queue
        q.enter_blocking()  # the caller waits for the result: no overlap (queue docstring)
        try:
            return self._decompress_locked(data)
        finally:
            q.leave_blocking()
            self._entry.release()

    def _decompress_locked(self, data: Any) -> bytes:
        if type(data) is not bytes:
            data = compressed_input(self.name, data)
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        try:
            n = len(data) if type(data) is bytes else data.nbytes
            if n > self._max_sync or n & 7 or not n:
                return self._software_decompress(data)
            free = self._free
            crb = free.pop() if free else self._wait_slot(False)
            if crb is None:
                return self._software_decompress(data)
            crb.fc = FC_DECOMP_CRC
            src = crb.source
            src.mem = data
            src.length = n
            crb.target.length = PAGE_SIZE
            draw = self._draw
            crb.fault = draw(False) if draw is not None else None
            done = q.run_sync(crb)
            if len(done) > 1:
                for c in done:
                    if c is not crb:
                        self._finish(c)
            return self._decomp_result(crb, data)
        finally:
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    # -- batch -----------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> list[Any]:
        """Keep the queue full: submit until BUSY, wait for a completion, refill.

        Results are in page order, one item per page (the contract's per-item rule): the
        compressed bytes, ``None`` for a page that does not shrink, or the
        :class:`DeviceError` of a page that failed on the engine (the others still complete).
        """
        self._enter("compress_batch")
        q = self._queue
        q.enter_blocking()  # the caller waits for the result: no overlap (queue docstring)
        try:
            return self._compress_batch_locked(pages)
        finally:
            q.leave_blocking()
            self._entry.release()

    def _compress_batch_locked(self, pages: np.ndarray) -> list[Any]:
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        token = _BatchCall()
        try:
            pages = check_pages(pages)
            n = len(pages)
            out: list[Any] = [None] * n
            flat = memoryview(pages.reshape(-1))
            free = self._free
            submit = q.submit
            wait_reap = q.wait_reap
            result = self._comp_result
            draw = self._draw
            cap = self._comp_cap
            i = 0
            outstanding = 0
            busy = 0
            while i < n or outstanding:
                while i < n and free:
                    crb = free.pop()
                    crb.fc = FC_COMP_CRC
                    src = crb.source
                    src.mem = flat[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
                    src.length = PAGE_SIZE
                    crb.target.length = cap
                    crb.fault = draw(True) if draw is not None else None
                    crb.op = token
                    crb.index = i
                    try:
                        submit(crb)
                    except BaseException:
                        self._release(crb)
                        raise
                    i += 1
                    outstanding += 1
                if i < n:
                    busy += 1  # the next page met a full queue (-EBUSY)
                for c in wait_reap():
                    if c.op is token:
                        outstanding -= 1
                        try:
                            out[c.index] = result(c)
                        except DeviceError as exc:
                            out[c.index] = exc
                    else:
                        self._finish(c)
            self._busy_retries += busy
            return out
        except BaseException:
            self._abandon(token)
            raise
        finally:
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        """Decompress N items through the queue (software fallback per item as needed)."""
        self._enter("decompress_batch")
        q = self._queue
        q.enter_blocking()  # the caller waits for the result: no overlap (queue docstring)
        try:
            return self._decompress_batch_locked(items)
        finally:
            q.leave_blocking()
            self._entry.release()

    def _object(self, data: Any) -> tuple[Any, int]:
        """A compressed object as the engines take it, and its size: bytes as they are, any
        other buffer checked (contiguous) by the contract; InvalidInputError otherwise."""
        if type(data) is bytes:
            return data, len(data)
        data = compressed_input(self.name, data)
        return data, data.nbytes

    def _decompress_batch_locked(self, items: Sequence[Any]) -> np.ndarray:
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        token = _BatchCall()
        try:
            n = len(items)
            result = np.empty((n, PAGE_SIZE), dtype=np.uint8)
            flat = memoryview(result.reshape(-1))
            free = self._free
            submit = q.submit
            wait_reap = q.wait_reap
            draw = self._draw
            max_sync = self._max_sync
            hist = self._decomp_times
            bad: list[tuple[int, str, type[HwzswapError]]] = []
            i = 0
            outstanding = 0
            busy = 0
            done_ok = 0
            while i < n or outstanding:
                while i < n and free:
                    try:
                        data, size = self._object(items[i])
                    except InvalidInputError as exc:
                        bad.append((i, str(exc), InvalidInputError))
                        i += 1
                        continue
                    if size > max_sync or size & 7 or not size:
                        try:
                            flat[i * PAGE_SIZE : (i + 1) * PAGE_SIZE] = self._software_decompress(data)
                        except (CorruptDataError, InvalidInputError) as exc:
                            bad.append((i, str(exc), type(exc)))
                        i += 1
                        continue
                    crb = free.pop()
                    crb.fc = FC_DECOMP_CRC
                    src = crb.source
                    src.mem = data
                    src.length = size
                    crb.target.length = PAGE_SIZE
                    crb.fault = draw(False) if draw is not None else None
                    crb.op = token
                    crb.index = i
                    try:
                        submit(crb)
                    except BaseException:
                        self._release(crb)
                        raise
                    i += 1
                    outstanding += 1
                if i < n:
                    busy += 1
                elif not outstanding:
                    break
                for c in wait_reap():
                    if c.op is not token:
                        self._finish(c)
                        continue
                    outstanding -= 1
                    k = c.index
                    csb = c.csb
                    if csb.flags & CSB_V and csb.cc == CC_SUCCESS and csb.count == PAGE_SIZE:
                        # the common case, inline: copy the page out, count, free the slot
                        flat[k * PAGE_SIZE : (k + 1) * PAGE_SIZE] = c.target.mem[:PAGE_SIZE]
                        b = int(c.t_done - c.t_submit).bit_length() - 1
                        hist[0 if b < 0 else (b if b < HIST_BUCKETS else HIST_BUCKETS - 1)] += 1
                        done_ok += 1
                        csb.flags = csb.ce = csb.count = 0
                        c.posted = False
                        c.op = None
                        free.append(c)
                        continue
                    try:
                        flat[k * PAGE_SIZE : (k + 1) * PAGE_SIZE] = self._decomp_result(
                            c, c.source.mem)
                    except (CorruptDataError, InvalidInputError) as exc:
                        bad.append((k, str(exc), type(exc)))
            self._busy_retries += busy
            self._decomp_complete += done_ok
            self._cc[CC_SUCCESS] += done_ok
            if bad:
                # the first bad item, as the contract's loop would meet it: an item that is not
                # bytes-like is an InvalidInputError (as on every backend), a bad stream corrupt
                k, msg, cls = min(bad, key=lambda b: b[0])
                if issubclass(cls, InvalidInputError):
                    raise InvalidInputError(f"item {k}: {msg}")
                raise CorruptDataError(f"item {k}: {msg}")
            return result
        except BaseException:
            self._abandon(token)
            raise
        finally:
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    # -- asynchronous ops ------------------------------------------------------------------

    def submit(self, ops: Sequence[CompOp]) -> int:
        """Queue ops while slots are free; the rest are marked BUSY. Returns how many were taken.

        An op that fails validation (a compress input that is not one page) is accepted and
        completes at once with INVALID_INPUT; a decompress input the engine cannot take (see
        :meth:`decompress`) is accepted and decoded in software at once.
        """
        if not (self._entry.acquire(False) or self._entry.acquire(timeout=_POLL_WAIT_S)):
            # an earlier call is still inside the driver (its caller gave up on it): BUSY
            for op in ops:
                op.status = OpStatus.BUSY
            self._busy_retries += len(ops)
            return 0
        q = self._queue
        # A caller that waits for its ops is blocked from their submission until a poll hands
        # them back; one that does not (async mode) is doing its own work in here too: filling
        # request blocks is the host's path, not a wait (queue docstring)
        waits = any(op.caller_waits for op in ops)
        if waits:
            q.enter_blocking()
        try:
            return self._submit_locked(ops)
        finally:
            if waits:
                q.leave_blocking()
            self._entry.release()

    def _submit_locked(self, ops: Sequence[CompOp]) -> int:
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        queued = 0
        me = get_ident()
        try:
            self._reap_async()
            free = self._free
            completed = self._completed
            accepted = 0
            for op in ops:
                if op.kind is OpKind.COMPRESS:
                    page = op.src
                    if type(page) is not bytes or len(page) != PAGE_SIZE:
                        try:
                            page = check_page(page)
                        except InvalidInputError as exc:
                            _refuse_op(op, exc, completed)
                            accepted += 1
                            continue
                    if not free:
                        break
                    crb = free.pop()
                    self._fill_comp(crb, page)
                else:
                    try:
                        data, size = self._object(op.src)
                    except InvalidInputError as exc:
                        _refuse_op(op, exc, completed)
                        accepted += 1
                        continue
                    if size > self._max_sync or size & 7 or not size:
                        op.consumed = size
                        try:
                            out = self._software_decompress(data)
                        except (CorruptDataError, InvalidInputError) as exc:
                            op.status, op.error, op.dst, op.produced = (
                                OpStatus.INVALID_INPUT, str(exc), None, 0
                            )
                        else:
                            op.status, op.dst, op.produced = OpStatus.SUCCESS, out, PAGE_SIZE
                        completed.append(op)
                        accepted += 1
                        continue
                    if not free:
                        break
                    crb = free.pop()
                    self._fill_decomp(crb, data, size)
                crb.op = op
                try:
                    q.submit(crb)
                except BaseException:
                    self._release(crb)  # (a closed device): the slot is not lost
                    raise
                self._inflight_async += 1
                if op.caller_waits:
                    self._submitter[id(op)] = (op, me)
                    queued += 1
                accepted += 1
            refused = len(ops) - accepted
            if refused:
                self._busy_retries += refused
                for k in range(accepted, len(ops)):
                    ops[k].status = OpStatus.BUSY
            return accepted
        finally:
            # a submitter that waits for its ops (CompOp.caller_waits: a synchronous
            # submit/poll loop) is blocked on them until a poll hands them back (queue
            # docstring); one that goes on with its own work is not
            q.await_requests(queued)
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        """Completed ops, at most ``max_ops``. If none is ready but some are in flight, wait a
        bounded time (about 1 ms; a hung request on the virtual clock: that much wall time) for
        one and return what completed, possibly nothing, so the caller checks its deadline."""
        if not (self._entry.acquire(False) or self._entry.acquire(timeout=_POLL_WAIT_S)):
            return []  # an earlier call is still inside the driver: nothing to hand out yet
        q = self._queue
        q.enter_blocking()  # polling is waiting, not the host's own work (queue docstring)
        try:
            return self._poll_locked(max_ops)
        finally:
            q.leave_blocking()
            self._entry.release()

    def _poll_locked(self, max_ops: int | None) -> list[CompOp]:
        t0 = perf_counter_ns()
        q = self._queue
        ex0 = q.excluded_ns
        try:
            self._reap_async()
            done = self._completed
            if not done and self._inflight_async:
                q.wait_any_for(_POLL_WAIT_S)
                self._reap_async()
            k = len(done) if max_ops is None else min(max_ops, len(done))
            out = [done.popleft() for _ in range(k)]
            submitter = self._submitter
            for op in out:
                who = submitter.pop(id(op), None)
                if who is not None and who[0] is op:
                    q.requests_seen(who[1])
            return out
        finally:
            self._host_ns += perf_counter_ns() - t0 - (q.excluded_ns - ex0)

    def pending(self) -> int:
        return self._inflight_async + len(self._completed)

    # -- accounting ------------------------------------------------------------------------

    def modeled_device_us(self) -> float:
        """Modelled engine-busy time over all requests so far (µs); identical in both clocks."""
        return sum(e.busy_ps for e in self.engines) / 1e6

    def counters(self) -> dict[str, Any]:
        q = self._queue
        out: dict[str, Any] = {
            "comp_complete": self._comp_complete,
            "comp_failed": self._comp_failed,
            "decomp_complete": self._decomp_complete,
            "decomp_failed": self._decomp_failed,
            "swdecomp": self._swdecomp,
            "busy_retries": self._busy_retries,
            "timeouts": self._timeouts,
            "faults_injected": self.faults.injected,
            "completion_codes": {cc_name(cc): n for cc, n in enumerate(self._cc) if n},
            "comp_times": list(self._comp_times),
            "decomp_times": list(self._decomp_times),
            "requests": sum(e.requests for e in self.engines),
            "device_us": self.modeled_device_us(),
            "engine_busy_us": [e.busy_ps / 1e6 for e in self.engines],
            "host_driver_us": self._host_ns / 1000.0,
            "emulation_us": q.emulation_ns / 1000.0,
            "clock": q.mode,
            # read, not moved: a counters() call beside a call inside the driver must not
            # move the model clock (the driver's calls move it)
            "device_clock_us": q.now if isinstance(q, VirtualQueue) else q.clock_us(),
        }
        if isinstance(q, VirtualQueue):  # virtual and host clocks: the host's waits alone
            out["device_waited_us"] = q.waited_us
            # the overlap accounting (queue docstring): time at least one engine was busy,
            # and the part of it the host spent blocked on the device
            out["device_busy_union_us"] = q.busy_union_us
            out["device_exposed_us"] = q.exposed_us
            out["device_exposed_parked_us"] = q.exposed_parked_us
        if isinstance(q, RealtimeQueue):
            out["late"] = sum(q.late)
            out["late_us"] = sum(q.late_ns) / 1000.0
            out["engine_errors"] = list(q.engine_errors)
        return out


__all__ = ["HANG", "Nx842Backend"]
