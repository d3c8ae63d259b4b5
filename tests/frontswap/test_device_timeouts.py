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
        # two hangs in a row (fail_after 2), each page alone: a page answered between them
        # resets the count, and whether the device answers one depends on whether the first
        # hung request still holds an engine (the driver's own 100 ms: under load, not always)
        for off in (2, 4):
            b.inject(HANG, "compress", 1)
            s.swap_out_batch(0, [off], PAGES[off:off + 1])
            s.drain()
        for off in (3, 5, 6, 7):  # a failed device: to the swap device
            s.swap_out_batch(0, [off], PAGES[off:off + 1])
        s.drain()
        st = s.stats()
        assert st["driver_timeouts"] >= 2 and st["driver_failed"] == 1, st
        assert st["driver_device_errors"] == 0, st
        assert [s.swap_in(0, off) for off in range(8)] == [p.tobytes() for p in PAGES]
    finally:
        s.close()
        b.close()


def test_a_drivers_own_deadline_is_checked_and_named() -> None:
    """The deadline a driver declares (used when zswap.device_timeout_ms is unset) is any real
    number of ms up to a day (numpy's too); past that it is a DriverError saying how to
    override it; timeout messages name where the deadline came from."""
    from hwzswap.backends.contract import Capabilities
    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.errors import DriverError, InvalidParameterError
    from hwzswap.frontswap.compressor import Compressor

    class Declares(Lz4Backend):
        name = "test-declares-timeout"
        value: object = 250.0

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(timeout_ms=self.value)  # type: ignore[arg-type]

    b = Declares()
    for value, seconds in ((250.0, 0.25), (np.float64(250.0), 0.25), (7, 0.007)):
        b.value = value
        c = Compressor(b)
        assert c.timeout_s == pytest.approx(seconds)
        assert c.deadline_source.startswith("the driver's own timeout")
    assert Compressor(b, timeout_ms=40).deadline_source == "zswap.device_timeout_ms"
    for value in (1e300, float("nan"), float("inf"), -1.0, 0, True, False, "250", ""):
        b.value = value
        with pytest.raises(DriverError, match="capabilities.timeout_ms must be a number"):
            Compressor(b)
    with pytest.raises(InvalidParameterError, match="timeout_ms"):
        Nx842Backend(timeout_ms=1e8)  # the driver's own parameter is bounded the same way


def test_a_timeout_is_counted_once_whoever_gave_up_the_call() -> None:
    """The watchdog's DeviceTimeoutError says it was given up (``given_up=True``: counted
    where it gave up, not again); a driver's own has ``given_up`` False and is counted when
    the engine sees it. Either way one timeout each."""
    import threading

    from hwzswap.backends.lz4 import Lz4Backend
    from hwzswap.errors import DeviceTimeoutError
    from hwzswap.frontswap.compressor import Compressor

    assert DeviceTimeoutError("x").given_up is False
    assert DeviceTimeoutError("x", given_up=True).given_up is True
    release = threading.Event()

    class Hangs(Lz4Backend):  # from outside the package: watched by default
        name = "test-hangs"

        def compress(self, page):  # type: ignore[no-untyped-def]
            release.wait(10)
            return super().compress(page)

        def decompress(self, data):  # type: ignore[no-untyped-def]
            raise DeviceTimeoutError("test-hangs: its own deadline passed")

    c = Compressor(Hangs(), timeout_ms=50, fail_after=100)
    try:
        with pytest.raises(DeviceTimeoutError, match="given up") as info:
            c.compress(PAGES[0].tobytes())
        assert info.value.given_up is True and c.timeouts == 1
        release.set()  # the given-up call returns: the driver is asked again
        assert c.watchdog is not None
        for _ in range(1000):
            if not c.watchdog.stuck():
                break
            threading.Event().wait(0.01)
        with pytest.raises(DeviceTimeoutError, match="its own deadline") as info:
            c.decompress(b"x")
        assert info.value.given_up is False and c.timeouts == 2
    finally:
        release.set()
        c.close()
