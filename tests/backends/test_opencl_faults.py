"""``lz4-opencl`` when a device call fails or never returns: nothing stays mapped, close is
bounded, and the ops and buffers of a stuck call are accounted for.

The device is real (PoCL). A stuck or failing call is made by wrapping the backend's own
internal step (the async worker's device call, a chunk's completion) around the real one, since
a real OpenCL device cannot be told to hang; the codec and the OpenCL calls stay real.
"""

from __future__ import annotations

import threading
import time

import lz4.block
import numpy as np
import pytest

from hwzswap import get_backend
from hwzswap.backends.contract import PAGE_SIZE, CompOp, OpStatus, run_ops
from hwzswap.bench.corpus import load_bundled
from hwzswap.errors import DeviceError, DeviceTimeoutError


@pytest.fixture(scope="module")
def pages() -> np.ndarray:
    return load_bundled(max_pages=512)


def _spy_pipeline(b, fail_at: int, step: str):
    """Make the next call's chunk ``fail_at`` raise at ``step``: right after its enqueue (its
    host memory wrapped, its kernel and map enqueued), or at its completion before it ran (as
    a failed wait or copy would). Return the list the call's jobs are recorded in."""
    real = b._pipeline
    jobs = []

    def pipeline(what, kind, bounds, enqueue, finish):
        def enq(job):
            jobs.append(job)
            enqueue(job)
            if step == "enqueue" and len(jobs) == fail_at + 1:
                raise DeviceError(f"lz4-opencl: injected: enqueueing chunk {fail_at} failed")

        def fin(job):
            if step == "finish" and len(jobs) > fail_at and job is jobs[fail_at]:
                raise DeviceError(f"lz4-opencl: injected: finishing chunk {fail_at} failed")
            finish(job)

        return real(what, kind, bounds, enq, fin)

    b._pipeline = pipeline
    return jobs


@pytest.mark.parametrize("kind", ["compress", "decompress"])
@pytest.mark.parametrize(("step", "fail_at"), [("finish", 0), ("finish", 2), ("enqueue", 0),
                                               ("enqueue", 3)])
def test_a_chunk_that_fails_leaves_nothing_mapped(pages, kind, step, fail_at):
    """Zero-copy wraps the caller's memory in USE_HOST_PTR buffers and maps the outputs; a
    completion that raised used to leave its own job's buffers mapped (it had been taken off
    the in-flight list before it ran), and so did an enqueue that failed after wrapping.
    Every job of the failed call is released, and the backend works afterwards."""
    with get_backend("lz4-opencl", tune="off", zero_copy="on", batch_size=64, queues=2) as b:
        batch = b.compress_batch(pages[:256])
        jobs = _spy_pipeline(b, fail_at, step)
        with pytest.raises(DeviceError, match="injected"):
            if kind == "compress":
                b.compress_batch(pages[:256])
            else:
                b.decompress_batch(batch)
        assert len(jobs) >= fail_at + 1
        assert all(not j.mapped and not j.wrappers and j.keep is None for j in jobs), [
            (i, len(j.mapped), len(j.wrappers)) for i, j in enumerate(jobs)]
        del b._pipeline  # the class's own again
        again = b.compress_batch(pages[:256])
        assert np.array_equal(b.decompress_batch(again), pages[:256])


def _hang_device(b):
    """Make the backend's device calls block, inside the call (the device held), until the
    returned event is set (a hung driver call); the call then runs for real."""
    release = threading.Event()
    entered = threading.Event()
    real = b._pipeline

    def pipeline(*args):
        entered.set()
        release.wait(60)
        return real(*args)

    b._pipeline = pipeline
    return entered, release


