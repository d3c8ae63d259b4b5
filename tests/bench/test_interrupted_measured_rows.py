"""An interrupted run's document has ``measured_rows`` like a whole run's: the rows that
finished before Ctrl-C (it lacked the key, so a script reading it failed on partial runs)."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.bench.cli import mark_interrupted
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchInterrupted, BenchRun, run_bench
from hwzswap.bench.workload import build_workload


def test_run_bench_interrupted_after_a_row_counts_it() -> None:
    """Ctrl-C (a real KeyboardInterrupt, raised as the first row is handed over): the
    partial document says one row was measured."""
    rows: list[dict[str, Any]] = []

    def on_result(res: dict[str, Any]) -> None:
        rows.append(res)
        raise KeyboardInterrupt

    wl = build_workload("roundtrip", load_bundled(max_pages=32), seed=0)
    with pytest.raises(BenchInterrupted) as info:
        run_bench(wl, BenchRun(backends=["lz4", "zstd"], batching="page,reclaim",
                               warm_up=False, on_result=on_result))
    doc = info.value.document
    assert len(rows) == 1 and doc["measured_rows"] == len(doc["results"]) == 1
    marked = mark_interrupted(doc, planned=4)
    assert marked["measured_rows"] == 1 and marked["interrupted"] is True
    assert schema_problems(marked) == []


def test_mark_interrupted_sets_measured_rows() -> None:
    """The CLI's marking sets it whatever document it is handed."""
    wl = build_workload("roundtrip", load_bundled(max_pages=16), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="reclaim", warm_up=False))
    del doc["measured_rows"]
    assert mark_interrupted(doc, planned=3)["measured_rows"] == 1
