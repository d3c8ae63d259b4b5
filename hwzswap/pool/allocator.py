"""The page allocator the pools draw from: a stand-in for the kernel's buddy allocator.

It hands out runs of 4 KiB pages as real memory, up to an optional limit counted in pages, and
can be told to refuse (for tests). A run is a writable ``memoryview`` (format ``'B'``,
``n * PAGE_SIZE`` bytes) over a private ``bytearray``: it can be sliced without copying and can
never be resized. Nothing is preallocated:
pools call :meth:`PageAllocator.alloc_pages` when they grow and :meth:`PageAllocator.free_pages`
when a zspage (or zbud page) empties, so :attr:`PageAllocator.pages_in_use` follows the pools'
real footprint. Several pools may share one allocator (zswap keeps one pool per compressor), and
the limit then applies to all of them together.

A run of ``n`` pages is one contiguous buffer. The kernel chains ``n`` separate order-0 pages into
a zspage; keeping them contiguous here means an object that straddles a page boundary is a plain
slice, which is what makes zero-copy ``map`` cheap. Page boundaries are still modelled: sizes,
counts and layouts are all in whole pages.

Like the buddy allocator's free lists, freed runs are kept (up to ``cache_pages`` pages) and
handed out again, so a pool that grows and shrinks does not pay for fresh, page-faulting memory
each time. Cached runs are free memory: they do not count in :attr:`PageAllocator.pages_in_use`
or against the limit. As with ``alloc_pages`` without ``__GFP_ZERO``, a run's contents are
undefined (zero when new, stale when reused).

Not thread-safe: callers serialise access (the zswap engine does), as the pools do.
"""

from __future__ import annotations

import random

from hwzswap.errors import InvalidParameterError, PoolAllocError, PoolError
from hwzswap.pool.base import PAGE_SIZE

__all__ = ["PAGE_SIZE", "PageAllocator"]


