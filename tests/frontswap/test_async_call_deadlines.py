"""In ``async`` mode each device call has its own deadline, as in the other modes.

A pass larger than the device's ``max_batch`` is split by the compressor into calls of at most
that many pages (``in_calls_of``), each with ``zswap.device_timeout_ms`` in ``reclaim`` mode.
The async pipeline used to give the whole pass one deadline (times the batches it merged): a
device answering every call well within its deadline timed out, its pages went to the swap
device, and it could be marked failed. The pipeline now gives a pass one deadline per device
call it becomes (at least one per merged batch).

The device is real lz4 whose every call sleeps a third of the deadline; the assertions are on
counters (nothing timed out, every page stored), never on how long anything took.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import Capabilities, CompressedBatch
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.frontswap.compressor import in_calls_of
from hwzswap.frontswap.pipeline import AsyncPipeline

from fsutil import PAGE, compressible_pages

DEADLINE_MS = 150
CALL_S = DEADLINE_MS / 3000.0  # each device call: a third of its deadline


class SmallBatchDevice(Lz4Backend):
    """lz4 that takes at most 4 pages a call, each call a third of the deadline."""

    name = "test-small-batch-device"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-small-batch", batch=True, max_batch=4,
                            concurrent=True)

    def compress_batch(self, pages: np.ndarray) -> list[bytes | None]:
        assert len(pages) <= 4, "the engine must split a pass at max_batch"
        time.sleep(CALL_S)
        return super().compress_batch(pages)


def as_batch(pages: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(pages), dtype=np.uint8).reshape(-1, PAGE).copy()


@pytest.mark.parametrize("watchdog, n", [("off", 16), ("auto", 128)])
def test_a_split_pass_gets_a_deadline_per_device_call(make_system: Any, watchdog: str,
                                                      n: int) -> None:
    """16 pages = 4 calls x 50 ms against one 150 ms deadline used to time out (unwatched:
    the pipeline's deadline); a watched driver's pipeline backstop (2 x 150 ms + 1 s) was
    passed by 128 pages = 32 calls x 50 ms. Each call now has its own."""
    pages = compressible_pages(n, seed=4)
    s = make_system(backend=SmallBatchDevice(), swap={"nr_pages": 4 * n},
                    zswap={"batching": "async", "device_timeout_ms": DEADLINE_MS,
                           "device_fail_after": 2, "driver_watchdog": watchdog})
    s.swap_out_batch(0, list(range(n)), as_batch(pages))
    s.drain()
    st = s.stats()
    assert st["async_timeouts"] == 0 and st["driver_timeouts"] == 0, st
    assert st["reject_compress_fail"] == 0 and st["driver_failed"] == 0, st
    assert st["zswpout"] == n, st
    assert [s.swap_in(0, off) for off in range(n)] == pages


def test_the_pipeline_counts_one_deadline_per_device_call() -> None:
    """The pipeline alone, with the compressor's split (``in_calls_of``) in its compress
    step: a batch of 12 pages in calls of 4 (3 calls x 1/3 deadline) completes, where one
    deadline for the batch timed it out; merged small batches keep one deadline each."""
    timeout_s = DEADLINE_MS / 1000.0

    def one_call(pages: np.ndarray) -> CompressedBatch:
        assert len(pages) <= 4
        time.sleep(CALL_S)
        return CompressedBatch.from_items([bytes(8)] * len(pages))

    def compress(pages: np.ndarray) -> CompressedBatch:
        return in_calls_of(one_call, pages, 4, CompressedBatch.concat)

    results: dict[Any, CompressedBatch] = {}
    lock = threading.Lock()

    def complete(token: Any, result: CompressedBatch) -> None:
        with lock:
            results[token] = result

    timeouts: list[int] = []
    pipe = AsyncPipeline(compress, complete, max_batches=4, timeout_s=timeout_s,
                         on_timeout=timeouts.append, max_coalesce=4)
    try:
        zeros = np.zeros((12, PAGE), np.uint8)
        pipe.submit("big", zeros)
        pipe.drain()
        for k in range(4):  # small batches: merged (up to 4 pages a call) or not
            pipe.submit(k, zeros[:1])
        pipe.drain()
    finally:
        pipe.close()
    assert timeouts == [] and pipe.timed_out == 0
    assert all(len(r.failed()) == 0 for r in results.values()), results
    assert len(results["big"]) == 12


def test_deadlines_of_a_call() -> None:
    """max(merged batches, device calls of at most max_coalesce pages); no cap: the batches."""
    pipe = AsyncPipeline(lambda p: CompressedBatch.from_items([None] * len(p)),
                         lambda t, r: None, max_batches=2, timeout_s=1.0, max_coalesce=4)
    free = AsyncPipeline(lambda p: CompressedBatch.from_items([None] * len(p)),
                         lambda t, r: None, max_batches=2, timeout_s=1.0)
    try:
        from hwzswap.frontswap.pipeline import _Job

        def jobs(*sizes: int) -> list[_Job]:
            return [_Job(i, np.zeros((n, PAGE), np.uint8)) for i, n in enumerate(sizes)]

        assert pipe._deadlines_of(jobs(4)) == 1
        assert pipe._deadlines_of(jobs(5)) == 2
        assert pipe._deadlines_of(jobs(16)) == 4
        assert pipe._deadlines_of(jobs(1, 1, 2)) == 3
        assert free._deadlines_of(jobs(1000)) == 1
        assert free._deadlines_of(jobs(3, 3)) == 2
    finally:
        pipe.close()
        free.close()
