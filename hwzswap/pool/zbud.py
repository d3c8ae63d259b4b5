"""zbud: at most two objects ("buddies") per physical page, the pool zswap shipped with in 3.11.

Modelled on the kernel's ``mm/zbud.c`` (removed in v6.15; facts from
``shared/reference/kernel.md``, section "zbud and z3fold"; no kernel code is copied):

* A page is split into 64-byte chunks (``CHUNK_SHIFT`` = 6). The first chunk holds the page
  header (``ZHDR_SIZE_ALIGNED``), leaving ``NCHUNKS`` = 63 chunks for objects.
* The *first* buddy starts right after the header, the *last* buddy ends at the end of the page;
  an object takes ``ceil(size / 64)`` chunks, and two fit if their chunks add up to at most 63.
* Pages with one buddy sit on ``unbuddied[free_chunks]``; ``malloc`` takes a page from the
  smallest list whose free space fits (best fit), else a new page. Pages with two buddies are
  "buddied". A page whose last object is freed goes back to the allocator.
* No compaction: zbud cannot move objects (``compact`` returns 0).

So the density ceiling is two objects per page, and half-empty pages stay half empty, which is
why zsmalloc replaced it.

One departure: kernel zbud refused objects above ``PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE``
(3968 bytes) with -ENOSPC. The pool interface promises 1..4096, so such an object gets a page
of its own without a header, as zsmalloc's huge class does.
"""

from __future__ import annotations

import operator
from typing import Any

from hwzswap.errors import PoolAllocError, PoolError
from hwzswap.pool._handles import HandlePool, data_length, handle_key
from hwzswap.pool.allocator import PageAllocator
from hwzswap.pool.base import PAGE_SIZE

__all__ = ["CHUNK_SIZE", "NCHUNKS", "ZHDR_SIZE_ALIGNED", "ZbudPool"]

CHUNK_SHIFT = 6
CHUNK_SIZE = 1 << CHUNK_SHIFT
ZHDR_SIZE_ALIGNED = CHUNK_SIZE  # the page header, rounded up to a chunk
NCHUNKS = (PAGE_SIZE - ZHDR_SIZE_ALIGNED) >> CHUNK_SHIFT  # 63
MAX_BUDDY_SIZE = PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE  # 3968: largest kernel zbud object
_MAX_BUDDY_CHUNKS = MAX_BUDDY_SIZE >> CHUNK_SHIFT  # 62
_BUDDIED = -1
_HUGE = -2


class _ZbudPage:
    """One page: chunk counts of its first and last buddy (0 = none) and its list."""

    __slots__ = ("mv", "ro", "first", "last", "lst", "mapped")

    def __init__(self, mv: memoryview) -> None:
        self.mv = mv  # the page from the allocator
        self.ro = mv.toreadonly()  # the same memory, for reads
        self.first = 0
        self.last = 0
        self.lst = 0  # unbuddied[free chunks] index, _BUDDIED or _HUGE
        self.mapped = 0


