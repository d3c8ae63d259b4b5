"""A sweep stopped by a signal, and two sweeps on one output directory, with real processes:
SIGTERM and SIGHUP kill the runs' process groups (they sit in sessions of their own, so
nothing else would), remove their temporary directories, keep the finished records and exit
128 + the signal's number; a second sweep on a directory a sweep holds is refused at once."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hwzswap.cli import main
from hwzswap.sweep.store import LOCK_FILE
from sweep_helpers import write_sweep

#: Two short runs (a bench of 256 pages takes well under a second: the sweep is signalled as
#: soon as a run's process is seen).
SWEEP = {"axes": {"backend": ["lz4", "zstd"]},
         "fixed": {"workload": "roundtrip", "pages": 256, "repeat": 1, "seed": 1}}


def _runs_under(root: Path) -> list[int]:
    """Pids of live processes whose working directory is under ``root``: a run's bench runs
    in a temporary directory (``hwzswap-sweep-*``) under the sweep's ``$TMPDIR``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:  # gone, or a zombie
            continue
        if cwd.startswith(str(root) + os.sep):
            pids.append(int(entry))
    return pids


def _wait_for(what: str, check: Callable[[], list[int]], timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"no {what} within {timeout:g} s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signalled_sweep_leaves_no_run_behind(
        signum: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path, SWEEP)
    out = tmp_path / "out"
    runs_tmp = tmp_path / "tmp"
    runs_tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "sweep", str(sweep), "-o", str(out), "--jobs", "2",
         "--quiet"], env={**os.environ, "TMPDIR": str(runs_tmp)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for("run's process", lambda: _runs_under(runs_tmp))
        # a second sweep into the same directory is refused at once, naming the holder
        assert main(["sweep", str(sweep), "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"another sweep (pid {proc.pid}) is writing to this directory" in err
        proc.send_signal(signum)
        _stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, stderr  # 143, 129, 130
        assert (f"stopped by {signal.Signals(signum).name}" if signum != signal.SIGINT
                else "hwzswap sweep: interrupted") in stderr
        assert "Traceback" not in stderr
        assert _runs_under(runs_tmp) == []  # no orphan: none re-parented to PID 1
        assert [p.name for p in runs_tmp.iterdir() if p.name.startswith("hwzswap-sweep-")] == []
        # the lock went with the sweep
        with open(out / LOCK_FILE, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # finished records stay, and are resumed (none half-written)
        for rec in (out / "runs").iterdir():
            assert rec.suffix == ".json" and rec.stat().st_size > 0
    finally:
        for pid in [proc.pid, *_runs_under(runs_tmp)]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(timeout=30)
