"""Async mode on a device's own queue (:class:`OpsInFlight`): submit now, poll later.

The device here is lz4 behind a queue the test opens and closes: ops it accepts complete
only when the test lets them (``held``), ops past ``depth`` are refused BUSY, and one op can
be kept for ever (``never``). Every result is checked against lz4's own output."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from hwzswap.backends.contract import (
    Capabilities,
    CompOp,
    CompressedBatch,
    ItemStatus,
    OpKind,
    OpStatus,
)
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.errors import DeviceError
from hwzswap.frontswap.compressor import Compressor
from hwzswap.frontswap.opsinflight import OpsInFlight
from fsutil import compressible_pages

PAGE = 4096


class HeldQueue(Lz4Backend):
    """lz4 behind a queue of ``depth`` ops that completes them only while ``held`` is clear."""

    name = "test-held-queue"

    def __init__(self, depth: int = 64, **params: Any) -> None:
        super().__init__(**params)
        self.depth = depth
        self.lock = threading.Lock()
        self.queue: list[CompOp] = []
        self.held = threading.Event()
        self.submitted: list[bytes] = []  # the pages, in the order the device took them
        self.polls = 0
        self.never: bytes | None = None  # an op with this page never completes
        self.fail_submit: str | None = None
        self.fail_poll: str | None = None
        self.per_poll: int | None = None  # ops a poll hands back at most (None: all done)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(device="test-held", asynchronous=True, format="lz4",
                            concurrent=True, preferred_batch=16)  # ops a submit carries

    def submit(self, ops: Sequence[CompOp]) -> int:
        if self.fail_submit:
            why, self.fail_submit = self.fail_submit, None
            raise DeviceError(why)
        with self.lock:
            room = max(0, self.depth - len(self.queue))
            taken = list(ops[:room])
            self.queue.extend(taken)
            self.submitted.extend(bytes(op.src) for op in taken)
        for op in ops[room:]:
            op.status = OpStatus.BUSY
        return len(taken)

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        self.polls += 1
        if self.fail_poll:
            why, self.fail_poll = self.fail_poll, None
            raise DeviceError(why)
        if self.held.is_set():
            return []
        with self.lock:
            out = [op for op in self.queue if bytes(op.src) != self.never][:self.per_poll]
            self.queue = [op for op in self.queue if all(op is not o for o in out)]
        for op in out:
            self._execute(op)
        return out


class Recorder:
    """The completion step: records (token, result), may raise for one token."""

    def __init__(self, raise_for: Any = None) -> None:
        self.got: dict[Any, CompressedBatch] = {}
        self.raise_for = raise_for
        self.lock = threading.Lock()

    def __call__(self, token: Any, result: CompressedBatch) -> None:
        if token == self.raise_for:
            raise RuntimeError("a bug in the completion step")
        with self.lock:
            assert token not in self.got, "a batch completed twice"
            self.got[token] = result


def pages(n: int, seed: int = 3) -> np.ndarray:
    return np.frombuffer(b"".join(compressible_pages(n, seed=seed)),
                         dtype=np.uint8).reshape(n, PAGE)


def assert_exact(result: CompressedBatch, batch: np.ndarray) -> None:
    """Every OK item decompresses (with plain lz4) to its page."""
    lz4 = Lz4Backend()
    assert len(result) == len(batch)
    for i in range(len(batch)):
        assert result.status[i] == ItemStatus.OK, result.errors.get(i)
        assert lz4.decompress(result[i]) == batch[i].tobytes()


def make(dev: HeldQueue, max_batches: int = 4, fill: int = 0, timeout_ms: float = 5000.0,
         raise_for: Any = None) -> tuple[Compressor, OpsInFlight, Recorder]:
    comp = Compressor(dev, timeout_ms, fail_after=3, watchdog="off")
    done = Recorder(raise_for)
    return comp, OpsInFlight(comp, done, max_batches, fill), done


def test_submit_returns_without_polling_and_drain_completes_every_batch() -> None:
    dev = HeldQueue()
    comp, q, done = make(dev)
    batches = [pages(8, seed=s) for s in range(3)]
    for token, b in enumerate(batches):
        q.submit(token, b)
    assert dev.polls == 0 and not done.got and q.in_flight == 3
    assert len(dev.submitted) == 24  # all on the device, the storing thread already gone on
    q.drain()
    assert sorted(done.got) == [0, 1, 2] and q.in_flight == 0
    for token, b in enumerate(batches):
        assert_exact(done.got[token], b)
    assert (q.batches, q.timed_out, q.completion_errors) == (3, 0, 0)
    q.close()
    assert comp.stray_ops is None


def test_ops_refused_busy_wait_in_the_backlog_and_go_in_order() -> None:
    dev = HeldQueue(depth=5)
    _, q, done = make(dev)
    b = pages(12)
    q.submit(0, b)
    assert len(dev.submitted) == 5  # the rest refused BUSY, kept for the next submit or poll
    q.drain()
    assert dev.submitted == [row.tobytes() for row in b]
    assert_exact(done.got[0], b)


def test_a_full_queue_polls_for_room_before_submitting_more() -> None:
    dev = HeldQueue()
    _, q, done = make(dev, max_batches=1)
    first, second = pages(4, seed=1), pages(4, seed=2)
    q.submit(0, first)
    assert dev.polls == 0
    q.submit(1, second)  # one batch in flight is full: the first is polled and completed
    assert dev.polls >= 1 and list(done.got) == [0]
    q.drain()
    assert_exact(done.got[0], first)
    assert_exact(done.got[1], second)


def test_fill_pages_lets_more_batches_in_until_they_hold_that_many_pages() -> None:
    dev = HeldQueue()
    _, q, done = make(dev, max_batches=1, fill=10)
    for token in range(5):  # 5 batches of 2 pages: 10 pages, no wait
        q.submit(token, pages(2, seed=token))
    assert dev.polls == 0 and q.in_flight == 5
    q.submit(5, pages(2, seed=5))  # 10 pages in flight: full
    assert dev.polls >= 1 and done.got
    q.drain()
    assert q.peak_in_flight == 5 and sorted(done.got) == list(range(6))


def test_another_pollers_loop_hands_in_flight_ops_to_their_batch() -> None:
    """A load's submit/poll loop on the same device gets this queue's compress ops back from
    its poll: they reach their batch (its completion then needs no poll of its own)."""
    dev = HeldQueue()
    comp, q, done = make(dev)
    b = pages(6)
    q.submit(0, b)
    obj = Lz4Backend().compress(b[0].tobytes())
    op = CompOp.decompress(obj)
    comp.run_ops([op])  # the load's loop: its poll hands back the batch's six ops too
    assert op.status is OpStatus.SUCCESS and op.dst == b[0].tobytes()
    polls = dev.polls
    q.drain()
    assert dev.polls == polls, "the batch was complete: drain had nothing to poll"
    assert_exact(done.got[0], b)


def test_ops_past_the_deadline_time_out_alone_and_count() -> None:
    dev = HeldQueue()
    comp, q, done = make(dev, timeout_ms=50.0)
    b = pages(6)
    dev.never = b[2].tobytes()
    q.submit(0, b)
    q.drain()
    res = done.got[0]
    assert [int(s) for s in res.status] == [0, 0, 2, 0, 0, 0]
    assert "timed out" in res.errors[2]
    assert comp.timeouts == 1 and q.timed_out == 1
    # the device finishing the op late changes nothing: it is not out any more
    dev.never = None
    late = dev.poll()
    q._route(late)  # noqa: SLF001 - what the next poll would do with it
    assert done.got[0] is res and [int(s) for s in res.status] == [0, 0, 2, 0, 0, 0]


def test_host_work_past_the_deadline_times_nothing_out() -> None:
    """The deadline runs from the device's acceptance and is judged by a poll: a host busy
    with its own work longer than the deadline before it polls, and ops waiting in the
    backlog meanwhile, are not the device's lateness (they were all timed out, the device
    marked failed)."""
    dev = HeldQueue(depth=4)
    comp, q, done = make(dev, timeout_ms=40.0)
    b = pages(10)
    q.submit(0, b)  # 4 on the device, 6 in the backlog
    time.sleep(0.12)  # the host's own work, three deadlines long
    q.drain()
    assert_exact(done.got[0], b)
    assert comp.timeouts == 0 and q.timed_out == 0 and not comp.failed


def test_a_device_handing_back_a_few_ops_a_poll_is_not_timed_out() -> None:
    dev = HeldQueue()
    dev.per_poll = 1
    comp, q, done = make(dev, timeout_ms=40.0)
    b = pages(12)
    q.submit(0, b)
    time.sleep(0.1)  # every op past its deadline before the first poll
    q.drain()
    assert_exact(done.got[0], b)
    assert comp.timeouts == 0


def test_a_poll_not_made_fails_nothing() -> None:
    """Another submit/poll loop holding the device past its deadline: the queue's polls are
    refused (counted as refused), its ops wait, and once the device is free they come back."""
    dev = HeldQueue()
    comp, q, done = make(dev, timeout_ms=1000.0)
    b = pages(6)
    q.submit(0, b)
    hold = comp._ops_lock  # noqa: SLF001 - a loop stuck in the driver, as a test can make one
    assert hold.take(0.001) is None
    time.sleep(0.01)
    q._progress()  # noqa: SLF001 - one wait for room: its poll is refused
    hold.release()
    assert comp.refused_stuck >= 1 and 0 not in done.got
    q.drain()
    assert_exact(done.got[0], b)
    assert comp.timeouts == 0


def test_a_queue_that_cannot_move_gives_up_after_its_deadline() -> None:
    """A device that accepts nothing, ever (full of work that never ends): a drain gives
    up on the backlog after one deadline of no movement, and the pages fail as timed out."""
    dev = HeldQueue(depth=0)
    comp, q, done = make(dev, timeout_ms=40.0)
    q.submit(0, pages(3))
    t0 = time.monotonic()
    q.drain()
    assert time.monotonic() - t0 < 5
    res = done.got[0]
    assert list(res.status) == [ItemStatus.FAILED] * 3 and "timed out" in res.errors[0]
    assert comp.timeouts == 3 and q.timed_out == 1


def test_the_backlog_of_a_device_marked_failed_is_not_sent() -> None:
    dev = HeldQueue(depth=2)
    dev.held.set()  # the two on the device never come back
    comp = Compressor(dev, 30.0, fail_after=1, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 4)
    q.submit(0, pages(6))
    q.drain()
    assert comp.failed and len(dev.submitted) == 2
    res = done.got[0]
    assert [int(x) for x in res.status] == [2] * 6
    assert "timed out" in res.errors[0] and "marked failed" in res.errors[5]


def test_an_empty_batch_completes_at_once() -> None:
    _, q, done = make(HeldQueue())
    q.submit("empty", np.empty((0, PAGE), dtype=np.uint8))
    q.drain()
    assert len(done.got["empty"]) == 0 and q.in_flight == 0


def test_a_submit_that_raises_fails_the_ops_it_carried_with_the_reason() -> None:
    """Ops go a burst (the device's preferred batch, 16 here) a submit: the call that raises
    fails its own ops; the next burst goes in as usual."""
    dev = HeldQueue()
    comp, q, done = make(dev)
    dev.fail_submit = "the queue is gone"
    b = pages(20)
    q.submit(0, b)
    q.drain()
    res = done.got[0]
    assert list(res.status) == [ItemStatus.FAILED] * 16 + [ItemStatus.OK] * 4
    assert all("the queue is gone" in res.errors[i] for i in range(16))
    assert comp.device_errors == 1 and comp.item_failures == 16
    assert dev.submitted == [row.tobytes() for row in b[16:]]
    b = pages(4, seed=9)  # the device works again for the next batch
    q.submit(1, b)
    q.drain()
    assert_exact(done.got[1], b)


def test_a_poll_that_raises_fails_the_ops_still_out() -> None:
    dev = HeldQueue()
    comp, q, done = make(dev)
    q.submit(0, pages(3))
    dev.fail_poll = "poll broke"
    q.drain()
    res = done.got[0]
    assert list(res.status) == [ItemStatus.FAILED] * 3 and "poll broke" in res.errors[0]
    assert comp.device_errors == 1


def test_a_device_marked_failed_fails_a_batch_at_once_without_a_call() -> None:
    dev = HeldQueue()
    comp, q, done = make(dev, timeout_ms=20.0)
    dev.held.set()  # nothing completes: three batches time out, the device is marked failed
    for token in range(3):
        q.submit(token, pages(2, seed=token))
        q.drain()
    # three deadlines in a row (fail_after=3): counted per op, as run_ops counts them
    assert comp.failed and q.timed_out == 3 and comp.timeouts == 6
    seen = len(dev.submitted)
    q.submit(3, pages(2, seed=3))
    assert len(dev.submitted) == seen
    assert list(done.got[3].status) == [ItemStatus.FAILED] * 2
    assert "marked failed" in done.got[3].errors[0]


def test_a_completion_that_raises_is_counted_and_the_rest_complete() -> None:
    dev = HeldQueue()
    _, q, done = make(dev, raise_for=1)
    for token in range(3):
        q.submit(token, pages(2, seed=token))
    q.drain()
    assert sorted(done.got) == [0, 2] and q.in_flight == 0
    assert q.completion_errors == 1 and "a bug in the completion step" in q.last_error


def test_after_close_a_batch_is_compressed_and_completed_in_its_caller() -> None:
    dev = HeldQueue()
    comp, q, done = make(dev)
    q.close()
    b = pages(3)
    q.submit(0, b)
    assert_exact(done.got[0], b)
    assert q.in_flight == 0 and comp.stray_ops is None


def test_threads_submitting_loading_and_draining_at_once_lose_nothing() -> None:
    """Four storing threads, one thread running load loops on the same device and one
    draining: every batch completes once, byte-exact, and every load gets its page."""
    dev = HeldQueue(depth=16)
    comp, q, done = make(dev, max_batches=3)
    lz4 = Lz4Backend()
    sources = {(t, k): pages(5, seed=100 * t + k) for t in range(4) for k in range(6)}
    errors: list[BaseException] = []
    stop = threading.Event()

    def store(t: int) -> None:
        try:
            for k in range(6):
                q.submit((t, k), sources[(t, k)])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def load() -> None:
        page = pages(1, seed=7)[0].tobytes()
        obj = lz4.compress(page)
        try:
            while not stop.is_set():
                op = CompOp.decompress(obj)
                comp.run_ops([op])
                assert op.status is OpStatus.SUCCESS and op.dst == page
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def drain() -> None:
        try:
            while not stop.is_set():
                q.drain()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    storers = [threading.Thread(target=store, args=(t,)) for t in range(4)]
    others = [threading.Thread(target=load), threading.Thread(target=drain)]
    for th in storers + others:
        th.start()
    for th in storers:
        th.join(60)
    q.drain()
    stop.set()
    for th in others:
        th.join(60)
    assert not errors, errors
    assert sorted(done.got) == sorted(sources)
    for key, b in sources.items():
        assert_exact(done.got[key], b)
    assert q.in_flight == 0 and q.timed_out == 0


@pytest.mark.parametrize("clock", ["virtual", "host"])
def test_842_nx_batches_in_flight_come_back_exact(clock: str) -> None:
    """The real emulated queue (8 slots: a 32-page batch waits in the backlog)."""
    import hwzswap

    nx = hwzswap.get_backend("842-nx", clock=clock)
    try:
        comp = Compressor(nx, None, watchdog="off")
        done = Recorder()
        q = OpsInFlight(comp, done, 2)
        batches = [pages(32, seed=s) for s in range(5)]
        for token, b in enumerate(batches):
            q.submit(token, b)
        q.drain()
        for token, b in enumerate(batches):
            res = done.got[token]
            for i in range(len(b)):
                assert res.status[i] == ItemStatus.OK, res.errors.get(i)
                assert nx.decompress(res[i]) == b[i].tobytes()
    finally:
        nx.close()


# -- through the swap system ---------------------------------------------------------------------


def as_batch(ps: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(ps), dtype=np.uint8).reshape(len(ps), PAGE)


def test_async_pages_on_the_devices_queue_are_loadable_and_invalidatable(make_system) -> None:
    """The engine's promises for pages in flight hold on the device's own queue: loadable
    from their copies, freed or replaced meanwhile, landing once polled, every page exact."""
    dev = HeldQueue()
    dev.held.set()
    s = make_system(backend=dev, zswap={"batching": "async", "async_submit": "queue",
                                        "async_max_batches": 2}, swap={"nr_pages": 64})
    assert s.zswap.async_submit == "queue"
    ps = compressible_pages(6)
    assert s.swap_out_batch(0, range(6), as_batch(ps)) == [True] * 6
    assert dev.polls == 0 and len(dev.submitted) == 6
    assert s.stats()["staged_pages"] == 6
    assert s.swap_in(0, 1) == ps[1]
    assert s.swap_in_batch(0, [2, 3]) == ps[2:4]
    s.swap_free(0, 4)
    newer = compressible_pages(1, seed=77)[0]
    assert s.swap_out(0, 5, newer)  # a newer store of a slot in flight (its own batch)
    dev.held.clear()
    s.drain()
    st = s.stats()
    assert st["staged_pages"] == 0 and st["loads_staged"] == 3 and st["zswpout"] == 5
    assert [s.swap_in(0, o) for o in (0, 1, 2, 3, 5)] == ps[:4] + [newer]
    assert not s.slot_in_use(0, 4)
    assert st["async_batches"] == 2 and st["async_timeouts"] == 0
    s.zswap.check()


def test_async_ops_that_time_out_go_to_the_swap_device_exact(make_system) -> None:
    dev = HeldQueue()
    s = make_system(backend=dev, zswap={"batching": "async", "async_submit": "queue",
                                        "device_timeout_ms": 50}, swap={"nr_pages": 64})
    ps = compressible_pages(5, seed=4)
    dev.never = ps[3]
    s.swap_out_batch(0, range(5), as_batch(ps))
    s.drain()
    st = s.stats()
    assert st["zswpout"] == 4 and st["reject_compress_fail"] == 1 and st["pswpout"] == 1
    assert st["async_timeouts"] == 1 and st["driver_timeouts"] == 1
    assert [s.swap_in(0, o) for o in range(5)] == ps


@pytest.mark.parametrize("submit, design", [("auto", "OpsInFlight"), ("queue", "OpsInFlight"),
                                            ("worker", "AsyncPipeline")])
def test_842_nx_async_batches_go_on_its_queue_unless_the_worker_is_asked_for(
        make_system, submit: str, design: str) -> None:
    import hwzswap

    nx = hwzswap.get_backend("842-nx")
    calls = {"submit": 0, "compress_batch": 0}
    for name in calls:
        real = getattr(nx, name)

        def counted(arg: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(arg)

        setattr(nx, name, counted)
    s = make_system(backend=nx, zswap={"batching": "async", "async_submit": submit},
                    swap={"nr_pages": 256})
    assert type(s.zswap._pipeline).__name__ == design  # noqa: SLF001
    ps = compressible_pages(64, seed=8)
    for at in range(0, 64, 32):
        s.swap_out_batch(0, range(at, at + 32), as_batch(ps[at:at + 32]))
    s.drain()
    assert [s.swap_in(0, o) for o in range(64)] == ps
    if design == "OpsInFlight":
        assert calls["compress_batch"] == 0 and calls["submit"] >= 2
    else:
        assert calls["compress_batch"] >= 1


def test_auto_gives_a_device_wanting_large_calls_the_worker(make_system) -> None:
    """``auto``: an asynchronous device that prefers more pages a call than one reclaim pass
    (lz4-opencl: thousands) gets the worker, which merges queued passes into one call."""

    class Wide(HeldQueue):
        name = "test-held-wide"

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(device="test-held", asynchronous=True, batch=True,
                                preferred_batch=4096, format="lz4", concurrent=True)

    s = make_system(backend=Wide(), zswap={"batching": "async"}, swap={"nr_pages": 64})
    assert s.zswap.async_submit == "worker"
    s2 = make_system(backend=HeldQueue(), zswap={"batching": "async"}, swap={"nr_pages": 64})
    assert s2.zswap.async_submit == "queue"
    s3 = make_system(backend=HeldQueue(), zswap={"batching": "reclaim",
                                                 "async_submit": "queue"},
                     swap={"nr_pages": 64})
    assert s3.zswap.async_submit is None  # other modes ignore it


def test_queue_asked_of_a_device_without_one_is_a_config_error(make_system) -> None:
    from hwzswap.errors import ConfigError

    with pytest.raises(ConfigError, match=r"zswap.async_submit: queue needs an asynchronous"):
        make_system(backend=Lz4Backend(), zswap={"batching": "async", "async_submit": "queue"})


# -- what the review found untested --------------------------------------------------------------


class Serviced(HeldQueue):
    """A device that completes each op ``service_s`` after it accepted it (its queue holds
    ``depth``): an op accepted late is done late, and that is not the device's fault."""

    name = "test-serviced"

    def __init__(self, depth: int, service_s: float) -> None:
        super().__init__(depth=depth)
        self.service_s = service_s
        self.due: dict[int, float] = {}

    def submit(self, ops: Sequence[CompOp]) -> int:
        n = super().submit(ops)
        now = time.monotonic()
        for op in ops[:n]:
            self.due[id(op)] = now + self.service_s
        return n

    def poll(self, max_ops: int | None = None) -> list[CompOp]:
        self.polls += 1
        time.sleep(0.0005)  # a bounded wait, as a real driver's poll
        now = time.monotonic()
        with self.lock:
            out = [op for op in self.queue if self.due.get(id(op), now + 1) <= now]
            self.queue = [op for op in self.queue if all(op is not o for o in out)]
        for op in out:
            self._execute(op)
        return out


def test_an_ops_deadline_runs_from_its_acceptance_not_its_batchs_submission() -> None:
    """A 10-page batch on a 2-deep queue, 10 ms an op: the last ops are accepted ~40 ms
    after the batch was handed in, each done 10 ms after its own acceptance, inside a
    25 ms deadline (counted from the submission they would all but the first two time out)."""
    dev = Serviced(depth=2, service_s=0.010)
    comp, q, done = make(dev, timeout_ms=25.0)
    b = pages(10)
    q.submit(0, b)
    q.drain()
    assert_exact(done.got[0], b)
    assert comp.timeouts == 0


def test_one_stall_over_several_batches_is_one_timeout() -> None:
    """Three batches in flight, one stall past their deadline: one timeout toward
    device_fail_after (2 here), as a worker's merged call that times out is one; counting
    one a batch failed a healthy device for good after one hiccup."""
    dev = HeldQueue()
    comp = Compressor(dev, 100.0, fail_after=2, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 8)
    dev.held.set()
    for token in range(3):
        q.submit(token, pages(2, seed=token))
        time.sleep(0.01)  # so their deadlines pass at different polls, inside one deadline
    q.drain()  # three give-ups (or fewer), one deadline apart at most: one count
    assert q.timed_out == 3 and comp.timeouts == 6 and not comp.failed
    dev.held.clear()
    b = pages(2, seed=9)
    q.submit(9, b)
    q.drain()
    assert_exact(done.got[9], b)


def test_a_batch_the_device_answers_ends_a_streak_of_timeouts() -> None:
    """fail_after=2: a timeout, a batch answered, a timeout: not two in a row."""
    dev = HeldQueue()
    comp = Compressor(dev, 30.0, fail_after=2, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 8)
    for token in range(3):
        dev.held.set() if token != 1 else dev.held.clear()
        q.submit(token, pages(2, seed=token))
        q.drain()
    assert comp.timeouts == 4 and not comp.failed
    assert_exact(done.got[1], pages(2, seed=1))


def test_busy_ops_keep_their_place_ahead_of_later_batches() -> None:
    """20 pages on a 3-deep queue, bursts of 16: 13 of a burst refused BUSY while 4 wait
    behind them, then a second batch: the device sees every page in order."""
    dev = HeldQueue(depth=3)
    _, q, done = make(dev)
    first, second = pages(20, seed=1), pages(6, seed=2)
    q.submit(0, first)
    q.submit(1, second)
    q.drain()
    assert dev.submitted == [r.tobytes() for r in first] + [r.tobytes() for r in second]


def test_a_new_batch_looks_for_room_again() -> None:
    """After the device refused some (room 0), a new batch tries once more: a queue that
    has room again (others' ops gone) takes the backlog and the new batch at once."""
    dev = HeldQueue(depth=4)
    _, q, done = make(dev)
    q.submit(0, pages(6, seed=1))
    assert len(dev.submitted) == 4
    dev.depth = 64  # room again, with no poll of this queue's in between
    q.submit(1, pages(6, seed=2))
    assert len(dev.submitted) == 12
    q.drain()


def test_the_queues_ops_leave_the_host_free_and_a_loops_ops_do_not() -> None:
    """The ops a batch submits do not say their caller waits for them (CompOp.caller_waits:
    the host goes on with its own work, which a modelled device counts as overlap); a
    synchronous loop's ops do."""
    seen: list[bool] = []

    class Recording(HeldQueue):
        def submit(self, ops: Sequence[CompOp]) -> int:
            seen.extend(op.caller_waits for op in ops)
            return super().submit(ops)

    dev = Recording()
    comp, q, done = make(dev)
    q.submit(0, pages(3))
    q.drain()
    assert seen == [False] * 3
    comp.run_ops([CompOp.decompress(done.got[0][0])])
    assert seen[3:] == [True]


def test_queue_on_a_device_without_one_names_the_config_file(tmp_path) -> None:
    import hwzswap
    from hwzswap.errors import ConfigError

    cfg = tmp_path / "my.yaml"
    cfg.write_text("zswap: {compressor: lz4, batching: async, async_submit: queue}\n"
                   "swap: {nr_pages: 64}\n")
    with pytest.raises(ConfigError) as err:
        hwzswap.open_zswap(str(cfg))
    assert str(err.value).startswith(f"{cfg}: zswap.async_submit: queue needs")


def test_a_submit_not_made_leaves_its_ops_in_the_backlog() -> None:
    """The device held past its deadline by another submit/poll loop: the new batch's
    submit is not made, its ops wait (not failed), and go in once the device is free."""
    dev = HeldQueue()
    comp, q, done = make(dev, timeout_ms=1000.0)
    hold = comp._ops_lock  # noqa: SLF001 - a loop stuck in the driver, as a test can make one
    assert hold.take(0.001) is None
    time.sleep(0.01)  # the holder is past its own deadline: a submit behind it is refused
    b = pages(6)
    q.submit(0, b)
    assert dev.submitted == [] and comp.refused_stuck >= 1
    hold.release()
    q.drain()
    assert_exact(done.got[0], b)
    assert comp.timeouts == 0


def test_a_batch_timed_out_at_two_give_ups_counts_once() -> None:
    """Two of its ops give up at their deadline, the two never accepted at the stall's: one
    batch with ops timed out."""
    dev = HeldQueue(depth=2)
    dev.held.set()
    comp, q, done = make(dev, timeout_ms=30.0)
    q.submit(0, pages(4))
    q.drain()
    assert comp.timeouts == 4 and q.timed_out == 1


def test_the_contracts_own_submit_poll_loop_says_its_caller_waits() -> None:
    from hwzswap.backends.contract import run_ops

    seen: list[bool] = []

    class Recording(HeldQueue):
        def submit(self, ops: Sequence[CompOp]) -> int:
            seen.extend(op.caller_waits for op in ops)
            return super().submit(ops)

    ops = [CompOp.compress(row.tobytes()) for row in pages(2)]
    run_ops(Recording(), ops)
    assert seen == [True, True] and all(op.status is OpStatus.SUCCESS for op in ops)


def test_max_batches_holds_for_several_storing_threads() -> None:
    """Room is checked and taken under one lock: six threads storing at once never have
    more than max_batches in flight."""
    dev = HeldQueue()
    _, q, done = make(dev, max_batches=2)

    def store(t: int) -> None:
        for k in range(40):
            q.submit((t, k), pages(2, seed=t * 100 + k))

    threads = [threading.Thread(target=store, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    q.drain()
    assert q.peak_in_flight <= 2 and len(done.got) == 240


def test_an_op_overtaken_past_its_deadline_is_given_up_while_others_complete() -> None:
    """One op the device never completes while it goes on completing later batches: once
    the device hands back an op it accepted after that op's deadline, the op is given up
    (timed out) and its batch completes, without waiting for a drain (the completions never
    stop here, so the no-answer rule alone held the batch in flight for good)."""
    dev = HeldQueue()
    comp, q, done = make(dev, max_batches=2, timeout_ms=40.0)
    first = pages(4, seed=0)
    dev.never = first[1].tobytes()
    q.submit(0, first)
    later: dict[int, np.ndarray] = {}
    t0 = time.monotonic()
    token = 1
    while 0 not in done.got and time.monotonic() - t0 < 5:
        later[token] = pages(2, seed=token + 10)
        q.submit(token, later[token])  # at max_batches: polls, which bring others back
        token += 1
        time.sleep(0.01)
    assert 0 in done.got, "the lost op's batch stayed in flight while the others completed"
    res = done.got[0]
    assert [int(s) for s in res.status] == [0, 2, 0, 0] and "timed out" in res.errors[1]
    assert comp.timeouts == 1 and q.timed_out == 1
    assert time.monotonic() - t0 >= 0.04  # not before its deadline
    q.drain()
    for t, b in later.items():
        assert_exact(done.got[t], b)


def test_a_timeout_of_ops_sent_before_the_device_was_marked_failed_spares_its_retry() -> None:
    """A batch submitted, then the device marked failed (by other callers' timeouts) and
    retried after device_retry_s: the old batch's ops timing out now count as timeouts, but
    the device on probation is not failed again for them (it never got them as a retried
    device); a timeout of a batch sent since does fail it again."""
    dev = HeldQueue()
    comp = Compressor(dev, 30.0, fail_after=2, retry_s=0.3, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 8)
    dev.held.set()  # nothing completes
    q.submit(0, pages(2, seed=0))
    for _ in range(2):  # two other callers time out: the device is marked failed
        comp.ops_timed_out([CompOp(OpKind.COMPRESS, b"x" * PAGE)], [])
    assert comp.failed and comp.failed_marks == 1
    time.sleep(0.35)
    assert not comp.failed  # retried: on probation
    q.drain()  # the old batch's ops time out
    assert [int(s) for s in done.got[0].status] == [2, 2]
    assert comp.timeouts == 4 and not comp.failed
    q.submit(1, pages(2, seed=1))  # sent to the retried device, and it does not answer
    q.drain()
    assert comp.failed and comp.failed_marks == 2


def test_ops_given_up_behind_refused_polls_are_not_timeouts() -> None:
    """Another submit/poll loop holds the device past its deadline for longer than the
    queue's: the queue gives up on its ops, which fail with the refusal (not made), counted
    as refused polls, not as timeouts, and not toward device_fail_after (3 here: two real
    timeouts after it do not fail the device). The stuck holder is let go before it has been
    in the device for device_fail_after deadlines (which would fail it on its own)."""
    dev = HeldQueue()
    comp = Compressor(dev, 100.0, fail_after=3, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 8)
    dev.held.set()
    q.submit(0, pages(3))
    hold = comp._ops_lock  # noqa: SLF001 - a loop stuck in the driver, as a test can make one
    assert hold.take(0.001) is None
    try:
        time.sleep(0.01)
        q.drain()  # its polls refused for a deadline: it gives up
    finally:
        hold.release()
    res = done.got[0]
    assert list(res.status) == [ItemStatus.FAILED] * 3
    assert "not made" in res.errors[0], res.errors[0]
    assert comp.timeouts == 0 and q.timed_out == 0 and comp.refused_stuck >= 1
    assert not comp.failed
    for token in (1, 2):  # two real timeouts, a deadline apart: two of the streak
        q.submit(token, pages(2, seed=token))
        q.drain()
    assert comp.timeouts == 4 and q.timed_out == 2
    assert not comp.failed


def test_ops_sent_to_the_retried_device_count_against_it_though_submitted_before() -> None:
    """A batch whose ops waited in the backlog (refused BUSY) while the device was marked
    failed reaches the device only once it is retried: those ops are the retried device's,
    and their timeout fails it again, though the batch was submitted before the mark."""
    dev = HeldQueue(depth=2)
    comp = Compressor(dev, 50.0, fail_after=2, retry_s=0.3, watchdog="off")
    done = Recorder()
    q = OpsInFlight(comp, done, 8)
    dev.held.set()  # nothing completes
    q.submit("A", pages(2, seed=0))  # fills the device's queue
    q.submit("B", pages(2, seed=1))  # refused BUSY: waits in the backlog
    assert len(dev.submitted) == 2
    for _ in range(2):  # other callers' timeouts mark the device failed
        comp.ops_timed_out([CompOp(OpKind.COMPRESS, b"x" * PAGE)], [])
    assert comp.failed and comp.failed_marks == 1
    time.sleep(0.35)
    assert not comp.failed  # retried: on probation
    with dev.lock:
        dev.queue.clear()  # the retried device starts afresh: A's ops are gone, room for B's
    q.drain()  # B's ops go to the retried device, which never answers them
    assert len(dev.submitted) == 4
    assert "timed out" in done.got["B"].errors[0]
    assert comp.failed and comp.failed_marks == 2


def test_a_synchronous_loop_begun_before_the_device_was_marked_failed_spares_its_retry(
        ) -> None:
    """A submit/poll loop (a load's) begun before the device was marked failed, timing out
    after the device was retried: its timeout counts, but does not fail the retried device
    (it was not the retried device's call); a loop begun since does."""
    dev = HeldQueue()
    comp = Compressor(dev, 400.0, fail_after=2, retry_s=0.1, watchdog="off")
    dev.held.set()  # nothing completes
    out: list[list[CompOp]] = []
    t = threading.Thread(target=lambda: out.append(comp.run_ops(
        [CompOp(OpKind.COMPRESS, pages(1)[0])])), daemon=True)
    t.start()
    time.sleep(0.05)  # the loop is in
    for _ in range(2):  # other callers' timeouts mark the device failed
        comp.ops_timed_out([CompOp(OpKind.COMPRESS, b"x" * PAGE)], [])
    assert comp.failed and comp.failed_marks == 1
    time.sleep(0.15)
    assert not comp.failed  # retried: on probation
    t.join(10)
    assert out and out[0][0].status == OpStatus.DEVICE_ERROR  # the old loop timed out
    assert "timed out" in out[0][0].error
    assert not comp.failed  # and did not fail the retried device
    comp.run_ops([CompOp(OpKind.COMPRESS, pages(1)[0])])  # begun since: its timeout does
    assert comp.failed and comp.failed_marks == 2
