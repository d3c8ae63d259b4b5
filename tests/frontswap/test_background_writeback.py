"""The background writeback thread (the kernel's ``shrink_worker``) and its turn: a store the
full pool refuses lets it wake, and lets a writeback waiting for the lock take it first."""

from __future__ import annotations

import threading
import time

from hwzswap.frontswap.writeback import BackgroundWriteback

from fsutil import compressible_pages, run_thread


class _Cache:
    """A Shrinkable whose ``shrink`` blocks until released; counts how often the thread looked."""

    def __init__(self) -> None:
        self.looked = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    @property
    def pool_pages(self) -> int:
        self.looked += 1
        return 10

    @property
    def accept_pages(self) -> int:
        return 0

    def shrink(self, target_pages=None, stop=None) -> int:
        self.entered.set()
        self.release.wait(30)
        return 0


def test_wake_with_a_wait_returns_once_the_thread_has_woken():
    cache = _Cache()
    bg = BackgroundWriteback(cache, interval=3600)  # it wakes only when woken
    bg.start()
    try:
        bg.wake(wait_s=30)
        assert cache.looked == 1  # it woke (and looked at the pool) before wake returned
        assert cache.entered.wait(30)
        t0 = time.monotonic()
        bg.wake(wait_s=30)  # a round is running: nothing to wait for
        assert time.monotonic() - t0 < 15
        assert cache.looked == 1
    finally:
        cache.release.set()
        bg.stop()
    assert bg.rounds >= 1


def test_wake_does_not_wait_for_a_thread_that_has_ended():
    cache = _Cache()
    bg = BackgroundWriteback(cache, interval=3600)
    bg.start()
    bg.stop()
    t0 = time.monotonic()
    bg.wake(wait_s=30)
    assert time.monotonic() - t0 < 15 and cache.looked == 0


def test_a_refused_store_lets_a_waiting_writeback_take_the_lock_first(make_system):
    # Python's locks are not fair: a storer that releases the lock and takes it again at once
    # can keep a waiting writeback out indefinitely. A refused store yields to it.
    s = make_system()
    for off, page in enumerate(compressible_pages(20)):
        assert s.swap_out(0, off, page)
    zswap = s.zswap
    zswap._lock.acquire()
    try:
        t, out = run_thread(zswap.writeback, 4)
        deadline = time.monotonic() + 30
        while zswap._reclaim_waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert zswap._reclaim_waiting == 1
    finally:
        zswap._lock.release()
    zswap._yield_to_reclaim()  # returns once the writeback holds the lock
    assert zswap._reclaim_waiting == 0
    with zswap._lock:  # so it has picked its victims by now
        assert zswap.outstanding_writebacks + zswap.written_back_pages == 4
    t.join(30)
    assert out == [4] and s.stats()["written_back_pages"] == 4


def test_wake_does_not_wait_for_a_thread_that_died():
    class Broken(_Cache):
        @property
        def pool_pages(self) -> int:
            raise RuntimeError("the pool broke")

    bg = BackgroundWriteback(Broken(), interval=3600)
    bg.start()
    t0 = time.monotonic()
    bg.wake(wait_s=30)  # it wakes, dies of the error: the wait ends with it
    assert time.monotonic() - t0 < 15
    try:
        bg.stop()
    except RuntimeError as exc:
        assert "the pool broke" in str(exc)
    else:
        raise AssertionError("stop() did not raise the thread's error")


def test_close_stops_the_writeback_thread_even_when_the_async_pipeline_fails_to_close(
        make_system):
    # The pool is destroyed at the end of close: the writeback thread must be gone by then,
    # whatever the pipeline's close raised (an interrupt, a completion's error).
    s = make_system(zswap={"background_writeback": True, "batching": "async"})
    assert s.swap_out(0, 0, compressible_pages(1)[0])
    bg = s.zswap._background
    assert bg is not None and bg.alive

    def broken_close() -> None:
        raise RuntimeError("interrupted while draining")

    s.zswap._pipeline.close = broken_close
    try:
        s.close()
    except RuntimeError as exc:
        assert "interrupted while draining" in str(exc)
    else:
        raise AssertionError("close() hid the pipeline's error")
    assert not bg.alive and s.zswap._background is None


def test_pause_waits_for_a_running_round_and_starts_none_until_resumed():
    """``pause`` (behind ``ZswapCache.background_paused``, the bench's codec-alone pass): it
    returns only once a running round has ended, no round starts while paused, and rounds go
    on after ``resume``; ``stop`` ends a paused thread."""
    cache = _Cache()
    bg = BackgroundWriteback(cache, interval=3600)
    bg.start()
    try:
        bg.wake(wait_s=30)
        assert cache.entered.wait(30)  # a round is running (blocked in shrink)
        paused = threading.Event()
        t = threading.Thread(target=lambda: (bg.pause(), paused.set()))
        t.start()
        assert not paused.wait(0.2)  # pause waits for the round
        cache.release.set()
        assert paused.wait(30)
        t.join(30)
        rounds = bg.rounds
        cache.entered.clear()
        bg.wake()
        assert not cache.entered.wait(0.3) and bg.rounds == rounds  # none while paused
        bg.resume()
        assert cache.entered.wait(30)  # the wake-up kept while paused runs its round now
        bg.pause()  # and a paused thread still stops
    finally:
        cache.release.set()
        bg.stop()
    assert not bg.alive


def test_background_paused_on_a_real_cache(make_system):
    """``ZswapCache.background_paused``: inside, the pool is filled past its accept threshold
    and left so (the thread wakes every 20 ms); once it ends, the thread writes back. The pool
    stays under its limit (57 pages of 102), since a store at the limit reclaims on its own
    thread while the thread is paused (test_paused_writeback)."""
    s = make_system(zswap={"background_writeback": True, "compressor": "lz4",
                           "max_pool_percent": 10, "accept_threshold_percent": 25},
                    memory={"total_ram_mb": 4})
    pages = compressible_pages(40)
    with s.zswap.background_paused():
        for off, page in enumerate(pages):
            s.swap_out(0, off, page)
        assert s.zswap.pool_pages > s.zswap.accept_pages
        assert s.stats()["pool_limit_hit"] == 0
        time.sleep(0.2)
        assert s.stats()["written_back_pages"] == 0
    deadline = time.monotonic() + 10
    while s.zswap.pool_pages > s.zswap.accept_pages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.stats()["written_back_pages"] > 0
    assert [s.swap_in(0, off) for off in range(40)] == pages
