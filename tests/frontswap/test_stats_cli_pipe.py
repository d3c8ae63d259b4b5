"""``hwzswap stats --config`` from a pipe: the config is read once and used (it was replaced by
the built-in defaults, the pipe being empty on the second read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hwzswap.cli import main

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "configs" / "lz4.yaml").read_text()


def _check(report: dict, source: str) -> None:
    assert report["config"] == source
    assert report["backend"] == "lz4" and report["swap_model"] == "ssd"  # not lzo / none
    assert report["pages"] == 32 == report["verified_pages"]


def test_stats_takes_its_config_from_a_pipe(capsys) -> None:
    r, w = os.pipe()  # what `--config <(cat configs/lz4.yaml)` gives: /dev/fd/N
    try:
        os.write(w, TEXT.encode())
        os.close(w)
        w = -1
        path = f"/dev/fd/{r}"
        rc = main(["stats", "--pages", "32", "--json", "--config", path])
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
    assert rc == 0
    _check(json.loads(capsys.readouterr().out), path)


def test_stats_takes_its_config_from_dev_stdin() -> None:
    # `cat configs/lz4.yaml | hwzswap stats --config /dev/stdin`, as a process
    proc = subprocess.run(
        [sys.executable, "-m", "hwzswap", "stats", "--pages", "32", "--json",
         "--config", "/dev/stdin"],
        input=TEXT.encode(), capture_output=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    _check(json.loads(proc.stdout), "/dev/stdin")
