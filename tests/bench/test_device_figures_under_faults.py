"""A modelled row whose device timed out (hung requests) or was marked failed does not show
overlap, hidden share or modelled wall time as if they measured the device: the model counts
a hung request's time until its deadline as device time (842-nx: a run showed "waited 58594
µs/page" against 19 µs/page wall, and "98 % hidden" on a row whose device was marked failed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import COLUMNS, markdown, rows
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload

HANGS = {"zswap": {"compressor": {"name": "842-nx",
                                  "params": {"hang_rate": 0.02, "fault_rate": 0.05}},
                   "device_timeout_ms": 20}}
DEVICE_COL = [name for name, _ in COLUMNS].index("device\nµs/pg")


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=256)


def _doc(pages: np.ndarray, config: Any) -> dict[str, Any]:
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=["842-nx"], config=config, batching="page,reclaim",
                             warm_up=False))
    assert not schema_problems(doc), schema_problems(doc)
    assert len(doc["results"]) == 2
    return doc


def test_rows_with_hung_requests_have_no_overlap_or_modelled_wall(pages: np.ndarray) -> None:
    doc = _doc(pages, HANGS)
    hit = [r for r in doc["results"] if r["device_timeouts"] or r["device_failed"]]
    assert hit, [r["faults"]["driver"] for r in doc["results"]]
    table = rows(doc)
    text = markdown(doc)
    for i, r in enumerate(doc["results"]):
        if r not in hit:
            continue
        assert "timed out" in r["device_figures_note"]
        ov = r["device_overlap"]
        assert ov["waited_us_per_page"] is None and ov["hidden_share"] is None
        assert ov["note"] == r["device_figures_note"]
        assert r["modeled_wall_us_per_page"] is None
        assert r["device_store_us_per_page"] is None and r["device_load_us_per_page"] is None
        assert isinstance(r["device_us_per_page"], float)  # the model's time, deadlines in it
        assert table[i][DEVICE_COL] == "n/a"
        assert (f"842-nx ({r['batching']}): device µs/pg n/a, no overlap or modelled wall "
                "time: ") in text
    assert "hidden)" not in text  # no "NN% hidden" figure printed for a row that hung


def test_clean_rows_keep_their_device_figures(pages: np.ndarray) -> None:
    doc = _doc(pages, None)
    for i, r in enumerate(doc["results"]):
        assert r["device_timeouts"] == 0 and not r["device_failed"]
        assert r["device_figures_note"] is None
        ov = r["device_overlap"]
        assert ov["waited_us_per_page"] is not None and 0.0 <= ov["hidden_share"] <= 1.0
        assert "note" not in ov
        assert r["modeled_wall_us_per_page"] is not None
        assert rows(doc)[i][DEVICE_COL] != "n/a"
    assert "hidden)" in markdown(doc)
