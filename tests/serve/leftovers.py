"""What a serve test can leave on the machine (swap and loop devices, mounts, hwzswap cgroups,
state files), found and removed: the ``state_dir`` fixture's checks (``conftest.py``), in a
module of their own so that tests can import them (``conftest`` is not a unique module name
across the test packages)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

from hwzswap.serve import chain
from hwzswap.serve.cgroup import CgroupError, MemoryCgroup, cgroup_of
from hwzswap.serve.fuse import umount


def loops_backed_under(root: Path) -> set[str]:
    """Loop devices whose backing file lies under ``root`` (as losetup names it: a file
    whose FUSE mount is gone still shows its old path), as 'DEVICE on FILE'."""
    out = subprocess.run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {f"{dev['name']} on {dev['back-file']}"
            for dev in json.loads(out or '{"loopdevices": []}')["loopdevices"]
            if str(dev.get("back-file") or "").startswith(f"{root}/")}


def hwzswap_cgroups() -> set[str]:
    """The hwzswap cgroups (``run``'s, the tests' own) beside this process: children of its
    memory cgroup, where :meth:`MemoryCgroup.create` makes them. None on a host without a
    memory cgroup (none can be made there: only the tests that make one fail there)."""
    try:
        parent = cgroup_of("self")[1]
        return {str(p) for p in parent.iterdir()
                if p.is_dir() and p.name.startswith("hwzswap")}
    except (CgroupError, OSError):
        return set()


def held(lock: Path) -> bool:
    """Whether some process holds the flock of ``lock`` (a chain's or the setup lock)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def state_left(d: Path) -> list[str]:
    """What is left in the state directory ``d`` besides server logs (kept by design after a
    failure, and moved aside by the next ``swap on``) and lock files no one holds (a holder
    that was SIGKILLed could not remove its file; the next taker reuses it)."""
    if not d.exists():
        return []
    left = []
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_file() and not p.is_symlink() and p.parent == d and (
                p.suffix == ".log" or (p.suffix == ".lock" and not held(p))):
            continue
        left.append(rel)
    return left


def mount_points_under(d: Path) -> list[str]:
    """Mount points at or under ``d`` (``/proc/self/mountinfo``), deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mnt = chain._mountinfo_path(fields[4]) if len(fields) > 4 else ""
        if mnt == str(d) or mnt.startswith(f"{d}/"):
            found.append(mnt)
    return sorted(found, key=len, reverse=True)


def remove_leftovers(d: Path, tmp_path: Path, swaps: set[str], cgroups: set[str]) -> list[str]:
    """Remove what a test left behind, found by the state_dir fixture: so that the test
    fails without leaving it on the machine, where it would hide in the next test's before
    and after (a cgroup, a swap device there before that test are not counted as its own).
    In the order the chain is undone: what runs in the cgroups (killed, the cgroups removed,
    before the swapoff that would read their pages back into them), the kernel's zswap
    parameters an owner record holds, the swap devices, the loop devices, the mounts, the
    state directory. What could not be removed."""
    failed: list[str] = []

    def attempt(what: str, fn: object, *args: object) -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - the rest still goes
            failed.append(f"{what}: {type(exc).__name__}: {exc}")

    def run(*cmd: str) -> None:
        subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    for path in sorted(cgroups):
        attempt(f"cgroup {path}", MemoryCgroup("", Path(path), 0).remove)
    if d.is_dir():
        for rec in sorted(d.glob("*.owner")):
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(rec.read_text())
                if isinstance(saved, dict):
                    attempt(f"zswap parameters of {rec}", chain.undo_owner,
                            {"zswap": saved.get("zswap")})
    for dev in sorted(swaps):
        attempt(f"swapoff {dev}", run, "swapoff", dev)
    for entry in sorted(loops_backed_under(tmp_path)):
        attempt(f"losetup -d {entry}", run, "losetup", "-d", entry.split(" on ", 1)[0])
    for mnt in mount_points_under(d):
        conn = chain._fuse_conn_of(mnt)
        if conn is not None:  # a mount whose server is gone answers nothing until aborted
            with contextlib.suppress(OSError):
                Path(f"/sys/fs/fuse/connections/{conn}/abort").write_text("1")
        attempt(f"umount {mnt}", umount, mnt)
    if d.exists() and not mount_points_under(d):
        attempt(f"rm -r {d}", shutil.rmtree, d)
    return failed
