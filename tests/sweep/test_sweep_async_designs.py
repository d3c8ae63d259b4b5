"""A sweep names async mode's runs as the bench does, by the design each took
(``zswap.async_submit``: ``async/queue`` ops on the device's own queue, ``async/worker`` the
worker's batch calls; :func:`hwzswap.bench.report.engine_mode`), in its table, its plots and its
speed-ups: they said bare ``async``, so 842-nx's queue runs and lz4's worker runs looked alike.
A run whose design the device cannot take measured nothing: it stays ``not_applicable``, named
bare ``async`` as the bench's skipped row is."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.report import (
    MODE_MARKERS,
    engine_mode,
    markdown,
    point_label,
    speedup_figure,
    speedup_table,
    table_rows,
    throughput_vs_ratio_figure,
)
from hwzswap.sweep.spec import load_sweep

from sweep_helpers import write_sweep


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """lz4 (no op queue: auto is worker, queue is not applicable) and 842-nx (auto is queue),
    in page and async mode, six runs of 16 pages."""
    d = tmp_path_factory.mktemp("designs")
    spec = load_sweep(write_sweep(d, {
        "axes": {"backend": ["lz4", "842-nx"], "batching": ["page", "async"],
                 "zswap.async_submit": ["auto", "queue"]},
        "fixed": {"workload": "roundtrip", "pages": 16, "repeat": 1},
        "exclude": [{"batching": "page", "zswap.async_submit": "queue"}]}))
    out = run_sweep(spec, expand(spec), d / "out", timeout=300, plots=False).doc
    assert (out["runs"]["ok"], out["runs"]["failed"]) == (5, 1), [
        r.get("reason") for r in out["records"]]
    return out


def _run(doc: dict[str, Any], backend: str, mode: str, submit: str) -> dict[str, Any]:
    (rec,) = [r for r in doc["records"] if r["coords"] == {
        "backend": backend, "batching": mode, "zswap.async_submit": submit}]
    return rec


def test_each_run_is_named_by_the_design_it_took(doc: dict[str, Any]) -> None:
    assert engine_mode(_run(doc, "lz4", "page", "auto")) == "page"
    assert engine_mode(_run(doc, "lz4", "async", "auto")) == "async/worker"
    assert engine_mode(_run(doc, "842-nx", "async", "auto")) == "async/queue"
    assert engine_mode(_run(doc, "842-nx", "async", "queue")) == "async/queue"
    # the design the device cannot take: skipped by the bench, not applicable here, no design
    na = _run(doc, "lz4", "async", "queue")
    assert (na["status"], na["failure"]) == ("failed", "not_applicable"), na
    assert "zswap.async_submit[1]: queue needs an asynchronous device" in na["reason"]
    assert "async_submit" not in na and engine_mode(na) == "async"
    assert point_label(_run(doc, "842-nx", "async", "auto")) == (
        "async/queue, zswap.async_submit=auto")


def test_the_table_names_the_design(doc: dict[str, Any]) -> None:
    cols, sections = table_rows(doc, None)
    assert cols[:2] == ["batching", "zswap.async_submit"]
    cells = {g: [tuple(row[:3]) for row in rows] for g, rows in sections}
    assert cells == {
        "lz4": [("page", "auto", "ok"), ("async/worker", "auto", "ok"),
                ("async", "queue", "failed: not_applicable")],
        "842-nx": [("page", "auto", "ok"), ("async/queue", "auto", "ok"),
                   ("async/queue", "queue", "ok")]}
    # grouped by the engine mode: each design a group, in the axis's order
    _, sections = table_rows(doc, "batching")
    assert [g for g, _ in sections] == ["page", "async", "async/worker", "async/queue"]
    assert "## batching = async/queue" in markdown(doc, "batching")


def test_the_plots_and_speedups_name_the_design(doc: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    # 842-nx over lz4 run for run: page, and async with 842-nx's queue design (lz4's queue
    # run measured nothing)
    assert list(speedup_table(doc)) == ["page", "async/queue"]
    fig = speedup_figure(doc)
    try:
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["page", "async/queue"]
    finally:
        plt.close(fig)
    fig = throughput_vs_ratio_figure(doc)
    try:
        legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
        assert {"page", "async/queue", "async/worker"} <= set(legend)
        assert "async" not in legend
        assert MODE_MARKERS["async/queue"] != MODE_MARKERS["async/worker"]
    finally:
        plt.close(fig)


def test_a_fixed_async_mode_is_named_by_design_in_a_mode_column(tmp_path: Any) -> None:
    """batching fixed (not an axis): the table has a mode column, where async mode's runs
    show the design each backend took (the plots were the only place that said so)."""
    spec = load_sweep(write_sweep(tmp_path, {
        "axes": {"backend": ["lz4", "842-nx"]},
        "fixed": {"workload": "roundtrip", "pages": 16, "repeat": 1, "batching": "async"}}))
    out = run_sweep(spec, expand(spec), tmp_path / "out", timeout=300, plots=False).doc
    cols, sections = table_rows(out, None)  # (grouped by backend)
    assert cols[:2] == ["mode", "status"]
    rows = {g: [row[:2] for row in rs] for g, rs in sections}
    assert rows == {"lz4": [["async/worker", "ok"]], "842-nx": [["async/queue", "ok"]]}
    assert "| async/worker | ok |" in markdown(out, None)
