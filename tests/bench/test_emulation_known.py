"""``emulation_us_per_page`` is reported whenever it is known, 0.0 included: a hung 842-nx row
with the warm-up on did no emulation in its chunks (the warm-up's hung requests hold the
device's queue, so the stack's requests were refused busy until their deadline) and reported
null, which the report reads as "the emulation could not be separated"."""

from __future__ import annotations

from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload

HANG = {"zswap": {"compressor": {"name": "842-nx", "params": {"hang_rate": 1.0}},
                  "device_timeout_ms": 5}}


def _row(warm_up: bool) -> dict[str, Any]:
    doc = run_bench(build_workload("roundtrip", load_bundled(max_pages=32), seed=0),
                    BenchRun(backends=["842-nx"], config=HANG, batching="page", repeat=1,
                             warm_up=warm_up))
    (r,) = doc["results"]
    assert r["device_failed"]
    return r


def test_a_hung_device_after_the_warm_up_reports_no_emulation_not_an_unknown() -> None:
    r = _row(warm_up=True)
    # the counters were read around every chunk: the emulation's rise is known, and none
    assert r["backend_counters"]["emulation_us"] == 0.0
    assert r["backend_counters"]["busy_retries"] > 0  # the queue the warm-up's requests hold
    assert r["emulation_us_per_page"] == 0.0 and r["host_cpu_excludes_emulation"] is True


@pytest.mark.parametrize("warm_up", [False, True])
def test_the_figure_is_the_rise_of_the_rows_emulation_us(warm_up: bool) -> None:
    r = _row(warm_up)
    moves = r["pages"] + r["counters"]["stores"]
    emu = r["backend_counters"]["emulation_us"]
    assert r["emulation_us_per_page"] == round(emu / moves, 3)
