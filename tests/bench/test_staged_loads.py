"""Async loads served from staged copies (pages still in flight): the fill is drained before
the first fault, and a run whose loads were largely staged copies is flagged, never "best"."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import markdown, mode_summary, rows
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, compile_workload, run_bench
from hwzswap.bench.workload import LOAD, STORE, Op, Workload, build_workload


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=128)


def test_the_fill_ends_its_chunk(pages: np.ndarray) -> None:
    """roundtrip at 128 pages is 384 page ops, one chunk of 512: the stores now end theirs."""
    cw = compile_workload(build_workload("roundtrip", pages, seed=0))
    first, second = cw.chunks[0], cw.chunks[1]
    assert first.store_pages == 128 and first.load_expect == []
    assert second.store_pages == 0 and second.load_expect
    assert sum(c.page_ops for c in cw.chunks) == cw.page_ops


def test_a_small_async_roundtrip_decompresses_its_loads(pages: np.ndarray) -> None:
    """Every load of a 128-page roundtrip came from a staged copy (async load figures 14.8x the
    codec's decompression, pool density 0 %): the fill is drained before the first fault."""
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=["lz4"], batching="async"))
    assert schema_problems(doc) == []
    (r,) = doc["results"]
    assert r["counters"]["loads_staged"] == r["loads_staged"] == 0
    assert r["load_staged_share"] == 0.0 and r["load_figure_staged"] is False
    assert r["verified_pages"] == r["pages"] == 128
    assert r["pool_density"] > 0  # the pages reached the pool before they were loaded


def _off_the_callers_thread() -> bool:
    """Not the bench's thread nor its codec-alone worker (``hwzswap-bench-raw-*``)."""
    me = threading.current_thread()
    return me is not threading.main_thread() and not me.name.startswith("hwzswap-bench-raw")


class SlowCompletion(Lz4Backend):
    """lz4 whose compressions off the main thread (async mode's pipeline worker) take 0.2 s a
    call, so a page is still in flight when it is loaded right after its store."""

    name = "test-slow-completion"

    def compress(self, page: Any) -> bytes | None:
        if _off_the_callers_thread():
            time.sleep(0.005)
        return super().compress(page)

    def compress_batch(self, pages: Any) -> Any:
        if _off_the_callers_thread():
            time.sleep(0.2)
        return super().compress_batch(pages)


def _refault_workload(pages: np.ndarray) -> Workload:
    """Fill slots 0..31, fault slot 0, then reclaim slots 32..63 in one pass and fault each at
    once: in async mode those 32 faults find their pages in flight."""
    fill = list(range(32))
    again = list(range(32, 64))
    ops = [Op(STORE, 0, tuple(fill), tuple(fill)), Op(LOAD, 0, (0,)),
           Op(STORE, 0, tuple(again), tuple(again))]
    ops += [Op(LOAD, 0, (o,)) for o in again]
    return Workload(name="refault", seed=0, pages=np.ascontiguousarray(pages[:64]), ops=ops,
                    structure={"reclaim_batch": 32, "load_batch": 1, "folio_mix": [[1, 1.0]]})


def test_loads_from_staged_copies_are_flagged_and_not_named_best(pages: np.ndarray) -> None:
    with registered(SlowCompletion):
        doc = run_bench(_refault_workload(pages),
                        BenchRun(backends=[SlowCompletion.name], batching="reclaim,async"))
    assert schema_problems(doc) == [] and not doc["failed"]
    by = {r["batching"]: r for r in doc["results"]}
    sync, stg = by["reclaim"], by["async"]
    assert sync["loads_staged"] == 0 and sync["load_figure_staged"] is False
    assert stg["loads_staged"] == stg["counters"]["loads_staged"] >= 16
    assert stg["load_staged_share"] == round(stg["loads_staged"] / 33, 4)
    assert stg["load_figure_staged"] is True
    for r in doc["results"]:
        assert r["verified_pages"] == r["pages"] == 33 and r["mismatches"] == 0
    # the table marks the figure, a note says what it means, and async is not "best"
    table = {(row[0], row[1]): row for row in rows(doc)}
    assert table[(SlowCompletion.name, "async/worker")][8].endswith(" ~")
    assert not table[(SlowCompletion.name, "reclaim")][8].endswith("~")
    (line,) = mode_summary(doc)
    assert "loads best in reclaim" in line and "async not compared" in line
    md = markdown(doc)
    assert "loads served from staged copies" in md and "not decompression" in md
    assert "more --pages" in md


def test_a_backend_whose_every_mode_is_staged_gets_no_best_load_mode() -> None:
    """The summary's wording when no mode's figure measured decompression (a document as the
    bench writes it, reduced to what mode_summary reads)."""
    def result(mode: str, store: float, load: float, share: float) -> dict[str, Any]:
        return {"backend": "x", "batching": mode, "store_pages_per_s": store,
                "load_pages_per_s": load, "load_staged_share": share,
                "load_figure_staged": share >= 0.25}

    doc = {"batching": ["async", "folio"],
           "results": [result("async", 10.0, 900.0, 1.0), result("folio", 5.0, 800.0, 0.5)]}
    (line,) = mode_summary(doc)
    assert "no mode's load figure measured decompression" in line
    assert "loads best in" not in line
    doc["results"][1] = result("folio", 5.0, 100.0, 0.1)
    (line,) = mode_summary(doc)
    assert "loads best in folio (100, 10% of them from staged copies)" in line
    assert "(async not compared: loads from staged copies)" in line
