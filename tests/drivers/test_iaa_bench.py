"""The example asynchronous driver, pip-installed as a vendor ships it, in `hwzswap bench` with a
non-zero fault rate: every page verified, the faults counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwzswap-iaa-driver"


def test_bench_with_faults_verifies_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(EXAMPLE)],
        check=True, capture_output=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    cfg = tmp_path / "iaa.yaml"
    cfg.write_text(yaml.safe_dump({
        "zswap": {"compressor": {"name": "deflate-iaa",
                                 "params": {"fault_rate": 0.03, "fault_seed": 1}},
                  "batching": "async"},
        "memory": {"total_ram_mb": 256},
    }))
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-m", "hwzswap", "bench", "--config", str(cfg), "--backends",
         "deflate-iaa", "--pages", "256", "--repeat", "1", "--quiet", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (r,) = json.loads(out.read_text())["results"]
    assert r["backend"] == "deflate-iaa" and r["params"]["fault_rate"] == 0.03
    assert r["verified_pages"] == r["pages"] == 256 and r["mismatches"] == 0
    assert r["faults"]["store"]["errors"] > 0 and r["rejects"]["compress_fail"] > 0
    assert r["time_basis"] == "modeled" and r["device_us_per_page"] > 0
