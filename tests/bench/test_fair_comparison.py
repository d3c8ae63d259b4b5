"""What the bench compares is like for like: ratios over identical work, modes under the same
load, per-page CPU over a sample that means something, modelled devices labelled."""

from __future__ import annotations

import numpy as np
import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.results import schema_problems
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=128)


def test_vs_raw_with_repeats_is_the_median_of_the_per_pass_ratios(pages: np.ndarray) -> None:
    """Two passes: the median of the two per-pass ratios is their mean, read from ``spread``
    (not store_pages_per_s / raw_store_pages_per_s of the medians, as the docs once said)."""
    doc = run_bench(build_workload("roundtrip", pages[:64], seed=0),
                    BenchRun(backends=["lz4"], repeat=2, warm_up=False))
    (r,) = doc["results"]
    lo, hi = r["spread"]["store_vs_raw"]
    assert r["store_vs_raw"] == pytest.approx((lo + hi) / 2, abs=2e-4)
    lo, hi = r["spread"]["load_vs_raw"]
    assert r["load_vs_raw"] == pytest.approx((lo + hi) / 2, abs=2e-4)
    assert schema_problems(doc) == []
