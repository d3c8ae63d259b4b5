"""The 842-nx driver's entry lock serves calls in arrival order (the hardware's request FIFO).

The lock on its own: hand-over to the oldest waiter, no barging, timeouts that leave the queue,
a timeout that lands exactly at a hand-over, ownership; then the driver: two threads calling
``compress_batch`` on one backend take turns instead of one starving the other.

No test here asserts a duration. Threads are ordered by watching the lock's queue (``waiting``);
the only clocks are hang guards, far above anything the tests need.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.backends.nx842.fifo import FifoLock, _Waiter
from hwzswap.backends.sw842.backend import Sw842Backend
from hwzswap.testing import real_memory_mix

_HANG_GUARD_S = 60.0  # only ever reached if something is broken


def until(cond: Callable[[], bool], what: str) -> None:
    """Wait for ``cond`` (a state another thread reaches); fail, rather than hang, if it never
    comes."""
    deadline = time.monotonic() + _HANG_GUARD_S
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.0005)


def start(target: Callable[[], Any]) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def joined(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(_HANG_GUARD_S)
        assert not t.is_alive(), "a thread never finished"


# -- the lock ------------------------------------------------------------------------------------


def test_a_holder_that_releases_and_retakes_at_once_goes_behind_the_waiter() -> None:
    lock = FifoLock()
    order: list[str] = []
    assert lock.acquire()

    def waiter() -> None:
        assert lock.acquire(timeout=_HANG_GUARD_S)
        order.append("waiter")
        lock.release()

    t = start(waiter)
    until(lambda: lock.waiting == 1, "the waiter queues")
    lock.release()
    # handed over: the releaser cannot take it back, even before the waiter has woken
    assert lock.locked()
    assert not lock.acquire(False)
    assert lock.acquire(timeout=_HANG_GUARD_S)
    order.append("holder")
    lock.release()
    joined(t)
    assert order == ["waiter", "holder"]
    assert not lock.locked() and lock.waiting == 0


def test_waiters_are_served_in_the_order_they_queued() -> None:
    lock = FifoLock()
    order: list[int] = []
    lock.acquire()

    def waiter(k: int) -> Callable[[], None]:
        def run() -> None:
            with lock:
                order.append(k)
        return run

    threads = []
    for k in range(6):
        threads.append(start(waiter(k)))
        until(lambda k=k: lock.waiting == k + 1, f"waiter {k} queues")
    assert not lock.acquire(False)  # waiters queue: no barging by a newcomer either
    lock.release()
    joined(*threads)
    assert order == list(range(6))
    assert not lock.locked()


def test_acquire_without_blocking_fails_while_threads_queue() -> None:
    lock = FifoLock()
    lock.acquire()
    t = start(lambda: (lock.acquire(), lock.release()))
    until(lambda: lock.waiting == 1, "the waiter queues")
    seen: list[bool] = []
    other = start(lambda: seen.append(lock.acquire(False)))
    joined(other)
    assert seen == [False]
    lock.release()
    joined(t)
    assert lock.acquire(False)  # free again once nobody waits
    lock.release()


def test_a_waiter_that_times_out_leaves_the_queue_and_the_lock_still_works() -> None:
    lock = FifoLock()
    order: list[str] = []
    got: list[bool] = []
    lock.acquire()

    def patient() -> None:
        with lock:
            order.append("patient")

    first = start(patient)
    until(lambda: lock.waiting == 1, "the patient waiter queues")
    impatient = start(lambda: got.append(lock.acquire(timeout=0.02)))
    joined(impatient)  # the holder still holds: it must have given up
    assert got == [False]
    assert lock.waiting == 1  # it took itself off the queue; the first one is still there
    lock.release()
    joined(first)
    assert order == ["patient"]
    assert not lock.locked() and lock.waiting == 0
    assert lock.acquire(timeout=0)
    lock.release()


def test_a_wait_that_times_out_just_as_the_lock_is_handed_over_keeps_it() -> None:
    """The timeout and the hand-over race: the waiter's sleep ends (timed out) after release()
    has already made it the owner. It must own the lock, else nobody would ever release it."""
    parked = threading.Event()
    handed = threading.Event()

    class EdgeLock(FifoLock):
        __slots__ = ()

        def _park(self, waiter: _Waiter, timeout: float) -> bool:
            parked.set()
            handed.wait(_HANG_GUARD_S)
            return False  # "timed out", after the hand-over

    lock = EdgeLock()
    result: list[object] = []
    lock.acquire()

    def waiter() -> None:
        ok = lock.acquire(timeout=0.01)
        result.append(ok)
        if ok:
            lock.release()  # only the owner may: this proves it owns it
            result.append("released")

    t = start(waiter)
    until(parked.is_set, "the waiter sleeps")
    lock.release()  # hands over to the sleeping waiter
    assert lock.locked() and not lock.acquire(False)
    handed.set()
    joined(t)
    assert result == [True, "released"]
    assert not lock.locked() and lock.waiting == 0


@pytest.mark.parametrize("handed_over", [False, True], ids=["queued", "handed-over"])
def test_a_waiter_interrupted_while_it_sleeps_leaves_no_lock_behind(handed_over: bool) -> None:
    """An exception in the wait (KeyboardInterrupt, in the main thread) either takes the waiter
    off the queue or passes on the lock it was just given, so the next waiter still gets it."""
    parked = threading.Event()
    go = threading.Event()

    class Interrupt(Exception):
        pass

    class InterruptedLock(FifoLock):
        __slots__ = ()

        def _park(self, waiter: _Waiter, timeout: float) -> bool:
            if threading.current_thread().name == "interrupted":
                parked.set()
                go.wait(_HANG_GUARD_S)
                raise Interrupt
            return super()._park(waiter, timeout)

    lock = InterruptedLock()
    seen: list[str] = []
    lock.acquire()

    def interrupted() -> None:
        try:
            lock.acquire()
        except Interrupt:
            seen.append("interrupted")

    def next_one() -> None:
        with lock:
            seen.append("next")

    a = threading.Thread(target=interrupted, name="interrupted", daemon=True)
    a.start()
    until(parked.is_set, "the first waiter sleeps")
    b = start(next_one)
    until(lambda: lock.waiting == 2, "the second waiter queues")
    if handed_over:
        lock.release()  # to the first waiter, which will not take it
        go.set()
        joined(a, b)
    else:
        go.set()
        joined(a)
        assert lock.waiting == 1
        lock.release()
        joined(b)
    assert sorted(seen) == ["interrupted", "next"]  # (handed over: the two report in any order)
    assert not lock.locked() and lock.waiting == 0


def test_only_the_holder_may_release() -> None:
    lock = FifoLock()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    lock.acquire()
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    joined(start(intruder))
    assert len(errors) == 1 and "another thread" in str(errors[0])
    assert lock.locked()
    lock.release()
    assert not lock.locked()


def test_acquire_checks_its_arguments_as_threading_lock_does() -> None:
    for lock in (FifoLock(), threading.Lock()):
        with pytest.raises(ValueError):
            lock.acquire(False, 1.0)
        with pytest.raises(ValueError):
            lock.acquire(timeout=-2)
        assert not lock.locked()


@settings(max_examples=25, deadline=None)
@given(gives_up=st.lists(st.booleans(), min_size=1, max_size=6))
def test_waiters_get_the_lock_in_arrival_order_skipping_those_that_gave_up(
    gives_up: list[bool],
) -> None:
    """Any mix of waiters, some of which time out while queued (wherever they stand): the
    others get the lock one after the other, in the order they arrived."""
    time_up = threading.Event()
    quitters: set[int] = set()

    class TimedLock(FifoLock):
        __slots__ = ()

        def _park(self, waiter: _Waiter, timeout: float) -> bool:
            if waiter.ident in quitters:
                time_up.wait(_HANG_GUARD_S)
                return False  # its timeout ran out while it was still queued
            return super()._park(waiter, timeout)

    lock = TimedLock()
    order: list[int] = []
    results: dict[int, bool] = {}
    lock.acquire()

    def waiter(k: int, quits: bool) -> Callable[[], None]:
        def run() -> None:
            if quits:
                quitters.add(threading.get_ident())
            ok = lock.acquire(timeout=_HANG_GUARD_S)
            results[k] = ok
            if ok:
                order.append(k)
                lock.release()
        return run

    threads = []
    for k, quits in enumerate(gives_up):
        threads.append(start(waiter(k, quits)))
        until(lambda k=k: lock.waiting == k + 1, f"waiter {k} queues")
    time_up.set()
    stay = [k for k, quits in enumerate(gives_up) if not quits]
    until(lambda: lock.waiting == len(stay), "the quitters leave the queue")
    lock.release()
    joined(*threads)
    assert order == stay
    assert results == {k: not quits for k, quits in enumerate(gives_up)}
    assert not lock.locked() and lock.waiting == 0


def test_many_threads_taking_turns_all_finish_one_at_a_time() -> None:
    """4 threads x 400 acquire/release pairs, blocking, non-blocking and with short timeouts:
    never two inside, every blocking acquire succeeds, and the lock ends free."""
    lock = FifoLock()
    inside = [0]  # touched only by the holder: more than 1 means two threads were inside
    overlaps = [0]
    tried: dict[int, list[int]] = {}  # per thread: blocking acquires asked, and got

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        counts = tried.setdefault(seed, [0, 0])
        for i in range(400):
            how = int(rng.integers(3))
            if how == 0:
                counts[0] += 1
                ok = lock.acquire()
                counts[1] += ok
            elif how == 1:
                ok = lock.acquire(False) or lock.acquire(timeout=0.0002)
            else:
                ok = lock.acquire(timeout=0.0001)
            if not ok:
                continue
            inside[0] += 1
            if inside[0] != 1:
                overlaps[0] += 1
            if i % 7 == 0:
                time.sleep(0)  # let another thread run while this one holds the lock
            inside[0] -= 1
            lock.release()

    threads = [start(lambda s=s: worker(s)) for s in range(4)]
    joined(*threads)
    assert overlaps == [0]
    assert len(tried) == 4 and all(asked == got > 0 for asked, got in tried.values())
    assert not lock.locked() and lock.waiting == 0


# -- the driver --------------------------------------------------------------------------------


PAGES = real_memory_mix(64)
SW = Sw842Backend()


def check_batch(pages: np.ndarray, out: list[Any]) -> None:
    assert len(out) == len(pages)
    for page, item in zip(pages, out):
        assert not isinstance(item, BaseException), item
        if item is not None:
            assert SW.decompress(item) == page.tobytes()


def _in_two_threads(b: Nx842Backend, hammer: Callable[[str], None]) -> None:
    """``hammer("A")`` and ``hammer("B")`` on two threads of those names; ``b`` closed after."""
    threads = [threading.Thread(target=hammer, args=(n,), name=n, daemon=True) for n in "AB"]
    try:
        for t in threads:
            t.start()
        joined(*threads)
    finally:
        b.close()


def test_two_threads_calling_back_to_back_take_turns_in_the_driver() -> None:
    """Each thread, once inside compress_batch, waits until the other has queued at the driver's
    entry before doing its batch. With the request FIFO the entries then alternate exactly; a
    lock that lets the releasing thread straight back in (Python's Lock) breaks the alternation,
    and that is the starvation that made the other thread's call time out."""

    class Watched(Nx842Backend):
        def _compress_batch_locked(self, pages: np.ndarray) -> list[Any]:
            me = threading.current_thread().name
            log.append(me)
            until(lambda: self._entry.waiting >= 1 or finished[other[me]].is_set(),  # noqa: SLF001
                  f"{other[me]} queues behind {me}")
            return super()._compress_batch_locked(pages)

    log: list[str] = []
    finished = {"A": threading.Event(), "B": threading.Event()}
    other = {"A": "B", "B": "A"}
    errors: list[BaseException] = []
    calls = 12
    b = Watched(timeout_ms=60_000.0)

    outs: dict[str, list[list[Any]]] = {"A": [], "B": []}

    def hammer(name: str) -> None:
        try:
            for k in range(calls):  # back to back: results are checked afterwards
                outs[name].append(b.compress_batch(PAGES[(k * 16) % 64:(k * 16) % 64 + 16]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            finished[name].set()

    _in_two_threads(b, hammer)
    assert errors == []
    for got in outs.values():
        for k, out in enumerate(got):
            check_batch(PAGES[(k * 16) % 64:(k * 16) % 64 + 16], out)
    assert len(log) == 2 * calls
    assert all(log[i] != log[i + 1] for i in range(len(log) - 1)), "".join(log)
    c = b.counters()
    assert c["comp_complete"] + c["comp_failed"] == 2 * calls * 16 and c["timeouts"] == 0


def test_a_call_that_found_the_other_thread_queued_is_followed_by_that_thread() -> None:
    """The same hammer with no help: whenever a thread enters the driver while the other is
    already queued at its entry, the next call to enter is the other thread's. Every page comes
    back byte-exact and no call times out. The two threads must meet at the entry for the rule
    to be put to work: a round where the scheduler kept them apart (a loaded machine) is run
    again, up to five rounds."""
    for _ in range(5):
        if _hammer_round():
            return
    raise AssertionError("in five rounds the two threads never met at the driver's entry")


def _hammer_round() -> bool:
    """One round of the hammer, checked; whether the threads met at the entry."""

    class Watched(Nx842Backend):
        def _compress_batch_locked(self, pages: np.ndarray) -> list[Any]:
            log.append((threading.current_thread().name, self._entry.waiting))  # noqa: SLF001
            return super()._compress_batch_locked(pages)

    log: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    calls = 40
    b = Watched(timeout_ms=60_000.0)
    go = threading.Barrier(2)

    outs: list[list[Any]] = []

    def hammer(_name: str) -> None:
        try:
            go.wait(_HANG_GUARD_S)
            for _ in range(calls):  # back to back: results are checked afterwards
                outs.append(b.compress_batch(PAGES))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    _in_two_threads(b, hammer)
    assert errors == []
    assert len(outs) == 2 * calls
    for out in outs:
        check_batch(PAGES, out)
    assert len(log) == 2 * calls
    for (who, queued), (nxt, _) in zip(log, log[1:]):
        if queued:
            assert nxt != who, [f"{w}{q}" for w, q in log]
    c = b.counters()
    assert c["comp_complete"] + c["comp_failed"] == 2 * calls * len(PAGES)
    assert c["timeouts"] == 0
    # did the two threads meet at the entry? (each call is most of a thread's loop, and the
    # GIL switches every few ms, so they nearly always do)
    return any(queued for _, queued in log)
