"""Fixtures for the real chain: a private state directory, a small engine config, and a check
after every test that nothing it set up is left (swap, loop device, mount, cgroup, state)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest

from hwzswap.serve import chain
from hwzswap.serve.cgroup import cgroup_of


def _loops_backed_under(root: Path) -> set[str]:
    """Loop devices whose backing file lies under ``root`` (as losetup names it: a file
    whose FUSE mount is gone still shows its old path), as 'DEVICE on FILE'."""
    out = subprocess.run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {f"{dev['name']} on {dev['back-file']}"
            for dev in json.loads(out or '{"loopdevices": []}')["loopdevices"]
            if str(dev.get("back-file") or "").startswith(f"{root}/")}


def _hwzswap_cgroups() -> set[str]:
    """The hwzswap cgroups (``run``'s, the tests' own) beside this process: children of its
    memory cgroup, where :meth:`MemoryCgroup.create` makes them."""
    parent = cgroup_of("self")[1]
    return {str(p) for p in parent.iterdir() if p.is_dir() and p.name.startswith("hwzswap")}


def _held(lock: Path) -> bool:
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


def _state_left(d: Path) -> list[str]:
    """What is left in the state directory ``d`` besides server logs (kept by design after a
    failure, and moved aside by the next ``swap on``) and lock files no one holds (a holder
    that was SIGKILLed could not remove its file; the next taker reuses it)."""
    if not d.exists():
        return []
    left = []
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_file() and not p.is_symlink() and p.parent == d and (
                p.suffix == ".log" or (p.suffix == ".lock" and not _held(p))):
            continue
        left.append(rel)
    return left


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Chains of this test live under tmp_path; every one is torn down afterwards, and the
    test fails if anything of it survives: a swap device, a loop device backed by a file
    under tmp_path, a mount under the state directory, an hwzswap cgroup that was not there
    before, or anything in the state directory but server logs and unheld lock files (state,
    socket, exit, owner and off records, mount points). Every chain the directory knows is
    swapped off first (``--force``), as a user would: that clears a record of a server that
    ended on its own."""
    d = tmp_path / "state"
    monkeypatch.setenv("HWZSWAP_STATE_DIR", str(d))
    monkeypatch.setattr(chain, "STATE_DIR", d)
    swaps_before = set(chain.active_swaps())
    cgroups_before = _hwzswap_cgroups()
    try:
        yield d
    finally:
        left = []
        for name in chain.chain_names():
            try:
                chain.swap_off(name, timeout=30, force=True)
            except Exception as exc:  # noqa: BLE001 - report after trying them all
                left.append(f"{name}: {exc}")
        new_swaps = set(chain.active_swaps()) - swaps_before
        mounts = [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                  if str(d) in ln]
        loops = _loops_backed_under(tmp_path)
        cgroups = _hwzswap_cgroups() - cgroups_before
        files = _state_left(d)
        assert not (left or new_swaps or mounts or loops or cgroups or files), dict(
            swap_off_failed=left, swaps=new_swaps, mounts=mounts, loops=loops,
            cgroups=cgroups, state_files=files)
