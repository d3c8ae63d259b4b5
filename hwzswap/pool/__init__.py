"""Memory pools for compressed pages: zsmalloc (dense, size classes) and zbud (two per page).

``create_pool("zsmalloc" | "zbud", allocator, **params)`` builds one by name; all pools share
the :class:`Pool` interface and draw pages from a :class:`PageAllocator`. zsmalloc is the
compiled :class:`ZsPool` or, under ``HWZSWAP_IMPL=py`` (:mod:`hwzswap.impl`), its Python
reference :class:`PyZsPool`, which behaves the same. This package imports without the compiled
core; ``ZsPool`` is imported on first use, and says how to build the core if it is missing.
"""

from __future__ import annotations

from typing import Any

from hwzswap.errors import InvalidParameterError
from hwzswap.impl import compiled
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE, Pool
from hwzswap.pool.zbud import ZbudPool
from hwzswap.pool.zsmalloc import PyZsPool

# (ZsPool is not in __all__: a star import must not need the compiled core)
__all__ = ["PAGE_SIZE", "POOL_KINDS", "PageAllocator", "Pool", "PyZsPool", "ZbudPool",
           "create_pool", "pool_class"]

#: Pool kinds by name (the names zswap's old ``zpool`` parameter took).
POOL_KINDS: tuple[str, ...] = ("zsmalloc", "zbud")


def pool_class(kind: str) -> type[Pool]:
    """The class :func:`create_pool` builds for ``kind``: zsmalloc is :class:`ZsPool`, or
    :class:`PyZsPool` under ``HWZSWAP_IMPL=py``. Raises :class:`InvalidParameterError` for an
    unknown kind, and ``ImportError`` (saying how to build it) when the compiled core is due
    but not built."""
    if kind == "zsmalloc":
        if not compiled():
            return PyZsPool
        from hwzswap.pool.zsmalloc_c import ZsPool

        return ZsPool
    if kind == "zbud":
        return ZbudPool
    raise InvalidParameterError(
        f"unknown pool kind {kind!r}; choose one of: {', '.join(POOL_KINDS)}"
    )


def create_pool(kind: str, allocator: PageAllocator | None = None, **params: Any) -> Pool:
    """A new pool of ``kind`` ("zsmalloc" or "zbud") drawing pages from ``allocator``.

    ``params`` go to the pool's constructor (e.g. ``max_pages_per_zspage=8``, ``name=...``).
    Raises :class:`InvalidParameterError` for an unknown kind or parameter.
    """
    cls = pool_class(kind)
    try:
        return cls(allocator, **params)
    except TypeError as exc:
        raise InvalidParameterError(
            f"pool {kind!r}: bad parameters {sorted(params)}: {exc}"
        ) from None


def __getattr__(name: str) -> Any:
    """``ZsPool``, the compiled zsmalloc pool, imported on first use (see the docstring)."""
    if name == "ZsPool":
        from hwzswap.pool.zsmalloc_c import ZsPool

        return ZsPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
