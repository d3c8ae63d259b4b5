"""A driver stuck for good: the calls refused behind the stuck one are not timeouts (they never
ran), but once the stuck call has stayed in the driver for ``device_fail_after`` deadlines,
that is the evidence of as many timeouts in a row and the device is marked failed (it stayed
"working" for ever, every call refused)."""

from __future__ import annotations

import threading
import time
from typing import Any

from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.frontswap import open_zswap

from fsutil import compressible_pages


class HangsFromTheSecondCall(Lz4Backend):
    name = "test-hangs-from-the-second-call"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.release = threading.Event()
        self.calls = 0

    def compress(self, page: Any) -> bytes | None:
        self.calls += 1
        if self.calls >= 2:
            self.release.wait(30)
        return super().compress(page)


def test_a_call_stuck_for_fail_after_deadlines_marks_the_device_failed(tmp_path) -> None:
    backend = HangsFromTheSecondCall()
    s = open_zswap({"zswap": {"compressor": "lz4", "batching": "page",
                              "device_timeout_ms": 50, "device_fail_after": 3,
                              "driver_watchdog": "on"},
                    "swap": {"nr_pages": 64, "path": str(tmp_path / "s.img")}},
                   backend=backend)
    try:
        pages = compressible_pages(6)
        assert s.swap_out(0, 0, pages[0]) is True
        assert s.swap_out(0, 1, pages[1]) is False  # timed out at 50 ms, now stuck
        assert s.swap_out(0, 2, pages[2]) is False  # refused behind it, at once
        st = s.stats()
        assert st["driver_timeouts"] == 1 and st["driver_refused_stuck"] == 1
        assert st["driver_failed"] == 0  # one deadline of evidence so far
        time.sleep(0.2)  # the stuck call has now been in the driver for 3+ deadlines
        assert s.swap_out(0, 3, pages[3]) is False
        st = s.stats()
        assert st["driver_failed"] == 1 and st["driver_timeouts"] == 1
        assert backend.calls == 2  # no call was made beside the stuck one
        assert [s.swap_in(0, o) for o in (1, 2, 3)] == pages[1:4]  # from the swap file
        backend.release.set()  # the stuck call returns: page 0 (lz4 in the pool) reads again
        deadline = time.monotonic() + 10
        while s.zswap.compressor.watchdog.stuck() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.swap_in(0, 0) == pages[0]
    finally:
        backend.release.set()
        s.close()


def test_stats_exits_1_when_calls_were_refused_behind_a_stuck_one(tmp_path, capsys) -> None:
    """Its loads decode in software (format lz4), so the run completes, every page verified;
    but calls were refused behind a stuck one, so its figures do not measure the device."""
    from hwzswap.backends.contract import Capabilities
    from hwzswap.backends.registry import registered
    from hwzswap.cli import main

    release = threading.Event()

    class Hangs(Lz4Backend):
        name = "test-stats-hangs-after-the-warm-up"
        built = 0

        def __init__(self, **params: Any) -> None:
            super().__init__(**params)
            type(self).built += 1
            self.measured = type(self).built == 2  # the first is the warm-up's twin
            self.calls = 0

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(format="lz4")

        def compress(self, page: Any) -> bytes | None:
            self.calls += 1
            if self.measured and self.calls == 10:
                release.wait(30)
            return super().compress(page)

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"zswap:\n  compressor: {Hangs.name}\n  batching: page\n"
                   "  device_timeout_ms: 50\n  device_fail_after: 1000\n")
    try:
        with registered(Hangs):
            assert main(["stats", "--config", str(cfg), "--pages", "64", "--json"]) == 1
    finally:
        release.set()
    err = capsys.readouterr().err
    assert "driver calls were not made: an earlier call was still stuck in the driver past its own deadline" in err
