"""Handles and object access shared by :class:`ZsPool` and :class:`ZbudPool`.

Handle design
-------------
A handle is a plain ``int``::

    bits 62..40  pool tag   (23 bits, unique per pool created in this process, never 0)
    bits 39..0   serial     (this pool's allocation counter: a generation number)

Every ``malloc`` takes the next serial, so a pool never hands out the same handle twice: a freed
handle (stale, or a double free) can never alias a live object, and it is recognised as stale
because its serial is below the pool's counter. A handle from another pool carries that pool's
tag and is rejected as foreign. (After 2**40 allocations in one pool the serial would carry into
the tag bits; handles stay unique within the pool, only the foreign/stale wording could blur.)

The handle maps, through one dict, to the object's location ``(view, offset, size, owner)``:
a read-only memoryview of the zspage's (or zbud page's) memory, the payload offset in it, the
size given to ``malloc`` and the zspage/page object (whose ``mv`` is the writable view). This
dict plays the part of the kernel's handle slab cache: compaction moves an object by rewriting
its entry, and the caller's handle stays valid. Handles increase with every ``malloc``, so they
also tell allocation order (zswap uses that as its store order).

Reading and writing are slices of the owner's memoryviews. Because each zspage is one contiguous
buffer, an object straddling a page boundary needs no bounce buffer, and :meth:`map` can return a
zero-copy view for every object. While a handle is mapped its object is pinned: compaction skips
its zspage and ``free`` refuses it (the kernel forbids both as well). Each map has its own
exporter (:class:`MapExport`), so ``unmap`` also refuses while a view derived from the mapped
view (a slice) lives: none can write into the memory after the pool reuses it. :meth:`view` is the
unpinned variant for a caller that already excludes every other pool call (zswap's tree lock):
no bookkeeping, just the slice.
"""

from __future__ import annotations

import itertools
import operator
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from hwzswap.errors import InvalidHandleError, PoolAllocError, PoolError
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE, Pool, batch_args, batch_error

HANDLE_TAG_SHIFT = 40
HANDLE_TAG_BITS = 23
_SERIAL_MASK = (1 << HANDLE_TAG_SHIFT) - 1
_tags = itertools.count(1)
_ABSENT: Any = object()  # no entry in a map table (where None is junk)


def handle_key(handle: Any) -> int | None:
    """The int a handle argument stands for, as the compiled pool reads it: an ``int`` as it
    is, an integer type (a numpy integer) through ``__index__``, ``None`` (no handle: the
    invalid-handle error) for anything else, such as a float equal to a handle. An error other
    than ``TypeError`` from ``__index__`` propagates. The pools look handles up by this key, so
    ``pool.read(float(h))`` is refused rather than found by ``float(h) == h``."""
    if handle.__class__ is int:
        return handle
    try:
        return operator.index(handle)
    except TypeError:
        return None


def next_tag() -> int:
    tag = next(_tags) % (1 << HANDLE_TAG_BITS)
    return tag or next(_tags) % (1 << HANDLE_TAG_BITS)


def pool_allocator(allocator: PageAllocator | None, name: str) -> PageAllocator:
    """The page allocator a new pool named ``name`` draws from: the one given, or a private one
    when ``None``; anything else is a :class:`PoolError`."""
    if allocator is None:
        return PageAllocator()
    if not isinstance(allocator, PageAllocator):
        raise PoolError(
            f"{name}: allocator must be a hwzswap.pool.PageAllocator, got "
            f"{type(allocator).__name__}"
        )
    return allocator


class _MapMemory(np.ndarray):  # type: ignore[type-arg]
    """The object's bytes under a :class:`MapExport` (a class of its own: numpy collapses a
    view's base chain only through arrays of the view's own class, so every numpy array made
    from a map's exporter keeps the exporter itself as its base)."""


class MapExport(np.ndarray):  # type: ignore[type-arg]
    """The exporter of one :meth:`HandlePool.map`: a 1-D ``uint8`` array over the object's
    bytes, of which ``map`` returns ``memoryview(exporter)``. Every view derived from that
    view (a slice, ``memoryview(view)``, a cast) shares the view's buffer, which holds the
    exporter, and every array made from ``view.obj`` holds it as its base; so the exporter
    outlives the mapped view exactly while such a view is alive: what ``unmap`` checks before
    it lets the object be freed or moved. The compiled pool's exporter is
    ``_zscore.MapExport``, checked the same way. (Python code that digs into private
    attributes, such as ``view.obj.base``, can get around it; the C exporter exposes nothing.)
    """

    @staticmethod
    def over(mem: memoryview, off: int, size: int) -> MapExport:
        """An exporter of ``mem[off : off + size]`` (read-only if ``mem`` is, for good)."""
        return np.frombuffer(mem, np.uint8, size, off).view(_MapMemory).view(MapExport)

    def derived(self, held: int = 0) -> bool:
        """Whether anything holds this exporter besides the caller's one local reference
        (and ``held`` more of the caller's): a view derived from the map, or ``view.obj``."""
        return sys.getrefcount(self) > _IDLE_REFS + held

    def _refs(self) -> int:
        return sys.getrefcount(self)  # (as derived() counts: same call depth)


