"""Background writeback: a thread that keeps zswap's pool at or under its accept threshold.

The writeback step itself (v9's ``zswap_writeback_entry`` with today's revalidation) is part of
the zswap cache (:meth:`~hwzswap.frontswap.zswap.ZswapCache.writeback` and ``shrink``); this is
the kernel's ``shrink_worker``: woken by a store that hits the limit, and every ``interval``
seconds, it asks the cache to shrink. It uses only the cache's public surface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Shrinkable(Protocol):
    """What the worker needs of a cache."""

    @property
    def pool_pages(self) -> int: ...

    @property
    def accept_pages(self) -> int: ...

    def shrink(self, target_pages: int | None = None,
               stop: Callable[[], bool] | None = None) -> int: ...


class BackgroundWriteback:
    """A thread that keeps the pool at or under the accept threshold (the kernel's
    ``shrink_worker``). Woken by a store that hits the limit, and every ``interval`` seconds."""

    def __init__(self, cache: Shrinkable, interval: float = 0.02) -> None:
        self.cache = cache
        self.interval = interval
        self._event = threading.Event()
        self._stopping = False
        self.rounds = 0
        #: An unexpected exception that ended the thread (re-raised by :meth:`stop`).
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zswap-writeback", daemon=True)
        #: wake-ups the thread has seen, and whether it is in a round (see wake)
        self._turn = threading.Condition()
        self._woken = 0
        self._in_round = False
        self._ended = False
        self._paused = 0  # pause() calls not yet resumed: no round starts while > 0

    def start(self) -> None:
        self._thread.start()

    def wake(self, wait_s: float = 0.0) -> bool:
        """Wake the thread; return whether it will run a round for this wake-up. ``wait_s``
        > 0 (a store the full pool refused): unless a round is running, wait up to that long
        for the thread to wake. The kernel's worker runs on another CPU at once; a Python
        thread woken by an event first waits for the GIL and a core, and a storer that goes
        on meanwhile can fill a short run without it ever running (measured on a loaded 2-core
        machine: 600 stores in 9 ms, 590 refused, 0 written back).

        A paused thread (:meth:`pause` in force) never counts as woken: the wake-up is kept
        for :meth:`resume`, but nothing is waited for and ``False`` comes back at once, as it
        does for a thread that is stopping or has ended (and when a pause comes during the
        wait), so the caller reclaims on its own thread, as it would with no thread at all."""
        with self._turn:
            self._event.set()  # while paused: kept, its round runs once resumed
            if not self._will_run():
                return False
            seen = self._woken
            if wait_s > 0 and not self._in_round:
                self._turn.wait_for(
                    lambda: self._woken != seen or not self._will_run(), wait_s)
            return self._will_run()

    def _will_run(self) -> bool:
        """Whether the thread may run a round now: alive, not stopping, not paused. Lock
        ``_turn`` held."""
        return (not self._paused and not self._stopping and not self._ended
                and self._thread.is_alive())

    def pause(self) -> None:
        """Until :meth:`resume`, start no round; wait for one that is running to end."""
        with self._turn:
            self._paused += 1
            self._turn.wait_for(lambda: not self._in_round or self._ended)

    def resume(self) -> None:
        """Undo one :meth:`pause`; rounds start again once none is in force."""
        with self._turn:
            self._paused -= 1
            self._turn.notify_all()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop and join the thread; re-raise what killed it, if anything did."""
        with self._turn:
            self._stopping = True
            self._turn.notify_all()  # a paused thread ends too
        self._event.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def _should_stop(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        cache = self.cache
        try:
            while True:
                self._event.wait(self.interval)
                self._event.clear()
                if self._stopping:
                    return
                with self._turn:
                    self._woken += 1
                    self._turn.notify_all()  # a waking storer sees the thread awake
                    self._turn.wait_for(lambda: not self._paused or self._stopping)
                    self._in_round = (not self._stopping
                                      and cache.pool_pages > cache.accept_pages)
                    self._turn.notify_all()
                if self._in_round:
                    self.rounds += 1
                    try:
                        cache.shrink(cache.accept_pages, self._should_stop)
                    finally:
                        with self._turn:
                            self._in_round = False
                            self._turn.notify_all()
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc
        finally:
            with self._turn:  # nobody waits for a thread that has ended (stopped or died)
                self._ended = True
                self._turn.notify_all()


__all__ = ["BackgroundWriteback", "Shrinkable"]
