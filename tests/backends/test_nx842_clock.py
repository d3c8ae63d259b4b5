"""``virtual`` and ``realtime`` clocks: same modelled device time, realtime paces wall time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hwzswap.backends.contract import PAGE_SIZE, CompOp, OpKind, OpStatus, run_ops
from hwzswap.backends.nx842 import CC, HANG
from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.errors import DeviceError, DeviceTimeoutError
from hwzswap.testing import check_backend, real_memory_mix, sample_pages

PAGES = sample_pages()
# Tiny modelled latencies and timeout keep the realtime runs fast.
FAST = {"comp_setup_us": 5.0, "decomp_setup_us": 3.0, "timeout_ms": 2.0}


def workload(b: Nx842Backend) -> list[object]:
    """A fixed mix of sync, batch and async requests, with injected and rate-driven faults."""
    results: list[object] = []
    pages = real_memory_mix(24, seed=2)
    for page in pages[:6]:
        results.append(b.compress(page))
    items = b.compress_batch(pages)
    results.append(items)
    kept = [it for it in items if it is not None]
    results.append(b.decompress_batch(kept).tobytes())
    b.inject(CC.CRC_MISMATCH, "decompress")
    b.inject(HANG, "decompress")
    results.append([b.decompress(it) for it in kept[:3]])
    ops = run_ops(b, [CompOp.compress(p) for p in pages[:10]] + [CompOp.decompress(kept[0])])
    results.append([(op.status, op.dst) for op in ops])
    b.inject(CC.HW_EXPIRED_TIMER, "compress")
    with pytest.raises(DeviceError, match="HW_EXPIRED_TIMER"):
        b.compress(pages[0])
    return results


def comparable(c: dict[str, object]) -> dict[str, object]:
    keys = ("comp_complete", "comp_failed", "decomp_complete", "decomp_failed", "swdecomp",
            "timeouts", "faults_injected", "completion_codes", "requests", "device_us")
    return {k: c[k] for k in keys}


@pytest.mark.parametrize("engines,depth", [(2, 4), (1, 1), (3, 2)])
def test_virtual_and_realtime_give_the_same_modelled_device_time(engines: int, depth: int) -> None:
    params = dict(FAST, engines=engines, queue_depth=depth, fault_rate=0.2, fault_seed=5,
                  fault_cc=int(CC.HW), fault_ops="decompress")
    virtual = Nx842Backend(clock="virtual", **params)
    realtime = Nx842Backend(clock="realtime", **params)
    try:
        assert workload(virtual) == workload(realtime)
        assert virtual.modeled_device_us() == realtime.modeled_device_us() > 0
        cv, cr = virtual.counters(), realtime.counters()
        assert comparable(cv) == comparable(cr)
        assert cv["timeouts"] == 1 and cv["faults_injected"] > 3
        assert sum(cv["engine_busy_us"]) == pytest.approx(sum(cr["engine_busy_us"]))
    finally:
        realtime.close()


def test_realtime_paces_wall_time_to_the_model() -> None:
    b = Nx842Backend(clock="realtime", comp_setup_us=3000.0, decomp_setup_us=2000.0)
    try:
        t0 = time.perf_counter()
        out = b.compress(PAGES["text"])
        t1 = time.perf_counter()
        assert b.decompress(out) == PAGES["text"].tobytes()
        t2 = time.perf_counter()
        # A lower bound only: an engine may finish late on a loaded host, never early.
        assert t1 - t0 >= 3000e-6
        assert t2 - t1 >= 2000e-6
        c = b.counters()
        assert c["clock"] == "realtime" and "late" in c and "late_us" in c
        # one request, in the bucket of its latency: 3000 µs at least (bucket 11 is
        # 2048-4095 µs), and no later than the caller saw (the histogram holds real latency,
        # lateness included: a bound of 8191 µs failed on a loaded host)
        hist = c["comp_times"]
        (k,) = [i for i, n in enumerate(hist) if n]
        assert hist[k] == 1
        assert 11 <= k <= min(len(hist) - 1, max(11, int((t1 - t0) * 1e6).bit_length() - 1))
    finally:
        b.close()


@pytest.mark.parametrize("clock", ["realtime", "host"])
def test_realtime_and_host_clock_conformance(clock: str) -> None:
    b = Nx842Backend(clock=clock, queue_depth=3, **FAST)
    try:
        check_backend(b)
    finally:
        b.close()


def test_realtime_async_and_timeouts() -> None:
    b = Nx842Backend(clock="realtime", queue_depth=2, **FAST)
    try:
        ops = [CompOp.compress(PAGES[k]) for k in ("text", "ramp", "heap_like", "zero")]
        assert b.submit(ops) == 2 and ops[2].status is OpStatus.BUSY
        got = b.poll()  # blocks until an engine posts a completion
        while b.pending():
            got += b.poll()
        assert got == ops[:2] or got == ops[1::-1]
        run_ops(b, ops[2:])
        assert all(op.status is OpStatus.SUCCESS for op in ops)
        b.inject(HANG, "compress")
        with pytest.raises(DeviceError, match="did not complete within 2 ms"):
            b.compress(PAGES["text"])
        b.inject(HANG, "decompress")
        assert b.decompress(ops[0].dst) == PAGES["text"].tobytes()
        c = b.counters()
        assert c["timeouts"] == 2 and c["swdecomp"] == 1
    finally:
        b.close()


def test_realtime_close_stops_the_engine_threads_and_loses_nothing() -> None:
    b = Nx842Backend(clock="realtime", engines=2, queue_depth=4, comp_setup_us=1000.0)
    names = {f"nx842-engine{i}" for i in range(2)}
    assert names <= {t.name for t in threading.enumerate()}
    ops = [CompOp.compress(PAGES["text"]) for _ in range(4)]
    assert b.submit(ops) == 4
    b.close()  # stops pacing; queued requests still complete
    done = b.poll()
    while b.pending():
        done += b.poll()
    assert len(done) == 4 and all(op.status is OpStatus.SUCCESS for op in done)
    alive = {t.name for t in threading.enumerate() if t.is_alive()}
    assert not names & alive
    with pytest.raises(DeviceError, match="closed"):
        b.compress(PAGES["text"])


def test_virtual_mode_never_sleeps() -> None:
    # A modelled second per request would take minutes in realtime; virtual does it at once.
    b = Nx842Backend(comp_setup_us=1_000_000.0, engines=2, queue_depth=8)
    batch = np.stack([PAGES["text"]] * 8)
    items = b.compress_batch(batch)
    assert all(it is not None for it in items)
    assert b.modeled_device_us() == pytest.approx(8 * (1_000_000.0 + PAGE_SIZE / 16_000.0))
    assert b.counters()["device_clock_us"] == pytest.approx(4 * (1_000_000.0 + PAGE_SIZE / 16_000.0))


def test_realtime_engine_exception_is_reported_as_an_internal_error() -> None:
    def broken(data: object, strict: bool = False) -> bytes:
        raise RuntimeError("emulation bug")

    b = Nx842Backend(clock="realtime", **FAST)
    try:
        for engine in b.engines:
            engine._compress = broken  # noqa: SLF001 - simulate a bug in the emulated engine
        with pytest.raises(DeviceError, match="CC 10 INTERNAL"):
            b.compress(PAGES["text"])
        errors = b.counters()["engine_errors"]
        assert len(errors) == 1 and "RuntimeError: emulation bug" in errors[0]
    finally:
        b.close()


@pytest.mark.parametrize("clock", ["virtual", "host"])
def test_the_host_clock_lets_the_engines_work_while_the_host_does(clock: str) -> None:
    """Four requests of 2 ms each on two engines, then 20 ms of the host's own work before it
    polls. The virtual clock stands still while the host works, so the host then waits for
    the device's 4 ms; the host clock moved on with the host, so the requests are done and
    nothing is waited. The device's busy time is the same either way."""
    b = Nx842Backend(clock=clock, engines=2, queue_depth=8, comp_setup_us=2000.0)
    try:
        ops = [CompOp.compress(PAGES["text"]) for _ in range(4)]
        assert b.submit(ops) == 4
        time.sleep(0.02)  # the host's own work
        done = b.poll()
        while b.pending():
            done += b.poll()
        assert len(done) == 4 and all(op.status is OpStatus.SUCCESS for op in done)
        c = b.counters()
        assert c["device_us"] == pytest.approx(4 * (2000.0 + PAGE_SIZE / 16_000.0))
        if clock == "virtual":  # every move of this clock is a wait
            assert c["device_waited_us"] == pytest.approx(c["device_clock_us"])
            assert c["device_waited_us"] == pytest.approx(2 * (2000.0 + PAGE_SIZE / 16_000.0))
        else:
            assert c["device_waited_us"] == 0.0
            assert c["device_clock_us"] >= 20_000.0  # the host's 20 ms moved it
    finally:
        b.close()


