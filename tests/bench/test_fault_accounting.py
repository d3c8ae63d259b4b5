"""Faults the bench must not hide: a device marked failed (its stores refused without
compressing), the engine's driver counters, faults in any pass of several, a readahead call
that returns the wrong number of pages, and async mode's device time that cannot be split by
direction."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import markdown, mode_summary, rows
from hwzswap.bench.results import UNLIKE_WORK_SHARE, schema_problems
from hwzswap.bench.runner import BenchRun, bench_failed, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.errors import DeviceError


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=256)


def _engine_call() -> bool:
    """The engine calls an outside driver on its watchdog thread; the raw pass calls it on the
    bench's own worker (``hwzswap-bench-raw-*``, :mod:`hwzswap.bench.raw_guard`)."""
    return threading.current_thread().name.startswith("hwzswap-watchdog")


class _StallsTwice(Lz4Backend):
    """A batch device (LZ4 blocks) whose first two batch calls from the engine hang past the
    deadline, so the engine marks it failed (``device_fail_after`` 2)."""

    name = "test-stalls-twice"
    stalls: ClassVar[int] = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(batch=True, preferred_batch=32)

    def compress_batch(self, pages: Any) -> Any:
        if _engine_call() and _StallsTwice.stalls > 0:
            _StallsTwice.stalls -= 1
            time.sleep(0.2)
        return super().compress_batch(pages)


def test_a_device_marked_failed_is_not_a_clean_comparison(pages: np.ndarray) -> None:
    """Once marked failed the device's stores are refused without compressing
    (``reject_compress_fail``): the stack then looked faster than the codec alone and was
    named best store mode. Now those refusals count as work the stack did not do, the row
    says the device failed, no best store mode is named and the exit status is 1."""
    # one stall, fail_after 1: the calls made while it is stuck are refused (refused_stuck),
    # not timeouts, so a second stall right behind it would not count
    _StallsTwice.stalls = 1
    cfg = {"zswap": {"device_timeout_ms": 50, "device_fail_after": 1}}
    with registered(_StallsTwice):
        doc = run_bench(build_workload("roundtrip", pages, seed=0),
                        BenchRun(backends=[_StallsTwice.name], config=cfg, warm_up=False,
                                 batching="reclaim,page"))
    assert schema_problems(doc) == []
    by = {r["batching"]: r for r in doc["results"]}
    rec, page = by["reclaim"], by["page"]
    assert rec["device_failed"] is True and page["device_failed"] is False
    drv = rec["faults"]["driver"]
    assert drv["timeouts"] >= 1 and drv["failed"] == 1 and rec["faults"]["any"]
    assert rec["rejects"]["compress_fail"] > UNLIKE_WORK_SHARE * rec["store_pages"]
    assert rec["store_refused_share"] > UNLIKE_WORK_SHARE
    assert rec["store_vs_raw"] is None and "marked failed" in rec["store_vs_raw_note"]
    assert page["store_vs_raw"] and page["store_refused_share"] == 0.0
    assert rec["mismatches"] == rec["load_failures"] == 0
    assert rec["verified_pages"] == rec["pages"]  # every page still came back
    (entry,) = doc["failed"]
    assert (entry["backend"], entry["batching"], entry["phase"]) == (
        _StallsTwice.name, "reclaim", "device")
    assert bench_failed(doc)
    table = rows(doc)
    assert len(table) == 2  # the failure is marked on its result row, not a row of its own
    assert {r[1]: r for r in table}["reclaim"][-2].endswith("DEV FAILED")
    (line,) = mode_summary(doc)
    assert "no best store mode named" in line and "marked failed in reclaim" in line
    assert "least wall time" not in line
    md = markdown(doc)
    assert f"FAILED {_StallsTwice.name} (reclaim) [device]" in md


class _FlakyOnTheEngine(Lz4Backend):
    """An LZ4 device whose decompress fails on every 5th engine call (the raw pass never sees
    it), up to ``budget`` faults; the engine decodes those pages in software (its format is
    plain LZ4 blocks), so every page comes back and only the driver counters show the faults."""

    name = "test-flaky-on-the-engine"
    budget: ClassVar[int] = 10**9

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(format="lz4")

    def decompress(self, data: Any) -> bytes:
        if _engine_call():
            self.calls += 1
            if self.calls % 5 == 0 and _FlakyOnTheEngine.budget > 0:
                _FlakyOnTheEngine.budget -= 1
                raise DeviceError(f"{self.name}: injected decompress fault")
        return super().decompress(data)


def test_driver_faults_are_reported_and_count(pages: np.ndarray) -> None:
    """``faults.driver`` holds the engine's driver counters (``stats()``'s ``driver_*``; it
    was always null), and a driver fault the engine recovered from makes ``faults.any``."""
    _FlakyOnTheEngine.budget = 10**9
    with registered(_FlakyOnTheEngine):
        doc = run_bench(build_workload("roundtrip", pages[:128], seed=0),
                        BenchRun(backends=[_FlakyOnTheEngine.name], warm_up=False))
    (r,) = doc["results"]
    f = r["faults"]
    assert f["driver"]["device_errors"] > 0
    # every failed call counts: a readahead's sweep fails, then its retries one by one, and
    # each retry that fails too falls back to software
    assert 0 < f["driver"]["sw_fallbacks"] <= f["driver"]["device_errors"]
    assert f["driver"]["timeouts"] == 0 and f["driver"]["failed"] == 0
    assert f["raw"]["load_errors"] == f["load"]["errors"] == f["store"]["errors"] == 0
    assert f["any"] is True and f["passes_with_faults"] == 1
    assert r["verified_pages"] == r["pages"] and not bench_failed(doc)
    assert rows(doc)[0][-2] != "-"


