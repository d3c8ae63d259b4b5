"""The pool interface shared by zsmalloc and zbud (the kernel's zpool, in spirit).

A pool stores variable-size objects (compressed pages, 1..4096 bytes) in physical pages it gets
from a :class:`~hwzswap.pool.allocator.PageAllocator`. ``malloc`` returns an opaque integer
handle; data goes in and out through ``write``/``read`` (or ``map``/``unmap``). Handles stay
valid until ``free``, including across ``compact``.

What zswap relies on (every pool keeps it; ``tests/pool/test_pool_contract.py`` checks it):

* **Handles increase and are never reused.** Each handle a pool hands out, by any call, is
  greater than every handle it handed out before, freed or not. zswap uses an entry's handle
  as its store-sequence number (the LRU order) and as its identity when writeback re-checks
  an entry after dropping the lock: a freed handle can never come back naming another object.
* **A refused call changes nothing.** A call that raises (a bad size or handle, a free of a
  mapped object, data that is not bytes, no page to be had) leaves the pool as it was: the
  same objects in the same places, the same handles, totals and peak, and the same choice of
  slot for the next object. (``alloc_fail`` counts the refused allocations.)
* **Not thread-safe.** A pool has no lock of its own: the caller serialises every call (zswap
  holds its tree lock), and holds it across the use of a :meth:`Pool.view`.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from typing import Any

from hwzswap.errors import PoolAllocError, PoolError, excerpt

PAGE_SIZE = 4096


def _ints_error(pool: Any, what: str, values: Any) -> PoolError:
    return PoolError(
        f"{getattr(pool, 'name', 'pool')}: malloc_write_batch: {what} must be a sequence "
        f"or 1-D array of integers, got {excerpt(values)}"
    )


def _ints(pool: Any, what: str, values: Any) -> list[int]:
    """``values`` (a sequence or 1-D array of integers) as a list of ints, or PoolError."""
    try:
        return [operator.index(v) for v in values]
    except TypeError:
        raise _ints_error(pool, what, values) from None


def _buf_error(pool: Any, buf: Any) -> PoolError:
    return PoolError(
        f"{getattr(pool, 'name', 'pool')}: malloc_write_batch: buf must be a C-contiguous "
        f"bytes-like object (bytes, bytearray, memoryview, numpy array), got "
        f"{type(buf).__name__}"
    )


def _bytes_of(pool: Any, buf: Any) -> memoryview:
    """The bytes of ``buf`` as a flat ``'B'`` view, or PoolError."""
    try:
        view = memoryview(buf)
    except TypeError:
        view = None
    if view is None or not view.c_contiguous:
        raise _buf_error(pool, buf)
    if view.nbytes == 0:
        return memoryview(b"")  # (an empty N-d view cannot be cast)
    if view.ndim != 1 or view.format != "B":
        try:
            return view.cast("B")
        except (TypeError, ValueError):  # a format cast() does not take: its bytes, copied
            return memoryview(view.tobytes())
    return view


def _check_items(pool: Any, nbytes: int, offs: list[int], lens: list[int], idx: Any
                 ) -> list[int]:
    """The item order of a batch whose arguments were read (``idx``: its ints, or ``None``),
    every item checked against ``nbytes`` of ``buf``; or PoolError."""
    name = getattr(pool, "name", "pool")
    n = len(lens)
    if len(offs) != n:
        raise PoolError(
            f"{name}: malloc_write_batch: {len(offs)} offsets for {n} sizes (one each per item)"
        )
    order = list(range(n)) if idx is None else idx
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
        if off < 0 or off + size > nbytes:
            raise PoolError(
                f"{name}: malloc_write_batch: item {i} ({size} bytes at offset {off}) lies "
                f"outside buf ({nbytes} bytes)"
            )
    return order


def batch_args(pool: Any, buf: Any, offsets: Any, sizes: Any, idx: Any
               ) -> tuple[memoryview, list[int], list[int], list[int]]:
    """Check the arguments of :meth:`Pool.malloc_write_batch` (every item it will write, before
    anything is written): ``(bytes of buf, offsets, sizes, item order)``, or
    :class:`PoolError` saying what is wrong. Each argument is read once, in this order: buf,
    offsets, sizes, idx. The one definition of what a batch may be: the compiled pool asks
    :func:`batch_error` for its messages."""
    view = _bytes_of(pool, buf)
    offs = _ints(pool, "offsets", offsets)
    lens = _ints(pool, "sizes", sizes)
    if len(offs) != len(lens):
        _check_items(pool, view.nbytes, offs, lens, None)  # (raises)
    order = None if idx is None else _ints(pool, "idx", idx)
    return view, offs, lens, _check_items(pool, view.nbytes, offs, lens, order)


def batch_error(pool: Any, buf: Any, offsets: Any, sizes: Any, idx: Any,
                unread: str | None) -> PoolError:
    """The error :func:`batch_args` raises for a batch, from the arguments as the compiled pool
    read them, so that none is read twice: ``unread`` names the one it could not read
    (``"buf"``, ``"offsets"``, ``"sizes"``, ``"idx"``), given as it came and only named here;
    those before it come as read (``buf``: its size in bytes; the others: tuples of ints), and
    those after it are not used."""
    if unread == "buf":
        return _buf_error(pool, buf)
    if unread in ("offsets", "sizes"):
        return _ints_error(pool, unread, offsets if unread == "offsets" else sizes)
    offs, lens = list(offsets), list(sizes)
    if len(offs) != len(lens):
        idx = None
    elif unread == "idx":
        return _ints_error(pool, "idx", idx)
    try:
        _check_items(pool, buf, offs, lens, None if idx is None else list(idx))
    except PoolError as exc:
        return exc
    return PoolError(f"{getattr(pool, 'name', 'pool')}: malloc_write_batch: bad arguments")


class Pool(ABC):
    """Abstract pool: see the module docstring for what every pool guarantees (increasing,
    never reused handles; refused calls change nothing; no thread safety: the caller
    serialises). Errors: :class:`~hwzswap.errors.PoolError` for misuse (size 0 or > 4096,
    stale/foreign handle, double free); :class:`~hwzswap.errors.PoolAllocError` when no memory
    can be had (the caller counts it as ``reject_alloc_fail``). Handles may be given as any
    integer type (a numpy integer: the handle it equals); the pool hands out plain ``int``."""

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
        """Reserve an object of ``size`` bytes; return its handle, greater than every handle
        this pool handed out before."""

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

    @abstractmethod
    def __len__(self) -> int:
        """Live objects (malloc'ed and not yet freed)."""

    def check(self) -> None:
        """Verify the pool's internal consistency; raise :class:`PoolError` naming the first
        broken invariant. For tests and debugging (zswap's own check calls it); it costs a
        pass over the pool. This default checks nothing: a pool that can check itself
        overrides it (zsmalloc and zbud do), so a caller just calls ``pool.check()``."""

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
