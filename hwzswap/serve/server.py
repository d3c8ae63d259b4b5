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
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.errors import HwzswapError, SwapBatchError, SwapDeviceError

PAGE = 4096
ZERO_PAGE = bytes(PAGE)


#: The most pages a recording keeps (1 GiB of pages: a replay holds them all in memory);
#: :data:`RECORD_MAX_PAGES_ENV` sets another cap for the server it is set for.
RECORD_MAX_PAGES = 1 << 18
#: The most compressed page bytes a recording holds in the server's (locked) memory.
RECORD_MAX_BYTES = 256 << 20
RECORD_MAX_PAGES_ENV = "HWZSWAP_RECORD_MAX_PAGES"
#: zstd level of the pages held while recording (the server's hot path: the fastest level)
#: and of the saved file's pages section (one frame, written streaming at the teardown).
_HOLD_LEVEL = 1
_SAVE_LEVEL = 3
_COPY_STEP = 1 << 20


def record_max_pages() -> int:
    """The recording's page cap: :data:`RECORD_MAX_PAGES_ENV` when set, else
    :data:`RECORD_MAX_PAGES`."""
    text = os.environ.get(RECORD_MAX_PAGES_ENV)
    if text is None:
        return RECORD_MAX_PAGES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise HwzswapError(f"{RECORD_MAX_PAGES_ENV}={text!r}: the most pages a recording "
                           "keeps must be a whole number of at least 1 (e.g. 262144)")
    return value


