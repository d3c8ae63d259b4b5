"""``hwzswap stats`` on a device marked failed during the run exits 1 and says so, as the
bench's DEV FAILED row does: the stores it refused went to the swap device, so the figures
do not measure the device (it exited 0, printing a modelled time of given-up requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.cli import main


def test_a_device_marked_failed_is_exit_1(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hang.yaml"
    cfg.write_text("zswap:\n  device_timeout_ms: 5\n  device_fail_after: 2\n"
                   "  compressor: {name: 842-nx, params: {hang_rate: 1.0, "
                   "fault_ops: compress}}\n")
    assert main(["stats", "--config", str(cfg), "--pages", "64", "--json"]) == 1
    err = capsys.readouterr().err
    assert "hwzswap stats: the device was marked failed during the run" in err


def test_a_healthy_device_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--pages", "32", "--json"]) == 0
    assert "marked failed" not in capsys.readouterr().err