def test_faults_of_any_pass_are_summed(pages: np.ndarray) -> None:
    """With --repeat 2 and faults in the first pass only, the result once showed the last
    pass's faults alone (none). Counts are summed over the passes, ``any`` is any pass's."""
    _FlakyOnTheEngine.budget = 3  # all spent in the first pass
    with registered(_FlakyOnTheEngine):
        doc = run_bench(build_workload("roundtrip", pages[:128], seed=0),
                        BenchRun(backends=[_FlakyOnTheEngine.name], warm_up=False, repeat=2))
    assert _FlakyOnTheEngine.budget == 0
    (r,) = doc["results"]
    f = r["faults"]
    assert f["driver"]["device_errors"] == 3  # each failed call, the readahead sweep's too
    # every failed call counts: a readahead's sweep fails, then its retries one by one, and
    # each retry that fails too falls back to software
    assert 0 < f["driver"]["sw_fallbacks"] <= f["driver"]["device_errors"]
    assert f["any"] is True and f["passes_with_faults"] == 1
    assert rows(doc)[0][-2] != "-"
    assert schema_problems(doc) == []


@pytest.mark.parametrize("wrong", ["short", "long"])
def test_a_readahead_call_with_the_wrong_page_count_is_not_verified(
        pages: np.ndarray, monkeypatch: pytest.MonkeyPatch, wrong: str) -> None:
    """A ``swap_in_batch`` that returns fewer pages than the slots asked for had its missing
    pages counted as verified. Too few: each missing page is lost; too many: no page can be
    matched to its slot, so the whole cluster is lost. Exit status 1 either way."""
    from hwzswap.frontswap import system as system_mod

    real_open = system_mod.open_zswap

    def open_dropping(*args: Any, **kw: Any) -> Any:
        system = real_open(*args, **kw)
        batch = system.swap_in_batch

        def wrong_count(typ: int, offsets: Any, **kw: Any) -> list[bytes]:
            got = batch(typ, offsets, **kw)
            return got[:-1] if wrong == "short" else got + got[:1]

        system.swap_in_batch = wrong_count
        return system

    monkeypatch.setattr(system_mod, "open_zswap", open_dropping)
    doc = run_bench(build_workload("roundtrip", pages[:64], seed=0),
                    BenchRun(backends=["lz4"], warm_up=False))
    (r,) = doc["results"]
    lost = r["load_failures"]
    assert lost > 0 and r["mismatches"] == 0
    assert r["verified_pages"] == r["pages"] - lost
    if wrong == "long":
        assert r["verified_pages"] < r["pages"] // 2
    assert any("swap_in_batch returned" in e for e in r["faults"]["examples"])
    assert bench_failed(doc)


def test_async_figures_that_overlap_loads_are_not_split_or_compared_alone(
        pages: np.ndarray) -> None:
    """In async mode the worker's compressions run while later calls are timed: on a stream
    whose chunks hold loads after stores (``mixed``) the device time read around each call put
    compression on the loads, and the store figure left it out. Such a row says so
    (``store_overlaps_loads``), gives no split of the device time by direction, and the table
    shows the whole-stream wall figure and a note; synchronous modes, and ``roundtrip`` whose
    fill is drained before the first load, keep the split."""
    doc = run_bench(build_workload("mixed", pages[:96], seed=0),
                    BenchRun(backends=["842-nx"], warm_up=False, batching="reclaim,async"))
    assert schema_problems(doc) == []
    by = {r["batching"]: r for r in doc["results"]}
    a, rec = by["async"], by["reclaim"]
    assert a["store_overlaps_loads"] is True and rec["store_overlaps_loads"] is False
    assert a["device_store_us_per_page"] is None and a["device_load_us_per_page"] is None
    assert "async" in a["device_split_note"] and a["device_us_per_page"] > 0
    assert rec["device_split_note"] is None and rec["device_store_us_per_page"] > 0
    for row in rows(doc):
        assert row[15] != "-"  # wall µs/pg
    md = markdown(doc)
    assert "async: store pg/s times the submissions" in md

    # (the mode line is checked on roundtrip: on mixed, whether an async page is invalidated
    # while in flight, so never compressed, depends on timing, and then no mode is named)
    doc = run_bench(build_workload("roundtrip", pages[:64], seed=0),
                    BenchRun(backends=["842-nx"], warm_up=False, batching="reclaim,async"))
    r = {x["batching"]: x for x in doc["results"]}["async"]
    assert r["store_overlaps_loads"] is False and r["device_split_note"] is None
    assert r["device_store_us_per_page"] > 0 and r["device_load_us_per_page"] > 0
    assert "async: store pg/s" not in markdown(doc)
    (line,) = mode_summary(doc)
    assert "least wall time per page stored or loaded" in line
