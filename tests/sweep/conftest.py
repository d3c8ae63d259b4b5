"""Fixtures of the sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweep_helpers import SMALL_SWEEP, write_sweep


@pytest.fixture
def small_sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, SMALL_SWEEP)
