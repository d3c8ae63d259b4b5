"""ZsPool: the zsmalloc pool whose data structure is the compiled core ``_zscore.c``.

The algorithm is :class:`~hwzswap.pool.zsmalloc.PyZsPool`'s (the readable model that
:mod:`hwzswap.pool.zsmalloc` describes); this module is the thin Python side of the compiled
one: its constructor, error messages, ``stats`` and ``check``. It is the one module of the pool
package that needs the compiled core: importing it without one raises the error that says how
to build it. ``create_pool("zsmalloc")`` uses it unless ``HWZSWAP_IMPL=py``.
"""

from __future__ import annotations

from typing import Any

from hwzswap.errors import InvalidHandleError, PoolAllocError, PoolError, not_built

try:
    from hwzswap.pool import _zscore  # type: ignore[attr-defined]
except ImportError as exc:
    raise not_built("hwzswap.pool._zscore", "the compiled zsmalloc core") from exc
from hwzswap.pool._handles import MapHelpers, PoolMessages, next_tag, pool_allocator
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE, Pool
from hwzswap.pool.zsmalloc import ZSMALLOC_CHAIN_SIZE, zs_layout, zs_stats

_zscore.set_error_classes(PoolError, PoolAllocError, InvalidHandleError)

__all__ = ["ZsPool"]


class ZsPool(_zscore.ZsCore, PoolMessages, MapHelpers, Pool):
    """A zsmalloc pool, compiled: the algorithm of :class:`PyZsPool` (the readable model the
    module docstring describes) run by the C core :mod:`hwzswap.pool._zscore`, which holds the
    classes, zspages, fullness groups, handle table, peak and pins.

    The per-object calls (``malloc``, ``malloc_write``, ``write``, ``read``, ``view``,
    ``free``, ``read_free``, ``in``, ``obj_size``, ``map``/``unmap``, ``compact``) and the
    attributes ``pages``, ``peak_pages``, ``stored_at_peak``, ``stored_bytes`` are the C
    type's own, with no Python frame in between; the error messages, ``stats`` and ``check``
    are here. Handles, errors and behaviour are those of :class:`PyZsPool`: both place every
    object in the same slot and compact the same pages.

    ``max_pages_per_zspage`` is ``CONFIG_ZSMALLOC_CHAIN_SIZE`` (default 8, as in the kernel).
    """

    def __init__(
        self,
        allocator: PageAllocator | None = None,
        max_pages_per_zspage: int = ZSMALLOC_CHAIN_SIZE,
        name: str = "zsmalloc",
    ) -> None:
        layout = zs_layout(max_pages_per_zspage)
        super().__init__(
            pool_allocator(allocator, name),
            next_tag(),
            name,
            [(c.size, c.pages_per_zspage, c.objs_per_zspage, c.header) for c in layout.classes],
            layout.class_of_size,
        )
        self.layout = layout
        self.max_pages_per_zspage = max_pages_per_zspage

    @property
    def huge_class_size(self) -> int:
        """Payload sizes from this up go to the huge class (``zs_huge_class_size``)."""
        return self.layout.huge_class_size

    def total_pages(self) -> int:
        return self.pages

    def total_bytes(self) -> int:
        return self.pages * PAGE_SIZE

    def stats(self) -> dict[str, Any]:
        """As :meth:`PyZsPool.stats` (the same keys and rows)."""
        return zs_stats(self, self._class_stats(), len(self), self._zspages, self._compacted,
                        self._alloc_fail)

    def check(self) -> None:
        """Verify the pool's internal invariants (the C core walks its whole structure) and
        that every zspage's memory is the allocator's; raise :class:`PoolError` naming the
        first broken one. For tests and debugging."""
        self._check()
        owns = self.allocator.owns
        for run in self._runs():
            if not owns(run):
                raise PoolError("a zspage's memory is not from the allocator")

    def destroy(self) -> None:
        """Free every zspage (swapoff). Later calls raise; ``destroy`` itself is idempotent.
        Views from :meth:`view` stay valid memoryviews of memory the pool no longer uses;
        mapped views are released, and while a buffer or view derived from one is alive
        ``destroy`` raises :class:`PoolError` and frees nothing (as ``unmap`` refuses)."""
        self._destroy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, objects={len(self)}, "
            f"pages={self.pages}, stored_bytes={self.stored_bytes})"
        )
