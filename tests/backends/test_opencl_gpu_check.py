"""benchmarks/gpu_check.sh: the plan it runs, checked without a GPU (``--dry-run``).

The script's real run on PoCL (``--pocl --quick``, about a minute) is how it was tested end to
end; its record is benchmarks/results/opencl_gpu_check_pocl.md. Here only the plan is checked,
which costs well under a second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args, "--out", str(tmp_path / "out"),
                           "--env", str(tmp_path / "env")],
                          capture_output=True, text=True, timeout=60)


def test_gpu_plan(tmp_path):
    r = _run("--dry-run", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    env = tmp_path / "env"
    assert f"-m venv --system-site-packages {env}/venv" in plan
    assert "nvidia-nvcomp-cu" in plan and "nvidia-libnvcomp-cu" in plan and "cupy-cuda" in plan
    assert "pyopencl" in plan and "platformdirs" in plan and "pytools" in plan
    assert f"pip install -q --no-deps --no-build-isolation --upgrade --target {env}/hwzswap" in plan
    assert "-m hwzswap tune lz4-opencl --refresh --device-type gpu" in plan
    assert "bench_opencl.py --device-type gpu --batch-sizes 4096,16384,65536" in plan
    assert "-m hwzswap bench --backends lz4,lz4-opencl --batching page,reclaim,async" in plan
    # the ICD file for NVIDIA's OpenCL driver, and OCL_ICD_VENDORS pointing at it
    icd = (env / "vendors" / "nvidia.icd").read_text()
    assert icd.strip().endswith("libnvidia-opencl.so.1")
    assert f"OCL_ICD_VENDORS={env}/vendors" in r.stderr
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "$ " in log and "bench_opencl.py" in log  # every command is logged


def test_pocl_plan_needs_no_gpu(tmp_path):
    r = _run("--dry-run", "--pocl", "--quick", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    plan = r.stdout
    assert "nvcomp" not in plan.lower() and "OCL_ICD_VENDORS" not in r.stderr
    assert "tune lz4-opencl --refresh --device-type cpu" in plan
    assert "--device-type cpu --batch-sizes 1024,4096 --repeat 1" in plan
    assert "--pages 2000" in plan


def test_bad_option_and_help(tmp_path):
    r = _run("--frobnicate", tmp_path=tmp_path)
    assert r.returncode == 2 and "unknown option --frobnicate" in r.stderr
    h = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "--pocl" in h.stdout and "--dry-run" in h.stdout
