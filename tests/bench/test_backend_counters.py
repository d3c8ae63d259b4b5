"""``backend_counters``: each result row reports the backend's own work in that row (the stack's
chunks of its last pass), not the backend object's totals since it was built, which a bench
reuses across its engine modes, warm-ups and pool sizings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, CounterSpan, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=128)


def _rows(pages: np.ndarray, backend: str, modes: str) -> dict[str, dict[str, Any]]:
    doc = run_bench(build_workload("roundtrip", pages, seed=0),
                    BenchRun(backends=[backend], batching=modes))
    assert not doc["failed"] and not schema_problems(doc)
    return {r["batching"]: r for r in doc["results"]}


def test_opencl_rows_count_their_own_launches_whatever_the_mode_order(pages: np.ndarray
                                                                      ) -> None:
    first = _rows(pages, "lz4-opencl", "page,reclaim")
    second = _rows(pages, "lz4-opencl", "reclaim,page")
    keys = ("compress_pages", "compress_launches", "decompress_pages", "decompress_launches")
    for mode in ("page", "reclaim"):
        a, b = first[mode]["backend_counters"], second[mode]["backend_counters"]
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}, mode
    page, reclaim = first["page"]["backend_counters"], first["reclaim"]["backend_counters"]
    stored = first["page"]["store_pages"]
    # the stack's stores alone: page mode makes one launch a page, reclaim one a pass
    assert page["compress_launches"] == page["compress_pages"] <= stored
    assert reclaim["compress_pages"] == page["compress_pages"]
    assert reclaim["compress_launches"] == first["reclaim"]["workload_pages"] // 32
    # the raw pass's work is apart, and static settings keep their value
    assert first["reclaim"]["backend_counters_raw"]["compress_pages"] == stored
    assert "config" in first["reclaim"]["backend_counters_end_values"]
    assert reclaim["config"]["batch_size"] > 0


def test_842_requests_per_row_do_not_grow_with_earlier_modes(pages: np.ndarray) -> None:
    rows = _rows(pages, "842-nx", "page,reclaim,async")
    reqs = [r["backend_counters"]["requests"] for r in rows.values()]
    assert len(set(reqs)) == 1, reqs  # the same pages compressed and decompressed in each
    for r in rows.values():
        c = r["backend_counters"]
        assert c["requests"] == c["comp_complete"] + c["decomp_complete"]
        assert sum(c["comp_times"]) == c["comp_complete"]  # a histogram: per-bucket changes
        assert c["clock"] == "virtual" and r["backend_counters_end_values"] == ["clock"]


def test_counter_span_sums_changes_and_keeps_levels_at_their_end() -> None:
    span = CounterSpan(gauges={"queue_depth"})
    span.add({"ops": 10, "queue_depth": 4, "hist": [1, 2], "codes": {"ok": 3},
              "log": ["a"], "mode": "x", "level_now": 9.0, "cfg": {"k": 1, "s": "y"}},
             {"ops": 15, "queue_depth": 2, "hist": [2, 2], "codes": {"ok": 4, "bad": 1},
              "log": ["a", "b"], "mode": "x", "level_now": 7.0, "cfg": {"k": 1, "s": "y"}})
    # the harness's own reads between stretches (raw pass, another mode) do not count
    span.add({"ops": 100, "queue_depth": 8, "hist": [5, 5], "codes": {"ok": 9, "bad": 1},
              "log": ["a", "b", "c"], "mode": "z", "level_now": 1.0,
              "cfg": {"k": 1, "s": "y"}},
             {"ops": 101, "queue_depth": 6, "hist": [5, 7], "codes": {"ok": 10, "bad": 1},
              "log": ["a", "b", "c", "d"], "mode": "z", "level_now": 3.0,
              "cfg": {"k": 1, "s": "y"}})
    assert span.value() == {
        "ops": 6, "queue_depth": 6, "hist": [1, 2], "codes": {"ok": 2, "bad": 1},
        "log": ["b", "d"], "mode": "z",
        "level_now": 3.0,  # went down in a stretch: not a count, its end value
        "cfg": {"k": 1, "s": "y"},
    }
    assert span.end_value_keys() == ["cfg", "level_now", "mode", "queue_depth"]
    # the counts alone, top level, that moved: what faults.backend and timeouts read
    assert span.counts() == {"ops": 6}
    assert CounterSpan().value() == {} and CounterSpan().counts() == {}


def test_declared_gauges_are_end_values_whatever_their_name_and_motion() -> None:
    """Only the backend's ``gauges`` declaration makes a rising number a level: a declared
    one (a dotted name reaches into a mapping) keeps its end value though it only rose; an
    undeclared one that only rose shows its rise, whatever its name says (no name rule)."""
    span = CounterSpan(gauges={"bytes_in_flight", "cfg.batch"})
    for before, after in (({"bytes_in_flight": 0, "peak_pages": 1, "cfg": {"batch": 8, "n": 1}},
                           {"bytes_in_flight": 4096, "peak_pages": 3,
                            "cfg": {"batch": 8, "n": 2}}),
                          ({"bytes_in_flight": 4096, "peak_pages": 3,
                            "cfg": {"batch": 16, "n": 2}},
                           {"bytes_in_flight": 8192, "peak_pages": 4,
                            "cfg": {"batch": 16, "n": 5}})):
        span.add(before, after)
    assert span.value() == {"bytes_in_flight": 8192, "peak_pages": 3,
                            "cfg": {"batch": 16, "n": 4}}
    assert span.end_value_keys() == ["bytes_in_flight", "cfg.batch"]
    assert span.counts() == {"peak_pages": 3}


def test_the_built_in_backends_declare_their_settings() -> None:
    from hwzswap.backends.nx842.driver import Nx842Backend
    from hwzswap.backends.opencl.backend import Lz4OpenCLBackend
    from hwzswap.backends.lz4 import Lz4Backend

    assert Lz4Backend.gauges == frozenset()  # the contract's default: every number a count
    assert Nx842Backend.gauges == {"clock"}
    assert Lz4OpenCLBackend.gauges == {"device", "config", "config_source"}


@pytest.mark.parametrize("bad", ["queue_depth", 7, ["queue_depth", 3]])
def test_a_gauges_declaration_that_is_not_names_fails_the_row_naming_it(
        pages: np.ndarray, bad: Any) -> None:
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.bench.runner import base_config, compile_workload, run_backend
    from hwzswap.errors import BackendError

    class Misdeclared(Lz4Backend):
        gauges = bad  # type: ignore[assignment]

    cw = compile_workload(build_workload("roundtrip", pages[:16], seed=0))
    with pytest.raises(BackendError, match="'gauges' must be a set of counters\\(\\) key names"):
        run_backend(Misdeclared(), cw, base_config(None), repeat=1, warm_up=False)


def test_counter_span_finds_int_keys_and_logs_that_appear_late() -> None:
    """A backend's own keys are used to look up the earlier read (an int key, a histogram by
    size, used to find nothing and add the total since startup each time); a log that first
    appears during a stretch started empty (its earlier entries are not the row's)."""
    span = CounterSpan()
    span.add({"by": {4096: 100}, 7: 50}, {"by": {4096: 103}, 7: 51, "errors": ["s1"]})
    span.add({"by": {4096: 300}, 7: 60, "errors": ["s1", "r1"]},
             {"by": {4096: 302}, 7: 60, "errors": ["s1", "r1", "s2"]})
    assert span.value() == {"by": {"4096": 5}, "7": 1, "errors": ["s1", "s2"]}


def test_counter_span_leaves_out_a_stretch_whose_read_failed() -> None:
    """``counters()`` raised on one side: that stretch is not counted (its change cannot be
    told from the totals), and ``error`` says so; a backend whose every read fails shows the
    error."""
    span = CounterSpan()
    span.add({"error": "RuntimeError: boom"}, {"ops": 1000})
    span.add({"ops": 1000}, {"ops": 1003})
    span.add({"ops": 1003}, {"error": "RuntimeError: boom"})
    assert span.value() == {"ops": 3, "error": "2 of 3 stretches left out, a counters() read "
                                               "failed: RuntimeError: boom"}
    broken = CounterSpan()
    broken.add({"error": "RuntimeError: boom"}, {"error": "RuntimeError: boom"})
    assert broken.value() == {"error": "RuntimeError: boom"}


def test_a_setting_named_timeout_is_not_a_timeout_seen(pages: np.ndarray) -> None:
    """A level or setting with "timeout" in its name (declared a gauge: reported at its end
    value) does not count as timeouts, though it rose: the row's device figures stay."""
    from hwzswap.backends.nx842.driver import Nx842Backend
    from hwzswap.bench.runner import base_config, compile_workload, run_backend

    class WithSetting(Nx842Backend):
        gauges = Nx842Backend.gauges | {"timeout_streak"}
        _reads = 0

        def counters(self) -> dict[str, Any]:
            self._reads += 1  # a level that only rises: only the declaration tells
            return {**super().counters(), "timeout_streak": self._reads}

    cw = compile_workload(build_workload("roundtrip", pages[:64], seed=0))
    r = run_backend(WithSetting(), cw, base_config(None), repeat=1)
    assert r["device_timeouts"] == 0 and r["device_figures_note"] is None
    assert r["backend_counters_end_values"] == ["clock", "timeout_streak"]
    assert "timeout_streak" not in r["faults"]["backend"]
    assert r["device_overlap"]["hidden_share"] is not None


def test_counters_that_json_cannot_say_still_make_a_valid_document(pages: np.ndarray) -> None:
    """NaN or an infinity in a backend's counters is written as its text: the results file
    stays JSON any reader parses (json.dumps wrote a bare NaN)."""
    import json

    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.bench.runner import base_config, compile_workload, run_backend

    class Odd(Lz4Backend):
        def counters(self) -> dict[str, Any]:
            return {"x": float("nan"), "y": float("inf"), 7: 1}

    cw = compile_workload(build_workload("roundtrip", pages[:64], seed=0))
    r = run_backend(Odd(), cw, base_config(None), repeat=1)
    text = json.dumps(r, allow_nan=False)  # raises on a bare NaN
    assert json.loads(text)["backend_counters"]["x"] == "nan"


def test_faults_backend_is_the_passes_failure_counts(pages: np.ndarray) -> None:
    """``faults.backend``: the backend's counts with a failure word in their name over the
    whole pass (the raw pass's work and the stack's), from the same differencing as
    ``backend_counters``: changes only, no zeros, no levels."""
    from hwzswap.backends.nx842.driver import Nx842Backend
    from hwzswap.bench.runner import base_config, compile_workload, run_backend

    class WithLevel(Nx842Backend):
        gauges = Nx842Backend.gauges | {"error_budget"}

        def counters(self) -> dict[str, Any]:
            return {**super().counters(), "error_budget": 1000 + self._comp_complete}

    cw = compile_workload(build_workload("roundtrip", pages[:64], seed=0))
    r = run_backend(WithLevel(fault_rate=0.05, fault_seed=3), cw, base_config(None), repeat=1,
                    warm_up=False)
    fb = r["faults"]["backend"]
    stack, raw = r["backend_counters"], r["backend_counters_raw"]
    assert fb["faults_injected"] > 0 and r["faults"]["any"]
    assert fb["faults_injected"] == stack["faults_injected"] + raw["faults_injected"]
    assert "error_budget" not in fb and all(v for v in fb.values())
    assert "timeouts" not in fb  # a failure count that did not move is left out