class Recorder:
    """The kernel's request stream as a workload (``hwzswap.bench.workload``): a store op per
    WRITE (its pages), a load op per READ (the readahead cluster), an invalidate per freed slot
    of a punch-hole. Requests are recorded in the order they completed.

    Memory stays bounded: each WRITE's pages are held zstd-compressed, the ops as packed
    arrays (the file's own encoding), and :meth:`save` streams the pages section to a
    temporary file beside the output (never the whole stream in memory at once). Past
    ``max_pages`` pages (:func:`record_max_pages`) or ``max_bytes`` compressed bytes the
    recording stops (:attr:`truncated`, :attr:`truncated_why`, :attr:`dropped_pages`): what
    was kept is a valid prefix of the stream, and the file's ``params`` say it is one
    (``truncated``, ``truncated_why``, ``recorded_pages``, ``dropped_pages``)."""

    def __init__(self, max_pages: int | None = None,
                 max_bytes: int = RECORD_MAX_BYTES) -> None:
        import zstandard

        self._lock = threading.Lock()
        self.max_pages = record_max_pages() if max_pages is None else max_pages
        self.max_bytes = max_bytes
        self.truncated = False
        self.truncated_why: str | None = None
        self.dropped_pages = 0  # pages written after the recording stopped
        self.nr_pages = 0  # pages kept
        self.held_bytes = 0  # their compressed size
        self._chunks: list[bytes] = []  # one zstd frame per recorded WRITE
        self._zc = zstandard.ZstdCompressor(level=_HOLD_LEVEL)
        # the ops section's three arrays (_encode_ops): (kind, type, n) per op, offsets, and
        # page indices (-1 for a load or invalidate)
        self._table = array("i")
        self._offsets = array("I")
        self._page_idx = array("i")
        self._live: set[int] = set()
        self._n = Counter()  # store_ops, store_pages, load_ops, loads, invalidates
        self._max = {"store": 0, "load": 0, "slot": -1}

    def _op(self, kind: str, offsets: Sequence[int], pages: Sequence[int] | None) -> None:
        from hwzswap.bench.workload import OP_KINDS

        self._table.extend((OP_KINDS.index(kind), 0, len(offsets)))
        self._offsets.extend(offsets)
        self._page_idx.extend(pages if pages is not None else (-1,) * len(offsets))
        self._max["slot"] = max(self._max["slot"], max(offsets))

    def _stop(self, why: str, dropped: int) -> None:
        """Stop recording (under the lock): the stream so far is what is saved."""
        self.truncated = True
        self.truncated_why = why
        self.dropped_pages += dropped
        print(f"hwzswap serve: --record: the recording stops at {self.nr_pages} pages: {why}; "
              "the file will hold that prefix of the stream, marked truncated",
              file=sys.stderr, flush=True)

    def store(self, offsets: Sequence[int], data: memoryview | bytes) -> None:
        from hwzswap.bench.workload import STORE

        keep = [(i, o) for i, o in enumerate(offsets) if o != 0]
        if not keep:
            return
        n = len(keep)
        with self._lock:
            if self.truncated:
                self.dropped_pages += n
                return
            if self.nr_pages + n > self.max_pages:
                self._stop(f"{self.max_pages} pages recorded, the cap ({RECORD_MAX_PAGES_ENV} "
                           "sets another)", n)
                return
            raw = bytes(data) if n == len(offsets) else b"".join(
                bytes(data[i * PAGE:(i + 1) * PAGE]) for i, _ in keep)
            # an exact-size copy: zstandard's result keeps the frame's worst-case allocation
            blob = memoryview(self._zc.compress(raw)).tobytes()
            if self.held_bytes + len(blob) > self.max_bytes:
                self._stop(f"its pages reached {self.max_bytes >> 20} MiB compressed, the "
                           "most the server holds in memory", n)
                return
            self._chunks.append(blob)
            self.held_bytes += len(blob)
            base = self.nr_pages
            self.nr_pages += n
            offs = [o for _, o in keep]
            self._op(STORE, offs, range(base, base + n))
            self._live.update(offs)
            self._n["store_ops"] += 1
            self._n["store_pages"] += n
            self._max["store"] = max(self._max["store"], n)

    def load(self, offsets: Sequence[int]) -> None:
        from hwzswap.bench.workload import LOAD

        with self._lock:
            if self.truncated:
                return
            offs = [o for o in offsets if o in self._live]
            if offs:
                self._op(LOAD, offs, None)
                self._n["load_ops"] += 1
                self._n["loads"] += len(offs)
                self._max["load"] = max(self._max["load"], len(offs))

    def invalidate(self, offsets: Sequence[int]) -> None:
        from hwzswap.bench.workload import INVALIDATE

        with self._lock:
            if self.truncated:
                return
            for o in offsets:
                if o in self._live:
                    self._live.discard(o)
                    self._op(INVALIDATE, (o,), None)
                    self._n["invalidates"] += 1

    @property
    def nr_ops(self) -> int:
        return len(self._table) // 3

    def structure(self) -> dict[str, Any]:
        """The kernel structure the recorded stream has, as a workload file states it: its
        largest WRITE (pages of one reclaim pass, after the block layer merged them) and
        largest READ of live slots (a readahead cluster); every page its own folio (a request
        does not say which folio a page came from). The loader refuses a file without it."""
        return {"reclaim_batch": self._max["store"] or 1, "load_batch": self._max["load"] or 1,
                "folio_mix": [[1, 1.0]]}

    def save(self, path: str | os.PathLike[str], meta: dict[str, Any]) -> Path | None:
        """Write the workload file (the format of ``save_workload``, version 2); None when
        nothing was recorded. The pages section is written streaming: one recorded WRITE
        decompressed at a time into one zstd frame (content size and checksum included) in
        an unnamed temporary file beside ``path``, then copied in after the header."""
        from hwzswap.bench import workload as wlf
        from hwzswap.errors import WorkloadError

        path = Path(path)
        with self._lock:
            if not self.nr_ops:
                return None
            name = str(meta.get("name", "recorded"))
            structure = self.structure()
            for key in ("reclaim_batch", "load_batch"):
                why = wlf.structure_problem(structure[key])
                if why is not None:
                    raise WorkloadError(f"workload {name!r}: structure.{key} {why}")
            ops = _zstd(10).compress(wlf.encode_ops_section(
                np.frombuffer(self._table, dtype="=i4"),
                np.frombuffer(self._offsets, dtype="=u4"),
                np.frombuffer(self._page_idx, dtype="=i4")))
            # no op names its folios: a zero count each (every page order-0)
            folios = _zstd(10).compress(bytes(4 * self.nr_ops))
            try:
                spill = tempfile.TemporaryFile(dir=path.parent, prefix=".hwzswap-record-")
            except OSError as exc:
                raise WorkloadError(f"{path}: cannot write the workload file: "
                                    f"{exc.strerror or exc}") from exc
            with spill:
                page_sha, pages_sha, pages_len = self._write_pages(spill, _zstd(_SAVE_LEVEL))

                def copy_pages(f: Any) -> None:
                    spill.seek(0)
                    shutil.copyfileobj(spill, f, _COPY_STEP)

                n = self._n
                counts: dict[str, int] = {
                    "count": self.nr_ops, "store_pages": n["store_pages"], "loads": n["loads"],
                    "invalidates": n["invalidates"], "folios": n["store_pages"],
                    "large_folio_pages": 0, "store_ops": n["store_ops"]}
                if n["load_ops"] != n["loads"]:
                    counts["load_ops"] = n["load_ops"]
                params: dict[str, Any] = {
                    "source": "kernel swap requests via hwzswap serve",
                    "truncated": self.truncated, "recorded_pages": self.nr_pages}
                if self.truncated:
                    params.update(truncated_why=self.truncated_why,
                                  dropped_pages=self.dropped_pages)
                params.update({k: v for k, v in meta.items() if k != "name"})
                fields: dict[str, Any] = {
                    "name": name, "seed": 0, "pages": self.nr_pages, "page_sha256": page_sha,
                    "corpus": {"source": "recorded", "command": meta.get("command")},
                    "params": params, "structure": structure, "pool_sizing": None,
                    "config_overrides": {}, "nr_slots": self._max["slot"] + 1, "types": [0],
                    "ops": {"entries": len(self._offsets), "folio_sizes": 0, **counts}}
                return wlf.write_workload_file(path, fields, {
                    "ops": wlf.FileSection.of(ops),
                    "pages": wlf.FileSection(pages_len, pages_sha, copy_pages),
                    "folios": wlf.FileSection.of(folios)})

    def _write_pages(self, out: Any, cctx: Any) -> tuple[str, str, int]:
        """The pages section into ``out``: (sha256 of the pages, sha256 and length of the
        section)."""
        import zstandard

        pages_hash = hashlib.sha256()
        section = _HashingSink(out)
        dctx = zstandard.ZstdDecompressor()
        try:
            with cctx.stream_writer(section, size=self.nr_pages * PAGE, closefd=False) as w:
                for blob in self._chunks:
                    raw = dctx.decompress(blob)
                    pages_hash.update(raw)
                    w.write(raw)
        except OSError as exc:
            from hwzswap.errors import WorkloadError

            raise WorkloadError(f"cannot write the recording's pages beside the workload "
                                f"file: {exc.strerror or exc}") from exc
        return pages_hash.hexdigest(), section.hash.hexdigest(), section.length


class _HashingSink:
    """A file-like sink that hashes and counts what passes into ``out``."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.length = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.length += len(data)
        self.out.write(data)
        return len(data)


def _zstd(level: int) -> Any:
    """A zstd compressor as the workload file's sections use: content size and checksum."""
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)


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


__all__ = ["RECORD_MAX_BYTES", "RECORD_MAX_PAGES", "RECORD_MAX_PAGES_ENV", "DiskClock", "Recorder",
           "SwapFile", "record_max_pages"]
