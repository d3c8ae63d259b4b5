"""The bench's guard around its own calls into a driver: the raw pass and the warm-up.

The stack's calls go through the engine (:class:`hwzswap.frontswap.compressor.Compressor`),
which bounds them and turns a driver's bugs into :class:`~hwzswap.errors.DriverError`. The raw
pass (the codec alone, the baseline of ``store_vs_raw``) calls the driver directly, and must stay
as cheap as a direct call: no thread hand-off per call. So :class:`RawGuard` runs each piece of
raw work (one chunk of the stream, the warm-up's codec calls) on a worker thread of its own,
one hand-off per piece, while the calling thread waits and looks at the worker's stack now and
then (:func:`sys._current_frames`, a documented CPython API): when the same driver call (the
same frame object, right below the bench's own code) is still running after the device
deadline (``zswap.device_timeout_ms``, else the driver's ``Capabilities.timeout_ms``, else
10 s: the engine's rule), the piece is given up, the worker abandoned (a thread cannot be
stopped) and :class:`~hwzswap.errors.DeviceTimeoutError` raised naming the driver, the call
and where it is stuck: the bench's row fails instead of hanging. Nothing is added to a call:
the look costs the waiting thread, a few times per deadline.

A driver method with no Python frame (a C function set as ``compress``) shows no frame of its
own; it is then given up when the worker made no timed op for the deadline times ``slack``
(the most calls one op can make), never sooner than a legitimate op could take.

An exception from a driver that is not a :class:`~hwzswap.errors.HwzswapError` (a bug, or
``SystemExit`` from a sloppy library) becomes a DriverError naming the driver and the call it
came from ("driver 'x': decompress raised TypeError: ...").
"""

from __future__ import annotations

import os
import queue
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from hwzswap.errors import DeviceTimeoutError, DriverError, HwzswapError
from hwzswap.frontswap.compressor import serve_jobs

_STDLIB = tuple(os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))
_CONTRACT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "backends",
                                         "contract.py"))


def _where(frames: list[FrameType] | list[traceback.FrameSummary]) -> str:
    """``name() at file:line`` of the deepest frame that is the driver's own code: not the
    contract's default loops (``hwzswap/backends/contract.py``) nor the standard library."""
    def info(f: Any) -> tuple[str, str, int]:
        if isinstance(f, traceback.FrameSummary):
            return f.filename, f.name, f.lineno or 0
        return f.f_code.co_filename, f.f_code.co_name, f.f_lineno or 0

    rows = [info(f) for f in frames]
    own = [r for r in rows if os.path.abspath(r[0]) != _CONTRACT
           and not os.path.abspath(r[0]).startswith(_STDLIB)]
    file, name, line = (own or rows)[-1]
    return f"{name}() at {Path(file).name}:{line}"


