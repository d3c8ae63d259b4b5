"""Shared fixtures of the bench tests."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    """A real results document: lz4 on 64 bundled pages in page, reclaim and async mode."""
    wl = build_workload("roundtrip", load_bundled(max_pages=64), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="page,reclaim,async",
                                 warm_up=False))
    assert not doc["failed"] and len(doc["results"]) == 3
    return doc
