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
submitted again at the next submit or poll; a full device queue is no error. A device marked
failed gets no more ops: the backlog's fail, as a new batch's do.

One device queue, several pollers. A load's (or writeback's) decompress op runs its own
submit/poll loop on the same device (:meth:`~hwzswap.frontswap.compressor.Compressor.run_ops`),
and its ``poll`` may hand back this queue's compress ops: it passes them here
(``Compressor.stray_ops``), where they are recorded. Their batches then complete at the next
submit or poll here, on a thread that holds none of zswap's locks (the load holds the tree
lock, which a completion takes).

Deadlines (``timeout_s``, the compressor's): an op the device accepted times out when a poll
begun past ``timeout_s`` from its acceptance hands back none of this queue's ops: the time the
host spends on its own work before it polls, and the time an op waits in the backlog, are not
held against the device, nor are the ops a device answering a few a poll has not reached yet.
An op the device never completes while it completes others times out once the device hands
back an op it accepted after that op's deadline (it has been overtaken by later work). A queue
that cannot move for ``timeout_s`` (its polls refused because another submit/poll loop holds
the device past its deadline, or a device that takes none of its ops while it holds none of
them) gives up on everything still out, the backlog's included
(:meth:`OpsInFlight._check_stall`). Ops given up on complete as DEVICE_ERROR and are replaced
in their batch by failed ones, so the device's late result never reaches a batch's results:
"timed out", counted as timeouts, or, behind polls refused or given up, with their reason,
not counted as timeouts (the stuck call holding the device counts). The give-ups of one stall
count one timeout toward ``zswap.device_fail_after``, at most one a deadline, and none for ops
all sent before the device was last marked failed (they do not fail its retry).

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
from hwzswap.frontswap.pipeline import CompleteFn, Completions


_COMPRESS = OpKind.COMPRESS
#: How long a caller waiting on the queue sleeps after a poll that was not made (the device
#: held by a submit/poll loop past its deadline): it looks again, rather than spinning.
_REFUSED_WAIT_S = 0.001


class _Batch:
    """One reclaim batch in flight: its ops, one a page, and what is left of it. An op given
    up on (timed out, its submit or poll failed) is replaced in ``ops`` by a failed one, so
    the device's late result lands in an op nobody reads."""

    __slots__ = ("token", "ops", "left", "epoch", "marks", "answered", "late")

    def __init__(self, token: Any, ops: list[CompOp], epoch: int, marks: int) -> None:
        self.token = token
        self.ops = ops
        self.left = len(ops)  # ops not completed yet (by the device, a failure or a deadline)
        self.epoch = epoch  # the compressor's timeout count at submission
        #: the times the device had been marked failed when the batch was submitted, or
        #: later when the device accepted one of its ops
        self.marks = marks
        self.answered = False  # the device completed one of its ops
        self.late = 0  # ops given up at a deadline


class OpsInFlight(Completions):
    """Reclaim batches submitted to ``comp``'s device without waiting, completed through
    ``complete(token, result)`` (zswap's completion step). Same surface as
    :class:`~hwzswap.frontswap.pipeline.AsyncPipeline`; thread-safe: any number of threads may
    submit, poll and drain."""

    def __init__(self, comp: Compressor, complete: CompleteFn, max_batches: int,
                 fill_pages: int = 0) -> None:
        self._cv = threading.Condition()  # a leaf: guards everything below
        super().__init__(complete, self._cv)
        self._comp = comp
        self.max_batches = max_batches
        self.fill_pages = fill_pages
        self.timeout_s = comp.timeout_s
        self._batches: list[_Batch] = []  # submitted, completion not returned yet (oldest first)
        #: id(op) -> (the op, its batch, its item), while it is out (backlog or device)
        self._owner: dict[int, tuple[CompOp, _Batch, int]] = {}
        self._backlog: deque[CompOp] = deque()  # ops to submit (new, or BUSY), in order
        #: id(op) -> its deadline (monotonic), for the ops the device accepted and has not
        #: handed back, in the order accepted: deadline order
        self._on_device: dict[int, float] = {}
        #: ops one submit carries at most: the device's preferred batch (842-nx: its queue
        #: depth), so a full queue refuses one call's worth, not the whole backlog each time
        self._burst = max(1, comp.preferred_batch)
        #: ops the device has room for, as far as is known: None (unknown: submit bursts
        #: until it refuses some; so again at each new batch), 0 after it refused some, then
        #: the ops polls hand back (each frees its place)
        self._room: int | None = None
        #: when a caller waiting on the queue last saw it move (an op accepted or handed
        #: back); None while it moves (see :meth:`_progress`)
        self._stalled_since: float | None = None
        #: when a give-up last counted toward device_fail_after (see :meth:`_time_out`)
        self._counted_at = float("-inf")
        #: the latest acceptance (monotonic) of an op of this queue the device has handed
        #: back: an op whose deadline had passed by then has been overtaken (see _route)
        self._overtaken_at = float("-inf")
        self._overtaken_checked = float("-inf")  # the last _overtaken_at looked at
        self._ready: deque[_Batch] = deque()  # every op completed, completion not run yet
        self._pages = 0  # pages of the batches in flight
        self._closed = False
        # (the counters: device_calls counts submit calls, timed_out batches with ops timed out)
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
        comp = self._comp
        if comp.failed:  # as run_ops refuses: the pages go to the swap device at once
            with self._cv:
                self.batches += 1
            self.run_completion(token, CompressedBatch.all_failed(
                len(pages), f"DeviceError: driver {comp.name!r}: the device was marked failed"))
            return
        # each op's source a read-only row: a device that writes to it gets an error, not
        # the staged page (as compress_ops gives its rows)
        ops = [CompOp(_COMPRESS, row) for row in read_only_view(pages)]
        if not ops:  # nothing to wait for
            self.run_completion(token, comp.compressed_ops(ops))
            return
        batch = _Batch(token, ops, comp.timeout_epoch, comp.failed_marks)
        while True:  # room checked and taken under one lock: max_batches holds for any threads
            with self._cv:
                closed = self._closed
                if closed:
                    break
                if len(self._batches) < self.max_batches or self._pages < self.fill_pages:
                    for k, op in enumerate(ops):
                        self._owner[id(op)] = (op, batch, k)
                    self._backlog.extend(ops)
                    self._batches.append(batch)
                    self._pages += len(ops)
                    self.batches += 1
                    self.peak_in_flight = max(self.peak_in_flight, len(self._batches))
                    self._room = None  # a new batch looks for room again (one burst at most)
                    break
            self._progress()
        if closed:
            self.complete_inline(self._comp.compress_ops, token, pages)
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

    def _send(self) -> int:
        """Submit the backlog, oldest first, a burst a call, while the device has room, until
        it refuses some (BUSY: they stay at the front); returns how many it accepted. A
        submit that fails fails the ops it carried (one not made, behind a loop holding the
        device past its deadline, leaves them in the backlog); a device marked failed gets
        none (they fail, as new batches do)."""
        sent = 0
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
                return sent
            comp = self._comp
            if comp.failed:
                with self._cv:
                    rest = todo + list(self._backlog)
                self._settle(rest, f"DeviceError: driver {comp.name!r}: the device was "
                                   f"marked failed")
                return sent
            for op in todo:
                op.status = OpStatus.NOT_PROCESSED
            try:
                accepted = comp.submit_ops(todo)
            except HwzswapError as exc:
                if getattr(exc, "given_up", False):  # not made (the device held past its
                    with self._cv:  # deadline): they wait in the backlog; the deadlines decide
                        self._backlog.extendleft(reversed(todo))
                    return sent
                self._settle(todo, f"{type(exc).__name__}: {exc}")
                return sent
            marks = comp.failed_marks
            with self._cv:
                # taken under the lock, so _on_device holds its deadlines in order
                deadline = time.monotonic() + self.timeout_s
                self.device_calls += 1
                for op in todo[:accepted]:
                    got = self._owner.get(id(op))
                    if got is not None:
                        self._on_device[id(op)] = deadline
                        batch = got[1]
                        if batch.marks < marks:  # sent to the device as it is now
                            batch.marks = marks
                sent += accepted
                if accepted:
                    self._stalled_since = None
                if accepted < len(todo):
                    self._backlog.extendleft(reversed(todo[accepted:]))
                    self._room = 0
                    return sent
                if self._room is not None:
                    self._room = max(0, self._room - accepted)

    def _progress(self) -> None:
        """One step toward completing the batches in flight (for a caller waiting for room,
        or ``drain``): submit the backlog, poll once (the driver may wait a bounded time for a
        completion), give up on what is past its deadline, complete what is done.

        Deadlines. An op the device accepted times out when a poll begun after its deadline
        (``timeout_s`` from its acceptance) hands back none of this queue's ops: time the
        host spent on its own work before it looked is not held against the device, nor the
        time an op waited in the backlog, and a device handing back its completions a few a
        poll is not timed out for the ones the next polls bring. It also times out once the
        device hands back an op it accepted after that deadline: overtaken by later work
        (:meth:`_route` notes the acceptance). And a queue that cannot move for ``timeout_s``
        (its polls refused, or a device that takes none of its ops while it has none of
        them) gives up on every op still out (:meth:`_check_stall`)."""
        sent = self._send()
        with self._cv:
            out = bool(self._owner)
            if not out and not self._ready and self._batches:
                self._cv.wait(0.05)  # another thread is running the last completions
        moved = sent > 0
        refused: str | None = None
        if out:
            polled_at = time.monotonic()
            try:
                done = self._comp.poll_ops()
            except HwzswapError as exc:
                if getattr(exc, "given_up", False):  # not made, or given up: no answer yet
                    refused = str(exc)
                    time.sleep(_REFUSED_WAIT_S)
                else:  # the poll failed: the ops on the device fail with it
                    with self._cv:
                        ondev = [self._owner[i][0] for i in self._on_device if i in self._owner]
                    self._settle(ondev, f"{type(exc).__name__}: {exc}")
                    moved = True
            else:
                mine = self._route(done) if done else 0
                if not done:  # nothing back: what it has room for is unknown again (look by
                    with self._cv:  # a burst: another caller's ops may have left it meanwhile)
                        self._room = None
                    time.sleep(0)  # let a device thread run
                if mine:
                    moved = True
                else:  # none of this queue's back, from a poll begun past their deadline
                    self._expire_on_device(polled_at)
            # ops overtaken by later ones (handed back by this poll or a load's loop): each
            # new cut looked at once, since an op accepted after it has a later deadline
            cut = self._overtaken_at
            if cut > self._overtaken_checked:
                self._overtaken_checked = cut
                self._expire_on_device(cut)
            self._check_stall(moved, refused)
        self._complete_ready()

    def _route(self, done: Sequence[CompOp]) -> int:
        """Completed ops a poll handed back (this queue's own, or another poller's strays):
        each checked and counted to its batch; an op not out here (given up at its deadline,
        or another's) is dropped. Returns how many were this queue's."""
        check = self._comp.check_op
        mine = 0
        newest = float("-inf")  # the latest deadline of this queue's ops handed back
        with self._cv:
            if self._room is not None:  # each op back is a place free on the device
                self._room += len(done)
            on_device = self._on_device
            for op in done:
                due = on_device.get(id(op), newest)
                got = self._take_locked(op)
                if got is None:
                    continue
                if due > newest:
                    newest = due
                batch = got[0]
                check(op)
                batch.answered = True
                mine += 1
                self._done_locked(batch, 1)
            if mine:
                self._stalled_since = None
                # accepted timeout_s before its deadline: an op past its deadline by then has
                # been overtaken by work the device took later (:meth:`_progress` gives it up)
                self._overtaken_at = max(self._overtaken_at, newest - self.timeout_s)
        return mine

    def _take_locked(self, op: CompOp) -> tuple[_Batch, int] | None:
        """``op`` is no longer out (handed back or given up on): its batch and item, or None
        when it was not this queue's op out (given up on already, or another's)."""
        got = self._owner.get(id(op))
        if got is None or got[0] is not op:
            return None
        del self._owner[id(op)]
        self._on_device.pop(id(op), None)
        return got[1], got[2]

    def _settle(self, ops: list[CompOp], why: str) -> None:
        """Ops whose submit or poll failed, or that go to a device marked failed: each still
        out fails with ``why``."""
        with self._cv:
            for op in ops:
                got = self._take_locked(op)
                if got is not None:
                    batch, k = got
                    batch.ops[k] = _failed(op, why)
                    self._done_locked(batch, 1)
            self._drop_given_up_locked()

    def _done_locked(self, batch: _Batch, n: int) -> None:
        batch.left -= n
        if not batch.left:
            self._ready.append(batch)
            self._cv.notify_all()

    def _drop_given_up_locked(self) -> None:
        """Ops given up on leave the backlog (their sources hold the batch's pages)."""
        owner = self._owner
        if any(id(op) not in owner for op in self._backlog):
            self._backlog = deque(op for op in self._backlog if id(op) in owner)

    def _expire_on_device(self, cutoff: float) -> None:
        """The ops on the device whose deadline came before ``cutoff`` time out: the start of
        a poll that returned none of this queue's ops, or the acceptance of one it handed
        back (an op overtaken by work the device took after its deadline)."""
        with self._cv:
            late = []
            for i, t in self._on_device.items():  # oldest deadline first (see _send)
                if t >= cutoff:
                    break
                late.append(i)
            ops = [self._owner[i][0] for i in late if i in self._owner]
        if ops:
            self._time_out(ops, set())

    def _check_stall(self, moved: bool, refused: str | None) -> None:
        """A waiting caller's view of a queue that cannot move: its poll refused (the device
        held past its deadline by another submit/poll loop), or none of its ops on the
        device and the device taking none (full of ops that never end, or another's).
        Once that has lasted ``timeout_s`` (no op accepted or handed back meanwhile, by any
        caller), every op still out times out, the backlog's included. A device busy with
        this queue's ops is judged by their own deadlines instead. Ops given up behind refused
        polls (``refused``: the last refusal) were never the device's to answer: they fail
        with the refusal, not as timeouts (the stuck call holding the device is the one that
        counts)."""
        now = time.monotonic()
        with self._cv:
            if moved or not self._owner or not (refused is not None or not self._on_device):
                self._stalled_since = None
                return
            if self._stalled_since is None:
                self._stalled_since = now
                return
            if now - self._stalled_since <= self.timeout_s:
                return
            self._stalled_since = None
            ops = [op for op, _, _ in self._owner.values()]
            queued = {id(op) for op in self._backlog}
        self._time_out(ops, queued, refused)

    def _time_out(self, ops: list[CompOp], queued: set[int], refused: str | None = None
                  ) -> None:
        """Give up on ``ops`` at their deadline: each replaced in its batch by one that timed
        out. Give-ups count toward ``device_fail_after`` (the compressor marks the device
        failed after that many in a row) at most one a deadline, whatever the batches they
        span, as a worker's merged call that times out counts one: one stall must not fail
        a device once for each batch in flight, and a dead device still gets one a deadline;
        nor does a give-up of ops all submitted before the device was last marked failed
        count against the device retried since. ``queued``: the ids of those never accepted.
        ``refused``: they are given up because the queue's polls were refused (the device
        held past its deadline by another loop): they fail with that reason, not counted as
        timeouts."""
        late: dict[int, tuple[_Batch, int]] = {}  # id(batch) -> (batch, its ops given up)
        mine_ops: list[CompOp] = []
        never: list[CompOp] = []
        with self._cv:
            for op in ops:
                got = self._take_locked(op)
                if got is None:
                    continue
                batch, k = got
                batch.ops[k] = mine = CompOp(op.kind, op.src)  # the device keeps op
                n = late.get(id(batch), (batch, 0))[1]
                late[id(batch)] = (batch, n + 1)
                mine_ops.append(mine)
                if id(op) in queued:
                    never.append(mine)
            self._drop_given_up_locked()
            for batch, n in late.values():
                if refused is None:
                    self.timed_out += not batch.late  # batches with ops timed out, each once
                batch.late += n
            now = time.monotonic()
            streak = refused is None and now - self._counted_at >= self.timeout_s
            if streak and mine_ops:
                self._counted_at = now
            marks = max((batch.marks for batch, _ in late.values()), default=None)
        try:  # outside _cv: the count takes the compressor's lock
            if mine_ops:  # each DEVICE_ERROR, "timed out after ..." or the refusal
                self._comp.ops_timed_out(mine_ops, never, count=refused is None,
                                         why=refused, streak=streak, marks=marks)
        finally:  # whatever the count raised, the batches complete
            with self._cv:
                for batch, n in late.values():
                    self._done_locked(batch, n)

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
                self.run_completion(batch.token, result)
            finally:
                with self._cv:
                    self._batches.remove(batch)
                    self._pages -= len(batch.ops)
                    self._cv.notify_all()


def _failed(op: CompOp, why: str) -> CompOp:
    """A failed op in place of ``op``, which the device may still write to."""
    mine = CompOp(op.kind, op.src)
    mine.status, mine.error = OpStatus.DEVICE_ERROR, why
    return mine


__all__ = ["OpsInFlight"]
