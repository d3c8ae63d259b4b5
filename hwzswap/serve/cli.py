"""``hwzswap swap``, ``hwzswap serve`` and ``hwzswap run``: the kernel's swap served by hwzswap."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from hwzswap.serve import chain, run

    chain.register(sub)
    run.register(sub)
