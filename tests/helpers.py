"""Helpers shared by the tests of several packages (``from helpers import ...``: pytest puts
``tests/``, the folder of the top conftest.py, on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def engine_config(tmp_path: Path, compressor: object, **zswap: object) -> Path:
    """A small engine config file in ``tmp_path`` (64 MiB of RAM, 512 swap slots in a swap file
    there) for ``compressor`` (a name, or ``{name, params}``) and the given ``zswap`` keys."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "zswap": {"compressor": compressor, **zswap},
        "memory": {"total_ram_mb": 64},
        "swap": {"nr_pages": 512, "path": str(tmp_path / "swap.img")},
    }))
    return path
