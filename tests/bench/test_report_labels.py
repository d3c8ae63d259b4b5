"""The table, its notes and the plot say what each figure is: the µs/pg percentiles are a
call's time divided by its pages (a reclaim pass of 44 pages gives each page the pass's
time / 44), not a page's latency; a note is printed only when some cell it explains shows
the thing it explains."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import COLUMNS, PER_PAGE_TIMES_NOTE, figure, markdown, rows
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def wl() -> Any:
    return build_workload("roundtrip", load_bundled(max_pages=64), seed=0)


@pytest.fixture(scope="module")
def doc(wl: Any) -> dict[str, Any]:
    out = run_bench(wl, BenchRun(backends=["lz4"], batching="page,reclaim", warm_up=False))
    assert not out["failed"] and len(out["results"]) == 2
    return out


def test_percentile_columns_and_panels_say_call_time_over_pages(doc: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    heads = [name.replace("\n", " ") for name, _ in COLUMNS]
    assert "store µs/pg p50/p99" in heads and "load µs/pg p50/p99" in heads
    assert not any(h.startswith(("store µs p50", "load µs p50")) for h in heads)
    md = markdown(doc)
    assert PER_PAGE_TIMES_NOTE in md and "not the latency of a page" in md
    fig = figure(doc)
    try:
        titles = [a.get_title() for a in fig.axes]
        assert any(t.startswith("Store time per page (call ÷ pages") for t in titles)
        assert any(t.startswith("Load time per page (call ÷ pages") for t in titles)
        assert not any("latency per page" in t or t.startswith("Load latency") for t in titles)
    finally:
        plt.close(fig)


def test_per_call_percentiles_are_given_for_batched_calls_when_the_row_has_them(
        doc: dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    for r in d["results"]:
        r.pop("store_call_us", None)
        r.pop("load_call_us", None)
    assert "per call" not in markdown(d)  # rows without per-call figures: nothing invented
    for r in d["results"]:
        r["store_call_us"] = {"p50": 210.0, "p99": 480.0, "mean": 220.0, "max": 500.0}
        r["load_call_us"] = {"p50": 21.0, "p99": 40.0, "mean": 22.0, "max": 41.0}
    md = markdown(d)
    assert ("lz4 (reclaim): store 210/480 µs p50/p99, load 21.0/40.0 µs p50/p99" in md)
    # the bench stores a reclaim pass in one call in page mode too (cut inside the engine)
    assert "lz4 (page): store 210/480 µs p50/p99, load 21.0/40.0 µs p50/p99" in md


def test_realtime_clock_prints_no_emulation_excluded_note(wl: Any) -> None:
    """With 842-nx on ``clock: realtime`` every CPU cell is n/a, yet the note "host CPU
    excludes the emulated device's own work" was printed under the table."""
    cfg = {"zswap": {"compressor": {"name": "842-nx", "params": {"clock": "realtime"}}}}
    d = run_bench(wl, BenchRun(backends=["842-nx"], config=cfg, warm_up=False))
    (r,) = d["results"]
    assert r["host_cpu_note"] and r["emulation_us_per_page"]
    assert rows(d)[0][13] == "n/a"
    md = markdown(d)
    assert "excludes the emulated device's own work" not in md
    assert "CPU n/a: clock realtime" in md
    # on the virtual clock the CPU cell is starred and the note explains the star
    v = run_bench(wl, BenchRun(backends=["842-nx"], warm_up=False))
    assert rows(v)[0][13].endswith("*")
    assert "excludes the emulated device's own work" in markdown(v)


def test_an_incompressible_corpus_says_the_codec_alone_decompressed_nothing(
        tmp_path: Any) -> None:
    """Random pages: every store is rejected as poor and read back from the swap file, and the
    codec alone has nothing to decompress (raw load ``-``); the n/a note said "the raw pass
    decompressed them"."""
    import numpy as np

    rng = np.random.default_rng(7)
    pages = rng.integers(0, 256, size=(64, 4096), dtype=np.uint8)
    d = run_bench(build_workload("roundtrip", pages, seed=0),
                  BenchRun(backends=["lz4"], warm_up=False))
    (r,) = d["results"]
    assert r["raw_load_pages_per_s"] is None and r["load_vs_raw_note"]
    assert rows(d)[0][9] == "-" and rows(d)[0][10] == "n/a"
    md = markdown(d)
    assert "the codec alone decompressed nothing either" in md
    assert "the raw pass decompressed them" not in md
    (line,) = [ln for ln in md.splitlines() if ln.startswith("- n/a vs raw")]
    parts = line.split(": ", 2)[2].split("; ")
    assert len(parts) == len(set(parts))  # no note said twice


def test_emulation_time_past_the_wall_time_is_not_called_a_part_of_it(doc: dict[str, Any]) -> None:
    """842-nx on the realtime clock emulates on several engine threads at once: their time
    summed (3434 µs/page) passed the wall time (1804), and the note said "of it emulation"."""
    d = copy.deepcopy(doc)
    r = d["results"][0]
    r.update(time_basis="modeled", wall_us_per_page=1804.0, emulation_us_per_page=3434.0)
    md = markdown(d)
    assert "3434.0 of it emulation" not in md
    assert "1804.0 µs/page wall; the emulation's threads ran 3434.0 µs/page in all" in md
    r.update(emulation_us_per_page=900.0)
    assert "1804.0 µs/page wall, 900.0 of it emulation" in markdown(d)
