"""The table's notes say what the runner's overlap and pressure fields now mean.

``device_overlap.hidden_share`` changed meaning: it was ``1 - waited / busy`` with busy summed
over the engines (engines working at once read as "hidden"); it is now ``1 - exposed /
busy_union`` (the device's time, as a union over its engines, that overlapped the host's own
work), with the engine parallelism a figure of its own and a ``hidden_note`` where the clock
cannot show overlap (``virtual``: 0 by construction). The note under the table said "the host
waited X µs/page (Y % hidden)" and would have crashed on a null share beside a waited time.
Under pressure the rows now carry the share of the working set the pool held and the
background writeback finished at chunk ends (timed into the store figure).

Each test runs the real bench on a few bundled pages; the null-share case (a device without
the union accounting) is set on a real row."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import markdown, overlap_note, print_table
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bench.md"


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=64)


def _run(pages: np.ndarray, clock: str, workload: str = "roundtrip",
         backends: tuple[str, ...] = ("842-nx",), extra: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    cfg: dict[str, Any] = {"zswap": {"compressor": {"name": "842-nx",
                                                    "params": {"clock": clock}},
                                     **(extra or {})}}
    doc = run_bench(build_workload(workload, pages, seed=0),
                    BenchRun(backends=list(backends), config=cfg, batching="page,async",
                             repeat=1, warm_up=False))
    assert not doc["failed"] and not doc["skipped"], (doc["failed"], doc["skipped"])
    assert schema_problems(doc) == []
    return doc


def _notes(doc: dict[str, Any]) -> list[str]:
    return [ln[2:] for ln in markdown(doc).splitlines() if ln.startswith("- ")]


def _overlap_lines(doc: dict[str, Any]) -> dict[str, str]:
    """The overlap note of each modelled row, by engine mode."""
    out = {}
    for r in doc["results"]:
        if r["backend"] != "842-nx":
            continue
        found = [n for n in _notes(doc)
                 if n.startswith(f"842-nx ({r['batching']}): modelled device (")]
        assert len(found) == 1, (r["batching"], found)
        out[r["batching"]] = found[0]
    return out


def _us(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def test_host_clock_note_names_exposed_union_and_engine_parallelism(pages: np.ndarray) -> None:
    doc = _run(pages, "host")
    lines = _overlap_lines(doc)
    assert set(lines) == {"page", "async"}
    for r in doc["results"]:
        ov, line = r["device_overlap"], lines[r["batching"]]
        assert ov["clock"] == "host" and ov["hidden_note"] is None
        assert line.startswith(f"842-nx ({r['batching']}): modelled device (host clock) busy "
                               f"{_us(ov['busy_union_us_per_page'])} µs/page as a union over "
                               "its engines")
        # exposed out of the union, and the share that is the rest
        assert (f"the host was blocked on it (exposed) for {_us(ov['exposed_us_per_page'])} "
                "µs/page of that") in line
        assert f"(1 − exposed / union: {ov['hidden_share']:.0%} hidden)" in line
        # engine parallelism apart, said not to be overlap, with the summed busy time
        assert (f"engine parallelism {ov['engine_parallelism']:.2f} (busy summed over the "
                f"engines, {_us(ov['busy_us_per_page'])} µs/page, over the union: engines "
                "working at once, not overlap)") in line
        parked = ov["exposed_parked_us_per_page"]
        assert (f"{_us(parked)} of it parked waiting for another thread" in line) is bool(parked)
        assert "the host waited" not in line  # the old wording's reading is gone
    assert lines["page"].count("%") == 1  # one share, no second percentage to misread


def test_virtual_clock_note_gives_the_hidden_note(pages: np.ndarray) -> None:
    doc = _run(pages, "virtual")
    lines = _overlap_lines(doc)
    why = {r["device_overlap"]["hidden_note"] for r in doc["results"]}
    assert len(why) == 1
    why_text = why.pop()
    assert why_text and "clock virtual" in why_text
    first, second = lines[doc["results"][0]["batching"]], lines[doc["results"][1]["batching"]]
    assert f"0% hidden): {why_text}" in first  # said in full once
    assert why_text not in second and "(clock virtual, as for 842-nx (page))" in second
    assert "0% hidden" in second
    for line in (first, second):  # the share is the clock's, not 1 - exposed / union
        assert "overlapped the host's own work" not in line
        assert "is no overlap on this clock (0% hidden)" in line


def test_null_share_beside_a_waited_time_renders(pages: np.ndarray) -> None:
    """A device that reports no union accounting: the runner gives the waited time, a null
    share and why (``hidden_note``); the note says so, in the Markdown and the rich table."""
    doc = copy.deepcopy(_run(pages, "host"))
    why = "the device reports no overlap accounting (device_busy_union_us, device_exposed_us)"
    for r in doc["results"]:
        r["device_overlap"].update(busy_union_us_per_page=None, exposed_us_per_page=None,
                                   exposed_parked_us_per_page=None, engine_parallelism=None,
                                   hidden_share=None, hidden_note=why)
        assert r["device_overlap"]["waited_us_per_page"] is not None
    lines = _overlap_lines(doc)
    for r in doc["results"]:
        line = lines[r["batching"]]
        ov = r["device_overlap"]
        assert (f"busy {_us(ov['busy_us_per_page'])} µs/page summed over its engines; the host "
                f"waited {_us(ov['waited_us_per_page'])} µs/page for it; no overlap share")\
            in line
        assert "hidden" not in line.replace(why, "") and "parallelism" not in line
    assert why in lines["page"]
    out = io.StringIO()
    print_table(doc, Console(file=out, width=3000))
    assert "no overlap share" in out.getvalue()


def test_realtime_like_and_older_rows_render(pages: np.ndarray) -> None:
    """Null waited and share with the CPU note's reason (the realtime clock) points at that
    note instead of repeating it; a document from before the union accounting says what its
    hidden_share meant."""
    r = copy.deepcopy(_run(pages, "host")["results"][0])
    rt = copy.deepcopy(r)
    rt["host_cpu_note"] = "clock realtime: engine threads pace wall time"
    rt["device_overlap"].update(waited_us_per_page=None, hidden_share=None,
                                exposed_us_per_page=None, exposed_parked_us_per_page=None,
                                busy_union_us_per_page=None, engine_parallelism=None,
                                hidden_note=rt["host_cpu_note"], clock="realtime")
    text = overlap_note(rt)
    assert "no overlap share (see its CPU n/a note)" in text and "waited" not in text
    old = copy.deepcopy(r)
    old["device_overlap"] = {"clock": "virtual", "busy_us_per_page": 2.0,
                             "waited_us_per_page": 1.0, "hidden_share": 0.5}
    text = overlap_note(old)
    assert "older build's 1 − waited / busy summed over the engines" in text
    assert "50%" in text and "union" not in text


def test_pressure_notes_give_held_share_and_quiesced_writeback(pages: np.ndarray) -> None:
    """256 pages: enough for the worker to have pages to write back at chunk ends."""
    doc = _run(load_bundled(max_pages=256), "host", "pressure", ("lz4",),
               {"background_writeback": True})
    notes = _notes(doc)
    held = [n for n in notes if n.startswith("working set held in the pool")]
    assert len(held) == 1
    for r in doc["results"]:
        assert r["pool_sizing"]["target_pages"] == r["pool_sizing"]["fraction_pages"]
        assert f"{r['batching']}) {r['pool_held_share_at_peak']:.0%} at its peak" in held[0]
    assert "took to hold 25% of them (pool_sizing.fraction_pages)" in held[0]
    quiesced = [r for r in doc["results"] if r["quiesce_written_back_pages"]]
    if not quiesced:
        # Whether the background thread still had pages to write back when a chunk ended
        # depends on the machine's timing (a loaded machine left it none in one run): the
        # note is then checked on a real row given such figures.
        r = doc["results"][0]
        r["quiesce_written_back_pages"], r["quiesce_writeback_us_per_page"] = 7, 0.42
        quiesced, notes = [r], _notes(doc)
    bg = [n for n in notes if n.startswith("background writeback finished at chunk ends")]
    assert len(bg) == 1
    for r in quiesced:
        assert (f"lz4 ({r['batching']}) {_us(r['quiesce_writeback_us_per_page'])} µs per page "
                f"stored, {r['quiesce_written_back_pages']} pages written back") in bg[0]
    # a roundtrip run (nothing sized, nothing written back) has neither note
    plain = _run(pages, "host", "roundtrip", ("lz4",))
    assert not [n for n in _notes(plain) if n.startswith(("working set", "background wr"))]


def test_docs_describe_the_new_fields() -> None:
    """docs/bench.md names every new field and no longer gives the old rules."""
    text = DOCS.read_text(encoding="utf-8")
    for key in ("busy_union_us_per_page", "exposed_us_per_page", "exposed_parked_us_per_page",
                "engine_parallelism", "hidden_note", "quiesce_writeback_us_per_page",
                "quiesce_written_back_pages", "pool_held_share_at_peak",
                "pool_held_share_at_end", "fraction_pages", "held_data_pages"):
        assert f"`{key}`" in text, key
    assert "1 − exposed / union" in text
    # the old meaning is only said as an earlier build's
    for m in re.finditer(r"1 − waited / busy", text):
        assert "earlier builds" in text[max(0, m.start() - 200):m.start()].lower() \
            or "before the union" in text[max(0, m.start() - 200):m.start()].lower(), \
            text[m.start() - 200:m.end()]
    assert "f × what the pool holds" not in text