def test_the_host_clock_still_waits_for_what_is_not_done() -> None:
    """A synchronous request with no host work in between is waited for in full."""
    b = Nx842Backend(clock="host", comp_setup_us=50_000.0)
    try:
        assert b.compress(PAGES["text"]) is not None
        c = b.counters()
        assert c["device_waited_us"] == pytest.approx(50_000.0 + PAGE_SIZE / 16_000.0, rel=0.01)
        assert c["clock"] == "host"
    finally:
        b.close()


# -- timeout_ms bounds queueing plus service, not only injected hangs -------------------------


@pytest.mark.parametrize("clock", ["virtual", "host", "realtime"])
def test_a_request_slower_than_timeout_ms_times_out_on_every_clock(clock: str) -> None:
    """A modelled 20 ms request with timeout_ms=1: the driver stops waiting after 1 ms (compress:
    DeviceTimeoutError; decompress: software 842), the engine is busy the whole 20 ms."""
    b = Nx842Backend(clock=clock, timeout_ms=1.0, comp_setup_us=20_000.0,
                     decomp_setup_us=20_000.0, engines=1)
    try:
        page = PAGES["text"]
        with pytest.raises(DeviceTimeoutError, match="did not complete within 1 ms"):
            b.compress(page)
        data = Nx842Backend(clock=clock).compress(page)
        assert b.decompress(data) == page.tobytes()
        c = b.counters()
        assert c["timeouts"] == 2 and c["swdecomp"] == 1 and c["comp_complete"] == 0
        assert b.modeled_device_us() >= 40_000.0  # both ran to the end on the engine
    finally:
        b.close()


