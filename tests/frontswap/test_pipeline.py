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


def test_drain_waits_for_the_completion_of_a_batch_that_timed_out() -> None:
    """A timed-out batch is failed and completed outside the lock; a second thread's drain
    must not return before that completion has run (its pages may not be anywhere yet)."""
    hang = threading.Event()
    completing = threading.Event()
    finish = threading.Event()
    done: list[tuple[int, int]] = []

    def stuck(pages: np.ndarray) -> CompressedBatch:
        hang.wait(10)
        return _ok(pages)

    def complete(token: int, result: CompressedBatch) -> None:
        completing.set()
        finish.wait(10)  # the timed-out batch's completion takes a while
        done.append((token, int(result.status[0])))

    pipe = AsyncPipeline(stuck, complete, max_batches=2, timeout_s=0.1)
    try:
        pipe.submit(0, _pages(2))
        expirer = threading.Thread(target=pipe.drain, daemon=True)  # expires the call
        expirer.start()
        assert completing.wait(10)
        drained = threading.Event()
        other = threading.Thread(target=lambda: (pipe.drain(), drained.set()), daemon=True)
        other.start()
        assert not drained.wait(0.5), "drain returned while a completion was still running"
        finish.set()
        assert drained.wait(10)
        assert done == [(0, int(ItemStatus.FAILED))] and pipe.timed_out == 1
        assert pipe.in_flight == 0
    finally:
        hang.set()
        finish.set()
        pipe.close()


def test_a_submit_after_close_runs_in_the_caller_and_is_completed() -> None:
    """Closed (by the owner, or by the exit hook under an owner still storing), a submit is
    compressed and completed in the caller: not queued for a worker that is gone, not an
    error, never lost; close returns with nothing in flight."""
    done: list[tuple[int, str]] = []
    pipe = AsyncPipeline(_ok, lambda token, result: done.append(
        (token, threading.current_thread().name)), max_batches=2, timeout_s=5.0)
    pipe.submit(0, _pages(2))
    pipe.close()
    pipe.submit(1, _pages(3))
    assert [t for t, _ in done] == [0, 1]
    assert done[1][1] == threading.current_thread().name  # completed in the caller
    assert pipe.in_flight == 0 and pipe.batches == 2
    pipe.drain()  # returns at once: nothing is left queued without a worker
    pipe.close()  # idempotent


def test_a_submit_that_races_close_is_completed_before_close_returns() -> None:
    """Submits from other threads while close runs: each is either drained by close or run
    in its caller; none is left in flight for ever."""
    release = threading.Event()
    done: list[int] = []
    lock = threading.Lock()

    def slow(pages: np.ndarray) -> CompressedBatch:
        release.wait(10)
        return _ok(pages)

    def complete(token: int, result: CompressedBatch) -> None:
        with lock:
            done.append(token)

    pipe = AsyncPipeline(slow, complete, max_batches=1, timeout_s=30.0)
    pipe.submit(0, _pages(1))
    submitters = [threading.Thread(target=pipe.submit, args=(k, _pages(1)), daemon=True)
                  for k in range(1, 5)]
    for t in submitters:
        t.start()  # they wait: the pipeline is full
    closer = threading.Thread(target=pipe.close, daemon=True)
    closer.start()
    release.set()
    closer.join(10)
    for t in submitters:
        t.join(10)
    assert not closer.is_alive() and not any(t.is_alive() for t in submitters)
    assert sorted(done) == [0, 1, 2, 3, 4] and pipe.in_flight == 0


