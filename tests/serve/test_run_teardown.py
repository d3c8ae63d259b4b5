"""``hwzswap run`` and the server's teardown: a failure of it once the chain is gone (the
recording, closing the engine) is never swallowed. The recording's own failure is reported by
``--record`` (only its part); any other fails the run (exit 1) with the row kept and the server
log kept and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serveutil import hwzswap_cli, small_config

from hwzswap.cli import main
from hwzswap.serve import chain, run


def test_a_recording_the_server_cannot_write_is_reported_alone(state_dir: Path,
                                                               tmp_path: Path) -> None:
    """The command turns the --record folder into a file, so the server's write of the
    recording fails at teardown (a real failure of the chain's strict teardown): --record says
    so with the server's reason, and nothing else is said to have failed."""
    folder = tmp_path / "out"
    rec = folder / "x.hwzwl"
    p = hwzswap_cli("run", "--memory-limit", "32M", "--config", small_config(tmp_path),
                    "--record", str(rec), "--", "sh", "-c", f"rmdir {folder} && touch {folder}",
                    timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    line = next(ln for ln in p.stderr.splitlines() if f"--record {rec}: not written" in ln)
    assert line.endswith(f"the server could not write it: [Errno 17] File exists: "
                         f"'{folder}'"), line
    assert "teardown failed" not in p.stderr and "TEARDOWN" not in p.stdout
    assert not list(state_dir.glob("*.log"))  # a clean teardown otherwise: no log left


def test_teardown_problems_are_split_by_kind() -> None:
    problems = ["recording: [Errno 28] No space left on device; really",
                "closing the engine: OSError: boom"]
    assert run.teardown_problems(problems) == {
        "recording": "[Errno 28] No space left on device; really",
        "closing the engine": "OSError: boom"}
    assert run.teardown_problems(["something new", "and more"]) == {
        "": "something new; and more"}


def test_a_failed_engine_close_fails_the_run_and_keeps_the_row(
        state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The engine cannot be made to fail its close from outside the server, so the real
    teardown runs (strict, as run must ask for it) and then the failure the chain reports for
    that case is raised: the run exits 1, its row is written, the log is named."""
    real = chain.swap_off
    asked = []

    def swap_off(name: str, *a: object, **kw: object) -> list[str]:
        asked.append(kw.get("strict"))
        real(name, *a, **kw)
        raise chain.ChainTeardownError(
            f"hwzswap swap off {name}: the chain is torn down, but the server's teardown "
            f"failed: closing the engine: OSError: boom (server log kept: "
            f"{chain.log_path(name)})", ["closing the engine: OSError: boom"])

    monkeypatch.setattr(chain, "swap_off", swap_off)
    out = tmp_path / "r.json"
    rc = main(["run", "--memory-limit", "32M", "--config", small_config(tmp_path), "--json",
               str(out), "--", "true"])
    err = capsys.readouterr()
    assert asked == [True]
    assert rc == 1, err
    assert "the server's teardown failed: closing the engine: OSError: boom" in err.err
    assert "server log kept: " in err.err and "TEARDOWN FAILED: config" in err.out
    row = json.loads(out.read_text())["runs"][0]
    assert row["exit_code"] == 0 and "closing the engine" in row["teardown_error"]
