"""Fixtures for the real chain: a private state directory, a small engine config, and a check
after every test that nothing it set up is left (swap, loop device, mount, cgroup, state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.serve import chain


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Chains of this test live under tmp_path; every one is torn down afterwards, and the
    test fails if anything of it survives."""
    d = tmp_path / "state"
    monkeypatch.setenv("HWZSWAP_STATE_DIR", str(d))
    monkeypatch.setattr(chain, "STATE_DIR", d)
    swaps_before = set(chain.active_swaps())
    try:
        yield d
    finally:
        left = []
        for st in sorted(d.glob("*.json")) if d.exists() else []:
            try:
                chain.swap_off(st.stem, timeout=30, force=True)
            except Exception as exc:  # noqa: BLE001 - report after trying them all
                left.append(f"{st.stem}: {exc}")
        new_swaps = set(chain.active_swaps()) - swaps_before
        mounts = [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                  if str(d) in ln]
        assert not left and not new_swaps and not mounts, (left, new_swaps, mounts)
