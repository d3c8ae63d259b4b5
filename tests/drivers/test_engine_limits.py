"""Broken drivers at the engine's limits (issue 13 items 2 and 4): a synchronous call that never
returns is given up at the deadline (the watchdog), and a constructor's parameter error names
the config file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.errors import ConfigError, InvalidParameterError
from hwzswap.frontswap.system import open_zswap

import broken_drivers as bd
from test_engine_guard import _bounded, _driver, _pages, system  # noqa: F401 - fixture


@pytest.mark.parametrize("batching", ["page"])
def test_hung_device_never_hangs_the_engine(system, batching) -> None:
    s = system(bd.HungDevice, batching=batching, device_timeout_ms=50)
    page = _pages(1)[0].tobytes()
    stored = _bounded(lambda: s.swap_out(0, 1, page), 10)
    assert stored is False  # rejected, written to the swap file
    assert _bounded(lambda: s.swap_in(0, 1), 10) == page
    assert _driver(s)["timeouts"] >= 1


def test_constructor_parameter_error_names_file_and_key(tmp_path: Path, register) -> None:
    register(bd.InitRejectsValue)
    cfg = tmp_path / "iaa.yaml"
    cfg.write_text(
        "zswap:\n  compressor:\n    name: broken-init-rejects\n    params: {level: 7}\n"
        f"swap:\n  path: {tmp_path / 's.img'}\n  nr_pages: 64\n"
    )
    with pytest.raises((ConfigError, InvalidParameterError)) as info:
        open_zswap(str(cfg))
    assert str(cfg) in str(info.value) and "zswap.compressor.params.level" in str(info.value)


