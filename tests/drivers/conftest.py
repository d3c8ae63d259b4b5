"""Fixtures for the broken-driver tests: registration for one test, and releasing hung drivers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hwzswap.backends.registry import registered

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
