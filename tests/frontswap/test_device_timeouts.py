"""A hung device request counts as a timeout in every engine mode, on every clock: the
driver's own deadline (a DeviceTimeoutError it raises, or items of a batch that timed out)
counts toward ``device_fail_after`` as the engine's watchdog and run_ops deadlines do. In
``reclaim`` mode, and in ``async`` on 842-nx's virtual clock, such a hang was counted as a
failed item, never a timeout, so the device was never marked failed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwzswap import open_zswap
from hwzswap.backends.nx842 import HANG
from hwzswap.backends.nx842.driver import Nx842Backend
from hwzswap.backends.sw842.backend import Sw842Backend
from hwzswap.testing import real_memory_mix

_MIX = real_memory_mix(64, seed=2)
PAGES = np.ascontiguousarray(
    _MIX[[i for i, p in enumerate(_MIX) if Sw842Backend().compress(p) is not None][:8]])


@pytest.mark.parametrize("mode", ["page", "folio", "reclaim", "async"])
@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_hung_requests_count_as_timeouts_and_mark_the_device_failed(
        tmp_path: Path, clock: str, mode: str) -> None:
    b = Nx842Backend(clock=clock, timeout_ms=100.0)
    s = open_zswap({"zswap": {"compressor": "842-nx", "batching": mode,
                              "device_timeout_ms": 30, "device_fail_after": 2},
                    "swap": {"nr_pages": 32, "path": str(tmp_path / "swap.img")}}, backend=b)
    try:
        s.swap_out_batch(0, [0, 1], PAGES[:2])
        s.drain()
        for first in (2, 4):  # two hangs in a row: fail_after 2
            b.inject(HANG, "compress", 1)
            s.swap_out_batch(0, [first, first + 1], PAGES[first:first + 2])
            s.drain()
        s.swap_out_batch(0, [6, 7], PAGES[6:8])  # a failed device: to the swap device
        s.drain()
        st = s.stats()
        assert st["driver_timeouts"] >= 2 and st["driver_failed"] == 1, st
        assert st["driver_device_errors"] == 0, st
        assert [s.swap_in(0, off) for off in range(8)] == [p.tobytes() for p in PAGES]
    finally:
        s.close()
        b.close()
