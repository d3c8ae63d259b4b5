"""Fixtures for the broken-driver tests: registration for one test, and releasing hung drivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hwzswap.backends.registry import registered
from hwzswap.frontswap.system import SwapSystem, open_zswap

from broken_drivers import RELEASE


@pytest.fixture
def release() -> Iterator[None]:
    """Hung drivers block until the end of the test, then their threads finish."""
    RELEASE.clear()
    try:
        yield
    finally:
        RELEASE.set()


@pytest.fixture
def register(release: None) -> Iterator[object]:
    """``register(*classes)``: the classes are registered backends until the test ends."""
    stack: list[object] = []

    def reg(*classes: type) -> None:
        cm = registered(*classes)
        cm.__enter__()
        stack.append(cm)

    yield reg
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def _driver_config(tmp_path: Path, name: str, params: dict[str, Any] | None = None,
                  **zswap: Any) -> dict[str, Any]:
    """A config for registered driver ``name`` (``zswap`` keys added), its swap file in
    ``tmp_path``."""
    return {
        "zswap": {"compressor": {"name": name, "params": params or {}}, **zswap},
        "memory": {"total_ram_mb": 256},
        "pool": {"type": "zsmalloc"},
        "swap": {"nr_pages": 1024, "path": str(tmp_path / f"{name}.img")},
    }


@pytest.fixture
def system(tmp_path: Path, register) -> Callable[..., SwapSystem]:
    """``system(cls, params=None, **zswap)``: a swap system on the registered broken driver."""
    made: list[SwapSystem] = []

    def make(cls: type, params: dict[str, Any] | None = None, **zswap: Any) -> SwapSystem:
        register(cls)
        cfg = _driver_config(tmp_path, cls.name, params, **zswap)
        # a swap file of its own: systems made here stay open together until the end, and a
        # named swap file takes one system at a time (swapdev's lock, as the kernel's EBUSY)
        cfg["swap"]["path"] = str(tmp_path / f"{cls.name}-{len(made)}.img")
        s = open_zswap(cfg)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
