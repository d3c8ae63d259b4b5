"""The pool interface shared by zsmalloc and zbud (the kernel's zpool, in spirit).

A pool stores variable-size objects (compressed pages, 1..4096 bytes) in physical pages it gets
from a :class:`~hwzswap.pool.allocator.PageAllocator`. ``malloc`` returns an opaque integer
handle; data goes in and out through ``write``/``read`` (or ``map``/``unmap``). Handles stay
valid until ``free``, including across ``compact``.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from typing import Any

from hwzswap.errors import PoolAllocError, PoolError, excerpt

PAGE_SIZE = 4096


def _ints(pool: Any, what: str, values: Any) -> list[int]:
    """``values`` (a sequence or 1-D array of integers) as a list of ints, or PoolError."""
    try:
        return [operator.index(v) for v in values]
    except TypeError:
        raise PoolError(
            f"{getattr(pool, 'name', 'pool')}: malloc_write_batch: {what} must be a sequence "
            f"or 1-D array of integers, got {excerpt(values)}"
        ) from None


def batch_args(pool: Any, buf: Any, offsets: Any, sizes: Any, idx: Any
               ) -> tuple[memoryview, list[int], list[int], list[int]]:
    """Check the arguments of :meth:`Pool.malloc_write_batch` (every item it will write, before
    anything is written): ``(bytes of buf, offsets, sizes, item order)``, or
    :class:`PoolError` saying what is wrong. The one definition of what a batch may be: the
    compiled pool asks it for its messages."""
    name = getattr(pool, "name", "pool")
    try:
        view = memoryview(buf)
    except TypeError:
        view = None
    if view is None or not view.c_contiguous:
        raise PoolError(
            f"{name}: malloc_write_batch: buf must be a C-contiguous bytes-like object "
            f"(bytes, bytearray, memoryview, numpy array), got {type(buf).__name__}"
        )
    if view.nbytes == 0:
        view = memoryview(b"")  # (an empty N-d view cannot be cast)
    elif view.ndim != 1 or view.format != "B":
        try:
            view = view.cast("B")
        except (TypeError, ValueError):  # a format cast() does not take: its bytes, copied
            view = memoryview(view.tobytes())
    offs = _ints(pool, "offsets", offsets)
    lens = _ints(pool, "sizes", sizes)
    n = len(lens)
    if len(offs) != n:
        raise PoolError(
            f"{name}: malloc_write_batch: {len(offs)} offsets for {n} sizes (one each per item)"
        )
    order = list(range(n)) if idx is None else _ints(pool, "idx", idx)
    for i in order:
        if not 0 <= i < n:
            raise PoolError(
                f"{name}: malloc_write_batch: item index {i} is out of range for {n} items"
            )
        off, size = offs[i], lens[i]
        if not 1 <= size <= PAGE_SIZE:
            raise PoolError(
                f"{name}: malloc_write_batch: item {i} has {size} bytes; objects are 1.."
                f"{PAGE_SIZE} bytes"
            )
        if off < 0 or off + size > view.nbytes:
            raise PoolError(
                f"{name}: malloc_write_batch: item {i} ({size} bytes at offset {off}) lies "
                f"outside buf ({view.nbytes} bytes)"
            )
    return view, offs, lens, order


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
        """Store a batch of objects in one call; return their handles, in the order written.

        Item ``i`` is ``buf[offsets[i] : offsets[i] + sizes[i]]``, ``buf`` being any
        C-contiguous bytes-like object (bytes, bytearray, memoryview, a numpy array: its
        bytes). The items written are ``idx[0], idx[1], ...`` (item indices, e.g. an int64
        array; ``None``: every item, in order). Writing stops at the first item the pool has no
        room for (where ``malloc_write`` would raise :class:`PoolAllocError`): the result is
        then the handles of the items before it, so ``len(result) < len(idx)`` means item
        ``idx[len(result)]`` did not fit (nothing of it is allocated) and nor were the rest
        tried. Bad arguments (a ``buf`` that is not bytes-like, ``offsets`` and ``sizes`` not
        one int per item, an index out of range, an item's size outside 1..4096 or its bytes
        outside ``buf``) raise :class:`PoolError` before anything is written; any other error
        frees what the call wrote and propagates. The compiled zsmalloc pool does it in one C
        call, with no Python object per item; this default is a loop over
        :meth:`malloc_write`.
        """
        view, offs, lens, order = batch_args(self, buf, offsets, sizes, idx)
        handles: list[int] = []
        try:
            for i in order:
                start = offs[i]
                try:
                    handles.append(self.malloc_write(view[start : start + lens[i]]))
                except PoolAllocError:
                    break
        except BaseException:
            for handle in reversed(handles):
                self.free(handle)
            raise
        return handles

    def read_free(self, handle: int) -> bytes:
        """``read`` then ``free`` (zswap's exclusive load); return the object's bytes."""
        data = self.read(handle)
        self.free(handle)
        return data
