"""Fixtures for the real chain: a private state directory, a small engine config, and a check
after every test that nothing it set up is left (swap, loop device, mount, cgroup, state)."""

from __future__ import annotations

from pathlib import Path

import pytest
from leftovers import (
    hwzswap_cgroups,
    loops_backed_under,
    mount_points_under,
    remove_leftovers,
    state_left,
)

from hwzswap.serve import chain


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Chains of this test live under tmp_path; every one is torn down afterwards, and the
    test fails if anything of it survives: a swap device, a loop device backed by a file
    under tmp_path, a mount under the state directory, an hwzswap cgroup that was not there
    before, or anything in the state directory but server logs and unheld lock files (state,
    socket, exit, owner and off records, mount points). Every chain the directory knows is
    swapped off first (``--force``), as a user would: that clears a record of a server that
    ended on its own. What survives that is then removed (:func:`leftovers.remove_leftovers`) before
    the test fails, so that it is not left on the machine."""
    d = tmp_path / "state"
    monkeypatch.setenv("HWZSWAP_STATE_DIR", str(d))
    monkeypatch.setattr(chain, "STATE_DIR", d)
    swaps_before = set(chain.active_swaps())
    cgroups_before = hwzswap_cgroups()
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
        mounts = mount_points_under(d)
        loops = loops_backed_under(tmp_path)
        cgroups = hwzswap_cgroups() - cgroups_before
        files = state_left(d)
        found = dict(swap_off_failed=left, swaps=new_swaps, mounts=mounts, loops=loops,
                     cgroups=cgroups, state_files=files)
        if any(found.values()):
            found["not_removed"] = remove_leftovers(d, tmp_path, new_swaps, cgroups)
        assert not any(found.values()), found
