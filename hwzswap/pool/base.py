"""The pool interface shared by zsmalloc and zbud (the kernel's zpool, in spirit).

A pool stores variable-size objects (compressed pages, 1..4096 bytes) in physical pages it gets
from a :class:`~hwzswap.pool.allocator.PageAllocator`. ``malloc`` returns an opaque integer
handle; data goes in and out through ``write``/``read`` (or ``map``/``unmap``). Handles stay
valid until ``free``, including across ``compact``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from hwzswap.errors import PoolAllocError

PAGE_SIZE = 4096


class Pool(ABC):
    """Abstract pool. Errors: :class:`~hwzswap.errors.PoolError` for misuse (size 0 or > 4096,
    stale/foreign handle, double free); :class:`~hwzswap.errors.PoolAllocError` when no memory
    can be had (the caller counts it as ``reject_alloc_fail``)."""

    name: str = ""
    #: Physical pages held now (``zs_get_total_pages``), kept current by the pool: a plain
    #: attribute so that a per-page caller (zswap's limit check) reads it without a call.
    #: Read it; never assign it.
    pages: int = 0
    #: The most pages held at once since the pool was made, and the most stored (compressed)
    #: bytes while the pool held that many: the pool's density at its peak size is
    #: ``stored_at_peak / (peak_pages * 4096)``. Tracked on the growth and free paths only.
    peak_pages: int = 0
    stored_at_peak: int = 0

    @abstractmethod
    def malloc(self, size: int) -> int:
        """Reserve an object of ``size`` bytes; return its handle."""

    @abstractmethod
    def free(self, handle: int) -> None:
        """Release the object; an emptied zspage/page goes back to the allocator."""

    @abstractmethod
    def write(self, handle: int, data: Any) -> None:
        """Copy ``data`` (at most the object's size) into the object."""

    @abstractmethod
    def read(self, handle: int) -> bytes:
        """Return a copy of the object's bytes (exactly the size given to ``malloc``)."""

    @abstractmethod
    def obj_size(self, handle: int) -> int:
        """The size given to ``malloc`` for this handle."""

    def total_pages(self) -> int:
        """Physical pages the pool holds now (``zs_get_total_pages``): :attr:`pages`."""
        return self.pages

    def total_bytes(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    @abstractmethod
    def stored_bytes(self) -> int:
        """Sum of the sizes given to ``malloc`` for the live objects."""

    def view(self, handle: int) -> memoryview:
        """A read-only view of the object for a caller that excludes every other use of the
        pool while it holds the view (no pinning). Pools that can, return a zero-copy view;
        this default returns a view of a copy."""
        return memoryview(self.read(handle))

    def compact(self) -> int:
        """Move objects out of sparse pages; return pages freed. Pools that cannot compact
        return 0."""
        return 0

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Totals (``pool_bytes``, ``pages``, ``objects``, ``stored_bytes``, ``density``,
        ``pages_compacted``) and, where meaningful, per-class rows under ``classes``."""

    def destroy(self) -> None:
        """Free everything (swapoff). The pool must not be used afterwards."""

    # Combined calls for the per-page path: one Python call instead of two. The defaults below
    # are exactly the two calls; pools override them with a faster fused version.

    def malloc_write(self, data: Any) -> int:
        """``malloc(len(data))`` then ``write``; return the handle. Nothing stays allocated if
        either step fails."""
        handle = self.malloc(len(data))
        try:
            self.write(handle, data)
        except BaseException:
            self.free(handle)
            raise
        return handle

    def malloc_write_batch(self, buf: Any, offsets: Any, sizes: Any, idx: Any = None
                           ) -> list[int]:
        """Write a batch of objects in one call: item ``i`` is ``buf[offsets[i]:offsets[i] +
        sizes[i]]``; the items written are ``idx`` (indices, in order; ``None``: all). Stops at
        the first item the pool has no room for and returns the handles written so far, so a
        short result means item ``idx[len(result)]`` did not fit (nothing of it is
        allocated). This default is a loop over :meth:`malloc_write`; zsmalloc's core writes
        the batch in one C call."""
        view = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
        order = range(len(sizes)) if idx is None else idx
        handles: list[int] = []
        for i in order:
            start = int(offsets[i])
            try:
                handles.append(self.malloc_write(view[start:start + int(sizes[i])]))
            except PoolAllocError:
                break
        return handles

    def read_free(self, handle: int) -> bytes:
        """``read`` then ``free`` (zswap's exclusive load); return the object's bytes."""
        data = self.read(handle)
        self.free(handle)
        return data
