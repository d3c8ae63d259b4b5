"""The bench names async mode's design in every async row, and a design a device cannot take
is skipped with the reason, not counted as a failure."""

from __future__ import annotations

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.report import markdown, rows
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


def _run(config: dict | None = None) -> dict:
    doc = run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                    BenchRun(backends=["lz4", "842-nx"], batching="page,async", repeat=1,
                             warm_up=False, config=config))
    assert schema_problems(doc) == [] and not doc["failed"], doc["failed"]
    return doc


def test_each_async_row_names_its_design_in_the_json_and_the_table() -> None:
    doc = _run()
    got = {(r["backend"], r["batching"]): r.get("async_submit") for r in doc["results"]}
    assert got == {("lz4", "page"): None, ("lz4", "async"): "worker",
                   ("842-nx", "page"): None, ("842-nx", "async"): "queue"}
    modes = {(row[0], row[1]) for row in rows(doc)}
    assert {("lz4", "async/worker"), ("842-nx", "async/queue"), ("lz4", "page")} <= modes


def test_queue_asked_of_a_device_without_one_skips_that_row_with_the_reason() -> None:
    doc = _run({"zswap": {"async_submit": "queue"}})
    got = {(r["backend"], r["batching"]) for r in doc["results"]}
    assert got == {("lz4", "page"), ("842-nx", "page"), ("842-nx", "async")}
    (skip,) = doc["skipped"]
    assert (skip["backend"], skip["batching"]) == ("lz4", "async")
    assert "zswap.async_submit: queue needs an asynchronous device" in skip["reason"]
    assert "skipped lz4 (async): <dict>: zswap.async_submit: queue" in markdown(doc)


def test_nothing_measured_because_of_the_design_says_so(tmp_path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "q.yaml"
    cfg.write_text("zswap: {async_submit: queue}\n")
    res = subprocess.run([sys.executable, "-m", "hwzswap", "bench", "--pages", "16",
                          "--repeat", "1", "--backends", "lz4", "--batching", "async",
                          "--config", str(cfg), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert f"skipped lz4 (async): {cfg}: zswap.async_submit: queue" in res.stderr
    assert ("nothing was measured: every requested row was skipped (its backend cannot run "
            "here, or cannot take the engine design the config asks for)") in res.stderr
