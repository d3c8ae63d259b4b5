"""``hwzswap sweep --jobs N`` runs N of its runs at once, and never more: seen through the run
processes the local executor starts and ends (its hooks around each ``hwzswap bench``
process), not through timings."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from hwzswap.cli import main
from hwzswap.sweep import local

from sweep_helpers import write_sweep

#: Three runs that succeed, of a few seconds each.
THREE_RUNS: dict[str, Any] = {
    "axes": {"backend": ["lz4", "zstd", "lzo"]},
    "fixed": {"workload": "roundtrip", "pages": 48, "repeat": 1, "seed": 3},
}


def _watch_runs(monkeypatch: pytest.MonkeyPatch, wave: int, wait_s: float) -> dict[str, Any]:
    """Wrap the executor's :func:`execute_run` (the real one still runs each run) to note each
    run process from its start to its end, and the most running at once. Each of the first
    ``wave`` runs waits at its start (``wait_s`` at most) until ``wave`` runs are running, so
    a slow machine starting them one after another cannot hide that they may run together."""
    real = local.execute_run
    cv = threading.Condition()
    seen: dict[str, Any] = {"running": set(), "most": 0, "started": 0, "ended": 0}

    def execute_run(runspec: dict[str, Any], timeout: float, on_start: Any = None,
                    on_end: Any = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        def started(proc: Any) -> None:
            if on_start is not None:
                on_start(proc)
            with cv:
                seen["running"].add(proc.pid)
                seen["started"] += 1
                seen["most"] = max(seen["most"], len(seen["running"]))
                cv.notify_all()
                if seen["started"] <= wave:
                    cv.wait_for(lambda: len(seen["running"]) >= wave, timeout=wait_s)

        def ended(proc: Any) -> None:
            with cv:
                seen["running"].discard(proc.pid)
                seen["ended"] += 1
                cv.notify_all()
            if on_end is not None:
                on_end(proc)

        return real(runspec, timeout, started, ended, *args, **kwargs)

    monkeypatch.setattr(local, "execute_run", execute_run)
    return seen


def test_jobs_n_runs_n_at_once_and_no_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Three runs with --jobs 2: two of them run at once, the third after one ended. A pool
    of one thread (the first run then waits its 60 s alone), or of more, is seen."""
    seen = _watch_runs(monkeypatch, wave=2, wait_s=60)
    path = write_sweep(tmp_path, THREE_RUNS)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--jobs", "2",
                 "--quiet"]) == 0, capsys.readouterr().err
    assert seen["started"] == seen["ended"] == 3 and not seen["running"]
    assert seen["most"] == 2


def test_without_jobs_one_run_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The default is one run at a time (figures undisturbed): the first run waits a second at
    its start for a second run, which does not come before it ends."""
    seen = _watch_runs(monkeypatch, wave=2, wait_s=1)
    path = write_sweep(tmp_path, {**THREE_RUNS, "axes": {"backend": ["lz4", "zstd"]}})
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--quiet"]) == 0, \
        capsys.readouterr().err
    assert seen["started"] == seen["ended"] == 2
    assert seen["most"] == 1
