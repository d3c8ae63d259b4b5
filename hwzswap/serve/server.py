"""The zswap engine as the file behind a swap device: writes are swap-outs, reads swap-ins.

The kernel swaps onto a loop device (direct I/O) whose backing file is :class:`SwapFile`,
served over FUSE (:mod:`hwzswap.serve.fuse`). Byte offset ``i * 4096`` of the file is swap slot
``i`` of the engine's swap type 0, so what the server sees is the kernel's real swap traffic:

* a WRITE is one reclaim pass's worth of pages (the block layer merged them): one
  :meth:`SwapSystem.swap_out_batch` with the whole request;
* a READ is a readahead cluster (``vm.page-cluster``): one :meth:`SwapSystem.swap_in_batch`;
* a FALLOCATE punch-hole is a discard of freed swap clusters (``swapon --discard=pages``): one
  :meth:`SwapSystem.swap_free` per slot that holds a page.

Pages zswap rejects, and pages it writes back, go to the config's real swap file with its
device model. With ``device_time="real"`` the modelled device time is really waited out after
each request (one disk: requests queue behind each other), so a program's runtime feels it;
``"modelled"`` only counts it.

Slot 0 is the swap header (written by ``mkswap``, read by ``swapon``); it goes through the engine
like any page but is left out of a recording. A read of a slot that holds nothing (udev probing a
new loop device, say) returns zeros, as a fresh sparse file would.
"""

from __future__ import annotations

import errno
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.errors import HwzswapError, SwapBatchError, SwapDeviceError

PAGE = 4096
ZERO_PAGE = bytes(PAGE)


class Recorder:
    """The kernel's request stream as a workload (``hwzswap.bench.workload``): a store op per
    WRITE (its pages), a load op per READ (the readahead cluster), an invalidate per freed slot
    of a punch-hole. Requests are recorded in the order they completed."""

    def __init__(self, max_pages: int = 1 << 18) -> None:
        self._lock = threading.Lock()
        self.ops: list[Any] = []
        self.pages: list[bytes] = []
        self.max_pages = max_pages
        self.truncated = False
        self._live: set[int] = set()

    def store(self, offsets: Sequence[int], data: memoryview | bytes) -> None:
        from hwzswap.bench.workload import STORE, Op

        keep = [(i, o) for i, o in enumerate(offsets) if o != 0]
        if not keep:
            return
        with self._lock:
            if self.truncated or len(self.pages) + len(keep) > self.max_pages:
                self.truncated = True
                return
            base = len(self.pages)
            for i, _ in keep:
                self.pages.append(bytes(data[i * PAGE:(i + 1) * PAGE]))
            self.ops.append(Op(STORE, 0, tuple(o for _, o in keep),
                               tuple(range(base, base + len(keep)))))
            self._live.update(o for _, o in keep)

    def load(self, offsets: Sequence[int]) -> None:
        from hwzswap.bench.workload import LOAD, Op

        with self._lock:
            if self.truncated:
                return
            offs = tuple(o for o in offsets if o in self._live)
            if offs:
                self.ops.append(Op(LOAD, 0, offs))

    def invalidate(self, offsets: Sequence[int]) -> None:
        from hwzswap.bench.workload import INVALIDATE, Op

        with self._lock:
            if self.truncated:
                return
            for o in offsets:
                if o in self._live:
                    self._live.discard(o)
                    self.ops.append(Op(INVALIDATE, 0, (o,)))

    def structure(self) -> dict[str, Any]:
        """The kernel structure the recorded stream has, as a workload file states it: its
        largest WRITE (pages of one reclaim pass, after the block layer merged them) and
        largest READ of live slots (a readahead cluster); every page its own folio (a request
        does not say which folio a page came from). The loader refuses a file without it."""
        from hwzswap.bench.workload import LOAD, STORE

        stores = [len(op.offsets) for op in self.ops if op.kind == STORE]
        loads = [len(op.offsets) for op in self.ops if op.kind == LOAD]
        return {"reclaim_batch": max(stores, default=1), "load_batch": max(loads, default=1),
                "folio_mix": [[1, 1.0]]}

    def save(self, path: str | os.PathLike[str], meta: dict[str, Any]) -> Path | None:
        """Write the workload file; None when nothing was recorded."""
        from hwzswap.bench.workload import Workload, save_workload

        with self._lock:
            if not self.ops:
                return None
            pages = np.frombuffer(b"".join(self.pages), dtype=np.uint8).reshape(-1, PAGE)
            wl = Workload(
                structure=self.structure(),
                name=str(meta.get("name", "recorded")), seed=0, pages=pages.copy(),
                ops=list(self.ops),
                params={"source": "kernel swap requests via hwzswap serve",
                        "truncated": self.truncated, **{k: v for k, v in meta.items()
                                                        if k != "name"}},
                corpus={"source": "recorded", "command": meta.get("command")},
            )
        return save_workload(wl, path)


