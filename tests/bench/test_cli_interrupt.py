"""Ctrl-C during ``hwzswap bench`` keeps the rows that finished: a real bench process gets a
real SIGINT once its first row is done, writes that row to every output asked for, marked as
an interrupted, partial run, and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hwzswap.bench.results import schema_problems

ROOT = Path(__file__).resolve().parents[2]


def test_sigint_writes_the_finished_rows_as_a_partial_run(tmp_path: Path) -> None:
    out = {s: tmp_path / f"r.{s}" for s in ("json", "md", "png")}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # lz4 first (a fraction of a second), then deflate for many passes: the signal comes
    # right after lz4's row is said on stderr, while deflate still runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwzswap", "bench", "--backends", "lz4,deflate", "--pages",
         "256", "--repeat", "200", "--batching", "reclaim", "--json", str(out["json"]),
         "--markdown", str(out["md"]), "--plot", str(out["png"])],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("hwzswap bench: done lz4 (reclaim)"):
                proc.send_signal(signal.SIGINT)
                break
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "hwzswap bench: interrupted, partial results: Ctrl-C after 1 of 2 runs" in err
    doc = json.loads(out["json"].read_text())
    assert schema_problems(doc) == []
    assert doc["interrupted"] is True and "1 of 2 runs" in doc["interrupted_note"]
    assert doc["measured_rows"] == 1
    assert [(r["backend"], r["batching"]) for r in doc["results"]] == [("lz4", "reclaim")]
    assert doc["results"][0]["verified_pages"] == 256
    md = out["md"].read_text()
    assert md.startswith("**INTERRUPTED, partial run · workload roundtrip")
    assert "| lz4 | reclaim |" in md and "| deflate |" not in md
    assert "- INTERRUPTED: Ctrl-C after 1 of 2 runs" in md
    assert out["png"].read_bytes()[:4] == b"\x89PNG"
    assert "INTERRUPTED, partial run" in stdout  # the table on stdout says it too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md", "r.png"]