def _idle_refs() -> int:
    exporter = MapExport.over(memoryview(bytearray(1)), 0, 1)
    return exporter._refs()  # what derived() sees when only its caller holds the exporter


_IDLE_REFS = _idle_refs()


def map_exporter(view: Any) -> MapExport | None:
    """The exporter of ``view`` if it is a live map view (else ``None``: ``_maps`` is
    writable from outside)."""
    if view.__class__ is not memoryview:
        return None
    try:
        exporter = view.obj
    except ValueError:  # released
        return None
    return exporter if exporter.__class__ is MapExport else None


class PoolMessages:
    """The pools' error messages, in one place: the Python pools raise them and the compiled
    zsmalloc core (:mod:`hwzswap.pool._zscore`) calls these public ``*_error`` builders on its
    error paths, so both say the same. Needs ``name``, ``tag``, ``_serial`` and
    ``_destroyed``."""

    name: str
    tag: int
    _serial: int
    _destroyed: bool

    def _check_not_destroyed(self) -> None:
        if self._destroyed:
            raise PoolError(f"{self.name}: the pool was destroyed; create a new one")

    def bad_size_error(self, size: Any) -> PoolError:
        self._check_not_destroyed()
        if not isinstance(size, int):
            try:
                size = operator.index(size)  # a numpy integer is an int size, out of range
            except TypeError:
                return PoolError(
                    f"{self.name}: malloc size must be an int, got {type(size).__name__}"
                )
        if size <= 0:
            return PoolError(f"{self.name}: malloc of {size} bytes: the size must be >= 1")
        return PoolError(
            f"{self.name}: malloc of {size} bytes: objects are at most {PAGE_SIZE} bytes "
            f"(one page); store larger data elsewhere"
        )

    def bad_data_error(self, handle: int, data: Any) -> PoolError:
        where = f" to handle {handle:#x}" if handle else ""
        return PoolError(
            f"{self.name}: write{where} needs a bytes-like object of single bytes (bytes, "
            f"bytearray, contiguous 'B' memoryview), got {type(data).__name__}"
        )

    def pinned_error(self, handle: int) -> PoolError:
        return PoolError(
            f"{self.name}: free of handle {handle:#x} while it is mapped; unmap it first "
            f"(the object is unchanged)"
        )

    def invalid_handle_error(self, handle: Any, op: str) -> PoolError:
        """The error for a handle that is not live here, saying why."""
        if self._destroyed:
            return InvalidHandleError(
                f"{self.name}: {op} of handle {handle!r} after the pool was destroyed"
            )
        if type(handle) is not int:
            key = None if isinstance(handle, bool) else handle_key(handle)
            if key is None:
                return InvalidHandleError(
                    f"{self.name}: {op}: a handle is an int from malloc(), got "
                    f"{type(handle).__name__} {handle!r}"
                )
            handle = key  # a numpy integer names the handle it equals: say what is wrong with it
        tag = handle >> HANDLE_TAG_SHIFT
        if handle <= 0 or tag != self.tag:
            return InvalidHandleError(
                f"{self.name}: {op} of handle {handle:#x}, which does not belong to this pool "
                f"(its tag is {tag}, this pool's is {self.tag}): foreign or corrupted handle"
            )
        if handle <= self._serial:
            what = "double free" if op == "free" else "use after free"
            return InvalidHandleError(
                f"{self.name}: {op} of handle {handle:#x}, which was already freed ({what})"
            )
        return InvalidHandleError(
            f"{self.name}: {op} of handle {handle:#x}, which this pool never handed out"
        )

    def too_long_error(self, handle: int, n: int, size: int) -> PoolError:
        return PoolError(
            f"{self.name}: write of {n} bytes into handle {handle:#x} exceeds its size of "
            f"{size} bytes (malloc a larger object)"
        )

    def not_mapped_error(self, handle: int) -> PoolError:
        return PoolError(f"{self.name}: unmap of handle {handle:#x}, which is not mapped")

    def unmap_busy_error(self, handle: int) -> PoolError:
        return PoolError(
            f"{self.name}: cannot unmap handle {handle:#x}: something still holds a buffer "
            f"exported from its view (e.g. numpy.frombuffer); drop it first"
        )

    def unmap_derived_error(self, handle: int) -> PoolError:
        return PoolError(
            f"{self.name}: cannot unmap handle {handle:#x}: a view derived from its mapped "
            f"view (a slice, memoryview(view), view.obj) is still alive and could write into "
            f"another object once the memory is reused; release it (view.release(), a with "
            f"block, or del) and call unmap again. The object stays mapped and pinned until "
            f"then; the view map() returned is released"
        )

    def destroy_busy_error(self, busy: int, handle: int) -> PoolError:
        return PoolError(
            f"{self.name}: cannot destroy the pool: {busy} mapped object(s) (first: handle "
            f"{handle:#x}) still have buffers or views derived from their maps alive, which "
            f"could write into other objects once the memory is reused; release them and call "
            f"destroy again. Nothing was freed; the objects stay mapped (the views map() "
            f"returned are released)"
        )

    def batch_error(self, buf: Any, offsets: Any, sizes: Any, idx: Any,
                    unread: str | None = None) -> PoolError:
        """The error for bad ``malloc_write_batch`` arguments, which the compiled core asks
        for with the arguments as it read them (:func:`~hwzswap.pool.base.batch_error`)."""
        return batch_error(self, buf, offsets, sizes, idx, unread)

    def bad_maps_error(self, handle: int) -> PoolError:
        return PoolError(
            f"{self.name}: the map table entry of handle {handle:#x} is not a list of mapped "
            f"views: pool._maps was changed from outside; map and unmap only through the pool"
        )

    def alloc_failed_error(self, pages: int, size: int, exc: BaseException) -> PoolAllocError:
        return PoolAllocError(
            f"{self.name}: no memory for a new {pages}-page zspage of class {size}: {exc}"
        )

    def bad_run_error(self, run: Any, pages: int) -> PoolError:
        """The page allocator returned something other than a writable, contiguous memoryview
        of ``pages`` pages (both pools check it). Names its type and size, never its contents
        (the repr of a 28 KiB buffer made a 115,000-character message)."""
        try:
            size = f"{memoryview(run).nbytes} bytes"
        except TypeError:
            size = "not a buffer"
        else:
            if isinstance(run, memoryview) and run.readonly:
                size += ", read-only"
        return PoolError(
            f"{self.name}: the page allocator returned a {type(run).__name__} ({size}), not a "
            f"writable memoryview of {pages * PAGE_SIZE} bytes"
        )


