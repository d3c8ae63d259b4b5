"""``hwzswap capture``: copy the anonymous memory of a running program into a page file.

The capture starts the command itself, lets it run until it is mid-work (after a time, once its
resident set reaches a size, or once it prints a given line), stops it with ``SIGSTOP``, copies
its pages and ends it. Only the process it started -- and, if asked, that process's descendants --
are ever read.

Which pages are copied
    The pages zswap could be handed: *private anonymous* memory. Every private mapping (``p``
    in ``/proc/PID/maps``, whatever its permissions now) is scanned -- the ``[heap]``,
    ``[stack]``, anonymous ``mmap`` regions, private file mappings (a library's ``.data`` and
    RELRO) and memory ``mprotect``-ed read-only or execute-only after it was written (JIT code)
    -- except the kernel's special mappings (``[vvar]``, ``[vdso]``, ``[vsyscall]``). The page
    table decides, not the permissions: a page is copied only when its ``/proc/PID/pagemap``
    entry says it is *present* (bit 63) and *not* a file page or shared-anonymous page (bit 61).
    That keeps the copy-on-write pages a program has written into a private file mapping (they
    are anonymous memory the kernel would swap) and drops page-cache pages that were only read
    (the kernel would drop them, not swap them). Pages already swapped out (bit 62) cannot be
    read and are only counted. Shared mappings (``rw-s``) are shmem, which zswap also sees, but
    they are left out because their contents usually belong to another process.

    Two kinds of present anonymous entry are not pages zswap would ever see, and are skipped
    when the pagemap shows page frame numbers (PFNs: root, or ``CAP_SYS_ADMIN``; a normal user
    reads them as 0 and gets neither skip, ``pfns_visible`` false in the report):

    - the kernel's *shared zero page* (and THP's huge zero page), which a private anonymous
      page maps until it is first written: found once by reading fresh anonymous memory of our
      own and looking its PFN up; counted in ``zero_page_skipped``;
    - a second mapping of a page already selected: pages a parent and child still share after
      ``fork`` (copy-on-write, not yet written) or that KSM merged are one page to the kernel
      and swapped once, so with ``--children`` each PFN is copied once, for the first process
      (breadth-first) that maps it; counted in ``shared_duplicates_skipped``.

Output
    Raw concatenated 4096-byte pages (``.pages``), zstd-compressed when the name ends with
    ``.zst`` -- the format :mod:`hwzswap.bench.corpus` loads. The file is written to a temporary
    name and renamed when complete, so a failed capture never leaves a partial file behind. A
    capture that cannot be completed -- the process killed while its pages are read (a page
    file with only some of them would pass for a whole one), the disk full -- fails with
    :class:`CaptureIncomplete` (CLI exit 1), its partial file removed. ``--report`` is written
    after the page file; if it cannot be, the CLI says so, keeps the complete page file and
    exits 1.

Interruption
    Ctrl-C, ``SIGTERM`` and ``SIGHUP`` (a closed terminal: the command runs in its own session
    and never sees the hangup itself) all end the capture the same way: the command is resumed
    and ended, the partial page file is removed. The CLI exits 130
    after Ctrl-C and ``128 + signum`` after the others (143, 129). ``SIGKILL`` runs no cleanup.

Permissions
    Reading ``/proc/PID/mem`` needs ptrace access to the target. Root can read any process; a
    normal user can read its own child unless ``kernel.yama.ptrace_scope`` is 2 or 3, or the
    program is set-uid. Linux only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from hwzswap.bench.corpus import same_filled_mask
from hwzswap.bench.results import cpu_model
from hwzswap.errors import CaptureError
from hwzswap.fileio import replacing

PAGE_SIZE = 4096
PAGE_SHIFT = 12

# /proc/PID/pagemap: one 64-bit entry per virtual page (Documentation/admin-guide/mm/pagemap.rst).
PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PM_FILE = 1 << 61  # file page or shared-anon
PM_PFN_MASK = (1 << 55) - 1  # bits 0-54: the page frame number (0 without CAP_SYS_ADMIN)
HPAGE_PAGES = 512  # a PMD-sized (2 MiB) transparent huge page on x86-64 and arm64 (4 KiB pages)

_SPECIAL_MAPPINGS = frozenset({"[vvar]", "[vvar_vclock]", "[vdso]", "[vsyscall]", "[uprobes]"})
_PAGEMAP_CHUNK = 1 << 16  # entries per pagemap read (512 KiB)
_MEM_CHUNK_PAGES = 256  # pages per /proc/PID/mem read (1 MiB)
_POLL_S = 0.01


class CaptureIncomplete(CaptureError):
    """The capture ran but could not be completed: the process went away while its pages were
    being read, or the page file could not be written (a full disk). No page file is left (the
    partial one is removed; a previous file of that name is kept); the CLI exits 1, where a
    mistake in the arguments or a command that cannot be captured exits 2."""


@dataclass
class CaptureReport:
    """What a capture found and wrote.

    ``pages`` is what was written; ``anon_pages`` the present private anonymous pages selected
    for copying (more than ``pages`` when ``max_pages`` thinned the selection), after the
    ``zero_page_skipped`` entries that map the kernel's shared zero page and the
    ``shared_duplicates_skipped`` second mappings of one page (fork, KSM) were left out; both
    stay 0 when ``pfns_visible`` is false (the pagemap hides PFNs from a normal user).
    ``same_filled_pages`` counts pages whose 8-byte words are all equal, zero pages included
    (zswap's definition).
    """

    command: list[str]
    output: str
    pid: int
    pids: list[int]
    trigger: str
    waited_s: float
    rss_kb: int
    mappings: int
    anon_pages: int
    swapped_pages: int
    unreadable_pages: int
    pages: int
    zero_pages: int
    same_filled_pages: int
    zero_page_skipped: int = 0
    shared_duplicates_skipped: int = 0
    pfns_visible: bool = False
    captured_at: str = ""
    kernel: str = field(default_factory=platform.release)
    cpu: str = ""

    @property
    def zero_share(self) -> float:
        return self.zero_pages / self.pages if self.pages else 0.0

    @property
    def same_filled_share(self) -> float:
        return self.same_filled_pages / self.pages if self.pages else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["zero_share"] = round(self.zero_share, 6)
        d["same_filled_share"] = round(self.same_filled_share, 6)
        return d


def require_linux() -> None:
    """Raise :class:`CaptureError` unless ``/proc`` offers pagemap and mem (Linux)."""
    if not sys.platform.startswith("linux"):
        raise CaptureError(
            f"capture needs Linux (/proc/PID/maps, pagemap and mem); this is {sys.platform!r}. "
            "Capture on a Linux machine and copy the .pages file here."
        )
    if not os.path.exists("/proc/self/pagemap"):
        raise CaptureError(
            "/proc/self/pagemap does not exist: the kernel lacks CONFIG_PROC_PAGE_MONITOR or /proc "
            "is not mounted; capture on a Linux system with /proc mounted."
        )


# ----------------------------------------------------------------------------------------------
# /proc helpers


def _proc_state(pid: int) -> str | None:
    """The one-letter state of every thread of ``pid`` joined ('' if gone), or None if gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    states = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # thread exited
        states.append(chr(stat[stat.rindex(b")") + 2]))
    return "".join(states)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0  # gone, or a zombie (no VmRSS line)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), via /proc/PID/task/*/children."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            # Kernel without CONFIG_PROC_CHILDREN: scan every process's parent pid instead.
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue
            return _children_by_scan(pid)
        except OSError:
            continue
    return out


def _children_by_scan(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
            out.append(int(name))
    return out


def _process_tree(pid: int, include_children: bool) -> list[int]:
    """``pid`` and, if asked, its descendants in breadth-first order."""
    if not include_children:
        return [pid]
    tree, i = [pid], 0
    while i < len(tree):
        for child in _children(tree[i]):
            if child not in tree:
                tree.append(child)
        i += 1
    return tree


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    inode: int
    path: str

    @property
    def selected(self) -> bool:
        """Private and not a kernel special mapping: may hold anonymous pages, whatever its
        permissions now (read-only RELRO, mprotect-ed data and JIT code were written once)."""
        return self.perms[3] == "p" and self.path not in _SPECIAL_MAPPINGS


def read_maps(pid: int) -> list[Mapping]:
    """Parse /proc/PID/maps."""
    out = []
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = parts[0].split("-")
            path = parts[5].rstrip("\n") if len(parts) > 5 else ""
            out.append(Mapping(int(lo, 16), int(hi, 16), parts[1], int(parts[4]), path))
    return out


def _permission_message(pid: int, what: str, exc: OSError) -> str:
    scope = ""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = f" (kernel.yama.ptrace_scope is {f.read().strip()})"
    except OSError:
        pass
    return (
        f"cannot read /proc/{pid}/{what}: {exc.strerror}{scope}. Reading another process's "
        "memory needs ptrace access to it: run as root or with CAP_SYS_PTRACE, or as the same "
        "user with kernel.yama.ptrace_scope at 0 or 1 (sysctl kernel.yama.ptrace_scope=1). "
        "Set-uid and other non-dumpable programs can only be captured with CAP_SYS_PTRACE."
    )


def _own_pfns(m: Any, first: int, count: int) -> np.ndarray:
    """Pagemap entries of ``count`` pages of our own mapping ``m`` from page ``first`` on."""
    import ctypes

    buf = ctypes.c_char.from_buffer(m)
    addr = ctypes.addressof(buf)
    del buf  # the export would keep ``m`` from closing
    with open("/proc/self/pagemap", "rb") as f:
        raw = os.pread(f.fileno(), count * 8, ((addr >> PAGE_SHIFT) + first) * 8)
    return np.frombuffer(raw, dtype=np.uint64)


def zero_page_pfns() -> tuple[int, int, int] | None:
    """``(zero page PFN, huge zero page first PFN, its page count)`` or None when the pagemap
    hides PFNs (no ``CAP_SYS_ADMIN``). Found by reading fresh private anonymous memory of our
    own, which maps the shared zero page (``ZERO_PAGE(0)``) until written; a 2 MiB-aligned
    region with ``MADV_HUGEPAGE`` maps THP's huge zero page where THP and its
    ``use_zero_page`` are on (otherwise the count is 0)."""
    import mmap

    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    m = mmap.mmap(-1, PAGE_SIZE, flags=flags)
    try:
        m[0]  # a read fault maps the zero page
        e = int(_own_pfns(m, 0, 1)[0])
    finally:
        m.close()
    pfn = e & PM_PFN_MASK
    if not e & PM_PRESENT or pfn == 0:
        return None
    huge_lo = huge_n = 0
    size = 2 * HPAGE_PAGES * PAGE_SIZE
    h = mmap.mmap(-1, size, flags=flags)
    try:
        import ctypes

        buf = ctypes.c_char.from_buffer(h)
        base = ctypes.addressof(buf)
        del buf
        hsize = HPAGE_PAGES * PAGE_SIZE
        off = -base % hsize
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                h.madvise(mmap.MADV_HUGEPAGE, off, hsize)
            except OSError:
                pass  # THP not configured
        h[off]
        ents = _own_pfns(h, off // PAGE_SIZE, HPAGE_PAGES)
        pfns = (ents & np.uint64(PM_PFN_MASK)).astype(np.int64)
        first = int(pfns[0])
        if (first != pfn and ents.size == HPAGE_PAGES
                and bool(np.all(ents & np.uint64(PM_PRESENT)))
                and bool(np.all(pfns == first + np.arange(HPAGE_PAGES)))):
            huge_lo, huge_n = first, HPAGE_PAGES
    finally:
        h.close()
    return pfn, huge_lo, huge_n


@dataclass
class _Selection:
    pid: int
    addrs: np.ndarray  # uint64 virtual addresses of selected pages, ascending
    pfns: np.ndarray  # their page frame numbers (all 0 when the pagemap hides them)
    mappings: int
    swapped: int
    zero_skipped: int


def _select_pages(pid: int, zero: tuple[int, int, int] | None = None) -> _Selection:
    """Addresses of the present, private anonymous pages of a stopped process, less those
    mapping the zero page (``zero``: :func:`zero_page_pfns`, None to keep them)."""
    try:
        maps = read_maps(pid)
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    except PermissionError as exc:
        raise CaptureError(_permission_message(pid, "maps or pagemap", exc)) from None
    except FileNotFoundError:
        raise CaptureIncomplete(f"pid {pid} exited while it was being captured; no page file "
                                "was written -- capture again") from None
    parts: list[np.ndarray] = []
    pfn_parts: list[np.ndarray] = []
    nmaps = swapped = zero_skipped = 0
    try:
        for m in maps:
            if not m.selected:
                continue
            nmaps += 1
            first = m.start >> PAGE_SHIFT
            last = m.end >> PAGE_SHIFT
            for lo in range(first, last, _PAGEMAP_CHUNK):
                n = min(_PAGEMAP_CHUNK, last - lo)
                raw = os.pread(fd, n * 8, lo * 8)
                e = np.frombuffer(raw, dtype=np.uint64)
                if e.size < n:  # the mapping went away (cannot happen while stopped; be safe)
                    n = e.size
                present = (e & np.uint64(PM_PRESENT | PM_FILE)) == np.uint64(PM_PRESENT)
                swapped += int(np.count_nonzero(e & np.uint64(PM_SWAP)))
                pfn = e & np.uint64(PM_PFN_MASK)
                if zero is not None:
                    zp, hlo, hn = zero
                    is_zero = present & ((pfn == np.uint64(zp)) | (
                        (pfn >= np.uint64(hlo)) & (pfn < np.uint64(hlo + hn))))
                    zero_skipped += int(np.count_nonzero(is_zero))
                    present &= ~is_zero
                idx = np.flatnonzero(present)
                if idx.size:
                    parts.append((idx.astype(np.uint64) + np.uint64(lo)) << np.uint64(PAGE_SHIFT))
                    pfn_parts.append(pfn[idx])
    except PermissionError as exc:
        raise CaptureError(_permission_message(pid, "pagemap", exc)) from None
    finally:
        os.close(fd)
    addrs = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    pfns = np.concatenate(pfn_parts) if pfn_parts else np.empty(0, dtype=np.uint64)
    return _Selection(pid, addrs, pfns, nmaps, swapped, zero_skipped)


def _drop_shared(selections: list[_Selection]) -> int:
    """Keep each page frame once over ``selections`` (the first mapping, in their order): a
    page a parent and child share after fork, or KSM merged, is one page the kernel swaps once.
    Returns how many mappings were dropped. Needs visible PFNs (the caller checks)."""
    seen = np.empty(0, dtype=np.uint64)
    dropped = 0
    for s in selections:
        if s.pfns.size == 0:
            continue
        keep = np.zeros(s.pfns.size, dtype=bool)
        keep[np.unique(s.pfns, return_index=True)[1]] = True
        keep &= ~np.isin(s.pfns, seen)
        dropped += int(s.pfns.size - np.count_nonzero(keep))
        s.addrs, s.pfns = s.addrs[keep], s.pfns[keep]
        seen = np.union1d(seen, s.pfns)
    return dropped


def _runs(addrs: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start address, page count) of each run of consecutive pages, split at _MEM_CHUNK_PAGES."""
    if addrs.size == 0:
        return
    breaks = np.flatnonzero(np.diff(addrs) != PAGE_SIZE) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [addrs.size]))
    for s, e in zip(starts.tolist(), ends.tolist()):
        for c in range(s, e, _MEM_CHUNK_PAGES):
            yield int(addrs[c]), min(_MEM_CHUNK_PAGES, e - c)


class _PageWriter:
    """Streams pages into ``path`` (zstd-compressed when ``output`` ends in ``.zst``), counting
    zero and same-filled ones; leaving the ``with`` closes the file (ending the zstd frame)."""

    def __init__(self, path: Path, output: Path, zstd_level: int) -> None:
        self._raw = open(path, "wb")  # closed by __exit__
        self._out: IO[bytes] = self._raw
        self._zst = None
        if output.name.endswith(".zst"):
            import zstandard

            try:
                self._zst = zstandard.ZstdCompressor(level=zstd_level, threads=-1).stream_writer(
                    self._raw, closefd=False
                )
            except BaseException:
                self._raw.close()
                raise
            self._out = self._zst  # type: ignore[assignment]
        self.pages = self.zero = self.same = 0

    def __enter__(self) -> _PageWriter:
        return self

    def write(self, chunk: np.ndarray) -> None:
        same, zero = same_filled_mask(chunk)
        z, s = int(np.count_nonzero(zero)), int(np.count_nonzero(same))
        self.zero += z
        self.same += s
        self.pages += chunk.shape[0]
        self._out.write(chunk.tobytes())

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if self._zst is not None:
                self._zst.close()
        except Exception:
            if exc_type is None:
                raise  # the file is not whole: the caller's write fails
            # already failing: the temporary file goes anyway, keep the first error
        finally:
            self._raw.close()


def _read_pages(pid: int, addrs: np.ndarray, sink: Callable[[np.ndarray], None]) -> int:
    """Copy the pages at ``addrs`` from /proc/PID/mem into ``sink``; returns unreadable pages."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except PermissionError as exc:
        raise CaptureError(_permission_message(pid, "mem", exc)) from None
    except FileNotFoundError:
        raise CaptureIncomplete(f"pid {pid} exited while it was being captured; no page file "
                                "was written -- capture again") from None
    except OSError as exc:
        raise CaptureError(f"cannot open /proc/{pid}/mem: {exc.strerror or exc}") from None
    unreadable = 0
    try:
        for addr, n in _runs(addrs):
            try:
                data = os.pread(fd, n * PAGE_SIZE, addr)
            except PermissionError as exc:
                raise CaptureError(_permission_message(pid, "mem", exc)) from None
            except OSError:
                data = b""  # EIO: a page vanished or is not accessible; read page by page
            if len(data) != n * PAGE_SIZE:
                good = bytearray()
                for i in range(n):
                    try:
                        p = os.pread(fd, PAGE_SIZE, addr + i * PAGE_SIZE)
                    except OSError:
                        p = b""
                    if len(p) == PAGE_SIZE:
                        good += p
                    else:
                        unreadable += 1
                data = bytes(good)
            if data:
                sink(np.frombuffer(data, dtype=np.uint8).reshape(-1, PAGE_SIZE))
    finally:
        os.close(fd)
    return unreadable


# ----------------------------------------------------------------------------------------------
# process control


_STDERR_KEEP = 2000  # bytes of the command's stderr kept to quote when it fails
_READ_CHUNK = 1 << 16


class _Drain(threading.Thread):
    """Reads one of the command's output pipes until EOF or :meth:`halt`, keeping only its last
    ``keep`` bytes and, given a ``needle``, noting when the needle appears (matched across reads
    through an overlap of ``len(needle) - 1`` bytes). Memory stays bounded and nothing is written
    to disk whatever the command prints (``-- yes`` used to grow a stdout file in /tmp and read
    it whole at every poll). Reading on a thread of its own keeps the command from blocking on a
    full pipe while the capture waits."""

    def __init__(self, fd: int, keep: int, needle: bytes | None = None) -> None:
        super().__init__(daemon=True, name=f"hwzswap-capture-drain-{fd}")
        self.fd = fd
        self.keep = keep
        self.needle = needle
        self.tail = bytearray()
        self.seen = 0  # bytes read in all
        self.matched = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        import select

        carry = b""
        overlap = 0 if self.needle is None else len(self.needle) - 1
        # poll(2), not select(2): select cannot watch a descriptor numbered 1024 or above,
        # which a process with a raised RLIMIT_NOFILE and many files open may get
        watch = select.poll()
        watch.register(self.fd, select.POLLIN)
        while not self._halt.is_set():
            try:
                if not watch.poll(50):
                    continue
                chunk = os.read(self.fd, _READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return  # EOF: every writer is gone
            self.seen += len(chunk)
            if self.needle is not None and not self.matched.is_set():
                window = carry + chunk
                if self.needle in window:
                    self.matched.set()
                carry = window[-overlap:] if overlap else b""  # the whole window if shorter
            if not self.keep:
                continue
            self.tail += chunk
            if len(self.tail) > self.keep:
                del self.tail[: len(self.tail) - self.keep]

    def text(self) -> str:
        return bytes(self.tail).decode("utf-8", errors="replace").strip()

    def halt(self) -> None:
        """Stop reading (within 50 ms) and close the pipe."""
        self._halt.set()
        if self.is_alive():
            self.join()
        os.close(self.fd)


def _start_time(pid: int) -> int | None:
    """``pid``'s start time (clock ticks after boot, /proc/PID/stat field 22), None if gone: a
    pid and its start time name one process, even once the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2:].split()[19])


def _track(tracked: dict[int, int] | None, pid: int) -> None:
    if tracked is not None and pid not in tracked:
        start = _start_time(pid)
        if start is not None:
            tracked[pid] = start


# where a vfork parent sleeps (TASK_KILLABLE, state D) until its child execs or exits:
# wait_for_vfork_done, inlined into kernel_clone (_do_fork before 5.10) on most builds
_VFORK_WCHANS = frozenset({"wait_for_vfork_done", "kernel_clone", "_do_fork", "do_fork"})


def _vfork_waiting(pid: int, state: str) -> bool:
    """Whether ``pid`` is a vfork (posix_spawn, dash, Python's subprocess) parent waiting for a
    child we stopped before it could exec: it cannot run until that child is resumed, so it is
    as good as stopped (it never reaches state T, and a capture of it used to time out)."""
    if state != "D":
        return False
    try:
        with open(f"/proc/{pid}/wchan") as f:
            if f.read().strip() not in _VFORK_WCHANS:
                return False
    except OSError:
        return False
    return any((_proc_state(c) or "x") in ("T", "t") for c in _children(pid))


def _stop_tree(root: int, include_children: bool, deadline: float,
               tracked: dict[int, int] | None = None) -> list[int]:
    """SIGSTOP the process group and every process of the tree; wait until all are stopped.
    Every process signalled one by one (a descendant may have left the group: ``setsid``) is
    added to ``tracked`` (pid -> start time), for :func:`_end` to resume and end."""
    try:
        os.killpg(root, signal.SIGSTOP)
    except ProcessLookupError:
        raise CaptureError("the command exited before it could be stopped") from None
    while True:
        tree = _process_tree(root, include_children)
        pending = []
        for pid in tree:
            _track(tracked, pid)
            try:
                os.kill(pid, signal.SIGSTOP)  # a descendant that left the process group
            except ProcessLookupError:
                continue
            state = _proc_state(pid)
            if state is None or "Z" in state or "X" in state:
                if pid == root:
                    raise CaptureError("the command exited while it was being stopped")
                continue
            if any(s not in "Tt" for s in state) and not _vfork_waiting(pid, state):
                pending.append(pid)
        # a stable tree with every member stopped: nothing can fork any more
        if not pending and tree == _process_tree(root, include_children):
            return [p for p in tree if _proc_state(p) not in (None, "")]
        if time.monotonic() > deadline:
            raise CaptureError(f"pids {pending} did not stop within the timeout after SIGSTOP")
        time.sleep(_POLL_S)


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (not yet a zombie)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _end(proc: subprocess.Popen[bytes], tracked: dict[int, int] | None = None,
         grace_s: float = 2.0) -> None:
    """Resume and end the whole process group we started and every process in ``tracked``
    (pid -> start time: those stopped one by one, and the descendants found now, which may have
    left the group with ``setsid`` -- they were left stopped for ever): SIGTERM and SIGCONT,
    then SIGKILL; return once none of it runs any more (SIGKILL takes effect asynchronously: a
    descendant could still be running, its memory mapped, for a moment after the call)."""
    tracked = {} if tracked is None else tracked
    if proc.poll() is None:
        for pid in _process_tree(proc.pid, True)[1:]:
            _track(tracked, pid)
    try:
        _signal_group(proc, tracked, grace_s)
    finally:
        deadline = time.monotonic() + grace_s
        while ((_group_running(proc.pid) or _any_running(tracked))
               and time.monotonic() < deadline):
            time.sleep(_POLL_S)


def _signal_tracked(tracked: dict[int, int], sig: int) -> None:
    for pid, start in tracked.items():
        if _start_time(pid) == start:  # still that process, not a reused pid
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _any_running(tracked: dict[int, int]) -> bool:
    for pid, start in tracked.items():
        if _start_time(pid) == start:
            state = _proc_state(pid)
            if state and "Z" not in state and "X" not in state:
                return True
    return False


def _signal_group(proc: subprocess.Popen[bytes], tracked: dict[int, int],
                  grace_s: float) -> None:
    if proc.poll() is not None:
        try:  # descendants may outlive the leader
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _signal_tracked(tracked, signal.SIGKILL)  # SIGKILL ends a stopped process too
        return
    for sig in (signal.SIGTERM, signal.SIGCONT):
        _signal_tracked(tracked, sig)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if _any_running(tracked):
        _signal_tracked(tracked, signal.SIGKILL)
    proc.wait()


class CaptureSignalled(KeyboardInterrupt):
    """The capture was told to stop by ``SIGTERM`` or ``SIGHUP`` (``kill``, a closed terminal,
    a service manager): it ends as on Ctrl-C -- the command resumed and ended, no partial file
    left -- and the CLI exits ``128 + signum``. A ``KeyboardInterrupt``, so a
    caller that handles Ctrl-C handles this as well. ``written`` is the page file when the
    signal came only after it was complete (during the command's cleanup), else None."""

    def __init__(self, signum: int, written: Path | None = None) -> None:
        self.signum = signum
        self.written = written
        super().__init__(f"terminated by {signal.Signals(signum).name}")


#: The signals that end a capture as Ctrl-C does. Without a handler they would kill the Python
#: process outright, leaving the command stopped (SIGSTOP) or running in its own session, which
#: never sees the terminal's hangup, plus the partial page file.
_END_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _EndSignals:
    """While the capture owns a command: ``SIGTERM``/``SIGHUP`` raise :class:`CaptureSignalled`
    in the main thread, as Ctrl-C raises ``KeyboardInterrupt``, so the ``finally`` that ends the
    command and the temporary files' cleanup run.

    The handler does no I/O: it records the signal and raises only while *armed* (between the
    command's start and the start of its cleanup); a signal outside that window (during
    ``Popen``, during the cleanup) is kept and raised by :meth:`raise_pending` once the cleanup
    is done, and any later one is only recorded, so cleanup is never cut short. Handlers are
    installed only in the main thread (Python runs signal handlers nowhere else) and only over
    the default action: a signal the caller ignores (``nohup`` sets ``SIGHUP`` to ignored) or
    handles itself is left alone. The old handlers come back on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._armed = False
        self._raised = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _EndSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in _END_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handler(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if self._armed:
            self._raise()

    def _raise(self, written: Path | None = None) -> None:
        if self.signum is not None and not self._raised:
            self._raised = True
            self._armed = False
            raise CaptureSignalled(self.signum, written)

    def arm(self) -> None:
        """From now on a signal raises (at once if one came already)."""
        self._armed = True
        self._raise()

    def disarm(self) -> None:
        """From now on a signal is only recorded (the cleanup must run whole)."""
        self._armed = False

    def raise_pending(self, written: Path) -> None:
        """Raise for a signal that came while disarmed and was not raised yet (``written``:
        the complete page file)."""
        self._raise(written)


def _wait_mid_work(
    proc: subprocess.Popen[bytes],
    stdout: _Drain,
    stderr: _Drain,
    *,
    wait_seconds: float | None,
    wait_rss_mb: float | None,
    wait_line: str | None,
    include_children: bool,
    timeout: float,
) -> tuple[str, float]:
    """Block until a trigger fires; returns (trigger, seconds waited)."""
    t0 = time.monotonic()
    rss_target = None if wait_rss_mb is None else int(wait_rss_mb * 1024)
    # the bytes the user typed: a non-UTF-8 argument (surrogate-escaped by Python) is matched
    # as those bytes, as the program would print them
    needle = None if wait_line is None else os.fsencode(wait_line)
    peak = 0
    while True:
        waited = time.monotonic() - t0
        rc = proc.poll()
        if rc is not None:
            stderr.join(0.2)  # the last words it wrote before it exited
            err = stderr.text()
            raise CaptureError(
                f"the command exited (status {rc}) after {waited:.2f} s, before it could be "
                "captured; pause it earlier (smaller --wait-seconds / --wait-rss-mb) or give it "
                "more work" + (f". Its stderr ended with:\n{err}" if err else "")
            )
        if needle is not None and stdout.matched.is_set():
            return "line", waited
        if rss_target is not None:
            rss = sum(_rss_kb(p) for p in _process_tree(proc.pid, include_children))
            peak = max(peak, rss)
            if rss >= rss_target:
                return "rss", waited
        if wait_seconds is not None and waited >= wait_seconds:
            return "time", waited
        if wait_seconds is None and waited >= timeout:  # wait_seconds always ends the wait
            what = []
            if rss_target is not None:
                what.append(f"RSS {wait_rss_mb} MB (peak seen {peak / 1024:.1f} MB)")
            if needle is not None:
                what.append(f"the line {wait_line!r} on stdout")
            hint = ""
            if needle is not None:
                hint = (
                    f". It wrote {stdout.seen} bytes to stdout without the line. Its stdout is a "
                    "pipe, so a program that buffers its output (C stdio, most runtimes) may "
                    "hold the line back until a buffer fills: run it as `stdbuf -oL CMD` (C "
                    "stdio), make it flush after the line, or for Python use -u "
                    "(PYTHONUNBUFFERED=1, which capture sets unless you set it)"
                )
            raise CaptureError(
                f"gave up after {timeout:g} s waiting for {' or '.join(what)}; lower the "
                "target or raise --timeout" + hint
            )
        time.sleep(_POLL_S)


def capture(
    command: list[str],
    output: Path | str,
    *,
    wait_seconds: float | None = None,
    wait_rss_mb: float | None = None,
    wait_line: str | None = None,
    include_children: bool = False,
    max_pages: int | None = None,
    timeout: float = 120.0,
    zstd_level: int = 9,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
) -> CaptureReport:
    """Run ``command``, pause it mid-work and write its present anonymous pages to ``output``.

    The pause comes at the first trigger that fires: ``wait_seconds`` elapsed, the resident set
    (summed over the tree when ``include_children``) reaching ``wait_rss_mb``, or ``wait_line``
    appearing on the command's stdout. With no trigger it waits one second. Without
    ``wait_seconds``, ``timeout`` bounds the wait for the RSS/line triggers. ``max_pages``
    thins the selection to that many pages spread evenly over it (address order), so a capped
    capture still samples every region. ``zstd_level`` applies to ``.zst`` output.

    The command's stdout and stderr are pipes read as it runs and not stored: only the match of
    ``wait_line`` and the last 2000 bytes of stderr (shown if it fails) are kept, so a command
    that prints without end neither fills memory nor the disk. With ``wait_line`` the command
    runs with ``PYTHONUNBUFFERED=1`` unless its environment sets it (a Python program then writes
    the line as it prints it; other programs may need ``stdbuf -oL`` or their own flush).
    It is always ended -- resumed, SIGTERM, then SIGKILL to its whole process group and to every
    process it stopped or found as a descendant, one that left the group included -- even when
    the capture fails or is interrupted: Ctrl-C (``KeyboardInterrupt``) and, when called in the
    main thread with their default action in place, ``SIGTERM`` and ``SIGHUP``
    (:class:`CaptureSignalled`) end it, remove the partial output, and propagate.
    """
    require_linux()
    if not command:
        raise CaptureError("no command given to capture (put it after --)")
    if max_pages is not None and max_pages < 1:
        raise CaptureError(f"max_pages must be at least 1, got {max_pages}")
    for name, v in (("wait_seconds", wait_seconds), ("wait_rss_mb", wait_rss_mb)):
        if v is not None and v < 0:
            raise CaptureError(f"{name} must not be negative, got {v}")
    if wait_line is not None and not wait_line:
        raise CaptureError("--wait-line is empty: it would match at once; give the text the "
                           "command prints when it is mid-work")
    if wait_seconds is None and wait_rss_mb is None and wait_line is None:
        wait_seconds = 1.0
    output = Path(output)
    started_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()

    with _EndSignals() as end_signals:
        report = _capture_owned(command, output, end_signals, wait_seconds=wait_seconds,
                                wait_rss_mb=wait_rss_mb, wait_line=wait_line,
                                include_children=include_children, max_pages=max_pages,
                                timeout=timeout, zstd_level=zstd_level, cwd=cwd, env=env,
                                started_at=started_at)
        end_signals.raise_pending(output)  # one that came during the cleanup, now done
    return report


def _capture_owned(
    command: list[str],
    output: Path,
    end_signals: _EndSignals,
    *,
    wait_seconds: float | None,
    wait_rss_mb: float | None,
    wait_line: str | None,
    include_children: bool,
    max_pages: int | None,
    timeout: float,
    zstd_level: int,
    cwd: Path | str | None,
    env: dict[str, str] | None,
    started_at: str,
) -> CaptureReport:
    """:func:`capture` once the arguments are checked, with ``end_signals`` installed."""
    if wait_line is not None:
        env = dict(os.environ if env is None else env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # a Python program's line reaches the pipe
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group: stop and end it as a whole
            )
        except FileNotFoundError:
            raise CaptureError(f"command not found: {command[0]!r}") from None
        except PermissionError:
            raise CaptureError(f"command is not executable: {command[0]!r}") from None
        except OSError as exc:
            raise CaptureError(f"cannot start {command[0]!r}: {exc}") from None
    except BaseException:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    os.close(out_w)
    os.close(err_w)
    stdout = _Drain(out_r, 0, None if wait_line is None else os.fsencode(wait_line))
    stderr = _Drain(err_r, _STDERR_KEEP)
    tracked: dict[int, int] = {}  # pid -> start time of each process to end with the command
    try:  # right after the start: whatever comes now, the finally ends the command
        stdout.start()
        stderr.start()
        end_signals.arm()  # a SIGTERM/SIGHUP from here on ends the command (finally)
        trigger, waited = _wait_mid_work(
            proc,
            stdout,
            stderr,
            wait_seconds=wait_seconds,
            wait_rss_mb=wait_rss_mb,
            wait_line=wait_line,
            include_children=include_children,
            timeout=timeout,
        )
        pids = _stop_tree(proc.pid, include_children, time.monotonic() + 10.0, tracked)
        rss = sum(_rss_kb(p) for p in pids)
        zero = zero_page_pfns()
        selections = [_select_pages(p, zero) for p in pids]
        shared_dups = _drop_shared(selections) if zero is not None else 0
        total = sum(s.addrs.size for s in selections)
        if max_pages is not None and total > max_pages:
            keep = np.unique(np.linspace(0, total - 1, max_pages).round().astype(np.int64))
            bounds = np.cumsum([0] + [s.addrs.size for s in selections])
            for i, s in enumerate(selections):
                local = keep[(keep >= bounds[i]) & (keep < bounds[i + 1])] - bounds[i]
                s.addrs = s.addrs[local]
        try:
            with replacing(output) as tmp, _PageWriter(tmp, output, zstd_level) as writer:
                unreadable = 0
                for s in selections:
                    bad = _read_pages(s.pid, s.addrs, writer.write)
                    unreadable += bad
                    state = _proc_state(s.pid) if bad else ""
                    if state is None or "Z" in state or "X" in state:
                        raise CaptureIncomplete(
                            f"pid {s.pid} ended while its pages were being read ({bad} of its "
                            f"{s.addrs.size} pages could not be read): something killed it (the "
                            "OOM killer, a SIGKILL from elsewhere). The partial page file was "
                            f"removed and {output} not written; capture again"
                        )
                if writer.pages == 0:
                    raise CaptureError(
                        f"no anonymous pages could be read from pids {pids}; the process may "
                        "be too young -- pause it later"
                    )
        except OSError as exc:  # /proc reads are handled where they happen: this is our file
            raise CaptureIncomplete(
                f"cannot write the page file {output}: {exc.strerror or exc}; the partial file "
                "was removed (a previous file of that name is kept). Free some space or give "
                "-o a file on another file system"
            ) from None
    finally:
        end_signals.disarm()  # a signal now must not cut the cleanup short
        try:
            _end(proc, tracked)
        finally:
            stdout.halt()
            stderr.halt()

    return CaptureReport(
        command=list(command),
        output=str(output),
        pid=proc.pid,
        pids=pids,
        trigger=trigger,
        waited_s=round(waited, 3),
        rss_kb=rss,
        mappings=sum(s.mappings for s in selections),
        anon_pages=total,
        swapped_pages=sum(s.swapped for s in selections),
        unreadable_pages=unreadable,
        pages=writer.pages,
        zero_pages=writer.zero,
        same_filled_pages=writer.same,
        zero_page_skipped=sum(s.zero_skipped for s in selections),
        shared_duplicates_skipped=shared_dups,
        pfns_visible=zero is not None,
        captured_at=started_at,
        cpu=cpu_model(),
    )


# ----------------------------------------------------------------------------------------------
# command line


def register(subparsers: Any) -> None:
    """Add ``hwzswap capture`` to the CLI."""
    from hwzswap.cliargs import (
        non_negative_seconds,
        positive_int,
        positive_number,
        seconds,
        zstd_level,
    )

    p = subparsers.add_parser(
        "capture",
        help="run a command, pause it mid-work and save its anonymous memory as a page file",
        description="Run COMMAND, pause it mid-work and copy its present private anonymous pages "
        "into FILE (.pages, or zstd-compressed when FILE ends in .zst). Linux only.",
    )
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                   help="page file to write (FILE.pages or FILE.pages.zst)")
    p.add_argument("--wait-seconds", type=non_negative_seconds, metavar="S",
                   help="pause the command after S seconds")
    p.add_argument("--wait-rss-mb", type=positive_number, metavar="M",
                   help="pause once its resident set reaches M MB")
    p.add_argument("--wait-line", metavar="TEXT",
                   help="pause once it prints TEXT on stdout")
    p.add_argument("--children", action="store_true",
                   help="also capture the command's descendants (e.g. cc1 under gcc)")
    p.add_argument("--max-pages", type=positive_int, metavar="N",
                   help="keep at most N pages, spread evenly over the selected pages")
    p.add_argument("--timeout", type=seconds, default=120.0, metavar="S",
                   help="give up waiting for --wait-rss-mb/--wait-line after S seconds (120)")
    p.add_argument("--zstd-level", type=zstd_level, default=9, metavar="L",
                   help="zstd level for .zst output (9; the bundled corpus uses 19)")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="also write the capture report as JSON")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS]")
    p.set_defaults(func=_cmd_capture)


def _cmd_capture(args: argparse.Namespace) -> int:
    from hwzswap.cliargs import check_outputs
    from hwzswap.fileio import write_atomic

    # checked before the command runs: a bad -o used to fail only at the rename, after the capture
    check_outputs([("-o", str(args.output), (".pages", ".zst")),
                   ("--report", None if args.report is None else str(args.report), ())])
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    try:
        report = capture(
            cmd,
            args.output,
            wait_seconds=args.wait_seconds,
            wait_rss_mb=args.wait_rss_mb,
            wait_line=args.wait_line,
            include_children=args.children,
            max_pages=args.max_pages,
            timeout=args.timeout,
            zstd_level=args.zstd_level,
        )
    except CaptureSignalled as exc:
        # the command is ended and nothing partial is left; the status says which signal, as a
        # shell reports a process a signal killed (143 for SIGTERM, 129 for SIGHUP)
        try:
            done = (f"the page file {exc.written} was complete and is kept" if exc.written
                    else "no page file was written")
            print(f"hwzswap capture: {exc}; the command was ended and {done}", file=sys.stderr)
        except OSError:
            pass  # a hung-up terminal (SIGHUP) may refuse the message; the status still says it
        return 128 + exc.signum
    except CaptureIncomplete as exc:
        # it ran but nothing whole came of it: a failure (1), not a usage mistake (2)
        print(f"hwzswap capture: error: {exc}", file=sys.stderr)
        return 1
    if args.report is not None:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
        try:
            write_atomic(args.report, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except OSError as exc:
            print(f"hwzswap capture: error: cannot write the report {args.report}: "
                  f"{exc.strerror or exc} (no partial report is left); the page file "
                  f"{report.output} is complete and kept", file=sys.stderr)
            return 1
    size = os.path.getsize(report.output)
    print(
        f"captured {report.pages} pages ({report.pages * PAGE_SIZE / 2**20:.1f} MiB, "
        f"{size / 2**20:.2f} MiB on disk) from {len(report.pids)} process(es) of "
        f"{shlex.join(report.command)!r}\n"
        f"  paused by {report.trigger} after {report.waited_s:.2f} s at RSS "
        f"{report.rss_kb / 1024:.1f} MB; {report.mappings} mappings, {report.anon_pages} "
        f"present anonymous pages, {report.swapped_pages} swapped out, "
        f"{report.unreadable_pages} unreadable\n"
        + (f"  skipped {report.zero_page_skipped} mapping(s) of the shared zero page and "
           f"{report.shared_duplicates_skipped} page(s) shared with a process already copied\n"
           if report.pfns_visible else
           "  page frame numbers hidden (not root): zero-page mappings and pages shared after "
           "fork could not be told apart and are included\n")
        + f"  zero-filled {report.zero_share:.1%}, same-filled {report.same_filled_share:.1%} "
        f"(incl. zero) -> {report.output}"
    )
    return 0
