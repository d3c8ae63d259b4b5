"""Reclaim batches in flight to the compressor: zswap's ``async`` engine mode, ``worker`` design.

The kernel does not wait for a page's swap writeback before reclaim moves on: the bio is in
flight, the page stays in the swap cache, and completion is handled later. ``async`` mode gives a
compression device the same freedom: ``store_batch`` stages a reclaim batch and hands it here;
:class:`AsyncPipeline` compresses it on a worker thread while the caller goes on, with at most
``max_batches`` batches in flight (a caller that finds the pipeline full waits: backpressure),
or more while the pages in flight are fewer than ``fill_pages`` (zswap passes the device's
preferred batch, capped at its ``max_batch`` and the pool limit: a device that wants thousands
of pages a call gets them, where four reclaim passes would not).

The worker takes every batch queued when it wakes and compresses them in **one** device call
(their pages concatenated), so a device that wants large batches gets them exactly when the
host produces work faster than one batch at a time. Each batch's result then goes to
``complete(token, result)`` (the zswap cache's completion step).

Order of completions: each batch is completed once (with its result, as failed, or as timed
out; a given-up call's late result is dropped), and ``drain`` returns only once the
completions of the batches submitted before it have returned. The workers complete the
batches they compressed on their own thread, one at a time, in submission order (a worker
replaced at a deadline completes nothing more). Nothing else is promised:

* a device call given up at its deadline has its batches completed as failed by whichever
  thread noticed the deadline (a ``submit`` waiting for room, ``drain`` or ``close``), while
  the new worker goes on with the queue: a later batch may complete before, or at the same
  time as, an earlier batch that timed out (and two calls timed out in a row may have their
  batches completed by two threads at once);
* a batch submitted once the pipeline is closed, or when no worker thread can be started, is
  compressed and completed in its caller, whatever is still in flight;
* a completion that raises is counted and the others go on, but one that ends its thread
  (``SystemExit``) leaves the later batches of the same device call uncompleted.

So ``complete`` must be safe to call from several threads at once and must not assume an
earlier batch has completed (zswap's ``_complete_async`` is: it lands a page under the
cache's lock, and only while that page is still its slot's staged page).

Merged calls: merging is the engine's choice, not the device's, so it must not cost the device
its deadline. ``timeout_s`` is the deadline of one device call, as in the synchronous modes. A
call that merges ``k`` queued batches gets ``k`` deadlines: ``k x timeout_s`` (each batch its
own deadline, as it would have had alone); a batch larger than ``max_coalesce`` (the device's
``max_batch``), which the compressor splits into ``c`` device calls, gets ``c`` (one per
device call, as in ``reclaim`` mode): the worker's whole pass has ``max(k, c)`` deadlines. The
compressor's own deadline for each device call (a watched driver's, a submit/poll loop's, the
wait for a driver that takes one call at a time) is scaled by ``k``: it reads
:func:`merged_batches` on the worker thread. So a device that meets its deadline for each of
its calls is never timed out (nor marked failed) because the engine merged batches.

Deadlines: a device call still running its deadlines after it started is given up: its
batches complete as failed ("timed out"), ``on_timeout()`` is told (so the compressor can count
it and mark the device failed after repeated timeouts), and a new worker takes over the queue.
The stuck call's late result, if it ever comes, is discarded, and nothing is lost: the caller's
completion step puts failed pages on the swap device. So ``submit`` and ``drain`` wait for a
hung device call no longer than its deadlines, but they also wait for the completions, which
run the caller's step: zswap's takes the cache's tree lock, so they wait as long as whatever
holds that lock (a load waits for the device under it, for as long as the call holding the
device is within its own deadline, and is refused once that call is past it: the compressor's
:class:`~hwzswap.frontswap.devicehold.DeviceHold`). The worker given up on stays in the
driver until the call returns; at most one per call given up, and the compressor marks the
device failed after ``device_fail_after`` timeouts in a row, after which no call is made (and,
with a retry, none while one given up on is still stuck: :meth:`AsyncPipeline.stuck`): so a
device that hangs for good holds at most ``device_fail_after`` threads.

This module knows nothing of zswap's indexes: it moves opaque tokens and page arrays. An
asynchronous device with a queue of its own gets async mode's other design instead
(:mod:`~hwzswap.frontswap.opsinflight`: no thread, its ops submitted by the storing thread).
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from hwzswap.backends.contract import CompressedBatch

#: compress(pages) -> one per-item CompressedBatch (must not raise for device errors)
CompressFn = Callable[[np.ndarray], CompressedBatch]
#: complete(token, result): the cache's completion step; called from several threads, not
#: always in submission order (see the module's "Order of completions")
CompleteFn = Callable[[Any, CompressedBatch], None]


class _Job:
    __slots__ = ("token", "pages", "done", "started")

    def __init__(self, token: Any, pages: np.ndarray) -> None:
        self.token = token
        self.pages = pages
        self.done = False
        self.started: float | None = None  # monotonic time the device call began


class _Merge(threading.local):
    """``k``: batches in the device call this thread is making (the class's 1 until a pipeline
    worker sets it; a plain attribute read, where ``getattr`` with a default on a bare
    ``threading.local`` cost 0.3 µs: the compressor reads it on every serialised call)."""

    k = 1


_MERGE = _Merge()


def merged_batches() -> int:
    """How many of the caller's batches the device call this thread is making merges (1
    outside a pipeline's merged call): the call's deadline is that many times the per-call
    deadline (see "Merged calls" above)."""
    return _MERGE.k


#: Pipelines not yet closed, for :func:`_close_all_at_exit`.
_OPEN: weakref.WeakSet[AsyncPipeline] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    """At interpreter exit, finish the batches in flight and stop the workers of pipelines
    nobody closed. A daemon worker left inside a device runtime while the interpreter tears
    it down aborts the whole process (PoCL: "terminate called without an active exception",
    exit status 134) instead of the program's own exit. (Re)registered by every new pipeline,
    after its backend and so after the device runtime's own exit hooks; exit hooks run
    last-registered first, so this one runs before them."""
    for pipe in list(_OPEN):
        try:
            pipe.close()
        except Exception:  # noqa: BLE001 - exiting anyway; one pipeline must not stop the rest
            pass


class Completions:
    """What both of async mode's designs keep for zswap's stats, and their one way of running a
    batch's completion step (this class's pipeline and
    :class:`~hwzswap.frontswap.opsinflight.OpsInFlight`)."""

    def __init__(self, complete: CompleteFn, counts: threading.Condition) -> None:
        self._complete = complete
        self._counts = counts  # the design's own lock (a leaf): the counts below
        #: batches submitted / device calls made / batches that timed out (for stats)
        self.batches = 0
        self.device_calls = 0
        self.timed_out = 0
        self.peak_in_flight = 0
        #: completions that raised (the batch's pages stay staged), and the last such error
        self.completion_errors = 0
        self.last_error: str | None = None

    def run_completion(self, token: Any, result: CompressedBatch) -> None:
        """``complete`` for one batch. A completion that raises is a bug in the caller's step,
        not the device's; it is counted and kept (``completion_errors``, ``last_error``), and
        the others go on: a worker that died here left every later batch uncompleted and
        ``drain`` (and the exit hook) waiting for ever."""
        try:
            self._complete(token, result)
        except Exception as exc:  # noqa: BLE001 - see above
            with self._counts:
                self.completion_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    def complete_inline(self, compress: CompressFn, token: Any, pages: np.ndarray) -> None:
        """One batch compressed (``compress``) and completed in the calling thread: once the
        design is closed, or has no thread to hand it to. Never lost: a call that raises
        fails its batch."""
        try:
            result = compress(pages)
        except Exception as exc:  # noqa: BLE001 - a failed call fails its batch
            result = CompressedBatch.all_failed(len(pages), f"{type(exc).__name__}: {exc}")
        with self._counts:
            self.batches += 1
            self.device_calls += 1
        self.run_completion(token, result)


class AsyncPipeline(Completions):
    """Up to ``max_batches`` batches in flight to ``compress``, completed through ``complete``.

    ``max_coalesce``: the most pages one device call takes (a device's ``max_batch``; None: no
    limit). ``deadline``: what ``timeout_s`` comes from, named in a timed-out batch's reason.
    ``fill_pages``: a submit waits only once ``max_batches`` are in flight *and* they hold at
    least this many pages (0: the batch count alone decides). Thread-safe: any number
    of threads may submit.
    """

    def __init__(self, compress: CompressFn, complete: CompleteFn, max_batches: int,
                 timeout_s: float, on_timeout: Callable[[int], None] | None = None,
                 max_coalesce: int | None = None, name: str = "zswap-async",
                 fill_pages: int = 0, deadline: str = "zswap.device_timeout_ms") -> None:
        self._cv = threading.Condition()
        super().__init__(complete, self._cv)
        self._compress = compress
        self.max_batches = max_batches
        self.fill_pages = fill_pages
        self._pages = 0  # pages of the batches in flight
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self.max_coalesce = max_coalesce
        self._name = name
        self._deadline = deadline  # what sets timeout_s, for the timed-out batches' reason
        self._jobs: deque[_Job] = deque()  # submitted, not completed (oldest first)
        self._queue: deque[_Job] = deque()  # submitted, not yet taken by the worker
        self._running: list[_Job] = []  # the worker's current device call
        self._deadlines = 1  # deadlines the current call has (see "Merged calls")
        self._worker: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []  # workers given up on in a device call
        self._generation = 0
        self._closed = False
        # Registered again by each new pipeline, so it stays the last registered: exit hooks
        # run last-registered first, and a device runtime imported since (its own hooks) must
        # still be there while this drains.
        atexit.unregister(_close_all_at_exit)
        atexit.register(_close_all_at_exit)
        _OPEN.add(self)

    def stuck(self) -> bool:
        """Whether a device call given up at its deadline is still running (its worker has
        not come back from the driver)."""
        with self._cv:
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            return bool(self._abandoned)

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet completed."""
        return len(self._jobs)

    def submit(self, token: Any, pages: np.ndarray) -> None:
        """Queue one batch; wait first while the pipeline is full (backpressure): ``max_batches``
        in flight holding at least ``fill_pages`` pages. Once the pipeline is closed (by its
        owner, or by the exit hook under an owner still storing), or when no worker thread can
        be started, the batch is compressed and completed here, in the caller, as a synchronous
        engine would: never lost."""
        with self._cv:
            while not self._closed and (len(self._jobs) >= self.max_batches
                                        and self._pages >= self.fill_pages):
                self._wait_locked()
            if not self._closed and self._has_worker_locked():
                job = _Job(token, pages)
                self._jobs.append(job)
                self._pages += len(pages)
                self._queue.append(job)
                self.batches += 1
                self.peak_in_flight = max(self.peak_in_flight, len(self._jobs))
                self._cv.notify_all()
                return
        self.complete_inline(self._compress, token, pages)

    def _has_worker_locked(self) -> bool:
        """A worker is there to take a batch, started now if need be. No thread to be had
        (a process at its thread limit): False, and the caller compresses the batch itself
        (queued with no worker, it would never complete and drain would wait for ever)."""
        if self._worker is None:
            try:
                self._start_worker_locked()
            except RuntimeError:  # "can't start new thread"
                self._worker = None
                return False
        return True

    def drain(self) -> None:
        """Wait until every submitted batch has completed (or timed out)."""
        with self._cv:
            while self._jobs:
                self._wait_locked()

    def close(self) -> None:
        """Refuse new batches (a later submit runs in its caller), drain, then stop the worker.
        Idempotent."""
        with self._cv:
            self._closed = True  # first: a batch submitted from now on is not queued
            while self._jobs:
                self._wait_locked()
            self._generation += 1
            self._cv.notify_all()
            worker, self._worker = self._worker, None
        _OPEN.discard(self)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=self.timeout_s)

    # -- internals ------------------------------------------------------------------------

    def _wait_locked(self) -> None:
        """Wait for progress; give up on a device call past its deadline."""
        started = self._running[0].started if self._running else None
        if started is None:
            self._cv.wait(self.timeout_s)
            return
        left = started + self.timeout_s * self._deadlines - time.monotonic()
        if left > 0:
            self._cv.wait(left)
            return
        self._expire_locked()

    def _expire_locked(self) -> None:
        """The worker's device call is overdue: fail its batches, hand the queue to a new
        worker, and complete the failed batches (outside the lock)."""
        late = [j for j in self._running if not j.done]
        merged, deadlines = len(self._running), self._deadlines
        pages = sum(len(j.pages) for j in self._running)
        self._running = []
        for job in late:
            job.done = True  # still in _jobs until completed: drain() waits for that
        self.timed_out += len(late)
        self._generation += 1
        if self._worker is not None:
            self._abandoned.append(self._worker)
        self._worker = None
        if self._queue:
            self._start_worker_locked()
        ms = self.timeout_s * 1000.0
        if deadlines == 1:
            why = f"timed out after {ms:g} ms ({self._deadline})"
        elif deadlines == merged:
            why = (f"timed out after {merged} x {ms:g} ms (a call of {merged} merged batches, "
                   f"one deadline each: {self._deadline})")
        else:
            why = (f"timed out after {deadlines} x {ms:g} ms ({pages} pages in {deadlines} "
                   f"device calls of at most {self.max_coalesce}, one deadline each: "
                   f"{self._deadline})")
        # _cv is released before on_timeout: the compressor's failed-device state (its
        # _state lock) is taken there, and Compressor.failed takes _state then this _cv
        # (through stuck()); holding _cv here would take them the other way round.
        self._cv.release()
        try:
            if self._on_timeout is not None:
                self._on_timeout(len(late))
            for job in late:
                self.run_completion(job.token, CompressedBatch.all_failed(len(job.pages), why))
        finally:
            self._cv.acquire()
            for job in late:
                self._jobs.remove(job)
                self._pages -= len(job.pages)
        self._cv.notify_all()

    def _start_worker_locked(self) -> None:
        gen = self._generation
        self._worker = threading.Thread(target=self._run, args=(gen,), name=self._name,
                                        daemon=True)
        self._worker.start()

    def _take_locked(self) -> list[_Job]:
        """The queued batches one device call takes (at least one; up to max_coalesce pages)."""
        jobs = [self._queue.popleft()]
        pages = len(jobs[0].pages)
        cap = self.max_coalesce
        while self._queue and (cap is None or pages + len(self._queue[0].pages) <= cap):
            job = self._queue.popleft()
            jobs.append(job)
            pages += len(job.pages)
        return jobs

    def _deadlines_of(self, jobs: list[_Job]) -> int:
        """The deadlines a device call of ``jobs`` gets: one per merged batch, and at least
        one per device call the compressor makes of it (a batch larger than ``max_coalesce``,
        the device's ``max_batch``, is split into calls of at most that many pages, as it is
        in the synchronous modes, where each call has its own deadline)."""
        cap = self.max_coalesce
        if cap is None or cap <= 0:
            return len(jobs)
        pages = sum(len(j.pages) for j in jobs)
        return max(len(jobs), -(-pages // cap))

    def _run(self, gen: int) -> None:
        """The worker thread. Should it end other than by being replaced or closed (something
        no guard catches, e.g. SystemExit from a completion), a new worker takes the queue: a
        queue left without one would never drain."""
        try:
            self._work(gen)
        finally:
            with self._cv:
                if self._worker is threading.current_thread() and not self._closed:
                    self._worker = None
                    if self._queue:
                        self._start_worker_locked()
                self._cv.notify_all()

    def _work(self, gen: int) -> None:
        cv = self._cv
        while True:
            with cv:
                while not self._queue and gen == self._generation:
                    cv.wait()
                if gen != self._generation:
                    return
                jobs = self._take_locked()
                now = time.monotonic()
                for job in jobs:
                    job.started = now
                self._running = jobs
                self._deadlines = self._deadlines_of(jobs)
            sizes = [len(j.pages) for j in jobs]
            pages = jobs[0].pages if len(jobs) == 1 else np.concatenate([j.pages for j in jobs])
            _MERGE.k = len(jobs)  # the call's deadline: one per merged batch
            try:  # a result that does not split (a wrong item count) fails the call too
                parts = self._compress(pages).split(sizes)
            except BaseException as exc:  # noqa: BLE001 - a failed call fails its batches
                why = f"{type(exc).__name__}: {exc}"
                parts = CompressedBatch.all_failed(len(pages), why).split(sizes)
            finally:
                _MERGE.k = 1
            with cv:
                if gen != self._generation:
                    return  # this call was given up on; its batches completed as failed
                self.device_calls += 1
                self._running = []
                mine = [(j, r) for j, r in zip(jobs, parts) if not j.done]
                for job, _ in mine:
                    job.done = True
            try:
                for job, res in mine:
                    self.run_completion(job.token, res)
            finally:
                with cv:
                    for job, _ in mine:
                        self._jobs.remove(job)
                        self._pages -= len(job.pages)
                    cv.notify_all()


__all__ = ["AsyncPipeline", "Completions", "merged_batches"]
