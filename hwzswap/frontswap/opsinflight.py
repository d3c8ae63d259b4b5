"""Reclaim batches left in flight on an asynchronous device's own queue: ``async`` mode, no thread.

An asynchronous device (capability ``asynchronous``: ``submit``/``poll``, as DPDK compressdev's
enqueue and dequeue bursts, or the kernel's acomp requests) has a queue of its own, so ``async``
mode needs no engine thread to overlap it with the host. :class:`OpsInFlight` submits a reclaim
batch's ops from the storing thread and returns at once, as reclaim submits a swap-out bio and
moves on; the batch completes later, when a caller polls: one that waits for room (at most
``max_batches`` batches in flight, or more while they hold fewer than ``fill_pages`` pages:
backpressure), or ``drain``. Meanwhile the device works and the host does its own work, so the
device's time can overlap the host's. (:class:`~hwzswap.frontswap.pipeline.AsyncPipeline` is
``async`` mode's other design, for devices without a queue: an engine thread makes the batch
call.)

Ops the device refuses as BUSY (its queue is full) stay at the front of the backlog and are
submitted again at the next submit or poll; a full device queue is no error.

One device queue, several pollers. A load's (or writeback's) decompress op runs its own
submit/poll loop on the same device (:meth:`~hwzswap.frontswap.compressor.Compressor.run_ops`),
and its ``poll`` may hand back this queue's compress ops: it passes them here
(``Compressor.stray_ops``), where they are recorded. Their batches then complete at the next
submit or poll here, on a thread that holds none of zswap's locks (the load holds the tree
lock, which a completion takes).

Deadlines: a batch's ops must complete within ``timeout_s`` of its submission (the time its ops
waited as BUSY included, as in ``run_ops``). The ops still out then complete as DEVICE_ERROR
("timed out"), counted as timeouts toward ``zswap.device_fail_after``, and their late results
are dropped. An op given up on is replaced in its batch by a failed one, so the device's late
result never reaches a batch's results. A deadline is checked whenever this queue polls, so a batch nobody waits for
meanwhile is judged at the next wait.

Completions: each batch is completed once (its result per item: compressed, incompressible or
failed with the reason) by whichever thread finds it done, in no promised order, with no lock
held; ``drain`` returns once every batch submitted before it has completed. A completion that
raises is counted (``completion_errors``, ``last_error``) and the others go on.

Locking: ``_cv`` is a leaf lock. Under it only this module's lists and dicts change and a
completed op is checked (:meth:`~hwzswap.frontswap.compressor.Compressor.check_op`, which
takes no lock). The device is called through the compressor, under its submit/poll hold, with
``_cv`` released.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from hwzswap.backends.contract import (
    CompOp,
    CompressedBatch,
    OpKind,
    OpStatus,
    read_only_view,
)
from hwzswap.errors import HwzswapError
from hwzswap.frontswap.compressor import Compressor
from hwzswap.frontswap.pipeline import CompleteFn


_COMPRESS = OpKind.COMPRESS


class _Batch:
    """One reclaim batch in flight: its ops, one a page, and what is left of it. An op given
    up on (its deadline passed, its submit or poll raised) is replaced in ``ops`` by a failed
    one, so the device's late result lands in an op nobody reads."""

    __slots__ = ("token", "ops", "left", "deadline", "epoch", "answered", "late")

    def __init__(self, token: Any, ops: list[CompOp], deadline: float, epoch: int) -> None:
        self.token = token
        self.ops = ops
        self.left = len(ops)  # ops not completed yet (by the device, a failure or the deadline)
        self.deadline = deadline
        self.epoch = epoch  # the compressor's timeout count at submission
        self.answered = False  # the device completed one of its ops
        self.late = 0  # ops given up at the deadline


