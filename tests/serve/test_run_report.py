"""``hwzswap run``'s report: a command that failed is said to have failed (exit status, signal,
the OOM killer), on stderr, in the table and in the exit status, and % changes for or against
a failed run are marked invalid, never shown as figures."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from serveutil import hwzswap_cli, small_config

from hwzswap.serve import run


def _row(label: str, exit_code: int = 0, oom_kills: int | None = 0, **seed: float
         ) -> dict[str, Any]:
    """A result row as run_once returns it (the fields the report reads)."""
    values = {"pswpin": 100, "pswpout": 200, "majflt": 50, "io_sum_mb": 1.2,
              "runtime_s": 2.0, "cpu_pct": 40.0, **seed}
    return {"label": label, "exit_code": exit_code, "oom_kills": oom_kills,
            "failure": run.describe_exit(exit_code, oom_kills), **values,
            "zswap": {"stored_pages_at_exit": 3, "written_back_pages": 0},
            "server": {"cpu_us_per_page": 5.0}, "kernel": {}}


def test_describe_exit_names_status_signal_and_oom_killer() -> None:
    assert run.describe_exit(0) is None
    assert run.describe_exit(7) == "exited with status 7"
    assert run.describe_exit(-signal.SIGTERM, 0) == "was killed by signal 15 (SIGTERM)"
    oom = run.describe_exit(-signal.SIGKILL, 1)
    assert "OOM killer" in oom and "signal 9" in oom and "--memory-limit" in oom


def test_changes_for_or_against_a_failed_run_are_invalid() -> None:
    rows = [_row("base"), _row("lzo", exit_code=7), _row("lz4", pswpin=50)]
    ch = run.compare_rows(rows)
    assert ch[1]["pswpin"] is None and "lzo: the command exited with status 7" in ch[1][
        "invalid"]
    assert ch[2]["pswpin"] == -50 and "invalid" not in ch[2]
    table = run.format_table(rows)
    lines = table.splitlines()
    lzo_vs = lines[lines.index(next(ln for ln in lines if ln.strip().startswith("lzo"))) + 1]
    assert "invalid" in lzo_vs and "%" not in lzo_vs
    assert "lzo (FAILED)" in table and "-50%" in table
    assert "FAILED: lzo: the command exited with status 7" in table
    # a failed first run invalidates every comparison against it
    rows = [_row("base", exit_code=-9, oom_kills=1), _row("lzo")]
    assert run.compare_rows(rows)[1].get("invalid", "").startswith("base: the command was "
                                                                     "killed by the OOM")
    table = run.format_table(rows)
    assert "OOM-killed" in table and "%" not in table.split("vs base")[1].splitlines()[0]


def test_a_failing_command_is_reported_as_failed(state_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = hwzswap_cli("run", "--memory-limit", "24M", "--config", small_config(tmp_path),
                    "--json", str(out), "--", "sh", "-c", "exit 7", timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "config: the command exited with status 7" in p.stderr
    assert "error: the command failed in 1 of 1 run(s)" in p.stderr
    assert "config (FAILED)" in p.stdout and "FAILED: config: the command exited" in p.stdout
    r = json.loads(out.read_text())["runs"][0]
    assert r["exit_code"] == 7 and r["failure"] == "exited with status 7"


def _mlocking_program(tmp_path: Path) -> Path:
    """A program that mlocks 64 MiB: memory swap cannot take, so past a smaller limit the
    OOM killer kills it."""
    prog = tmp_path / "lock.py"
    prog.write_text("import mmap, ctypes\n"
                    "m = mmap.mmap(-1, 64 << 20)\n"
                    "libc = ctypes.CDLL(None, use_errno=True)\n"
                    "buf = (ctypes.c_char * len(m)).from_buffer(m)\n"
                    "libc.mlock(buf, len(m))\n"
                    "for i in range(0, len(m), 4096):\n    m[i] = 1\n")
    return prog


def test_an_oom_killed_command_is_reported(state_dir: Path, tmp_path: Path) -> None:
    """Swap cannot help a program whose memory cannot be swapped out: mlock'd pages past the
    limit. The OOM killer kills it, and the report says so."""
    prog = _mlocking_program(tmp_path)
    p = hwzswap_cli("run", "--memory-limit", "16M", "--config", small_config(tmp_path),
                    "--", sys.executable, str(prog), timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "was killed by the OOM killer (signal 9" in p.stderr, p.stderr
    assert "OOM-killed" in p.stdout


def test_an_oom_kill_in_a_command_that_exits_0_is_a_failure(state_dir: Path,
                                                              tmp_path: Path) -> None:
    """A shell whose child the OOM killer killed goes on and exits 0: its work was not all
    done, so the run is reported failed (exit 1, FAILED, its % changes invalid)."""
    assert run.describe_exit(0, 0) is None
    assert "exited 0, but the OOM killer killed 2 task(s)" in run.describe_exit(0, 2)
    rows = [_row("base"), _row("lzo", exit_code=0, oom_kills=1)]
    assert "lzo: the command exited 0, but the OOM killer" in run.compare_rows(rows)[1][
        "invalid"]
    assert "0, OOM-kill" in run.format_table(rows)
    prog = _mlocking_program(tmp_path)
    out = tmp_path / "r.json"
    p = hwzswap_cli("run", "--memory-limit", "16M", "--config", small_config(tmp_path),
                    "--json", str(out), "--", "sh", "-c", f"{sys.executable} {prog}; exit 0",
                    timeout=120)
    assert p.returncode == 1, p.stderr + p.stdout
    assert "config: the command exited 0, but the OOM killer killed" in p.stderr, p.stderr
    assert "FAILED: config" in p.stdout and "0, OOM-kill" in p.stdout
    r = json.loads(out.read_text())["runs"][0]
    assert r["exit_code"] == 0 and r["oom_kills"] >= 1 and r["failure"]


def test_a_kernel_zswap_row_shows_the_kernels_counters() -> None:
    """kernel-lzo's zswap work is the kernel's: its zswpout and zswpwb are in the row's zswap
    columns (it showed the chain's 'stored 0'), its pool peak marked n/a with why."""
    base = _row("base")
    base["zswap"]["zswpout"] = 0
    k = _row("kernel-lzo", pswpin=0, pswpout=0)
    k["kernel_zswap"] = "lzo"
    k["kernel"] = {"zswpout": 27472, "zswpwb": 12}
    k["zswap"] = {"zswpout": 0, "stored_pages_at_exit": 0, "written_back_pages": 0}
    table = run.format_table([base, k])
    row = next(ln for ln in table.splitlines() if ln.strip().startswith("kernel-lzo |"))
    cells = [c.strip() for c in row.split("|")]
    head = [c.strip() for c in table.splitlines()[0].split("|")]
    assert cells[head.index("zswpout")] == "27472"
    assert cells[head.index("pool peak MiB")] == "n/a"
    assert cells[head.index("written back")] == "12"
    assert "kernel-lzo: zswpout and written back are the kernel's own zswap" in table