class MapHelpers:
    """``mapped`` and ``is_mapped`` over a pool's ``map``/``unmap`` and its ``_maps`` table
    (handle -> the views mapped now): shared by the Python pools and the compiled ZsPool."""

    _maps: dict[int, list[memoryview]]

    @contextmanager
    def mapped(self, handle: int, writable: bool = False) -> Iterator[memoryview]:
        """``with pool.mapped(h) as view: ...``: :meth:`map` and a guaranteed :meth:`unmap`."""
        view = self.map(handle, writable)
        try:
            yield view
        finally:
            self.unmap(handle)

    def is_mapped(self, handle: int) -> bool:
        return bool(self._maps.get(handle if handle.__class__ is int else handle_key(handle)))


def data_length(data: Any) -> int:
    """The byte count of ``data`` as the pools take it, or -1 when it is not bytes-like: its
    ``len()``, else, for a buffer exporter without one (``pickle.PickleBuffer``), its size
    when its items are single bytes, as the compiled pool reads it through the buffer
    protocol. (Any other error of ``len()`` propagates, as in the compiled pool.)"""
    try:
        return len(data)
    except TypeError:
        pass
    try:
        view = memoryview(data)
    except TypeError:
        return -1
    with view:
        return view.nbytes if view.itemsize == 1 else -1


