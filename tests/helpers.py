"""Helpers shared by the tests of several packages (``from helpers import ...``: pytest puts
``tests/``, the folder of the top conftest.py, on ``sys.path``)."""

from __future__ import annotations

from typing import Any

from hwzswap.backends import Backend


def unavailable_backend(backend_name: str, reason: str) -> type[Backend]:
    """A backend class named ``backend_name`` whose ``availability()`` says it cannot run here,
    for ``reason`` (a driver on a machine without its card); building one is a test failure."""

    class Unavailable(Backend):
        name = backend_name

        @classmethod
        def availability(cls) -> tuple[bool, str | None]:
            return False, reason

        def compress(self, page: Any) -> bytes | None:  # pragma: no cover - never built
            raise AssertionError(f"{backend_name} is unavailable: it must never be built")

        def decompress(self, data: Any) -> bytes:  # pragma: no cover
            raise AssertionError(f"{backend_name} is unavailable: it must never be built")

    return Unavailable
