"""The submission queue feeding the engines, in two clock modes.

Both modes run the same :class:`~hwzswap.backends.nx842.engine.Engine` code on every request and
so charge the same modelled device time; they differ only in what "time" is:

``virtual``
    A modelled clock in µs, no sleeping, no threads. A request is started at submission on the
    engine that frees up first (FIFO over N servers): ``start = max(now, engine free at)``,
    ``done = start + service``. Its completion (CSB valid bit) becomes visible once the clock
    reaches ``done``. The clock moves only when the host waits for the device (a synchronous
    call, or :meth:`wait_any` when nothing has completed yet); host CPU time is not modelled, so
    runs are deterministic and fast enough for benchmarking. The one exception is a hung
    request (no completion until the driver's timeout): an async ``poll`` waiting on one waits
    in wall time, a bounded slice per call (:meth:`wait_any_for`), so a caller's deadline works.

``host``
    The ``virtual`` clock that also moves with the host's own time: at each call into the
    queue it first advances by the host time spent since the last one, less the emulation's
    (the software standing in for the engines is the device's time, not the host's). So the
    engines work while the host does, as a real device beside a CPU does: a request submitted
    before the host goes on with other work may be done when the host next looks, and only
    what is still left counts as waited (``waited_us``). Not deterministic: how much is hidden
    depends on how long the host's own work takes.

``realtime``
    One worker thread per engine takes requests from the FIFO and paces wall time to the model:
    it does the work, then sleeps/spins until ``start + service`` before setting the valid bit.
    The emulation cannot finish sooner than the host can run the codec; completions that land
    later than the model are counted (``late``/``late_us``).

Deadline, on every clock: the driver polls a request's CSB for at most ``timeout_ms`` after
submitting it (the kernel's CSB_WAIT_MAX, 842.md §4.1), so a request whose modelled completion
(queueing plus service) lands later is posted at that deadline with no valid CSB (``hung``):
the driver sees it time out. Its engine still works on it to the end (busy as modelled): only
the driver stopped waiting. A ``HANG`` fault is the same with no end. ``realtime`` decides it on
the model too (the request's modelled start: its submission, or when its engine's previous
request ends by the model), so a host too slow to keep up with the model makes a request late
(``late``), never a timeout; it then sees the timeout late too.

Overlap accounting (``virtual`` and ``host`` clocks): how much of the device's work the host
did not wait for. ``busy_union_us`` is the model time during which at least one engine works
(a union over the engines, not their sum: two engines busy at once count once, so engine
parallelism is not mistaken for overlap). ``exposed_us`` is the part of it during which the
host was blocked on the device; the rest overlapped the host's own work. Both are accrued as
the clock passes the time (a request's future busy time counts once the clock reaches it).

*The host* is the program's main thread (the bench's stack runs on it). It is blocked on the
device while it is inside a blocking driver call (a synchronous call, a ``poll``, a ``submit``
of ops it waits for: the driver brackets them with :meth:`VirtualQueue.enter_blocking`; a
``submit`` of ops it does not wait for is the host's own path), while requests it submitted and
waits for are not yet handed back by a ``poll`` (ops with ``caller_waits``: a synchronous
submit/poll loop, from a submission until its completion is seen; zswap's ``async`` mode
submits a reclaim batch without it and goes on with its own work, which then overlaps the
device's), and while it is parked in a wait for another
thread (its innermost frame in :mod:`threading` or the driver's FIFO lock: an async engine's
drain or backpressure, a watchdog's hand-off, the driver's lock held by another thread's
call), read from :func:`sys._current_frames` at most every :data:`PARK_CHECK_NS`. Another
thread's wait (an async engine's worker feeding the device) blocks the host only while the
host is parked so: otherwise the host goes on with its own work meanwhile, as it would on
another CPU. So a clock move is exposed when it is a wait (the host, or a thread it waits
for, waiting for a completion), or, on the ``host`` clock, host time while the host is
blocked as above (its own time inside a blocking call is polling, not work).

``1 - exposed_us / busy_union_us`` is then the share of the device's time that overlapped the
host's own work. On the ``virtual`` clock host work takes no model time, so nothing can
overlap it there (the bench reports 0 with a note; use ``clock: host`` to measure it).

The driver owns the request blocks (one per queue slot); a queue only sees blocks it was given.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from heapq import heappop, heappush
from time import perf_counter_ns
from typing import Literal

from hwzswap.backends.nx842 import fifo as _fifo
from hwzswap.backends.nx842.crb import CC_INTERNAL, CSB_V, Crb
from hwzswap.backends.nx842.engine import Engine
from hwzswap.errors import DeviceError

ClockMode = Literal["virtual", "host", "realtime"]

# How long a realtime wait may block with nothing completing before the driver declares the
# emulated device dead (beyond the configured completion timeout). Generous: the codec's first
# call compiles it, which can take a while on a loaded machine.
_REALTIME_GUARD_S = 300.0
# The longest single sleep of an engine thread pacing a request (ns): how soon it sees close().
_PACE_SLICE_NS = 10_000_000
#: How long (wall ns) an answer to "is the host parked in a wait?" is reused before the main
#: thread's frame is looked at again (a look costs ~3 µs; a drain lasts milliseconds).
PARK_CHECK_NS = 50_000
#: The source files a parked main thread's innermost frame is in: a wait on a Condition,
#: Event, Semaphore or join (threading), or on the driver's FIFO lock.
_WAIT_FILES = frozenset({threading.__file__, _fifo.__file__})


class VirtualQueue:
    """FIFO over N engines on a modelled clock (see the module docstring).

    Everything this class does stands in for the device: the engines' work, choosing an
    engine, ordering completions, setting valid bits. Its host time is therefore counted in
    ``emulation_ns`` and in ``excluded_ns`` (time inside driver calls that is not the driver's
    own path), so the driver's host-cost figure covers only what a real driver would execute.
    """

    mode: ClockMode = "virtual"

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines
        #: µs after submission at which the driver stops waiting for a request
        self.timeout_us = engines[0].timeout_us if engines else float("inf")
        self.now = 0.0  # the device clock, µs
        self._free_at = [0.0] * len(engines)
        self._heap: list[tuple[float, int, Crb]] = []
        self._seq = 0
        self.emulation_ns = 0
        self.excluded_ns = 0
        #: µs the clock moved because the host waited for the device (the rest of its moves,
        #: in the ``host`` clock, are the host's own time)
        self.waited_us = 0.0
        #: model time with at least one engine busy, passed by the clock (µs; the module
        #: docstring's overlap accounting), and the part of it the host was blocked on
        self.busy_union_us = 0.0
        self.exposed_us = 0.0
        #: the part of ``exposed_us`` during which the host was not in the driver itself but
        #: parked waiting for another thread that was (an async engine's drain, backpressure)
        self.exposed_parked_us = 0.0
        #: merged engine-busy intervals [start, end] the clock has not passed yet, in order
        self._busy: deque[list[float]] = deque()
        #: per thread: blocking driver calls in progress plus requests submitted and not yet
        #: handed back (:meth:`enter_blocking`, :meth:`await_requests`)
        self._holds: dict[int, int] = {}
        self._main = threading.main_thread().ident
        self._parked = False  # the last look at the main thread, and when (perf_counter_ns)
        self._parked_at = 0
        self.look_ns = 0  # wall ns spent looking at the main thread
        self.closed = False

    def clock_us(self) -> float:
        return self.now

    def _wait_to(self, t: float) -> None:
        """The calling thread waits for the device until model time ``t``: exposed if that
        thread is the host or the host waits for it (module docstring)."""
        if t > self.now:
            self.waited_us += t - self.now
            if threading.get_ident() == self._main or self._main in self._holds:
                self._advance(t, True)
            else:
                parked = self._main_parked()
                self._advance(t, parked, parked)

    def _host_blocked(self) -> tuple[bool, bool]:
        """Whether the host has been blocked on the device since the last call into the
        queue (the state changes only at such calls), and whether only by being parked
        waiting for another thread that is."""
        holds = self._holds
        if not holds:
            return False, False
        if self._main in holds:
            return True, False
        parked = self._main_parked()
        return parked, parked

    def _main_parked(self) -> bool:
        """The main thread is parked in a wait (module docstring); looked at no more than
        every :data:`PARK_CHECK_NS`, the look's time excluded from the host's."""
        t0 = perf_counter_ns()
        if t0 - self._parked_at < PARK_CHECK_NS:
            return self._parked
        f = sys._current_frames().get(self._main)  # a documented CPython API
        self._parked = f is None or f.f_code.co_filename in _WAIT_FILES
        self._parked_at = t1 = perf_counter_ns()
        self.look_ns += t1 - t0  # the accounting's own time: not the host's (host clock)
        return self._parked

    def _advance(self, t: float, blocked: bool, parked: bool = False) -> None:
        """Move the clock to ``t`` (> now), accruing the engine-busy time it passes into
        ``busy_union_us`` and, when the host was ``blocked`` on the device meanwhile, into
        ``exposed_us`` (and ``exposed_parked_us`` when it was only ``parked`` waiting for
        another thread that was)."""
        a = self.now
        busy = self._busy
        passed = 0.0
        while busy:
            iv = busy[0]
            s, e = iv
            if s >= t:
                break
            lo = s if s > a else a
            hi = e if e < t else t
            if hi > lo:
                passed += hi - lo
            if e > t:
                break
            busy.popleft()
        if passed:
            self.busy_union_us += passed
            if blocked:
                self.exposed_us += passed
                if parked:
                    self.exposed_parked_us += passed
        self.now = t

    def _note_busy(self, start: float, end: float) -> None:
        """An engine works from ``start`` to ``end``: merged into the busy intervals (starts
        never decrease: each request starts on the engine that frees up first, at or after
        the clock)."""
        if end <= start:
            return
        busy = self._busy
        if busy and start <= busy[-1][1]:
            if end > busy[-1][1]:
                busy[-1][1] = end
        else:
            busy.append([start, end])

    def enter_blocking(self) -> None:
        """The calling thread enters a blocking driver call (a synchronous call, a poll): it
        is blocked on the device until :meth:`leave_blocking` (module docstring). The driver
        calls the pair around each such call, in a ``try``/``finally``."""
        self._hold(threading.get_ident(), 1)

    def leave_blocking(self) -> None:
        self._hold(threading.get_ident(), -1)

    def await_requests(self, n: int) -> None:
        """The calling thread submitted ``n`` requests: blocked on them until they are handed
        back (:meth:`requests_seen`)."""
        if n:
            self._hold(threading.get_ident(), n)

    def requests_seen(self, ident: int, n: int = 1) -> None:
        """``n`` requests thread ``ident`` submitted were handed back by a poll."""
        self._hold(ident, -n)

    def _hold(self, ident: int, d: int) -> None:
        n = self._holds.get(ident, 0) + d
        if n > 0:
            self._holds[ident] = n
        else:
            self._holds.pop(ident, None)

    def inflight(self) -> int:
        return len(self._heap)

    def _start(self, crb: Crb) -> float:
        """Run ``crb`` on the engine that frees up first; returns its completion time."""
        if self.closed:
            raise DeviceError("842-nx: the device was closed; create a new backend")
        now = self.now
        fa = self._free_at
        best = min(fa)
        e = fa.index(best)
        start = best if best > now else now
        done = start + self.engines[e].run(crb)
        fa[e] = done  # the engine works to the end even when the driver stops waiting
        self._note_busy(start, done)
        limit = now + self.timeout_us
        if done > limit:  # no valid CSB by the driver's deadline: it times out then
            crb.hung = True
            done = limit
        crb.t_submit = now
        crb.t_start = start
        crb.t_done = done
        return done

    def submit(self, crb: Crb) -> None:
        """Accept ``crb``; the engine that frees up first does its work now (on the model clock)."""
        t0 = perf_counter_ns()
        try:
            done = self._start(crb)
            self._seq += 1
            heappush(self._heap, (done, self._seq, crb))
        finally:
            dt = perf_counter_ns() - t0
            self.emulation_ns += dt
            self.excluded_ns += dt

    def run_sync(self, crb: Crb) -> list[Crb]:
        """Submit ``crb``, wait for it, and return every request completed by then (``crb``
        included). With nothing else in flight this skips the completion heap."""
        if self._heap:
            self.submit(crb)
            self.wait(crb)
            return self.reap()
        t0 = perf_counter_ns()
        try:
            self._wait_to(self._start(crb))
            if not crb.hung:
                crb.csb.flags |= CSB_V
            crb.posted = True
            return [crb]
        finally:
            dt = perf_counter_ns() - t0
            self.emulation_ns += dt
            self.excluded_ns += dt

    def _post(self, now: float) -> list[Crb]:
        heap = self._heap
        out = []
        while heap and heap[0][0] <= now:
            crb = heappop(heap)[2]
            if not crb.hung:
                crb.csb.flags |= CSB_V
            crb.posted = True
            out.append(crb)
        return out

    def reap(self) -> list[Crb]:
        """Requests whose modelled completion time has been reached, in completion order."""
        if not self._heap or self._heap[0][0] > self.now:
            return []
        t0 = perf_counter_ns()
        out = self._post(self.now)
        dt = perf_counter_ns() - t0
        self.emulation_ns += dt
        self.excluded_ns += dt
        return out

    def wait_reap(self) -> list[Crb]:
        """:meth:`wait_any` then :meth:`reap`, in one call (the batch loops' step)."""
        heap = self._heap
        if not heap:
            return []
        t0 = perf_counter_ns()
        self._wait_to(heap[0][0])
        out = self._post(self.now)
        dt = perf_counter_ns() - t0
        self.emulation_ns += dt
        self.excluded_ns += dt
        return out

    def wait_any(self) -> None:
        """Advance the clock to the next completion (the host waits for the device)."""
        heap = self._heap
        if heap:
            self._wait_to(heap[0][0])

    def wait_any_until(self, deadline_us: float) -> bool:
        """Like :meth:`wait_any`, but give up at ``deadline_us``; True if something completed."""
        heap = self._heap
        if heap and heap[0][0] <= deadline_us:
            self.wait_any()
            return True
        self._wait_to(deadline_us)
        return False

    def wait(self, crb: Crb) -> None:
        """Advance the clock until ``crb`` has completed."""
        self._wait_to(crb.t_done)

    def wait_any_for(self, max_s: float) -> None:
        """Wait a bounded time for the next completion (an async ``poll``'s wait).

        A request that completes is waited for on the model clock, which costs no wall time.
        A hung request is no completion the model can jump to: when the next request to post
        is a hung one, the host really waits, up to ``max_s`` of wall time, and the clock moves
        by what it waited. So a caller's own deadline (``zswap.device_timeout_ms``, wall
        time) passes before the driver's completion timeout does."""
        heap = self._heap
        if not heap:
            return
        t, _, crb = heap[0]
        if not crb.hung:
            self._wait_to(t)
            return
        t0 = perf_counter_ns()
        time.sleep(min(max_s, max(0.0, (t - self.now) / 1e6)))
        dt = perf_counter_ns() - t0
        self.excluded_ns += dt
        self._wait_to(min(t, self.now + dt / 1000.0))

    def wait_all(self, crbs: list[Crb]) -> None:
        """Advance the clock until every request in ``crbs`` has completed (their work was
        done at submission; the host waits for them to retire)."""
        if crbs:
            self._wait_to(max(c.t_done for c in crbs))

    def queued(self) -> list[Crb]:
        """The requests not yet posted (completed or not), in no particular order."""
        return [c for _, _, c in self._heap]

    def close(self) -> None:
        self.closed = True


class HostClockQueue(VirtualQueue):
    """The virtual clock, moved on by the host's own time between calls (the ``host`` clock of
    the module docstring): every call first catches the clock up with what the host did since
    the last one, less the emulation's time."""

    mode: ClockMode = "host"

    def __init__(self, engines: list[Engine]) -> None:
        super().__init__(engines)
        self._mark_ns = perf_counter_ns()
        self._mark_excluded = 0

    def _follow_host(self) -> None:
        """Move the clock by the host's time since the last call into the queue: exposed if
        the host was blocked on the device meanwhile (the state changes only at calls into
        the queue, :meth:`enter_blocking` and the others that change it included)."""
        t, excluded = perf_counter_ns(), self.excluded_ns + self.look_ns
        host_ns = (t - self._mark_ns) - (excluded - self._mark_excluded)
        if host_ns > 0:
            self._advance(self.now + host_ns / 1000.0, *self._host_blocked())
        # (a look at the main thread made above, after t, is left out of the next segment)
        self._mark_ns, self._mark_excluded = t, excluded

    def _hold(self, ident: int, d: int) -> None:
        self._follow_host()  # the time before the change, in the state before it
        super()._hold(ident, d)

    def clock_us(self) -> float:
        self._follow_host()
        return self.now

    def submit(self, crb: Crb) -> None:
        self._follow_host()
        super().submit(crb)

    def run_sync(self, crb: Crb) -> list[Crb]:
        self._follow_host()
        return super().run_sync(crb)

    def reap(self) -> list[Crb]:
        self._follow_host()
        return super().reap()

    def wait_reap(self) -> list[Crb]:
        self._follow_host()
        return super().wait_reap()

    def wait_any(self) -> None:
        self._follow_host()
        super().wait_any()

    def wait_any_until(self, deadline_us: float) -> bool:
        self._follow_host()
        return super().wait_any_until(deadline_us)

    def wait(self, crb: Crb) -> None:
        self._follow_host()
        super().wait(crb)

    def wait_any_for(self, max_s: float) -> None:
        self._follow_host()
        super().wait_any_for(max_s)

    def wait_all(self, crbs: list[Crb]) -> None:
        self._follow_host()
        super().wait_all(crbs)


class RealtimeQueue:
    """FIFO over N engine threads that pace wall time to the model (see the module docstring)."""

    mode: ClockMode = "realtime"

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines
        self._cv = threading.Condition()
        self._pending: deque[Crb] = deque()
        self._posted: list[Crb] = []
        self._inflight = 0
        self._stop = False
        self.closed = False
        self._t0 = perf_counter_ns()
        #: ns after submission at which the driver stops waiting for a request
        self._timeout_ns = int(engines[0].timeout_us * 1000.0) if engines else 1 << 62
        self.excluded_ns = 0  # host ns the driver spent blocked waiting for completions
        self.late = [0] * len(engines)  # completions posted later than the model allows
        self.late_ns = [0] * len(engines)
        self.engine_errors: list[str] = []  # exceptions raised inside an engine thread
        self._threads = [
            threading.Thread(
                target=self._worker, args=(engine,), name=f"nx842-engine{engine.index}", daemon=True
            )
            for engine in engines
        ]
        for t in self._threads:
            t.start()

    def clock_us(self) -> float:
        return (perf_counter_ns() - self._t0) / 1000.0

    def enter_blocking(self) -> None:
        """No overlap accounting on the realtime clock (its engine threads' pacing spins on
        the host, so host time there is not the host's own work)."""

    def leave_blocking(self) -> None:
        """See :meth:`enter_blocking`."""

    def await_requests(self, n: int) -> None:
        """See :meth:`enter_blocking`."""

    def requests_seen(self, ident: int, n: int = 1) -> None:
        """See :meth:`enter_blocking`."""

    @property
    def emulation_ns(self) -> int:
        """Host time the engine threads spent emulating (their pacing waits excluded)."""
        return sum(e.emulation_ns for e in self.engines)

    def inflight(self) -> int:
        return self._inflight

    def submit(self, crb: Crb) -> None:
        if self.closed:
            raise DeviceError("842-nx: the device was closed; create a new backend")
        crb.t_submit = (perf_counter_ns() - self._t0) / 1000.0
        with self._cv:
            self._pending.append(crb)
            self._inflight += 1
            self._cv.notify_all()

    def _worker(self, engine: Engine) -> None:
        cv = self._cv
        pending = self._pending
        t0 = self._t0
        k = engine.index
        timeout_ns = self._timeout_ns
        model_free_ns = 0  # when this engine's last request ends by the model
        while True:
            with cv:
                while not pending and not self._stop:
                    cv.wait()
                if not pending:
                    return
                crb = pending.popleft()
            start_ns = perf_counter_ns()
            crb.t_start = (start_ns - t0) / 1000.0
            try:
                us = engine.run(crb)
            except Exception as exc:  # noqa: BLE001 - an emulation bug must not kill the engine
                # Report it as the hardware would report an internal fault; keep the reason.
                self.engine_errors.append(f"engine {k}: {type(exc).__name__}: {exc}")
                crb.csb.cc = CC_INTERNAL
                us = crb.service_us = 0.0
            service_ns = int(us * 1000.0)
            target_ns = start_ns + service_ns
            # The deadline is decided on the model (module docstring): modelled start (its
            # submission, or this engine's previous request's modelled end) plus service.
            submit_ns = t0 + int(crb.t_submit * 1000.0)
            model_end_ns = max(submit_ns, model_free_ns) + service_ns
            model_free_ns = model_end_ns
            limit_ns = submit_ns + timeout_ns
            timed_out = model_end_ns > limit_ns
            post_ns = limit_ns if timed_out else target_ns
            self._pace(post_ns)
            end_ns = perf_counter_ns()
            if end_ns > post_ns + 1000:  # more than 1 µs behind the model
                self.late[k] += 1
                self.late_ns[k] += end_ns - post_ns
            crb.t_done = (end_ns - t0) / 1000.0
            with cv:
                if timed_out:
                    crb.hung = True
                if not crb.hung:
                    crb.csb.flags |= CSB_V
                crb.posted = True
                self._posted.append(crb)
                self._inflight -= 1
                cv.notify_all()
            if timed_out:  # the engine still works on it to the end (crb is the driver's now)
                self._pace(target_ns)

    def _pace(self, target_ns: int) -> None:
        """Sleep, then yield-spin, until ``target_ns`` (or until the queue is closed)."""
        while not self._stop:
            remaining = target_ns - perf_counter_ns()
            if remaining <= 0:
                return
            # Sleep while far away (in slices, so close() is not kept waiting by a long
            # request); close in with sleep(0), which still yields the GIL.
            time.sleep(min(remaining - 200_000, _PACE_SLICE_NS) / 1e9 if remaining > 400_000 else 0)

    def reap(self) -> list[Crb]:
        with self._cv:
            out = self._posted
            self._posted = []
        return out

    def _block(self, ready) -> None:  # noqa: ANN001 - a tiny predicate
        t0 = perf_counter_ns()
        with self._cv:
            if not self._cv.wait_for(ready, timeout=_REALTIME_GUARD_S):
                raise DeviceError(
                    f"842-nx: no completion from the emulated engines in {_REALTIME_GUARD_S:.0f} s; "
                    "the engine threads have stopped (was the backend closed?)"
                )
        self.excluded_ns += perf_counter_ns() - t0

    def wait_any(self) -> None:
        """Block until at least one request has completed (returns at once if none is queued)."""
        self._block(lambda: self._posted or not self._inflight)

    def wait(self, crb: Crb) -> None:
        self._block(lambda: crb.posted)

    def wait_any_for(self, max_s: float) -> None:
        """Block at most ``max_s`` for a completion (an async ``poll``'s bounded wait)."""
        t0 = perf_counter_ns()
        with self._cv:
            self._cv.wait_for(lambda: self._posted or not self._inflight, timeout=max_s)
        self.excluded_ns += perf_counter_ns() - t0

    def wait_any_until(self, deadline_us: float) -> bool:
        """Block until a completion is posted or the clock reaches ``deadline_us``."""
        t0 = perf_counter_ns()
        timeout = max(0.0, (deadline_us - self.clock_us()) / 1e6)
        with self._cv:
            got = self._cv.wait_for(lambda: self._posted, timeout=timeout)
        self.excluded_ns += perf_counter_ns() - t0
        return bool(got)

    def wait_reap(self) -> list[Crb]:
        self.wait_any()
        return self.reap()

    def run_sync(self, crb: Crb) -> list[Crb]:
        """Submit ``crb``, wait for it, and return every request posted by then."""
        self.submit(crb)
        self.wait(crb)
        return self.reap()

    def close(self) -> None:
        """Stop pacing, let the engines finish what is queued, then stop the threads.

        Requests still queued complete (unpaced) and stay reapable, so nothing is lost.
        """
        if self.closed:
            return
        self.closed = True
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=_REALTIME_GUARD_S)


DeviceQueue = VirtualQueue | RealtimeQueue