class DiskClock:
    """One disk: each request's modelled device time queues behind the previous ones; the
    caller sleeps until its own I/O would have finished."""

    def __init__(self, device: Any) -> None:
        self._device = device
        self._lock = threading.Lock()
        self._seen = float(device.model_us)
        self._free_at = 0.0
        self.waited_s = 0.0

    def settle(self) -> None:
        with self._lock:
            now_us = float(self._device.model_us)
            delta = (now_us - self._seen) / 1e6
            if delta <= 0:
                return
            self._seen = now_us
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + delta
            wait = self._free_at - now
            self.waited_s += wait
        time.sleep(wait)


class SwapFile:
    """The FUSE file's contents: the swap system's slots of swap type 0 (see the module doc).

    ``system`` is an open :class:`~hwzswap.frontswap.system.SwapSystem`; ``device_time`` is
    ``"real"`` (wait out the device model) or ``"modelled"`` (count it only).
    """

    def __init__(self, system: Any, *, device_time: str = "real",
                 recorder: Recorder | None = None) -> None:
        if device_time not in ("real", "modelled"):
            raise HwzswapError(f"device_time must be 'real' or 'modelled', got {device_time!r}")
        self.system = system
        self.nr_pages = int(system.config.swap.nr_pages)
        self.size = self.nr_pages * PAGE
        self._live = bytearray(self.nr_pages)  # slots the kernel wrote and has not discarded
        self._rmw = threading.Lock()  # unaligned writes: read-modify-write, one at a time
        self._clock = DiskClock(system.devices[0]) if device_time == "real" else None
        self.recorder = recorder
        # ``data`` is a view of the FUSE thread's buffer, reused after the call returns.
        self._copy_writes = getattr(system.config.zswap, "batching", "reclaim") == "async"
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.sizes: Counter[int] = Counter()  # pages per WRITE request
        self.read_sizes: Counter[int] = Counter()

    # -- FileBackend -------------------------------------------------------------------------

    def write(self, offset: int, data: memoryview) -> None:
        n = len(data)
        if offset % PAGE or n % PAGE:
            self._write_unaligned(offset, data)
            return
        first = offset // PAGE
        npg = n // PAGE
        self._check_range(first, npg, "write")
        offs = list(range(first, first + npg))
        pages = np.frombuffer(data, dtype=np.uint8).reshape(npg, PAGE)
        if self._copy_writes:
            pages = pages.copy()  # async mode may stage the pages past this call
        try:
            self.system.swap_out_batch(0, offs, pages)
        except SwapBatchError as exc:
            # The pages that did land (in zswap, on the device) hold slots now: only the
            # kernel's discard frees them, and a discard frees only live slots.
            for o in (*exc.stored, *exc.written):
                self._live[o] = 1
            raise OSError(errno.EIO, str(exc)) from None
        except SwapDeviceError as exc:
            raise OSError(errno.EIO, str(exc)) from None
        live = self._live
        for o in offs:
            live[o] = 1
        with self._lock:
            self.counts["write_requests"] += 1
            self.counts["write_pages"] += npg
            self.sizes[npg] += 1
        if self.recorder is not None:
            self.recorder.store(offs, data)
        if self._clock is not None:
            self._clock.settle()

    def read(self, offset: int, size: int) -> bytes:
        first = offset // PAGE
        last = (offset + size + PAGE - 1) // PAGE
        self._check_range(first, last - first, "read")
        offs = range(first, last)
        live = self._live
        want = [o for o in offs if live[o]]
        got: dict[int, bytes] = {}
        if want:
            try:
                pages = self.system.swap_in_batch(0, want)
            except SwapDeviceError as exc:
                raise OSError(errno.EIO, str(exc)) from None
            got = dict(zip(want, pages))
        with self._lock:
            self.counts["read_requests"] += 1
            self.counts["read_pages"] += last - first
            self.counts["read_unwritten_pages"] += last - first - len(want)
            self.read_sizes[last - first] += 1
        if self.recorder is not None and want:
            self.recorder.load(want)
        if self._clock is not None:
            self._clock.settle()
        if len(want) == last - first and offset % PAGE == 0 and size % PAGE == 0:
            return b"".join(got[o] for o in offs) if len(want) > 1 else got[first]
        blob = b"".join(got.get(o, ZERO_PAGE) for o in offs)
        skip = offset - first * PAGE
        return blob[skip:skip + size]

    def punch_hole(self, offset: int, length: int) -> None:
        first = -(-offset // PAGE)
        last = min((offset + length) // PAGE, self.nr_pages)
        live = self._live
        freed = [o for o in range(first, max(first, last)) if live[o]]
        for o in freed:
            self.system.swap_free(0, o)
            live[o] = 0
        with self._lock:
            self.counts["punch_requests"] += 1
            self.counts["punch_bytes"] += length
            self.counts["discarded_pages"] += len(freed)
        if self.recorder is not None and freed:
            self.recorder.invalidate(freed)
        # Partial pages at the edges keep their page (a discard is advisory for swap).

    # -- helpers ---------------------------------------------------------------------------

    def _check_range(self, first: int, n: int, op: str) -> None:
        if first < 0 or first + n > self.nr_pages:
            raise OSError(errno.EINVAL, f"{op} beyond the end of the swap file")

    def _write_unaligned(self, offset: int, data: memoryview) -> None:
        """A write not on page boundaries (a tool writing a swap header piecemeal): read the
        covered pages, patch them, write them back."""
        first = offset // PAGE
        last = (offset + len(data) + PAGE - 1) // PAGE
        with self._rmw:
            buf = bytearray(self.read(first * PAGE, (last - first) * PAGE))
            skip = offset - first * PAGE
            buf[skip:skip + len(data)] = data
            self.write(first * PAGE, memoryview(buf))

    def live_pages(self) -> int:
        return sum(self._live)

    def stats(self) -> dict[str, Any]:
        """Server-side counters, the engine's ``stats()`` and the server's CPU time."""
        ru = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            out: dict[str, Any] = dict(self.counts)
            out["write_sizes"] = {str(k): v for k, v in sorted(self.sizes.items())}
            out["read_sizes"] = {str(k): v for k, v in sorted(self.read_sizes.items())}
        for key in ("write_requests", "write_pages", "read_requests", "read_pages",
                    "read_unwritten_pages", "punch_requests", "punch_bytes", "discarded_pages"):
            out.setdefault(key, 0)
        out["live_pages"] = self.live_pages()
        out["cpu_s"] = ru.ru_utime + ru.ru_stime
        out["device_wait_s"] = self._clock.waited_s if self._clock is not None else 0.0
        out["engine"] = self.system.stats()
        return out


__all__ = ["DiskClock", "Recorder", "SwapFile"]