def test_close_is_bounded_when_a_device_call_hangs(pages):
    """close() used to wait forever for an async call that does not return. Now it gives up
    at its deadline: the backend is closed at once, ops queued behind the stuck call fail as
    DEVICE_ERROR (never run), the stuck call's own ops complete when it returns, and the
    device buffers are freed then, by the worker."""
    b = get_backend("lz4-opencl", tune="off", batch_size=8, queue_depth=4, hash_log=12)
    b.compress_batch(pages[:8])  # set up: buffers exist
    entered, release = _hang_device(b)
    first = [CompOp.compress(p) for p in pages[:8]]
    later = [CompOp.compress(p) for p in pages[8:24]]
    assert b.submit(first) == 8
    assert entered.wait(30)
    assert b.submit(later) == 16  # queued behind the stuck call
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match=r"close gave up after 0.3 s without an "
                                                 r"answer from an async device call of 8 ops"):
        b.close(timeout_s=0.3)
    assert time.monotonic() - t0 < 30  # not hung (the call hangs 60 s); no speed claim
    with pytest.raises(DeviceError, match="closed"):
        b.compress_batch(pages[:1])
    with pytest.raises(DeviceError, match="closed"):
        b.submit([CompOp.compress(pages[0])])
    done = b.poll()
    assert {id(op) for op in done} == {id(op) for op in later}
    assert all(op.status is OpStatus.DEVICE_ERROR and "never ran" in op.error for op in later)
    assert all(not op.done for op in first) and b.pending() == 8
    assert b._slots  # the stuck call may still use them
    release.set()  # the call returns: its ops complete for real, then the buffers go
    deadline = time.monotonic() + 30
    while b.pending() and time.monotonic() < deadline:
        done += b.poll()
    assert all(op.status in (OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE) for op in first)
    b._async.thread.join(30)
    assert not b._async.thread.is_alive() and b._slots == []
    b.close()  # twice is fine, and quiet


def test_close_waits_for_a_slow_call_within_its_bound(pages):
    """A call that returns before the deadline is waited for: its ops complete, no error."""
    b = get_backend("lz4-opencl", tune="off", batch_size=8, hash_log=12)
    entered, release = _hang_device(b)
    ops = [CompOp.compress(p) for p in pages[:8]]
    assert b.submit(ops) == 8
    assert entered.wait(30)
    threading.Timer(0.2, release.set).start()
    b.close(timeout_s=30)
    assert all(op.status in (OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE) for op in ops)
    assert len(b.poll()) == 8 and b._slots == []


def test_close_waits_for_a_long_queue_while_calls_keep_returning(pages):
    """The bound is on one call, not on the queue: six slow calls (0.15 s each, 0.9 s in
    all) finish under a 0.4 s bound, since each returns within it."""
    b = get_backend("lz4-opencl", tune="off", batch_size=8, queue_depth=8, hash_log=12)
    real = b._pipeline

    def slow(*args):
        time.sleep(0.15)
        return real(*args)

    b._pipeline = slow
    ops = [CompOp.compress(p) for p in pages[:48]]
    assert b.submit(ops) == 48
    b.close(timeout_s=0.4)
    assert all(op.status in (OpStatus.SUCCESS, OpStatus.INCOMPRESSIBLE) for op in ops)
    assert b.counters()["async_calls"] == 6 and b._slots == []


def test_close_gives_up_on_a_synchronous_call_that_hangs(pages):
    """A synchronous call stuck on another thread holds the device: close gives up at its
    deadline and the calling thread frees the buffers when its call returns."""
    b = get_backend("lz4-opencl", tune="off", batch_size=64, hash_log=12)
    b.compress_batch(pages[:8])
    entered, release = _hang_device(b)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("batch", b.compress_batch(pages[:64])))
    t.start()
    assert entered.wait(30)
    with pytest.raises(DeviceTimeoutError, match="a device call on"):
        b.close(timeout_s=0.2)
    assert b._slots
    release.set()
    t.join(30)
    # the call that was running completes (it had the device), then frees it
    batch = out["batch"]
    assert len(batch) == 64 and b._slots == []
    ok = [i for i in range(64) if batch[i] is not None]
    assert all(lz4.block.decompress(batch[i], uncompressed_size=PAGE_SIZE)
               == pages[i].tobytes() for i in ok)
    with pytest.raises(DeviceError, match="closed"):
        run_ops(b, [CompOp.compress(pages[0])])
