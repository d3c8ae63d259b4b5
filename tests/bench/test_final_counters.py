"""A row's counters are read once nothing moves: the background writeback thread stopped and
async work drained, so they add up exactly (``pswpout`` = pages written back + the stores
zswap refused + writebacks that raced, nothing outstanding)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


def _adds_up(c: dict[str, Any]) -> None:
    """The counters' equations. A page refused when its async pass lands is counted in
    ``reject_*``, and not written if it was freed or stored again before its write
    (``async_write_skipped``)."""
    rejects = sum(v for k, v in c.items() if k.startswith("reject_"))
    assert c["outstanding_writebacks"] == 0 and c["staged_pages"] == 0, c
    written = (c["written_back_pages"] + rejects + c["writeback_raced"]
               - c["async_write_skipped"])
    assert c["pswpout"] == written, c
    assert c["stores"] == c["zswpout"] + rejects + c["staged_dropped"], c


def test_final_stats_waits_for_a_writeback_in_flight(writeback_in_flight: Any) -> None:
    """The background thread is held inside its device write (the swap file's ``io_hook``),
    so a writeback batch is in flight when the pass ends: ``stats()`` then shows it
    outstanding and ``pswpout`` behind, :func:`runner.final_stats` stops the thread first."""
    system, release, timer = writeback_in_flight
    early = system.stats()
    assert early["outstanding_writebacks"] > 0  # the window the bench used to read in
    timer.start()
    st = runner.final_stats(system)
    assert release.is_set()  # it waited for the write to finish
    assert st["written_back_pages"] > 0
    _adds_up(st)


@pytest.mark.parametrize("mode", ["reclaim", "async"])
def test_bench_counters_add_up_with_background_writeback(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/pressure.yaml's setting (a small pool, background writeback on): every pass's
    counters are read by :func:`runner.final_stats`, with the thread stopped, and add up
    exactly."""
    seen: list[dict[str, Any]] = []
    real = runner.final_stats

    def spy(system: Any) -> dict[str, Any]:
        st = real(system)
        assert system.zswap._background is None  # stopped before the counters were read
        seen.append(st)
        return st

    monkeypatch.setattr(runner, "final_stats", spy)
    wl = build_workload("pressure", load_bundled(max_pages=384), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching=mode, repeat=2, config={
        "zswap": {"max_pool_percent": 2, "background_writeback": True},
        "memory": {"total_ram_mb": 4}}))
    (r,) = doc["results"]
    assert r["written_back_pages"] > 0 and r["mismatches"] == 0
    assert len(seen) == 2 and seen[r["reported_pass"] - 1] == r["counters"]
    for st in seen:
        _adds_up(st)
    assert np.isfinite(r["store_pages_per_s"])