class OpsInFlight:
    """Reclaim batches submitted to ``comp``'s device without waiting, completed through
    ``complete(token, result)`` (zswap's completion step). Same surface as
    :class:`~hwzswap.frontswap.pipeline.AsyncPipeline`; thread-safe: any number of threads may
    submit, poll and drain."""

    def __init__(self, comp: Compressor, complete: CompleteFn, max_batches: int,
                 fill_pages: int = 0) -> None:
        self._comp = comp
        self._complete = complete
        self.max_batches = max_batches
        self.fill_pages = fill_pages
        self.timeout_s = comp.timeout_s
        self._cv = threading.Condition()  # a leaf: guards everything below
        self._batches: list[_Batch] = []  # submitted, completion not returned yet (oldest first)
        #: id(op) -> (the op, its batch, its item), while it is out
        self._owner: dict[int, tuple[CompOp, _Batch, int]] = {}
        self._backlog: deque[CompOp] = deque()  # ops to submit (new, or BUSY), in order
        #: ops one submit carries at most: the device's preferred batch (842-nx: its queue
        #: depth), so a full queue refuses one call's worth, not the whole backlog each time
        self._burst = max(1, comp.preferred_batch)
        #: ops the device has room for, as far as is known: None (unknown: submit bursts
        #: until it refuses some), 0 after it refused some, then the ops polls hand back
        #: (each frees its place), so a full queue is not offered ops again and again
        self._room: int | None = None
        self._ready: deque[_Batch] = deque()  # every op completed, completion not run yet
        self._pages = 0  # pages of the batches in flight
        self._closed = False
        #: batches submitted / submit calls made / batches that timed out (for stats)
        self.batches = 0
        self.device_calls = 0
        self.timed_out = 0
        self.peak_in_flight = 0
        #: completions that raised (the batch's pages stay staged), and the last such error
        self.completion_errors = 0
        self.last_error: str | None = None
        comp.stray_ops = self._route

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet completed."""
        return len(self._batches)

    def stuck(self) -> bool:
        """Never: no thread of this queue stays in the driver (a submit or poll that hangs is
        the compressor's submit/poll hold's to judge)."""
        return False

    def submit(self, token: Any, pages: np.ndarray) -> None:
        """Submit one batch's ops and return without waiting for them; first complete the
        batches found done, and wait (polling) while the queue is full. Once closed, the
        batch is compressed and completed here, as a synchronous engine would."""
        self._complete_ready()
        while self._full():
            self._progress()
        comp = self._comp
        if comp.failed:  # as run_ops refuses: the pages go to the swap device at once
            with self._cv:
                self.batches += 1
            self._complete_one(token, CompressedBatch.all_failed(
                len(pages), f"DeviceError: driver {comp.name!r}: the device was marked failed"))
            return
        # each op's source a read-only row: a device that writes to it gets an error, not
        # the staged page (as compress_ops gives its rows)
        ops = [CompOp(_COMPRESS, row) for row in read_only_view(pages)]
        batch = _Batch(token, ops, time.monotonic() + self.timeout_s, comp.timeout_epoch)
        with self._cv:
            closed = self._closed
            if not closed:
                for k, op in enumerate(ops):
                    self._owner[id(op)] = (op, batch, k)
                self._backlog.extend(ops)
                self._batches.append(batch)
                self._pages += len(ops)
                self.batches += 1
                self.peak_in_flight = max(self.peak_in_flight, len(self._batches))
        if closed:
            self._call_inline(token, pages)
            return
        self._send()

    def drain(self) -> None:
        """Wait until every submitted batch has completed (or timed out)."""
        while True:
            with self._cv:
                if not self._batches:
                    return
            self._progress()

    def close(self) -> None:
        """Refuse new batches (a later submit runs in its caller), then drain. Idempotent."""
        with self._cv:
            self._closed = True
        self.drain()
        if self._comp.stray_ops == self._route:
            self._comp.stray_ops = None

    # -- internals ------------------------------------------------------------------------

    def _full(self) -> bool:
        with self._cv:
            return (not self._closed and len(self._batches) >= self.max_batches
                    and self._pages >= self.fill_pages)

    def _send(self) -> None:
        """Submit the backlog, oldest first, a burst a call, while the device has room, until
        it refuses some (BUSY: they stay at the front). A submit that raises fails the ops it
        carried."""
        while True:
            with self._cv:
                backlog, owner = self._backlog, self._owner
                room = self._room
                most = self._burst if room is None else min(room, self._burst)
                todo: list[CompOp] = []
                while backlog and len(todo) < most:
                    op = backlog.popleft()
                    if id(op) in owner:  # (not given up on meanwhile)
                        todo.append(op)
            if not todo:
                return
            for op in todo:
                op.status = OpStatus.NOT_PROCESSED
            try:
                accepted = self._comp.submit_ops(todo)
            except HwzswapError as exc:
                self._settle(todo, f"{type(exc).__name__}: {exc}")
                return
            with self._cv:
                self.device_calls += 1
                if accepted < len(todo):
                    self._backlog.extendleft(reversed(todo[accepted:]))
                    self._room = 0
                    return
                if self._room is not None:
                    self._room = max(0, self._room - accepted)

    def _progress(self) -> None:
        """One step toward completing the batches in flight (for a caller waiting for room,
        or ``drain``): submit the backlog, poll once (the driver may wait a bounded time for a
        completion), give up on ops past their batch's deadline, complete what is done."""
        self._send()
        with self._cv:
            out = bool(self._owner)
            waiting_for_others = not out and not self._ready and bool(self._batches)
            if waiting_for_others:  # another thread is running the last completions
                self._cv.wait(0.05)
        if out:
            try:
                done = self._comp.poll_ops()
            except HwzswapError as exc:  # the ops still out fail with it
                with self._cv:
                    out_ops = [op for op, _, _ in self._owner.values()]
                self._settle(out_ops, f"{type(exc).__name__}: {exc}")
            else:
                if done:
                    self._route(done)
                else:  # nothing back: what it has room for is unknown again (look by a
                    with self._cv:  # burst: another caller's ops may have left it meanwhile)
                        self._room = None
                    time.sleep(0)  # let a device thread run
        self._expire()
        self._complete_ready()

    def _route(self, done: Sequence[CompOp]) -> None:
        """Completed ops a poll handed back (this queue's own, or another poller's strays):
        each result copied into its batch's op and checked; an op not out here (given up at
        its deadline, or another's) is dropped."""
        check = self._comp.check_op
        with self._cv:
            if self._room is not None:  # each op back is a place free on the device
                self._room += len(done)
            owner = self._owner
            for op in done:
                got = owner.get(id(op))
                if got is None or got[0] is not op:
                    continue
                del owner[id(op)]
                batch = got[1]
                check(op)
                batch.answered = True
                self._done_locked(batch, 1)

    def _settle(self, ops: list[CompOp], why: str) -> None:
        """Ops whose submit or poll raised: each still out fails with ``why``."""
        with self._cv:
            for op in ops:
                got = self._owner.get(id(op))
                if got is None or got[0] is not op:
                    continue
                del self._owner[id(op)]
                _, batch, k = got
                batch.ops[k] = _failed(op, why)
                self._done_locked(batch, 1)

    def _done_locked(self, batch: _Batch, n: int) -> None:
        batch.left -= n
        if not batch.left:
            self._ready.append(batch)
            self._cv.notify_all()

    def _expire(self) -> None:
        """Batches past their deadline: their ops still out time out (counted by the
        compressor, which marks the device failed after ``device_fail_after`` in a row)."""
        now = time.monotonic()
        late: list[tuple[_Batch, list[CompOp], list[CompOp]]] = []
        with self._cv:
            overdue = [b for b in self._batches if b.left and now > b.deadline]
            if not overdue:
                return
            queued = {id(op) for op in self._backlog}
            owner = self._owner
            for batch in overdue:
                ops, never = [], []
                for k, op in enumerate(batch.ops):
                    got = owner.get(id(op))
                    if got is not None and got[0] is op:
                        del owner[id(op)]
                        batch.ops[k] = mine = CompOp(op.kind, op.src)  # the device keeps op
                        ops.append(mine)
                        if id(op) in queued:
                            never.append(mine)
                if ops:
                    batch.late = len(ops)
                    late.append((batch, ops, never))
            self.timed_out += len(late)
        for batch, ops, never in late:  # outside _cv: the count takes the compressor's lock
            self._comp.ops_timed_out(ops, never)  # each DEVICE_ERROR, "timed out after ..."
        with self._cv:
            for batch, ops, _ in late:
                self._done_locked(batch, len(ops))

    def _complete_ready(self) -> None:
        """Run the completion step of every batch whose ops have all completed (no lock held:
        zswap's step takes its own)."""
        while True:
            with self._cv:
                if not self._ready:
                    return
                batch = self._ready.popleft()
            try:
                if batch.answered and not batch.late:
                    self._comp.answered(batch.epoch)
                result = self._comp.compressed_ops(batch.ops)
                self._complete_one(batch.token, result)
            finally:
                with self._cv:
                    self._batches.remove(batch)
                    self._pages -= len(batch.ops)
                    self._cv.notify_all()

    def _call_inline(self, token: Any, pages: np.ndarray) -> None:
        """One batch compressed and completed in the calling thread (the queue is closed)."""
        try:
            result = self._comp.compress_ops(pages)
        except HwzswapError as exc:  # a DriverError: the whole result is unusable
            result = CompressedBatch.all_failed(len(pages), f"{type(exc).__name__}: {exc}")
        with self._cv:
            self.batches += 1
            self.device_calls += 1
        self._complete_one(token, result)

    def _complete_one(self, token: Any, result: CompressedBatch) -> None:
        """``complete`` for one batch; one that raises (a bug in the caller's step) is counted
        and kept, and the others go on."""
        try:
            self._complete(token, result)
        except Exception as exc:  # noqa: BLE001 - see above
            with self._cv:
                self.completion_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"


def _failed(op: CompOp, why: str) -> CompOp:
    """A failed op in place of ``op``, which the device may still write to."""
    mine = CompOp(op.kind, op.src)
    mine.status, mine.error = OpStatus.DEVICE_ERROR, why
    return mine


__all__ = ["OpsInFlight"]