def test_virtual_clock_times_out_at_the_deadline_not_at_the_modelled_end() -> None:
    b = Nx842Backend(timeout_ms=1.0, comp_setup_us=20_000.0, engines=1)
    with pytest.raises(DeviceTimeoutError):
        b.compress(PAGES["text"])
    assert b._queue.now == pytest.approx(1_000.0)  # noqa: SLF001 - waited 1 ms, not 20


def test_queueing_delay_past_timeout_ms_is_a_timeout() -> None:
    """One engine, 20 ms a request, timeout_ms=30 (virtual clock, deterministic): the first
    request ends at 20 ms, the second at 40 ms (20 of them queued) and the third at 60 ms are
    past their deadlines; two engines finish every request in time."""
    pages = np.stack([PAGES[k] for k in ("text", "ramp", "heap_like")])
    one = Nx842Backend(timeout_ms=30.0, comp_setup_us=20_000.0, engines=1)
    items = one.compress_batch(pages)
    assert isinstance(items[0], bytes)
    assert all(isinstance(x, DeviceTimeoutError) for x in items[1:])
    assert one.counters()["timeouts"] == 2
    # the engine is still busy with them (to 60 ms; the clock is at 30): a new request waits
    # for it and times out too
    with pytest.raises(DeviceTimeoutError):
        one.compress(pages[0])
    one = Nx842Backend(timeout_ms=30.0, comp_setup_us=20_000.0, engines=1)
    ops = [CompOp.compress(p) for p in pages]
    assert one.submit(ops) == 3
    done = []
    while one.pending():
        done += one.poll()
    assert [op.status for op in ops] == [OpStatus.SUCCESS] + [OpStatus.DEVICE_ERROR] * 2
    assert all("did not complete within 30 ms" in op.error for op in ops[1:])
    two = Nx842Backend(timeout_ms=30.0, comp_setup_us=20_000.0, engines=2)
    assert all(isinstance(x, bytes) for x in two.compress_batch(pages[:2]))
    assert two.counters()["timeouts"] == 0


