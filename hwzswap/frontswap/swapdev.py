"""The swap device: a real file, written and read a page at a time at ``(offset + 1) * 4096``.

It stands in for the block device (or swap file) behind a swap type. It counts pages in and out
as the kernel's ``pswpin``/``pswpout`` do, measures the time spent in ``pread``/``pwrite``
(``io_us``) and, beside it, the time a modelled disk would have taken (``model_us``), so a run on
a laptop's page cache can still be read as "what would this have cost on the seed's 58 MB/s
disk".

Safety (swap holds other processes' memory): the file is opened relative to its directory,
which must pass :func:`check_swap_dir`, with ``O_NOFOLLOW`` (a symlink planted at the path is
refused); it must be a regular file; a file this class creates is created ``O_EXCL`` with mode
0600 and starts with a header page (:func:`swap_header`) that marks it as an hwzswap swap file.
An existing file that is not ours is refused (see :class:`SwapDevice`), and one this class did
not create is never shrunk. The file is sized with ``ftruncate`` (sparse): the header page plus
``nr_pages * 4096`` bytes. A named file is locked (``flock(LOCK_EX)``) for as long as it is open,
so a second swap system on the same file is refused, as the kernel's ``swapon`` refuses a file
already in use (``EBUSY``); the lock goes away with the descriptor, so a crashed holder leaves
none. :meth:`SwapDevice.temporary` makes a file that has no name at all, so
nothing is left behind by any exit.

Faults for tests: :meth:`SwapDevice.inject` makes the next ``count`` reads or writes fail with
``EIO`` or ``ENOSPC`` before touching the file, exactly as a failing disk would report them.
:attr:`SwapDevice.io_hook`, when set, is called as ``hook(op, offset)`` at the start of every
read and write (outside any lock): tests use it as a barrier to hold an I/O open at a chosen
moment, which makes race windows exact instead of timing-dependent.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import operator
import os
import pwd
import secrets
import stat
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hwzswap.errors import InvalidParameterError, SwapDeviceError, excerpt

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
            f"unknown swap device model {excerpt(name)}; use none, hdd, ssd or custom"
        )


_NO_COST = DeviceModel()

# -- the swap file's header page -------------------------------------------------------------

#: The first bytes of an hwzswap swap file (its header page, like mkswap's ``SWAPSPACE2``).
SWAP_HEADER_MAGIC = b"HWZSWAP-SWAPFILE"
SWAP_HEADER_VERSION = 1
# magic, version, page size, nr_pages (little-endian); the rest of the page is zero.
_HEADER = struct.Struct("<16sIIQ")


def swap_header(nr_pages: int) -> bytes:
    """The header page (4096 bytes) of an hwzswap swap file of ``nr_pages`` slots."""
    head = _HEADER.pack(SWAP_HEADER_MAGIC, SWAP_HEADER_VERSION, PAGE_SIZE, nr_pages)
    return head + bytes(PAGE_SIZE - len(head))


def is_swap_header(data: bytes) -> bool:
    """Whether ``data`` (the file's first bytes) starts with an hwzswap swap-file header."""
    if len(data) < _HEADER.size:
        return False
    magic, version, page_size, _ = _HEADER.unpack_from(data)
    return magic == SWAP_HEADER_MAGIC and version == SWAP_HEADER_VERSION and page_size == PAGE_SIZE


# -- where a swap file may live --------------------------------------------------------------


def check_swap_dir(dfd: int, path: str | os.PathLike[str]) -> None:
    """Refuse a directory other users could use to swap our file for theirs.

    The policy is Perl's File::Temp (``_is_safe``, its default for ``tempdir``/``tempfile``
    safety levels MEDIUM and, on Linux where ``chown`` is restricted, HIGH): the directory must
    be owned by root or by the current user, and if it is writable by group or others it must
    have the sticky bit (as ``/tmp`` does), so nobody else can rename or delete entries in it.
    ``dfd`` is the directory already opened, so the directory checked is the one used.
    """
    st = os.fstat(dfd)
    if not stat.S_ISDIR(st.st_mode):
        raise SwapDeviceError(f"{path}: not a directory")
    me = os.geteuid()
    if st.st_uid not in (0, me):
        raise SwapDeviceError(
            f"{path}: the swap file's directory belongs to {_user(st.st_uid)}, neither root nor "
            f"the user running hwzswap ({_user(me)}), who could replace the file; put the swap "
            f"file in a directory you or root own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        who = "others" if mode & 0o002 else "its group"
        raise SwapDeviceError(
            f"{path}: the swap file's directory (mode {mode:04o}) is writable by {who} without "
            f"the sticky bit, so they could replace or remove the swap file; use a directory "
            f"only you can write to, or one with the sticky bit (chmod +t, like /tmp)"
        )


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _lock_holder(fd: int) -> str:
    """Who holds the ``flock`` on the file ``fd`` is open on, from ``/proc/locks`` (which
    names the locking pid and the file's device and inode): "swap chain NAME (server pid P)"
    for an hwzswap server, else "pid P (COMMAND)", "another swap system of this process", or
    "another process" when it cannot be told."""
    try:
        st = os.fstat(fd)
        want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        pid = None
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if "FLOCK" in parts and want in parts:
                    pid = int(parts[parts.index(want) - 1])
                    break
    except (OSError, ValueError, IndexError):
        return "another process"
    if pid is None:
        return "another process"
    if pid == os.getpid():
        return "another swap system of this process"
    try:
        argv = [a.decode(errors="replace") for a in
                Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return f"pid {pid}"
    if "hwzswap.serve.chain" in argv or ("serve" in argv and "hwzswap" in " ".join(argv)):
        name = argv[argv.index("--name") + 1] if "--name" in argv[:-1] else "hwzswap"
        return f"swap chain {name!r} (server pid {pid})"
    return f"pid {pid} ({excerpt(' '.join(argv))})"


def _check_nr_pages(nr_pages: Any) -> None:
    if type(nr_pages) is not int or nr_pages < 1:
        raise InvalidParameterError(
            f"swap device: nr_pages must be an int >= 1, got {excerpt(nr_pages)}"
        )


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SwapDeviceError(
            f"{path}: cannot open the swap file's directory: {exc.strerror or exc}"
        ) from None


def _open_unlinked(dfd: int, where: Path, o_tmpfile: bool) -> tuple[int, str]:
    """A new file in the directory ``dfd`` that has no name: (fd, how it was unlinked)."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if o_tmpfile and tmpfile:
        try:
            return os.open(".", flags | tmpfile | os.O_EXCL, 0o600, dir_fd=dfd), "O_TMPFILE"
        except OSError as exc:
            # Filesystems without O_TMPFILE answer EOPNOTSUPP (older kernels: EISDIR/EINVAL).
            if exc.errno not in (_errno.EOPNOTSUPP, _errno.EISDIR, _errno.EINVAL):
                raise SwapDeviceError(
                    f"{where}: cannot create a temporary swap file: {exc.strerror or exc}"
                ) from None
    for _ in range(100):
        name = f".hwzswap-{os.getpid()}-{secrets.token_hex(8)}.swap"
        try:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise SwapDeviceError(
                f"{where}: cannot create a temporary swap file: {exc.strerror or exc}"
            ) from None
        try:
            os.unlink(name, dir_fd=dfd)
        except OSError as exc:
            os.close(fd)
            raise SwapDeviceError(
                f"{where}/{name}: cannot unlink the new temporary swap file: "
                f"{exc.strerror or exc}"
            ) from None
        return fd, "unlink"
    raise SwapDeviceError(f"{where}: no free name for a temporary swap file after 100 tries")


def _prepare_size(fd: int, nr_pages: int) -> None:
    """Grow the file to the header page plus ``nr_pages`` slots (sparse)."""
    os.ftruncate(fd, (nr_pages + 1) * PAGE_SIZE)


def _unlink_quietly(name: str, dfd: int) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass


class SwapDevice:
    """A swap file of ``nr_pages`` slots. Thread-safe: positional I/O plus a lock for counters.

    Slot ``i`` lives at file offset ``(i + 1) * 4096``: the first page is the hwzswap header
    (:data:`SWAP_HEADER_MAGIC`, a version, the page size and ``nr_pages``), as the kernel's swap
    areas start with mkswap's header page. The header marks the file as an hwzswap swap file, so
    a later run may reuse it without asking.

    ``create=True`` creates the file if missing (``O_EXCL``, mode 0600) and sizes it (sparse);
    ``create=False`` opens an existing file that must already be big enough. An existing file is
    refused (:class:`SwapDeviceError`, saying why and what to do) when

    * its owner is not the current user, or its mode lets group or others open it: they could
      read the swapped memory (they may already hold it open); ``reuse`` does not override this;
    * it has other hard links, or it is not empty and carries no hwzswap header: it is someone's
      data, unless ``reuse=True`` (``swap.reuse: true``) says to overwrite it;

    and a file this class did not create is never shrunk (only grown to the size needed). The
    directory holding the file must pass :func:`check_swap_dir`. Reading a slot that was never
    written (or was discarded) raises instead of returning whatever the file holds there.

    :meth:`temporary` makes a swap file that has no name at all (see there).
    """

    #: The file this device uses (for a temporary file: its directory plus a placeholder name
    #: in angle brackets; nothing of that name exists).
    path: Path
    #: True for a file made by :meth:`temporary` (unlinked from the moment it was opened).
    temporary_file: bool
    #: How a temporary file was unlinked: ``"O_TMPFILE"`` (it never had a name) or
    #: ``"unlink"`` (created, then unlinked at once); ``None`` for a named file.
    unlinked_with: str | None

    def __init__(
        self,
        path: str | os.PathLike[str],
        nr_pages: int,
        model: DeviceModel | None = None,
        create: bool = True,
        *,
        reuse: bool = False,
    ) -> None:
        _check_nr_pages(nr_pages)
        self.path = Path(path)
        if "\0" in str(self.path):
            raise SwapDeviceError(
                f"swap file path {excerpt(str(self.path))} contains a NUL byte; give a real "
                f"path"
            )
        parent = self.path.parent
        dfd = _open_dir(parent)
        try:
            check_swap_dir(dfd, parent)
            fd, created = self._open_named(dfd, create)
            try:
                self._lock_file(fd)
                if not created:
                    self._check_existing(fd, reuse)
                self._prepare(fd, nr_pages, created=created, must_exist=not create)
            except BaseException:
                os.close(fd)
                if created:
                    _unlink_quietly(self.path.name, dfd)
                raise
        finally:
            os.close(dfd)
        self.temporary_file = False
        self.unlinked_with = None
        self._setup(fd, nr_pages, model)

    @classmethod
    def temporary(
        cls,
        nr_pages: int,
        model: DeviceModel | None = None,
        dir: str | os.PathLike[str] | None = None,
        *,
        o_tmpfile: bool = True,
    ) -> SwapDevice:
        """A swap file in ``dir`` (default: :func:`tempfile.gettempdir`, i.e. ``$TMPDIR`` or
        ``/tmp``) that is unlinked from the moment it is opened, so nothing is left behind
        however the process ends (``SIGKILL`` included): the kernel frees the blocks when the
        last descriptor closes.

        It is opened with ``O_TMPFILE | O_EXCL`` (Linux >= 3.11; the file never has a name and
        can never be linked into the tree); where the filesystem does not support that (or
        ``o_tmpfile=False``), it is created under a random name with ``O_EXCL`` and unlinked
        before this returns (a kill in the microseconds between those two calls is the only
        window). ``dir`` must pass :func:`check_swap_dir`.
        """
        _check_nr_pages(nr_pages)
        where = Path(dir) if dir is not None else Path(tempfile.gettempdir())
        dfd = _open_dir(where)
        try:
            check_swap_dir(dfd, where)
            fd, how = _open_unlinked(dfd, where, o_tmpfile)
            try:
                _prepare_size(fd, nr_pages)
                os.pwrite(fd, swap_header(nr_pages), 0)
            except OSError as exc:
                os.close(fd)
                raise SwapDeviceError(
                    f"{where}: cannot size a temporary swap file of {nr_pages} pages: "
                    f"{exc.strerror or exc}"
                ) from None
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(dfd)
        self = cls.__new__(cls)
        self.path = where / "<temporary swap file, unlinked>"
        self.temporary_file = True
        self.unlinked_with = how
        self._setup(fd, nr_pages, model)
        return self

    # -- opening -------------------------------------------------------------------------------

    def _open_named(self, dfd: int, create: bool) -> tuple[int, bool]:
        """Open ``self.path`` relative to its checked directory: (fd, created by this call)."""
        name = self.path.name
        base = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        for _ in range(8):  # the file may be removed between the two opens: try again
            if create:
                try:
                    return os.open(name, base | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd), True
                except FileExistsError:
                    pass  # someone's file (or a symlink): open it without creating
                except OSError as exc:
                    self._open_failed(exc)
            try:
                return os.open(name, base, dir_fd=dfd), False
            except FileNotFoundError as exc:
                if not create:
                    self._open_failed(exc)
            except OSError as exc:
                self._open_failed(exc)
        raise SwapDeviceError(f"{self.path}: appears and disappears while being opened; retry")

    def _lock_file(self, fd: int) -> None:
        """Take the file for this device alone (the kernel's swapon answers ``EBUSY`` for a
        file in use): two swap systems on one file overwrite each other's slots, and the
        memory swapped through them comes back wrong. ``flock`` is tied to this open file, so
        it goes with the descriptor, whatever ends the process."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SwapDeviceError(
                f"{self.path}: this swap file is in use by {_lock_holder(fd)}; two swap systems "
                f"on one file would overwrite each other's pages. Give this one another "
                f"swap.path (or swap.path: null for a temporary file), or end the other"
            ) from None
        except OSError as exc:
            raise SwapDeviceError(
                f"{self.path}: cannot lock the swap file: {exc.strerror or exc}"
            ) from None

    def _open_failed(self, exc: OSError) -> NoReturn:
        if exc.errno == _errno.ELOOP:
            raise SwapDeviceError(
                f"{self.path}: is a symbolic link; refusing to follow it for a swap file "
                f"(give the real path)"
            ) from None
        raise SwapDeviceError(
            f"{self.path}: cannot open swap file: {exc.strerror or exc}"
        ) from None

    def _check_existing(self, fd: int, reuse: bool) -> None:
        """Refuse a file that is not ours (see the class docstring)."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SwapDeviceError(f"{self.path}: not a regular file; a swap file must be one")
        me = os.geteuid()
        if st.st_uid != me:
            raise SwapDeviceError(
                f"{self.path}: belongs to {_user(st.st_uid)}, not to the user running hwzswap "
                f"({_user(me)}); its owner could read the swapped memory. Remove it (or give "
                f"another swap.path) and let hwzswap create the file (swap.reuse does not "
                f"override this)"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise SwapDeviceError(
                f"{self.path}: mode {mode:04o} lets other users open it (and keep it open), so "
                f"they could read the swapped memory; remove it and let hwzswap create the file "
                f"(mode 0600), or chmod 600 it if nobody else can hold it open (swap.reuse does "
                f"not override this)"
            )
        if reuse:
            return
        if st.st_nlink != 1:
            raise SwapDeviceError(
                f"{self.path}: has {st.st_nlink} hard links, so it is (also) some other file; "
                f"refusing to overwrite it. Give another swap.path, or set swap.reuse: true to "
                f"overwrite it"
            )
        if st.st_size:
            head = os.pread(fd, _HEADER.size, 0)
            if not is_swap_header(head):
                raise SwapDeviceError(
                    f"{self.path}: exists, holds {st.st_size} bytes and is not an hwzswap swap "
                    f"file (no {SWAP_HEADER_MAGIC.decode()} header); refusing to overwrite it. "
                    f"Give another swap.path, or set swap.reuse: true to overwrite it"
                )

    def _prepare(self, fd: int, nr_pages: int, *, created: bool, must_exist: bool) -> None:
        """Size the file (grow only) and write the header page."""
        size = (nr_pages + 1) * PAGE_SIZE
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SwapDeviceError(f"{self.path}: not a regular file; a swap file must be one")
            if must_exist and not (st.st_size >= size and is_swap_header(
                    os.pread(fd, _HEADER.size, 0))):
                have = max(0, st.st_size // PAGE_SIZE - 1)
                raise SwapDeviceError(
                    f"{self.path}: holds {have} pages, {nr_pages} needed"
                    if st.st_size < size else
                    f"{self.path}: is not an hwzswap swap file (no header)"
                )
            if created and stat.S_IMODE(st.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
            if st.st_size < size:
                _prepare_size(fd, nr_pages)
            os.pwrite(fd, swap_header(nr_pages), 0)
        except OSError as exc:
            raise SwapDeviceError(
                f"{self.path}: cannot size swap file: {exc.strerror or exc}"
            ) from None

    def _setup(self, fd: int, nr_pages: int, model: DeviceModel | None) -> None:
        self.nr_pages = nr_pages
        self.model = model if model is not None else _NO_COST
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
            n = os.pwrite(fd, data, (offset + 1) * PAGE_SIZE)
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
            data = os.pread(fd, PAGE_SIZE, (offset + 1) * PAGE_SIZE)
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
            raise InvalidParameterError(
                f"inject: op must be 'read' or 'write', got {excerpt(op)}"
            )
        if type(count) is not int or count < 0:
            raise InvalidParameterError(
                f"inject: count must be an int >= 0, got {excerpt(count)}"
            )
        if type(errno) is not int or errno <= 0:
            raise InvalidParameterError(
                f"inject: errno must be a positive int, got {excerpt(errno)}"
            )
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
        """Close the file: a named one stays on disk; a temporary one is gone with its last
        descriptor."""
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


__all__ = [
    "PAGE_SIZE",
    "SWAP_HEADER_MAGIC",
    "DeviceModel",
    "SwapDevice",
    "check_swap_dir",
    "is_swap_header",
    "swap_header",
]
