"""The swap device: a real file, written and read a page at a time at ``offset * 4096``.

It stands in for the block device (or swap file) behind a swap type. It counts pages in and out
as the kernel's ``pswpin``/``pswpout`` do, measures the time spent in ``pread``/``pwrite``
(``io_us``) and, beside it, the time a modelled disk would have taken (``model_us``), so a run on
a laptop's page cache can still be read as "what would this have cost on the seed's 58 MB/s
disk".

Safety: the file is opened with ``O_NOFOLLOW`` (a symlink planted at the path is refused), must
be a regular file, and a file this class creates gets mode 0600 (swap holds other processes'
memory). The file is sized with ``ftruncate`` (sparse), ``nr_pages * 4096`` bytes.

Faults for tests: :meth:`SwapDevice.inject` makes the next ``count`` reads or writes fail with
``EIO`` or ``ENOSPC`` before touching the file, exactly as a failing disk would report them.
:attr:`SwapDevice.io_hook`, when set, is called as ``hook(op, offset)`` at the start of every
read and write (outside any lock): tests use it as a barrier to hold an I/O open at a chosen
moment, which makes race windows exact instead of timing-dependent.
"""

from __future__ import annotations

import errno as _errno
import operator
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwzswap.errors import InvalidParameterError, SwapDeviceError

PAGE_SIZE = 4096

# The seed's disk: the v9 posting's benchmarks ran on a SATA disk measured at about 58 MB/s.
HDD_MB_S = 58.0
HDD_LATENCY_US = 8000.0  # average seek + half a rotation of a 7200 rpm disk (~4.2 + ~4 ms)
SSD_LATENCY_US = 80.0  # a SATA SSD's 4 KiB random-access latency
SSD_READ_MB_S = 500.0
SSD_WRITE_MB_S = 450.0


@dataclass(frozen=True)
class DeviceModel:
    """Per-request latency plus transfer time: ``latency_us + bytes / (MB/s)`` (1 MB/s = 1 B/µs).

    ``realtime=True`` makes the device really sleep for the modelled time (slow, for tests that
    need a wide window between the start and the end of an I/O).
    """

    name: str = "none"
    latency_us: float = 0.0
    read_mb_s: float = float("inf")
    write_mb_s: float = float("inf")
    realtime: bool = False

    def __post_init__(self) -> None:
        if not self.latency_us >= 0:
            raise InvalidParameterError(f"device model {self.name!r}: latency_us must be >= 0")
        if not (self.read_mb_s > 0 and self.write_mb_s > 0):
            raise InvalidParameterError(
                f"device model {self.name!r}: read_mb_s and write_mb_s must be > 0"
            )

    def read_us(self, nbytes: int = PAGE_SIZE) -> float:
        return self.latency_us + nbytes / self.read_mb_s

    def write_us(self, nbytes: int = PAGE_SIZE) -> float:
        return self.latency_us + nbytes / self.write_mb_s

    @classmethod
    def preset(
        cls,
        name: str,
        *,
        latency_us: float | None = None,
        read_mb_s: float | None = None,
        write_mb_s: float | None = None,
        realtime: bool = False,
    ) -> DeviceModel:
        """``none`` (no cost), ``hdd`` (the seed's 58 MB/s disk + seek), ``ssd``, or ``custom``."""
        if name == "none":
            return cls("none", realtime=realtime)
        if name == "hdd":
            return cls("hdd", HDD_LATENCY_US, HDD_MB_S, HDD_MB_S, realtime)
        if name == "ssd":
            return cls("ssd", SSD_LATENCY_US, SSD_READ_MB_S, SSD_WRITE_MB_S, realtime)
        if name == "custom":
            if read_mb_s is None or write_mb_s is None:
                raise InvalidParameterError(
                    "device model 'custom' needs read_mb_s and write_mb_s (and optionally "
                    "latency_us)"
                )
            return cls("custom", float(latency_us or 0.0), float(read_mb_s), float(write_mb_s),
                       realtime)
        raise InvalidParameterError(
            f"unknown swap device model {name!r}; use none, hdd, ssd or custom"
        )


_NO_COST = DeviceModel()


