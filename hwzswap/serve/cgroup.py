"""Memory cgroups: a fresh, limited one for the program under test (v1 or v2), and the check
that the swap server itself is in no limited one.

The one rule that keeps the chain safe: the server must never be charged to a memory-limited
cgroup. If reclaim in that cgroup needed the server's own memory, the server would wait in
reclaim for I/O that only it can complete (issue 14 saw exactly that deadlock).

cgroup v1: the memory controller's hierarchy (``/sys/fs/cgroup/memory``); the limit is
``memory.limit_in_bytes``, swap use ``memory.memsw.*`` where swap accounting is on. cgroup v2:
a unified hierarchy with the memory controller enabled; the limit is ``memory.max``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from hwzswap.errors import HwzswapError

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
_UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded LONG_MAX


class CgroupError(HwzswapError):
    """A memory cgroup could not be found, created, used or removed."""


def _v2_root() -> Path | None:
    for root in V2_ROOTS:
        ctl = root / "cgroup.controllers"
        try:
            if "memory" in ctl.read_text().split():
                return root
        except OSError:
            continue
    return None


def memory_hierarchy() -> tuple[str, Path]:
    """``("v1", root)`` or ``("v2", root)``: where the memory controller is mounted."""
    if (V1_ROOT / "memory.limit_in_bytes").exists() or (V1_ROOT / "cgroup.procs").exists():
        return "v1", V1_ROOT
    root = _v2_root()
    if root is not None:
        return "v2", root
    raise CgroupError("no memory cgroup controller is mounted (neither v1 at "
                      f"{V1_ROOT} nor v2 with 'memory' in cgroup.controllers)")


def cgroup_of(pid: int | str = "self") -> tuple[str, Path]:
    """The memory cgroup directory of ``pid``."""
    kind, root = memory_hierarchy()
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError as exc:
        raise CgroupError(f"cannot read /proc/{pid}/cgroup: {exc.strerror}") from None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if (kind == "v1" and "memory" in ctrls.split(",")) or (kind == "v2" and ctrls == ""):
            return kind, root / path.lstrip("/")
    raise CgroupError(f"/proc/{pid}/cgroup names no memory cgroup")


def _limit(kind: str, d: Path) -> int | None:
    names = ("memory.limit_in_bytes",) if kind == "v1" else ("memory.max", "memory.high")
    for name in names:
        try:
            raw = (d / name).read_text().strip()
        except OSError:
            continue
        if raw == "max":
            continue
        val = int(raw)
        if val < _UNLIMITED:
            return val
    return None


def limited_ancestor(pid: int | str = "self") -> tuple[Path, int] | None:
    """The nearest memory cgroup (``pid``'s own or an ancestor's) with a memory limit, and the
    limit in bytes; None when there is none."""
    kind, root = memory_hierarchy()
    _, d = cgroup_of(pid)
    while True:
        lim = _limit(kind, d)
        if lim is not None:
            return d, lim
        if d == root or root not in d.parents:
            return None
        d = d.parent


def parse_size(text: str) -> int:
    """``"64M"``, ``"1G"``, ``"65536"`` (bytes), ``"512K"`` -> bytes."""
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if s and s[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(s[-1]) + 1))
        s = s[:-1]
    try:
        val = float(s)
    except ValueError:
        raise CgroupError(f"not a size: {text!r} (use e.g. 64M, 1G or a byte count)") from None
    size = val * mult  # 1e308T overflows to inf here
    if not 0 < size <= MAX_SIZE or int(size) < 1:  # nan, inf: int() raised
        raise CgroupError(f"a size must be a finite number of at least one byte and at most "
                          f"1024T, got {text!r}")
    return int(size)


#: The largest size parse_size takes: far above any machine's memory, well inside an int64.
MAX_SIZE = float(1 << 50)


@dataclass
class MemoryCgroup:
    """A memory cgroup this process created (a child of its own), with a memory limit.

    Swap is left unlimited (the program must be able to swap). ``remove()`` kills what is
    still inside (only processes the caller put there) and removes the directory.
    """

    kind: str
    path: Path
    limit: int

    @classmethod
    def create(cls, name: str, limit: int, *, oom_kill: bool = True) -> MemoryCgroup:
        """A child of this process's memory cgroup, limited to ``limit`` bytes.

        ``oom_kill=False`` (cgroup v1 only: ``memory.oom_control``) makes a task that finds no
        reclaimable memory wait for some instead of being killed: with a slow swap device
        the memcg's reclaim gives up while pages are still under writeback, where a whole
        machine's reclaim (the seed's setting) would have waited."""
        kind, parent = cgroup_of("self")
        path = parent / name
        try:
            path.mkdir()
        except FileExistsError:
            raise CgroupError(f"{path} exists already (a leftover? rmdir it)") from None
        except OSError as exc:
            raise CgroupError(f"cannot create memory cgroup {path}: {exc.strerror} "
                              "(needs root)") from None
        cg = cls(kind, path, limit)
        try:
            if kind == "v1":
                (path / "memory.limit_in_bytes").write_text(str(limit))
                if not oom_kill:
                    (path / "memory.oom_control").write_text("1")
                sw = path / "memory.swappiness"
                if sw.exists():
                    sw.write_text("60")
            else:
                (path / "memory.max").write_text(str(limit))
                (path / "memory.swap.max").write_text("max")
        except OSError as exc:
            cg.remove()
            raise CgroupError(f"cannot set the memory limit of {path}: {exc.strerror}") from None
        except BaseException:  # Ctrl-C (`hwzswap run`'s stop signals): the caller has no cg
            cg.remove()
            raise
        return cg

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def stat(self) -> dict[str, int]:
        """``memory.stat`` as a dict (v1 and v2 name things differently)."""
        out: dict[str, int] = {}
        try:
            for line in (self.path / "memory.stat").read_text().splitlines():
                k, _, v = line.partition(" ")
                out[k] = int(v)
        except (OSError, ValueError):
            pass
        return out

    def read(self, name: str) -> int | None:
        try:
            raw = (self.path / name).read_text().strip()
        except OSError:
            return None
        return int(raw) if raw.lstrip("-").isdigit() else None

    def oom_kills(self) -> int | None:
        """Tasks the OOM killer killed in this cgroup: the ``oom_kill`` line of v1's
        ``memory.oom_control`` or v2's ``memory.events``; None where the kernel has none."""
        name = "memory.oom_control" if self.kind == "v1" else "memory.events"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def reclaim_all(self) -> None:
        """Reclaim every page still charged here, once its tasks have exited (v1
        ``memory.force_empty``, v2 ``memory.reclaim``; best effort). Swap-cache folios they
        left (a whole THP being read back as the task exited, say) hold their swap slots
        until reclaim takes them, so the slots are freed and discarded only then."""
        name, value = (("memory.force_empty", "0") if self.kind == "v1"
                       else ("memory.reclaim", str(1 << 40)))
        with contextlib.suppress(OSError):  # EAGAIN (v2): not all of it; EBUSY: tasks left
            (self.path / name).write_text(value)

    def kill(self) -> list[int]:
        """SIGKILL every process inside (only those the caller put there); their pids."""
        left = self.pids()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def remove(self, timeout: float = 10.0) -> None:
        """Kill what is left inside (SIGKILL), then rmdir. Raises when it will not go."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.kill()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {self.path}: {exc.strerror} "
                                      f"(processes left: {left})") from None
                time.sleep(0.05)


__all__ = ["CgroupError", "MemoryCgroup", "cgroup_of", "limited_ancestor", "memory_hierarchy",
           "parse_size"]
