"""The results document's ``command`` runs again as written: each word quoted for the shell,
so an output path with a space in it stays one word."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from hwzswap.bench.results import command_line

ROOT = Path(__file__).resolve().parents[2]


def test_command_line_quotes_each_word() -> None:
    argv = ["/opt/my tools/hwzswap", "bench", "--json", "/tmp/sp ace/r.json", "--backends",
            "lz4"]
    line = command_line(argv)
    assert shlex.split(line) == argv
    assert line != " ".join(argv)


def test_python_m_is_written_as_a_program() -> None:
    main_py = str(ROOT / "hwzswap" / "__main__.py")
    assert shlex.split(command_line([main_py, "stats"])) == [sys.executable, "-m", "hwzswap",
                                                             "stats"]


def test_recorded_command_runs_again(tmp_path: Path) -> None:
    """A real bench writing into a folder with a space: the recorded command, split as a
    shell would, runs the same bench again and writes the same file."""
    out = tmp_path / "sp ace" / "r.json"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run([sys.executable, "-m", "hwzswap", "bench", "--backends", "lz4",
                            "--pages", "16", "--repeat", "1", "--quiet", "--json", str(out)],
                           cwd=tmp_path, env=env, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr.decode()
    command = json.loads(out.read_text())["command"]
    words = shlex.split(command)
    assert str(out) in words
    out.unlink()
    again = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(out.read_text())["command"] == command
