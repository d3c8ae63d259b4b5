"""``device_overlap`` of a modelled device: the share of the device's busy time (a union over
its engines) that overlapped the host's own work. It was ``1 - waited / busy`` with busy
summed over the engines, which made batches "hide" 1 - 1/engines of the device's time
(engine parallelism, not overlap) whatever the host did. The driver now accounts for it
(``device_busy_union_us``, ``device_exposed_us``); the runner only divides."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=96)


def _rows(pages: np.ndarray, clock: str, engines: int, modes: str) -> dict[str, dict[str, Any]]:
    cfg = {"zswap": {"compressor": {"name": "842-nx",
                                    "params": {"clock": clock, "engines": engines}}}}
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=["842-nx"], config=cfg, batching=modes, warm_up=False))
    assert not doc["failed"], doc["failed"]
    return {r["batching"]: r for r in doc["results"]}


def _check_division(r: dict[str, Any]) -> None:
    """The row's figures are the driver's counters over the stack's chunks, divided."""
    ov, bc = r["device_overlap"], r["backend_counters"]
    moves = r["pages"] + r["store_pages"]
    assert ov["busy_union_us_per_page"] == pytest.approx(
        bc["device_busy_union_us"] / moves, abs=1e-3)
    assert ov["exposed_us_per_page"] == pytest.approx(bc["device_exposed_us"] / moves, abs=1e-3)
    assert ov["exposed_parked_us_per_page"] == pytest.approx(
        bc["device_exposed_parked_us"] / moves, abs=1e-3)
    if r["batching"] != "async":  # no other thread feeds the device: never parked for it
        assert ov["exposed_parked_us_per_page"] == 0.0
    assert ov["engine_parallelism"] == pytest.approx(
        bc["device_us"] / bc["device_busy_union_us"], abs=1e-3)
    assert ov["exposed_us_per_page"] <= ov["busy_union_us_per_page"] <= ov["busy_us_per_page"]


@pytest.mark.parametrize("engines", [1, 2])
def test_host_clock_sync_modes_hide_nothing_whatever_the_engines(pages: np.ndarray,
                                                                 engines: int) -> None:
    """Page and reclaim mode wait for every request they make: 0 hidden with one engine or
    two (the old figure gave reclaim 1 - 1/engines); the engines' parallelism is shown apart."""
    rows = _rows(pages, "host", engines, "page,reclaim,async")
    for mode, r in rows.items():
        assert r["verified_pages"] == r["pages"]
        ov = r["device_overlap"]
        assert ov["clock"] == "host" and ov["hidden_note"] is None
        _check_division(r)
        if mode != "async":
            assert ov["hidden_share"] == 0.0, mode
        else:
            assert 0.0 <= ov["hidden_share"] <= 1.0
    if engines == 2:
        # reclaim batches keep both engines busy at once as far as the host submits faster
        # than an engine works; on the host clock a slow (loaded) host can leave it near 1
        assert rows["reclaim"]["device_overlap"]["engine_parallelism"] >= 1.0
    else:
        assert rows["reclaim"]["device_overlap"]["engine_parallelism"] == pytest.approx(1.0)


def test_virtual_clock_reports_zero_with_a_note(pages: np.ndarray) -> None:
    """On the virtual clock host work takes no model time: nothing can overlap it, so the
    share is 0 by construction and the row says why (use clock: host)."""
    rows = _rows(pages, "virtual", 2, "reclaim,async")
    for r in rows.values():
        ov = r["device_overlap"]
        assert ov["hidden_share"] == 0.0
        assert "clock virtual" in ov["hidden_note"] and "'host'" in ov["hidden_note"]
        _check_division(r)
        # every move of this clock is a wait: what it waited is the union it passed
        assert ov["waited_us_per_page"] == pytest.approx(ov["busy_union_us_per_page"], abs=2e-3)
    # with no host time between submissions, a reclaim batch keeps both engines busy at
    # once: the parallelism the old figure took for overlap, now shown apart
    assert rows["reclaim"]["device_overlap"]["engine_parallelism"] > 1.5