# -- overlap accounting: busy as a union over engines, exposed = the host blocked on it -------
#
# The host clock follows ``perf_counter_ns`` of the queue module; replaced by a script, host
# work takes exactly the time a test says, so the shares are exact.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hwzswap.backends.nx842 import queue as nxqueue  # noqa: E402

SETUP_US = 10.0
SERVICE_US = SETUP_US + PAGE_SIZE / 16_000.0  # one 4 KiB compress request, modelled


class HostScript:
    """A host clock that moves only when the test says the host worked."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    def work(self, us: float) -> None:
        self.ns += round(us * 1000)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> HostScript:
    s = HostScript()
    monkeypatch.setattr(nxqueue, "perf_counter_ns", s)
    return s


def _overlap(b: Nx842Backend) -> tuple[float, float, float]:
    c = b.counters()
    return c["device_us"], c["device_busy_union_us"], c["device_exposed_us"]


@pytest.mark.parametrize("engines", [1, 2])
def test_page_like_synchronous_use_hides_nothing(script: HostScript, engines: int) -> None:
    """Host work between synchronous calls does not overlap the device: each call waits for
    its page (compress, decompress, a batch), so every busy µs is exposed, whatever the
    engine count; the union counts two engines busy at once once."""
    b = Nx842Backend(clock="host", engines=engines, comp_setup_us=SETUP_US)
    outs = []
    for k in ("text", "ramp", "heap_like", "text"):
        script.work(7.0)  # the host's own work before the call
        outs.append(b.compress(PAGES[k]))
    busy, union, exposed = _overlap(b)
    assert busy == pytest.approx(4 * SERVICE_US)
    assert union == pytest.approx(4 * SERVICE_US) and exposed == pytest.approx(union)
    script.work(50.0)
    b.compress_batch(np.stack([PAGES["text"]] * 8))
    busy, union, exposed = _overlap(b)
    assert busy == pytest.approx(12 * SERVICE_US)
    assert union == pytest.approx((4 + 8 / engines) * SERVICE_US)  # engines in parallel
    assert exposed == pytest.approx(union)
    script.work(3.0)
    b.decompress_batch([o for o in outs if o is not None])
    busy2, union2, exposed2 = _overlap(b)
    assert union2 > union and exposed2 == pytest.approx(union2)


@pytest.mark.parametrize("engines", [1, 2])
@pytest.mark.parametrize("work", [0.0, 0.25, 0.5, 1.0, 3.0])
def test_submit_host_work_then_wait_hides_the_host_works_share(
        script: HostScript, engines: int, work: float) -> None:
    """At the queue: a request submitted, then ``work`` x its service time of the host's own
    work, then a wait for it. The host worked through min(work, 1) of the device's time:
    that much is hidden, the rest exposed (the wait). Two requests on two engines run at
    once, so the union (not the sum) is what is hidden or exposed."""
    b = Nx842Backend(clock="host", engines=engines, comp_setup_us=SETUP_US)
    q = b._queue  # noqa: SLF001 - the queue alone, without the driver's rules
    crbs = [b._free.pop() for _ in range(engines)]  # noqa: SLF001
    for crb in crbs:
        b._fill_comp(crb, PAGES["text"].tobytes())  # noqa: SLF001
        q.submit(crb)
    script.work(work * SERVICE_US)
    while len(q.wait_reap()) < engines and q.inflight():
        pass
    assert q.busy_union_us == pytest.approx(SERVICE_US)
    hidden = min(work, 1.0)
    assert q.exposed_us == pytest.approx((1.0 - hidden) * SERVICE_US)
    assert 1.0 - q.exposed_us / q.busy_union_us == pytest.approx(hidden)
    assert q.waited_us == pytest.approx((1.0 - hidden) * SERVICE_US)


@pytest.mark.parametrize("waits", [True, False])
@pytest.mark.parametrize("work", [0.5, 2.0])
def test_a_submitter_waits_for_its_op_until_its_poll_only_when_it_says_so(
        script: HostScript, work: float, waits: bool) -> None:
    """Through the driver: the thread that submitted an op with ``caller_waits`` (a
    synchronous submit/poll loop) waits for it until a poll hands it back, so its time in
    between is not overlap. Without it (zswap's async mode: a reclaim batch submitted, the
    storing thread gone on) its work in between hides that much of the device's time, and
    only the rest is exposed, by the poll's wait."""
    b = Nx842Backend(clock="host", comp_setup_us=SETUP_US)
    ops = [CompOp(OpKind.COMPRESS, PAGES["text"], caller_waits=waits)]
    assert b.submit(ops) == 1
    script.work(work * SERVICE_US)
    while not (done := b.poll()):
        pass
    assert done == ops and ops[0].status is OpStatus.SUCCESS
    busy, union, exposed = _overlap(b)
    hidden = 0.0 if waits else min(work, 1.0)
    assert union == pytest.approx(SERVICE_US)
    assert exposed == pytest.approx((1.0 - hidden) * SERVICE_US)
    assert b.counters()["device_exposed_parked_us"] == 0.0  # its own wait, not parked


