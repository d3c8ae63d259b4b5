"""Stress: threads swap out, swap in and free random offsets against writeback under a small
pool, with device and allocator faults; every page read back must be the one last written."""

from __future__ import annotations

import errno
import random
import sys
import threading

import pytest

from hwzswap.errors import SwapDeviceError
from hwzswap.testing import real_memory_mix

from fsutil import compressible_pages, random_page, same_filled

THREADS = 4
SLOTS_PER_THREAD = 150
OPS_PER_THREAD = 1200


def _bank(seed: int) -> list[bytes]:
    """Pages of every shape: compressible, real-memory mix, incompressible, same-filled."""
    bank = compressible_pages(40, seed=seed)
    bank += [bytes(p) for p in real_memory_mix(16, seed=seed)]
    bank += [random_page(seed + i) for i in range(6)]
    bank += [bytes(4096), same_filled(), same_filled(b"\xff" * 8)]
    return bank


def _worker(system, tid: int, bank: list[bytes], exclusive: bool, errors: list, done,
            finals: dict) -> None:
    rng = random.Random(1000 + tid)
    base = tid * SLOTS_PER_THREAD  # each thread owns its slots, as a process owns its pages
    expected: dict[int, int] = {}
    try:
        for _ in range(OPS_PER_THREAD):
            off = base + rng.randrange(SLOTS_PER_THREAD)
            r = rng.random()
            if r < 0.45:
                j = rng.randrange(len(bank))
                try:
                    system.swap_out(0, off, bank[j])
                    expected[off] = j
                except SwapDeviceError:  # an injected device fault: the slot is now free
                    expected.pop(off, None)
                    if system.slot_in_use(0, off):
                        errors.append(f"slot {off} still in use after a failed swap_out")
            elif r < 0.85:
                if off in expected:
                    try:
                        got = system.swap_in(0, off)
                    except SwapDeviceError as exc:
                        if "injected" not in str(exc) or "read" not in str(exc):
                            raise
                        continue  # a transient read fault: the page is still there
                    if got != bank[expected[off]]:
                        errors.append(f"thread {tid}: slot {off} returned the wrong page")
                    if exclusive:
                        del expected[off]
                else:
                    try:
                        system.swap_in(0, off)
                        errors.append(f"thread {tid}: slot {off} was read although free")
                    except SwapDeviceError:
                        pass
            else:
                system.swap_free(0, off)
                expected.pop(off, None)
        finals[tid] = expected
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        errors.append(f"thread {tid}: {type(exc).__name__}: {exc}")
    finally:
        done.append(tid)


def _writeback_hammer(system, stop: threading.Event, faults: bool, errors: list) -> None:
    """Extra writeback from a second thread (besides the store path and the background one),
    sprinkling device and allocator faults when asked: at most one of each kind pending. This
    loop spins fast while the pool is empty, and faults it added faster than operations used
    them up once failed every write and allocation of a run (on a loaded machine: 3,956 failed
    writes, nothing ever in the pool)."""
    rng = random.Random(7)
    dev, alloc = system.devices[0], system.pool.allocator
    added = {"swap_failed_writes": 0, "swap_failed_reads": 0, "alloc": 0}
    try:
        while not stop.is_set():
            system.zswap.writeback(rng.randrange(1, 12))
            if faults:
                r = rng.random()
                used = dev.stats()
                if r < 0.05 and used["swap_failed_writes"] >= added["swap_failed_writes"]:
                    dev.inject("write", rng.choice([errno.EIO, errno.ENOSPC]), 1)
                    added["swap_failed_writes"] += 1
                elif 0.05 <= r < 0.07 and used["swap_failed_reads"] >= added["swap_failed_reads"]:
                    dev.inject("read", errno.EIO, 1)
                    added["swap_failed_reads"] += 1
                elif 0.07 <= r < 0.10 and alloc.injected_failures >= added["alloc"]:
                    with system.zswap._lock:  # the allocator is not thread-safe on its own
                        alloc.fail_next(1)
                    added["alloc"] += 1
    except BaseException as exc:  # noqa: BLE001
        errors.append(f"writeback thread: {type(exc).__name__}: {exc}")


@pytest.fixture
def fine_switching():
    """Switch threads every 20 µs instead of 5 ms, so operations interleave mid-way."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(old)


@pytest.mark.parametrize(
    ("exclusive", "background", "faults", "mode"),
    [(False, True, False, "reclaim"), (True, True, False, "reclaim"),
     (False, False, True, "reclaim"), (False, True, True, "reclaim"),
     (False, True, False, "page"), (True, False, True, "async"), (False, True, True, "async")],
    ids=["v9-loads+bg", "exclusive+bg", "sync+faults", "bg+faults", "page+bg",
         "async+exclusive+faults", "async+bg+faults"],
)
def test_threads_against_writeback_under_a_small_pool(make_system, exclusive, background, faults,
                                                      mode, fine_switching):
    system = make_system(
        memory={"total_ram_mb": 1},
        zswap={"batching": mode, "max_pool_percent": 12, "exclusive_loads": exclusive,
               "background_writeback": background, "writeback_batch": 8,
               "max_outstanding_writebacks": 16},
        swap={"nr_pages": THREADS * SLOTS_PER_THREAD},
    )
    bank = _bank(seed=int(exclusive) * 2 + int(background) + 4 * int(faults))
    errors: list[str] = []
    done: list[int] = []
    stop = threading.Event()
    hammer = threading.Thread(target=_writeback_hammer, args=(system, stop, faults, errors))
    hammer.start()
    finals: dict[int, dict[int, int]] = {}
    workers = [threading.Thread(target=_worker,
                                args=(system, t, bank, exclusive, errors, done, finals))
               for t in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    stop.set()
    hammer.join(30)
    assert not errors, errors[:5]
    assert sorted(done) == list(range(THREADS))
    system.drain()
    system.zswap.check()  # consistent at any instant, background writeback or not
    system.zswap.stop_background()
    system.devices[0].clear_faults()
    system.pool.allocator.clear_faults()
    st = system.stats()
    assert st["written_back_pages"] > 0
    if mode != "async":  # async stages pages first: the writeback thread may keep the pool
        assert st["pool_limit_hit"] > 0  # under its limit all along
    assert st["outstanding_writebacks"] == 0
    if faults:
        assert st["swap_failed_writes"] > 0 and st["writeback_fail"] + st["pswpout"] > 0
    system.zswap.check()
    # Everything still swapped out drains to the device and comes back right.
    system.zswap.shrink(0)
    assert system.pool.total_pages() == 0 and len(system.pool) == 0
    for expected in finals.values():
        for off, j in expected.items():
            assert system.swap_in(0, off) == bank[j]
    system.zswap.check()
