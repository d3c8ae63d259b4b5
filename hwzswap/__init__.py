"""hwzswap: a reference framework for evaluating compression offload for compressed swap.

It re-creates Linux zswap (frontswap ops -> compressor -> zsmalloc pool -> LRU writeback to a
swap file) in Python, with pluggable compressors and accelerators, and benchmarks them side by
side on identical workloads.
"""

from __future__ import annotations

from typing import Any

from hwzswap.backends.contract import PAGE_SIZE, Backend
from hwzswap.backends.registry import available_backends, backend_names, get_backend
from hwzswap.errors import HwzswapError

__version__ = "0.1.0"


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
