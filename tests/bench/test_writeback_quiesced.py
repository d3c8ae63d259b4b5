"""The background writeback worker is at rest while the codec alone is timed: its work is
the stack's (in the stack's chunk timings, ``wall_us_per_page``), never beside a raw chunk."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.frontswap.zswap import ZswapCache


def test_no_background_writeback_during_raw_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/pressure.yaml's setting: every page the worker writes back is written while
    the stack is timed; none while a raw chunk runs (176 of 1280 were, before)."""
    calls: list[tuple[float, float, int]] = []
    raw: list[tuple[float, float]] = []
    shrink, raw_chunk = ZswapCache.shrink, runner._raw_chunk_counted

    def timed_shrink(self: ZswapCache, *a: Any, **k: Any) -> int:
        t0 = time.perf_counter()
        n = shrink(self, *a, **k)
        if threading.current_thread().name == "zswap-writeback":
            calls.append((t0, time.perf_counter(), n))
        return n

    def timed_raw(*a: Any, **k: Any) -> None:
        t0 = time.perf_counter()
        raw_chunk(*a, **k)
        raw.append((t0, time.perf_counter()))

    monkeypatch.setattr(ZswapCache, "shrink", timed_shrink)
    monkeypatch.setattr(runner, "_raw_chunk_counted", timed_raw)
    wl = build_workload("pressure", load_bundled(max_pages=2048), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="reclaim", warm_up=False, config={
        "zswap": {"max_pool_percent": 2, "accept_threshold_percent": 90,
                  "background_writeback": True},
        "memory": {"total_ram_mb": 64}}))
    (r,) = doc["results"]
    assert r["mismatches"] == 0 and r["written_back_pages"] > 0
    assert raw and calls, "no raw chunk or no background round ran"
    beside = [(a, b, n) for a, b, n in calls if n and any(a < y and x < b for x, y in raw)]
    assert beside == [], f"{sum(n for *_, n in beside)} pages written back beside raw chunks"


def test_quiesce_waits_for_the_workers_batch_in_flight(writeback_in_flight: Any) -> None:
    """The worker is held inside its swap write, a batch in flight: quiesce_writeback returns
    only once that batch is done and the pool is at or under the accept threshold."""
    system, release, timer = writeback_in_flight
    cache = system.zswap
    assert cache.outstanding_writebacks > 0
    timer.start()
    runner.quiesce_writeback(cache)
    assert release.is_set()  # it waited for the worker's write
    assert cache.outstanding_writebacks == 0
    assert cache.pool_pages <= cache.accept_pages
