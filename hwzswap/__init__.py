"""hwzswap: a reference framework for evaluating compression offload for compressed swap.

It re-creates Linux zswap (frontswap ops -> compressor -> zsmalloc pool -> LRU writeback to a
swap file) in Python, with pluggable compressors and accelerators, and benchmarks them side by
side on identical workloads.

The public names below load on first use (PEP 562): ``import hwzswap.cli`` or
``hwzswap.errors`` does not pull in numpy and the backends, so the ``hwzswap`` program can
answer Ctrl-C during its own start-up with one line (see :func:`hwzswap.cli.main`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers: the names __getattr__ provides
    from hwzswap.backends.contract import PAGE_SIZE, Backend
    from hwzswap.backends.registry import available_backends, backend_names, get_backend
    from hwzswap.errors import HwzswapError

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "PAGE_SIZE": "hwzswap.backends.contract",
    "Backend": "hwzswap.backends.contract",
    "available_backends": "hwzswap.backends.registry",
    "backend_names": "hwzswap.backends.registry",
    "get_backend": "hwzswap.backends.registry",
    "HwzswapError": "hwzswap.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwzswap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def open_zswap(config: Any, **kwargs: Any) -> Any:
    """Build a ready swap system from a YAML path or an equivalent dict (see ``configs/``).

    Keyword arguments (``backend=``, ``swap_path=``) go to
    :func:`hwzswap.frontswap.system.open_zswap`.
    """
    from hwzswap.frontswap.system import open_zswap as _open

    return _open(config, **kwargs)


__all__ = [
    "PAGE_SIZE",
    "Backend",
    "HwzswapError",
    "__version__",
    "available_backends",
    "backend_names",
    "get_backend",
    "open_zswap",
]
