"""The plot agrees with the table: a figure the table marks as not valid (``DEV FAILED``,
``~`` staged loads, ``n/a`` vs raw, a null ratio) is not drawn as a valid bar; bars are
linear, so a 0.85x bar looks like 0.85 of its neighbour; a long title is wrapped, not cut."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hwzswap.bench.report import VOID_BAR, figure, rows


@pytest.fixture()
def marked(real: dict[str, Any]) -> dict[str, Any]:
    """The real rows with the marks the bench gives: page's device marked failed, reclaim's
    loads mostly staged and its stores n/a vs raw, async with no compression ratio."""
    doc = copy.deepcopy(real)
    page, rec, asy = doc["results"]
    page["device_failed"] = True
    rec.update(load_figure_staged=True, load_staged_share=0.5,
               store_vs_raw=None, store_vs_raw_note="for the test: different work")
    asy["ratio"] = None
    return doc


def _panel(fig: Any, title: str) -> Any:
    (ax,) = [a for a in fig.axes if a.get_title().startswith(title)]
    return ax


def _hatched(ax: Any, n: int, series: int) -> list[list[bool]]:
    """Per series, per row: whether the bar is drawn as :data:`VOID_BAR`."""
    bars = ax.patches[:n * series]
    return [[b.get_hatch() == VOID_BAR["hatch"] for b in bars[k * n:(k + 1) * n]]
            for k in range(series)]


def _labels(ax: Any) -> dict[int, str]:
    return {round(t.xy[0]): t.get_text() for t in ax.texts}


def test_invalid_rows_are_marked_in_the_plot_as_in_the_table(marked: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    table = rows(marked)
    assert table[0][19].endswith("DEV FAILED") and table[1][8].endswith("~")
    assert table[1][7] == "n/a" and table[2][3] == "n/a"
    fig = figure(marked)
    try:
        ax = _panel(fig, "Store throughput")
        assert _hatched(ax, 3, 2) == [[True, True, False]] * 2
        labels = _labels(ax)
        assert labels[0] == "DEV FAILED" and labels[1] == "n/a vs raw"
        assert labels[2].endswith("×")  # a valid row keeps its stack ÷ codec label
        # the legend shows each series in its own colour though its first bar is void
        from matplotlib.colors import to_hex

        legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(),
                                                  ax.get_legend().legend_handles)}
        assert to_hex(legend["through the stack"].get_facecolor()) == "#1f77b4"
        assert to_hex(legend["codec alone"].get_facecolor()) == "#aec7e8"
        assert legend["not comparable (see its label)"].get_hatch() == VOID_BAR["hatch"]
        ax = _panel(fig, "Load throughput")
        assert _hatched(ax, 3, 2) == [[True, True, False]] * 2
        assert _labels(ax)[1] == "~ staged"
        ax = _panel(fig, "Compression ratio")
        assert ax.patches[2].get_height() == 0 and _labels(ax)[2] == "n/a"
        ax = _panel(fig, "Time per page stored or loaded")
        assert _hatched(ax, 3, 2) == [[True, False, False]] * 2
        ax = _panel(fig, "Store time per page")
        assert _hatched(ax, 3, 2)[0] == [True, False, False]
        for a in fig.axes:
            assert a.get_yscale() == "linear", a.get_title()
            if any(_hatched(a, 3, 1)[0]):
                assert "not comparable (see its label)" in [
                    t.get_text() for t in a.get_legend().get_texts()]
    finally:
        plt.close(fig)


def test_valid_rows_have_plain_bars(real: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig = figure(real)
    try:
        for a in fig.axes:
            assert not any(p.get_hatch() for p in a.patches), a.get_title()
            assert a.get_yscale() == "linear"
    finally:
        plt.close(fig)


def test_a_long_title_is_wrapped_inside_the_figure(real: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    doc = copy.deepcopy(real)
    doc["workload"]["corpus"] = {"source": "file",
                                 "files": ["a-capture-of-a-long-running-service-" * 4 + ".pages"]}
    doc["workload"]["folio_mix_stored"] = [[1, 0.9], [16, 0.1]]
    doc["workload"]["folio_mix_note"] = "for the test"
    fig = figure(doc)
    try:
        fig.canvas.draw()
        box = fig._suptitle.get_window_extent()
        width = fig.get_figwidth() * fig.dpi
        assert box.x0 >= 0 and box.x1 <= width, (box, width)
        assert "(see note)" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
