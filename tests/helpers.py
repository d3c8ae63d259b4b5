"""Helpers shared by the tests of several packages (``from helpers import ...``: pytest puts
``tests/``, the folder of the top conftest.py, on ``sys.path``)."""

from __future__ import annotations

import json
import threading
import time
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


def bench_driver(cls: type, tmp_path: Path, config: str, modes: str = "reclaim"
                 ) -> tuple[int, dict[str, Any], float]:
    """``hwzswap bench`` (64 pages, one pass) on the driver class ``cls``, registered
    in-process, with the YAML text ``config``, on a thread of its own: the test fails, not
    hangs, when the bench does not end within 60 s. Returns (exit status, the JSON, which
    must fit the results schema, seconds)."""
    from hwzswap.backends.registry import registered
    from hwzswap.bench.results import schema_problems
    from hwzswap.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    out = tmp_path / "b.json"
    got: dict[str, Any] = {}

    def bench() -> None:
        got["rc"] = main(["bench", "--config", str(cfg), "--backends", cls.name,
                          "--batching", modes, "--pages", "64", "--repeat", "1", "--quiet",
                          "--json", str(out)])

    t0 = time.monotonic()
    with registered(cls):
        runner = threading.Thread(target=bench, daemon=True)
        runner.start()
        runner.join(60)
    assert not runner.is_alive(), "the bench hung on a driver call"
    doc = json.loads(out.read_text())
    assert schema_problems(doc) == []
    return got["rc"], doc, time.monotonic() - t0
