"""Fixtures of the sweep tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.spec import load_sweep
from sweep_helpers import SMALL_SWEEP, write_sweep


@pytest.fixture
def small_sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, SMALL_SWEEP)


@pytest.fixture(scope="session")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The small sweep, run once locally (two runs at a time) for every test that needs it."""
    d = tmp_path_factory.mktemp("local")
    spec = load_sweep(write_sweep(d, SMALL_SWEEP))
    plan = expand(spec)
    outcome = run_sweep(spec, plan, d / "out", jobs=2, timeout=300)
    return {"spec": spec, "plan": plan, "outcome": outcome, "out": d / "out"}
