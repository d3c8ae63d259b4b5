"""A small sweep run for real on this machine: each run its own ``hwzswap bench`` process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hwzswap.bench.results import RESULT_FIELDS
from hwzswap.cli import main
from hwzswap.sweep import store
from hwzswap.sweep.execute import run_sweep
from hwzswap.sweep.merge import document_problems
from hwzswap.sweep.plan import expand
from hwzswap.sweep.report import markdown, speedups, table_rows
from hwzswap.sweep.spec import load_sweep, parse_sweep
from hwzswap.sweep.worker import execute_run

from sweep_helpers import write_sweep

PNG = b"\x89PNG\r\n\x1a\n"


def _records(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["coords"]["backend"], r["coords"]["zswap.max_compression_ratio"]): r
            for r in doc["records"]}


def test_records_of_a_local_sweep(swept: dict[str, Any]) -> None:
    doc = swept["outcome"].doc
    assert document_problems(doc) == []
    assert doc["runs"]["planned"] == 3 and doc["runs"]["ran"] == 3
    assert (doc["runs"]["ok"], doc["runs"]["failed"], doc["runs"]["missing"]) == (2, 1, 0)
    recs = _records(doc)
    for key in (("lz4", 90), ("zstd", 90)):
        rec = recs[key]
        assert rec["status"] == "ok" and rec["failure"] is None
        assert rec["verified_pages"] == rec["pages"] == 48 and rec["mismatches"] == 0
        assert rec["backend"] == key[0] and rec["host"] == os.uname().nodename
        assert rec["config"]["zswap"]["max_compression_ratio"] == 90
        assert rec["overridden"] == {}
        assert rec["workload"]["seed"] == 3 and rec["machine"]["cores"] >= 1
        assert rec["ratio"] > 1.0 and rec["store_pages_per_s"] > 0
        # a record holds the bench's whole per-backend result, with its types
        for key, types in RESULT_FIELDS.items():
            assert isinstance(rec[key], types), key
    # the run whose config is refused failed in its own process, and the others completed
    bad = recs[("lz4", 250)]
    assert bad["status"] == "failed" and bad["failure"] == "exit" and bad["exit_code"] == 2
    # named by the sweep file's axis that set it, not by the run's generated config.yaml
    assert (f"the run's config is refused: {swept['spec'].source}: "
            "axes.zswap.max_compression_ratio[1]: must be an integer 1..100, got 250"
            in bad["reason"])
    assert "config.yaml" not in bad["reason"]
    assert "hwzswap-sweep-" not in bad["reason"]  # the temporary config's path is not shown
    assert "max_compression_ratio" in bad["stderr_tail"]
    assert [r["run_id"] for r in doc["records"]] == [r.run_id for r in swept["plan"].runs]


def test_one_file_per_run_and_the_reports(swept: dict[str, Any]) -> None:
    out: Path = swept["out"]
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == sorted(f"{r.run_id}.json" for r in swept["plan"].runs)
    merged = json.loads((out / "sweep.json").read_text())
    assert merged["records"] == json.loads(json.dumps(swept["outcome"].doc["records"]))
    for png in ("throughput_vs_ratio.png", "speedup_vs_lz4.png"):
        assert (out / png).read_bytes()[:8] == PNG
    table = (out / "table.md").read_text()
    assert "## backend = lz4" in table and "## backend = zstd" in table
    assert "failed: exit" in table and "Runs that did not succeed" in table


def test_table_grouped_by_any_axis(swept: dict[str, Any]) -> None:
    doc = swept["outcome"].doc
    cols, sections = table_rows(doc, "zswap.max_compression_ratio")
    assert cols[:3] == ["backend", "mode", "status"]  # batching not an axis: a mode column
    assert [g for g, _ in sections] == ["90", "250"]
    assert [row[:2] for row in sections[0][1]] == [["lz4", "reclaim"], ["zstd", "reclaim"]]
    assert sections[1][1][0][2] == "failed: exit"
    assert "## zswap.max_compression_ratio = 250" in markdown(doc, "zswap.max_compression_ratio")
    sp = speedups(doc)
    assert list(sp) == ["reclaim"] and set(sp["reclaim"]) == {"zstd"}
    lz4 = _records(doc)[("lz4", 90)]["store_pages_per_s"]
    zstd = _records(doc)[("zstd", 90)]["store_pages_per_s"]
    assert sp["reclaim"]["zstd"]["store"] == pytest.approx(zstd / lz4)


def test_resume_skips_finished_runs(swept: dict[str, Any], tmp_path: Path) -> None:
    out: Path = swept["out"]
    before = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    again = run_sweep(swept["spec"], swept["plan"], out, jobs=2, timeout=300)
    assert again.ran == [] and len(again.resumed) == 3
    assert again.doc["runs"]["ran"] == 0 and again.doc["runs"]["resumed"] == 3
    assert {p.name: p.read_bytes() for p in (out / "runs").iterdir()} == before
    # a record removed (or torn) is the one run done again
    zstd = next(r for r in swept["plan"].runs if r.backend == "zstd")
    store.record_path(out, zstd.run_id).write_text("{torn")
    third = run_sweep(swept["spec"], swept["plan"], out, jobs=1, timeout=300)
    assert third.ran == [zstd.run_id]
    assert store.read_record(out, zstd.run_id)["status"] == "ok"
    # --retry-failed runs again the failed run only
    failed = [r.run_id for r in swept["plan"].runs if r.coords["zswap.max_compression_ratio"] == 250]
    fourth = run_sweep(swept["spec"], swept["plan"], out, jobs=1, timeout=300,
                       retry_failed=True)
    assert fourth.ran == failed


def test_a_run_past_its_timeout_is_killed_and_failed(tmp_path: Path) -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4"]}, "fixed": {"pages": 48, "repeat": 1}})
    run = expand(spec).runs[0]
    rec = execute_run(run.runspec(), timeout=0.05)  # the interpreter alone takes longer
    assert rec["status"] == "failed" and rec["failure"] == "timeout"
    assert rec["reason"] == "timed out after 0.05 s (the run was killed)"
    assert rec["exit_code"] == -9 and rec["wall_s"] < 30


def test_the_kernel_structure_is_a_sweep_axis() -> None:
    """reclaim_batch and folio_pages reach the bench (--reclaim-batch / --folio-pages), and
    the record says which structure the stream was cut into."""
    spec = parse_sweep({"axes": {"backend": ["lz4"], "reclaim_batch": [1, 8],
                                 "folio_pages": ["1", "1:1,16:1"]},
                        "fixed": {"pages": 64, "repeat": 1, "load_batch": 1}})
    runs = expand(spec).runs
    assert len(runs) == 4
    args = runs[1].bench_args()
    assert args[args.index("--reclaim-batch") + 1] == "1"
    assert args[args.index("--folio-pages") + 1] == "1:1,16:1"
    rec = execute_run(runs[3].runspec(), timeout=300)
    assert rec["status"] == "ok", rec.get("reason")
    structure = rec["workload"]["structure"]
    assert structure["reclaim_batch"] == 8 and structure["load_batch"] == 1
    assert structure["folio_mix"] == [[1, 0.5], [16, 0.5]]
    assert rec["verified_pages"] == rec["pages"] and rec["mismatches"] == 0


def test_unavailable_backend_is_a_failed_record(tmp_path: Path) -> None:
    spec = parse_sweep({"axes": {"backend": ["lz4-opencl"], "params.device_type": ["gpu"]},
                        "fixed": {"pages": 48, "repeat": 1}})
    outcome = run_sweep(spec, expand(spec), tmp_path / "o", timeout=300, plots=False)
    rec = outcome.doc["records"][0]
    assert rec["resources"] == {"CPU": 1.0, "GPU": 1.0}
    if _has_opencl_gpu():  # a machine with a GPU runs it
        assert rec["status"] == "ok" and rec["verified_pages"] == 48
    else:  # elsewhere the run says why, in a FAILED record (a device named: an error)
        assert (rec["status"], rec["failure"]) == ("failed", "error")
        assert "parameter 'device_type' ('gpu') names a device that is not here" in rec["reason"]


def _has_opencl_gpu() -> bool:
    import pyopencl as cl

    return any(d.type & cl.device_type.GPU
               for p in cl.get_platforms() for d in p.get_devices())


def test_command_line(small_sweep: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["sweep", str(small_sweep), "--dry-run", "-o", str(out)]) == 1  # one refused
    captured = capsys.readouterr()
    text = captured.out
    assert "3 runs (4 combinations, 1 excluded" in text and "must be an integer" in text
    assert "1 of 3 runs would fail: the config loader refuses their config" in captured.err
    assert not out.exists()
    assert main(["sweep", str(small_sweep), "--group-by", "seed"]) == 2
    assert "--group-by seed: not an axis" in capsys.readouterr().err
    bad = write_sweep(tmp_path, {"axes": {"backend": ["lz4"], "pagez": [1]}}, "bad.yaml")
    assert main(["sweep", str(bad)]) == 2
    assert "bad.yaml: axes.pagez: unknown setting" in capsys.readouterr().err
    # a pool key the sweep sets wins over the workload's own pool (the bench keeps the keys
    # its config sets); a swap file smaller than the stream is raised to fit it, and the
    # record says that setting lost
    one = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                 "fixed": {"pages": 48, "repeat": 1,
                                           "zswap.max_pool_percent": 7,
                                           "swap.nr_pages": 16}}, "one.yaml")
    assert main(["sweep", str(one), "-o", str(out), "--group-by", "backend"]) == 0
    captured = capsys.readouterr()
    assert "1 runs, 1 ok" in captured.out and "wrote json" in captured.err
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["command"].startswith("hwzswap sweep ") and "--group-by backend" in doc["command"]
    assert not (out / "speedup_vs_lz4.png").exists()  # lz4 alone: nothing to compare
    rec = doc["records"][0]
    assert rec["config"]["zswap"]["max_pool_percent"] == 7
    assert rec["pool_limit_source"] == "your config"
    used = rec["config"]["swap"]["nr_pages"]
    assert used >= 48
    assert rec["overridden"] == {"swap.nr_pages": {"asked": 16, "used": used}}
    assert "did not take swap.nr_pages (asked 16" in (out / "table.md").read_text()
    assert "did not take swap.nr_pages" in captured.out
    failing = write_sweep(tmp_path, {"axes": {"backend": ["lz4"]},
                                     "fixed": {"zswap.max_compression_ratio": 0}}, "f.yaml")
    assert main(["sweep", str(failing), "-o", str(tmp_path / "q"), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    run = expand(load_sweep(failing)).runs[0]
    # --quiet still names the run that failed, and why, in one line on stderr
    assert captured.err.startswith(f"hwzswap sweep: FAILED {run.run_id} [exit]: exit status 2: ")
    assert (f"{failing}: fixed.zswap.max_compression_ratio: must be an integer 1..100, got 0"
            in captured.err)
    assert len(captured.err.splitlines()) == 1
    # resumed, the failed record is still named (it is why the exit status is 1)
    assert main(["sweep", str(failing), "-o", str(tmp_path / "q"), "--quiet"]) == 1
    assert capsys.readouterr().err == captured.err


def test_an_async_design_a_backend_cannot_take_is_not_applicable(tmp_path: Path) -> None:
    """zswap.async_submit: queue on lz4 (no op queue): the bench skips that row with the
    reason; the sweep's record says not applicable (the settings' doing, not the host's)."""
    spec = parse_sweep({"axes": {"backend": ["lz4"]},
                        "fixed": {"pages": 48, "repeat": 1, "batching": "async",
                                  "zswap.async_submit": "queue"}})
    rec = execute_run(expand(spec).runs[0].runspec(), timeout=300)
    assert (rec["status"], rec["failure"]) == ("failed", "not_applicable"), rec
    assert "zswap.async_submit: queue needs an asynchronous device" in rec["reason"]
