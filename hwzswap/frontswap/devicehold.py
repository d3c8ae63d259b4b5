"""One call at a time in a device, and a refusal only when the device is stuck.

:class:`DeviceHold` is the lock the compressor puts around a driver that takes one call at a
time (``Compressor._serial``: a directly called driver that is not ``concurrent``) and around
its submit/poll loop (one loop at a time: ``poll`` hands back whoever's ops completed). The
call holding it records when it took the device and its own deadline (``zswap.device_timeout_ms``,
k of them for a pipeline call merging k batches). A caller waits for the device as long as
the call holding it is within that deadline -- a queue of healthy calls is the device being
busy, not stuck, and each of them ends within its deadline -- and is refused (:class:`Overdue`)
only once the holder has run past its own: the device is then stuck (a hung call of a trusted
driver, which is called directly and never given up), and every caller behind it is refused at
once until it returns, so a readahead cluster pays the rest of one deadline, not one a page.

The waiting caller's own deadline plays no part: a caller that merely queued behind several
healthy holders longer than its deadline in total is not refused (it used to be, and the
holder of that moment, often one that had just started, was then taken for a stuck one).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

#: Longest single wait on the lock while no holder's deadline is recorded (the moment
#: between a holder taking the lock and recording its deadline, or releasing it): the
#: waiter looks again after at most this long.
IDLE_SLICE_S = 1.0

_IDLE = (0.0, float("inf"))  # (since, until) while no holder is recorded


class Overdue(NamedTuple):
    """Why a caller was refused: the call holding the device has been in it ``held_s``
    seconds, past its own deadline of ``allowed_s`` seconds."""

    held_s: float
    allowed_s: float


class DeviceHold:
    """A lock for one call at a time in a device, with the holder's deadline.

    :meth:`take` gets the device for a call allowed ``allowed_s`` seconds in it, waiting as
    long as whoever holds it is within its own deadline (re-checked as holders change), and
    returns :class:`Overdue` instead once the holder is past it; :meth:`release` gives it
    back. :meth:`overdue` says whether the holder is past its deadline now (a stuck call)."""

    __slots__ = ("_lock", "_holder")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (since, until) of the call holding the lock (monotonic seconds), as one tuple so
        # a reader never pairs one holder's start with another's deadline
        self._holder: tuple[float, float] = _IDLE

    def take(self, allowed_s: float) -> Overdue | None:
        """Take the device for a call allowed ``allowed_s`` seconds in it: ``None`` once
        taken (the caller must :meth:`release` it), or :class:`Overdue` (not taken) when the
        call holding it has run past its own deadline."""
        lock = self._lock
        if not lock.acquire(False):
            refused = self._wait(lock)
            if refused is not None:
                return refused
        now = time.monotonic()
        self._holder = (now, now + allowed_s)
        return None

    def _wait(self, lock: threading.Lock) -> Overdue | None:
        """Wait for ``lock`` in slices that end at the current holder's deadline."""
        monotonic = time.monotonic
        while True:
            since, until = self._holder
            now = monotonic()
            if now > until:  # the holder is past its own deadline: the device is stuck
                if lock.acquire(False):  # unless it has just let go
                    return None
                if self._holder != (since, until):  # another holder meanwhile: look again
                    continue
                return Overdue(now - since, until - since)
            # a hair past the deadline, so the re-check sees it passed; at most IDLE_SLICE_S
            # while no deadline is recorded (inf), so a new holder's is seen soon
            if lock.acquire(True, min(until - now + 1e-4, IDLE_SLICE_S)):
                return None

    def release(self) -> None:
        """Give the device back (the holder's record first: a waiter that sees the lock free
        never sees this call's deadline)."""
        self._holder = _IDLE
        self._lock.release()

    def overdue(self) -> bool:
        """Whether the call holding the device is past its own deadline now (a stuck call;
        ``False`` while none holds it)."""
        return time.monotonic() > self._holder[1]


__all__ = ["IDLE_SLICE_S", "DeviceHold", "Overdue"]
