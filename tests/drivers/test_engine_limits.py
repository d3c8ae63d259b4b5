"""Broken drivers at the engine's limits (issue 13 items 2 and 4): a synchronous call that never
returns is given up at the deadline (the watchdog), and a constructor's parameter error names
the config file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwzswap.errors import ConfigError, InvalidParameterError
from hwzswap.frontswap.system import open_zswap

import broken_drivers as bd
from test_engine_guard import _bounded, _driver, _pages


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




def test_driver_watchdog_says_which_drivers_run_on_the_watchdog_thread(system, register) -> None:
    """``zswap.driver_watchdog``: ``auto`` runs a driver from outside the package on the
    watchdog thread (a hung call is given up), ``off`` calls it directly, as a built-in is (no
    per-call thread hand-off when its speed is what is measured), ``on`` watches built-ins too.
    ``stats()["driver_watched"]`` says which applied."""
    import threading

    from hwzswap.backends.lz4 import Lz4Backend

    class SeesItsCaller(Lz4Backend):
        name = "test-sees-its-caller"
        threads: set[int] = set()

        def compress(self, page):
            SeesItsCaller.threads.add(threading.get_ident())
            return super().compress(page)

    SeesItsCaller.__module__ = "vendor_driver"  # from outside the package, as a plugin is
    page = _pages(1)[0]
    for mode, watched in (("auto", True), ("off", False)):
        SeesItsCaller.threads = set()
        s = system(SeesItsCaller, driver_watchdog=mode, batching="page")
        assert s.swap_out(0, 1, page.tobytes()) is True
        assert s.swap_in(0, 1) == page.tobytes()
        assert _driver(s)["watched"] == int(watched)
        assert (SeesItsCaller.threads == {threading.get_ident()}) is not watched, mode
    s = system(bd.HungDevice, driver_watchdog="auto", batching="page", device_timeout_ms=50)
    assert _bounded(lambda: s.swap_out(0, 2, page.tobytes()), 10) is False  # given up
    register(Lz4Backend)
    s = system(Lz4Backend, driver_watchdog="on")
    assert _driver(s)["watched"] == 1
    assert s.swap_out(0, 3, page.tobytes()) is True and s.swap_in(0, 3) == page.tobytes()
    assert _driver(system(Lz4Backend))["watched"] == 0  # auto: a built-in is trusted


def test_driver_watchdog_value_is_checked_with_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "w.yaml"
    cfg.write_text("zswap:\n  driver_watchdog: of\n")
    with pytest.raises(ConfigError, match=r"w\.yaml: zswap\.driver_watchdog: .*'of'"):
        open_zswap(str(cfg))