def test_a_batch_is_compressed_in_the_caller_when_no_worker_thread_can_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process at its thread limit ("can't start new thread", injected here: root is not
    bound by RLIMIT_NPROC): the batch was queued with no worker and the caller got the error,
    so it never completed and drain waited for ever. Now the caller compresses it itself."""
    done: list[tuple[int, str]] = []
    pipe = AsyncPipeline(_ok, lambda token, result: done.append(
        (token, threading.current_thread().name)), max_batches=2, timeout_s=5.0)
    real_start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name == "zswap-async":
            raise RuntimeError("can't start new thread")
        real_start(self)

    try:
        monkeypatch.setattr(threading.Thread, "start", refuse)
        pipe.submit(0, _pages(2))
        assert done == [(0, threading.current_thread().name)] and pipe.in_flight == 0
        monkeypatch.setattr(threading.Thread, "start", real_start)
        pipe.submit(1, _pages(2))  # a worker can start again
        pipe.drain()
        assert [t for t, _ in done] == [0, 1] and done[1][1] == "zswap-async"
    finally:
        pipe.close()


def test_batches_merged_into_one_call_each_get_their_own_results() -> None:
    """Batches queued while the device is busy go in one call; its result is cut back per
    batch: each completion sees its own pages' items, its failed item at its own index."""
    release = threading.Event()
    calls: list[int] = []
    done: dict[int, list[object]] = {}

    def compress(pages: np.ndarray) -> CompressedBatch:
        calls.append(len(pages))
        release.wait(10)
        items: list[object] = [bytes(p[:2]) for p in pages]
        for i, p in enumerate(pages):
            if p[1] == 0xEE:
                items[i] = RuntimeError(f"page {p[0]} failed")
        return CompressedBatch.from_items(items)

    def complete(token: int, result: CompressedBatch) -> None:
        done[token] = [result.errors[i] if result.status[i] else result.item_bytes(i)
                       for i in range(len(result))]

    def batch(token: int, n: int, bad: int = -1) -> np.ndarray:
        pages = _pages(n)
        pages[:, 0] = token
        if bad >= 0:
            pages[bad, 1] = 0xEE
        return pages

    pipe = AsyncPipeline(compress, complete, max_batches=4, timeout_s=30.0)
    try:
        pipe.submit(0, batch(0, 1))
        while not calls:  # the worker is in its first call: the next two queue behind it
            threading.Event().wait(0.01)
        pipe.submit(1, batch(1, 2, bad=1))
        pipe.submit(2, batch(2, 3))
        release.set()
        pipe.drain()
        assert calls == [1, 5] and pipe.device_calls == 2
        assert done == {0: [b"\x00\x00"],
                        1: [b"\x01\x00", "RuntimeError: page 1 failed"],
                        2: [b"\x02\x00"] * 3}
    finally:
        release.set()
        pipe.close()


def test_a_result_with_the_wrong_item_count_fails_its_batches() -> None:
    """A compress step that returns fewer items than its call's pages cannot be cut back per
    batch: every batch of that call completes with all its pages failed, saying why (none
    is lost, and drain does not wait for the deadline)."""
    done: dict[int, list[str]] = {}

    def short(pages: np.ndarray) -> CompressedBatch:
        return _ok(pages[:-1])

    def complete(token: int, result: CompressedBatch) -> None:
        done[token] = [result.errors[i] for i in result.failed()]

    pipe = AsyncPipeline(short, complete, max_batches=4, timeout_s=30.0)
    try:
        for token, n in enumerate((1, 2, 3)):
            pipe.submit(token, _pages(n))
        pipe.drain()
        assert pipe.timed_out == 0 and sorted(done) == [0, 1, 2]
        assert [len(done[t]) for t in range(3)] == [1, 2, 3]
        assert all(why.startswith("InvalidInputError: cannot split a CompressedBatch")
                   for t in range(3) for why in done[t]), done
    finally:
        pipe.close()


def test_a_later_batch_may_complete_while_an_earlier_timed_out_one_is_completing() -> None:
    """Completions are not all in submission order: a timed-out batch is completed by the
    thread that noticed the deadline (here drain) while the new worker compresses and
    completes the next batch; neither waits for the other."""
    hang = threading.Event()
    later_done = threading.Event()
    calls: list[int] = []
    order: list[tuple[int, int, bool]] = []

    def compress(pages: np.ndarray) -> CompressedBatch:
        calls.append(len(pages))
        if len(calls) == 1:
            hang.wait(10)  # the first call is stuck past the deadline
        return _ok(pages)

    def complete(token: int, result: CompressedBatch) -> None:
        saw_later = later_done.wait(10) if token == 0 else False
        order.append((token, int(result.status[0]), saw_later))
        if token == 1:
            later_done.set()

    pipe = AsyncPipeline(compress, complete, max_batches=4, timeout_s=0.1)
    try:
        pipe.submit(0, _pages(1))
        while not calls:
            threading.Event().wait(0.01)
        pipe.submit(1, _pages(1))  # queued behind the stuck call
        pipe.drain()
        assert order == [(1, int(ItemStatus.OK), False), (0, int(ItemStatus.FAILED), True)]
        assert pipe.timed_out == 1 and pipe.in_flight == 0
    finally:
        hang.set()
        pipe.close()
