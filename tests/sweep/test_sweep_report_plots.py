"""The sweep's plots say which run each mark is: ``throughput_vs_ratio.png`` labels every
point with its engine mode and settings (a backend's runs were unlabelled dots of one colour),
and ``speedup_vs_lz4.png`` draws linear bars labelled with their value (on a log axis a 0.85x
bar looked a third of the baseline)."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.report import (
    MODE_MARKERS,
    point_label,
    speedup_figure,
    speedups,
    throughput_vs_ratio_figure,
)
from hwzswap.sweep.spec import load_sweep

from sweep_helpers import write_sweep


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("plots")
    spec = load_sweep(write_sweep(d, {
        "axes": {"backend": ["lz4", "zstd"], "batching": ["page", "reclaim"],
                 "params.acceleration": [1, 4]},
        "fixed": {"workload": "roundtrip", "pages": 32, "repeat": 1}}))
    out = run_sweep(spec, expand(spec), d / "out", timeout=300, plots=False).doc
    assert out["runs"]["ok"] == 6, [r.get("reason") for r in out["records"]]
    return out


def test_every_point_is_labelled_with_its_mode_and_settings(doc: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    labels = sorted(point_label(r) for r in doc["records"])
    assert labels == sorted(["page, acceleration=1", "page, acceleration=4",
                             "reclaim, acceleration=1", "reclaim, acceleration=4",
                             "page", "reclaim"])  # zstd takes no acceleration
    fig = throughput_vs_ratio_figure(doc)
    try:
        for ax in fig.axes:
            if not ax.collections:
                continue
            assert sorted(t.get_text() for t in ax.texts) == labels
            assert "engine mode" in ax.get_title()
        legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
        assert {"lz4", "zstd", "page", "reclaim"} <= set(legend)
        markers = {c.get_paths()[0].vertices.shape[0] for c in fig.axes[0].collections}
        assert len(markers) == 2  # page and reclaim drawn with different markers
        assert MODE_MARKERS["page"] != MODE_MARKERS["reclaim"]
    finally:
        plt.close(fig)


def test_speedup_bars_are_linear_and_labelled(doc: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    sp = speedups(doc)
    assert set(sp) == {"page", "reclaim"} and set(sp["page"]) == {"zstd"}
    fig = speedup_figure(doc)
    try:
        for ax, what in zip(fig.axes, ("store", "load")):
            assert ax.get_yscale() == "linear"
            heights = [p.get_height() for p in ax.patches]
            assert heights == pytest.approx([sp[m]["zstd"][what] for m in ("page", "reclaim")])
            assert [t.get_text() for t in ax.texts] == [f"{h:.2f}×" for h in heights]
            assert ax.get_ylim()[0] == 0
    finally:
        plt.close(fig)
