"""The self-contained structures and kernels the swap layer and zswap use, compiled or not.

Each is a data structure or a scan that knows nothing of zswap: the per-type index and LRU
(``ZswapTree``, the kernel's xarray plus list), the same-filled page scan of a batch and the swap
map's slot claim for a batch. :mod:`hwzswap.impl` (``HWZSWAP_IMPL=c|py``) picks the compiled
ones (``_hotpath.c``) or their Python references (``_hotpath_py``), which behave the same.
"""

from __future__ import annotations

from hwzswap.errors import not_built
from hwzswap.frontswap._hotpath_py import (
    MAX_NR_PAGES,
    ZswapTreePy,
    claim_slots_py,
    same_filled_pages_py,
)
from hwzswap.impl import compiled

if compiled():
    try:
        from hwzswap.frontswap._hotpath import (  # type: ignore[import-not-found]
            ZswapTree,
            claim_slots,
            same_filled_pages,
        )
    except ImportError as exc:
        raise not_built("hwzswap.frontswap._hotpath", "zswap's index and batch scans") from exc
else:
    ZswapTree = ZswapTreePy  # type: ignore[misc,assignment]
    claim_slots = claim_slots_py
    same_filled_pages = same_filled_pages_py

__all__ = ["MAX_NR_PAGES", "ZswapTree", "claim_slots", "same_filled_pages"]
