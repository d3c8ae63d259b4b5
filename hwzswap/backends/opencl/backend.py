"""``lz4-opencl``: LZ4 block compression of whole batches of pages on an OpenCL device.

Offloading a 4 KiB page only pays when many pages travel in one call, so this backend is built
around :meth:`compress_batch` / :meth:`decompress_batch` and an asynchronous queue
(:meth:`submit` / :meth:`poll`) whose worker thread coalesces queued ops into one launch.
Single-page calls run as batches of one: correct, but they pay a full device round trip.

Format: the LZ4 *block* format, as the kernel's ``lz4`` and python-lz4's ``lz4.block`` use it,
in every configuration (``Capabilities.format == "lz4"``: zswap decodes the pool's objects with
the software ``lz4`` backend when the device fails).
Either side decodes the other's output in every configuration. Byte-identical output is a
property of one configuration only: with ``layout="item"`` and ``hash_log=12`` (the
``tune="off"`` defaults) each work-item runs LZ4's own greedy fast parse over the whole page with
the same hash (5 bytes, 4096 entries), so a page compresses to exactly ``lz4.block.compress(page,
store_size=False)`` (python-lz4 4.x, LZ4 1.9.4). The group layout parses each page as segments,
one per work-item (matches start and end inside a segment), and another ``hash_log`` changes
which matches are found: valid LZ4 blocks, but in general other bytes (and sizes). With
``tune="auto"`` the tuned choice may be either, so pass ``layout="item", hash_log=12`` where
byte-identity matters.

Kernels (``kernels/*.cl``):

* ``lz4_compress_item`` -- one page per work-item (``layout="item"``);
* ``lz4_compress_group`` -- one page per work-group: the page is staged in local memory, its
  work-items parse one segment each, then size, prefix-sum and encode their sequences in
  parallel (``layout="group"``);
* ``lz4_decompress_item`` -- one item per work-item (``decompress_layout="item"``);
* ``lz4_decompress_group`` -- one item per work-group, the group copying each literal run and
  match together (``decompress_layout="group"``: the cooperative decompressor).

Every decompressor read and write is bounds-checked: a corrupt item gets an error status (that
item alone is FAILED), never an out-of-bounds access.

Configuration: the kernel parameters (``layout``, ``local_size``, ``hash_log``,
``batch_size``, ``decompress_layout``, ``decompress_local_size``) default to ``auto``. With
``tune="auto"`` they come from this device's tuned choice (:mod:`.tuning`: measured once on a
sample of the bundled corpus, then cached per device, driver and kernel source); with
``tune="off"`` from built-in defaults. An explicit value always wins. A ``device``,
``device_type`` or ``platform`` given explicitly must name a device that is here
(:class:`InvalidParameterError` otherwise; with the defaults, no device means the backend is
unavailable here: see :mod:`.device`).

Host side (the lean path): one call makes no Python object per page.

* ``compress_batch`` returns one :class:`CompressedBatch`: one flat byte buffer, the sizes and
  offsets the device wrote, a status per item (INCOMPRESSIBLE where a page did not shrink).
* ``decompress_batch`` takes a :class:`CompressedBatch` (its flat buffer goes to the device as
  is) or a sequence of items (joined in one C call), and returns the ``(N, 4096)`` array, or a
  :class:`DecompressedBatch` marking the failed items alone when some are corrupt.
* A call larger than ``batch_size`` is cut into chunks spread over ``queues`` in-order command
  queues (pipeline slots, each with its own buffers, allocated once and grown): chunk k+1 is
  uploaded while chunk k runs and chunk k-1 is downloaded.
* On a device that shares host memory (PoCL's CPU device, integrated GPUs; ``zero_copy=auto``)
  nothing is copied: the kernels read the caller's pages and compressed bytes in place and write
  the result buffers in place (``CL_MEM_USE_HOST_PTR``, then map/unmap, free there).
* Elsewhere (a discrete GPU) host staging buffers are pinned (``CL_MEM_ALLOC_HOST_PTR``, mapped
  once), so transfers run at the bus's DMA rate rather than the pageable rate (``pinned``).

Kernel time (OpenCL profiling events) and end-to-end time (wall clock around the whole call,
transfers included) are both kept in :meth:`counters`.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
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
)
from hwzswap.backends.opencl.device import (
    DEVICE_TYPES,
    DeviceQuery,
    device_info,
    device_label,
    device_type_name,
    import_pyopencl,
    list_devices,
    select_device,
)
from hwzswap.errors import (
    BackendUnavailableError,
    CorruptDataError,
    DeviceError,
    DeviceTimeoutError,
    InvalidInputError,
    InvalidParameterError,
)

# The longest item the decompressor accepts. A valid LZ4 block that decodes to one page is
# shorter: each sequence but the last emits >= 4 bytes, so there are at most 1024 + 1 of them,
# and a sequence's input exceeds its output by at most 1 byte plus its length-extension bytes
# (<= 4096/255 + 2 in all): 4096 + 1025 + 18 < 8192. Longer input is corrupt without looking.
MAX_ITEM_BYTES = 2 * PAGE_SIZE

# The decompressors' status codes (kernels/lz4_decompress.cl).
_STATUS_TEXT = {
    1: "the data ends inside a token, length or offset",
    2: "a literal run reaches past the end of the data",
    3: "a literal run reaches past the end of the page",
    4: "a match offset is 0 or points before the start of the page",
    5: "a match reaches past the end of the page",
    6: "the block ends before a whole page is produced",
    7: "a match starts in the last 12 bytes of the page",
    8: "a match ends in the last 5 bytes of the page",
}

#: The parameters the tuner chooses (per device) when they are left at auto.
TUNED_KEYS = (
    "layout", "local_size", "hash_log", "batch_size", "decompress_layout", "decompress_local_size",
)
#: What ``tune="off"`` (or a tuned choice lacking a key) uses.
DEFAULTS: dict[str, Any] = {
    "layout": "item",
    "local_size": 0,  # per device kind, below
    "hash_log": 12,
    "batch_size": 4096,
    "decompress_layout": "item",
    "decompress_local_size": 0,
}
# Item layouts' work-group size when local_size=0: PoCL's CPU device runs a work-group's items
# in a loop on one thread, so 1 spreads pages evenly over its threads; on a GPU 64 fills a
# wavefront / two warps.
_AUTO_LOCAL = {"cpu": 1, "other": 1}
_AUTO_LOCAL_DEFAULT = 64
_AUTO_GROUP_WIDTH = 4  # compress group layout
_AUTO_DGROUP = {"cpu": 4, "other": 4}  # cooperative decompressor's group width
_AUTO_DGROUP_DEFAULT = 32
#: The compress group layout's widths (work-items per page).
GROUP_WIDTHS = (1, 2, 4, 8, 16)
_POLL_WAIT_S = 0.001  # poll() waits at most this long for a completion when work is in flight
#: How long :meth:`Lz4OpenCLBackend.close` waits for a device call still running (the
#: framework's default device deadline, ``zswap.device_timeout_ms``).
CLOSE_TIMEOUT_S = 10.0

_ZERO_U32 = np.zeros(1, np.uint32)
_DUMMY = np.zeros(16, np.uint8)  # a device argument for a chunk with no compressed bytes


def _kernel_source(name: str) -> str:
    return resources.files(__package__).joinpath("kernels", name).read_text(encoding="utf-8")


# One context per device and one build per (device, source, options), shared by every backend
# instance in the process (a clone from get_config() does not recompile).
_CONTEXTS: dict[int, Any] = {}
_PROGRAMS: dict[tuple[int, str, tuple[str, ...]], Any] = {}
_BUILD_LOCK = threading.Lock()


def _context(cl: Any, device: Any) -> Any:
    key = device.int_ptr
    with _BUILD_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = _CONTEXTS[key] = cl.Context([device])
    return ctx


def _program(cl: Any, ctx: Any, device: Any, source: str, options: tuple[str, ...]) -> Any:
    key = (device.int_ptr, source, options)
    with _BUILD_LOCK:
        prg = _PROGRAMS.get(key)
        if prg is None:
            try:
                prg = cl.Program(ctx, _kernel_source(source)).build(options=list(options))
            except cl.Error as exc:
                raise DeviceError(
                    f"lz4-opencl: building kernels/{source} for {device.name.strip()!r} "
                    f"failed: {exc}"
                ) from exc
            _PROGRAMS[key] = prg
    return prg


class _Slot:
    """One pipeline slot: an in-order queue, its device buffers and host staging arrays.

    Buffers start empty and grow (never shrink) to the largest chunk seen, so steady-state
    batches allocate nothing. In zero-copy mode the slot holds only the small per-item arrays
    (sizes, offsets, status): pages and bytes stay in the caller's buffers. Otherwise
    ``d_pages`` holds input pages for compression and output pages for decompression and
    ``d_bytes`` the compact compressed bytes either way; with ``pinned`` the host side of every
    transfer is a mapped ``CL_MEM_ALLOC_HOST_PTR`` buffer (page-locked on a GPU driver).
    """

    def __init__(self, owner: Lz4OpenCLBackend, queue: Any) -> None:
        self.owner = owner
        self.queue = queue
        self.cap_pages = 0
        self.cap_bytes = 0
        self.d_pages = self.d_scratch = self.d_bytes = self.d_meta = None
        self.d_index = self.d_status = None
        self.h_meta = np.empty(1, np.uint32)
        self.h_index = np.empty(0, np.uint32)
        self.h_status = np.empty(0, np.int32)
        self.h_pages = np.empty(0, np.uint8)
        self.h_bytes = np.empty(0, np.uint8)
        self._maps: dict[str, tuple[Any, Any]] = {}
        self.k_compress = owner._new_compress_kernel()
        self.k_decompress = owner._new_decompress_kernel()

    def _host(self, name: str, count: int, dtype: Any) -> np.ndarray:
        """A host array for transfers: pinned (mapped ALLOC_HOST_PTR) or plain numpy."""
        self._unmap(name)
        if not self.owner._pinned:
            return np.empty(count, dtype)
        cl = self.owner._cl
        nbytes = max(1, count * np.dtype(dtype).itemsize)
        buf = cl.Buffer(self.owner._ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR,
                        nbytes)
        arr, _ = cl.enqueue_map_buffer(self.queue, buf, cl.map_flags.READ | cl.map_flags.WRITE,
                                       0, (count,), dtype, is_blocking=True)
        self._maps[name] = (buf, arr)
        return arr

    def _unmap(self, name: str) -> None:
        entry = self._maps.pop(name, None)
        if entry is not None:
            buf, arr = entry
            arr.base.release(self.queue)
            buf.release()

    def reserve(self, pages: int, nbytes: int = 0) -> None:
        """Make room for ``pages`` pages and ``nbytes`` compressed bytes."""
        owner = self.owner
        cl = owner._cl
        ctx = owner._ctx
        mf = cl.mem_flags
        zc = owner._zero_copy
        try:
            if pages > self.cap_pages:
                cap = max(pages, 2 * self.cap_pages) if self.cap_pages else pages
                self.release(keep_bytes=True)
                if not zc:
                    self.d_pages = cl.Buffer(ctx, mf.READ_WRITE, cap * PAGE_SIZE)
                    if owner._pinned:
                        self.h_pages = self._host("pages", cap * PAGE_SIZE, np.uint8)
                if owner._layout == "item":
                    self.d_scratch = cl.Buffer(ctx, mf.READ_WRITE | mf.HOST_NO_ACCESS,
                                               cap * PAGE_SIZE)
                self.d_meta = cl.Buffer(ctx, mf.READ_WRITE, (1 + 2 * cap) * 4)
                self.d_index = cl.Buffer(ctx, mf.READ_ONLY, 2 * cap * 4)
                self.d_status = cl.Buffer(ctx, mf.WRITE_ONLY, cap * 4)
                self.h_meta = self._host("meta", 1 + 2 * cap, np.uint32)
                self.h_index = self._host("index", 2 * cap, np.uint32)
                self.h_status = self._host("status", cap, np.int32)
                self.cap_pages = cap
            if not zc and nbytes > self.cap_bytes:
                cap = max(nbytes, 2 * self.cap_bytes)
                if self.d_bytes is not None:
                    self.d_bytes.release()
                self.d_bytes = cl.Buffer(ctx, mf.READ_WRITE, cap)
                if owner._pinned:
                    self.h_bytes = self._host("bytes", cap, np.uint8)
                self.cap_bytes = cap
        except cl.Error as exc:
            raise DeviceError(
                f"lz4-opencl: cannot allocate buffers for {pages} pages on "
                f"{owner.device_name!r}: {exc}; lower batch_size"
            ) from exc

    def release(self, keep_bytes: bool = False) -> None:
        names = ("d_pages", "d_scratch", "d_meta", "d_index", "d_status")
        for name in names + (() if keep_bytes else ("d_bytes",)):
            buf = getattr(self, name)
            if buf is not None:
                buf.release()
                setattr(self, name, None)
        for name in ("pages", "meta", "index", "status") + (() if keep_bytes else ("bytes",)):
            self._unmap(name)
        self.cap_pages = 0
        if not keep_bytes:
            self.cap_bytes = 0


@dataclass(eq=False)
class _Job:
    """Device work enqueued on one slot: a compress or decompress chunk of ``m`` items."""

    kind: OpKind
    slot: _Slot
    m: int
    first: int  # index of the chunk's first item in the call
    kernel_ev: Any = None
    h2d: list[Any] = field(default_factory=list)
    d2h: list[Any] = field(default_factory=list)
    keep: Any = None  # host memory the queued transfers read from; must outlive them
    wrappers: list[Any] = field(default_factory=list)  # USE_HOST_PTR buffers to release
    mapped: list[Any] = field(default_factory=list)  # mapped arrays to unmap when done
    base: int = 0  # compress, zero-copy: the chunk's region in the output buffer
    nbytes: int = 0


def _shares_host_memory(device: Any) -> bool:
    """CL_DEVICE_HOST_UNIFIED_MEMORY (deprecated in OpenCL 2.0; False when not reported)."""
    try:
        return bool(device.host_unified_memory)
    except Exception:  # noqa: BLE001 -- an OpenCL 3.0 driver may not answer the query
        return False


def _event_ns(ev: Any) -> int:
    try:
        return int(ev.profile.end - ev.profile.start)
    except Exception:  # profiling info missing for a command: count nothing, do not fail
        return 0


#: Staging copies smaller than this run on the calling thread.
PARALLEL_COPY_MIN_BYTES = 4 << 20
#: The fewest pages a chunk of a call cut over the queues gets: below it one launch costs less
#: than two (PoCL on the 2-core VM, one call of 336 pages: 0.98x -> 1.57x python-lz4 when cut
#: in two; calls under 128 pages gained nothing).
MIN_SPLIT_PAGES = 64
_COPY_POOLS: dict[int, ThreadPoolExecutor] = {}


def _copy(dst: np.ndarray, src: Any, threads: int) -> None:
    """``dst[...] = src``, split over ``threads`` threads when it is large: numpy releases the
    GIL while it copies, so a staging copy into pinned memory runs at several cores' memory
    bandwidth instead of one (one core's ~10 GB/s would cap a GPU's end to end rate)."""
    n = len(dst)
    if threads <= 1 or dst.nbytes < PARALLEL_COPY_MIN_BYTES or n < threads:
        np.copyto(dst, src)
        return
    pool = _COPY_POOLS.get(threads)
    if pool is None:
        pool = _COPY_POOLS.setdefault(
            threads, ThreadPoolExecutor(threads, thread_name_prefix="lz4-opencl-copy"))
    step = -(-n // threads)
    futures = [pool.submit(np.copyto, dst[a : a + step], src[a : a + step])
               for a in range(0, n, step)]
    for f in futures:
        f.result()


def _flat_u8(data: Any) -> np.ndarray:
    """A 1-D uint8 view of a buffer (a copy only when it is not contiguous)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)


