"""With --repeat > 1 a row never mixes passes: the figures that must agree with each other
come from one pass (``reported_pass``), and the modelled wall time is derived from the
reported figures, so the † note's identity holds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload

PAGE = 4096


def _pool_agrees(r: dict[str, Any]) -> None:
    peak = r["pool_peak_pages"]
    assert r["pool_bytes"] == peak * PAGE
    assert r["counters"]["pool_peak_pages"] == peak
    assert r["counters"]["compressed_bytes_at_peak"] == r["compressed_bytes_at_peak"]
    assert r["pool_density"] == pytest.approx(r["compressed_bytes_at_peak"] / (peak * PAGE),
                                              abs=1e-4)
    lim = r["pool_limit_pages"]
    assert r["pool_overshoot_pages"] == (max(0, peak - lim) if lim else 0)


@pytest.fixture(scope="module")
def pressure_row() -> dict[str, Any]:
    """One real pass of lz4 under pressure (a pool limit, writeback)."""
    wl = build_workload("pressure", load_bundled(max_pages=256), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="reclaim", warm_up=False))
    (r,) = doc["results"]
    return r


def _pass(row: dict[str, Any], peak: int, at_peak: int, written: int) -> dict[str, Any]:
    """A copy of a real pass whose pool peaked at ``peak`` pages holding ``at_peak`` bytes."""
    p = copy.deepcopy(row)
    lim = p["pool_limit_pages"]
    p["pool_peak_pages"] = p["counters"]["pool_peak_pages"] = peak
    p["compressed_bytes_at_peak"] = p["counters"]["compressed_bytes_at_peak"] = at_peak
    p["pool_bytes"] = peak * PAGE
    p["pool_density"] = round(at_peak / (peak * PAGE), 4)
    p["pool_overshoot_pages"] = max(0, peak - lim) if lim else 0
    p["pool_overshoot"] = bool(lim and peak > lim)
    p["written_back_pages"] = p["counters"]["written_back_pages"] = written
    return p


def test_pool_figures_come_from_the_pass_whose_peak_is_reported(
        pressure_row: dict[str, Any]) -> None:
    """The highest peak in the middle pass, the last pass lower: every pool figure, and the
    counters, are the middle pass's (bench_mixed.json had a peak of 560 with 546 pages of
    pool_bytes)."""
    r = pressure_row
    peak = r["pool_peak_pages"]
    passes = [_pass(r, peak, 1000 * peak, 7), _pass(r, peak + 14, 1100 * peak, 9),
              _pass(r, peak, 1200 * peak, 11)]
    out = runner._combine(passes)
    assert out["reported_pass"] == 2
    assert out["pool_peak_pages"] == peak + 14
    _pool_agrees(out)
    assert out["written_back_pages"] == out["counters"]["written_back_pages"] == 9
    assert isinstance(out["reported_pass"], int)


def test_equal_peaks_report_the_last_pass(pressure_row: dict[str, Any]) -> None:
    r = pressure_row
    peak = r["pool_peak_pages"]
    out = runner._combine([_pass(r, peak, 900 * peak, 1), _pass(r, peak, 950 * peak, 2)])
    assert out["reported_pass"] == 2 and out["written_back_pages"] == 2
    _pool_agrees(out)


def test_real_repeated_row_agrees_with_itself() -> None:
    """A real --repeat 3 run under pressure: the pool figures and counters agree."""
    wl = build_workload("pressure", load_bundled(max_pages=256), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="async", repeat=3, warm_up=False))
    (r,) = doc["results"]
    assert r["repeat"] == 3 and 1 <= r["reported_pass"] <= 3
    _pool_agrees(r)
    assert r["written_back_pages"] == r["counters"]["written_back_pages"]
    assert r["swap_reads"] == r["counters"]["pswpin"]


def _identity(r: dict[str, Any]) -> float:
    return (r["wall_us_per_page"] - r["emulation_us_per_page"]
            + r["device_overlap"]["waited_us_per_page"])


@pytest.fixture(scope="module")
def modelled_row() -> dict[str, Any]:
    wl = build_workload("roundtrip", load_bundled(max_pages=128), seed=0)
    doc = run_bench(wl, BenchRun(backends=["842-nx"], batching="reclaim", warm_up=False))
    (r,) = doc["results"]
    assert r["modeled_wall_us_per_page"] is not None, r
    return r


def test_modelled_wall_identity_holds_across_passes(modelled_row: dict[str, Any]) -> None:
    """Medians of wall, emulation and modelled wall taken apart come from different passes;
    the reported modelled wall is wall − emulation + waited of the reported figures."""
    r = modelled_row
    assert r["modeled_wall_us_per_page"] == pytest.approx(_identity(r), abs=0.002)
    a, b, c = (copy.deepcopy(r) for _ in range(3))
    # per pass: (wall, emulation, modelled wall with that pass's own wait of 1.0)
    for p, (wall, emu) in zip((a, b, c), ((10.0, 2.0), (12.0, 7.0), (20.0, 3.0))):
        p["wall_us_per_page"], p["emulation_us_per_page"] = wall, emu
        p["device_overlap"] = {**p["device_overlap"], "waited_us_per_page": 1.0}
        p["modeled_wall_us_per_page"] = wall - emu + 1.0
    out = runner._combine([a, b, c])
    # medians: wall 12, emulation 3; the passes' own modelled walls were 9, 6, 18 (median 9)
    assert out["wall_us_per_page"] == 12.0 and out["emulation_us_per_page"] == 3.0
    assert out["modeled_wall_us_per_page"] == pytest.approx(_identity(out)) == 10.0


def test_real_repeated_modelled_row_keeps_the_identity() -> None:
    wl = build_workload("roundtrip", load_bundled(max_pages=128), seed=0)
    doc = run_bench(wl, BenchRun(backends=["842-nx"], batching="reclaim", repeat=3,
                                 warm_up=False))
    (r,) = doc["results"]
    assert r["modeled_wall_us_per_page"] is not None
    assert r["modeled_wall_us_per_page"] == pytest.approx(_identity(r), abs=0.002)
