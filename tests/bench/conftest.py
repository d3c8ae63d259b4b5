"""Shared fixtures of the bench tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, run_bench
from hwzswap.bench.workload import build_workload
from hwzswap.frontswap.system import open_zswap


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    """A real results document: lz4 on 64 bundled pages in page, reclaim and async mode."""
    wl = build_workload("roundtrip", load_bundled(max_pages=64), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="page,reclaim,async",
                                 warm_up=False))
    assert not doc["failed"] and len(doc["results"]) == 3
    return doc


@pytest.fixture
def writeback_in_flight() -> Any:
    """A swap system whose background writeback thread is held inside a device write (the
    swap file's ``io_hook``), so a writeback batch is in flight. Yields ``(system, release,
    timer)``: ``timer`` sets ``release`` 0.3 s after the test starts it. Released and closed
    afterwards."""
    pages = load_bundled(max_pages=96)
    system = open_zswap({"zswap": {"compressor": "lz4", "max_pool_percent": 1,
                                   "background_writeback": True, "writeback_batch": 4},
                         "memory": {"total_ram_mb": 1}, "swap": {"nr_pages": 256}})
    entered, release = threading.Event(), threading.Event()

    def hold(op: str, offset: int) -> None:
        if op == "write" and threading.current_thread().name == "zswap-writeback":
            entered.set()
            release.wait(30)

    system.devices[0].io_hook = hold
    timer = threading.Timer(0.3, release.set)
    try:
        for i in range(pages.shape[0]):
            system.swap_out(0, i, pages[i].tobytes())
            if entered.wait(0.001):
                break
        assert entered.wait(10), "the background thread never wrote back"
        yield system, release, timer
    finally:
        release.set()
        timer.cancel()
        system.close()
