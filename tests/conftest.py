"""Test-wide settings: OpenCL kernel cache and hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

# Kernels compile once per checkout (the Makefile exports the same path).
os.environ.setdefault("POCL_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".pocl-cache"))
Path(os.environ["POCL_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
# lz4-opencl's per-device tuned choice: measured once per checkout (seconds on PoCL), not per
# test; the tuner's own tests use a temporary directory.
os.environ.setdefault("HWZSWAP_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".hwzswap-cache"))

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
