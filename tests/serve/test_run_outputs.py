"""``hwzswap run``'s output files: a recording is written where asked (missing folders made,
as ``--json`` makes them) and announced only once it exists; a recording that could not be
written fails the run (exit 1) saying why."""

from __future__ import annotations

import sys
from pathlib import Path

from serveutil import PROG, hwzswap_cli, small_config

from hwzswap.bench.workload import load_workload


def test_record_makes_missing_folders(state_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "new" / "dir" / "kernel.hwzwl"
    p = hwzswap_cli("run", "--memory-limit", "20M", "--config", small_config(tmp_path),
                    "--record", str(rec), "--", sys.executable, PROG, "24", timeout=180)
    assert p.returncode == 0, p.stderr + p.stdout
    assert f"recorded request stream: {rec}" in p.stdout
    assert load_workload(rec).counts()["store_pages"] > 1000


def test_nothing_recorded_is_no_recording(state_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "made" / "x.hwzwl"
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--record", str(rec), "--", "true", timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "recorded request stream" not in p.stdout
    assert f"--record {rec}: not written: the command swapped nothing out" in p.stderr
    assert not rec.exists() and not rec.parent.exists()  # the folder it made is gone again


def test_a_later_comparison_that_fails_keeps_what_was_measured(state_dir: Path,
                                                               tmp_path: Path) -> None:
    """base runs; lz4's run then fails (its command hangs past --timeout): base's results are
    still printed and written, lz4 is a FAILED run (not an abort), exit 1."""
    import json

    flag = tmp_path / "second"
    out = tmp_path / "r.json"
    script = f"if [ -e {flag} ]; then sleep 30; fi; touch {flag}"
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--compare", "base,lz4", "--timeout", "2", "--json", str(out), "--",
                    "sh", "-c", script, timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "lz4: the command ran past --timeout 2 s and was killed" in p.stderr
    assert "FAILED: lz4: the command ran past --timeout 2 s" in p.stdout
    res = json.loads(out.read_text())
    assert [r["label"] for r in res["runs"]] == ["base", "lz4"]
    assert res["runs"][0]["exit_code"] == 0 and not res["runs"][0]["failure"]
    assert "ran past --timeout 2 s" in res["runs"][1]["failure"]
    assert res["aborted"] is None and res["changes"][1]["invalid"]