class RawGuard:
    """Runs the bench's direct driver calls on a worker thread under the device deadline.

    ``home``: the source files of the bench's own code (the frames a driver call is made from);
    ``skip``: code objects between the bench and the driver that are not the driver (the
    ``max_batch`` splitter). ``configure`` sets the deadline for the next runs; ``run`` runs
    one piece of work; ``close`` ends the worker. After a timeout the guard refuses every
    later ``run`` while the call given up on is still inside the driver (no second thread
    enters a driver that serves one), with the same message. ``task``: what the guarded
    calls are, for the messages (the codec-alone pass by default; the runner's other guard
    holds its reads of the driver, :class:`hwzswap.bench.runner.DriverCalls`).
    """

    def __init__(self, backend_name: str, home: Iterable[str], skip: Iterable[Any] = (),
                 task: str = "the bench's codec-alone pass") -> None:
        self.name = backend_name
        self.task = task
        self._home = {os.path.abspath(h) for h in home}
        self._skip = set(skip)
        self.timeout_s = 10.0
        self.source = "the default; zswap.device_timeout_ms unset"
        self.slack = 1
        self._jobs: queue.SimpleQueue[list[Any] | None] | None = None
        self._thread: threading.Thread | None = None
        self._stuck: tuple[threading.Event, str] | None = None

    def configure(self, timeout_s: float, source: str, slack: int = 1) -> None:
        """The deadline of one driver call (seconds), where it comes from (for the message),
        and the most driver calls one timed op can make (for a driver call with no frame)."""
        self.timeout_s, self.source, self.slack = float(timeout_s), source, max(1, int(slack))

    def stuck(self) -> str | None:
        """The message of a call given up on that is still running in the driver, or None."""
        if self._stuck is not None and not self._stuck[0].is_set():
            return self._stuck[1]
        return None

    def run(self, fn: Callable[..., Any], *args: Any, progress: Callable[[], int] = lambda: 0
            ) -> Any:
        """``fn(*args)`` on the worker; its result, or what it raised (a driver's bug as a
        DriverError); DeviceTimeoutError when a driver call in it overran the deadline.
        ``progress()``: how many timed ops the work has done so far (for a driver call with
        no frame of its own)."""
        held = self.stuck()
        if held is not None:
            raise DeviceTimeoutError(f"{held}; not run again while that call is still in the "
                                     f"driver", given_up=True)
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=serve_jobs, args=(self._jobs,), daemon=True,
                                            name=f"hwzswap-bench-raw-{self.name}")
            self._thread.start()
        job: list[Any] = [fn, args, threading.Event(), None, None]
        self._jobs.put(job)
        done: threading.Event = job[2]
        period = min(max(self.timeout_s / 8.0, 0.002), 0.5)
        seen: Any = None  # what the worker was doing at the last look, and since when
        since = 0.0
        try:
            while not done.wait(period):
                key, limit = self._doing(progress)
                now = time.monotonic()
                if key is None or seen is None or key != seen:
                    seen, since = key, now
                    continue
                if now - since > limit:
                    self._give_up(done)
        except KeyboardInterrupt:  # Ctrl-C: let the piece end (bounded) before the driver closes
            done.wait(min(self.timeout_s, 2.0))
            raise
        if job[4] is not None:
            raise self._as_error(job[4])
        return job[3]

    def close(self) -> None:
        """End the worker once it is idle (a stuck one ends if its call ever returns)."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    # -- inside -------------------------------------------------------------------------------

    def _chain(self) -> list[FrameType]:
        """The worker's frames, innermost first (empty when it is not running)."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident or -1) if thread is not None else None
        chain = []
        while frame is not None:
            chain.append(frame)
            frame = frame.f_back
        return chain

    def _call_index(self, chain: list[FrameType]) -> int | None:
        """Index in ``chain`` of the driver call the bench made (the frame right below the
        innermost frame of the bench's own code, past ``skip``), or None (the worker is in
        the bench's code, or in a driver function with no Python frame)."""
        k = next((i for i, f in enumerate(chain)
                  if os.path.abspath(f.f_code.co_filename) in self._home), None)
        if k is None or k == 0:
            return None
        j = k - 1
        while j > 0 and chain[j].f_code in self._skip:
            j -= 1
        return None if chain[j].f_code in self._skip else j

    def _doing(self, progress: Callable[[], int]) -> tuple[Any, float]:
        """What the worker is doing now, as a key that stays equal while one driver call runs,
        and how long that may last."""
        chain = self._chain()
        if not chain:
            return None, self.timeout_s
        j = self._call_index(chain)
        if j is not None:
            return chain[j], self.timeout_s  # the frame object itself: one per call
        top = chain[0]
        return (top, top.f_lasti, progress()), self.timeout_s * self.slack

    def _give_up(self, done: threading.Event) -> None:
        chain = self._chain()
        j = self._call_index(chain)
        if j is not None:
            call = chain[j].f_code.co_name
            where = _where(list(reversed(chain[: j + 1])))
            what = f"{call} did not return within {self.timeout_s * 1000.0:g} ms"
        else:
            where = _where(list(reversed(chain))) if chain else "an unknown place"
            what = (f"a call made no progress for {self.timeout_s * self.slack * 1000.0:g} ms "
                    f"({self.slack} calls' deadlines)")
        msg = (f"driver {self.name!r}: {what} ({self.source}) in {self.task}, stuck in "
               f"{where}; given up (the thread is abandoned)")
        self._stuck = (done, msg)
        if self._jobs is not None:
            self._jobs.put(None)  # the worker ends if the stuck call ever returns
            self._jobs = None
        self._thread = None
        raise DeviceTimeoutError(msg, given_up=True)

    def _as_error(self, exc: BaseException) -> BaseException:
        """What the worker raised, for the caller: an HwzswapError as it is (a device error,
        or the bench's own check of a result), a KeyboardInterrupt as it is, anything else
        (a driver bug) a DriverError naming the driver and the call."""
        if isinstance(exc, (HwzswapError, KeyboardInterrupt)):
            return exc
        frames = [f for f, _ in traceback.walk_tb(exc.__traceback__)]  # outermost first
        inner = list(reversed(frames))
        j = self._call_index(inner)
        text = f"{type(exc).__name__}: {str(exc)[:300]}"
        if j is not None:
            call = inner[j].f_code.co_name
            where = _where(_tb_frames(exc.__traceback__)[len(frames) - 1 - j:])
            msg = f"driver {self.name!r}: {call} raised {text} (in {where})"
        else:
            where = _where(_tb_frames(exc.__traceback__)) if frames else "an unknown place"
            msg = (f"driver {self.name!r}: {self.task} failed on what a driver call gave it: "
                   f"{text} (at {where})")
        err = DriverError(msg)
        err.__cause__ = exc
        return err


def _tb_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    """The traceback's frames, outermost first, with the line each was at."""
    return list(traceback.extract_tb(tb))


__all__ = ["RawGuard"]
