"""The table's marks say what a figure holds where a reader would read more into it. A
reviewer found five figures printed without a word:

* 842-nx's ``raw pg/s`` and ``vs raw``: the codec-alone pass calls the emulated device too, so
  both sides are emulation speed (the table said 0.85x where the modelled device gave 0.42x),
  yet only the stack's figures carried ``†``;
* lz4-opencl's host CPU on PoCL's CPU device: its device threads are host CPU (80 % of it),
  said only in docs/bench.md;
* load pages/s under pressure with ``swap.model: none``: loads read back from the page-cached
  swap file are RAM copies (zstd reclaim 283.9k against the codec's 210.7k, 76 % from the file);
* a ``vs raw`` above 1 (the stack faster than the codec alone on the same work) printed plain,
  and named "best store mode page by vs raw, 1.98x";
* pool density tracking the stream's size (zstd 0.22 / 0.47 / 0.77 at 256 / 1024 / 4096 pages),
  not the codec, with no note.

Each test runs the real bench on a few bundled pages; a figure the runner cannot be made to
produce on demand (a vs raw above 1, a large pool) is set on a real row."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.marks import (
    ABOVE_RAW,
    HOST_DEVICE,
    MODELLED,
    POOL_SLACK,
    POOL_SLACK_SHARE,
    SWAP_FILE_LOADS,
    comparable,
    cpu_marks,
    density_marks,
    device_on_host,
    figure_marks,
    pool_slack_pages,
    vs_raw_marks,
)
from hwzswap.bench.report import (
    COLUMNS,
    MODELLED_RAW_NOTE,
    engine_mode,
    markdown,
    mode_summary,
    rows,
)
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.pool.zsmalloc import zs_layout

NAMES = [name for name, _ in COLUMNS]
DENSITY = NAMES.index("pool\ndensity")
RAW_STORE, STORE_VS = 6, 7
LOAD, RAW_LOAD, LOAD_VS = 8, 9, 10
CPU = NAMES.index("CPU\nµs/pg")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "bench.md"


def _table(doc: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    return {(row[0], row[1]): row for row in rows(doc)}


def _note(doc: dict[str, Any], start: str) -> str:
    """The one note under the Markdown table that starts with ``start`` (a leading ``+`` is
    escaped there, so that Markdown does not read it as a nested list)."""
    found = [ln[2:].removeprefix("\\") for ln in markdown(doc).splitlines()
             if ln.startswith(("- " + start, "- \\" + start))]
    assert len(found) == 1, (start, found)
    return found[0]


@pytest.fixture(scope="module")
def devices() -> dict[str, Any]:
    """842-nx (modelled) and lz4-opencl (PoCL's CPU device) beside lz4, 32 pages, in page and
    async mode: under a second."""
    doc = run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                    BenchRun(backends=["lz4", "842-nx", "lz4-opencl"], batching="page,async",
                             repeat=1, warm_up=False))
    assert not doc["failed"] and not doc["skipped"], (doc["failed"], doc["skipped"])
    assert schema_problems(doc) == []
    return doc


def _pressure(config: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = run_bench(build_workload("pressure", load_bundled(max_pages=128), seed=0),
                    BenchRun(backends=["lz4"], batching="reclaim", repeat=1, warm_up=False,
                             config=config))
    assert not doc["failed"], doc["failed"]
    return doc


def test_a_modelled_devices_raw_figures_and_vs_raw_are_marked(devices: dict[str, Any]) -> None:
    table = _table(devices)
    for r in devices["results"]:
        row = table[(r["backend"], engine_mode(r))]
        modelled = r["time_basis"] == "modeled"
        assert modelled is (r["backend"] == "842-nx")
        for col in (RAW_STORE, RAW_LOAD):
            assert row[col].endswith(" †") is modelled, (r["backend"], NAMES[col], row[col])
        for col, what in ((STORE_VS, "store"), (LOAD_VS, "load")):
            if row[col] != "n/a":
                assert ("†" in row[col]) is modelled, (r["backend"], row[col])
                assert (MODELLED in vs_raw_marks(r, what)) is modelled
    # the note says what the two sides are and where the device's own figures are
    assert MODELLED_RAW_NOTE in markdown(devices)
    for key in ("emulation speed with emulation speed", "device_us_per_page",
                "modeled_wall_us_per_page", "backend_counters_raw"):
        assert key in MODELLED_RAW_NOTE
    nx = next(r for r in devices["results"] if r["backend"] == "842-nx")
    assert "device_us" in nx["backend_counters_raw"]  # the figure the note points at
    assert "raw figure and vs raw" in MODELLED.meaning  # the sweep's mark note too
    # a run with no modelled row has no such note
    plain = dict(devices, results=[r for r in devices["results"] if r["backend"] == "lz4"])
    assert MODELLED_RAW_NOTE not in markdown(plain)


def test_an_opencl_cpu_devices_host_cpu_is_marked(devices: dict[str, Any]) -> None:
    machine = devices["machine"]
    table = _table(devices)
    ocl = [r for r in devices["results"] if r["backend"] == "lz4-opencl"]
    assert ocl
    for r in devices["results"]:
        hosted = r["backend"] == "lz4-opencl"
        assert bool(device_on_host(r, machine)) is hosted
        assert table[(r["backend"], engine_mode(r))][CPU].endswith(" +") is hosted
    name = device_on_host(ocl[0], machine)
    (listed,) = [d for d in machine["opencl_devices"] if d["name"] == name]
    assert "CPU" in listed["type"]  # PoCL's pthread device, as this machine lists it
    note = _note(devices, f"{HOST_DEVICE.symbol} host CPU includes the OpenCL device's own")
    assert f"- \\{HOST_DEVICE.symbol} host CPU" in markdown(devices)  # not a nested list
    assert f"opencl:{name}" in note and "lz4-opencl (page)" in note and "lz4 (" not in note
    assert "not what a discrete device" in note

    # the same row on a machine that lists that device as a GPU: no mark
    gpu = copy.deepcopy(devices)
    for d in gpu["machine"]["opencl_devices"]:
        d["type"] = "ALL | GPU"
    assert device_on_host(ocl[0], gpu["machine"]) is None
    assert all(not row[CPU].endswith("+") for row in rows(gpu))
    assert "OpenCL device's own threads" not in markdown(gpu)
    # a sweep record holds its machine; without one, the backend's description says "cpu"
    assert device_on_host({**ocl[0], "machine": machine}) == name
    assert "(cpu," in ocl[0]["description"] and device_on_host(ocl[0], {}) == name
    assert cpu_marks({**ocl[0], "description": "lz4-opencl"}, {}) == ""


def test_loads_from_a_page_cached_swap_file_are_marked() -> None:
    doc = _pressure()
    (r,) = doc["results"]
    assert r["swap_model"] == "none" and r["load_swap_share"] > 0.05
    row = rows(doc)[0]
    assert row[LOAD].endswith(f" {SWAP_FILE_LOADS.symbol}"), row[LOAD]
    assert row[LOAD_VS] == "n/a"
    assert SWAP_FILE_LOADS in figure_marks(r, "load") and not comparable(r, "load")
    note = _note(doc, f"{SWAP_FILE_LOADS.symbol} loads read from the swap file")
    assert f"lz4 (reclaim) {r['load_swap_share']:.0%}" in note
    assert "page cache" in note and "rewards writing back" in note
    assert "swap.model" in note and "load_pages_per_s_with_swap_model" in note

    # with a modelled swap device its read time is in the figures with the model: no mark
    ssd = _pressure({"swap": {"model": "ssd"}})
    (s,) = ssd["results"]
    assert s["load_swap_share"] > 0.05 and s["load_pages_per_s_with_swap_model"]
    assert SWAP_FILE_LOADS not in figure_marks(s, "load")
    assert SWAP_FILE_LOADS.symbol not in rows(ssd)[0][LOAD]
    # a roundtrip reads nothing back: no mark either
    assert all(SWAP_FILE_LOADS.symbol not in row[LOAD] for row in rows(_plain_roundtrip()))


def _plain_roundtrip() -> dict[str, Any]:
    return run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                     BenchRun(backends=["lz4"], batching="reclaim", repeat=1, warm_up=False))


def test_a_vs_raw_above_one_is_flagged_in_the_table_and_the_summary(real: dict[str, Any]
                                                                      ) -> None:
    doc = copy.deepcopy(real)
    by = {r["batching"]: r for r in doc["results"]}
    for r in doc["results"]:
        r.update(store_vs_raw=0.7, store_vs_raw_note=None, store_overlaps_loads=False,
                 load_vs_raw=0.6, load_vs_raw_note=None)
    by["page"].update(store_vs_raw=1.98)
    by["reclaim"].update(store_vs_raw=1.0)  # not above 1: no flag
    table = _table(doc)
    assert table[("lz4", "page")][STORE_VS] == f"1.98x {ABOVE_RAW.symbol}"
    assert table[("lz4", "reclaim")][STORE_VS] == "1.00x"
    assert table[("lz4", "async/worker")][STORE_VS] == "0.70x"
    note = _note(doc, f"{ABOVE_RAW.symbol} vs raw above 1")
    assert "lz4 (page) store 1.98x" in note and "reclaim" not in note
    assert "noise or cache effects" in note and "--repeat" in note
    (line,) = mode_summary(doc)
    assert f"best store mode page by vs raw, 1.98x {ABOVE_RAW.symbol}" in line, line
    assert "rerun with more --repeat on a quiet machine" in line

    # an async store figure that left out compression done during timed loads says so
    by["page"].update(store_vs_raw=0.5)
    by["async"].update(store_vs_raw=1.3, store_overlaps_loads=True)
    note = _note(doc, f"{ABOVE_RAW.symbol} vs raw above 1")
    assert "lz4 (async) store 1.30x (‡" in note
    # loads too; none above 1: no note and no flag in the summary
    by["async"].update(store_vs_raw=0.6, store_overlaps_loads=False)
    by["reclaim"].update(load_vs_raw=1.2, load_vs_raw_note=None)
    assert f"1.20x {ABOVE_RAW.symbol}" == _table(doc)[("lz4", "reclaim")][LOAD_VS]
    by["reclaim"].update(load_vs_raw=0.9)
    assert not any(ln.startswith(f"- {ABOVE_RAW.symbol}") for ln in markdown(doc).splitlines())
    assert ABOVE_RAW.symbol not in mode_summary(doc)[0]


def test_pool_density_is_marked_when_zsmalloc_slack_dominates(real: dict[str, Any]) -> None:
    layout = zs_layout()
    slack = pool_slack_pages(real["results"][0])
    # half of each class's zspage (but its one object) is empty on average: 277 pages here
    assert slack == pytest.approx(sum(c.pages_per_zspage * (c.objs_per_zspage - 1)
                                      / (2 * c.objs_per_zspage) for c in layout.classes))
    assert 250 < slack < sum(c.pages_per_zspage for c in layout.classes) / 2

    doc = copy.deepcopy(real)
    small, large = doc["results"][0], doc["results"][1]
    assert 0 < small["pool_peak_pages"] <= slack / POOL_SLACK_SHARE  # 64 pages: a tiny pool
    large["pool_peak_pages"] = int(slack / POOL_SLACK_SHARE) + 1
    table = rows(doc)
    assert table[0][DENSITY].endswith(f" {POOL_SLACK.symbol}") and density_marks(small)
    assert not table[1][DENSITY].endswith(POOL_SLACK.symbol) and not density_marks(large)
    note = _note(doc, "pool density:")
    assert "part-filled zspage in each size class" in note and f"{slack:.0f} pages" in note
    assert f"{POOL_SLACK.symbol}: that slack is a quarter or more" in note
    assert f"lz4 ({small['batching']}) {small['pool_peak_pages']} pages" in note
    assert f"lz4 ({large['batching']})" not in note

    # a zbud pool has no such per-class slack; a shorter chain has less
    zbud = copy.deepcopy(small)
    zbud["config"]["pool"] = {"type": "zbud"}
    assert pool_slack_pages(zbud) is None and not density_marks(zbud)
    short = copy.deepcopy(small)
    short["config"]["pool"]["max_pages_per_zspage"] = 4
    assert pool_slack_pages(short) < slack


def test_batch_backends_vs_raw_says_what_each_mode_compares(devices: dict[str, Any]) -> None:
    note = _note(devices, "vs raw of a batch backend")
    assert "one compress_batch per reclaim pass" in note
    assert "842-nx (page) calls the device per page" in note
    assert "lz4-opencl (async) merges queued passes" in note  # async/worker
    assert "842-nx (async) submits each pass's pages as ops to the device's queue (" in note
    assert "counters.async_device_calls" in note and "lz4 (" not in note
    text = " ".join(DOCS.read_text().split())
    assert "always makes one `compress_batch` per reclaim pass" in text
    assert "async's `vs raw` includes the engine's merging" in text
    assert "their `vs raw` is the cost of that mode" in text