class PageAllocator:
    """Hands out page runs up to ``limit_pages`` (``None``: unlimited).

    ``cache_pages`` bounds how many freed pages are kept for reuse (0: none).

    Fault injection, for tests of the callers' failure paths:

    * :meth:`fail_next` makes the next ``n`` calls to :meth:`alloc_pages` fail;
    * :meth:`fail_rate` makes each call fail with probability ``p`` (seeded, so reproducible);
    * :meth:`clear_faults` turns both off.

    An injected failure is reported exactly like a real one (:class:`PoolAllocError`) and, like
    the kernel's zspage allocation, a failed call takes no pages at all.
    """

    _UNLIMITED = 1 << 62

    def __init__(self, limit_pages: int | None = None, cache_pages: int = 1024) -> None:
        if type(cache_pages) is not int or cache_pages < 0:
            raise InvalidParameterError(
                f"page allocator cache_pages must be an int >= 0, got {cache_pages!r}"
            )
        # Fast-path state: ``_room`` = pages that may still be allocated; ``_base`` = the limit
        # (or a huge number), so pages in use = _base - _room.
        self._limit: int | None = None
        self._base = self._UNLIMITED
        self._room = self._UNLIMITED
        self._min_room = self._UNLIMITED  # lowest _room seen, for peak_pages
        self.limit_pages = limit_pages  # validated by the setter
        # id(run) -> run for every run handed out and not yet freed. Holding the run keeps its
        # id unique, so a foreign or doubly freed run is always recognised.
        self._live: dict[int, memoryview] = {}
        self._cache: dict[int, list[memoryview]] = {}  # run length in pages -> freed runs
        self._cache_max = cache_pages
        self._cached = 0
        self._faults = False  # any fault injection armed
        self._fail_next = 0
        self._fail_p = 0.0
        self._rng = random.Random(0)
        #: Calls refused because the limit would have been exceeded.
        self.limit_hits = 0
        #: Calls refused by fault injection.
        self.injected_failures = 0

    # -- limit and accounting ----------------------------------------------------------------

    @property
    def limit_pages(self) -> int | None:
        """Most pages that may be in use at once (``None``: no limit). Settable at run time;
        lowering it below :attr:`pages_in_use` frees nothing, it only refuses further growth."""
        return self._limit

    @limit_pages.setter
    def limit_pages(self, value: int | None) -> None:
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidParameterError(
                f"page allocator limit must be a non-negative number of pages or None, "
                f"got {value!r}"
            )
        in_use = self._base - self._room
        peak = self._base - self._min_room
        self._limit = value
        self._base = self._UNLIMITED if value is None else value
        self._room = self._base - in_use
        self._min_room = self._base - peak

    @property
    def pages_in_use(self) -> int:
        """Pages handed out and not yet freed."""
        return self._base - self._room

    @property
    def bytes_in_use(self) -> int:
        return self.pages_in_use * PAGE_SIZE

    @property
    def peak_pages(self) -> int:
        """Largest :attr:`pages_in_use` seen since creation."""
        return self._base - self._min_room

    @property
    def runs_in_use(self) -> int:
        """Page runs (zspages, zbud pages) handed out and not yet freed."""
        return len(self._live)

    @property
    def cached_pages(self) -> int:
        """Freed pages kept for reuse (free memory, not in use)."""
        return self._cached

    # -- allocation --------------------------------------------------------------------------

    def alloc_pages(self, n: int) -> memoryview:
        """Return ``n`` contiguous pages as one writable memoryview of ``n * PAGE_SIZE`` bytes
        (contents undefined).

        Raises :class:`PoolAllocError` if the limit would be exceeded or an injected failure
        fires; in that case nothing is allocated.
        """
        if type(n) is not int or n < 1:
            raise InvalidParameterError(f"alloc_pages: page count must be an int >= 1, got {n!r}")
        room = self._room - n
        if room < 0 or self._faults:
            self._refuse(n, room)
        self._room = room
        if room < self._min_room:
            self._min_room = room
        cached = self._cache.get(n)
        if cached:
            run = cached.pop()
            self._cached -= n
        else:
            run = memoryview(bytearray(n * PAGE_SIZE))
        self._live[id(run)] = run
        return run

    def _refuse(self, n: int, room: int) -> None:
        """Slow path of :meth:`alloc_pages`: raise if a fault fires or the limit is hit."""
        if self._faults:
            self._maybe_inject(n)
        if room < 0:
            self.limit_hits += 1
            raise PoolAllocError(
                f"page allocator limit reached: {n} more page(s) requested, "
                f"{self.pages_in_use} of {self._limit} in use (raise limit_pages or free objects)"
            )

    def free_pages(self, run: memoryview) -> int:
        """Give back a run from :meth:`alloc_pages`; return how many pages it held.

        Raises :class:`PoolError` for a run this allocator did not hand out or already got back
        (the allocator's accounting is unchanged in that case).
        """
        if self._live.pop(id(run), None) is not run:
            raise PoolError(
                "free_pages: the run was not allocated by this page allocator or was already "
                "freed"
            )
        n = len(run) >> 12
        self._room += n
        if self._cached + n <= self._cache_max:
            cached = self._cache.get(n)
            if cached is None:
                self._cache[n] = [run]
            else:
                cached.append(run)
            self._cached += n
        return n

    def drop_cache(self) -> int:
        """Release the cached free runs to Python; return how many pages that was."""
        n = self._cached
        self._cache.clear()
        self._cached = 0
        return n

    def owns(self, run: object) -> bool:
        """True if ``run`` is a live run of this allocator."""
        return self._live.get(id(run)) is run

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(self, n: int = 1) -> None:
        """Make the next ``n`` :meth:`alloc_pages` calls fail (adds to any pending count)."""
        if type(n) is not int or n < 0:
            raise InvalidParameterError(f"fail_next: n must be an int >= 0, got {n!r}")
        self._fail_next += n
        self._faults = bool(self._fail_next or self._fail_p)

    def fail_rate(self, p: float, seed: int | None = 0) -> None:
        """Make each :meth:`alloc_pages` call fail with probability ``p`` (0 turns it off).
        ``seed`` makes the failure sequence reproducible."""
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise InvalidParameterError(f"fail_rate: p must be in [0, 1], got {p!r}")
        self._fail_p = float(p)
        self._rng = random.Random(seed)
        self._faults = bool(self._fail_next or self._fail_p)

    def clear_faults(self) -> None:
        """Turn off all fault injection."""
        self._fail_next = 0
        self._fail_p = 0.0
        self._faults = False

    def _maybe_inject(self, n: int) -> None:
        if self._fail_next:
            self._fail_next -= 1
            self._faults = bool(self._fail_next or self._fail_p)
        elif not (self._fail_p and self._rng.random() < self._fail_p):
            return
        self.injected_failures += 1
        raise PoolAllocError(f"page allocation of {n} page(s) failed (injected fault)")

    def __repr__(self) -> str:
        return (
            f"PageAllocator(pages_in_use={self.pages_in_use}, limit_pages={self._limit}, "
            f"peak_pages={self.peak_pages})"
        )
