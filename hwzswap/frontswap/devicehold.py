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

Callers get the device in the order they asked for it: the holder hands it to the first one
waiting when it lets go. (With a plain lock, a thread that lets go and takes it again at once,
such as a load's loop of back-to-back calls, won nearly every time: a submit/poll loop waiting
behind it could wait past its ops' deadlines and time them out for the device's being busy.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple

#: Longest single wait of a caller in line while no holder's deadline is recorded: the
#: waiter looks again after at most this long (a safety net: the holder's deadline is
#: recorded whenever the device is held).
IDLE_SLICE_S = 1.0

_IDLE = (0.0, float("inf"))  # (since, until) while no holder is recorded


class Overdue(NamedTuple):
    """Why a caller was refused: the call holding the device has been in it ``held_s``
    seconds, past its own deadline of ``allowed_s`` seconds."""

    held_s: float
    allowed_s: float


class _InLine:
    """A caller waiting for the device: ``wake`` is released when the device is handed to it
    (``granted``, set under the hold's lock)."""

    __slots__ = ("allowed_s", "granted", "wake")

    def __init__(self, allowed_s: float) -> None:
        self.allowed_s = allowed_s
        self.granted = False
        self.wake = threading.Lock()
        self.wake.acquire()


class DeviceHold:
    """A lock for one call at a time in a device, with the holder's deadline, taken in the
    order it was asked for.

    :meth:`take` gets the device for a call allowed ``allowed_s`` seconds in it, waiting in
    line as long as whoever holds it is within its own deadline (re-checked as holders
    change), and returns :class:`Overdue` instead (leaving the line) once the holder is past
    it; :meth:`release` gives it back, to the first caller in line if any. :meth:`overdue`
    says whether the holder is past its deadline now (a stuck call)."""

    __slots__ = ("_mu", "_held", "_line", "_holder")

    def __init__(self) -> None:
        self._mu = threading.Lock()  # a leaf: guards the three below
        self._held = False
        self._line: deque[_InLine] = deque()  # callers waiting, first come first
        # (since, until) of the call holding the device (monotonic seconds), as one tuple so
        # a reader never pairs one holder's start with another's deadline; read without _mu
        self._holder: tuple[float, float] = _IDLE

    def take(self, allowed_s: float) -> Overdue | None:
        """Take the device for a call allowed ``allowed_s`` seconds in it: ``None`` once
        taken (the caller must :meth:`release` it), or :class:`Overdue` (not taken) when the
        call holding it has run past its own deadline."""
        with self._mu:
            if not self._held:
                self._held = True
                now = time.monotonic()
                self._holder = (now, now + allowed_s)
                return None
            me = _InLine(allowed_s)
            self._line.append(me)
        return self._wait(me)

    def _wait(self, me: _InLine) -> Overdue | None:
        """Wait in line in slices that end at the current holder's deadline."""
        monotonic = time.monotonic
        while True:
            since, until = self._holder
            now = monotonic()
            if now > until:  # the holder is past its own deadline: the device is stuck
                with self._mu:
                    if me.granted:  # handed to this caller meanwhile
                        return None
                    if self._holder != (since, until):  # another holder meanwhile: look again
                        continue
                    self._line.remove(me)
                return Overdue(now - since, until - since)
            # a hair past the deadline, so the re-check sees it passed
            if me.wake.acquire(True, min(until - now + 1e-4, IDLE_SLICE_S)):
                return None

    def release(self) -> None:
        """Give the device back: to the first caller in line (its deadline recorded as it is
        handed over, so no other caller sees the device free or the old deadline), else free."""
        with self._mu:
            if self._line:
                nxt = self._line.popleft()
                now = time.monotonic()
                self._holder = (now, now + nxt.allowed_s)
                nxt.granted = True
                nxt.wake.release()
            else:
                self._holder = _IDLE
                self._held = False

    def overdue(self) -> bool:
        """Whether the call holding the device is past its own deadline now (a stuck call;
        ``False`` while none holds it)."""
        return time.monotonic() > self._holder[1]


__all__ = ["IDLE_SLICE_S", "DeviceHold", "Overdue"]
