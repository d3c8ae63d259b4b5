"""Helpers for the serve tests: a small engine config, the pattern program, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PROG = str(HERE / "pattern_prog.py")


def small_config(tmp_path: Path, **zswap: object) -> str:
    """A 64 MiB swap file, no device model (fast), zswap on with lz4 unless overridden."""
    cfg = {
        "zswap": {"compressor": "lz4", "max_compression_ratio": 100, **zswap},
        "memory": {"total_ram_mb": 256},
        "swap": {"nr_pages": 16384, "model": "none"},
    }
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def hwzswap_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``python -m hwzswap ARGS`` with this checkout's package and the test's state dir."""
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "hwzswap", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)
