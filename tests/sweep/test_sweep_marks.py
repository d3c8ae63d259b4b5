"""The sweep's table and plots carry the bench's own marks: a modelled device's throughput
(``†``: host wall time, its emulation included), a ``vs raw`` the bench gives as ``n/a`` (loads
read from the swap file), and so on. A review found ``speedup_vs_lz4.png`` saying 842-nx stores
at 0.25x lz4 and ``table.md`` showing load pages/s unmarked where the bench marked them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hwzswap.bench import report as bench_report
from hwzswap.bench.marks import MODELLED, UNLIKE, figure_marks
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.plan import expand
from hwzswap.sweep.report import (
    markdown,
    speedup_figure,
    speedup_table,
    speedups,
    table_rows,
    throughput_vs_ratio_figure,
)
from hwzswap.sweep.spec import load_sweep

from sweep_helpers import write_sweep


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """lz4, zstd and the emulated 842-nx under ``pressure`` (its loads mostly read back from
    the swap file), one engine mode: three runs of a second or two."""
    d = tmp_path_factory.mktemp("marks")
    spec = load_sweep(write_sweep(d, {
        "axes": {"backend": ["lz4", "zstd", "842-nx"]},
        "fixed": {"workload": "pressure", "pages": 128, "repeat": 1, "batching": "reclaim"}}))
    out = run_sweep(spec, expand(spec), d / "out", timeout=300)
    doc = out.doc
    assert doc["runs"]["ok"] == 3, [r.get("reason") for r in doc["records"]]
    return {"doc": doc, "out": d / "out"}


def _by(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["backend"]: r for r in doc["records"]}


def test_table_cells_carry_the_bench_marks(swept: dict[str, Any]) -> None:
    doc = swept["doc"]
    cols, sections = table_rows(doc, "backend")
    rows = {group: dict(zip(cols, rows[0])) for group, rows in sections}
    recs = _by(doc)
    # the same row through the bench's own table: the same cells
    bench = {r[0]: r for r in bench_report.rows({"results": doc["records"]})}
    for name, rec in recs.items():
        row = rows[name]
        assert row["store pg/s"].split(" ", 1)[1:] == bench[name][5].split(" ", 1)[1:]
        assert row["load pg/s"].split(" ", 1)[1:] == bench[name][8].split(" ", 1)[1:]
        assert (row["load vs raw"] == "n/a") is bool(rec.get("load_vs_raw_note"))
        assert bench[name][10] == row["load vs raw"] or row["load vs raw"] != "n/a"
        assert row["store vs raw"] == bench[name][7].replace("x", "")  # figure, marks (†, ?)
    assert rows["842-nx"]["store vs raw"].endswith(" †")  # emulation against emulation
    assert not rows["lz4"]["store vs raw"].endswith("†")
    assert rows["842-nx"]["store pg/s"].endswith(" †")
    assert "†" in rows["842-nx"]["load pg/s"].split()[1:]  # with § (swap-file loads) after it
    assert not rows["lz4"]["store pg/s"].endswith("†")
    # pressure at 128 pages reads most loads back from the swap file: the bench's n/a
    assert any(rec.get("load_vs_raw_note") for rec in recs.values())
    md = markdown(doc, None)
    assert "## Marks" in md
    assert "† modelled device" in md and recs["842-nx"]["run_id"] in md
    assert "n/a vs raw" in md


def test_speedups_leave_out_what_the_bench_marks(swept: dict[str, Any]) -> None:
    doc = swept["doc"]
    recs = _by(doc)
    table = speedup_table(doc)["reclaim"]
    nx = table["842-nx"]["store"]
    assert MODELLED.label in nx.marks  # its figure is host wall time, emulation included
    assert "842-nx" not in speedups(doc).get("reclaim", {})  # no valid figure of it
    zstd = table["zstd"]["load"]
    load_marked = figure_marks(recs["zstd"], "load") or figure_marks(recs["lz4"], "load")
    assert bool(zstd.marks) is bool(load_marked)
    if UNLIKE in figure_marks(recs["lz4"], "load"):
        assert any("n/a vs raw" in m for m in zstd.marks)
        assert "load" not in speedups(doc).get("reclaim", {}).get("zstd", {})
    # zstd's stores compare with lz4's (neither is marked): a plain figure
    assert not table["zstd"]["store"].marks
    assert speedups(doc)["reclaim"]["zstd"]["store"] == pytest.approx(
        recs["zstd"]["store_pages_per_s"] / recs["lz4"]["store_pages_per_s"])


def test_plots_draw_marked_figures_as_such(swept: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    doc = swept["doc"]
    fig = speedup_figure(doc)
    try:
        store = fig.axes[0]
        labels = [t.get_text() for t in store.texts]
        nx = [t for t in labels if "† modelled" in t]
        assert len(nx) == 1 and nx[0].startswith(
            f"{speedup_table(doc)['reclaim']['842-nx']['store'].value:.2f}×")
        hatched = [p for p in store.patches if p.get_hatch()]
        assert len(hatched) == 1  # 842-nx's bar; zstd's is a plain bar
        assert "modelled" in fig.get_supxlabel()
    finally:
        plt.close(fig)
    fig = throughput_vs_ratio_figure(doc)
    try:
        store = fig.axes[0]
        texts = {t.get_text().split(" ")[0]: t.get_text() for t in store.texts}
        nx = [t.get_text() for t in store.texts if "†" in t.get_text()]
        assert len(nx) == 1 and texts
        hollow = [c for c in store.collections if len(c.get_facecolor()) == 0]
        assert len(hollow) == 1  # only 842-nx's point: its figure is not comparable
    finally:
        plt.close(fig)


def test_the_written_table_has_the_marks(swept: dict[str, Any]) -> None:
    table = (Path(swept["out"]) / "table.md").read_text()
    assert " †" in table and "## Marks" in table


def test_a_vs_raw_above_one_is_flagged_in_the_sweep_too(swept: dict[str, Any]) -> None:
    """The bench flags a vs raw above 1 (``?``, impossible for the same work); the sweep's
    cell and its notes say it as well."""
    import copy

    doc = copy.deepcopy(swept["doc"])
    lz4 = _by(doc)["lz4"]
    lz4["store_vs_raw"] = 1.7
    cols, sections = table_rows(doc, "backend")
    rows = {group: dict(zip(cols, rows[0])) for group, rows in sections}
    assert rows["lz4"]["store vs raw"] == "1.70 ?"
    assert not rows["zstd"]["store vs raw"].endswith("?")
    md = markdown(doc, None)
    assert "? vs raw above 1" in md and lz4["run_id"] in md.split("? vs raw above 1", 1)[1]
