"""``hwzswap run`` when a run goes wrong part-way: the swap server dies under the command (a
failed run, exit 1, said clearly, log kept, the row written), a stop signal comes during a
``--compare`` (the runs finished before it are still printed and written), a ``--record`` file
stops at its cap (said loudly, exit 1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serveutil import PROG, hwzswap_cli, small_config

from hwzswap.bench.workload import load_workload
from hwzswap.serve import chain, run
from hwzswap.serve.cgroup import cgroup_of


def _wait_for(what, proc: subprocess.Popen, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def test_a_server_that_dies_under_the_command_fails_the_run_clearly(state_dir: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "run", "--memory-limit", "24M",
                             "--config", small_config(tmp_path), "--json", str(out),
                             "--timeout", "90", "--", sys.executable, PROG, "48"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = f"run{proc.pid}"

    def swapping() -> dict | None:
        st = chain.read_state(name)
        if st and "swapon" in st.get("steps", []):
            try:
                return st if chain.query(name)["write_pages"] > 2000 else None
            except chain.ChainError:
                return None
        return None

    try:
        st = _wait_for(swapping, proc)
        os.kill(st["pid"], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr  # it ran and failed: not 2 (refused)
    log = state_dir / f"{name}.log"
    assert log.exists()  # kept, and named
    said = (f"the swap server (pid {st['pid']}) killed by signal 9 (SIGKILL); its log is "
            f"kept: {log}")
    assert said in stderr, stderr
    assert "Connection refused" not in stderr and "Traceback" not in stderr
    assert "config (FAILED)" in stdout and f"SERVER DIED: config: {said}" in stdout
    row = json.loads(out.read_text())["runs"][0]
    assert row["server_died"]["status"] == "killed by signal 9 (SIGKILL)"
    assert row["server_died"]["log"] == str(log)
    # what happened to the command: its swapped-out pages were lost (SIGBUS, or killed)
    assert row["exit_code"] != 0
    assert row["failure"] == (f"{run.describe_exit(row['exit_code'], row['oom_kills'])}, and "
                              f"its swap server died while it ran: {said}")
    assert row["io_sum_mb"] is None and row["pswpout"] > 2000
    assert chain.read_state(name) is None  # and state_dir checks nothing is left


def test_a_stop_signal_during_compare_keeps_the_runs_finished(state_dir: Path,
                                                              tmp_path: Path) -> None:
    """The first run (base) finishes at once; the second (lz4) waits until SIGTERM cuts it
    short: base is still printed and written, marked an interrupted, partial comparison."""
    out = tmp_path / "r.json"
    flag = tmp_path / "second"
    script = f"if [ -e {flag} ]; then exec sleep 60; else touch {flag}; fi"
    proc = subprocess.Popen([sys.executable, "-m", "hwzswap", "run", "--memory-limit", "24M",
                             "--config", small_config(tmp_path), "--compare", "base,lz4,lzo",
                             "--json", str(out), "--", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = Path(cgroup_of("self")[1]) / f"hwzswap-run{proc.pid}-lz4" / "cgroup.procs"

    def sleeping() -> bool:
        try:
            return any(Path(f"/proc/{p}/comm").read_text().strip() == "sleep"
                       for p in procs.read_text().split())
        except OSError:
            return False

    try:
        _wait_for(sleeping, proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "hwzswap run: SIGTERM: lz4 was cut short; reporting the 1 run(s)" in stderr
    assert "interrupted" in stderr.splitlines()[-1]
    assert "INTERRUPTED (SIGTERM): a partial comparison, 1 of 3 run(s); not measured: lz4, lzo" \
        in stdout
    assert any(ln.strip().startswith("base |") for ln in stdout.splitlines())
    res = json.loads(out.read_text())
    assert [r["label"] for r in res["runs"]] == ["base"] and res["runs"][0]["exit_code"] == 0
    assert res["partial"] is True and res["interrupted"] == {"signal": "SIGTERM",
                                                             "label": "lz4"}
    assert res["not_run"] == ["lzo"]
    assert not procs.parent.exists()


def test_a_truncated_recording_fails_the_run_loudly(state_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rec = tmp_path / "cut.hwzwl"
    monkeypatch.setenv("HWZSWAP_RECORD_MAX_PAGES", "300")  # the server inherits it
    p = hwzswap_cli("run", "--memory-limit", "20M", "--config", small_config(tmp_path),
                    "--record", str(rec), "--", sys.executable, PROG, "24", timeout=240)
    assert p.returncode == 1, p.stderr + p.stdout
    assert f"recorded request stream: {rec} (TRUNCATED)" in p.stdout
    line = next(ln for ln in p.stderr.splitlines() if "TRUNCATED" in ln)
    assert line.startswith(f"hwzswap run: error: --record {rec}: TRUNCATED: the recording "
                           "stopped after ")
    assert "HWZSWAP_RECORD_MAX_PAGES" in line and "valid prefix" in line
    wl = load_workload(rec)  # it replays
    assert wl.params["truncated"] is True and 0 < wl.nr_pages <= 300
    assert wl.params["dropped_pages"] > 0
