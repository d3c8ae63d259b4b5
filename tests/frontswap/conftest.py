"""Fixtures for the zswap engine tests: real swap systems on swap files in tmp_path."""

from __future__ import annotations

import pytest

from hwzswap.frontswap.system import SwapSystem, open_zswap

from fsutil import config


@pytest.fixture
def make_system(tmp_path):
    """``make_system(zswap={...}, memory={...}, pool={...}, swap={...}, backend=None)``."""
    made: list[SwapSystem] = []

    def make(backend=None, **sections) -> SwapSystem:
        cfg = config(tmp_path, f"swap{len(made)}.img", **sections)
        system = open_zswap(cfg, backend=backend)
        made.append(system)
        return system

    yield make
    for system in made:
        system.close()