class SwapDevice:
    """A swap file of ``nr_pages`` slots. Thread-safe: positional I/O plus a lock for counters.

    ``create=True`` creates the file if missing (mode 0600; an existing file is tightened to
    0600) and sizes it; ``create=False`` opens an existing file that must already be big enough.
    Reading a slot that was never written (or was discarded) raises :class:`SwapDeviceError`
    instead of returning whatever the file holds there.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        nr_pages: int,
        model: DeviceModel | None = None,
        create: bool = True,
    ) -> None:
        if type(nr_pages) is not int or nr_pages < 1:
            raise InvalidParameterError(
                f"swap device: nr_pages must be an int >= 1, got {nr_pages!r}"
            )
        self.path = Path(path)
        self.nr_pages = nr_pages
        self.model = model if model is not None else _NO_COST
        flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == _errno.ELOOP:
                raise SwapDeviceError(
                    f"{self.path}: is a symbolic link; refusing to follow it for a swap file "
                    f"(give the real path)"
                ) from None
            raise SwapDeviceError(
                f"{self.path}: cannot open swap file: {exc.strerror or exc}"
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SwapDeviceError(f"{self.path}: not a regular file; a swap file must be one")
            size = nr_pages * PAGE_SIZE
            if create:
                if stat.S_IMODE(st.st_mode) != 0o600:
                    os.fchmod(fd, 0o600)
                if st.st_size != size:
                    os.ftruncate(fd, size)
            elif st.st_size < size:
                raise SwapDeviceError(
                    f"{self.path}: holds {st.st_size // PAGE_SIZE} pages, {nr_pages} needed"
                )
        except SwapDeviceError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise SwapDeviceError(
                f"{self.path}: cannot size swap file: {exc.strerror or exc}"
            ) from None
        self._fd: int | None = fd
        self._written = bytearray(nr_pages)
        self._lock = threading.Lock()
        self._faults: dict[str, deque[int]] = {"read": deque(), "write": deque()}
        #: Called as ``io_hook(op, offset)`` before each read/write (tests: a barrier).
        self.io_hook: Callable[[str, int], None] | None = None
        #: Pages read from / written to the file (the kernel's pswpin / pswpout).
        self.pswpin = 0
        self.pswpout = 0
        #: Failed reads and writes (injected or real).
        self.failed_reads = 0
        self.failed_writes = 0
        #: Modelled device time and measured pread/pwrite time, in microseconds.
        self.model_us = 0.0
        self.io_us = 0.0
        self._read_cost = self.model.read_us()
        self._write_cost = self.model.write_us()

    # -- I/O ---------------------------------------------------------------------------------

    def write_page(self, offset: int, data: Any) -> None:
        """Write one page at slot ``offset``. Raises :class:`SwapDeviceError` (with ``errno``)."""
        fd, offset = self._check(offset, "write")
        if self.io_hook is not None:
            self.io_hook("write", offset)
        if len(data) != PAGE_SIZE:
            try:
                n = memoryview(data).nbytes
            except TypeError:
                n = -1
            if n != PAGE_SIZE:
                raise SwapDeviceError(
                    f"{self.path}: write of slot {offset}: a page is {PAGE_SIZE} bytes, got {n}"
                )
        if self._faults["write"]:
            self._injected("write", offset)
        t0 = time.perf_counter_ns()
        try:
            n = os.pwrite(fd, data, offset * PAGE_SIZE)
        except OSError as exc:
            self._io_failed("write", offset, exc.errno or _errno.EIO, exc.strerror)
        if n != PAGE_SIZE:
            self._io_failed("write", offset, _errno.EIO, f"short write of {n} bytes")
        dt = (time.perf_counter_ns() - t0) / 1000.0
        cost = self._write_cost
        if self.model.realtime and cost:
            time.sleep(cost / 1e6)
        with self._lock:
            self._written[offset] = 1
            self.pswpout += 1
            self.io_us += dt
            self.model_us += cost

    def read_page(self, offset: int) -> bytes:
        """Read the page at slot ``offset``; the slot must have been written."""
        fd, offset = self._check(offset, "read")
        if self.io_hook is not None:
            self.io_hook("read", offset)
        if not self._written[offset]:
            raise SwapDeviceError(
                f"{self.path}: read of slot {offset}, which holds no page (never written, or "
                f"discarded when freed)"
            )
        if self._faults["read"]:
            self._injected("read", offset)
        t0 = time.perf_counter_ns()
        try:
            data = os.pread(fd, PAGE_SIZE, offset * PAGE_SIZE)
        except OSError as exc:
            self._io_failed("read", offset, exc.errno or _errno.EIO, exc.strerror)
        if len(data) != PAGE_SIZE:
            self._io_failed("read", offset, _errno.EIO, f"short read of {len(data)} bytes")
        dt = (time.perf_counter_ns() - t0) / 1000.0
        cost = self._read_cost
        if self.model.realtime and cost:
            time.sleep(cost / 1e6)
        with self._lock:
            self.pswpin += 1
            self.io_us += dt
            self.model_us += cost
        return data

    def discard(self, offset: int) -> None:
        """Forget slot ``offset`` (swap slot freed): a later read raises until it is rewritten."""
        _, offset = self._check(offset, "discard")
        self._written[offset] = 0

    def is_written(self, offset: int) -> bool:
        _, offset = self._check(offset, "query")
        return bool(self._written[offset])

    # -- faults ------------------------------------------------------------------------------

    def inject(self, op: str = "write", errno: int = _errno.EIO, count: int = 1) -> None:
        """Make the next ``count`` ``op`` (``"read"``/``"write"``) calls fail with ``errno``."""
        if op not in self._faults:
            raise InvalidParameterError(f"inject: op must be 'read' or 'write', got {op!r}")
        if type(count) is not int or count < 0:
            raise InvalidParameterError(f"inject: count must be an int >= 0, got {count!r}")
        if type(errno) is not int or errno <= 0:
            raise InvalidParameterError(f"inject: errno must be a positive int, got {errno!r}")
        with self._lock:
            self._faults[op].extend([errno] * count)

    def clear_faults(self) -> None:
        with self._lock:
            for q in self._faults.values():
                q.clear()

    def _injected(self, op: str, offset: int) -> None:
        with self._lock:
            q = self._faults[op]
            code = q.popleft() if q else 0
        if code:
            self._io_failed(op, offset, code, os.strerror(code) + " (injected)")

    def _io_failed(self, op: str, offset: int, code: int, why: str | None) -> None:
        with self._lock:
            if op == "read":
                self.failed_reads += 1
            else:
                self.failed_writes += 1
        err = SwapDeviceError(
            f"{self.path}: {op} of slot {offset} failed: [Errno {code}] "
            f"{why or os.strerror(code)}"
        )
        err.errno = code  # type: ignore[attr-defined]
        raise err

    # -- misc --------------------------------------------------------------------------------

    def _check(self, offset: Any, op: str) -> tuple[int, int]:
        fd = self._fd
        if fd is None:
            raise SwapDeviceError(f"{self.path}: {op} after the swap device was closed")
        if type(offset) is not int:
            try:
                offset = operator.index(offset)  # numpy integers
            except TypeError:
                raise SwapDeviceError(
                    f"{self.path}: {op}: a slot is an int, got {type(offset).__name__}"
                ) from None
        if not 0 <= offset < self.nr_pages:
            raise SwapDeviceError(
                f"{self.path}: {op} of slot {offset!r}: slots are 0..{self.nr_pages - 1}"
            )
        return fd, offset

    def stats(self) -> dict[str, float]:
        with self._lock:
            return {
                "pswpin": self.pswpin,
                "pswpout": self.pswpout,
                "swap_model_us": self.model_us,
                "swap_io_us": self.io_us,
                "swap_failed_reads": self.failed_reads,
                "swap_failed_writes": self.failed_writes,
            }

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Close the file (it stays on disk; the swap system removes temporary ones)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> SwapDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"SwapDevice({str(self.path)!r}, nr_pages={self.nr_pages}, model={self.model.name}, "
            f"pswpin={self.pswpin}, pswpout={self.pswpout})"
        )


__all__ = ["PAGE_SIZE", "DeviceModel", "SwapDevice"]
