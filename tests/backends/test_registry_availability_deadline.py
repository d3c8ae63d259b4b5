"""A driver whose ``availability()`` (or its constructor, when ``hwzswap backends`` describes
it) never answers: the registry gives it a deadline (drivers from outside the package only, as
the watchdog does), so the listing, ``hwzswap backends`` and ``hwzswap bench`` do not hang."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from hwzswap.backends import registry
from hwzswap.backends.lz4 import Lz4Backend
from hwzswap.backends.registry import available_backends, get_backend, registered
from hwzswap.cli import main
from hwzswap.errors import BackendUnavailableError

RELEASE = threading.Event()


class HungProbe(Lz4Backend):
    """Probes a device node that never answers (until the test ends)."""

    name = "test-hung-probe"

    @classmethod
    def availability(cls) -> tuple[bool, str | None]:
        RELEASE.wait(120)  # released at teardown: far longer than any bound below
        return True, None


class HungInit(Lz4Backend):
    """Available, but building it blocks (opening a device that never answers)."""

    name = "test-hung-init"

    def __init__(self, **params: object) -> None:
        RELEASE.wait(120)  # released at teardown: far longer than any bound below
        super().__init__(**params)


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    RELEASE.clear()
    monkeypatch.setattr(registry, "AVAILABILITY_TIMEOUT_S", 0.3)
    try:
        with registered(HungProbe, HungInit):
            yield
    finally:
        RELEASE.set()


def test_the_listing_gives_a_hung_probe_a_deadline(short_deadline: None) -> None:
    t0 = time.monotonic()
    rows = {r.name: r for r in available_backends()}
    assert time.monotonic() - t0 < 60  # not hung (the hang is 120 s); no speed claim
    probe, init = rows["test-hung-probe"], rows["test-hung-init"]
    assert probe.available is False and init.available is False
    assert ("availability check failed: backend 'test-hung-probe': availability() did not "
            "return within 0.3 s") in probe.reason
    assert "HungProbe" in probe.reason
    assert "backend 'test-hung-init': building it to describe it did not return within" \
        in init.reason
    assert rows["lz4"].available is True  # built-ins are called directly, as ever


def test_selecting_a_driver_whose_probe_hangs_is_a_clear_error(short_deadline: None) -> None:
    with pytest.raises(BackendUnavailableError,
                       match=r"backend 'test-hung-probe': availability\(\) did not return "
                             r"within 0.3 s .*given up"):
        get_backend("test-hung-probe")


def test_hwzswap_backends_finishes(short_deadline: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["backends", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["test-hung-probe"]["available"] is False
    assert "did not return within 0.3 s" in rows["test-hung-probe"]["reason"]


def test_building_a_driver_whose_constructor_hangs_is_a_clear_error(
        short_deadline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``get_backend`` (what ``open_zswap`` and the bench call) gives a foreign driver's
    constructor a deadline too (``CONSTRUCT_TIMEOUT_S``: longer than the probe's, since opening
    a device may take a while); it hung ``hwzswap bench`` for ever."""
    monkeypatch.setattr(registry, "CONSTRUCT_TIMEOUT_S", 0.3)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError,
                       match=r"backend 'test-hung-init': HungInit\(\) \(building the backend\) "
                             r"did not return within 0.3 s"):
        get_backend("test-hung-init")
    assert time.monotonic() - t0 < 60  # not hung (the hang is 120 s); no speed claim
    assert type(get_backend("lz4")).__name__ == "Lz4Backend"  # built-ins: built directly