class HandlePool(PoolMessages, MapHelpers, Pool):
    """Common part of the pools: handle table, ``read``/``write``/``map``, error reporting.

    Subclasses implement ``malloc``/``malloc_write``/``free``/``compact``/``stats``/
    ``destroy`` and keep ``self._objs`` (handle -> ``(read-only view, offset, size, owner)``),
    ``self._stored`` and ``self.pages`` current, and call :meth:`_grown` when the pool gains
    pages. Owners have ``mv`` (the writable view of their memory), ``ro`` (a read-only view of
    the same memory) and an int ``mapped`` (count of mapped objects in them).
    """

    def __init__(self, allocator: PageAllocator | None, name: str) -> None:
        self.allocator: PageAllocator = pool_allocator(allocator, name)
        self.name = name
        self.tag = next_tag()
        self._serial = self.tag << HANDLE_TAG_SHIFT  # the last handle handed out
        self._objs: dict[int, tuple[memoryview, int, int, Any]] = {}
        self._stored = 0
        self.pages = 0
        self.peak_pages = 0
        self._stored_at_peak = 0  # see stored_at_peak; free() and _grown() keep it
        self._maps: dict[int, list[memoryview]] = {}
        self._destroyed = False

    # -- object access -----------------------------------------------------------------------

    def write(self, handle: int, data: Any) -> None:
        """Copy ``data`` (a bytes-like object of at most ``obj_size(handle)`` bytes) into the
        object, from its start. Raises :class:`PoolError` if it does not fit."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            _, off, size, owner = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "write") from None
        handle = key
        n = data_length(data)
        if n > size:
            # len() may have run Python code that freed the handle: as the compiled pool
            if handle not in self:
                raise self.invalid_handle_error(handle, "write")
            raise self.too_long_error(handle, n, size)
        if n >= 0:
            try:
                owner.mv[off : off + n] = data
                return
            except (TypeError, ValueError):
                pass  # not a bytes-like object of single bytes
        if handle not in self:
            raise self.invalid_handle_error(handle, "write")
        raise self.bad_data_error(handle, data) from None

    def read(self, handle: int) -> bytes:
        """A copy of the object: exactly the ``size`` given to ``malloc``."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            ro, off, size, _ = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "read") from None
        return ro[off : off + size].tobytes()

    def malloc_write_batch(self, buf: Any, offsets: Any, sizes: Any, idx: Any = None
                           ) -> list[int]:
        """:meth:`Pool.malloc_write_batch`: each item is a ``malloc`` and one slice copy into
        its slot (the reference of the compiled pool's C loop, which makes the same calls in
        the same order)."""
        view, offs, lens, order = batch_args(self, buf, offsets, sizes, idx)
        objs = self._objs
        handles: list[int] = []
        try:
            for i in order:
                size = lens[i]
                try:
                    handle = self.malloc(size)
                except PoolAllocError:
                    break
                _, off, _, owner = objs[handle]
                start = offs[i]
                owner.mv[off : off + size] = view[start : start + size]
                handles.append(handle)
        except BaseException:
            for handle in reversed(handles):
                self.free(handle)
            raise
        return handles

    def view(self, handle: int) -> memoryview:
        """A read-only zero-copy view of the object, *not* pinned: valid only until the next
        call that changes the pool (``malloc``, ``free``, ``compact``, ``destroy``), which may
        move the object or hand its memory to another. For a caller that holds the lock
        serialising all use of the pool across its use of the view (zswap decompresses from it
        under the tree lock); anyone else uses :meth:`read` or :meth:`map`."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            ro, off, size, _ = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "view") from None
        return ro[off : off + size]

    def obj_size(self, handle: int) -> int:
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            return self._objs[key][2]
        except KeyError:
            raise self.invalid_handle_error(handle, "obj_size") from None

    def __contains__(self, handle: object) -> bool:
        return (handle if handle.__class__ is int else handle_key(handle)) in self._objs

    def __len__(self) -> int:
        """Live objects."""
        return len(self._objs)

    def handles(self) -> list[int]:
        """The live handles (a snapshot)."""
        return list(self._objs)

    # -- zero-copy access --------------------------------------------------------------------

    def map(self, handle: int, writable: bool = False) -> memoryview:
        """A zero-copy view of the object's ``size`` bytes, for reading (``writable=False``,
        like ``ZS_MM_RO``) or reading and writing (like ``ZS_MM_RW``).

        The object is pinned until the matching :meth:`unmap`: compaction does not move it and
        ``free`` refuses it. Maps nest; each needs its own ``unmap``. After ``unmap`` the view is
        released and any further use of it raises ``ValueError``. Each map has its own
        exporter (:class:`MapExport`), so ``unmap`` knows whether views derived from the view
        (slices, ``memoryview(view)``, ``view.obj``) are still alive: it refuses then, as
        ``zs_unmap_object`` ends every access to the object.
        """
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            ro, off, size, owner = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "map") from None
        handle = key
        views = self._maps.get(handle, _ABSENT)
        if views is _ABSENT:
            views = self._maps[handle] = []
        elif views.__class__ is not list:
            raise self.bad_maps_error(handle)
        view = memoryview(MapExport.over(owner.mv if writable else ro, off, size))
        views.append(view)
        owner.mapped += 1
        return view

    def unmap(self, handle: int) -> None:
        """End the most recent :meth:`map` of ``handle``: release its view. While something
        holds a buffer exported from the view, or a view derived from it, raise
        :class:`PoolError` and keep the object mapped and pinned (derived views: the view
        itself is released; call ``unmap`` again once they are gone)."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            owner = self._objs[key][3]
        except KeyError:
            raise self.invalid_handle_error(handle, "unmap") from None
        handle = key
        # _maps is reachable from outside: what it holds is checked, not trusted
        views = self._maps.get(handle, _ABSENT)
        if views is _ABSENT:
            raise self.not_mapped_error(handle)
        if views.__class__ is not list:
            raise self.bad_maps_error(handle)
        if not views:
            raise self.not_mapped_error(handle)
        view = views[-1]
        exporter = map_exporter(view)
        if exporter is None:
            raise self.bad_maps_error(handle)
        try:
            view.release()
        except BufferError:
            raise self.unmap_busy_error(handle) from None
        if exporter.derived():
            views[-1] = memoryview(exporter)  # still mapped: the table keeps a live view
            del exporter  # (the traceback keeps this frame: it must not hold the exporter)
            raise self.unmap_derived_error(handle)
        views.pop()
        if not views and self._maps.get(handle) is views:
            del self._maps[handle]
        if owner.mapped > 0:
            owner.mapped -= 1

    def _where(self, handle: int) -> tuple[memoryview, int, int, int]:
        """``(page run, offset, size, owner id)`` of a live object: where it is (tests)."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            _, off, size, owner = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "read") from None
        return owner.mv, off, size, id(owner)

    # -- shared helpers ----------------------------------------------------------------------

    def total_pages(self) -> int:
        return self.pages

    def total_bytes(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    def stored_at_peak(self) -> int:  # type: ignore[override]
        """The most bytes stored while the pool held ``peak_pages`` pages.

        Kept without a cost per ``malloc``: a new peak starts it at the bytes stored then (the
        growth path); while the pool stays at its peak only mallocs raise the stored bytes, so
        the highest value is the one just before a free or a further growth (``free`` records
        it), or the current one if the pool is still at its peak."""
        if self.pages == self.peak_pages and self._stored > self._stored_at_peak:
            return self._stored
        return self._stored_at_peak

    def _note_peak(self) -> None:
        """Before the pool shrinks other than by ``free`` (compaction, destroy): keep the stored
        bytes if the pool is at its peak now."""
        if self.pages == self.peak_pages and self._stored > self._stored_at_peak:
            self._stored_at_peak = self._stored

    def _grown(self, size: int) -> None:
        """The pool just gained pages for an object of ``size`` bytes (not yet counted in
        ``_stored``): record a new peak."""
        pages = self.pages
        if pages > self.peak_pages:
            self.peak_pages = pages
            self._stored_at_peak = self._stored + size

    @property
    def stored_bytes(self) -> int:
        """Sum of the sizes given to ``malloc`` for the live objects."""
        return self._stored

    def _release_maps(self) -> None:
        """Before ``destroy`` frees the memory: release every map's view, or raise
        :class:`PoolError` (nothing freed, every map kept) if a buffer or view derived from one
        is still alive. Anything in the table that is not a map's view is dropped."""
        released: list[tuple[list[Any], memoryview, MapExport]] = []
        busy: list[int] = []
        for handle, views in list(self._maps.items()):
            if views.__class__ is not list:
                continue
            for view in list(views):
                exporter = map_exporter(view)
                if exporter is None:
                    if view.__class__ is memoryview:
                        try:
                            view.release()
                        except BufferError:
                            pass
                    continue
                try:
                    view.release()
                except BufferError:
                    busy.append(handle)
                    continue
                released.append((views, view, exporter))
                if exporter.derived(held=1):  # (held by `released` too)
                    busy.append(handle)
        if busy:
            for views, view, exporter in released:  # still mapped: each keeps a live view
                for i, v in enumerate(views):
                    if v is view:
                        views[i] = memoryview(exporter)
            # (the traceback keeps this frame: it must not hold an exporter)
            del released, exporter
            raise self.destroy_busy_error(len(busy), busy[0])
        self._maps.clear()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, objects={len(self._objs)}, "
            f"pages={self.total_pages()}, stored_bytes={self._stored})"
        )


def serial_of(handle: int) -> int:
    """The serial (generation) part of a handle."""
    return handle & _SERIAL_MASK
