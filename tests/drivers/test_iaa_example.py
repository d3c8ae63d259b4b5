"""The asynchronous example driver (examples/hwzswap-iaa-driver): its own one-line conformance
suite, its queue, clock and faults, and a faulty device under the whole engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwzswap.backends.contract import CompOp, CompressedBatch, ItemStatus, OpStatus
from hwzswap.backends.registry import registered
from hwzswap.errors import CorruptDataError, DeviceError
from hwzswap.testing import check_backend, real_memory_mix, sample_pages

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hwzswap-iaa-driver"
sys.path.insert(0, str(EXAMPLE))

from hwzswap_iaa_driver import IaaBackend  # noqa: E402

PAGE = sample_pages()["heap_like"]


def test_the_vendor_suite_runs_the_kit_in_one_line() -> None:
    """The example's tests/ (conformance_tests over params.yaml, faults on) pass under pytest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "4 passed" in res.stdout


def test_conformance_with_faults_on() -> None:
    with registered(IaaBackend):
        report = check_backend("deflate-iaa", wq_depth=2, engines=1, fault_rate=0.1, fault_seed=2)
    assert report.faults["errors"] > 0
    assert report.faults["errors_by_path"]["async_compress"] > 0
    # decompress faults fall back to software: never an error
    assert report.faults["errors_by_path"]["decompress"] == 0


def test_queue_refuses_past_its_depth_and_clock_models_time() -> None:
    b = IaaBackend(wq_depth=2, engines=1, verify_compress=False)
    ops = [CompOp.compress(PAGE, user_data=i) for i in range(5)]
    assert b.submit(ops) == 2
    assert [op.status for op in ops[2:]] == [OpStatus.BUSY] * 3
    assert b.pending() == 2 and b.counters()["busy"] == 3
    (first,) = b.poll(max_ops=1)  # waits: the clock jumps to the first completion
    one = 2.2 + 4096 / 3000.0
    assert first.user_data == 0 and first.device_us == pytest.approx(one)
    assert b.counters()["clock_us"] == pytest.approx(one)
    (second,) = b.poll()
    assert b.counters()["clock_us"] == pytest.approx(2 * one)  # one engine: serial
    assert b.modeled_device_us() == pytest.approx(2 * one) and b.pending() == 0
    assert b.decompress(second.dst) == PAGE.tobytes()


def test_engines_overlap_and_verify_costs_device_time() -> None:
    pages = np.stack([PAGE] * 8)
    one = IaaBackend(engines=1, verify_compress=False)
    eight = IaaBackend(engines=8, verify_compress=False)
    verified = IaaBackend(engines=8)
    for b in (one, eight, verified):
        b.compress_batch(pages)
    assert one.modeled_device_us() == pytest.approx(eight.modeled_device_us())
    assert eight.counters()["clock_us"] == pytest.approx(one.counters()["clock_us"] / 8)
    assert verified.modeled_device_us() > eight.modeled_device_us()


def test_faults_per_item_and_software_fallback() -> None:
    pages = real_memory_mix(64, seed=4)
    b = IaaBackend(fault_rate=0.3, fault_seed=1)
    out = b.compress_batch(pages)
    assert isinstance(out, CompressedBatch)
    failed = out.failed()
    assert 0 < len(failed) < 64 and all("completion status 0x0a" in out.errors[i] for i in failed)
    assert b.counters()["comp_errors"] == len(failed)
    with pytest.raises(DeviceError):
        while True:
            b.compress(PAGE)
    ok = [i for i in range(64) if out.status[i] == ItemStatus.OK]
    back = b.decompress_batch([out[i] for i in ok])  # faulted ones redone in software
    assert np.array_equal(back, pages[ok])
    assert b.counters()["total_sw_decomp_calls"] > 0 and b.counters()["decomp_errors"] > 0
    with pytest.raises(CorruptDataError):
        b.decompress(b"\x00garbage")


def test_same_seed_same_faults() -> None:
    pages = real_memory_mix(32, seed=6)
    a = IaaBackend(fault_rate=0.2, fault_seed=9).compress_batch(pages)
    b = IaaBackend(fault_rate=0.2, fault_seed=9).compress_batch(pages)
    assert a.failed() == b.failed()
