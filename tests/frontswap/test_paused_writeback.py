"""``ZswapCache.background_paused``: while the background thread is paused, stores are as with
no thread at all: one at the pool limit writes back on its own thread (it neither waits for the
paused thread nor is refused for want of its round), and the wake-up is kept for the thread's
round after the pause."""

from __future__ import annotations

import threading
import time

import numpy as np

from hwzswap.frontswap.writeback import BackgroundWriteback
from hwzswap.testing import real_memory_mix


class _Cache:
    """A Shrinkable always over its accept threshold; counts the thread's rounds."""

    def __init__(self) -> None:
        self.rounds = threading.Semaphore(0)

    @property
    def pool_pages(self) -> int:
        return 10

    @property
    def accept_pages(self) -> int:
        return 0

    def shrink(self, target_pages=None, stop=None) -> int:
        self.rounds.release()
        return 0


def test_a_paused_thread_is_never_counted_as_woken():
    cache = _Cache()
    bg = BackgroundWriteback(cache, interval=3600)  # it wakes only when woken
    bg.start()
    try:
        assert bg.wake(wait_s=30) is True  # it woke before wake returned
        assert cache.rounds.acquire(timeout=30)
        bg.pause()
        t0 = time.monotonic()
        assert bg.wake(wait_s=30) is False  # paused: no wait, the caller reclaims itself
        assert time.monotonic() - t0 < 15
        assert not cache.rounds.acquire(timeout=0.2)  # no round while paused
        bg.resume()
        assert cache.rounds.acquire(timeout=30)  # the kept wake-up's round, after the pause
    finally:
        bg.stop()
    assert bg.wake(wait_s=30) is False  # stopped: nothing to wake


def _fill(s, pages: np.ndarray) -> tuple[int, dict]:
    stored = sum(s.swap_out(0, off, pages[off].tobytes()) for off in range(len(pages)))
    return stored, s.stats()


def test_stores_at_the_limit_reclaim_on_their_own_thread_while_paused(make_system):
    """The same stores on a system with no thread and on one whose thread is paused: the
    same pages stored, written back and refused, and no round of the paused thread. (A store
    at the limit only woke the paused thread and waited 50 ms for it: 5 of 600 stored, none
    written back, 30 s.)"""
    pages = np.ascontiguousarray(real_memory_mix(120, seed=4))
    knobs = {"compressor": "lz4", "batching": "page", "max_pool_percent": 10}
    plain = make_system(zswap=knobs, memory={"total_ram_mb": 1})
    want_stored, want = _fill(plain, pages)
    assert want["written_back_pages"] > 0 and want["pool_limit_hit"] > 0, want

    s = make_system(zswap={**knobs, "background_writeback": True}, memory={"total_ram_mb": 1})
    bg = s.zswap._background
    assert bg is not None
    with s.zswap.background_paused():
        rounds = bg.rounds
        stored, st = _fill(s, pages)
        assert bg.rounds == rounds
    assert stored == want_stored, (st, want)
    for key in ("written_back_pages", "reject_pool_limit", "reject_reclaim_fail",
                "pool_limit_hit", "zswpout"):
        assert st[key] == want[key], (key, st, want)
    assert [s.swap_in(0, off) for off in range(len(pages))] == [p.tobytes() for p in pages]
