"""The PNG's panels plot what their titles say: the time-per-page panel holds wall time per
page (the figure docs/bench.md names for comparing engine modes), and an ``async`` row's store
"latency" is marked as submission time."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import figure, plot
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    wl = build_workload("roundtrip", load_bundled(max_pages=64), seed=0)
    out = run_bench(wl, BenchRun(backends=["lz4", "842-nx"], batching="page,async",
                                 warm_up=False))
    assert not out["failed"] and len(out["results"]) == 4
    return out


def _panel(fig: Any, title: str) -> Any:
    (ax,) = [a for a in fig.axes if a.get_title().startswith(title)]
    return ax


def _series(ax: Any, label: str, n: int) -> list[float]:
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    k = labels.index(label)
    return [p.get_height() for p in ax.patches[k * n:(k + 1) * n]]


def test_time_panel_plots_wall_time_per_page(doc: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig = figure(doc)
    try:
        ax = _panel(fig, "Time per page stored or loaded")
        assert "wall time compares engine modes" in ax.get_title()
        res = doc["results"]
        n = len(res)
        assert _series(ax, "wall (all of the stack's time)", n) == pytest.approx(
            [r["wall_us_per_page"] for r in res])
        assert _series(ax, "host CPU", n) == pytest.approx(
            [r["host_cpu_us_per_page"] or 0.0 for r in res])
        assert _series(ax, "modelled device", n) == pytest.approx(
            [r["device_us_per_page"] or 0.0 for r in res])
        assert all(r["wall_us_per_page"] > 0 for r in res)
    finally:
        plt.close(fig)


def test_async_store_latency_is_labelled_submission_time(doc: dict[str, Any],
                                                         tmp_path: Any) -> None:
    import matplotlib.pyplot as plt

    fig = figure(doc)
    try:
        ax = _panel(fig, "Store time per page (call ÷ pages")
        assert "async (label submit): submission time, not latency" in ax.get_title()
        marks = [t for t in ax.texts if t.get_text() == "submit"]
        async_at = [i for i, r in enumerate(doc["results"]) if r["batching"] == "async"]
        assert sorted(round(t.xy[0]) for t in marks) == async_at
    finally:
        plt.close(fig)
    sync = dict(doc, results=[r for r in doc["results"] if r["batching"] == "page"])
    fig = figure(sync)
    try:
        ax = _panel(fig, "Store time per page (call ÷ pages")
        assert "submission" not in ax.get_title() and not ax.texts
    finally:
        plt.close(fig)
    assert plot(doc, tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_a_row_whose_device_figures_are_void_plots_no_device_bar(doc: dict[str, Any]) -> None:
    """A row with a ``device_figures_note`` (its device timed out or was marked failed) shows
    n/a in the table; the plot draws no modelled-device bar for it and labels its group."""
    import copy

    import matplotlib.pyplot as plt

    hung = copy.deepcopy(doc)
    k = next(i for i, r in enumerate(hung["results"]) if r["device_us_per_page"])
    hung["results"][k]["device_us_per_page"] = 107_424.0  # the deadlines, not the device
    hung["results"][k]["device_figures_note"] = "3 of the stack's device requests timed out"
    fig = figure(hung)
    try:
        ax = _panel(fig, "Time per page stored or loaded")
        n = len(hung["results"])
        bars = _series(ax, "modelled device", n)
        assert bars[k] == 0.0 and max(bars) < 1000
        assert [round(t.xy[0]) for t in ax.texts if t.get_text() == "device n/a"] == [k]
    finally:
        plt.close(fig)
