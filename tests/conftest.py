"""Test-wide settings: OpenCL kernel cache and hypothesis profiles; fixtures every directory
uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
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


@pytest.fixture
def fds_past_1024() -> Iterator[None]:
    """The lowest 1,100 descriptor numbers held (RLIMIT_NOFILE raised as needed), so what
    the test opens gets a number of 1024 or above, which select(2) cannot watch. Fails (does
    not skip) where the hard limit is too low to do it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1100
    if hard != resource.RLIM_INFINITY and hard < want + 64:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} is under {want + 64}: raise it to run this")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want + 64), hard))
    held: list[int] = []
    try:
        while len(held) < want:
            held.append(os.open(os.devnull, os.O_RDONLY))
        assert held[-1] >= 1024
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
