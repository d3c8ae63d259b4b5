"""benchmarks/bench_opencl.py runs end to end and records what a reader needs to trust it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_opencl.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_opencl", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_writes_json_and_markdown(tmp_path):
    bench = _load_bench()
    out = tmp_path / "opencl_test"
    assert bench.main(["--repeat", "1", "--batch-sizes", "512,2048", "--target-batch", "2048",
                       "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["device"]["name"] and report["device"]["compute_units"] >= 1
    env = report["environment"]
    assert env["cpu_model"] and env["cpus"] >= 1 and env["lz4_library"]
    assert "bench_opencl.py" in report["command"]
    assert report["workload"]["pages"] >= report["workload"]["corpus_pages"] > 0
    sizes = [r["params"]["batch_size"] for r in report["batch_sizes"]]
    assert sizes == [512, 2048]
    for r in report["batch_sizes"]:
        assert r["decodes_ok"] is True
        # same parse as python-lz4: same ratio, and every compressible page byte-identical
        assert abs(r["ratio"] - r["lz4_ratio"]) < 1e-9
        assert r["identical_to_lz4"] >= r["pages"] - 64
        for key in ("compress_e2e_pages_s", "compress_kernel_pages_s", "lz4_compress_pages_s",
                    "decompress_e2e_pages_s", "decompress_kernel_gbps", "compress_per_call_pages_s"):
            assert r[key] > 0, key
    assert report["summary"]["batch_size"] == 2048
    md = out.with_suffix(".md").read_text()
    assert report["device"]["name"] in md and "| 2048 |" in md