#: Op queues whose worker thread has been started, for :func:`_stop_queues_at_exit`.
_STARTED: weakref.WeakSet[_AsyncQueue] = weakref.WeakSet()


def _stop_queues_at_exit() -> None:
    """At interpreter exit, finish the ops still queued and stop the workers (nobody closed
    the backend: a program that ends with ops in flight). A worker left in a device call
    while the OpenCL runtime is torn down under it aborts the process (PoCL: "terminate
    called without an active exception", status 134) instead of the program's own exit.
    Registered again at each worker start, after the runtime's own hooks: hooks run
    last-registered first, so this one runs before them."""
    for q in list(_STARTED):
        try:
            q.close(CLOSE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - exiting anyway; one queue must not stop the rest
            pass


class _AsyncQueue:
    """The asynchronous op queue: ``submit`` appends, a worker thread coalesces the queued ops
    of one kind (up to ``batch_size``) into one device call, ``poll`` hands back finished ops.

    At most ``depth`` ops are accepted and not yet completed; past that ``submit`` marks the
    rest BUSY (backpressure, as a full hardware queue does).
    """

    def __init__(self, backend: Lz4OpenCLBackend, depth: int) -> None:
        self.backend = backend
        self.depth = depth
        self.cond = threading.Condition()
        self.queued: deque[CompOp] = deque()
        self.running = 0
        self.done: deque[CompOp] = deque()
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.calls = 0  # device calls the worker has finished (close's sign of life)

    def submit(self, ops: Sequence[CompOp]) -> int:
        with self.cond:
            if self.stopping:
                raise DeviceError(f"{self.backend.name}: the backend is closed; create a new one")
            room = self.depth - len(self.queued) - self.running
            accepted = max(0, min(room, len(ops)))
            for op in ops[:accepted]:
                op.status = OpStatus.NOT_PROCESSED
            self.queued.extend(ops[:accepted])
            for op in ops[accepted:]:
                op.status = OpStatus.BUSY
            if accepted:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._work, name="lz4-opencl-queue", daemon=True
                    )
                    self.thread.start()
                    _STARTED.add(self)
                    atexit.unregister(_stop_queues_at_exit)
                    atexit.register(_stop_queues_at_exit)
                self.cond.notify_all()
        return accepted

    def poll(self, max_ops: int | None) -> list[CompOp]:
        with self.cond:
            if not self.done and (self.queued or self.running):
                self.cond.wait(_POLL_WAIT_S)
            done = self.done
            n = len(done) if max_ops is None else min(max_ops, len(done))
            return [done.popleft() for _ in range(n)]

    def pending(self) -> int:
        with self.cond:
            return len(self.queued) + self.running + len(self.done)

    def _take(self) -> list[CompOp] | None:
        """The next run of work: every queued op of the oldest op's kind, up to a batch."""
        with self.cond:
            while not self.queued and not self.stopping:
                self.cond.wait()
            if not self.queued:
                return None
            kind = self.queued[0].kind
            limit = self.backend._batch
            take, keep = [], deque()
            for op in self.queued:
                (take if op.kind is kind and len(take) < limit else keep).append(op)
            self.queued = keep
            self.running += len(take)
            return take

    def _work(self) -> None:
        while True:
            ops = self._take()
            if ops is None:
                return
            try:
                self.backend._run_ops(ops)
            except BaseException as exc:  # noqa: BLE001 -- every op must complete, whatever
                for op in ops:
                    if not op.done:
                        op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, str(exc), None
            with self.cond:
                self.running -= len(ops)
                self.calls += 1
                self.done.extend(ops)
                self.cond.notify_all()

    def close(self, patience_s: float) -> int:
        """Finish every accepted op (they stay pollable), then stop the worker. A long queue
        is waited for as long as device calls keep returning; once none has returned for
        ``patience_s``, the ops still queued behind the call that has not returned complete
        as DEVICE_ERROR (never run), and the ops in that call complete when it returns (the
        worker then ends). Returns how many ops were in that call (0: everything finished)."""
        with self.cond:
            seen = self.calls
            deadline = time.monotonic() + patience_s
            while self.queued or self.running:
                if self.calls != seen:  # a call returned: the device is alive
                    seen = self.calls
                    deadline = time.monotonic() + patience_s
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.05))
            self.stopping = True
            stuck = self.running
            if self.queued:
                why = (f"{self.backend.name}: the backend was closed while a device call of "
                       f"{stuck} ops had not returned; this op never ran")
                for op in self.queued:
                    op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, why, None
                self.done.extend(self.queued)
                self.queued = deque()
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(max(0.0, deadline - time.monotonic()))
        return stuck


