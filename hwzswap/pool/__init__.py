"""Memory pools for compressed pages: zsmalloc (dense, size classes) and zbud (two per page).

``create_pool("zsmalloc" | "zbud", allocator, **params)`` builds one by name; all pools share
the :class:`Pool` interface and draw pages from a :class:`PageAllocator`.
"""

from __future__ import annotations

from typing import Any

from hwzswap.errors import InvalidParameterError
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE, Pool
from hwzswap.pool.zbud import ZbudPool
from hwzswap.pool.zsmalloc import PyZsPool, ZsPool

__all__ = ["PAGE_SIZE", "POOL_KINDS", "PageAllocator", "Pool", "PyZsPool", "ZbudPool", "ZsPool",
           "create_pool"]

#: Pool kinds by name (the names zswap's old ``zpool`` parameter took).
POOL_KINDS: dict[str, type[Pool]] = {"zsmalloc": ZsPool, "zbud": ZbudPool}


def create_pool(kind: str, allocator: PageAllocator | None = None, **params: Any) -> Pool:
    """A new pool of ``kind`` ("zsmalloc" or "zbud") drawing pages from ``allocator``.

    ``params`` go to the pool's constructor (e.g. ``max_pages_per_zspage=8``, ``name=...``).
    Raises :class:`InvalidParameterError` for an unknown kind or parameter.
    """
    cls = POOL_KINDS.get(kind)
    if cls is None:
        raise InvalidParameterError(
            f"unknown pool kind {kind!r}; choose one of: {', '.join(POOL_KINDS)}"
        )
    try:
        return cls(allocator, **params)
    except TypeError as exc:
        raise InvalidParameterError(
            f"pool {kind!r}: bad parameters {sorted(params)}: {exc}"
        ) from None
