"""``lz4-opencl``: LZ4 block compression of whole batches of pages on an OpenCL device.

Offloading a 4 KiB page only pays when many pages travel in one call, so this backend is built
around :meth:`compress_batch` / :meth:`decompress_batch` (and async :meth:`submit` / :meth:`poll`,
which enqueue the same device work and complete ops as OpenCL events finish). Single-page calls
run as batches of one: correct, but they pay a full device round trip.

Format: the LZ4 *block* format, as the kernel's ``lz4`` and python-lz4's ``lz4.block`` use it.
With the default ``hash_log=12`` the device runs LZ4's own greedy fast parse with the same hash
(5 bytes, 4096 entries), so its output is byte-identical to ``lz4.block.compress(page,
store_size=False)`` (python-lz4 4.x, LZ4 1.9.4); either side decodes the other's output.

Kernels (``kernels/*.cl``):

* ``lz4_compress_item`` -- one page per work-item (the default ``layout="item"``);
* ``lz4_compress_group`` -- one page per work-group: the page is staged in local memory, its
  work-items parse one segment each, then size, prefix-sum and encode their sequences in
  parallel (``layout="group"``);
* ``lz4_decompress_item`` -- one item per work-item with every read and write bounds-checked;
  a corrupt item gets an error status, never an out-of-bounds access.

Why one page per work-item: measured on PoCL 3.0 (pthread CPU device, 2 cores, the bundled
corpus, 4096-page batches), the item layout costs ~7 CPU-µs per page and the group layout 14-19
(PoCL runs a work-group's items as loops between barriers on one thread, so splitting a page
only adds staging, barriers and the sequence hand-off), and the group layout also compresses
2-10% worse (widths 2-16: matches cannot cross segment ends). The item layout's work-group size
makes no measurable difference on PoCL; 1 is the default there. The group layout is kept for
GPUs, where one page per work-item leaves its 8 KiB hash table in slow private memory; it has
not been measured on one. Figures: benchmarks/results/opencl_*.md.

Host side: every batch goes through two pipeline *slots*, each with its own in-order command
queue and its own device buffers (allocated once, grown when a larger chunk arrives). A call
larger than ``batch_size`` is cut into chunks that alternate between the slots: chunk N+1 is
uploaded and queued while chunk N's kernel runs and while the host turns chunk N-1's results
into Python objects (double buffering). On a device that shares host memory (PoCL's CPU
device, integrated GPUs; ``zero_copy="auto"``) there is nothing to upload: the kernel reads the
caller's pages in place through a ``CL_MEM_USE_HOST_PTR`` buffer, and the decompressor writes
the result array in place, which saves a 4 KiB copy per page (~5% of the compressor's CPU time
per page on PoCL, ~10% of the decompressor's). The compressor compacts its output on the device,
so only compressed bytes are read back. Kernel time (OpenCL profiling events) and end-to-end time
(wall clock around the whole call, transfers included) are both kept in :meth:`counters`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
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
    InvalidInputError,
    InvalidParameterError,
)

# The longest item the decompressor accepts. A valid LZ4 block that decodes to one page is
# shorter: each sequence but the last emits >= 4 bytes, so there are at most 1024 + 1 of them,
# and a sequence's input exceeds its output by at most 1 byte plus its length-extension bytes
# (<= 4096/255 + 2 in all): 4096 + 1025 + 18 < 8192. Longer input is corrupt without looking.
MAX_ITEM_BYTES = 2 * PAGE_SIZE

# lz4_decompress_item's status codes (kernels/lz4_decompress.cl).
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

# Work-group size of the item layout when local_size=0: PoCL's CPU device runs a work-group's
# items in a loop on one thread, so 1 spreads pages evenly over its threads; on a GPU 64 fills
# a wavefront / two warps.
_AUTO_LOCAL = {"cpu": 1, "other": 1}
_AUTO_LOCAL_DEFAULT = 64
_AUTO_GROUP_WIDTH = 4
_GROUP_WIDTHS = (1, 2, 4, 8, 16)
_POLL_IDLE_S = 50e-6  # poll() naps this long when nothing finished: the device may be this CPU

_ZERO_U32 = np.zeros(1, np.uint32)
_COPY_SLACK = 32  # COPY_SLACK in kernels/lz4_decompress.cl


def _kernel_source(name: str) -> str:
    return resources.files(__package__).joinpath("kernels", name).read_text(encoding="utf-8")


# One context per device and one build per (device, source, options), shared by every backend
# instance in the process (a clone from get_config() does not recompile).
_CONTEXTS: dict[int, Any] = {}
_PROGRAMS: dict[tuple[int, str, tuple[str, ...]], Any] = {}


def _context(cl: Any, device: Any) -> Any:
    key = device.int_ptr
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = cl.Context([device])
    return ctx


def _program(cl: Any, ctx: Any, device: Any, source: str, options: tuple[str, ...]) -> Any:
    key = (device.int_ptr, source, options)
    prg = _PROGRAMS.get(key)
    if prg is None:
        try:
            prg = cl.Program(ctx, _kernel_source(source)).build(options=list(options))
        except cl.Error as exc:
            raise DeviceError(
                f"lz4-opencl: building kernels/{source} for {device.name.strip()!r} failed: {exc}"
            ) from exc
        _PROGRAMS[key] = prg
    return prg


class _Slot:
    """One pipeline slot: an in-order queue plus device buffers and host staging arrays.

    Buffers start empty and grow (never shrink) to the largest chunk seen, so steady-state
    batches allocate nothing. ``d_pages`` holds input pages for compression and output pages for
    decompression; ``d_bytes`` holds the compact compressed bytes either way.
    """

    def __init__(self, owner: Lz4OpenCLBackend, queue: Any) -> None:
        self.owner = owner
        self.queue = queue
        self.cap_pages = 0
        self.cap_bytes = 0
        self.d_pages = self.d_scratch = self.d_bytes = self.d_meta = None
        self.d_index = self.d_status = None
        self.h_meta = np.empty(1, np.uint32)
        self.h_bytes = np.empty(0, np.uint8)
        self.h_index = np.empty(0, np.uint32)
        self.h_status = np.empty(0, np.int32)
        self.k_compress = owner._new_compress_kernel()
        self.k_decompress = owner._new_decompress_kernel()

    def reserve(self, pages: int, nbytes: int = 0) -> None:
        """Make room for ``pages`` pages and ``nbytes`` compressed bytes."""
        cl = self.owner._cl
        ctx = self.owner._ctx
        mf = cl.mem_flags
        grew = False
        try:
            if pages > self.cap_pages:
                cap = max(pages, 2 * self.cap_pages) if self.cap_pages else pages
                self.release(keep_bytes=True)
                self.d_pages = cl.Buffer(ctx, mf.READ_WRITE, cap * PAGE_SIZE)
                if self.owner._layout == "item":
                    self.d_scratch = cl.Buffer(ctx, mf.READ_WRITE | mf.HOST_NO_ACCESS, cap * PAGE_SIZE)
                self.d_meta = cl.Buffer(ctx, mf.READ_WRITE, (1 + 2 * cap) * 4)
                self.d_index = cl.Buffer(ctx, mf.READ_ONLY, 2 * cap * 4)
                self.d_status = cl.Buffer(ctx, mf.WRITE_ONLY, cap * 4)
                self.h_meta = np.empty(1 + 2 * cap, np.uint32)
                self.h_index = np.empty(2 * cap, np.uint32)
                self.h_status = np.empty(cap, np.int32)
                self.cap_pages = cap
                grew = True
            need = max(nbytes, pages * (PAGE_SIZE - 1), 1)  # compressor output is < 4096/page
            if need > self.cap_bytes:
                cap = max(need, 2 * self.cap_bytes)
                if self.d_bytes is not None:
                    self.d_bytes.release()
                # + slack: the decompressor's chunked literal copy may read past the last item
                self.d_bytes = cl.Buffer(ctx, mf.READ_WRITE, cap + _COPY_SLACK)
                self.h_bytes = np.empty(cap, np.uint8)
                self.cap_bytes = cap
                grew = True
        except cl.Error as exc:
            raise DeviceError(
                f"lz4-opencl: cannot allocate device buffers for {pages} pages on "
                f"{self.owner.device_name!r}: {exc}; lower batch_size"
            ) from exc
        if grew:
            self._bind()

    def _bind(self) -> None:
        kc = self.k_compress
        if self.owner._layout == "item":
            kc.set_args(self.d_pages, self.d_scratch, self.d_bytes, self.d_meta, np.uint32(0))
        else:
            kc.set_args(self.d_pages, self.d_bytes, self.d_meta, np.uint32(0))
        self.k_decompress.set_args(
            self.d_bytes, self.d_index, self.d_pages, self.d_status, np.uint32(0)
        )

    def release(self, keep_bytes: bool = False) -> None:
        for name in ("d_pages", "d_scratch", "d_meta", "d_index", "d_status") + (
            () if keep_bytes else ("d_bytes",)
        ):
            buf = getattr(self, name)
            if buf is not None:
                buf.release()
                setattr(self, name, None)
        self.cap_pages = 0
        if not keep_bytes:
            self.cap_bytes = 0


@dataclass(eq=False)
class _Job:
    """Device work enqueued on one slot: a compress or decompress chunk of ``m`` items."""

    kind: OpKind
    slot: _Slot
    m: int
    keep: Any  # host memory the queued transfers read from; must outlive them
    kernel_ev: Any
    h2d: list[Any]
    d2h: list[Any]
    t0: int
    out: np.ndarray | None = None  # decompress: where the pages land
    out_ev: Any = None  # compress: the compact-bytes read, once enqueued
    host_buf: Any = None  # zero-copy: the buffer wrapping the caller's pages / result array
    ops: list[CompOp] = field(default_factory=list)  # async jobs only
    nbytes: int = 0
    first: int = 0  # index of the chunk's first item in the caller's batch


def _shares_host_memory(device: Any) -> bool:
    """CL_DEVICE_HOST_UNIFIED_MEMORY (deprecated in OpenCL 2.0; False when not reported)."""
    try:
        return bool(device.host_unified_memory)
    except Exception:  # noqa: BLE001 -- an OpenCL 3.0 driver may not answer the query
        return False


def _event_done(ev: Any, complete: int) -> bool:
    status = ev.command_execution_status
    if status < 0:
        raise DeviceError(f"lz4-opencl: an OpenCL command failed with status {status}")
    return status == complete


def _event_ns(ev: Any) -> int:
    try:
        return int(ev.profile.end - ev.profile.start)
    except Exception:  # profiling info missing for a command: count nothing, do not fail
        return 0


class Lz4OpenCLBackend(Backend):
    """LZ4 block compression of page batches on an OpenCL device (GPU, or PoCL's CPU device)."""

    name = "lz4-opencl"
    PARAMS = {
        "device": Param(str, "auto", doc="device name substring, or 'auto' (GPU first)"),
        "device_type": Param(str, "any", choices=DEVICE_TYPES, doc="restrict to a device type"),
        "platform": Param(str, "", doc="platform name substring ('' = any)"),
        "batch_size": Param(
            int, 4096, min=1, max=65536, doc="pages per device launch; larger calls are pipelined"
        ),
        "layout": Param(
            str, "item", choices=("item", "group"), doc="one page per work-item or per work-group"
        ),
        "local_size": Param(
            int, 0, min=0, max=1024,
            doc="work-group size (item layout) or group width 1..16 (group layout); 0 = auto",
        ),
        "hash_log": Param(
            int, 12, min=10, max=13, doc="log2 of hash-table entries (12 = python-lz4's parse)"
        ),
        "queue_depth": Param(int, 4, min=1, max=64, doc="async submissions in flight at once"),
        "zero_copy": Param(
            str, "auto", choices=("auto", "on", "off"),
            doc="kernel reads the caller's pages in place (CL_MEM_USE_HOST_PTR); auto = on "
            "for devices that share host memory",
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._cl = cl = import_pyopencl()
        self._query = DeviceQuery(p["device"], p["device_type"], p["platform"])
        self._platform, self._device = select_device(self._query)
        self._label = device_label(self._device)
        self._kind = device_type_name(self._device)
        self._layout: str = p["layout"]
        self._batch: int = p["batch_size"]
        local = p["local_size"]
        if self._layout == "group":
            local = local or _AUTO_GROUP_WIDTH
            if local not in _GROUP_WIDTHS:
                raise InvalidParameterError(
                    f"lz4-opencl: layout 'group' needs local_size in {_GROUP_WIDTHS} "
                    f"(the group width), got {local}"
                )
        else:
            local = local or _AUTO_LOCAL.get(self._kind, _AUTO_LOCAL_DEFAULT)
            local = min(local, int(self._device.max_work_group_size))
        self._local: int = local
        zc = p["zero_copy"]
        self._zero_copy = zc == "on" or (zc == "auto" and _shares_host_memory(self._device))
        self._complete = cl.command_execution_status.COMPLETE
        self._ctx = None
        self._slots: list[_Slot] = []
        self._async_free: list[_Slot] = []
        self._async_slots = 0
        self._inflight: deque[_Job] = deque()
        self._closed = False
        self._c = dict.fromkeys(
            (
                "compress_pages", "compress_launches", "compress_kernel_ns", "compress_e2e_ns",
                "compress_bytes_in", "compress_bytes_out", "incompressible",
                "decompress_pages", "decompress_launches", "decompress_kernel_ns",
                "decompress_e2e_ns", "decompress_bytes_in", "decompress_bytes_out",
                "corrupt_items", "h2d_ns", "d2h_ns",
            ),
            0,
        )

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
            "hash_log": self.params["hash_log"],
            "batch_size": self._batch,
            "zero_copy": self._zero_copy,
            "host_unified_memory": _shares_host_memory(self._device),
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
        )

    def describe(self) -> str:
        layout = (
            f"one page per work-group of {self._local}"
            if self._layout == "group"
            else f"one page per work-item, work-groups of {self._local}"
        )
        return (
            f"{self.name} on {self._label} ({self._kind}, platform "
            f"{self._platform.name.strip()!r}; {layout}; batches of {self._batch}"
            f"{'; pages read in place' if self._zero_copy else ''})"
        )

    # -- device setup ------------------------------------------------------------------------

    def _setup(self) -> None:
        """Create the context, build the kernels and the two sync slots (on first use)."""
        if self._closed:
            raise DeviceError(f"{self.name}: the backend is closed; create a new one")
        cl = self._cl
        try:
            self._ctx = _context(cl, self._device)
            opts = (f"-DHASH_LOG={self.params['hash_log']}",)
            if self._layout == "group":
                opts += (f"-DGROUP_WIDTH={self._local}",)
            self._prg_c = _program(cl, self._ctx, self._device, "lz4_compress.cl", opts)
            self._prg_d = _program(cl, self._ctx, self._device, "lz4_decompress.cl", ())
            props = cl.command_queue_properties.PROFILING_ENABLE
            self._queues = [cl.CommandQueue(self._ctx, self._device, properties=props) for _ in (0, 1)]
            self._slots = [_Slot(self, q) for q in self._queues]
        except cl.Error as exc:
            raise DeviceError(f"{self.name}: OpenCL setup on {self.device_name!r} failed: {exc}") from exc

    def _new_compress_kernel(self) -> Any:
        name = "lz4_compress_group" if self._layout == "group" else "lz4_compress_item"
        return self._cl.Kernel(self._prg_c, name)

    def _new_decompress_kernel(self) -> Any:
        return self._cl.Kernel(self._prg_d, "lz4_decompress_item")

    def _ready(self) -> None:
        if self._ctx is None or self._closed:
            self._setup()

    def close(self) -> None:
        """Finish in-flight async work (its ops stay pollable), then free the device buffers."""
        if self._closed:
            return
        try:
            while self._inflight:
                self._advance(block=True)
        finally:
            self._closed = True
            for q in getattr(self, "_queues", ()):
                q.finish()
            for slot in self._slots + self._async_free:
                slot.release()
            self._slots, self._async_free = [], []

    # -- enqueue / finish one chunk ----------------------------------------------------------

    def _enqueue_compress(self, slot: _Slot, rows: np.ndarray) -> _Job:
        cl = self._cl
        m = len(rows)
        slot.reserve(m)
        q = slot.queue
        k = slot.k_compress
        host_buf = None
        if self._zero_copy:
            # The device reads the pages where they are: no upload (PoCL, integrated GPUs).
            host_buf = cl.Buffer(self._ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR,
                                 hostbuf=rows)
            k.set_arg(0, host_buf)
            h2d = []
        else:
            k.set_arg(0, slot.d_pages)
            h2d = [cl.enqueue_copy(q, slot.d_pages, rows, is_blocking=False)]
        h2d.append(cl.enqueue_copy(q, slot.d_meta, _ZERO_U32, is_blocking=False))
        if self._layout == "group":
            k.set_arg(3, np.uint32(m))
            gsize, lsize = m * self._local, self._local
        else:
            k.set_arg(4, np.uint32(m))
            lsize = self._local
            gsize = -(-m // lsize) * lsize
        kev = cl.enqueue_nd_range_kernel(q, k, (gsize,), (lsize,))
        meta = cl.enqueue_copy(q, slot.h_meta[: 1 + 2 * m], slot.d_meta, is_blocking=False)
        job = _Job(OpKind.COMPRESS, slot, m, rows, kev, h2d, [meta], time.perf_counter_ns())
        job.host_buf = host_buf
        return job

    def _compress_fetch(self, job: _Job, block: bool) -> bool:
        """Enqueue the read of the compact output once its size is known; True when done."""
        if job.out_ev is None:
            meta = job.d2h[0]
            if not block and not _event_done(meta, self._complete):
                return False
            meta.wait()
            total = int(job.slot.h_meta[0])
            job.nbytes = total
            if total:
                job.out_ev = self._cl.enqueue_copy(
                    job.slot.queue, job.slot.h_bytes[:total], job.slot.d_bytes, is_blocking=False
                )
                job.d2h.append(job.out_ev)
            else:
                job.out_ev = meta
        if not block and not _event_done(job.out_ev, self._complete):
            return False
        job.out_ev.wait()
        return True

    def _compress_items(self, job: _Job) -> list[bytes | None]:
        slot, m = job.slot, job.m
        meta = slot.h_meta
        sizes = meta[1 : 1 + 2 * m : 2].tolist()
        offs = meta[2 : 2 + 2 * m : 2].tolist()
        raw = memoryview(slot.h_bytes)  # slicing a view copies each item once, the batch never
        items = [raw[o : o + s].tobytes() if s else None for s, o in zip(sizes, offs)]
        c = self._c
        c["compress_pages"] += m
        c["compress_launches"] += 1
        c["compress_kernel_ns"] += _event_ns(job.kernel_ev)
        c["compress_bytes_in"] += m * PAGE_SIZE
        c["compress_bytes_out"] += job.nbytes
        c["incompressible"] += sizes.count(0)
        c["h2d_ns"] += sum(map(_event_ns, job.h2d))
        c["d2h_ns"] += sum(map(_event_ns, job.d2h))
        if job.host_buf is not None:  # the kernel is done with the caller's pages
            job.slot.k_compress.set_arg(0, job.slot.d_pages)  # no dangling argument
            job.host_buf.release()
            job.host_buf = None
        return items

    def _pack(self, items: Sequence[Any], base: int) -> tuple[list[int], bytes]:
        """Lengths and concatenation of compressed items; bad items raise naming their index."""
        if set(map(type, items)) <= {bytes, bytearray}:
            lens = list(map(len, items))
        else:
            lens = []
            for j, item in enumerate(items):
                try:
                    view = memoryview(item)
                except TypeError:
                    raise InvalidInputError(
                        f"item {base + j}: compressed data must be bytes-like, not "
                        f"{type(item).__name__}"
                    ) from None
                lens.append(view.nbytes)
        longest = max(lens, default=0)
        if longest > MAX_ITEM_BYTES:
            j = lens.index(longest)
            raise CorruptDataError(
                f"item {base + j}: {self.name}: compressed data is corrupt or truncated "
                f"({longest} bytes is longer than any LZ4 block of one page, at most "
                f"{MAX_ITEM_BYTES})"
            )
        try:
            blob = b"".join(items)
        except (TypeError, BufferError):  # e.g. a non-contiguous view
            blob = b"".join(memoryview(x).tobytes() for x in items)
        return lens, blob

    def _enqueue_decompress(
        self, slot: _Slot, lens: list[int], blob: bytes, out: np.ndarray
    ) -> _Job:
        cl = self._cl
        m = len(lens)
        slot.reserve(m, len(blob))
        q = slot.queue
        idx = slot.h_index[: 2 * m]
        lengths = np.array(lens, dtype=np.uint32)
        idx[1::2] = lengths
        idx[0] = 0
        if m > 1:
            np.cumsum(lengths[:-1], out=idx[2::2])
        h2d = [cl.enqueue_copy(q, slot.d_index, idx, is_blocking=False)]
        if blob:
            h2d.append(cl.enqueue_copy(q, slot.d_bytes, blob, is_blocking=False))
        k = slot.k_decompress
        k.set_arg(4, np.uint32(m))
        host_buf = None
        if self._zero_copy:
            # The kernel writes the caller's result array in place; mapping it afterwards is
            # what makes the writes visible to the host by the OpenCL rules (free on PoCL).
            host_buf = cl.Buffer(self._ctx, cl.mem_flags.WRITE_ONLY | cl.mem_flags.USE_HOST_PTR,
                                 hostbuf=out)
            k.set_arg(2, host_buf)
        kev = cl.enqueue_nd_range_kernel(q, k, (-(-m // self._local) * self._local,), (self._local,))
        d2h = [cl.enqueue_copy(q, slot.h_status[:m], slot.d_status, is_blocking=False)]
        if host_buf is None:
            d2h.append(cl.enqueue_copy(q, out, slot.d_pages, is_blocking=False))
        else:
            mapped, map_ev = cl.enqueue_map_buffer(
                q, host_buf, cl.map_flags.READ, 0, out.shape, out.dtype, is_blocking=False
            )
            d2h.append(map_ev)
            host_buf = (host_buf, mapped)
        job = _Job(OpKind.DECOMPRESS, slot, m, (blob, idx), kev, h2d, d2h, time.perf_counter_ns())
        job.out, job.nbytes, job.host_buf = out, len(blob), host_buf
        return job

    def _decompress_done(self, job: _Job, block: bool) -> bool:
        if not block and not all(_event_done(ev, self._complete) for ev in job.d2h):
            return False
        for ev in job.d2h:
            ev.wait()
        c = self._c
        c["decompress_pages"] += job.m
        c["decompress_launches"] += 1
        c["decompress_kernel_ns"] += _event_ns(job.kernel_ev)
        c["decompress_bytes_in"] += job.nbytes
        c["decompress_bytes_out"] += job.m * PAGE_SIZE
        c["h2d_ns"] += sum(map(_event_ns, job.h2d))
        c["d2h_ns"] += sum(map(_event_ns, job.d2h))
        if job.host_buf is not None:  # unmap and drop the wrapper of the result array
            buf, mapped = job.host_buf
            mapped.base.release(job.slot.queue)
            job.slot.k_decompress.set_arg(2, job.slot.d_pages)
            buf.release()
            job.host_buf = None
        return True

    def _status_error(self, code: int) -> str:
        return (
            f"{self.name}: compressed data is corrupt or truncated "
            f"({_STATUS_TEXT.get(code, f'device status {code}')})"
        )

    def _drain(self) -> None:
        for q in self._queues:
            q.finish()

    # -- batch -------------------------------------------------------------------------------

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        """Compress an ``(N, 4096)`` batch; ``None`` for pages that do not shrink."""
        pages = check_pages(pages)
        return self._compress_rows(pages)

    def _compress_rows(self, pages: np.ndarray) -> list[bytes | None]:
        n = len(pages)
        if n == 0:
            return []
        self._ready()
        t0 = time.perf_counter_ns()
        B, slots = self._batch, self._slots
        items: list[bytes | None] = []
        prev = None
        try:
            for k, a in enumerate(range(0, n, B)):
                job = self._enqueue_compress(slots[k & 1], pages[a : a + B])
                if prev is not None:  # chunk k is queued: finish chunk k-1 meanwhile
                    self._compress_fetch(prev, block=True)
                    items += self._compress_items(prev)
                prev = job
            self._compress_fetch(prev, block=True)
            items += self._compress_items(prev)
        except self._cl.Error as exc:
            self._drain()
            raise DeviceError(f"{self.name}: compressing on {self.device_name!r} failed: {exc}") from exc
        except BaseException:
            self._drain()
            raise
        self._c["compress_e2e_ns"] += time.perf_counter_ns() - t0
        return items

    def decompress_batch(self, items: Sequence[Any]) -> np.ndarray:
        """Decompress N items into an ``(N, 4096)`` array; a bad item raises naming its index."""
        out, status = self._decompress_rows(items)
        if status is not None:
            i, code = status
            self._c["corrupt_items"] += 1
            raise CorruptDataError(f"item {i}: {self._status_error(code)}")
        return out

    def _decompress_rows(self, items: Sequence[Any]) -> tuple[np.ndarray, tuple[int, int] | None]:
        """Decode ``items``; returns the pages and the first bad (index, status), if any."""
        n = len(items)
        out = np.empty((n, PAGE_SIZE), dtype=np.uint8)
        if n == 0:
            return out, None
        self._ready()
        t0 = time.perf_counter_ns()
        B, slots = self._batch, self._slots
        prev = None
        bad = None
        try:
            for k, a in enumerate(range(0, n, B)):
                chunk = items[a : a + B]
                lens, blob = self._pack(chunk, a)
                job = self._enqueue_decompress(slots[k & 1], lens, blob, out[a : a + B])
                job.first = a
                if prev is not None:
                    bad = self._decompress_check(prev)
                    if bad is not None:
                        self._decompress_done(job, block=True)  # let the chunk in flight land
                        break
                prev = job
            else:
                bad = self._decompress_check(prev)
        except self._cl.Error as exc:
            self._drain()
            raise DeviceError(f"{self.name}: decompressing on {self.device_name!r} failed: {exc}") from exc
        except BaseException:
            self._drain()
            raise
        self._c["decompress_e2e_ns"] += time.perf_counter_ns() - t0
        return out, bad

    def _decompress_check(self, job: _Job) -> tuple[int, int] | None:
        self._decompress_done(job, block=True)
        status = job.slot.h_status[: job.m]
        if status.any():
            j = int(np.flatnonzero(status)[0])
            return job.first + j, int(status[j])
        return None

    # -- single page -------------------------------------------------------------------------

    def compress(self, page: Any) -> bytes | None:
        """One page as a batch of one (a full device round trip)."""
        view = check_page(page)
        return self._compress_rows(np.frombuffer(view, dtype=np.uint8).reshape(1, PAGE_SIZE))[0]

    def decompress(self, data: Any) -> bytes:
        """One item as a batch of one; corrupt data raises :class:`CorruptDataError`."""
        try:
            out, status = self._decompress_rows([data])
        except (InvalidInputError, CorruptDataError) as exc:  # strip the "item 0: " prefix
            msg = str(exc)
            raise type(exc)(msg[len("item 0: ") :] if msg.startswith("item 0: ") else msg) from None
        if status is not None:
            self._c["corrupt_items"] += 1
            raise CorruptDataError(self._status_error(status[1]))
        return out[0].tobytes()

    # -- asynchronous ops --------------------------------------------------------------------

    def _take_async_slot(self) -> _Slot | None:
        if self._async_free:
            return self._async_free.pop()
        if self._async_slots < self.params["queue_depth"]:
            self._async_slots += 1
            return _Slot(self, self._queues[self._async_slots & 1])
        return None

    def submit(self, ops: Sequence[CompOp]) -> int:
        """Enqueue runs of same-kind ops (up to ``batch_size`` each) as device jobs.

        Returns how many ops (a prefix) were accepted; the rest are marked BUSY when all
        ``queue_depth`` job slots are in flight. Ops with invalid input complete at once.
        """
        self._ready()
        i, n = 0, len(ops)
        while i < n:
            slot = self._take_async_slot()
            if slot is None:
                break
            kind = ops[i].kind
            j = i + 1
            while j < n and j - i < self._batch and ops[j].kind is kind:
                j += 1
            try:
                self._start_async(slot, kind, list(ops[i:j]))
            except (self._cl.Error, DeviceError) as exc:
                self._async_free.append(slot)
                for op in ops[i:j]:
                    op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, str(exc), None
                    self._completed.append(op)
            i = j
        for op in ops[i:]:
            op.status = OpStatus.BUSY
        return i

    def _start_async(self, slot: _Slot, kind: OpKind, ops: list[CompOp]) -> None:
        valid: list[CompOp] = []
        srcs: list[Any] = []
        for op in ops:
            try:
                if kind is OpKind.COMPRESS:
                    src = check_page(op.src)
                else:
                    src = memoryview(op.src)
                    if src.nbytes > MAX_ITEM_BYTES:
                        raise CorruptDataError(
                            f"{self.name}: compressed data is corrupt or truncated "
                            f"({src.nbytes} bytes is longer than any LZ4 block of one page)"
                        )
            except (TypeError, InvalidInputError, CorruptDataError) as exc:
                op.status, op.error, op.dst = OpStatus.INVALID_INPUT, str(exc), None
                self._completed.append(op)
                continue
            valid.append(op)
            srcs.append(src)
        if not valid:
            self._async_free.append(slot)
            return
        blob = b"".join(srcs)
        if kind is OpKind.COMPRESS:
            rows = np.frombuffer(blob, dtype=np.uint8).reshape(len(valid), PAGE_SIZE)
            job = self._enqueue_compress(slot, rows)
        else:
            lens = [s.nbytes for s in srcs]
            out = np.empty((len(valid), PAGE_SIZE), dtype=np.uint8)
            job = self._enqueue_decompress(slot, lens, blob, out)
        job.ops = valid
        self._inflight.append(job)

    def _advance(self, block: bool) -> bool:
        """Complete the async jobs whose device work has finished; True if any did."""
        progressed = False
        for job in list(self._inflight):
            try:
                if job.kind is OpKind.COMPRESS:
                    if not self._compress_fetch(job, block):
                        continue
                    self._finish_async_compress(job)
                else:
                    if not self._decompress_done(job, block):
                        continue
                    self._finish_async_decompress(job)
            except (self._cl.Error, DeviceError) as exc:
                for op in job.ops:
                    op.status, op.error, op.dst = OpStatus.DEVICE_ERROR, str(exc), None
                    self._completed.append(op)
            self._inflight.remove(job)
            self._async_free.append(job.slot)
            progressed = True
        return progressed

    def _finish_async_compress(self, job: _Job) -> None:
        elapsed = time.perf_counter_ns() - job.t0
        for op, item in zip(job.ops, self._compress_items(job), strict=True):
            op.consumed = PAGE_SIZE
            if item is None:
                op.status, op.dst, op.produced = OpStatus.INCOMPRESSIBLE, None, 0
            else:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, item, len(item)
            self._completed.append(op)
        self._c["compress_e2e_ns"] += elapsed

    def _finish_async_decompress(self, job: _Job) -> None:
        elapsed = time.perf_counter_ns() - job.t0
        status = job.slot.h_status[: job.m].tolist()
        lens = job.keep[1][1::2].tolist()
        for op, code, row, nbytes in zip(job.ops, status, job.out, lens, strict=True):
            op.consumed = nbytes
            if code:
                self._c["corrupt_items"] += 1
                op.status, op.error, op.dst = OpStatus.INVALID_INPUT, self._status_error(code), None
            else:
                op.status, op.dst, op.produced = OpStatus.SUCCESS, row.tobytes(), PAGE_SIZE
            self._completed.append(op)
        self._c["decompress_e2e_ns"] += elapsed

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        """Ops whose device work has finished; naps briefly when none has (see module doc)."""
        if self._inflight and not self._advance(block=False) and not self._completed:
            time.sleep(_POLL_IDLE_S)
        return super().poll(max_ops)

    def pending(self) -> int:
        return len(self._completed) + sum(len(job.ops) for job in self._inflight)

    # -- accounting --------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Pages, bytes, launches, kernel time (profiling events) and end-to-end time (ns).

        Per direction (``compress_*``, ``decompress_*``) and summed over both (``pages``,
        ``kernel_ns``, ``e2e_ns``, ``bytes_in``, ``bytes_out``). ``e2e_ns`` is wall clock from
        the call (or async submit) to its results, transfers included; ``kernel_ns`` is the sum
        of the kernels' OpenCL profiling intervals; ``h2d_ns``/``d2h_ns`` the transfers'.
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
        }
