"""``hwzswap run --timeout``: a command that runs past it is one FAILED run of a comparison
(the others still run, the table and --json still come out, exit 1), not an abort; the limit
is named as given."""

from __future__ import annotations

import json
from pathlib import Path

from serveutil import hwzswap_cli, small_config


def test_a_timed_out_run_is_a_failed_row_and_the_comparison_goes_on(state_dir: Path,
                                                                   tmp_path: Path) -> None:
    flag = tmp_path / "first"
    out = tmp_path / "t.json"
    # the first run hangs (past --timeout), the second finds the flag and exits at once
    script = f"if [ ! -e {flag} ]; then touch {flag}; sleep 30; fi"
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--compare", "lz4,lzo", "--timeout", "0.5", "--json", str(out), "--",
                    "sh", "-c", script, timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "lz4: the command ran past --timeout 0.5 s and was killed" in p.stderr
    assert "lz4 (FAILED)" in p.stdout and "timeout" in p.stdout
    assert "FAILED: lz4: the command ran past --timeout 0.5 s" in p.stdout
    assert "NOT MEASURED" not in p.stdout and "lzo (FAILED)" not in p.stdout
    res = json.loads(out.read_text())
    assert [r["label"] for r in res["runs"]] == ["lz4", "lzo"]
    assert res["runs"][0]["timed_out"] == "ran past --timeout 0.5 s and was killed"
    assert res["runs"][0]["failure"] == res["runs"][0]["timed_out"]
    assert res["runs"][1]["exit_code"] == 0 and not res["runs"][1]["failure"]
    assert res["aborted"] is None and res["not_run"] == []