class ZbudPool(HandlePool):
    """A zbud pool; same interface and handles as :class:`~hwzswap.pool.ZsPool`."""

    def __init__(self, allocator: PageAllocator | None = None, name: str = "zbud") -> None:
        super().__init__(allocator, name)
        self._unbuddied: list[dict[_ZbudPage, None]] = [{} for _ in range(NCHUNKS + 1)]
        self._unbuddied_mask = 0  # bit i set <=> unbuddied[i] is non-empty
        self._buddied: dict[_ZbudPage, None] = {}
        self._huge: dict[_ZbudPage, None] = {}
        self._alloc_fail = 0

    def malloc(self, size: int) -> int:
        """Reserve ``size`` (1..4096) bytes; return the handle. :class:`PoolAllocError` when a
        new page is needed and the allocator refuses (the pool is then unchanged)."""
        if size.__class__ is not int:
            size = self._size_arg(size)
        if not 0 < size <= PAGE_SIZE or self._destroyed:
            raise self.bad_size_error(size)
        chunks = (size + CHUNK_SIZE - 1) >> CHUNK_SHIFT
        found = self._fitting(chunks)
        if found is not None:
            page, i = found
            off = self._buddy_offset(page, chunks)
            self._take_buddy(page, i, chunks)
        else:
            page = self._new_page(size)
            off = self._file_new(page, chunks)
        return self._new_handle(page, off, size)

    def malloc_write(self, data: Any) -> int:
        """``malloc(len(data))`` + ``write``: store a bytes-like object of single bytes, return
        its handle. Same errors as the two calls; on any error the pool is as it was (the slot
        is written before it is taken; a page got for it goes back, and the peak with it)."""
        size = data_length(data)
        if size < 0:
            raise self.bad_data_error(0, data)
        if not 0 < size <= PAGE_SIZE or self._destroyed:
            raise self.bad_size_error(size)
        chunks = (size + CHUNK_SIZE - 1) >> CHUNK_SHIFT
        found = self._fitting(chunks)
        if found is not None:  # as malloc, but the free buddy is written before it is taken
            page, i = found
            off = self._buddy_offset(page, chunks)
            try:
                page.mv[off : off + size] = data
            except (TypeError, ValueError):
                raise self.bad_data_error(0, data) from None
            self._take_buddy(page, i, chunks)
        else:
            peak, at_peak = self.peak_pages, self._stored_at_peak
            page = self._new_page(size)
            off = 0 if chunks > _MAX_BUDDY_CHUNKS else ZHDR_SIZE_ALIGNED
            try:
                page.mv[off : off + size] = data
            except (TypeError, ValueError):
                self._release_page(page)
                self.peak_pages, self._stored_at_peak = peak, at_peak
                raise self.bad_data_error(0, data) from None
            self._file_new(page, chunks)
        return self._new_handle(page, off, size)

    # -- the steps malloc and malloc_write share ----------------------------------------------

    def _fitting(self, chunks: int) -> tuple[_ZbudPage, int] | None:
        """The unbuddied page with the least free room that takes ``chunks`` (the oldest of its
        list) and its list's index, or None (a new page is needed)."""
        mask = self._unbuddied_mask >> chunks if chunks <= _MAX_BUDDY_CHUNKS else 0
        if not mask:
            return None
        i = chunks + (mask & -mask).bit_length() - 1
        return next(iter(self._unbuddied[i])), i

    @staticmethod
    def _buddy_offset(page: _ZbudPage, chunks: int) -> int:
        """Where an object of ``chunks`` goes in ``page``'s free buddy: the first buddy after
        the header, or the last one at the page's end."""
        return ZHDR_SIZE_ALIGNED if page.first == 0 else PAGE_SIZE - (chunks << CHUNK_SHIFT)

    def _take_buddy(self, page: _ZbudPage, i: int, chunks: int) -> None:
        """Fill ``page``'s free buddy with ``chunks``: off unbuddied list ``i``, into buddied."""
        group = self._unbuddied[i]
        del group[page]
        if not group:
            self._unbuddied_mask &= ~(1 << i)
        if page.first == 0:
            page.first = chunks
        else:
            page.last = chunks
        page.lst = _BUDDIED
        self._buddied[page] = None

    def _new_handle(self, page: _ZbudPage, off: int, size: int) -> int:
        """The next handle (increasing, never reused), now naming ``size`` bytes at ``off``."""
        handle = self._serial + 1
        self._serial = handle
        self._objs[handle] = (page.ro, off, size, page)
        self._stored += size
        return handle

    def _size_arg(self, size: Any) -> int:
        """A ``malloc`` size that is not an ``int`` (a numpy integer) as one, or PoolError."""
        try:
            return operator.index(size)
        except TypeError:
            raise self.bad_size_error(size) from None

    def _file_new(self, page: _ZbudPage, chunks: int) -> int:
        """File a new page whose first object takes ``chunks`` (more than a buddy takes: a
        huge page); return the object's offset."""
        if chunks > _MAX_BUDDY_CHUNKS:
            page.first = NCHUNKS + 1
            page.lst = _HUGE
            self._huge[page] = None
            return 0
        page.first = chunks
        self._put_unbuddied(page, NCHUNKS - chunks)
        return ZHDR_SIZE_ALIGNED

    def free(self, handle: int) -> None:
        """Release the object; a page left with no buddy goes back to the allocator. A mapped
        object is refused (:class:`PoolError`) and the pool left as it was."""
        key = handle if handle.__class__ is int else handle_key(handle)
        try:
            loc = self._objs[key]
        except KeyError:
            raise self.invalid_handle_error(handle, "free") from None
        page = loc[3]
        if page.mapped and key in self._maps:
            raise self.pinned_error(key)
        del self._objs[key]
        stored = self._stored
        if self.pages == self.peak_pages and stored > self._stored_at_peak:
            self._stored_at_peak = stored  # the most the pool held at its peak size
        self._stored = stored - loc[2]
        lst = page.lst
        if lst == _HUGE:
            del self._huge[page]
            self._release_page(page)
            return
        if lst == _BUDDIED:
            del self._buddied[page]
        else:
            self._take_unbuddied(page, lst)
        if loc[1] == ZHDR_SIZE_ALIGNED:
            page.first = 0
        else:
            page.last = 0
        if page.first == 0 and page.last == 0:
            self._release_page(page)
        else:
            self._put_unbuddied(page, NCHUNKS - page.first - page.last)

    def _put_unbuddied(self, page: _ZbudPage, free_chunks: int) -> None:
        self._unbuddied[free_chunks][page] = None
        self._unbuddied_mask |= 1 << free_chunks
        page.lst = free_chunks

    def _take_unbuddied(self, page: _ZbudPage, free_chunks: int) -> None:
        group = self._unbuddied[free_chunks]
        del group[page]
        if not group:
            self._unbuddied_mask &= ~(1 << free_chunks)

    def _new_page(self, size: int) -> _ZbudPage:
        try:
            mv = self.allocator.alloc_pages(1)
        except PoolAllocError as exc:
            self._alloc_fail += 1
            raise PoolAllocError(f"{self.name}: no memory for a page for a {size}-byte object: "
                                 f"{exc}") from None
        self.pages += 1
        self._grown(size)
        return _ZbudPage(mv)

    def _release_page(self, page: _ZbudPage) -> None:
        self.pages -= 1
        self.allocator.free_pages(page.mv)

    def stats(self) -> dict[str, Any]:
        """Totals as for zsmalloc (``pool_bytes``, ``pages``, ``objects``, ``stored_bytes``,
        ``density``, ``pages_compacted`` = 0, ``alloc_fail``) plus ``buddied_pages``,
        ``unbuddied_pages``, ``huge_pages``; ``classes`` is empty (zbud has none)."""
        pool_bytes = self.pages * PAGE_SIZE
        return {
            "name": self.name,
            "kind": "zbud",
            "pool_bytes": pool_bytes,
            "pages": self.pages,
            "objects": len(self._objs),
            "stored_bytes": self._stored,
            "density": self._stored / pool_bytes if pool_bytes else 0.0,
            "pages_compacted": 0,
            "alloc_fail": self._alloc_fail,
            "buddied_pages": len(self._buddied),
            "unbuddied_pages": sum(len(g) for g in self._unbuddied),
            "huge_pages": len(self._huge),
            "classes": [],
        }

    def check(self) -> None:
        """Verify internal invariants; raise :class:`PoolError` naming the first broken one."""
        live: dict[_ZbudPage, list[tuple[int, int]]] = {}
        stored = 0
        for handle, (ro, off, size, page) in self._objs.items():
            if ro is not page.ro or ro.obj is not page.mv.obj:
                raise PoolError(f"handle {handle:#x}: view is not its page's")
            live.setdefault(page, []).append((off, size))
            stored += size
        pages = list(self._buddied) + list(self._huge)
        for i, group in enumerate(self._unbuddied):
            if bool(group) != bool(self._unbuddied_mask >> i & 1):
                raise PoolError(f"unbuddied mask bit {i} disagrees with the list")
            for page in group:
                if page.lst != i or NCHUNKS - page.first - page.last != i:
                    raise PoolError(f"page on unbuddied[{i}] has the wrong free chunk count")
                if (page.first == 0) == (page.last == 0):
                    raise PoolError(f"page on unbuddied[{i}] does not have exactly one buddy")
                pages.append(page)
        for page in self._buddied:
            if page.lst != _BUDDIED or not page.first or not page.last:
                raise PoolError("buddied page without two buddies")
            if page.first + page.last > NCHUNKS:
                raise PoolError("buddies overlap")
        if set(live) != set(pages) or len(pages) != self.pages:
            raise PoolError("pages holding objects disagree with the page lists / counter")
        for page, objs in live.items():
            if page.lst == _HUGE:
                ok = len(objs) == 1 and objs[0][0] == 0
            else:
                want = []
                if page.first:
                    want.append(ZHDR_SIZE_ALIGNED)
                if page.last:
                    want.append(PAGE_SIZE - (page.last << CHUNK_SHIFT))
                ok = sorted(o for o, _ in objs) == sorted(want) and all(
                    (s + CHUNK_SIZE - 1) >> CHUNK_SHIFT
                    == (page.first if o == ZHDR_SIZE_ALIGNED else page.last) for o, s in objs)
            if not ok:
                raise PoolError("objects in a page disagree with its buddy chunk counts")
            if not self.allocator.owns(page.mv):
                raise PoolError("page memory not from the allocator")
        if stored != self._stored:
            raise PoolError("stored_bytes counter disagrees with the live objects")

    def destroy(self) -> None:
        """Free every page (swapoff). Later calls raise; ``destroy`` itself is idempotent.
        Mapped views are released; while a buffer or view derived from one is alive it raises
        :class:`PoolError` and frees nothing (as ``unmap`` refuses)."""
        if self._destroyed:
            return
        self._release_maps()
        self._note_peak()
        pages = list(self._buddied) + list(self._huge)
        for group in self._unbuddied:
            pages.extend(group)
            group.clear()
        for page in pages:
            self._release_page(page)
        self._buddied.clear()
        self._huge.clear()
        self._unbuddied_mask = 0
        self._objs.clear()
        self._stored = 0
        self._destroyed = True
