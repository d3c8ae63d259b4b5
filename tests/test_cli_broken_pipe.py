"""A reader of stdout that went away (`hwzswap ... | head -1`) ends every command the same
way: exit 141 (a process killed by SIGPIPE), quietly. Commands that print with rich used to
exit 1, a failure, with no word: rich's own broken-pipe hook raised SystemExit(1) first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _with_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the program with stdout a real pipe whose reading end is already closed: its
    first write to stdout fails with EPIPE, however little it prints."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "hwzswap", *args], stdout=w,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [
    ["backends", "--json"],
    ["backends"],
    ["stats", "--pages", "16"],
    ["bench", "--backends", "lz4", "--pages", "32", "--repeat", "1"],
    ["sweep", "SWEEP", "--dry-run"],
], ids=["backends-json", "backends", "stats", "bench", "sweep-dry-run"])
def test_closed_pipe_exits_141_quietly(args: list[str], tmp_path: Path) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text("axes:\n  backend: [lz4, zstd]\nfixed:\n  pages: 32\n  repeat: 1\n")
    args = [str(sweep) if a == "SWEEP" else a for a in args]
    proc = _with_closed_pipe(args, tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "Broken pipe" not in err, err


def test_the_rich_hook_is_put_back_after_the_command(capsys: pytest.CaptureFixture) -> None:
    """main() replaces rich's broken-pipe hook only while a command runs."""
    from rich.console import Console

    from hwzswap.cli import main

    before = Console.__dict__["on_broken_pipe"]
    assert main(["backends", "--json"]) == 0
    assert Console.__dict__["on_broken_pipe"] is before
    assert capsys.readouterr().out.lstrip().startswith("[")
