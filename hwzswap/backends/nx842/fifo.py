"""The driver's entry as a request FIFO: a lock that serves waiting threads in arrival order.

Why not :class:`threading.Lock`. The NX unit takes requests in the order they are submitted
(POWER9+: CRBs are pasted into the kernel's receive FIFO of the chip's NX, 842.md §4.1), so a
caller that submitted first is served first. The driver lets one call in at a time; with
Python's lock, which is not FIFO, a thread that calls back to back re-takes the lock before the
woken waiter runs, and the other thread can wait many calls long (one review measured ~556 ms
for two threads hammering ``compress_batch``), well past a 200 ms ``timeout_ms``: a timeout the
hardware would never give. :class:`FifoLock` hands the lock over on release.

How. A thread that finds the lock taken (or others already waiting: no barging) joins a queue
on a private lock of its own and sleeps on it. :meth:`FifoLock.release` never frees a lock that
has waiters: it makes the oldest waiter the owner, under the internal mutex, and then wakes it.
Every decision (take, queue, hand over, give up) happens under that one mutex, so:

* ``acquire(False)`` fails while anyone owns the lock, which includes a waiter it has just been
  handed to that has not woken yet, and therefore also while threads queue;
* a waiter whose wait times out takes itself off the queue -- unless a release handed it the
  lock in the meantime, in which case it owns the lock and ``acquire`` returns True (returning
  False would strand the lock with an owner that never releases it);
* a waiter interrupted while it sleeps (KeyboardInterrupt in the main thread) leaves the queue,
  or passes on a lock already handed to it, before the exception propagates.

Like :class:`threading.Lock` it is not re-entrant (a holder that acquires again waits, for
ever without a timeout), ``acquire`` takes the same arguments with the same checks, and releasing
a lock that is not held raises :class:`RuntimeError`. Unlike it, the lock has an owner: only the
thread that holds it may release it (``RuntimeError`` otherwise), which is how the driver uses
its entry lock anyway (every entry point releases in its own ``finally``).
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType

from _thread import get_ident


class _Waiter:
    """One queued thread: the private lock it sleeps on, and whether it has been handed the lock."""

    __slots__ = ("wake", "ident", "granted")

    def __init__(self, ident: int) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.ident = ident
        self.granted = False


class FifoLock:
    """A mutual-exclusion lock whose waiters get it in arrival order (see the module docstring)."""

    __slots__ = ("_mutex", "_owner", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None  # thread ident of the holder, None when free
        self._waiters: deque[_Waiter] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; wait behind earlier waiters if it is taken (``blocking``), at most
        ``timeout`` seconds (``-1``: no limit). True if this thread now holds it."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        me = get_ident()
        with self._mutex:
            if self._owner is None:  # free implies nobody waits: release hands over otherwise
                self._owner = me
                return True
            if not blocking:
                return False
            waiter = _Waiter(me)
            self._waiters.append(waiter)
        try:
            if self._park(waiter, timeout):
                return True  # release() made us the owner before waking us
        except BaseException:
            with self._mutex:
                if waiter.granted:
                    self._hand_on()  # we own it but will not use it: pass it to the next one
                else:
                    self._waiters.remove(waiter)
            raise
        with self._mutex:
            if waiter.granted:
                return True  # handed over just as the wait timed out: ours now
            self._waiters.remove(waiter)
            return False

    def _park(self, waiter: _Waiter, timeout: float) -> bool:
        """Sleep until :meth:`release` wakes ``waiter`` or ``timeout`` passes; True if woken.
        (A seam of its own so a test can make a timeout land exactly at a hand-over.)"""
        return waiter.wake.acquire(True, timeout)

    def release(self) -> None:
        """Give the lock to the oldest waiter, or free it if none waits. Only its holder may."""
        with self._mutex:
            owner = self._owner
            if owner is None:
                raise RuntimeError("release unlocked lock")
            if owner != get_ident():
                raise RuntimeError("cannot release a FifoLock held by another thread")
            self._hand_on()

    def _hand_on(self) -> None:
        """The holder lets go: the oldest waiter becomes the owner and is woken. Mutex held."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            self._owner = waiter.ident
            waiter.wake.release()
        else:
            self._owner = None

    def locked(self) -> bool:
        """True while some thread holds the lock (or has been handed it and not yet woken)."""
        return self._owner is not None

    @property
    def waiting(self) -> int:
        """How many threads are queued for the lock now."""
        return len(self._waiters)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self._owner is not None else "unlocked"
        return f"<FifoLock {state}, {len(self._waiters)} waiting>"