_DEVICE_KEYS = ("device", "device_type", "platform")


def _matches(query: DeviceQuery) -> bool:
    """Whether some device here answers ``query`` (the environment's PYOPENCL_CTX aside)."""
    try:
        select_device(query, environ={})
    except BackendUnavailableError:
        return False
    return True


class Lz4OpenCLBackend(Backend):
    """LZ4 block compression of page batches on an OpenCL device (GPU, or PoCL's CPU device)."""

    name = "lz4-opencl"
    gauges = frozenset({"device", "config", "config_source"})  # settings; the rest: counts
    PARAMS = {
        "device": Param(str, "auto", doc="device name substring, or 'auto' (GPU first); a "
                        "name given must match a device here (else a parameter error)"),
        "device_type": Param(str, "any", choices=DEVICE_TYPES,
                             doc="restrict to a device type (one not here: a parameter error)"),
        "platform": Param(str, "", doc="platform name substring ('' = any; one not here: a "
                          "parameter error)"),
        "batch_size": Param(
            int, 0, min=0, max=65536,
            doc="pages per device launch (0 = tuned); larger calls are pipelined",
        ),
        "layout": Param(
            str, "auto", choices=("auto", "item", "group"),
            doc="compressor: one page per work-item or per work-group (auto = tuned)",
        ),
        "local_size": Param(
            int, 0, min=0, max=1024,
            doc="compressor work-group size (item layout) or group width 1..16 (group layout); "
            "0 = tuned",
        ),
        "hash_log": Param(
            int, 0, choices=(0, 10, 11, 12, 13),
            doc="log2 of hash-table entries (12 = python-lz4's parse; 0 = tuned)",
        ),
        "decompress_layout": Param(
            str, "auto", choices=("auto", "item", "group"),
            doc="decompressor: one item per work-item or per work-group (cooperative)",
        ),
        "decompress_local_size": Param(
            int, 0, min=0, max=1024, doc="decompressor work-group size; 0 = tuned",
        ),
        "queues": Param(int, 2, min=1, max=8,
                        doc="command queues a call is spread over (on a CPU device, a call "
                            "under the batch size too)"),
        "queue_depth": Param(
            int, 4, min=1, max=64, doc="async: batches of ops accepted before BUSY",
        ),
        "zero_copy": Param(
            str, "auto", choices=("auto", "on", "off"),
            doc="kernels use the caller's buffers in place (CL_MEM_USE_HOST_PTR); auto = on "
            "for devices that share host memory",
        ),
        "pinned": Param(
            str, "auto", choices=("auto", "on", "off"),
            doc="stage transfers through pinned host buffers (CL_MEM_ALLOC_HOST_PTR); auto = "
            "on unless zero-copy",
        ),
        "copy_threads": Param(
            int, 0, min=0, max=64,
            doc="host threads for large staging copies (0 = auto: 1 with zero-copy, else up "
            "to 4)",
        ),
        "tune": Param(
            str, "auto", choices=("auto", "off"),
            doc="auto: kernel params left at auto come from this device's tuned choice "
            "(measured once, cached); off: built-in defaults",
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._cl = import_pyopencl()
        self._query = DeviceQuery(p["device"], p["device_type"], p["platform"])
        self._platform, self._device = self._select()
        self._label = device_label(self._device)
        self._kind = device_type_name(self._device)
        self.tuning: dict[str, Any] = self._resolve_config()
        cfg = self.config
        self._layout: str = cfg["layout"]
        self._batch: int = cfg["batch_size"]
        self._hash_log: int = cfg["hash_log"]
        self._dlayout: str = cfg["decompress_layout"]
        self._local: int = self._check_local(cfg)
        self._dlocal: int = self._check_dlocal(cfg)
        zc = p["zero_copy"]
        self._zero_copy = zc == "on" or (zc == "auto" and _shares_host_memory(self._device))
        pin = p["pinned"]
        self._pinned = pin == "on" or (pin == "auto" and not self._zero_copy)
        self._copy_threads: int = p["copy_threads"] or (
            1 if self._zero_copy else max(1, min(4, os.cpu_count() or 1)))
        self._ctx = None
        self._queues: list[Any] = []
        self._slots: list[_Slot] = []
        self._lock = threading.RLock()  # one device call at a time (sync calls and the worker)
        self._stranded: list[Any] = []  # host memory a failed queue may still use (_abandon)
        self._async = _AsyncQueue(self, p["queue_depth"] * self._batch)
        self._closed = False
        self._c = dict.fromkeys(
            (
                "compress_pages", "compress_launches", "compress_kernel_ns", "compress_e2e_ns",
                "compress_bytes_in", "compress_bytes_out", "incompressible",
                "decompress_pages", "decompress_launches", "decompress_kernel_ns",
                "decompress_e2e_ns", "decompress_bytes_in", "decompress_bytes_out",
                "corrupt_items", "h2d_ns", "d2h_ns", "async_ops", "async_calls",
            ),
            0,
        )

    # -- configuration -----------------------------------------------------------------------

    def _select(self) -> tuple[Any, Any]:
        """The device the parameters choose. With ``device``, ``device_type`` and ``platform``
        at their defaults, no device here means the backend cannot run here
        (:class:`BackendUnavailableError`: a bench over every backend skips it). A device named
        explicitly that is not here is an error of that parameter
        (:class:`InvalidParameterError`, naming it; a bench fails that row and exits 1, a
        config error names the file and the key): whoever wrote ``device_type: gpu`` asked for
        a GPU, and a run without one must not pass for one."""
        try:
            return select_device(self._query)
        except BackendUnavailableError as exc:
            p = self.params
            explicit = [k for k in _DEVICE_KEYS if p[k] != self.PARAMS[k].default]
            if not explicit:
                raise
            culprits = [k for k in explicit if not _matches(DeviceQuery(**{k: p[k]}))]
            named = culprits or explicit
            which = " and ".join(f"parameter {k!r} ({p[k]!r})" for k in named)
            raise InvalidParameterError(
                f"{self.name}: {which} names a device that is not here: {exc}. A device named "
                f"explicitly must exist (an error, not an unavailable backend a bench would "
                f"skip): fix the value, or leave device, device_type and platform at their "
                f"defaults to run on whatever OpenCL device is here"
            ) from None

    def _resolve_config(self) -> dict[str, Any]:
        """Explicit params, else the tuned choice (tune="auto"), else the defaults."""
        p = self.params
        explicit = {k: p[k] for k in TUNED_KEYS if p[k] not in (0, "auto")}
        tuned: dict[str, Any] = {}
        source = "explicit" if len(explicit) == len(TUNED_KEYS) else "defaults (tune=off)"
        if p["tune"] == "auto" and len(explicit) < len(TUNED_KEYS):
            from hwzswap.backends.opencl import tuning

            result = tuning.tuned_choice(self._platform, self._device, self._query)
            tuned, source = dict(result.choice), result.source
            # A work-group size is tuned for its layout: with the layout given explicitly and
            # another one tuned, the tuned size does not apply (a GPU's item size of 64 is no
            # group width), so the layout's own default is used instead.
            for layout_key, local_key in (("layout", "local_size"),
                                          ("decompress_layout", "decompress_local_size")):
                if layout_key in explicit and tuned.get(layout_key) != explicit[layout_key]:
                    tuned.pop(local_key, None)
        config = {**DEFAULTS, **tuned, **explicit}
        return {"config": config, "source": source, "explicit": sorted(explicit)}

    @property
    def config(self) -> dict[str, Any]:
        """The kernel configuration in use (explicit params over tuned choice over defaults)."""
        return dict(self.tuning["config"])

    def _check_local(self, cfg: dict[str, Any]) -> int:
        local = cfg["local_size"]
        if self._layout == "group":
            local = local or _AUTO_GROUP_WIDTH
            if local not in GROUP_WIDTHS:
                raise InvalidParameterError(
                    f"lz4-opencl: layout 'group' needs local_size in {GROUP_WIDTHS} "
                    f"(the group width), got {local}"
                )
            return local
        local = local or _AUTO_LOCAL.get(self._kind, _AUTO_LOCAL_DEFAULT)
        return min(local, int(self._device.max_work_group_size))

    def _check_dlocal(self, cfg: dict[str, Any]) -> int:
        local = cfg["decompress_local_size"]
        if self._dlayout == "group":
            local = local or _AUTO_DGROUP.get(self._kind, _AUTO_DGROUP_DEFAULT)
        else:
            local = local or _AUTO_LOCAL.get(self._kind, _AUTO_LOCAL_DEFAULT)
        return min(local, int(self._device.max_work_group_size))

    # -- availability and description ------------------------------------------------------

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        try:
            list_devices()
            select_device(DeviceQuery())  # honours PYOPENCL_CTX
        except BackendUnavailableError as exc:
            return False, str(exc)
        return True, None

    @property
    def device_name(self) -> str:
        """The OpenCL device's name, e.g. ``pthread-Intel(R) Xeon(R) Processor``."""
        return self._device.name.strip()

    @property
    def device_info(self) -> dict[str, Any]:
        """Device facts plus the kernel configuration, for benchmark records."""
        return {
            **device_info(self._platform, self._device),
            "layout": self._layout,
            "local_size": self._local,
            "hash_log": self._hash_log,
            "batch_size": self._batch,
            "decompress_layout": self._dlayout,
            "decompress_local_size": self._dlocal,
            "queues": self.params["queues"],
            "zero_copy": self._zero_copy,
            "pinned": self._pinned,
            "copy_threads": self._copy_threads,
            "host_unified_memory": _shares_host_memory(self._device),
            "config_source": self.tuning["source"],
        }

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            device=self._label,
            asynchronous=True,
            batch=True,
            min_batch=1,
            max_batch=None,
            preferred_batch=self._batch,
            time_basis="measured",
            # Every configuration writes plain LZ4 blocks (tests/backends/test_opencl_format.py
            # decodes each layout, group width and hash_log with python-lz4), so the software
            # lz4 backend decodes the pool's objects when the device fails.
            format="lz4",
        )

    def describe(self) -> str:
        comp = (
            f"compress: one page per work-group of {self._local}"
            if self._layout == "group"
            else f"compress: one page per work-item, work-groups of {self._local}"
        )
        decomp = (
            f"decompress: one item per work-group of {self._dlocal} (cooperative)"
            if self._dlayout == "group"
            else f"decompress: one item per work-item, work-groups of {self._dlocal}"
        )
        host = ("buffers used in place" if self._zero_copy
                else "pinned staging" if self._pinned else "pageable copies")
        return (
            f"{self.name} on {self._label} ({self._kind}, platform "
            f"{self._platform.name.strip()!r}; {comp}, hash_log {self._hash_log}; {decomp}; "
            f"batches of {self._batch} over {self.params['queues']} queues; {host}; "
            f"config: {self.tuning['source']})"
        )

    # -- device setup ------------------------------------------------------------------------

    def _setup(self) -> None:
        """Create the context, build the kernels and the pipeline slots (on first use)."""
        if self._closed:
            raise DeviceError(f"{self.name}: the backend is closed; create a new one")
        cl = self._cl
        try:
            self._ctx = _context(cl, self._device)
            opts = (f"-DHASH_LOG={self._hash_log}",)
            if self._layout == "group":
                opts += (f"-DGROUP_WIDTH={self._local}",)
            self._prg_c = _program(cl, self._ctx, self._device, "lz4_compress.cl", opts)
            self._prg_d = _program(cl, self._ctx, self._device, "lz4_decompress.cl", ())
            props = cl.command_queue_properties.PROFILING_ENABLE
            self._queues = [cl.CommandQueue(self._ctx, self._device, properties=props)
                            for _ in range(self.params["queues"])]
            self._slots = [_Slot(self, q) for q in self._queues]
        except cl.Error as exc:
            raise DeviceError(
                f"{self.name}: OpenCL setup on {self.device_name!r} failed: {exc}"
            ) from exc

    def _new_compress_kernel(self) -> Any:
        name = "lz4_compress_group" if self._layout == "group" else "lz4_compress_item"
        return self._cl.Kernel(self._prg_c, name)

    def _new_decompress_kernel(self) -> Any:
        name = "lz4_decompress_group" if self._dlayout == "group" else "lz4_decompress_item"
        return self._cl.Kernel(self._prg_d, name)

    def _ready(self) -> None:
        if self._closed:
            raise DeviceError(f"{self.name}: the backend is closed; create a new one")
        if self._ctx is None:
            self._setup()

    def close(self, timeout_s: float | None = None) -> None:
        """Finish accepted async ops (they stay pollable), then free the device buffers.

        Waits as long as the device makes progress, and ``timeout_s`` (default
        :data:`CLOSE_TIMEOUT_S`) at most for any one call: a device call that has not returned
        by then is not waited for. The backend is closed at once all the same
        (later calls raise DeviceError); async ops queued behind that call complete as
        DEVICE_ERROR without running; the call's own ops complete if and when it returns, and
        the device buffers are freed then, by the thread that made the call (nothing can free
        memory a running kernel may still write). That case raises
        :class:`~hwzswap.errors.DeviceTimeoutError` saying so. Safe to call twice."""
        if self._closed:
            return
        wait = CLOSE_TIMEOUT_S if timeout_s is None else max(0.0, float(timeout_s))
        stuck = 0
        try:
            stuck = self._async.close(wait)
        finally:
            self._closed = True  # a call waiting for the lock now refuses (_device_call)
            # the stuck async call holds the lock: no second wait for it
            freed = self._lock.acquire(timeout=0.0 if stuck else wait)
            if freed:
                try:
                    self._release_device()
                finally:
                    self._lock.release()
        if stuck or not freed:
            what = f"an async device call of {stuck} ops" if stuck else "a device call"
            raise DeviceTimeoutError(
                f"{self.name}: close gave up after {wait:g} s without an answer from {what} "
                f"on {self.device_name!r} (a hung device or driver); the "
                f"backend is closed, and its device buffers are freed when that call returns"
            )

    def _release_device(self) -> None:
        """Free the queues' work and the slots' buffers (lock held, backend closed)."""
        slots, self._slots = self._slots, []
        try:
            for q in self._queues:
                q.finish()
        finally:
            for slot in slots:
                slot.release()

    @contextmanager
    def _device_call(self) -> Iterator[None]:
        """One device call: the lock held, the device set up; on the way out, the buffers
        freed when :meth:`close` gave up waiting for this call. A closed backend refuses at
        once (not after waiting for a stuck call to let go of the device)."""
        if self._closed:
            raise DeviceError(f"{self.name}: the backend is closed; create a new one")
        with self._lock:
            try:
                self._ready()
                yield
            finally:
                if self._closed and self._slots:
                    self._release_device()

    # -- the pipeline ----------------------------------------------------------------------

    def _pipeline(self, what: str, kind: OpKind, bounds: list[tuple[int, int]],
                  enqueue: Callable[[_Job], None],
                  finish: Callable[[_Job], None]) -> None:
        """Run chunks over the slots: chunk k goes to slot k mod S once chunk k-S is done.
        A job counts as in flight from before ``enqueue`` fills it until ``finish`` has
        returned, so a failure at any step releases what it wrapped (:meth:`_abandon`)."""
        cl = self._cl
        slots = self._slots
        inflight: deque[_Job] = deque()
        try:
            for k, (a, b) in enumerate(bounds):
                if len(inflight) == len(slots):
                    finish(inflight[0])
                    inflight.popleft()
                job = _Job(kind, slots[k % len(slots)], b - a, a)
                inflight.append(job)
                enqueue(job)
            while inflight:
                finish(inflight[0])
                inflight.popleft()
        except BaseException as exc:
            self._abandon(inflight)
            if isinstance(exc, cl.Error):
                raise DeviceError(
                    f"{self.name}: {what} on {self.device_name!r} failed: {exc}"
                ) from exc
            raise

    def _abandon(self, jobs: deque[_Job]) -> None:
        """A call failed with ``jobs`` still in flight: wait for the queues, then unmap and
        release every job's wrappers of host memory (the failed job's too). Errors here are
        dropped (the call's own error is raised): a queue that cannot finish may still run
        work on the jobs' host memory, which then is kept alive (``_stranded``) rather than
        handed back to the allocator."""
        drained = True
        for q in self._queues:
            try:
                q.finish()
            except Exception:  # noqa: BLE001 -- a broken queue: still release what we can
                drained = False
        for job in jobs:
            if not drained and job.keep is not None:
                self._stranded.append(job.keep)
            try:
                self._unwrap(job)
            except Exception:  # noqa: BLE001
                pass
            job.keep = None

    def _unwrap(self, job: _Job) -> None:
        """Unmap and release the buffers wrapping the caller's memory (each once, even when
        one of them fails: the first error is raised after the rest are released)."""
        mapped, wrappers = job.mapped, job.wrappers
        job.mapped, job.wrappers = [], []
        first: BaseException | None = None
        for arr in mapped:
            try:
                arr.base.release(job.slot.queue)
            except Exception as exc:  # noqa: BLE001
                first = first or exc
        for buf in wrappers:
            try:
                buf.release()
            except Exception as exc:  # noqa: BLE001
                first = first or exc
        if first is not None:
            raise first

    def _wrap(self, flags: int, host: Any) -> Any:
        """A USE_HOST_PTR buffer over ``host`` (the device uses that memory in place)."""
        cl = self._cl
        return cl.Buffer(self._ctx, flags | cl.mem_flags.USE_HOST_PTR, hostbuf=host)

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        """A call's chunks (one kernel launch each): at most the tuned batch size. On a CPU
        device a call smaller than that is still spread over the queues (at least
        :data:`MIN_SPLIT_PAGES` a chunk): on PoCL a single launch of a reclaim pass's few
        hundred pages kept one of the two cores busy, two launches kept both. On a GPU, where
        this is not measured yet (and the tuner measured without it), a call under the batch
        size stays one launch."""
        queues = max(1, len(self._slots))
        B = self._batch
        if self._kind == "cpu" and queues * MIN_SPLIT_PAGES <= n < B:
            B = -(-n // queues)  # ceil: one chunk per queue
        return [(a, min(a + B, n)) for a in range(0, n, B)]

    # -- compress ----------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> CompressedBatch:
        """Compress an ``(N, 4096)`` batch into one :class:`CompressedBatch` (INCOMPRESSIBLE
        where a page would not shrink)."""
        return self._compress_pages(check_pages(pages))

    def _compress_pages(self, pages: np.ndarray) -> CompressedBatch:
        n = len(pages)
        if n == 0:
            z = np.zeros(0, np.int64)
            return CompressedBatch(b"", z, z, np.zeros(0, np.uint8))
        with self._device_call():
            t0 = time.perf_counter_ns()
            # Worst case every page's stream is 4095 bytes; only the bytes written are touched
            # (fresh memory is mapped lazily), so the reservation costs address space only.
            out = np.empty(n * (PAGE_SIZE - 1), np.uint8)
            sizes = np.empty(n, np.int64)
            offsets = np.empty(n, np.int64)
            cursor = [0]  # copy path: where the next chunk's bytes go
            zc = self._zero_copy
            cl = self._cl
            mf = cl.mem_flags

            def enqueue(job: _Job) -> None:
                slot, m, a = job.slot, job.m, job.first
                rows = pages[a : a + m]
                slot.reserve(m, 0 if zc else m * (PAGE_SIZE - 1))
                q = slot.queue
                if zc:
                    job.base = a * (PAGE_SIZE - 1)
                    region = out[job.base : job.base + m * (PAGE_SIZE - 1)]
                    src = self._wrap(mf.READ_ONLY, rows)
                    dst = self._wrap(mf.WRITE_ONLY, region)
                    job.wrappers = [src, dst]
                    job.keep = (rows, region)
                else:
                    src, dst = slot.d_pages, slot.d_bytes
                    if self._pinned:
                        staged = slot.h_pages[: m * PAGE_SIZE]
                        _copy(staged.reshape(m, PAGE_SIZE), rows, self._copy_threads)
                        job.h2d.append(cl.enqueue_copy(q, src, staged, is_blocking=False))
                    else:
                        job.h2d.append(cl.enqueue_copy(q, src, rows, is_blocking=False))
                        job.keep = rows
                job.h2d.append(cl.enqueue_copy(q, slot.d_meta, _ZERO_U32, is_blocking=False))
                k = slot.k_compress
                if self._layout == "group":
                    k.set_args(src, dst, slot.d_meta, np.uint32(m))
                    gsize, lsize = m * self._local, self._local
                else:
                    k.set_args(src, slot.d_scratch, dst, slot.d_meta, np.uint32(m))
                    lsize = self._local
                    gsize = -(-m // lsize) * lsize
                job.kernel_ev = cl.enqueue_nd_range_kernel(q, k, (gsize,), (lsize,))
                job.d2h.append(cl.enqueue_copy(q, slot.h_meta[: 1 + 2 * m], slot.d_meta,
                                               is_blocking=False))
                if zc:  # map the output: what makes the kernel's writes the host's by the rules
                    mapped, ev = cl.enqueue_map_buffer(q, dst, cl.map_flags.READ, 0,
                                                       (len(region),), np.uint8,
                                                       is_blocking=False)
                    job.mapped.append(mapped)
                    job.d2h.append(ev)

            def finish(job: _Job) -> None:
                slot, m, a = job.slot, job.m, job.first
                job.d2h[0].wait()
                meta = slot.h_meta
                total = int(meta[0])
                sizes[a : a + m] = meta[1 : 1 + 2 * m : 2]
                if zc:
                    for ev in job.d2h[1:]:
                        ev.wait()
                    offsets[a : a + m] = meta[2 : 2 + 2 * m : 2]
                    offsets[a : a + m] += job.base
                    self._unwrap(job)
                    job.keep = None
                    cursor[0] = job.base + total
                else:
                    at = cursor[0]
                    if total:
                        if self._pinned:
                            ev = cl.enqueue_copy(slot.queue, slot.h_bytes[:total], slot.d_bytes,
                                                 is_blocking=True)
                            _copy(out[at : at + total], slot.h_bytes[:total],
                                  self._copy_threads)
                        else:
                            ev = cl.enqueue_copy(slot.queue, out[at : at + total],
                                                 slot.d_bytes, is_blocking=True)
                        job.d2h.append(ev)
                    offsets[a : a + m] = meta[2 : 2 + 2 * m : 2]
                    offsets[a : a + m] += at
                    cursor[0] = at + total
                job.nbytes = total
                self._count("compress", job, m * PAGE_SIZE, total)

            self._pipeline("compressing", OpKind.COMPRESS, self._chunks(n), enqueue, finish)
            status = np.where(sizes == 0, np.uint8(ItemStatus.INCOMPRESSIBLE),
                              np.uint8(ItemStatus.OK))
            incompressible = int(np.count_nonzero(status))
            offsets[status != 0] = 0
            self._c["incompressible"] += incompressible
            self._c["compress_e2e_ns"] += time.perf_counter_ns() - t0
            return CompressedBatch(out[: cursor[0]], offsets, sizes, status)

    def _count(self, kind: str, job: _Job, nbytes_in: int, nbytes_out: int) -> None:
        c = self._c
        c[f"{kind}_pages"] += job.m
        c[f"{kind}_launches"] += 1
        c[f"{kind}_kernel_ns"] += _event_ns(job.kernel_ev)
        c[f"{kind}_bytes_in"] += nbytes_in
        c[f"{kind}_bytes_out"] += nbytes_out
        c["h2d_ns"] += sum(map(_event_ns, job.h2d))
        c["d2h_ns"] += sum(map(_event_ns, job.d2h))

    # -- decompress --------------------------------------------------------------------------

    def _pack(self, items: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
        """Items as one flat byte array, offsets and lengths, plus the items failed before the
        device sees them (no bytes, too long). Bad item types raise naming their index."""
        errors: dict[int, str] = {}
        if isinstance(items, CompressedBatch):
            data = _flat_u8(items.data)
            offs = items.offsets.astype(np.int64, copy=True)
            lens = items.sizes.astype(np.int64, copy=True)
            for i in np.flatnonzero(items.status != ItemStatus.OK).tolist():
                errors[i] = (f"{self.name}: item {i} has no compressed bytes (the batch marks it "
                             f"{ItemStatus(int(items.status[i])).name})")
            outside = (offs < 0) | (lens < 0) | (offs + lens > len(data))
            for i in np.flatnonzero(outside).tolist():
                errors.setdefault(i, f"{self.name}: item {i}'s bytes lie outside the batch's "
                                     f"buffer ({len(data)} bytes)")
            if errors:
                bad = np.fromiter(errors, np.int64, len(errors))
                offs[bad] = 0
                lens[bad] = 0
        else:
            n = len(items)
            if set(map(type, items)) <= {bytes, bytearray}:
                lens = np.fromiter(map(len, items), np.int64, n)
                blob = b"".join(items)
            else:
                views = []
                name = self.name
                for j, item in enumerate(items):
                    try:
                        views.append(compressed_input(name, item))
                    except InvalidInputError as exc:  # as every backend: strided is refused
                        raise InvalidInputError(f"item {j}: {exc}") from None
                lens = np.fromiter((len(v) for v in views), np.int64, n)
                blob = b"".join(views)
            data = np.frombuffer(blob, np.uint8)
            offs = np.zeros(n, np.int64)
            if n > 1:
                np.cumsum(lens[:-1], out=offs[1:])
        too_long = np.flatnonzero(lens > MAX_ITEM_BYTES)
        for i in too_long.tolist():
            errors[i] = (f"{self.name}: compressed data is corrupt or truncated ({int(lens[i])} "
                         f"bytes is longer than any LZ4 block of one page, at most "
                         f"{MAX_ITEM_BYTES})")
        lens[too_long] = 0
        return data, offs, lens, errors

    def decompress_batch(self, items: Any) -> np.ndarray | DecompressedBatch:
        """Decompress N items (a :class:`CompressedBatch` or a sequence of bytes-like items)
        into an ``(N, 4096)`` array; when some items are corrupt, a :class:`DecompressedBatch`
        marking those items alone as FAILED (the others decoded)."""
        out, status, errors = self._decompress_items(items)
        if not errors:
            return out
        return DecompressedBatch(out, status, errors)

    def _decompress_items(self, items: Any) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        data, offs, lens, errors = self._pack(items)
        n = len(lens)
        out = np.empty((n, PAGE_SIZE), dtype=np.uint8)
        status = np.zeros(n, np.uint8)
        if n == 0:
            return out, status, errors
        codes = np.zeros(n, np.int32)
        ends = offs + lens
        zc = self._zero_copy
        cl = self._cl
        mf = cl.mem_flags
        with self._device_call():
            t0 = time.perf_counter_ns()

            def enqueue(job: _Job) -> None:
                slot, m, a = job.slot, job.m, job.first
                b = a + m
                lo = int(offs[a:b].min())
                hi = max(lo, int(ends[a:b].max()))
                region = data[lo:hi]
                slot.reserve(m, max(1, hi - lo))
                q = slot.queue
                job.nbytes = int(lens[a:b].sum())
                idx = slot.h_index[: 2 * m]
                idx[0::2] = offs[a:b] - lo
                idx[1::2] = lens[a:b]
                job.h2d.append(cl.enqueue_copy(q, slot.d_index, idx, is_blocking=False))
                rows = out[a:b]
                if zc:
                    src = self._wrap(mf.READ_ONLY, region if hi > lo else _DUMMY)
                    dst = self._wrap(mf.WRITE_ONLY, rows)
                    job.wrappers = [src, dst]
                    job.keep = (region, rows)
                else:
                    src, dst = slot.d_bytes, slot.d_pages
                    if hi > lo:
                        if self._pinned:
                            staged = slot.h_bytes[: hi - lo]
                            _copy(staged, region, self._copy_threads)
                            region = staged
                        job.h2d.append(cl.enqueue_copy(q, src, region, is_blocking=False))
                        job.keep = region
                k = slot.k_decompress
                k.set_args(src, slot.d_index, dst, slot.d_status, np.uint32(m))
                if self._dlayout == "group":
                    gsize, lsize = m * self._dlocal, self._dlocal
                else:
                    lsize = self._dlocal
                    gsize = -(-m // lsize) * lsize
                job.kernel_ev = cl.enqueue_nd_range_kernel(q, k, (gsize,), (lsize,))
                job.d2h.append(cl.enqueue_copy(q, slot.h_status[:m], slot.d_status,
                                               is_blocking=False))
                if zc:
                    mapped, ev = cl.enqueue_map_buffer(q, dst, cl.map_flags.READ, 0, rows.shape,
                                                       rows.dtype, is_blocking=False)
                    job.mapped.append(mapped)
                    job.d2h.append(ev)
                elif self._pinned:
                    job.d2h.append(cl.enqueue_copy(q, slot.h_pages[: m * PAGE_SIZE],
                                                   slot.d_pages, is_blocking=False))
                else:
                    job.d2h.append(cl.enqueue_copy(q, rows, slot.d_pages, is_blocking=False))

            def finish(job: _Job) -> None:
                slot, m, a = job.slot, job.m, job.first
                for ev in job.d2h:
                    ev.wait()
                codes[a : a + m] = slot.h_status[:m]
                if zc:
                    self._unwrap(job)
                elif self._pinned:
                    _copy(out[a : a + m], slot.h_pages[: m * PAGE_SIZE].reshape(m, PAGE_SIZE),
                          self._copy_threads)
                job.keep = None
                self._count("decompress", job, job.nbytes, m * PAGE_SIZE)

            self._pipeline("decompressing", OpKind.DECOMPRESS, self._chunks(n), enqueue,
                           finish)
            self._c["decompress_e2e_ns"] += time.perf_counter_ns() - t0
        bad = np.flatnonzero(codes)
        if bad.size or errors:
            for i in bad.tolist():
                errors.setdefault(i, self._status_error(int(codes[i])))
            status[np.fromiter(errors, np.int64, len(errors))] = ItemStatus.FAILED
            self._c["corrupt_items"] += len(errors)
        return out, status, errors

    def _status_error(self, code: int) -> str:
        return (
            f"{self.name}: compressed data is corrupt or truncated "
            f"({_STATUS_TEXT.get(code, f'device status {code}')})"
        )

    # -- single page -------------------------------------------------------------------------

    def compress(self, page: Any) -> bytes | None:
        """One page as a batch of one (a full device round trip)."""
        view = check_page(page)
        batch = self._compress_pages(np.frombuffer(view, dtype=np.uint8).reshape(1, PAGE_SIZE))
        size, off = int(batch.sizes[0]), int(batch.offsets[0])
        return memoryview(batch.data)[off : off + size].tobytes() if size else None

    def decompress(self, data: Any) -> bytes:
        """One item as a batch of one; corrupt data raises :class:`CorruptDataError`, input
        that is not one contiguous bytes-like buffer :class:`InvalidInputError` (the contract's
        :func:`compressed_input`, as every backend)."""
        out, _status, errors = self._decompress_items([compressed_input(self.name, data)])
        if errors:
            raise CorruptDataError(errors[0])
        return out[0].tobytes()

    # -- asynchronous ops --------------------------------------------------------------------

    def submit(self, ops: Sequence[CompOp]) -> int:
        """Queue ops for the worker thread; return how many (a prefix) were accepted.

        Past ``queue_depth`` batches of ``batch_size`` ops accepted and not yet completed, the
        rest are marked BUSY and must be resubmitted.
        """
        if self._closed:
            raise DeviceError(f"{self.name}: the backend is closed; create a new one")
        return self._async.submit(ops)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        """Ops completed since the last poll; waits up to 1 ms for one when work is in flight."""
        return self._async.poll(max_ops)

    def pending(self) -> int:
        return self._async.pending()

    def _run_ops(self, ops: list[CompOp]) -> None:
        """The worker's job: one device call for a run of same-kind ops."""
        valid: list[CompOp] = []
        srcs: list[Any] = []
        compress = ops[0].kind is OpKind.COMPRESS
        for op in ops:
            try:
                src = check_page(op.src) if compress else compressed_input(self.name, op.src)
            except (TypeError, InvalidInputError) as exc:
                op.status, op.error, op.dst = OpStatus.INVALID_INPUT, str(exc), None
                continue
            valid.append(op)
            srcs.append(src)
        if not valid:
            return
        try:
            if compress:
                rows = np.frombuffer(b"".join(srcs), np.uint8).reshape(len(valid), PAGE_SIZE)
                batch = self._compress_pages(rows)
                view = memoryview(batch.data)  # one flat uint8 buffer
                success, incompressible = OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE
                for op, size, off in zip(valid, batch.sizes.tolist(), batch.offsets.tolist()):
                    op.consumed = PAGE_SIZE
                    if size:
                        op.dst = view[off : off + size].tobytes()
                        op.status, op.produced = success, size
                    else:
                        op.status, op.dst, op.produced = incompressible, None, 0
            else:
                out, _status, errors = self._decompress_items(srcs)
                for i, op in enumerate(valid):
                    op.consumed = len(srcs[i])
                    if i in errors:
                        op.status, op.error, op.dst = OpStatus.INVALID_INPUT, errors[i], None
                    else:
                        op.status, op.dst, op.produced = (OpStatus.SUCCESS, out[i].tobytes(),
                                                          PAGE_SIZE)
        except (DeviceError, self._cl.Error) as exc:
            for op in valid:
                op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, str(exc), None
        with self._lock:
            self._c["async_ops"] += len(ops)
            self._c["async_calls"] += 1

    # -- accounting --------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Pages, bytes, launches, kernel time (profiling events) and end-to-end time (ns).

        Per direction (``compress_*``, ``decompress_*``) and summed over both (``pages``,
        ``kernel_ns``, ``e2e_ns``, ``bytes_in``, ``bytes_out``). ``e2e_ns`` is wall clock from
        the call to its results, transfers included; ``kernel_ns`` is the sum of the kernels'
        OpenCL profiling intervals; ``h2d_ns``/``d2h_ns`` the transfers'. ``async_calls`` is
        the number of device calls the async worker made for ``async_ops`` ops. ``config`` is
        the kernel configuration in use and ``config_source`` where it came from.
        """
        c = self._c
        return {
            "device": self._label,
            **c,
            "pages": c["compress_pages"] + c["decompress_pages"],
            "kernel_ns": c["compress_kernel_ns"] + c["decompress_kernel_ns"],
            "e2e_ns": c["compress_e2e_ns"] + c["decompress_e2e_ns"],
            "bytes_in": c["compress_bytes_in"] + c["decompress_bytes_in"],
            "bytes_out": c["compress_bytes_out"] + c["decompress_bytes_out"],
            "config": {**self.config, "local_size": self._local,
                       "decompress_local_size": self._dlocal},
            "config_source": self.tuning["source"],
        }
