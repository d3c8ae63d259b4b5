"""The folio mix a stream's stores actually got is reported beside the requested one (JSON
``workload.folio_mix_stored`` / ``folio_mix_note``, the table's title and notes): a requested
mix the stream cannot hold (a 512-page folio in a 64-page stream) must not read as met."""

from __future__ import annotations

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import markdown, rows
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench, stream_folio_mix
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=256)


def _doc(wl):  # type: ignore[no-untyped-def]
    doc = run_bench(wl, BenchRun(backends=["lz4"], warm_up=False))
    assert not doc["failed"] and not schema_problems(doc), schema_problems(doc)
    return doc


def test_a_folio_larger_than_the_stream_is_reported_as_not_met(pages: np.ndarray) -> None:
    wl = build_workload("roundtrip", pages[:64], seed=0, folio_mix="512")
    doc = _doc(wl)
    w = doc["workload"]
    assert w["structure"]["folio_mix"] == [[512, 1.0]]  # the request is kept
    assert w["counts"]["large_folio_pages"] == 0
    assert w["folio_mix_stored"] == [[1, 1.0]]  # what the stream has
    assert "512-page folio cannot fit a 64-page stream" in w["folio_mix_note"]
    text = markdown(doc)
    title = text.splitlines()[0]
    assert "folio pages 512:100% requested, 1:100% stored" in title
    assert "- folio mix: the stream's stores got folio pages 1:100%, requested 512:100%" in text
    assert len(rows(doc)) == 1


def test_a_met_mix_is_shown_once_and_matches_the_counts(pages: np.ndarray) -> None:
    wl = build_workload("roundtrip", pages, seed=0)
    doc = _doc(wl)
    w = doc["workload"]
    assert w["folio_mix_note"] is None
    large = sum(share for size, share in w["folio_mix_stored"] if size > 1)
    assert large == pytest.approx(w["counts"]["large_folio_pages"] / w["counts"]["store_pages"])
    title = markdown(doc).splitlines()[0]
    assert "folio pages 1:75% 16:25% ·" in title and "requested" not in title


def test_few_aligned_blocks_vary_by_seed_and_say_why() -> None:
    blank = np.zeros((1024, 4096), dtype=np.uint8)
    got = []
    for seed in range(8):
        mix = stream_folio_mix(build_workload("roundtrip", blank, seed=seed,
                                              folio_mix="1:1,512:1"))
        got.append(dict(map(tuple, mix["folio_mix_stored"])).get(512, 0.0))
        if got[-1] != 0.5:
            assert "only 2 aligned 512-page blocks" in mix["folio_mix_note"]
        else:
            assert mix["folio_mix_note"] is None
    assert set(got) <= {0.0, 0.5, 1.0}  # two blocks: each all 512-page folios or none


def test_order0_restores_after_the_fill_are_named(pages: np.ndarray) -> None:
    mix = stream_folio_mix(build_workload("pressure", pages, seed=0))
    assert mix["folio_mix_stored"][0][0] == 1 and mix["folio_mix_stored"][0][1] > 0.8
    note = mix["folio_mix_note"]
    assert "the fill (the stores before the first load) got 1:75% 16:25%" in note
    assert "got 1:100%" in note


def test_the_cli_says_before_the_run_when_the_stream_misses_the_request(capsys) -> None:
    """The line printed before the run shows the requested mix; the note follows it at once,
    so nobody waits for a run that does not have the folios they asked for without knowing."""
    from hwzswap.cli import main

    assert main(["bench", "--backends", "lz4", "--pages", "64", "--folio-pages", "512",
                 "--repeat", "1", "--batching", "page"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "folios 512:100%" in err
    assert "a 512-page folio cannot fit a 64-page stream" in err
    assert err.index("folios 512:100%") < err.index("cannot fit")
