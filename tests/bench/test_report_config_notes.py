"""The notes under the table say what the rows ran under: a null compression ratio and why,
the pool limit and where it came from, a ``swap.path`` the bench does not use, and the
throughputs with the modelled swap device's time (the table's pg/s are the host's alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import figure, markdown, rows
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


def _notes(doc: dict[str, Any]) -> list[str]:
    return [ln[2:] for ln in markdown(doc).splitlines() if ln.startswith("- ")]


def test_pool_limit_swap_path_and_swap_model_notes(tmp_path: Path) -> None:
    wl = build_workload("pressure", load_bundled(max_pages=64), seed=0)
    cfg = {"swap": {"model": "hdd", "path": str(tmp_path / "unused.swap")}}
    doc = run_bench(wl, BenchRun(backends=["lz4", "zstd"], config=cfg, warm_up=False))
    assert schema_problems(doc) == [] and len(doc["results"]) == 2
    notes = _notes(doc)
    for r in doc["results"]:
        assert any(n.startswith(r["pool_limit_note"]) and f"({r['backend']} (reclaim))" in n
                   for n in notes), r["pool_limit_note"]
    assert any(n.startswith("swap.path: ") and "unused.swap" in n for n in notes)
    (model,) = [n for n in notes if n.startswith("with the modelled swap device (hdd")]
    for r in doc["results"]:
        assert r["store_pages_per_s_with_swap_model"] < r["store_pages_per_s"]
        assert f"{r['backend']} (reclaim) " in model
    assert not (tmp_path / "unused.swap").exists()
    # one limit for every row (the config sets it): said once, for every row
    cfg = {"zswap": {"max_pool_percent": 5}, "memory": {"total_ram_mb": 4}}
    doc = run_bench(wl, BenchRun(backends=["lz4", "zstd"], config=cfg, warm_up=False))
    (limit,) = [n for n in _notes(doc) if n.startswith("pool limit ")]
    assert limit.endswith("(every row)")
    assert not any(n.startswith(("swap.path", "with the modelled")) for n in _notes(doc))


def test_a_null_ratio_is_n_a_in_the_table_the_notes_and_the_plot() -> None:
    """Every page same-filled: zswap keeps them as their word, nothing is compressed, and the
    ratio is 0 / 0."""
    import matplotlib.pyplot as plt

    pages = np.zeros((32, 4096), dtype=np.uint8)
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=["lz4"], warm_up=False))
    (r,) = doc["results"]
    assert r["ratio"] is None and r["ratio_note"]
    assert schema_problems(doc) == []
    assert rows(doc)[0][3] == "n/a"
    assert f"ratio n/a: lz4 (reclaim): {r['ratio_note']}" in _notes(doc)
    fig = figure(doc)
    try:
        (ax,) = [a for a in fig.axes if a.get_title().startswith("Compression ratio")]
        assert ax.patches[0].get_height() == 0
        assert [t.get_text() for t in ax.texts] == ["n/a"]
    finally:
        plt.close(fig)
