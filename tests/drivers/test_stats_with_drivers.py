"""``hwzswap stats`` with broken drivers: a clear error or a finished run, never a hang."""

from __future__ import annotations

import re

import json
import time
from pathlib import Path

import pytest

from hwzswap.backends.contract import Capabilities
from hwzswap.cli import main
from hwzswap.frontswap import cli as stats_cli

import broken_drivers as bd
from helpers import engine_config


def test_constructor_exception_is_a_clean_error(register, capsys, tmp_path: Path) -> None:
    register(bd.InitRaises)
    assert main(["stats", "--config", str(engine_config(tmp_path, bd.InitRaises.name))]) == 2
    err = capsys.readouterr().err
    assert "broken-init-raises" in err and "RuntimeError: firmware image not found" in err
    assert "Traceback" not in err


def test_stuck_poll_finishes_with_timeouts_counted(register, capsys, tmp_path: Path) -> None:
    register(bd.StuckPoll)
    cfg = engine_config(tmp_path, bd.StuckPoll.name, batching="async", device_timeout_ms=20)
    assert main(["stats", "--config", str(cfg), "--pages", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified_pages"] == 64 and report["counters"]["driver_timeouts"] > 0


def test_a_hung_device_is_abandoned_not_waited_for(register, capsys, monkeypatch,
                                                   tmp_path: Path) -> None:
    register(bd.HungDevice)
    monkeypatch.setattr(stats_cli, "STALL_SLACK_S", 0.3)
    cfg = engine_config(tmp_path, bd.HungDevice.name, batching="page", device_timeout_ms=50)
    t0 = time.monotonic()
    # The engine gives the first call up at the deadline (its watchdog); the later ones are
    # refused at once while it is stuck (driver_refused_stuck: not timeouts; the device is
    # marked failed only once the stuck call has been in the driver for device_fail_after
    # deadlines), so the run completes: every page went to the swap file. Exit status 1: the
    # figures do not measure the device.
    assert main(["stats", "--config", str(cfg), "--pages", "16"]) == 1
    assert time.monotonic() - t0 < 10
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"driver_timeouts\s+│\s+1\b", out)
    assert re.search(r"driver_refused_stuck\s+│\s+[1-9]", out)
    assert re.search(r"reject_compress_fail\s+│\s+16", out)
    assert ("driver calls were not made" in captured.err
            or "the device was marked failed" in captured.err)


def test_stall_limit_follows_the_device_deadline(tmp_path: Path) -> None:
    cfg = engine_config(tmp_path, "lz4", device_timeout_ms=200)
    assert stats_cli._stall_limit_s(str(cfg)) == pytest.approx(0.6 + stats_cli.STALL_SLACK_S)


class _SlowWithOwnDeadline(bd.GoodDriver):
    """A correct driver with a deadline of its own (3 s) whose first compress takes 1.5 s:
    within its deadline, past the stall limit the config alone would give (patched small)."""

    name = "test-slow-own-deadline"
    slow_calls = 1

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(timeout_ms=3000.0)

    def compress(self, page):
        if type(self).slow_calls:
            type(self).slow_calls -= 1
            time.sleep(1.5)
        return super().compress(page)


def test_the_stall_limit_follows_a_drivers_own_deadline(register, monkeypatch,
                                                        tmp_path: Path) -> None:
    # The config sets no device_timeout_ms, so the engine's deadline is the driver's own 3 s;
    # the stall limit must follow it once the swap system is open (it stayed at the config's:
    # a 40 s driver deadline was abandoned at 35 s as "not answering"). Patched down here so
    # the config's limit is 0.5 s and the driver's 9.2 s.
    from hwzswap.frontswap import compressor

    register(_SlowWithOwnDeadline)
    monkeypatch.setattr(stats_cli, "STALL_SLACK_S", 0.2)
    monkeypatch.setattr(compressor, "DEFAULT_TIMEOUT_MS", 100.0)
    cfg = engine_config(tmp_path, _SlowWithOwnDeadline.name, batching="page")
    assert stats_cli._stall_limit_s(str(cfg)) == pytest.approx(0.5)
    report = stats_cli.run_stats(str(cfg), 32, warm_up=False)
    assert _SlowWithOwnDeadline.slow_calls == 0  # the slow call was made, and waited for
    assert report["verified_pages"] == 32 and report["counters"]["driver_timeouts"] == 0


def test_a_step_that_gives_up_on_many_calls_is_not_a_stall(register, capsys, monkeypatch,
                                                            tmp_path: Path) -> None:
    # 16 pages one call each on a hung device: the first given up at its deadline, the others
    # refused while it is stuck (counted as refused_stuck, not as timeouts toward
    # device_fail_after), in one step against a stall limit of 0.45 s. Each call given up or
    # refused is the engine at work, so the run completes (it was abandoned as "not
    # answering"); its exit status is 1, calls having been refused behind a stuck one.
    register(bd.HungDevice)
    monkeypatch.setattr(stats_cli, "STALL_SLACK_S", 0.3)
    cfg = engine_config(tmp_path, bd.HungDevice.name, batching="page", device_timeout_ms=50,
                        device_fail_after=1000)  # 50 s stuck before it counts as failed
    assert main(["stats", "--config", str(cfg), "--pages", "16", "--json"]) == 1
    c = json.loads(capsys.readouterr().out)["counters"]
    assert c["driver_timeouts"] == 1 and c["reject_compress_fail"] == 16
    assert c["driver_refused_stuck"] >= 1
    assert c["driver_failed"] == 0


class _HangsInTheWarmUp(bd.GoodDriver):
    """A driver whose first compress (the warm-up's) never returns until released."""

    name = "test-hangs-in-the-warm-up"
    release = None

    def compress(self, page):
        type(self).release.wait(30)
        return super().compress(page)


def test_a_stall_in_the_warm_up_is_a_run_failure_not_bad_input(register, capsys, monkeypatch,
                                                               tmp_path: Path) -> None:
    """A trusted driver (driver_watchdog off: no deadline of the engine's) that hangs in the
    warm-up is abandoned as not answering, with exit status 1 (it was 2, "bad input")."""
    import threading

    _HangsInTheWarmUp.release = threading.Event()
    register(_HangsInTheWarmUp)
    monkeypatch.setattr(stats_cli, "STALL_SLACK_S", 0.3)
    cfg = engine_config(tmp_path, _HangsInTheWarmUp.name, batching="page",
                        device_timeout_ms=50, driver_watchdog="off")
    try:
        assert main(["stats", "--config", str(cfg), "--pages", "16"]) == 1
    finally:
        _HangsInTheWarmUp.release.set()
    err = capsys.readouterr().err
    assert "hwzswap stats: error: warm-up: swap_out_batch of 16 pages did not return within" in err
