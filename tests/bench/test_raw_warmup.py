"""The codec-alone pass is warm from its first timed pass: the warm-up runs the whole raw pass
once, untimed, on the very thread the timed raw chunks run on (a fresh thread's malloc arena
grew page fault by page fault through pass 1: its raw figure was slow, its ``store_vs_raw``
flattering). And the background writeback the bench finishes at the end of a chunk
(``quiesce_writeback``) is in the store figure."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.bench import runner
from hwzswap.bench.corpus import load_bundled
from hwzswap.bench.runner import BenchRun, base_config, compile_workload, run_backend, run_bench
from hwzswap.bench.workload import build_workload


class _Recording(Lz4Backend):
    """The real lz4 codec, noting the thread and the pages of each compress call."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.calls: list[tuple[int, int]] = []

    def compress(self, page: Any) -> bytes | None:
        self.calls.append((threading.get_ident(), 1))
        return super().compress(page)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        self.calls.append((threading.get_ident(), len(pages)))
        return super().compress_batch(pages)


#: the stack calls the driver on its own thread (no watchdog thread for this test class)
_BASE = base_config({"zswap": {"driver_watchdog": "off"}})


@pytest.fixture(scope="module")
def cw() -> runner.CompiledWorkload:
    return compile_workload(build_workload("roundtrip", load_bundled(max_pages=256), seed=0))


@pytest.mark.parametrize("mode", ["page", "reclaim"])
def test_the_raw_pass_runs_once_untimed_on_its_own_thread_before_the_first_pass(
        cw: runner.CompiledWorkload, mode: str) -> None:
    b = _Recording()
    r = run_backend(b, cw, _BASE, repeat=1, batching=mode, warm_up=True)
    assert r["mismatches"] == 0 and r["raw_mismatches"] == 0
    main = threading.get_ident()
    first_stack = next(i for i, (t, _) in enumerate(b.calls) if t == main)
    before = b.calls[:first_stack]
    assert before, "nothing ran before the stack's first store"
    raw_threads = {t for t, _ in b.calls if t != main}
    assert len(raw_threads) == 1  # the warm pass, the warm-up and the timed raw chunks
    # every stored page of the stream went through the codec alone before the stack's first
    # call (the raw warm pass), not just the warm-up's few pages
    assert sum(n for _, n in before) >= cw.store_pages + min(runner.WARMUP_PAGES, 4)
    # and the timed pass then did the stream's raw work again, on the same thread
    timed_raw = sum(n for t, n in b.calls[first_stack:] if t != main)
    assert timed_raw == cw.store_pages


def test_without_the_warm_up_no_raw_pass_runs_first(cw: runner.CompiledWorkload) -> None:
    b = _Recording()
    run_backend(b, cw, _BASE, repeat=1, batching="reclaim", warm_up=False)
    assert b.calls[0][0] == threading.get_ident()  # the first pass's first chunk: the stack


def test_the_raw_warm_pass_stops_on_a_failing_device() -> None:
    """A device whose every request fails is not driven through the whole stream first."""
    from hwzswap.backends.nx842.driver import Nx842Backend

    calls = []

    class Counting(Nx842Backend):
        def compress_batch(self, pages: np.ndarray) -> list[Any]:
            calls.append(len(pages))
            return super().compress_batch(pages)

    cw = compile_workload(build_workload("roundtrip", load_bundled(max_pages=2048), seed=0))
    assert len(cw.chunks) > 2
    b = Counting(fault_rate=1.0, fault_ops="compress")
    cfg = runner.backend_config(base_config(None), b, cw.workload, "reclaim")
    runner._warm_up_raw_pass(b, cw, cfg)  # noqa: SLF001 - the warm pass alone
    first = sum(len(idxs) for _, _, idxs in cw.chunks[0].raw_stores)
    assert sum(calls) == first  # one chunk, then it stopped


def test_background_writeback_finished_by_the_bench_is_in_the_store_figure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """zswap.background_writeback: the writeback quiesce_writeback does at a chunk's end is
    timed into store_pages_per_s (as async mode's drain is) and shown apart."""
    spent: list[int] = []
    quiesce = runner.quiesce_writeback

    def slowed(cache: Any) -> int:  # the real quiesce, plus 30 ms the figure must hold
        n = quiesce(cache)
        time.sleep(0.03)
        spent.append(n)
        return n

    monkeypatch.setattr(runner, "quiesce_writeback", slowed)
    wl = build_workload("pressure", load_bundled(max_pages=2048), seed=0)
    doc = run_bench(wl, BenchRun(backends=["lz4"], batching="reclaim", warm_up=False, config={
        "zswap": {"max_pool_percent": 2, "background_writeback": True},
        "memory": {"total_ram_mb": 64}}))
    (r,) = doc["results"]
    assert r["mismatches"] == 0
    assert r["quiesce_written_back_pages"] == sum(spent) > 0
    slept_s = 0.03 * len(spent)
    assert r["quiesce_writeback_us_per_page"] * r["store_pages"] / 1e6 >= slept_s
    # the store figure's time holds it (the store calls alone take far less: ~25 ms)
    assert r["store_pages"] / r["store_pages_per_s"] >= slept_s
