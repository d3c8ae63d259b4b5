"""A driver whose ``close`` fails: the swap system still closes everything else, and the failure
is a :class:`DriverError` naming the driver, never a bare ``OSError``; ``hwzswap stats`` then
exits 1 (the run failed), not 2 (input refused before anything ran)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hwzswap
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import registered
from hwzswap.cli import main
from hwzswap.errors import DriverError


class CloseFails(Lz4Backend):
    """lz4, whose device node went away before close."""

    name = "test-close-fails-lz4"
    closes = 0

    def close(self) -> None:
        type(self).closes += 1
        raise OSError("device node vanished")


def test_a_failing_driver_close_is_a_driver_error_and_the_rest_is_closed() -> None:
    with registered(CloseFails):
        swap = hwzswap.open_zswap({"zswap": {"compressor": CloseFails.name},
                                   "swap": {"nr_pages": 16}})
        dev = swap.devices[0]
        assert swap.swap_out(0, 1, bytes(range(256)) * 16)
        with pytest.raises(DriverError, match=r"driver 'test-close-fails-lz4': close\(\) raised "
                                              r"OSError: device node vanished; the swap system "
                                              r"is closed"):
            swap.close()
        assert dev.closed and swap.stats()["zswpout"] == 1
        swap.close()  # idempotent: the driver is not asked again
        assert CloseFails.closes == 1


def test_open_failing_after_the_driver_was_built_reports_its_own_error(tmp_path: Path) -> None:
    """The swap file cannot be made, and the driver's close fails while undoing the open: the
    user sees the swap file's error (with the close failure as a note), not the close's."""
    with registered(CloseFails):
        with pytest.raises(hwzswap.HwzswapError) as exc:
            hwzswap.open_zswap({"zswap": {"compressor": CloseFails.name},
                                "swap": {"nr_pages": 16, "path": str(tmp_path / "no" / "x")}})
    assert "swap.path" in str(exc.value)
    assert any("closing what was opened failed too" in n and "vanished" in n
               for n in getattr(exc.value, "__notes__", []))


def test_stats_exits_1_when_the_run_fails_and_2_for_a_bad_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"zswap:\n  compressor: {CloseFails.name}\n")
    with registered(CloseFails):
        assert main(["stats", "--config", str(cfg), "--pages", "32"]) == 1
        err = capsys.readouterr().err
        assert "hwzswap stats: error: driver 'test-close-fails-lz4': close() raised" in err
        assert "Traceback" not in err
        cfg.write_text(f"zswap:\n  compressor: {CloseFails.name}\n  max_pool_percent: 500\n")
        assert main(["stats", "--config", str(cfg), "--pages", "32"]) == 2
        assert "zswap.max_pool_percent" in capsys.readouterr().err
