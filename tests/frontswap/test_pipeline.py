"""The async pipeline on its own: backpressure by batches and pages, merging, and a completion
step that raises (the worker goes on)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hwzswap.backends.contract import CompressedBatch, ItemStatus
from hwzswap.frontswap.pipeline import AsyncPipeline

PAGE = 4096


def _ok(pages: np.ndarray) -> CompressedBatch:
    n = len(pages)
    return CompressedBatch(b"x" * n, np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64),
                           np.full(n, ItemStatus.OK, dtype=np.uint8))


def _pages(n: int) -> np.ndarray:
    return np.zeros((n, PAGE), dtype=np.uint8)


def test_a_completion_that_raises_does_not_stop_the_worker() -> None:
    done: list[int] = []

    def complete(token: int, result: CompressedBatch) -> None:
        if token == 0:
            raise RuntimeError("a bug in the completion step")
        done.append(token)

    pipe = AsyncPipeline(_ok, complete, max_batches=2, timeout_s=5.0)
    try:
        for token in range(4):
            pipe.submit(token, _pages(2))
        finished = threading.Event()
        t = threading.Thread(target=lambda: (pipe.drain(), finished.set()), daemon=True)
        t.start()
        assert finished.wait(10), "drain hung: the worker died with the first completion"
        assert done == [1, 2, 3]
        assert pipe.completion_errors == 1 and "a bug in the completion step" in pipe.last_error
        assert pipe.in_flight == 0
    finally:
        pipe.close()


def test_fill_pages_lets_more_batches_in_until_they_hold_that_many_pages() -> None:
    release = threading.Event()

    def slow(pages: np.ndarray) -> CompressedBatch:
        release.wait(10)
        return _ok(pages)

    pipe = AsyncPipeline(slow, lambda token, result: None, max_batches=2, timeout_s=30.0,
                         fill_pages=10)
    try:
        for token in range(5):  # 5 batches of 2 pages: 10 pages, all in without a wait
            pipe.submit(token, _pages(2))
        assert pipe.in_flight == 5
        blocked = threading.Thread(target=pipe.submit, args=(5, _pages(2)), daemon=True)
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()  # 5 batches holding 10 pages: full
        release.set()
        blocked.join(10)
        assert not blocked.is_alive()
        pipe.drain()
        assert pipe.peak_in_flight == 5 and pipe.batches == 6
    finally:
        release.set()
        pipe.close()


def test_a_worker_that_died_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker ended by something no completion guard catches (SystemExit) leaves a queue
    that still needs one: the next wait starts a new worker instead of waiting for ever."""
    done: list[int] = []
    ended = threading.Event()  # the dead worker's exception reached the thread hook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            ended.set()

    monkeypatch.setattr(threading, "excepthook", hook)

    def complete(token: int, result: CompressedBatch) -> None:
        if token == 0:
            raise SystemExit  # ends the worker thread
        done.append(token)

    pipe = AsyncPipeline(_ok, complete, max_batches=1, timeout_s=60.0)
    try:
        finished = threading.Event()

        def work() -> None:
            for token in range(3):
                pipe.submit(token, _pages(1))
            pipe.drain()
            finished.set()

        threading.Thread(target=work, daemon=True).start()
        assert finished.wait(10), "the queue was left without a worker"  # at once, not 60 s
        assert done == [1, 2] and pipe.in_flight == 0
        assert ended.wait(10)  # (within this test, so no other test sees the thread's end)
    finally:
        if finished.is_set():
            pipe.close()