@pytest.mark.parametrize("host", ["works", "parked"])
def test_a_workers_calls_overlap_the_host_unless_the_host_waits_for_it(
        script: HostScript, host: str) -> None:
    """An async engine's worker thread feeds the device (compress_batch) while the main
    thread, the host, either goes on with its own work (a loop here: none of the device's
    time is the host's wait) or is parked waiting for the worker (as in a drain: all of it
    is)."""
    b = Nx842Backend(clock="host", engines=2, comp_setup_us=SETUP_US)
    go, done = threading.Event(), threading.Event()
    out: list[object] = []

    def worker() -> None:
        go.wait()
        out.append(b.compress_batch(np.stack([PAGES["text"]] * 6)))
        done.set()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    go.set()
    if host == "works":
        while not out:  # the host's own work (this frame, no threading call: not a wait)
            pass
    else:
        done.wait()  # parked in a wait for the worker
    t.join()
    assert all(isinstance(x, bytes) for x in out[0])
    busy, union, exposed = _overlap(b)
    assert busy == pytest.approx(6 * SERVICE_US) and union == pytest.approx(3 * SERVICE_US)
    assert exposed == (0.0 if host == "works" else pytest.approx(union))
    # the host was never in the driver itself: what is exposed, it spent parked
    assert b.counters()["device_exposed_parked_us"] == pytest.approx(exposed)


@settings(max_examples=40, deadline=None)
@given(engines=st.integers(1, 3),
       steps=st.lists(st.tuples(st.floats(0.0, 40.0), st.integers(1, 4), st.booleans()),
                      min_size=1, max_size=8))
def test_overlap_accounting_properties(engines: int, steps: list[tuple[float, int, bool]]
                                       ) -> None:
    """Any mix of host work, batches and single synchronous calls on the host clock: the
    union of busy time lies between the sum over the engines / engines and that sum; the
    exposed part never exceeds it, and with only synchronous calls it is all of it."""
    s = HostScript()
    real = nxqueue.perf_counter_ns
    nxqueue.perf_counter_ns = s  # (hypothesis: no function-scoped fixture)
    try:
        b = Nx842Backend(clock="host", engines=engines, comp_setup_us=SETUP_US)
        for work, k, batch in steps:
            s.work(work)
            if batch:
                b.compress_batch(np.stack([PAGES["ramp"]] * k))
            else:
                b.compress(PAGES["heap_like"])
        busy, union, exposed = _overlap(b)
        assert busy / engines - 1e-6 <= union <= busy + 1e-6
        assert exposed == pytest.approx(union)
        # the clock passed all of it: the union fits in the time the clock moved
        assert union <= b.counters()["device_clock_us"] + 1e-6
    finally:
        nxqueue.perf_counter_ns = real
