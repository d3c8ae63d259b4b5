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

Callers waiting in line are not starved. As with a plain lock, a caller that finds the device
free takes it at once, even past callers waiting (cheap: no thread switch at each release);
but once the first caller in line has waited ``starve_s``, callers that come later wait behind
it: the device goes to each caller in line in order. (Go's ``sync.Mutex`` does the same, with
its ``starvationThresholdNs`` of 1 ms, the default here.) With a plain lock, a thread that let
go and took it again at once, such as a load's loop of back-to-back calls, won nearly every
time: a submit/poll loop waiting behind it could wait past its ops' deadlines and time them
out for the device's being busy. Strict first come, first served cost a thread switch at every
contended release: a third of the polls a second with four threads polling.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple

#: Longest single wait of a caller in line: it looks again after at most this long (a
#: safety net; the first caller in line is woken whenever the device changes hands).
MAX_SLICE_S = 1.0

#: Longest single wait while no holder's deadline is recorded (the device let go, the first
#: in line not in yet): short, to see the next holder's deadline soon, which may be short
#: (a safety net: the first in line is woken when the device is let go or taken).
IDLE_SLICE_S = 0.002

#: How long the first caller in line may be passed by callers that find the device free
#: before later callers must wait behind it (Go's sync.Mutex uses 1 ms).
STARVE_S = 0.001

_IDLE = (0.0, float("inf"))  # (since, until) while no holder is recorded


class Overdue(NamedTuple):
    """Why a caller was refused: the call holding the device has been in it ``held_s``
    seconds, past its own deadline of ``allowed_s`` seconds."""

    held_s: float
    allowed_s: float


class _InLine:
    """A caller waiting for the device since ``since``: ``wake`` is released to wake it
    (``signalled``, set under the hold's lock) when it is first in line and the device is let
    go, taken by another or refused to the caller before it."""

    __slots__ = ("allowed_s", "since", "signalled", "took", "wake")

    def __init__(self, allowed_s: float, since: float) -> None:
        self.allowed_s = allowed_s
        self.since = since
        self.signalled = False
        self.took = False  # it took the device (out of the line); set under the hold's lock
        self.wake = threading.Lock()
        self.wake.acquire()


class DeviceHold:
    """A lock for one call at a time in a device, with the holder's deadline, that starves
    no one.

    :meth:`take` gets the device for a call allowed ``allowed_s`` seconds in it: at once when
    it is free (unless the first caller in line has waited ``starve_s``), else waiting in line
    as long as whoever holds it is within its own deadline (re-checked as holders change); it
    returns :class:`Overdue` instead (leaving the line) once the holder is past it.
    :meth:`release` gives it back, and wakes the first caller in line: it takes the device
    unless a caller that came later took it first (only while it has waited less than
    ``starve_s``). :meth:`overdue` says whether the holder is past its deadline now (a stuck
    call)."""

    __slots__ = ("_mu", "_held", "_line", "_holder", "starve_s")

    def __init__(self, starve_s: float = STARVE_S) -> None:
        self.starve_s = starve_s
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
            now = time.monotonic()
            line = self._line
            if not self._held and not (line and now - line[0].since >= self.starve_s):
                self._hold_locked(allowed_s, now)
                return None
            me = _InLine(allowed_s, now)
            line.append(me)
        try:
            return self._wait(me)
        except BaseException:  # (a KeyboardInterrupt in the wait)
            self._leave(me)
            raise

    def _leave(self, me: _InLine) -> None:
        """A caller in line leaves on an exception: out of the line, or the device it took
        let go (not one it was refused, which its stuck holder still has); the first in line
        woken if the device is free (the wake this caller may have taken). Retried until done
        on a second KeyboardInterrupt: one while it waits for the lock must not leave it first
        in line for good, with every later caller waiting behind it."""
        while True:
            try:
                with self._mu:
                    if me in self._line:
                        self._line.remove(me)
                    elif me.took:
                        me.took = False
                        self._held = False
                        self._holder = _IDLE
                    if not self._held:
                        self._wake_first_locked()
                return
            except KeyboardInterrupt:  # a second Ctrl-C: again (take raises the first)
                continue

    def _wait(self, me: _InLine) -> Overdue | None:
        """Wait in line, in slices that end at the current holder's deadline, for the device
        to be let go."""
        monotonic = time.monotonic
        while True:
            since, until = self._holder
            now = monotonic()
            if now > until:  # the holder is past its own deadline: the device is stuck
                with self._mu:
                    if self._line[0] is me and self._got_locked(me):  # let go just now
                        return None
                    if self._holder != (since, until):  # another holder meanwhile: look again
                        continue
                    self._line.remove(me)
                    self._wake_first_locked()  # refused too, at once
                return Overdue(now - since, until - since)
            # a hair past the deadline, so the re-check sees it passed
            slice_s = IDLE_SLICE_S if until == _IDLE[1] else min(until - now + 1e-4,
                                                                 MAX_SLICE_S)
            woken = me.wake.acquire(True, slice_s)
            with self._mu:
                if woken:  # (only the first in line is woken)
                    me.signalled = False
                # the first in line takes a free device (woken or not: a wake is never
                # waited for past a slice); if another caller took it first, wait on
                if (woken or self._line[0] is me) and self._got_locked(me):
                    return None

    def _got_locked(self, me: _InLine) -> bool:
        """Take the device for ``me`` (out of the line) if it is free; whether it did.
        ``_mu`` held."""
        if self._held:
            return False
        me.took = True
        self._line.remove(me)
        self._hold_locked(me.allowed_s, time.monotonic())
        self._wake_first_locked()  # to wait until this holder's deadline, not an older one's
        return True

    def _hold_locked(self, allowed_s: float, now: float) -> None:
        self._held = True
        self._holder = (now, now + allowed_s)

    def release(self) -> None:
        """Give the device back, waking the first caller in line. Releasing a device not held
        is a RuntimeError, as for a lock."""
        with self._mu:
            if not self._held:
                raise RuntimeError("DeviceHold.release: the device is not held")
            self._let_go_locked()

    def _let_go_locked(self) -> None:
        """The holder lets go: the device is free and the first caller in line woken (a
        caller that comes meanwhile takes it first only while that one has waited less than
        ``starve_s``: :meth:`take`). ``_mu`` held."""
        self._held = False
        self._holder = _IDLE
        self._wake_first_locked()

    def _wake_first_locked(self) -> None:
        """Wake the first caller in line (if any) to look at the device again: it is free,
        or has a new holder whose deadline it must wait by. ``_mu`` held."""
        if self._line:
            self._signal_locked(self._line[0])

    @staticmethod
    def _signal_locked(waiter: _InLine) -> None:
        if not waiter.signalled:
            waiter.signalled = True
            waiter.wake.release()

    def overdue(self) -> bool:
        """Whether the call holding the device is past its own deadline now (a stuck call;
        ``False`` while none holds it)."""
        return time.monotonic() > self._holder[1]


__all__ = ["IDLE_SLICE_S", "MAX_SLICE_S", "STARVE_S", "DeviceHold", "Overdue"]
